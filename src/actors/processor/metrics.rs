//! Every figure the processor node counts, declared once, and the occurrences that both log
//! and count. [`ProcessorFigures`] is the node's typed view: its readiness checks, `/health`
//! and `/stats` read these handles, not metric names.

use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::actors::store::metrics::CacheWriterFigures;
use crate::analyzers::leaderboard::Board;
use crate::figures;
use crate::metrics::{ActorMetrics, Counter, Gauge, Histogram, Registry};
use crate::queue::{QueueKind, QUEUE_NAMES};

figures! {
    /// The queue consumer.
    pub struct ConsumerFigures {
        /// The consumer actor's mailbox and messages
        pub actor: ActorMetrics = "queue_consumer";
        /// Queue messages handled and acked
        pub messages: Counter = "tickwire_consumer_messages_total";
        /// Queue messages rejected without requeue (not a readable envelope)
        pub rejected: Counter = "tickwire_consumer_rejected_total";
        /// Connections made to RabbitMQ
        pub connects: Counter = "tickwire_consumer_connects_total";
        /// Failed attempts to connect to RabbitMQ
        pub connect_errors: Counter = "tickwire_consumer_connect_errors_total";
        /// Queues consumed again after their consumption ended on a live connection
        pub queue_restarts: Counter = "tickwire_consumer_queue_restarts_total";
        /// 1 while connected to RabbitMQ
        pub connected: Gauge = "tickwire_consumer_connected";
        /// Queues being consumed
        pub queues: Gauge = "tickwire_consumer_queues";
        /// Queue messages that expired unconsumed (counted from the dead-letter queue), by queue
        pub expired: Counter = "tickwire_consumer_expired_messages_total", by "queue" in &QUEUE_NAMES;
        /// Events in queue messages that expired unconsumed, by queue
        pub expired_events: Counter = "tickwire_consumer_expired_events_total", by "queue" in &QUEUE_NAMES;
        /// News articles that expired in the `news` queue before any processor took them
        pub expired_news: Counter = "tickwire_consumer_expired_news_total";
        /// Dead-lettered messages neither expired nor rejected here (a limit, an unknown queue)
        pub dead_lettered: Counter = "tickwire_consumer_dead_lettered_other_total";
    }
}

impl ConsumerFigures {
    pub fn connect_failed(&self, error: &str, retry_in: std::time::Duration) {
        self.connect_errors.inc();
        log::warn!("consumer could not connect to RabbitMQ ({error}); retrying in {retry_in:?}");
    }

    /// A message that is not an envelope: rejected (it would fail on any node), counted; the
    /// first and every 1,000th logged.
    pub fn rejected(&self, kind: QueueKind, shard: u16, error: &dyn std::fmt::Display) {
        if self.rejected.get().is_multiple_of(1000) {
            log::warn!("rejecting a message on {}.{shard}: {error}", kind.name());
        }
        self.rejected.inc();
    }

    /// A message of `kind`.`shard` expired before any processor took it: counted (messages
    /// and events); the first and every 1,000th logged.
    pub fn expired(&self, kind: QueueKind, shard: u16, events: usize) {
        let Some(c) = self.expired.at(kind.index()) else {
            return;
        };
        let n = c.get();
        c.inc();
        if let Some(e) = self.expired_events.at(kind.index()) {
            e.add(events as u64);
        }
        if n.is_multiple_of(1000) {
            log::warn!(
                "{}.{shard}: a message of {events} events expired unconsumed ({} on {})",
                kind.name(),
                n + 1,
                kind.name()
            );
        }
    }

    /// A dead-lettered message that is neither an expiry nor a rejection (those are counted
    /// where they happen). `reason` is only logged (taken as `Debug`, so this file need not
    /// know the dead-letter reasons).
    /// A news article expired unconsumed (no processor node for the news TTL).
    pub fn news_expired(&self) {
        if self.expired_news.get().is_multiple_of(100) {
            log::warn!("a news article expired unconsumed (no processor took the news queue)");
        }
        self.expired_news.inc();
    }

    pub fn dead_lettered(&self, reason: &dyn std::fmt::Debug, routing_key: &str) {
        if self.dead_lettered.get().is_multiple_of(1000) {
            log::warn!("dead-lettered message from {routing_key:?} ({reason:?})");
        }
        self.dead_lettered.inc();
    }

