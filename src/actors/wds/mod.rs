//! The widget data service (`tickwire-wds`): the only data-plane node that clients reach.
//!
//! Browsers open a WebSocket, prove who they are with a token signed by the control plane,
//! subscribe to topics (the client-facing cache keys, reference-system.md §4) and receive
//! cached snapshots and live updates, in protocol v1 at `/ws` (the reference web app's, byte
//! for byte) or v2 at `/ws/v2` (multiplexed, sequenced, snapshot-then-stream).
//!
//! A result's path through this folder:
//!
//! 1. [`upstream`]: the node's one Redis pub/sub connection receives the message the
//!    processor published (embedded mode: the memory store hands it over in process).
//! 2. [`hub`]: the `Hub` builds its v1 and v2 frames once and pushes a shared copy into the
//!    [`outbox`] of every session that subscribed to the topic; it never waits on a client.
//! 3. [`session`]: each client's `WsSession` drains its outbox onto the socket (the only
//!    module that uses actix-web-actors, so it could move to actix-ws); [`protocol`] parses
//!    the client's requests and builds every reply. The browser's side of v2 is
//!    `src/scp/assets/wds-client.js`.
//!
//! Beside them: this module's [`WdsState`] (what every session shares: limits, auth, the
//! open sessions, revocations), [`status`] (readiness, `/health`, `/stats`), [`metrics`] and
//! [`node`] (flags, wiring, and the embedded-mode mount).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix::{Addr, Recipient};
use tokio::sync::broadcast::error::RecvError;

use crate::actors::wds::hub::{Hub, SessionId};
use crate::actors::wds::metrics::WdsFigures;
use crate::revocation::{Revocation, RevocationList};
use crate::store::{glob_match, Store};
use crate::token::{self, Claims, TokenError};

pub mod admission;
pub mod hub;
pub mod metrics;
pub mod node;
pub mod outbox;
pub mod protocol;
pub mod relay;
pub mod session;
pub mod status;
pub mod upstream;

/// Per-session and per-node limits (docs/configuration.md lists their flags).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request frame accepted (bytes); larger ones get an error.
    pub max_frame_bytes: usize,
    /// Topics one session may hold.
    pub max_topics: usize,
    /// Requests per second per session (a burst of as many is allowed).
    pub max_msgs_per_sec: u32,
    /// Open sessions per node; more are refused at the handshake (503).
    pub max_sessions: usize,
    /// Time to authenticate when no token came with the handshake.
    pub handshake_timeout: Duration,
    /// Violations (bad frames, rate, limits, refusals) tolerated before the socket is closed.
    pub max_violations: u32,
    /// Frames waiting per client before newer ones are dropped.
    pub outbox_frames: usize,
    /// How long a client may stay over `outbox_frames` before it is closed.
    pub slow_grace: Duration,
    /// Sockets one client address may hold, and of those not yet authenticated.
    pub max_per_address: usize,
    pub max_unauthenticated_per_address: usize,
    /// WebSocket ping interval.
    pub heartbeat: Duration,
    /// A client silent (no frame, no pong) this long is closed.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: 16 * 1024,
            max_topics: 200,
            max_msgs_per_sec: 50,
            max_sessions: 200_000,
            handshake_timeout: Duration::from_secs(10),
            max_violations: 10,
            max_per_address: 1000,
            max_unauthenticated_per_address: 50,
            outbox_frames: 2048,
            slow_grace: Duration::from_secs(5),
            heartbeat: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Token checking: on unless switched off explicitly.
#[derive(Clone)]
pub struct Auth {
    pub required: bool,
    /// The token secrets accepted: the current one, and the previous one while rotating.
    pub keys: token::Keys,
}

/// What every session of a node shares.
pub struct WdsState {
    pub hub: Addr<Hub>,
    /// Reads for `get` (the results store).
    pub store: Store,
    pub auth: Auth,
    pub limits: Limits,
    /// Prefix of the store keys; clients name topics without it.
    pub results_prefix: String,
    /// Topic patterns this node serves at all (`WDS_ALLOWED_TOPICS`), tokens aside.
    pub allowed: Vec<String>,
    /// The node's figures (sessions, hub, results reader).
    pub figures: WdsFigures,
    /// Sockets per client address ([`admission`]).
    pub addresses: Arc<admission::AddressBook>,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: crate::clients::TrustedProxies,
    /// Tokens the control plane revoked before they expire ([`crate::revocation`]).
    pub revoked: Arc<RevocationList>,
    /// Every open session, so that a stopping node can say goodbye to each and a
    /// revocation reaches the sessions of its user.
    sessions: Mutex<HashMap<SessionId, OpenSession>>,
    /// Set when the node starts stopping: new handshakes are refused (503) and `/ready`
    /// fails, so a load balancer sends clients elsewhere.
    stopping: AtomicBool,
}

