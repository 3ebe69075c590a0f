//! The cache contract: what analyzers hand to a store, and the messages every store answers.
//!
//! Two actors implement it: [`CacheWriter`](crate::actors::store::cache_writer::CacheWriter) on Redis
//! (distributed mode) and [`MemoryStore`](crate::actors::store::memory_store::MemoryStore) in memory
//! (embedded mode). Components hold a [`Store`] (recipients of these messages), so the
//! backend is chosen once, at wiring time.
//!
//! The write contract is the reference system's (reference-system.md §3.1): a value is either
//! a string (`SET`, or `SETEX` with a TTL) or a capped list (`LPUSH` + `LTRIM 0 cap-1` +
//! `EXPIRE` when a TTL is given; a replacing push removes the old copy first with `LREM`);
//! a published result is then `PUBLISH`ed on a channel named
//! like its key, with the very bytes that were cached.

use std::time::Duration;

use actix::dev::ToEnvelope;
use actix::{Actor, Addr, Handler, Message, Recipient};
use bytes::Bytes;

use crate::metrics::ActorMetrics;
use crate::recipient::CountedRecipient;

/// How a value is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// A string; `ttl_secs == 0` means no expiry (`SET`), else `SETEX`.
    Set { ttl_secs: u64 },
    /// Newest first, at most `cap` items; the TTL (if non-zero) is refreshed on every push.
    Push { cap: usize, ttl_secs: u64 },
    /// As `Push`, after removing the newest item equal to `old` (`LREM key 1 old`): a story
    /// that comes again replaces its listed copy instead of showing twice.
    Replace {
        old: Bytes,
        cap: usize,
        ttl_secs: u64,
    },
}

/// One result for the store.
#[derive(Debug, Clone)]
pub struct CacheWrite {
    pub key: String,
    pub value: Bytes,
    pub op: WriteOp,
    /// Publish `value` on the channel named `key` after caching it.
    pub publish: bool,
    /// When the listener read the frame this result came from (epoch ms; 0 when not from an
    /// event): lets the store measure the hop from socket to publish.
    pub received_at_ms: i64,
}

impl CacheWrite {
    /// A string value, cached for `ttl_secs` and published.
    pub fn value(key: String, value: Bytes, ttl_secs: u64, received_at_ms: i64) -> Self {
        CacheWrite {
            key,
            value,
            op: WriteOp::Set { ttl_secs },
            publish: true,
            received_at_ms,
        }
    }

    /// A push onto a capped list, published.
    pub fn push(key: String, value: Bytes, cap: usize, ttl_secs: u64, at: i64) -> Self {
        CacheWrite {
            key,
            value,
            op: WriteOp::Push { cap, ttl_secs },
            publish: true,
            received_at_ms: at,
        }
    }

    /// A string value that is cached but not published.
    pub fn unpublished(key: String, value: Bytes, ttl_secs: u64) -> Self {
        CacheWrite {
            key,
            value,
            op: WriteOp::Set { ttl_secs },
            publish: false,
            received_at_ms: 0,
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store command failed: {0}")]
    Command(String),
    #[error("store actor is gone")]
    Gone,
}

impl From<actix::MailboxError> for StoreError {
    fn from(_: actix::MailboxError) -> Self {
        StoreError::Gone
    }
}

/// Results to cache (and publish), in order. Fire and forget: the store batches them, and
/// counts and logs what it cannot write.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Write(pub Vec<CacheWrite>);

/// Writes these values now, in order, and answers when all are stored (checkpoints,
/// handovers, a bulk warm-up that must be readable before it is announced).
#[derive(Message, Debug)]
#[rtype(result = "Result<(), StoreError>")]
pub struct Put(pub Vec<CacheWrite>);

/// String values of `keys` (None where missing, expired, or not a string).
#[derive(Message, Debug)]
#[rtype(result = "Result<Vec<Option<Bytes>>, StoreError>")]
pub struct Get(pub Vec<String>);

/// A stored value as read back, with its remaining time to live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    Str(Bytes),
    /// Newest first.
    List(Vec<Bytes>),
}

/// One key: its value (a list truncated to `limit` items, newest first) and TTL.
#[derive(Message, Debug)]
#[rtype(result = "Result<Option<(Stored, Option<Duration>)>, StoreError>")]
pub struct Read {
    pub key: String,
    pub limit: usize,
}

/// The channel on which results writers announce listener receive times (see
/// `CacheWriterConfig::timing_channel`) for the keys under `results_prefix`. Internal: the
/// widget data service never forwards it to clients.
pub fn timing_channel(results_prefix: &str) -> String {
    format!("{results_prefix}tickwire:received_at")
}

/// `limit` meaning "the whole list" in [`Read`] and [`Snapshot`].
pub const ALL: usize = usize::MAX;

/// `LRANGE key 0 <stop>` for the first `limit` items ([`ALL`] or anything past `i64::MAX`
/// reads the whole list).
pub fn lrange_stop(limit: usize) -> i64 {
    i64::try_from(limit.max(1)).map_or(-1, |n| n - 1)
}

/// Reads `key` like [`Read`] and, atomically with the read, publishes `marker` on
/// `marker_channel`. So a subscriber of both channels knows exactly where the value it read
/// sits in the stream: every message on `key` before the marker is already part of it, every
/// one after is not. The widget data service joins snapshot and live stream on this.
#[derive(Message, Debug)]
#[rtype(result = "Result<Option<Stored>, StoreError>")]
pub struct Snapshot {
    pub key: String,
    pub limit: usize,
    pub marker_channel: String,
    pub marker: Bytes,
}

/// Lua for [`Snapshot`] on Redis: type-aware read, then the marker, in one atomic step.
pub const SNAPSHOT_LUA: &str = r#"local t = redis.call('TYPE', KEYS[1]).ok
local v = false
if t == 'string' then v = redis.call('GET', KEYS[1])
elseif t == 'list' then v = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1])) end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return {t, v}"#;

