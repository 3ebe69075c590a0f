//! The analyzers: what turns raw events into what the widgets show (pure: no actix).
//!
//! Plain, deterministic analyzers (events in, [`CacheWrite`](crate::store::CacheWrite)s out)
//! that the processor node's shard actors ([`crate::actors::processor::shard`]) wrap:
//!
//! - [`calendar`]: market day (04:00 ET) and session by event time; trading days from
//!   market status.
//! - [`quote`]: the 26-field enriched quote.
//! - [`leaderboard`]: per-shard candidates and the cluster-wide ranking.
//! - [`daily_range`]: session highs/lows and HOD/LOD alerts.
//! - [`raw_routes`]: events republished as they came; [`top_trades`]: trade statistics.
//! - [`shard`]: one shard's state and the order the analyzers run in.
//! - [`enrichment`]: REST enrichment values, cache keys and TTLs.
//! - [`news`]: Finlight articles into the latest-news and per-ticker lists.

pub mod calendar;
pub mod daily_range;
pub mod enrichment;
pub mod leaderboard;
pub mod news;
pub mod quote;
pub mod raw_routes;
pub mod shard;
pub mod top_trades;
