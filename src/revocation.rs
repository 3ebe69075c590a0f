//! Token revocation: ending a user's WDS access before their token expires.
//!
//! A WDS token is good until its `exp` (minutes), and the WDS checks nothing else. A logout,
//! a password change or a user removed from the users file must end access sooner, on every
//! WDS replica, for the sockets already open as much as for new ones. So the control plane
//! records a [`Revocation`], and each WDS keeps a [`RevocationList`]: it refuses the tokens
//! the list covers at the handshake and in `auth` frames, and closes the open sessions that
//! hold one (`token_revoked`).
//!
//! How a revocation travels ([`Revoker`]):
//! - **Embedded mode:** the control plane and the WDS share one list in memory.
//! - **Distributed:** the control plane adds it to a sorted set in the node registry's Redis
//!   (`{prefix}scp:revoked`, member = the revocation's JSON, score = when it can be forgotten:
//!   its time plus a token lifetime, when every token it covers has expired anyway). Each WDS
//!   reads the live part of the set every second ([`watch_redis`]), so a revocation reaches
//!   every replica within about a second, and a WDS that starts later still learns the ones
//!   that matter. The set stays small: it holds only the last token lifetime's revocations.
//!
//! A revocation never widens access, so an entry seen twice or late does no harm.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use deadpool_redis::{redis, Pool};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::metrics::Counter;
use crate::token::{self, Claims};

/// Which tokens no longer count.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Revocation {
    /// The user whose tokens these are.
    pub sub: String,
    /// Only the tokens of this browser session (a logout); none: every session's...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// ...but this one's (a password change keeps the session that made it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub except_sid: Option<String>,
    /// Tokens issued at or before this (epoch seconds): later ones, from a new login, count.
    pub before: i64,
    /// The same in epoch milliseconds (0 in an entry without it). Where both the entry and
    /// the token carry milliseconds they decide, so a login in the second of a revocation
    /// gets a token that counts.
    #[serde(default, skip_serializing_if = "token::is_zero")]
    pub before_ms: i64,
    /// When every token this covers has expired (epoch seconds): the entry can go.
    pub until: i64,
}

impl Revocation {
    /// The tokens of one browser session (logout).
    pub fn session(sub: &str, sid: &str, now: i64, token_ttl: i64) -> Self {
        Revocation {
            sub: sub.to_string(),
            sid: Some(sid.to_string()),
            except_sid: None,
            before: now,
            before_ms: 0,
            until: now + token_ttl,
        }
    }

    /// Every token of `sub` issued so far, but those of session `keep`, if any.
    pub fn user(sub: &str, keep: Option<&str>, now: i64, token_ttl: i64) -> Self {
        Revocation {
            sub: sub.to_string(),
            sid: None,
            except_sid: keep.map(str::to_string),
            before: now,
            before_ms: 0,
            until: now + token_ttl,
        }
    }

    /// [`Revocation::session`] as of this millisecond.
    pub fn session_now(sub: &str, sid: &str, token_ttl: i64) -> Self {
        let ms = token::now_ms();
        Self::session(sub, sid, ms.div_euclid(1000), token_ttl).at_ms(ms)
    }

    /// [`Revocation::user`] as of this millisecond.
    pub fn user_now(sub: &str, keep: Option<&str>, token_ttl: i64) -> Self {
        let ms = token::now_ms();
        Self::user(sub, keep, ms.div_euclid(1000), token_ttl).at_ms(ms)
    }

    fn at_ms(mut self, ms: i64) -> Self {
        self.before_ms = ms;
        self
    }

    /// Whether a token with these claims is revoked by this entry.
    pub fn covers(&self, c: &Claims) -> bool {
        let issued_before = if c.iat_ms > 0 && self.before_ms > 0 {
            c.iat_ms <= self.before_ms
        } else {
            c.iat <= self.before
        };
        c.sub == self.sub
            && issued_before
            && self.sid.as_ref().is_none_or(|s| *s == c.sid)
            && self.except_sid.as_ref().is_none_or(|s| *s != c.sid)
    }
}

/// The revocations a WDS knows, by user, and a feed of the new ones (to close the sessions
/// they cover).
pub struct RevocationList {
    by_sub: Mutex<HashMap<String, Vec<Revocation>>>,
    new: broadcast::Sender<Revocation>,
}

