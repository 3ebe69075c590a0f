//! The listener node's logic outside the actors: reconnect backoff, routing of Massive events
//! to queues and shards, and the envelope that goes on the queues.
//!
//! - [`backoff`]: jittered exponential backoff that resets only after a stable connection.
//! - [`routing`]: which queue and shard each event goes to, using the route-only parse.
//! - [`envelope`]: the queue message: receive time, asset class, original event objects.

pub mod backoff;
pub mod envelope;
pub mod node;
pub mod routing;