    pub fn expired_count_ended(&self, error: Option<lapin::Error>, retry_in: std::time::Duration) {
        self.queue_restarts.inc();
        match error {
            Some(e) => log::warn!("counting expired messages failed ({e}); again in {retry_in:?}"),
            None => log::warn!("counting expired messages ended; again in {retry_in:?}"),
        }
    }

    pub fn queue_restarted(&self, kind: QueueKind, shard: u16, delay: std::time::Duration) {
        self.queue_restarts.inc();
        log::warn!(
            "{}.{shard} is no longer consumed; consuming it again in {delay:?}",
            kind.name()
        );
    }
}

figures! {
    /// One shard's processor (label `shard`; its actor figures are `processor_<shard>`).
    pub struct ShardFigures {
        /// Events processed
        pub events: Counter = "tickwire_processor_events_total";
        /// Events skipped because they could not be decoded
        pub decode_errors: Counter = "tickwire_processor_decode_errors_total";
        /// Aggregates skipped as older than the symbol's newest
        pub stale: Counter = "tickwire_processor_stale_total";
        /// HOD/LOD alerts raised
        pub alerts: Counter = "tickwire_processor_alerts_total";
        /// HOD/LOD alerts held back: their symbol's day was not back-filled yet
        pub held_alerts: Counter = "tickwire_processor_held_alerts_total";
        /// Symbols whose day so far was back-filled from minute bars
        pub backfills: Counter = "tickwire_processor_backfills_total";
        /// Back-fills that failed (tried again after a pause)
        pub backfill_errors: Counter = "tickwire_processor_backfill_errors_total";
        /// Symbols not seen trading that joined the leaderboards from the day's snapshot
        pub seeded: Counter = "tickwire_processor_seeded_symbols_total";
        /// Symbols taken from a checkpoint
        pub rehydrated: Counter = "tickwire_processor_rehydrated_symbols_total";
        /// Symbols whose published values were newer than the checkpoint (taken from them)
        pub rehydrated_published: Counter = "tickwire_processor_rehydrated_published_total";
        /// Checkpoints or candidates that could not be stored or read
        pub checkpoint_errors: Counter = "tickwire_processor_checkpoint_errors_total";
        /// Symbols held in memory
        pub symbols: Gauge = "tickwire_processor_symbols";
        /// Processing time minus listener receive time of the last batch (ms)
        pub lag: Gauge = "tickwire_processor_lag_ms";
        /// Listener receive to the processor taking the batch (ms)
        pub queue_latency: Histogram = "tickwire_processor_queue_latency_ms";
    }
}

impl ShardFigures {
    pub fn backfill_failed(&self, symbol: &str, error: &str) {
        if self.backfill_errors.get().is_multiple_of(100) {
            log::warn!("back-filling {symbol} failed ({error}); its alerts stay held, tried again after a pause");
        }
        self.backfill_errors.inc();
    }

    pub fn for_shard(r: &Registry, shard: u16) -> (ActorMetrics, Self) {
        let s = shard.to_string();
        (
            ActorMetrics::new(r, &format!("processor_{shard}")),
            Self::register(r, &[("shard", s.as_str())]),
        )
    }

    pub fn rehydrated(&self, shard: u16, symbols: usize, held: usize) {
        self.rehydrated.add(symbols as u64);
        self.symbols.set(held as i64);
        log::info!("shard {shard}: {symbols} symbols rehydrated from the checkpoint");
    }

    /// `folded` symbols' published values were newer than the checkpoint (`looked_up`
    /// symbols read): the previous owner published them after its last checkpoint.
    pub fn published_folded(&self, shard: u16, folded: usize, looked_up: usize) {
        self.rehydrated_published.add(folded as u64);
        if folded > 0 {
            log::info!(
                "shard {shard}: {folded} of {looked_up} symbols carried on from their published values (newer than the checkpoint)"
            );
        }
    }

    pub fn checkpoint_unreadable(&self, shard: u16, error: &dyn std::fmt::Display) {
        self.checkpoint_errors.inc();
        log::warn!("shard {shard}: unreadable checkpoint skipped: {error}");
    }

    pub fn checkpoint_unavailable(&self, shard: u16, error: &dyn std::fmt::Display) {
        self.checkpoint_errors.inc();
        log::warn!("shard {shard}: could not read the checkpoint: {error}");
    }

