//! `tickwire-bench analyzers`: the processor's CPU per event, by event type, with no queue,
//! no Redis and no other process in the way.
//!
//! The synthetic market (as the processor benchmark runs it: 2,000 tickers at a busy
//! regular-session time) produces the events; each is encoded as the listener would forward
//! it, then decoded and applied to a [`ShardState`] exactly as the processor does
//! ([`ShardState::apply_raw`], production raw routes). The figure per type is the best of
//! `rounds` passes, each on a fresh state, so it is the analyzers' cost rather than the
//! box's noise.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;

use crate::actors::sim::market::{MarketConfig, SyntheticMarket};
use crate::analyzers::shard::{ShardConfig, ShardState};
use crate::massive::Market;

/// The cost of one event type.
#[derive(Debug, Serialize)]
pub struct AnalyzerCost {
    pub ev: String,
    pub events: usize,
    /// Decode + apply, best pass.
    pub us_per_event: f64,
    /// Cache writes the analyzers produce per event.
    pub writes_per_event: f64,
}

/// `seconds` of simulated regular session, events grouped by type, raw JSON beside each.
fn corpus(tickers: usize, seconds: u64) -> BTreeMap<String, Vec<Bytes>> {
    let start = super::busy_start_ms();
    let cfg = MarketConfig {
        tickers,
        rate: 10_000.0,
        ..MarketConfig::default()
    };
    let mut market = SyntheticMarket::new(cfg, start);
    let mut by_type: BTreeMap<String, Vec<Bytes>> = BTreeMap::new();
    let mut out = Vec::new();
    let end = start + seconds as i64 * 1000;
    let mut t = start;
    while t < end {
        t += 10;
        market.advance(t, 0.01, &mut out);
        for e in out.drain(..) {
            let mut raw = Vec::new();
            e.event.write_json(&mut raw);
            by_type
                .entry(e.event.ev().to_string())
                .or_default()
                .push(Bytes::from(raw));
        }
    }
    by_type
}

/// Decodes and applies `events` to a fresh shard state; returns the time and the writes.
fn pass(events: &[Bytes]) -> (Duration, usize) {
    let mut state = ShardState::new(ShardConfig {
        raw: "quotes,luld,agg,unknown".parse().unwrap_or_default(),
        ..ShardConfig::default()
    });
    let mut out = Vec::new();
    let mut writes = 0;
    let started = Instant::now();
    for (i, raw) in events.iter().enumerate() {
        // The synthetic market's events all decode; an error would only be counted.
        let _ = state.apply_raw(Market::Stocks, i, raw, 1, &mut out);
        // The processor hands its writes on per batch; dropping them here costs the same.
        writes += out.len();
        out.clear();
    }
    (started.elapsed(), writes)
}

pub fn run(tickers: usize, seconds: u64, rounds: usize) -> Vec<AnalyzerCost> {
    corpus(tickers, seconds)
        .into_iter()
        .map(|(ev, events)| {
            let mut best = Duration::MAX;
            let mut writes = 0;
            for _ in 0..rounds.max(1) {
                let (took, w) = pass(&events);
                best = best.min(took);
                writes = w;
            }
            let n = events.len().max(1) as f64;
            AnalyzerCost {
                ev,
                events: events.len(),
                us_per_event: best.as_secs_f64() * 1e6 / n,
                writes_per_event: writes as f64 / n,
            }
        })
        .collect()
}
