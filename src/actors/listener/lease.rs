//! LeaseKeeper actor: decides which replica may hold the one Massive connection.
//!
//! Massive allows one connection per (API key, market); two processes on one key evict each
//! other forever. Replicas therefore compete for a Redis lease. The holder renews it every
//! `ttl/3` (only while the value is still its own, checked atomically in Lua) and tells its
//! listener to connect; the others stay idle as hot standbys and poll every [`STANDBY_POLL`].
//!
//! - **A clean stop** hands the lease back ([`Release`]) and leaves a "released" marker: a
//!   standby takes it at its next poll.
//! - **A dead holder**'s lease lapses after its TTL; a standby takes it [`VANISHED_WAIT`]
//!   later.
//! - **A Redis restart** (Redis keeps nothing) empties the key under a live holder. The holder
//!   takes it back at its next renewal, while a standby waits [`VANISHED_WAIT`] before taking
//!   a lease that vanished without a release, so the holder keeps its Massive connection.
//! - **Redis unreachable**: a holder cannot tell an outage from losing the lease. It keeps its
//!   connection until its TTL plus `redis_grace` (`LEASE_REDIS_GRACE_MS`) has passed without a
//!   renewal, retrying every poll, then stops its listener. A standby cannot take the lease
//!   while Redis is away. The price of the grace: if only the holder loses Redis (a
//!   partition), a standby takes the lease after its TTL and Massive sees two connections
//!   until the grace runs out (it evicts one: `max_connections`, which the listener counts).

use std::time::{Duration, Instant};

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Recipient, WrapFuture};
use deadpool_redis::redis;
use deadpool_redis::Pool;

use super::connection::Control;
use super::metrics::LeaseFigures;

/// How often a standby tries to take the lease.
pub const STANDBY_POLL: Duration = Duration::from_millis(250);

/// Hand the lease back now (the node is stopping): stop renewing and delete it if still ours.
/// Answers once done, so the standby can take over at its next poll.
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct Release;

/// How long a standby waits before taking a lease that vanished without being released (a
/// Redis restart under a live holder, or a holder's lease that lapsed): time for a live holder
/// to take it back first.
pub const VANISHED_WAIT: Duration = Duration::from_secs(1);

/// The holder's renewal: 1 renewed, 2 taken back (the key had vanished: a Redis restart),
/// 0 someone else holds it. KEYS key; ARGV holder, ttl (ms).
const RENEW: &str = r#"local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not cur then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 2 end
return 0"#;

/// A standby's attempt: {1, me} taken; {0, holder} held by another; {2, ''} free but neither
/// released nor allowed yet. KEYS key, released marker; ARGV holder, ttl (ms), allowed (1/0).
const TAKE: &str = r#"local cur = redis.call('GET', KEYS[1])
if cur then return {0, cur} end
if ARGV[3] == '1' or redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  redis.call('DEL', KEYS[2])
  return {1, ARGV[1]}
end
return {2, ''}"#;

/// Hands the lease back if still ours, leaving the released marker for the standbys.
/// KEYS key, marker; ARGV holder, ttl (ms).
const RELEASE: &str = r#"if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
  return 1 end
return 0"#;

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("invalid Redis URL: {0}")]
    Config(String),
}

/// Lease settings.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub redis_url: String,
    /// Redis key, e.g. `tickwire:lease:massive:<key id>:stocks`.
    pub key: String,
    /// This replica's identity (shown as the holder).
    pub holder: String,
    pub ttl: Duration,
    /// How long past its TTL a holder keeps its connection while Redis cannot be reached.
    pub redis_grace: Duration,
    /// Metric label: the market this lease is for.
    pub market: String,
}

impl LeaseConfig {
    fn released_key(&self) -> String {
        format!("{}:released", self.key)
    }
}

/// The lease key for an API key and market. The key itself is not stored: only a hash of it.
pub fn lease_key(prefix: &str, api_key: &str, market: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in api_key.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{prefix}lease:massive:{h:016x}:{market}")
}

pub struct LeaseKeeper {
    cfg: LeaseConfig,
    pool: Pool,
    listener: Recipient<Control>,
    held_until: Option<Instant>,
    busy: bool,
    figures: LeaseFigures,
    holder_seen: std::sync::Arc<std::sync::Mutex<String>>,
    /// When the lease was last renewed (or taken): the holder renews every TTL/3.
    renewed_at: Option<Instant>,
    /// Handed back: never taken again by this keeper.
    released: bool,
    /// A standby: when it first found the key free without a release.
    free_since: Option<Instant>,
    /// The holder's last check failed (Redis away): retry every poll.
    failing: bool,
}

impl LeaseKeeper {
    pub fn new(
        cfg: LeaseConfig,
        listener: Recipient<Control>,
        figures: LeaseFigures,
    ) -> Result<Self, LeaseError> {
        let pool = crate::redis_pool::open(&cfg.redis_url)
            .map_err(|e| LeaseError::Config(e.to_string()))?;
        Ok(LeaseKeeper {
            cfg,
            pool,
            listener,
            held_until: None,
            busy: false,
            figures,
            holder_seen: Default::default(),
            renewed_at: None,
            released: false,
            free_since: None,
            failing: false,
        })
    }

