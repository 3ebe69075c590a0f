//! The Massive relay (issue 23) in embedded mode, spoken to as Massive's own clients do:
//! relay keys from the control plane, Massive's statuses, the listener's frames handed on,
//! channels beyond upstream refused, two programs on one key, a revoked key's sockets ended,
//! a reader that stopped cut off while another keeps receiving, and `replay` giving exactly
//! what the buffer holds since a time, then the live stream in order.
//!
//! The official Python client's check of the same endpoint is tests/compat/relay_client.py.

mod common;

use std::net::TcpListener;

use common::{embedded_args, wait_until, Client, Ended};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ADMIN_PW: &str = "admin-password-1";

/// A logged-in control-plane session (cookie and CSRF token).
struct Web {
    base: String,
    cookie: String,
    csrf: String,
}

impl Web {
    async fn login(base: String) -> Web {
        let body = json!({"username": "admin", "password": ADMIN_PW}).to_string();
        let mut r = awc::Client::new()
            .post(format!("{base}/login"))
            .insert_header(("content-type", "application/json"))
            .send_body(body)
            .await
            .expect("login");
        assert_eq!(r.status(), 200, "admin logs in");
        let cookie = r
            .headers()
            .get("set-cookie")
            .and_then(|c| c.to_str().ok())
            .and_then(|c| c.split(';').next())
            .expect("a session cookie")
            .to_string();
        let v: Value = r.json().await.expect("login answer");
        let csrf = v["csrf"].as_str().expect("csrf").to_string();
        Web { base, cookie, csrf }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let req = awc::Client::new()
            .request(
                method.parse().expect("method"),
                format!("{}{path}", self.base),
            )
            .insert_header(("cookie", self.cookie.clone()))
            .insert_header(("x-csrf-token", self.csrf.clone()));
        let mut r = match body {
            Some(b) => req.send_json(&b).await,
            None => req.send().await,
        }
        .expect("control plane answers");
        let v = r.json::<Value>().await.unwrap_or(Value::Null);
        (r.status().as_u16(), v)
    }

    /// A new key: (id, key).
    async fn key(&self, name: &str, scopes: &[&str]) -> (String, String) {
        let (status, v) = self
            .call(
                "POST",
                "/api/relay-keys",
                Some(json!({"name": name, "scopes": scopes})),
            )
            .await;
        assert_eq!(status, 200, "key made: {v}");
        (
            v["id"].as_str().expect("id").to_string(),
            v["key"].as_str().expect("key").to_string(),
        )
    }
}

/// Embedded mode with the admin's password known and relay keys read every 200 ms, as
/// `tweak` leaves it: the process, its relay URL (`/stocks`) and the admin logged in.
async fn start_embedded(
    name: &str,
    tweak: impl FnOnce(&mut tickwire::embedded::EmbeddedArgs),
) -> (tickwire::embedded::Embedded, String, Web) {
    let mut a = embedded_args(name);
    a.scp.admin_password = ADMIN_PW.into();
    a.relay.keys_poll_ms = 200;
    tweak(&mut a);
    let sim_http = TcpListener::bind("127.0.0.1:0").expect("bind");
    let http = TcpListener::bind("127.0.0.1:0").expect("bind");
    let e = tickwire::embedded::start(a, sim_http, http).expect("embedded starts");
    let port = e.http.port;
    let web = Web::login(format!("http://127.0.0.1:{port}")).await;
    (e, format!("ws://127.0.0.1:{port}/stocks"), web)
}

fn counter(r: &tickwire::metrics::Registry, name: &str, labels: &[(&str, &str)]) -> u64 {
    r.counter(name, "", labels).get()
}

/// Data events (status elements left out) until `n`, with the statuses seen on the way.
async fn events(c: &mut Client, n: usize) -> Vec<Value> {
    c.data_events(n).await
}

