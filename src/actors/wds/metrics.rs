//! Every figure the widget data service counts, declared once. The node's readiness and
//! `/stats` read these handles, not metric names.

use crate::actors::store::metrics::CacheWriterFigures;
use crate::figures;
use crate::metrics::{ActorMetrics, Counter, Gauge, Histogram};
use crate::revocation::WatchMetrics;

/// Why a session was closed by the server.
pub const CLOSE_REASONS: &[&str] = &[
    "violations",
    "idle",
    "auth_timeout",
    "auth",
    "slow",
    "token_expired",
    "token_revoked",
    "shutdown",
];
/// What a client can do wrong.
pub const VIOLATIONS: &[&str] = &[
    "frame_size",
    "rate",
    "malformed",
    "topics",
    "forbidden",
    "binary",
    "unknown",
];
/// Why a token was refused.
pub const AUTH_FAILURES: &[&str] = &[
    "missing",
    "malformed",
    "bad_signature",
    "expired",
    "revoked",
    "other_subject",
    "wrong_audience",
];
/// Why a handshake was refused.
pub const REFUSALS: &[&str] = &["sessions", "token", "stopping", "address"];

figures! {
    /// The session side, shared by every session of a node.
    pub struct SessionFigures {
        /// Open WebSocket sessions
        pub open: Gauge = "tickwire_wds_sessions";
        /// Sessions that passed authentication (or all, with auth off)
        pub authorized: Gauge = "tickwire_wds_sessions_authorized";
        /// Sessions opened
        pub opened: Counter = "tickwire_wds_sessions_total";
        /// Client frames received
        pub frames_in: Counter = "tickwire_wds_frames_in_total";
        /// Handshakes refused
        pub refused: Counter = "tickwire_wds_refused_total", by "reason" in REFUSALS;
        /// Tokens refused
        pub auth_failures: Counter = "tickwire_wds_auth_failures_total",
            by "reason" in AUTH_FAILURES;
        /// Requests refused for breaking a limit or the protocol
        pub violations: Counter = "tickwire_wds_violations_total", by "kind" in VIOLATIONS;
        /// Sessions closed by the server
        pub closed: Counter = "tickwire_wds_closed_total", by "reason" in CLOSE_REASONS;
        /// Tokens renewed in-band by an auth frame on an authenticated session
        pub renewals: Counter = "tickwire_wds_token_renewals_total";
    }
}

figures! {
    /// The hub: the node's one pub/sub connection, fanned out to the sessions.
    pub struct HubFigures {
        /// The hub's mailbox and messages
        pub actor: ActorMetrics = "wds_hub";
        /// 1 while the hub's pub/sub connection is up
        pub connected: Gauge = "tickwire_wds_upstream_connected";
        /// Messages received from pub/sub
        pub messages: Counter = "tickwire_wds_upstream_messages_total";
        /// Times the pub/sub connection was lost or could not be made
        pub reconnects: Counter = "tickwire_wds_upstream_disconnects_total";
        /// Exact channels subscribed upstream
        pub channels: Gauge = "tickwire_wds_channels";
        /// Patterns subscribed upstream
        pub patterns: Gauge = "tickwire_wds_patterns";
        /// Frames handed to session outboxes
        pub deliveries: Counter = "tickwire_wds_deliveries_total";
        /// Deliveries in the last second
        pub rate: Gauge = "tickwire_wds_deliveries_per_second";
        /// Value-topic frames replaced by a newer one before a slow client read them
        pub coalesced: Counter = "tickwire_wds_coalesced_total";
        /// Frames dropped because a client's outbox was full
        pub dropped: Counter = "tickwire_wds_dropped_total";
        /// Sessions closed for staying over their outbox limit
        pub slow_closed: Counter = "tickwire_wds_slow_clients_closed_total";
        /// Snapshots sent to v2 subscribers
        pub snapshots: Counter = "tickwire_wds_snapshots_total";
        /// Snapshots that could not be read
        pub snapshot_errors: Counter = "tickwire_wds_snapshot_errors_total";
        /// Epoch ms of the hub's last tick (liveness)
        pub heartbeat: Gauge = "tickwire_wds_hub_heartbeat_ms";
        /// Listener receive to hand-over to the client outboxes (ms)
        pub latency: Histogram = "tickwire_wds_push_latency_ms";
    }
}

figures! {
    /// Reading the control plane's token revocations from the node registry's Redis.
    pub struct RevocationFigures {
        /// Failed reads of the control plane's token revocations
        pub errors: Counter = "tickwire_wds_revocation_errors_total";
        /// Revocation entries skipped because they could not be read
        pub unreadable: Counter = "tickwire_wds_revocations_unreadable_total";
    }
}

impl From<RevocationFigures> for WatchMetrics {
    fn from(f: RevocationFigures) -> Self {
        WatchMetrics {
            errors: f.errors,
            unreadable: f.unreadable,
        }
    }
}

