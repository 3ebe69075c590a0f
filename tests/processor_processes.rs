//! Two `tickwire-processor` processes sharing the shards (simulator, listener, real RabbitMQ
//! and Redis): one is killed with SIGKILL (no handover, no goodbye); once its shard leases
//! expire the other takes every shard, rehydrates the dead node's state from its checkpoints
//! and carries on writing the same keys.

mod common;

use std::process::{Command, Stdio};

use deadpool_redis::redis;
use serde_json::Value;

use common::rabbit::{delete_pipeline_queues, rabbit_url};
use common::redis::{cleanup, connection, redis_url};
use common::*;
use tickwire::actors::listener::connection as listener;
use tickwire::actors::listener::publisher::PublisherConfig;
use tickwire::metrics::Registry;

const SHARDS: u16 = 4;

fn spawn(port: u16, sim_port: u16, qprefix: &str, kprefix: &str) -> Proc {
    let child = Command::new(env!("CARGO_BIN_EXE_tickwire-processor"))
        .env_clear()
        .env("SERVER_IP", "127.0.0.1")
        .env("SERVER_PORT", port.to_string())
        .env("RABBITMQ_URL", rabbit_url())
        .env("QUEUE_PREFIX", qprefix)
        .env("QUEUE_SHARDS", SHARDS.to_string())
        .env("MDC_REDIS_URL", redis_url())
        .env("WDC_REDIS_URL", redis_url())
        .env("REDIS_KEY_PREFIX", kprefix)
        .env("WDC_KEY_PREFIX", format!("{kprefix}wdc:"))
        .env("MASSIVE_API_KEY", "demo")
        .env("MASSIVE_REST_URL", format!("http://127.0.0.1:{sim_port}"))
        .env("SHARD_LEASE_TTL_MS", "1500")
        .env("LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tickwire-processor");
    Proc(child)
}

fn shards_held(stats: &Value) -> Vec<u64> {
    stats["node"]["shards_held"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

#[actix_web::test]
async fn a_killed_node_s_shards_are_taken_over_and_rehydrated() {
    let qp = common::rabbit::unique_prefix("procs");
    let kp = common::redis::unique_prefix("procs");
    let mut sim = sim_args();
    sim.tickers = 40;
    sim.rate = 2000.0;
    let sim = start_sim(sim);
    let (pa, pb) = (free_port(), free_port());
    let a = spawn(pa, sim.port, &qp, &kp);
    let b = spawn(pb, sim.port, &qp, &kp);
    wait_until_async("two processes share the four shards", || async {
        match (try_stats(pa).await, try_stats(pb).await) {
            (Some(sa), Some(sb)) => shards_held(&sa).len() == 2 && shards_held(&sb).len() == 2,
            _ => false,
        }
    })
    .await;
    let a_shards = shards_held(&try_stats(pa).await.expect("A answers"));
    assert_eq!(a_shards.len(), 2);

    let registry = Registry::new();
    let publisher = PublisherConfig::new(&rabbit_url(), &qp, SHARDS, 5000);
    let cfg = listener_config(sim.ws_url("stocks"), "demo", "A.*");
    let _listener = listener::start_publishing(cfg, publisher, &registry).0;

    // A's shards have checkpoints in Redis before it dies.
    let checkpoint = |s: u64| format!("{kp}processor:checkpoint:{s}");
    wait_until_async("A checkpoints its shards", || {
        let keys: Vec<String> = a_shards.iter().map(|s| checkpoint(*s)).collect();
        async move {
            let mut conn = connection().await;
            let n: i64 = redis::cmd("EXISTS")
                .arg(&keys)
                .query_async(&mut *conn)
                .await
                .unwrap_or(0);
            n == keys.len() as i64
        }
    })
    .await;

    drop(a); // SIGKILL: no checkpoint flush, no lease release.
    wait_until_async("B takes all four shards once A's leases expire", || async {
        try_stats(pb)
            .await
            .is_some_and(|s| shards_held(&s).len() == 4)
    })
    .await;
    let rehydrated = |s: &Value, shard: u64| {
        s["node"]["shards"][shard as usize]["rehydrated"]
            .as_i64()
            .unwrap_or(0)
    };
    wait_until_async("B rehydrates A's shards from their checkpoints", || {
        let a_shards = a_shards.clone();
        async move {
            try_stats(pb)
                .await
                .is_some_and(|s| a_shards.iter().all(|&sh| rehydrated(&s, sh) > 0))
        }
    })
    .await;

    // And keeps processing them: events counted on A's former shards in B.
    let events = |s: &Value, shard: u64| {
        s["node"]["shards"][shard as usize]["processed"]
            .as_i64()
            .unwrap_or(0)
    };
    wait_until_async("B processes A's former shards", || {
        let a_shards = a_shards.clone();
        async move {
            try_stats(pb)
                .await
                .is_some_and(|s| a_shards.iter().all(|&sh| events(&s, sh) > 0))
        }
    })
    .await;
    drop(b);
    sim.stop().await;
    delete_pipeline_queues(&qp, SHARDS).await;
    cleanup(&kp).await;
}
