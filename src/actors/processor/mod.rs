//! The processor node (`tickwire-processor`) and the processing pipeline it shares with
//! embedded mode.
//!
//! [`start_pipeline`] wires the parts both modes have: the processor pool (one processor per
//! shard), the enricher, the market-status poller and the elected leaderboard publisher, all
//! talking to a results store and a state store given as [`Store`] handles. [`start`] adds
//! what only the distributed node has: Redis cache writers, the RabbitMQ consumer, the shard
//! manager, and admin HTTP.

pub mod board_publisher;
pub mod consumer;
pub mod enricher;
pub mod market_status;
pub mod metrics;
pub mod pool;
pub mod shard;
pub mod shard_manager;
pub mod status;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use actix_web::web;
use clap::Parser;
use serde_json::json;

use crate::actors::store::cache_writer::{CacheWriter, CacheWriterConfig, CacheWriterError};
use crate::actors::store::metrics::CacheWriterFigures;
use crate::admin::{self, AdminState, NodeHttp};
use crate::analyzers::raw_routes::RawRoutes;
use crate::analyzers::shard::ShardConfig;
use crate::config::{node_id, BrokerArgs, CommonArgs};
use crate::metrics::Registry;
use crate::queue::EventBatch;
use crate::recipient::CountedRecipient;
use crate::store::Store;
use board_publisher::{BoardPublisher, BoardPublisherConfig};
use consumer::{ConsumerConfig, QueueConsumer};
use enricher::{Enricher, EnricherConfig};
use market_status::MarketStatus;
use metrics::{
    BoardFigures, ConsumerFigures, EnricherFigures, MarketStatusFigures, PoolFigures,
    ProcessorFigures, ShardFigures, ShardManagerFigures,
};
use pool::ProcessorPool;
use shard::{ProcessorConfig, ShardHandle};
use shard_manager::{ShardManager, ShardManagerConfig};

/// `tickwire-processor` settings.
#[derive(Parser, Debug, Clone)]
pub struct ProcessorArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Admin HTTP port.
    #[arg(long, env = "SERVER_PORT", default_value_t = 4201)]
    pub port: u16,

    #[command(flatten)]
    pub node_registry: crate::config::NodeRegistryArgs,

    #[command(flatten)]
    pub broker: BrokerArgs,

    #[command(flatten)]
    pub pipeline: PipelineArgs,

    /// Shard queues per type; must match the listener's.
    #[arg(long, env = "QUEUE_SHARDS", default_value_t = 4)]
    pub shards: u16,

    /// Prefix of the queue names; must match the listener's.
    #[arg(long, env = "QUEUE_PREFIX", default_value = "")]
    pub queue_prefix: String,

    /// Unacked messages per queue (AMQP basic.qos).
    #[arg(long, env = "PREFETCH_COUNT", default_value_t = 64)]
    pub prefetch: u16,

    /// Redis for analyzer state: checkpoints, candidates, enrichment cache, leases.
    #[arg(
        long,
        env = "MDC_REDIS_URL",
        default_value = "redis://127.0.0.1:6379/0"
    )]
    pub mdc_redis_url: String,

    /// Redis for client-facing results and pub/sub.
    #[command(flatten)]
    pub wdc: crate::config::WdcArgs,

    /// Shard lease TTL (ms): how soon the other nodes take over a dead node's shards.
    #[arg(long, env = "SHARD_LEASE_TTL_MS", default_value_t = 6000)]
    pub shard_lease_ttl_ms: u64,

    /// Processor pool size: at most this many shards on this node (0: its fair share).
    /// Changeable at run time with `PUT /control/pool`.
    #[arg(long, env = "PROCESSOR_MAX_SHARDS", default_value_t = 0)]
    pub max_shards: u16,
}

/// Settings of the processing pipeline (both modes).
#[derive(clap::Args, Debug, Clone)]
pub struct PipelineArgs {
    /// Threads (arbiters) the processors are spread over; 0 = one per CPU.
    #[arg(long, env = "PROCESSOR_THREADS", default_value_t = 0)]
    pub threads: usize,

