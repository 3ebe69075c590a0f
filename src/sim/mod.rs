//! The Massive-compatible simulator: a seeded synthetic market (or a capture replay) served
//! over Massive's WebSocket protocol and REST hydration endpoints on one port.

pub mod clock;
pub mod market;
pub mod rng;
