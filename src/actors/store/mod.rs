//! The store node's actors: the two backends of the results contract ([`crate::store`]).
//!
//! - [`cache_writer::CacheWriter`]: Redis (distributed mode): coalesces writes and sends them
//!   as MULTI/EXEC pipelines on its own RESP connection.
//! - [`memory_store::MemoryStore`]: memory (embedded mode): TTLs, capped lists, pub/sub.

pub mod cache_writer;
pub mod memory_store;
pub mod metrics;
