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

/// A RabbitMQ node of the test's own (a broker restart must not touch the shared one): its
/// own node name, ports and data directory, started in the foreground and shut down when
/// dropped. Needs `rabbitmq-server` and its `rabbitmq` user (scripts/test.sh installs both).
pub struct PrivateRabbit {
    pub port: u16,
    name: String,
    dir: std::path::PathBuf,
    child: Option<std::process::Child>,
}

impl PrivateRabbit {
    pub async fn start() -> PrivateRabbit {
        let free = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("free port")
        };
        let (port, dist) = (free(), free());
        let name = format!("twtest{}x{port}@localhost", std::process::id());
        let dir = std::env::temp_dir().join(format!("tw-rabbit-{port}"));
        std::fs::create_dir_all(&dir).expect("broker directory");
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!("listeners.tcp.local = 127.0.0.1:{port}\n"),
        )
        .expect("broker config");
        std::fs::write(dir.join("enabled_plugins"), "[].\n").expect("plugins file");
        // The server script runs the node as the `rabbitmq` user.
        let chown = std::process::Command::new("chown")
            .args(["-R", "rabbitmq"])
            .arg(&dir)
            .status();
        assert!(
            chown.is_ok_and(|s| s.success()),
            "cannot hand {} to the rabbitmq user: is RabbitMQ installed (scripts/test.sh)?",
            dir.display()
        );
        let child = std::process::Command::new("rabbitmq-server")
            .env("RABBITMQ_NODENAME", &name)
            .env("RABBITMQ_NODE_PORT", port.to_string())
            .env("RABBITMQ_DIST_PORT", dist.to_string())
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("rabbitmq-server is installed (scripts/test.sh installs it)");
        let r = PrivateRabbit {
            port,
            name,
            dir,
            child: Some(child),
        };
        r.wait_up().await;
        r
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    async fn wait_up(&self) {
        let url = self.url();
        super::wait_until_async("the private RabbitMQ accepts connections", || {
            let url = url.clone();
            async move {
                lapin::Connection::connect(&url, ConnectionProperties::default())
                    .await
                    .is_ok()
            }
        })
        .await;
    }

    async fn ctl(&self, command: &str) {
        let status = tokio::process::Command::new("rabbitmqctl")
            .args(["-n", &self.name, command])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .await;
        assert!(
            status.is_ok_and(|s| s.success()),
            "rabbitmqctl {command} on {}",
            self.name
        );
    }

    /// Stops the broker application (every connection closes, non-durable queues go) and
    /// starts it again: a real broker restart, the Erlang node kept.
    pub async fn restart(&self) {
        self.ctl("stop_app").await;
        self.ctl("start_app").await;
        self.wait_up().await;
    }
}

impl Drop for PrivateRabbit {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["-n", &self.name, "shutdown"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        if let Some(mut c) = self.child.take() {
            c.kill().ok();
            c.wait().ok();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
