//! Embedded mode: the whole pipeline in one process with no broker and no Redis.
//!
//! simulator (or Massive, with `MASSIVE_API_KEY`) -> listener -> router -> processor pool ->
//! [`MemoryStore`]. The router hands its batches straight to the pool (the `Recipient` the
//! distributed listener gives its queue publisher), and both the results and the state store
//! are one in-memory store, so the processors, enricher and leaderboard publisher run
//! unchanged.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use clap::Parser;

use crate::actors::listener::{self, Listener, ListenerConfig, MAX_FRAME_BYTES};
use crate::actors::memory_store::MemoryStore;
use crate::actors::Mailbox;
use crate::config::parse_subscriptions;
use crate::massive::Market;
use crate::metrics::Registry;
use crate::processor::node::{node_id, start_pipeline, Pipeline, PipelineArgs};
use crate::sim::{SimArgs, SimError, SimServer};
use crate::store::Store;

/// `tickwire` settings: the simulator's and the pipeline's.
#[derive(Parser, Debug, Clone)]
pub struct EmbeddedArgs {
    #[command(flatten)]
    pub sim: SimArgs,

    #[command(flatten)]
    pub pipeline: PipelineArgs,

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
}

/// Starts the simulator on `sim_http` (unless a Massive key is set) and the pipeline.
pub fn start(mut args: EmbeddedArgs, sim_http: TcpListener) -> Result<Embedded, EmbeddedError> {
    let registry = Registry::new();
    // A Massive key (flag, MASSIVE_API_KEY or POLYGON_API_KEY) means real Massive.
    let real_key = args.pipeline.api_key();
    let (sim, url, key) = if real_key.is_empty() {
        let sim = crate::sim::start(args.sim.clone(), sim_http, false)?;
        let key = args
            .sim
            .api_keys
            .0
            .first()
            .map_or_else(|| "demo".to_string(), |k| k.key.clone());
        args.pipeline.rest_url = sim.http_url("");
        args.pipeline.api_key = key.clone();
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
    Ok(Embedded {
        sim,
        store,
        store_addr,
        registry,
        listener,
        pipeline,
    })
}
