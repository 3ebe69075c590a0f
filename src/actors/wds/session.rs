//! WsSession actor: one client WebSocket of the widget data service, v1 or v2.
//!
//! Every use of actix-web-actors (deprecated upstream) is in this one module: the handshake
//! routes, the session actor and its stream handler. Moving to actix-ws means rewriting this
//! file only; the protocol, outbox, hub and limits do not depend on it.
//!
//! A session processes its frames strictly in arrival order, one at a time (v1 clients rely
//! on it): a `get` waits for its read before the next frame is looked at. Pushes never pass
//! through the session's mailbox: the hub fills the session's [`Outbox`] and sends one
//! [`Wake`]; the session drains it into the socket.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Handler, SpawnHandle, StreamHandler,
    WrapFuture,
};
use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use serde_json::json;

use super::admission::{AddressSlot, Full};
use crate::actors::wds::hub::{Join, Leave, SessionId};
use crate::actors::wds::metrics::SessionFigures;
use crate::actors::wds::outbox::{Outbox, Wake};
use crate::actors::wds::protocol::{self, v1, v2, Parsed, ProtocolError, Request};
use crate::actors::wds::{GoingAway, OpenSession, RateLimit, Revoke, WdsState};
use crate::store::{StoreError, Stored};
use crate::token::{self, Claims, TokenError};

static NEXT_SESSION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Frames drained from the outbox per turn, so one busy session cannot hog its thread.
const DRAIN_BATCH: usize = 256;

/// Longest wait for the upstream subscription before a subscribe is acknowledged anyway.
const ACK_WAIT: Duration = Duration::from_secs(5);

/// Longest single wait of the expiry timer: a token valid for years is looked at again once a
/// day rather than trusting one monotonic timer to line up with the wall clock that long.
const EXPIRY_CHECK_MAX: Duration = Duration::from_secs(86_400);

pub struct WsSession {
    id: SessionId,
    v2: bool,
    state: web::Data<WdsState>,
    /// Who the token says this is; `None` until authenticated (or with auth off).
    claims: Option<Claims>,
    /// Client topic -> store feed (results prefix added).
    topics: HashSet<String>,
    outbox: Option<Arc<Outbox>>,
    last_seen: Instant,
    rate: RateLimit,
    violations: u32,
    /// Fires when the token runs out; re-armed by every renewal.
    expiry: Option<SpawnHandle>,
    /// This socket's place among its address's ([`super::admission`]); given back on drop.
    slot: AddressSlot,
}

impl WsSession {
    fn new(
        v2: bool,
        state: web::Data<WdsState>,
        claims: Option<Claims>,
        slot: AddressSlot,
    ) -> Self {
        let rate = RateLimit::new(state.limits.max_msgs_per_sec);
        WsSession {
            id: NEXT_SESSION.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            v2,
            state,
            claims,
            topics: HashSet::new(),
            outbox: None,
            last_seen: Instant::now(),
            rate,
            violations: 0,
            expiry: None,
            slot,
        }
    }

    /// Authenticated, or nobody needs to be.
    fn authorized(&self) -> bool {
        self.claims.is_some() || !self.state.auth.required
    }

    /// The store key (or pattern) behind a client topic.
    fn feed(&self, topic: &str) -> String {
        format!("{}{topic}", self.state.results_prefix)
    }

    fn figures(&self) -> &SessionFigures {
        &self.state.figures.sessions
    }

    fn close(&mut self, ctx: &mut ws::WebsocketContext<Self>, why: &'static str, reason: &str) {
        self.figures().closed.inc(why);
        log::debug!("session {} closed: {reason}", self.id);
        ctx.close(Some(ws::CloseReason {
            code: ws::CloseCode::Policy,
            description: Some(reason.to_string()),
        }));
        ctx.stop();
    }