impl RevocationList {
    pub fn new() -> Arc<Self> {
        Arc::new(RevocationList {
            by_sub: Mutex::new(HashMap::new()),
            new: broadcast::channel(1024).0,
        })
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<String, Vec<Revocation>>> {
        // Pushes and retains only: a panic elsewhere cannot leave the map half changed.
        self.by_sub.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds `r` unless it is known or already over; `true` when it is new (and then it is
    /// announced to [`RevocationList::subscribe`]rs). A new entry also drops the ones that
    /// are over. A known one costs only a look at its user's entries: the Redis watcher hands
    /// every live entry over again on each read.
    pub fn add(&self, r: Revocation) -> bool {
        let now = token::now_secs();
        if r.until < now {
            return false;
        }
        let mut entries = self.entries();
        if entries.get(&r.sub).is_some_and(|list| list.contains(&r)) {
            return false;
        }
        entries.retain(|_, list| {
            list.retain(|e| e.until >= now);
            !list.is_empty()
        });
        entries.entry(r.sub.clone()).or_default().push(r.clone());
        drop(entries);
        // No subscriber (no WDS in this process) is fine: the list alone refuses tokens.
        let _ = self.new.send(r);
        true
    }

    /// Whether any live entry covers a token with these claims.
    pub fn covers(&self, c: &Claims) -> bool {
        let now = token::now_secs();
        self.entries()
            .get(&c.sub)
            .is_some_and(|list| list.iter().any(|e| e.until >= now && e.covers(c)))
    }

    /// Every live entry (to re-check the open sessions after missing some announcements).
    pub fn all(&self) -> Vec<Revocation> {
        let now = token::now_secs();
        let entries = self.entries();
        entries
            .values()
            .flatten()
            .filter(|e| e.until >= now)
            .cloned()
            .collect()
    }

    pub fn len(&self) -> usize {
        self.entries().values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entries added from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Revocation> {
        self.new.subscribe()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    #[error("revocation store unavailable: {0}")]
    Pool(#[from] deadpool_redis::PoolError),
    #[error("revocation store unavailable: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("revocation encoding: {0}")]
    Encode(#[from] serde_json::Error),
}

/// The registry key of the revocation set.
pub fn redis_key(registry_prefix: &str) -> String {
    format!("{registry_prefix}scp:revoked")
}

/// Adds a revocation (`ARGV[2]`, scored by its end `ARGV[1]`) to the set `KEYS[1]`, drops the
/// entries over by `ARGV[3]` (now), and keeps the key's own expiry at its latest entry's end,
/// so an idle deployment leaves nothing behind. One script, so that concurrent control planes
/// cannot leave the key expiring before an entry (and so it runs on Redis 6.2, which has no
/// `EXPIREAT ... GT`).
const RECORD: &str = r#"
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then
  redis.call('EXPIREAT', KEYS[1], last[2])
end
return 1
"#;

/// Where the control plane records revocations.
pub enum Revoker {
    /// The WDS's list in this process (embedded mode).
    Memory(Arc<RevocationList>),
    /// The sorted set in the node registry's Redis, read by every WDS.
    Redis { pool: Pool, key: String },
}

impl Revoker {
    /// Records `r` (in Redis with [`RECORD`]).
    pub async fn revoke(&self, r: Revocation) -> Result<(), RevocationError> {
        match self {
            Revoker::Memory(list) => {
                list.add(r);
            }
            Revoker::Redis { pool, key } => {
                let member = serde_json::to_string(&r)?;
                let mut conn = pool.get().await?;
                let _: () = redis::cmd("EVAL")
                    .arg(RECORD)
                    .arg(1)
                    .arg(key)
                    .arg(r.until)
                    .arg(&member)
                    .arg(token::now_secs())
                    .query_async(&mut *conn)
                    .await?;
            }
        }
        Ok(())
    }
}

/// The live revocations in the set at `key`. Members that do not parse are skipped and
/// counted in `unreadable` (only the control plane writes here).
pub async fn fetch(
    pool: &Pool,
    key: &str,
    unreadable: &Counter,
) -> Result<Vec<Revocation>, RevocationError> {
    let mut conn = pool.get().await?;
    let members: Vec<String> = redis::cmd("ZRANGEBYSCORE")
        .arg(key)
        .arg(token::now_secs())
        .arg("+inf")
        .query_async(&mut *conn)
        .await?;
    Ok(members
        .iter()
        .filter_map(|m| match serde_json::from_str(m) {
            Ok(r) => Some(r),
            Err(e) => {
                unreadable.inc();
                log::warn!("skipping an unreadable revocation in {key}: {e}");
                None
            }
        })
        .collect())
}

/// Counters of a WDS's revocation watcher.
pub struct WatchMetrics {
    pub errors: Counter,
    pub unreadable: Counter,
}

/// Reads the set at `key` into `list` every `every` until `list` is dropped. A failing
/// Redis is logged once per outage and counted per attempt; the list keeps what it knew.
pub fn watch_redis(
    list: &Arc<RevocationList>,
    pool: Pool,
    key: String,
    every: Duration,
    figures: WatchMetrics,
) {
    let list = Arc::downgrade(list);
    actix::spawn(async move {
        let mut failing = false;
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let fetched = fetch(&pool, &key, &figures.unreadable).await;
            let Some(list) = list.upgrade() else {
                return;
            };
            match fetched {
                Ok(entries) => {
                    if failing {
                        log::info!("revocations readable again from {key}");
                        failing = false;
                    }
                    for r in entries {
                        list.add(r);
                    }
                }
                Err(e) => {
                    figures.errors.inc();
                    if !failing {
                        log::warn!(
                            "cannot read revocations from {key} (retrying every {every:?}): {e}"
                        );
                        failing = true;
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(sub: &str, sid: &str, iat: i64) -> Claims {
        Claims::new(sub, &[], &["*"], iat, 300).for_session(sid)
    }

    #[test]
    fn a_session_revocation_covers_that_sessions_tokens_only() {
        let r = Revocation::session("alice", "s1", 1000, 300);
        assert!(r.covers(&claims("alice", "s1", 990)));
        assert!(r.covers(&claims("alice", "s1", 1000)));
        assert!(!r.covers(&claims("alice", "s2", 990)), "another browser");
        assert!(!r.covers(&claims("bob", "s1", 990)), "another user");
        assert!(!r.covers(&claims("alice", "s1", 1001)), "issued after");
    }

    #[test]
    fn a_user_revocation_can_spare_one_session() {
        let r = Revocation::user("alice", Some("keep"), 1000, 300);
        assert!(r.covers(&claims("alice", "other", 999)));
        assert!(r.covers(&claims("alice", "", 999)), "a token of no session");
        assert!(!r.covers(&claims("alice", "keep", 999)));
        assert!(!r.covers(&claims("alice", "other", 1001)), "a later login");
        let all = Revocation::user("alice", None, 1000, 300);
        assert!(all.covers(&claims("alice", "keep", 999)));
    }

    #[actix_web::test]
    async fn the_list_announces_new_entries_once_and_forgets_old_ones() {
        let list = RevocationList::new();
        let mut rx = list.subscribe();
        let now = token::now_secs();
        let r = Revocation::session("alice", "s1", now, 300);
        assert!(list.add(r.clone()));
        assert!(!list.add(r.clone()), "known");
        assert_eq!(rx.recv().await.ok(), Some(r));
        assert!(rx.try_recv().is_err(), "announced once");
        assert!(list.covers(&claims("alice", "s1", now)));
        assert!(!list.covers(&claims("alice", "s2", now)));
        assert!(
            !list.add(Revocation::session("bob", "s", now - 600, 300)),
            "over"
        );
        assert_eq!(list.len(), 1);
        // An entry over by now is not applied, and goes at the next add.
        if let Some(l) = list.entries().get_mut("alice") {
            l[0].until = now - 1;
        }
        assert!(!list.covers(&claims("alice", "s1", now)));
        list.add(Revocation::session("carol", "s", now, 300));
        assert_eq!(list.all().len(), 1);
        assert_eq!(list.len(), 1);
    }

    #[test]
    fn milliseconds_decide_where_both_sides_carry_them() {
        let ms = 1_000_400;
        let r = Revocation::session("alice", "s1", 1000, 300).at_ms(ms);
        let at = |ms: i64| claims("alice", "s1", 0).issued_at_ms(ms);
        assert!(r.covers(&at(ms - 1)));
        assert!(r.covers(&at(ms)));
        assert!(!r.covers(&at(ms + 1)), "issued after, in the same second");
        // A token without milliseconds falls back to seconds: covered in that second.
        assert!(r.covers(&claims("alice", "s1", 1000)));
        // So does an entry without them.
        let old = Revocation::session("alice", "s1", 1000, 300);
        assert!(old.covers(&at(ms + 1)));
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains(r#""before_ms":1000400"#), "{json}");
        assert_eq!(serde_json::from_str::<Revocation>(&json).unwrap(), r);
        let now = Revocation::user_now("alice", None, 300);
        assert_eq!(now.before, now.before_ms.div_euclid(1000));
        assert_eq!(now.until, now.before + 300);
    }

    #[test]
    fn the_wire_form_is_plain_json() {
        let r = Revocation::user("alice", Some("k"), 10, 5);
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(
            json,
            r#"{"sub":"alice","except_sid":"k","before":10,"until":15}"#
        );
        assert_eq!(serde_json::from_str::<Revocation>(&json).unwrap(), r);
    }
}
