//! Wires the simulator: feed and registry actors, and one HTTP server carrying the WebSocket
//! market paths, the REST endpoints and the admin routes.
//!
//! [`start`] takes an already bound listener (port 0 in tests, as mini-redis does) and
//! returns a handle; the binary only parses flags and calls it.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, Arbiter, AsyncContext};
use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use chrono::Utc;
use serde_json::json;

use super::config::SimArgs;
use super::market::{MarketConfig, SyntheticMarket, TickerInfo};
use super::news::{self, NewsSettings, NewsState, NewsWire};
use super::replay::{load_capture, ReplayError, Replayer};
use super::rest::{self, RestState};
use crate::actors::sim::feed::{Feed, FeedSettings};
use crate::actors::sim::metrics::{FeedFigures, NewsFigures, RegistryFigures, SimSessionFigures};
use crate::actors::sim::registry::ConnectionRegistry;
use crate::actors::sim::session::{SessionLinks, SessionMetrics, SessionSettings, SimSession};
use crate::admin::{self, AdminState, FnCheck};
use crate::clock::{self, MarketClock};
use crate::massive::Market;
use crate::metrics::Registry;
use crate::recipient::CountedRecipient;
use crate::wsio;

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("invalid --start-time: {0}")]
    StartTime(String),
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error("cannot bind {0}: {1}")]
    Bind(String, std::io::Error),
    #[error("cannot serve HTTP: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    WeakSecret(#[from] crate::token::WeakSecret),
}

/// A running simulator.
pub struct SimServer {
    pub port: u16,
    /// The host clients reach it at: its bound address, or loopback when bound to all.
    host: String,
    pub registry: Arc<Registry>,
    handle: ServerHandle,
    join: tokio::task::JoinHandle<std::io::Result<()>>,
    feed_arbiter: Arbiter,
    news: Addr<NewsWire>,
}

impl SimServer {
    /// `ws://HOST:PORT/<market>`.
    pub fn ws_url(&self, market: &str) -> String {
        format!("ws://{}:{}/{}", self.host, self.port, market)
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}:{}{}", self.host, self.port, path)
    }

    /// Runs until the server stops (SIGINT/SIGTERM when signals are handled).
    pub async fn wait(self) -> std::io::Result<()> {
        let r = self.join.await.unwrap_or(Ok(()));
        self.feed_arbiter.stop();
        self.news.do_send(news::Shutdown);
        r
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
        self.feed_arbiter.stop();
        self.news.do_send(news::Shutdown);
    }
}

struct WsState {
    settings: Arc<SessionSettings>,
    links: SessionLinks,
    metrics: Arc<SessionMetrics>,
}

/// `GET /<market>`: upgrade to a Massive WebSocket session.
async fn ws_entry(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<WsState>,
) -> HttpResponse {
    let path = req.path().trim_start_matches('/');
    let Ok(market) = path.parse::<Market>() else {
        return HttpResponse::NotFound()
            .json(json!({"status": "NOT_FOUND", "message": "Not found"}));
    };
    let mut response = match wsio::handshake(&req) {
        Ok(r) => r,
        Err(e) => return actix_web::ResponseError::error_response(&e),
    };
    let (out, body) = wsio::outbound();
    let inbound = wsio::inbound(payload);
    let (settings, links, metrics) = (
        state.settings.clone(),
        state.links.clone(),
        state.metrics.clone(),
    );
    SimSession::create(move |ctx| {
        ctx.add_stream(inbound);
        SimSession::new(market, out, settings, links, metrics)
    });
    response.streaming(body)
}

/// The news stream's wire (on the caller's arbiter: one article a second is no load) and
/// what its routes share.
fn news_state(
    args: &SimArgs,
    tickers: &[TickerInfo],
    clock: MarketClock,
    registry: &Registry,
) -> web::Data<NewsState> {
    let settings = NewsSettings {
        keys: args.finlight_keys.clone(),
        per_sec: args.news_per_sec,
        reject_first: args.finlight_reject,
        seed: args.seed,
    };
    let figures = NewsFigures::register(registry, &[]);
    let wire = NewsWire::new(tickers, clock, &settings, figures.clone()).start();
    web::Data::new(NewsState {
        wire,
        keys: settings.keys,
        reject_left: AtomicU32::new(settings.reject_first),
        next_id: AtomicU64::new(1),
        figures,
        max_buffer: args.client_buffer_bytes,
    })
}

/// Binds `args`' address and runs the simulator until SIGINT/SIGTERM, in its own actix
/// System; what a binary's `main` calls. `on_start` runs once the server listens.
pub fn run(args: SimArgs, on_start: impl FnOnce(&SimServer)) -> Result<(), SimError> {
    let addr = (args.common.server_ip, args.port);
    let listener =
        TcpListener::bind(addr).map_err(|e| SimError::Bind(format!("{}:{}", addr.0, addr.1), e))?;
    actix_web::rt::System::new().block_on(async move {
        let server = start(args, listener, true)?;
        on_start(&server);
        server.wait().await?;
        Ok(())
    })
}

impl SimArgs {
    fn market_config(&self) -> MarketConfig {
        MarketConfig {
            seed: self.seed,
            tickers: self.tickers.max(1),
            rate: self.rate.max(0.0),
            trade_ratio: self.trade_ratio.clamp(0.0, 1.0),
            late_trade_ratio: self.late_trade_ratio.clamp(0.0, 1.0),
            fmv_every: self.fmv_every,
            history_rate: self.history_rate.max(0.0),
            calendar: self.holidays.0.clone(),
            speed: self.speed.max(1e-6),
            ..MarketConfig::default()
        }
    }

