//! The Massive (formerly Polygon.io) wire protocol: exactly what the service sends and accepts.
//!
//! Wire types live here and nowhere else; the rest of tickwire converts them into its own
//! domain types at the edge. Parsing is tolerant (unknown fields and events are kept, optional
//! fields may be missing, numbers may be integers or fractions) and never panics: every failure
//! is an error value that names what was wrong.
//!
//! - [`market`]: market paths (the URL cluster) and the channel prefixes each one knows.
//! - [`values`]: lenient scalar types (timestamps in ms or ns, decimal strings, string-or-int).
//! - [`events`]: one struct per stocks event, status messages, and the [`events::Event`] enum.
//! - [`frame`]: frame splitting, per-element decoding and the cheap route-only path.
//! - [`control`]: the client -> server messages (`auth`, `subscribe`, `unsubscribe`).
//! - [`rest`]: how every node calls Massive REST (the key in a header).

pub mod control;
pub mod events;
pub mod frame;
pub mod market;
pub mod rest;
pub mod subscriptions;
pub mod values;

pub use events::{Aggregate, Event, Fmv, Luld, Noi, Quote, Status, StatusKind, Trade};
pub use frame::{parse_frame, route_frame, FrameError, ParsedFrame, RouteEntry};
pub use market::{Market, MarketError};
