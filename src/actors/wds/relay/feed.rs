//! The relay's feed in distributed mode: this node's own queue on the listener's
//! `tickwire.relay` fanout exchange, consumed into the [`RelayHub`](super::hub::RelayHub).
//!
//! The queue is exclusive and auto-deleted (it lives as long as this node's connection),
//! with a short message TTL and a length cap (oldest dropped): a relay is about now, and a
//! node that falls behind or goes away must not make RabbitMQ hold the firehose for it.
//! At most 256 messages are delivered ahead (prefetch), each acknowledged as it is taken and
//! handed to the hub one at a time, so a slow hub leaves the backlog in RabbitMQ, bounded,
//! rather than in this process; the connection is re-made with backoff when it goes.

use std::time::Duration;

use actix::Recipient;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Connection, ConnectionProperties};

use crate::actors::wds::metrics::RelayFigures;
use crate::backoff::Backoff;
use crate::relay::{declare_exchange, exchange_name, Relayed};

/// Messages a relay queue holds while its node is slow (oldest dropped past it).
const QUEUE_MAX_LENGTH: i64 = 20_000;
/// Messages delivered to this node and not yet handed to the hub.
const PREFETCH: u16 = 256;
/// Message TTL of a relay queue (ms).
const QUEUE_TTL_MS: i64 = 5_000;

/// Where the feed reads.
#[derive(Debug, Clone)]
pub struct FeedConfig {
    pub url: String,
    /// The listener's queue prefix (tests use a unique one).
    pub queue_prefix: String,
    pub node_id: String,
}

async fn consume(
    cfg: &FeedConfig,
    hub: &Recipient<Relayed>,
    figures: &RelayFigures,
    backoff: &mut Backoff,
) -> Result<(), lapin::Error> {
    let conn = Connection::connect(&cfg.url, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    let exchange = exchange_name(&cfg.queue_prefix);
    declare_exchange(&channel, &exchange).await?;
    let mut args = FieldTable::default();
    args.insert(
        ShortString::from("x-message-ttl"),
        AMQPValue::LongLongInt(QUEUE_TTL_MS),
    );
    args.insert(
        ShortString::from("x-max-length"),
        AMQPValue::LongLongInt(QUEUE_MAX_LENGTH),
    );
    let queue = format!("{exchange}.{}", cfg.node_id);
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            args,
        )
        .await?;
    channel
        .queue_bind(
            queue.as_str().into(),
            exchange.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    // At most this many unacknowledged messages in this process: the rest wait in RabbitMQ.
    channel
        .basic_qos(PREFETCH, BasicQosOptions::default())
        .await?;
    let mut consumer = channel
        .basic_consume(
            queue.as_str().into(),
            "relay".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    log::info!("relay: consuming {queue}");
    figures.feed_connected.set(1);
    backoff.reset();
    while let Some(delivery) = consumer.next().await {
        let delivery = delivery?;
        let decoded = Relayed::decode(&delivery.data);
        delivery.ack(BasicAckOptions::default()).await?;
        match decoded {
            // Awaited, so a hub that falls behind holds the feed back: what waits then
            // waits in RabbitMQ, within the queue's TTL and length, not in the mailbox.
            Ok(m) => {
                if hub.send(m).await.is_err() {
                    return Ok(());
                }
            }
            Err(e) => figures.undecodable(&e.to_string()),
        }
    }
    Ok(())
}

/// Runs the feed for as long as the hub does.
pub fn start(cfg: FeedConfig, hub: Recipient<Relayed>, figures: RelayFigures) {
    actix::spawn(async move {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        while hub.connected() {
            let res = consume(&cfg, &hub, &figures, &mut backoff).await;
            figures.feed_connected.set(0);
            let delay = backoff.next_delay();
            match res {
                Ok(()) => log::warn!("relay: feed ended; again in {delay:?}"),
                Err(e) => figures.feed_failed(&e.to_string(), delay),
            }
            tokio::time::sleep(delay).await;
        }
    });
}
