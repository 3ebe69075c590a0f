//! One shard's analyzers and state: events in, cache writes out. Deterministic and free of
//! I/O, so the whole pipeline logic is unit-testable; the Processor actor wraps it.
//!
//! Per aggregate, in order (reference-system.md §3.2 and §3.5):
//! 1. market day and session from the bar's end time (04:00 ET day, [`TradingCalendar`]);
//!    a bar older than the symbol's newest is stale and skipped (per-symbol monotonic
//!    guard), a bar of a newer day resets the symbol's day state;
//! 2. the session open: the first pre-market bar's open until 09:30 ET, then the official
//!    open (`op`), which is the gainers baseline;
//! 3. the enriched quote `quote:{SYM}`, then `daily_range:{SYM}`, then HOD/LOD alerts.
//!
//! Enrichment never blocks: a symbol without it gets its quote computed as the reference
//! does without a snapshot, the enrichment is requested, and when it arrives the quote is
//! recomputed from the last bar and sent again.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::calendar::{TradingCalendar, OPEN_AFTER_DAY_START_MS};
use super::daily_range::{DailyRange, Direction};
use super::enrichment::Seed;
use super::leaderboard::{shard_candidates, Row, ShardBoard};
use super::quote::{Bar, Enrichment, Quote, F};
use super::raw_routes::{self, RawOut, RawRoutes};
use super::top_trades::{Stats, TopTrades};
use crate::massive::events::{Aggregate, Event};
use crate::massive::frame::parse_event;
use crate::massive::Market;
use crate::store::CacheWrite;

/// TTL of `quote:*`, `daily_range:*` and `scanners:*` (4 days).
pub const VALUE_TTL_SECS: u64 = 345_600;
/// TTL of the alert lists, refreshed on every push.
pub const ALERT_TTL_SECS: u64 = 28_800;
pub const HOD_ALERTS: &str = "daily_range_hod_alert";
pub const LOD_ALERTS: &str = "daily_range_lod_alert";

/// Analyzer settings.
#[derive(Debug, Clone)]
pub struct ShardConfig {
    /// Prefix of every client-facing key and channel (empty in production: the contract).
    pub results_prefix: String,
    pub raw: RawRoutes,
    pub top_trades: bool,
    /// `DRA_CACHE_LIST_MAX`: alerts kept per list.
    pub alert_cap: usize,
    /// Before a symbol may alert on a day, its session highs and lows so far come from the
    /// day's minute bars ([`ShardState::backfilled`]); its alerts are held (and counted)
    /// until then.
    pub backfill: bool,
}

impl Default for ShardConfig {
    fn default() -> Self {
        ShardConfig {
            results_prefix: String::new(),
            raw: RawRoutes::default(),
            top_trades: false,
            alert_cap: 1000,
            backfill: false,
        }
    }
}

/// Everything the shard knows about one symbol for its current market day.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SymbolState {
    /// Market day (epoch ms of its 04:00 ET).
    pub day_ms: i64,
    /// End time of the newest bar taken (ms).
    pub last_end: i64,
    /// Session open: the gainers baseline.
    pub open: f64,
    /// `open` is the official (09:30 ET or later) open.
    pub regular_open: bool,
    pub range: DailyRange,
    pub bar: Option<Bar>,
    pub quote: Option<Quote>,
    /// The day's range so far includes its minute bars from before this processor saw the
    /// symbol (or no back-fill is asked for). A checkpoint without the field was taken live.
    #[serde(default = "yes")]
    pub backfilled: bool,
}

fn yes() -> bool {
    true
}

/// A shard's state as checkpointed in the store.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Checkpoint {
    pub day_ms: i64,
    pub clock_ms: i64,
    pub symbols: Vec<(String, SymbolState)>,
}

enum EnrichState {
    Pending,
    Ready(Enrichment),
}

/// What one event produced besides writes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Symbols whose enrichment should be fetched.
    pub enrich: Vec<String>,
    /// Symbols whose day so far should be back-filled: (symbol, the day's 04:00 ET in ms).
    pub backfill: Vec<(String, i64)>,
    /// Alerts held back while their symbol waits for its back-fill.
    pub held: u64,
    /// Aggregates skipped as older than the symbol's newest (or of a past day).
    pub stale: u64,
    pub alerts: u64,
}

pub struct ShardState {
    cfg: ShardConfig,
    pub calendar: TradingCalendar,
    symbols: HashMap<String, SymbolState>,
    enrichment: HashMap<String, EnrichState>,
    trades: TopTrades,
    day_ms: i64,
    clock_ms: i64,
    board_dirty: bool,
    checkpoint_dirty: bool,
    /// Symbols this state met for the first time since the last [`ShardState::take_new_symbols`].
    new_symbols: Vec<String>,
    /// Symbols whose back-fill is asked for and not answered yet.
    backfilling: std::collections::HashSet<String>,
}

impl ShardState {
    pub fn new(cfg: ShardConfig) -> Self {
        ShardState {
            cfg,
            calendar: TradingCalendar::default(),
            symbols: HashMap::new(),
            enrichment: HashMap::new(),
            trades: TopTrades::default(),
            day_ms: 0,
            clock_ms: 0,
            board_dirty: false,
            checkpoint_dirty: false,
            new_symbols: Vec::new(),
            backfilling: std::collections::HashSet::new(),
        }
    }

