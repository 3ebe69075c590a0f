//! LeaseKeeper actor: decides which replica may hold the one Massive connection.
//!
//! Massive allows one connection per (API key, market); two processes on one key evict each
//! other forever. Replicas therefore compete for a Redis lease: `SET key me NX PX ttl`. The
//! holder renews it every `ttl/3` (only while the value is still its own, checked atomically
//! in Lua) and tells its listener to connect; the others stay idle as hot standbys and retry
//! every [`STANDBY_POLL`], so they take over within one TTL when the holder dies and within
//! about that poll when it stops cleanly and hands the lease back ([`Release`]). A holder that
//! cannot renew before its TTL runs out stops its listener: past that point another replica
//! may rightly hold the lease.

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

/// Renews only if the lease is still ours.
const RENEW: &str = r#"if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end"#;

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
    /// Metric label: the market this lease is for.
    pub market: String,
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
        // Standbys poll fast; the holder renews every TTL/3.
        if self.held_until.is_some()
            && self
                .renewed_at
                .is_some_and(|t| t.elapsed() < self.cfg.ttl / 3)
        {
            return;
        }
        self.busy = true;
        let (pool, cfg, holding) = (
            self.pool.clone(),
            self.cfg.clone(),
            self.held_until.is_some(),
        );
        let fut = async move {
            let mut conn = pool.get().await.map_err(|e| e.to_string())?;
            let ttl = cfg.ttl.as_millis() as u64;
            let ours = if holding {
                let renewed: i64 = redis::cmd("EVAL")
                    .arg(RENEW)
                    .arg(1)
                    .arg(&cfg.key)
                    .arg(&cfg.holder)
                    .arg(ttl)
                    .query_async(&mut *conn)
                    .await
                    .map_err(|e| e.to_string())?;
                renewed == 1
            } else {
                let set: Option<String> = redis::cmd("SET")
                    .arg(&cfg.key)
                    .arg(&cfg.holder)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl)
                    .query_async(&mut *conn)
                    .await
                    .map_err(|e| e.to_string())?;
                set.is_some()
            };
            let holder: Option<String> = redis::cmd("GET")
                .arg(&cfg.key)
                .query_async(&mut *conn)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((ours, holder.unwrap_or_default()))
        };
        let started = Instant::now();
        ctx.spawn(fut.into_actor(self).map(move |res, act, _| {
            act.busy = false;
            if act.released {
                return; // handed back while this check ran: its answer is moot
            }
            match res {
                Ok((true, holder)) => {
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
                Ok((false, holder)) => {
                    if act.held_until.take().is_some() {
                        log::warn!("lost the Massive connection lease to {holder:?}; standing by");
                        act.give_up();
                    }
                    act.set_holder(holder);
                }
                Err(e) => {
                    act.figures.errors.inc();
                    act.figures.actor.errors.inc();
                    log::warn!("lease check failed: {e}");
                    if act.held_until.is_some_and(|t| Instant::now() >= t) {
                        log::warn!(
                            "could not renew the lease before it expired; stopping the listener"
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
                        .arg(crate::store::RELEASE_LUA)
                        .arg(1)
                        .arg(&cfg.key)
                        .arg(&cfg.holder)
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
