//! Widget data service benchmark: `tickwire-wds` in its own process (so its memory is its
//! own), N v2 clients in this one, a publisher on Redis.
//!
//! Client `i` subscribes to topic `i % topics` (non-value topics, so nothing may be
//! coalesced and every message must arrive): one topic is the worst case, every message
//! fanned out to every client at once; many topics spread the same deliveries out. The publisher PUBLISHes `rate` messages per second carrying
//! their send time in µs; each client measures publish-to-client latency on every frame.
//! With `--rate 0` nothing is published: the run measures connections held and memory per
//! connection only. Clients bind source addresses 127.0.0.2, .3, … so that more connections
//! can be opened than one source address has ports.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::fanout::{drain, micros_after, Server};
use super::listener::{cpu_seconds, free_port, rss_mb, sibling, stats_as, wait_http};
use super::wsclient::{Connect, WsClient};
use crate::metrics::{Histogram, LATENCY_BOUNDS_MS};
use crate::token::{self, Claims};

pub struct WdsBench {
    pub clients: usize,
    /// Topics; client `i` subscribes to topic `i % topics`.
    pub topics: usize,
    /// Messages per second on each topic (0: idle connections only).
    pub rate: f64,
    pub seconds: f64,
    pub payload_bytes: usize,
    pub redis_url: String,
    /// Connections opened at once while connecting.
    pub connect_concurrency: usize,
}

#[derive(Debug, Serialize)]
pub struct WdsFigures {
    pub bench: &'static str,
    pub clients_requested: usize,
    pub clients_connected: usize,
    pub connect_errors: usize,
    pub first_connect_error: Option<String>,
    pub connect_seconds: f64,
    pub server_rss_idle_mb: f64,
    pub server_rss_connected_mb: f64,
    pub server_kb_per_connection: f64,
    pub topics: usize,
    pub rate_per_topic: f64,
    pub published: u64,
    pub delivered: u64,
    pub expected: u64,
    pub deliveries_per_sec: f64,
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub latency_max_bucket_ms: Option<f64>,
    pub server_cpu_seconds: f64,
    pub server_dropped: i64,
    pub server_slow_closed: i64,
    /// SIGTERM to exit with the clients still connected: the node refuses new sessions,
    /// closes every one with 1001, then stops (`None` when it did not exit within 30 s).
    pub server_stop_seconds: Option<f64>,
}

const SECRET: &str = "bench-secret-for-the-wds-benchmark";
/// The server's /stats wants it.
const ADMIN_TOKEN: &str = "bench-admin-token-for-the-wds-benchmark";

fn counter(stats: &serde_json::Value, name: &str) -> i64 {
    stats["counters"][name].as_i64().unwrap_or(0)
}

