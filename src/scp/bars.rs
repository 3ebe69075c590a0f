//! Chart history for the dashboard: `GET /api/bars?ticker=T&interval=5m`.
//!
//! The Price Chart opens with today's bars and recent days', which the pipeline never kept
//! (it streams). The control plane fetches them from Massive's aggregates REST with its own
//! key, so the key never reaches a browser:
//!
//! - intraday intervals (`1m`, `5m`, `15m`, `1h`) from one call for the last five days'
//!   minute bars, rolled up here (one cached answer serves every interval);
//! - `1d` from one call for a year of daily bars;
//! - `1s` from one call for the last half hour's second bars.
//!
//! Answers are cached per (ticker, span): today's minutes for `SCP_CHART_CACHE_SECS`, daily
//! bars ten times as long; the cache holds at most [`CACHE_ENTRIES`] answers. Each user may
//! ask `SCP_CHART_REQUESTS_PER_MIN` times a minute (a token bucket; past it, 429 with
//! `Retry-After`), so one browser cannot spend the plan's REST allowance. Every request is
//! counted by outcome.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{require, Need};
use super::{ScpError, ScpState};
use crate::figures;
use crate::massive::rest;
use crate::metrics::{Counter, Registry};

/// Answers kept at most (about 2,000 minute bars each: a few MB in all).
pub const CACHE_ENTRIES: usize = 1000;
/// Calendar days of minute bars an intraday chart opens with.
const INTRADAY_DAYS: i64 = 5;
/// Calendar days of daily bars.
const DAILY_DAYS: i64 = 365;

/// One bar as the chart takes it: `[t (epoch s), o, h, l, c, v]`.
pub type ChartBar = [f64; 6];

/// A chart interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    Second,
    Minutes(u32),
    Day,
}

impl Interval {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "1s" => Interval::Second,
            "1m" => Interval::Minutes(1),
            "5m" => Interval::Minutes(5),
            "15m" => Interval::Minutes(15),
            "1h" => Interval::Minutes(60),
            "1d" => Interval::Day,
            _ => return None,
        })
    }
}

/// Which REST answer an interval is cut from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Span {
    Second,
    Minute,
    Day,
}

/// How far back the 1-second chart opens.
const SECONDS_BACK_MS: i64 = 30 * 60_000;

/// Where history comes from: Massive REST (or the simulator's, in embedded mode).
#[derive(Debug, Clone)]
pub struct BarsSource {
    pub rest_url: String,
    pub api_key: String,
}

figures! {
    /// The chart history's figures.
    pub struct BarsFigures {
        /// Chart history requests, by outcome: `cached`, `fetched`, `limited` (the user's
        /// rate), `refused` (bad ticker or interval), `failed` (REST)
        pub requests: Counter = "tickwire_scp_chart_requests_total",
            by "outcome" in &["cached", "fetched", "limited", "refused", "failed"];
    }
}

struct Cached {
    at: Instant,
    bars: Arc<Vec<ChartBar>>,
}

/// The chart history service of one control plane.
pub struct Bars {
    source: Option<BarsSource>,
    ttl: Duration,
    per_min: f64,
    cache: Mutex<HashMap<(String, Span), Cached>>,
    /// Per user: (tokens left, when last refilled).
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
    pub figures: BarsFigures,
}

impl Bars {
    /// Where history comes from (none: requests answer 502, the chart shows live bars only).
    pub fn set_source(&mut self, source: Option<BarsSource>) {
        self.source = source;
    }

    pub fn new(
        source: Option<BarsSource>,
        ttl: Duration,
        per_min: u32,
        registry: &Registry,
    ) -> Self {
        Bars {
            source,
            ttl,
            per_min: f64::from(per_min.max(1)),
            cache: Mutex::new(HashMap::new()),
            buckets: Mutex::new(HashMap::new()),
            figures: BarsFigures::register(registry, &[]),
        }
    }

