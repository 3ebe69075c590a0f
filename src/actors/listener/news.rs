//! News listener actor: holds the one Finlight WebSocket of a key and passes every article on
//! as it came ([`NewsArticle`]: the article's own bytes and the receive time), never
//! waiting on what is downstream (RabbitMQ's `news` queue in distributed mode, the news
//! processor in embedded mode).
//!
//! It speaks Finlight's protocol ([`crate::finlight`]) as the official clients do: the key
//! and `x-takeover` on the handshake, the stream parameters with a nonce, a JSON `ping`
//! every `ping_every`, and it reads `admit`, `sendArticle`, `pong`, `preempted`,
//! `admin_kick` and `error`.
//!
//! Supervision as the Massive listener's: any end of the connection stops the actor and
//! `restarting` picks the next delay, which is:
//! - the backoff (reset after a stable connection) for network errors and closes;
//! - `rate_limited_wait` after a 429 at the handshake or a rate-limit `error`;
//! - `retryAfter` of an `admin_kick`;
//! - `preempted_cooldown` after `preempted` (another connection with this key took over;
//!   reconnecting at once would take it back, and the two would take turns);
//! - zero for the proactive rotation before Finlight's two-hour connection limit.
//!
//! A 401 at the handshake (wrong key) or a "blocked" error is fatal: the listener goes idle
//! until started again, instead of hammering the server. No pong for `dead_after` ends the
//! connection.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::io::{SinkWrite, WriteHandler};
use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, StreamHandler, Supervised,
    WrapFuture,
};
use actix_codec::Framed;
use awc::error::{WsClientError, WsProtocolError};
use awc::http::StatusCode;
use awc::ws::{Codec, Frame, Message as WsMessage};
use awc::BoxedSocket;
use bytes::{Bytes, BytesMut};
use futures_util::stream::SplitSink;
use futures_util::StreamExt;

use super::connection::{Control, ControlEffect, Describe, ListenerHealth};
use super::metrics::NewsFigures;
use crate::backoff::Backoff;
use crate::finlight::{
    self, ServerMessage, StreamParams, API_KEY_HEADER, CLIENT_VERSION_HEADER, TAKEOVER_HEADER,
};
use crate::queue::NewsArticle;
use crate::recipient::CountedRecipient;

/// A connection that lived this long was healthy: its end starts the backoff over.
const STABLE_AFTER: Duration = Duration::from_secs(30);
/// The largest message read (an article with its full content is tens of KB).
const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// How the news listener reaches Finlight.
#[derive(Debug, Clone)]
pub struct NewsListenerConfig {
    /// `wss://wss.finlight.me` (enhanced articles) or with `/raw`.
    pub url: String,
    pub api_key: String,
    /// Ask the server to replace this key's other connection.
    pub takeover: bool,
    /// What to ask for; the nonce is added per connection.
    pub params: StreamParams,
    pub ping_every: Duration,
    /// No pong (or any message) for this long ends the connection.
    pub dead_after: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Wait after a 429 at the handshake or a rate-limit error.
    pub rate_limited_wait: Duration,
    /// Wait after `preempted`.
    pub preempted_cooldown: Duration,
    /// Reconnect before the server's connection lifetime (two hours) runs out.
    pub rotate_after: Duration,
    /// Wait for [`Control::Start`] (from the lease keeper) before connecting.
    pub start_idle: bool,
}

impl NewsListenerConfig {
    /// The official clients' timings: ping every 25 s, dead after 60 s without a pong,
    /// backoff 0.5 s to 10 s, 60 s after a 429, rotation at 115 minutes. Entities and updates
    /// are asked for (the processor needs companies to find tickers, and replaces updated
    /// stories).
    pub fn new(url: &str, api_key: &str) -> Self {
        NewsListenerConfig {
            url: url.to_string(),
            api_key: api_key.to_string(),
            takeover: false,
            params: StreamParams {
                include_entities: Some(true),
                include_updates: Some(true),
                ..StreamParams::default()
            },
            ping_every: Duration::from_secs(25),
            dead_after: Duration::from_secs(60),
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(10),
            rate_limited_wait: Duration::from_secs(60),
            preempted_cooldown: Duration::from_secs(60),
            rotate_after: Duration::from_secs(115 * 60),
            start_idle: false,
        }
    }
}

