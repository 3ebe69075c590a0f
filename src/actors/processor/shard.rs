//! ShardProcessor actor: owns one shard's symbols and runs the analyzers on its events.
//!
//! Every event of a symbol lands on the same processor (the listener shards by symbol), and an
//! actor handles one message at a time, so per-symbol order holds with no locks. Results go to
//! the results store as one [`Write`] per batch; the handler returns once they are handed
//! over, which is when the queue consumer acks the message.
//!
//! Once a second the processor stores its leaderboard candidates (and trade statistics) for
//! the elected publisher, and a checkpoint of its state (rmp-serde) when it changed; on start
//! and on [`Rehydrate`] (its shard was just taken over) it loads the checkpoint first, while
//! its mailbox waits.
//!
//! What was published never goes backwards: a checkpoint can be up to a second older than
//! the values browsers have seen, so a rehydrate also reads the published `daily_range:{SYM}`
//! of every symbol the shard has published (the checkpoint's, and a symbol list each owner
//! appends to before a symbol's first values go out) and keeps whichever is newer.

use std::collections::BTreeSet;
use std::time::Duration;

use actix::{
    Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, Recipient,
    ResponseActFuture, WrapFuture,
};
use bytes::Bytes;

use super::enricher::{retry_after_secs, Enrich, Enriched, EnricherHandle, Seeds, SeedsFor};
use super::metrics::ShardFigures;
use crate::analyzers::calendar::TradingCalendar;
use crate::analyzers::shard::{Checkpoint, ShardConfig, ShardState};
use crate::metrics::ActorMetrics;
use crate::queue::EventBatch;
use crate::recipient::CountedRecipient;
use crate::store::{CacheWrite, Store, StoreError, Stored, Write, ALL};

/// How long checkpoints are kept: long enough for any takeover, bounded if shards shrink.
pub const CHECKPOINT_TTL_SECS: u64 = 2 * 86_400;
/// How long a shard's leaderboard candidates stay valid without being refreshed.
pub const BOARD_TTL_SECS: u64 = 86_400;

/// State-store key of a shard's checkpoint.
pub fn checkpoint_key(prefix: &str, shard: u16) -> String {
    format!("{prefix}processor:checkpoint:{shard}")
}

/// State-store key of the list of symbols a shard has published values for (each pushed
/// once per owner, before its first values are sent): a new owner reads their published
/// values even for symbols its checkpoint has not caught yet.
pub fn symbols_key(prefix: &str, shard: u16) -> String {
    format!("{prefix}processor:symbols:{shard}")
}

/// Most symbols kept in a shard's symbol list (duplicates from several owners included).
const SYMBOLS_CAP: usize = 200_000;
/// How many published values one read asks for.
const PUBLISHED_READ_CHUNK: usize = 1000;

/// State-store key of a shard's leaderboard candidates.
pub fn board_key(prefix: &str, shard: u16) -> String {
    format!("{prefix}processor:board:{shard}")
}

/// State-store key of a shard's top-trades statistics.
pub fn trades_key(prefix: &str, shard: u16) -> String {
    format!("{prefix}processor:tta:{shard}")
}

/// Load the shard's checkpoint and keep whatever in it is newer than ours.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Rehydrate;

/// Store the checkpoint and candidates now (before handing the shard over); answers when
/// they are stored.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Flush;

/// New trading-calendar knowledge from market status.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct CalendarUpdate(pub TradingCalendar);

/// Processor settings.
#[derive(Clone)]
pub struct ProcessorConfig {
    pub shard: u16,
    /// Shards in the cluster (which of the day's seeds are this shard's).
    pub shards: u16,
    pub analyzers: ShardConfig,
    /// State-store key prefix (checkpoints, candidates).
    pub state_prefix: String,
    pub checkpoint_every: Duration,
    /// Where the day's minute bars come from for back-fills (with `analyzers.backfill`).
    pub rest: Option<RestAccess>,
}

/// Massive REST for the shard's back-fills: base URL and key (sent in a header).
#[derive(Clone)]
pub struct RestAccess {
    pub url: String,
    pub api_key: String,
}