    pub fn symbols(&self) -> usize {
        self.symbols.len()
    }

    pub fn clock_ms(&self) -> i64 {
        self.clock_ms
    }

    /// The symbols held.
    pub fn symbol_names(&self) -> impl Iterator<Item = String> + '_ {
        self.symbols.keys().cloned()
    }

    pub fn symbol(&self, sym: &str) -> Option<&SymbolState> {
        self.symbols.get(sym)
    }

    fn key(&self, k: &str) -> String {
        format!("{}{k}", self.cfg.results_prefix)
    }

    /// Applies one decoded event; appends its results to `out`.
    pub fn apply(
        &mut self,
        ev: &Event,
        raw: &Bytes,
        received_at_ms: i64,
        out: &mut Vec<CacheWrite>,
    ) -> Outcome {
        let mut outcome = Outcome::default();
        match ev {
            Event::SecondAgg(a) | Event::MinuteAgg(a) => {
                self.aggregate(a, received_at_ms, out, &mut outcome)
            }
            Event::Trade(t) if self.cfg.top_trades => {
                self.clock_ms = self.clock_ms.max(t.t.0);
                self.trades
                    .observe(&t.sym, t.t.0, t.p, t.size(), t.x.unwrap_or(0));
            }
            _ => {}
        }
        match raw_routes::raw_out(&self.cfg.raw, ev) {
            Some(RawOut::Value {
                key,
                ttl_secs,
                body,
            }) => out.push(CacheWrite::value(
                self.key(&key),
                Bytes::from(body),
                ttl_secs,
                received_at_ms,
            )),
            Some(RawOut::Unknown) => out.push(CacheWrite::push(
                self.key("unknown"),
                raw.clone(),
                raw_routes::UNKNOWN_CAP,
                86_400,
                received_at_ms,
            )),
            None => {}
        }
        outcome
    }

    /// One event as the listener forwarded it (`index` is its place in the batch, for error
    /// messages): decoded in one typed pass, then applied. An event that does not decode is
    /// kept raw where the `unknown` route is on, and the error says why, for the caller to
    /// count and log.
    pub fn apply_raw(
        &mut self,
        market: Market,
        index: usize,
        raw: &Bytes,
        received_at_ms: i64,
        out: &mut Vec<CacheWrite>,
    ) -> Result<Outcome, String> {
        let decoded = std::str::from_utf8(raw)
            .map_err(|e| e.to_string())
            .and_then(|json| parse_event(market, index, json).map_err(|e| e.to_string()));
        match decoded {
            Ok(ev) => Ok(self.apply(&ev, raw, received_at_ms, out)),
            Err(e) => {
                self.apply_undecodable(raw, received_at_ms, out);
                Err(e)
            }
        }
    }

    /// An event the processor could not decode but whose route is `unknown`: kept raw.
    fn apply_undecodable(&mut self, raw: &Bytes, received_at_ms: i64, out: &mut Vec<CacheWrite>) {
        if self.cfg.raw.unknown {
            out.push(CacheWrite::push(
                self.key("unknown"),
                raw.clone(),
                raw_routes::UNKNOWN_CAP,
                86_400,
                received_at_ms,
            ));
        }
    }

    fn aggregate(
        &mut self,
        a: &Aggregate,
        received_at_ms: i64,
        out: &mut Vec<CacheWrite>,
        outcome: &mut Outcome,
    ) {
        let bar = Bar::from_aggregate(a);
        // A bar belongs to the day and session it started in: the bar ending 09:30:00 is
        // the last pre-market second.
        let day = self.calendar.market_day(bar.start_ms);
        let day_ms = TradingCalendar::day_start_ms(day);
        let open_ms = TradingCalendar::open_ms(day);
        if day_ms > self.day_ms {
            if self.day_ms != 0 {
                // A new day's previous-day values differ: fetched again on each symbol's use.
                self.enrichment.clear();
            }
            self.day_ms = day_ms;
        }
        self.clock_ms = self.clock_ms.max(bar.end_ms);
        let st = match self.symbols.get_mut(&a.sym) {
            Some(s) => s,
            None => {
                self.new_symbols.push(a.sym.clone());
                self.symbols.entry(a.sym.clone()).or_default()
            }
        };
        if day_ms < st.day_ms || (day_ms == st.day_ms && bar.end_ms < st.last_end) {
            outcome.stale += 1;
            return;
        }
        if day_ms > st.day_ms {
            // The 04:00 ET reset, per symbol, on its first bar of the new day.
            *st = SymbolState {
                day_ms,
                backfilled: !self.cfg.backfill,
                ..SymbolState::default()
            };
        }
        // `contains` first: no allocation per bar while the answer is on its way.
        if !st.backfilled && !self.backfilling.contains(&a.sym) {
            self.backfilling.insert(a.sym.clone());
            outcome.backfill.push((a.sym.clone(), day_ms));
        }
        st.last_end = bar.end_ms;
        let bar_open = if bar.open != 0.0 { bar.open } else { bar.close };
        if bar.start_ms >= open_ms {
            // From 09:30 ET the baseline is the official open; until Massive sends one, the
            // first regular bar's open.
            if bar.official_open > 0.0 {
                st.open = bar.official_open;
                st.regular_open = true;
            } else if !st.regular_open {
                st.open = bar_open;
                st.regular_open = true;
            }
        } else if st.open == 0.0 {
            st.open = bar_open;
        }
        let en = match self.enrichment.get(&a.sym) {
            Some(EnrichState::Ready(e)) => Some(*e),
            Some(EnrichState::Pending) => None,
            None => {
                self.enrichment.insert(a.sym.clone(), EnrichState::Pending);
                outcome.enrich.push(a.sym.clone());
                None
            }
        };
        let session = self.calendar.session(bar.start_ms);
        let quote = Quote::compute(&a.sym, &bar, st.open, en.as_ref());
        let mut alerts = st.range.observe(session, bar.high, bar.low);
        if !st.backfilled {
            // The day's earlier extremes are not known yet: never guess, hold.
            outcome.held += alerts.len() as u64;
            alerts.clear();
        }
        let prefix = &self.cfg.results_prefix;
        value_writes(prefix, &quote, &st.range, received_at_ms, out);
        for alert in &alerts {
            let list = match alert.direction {
                Direction::High => HOD_ALERTS,
                Direction::Low => LOD_ALERTS,
            };
            out.push(CacheWrite::push(
                format!("{prefix}{list}"),
                Bytes::from(alert.to_json(&quote)),
                self.cfg.alert_cap,
                ALERT_TTL_SECS,
                received_at_ms,
            ));
        }
        outcome.alerts += alerts.len() as u64;
        st.bar = Some(bar);
        st.quote = Some(quote);
        self.board_dirty = true;
        self.checkpoint_dirty = true;
    }

    /// Market day the shard is in (epoch ms of its 04:00 ET; 0 before its first bar).
    pub fn day_ms(&self) -> i64 {
        self.day_ms
    }

    /// Takes a ticker's day so far from the full-market snapshot when the shard has not seen
    /// it trade today, so that it ranks on the leaderboards as it would after a whole day's
    /// bars (the volume, last price and official open the boards rank on are the snapshot's).
    /// Nothing is published for it, and its first live bar asks for the back-fill as any
    /// first bar does. Answers whether it was taken (not for another day, or a symbol seen).
    pub fn seed(&mut self, seed: &Seed) -> bool {
        let bar = seed.bar;
        let day = self.calendar.market_day(bar.start_ms);
        let day_ms = TradingCalendar::day_start_ms(day);
        if self.day_ms == 0 || day_ms != self.day_ms {
            return false;
        }
        if self
            .symbols
            .get(&seed.symbol)
            .is_some_and(|s| s.day_ms >= day_ms)
        {
            return false;
        }
        let regular_open = bar.official_open > 0.0;
        let open = if regular_open { bar.official_open } else { 0.0 };
        if let Some(en) = seed.enrichment {
            self.enrichment
                .insert(seed.symbol.clone(), EnrichState::Ready(en));
        }
        let quote = Quote::compute(&seed.symbol, &bar, open, seed.enrichment.as_ref());
        self.symbols.insert(
            seed.symbol.clone(),
            SymbolState {
                day_ms,
                last_end: bar.end_ms,
                open,
                regular_open,
                range: DailyRange::default(),
                bar: Some(bar),
                quote: Some(quote),
                backfilled: !self.cfg.backfill,
            },
        );
        self.board_dirty = true;
        self.checkpoint_dirty = true;
        true
    }

    /// Enrichment arrived for `sym`: remembered, and its quote recomputed and re-sent.
    pub fn enriched(&mut self, sym: &str, en: Enrichment, out: &mut Vec<CacheWrite>) {
        self.enrichment
            .insert(sym.to_string(), EnrichState::Ready(en));
        let Some(st) = self.symbols.get_mut(sym) else {
            return;
        };
        let Some(bar) = st.bar else {
            return;
        };
        let quote = Quote::compute(sym, &bar, st.open, Some(&en));
        value_writes(&self.cfg.results_prefix, &quote, &st.range, 0, out);
        st.quote = Some(quote);
        self.board_dirty = true;
    }

    /// The day's minute bars of `sym` before now arrived, as (start ms, open, high, low):
    /// their session highs and lows join the symbol's range, a pre-market open earlier than
    /// the first bar seen becomes the session open, the values are sent again, and the
    /// symbol may alert from now on. Answers for another day than the symbol's are ignored.
    pub fn backfilled(
        &mut self,
        sym: &str,
        day_ms: i64,
        bars: &[(i64, f64, f64, f64)],
        out: &mut Vec<CacheWrite>,
    ) {
        self.backfilling.remove(sym);
        let Some(st) = self.symbols.get_mut(sym) else {
            return;
        };
        if st.day_ms != day_ms {
            return;
        }
        let mut history = DailyRange::default();
        let mut first: Option<(i64, f64)> = None;
        for &(start, open, high, low) in bars {
            if start < day_ms || !(high.is_finite() && low.is_finite()) || high <= 0.0 {
                continue;
            }
            history.observe(self.calendar.session(start), high, low);
            if first.is_none_or(|(t, _)| start < t) {
                first = Some((start, open));
            }
        }
        st.range.merge(&history);
        if let Some((t, open)) = first {
            let before_seen = st.bar.is_none_or(|b| t < b.start_ms);
            if !st.regular_open && before_seen && open > 0.0 {
                st.open = open;
            }
        }
        st.backfilled = true;
        if let Some(bar) = st.bar {
            let en = match self.enrichment.get(sym) {
                Some(EnrichState::Ready(e)) => Some(*e),
                _ => None,
            };
            let quote = Quote::compute(sym, &bar, st.open, en.as_ref());
            value_writes(&self.cfg.results_prefix, &quote, &st.range, 0, out);
            st.quote = Some(quote);
        }
        self.board_dirty = true;
        self.checkpoint_dirty = true;
    }

    /// Enrichment could not be fetched: asked again on the symbol's next bar.
    pub fn enrichment_failed(&mut self, sym: &str) {
        if matches!(self.enrichment.get(sym), Some(EnrichState::Pending)) {
            self.enrichment.remove(sym);
        }
    }

    /// The shard's leaderboard candidates, if anything changed since the last call.
    pub fn board(&mut self) -> Option<ShardBoard> {
        if !std::mem::take(&mut self.board_dirty) {
            return None;
        }
        let day = self.day_ms;
        let after_open = day > 0 && self.clock_ms >= day + OPEN_AFTER_DAY_START_MS;
        let rows: Vec<Row> = self
            .symbols
            .values()
            .filter(|s| s.day_ms == day)
            .filter_map(|s| {
                Some(Row {
                    quote: s.quote.clone()?,
                    regular_open: s.regular_open,
                })
            })
            .collect();
        Some(ShardBoard {
            day_ms: day,
            clock_ms: self.clock_ms,
            rows: shard_candidates(rows, after_open),
        })
    }

    /// Top-trades statistics of the shard's window.
    pub fn trade_stats(&mut self) -> BTreeMap<String, Stats> {
        self.trades.stats(self.clock_ms)
    }

    /// The state to checkpoint, if it changed since the last call.
    pub fn checkpoint(&mut self) -> Option<Checkpoint> {
        if !std::mem::take(&mut self.checkpoint_dirty) {
            return None;
        }
        Some(Checkpoint {
            day_ms: self.day_ms,
            clock_ms: self.clock_ms,
            symbols: self
                .symbols
                .iter()
                .filter(|(_, s)| s.day_ms == self.day_ms)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
    }

    /// Takes a checkpoint's state where it is newer than ours (another node owned the shard
    /// after us, or we restarted). Returns how many symbols were taken.
    pub fn rehydrate(&mut self, cp: Checkpoint) -> usize {
        self.day_ms = self.day_ms.max(cp.day_ms);
        self.clock_ms = self.clock_ms.max(cp.clock_ms);
        let mut taken = 0;
        for (sym, theirs) in cp.symbols {
            let newer = self
                .symbols
                .get(&sym)
                .is_none_or(|ours| (theirs.day_ms, theirs.last_end) > (ours.day_ms, ours.last_end));
            if newer {
                self.symbols.insert(sym, theirs);
                taken += 1;
            }
        }
        if taken > 0 {
            self.board_dirty = true;
        }
        taken
    }

    /// The symbols met for the first time since the last call (a new owner must be able to
    /// find every symbol whose values were published: see `actors/processor/shard.rs`).
    pub fn take_new_symbols(&mut self) -> Vec<String> {
        std::mem::take(&mut self.new_symbols)
    }

    /// The results key holding `sym`'s published quote and daily range.
    pub fn published_key(&self, sym: &str) -> String {
        self.key(&format!("daily_range:{sym}"))
    }

    /// Takes a published `daily_range:{SYM}` where it is newer than ours: what browsers have
    /// seen must not be undone by a takeover whose checkpoint is older. Same day: the ranges
    /// are merged (highs never fall, lows never rise) and the newer quote kept; a newer day
    /// replaces ours. Returns whether anything was taken. Anything unreadable is ignored.
    pub fn fold_published(&mut self, json: &[u8]) -> bool {
        let Ok(serde_json::Value::Object(obj)) = serde_json::from_slice(json) else {
            return false;
        };
        let Some(quote) = Quote::from_json_object(&obj) else {
            return false;
        };
        let range = DailyRange::from_json_object(&obj);
        let (start, end) = (
            quote.get(F::StartTimestamp) as i64,
            quote.get(F::EndTimestamp) as i64,
        );
        let day = self.calendar.market_day(start);
        let day_ms = TradingCalendar::day_start_ms(day);
        let st = self.symbols.entry(quote.symbol.clone()).or_default();
        if (day_ms, end) <= (st.day_ms, st.last_end) {
            return false;
        }
        if day_ms > st.day_ms {
            // Whether the publisher had back-filled is not known: ask again (merging the
            // day's bars twice changes nothing).
            *st = SymbolState {
                day_ms,
                backfilled: !self.cfg.backfill,
                ..SymbolState::default()
            };
        }
        st.last_end = end;
        st.range.merge(&range);
        st.open = quote.get(F::Open);
        st.regular_open = start >= TradingCalendar::open_ms(day);
        // Our bar is older than the published quote: recomputing from it (on enrichment)
        // would move the quote back. The next bar brings a new one.
        st.bar = None;
        st.quote = Some(quote);
        self.day_ms = self.day_ms.max(day_ms);
        self.clock_ms = self.clock_ms.max(end);
        self.board_dirty = true;
        self.checkpoint_dirty = true;
        true
    }
}

/// `quote:{SYM}` then `daily_range:{SYM}`, both SETEX 4 d + PUBLISH.
fn value_writes(
    prefix: &str,
    quote: &Quote,
    range: &DailyRange,
    at: i64,
    out: &mut Vec<CacheWrite>,
) {
    let sym = &quote.symbol;
    let quote_json = quote.to_json();
    let range_json = range.state_json_from(&quote_json);
    out.push(CacheWrite::value(
        format!("{prefix}quote:{sym}"),
        Bytes::from(quote_json),
        VALUE_TTL_SECS,
        at,
    ));
    out.push(CacheWrite::value(
        format!("{prefix}daily_range:{sym}"),
        Bytes::from(range_json),
        VALUE_TTL_SECS,
        at,
    ));
}

impl Checkpoint {
    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec(self).unwrap_or_default()
    }

    pub fn decode(b: &[u8]) -> Result<Self, rmp_serde::decode::Error> {
        rmp_serde::from_slice(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzers::leaderboard::rank;
    use crate::analyzers::quote::{PrevDay, F};
    use crate::clock;
    use crate::massive::frame::parse_element;
    use crate::store::WriteOp;
    use chrono::NaiveDateTime;

    fn ms(s: &str) -> i64 {
        let et = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap();
        clock::from_et(et).timestamp_millis()
    }

    /// A one-second bar starting at ET time `at`, with open, close, high, low `[o, c, h, l]`.
    fn agg(
        sym: &str,
        at: &str,
        [o, c, h, l]: [f64; 4],
        av: u64,
        op: Option<f64>,
    ) -> (Event, Bytes) {
        let e = ms(at) + 1000;
        let op = op.map(|x| format!(",\"op\":{x}")).unwrap_or_default();
        let json = format!(
            r#"{{"ev":"A","sym":"{sym}","v":100,"av":{av}{op},"vw":{c},"o":{o},"c":{c},"h":{h},"l":{l},"a":{c},"z":10,"s":{},"e":{e}}}"#,
            e - 1000
        );
        let raw: Box<serde_json::value::RawValue> = serde_json::from_str(&json).unwrap();
        (
            parse_element(Market::Stocks, 0, &raw).unwrap(),
            Bytes::from(json),
        )
    }

    fn run(s: &mut ShardState, ev: (Event, Bytes)) -> (Vec<CacheWrite>, Outcome) {
        let mut out = Vec::new();
        let o = s.apply(&ev.0, &ev.1, 1, &mut out);
        (out, o)
    }

    fn json_of(w: &CacheWrite) -> serde_json::Value {
        serde_json::from_slice(&w.value).unwrap()
    }

    #[test]
    fn an_undecodable_event_is_an_error_and_kept_raw_where_unknown_is_on() {
        let raw = Bytes::from_static(br#"{"ev":"Q","sym":5}"#);
        let mut on = ShardState::new(ShardConfig {
            raw: "unknown".parse().unwrap(),
            ..ShardConfig::default()
        });
        let mut out = Vec::new();
        assert!(on.apply_raw(Market::Stocks, 0, &raw, 7, &mut out).is_err());
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].key.as_str(), &out[0].value), ("unknown", &raw));
        let mut off = ShardState::new(ShardConfig::default());
        out.clear();
        assert!(off.apply_raw(Market::Stocks, 0, &raw, 7, &mut out).is_err());
        assert!(out.is_empty());
    }

    #[test]
    fn a_seed_ranks_a_ticker_not_seen_until_it_trades() {
        let mut s = ShardState::new(ShardConfig {
            backfill: true,
            ..ShardConfig::default()
        });
        let seed = |sym: &str, at: &str, close: f64, av: f64| Seed {
            symbol: sym.into(),
            bar: Bar {
                accumulated_volume: av,
                official_open: 10.0,
                close,
                start_ms: ms(at),
                end_ms: ms(at),
                ..Bar::default()
            },
            enrichment: Some(Enrichment {
                prev_day: Some(PrevDay {
                    c: 8.0,
                    ..PrevDay::default()
                }),
                ..Enrichment::default()
            }),
        };
        // Before any bar the shard's day is unknown: nothing is taken.
        assert!(!s.seed(&seed("QQQ", "2026-03-03 10:59:00", 12.0, 900.0)));
        let (_, _) = run(
            &mut s,
            agg("ABC", "2026-03-03 11:00:00", [10.0; 4], 500, Some(9.0)),
        );
        let _ = s.board();
        // A ticker quiet since the start ranks from its snapshot; one seen, or of another
        // day, is left alone.
        assert!(s.seed(&seed("QQQ", "2026-03-03 10:59:00", 12.0, 900.0)));
        assert!(!s.seed(&seed("ABC", "2026-03-03 10:59:00", 50.0, 1e9)));
        assert!(!s.seed(&seed("OLD", "2026-03-02 15:59:00", 12.0, 900.0)));
        let board = s.board().expect("changed");
        let q = board
            .rows
            .iter()
            .find(|r| r.quote.symbol == "QQQ")
            .expect("seeded row");
        assert!(q.regular_open);
        assert_eq!(q.quote.get(F::AccumulatedVolume), 900.0);
        assert_eq!(
            q.quote.get(F::PctChange),
            50.0,
            "against the previous close"
        );
        assert_eq!(
            q.quote.get(F::PctChangeSinceOpen),
            20.0,
            "against the official open"
        );
        assert_eq!(board.rows.len(), 2);
        // Its first live bar takes over and asks for the back-fill.
        let (w, o) = run(
            &mut s,
            agg("QQQ", "2026-03-03 11:00:05", [12.0; 4], 950, Some(10.0)),
        );
        assert_eq!(o.backfill.len(), 1);
        assert!(o.enrich.is_empty(), "the seed's enrichment is kept");
        assert_eq!(json_of(&w[0])["accumulated_volume"], 950.0);
    }

    #[test]
    fn alerts_wait_for_the_day_so_far_and_then_beat_it() {
        let mut s = ShardState::new(ShardConfig {
            backfill: true,
            ..ShardConfig::default()
        });
        let day_ms = ms("2026-03-03 04:00:00");
        // Started at 11:00: the first bars ask for a back-fill and cannot alert.
        let (_, o) = run(
            &mut s,
            agg(
                "ABC",
                "2026-03-03 11:00:00",
                [10.0, 10.0, 10.0, 10.0],
                9,
                None,
            ),
        );
        assert_eq!(o.backfill, vec![("ABC".to_string(), day_ms)]);
        let (w, o) = run(
            &mut s,
            agg(
                "ABC",
                "2026-03-03 11:00:01",
                [10.0, 10.2, 10.2, 9.8],
                9,
                None,
            ),
        );
        assert!(o.backfill.is_empty(), "asked once");
        assert_eq!((o.alerts, o.held), (0, 2), "a new high and low, held");
        assert!(w.iter().all(|w| !w.key.contains("alert")));
        // The morning: pre-market 9.0-11.0 from 04:05, regular 9.5-10.8.
        let bars = [
            (ms("2026-03-03 04:05:00"), 9.9, 11.0, 9.0),
            (ms("2026-03-03 09:31:00"), 10.1, 10.8, 9.5),
            (ms("2026-03-03 03:59:00"), 50.0, 99.0, 1.0), // before the day: ignored
        ];
        let mut out = Vec::new();
        s.backfilled("ABC", day_ms, &bars, &mut out);
        let range = s.symbol("ABC").unwrap().range;
        assert_eq!(
            (range.regular.high, range.regular.low),
            (Some(10.8), Some(9.5))
        );
        assert_eq!(
            (range.pre_market.high, range.pre_market.low),
            (Some(11.0), Some(9.0))
        );
        assert!(
            out.iter().any(|w| w.key == "daily_range:ABC"),
            "sent again with the morning"
        );
        // 10.5 is no regular-session high any more; 10.9 is, against the morning's 10.8.
        let (_, o) = run(
            &mut s,
            agg(
                "ABC",
                "2026-03-03 11:00:02",
                [10.2, 10.5, 10.5, 10.2],
                9,
                None,
            ),
        );
        assert_eq!((o.alerts, o.held), (0, 0));
        let (w, o) = run(
            &mut s,
            agg(
                "ABC",
                "2026-03-03 11:00:03",
                [10.5, 10.9, 10.9, 10.5],
                9,
                None,
            ),
        );
        assert_eq!(o.alerts, 1);
        let alert = w.iter().find(|w| w.key == HOD_ALERTS).map(json_of).unwrap();
        assert_eq!(
            (alert["price"].as_f64(), alert["previous"].as_f64()),
            (Some(10.9), Some(10.8))
        );
        // An answer for another day changes nothing (and the symbol is not asked twice).
        let other = ms("2026-03-02 04:00:00");
        let (_, o) = run(
            &mut s,
            agg("XYZ", "2026-03-03 11:00:00", [5.0, 5.0, 5.0, 5.0], 9, None),
        );
        assert_eq!(o.backfill.len(), 1);
        s.backfilled("XYZ", other, &[(other, 1.0, 99.0, 1.0)], &mut out);
        assert!(!s.symbol("XYZ").unwrap().backfilled);
        // Without back-fill, symbols alert from their first bars, as before.
        let mut plain = ShardState::new(ShardConfig::default());
        let (_, o) = run(
            &mut plain,
            agg(
                "ABC",
                "2026-03-03 11:00:00",
                [10.0, 10.0, 10.0, 10.0],
                9,
                None,
            ),
        );
        assert!(o.backfill.is_empty());
        let (_, o) = run(
            &mut plain,
            agg(
                "ABC",
                "2026-03-03 11:00:01",
                [10.0, 10.2, 10.2, 9.8],
                9,
                None,
            ),
        );
        assert_eq!((o.alerts, o.held), (2, 0));
    }

    #[test]
    fn quote_range_and_alerts_in_order() {
        let mut s = ShardState::new(ShardConfig {
            results_prefix: "t:".into(),
            ..ShardConfig::default()
        });
        let (w, o) = run(
            &mut s,
            agg(
                "ABC",
                "2026-03-03 08:00:00",
                [10.0, 10.5, 10.6, 9.9],
                1000,
                None,
            ),
        );
        assert_eq!(
            o.enrich,
            vec!["ABC".to_string()],
            "first sight asks for enrichment"
        );
        let keys: Vec<_> = w.iter().map(|w| w.key.as_str()).collect();
        assert_eq!(
            keys,
            ["t:quote:ABC", "t:daily_range:ABC"],
            "first print: no alert"
        );
        assert_eq!(
            w[0].op,
            WriteOp::Set {
                ttl_secs: VALUE_TTL_SECS
            }
        );
        let q = json_of(&w[0]);
        assert_eq!(q["open"], 10.0, "pre-market open: the first bar's");
        assert_eq!(q["pct_change"], 0, "no snapshot yet");
        let (w, o) = run(
            &mut s,
            agg(
                "ABC",
                "2026-03-03 08:00:01",
                [10.5, 10.8, 10.9, 9.8],
                2000,
                None,
            ),
        );
        assert!(o.enrich.is_empty(), "asked once");
        assert_eq!(w.len(), 4, "quote, range, HOD, LOD");
        assert_eq!(w[2].key, "t:daily_range_hod_alert");
        assert_eq!(
            w[2].op,
            WriteOp::Push {
                cap: 1000,
                ttl_secs: ALERT_TTL_SECS
            }
        );
        assert_eq!(json_of(&w[3])["direction"], "low");
        let r = json_of(&w[1]);
        assert_eq!(
            (r["pre_market_high"].as_f64(), r["pre_market_low"].as_f64()),
            (Some(10.9), Some(9.8))
        );
        // An older bar arriving late is skipped: nothing written, counted.
        let (w, o) = run(
            &mut s,
            agg("ABC", "2026-03-03 08:00:00", [1.0, 1.0, 1.0, 1.0], 1, None),
        );
        assert!(w.is_empty());
        assert_eq!(o.stale, 1);
        // Enrichment arrives: the quote is re-sent with the snapshot's baseline.
        let mut out = Vec::new();
        let en = Enrichment {
            prev_day: Some(PrevDay {
                c: 9.0,
                ..PrevDay::default()
            }),
            avg_volume: 1000.0,
            free_float: 5.0,
        };
        s.enriched("ABC", en, &mut out);
        let q = json_of(&out[0]);
        assert_eq!(q["prev_day_close"], 9);
        assert!((q["pct_change"].as_f64().unwrap() - 20.0).abs() < 1e-9);
        assert_eq!(q["relative_volume"], 2);
    }

    #[test]
    fn day_resets_at_four_and_gainers_at_the_open() {
        let mut s = ShardState::new(ShardConfig::default());
        run(
            &mut s,
            agg(
                "ABC",
                "2026-03-03 19:00:00",
                [10.0, 10.0, 12.0, 8.0],
                1000,
                None,
            ),
        );
        assert_eq!(
            s.symbol("ABC").unwrap().range.after_hours.high,
            Some(12.0),
            "first print is stored"
        );
        run(
            &mut s,
            agg(
                "ABC",
                "2026-03-04 03:59:59",
                [10.0, 10.0, 12.0, 8.0],
                1000,
                None,
            ),
        );
        let st = s.symbol("ABC").unwrap();
        assert_eq!(
            st.day_ms,
            ms("2026-03-03 04:00:00"),
            "03:59 still yesterday"
        );
        // 04:00: a new market day, state starts over (no alert even at a new extreme).
        let (w, _) = run(
            &mut s,
            agg("ABC", "2026-03-04 04:00:00", [5.0, 5.0, 5.5, 4.5], 10, None),
        );
        assert_eq!(w.len(), 2);
        let st = s.symbol("ABC").unwrap();
        assert_eq!(st.day_ms, ms("2026-03-04 04:00:00"));
        assert_eq!(st.range.pre_market.high, Some(5.5));
        assert_eq!(st.range.after_hours.high, None);
        assert_eq!(st.open, 5.0);
        // Pre-market gainers rank against the first pre-market open.
        run(
            &mut s,
            agg(
                "ABC",
                "2026-03-04 09:29:00",
                [5.0, 5.5, 5.5, 5.0],
                20,
                Some(5.0),
            ),
        );
        let b = s.board().unwrap();
        let [_, _, gain] = rank(&[b]);
        let gain: Vec<serde_json::Value> = serde_json::from_slice(&gain).unwrap();
        assert_eq!(gain[0]["pct_change_since_open"], 10.0);
        // 09:30: gainers start over against the official open.
        run(
            &mut s,
            agg(
                "XYZ",
                "2026-03-04 09:30:01",
                [1.0, 1.0, 1.0, 1.0],
                5,
                Some(1.0),
            ),
        );
        let [_, _, gain] = rank(&[s.board().unwrap()]);
        assert_eq!(&gain[..], b"[]", "ABC has no regular open yet; XYZ is flat");
        run(
            &mut s,
            agg(
                "ABC",
                "2026-03-04 09:30:02",
                [5.5, 6.0, 6.0, 5.5],
                30,
                Some(5.2),
            ),
        );
        let st = s.symbol("ABC").unwrap();
        assert_eq!((st.open, st.regular_open), (5.2, true));
        let [_, _, gain] = rank(&[s.board().unwrap()]);
        let gain: Vec<serde_json::Value> = serde_json::from_slice(&gain).unwrap();
        assert_eq!(gain.len(), 1);
        assert_eq!(gain[0]["open"], 5.2);
        assert!(
            (gain[0]["pct_change_since_open"].as_f64().unwrap() - 15.384_615_384_615_385).abs()
                < 1e-9
        );
        assert!(s.board().is_none(), "nothing changed since");
    }

    #[test]
    fn checkpoint_round_trip_keeps_the_newest() {
        let mut a = ShardState::new(ShardConfig::default());
        run(
            &mut a,
            agg(
                "ABC",
                "2026-03-03 10:00:00",
                [10.0, 10.0, 11.0, 9.0],
                1000,
                Some(10.0),
            ),
        );
        run(
            &mut a,
            agg(
                "ABC",
                "2026-03-03 10:00:01",
                [10.0, 10.0, 11.5, 9.0],
                1100,
                Some(10.0),
            ),
        );
        let cp = Checkpoint::decode(&a.checkpoint().unwrap().encode()).unwrap();
        assert!(a.checkpoint().is_none());
        let mut b = ShardState::new(ShardConfig::default());
        run(
            &mut b,
            agg("DEF", "2026-03-03 10:00:00", [1.0, 1.0, 1.0, 1.0], 1, None),
        );
        assert_eq!(b.rehydrate(cp.clone()), 1);
        assert_eq!(b.symbols(), 2);
        assert_eq!(b.symbol("ABC").unwrap().range.regular.high, Some(11.5));
        // The next bar continues the day: a new high alerts against the rehydrated one.
        let (w, _) = run(
            &mut b,
            agg(
                "ABC",
                "2026-03-03 10:00:02",
                [10.0, 10.0, 12.0, 9.0],
                1200,
                Some(10.0),
            ),
        );
        assert_eq!(json_of(&w[2])["previous"], 11.5);
        // An older checkpoint does not roll newer state back.
        assert_eq!(b.rehydrate(cp), 0);
        assert_eq!(b.symbol("ABC").unwrap().range.regular.high, Some(12.0));
        assert_eq!(
            b.symbol("ABC")
                .unwrap()
                .quote
                .as_ref()
                .unwrap()
                .get(F::AccumulatedVolume),
            1200.0
        );
    }

    /// A takeover from a checkpoint older than what was published: the published daily
    /// range and quote are folded in, so a high a browser has seen never falls back, and an
    /// older publication changes nothing.
    #[test]
    fn published_values_newer_than_the_checkpoint_are_folded_in() {
        let bar = |s: &mut ShardState, at: &str, high: f64, volume: u64| {
            run(
                s,
                agg("ABC", at, [10.0, 10.0, high, 9.0], volume, Some(10.0)),
            )
            .0
        };
        let published = |w: &[CacheWrite]| {
            w.iter()
                .find(|w| w.key == "daily_range:ABC")
                .map(|w| w.value.clone())
                .expect("daily_range written")
        };
        let mut owner = ShardState::new(ShardConfig::default());
        bar(&mut owner, "2026-03-03 10:00:00", 11.0, 1000);
        assert_eq!(owner.take_new_symbols(), vec!["ABC".to_string()]);
        let cp = owner.checkpoint().unwrap();
        // After the checkpoint, a new high is published; then the owner dies.
        let older = published(&bar(&mut owner, "2026-03-03 10:00:01", 11.5, 1100));
        let newest = published(&bar(&mut owner, "2026-03-03 10:00:02", 12.0, 1200));
        assert!(owner.take_new_symbols().is_empty(), "ABC was not new again");

        let mut heir = ShardState::new(ShardConfig::default());
        heir.rehydrate(cp);
        assert_eq!(heir.symbol("ABC").unwrap().range.regular.high, Some(11.0));
        assert_eq!(heir.published_key("ABC"), "daily_range:ABC");
        assert!(heir.fold_published(&newest));
        assert!(!heir.fold_published(&older), "older than what we hold");
        assert!(!heir.fold_published(b"{not json"));
        assert!(!heir.fold_published(br#"{"symbol":"ABC"}"#));
        let st = heir.symbol("ABC").unwrap();
        assert_eq!(st.range.regular.high, Some(12.0));
        assert_eq!(st.quote.as_ref().unwrap().get(F::AccumulatedVolume), 1200.0);
        assert!(st.bar.is_none());
        // The next bar carries on from the published high: no alert for 11.8, one for 12.5.
        let w = bar(&mut heir, "2026-03-03 10:00:03", 11.8, 1300);
        assert_eq!(json_of(&w[1])["regular_session_high"], 12.0);
        assert_eq!(w.len(), 2, "no alert below the published high");
        let w = bar(&mut heir, "2026-03-03 10:00:04", 12.5, 1400);
        assert_eq!(json_of(&w[2])["previous"], 12.0);
        assert!(
            heir.take_new_symbols().is_empty(),
            "folded symbols are not new"
        );
    }

    #[test]
    fn ranges_merge_to_the_wider_of_both() {
        let mut a = DailyRange::default();
        a.observe(crate::clock::Session::Regular, 11.0, 9.0);
        let mut b = DailyRange::default();
        b.observe(crate::clock::Session::Regular, 12.0, 9.5);
        b.observe(crate::clock::Session::PreMarket, 8.0, 7.0);
        a.merge(&b);
        assert_eq!(a.regular.high, Some(12.0));
        assert_eq!(a.regular.low, Some(9.0));
        assert_eq!(a.pre_market.high, Some(8.0));
        assert_eq!(a.after_hours, Default::default());
    }
}
