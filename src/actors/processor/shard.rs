//! Processor actor: owns one shard's symbols and runs the analyzers on its events.
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

use std::time::Duration;

use actix::{
    Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, ResponseActFuture, WrapFuture,
};
use bytes::Bytes;

use super::enricher::{Enrich, Enriched};
use crate::analyzers::calendar::TradingCalendar;
use crate::analyzers::shard::{Checkpoint, ShardConfig, ShardState};
use crate::metrics::{ActorMetrics, Counter, Gauge, Histogram, Registry};
use crate::queue::EventBatch;
use crate::store::{CacheWrite, Store, Write};

/// How long checkpoints are kept: long enough for any takeover, bounded if shards shrink.
pub const CHECKPOINT_TTL_SECS: u64 = 2 * 86_400;
/// How long a shard's leaderboard candidates stay valid without being refreshed.
pub const BOARD_TTL_SECS: u64 = 86_400;

/// State-store key of a shard's checkpoint.
pub fn checkpoint_key(prefix: &str, shard: u16) -> String {
    format!("{prefix}processor:checkpoint:{shard}")
}

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
    pub analyzers: ShardConfig,
    /// State-store key prefix (checkpoints, candidates).
    pub state_prefix: String,
    pub checkpoint_every: Duration,
}

struct Counters {
    events: Counter,
    decode_errors: Counter,
    stale: Counter,
    alerts: Counter,
    rehydrated: Counter,
    checkpoint_errors: Counter,
    symbols: Gauge,
    lag: Gauge,
    /// Listener receive to this processor taking the batch: the queue part of the hop.
    queue_latency: Histogram,
}

pub struct Processor {
    cfg: ProcessorConfig,
    state: ShardState,
    results: Store,
    store: Store,
    enricher: Option<crate::recipient::CountedRecipient<Enrich>>,
    metrics: ActorMetrics,
    c: Counters,
    writing_checkpoint: bool,
}

impl Processor {
    pub fn new(
        cfg: ProcessorConfig,
        results: Store,
        store: Store,
        enricher: Option<crate::recipient::CountedRecipient<Enrich>>,
        registry: &Registry,
    ) -> Self {
        let shard = cfg.shard.to_string();
        let l = [("shard", shard.as_str())];
        let c = |n: &str, h: &str| registry.counter(n, h, &l);
        Processor {
            state: ShardState::new(cfg.analyzers.clone()),
            results,
            store,
            enricher,
            metrics: ActorMetrics::new(registry, &format!("processor_{}", cfg.shard)),
            c: Counters {
                events: c("tickwire_processor_events_total", "Events processed"),
                decode_errors: c(
                    "tickwire_processor_decode_errors_total",
                    "Events skipped because they could not be decoded",
                ),
                stale: c(
                    "tickwire_processor_stale_total",
                    "Aggregates skipped as older than the symbol's newest",
                ),
                alerts: c("tickwire_processor_alerts_total", "HOD/LOD alerts raised"),
                rehydrated: c(
                    "tickwire_processor_rehydrated_symbols_total",
                    "Symbols taken from a checkpoint",
                ),
                checkpoint_errors: c(
                    "tickwire_processor_checkpoint_errors_total",
                    "Checkpoints or candidates that could not be stored or read",
                ),
                symbols: registry.gauge("tickwire_processor_symbols", "Symbols held in memory", &l),
                lag: registry.gauge(
                    "tickwire_processor_lag_ms",
                    "Processing time minus listener receive time of the last batch (ms)",
                    &l,
                ),
                queue_latency: registry.histogram(
                    "tickwire_processor_queue_latency_ms",
                    "Listener receive to the processor taking the batch (ms)",
                    &l,
                ),
            },
            cfg,
            writing_checkpoint: false,
        }
    }

    pub fn metrics(&self) -> ActorMetrics {
        self.metrics.clone()
    }

