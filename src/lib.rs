//! tickwire: a real-time market-data pipeline from one Massive WebSocket to browser widgets.
//!
//! The library holds all logic; `src/bin/*` only parse configuration and wire actors.
//!
//! ## Where code lives
//!
//! **A node that has actors lives entirely in one folder under [`actors`]**: its actors with
//! their messages, its figures (`metrics.rs`), what it reports (`status.rs`) and its flags and
//! wiring (`node.rs`); its `mod.rs` walks an event through the folder. A node folder imports
//! no other node's folder, except the store backends that nodes writing or reading results
//! wire ([`actors::store`]).
//!
//! **Top-level modules are contracts shared by two or more nodes, or pure libraries**, and
//! import nothing from [`actors`]. The control plane ([`scp`]) is an actix-web app with no
//! actors of its own; [`embedded`], [`bench`] and `bin/` sit on top of everything. No module
//! imports another that imports it back (tests/layout.rs checks all of this).
//!
//! ```text
//! actors/            one folder per node
//!   listener/        Massive socket -> router -> RabbitMQ publisher; connection lease
//!   processor/       queue consumer -> shard processors -> stores; enricher, boards, shards
//!   store/           the results contract's backends: Redis cache writer, memory store
//!   wds/             Redis pub/sub -> hub -> client sessions (v1, v2)
//!   sim/             the Massive-compatible simulator
//!   registrar.rs     the one actor every node runs: its heartbeat in the node registry
//! massive/           contract: Massive wire types (events, frames, control messages)
//! finlight.rs        contract: Finlight news wire types (stream parameters, server messages)
//! queue/             contract: queue kinds, shard function, envelope, RabbitMQ topology
//! store/             contract: results writes, reads, snapshots, leases
//! nodes.rs           contract: the node registry record and control-route bodies
//! token.rs           contract: WDS access tokens and topic grants
//! revocation.rs      contract: tokens withdrawn before they expire
//! relay.rs           contract: the Massive relay's frames and keys (listener -> WDS, SCP -> WDS)
//! analyzers/         library: quotes, daily ranges, boards, raw routes (pure, no actix)
//! admin.rs metrics.rs config.rs clock.rs backoff.rs rng.rs recipient.rs redis_pool.rs clients.rs
//!                    libraries every node uses
//! wsio.rs            library: Massive-style server WebSockets (bounded, observable output)
//! scp/               the control plane: login, tokens, dashboard, control API
//! embedded.rs        every node in one process; bench/: tickwire-bench; bin/: the binaries
//! ```
//!
//! One event's path, socket to browser: `actors/listener` (connection, router, publisher)
//! -> `queue` -> `actors/processor` (consumer, shard, with `analyzers`) -> `store` ->
//! `actors/store` (cache writer) -> Redis -> `actors/wds` (upstream, hub, session) ->
//! `scp/assets/wds-client.js`. docs/architecture.md walks it file by file.

pub mod actors;
pub mod admin;
pub mod analyzers;
pub mod backoff;
pub mod bench;
pub mod clients;
pub mod clock;
pub mod config;
pub mod embedded;
pub mod finlight;
pub mod massive;
pub mod metrics;
pub mod nodes;
pub mod queue;
pub mod recipient;
pub mod redis_pool;
pub mod relay;
pub mod revocation;
pub mod rng;
pub mod scp;
pub mod store;
pub mod token;
pub mod wsio;