    /// Replies with an error; past the tolerated number of violations, closes.
    fn violation(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        kind: &'static str,
        code: &str,
        message: &str,
        topic: Option<&str>,
        id: Option<&serde_json::Value>,
    ) {
        self.figures().violations.inc(kind);
        if self.v2 {
            ctx.text(v2::error(code, message, topic, id));
        } else {
            ctx.text(v1::error(message));
        }
        self.violations += 1;
        if self.violations > self.state.limits.max_violations {
            let reason = format!("too many violations (last: {message})");
            self.close(ctx, "violations", &reason);
        }
    }

    fn set_claims(&mut self, claims: Claims) {
        if !self.authorized() {
            self.figures().authorized.inc();
            self.state.session_authorized(self.id, &claims.sub);
        }
        self.slot.authenticated();
        self.claims = Some(claims);
    }

    fn welcome(&self, ctx: &mut ws::WebsocketContext<Self>) {
        let (sub, exp) = match &self.claims {
            Some(c) => (c.sub.as_str(), Some(c.exp)),
            None => ("anonymous", None),
        };
        ctx.text(v2::welcome(self.id, sub, exp));
    }

    /// Why `topic` may not be read, if it may not: outside what the node serves, or outside
    /// the token's grants (everything the node serves, with auth off).
    fn refusal(&self, topic: &str) -> Option<String> {
        if !self.state.serves(topic) {
            return Some(format!("topic {topic} is not served here"));
        }
        let granted = match &self.claims {
            Some(c) => c.allows(topic),
            None => !self.state.auth.required,
        };
        (!granted).then(|| format!("topic {topic} is not granted by the token"))
    }

    fn text(&mut self, text: &str, ctx: &mut ws::WebsocketContext<Self>) {
        self.figures().frames_in.inc();
        let limits = &self.state.limits;
        if text.len() > limits.max_frame_bytes {
            let msg = format!(
                "frame of {} bytes exceeds {}",
                text.len(),
                limits.max_frame_bytes
            );
            return self.violation(ctx, "frame_size", "frame_too_large", &msg, None, None);
        }
        if !self.rate.take(Instant::now()) {
            let msg = format!("more than {} requests per second", limits.max_msgs_per_sec);
            return self.violation(ctx, "rate", "rate_limited", &msg, None, None);
        }
        let parsed = if self.v2 {
            protocol::parse_v2(text)
        } else {
            protocol::parse_v1(text)
        };
        match parsed {
            Ok(p) => self.request(p, ctx),
            Err(r) => {
                let kind = match r.error {
                    ProtocolError::BadTopic => "forbidden",
                    _ => "malformed",
                };
                let (code, message) = (r.error.code(), r.error.to_string());
                self.violation(ctx, kind, code, &message, r.topic.as_deref(), r.id.as_ref())
            }
        }
    }

    fn request(&mut self, p: Parsed, ctx: &mut ws::WebsocketContext<Self>) {
        let id = p.id.as_ref();
        if !self.authorized() {
            return self.first_frame(p.request, ctx);
        }
        match p.request {
            Request::Auth { token } => {
                if !self.v2 && !self.state.auth.required {
                    // The reference's answer with auth off.
                    ctx.text(v1::INVALID_ACTION);
                    return;
                }
                self.authenticate(&token, ctx);
            }
            Request::Subscribe { topic, limit } => self.subscribe(topic, limit, id, ctx),
            Request::Unsubscribe { topic } => {
                if self.topics.remove(&topic) {
                    self.state.hub.do_send(Leave {
                        session: self.id,
                        feeds: vec![self.feed(&topic)],
                    });
                    ctx.text(if self.v2 {
                        v2::ack("unsubscribed", &topic, id)
                    } else {
                        v1::ack("unsubscribed", &topic)
                    });
                } else if self.v2 {
                    ctx.text(v2::error(
                        "not_subscribed",
                        "not subscribed",
                        Some(&topic),
                        id,
                    ));
                } else {
                    ctx.text(v1::error(&format!("not subscribed: {topic}")));
                }
            }
            Request::Get { topic, limit } => self.get(topic, limit, p.id, ctx),
            Request::Ping => ctx.text(v2::pong(chrono::Utc::now().timestamp_millis(), id)),
            Request::Unknown => {
                if self.v2 {
                    self.violation(ctx, "unknown", "unknown_type", "unknown type", None, id)
                } else {
                    // The reference's reply, kept: its web app knows it.
                    self.figures().violations.inc("unknown");
                    ctx.text(v1::INVALID_ACTION);
                }
            }
        }
    }

