//! The listener node (`tickwire-listener`): flags, wiring and its HTTP routes.
//!
//! Wires publisher <- router <- listener (+ optional recorder) and, unless disabled, the
//! lease keeper that decides whether this replica connects. Serves admin HTTP with honest
//! readiness (connected, authenticated, lease held, broker up) and node facts on `/stats`,
//! plus control routes behind the admin token:
//!
//! | Route | Effect |
//! |---|---|
//! | `POST /control/start` | connect (clears an `auth_failed` state); no-op when already running |
//! | `POST /control/stop` | close the connection and stay idle |
//! | `POST /control/restart` | reconnect now |
//! | `PUT /control/subscriptions` | body: JSON array or comma list; reconnects when changed |
//! | `PUT /control/feed?feed=HOST` | feed host; reconnects when changed |
//! | `PUT /control/market?to=crypto[&market=stocks]` | move a connection to another market |
//!
//! Several markets per process (`MASSIVE_MARKET=stocks,crypto`): one supervised listener and
//! lease per market; `?market=` picks one connection, without it a route applies to all.
//! All are idempotent; a bad value is refused with 400 and the reason, nothing changes.

pub mod connection;
pub mod lease;
pub mod publisher;
pub mod recorder;
pub mod router;

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::actors::listener::lease::{lease_key, LeaseConfig, LeaseKeeper};
use crate::actors::listener::publisher::{PublisherConfig, QueuePublisher};
use crate::actors::listener::recorder::Recorder;
use crate::admin::{self, AdminState, FnCheck, NodeHttp};
use crate::config::{parse_subscriptions, BrokerArgs, CommonArgs, MassiveArgs};
use crate::massive::control::Topic;
use crate::massive::Market;
use crate::metrics::Registry;
use crate::recipient::CountedRecipient;
use connection::{Control, Describe, Listener, ListenerConfig, Reconfigure};

