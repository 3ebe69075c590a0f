//! The processor node's flags and wiring (`tickwire-processor`): the two Redis writers, the
//! pipeline, the queue consumer and the shard manager that tells it which shards to consume;
//! admin HTTP with `PUT /control/pool`.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use actix_web::web;
use clap::Parser;
use serde_json::json;

use super::board_publisher::{self, BoardPublisher};
use super::consumer::{ConsumerConfig, QueueConsumer};
use super::metrics::{ConsumerFigures, ProcessorFigures, ShardManagerFigures};
use super::news_consumer::{NewsConsumer, NewsConsumerConfig};
use super::pipeline::{start_pipeline, PipelineArgs};
use super::shard_manager::{self, ShardManager, ShardManagerConfig};
use crate::actors::store::cache_writer::{
    CacheWriter, CacheWriterConfig, CacheWriterError, IsIdle,
};
use crate::actors::store::metrics::CacheWriterFigures;
use crate::admin::{self, AdminState, NodeHttp};
use crate::config::{node_id, BrokerArgs, CommonArgs};
use crate::metrics::Registry;

/// How long a stopping processor waits for its results to reach Redis.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

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

    /// Shard lease TTL (ms): how soon the other nodes take over a dead node's shards. A dead
    /// node's shards are taken within 4/3 of it (the lease lapses, then the next check, every
    /// TTL/3), which must stay inside the queue message TTL or what waits meanwhile expires.
    #[arg(long, env = "SHARD_LEASE_TTL_MS", default_value_t = 3000)]
    pub shard_lease_ttl_ms: u64,

    /// Processor pool size: at most this many shards on this node (0: its fair share).
    /// Changeable at run time with `PUT /control/pool`.
    #[arg(long, env = "PROCESSOR_MAX_SHARDS", default_value_t = 0)]
    pub max_shards: u16,
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessorNodeError {
    #[error(transparent)]
    Redis(#[from] CacheWriterError),
    #[error("admin HTTP: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    WeakSecret(#[from] crate::token::WeakSecret),
}

/// A running processor node.
pub struct ProcessorNode {
    pub port: u16,
    pub registry: Arc<Registry>,
    pub id: String,
    http: NodeHttp,
    shard_manager: Addr<ShardManager>,
    boards: Addr<BoardPublisher>,
    /// The results and state writers, drained on a clean stop.
    writers: Vec<Addr<CacheWriter>>,
    registrar: Option<Addr<crate::actors::registrar::Registrar>>,
}

impl ProcessorNode {
    pub fn url(&self, path: &str) -> String {
        self.http.url(path)
    }

    pub async fn wait(self) -> std::io::Result<()> {
        self.http.wait().await
    }

    /// A clean stop: its queues released (unacked messages go back to RabbitMQ for the next
    /// owner), each held shard checkpointed and its lease released at once, then every
    /// result computed so far written to Redis (at most [`STOP_GRACE`]; what is still
    /// waiting then is counted as dropped by the writer), and only then the HTTP server.
    pub async fn stop(self) {
        crate::actors::registrar::deregister(&self.registrar).await;
        let _ = self.shard_manager.send(shard_manager::Stop).await;
        let _ = self.boards.send(board_publisher::Stop).await;
        let deadline = std::time::Instant::now() + STOP_GRACE;
        for w in &self.writers {
            while !w.send(IsIdle).await.unwrap_or(true) {
                if std::time::Instant::now() >= deadline {
                    log::warn!("stopping with results not yet written to Redis: lost");
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        self.http.stop().await;
    }
}

/// Starts a distributed processor node serving admin HTTP on `http`: the two Redis
/// writers, the pipeline, the queue consumer and the shard manager that tells it which
/// shards to consume.
pub fn start(args: ProcessorArgs, http: TcpListener) -> Result<ProcessorNode, ProcessorNodeError> {
    args.common.check_secrets()?;
    let handover_ms = args.shard_lease_ttl_ms.max(900) * 4 / 3;
    if handover_ms >= u64::from(args.broker.message_ttl_ms) {
        log::warn!(
            "a dead node's shards are taken over within {handover_ms} ms (4/3 of \
             SHARD_LEASE_TTL_MS), past the {} ms message TTL: messages waiting meanwhile expire",
            args.broker.message_ttl_ms
        );
    }
    let registry = Registry::new();
    let port = http.local_addr()?.port();
    let id = node_id("processor");
    let timing = crate::store::timing_channel(&args.pipeline.results_prefix);
    let results_cfg = CacheWriterConfig::new(&args.wdc.url, "results").with_timing_channel(timing);
    let (results_writer, results_store) = CacheWriter::start_store(results_cfg, &registry)?;
    let state_cfg = CacheWriterConfig::new(&args.mdc_redis_url, "state");
    let (state_writer, state_store) = CacheWriter::start_store(state_cfg, &registry)?;
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
    // Every node consumes the news queue; RabbitMQ delivers to one at a time.
    NewsConsumer::new(
        NewsConsumerConfig {
            url: args.broker.rabbitmq_url.clone(),
            queue_prefix: args.queue_prefix.clone(),
            message_ttl_ms: args.broker.news_message_ttl_ms,
            prefetch: 16,
        },
        pipeline.news_input(),
        pipeline.news_figures.clone(),
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
    let report = super::status::Report {
        id: id.clone(),
        prefetch: args.prefetch,
        shards,
    };
    let admin_data = web::Data::new(super::status::report(admin, figures, report));
    let pool_control = web::Data::new(shard_manager.clone());
    let http = NodeHttp::serve(http, move |cfg| {
        cfg.app_data(admin_data.clone())
            .app_data(pool_control.clone())
            .configure(admin::configure)
            .route("/control/pool", web::put().to(set_pool));
    })?;
    log::info!("processor node {id}: {shards} shards, admin on port {port}");
    let registrar = crate::actors::registrar::start(
        &args.node_registry,
        &id,
        "processor",
        port,
        &args.common.admin_token,
        &registry,
    );
    Ok(ProcessorNode {
        port,
        registry,
        id,
        http,
        shard_manager,
        boards: pipeline.boards.clone(),
        writers: vec![results_writer, state_writer],
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

#[cfg(test)]
mod tests {
    use super::*;

    /// By default a dead node's shards are taken over (within 4/3 of the lease TTL) before
    /// the messages waiting in their queues expire.
    #[test]
    fn default_handover_fits_inside_the_message_ttl() {
        let a = ProcessorArgs::try_parse_from(["tickwire-processor"]).expect("defaults");
        assert!(a.shard_lease_ttl_ms * 4 / 3 < u64::from(a.broker.message_ttl_ms));
    }
}
