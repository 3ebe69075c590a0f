//! Two listener replicas on one API key against the simulator and real Redis: exactly one is
//! connected at any time, and the standby takes over when the holder dies.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Arbiter, Context, Handler};
use common::*;
use tickwire::actors::listener::connection::{self as listener, ListenerConfig};
use tickwire::actors::listener::lease::{lease_key, LeaseConfig, LeaseKeeper};
use tickwire::actors::listener::metrics::LeaseFigures;
use tickwire::metrics::{ActorMetrics, Registry};
use tickwire::queue::EventBatch;
use tickwire::recipient::CountedRecipient;

struct Discard(ActorMetrics);

impl Actor for Discard {
    type Context = Context<Self>;
}

impl Handler<EventBatch> for Discard {
    type Result = ();
    fn handle(&mut self, _: EventBatch, _: &mut Context<Self>) {
        self.0.received();
    }
}

/// One replica (listener + lease keeper) on its own arbiter, as if in its own process.
fn replica(name: &str, ws_url: String, lease_key: String) -> (Arbiter, Arc<Registry>) {
    let registry = Registry::new();
    let arbiter = Arbiter::new();
    let (r, holder, redis) = (registry.clone(), name.to_string(), redis::redis_url());
    arbiter.spawn_fn(move || {
        let m = ActorMetrics::new(&r, "discard");
        let sink = Discard(m.clone()).start();
        let cfg = ListenerConfig {
            start_idle: true,
            ..listener_config(ws_url, "demo", "A.*")
        };
        let (listener, _) = listener::start(cfg, 1, CountedRecipient::of(&sink, m), &r);
        let lease = LeaseKeeper::new(
            LeaseConfig {
                redis_url: redis,
                key: lease_key,
                holder,
                ttl: Duration::from_millis(1500),
                redis_grace: Duration::from_millis(1500),
                market: "stocks".into(),
            },
            listener.recipient(),
            LeaseFigures::for_market(&r, "stocks"),
        )
        .expect("lease keeper");
        lease.start();
    });
    (arbiter, registry)
}

fn connected(r: &Registry) -> bool {
    stocks_metric(r, "tickwire_listener_connected") == Some(1)
}

#[actix_web::test]
async fn one_replica_connects_and_the_standby_takes_over() {
    redis::redis_url();
    let prefix = redis::unique_prefix("lease");
    let key = lease_key(&prefix, "demo", "stocks");
    let sim = start_sim(sim_args());
    let (arb_a, a) = replica("replica-a", sim.ws_url("stocks"), key.clone());
    let (arb_b, b) = replica("replica-b", sim.ws_url("stocks"), key.clone());

    let (ra, rb) = (a.clone(), b.clone());
    wait_until("one replica connected", || connected(&ra) || connected(&rb)).await;
    // Watch for a while that never both are connected, and nobody was evicted.
    let both = Arc::new(AtomicBool::new(false));
    for _ in 0..50 {
        if connected(&a) && connected(&b) {
            both.store(true, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !both.load(Ordering::Relaxed),
        "two replicas were connected at once"
    );
    assert_eq!(
        sim.registry.value("tickwire_sim_evictions_total", &[]),
        Some(0)
    );
    let (holder_arb, holder, standby) = if connected(&a) {
        (arb_a, a, b)
    } else {
        (arb_b, b, a)
    };
    assert_eq!(stocks_metric(&holder, "tickwire_lease_held"), Some(1));
    assert_eq!(stocks_metric(&standby, "tickwire_lease_held"), Some(0));

    // Kill the holder: its actors vanish without releasing the lease; it lapses after the TTL.
    holder_arb.stop();
    let s = standby.clone();
    wait_until("the standby takes over", || connected(&s)).await;
    assert_eq!(
        stocks_metric(&standby, "tickwire_lease_acquired_total"),
        Some(1)
    );
    assert_eq!(
        sim.registry.value("tickwire_sim_evictions_total", &[]),
        Some(0),
        "no max_connections fight"
    );
    redis::cleanup(&prefix).await;
    sim.stop().await;
}