/// Every setting of `tickwire-listener`.
#[derive(Debug, Clone, clap::Args)]
pub struct ListenerArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Admin HTTP port.
    #[arg(long, env = "SERVER_PORT", default_value_t = 4200)]
    pub port: u16,

    #[command(flatten)]
    pub node_registry: crate::config::NodeRegistryArgs,

    #[command(flatten)]
    pub massive: MassiveArgs,

    #[command(flatten)]
    pub broker: BrokerArgs,

    /// Shard queues per queue type; a symbol always goes to the same shard.
    #[arg(long, env = "QUEUE_SHARDS", default_value_t = 4)]
    pub shards: u16,

    /// Prefix of every queue name.
    #[arg(long, env = "QUEUE_PREFIX", default_value = "")]
    pub queue_prefix: String,

    /// Batches held while RabbitMQ is slow or down; past it the oldest are dropped (counted).
    #[arg(long, env = "PUBLISH_BUFFER_BATCHES", default_value_t = 10_000)]
    pub publish_buffer: usize,

    /// Publishes in flight at once. Kept small so that a backlog waits in the publish buffer,
    /// where batches of one queue and shard can be merged, rather than inside the AMQP client.
    #[arg(long, env = "PUBLISH_MAX_IN_FLIGHT", default_value_t = 64)]
    pub publish_in_flight: usize,

    /// Under backpressure, merge waiting batches of one queue and shard into messages of up
    /// to this many events (0 = never; one message per frame, queue and shard).
    #[arg(long, env = "PUBLISH_COALESCE_MAX_EVENTS", default_value_t = 500)]
    pub publish_coalesce: usize,

    /// Wait for broker confirms on every publish (slower).
    #[arg(long, env = "MDQ_PUBLISHER_CONFIRMS", default_value = "false",
          value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub publisher_confirms: bool,

    /// Redis for the connection lease (internal state store).
    #[arg(
        long,
        env = "MDC_REDIS_URL",
        default_value = "redis://127.0.0.1:6379/0"
    )]
    pub redis_url: String,

    /// Decide the connected replica with a Redis lease (off: connect unconditionally).
    #[arg(long, env = "LISTENER_LEASE", default_value = "true",
          value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub lease: bool,

    /// Lease time-to-live; a standby takes over within about this long.
    #[arg(long, env = "LEASE_TTL_MS", default_value_t = 10_000)]
    pub lease_ttl_ms: u64,

    /// Prefix of Redis keys.
    #[arg(long, env = "REDIS_KEY_PREFIX", default_value = "tickwire:")]
    pub redis_prefix: String,

    /// Without a lease: connect at start (off waits for POST /control/start). With a lease, the
    /// lease decides.
    #[arg(long, env = "MDL_AUTO_START_ENABLED", default_value = "true",
          value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub auto_start: bool,

    /// Record every raw frame to FILE in the simulator's replay format.
    #[arg(long, env = "LISTENER_RECORD")]
    pub record: Option<PathBuf>,

    /// Massive REST base URL (market status while closed).
    #[arg(
        long = "massive-rest-url",
        env = "MASSIVE_REST_URL",
        default_value = "https://api.massive.com"
    )]
    pub rest_url: String,

    /// While the market is closed, poll market status instead of connecting.
    #[arg(long, env = "MASSIVE_POLL_WHEN_CLOSED", default_value = "true",
          value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub poll_when_closed: bool,

    /// Seconds between market-status checks while closed.
    #[arg(long, env = "MASSIVE_CLOSED_POLL_SECS", default_value_t = 60)]
    pub closed_poll_secs: u64,

    /// Frames larger than this many bytes are counted and skipped (Massive's stay below ~1 MB).
    #[arg(long, env = "MASSIVE_MAX_FRAME_BYTES", default_value_t = crate::actors::listener::connection::MAX_FRAME_BYTES)]
    pub max_frame_bytes: usize,

    /// Seconds between pings to Massive.
    #[arg(long, env = "MASSIVE_PING_SECS", default_value_t = 25)]
    pub ping_secs: u64,

    /// Seconds of silence after which the connection is declared dead.
    #[arg(long, env = "MASSIVE_DEAD_AFTER_SECS", default_value_t = 60)]
    pub dead_after_secs: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("MASSIVE_API_KEY (or POLYGON_API_KEY) is required")]
    NoApiKey,
    #[error("no topic in MASSIVE_SUBSCRIPTIONS belongs to /{0}")]
    NoSubscriptions(String),
    #[error("cannot open the capture file: {0}")]
    Record(std::io::Error),
    #[error(transparent)]
    Lease(#[from] crate::actors::listener::lease::LeaseError),
    #[error("cannot serve HTTP: {0}")]
    Io(#[from] std::io::Error),
}

/// A running listener node.
pub struct ListenerNode {
    pub port: u16,
    pub registry: Arc<Registry>,
    /// One per market.
    pub listeners: Vec<Addr<Listener>>,
    http: NodeHttp,
    registrar: Option<Addr<crate::actors::registrar::Registrar>>,
}

impl ListenerNode {
    pub fn url(&self, path: &str) -> String {
        self.http.url(path)
    }

    pub async fn wait(self) -> std::io::Result<()> {
        self.http.wait().await
    }

    pub async fn stop(self) {
        crate::actors::registrar::deregister(&self.registrar).await;
        for l in &self.listeners {
            l.do_send(Control::Stop);
        }
        self.http.stop().await;
    }
}

/// One market's connection: its listener, health and (with a lease) who holds the lease.
#[derive(Clone)]
struct MarketLink {
    market: Market,
    listener: Addr<Listener>,
    holder: Option<Arc<std::sync::Mutex<String>>>,
}

/// The listener control routes (`/control/*`); the app holds a [`ControlState`].
pub fn configure_control(cfg: &mut web::ServiceConfig) {
    cfg.route("/control/subscriptions", web::put().to(set_subscriptions))
        .route("/control/feed", web::put().to(set_feed))
        .route("/control/market", web::put().to(set_market))
        .route("/control/{cmd}", web::post().to(control));
}

/// What the control routes act on: the node's listeners, one per market.
pub struct ControlState {
    links: Vec<MarketLink>,
    admin: web::Data<AdminState>,
    secure: bool,
    /// With a lease, only the holder may connect: start/restart on a standby is refused.
    lease: bool,
    registry: Arc<Registry>,
}

impl ControlState {
    /// Control of a single listener with no lease (embedded mode).
    pub fn single(
        market: Market,
        listener: Addr<Listener>,
        admin: web::Data<AdminState>,
        secure: bool,
        registry: Arc<Registry>,
    ) -> Self {
        ControlState {
            links: vec![MarketLink {
                market,
                listener,
                holder: None,
            }],
            admin,
            secure,
            lease: false,
            registry,
        }
    }

    /// The links a request addresses: `?market=` or, without it, all of them.
    fn targets(&self, req: &HttpRequest) -> Result<Vec<MarketLink>, String> {
        let q =
            web::Query::<MarketParam>::from_query(req.query_string()).map_err(|e| e.to_string())?;
        match q.market.as_deref() {
            None => Ok(self.links.clone()),
            Some(m) => {
                let m: Market = m
                    .parse()
                    .map_err(|e: crate::massive::MarketError| e.to_string())?;
                let found: Vec<MarketLink> = self
                    .links
                    .iter()
                    .filter(|l| l.market == m)
                    .cloned()
                    .collect();
                if found.is_empty() {
                    Err(format!("this node does not run /{m}"))
                } else {
                    Ok(found)
                }
            }
        }
    }

    fn lease_held(&self, market: Market) -> bool {
        self.registry
            .value("tickwire_lease_held", &[("market", market.path())])
            == Some(1)
    }
}

#[derive(Deserialize)]
struct FeedParam {
    feed: Option<String>,
}

#[derive(Deserialize)]
struct MarketParam {
    market: Option<String>,
}

fn bad(reason: impl Into<String>) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({"status": "ERROR", "error": reason.into()}))
}