/// Back-fills one shard runs at once: its symbols' minute bars are fetched a few at a time,
/// the most active first (they are first seen first).
const BACKFILL_CONCURRENCY: usize = 2;
/// The pause before a failed back-fill is tried again (unless the server says how long).
const BACKFILL_RETRY: Duration = Duration::from_secs(5);

/// How the other actors reach one shard's processor: its events through a counted
/// recipient, its controls as plain recipients, so none of them holds its address.
#[derive(Clone)]
pub struct ShardHandle {
    pub batches: CountedRecipient<EventBatch>,
    pub rehydrate: Recipient<Rehydrate>,
    pub flush: Recipient<Flush>,
    pub calendar: Recipient<CalendarUpdate>,
}

impl ShardHandle {
    pub fn of(addr: &Addr<ShardProcessor>, actor: ActorMetrics) -> Self {
        ShardHandle {
            batches: CountedRecipient::of(addr, actor),
            rehydrate: addr.clone().recipient(),
            flush: addr.clone().recipient(),
            calendar: addr.clone().recipient(),
        }
    }
}

pub struct ShardProcessor {
    cfg: ProcessorConfig,
    state: ShardState,
    /// Where results go: the client-facing keys and channels (WDC).
    results_store: Store,
    /// Where the shard's own state goes: checkpoints, candidates (MDC).
    state_store: Store,
    enricher: Option<EnricherHandle>,
    /// The market day (04:00 ET, ms) whose seeds were asked for.
    seeds_asked: i64,
    actor: ActorMetrics,
    figures: ShardFigures,
    writing_checkpoint: bool,
    /// When the last checkpoint was taken (a busy write defers it to the next tick).
    last_checkpoint: std::time::Instant,
    /// Back-fills waiting, and under way.
    backfill_queue: std::collections::VecDeque<(String, i64)>,
    backfills_active: usize,
}

impl ShardProcessor {
    pub fn new(
        cfg: ProcessorConfig,
        results_store: Store,
        state_store: Store,
        enricher: Option<EnricherHandle>,
        (actor, figures): (ActorMetrics, ShardFigures),
    ) -> Self {
        ShardProcessor {
            state: ShardState::new(cfg.analyzers.clone()),
            results_store,
            state_store,
            enricher,
            seeds_asked: 0,
            actor,
            figures,
            cfg,
            writing_checkpoint: false,
            last_checkpoint: std::time::Instant::now(),
            backfill_queue: std::collections::VecDeque::new(),
            backfills_active: 0,
        }
    }

