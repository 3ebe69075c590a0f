//! SimSession actor: one client WebSocket on the simulator, behaving as Massive does.
//!
//! Lifecycle: `connected` on upgrade; `auth` within the timeout (else `auth_timeout` and a
//! close); an unknown key or a market outside the plan gets `auth_failed` and a close; on
//! success the session registers with the [`ConnectionRegistry`](super::registry) (which may
//! evict an older connection with the same key and market) and attaches to the feed.
//!
//! Client messages are handled strictly in order as they arrive, so `auth` and `subscribe`
//! sent back to back (pipelined) work: the auth reply is queued before the acks.
//!
//! Data: each feed batch is filtered by the subscription set and cut into frames of at most
//! `batch_size` events and `max_frame_bytes` bytes. Every frame goes through the bounded
//! outbound queue (see [`crate::wsio`]); past `client_buffer_bytes` the client is a slow
//! consumer and is killed. Pongs join the same queue, so a slow reader sees late pongs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, ActorContext, AsyncContext, Context, Handler, SpawnHandle, StreamHandler};
use bytes::{BufMut, BytesMut};

use super::feed::{Attach, Detach, FeedBatch};
use super::metrics::SimSessionFigures;
use super::registry::{Evict, Register, Unregister};
use crate::actors::sim::auth;
use crate::actors::sim::auth::KeySpecs;
use crate::actors::sim::config::{AckMode, CloseMode, MalformedMode, SlowConsumerMode};
use crate::massive::control::{parse_topics, ClientMessage, Topic};
use crate::massive::events::encode_frame as encode_events;
use crate::massive::subscriptions::SubscriptionSet;
use crate::massive::{Event, Market, Status};
use crate::recipient::CountedRecipient;
use crate::wsio::{self, Frame, Outbound, ProtocolError};

/// Connection-level settings shared by all sessions.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    pub keys: KeySpecs,
    pub auth_timeout: Duration,
    pub auth_failure_close: CloseMode,
    pub eviction_close: CloseMode,
    pub client_buffer_bytes: usize,
    pub slow_consumer: SlowConsumerMode,
    pub ack_mode: AckMode,
    pub batch_size: usize,
    pub max_frame_bytes: usize,
    pub options_quote_limit: usize,
    pub drop_every: Option<Duration>,
    pub malformed_every: u64,
    pub malformed_mode: MalformedMode,
    pub unknown_every: u64,
    pub fragment_every: u64,
    pub binary_every: u64,
}

/// What every session of one simulator shares: its figures and the connection ids.
pub struct SessionMetrics {
    pub figures: SimSessionFigures,
    next_id: AtomicU64,
}

impl SessionMetrics {
    pub fn new(figures: SimSessionFigures) -> Arc<Self> {
        Arc::new(SessionMetrics {
            figures,
            next_id: AtomicU64::new(1),
        })
    }

    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// Where a session reports to.
#[derive(Clone)]
pub struct SessionLinks {
    pub attach: CountedRecipient<Attach>,
    pub detach: CountedRecipient<Detach>,
    pub register: CountedRecipient<Register>,
    pub unregister: CountedRecipient<Unregister>,
}

pub struct SimSession {
    id: u64,
    market: Market,
    settings: Arc<SessionSettings>,
    links: SessionLinks,
    metrics: Arc<SessionMetrics>,
    out: Outbound,
    key: Option<String>,
    subs: SubscriptionSet,
    auth_timer: Option<SpawnHandle>,
    data_frames: u64,
    done: bool,
}

impl SimSession {
    pub fn new(
        market: Market,
        out: Outbound,
        settings: Arc<SessionSettings>,
        links: SessionLinks,
        metrics: Arc<SessionMetrics>,
    ) -> Self {
        let id = metrics.next_id();
        SimSession {
            id,
            market,
            settings,
            links,
            metrics,
            out,
            key: None,
            subs: SubscriptionSet::default(),
            auth_timer: None,
            data_frames: 0,
            done: false,
        }
    }

    fn send_statuses(&self, statuses: &[Status]) {
        if statuses.is_empty() {
            return;
        }
        let events: Vec<Event> = statuses.iter().cloned().map(Event::Status).collect();
        self.out
            .push(wsio::text_frame(encode_events(&events).as_bytes()));
    }

