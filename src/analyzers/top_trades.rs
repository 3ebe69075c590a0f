//! Top-trades statistics (reference-system.md §3.7): per symbol over recent trades, merged
//! across shards by the elected publisher into `tta:all_symbols:widget` and, for the 100
//! symbols with the most volume, `tta:{SYM}:widget` (cached 60 s, never published).
//!
//! The reference re-read every retained trade from Redis each cycle and called the last 1,000
//! trades a window. Here each processor keeps a real time window (the last 5 minutes of trade
//! time, at most 1,000 trades per symbol) in memory and ships only the statistics.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Trade-time window.
pub const WINDOW_MS: i64 = 300_000;
/// Trades kept per symbol.
pub const MAX_TRADES: usize = 1000;
/// Symbols that get their own widget key.
pub const TOP_SYMBOLS: usize = 100;
/// Cache TTL of the widget keys.
pub const TTL_SECS: u64 = 60;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Rec {
    ts: i64,
    price: f64,
    size: f64,
    exchange: i64,
}

/// Statistics of one symbol's window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub total_volume: f64,
    pub trade_count: usize,
    pub avg_size: f64,
    pub max_size: f64,
    pub time_span_ms: i64,
    pub latest_price: f64,
    pub latest_timestamp: i64,
    pub latest_exchange: i64,
}

/// One shard's windows.
#[derive(Debug, Default)]
pub struct TopTrades {
    windows: HashMap<String, VecDeque<Rec>>,
}

impl TopTrades {
    pub fn observe(&mut self, sym: &str, ts: i64, price: f64, size: f64, exchange: i64) {
        let w = match self.windows.get_mut(sym) {
            Some(w) => w,
            None => self.windows.entry(sym.to_string()).or_default(),
        };
        w.push_back(Rec {
            ts,
            price,
            size,
            exchange,
        });
        if w.len() > MAX_TRADES {
            w.pop_front();
        }
    }

    /// Drops trades older than the window (relative to `now_ms`, trade time) and returns the
    /// statistics of every symbol that still has trades.
    pub fn stats(&mut self, now_ms: i64) -> BTreeMap<String, Stats> {
        let cutoff = now_ms - WINDOW_MS;
        self.windows.retain(|_, w| {
            while w.front().is_some_and(|r| r.ts < cutoff) {
                w.pop_front();
            }
            !w.is_empty()
        });
        self.windows
            .iter()
            .filter_map(|(sym, w)| {
                let latest = w.iter().max_by_key(|r| r.ts)?;
                let total: f64 = w.iter().map(|r| r.size).sum();
                let (lo, hi) = w.iter().fold((i64::MAX, i64::MIN), |(lo, hi), r| {
                    (lo.min(r.ts), hi.max(r.ts))
                });
                Some((
                    sym.clone(),
                    Stats {
                        total_volume: total,
                        trade_count: w.len(),
                        avg_size: (total / w.len() as f64 * 100.0).round() / 100.0,
                        max_size: w.iter().map(|r| r.size).fold(0.0, f64::max),
                        time_span_ms: hi - lo,
                        latest_price: latest.price,
                        latest_timestamp: latest.ts,
                        latest_exchange: latest.exchange,
                    },
                ))
            })
            .collect()
    }
}

/// The widget payloads from every shard's statistics: `(key, JSON)` pairs, the all-symbols
/// widget first. `iso_now` is the cycle's timestamp.
pub fn widgets(all: &BTreeMap<String, Stats>, iso_now: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let summary = json!({"timestamp": iso_now, "symbols": all, "symbol_count": all.len()});
    out.push((
        "tta:all_symbols:widget".to_string(),
        serde_json::to_vec(&summary).unwrap_or_default(),
    ));
    let mut by_volume: Vec<(&String, &Stats)> = all.iter().collect();
    by_volume.sort_by(|a, b| {
        b.1.total_volume
            .total_cmp(&a.1.total_volume)
            .then(a.0.cmp(b.0))
    });
    for (sym, st) in by_volume.into_iter().take(TOP_SYMBOLS) {
        let mut v = serde_json::to_value(st).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            m.insert("timestamp".into(), json!(iso_now));
            m.insert("symbol".into(), json!(sym));
        }
        out.push((
            format!("tta:{sym}:widget"),
            serde_json::to_vec(&v).unwrap_or_default(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_statistics() {
        let mut t = TopTrades::default();
        t.observe("A", 1_000, 10.0, 100.0, 4);
        t.observe("A", 2_000, 10.5, 300.0, 11);
        t.observe("B", 1_500, 5.0, 10.0, 1);
        let s = t.stats(3_000);
        assert_eq!(
            s["A"],
            Stats {
                total_volume: 400.0,
                trade_count: 2,
                avg_size: 200.0,
                max_size: 300.0,
                time_span_ms: 1_000,
                latest_price: 10.5,
                latest_timestamp: 2_000,
                latest_exchange: 11,
            }
        );
        // Five minutes later only what is newer than the window remains.
        t.observe("B", 302_000, 5.1, 20.0, 1);
        let s = t.stats(302_100);
        assert!(!s.contains_key("A"));
        assert_eq!(s["B"].trade_count, 1);
        let w = widgets(&s, "2026-03-03T15:00:00Z");
        assert_eq!(w[0].0, "tta:all_symbols:widget");
        let all: Value = serde_json::from_slice(&w[0].1).unwrap();
        assert_eq!(all["symbol_count"], 1);
        assert_eq!(w[1].0, "tta:B:widget");
        let b: Value = serde_json::from_slice(&w[1].1).unwrap();
        assert_eq!(
            (b["symbol"].as_str(), b["trade_count"].as_u64()),
            (Some("B"), Some(1))
        );
    }

    #[test]
    fn at_most_1000_trades_per_symbol() {
        let mut t = TopTrades::default();
        for i in 0..1500 {
            t.observe("A", i, 1.0, 1.0, 1);
        }
        assert_eq!(t.stats(1500)["A"].trade_count, 1000);
    }
}