    /// Starts waiting back-fills up to the concurrency: the day's minute bars from its
    /// 04:00 ET to now, then handed to the analyzers.
    fn pump_backfills(&mut self, ctx: &mut Context<Self>) {
        let Some(rest) = self.cfg.rest.clone() else {
            return;
        };
        while self.backfills_active < BACKFILL_CONCURRENCY {
            let Some((sym, day_ms)) = self.backfill_queue.pop_front() else {
                break;
            };
            self.backfills_active += 1;
            // The whole market day: REST answers only what has happened (and a replayed or
            // simulated day's clock need not be the wall clock's).
            let url = format!(
                "{}/v2/aggs/ticker/{sym}/range/1/minute/{day_ms}/{}?adjusted=true&sort=asc&limit=50000",
                rest.url.trim_end_matches('/'),
                day_ms + 86_400_000 - 1
            );
            // A client per fetch: a client cannot move between threads, and back-fills are
            // a few hundred per day and node.
            let req = awc::Client::builder()
                .timeout(Duration::from_secs(20))
                .finish()
                .get(url)
                .insert_header(("Authorization", format!("Bearer {}", rest.api_key)))
                .send();
            let fut = async move {
                let mut resp = req.await.map_err(|e| (e.to_string(), None))?;
                match resp.status().as_u16() {
                    200 => {}
                    404 => return Ok(Vec::new()),
                    s => {
                        // A rate limit's Retry-After says when to ask again.
                        let wait = resp
                            .headers()
                            .get("retry-after")
                            .and_then(|v| v.to_str().ok())
                            .and_then(retry_after_secs);
                        return Err((format!("HTTP {s}"), wait));
                    }
                }
                let body: serde_json::Value = resp
                    .json()
                    .limit(32 << 20)
                    .await
                    .map_err(|e| (e.to_string(), None))?;
                Ok(minute_bars(&body))
            };
            ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
                act.backfills_active -= 1;
                match res {
                    Ok(bars) => {
                        let mut out = Vec::new();
                        act.state.backfilled(&sym, day_ms, &bars, &mut out);
                        act.figures.backfills.inc();
                        if !out.is_empty() {
                            act.results_store.write.do_send(Write(out));
                        }
                    }
                    Err((e, wait)) => {
                        // Asked again after a pause (the server's Retry-After, at most a
                        // minute), not at once: the symbol's alerts stay held meanwhile.
                        act.figures.backfill_failed(&sym, &e);
                        let wait = wait.unwrap_or(BACKFILL_RETRY);
                        ctx.run_later(wait, move |act, ctx| {
                            act.backfill_queue.push_back((sym, day_ms));
                            act.pump_backfills(ctx);
                        });
                    }
                }
                act.pump_backfills(ctx);
            }));
        }
    }

    /// Loads the checkpoint, then the published values of every symbol the shard has
    /// published (the checkpoint's and the symbol list's) and keeps whichever is newer, so
    /// that nothing a browser has seen moves back. The mailbox waits until done (events
    /// wait, in order).
    fn rehydrate(&mut self, ctx: &mut Context<Self>) {
        let store = self.state_store.clone();
        let (prefix, shard) = (&self.cfg.state_prefix, self.cfg.shard);
        let (key, list) = (checkpoint_key(prefix, shard), symbols_key(prefix, shard));
        let load = async move {
            let cp = store.get(vec![key]).await.map(|mut v| v.pop().flatten());
            let listed = store.read(&list, ALL).await;
            (cp, listed)
        };
        ctx.wait(load.into_actor(self).then(|(cp, listed), act, _| {
            let shard = act.cfg.shard;
            match cp {
                Ok(Some(b)) => match Checkpoint::decode(&b) {
                    Ok(cp) => {
                        let n = act.state.rehydrate(cp);
                        act.figures.rehydrated(shard, n, act.state.symbols());
                    }
                    Err(e) => act.figures.checkpoint_unreadable(shard, &e),
                },
                Ok(None) => {}
                Err(e) => act.figures.checkpoint_unavailable(shard, &e),
            }
            let mut symbols: BTreeSet<String> = act.state.symbol_names().collect();
            match listed {
                Ok(Some(Stored::List(items))) => {
                    for item in items {
                        let text = String::from_utf8_lossy(&item);
                        symbols
                            .extend(text.split('\n').filter(|s| !s.is_empty()).map(String::from));
                    }
                }
                Ok(_) => {}
                Err(e) => act.figures.checkpoint_unavailable(shard, &e),
            }
            let keys: Vec<String> = symbols.iter().map(|s| act.state.published_key(s)).collect();
            let results = act.results_store.clone();
            async move {
                let mut values = Vec::with_capacity(keys.len());
                for chunk in keys.chunks(PUBLISHED_READ_CHUNK) {
                    values.extend(results.get(chunk.to_vec()).await?);
                }
                Ok::<_, StoreError>(values)
            }
            .into_actor(act)
            .map(move |values, act, _| match values {
                Ok(values) => {
                    let folded = values
                        .iter()
                        .flatten()
                        .filter(|v| act.state.fold_published(v))
                        .count();
                    act.figures
                        .published_folded(act.cfg.shard, folded, symbols.len());
                }
                Err(e) => act.figures.checkpoint_unavailable(act.cfg.shard, &e),
            })
        }));
    }

    /// Hands results to the results store (fire and forget: the store counts what it cannot
    /// write).
    fn write_results(&mut self, out: Vec<CacheWrite>) {
        if !out.is_empty() {
            self.actor.messages_out.inc();
            self.results_store.write.do_send(Write(out));
        }
    }

    /// Sends the results of a batch. A batch that met symbols for the first time first
    /// lists them under [`symbols_key`] (awaited, the mailbox waiting): a new owner must
    /// find every symbol whose values were published. If the list cannot be written the
    /// results go anyway (freshness first) and the failure is counted.
    fn send_results(&mut self, out: Vec<CacheWrite>, ctx: &mut Context<Self>) {
        let new = self.state.take_new_symbols();
        if new.is_empty() {
            self.write_results(out);
            return;
        }
        let list = CacheWrite {
            publish: false,
            ..CacheWrite::push(
                symbols_key(&self.cfg.state_prefix, self.cfg.shard),
                Bytes::from(new.join("\n")),
                SYMBOLS_CAP,
                CHECKPOINT_TTL_SECS,
                0,
            )
        };
        let store = self.state_store.clone();
        ctx.wait(
            async move { store.put(list).await }
                .into_actor(self)
                .map(move |res, act, _| {
                    if res.is_err() {
                        act.figures.state_writes_failed(act.cfg.shard, 1);
                    }
                    act.write_results(out);
                }),
        );
    }

    /// The writes that publish the shard's candidates, trade statistics and (if `force` or
    /// due) checkpoint.
    fn state_writes(&mut self, checkpoint: bool) -> Vec<CacheWrite> {
        let p = &self.cfg.state_prefix;
        let shard = self.cfg.shard;
        let mut out = Vec::new();
        if let Some(b) = self.state.board() {
            out.push(CacheWrite::unpublished(
                board_key(p, shard),
                Bytes::from(b.encode()),
                BOARD_TTL_SECS,
            ));
        }
        if self.cfg.analyzers.top_trades {
            let stats = self.state.trade_stats();
            if let Ok(b) = rmp_serde::to_vec(&stats) {
                out.push(CacheWrite::unpublished(
                    trades_key(p, shard),
                    Bytes::from(b),
                    60,
                ));
            }
        }
        if checkpoint {
            if let Some(cp) = self.state.checkpoint() {
                out.push(CacheWrite::unpublished(
                    checkpoint_key(p, shard),
                    Bytes::from(cp.encode()),
                    CHECKPOINT_TTL_SECS,
                ));
            }
        }
        out
    }

    fn store_state(&mut self, ctx: &mut Context<Self>, checkpoint: bool) {
        if self.writing_checkpoint {
            return;
        }
        if checkpoint {
            // Due now even if nothing changed (then nothing is written).
            self.last_checkpoint = std::time::Instant::now();
        }
        let writes = self.state_writes(checkpoint);
        if writes.is_empty() {
            return;
        }
        self.writing_checkpoint = true;
        let store = self.state_store.clone();
        ctx.spawn(
            async move {
                let mut failed = 0;
                for w in writes {
                    if store.put(w).await.is_err() {
                        failed += 1;
                    }
                }
                failed
            }
            .into_actor(self)
            .map(|failed, act, _| {
                act.writing_checkpoint = false;
                if failed > 0 {
                    act.figures.state_writes_failed(act.cfg.shard, failed);
                }
            }),
        );
    }
}

