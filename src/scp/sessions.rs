//! Browser sessions.
//!
//! A session is a random id in an HttpOnly cookie mapped to the user, their roles and a CSRF
//! token; it ends on logout, after an idle period, or after an absolute lifetime, whichever
//! comes first. Sessions live in this process (embedded mode, a single SCP) or in Redis
//! (`SCP_SESSIONS`, the node registry's Redis). In Redis they survive an SCP restart and
//! every replica sees them, so replicas behind a load balancer need no sticky sessions.
//! There a session is stored under the SHA-256 of its id: whoever can read Redis learns no
//! cookie.
//!
//! Each session remembers which password it was opened with (a fingerprint of the user's
//! hash, [`super::users::fingerprint`]). When the users file gives the user another hash, by
//! whatever means, every session opened with the old one ends, on whichever replica looks
//! first; the session that changed the password through the API moves to the new hash
//! before the file is written, and stays.
//!
//! The login rate limiter lives beside them in Redis ([`super::login_guard`]).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use deadpool_redis::{redis, Pool};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::metrics::Counter;

/// Nothing panics while holding these maps, but if something ever did, the map is still
/// consistent: carry on with it rather than log everyone out or switch the limiter off.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a valid session cookie stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub username: String,
    pub roles: Vec<String>,
    /// Sent back in `X-CSRF-Token` on every state-changing request.
    pub csrf: String,
    /// Fingerprint of the password hash the session was opened with (empty for a session
    /// stored before fingerprints: it is taken as current until the password changes).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pw: String,
    /// What WDS tokens issued to this session carry as `sid` ([`token_sid`], a digest of the
    /// cookie id). Stored so that a replica ending the session by its key can revoke its
    /// tokens (the key's hash cannot give it); empty in a session stored before it was.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sid: String,
}

impl Session {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("session store unavailable: {0}")]
    Store(#[from] deadpool_redis::PoolError),
    #[error("session store unavailable: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("no randomness for a session id: {0}")]
    Random(#[from] std::io::Error),
    #[error("session encoding: {0}")]
    Encode(#[from] serde_json::Error),
}

/// A session in memory, with its clocks.
struct Entry {
    session: Session,
    created: Instant,
    last_seen: Instant,
}

/// A session in Redis: the session and when it was created (epoch seconds), for the
/// absolute lifetime; Redis's TTL is the idle clock. `mac` binds both to the key they are
/// stored under ([`Sessions::in_redis`]): Redis is not trusted to vouch for a session.
#[derive(Serialize, Deserialize)]
struct Stored {
    #[serde(flatten)]
    session: Session,
    created: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    mac: String,
}

impl Stored {
    fn parts(&self, hash: &str) -> Result<[Vec<u8>; 3], serde_json::Error> {
        Ok([
            hash.as_bytes().to_vec(),
            serde_json::to_vec(&self.session)?,
            self.created.to_be_bytes().to_vec(),
        ])
    }

    /// Signs the entry for the key of `hash`.
    fn seal(mut self, key: &[u8; 32], hash: &str) -> Result<String, serde_json::Error> {
        let p = self.parts(hash)?;
        self.mac = crate::token::seal(key, &[&p[0], &p[1], &p[2]]);
        serde_json::to_string(&self)
    }

    /// The entry stored under `hash`, if it reads and was signed for that key.
    fn open(key: &[u8; 32], hash: &str, value: &str) -> Result<Stored, &'static str> {
        let s: Stored = serde_json::from_str(value).map_err(|_| "unreadable")?;
        let p = s.parts(hash).map_err(|_| "unreadable")?;
        if crate::token::unseal(key, &[&p[0], &p[1], &p[2]], &s.mac) {
            Ok(s)
        } else {
            Err("not signed with this cluster's key")
        }
    }
}

/// The key Redis sessions are signed with, from the token secret every SCP replica holds.
pub fn redis_key(token_secret: &[u8]) -> [u8; 32] {
    crate::token::derive_key(token_secret, "tickwire scp sessions v1")
}

/// The sessions of one user, after those opened with an old password ended: the `sid`s of
/// the WDS tokens of each kind.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outdated {
    pub ended: Vec<String>,
    pub kept: Vec<String>,
}

