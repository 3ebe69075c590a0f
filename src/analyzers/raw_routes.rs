//! Raw routes: individual events cached and published as the reference's flat queue bodies
//! (reference-system.md §2 and §3.6), each route switched on by configuration.
//!
//! | event | key = channel | TTL |
//! |---|---|---|
//! | `Q` | `stocks:quotes:{SYM}` | 3600 s |
//! | `LULD` | `stocks:luld:{SYM}` | 86400 s |
//! | `A`, `AM` | `stocks:agg:{SYM}` | 300 s |
//! | `T` | `stocks:trades:{SYM}` | 3600 s |
//! | anything else | list `unknown` (newest first, 1,000 kept), channel `unknown` | 86400 s |
//!
//! The reference keyed unknown events `unknown:{epoch digits}`: unbounded and colliding. A
//! capped list under the channel's own name keeps the recent ones without either problem.

use std::str::FromStr;

use serde::Serialize;

use crate::massive::events::{Aggregate, Event, Luld, Quote, Trade};
use crate::massive::values::StrOrInt;

/// Items kept in the `unknown` list.
pub const UNKNOWN_CAP: usize = 1000;

/// Which raw routes are on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawRoutes {
    pub quotes: bool,
    pub luld: bool,
    pub agg: bool,
    pub trades: bool,
    pub unknown: bool,
}

impl FromStr for RawRoutes {
    type Err = String;

    /// A comma list of `quotes`, `luld`, `agg`, `trades`, `unknown`; `none` or empty for none.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut r = RawRoutes::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.to_ascii_lowercase().as_str() {
                "quotes" => r.quotes = true,
                "luld" | "halts" => r.luld = true,
                "agg" | "aggregate" => r.agg = true,
                "trades" => r.trades = true,
                "unknown" => r.unknown = true,
                "none" => {}
                other => {
                    return Err(format!(
                        "unknown raw route {other:?} (expected quotes, luld, agg, trades, unknown)"
                    ))
                }
            }
        }
        Ok(r)
    }
}

/// Where a raw event goes: (key suffix, TTL seconds, body).
#[derive(Debug, Clone, PartialEq)]
pub enum RawOut {
    Value {
        key: String,
        ttl_secs: u64,
        /// The JSON body, ready to cache and publish.
        body: Vec<u8>,
    },
    /// For the `unknown` list: the original bytes.
    Unknown,
}

// The bodies are written straight from the event through these borrowed views: a
// `serde_json::Value` per event cost a map, a string per key and their drops, about 3.5 µs
// of a quote's 4.5 µs (`tickwire-bench analyzers`). The fields are in alphabetical order,
// the order the `Value` maps wrote them in, so the bytes published are unchanged.

#[derive(Serialize)]
struct AggBody<'a> {
    accumulated_volume: Option<f64>,
    aggregate_vwap: Option<f64>,
    average_size: Option<f64>,
    close: f64,
    end_timestamp: i64,
    event_type: &'a str,
    high: f64,
    low: f64,
    official_open_price: Option<f64>,
    open: f64,
    otc: bool,
    start_timestamp: i64,
    symbol: &'a str,
    volume: f64,
    vwap: Option<f64>,
}

#[derive(Serialize)]
struct TradeBody<'a> {
    conditions: &'a Option<Vec<i32>>,
    event_type: &'a str,
    exchange: Option<i64>,
    id: &'a Option<StrOrInt>,
    price: f64,
    sequence_number: Option<u64>,
    size: f64,
    symbol: &'a str,
    tape: Option<u8>,
    timestamp: i64,
    trf_id: Option<i64>,
    trf_timestamp: Option<i64>,
}

#[derive(Serialize)]
struct QuoteBody<'a> {
    ask_exchange_id: Option<i64>,
    ask_price: f64,
    ask_size: f64,
    bid_exchange_id: Option<i64>,
    bid_price: f64,
    bid_size: f64,
    condition: Option<i32>,
    event_type: &'a str,
    indicators: &'a Option<Vec<i32>>,
    sequence_number: Option<u64>,
    symbol: &'a str,
    tape: Option<u8>,
    timestamp: i64,
}

#[derive(Serialize)]
struct LuldBody<'a> {
    event_type: &'a str,
    high_price: f64,
    indicators: &'a Option<Vec<i32>>,
    low_price: f64,
    sequence_number: Option<u64>,
    symbol: &'a str,
    tape: Option<u8>,
    timestamp: i64,
}

fn json(body: &impl Serialize) -> Vec<u8> {
    // Serializing these plain structs cannot fail (no maps with non-string keys).
    serde_json::to_vec(body).unwrap_or_default()
}