    fn feed_settings(&self) -> FeedSettings {
        FeedSettings {
            flush: Duration::from_millis(self.flush_interval_ms.clamp(1, 10)),
            stall_every: (self.stall_every_secs > 0)
                .then(|| Duration::from_secs(self.stall_every_secs)),
            stall_for: Duration::from_millis(self.stall_ms),
        }
    }

    fn session_settings(&self) -> SessionSettings {
        SessionSettings {
            keys: self.api_keys.clone(),
            auth_timeout: Duration::from_millis(self.auth_timeout_ms),
            auth_failure_close: self.auth_failure_close,
            eviction_close: self.eviction_close,
            client_buffer_bytes: self.client_buffer_bytes,
            slow_consumer: self.slow_consumer,
            ack_mode: self.ack_mode,
            batch_size: self.batch_size as usize,
            max_frame_bytes: self.max_frame_bytes as usize,
            options_quote_limit: self.options_quote_limit,
            drop_every: (self.drop_every_secs > 0)
                .then(|| Duration::from_secs(self.drop_every_secs)),
            malformed_every: self.malformed_every,
            malformed_mode: self.malformed_mode,
            unknown_every: self.unknown_every,
            fragment_every: self.fragment_every,
            binary_every: self.binary_every,
        }
    }
}

/// The capture to replay (`--replay`), if any.
fn load_replay(args: &SimArgs) -> Result<Option<Replayer>, SimError> {
    let Some(path) = &args.replay else {
        return Ok(None);
    };
    let (frames, unroutable) = load_capture(path)?;
    if unroutable > 0 {
        log::warn!(
            "capture {}: {unroutable} elements without a readable ev will not be replayed",
            path.display()
        );
    }
    log::info!(
        "replaying {} frames from {} at {}x",
        frames.len(),
        path.display(),
        args.replay_speed
    );
    Ok(Some(Replayer::new(
        frames,
        args.replay_speed,
        args.replay_loop,
    )))
}

/// Starts the simulator on `listener`. `handle_signals` lets SIGINT/SIGTERM stop it (the
/// binary); tests leave it off and call [`SimServer::stop`].
pub fn start(
    args: SimArgs,
    listener: TcpListener,
    handle_signals: bool,
) -> Result<SimServer, SimError> {
    args.common.check_secrets()?;
    let registry = Registry::new();
    let bound = listener.local_addr()?;
    let port = bound.port();
    let host = match bound.ip() {
        ip if ip.is_unspecified() => "127.0.0.1".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let start = clock::parse_start(&args.start_time, Utc::now()).map_err(SimError::StartTime)?;
    let clock = MarketClock::new(start, args.speed);
    let market_cfg = args.market_config();
    let replay = load_replay(&args)?;
    let session_metrics = SessionMetrics::new(SimSessionFigures::register(&registry, &[]));
    let feed_settings = args.feed_settings();
    // The feed gets its own thread: at high rates it is the busiest actor.
    let feed_arbiter = Arbiter::new();
    let feed_figures = FeedFigures::register(&registry, &[]);
    let feed_metrics = feed_figures.actor.clone();
    let sess_actor = session_metrics.figures.actor.clone();
    let now_ms = clock.now_ms();
    let market = SyntheticMarket::new(market_cfg, now_ms);
    let news = news_state(&args, market.tickers(), clock.clone(), &registry);
    let news_wire = news.wire.clone();
    let runners_to = news_wire.clone().recipient();
    let feed = Feed::start_in_arbiter(&feed_arbiter.handle(), move |_| {
        Feed::new(
            market,
            clock,
            replay,
            feed_settings,
            sess_actor,
            feed_figures,
        )
        .with_runners_to(runners_to)
    });
    let registry_figures = RegistryFigures::register(&registry, &[]);
    let registry_metrics = registry_figures.actor.clone();
    let conn_registry = ConnectionRegistry::new(args.max_connections, registry_figures).start();

    let links = SessionLinks {
        attach: CountedRecipient::of(&feed, feed_metrics.clone()),
        detach: CountedRecipient::of(&feed, feed_metrics.clone()),
        register: CountedRecipient::of(&conn_registry, registry_metrics.clone()),
        unregister: CountedRecipient::of(&conn_registry, registry_metrics),
    };
    let settings = Arc::new(args.session_settings());
    let ws_state = web::Data::new(WsState {
        settings,
        links,
        metrics: session_metrics,
    });
    let rest_state = web::Data::new(RestState::new(
        args.api_keys.clone(),
        args.holidays.clone(),
        CountedRecipient::of(&feed, feed_metrics),
        args.rest_rate_limit,
        registry.clone(),
    ));
    let feed_alive = feed.clone();
    let admin_state = web::Data::new(
        AdminState::new("Massive Simulator", registry.clone())
            .with_identity(
                &args.common.container_image,
                &args.common.image_version,
                &args.common.admin_token,
            )
            .with_check(FnCheck::new("feed", move || {
                if feed_alive.connected() {
                    Ok(())
                } else {
                    Err("feed actor stopped".to_string())
                }
            })),
    );

    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(admin_state.clone())
            .app_data(rest_state.clone())
            .app_data(ws_state.clone())
            .app_data(news.clone())
            .configure(admin::configure)
            .configure(rest::configure)
            .configure(news::configure)
            .default_service(web::get().to(ws_entry))
    })
    .workers(args.workers.max(1))
    .shutdown_timeout(1)
    .listen(listener)?;
    if !handle_signals {
        server = server.disable_signals();
    }
    let server = server.run();
    let handle = server.handle();
    let join = actix_web::rt::spawn(server);
    log::info!("simulator listening on port {port}: ws://HOST:{port}/stocks, /finlight, REST and /health, /stats, /metrics");
    Ok(SimServer {
        port,
        host,
        registry,
        handle,
        join,
        feed_arbiter,
        news: news_wire,
    })
}
