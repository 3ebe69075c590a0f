//! REST enrichment values (reference-system.md §3.4): where they come from, how they are
//! cached, and how Massive's answers are read. The fetching itself is the Enricher actor's.
//!
//! | value | source | cache TTL |
//! |---|---|---|
//! | previous day `{o,h,l,c,v,vw}` | `/v2/snapshot/locale/us/markets/stocks/tickers/{T}` → `prevDay` | 28800 s |
//! | average volume (30 sessions) | `/v2/aggs/ticker/{T}/range/1/day/{day−42d}/{day−1}` → mean `v` of the newest ≤30 bars | 43200 s |
//! | free float | `/stocks/vX/float?ticker={T}` → `results[0].free_float` | 43200 s |
//! | no data (404, no bars, empty results) | `0`, a negative entry that *hits* | 21600 s |
//!
//! The same values come in bulk, for the whole market, from three sources read once a day
//! (about 33 calls instead of three per ticker): the full-market snapshot (every
//! `prevDay`: [`prev_days`]), grouped daily bars, one call per past session
//! ([`add_grouped`], [`averages`]), and the float list, a page of 5,000 per call
//! ([`float_page`]).
//!
//! The same snapshot also gives each ticker's day so far ([`seed_bars`]): a processor started
//! mid-session puts the tickers it has not seen trade yet on its leaderboards from it
//! ([`Seed`]), so the boards do not wait for a ticker's next trade.
//!
//! The reference read its average volume from an experimental ratios endpoint when it returned
//! exactly one record; the daily bars are the documented source and always apply.

use bytes::Bytes;
use chrono::{Duration, NaiveDate};
use serde_json::Value;

use serde::{Deserialize, Serialize};

use super::quote::{Bar, Enrichment, PrevDay};

pub const SNAPSHOT_TTL_SECS: u64 = 28_800;
pub const AVG_VOLUME_TTL_SECS: u64 = 43_200;
pub const FREE_FLOAT_TTL_SECS: u64 = 43_200;
pub const NEGATIVE_TTL_SECS: u64 = 21_600;
/// Sessions averaged.
pub const SESSIONS: usize = 30;
/// The cached value that means "Massive has no data".
pub const NONE: &[u8] = b"0";

/// The three values, in cache-key order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Snapshot,
    AvgVolume,
    FreeFloat,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Snapshot, Kind::AvgVolume, Kind::FreeFloat];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Snapshot => "snapshots",
            Kind::AvgVolume => "avg_volume",
            Kind::FreeFloat => "free_float",
        }
    }

    /// The REST endpoint it is fetched from, per ticker (the label of its call count).
    pub fn endpoint(self) -> &'static str {
        match self {
            Kind::Snapshot => "snapshot",
            Kind::AvgVolume => "range",
            Kind::FreeFloat => "float",
        }
    }

    pub fn ttl_secs(self) -> u64 {
        match self {
            Kind::Snapshot => SNAPSHOT_TTL_SECS,
            Kind::AvgVolume => AVG_VOLUME_TTL_SECS,
            Kind::FreeFloat => FREE_FLOAT_TTL_SECS,
        }
    }

    /// State-store key of this value for `ticker`.
    pub fn key(self, prefix: &str, ticker: &str) -> String {
        format!("{prefix}mdc:{}:{ticker}", self.name())
    }

    /// REST path and query (without the API key) for `ticker` on market day `day`.
    pub fn path(self, ticker: &str, day: NaiveDate) -> String {
        match self {
            Kind::Snapshot => format!("/v2/snapshot/locale/us/markets/stocks/tickers/{ticker}"),
            Kind::AvgVolume => format!(
                "/v2/aggs/ticker/{ticker}/range/1/day/{}/{}?adjusted=true&sort=desc&limit={SESSIONS}",
                day - Duration::days(42),
                day - Duration::days(1)
            ),
            Kind::FreeFloat => format!("/stocks/vX/float?ticker={ticker}"),
        }
    }

    /// The value to cache from a 200 answer: its JSON, or [`NONE`] when it holds no data.
    pub fn from_body(self, body: &Value) -> Bytes {
        let v = match self {
            Kind::Snapshot => prev_day(body).and_then(|p| serde_json::to_vec(&p).ok()),
            Kind::AvgVolume => avg_volume(body).map(|v| v.to_string().into_bytes()),
            Kind::FreeFloat => free_float(body).map(|v| v.to_string().into_bytes()),
        };
        v.map_or(Bytes::from_static(NONE), Bytes::from)
    }
}

