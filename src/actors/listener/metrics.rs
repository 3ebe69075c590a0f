//! Every figure the listener node counts, declared once, and the occurrences that both log
//! and count (vector's internal events): an actor calls `figures.connect_failed(..)`, never
//! `log::warn!` beside a counter of its own.
//!
//! [`ListenerFigures`] is the node's typed view: its readiness checks and `/health` read
//! these handles, not metric names.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::figures;
use crate::massive::Market;
use crate::metrics::{ActorMetrics, Counter, Gauge, Registry};
use crate::queue::{QueueKind, QUEUE_NAMES as QUEUES};

figures! {
    /// The relay's publisher (issue 23): indexed frames to the relay exchange.
    pub struct RelayPublisherFigures {
        /// The relay publisher's mailbox and messages
        pub actor: ActorMetrics = "relay_publisher";
        /// 1 while connected to RabbitMQ for the relay
        pub connected: Gauge = "tickwire_relay_publisher_connected";
        /// Relay messages waiting for RabbitMQ
        pub buffered: Gauge = "tickwire_relay_publisher_buffered";
        /// Relay messages published (frames and what is carried)
        pub published: Counter = "tickwire_relay_publisher_messages_total";
        /// Oldest relay messages dropped from the full buffer
        pub dropped: Counter = "tickwire_relay_publisher_dropped_total";
        /// Relay publishes or connects that failed, and messages that did not encode
        pub errors: Counter = "tickwire_relay_publisher_errors_total";
    }
}

impl RelayPublisherFigures {
    pub fn connect_failed(&self, error: &str, retry: Duration) {
        self.errors.inc();
        log::warn!("relay: RabbitMQ connect failed ({error}); retrying in {retry:?}");
    }

    pub fn publish_failed(&self, error: &str) {
        self.errors.inc();
        log::warn!("relay: publish failed ({error}); reconnecting");
    }

    pub fn encode_failed(&self, error: &str) {
        self.errors.inc();
        log::warn!("relay: message not published: {error}");
    }
}

figures! {
    /// One market's Massive connection (label `market`).
    pub struct ConnectionFigures {
        /// The listener actor's mailbox and messages
        pub actor: ActorMetrics = "listener";
        /// 1 while the Massive socket is open
        pub connected: Gauge = "tickwire_listener_connected";
        /// Successful WebSocket connects
        pub connects: Counter = "tickwire_listener_connects_total";
        /// Failed connect attempts (DNS, TCP, TLS, HTTP)
        pub connect_errors: Counter = "tickwire_listener_connect_errors_total";
        /// Supervisor restarts after a disconnect or error
        pub reconnects: Counter = "tickwire_listener_reconnects_total";
        /// Frames read from Massive
        pub frames_in: Counter = "tickwire_listener_frames_total";
        /// Bytes read from Massive
        pub bytes_in: Counter = "tickwire_listener_bytes_total";
        /// Status messages from Massive, by status
        pub status: Counter = "tickwire_listener_status_total",
            by "status" in &["auth_failed", "max_connections", "success", "error"];
        /// Connections ended for silence past the liveness limit
        pub dead_peer: Counter = "tickwire_listener_dead_peer_total";
        /// Market-status checks that found the market closed (no connect)
        pub closed_polls: Counter = "tickwire_listener_market_closed_polls_total";
        /// Market-status calls (`/now`, `/upcoming`) that failed (connected anyway, unless a known holiday)
        pub market_status_errors: Counter = "tickwire_listener_market_status_errors_total";
        /// Frames over the size limit, counted and skipped
        pub oversize: Counter = "tickwire_listener_oversize_frames_total";
        /// When the last frame was read (epoch ms)
        pub last_frame_ms: Gauge = "tickwire_listener_last_frame_ms";
        /// Fragmented text messages put back together from their continuation frames
        pub reassembled: Counter = "tickwire_listener_reassembled_total";
        /// Binary frames (Massive sends text only), counted and skipped
        pub binary: Counter = "tickwire_listener_binary_frames_total";
        /// Continuation frames with no message to continue, counted and skipped
        pub stray_continuations: Counter = "tickwire_listener_stray_continuations_total";
        /// Topics subscribed upstream beyond `MASSIVE_SUBSCRIPTIONS` for relay clients (widening)
        pub widened: Gauge = "tickwire_listener_relay_widened_topics";
        /// Topics relay clients wanted past `LISTENER_RELAY_WIDEN_MAX_TOPICS`, not added (per change)
        pub widen_capped: Counter = "tickwire_listener_relay_widen_capped_total";
        /// Reads of the relay clients' topics from Redis that failed, and unreadable entries
        pub wants_errors: Counter = "tickwire_listener_relay_wants_errors_total";
    }
}

