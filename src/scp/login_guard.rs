//! What stands between a password guess and argon2: who is asking, whether they still may,
//! and whether the machine has room for one more hash.
//!
//! The policy (docs/operations.md, "Security model"):
//! - **Bounded work.** At most [`PasswordGate`]'s permits (one per core by default) password
//!   checks run at once; past that a check is refused at once (503, `Retry-After: 1`), before
//!   any hashing, so memory stays bounded (argon2id takes 19 MiB each) whatever arrives.
//! - **Per address and per (address, username), never per username.** A client address may
//!   fail `SCP_LOGIN_MAX_FAILURES` times for one username and `SCP_LOGIN_MAX_FAILURES_PER_ADDRESS`
//!   times in all within the window; an attacker's guesses therefore never lock the real user
//!   out from another address. Across addresses the only brake is the gate above: a global
//!   slowdown, not a lockout.
//! - **Reserve, then hash.** [`LoginLimiter::reserve`] checks every allowance and records the
//!   attempt in one atomic step (one lock; one Lua script in Redis), so parallel attempts
//!   cannot all pass the check before any failure is recorded. A right password withdraws
//!   its reservation and forgets the pair's failures.
//! - **The real client address.** Behind a proxy every request comes from the proxy;
//!   `X-Forwarded-For` is believed only from the proxies listed in `SCP_TRUSTED_PROXIES`
//!   ([`crate::clients`]).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_redis::{redis, Pool};
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::sessions::SessionError;

/// How many password checks may hash at once.
pub struct PasswordGate(Arc<Semaphore>);

impl PasswordGate {
    /// `permits` checks at once; 0 means one per core.
    pub fn new(permits: usize) -> Self {
        let n = if permits == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            permits
        };
        PasswordGate(Arc::new(Semaphore::new(n)))
    }

    /// A permit to hash now, or `None` when every one is taken (refuse at once, no queue).
    pub fn try_enter(&self) -> Option<OwnedSemaphorePermit> {
        self.0.clone().try_acquire_owned().ok()
    }
}

/// Where the login limiter's counts live in the node registry's Redis.
pub fn redis_prefix(registry_prefix: &str) -> String {
    format!("{registry_prefix}scp:login_failures:")
}

/// One allowance a password check draws on: a key and how many failures it allows.
pub type Allowance = (String, usize);

/// What [`LoginLimiter::reserve`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reserved {
    /// The attempt is recorded against every allowance under this id.
    Yes(String),
    /// An allowance is used up: seconds until it has room again.
    Limited(u64),
}

/// Failed password checks per key in a sliding window: in this process, or in Redis beside
/// the sessions, so that replicas share one allowance.
pub struct LoginLimiter {
    backend: LimiterBackend,
    window: Duration,
    next: AtomicU64,
}

enum LimiterBackend {
    /// key -> (time, attempt id) of each attempt in the window.
    Memory(Mutex<HashMap<String, VecDeque<(Instant, String)>>>),
    /// `{prefix}{sha256(key)}`: a sorted set of attempt ids scored by time (epoch ms),
    /// expiring with the window. Hashed so that a username of any length makes a plain key.
    Redis { pool: Pool, prefix: String },
}

/// Checks every key's allowance and, only when all have room, records the attempt in each:
/// KEYS the keys, ARGV now (ms), window (ms), attempt id, then each key's allowance.
/// Returns 0 when recorded, else the milliseconds until the fullest key has room.
const RESERVE_LUA: &str = r#"
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local wait = 0
for i, k in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', k, '-inf', now - window)
  if redis.call('ZCARD', k) >= tonumber(ARGV[3 + i]) then
    local first = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')
    local left = tonumber(first[2]) + window - now
    if left > wait then wait = left end
  end
end
if wait > 0 then return wait end
for _, k in ipairs(KEYS) do
  redis.call('ZADD', k, now, ARGV[3])
  redis.call('PEXPIRE', k, window)
end
return 0
"#;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing panics while holding the map; if it ever did, carry on with it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn failures_key(prefix: &str, key: &str) -> String {
    format!(
        "{prefix}{}",
        crate::token::hex(&Sha256::digest(key.as_bytes()))
    )
}

/// Past this many keys the memory backend forgets the stale ones (a flood of addresses).
const MEMORY_KEYS: usize = 100_000;

impl LoginLimiter {
    pub fn in_memory(window: Duration) -> Self {
        Self::with(LimiterBackend::Memory(Mutex::new(HashMap::new())), window)
    }

    /// Attempts in Redis under `prefix` (the node registry's prefix plus
    /// `scp:login_failures:`).
    pub fn in_redis(pool: Pool, prefix: String, window: Duration) -> Self {
        Self::with(LimiterBackend::Redis { pool, prefix }, window)
    }

    fn with(backend: LimiterBackend, window: Duration) -> Self {
        LoginLimiter {
            backend,
            window: window.max(Duration::from_millis(1)),
            next: AtomicU64::new(0),
        }
    }

