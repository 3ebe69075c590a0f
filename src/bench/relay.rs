//! Massive relay benchmark (issue 23): `tickwire-wds` in its own process with the relay on,
//! fed through RabbitMQ exactly as the listener feeds it (indexed frames on the relay
//! exchange), and relay clients in this process speaking Massive's protocol.
//!
//! `full` clients subscribe `T.*,Q.*` (the whole stream); `narrow` clients subscribe 10
//! symbols each (`T.` and `Q.` of them). The publisher sends `rate` events per second in
//! frames of `events_per_frame` over 1,000 symbols, every event carrying its send time in µs
//! (`tw_us`, the listener's receive time in this picture); each client measures that to its
//! own receive time on the first event of every frame, and counts the events it gets.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use lapin::{Connection, ConnectionProperties};
use serde::Serialize;

use super::fanout::{drain, micros_after, Server};
use super::listener::{cpu_seconds, free_port, rss_mb, sibling, stats_as, wait_http};
use super::wsclient::{Connect, WsClient};
use crate::massive::Market;
use crate::metrics::{Histogram, LATENCY_BOUNDS_MS};
use crate::relay::{self, Carried, RelayBatch, RelayEvent, RelayKey, Relayed};

pub struct RelayBench {
    /// Clients on the whole stream (`T.*,Q.*`).
    pub full: usize,
    /// Clients on 10 symbols each.
    pub narrow: usize,
    /// Events per second in.
    pub rate: f64,
    pub seconds: f64,
    pub events_per_frame: usize,
    pub amqp_url: String,
    pub redis_url: String,
}

#[derive(Debug, Serialize)]
pub struct RelayFigures {
    pub bench: &'static str,
    pub full_clients: usize,
    pub narrow_clients: usize,
    pub clients_connected: usize,
    pub rate_in: f64,
    pub events_per_frame: usize,
    pub published_events: u64,
    pub expected_deliveries: u64,
    pub delivered: u64,
    pub deliveries_per_sec: f64,
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub latency_max_bucket_ms: Option<f64>,
    pub server_cpu_seconds: f64,
    pub server_cpu_us_per_delivery: f64,
    pub server_rss_idle_mb: f64,
    pub server_rss_connected_mb: f64,
    pub server_kb_per_client: f64,
    pub slow_closed: i64,
    pub dropped_bytes: i64,
}

const ADMIN_TOKEN: &str = "bench-admin-token-for-the-relay-benchmark";
const KEY: &str = "twk_bench-relay-key";
const SYMBOLS: usize = 1000;