fn num(v: &Value, k: &str) -> f64 {
    v.get(k).and_then(Value::as_f64).unwrap_or(0.0)
}

/// `ticker.prevDay` of a snapshot answer.
pub fn prev_day(body: &Value) -> Option<PrevDay> {
    let p = body.get("ticker")?.get("prevDay")?;
    let pd = PrevDay {
        o: num(p, "o"),
        h: num(p, "h"),
        l: num(p, "l"),
        c: num(p, "c"),
        v: num(p, "v"),
        vw: num(p, "vw"),
    };
    (pd.c > 0.0).then_some(pd)
}

/// Mean volume of the newest ≤30 daily bars; None without bars or with a zero mean.
pub fn avg_volume(body: &Value) -> Option<f64> {
    let bars = body.get("results")?.as_array()?;
    let vols: Vec<f64> = bars.iter().take(SESSIONS).map(|b| num(b, "v")).collect();
    if vols.is_empty() {
        return None;
    }
    let mean = vols.iter().sum::<f64>() / vols.len() as f64;
    (mean > 0.0).then_some(mean)
}

/// `results[0].free_float`.
pub fn free_float(body: &Value) -> Option<f64> {
    let f = body
        .get("results")?
        .as_array()?
        .first()?
        .get("free_float")?
        .as_f64()?;
    (f > 0.0).then_some(f)
}

/// Every ticker's previous day in a full-market snapshot answer
/// (`/v2/snapshot/locale/us/markets/stocks/tickers`): the value to cache per ticker, [`NONE`]
/// for a ticker listed without one.
pub fn prev_days(body: &Value) -> Vec<(String, Bytes)> {
    let Some(list) = body.get("tickers").and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|t| {
            let sym = t.get("ticker")?.as_str()?.to_string();
            let wrapped = serde_json::json!({ "ticker": t });
            Some((sym, Kind::Snapshot.from_body(&wrapped)))
        })
        .collect()
}

/// One ticker's day so far, from the full-market snapshot, with its enrichment: what a
/// processor knows of a ticker it has not seen trade (a leaderboard row until it trades).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seed {
    pub symbol: String,
    pub bar: Bar,
    pub enrichment: Option<Enrichment>,
}

impl Seed {
    pub fn encode_all(seeds: &[Seed]) -> Vec<u8> {
        rmp_serde::to_vec(seeds).unwrap_or_default()
    }

    pub fn decode_all(b: &[u8]) -> Result<Vec<Seed>, rmp_serde::decode::Error> {
        rmp_serde::from_slice(b)
    }
}

/// Each traded ticker's day so far in a full-market snapshot answer, as the bar a processor
/// would have last seen: the last trade's price and time, the day's volume (`day.v`, else the
/// minute bar's `av`), and the official open where the regular session has begun (Massive
/// keeps `day` at zero until then, and its prices regular-session only). Tickers without a
/// trade or volume are left out.
pub fn seed_bars(body: &Value) -> Vec<(String, Bar)> {
    let Some(list) = body.get("tickers").and_then(Value::as_array) else {
        return Vec::new();
    };
    let empty = Value::Null;
    list.iter()
        .filter_map(|t| {
            let sym = t.get("ticker")?.as_str()?;
            let (day, min) = (
                t.get("day").unwrap_or(&empty),
                t.get("min").unwrap_or(&empty),
            );
            let trade = t.get("lastTrade").unwrap_or(&empty);
            // Trade times are nanoseconds, bar times milliseconds.
            let ns = trade.get("t").and_then(Value::as_i64).unwrap_or(0);
            let (price, at_ms) = match (num(trade, "p"), ns / 1_000_000) {
                (p, t) if p > 0.0 && t > 0 => (p, t),
                _ => (num(min, "c"), num(min, "t") as i64),
            };
            let volume = num(day, "v").max(num(min, "av"));
            if !(price > 0.0 && price.is_finite()) || at_ms <= 0 || volume <= 0.0 {
                return None;
            }
            let bar = Bar {
                volume: num(min, "v"),
                accumulated_volume: volume,
                official_open: num(day, "o"),
                vwap: num(min, "vw"),
                open: num(min, "o"),
                close: price,
                high: num(min, "h"),
                low: num(min, "l"),
                aggregate_vwap: num(day, "vw"),
                average_size: 0.0,
                start_ms: at_ms,
                end_ms: at_ms,
            };
            Some((sym.to_string(), bar))
        })
        .collect()
}

