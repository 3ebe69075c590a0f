//! Massive stocks events and status messages, field for field as on the wire (massive.md §4).
//!
//! Field names are Massive's one-letter keys so that a struct reads like the documentation
//! table. Optional fields are `Option` with `#[serde(default)]` and are omitted when writing
//! (Massive never sends `null`). Unknown fields are ignored, never rejected.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::market::Market;
use super::values::{DecimalStr, LenientNum, StrOrInt, TsMillis, TsNanos};

/// Stocks `T`: one trade.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trade {
    pub sym: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub i: Option<StrOrInt>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub z: Option<u8>,
    pub p: f64,
    /// Size truncated to whole shares; a fractional trade below one share shows 0.
    #[serde(default)]
    pub s: LenientNum,
    /// Exact size when fractional, e.g. `"0.007300"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ds: Option<DecimalStr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub c: Option<Vec<i32>>,
    pub t: TsMillis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trfi: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trft: Option<TsMillis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pt: Option<TsMillis>,
}

impl Trade {
    /// The exact size: `ds` when present, else the truncated `s`.
    pub fn size(&self) -> f64 {
        self.ds.as_ref().map_or(self.s.0, DecimalStr::to_f64)
    }
}

/// Stocks `Q`: NBBO quote. Sizes are in shares (since 2025-11-03), never lots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quote {
    pub sym: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bx: Option<i64>,
    pub bp: f64,
    #[serde(default)]
    pub bs: LenientNum,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ax: Option<i64>,
    pub ap: f64,
    #[serde(default, rename = "as")]
    pub as_: LenientNum,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub c: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub i: Option<Vec<i32>>,
    pub t: TsMillis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub z: Option<u8>,
}

/// Stocks `A` (one second) and `AM` (one minute) bars; the same shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    pub sym: String,
    pub v: LenientNum,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dv: Option<DecimalStr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub av: Option<LenientNum>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dav: Option<DecimalStr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vw: Option<f64>,
    pub o: f64,
    pub c: f64,
    pub h: f64,
    pub l: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a: Option<f64>,
    /// Average trade size; has been sent as a fraction, so it is lenient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub z: Option<LenientNum>,
    pub s: TsMillis,
    pub e: TsMillis,
    /// Present, and `true`, only for OTC tickers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otc: Option<bool>,
}

/// Stocks `LULD`: limit-up/limit-down bands. The ticker is under `T`; `t` is in ns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Luld {
    #[serde(rename = "T")]
    pub sym: String,
    pub h: f64,
    pub l: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub i: Option<Vec<i32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub z: Option<u8>,
    pub t: TsNanos,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<u64>,
}

/// Stocks `NOI`: net order imbalance. `p` is the paired quantity, not a price.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Noi {
    #[serde(rename = "T")]
    pub sym: String,
    pub t: TsNanos,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub i: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub o: Option<LenientNum>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p: Option<LenientNum>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub b: Option<f64>,
}

/// `FMV`: fair market value (every market, business hosts). `t` arrives in ms or ns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fmv {
    pub fmv: f64,
    pub sym: String,
    pub t: TsNanos,
}

/// `"ev":"status"`: connection lifecycle and subscription acks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What a status message means. Decisions key on `status`, never on `message` (its wording
/// has changed over time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusKind {
    Connected,
    AuthSuccess,
    AuthFailed,
    AuthTimeout,
    Success,
    Error,
    MaxConnections,
    AuthRequired,
    ForceDisconnect,
    SlowConsumer,
    Other(String),
}

impl Status {
    pub fn new(status: &str, message: &str) -> Self {
        Status {
            status: status.to_string(),
            message: Some(message.to_string()),
        }
    }

    pub fn kind(&self) -> StatusKind {
        match self.status.as_str() {
            "connected" => StatusKind::Connected,
            "auth_success" => StatusKind::AuthSuccess,
            "auth_failed" => StatusKind::AuthFailed,
            "auth_timeout" => StatusKind::AuthTimeout,
            "success" => StatusKind::Success,
            "error" => StatusKind::Error,
            "max_connections" => StatusKind::MaxConnections,
            "auth_required" => StatusKind::AuthRequired,
            "force_disconnect" => StatusKind::ForceDisconnect,
            "slow_consumer" => StatusKind::SlowConsumer,
            other => StatusKind::Other(other.to_string()),
        }
    }
}

