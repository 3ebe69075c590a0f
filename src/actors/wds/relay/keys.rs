//! Which keys may use the relay: the control plane's relay keys by hash, read again every
//! second or so. A key that disappears (revoked, its user removed) ends its sockets at the
//! next read; when the keys cannot be read the last ones known stay in force (counted).
//!
//! Distributed, the control plane keeps the hashes in the node registry's Redis
//! ([`crate::relay::keys_key`]); embedded, the key store is read in process.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix::Recipient;
use deadpool_redis::redis::AsyncCommands;

use super::hub::KeysNow;
use crate::actors::wds::metrics::RelayFigures;
use crate::relay::{key_hash, RelayKey, RelayKeys};

/// Where the keys come from.
#[derive(Clone)]
pub enum KeySource {
    /// The node registry's Redis hash.
    Redis {
        pool: deadpool_redis::Pool,
        key: String,
    },
    /// The control plane's key store in the same process (embedded mode).
    Local(Arc<dyn Fn() -> RelayKeys + Send + Sync>),
}

impl KeySource {
    async fn read(&self) -> Result<RelayKeys, String> {
        match self {
            KeySource::Local(f) => Ok(f()),
            KeySource::Redis { pool, key } => {
                let mut conn = pool.get().await.map_err(|e| e.to_string())?;
                let raw: std::collections::HashMap<String, String> =
                    conn.hgetall(key).await.map_err(|e| e.to_string())?;
                // An unreadable entry is left out (it cannot authenticate anyone), not fatal.
                Ok(raw
                    .into_iter()
                    .filter_map(|(h, v)| Some((h, serde_json::from_str::<RelayKey>(&v).ok()?)))
                    .collect())
            }
        }
    }
}

/// The keys as last read.
#[derive(Default)]
pub struct KeyCache {
    keys: RwLock<Arc<RelayKeys>>,
}

impl KeyCache {
    /// The record of `key`, if it may use the relay.
    pub fn find(&self, key: &str) -> Option<(String, RelayKey)> {
        let hash = key_hash(key);
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        keys.get(&hash).cloned().map(|k| (hash, k))
    }

    fn replace(&self, keys: RelayKeys) -> Option<Arc<RelayKeys>> {
        let mut cur = self.keys.write().unwrap_or_else(|p| p.into_inner());
        if **cur == keys {
            return None;
        }
        *cur = Arc::new(keys);
        Some(cur.clone())
    }
}

/// Reads the keys now and then every `every` into `cache`; tells `hub` when they changed.
pub fn watch(
    cache: Arc<KeyCache>,
    source: KeySource,
    every: Duration,
    hub: Recipient<KeysNow>,
    figures: RelayFigures,
) {
    actix::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match source.read().await {
                Ok(keys) => {
                    figures.keys.set(keys.len() as i64);
                    if let Some(now) = cache.replace(keys) {
                        if hub.try_send(KeysNow(now)).is_err() && !hub.connected() {
                            return;
                        }
                    }
                }
                Err(e) => figures.key_error(&e),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_by_their_hash_only() {
        let cache = KeyCache::default();
        let mut keys = RelayKeys::new();
        keys.insert(
            key_hash("twk_abc"),
            RelayKey {
                id: "k1".into(),
                user: "ann".into(),
            },
        );
        assert!(cache.replace(keys.clone()).is_some());
        assert!(cache.replace(keys).is_none(), "unchanged: no news");
        assert_eq!(cache.find("twk_abc").unwrap().1.user, "ann");
        assert!(cache.find("twk_abd").is_none());
    }
}
