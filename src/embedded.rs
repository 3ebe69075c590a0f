//! Embedded mode: the whole pipeline in one process with no broker and no Redis.
//!
//! simulator (or Massive, with `MASSIVE_API_KEY`) -> listener -> router -> processor pool ->
//! [`MemoryStore`] -> widget data service; beside it the simulator's news stream (or Finlight,
//! with `FINLIGHT_API_KEY`) -> news listener -> news processor -> the same store. The router hands its batches straight to the pool
//! (the `Recipient` the distributed listener gives its queue publisher), both the results and
//! the state store are one in-memory store, and the WDS hub subscribes to that store instead
//! of Redis, so the processors, enricher, leaderboard publisher and WDS run unchanged.
//!
//! One HTTP port serves everything a browser and an operator need: the control plane (login,
//! dashboard, APIs), the WDS WebSocket routes, the admin routes and the listener control
//! routes. The control plane reaches this node's admin routes like any other node's, over
//! HTTP with an admin token (made up per run when none is configured), so the operations
//! page works the same as in distributed mode. The simulator keeps its own port, as Massive
//! would be elsewhere.

use std::net::TcpListener;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix::Addr;
use clap::Parser;

use crate::actors::listener::connection::{self, Listener, ListenerConfig, Taps, MAX_FRAME_BYTES};
use crate::actors::listener::metrics::{ConnectionFigures, NewsFigures};
use crate::actors::listener::news::{self, NewsArgs, NewsListener};
use crate::actors::listener::widen::WidenArgs;
use crate::actors::listener::{configure_control, ControlState, MarketLink};
use crate::actors::processor::{start_pipeline, Pipeline, PipelineArgs};
use crate::actors::sim::{SimArgs, SimError, SimServer};
use crate::actors::store::memory_store::MemoryStore;
use crate::actors::wds::metrics::RelayFigures;
use crate::actors::wds::node::{WdsError, WdsSettings};
use crate::actors::wds::relay::hub::WantsTo;
use crate::actors::wds::relay::keys::KeySource;
use crate::actors::wds::relay::RelaySettings;
use crate::actors::wds::session;
use crate::admin::{self, NodeHttp};
use crate::config::node_id;
use crate::config::parse_subscriptions;
use crate::massive::Market;
use crate::metrics::Registry;
use crate::nodes::NodeRecord;
use crate::recipient::CountedRecipient;
use crate::revocation::Revoker;
use crate::scp::control::Directory;
use crate::scp::users::Bootstrap;
use crate::scp::{ScpSettings, ScpState};
use crate::store::Store;
use crate::token;

/// `tickwire` settings: the simulator's and the pipeline's.
#[derive(Parser, Debug, Clone)]
pub struct EmbeddedArgs {
    #[command(flatten)]
    pub sim: SimArgs,

    #[command(flatten)]
    pub pipeline: PipelineArgs,

    #[command(flatten)]
    pub wds: WdsSettings,

    #[command(flatten)]
    pub relay: RelaySettings,

    /// The listener widening its subscription to what relay clients ask for (off).
    #[command(flatten)]
    pub widen: WidenArgs,

    #[command(flatten)]
    pub scp: ScpSettings,

    #[command(flatten)]
    pub news: NewsArgs,

    /// Port of the dashboard, the APIs, the WDS WebSocket routes and the admin routes.
    #[arg(long = "http-port", env = "TICKWIRE_PORT", default_value_t = 8000)]
    pub http_port: u16,

    /// Address both of embedded mode's ports bind to (the dashboard's and the simulator's).
    /// Loopback unless you mean it: the simulator takes the key `demo`, and the admin routes
    /// share the dashboard's port. `SERVER_IP` is not used in embedded mode.
    #[arg(long = "bind", env = "TICKWIRE_BIND", default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,

    /// Shards (processors).
    #[arg(long, env = "QUEUE_SHARDS", default_value_t = 4)]
    pub shards: u16,

