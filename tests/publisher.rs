//! Listener -> router -> QueuePublisher -> real RabbitMQ: events land in the right shard
//! queues with the original JSON and a receive timestamp; with RabbitMQ down at start or
//! mid-stream the Massive connection stays up, publishing recovers and losses are counted.

mod common;

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use common::proxy::Proxy;
use common::rabbit::*;
use common::*;
use tickwire::actors::listener::connection as listener;
use tickwire::actors::listener::publisher::PublisherConfig;
use tickwire::metrics::Registry;
use tickwire::queue::envelope;
use tickwire::queue::topology::{queue_arguments, queue_name};
use tickwire::queue::{shard_of, QueueKind};

const SHARDS: u16 = 2;

fn all_queues(prefix: &str) -> Vec<String> {
    QueueKind::ALL
        .iter()
        .flat_map(|k| (0..SHARDS).map(move |s| queue_name(prefix, *k, s)))
        .collect()
}

fn pipeline(
    sim_url: String,
    amqp: String,
    prefix: &str,
    buffer: usize,
    confirms: bool,
    registry: &std::sync::Arc<Registry>,
) -> std::sync::Arc<tickwire::actors::listener::connection::ListenerHealth> {
    let publisher = PublisherConfig {
        buffer_batches: buffer,
        confirms,
        ..PublisherConfig::new(&amqp, prefix, SHARDS, 5000)
    };
    let cfg = listener_config(sim_url, "demo", "T.*,Q.*,A.*");
    listener::start_publishing(cfg, publisher, registry).1
}

fn published(r: &Registry) -> i64 {
    QueueKind::ALL
        .iter()
        .filter_map(|q| r.value("tickwire_publisher_messages_total", &[("queue", q.name())]))
        .sum()
}

fn dropped(r: &Registry) -> i64 {
    QueueKind::ALL
        .iter()
        .filter_map(|q| {
            r.value(
                "tickwire_publisher_dropped_batches_total",
                &[("queue", q.name())],
            )
        })
        .sum()
}

#[actix_web::test]
async fn events_land_in_their_shard_queues_with_original_json() {
    let amqp = rabbit_url();
    let prefix = unique_prefix("land");
    let sim = start_sim(sim_args());
    let registry = Registry::new();
    let _health = pipeline(
        sim.ws_url("stocks"),
        amqp,
        &prefix,
        10_000,
        false,
        &registry,
    );
    let r = registry.clone();
    wait_until("trades, quotes and second bars published", || {
        ["trades", "quotes", "aggregate"].iter().all(|q| {
            r.value("tickwire_publisher_messages_total", &[("queue", q)])
                .unwrap_or(0)
                > 0
        })
    })
    .await;

    let (_conn, ch) = channel().await;
    // Same arguments redeclare fine (different ones would fail with PRECONDITION_FAILED).
    for q in all_queues(&prefix) {
        ch.queue_declare(
            q.as_str().into(),
            Default::default(),
            queue_arguments(&prefix, 5000),
        )
        .await
        .expect("same topology");
    }
    let mut kinds = HashSet::new();
    for kind in [QueueKind::Trades, QueueKind::Quotes, QueueKind::Aggregate] {
        for shard in 0..SHARDS {
            for body in drain(&ch, &queue_name(&prefix, kind, shard)).await {
                let env = envelope::decode(&body).expect("envelope");
                assert_eq!(env.asset_class, "stocks");
                assert!(env.received_at > 1_600_000_000_000);
                for e in env.events {
                    let v: serde_json::Value = serde_json::from_str(e.get()).unwrap();
                    assert_eq!(QueueKind::of(v["ev"].as_str().unwrap()), kind);
                    assert_eq!(shard_of(v["sym"].as_str().unwrap(), SHARDS), shard);
                    kinds.insert(kind);
                }
            }
        }
    }
    assert_eq!(kinds.len(), 3, "trades, quotes and aggregates all arrived");
    delete_pipeline(&ch, &prefix, SHARDS).await;
    sim.stop().await;
}

#[actix_web::test]
async fn rabbitmq_down_at_start_then_up() {
    rabbit_url();
    let prefix = unique_prefix("down-start");
    let proxy = Proxy::start().await;
    proxy.cut();
    let sim = start_sim(sim_args());
    let registry = Registry::new();
    let health = pipeline(
        sim.ws_url("stocks"),
        proxy.url(),
        &prefix,
        50,
        false,
        &registry,
    );
    let r = registry.clone();
    wait_until("losses counted while the broker is down", || {
        dropped(&r) > 0
    })
    .await;
    assert!(
        health.connected.load(Ordering::Relaxed),
        "the Massive connection stays up"
    );
    assert_eq!(published(&registry), 0);
    proxy.restore();
    let r = registry.clone();
    wait_until("publishing after the broker comes up", || {
        published(&r) > 20
    })
    .await;
    assert_eq!(
        stocks_metric(&registry, "tickwire_listener_reconnects_total"),
        Some(0)
    );
    let (_conn, ch) = channel().await;
    delete_pipeline(&ch, &prefix, SHARDS).await;
    sim.stop().await;
}

