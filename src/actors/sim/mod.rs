//! The simulator node (`tickwire-sim`): a Massive-compatible server (and a Finlight-compatible
//! news stream) with a seeded synthetic
//! market (or a capture replay), Massive's WebSocket protocol and REST hydration endpoints on
//! one port.
//!
//! - [`feed::Feed`]: owns the synthetic market (or a replay), ticks every flush interval and
//!   broadcasts encoded events to sessions; answers REST queries from market state.
//! - [`registry::ConnectionRegistry`]: connections per (API key, market); evicts the older
//!   connection past the limit, as Massive does.
//! - [`session::SimSession`]: one client WebSocket: auth, subscriptions, frame batching,
//!   bounded outbound buffer, fault injection.
//! - [`market`], [`replay`]: what the feed plays; [`filter`]: the events as sessions share
//!   them; [`rest`]: the REST answers; the WebSocket upgrade the sessions drive is the
//!   library [`crate::wsio`] (the WDS relay drives it too);
//!   [`auth`], [`config`]: keys and flags; [`node`]: flags and wiring.
//! - [`news`]: the Finlight-compatible news stream (`/finlight`, `/finlight/raw`): articles
//!   about the same tickers, for the news listener.

pub mod auth;
pub mod config;
pub mod feed;
pub mod filter;
pub mod market;
pub mod metrics;
pub mod news;
pub mod node;
pub mod registry;
pub mod replay;
pub mod rest;
pub mod session;

pub use config::SimArgs;

/// Log directives for processes that run the simulator: its deliberate aborts (slow
/// consumers, drop faults, auth failures in abort mode) would otherwise log as actix-http
/// errors. They are counted in `tickwire_sim_*` metrics instead.
pub const LOG_DIRECTIVES: &[&str] = &["actix_http::h1::dispatcher=off"];
pub use node::{run, start, SimError, SimServer};
