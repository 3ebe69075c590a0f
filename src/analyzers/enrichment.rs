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
//! The reference read its average volume from an experimental ratios endpoint when it returned
//! exactly one record; the daily bars are the documented source and always apply.

use bytes::Bytes;
use chrono::{Duration, NaiveDate};
use serde_json::Value;

use super::quote::{Enrichment, PrevDay};

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
}