    /// Auth is on and this session has not authenticated: only `auth` is accepted.
    fn first_frame(&mut self, r: Request, ctx: &mut ws::WebsocketContext<Self>) {
        match r {
            Request::Auth { token } => self.authenticate(&token, ctx),
            _ => {
                self.figures().auth_failures.inc("missing");
                if self.v2 {
                    ctx.text(v2::error("unauthorized", "authenticate first", None, None));
                } else {
                    ctx.text(v1::UNAUTHORIZED);
                }
                self.close(ctx, "auth", "unauthorized");
            }
        }
    }

    /// An `auth` frame: welcome (v2) or `authorized` (v1); a bad token closes the socket.
    /// On a session that already holds a token it is a renewal: same subject required, the
    /// subscriptions stay (those the new token no longer grants are dropped), and the expiry
    /// moves to the new token's.
    fn authenticate(&mut self, token: &str, ctx: &mut ws::WebsocketContext<Self>) {
        let claims = match self.state.verify(token) {
            Ok(c) => c,
            // A renewal with a revoked token: the user logged out or changed their password,
            // and the renewal reached the session before the revocation's own notice (or the
            // notice did not cover the held token). The client hears it the same way.
            Err(TokenError::Revoked) if self.claims.is_some() => {
                self.figures().auth_failures.inc("revoked");
                return self.token_ended(ctx, "token_revoked", REVOKED);
            }
            Err(e) => return self.refuse_auth(auth_reason(&e), &e.to_string(), ctx),
        };
        let renewal = self.claims.as_ref().map(|held| held.sub.clone());
        if let Some(held) = &renewal {
            if *held != claims.sub {
                let msg = format!("token is for {}, this session is {held}", claims.sub);
                return self.refuse_auth("other_subject", &msg, ctx);
            }
        }
        self.set_claims(claims);
        if self.ended_if_revoked(ctx) {
            return;
        }
        if renewal.is_some() {
            self.figures().renewals.inc();
            self.drop_ungranted(ctx);
        }
        self.arm_expiry(ctx);
        if self.v2 {
            self.welcome(ctx);
        } else {
            ctx.text(v1::AUTHORIZED);
        }
    }

    fn refuse_auth(
        &mut self,
        reason: &'static str,
        msg: &str,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        self.figures().auth_failures.inc(reason);
        if self.v2 {
            ctx.text(v2::error("unauthorized", msg, None, None));
        } else {
            ctx.text(v1::INVALID_KEY);
        }
        self.close(ctx, "auth", msg);
    }

    /// After a renewal: leaves the topics the new token does not grant, telling the client
    /// about each (it asked for them under the old token, so they must not end silently).
    fn drop_ungranted(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        let lost: Vec<String> = self
            .topics
            .iter()
            .filter(|t| self.refusal(t).is_some())
            .cloned()
            .collect();
        if lost.is_empty() {
            return;
        }
        for topic in &lost {
            self.topics.remove(topic);
            self.figures().violations.inc("forbidden");
            let msg = format!("topic {topic} is not granted by the renewed token: unsubscribed");
            ctx.text(if self.v2 {
                v2::error("forbidden", &msg, Some(topic), None)
            } else {
                v1::error(&msg)
            });
        }
        let feeds = lost.iter().map(|t| self.feed(t)).collect();
        self.state.hub.do_send(Leave {
            session: self.id,
            feeds,
        });
    }