fn ok() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "OK"}))
}

async fn control(
    req: HttpRequest,
    s: web::Data<ControlState>,
    path: web::Path<String>,
) -> HttpResponse {
    if let Err(e) = s.admin.authorize(&req) {
        return actix_web::ResponseError::error_response(&e);
    }
    let cmd = match path.as_str() {
        "start" => Control::Start,
        "stop" => Control::Stop,
        "restart" => Control::Restart,
        other => {
            return bad(format!(
                "unknown control {other:?}: use start, stop or restart"
            ))
        }
    };
    let targets = match s.targets(&req) {
        Ok(t) => t,
        Err(reason) => return bad(reason),
    };
    if s.lease && cmd != Control::Stop {
        if let Some(l) = targets.iter().find(|l| !s.lease_held(l.market)) {
            return HttpResponse::Conflict().json(json!({"status": "ERROR",
                "error": format!("standby on /{}: another replica holds the Massive connection lease", l.market)}));
        }
    }
    for l in targets {
        l.listener.do_send(cmd);
    }
    ok()
}

/// Parses a subscriptions body and checks every channel exists on `market`.
pub fn validate_subscriptions(body: &str, market: Market) -> Result<Vec<Topic>, String> {
    let subs = parse_subscriptions(body)?.0;
    if let Some(t) = subs.iter().find(|t| !market.knows_channel(&t.channel)) {
        return Err(format!(
            "channel {:?} does not exist on /{market}",
            t.channel
        ));
    }
    Ok(subs)
}

/// Splits `body`'s topics over `markets` by channel; every topic must fit one of them and
/// every market must keep at least one topic.
pub fn split_subscriptions(
    body: &str,
    markets: &[Market],
) -> Result<Vec<(Market, Vec<Topic>)>, String> {
    let subs = parse_subscriptions(body)?.0;
    if let Some(t) = subs
        .iter()
        .find(|t| !markets.iter().any(|m| m.knows_channel(&t.channel)))
    {
        let names: Vec<&str> = markets.iter().map(|m| m.path()).collect();
        return Err(format!(
            "channel {:?} does not exist on /{}",
            t.channel,
            names.join(", /")
        ));
    }
    markets
        .iter()
        .map(|m| {
            let mine: Vec<Topic> = subs
                .iter()
                .filter(|t| m.knows_channel(&t.channel))
                .cloned()
                .collect();
            if mine.is_empty() {
                Err(format!("no subscription fits /{m}"))
            } else {
                Ok((*m, mine))
            }
        })
        .collect()
}

