//! API keys: what a user's own programs present instead of a browser session (issue 23).
//!
//! A user creates a key on the dashboard or with `POST /api/relay-keys`; the key itself is
//! shown once and only its SHA-256 is kept (keys are 32 random bytes: a fast hash is enough,
//! nothing to guess). Each key has scopes:
//!
//! | scope | allows |
//! |---|---|
//! | `relay` | the Massive relay (the WDS's Massive-compatible endpoint) |
//! | `api:read` | `Authorization: Bearer` on the control API's reads and on `POST /api/token` |
//! | `api:write` | the same on the control API's changes (and everything `api:read` allows) |
//! | `api:*` | every API scope; admins only |
//!
//! A bearer call acts as the key's owner as the users file has them now (a removed user's
//! keys stop working at once and are deleted; an admin demoted loses the control API), needs
//! no CSRF token (no cookie rides along), and WDS tokens it gets carry the key's id as their
//! session, so deleting the key ends their sockets too. Keys live in `relay-keys.json` in the
//! data directory, at most [`MAX_KEYS_PER_USER`] a user.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::auth::{require, Need};
use super::users::ADMIN;
use super::{ScpError, ScpState};
use crate::relay::{keys_key, RelayKey, RelayKeys};
use crate::revocation::Revocation;

/// Keys a user may hold at once.
pub const MAX_KEYS_PER_USER: usize = 20;
/// Every key starts so, which makes a leaked one easy to find in logs and repositories.
pub const KEY_PREFIX: &str = "twk_";
pub const SCOPES: [&str; 4] = ["relay", "api:read", "api:write", "api:*"];

/// One key as stored (the key's hash, never the key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub id: String,
    pub user: String,
    pub name: String,
    pub scopes: Vec<String>,
    /// Epoch ms.
    pub created: i64,
    /// SHA-256 of the key, hex.
    pub hash: String,
}

impl KeyRecord {
    pub fn has(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// Whether the key may call the API: `write` for a change, else a read.
    pub fn allows_api(&self, write: bool) -> bool {
        self.has("api:*") || self.has("api:write") || (!write && self.has("api:read"))
    }

    /// What `GET /api/relay-keys` shows: everything but the hash.
    pub fn public(&self) -> serde_json::Value {
        serde_json::json!({"id": self.id, "name": self.name, "scopes": self.scopes,
                           "created": self.created})
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{0}")]
    Invalid(String),
    #[error("keys file: {0}")]
    Io(#[from] std::io::Error),
}

fn hash(key: &str) -> String {
    crate::relay::key_hash(key)
}

/// The keys of every user, kept in memory and written through to the data directory.
pub struct KeyStore {
    path: PathBuf,
    /// By hash.
    keys: RwLock<HashMap<String, KeyRecord>>,
    /// Bumped by every change, so the relay's copy is rewritten when it moved.
    generation: AtomicU64,
}

impl KeyStore {
    /// Opens `path` (none yet: no keys). An unreadable file is an error: starting without
    /// the keys would silently lock every program out.
    pub fn open(path: PathBuf) -> Result<Self, KeyError> {
        let keys = match std::fs::read(&path) {
            Ok(b) => {
                let list: Vec<KeyRecord> = serde_json::from_slice(&b).map_err(|e| {
                    KeyError::Invalid(format!("{} is not a keys file: {e}", path.display()))
                })?;
                list.into_iter().map(|k| (k.hash.clone(), k)).collect()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => return Err(e.into()),
        };
        Ok(KeyStore {
            path,
            keys: RwLock::new(keys),
            generation: AtomicU64::new(1),
        })
    }

    fn save(&self, keys: &HashMap<String, KeyRecord>) -> Result<(), KeyError> {
        self.generation.fetch_add(1, Ordering::SeqCst);
        let mut list: Vec<&KeyRecord> = keys.values().collect();
        list.sort_by(|a, b| (&a.user, a.created, &a.id).cmp(&(&b.user, b.created, &b.id)));
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let body =
            serde_json::to_vec_pretty(&list).map_err(|e| KeyError::Invalid(e.to_string()))?;
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, body)?;
        std::fs::rename(tmp, &self.path)?;
        Ok(())
    }

    /// A new key for `user` (an admin when `admin`): the record and the key, which is not
    /// kept. `scopes` empty means `["relay"]`.
    pub fn create(
        &self,
        user: &str,
        admin: bool,
        name: &str,
        scopes: &[String],
        now_ms: i64,
    ) -> Result<(KeyRecord, String), KeyError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(KeyError::Invalid("name: 1-64 printable characters".into()));
        }
        let mut scopes: Vec<String> = if scopes.is_empty() {
            vec!["relay".into()]
        } else {
            scopes.to_vec()
        };
        scopes.sort();
        scopes.dedup();
        if let Some(bad) = scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
            return Err(KeyError::Invalid(format!(
                "scope {bad:?}: one of {}",
                SCOPES.join(", ")
            )));
        }
        if scopes.iter().any(|s| s == "api:*") && !admin {
            return Err(KeyError::Invalid("scope api:* is for admins".into()));
        }
        let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
        if keys.values().filter(|k| k.user == user).count() >= MAX_KEYS_PER_USER {
            return Err(KeyError::Invalid(format!(
                "at most {MAX_KEYS_PER_USER} keys a user: delete one first"
            )));
        }
        let key = format!(
            "{KEY_PREFIX}{}",
            crate::token::hex(&crate::token::random_bytes::<32>()?)
        );
        let record = KeyRecord {
            id: crate::token::hex(&crate::token::random_bytes::<6>()?),
            user: user.to_string(),
            name: name.to_string(),
            scopes,
            created: now_ms,
            hash: hash(&key),
        };
        keys.insert(record.hash.clone(), record.clone());
        if let Err(e) = self.save(&keys) {
            keys.remove(&record.hash);
            return Err(e);
        }
        Ok((record, key))
    }

