//! The simulator's WebSocket lifecycle, driven by a real WebSocket client (awc) against an
//! in-process simulator on port 0: connect, bad key, good key, pipelined subscribe, acks,
//! wildcard data, eviction, slow-consumer kill, faults, replay.

mod common;

use std::collections::HashSet;

use common::*;
use tickwire::actors::sim::config::{CloseMode, MalformedMode};
use tickwire::massive::{parse_frame, Event, Market};

#[actix_web::test]
async fn bad_key_gets_auth_failed_then_close_1000() {
    let sim = start_sim(sim_args());
    let mut c = Client::connect(&sim.ws_url("stocks")).await;
    c.expect_status("connected", "Connected Successfully").await;
    c.send(r#"{"action":"auth","params":"wrong"}"#).await;
    c.expect_status("auth_failed", "authentication failed")
        .await;
    assert_eq!(c.until_end().await, Ended::Closed(Some(1000)));
    assert_eq!(
        sim.registry
            .value("tickwire_sim_auth_total", &[("result", "unknown_key")]),
        Some(1)
    );
    sim.stop().await;
}

#[actix_web::test]
async fn auth_failure_can_abort_instead() {
    let mut a = sim_args();
    a.auth_failure_close = CloseMode::Abort;
    let sim = start_sim(a);
    let mut c = Client::connect(&sim.ws_url("stocks")).await;
    c.expect_status("connected", "Connected Successfully").await;
    c.send(r#"{"action":"auth","params":"wrong"}"#).await;
    c.expect_status("auth_failed", "authentication failed")
        .await;
    assert_eq!(c.until_end().await, Ended::Aborted);
    sim.stop().await;
}

#[actix_web::test]
async fn market_outside_plan_gets_plan_text() {
    let sim = start_sim(sim_args());
    let mut c = Client::connect(&sim.ws_url("options")).await;
    c.expect_status("connected", "Connected Successfully").await;
    c.send(r#"{"action":"auth","params":"stocksonly"}"#).await;
    c.expect_status(
        "auth_failed",
        "Your plan doesn't include websocket access. Visit https://massive.com/pricing to upgrade.",
    )
    .await;
    assert_eq!(c.until_end().await, Ended::Closed(Some(1000)));
    sim.stop().await;
}

#[actix_web::test]
async fn silence_gets_auth_timeout() {
    let mut a = sim_args();
    a.auth_timeout_ms = 200;
    let sim = start_sim(a);
    let mut c = Client::connect(&sim.ws_url("stocks")).await;
    c.expect_status("connected", "Connected Successfully").await;
    c.expect_status("auth_timeout", "No authentication request received.")
        .await;
    assert_eq!(c.until_end().await, Ended::Closed(Some(1000)));
    sim.stop().await;
}

#[actix_web::test]
async fn unknown_market_path_is_404_and_every_market_connects() {
    let sim = start_sim(sim_args());
    let (status, _) = get_json(&sim.http_url("/bonds"), None).await;
    assert_eq!(status, 404);
    for m in Market::ALL {
        let mut c = Client::connect(&sim.ws_url(m.path())).await;
        c.expect_status("connected", "Connected Successfully").await;
    }
    sim.stop().await;
}

#[actix_web::test]
async fn pipelined_auth_and_subscribe_get_one_ack_per_topic_then_data() {
    let sim = start_sim(sim_args());
    let mut c = Client::connect(&sim.ws_url("stocks")).await;
    // Everything sent back to back, before any reply (the Go client's style).
    c.send(r#"{"action":"auth","params":"demo"}"#).await;
    c.send(r#"{"action":"subscribe","params":"T.*, Q.AAPL,ZZ.AAPL,T.NOTATICKER"}"#)
        .await;
    let st = c.statuses(5).await;
    assert_eq!(st[0], ("connected".into(), "Connected Successfully".into()));
    assert_eq!(st[1], ("auth_success".into(), "authenticated".into()));
    assert_eq!(st[2], ("success".into(), "subscribed to: T.*".into()));
    assert_eq!(st[3], ("success".into(), "subscribed to: Q.AAPL".into()));
    // ZZ (unknown prefix) got no reply; the unknown ticker was acked and stays silent.
    assert_eq!(
        st[4],
        ("success".into(), "subscribed to: T.NOTATICKER".into())
    );
    assert_eq!(st.len(), 5, "nothing answers ZZ.AAPL");

    let mut kinds = HashSet::new();
    let mut seen = 0;
    while seen < 2000 || !kinds.contains("Q") {
        let raw = c.next_text_raw().await;
        let parsed = parse_frame(Market::Stocks, &raw).expect("data frames are JSON arrays");
        assert!(
            parsed.errors.is_empty(),
            "every element parses: {:?}",
            parsed.errors
        );
        for e in parsed.events {
            match &e {
                Event::Trade(t) => assert_ne!(t.sym, "NOTATICKER"),
                Event::Quote(q) => assert_eq!(q.sym, "AAPL", "only Q.AAPL was subscribed"),
                Event::Status(_) => continue,
                other => panic!("unexpected event {other:?}"),
            }
            kinds.insert(e.ev().to_string());
            seen += 1;
        }
    }
    sim.stop().await;
}

#[actix_web::test]
async fn wildcard_plus_explicit_delivers_once_and_unsubscribe_acks() {
    let sim = start_sim(sim_args());
    let mut c = Client::authed(&sim.ws_url("stocks"), "demo").await;
    c.send(r#"{"action":"subscribe","params":"T.*,T.AAPL,T.MSFT"}"#)
        .await;
    assert_eq!(c.statuses(3).await.len(), 3);
    let mut seen = HashSet::new();
    let mut aapl = 0;
    while aapl < 20 {
        for e in c.data_events(1).await {
            let key = (e["sym"].to_string(), e["q"].to_string(), e["i"].to_string());
            assert!(seen.insert(key), "delivered twice: {e}");
            if e["sym"] == "AAPL" {
                aapl += 1;
            }
        }
    }
    c.send(r#"{"action":"unsubscribe","params":"T.*"}"#).await;
    c.expect_status("success", "unsubscribed to: T.*").await;
    sim.stop().await;
}

#[actix_web::test]
async fn unentitled_channel_error_comes_before_acks() {
    let sim = start_sim(sim_args());
    let mut c = Client::authed(&sim.ws_url("stocks"), "nonoi").await;
    c.send(r#"{"action":"subscribe","params":"T.AAPL,NOI.*"}"#)
        .await;
    let st = c.statuses(2).await;
    assert_eq!(st[0], ("error".into(), "not authorized".into()));
    assert_eq!(st[1], ("success".into(), "subscribed to: T.AAPL".into()));
    sim.stop().await;
}

#[actix_web::test]
async fn invalid_json_is_answered_and_connection_survives() {
    let sim = start_sim(sim_args());
    let mut c = Client::authed(&sim.ws_url("stocks"), "demo").await;
    c.send("{not json").await;
    c.expect_status("error", "Invalid JSON").await;
    c.send(r#"{"action":"subscribe","params":"A.AAPL"}"#).await;
    c.expect_status("success", "subscribed to: A.AAPL").await;
    sim.stop().await;
}

#[actix_web::test]
async fn acks_can_come_one_per_frame() {
    let mut a = sim_args();
    a.ack_mode = tickwire::actors::sim::config::AckMode::Single;
    let sim = start_sim(a);
    let mut c = Client::authed(&sim.ws_url("stocks"), "demo").await;
    c.send(r#"{"action":"subscribe","params":"A.AAPL,AM.AAPL"}"#)
        .await;
    assert_eq!(c.next_array().await.len(), 1);
    assert_eq!(c.next_array().await.len(), 1);
    sim.stop().await;
}

#[actix_web::test]
async fn options_quotes_need_explicit_contracts_within_the_limit() {
    let mut a = sim_args();
    a.options_quote_limit = 2;
    let sim = start_sim(a);
    let mut c = Client::authed(&sim.ws_url("options"), "demo").await;
    c.send(r#"{"action":"subscribe","params":"Q.*,Q.O:A,Q.O:B,Q.O:C,T.*"}"#)
        .await;
    let st = c.statuses(5).await;
    assert_eq!(st[0].0, "error");
    assert_eq!(st[1].0, "error", "third contract is over the limit of 2");
    assert_eq!(st[2].1, "subscribed to: Q.O:A");
    assert_eq!(st[3].1, "subscribed to: Q.O:B");
    assert_eq!(st[4].1, "subscribed to: T.*");
    sim.stop().await;
}

#[actix_web::test]
async fn a_second_connection_evicts_the_older_one() {
    let sim = start_sim(sim_args());
    let mut old = Client::authed(&sim.ws_url("stocks"), "demo").await;
    // Another key and another market do not count against it.
    let _other_key = Client::authed(&sim.ws_url("stocks"), "second").await;
    let _other_market = Client::authed(&sim.ws_url("crypto"), "demo").await;
    let mut new = Client::authed(&sim.ws_url("stocks"), "demo").await;
    old.expect_status(
        "max_connections",
        "Maximum number of websocket connections exceeded. ",
    )
    .await;
    assert_eq!(old.until_end().await, Ended::Closed(Some(1008)));
    // The newer connection keeps working.
    new.send(r#"{"action":"subscribe","params":"T.*"}"#).await;
    new.expect_status("success", "subscribed to: T.*").await;
    assert!(!new.data_events(10).await.is_empty());
    assert_eq!(
        sim.registry.value("tickwire_sim_evictions_total", &[]),
        Some(1)
    );
    sim.stop().await;
}

#[actix_web::test]
async fn a_slow_consumer_is_killed_without_a_close_frame() {
    let mut a = sim_args();
    a.rate = 50_000.0;
    a.client_buffer_bytes = 256 * 1024;
    let sim = start_sim(a);
    let mut c = Client::authed(&sim.ws_url("stocks"), "demo").await;
    c.send(r#"{"action":"subscribe","params":"T.*,Q.*"}"#).await;
    // Stop reading: kernel buffers fill, then the simulator's outbound buffer, then the kill.
    let registry = sim.registry.clone();
    wait_until("slow-consumer kill", || {
        registry
            .value("tickwire_sim_slow_consumer_kills_total", &[])
            .unwrap_or(0)
            >= 1
    })
    .await;
    assert_eq!(c.until_end().await, Ended::Aborted);
    sim.stop().await;
}

#[actix_web::test]
async fn pings_are_answered() {
    let sim = start_sim(sim_args());
    let mut c = Client::authed(&sim.ws_url("stocks"), "demo").await;
    c.ping(b"hb").await;
    loop {
        match c.next_frame().await {
            Some(actix_http::ws::Frame::Pong(p)) => {
                assert_eq!(&p[..], b"hb");
                break;
            }
            Some(_) => continue,
            None => panic!("connection ended before the pong"),
        }
    }
    sim.stop().await;
}

#[actix_web::test]
async fn malformed_elements_and_unknown_events_are_injected() {
    let mut a = sim_args();
    a.malformed_every = 3;
    a.unknown_every = 5;
    let sim = start_sim(a);
    let mut c = Client::authed(&sim.ws_url("stocks"), "demo").await;
    c.send(r#"{"action":"subscribe","params":"T.*,Q.*"}"#).await;
    c.statuses(2).await;
    let (mut bad, mut unknown, mut good) = (0, 0, 0);
    while bad < 3 || unknown < 3 {
        let raw = c.next_text_raw().await;
        let parsed =
            parse_frame(Market::Stocks, &raw).expect("element faults keep the frame an array");
        bad += parsed.errors.len();
        good += parsed.events.len();
        unknown += parsed
            .events
            .iter()
            .filter(|e| matches!(e, Event::Other(o) if o.ev == "ZZ" && !o.known))
            .count();
    }
    assert!(good > 0);
    sim.stop().await;
}

#[actix_web::test]
async fn truncated_frames_fail_to_parse_as_a_whole() {
    let mut a = sim_args();
    a.malformed_every = 2;
    a.malformed_mode = MalformedMode::Truncated;
    let sim = start_sim(a);
    let mut c = Client::authed(&sim.ws_url("stocks"), "demo").await;
    c.send(r#"{"action":"subscribe","params":"Q.*"}"#).await;
    c.statuses(1).await;
    let mut broken = 0;
    while broken < 2 {
        let raw = c.next_text_raw().await;
        if parse_frame(Market::Stocks, &raw).is_err() {
            broken += 1;
        }
    }
    sim.stop().await;
}

#[actix_web::test]
async fn drop_fault_aborts_connections() {
    let mut a = sim_args();
    a.drop_every_secs = 1;
    let sim = start_sim(a);
    let mut c = Client::authed(&sim.ws_url("stocks"), "demo").await;
    c.send(r#"{"action":"subscribe","params":"A.*"}"#).await;
    assert_eq!(c.until_end().await, Ended::Aborted);
    assert_eq!(
        sim.registry
            .value("tickwire_sim_faults_total", &[("kind", "drop")]),
        Some(1)
    );
    sim.stop().await;
}

#[actix_web::test]
async fn stall_fault_holds_then_bursts() {
    let mut a = sim_args();
    a.stall_every_secs = 1;
    a.stall_ms = 300;
    let sim = start_sim(a);
    let mut c = Client::authed(&sim.ws_url("stocks"), "demo").await;
    c.send(r#"{"action":"subscribe","params":"Q.*"}"#).await;
    let registry = sim.registry.clone();
    wait_until("a stall", || {
        registry
            .value("tickwire_sim_faults_total", &[("kind", "stall")])
            .unwrap_or(0)
            >= 1
    })
    .await;
    // Data still flows after the stall.
    assert!(!c.data_events(100).await.is_empty());
    sim.stop().await;
}

#[actix_web::test]
async fn replay_sends_capture_elements_byte_for_byte() {
    let mut a = sim_args();
    a.replay = Some(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/capture-small.jsonl"
        )
        .into(),
    );
    a.replay_speed = 0.0;
    a.replay_loop = true;
    let sim = start_sim(a);
    let mut c = Client::authed(&sim.ws_url("stocks"), "demo").await;
    c.send(r#"{"action":"subscribe","params":"T.*,Q.*,A.*,AM.*,LULD.*"}"#)
        .await;
    c.statuses(5).await;
    let capture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/capture-small.jsonl"
    ))
    .unwrap();
    let (frames, _) = tickwire::actors::sim::replay::parse_capture(&capture).unwrap();
    let expected: HashSet<Vec<u8>> = frames
        .iter()
        .flat_map(|f| f.events.iter().map(|e| e.json.to_vec()))
        .collect();
    let mut got = HashSet::new();
    while got.len() < expected.len() {
        let raw = c.next_text_raw().await;
        for el in tickwire::massive::frame::split_frame(&raw).unwrap() {
            let bytes = el.get().as_bytes().to_vec();
            assert!(
                expected.contains(&bytes),
                "not in the capture: {}",
                el.get()
            );
            got.insert(bytes);
        }
    }
    sim.stop().await;
}