async fn set_subscriptions(
    req: HttpRequest,
    s: web::Data<ControlState>,
    body: String,
) -> HttpResponse {
    if let Err(e) = s.admin.authorize(&req) {
        return actix_web::ResponseError::error_response(&e);
    }
    let targets = match s.targets(&req) {
        Ok(t) => t,
        Err(reason) => return bad(reason),
    };
    let markets: Vec<Market> = targets.iter().map(|l| l.market).collect();
    match split_subscriptions(&body, &markets) {
        Ok(per_market) => {
            for (m, subs) in per_market {
                for l in targets.iter().filter(|l| l.market == m) {
                    l.listener.do_send(Reconfigure {
                        subscriptions: Some(subs.clone()),
                        ..Reconfigure::default()
                    });
                }
            }
            ok()
        }
        Err(e) => bad(e),
    }
}

async fn set_feed(
    req: HttpRequest,
    s: web::Data<ControlState>,
    q: web::Query<FeedParam>,
) -> HttpResponse {
    if let Err(e) = s.admin.authorize(&req) {
        return actix_web::ResponseError::error_response(&e);
    }
    let Some(feed) = q
        .feed
        .as_deref()
        .map(str::trim)
        .filter(|f| !f.is_empty() && !f.contains('/'))
    else {
        return bad("feed must be a host[:port], e.g. socket.massive.com");
    };
    let targets = match s.targets(&req) {
        Ok(t) => t,
        Err(reason) => return bad(reason),
    };
    let scheme = if s.secure { "wss" } else { "ws" };
    for l in targets {
        let url = format!("{scheme}://{feed}/{}", l.market);
        l.listener.do_send(Reconfigure {
            url: Some(url),
            ..Reconfigure::default()
        });
    }
    ok()
}