    /// `user`'s keys, oldest first (by id within one millisecond, so the order is stable).
    pub fn list(&self, user: &str) -> Vec<KeyRecord> {
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        let mut mine: Vec<KeyRecord> = keys.values().filter(|k| k.user == user).cloned().collect();
        mine.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        mine
    }

    /// Deletes `user`'s key `id`; the record, if it was theirs.
    pub fn delete(&self, user: &str, id: &str) -> Result<Option<KeyRecord>, KeyError> {
        let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
        let Some(h) = keys
            .values()
            .find(|k| k.user == user && k.id == id)
            .map(|k| k.hash.clone())
        else {
            return Ok(None);
        };
        let gone = keys.remove(&h);
        self.save(&keys)?;
        Ok(gone)
    }

    /// Deletes every key of `user` (removed from the users file); how many.
    pub fn delete_user(&self, user: &str) -> Result<usize, KeyError> {
        let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
        let before = keys.len();
        keys.retain(|_, k| k.user != user);
        let n = before - keys.len();
        if n > 0 {
            self.save(&keys)?;
        }
        Ok(n)
    }

    /// What the relays may know: the hashes of the keys with the `relay` scope, and whose.
    pub fn relay_keys(&self) -> RelayKeys {
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        keys.iter()
            .filter(|(_, k)| k.has("relay"))
            .map(|(h, k)| {
                let id = k.id.clone();
                (
                    h.clone(),
                    RelayKey {
                        id,
                        user: k.user.clone(),
                    },
                )
            })
            .collect()
    }

    /// Changes so far (to notice one).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The record of `key`, if it is one.
    pub fn find(&self, key: &str) -> Option<KeyRecord> {
        if !key.starts_with(KEY_PREFIX) {
            return None;
        }
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        keys.get(&hash(key)).cloned()
    }
}

/// Keeps the relay keys in the node registry's Redis ([`crate::relay::keys_key`]), where
/// every WDS reads them: rewritten within a quarter second of a change, and every half
/// minute anyway (a restarted Redis gets them back). Runs as long as the process.
pub fn publish_to_redis(state: web::Data<ScpState>, pool: deadpool_redis::Pool, prefix: &str) {
    let key = keys_key(prefix);
    actix::spawn(async move {
        let mut written = 0;
        let mut last = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            let generation = state.keys.generation();
            if generation == written && last.elapsed() < Duration::from_secs(30) {
                continue;
            }
            let items: Vec<(String, String)> = state
                .keys
                .relay_keys()
                .into_iter()
                .filter_map(|(h, k)| Some((h, serde_json::to_string(&k).ok()?)))
                .collect();
            match write_relay_keys(&pool, &key, &items).await {
                Ok(()) => {
                    written = generation;
                    last = Instant::now();
                }
                Err(e) => {
                    state.metrics.relay_key_errors.inc();
                    log::warn!("relay keys not written to the node registry ({e}); retrying");
                }
            }
        }
    });
}

async fn write_relay_keys(
    pool: &deadpool_redis::Pool,
    key: &str,
    items: &[(String, String)],
) -> Result<(), String> {
    let mut conn = pool.get().await.map_err(|e| e.to_string())?;
    let mut pipe = deadpool_redis::redis::pipe();
    pipe.atomic().del(key).ignore();
    if !items.is_empty() {
        pipe.hset_multiple(key, items).ignore();
    }
    pipe.query_async::<()>(&mut conn)
        .await
        .map_err(|e| e.to_string())
}

#[derive(Deserialize)]
struct NewKey {
    name: String,
    #[serde(default)]
    scopes: Vec<String>,
}

