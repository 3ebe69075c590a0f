//! tickwire: a real-time market-data pipeline from one Massive WebSocket to browser widgets.
//!
//! The library holds all logic; `src/bin/*` only parse configuration and wire actors.
//!
//! - [`massive`]: the Massive wire protocol (events, frames, control messages).
//! - [`listener`]: reconnect backoff, routing to queues and shards, the queue envelope.
//! - [`processor`]: the analyzers (quotes, leaderboards, daily range, raw routes).
//! - [`sim`]: the Massive-compatible simulator (synthetic market, replay, WebSocket + REST).
//! - [`store`]: the cache contract (writes, reads, leases) behind Redis or memory.
//! - [`actors`]: every actor, one file (or folder) each, messages typed beside it.
//! - [`admin`], [`metrics`]: the admin HTTP routes and counters every node serves.
//! - [`bench`]: throughput measurements behind `tickwire-bench`.
//! - [`clock`]: US market time (ET, sessions, trading days) shared by simulator and processors.
//! - [`embedded`]: the whole pipeline in one process (simulator to memory store).
//! - [`config`]: flag/env groups shared by the binaries.
//! - [`wds`]: the widget data service (client protocols v1 and v2, limits, node wiring).
//! - [`token`]: access tokens signed by the control plane and verified by the WDS.
//! - [`revocation`]: tokens the control plane withdrew before they expire (logout, password).

pub mod actors;
pub mod admin;
pub mod analyzers;
pub mod backoff;
pub mod bench;
pub mod clock;
pub mod config;
pub mod embedded;
pub mod massive;
pub mod metrics;
pub mod nodes;
pub mod queue;
pub mod recipient;
pub mod redis_pool;
pub mod revocation;
pub mod rng;
pub mod scp;
pub mod store;
pub mod token;
