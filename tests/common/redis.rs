//! Redis helpers for integration tests: a clear failure when Redis is unreachable, and
//! per-test key prefixes.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};

pub const REDIS: &str = "127.0.0.1:6379";

/// The Redis URL; fails the test with instructions when Redis is not running.
pub fn redis_url() -> String {
    if std::net::TcpStream::connect(REDIS).is_err() {
        panic!(
            "Redis is not reachable on {REDIS}: start it with `redis-server --daemonize yes --bind 127.0.0.1 \
             --port 6379 --save \"\" --appendonly no` (scripts/test.sh starts it when installed)"
        );
    }
    format!("redis://{REDIS}/")
}

pub fn unique_prefix(test: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "tw-test:{test}:{}:{}:",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A connection to the test Redis (fails the test when Redis is down).
pub async fn connection() -> deadpool_redis::Connection {
    deadpool_redis::Config::from_url(redis_url())
        .create_pool(Some(deadpool_redis::Runtime::Tokio1))
        .expect("pool")
        .get()
        .await
        .expect("redis connection")
}

/// Deletes every key under `prefix`.
pub async fn cleanup(prefix: &str) {
    let mut conn = connection().await;
    let keys: Vec<String> = deadpool_redis::redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut *conn)
        .await
        .unwrap_or_default();
    for k in keys {
        let _: Result<i64, _> = deadpool_redis::redis::cmd("DEL")
            .arg(k)
            .query_async(&mut *conn)
            .await;
    }
}

/// A throw-away `redis-server` of the test's own on a free port, to kill and restart.
pub struct PrivateRedis {
    pub port: u16,
    /// More `redis-server` options (say `--requirepass`), kept for restarts.
    options: Vec<String>,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    pub fn start() -> PrivateRedis {
        Self::start_with(&[])
    }

    pub fn start_with(options: &[&str]) -> PrivateRedis {
        redis_url();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            l.local_addr().expect("local addr").port()
        };
        let mut r = PrivateRedis {
            port,
            options: options.iter().map(|o| o.to_string()).collect(),
            child: None,
        };
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts the server again (on the same port) after [`PrivateRedis::kill`].
    pub fn restart(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(&self.options)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/test.sh needs it too)");
        self.child = Some(child);
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().ok();
            c.wait().ok();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
