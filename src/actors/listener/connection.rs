//! Listener actor: holds the one Massive WebSocket of an asset class and keeps it drained.
//!
//! The read loop does nothing but timestamp each frame and hand it to the router with a
//! non-blocking send; parsing happens elsewhere, so the socket is read as fast as Massive
//! writes (massive.md §7 lesson 4). Status messages are recognised here: `auth_failed` is
//! fatal for the key (the listener goes idle instead of reconnect-storming),
//! `max_connections` gets a long cooldown, acks and errors are counted.
//!
//! Supervision: the actor runs under an actix `Supervisor`. Any disconnect or error stops it;
//! `restarting` computes the next delay from the [`Backoff`] (reset only after a stable
//! connection) and `started` reconnects after it, then authenticates and resubscribes.
//! Liveness: a ping every `ping_every`; any inbound frame proves life; silence longer than
//! `dead_after` ends the connection.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::io::{SinkWrite, WriteHandler};
use actix::ActorFutureExt;
use actix::{
    Actor, ActorContext, AsyncContext, Context, Handler, Message, StreamHandler, Supervised,
    WrapFuture,
};
use actix_codec::Framed;
use actix_http::ws::Item;
use awc::error::WsProtocolError;
use awc::ws::{Codec, Frame, Message as WsMessage};
use awc::BoxedSocket;
use bytes::{Bytes, BytesMut};
use futures_util::stream::SplitSink;
use futures_util::StreamExt;

use super::metrics::{ConnectionFigures, FrameLag, PublisherFigures, RouterFigures};
use super::publisher::{PublisherConfig, QueuePublisher};
use super::router::{RawFrame, Router};
use super::widen::{WidenConfig, Widened};
use crate::analyzers::calendar::{parse_upcoming, DayKind, TradingCalendar};
use crate::backoff::Backoff;
use crate::massive::control::{ClientMessage, Topic};
use crate::massive::frame::route_frame;
use crate::massive::rest::{self, get_json};
use crate::massive::{Market, Status, StatusKind};
use crate::metrics::Registry;
use crate::queue::EventBatch;
use crate::recipient::CountedRecipient;
use crate::relay::{Carried, RelayWants, Relayed};

/// Largest frame routed (Massive's frames stay below ~1 MB); larger ones are counted and
/// skipped, and the connection stays.
pub const MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;
/// A connection that streamed this long was healthy: its end starts the backoff over.
const STABLE_AFTER: Duration = Duration::from_secs(30);
/// After `max_connections` (another process holds the key: not transient) wait this long
/// by default.
pub const MAX_CONNECTIONS_COOLDOWN: Duration = Duration::from_secs(60);
/// How often a widening listener looks for added topics that lingered long enough to go.
const NARROW_EVERY: Duration = Duration::from_secs(1);
/// What the WebSocket decoder accepts at all.
const DECODER_FRAME_LIMIT: usize = 64 * 1024 * 1024;

/// How the listener reaches Massive.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// `ws[s]://host/market`.
    pub url: String,
    pub api_key: String,
    pub market: Market,
    pub subscriptions: Vec<Topic>,
    pub ping_every: Duration,
    pub dead_after: Duration,
    /// How long to wait after Massive evicted us for another connection with our key
    /// (`max_connections`): that one is not transient, and reconnecting at once would evict
    /// it in turn.
    pub max_connections_cooldown: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Wait for [`Control::Start`] (from the lease keeper) before connecting.
    pub start_idle: bool,
    /// REST base URL for market status (e.g. `https://api.massive.com`); `None` connects
    /// whatever the market's state.
    pub rest_url: Option<String>,
    /// How often to ask while the market is closed.
    pub closed_poll: Duration,
    /// Frames larger than this are counted and skipped; the connection stays.
    pub max_frame_bytes: usize,
    /// Widen the upstream subscription to what relay clients ask for ([`super::widen`]).
    pub widen: Option<WidenConfig>,
}

/// What the admin routes read about the connection.
#[derive(Debug, Default)]
pub struct ListenerHealth {
    pub connected: AtomicBool,
    pub authenticated: AtomicBool,
    /// `auth_failed`: the key is refused; the listener stays idle until started again.
    pub fatal: AtomicBool,
    pub last_error: Mutex<String>,
}

