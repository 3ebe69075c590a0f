//! The listener against the simulator: events reach the right (queue, shard) with their
//! original bytes; it reconnects and resubscribes after every drop; a bad key stops it
//! cleanly with no reconnect storm.

mod common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use actix::{Actor, Context, Handler};
use common::*;
use tickwire::actors::listener::connection::{self as listener, ListenerConfig};
use tickwire::metrics::{ActorMetrics, Registry};
use tickwire::queue::EventBatch;
use tickwire::queue::{shard_of, QueueKind};
use tickwire::recipient::CountedRecipient;

/// In-process sink standing in for the queue publisher.
struct Collector {
    got: Arc<Mutex<Vec<EventBatch>>>,
    metrics: ActorMetrics,
}

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<EventBatch> for Collector {
    type Result = ();
    fn handle(&mut self, msg: EventBatch, _: &mut Context<Self>) {
        self.metrics.received();
        self.got.lock().unwrap().push(msg);
    }
}

fn config(url: String, key: &str, subs: &str) -> ListenerConfig {
    listener_config(url, key, subs)
}

fn collector(registry: &Registry) -> (CountedRecipient<EventBatch>, Arc<Mutex<Vec<EventBatch>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let metrics = ActorMetrics::new(registry, "collector");
    let addr = Collector {
        got: got.clone(),
        metrics: metrics.clone(),
    }
    .start();
    (CountedRecipient::of(&addr, metrics), got)
}

#[actix_web::test]
async fn events_reach_their_queue_and_shard_unchanged() {
    let sim = start_sim(sim_args());
    let registry = Registry::new();
    let (sink, got) = collector(&registry);
    let (_l, health) = listener::start(
        config(sim.ws_url("stocks"), "demo", "T.*,Q.*,A.*,LULD.*"),
        4,
        sink,
        &registry,
    );
    let g = got.clone();
    wait_until("trades, quotes and bars routed", || {
        let b = g.lock().unwrap();
        [QueueKind::Trades, QueueKind::Quotes, QueueKind::Aggregate]
            .iter()
            .all(|q| b.iter().any(|x| x.queue == *q))
    })
    .await;
    assert!(health.authenticated.load(Ordering::Relaxed));
    for batch in got.lock().unwrap().iter() {
        assert!(batch.received_at_ms > 0);
        for raw in &batch.events {
            let v: serde_json::Value = serde_json::from_slice(raw).expect("original JSON object");
            assert_ne!(v["ev"], "status", "status messages are not forwarded");
            assert_eq!(QueueKind::of(v["ev"].as_str().unwrap()), batch.queue);
            let sym = v["sym"].as_str().or(v["T"].as_str()).unwrap();
            assert_eq!(shard_of(sym, 4), batch.shard, "per-symbol shard");
        }
    }
    assert!(
        registry
            .value(
                "tickwire_listener_status_total",
                &[("market", "stocks"), ("status", "success")]
            )
            .unwrap()
            >= 4
    );
    sim.stop().await;
}

#[actix_web::test]
async fn reconnects_and_resubscribes_after_every_drop() {
    let mut a = sim_args();
    a.drop_every_secs = 1;
    let sim = start_sim(a);
    let registry = Registry::new();
    let (sink, got) = collector(&registry);
    let _l = listener::start(
        config(sim.ws_url("stocks"), "demo", "Q.*"),
        2,
        sink,
        &registry,
    );
    let sim_registry = sim.registry.clone();
    wait_until("three dropped connections", || {
        sim_registry
            .value("tickwire_sim_faults_total", &[("kind", "drop")])
            .unwrap_or(0)
            >= 3
    })
    .await;
    // Data flows again after the third reconnect: every connection re-authenticated and resubscribed.
    let before = got.lock().unwrap().len();
    let g = got.clone();
    wait_until("data after reconnect", || {
        g.lock().unwrap().len() > before + 10
    })
    .await;
    assert!(
        registry
            .value(
                "tickwire_listener_reconnects_total",
                &[("market", "stocks")]
            )
            .unwrap()
            >= 3
    );
    assert!(
        sim.registry
            .value("tickwire_sim_auth_total", &[("result", "success")])
            .unwrap()
            >= 4
    );
    let acks = registry
        .value(
            "tickwire_listener_status_total",
            &[("market", "stocks"), ("status", "success")],
        )
        .unwrap();
    assert!(acks >= 4, "one Q.* ack per connection, got {acks}");
    sim.stop().await;
}

