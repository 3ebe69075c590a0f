//! Every actor of tickwire, one folder per node, with its messages typed beside it.
//!
//! - [`listener`]: the Massive connection, router, queue publisher, lease (`tickwire-listener`).
//! - [`processor`]: queue consumers, shard processors, enrichment, boards (`tickwire-processor`).
//! - [`store`]: the results contract's two backends, Redis and memory.
//! - [`wds`]: the widget data service: hub and client sessions (`tickwire-wds`).
//! - [`sim`]: the Massive-compatible simulator (`tickwire-sim`).
//! - [`registrar`]: the one actor every node runs, its heartbeat in the node registry.
//!
//! Actors hold each other as [`CountedRecipient`](crate::recipient::CountedRecipient)s,
//! never as concrete addresses, so the backend behind a stage is chosen at wiring time.

pub mod listener;
pub mod processor;
pub mod registrar;
pub mod sim;
pub mod store;
pub mod wds;
