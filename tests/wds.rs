//! Widget data service against real Redis: v1 replies byte for byte (fixture transcript),
//! v2 snapshot-then-stream with sequence numbers while publishing, wildcard delivery, every
//! auth refusal, every limit, a slow client next to a fast one, a Redis restart, and
//! embedded mode delivering from the memory store.

mod common;

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use actix_http::ws::Frame;
use deadpool_redis::redis;
use serde_json::{json, Value};

use common::redis::{cleanup, connection, redis_url, unique_prefix, PrivateRedis};
use common::*;
use tickwire::actors::wds::node::{self, WdsArgs, WdsNode};
use tickwire::bench::wsclient::{self, WsClient};
use tickwire::token::{self, Claims};

const SECRET: &str = "wds-test-secret-of-at-least-32-bytes";
/// The admin token of the nodes these tests start (their /stats wants it).
const ADMIN: &str = "wds-test-admin-token-of-32-bytes-or-more";

fn token(topics: &[&str], ttl: i64) -> String {
    let c = Claims::new("tester", &["viewer"], topics, token::now_secs(), ttl);
    token::sign(&c, SECRET.as_bytes()).expect("sign")
}

fn args(redis: &str, prefix: &str) -> WdsArgs {
    wds_args(redis, prefix, SECRET, ADMIN)
}

async fn start(a: WdsArgs) -> WdsNode {
    start_wds(a).await
}

fn counter(node: &WdsNode, name: &str, labels: &[(&str, &str)]) -> i64 {
    node.registry.value(name, labels).unwrap_or(0)
}

/// `cmd key value` (SET or LPUSH) + PUBLISH in one transaction, as the results writer does.
async fn write(conn: &mut deadpool_redis::Connection, cmd: &str, key: &str, value: &str) {
    let _: () = redis::pipe()
        .atomic()
        .cmd(cmd)
        .arg(key)
        .arg(value)
        .ignore()
        .cmd("PUBLISH")
        .arg(key)
        .arg(value)
        .ignore()
        .query_async(&mut **conn)
        .await
        .unwrap_or_else(|e| panic!("{cmd} + PUBLISH: {e}"));
}

async fn set(conn: &mut deadpool_redis::Connection, key: &str, value: &str) {
    write(conn, "SET", key, value).await;
}

async fn lpush(conn: &mut deadpool_redis::Connection, key: &str, value: &str) {
    write(conn, "LPUSH", key, value).await;
}

async fn ws(node: &WdsNode, path: &str) -> Client {
    Client::connect(&node.ws_url(path)).await
}

/// Reads frames until one satisfies `f` (others are skipped).
async fn until_json(c: &mut Client, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let start = std::time::Instant::now();
    loop {
        assert!(
            start.elapsed() < DEADLINE,
            "no frame with {what} within {DEADLINE:?}"
        );
        let v = c.next_json().await;
        if f(&v) {
            return v;
        }
    }
}

