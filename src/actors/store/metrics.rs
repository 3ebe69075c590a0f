//! Every figure the store backends count, declared once.

use crate::figures;
use crate::metrics::{ActorMetrics, Counter, Gauge, Histogram, Registry};

figures! {
    /// One Redis cache writer (label `store`: `results`, `state`, `wdc`; its actor figures
    /// are `cache_writer_<store>`).
    pub struct CacheWriterFigures {
        /// Values written to Redis (SET/SETEX/LPUSH)
        pub writes: Counter = "tickwire_cache_writes_total";
        /// Values published on Redis pub/sub
        pub publishes: Counter = "tickwire_cache_publishes_total";
        /// Waiting values replaced by a newer value of the same key before being sent
        pub coalesced: Counter = "tickwire_cache_coalesced_total";
        /// Writes lost because Redis failed or the pending buffer was full
        pub dropped: Counter = "tickwire_cache_dropped_total";
        /// Failed Redis pipelines and commands
        pub errors: Counter = "tickwire_cache_errors_total";
        /// Pipelines sent to Redis (round trips)
        pub pipelines: Counter = "tickwire_cache_pipelines_total";
        /// Writes waiting for the next pipeline
        pub pending: Gauge = "tickwire_cache_pending";
        /// 1 while the last Redis pipeline succeeded
        pub connected: Gauge = "tickwire_cache_connected";
        /// Listener receive to Redis publish of a result (ms)
        pub hop: Histogram = "tickwire_cache_hop_latency_ms";
        /// Time from sending a pipeline to its reply (ms)
        pub round_trip: Histogram = "tickwire_cache_pipeline_ms";
    }
}

impl CacheWriterFigures {
    pub fn for_store(r: &Registry, store: &str) -> (ActorMetrics, Self) {
        (
            ActorMetrics::new(r, &format!("cache_writer_{store}")),
            Self::register(r, &[("store", store)]),
        )
    }

    pub fn up(&self) -> bool {
        self.connected.get() == 1
    }
}

figures! {
    /// The in-memory store (embedded mode).
    pub struct MemoryStoreFigures {
        /// The memory store's mailbox and messages
        pub actor: ActorMetrics = "memory_store";
        /// Values written to the store (SET/SETEX/LPUSH)
        pub writes: Counter = "tickwire_store_writes_total";
        /// Values published to subscribers
        pub publishes: Counter = "tickwire_store_publishes_total";
        /// Keys held in memory
        pub keys: Gauge = "tickwire_store_keys";
    }
}
