//! The message the listener puts on a queue: one per (frame, queue, shard), and the batch
//! a consumer reads back from it.
//!
//! `{"received_at":<epoch ms>,"asset_class":"stocks","events":[<original event objects>]}`
//!
//! The events are the exact bytes Massive sent (never re-encoded), so consumers see what
//! Massive said; `received_at` is when the listener read the frame off the socket, carried
//! on so that the latency from socket to browser can be measured.

use std::fmt::Write as _;

use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{EventBatch, QueueKind};
use crate::massive::Market;

/// Content type of the JSON envelope (named in the AMQP message properties).
pub const CONTENT_TYPE: &str = "application/json";

/// Writes the envelope around already-encoded events.
pub fn encode(received_at_ms: i64, asset_class: &str, events: &[Bytes]) -> Bytes {
    let size: usize = events.iter().map(Bytes::len).sum::<usize>() + events.len() + 80;
    let mut b = BytesMut::with_capacity(size);
    b.put_slice(b"{\"received_at\":");
    // Formats straight into the buffer: no String per message.
    let _ = write!(b, "{received_at_ms}");
    b.put_slice(b",\"asset_class\":\"");
    // Market paths are fixed ASCII names; nothing to escape.
    b.put_slice(asset_class.as_bytes());
    b.put_slice(b"\",\"events\":[");
    for (n, e) in events.iter().enumerate() {
        if n > 0 {
            b.put_u8(b',');
        }
        b.put_slice(e);
    }
    b.put_slice(b"]}");
    b.freeze()
}

/// A decoded envelope; events stay raw for the consumer to parse per element.
#[derive(Debug, Deserialize)]
pub struct Envelope<'a> {
    pub received_at: i64,
    pub asset_class: String,
    #[serde(borrow)]
    pub events: Vec<&'a RawValue>,
}

pub fn decode(body: &[u8]) -> Result<Envelope<'_>, serde_json::Error> {
    serde_json::from_slice(body)
}

#[derive(Debug, thiserror::Error)]
/// Why a queue message is not a batch (it would fail again on any node: reject it).
pub enum DecodeError {
    #[error("not a queue envelope: {0}")]
    Envelope(#[from] serde_json::Error),
    #[error("unknown asset class {0:?}")]
    Market(String),
}

/// Reads a queue message into a batch whose events are zero-copy slices of the body.
pub fn decode_batch(kind: QueueKind, shard: u16, body: Bytes) -> Result<EventBatch, DecodeError> {
    let env = decode(&body)?;
    let market: Market = env
        .asset_class
        .parse()
        .map_err(|_| DecodeError::Market(env.asset_class.clone()))?;
    let events = env
        .events
        .iter()
        .map(|raw| body.slice_ref(raw.get().as_bytes()))
        .collect();
    Ok(EventBatch {
        queue: kind,
        shard,
        received_at_ms: env.received_at,
        market,
        events,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_event_bytes() {
        let events = vec![
            Bytes::from_static(br#"{"ev":"T","sym":"AAPL","p":1.50}"#),
            Bytes::from_static(br#"{"ev":"T"}"#),
        ];
        let body = encode(1772652572552, "stocks", &events);
        let env = decode(&body).unwrap();
        assert_eq!(env.received_at, 1772652572552);
        assert_eq!(env.asset_class, "stocks");
        assert_eq!(
            env.events[0].get(),
            r#"{"ev":"T","sym":"AAPL","p":1.50}"#,
            "1.50 is not re-encoded"
        );
    }
}