#[actix_web::test]
async fn a_bad_key_is_fatal_without_a_retry_storm() {
    let sim = start_sim(sim_args());
    let registry = Registry::new();
    let (sink, _) = collector(&registry);
    let (_l, health) = listener::start(
        config(sim.ws_url("stocks"), "wrong", "A.*"),
        1,
        sink,
        &registry,
    );
    let h = health.clone();
    wait_until("fatal auth state", || h.fatal.load(Ordering::Relaxed)).await;
    // The supervisor restarts the actor once; a fatal listener does not connect again.
    let r = registry.clone();
    wait_until("supervisor restart", || {
        r.value(
            "tickwire_listener_reconnects_total",
            &[("market", "stocks")],
        )
        .unwrap_or(0)
            >= 1
    })
    .await;
    assert_eq!(
        stocks_metric(&registry, "tickwire_listener_connects_total"),
        Some(1)
    );
    assert!(health
        .last_error
        .lock()
        .unwrap()
        .contains("authentication failed"));
    sim.stop().await;
}

/// The simulator's holidays for tests: `days` closed (`YYYY-MM-DD[/early]`, comma list).
fn holidays(days: &str) -> tickwire::actors::sim::config::Holidays {
    let mut c = tickwire::analyzers::calendar::TradingCalendar::default();
    c.prime(tickwire::analyzers::calendar::parse_days(days).expect("days"));
    tickwire::actors::sim::config::Holidays(std::sync::Arc::new(c))
}

/// A listener that asks the simulator's market status before connecting, once it has found
/// the market closed (and so not connected): its registry, address and health.
async fn idle_while_closed(
    sim: &tickwire::actors::sim::SimServer,
) -> (
    std::sync::Arc<Registry>,
    actix::Addr<listener::Listener>,
    std::sync::Arc<listener::ListenerHealth>,
) {
    idle_with_status_from(sim, sim.http_url("")).await
}

/// The same with market status asked of `rest_url`.
async fn idle_with_status_from(
    sim: &tickwire::actors::sim::SimServer,
    rest_url: String,
) -> (
    std::sync::Arc<Registry>,
    actix::Addr<listener::Listener>,
    std::sync::Arc<listener::ListenerHealth>,
) {
    let registry = Registry::new();
    let (sink, _) = collector(&registry);
    let mut cfg = config(sim.ws_url("stocks"), "demo", "A.*");
    cfg.rest_url = Some(rest_url);
    let (l, health) = listener::start(cfg, 1, sink, &registry);
    let r = registry.clone();
    wait_until("a closed-market poll", || {
        r.value(
            "tickwire_listener_market_closed_polls_total",
            &[("market", "stocks")],
        )
        .unwrap_or(0)
            >= 1
    })
    .await;
    assert_eq!(
        stocks_metric(&registry, "tickwire_listener_connects_total"),
        Some(0)
    );
    (registry, l, health)
}

/// A market holiday (issue 25): market status says closed all day, so the listener polls it
/// instead of connecting, as on a weekend.
#[actix_web::test]
async fn a_holiday_keeps_the_listener_idle() {
    let mut a = sim_args();
    let start = tickwire::clock::parse_start(&a.start_time, chrono::Utc::now()).expect("start");
    let today = tickwire::clock::to_et(start).date();
    a.holidays = holidays(&today.to_string());
    let sim = start_sim(a);
    let (_registry, _l, _) = idle_while_closed(&sim).await;
    assert_eq!(
        sim.registry.value("tickwire_sim_connections_total", &[]),
        Some(0)
    );
    sim.stop().await;
}

