//! Clean stops (issue 20): every binary, sent SIGTERM while it works, exits 0 on its own; a
//! listener that stops hands its Massive lease back at once, so its standby connects at its
//! next poll instead of after a lease TTL; a stopping listener publishes what it read.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::rabbit::{delete_pipeline_queues, rabbit_url};
use common::*;

const ADMIN: &str = "stops-test-admin-token-of-32-bytes!!";
const SECRET: &str = "stops-test-token-secret-of-32-bytes!";

/// A binary, its environment, and the port that answers once it runs.
type Case = (&'static str, Vec<(&'static str, String)>, u16);

/// Sends SIGTERM and waits (bounded) for the process to exit; its exit status.
fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status();
    assert!(sent.is_ok_and(|s| s.success()), "could not signal {pid}");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "process {pid} did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn spawn(bin: &str, env: &[(&str, String)]) -> Proc {
    let child = Command::new(bin)
        .env_clear()
        .env("SERVER_IP", "127.0.0.1")
        .env("ADMIN_TOKEN", ADMIN)
        .env("LOG_LEVEL", "warn")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {bin}: {e}"));
    Proc(child)
}

async fn ready(port: u16) -> bool {
    awc::Client::new()
        .get(format!("http://127.0.0.1:{port}/health"))
        .send()
        .await
        .is_ok()
}

fn listener(sim_port: u16, admin_port: u16, qprefix: &str, rprefix: &str) -> Proc {
    let redis = common::redis::redis_url();
    let env = [
        ("REDIS_KEY_PREFIX", rprefix),
        ("MASSIVE_POLL_WHEN_CLOSED", "false"),
        ("MASSIVE_SUBSCRIPTIONS", "T.*,Q.*"),
        // A long lease: only a handover on stop can make the standby connect soon.
        ("LEASE_TTL_MS", "30000"),
    ];
    listener_process(sim_port, admin_port, qprefix, &redis, &env)
}

