//! RabbitMQ helpers for integration tests: a clear failure when the broker is unreachable,
//! per-test queue prefixes, a reader and cleanup. (The TCP proxy that cuts one client's link
//! to the real broker is `common::proxy`.)

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use lapin::options::{BasicGetOptions, QueueDeleteOptions};
use lapin::{Channel, Connection, ConnectionProperties};

pub const RABBIT: &str = "127.0.0.1:5672";

/// The broker URL; fails the test with instructions when RabbitMQ is not running.
pub fn rabbit_url() -> String {
    if std::net::TcpStream::connect(RABBIT).is_err() {
        panic!(
            "RabbitMQ is not reachable on {RABBIT}: start it with `rabbitmq-server -detached` \
             (scripts/test.sh starts it when installed)"
        );
    }
    format!("amqp://guest:guest@{RABBIT}/%2f")
}

/// A queue prefix no other test (or run) uses.
pub fn unique_prefix(test: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "tw-test-{test}-{}-{}-",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub async fn channel() -> (Connection, Channel) {
    let conn = Connection::connect(&rabbit_url(), ConnectionProperties::default())
        .await
        .expect("connect to RabbitMQ");
    let ch = conn.create_channel().await.expect("channel");
    (conn, ch)
}

/// Takes every message waiting on `queue` (no ack needed: auto-ack get).
pub async fn drain(ch: &Channel, queue: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Ok(Some(m)) = ch
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
    {
        out.push(m.delivery.data.clone());
    }
    out
}

pub async fn delete_queues(ch: &Channel, names: &[String]) {
    for n in names {
        let _ = ch
            .queue_delete(n.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
}

/// Deletes every shard queue the publisher declares under `prefix`, and the dead-letter path.
pub async fn delete_pipeline_queues(prefix: &str, shards: u16) {
    let (_conn, ch) = channel().await;
    delete_pipeline(&ch, prefix, shards).await;
}

/// [`delete_pipeline_queues`] on a channel the test already has.
pub async fn delete_pipeline(ch: &Channel, prefix: &str, shards: u16) {
    // Deleting what is not there fails the channel: a test's leftovers must not.
    if let Err(e) = tickwire::queue::topology::delete_topology(ch, prefix, shards).await {
        eprintln!("cleanup of {prefix}: {e}");
    }
}