    /// (Re)starts the timer that ends the session when its token runs out. With auth off
    /// a token sent anyway is not enforced: nothing required it in the first place.
    fn arm_expiry(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        if let Some(h) = self.expiry.take() {
            ctx.cancel_future(h);
        }
        let Some(exp) = self.claims.as_ref().map(|c| c.exp) else {
            return;
        };
        if !self.state.auth.required {
            return;
        }
        let left = u64::try_from(exp - token::now_secs()).unwrap_or(0);
        let wait = Duration::from_secs(left).min(EXPIRY_CHECK_MAX);
        self.expiry = Some(ctx.run_later(wait, |act, ctx| {
            act.expiry = None;
            act.expiry_due(ctx);
        }));
    }

    fn expiry_due(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        let expired = self
            .claims
            .as_ref()
            .is_some_and(|c| c.exp <= token::now_secs());
        if !expired {
            // Woken early (a long-lived token's daily check): wait again.
            return self.arm_expiry(ctx);
        }
        self.token_ended(
            ctx,
            "token_expired",
            "token expired: renew it with an auth frame before expires_at",
        );
    }

    /// A revocation announced between the token check and the session's registration under
    /// its subject reaches no session; so once registered, the session looks at the list
    /// itself. `true` when that ended it.
    fn ended_if_revoked(&mut self, ctx: &mut ws::WebsocketContext<Self>) -> bool {
        let revoked = self.state.auth.required
            && self
                .claims
                .as_ref()
                .is_some_and(|c| self.state.revoked.covers(c));
        if revoked {
            self.token_ended(ctx, "token_revoked", REVOKED);
        }
        revoked
    }

    /// The session's token no longer counts (`why`: `token_expired`, `token_revoked`): v2 is
    /// told why, then the socket closes with 1008 naming it. v1 gets only the close frame:
    /// its web app takes any unsolicited frame for data.
    fn token_ended(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        why: &'static str,
        message: &str,
    ) {
        if self.v2 {
            ctx.text(v2::error(why, message, None, None));
        }
        let reason = why.replace('_', " ");
        self.close(ctx, why, &reason);
    }

    fn subscribe(
        &mut self,
        topic: String,
        limit: usize,
        id: Option<&serde_json::Value>,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        if let Some(msg) = self.refusal(&topic) {
            return self.violation(ctx, "forbidden", "forbidden", &msg, Some(&topic), id);
        }
        if !self.topics.contains(&topic) && self.topics.len() >= self.state.limits.max_topics {
            let msg = format!(
                "at most {} topics per session",
                self.state.limits.max_topics
            );
            return self.violation(ctx, "topics", "too_many_topics", &msg, Some(&topic), id);
        }
        let Some(outbox) = self.outbox.clone() else {
            return;
        };
        let feed = self.feed(&topic);
        self.topics.insert(topic.clone());
        let ack = if self.v2 {
            v2::ack("subscribed", &topic, id)
        } else {
            v1::ack("subscribed", &topic)
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.state.hub.do_send(Join {
            session: self.id,
            feed,
            outbox,
            v2: self.v2,
            limit,
            ready: Some(tx),
        });
        // Acknowledge once the feed is live upstream (a publish after the ack is delivered),
        // and keep later frames waiting meanwhile (arrival order). With the store away the
        // ack goes out after a few seconds anyway; delivery starts when it is back.
        let live = tokio::time::timeout(ACK_WAIT, rx);
        ctx.wait(live.into_actor(self).map(move |_, _, ctx| ctx.text(ack)));
    }

    fn get(
        &mut self,
        topic: String,
        limit: usize,
        id: Option<serde_json::Value>,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        let refused = if topic.contains('*') {
            Some(format!("get needs an exact key, not the pattern {topic}"))
        } else {
            self.refusal(&topic)
        };
        if let Some(msg) = refused {
            return self.violation(
                ctx,
                "forbidden",
                "forbidden",
                &msg,
                Some(&topic),
                id.as_ref(),
            );
        }
        let key = format!("{}{topic}", self.state.results_prefix);
        let store = self.state.store.clone();
        let read = async move { store.read(&key, limit).await };
        // `wait`: the next frame is not looked at until this reply is out (arrival order).
        ctx.wait(read.into_actor(self).map(
            move |r: Result<Option<Stored>, StoreError>, act, ctx| match r {
                Ok(v) => {
                    let data = protocol::stored_json(v.as_ref());
                    ctx.text(if act.v2 {
                        v2::data(&topic, &data, id.as_ref())
                    } else {
                        v1::cache(&topic, &data)
                    });
                }
                Err(e) => {
                    let msg = format!("store unavailable: {e}");
                    ctx.text(if act.v2 {
                        v2::error("unavailable", &msg, Some(&topic), id.as_ref())
                    } else {
                        v1::error(&msg)
                    });
                }
            },
        ));
    }

    fn drain(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        let Some(outbox) = self.outbox.clone() else {
            return;
        };
        if let Some(reason) = outbox.closed() {
            return self.close(ctx, "slow", &reason);
        }
        let (frames, more) = outbox.drain(DRAIN_BATCH);
        for f in frames {
            ctx.text(f);
        }
        if more {
            ctx.notify(Wake);
        }
    }
}

fn auth_reason(e: &TokenError) -> &'static str {
    match e {
        TokenError::Missing => "missing",
        TokenError::BadSignature => "bad_signature",
        TokenError::Expired => "expired",
        TokenError::Revoked => "revoked",
        TokenError::Malformed | TokenError::NoSecret => "malformed",
        TokenError::WrongAudience => "wrong_audience",
    }
}