/// The send time (`"tw_us":<µs>`) of the first event in a frame.
fn sent_us(frame: &[u8]) -> Option<i64> {
    micros_after(frame, br#""tw_us":"#)
}

/// One frame of `n` events starting at event number `seq`, indexed as the router does.
fn frame(seq: u64, n: usize) -> RelayBatch {
    let now_us = chrono::Utc::now().timestamp_micros();
    let mut body = Vec::with_capacity(n * 110);
    let mut events = Vec::with_capacity(n);
    body.push(b'[');
    for k in 0..n as u64 {
        let i = seq + k;
        if k > 0 {
            body.push(b',');
        }
        let ch = if i.is_multiple_of(2) { "T" } else { "Q" };
        let sym = format!("S{}", i as usize % SYMBOLS);
        let start = body.len();
        body.extend_from_slice(
            format!(
                r#"{{"ev":"{ch}","sym":"{sym}","p":10.5,"s":100,"t":{},"i":"{i}","tw_us":{now_us}}}"#,
                now_us / 1000
            )
            .as_bytes(),
        );
        events.push(RelayEvent {
            channel: ch.into(),
            symbol: sym.into(),
            start: start as u32,
            end: body.len() as u32,
            time_ms: now_us / 1000,
        });
    }
    body.push(b']');
    RelayBatch {
        market: Market::Stocks,
        received_at_ms: now_us / 1000,
        frame: body.into(),
        events,
        whole: true,
    }
}

/// A relay client past `connected`, `auth` and its subscription statuses.
async fn client(addr: SocketAddr, i: usize, narrow: bool) -> Result<WsClient, String> {
    let local = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i / 20_000) as u8));
    let opts = Connect {
        local: Some(local),
        recv_buffer: 0,
    };
    let mut c = WsClient::connect(addr, "/stocks", &opts)
        .await
        .map_err(|e| e.to_string())?;
    c.next_text().await.map_err(|e| e.to_string())?; // connected
    c.send_text(&format!(r#"{{"action":"auth","params":"{KEY}"}}"#))
        .await
        .map_err(|e| e.to_string())?;
    let auth = c.next_text().await.map_err(|e| e.to_string())?;
    if memchr::memmem::find(&auth, b"auth_success").is_none() {
        return Err(format!("auth: {}", String::from_utf8_lossy(&auth)));
    }
    let topics: Vec<String> = if narrow {
        (0..10)
            .flat_map(|k| {
                let s = (i * 10 + k) % SYMBOLS;
                [format!("T.S{s}"), format!("Q.S{s}")]
            })
            .collect()
    } else {
        vec!["T.*".into(), "Q.*".into()]
    };
    c.send_text(&format!(
        r#"{{"action":"subscribe","params":"{}"}}"#,
        topics.join(",")
    ))
    .await
    .map_err(|e| e.to_string())?;
    for _ in 0..topics.len() {
        c.next_text().await.map_err(|e| e.to_string())?;
    }
    Ok(c)
}

pub async fn run(b: RelayBench) -> Result<RelayFigures, String> {
    let port = free_port()?;
    let prefix = format!("tw-bench-relay:{}:", std::process::id());
    // The key, as the control plane would publish it.
    let pool = deadpool_redis::Config::from_url(b.redis_url.clone())
        .create_pool(Some(deadpool_redis::Runtime::Tokio1))
        .map_err(|e| e.to_string())?;
    let mut conn = pool.get().await.map_err(|e| e.to_string())?;
    let record = serde_json::to_string(&RelayKey {
        id: "bench".into(),
        user: "bench".into(),
    })
    .map_err(|e| e.to_string())?;
    let _: () = deadpool_redis::redis::cmd("HSET")
        .arg(relay::keys_key(&prefix))
        .arg(relay::key_hash(KEY))
        .arg(record)
        .query_async(&mut *conn)
        .await
        .map_err(|e| e.to_string())?;

    let server = Server(
        Command::new(sibling("tickwire-wds")?)
            .env("SERVER_PORT", port.to_string())
            .env("SERVER_IP", "127.0.0.1")
            .env("WDC_REDIS_URL", &b.redis_url)
            .env("WDC_KEY_PREFIX", &prefix)
            .env("AUTH_ENABLED", "false")
            .env("ADMIN_TOKEN", ADMIN_TOKEN)
            .env("NODE_REGISTRY_URL", &b.redis_url)
            .env("NODE_REGISTRY_PREFIX", &prefix)
            .env("RABBITMQ_URL", &b.amqp_url)
            .env("QUEUE_PREFIX", &prefix)
            .env("RELAY_MAX_SOCKETS_PER_USER", "1000000")
            .env("RELAY_MAX_SESSIONS", "1000000")
            .env("LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting tickwire-wds: {e}"))?,
    );
    let pid = server.0.id();
    wait_http(port).await?;
    // The relay has the key and its queue.
    let started = Instant::now();
    loop {
        let s = stats_as(port, Some(ADMIN_TOKEN)).await.unwrap_or_default();
        let relay = &s["node"]["relay"];
        if relay["keys"].as_i64() == Some(1) && relay["feed_connected"] == true {
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            return Err(format!("the relay did not get ready: {relay}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rss_idle = rss_mb(pid);

    let amqp = Connection::connect(&b.amqp_url, ConnectionProperties::default())
        .await
        .map_err(|e| e.to_string())?;
    let channel = amqp.create_channel().await.map_err(|e| e.to_string())?;
    let exchange = relay::exchange_name(&prefix);
    relay::declare_exchange(&channel, &exchange)
        .await
        .map_err(|e| e.to_string())?;
    let publish = |m: Relayed| {
        let (channel, exchange) = (channel.clone(), exchange.clone());
        async move {
            let body = m.encode().map_err(|e| e.to_string())?;
            relay::publish(&channel, &exchange, &body)
                .await
                .map_err(|e| e.to_string())
        }
    };
    publish(Relayed::Carried(Carried {
        widens: None,
        market: Market::Stocks,
        topics: vec!["T.*".into(), "Q.*".into()],
    }))
    .await?;

    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
    let mut clients = Vec::new();
    for i in 0..b.full + b.narrow {
        clients.push(client(addr, i, i >= b.full).await?);
    }
    let connected = clients.len();
    let rss_connected = rss_mb(pid);
    let cpu_before = cpu_seconds(pid);

    let latency = Histogram::new(LATENCY_BOUNDS_MS);
    let delivered = Rc::new(std::cell::Cell::new(0u64));
    let mut readers = Vec::with_capacity(connected);
    for mut c in clients {
        let (latency, delivered) = (latency.clone(), delivered.clone());
        readers.push(actix_web::rt::spawn(async move {
            while let Ok(frame) = c.next_text().await {
                let n = memchr::memmem::find_iter(&frame, br#"{"ev""#).count() as u64;
                delivered.set(delivered.get() + n);
                if let Some(t) = sent_us(&frame) {
                    let now = chrono::Utc::now().timestamp_micros();
                    latency.observe((now - t).max(0) as f64 / 1000.0);
                }
            }
        }));
    }

    let per_frame = b.events_per_frame.max(1);
    let total = (b.rate * b.seconds) as u64;
    let mut published = 0u64;
    let t0 = Instant::now();
    while published < total {
        let due = t0 + Duration::from_secs_f64(published as f64 / b.rate.max(1.0));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
        let n = per_frame.min((total - published) as usize);
        publish(Relayed::Batch(frame(published, n))).await?;
        published += n as u64;
    }
    // Every full client gets every event; a narrow one its 10 symbols' share.
    let narrow_share = 10.0 / SYMBOLS as f64;
    let expected =
        (published as f64 * (b.full as f64 + b.narrow as f64 * narrow_share)).round() as u64;
    let last = drain(&delivered, expected).await;
    let elapsed = last.duration_since(t0).as_secs_f64().max(1e-3);
    let stats = stats_as(port, Some(ADMIN_TOKEN)).await.unwrap_or_default();
    let cpu = cpu_seconds(pid) - cpu_before;
    for r in readers {
        r.abort();
    }
    drop(server);
    let _ = channel
        .exchange_delete(exchange.as_str().into(), Default::default())
        .await;
    let _: Result<(), _> = deadpool_redis::redis::cmd("DEL")
        .arg(relay::keys_key(&prefix))
        .query_async(&mut *conn)
        .await;
    let got = delivered.get();
    Ok(RelayFigures {
        bench: "relay",
        full_clients: b.full,
        narrow_clients: b.narrow,
        clients_connected: connected,
        rate_in: b.rate,
        events_per_frame: per_frame,
        published_events: published,
        expected_deliveries: expected,
        delivered: got,
        deliveries_per_sec: got as f64 / elapsed,
        latency_p50_ms: latency.quantile(0.5),
        latency_p99_ms: latency.quantile(0.99),
        latency_max_bucket_ms: latency.quantile(1.0),
        server_cpu_seconds: cpu,
        server_cpu_us_per_delivery: if got > 0 { cpu * 1e6 / got as f64 } else { 0.0 },
        server_rss_idle_mb: rss_idle,
        server_rss_connected_mb: rss_connected,
        server_kb_per_client: if connected > 0 {
            (rss_connected - rss_idle) * 1024.0 / connected as f64
        } else {
            0.0
        },
        slow_closed: stats["node"]["relay"]["closed"]["slow"]
            .as_i64()
            .unwrap_or(0),
        dropped_bytes: stats["node"]["relay"]["dropped_bytes"]
            .as_i64()
            .unwrap_or(0),
    })
}