impl ConnectionFigures {
    pub fn for_market(r: &Registry, market: Market) -> Self {
        Self::register(r, &[("market", market.path())])
    }

    pub fn connect_failed(&self, url: &str, error: &str) {
        self.connect_errors.inc();
        log::warn!("connect to {url} failed: {error}");
    }

    pub fn market_closed(&self, poll: Duration) {
        if self.closed_polls.get() == 0 {
            log::info!("market closed: polling market status every {poll:?} instead of connecting");
        }
        self.closed_polls.inc();
    }

    pub fn market_status_failed(&self, error: &str) {
        self.market_status_errors.inc();
        log::warn!(
            "market status check failed ({error}); connecting unless today is a known holiday"
        );
    }

    pub fn upcoming_failed(&self, error: &str) {
        self.market_status_errors.inc();
        log::warn!("holidays ahead could not be read ({error}); asked again on the next check");
    }

    pub fn auth_failed(&self, market: Market, text: &str) {
        self.status.inc("auth_failed");
        log::error!("Massive refused the API key on /{market}: {text}");
    }

    pub fn max_connections(&self, market: Market, text: &str) {
        self.status.inc("max_connections");
        log::error!("max_connections: another process holds this key on /{market}: {text}");
    }

    pub fn error_status(&self, market: Market, text: &str) {
        self.status.inc("error");
        log::warn!("Massive error status on /{market}: {text}");
    }

    pub fn dead_peer(&self, after: Duration) {
        self.dead_peer.inc();
        log::warn!("no frame from Massive for {after:?}: declaring the connection dead");
    }

    pub fn oversize(&self, len: usize, limit: usize) {
        self.oversize.inc();
        log::warn!("skipping a {len} byte frame (limit {limit})");
    }

    pub fn binary_frame(&self, len: usize) {
        if self.binary.get().is_multiple_of(1000) {
            log::warn!("skipping a binary frame of {len} bytes (Massive sends text)");
        }
        self.binary.inc();
    }

    pub fn stray_continuation(&self) {
        if self.stray_continuations.get().is_multiple_of(1000) {
            log::warn!("skipping a continuation frame that continues nothing");
        }
        self.stray_continuations.inc();
    }

    /// Relay clients want more than widening adds: counted; logged when the shortfall changes.
    pub fn widen_capped(&self, market: Market, capped: usize, max: usize) {
        self.widen_capped.add(capped as u64);
        log::warn!(
            "/{market}: {capped} topics relay clients subscribe are not added upstream \
             (LISTENER_RELAY_WIDEN_MAX_TOPICS={max})"
        );
    }

    pub fn wants_failed(&self, error: &str) {
        if self.wants_errors.get().is_multiple_of(60) {
            log::warn!("relay clients' topics could not be read ({error}); the last ones stay");
        }
        self.wants_errors.inc();
    }

    pub fn protocol_error(&self, error: &str) {
        self.actor.errors.inc();
        log::warn!("WebSocket error from Massive: {error}");
    }
}

figures! {
    /// The router: frames split into per-queue batches.
    pub struct RouterFigures {
        /// The router actor's mailbox and messages
        pub actor: ActorMetrics = "router";
        /// Events routed, by queue
        pub events: Counter = "tickwire_router_events_total", by "queue" in &QUEUES;
        /// Frame elements skipped because they could not be read (no ev, not an object)
        pub skipped_elements: Counter = "tickwire_router_skipped_elements_total";
        /// Frames skipped because they were not a JSON array
        pub skipped_frames: Counter = "tickwire_router_skipped_frames_total";
    }
}

