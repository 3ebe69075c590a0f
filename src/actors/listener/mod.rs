//! The listener node (`tickwire-listener`): holds the one Massive WebSocket per asset class
//! and keeps it drained, whatever RabbitMQ does.
//!
//! An event's path through this folder:
//!
//! 1. [`connection`]: the `Listener` actor reads a frame off the Massive socket, stamps its
//!    receive time and hands it on as a `RawFrame` without awaiting anything; statuses
//!    (`auth_failed`, `max_connections`) are handled here; supervision reconnects.
//! 2. [`router`]: splits the frame (route-only parse) and groups its events per queue and
//!    shard ([`crate::queue`]) into `EventBatch`es, zero-copy slices of the frame.
//! 3. [`publisher`]: puts each batch on RabbitMQ as one envelope ([`crate::queue::envelope`]);
//!    a bounded buffer that drops the oldest (counted) keeps the socket from ever waiting.
//!    In embedded mode the router hands its batches to the processor pool instead.
//!
//! Beside them: [`lease`] (the Redis lease that lets one replica of several connect),
//! [`recorder`] (`--record`), [`widen`] (adding relay clients' topics upstream, optional), [`control`] (the admin-token control routes), [`status`]
//! (readiness, `/health`, `/stats`), [`metrics`] (every figure, declared once), and
//! [`node`] (flags and wiring). Several markets per process (`MASSIVE_MARKET=stocks,crypto`)
//! get one listener and lease each.

pub mod connection;
pub mod control;
pub mod lease;
pub mod metrics;
pub mod news;
pub mod news_publisher;
pub mod node;
pub mod publisher;
pub mod recorder;
pub mod relay_publisher;
pub mod router;
pub mod status;
pub mod widen;

pub use control::{configure_control, ControlState, MarketLink};
pub use node::{run, start, ListenerArgs, ListenerNode, NodeError};