    /// Loads the checkpoint, blocking the mailbox until done (events wait, in order).
    fn rehydrate(&mut self, ctx: &mut Context<Self>) {
        let store = self.store.clone();
        let key = checkpoint_key(&self.cfg.state_prefix, self.cfg.shard);
        ctx.wait(
            async move { store.get(vec![key]).await }
                .into_actor(self)
                .map(|res, act, _| match res.map(|mut v| v.pop().flatten()) {
                    Ok(Some(b)) => match Checkpoint::decode(&b) {
                        Ok(cp) => {
                            let n = act.state.rehydrate(cp);
                            act.c.rehydrated.add(n as u64);
                            act.c.symbols.set(act.state.symbols() as i64);
                            log::info!(
                                "shard {}: {n} symbols rehydrated from the checkpoint",
                                act.cfg.shard
                            );
                        }
                        Err(e) => {
                            act.c.checkpoint_errors.inc();
                            log::warn!(
                                "shard {}: unreadable checkpoint skipped: {e}",
                                act.cfg.shard
                            );
                        }
                    },
                    Ok(None) => {}
                    Err(e) => {
                        act.c.checkpoint_errors.inc();
                        log::warn!(
                            "shard {}: could not read the checkpoint: {e}",
                            act.cfg.shard
                        );
                    }
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
        let writes = self.state_writes(checkpoint);
        if writes.is_empty() {
            return;
        }
        self.writing_checkpoint = true;
        let store = self.store.clone();
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
                    act.c.checkpoint_errors.add(failed);
                    log::warn!("shard {}: {failed} state writes failed", act.cfg.shard);
                }
            }),
        );
    }
}

impl Actor for Processor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(1024);
        self.rehydrate(ctx);
        ctx.run_interval(Duration::from_secs(1), |act, ctx| {
            act.store_state(ctx, false)
        });
        ctx.run_interval(self.cfg.checkpoint_every, |act, ctx| {
            act.store_state(ctx, true)
        });
    }
}

impl Handler<EventBatch> for Processor {
    type Result = ();

    fn handle(&mut self, batch: EventBatch, ctx: &mut Context<Self>) {
        self.metrics.received();
        let lag = chrono::Utc::now().timestamp_millis() - batch.received_at_ms;
        self.c.queue_latency.observe(lag as f64);
        let mut out = Vec::with_capacity(batch.events.len() * 2);
        let mut enrich = Vec::new();
        for (i, raw) in batch.events.iter().enumerate() {
            // One typed pass: the envelope decode already cut the element out.
            match self
                .state
                .apply_raw(batch.market, i, raw, batch.received_at_ms, &mut out)
            {
                Ok(o) => {
                    self.c.stale.add(o.stale);
                    self.c.alerts.add(o.alerts);
                    enrich.extend(o.enrich);
                }
                Err(e) => {
                    if self.c.decode_errors.get() % 1000 == 0 {
                        log::warn!(
                            "shard {}: skipping an undecodable event: {e}",
                            self.cfg.shard
                        );
                    }
                    self.c.decode_errors.inc();
                    self.metrics.errors.inc();
                }
            }
        }
        self.c.events.add(batch.events.len() as u64);
        self.c.symbols.set(self.state.symbols() as i64);
        self.c.lag.set(lag);
        if !out.is_empty() {
            self.metrics.messages_out.inc();
            self.results.write.do_send(Write(out));
        }
        if let Some(e) = &self.enricher {
            let day = self.state.calendar.market_day(self.state.clock_ms());
            for symbol in enrich {
                e.do_send(Enrich {
                    symbol,
                    day,
                    reply: ctx.address().recipient(),
                });
            }
        }
    }
}

impl Handler<Enriched> for Processor {
    type Result = ();

    fn handle(&mut self, msg: Enriched, _: &mut Context<Self>) {
        self.metrics.handled();
        let mut out = Vec::new();
        match msg.enrichment {
            Some(e) => self.state.enriched(&msg.symbol, e, &mut out),
            None => self.state.enrichment_failed(&msg.symbol),
        }
        if !out.is_empty() {
            self.results.write.do_send(Write(out));
        }
    }
}

impl Handler<Rehydrate> for Processor {
    type Result = ();

    fn handle(&mut self, _: Rehydrate, ctx: &mut Context<Self>) {
        self.metrics.handled();
        self.rehydrate(ctx);
    }
}

impl Handler<Flush> for Processor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Flush, _: &mut Context<Self>) -> Self::Result {
        self.metrics.handled();
        let writes = self.state_writes(true);
        let store = self.store.clone();
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

impl Handler<CalendarUpdate> for Processor {
    type Result = ();

    fn handle(&mut self, msg: CalendarUpdate, _: &mut Context<Self>) {
        self.metrics.handled();
        self.state.calendar = msg.0;
    }
}