/// The news listener's settings (listener node and embedded mode).
#[derive(Debug, Clone, clap::Args)]
pub struct NewsArgs {
    /// Finlight API key. The listener node connects to Finlight only when it is set;
    /// embedded mode uses the built-in simulator's news stream without it.
    #[arg(
        id = "finlight_api_key",
        long = "finlight-api-key",
        env = "FINLIGHT_API_KEY",
        default_value = "",
        hide_env_values = true
    )]
    pub api_key: String,

    /// Finlight's WebSocket URL (`/raw` is appended for raw articles).
    #[arg(id = "finlight_url", long = "finlight-url", env = "FINLIGHT_WSS_URL", default_value = finlight::WSS_URL)]
    pub url: String,

    /// Raw articles (no tagged companies: tickers are searched in the text).
    #[arg(id = "finlight_raw", long = "finlight-raw", env = "FINLIGHT_RAW", default_value = "false",
          action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub raw: bool,

    /// Ask Finlight to replace this key's other connection (`x-takeover: true`).
    #[arg(id = "finlight_takeover", long = "finlight-takeover", env = "FINLIGHT_TAKEOVER", default_value = "false",
          action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub takeover: bool,

    /// Finlight search query (empty: every article).
    #[arg(
        id = "finlight_query",
        long = "finlight-query",
        env = "FINLIGHT_QUERY",
        default_value = ""
    )]
    pub query: String,

    /// Only articles about these tickers: a JSON array or a comma list (empty: all).
    #[arg(
        id = "finlight_tickers",
        long = "finlight-tickers",
        env = "FINLIGHT_TICKERS",
        default_value = ""
    )]
    pub tickers: String,

    /// Only articles from these sources: a JSON array or a comma list (empty: Finlight's
    /// default sources).
    #[arg(
        id = "finlight_sources",
        long = "finlight-sources",
        env = "FINLIGHT_SOURCES",
        default_value = ""
    )]
    pub sources: String,

    /// Article language.
    #[arg(
        id = "finlight_language",
        long = "finlight-language",
        env = "FINLIGHT_LANGUAGE",
        default_value = "en"
    )]
    pub language: String,

    /// Seconds to wait after Finlight answers 429 or reports a rate limit.
    #[arg(
        id = "finlight_rate_limited_wait_secs",
        long = "finlight-rate-limited-wait-secs",
        env = "FINLIGHT_RATE_LIMITED_WAIT_SECS",
        default_value_t = 60
    )]
    pub rate_limited_wait_secs: u64,

    /// Seconds to wait after another connection with this key took over (`preempted`).
    #[arg(
        id = "finlight_preempted_cooldown_secs",
        long = "finlight-preempted-cooldown-secs",
        env = "FINLIGHT_PREEMPTED_COOLDOWN_SECS",
        default_value_t = 60
    )]
    pub preempted_cooldown_secs: u64,
}

/// A list setting: a JSON array of strings or a comma list; None when empty.
fn list(s: &str) -> Option<Vec<String>> {
    let t = s.trim();
    let items: Vec<String> = if t.starts_with('[') {
        serde_json::from_str(t).unwrap_or_default()
    } else {
        t.split(',').map(|x| x.trim().to_string()).collect()
    };
    let items: Vec<String> = items.into_iter().filter(|x| !x.is_empty()).collect();
    (!items.is_empty()).then_some(items)
}

impl NewsArgs {
    /// The listener's settings for `url` (the base URL; `/raw` added when raw) and `key`.
    pub fn config(&self, url: &str, key: &str) -> NewsListenerConfig {
        let url = url.trim_end_matches('/');
        let url = if self.raw {
            format!("{url}/raw")
        } else {
            url.to_string()
        };
        let mut c = NewsListenerConfig::new(&url, key);
        c.takeover = self.takeover;
        c.params.query = Some(self.query.trim().to_string()).filter(|q| !q.is_empty());
        c.params.tickers = list(&self.tickers);
        c.params.sources = list(&self.sources);
        c.params.language = Some(self.language.trim().to_string()).filter(|l| !l.is_empty());
        c.rate_limited_wait = Duration::from_secs(self.rate_limited_wait_secs);
        c.preempted_cooldown = Duration::from_secs(self.preempted_cooldown_secs);
        c
    }
}

