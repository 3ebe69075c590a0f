//! `tickwire-bench warmup`: what enriching a whole market from a cold cache costs: REST calls
//! (as the simulator counts them, by endpoint) and seconds until every ticker is answered,
//! with the bulk warm-up or with three calls per ticker.
//!
//! An in-process simulator with `tickers` tickers, one Enricher on the real Redis (a unique
//! key prefix, deleted afterwards), every ticker asked for at once, as processors do at the
//! open.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::Actor;
use serde::Serialize;

use crate::actors::processor::enricher::{Answers, Enrich, Enricher, EnricherConfig};
use crate::actors::processor::metrics::EnricherFigures;
use crate::actors::sim::SimArgs;
use crate::actors::store::cache_writer::{CacheWriter, CacheWriterConfig};
use crate::metrics::Registry;

#[derive(Debug, Serialize)]
pub struct WarmUpFigures {
    pub tickers: usize,
    pub bulk: bool,
    /// REST calls the simulator answered, in all and by endpoint.
    pub calls: i64,
    pub calls_by_endpoint: BTreeMap<String, i64>,
    /// From the first request to the last answer.
    pub seconds: f64,
    pub enriched: usize,
}

pub async fn run(tickers: usize, bulk: bool, redis_url: &str) -> Result<WarmUpFigures, String> {
    let mut args = SimArgs::defaults();
    args.port = 0;
    args.tickers = tickers;
    args.rate = 100.0;
    args.start_time = "10:00:00".into();
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let sim = crate::actors::sim::start(args, listener, false).map_err(|e| e.to_string())?;
    let prefix = format!("tw-bench-warmup-{}:", std::process::id());
    let registry = Registry::new();
    let (_, state) =
        CacheWriter::start_store(CacheWriterConfig::new(redis_url, "state"), &registry)
            .map_err(|e| e.to_string())?;
    let enricher = Enricher::new(
        EnricherConfig {
            rest_url: sim.http_url(""),
            api_key: "demo".into(),
            prefix: prefix.clone(),
            concurrency: 8,
            holder: "bench".into(),
            lock_ttl: Duration::from_secs(30),
            retries: 3,
            failure_memo: Duration::from_secs(60),
            bulk,
        },
        state.clone(),
        EnricherFigures::register(&registry, &[]),
    )
    .start();

    // The tickers the market has, as the stream would show them.
    let snapshot: serde_json::Value =
        awc::Client::new()
            .get(sim.http_url(
                "/v2/snapshot/locale/us/markets/stocks/tickers?include_otc=true&apiKey=demo",
            ))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .limit(64 << 20)
            .await
            .map_err(|e| e.to_string())?;
    let symbols: Vec<String> = snapshot["tickers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t["ticker"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let before = sim
        .registry
        .total("tickwire_sim_rest_endpoint_requests_total");

    let answers = Arc::new(Mutex::new(Vec::new()));
    let reply = Answers(answers.clone()).start().recipient();
    let done = || {
        answers
            .lock()
            .map(|a| a.iter().filter(|e| e.enrichment.is_some()).count())
            .unwrap_or(0)
    };
    let day = chrono::Utc::now().date_naive();
    let started = Instant::now();
    for s in &symbols {
        enricher.do_send(Enrich {
            symbol: s.clone(),
            day,
            reply: reply.clone(),
        });
    }
    let deadline = started + Duration::from_secs(600);
    while done() < symbols.len() {
        if Instant::now() > deadline {
            return Err("not every ticker was enriched within 10 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let by_endpoint = sim
        .registry
        .snapshot()
        .into_iter()
        .filter_map(|(k, v)| {
            let e = k
                .strip_prefix("tickwire_sim_rest_endpoint_requests_total{endpoint=\"")?
                .strip_suffix("\"}")?
                .to_string();
            Some((e, v.as_i64()?))
        })
        .collect::<BTreeMap<_, _>>();
    let figures = WarmUpFigures {
        tickers: symbols.len(),
        bulk,
        calls: sim
            .registry
            .total("tickwire_sim_rest_endpoint_requests_total")
            - before,
        calls_by_endpoint: by_endpoint,
        seconds,
        enriched: done(),
    };
    sim.stop().await;
    // Clean up the bench's keys.
    let pool = crate::redis_pool::open(redis_url).map_err(|e| e.to_string())?;
    let mut conn = pool.get().await.map_err(|e| e.to_string())?;
    let keys: Vec<String> = deadpool_redis::redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut *conn)
        .await
        .map_err(|e| e.to_string())?;
    if !keys.is_empty() {
        let _: () = deadpool_redis::redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut *conn)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(figures)
}