/// A socket that authenticates and subscribes, then never reads again, with a small
/// receive buffer so that the server's side fills soon.
async fn stalled_reader(port: u16, key: &str) -> tokio::net::TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.set_recv_buffer_size(4096)
        .expect("small receive buffer");
    let mut s = sock
        .connect(([127, 0, 0, 1], port).into())
        .await
        .expect("connect");
    let req = format!(
        "GET /stocks HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("handshake");
    let mut head = [0u8; 12];
    s.read_exact(&mut head).await.expect("101");
    assert_eq!(&head, b"HTTP/1.1 101");
    for text in [
        format!(r#"{{"action":"auth","params":"{key}"}}"#),
        r#"{"action":"subscribe","params":"T.*,Q.*,A.*"}"#.to_string(),
    ] {
        s.write_all(&masked_text(text.as_bytes()))
            .await
            .expect("send");
    }
    s
}

/// A client text frame (clients must mask; the mask is zero, which is allowed).
fn masked_text(payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mut f = vec![0x81, 0x80 | payload.len() as u8, 0, 0, 0, 0];
    f.extend_from_slice(payload);
    f
}

/// A socket past `connected` that has sent `auth` with `key`; the answer is the caller's.
async fn auth_sent(url: &str, key: &str) -> Client {
    let mut c = Client::connect(url).await;
    c.expect_status("connected", "Connected Successfully").await;
    c.send(&format!(r#"{{"action":"auth","params":"{key}"}}"#))
        .await;
    c
}

fn time_of(e: &Value) -> i64 {
    e["t"].as_i64().or_else(|| e["e"].as_i64()).unwrap_or(0)
}

#[actix_web::test]
async fn the_relay_speaks_massive_and_hands_on_the_listeners_frames() {
    let (e, url, web) = start_embedded("relay", |a| {
        a.sim.tickers = 30;
        // Small limits, so that the reader that stops is found out soon.
        a.relay.client_buffer_bytes = 64 * 1024;
        a.relay.max_lag_secs = 5;
    })
    .await;
    let port = e.http.port;
    let (relay_id, relay_key) = web.key("bot", &["relay"]).await;
    let (_, api_key) = web.key("script", &["api:read"]).await;
    let r = &e.registry;
    wait_until(
        "the relay knows the new keys and hears the listener",
        || {
            r.gauge("tickwire_relay_keys", "", &[]).get() >= 1
                && counter(r, "tickwire_relay_batches_total", &[]) > 0
        },
    )
    .await;

    // A key that is not a relay key: Massive's auth_failed, then the close.
    for bad in ["twk_not-a-key", api_key.as_str()] {
        let mut c = auth_sent(&url, bad).await;
        c.expect_status("auth_failed", "authentication failed")
            .await;
        assert_eq!(c.until_end().await, Ended::Closed(Some(1008)));
    }

    // One status per topic; an unknown channel gets none; one the listener does not carry
    // (NOI: embedded subscribes A, T, Q, LULD) is refused by name.
    let mut one = Client::authed(&url, &relay_key).await;
    one.send(r#"{"action":"subscribe","params":"T.*,ZZ.AAPL,NOI.*,Q.*"}"#)
        .await;
    let st = one.statuses(3).await;
    assert_eq!(st[0], ("success".into(), "subscribed to: T.*".into()));
    assert_eq!(st[1].0, "error");
    assert!(
        st[1].1.contains("NOI.*") && st[1].1.contains("not carried"),
        "{st:?}"
    );
    assert_eq!(st[2], ("success".into(), "subscribed to: Q.*".into()));
    let got = events(&mut one, 200).await;
    assert!(
        got.iter().all(|e| e["ev"] == "T" || e["ev"] == "Q"),
        "only T and Q"
    );
    assert!(got.iter().any(|e| e["ev"] == "T") && got.iter().any(|e| e["ev"] == "Q"));

    // A second program on the same key, at once, on one symbol.
    let sym = got.iter().find(|e| e["ev"] == "T").expect("a trade")["sym"]
        .as_str()
        .expect("sym")
        .to_string();
    let mut two = Client::authed(&url, &relay_key).await;
    two.send(&format!(r#"{{"action":"subscribe","params":"T.{sym}"}}"#))
        .await;
    assert_eq!(
        two.statuses(1).await[0].1,
        format!("subscribed to: T.{sym}")
    );
    let mine = events(&mut two, 5).await;
    assert!(mine
        .iter()
        .all(|e| e["ev"] == "T" && e["sym"] == sym.as_str()));

    // A reader that stops is cut off; the others keep receiving.
    let _stalled = stalled_reader(port, &relay_key).await;
    wait_until("the stalled reader is cut off", || {
        counter(r, "tickwire_relay_closed_total", &[("reason", "slow")]) >= 1
    })
    .await;
    events(&mut one, 100).await;

    // Replay: what the buffer holds from `since` on (event time), then `replay_complete`,
    // then the live stream, with nothing missed or repeated between them.
    let mut reference = Vec::new();
    while reference.len() < 300 {
        reference.extend(
            events(&mut one, 1)
                .await
                .into_iter()
                .filter(|e| e["ev"] == "T"),
        );
    }
    let since = time_of(&reference[100]);
    let mut late = Client::authed(&url, &relay_key).await;
    late.send(&format!(
        r#"{{"action":"replay","params":"T.*","since":{since}}}"#
    ))
    .await;
    assert_eq!(late.statuses(1).await[0].1, "subscribed to: T.*");
    let mut replayed = Vec::new();
    let count = loop {
        let frame = late.next_array().await;
        let mut done = None;
        for ev in frame {
            if ev["ev"] == "status" {
                assert_eq!(ev["status"], "replay_complete", "{ev}");
                done = Some(ev["message"].as_str().unwrap_or("").to_string());
            } else {
                assert!(done.is_none(), "replayed events come before the status");
                replayed.push(ev);
            }
        }
        if let Some(m) = done {
            break m;
        }
    };
    assert!(
        count.contains(&format!("replayed {} events", replayed.len())),
        "{count}"
    );
    let live = events(&mut late, 20).await;
    // `one` has seen everything `late` is shown: read it up to the first live event.
    let first_live = &live[0];
    while !reference.contains(first_live) {
        reference.extend(
            events(&mut one, 1)
                .await
                .into_iter()
                .filter(|e| e["ev"] == "T"),
        );
    }
    let n = reference
        .iter()
        .position(|e| e == first_live)
        .expect("the first live event");
    let expected: Vec<&Value> = reference[..n]
        .iter()
        .filter(|e| time_of(e) >= since)
        .collect();
    assert!(
        expected.len() >= 200,
        "the replay covers the buffered events"
    );
    assert_eq!(
        replayed.iter().collect::<Vec<_>>(),
        expected,
        "exactly the missed events"
    );
    while reference.len() < n + live.len() {
        reference.extend(
            events(&mut one, 1)
                .await
                .into_iter()
                .filter(|e| e["ev"] == "T"),
        );
    }
    assert_eq!(
        &reference[n..n + live.len()],
        &live[..],
        "then the live stream in order"
    );

    // Revoking the key ends every socket on it within about a second.
    let (status, _) = web
        .call("DELETE", &format!("/api/relay-keys/{relay_id}"), None)
        .await;
    assert_eq!(status, 200);
    for c in [&mut one, &mut two, &mut late] {
        assert!(matches!(
            c.until_end().await,
            Ended::Closed(_) | Ended::Aborted
        ));
    }
    // (On a loaded machine a socket here may have been cut off as slow first: each ended.)
    assert!(counter(r, "tickwire_relay_closed_total", &[("reason", "revoked")]) >= 1);
    assert!(counter(r, "tickwire_relay_deliveries_total", &[]) > 0);
    assert!(
        r.gauge("tickwire_relay_replay_buffer_events", "", &[])
            .get()
            > 0
    );
    let mut after = auth_sent(&url, &relay_key).await;
    after
        .expect_status("auth_failed", "authentication failed")
        .await;
}

/// Distributed: the listener publishes to the relay exchange, a WDS node consumes its own
/// queue, and the control plane's keys reach it through the node registry's Redis. Two
/// programs on one key through the WDS; one asks for quotes the listener does not carry, and
/// the listener, widening, adds them upstream (what the WDS's clients hold goes through
/// Redis); deleting the key on the control plane ends both, and the listener narrows again.
#[actix_web::test]
async fn the_relay_works_across_nodes_through_rabbitmq_and_redis() {
    use common::{listener_args, rabbit, redis, sim_args, start_sim, start_wds, wds_args};
    let registry = redis::redis_url();
    let prefix = redis::unique_prefix("relay_nodes");
    let qprefix = rabbit::unique_prefix("relay_nodes");
    let sim = start_sim(sim_args());
    let sim_port = sim.port;

    // The control plane, writing relay keys to the registry.
    let mut scp = <tickwire::scp::node::ScpArgs as clap::Parser>::try_parse_from(["tickwire-scp"])
        .expect("defaults");
    scp.token_secret = "relay-nodes-token-secret-0123456789abcdef".into();
    scp.common.admin_token = "relay-nodes-admin-token-0123456789abcdef".into();
    scp.node_registry.registry_url = registry.clone();
    scp.node_registry.registry_prefix = prefix.clone();
    scp.node_registry.admin_url = String::new();
    scp.settings.data_dir = common::temp_dir("relay_nodes");
    scp.settings.admin_password = ADMIN_PW.into();
    let scp = tickwire::scp::node::start(scp, TcpListener::bind("127.0.0.1:0").expect("bind"))
        .expect("SCP starts");
    let web = Web::login(scp.url("")).await;
    let (key_id, key) = web.key("bot", &["relay"]).await;

    // A WDS with the relay on, and the listener that feeds it.
    let mut w = wds_args(
        &redis::redis_url(),
        &prefix,
        "relay-nodes-token-secret-0123456789abcdef",
        "relay-nodes-admin-token-0123456789abcdef",
    );
    w.node_registry.registry_url = registry.clone();
    w.node_registry.registry_prefix = prefix.clone();
    w.queue_prefix = qprefix.clone();
    w.rabbitmq_url = rabbit::rabbit_url();
    w.relay.keys_poll_ms = 200;
    let wds = start_wds(w).await;
    let wr = &wds.registry;
    wait_until("the WDS reads the key and its relay queue", || {
        wr.gauge("tickwire_relay_keys", "", &[]).get() >= 1
            && wr.gauge("tickwire_relay_feed_connected", "", &[]).get() == 1
    })
    .await;
    let extra = [
        "--lease",
        "false",
        "--massive-subscriptions",
        "T.*,A.*",
        "--listener-relay-widen",
        "true",
        "--listener-relay-widen-linger-secs",
        "0",
    ];
    let mut la = listener_args(sim_port, "demo", &qprefix, "2", &extra);
    la.node_registry.registry_prefix = prefix.clone();
    let listener = tickwire::actors::listener::node::start(
        la,
        TcpListener::bind("127.0.0.1:0").expect("bind"),
    )
    .expect("listener starts");

    let url = wds.ws_url("/stocks");
    let mut one = Client::authed(&url, &key).await;
    one.send(r#"{"action":"subscribe","params":"T.*,A.*"}"#)
        .await;
    assert_eq!(one.statuses(2).await.len(), 2);
    let mut two = Client::authed(&url, &key).await;
    two.send(r#"{"action":"subscribe","params":"T.*"}"#).await;
    two.statuses(1).await;
    let a = events(&mut one, 50).await;
    let b = events(&mut two, 50).await;
    assert!(a.iter().all(|e| e["ev"] == "T" || e["ev"] == "A"));
    assert!(b.iter().all(|e| e["ev"] == "T"));

    // Beyond upstream: one symbol's quotes are added by the listener; a whole channel is not.
    let sym = a[0]["sym"].as_str().expect("a symbol").to_string();
    one.send(r#"{"action":"subscribe","params":"Q.*"}"#).await;
    let refused = one.statuses(1).await;
    assert!(
        refused[0].1.starts_with("Q.* is not carried"),
        "{refused:?}"
    );
    one.send(&format!(r#"{{"action":"subscribe","params":"Q.{sym}"}}"#))
        .await;
    one.expect_status("success", &format!("subscribed to: Q.{sym}"))
        .await;
    let quote = loop {
        if let Some(q) = events(&mut one, 1)
            .await
            .into_iter()
            .find(|e| e["ev"] == "Q")
        {
            break q;
        }
    };
    assert_eq!(quote["sym"], sym.as_str());
    let widened = || {
        listener
            .registry
            .gauge(
                "tickwire_listener_relay_widened_topics",
                "",
                &[("market", "stocks")],
            )
            .get()
    };
    assert_eq!(widened(), 1);
    let mut bad = auth_sent(&url, "twk_nope").await;
    bad.expect_status("auth_failed", "authentication failed")
        .await;

    // Revoked on the control plane: both sockets on the WDS end.
    let (status, _) = web
        .call("DELETE", &format!("/api/relay-keys/{key_id}"), None)
        .await;
    assert_eq!(status, 200);
    for c in [&mut one, &mut two] {
        assert!(matches!(
            c.until_end().await,
            Ended::Closed(_) | Ended::Aborted
        ));
    }
    assert!(counter(wr, "tickwire_relay_closed_total", &[("reason", "revoked")]) >= 1);
    wait_until("no client wants the quotes: the listener narrows", || {
        widened() == 0
    })
    .await;
    assert!(
        counter(
            &listener.registry,
            "tickwire_relay_publisher_messages_total",
            &[]
        ) > 0
    );

    listener.stop().await;
    wds.stop().await;
    scp.stop().await;
    redis::cleanup(&prefix).await;
    let (_conn, ch) = rabbit::channel().await;
    rabbit::delete_pipeline(&ch, &qprefix, 2).await;
    let _ = ch
        .exchange_delete(
            tickwire::relay::exchange_name(&qprefix).as_str().into(),
            Default::default(),
        )
        .await;
}

/// A user holds at most `RELAY_MAX_SOCKETS_PER_USER` relay sockets on a node, over all their
/// keys; one more gets Massive's `max_connections` and a close, and a socket closed gives its
/// place back.
#[actix_web::test]
async fn a_user_holds_at_most_their_share_of_relay_sockets() {
    let (e, url, web) = start_embedded("relay_cap", |a| {
        a.sim.tickers = 10;
        a.relay.max_sockets_per_user = 2;
    })
    .await;
    let (_, k1) = web.key("one", &["relay"]).await;
    let (_, k2) = web.key("two", &["relay"]).await;
    let r = &e.registry;
    wait_until("the relay knows both keys", || {
        r.gauge("tickwire_relay_keys", "", &[]).get() >= 2
    })
    .await;
    let first = Client::authed(&url, &k1).await;
    let _second = Client::authed(&url, &k2).await;
    let mut third = auth_sent(&url, &k1).await;
    third
        .expect_status(
            "max_connections",
            "Maximum number of websocket connections exceeded. ",
        )
        .await;
    assert_eq!(third.until_end().await, Ended::Closed(Some(1008)));
    assert_eq!(
        counter(r, "tickwire_relay_closed_total", &[("reason", "user_cap")]),
        1
    );
    // A socket that ends gives its place back.
    drop(first);
    wait_until("the closed socket is gone", || {
        r.gauge("tickwire_relay_sessions", "", &[]).get() == 1
    })
    .await;
    Client::authed(&url, &k1).await;
}

/// Widening (`LISTENER_RELAY_WIDEN`): the listener subscribes `T.*` only. A relay client's
/// quote topic for one symbol is added upstream and its quotes arrive; a whole channel beyond
/// upstream is refused by name (wildcards are not widened unless allowed); once the client
/// lets go, the listener unsubscribes upstream (no linger here) and Massive confirms it.
#[actix_web::test]
async fn the_listener_widens_to_what_relay_clients_ask_and_narrows_after() {
    let (e, url, web) = start_embedded("relay_widen", |a| {
        a.sim.tickers = 5;
        a.subscriptions = "T.*".into();
        a.widen.enabled = true;
        a.widen.linger_secs = 0;
    })
    .await;
    let (_, key) = web.key("widen", &["relay"]).await;
    let r = &e.registry;
    wait_until("the relay knows the key", || {
        r.gauge("tickwire_relay_keys", "", &[]).get() >= 1
    })
    .await;
    let mut c = Client::authed(&url, &key).await;
    c.send(r#"{"action":"subscribe","params":"T.*"}"#).await;
    c.expect_status("success", "subscribed to: T.*").await;
    // A trade: the listener streams, and the relay has heard what it carries.
    let sym = events(&mut c, 1).await[0]["sym"]
        .as_str()
        .expect("a trade's symbol")
        .to_string();
    c.send(r#"{"action":"subscribe","params":"Q.*"}"#).await;
    c.expect_status(
        "error",
        "Q.* is not carried by this relay, which adds single symbols only \
         (upstream subscriptions: T.*)",
    )
    .await;
    c.send(&format!(r#"{{"action":"subscribe","params":"Q.{sym}"}}"#))
        .await;
    c.expect_status("success", &format!("subscribed to: Q.{sym}"))
        .await;
    let widened = || {
        r.gauge(
            "tickwire_listener_relay_widened_topics",
            "",
            &[("market", "stocks")],
        )
        .get()
    };
    let quote = loop {
        let got = events(&mut c, 1).await;
        if let Some(q) = got.into_iter().find(|e| e["ev"] == "Q") {
            break q;
        }
    };
    assert_eq!(quote["sym"], sym.as_str());
    assert_eq!(widened(), 1);
    let acks = || {
        counter(
            r,
            "tickwire_listener_status_total",
            &[("market", "stocks"), ("status", "success")],
        )
    };
    let before = acks();
    c.send(&format!(r#"{{"action":"unsubscribe","params":"Q.{sym}"}}"#))
        .await;
    wait_until("the listener unsubscribes upstream", || {
        widened() == 0 && acks() > before
    })
    .await;
}