impl ListenerHealth {
    /// The last error seen (connect, protocol, auth), for the readiness reason.
    pub fn last_error(&self) -> String {
        self.last_error
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default()
    }

    /// The socket is gone: neither connected nor authenticated.
    pub fn disconnected(&self) {
        self.connected.store(false, Ordering::Relaxed);
        self.authenticated.store(false, Ordering::Relaxed);
    }

    pub fn set_error(&self, e: impl Into<String>) {
        if let Ok(mut g) = self.last_error.lock() {
            *g = e.into();
        }
    }
}

type WsSink = SinkWrite<WsMessage, SplitSink<Framed<BoxedSocket, Codec>, WsMessage>>;

pub struct Listener {
    cfg: ListenerConfig,
    router: CountedRecipient<RawFrame>,
    recorder: Option<CountedRecipient<RawFrame>>,
    /// The relay, told what this connection carries on every (re)subscription.
    relay: Option<CountedRecipient<Relayed>>,
    /// Topics added for relay clients, when widening; what the clients last wanted; the
    /// shortfall last logged.
    widened: Option<Widened>,
    widen_wanted: Vec<String>,
    widen_capped: usize,
    health: Arc<ListenerHealth>,
    figures: ConnectionFigures,
    backoff: Backoff,
    sink: Option<WsSink>,
    connected_at: Option<Instant>,
    last_seen: Instant,
    next_delay: Duration,
    cooldown: bool,
    idle: bool,
    /// A fragmented message being put together.
    partial: Partial,
    /// Holidays and early closes ahead, from `/v1/marketstatus/upcoming`, and when they were
    /// read: a holiday keeps the listener idle even when `/now` cannot be asked.
    calendar: TradingCalendar,
    upcoming_read: Option<Instant>,
}

/// How often the holidays ahead are read again.
const UPCOMING_EVERY: Duration = Duration::from_secs(24 * 3600);

/// Where a fragmented message stands.
enum Partial {
    None,
    /// Text parts so far.
    Text(BytesMut),
    /// A binary or oversize message: its remaining parts are dropped.
    Skipping,
}

/// Starts a supervised listener feeding a router that sends batches to `out`.
pub fn start(
    cfg: ListenerConfig,
    shards: u16,
    out: CountedRecipient<EventBatch>,
    registry: &Arc<Registry>,
) -> (actix::Addr<Listener>, Arc<ListenerHealth>) {
    start_with(cfg, shards, out, Taps::default(), registry)
}

/// Where a listener's frames go besides the queues.
#[derive(Default, Clone)]
pub struct Taps {
    /// Raw frames to a capture file (`--record`).
    pub recorder: Option<CountedRecipient<RawFrame>>,
    /// Indexed frames, and what is carried, to the Massive relay.
    pub relay: Option<CountedRecipient<Relayed>>,
}

/// [`start`], with taps: raw frames recorded, indexed frames relayed.
pub fn start_with(
    cfg: ListenerConfig,
    shards: u16,
    out: CountedRecipient<EventBatch>,
    taps: Taps,
    registry: &Arc<Registry>,
) -> (actix::Addr<Listener>, Arc<ListenerHealth>) {
    use actix::Actor as _;
    let figures = RouterFigures::register(registry, &[]);
    let counted = figures.actor.clone();
    let router = Router::new(shards, out, figures, FrameLag::new(registry))
        .with_relay(taps.relay.clone())
        .start();
    let figures = ConnectionFigures::for_market(registry, cfg.market);
    let mut listener = Listener::new(cfg, CountedRecipient::of(&router, counted), figures);
    if let Some(r) = taps.recorder {
        listener = listener.with_recorder(r);
    }
    listener.relay = taps.relay;
    let health = listener.health();
    (actix::Supervisor::start(move |_| listener), health)
}