enum Backend {
    Memory {
        sessions: Mutex<HashMap<String, Entry>>,
        /// Sessions ended on purpose (logout, password change, changed user), by id, and
        /// until when that is remembered (the idle timeout). In Redis: `{prefix}ended:{hash}`.
        ended: Mutex<HashMap<String, Instant>>,
    },
    /// `{prefix}{sha256(id)}` holds a [`Stored`] with the idle TTL; `{prefix}index` is a
    /// sorted set of the hashes scored by when they lapse, so counting needs no SCAN;
    /// `{prefix}user:{sha256(username)}` is the set of a user's session hashes, so that
    /// they can be ended together (it may still name sessions that ended on their own:
    /// deleting those again is harmless).
    Redis {
        pool: Pool,
        prefix: String,
        /// Signs and checks every entry ([`Stored`]).
        key: [u8; 32],
        /// Entries refused: unreadable, or not signed with `key` (a forgery, or another
        /// cluster's).
        rejected: Counter,
    },
}

pub struct Sessions {
    backend: Backend,
    idle: Duration,
    lifetime: Duration,
}

impl Sessions {
    pub fn in_memory(idle: Duration, lifetime: Duration) -> Self {
        Sessions {
            backend: Backend::Memory {
                sessions: Mutex::new(HashMap::new()),
                ended: Mutex::new(HashMap::new()),
            },
            idle,
            lifetime,
        }
    }

    /// Sessions in Redis under `prefix` (the node registry's prefix plus `scp:sessions:`),
    /// signed with `key` ([`redis_key`]); entries refused are counted in `rejected`.
    pub fn in_redis(
        pool: Pool,
        prefix: String,
        idle: Duration,
        lifetime: Duration,
        key: [u8; 32],
        rejected: Counter,
    ) -> Self {
        Sessions {
            backend: Backend::Redis {
                pool,
                prefix,
                key,
                rejected,
            },
            idle,
            lifetime,
        }
    }

    /// The entry stored under `hash`, or `None` (counted and logged) when it is not one.
    fn open(&self, hash: &str, value: &str) -> Option<Stored> {
        let Backend::Redis { key, rejected, .. } = &self.backend else {
            return None;
        };
        match Stored::open(key, hash, value) {
            Ok(s) => Some(s),
            Err(why) => {
                if rejected.get() % 100 == 0 {
                    log::warn!("session entry in Redis refused ({why}); dropped");
                }
                rejected.inc();
                None
            }
        }
    }