/// `POST /api/relay-keys` (CSRF): a new key for the caller, shown this once.
async fn create(
    req: HttpRequest,
    state: web::Data<ScpState>,
    body: web::Json<NewKey>,
) -> Result<HttpResponse, ScpError> {
    let s = require(&req, &state, Need::ViewerWrite).await?;
    let now = chrono::Utc::now().timestamp_millis();
    let (rec, key) = state
        .keys
        .create(
            &s.username,
            s.has_role(ADMIN),
            &body.name,
            &body.scopes,
            now,
        )
        .map_err(key_error)?;
    log::info!(
        "{} created API key {} ({:?}, {})",
        s.username,
        rec.id,
        rec.name,
        rec.scopes.join(" ")
    );
    let mut out = rec.public();
    out["key"] = serde_json::Value::from(key);
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(out))
}

/// `GET /api/relay-keys`: the caller's keys, without the keys.
async fn list(req: HttpRequest, state: web::Data<ScpState>) -> Result<HttpResponse, ScpError> {
    let s = require(&req, &state, Need::Viewer).await?;
    let keys: Vec<serde_json::Value> = state
        .keys
        .list(&s.username)
        .iter()
        .map(KeyRecord::public)
        .collect();
    Ok(HttpResponse::Ok().json(keys))
}

/// `DELETE /api/relay-keys/{id}` (CSRF): the key stops working now, and the WDS sockets of
/// the tokens it got end.
async fn delete(
    req: HttpRequest,
    state: web::Data<ScpState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ScpError> {
    let s = require(&req, &state, Need::ViewerWrite).await?;
    let Some(rec) = state.keys.delete(&s.username, &id).map_err(key_error)? else {
        return Err(ScpError::NotFound(format!("no key {id}")));
    };
    log::info!("{} deleted API key {} ({:?})", s.username, rec.id, rec.name);
    let ttl = state.settings.token_ttl();
    state
        .revoke(Revocation::session_now(
            &s.username,
            &format!("key-{}", rec.id),
            ttl,
        ))
        .await;
    Ok(HttpResponse::Ok().json(serde_json::json!({"status": "OK"})))
}

fn key_error(e: KeyError) -> ScpError {
    match e {
        KeyError::Invalid(m) => ScpError::BadRequest(m),
        KeyError::Io(e) => ScpError::Internal(e.to_string()),
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/relay-keys", web::get().to(list))
        .route("/api/relay-keys", web::post().to(create))
        .route("/api/relay-keys/{id}", web::delete().to(delete));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(name: &str) -> (KeyStore, PathBuf) {
        let dir = std::env::temp_dir().join(format!("tw-keys-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("relay-keys.json");
        (KeyStore::open(path.clone()).unwrap(), path)
    }

    #[test]
    fn keys_are_stored_hashed_found_listed_and_deleted() {
        let (s, path) = store("basic");
        let (rec, key) = s.create("ann", false, "bot", &[], 1).unwrap();
        assert!(key.starts_with(KEY_PREFIX) && key.len() == 4 + 64);
        assert_eq!(rec.scopes, vec!["relay"]);
        let file = std::fs::read_to_string(&path).unwrap();
        assert!(
            !file.contains(&key) && file.contains(&rec.hash),
            "only the hash is kept"
        );
        assert_eq!(s.find(&key).map(|r| r.id), Some(rec.id.clone()));
        assert!(s.find("twk_nope").is_none() && s.find(&key[4..]).is_none());
        // Read back from the file.
        let again = KeyStore::open(path).unwrap();
        assert_eq!(again.list("ann"), vec![rec.clone()]);
        assert!(again.delete("bob", &rec.id).unwrap().is_none(), "not bob's");
        assert!(again.delete("ann", &rec.id).unwrap().is_some());
        assert!(again.find(&key).is_none());
    }

    #[test]
    fn scopes_names_and_the_cap_are_checked() {
        let (s, _) = store("checks");
        let scopes = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(s.create("ann", false, "x", &scopes(&["api:*"]), 1).is_err());
        assert!(s.create("root", true, "x", &scopes(&["api:*"]), 1).is_ok());
        assert!(s.create("ann", false, "x", &scopes(&["admin"]), 1).is_err());
        assert!(s.create("ann", false, " ", &[], 1).is_err());
        assert!(s.create("ann", false, "a\nb", &[], 1).is_err());
        let (r, _) = s
            .create("ann", false, "reader", &scopes(&["api:read", "relay"]), 1)
            .unwrap();
        assert!(r.allows_api(false) && !r.allows_api(true) && r.has("relay"));
        for n in 1..MAX_KEYS_PER_USER {
            s.create("ann", false, &format!("k{n}"), &[], 1).unwrap();
        }
        assert!(s.create("ann", false, "one too many", &[], 1).is_err());
        assert_eq!(s.delete_user("ann").unwrap(), MAX_KEYS_PER_USER);
        assert_eq!(s.list("root").len(), 1);
    }
}
