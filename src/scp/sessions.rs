//! Browser sessions and the login rate limiter, both in memory.
//!
//! A session is a random id in an HttpOnly cookie mapped to the user, their roles and a CSRF
//! token; it ends on logout, after an idle period, or after an absolute lifetime, whichever
//! comes first. Kept in the SCP process: a restart logs everyone out, which is acceptable
//! for a control plane (several SCP replicas need sticky sessions; docs/operations.md).
//!
//! The limiter counts failed logins per client address and per username in a sliding window,
//! so neither one address guessing many passwords nor many addresses guessing one user's
//! password gets more than the allowance.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Nothing panics while holding these maps, but if something ever did, the map is still
/// consistent: carry on with it rather than log everyone out or switch the limiter off.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a valid session cookie stands for.
#[derive(Debug, Clone)]
pub struct Session {
    pub username: String,
    pub roles: Vec<String>,
    /// Sent back in `X-CSRF-Token` on every state-changing request.
    pub csrf: String,
    created: Instant,
    last_seen: Instant,
}

impl Session {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    idle: Duration,
    lifetime: Duration,
}

impl Sessions {
    pub fn new(idle: Duration, lifetime: Duration) -> Self {
        Sessions {
            map: Mutex::new(HashMap::new()),
            idle,
            lifetime,
        }
    }

    fn live(&self, s: &Session, now: Instant) -> bool {
        now.duration_since(s.last_seen) < self.idle && now.duration_since(s.created) < self.lifetime
    }

    /// A new session for the user: (session id, CSRF token).
    pub fn create(&self, username: &str, roles: &[String]) -> std::io::Result<(String, String)> {
        let id = crate::token::random_hex()?;
        let csrf = crate::token::random_hex()?;
        let now = Instant::now();
        let session = Session {
            username: username.to_string(),
            roles: roles.to_vec(),
            csrf: csrf.clone(),
            created: now,
            last_seen: now,
        };
        let mut map = lock(&self.map);
        // Dropping the dead here keeps the map bounded without a sweeper task.
        map.retain(|_, s| self.live(s, now));
        map.insert(id.clone(), session);
        Ok((id, csrf))
    }

    /// The live session behind `id`, its idle clock restarted; an expired one is dropped.
    pub fn touch(&self, id: &str) -> Option<Session> {
        let now = Instant::now();
        let mut map = lock(&self.map);
        let live = map.get(id).map(|s| self.live(s, now))?;
        if !live {
            map.remove(id);
            return None;
        }
        let s = map.get_mut(id)?;
        s.last_seen = now;
        Some(s.clone())
    }

    /// Ends the session (logout).
    pub fn remove(&self, id: &str) -> Option<Session> {
        lock(&self.map).remove(id)
    }

    /// Live sessions, for `/stats`.
    pub fn count(&self) -> usize {
        let now = Instant::now();
        lock(&self.map)
            .values()
            .filter(|s| self.live(s, now))
            .count()
    }
}

/// Failed logins per key (an address or a username) in a sliding window.
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
    max: usize,
    window: Duration,
}

impl LoginLimiter {
    pub fn new(max: usize, window: Duration) -> Self {
        LoginLimiter {
            failures: Mutex::new(HashMap::new()),
            max: max.max(1),
            window,
        }
    }

    /// `Err(seconds to wait)` when any of `keys` has used up its failures in the window.
    pub fn check(&self, keys: &[&str]) -> Result<(), u64> {
        let now = Instant::now();
        let mut map = lock(&self.failures);
        let mut wait = Duration::ZERO;
        for k in keys {
            if let Some(q) = map.get_mut(*k) {
                while q
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= self.window)
                {
                    q.pop_front();
                }
                if q.len() >= self.max {
                    if let Some(first) = q.front() {
                        wait = wait.max(self.window.saturating_sub(now.duration_since(*first)));
                    }
                }
            }
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(wait.as_secs().max(1))
        }
    }

    pub fn failed(&self, keys: &[&str]) {
        let now = Instant::now();
        let mut map = lock(&self.failures);
        if map.len() > 100_000 {
            // A flood of distinct keys: forget the stale ones rather than grow forever.
            map.retain(|_, q| {
                q.back()
                    .is_some_and(|t| now.duration_since(*t) < self.window)
            });
        }
        for k in keys {
            map.entry((*k).to_string()).or_default().push_back(now);
        }
    }

    /// A successful login clears the username's failures (the address's stay).
    pub fn succeeded(&self, username_key: &str) {
        lock(&self.failures).remove(username_key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_when_idle_and_end_on_logout() {
        let sessions = Sessions::new(Duration::from_secs(60), Duration::from_secs(600));
        let (id, csrf) = sessions.create("alice", &["viewer".into()]).unwrap();
        let s = sessions.touch(&id).unwrap();
        assert_eq!(
            (s.username.as_str(), s.csrf.as_str()),
            ("alice", csrf.as_str())
        );
        assert!(s.has_role("viewer") && !s.has_role("admin"));
        assert_eq!(sessions.count(), 1);
        assert!(sessions.remove(&id).is_some());
        assert!(sessions.touch(&id).is_none());

        let expired = Sessions::new(Duration::ZERO, Duration::from_secs(600));
        let (id, _) = expired.create("bob", &[]).unwrap();
        assert!(expired.touch(&id).is_none());
        assert_eq!(expired.count(), 0);
    }

    #[test]
    fn limiter_blocks_after_max_failures_per_key() {
        let l = LoginLimiter::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(l.check(&["ip:1", "user:a"]).is_ok());
            l.failed(&["ip:1", "user:a"]);
        }
        let wait = l.check(&["ip:1", "user:b"]).unwrap_err();
        assert!((1..=60).contains(&wait));
        // Another address trying the same user is blocked too.
        assert!(l.check(&["ip:2", "user:a"]).is_err());
        // A fresh address and user are not.
        assert!(l.check(&["ip:2", "user:b"]).is_ok());
        l.succeeded("user:a");
        assert!(l.check(&["ip:2", "user:a"]).is_ok());
    }
}