#[actix_web::test]
async fn rabbitmq_down_mid_stream_recovers() {
    rabbit_url();
    let prefix = unique_prefix("down-mid");
    let proxy = Proxy::start().await;
    let sim = start_sim(sim_args());
    let registry = Registry::new();
    let health = pipeline(
        sim.ws_url("stocks"),
        proxy.url(),
        &prefix,
        50,
        false,
        &registry,
    );
    let r = registry.clone();
    wait_until("publishing", || published(&r) > 20).await;
    let last = published(&registry);
    wait_until("another publish", || published(&r) > last).await;
    proxy.cut();
    let r = registry.clone();
    wait_until("the publisher notices and drops", || {
        r.value("tickwire_publisher_connected", &[]) == Some(0) && dropped(&r) > 0
    })
    .await;
    // Without confirms the client cannot know what the broker got: what it handed over
    // just before the cut is counted as possibly lost, never silently.
    assert!(
        registry
            .value("tickwire_publisher_unconfirmed_at_loss_total", &[])
            .unwrap_or(0)
            > 0
    );
    assert!(
        health.connected.load(Ordering::Relaxed),
        "the Massive connection stays up"
    );
    let before = published(&registry);
    proxy.restore();
    let r = registry.clone();
    wait_until("publishing again", || published(&r) > before + 20).await;
    assert!(
        registry
            .value("tickwire_publisher_connects_total", &[])
            .unwrap()
            >= 2
    );
    assert_eq!(
        stocks_metric(&registry, "tickwire_listener_reconnects_total"),
        Some(0)
    );
    assert_eq!(
        sim.registry.value("tickwire_sim_connections_total", &[]),
        Some(1)
    );
    let (_conn, ch) = channel().await;
    delete_pipeline(&ch, &prefix, SHARDS).await;
    sim.stop().await;
}

#[actix_web::test]
async fn publisher_confirms_mode_publishes() {
    let amqp = rabbit_url();
    let prefix = unique_prefix("confirms");
    let sim = start_sim(sim_args());
    let registry = Registry::new();
    let _h = pipeline(sim.ws_url("stocks"), amqp, &prefix, 10_000, true, &registry);
    let r = registry.clone();
    wait_until("confirmed publishes", || published(&r) >= 20).await;
    assert_eq!(
        QueueKind::ALL
            .iter()
            .filter_map(
                |q| registry.value("tickwire_publisher_failed_total", &[("queue", q.name())])
            )
            .sum::<i64>(),
        0
    );
    let (_conn, ch) = channel().await;
    delete_pipeline(&ch, &prefix, SHARDS).await;
    sim.stop().await;
}

#[actix_web::test]
async fn waiting_batches_are_merged_when_the_broker_returns() {
    rabbit_url();
    let prefix = unique_prefix("merge");
    let proxy = Proxy::start().await;
    proxy.cut();
    let sim = start_sim(sim_args());
    let registry = Registry::new();
    let _h = pipeline(
        sim.ws_url("stocks"),
        proxy.url(),
        &prefix,
        10_000,
        false,
        &registry,
    );
    let r = registry.clone();
    wait_until("a backlog while the broker is away", || {
        r.value("tickwire_publisher_buffered_batches", &[])
            .unwrap_or(0)
            >= 200
    })
    .await;
    assert_eq!(
        registry.value("tickwire_publisher_coalesced_batches_total", &[]),
        Some(0),
        "nothing merged while keeping up"
    );
    proxy.restore();
    let r = registry.clone();
    wait_until("backlog published, merged", || {
        r.value("tickwire_publisher_coalesced_batches_total", &[])
            .unwrap_or(0)
            > 0
            && published(&r) > 0
    })
    .await;
    let (_conn, ch) = channel().await;
    let mut biggest = 0;
    for shard in 0..SHARDS {
        for body in drain(&ch, &queue_name(&prefix, QueueKind::Quotes, shard)).await {
            biggest = biggest.max(envelope::decode(&body).unwrap().events.len());
        }
    }
    assert!(
        biggest > 100,
        "merged messages carry many frames' events (largest {biggest})"
    );
    assert!(biggest <= 500, "within the merge limit");
    delete_pipeline(&ch, &prefix, SHARDS).await;
    sim.stop().await;
}
