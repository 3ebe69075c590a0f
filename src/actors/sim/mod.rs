//! The simulator's actors.
//!
//! - [`feed::Feed`]: owns the synthetic market (or a replay), ticks every flush interval and
//!   broadcasts encoded events to sessions; answers REST queries from market state.
//! - [`registry::ConnectionRegistry`]: connections per (API key, market); evicts the older
//!   connection past the limit, as Massive does.
//! - [`session::SimSession`]: one client WebSocket: auth, subscriptions, frame batching,
//!   bounded outbound buffer, fault injection.

pub mod feed;
pub mod registry;
pub mod session;