fn agg_body(ev: &str, a: &Aggregate) -> Vec<u8> {
    json(&AggBody {
        event_type: ev,
        symbol: &a.sym,
        volume: a.v.0,
        accumulated_volume: a.av.map(|v| v.0),
        official_open_price: a.op,
        vwap: a.vw,
        open: a.o,
        close: a.c,
        high: a.h,
        low: a.l,
        aggregate_vwap: a.a,
        average_size: a.z.map(|z| z.0),
        start_timestamp: a.s.0,
        end_timestamp: a.e.0,
        otc: a.otc.unwrap_or(false),
    })
}

fn trade_body(t: &Trade) -> Vec<u8> {
    json(&TradeBody {
        event_type: "T",
        symbol: &t.sym,
        exchange: t.x,
        id: &t.i,
        tape: t.z,
        price: t.p,
        size: t.size(),
        conditions: &t.c,
        timestamp: t.t.0,
        sequence_number: t.q,
        trf_id: t.trfi,
        trf_timestamp: t.trft.map(|x| x.0),
    })
}

fn quote_body(q: &Quote) -> Vec<u8> {
    json(&QuoteBody {
        event_type: "Q",
        symbol: &q.sym,
        bid_exchange_id: q.bx,
        bid_price: q.bp,
        bid_size: q.bs.0,
        ask_exchange_id: q.ax,
        ask_price: q.ap,
        ask_size: q.as_.0,
        condition: q.c,
        indicators: &q.i,
        timestamp: q.t.0,
        sequence_number: q.q,
        tape: q.z,
    })
}

fn luld_body(l: &Luld) -> Vec<u8> {
    json(&LuldBody {
        event_type: "LULD",
        symbol: &l.sym,
        high_price: l.h,
        low_price: l.l,
        indicators: &l.i,
        tape: l.z,
        timestamp: l.t.0,
        sequence_number: l.q,
    })
}

