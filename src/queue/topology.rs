//! The RabbitMQ side of the queue contract: queue names and the arguments every declarer
//! must use identically (else the broker answers PRECONDITION_FAILED).
//!
//! For each queue type S shard queues `<prefix><type>.<shard>`, with `x-message-ttl`
//! (`MARKET_DATA_MESSAGE_TTL`, 5000 ms by default: freshness over durability) and
//! `x-single-active-consumer` (one active consumer per shard keeps per-symbol order and
//! gives failover). The listener declares them at connect, the processor before it consumes,
//! so either may start first.
//!
//! A message that expires (nobody consumed it within the TTL: no processor, or a handover
//! slower than the TTL) is not lost silently: every shard queue names the dead-letter
//! exchange `<prefix>expired` (`x-dead-letter-exchange`), a fanout bound to one queue
//! `<prefix>expired`, which the processors read only to count what expired, by queue
//! ([`parse_queue_name`] recovers it from the routing key). That queue is bounded
//! ([`EXPIRED_MAX_MESSAGES`], [`EXPIRED_TTL_MS`]) so that it cannot grow while no processor
//! runs; its depth is then what RabbitMQ's own figures show.
//!
//! Queues declared by a version without the dead-letter argument must be deleted once
//! (non-persistent, 5 s of data at most): the broker refuses a redeclare with other
//! arguments (docs/operations.md, "Upgrading").

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};

use super::QueueKind;

/// The most expired messages waiting to be counted; older ones leave first.
pub const EXPIRED_MAX_MESSAGES: u32 = 100_000;
/// How long an expired message waits to be counted.
pub const EXPIRED_TTL_MS: u32 = 600_000;

/// How long a news article waits for the news processor (15 minutes: news stays news
/// longer than a quote stays a quote).
pub const NEWS_TTL_MS: u32 = 900_000;
/// AMQP header with the news listener's receive time (epoch ms) of an article.
pub const RECEIVED_AT_HEADER: &str = "received_at";

/// The news queue's name.
pub fn news_queue_name(prefix: &str) -> String {
    format!("{prefix}news")
}

/// Declares the news queue (single active consumer, so one processor node files the news
/// at a time and its replace-on-repeat memory stays whole) and its dead-letter path.
pub async fn declare_news_queue(
    channel: &Channel,
    prefix: &str,
    ttl_ms: u32,
) -> Result<(), lapin::Error> {
    declare_expired(channel, prefix).await?;
    declare_with_arguments(channel, &news_queue_name(prefix), prefix, ttl_ms).await
}

/// Declares queue `name` with the arguments every declarer uses.
async fn declare_with_arguments(
    channel: &Channel,
    name: &str,
    prefix: &str,
    ttl_ms: u32,
) -> Result<(), lapin::Error> {
    channel
        .queue_declare(
            name.into(),
            QueueDeclareOptions::default(),
            queue_arguments(prefix, ttl_ms),
        )
        .await?;
    Ok(())
}

/// The queue name of (kind, shard).
pub fn queue_name(prefix: &str, kind: QueueKind, shard: u16) -> String {
    format!("{prefix}{}.{shard}", kind.name())
}

/// The (queue type, shard) of a shard queue's name, or None for any other name.
pub fn parse_queue_name(prefix: &str, name: &str) -> Option<(QueueKind, u16)> {
    let (kind, shard) = name.strip_prefix(prefix)?.split_once('.')?;
    Some((QueueKind::from_name(kind)?, shard.parse().ok()?))
}

/// The dead-letter exchange of the shard queues, and the one queue bound to it.
pub fn expired_name(prefix: &str) -> String {
    format!("{prefix}expired")
}

/// Queue arguments every declarer must use identically.
pub fn queue_arguments(prefix: &str, ttl_ms: u32) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-message-ttl".into(), AMQPValue::LongUInt(ttl_ms));
    args.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(expired_name(prefix).into()),
    );
    args
}

/// Declares the dead-letter exchange and its counting queue (idempotent).
async fn declare_expired(channel: &Channel, prefix: &str) -> Result<(), lapin::Error> {
    let name = expired_name(prefix);
    channel
        .exchange_declare(
            name.as_str().into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut args = FieldTable::default();
    args.insert(
        "x-max-length".into(),
        AMQPValue::LongUInt(EXPIRED_MAX_MESSAGES),
    );
    args.insert("x-message-ttl".into(), AMQPValue::LongUInt(EXPIRED_TTL_MS));
    channel
        .queue_declare(name.as_str().into(), QueueDeclareOptions::default(), args)
        .await?;
    channel
        .queue_bind(
            name.as_str().into(),
            name.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
}

async fn declare_shard_queue(
    channel: &Channel,
    prefix: &str,
    kind: QueueKind,
    shard: u16,
    ttl_ms: u32,
) -> Result<(), lapin::Error> {
    declare_with_arguments(channel, &queue_name(prefix, kind, shard), prefix, ttl_ms).await
}

/// Declares one shard queue and its dead-letter path (idempotent: also brings back a queue
/// or an exchange deleted under a consumer).
pub async fn declare_queue(
    channel: &Channel,
    prefix: &str,
    kind: QueueKind,
    shard: u16,
    ttl_ms: u32,
) -> Result<(), lapin::Error> {
    declare_expired(channel, prefix).await?;
    declare_shard_queue(channel, prefix, kind, shard, ttl_ms).await
}

/// Declares every shard queue of every type, and the dead-letter path.
pub async fn declare_topology(
    channel: &Channel,
    prefix: &str,
    shards: u16,
    ttl_ms: u32,
) -> Result<(), lapin::Error> {
    declare_expired(channel, prefix).await?;
    for kind in QueueKind::ALL {
        for shard in 0..shards.max(1) {
            declare_shard_queue(channel, prefix, kind, shard, ttl_ms).await?;
        }
    }
    Ok(())
}

/// Deletes everything [`declare_topology`] declared (tests and benchmarks clean up with it).
pub async fn delete_topology(
    channel: &Channel,
    prefix: &str,
    shards: u16,
) -> Result<(), lapin::Error> {
    for kind in QueueKind::ALL {
        for shard in 0..shards.max(1) {
            channel
                .queue_delete(queue_name(prefix, kind, shard).into(), Default::default())
                .await?;
        }
    }
    let name = expired_name(prefix);
    channel
        .queue_delete(name.as_str().into(), Default::default())
        .await?;
    channel
        .exchange_delete(name.as_str().into(), Default::default())
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_prefix_type_and_shard() {
        assert_eq!(queue_name("t1:", QueueKind::Quotes, 3), "t1:quotes.3");
        assert_eq!(queue_name("", QueueKind::Aggregate, 0), "aggregate.0");
    }

    #[test]
    fn a_queue_name_reads_back_and_nothing_else_does() {
        for kind in QueueKind::ALL {
            let name = queue_name("t1:", kind, 7);
            assert_eq!(parse_queue_name("t1:", &name), Some((kind, 7)));
            assert_eq!(parse_queue_name("t2:", &name), None);
        }
        for other in [
            "t1:expired",
            "t1:quotes",
            "t1:quotes.x",
            "t1:news.1",
            "t1:quotes.70000",
        ] {
            assert_eq!(parse_queue_name("t1:", other), None, "{other}");
        }
    }
}