/// A listener whose batches go to RabbitMQ through its own [`QueuePublisher`], sharded as
/// the publisher's queues are: the distributed listener's wiring for one market.
pub fn start_publishing(
    cfg: ListenerConfig,
    publisher: PublisherConfig,
    registry: &Arc<Registry>,
) -> (actix::Addr<Listener>, Arc<ListenerHealth>) {
    use actix::Actor as _;
    let shards = publisher.shards;
    let figures = PublisherFigures::register(registry, &[]);
    let counted = figures.actor.clone();
    let publisher = QueuePublisher::new(publisher, figures).start();
    start(
        cfg,
        shards,
        CountedRecipient::of(&publisher, counted),
        registry,
    )
}

impl Listener {
    pub fn new(
        cfg: ListenerConfig,
        router: CountedRecipient<RawFrame>,
        figures: ConnectionFigures,
    ) -> Self {
        let backoff = Backoff::new(cfg.backoff_initial, cfg.backoff_max)
            .with_factor(1.5)
            .with_stable_after(STABLE_AFTER);
        let idle = cfg.start_idle;
        let widened = cfg.widen.map(Widened::new);
        Listener {
            cfg,
            router,
            recorder: None,
            relay: None,
            widened,
            widen_wanted: Vec::new(),
            widen_capped: 0,
            health: Arc::new(ListenerHealth::default()),
            figures,
            backoff,
            sink: None,
            connected_at: None,
            last_seen: Instant::now(),
            next_delay: Duration::ZERO,
            cooldown: false,
            idle,
            partial: Partial::None,
            calendar: TradingCalendar::default(),
            upcoming_read: None,
        }
    }

    pub fn health(&self) -> Arc<ListenerHealth> {
        self.health.clone()
    }

    /// Also send every raw frame to `recorder` (`--record`).
    pub fn with_recorder(mut self, recorder: CountedRecipient<RawFrame>) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// Markets that close: stocks, options, indices (forex and crypto trade around the clock).
    fn market_closes(&self) -> bool {
        matches!(
            self.cfg.market,
            Market::Stocks | Market::Options | Market::Indices
        )
    }