#[actix_web::test]
async fn v1_replies_match_the_reference_byte_for_byte() {
    let prefix = unique_prefix("wds-v1");
    let node = start(args(&redis_url(), &prefix)).await;
    let mut conn = connection().await;
    set(
        &mut conn,
        &format!("{prefix}quote:AAA"),
        r#"{"symbol":"AAA","close":1.5}"#,
    )
    .await;
    lpush(
        &mut conn,
        &format!("{prefix}daily_range_hod_alert"),
        r#"{"n":1}"#,
    )
    .await;
    lpush(
        &mut conn,
        &format!("{prefix}daily_range_hod_alert"),
        r#"{"n":2}"#,
    )
    .await;

    let transcript = include_str!("fixtures/wds/v1_session.txt");
    let tok = token(&["*"], 600);
    let mut c = ws(&node, "/ws").await;
    let mut exchanged = 0;
    for line in transcript.lines() {
        if let Some(req) = line.strip_prefix("> ") {
            c.send(&req.replace("$TOKEN", &tok)).await;
        } else if let Some(want) = line.strip_prefix("< ") {
            assert_eq!(c.next_text().await, want, "reply to the frame before");
            exchanged += 1;
        } else if let Some(want) = line.strip_prefix("<~ ") {
            let got = c.next_text().await;
            assert!(got.starts_with(want), "{got:?} should start with {want:?}");
            exchanged += 1;
        }
    }
    assert_eq!(exchanged, 19, "the whole transcript ran");

    // Pushes: raw payloads, no envelope; a repeated subscribe is delivered once; a wildcard
    // subscription delivers (the reference acknowledged but never delivered it).
    c.send(r#"{"action":"subscribe","feed":"quote:AAA"}"#).await;
    c.send(r#"{"action":"subscribe","feed":"quote:AAA"}"#).await;
    c.send(r#"{"action":"subscribe","feed":"daily_range:*"}"#)
        .await;
    for _ in 0..3 {
        assert!(c.next_text().await.starts_with(r#"{"status":"subscribed""#));
    }
    set(&mut conn, &format!("{prefix}quote:AAA"), r#"{"p":1}"#).await;
    assert_eq!(c.next_text().await, r#"{"p":1}"#);
    set(&mut conn, &format!("{prefix}daily_range:BBB"), r#"{"p":2}"#).await;
    assert_eq!(
        c.next_text().await,
        r#"{"p":2}"#,
        "one delivery each, in publish order"
    );
    assert_eq!(counter(&node, "tickwire_wds_sessions_authorized", &[]), 1);
    let (_, health) = get_json(&node.url("/health"), None).await;
    assert_eq!(health["service"], "Widget Data Service");
    assert_eq!(health["active_ws_clients"], 1);
    node.stop().await;
    cleanup(&prefix).await;
}

#[actix_web::test]
async fn every_auth_refusal() {
    let prefix = unique_prefix("wds-auth");
    let node = start(args(&redis_url(), &prefix)).await;
    let forged = {
        let c = Claims::new("eve", &["admin"], &["*"], token::now_secs(), 600);
        token::sign(&c, b"not-the-secret").expect("sign")
    };
    let expired = token(&["*"], -10);

    // v1: any other action first, a wrong key, an expired token: the reference's replies,
    // then the server closes.
    for (first, reply) in [
        (
            r#"{"action":"subscribe","feed":"quote:A"}"#.to_string(),
            r#"{"status":"unauthorized"}"#,
        ),
        (
            format!(r#"{{"action":"auth","api_key":"{forged}"}}"#),
            r#"{"status":"invalid key"}"#,
        ),
        (
            format!(r#"{{"action":"auth","api_key":"{expired}"}}"#),
            r#"{"status":"invalid key"}"#,
        ),
        (
            r#"{"action":"auth"}"#.to_string(),
            r#"{"status":"invalid key"}"#,
        ),
    ] {
        let mut c = ws(&node, "/ws").await;
        c.send(&first).await;
        assert_eq!(c.next_text().await, reply);
        assert_eq!(c.close_reason().await.map(|r| r.0), Some(1008));
    }

    // At the handshake: a bad token in the header or the query is refused with 401.
    let url = node.ws_url("/ws/v2");
    let bearer = format!("Bearer {forged}");
    assert_eq!(
        Client::try_connect(&url, &[("Authorization", &bearer)])
            .await
            .err(),
        Some(401)
    );
    let q = format!("{url}?token={expired}");
    assert_eq!(Client::try_connect(&q, &[]).await.err(), Some(401));

    // v2 without a token: only `auth` is accepted first.
    let mut c = ws(&node, "/ws/v2").await;
    c.send(r#"{"type":"subscribe","topic":"quote:A"}"#).await;
    let e = c.next_json().await;
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("error"), Some("unauthorized"))
    );
    assert_eq!(c.close_reason().await.map(|r| r.0), Some(1008));
    let mut c = ws(&node, "/ws/v2").await;
    c.send(&format!(
        r#"{{"type":"auth","token":"{}"}}"#,
        token(&["quote:*"], 60)
    ))
    .await;
    let w = c.next_json().await;
    assert_eq!(
        (w["type"].as_str(), w["subject"].as_str()),
        (Some("welcome"), Some("tester"))
    );

    // Topics outside the token's patterns are refused, for subscribe and get alike.
    for (req, topic) in [
        (
            r#"{"type":"subscribe","topic":"scanners:top_volume","id":1}"#,
            "scanners:top_volume",
        ),
        (r#"{"type":"subscribe","topic":"*","id":2}"#, "*"),
        (
            r#"{"type":"get","topic":"daily_range_hod_alert","id":3}"#,
            "daily_range_hod_alert",
        ),
    ] {
        c.send(req).await;
        let e = c.next_json().await;
        assert_eq!(e["code"], "forbidden", "{req}");
        assert_eq!(e["topic"], topic);
    }
    c.send(r#"{"type":"subscribe","topic":"quote:*","id":4}"#)
        .await;
    assert_eq!(c.next_json().await["type"], "subscribed");

    // A token valid at the handshake (query) works without an auth frame; v1 too.
    let mut c = Client::try_connect(&format!("{url}?token={}", token(&["*"], 60)), &[])
        .await
        .expect("accepted");
    assert_eq!(c.next_json().await["type"], "welcome");
    let v1 = node.ws_url("/ws");
    let bearer = format!("Bearer {}", token(&["quote:*"], 60));
    let mut c = Client::try_connect(&v1, &[("Authorization", &bearer)])
        .await
        .expect("accepted");
    c.send(r#"{"action":"subscribe","feed":"scanners:top_volume"}"#)
        .await;
    assert!(c
        .next_text()
        .await
        .starts_with(r#"{"status":"error","error":"topic scanners:top_volume is not granted"#));

    for reason in ["bad_signature", "expired", "missing"] {
        assert!(
            counter(
                &node,
                "tickwire_wds_auth_failures_total",
                &[("reason", reason)]
            ) > 0,
            "auth failures counted: {reason}"
        );
    }
    node.stop().await;

    // Auth off only by explicit configuration: then `auth` is the reference's invalid action.
    let mut a = args(&redis_url(), &prefix);
    a.settings.auth_enabled = false;
    a.settings.token_secret.clear();
    // Even then it serves only the client-facing keys (the default WDS_ALLOWED_TOPICS).
    a.settings.allowed_topics = tickwire::token::DEFAULT_TOPICS.into();
    let open = start(a).await;
    let mut c = ws(&open, "/ws").await;
    c.send(r#"{"action":"auth","api_key":"whatever"}"#).await;
    assert_eq!(c.next_text().await, r#"{"status":"invalid action"}"#);
    c.send(r#"{"action":"subscribe","feed":"quote:A"}"#).await;
    assert_eq!(
        c.next_text().await,
        r#"{"status":"subscribed","feed":"quote:A"}"#
    );
    for req in [
        r#"{"action":"subscribe","feed":"*"}"#,
        r#"{"action":"get","cache":"tickwire:processor:checkpoint:0"}"#,
    ] {
        c.send(req).await;
        assert!(c.next_text().await.contains("is not served here"), "{req}");
    }
    open.stop().await;

    // Auth on with no secret is a configuration error, not an open door.
    let mut a = args(&redis_url(), &prefix);
    a.settings.token_secret.clear();
    let e = node::start(a, TcpListener::bind("127.0.0.1:0").expect("bind")).err();
    assert!(e.is_some_and(|e| e.to_string().contains("WDS_TOKEN_SECRET")));
}

/// A publisher writing `{"n":1}`, `{"n":2}`, … to `key` until told to stop.
fn publisher(key: String, stop: Arc<AtomicBool>, last: Arc<AtomicU64>) {
    actix_web::rt::spawn(async move {
        let mut conn = connection().await;
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            set(&mut conn, &key, &format!(r#"{{"n":{n}}}"#)).await;
            last.store(n, Ordering::Relaxed);
            // Paced (about 1,000/s), so that readers on a loaded machine keep up.
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    });
}

/// Subscribes on v2 and checks the snapshot and every update up to `until` for gaps and
/// duplicates: data `n` and `seq` both step by exactly one from the snapshot on.
async fn check_stream(c: &mut Client, topic: &str, last: &AtomicU64, stop: &AtomicBool) {
    c.send(&format!(
        r#"{{"type":"subscribe","topic":"{topic}","id":"s"}}"#
    ))
    .await;
    let ack = c.next_json().await;
    assert_eq!(
        (ack["type"].as_str(), ack["id"].as_str()),
        (Some("subscribed"), Some("s"))
    );
    let snap = until_json(c, "the snapshot", |v| v["type"] == "snapshot").await;
    assert_eq!(snap["topic"], topic);
    let mut n = snap["data"]["n"].as_u64().unwrap_or(0);
    let mut seq = snap["seq"].as_u64().expect("snapshot seq");
    let mut seen = 0;
    loop {
        let u = c.next_json().await;
        assert_eq!(u["type"], "update", "{u}");
        assert_eq!(u["topic"], topic);
        assert_eq!(
            u["data"]["n"].as_u64(),
            Some(n + 1),
            "no gap, no duplicate: {u}"
        );
        assert_eq!(u["seq"].as_u64(), Some(seq + 1), "seq steps by one: {u}");
        n += 1;
        seq += 1;
        seen += 1;
        if seen == 300 {
            stop.store(true, Ordering::Relaxed);
        }
        if stop.load(Ordering::Relaxed) && n >= last.load(Ordering::Relaxed) && seen >= 300 {
            break;
        }
    }
}

#[actix_web::test]
async fn v2_snapshot_then_stream_without_gap_or_duplicate() {
    let prefix = unique_prefix("wds-v2");
    let node = start(args(&redis_url(), &prefix)).await;
    let tok = token(&["*"], 600);
    let url = format!("/ws/v2?token={tok}");
    let (stop, last) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    // Not a value topic: nothing may be coalesced, so every single update must arrive.
    publisher(format!("{prefix}seq:one"), stop.clone(), last.clone());
    wait_until("the publisher runs", || last.load(Ordering::Relaxed) > 20).await;

    // A first subscriber joins mid-stream (upstream subscription created for it) ...
    let mut a = ws(&node, &url).await;
    assert_eq!(a.next_json().await["type"], "welcome");
    let (stop_a, last_a) = (Arc::new(AtomicBool::new(false)), last.clone());
    // ... and a second one while the first streams (interest already held).
    let mut b = ws(&node, &url).await;
    assert_eq!(b.next_json().await["type"], "welcome");
    check_stream(&mut a, "seq:one", &last_a, &stop_a).await;
    check_stream(&mut b, "seq:one", &last, &stop).await;

    // Get with a limit, ping with an id, an unknown type: structured replies.
    let mut conn = connection().await;
    for i in 1..=3 {
        lpush(
            &mut conn,
            &format!("{prefix}daily_range_lod_alert"),
            &format!(r#"{{"i":{i}}}"#),
        )
        .await;
    }
    a.send(r#"{"type":"get","topic":"daily_range_lod_alert","limit":2,"id":9}"#)
        .await;
    let d = until_json(&mut a, "the get reply", |v| v["type"] == "data").await;
    assert_eq!(
        d,
        json!({"type":"data","topic":"daily_range_lod_alert","id":9,"data":[{"i":3},{"i":2}]})
    );
    a.send(r#"{"type":"ping","id":"p"}"#).await;
    let p = until_json(&mut a, "pong", |v| v["type"] == "pong").await;
    assert_eq!(p["id"], "p");
    a.send(r#"{"type":"dance"}"#).await;
    assert_eq!(
        until_json(&mut a, "an error", |v| v["type"] == "error").await["code"],
        "unknown_type"
    );
    a.send(r#"{"type":"unsubscribe","topic":"seq:one","id":1}"#)
        .await;
    until_json(&mut a, "unsubscribed", |v| v["type"] == "unsubscribed").await;

    // Wildcards deliver, naming the concrete topic and the pattern; values coalesce but the
    // newest always arrives.
    a.send(r#"{"type":"subscribe","topic":"quote:*"}"#).await;
    until_json(&mut a, "subscribed", |v| v["type"] == "subscribed").await;
    for i in 1..=50 {
        set(
            &mut conn,
            &format!("{prefix}quote:W{}", i % 2),
            &format!(r#"{{"i":{i}}}"#),
        )
        .await;
    }
    let mut newest = std::collections::HashMap::new();
    while newest.get("quote:W0") != Some(&50) || newest.get("quote:W1") != Some(&49) {
        let u = a.next_json().await;
        if u["type"] != "update" {
            continue;
        }
        assert_eq!(u["pattern"], "quote:*");
        let topic = u["topic"].as_str().unwrap_or("").to_string();
        let i = u["data"]["i"].as_u64().unwrap_or(0);
        let prev = newest.insert(topic, i).unwrap_or(0);
        assert!(i > prev, "per-topic order holds");
    }

    // The results writer announces receive times just before the values; updates carry them.
    let stamp = format!(r#"[["{prefix}quote:T",1764000012345]]"#);
    let _: i64 = redis::cmd("PUBLISH")
        .arg(tickwire::store::timing_channel(&prefix))
        .arg(stamp)
        .query_async(&mut *conn)
        .await
        .expect("PUBLISH");
    set(&mut conn, &format!("{prefix}quote:T"), r#"{"t":1}"#).await;
    let u = until_json(&mut a, "the stamped update", |v| v["topic"] == "quote:T").await;
    assert_eq!(u["received_at"], 1764000012345_i64);
    node.stop().await;
    cleanup(&prefix).await;
}

/// A refused v2 request is named in its error by the `id` and `topic` it carried
/// (docs/protocol.md), so a client with several requests in flight knows which one failed.
#[actix_web::test]
async fn a_refused_request_is_named_by_its_id_and_topic() {
    let prefix = unique_prefix("wds-refused");
    let node = start(args(&redis_url(), &prefix)).await;
    let url = format!("/ws/v2?token={}", token(&["*"], 600));
    let mut c = ws(&node, &url).await;
    assert_eq!(c.next_json().await["type"], "welcome");
    c.send(r#"{"type":"subscribe","topic":"quote:A[B]","id":"r1"}"#)
        .await;
    let e = c.next_json().await;
    assert_eq!(
        (&e["type"], &e["code"], &e["id"], &e["topic"]),
        (
            &json!("error"),
            &json!("bad_topic"),
            &json!("r1"),
            &json!("quote:A[B]")
        ),
        "{e}"
    );
    c.send(r#"{"type":"get","topic":"quote:AAPL","limit":"many","id":7}"#)
        .await;
    let e = c.next_json().await;
    assert_eq!(
        (&e["code"], &e["id"], &e["topic"]),
        (&json!("bad_request"), &json!(7), &json!("quote:AAPL")),
        "{e}"
    );
}

#[actix_web::test]
async fn every_limit() {
    let prefix = unique_prefix("wds-limits");
    let mut a = args(&redis_url(), &prefix);
    a.settings.max_frame_bytes = 256;
    a.settings.max_topics = 2;
    a.settings.max_msgs_per_sec = 5;
    a.settings.max_violations = 3;
    a.settings.max_sessions = 2;
    a.settings.handshake_timeout_secs = 1;
    let node = start(a).await;
    let url = format!("/ws/v2?token={}", token(&["*"], 600));

    // Sessions per node: the third handshake is refused.
    let mut c = ws(&node, &url).await;
    assert_eq!(c.next_json().await["type"], "welcome");
    let mut waiting = ws(&node, "/ws").await;
    assert_eq!(
        Client::try_connect(&node.ws_url(&url), &[]).await.err(),
        Some(503)
    );

    // Handshake timeout: no auth frame within a second closes with a reason.
    assert_eq!(
        waiting.close_reason().await,
        Some((1008, "authentication timeout".into()))
    );

    // Topics per session, frame size, then request rate: each an error, and past three
    // violations the socket closes with the reason. (Snapshots of a and b arrive in between.)
    let not_snapshot = |v: &Value| v["type"] != "snapshot";
    for t in ["a", "b"] {
        c.send(&format!(r#"{{"type":"subscribe","topic":"{t}"}}"#))
            .await;
        assert_eq!(
            until_json(&mut c, "an ack", not_snapshot).await["type"],
            "subscribed"
        );
    }
    c.send(r#"{"type":"subscribe","topic":"c"}"#).await;
    assert_eq!(
        until_json(&mut c, "an error", not_snapshot).await["code"],
        "too_many_topics"
    );
    c.send(&format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(300)))
        .await;
    assert_eq!(
        until_json(&mut c, "an error", not_snapshot).await["code"],
        "frame_too_large"
    );
    for _ in 0..40 {
        c.send(r#"{"type":"ping"}"#).await;
    }
    let mut rate_errors = 0;
    let reason = loop {
        match c.next_frame().await {
            Some(actix_http::ws::Frame::Text(t)) => {
                let v: Value = serde_json::from_slice(&t).expect("JSON");
                if v["code"] == "rate_limited" {
                    rate_errors += 1;
                }
            }
            Some(actix_http::ws::Frame::Close(r)) => break r,
            Some(_) => continue,
            None => panic!("connection ended without a close frame"),
        }
    };
    assert!(rate_errors >= 1);
    let reason = reason.expect("close reason");
    assert_eq!(u16::from(reason.code), 1008);
    assert!(reason
        .description
        .unwrap_or_default()
        .starts_with("too many violations"));
    for kind in ["topics", "frame_size", "rate"] {
        assert!(
            counter(&node, "tickwire_wds_violations_total", &[("kind", kind)]) > 0,
            "{kind}"
        );
    }
    assert!(
        counter(
            &node,
            "tickwire_wds_refused_total",
            &[("reason", "sessions")]
        ) > 0
    );
    node.stop().await;
}

#[actix_web::test]
async fn a_slow_client_is_closed_and_does_not_delay_a_fast_one() {
    let prefix = unique_prefix("wds-slow");
    let mut a = args(&redis_url(), &prefix);
    a.settings.outbox_frames = 256;
    a.settings.slow_grace_secs = 1;
    a.settings.max_msgs_per_sec = 1000;
    let node = start(a).await;
    let tok = token(&["*"], 600);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", node.port).parse().expect("addr");

    // The slow client: a 4 KiB receive buffer, and it stops reading after subscribing.
    let opts = wsclient::Connect {
        local: None,
        recv_buffer: 4096,
    };
    let mut slow = WsClient::connect(addr, &format!("/ws?token={tok}"), &opts)
        .await
        .expect("slow client connects");
    slow.send_text(r#"{"action":"subscribe","feed":"flood"}"#)
        .await
        .expect("send");
    slow.next_text().await.expect("subscribed");

    let mut fast = ws(&node, &format!("/ws?token={tok}")).await;
    fast.send(r#"{"action":"subscribe","feed":"flood"}"#).await;
    assert!(fast
        .next_text()
        .await
        .starts_with(r#"{"status":"subscribed""#));

    // Publish 8 KiB messages until the slow client has been closed; the fast one reads all.
    let (stop, last) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    {
        let (stop, last, key) = (stop.clone(), last.clone(), format!("{prefix}flood"));
        actix_web::rt::spawn(async move {
            let mut conn = connection().await;
            let pad = "x".repeat(8192);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                set(&mut conn, &key, &format!(r#"{{"n":{n},"pad":"{pad}"}}"#)).await;
                last.store(n, Ordering::Relaxed);
                tokio::time::sleep(std::time::Duration::from_micros(500)).await;
            }
        });
    }
    let closed = || counter(&node, "tickwire_wds_slow_clients_closed_total", &[]) > 0;
    let mut n = 0u64;
    loop {
        let v = fast.next_json().await;
        let got = v["n"].as_u64().expect("n");
        assert_eq!(got, n + 1, "the fast client misses nothing");
        n = got;
        if closed() {
            stop.store(true, Ordering::Relaxed);
        }
        if stop.load(Ordering::Relaxed) && n >= last.load(Ordering::Relaxed) {
            break;
        }
    }
    assert!(counter(&node, "tickwire_wds_dropped_total", &[]) > 0);

    // The slow client, once it reads again, finds its backlog and then the reason.
    let reason = loop {
        match slow.next().await {
            Ok((wsclient::OP_CLOSE, p)) => break p,
            Ok(_) => continue,
            Err(e) => panic!("closed without a close frame: {e}"),
        }
    };
    assert_eq!(u16::from_be_bytes([reason[0], reason[1]]), 1008);
    assert!(String::from_utf8_lossy(&reason[2..]).starts_with("slow consumer"));
    node.stop().await;
    cleanup(&prefix).await;
}

#[actix_web::test]
async fn redis_restart_restores_subscriptions() {
    let mut redis_server = PrivateRedis::start();
    let url = redis_server.url();
    let node = start(args(&url, "")).await;
    let tok = token(&["*"], 600);
    let mut v2c = ws(&node, &format!("/ws/v2?token={tok}")).await;
    assert_eq!(v2c.next_json().await["type"], "welcome");
    v2c.send(r#"{"type":"subscribe","topic":"r:x"}"#).await;
    assert_eq!(v2c.next_json().await["type"], "subscribed");
    assert_eq!(v2c.next_json().await["type"], "snapshot");
    let mut v1c = ws(&node, &format!("/ws?token={tok}")).await;
    v1c.send(r#"{"action":"subscribe","feed":"r:*"}"#).await;
    assert!(v1c
        .next_text()
        .await
        .starts_with(r#"{"status":"subscribed""#));

    let pool = deadpool_redis::Config::from_url(url.clone())
        .create_pool(Some(deadpool_redis::Runtime::Tokio1))
        .expect("pool");
    let conn = || async { pool.get().await.expect("private redis") };
    set(&mut conn().await, "r:x", r#"{"v":1}"#).await;
    assert_eq!(v2c.next_json().await["data"]["v"], 1);
    assert_eq!(v1c.next_text().await, r#"{"v":1}"#);

    redis_server.kill();
    let ready = node.url("/ready");
    wait_until_async("/ready reports the outage", || {
        let u = ready.clone();
        async move { get_json(&u, None).await.0 == 503 }
    })
    .await;
    redis_server.restart();
    wait_until_async("the hub resubscribes", || {
        let u = ready.clone();
        async move { get_json(&u, None).await.0 == 200 }
    })
    .await;
    // v2 starts again from a snapshot (updates published while away are lost to pub/sub).
    let snap = until_json(&mut v2c, "a fresh snapshot", |v| v["type"] == "snapshot").await;
    assert_eq!(snap["data"], Value::Null, "the restarted Redis is empty");
    set(&mut conn().await, "r:x", r#"{"v":2}"#).await;
    assert_eq!(
        until_json(&mut v2c, "update", |v| v["type"] == "update").await["data"]["v"],
        2
    );
    assert_eq!(v1c.next_text().await, r#"{"v":2}"#);
    assert!(counter(&node, "tickwire_wds_upstream_disconnects_total", &[]) > 0);
    node.stop().await;
}

#[actix_web::test]
async fn embedded_mode_delivers_from_the_memory_store() {
    let mut a = embedded_args("wds_embedded");
    a.sim.tickers = 20;
    a.wds.token_secret = SECRET.into();
    let sim_http = TcpListener::bind("127.0.0.1:0").expect("bind");
    let wds_http = TcpListener::bind("127.0.0.1:0").expect("bind");
    let e = tickwire::embedded::start(a, sim_http, wds_http).expect("embedded starts");
    let tok = token(&["*"], 600);
    let base = format!("ws://127.0.0.1:{}", e.http.port);

    let mut v2c = Client::connect(&format!("{base}/ws/v2?token={tok}")).await;
    assert_eq!(v2c.next_json().await["type"], "welcome");
    v2c.send(r#"{"type":"subscribe","topic":"quote:*"}"#).await;
    // An update made by an event carries its receive time. (A quote re-sent when the
    // symbol's REST enrichment or backfill arrives has none, `null`; it may come first.)
    let u = until_json(&mut v2c, "a quote update with its receive time", |v| {
        v["type"] == "update" && v["received_at"].as_i64().is_some_and(|t| t > 0)
    })
    .await;
    assert!(u["topic"].as_str().is_some_and(|t| t.starts_with("quote:")));
    assert!(u["data"]["symbol"].is_string());

    let mut v1c = Client::connect(&format!("{base}/ws")).await;
    v1c.send(&format!(r#"{{"action":"auth","api_key":"{tok}"}}"#))
        .await;
    assert_eq!(v1c.next_text().await, r#"{"status":"authorized"}"#);
    v1c.send(r#"{"action":"subscribe","feed":"scanners:top_volume"}"#)
        .await;
    assert!(v1c
        .next_text()
        .await
        .starts_with(r#"{"status":"subscribed""#));
    let board: Value = serde_json::from_str(&v1c.next_text().await).expect("board JSON");
    assert!(board.is_array(), "raw leaderboard push");
    if let Some(sim) = e.sim {
        sim.stop().await;
    }
}

#[actix_web::test]
async fn a_silent_client_is_closed_as_idle() {
    let prefix = unique_prefix("wds-idle");
    let mut a = args(&redis_url(), &prefix);
    a.settings.heartbeat_secs = 1;
    a.settings.idle_timeout_secs = 2;
    let node = start(a).await;
    // Never sends a frame and never answers the server's pings.
    let mut c = ws(&node, &format!("/ws/v2?token={}", token(&["*"], 600))).await;
    assert_eq!(c.close_reason().await, Some((1008, "idle timeout".into())));
    assert_eq!(
        counter(&node, "tickwire_wds_closed_total", &[("reason", "idle")]),
        1
    );
    node.stop().await;
}

/// Sends a v1 `auth` frame with `token` and expects `authorized`.
async fn v1_authorize(c: &mut Client, token: &str) {
    c.send(&format!(r#"{{"action":"auth","api_key":"{token}"}}"#))
        .await;
    assert_eq!(c.next_text().await, r#"{"status":"authorized"}"#);
}

/// The next frame that is not a ping or pong: a v1 session must see its close frame with no
/// text before it (its web app would take any unsolicited frame for data).
async fn close_without_text(c: &mut Client) -> Option<(u16, String)> {
    loop {
        match c.next_frame().await {
            Some(Frame::Ping(_)) | Some(Frame::Pong(_)) => continue,
            Some(Frame::Close(r)) => {
                return r.map(|r| (u16::from(r.code), r.description.unwrap_or_default()))
            }
            other => panic!("expected the close frame, got {other:?}"),
        }
    }
}

#[actix_web::test]
async fn a_session_ends_when_its_token_expires() {
    let prefix = unique_prefix("wds-expiry");
    let node = start(args(&redis_url(), &prefix)).await;

    // v2, token at the handshake: a `token_expired` error, then the close.
    // Short tokens, with room for a slow connect on a loaded machine.
    let mut c = ws(&node, &format!("/ws/v2?token={}", token(&["*"], 3))).await;
    assert_eq!(c.next_json().await["type"], "welcome");
    let e = until_json(&mut c, "the expiry error", |v| v["type"] == "error").await;
    assert_eq!(e["code"], "token_expired", "{e}");
    assert_eq!(c.close_reason().await, Some((1008, "token expired".into())));

    // v1, token in the first frame: only the close frame.
    let mut c = ws(&node, "/ws").await;
    v1_authorize(&mut c, &token(&["*"], 3)).await;
    assert_eq!(
        close_without_text(&mut c).await,
        Some((1008, "token expired".into()))
    );

    assert_eq!(
        counter(
            &node,
            "tickwire_wds_closed_total",
            &[("reason", "token_expired")]
        ),
        2
    );
    node.stop().await;
}

#[actix_web::test]
async fn renewing_the_token_in_band_keeps_the_session() {
    let prefix = unique_prefix("wds-renew");
    let node = start(args(&redis_url(), &prefix)).await;
    let mut conn = connection().await;
    let keep = format!("{prefix}r:keep");

    // v2: subscribed to two topics under a short token; the renewal grants only one of them.
    // Long enough for the subscribes and the renewal to come first on a loaded machine.
    let first = Claims::new("tester", &["viewer"], &["r:*"], token::now_secs(), 5);
    let mut c = ws(&node, "/ws/v2").await;
    c.send(&format!(
        r#"{{"type":"auth","token":"{}"}}"#,
        token::sign(&first, SECRET.as_bytes()).expect("sign")
    ))
    .await;
    assert_eq!(c.next_json().await["type"], "welcome");
    for t in ["r:keep", "r:lost"] {
        c.send(&format!(r#"{{"type":"subscribe","topic":"{t}"}}"#))
            .await;
        until_json(&mut c, "subscribed", |v| v["type"] == "subscribed").await;
    }
    c.send(&format!(
        r#"{{"type":"auth","token":"{}"}}"#,
        token(&["r:keep"], 600)
    ))
    .await;
    let e = until_json(&mut c, "the dropped topic", |v| v["type"] == "error").await;
    assert_eq!(
        (e["code"].as_str(), e["topic"].as_str()),
        (Some("forbidden"), Some("r:lost"))
    );
    let w = until_json(&mut c, "the renewal's welcome", |v| v["type"] == "welcome").await;
    assert!(w["expires_at"].as_i64() > Some(first.exp), "{w}");

    // v1: a second `auth` renews too.
    let mut v1 = ws(&node, "/ws").await;
    let v1_first = Claims::new("tester", &["viewer"], &["*"], token::now_secs(), 5);
    v1_authorize(
        &mut v1,
        &token::sign(&v1_first, SECRET.as_bytes()).expect("sign"),
    )
    .await;
    v1_authorize(&mut v1, &token(&["*"], 600)).await;

    // Past the first tokens' expiry both sessions still answer, and v2 still delivers.
    wait_until("the first tokens have expired", || {
        token::now_secs() > first.exp.max(v1_first.exp) + 1
    })
    .await;
    set(&mut conn, &keep, r#"{"n":1}"#).await;
    let u = until_json(&mut c, "the update", |v| v["type"] == "update").await;
    assert_eq!(
        (u["topic"].as_str(), &u["data"]),
        (Some("r:keep"), &json!({"n":1}))
    );
    v1.send(r#"{"action":"get","cache":"r:keep"}"#).await;
    assert_eq!(v1.next_text().await, r#"{"cache":"r:keep","data":{"n":1}}"#);
    assert_eq!(counter(&node, "tickwire_wds_token_renewals_total", &[]), 2);

    // A token for someone else is not a renewal: refused, and the socket closes.
    let other = Claims::new("mallory", &["viewer"], &["*"], token::now_secs(), 600);
    c.send(&format!(
        r#"{{"type":"auth","token":"{}"}}"#,
        token::sign(&other, SECRET.as_bytes()).expect("sign")
    ))
    .await;
    let e = until_json(&mut c, "the refusal", |v| v["type"] == "error").await;
    assert_eq!(e["code"], "unauthorized");
    let (code, reason) = c.close_reason().await.expect("a close frame");
    assert_eq!(code, 1008);
    assert!(reason.contains("mallory"), "{reason}");
    assert_eq!(
        counter(
            &node,
            "tickwire_wds_auth_failures_total",
            &[("reason", "other_subject")]
        ),
        1
    );

    cleanup(&prefix).await;
    node.stop().await;
}

#[actix_web::test]
async fn stopping_the_node_closes_every_session_with_going_away() {
    let prefix = unique_prefix("wds-away");
    let node = start(args(&redis_url(), &prefix)).await;
    let mut v2 = ws(&node, &format!("/ws/v2?token={}", token(&["*"], 600))).await;
    assert_eq!(v2.next_json().await["type"], "welcome");
    v2.send(r#"{"type":"subscribe","topic":"r:x"}"#).await;
    until_json(&mut v2, "subscribed", |v| v["type"] == "subscribed").await;
    let mut v1 = ws(&node, "/ws").await;
    v1_authorize(&mut v1, &token(&["*"], 600)).await;

    let away = Some((1001, "server shutting down".to_string()));
    let (_, r2, r1) = tokio::join!(node.drain(), v2.close_reason(), v1.close_reason());
    assert_eq!((r2, r1), (away.clone(), away));
    assert_eq!(
        counter(
            &node,
            "tickwire_wds_closed_total",
            &[("reason", "shutdown")]
        ),
        2
    );

    // Drained: not ready, and new clients are sent elsewhere.
    let (status, ready) = get_json(&node.url("/ready"), None).await;
    assert_eq!(status, 503, "{ready}");
    let serving = ready["checks"]["serving"].as_str().unwrap_or("");
    assert!(serving.contains("stopping"), "{ready}");
    let url = node.ws_url(&format!("/ws/v2?token={}", token(&["*"], 600)));
    assert_eq!(Client::try_connect(&url, &[]).await.err(), Some(503));
    assert_eq!(
        counter(
            &node,
            "tickwire_wds_refused_total",
            &[("reason", "stopping")]
        ),
        1
    );
    node.stop().await;
}

/// A token of `sub` issued to browser session `sid`.
fn session_token(sub: &str, sid: &str) -> String {
    let claims = Claims::new(sub, &["viewer"], &["*"], token::now_secs(), 600).for_session(sid);
    token::sign(&claims, SECRET.as_bytes()).expect("sign")
}

#[actix_web::test]
async fn a_revoked_token_ends_its_sessions_and_is_refused() {
    let prefix = unique_prefix("wds-revoke");
    let mut a = args(&redis_url(), &prefix);
    // The control plane's revocations live under the node registry's prefix.
    a.node_registry.registry_prefix = prefix.clone();
    a.revocation_poll_ms = 100;
    let node = start(a).await;

    // alice has two browsers (s1, s2), bob one; s1 also has a v1 socket. s1's token is kept:
    // a token issued after the revocation would count (a new login), so the refusals below
    // must use one issued before it.
    let s1_token = session_token("alice", "s1");
    let mut s1 = ws(&node, &format!("/ws/v2?token={s1_token}")).await;
    assert_eq!(s1.next_json().await["type"], "welcome");
    let mut s1_v1 = ws(&node, "/ws").await;
    v1_authorize(&mut s1_v1, &s1_token).await;
    let mut s2 = ws(
        &node,
        &format!("/ws/v2?token={}", session_token("alice", "s2")),
    )
    .await;
    assert_eq!(s2.next_json().await["type"], "welcome");
    let mut bob = ws(
        &node,
        &format!("/ws/v2?token={}", session_token("bob", "s1")),
    )
    .await;
    assert_eq!(bob.next_json().await["type"], "welcome");

    // alice logs out of s1: the control plane records it in Redis, as tickwire-scp does.
    let pool = tickwire::redis_pool::open(&redis_url()).expect("pool");
    let revoker = tickwire::revocation::Revoker::Redis {
        pool,
        key: tickwire::revocation::redis_key(&prefix),
    };
    let now = token::now_secs();
    let logout = tickwire::revocation::Revocation::session("alice", "s1", now, 600);
    revoker.revoke(logout).await.expect("revoke");

    // Both of s1's sockets end; v2 is told why, v1 only gets the close frame.
    let e = until_json(&mut s1, "the revocation error", |v| v["type"] == "error").await;
    assert_eq!(e["code"], "token_revoked", "{e}");
    assert_eq!(
        s1.close_reason().await,
        Some((1008, "token revoked".into()))
    );
    assert_eq!(
        close_without_text(&mut s1_v1).await,
        Some((1008, "token revoked".into()))
    );
    // alice's other browser and bob carry on.
    for c in [&mut s2, &mut bob] {
        c.send(r#"{"type":"ping"}"#).await;
        until_json(c, "a pong", |v| v["type"] == "pong").await;
    }
    assert_eq!(
        counter(
            &node,
            "tickwire_wds_closed_total",
            &[("reason", "token_revoked")]
        ),
        2
    );

    // s1's token no longer opens a socket, at the handshake or in the first frame.
    let url = node.ws_url(&format!("/ws/v2?token={s1_token}"));
    assert_eq!(Client::try_connect(&url, &[]).await.err(), Some(401));
    let mut late = ws(&node, "/ws").await;
    late.send(&format!(r#"{{"action":"auth","api_key":"{s1_token}"}}"#))
        .await;
    assert_eq!(late.next_text().await, r#"{"status":"invalid key"}"#);
    assert_eq!(
        counter(
            &node,
            "tickwire_wds_auth_failures_total",
            &[("reason", "revoked")]
        ),
        2
    );

    // A password change on s2 ends every other session of alice's: a new s3 socket, opened
    // before the change, goes; s2, which made the change, stays.
    let mut s3 = ws(
        &node,
        &format!("/ws/v2?token={}", session_token("alice", "s3")),
    )
    .await;
    assert_eq!(s3.next_json().await["type"], "welcome");
    let now = token::now_secs();
    let change = tickwire::revocation::Revocation::user("alice", Some("s2"), now, 600);
    revoker.revoke(change).await.expect("revoke");
    let e = until_json(&mut s3, "the revocation error", |v| v["type"] == "error").await;
    assert_eq!(e["code"], "token_revoked", "{e}");
    s2.send(r#"{"type":"ping"}"#).await;
    until_json(&mut s2, "a pong", |v| v["type"] == "pong").await;
    let (_, stats) = get_json(&node.url("/stats"), Some(ADMIN)).await;
    assert_eq!(stats["node"]["revocations"], 2, "{stats}");

    // A renewal with a revoked token ends the session the way the revocation does
    // (`token_revoked`, not `unauthorized`): the dashboard's renewal can reach the WDS before
    // the revocation's own notice, and the user must hear "signed out" either way. Here the
    // held token is newer than the revocation (it stays good), so only the renewal can say it.
    let now = token::now_secs();
    let mut s5 = ws(
        &node,
        &format!("/ws/v2?token={}", session_token("carol", "s5")),
    )
    .await;
    assert_eq!(s5.next_json().await["type"], "welcome");
    let older = Claims::new("carol", &["viewer"], &["*"], now - 200, 900).for_session("s5");
    let older = token::sign(&older, SECRET.as_bytes()).expect("sign");
    let logout = tickwire::revocation::Revocation::session("carol", "s5", now - 100, 600);
    revoker.revoke(logout).await.expect("revoke");
    let stats_url = node.url("/stats");
    wait_until_async("the WDS to learn the third revocation", || {
        let u = stats_url.clone();
        async move { get_json(&u, Some(ADMIN)).await.1["node"]["revocations"] == 3 }
    })
    .await;
    s5.send(&format!(r#"{{"type":"auth","token":"{older}"}}"#))
        .await;
    let e = until_json(&mut s5, "the renewal's refusal", |v| v["type"] == "error").await;
    assert_eq!(e["code"], "token_revoked", "{e}");
    assert_eq!(
        s5.close_reason().await,
        Some((1008, "token revoked".into()))
    );

    node.stop().await;
    cleanup(&prefix).await;
}

#[actix_web::test]
async fn the_revocation_set_keeps_only_live_entries_and_expires_with_the_last() {
    use tickwire::revocation::{redis_key, Revocation, Revoker};
    let prefix = unique_prefix("wds-revocation-set");
    let key = redis_key(&prefix);
    let pool = tickwire::redis_pool::open(&redis_url()).expect("pool");
    let revoker = Revoker::Redis {
        pool: pool.clone(),
        key: key.clone(),
    };
    let mut conn = connection().await;
    let now = token::now_secs();

    // An entry already over leaves nothing behind.
    let over = Revocation::session("ann", "s0", now - 1000, 300);
    revoker.revoke(over).await.expect("revoke");
    assert_eq!(key_ttl(&mut conn, &key).await, -2, "no key");

    // The key lives as long as its latest entry, whatever order they come in.
    let long = Revocation::session("ann", "s1", now, 600);
    revoker.revoke(long.clone()).await.expect("revoke");
    let short = Revocation::session("bob", "s2", now, 60);
    revoker.revoke(short.clone()).await.expect("revoke");
    let t = key_ttl(&mut conn, &key).await;
    assert!((540..=600).contains(&t), "TTL {t}");
    let unreadable = tickwire::metrics::Registry::new().counter("t_total", "t", &[]);
    let mut live = tickwire::revocation::fetch(&pool, &key, &unreadable)
        .await
        .expect("fetch");
    live.sort_by(|a, b| a.sub.cmp(&b.sub));
    assert_eq!(live, vec![long, short]);

    // A stranger's member is skipped and counted, not fatal.
    let _: () = redis::cmd("ZADD")
        .arg(&key)
        .arg(now + 60)
        .arg("not json")
        .query_async(&mut *conn)
        .await
        .expect("ZADD");
    let live = tickwire::revocation::fetch(&pool, &key, &unreadable)
        .await
        .expect("fetch");
    assert_eq!((live.len(), unreadable.get()), (2, 1));
    cleanup(&prefix).await;
}

async fn key_ttl(conn: &mut deadpool_redis::Connection, key: &str) -> i64 {
    redis::cmd("TTL")
        .arg(key)
        .query_async(&mut **conn)
        .await
        .expect("TTL")
}

#[actix_web::test]
async fn revocations_resume_after_the_registry_redis_comes_back() {
    use tickwire::revocation::{redis_key, Revocation, Revoker};
    let mut registry = PrivateRedis::start();
    let prefix = unique_prefix("wds-revoke-outage");
    let mut a = args(&redis_url(), &prefix);
    a.node_registry.registry_url = registry.url();
    a.node_registry.registry_prefix = prefix.clone();
    a.revocation_poll_ms = 100;
    let node = start(a).await;
    let mut c = ws(
        &node,
        &format!("/ws/v2?token={}", session_token("ann", "s1")),
    )
    .await;
    assert_eq!(c.next_json().await["type"], "welcome");

    // The registry goes away: failed reads are counted, the session is left alone.
    registry.kill();
    wait_until("failed revocation reads are counted", || {
        counter(&node, "tickwire_wds_revocation_errors_total", &[]) >= 2
    })
    .await;
    c.send(r#"{"type":"ping"}"#).await;
    until_json(&mut c, "a pong", |v| v["type"] == "pong").await;

    // Back (empty, as a restarted Redis with no persistence is): a logout recorded now
    // reaches the session.
    registry.restart();
    let pool = tickwire::redis_pool::open(&registry.url()).expect("pool");
    let revoker = Revoker::Redis {
        pool,
        key: redis_key(&prefix),
    };
    let logout = Revocation::session("ann", "s1", token::now_secs(), 600);
    wait_until_async("the restarted registry takes the revocation", || {
        let (revoker, logout) = (&revoker, logout.clone());
        async move { revoker.revoke(logout).await.is_ok() }
    })
    .await;
    let e = until_json(&mut c, "the revocation error", |v| v["type"] == "error").await;
    assert_eq!(e["code"], "token_revoked", "{e}");
    node.stop().await;
}
