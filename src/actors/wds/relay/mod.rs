//! The Massive relay (issue 23): users' own programs, with the official Massive clients,
//! share tickwire's one Massive connection by connecting here instead.
//!
//! A frame's path through this folder:
//!
//! 1. [`feed`]: the node's own short-lived RabbitMQ queue on the `tickwire.relay` exchange
//!    delivers the listener's indexed frames ([`crate::relay::Relayed`]); in embedded mode the
//!    router hands them over in process.
//! 2. [`hub`]: the `RelayHub` keeps who wants which (channel, symbol), picks each session's
//!    events out of the frame by the index (no second parse), joins their original bytes
//!    into one frame per session (the frame itself when a session wants all of it) and queues
//!    it on the session's socket; it keeps the last seconds for `replay` and cuts off a
//!    client that falls behind. It never waits on a client.
//! 3. [`session`]: each client's `RelaySession` speaks Massive's protocol (`connected`,
//!    `auth` with a relay key, `subscribe`/`unsubscribe`, and tickwire's `replay`) over
//!    [`crate::wsio`], whose bounded, observable output lets the hub see a slow reader.
//!
//! Beside them: [`keys`] (which keys may connect: the control plane's hashes, read every
//! second, so a revoked key's sockets close within about a second), [`wants`] (what the
//! clients hold, written to Redis for a listener that widens its upstream subscription to
//! it) and this module's [`RelaySettings`] and [`RelayState`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{Actor, Addr};
use actix_web::web;

use crate::actors::wds::metrics::RelayFigures;

pub mod feed;
pub mod hub;
pub mod keys;
pub mod session;
pub mod wants;

/// The relay's flags (`tickwire-wds` and embedded `tickwire`).
#[derive(clap::Args, Debug, Clone)]
pub struct RelaySettings {
    /// Serve the Massive relay (`/stocks`, `/options`, ... on this port).
    #[arg(long = "relay", id = "relay_enabled", env = "RELAY_ENABLED", default_value = "true",
          action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub enabled: bool,

    /// Seconds of relayed events kept for `replay`.
    #[arg(
        long = "relay-replay-secs",
        id = "relay_replay_secs",
        env = "RELAY_REPLAY_SECS",
        default_value_t = 60
    )]
    pub replay_secs: u64,

    /// Most bytes the replay buffer holds (frames and index); past it the oldest go early.
    #[arg(long = "relay-replay-max-bytes", id = "relay_replay_max_bytes", env = "RELAY_REPLAY_MAX_BYTES",
          default_value_t = 256 * 1024 * 1024)]
    pub replay_max_bytes: usize,

    /// Bytes queued for one client before it is cut off as a slow consumer.
    #[arg(long = "relay-client-buffer-bytes", id = "relay_client_buffer_bytes", env = "RELAY_CLIENT_BUFFER_BYTES",
          default_value_t = 16 * 1024 * 1024)]
    pub client_buffer_bytes: usize,

    /// Seconds a client may fall behind (its oldest unread frame) before it is cut off.
    #[arg(
        long = "relay-max-lag-secs",
        id = "relay_max_lag_secs",
        env = "RELAY_MAX_LAG_SECS",
        default_value_t = 10
    )]
    pub max_lag_secs: u64,

    /// Relay sockets one user may hold at once, over all their keys (per node).
    #[arg(
        long = "relay-max-sockets-per-user",
        id = "relay_max_sockets_per_user",
        env = "RELAY_MAX_SOCKETS_PER_USER",
        default_value_t = 10
    )]
    pub max_sockets_per_user: usize,

    /// Topics one relay socket may hold (each explicit symbol counts).
    #[arg(
        long = "relay-max-topics",
        id = "relay_max_topics",
        env = "RELAY_MAX_TOPICS",
        default_value_t = 10_000
    )]
    pub max_topics: usize,

    /// Client messages per second per relay socket (a burst of as many is allowed); past
    /// it a message gets an `error` status and is not acted on.
    #[arg(
        long = "relay-max-msgs-per-sec",
        id = "relay_max_msgs_per_sec",
        env = "RELAY_MAX_MSGS_PER_SEC",
        default_value_t = 20
    )]
    pub max_msgs_per_sec: u32,

    /// Relay sockets per node.
    #[arg(
        long = "relay-max-sessions",
        id = "relay_max_sessions",
        env = "RELAY_MAX_SESSIONS",
        default_value_t = 5000
    )]
    pub max_sessions: usize,

    /// Seconds to send `auth` after connecting.
    #[arg(
        long = "relay-auth-timeout-secs",
        id = "relay_auth_timeout_secs",
        env = "RELAY_AUTH_TIMEOUT_SECS",
        default_value_t = 10
    )]
    pub auth_timeout_secs: u64,

    /// How often the relay keys are read again (ms): a revoked key's sockets end within
    /// about this long.
    #[arg(
        long = "relay-keys-poll-ms",
        id = "relay_keys_poll_ms",
        env = "RELAY_KEYS_POLL_MS",
        default_value_t = 1000
    )]
    pub keys_poll_ms: u64,
}

impl RelaySettings {
    pub fn replay_window(&self) -> Duration {
        Duration::from_secs(self.replay_secs)
    }

    pub fn max_lag(&self) -> Duration {
        Duration::from_secs(self.max_lag_secs.max(1))
    }

    pub fn auth_timeout(&self) -> Duration {
        Duration::from_secs(self.auth_timeout_secs.max(1))
    }

    pub fn keys_poll(&self) -> Duration {
        Duration::from_millis(self.keys_poll_ms.max(50))
    }
}

/// What every relay session of a node shares.
pub struct RelayState {
    pub hub: Addr<hub::RelayHub>,
    pub keys: Arc<keys::KeyCache>,
    pub settings: RelaySettings,
    pub figures: RelayFigures,
    /// Open relay sockets per user (the per-user cap).
    per_user: Mutex<HashMap<String, usize>>,
}

impl RelayState {
    pub fn new(
        hub: Addr<hub::RelayHub>,
        keys: Arc<keys::KeyCache>,
        settings: RelaySettings,
        figures: RelayFigures,
    ) -> Self {
        RelayState {
            hub,
            keys,
            settings,
            figures,
            per_user: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one of `user`'s sockets; `false` when they hold the most they may.
    pub fn take_user_slot(&self, user: &str) -> bool {
        let mut m = self.per_user.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(user.to_string()).or_default();
        if *n >= self.settings.max_sockets_per_user {
            return false;
        }
        *n += 1;
        true
    }

    pub fn give_user_slot(&self, user: &str) {
        let mut m = self.per_user.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(user);
            }
        }
    }
}

/// Starts a node's relay: its hub, and the key watch on `keys`. The caller feeds the hub
/// ([`feed`] in distributed mode, the router in embedded mode) and mounts
/// [`session::configure`] with the returned state.
pub fn start(
    settings: &RelaySettings,
    keys: keys::KeySource,
    figures: RelayFigures,
) -> web::Data<RelayState> {
    let hub = hub::RelayHub::new(settings.clone(), figures.clone()).start();
    let cache = Arc::new(keys::KeyCache::default());
    keys::watch(
        cache.clone(),
        keys,
        settings.keys_poll(),
        hub.clone().recipient(),
        figures.clone(),
    );
    web::Data::new(RelayState::new(hub, cache, settings.clone(), figures))
}
