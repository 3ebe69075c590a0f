//! Throughput measurements behind `tickwire-bench` (figures recorded in docs/benchmarks.md).
//!
//! - [`parse_corpus`] + [`bench_parse`]: frame parsing, full and route-only, over frames the
//!   synthetic market produces (realistic mix of trades, quotes and bars).
//! - [`bench_market`]: the synthetic market's generation + encoding ceiling, no network.
//! - [`bench_sim`]: the simulator end to end: an in-process server and one real WebSocket
//!   client reading as fast as it can, route-parsing every frame as the listener will.
//! - [`wds`]: widget data service deliveries and held connections, over [`wsclient`].
//! - [`processor`], [`listener`]: the distributed pipeline's stages; [`redis`]: the cost of
//!   one results pipeline, client against server; [`analyzers`]: the processor's CPU per
//!   event type, alone; [`warmup`]: what enriching a whole market from a cold cache costs.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Serialize;

use crate::actors::sim::market::{MarketConfig, SyntheticMarket};
use crate::actors::sim::SimArgs;
use crate::clock::from_et;
use crate::massive::events::encode_frame;
use crate::massive::frame::route_frame;
use crate::massive::{parse_frame, Event, Market};

pub mod analyzers;
pub mod fanout;
pub mod listener;
pub mod processor;
pub mod redis;
pub mod relay;
pub mod warmup;
pub mod wds;
pub mod wsclient;

/// A busy regular-session moment (Wednesday 2026-03-04, 10:00 ET) where the benchmarks'
/// synthetic markets start, so that every benchmark sees the same mix of events.
pub fn busy_start_ms() -> i64 {
    from_et(
        chrono::NaiveDate::from_ymd_opt(2026, 3, 4)
            .and_then(|d| d.and_hms_opt(10, 0, 0))
            .unwrap_or_default(),
    )
    .timestamp_millis()
}

/// Frames of `per_frame` events from the synthetic market at a busy regular-session time.
pub fn parse_corpus(events: usize, per_frame: usize) -> Vec<Vec<u8>> {
    let start = busy_start_ms();
    let cfg = MarketConfig {
        rate: 1_000_000.0,
        ..MarketConfig::default()
    };
    let mut market = SyntheticMarket::new(cfg, start);
    let mut all: Vec<Event> = Vec::with_capacity(events);
    let mut out = Vec::new();
    let mut t = start;
    while all.len() < events {
        t += 5;
        market.advance(t, 0.005, &mut out);
        all.extend(out.drain(..).map(|e| e.event));
    }
    all.truncate(events);
    all.chunks(per_frame.max(1))
        .map(|c| encode_frame(c).into_bytes())
        .collect()
}

/// One throughput figure.
#[derive(Debug, Serialize)]
pub struct Throughput {
    pub name: String,
    pub events: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub events_per_sec: f64,
    pub mb_per_sec: f64,
}

impl Throughput {
    fn new(name: &str, events: u64, bytes: u64, elapsed: Duration) -> Self {
        let s = elapsed.as_secs_f64().max(1e-9);
        Throughput {
            name: name.to_string(),
            events,
            bytes,
            seconds: s,
            events_per_sec: events as f64 / s,
            mb_per_sec: bytes as f64 / s / 1e6,
        }
    }
}

/// Parses the corpus `rounds` times each way; returns the best round of each.
pub fn bench_parse(corpus: &[Vec<u8>], rounds: usize) -> Vec<Throughput> {
    let bytes: u64 = corpus.iter().map(|f| f.len() as u64).sum();
    let mut best_full = Duration::MAX;
    let mut best_route = Duration::MAX;
    let mut events = 0u64;
    for _ in 0..rounds.max(1) {
        let t = Instant::now();
        let mut n = 0u64;
        for f in corpus {
            if let Ok(p) = parse_frame(Market::Stocks, f) {
                n += p.events.len() as u64;
            }
        }
        best_full = best_full.min(t.elapsed());
        events = n;
        let t = Instant::now();
        let mut m = 0u64;
        for f in corpus {
            if let Ok(r) = route_frame(f) {
                m += r.iter().filter(|e| e.is_ok()).count() as u64;
            }
        }
        best_route = best_route.min(t.elapsed());
        assert_eq!(n, m, "both paths see every event");
    }
    vec![
        Throughput::new("parse_full", events, bytes, best_full),
        Throughput::new("parse_route_only", events, bytes, best_route),
    ]
}