    pub fn state_writes_failed(&self, shard: u16, failed: u64) {
        self.checkpoint_errors.add(failed);
        log::warn!("shard {shard}: {failed} state writes failed");
    }

    /// An event that does not decode: skipped and counted; the first and every 1,000th
    /// logged.
    pub fn undecodable(&self, shard: u16, error: &dyn std::fmt::Display) {
        if self.decode_errors.get().is_multiple_of(1000) {
            log::warn!("shard {shard}: skipping an undecodable event: {error}");
        }
        self.decode_errors.inc();
    }

    /// The reference's worker item for `/stats` and `/health` (`processors[]`).
    pub fn describe(&self, shard: u16) -> serde_json::Value {
        json!({
            "name": format!("processor_{shard}"),
            "alive": true,
            "processed": self.events.get(),
            "decoding_errors": self.decode_errors.get(),
            "stale": self.stale.get(),
            "alerts": self.alerts.get(),
            "symbols": self.symbols.get(),
            "lag_ms": self.lag.get(),
            "rehydrated": self.rehydrated.get(),
            "rehydrated_published": self.rehydrated_published.get(),
        })
    }
}

figures! {
    /// The pool that owns the shard processors.
    pub struct PoolFigures {
        /// The pool actor's mailbox and messages
        pub actor: ActorMetrics = "processor_pool";
    }
}

figures! {
    /// REST enrichment (previous day, average volume, float).
    pub struct EnricherFigures {
        /// The enricher actor's mailbox and messages
        pub actor: ActorMetrics = "enricher";
        /// Massive REST calls made for enrichment, by endpoint (`snapshot_all`, `grouped` and
        /// `float_all` warm the whole market; `snapshot`, `range`, `float` are per ticker)
        pub calls: Counter = "tickwire_enrich_rest_calls_total",
            by "endpoint" in &["snapshot_all", "grouped", "float_all", "snapshot", "range", "float"];
        /// Tickers whose values a bulk warm-up wrote
        pub warmed_tickers: Counter = "tickwire_enrich_warmed_tickers_total";
        /// Bulk warm-ups that failed (tickers then fetched one by one)
        pub warm_errors: Counter = "tickwire_enrich_warm_errors_total";
        /// REST calls retried after 413/429/499/5xx
        pub retries: Counter = "tickwire_enrich_rest_retries_total";
        /// Tickers answered from the cache
        pub cache_hits: Counter = "tickwire_enrich_cache_hits_total";
        /// Values Massive had no data for (cached as 0)
        pub negative: Counter = "tickwire_enrich_negative_total";
        /// Tickers whose enrichment could not be fetched
        pub failures: Counter = "tickwire_enrich_failures_total";
        /// Tickers waiting for a fetch slot
        pub queued: Gauge = "tickwire_enrich_queued";
        /// Tickers in the day's board seeds this node read (the warm-up's snapshot)
        pub seeds: Gauge = "tickwire_enrich_seeds";
    }
}

impl EnricherFigures {
    pub fn call(&self, endpoint: &str) {
        self.calls.inc(endpoint);
    }

    pub fn warmed(&self, tickers: usize, took: std::time::Duration) {
        self.warmed_tickers.add(tickers as u64);
        log::info!("enrichment cache warmed for {tickers} tickers in {took:?}");
    }

    pub fn warm_failed(&self, error: &dyn std::fmt::Display) {
        self.warm_errors.inc();
        log::warn!("warming the enrichment cache failed ({error}); tickers are fetched one by one");
    }

    pub fn failed(&self, symbol: &str, error: &dyn std::fmt::Display) {
        self.failures.inc();
        self.actor.errors.inc();
        log::warn!("enrichment of {symbol} failed: {error}");
    }
}

figures! {
    /// The market-status poller (trading calendar).
    pub struct MarketStatusFigures {
        /// Market status calls
        pub polls: Counter = "tickwire_market_status_polls_total";
        /// Market status calls that failed or were unreadable
        pub errors: Counter = "tickwire_market_status_errors_total";
    }
}