/// A holiday learnt ahead from `/v1/marketstatus/upcoming` keeps the listener idle even when
/// `/v1/marketstatus/now` fails (issue 25): the calendar knows the day, the status call is
/// not needed. (A stub REST server: `/now` answers 503, `upcoming` lists the days around
/// today as NYSE holidays.)
#[actix_web::test]
async fn a_holiday_from_upcoming_keeps_the_listener_idle_when_status_fails() {
    use actix_web::{web, App, HttpResponse, HttpServer};
    let today = tickwire::clock::to_et(chrono::Utc::now()).date();
    let days: Vec<serde_json::Value> = [-1, 0, 1]
        .iter()
        .map(|d| {
            serde_json::json!({"exchange": "NYSE", "name": "Test Day", "status": "closed",
                               "date": (today + chrono::Duration::days(*d)).to_string()})
        })
        .collect();
    let body = serde_json::Value::from(days);
    let bind = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = bind.local_addr().expect("addr").port();
    let server = HttpServer::new(move || {
        let body = body.clone();
        App::new()
            .route(
                "/v1/marketstatus/now",
                web::get().to(|| async { HttpResponse::ServiceUnavailable().finish() }),
            )
            .route(
                "/v1/marketstatus/upcoming",
                web::get().to(move || {
                    let body = body.clone();
                    async move { HttpResponse::Ok().json(body) }
                }),
            )
    })
    .workers(1)
    .listen(bind)
    .expect("listen")
    .run();
    let stub = server.handle();
    actix_web::rt::spawn(server);
    let sim = start_sim(sim_args());
    let (registry, _l, _) = idle_with_status_from(&sim, format!("http://127.0.0.1:{port}")).await;
    assert!(
        stocks_metric(&registry, "tickwire_listener_market_status_errors_total")
            .is_some_and(|n| n >= 1),
        "the status call failed"
    );
    assert_eq!(
        sim.registry.value("tickwire_sim_connections_total", &[]),
        Some(0)
    );
    stub.stop(false).await;
    sim.stop().await;
}

#[actix_web::test]
async fn polls_market_status_while_closed_then_connects_at_4am() {
    let mut a = sim_args();
    a.start_time = "03:59:58".into();
    let sim = start_sim(a);
    let (registry, _l, health) = idle_while_closed(&sim).await;
    // 04:00 ET: pre-market opens, the listener connects.
    let h = health.clone();
    wait_until("connected after the 04:00 open", || {
        h.authenticated.load(Ordering::Relaxed)
    })
    .await;
    assert_eq!(
        stocks_metric(&registry, "tickwire_listener_market_status_errors_total"),
        Some(0)
    );
    sim.stop().await;
}

#[actix_web::test]
async fn malformed_and_unknown_input_is_counted_and_the_connection_stays() {
    let mut a = sim_args();
    a.malformed_every = 3;
    a.unknown_every = 4;
    let sim = start_sim(a);
    let registry = Registry::new();
    let (sink, got) = collector(&registry);
    let _l = listener::start(
        config(sim.ws_url("stocks"), "demo", "Q.*"),
        1,
        sink,
        &registry,
    );
    let r = registry.clone();
    wait_until("bad elements counted and unknown events routed", || {
        r.value("tickwire_router_events_total", &[("queue", "unknown")])
            .unwrap_or(0)
            >= 3
    })
    .await;
    // The malformed element (a T with a string price) still has a readable ev: it is routed
    // as-is for the consumer to reject; elements without ev are skipped. Unknown events kept.
    assert!(got
        .lock()
        .unwrap()
        .iter()
        .any(|b| b.queue == QueueKind::Unknown));
    assert_eq!(
        stocks_metric(&registry, "tickwire_listener_reconnects_total"),
        Some(0)
    );
    sim.stop().await;
}

#[actix_web::test]
async fn truncated_frames_are_skipped_and_the_connection_stays() {
    let mut a = sim_args();
    a.malformed_every = 2;
    a.malformed_mode = tickwire::actors::sim::config::MalformedMode::Truncated;
    let sim = start_sim(a);
    let registry = Registry::new();
    let (sink, _) = collector(&registry);
    let _l = listener::start(
        config(sim.ws_url("stocks"), "demo", "Q.*"),
        1,
        sink,
        &registry,
    );
    let r = registry.clone();
    wait_until("bad frames skipped", || {
        r.value("tickwire_router_skipped_frames_total", &[])
            .unwrap_or(0)
            >= 3
    })
    .await;
    assert_eq!(
        stocks_metric(&registry, "tickwire_listener_reconnects_total"),
        Some(0)
    );
    sim.stop().await;
}