impl Actor for WsSession {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let limits = self.state.limits.clone();
        self.outbox = Some(Outbox::new(
            limits.outbox_frames,
            limits.slow_grace,
            ctx.address().recipient(),
        ));
        self.figures().open.inc();
        self.figures().opened.inc();
        self.state.session_started(
            self.id,
            OpenSession {
                going_away: ctx.address().recipient(),
                revoke: ctx.address().recipient(),
                sub: self.claims.as_ref().map(|c| c.sub.clone()),
            },
        );
        self.arm_expiry(ctx);
        if self.authorized() {
            self.figures().authorized.inc();
            if self.v2 {
                self.welcome(ctx);
            }
            if self.ended_if_revoked(ctx) {
                return;
            }
        } else {
            ctx.run_later(limits.handshake_timeout, |act, ctx| {
                if !act.authorized() {
                    act.figures().auth_failures.inc("missing");
                    act.close(ctx, "auth_timeout", "authentication timeout");
                }
            });
        }
        ctx.run_interval(limits.heartbeat, move |act, ctx| {
            if act.last_seen.elapsed() > limits.idle_timeout {
                act.close(ctx, "idle", "idle timeout");
            } else {
                ctx.ping(b"");
            }
        });
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.state.session_stopped(self.id);
        if let Some(o) = &self.outbox {
            o.close("session ended");
        }
        let feeds: Vec<String> = self.topics.iter().map(|t| self.feed(t)).collect();
        if !feeds.is_empty() {
            self.state.hub.do_send(Leave {
                session: self.id,
                feeds,
            });
        }
        self.figures().open.dec();
        if self.authorized() {
            self.figures().authorized.dec();
        }
    }
}

impl Handler<GoingAway> for WsSession {
    type Result = ();
    fn handle(&mut self, _: GoingAway, ctx: &mut Self::Context) {
        self.figures().closed.inc("shutdown");
        ctx.close(Some(ws::CloseReason {
            code: ws::CloseCode::Away,
            description: Some("server shutting down".into()),
        }));
        ctx.stop();
    }
}

impl Handler<Revoke> for WsSession {
    type Result = ();
    fn handle(&mut self, Revoke(r): Revoke, ctx: &mut Self::Context) {
        if !self.state.auth.required || !self.claims.as_ref().is_some_and(|c| r.covers(c)) {
            return;
        }
        self.token_ended(ctx, "token_revoked", REVOKED);
    }
}

const REVOKED: &str = "token revoked: the user logged out or changed their password";

