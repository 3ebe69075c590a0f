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