/// SIGTERM to the listener that holds the lease, under load: it exits 0 having published
/// what it read, and the standby connects long before the 30 s lease would have lapsed.
#[actix_web::test]
async fn a_stopping_listener_hands_over_at_once() {
    rabbit_url();
    let qprefix = common::rabbit::unique_prefix("stops");
    let rprefix = common::redis::unique_prefix("stops");
    let mut sa = sim_args();
    sa.rate = 5000.0;
    let sim = start_sim(sa);
    let (pa, pb) = (free_port(), free_port());
    let mut a = listener(sim.port, pa, &qprefix, &rprefix);
    let mut b = listener(sim.port, pb, &qprefix, &rprefix);
    let (holder, standby_port, standby) = loop {
        match (lease_held(pa).await, lease_held(pb).await) {
            (Some(true), Some(false)) => break (&mut a, pb, &mut b),
            (Some(false), Some(true)) => break (&mut b, pa, &mut a),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let simr = sim.registry.clone();
    wait_until("the holder streams", || {
        simr.value("tickwire_sim_events_sent_total", &[])
            .unwrap_or(0)
            > 1000
    })
    .await;
    let stopped_at = Instant::now();
    let status = terminate(&mut holder.0);
    assert!(status.success(), "the listener exited with {status}");
    wait_until_async("the standby takes the lease", || async move {
        lease_held(standby_port).await == Some(true)
    })
    .await;
    let simr = sim.registry.clone();
    wait_until("the standby is connected", || {
        simr.value("tickwire_sim_auth_total", &[("result", "success")]) == Some(2)
    })
    .await;
    let handover = stopped_at.elapsed();
    assert!(
        handover < Duration::from_secs(30),
        "the standby waited for the lease to lapse ({handover:?})"
    );
    println!("handover after SIGTERM: {handover:?}");
    assert_eq!(
        sim.registry.value("tickwire_sim_evictions_total", &[]),
        Some(0),
        "never two connections"
    );
    let status = terminate(&mut standby.0);
    assert!(status.success());
    delete_pipeline_queues(&qprefix, 1).await;
    common::redis::cleanup(&rprefix).await;
    sim.stop().await;
}

/// Every other binary exits 0 on SIGTERM while running.
#[actix_web::test]
async fn every_binary_exits_cleanly_on_sigterm() {
    rabbit_url();
    let redis = common::redis::redis_url();
    let rprefix = common::redis::unique_prefix("stops-all");
    let qprefix = common::rabbit::unique_prefix("stops-all");
    let data = temp_dir("stops");
    let ports: Vec<u16> = (0..6).map(|_| free_port()).collect();
    let sim_port = ports[0];
    let cases: Vec<Case> = vec![
        (
            env!("CARGO_BIN_EXE_tickwire-sim"),
            vec![("SERVER_PORT", sim_port.to_string())],
            sim_port,
        ),
        (
            env!("CARGO_BIN_EXE_tickwire-processor"),
            vec![
                ("SERVER_PORT", ports[1].to_string()),
                ("RABBITMQ_URL", rabbit_url()),
                ("QUEUE_PREFIX", qprefix.clone()),
                ("QUEUE_SHARDS", "1".into()),
                ("MDC_REDIS_URL", redis.clone()),
                ("WDC_REDIS_URL", redis.clone()),
                ("REDIS_KEY_PREFIX", rprefix.clone()),
                ("WDC_KEY_PREFIX", format!("{rprefix}wdc:")),
                ("NODE_REGISTRY_URL", String::new()),
                ("PROCESSOR_ENRICHMENT", "false".into()),
                ("MARKET_STATUS_POLL_SECS", "0".into()),
            ],
            ports[1],
        ),
        (
            env!("CARGO_BIN_EXE_tickwire-wds"),
            vec![
                ("SERVER_PORT", ports[2].to_string()),
                ("WDC_REDIS_URL", redis.clone()),
                ("WDS_TOKEN_SECRET", SECRET.into()),
                ("NODE_REGISTRY_URL", String::new()),
            ],
            ports[2],
        ),
        (
            env!("CARGO_BIN_EXE_tickwire-scp"),
            vec![
                ("SERVER_PORT", ports[3].to_string()),
                ("WDS_TOKEN_SECRET", SECRET.into()),
                ("SCP_DATA_DIR", data.to_string_lossy().into_owned()),
                ("SCP_ADMIN_PASSWORD", "a-long-enough-password".into()),
                ("NODE_REGISTRY_URL", String::new()),
            ],
            ports[3],
        ),
        (
            env!("CARGO_BIN_EXE_tickwire"),
            vec![
                ("TICKWIRE_PORT", ports[4].to_string()),
                ("SERVER_PORT", ports[5].to_string()),
                ("SCP_DATA_DIR", data.to_string_lossy().into_owned()),
                ("SCP_ADMIN_PASSWORD", "a-long-enough-password".into()),
            ],
            ports[4],
        ),
    ];
    for (bin, env, port) in cases {
        let mut p = spawn(bin, &env);
        wait_until_async("it answers /health", || ready(port)).await;
        let status = terminate(&mut p.0);
        assert!(status.success(), "{bin} exited with {status} on SIGTERM");
    }
    let _ = std::fs::remove_dir_all(&data);
    delete_pipeline_queues(&qprefix, 1).await;
    common::redis::cleanup(&rprefix).await;
}

/// The sum of a per-queue counter over its queues.
/// A stop under load loses nothing it read: every event the listener read (routed) is
/// published, and a processor then processes every one of them: read = published =
/// processed, counted, not sampled. (The messages live 60 s here so that the count after the stop
/// still finds them all; SIGTERM takes this same `stop` path, `every_binary_exits_cleanly_on_sigterm`.)
#[actix_web::test]
async fn a_stop_under_load_publishes_everything_it_read() {
    use tickwire::actors::listener as node;
    const SHARDS: u16 = 2;
    let qprefix = common::rabbit::unique_prefix("stop-load");
    let mut sim = sim_args();
    sim.rate = 20_000.0;
    let sim = start_sim(sim);
    let extra = [
        "--massive-subscriptions",
        "T.*,Q.*,A.*",
        "--lease",
        "false",
        "--message-ttl",
        "60000",
    ];
    let args = listener_args(sim.port, "demo", &qprefix, &SHARDS.to_string(), &extra);
    let http = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let n = node::start(args, http).expect("node starts");
    let r = n.registry.clone();
    wait_until("the listener is under load", || {
        r.total("tickwire_router_events_total") > 20_000
    })
    .await;

    n.stop().await;
    let read = r.total("tickwire_router_events_total");
    let published = r.total("tickwire_publisher_events_total");
    // A processor then takes everything the queues hold.
    let kprefix = common::redis::unique_prefix("stop-load");
    let mut args = processor_args(&rabbit_url(), &qprefix, &kprefix, SHARDS);
    args.broker.message_ttl_ms = 60_000;
    let processor = start_processor(args);
    let p = processor.registry.clone();
    let processed = || -> i64 {
        (0..SHARDS)
            .filter_map(|s| {
                p.value(
                    "tickwire_processor_events_total",
                    &[("shard", &s.to_string())],
                )
            })
            .sum()
    };
    wait_until("the processor has taken every published event", || {
        processed() >= published
    })
    .await;
    assert_eq!(
        r.value("tickwire_publisher_stopped_unpublished_total", &[]),
        Some(0)
    );
    assert_eq!(r.total("tickwire_publisher_dropped_batches_total"), 0);
    assert_eq!(r.total("tickwire_publisher_failed_total"), 0);
    assert_eq!(read, published, "every event read was published");
    assert_eq!(
        processed(),
        published,
        "every event published was processed, once"
    );
    processor.stop().await;
    delete_pipeline_queues(&qprefix, SHARDS).await;
    common::redis::cleanup(&kprefix).await;
    sim.stop().await;
}