    /// Raw routes: comma list of quotes, luld, agg, trades, unknown (or none); the
    /// dashboard's chart reads `agg`.
    #[arg(
        long,
        env = "PROCESSOR_RAW_ROUTES",
        default_value = "quotes,luld,agg,unknown"
    )]
    pub raw_routes: RawRoutes,

    /// Top-trades statistics (tta:*:widget).
    #[arg(long, env = "PROCESSOR_TOP_TRADES", default_value = "false",
          action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub top_trades: bool,

    /// HOD/LOD alerts kept per list.
    #[arg(long, env = "DRA_CACHE_LIST_MAX", default_value_t = 1000)]
    pub alert_cap: usize,

    /// Prefix of every client-facing key and channel (empty: the reference's names).
    #[arg(long, env = "WDC_KEY_PREFIX", default_value = "")]
    pub results_prefix: String,

    /// Prefix of internal keys (checkpoints, leases, enrichment cache).
    #[arg(long, env = "REDIS_KEY_PREFIX", default_value = "tickwire:")]
    pub state_prefix: String,

    /// Seconds between checkpoints of a shard's state (when it changed).
    #[arg(long, env = "PROCESSOR_CHECKPOINT_SECS", default_value_t = 1)]
    pub checkpoint_secs: u64,

    /// REST enrichment (previous day, average volume, free float).
    #[arg(long, env = "PROCESSOR_ENRICHMENT", default_value = "true",
          action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub enrichment: bool,

    /// Tickers enriched at once per node.
    #[arg(long, env = "ENRICH_CONCURRENCY", default_value_t = 8)]
    pub enrich_concurrency: usize,

    /// Massive REST base URL (enrichment and market status).
    #[arg(
        long,
        env = "MASSIVE_REST_URL",
        default_value = "https://api.massive.com"
    )]
    pub rest_url: String,

    /// Massive API key for REST.
    #[command(flatten)]
    pub key: crate::config::ApiKeyArgs,

    /// Seconds between market status polls (trading calendar); 0 turns polling off.
    #[arg(long, env = "MARKET_STATUS_POLL_SECS", default_value_t = 30)]
    pub status_poll_secs: u64,
}

/// The running pipeline.
pub struct Pipeline {
    pub pool: Addr<ProcessorPool>,
    /// Every shard's processor, in shard order.
    pub shards: Vec<ShardHandle>,
    pool_figures: PoolFigures,
    pub boards: Addr<BoardPublisher>,
    pub board_figures: BoardFigures,
}

impl Pipeline {
    /// Where a router sends batches in embedded mode: the pool, which routes them by shard.
    pub fn input(&self) -> CountedRecipient<EventBatch> {
        CountedRecipient::of(&self.pool, self.pool_figures.actor.clone())
    }

    /// Each shard's figures, in shard order.
    pub fn shard_figures(&self, registry: &Registry) -> Vec<ShardFigures> {
        (0..self.shards.len() as u16)
            .map(|s| ShardFigures::for_shard(registry, s).1)
            .collect()
    }
}

impl PipelineArgs {
    fn enricher(&self, api_key: &str, holder: &str) -> EnricherConfig {
        EnricherConfig {
            rest_url: self.rest_url.clone(),
            api_key: api_key.to_string(),
            prefix: self.state_prefix.clone(),
            concurrency: self.enrich_concurrency.max(1),
            holder: holder.to_string(),
            lock_ttl: Duration::from_secs(30),
            retries: 3,
            failure_memo: Duration::from_secs(60),
        }
    }

    fn shard(&self, shard: u16) -> ProcessorConfig {
        ProcessorConfig {
            shard,
            analyzers: ShardConfig {
                results_prefix: self.results_prefix.clone(),
                raw: self.raw_routes,
                top_trades: self.top_trades,
                alert_cap: self.alert_cap.max(1),
            },
            state_prefix: self.state_prefix.clone(),
            checkpoint_every: Duration::from_secs(self.checkpoint_secs.max(1)),
        }
    }