    /// Takes one request from `user`'s allowance; Err(seconds to wait) past it.
    fn admit(&self, user: &str) -> Result<(), u64> {
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        // Idle users' buckets are full again: forget them rather than grow.
        if b.len() > 10_000 {
            let full = Duration::from_secs(60);
            b.retain(|_, (_, t)| now.duration_since(*t) < full);
        }
        let (tokens, last) = b.entry(user.to_string()).or_insert((self.per_min, now));
        let refill = now.duration_since(*last).as_secs_f64() * self.per_min / 60.0;
        *tokens = (*tokens + refill).min(self.per_min);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err((((1.0 - *tokens) * 60.0 / self.per_min).ceil() as u64).max(1))
        }
    }

    fn cached(&self, key: &(String, Span)) -> Option<Arc<Vec<ChartBar>>> {
        let ttl = match key.1 {
            Span::Second => self.ttl.min(Duration::from_secs(5)),
            Span::Minute => self.ttl,
            Span::Day => self.ttl * 10,
        };
        let c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        c.get(key)
            .filter(|c| c.at.elapsed() < ttl)
            .map(|c| c.bars.clone())
    }

    fn keep(&self, key: (String, Span), bars: Arc<Vec<ChartBar>>) {
        let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if c.len() >= CACHE_ENTRIES && !c.contains_key(&key) {
            if let Some(oldest) = c.iter().min_by_key(|(_, v)| v.at).map(|(k, _)| k.clone()) {
                c.remove(&oldest);
            }
        }
        c.insert(
            key,
            Cached {
                at: Instant::now(),
                bars,
            },
        );
    }
}

/// A ticker as Massive spells one: letters, digits, `.`, `-`, `:` (prefixes like `X:`).
fn valid_ticker(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 16
        && t.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b"._-:".contains(&b))
}

/// Bars of a Massive aggregates answer (`results[]{t ms, o, h, l, c, v}`), oldest first;
/// unreadable ones are skipped.
pub fn parse_aggs(body: &Value) -> Vec<ChartBar> {
    let mut bars: Vec<ChartBar> = body
        .get("results")
        .and_then(Value::as_array)
        .map(|rows| {
            rows.iter()
                .filter_map(|b| {
                    let n = |k: &str| b.get(k).and_then(Value::as_f64).filter(|x| x.is_finite());
                    let t = b.get("t").and_then(Value::as_i64)?;
                    Some([
                        (t / 1000) as f64,
                        n("o")?,
                        n("h")?,
                        n("l")?,
                        n("c")?,
                        n("v").unwrap_or(0.0),
                    ])
                })
                .collect()
        })
        .unwrap_or_default();
    bars.sort_by(|a, b| a[0].total_cmp(&b[0]));
    bars
}

/// Minute bars rolled up into bars of `minutes` (aligned to the clock: 09:30, 09:35, …):
/// first open, highest high, lowest low, last close, summed volume.
pub fn roll_up(bars: &[ChartBar], minutes: u32) -> Vec<ChartBar> {
    let span = f64::from(minutes.max(1) * 60);
    let mut out: Vec<ChartBar> = Vec::new();
    for b in bars {
        let t = (b[0] / span).floor() * span;
        match out.last_mut() {
            Some(last) if last[0] == t => {
                last[2] = last[2].max(b[2]);
                last[3] = last[3].min(b[3]);
                last[4] = b[4];
                last[5] += b[5];
            }
            _ => out.push([t, b[1], b[2], b[3], b[4], b[5]]),
        }
    }
    out
}

async fn fetch(source: &BarsSource, ticker: &str, span: Span) -> Result<Vec<ChartBar>, String> {
    let today = crate::clock::to_et(chrono::Utc::now()).date();
    let days = |n| today - chrono::Duration::days(n);
    // The second bars: the newest half hour, newest first (by the provider's clock, which
    // may not be ours: a simulator runs on its own).
    let (unit, from, order) = match span {
        Span::Second => (
            "second",
            days(INTRADAY_DAYS),
            format!("sort=desc&limit={}", SECONDS_BACK_MS / 1000),
        ),
        Span::Minute => (
            "minute",
            days(INTRADAY_DAYS),
            "sort=asc&limit=50000".to_string(),
        ),
        Span::Day => ("day", days(DAILY_DAYS), "sort=asc&limit=50000".to_string()),
    };
    let url = format!(
        "{}/v2/aggs/ticker/{ticker}/range/1/{unit}/{from}/{today}?adjusted=true&{order}",
        source.rest_url.trim_end_matches('/')
    );
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish();
    let body = rest::get_json(client, url, source.api_key.clone(), 64 * 1024 * 1024).await?;
    Ok(parse_aggs(&body))
}

#[derive(Deserialize)]
struct BarsQuery {
    ticker: String,
    interval: String,
}