#[actix_web::test]
async fn connect_failures_keep_retrying() {
    // A port nothing listens on: every dial fails, the loop goes on with backoff.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let registry = Registry::new();
    let (sink, _) = collector(&registry);
    let (_l, health) = listener::start(
        config(format!("ws://127.0.0.1:{port}/stocks"), "demo", "A.*"),
        1,
        sink,
        &registry,
    );
    let r = registry.clone();
    wait_until("three failed dials", || {
        r.value(
            "tickwire_listener_connect_errors_total",
            &[("market", "stocks")],
        )
        .unwrap_or(0)
            >= 3
    })
    .await;
    assert!(
        !health.fatal.load(Ordering::Relaxed),
        "transient failures are never fatal"
    );
    assert!(health.last_error.lock().unwrap().starts_with("connect:"));
}

#[actix_web::test]
async fn oversize_frames_are_counted_and_skipped() {
    let mut a = sim_args();
    a.rate = 20_000.0;
    let sim = start_sim(a);
    let registry = Registry::new();
    let (sink, got) = collector(&registry);
    // A limit below the simulator's larger frames (100 events, ~12 KB) but above status frames.
    let cfg = ListenerConfig {
        max_frame_bytes: 4096,
        widen: None,
        ..config(sim.ws_url("stocks"), "demo", "Q.*,T.*")
    };
    let (_l, health) = listener::start(cfg, 1, sink, &registry);
    let r = registry.clone();
    wait_until("oversize frames skipped", || {
        stocks_metric(&r, "tickwire_listener_oversize_frames_total").unwrap_or(0) >= 3
    })
    .await;
    assert!(
        health.authenticated.load(Ordering::Relaxed),
        "status frames still read"
    );
    assert_eq!(
        stocks_metric(&registry, "tickwire_listener_reconnects_total"),
        Some(0),
        "the connection stays"
    );
    // Smaller frames still go through.
    let g = got.clone();
    wait_until("small frames routed", || !g.lock().unwrap().is_empty()).await;
    sim.stop().await;
}

