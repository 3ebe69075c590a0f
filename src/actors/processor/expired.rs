//! Counts the shard-queue messages that RabbitMQ dead-lettered because they expired (their
//! TTL passed before any processor took them): the one loss in the queues that the broker
//! itself causes, so that it is counted, by queue, in messages and in events.
//!
//! Every processor consumes the `<prefix>expired` queue (queue::topology) beside its shard
//! queues, with auto-ack: the broker shares the expired messages among the processors, and
//! the sum of their counters is the total. The loop runs for the life of the consumer's
//! connection and is started again with it.

use bytes::Bytes;
use futures_util::StreamExt;
use lapin::options::BasicConsumeOptions;
use lapin::types::{AMQPValue, FieldTable};
use lapin::Connection;

use super::metrics::ConsumerFigures;
use crate::queue::envelope;
use crate::queue::topology::{expired_name, news_queue_name, parse_queue_name};

/// Why the broker dead-lettered a message (`x-first-death-reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeathReason {
    /// The message TTL passed.
    Expired,
    /// A consumer rejected it without requeue (already counted by that consumer).
    Rejected,
    /// Anything else (a length limit, a delivery limit, a header we do not know).
    Other,
}

/// The reason of a dead-lettered message, from its headers.
pub fn death_reason(headers: Option<&FieldTable>) -> DeathReason {
    let reason = headers.and_then(|h| h.inner().get("x-first-death-reason"));
    let text = match reason {
        Some(AMQPValue::LongString(s)) => s.as_bytes(),
        Some(AMQPValue::ShortString(s)) => s.as_str().as_bytes(),
        _ => return DeathReason::Other,
    };
    match text {
        b"expired" => DeathReason::Expired,
        b"rejected" => DeathReason::Rejected,
        _ => DeathReason::Other,
    }
}

/// Consumes the expired queue until the connection or the channel ends.
pub async fn count_expired(
    conn: std::sync::Arc<Connection>,
    prefix: String,
    figures: ConsumerFigures,
) -> Result<(), lapin::Error> {
    let ch = conn.create_channel().await?;
    let queue = expired_name(&prefix);
    let mut deliveries = ch
        .basic_consume(
            queue.as_str().into(),
            format!("tickwire-count-{queue}").into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    let news_queue = news_queue_name(&prefix);
    while let Some(d) = deliveries.next().await {
        let d = d?;
        let reason = death_reason(d.properties.headers().as_ref());
        // Dead-lettered with their original routing key: the shard queue's name.
        let shard_queue = parse_queue_name(&prefix, d.routing_key.as_str());
        let (kind, shard) = match (reason, shard_queue) {
            (DeathReason::Expired, Some(q)) => q,
            (DeathReason::Expired, None) if d.routing_key.as_str() == news_queue => {
                figures.news_expired();
                continue;
            }
            // Counted by the consumer that rejected it.
            (DeathReason::Rejected, Some(_)) => continue,
            (reason, _) => {
                figures.dead_lettered(&reason, d.routing_key.as_str());
                continue;
            }
        };
        // An envelope that does not read still counts as one message of no known events.
        let events =
            envelope::decode_batch(kind, shard, Bytes::from(d.data)).map_or(0, |b| b.events.len());
        figures.expired(kind, shard, events);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(reason: AMQPValue) -> FieldTable {
        let mut t = FieldTable::default();
        t.insert("x-first-death-reason".into(), reason);
        t
    }

    #[test]
    fn reasons_read_from_either_string_type_and_default_to_other() {
        let long = |s: &str| AMQPValue::LongString(s.into());
        assert_eq!(
            death_reason(Some(&headers(long("expired")))),
            DeathReason::Expired
        );
        assert_eq!(
            death_reason(Some(&headers(AMQPValue::ShortString("rejected".into())))),
            DeathReason::Rejected
        );
        assert_eq!(
            death_reason(Some(&headers(long("maxlen")))),
            DeathReason::Other
        );
        assert_eq!(
            death_reason(Some(&headers(AMQPValue::Boolean(true)))),
            DeathReason::Other
        );
        assert_eq!(death_reason(None), DeathReason::Other);
    }
}
