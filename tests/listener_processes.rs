//! Two `tickwire-listener` processes on one API key (simulator, real RabbitMQ and Redis):
//! exactly one is connected at any time; when the holder is killed (SIGKILL, no goodbye),
//! the standby takes over within seconds, and Massive never sees two connections.

mod common;

use std::time::Duration;

use common::rabbit::{delete_pipeline_queues, rabbit_url};
use common::*;

fn spawn(sim_port: u16, admin_port: u16, qprefix: &str, rprefix: &str) -> Proc {
    let redis = common::redis::redis_url();
    let env = [("REDIS_KEY_PREFIX", rprefix)];
    listener_process(sim_port, admin_port, qprefix, &redis, &env)
}

#[actix_web::test]
async fn two_processes_one_connection_and_takeover_on_kill() {
    rabbit_url();
    let qprefix = common::rabbit::unique_prefix("procs");
    let rprefix = common::redis::unique_prefix("procs");
    let sim = start_sim(sim_args());
    let (pa, pb) = (free_port(), free_port());
    let mut a = spawn(sim.port, pa, &qprefix, &rprefix);
    let mut b = spawn(sim.port, pb, &qprefix, &rprefix);

    let simr = sim.registry.clone();
    wait_until("one listener connected", || {
        simr.value("tickwire_sim_auth_total", &[("result", "success")])
            .unwrap_or(0)
            >= 1
    })
    .await;
    // Both are up and exactly one holds the lease.
    let start = std::time::Instant::now();
    let (held_a, held_b) = loop {
        if let (Some(x), Some(y)) = (lease_held(pa).await, lease_held(pb).await) {
            if x != y {
                break (x, y);
            }
        }
        if start.elapsed() >= DEADLINE {
            // What each said last, and whether it is still running (a process that could not
            // start, say its admin port taken meanwhile, shows here as an exit status).
            panic!(
                "never exactly one lease holder: a held {:?}, exited {:?}; b held {:?}, exited {:?}",
                lease_held(pa).await,
                a.0.try_wait(),
                lease_held(pb).await,
                b.0.try_wait()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(held_a ^ held_b);
    for _ in 0..25 {
        assert!(
            sim.registry
                .value("tickwire_sim_connections", &[])
                .unwrap_or(0)
                <= 1,
            "two connections at once"
        );
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let (holder, standby_port, standby) = if held_a { (a, pb, b) } else { (b, pa, a) };

    drop(holder); // SIGKILL: the lease is not released; it lapses after its TTL.
    let start = std::time::Instant::now();
    loop {
        if lease_held(standby_port).await == Some(true)
            && sim.registry.value("tickwire_sim_connections", &[]) == Some(1)
        {
            break;
        }
        assert!(start.elapsed() < DEADLINE, "the standby never took over");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        sim.registry.value("tickwire_sim_evictions_total", &[]),
        Some(0),
        "never two connections"
    );
    assert_eq!(
        sim.registry
            .value("tickwire_sim_auth_total", &[("result", "success")]),
        Some(2)
    );
    drop(standby);
    delete_pipeline_queues(&qprefix, 1).await;
    common::redis::cleanup(&rprefix).await;
    sim.stop().await;
}
