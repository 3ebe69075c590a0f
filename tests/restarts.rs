//! Real restarts of the data plane (issue 20): a Redis of the test's own is killed and
//! started again under two listener processes that keep their Massive lease in it; a
//! RabbitMQ node of the test's own is restarted under a running pipeline, with a browser's
//! socket on a widget data service that must keep it and get updates again.

mod common;

use common::rabbit::{delete_pipeline_queues, rabbit_url, PrivateRabbit};
use common::redis::PrivateRedis;
use common::*;
use serde_json::Value;
use tickwire::token::{self, Claims};

/// The token secret and admin token of the widget data service these tests start.
const WDS_SECRET: &str = "restarts-test-secret-of-32-bytes-or-more";
const WDS_ADMIN: &str = "restarts-test-admin-token-of-32-bytes-or-more";

fn listener(sim_port: u16, admin_port: u16, qprefix: &str, redis: &str) -> Proc {
    listener_process(
        sim_port,
        admin_port,
        qprefix,
        redis,
        &[("MASSIVE_POLL_WHEN_CLOSED", "false")],
    )
}

/// The latest `end_timestamp` among the quotes under `prefix` in the shared Redis.
async fn newest_quote_end(prefix: &str) -> f64 {
    use deadpool_redis::redis::AsyncCommands;
    let mut conn = common::redis::connection().await;
    let keys: Vec<String> = conn.keys(format!("{prefix}*")).await.expect("KEYS");
    let mut newest = 0.0f64;
    for k in keys {
        let v: Option<String> = conn.get(&k).await.expect("GET");
        let end = v
            .and_then(|v| serde_json::from_str::<Value>(&v).ok())
            .and_then(|v| v["end_timestamp"].as_f64());
        newest = newest.max(end.unwrap_or(0.0));
    }
    newest
}

async fn counter(port: u16, name: &str) -> Option<i64> {
    let v = try_stats(port).await?;
    v["counters"][format!("{name}{{market=\"stocks\"}}")].as_i64()
}

