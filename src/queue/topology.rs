//! The RabbitMQ side of the queue contract: queue names and the arguments every declarer
//! must use identically (else the broker answers PRECONDITION_FAILED).
//!
//! For each queue type S shard queues `<prefix><type>.<shard>`, with `x-message-ttl`
//! (`MARKET_DATA_MESSAGE_TTL`, 5000 ms by default: freshness over durability) and
//! `x-single-active-consumer` (one active consumer per shard keeps per-symbol order and
//! gives failover). The listener declares them at connect, the processor before it consumes,
//! so either may start first.

use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable};
use lapin::Channel;

use super::QueueKind;

/// The queue name of (kind, shard).
pub fn queue_name(prefix: &str, kind: QueueKind, shard: u16) -> String {
    format!("{prefix}{}.{shard}", kind.name())
}

/// Queue arguments every declarer must use identically.
pub fn queue_arguments(ttl_ms: u32) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-message-ttl".into(), AMQPValue::LongUInt(ttl_ms));
    args.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
    args
}

/// Declares one shard queue (idempotent: also brings back a queue deleted under a consumer).
pub async fn declare_queue(
    channel: &Channel,
    prefix: &str,
    kind: QueueKind,
    shard: u16,
    ttl_ms: u32,
) -> Result<(), lapin::Error> {
    channel
        .queue_declare(
            queue_name(prefix, kind, shard).into(),
            QueueDeclareOptions::default(),
            queue_arguments(ttl_ms),
        )
        .await?;
    Ok(())
}

/// Declares every shard queue of every type.
pub async fn declare_topology(
    channel: &Channel,
    prefix: &str,
    shards: u16,
    ttl_ms: u32,
) -> Result<(), lapin::Error> {
    for kind in QueueKind::ALL {
        for shard in 0..shards.max(1) {
            declare_queue(channel, prefix, kind, shard, ttl_ms).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_prefix_type_and_shard() {
        assert_eq!(queue_name("t1:", QueueKind::Quotes, 3), "t1:quotes.3");
        assert_eq!(queue_name("", QueueKind::Aggregate, 0), "aggregate.0");
    }
}