impl Actor for ShardProcessor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(1024);
        self.rehydrate(ctx);
        // One timer: two (candidates every second, checkpoints every `checkpoint_every`)
        // fired in the same poll, and the busy flag made the second skip, for good.
        let every = self
            .cfg
            .checkpoint_every
            .clamp(Duration::from_millis(100), Duration::from_secs(1));
        ctx.run_interval(every, |act, ctx| {
            let due = act.last_checkpoint.elapsed() >= act.cfg.checkpoint_every;
            act.store_state(ctx, due)
        });
    }
}

impl Handler<EventBatch> for ShardProcessor {
    type Result = ();

    fn handle(&mut self, batch: EventBatch, ctx: &mut Context<Self>) {
        self.actor.received();
        let lag = chrono::Utc::now().timestamp_millis() - batch.received_at_ms;
        self.figures.queue_latency.observe(lag as f64);
        let mut out = Vec::with_capacity(batch.events.len() * 2);
        let mut enrich = Vec::new();
        for (i, raw) in batch.events.iter().enumerate() {
            // One typed pass: the envelope decode already cut the element out.
            match self
                .state
                .apply_raw(batch.market, i, raw, batch.received_at_ms, &mut out)
            {
                Ok(o) => {
                    self.figures.stale.add(o.stale);
                    self.figures.alerts.add(o.alerts);
                    self.figures.held_alerts.add(o.held);
                    enrich.extend(o.enrich);
                    self.backfill_queue.extend(o.backfill);
                }
                Err(e) => {
                    self.figures.undecodable(self.cfg.shard, &e);
                    self.actor.errors.inc();
                }
            }
        }
        self.figures.events.add(batch.events.len() as u64);
        self.figures.symbols.set(self.state.symbols() as i64);
        self.figures.lag.set(lag);
        self.send_results(out, ctx);
        self.pump_backfills(ctx);
        if let Some(e) = &self.enricher {
            let day = self.state.calendar.market_day(self.state.clock_ms());
            for symbol in enrich {
                e.enrich.do_send(Enrich {
                    symbol,
                    day,
                    reply: ctx.address().recipient(),
                });
            }
            // A new market day: the tickers not seen trading join the boards from its seeds.
            if self.state.day_ms() > self.seeds_asked {
                self.seeds_asked = self.state.day_ms();
                e.seeds.do_send(SeedsFor {
                    day: self.state.calendar.market_day(self.seeds_asked),
                    reply: ctx.address().recipient(),
                });
            }
        }
    }
}