/// Takes `key` for `holder` for `ttl` (`SET NX PX`), or extends it if `holder` already holds
/// it. Answers whether `holder` holds it now.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<bool, StoreError>")]
pub struct Acquire {
    pub key: String,
    pub holder: String,
    pub ttl: Duration,
}

/// Deletes `key` if `holder` still holds it.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), StoreError>")]
pub struct Release {
    pub key: String,
    pub holder: String,
}

/// Registers `member` in the group `key` for `ttl` (a heartbeat) and answers the live
/// members, sorted. Used for the processor node registry that shard sharing is based on.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Vec<String>, StoreError>")]
pub struct Members {
    pub key: String,
    pub member: String,
    pub ttl: Duration,
}

/// Lua: extend the lease if it is ours, else take it if it is free. 1 when held after.
pub const ACQUIRE_LUA: &str = r#"local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0"#;

/// Lua: delete the lease only if it is still ours.
pub const RELEASE_LUA: &str = r#"if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1]) else return 0 end"#;

/// A handle on a store, whichever actor is behind it.
#[derive(Clone)]
pub struct Store {
    pub write: CountedRecipient<Write>,
    pub put: Recipient<Put>,
    pub get: Recipient<Get>,
    pub read: Recipient<Read>,
    pub acquire: Recipient<Acquire>,
    pub release: Recipient<Release>,
    pub members: Recipient<Members>,
    pub snapshot: Recipient<Snapshot>,
}

impl Store {
    /// A handle on `addr`; `metrics` are the store actor's (mailbox depth of writes).
    pub fn of<A>(addr: &Addr<A>, metrics: ActorMetrics) -> Self
    where
        A: Actor
            + Handler<Write>
            + Handler<Put>
            + Handler<Get>
            + Handler<Read>
            + Handler<Acquire>
            + Handler<Release>
            + Handler<Members>
            + Handler<Snapshot>,
        A::Context: ToEnvelope<A, Write>
            + ToEnvelope<A, Snapshot>
            + ToEnvelope<A, Members>
            + ToEnvelope<A, Put>
            + ToEnvelope<A, Get>
            + ToEnvelope<A, Read>
            + ToEnvelope<A, Acquire>
            + ToEnvelope<A, Release>,
    {
        Store {
            write: CountedRecipient::of(addr, metrics),
            put: addr.clone().recipient(),
            get: addr.clone().recipient(),
            read: addr.clone().recipient(),
            acquire: addr.clone().recipient(),
            release: addr.clone().recipient(),
            members: addr.clone().recipient(),
            snapshot: addr.clone().recipient(),
        }
    }

    pub async fn get(&self, keys: Vec<String>) -> Result<Vec<Option<Bytes>>, StoreError> {
        self.get.send(Get(keys)).await?
    }

    pub async fn put(&self, w: CacheWrite) -> Result<(), StoreError> {
        self.put.send(Put(vec![w])).await?
    }

    /// Many values at once (sent in pipelines), answered when every one is stored.
    pub async fn put_all(&self, ws: Vec<CacheWrite>) -> Result<(), StoreError> {
        if ws.is_empty() {
            return Ok(());
        }
        self.put.send(Put(ws)).await?
    }

    pub async fn read(&self, key: &str, limit: usize) -> Result<Option<Stored>, StoreError> {
        let r = self
            .read
            .send(Read {
                key: key.to_string(),
                limit,
            })
            .await??;
        Ok(r.map(|(v, _)| v))
    }

    pub async fn acquire(
        &self,
        key: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.acquire
            .send(Acquire {
                key: key.to_string(),
                holder: holder.to_string(),
                ttl,
            })
            .await?
    }

    pub async fn members(
        &self,
        key: &str,
        member: &str,
        ttl: Duration,
    ) -> Result<Vec<String>, StoreError> {
        self.members
            .send(Members {
                key: key.to_string(),
                member: member.to_string(),
                ttl,
            })
            .await?
    }

    pub async fn release(&self, key: &str, holder: &str) -> Result<(), StoreError> {
        self.release
            .send(Release {
                key: key.to_string(),
                holder: holder.to_string(),
            })
            .await?
    }
}

/// Redis-style glob match (`*`, `?`, `[...]` not needed by any channel tickwire uses) for
/// pattern subscriptions.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some(p);
            mark = t;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            t = mark;
        } else {
            return false;
        }
    }
    while p < pattern.len() && pattern[p] == b'*' {
        p += 1;
    }
    p == pattern.len()
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs() {
        assert!(glob_match(b"quote:*", b"quote:AAPL"));
        assert!(glob_match(b"*", b""));
        assert!(glob_match(b"scanners:top_*", b"scanners:top_gainers"));
        assert!(glob_match(b"q?ote:*L", b"quote:AAPL"));
        assert!(!glob_match(b"quote:*", b"daily_range:AAPL"));
        assert!(!glob_match(b"quote:AAPL", b"quote:AAPLX"));
        assert!(glob_match(b"a*b*c", b"axxbyyc"));
        assert!(!glob_match(b"a*b*c", b"axxbyy"));
    }
}