    /// Connects now, unless the market is closed: market status says so, or today is a
    /// holiday the calendar learnt ahead from `/v1/marketstatus/upcoming` (read at start and
    /// daily). Closed, it asks again later instead of reconnect-looping against a quiet
    /// server. A failed status call does not block (it is counted): on a day not known as a
    /// holiday the listener connects.
    fn connect_when_open(&mut self, ctx: &mut Context<Self>) {
        let Some(rest) = self.cfg.rest_url.clone().filter(|_| self.market_closes()) else {
            self.connect(ctx);
            return;
        };
        let base = rest.trim_end_matches('/').to_string();
        let key = self.cfg.api_key.clone();
        let upcoming_due = self
            .upcoming_read
            .is_none_or(|t| t.elapsed() >= UPCOMING_EVERY);
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(10))
            .finish();
        let get = move |path: &str| {
            let url = format!("{base}{path}");
            get_json(client.clone(), url, key.clone(), rest::SMALL)
        };
        let fut = async move {
            let upcoming = if upcoming_due {
                Some(get("/v1/marketstatus/upcoming").await)
            } else {
                None
            };
            let now = get("/v1/marketstatus/now").await;
            (upcoming, now)
        };
        ctx.spawn(fut.into_actor(self).map(|(upcoming, now), act, ctx| {
            match upcoming {
                Some(Ok(body)) => {
                    act.upcoming_read = Some(Instant::now());
                    if act.calendar.prime(parse_upcoming(&body)) {
                        log::info!(
                            "market holidays ahead: {:?}",
                            act.calendar
                                .upcoming(crate::clock::to_et(chrono::Utc::now()).date())
                        );
                    }
                }
                Some(Err(e)) => act.figures.upcoming_failed(&e),
                None => {}
            }
            // The status's own clock dates the day (a simulator runs on its own).
            let (state, today) = match now {
                Ok(v) => {
                    let today = v["serverTime"]
                        .as_str()
                        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                        .map(|t| crate::clock::to_et(t.with_timezone(&chrono::Utc)).date());
                    (v["market"].as_str().map(str::to_string), today)
                }
                Err(e) => {
                    act.figures.market_status_failed(&e);
                    (None, None)
                }
            };
            let today = today.unwrap_or_else(|| crate::clock::to_et(chrono::Utc::now()).date());
            let holiday = act.calendar.kind(today) == Some(DayKind::Holiday);
            if holiday || state.as_deref() == Some("closed") {
                act.figures.market_closed(act.cfg.closed_poll);
                ctx.run_later(act.cfg.closed_poll, |act, ctx| act.connect_when_open(ctx));
            } else {
                act.connect(ctx);
            }
        }));
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        let url = self.cfg.url.clone();
        log::info!("connecting to {url}");
        let fut = async move {
            awc::Client::builder()
                .max_http_version(awc::http::Version::HTTP_11)
                .timeout(Duration::from_secs(15))
                .finish()
                .ws(url)
                // Larger than the skip limit, so an oversize frame is counted and skipped
                // instead of failing the decoder (which would cost the connection).
                .max_frame_size(DECODER_FRAME_LIMIT)
                .connect()
                .await
        };
        ctx.spawn(fut.into_actor(self).map(|res, act, ctx| match res {
            Ok((_, framed)) => {
                act.figures.connects.inc();
                act.figures.connected.set(1);
                act.health.connected.store(true, Ordering::Relaxed);
                act.connected_at = Some(Instant::now());
                act.last_seen = Instant::now();
                let (sink, stream) = framed.split();
                act.sink = Some(SinkWrite::new(sink, ctx));
                ctx.add_stream(stream);
                // Pipelined, as the Go client does: Massive handles control messages in order.
                act.send(ClientMessage::auth(&act.cfg.api_key));
                let mut topics = act.cfg.subscriptions.clone();
                topics.extend(act.widened.iter().flat_map(Widened::topics));
                for m in ClientMessage::subscribe_chunks(&topics) {
                    act.send(m);
                }
                act.announce_carried();
            }
            Err(e) => {
                act.health.set_error(format!("connect: {e}"));
                act.figures.connect_failed(&act.cfg.url, &e.to_string());
                ctx.stop();
            }
        }));
    }

    /// Tells the relay which topics this connection subscribed upstream, and whether it
    /// widens.
    fn announce_carried(&self) {
        if let Some(relay) = &self.relay {
            let added = self.widened.iter().flat_map(Widened::topics);
            relay.do_send(Relayed::Carried(Carried {
                market: self.cfg.market,
                topics: self
                    .cfg
                    .subscriptions
                    .iter()
                    .cloned()
                    .chain(added)
                    .map(|t| t.to_string())
                    .collect(),
                widens: self.widened.as_ref().map(Widened::policy),
            }));
        }
    }

    /// Relay clients now hold `wanted`: subscribe upstream what is new (when connected; a
    /// connect subscribes everything added), and let what they let go linger, then go.
    fn widen(&mut self, wanted: Vec<String>) {
        if self.widened.is_none() {
            return;
        }
        self.widen_wanted = wanted;
        self.admit();
        self.narrow();
    }

    /// Subscribes upstream what relay clients want that is not added yet, within the cap.
    fn admit(&mut self) {
        let market = self.cfg.market;
        let Some(w) = self.widened.as_mut() else {
            return;
        };
        let now = Instant::now();
        let change = w.want(market, &self.cfg.subscriptions, &self.widen_wanted, now);
        let max = w.max_topics();
        if change.capped != self.widen_capped && change.capped > 0 {
            self.figures.widen_capped(market, change.capped, max);
        }
        self.widen_capped = change.capped;
        if !change.subscribe.is_empty() {
            log::info!(
                "/{market}: subscribing upstream for relay clients: {}",
                join(&change.subscribe)
            );
            for m in ClientMessage::subscribe_chunks(&change.subscribe) {
                self.send(m);
            }
        }
    }

    /// Unsubscribes upstream what relay clients let go longer than the linger time ago (on
    /// every change and every [`NARROW_EVERY`]); the room it frees goes to what waited past
    /// the cap.
    fn narrow(&mut self) {
        let Some(w) = self.widened.as_mut() else {
            return;
        };
        let mut gone = w.expire(Instant::now());
        if !gone.is_empty() {
            self.admit();
        }
        let added = self.widened.as_ref().map_or(0, |w| w.topics().len());
        // Never one of the connection's own topics (they may have been reconfigured in).
        let own = &self.cfg.subscriptions;
        gone.retain(|t| !own.contains(t));
        if !gone.is_empty() {
            log::info!(
                "/{}: unsubscribing upstream, no relay client wants: {}",
                self.cfg.market,
                join(&gone)
            );
            for m in ClientMessage::unsubscribe_chunks(&gone) {
                self.send(m);
            }
        }
        let before = self.figures.widened.get();
        self.figures.widened.set(added as i64);
        if before != added as i64 || !gone.is_empty() {
            self.announce_carried();
        }
    }

    fn send(&mut self, msg: ClientMessage) {
        if let Some(sink) = self.sink.as_mut() {
            let _ = sink.write(WsMessage::Text(msg.to_json().into()));
        }
    }

    fn on_statuses(&mut self, frame: &Bytes, ctx: &mut Context<Self>) {
        let Ok(entries) = route_frame(frame) else {
            return;
        };
        for e in entries.into_iter().flatten().filter(|e| e.is_status()) {
            let Ok(status) = serde_json::from_str::<Status>(e.raw.get()) else {
                continue;
            };
            let text = status.message.clone().unwrap_or_default();
            match status.kind() {
                StatusKind::AuthSuccess => {
                    log::info!("authenticated on /{}", self.cfg.market);
                    self.health.authenticated.store(true, Ordering::Relaxed);
                }
                StatusKind::AuthFailed => {
                    // Fatal for this key: going idle avoids a reconnect storm.
                    self.figures.auth_failed(self.cfg.market, &text);
                    self.health.fatal.store(true, Ordering::Relaxed);
                    self.health.set_error(format!("auth_failed: {text}"));
                    ctx.stop();
                }
                StatusKind::MaxConnections => {
                    self.figures.max_connections(self.cfg.market, &text);
                    self.health.set_error(format!("max_connections: {text}"));
                    self.cooldown = true;
                }
                StatusKind::Success => self.figures.status.inc("success"),
                StatusKind::Error => self.figures.error_status(self.cfg.market, &text),
                _ => log::debug!("status {}: {text}", status.status),
            }
        }
    }

    /// One whole text frame (or a reassembled message): stamped, statuses handled, handed on.
    fn on_text(&mut self, bytes: Bytes, ctx: &mut Context<Self>) {
        let received_at_ms = chrono::Utc::now().timestamp_millis();
        self.figures.frames_in.inc();
        self.figures.bytes_in.add(bytes.len() as u64);
        self.figures.last_frame_ms.set(received_at_ms);
        if bytes.len() > self.cfg.max_frame_bytes {
            self.figures.oversize(bytes.len(), self.cfg.max_frame_bytes);
            return;
        }
        // Status frames are small and rare; a substring test keeps data frames cheap.
        if memchr::memmem::find(&bytes, b"\"status\"").is_some() {
            self.on_statuses(&bytes, ctx);
        }
        self.figures.actor.messages_out.inc();
        let frame = RawFrame {
            bytes,
            received_at_ms,
            market: self.cfg.market,
        };
        if let Some(rec) = &self.recorder {
            rec.do_send(frame.clone());
        }
        self.router.do_send(frame);
    }

    /// One part of a fragmented message: the whole text once its last part arrives. A
    /// message over the size limit, or a binary one, is counted and skipped whole.
    fn reassemble(&mut self, part: Item) -> Option<Bytes> {
        let (first, chunk, last) = match part {
            Item::FirstText(b) => (Some(true), b, false),
            Item::FirstBinary(b) => (Some(false), b, false),
            Item::Continue(b) => (None, b, false),
            Item::Last(b) => (None, b, true),
        };
        match first {
            Some(true) => self.partial = Partial::Text(BytesMut::from(&chunk[..])),
            Some(false) => {
                self.figures.binary_frame(chunk.len());
                self.partial = Partial::Skipping;
            }
            None => match &mut self.partial {
                Partial::Text(buf) if buf.len() + chunk.len() <= self.cfg.max_frame_bytes => {
                    buf.extend_from_slice(&chunk);
                }
                Partial::Text(buf) => {
                    self.figures
                        .oversize(buf.len() + chunk.len(), self.cfg.max_frame_bytes);
                    self.partial = Partial::Skipping;
                }
                Partial::Skipping => {}
                Partial::None => self.figures.stray_continuation(),
            },
        }
        if !last {
            return None;
        }
        match std::mem::replace(&mut self.partial, Partial::None) {
            Partial::Text(buf) => {
                self.figures.reassembled.inc();
                Some(buf.freeze())
            }
            _ => None,
        }
    }

    fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        if self.last_seen.elapsed() > self.cfg.dead_after {
            self.figures.dead_peer(self.cfg.dead_after);
            ctx.stop();
            return;
        }
        if let Some(sink) = self.sink.as_mut() {
            let _ = sink.write(WsMessage::Ping(Bytes::from_static(b"tickwire")));
        }
    }
}

