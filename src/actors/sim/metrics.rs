//! Every figure the simulator counts, declared once.

use crate::figures;
use crate::metrics::{ActorMetrics, Counter, Gauge, Registry};

use super::market::STOCK_CHANNELS;

figures! {
    /// The feed: the market it plays and the sessions it feeds.
    pub struct FeedFigures {
        /// The feed's mailbox and messages
        pub actor: ActorMetrics = "sim_feed";
        /// Events made by the synthetic market
        pub events: Counter = "tickwire_sim_events_generated_total", by "channel" in &STOCK_CHANNELS;
        /// Events played from a capture
        pub replayed: Counter = "tickwire_sim_events_replayed_total";
        /// Batches sent to sessions
        pub batches: Counter = "tickwire_sim_feed_batches_total";
        /// Sessions attached to the feed
        pub sessions: Gauge = "tickwire_sim_feed_sessions";
        /// Injected faults
        pub stalls: Counter = "tickwire_sim_faults_total", by "kind" in &["stall"];
    }
}

figures! {
    /// Every client session of one simulator.
    pub struct SimSessionFigures {
        /// The sessions' mailboxes and messages
        pub actor: ActorMetrics = "sim_session";
        /// Open client connections
        pub open: Gauge = "tickwire_sim_connections";
        /// Client connections accepted
        pub opened: Counter = "tickwire_sim_connections_total";
        /// Auth attempts by result
        pub auth: Counter = "tickwire_sim_auth_total",
            by "result" in &["success", "unknown_key", "market_not_in_plan", "timeout"];
        /// Topics refused with not authorized
        pub not_authorized: Counter = "tickwire_sim_subscribe_denied_total";
        /// Connections killed for not draining their outbound buffer
        pub slow_consumer_kills: Counter = "tickwire_sim_slow_consumer_kills_total";
        /// Data frames queued to clients
        pub frames_out: Counter = "tickwire_sim_frames_sent_total";
        /// Events queued to clients
        pub events_out: Counter = "tickwire_sim_events_sent_total";
        /// Data frame bytes queued to clients
        pub bytes_out: Counter = "tickwire_sim_bytes_sent_total";
        /// Client messages by kind
        pub messages: Counter = "tickwire_sim_client_messages_total",
            by "kind" in &["invalid_json", "unknown_action", "ping"];
        /// Injected faults
        pub faults: Counter = "tickwire_sim_faults_total",
            by "kind" in &["drop", "malformed", "unknown_event", "fragment", "binary"];
    }
}

figures! {
    /// The connection registry (max_connections).
    pub struct RegistryFigures {
        /// The registry's mailbox and messages
        pub actor: ActorMetrics = "sim_registry";
        /// Connections evicted by a newer one with the same key and market (max_connections)
        pub evictions: Counter = "tickwire_sim_evictions_total";
    }
}

/// REST requests to `endpoint`, whatever the answer (registered on first use of each).
pub fn rest_endpoint_requests(r: &Registry, endpoint: &str) -> Counter {
    r.counter(
        "tickwire_sim_rest_endpoint_requests_total",
        "REST requests, by endpoint (what a client's warm-up costs)",
        &[("endpoint", endpoint)],
    )
}

/// REST requests answered with `status` (registered on first use of each status).
pub fn rest_requests(r: &Registry, status: u16) -> Counter {
    r.counter(
        "tickwire_sim_rest_requests_total",
        "REST requests answered, by HTTP status",
        &[("status", &status.to_string())],
    )
}

figures! {
    /// The Finlight-compatible news stream.
    pub struct NewsFigures {
        /// The news wire's mailbox and messages
        pub actor: ActorMetrics = "sim_news";
        /// Articles written (updates included)
        pub articles: Counter = "tickwire_sim_news_articles_total";
        /// Articles sent to clients
        pub sent: Counter = "tickwire_sim_news_sent_total";
        /// Open news connections
        pub connections: Gauge = "tickwire_sim_news_connections";
        /// News handshakes by result
        pub handshakes: Counter = "tickwire_sim_news_handshakes_total",
            by "result" in &["admitted", "unknown_key", "rate_limited", "refused"];
        /// Connections preempted by a newer one with the same key (x-takeover)
        pub preempted: Counter = "tickwire_sim_news_preempted_total";
        /// News clients cut off for leaving more than the buffer unread
        pub slow_consumer_kills: Counter = "tickwire_sim_news_slow_consumer_kills_total";
        /// Client messages the news stream did not expect
        pub client_messages: Counter = "tickwire_sim_news_client_messages_total",
            by "kind" in &["invalid", "unknown"];
    }
}
