//! The deterministic synthetic US-equities market behind the simulator.
//!
//! A seed fixes everything: the ticker universe, each ticker's price history, and the live
//! stream's random walk. The model keeps the relationships a consumer relies on:
//! - trades print inside the current NBBO (at the bid, at the ask, or a sub-penny midpoint);
//! - `A` and `AM` bars are computed from the simulated trades (volume, exact `dv`/`dav`, bar
//!   and day VWAP, official open, average size), emitted only for tickers that traded, `A`
//!   about 2 s after its second closes and `AM` right after the minute boundary; late trades
//!   re-send the affected bar with the same `sym`/`s`/`e` (a correction);
//! - the day resets at 04:00 ET; the finished day becomes the next day's `prevDay`, so REST
//!   snapshots, grouped daily bars and the stream agree;
//! - LULD bands when a price moves away from its band reference; NOI in the opening and
//!   closing auction windows; FMV beside a share of trades.
//!
//! Daily history before the live day is a stateless function of (seed, ticker, date), so any
//! date range can be served without replaying the past.

use std::collections::{HashMap, VecDeque};

use chrono::{Duration, NaiveDate, NaiveTime};
use serde_json::{json, Value};

use crate::analyzers::calendar::TradingCalendar;
use crate::clock::{self, Session};
use crate::massive::values::{DecimalStr, LenientNum, StrOrInt, TsMillis, TsNanos};
use crate::massive::{Aggregate, Event, Fmv, Luld, Noi, Quote, Trade};
use crate::rng::{hash_unit, Rng};

/// Channel index of each stocks event the market produces (for fast subscription filters).
pub const CH_T: u8 = 0;
pub const CH_Q: u8 = 1;
pub const CH_A: u8 = 2;
pub const CH_AM: u8 = 3;
pub const CH_LULD: u8 = 4;
pub const CH_NOI: u8 = 5;
pub const CH_FMV: u8 = 6;
/// Stocks channel codes, indexed by the constants above.
pub const STOCK_CHANNELS: [&str; 7] = ["T", "Q", "A", "AM", "LULD", "NOI", "FMV"];

/// Well-known tickers first, so demos and tests have familiar names (and dotted ones).
const KNOWN: &[(&str, f64)] = &[
    ("AAPL", 263.0),
    ("MSFT", 420.0),
    ("NVDA", 182.0),
    ("AMZN", 221.0),
    ("GOOGL", 250.0),
    ("META", 690.0),
    ("TSLA", 410.0),
    ("BRK.A", 735000.0),
    ("BRK.B", 490.0),
    ("AMD", 160.0),
    ("SPY", 680.0),
    ("QQQ", 610.0),
    ("NFLX", 1200.0),
    ("INTC", 37.0),
    ("PLTR", 180.0),
    ("SOFI", 28.0),
    ("F", 12.5),
    ("BAC", 52.0),
    ("JPM", 300.0),
    ("XOM", 115.0),
    ("KO", 69.0),
    ("PFE", 25.0),
    ("T", 27.0),
    ("NIO", 6.2),
    ("RIVN", 13.5),
    ("GME", 23.0),
    ("AMC", 3.1),
    ("MARA", 17.0),
    ("RIOT", 14.0),
    ("SNAP", 8.2),
];

/// Static facts of one ticker.
#[derive(Debug, Clone)]
pub struct TickerInfo {
    pub sym: String,
    pub otc: bool,
    pub tape: u8,
    pub base_price: f64,
    pub avg_volume: f64,
    pub shares_outstanding: f64,
    pub free_float: f64,
    /// Relative share of the stream's events.
    pub weight: f64,
    /// Intraday drift per simulated hour (most 0; a few "movers" run up or down).
    pub drift_per_hour: f64,
}

/// A day's OHLCV bar (grouped daily / range / prevDay).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DailyBar {
    pub o: f64,
    pub h: f64,
    pub l: f64,
    pub c: f64,
    pub v: f64,
    pub vw: f64,
    pub n: u64,
    /// Start of the day (00:00 ET) in epoch ms.
    pub t: i64,
}

impl DailyBar {
    pub fn to_json(&self) -> Value {
        json!({"o": self.o, "h": self.h, "l": self.l, "c": self.c, "v": self.v as u64,
               "vw": round4(self.vw), "n": self.n, "t": self.t})
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct BarAcc {
    start: i64,
    o: f64,
    h: f64,
    l: f64,
    c: f64,
    v: f64,
    dollars: f64,
    n: u32,
}

impl BarAcc {
    fn add(&mut self, start: i64, p: f64, size: f64) {
        if self.n == 0 {
            *self = BarAcc {
                start,
                o: p,
                h: p,
                l: p,
                c: p,
                v: 0.0,
                dollars: 0.0,
                n: 0,
            };
        }
        self.h = self.h.max(p);
        self.l = self.l.min(p);
        self.c = p;
        self.v += size;
        self.dollars += p * size;
        self.n += 1;
    }
}

#[derive(Debug, Clone, Default)]
struct DayState {
    open: Option<f64>,
    official_open: Option<f64>,
    high: f64,
    low: f64,
    close: f64,
    /// The regular session's high, low and last price (the snapshot's `day`, as Massive's:
    /// no pre-market or after-hours price, set from the first regular trade).
    regular_high: f64,
    regular_low: f64,
    regular_close: f64,
    volume: f64,
    dollars: f64,
    trades: u64,
}

#[derive(Debug, Clone)]
struct LastTrade {
    p: f64,
    s: f64,
    x: i64,
    i: String,
    c: Option<Vec<i32>>,
    t_ms: i64,
}

#[derive(Debug, Clone)]
struct TickerState {
    mid: f64,
    bid: f64,
    ask: f64,
    bid_size: u64,
    ask_size: u64,
    bx: i64,
    ax: i64,
    quote_t_ms: i64,
    trade_q: u64,
    quote_q: u64,
    trade_id: u64,
    day: DayState,
    prev: DailyBar,
    sec: BarAcc,
    min: BarAcc,
    last_sec_bar: Option<Aggregate>,
    last_min_bar: Option<Aggregate>,
    last_trade: Option<LastTrade>,
    luld_ref: Option<f64>,
    luld_q: u64,
    noi_i: u64,
    /// A runner's volatility pause: no trades or quotes until then (epoch ms; 0: trading),
    /// and the price its next 10 % move is measured from.
    halted_until: i64,
    halt_ref: Option<f64>,
}

/// Settings of the synthetic market.
#[derive(Debug, Clone)]
pub struct MarketConfig {
    pub seed: u64,
    pub tickers: usize,
    /// Trades + quotes per wall-clock second in the regular session.
    pub rate: f64,
    /// Share of generated events that are trades (the rest are quotes).
    pub trade_ratio: f64,
    /// Multiplier of the rate in the first and last regular minute.
    pub open_close_burst: f64,
    /// Rate multiplier in pre-market and after-hours.
    pub extended_hours_factor: f64,
    /// Share of trades that arrive late, into the previous bar (causing a bar correction).
    pub late_trade_ratio: f64,
    /// One FMV event per this many trades (0 disables FMV).
    pub fmv_every: u32,
    /// Trades + quotes per simulated second of the day's history before the start (from
    /// 04:00 ET), so that REST minute bars cover the day so far and the stream continues
    /// from them; 0: the day begins at the start.
    pub history_rate: f64,
    /// Holidays (silent all day) and early closes (regular session to 13:00, after-hours to
    /// 17:00): `SIM_HOLIDAYS`, the same days market status reports.
    pub calendar: std::sync::Arc<TradingCalendar>,
    /// Simulated seconds per wall second: with the rate, how much a day trades, which sets
    /// the past days' volumes (so relative volume reads about 1 for an ordinary ticker at the
    /// close).
    pub speed: f64,
}

/// One finished minute of a ticker, as REST minute aggregates give it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MinuteBar {
    /// Start of the minute, epoch ms.
    pub t: i64,
    pub o: f64,
    pub h: f64,
    pub l: f64,
    pub c: f64,
    pub v: f64,
    pub vw: f64,
}

impl MinuteBar {
    fn of(bar: &Aggregate) -> Self {
        MinuteBar {
            t: bar.s.0,
            o: bar.o,
            h: bar.h,
            l: bar.l,
            c: bar.c,
            v: bar.dv.as_ref().map_or(bar.v.0, DecimalStr::to_f64),
            vw: bar.vw.unwrap_or(bar.c),
        }
    }

