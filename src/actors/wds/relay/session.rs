//! RelaySession actor: one program's Massive-protocol socket on the relay.
//!
//! As on Massive: `connected` on upgrade; `auth` with a relay key within the timeout
//! (`auth_success`; else `auth_failed` or `auth_timeout`, and a close); then `subscribe` and
//! `unsubscribe`, answered by the hub (one status per topic). tickwire adds `replay`
//! (docs/protocol.md). Messages are handled in arrival order, so `auth` and `subscribe` sent
//! back to back work. Data never passes through this actor: the hub queues it on the
//! socket's [`Outbound`] directly.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, ActorContext, AsyncContext, Context, Handler, SpawnHandle, StreamHandler};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::BytesMut;
use serde::Deserialize;

use super::hub::{status_frame, Cut, Join, Leave, RelaySessionId, Replay, Subscribe};
use super::RelayState;
use crate::actors::wds::RateLimit;
use crate::massive::control::{AUTHENTICATED, AUTH_FAILED, AUTH_TIMEOUT, CONNECTED};
use crate::massive::Market;
use crate::wsio::{self, Frame, Outbound, ProtocolError};

static NEXT: AtomicU64 = AtomicU64::new(1);

/// Massive's text when a user holds too many sockets (the trailing space is Massive's).
const MAX_CONNECTIONS: &str = "Maximum number of websocket connections exceeded. ";

/// A client message: Massive's `action` and `params`, and `since` for `replay`.
#[derive(Deserialize)]
struct Request {
    action: String,
    #[serde(default)]
    params: String,
    #[serde(default)]
    since: Option<i64>,
}

pub struct RelaySession {
    id: RelaySessionId,
    market: Market,
    state: web::Data<RelayState>,
    out: Arc<Outbound>,
    /// The key's owner, once authenticated (holds one of their socket slots).
    user: Option<String>,
    auth_timer: Option<SpawnHandle>,
    rate: RateLimit,
    done: bool,
}

impl RelaySession {
    fn send_status(&self, status: &str, message: &str) {
        self.out.push(status_frame(status, message));
    }

    /// Sends what is queued and a close, then ends.
    fn end(&mut self, reason: &'static str, why: &str, ctx: &mut Context<Self>) {
        self.state.figures.closed(reason, self.id, why);
        self.done = true;
        self.out.finish_after(vec![wsio::close_frame(1008)]);
        ctx.stop();
    }

    fn on_text(&mut self, text: &[u8], ctx: &mut Context<Self>) {
        if !self.rate.take(std::time::Instant::now()) {
            self.state.figures.bad_messages.inc();
            let limit = self.state.settings.max_msgs_per_sec;
            self.send_status("error", &format!("more than {limit} messages per second"));
            return;
        }
        let req: Request = match serde_json::from_slice(text) {
            Ok(r) => r,
            Err(e) => {
                log::debug!("relay session {}: invalid JSON from client: {e}", self.id);
                self.state.figures.bad_messages.inc();
                self.send_status("error", "Invalid JSON");
                return;
            }
        };
        if req.action != "auth" && self.user.is_none() {
            self.send_status("auth_required", "authentication required");
            return;
        }
        let hub = &self.state.hub;
        match req.action.as_str() {
            "auth" => self.on_auth(req.params.trim(), ctx),
            "subscribe" | "unsubscribe" => hub.do_send(Subscribe {
                id: self.id,
                params: req.params,
                on: req.action == "subscribe",
            }),
            "replay" => match req.since {
                Some(since) => hub.do_send(Replay {
                    id: self.id,
                    params: req.params,
                    since,
                }),
                None => {
                    self.state.figures.bad_messages.inc();
                    self.send_status("error", "replay needs \"since\" (epoch ms)");
                }
            },
            other => {
                log::debug!(
                    "relay session {}: unknown action {other:?} ignored",
                    self.id
                );
                self.state.figures.bad_messages.inc();
            }
        }
    }