impl RouterFigures {
    /// A frame that is not a JSON array: counted; the first and every 1,000th logged, not a
    /// storm.
    pub fn frame_skipped(&self, len: usize, error: &dyn std::fmt::Display) {
        let n = self.skipped_frames.get();
        self.skipped_frames.inc();
        self.actor.errors.inc();
        if n.is_multiple_of(1000) {
            log::warn!(
                "skipping a frame of {len} bytes: {error} ({} skipped so far)",
                n + 1
            );
        }
    }

    /// Elements of a frame that could not be read (their frame goes on without them).
    pub fn elements_skipped(&self, errors: &[impl std::fmt::Display]) {
        if let Some(first) = errors.first() {
            self.skipped_elements.add(errors.len() as u64);
            log::debug!(
                "skipped {} unreadable elements, first: {first}",
                errors.len()
            );
        }
    }
}

/// Receive time minus the newest event time of the last frame, per market: registered on
/// first use, because a listener can be moved to another market at run time, and so that
/// the registry is locked once per market, not per frame.
pub struct FrameLag {
    registry: Arc<Registry>,
    gauges: Vec<(Market, Gauge)>,
}

impl FrameLag {
    pub fn new(registry: &Arc<Registry>) -> Self {
        FrameLag {
            registry: registry.clone(),
            gauges: Vec::new(),
        }
    }

    pub fn of(&mut self, market: Market) -> &Gauge {
        let pos = match self.gauges.iter().position(|(m, _)| *m == market) {
            Some(p) => p,
            None => {
                let g = self.registry.gauge(
                    "tickwire_router_frame_lag_ms",
                    "Receive time minus the newest event time of the last frame (ms)",
                    &[("market", market.path())],
                );
                self.gauges.push((market, g));
                self.gauges.len() - 1
            }
        };
        &self.gauges[pos].1
    }
}

figures! {
    /// The RabbitMQ publisher.
    pub struct PublisherFigures {
        /// The publisher actor's mailbox and messages
        pub actor: ActorMetrics = "queue_publisher";
        /// 1 while connected to RabbitMQ
        pub connected: Gauge = "tickwire_publisher_connected";
        /// Batches waiting for RabbitMQ
        pub buffered: Gauge = "tickwire_publisher_buffered_batches";
        /// Publishes under way
        pub in_flight: Gauge = "tickwire_publisher_in_flight";
        /// Connections to RabbitMQ
        pub connects: Counter = "tickwire_publisher_connects_total";
        /// Failed RabbitMQ connects
        pub connect_errors: Counter = "tickwire_publisher_connect_errors_total";
        /// Messages published, by queue
        pub published: Counter = "tickwire_publisher_messages_total", by "queue" in &QUEUES;
        /// Oldest batches dropped from the full buffer, by queue
        pub dropped: Counter = "tickwire_publisher_dropped_batches_total", by "queue" in &QUEUES;
        /// Publishes that failed (lost), by queue
        pub failed: Counter = "tickwire_publisher_failed_total", by "queue" in &QUEUES;
        /// Events in published messages, by queue
        pub events: Counter = "tickwire_publisher_events_total", by "queue" in &QUEUES;
        /// Waiting batches merged into an earlier message of the same queue and shard
        pub coalesced: Counter = "tickwire_publisher_coalesced_batches_total";
        /// Frames and batches still unpublished when a stopping node's grace ran out
        pub stopped_unpublished: Counter = "tickwire_publisher_stopped_unpublished_total";
        /// Without confirms: messages handed to the client in the half second to second before
        /// a link loss was seen (what may have been lost with the link; an upper bound)
        pub unconfirmed_at_loss: Counter = "tickwire_publisher_unconfirmed_at_loss_total";
    }
}

impl PublisherFigures {
    /// The node stopped with `frames` unrouted and `batches` unpublished (RabbitMQ away, say).
    pub fn stopped_unpublished(&self, frames: i64, batches: i64) {
        let n = u64::try_from(frames + batches).unwrap_or(0);
        self.stopped_unpublished.add(n);
        log::warn!("stopped with {frames} frames unrouted and {batches} batches unpublished: lost");
    }