    /// Who held the lease at the last check (this replica or another).
    pub fn holder_handle(&self) -> std::sync::Arc<std::sync::Mutex<String>> {
        self.holder_seen.clone()
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.busy || self.released {
            return;
        }
        let holding = self.held_until.is_some();
        // Standbys poll fast; the holder renews every TTL/3, and every poll while failing.
        if holding
            && !self.failing
            && self
                .renewed_at
                .is_some_and(|t| t.elapsed() < self.cfg.ttl / 3)
        {
            return;
        }
        self.busy = true;
        let allowed = self
            .free_since
            .is_some_and(|t| t.elapsed() >= VANISHED_WAIT);
        let (pool, cfg) = (self.pool.clone(), self.cfg.clone());
        let fut = async move {
            let mut conn = pool.get().await.map_err(|e| e.to_string())?;
            let ttl = cfg.ttl.as_millis() as u64;
            if holding {
                let r: i64 = redis::cmd("EVAL")
                    .arg(RENEW)
                    .arg(1)
                    .arg(&cfg.key)
                    .arg(&cfg.holder)
                    .arg(ttl)
                    .query_async(&mut *conn)
                    .await
                    .map_err(|e| e.to_string())?;
                let holder: Option<String> = redis::cmd("GET")
                    .arg(&cfg.key)
                    .query_async(&mut *conn)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>((r, holder.unwrap_or_default()))
            } else {
                let (r, holder): (i64, String) = redis::cmd("EVAL")
                    .arg(TAKE)
                    .arg(2)
                    .arg(&cfg.key)
                    .arg(cfg.released_key())
                    .arg(&cfg.holder)
                    .arg(ttl)
                    .arg(if allowed { "1" } else { "0" })
                    .query_async(&mut *conn)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok((r, holder))
            }
        };
        let started = Instant::now();
        ctx.spawn(fut.into_actor(self).map(move |res, act, _| {
            act.busy = false;
            if act.released {
                return; // handed back while this check ran: its answer is moot
            }
            match res {
                // Holding (renewed, or taken back after a Redis restart), or just taken.
                Ok((1, holder)) | Ok((2, holder)) if holding || holder == act.cfg.holder => {
                    act.failing = false;
                    act.free_since = None;
                    act.renewed_at = Some(started);
                    if act.held_until.is_none() {
                        log::info!(
                            "took the Massive connection lease {} as {}",
                            act.cfg.key,
                            act.cfg.holder
                        );
                        act.figures.acquired.inc();
                        act.figures.held.set(1);
                        act.listener.do_send(Control::Start);
                    }
                    act.held_until = Some(started + act.cfg.ttl);
                    act.set_holder(holder);
                }
                // Free, but it vanished without a release: wait before taking it.
                Ok((2, _)) => {
                    act.free_since.get_or_insert(started);
                    act.set_holder(String::new());
                }
                Ok((_, holder)) => {
                    act.free_since = None;
                    if act.held_until.take().is_some() {
                        log::warn!("lost the Massive connection lease to {holder:?}; standing by");
                        act.give_up();
                    }
                    act.failing = false;
                    act.set_holder(holder);
                }
                Err(e) => {
                    act.figures.errors.inc();
                    act.figures.actor.errors.inc();
                    if !act.failing {
                        log::warn!("lease check failed: {e}");
                    }
                    act.failing = true;
                    let grace = act.cfg.redis_grace;
                    if act.held_until.is_some_and(|t| Instant::now() >= t + grace) {
                        log::warn!(
                            "could not renew the lease for its TTL plus {grace:?}; stopping the listener"
                        );
                        act.held_until = None;
                        act.give_up();
                    }
                }
            }
        }));
    }

    fn set_holder(&self, holder: String) {
        if let Ok(mut h) = self.holder_seen.lock() {
            *h = holder;
        }
    }

    fn give_up(&mut self) {
        self.figures.lost.inc();
        self.figures.held.set(0);
        self.listener.do_send(Control::Stop);
    }
}

impl Actor for LeaseKeeper {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.tick(ctx);
        ctx.run_interval(STANDBY_POLL.min(self.cfg.ttl / 3), |act, ctx| act.tick(ctx));
    }
}

impl actix::Handler<Release> for LeaseKeeper {
    type Result = actix::ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Release, _: &mut Context<Self>) -> Self::Result {
        self.figures.actor.handled();
        self.released = true;
        let held = self.held_until.take().is_some();
        if held {
            self.figures.held.set(0);
            self.figures.lost.inc();
            log::info!("handing the Massive connection lease {} back", self.cfg.key);
        }
        let (pool, cfg) = (self.pool.clone(), self.cfg.clone());
        Box::pin(
            async move {
                if !held {
                    return;
                }
                let released = async {
                    let mut conn = pool.get().await.map_err(|e| e.to_string())?;
                    redis::cmd("EVAL")
                        .arg(RELEASE)
                        .arg(2)
                        .arg(&cfg.key)
                        .arg(cfg.released_key())
                        .arg(&cfg.holder)
                        .arg(cfg.ttl.as_millis() as u64)
                        .query_async::<i64>(&mut *conn)
                        .await
                        .map_err(|e| e.to_string())
                };
                if let Err(e) = released.await {
                    log::warn!("could not hand the lease back ({e}); it expires on its own");
                }
            }
            .into_actor(self),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_key_hides_the_api_key() {
        let k = lease_key("tickwire:", "secret-key", "stocks");
        assert!(k.starts_with("tickwire:lease:massive:") && k.ends_with(":stocks"));
        assert!(!k.contains("secret"));
        assert_ne!(k, lease_key("tickwire:", "other", "stocks"));
    }
}
