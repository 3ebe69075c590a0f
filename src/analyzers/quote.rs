//! The enriched quote: the 26 mapping fields of reference-system.md §3.2, computed per
//! aggregate, and how they are written as JSON.
//!
//! The fields are kept as one array of numbers indexed by [`F`] so that the quote, the
//! leaderboard rows, the daily-range state and the alerts can all write "the quote plus a few
//! fields" from one loop, and a checkpoint stores them compactly. Numbers are always JSON
//! numbers (never strings); integral values are written without a fraction, as the
//! reference's Python did for its integer fields.

use serde::{Deserialize, Serialize};

use crate::massive::events::Aggregate;

/// Field indices, in the reference's mapping order (after `symbol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum F {
    Volume,
    FreeFloat,
    AccumulatedVolume,
    RelativeVolume,
    OfficialOpenPrice,
    Vwap,
    Open,
    Close,
    High,
    Low,
    AggregateVwap,
    AverageSize,
    AvgVolume,
    PrevDayClose,
    PrevDayOpen,
    PrevDayHigh,
    PrevDayLow,
    PrevDayVolume,
    PrevDayVwap,
    Change,
    PctChange,
    ChangeSinceOpen,
    PctChangeSinceOpen,
    StartTimestamp,
    EndTimestamp,
}

/// Number of numeric fields (26 mapping fields minus `symbol`).
pub const N: usize = 25;

/// JSON names of the numeric fields, indexed by [`F`].
pub const NAMES: [&str; N] = [
    "volume",
    "free_float",
    "accumulated_volume",
    "relative_volume",
    "official_open_price",
    "vwap",
    "open",
    "close",
    "high",
    "low",
    "aggregate_vwap",
    "average_size",
    "avg_volume",
    "prev_day_close",
    "prev_day_open",
    "prev_day_high",
    "prev_day_low",
    "prev_day_volume",
    "prev_day_vwap",
    "change",
    "pct_change",
    "change_since_open",
    "pct_change_since_open",
    "start_timestamp",
    "end_timestamp",
];

/// Previous-day values from the ticker snapshot (`prevDay`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PrevDay {
    pub o: f64,
    pub h: f64,
    pub l: f64,
    pub c: f64,
    pub v: f64,
    pub vw: f64,
}

/// What REST enrichment knows about a ticker; `None`/0 where it had no data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Enrichment {
    pub prev_day: Option<PrevDay>,
    pub avg_volume: f64,
    pub free_float: f64,
}

/// One aggregate bar, reduced to what the analyzers read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Bar {
    pub volume: f64,
    pub accumulated_volume: f64,
    pub official_open: f64,
    pub vwap: f64,
    pub open: f64,
    pub close: f64,
    pub high: f64,
    pub low: f64,
    pub aggregate_vwap: f64,
    pub average_size: f64,
    pub start_ms: i64,
    pub end_ms: i64,
}

impl Bar {
    /// Missing fields count as 0 (reference rule); exact decimal volumes win over truncated.
    pub fn from_aggregate(a: &Aggregate) -> Self {
        let fin = |x: f64| if x.is_finite() { x } else { 0.0 };
        Bar {
            volume: fin(a.dv.as_ref().map_or(a.v.0, |d| d.to_f64())),
            accumulated_volume: fin(a
                .dav
                .as_ref()
                .map(|d| d.to_f64())
                .or(a.av.map(|v| v.0))
                .unwrap_or(0.0)),
            official_open: fin(a.op.unwrap_or(0.0)),
            vwap: fin(a.vw.unwrap_or(0.0)),
            open: fin(a.o),
            close: fin(a.c),
            high: fin(a.h),
            low: fin(a.l),
            aggregate_vwap: fin(a.a.unwrap_or(0.0)),
            average_size: fin(a.z.map_or(0.0, |z| z.0)),
            start_ms: a.s.0,
            end_ms: a.e.0,
        }
    }
}

/// The enriched quote of one symbol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quote {
    pub symbol: String,
    pub v: [f64; N],
}

impl Quote {
    pub fn get(&self, f: F) -> f64 {
        self.v[f as usize]
    }

    /// Computes the mapping for `bar` (reference-system.md §3.2) with session open `open`.
    pub fn compute(symbol: &str, bar: &Bar, open: f64, en: Option<&Enrichment>) -> Self {
        let pd = en.and_then(|e| e.prev_day);
        let mut v = [0.0; N];
        let mut set = |f: F, x: f64| v[f as usize] = if x.is_finite() { x } else { 0.0 };
        let prev_close = pd.map_or(bar.close, |p| p.c);
        let avg_volume = en.map_or(0.0, |e| e.avg_volume);
        set(F::Volume, bar.volume);
        set(F::FreeFloat, en.map_or(0.0, |e| e.free_float));
        set(F::AccumulatedVolume, bar.accumulated_volume);
        set(
            F::RelativeVolume,
            if avg_volume > 0.0 {
                bar.accumulated_volume / avg_volume
            } else {
                0.0
            },
        );
        set(F::OfficialOpenPrice, bar.official_open);
        set(F::Vwap, bar.vwap);
        set(F::Open, open);
        set(F::Close, bar.close);
        set(F::High, bar.high);
        set(F::Low, bar.low);
        set(F::AggregateVwap, bar.aggregate_vwap);
        set(F::AverageSize, bar.average_size);
        set(F::AvgVolume, avg_volume);
        set(F::PrevDayClose, prev_close);
        set(F::PrevDayOpen, pd.map_or(0.0, |p| p.o));
        set(F::PrevDayHigh, pd.map_or(0.0, |p| p.h));
        set(F::PrevDayLow, pd.map_or(0.0, |p| p.l));
        set(F::PrevDayVolume, pd.map_or(bar.volume, |p| p.v));
        set(F::PrevDayVwap, pd.map_or(bar.vwap, |p| p.vw));
        let (chg, pct) = change(bar.close, prev_close);
        set(F::Change, chg);
        set(F::PctChange, pct);
        let (chg, pct) = change(bar.close, open);
        set(F::ChangeSinceOpen, chg);
        set(F::PctChangeSinceOpen, pct);
        set(F::StartTimestamp, bar.start_ms as f64);
        set(F::EndTimestamp, bar.end_ms as f64);
        Quote {
            symbol: symbol.to_string(),
            v,
        }
    }