    fn send_status(&self, status: &str, message: &str) {
        self.send_statuses(&[Status::new(status, message)]);
    }

    /// Ends the connection after what is queued (the status just sent): a close frame with
    /// `code`, or an abort with no close frame.
    fn end(&mut self, mode: CloseMode, code: u16, ctx: &mut Context<Self>) {
        self.done = true;
        match mode {
            CloseMode::Close => self.out.finish_after(vec![wsio::close_frame(code)]),
            CloseMode::Abort => self.out.abort_after(),
        }
        ctx.stop();
    }

    /// Drops the connection now; whatever is queued is lost.
    fn kill(&mut self, ctx: &mut Context<Self>) {
        self.done = true;
        self.out.abort();
        ctx.stop();
    }

    fn on_text(&mut self, text: &[u8], ctx: &mut Context<Self>) {
        let msg: ClientMessage = match serde_json::from_slice(text) {
            Ok(m) => m,
            Err(e) => {
                log::debug!("session {}: invalid JSON from client: {e}", self.id);
                self.metrics.figures.messages.inc("invalid_json");
                self.send_status("error", "Invalid JSON");
                return;
            }
        };
        match msg.action.as_str() {
            "auth" => self.on_auth(msg.params.trim(), ctx),
            "subscribe" => self.on_subscribe(&msg.params, true),
            "unsubscribe" => self.on_subscribe(&msg.params, false),
            other => {
                log::debug!("session {}: unknown action {other:?} ignored", self.id);
                self.metrics.figures.messages.inc("unknown_action");
            }
        }
    }

    fn on_auth(&mut self, key: &str, ctx: &mut Context<Self>) {
        if self.key.is_some() {
            log::debug!("session {}: repeated auth ignored", self.id);
            return;
        }
        if let Some(t) = self.auth_timer.take() {
            ctx.cancel_future(t);
        }
        let refusal = match self.settings.keys.find(key) {
            None => Some(("unknown_key", "unknown key", auth::AUTH_FAILED)),
            Some(spec) if !spec.allows_market(self.market) => Some((
                "market_not_in_plan",
                "plan lacks this market",
                auth::PLAN_LACKS_MARKET,
            )),
            Some(_) => None,
        };
        if let Some((result, why, message)) = refusal {
            self.metrics.figures.auth.inc(result);
            log::info!(
                "session {}: auth failed ({why}) on /{}",
                self.id,
                self.market
            );
            self.send_status("auth_failed", message);
            self.end(self.settings.auth_failure_close, 1000, ctx);
            return;
        }
        self.metrics.figures.auth.inc("success");
        self.key = Some(key.to_string());
        self.send_status("auth_success", auth::AUTHENTICATED);
        let me = ctx.address();
        self.links.register.do_send(Register {
            id: self.id,
            key: key.to_string(),
            market: self.market,
            evict: me.clone().recipient(),
        });
        self.links.attach.do_send(Attach {
            id: self.id,
            market: self.market,
            to: me.recipient(),
        });
        if let Some(every) = self.settings.drop_every {
            ctx.run_later(every, |act, ctx| {
                log::info!("session {}: dropping connection (fault injection)", act.id);
                act.metrics.figures.faults.inc("drop");
                act.kill(ctx);
            });
        }
    }

    fn on_subscribe(&mut self, params: &str, subscribe: bool) {
        let Some(key) = self.key.as_deref() else {
            self.send_status("auth_required", "authentication required");
            return;
        };
        let spec = self.settings.keys.find(key).cloned();
        let (topics, _undotted) = parse_topics(params);
        let mut denied = Vec::new();
        let mut acks = Vec::new();
        for topic in topics {
            // Unknown prefixes get no reply of any kind, as on Massive.
            if !self.market.knows_channel(&topic.channel) {
                continue;
            }
            if subscribe {
                if spec
                    .as_ref()
                    .is_some_and(|s| !s.allows_channel(&topic.channel))
                {
                    self.metrics.figures.not_authorized.inc();
                    denied.push(Status::new("error", "not authorized"));
                    continue;
                }
                if let Some(err) = self.options_quote_refusal(&topic) {
                    denied.push(Status::new("error", &err));
                    continue;
                }
                self.subs.add(&topic);
                acks.push(Status::new("success", &format!("subscribed to: {topic}")));
            } else {
                self.subs.remove(&topic);
                acks.push(Status::new("success", &format!("unsubscribed to: {topic}")));
            }
        }
        // Refusals come before the acks of the accepted topics.
        denied.extend(acks);
        match self.settings.ack_mode {
            AckMode::Batched => self.send_statuses(&denied),
            AckMode::Single => denied
                .iter()
                .for_each(|s| self.send_statuses(std::slice::from_ref(s))),
        }
    }