/// Generates and encodes `seconds` of market at `rate` as fast as possible.
pub fn bench_market(rate: f64, wall_seconds: f64) -> Throughput {
    let start = busy_start_ms();
    let mut market = SyntheticMarket::new(
        MarketConfig {
            rate,
            ..MarketConfig::default()
        },
        start,
    );
    let mut out = Vec::new();
    let mut buf = Vec::with_capacity(1 << 20);
    let (mut events, mut bytes) = (0u64, 0u64);
    let ticks = (wall_seconds * 1000.0 / 5.0) as i64;
    let t0 = Instant::now();
    for k in 1..=ticks {
        market.advance(start + k * 5, 0.005, &mut out);
        for e in out.drain(..) {
            buf.clear();
            e.event.write_json(&mut buf);
            bytes += buf.len() as u64;
            events += 1;
        }
    }
    Throughput::new("market_generate_encode", events, bytes, t0.elapsed())
}

/// A WebSocket client to a simulator, authenticated with `key` and subscribed to trades,
/// quotes and bars (pipelined, as the listener does).
pub(crate) async fn subscribed_client(
    url: &str,
    key: &str,
) -> Result<actix_codec::Framed<awc::BoxedSocket, awc::ws::Codec>, String> {
    use futures_util::SinkExt;
    let (_, mut ws) = awc::Client::new()
        .ws(url)
        .max_frame_size(4 << 20)
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    for msg in [
        crate::massive::control::ClientMessage::auth(key),
        crate::massive::control::ClientMessage {
            action: "subscribe".into(),
            params: "T.*,Q.*,A.*,AM.*".into(),
        },
    ] {
        ws.send(awc::ws::Message::Text(msg.to_json().into()))
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(ws)
}

/// Deletes a benchmark's queues, dead-letter queue and exchange (best effort: a benchmark's
/// figures do not depend on its cleanup).
pub(crate) async fn delete_rabbit_topology(url: &str, prefix: &str, shards: u16) {
    let Ok(conn) = lapin::Connection::connect(url, lapin::ConnectionProperties::default()).await
    else {
        return;
    };
    if let Ok(ch) = conn.create_channel().await {
        if let Err(e) = crate::queue::topology::delete_topology(&ch, prefix, shards).await {
            log::warn!("benchmark cleanup of {prefix}: {e}");
        }
    }
}

/// Result of an end-to-end simulator run.
#[derive(Debug, Serialize)]
pub struct SimRun {
    pub configured_rate: f64,
    pub seconds: f64,
    pub frames_per_sec: f64,
    pub events_per_sec: f64,
    pub mb_per_sec: f64,
    pub generated_per_sec: f64,
    pub avg_events_per_frame: f64,
}

/// Runs an in-process simulator at `rate` and reads `T.*,Q.*,A.*,AM.*` with one client for
/// `seconds`, route-parsing every frame.
pub async fn bench_sim(rate: f64, seconds: f64, batch_size: u32) -> Result<SimRun, String> {
    let mut args = SimArgs::defaults();
    args.port = 0;
    args.rate = rate;
    args.batch_size = batch_size;
    args.start_time = "10:00:00".into();
    args.client_buffer_bytes = 256 * 1024 * 1024;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let sim = crate::actors::sim::start(args, listener, false).map_err(|e| e.to_string())?;
    let mut ws = subscribed_client(&sim.ws_url("stocks"), "demo").await?;
    let generated = |sim: &crate::actors::sim::SimServer| -> i64 {
        ["T", "Q", "A", "AM", "LULD", "NOI", "FMV"]
            .iter()
            .filter_map(|c| {
                sim.registry
                    .value("tickwire_sim_events_generated_total", &[("channel", c)])
            })
            .sum()
    };
    // Warm up one second so the measurement starts in steady state.
    let warm = Instant::now() + Duration::from_secs(1);
    while Instant::now() < warm {
        if ws.next().await.is_none() {
            return Err("connection ended during warm-up".into());
        }
    }
    let gen0 = generated(&sim);
    let (mut frames, mut events, mut bytes) = (0u64, 0u64, 0u64);
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(seconds);
    while Instant::now() < end {
        match ws.next().await {
            Some(Ok(awc::ws::Frame::Text(b))) => {
                frames += 1;
                bytes += b.len() as u64;
                if let Ok(r) = route_frame(&b) {
                    events += r
                        .iter()
                        .filter(|e| matches!(e, Ok(x) if !x.is_status()))
                        .count() as u64;
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("connection ended".into()),
        }
    }
    let s = t0.elapsed().as_secs_f64();
    let gen = (generated(&sim) - gen0) as f64;
    sim.stop().await;
    Ok(SimRun {
        configured_rate: rate,
        seconds: s,
        frames_per_sec: frames as f64 / s,
        events_per_sec: events as f64 / s,
        mb_per_sec: bytes as f64 / s / 1e6,
        generated_per_sec: gen / s,
        avg_events_per_frame: events as f64 / frames.max(1) as f64,
    })
}