type WsSink = SinkWrite<WsMessage, SplitSink<Framed<BoxedSocket, Codec>, WsMessage>>;

pub struct NewsListener {
    cfg: NewsListenerConfig,
    out: CountedRecipient<NewsArticle>,
    health: Arc<ListenerHealth>,
    figures: NewsFigures,
    backoff: Backoff,
    sink: Option<WsSink>,
    connected_at: Option<Instant>,
    last_seen: Instant,
    /// The delay before the next connection, when something other than the backoff sets it.
    wait: Option<Duration>,
    next_delay: Duration,
    idle: bool,
    nonce: String,
    /// Text parts of a fragmented message so far.
    partial: Option<BytesMut>,
}

/// Starts a supervised news listener sending articles to `out`.
pub fn start(
    cfg: NewsListenerConfig,
    out: CountedRecipient<NewsArticle>,
    figures: NewsFigures,
) -> (actix::Addr<NewsListener>, Arc<ListenerHealth>) {
    let listener = NewsListener::new(cfg, out, figures);
    let health = listener.health.clone();
    (actix::Supervisor::start(move |_| listener), health)
}

impl NewsListener {
    pub fn new(
        cfg: NewsListenerConfig,
        out: CountedRecipient<NewsArticle>,
        figures: NewsFigures,
    ) -> Self {
        let backoff =
            Backoff::new(cfg.backoff_initial, cfg.backoff_max).with_stable_after(STABLE_AFTER);
        let idle = cfg.start_idle;
        NewsListener {
            cfg,
            out,
            health: Arc::new(ListenerHealth::default()),
            figures,
            backoff,
            sink: None,
            connected_at: None,
            last_seen: Instant::now(),
            wait: None,
            next_delay: Duration::ZERO,
            idle,
            nonce: String::new(),
            partial: None,
        }
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        let cfg = self.cfg.clone();
        log::info!("connecting to Finlight at {}", cfg.url);
        let fut = async move {
            let mut req = awc::Client::builder()
                .max_http_version(awc::http::Version::HTTP_11)
                .timeout(Duration::from_secs(15))
                .finish()
                .ws(cfg.url.as_str())
                .max_frame_size(MAX_MESSAGE_BYTES)
                .header(API_KEY_HEADER, cfg.api_key.as_str())
                .header(
                    CLIENT_VERSION_HEADER,
                    concat!("rust/tickwire@", env!("CARGO_PKG_VERSION")),
                );
            if cfg.takeover {
                req = req.header(TAKEOVER_HEADER, "true");
            }
            req.connect().await
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
                act.nonce = crate::token::random_hex().unwrap_or_default();
                let mut params = act.cfg.params.clone();
                params.client_nonce = Some(act.nonce.clone());
                match serde_json::to_string(&params) {
                    Ok(text) => act.send(text),
                    Err(e) => log::error!("cannot encode the stream parameters: {e}"),
                }
                ctx.run_later(act.cfg.rotate_after, |act, ctx| {
                    act.figures.rotations.inc();
                    log::info!("rotating the Finlight connection before its lifetime ends");
                    act.wait = Some(Duration::ZERO);
                    ctx.stop();
                });
            }
            Err(e) => act.refused(e, ctx),
        }));
    }

    /// The handshake failed: a wrong key is fatal, a 429 waits, the rest backs off.
    fn refused(&mut self, e: WsClientError, ctx: &mut Context<Self>) {
        self.health.set_error(format!("connect: {e}"));
        match e {
            WsClientError::InvalidResponseStatus(StatusCode::UNAUTHORIZED)
            | WsClientError::InvalidResponseStatus(StatusCode::FORBIDDEN) => {
                self.figures.handshake("refused");
                log::error!("Finlight refused the API key ({e}); idle until started again");
                self.health.fatal.store(true, Ordering::Relaxed);
            }
            WsClientError::InvalidResponseStatus(StatusCode::TOO_MANY_REQUESTS) => {
                self.figures.handshake("rate_limited");
                log::warn!(
                    "Finlight answered 429 at the handshake; waiting {:?}",
                    self.cfg.rate_limited_wait
                );
                self.wait = Some(self.cfg.rate_limited_wait);
            }
            e => {
                self.figures.handshake("failed");
                log::warn!("connect to Finlight at {} failed: {e}", self.cfg.url);
            }
        }
        ctx.stop();
    }

    fn send(&mut self, text: String) {
        if let Some(sink) = self.sink.as_mut() {
            let _ = sink.write(WsMessage::Text(text.into()));
        }
    }

    fn on_text(&mut self, bytes: Bytes, ctx: &mut Context<Self>) {
        let received_at_ms = chrono::Utc::now().timestamp_millis();
        self.figures.messages_in.inc();
        let Ok(text) = std::str::from_utf8(&bytes) else {
            self.figures.unreadable("not UTF-8");
            return;
        };
        let msg = match finlight::parse_server_message(text) {
            Ok(m) => m,
            Err(e) => {
                self.figures.unreadable(&e.to_string());
                return;
            }
        };
        match msg {
            ServerMessage::SendArticle { data } => {
                self.figures.articles.inc();
                self.out.do_send(NewsArticle {
                    article: bytes.slice_ref(data.get().as_bytes()),
                    received_at_ms,
                });
            }
            ServerMessage::Admit {
                lease_id,
                client_nonce,
                ..
            } => {
                if client_nonce.is_some_and(|n| n != self.nonce) {
                    log::warn!("Finlight admitted with another connection's nonce");
                }
                log::info!(
                    "admitted by Finlight (lease {})",
                    lease_id.unwrap_or_default()
                );
                self.figures.handshake("admitted");
                self.health.authenticated.store(true, Ordering::Relaxed);
            }
            ServerMessage::Pong { .. } => {}
            ServerMessage::Preempted { reason, .. } => {
                self.figures.preempted(
                    reason.as_deref().unwrap_or("?"),
                    self.cfg.preempted_cooldown,
                );
                self.health
                    .set_error(format!("preempted: {}", reason.unwrap_or_default()));
                self.wait = Some(self.cfg.preempted_cooldown);
                ctx.stop();
            }
            ServerMessage::AdminKick { retry_after } => {
                let wait = Duration::from_millis(retry_after.unwrap_or(900_000));
                self.figures.kicked(wait);
                self.health.set_error("admin_kick");
                self.wait = Some(wait);
                ctx.stop();
            }
            ServerMessage::Error { message } => {
                self.figures.server_error(&message);
                let lower = message.to_lowercase();
                if lower.contains("blocked") {
                    self.health.fatal.store(true, Ordering::Relaxed);
                    self.health.set_error(format!("blocked: {message}"));
                    ctx.stop();
                } else if lower.contains("limit") {
                    self.health.set_error(format!("limited: {message}"));
                    self.wait = Some(self.cfg.rate_limited_wait);
                    ctx.stop();
                }
            }
            ServerMessage::Unknown => self.figures.unknown.inc(),
        }
    }

    fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        if self.sink.is_none() {
            return;
        }
        if self.last_seen.elapsed() > self.cfg.dead_after {
            self.figures.dead_peer(self.cfg.dead_after);
            ctx.stop();
            return;
        }
        self.send(finlight::ping(chrono::Utc::now().timestamp_millis()));
    }
}