    fn boards(&self, shards: u16, holder: &str) -> BoardPublisherConfig {
        BoardPublisherConfig {
            shards,
            state_prefix: self.state_prefix.clone(),
            results_prefix: self.results_prefix.clone(),
            holder: holder.to_string(),
            every: Duration::from_secs(1),
            top_trades: self.top_trades,
        }
    }

    fn threads(&self) -> usize {
        if self.threads == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            self.threads
        }
    }
}

/// Starts processors for `shards` shards plus the enricher, market status and the
/// leaderboard publisher, on the given stores.
pub fn start_pipeline(
    args: &PipelineArgs,
    shards: u16,
    holder: &str,
    results_store: &Store,
    state_store: &Store,
    registry: &Arc<Registry>,
) -> Pipeline {
    let shards = shards.max(1);
    let api_key = args.key.resolve();
    if args.enrichment && api_key.is_empty() {
        log::warn!("no Massive API key: REST enrichment is off");
    }
    let enricher = (args.enrichment && !api_key.is_empty()).then(|| {
        let f = EnricherFigures::register(registry, &[]);
        let e = Enricher::new(
            args.enricher(&api_key, holder),
            state_store.clone(),
            f.clone(),
        );
        // Counted, so the enricher's backlog shows as its mailbox depth.
        CountedRecipient::of(&e.start(), f.actor)
    });
    let configs = (0..shards).map(|s| args.shard(s)).collect();
    let pool = ProcessorPool::new(
        configs,
        args.threads(),
        results_store,
        state_store,
        enricher,
        registry,
    );
    let (shard_handles, pool_figures) = (pool.shards(), pool.figures());
    let pool = pool.start();
    if args.status_poll_secs > 0 && !api_key.is_empty() {
        let every = Duration::from_secs(args.status_poll_secs);
        let f = MarketStatusFigures::register(registry, &[]);
        MarketStatus::new(&args.rest_url, &api_key, every, pool.clone().recipient(), f).start();
    }
    let board_figures = BoardFigures::register(registry, &[]);
    let boards = BoardPublisher::new(
        args.boards(shards, holder),
        results_store.clone(),
        state_store.clone(),
        board_figures.clone(),
    )
    .start();
    Pipeline {
        pool,
        shards: shard_handles,
        pool_figures,
        boards,
        board_figures,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessorNodeError {
    #[error(transparent)]
    Redis(#[from] CacheWriterError),
    #[error("admin HTTP: {0}")]
    Io(#[from] std::io::Error),
}

/// A running processor node.
pub struct ProcessorNode {
    pub port: u16,
    pub registry: Arc<Registry>,
    pub id: String,
    http: NodeHttp,
    shard_manager: Addr<ShardManager>,
    boards: Addr<BoardPublisher>,
    registrar: Option<Addr<crate::actors::registrar::Registrar>>,
}

impl ProcessorNode {
    pub fn url(&self, path: &str) -> String {
        self.http.url(path)
    }

    pub async fn wait(self) -> std::io::Result<()> {
        self.http.wait().await
    }

    /// Stops serving and hands its shards over (leases released at once).
    pub async fn stop(self) {
        crate::actors::registrar::deregister(&self.registrar).await;
        let _ = self.shard_manager.send(shard_manager::Stop).await;
        let _ = self.boards.send(board_publisher::Stop).await;
        self.http.stop().await;
    }
}

/// Starts a distributed processor node serving admin HTTP on `http`: the two Redis
/// writers, the pipeline, the queue consumer and the shard manager that tells it which
/// shards to consume.
pub fn start(args: ProcessorArgs, http: TcpListener) -> Result<ProcessorNode, ProcessorNodeError> {
    let registry = Registry::new();
    let port = http.local_addr()?.port();
    let id = node_id("processor");
    let timing = crate::store::timing_channel(&args.pipeline.results_prefix);
    let results_cfg = CacheWriterConfig::new(&args.wdc.url, "results").with_timing_channel(timing);
    let (_, results_store) = CacheWriter::start_store(results_cfg, &registry)?;
    let state_cfg = CacheWriterConfig::new(&args.mdc_redis_url, "state");
    let (_, state_store) = CacheWriter::start_store(state_cfg, &registry)?;
    let shards = args.shards.max(1);
    let pipeline = start_pipeline(
        &args.pipeline,
        shards,
        &id,
        &results_store,
        &state_store,
        &registry,
    );

    let consumer_figures = ConsumerFigures::register(&registry, &[]);
    let consumer = QueueConsumer::new(
        ConsumerConfig {
            url: args.broker.rabbitmq_url.clone(),
            queue_prefix: args.queue_prefix.clone(),
            shards,
            message_ttl_ms: args.broker.message_ttl_ms,
            prefetch: args.prefetch.max(1),
        },
        pipeline.shards.clone(),
        consumer_figures.clone(),
    )
    .start();
    let manager_figures = ShardManagerFigures::register(&registry, &[]);
    let manager = ShardManager::new(
        ShardManagerConfig {
            shards,
            holder: id.clone(),
            state_prefix: args.pipeline.state_prefix.clone(),
            lease_ttl: Duration::from_millis(args.shard_lease_ttl_ms.max(900)),
            max_shards: (args.max_shards > 0).then_some(args.max_shards),
        },
        state_store.clone(),
        consumer.recipient(),
        pipeline.shards.iter().map(|s| s.flush.clone()).collect(),
        manager_figures.clone(),
    );
    let figures = ProcessorFigures {
        consumer: consumer_figures,
        shards: pipeline.shard_figures(&registry),
        manager: manager_figures,
        boards: pipeline.board_figures.clone(),
        held: manager.held_view(),
        results_store: CacheWriterFigures::for_store(&registry, "results").1,
        state_store: CacheWriterFigures::for_store(&registry, "state").1,
    };
    let shard_manager = manager.start();

    let admin = AdminState::new("Market Data Processor", registry.clone()).with_identity(
        &args.common.container_image,
        &args.common.image_version,
        &args.common.admin_token,
    );
    let report = status::Report {
        id: id.clone(),
        prefetch: args.prefetch,
        shards,
    };
    let admin_data = web::Data::new(status::report(admin, figures, report));
    let pool_control = web::Data::new(shard_manager.clone());
    let http = NodeHttp::serve(http, move |cfg| {
        cfg.app_data(admin_data.clone())
            .app_data(pool_control.clone())
            .configure(admin::configure)
            .route("/control/pool", web::put().to(set_pool));
    })?;
    log::info!("processor node {id}: {shards} shards, admin on port {port}");
    let registrar =
        crate::actors::registrar::start(&args.node_registry, &id, "processor", port, &registry);
    Ok(ProcessorNode {
        port,
        registry,
        id,
        http,
        shard_manager,
        boards: pipeline.boards.clone(),
        registrar,
    })
}

/// Sets the processor pool size (admin token required).
async fn set_pool(
    req: actix_web::HttpRequest,
    admin: web::Data<AdminState>,
    manager: web::Data<Addr<ShardManager>>,
    body: web::Bytes,
) -> actix_web::HttpResponse {
    if let Err(e) = admin.authorize(&req) {
        return actix_web::ResponseError::error_response(&e);
    }
    let max = match crate::nodes::parse_pool_body(&body) {
        Ok(max) => max,
        Err(e) => {
            return actix_web::HttpResponse::BadRequest()
                .json(json!({"status": "ERROR", "error": e}))
        }
    };
    manager.do_send(shard_manager::SetMaxShards(max));
    actix_web::HttpResponse::Ok().json(json!({"status": "OK", "max_shards": max}))
}

/// Binds the port and runs until SIGINT/SIGTERM; what `tickwire-processor`'s main calls.
pub fn run(args: ProcessorArgs) -> Result<(), ProcessorNodeError> {
    let addr = (args.common.server_ip, args.port);
    crate::admin::run_node(
        addr,
        |http| start(args, http),
        |node| async move { node.stop().await },
    )
}