impl Actor for Listener {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Set again on every restart (a restart drops the context's timers), idle or not.
        if self.widened.is_some() {
            ctx.run_interval(NARROW_EVERY, |act, _| act.narrow());
        }
        if self.idle || self.health.fatal.load(Ordering::Relaxed) {
            return;
        }
        ctx.run_later(self.next_delay, |act, ctx| act.connect_when_open(ctx));
        ctx.run_interval(self.cfg.ping_every, |act, ctx| act.heartbeat(ctx));
    }
}

impl Supervised for Listener {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.figures.reconnects.inc();
        self.figures.connected.set(0);
        self.health.disconnected();
        self.sink = None;
        self.backoff.connection_ended(
            self.connected_at
                .take()
                .map_or(Duration::ZERO, |t| t.elapsed()),
        );
        self.next_delay = if std::mem::take(&mut self.cooldown) {
            self.cfg.max_connections_cooldown
        } else {
            self.backoff.next_delay()
        };
        if !self.health.fatal.load(Ordering::Relaxed) && !self.idle {
            log::info!("reconnecting to {} in {:?}", self.cfg.url, self.next_delay);
        }
    }
}

impl WriteHandler<WsProtocolError> for Listener {
    fn error(&mut self, err: WsProtocolError, _: &mut Context<Self>) -> actix::Running {
        log::warn!("write to Massive failed: {err}");
        actix::Running::Stop
    }
}