    pub fn connect_failed(&self, error: &str, retry_in: Duration) {
        self.connect_errors.inc();
        log::warn!("RabbitMQ connect failed ({error}); retrying in {retry_in:?}");
    }

    /// The oldest batch of `queue` left the full buffer: counted; the first and every
    /// 10,000th logged.
    pub fn dropped_oldest(&self, queue: QueueKind) {
        let Some(c) = self.dropped.at(queue.index()) else {
            return;
        };
        let n = c.get();
        c.inc();
        if n % 10_000 == 0 {
            log::warn!(
                "publish buffer full: dropping oldest batches ({} dropped on {})",
                n + 1,
                queue.name()
            );
        }
    }

    pub fn published(&self, queue: QueueKind, events: u64) {
        if let Some(c) = self.published.at(queue.index()) {
            c.inc();
        }
        if let Some(c) = self.events.at(queue.index()) {
            c.add(events);
        }
        self.actor.messages_out.inc();
    }

    /// The link was lost with `n` unconfirmed messages recently handed to the client.
    pub fn link_lost_unconfirmed(&self, n: u64) {
        self.unconfirmed_at_loss.add(n);
        if n > 0 {
            log::warn!(
                "link lost without publisher confirms: up to {n} messages published just before may be lost"
            );
        }
    }

    pub fn publish_failed(&self, queue: QueueKind, error: &str) {
        if let Some(c) = self.failed.at(queue.index()) {
            c.inc();
        }
        self.actor.errors.inc();
        log::warn!("publish to {} failed: {error}", queue.name());
    }
}

figures! {
    /// One market's connection lease (label `market`).
    pub struct LeaseFigures {
        /// The lease keeper's mailbox and messages
        pub actor: ActorMetrics = "lease";
        /// 1 while this replica holds the Massive connection lease
        pub held: Gauge = "tickwire_lease_held";
        /// Times this replica took the lease
        pub acquired: Counter = "tickwire_lease_acquired_total";
        /// Times this replica lost or gave up the lease
        pub lost: Counter = "tickwire_lease_lost_total";
        /// Redis errors while acquiring or renewing
        pub errors: Counter = "tickwire_lease_errors_total";
    }
}

impl LeaseFigures {
    pub fn for_market(r: &Registry, market: &str) -> Self {
        Self::register(r, &[("market", market)])
    }
}

figures! {
    /// The capture recorder (`--record`).
    pub struct RecorderFigures {
        /// The recorder actor's mailbox and messages
        pub actor: ActorMetrics = "recorder";
        /// Frames written to the capture file
        pub written: Counter = "tickwire_recorder_frames_total";
        /// Frames not recorded (not valid JSON)
        pub skipped: Counter = "tickwire_recorder_skipped_total";
    }
}

/// A market's lease as the node sees it: whether this replica holds it, and who does.
#[derive(Clone)]
pub struct LeaseView {
    pub figures: LeaseFigures,
    /// The holder seen at the last check (this replica or another).
    pub holder: Arc<Mutex<String>>,
}

impl LeaseView {
    pub fn held(&self) -> bool {
        self.figures.held.get() == 1
    }

    pub fn holder(&self) -> String {
        self.holder.lock().map(|h| h.clone()).unwrap_or_default()
    }
}

/// The listener node's typed view of its own figures.
#[derive(Clone)]
pub struct ListenerFigures {
    pub publisher: PublisherFigures,
    pub router: RouterFigures,
}

impl ListenerFigures {
    pub fn broker_up(&self) -> bool {
        self.publisher.connected.get() == 1
    }

    /// Events routed to `queue` so far.
    pub fn routed(&self, queue: QueueKind) -> u64 {
        self.router.events.at(queue.index()).map_or(0, Counter::get)
    }
}

