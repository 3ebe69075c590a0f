//! Feed actor: the simulator's market heartbeat.
//!
//! Every flush interval it advances the synthetic market (or the replay) to now, serialises
//! each new event ONCE into a shared buffer, and sends the batch to every session attached to
//! that market; sessions filter and frame it for their client. It also owns the market state
//! behind the REST endpoints, so REST answers and the stream never disagree.
//!
//! Stall faults are applied here: during a stall the feed keeps the market moving but holds
//! its batches, then releases them in one burst, as a congested server would.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, AsyncContext, Context, Handler, Message, Recipient};
use bytes::Bytes;
use serde_json::Value;

use super::metrics::FeedFigures;
use crate::actors::sim::filter::EncodedEvent;
use crate::actors::sim::market::{SimEvent, SyntheticMarket, STOCK_CHANNELS};
use crate::actors::sim::replay::Replayer;
use crate::actors::sim::rest::{self, Query, RestError};
use crate::clock::MarketClock;
use crate::massive::Market;
use crate::metrics::ActorMetrics;

/// One tick's events for one market, shared by all sessions.
#[derive(Debug)]
pub struct Batch {
    pub market: Market,
    pub events: Vec<EncodedEvent>,
}

/// Delivered to attached sessions.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct FeedBatch(pub Arc<Batch>);

/// A session wants the data of `market`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Attach {
    pub id: u64,
    pub market: Market,
    pub to: Recipient<FeedBatch>,
}

/// A session is gone.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Detach {
    pub id: u64,
}

/// Feed timing and faults.
#[derive(Debug, Clone)]
pub struct FeedSettings {
    pub flush: Duration,
    pub stall_every: Option<Duration>,
    pub stall_for: Duration,
}

pub struct Feed {
    market: SyntheticMarket,
    clock: MarketClock,
    replay: Option<Replayer>,
    settings: FeedSettings,
    sessions: HashMap<u64, (Market, Recipient<FeedBatch>)>,
    symbols: Vec<Arc<str>>,
    channels: Vec<Arc<str>>,
    scratch: Vec<SimEvent>,
    last_wall: Instant,
    next_stall: Option<Instant>,
    stalled_until: Option<Instant>,
    held: Vec<Arc<Batch>>,
    figures: FeedFigures,
    /// The sessions' counted-recipient figures (depth is counted at the sender).
    sessions_actor: ActorMetrics,
    /// Told each market day's runners (the news wire writes about them).
    runners_to: Option<Recipient<super::news::Runners>>,
}

impl Feed {
    pub fn new(
        market: SyntheticMarket,
        clock: MarketClock,
        replay: Option<Replayer>,
        settings: FeedSettings,
        sessions_actor: ActorMetrics,
        figures: FeedFigures,
    ) -> Self {
        let symbols = market
            .tickers()
            .iter()
            .map(|t| Arc::from(t.sym.as_str()))
            .collect();
        let channels = STOCK_CHANNELS.iter().map(|c| Arc::from(*c)).collect();
        let next_stall = settings.stall_every.map(|d| Instant::now() + d);
        Feed {
            market,
            clock,
            replay,
            settings,
            sessions: HashMap::new(),
            symbols,
            channels,
            scratch: Vec::new(),
            last_wall: Instant::now(),
            next_stall,
            stalled_until: None,
            held: Vec::new(),
            figures,
            sessions_actor,
            runners_to: None,
        }
    }

    /// Tell `to` the runners of each market day (today's at once).
    pub fn with_runners_to(mut self, to: Recipient<super::news::Runners>) -> Self {
        to.do_send(super::news::Runners(self.market.runner_ids()));
        self.runners_to = Some(to);
        self
    }

    fn has_sessions(&self, market: Market) -> bool {
        self.sessions.values().any(|(m, _)| *m == market)
    }