impl Handler<Wake> for WsSession {
    type Result = ();
    fn handle(&mut self, _: Wake, ctx: &mut Self::Context) {
        self.drain(ctx);
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for WsSession {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_seen = Instant::now();
        match msg {
            Ok(ws::Message::Text(t)) => self.text(&t, ctx),
            Ok(ws::Message::Ping(p)) => ctx.pong(&p),
            Ok(ws::Message::Pong(_)) => {}
            Ok(ws::Message::Binary(_)) | Ok(ws::Message::Continuation(_)) => self.violation(
                ctx,
                "binary",
                "bad_request",
                "only text frames are accepted",
                None,
                None,
            ),
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            Ok(ws::Message::Nop) => {}
            Err(e) => {
                // Oversized beyond what the codec reads, or not WebSocket: nothing to reply to.
                self.figures().violations.inc("frame_size");
                self.close(ctx, "violations", &format!("protocol error: {e}"));
            }
        }
    }
}

/// The handshake's token: `Authorization: Bearer …` or `?token=…`.
fn handshake_token(req: &HttpRequest) -> Option<String> {
    if let Some(t) = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(t.trim().to_string());
    }
    web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.get("token").cloned())
        .filter(|t| !t.is_empty())
}

fn refuse(status: actix_web::http::StatusCode, reason: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({"status": "ERROR", "error": reason}))
}

async fn entry(
    req: HttpRequest,
    stream: web::Payload,
    state: web::Data<WdsState>,
    v2: bool,
) -> Result<HttpResponse, actix_web::Error> {
    let limits = &state.limits;
    if state.is_stopping() {
        state.figures.sessions.refused.inc("stopping");
        return Ok(refuse(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "this node is stopping",
        ));
    }
    if state.figures.sessions.open.get() >= limits.max_sessions as i64 {
        state.figures.sessions.refused.inc("sessions");
        return Ok(refuse(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "too many sessions on this node",
        ));
    }
    let ip = crate::clients::client_of(&req, &state.trusted_proxies);
    let authenticated = !state.auth.required || handshake_token(&req).is_some();
    let slot = match state.addresses.admit(ip, authenticated) {
        Ok(slot) => slot,
        Err(full) => {
            state.figures.sessions.refused.inc("address");
            let what = match full {
                Full::Sockets => "too many sockets from this address",
                Full::Unauthenticated => "too many unauthenticated sockets from this address",
            };
            return Ok(refuse(actix_web::http::StatusCode::TOO_MANY_REQUESTS, what));
        }
    };
    let claims = match handshake_token(&req) {
        Some(t) if state.auth.required => match state.verify(&t) {
            Ok(c) => Some(c),
            Err(e) => {
                state.figures.sessions.auth_failures.inc(auth_reason(&e));
                state.figures.sessions.refused.inc("token");
                return Ok(refuse(
                    actix_web::http::StatusCode::UNAUTHORIZED,
                    &e.to_string(),
                ));
            }
        },
        _ => None,
    };
    // Codec limit above the frame limit: a frame a little too big gets an error reply; one
    // far too big ends the socket (the codec will not buffer it).
    let codec_max = limits.max_frame_bytes.saturating_mul(4).max(64 * 1024);
    let session = WsSession::new(v2, state.clone(), claims, slot);
    ws::WsResponseBuilder::new(session, &req, stream)
        .frame_size(codec_max)
        .start()
}

async fn ws_v1(
    req: HttpRequest,
    stream: web::Payload,
    state: web::Data<WdsState>,
) -> Result<HttpResponse, actix_web::Error> {
    entry(req, stream, state, false).await
}

async fn ws_v2(
    req: HttpRequest,
    stream: web::Payload,
    state: web::Data<WdsState>,
) -> Result<HttpResponse, actix_web::Error> {
    entry(req, stream, state, true).await
}

/// Mounts `/ws` (v1) and `/ws/v2`. The caller registers `web::Data<WdsState>`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/ws", web::get().to(ws_v1))
        .route("/ws/v2", web::get().to(ws_v2));
}
