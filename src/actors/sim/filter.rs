//! What flows from the feed to sessions: events encoded once, shared by all (each session
//! picks its own out with a [`crate::massive::subscriptions::SubscriptionSet`]).

use std::sync::Arc;

use bytes::Bytes;

/// One event, serialised once by the feed and shared by every session that wants it.
#[derive(Debug, Clone)]
pub struct EncodedEvent {
    /// Subscription channel that delivers it (usually its `ev`).
    pub channel: Arc<str>,
    pub symbol: Arc<str>,
    /// The event's JSON object, exactly as sent.
    pub json: Bytes,
}