    /// Options quotes take explicit contracts only, at most `options_quote_limit` of them.
    fn options_quote_refusal(&self, topic: &Topic) -> Option<String> {
        if self.market != Market::Options || topic.channel != "Q" {
            return None;
        }
        if topic.is_wildcard() {
            return Some("wildcard subscriptions are not allowed for options quotes".to_string());
        }
        (self.subs.explicit_count("Q") >= self.settings.options_quote_limit).then(|| {
            format!(
                "maximum of {} option quote subscriptions exceeded",
                self.settings.options_quote_limit
            )
        })
    }

    /// Queues one data frame (the payload is a complete JSON array), applying faults.
    fn queue_data_frame(&mut self, payload: &[u8], events: usize, ctx: &mut Context<Self>) {
        self.data_frames += 1;
        let s = &self.settings;
        let mut body: Vec<u8>;
        let mut bytes: &[u8] = payload;
        if s.malformed_every > 0 && self.data_frames.is_multiple_of(s.malformed_every) {
            self.metrics.figures.faults.inc("malformed");
            body = match s.malformed_mode {
                MalformedMode::Element => {
                    let mut b =
                        br#"[{"ev":"T","sym":"SIMBAD","p":"not-a-price","s":-1,"t":"yesterday"},"#
                            .to_vec();
                    b.extend_from_slice(&payload[1..]);
                    b
                }
                MalformedMode::Truncated => payload[..payload.len() / 2].to_vec(),
            };
            bytes = &body;
        } else if s.unknown_every > 0
            && self.data_frames.is_multiple_of(s.unknown_every)
            && payload.len() > 2
        {
            self.metrics.figures.faults.inc("unknown_event");
            body = br#"[{"ev":"ZZ","sym":"SIMNEW","zz":1},{"tw_future_field":true,"#.to_vec();
            body.extend_from_slice(&payload[2..]);
            bytes = &body;
        }
        let mut frame = BytesMut::with_capacity(bytes.len() + 20);
        let n = self.data_frames;
        if s.fragment_every > 0 && n.is_multiple_of(s.fragment_every) && bytes.len() >= 3 {
            // First part as text without FIN, the middle as a continuation, the last with FIN.
            self.metrics.figures.faults.inc("fragment");
            let (a, rest) = bytes.split_at(bytes.len() / 3);
            let (b, c) = rest.split_at(rest.len() / 2);
            wsio::encode_fragment(wsio::OP_TEXT, false, a, &mut frame);
            wsio::encode_fragment(wsio::OP_CONTINUATION, false, b, &mut frame);
            wsio::encode_fragment(wsio::OP_CONTINUATION, true, c, &mut frame);
        } else {
            wsio::encode_frame(wsio::OP_TEXT, bytes, &mut frame);
        }
        if s.binary_every > 0 && n.is_multiple_of(s.binary_every) {
            self.metrics.figures.faults.inc("binary");
            wsio::encode_frame(wsio::OP_BINARY, b"\x00\x01binary", &mut frame);
        }
        self.metrics.figures.frames_out.inc();
        self.metrics.figures.events_out.add(events as u64);
        self.metrics.figures.bytes_out.add(frame.len() as u64);
        let queued = self.out.push(frame.freeze());
        if queued > self.settings.client_buffer_bytes {
            self.metrics.figures.slow_consumer_kills.inc();
            log::warn!(
                "session {}: slow consumer ({queued} bytes waiting), killing connection",
                self.id
            );
            self.done = true;
            match self.settings.slow_consumer {
                SlowConsumerMode::Abort => self.out.abort(),
                SlowConsumerMode::Status => {
                    let status = encode_events(&[Event::Status(Status::new(
                        "slow_consumer",
                        "slow consumer",
                    ))]);
                    self.out.finish_now(vec![
                        wsio::text_frame(status.as_bytes()),
                        wsio::close_frame(1008),
                    ]);
                }
            }
            ctx.stop();
        }
    }
}

impl Actor for SimSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.metrics.figures.open.inc();
        self.metrics.figures.opened.inc();
        self.send_status("connected", auth::CONNECTED);
        self.auth_timer = Some(ctx.run_later(self.settings.auth_timeout, |act, ctx| {
            if act.key.is_none() && !act.done {
                act.metrics.figures.auth.inc("timeout");
                act.send_status("auth_timeout", auth::AUTH_TIMEOUT);
                act.end(act.settings.auth_failure_close, 1000, ctx);
            }
        }));
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.metrics.figures.open.dec();
        if let Some(key) = self.key.take() {
            // When the simulator stops, the registry and the feed may stop first: there is
            // then nothing to leave (and nothing lost), so nothing is sent.
            if self.links.unregister.connected() {
                self.links.unregister.do_send(Unregister {
                    id: self.id,
                    key,
                    market: self.market,
                });
            }
            if self.links.detach.connected() {
                self.links.detach.do_send(Detach { id: self.id });
            }
        }
    }
}