    pub fn to_json(&self) -> Value {
        json!({"o": self.o, "h": self.h, "l": self.l, "c": self.c, "v": self.v.floor(),
               "vw": round4(self.vw), "t": self.t, "n": 1})
    }
}

/// Simulated seconds per step while the history before the start is made.
const HISTORY_STEP_MS: i64 = 10_000;

impl Default for MarketConfig {
    fn default() -> Self {
        MarketConfig {
            seed: 1,
            tickers: 500,
            rate: 2000.0,
            trade_ratio: 0.25,
            open_close_burst: 3.0,
            extended_hours_factor: 0.1,
            late_trade_ratio: 0.002,
            fmv_every: 20,
            history_rate: 0.0,
            calendar: std::sync::Arc::new(TradingCalendar::default()),
            speed: 1.0,
        }
    }
}

/// One generated event with what a subscription filter needs.
#[derive(Debug, Clone)]
pub struct SimEvent {
    pub channel: u8,
    pub ticker: u32,
    pub event: Event,
}

const EXCHANGES: [i64; 10] = [1, 3, 7, 8, 10, 11, 12, 15, 19, 21];

fn round2(p: f64) -> f64 {
    (p * 100.0).round() / 100.0
}

/// A volume as JSON: an integer when whole, else exact to six places (fractional shares), so
/// that the snapshot's volumes equal the stream's `dav`.
fn volume_json(v: f64) -> Value {
    let exact = DecimalStr::from_f64(v, 6).to_f64();
    if exact.fract() == 0.0 && exact.abs() < 9e15 {
        json!(exact as u64)
    } else {
        json!(exact)
    }
}

fn round4(p: f64) -> f64 {
    (p * 10_000.0).round() / 10_000.0
}

/// Days since 1970-01-01 (for stateless per-date hashing).
fn day_number(d: NaiveDate) -> i64 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()).num_days()
}

fn generated_symbol(rng: &mut Rng, taken: &HashMap<String, usize>) -> String {
    loop {
        let len = 3 + rng.below(2) as usize;
        let s: String = (0..len)
            .map(|_| char::from(b'A' + rng.below(26) as u8))
            .collect();
        if !taken.contains_key(&s) {
            return s;
        }
    }
}

/// The live synthetic market.
pub struct SyntheticMarket {
    cfg: MarketConfig,
    info: Vec<TickerInfo>,
    index: HashMap<String, usize>,
    state: Vec<TickerState>,
    /// Cumulative activity weights for picking a ticker.
    cumulative: Vec<f64>,
    rng: Rng,
    /// Market day currently streamed.
    day: NaiveDate,
    /// Finished live days, so REST agrees with what was streamed: (ticker, date) -> bar.
    live_history: HashMap<(usize, NaiveDate), DailyBar>,
    last_ms: i64,
    carry: f64,
    cur_sec: i64,
    cur_min: i64,
    dirty_sec: Vec<u32>,
    dirty_min: Vec<u32>,
    in_sec: Vec<bool>,
    in_min: Vec<bool>,
    pending_a: VecDeque<(i64, u32, Aggregate)>,
    trades_since_fmv: u32,
    /// Today's finished minute bars per ticker (history before the start included).
    minutes: Vec<Vec<MinuteBar>>,
    /// Today's runners: per ticker, (activity multiplier, extra drift per hour); (1, 0) for
    /// the rest.
    runners: Vec<(f64, f64)>,
    /// The last [`SECONDS_KEPT_MS`] of finished second bars per ticker (REST
    /// `/range/1/second/…`, the chart's 1-second history), oldest first.
    seconds: Vec<VecDeque<MinuteBar>>,
}

/// The bars that start in `[from_ms, to_ms]`.
fn window<'a>(
    bars: impl Iterator<Item = &'a MinuteBar>,
    from_ms: i64,
    to_ms: i64,
) -> Vec<MinuteBar> {
    bars.filter(|b| b.t >= from_ms && b.t <= to_ms)
        .copied()
        .collect()
}

/// How far back second bars are kept (memory: at most 1,800 bars a ticker).
pub const SECONDS_KEPT_MS: i64 = 30 * 60_000;

/// Mean size of a simulated trade (shares): 5 % fractional, 32 % odd lots of 1-99, 62 % round
/// lots of 100-1,000, 1 % blocks of 1,000-50,000 (see `trade`).
const MEAN_TRADE_SIZE: f64 = 0.05 * 0.5 + 0.32 * 50.0 + 0.62 * 550.0 + 0.01 * 25_500.0;
/// How long a runner's volatility pause lasts (simulated ms), as a LULD pause does.
const HALT_MS: i64 = 300_000;
/// Share of tickers priced $1.50-$25 that run on a given day (about five in 500 tickers).
const RUNNER_SHARE: f64 = 0.035;

/// A day's runners: tickers priced where momentum screens look ($1.50-$25 at the previous
/// close), chosen by a hash of (seed, ticker, day) so that every simulator with the seed
/// agrees, each with an activity multiplier of 15-50 (relative volume about 10-40 by the close)
/// and an upward drift of 3-15 % an hour (a few fall instead), and a gap at the open.
fn runner(seed: u64, i: usize, date: NaiveDate, prev_close: f64) -> Option<(f64, f64, f64)> {
    let dn = day_number(date) as u64;
    if !(1.5..=25.0).contains(&prev_close) || hash_unit(&[seed, i as u64, dn, 8]) >= RUNNER_SHARE {
        return None;
    }
    let up = hash_unit(&[seed, i as u64, dn, 9]) < 0.85;
    let sign = if up { 1.0 } else { -1.0 };
    let boost = 15.0 + 35.0 * hash_unit(&[seed, i as u64, dn, 10]);
    let drift = sign * (0.03 + 0.12 * hash_unit(&[seed, i as u64, dn, 11]));
    // Log gap: +10 % to +60 % (down: -10 % to -35 %).
    let gap =
        sign * (0.095 + (if up { 0.375 } else { 0.335 }) * hash_unit(&[seed, i as u64, dn, 12]));
    Some((boost, drift, gap))
}

