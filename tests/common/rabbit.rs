//! RabbitMQ helpers for integration tests: a clear failure when the broker is unreachable,
//! per-test queue prefixes, a reader, and a TCP proxy that can cut one client's link to the
//! real broker (to test "RabbitMQ down" without stopping the shared server).

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use lapin::options::{BasicGetOptions, QueueDeleteOptions};
use lapin::{Channel, Connection, ConnectionProperties};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

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

/// TCP proxy to the real broker; `cut` drops every link and refuses new ones until `restore`.
pub struct Proxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub async fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (up2, links2) = (up.clone(), links.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: connection refused in effect
                }
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(RABBIT).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                links2.lock().unwrap().push(link);
            }
        });
        Proxy {
            port,
            up,
            links,
            accept,
        }
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for l in self.links.lock().unwrap().drain(..) {
            l.abort();
        }
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
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