figures! {
    /// Shard leases and the node group.
    pub struct ShardManagerFigures {
        /// The shard manager's mailbox and messages
        pub actor: ActorMetrics = "shard_manager";
        /// Shards this node consumes
        pub held: Gauge = "tickwire_shards_held";
        /// Live processor nodes seen
        pub nodes: Gauge = "tickwire_processor_nodes";
        /// Shards taken over
        pub taken: Counter = "tickwire_shards_taken_total";
        /// Shards handed over
        pub released: Counter = "tickwire_shards_released_total";
        /// Store errors while managing shard leases
        pub errors: Counter = "tickwire_shards_errors_total";
        /// Operator's cap on this node's shards (0: its fair share)
        pub max: Gauge = "tickwire_shards_max";
    }
}

figures! {
    /// The elected leaderboard publisher.
    pub struct BoardFigures {
        /// The board publisher's mailbox and messages
        pub actor: ActorMetrics = "board_publisher";
        /// 1 while this node is the elected leaderboard publisher
        pub leader: Gauge = "tickwire_boards_leader";
        /// Leaderboards published (only when changed)
        pub published: Counter = "tickwire_boards_published_total",
            by "board" in &Board::ALL.map(Board::key);
        /// Lease or store errors of the leaderboard publisher
        pub errors: Counter = "tickwire_boards_errors_total";
        /// Shard candidates that could not be decoded
        pub unreadable: Counter = "tickwire_boards_unreadable_total";
    }
}

/// The processor node's typed view of its own figures.
#[derive(Clone)]
pub struct ProcessorFigures {
    pub consumer: ConsumerFigures,
    /// One per shard, in shard order.
    pub shards: Vec<ShardFigures>,
    pub manager: ShardManagerFigures,
    pub boards: BoardFigures,
    /// The shards held, as the shard manager last saw them.
    pub held: Arc<Mutex<Vec<u16>>>,
    /// The results and state writers.
    pub results_store: CacheWriterFigures,
    pub state_store: CacheWriterFigures,
}

impl ProcessorFigures {
    pub fn broker_up(&self) -> bool {
        self.consumer.connected.get() == 1
    }

    /// Every shard's worker item, in shard order.
    pub fn shard_items(&self) -> Vec<serde_json::Value> {
        (0u16..)
            .zip(&self.shards)
            .map(|(i, s)| s.describe(i))
            .collect()
    }

    pub fn held(&self) -> Vec<u16> {
        self.held.lock().map(|h| h.clone()).unwrap_or_default()
    }
}

figures! {
    /// The news processor and the consumer of the `news` queue.
    pub struct NewsFigures {
        /// The news processor's mailbox and messages
        pub actor: ActorMetrics = "news_processor";
        /// Articles filed in the news lists, by whether they replaced a listed copy
        pub filed_total: Counter = "tickwire_news_filed_total", by "kind" in &["new", "replaced"];
        /// Ticker lists an article went to, summed
        pub ticker_writes: Counter = "tickwire_news_ticker_writes_total";
        /// Articles not filed, by reason
        pub skipped_total: Counter = "tickwire_news_skipped_total",
            by "reason" in &["malformed", "no_link", "no_title"];
        /// Links remembered for replacing repeats
        pub remembered: Gauge = "tickwire_news_links_remembered";
        /// Reads of the feed list at start that failed (repeats are then pushed as new)
        pub rehydrate_errors: Counter = "tickwire_news_rehydrate_errors_total";
        /// `news` queue messages handled and acked
        pub consumed: Counter = "tickwire_news_consumed_total";
        /// Connections made to RabbitMQ for the news queue
        pub connects: Counter = "tickwire_news_consumer_connects_total";
        /// 1 while consuming the news queue
        pub consuming: Gauge = "tickwire_news_consuming";
    }
}

impl NewsFigures {
    pub fn filed(&self, replaced: bool, tickers: usize) {
        self.filed_total
            .inc(if replaced { "replaced" } else { "new" });
        self.ticker_writes.add(tickers as u64);
    }

    pub fn skipped(&self, reason: &str, why: &str) {
        self.skipped_total.inc(reason);
        log::warn!("news article skipped: {why}");
    }

    pub fn rehydrate_failed(&self, error: &str) {
        self.rehydrate_errors.inc();
        log::warn!("could not read the news feed back ({error}): repeats of listed stories will be pushed as new");
    }

    pub fn consumer_down(&self, error: &str, retry_in: std::time::Duration) {
        self.consuming.set(0);
        log::warn!("news queue consumption ended ({error}); again in {retry_in:?}");
    }
}
