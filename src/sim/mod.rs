//! The Massive-compatible simulator: a seeded synthetic market (or a capture replay) served
//! over Massive's WebSocket protocol and REST hydration endpoints on one port.

pub mod auth;
pub mod config;
pub mod filter;
pub mod market;
pub mod replay;
pub mod rest;
pub mod rng;
pub mod server;
pub mod wsio;

/// The market clock moved to the crate root (the processors share it); kept here by name.
pub use crate::clock;
pub use config::SimArgs;

/// Log directives for processes that run the simulator: its deliberate aborts (slow
/// consumers, drop faults, auth failures in abort mode) would otherwise log as actix-http
/// errors. They are counted in `tickwire_sim_*` metrics instead.
pub const LOG_DIRECTIVES: &[&str] = &["actix_http::h1::dispatcher=off"];
pub use server::{run, start, SimError, SimServer};