impl SyntheticMarket {
    /// Builds the universe and opens the market day containing `now_ms`; with a
    /// `history_rate`, the day so far (from 04:00 ET) is played first, quietly, so that the
    /// market at `now_ms` is where a whole day's trading left it.
    pub fn new(cfg: MarketConfig, now_ms: i64) -> Self {
        let et = clock::to_et(clock::ms_to_utc(now_ms));
        let day_start = clock::from_et(
            clock::market_day(et).and_time(NaiveTime::from_hms_opt(4, 0, 0).unwrap_or_default()),
        )
        .timestamp_millis();
        let history = cfg.history_rate > 0.0 && cfg.calendar.session(now_ms) != Session::Closed;
        if !history {
            return Self::open_at(cfg, now_ms);
        }
        let mut m = Self::open_at(cfg, day_start);
        m.play_history(now_ms);
        m
    }

    /// Plays the market from its clock to `to_ms` at `history_rate`, keeping only the minute
    /// bars (the events are the past: nobody was connected).
    fn play_history(&mut self, to_ms: i64) {
        let rate = self.cfg.rate;
        // `advance` makes `rate × 0.1 × factor` events per call: one call per step.
        self.cfg.rate = self.cfg.history_rate * (HISTORY_STEP_MS as f64 / 1000.0) / 0.1;
        let mut scratch = Vec::new();
        let mut t = self.last_ms;
        while t < to_ms {
            t = (t + HISTORY_STEP_MS).min(to_ms);
            self.advance(t, 0.1, &mut scratch);
            scratch.clear();
        }
        self.cfg.rate = rate;
        self.carry = 0.0;
        self.pending_a.clear();
    }

    /// Today's finished minute bars of ticker `i` that start in `[from_ms, to_ms]`.
    pub fn minute_bars(&self, i: usize, from_ms: i64, to_ms: i64) -> Vec<MinuteBar> {
        let bars = self.minutes.get(i).map(|b| b.iter());
        window(bars.into_iter().flatten(), from_ms, to_ms)
    }

    /// Ticker `i`'s finished second bars of the last half hour that start in
    /// `[from_ms, to_ms]`.
    pub fn second_bars(&self, i: usize, from_ms: i64, to_ms: i64) -> Vec<MinuteBar> {
        let bars = self.seconds.get(i).map(|b| b.iter());
        window(bars.into_iter().flatten(), from_ms, to_ms)
    }

    fn record_minute(&mut self, i: usize, bar: &Aggregate) {
        let m = MinuteBar::of(bar);
        if let Some(list) = self.minutes.get_mut(i) {
            match list.last_mut() {
                // A late trade's corrected bar replaces the one it corrects.
                Some(last) if last.t == m.t => *last = m,
                _ => list.push(m),
            }
        }
    }

    /// The market opened at `now_ms`, with no history.
    fn open_at(cfg: MarketConfig, now_ms: i64) -> Self {
        let mut rng = Rng::new(cfg.seed);
        let mut info = Vec::with_capacity(cfg.tickers);
        let mut index = HashMap::new();
        for n in 0..cfg.tickers.max(1) {
            let (sym, base) = match KNOWN.get(n) {
                Some((s, p)) => (s.to_string(), *p),
                None => {
                    let s = generated_symbol(&mut rng, &index);
                    // Log-uniform prices from $1 to $500, the range scanners care about.
                    (s, round2((rng.unit() * (500f64).ln()).exp().max(1.0)))
                }
            };
            let rank_weight = 1.0 / (1.0 + n as f64).powf(0.8);
            let shares = (2e7 + rng.unit() * 5e9).floor();
            let mover = rng.chance(0.03);
            let drift = if mover {
                (0.02 + rng.unit() * 0.06) * if rng.chance(0.75) { 1.0 } else { -1.0 }
            } else {
                0.0
            };
            let tickers_info = TickerInfo {
                sym: sym.clone(),
                otc: n >= KNOWN.len() && rng.chance(0.03),
                tape: if rng.chance(0.5) {
                    3
                } else if rng.chance(0.5) {
                    1
                } else {
                    2
                },
                base_price: base,
                avg_volume: (2e5 + rng.unit() * 4e7).floor(),
                shares_outstanding: shares,
                free_float: (shares * (0.5 + rng.unit() * 0.45)).floor(),
                weight: rank_weight * (0.5 + rng.unit()) * if mover { 4.0 } else { 1.0 },
                drift_per_hour: drift,
            };
            index.insert(sym, n);
            info.push(tickers_info);
        }
        let mut acc = 0.0;
        let cumulative = info
            .iter()
            .map(|t| {
                acc += t.weight;
                acc
            })
            .collect();
        // What a day streams, so that past days' volumes agree with it: trades a wall second
        // (regular session; a tenth of it in the 9.5 extended hours) over the day's wall time,
        // the ticker's share of the picks, the mean trade size.
        let total_weight = acc.max(f64::MIN_POSITIVE);
        let day_secs =
            (6.5 * 3600.0 + 9.5 * 3600.0 * cfg.extended_hours_factor) / cfg.speed.max(1e-6);
        let day_shares = cfg.rate * cfg.trade_ratio * day_secs * MEAN_TRADE_SIZE;
        for t in &mut info {
            t.avg_volume = (day_shares * t.weight / total_weight).max(100.0).floor();
        }
        let day = clock::market_day(clock::to_et(clock::ms_to_utc(now_ms)));
        let count = info.len();
        let mut m = SyntheticMarket {
            state: Vec::with_capacity(count),
            cfg,
            info,
            index,
            cumulative,
            rng,
            day,
            live_history: HashMap::new(),
            last_ms: now_ms,
            carry: 0.0,
            cur_sec: now_ms.div_euclid(1000),
            cur_min: now_ms.div_euclid(60_000),
            dirty_sec: Vec::new(),
            dirty_min: Vec::new(),
            in_sec: vec![false; count],
            in_min: vec![false; count],
            pending_a: VecDeque::new(),
            trades_since_fmv: 0,
            minutes: vec![Vec::new(); count],
            runners: vec![(1.0, 0.0); count],
            seconds: vec![VecDeque::new(); count],
        };
        for i in 0..count {
            let prev = m.daily_bar(i, clock::previous_trading_day(day));
            let st = m.fresh_state(i, prev, None, day);
            m.state.push(st);
        }
        m.rebuild_weights();
        m
    }

    /// Picking weights with today's runners' multipliers.
    fn rebuild_weights(&mut self) {
        let mut acc = 0.0;
        for (i, c) in self.cumulative.iter_mut().enumerate() {
            acc += self.info[i].weight * self.runners[i].0;
            *c = acc;
        }
    }

    /// Today's runners by place: (ticker, activity multiplier, whether it runs up).
    pub fn runner_ids(&self) -> Vec<(usize, f64, bool)> {
        self.runners
            .iter()
            .enumerate()
            .filter(|(_, r)| r.0 > 1.0)
            .map(|(i, r)| (i, r.0, r.1 > 0.0))
            .collect()
    }

    /// Today's runners, by symbol: (activity multiplier, drift per hour).
    pub fn runners(&self) -> Vec<(&str, f64, f64)> {
        self.runners
            .iter()
            .enumerate()
            .filter(|(_, r)| r.0 > 1.0)
            .map(|(i, r)| (self.info[i].sym.as_str(), r.0, r.1))
            .collect()
    }