pub async fn run(b: WdsBench) -> Result<WdsFigures, String> {
    let port = free_port()?;
    let prefix = format!("tw-bench-wds:{}:", std::process::id());
    let mut server = Server(
        Command::new(sibling("tickwire-wds")?)
            .env("SERVER_PORT", port.to_string())
            .env("SERVER_IP", "127.0.0.1")
            .env("WDC_REDIS_URL", &b.redis_url)
            .env("WDC_KEY_PREFIX", &prefix)
            .env("WDS_TOKEN_SECRET", SECRET)
            .env("ADMIN_TOKEN", ADMIN_TOKEN)
            .env("WDS_MAX_SESSIONS", "1000000")
            // Every benchmark client comes from this one address.
            .env("WDS_MAX_SESSIONS_PER_ADDRESS", "1000000")
            .env("WDS_MAX_UNAUTHENTICATED_PER_ADDRESS", "1000000")
            .env("WDS_MAX_MSGS_PER_SEC", "1000")
            .env("WDS_ALLOWED_TOPICS", "bench:*")
            .env("LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting tickwire-wds: {e}"))?,
    );
    let pid = server.0.id();
    wait_http(port).await?;
    let rss_idle = rss_mb(pid);
    let claims = Claims::new("bench", &["viewer"], &["*"], token::now_secs(), 3600);
    let tok = token::sign(&claims, SECRET.as_bytes()).map_err(|e| e.to_string())?;
    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
    let path = format!("/ws/v2?token={tok}");
    let topics = b.topics.max(1);

    // Connect in waves; each client subscribes and waits for its snapshot.
    let started = Instant::now();
    let mut clients = Vec::with_capacity(b.clients);
    let mut errors = 0;
    let mut first_error: Option<String> = None;
    let mut next = 0usize;
    while next < b.clients {
        let wave = b.connect_concurrency.max(1).min(b.clients - next);
        let mut joins = Vec::with_capacity(wave);
        for i in next..next + wave {
            // 20,000 connections per source address keeps well inside its port range.
            let local = IpAddr::V4(Ipv4Addr::new(
                127,
                0,
                (i / 20_000 / 250) as u8,
                (2 + (i / 20_000) % 250) as u8,
            ));
            let (path, opts) = (
                path.clone(),
                Connect {
                    local: Some(local),
                    recv_buffer: 0,
                },
            );
            let subscribe = format!(r#"{{"type":"subscribe","topic":"bench:{}"}}"#, i % topics);
            joins.push(actix_web::rt::spawn(async move {
                let mut c = WsClient::connect(addr, &path, &opts)
                    .await
                    .map_err(|e| e.to_string())?;
                c.next_text().await.map_err(|e| e.to_string())?; // welcome
                c.send_text(&subscribe).await.map_err(|e| e.to_string())?;
                c.next_text().await.map_err(|e| e.to_string())?; // subscribed
                c.next_text().await.map_err(|e| e.to_string())?; // snapshot
                Ok::<_, String>(c)
            }));
        }
        for j in joins {
            match j.await {
                Ok(Ok(c)) => clients.push(c),
                Ok(Err(e)) => {
                    errors += 1;
                    first_error.get_or_insert(e);
                }
                Err(e) => {
                    errors += 1;
                    first_error.get_or_insert(e.to_string());
                }
            }
        }
        next += wave;
    }
    let connect_seconds = started.elapsed().as_secs_f64();
    let connected = clients.len();
    let rss_connected = rss_mb(pid);
    let cpu_before = cpu_seconds(pid);

    // Readers: count frames and record latency from the publish time in the payload.
    let latency = Histogram::new(LATENCY_BOUNDS_MS);
    let delivered = Rc::new(std::cell::Cell::new(0u64));
    let mut readers = Vec::with_capacity(connected);
    for mut c in clients {
        let (latency, delivered) = (latency.clone(), delivered.clone());
        readers.push(actix_web::rt::spawn(async move {
            while let Ok(frame) = c.next_text().await {
                delivered.set(delivered.get() + 1);
                if let Some(t) = sent_us(&frame) {
                    let now = chrono::Utc::now().timestamp_micros();
                    latency.observe((now - t).max(0) as f64 / 1000.0);
                }
            }
        }));
    }

    // Publish.
    let mut published = 0u64;
    let pub_start = Instant::now();
    if b.rate > 0.0 {
        let pool = deadpool_redis::Config::from_url(b.redis_url.clone())
            .create_pool(Some(deadpool_redis::Runtime::Tokio1))
            .map_err(|e| e.to_string())?;
        let mut conn = pool.get().await.map_err(|e| e.to_string())?;
        let channels: Vec<String> = (0..topics).map(|t| format!("{prefix}bench:{t}")).collect();
        let pad = "x".repeat(b.payload_bytes.saturating_sub(40));
        let total_rate = b.rate * topics as f64;
        let total = (total_rate * b.seconds) as u64;
        let t0 = Instant::now();
        while published < total {
            let channel = &channels[published as usize % topics];
            let due = t0 + Duration::from_secs_f64(published as f64 / total_rate);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                tokio::time::sleep(wait).await;
            }
            let now = chrono::Utc::now().timestamp_micros();
            let payload = format!(r#"{{"t":{now},"n":{published},"pad":"{pad}"}}"#);
            let _: () = deadpool_redis::redis::cmd("PUBLISH")
                .arg(channel)
                .arg(payload)
                .query_async(&mut *conn)
                .await
                .map_err(|e| e.to_string())?;
            published += 1;
        }
    }
    // Each client receives its topic's share of the messages.
    let expected = (published as f64 / topics as f64 * connected as f64).round() as u64;
    // Drain: wait until every frame arrived or nothing moved for two seconds.
    let last = drain(&delivered, expected).await;
    let elapsed = last.duration_since(pub_start).as_secs_f64().max(1e-3);
    let server_stats = stats_as(port, Some(ADMIN_TOKEN)).await.unwrap_or_default();
    let cpu = cpu_seconds(pid) - cpu_before;
    let server_stop_seconds = server.terminate().await;
    for r in readers {
        r.abort();
    }
    drop(server);
    Ok(WdsFigures {
        bench: "wds",
        clients_requested: b.clients,
        clients_connected: connected,
        connect_errors: errors,
        first_connect_error: first_error,
        connect_seconds,
        server_rss_idle_mb: rss_idle,
        server_rss_connected_mb: rss_connected,
        server_kb_per_connection: if connected > 0 {
            (rss_connected - rss_idle) * 1024.0 / connected as f64
        } else {
            0.0
        },
        topics,
        rate_per_topic: b.rate,
        published,
        delivered: delivered.get(),
        expected,
        deliveries_per_sec: if published > 0 {
            delivered.get() as f64 / elapsed
        } else {
            0.0
        },
        latency_p50_ms: latency.quantile(0.5),
        latency_p99_ms: latency.quantile(0.99),
        latency_max_bucket_ms: latency.quantile(1.0),
        server_cpu_seconds: cpu,
        server_dropped: counter(&server_stats, "tickwire_wds_dropped_total"),
        server_slow_closed: counter(&server_stats, "tickwire_wds_slow_clients_closed_total"),
        server_stop_seconds,
    })
}

/// The publish time (`"t":<µs>`) in a v2 update frame.
fn sent_us(frame: &[u8]) -> Option<i64> {
    micros_after(frame, br#""t":"#)
}