async fn get_bars(
    req: HttpRequest,
    state: web::Data<ScpState>,
    q: web::Query<BarsQuery>,
) -> Result<HttpResponse, ScpError> {
    let s = require(&req, &state, Need::Viewer).await?;
    let bars = &state.bars;
    let refused = |why: &str| {
        bars.figures.requests.inc("refused");
        ScpError::BadRequest(why.to_string())
    };
    let ticker = q.ticker.trim().to_ascii_uppercase();
    if !valid_ticker(&ticker) {
        return Err(refused("ticker: 1-16 of A-Z 0-9 . - _ :"));
    }
    let interval = Interval::parse(&q.interval)
        .ok_or_else(|| refused("interval: one of 1s 1m 5m 15m 1h 1d"))?;
    if let Err(wait) = bars.admit(&s.username) {
        bars.figures.requests.inc("limited");
        return Err(ScpError::TooManyRequests(wait));
    }
    let span = match interval {
        Interval::Second => Span::Second,
        Interval::Minutes(_) => Span::Minute,
        Interval::Day => Span::Day,
    };
    let key = (ticker.clone(), span);
    let all = match bars.cached(&key) {
        Some(b) => {
            bars.figures.requests.inc("cached");
            b
        }
        None => {
            let Some(source) = &bars.source else {
                return Err(ScpError::Upstream("no Massive REST configured".into()));
            };
            match fetch(source, &ticker, span).await {
                Ok(b) => {
                    bars.figures.requests.inc("fetched");
                    let b = Arc::new(b);
                    bars.keep(key, b.clone());
                    b
                }
                Err(e) => {
                    bars.figures.requests.inc("failed");
                    log::warn!("chart history of {ticker}: {e}");
                    return Err(ScpError::Upstream(format!("chart history: {e}")));
                }
            }
        }
    };
    let rolled;
    let out: &[ChartBar] = match interval {
        Interval::Minutes(m) if m > 1 => {
            rolled = roll_up(&all, m);
            &rolled
        }
        _ => &all,
    };
    Ok(answer(&ticker, &q.interval, out))
}

fn answer(ticker: &str, interval: &str, bars: &[ChartBar]) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("cache-control", "private, max-age=5"))
        .json(json!({"ticker": ticker, "interval": interval, "bars": bars}))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/bars", web::get().to(get_bars));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_roll_up_on_the_clock() {
        let m = |t: f64, o: f64, h: f64, l: f64, c: f64| [t, o, h, l, c, 10.0];
        let bars = [
            m(300.0, 1.0, 2.0, 0.5, 1.5),
            m(360.0, 1.5, 3.0, 1.0, 2.5),
            m(600.0, 2.5, 2.6, 2.4, 2.45),
        ];
        assert_eq!(
            roll_up(&bars, 5),
            vec![
                [300.0, 1.0, 3.0, 0.5, 2.5, 20.0],
                [600.0, 2.5, 2.6, 2.4, 2.45, 10.0]
            ]
        );
    }

    #[test]
    fn aggregates_are_read_tolerantly_oldest_first() {
        let body = json!({"results": [
            {"t": 120_000, "o": 2, "h": 3, "l": 1, "c": 2.5, "v": 7},
            {"t": 60_000, "o": 1, "h": 2, "l": 0.5, "c": 1.5},
            {"t": 180_000, "o": "x"},
            {"o": 1}
        ]});
        assert_eq!(
            parse_aggs(&body),
            vec![
                [60.0, 1.0, 2.0, 0.5, 1.5, 0.0],
                [120.0, 2.0, 3.0, 1.0, 2.5, 7.0]
            ]
        );
        assert!(parse_aggs(&json!({"status": "ERROR"})).is_empty());
    }

    #[test]
    fn tickers_and_intervals_are_checked() {
        assert!(valid_ticker("AAPL") && valid_ticker("BRK.B") && valid_ticker("X:BTCUSD"));
        assert!(!valid_ticker("") && !valid_ticker("aapl") && !valid_ticker("A/B"));
        assert!(!valid_ticker("../../v1"));
        assert_eq!(Interval::parse("15m"), Some(Interval::Minutes(15)));
        assert_eq!(Interval::parse("2m"), None);
    }

    #[test]
    fn each_user_has_a_bucket() {
        let b = Bars::new(None, Duration::from_secs(15), 2, &Registry::new());
        assert!(b.admit("ann").is_ok() && b.admit("ann").is_ok());
        assert!(b.admit("ann").is_err(), "the third within a minute");
        assert!(
            b.admit("bob").is_ok(),
            "another user's allowance is their own"
        );
    }
}