figures! {
    /// The Finlight news connection.
    pub struct NewsFigures {
        /// The news listener's mailbox and messages
        pub actor: ActorMetrics = "news_listener";
        /// 1 while the Finlight socket is open
        pub connected: Gauge = "tickwire_news_connected";
        /// Successful WebSocket connects
        pub connects: Counter = "tickwire_news_connects_total";
        /// Supervisor restarts after a disconnect, error, preemption or rotation
        pub reconnects: Counter = "tickwire_news_reconnects_total";
        /// Connections replaced before Finlight's connection lifetime ran out
        pub rotations: Counter = "tickwire_news_rotations_total";
        /// Handshakes and admissions by result
        pub handshakes: Counter = "tickwire_news_handshakes_total",
            by "result" in &["admitted", "refused", "rate_limited", "failed"];
        /// Messages read from Finlight
        pub messages_in: Counter = "tickwire_news_messages_total";
        /// Articles read and passed on
        pub articles: Counter = "tickwire_news_articles_total";
        /// Messages with an action this version does not know, counted and skipped
        pub unknown: Counter = "tickwire_news_unknown_messages_total";
        /// Messages that could not be read (not JSON, binary, over the size limit), skipped
        pub unreadable: Counter = "tickwire_news_unreadable_messages_total";
        /// Connections taken over by another with the same key (`preempted`)
        pub preempted_total: Counter = "tickwire_news_preempted_total";
        /// Connections ended by the server's `admin_kick`
        pub kicks: Counter = "tickwire_news_admin_kicks_total";
        /// `error` messages from the server
        pub server_errors: Counter = "tickwire_news_server_errors_total";
        /// Connections ended for silence past the liveness limit
        pub dead_peer: Counter = "tickwire_news_dead_peer_total";
    }
}

impl NewsFigures {
    pub fn handshake(&self, result: &str) {
        self.handshakes.inc(result);
    }

    pub fn preempted(&self, reason: &str, wait: Duration) {
        self.preempted_total.inc();
        log::warn!("Finlight preempted this connection ({reason}): another one took the key; reconnecting in {wait:?}");
    }

    pub fn kicked(&self, wait: Duration) {
        self.kicks.inc();
        log::warn!("Finlight kicked this connection; reconnecting in {wait:?}");
    }

    pub fn server_error(&self, message: &str) {
        self.server_errors.inc();
        log::warn!("Finlight error: {message}");
    }

    pub fn unreadable(&self, why: &str) {
        if self.unreadable.get().is_multiple_of(1000) {
            log::warn!("skipping a Finlight message: {why}");
        }
        self.unreadable.inc();
    }

    pub fn dead_peer(&self, after: Duration) {
        self.dead_peer.inc();
        log::warn!("no message from Finlight for {after:?}: declaring the connection dead");
    }
}

figures! {
    /// The news publisher (RabbitMQ `news` queue, with publisher confirms).
    pub struct NewsPublisherFigures {
        /// The news publisher's mailbox and messages
        pub actor: ActorMetrics = "news_publisher";
        /// 1 while connected to RabbitMQ
        pub connected: Gauge = "tickwire_news_publisher_connected";
        /// Articles confirmed by RabbitMQ
        pub published: Counter = "tickwire_news_published_total";
        /// Publishes not confirmed (the article is sent again after reconnecting)
        pub failed: Counter = "tickwire_news_publish_failed_total";
        /// Articles dropped, oldest first, while the buffer was full (RabbitMQ away)
        pub dropped: Counter = "tickwire_news_dropped_total";
        /// Failed connects to RabbitMQ
        pub connect_errors: Counter = "tickwire_news_publisher_connect_errors_total";
        /// Articles waiting for RabbitMQ
        pub buffered: Gauge = "tickwire_news_publisher_buffered";
    }
}

impl NewsPublisherFigures {
    pub fn connect_failed(&self, error: &str, retry_in: Duration) {
        self.connect_errors.inc();
        log::warn!("news publisher: RabbitMQ connect failed ({error}); retrying in {retry_in:?}");
    }

    pub fn publish_failed(&self, error: &str) {
        self.failed.inc();
        log::warn!("news publish failed ({error}); the article is sent again after reconnecting");
    }

    pub fn dropped_oldest(&self, buffer: usize) {
        if self.dropped.get().is_multiple_of(100) {
            log::warn!("news buffer full ({buffer} articles, RabbitMQ away): dropping the oldest");
        }
        self.dropped.inc();
    }
}