/// `PUT /control/market?to=MARKET` (or `?market=` on a single-market node): moves one
/// connection to another market; its subscriptions must fit the new market.
async fn set_market(req: HttpRequest, s: web::Data<ControlState>) -> HttpResponse {
    if let Err(e) = s.admin.authorize(&req) {
        return actix_web::ResponseError::error_response(&e);
    }
    #[derive(Deserialize)]
    struct Q {
        market: Option<String>,
        to: Option<String>,
    }
    let Ok(q) = web::Query::<Q>::from_query(req.query_string()) else {
        return bad("bad query");
    };
    // Reference form: ?market=NEW on a node with one connection.
    let (from, to) = match (&q.to, &q.market, s.links.len()) {
        (Some(to), from, _) => (from.clone(), to.clone()),
        (None, Some(to), 1) => (None, to.clone()),
        (None, _, _) => {
            return bad(
                "name the new market: ?to=MARKET (and ?market=CURRENT on a multi-market node)",
            )
        }
    };
    let to: Market = match to.parse() {
        Ok(m) => m,
        Err(e) => return bad(format!("{e}")),
    };
    let link = match from {
        Some(f) => match f
            .parse::<Market>()
            .ok()
            .and_then(|f| s.links.iter().find(|l| l.market == f))
        {
            Some(l) => l.clone(),
            None => return bad(format!("this node does not run /{f}")),
        },
        None if s.links.len() == 1 => s.links[0].clone(),
        None => return bad("this node runs several markets: say which with ?market=CURRENT"),
    };
    let desc = match link.listener.send(Describe).await {
        Ok(d) => d,
        Err(e) => {
            return HttpResponse::ServiceUnavailable()
                .json(json!({"status":"ERROR","error": e.to_string()}))
        }
    };
    let subs: Vec<String> = desc["subscriptions"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if let Err(e) = validate_subscriptions(&subs.join(","), to) {
        return bad(format!(
            "current subscriptions do not fit /{to}: {e}; change them first"
        ));
    }
    let url = desc["feed"].as_str().unwrap_or("");
    let base = url.rsplit_once("://").map_or(url, |(_, rest)| rest);
    let host = base.split('/').next().unwrap_or(base);
    let scheme = if s.secure { "wss" } else { "ws" };
    link.listener.do_send(Reconfigure {
        url: Some(format!("{scheme}://{host}/{to}")),
        market: Some(to),
        ..Reconfigure::default()
    });
    ok()
}

/// Starts the node on `http` (port 0 in tests) inside the current actix System.
pub fn start(args: ListenerArgs, http: TcpListener) -> Result<ListenerNode, NodeError> {
    let api_key = args.massive.key.resolve();
    if api_key.is_empty() {
        return Err(NodeError::NoApiKey);
    }
    let markets = args.massive.markets.0.clone();
    for m in &markets {
        if args.massive.subscriptions_for(*m).is_empty() {
            return Err(NodeError::NoSubscriptions(m.path().to_string()));
        }
    }
    let registry = Registry::new();
    let port = http.local_addr()?.port();

    let publisher = QueuePublisher::new(
        PublisherConfig {
            url: args.broker.rabbitmq_url.clone(),
            message_ttl_ms: args.broker.message_ttl_ms,
            shards: args.shards.max(1),
            queue_prefix: args.queue_prefix.clone(),
            buffer_batches: args.publish_buffer,
            max_in_flight: args.publish_in_flight.max(1),
            confirms: args.publisher_confirms,
            coalesce_max_events: args.publish_coalesce,
        },
        &registry,
    );
    let publisher_metrics = publisher.metrics();
    let publisher = publisher.start();

    let recorder = match &args.record {
        Some(path) => {
            let r = Recorder::create(path, &registry).map_err(NodeError::Record)?;
            let m = r.metrics();
            log::info!("recording raw frames to {}", path.display());
            Some(CountedRecipient::of(&r.start(), m))
        }
        None => None,
    };

    let mut admin_state = AdminState::new("Massive Data Listener", registry.clone()).with_identity(
        &args.common.container_image,
        &args.common.image_version,
        &args.common.admin_token,
    );
    let r = registry.clone();
    admin_state = admin_state.with_check(FnCheck::new("broker", move || {
        if r.value("tickwire_publisher_connected", &[]) == Some(1) {
            Ok(())
        } else {
            Err("RabbitMQ not connected".into())
        }
    }));

    // One supervised listener (and lease) per market: one connection per (key, market).
    let mut links = Vec::new();
    for market in markets {
        let cfg = ListenerConfig {
            url: args.massive.ws_url(market),
            api_key: api_key.clone(),
            market,
            subscriptions: args.massive.subscriptions_for(market),
            ping_every: Duration::from_secs(args.ping_secs.max(1)),
            dead_after: Duration::from_secs(args.dead_after_secs.max(2)),
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            start_idle: args.lease || !args.auto_start,
            rest_url: args.poll_when_closed.then(|| args.rest_url.clone()),
            closed_poll: Duration::from_secs(args.closed_poll_secs.max(1)),
            max_frame_bytes: args.max_frame_bytes.max(1024),
        };
        let (listener, health) = connection::start_with(
            cfg,
            args.shards.max(1),
            CountedRecipient::of(&publisher, publisher_metrics.clone()),
            recorder.clone(),
            &registry,
        );
        admin_state =
            admin_state.with_check(FnCheck::new(format!("massive:{market}"), move || {
                if health.fatal.load(Ordering::Relaxed) {
                    Err(format!(
                        "auth failed: {}",
                        health
                            .last_error
                            .lock()
                            .map(|e| e.clone())
                            .unwrap_or_default()
                    ))
                } else if !health.connected.load(Ordering::Relaxed) {
                    Err("not connected to Massive".into())
                } else if !health.authenticated.load(Ordering::Relaxed) {
                    Err("connected, not authenticated".into())
                } else {
                    Ok(())
                }
            }));
        let holder = if args.lease {
            let keeper = LeaseKeeper::new(
                LeaseConfig {
                    redis_url: args.redis_url.clone(),
                    key: lease_key(&args.redis_prefix, &api_key, market.path()),
                    holder: format!(
                        "{}-{}",
                        crate::config::hostname_or("listener"),
                        std::process::id()
                    ),
                    ttl: Duration::from_millis(args.lease_ttl_ms.max(1000)),
                    market: market.path().to_string(),
                },
                listener.clone().recipient(),
                &registry,
            )?;
            let holder = keeper.holder_handle();
            keeper.start();
            let r = registry.clone();
            admin_state =
                admin_state.with_check(FnCheck::new(format!("lease:{market}"), move || {
                    if r.value("tickwire_lease_held", &[("market", market.path())]) == Some(1) {
                        Ok(())
                    } else {
                        Err("standby: another replica holds the lease".into())
                    }
                }));
            Some(holder)
        } else {
            None
        };
        log::info!("listener for /{market}: {}", args.massive.ws_url(market));
        links.push(MarketLink {
            market,
            listener,
            holder,
        });
    }

    // The reference MDL /health body (operators' exporters read these fields), for the first
    // market; unhealthy (503) when RabbitMQ is down, or auto-start is on and a key was refused.
    let (health_links, r, auto_start) = (links.clone(), registry.clone(), args.auto_start);
    admin_state = admin_state.with_health(Arc::new(move || {
        let (links, r) = (health_links.clone(), r.clone());
        Box::pin(async move {
            let v = |name: &str, labels: &[(&str, &str)]| r.value(name, labels).unwrap_or(0);
            let broker_up = v("tickwire_publisher_connected", &[]) == 1;
            let mut fatal = false;
            let mut first = json!({});
            for (n, l) in links.iter().enumerate() {
                let d = l.listener.send(Describe).await.unwrap_or_else(|_| json!({}));
                fatal |= d["state"] == "auth_failed";
                if n == 0 {
                    first = d;
                }
            }
            let market = links.first().map_or("stocks", |l| l.market.path());
            let m = [("market", market)];
            let q = |queue: &str| v("tickwire_router_events_total", &[("queue", queue)]);
            let last = v("tickwire_listener_last_frame_ms", &m);
            let mut extra = serde_json::Map::new();
            extra.insert("auto-start".into(), json!(auto_start));
            extra.insert(
                "mdq_connection_status".into(),
                json!({
                    "connected": broker_up,
                    "last_message_time": if last > 0 { json!(last as f64 / 1000.0) } else { json!(null) },
                    "messages_received": v("tickwire_listener_frames_total", &m),
                    "trades": q("trades"), "aggregate": q("aggregate"), "quotes": q("quotes"),
                    "halts": q("halts"), "unknown": q("unknown"),
                    "unsupported_messages": v("tickwire_router_skipped_elements_total", &[]),
                    "reconnect_attempts": v("tickwire_publisher_connect_errors_total", &[]),
                }),
            );
            extra.insert(
                "mdl_connection_status".into(),
                json!({
                    "connected": first["state"] == "streaming" || first["state"] == "connected",
                    "healthy": first["state"] == "streaming",
                    "feed": first["feed"], "market": market,
                    "reconnects": v("tickwire_listener_reconnects_total", &m),
                    "subscriptions": first["subscriptions"],
                }),
            );
            (broker_up && !(auto_start && fatal), extra)
        })
    }));
    let info_links = links.clone();
    admin_state = admin_state.with_info(Arc::new(move || {
        let links = info_links.clone();
        Box::pin(async move {
            let mut node = serde_json::Map::new();
            for l in links {
                let mut v = l
                    .listener
                    .send(Describe)
                    .await
                    .unwrap_or_else(|e| json!({"error": e.to_string()}));
                v["lease_holder"] = match &l.holder {
                    Some(h) => json!(h.lock().map(|s| s.clone()).unwrap_or_default()),
                    None => json!(null),
                };
                node.insert(l.market.path().to_string(), v);
            }
            serde_json::Value::Object(node)
        })
    }));
    let admin_data = web::Data::new(admin_state);
    let listeners = links.iter().map(|l| l.listener.clone()).collect();
    let control_data = web::Data::new(ControlState {
        links,
        admin: admin_data.clone(),
        secure: args.massive.secure,
        lease: args.lease,
        registry: registry.clone(),
    });
    let http = NodeHttp::serve(http, move |cfg| {
        cfg.app_data(admin_data.clone())
            .app_data(control_data.clone())
            .app_data(web::PayloadConfig::new(1 << 20))
            .configure(admin::configure)
            .configure(configure_control);
    })?;
    log::info!("listener node: admin on port {port}");
    let id = crate::config::node_id("listener");
    let registrar =
        crate::actors::registrar::start(&args.node_registry, &id, "listener", port, &registry);
    Ok(ListenerNode {
        port,
        registry,
        listeners,
        http,
        registrar,
    })
}

/// Binds the port and runs until SIGINT/SIGTERM; what `tickwire-listener`'s main calls.
pub fn run(args: ListenerArgs) -> Result<(), NodeError> {
    let addr = (args.common.server_ip, args.port);
    crate::admin::run_node(
        addr,
        |http| start(args, http),
        |node| async move { node.stop().await },
    )
}