/// The route of one stocks event, if that route is on.
pub fn raw_out(routes: &RawRoutes, ev: &Event) -> Option<RawOut> {
    let value = |kind: &str, sym: &str, ttl_secs, body| RawOut::Value {
        key: format!("stocks:{kind}:{sym}"),
        ttl_secs,
        body,
    };
    match ev {
        Event::Quote(q) if routes.quotes => Some(value("quotes", &q.sym, 3600, quote_body(q))),
        Event::Luld(l) if routes.luld => Some(value("luld", &l.sym, 86400, luld_body(l))),
        Event::SecondAgg(a) if routes.agg => Some(value("agg", &a.sym, 300, agg_body("A", a))),
        Event::MinuteAgg(a) if routes.agg => Some(value("agg", &a.sym, 300, agg_body("AM", a))),
        Event::Trade(t) if routes.trades => Some(value("trades", &t.sym, 3600, trade_body(t))),
        Event::Quote(_)
        | Event::Luld(_)
        | Event::SecondAgg(_)
        | Event::MinuteAgg(_)
        | Event::Trade(_)
        | Event::Status(_) => None,
        Event::Noi(_) | Event::Fmv(_) | Event::Other(_) => {
            routes.unknown.then_some(RawOut::Unknown)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::massive::frame::parse_element;
    use crate::massive::Market;

    fn ev(json: &str) -> Event {
        let raw: Box<serde_json::value::RawValue> = serde_json::from_str(json).unwrap();
        parse_element(Market::Stocks, 0, &raw).unwrap()
    }

    fn value_route(out: Option<RawOut>) -> (String, u64, serde_json::Value) {
        match out {
            Some(RawOut::Value {
                key,
                ttl_secs,
                body,
            }) => (key, ttl_secs, serde_json::from_slice(&body).unwrap()),
            other => panic!("not a value route: {other:?}"),
        }
    }

    /// The bodies are byte for byte what the earlier `serde_json::Value` maps wrote (kept here
    /// as the oracle), with every optional field present and with every one absent.
    #[test]
    fn bodies_are_the_bytes_the_value_maps_wrote() {
        use serde_json::json;
        // As text, so that a failure shows where the bytes part.
        let same = |new: Vec<u8>, old: serde_json::Value| {
            let old = serde_json::to_vec(&old).unwrap();
            assert_eq!(
                String::from_utf8(new).unwrap(),
                String::from_utf8(old).unwrap()
            );
        };
        for j in [
            r#"{"ev":"A","sym":"X","v":10,"av":1000,"op":9.5,"vw":9.9,"o":9.8,"c":10.1,"h":10.25,"l":9.75,"a":9.95,"z":7,"s":1,"e":2,"otc":true}"#,
            r#"{"ev":"A","sym":"X","v":1.5,"o":1,"c":2,"h":3,"l":0.5,"s":1,"e":2}"#,
        ] {
            let Event::SecondAgg(a) = ev(j) else { panic!() };
            same(
                agg_body("A", &a),
                json!({
                    "event_type": "A", "symbol": a.sym, "volume": a.v.0, "accumulated_volume": a.av.map(|v| v.0),
                    "official_open_price": a.op, "vwap": a.vw, "open": a.o, "close": a.c, "high": a.h,
                    "low": a.l, "aggregate_vwap": a.a, "average_size": a.z.map(|z| z.0),
                    "start_timestamp": a.s.0, "end_timestamp": a.e.0, "otc": a.otc.unwrap_or(false),
                }),
            );
        }
        for j in [
            r#"{"ev":"T","sym":"X","i":"abc","x":4,"z":3,"p":10.5,"s":100,"c":[12,37],"t":5,"q":9,"trfi":2,"trft":6}"#,
            r#"{"ev":"T","sym":"X","p":10,"s":1,"t":5}"#,
        ] {
            let Event::Trade(t) = ev(j) else { panic!() };
            same(
                trade_body(&t),
                json!({
                    "event_type": "T", "symbol": t.sym, "exchange": t.x, "id": t.i, "tape": t.z,
                    "price": t.p, "size": t.size(), "conditions": t.c, "timestamp": t.t.0,
                    "sequence_number": t.q, "trf_id": t.trfi, "trf_timestamp": t.trft.map(|x| x.0),
                }),
            );
        }
        for j in [
            r#"{"ev":"Q","sym":"X","bx":4,"bp":1.25,"bs":100,"ax":7,"ap":1.5,"as":160,"c":1,"i":[604],"t":5,"q":50,"z":3}"#,
            r#"{"ev":"Q","sym":"X","bp":1,"ap":2,"t":5}"#,
        ] {
            let Event::Quote(q) = ev(j) else { panic!() };
            same(
                quote_body(&q),
                json!({
                    "event_type": "Q", "symbol": q.sym, "bid_exchange_id": q.bx, "bid_price": q.bp,
                    "bid_size": q.bs.0, "ask_exchange_id": q.ax, "ask_price": q.ap, "ask_size": q.as_.0,
                    "condition": q.c, "indicators": q.i, "timestamp": q.t.0, "sequence_number": q.q,
                    "tape": q.z,
                }),
            );
        }
        for j in [
            r#"{"ev":"LULD","T":"X","h":218.96,"l":198.11,"i":[21],"z":3,"t":1601316752683746000,"q":290317}"#,
            r#"{"ev":"LULD","T":"X","h":2,"l":1,"t":1601316752683746000}"#,
        ] {
            let Event::Luld(l) = ev(j) else { panic!() };
            same(
                luld_body(&l),
                json!({
                    "event_type": "LULD", "symbol": l.sym, "high_price": l.h, "low_price": l.l,
                    "indicators": l.i, "tape": l.z, "timestamp": l.t.0, "sequence_number": l.q,
                }),
            );
        }
    }

    #[test]
    fn routes_and_bodies() {
        let all: RawRoutes = "quotes,luld,agg,trades,unknown".parse().unwrap();
        let q = ev(
            r#"{"ev":"Q","sym":"MSFT","bx":4,"bp":114.125,"bs":100,"ax":7,"ap":114.128,"as":160,"c":0,"i":[604],"t":1536036818784,"q":50385480,"z":3}"#,
        );
        let (key, ttl_secs, body) = value_route(raw_out(&all, &q));
        assert_eq!((key.as_str(), ttl_secs), ("stocks:quotes:MSFT", 3600));
        assert_eq!(body["bid_price"], 114.125);
        assert_eq!(body["ask_size"], 160.0);
        assert_eq!(body["event_type"], "Q");
        let l = ev(
            r#"{"ev":"LULD","T":"MSFT","h":218.96,"l":198.11,"i":[21],"z":3,"t":1601316752683746000,"q":290317}"#,
        );
        let (key, ttl_secs, body) = value_route(raw_out(&all, &l));
        assert_eq!((key.as_str(), ttl_secs), ("stocks:luld:MSFT", 86400));
        assert_eq!(body["high_price"], 218.96);
        let noi =
            ev(r#"{"ev":"NOI","T":"X","t":1,"at":1,"a":"B","i":1,"x":1,"o":1,"p":1,"b":1.0}"#);
        assert_eq!(raw_out(&all, &noi), Some(RawOut::Unknown));
        let none: RawRoutes = "none".parse().unwrap();
        assert_eq!(raw_out(&none, &q), None);
        assert_eq!(raw_out(&none, &noi), None);
        assert!("bogus".parse::<RawRoutes>().is_err());
    }
}