/// Why the relay ended a session.
pub const RELAY_CLOSES: &[&str] = &[
    "auth_failed",
    "auth_timeout",
    "revoked",
    "slow",
    "user_cap",
    "full",
    "shutdown",
];
/// Relay auth outcomes.
pub const RELAY_AUTH: &[&str] = &["success", "unknown_key", "timeout"];

figures! {
    /// The Massive relay (issue 23): its sessions, deliveries and replay buffer.
    pub struct RelayFigures {
        /// The relay hub's mailbox and messages
        pub actor: ActorMetrics = "relay_hub";
        /// Open relay sockets
        pub open: Gauge = "tickwire_relay_sessions";
        /// Relay sockets opened
        pub opened: Counter = "tickwire_relay_sessions_total";
        /// Relay authentications, by outcome
        pub auth: Counter = "tickwire_relay_auth_total", by "result" in RELAY_AUTH;
        /// Relay sockets the server ended, by reason
        pub closed: Counter = "tickwire_relay_closed_total", by "reason" in RELAY_CLOSES;
        /// Frames received from the listener (indexed Massive frames)
        pub batches_in: Counter = "tickwire_relay_batches_total";
        /// Events received from the listener
        pub events_in: Counter = "tickwire_relay_events_in_total";
        /// Relay messages that did not decode, counted and skipped
        pub undecodable: Counter = "tickwire_relay_undecodable_total";
        /// Events delivered to relay clients (one per client per event)
        pub deliveries: Counter = "tickwire_relay_deliveries_total";
        /// Data frames queued to relay clients
        pub frames_out: Counter = "tickwire_relay_frames_total";
        /// Bytes queued to relay clients
        pub bytes_out: Counter = "tickwire_relay_bytes_total";
        /// Bytes queued for relay clients that were cut off (slow, revoked), discarded
        pub dropped: Counter = "tickwire_relay_dropped_bytes_total";
        /// Subscriptions refused (outside what the listener carries)
        pub refused: Counter = "tickwire_relay_refused_subscriptions_total";
        /// Client messages that were not JSON, named no known action or came too fast, skipped
        pub bad_messages: Counter = "tickwire_relay_bad_messages_total";
        /// Replays served
        pub replays: Counter = "tickwire_relay_replays_total";
        /// Events sent by replays
        pub replayed: Counter = "tickwire_relay_replayed_events_total";
        /// Events in the replay buffer
        pub ring_events: Gauge = "tickwire_relay_replay_buffer_events";
        /// Bytes held by the replay buffer (frames and index)
        pub ring_bytes: Gauge = "tickwire_relay_replay_buffer_bytes";
        /// Frames evicted from the replay buffer early for its memory cap
        pub ring_evicted: Counter = "tickwire_relay_replay_evicted_total";
        /// 1 while the relay's RabbitMQ queue is consumed (distributed mode)
        pub feed_connected: Gauge = "tickwire_relay_feed_connected";
        /// Failures of the relay's RabbitMQ feed (re-made with backoff)
        pub feed_errors: Counter = "tickwire_relay_feed_errors_total";
        /// Relay keys known (from the control plane)
        pub keys: Gauge = "tickwire_relay_keys";
        /// Failed reads of the relay keys (the last ones known stay in force)
        pub key_errors: Counter = "tickwire_relay_key_errors_total";
        /// Writes of the relay clients' topics to Redis (for a widening listener) that failed
        pub wants_errors: Counter = "tickwire_relay_wants_errors_total";
        /// Reports of the clients' topics cut to `RELAY_MAX_TOPICS` (the rest not widened)
        pub wants_truncated: Counter = "tickwire_relay_wants_truncated_total";
    }
}

impl RelayFigures {
    pub fn closed(&self, reason: &'static str, id: u64, why: &str) {
        self.closed.inc(reason);
        log::info!("relay session {id} ended: {why}");
    }

    pub fn undecodable(&self, error: &str) {
        self.undecodable.inc();
        log::warn!("relay: message from the listener skipped: {error}");
    }

    pub fn feed_failed(&self, error: &str, retry: std::time::Duration) {
        self.feed_errors.inc();
        log::warn!("relay: feed from RabbitMQ failed ({error}); again in {retry:?}");
    }

    pub fn key_error(&self, error: &str) {
        self.key_errors.inc();
        log::warn!("relay: reading the relay keys failed ({error}); keeping the last known");
    }

    pub fn wants_failed(&self, error: &str) {
        if self.wants_errors.get().is_multiple_of(60) {
            log::warn!("relay: writing the clients' topics failed ({error}); written again in 5 s");
        }
        self.wants_errors.inc();
    }
}

/// The WDS node's typed view of its own figures.
#[derive(Clone)]
pub struct WdsFigures {
    pub sessions: SessionFigures,
    pub hub: HubFigures,
    pub relay: RelayFigures,
    /// The results Redis reader (none in embedded mode: the memory store cannot go away).
    pub store: Option<CacheWriterFigures>,
}

impl WdsFigures {
    /// How long ago the hub last ticked (ms).
    pub fn hub_silent_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis() - self.hub.heartbeat.get()
    }
}