    /// `memory` or `redis`, for the log and `/stats`.
    pub fn store_name(&self) -> &'static str {
        match self.backend {
            Backend::Memory { .. } => "memory",
            Backend::Redis { .. } => "redis",
        }
    }

    fn live(&self, e: &Entry, now: Instant) -> bool {
        now.duration_since(e.last_seen) < self.idle && now.duration_since(e.created) < self.lifetime
    }

    fn idle_secs(&self) -> u64 {
        self.idle.as_secs().max(1)
    }

    /// A new session for the user, opened with the password of fingerprint `pw`: (session
    /// id, CSRF token).
    pub async fn create(
        &self,
        username: &str,
        roles: &[String],
        pw: &str,
    ) -> Result<(String, String), SessionError> {
        let id = crate::token::random_hex()?;
        let csrf = crate::token::random_hex()?;
        let session = Session {
            username: username.to_string(),
            roles: roles.to_vec(),
            csrf: csrf.clone(),
            pw: pw.to_string(),
            sid: token_sid(&id),
        };
        match &self.backend {
            Backend::Memory { sessions: map, .. } => {
                let now = Instant::now();
                let mut map = lock(map);
                // Dropping the dead here keeps the map bounded without a sweeper task.
                map.retain(|_, e| self.live(e, now));
                let entry = Entry {
                    session,
                    created: now,
                    last_seen: now,
                };
                map.insert(id.clone(), entry);
            }
            Backend::Redis {
                pool, prefix, key, ..
            } => {
                let now = crate::token::now_secs();
                let hash = hashed(&id);
                let value = Stored {
                    session,
                    created: now,
                    mac: String::new(),
                }
                .seal(key, &hash)?;
                let user_key = user_key(prefix, username);
                let mut conn = pool.get().await?;
                let _: () = redis::pipe()
                    .cmd("SET")
                    .arg(session_key(prefix, &hash))
                    .arg(value)
                    .arg("EX")
                    .arg(self.idle_secs())
                    .ignore()
                    .cmd("ZADD")
                    .arg(index_key(prefix))
                    .arg(now + self.idle_secs() as i64)
                    .arg(&hash)
                    .ignore()
                    .cmd("SADD")
                    .arg(&user_key)
                    .arg(&hash)
                    .ignore()
                    .cmd("EXPIRE")
                    .arg(&user_key)
                    .arg(self.lifetime.as_secs().max(1))
                    .ignore()
                    .query_async(&mut *conn)
                    .await?;
            }
        }
        Ok((id, csrf))
    }

    /// The live session behind `id`, its idle clock restarted; an expired one is dropped.
    pub async fn touch(&self, id: &str) -> Result<Option<Session>, SessionError> {
        match &self.backend {
            Backend::Memory { sessions: map, .. } => {
                let now = Instant::now();
                let mut map = lock(map);
                let Some(live) = map.get(id).map(|e| self.live(e, now)) else {
                    return Ok(None);
                };
                if !live {
                    map.remove(id);
                    return Ok(None);
                }
                Ok(map.get_mut(id).map(|e| {
                    e.last_seen = now;
                    e.session.clone()
                }))
            }
            Backend::Redis { pool, prefix, .. } => {
                let now = crate::token::now_secs();
                let hash = hashed(id);
                let mut conn = pool.get().await?;
                // One round trip: read and restart the idle clock (GETEX, Redis 6.2+), and
                // move the index entry along (XX: never re-add one already gone).
                let (value,): (Option<String>,) = redis::pipe()
                    .cmd("GETEX")
                    .arg(session_key(prefix, &hash))
                    .arg("EX")
                    .arg(self.idle_secs())
                    .cmd("ZADD")
                    .arg(index_key(prefix))
                    .arg("XX")
                    .arg(now + self.idle_secs() as i64)
                    .arg(&hash)
                    .ignore()
                    .query_async(&mut *conn)
                    .await?;
                let Some(value) = value else {
                    return Ok(None);
                };
                // Past its lifetime, or not a session at all (unreadable, unsigned, someone
                // else's key): gone.
                let owner = match self.open(&hash, &value) {
                    Some(s) if now - s.created < self.lifetime.as_secs() as i64 => {
                        return Ok(Some(s.session))
                    }
                    Some(s) => s.session.username,
                    None => String::new(),
                };
                drop(conn);
                self.remove(id, &owner).await?;
                Ok(None)
            }
        }
    }

    /// Ends `username`'s session `id` (logout).
    pub async fn remove(&self, id: &str, username: &str) -> Result<(), SessionError> {
        match &self.backend {
            Backend::Memory { sessions: map, .. } => {
                lock(map).remove(id);
            }
            Backend::Redis { pool, prefix, .. } => {
                let mut conn = pool.get().await?;
                removal(prefix, &hashed(id), username)
                    .query_async::<()>(&mut *conn)
                    .await?;
            }
        }
        Ok(())
    }

    /// Ends `username`'s session `id` on purpose (a logout, a changed or removed user) and
    /// remembers that for the idle timeout, so that whoever still holds its cookie (another
    /// tab, a slow dashboard) is told it was signed out ([`Sessions::was_ended`]), not that
    /// it expired.
    pub async fn end(&self, id: &str, username: &str) -> Result<(), SessionError> {
        match &self.backend {
            Backend::Memory { sessions, ended } => {
                lock(sessions).remove(id);
                self.remember_ended(ended, [id.to_string()]);
            }
            Backend::Redis { pool, prefix, .. } => {
                let hash = hashed(id);
                let mut pipe = removal(prefix, &hash, username);
                self.note_ended(&mut pipe, prefix, [&hash]);
                let mut conn = pool.get().await?;
                pipe.query_async::<()>(&mut *conn).await?;
            }
        }
        Ok(())
    }

    /// Whether the session behind `id` was ended on purpose within the idle timeout.
    pub async fn was_ended(&self, id: &str) -> Result<bool, SessionError> {
        match &self.backend {
            Backend::Memory { ended, .. } => Ok(lock(ended)
                .get(id)
                .is_some_and(|until| *until > Instant::now())),
            Backend::Redis { pool, prefix, .. } => {
                let mut conn = pool.get().await?;
                let n: u32 = redis::cmd("EXISTS")
                    .arg(ended_key(prefix, &hashed(id)))
                    .query_async(&mut *conn)
                    .await?;
                Ok(n == 1)
            }
        }
    }

    /// Memory: notes `ids` as ended on purpose; forgets the notes that are over, so `ended`
    /// holds at most the sessions ended within one idle timeout.
    fn remember_ended(
        &self,
        ended: &Mutex<HashMap<String, Instant>>,
        ids: impl IntoIterator<Item = String>,
    ) {
        let now = Instant::now();
        let mut ended = lock(ended);
        ended.retain(|_, until| *until > now);
        for id in ids {
            ended.insert(id, now + self.idle);
        }
    }

    /// Redis: adds to `pipe` the notes that the sessions of `hashes` were ended on purpose,
    /// each kept for the idle timeout (their replies ignored).
    fn note_ended<'a>(
        &self,
        pipe: &mut redis::Pipeline,
        prefix: &str,
        hashes: impl IntoIterator<Item = &'a String>,
    ) {
        for h in hashes {
            pipe.cmd("SET")
                .arg(ended_key(prefix, h))
                .arg(1)
                .arg("EX")
                .arg(self.idle_secs())
                .ignore();
        }
    }

    /// Ends every session of `username` but `keep` (a password change logs the other
    /// devices out); returns how many were ended.
    pub async fn end_others(&self, username: &str, keep: &str) -> Result<usize, SessionError> {
        match &self.backend {
            Backend::Memory {
                sessions: map,
                ended,
            } => {
                let mut map = lock(map);
                let gone: Vec<String> = map
                    .iter()
                    .filter(|(id, e)| e.session.username == username && *id != keep)
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in &gone {
                    map.remove(id);
                }
                drop(map);
                let n = gone.len();
                self.remember_ended(ended, gone);
                Ok(n)
            }
            Backend::Redis { pool, prefix, .. } => {
                let user_key = user_key(prefix, username);
                let keep = hashed(keep);
                let mut conn = pool.get().await?;
                let members: Vec<String> = redis::cmd("SMEMBERS")
                    .arg(&user_key)
                    .query_async(&mut *conn)
                    .await?;
                let others: Vec<&String> = members.iter().filter(|h| **h != keep).collect();
                if others.is_empty() {
                    return Ok(0);
                }
                let mut pipe = redis::pipe();
                pipe.cmd("DEL");
                for h in &others {
                    pipe.arg(session_key(prefix, h));
                }
                pipe.cmd("ZREM")
                    .arg(index_key(prefix))
                    .arg(&others)
                    .ignore()
                    .cmd("SREM")
                    .arg(&user_key)
                    .arg(&others)
                    .ignore();
                self.note_ended(&mut pipe, prefix, others.iter().copied());
                // DEL's count is of the sessions still alive: the ones actually ended.
                let (ended,): (usize,) = pipe.query_async(&mut *conn).await?;
                Ok(ended)
            }
        }
    }

    /// Session `id` now stands for the password of fingerprint `pw` (its user is changing
    /// it): done before the users file changes, so that no replica reading the new file
    /// takes this session for one opened with the old password. Its idle clock runs on.
    pub async fn rebind(&self, id: &str, pw: &str) -> Result<(), SessionError> {
        match &self.backend {
            Backend::Memory { sessions: map, .. } => {
                if let Some(e) = lock(map).get_mut(id) {
                    e.session.pw = pw.to_string();
                }
            }
            Backend::Redis {
                pool,
                prefix,
                key: mac_key,
                ..
            } => {
                let hash = hashed(id);
                let key = session_key(prefix, &hash);
                let mut conn = pool.get().await?;
                let value: Option<String> =
                    redis::cmd("GET").arg(&key).query_async(&mut *conn).await?;
                let Some(mut stored) = value.and_then(|v| self.open(&hash, &v)) else {
                    return Ok(()); // ended meanwhile (or never a session): nothing to move
                };
                stored.session.pw = pw.to_string();
                stored.session.sid = token_sid(id);
                // XX KEEPTTL: never bring back a session that ended meanwhile, nor reset its
                // idle clock.
                let _: () = redis::cmd("SET")
                    .arg(&key)
                    .arg(stored.seal(mac_key, &hash)?)
                    .arg("XX")
                    .arg("KEEPTTL")
                    .query_async(&mut *conn)
                    .await?;
            }
        }
        Ok(())
    }

    /// Ends every session of `username` not opened with the password of fingerprint `pw`
    /// (the users file gave them another one). In Redis, of every replica; each session is
    /// reported as ended by the one caller whose DEL removed it.
    pub async fn end_outdated(&self, username: &str, pw: &str) -> Result<Outdated, SessionError> {
        let mut out = Outdated::default();
        match &self.backend {
            Backend::Memory {
                sessions: map,
                ended,
            } => {
                let mut gone = Vec::new();
                lock(map).retain(|id, e| {
                    if e.session.username != username {
                        return true;
                    }
                    let keep = e.session.pw == pw;
                    let list = if keep { &mut out.kept } else { &mut out.ended };
                    list.push(e.session.sid.clone());
                    if !keep {
                        gone.push(id.clone());
                    }
                    keep
                });
                self.remember_ended(ended, gone);
            }
            Backend::Redis { pool, prefix, .. } => {
                let user_key = user_key(prefix, username);
                let mut conn = pool.get().await?;
                let members: Vec<String> = redis::cmd("SMEMBERS")
                    .arg(&user_key)
                    .query_async(&mut *conn)
                    .await?;
                if members.is_empty() {
                    return Ok(out);
                }
                let keys: Vec<String> = members.iter().map(|h| session_key(prefix, h)).collect();
                let values: Vec<Option<String>> = redis::cmd("MGET")
                    .arg(&keys)
                    .query_async(&mut *conn)
                    .await?;
                // (hash, sid) of each session to end; a member whose session is gone or
                // unreadable is only dropped from the user's set.
                let mut end = Vec::new();
                let mut gone = Vec::new();
                for (hash, value) in members.iter().zip(values) {
                    match value.and_then(|v| self.open(hash, &v)) {
                        Some(s) if s.session.pw == pw => out.kept.push(s.session.sid),
                        Some(s) => end.push((hash, s.session.sid)),
                        None => gone.push(hash),
                    }
                }
                let mut pipe = redis::pipe();
                for (hash, _) in &end {
                    pipe.cmd("DEL").arg(session_key(prefix, hash));
                }
                let ended: Vec<&String> = end.iter().map(|(h, _)| *h).chain(gone).collect();
                if !ended.is_empty() {
                    pipe.cmd("ZREM")
                        .arg(index_key(prefix))
                        .arg(&ended)
                        .ignore()
                        .cmd("SREM")
                        .arg(&user_key)
                        .arg(&ended)
                        .ignore();
                }
                self.note_ended(&mut pipe, prefix, end.iter().map(|(h, _)| *h));
                let deleted: Vec<u8> = pipe.query_async(&mut *conn).await?;
                for ((_, sid), n) in end.into_iter().zip(deleted) {
                    if n == 1 {
                        out.ended.push(sid);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Whether the store answers (Redis: a PING on a pooled connection; memory: always).
    pub async fn probe(&self) -> Result<(), SessionError> {
        match &self.backend {
            Backend::Memory { .. } => Ok(()),
            Backend::Redis { pool, .. } => {
                let mut conn = pool.get().await?;
                redis::cmd("PING").query_async::<()>(&mut *conn).await?;
                Ok(())
            }
        }
    }

    /// Live sessions (in Redis: of every replica), for `/stats`.
    pub async fn count(&self) -> Result<usize, SessionError> {
        match &self.backend {
            Backend::Memory { sessions: map, .. } => {
                let now = Instant::now();
                Ok(lock(map).values().filter(|e| self.live(e, now)).count())
            }
            Backend::Redis { pool, prefix, .. } => {
                let index = index_key(prefix);
                let mut conn = pool.get().await?;
                let (n,): (usize,) = redis::pipe()
                    .cmd("ZREMRANGEBYSCORE")
                    .arg(&index)
                    .arg("-inf")
                    .arg(crate::token::now_secs())
                    .ignore()
                    .cmd("ZCARD")
                    .arg(&index)
                    .query_async(&mut *conn)
                    .await?;
                Ok(n)
            }
        }
    }
}

/// What an id or a name stands for in Redis keys: its SHA-256, so that reading Redis
/// gives no cookie away and any username makes a plain key.
fn hashed(text: &str) -> String {
    crate::token::hex(&Sha256::digest(text.as_bytes()))
}

/// Where the sessions live in the node registry's Redis.
pub fn redis_prefix(registry_prefix: &str) -> String {
    format!("{registry_prefix}scp:sessions:")
}

/// The `sid` of the WDS tokens issued to session `id`: a digest, so a token (which travels
/// to the WDS and sits in the browser's memory) never carries the cookie, and another
/// digest than the Redis key's, so it does not name the stored session either.
pub fn token_sid(id: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"tickwire wds sid\0");
    h.update(id.as_bytes());
    crate::token::hex(&h.finalize()[..16])
}

// The key layout of the Redis backends, stated once (see `Backend::Redis`).
fn session_key(prefix: &str, hash: &str) -> String {
    format!("{prefix}{hash}")
}

/// The commands that delete the session of `hash` (of `username`) with its index entries.
fn removal(prefix: &str, hash: &str, username: &str) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    pipe.cmd("DEL")
        .arg(session_key(prefix, hash))
        .ignore()
        .cmd("ZREM")
        .arg(index_key(prefix))
        .arg(hash)
        .ignore()
        .cmd("SREM")
        .arg(user_key(prefix, username))
        .arg(hash)
        .ignore();
    pipe
}

/// The note that the session of `hash` was ended on purpose ([`Sessions::end`]).
fn ended_key(prefix: &str, hash: &str) -> String {
    format!("{prefix}ended:{hash}")
}

fn index_key(prefix: &str) -> String {
    format!("{prefix}index")
}

fn user_key(prefix: &str, username: &str) -> String {
    format!("{prefix}user:{}", hashed(username))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn sessions_expire_when_idle_and_end_on_logout() {
        let sessions = Sessions::in_memory(Duration::from_secs(60), Duration::from_secs(600));
        let (id, csrf) = sessions
            .create("alice", &["viewer".into()], "fp1")
            .await
            .unwrap();
        let s = sessions.touch(&id).await.unwrap().unwrap();
        assert_eq!(
            (s.username.as_str(), s.csrf.as_str()),
            ("alice", csrf.as_str())
        );
        assert!(s.has_role("viewer") && !s.has_role("admin"));
        assert_eq!(sessions.count().await.unwrap(), 1);
        sessions.remove(&id, "alice").await.unwrap();
        assert!(sessions.touch(&id).await.unwrap().is_none());

        let expired = Sessions::in_memory(Duration::ZERO, Duration::from_secs(600));
        let (id, _) = expired.create("bob", &[], "fp1").await.unwrap();
        assert!(expired.touch(&id).await.unwrap().is_none());
        assert_eq!(expired.count().await.unwrap(), 0);
    }

    #[actix_web::test]
    async fn a_session_ended_on_purpose_is_remembered_for_the_idle_timeout() {
        let sessions = Sessions::in_memory(Duration::from_secs(60), Duration::from_secs(600));
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(sessions.create("ann", &[], "fp1").await.unwrap().0);
        }
        let (bob, _) = sessions.create("bob", &[], "fp1").await.unwrap();
        // A logout, and a password change that keeps the session making it.
        sessions.end(&ids[0], "ann").await.unwrap();
        assert_eq!(sessions.end_others("ann", &ids[1]).await.unwrap(), 1);
        let mut ended = Vec::new();
        for id in [&ids[0], &ids[1], &ids[2], &bob] {
            ended.push(sessions.was_ended(id).await.unwrap());
        }
        assert_eq!(ended, [true, false, true, false]);
        // The password changes in the users file: the last of ann's ends too.
        let out = sessions.end_outdated("ann", "fp2").await.unwrap();
        assert_eq!(out.ended.len(), 1);
        assert!(sessions.was_ended(&ids[1]).await.unwrap());
        // An expiry (or a cookie that never was a session) is not an end on purpose.
        sessions.remove(&bob, "bob").await.unwrap();
        assert!(!sessions.was_ended(&bob).await.unwrap());
        assert!(!sessions.was_ended("no-such-session").await.unwrap());

        // Remembered for the idle timeout only.
        let brief = Sessions::in_memory(Duration::ZERO, Duration::from_secs(600));
        let (id, _) = brief.create("cy", &[], "fp1").await.unwrap();
        brief.end(&id, "cy").await.unwrap();
        assert!(!brief.was_ended(&id).await.unwrap());
    }

    #[test]
    fn a_stored_session_is_flat_json_keyed_by_the_ids_hash() {
        let stored = Stored {
            session: Session {
                username: "ann".into(),
                roles: vec!["viewer".into()],
                csrf: "c".into(),
                pw: "f1".into(),
                sid: "t1".into(),
            },
            created: 1_764_000_000,
            mac: String::new(),
        };
        assert_eq!(
            serde_json::to_string(&stored).unwrap(),
            r#"{"username":"ann","roles":["viewer"],"csrf":"c","pw":"f1","sid":"t1","created":1764000000}"#
        );

        // The SHA-256 of "abc": the id itself never reaches Redis.
        assert_eq!(
            hashed("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_session_stored_before_fingerprints_still_reads() {
        let old = r#"{"username":"ann","roles":["viewer"],"csrf":"c","created":1764000000}"#;
        let old: Stored = serde_json::from_str(old).unwrap();
        assert_eq!(old.session.username, "ann");
        assert_eq!(
            (old.session.pw.as_str(), old.session.sid.as_str()),
            ("", "")
        );
    }

    #[actix_web::test]
    async fn another_password_ends_the_sessions_opened_with_the_old_one() {
        let sessions = Sessions::in_memory(Duration::from_secs(60), Duration::from_secs(600));
        let (a1, _) = sessions.create("ann", &[], "old").await.unwrap();
        let (a2, _) = sessions.create("ann", &[], "old").await.unwrap();
        let (b, _) = sessions.create("bob", &[], "old").await.unwrap();
        // a1 changes the password: it moves to the new one first.
        sessions.rebind(&a1, "new").await.unwrap();
        let out = sessions.end_outdated("ann", "new").await.unwrap();
        assert_eq!(
            out,
            Outdated {
                ended: vec![token_sid(&a2)],
                kept: vec![token_sid(&a1)],
            }
        );
        assert_eq!(sessions.touch(&a1).await.unwrap().unwrap().pw, "new");
        assert!(sessions.touch(&a2).await.unwrap().is_none());
        assert!(
            sessions.touch(&b).await.unwrap().is_some(),
            "another user's stays"
        );
        // Nothing left to end the second time round (another replica's reload).
        let again = sessions.end_outdated("ann", "new").await.unwrap();
        assert!(again.ended.is_empty());
    }

    #[test]
    fn only_an_entry_signed_for_its_own_key_opens() {
        let key = redis_key(b"a-token-secret-of-thirty-two-bytes!!");
        let session = Session {
            username: "admin".into(),
            roles: vec!["admin".into()],
            csrf: "c".into(),
            pw: "f1".into(),
            sid: "t1".into(),
        };
        let stored = || Stored {
            session: session.clone(),
            created: 1_764_000_000,
            mac: String::new(),
        };
        let sealed = stored().seal(&key, "h1").unwrap();
        assert_eq!(Stored::open(&key, "h1", &sealed).unwrap().session, session);
        // Copied under another id's key, written unsigned, signed with another key, edited:
        // none of them opens.
        assert!(Stored::open(&key, "h2", &sealed).is_err());
        let forged = serde_json::to_string(&stored()).unwrap();
        assert!(Stored::open(&key, "h1", &forged).is_err());
        let other = redis_key(b"another-token-secret-of-32-bytes!!!");
        assert!(Stored::open(&other, "h1", &sealed).is_err());
        let edited = sealed.replace(r#""roles":["admin"]"#, r#""roles":["admin","x"]"#);
        assert!(Stored::open(&key, "h1", &edited).is_err());
        assert!(Stored::open(&key, "h1", "not json").is_err());
    }
}