    pub fn tickers(&self) -> &[TickerInfo] {
        &self.info
    }

    pub fn ticker_index(&self, sym: &str) -> Option<usize> {
        self.index.get(sym).copied()
    }

    pub fn day(&self) -> NaiveDate {
        self.day
    }

    fn fresh_state(
        &mut self,
        i: usize,
        prev: DailyBar,
        old: Option<&TickerState>,
        today: NaiveDate,
    ) -> TickerState {
        let mut gap = 0.01 * self.rng.normal() + self.info[i].drift_per_hour * 0.5;
        // A runner gaps (its news came overnight), runs with extra drift and trades 10-40
        // times as much all day.
        self.runners[i] = match runner(self.cfg.seed, i, today, prev.c) {
            Some((boost, drift, g)) => {
                gap += g;
                (boost, drift)
            }
            None => (1.0, 0.0),
        };
        let mid = (prev.c * gap.exp()).max(0.5);
        let mut st = TickerState {
            mid,
            bid: 0.0,
            ask: 0.0,
            bid_size: 100,
            ask_size: 100,
            bx: 12,
            ax: 11,
            quote_t_ms: 0,
            trade_q: old.map_or(1000 + self.rng.below(100_000), |o| o.trade_q),
            quote_q: 0,
            trade_id: old.map_or(1, |o| o.trade_id),
            day: DayState::default(),
            prev,
            sec: BarAcc::default(),
            min: BarAcc::default(),
            last_sec_bar: None,
            last_min_bar: None,
            last_trade: None,
            luld_ref: None,
            luld_q: old.map_or(0, |o| o.luld_q),
            noi_i: 0,
            halted_until: 0,
            halt_ref: None,
        };
        set_nbbo(&mut st);
        st
    }

    /// The deterministic daily bar of ticker `i` on `date` (a finished live day when the
    /// simulator streamed it, else the stateless history).
    pub fn daily_bar(&self, i: usize, date: NaiveDate) -> DailyBar {
        if let Some(bar) = self.live_history.get(&(i, date)) {
            return *bar;
        }
        let seed = self.cfg.seed;
        let dn = day_number(date);
        let close_at = |dn: i64| {
            let phase = hash_unit(&[seed, i as u64, 1]) * std::f64::consts::TAU;
            let wave = 0.25 * ((dn as f64) * std::f64::consts::TAU / 180.0 + phase).sin();
            let noise = 0.06 * (hash_unit(&[seed, i as u64, dn as u64, 2]) - 0.5);
            round2((self.info[i].base_price * (wave + noise).exp()).max(0.5))
        };
        let c = close_at(dn);
        let prev_dn = day_number(clock::previous_trading_day(date));
        let o = round2(
            close_at(prev_dn) * (0.01 * (hash_unit(&[seed, i as u64, dn as u64, 3]) - 0.5)).exp(),
        );
        let h = round2(o.max(c) * (1.0 + 0.02 * hash_unit(&[seed, i as u64, dn as u64, 4])));
        let l = round2(o.min(c) * (1.0 - 0.02 * hash_unit(&[seed, i as u64, dn as u64, 5])));
        let v =
            (self.info[i].avg_volume * (0.5 + hash_unit(&[seed, i as u64, dn as u64, 6]))).floor();
        let start = clock::from_et(date.and_time(NaiveTime::MIN)).timestamp_millis();
        DailyBar {
            o,
            h,
            l,
            c,
            v,
            vw: (h + l + c) / 3.0,
            n: (v / 120.0).ceil() as u64,
            t: start,
        }
    }

    /// The live day so far as a daily bar (None before the first trade).
    pub fn today_bar(&self, i: usize) -> Option<DailyBar> {
        let d = &self.state[i].day;
        let open = d.open?;
        let start = clock::from_et(self.day.and_time(NaiveTime::MIN)).timestamp_millis();
        Some(DailyBar {
            o: open,
            h: d.high,
            l: d.low,
            c: d.close,
            v: d.volume,
            vw: if d.volume > 0.0 {
                d.dollars / d.volume
            } else {
                d.close
            },
            n: d.trades,
            t: start,
        })
    }

    /// Advances the market to `now_ms`, appending the events of the elapsed interval.
    /// `wall_dt` is the wall-clock time since the previous call, which sets how many trades
    /// and quotes to make (the rate is per wall second, whatever the clock's speed).
    pub fn advance(&mut self, now_ms: i64, wall_dt: f64, out: &mut Vec<SimEvent>) {
        if now_ms <= self.last_ms {
            return;
        }
        let from = self.last_ms;
        let et = clock::to_et(clock::ms_to_utc(now_ms));
        let day = clock::market_day(et);
        if day != self.day {
            self.roll_bars(now_ms, out);
            self.reset_day(day);
        }
        let session = self.cfg.calendar.session(now_ms);
        let factor = match session {
            Session::Closed => 0.0,
            Session::PreMarket | Session::AfterHours => self.cfg.extended_hours_factor,
            Session::Regular => {
                let t = et.time();
                let open_min = t < NaiveTime::from_hms_opt(9, 31, 0).unwrap_or_default();
                let close_min = t >= NaiveTime::from_hms_opt(15, 59, 0).unwrap_or_default();
                if open_min || close_min {
                    self.cfg.open_close_burst
                } else {
                    1.0
                }
            }
        };
        // A long pause (stall, suspended process) must not turn into a giant burst.
        let want = self.cfg.rate * wall_dt.min(0.1) * factor + self.carry;
        let n = want.floor() as u64;
        self.carry = want - n as f64;
        let span = (now_ms - from) as f64;
        // A step that crosses a session boundary (09:30 in a long step at a high speed)
        // dates each trade's session by its own time, so the official open is a regular one.
        let crosses = self.cfg.calendar.session(from.max(0)) != session;
        for k in 0..n {
            let t = from + ((k + 1) as f64 * span / n as f64) as i64;
            self.roll_bars(t, out);
            let i = self.pick_ticker();
            if self.halted(i, t, out) {
                continue;
            }
            if self.rng.chance(self.cfg.trade_ratio) {
                let session = if crosses {
                    self.cfg.calendar.session(t)
                } else {
                    session
                };
                self.trade(i, t, session, out);
            } else {
                self.quote(i, t, out);
            }
        }
        self.roll_bars(now_ms, out);
        self.auction_imbalances(from, now_ms, et.time(), out);
        while let Some((due, _, _)) = self.pending_a.front() {
            if *due > now_ms {
                break;
            }
            if let Some((_, i, bar)) = self.pending_a.pop_front() {
                out.push(SimEvent {
                    channel: CH_A,
                    ticker: i,
                    event: Event::SecondAgg(bar),
                });
            }
        }
        self.last_ms = now_ms;
    }