/// Redis keeps nothing, so a restart empties the lease under the listener that holds it.
/// That listener keeps its Massive connection through the outage (longer than its 1.5 s lease
/// TTL, shorter than its grace) and takes its lease back when Redis returns; the standby
/// waits rather than grab a lease that vanished without a release. Massive sees neither a
/// second connection nor a reconnect.
#[actix_web::test]
async fn a_redis_restart_keeps_the_massive_connection() {
    rabbit_url();
    let mut redis = PrivateRedis::start();
    let qprefix = common::rabbit::unique_prefix("restart-redis");
    let sim = start_sim(sim_args());
    let (pa, pb) = (free_port(), free_port());
    let _a = listener(sim.port, pa, &qprefix, &redis.url());
    let _b = listener(sim.port, pb, &qprefix, &redis.url());
    let started = std::time::Instant::now();
    let (holder, standby) = loop {
        // Bounded: a listener that could not start (its port taken meanwhile) fails the test
        // instead of hanging it.
        assert!(
            started.elapsed() < common::DEADLINE,
            "one of the two listeners never answered"
        );
        match (
            counter(pa, "tickwire_lease_held").await,
            counter(pb, "tickwire_lease_held").await,
        ) {
            (Some(1), Some(0)) => break (pa, pb),
            (Some(0), Some(1)) => break (pb, pa),
            _ => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    };
    let simr = sim.registry.clone();
    wait_until("the holder is connected", || {
        simr.value("tickwire_sim_auth_total", &[("result", "success")]) == Some(1)
    })
    .await;

    let reconnects = counter(holder, "tickwire_listener_reconnects_total").await;
    redis.kill();
    let failed = counter(holder, "tickwire_lease_errors_total")
        .await
        .unwrap_or(0);
    // Down for longer than the lease TTL: the holder keeps trying (every 250 ms) and failing.
    wait_until_async("the holder fails to renew past its TTL", || async move {
        counter(holder, "tickwire_lease_errors_total")
            .await
            .unwrap_or(0)
            >= failed + 10
    })
    .await;
    redis.restart();
    // The lease is back in Redis, in the holder's name.
    let key = tickwire::actors::listener::lease::lease_key("tickwire:", "demo", "stocks");
    let url = redis.url();
    wait_until_async("the holder takes its lease back", || {
        let (key, url) = (key.clone(), url.clone());
        async move {
            let Ok(pool) = tickwire::redis_pool::open(&url) else {
                return false;
            };
            let Ok(mut conn) = pool.get().await else {
                return false;
            };
            let v: Option<String> = deadpool_redis::redis::cmd("GET")
                .arg(&key)
                .query_async(&mut *conn)
                .await
                .unwrap_or(None);
            let stats = try_stats(holder).await.unwrap_or_default();
            v.is_some() && stats["node"]["stocks"]["lease_holder"].as_str() == v.as_deref()
        }
    })
    .await;
    assert_eq!(counter(holder, "tickwire_lease_held").await, Some(1));
    assert_eq!(counter(standby, "tickwire_lease_held").await, Some(0));
    assert_eq!(
        sim.registry
            .value("tickwire_sim_auth_total", &[("result", "success")]),
        Some(1),
        "the Massive connection was dropped and made again"
    );
    assert_eq!(
        sim.registry.value("tickwire_sim_evictions_total", &[]),
        Some(0)
    );
    assert_eq!(
        counter(holder, "tickwire_listener_reconnects_total").await,
        reconnects,
        "the listener reconnected"
    );
    delete_pipeline_queues(&qprefix, 1).await;
    sim.stop().await;
}

/// RabbitMQ restarted for real (`rabbitmqctl stop_app` / `start_app` on a node of the
/// test's own: every connection closes, the non-durable queues go). The pipeline resumes by
/// itself: the publisher and the processor's consumer reconnect and declare the topology
/// again, results flow into Redis again, and the listener keeps its Massive connection (the
/// simulator sees one connection, the listener no reconnect). A v1 client of a widget data
/// service keeps its socket and gets quotes written after the restart.
#[actix_web::test]
async fn a_rabbitmq_restart_is_survived_without_touching_massive() {
    use tickwire::actors::listener::connection as listener;
    use tickwire::actors::listener::publisher::PublisherConfig;
    let rabbit = PrivateRabbit::start().await;
    let qp = common::rabbit::unique_prefix("restart-rabbit");
    let kp = common::redis::unique_prefix("restart-rabbit");
    let mut sim = sim_args();
    sim.tickers = 40;
    sim.rate = 500.0;
    let sim = start_sim(sim);

    let processor = start_processor(processor_args(&rabbit.url(), &qp, &kp, 2));
    // A browser's view: a v1 client of a widget data service on the processor's results.
    let wds = start_wds(wds_args(
        &common::redis::redis_url(),
        &format!("{kp}wdc:"),
        WDS_SECRET,
        WDS_ADMIN,
    ))
    .await;
    let claims = Claims::new("tester", &["viewer"], &["*"], token::now_secs(), 600);
    let tok = token::sign(&claims, WDS_SECRET.as_bytes()).expect("sign");
    let mut browser = Client::connect(&wds.ws_url(&format!("/ws?token={tok}"))).await;
    browser
        .send(r#"{"action":"subscribe","feed":"quote:*"}"#)
        .await;
    assert!(browser
        .next_text()
        .await
        .starts_with(r#"{"status":"subscribed""#));

    let registry = tickwire::metrics::Registry::new();
    let publisher = PublisherConfig::new(&rabbit.url(), &qp, 2, 5000);
    let cfg = listener_config(sim.ws_url("stocks"), "demo", "A.*,Q.*");
    let (l, health) = listener::start_publishing(cfg, publisher, &registry);

    let p = processor.registry.clone();
    let consumed = || {
        p.value("tickwire_consumer_messages_total", &[])
            .unwrap_or(0)
    };
    let written = || {
        p.value("tickwire_cache_writes_total", &[("store", "results")])
            .unwrap_or(0)
    };
    wait_until("the pipeline runs", || consumed() > 20).await;

    let restarted = std::time::Instant::now();
    rabbit.restart().await;
    let r = registry.clone();
    wait_until("the publisher connects again", || {
        r.value("tickwire_publisher_connects_total", &[])
            .unwrap_or(0)
            >= 2
    })
    .await;
    wait_until("the consumer connects again", || {
        p.value("tickwire_consumer_connects_total", &[])
            .unwrap_or(0)
            >= 2
    })
    .await;
    let (c0, w0) = (consumed(), written());
    wait_until("messages are consumed again", || consumed() > c0 + 20).await;
    wait_until("results are written again", || written() > w0 + 20).await;
    // The browser's socket was kept and carries quotes written after the restart: a bar
    // newer than every quote in Redis now was written after this point.
    let newest = newest_quote_end(&format!("{kp}wdc:quote:")).await;
    loop {
        let v: Value = serde_json::from_str(&browser.next_text().await).expect("quote JSON");
        if v["end_timestamp"].as_f64().unwrap_or(0.0) > newest {
            break;
        }
    }
    // For docs/operations.md (a figure, not an assertion): stop_app to results flowing again.
    eprintln!(
        "RabbitMQ restart: results flow again {:.1} s after stop_app",
        restarted.elapsed().as_secs_f64()
    );

    assert!(health.connected.load(std::sync::atomic::Ordering::Relaxed));
    assert_eq!(
        stocks_metric(&registry, "tickwire_listener_reconnects_total"),
        Some(0),
        "the Massive connection was kept"
    );
    assert_eq!(
        sim.registry.value("tickwire_sim_connections_total", &[]),
        Some(1)
    );
    l.do_send(listener::Control::Stop);
    wds.stop().await;
    processor.stop().await;
    sim.stop().await;
    common::redis::cleanup(&kp).await;
}
