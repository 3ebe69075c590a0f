//! `tickwire-bench processor`: throughput and latency of RabbitMQ -> processor -> Redis.
//!
//! 1. **Throughput.** The simulator (A.* + T.* + Q.*) feeds a listener that fills the shard
//!    queues (declared with a long TTL so nothing expires) with `events` events; the feed
//!    stops, then a processor node starts and drains them. Events/s is what the node
//!    sustained from first message to last Redis pipeline; round trips per event are Redis
//!    pipelines (plus state writes) divided by events.
//! 2. **Latency.** A fresh node with the simulator feeding `rate` events/s live: the hop from
//!    listener receive to the Redis PUBLISH of each result, from the writer's histogram.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use clap::Parser;
use serde::Serialize;

use crate::actors::listener::connection::{
    self as listener, Control, ListenerConfig, MAX_FRAME_BYTES,
};
use crate::actors::listener::publisher::PublisherConfig;
use crate::actors::processor::{self as node, ProcessorArgs, ProcessorNode};
use crate::actors::sim::SimArgs;
use crate::config::parse_subscriptions;
use crate::massive::Market;
use crate::metrics::{Histogram, Registry, LATENCY_BOUNDS_MS};

const SHARDS: u16 = 4;
const TTL_MS: u32 = 600_000;

#[derive(Debug, Clone)]
pub struct ProcessorBench {
    pub events: u64,
    pub rate: f64,
    pub seconds: f64,
    /// Listener subscriptions (`A.*,T.*,Q.*`).
    pub subscriptions: String,
    pub rabbitmq_url: String,
    pub redis_url: String,
}

#[derive(Debug, Serialize)]
pub struct ProcessorFigures {
    pub events: u64,
    pub drain_seconds: f64,
    pub events_per_sec: f64,
    pub redis_pipelines: u64,
    pub redis_round_trips_per_event: f64,
    pub cache_writes: u64,
    pub coalesced: u64,
    pub latency_rate: f64,
    pub latency_samples: u64,
    pub hop_p50_ms: Option<f64>,
    pub hop_p90_ms: Option<f64>,
    pub hop_p99_ms: Option<f64>,
    pub hop_p999_ms: Option<f64>,
    /// The queue part of the hop: listener receive to the processor taking the batch.
    pub queue_p50_ms: Option<f64>,
    pub queue_p99_ms: Option<f64>,
    /// Redis pipeline round trips of the results writer.
    pub pipeline_p50_ms: Option<f64>,
    pub pipeline_p99_ms: Option<f64>,
}

fn sum(r: &Registry, name: &str) -> u64 {
    r.snapshot()
        .iter()
        .filter(|(k, _)| k.split('{').next() == Some(name))
        .filter_map(|(_, v)| v.as_u64())
        .sum()
}

fn node_args(b: &ProcessorBench, prefix: &str) -> Result<ProcessorArgs, String> {
    let mut a = ProcessorArgs::try_parse_from(["tickwire-processor"]).map_err(|e| e.to_string())?;
    a.broker.rabbitmq_url = b.rabbitmq_url.clone();
    a.broker.message_ttl_ms = TTL_MS;
    a.queue_prefix = prefix.to_string();
    a.shards = SHARDS;
    a.mdc_redis_url = b.redis_url.clone();
    a.wdc.url = b.redis_url.clone();
    a.pipeline.results_prefix = format!("{prefix}wdc:");
    a.pipeline.state_prefix = format!("{prefix}mdc:");
    a.pipeline.enrichment = false;
    a.pipeline.status_poll_secs = 0;
    Ok(a)
}

fn start_node(args: ProcessorArgs) -> Result<ProcessorNode, String> {
    let http = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    node::start(args, http).map_err(|e| e.to_string())
}

fn sim(rate: f64) -> Result<crate::actors::sim::SimServer, String> {
    let mut a = SimArgs::defaults();
    a.port = 0;
    a.rate = rate;
    a.tickers = 2000;
    a.start_time = "10:00:00".into();
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    crate::actors::sim::start(a, l, false).map_err(|e| e.to_string())
}

fn listen(
    b: &ProcessorBench,
    sim: &crate::actors::sim::SimServer,
    prefix: &str,
    registry: &std::sync::Arc<Registry>,
) -> Result<actix::Addr<listener::Listener>, String> {
    let publisher = PublisherConfig {
        buffer_batches: 100_000,
        ..PublisherConfig::new(&b.rabbitmq_url, prefix, SHARDS, TTL_MS)
    };
    let cfg = ListenerConfig {
        url: sim.ws_url("stocks"),
        api_key: "demo".into(),
        market: Market::Stocks,
        subscriptions: parse_subscriptions(&b.subscriptions)?.0,
        ping_every: Duration::from_secs(5),
        dead_after: Duration::from_secs(60),
        max_connections_cooldown: crate::actors::listener::connection::MAX_CONNECTIONS_COOLDOWN,
        backoff_initial: Duration::from_millis(100),
        backoff_max: Duration::from_secs(1),
        start_idle: false,
        rest_url: None,
        closed_poll: Duration::from_secs(60),
        max_frame_bytes: MAX_FRAME_BYTES,
        widen: None,
    };
    Ok(listener::start_publishing(cfg, publisher, registry).0)
}

async fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Result<(), String> {
    let start = Instant::now();
    while !f() {
        if start.elapsed() > limit {
            return Err(format!("timed out waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

pub async fn run(b: ProcessorBench) -> Result<ProcessorFigures, String> {
    let prefix = format!("bench-proc-{}-", std::process::id());
    // 1. Fill the queues, then drain them.
    let s = sim(400_000.0)?;
    let reg = Registry::new();
    let l = listen(&b, &s, &prefix, &reg)?;
    wait_for("the queues to fill", Duration::from_secs(300), || {
        sum(&reg, "tickwire_publisher_events_total") >= b.events
    })
    .await?;
    l.do_send(Control::Stop);
    s.stop().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let published = sum(&reg, "tickwire_publisher_events_total");
    let started = Instant::now();
    let n = start_node(node_args(&b, &prefix)?)?;
    let r = n.registry.clone();
    wait_for("the queues to drain", Duration::from_secs(600), || {
        sum(&r, "tickwire_processor_events_total") >= published
            && r.value("tickwire_cache_pending", &[("store", "results")]) == Some(0)
    })
    .await?;
    let drain = started.elapsed().as_secs_f64();
    let pipelines = sum(&r, "tickwire_cache_pipelines_total");
    let writes = sum(&r, "tickwire_cache_writes_total");
    let coalesced = sum(&r, "tickwire_cache_coalesced_total");
    n.stop().await;

    // 2. Live at `rate` on a fresh node.
    let n = start_node(node_args(&b, &prefix)?)?;
    let r = n.registry.clone();
    wait_for("shards", Duration::from_secs(30), || {
        r.value("tickwire_shards_held", &[]) == Some(i64::from(SHARDS))
    })
    .await?;
    let s = sim(b.rate)?;
    let reg = Registry::new();
    let l = listen(&b, &s, &prefix, &reg)?;
    tokio::time::sleep(Duration::from_secs_f64(b.seconds)).await;
    l.do_send(Control::Stop);
    // The node's own histograms; one it never registered reads as empty.
    let find = |name: &str, labels: &[(&str, &str)]| {
        r.find_histogram(name, labels)
            .unwrap_or_else(|| Histogram::new(LATENCY_BOUNDS_MS))
    };
    let results = [("store", "results")];
    let hist = find("tickwire_cache_hop_latency_ms", &results);
    let queue: Vec<Histogram> = (0..SHARDS)
        .map(|s| {
            find(
                "tickwire_processor_queue_latency_ms",
                &[("shard", &s.to_string())],
            )
        })
        .collect();
    let queue = Histogram::merged(LATENCY_BOUNDS_MS, &queue);
    let rt = find("tickwire_cache_pipeline_ms", &results);
    let figures = ProcessorFigures {
        events: published,
        drain_seconds: drain,
        events_per_sec: published as f64 / drain,
        redis_pipelines: pipelines,
        redis_round_trips_per_event: pipelines as f64 / published.max(1) as f64,
        cache_writes: writes,
        coalesced,
        latency_rate: b.rate,
        latency_samples: hist.count(),
        hop_p50_ms: hist.quantile(0.5),
        hop_p90_ms: hist.quantile(0.9),
        hop_p99_ms: hist.quantile(0.99),
        hop_p999_ms: hist.quantile(0.999),
        queue_p50_ms: queue.quantile(0.5),
        queue_p99_ms: queue.quantile(0.99),
        pipeline_p50_ms: rt.quantile(0.5),
        pipeline_p99_ms: rt.quantile(0.99),
    };
    n.stop().await;
    s.stop().await;
    // Clean up queues and keys.
    super::delete_rabbit_topology(&b.rabbitmq_url, &prefix, SHARDS).await;
    if let Ok(pool) = crate::redis_pool::open(&b.redis_url) {
        if let Ok(mut c) = pool.get().await {
            let keys: Vec<String> = deadpool_redis::redis::cmd("KEYS")
                .arg(format!("{prefix}*"))
                .query_async(&mut *c)
                .await
                .unwrap_or_default();
            for k in keys.chunks(500) {
                let _: Result<i64, _> = deadpool_redis::redis::cmd("DEL")
                    .arg(k)
                    .query_async(&mut *c)
                    .await;
            }
        }
    }
    Ok(figures)
}