    fn pick_ticker(&mut self) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(1.0);
        let x = self.rng.unit() * total;
        self.cumulative
            .partition_point(|c| *c <= x)
            .min(self.info.len() - 1)
    }

    fn reset_day(&mut self, day: NaiveDate) {
        let old_day = self.day;
        for i in 0..self.info.len() {
            if let Some(bar) = self.today_bar(i) {
                self.live_history.insert((i, old_day), bar);
            }
            let prev = self.daily_bar(i, clock::previous_trading_day(day));
            let old = self.state[i].clone();
            self.state[i] = self.fresh_state(i, prev, Some(&old), day);
        }
        self.rebuild_weights();
        self.pending_a.clear();
        for m in &mut self.minutes {
            m.clear();
        }
        for s in &mut self.seconds {
            s.clear();
        }
        self.day = day;
        log::info!("simulated market day reset to {day}");
    }

    /// Closes second and minute bars whose window ended at or before `t`.
    fn roll_bars(&mut self, t: i64, out: &mut Vec<SimEvent>) {
        let sec = t.div_euclid(1000);
        if sec > self.cur_sec {
            for i in std::mem::take(&mut self.dirty_sec) {
                let iu = i as usize;
                self.in_sec[iu] = false;
                let bar = self.bar(iu, self.state[iu].sec, 1000);
                self.state[iu].sec = BarAcc::default();
                if let Some(kept) = self.seconds.get_mut(iu) {
                    let b = MinuteBar::of(&bar);
                    while kept.front().is_some_and(|f| f.t < b.t - SECONDS_KEPT_MS) {
                        kept.pop_front();
                    }
                    kept.push_back(b);
                }
                self.state[iu].last_sec_bar = Some(bar.clone());
                self.pending_a.push_back((bar.e.0 + 2000, i, bar));
            }
            self.cur_sec = sec;
        }
        let min = t.div_euclid(60_000);
        if min > self.cur_min {
            for i in std::mem::take(&mut self.dirty_min) {
                let iu = i as usize;
                self.in_min[iu] = false;
                let bar = self.bar(iu, self.state[iu].min, 60_000);
                self.state[iu].min = BarAcc::default();
                self.record_minute(iu, &bar);
                self.state[iu].last_min_bar = Some(bar.clone());
                out.push(SimEvent {
                    channel: CH_AM,
                    ticker: i,
                    event: Event::MinuteAgg(bar),
                });
            }
            self.cur_min = min;
        }
    }

    fn bar(&self, i: usize, acc: BarAcc, len: i64) -> Aggregate {
        let d = &self.state[i].day;
        Aggregate {
            sym: self.info[i].sym.clone(),
            v: LenientNum(acc.v.floor()),
            dv: Some(DecimalStr::from_f64(acc.v, 6)),
            av: Some(LenientNum(d.volume.floor())),
            dav: Some(DecimalStr::from_f64(d.volume, 6)),
            op: d.official_open.or(d.open),
            vw: Some(round4(if acc.v > 0.0 {
                acc.dollars / acc.v
            } else {
                acc.c
            })),
            o: acc.o,
            c: acc.c,
            h: acc.h,
            l: acc.l,
            a: Some(round4(if d.volume > 0.0 {
                d.dollars / d.volume
            } else {
                acc.c
            })),
            z: Some(LenientNum(if acc.n > 0 {
                (acc.v / f64::from(acc.n)).round()
            } else {
                0.0
            })),
            s: TsMillis(acc.start),
            e: TsMillis(acc.start + len),
            otc: self.info[i].otc.then_some(true),
        }
    }

    fn quote(&mut self, i: usize, t: i64, out: &mut Vec<SimEvent>) {
        let drift = self.info[i].drift_per_hour + self.runners[i].1;
        let step = 0.0006 * self.rng.normal() + drift / 3600.0;
        let rng = &mut self.rng;
        let st = &mut self.state[i];
        st.mid = (st.mid * step.exp()).max(0.5);
        set_nbbo(st);
        st.bid_size = 100 * (1 + rng.below(20));
        st.ask_size = 100 * (1 + rng.below(20));
        st.bx = EXCHANGES[rng.below(EXCHANGES.len() as u64) as usize];
        st.ax = EXCHANGES[rng.below(EXCHANGES.len() as u64) as usize];
        st.quote_q += 1 + rng.below(3);
        st.quote_t_ms = t;
        let q = Quote {
            sym: self.info[i].sym.clone(),
            bx: Some(st.bx),
            bp: st.bid,
            bs: LenientNum(st.bid_size as f64),
            ax: Some(st.ax),
            ap: st.ask,
            as_: LenientNum(st.ask_size as f64),
            c: Some(0),
            i: if rng.chance(0.1) {
                Some(vec![604])
            } else {
                None
            },
            t: TsMillis(t),
            q: Some(st.quote_q),
            z: Some(self.info[i].tape),
        };
        out.push(SimEvent {
            channel: CH_Q,
            ticker: i as u32,
            event: Event::Quote(q),
        });
        self.maybe_luld(i, t, out);
        self.maybe_halt(i, t);
    }

    /// Whether runner `i` is in a volatility pause at `t`. A runner's quote that moves 10 %
    /// from where it last resumed (or first quoted) pauses it for five simulated minutes in
    /// the regular session; it resumes with a halt-reopening imbalance (`NOI`, `a:"H"`) and
    /// fresh LULD bands.
    fn halted(&mut self, i: usize, t: i64, out: &mut Vec<SimEvent>) -> bool {
        let until = self.state[i].halted_until;
        if until == 0 {
            return false;
        }
        if t < until {
            return true;
        }
        let st = &mut self.state[i];
        st.halted_until = 0;
        st.halt_ref = Some(st.mid);
        st.luld_ref = None;
        out.push(self.imbalance(i, t * 1_000_000, None, "H"));
        self.maybe_luld(i, t, out);
        false
    }

    /// A net order imbalance of ticker `i` at `t_ns` for the auction at `at` (ET `hhmm`;
    /// none for a halt reopening) of type `kind`.
    fn imbalance(&mut self, i: usize, t_ns: i64, at: Option<u32>, kind: &str) -> SimEvent {
        let st = &mut self.state[i];
        st.noi_i += 1;
        let ev = Noi {
            sym: self.info[i].sym.clone(),
            t: TsNanos(t_ns),
            at,
            a: Some(kind.to_string()),
            i: Some(st.noi_i),
            x: Some(12),
            o: Some(LenientNum((100 * (1 + self.rng.below(2000))) as f64)),
            p: Some(LenientNum((100 * (1 + self.rng.below(20000))) as f64)),
            b: Some(round2(st.mid)),
        };
        SimEvent {
            channel: CH_NOI,
            ticker: i as u32,
            event: Event::Noi(ev),
        }
    }

    /// A runner's quote: a 10 % move since it last resumed starts a pause (regular session).
    fn maybe_halt(&mut self, i: usize, t: i64) {
        if self.runners[i].0 <= 1.0 || self.cfg.calendar.session(t) != Session::Regular {
            return;
        }
        let st = &mut self.state[i];
        match st.halt_ref {
            None => st.halt_ref = Some(st.mid),
            Some(r) if (st.mid / r - 1.0).abs() >= 0.10 => st.halted_until = t + HALT_MS,
            Some(_) => {}
        }
    }

    fn maybe_luld(&mut self, i: usize, t: i64, out: &mut Vec<SimEvent>) {
        let st = &mut self.state[i];
        let moved = st.luld_ref.is_none_or(|r| (st.mid - r).abs() / r > 0.025);
        if !moved {
            return;
        }
        let band = if st.mid < 3.0 { 0.20 } else { 0.05 };
        st.luld_ref = Some(st.mid);
        st.luld_q += 1;
        let ev = Luld {
            sym: self.info[i].sym.clone(),
            h: round2(st.mid * (1.0 + band)),
            l: round2(st.mid * (1.0 - band)),
            i: Some(vec![21]),
            z: Some(self.info[i].tape),
            t: TsNanos(t * 1_000_000 + self.rng.below(1_000_000) as i64),
            q: Some(st.luld_q),
        };
        out.push(SimEvent {
            channel: CH_LULD,
            ticker: i as u32,
            event: Event::Luld(ev),
        });
    }

    fn trade(&mut self, i: usize, t: i64, session: Session, out: &mut Vec<SimEvent>) {
        let rng = &mut self.rng;
        let late = rng.chance(self.cfg.late_trade_ratio) && self.state[i].last_min_bar.is_some();
        let st = &mut self.state[i];
        let r = rng.unit();
        let price = if r < 0.4 {
            st.bid
        } else if r < 0.8 {
            st.ask
        } else {
            round4((st.bid + st.ask) / 2.0)
        };
        let mut conditions = Vec::new();
        let kind = rng.unit();
        let (size, exact) = if kind < 0.05 {
            // Fractional share: truncated size 0, exact size in `ds`.
            let frac = (1 + rng.below(999_999)) as f64 / 1e6;
            conditions.push(37);
            (frac, Some(DecimalStr::from_f64(frac, 6)))
        } else if kind < 0.37 {
            conditions.push(37);
            ((1 + rng.below(99)) as f64, None)
        } else if kind < 0.99 {
            ((100 * (1 + rng.below(10))) as f64, None)
        } else {
            ((1000 * (1 + rng.below(50))) as f64, None)
        };
        if session != Session::Regular {
            conditions.push(12);
        }
        if rng.chance(0.05) {
            conditions.push(14);
        }
        let trf = rng.chance(0.3);
        let x = if trf {
            4
        } else {
            EXCHANGES[rng.below(EXCHANGES.len() as u64) as usize]
        };
        st.trade_q += 1 + rng.below(4);
        st.trade_id += 1 + rng.below(1000);
        let ts = if late {
            t - 60_000 + rng.below(30_000) as i64
        } else {
            t
        };
        let trade = Trade {
            sym: self.info[i].sym.clone(),
            i: Some(StrOrInt(st.trade_id.to_string())),
            x: Some(x),
            z: Some(self.info[i].tape),
            p: price,
            s: LenientNum(size.floor()),
            ds: exact,
            c: if conditions.is_empty() {
                None
            } else {
                Some(conditions.clone())
            },
            t: TsMillis(ts),
            q: Some(st.trade_q),
            trfi: trf.then(|| 201 + rng.below(3) as i64),
            trft: trf.then(|| TsMillis(ts - rng.below(5) as i64)),
            pt: None,
        };
        // Day state: the official open is the first regular-session trade.
        let d = &mut st.day;
        if d.open.is_none() {
            d.open = Some(price);
            d.high = price;
            d.low = price;
        }
        // A late trade is dated into the previous minute: it sets no regular-session price.
        if session == Session::Regular && !late {
            if d.official_open.is_none() {
                d.official_open = Some(price);
                d.regular_high = price;
                d.regular_low = price;
            }
            d.regular_high = d.regular_high.max(price);
            d.regular_low = d.regular_low.min(price);
            d.regular_close = price;
        }
        d.high = d.high.max(price);
        d.low = d.low.min(price);
        d.volume += size;
        d.dollars += price * size;
        d.trades += 1;
        if !late {
            d.close = price;
            st.last_trade = Some(LastTrade {
                p: price,
                s: size,
                x,
                i: st.trade_id.to_string(),
                c: if conditions.is_empty() {
                    None
                } else {
                    Some(conditions)
                },
                t_ms: ts,
            });
        }
        out.push(SimEvent {
            channel: CH_T,
            ticker: i as u32,
            event: Event::Trade(trade),
        });
        if late {
            self.correct_last_minute(i, price, size, out);
        } else {
            let sec_start = t.div_euclid(1000) * 1000;
            let min_start = t.div_euclid(60_000) * 60_000;
            let st = &mut self.state[i];
            st.sec.add(sec_start, price, size);
            st.min.add(min_start, price, size);
            if !self.in_sec[i] {
                self.in_sec[i] = true;
                self.dirty_sec.push(i as u32);
            }
            if !self.in_min[i] {
                self.in_min[i] = true;
                self.dirty_min.push(i as u32);
            }
        }
        self.trades_since_fmv += 1;
        if self.cfg.fmv_every > 0 && self.trades_since_fmv >= self.cfg.fmv_every {
            self.trades_since_fmv = 0;
            let st = &self.state[i];
            let fmv = Fmv {
                fmv: round4(st.mid),
                sym: self.info[i].sym.clone(),
                t: TsNanos(t * 1_000_000 + 1),
            };
            out.push(SimEvent {
                channel: CH_FMV,
                ticker: i as u32,
                event: Event::Fmv(fmv),
            });
        }
    }

    /// A late trade lands in the last finished minute: re-send that `AM` bar, corrected.
    fn correct_last_minute(&mut self, i: usize, price: f64, size: f64, out: &mut Vec<SimEvent>) {
        let (vol, dollars) = {
            let d = &self.state[i].day;
            (d.volume, d.dollars)
        };
        let Some(bar) = self.state[i].last_min_bar.as_mut() else {
            return;
        };
        let old_v = bar.dv.as_ref().map_or(bar.v.0, DecimalStr::to_f64);
        let new_v = old_v + size;
        let old_vw = bar.vw.unwrap_or(bar.c);
        bar.vw = Some(round4((old_vw * old_v + price * size) / new_v));
        bar.v = LenientNum(new_v.floor());
        bar.dv = Some(DecimalStr::from_f64(new_v, 6));
        bar.h = bar.h.max(price);
        bar.l = bar.l.min(price);
        bar.av = Some(LenientNum(vol.floor()));
        bar.dav = Some(DecimalStr::from_f64(vol, 6));
        bar.a = Some(round4(dollars / vol.max(f64::MIN_POSITIVE)));
        let corrected = bar.clone();
        self.record_minute(i, &corrected);
        out.push(SimEvent {
            channel: CH_AM,
            ticker: i as u32,
            event: Event::MinuteAgg(corrected),
        });
    }

    /// NOI in the opening (09:28-09:30) and closing (15:50-16:00) auction windows.
    fn auction_imbalances(&mut self, from: i64, to: i64, now: NaiveTime, out: &mut Vec<SimEvent>) {
        let hm = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap_or_default();
        let (at, kinds): (u32, &[&str]) = if now >= hm(9, 28) && now < hm(9, 30) {
            (930, &["O", "M"])
        } else if now >= hm(15, 50) && now < hm(16, 0) {
            (1600, &["C", "P", "R"])
        } else {
            return;
        };
        // About one imbalance per simulated second for the whole market.
        if from.div_euclid(1000) == to.div_euclid(1000) {
            return;
        }
        let i = self.pick_ticker();
        let kind = kinds[self.rng.below(kinds.len() as u64) as usize];
        let t_ns = to * 1_000_000 + self.rng.below(1_000_000) as i64;
        let ev = self.imbalance(i, t_ns, Some(at), kind);
        out.push(ev);
    }

    /// Massive's snapshot object for ticker `i` (REST `/v2/snapshot/...`).
    pub fn snapshot(&self, i: usize, now_ms: i64) -> Value {
        let st = &self.state[i];
        let prev = st.prev;
        let mut o = json!({
            "ticker": self.info[i].sym,
            "prevDay": {"o": prev.o, "h": prev.h, "l": prev.l, "c": prev.c, "v": prev.v as u64, "vw": round4(prev.vw)},
            "updated": now_ms * 1_000_000,
        });
        // As Massive's: zeros until the ticker's first regular trade, then the regular
        // session's prices with the whole day's volume.
        let d = &st.day;
        let day = match (d.official_open, self.today_bar(i)) {
            (Some(open), Some(b)) => json!({"o": open, "h": d.regular_high, "l": d.regular_low,
                "c": d.regular_close, "v": volume_json(b.v), "vw": round4(b.vw)}),
            _ => json!({"o": 0, "h": 0, "l": 0, "c": 0, "v": 0, "vw": 0}),
        };
        o["day"] = day;
        o["min"] = match &st.last_min_bar {
            Some(b) => {
                let av = b.dav.as_ref().map(|d| d.to_f64()).or(b.av.map(|v| v.0));
                json!({"av": volume_json(av.unwrap_or(0.0)), "t": b.s.0, "n": 1, "o": b.o, "h": b.h,
                              "l": b.l, "c": b.c, "v": b.v.0 as u64, "vw": b.vw.unwrap_or(b.c)})
            }
            None => json!({}),
        };
        if let Some(lt) = &st.last_trade {
            let mut trade = json!({"i": lt.i, "p": lt.p, "s": lt.s as u64, "t": lt.t_ms * 1_000_000, "x": lt.x});
            if let Some(c) = &lt.c {
                trade["c"] = json!(c);
            }
            o["lastTrade"] = trade;
            let change = lt.p - prev.c;
            o["todaysChange"] = json!(round4(change));
            o["todaysChangePerc"] = json!(round4(change / prev.c * 100.0));
        } else {
            o["todaysChange"] = json!(0);
            o["todaysChangePerc"] = json!(0);
        }
        if st.quote_t_ms > 0 {
            o["lastQuote"] = json!({"p": st.bid, "s": st.bid_size, "P": st.ask, "S": st.ask_size,
                                    "t": st.quote_t_ms * 1_000_000});
        }
        o["fmv"] = json!(round4(st.mid));
        o
    }

    /// Trading days in `[from, to]` with their bars, up to the live day.
    pub fn range(&self, i: usize, from: NaiveDate, to: NaiveDate) -> Vec<DailyBar> {
        let mut out = Vec::new();
        let mut d = from;
        let mut guard = 0;
        while d <= to && guard < 20_000 {
            guard += 1;
            if clock::is_trading_day(d) {
                if d < self.day {
                    out.push(self.daily_bar(i, d));
                } else if d == self.day {
                    if let Some(b) = self.today_bar(i) {
                        out.push(b);
                    }
                }
            }
            d += Duration::days(1);
        }
        out
    }
}

