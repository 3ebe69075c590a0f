//! The listener node end to end (simulator, real RabbitMQ and Redis): readiness, node stats,
//! token-protected idempotent control routes with 4xx reasons, and `--record`.

mod common;

use common::rabbit::{delete_pipeline_queues, rabbit_url};
use common::*;
use tickwire::actors::listener as node;

/// The admin token of the nodes these tests start.
const ADMIN: &str = "listener-test-admin-token-32-bytes";

async fn send(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, serde_json::Value) {
    let client = awc::Client::new();
    let mut req = match method {
        "PUT" => client.put(url),
        _ => client.post(url),
    };
    if let Some(t) = token {
        req = req.insert_header(("Authorization", format!("Bearer {t}")));
    }
    let mut resp = req.send_body(body.to_string()).await.expect("request");
    let bytes = resp.body().await.expect("body");
    (
        resp.status().as_u16(),
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

#[actix_web::test]
async fn node_ready_stats_control_and_record() {
    rabbit_url(); // fails clearly when RabbitMQ is down
    let redis = common::redis::redis_url();
    let qprefix = common::rabbit::unique_prefix("node");
    let rprefix = common::redis::unique_prefix("node");
    let record = std::env::temp_dir().join(format!("tickwire-record-{}.jsonl", std::process::id()));
    let sim = start_sim(sim_args());
    let rec = record.to_str().unwrap();
    let extra = [
        "--massive-subscriptions",
        "Q.*,A.*",
        "--redis-url",
        &redis,
        "--redis-prefix",
        &rprefix,
        "--lease-ttl-ms",
        "1500",
        "--admin-token",
        ADMIN,
        "--record",
        rec,
    ];
    let args = listener_args(sim.port, "demo", &qprefix, "2", &extra);
    let http = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let n = node::start(args, http).expect("node starts");

    let url = n.url("/ready");
    let start = std::time::Instant::now();
    loop {
        let (s, body) = get_json(&url, None).await;
        if s == 200 {
            break;
        }
        assert!(start.elapsed() < DEADLINE, "never ready: {body}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (s, health) = get_json(&n.url("/health"), None).await;
    assert_eq!((s, health["status_code"].as_i64()), (200, Some(1)));
    assert_eq!(health["service"], "Massive Data Listener");
    assert_eq!(health["mdq_connection_status"]["connected"], true);
    assert_eq!(health["mdl_connection_status"]["market"], "stocks");
    assert_eq!(health["auto-start"], true);
    let (_, stats) = get_json(&n.url("/stats"), None).await;
    assert_eq!(stats["node"]["stocks"]["state"], "streaming");
    let reg = n.registry.clone();
    wait_until("frame lag measured", || {
        reg.value("tickwire_router_frame_lag_ms", &[("market", "stocks")])
            .is_some()
    })
    .await;
    assert_eq!(
        stats["counters"]["tickwire_listener_market_status_errors_total{market=\"stocks\"}"],
        0
    );
    assert_eq!(
        stats["node"]["stocks"]["subscriptions"],
        serde_json::json!(["Q.*", "A.*"])
    );
    assert!(stats["node"]["stocks"]["lease_holder"]
        .as_str()
        .unwrap()
        .contains('-'));

    // Control: token required, bad values refused with a reason, good ones applied.
    assert_eq!(
        send("POST", &n.url("/control/restart"), None, "").await.0,
        401
    );
    assert_eq!(
        send("POST", &n.url("/control/restart"), Some("wrong"), "")
            .await
            .0,
        401
    );
    let (s, b) = send("POST", &n.url("/control/explode"), Some(ADMIN), "").await;
    assert_eq!(s, 400);
    assert!(b["error"].as_str().unwrap().contains("unknown control"));
    let (s, b) = send(
        "PUT",
        &n.url("/control/subscriptions"),
        Some(ADMIN),
        r#"["XT.*"]"#,
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert!(b["error"]
        .as_str()
        .unwrap()
        .contains("does not exist on /stocks"));
    let (s, _) = send(
        "PUT",
        &n.url("/control/market?market=bonds"),
        Some(ADMIN),
        "",
    )
    .await;
    assert_eq!(s, 400);
    // The listener sends its API key to its feed: an admin token alone cannot point it at
    // a host off the allowlist (Massive's feeds and the configured one).
    let (s, b) = send(
        "PUT",
        &n.url("/control/feed?feed=evil.example:443"),
        Some(ADMIN),
        "",
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert!(b["error"].as_str().unwrap().contains("not allowed"), "{b}");
    let same = format!("/control/feed?feed=127.0.0.1:{}", sim.port);
    assert_eq!(send("PUT", &n.url(&same), Some(ADMIN), "").await.0, 200);
    assert_eq!(
        send(
            "PUT",
            &n.url("/control/subscriptions"),
            Some(ADMIN),
            "T.AAPL"
        )
        .await
        .0,
        200
    );
    let acks = |r: &tickwire::metrics::Registry| {
        r.value(
            "tickwire_listener_status_total",
            &[("market", "stocks"), ("status", "success")],
        )
        .unwrap_or(0)
    };
    let reg = n.registry.clone();
    wait_until("resubscribed with the new topic", || acks(&reg) >= 3).await;
    let (_, stats) = get_json(&n.url("/stats"), None).await;
    assert_eq!(
        stats["node"]["stocks"]["subscriptions"],
        serde_json::json!(["T.AAPL"])
    );

    // Stop is idempotent and drops the Massive connection; start brings it back.
    for _ in 0..2 {
        assert_eq!(
            send("POST", &n.url("/control/stop"), Some(ADMIN), "")
                .await
                .0,
            200,
            "idempotent"
        );
    }
    let simr = sim.registry.clone();
    wait_until("Massive connection closed", || {
        simr.value("tickwire_sim_connections", &[]) == Some(0)
    })
    .await;
    assert_eq!(get_json(&url, None).await.0, 503);
    for _ in 0..2 {
        assert_eq!(
            send("POST", &n.url("/control/start"), Some(ADMIN), "")
                .await
                .0,
            200,
            "idempotent"
        );
    }
    let simr = sim.registry.clone();
    wait_until("reconnected", || {
        simr.value("tickwire_sim_connections", &[]) == Some(1)
    })
    .await;

    // The recording replays.
    let reg = n.registry.clone();
    wait_until("frames recorded", || {
        reg.value("tickwire_recorder_frames_total", &[])
            .unwrap_or(0)
            >= 5
    })
    .await;
    let rec = record.clone();
    wait_until("capture flushed", || {
        std::fs::read_to_string(&rec)
            .map(|t| t.lines().count() >= 3)
            .unwrap_or(false)
    })
    .await;
    let text = std::fs::read_to_string(&record).unwrap();
    let complete: String = text.lines().take(3).map(|l| format!("{l}\n")).collect();
    let (frames, _) = tickwire::actors::sim::replay::parse_capture(&complete)
        .expect("the capture is in replay format");
    assert!(!frames.is_empty());

    n.stop().await;
    delete_pipeline_queues(&qprefix, 2).await;
    common::redis::cleanup(&rprefix).await;
    let _ = std::fs::remove_file(&record);
    sim.stop().await;
}

#[actix_web::test]
async fn one_connection_per_market_in_one_process() {
    rabbit_url(); // fails clearly when RabbitMQ is down
    let redis = common::redis::redis_url();
    let qprefix = common::rabbit::unique_prefix("multi");
    let rprefix = common::redis::unique_prefix("multi");
    let sim = start_sim(sim_args());
    let extra = [
        "--massive-market",
        "stocks,crypto",
        "--massive-subscriptions",
        "Q.*,XT.*",
        "--redis-url",
        &redis,
        "--redis-prefix",
        &rprefix,
        "--lease-ttl-ms",
        "1500",
        "--admin-token",
        ADMIN,
    ];
    let args = listener_args(sim.port, "demo", &qprefix, "1", &extra);
    let http = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let n = node::start(args, http).expect("node starts");
    let url = n.url("/ready");
    let start = std::time::Instant::now();
    loop {
        let (s, body) = get_json(&url, None).await;
        if s == 200 {
            assert_eq!(body["checks"]["massive:crypto"], "ok");
            assert_eq!(body["checks"]["lease:stocks"], "ok");
            break;
        }
        assert!(start.elapsed() < DEADLINE, "never ready: {body}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        sim.registry.value("tickwire_sim_connections", &[]),
        Some(2),
        "one per market"
    );
    let (_, stats) = get_json(&n.url("/stats"), None).await;
    assert_eq!(
        stats["node"]["stocks"]["subscriptions"],
        serde_json::json!(["Q.*"])
    );
    assert_eq!(
        stats["node"]["crypto"]["subscriptions"],
        serde_json::json!(["XT.*"])
    );
    // Control one market only.
    assert_eq!(
        send(
            "POST",
            &n.url("/control/stop?market=crypto"),
            Some(ADMIN),
            ""
        )
        .await
        .0,
        200
    );
    let simr = sim.registry.clone();
    wait_until("crypto closed, stocks kept", || {
        simr.value("tickwire_sim_connections", &[]) == Some(1)
    })
    .await;
    let (_, stats) = get_json(&n.url("/stats"), None).await;
    assert_eq!(stats["node"]["crypto"]["state"], "idle");
    assert_eq!(stats["node"]["stocks"]["state"], "streaming");
    assert_eq!(
        send(
            "POST",
            &n.url("/control/stop?market=forex"),
            Some(ADMIN),
            ""
        )
        .await
        .0,
        400
    );
    n.stop().await;
    delete_pipeline_queues(&qprefix, 1).await;
    common::redis::cleanup(&rprefix).await;
    sim.stop().await;
}

#[actix_web::test]
async fn a_refused_key_is_unhealthy_and_stops_cleanly() {
    rabbit_url(); // fails clearly when RabbitMQ is down
    let qprefix = common::rabbit::unique_prefix("badkey");
    let sim = start_sim(sim_args());
    let args = listener_args(sim.port, "wrong", &qprefix, "1", &["--lease", "false"]);
    let http = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let n = node::start(args, http).expect("node starts");
    let url = n.url("/ready");
    let start = std::time::Instant::now();
    loop {
        let (s, ready) = get_json(&url, None).await;
        assert_eq!(s, 503);
        let auth = ready["checks"]["massive:stocks"]
            .as_str()
            .unwrap_or("")
            .contains("authentication failed");
        if auth && ready["checks"]["broker"] == "ok" {
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "refusal never reported: {ready}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (s, health) = get_json(&n.url("/health"), None).await;
    assert_eq!(s, 503);
    assert_eq!(
        (health["status"].as_str(), health["status_code"].as_i64()),
        (Some("Unhealthy"), Some(0))
    );
    assert_eq!(
        sim.registry.value("tickwire_sim_connections_total", &[]),
        Some(1),
        "no retry storm"
    );
    n.stop().await;
    delete_pipeline_queues(&qprefix, 1).await;
    sim.stop().await;
}