    fn on_auth(&mut self, key: &str, ctx: &mut Context<Self>) {
        if self.user.is_some() {
            return;
        }
        if let Some(t) = self.auth_timer.take() {
            ctx.cancel_future(t);
        }
        let Some((hash, record)) = self.state.keys.find(key) else {
            self.state.figures.auth.inc("unknown_key");
            self.send_status("auth_failed", AUTH_FAILED);
            return self.end("auth_failed", "unknown key", ctx);
        };
        if !self.state.take_user_slot(&record.user) {
            self.send_status("max_connections", MAX_CONNECTIONS);
            let why = format!("{} holds the most relay sockets allowed", record.user);
            return self.end("user_cap", &why, ctx);
        }
        self.state.figures.auth.inc("success");
        self.user = Some(record.user);
        self.send_status("auth_success", AUTHENTICATED);
        self.state.hub.do_send(Join {
            id: self.id,
            market: self.market,
            out: self.out.clone(),
            key_hash: hash,
            cut: ctx.address().recipient(),
        });
    }
}

impl Actor for RelaySession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.state.figures.open.inc();
        self.state.figures.opened.inc();
        self.send_status("connected", CONNECTED);
        let timeout = self.state.settings.auth_timeout();
        self.auth_timer = Some(ctx.run_later(timeout, |act, ctx| {
            if act.user.is_none() && !act.done {
                act.state.figures.auth.inc("timeout");
                act.send_status("auth_timeout", AUTH_TIMEOUT);
                act.end("auth_timeout", "no auth in time", ctx);
            }
        }));
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.state.figures.open.dec();
        if let Some(user) = self.user.take() {
            self.state.give_user_slot(&user);
            self.state.hub.do_send(Leave(self.id));
        }
    }
}

impl StreamHandler<Result<Frame, ProtocolError>> for RelaySession {
    fn handle(&mut self, item: Result<Frame, ProtocolError>, ctx: &mut Context<Self>) {
        if self.done {
            return;
        }
        match item {
            Ok(Frame::Text(b)) | Ok(Frame::Binary(b)) => self.on_text(&b, ctx),
            Ok(Frame::Ping(p)) => {
                let mut f = BytesMut::new();
                wsio::encode_frame(wsio::OP_PONG, &p, &mut f);
                self.out.push(f.freeze());
            }
            Ok(Frame::Pong(_)) | Ok(Frame::Continuation(_)) => {}
            Ok(Frame::Close(reason)) => {
                let code = reason.map_or(1000, |r| u16::from(r.code));
                self.done = true;
                self.out.finish_after(vec![wsio::close_frame(code)]);
                ctx.stop();
            }
            Err(e) => {
                log::debug!("relay session {}: protocol error {e}", self.id);
                self.done = true;
                self.out.abort();
                ctx.stop();
            }
        }
    }
}

impl Handler<Cut> for RelaySession {
    type Result = ();

    /// The hub queued the last frames; a reader that never takes them is dropped shortly.
    fn handle(&mut self, _: Cut, ctx: &mut Context<Self>) {
        self.done = true;
        ctx.run_later(Duration::from_secs(1), |act, ctx| {
            act.out.abort();
            ctx.stop();
        });
    }
}

/// `GET /{market}`: the WebSocket upgrade of a Massive-protocol socket.
async fn upgrade(
    req: HttpRequest,
    payload: web::Payload,
    market: web::Path<String>,
    state: web::Data<RelayState>,
) -> HttpResponse {
    let Ok(market) = market.parse::<Market>() else {
        return HttpResponse::NotFound().finish();
    };
    if state.figures.open.get() >= state.settings.max_sessions as i64 {
        state.figures.closed.inc("full");
        return HttpResponse::ServiceUnavailable().body("relay sessions full");
    }
    let mut res = match wsio::handshake(&req) {
        Ok(r) => r,
        Err(e) => return HttpResponse::BadRequest().body(e.to_string()),
    };
    let (out, body) = wsio::outbound();
    let session = RelaySession {
        id: NEXT.fetch_add(1, Ordering::Relaxed),
        market,
        state: state.clone(),
        out: Arc::new(out),
        user: None,
        auth_timer: None,
        rate: RateLimit::new(state.settings.max_msgs_per_sec),
        done: false,
    };
    RelaySession::create(|ctx| {
        ctx.add_stream(wsio::inbound(payload));
        session
    });
    res.streaming(body)
}

/// Mounts the relay's route: `/{market}` for every market path (`/stocks`, `/futures/cme`).
pub fn configure(cfg: &mut web::ServiceConfig) {
    let paths: Vec<&str> = Market::ALL.iter().map(|m| m.path()).collect();
    let pattern = format!("/{{market:({})}}", paths.join("|"));
    cfg.route(&pattern, web::get().to(upgrade));
}
