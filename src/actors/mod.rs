//! Every actor of tickwire, one file (or folder) each, with its messages typed beside it.
//!
//! - [`sim`]: the simulator's feed, connection registry and WebSocket session actors.

pub mod sim;