/// The node is stopping: close with 1001 so that the client reconnects at once (to another
/// replica) rather than finding out from a dead socket.
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct GoingAway;

/// The control plane revoked some tokens ([`crate::revocation`]): a session holding one of
/// them ends now rather than at its token's expiry. v2 is told why first; v1 gets only the
/// close frame (its web app takes any unsolicited frame for data).
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct Revoke(pub Revocation);

/// How the node reaches an open session.
pub struct OpenSession {
    pub going_away: Recipient<GoingAway>,
    pub revoke: Recipient<Revoke>,
    /// The token's subject, once the session has one.
    pub sub: Option<String>,
}

impl WdsState {
    /// Checks a client's token: signature, expiry, and that it is not revoked.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let claims = token::verify_with(token, &self.auth.keys, token::now_secs())?;
        if self.revoked.covers(&claims) {
            return Err(TokenError::Revoked);
        }
        Ok(claims)
    }

    /// Whether `topic` (exact, or a pattern with `*`) lies inside what this node serves.
    pub fn serves(&self, topic: &str) -> bool {
        self.allowed
            .iter()
            .any(|p| glob_match(p.as_bytes(), topic.as_bytes()))
    }

    fn open_sessions(&self) -> MutexGuard<'_, HashMap<SessionId, OpenSession>> {
        // Inserts and removes only: a panic elsewhere cannot leave the map half changed.
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether [`WdsState::going_away`] has begun: no new sessions.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    pub fn session_started(&self, id: SessionId, session: OpenSession) {
        self.open_sessions().insert(id, session);
    }

    /// The session authenticated as `sub` (a renewal keeps the subject).
    pub fn session_authorized(&self, id: SessionId, sub: &str) {
        if let Some(s) = self.open_sessions().get_mut(&id) {
            s.sub = Some(sub.to_string());
        }
    }

    /// Hands `r` to the open sessions of its user; each closes if its token is covered.
    /// Returns how many were told.
    pub fn revoke_sessions(&self, r: &Revocation) -> usize {
        let mut told = 0;
        for s in self.open_sessions().values() {
            if s.sub.as_deref() == Some(r.sub.as_str()) {
                s.revoke.do_send(Revoke(r.clone()));
                told += 1;
            }
        }
        told
    }

    /// Applies every revocation the list learns to the open sessions, for as long as the
    /// state lives. Announcements missed under a burst are made up by re-checking them all.
    pub fn watch_revocations(state: &Arc<WdsState>) {
        let mut rx = state.revoked.subscribe();
        let state = Arc::downgrade(state);
        actix::spawn(async move {
            loop {
                let got = rx.recv().await;
                let Some(state) = state.upgrade() else {
                    return;
                };
                match got {
                    Ok(r) => {
                        let told = state.revoke_sessions(&r);
                        log::info!(
                            "tokens of {} revoked; {told} of their open sessions checked",
                            r.sub
                        );
                    }
                    Err(RecvError::Lagged(missed)) => {
                        log::warn!("{missed} revocations arrived faster than applied; re-checking every session");
                        for r in state.revoked.all() {
                            state.revoke_sessions(&r);
                        }
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        });
    }

    pub fn session_stopped(&self, id: SessionId) {
        self.open_sessions().remove(&id);
    }

    /// Asks every open session to close with 1001 (the node is stopping) and waits, at most
    /// `wait`, until they have: clients then reconnect at once, to another replica, instead
    /// of finding out from a dead socket.
    pub async fn going_away(&self, wait: Duration) {
        self.stopping.store(true, Ordering::SeqCst);
        let start = Instant::now();
        let mut told = HashSet::new();
        loop {
            // Sessions whose handshake raced the flag register late: tell them too.
            let new: Vec<_> = self
                .open_sessions()
                .iter()
                .filter(|(id, _)| !told.contains(*id))
                .map(|(id, s)| (*id, s.going_away.clone()))
                .collect();
            if told.is_empty() && !new.is_empty() {
                log::info!("closing {} sessions: the node is stopping", new.len());
            }
            for (id, to) in new {
                to.do_send(GoingAway);
                told.insert(id);
            }
            if self.open_sessions().is_empty() || start.elapsed() >= wait {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A token bucket: `rate` requests per second, bursts up to `rate`.
pub struct RateLimit {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl RateLimit {
    pub fn new(per_sec: u32) -> Self {
        let rate = f64::from(per_sec.max(1));
        RateLimit {
            rate,
            tokens: rate,
            at: Instant::now(),
        }
    }

    /// Takes one token at `now`; false when none is left.
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_allows_a_burst_then_refills() {
        let mut r = RateLimit::new(3);
        let t = Instant::now();
        assert!(r.take(t) && r.take(t) && r.take(t));
        assert!(!r.take(t));
        assert!(r.take(t + Duration::from_millis(400)));
        assert!(!r.take(t + Duration::from_millis(400)));
    }
}