    fn window_ms(&self) -> i64 {
        i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX)
    }

    /// Records an attempt against every allowance if each has room (atomically), or says how
    /// long to wait.
    pub async fn reserve(&self, allowances: &[Allowance]) -> Result<Reserved, SessionError> {
        let id = format!(
            "{}:{}:{}",
            crate::token::now_ms(),
            std::process::id(),
            self.next.fetch_add(1, Ordering::Relaxed)
        );
        match &self.backend {
            LimiterBackend::Memory(attempts) => {
                let now = Instant::now();
                let mut map = lock(attempts);
                if map.len() > MEMORY_KEYS {
                    let w = self.window;
                    map.retain(|_, q| q.back().is_some_and(|(t, _)| now.duration_since(*t) < w));
                }
                let mut wait = Duration::ZERO;
                for (key, max) in allowances {
                    let q = map.entry(key.clone()).or_default();
                    while q
                        .front()
                        .is_some_and(|(t, _)| now.duration_since(*t) >= self.window)
                    {
                        q.pop_front();
                    }
                    if q.len() >= (*max).max(1) {
                        if let Some((first, _)) = q.front() {
                            wait = wait.max(self.window.saturating_sub(now.duration_since(*first)));
                        }
                    }
                }
                if !wait.is_zero() {
                    return Ok(Reserved::Limited(wait.as_secs().max(1)));
                }
                for (key, _) in allowances {
                    map.entry(key.clone())
                        .or_default()
                        .push_back((now, id.clone()));
                }
                Ok(Reserved::Yes(id))
            }
            LimiterBackend::Redis { pool, prefix } => {
                let mut cmd = redis::cmd("EVAL");
                cmd.arg(RESERVE_LUA).arg(allowances.len());
                for (key, _) in allowances {
                    cmd.arg(failures_key(prefix, key));
                }
                cmd.arg(crate::token::now_ms())
                    .arg(self.window_ms())
                    .arg(&id);
                for (_, max) in allowances {
                    cmd.arg((*max).max(1));
                }
                let mut conn = pool.get().await?;
                let wait_ms: i64 = cmd.query_async(&mut *conn).await?;
                Ok(if wait_ms > 0 {
                    Reserved::Limited((wait_ms as u64).div_ceil(1000).max(1))
                } else {
                    Reserved::Yes(id)
                })
            }
        }
    }

    /// The attempt `id` was right: it no longer counts against any of `keys`, and the
    /// failures of `forget` (the address and username pair) are forgotten.
    pub async fn release(&self, id: &str, keys: &[&str], forget: &str) -> Result<(), SessionError> {
        match &self.backend {
            LimiterBackend::Memory(attempts) => {
                let mut map = lock(attempts);
                for key in keys {
                    if let Some(q) = map.get_mut(*key) {
                        q.retain(|(_, a)| a != id);
                    }
                }
                map.remove(forget);
            }
            LimiterBackend::Redis { pool, prefix } => {
                let mut pipe = redis::pipe();
                for key in keys {
                    pipe.cmd("ZREM")
                        .arg(failures_key(prefix, key))
                        .arg(id)
                        .ignore();
                }
                pipe.cmd("DEL").arg(failures_key(prefix, forget)).ignore();
                let mut conn = pool.get().await?;
                let _: () = pipe.query_async(&mut *conn).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(ip: &str, user: &str) -> Vec<Allowance> {
        vec![(format!("pair:{ip}|{user}"), 3), (format!("ip:{ip}"), 5)]
    }

    #[actix_web::test]
    async fn a_pair_and_an_address_run_out_but_a_username_never_does() {
        let l = LoginLimiter::in_memory(Duration::from_secs(60));
        for _ in 0..3 {
            assert!(matches!(
                l.reserve(&allow("1", "admin")).await.unwrap(),
                Reserved::Yes(_)
            ));
        }
        let Reserved::Limited(wait) = l.reserve(&allow("1", "admin")).await.unwrap() else {
            panic!("the pair's allowance is used up");
        };
        assert!((1..=60).contains(&wait));
        // The same username from another address is not locked out.
        assert!(matches!(
            l.reserve(&allow("2", "admin")).await.unwrap(),
            Reserved::Yes(_)
        ));
        // The address runs out across usernames: 3 + 2 = 5.
        assert!(matches!(
            l.reserve(&allow("1", "b")).await.unwrap(),
            Reserved::Yes(_)
        ));
        assert!(matches!(
            l.reserve(&allow("1", "c")).await.unwrap(),
            Reserved::Yes(_)
        ));
        assert!(matches!(
            l.reserve(&allow("1", "d")).await.unwrap(),
            Reserved::Limited(_)
        ));
    }

    #[actix_web::test]
    async fn a_right_password_takes_its_attempt_back_and_clears_the_pair() {
        let l = LoginLimiter::in_memory(Duration::from_secs(60));
        let a = allow("1", "admin");
        for _ in 0..2 {
            l.reserve(&a).await.unwrap();
        }
        let Reserved::Yes(id) = l.reserve(&a).await.unwrap() else {
            panic!("room for a third");
        };
        let keys: Vec<&str> = a.iter().map(|(k, _)| k.as_str()).collect();
        l.release(&id, &keys, &a[0].0).await.unwrap();
        // The pair is clear again; the address keeps its two failures (2 + 3 = 5).
        for _ in 0..3 {
            assert!(matches!(l.reserve(&a).await.unwrap(), Reserved::Yes(_)));
        }
        assert!(matches!(
            l.reserve(&allow("1", "x")).await.unwrap(),
            Reserved::Limited(_)
        ));
    }

    #[test]
    fn the_gate_refuses_at_once_when_full() {
        let g = PasswordGate::new(2);
        let (a, b) = (g.try_enter(), g.try_enter());
        assert!(a.is_some() && b.is_some());
        assert!(g.try_enter().is_none());
        drop(a);
        assert!(g.try_enter().is_some());
    }
}