    /// Serialises the scratch events into one buffer and slices it per event (no copies).
    fn encode_synthetic(&mut self) -> Option<Batch> {
        if self.scratch.is_empty() {
            return None;
        }
        for e in &self.scratch {
            if let Some(c) = self.figures.events.at(e.channel as usize) {
                c.inc();
            }
        }
        if !self.has_sessions(Market::Stocks) {
            self.scratch.clear();
            return None;
        }
        let mut buf = Vec::with_capacity(self.scratch.len() * 170);
        let mut spans = Vec::with_capacity(self.scratch.len());
        for e in self.scratch.drain(..) {
            let start = buf.len();
            e.event.write_json(&mut buf);
            spans.push((e.channel, e.ticker, start, buf.len()));
        }
        let bytes = Bytes::from(buf);
        let events = spans
            .into_iter()
            .map(|(ch, t, s, e)| EncodedEvent {
                channel: self.channels[ch as usize].clone(),
                symbol: self.symbols[t as usize].clone(),
                json: bytes.slice(s..e),
            })
            .collect();
        Some(Batch {
            market: Market::Stocks,
            events,
        })
    }

    fn tick(&mut self) {
        let now = Instant::now();
        let wall_dt = now.duration_since(self.last_wall).as_secs_f64();
        self.last_wall = now;
        let mut batches = Vec::new();
        if let Some(replay) = self.replay.as_mut() {
            let mut by_market: Vec<Batch> = Vec::new();
            for frame in replay.due(now) {
                self.figures.replayed.add(frame.events.len() as u64);
                match by_market.iter_mut().find(|b| b.market == frame.market) {
                    Some(b) => b.events.extend(frame.events),
                    None => by_market.push(Batch {
                        market: frame.market,
                        events: frame.events,
                    }),
                }
            }
            batches.extend(by_market.into_iter().filter(|b| !b.events.is_empty()));
        } else {
            let mut scratch = std::mem::take(&mut self.scratch);
            let day = self.market.day();
            self.market
                .advance(self.clock.now_ms(), wall_dt, &mut scratch);
            self.scratch = scratch;
            if self.market.day() != day {
                if let Some(to) = &self.runners_to {
                    to.do_send(super::news::Runners(self.market.runner_ids()));
                }
            }
            batches.extend(self.encode_synthetic());
        }
        let batches: Vec<Arc<Batch>> = batches.into_iter().map(Arc::new).collect();

        // Stall fault: hold output, release it as one burst when the stall ends.
        if let (Some(at), Some(every)) = (self.next_stall, self.settings.stall_every) {
            if now >= at && self.stalled_until.is_none() {
                log::info!(
                    "feed stall for {:?} (fault injection)",
                    self.settings.stall_for
                );
                self.figures.stalls.inc("stall");
                self.stalled_until = Some(now + self.settings.stall_for);
                self.next_stall = Some(now + self.settings.stall_for + every);
            }
        }
        if let Some(until) = self.stalled_until {
            self.held.extend(batches);
            if now < until {
                return;
            }
            self.stalled_until = None;
            let held = std::mem::take(&mut self.held);
            self.broadcast(held);
            return;
        }
        self.broadcast(batches);
    }

    fn broadcast(&mut self, batches: Vec<Arc<Batch>>) {
        for batch in batches {
            self.figures.batches.inc();
            for (market, to) in self.sessions.values() {
                if *market == batch.market {
                    self.sessions_actor.enqueued();
                    self.figures.actor.messages_out.inc();
                    to.do_send(FeedBatch(batch.clone()));
                }
            }
        }
    }
}

impl Actor for Feed {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.settings.flush, |act, _| act.tick());
    }
}

impl Handler<Attach> for Feed {
    type Result = ();

    fn handle(&mut self, msg: Attach, _: &mut Context<Self>) {
        self.figures.actor.received();
        self.sessions.insert(msg.id, (msg.market, msg.to));
        self.figures.sessions.set(self.sessions.len() as i64);
    }
}

impl Handler<Detach> for Feed {
    type Result = ();

    fn handle(&mut self, msg: Detach, _: &mut Context<Self>) {
        self.figures.actor.received();
        self.sessions.remove(&msg.id);
        self.figures.sessions.set(self.sessions.len() as i64);
    }
}

impl Handler<Query> for Feed {
    type Result = Result<Value, RestError>;

    fn handle(&mut self, msg: Query, _: &mut Context<Self>) -> Self::Result {
        self.figures.actor.received();
        let result = rest::answer(&self.market, self.clock.now_ms(), &msg.0);
        if result.is_err() {
            self.figures.actor.errors.inc();
        }
        result
    }
}
