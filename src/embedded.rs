//! Embedded mode: the whole pipeline in one process with no broker and no Redis.
//!
//! simulator (or Massive, with `MASSIVE_API_KEY`) -> listener -> router -> processor pool ->
//! [`MemoryStore`] -> widget data service. The router hands its batches straight to the pool
//! (the `Recipient` the distributed listener gives its queue publisher), both the results and
//! the state store are one in-memory store, and the WDS hub subscribes to that store instead
//! of Redis, so the processors, enricher, leaderboard publisher and WDS run unchanged.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use clap::Parser;

use crate::actors::listener::{self, Listener, ListenerConfig, MAX_FRAME_BYTES};
use crate::actors::memory_store::MemoryStore;
use crate::actors::{ws_session, Mailbox};
use crate::admin::{self, NodeHttp};
use crate::config::parse_subscriptions;
use crate::massive::Market;
use crate::metrics::Registry;
use crate::processor::node::{node_id, start_pipeline, Pipeline, PipelineArgs};
use crate::sim::{SimArgs, SimError, SimServer};
use crate::store::Store;
use crate::token::{self, Claims};
use crate::wds::node::{WdsError, WdsSettings};

/// `tickwire` settings: the simulator's and the pipeline's.
#[derive(Parser, Debug, Clone)]
pub struct EmbeddedArgs {
    #[command(flatten)]
    pub sim: SimArgs,

    #[command(flatten)]
    pub pipeline: PipelineArgs,

    #[command(flatten)]
    pub wds: WdsSettings,

    /// Port of the widget data service (WebSocket `/ws`, `/ws/v2`) and the admin routes.
    #[arg(long = "wds-port", env = "WDS_PORT", default_value_t = 4202)]
    pub wds_port: u16,

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
    #[error(transparent)]
    Wds(#[from] WdsError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A running embedded pipeline.
pub struct Embedded {
    /// The simulator, unless connected to real Massive.
    pub sim: Option<SimServer>,
    pub store: Store,
    pub store_addr: Addr<MemoryStore>,
    pub registry: Arc<Registry>,
    pub listener: Addr<Listener>,
    pub pipeline: Pipeline,
    /// The widget data service and the admin routes.
    pub http: NodeHttp,
    /// A token for the WDS when the secret was generated at start (no control plane yet).
    pub dev_token: Option<String>,
}

/// 32 random bytes as hex, from the OS.
fn random_secret() -> std::io::Result<String> {
    use std::io::Read;
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Starts the simulator on `sim_http` (unless a Massive key is set), the pipeline, and the
/// WDS with the admin routes on `wds_http`.
pub fn start(
    mut args: EmbeddedArgs,
    sim_http: TcpListener,
    wds_http: TcpListener,
) -> Result<Embedded, EmbeddedError> {
    let registry = Registry::new();
    // A Massive key (flag, MASSIVE_API_KEY or POLYGON_API_KEY) means real Massive.
    let real_key = args.pipeline.key.resolve();
    let (sim, url, key) = if real_key.is_empty() {
        let sim = crate::sim::start(args.sim.clone(), sim_http, false)?;
        let key = args
            .sim
            .api_keys
            .0
            .first()
            .map_or_else(|| "demo".to_string(), |k| k.key.clone());
        args.pipeline.rest_url = sim.http_url("");
        args.pipeline.key.api_key = key.clone();
        let url = sim.ws_url("stocks");
        (Some(sim), url, key)
    } else {
        drop(sim_http);
        (
            None,
            "wss://socket.massive.com/stocks".to_string(),
            real_key,
        )
    };
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
    let subscriptions = parse_subscriptions(&args.subscriptions)
        .map_err(EmbeddedError::Subscriptions)?
        .0;
    let cfg = ListenerConfig {
        url,
        api_key: key,
        market: Market::Stocks,
        subscriptions,
        ping_every: Duration::from_secs(25),
        dead_after: Duration::from_secs(60),
        backoff_initial: Duration::from_millis(500),
        backoff_max: Duration::from_secs(30),
        start_idle: false,
        rest_url: None,
        closed_poll: Duration::from_secs(60),
        max_frame_bytes: MAX_FRAME_BYTES,
    };
    let out = Mailbox::of(&pipeline.pool, pipeline.pool_metrics.clone());
    let (listener, _) = listener::start(cfg, shards, out, &registry);

    // With no secret configured, one is made up for this run and a token printed for it.
    let mut dev_token = None;
    if args.wds.auth_enabled && args.wds.token_secret.is_empty() {
        args.wds.token_secret = random_secret()?;
        let topics = crate::wds::topic_list(&args.wds.allowed_topics);
        let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
        let claims = Claims::new("dev", &["viewer"], &topics, token::now_secs(), 86_400);
        dev_token = token::sign(&claims, args.wds.token_secret.as_bytes()).ok();
    }
    let wds = crate::wds::node::start_embedded(&args.wds, store.clone(), &store_addr, &registry)?;
    let admin_data = actix_web::web::Data::new(crate::wds::node::admin_state(
        &args.sim.common,
        &registry,
        &wds,
    ));
    let http = NodeHttp::serve_with_workers(wds_http, 2, move |cfg| {
        cfg.app_data(admin_data.clone())
            .app_data(wds.clone())
            .configure(admin::configure)
            .configure(ws_session::configure);
    })?;
    Ok(Embedded {
        sim,
        store,
        store_addr,
        registry,
        listener,
        pipeline,
        http,
        dev_token,
    })
}