/// Massive may split a message into continuation frames; each is put back together and its
/// events routed whole, and binary frames (which Massive does not send) are counted and
/// skipped. Every event the simulator sent arrives: nothing is lost in the parts. (A finite
/// replay, so that "everything sent" is a fixed number once it has played.)
#[actix_web::test]
async fn fragmented_messages_are_reassembled_and_binary_frames_counted() {
    let dir = temp_dir("fragments");
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let capture = dir.join("capture.jsonl");
    let lines: Vec<String> = (0..300i64)
        .map(|n| {
            let t = 1_772_652_572_000 + n * 10;
            let events: Vec<String> = (0..5)
                .map(|k| format!(r#"{{"ev":"T","sym":"S{k}","p":1.5,"s":{n},"t":{t}}}"#))
                .collect();
            format!(
                r#"{{"t":{t},"market":"stocks","frame":[{}]}}"#,
                events.join(",")
            )
        })
        .collect();
    std::fs::write(&capture, lines.join("\n")).expect("write the capture");
    let mut a = sim_args();
    a.replay = Some(capture.clone());
    a.replay_speed = 1.0;
    a.replay_loop = false;
    a.fragment_every = 2;
    a.binary_every = 3;
    let sim = start_sim(a);
    let registry = Registry::new();
    let (sink, got) = collector(&registry);
    let (_l, _) = listener::start(
        config(sim.ws_url("stocks"), "demo", "T.*"),
        1,
        sink,
        &registry,
    );
    let r = registry.clone();
    wait_until(
        "fragmented messages reassembled and binary frames counted",
        || {
            stocks_metric(&r, "tickwire_listener_reassembled_total").unwrap_or(0) >= 5
                && stocks_metric(&r, "tickwire_listener_binary_frames_total").unwrap_or(0) >= 3
        },
    )
    .await;
    // Once the replay has played out, what was sent is fixed: every event of it is routed.
    let simr = sim.registry.clone();
    let g = got.clone();
    wait_until("every event sent is routed", || {
        let sent = simr
            .value("tickwire_sim_events_replayed_total", &[])
            .unwrap_or(0);
        let to_us = simr
            .value("tickwire_sim_events_sent_total", &[])
            .unwrap_or(-1);
        let routed: i64 = g
            .lock()
            .unwrap()
            .iter()
            .map(|b| b.events.len() as i64)
            .sum();
        sent >= 1500 && routed == to_us
    })
    .await;
    assert_eq!(
        registry.value("tickwire_router_skipped_frames_total", &[]),
        Some(0)
    );
    let _ = std::fs::remove_dir_all(&dir);
    sim.stop().await;
}

/// Another connection with our key makes Massive evict us (`max_connections`): that is not
/// transient, so the listener counts it, says why on its health, waits the cooldown (60 s in
/// production, 1 s here) instead of evicting the other at once, then takes the key back.
#[actix_web::test]
async fn a_max_connections_eviction_waits_the_cooldown_then_takes_the_key_back() {
    let sim = start_sim(sim_args());
    let registry = Registry::new();
    let (sink, got) = collector(&registry);
    let mut cfg = config(sim.ws_url("stocks"), "demo", "Q.*");
    cfg.max_connections_cooldown = std::time::Duration::from_secs(1);
    let (_l, health) = listener::start(cfg, 2, sink, &registry);
    let g = got.clone();
    wait_until("the listener streams", || !g.lock().unwrap().is_empty()).await;

    // Someone else connects with the same key: the listener is the older, it is evicted.
    let mut other = Client::authed(&sim.ws_url("stocks"), "demo").await;
    let evicted = || {
        registry
            .value(
                "tickwire_listener_status_total",
                &[("market", "stocks"), ("status", "max_connections")],
            )
            .unwrap_or(0)
    };
    wait_until("the eviction is counted", || evicted() == 1).await;
    assert!(
        health.last_error().contains("max_connections"),
        "health says why: {}",
        health.last_error()
    );
    // After the cooldown it connects again, evicting the other in turn.
    other
        .expect_status(
            "max_connections",
            "Maximum number of websocket connections exceeded. ",
        )
        .await;
    wait_until("streaming again", || {
        health.authenticated.load(Ordering::Relaxed)
    })
    .await;
    let before = got.lock().unwrap().len();
    let g = got.clone();
    wait_until("data after taking the key back", || {
        g.lock().unwrap().len() > before
    })
    .await;
    assert_eq!(
        sim.registry.value("tickwire_sim_evictions_total", &[]),
        Some(2)
    );
    assert_eq!(evicted(), 1, "evicted once: no eviction ping-pong");
    sim.stop().await;
}

/// A Massive socket that goes silent (the TCP connection stays up, but nothing arrives, not
/// even a pong) is declared dead after `dead_after`, counted, and replaced by a new one.
#[actix_web::test]
async fn a_silent_massive_socket_is_declared_dead_and_replaced() {
    let sim = start_sim(sim_args());
    let proxy = common::proxy::Proxy::start_to(&format!("127.0.0.1:{}", sim.port)).await;
    let registry = Registry::new();
    let (sink, got) = collector(&registry);
    let mut cfg = config(
        format!("ws://127.0.0.1:{}/stocks", proxy.port),
        "demo",
        "Q.*",
    );
    cfg.ping_every = std::time::Duration::from_millis(250);
    cfg.dead_after = std::time::Duration::from_secs(2);
    let (_l, health) = listener::start(cfg, 2, sink, &registry);
    let g = got.clone();
    wait_until("the listener streams", || !g.lock().unwrap().is_empty()).await;

    proxy.freeze();
    let dead = || stocks_metric(&registry, "tickwire_listener_dead_peer_total").unwrap_or(0);
    wait_until("the silent socket is declared dead", || dead() >= 1).await;
    wait_until("a new connection", || proxy.links() >= 2).await;
    wait_until("authenticated again", || {
        health.authenticated.load(Ordering::Relaxed)
    })
    .await;
    let before = got.lock().unwrap().len();
    let g = got.clone();
    wait_until("data on the new socket", || {
        g.lock().unwrap().len() > before
    })
    .await;
    sim.stop().await;
}
