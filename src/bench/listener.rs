//! `tickwire-bench listener`: events/s the listener node routes into RabbitMQ, with the
//! simulator and the listener as separate processes (so the listener's RSS and CPU are its
//! own), and the route-only parse rate of frames of the same shape from the same simulator.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Serialize;

use crate::massive::frame::route_frame;

/// Settings of one run.
#[derive(Debug, Clone)]
pub struct ListenerBench {
    pub rate: f64,
    pub events_per_frame: u32,
    pub seconds: f64,
    pub shards: u16,
    pub rabbitmq_url: String,
    /// Feed the simulator a pre-encoded capture (one second of market at `rate`, looped)
    /// instead of generating live: the simulator then costs less CPU per event.
    pub replay: bool,
}

#[derive(Debug, Serialize)]
pub struct ListenerRun {
    pub configured_rate: f64,
    pub events_per_frame: u32,
    pub shards: u16,
    pub source: &'static str,
    /// Whether the listener waited for broker confirms (`MDQ_PUBLISHER_CONFIRMS`).
    pub publisher_confirms: bool,
    pub seconds: f64,
    pub frames_per_sec: f64,
    pub events_routed_per_sec: f64,
    pub messages_published_per_sec: f64,
    pub events_published_per_sec: f64,
    pub batches_dropped: i64,
    pub listener_reconnects: i64,
    pub listener_rss_max_mb: f64,
    /// CPU cores the listener process used on average during the window.
    pub listener_cpu_cores: f64,
    pub route_only_parse_events_per_sec: f64,
    pub routed_vs_parse_limit: f64,
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

pub(crate) fn sibling(name: &str) -> Result<std::path::PathBuf, String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let p = me.with_file_name(name);
    if p.exists() {
        Ok(p)
    } else {
        Err(format!(
            "{} not found: build it first (cargo build --release --bins)",
            p.display()
        ))
    }
}

/// utime + stime of a process, in seconds.
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
    let ticks = 100.0; // USER_HZ on Linux
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1;
            let f: Vec<&str> = after.split_whitespace().collect();
            Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / ticks)
        })
        .unwrap_or(0.0)
}

pub(crate) fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

pub(crate) async fn stats(port: u16) -> Result<serde_json::Value, String> {
    stats_as(port, None).await
}

/// `/stats` with the admin token, for the nodes that want it (WDS, control plane).
pub(crate) async fn stats_as(port: u16, token: Option<&str>) -> Result<serde_json::Value, String> {
    let mut req = awc::Client::new().get(format!("http://127.0.0.1:{port}/stats"));
    if let Some(t) = token {
        req = req.insert_header(("authorization", format!("Bearer {t}")));
    }
    let mut resp = req.send().await.map_err(|e| e.to_string())?;
    let body = resp
        .body()
        .limit(16 << 20)
        .await
        .map_err(|e| e.to_string())?;
    serde_json::from_slice(&body).map_err(|e| e.to_string())
}

fn sum(stats: &serde_json::Value, prefix: &str) -> i64 {
    stats["counters"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .filter_map(|(_, v)| v.as_i64())
                .sum()
        })
        .unwrap_or(0)
}

pub(crate) async fn wait_http(port: u16) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if stats(port).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("nothing answered on port {port}"))
}