impl StreamHandler<Result<Frame, WsProtocolError>> for Listener {
    fn handle(&mut self, item: Result<Frame, WsProtocolError>, ctx: &mut Context<Self>) {
        self.last_seen = Instant::now();
        match item {
            Ok(Frame::Text(bytes)) => self.on_text(bytes, ctx),
            Ok(Frame::Continuation(part)) => {
                if let Some(whole) = self.reassemble(part) {
                    self.on_text(whole, ctx);
                }
            }
            Ok(Frame::Binary(b)) => self.figures.binary_frame(b.len()),
            Ok(Frame::Ping(p)) => {
                if let Some(sink) = self.sink.as_mut() {
                    let _ = sink.write(WsMessage::Pong(p));
                }
            }
            Ok(Frame::Close(reason)) => {
                log::warn!("Massive closed the connection: {reason:?}");
                ctx.stop();
            }
            Ok(Frame::Pong(_)) => {}
            Err(e) => {
                self.health.set_error(format!("protocol: {e}"));
                self.figures.protocol_error(&e.to_string());
                ctx.stop();
            }
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        log::warn!("Massive connection ended");
        ctx.stop();
    }
}

/// Replaces the feed URL, market and/or subscriptions; reconnects when connected (or about
/// to), so the new settings take effect at once. Idempotent.
#[derive(Message, Debug, Clone, Default)]
#[rtype(result = "()")]
pub struct Reconfigure {
    pub url: Option<String>,
    pub market: Option<Market>,
    pub subscriptions: Option<Vec<Topic>>,
}

fn join(topics: &[Topic]) -> String {
    topics
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Relay clients' topics, in process (embedded) or read from Redis ([`super::widen::watch`]).
impl Handler<RelayWants> for Listener {
    type Result = ();

    fn handle(&mut self, msg: RelayWants, _: &mut Context<Self>) {
        self.figures.actor.handled();
        if msg.market == self.cfg.market {
            self.widen(msg.topics);
        }
    }
}

impl Handler<Reconfigure> for Listener {
    type Result = ();

    fn handle(&mut self, msg: Reconfigure, ctx: &mut Context<Self>) {
        self.figures.actor.handled();
        let before = (
            self.cfg.url.clone(),
            self.cfg.market,
            self.cfg.subscriptions.clone(),
        );
        if let Some(u) = msg.url {
            self.cfg.url = u;
        }
        if let Some(m) = msg.market {
            self.cfg.market = m;
        }
        if let Some(s) = msg.subscriptions {
            self.cfg.subscriptions = s;
        }
        let changed = before
            != (
                self.cfg.url.clone(),
                self.cfg.market,
                self.cfg.subscriptions.clone(),
            );
        if changed && !self.idle && !self.health.fatal.load(Ordering::Relaxed) {
            log::info!("listener reconfigured; reconnecting to {}", self.cfg.url);
            self.next_delay = Duration::ZERO;
            ctx.stop();
        }
    }
}

/// A snapshot of the listener for `/stats`.
#[derive(Message)]
#[rtype(result = "serde_json::Value")]
pub struct Describe;

impl Handler<Describe> for Listener {
    type Result = actix::MessageResult<Describe>;

    fn handle(&mut self, _: Describe, _: &mut Context<Self>) -> Self::Result {
        let state = if self.health.fatal.load(Ordering::Relaxed) {
            "auth_failed"
        } else if self.idle {
            "idle"
        } else if self.health.authenticated.load(Ordering::Relaxed) {
            "streaming"
        } else if self.health.connected.load(Ordering::Relaxed) {
            "connected"
        } else {
            "reconnecting"
        };
        actix::MessageResult(serde_json::json!({
            "state": state,
            "feed": self.cfg.url,
            "market": self.cfg.market.path(),
            "subscriptions": self.cfg.subscriptions.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "relay_widened": self.widened.as_ref().map(|w| join(&w.topics())),
            "connected_for_seconds": self.connected_at.map(|t| t.elapsed().as_secs()),
            "last_error": self.health.last_error.lock().map(|e| e.clone()).unwrap_or_default(),
        }))
    }
}

/// Control: go idle (close the connection) or connect again (clears a fatal auth state).
#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
#[rtype(result = "()")]
pub enum Control {
    Start,
    Stop,
    Restart,
}

/// What a [`Control`] message asks of a supervised connection (the Massive listener's and
/// the news listener's alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlEffect {
    /// Already as asked.
    Nothing,
    /// Close the connection and stay idle.
    GoIdle,
    /// Close the connection (if any) and connect again at once.
    ReconnectNow,
}

impl Control {
    /// The effect on a connection that is `idle` or not, whose key `health` may mark fatal;
    /// updates both.
    pub fn effect(self, idle: &mut bool, health: &ListenerHealth) -> ControlEffect {
        match self {
            Control::Stop => {
                *idle = true;
                ControlEffect::GoIdle
            }
            Control::Start if !*idle && !health.fatal.load(Ordering::Relaxed) => {
                ControlEffect::Nothing
            }
            Control::Start | Control::Restart => {
                *idle = false;
                health.fatal.store(false, Ordering::Relaxed);
                ControlEffect::ReconnectNow
            }
        }
    }
}

impl Handler<Control> for Listener {
    type Result = ();

    fn handle(&mut self, msg: Control, ctx: &mut Context<Self>) {
        self.figures.actor.handled();
        match msg.effect(&mut self.idle, &self.health) {
            ControlEffect::Nothing => {}
            ControlEffect::GoIdle => ctx.stop(),
            ControlEffect::ReconnectNow => {
                self.next_delay = Duration::ZERO;
                ctx.stop();
            }
        }
    }
}