/// Adds one grouped-daily answer (`/v2/aggs/grouped/locale/us/market/stocks/{date}`: one
/// session, every ticker) to `volumes`; answers how many bars it held (0: no session that
/// day, a holiday).
pub fn add_grouped(
    body: &Value,
    volumes: &mut std::collections::HashMap<String, Vec<f64>>,
) -> usize {
    let Some(bars) = body.get("results").and_then(Value::as_array) else {
        return 0;
    };
    let mut n = 0;
    for b in bars {
        if let Some(sym) = b.get("T").and_then(Value::as_str) {
            volumes
                .entry(sym.to_string())
                .or_default()
                .push(num(b, "v"));
            n += 1;
        }
    }
    n
}

/// The average volume to cache for each ticker of `volumes` (sessions newest first, as added):
/// the mean of its newest ≤30 sessions, [`NONE`] when that is 0.
pub fn averages(volumes: &std::collections::HashMap<String, Vec<f64>>) -> Vec<(String, Bytes)> {
    volumes
        .iter()
        .map(|(sym, v)| {
            let v: Vec<f64> = v.iter().take(SESSIONS).copied().collect();
            let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
            let value = if mean > 0.0 {
                Bytes::from(mean.to_string())
            } else {
                Bytes::from_static(NONE)
            };
            (sym.clone(), value)
        })
        .collect()
}

/// The floats in one page of the float list (`/stocks/vX/float` without a ticker) and the
/// page after it (`next_url`), if any.
pub fn float_page(body: &Value) -> (Vec<(String, Bytes)>, Option<String>) {
    let floats = body
        .get("results")
        .and_then(Value::as_array)
        .map(|rs| {
            rs.iter()
                .filter_map(|r| {
                    let sym = r.get("ticker")?.as_str()?.to_string();
                    let one = serde_json::json!({ "results": [r] });
                    Some((sym, Kind::FreeFloat.from_body(&one)))
                })
                .collect()
        })
        .unwrap_or_default();
    let next = body
        .get("next_url")
        .and_then(Value::as_str)
        .map(str::to_string);
    (floats, next)
}