/// Runs the measurement; both child processes are killed at the end.
pub async fn run(b: ListenerBench) -> Result<ListenerRun, String> {
    let (sim_port, node_port) = (free_port()?, free_port()?);
    let quiet = |c: &mut Command| {
        c.stdout(Stdio::null()).stderr(Stdio::null());
    };
    let mut sim = Command::new(sibling("tickwire-sim")?);
    sim.env_clear()
        .env("SERVER_IP", "127.0.0.1")
        .env("SERVER_PORT", sim_port.to_string())
        .env("SIM_API_KEYS", "demo,bench")
        .env("SIM_RATE", b.rate.to_string())
        .env("SIM_BATCH_SIZE", b.events_per_frame.to_string())
        .env("SIM_START_TIME", "10:00")
        .env("SIM_CLIENT_BUFFER_BYTES", (512u64 << 20).to_string())
        .env("LOG_LEVEL", "warn");
    let capture_file =
        std::env::temp_dir().join(format!("tickwire-bench-{}.jsonl", std::process::id()));
    if b.replay {
        write_capture(&capture_file, b.rate, b.events_per_frame)?;
        sim.env("SIM_REPLAY", &capture_file)
            .env("SIM_REPLAY_SPEED", "1")
            .env("SIM_REPLAY_LOOP", "true");
    }
    quiet(&mut sim);
    let _sim = Kill(sim.spawn().map_err(|e| e.to_string())?);
    wait_http(sim_port).await?;

    let prefix = format!("bench-{}-", std::process::id());
    let mut node = Command::new(sibling("tickwire-listener")?);
    node.env_clear()
        .env("SERVER_IP", "127.0.0.1")
        .env("SERVER_PORT", node_port.to_string())
        .env("MASSIVE_API_KEY", "demo")
        .env("MASSIVE_FEED", format!("127.0.0.1:{sim_port}"))
        .env("MASSIVE_SECURE", "false")
        .env("MASSIVE_SUBSCRIPTIONS", "T.*,Q.*,A.*,AM.*")
        .env("RABBITMQ_URL", &b.rabbitmq_url)
        .env("QUEUE_PREFIX", &prefix)
        .env("QUEUE_SHARDS", b.shards.to_string())
        .env("LISTENER_LEASE", "false")
        .env("MASSIVE_POLL_WHEN_CLOSED", "false")
        .env("LOG_LEVEL", "warn");
    // Tuning knobs pass through from the bench's own environment.
    for knob in [
        "PUBLISH_MAX_IN_FLIGHT",
        "PUBLISH_COALESCE_MAX_EVENTS",
        "PUBLISH_BUFFER_BATCHES",
        "MDQ_PUBLISHER_CONFIRMS",
        // Longer than the run: nothing consumes here, and expiries cost RabbitMQ a
        // dead-letter each (docs/benchmarks.md).
        "MARKET_DATA_MESSAGE_TTL",
    ] {
        if let Ok(v) = std::env::var(knob) {
            node.env(knob, v);
        }
    }
    quiet(&mut node);
    let node = Kill(node.spawn().map_err(|e| e.to_string())?);
    let pid = node.0.id();
    wait_http(node_port).await?;

    // Warm up, then measure between two /stats samples.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s0 = stats(node_port).await?;
    let cpu0 = cpu_seconds(pid);
    let t0 = Instant::now();
    let mut rss: f64 = 0.0;
    while t0.elapsed().as_secs_f64() < b.seconds {
        rss = rss.max(rss_mb(pid));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let s1 = stats(node_port).await?;
    let secs = t0.elapsed().as_secs_f64();
    let cpu = (cpu_seconds(pid) - cpu0) / secs;
    rss = rss.max(rss_mb(pid));
    let d = |p: &str| (sum(&s1, p) - sum(&s0, p)) as f64 / secs;

    // Frames of the same shape from the same simulator, for the parse limit; the listener
    // is stopped first so that it does not share the CPU with the measurement.
    drop(node);
    let frames = capture(sim_port, 200_000).await?;
    let events: usize = frames
        .iter()
        .map(|f| route_frame(f).map(|r| r.len()).unwrap_or(0))
        .sum();
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        let mut n = 0usize;
        for f in &frames {
            n += route_frame(f).map(|r| r.len()).unwrap_or(0);
        }
        assert_eq!(n, events);
        best = best.min(t.elapsed().as_secs_f64());
    }
    let parse_rate = events as f64 / best.max(1e-9);
    let routed = d("tickwire_router_events_total");
    let _ = std::fs::remove_file(&capture_file);
    super::delete_rabbit_topology(&b.rabbitmq_url, &prefix, b.shards).await;
    Ok(ListenerRun {
        configured_rate: b.rate,
        events_per_frame: b.events_per_frame,
        shards: b.shards,
        source: if b.replay { "replay" } else { "synthetic" },
        publisher_confirms: std::env::var("MDQ_PUBLISHER_CONFIRMS").is_ok_and(|v| v == "true"),
        seconds: secs,
        frames_per_sec: d("tickwire_listener_frames_total"),
        events_routed_per_sec: routed,
        messages_published_per_sec: d("tickwire_publisher_messages_total"),
        events_published_per_sec: d("tickwire_publisher_events_total"),
        batches_dropped: sum(&s1, "tickwire_publisher_dropped_batches_total"),
        listener_reconnects: sum(&s1, "tickwire_listener_reconnects_total"),
        listener_rss_max_mb: rss,
        listener_cpu_cores: cpu,
        route_only_parse_events_per_sec: parse_rate,
        routed_vs_parse_limit: routed / parse_rate,
    })
}

async fn capture(port: u16, events: usize) -> Result<Vec<bytes::Bytes>, String> {
    let mut ws =
        super::subscribed_client(&format!("ws://127.0.0.1:{port}/stocks"), "bench").await?;
    let (mut out, mut n) = (Vec::new(), 0usize);
    let deadline = Instant::now() + Duration::from_secs(30);
    while n < events && Instant::now() < deadline {
        if let Some(Ok(awc::ws::Frame::Text(b))) = ws.next().await {
            n += route_frame(&b).map(|r| r.len()).unwrap_or(0);
            out.push(b);
        }
    }
    Ok(out)
}

/// One second of synthetic market at `rate` events/s as a capture: frames of
/// `per_frame` events with receive times spread evenly over the second.
fn write_capture(path: &std::path::Path, rate: f64, per_frame: u32) -> Result<(), String> {
    use std::io::Write;
    let frames = super::parse_corpus(rate.max(1.0) as usize, per_frame.max(1) as usize);
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).map_err(|e| e.to_string())?);
    let n = frames.len().max(1) as f64;
    for (i, f) in frames.iter().enumerate() {
        let t = 1_772_652_572_000i64 + (i as f64 * 1000.0 / n) as i64;
        out.write_all(format!("{{\"t\":{t},\"market\":\"stocks\",\"frame\":").as_bytes())
            .and_then(|_| out.write_all(f))
            .and_then(|_| out.write_all(b"}\n"))
            .map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())
}