impl Handler<Seeds> for ShardProcessor {
    type Result = ();

    fn handle(&mut self, msg: Seeds, _: &mut Context<Self>) {
        self.actor.handled();
        let (shard, shards) = (self.cfg.shard, self.cfg.shards);
        let mut taken = 0;
        for seed in msg.seeds.iter() {
            if crate::queue::shard_of(&seed.symbol, shards) == shard && self.state.seed(seed) {
                taken += 1;
            }
        }
        if taken > 0 {
            log::info!(
                "shard {shard}: {taken} symbols not seen trading join the boards from the snapshot of {}",
                msg.day
            );
        }
        self.figures.seeded.add(taken);
        self.figures.symbols.set(self.state.symbols() as i64);
    }
}

impl Handler<Enriched> for ShardProcessor {
    type Result = ();

    fn handle(&mut self, msg: Enriched, _: &mut Context<Self>) {
        self.actor.handled();
        let mut out = Vec::new();
        match msg.enrichment {
            Some(e) => self.state.enriched(&msg.symbol, e, &mut out),
            None => self.state.enrichment_failed(&msg.symbol),
        }
        if !out.is_empty() {
            self.results_store.write.do_send(Write(out));
        }
    }
}

impl Handler<Rehydrate> for ShardProcessor {
    type Result = ();

    fn handle(&mut self, _: Rehydrate, ctx: &mut Context<Self>) {
        self.actor.handled();
        self.rehydrate(ctx);
    }
}

impl Handler<Flush> for ShardProcessor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Flush, _: &mut Context<Self>) -> Self::Result {
        self.actor.handled();
        let writes = self.state_writes(true);
        let store = self.state_store.clone();
        Box::pin(
            async move {
                for w in writes {
                    let _ = store.put(w).await;
                }
            }
            .into_actor(self),
        )
    }
}

impl Handler<CalendarUpdate> for ShardProcessor {
    type Result = ();

    fn handle(&mut self, msg: CalendarUpdate, _: &mut Context<Self>) {
        self.actor.handled();
        self.state.calendar = msg.0;
    }
}

/// (start ms, open, high, low) of each bar of a REST aggregates answer; unreadable bars are
/// skipped.
fn minute_bars(body: &serde_json::Value) -> Vec<(i64, f64, f64, f64)> {
    body.get("results")
        .and_then(serde_json::Value::as_array)
        .map(|bars| {
            bars.iter()
                .filter_map(|b| {
                    Some((
                        b.get("t")?.as_i64()?,
                        b.get("o")?.as_f64()?,
                        b.get("h")?.as_f64()?,
                        b.get("l")?.as_f64()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}