/// Enrichment from the three cached values (in [`Kind::ALL`] order); None unless all three
/// are cached. A negative entry counts as cached: it means "no data", not "ask again".
pub fn from_cache(vals: &[Option<Bytes>]) -> Option<Enrichment> {
    let [Some(snap), Some(avg), Some(float)] = vals else {
        return None;
    };
    let number = |b: &Bytes| {
        std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|x| x.is_finite())
            .unwrap_or(0.0)
    };
    Some(Enrichment {
        prev_day: (snap[..] != *NONE)
            .then(|| serde_json::from_slice(snap).ok())
            .flatten(),
        avg_volume: number(avg),
        free_float: number(float),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn seeds_come_from_the_last_trade_and_the_regular_day() {
        let body = json!({"tickers": [
            // After the open: the official open, the day's volume, the last trade.
            {"ticker": "AAA", "day": {"o": 10.0, "h": 11.0, "l": 9.5, "c": 10.5, "v": 5000, "vw": 10.2},
             "min": {"av": 4900, "t": 1_700_000_000_000i64, "o": 10.4, "h": 10.6, "l": 10.3, "c": 10.5, "v": 100, "vw": 10.45},
             "lastTrade": {"p": 10.55, "t": 1_700_000_030_000_000_000i64}},
            // Pre-market: `day` is zeros; the minute bar's accumulated volume.
            {"ticker": "BBB", "day": {"o": 0, "h": 0, "l": 0, "c": 0, "v": 0, "vw": 0},
             "min": {"av": 300, "t": 1_700_000_000_000i64, "o": 2.0, "h": 2.1, "l": 1.9, "c": 2.05, "v": 50, "vw": 2.0},
             "lastTrade": {"p": 2.05, "t": 1_700_000_010_000_000_000i64}},
            // No trade today: left out; so is a malformed entry.
            {"ticker": "CCC", "day": {"o": 0, "v": 0}, "min": {}},
            {"day": {"v": 5}},
        ]});
        let seeds = seed_bars(&body);
        assert_eq!(seeds.len(), 2);
        let (sym, a) = &seeds[0];
        assert_eq!(sym, "AAA");
        assert_eq!(
            (a.close, a.accumulated_volume, a.official_open, a.end_ms),
            (10.55, 5000.0, 10.0, 1_700_000_030_000)
        );
        let (sym, b) = &seeds[1];
        assert_eq!(sym, "BBB");
        assert_eq!((b.accumulated_volume, b.official_open), (300.0, 0.0));
        let all = vec![Seed {
            symbol: "AAA".into(),
            bar: *a,
            enrichment: None,
        }];
        assert_eq!(Seed::decode_all(&Seed::encode_all(&all)).unwrap(), all);
    }

    #[test]
    fn reads_answers_and_negative_entries() {
        let snap = json!({"status": "OK", "ticker": {"prevDay": {"o": 1, "h": 2, "l": 0.5, "c": 1.5, "v": 1000, "vw": 1.2}}});
        let b = Kind::Snapshot.from_body(&snap);
        let aggs = json!({"results": [{"v": 100}, {"v": 300}]});
        let float = json!({"results": [{"free_float": 5e6}]});
        let cached = [
            Some(b),
            Some(Kind::AvgVolume.from_body(&aggs)),
            Some(Kind::FreeFloat.from_body(&float)),
        ];
        let e = from_cache(&cached).unwrap();
        assert_eq!(e.prev_day.unwrap().c, 1.5);
        assert_eq!((e.avg_volume, e.free_float), (200.0, 5e6));
        // No data: negative entries, and they hit.
        let empty = [
            Some(Kind::Snapshot.from_body(&json!({"status": "OK"}))),
            Some(Kind::AvgVolume.from_body(&json!({"results": []}))),
            Some(Kind::FreeFloat.from_body(&json!({"results": []}))),
        ];
        assert!(empty.iter().all(|v| v.as_deref() == Some(NONE)));
        assert_eq!(from_cache(&empty), Some(Enrichment::default()));
        assert_eq!(from_cache(&[None, None, None]), None);
        let day = NaiveDate::from_ymd_opt(2026, 3, 3).unwrap();
        assert_eq!(
            Kind::AvgVolume.path("ABC", day),
            "/v2/aggs/ticker/ABC/range/1/day/2026-01-20/2026-03-02?adjusted=true&sort=desc&limit=30"
        );
        assert_eq!(Kind::FreeFloat.key("t:", "ABC"), "t:mdc:free_float:ABC");
    }

    #[test]
    fn bulk_answers_give_the_per_ticker_values() {
        let snap = json!({"status": "OK", "tickers": [
            {"ticker": "AAA", "prevDay": {"o": 1, "h": 2, "l": 0.5, "c": 1.5, "v": 1000, "vw": 1.2}},
            {"ticker": "BBB", "prevDay": {"c": 0}},
            {"no": "ticker"}]});
        let p = prev_days(&snap);
        assert_eq!(p.len(), 2);
        assert_eq!(
            p[0].1,
            Kind::Snapshot.from_body(&json!({"ticker": snap["tickers"][0]}))
        );
        assert_eq!(p[1].1.as_ref(), NONE, "listed without a previous day");
        assert!(prev_days(&json!({"status": "ERROR"})).is_empty());

        let mut vols = std::collections::HashMap::new();
        assert_eq!(
            add_grouped(
                &json!({"results": [{"T": "AAA", "v": 100}, {"T": "BBB", "v": 0}]}),
                &mut vols
            ),
            2
        );
        assert_eq!(
            add_grouped(&json!({"results": []}), &mut vols),
            0,
            "a holiday"
        );
        add_grouped(&json!({"results": [{"T": "AAA", "v": 300}]}), &mut vols);
        let mut avg = averages(&vols);
        avg.sort();
        assert_eq!(
            avg,
            vec![
                ("AAA".into(), Bytes::from("200")),
                ("BBB".into(), Bytes::from_static(NONE))
            ]
        );
        // Only the newest 30 sessions count.
        let mut many = std::collections::HashMap::new();
        many.insert("C".to_string(), [vec![10.0; 30], vec![1000.0; 5]].concat());
        assert_eq!(averages(&many)[0].1, Bytes::from("10"));

        let (f, next) = float_page(
            &json!({"results": [{"ticker": "AAA", "free_float": 5e6}, {"ticker": "BBB"}],
                                             "next_url": "http://h/stocks/vX/float?cursor=2"}),
        );
        assert_eq!(
            f,
            vec![
                ("AAA".into(), Bytes::from("5000000")),
                ("BBB".into(), Bytes::from_static(NONE))
            ]
        );
        assert_eq!(next.as_deref(), Some("http://h/stocks/vX/float?cursor=2"));
        assert_eq!(float_page(&json!({})), (vec![], None));
    }
}