impl Actor for NewsListener {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.idle || self.health.fatal.load(Ordering::Relaxed) {
            return;
        }
        ctx.run_later(self.next_delay, |act, ctx| act.connect(ctx));
        ctx.run_interval(self.cfg.ping_every, |act, ctx| act.heartbeat(ctx));
    }
}

impl Supervised for NewsListener {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.figures.reconnects.inc();
        self.figures.connected.set(0);
        self.health.disconnected();
        self.sink = None;
        self.partial = None;
        self.backoff.connection_ended(
            self.connected_at
                .take()
                .map_or(Duration::ZERO, |t| t.elapsed()),
        );
        self.next_delay = match self.wait.take() {
            Some(d) => d,
            None => self.backoff.next_delay(),
        };
        if !self.health.fatal.load(Ordering::Relaxed) && !self.idle {
            log::info!("reconnecting to Finlight in {:?}", self.next_delay);
        }
    }
}

impl WriteHandler<WsProtocolError> for NewsListener {
    fn error(&mut self, err: WsProtocolError, _: &mut Context<Self>) -> actix::Running {
        log::warn!("write to Finlight failed: {err}");
        actix::Running::Stop
    }
}

impl StreamHandler<Result<Frame, WsProtocolError>> for NewsListener {
    fn handle(&mut self, item: Result<Frame, WsProtocolError>, ctx: &mut Context<Self>) {
        use actix_http::ws::Item;
        self.last_seen = Instant::now();
        match item {
            Ok(Frame::Text(bytes)) => self.on_text(bytes, ctx),
            Ok(Frame::Continuation(part)) => {
                let (chunk, last) = match part {
                    Item::FirstText(b) => {
                        self.partial = Some(BytesMut::new());
                        (b, false)
                    }
                    Item::FirstBinary(_) => {
                        self.partial = None;
                        self.figures.unreadable("binary message");
                        return;
                    }
                    Item::Continue(b) => (b, false),
                    Item::Last(b) => (b, true),
                };
                let Some(buf) = self.partial.as_mut() else {
                    return;
                };
                if buf.len() + chunk.len() > MAX_MESSAGE_BYTES {
                    self.figures.unreadable("message over the size limit");
                    self.partial = None;
                    return;
                }
                buf.extend_from_slice(&chunk);
                if last {
                    if let Some(whole) = self.partial.take() {
                        self.on_text(whole.freeze(), ctx);
                    }
                }
            }
            Ok(Frame::Binary(_)) => self.figures.unreadable("binary message"),
            Ok(Frame::Ping(p)) => {
                if let Some(sink) = self.sink.as_mut() {
                    let _ = sink.write(WsMessage::Pong(p));
                }
            }
            Ok(Frame::Close(reason)) => {
                log::warn!("Finlight closed the connection: {reason:?}");
                if reason.as_ref().is_some_and(|r| u16::from(r.code) == 1008) {
                    // The official client stops for good on 1008 (user blocked).
                    self.health.fatal.store(true, Ordering::Relaxed);
                    self.health.set_error("closed with 1008 (blocked)");
                }
                ctx.stop();
            }
            Ok(Frame::Pong(_)) => {}
            Err(e) => {
                self.health.set_error(format!("protocol: {e}"));
                self.figures.unreadable(&e.to_string());
                ctx.stop();
            }
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        log::warn!("Finlight connection ended");
        ctx.stop();
    }
}

impl Handler<Control> for NewsListener {
    type Result = ();

    fn handle(&mut self, msg: Control, ctx: &mut Context<Self>) {
        self.figures.actor.handled();
        match msg.effect(&mut self.idle, &self.health) {
            ControlEffect::Nothing => {}
            ControlEffect::GoIdle => ctx.stop(),
            ControlEffect::ReconnectNow => {
                self.wait = Some(Duration::ZERO);
                ctx.stop();
            }
        }
    }
}

impl Handler<Describe> for NewsListener {
    type Result = actix::MessageResult<Describe>;

    /// The news connection for `/stats` (`node.news`): as a market's, without subscriptions.
    fn handle(&mut self, _: Describe, _: &mut Context<Self>) -> Self::Result {
        let fatal = self.health.fatal.load(Ordering::Relaxed);
        let state = if fatal {
            "refused"
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
            "raw": self.cfg.url.ends_with("/raw"),
            "takeover": self.cfg.takeover,
            "connected_for_seconds": self.connected_at.map(|t| t.elapsed().as_secs()),
            "last_error": self.health.last_error(),
        }))
    }
}