    /// Writes `"symbol":"…","volume":…` (no braces) so callers can add their own fields.
    pub fn write_fields(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"\"symbol\":");
        write_str(out, &self.symbol);
        for (name, x) in NAMES.iter().zip(self.v.iter()) {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":");
            write_num(out, *x);
        }
    }

    /// A quote read back from a published object (`quote:{SYM}`, or `daily_range:{SYM}`,
    /// which carries the same fields): None unless it has a symbol and every field is a number.
    pub fn from_json_object(obj: &serde_json::Map<String, serde_json::Value>) -> Option<Self> {
        let symbol = obj.get("symbol")?.as_str()?.to_string();
        let mut v = [0.0; N];
        for (x, name) in v.iter_mut().zip(NAMES.iter()) {
            *x = obj.get(*name)?.as_f64()?;
        }
        Some(Quote { symbol, v })
    }

    /// The `quote:{SYM}` payload: a JSON object of the 26 fields.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(640);
        out.push(b'{');
        self.write_fields(&mut out);
        out.push(b'}');
        out
    }
}

/// `(x − base, (x − base) / base × 100)`, both 0 when `base` is 0.
fn change(x: f64, base: f64) -> (f64, f64) {
    if base == 0.0 {
        (0.0, 0.0)
    } else {
        (x - base, (x - base) / base * 100.0)
    }
}

/// A JSON number: integral values without a fraction, non-finite ones as 0.
pub fn write_num(out: &mut Vec<u8>, x: f64) {
    if !x.is_finite() {
        out.push(b'0');
    } else if x.fract() == 0.0 && x.abs() < 1e15 {
        // itoa, not `write!`: a quote has some thirty numbers, and core::fmt showed up in
        // the analyzers' profile.
        out.extend_from_slice(itoa::Buffer::new().format(x as i64).as_bytes());
    } else {
        // serde_json writes the shortest representation that round-trips.
        let _ = serde_json::to_writer(&mut *out, &x);
    }
}

/// A JSON string (escaped by serde_json).
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(close: f64, av: f64) -> Bar {
        Bar {
            volume: 100.0,
            accumulated_volume: av,
            official_open: 10.0,
            vwap: 10.2,
            open: 10.1,
            close,
            high: close + 0.1,
            low: close - 0.1,
            aggregate_vwap: 10.3,
            average_size: 50.0,
            start_ms: 1_000,
            end_ms: 2_000,
        }
    }

    #[test]
    fn hand_computed_mapping() {
        let en = Enrichment {
            prev_day: Some(PrevDay {
                o: 9.0,
                h: 10.5,
                l: 8.5,
                c: 10.0,
                v: 5_000.0,
                vw: 9.8,
            }),
            avg_volume: 2_000.0,
            free_float: 1e6,
        };
        let q = Quote::compute("ABC", &bar(12.5, 3_000.0), 11.0, Some(&en));
        assert_eq!(q.get(F::PrevDayClose), 10.0);
        assert_eq!(q.get(F::Change), 2.5);
        assert_eq!(q.get(F::PctChange), 25.0);
        assert_eq!(q.get(F::RelativeVolume), 1.5);
        assert_eq!(q.get(F::Open), 11.0);
        assert_eq!(q.get(F::ChangeSinceOpen), 1.5);
        assert!((q.get(F::PctChangeSinceOpen) - 13.636_363_636_363_635).abs() < 1e-12);
        assert_eq!(q.get(F::PrevDayVolume), 5_000.0);
        assert_eq!(q.get(F::FreeFloat), 1e6);
        let json: serde_json::Value = serde_json::from_slice(&q.to_json()).unwrap();
        let obj = json.as_object().unwrap();
        assert_eq!(obj.len(), 26, "the 26 mapping fields");
        assert_eq!(obj["symbol"], "ABC");
        assert!(obj.iter().all(|(k, v)| k == "symbol" || v.is_number()));
        assert!(String::from_utf8(q.to_json())
            .unwrap()
            .contains("\"accumulated_volume\":3000,"));
    }

    #[test]
    fn without_a_snapshot_the_close_is_the_baseline() {
        let q = Quote::compute("ABC", &bar(12.5, 3_000.0), 0.0, None);
        assert_eq!(q.get(F::PrevDayClose), 12.5);
        assert_eq!((q.get(F::Change), q.get(F::PctChange)), (0.0, 0.0));
        assert_eq!(q.get(F::PrevDayOpen), 0.0);
        assert_eq!(q.get(F::PrevDayVolume), 100.0, "the event's volume");
        assert_eq!(q.get(F::PrevDayVwap), 10.2);
        assert_eq!(q.get(F::RelativeVolume), 0.0);
        assert_eq!(q.get(F::PctChangeSinceOpen), 0.0, "no open: 0");
    }

    #[test]
    fn numbers() {
        let mut out = Vec::new();
        for x in [1.0, 1.5, 1e-5, f64::NAN, -3.0, 1e20] {
            write_num(&mut out, x);
            out.push(b' ');
        }
        assert_eq!(String::from_utf8(out).unwrap(), "1 1.5 0.00001 0 -3 1e+20 ");
    }
}