/// An event this crate does not model as a struct: another market's event, or an `ev` nobody
/// knows yet. Kept whole so that nothing is ever dropped for being new.
#[derive(Debug, Clone)]
pub struct OtherEvent {
    pub market: Market,
    pub ev: String,
    /// True when `ev` is a documented event code of `market` (e.g. forex `C`).
    pub known: bool,
    pub raw: Box<RawValue>,
}

/// One element of a Massive frame.
#[derive(Debug, Clone)]
pub enum Event {
    Trade(Trade),
    Quote(Quote),
    SecondAgg(Aggregate),
    MinuteAgg(Aggregate),
    Luld(Luld),
    Noi(Noi),
    Fmv(Fmv),
    Status(Status),
    Other(OtherEvent),
}

/// Serialisation view with `ev` written first, as Massive does.
#[derive(Serialize)]
#[serde(tag = "ev")]
enum Tagged<'a> {
    #[serde(rename = "T")]
    Trade(&'a Trade),
    #[serde(rename = "Q")]
    Quote(&'a Quote),
    #[serde(rename = "A")]
    SecondAgg(&'a Aggregate),
    #[serde(rename = "AM")]
    MinuteAgg(&'a Aggregate),
    #[serde(rename = "LULD")]
    Luld(&'a Luld),
    #[serde(rename = "NOI")]
    Noi(&'a Noi),
    #[serde(rename = "FMV")]
    Fmv(&'a Fmv),
    #[serde(rename = "status")]
    Status(&'a Status),
}

impl Event {
    /// The `ev` code.
    pub fn ev(&self) -> &str {
        match self {
            Event::Trade(_) => "T",
            Event::Quote(_) => "Q",
            Event::SecondAgg(_) => "A",
            Event::MinuteAgg(_) => "AM",
            Event::Luld(_) => "LULD",
            Event::Noi(_) => "NOI",
            Event::Fmv(_) => "FMV",
            Event::Status(_) => "status",
            Event::Other(o) => &o.ev,
        }
    }

    /// The ticker, whichever key the event carries it under.
    pub fn symbol(&self) -> Option<&str> {
        match self {
            Event::Trade(e) => Some(&e.sym),
            Event::Quote(e) => Some(&e.sym),
            Event::SecondAgg(e) | Event::MinuteAgg(e) => Some(&e.sym),
            Event::Luld(e) => Some(&e.sym),
            Event::Noi(e) => Some(&e.sym),
            Event::Fmv(e) => Some(&e.sym),
            Event::Status(_) | Event::Other(_) => None,
        }
    }

    /// Appends the event's JSON object (as Massive writes it) to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let tagged = match self {
            Event::Trade(e) => Tagged::Trade(e),
            Event::Quote(e) => Tagged::Quote(e),
            Event::SecondAgg(e) => Tagged::SecondAgg(e),
            Event::MinuteAgg(e) => Tagged::MinuteAgg(e),
            Event::Luld(e) => Tagged::Luld(e),
            Event::Noi(e) => Tagged::Noi(e),
            Event::Fmv(e) => Tagged::Fmv(e),
            Event::Status(e) => Tagged::Status(e),
            Event::Other(o) => {
                out.extend_from_slice(o.raw.get().as_bytes());
                return;
            }
        };
        // Writing plain structs of numbers and strings into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &tagged);
    }

    /// The event as a JSON object string.
    pub fn to_json(&self) -> String {
        let mut out = Vec::with_capacity(160);
        self.write_json(&mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Encodes events as one Massive frame: a JSON array.
pub fn encode_frame(events: &[Event]) -> String {
    let mut out = Vec::with_capacity(events.len() * 160 + 2);
    out.push(b'[');
    for (n, e) in events.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        e.write_json(&mut out);
    }
    out.push(b']');
    String::from_utf8(out).unwrap_or_default()
}