    /// What the listener subscribes to.
    #[arg(
        long,
        env = "EMBEDDED_SUBSCRIPTIONS",
        default_value = "A.*,T.*,Q.*,LULD.*"
    )]
    pub subscriptions: String,
}

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(transparent)]
    Sim(#[from] SimError),
    #[error("subscriptions: {0}")]
    Subscriptions(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Wds(#[from] WdsError),
    #[error(transparent)]
    Users(#[from] crate::scp::users::UsersError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    WeakSecret(#[from] crate::token::WeakSecret),
}

/// A running embedded pipeline.
pub struct Embedded {
    /// The simulator, unless connected to real Massive.
    pub sim: Option<SimServer>,
    pub store: Store,
    pub store_addr: Addr<MemoryStore>,
    pub registry: Arc<Registry>,
    pub listener: Addr<Listener>,
    /// The news listener: Finlight with `FINLIGHT_API_KEY`, else the simulator's news; none
    /// when connected to real Massive without a Finlight key.
    pub news: Option<Addr<NewsListener>>,
    pub pipeline: Pipeline,
    /// The control plane, the widget data service and the admin routes.
    pub http: NodeHttp,
    /// What the control plane did about the admin user on this start.
    pub bootstrap: Bootstrap,
}

/// Embedded mode's own defaults for simulator settings left unset: a market clock 60 times
/// real time from 09:00 ET, so pre-market, the open and after-hours all show within minutes.
pub fn fast_market_defaults(args: &mut EmbeddedArgs, matches: &clap::ArgMatches) {
    let unset = |id: &str| {
        matches!(
            matches.value_source(id),
            None | Some(clap::parser::ValueSource::DefaultValue)
        )
    };
    if unset("speed") {
        args.sim.speed = 60.0;
    }
    if unset("start_time") {
        args.sim.start_time = "09:00:00".into();
    }
}

/// Where the listener connects: the built-in simulator on `sim_http`, or real Massive when a
/// key is set (flag, MASSIVE_API_KEY or POLYGON_API_KEY). Points the pipeline's REST at the
/// same place. Returns the simulator (if started), the feed URL and the key.
fn feed(
    args: &mut EmbeddedArgs,
    sim_http: TcpListener,
) -> Result<(Option<SimServer>, String, String), EmbeddedError> {
    let real_key = args.pipeline.key.resolve();
    if !real_key.is_empty() {
        drop(sim_http);
        return Ok((None, "wss://socket.massive.com/stocks".into(), real_key));
    }
    let sim = crate::actors::sim::start(args.sim.clone(), sim_http, false)?;
    let key = args
        .sim
        .api_keys
        .0
        .first()
        .map_or_else(|| "demo".to_string(), |k| k.key.clone());
    args.pipeline.rest_url = sim.http_url("");
    args.pipeline.key.api_key = key.clone();
    let url = sim.ws_url("stocks");
    Ok((Some(sim), url, key))
}

/// The one stocks connection of embedded mode.
fn listener_config(
    url: String,
    api_key: String,
    subscriptions: &str,
) -> Result<ListenerConfig, EmbeddedError> {
    Ok(ListenerConfig {
        url,
        api_key,
        market: Market::Stocks,
        subscriptions: parse_subscriptions(subscriptions)
            .map_err(EmbeddedError::Subscriptions)?
            .0,
        ping_every: Duration::from_secs(25),
        dead_after: Duration::from_secs(60),
        max_connections_cooldown: crate::actors::listener::connection::MAX_CONNECTIONS_COOLDOWN,
        backoff_initial: Duration::from_millis(500),
        backoff_max: Duration::from_secs(30),
        start_idle: false,
        rest_url: None,
        closed_poll: Duration::from_secs(60),
        max_frame_bytes: MAX_FRAME_BYTES,
        widen: None,
    })
}

/// The news listener, feeding the pipeline's news processor: Finlight itself when a key is
/// set, else the built-in simulator's news stream, else none.
fn start_news(
    args: &NewsArgs,
    sim: Option<&SimServer>,
    sim_keys: &[String],
    pipeline: &Pipeline,
    registry: &Arc<Registry>,
) -> Option<Addr<NewsListener>> {
    let (url, key) = if !args.api_key.is_empty() {
        (args.url.clone(), args.api_key.clone())
    } else if let Some(sim) = sim {
        let key = sim_keys.first().cloned().unwrap_or_else(|| "demo".into());
        (sim.ws_url("finlight"), key)
    } else {
        log::info!("no FINLIGHT_API_KEY: no news");
        return None;
    };
    let figures = NewsFigures::register(registry, &[]);
    let (addr, _) = news::start(args.config(&url, &key), pipeline.news_input(), figures);
    Some(addr)
}

/// Starts the simulator on `sim_http` (unless a Massive key is set), the pipeline, and the
/// control plane, WDS and admin routes on `http`.
pub fn start(
    mut args: EmbeddedArgs,
    sim_http: TcpListener,
    http: TcpListener,
) -> Result<Embedded, EmbeddedError> {
    if args.scp.sessions == crate::scp::SessionsIn::Redis {
        return Err(EmbeddedError::Config(
            "SCP_SESSIONS=redis: embedded mode has no Redis; its sessions stay in memory".into(),
        ));
    }
    if args.widen.enabled && !args.relay.enabled {
        return Err(EmbeddedError::Config(
            "LISTENER_RELAY_WIDEN widens for relay clients: RELAY_ENABLED is off".into(),
        ));
    }
    crate::token::check_secret("WDS_TOKEN_SECRET", &args.wds.token_secret)?;
    args.sim.common.check_secrets()?;
    let registry = Registry::new();
    let (sim, url, key) = feed(&mut args, sim_http)?;
    let (store_addr, store) = MemoryStore::start_store(&registry);
    let shards = args.shards.max(1);
    let pipeline = start_pipeline(
        &args.pipeline,
        shards,
        &node_id("tickwire"),
        &store,
        &store,
        &registry,
    );
    // The feed's scheme, for `PUT /control/feed` (host only) to keep it; the feeds it may
    // name: Massive's and the one configured (the built-in simulator's, say).
    let secure = !url.starts_with("ws://");
    let configured = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
    let allowed_feeds: Vec<String> = crate::config::MASSIVE_FEEDS
        .split(',')
        .map(str::to_string)
        .chain(configured.split('/').next().map(str::to_string))
        .collect();
    let mut cfg = listener_config(url, key, &args.subscriptions)?;
    cfg.widen = args.widen.config();
    let out = pipeline.input();
    // The relay hears the router in process; its keys are the control plane's, read in
    // process too once it exists (below).
    let scp_keys: Arc<OnceLock<actix_web::web::Data<ScpState>>> = Arc::new(OnceLock::new());
    let relay = args.relay.enabled.then(|| {
        let k = scp_keys.clone();
        let source = KeySource::Local(Arc::new(move || {
            k.get().map(|s| s.keys.relay_keys()).unwrap_or_default()
        }));
        let figures = RelayFigures::register(&registry, &[]);
        crate::actors::wds::relay::start(&args.relay, source, figures)
    });
    let taps = Taps {
        recorder: None,
        relay: relay
            .as_ref()
            .map(|r| CountedRecipient::of(&r.hub, r.figures.actor.clone())),
    };
    let (listener, health) = connection::start_with(cfg, shards, out, taps, &registry);
    // Widening: the hub tells the listener what its clients hold, in process.
    if let Some(r) = relay.as_ref().filter(|_| args.widen.enabled) {
        r.hub.do_send(WantsTo(listener.clone().recipient()));
    }
    let news = start_news(
        &args.news,
        sim.as_ref(),
        &args.sim.finlight_keys,
        &pipeline,
        &registry,
    );

    // With no secret or admin token configured, they are made up for this run: only this
    // process signs and checks them.
    if args.wds.token_secret.is_empty() {
        args.wds.token_secret = token::random_hex()?;
    }
    if args.sim.common.admin_token.is_empty() {
        args.sim.common.admin_token = token::random_hex()?;
    }
    let port = http.local_addr()?.port();
    let wds =
        crate::actors::wds::node::start_embedded(&args.wds, store.clone(), &store_addr, &registry)?;
    let admin_data = actix_web::web::Data::new(crate::actors::wds::status::admin_state(
        &args.sim.common,
        &registry,
        &wds,
    ));
    let link = MarketLink {
        market: Market::Stocks,
        listener: listener.clone(),
        health,
        connection: ConnectionFigures::for_market(&registry, Market::Stocks),
        lease: None,
    };
    let control = ControlState::single(link, admin_data.clone(), secure, allowed_feeds);
    let control = actix_web::web::Data::new(control);
    let me = NodeRecord::new("embedded", "embedded", &format!("http://127.0.0.1:{port}"));
    let (mut scp, bootstrap) = ScpState::new(
        args.scp.clone(),
        &args.wds.token_secret,
        Directory::Static(vec![me]),
        &args.sim.common.admin_token,
        &registry,
    )?;
    // A logout here revokes straight into the WDS's list: no Redis in between.
    scp.revoker = Some(Arc::new(Revoker::Memory(wds.revoked.clone())));
    // Chart history from the same REST as the pipeline's (the simulator's, or Massive).
    let key = args.pipeline.key.resolve();
    scp.bars
        .set_source((!key.is_empty()).then(|| crate::scp::bars::BarsSource {
            rest_url: args.pipeline.rest_url.clone(),
            api_key: key,
        }));
    let scp = actix_web::web::Data::new(scp);
    let _ = scp_keys.set(scp.clone());
    let write_timeout = Some(Duration::from_secs(args.wds.write_timeout_secs.max(1)));
    let http = NodeHttp::serve_clients(http, 2, write_timeout, move |cfg| {
        cfg.app_data(admin_data.clone())
            .app_data(wds.clone())
            .app_data(control.clone())
            .app_data(scp.clone())
            .configure(admin::configure)
            .configure(session::configure)
            .configure(|cfg| {
                if let Some(r) = &relay {
                    cfg.app_data(r.clone())
                        .configure(crate::actors::wds::relay::session::configure);
                }
            })
            .configure(configure_control)
            .configure(crate::scp::configure);
    })?;
    Ok(Embedded {
        sim,
        store,
        store_addr,
        registry,
        listener,
        news,
        pipeline,
        http,
        bootstrap,
    })
}