/// NBBO around the mid: a one-cent-or-more spread, prices on the cent grid.
fn set_nbbo(st: &mut TickerState) {
    let spread = round2((st.mid * 0.0004).max(0.01));
    st.bid = round2((st.mid - spread / 2.0).max(0.01));
    st.ask = round2(st.bid + spread);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::from_et;
    use chrono::NaiveDateTime;

    fn at(s: &str) -> i64 {
        from_et(NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()).timestamp_millis()
    }

    fn run(m: &mut SyntheticMarket, from: i64, to: i64, step_ms: i64) -> Vec<SimEvent> {
        let mut out = Vec::new();
        let mut t = from;
        while t < to {
            t += step_ms;
            m.advance(t, step_ms as f64 / 1000.0, &mut out);
        }
        out
    }

    #[test]
    fn a_day_with_history_starts_where_its_minute_bars_left_it() {
        let start = at("2026-03-04 11:00:00");
        let cfg = MarketConfig {
            history_rate: 50.0,
            ..MarketConfig::default()
        };
        let began = std::time::Instant::now();
        let mut m = SyntheticMarket::new(cfg.clone(), start);
        eprintln!("history 04:00-11:00 played in {:?}", began.elapsed());
        let day_start = at("2026-03-04 04:00:00");
        let bars = m.minute_bars(0, 0, i64::MAX);
        assert!(
            bars.len() > 100,
            "the busiest ticker traded all morning: {}",
            bars.len()
        );
        assert!(bars.first().unwrap().t >= day_start);
        assert!(bars.last().unwrap().t < start);
        assert!(
            bars.iter().any(|b| b.t < at("2026-03-04 09:30:00")),
            "pre-market"
        );
        assert!(
            bars.windows(2).all(|w| w[0].t < w[1].t),
            "one bar per minute, in order"
        );
        // The day so far is the bars' day: its range holds every bar, its volume every bar's.
        let today = m.today_bar(0).expect("traded");
        let (hi, lo) = bars
            .iter()
            .fold((f64::MIN, f64::MAX), |(h, l), b| (h.max(b.h), l.min(b.l)));
        assert!(hi <= today.h && lo >= today.l, "{hi} {lo} within {today:?}");
        assert_eq!(today.o, bars[0].o, "the day opened with its first bar");
        let v: f64 = bars.iter().map(|b| b.v).sum();
        assert!(today.v >= v.floor());
        // The stream carries on from there: the first live minute starts near the last close.
        let last = *bars.last().unwrap();
        let mut out = Vec::new();
        let mut t = start;
        while t < start + 120_000 {
            t += 100;
            m.advance(t, 0.1, &mut out);
        }
        let live = m.minute_bars(0, start, i64::MAX);
        assert!(!live.is_empty(), "live minutes are recorded too");
        assert!(
            (live[0].o / last.c - 1.0).abs() < 0.05,
            "{} after {}",
            live[0].o,
            last.c
        );
        // Without history the day begins at the start.
        let plain = SyntheticMarket::new(MarketConfig::default(), start);
        assert!(plain.minute_bars(0, 0, i64::MAX).is_empty());
        assert!(plain.today_bar(0).is_none());
        // The same seed, the same history (the last minute aside: a late trade of the live
        // stream may correct it).
        let again = SyntheticMarket::new(cfg, start);
        let settled = start - 120_000;
        assert!(
            again.minute_bars(0, 0, settled) == m.minute_bars(0, 0, settled),
            "the same seed made another history"
        );
    }

    #[test]
    fn same_seed_same_stream() {
        let start = at("2026-11-24 10:00:00");
        let cfg = MarketConfig {
            rate: 5000.0,
            ..MarketConfig::default()
        };
        let a = run(
            &mut SyntheticMarket::new(cfg.clone(), start),
            start,
            start + 3000,
            5,
        );
        let b = run(
            &mut SyntheticMarket::new(cfg, start),
            start,
            start + 3000,
            5,
        );
        assert_eq!(a.len(), b.len());
        assert!(a.len() > 1000);
        assert!(a
            .iter()
            .zip(&b)
            .all(|(x, y)| x.event.to_json() == y.event.to_json()));
    }

    #[test]
    fn trades_are_inside_the_nbbo_and_bars_sum_trades() {
        let start = at("2026-11-24 10:00:00");
        let cfg = MarketConfig {
            rate: 20_000.0,
            late_trade_ratio: 0.0,
            ..MarketConfig::default()
        };
        let mut m = SyntheticMarket::new(cfg, start);
        let events = run(&mut m, start, start + 5000, 5);
        let mut nbbo: HashMap<String, (f64, f64)> = HashMap::new();
        let mut vol_by_sec: HashMap<(String, i64), f64> = HashMap::new();
        let mut bars = 0;
        for e in &events {
            match &e.event {
                Event::Quote(q) => {
                    assert!(q.bp < q.ap, "crossed quote {q:?}");
                    nbbo.insert(q.sym.clone(), (q.bp, q.ap));
                }
                Event::Trade(t) => {
                    if let Some((b, a)) = nbbo.get(&t.sym) {
                        assert!(
                            t.p >= *b - 1e-9 && t.p <= *a + 1e-9,
                            "trade {t:?} outside {b}..{a}"
                        );
                    }
                    *vol_by_sec
                        .entry((t.sym.clone(), t.t.0 / 1000 * 1000))
                        .or_default() += t.size();
                }
                Event::SecondAgg(bar) => {
                    bars += 1;
                    assert_eq!(bar.e.0 - bar.s.0, 1000);
                    let v = vol_by_sec[&(bar.sym.clone(), bar.s.0)];
                    assert!(
                        (bar.dv.as_ref().unwrap().to_f64() - v).abs() < 1e-5,
                        "{bar:?} vs {v}"
                    );
                    assert!(bar.l <= bar.o && bar.o <= bar.h && bar.l <= bar.c && bar.c <= bar.h);
                }
                _ => {}
            }
        }
        assert!(bars > 10, "A bars are emitted ~2 s after their second");
    }

    #[test]
    fn minute_bars_at_the_boundary_and_day_reset_at_4am() {
        let start = at("2026-11-24 19:59:30");
        let cfg = MarketConfig {
            rate: 2000.0,
            ..MarketConfig::default()
        };
        let mut m = SyntheticMarket::new(cfg, start);
        let ev = run(&mut m, start, start + 60_000, 50);
        assert!(ev.iter().any(
            |e| matches!(&e.event, Event::MinuteAgg(b) if b.e.0 == at("2026-11-24 20:00:00"))
        ));
        let last_close = m.today_bar(0).unwrap().c;
        // Jump across the closed night to the next pre-market: the day resets.
        let mut out = Vec::new();
        m.advance(at("2026-11-25 04:00:01"), 0.01, &mut out);
        assert_eq!(m.day().to_string(), "2026-11-25");
        assert!(m.today_bar(0).is_none());
        let snap = m.snapshot(0, at("2026-11-25 04:00:01"));
        assert_eq!(
            snap["prevDay"]["c"],
            json!(last_close),
            "prevDay is the streamed day"
        );
        let d = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
        assert_eq!(m.range(0, d, d)[0].c, last_close);
    }

    #[test]
    fn closed_market_is_silent_and_history_is_stateless() {
        let start = at("2026-11-24 21:00:00");
        let mut m = SyntheticMarket::new(MarketConfig::default(), start);
        assert!(run(&mut m, start, start + 2000, 10).is_empty());
        let d = NaiveDate::from_ymd_opt(2026, 10, 1).unwrap();
        assert_eq!(m.daily_bar(3, d), m.daily_bar(3, d));
        let b = m.daily_bar(3, d);
        assert!(b.l <= b.o.min(b.c) && b.h >= b.o.max(b.c) && b.v > 0.0);
    }

    #[test]
    fn a_day_has_runners_a_momentum_screen_finds_and_ordinary_volume_is_ordinary() {
        // Embedded mode's market: 2,000 events a wall second, 60 times real time.
        let cfg = MarketConfig {
            speed: 60.0,
            late_trade_ratio: 0.0, // a late trade is dated back a minute, into a pause
            ..MarketConfig::default()
        };
        let start = at("2026-03-04 09:30:00");
        let mut m = SyntheticMarket::new(cfg, start);
        let runners = m.runner_ids();
        assert!(!runners.is_empty(), "a day without runners");
        let mut out = Vec::new();
        let (mut t, step) = (start, 6_000);
        // Per ticker: the times of its trades, and of its halt reopenings.
        let mut trades: HashMap<u32, Vec<i64>> = HashMap::new();
        let mut reopened: Vec<(u32, i64)> = Vec::new();
        while t < at("2026-03-04 16:00:00") {
            t += step;
            m.advance(t, step as f64 / 1000.0 / 60.0, &mut out);
            for e in out.drain(..) {
                match &e.event {
                    Event::Trade(tr) => trades.entry(e.ticker).or_default().push(tr.t.0),
                    Event::Noi(n) if n.a.as_deref() == Some("H") => {
                        reopened.push((e.ticker, n.t.0 / 1_000_000))
                    }
                    _ => {}
                }
            }
        }
        // Runners pause on 10 % moves: no trade in the five minutes before a reopening.
        assert!(!reopened.is_empty(), "no runner paused all day");
        for (i, at_ms) in &reopened {
            let during = trades[i]
                .iter()
                .filter(|x| **x > at_ms - HALT_MS + 1_000 && **x < at_ms - 1_000)
                .count();
            assert_eq!(during, 0, "{} traded while paused", m.info[*i as usize].sym);
        }
        let rel = |i: usize| m.today_bar(i).map_or(0.0, |b| b.v) / m.info[i].avg_volume;
        for &(i, _, up) in &runners {
            let change = m.state[i].mid / m.state[i].prev.c - 1.0;
            assert!(
                rel(i) >= 5.0,
                "{}: relative volume {}",
                m.info[i].sym,
                rel(i)
            );
            if up {
                assert!(change >= 0.10, "{}: {change}", m.info[i].sym);
            }
        }
        // The rest trade as usual: about an ordinary day by the close (no pre-market here).
        let mut ordinary: Vec<f64> = (0..m.info.len())
            .filter(|i| !runners.iter().any(|r| r.0 == *i))
            .map(rel)
            .collect();
        ordinary.sort_by(f64::total_cmp);
        let median = ordinary[ordinary.len() / 2];
        assert!(
            (0.4..1.5).contains(&median),
            "median relative volume {median}"
        );
    }

    #[test]
    fn a_holiday_is_silent_and_an_early_close_ends_at_five() {
        use crate::analyzers::calendar::parse_days;
        let mut calendar = TradingCalendar::default();
        calendar.prime(parse_days("2026-11-26,2026-11-27/early").unwrap());
        let cfg = MarketConfig {
            calendar: std::sync::Arc::new(calendar),
            ..MarketConfig::default()
        };
        let start = at("2026-11-26 10:00:00");
        let mut m = SyntheticMarket::new(cfg.clone(), start);
        assert!(run(&mut m, start, start + 2000, 10).is_empty(), "holiday");
        // The day after closes early: streaming after 13:00 (after-hours), silent after 17:00.
        let start = at("2026-11-27 14:00:00");
        let mut m = SyntheticMarket::new(cfg.clone(), start);
        assert!(!run(&mut m, start, start + 2000, 10).is_empty());
        let start = at("2026-11-27 17:30:00");
        let mut m = SyntheticMarket::new(cfg, start);
        assert!(
            run(&mut m, start, start + 2000, 10).is_empty(),
            "after 17:00"
        );
    }
}
