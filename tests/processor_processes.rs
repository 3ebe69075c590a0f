//! Two `tickwire-processor` processes sharing the shards (simulator, listener, real RabbitMQ
//! and Redis): one is killed with SIGKILL (no handover, no goodbye); once its shard leases
//! expire the other takes every shard, rehydrates the dead node's state from its checkpoints
//! and carries on writing the same keys. And what A published after its last checkpoint is
//! not undone: B carries on from the published daily ranges (values compared, not counters).

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
    spawn_with(port, sim_port, qprefix, kprefix, &[])
}

fn spawn_with(
    port: u16,
    sim_port: u16,
    qprefix: &str,
    kprefix: &str,
    env: &[(&str, &str)],
) -> Proc {
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
        .envs(env.iter().copied())
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

/// Two processor processes A and B sharing the four shards of a running pipeline (simulator,
/// an in-process listener on A.*): A started with `a_env` more.
struct Pair {
    qp: String,
    kp: String,
    sim: tickwire::actors::sim::SimServer,
    /// A, until [`Pair::kill_a`].
    a: Option<Proc>,
    b: Proc,
    pb: u16,
    /// The shards A holds.
    a_shards: Vec<u64>,
    _listener: actix::Addr<listener::Listener>,
}

async fn two_processors(test: &str, a_env: &[(&str, &str)]) -> Pair {
    let qp = common::rabbit::unique_prefix(test);
    let kp = common::redis::unique_prefix(test);
    let mut sim = sim_args();
    sim.tickers = 40;
    sim.rate = 2000.0;
    let sim = start_sim(sim);
    let (pa, pb) = (free_port(), free_port());
    let a = spawn_with(pa, sim.port, &qp, &kp, a_env);
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
    Pair {
        qp,
        kp,
        sim,
        a: Some(a),
        b,
        pb,
        a_shards,
        _listener,
    }
}

impl Pair {
    /// SIGKILL to A: no checkpoint flush, no lease release.
    fn kill_a(&mut self) {
        self.a.take();
    }

    async fn clean_up(self) {
        drop(self.b);
        self.sim.stop().await;
        delete_pipeline_queues(&self.qp, SHARDS).await;
        cleanup(&self.kp).await;
    }
}

#[actix_web::test]
async fn a_killed_node_s_shards_are_taken_over_and_rehydrated() {
    let mut pair = two_processors("procs", &[]).await;
    let (kp, pb, a_shards) = (pair.kp.clone(), pair.pb, pair.a_shards.clone());

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

    pair.kill_a();
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
    pair.clean_up().await;
}

/// Every published `daily_range:{SYM}` of the given shards: symbol -> the JSON object.
async fn published_ranges(kp: &str, shards: &[u64]) -> std::collections::BTreeMap<String, Value> {
    let mut conn = connection().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{kp}wdc:daily_range:*"))
        .query_async(&mut *conn)
        .await
        .unwrap_or_default();
    let mut out = std::collections::BTreeMap::new();
    for key in keys {
        let Ok(Some(text)) = redis::cmd("GET")
            .arg(&key)
            .query_async::<Option<String>>(&mut *conn)
            .await
        else {
            continue;
        };
        let v: Value = serde_json::from_str(&text).expect("daily_range is JSON");
        let sym = v["symbol"].as_str().expect("symbol").to_string();
        if shards.contains(&u64::from(tickwire::queue::shard_of(&sym, SHARDS))) {
            out.insert(sym, v);
        }
    }
    out
}

/// The published volume board's rows for symbols of the given shards: symbol -> the day's
/// accumulated volume.
async fn top_volume(kp: &str, shards: &[u64]) -> std::collections::BTreeMap<String, f64> {
    let mut conn = connection().await;
    let text: Option<String> = redis::cmd("GET")
        .arg(format!("{kp}wdc:scanners:top_volume"))
        .query_async(&mut *conn)
        .await
        .unwrap_or(None);
    let rows: Vec<Value> = text
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    rows.iter()
        .filter_map(|r| {
            Some((
                r["symbol"].as_str()?.to_string(),
                r["accumulated_volume"].as_f64()?,
            ))
        })
        .filter(|(sym, _)| shards.contains(&u64::from(tickwire::queue::shard_of(sym, SHARDS))))
        .collect()
}

/// A never checkpoints (`PROCESSOR_CHECKPOINT_SECS` of an hour), so B has nothing but what
/// A published: after SIGKILL every session high B publishes for A's symbols is at least the
/// one A last published, every low at most, the quotes move forward, and the volume board
/// still lists A's symbols with their volume carried on.
#[actix_web::test]
async fn a_killed_node_s_published_values_never_go_back() {
    let mut pair = two_processors("procs-values", &[("PROCESSOR_CHECKPOINT_SECS", "3600")]).await;
    let (kp, pb, a_shards) = (pair.kp.clone(), pair.pb, pair.a_shards.clone());
    wait_until_async("A publishes ranges for its symbols", || {
        let (kp, a_shards) = (kp.clone(), a_shards.clone());
        async move { published_ranges(&kp, &a_shards).await.len() >= 10 }
    })
    .await;

    // The board is published once a second by the elected node: wait for one with A's rows.
    wait_until_async("the volume board lists A's symbols", || {
        let (kp, a_shards) = (kp.clone(), a_shards.clone());
        async move { !top_volume(&kp, &a_shards).await.is_empty() }
    })
    .await;
    let before = published_ranges(&kp, &a_shards).await;
    let board_before = top_volume(&kp, &a_shards).await;
    assert!(
        !board_before.is_empty(),
        "A's symbols are on the volume board"
    );
    pair.kill_a();
    let end = |v: &Value| v["end_timestamp"].as_f64().unwrap_or(0.0);
    wait_until_async("B publishes newer values for every symbol A had", || {
        let (kp, a_shards, before) = (kp.clone(), a_shards.clone(), before.clone());
        async move {
            let after = published_ranges(&kp, &a_shards).await;
            before
                .iter()
                .all(|(sym, v)| after.get(sym).is_some_and(|w| end(w) > end(v)))
        }
    })
    .await;
    let after = published_ranges(&kp, &a_shards).await;
    for (sym, was) in &before {
        let now = &after[sym];
        for session in ["pre_market", "regular_session", "after_hours"] {
            let (high, low) = (format!("{session}_high"), format!("{session}_low"));
            if let Some(h) = was[&high].as_f64() {
                let h2 = now[&high].as_f64().expect("a high stays set");
                assert!(h2 >= h, "{sym} {high} went back from {h} to {h2}");
            }
            if let Some(l) = was[&low].as_f64() {
                let l2 = now[&low].as_f64().expect("a low stays set");
                assert!(l2 <= l, "{sym} {low} went back from {l} to {l2}");
            }
        }
    }
    // The volume board carries on too: every symbol of A's it listed is still listed, its
    // day's volume not smaller (B's boards are built from the carried-on quotes).
    wait_until_async(
        "the board lists A's symbols with their volume carried on",
        || {
            let (kp, a_shards, was) = (kp.clone(), a_shards.clone(), board_before.clone());
            async move {
                let now = top_volume(&kp, &a_shards).await;
                was.iter()
                    .all(|(sym, v)| now.get(sym).is_some_and(|w| w >= v))
            }
        },
    )
    .await;
    let folded = try_stats(pb).await.expect("B answers");
    let taken: i64 = a_shards
        .iter()
        .map(|&s| {
            folded["node"]["shards"][s as usize]["rehydrated_published"]
                .as_i64()
                .unwrap_or(0)
        })
        .sum();
    assert!(
        taken > 0,
        "B carried on from the published values: {folded}"
    );
    pair.clean_up().await;
}
