//! The Massive-compatible simulator: a seeded synthetic market (or a capture replay) served
//! over Massive's WebSocket protocol and REST hydration endpoints on one port.

pub mod auth;
pub mod clock;
pub mod config;
pub mod filter;
pub mod market;
pub mod replay;
pub mod rest;
pub mod rng;
pub mod server;
pub mod wsio;

pub use config::SimArgs;
pub use server::{start, SimError, SimServer};
