//! How every node opens its Redis connections: one pool configuration (size, 3 s timeouts)
//! for the stores, the node registry, sessions and revocations alike.

use std::time::Duration;

use deadpool_redis::{Config, Pool, PoolConfig, Runtime, Timeouts};

/// A Redis URL that no pool can be built from.
#[derive(Debug, thiserror::Error)]
#[error("invalid Redis URL {url:?}: {reason}")]
pub struct RedisUrlError {
    pub url: String,
    pub reason: String,
}

/// A pool for `url` (`redis://[:password@]host:port/db`); connects lazily, on first use.
pub fn open(url: &str) -> Result<Pool, RedisUrlError> {
    let mut cfg = Config::from_url(url);
    let t = Some(Duration::from_secs(3));
    cfg.pool = Some(PoolConfig {
        max_size: 16,
        timeouts: Timeouts {
            wait: t,
            create: t,
            recycle: t,
        },
        ..PoolConfig::default()
    });
    cfg.create_pool(Some(Runtime::Tokio1))
        .map_err(|e| RedisUrlError {
            url: url.to_string(),
            reason: e.to_string(),
        })
}