impl StreamHandler<Result<Frame, ProtocolError>> for SimSession {
    fn handle(&mut self, item: Result<Frame, ProtocolError>, ctx: &mut Context<Self>) {
        if self.done {
            return;
        }
        match item {
            Ok(Frame::Text(b)) | Ok(Frame::Binary(b)) => self.on_text(&b, ctx),
            Ok(Frame::Ping(p)) => {
                self.metrics.figures.messages.inc("ping");
                // Behind any queued data, like Massive's late pongs under load.
                let mut f = BytesMut::new();
                wsio::encode_frame(wsio::OP_PONG, &p, &mut f);
                self.out.push(f.freeze());
            }
            Ok(Frame::Pong(_)) => {}
            Ok(Frame::Close(reason)) => {
                let code = reason.map_or(1000, |r| u16::from(r.code));
                self.done = true;
                self.out.finish_after(vec![wsio::close_frame(code)]);
                ctx.stop();
            }
            Ok(Frame::Continuation(_)) => {
                self.metrics.figures.messages.inc("unknown_action");
            }
            Err(e) => {
                log::debug!("session {}: protocol error {e}", self.id);
                self.metrics.figures.actor.errors.inc();
                self.kill(ctx);
            }
        }
    }
}

impl Handler<FeedBatch> for SimSession {
    type Result = ();

    fn handle(&mut self, msg: FeedBatch, ctx: &mut Context<Self>) {
        self.metrics.figures.actor.received();
        if self.done || self.key.is_none() || self.subs.is_empty() {
            return;
        }
        let max_events = self.settings.batch_size;
        let max_bytes = self.settings.max_frame_bytes;
        // Allocated on the first matching event: most batches match nothing for a session
        // with a few explicit topics.
        let mut payload = BytesMut::new();
        let mut count = 0;
        for ev in &msg.0.events {
            if !self.subs.matches(&ev.channel, &ev.symbol) {
                continue;
            }
            if count > 0 && (count == max_events || payload.len() + ev.json.len() + 2 > max_bytes) {
                payload.put_u8(b']');
                self.queue_data_frame(&payload, count, ctx);
                if self.done {
                    return;
                }
                payload.clear();
                count = 0;
            }
            payload.put_u8(if count == 0 { b'[' } else { b',' });
            payload.extend_from_slice(&ev.json);
            count += 1;
        }
        if count > 0 {
            payload.put_u8(b']');
            self.queue_data_frame(&payload, count, ctx);
        }
        self.metrics.figures.actor.messages_out.inc();
    }
}

impl Handler<Evict> for SimSession {
    type Result = ();

    fn handle(&mut self, _: Evict, ctx: &mut Context<Self>) {
        log::info!(
            "session {}: evicted by a newer connection (max_connections)",
            self.id
        );
        self.send_status("max_connections", auth::MAX_CONNECTIONS);
        match self.settings.eviction_close {
            CloseMode::Close => self.end(CloseMode::Close, 1008, ctx),
            // A reader that is behind never sees the status, as on Massive.
            CloseMode::Abort => self.kill(ctx),
        }
    }
}
