//! Frame parsing: a Massive frame is a JSON array; each element is decoded on its own.
//!
//! Two paths:
//! - [`route_frame`] reads only `ev` and the ticker of each element, borrowing from the frame
//!   without building events. The listener uses it to pick a queue and shard while keeping the
//!   original element bytes (`raw`) to forward unchanged.
//! - [`parse_frame`] builds full [`Event`]s for consumers; [`parse_event`] decodes one element
//!   already cut out (the processor's path: the queue envelope did the cutting), in one typed
//!   pass when `ev` leads the object as Massive writes it.
//!
//! One bad element never costs the frame: it becomes an [`ElementError`] naming its index, its
//! `ev` when readable, and what was wrong, and the other elements go through.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::events::{Event, OtherEvent};
use super::market::Market;

/// The frame as a whole could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("empty frame")]
    Empty,
    #[error("frame is not a JSON array (starts with {0:?})")]
    NotArray(char),
    #[error("frame is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// One element of a frame could not be decoded; the rest of the frame is unaffected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("element {index} (ev {ev:?}): {reason}")]
pub struct ElementError {
    pub index: usize,
    pub ev: Option<String>,
    pub reason: String,
}

/// Splits a frame into its raw elements, checking only that it is a JSON array.
pub fn split_frame(frame: &[u8]) -> Result<Vec<&RawValue>, FrameError> {
    let first = frame
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .ok_or(FrameError::Empty)?;
    if *first != b'[' {
        return Err(FrameError::NotArray(char::from(*first)));
    }
    Ok(serde_json::from_slice(frame)?)
}

/// What the route-only path reads from one element.
#[derive(Debug, Clone)]
pub struct RouteEntry<'a> {
    pub ev: Cow<'a, str>,
    /// `sym`, or `T` (LULD, NOI, indices `V`), or `pair` (crypto/forex bars), or `p` when it is a
    /// string (forex `C`).
    pub symbol: Option<Cow<'a, str>>,
    /// The element exactly as received.
    pub raw: &'a RawValue,
    /// Event time in epoch ms (`t`, else a bar's end `e`), normalised from ms or ns; `None`
    /// when absent or implausible.
    pub time_ms: Option<i64>,
}

impl RouteEntry<'_> {
    pub fn is_status(&self) -> bool {
        self.ev == "status"
    }
}

/// A string field, or nothing when the field holds any other JSON type (stocks `T.p` is a
/// price, forex `C.p` is a pair; only the string form names a ticker).
#[derive(Default)]
struct MaybeStr<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for MaybeStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = MaybeStr<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(MaybeStr(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(MaybeStr(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(MaybeStr(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(MaybeStr(None))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// An integer field, or nothing for any other JSON type (never an error: routing must not
/// fail on a field it only reads for statistics).
#[derive(Default)]
struct MaybeInt(Option<i64>);

impl<'de> Deserialize<'de> for MaybeInt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MaybeInt;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<MaybeInt, E> {
                Ok(MaybeInt(Some(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<MaybeInt, E> {
                Ok(MaybeInt(i64::try_from(v).ok()))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<MaybeInt, E> {
                Ok(MaybeInt(None))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<MaybeInt, E> {
                Ok(MaybeInt(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<MaybeInt, E> {
                Ok(MaybeInt(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<MaybeInt, E> {
                Ok(MaybeInt(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<MaybeInt, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(MaybeInt(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MaybeInt, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(MaybeInt(None))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
struct RouteFields<'a> {
    #[serde(borrow, default)]
    ev: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    sym: MaybeStr<'a>,
    #[serde(borrow, default, rename = "T")]
    t_upper: MaybeStr<'a>,
    #[serde(borrow, default)]
    pair: MaybeStr<'a>,
    #[serde(borrow, default)]
    p: MaybeStr<'a>,
    #[serde(default)]
    t: MaybeInt,
    #[serde(default)]
    e: MaybeInt,
}

/// Reads `ev` and the ticker of one element without decoding the rest.
pub fn route_element(index: usize, raw: &RawValue) -> Result<RouteEntry<'_>, ElementError> {
    let fields: RouteFields<'_> = serde_json::from_str(raw.get()).map_err(|e| ElementError {
        index,
        ev: None,
        reason: format!("not an event object: {e}"),
    })?;
    let ev = fields.ev.ok_or_else(|| ElementError {
        index,
        ev: None,
        reason: "missing \"ev\"".to_string(),
    })?;
    let symbol = fields
        .sym
        .0
        .or(fields.t_upper.0)
        .or(fields.pair.0)
        .or(fields.p.0);
    let time_ms = fields
        .t
        .0
        .or(fields.e.0)
        .and_then(|raw| super::values::epoch_to_nanos(raw).ok())
        .map(|ns| ns / 1_000_000);
    Ok(RouteEntry {
        ev,
        symbol,
        raw,
        time_ms,
    })
}

/// The route-only path over a whole frame: one result per element, in order.
pub fn route_frame(frame: &[u8]) -> Result<Vec<Result<RouteEntry<'_>, ElementError>>, FrameError> {
    Ok(split_frame(frame)?
        .into_iter()
        .enumerate()
        .map(|(i, raw)| route_element(i, raw))
        .collect())
}

/// Decodes one element of a frame received on `market`.
pub fn parse_element(market: Market, index: usize, raw: &RawValue) -> Result<Event, ElementError> {
    parse_event(market, index, raw.get())
}

/// `ev` read off the front of an element as Massive writes it (`{"ev":"T",...`), without a
/// JSON pass; `None` for any other layout (whitespace, another key first, an escape), which
/// then takes the full route read.
fn sniff_ev(json: &str) -> Option<&str> {
    let rest = json.strip_prefix("{\"ev\":\"")?;
    let end = rest.find(['"', '\\'])?;
    (rest.as_bytes()[end] == b'"').then(|| &rest[..end])
}

/// Decodes one event whose JSON text is `json` (an element already cut out of its frame or
/// envelope). Massive's own layout decodes in a single typed pass; anything else is first
/// read for `ev` like the route path does. Whatever `json` holds, the answer is an event or
/// an error: every path checks the whole text.
pub fn parse_event(market: Market, index: usize, json: &str) -> Result<Event, ElementError> {
    let ev: Cow<'_, str> = match sniff_ev(json) {
        Some(ev) => Cow::Borrowed(ev),
        None => {
            let raw: &RawValue = serde_json::from_str(json).map_err(|e| ElementError {
                index,
                ev: None,
                reason: format!("not an event object: {e}"),
            })?;
            Cow::Owned(route_element(index, raw)?.ev.into_owned())
        }
    };
    let fail = |e: serde_json::Error| ElementError {
        index,
        ev: Some(ev.to_string()),
        reason: e.to_string(),
    };
    // Only stocks shapes are modelled; T/Q/A/AM of other markets differ and stay raw.
    let event = match (market, ev.as_ref()) {
        (_, "status") => Event::Status(serde_json::from_str(json).map_err(fail)?),
        (_, "FMV") => Event::Fmv(serde_json::from_str(json).map_err(fail)?),
        (Market::Stocks, "T") => Event::Trade(serde_json::from_str(json).map_err(fail)?),
        (Market::Stocks, "Q") => Event::Quote(serde_json::from_str(json).map_err(fail)?),
        (Market::Stocks, "A") => Event::SecondAgg(serde_json::from_str(json).map_err(fail)?),
        (Market::Stocks, "AM") => Event::MinuteAgg(serde_json::from_str(json).map_err(fail)?),
        (Market::Stocks, "LULD") => Event::Luld(serde_json::from_str(json).map_err(fail)?),
        (Market::Stocks, "NOI") => Event::Noi(serde_json::from_str(json).map_err(fail)?),
        (m, ev) => Event::Other(OtherEvent {
            market: m,
            ev: ev.to_string(),
            known: m.knows_channel(ev),
            raw: RawValue::from_string(json.to_string()).map_err(fail)?,
        }),
    };
    Ok(event)
}

/// A fully decoded frame: the events that decoded, and an error per element that did not.
#[derive(Debug, Default)]
pub struct ParsedFrame {
    pub events: Vec<Event>,
    pub errors: Vec<ElementError>,
}

/// The full path: decodes every element of a frame received on `market`.
pub fn parse_frame(market: Market, frame: &[u8]) -> Result<ParsedFrame, FrameError> {
    let mut out = ParsedFrame::default();
    for (i, raw) in split_frame(frame)?.into_iter().enumerate() {
        match parse_element(market, i, raw) {
            Ok(ev) => out.events.push(ev),
            Err(e) => out.errors.push(e),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_event_sniffs_massive_layout_and_falls_back() {
        let m = Market::Stocks;
        let t = r#"{"ev":"T","sym":"AAPL","i":"1","x":4,"p":1.5,"s":10,"t":1,"q":1,"z":3}"#;
        assert!(matches!(parse_event(m, 0, t), Ok(Event::Trade(_))));
        // Another key first, or whitespace: same event through the route read.
        let spaced = r#"{ "sym":"AAPL", "ev":"T","i":"1","x":4,"p":1.5,"s":10,"t":1,"q":1,"z":3}"#;
        assert!(matches!(parse_event(m, 0, spaced), Ok(Event::Trade(_))));
        let other = r#"{"ev":"XQ","sym":"A"}"#;
        match parse_event(m, 0, other) {
            Ok(Event::Other(o)) => assert_eq!((o.ev.as_str(), o.raw.get()), ("XQ", other)),
            e => panic!("{e:?}"),
        }
        for bad in [
            r#"{"ev":"XQ","sym":"A"} trailing"#,
            r#"{"ev":"XQ","#,
            r#"{"ev":"T","sym":"AAPL"}"#,
            r#"{"sym":"AAPL"}"#,
            "[]",
            "",
        ] {
            let e = parse_event(m, 3, bad).expect_err(bad);
            assert_eq!(e.index, 3, "{bad}");
        }
        let e = parse_event(m, 0, r#"{"ev":"T","sym":"AAPL"}"#).unwrap_err();
        assert_eq!(e.ev.as_deref(), Some("T"));
        // An escaped `ev` is read properly, not sniffed.
        let e = parse_event(m, 0, r#"{"ev":"\u0054","sym":"AAPL"}"#).unwrap_err();
        assert_eq!(e.ev.as_deref(), Some("T"));
        assert!(matches!(
            parse_event(m, 0, r#"{"ev":"T\u0051"}"#),
            Ok(Event::Other(o)) if o.ev == "TQ"
        ));
    }

    #[test]
    fn route_reads_every_symbol_key() {
        let frame = br#"[{"ev":"T","sym":"AAPL","p":1.5,"t":1},{"ev":"LULD","T":"MSFT","h":1,"l":1,"t":1},
            {"ev":"C","p":"USD/CNH","a":1.0},{"ev":"XA","pair":"BTC-USD"},{"ev":"status","status":"x"},
            {"ev":"T","sym":"A\"B"}]"#;
        let routes = route_frame(frame).unwrap();
        let syms: Vec<Option<String>> = routes
            .iter()
            .map(|r| r.as_ref().unwrap().symbol.as_deref().map(str::to_string))
            .collect();
        assert_eq!(
            syms,
            vec![
                Some("AAPL".into()),
                Some("MSFT".into()),
                Some("USD/CNH".into()),
                Some("BTC-USD".into()),
                None,
                Some("A\"B".into())
            ]
        );
        assert!(routes[4].as_ref().unwrap().is_status());
        assert_eq!(
            routes[0].as_ref().unwrap().time_ms,
            Some(1),
            "small values read as ms (massive.md §5)"
        );
        let r = route_frame(br#"[{"ev":"T","sym":"A","t":1772652572552},{"ev":"LULD","T":"A","t":1772652572553123456},{"ev":"A","sym":"A","s":1772652572000,"e":1772652573000},{"ev":"T","t":"x"}]"#).unwrap();
        let times: Vec<Option<i64>> = r.iter().map(|e| e.as_ref().unwrap().time_ms).collect();
        assert_eq!(
            times,
            vec![
                Some(1772652572552),
                Some(1772652572553),
                Some(1772652573000),
                None
            ]
        );
    }

    #[test]
    fn bad_elements_are_isolated() {
        let frame = br#"[{"ev":"T","sym":"AAPL","p":"x","t":1772652572552},42,{"sym":"A"},{"ev":"T","sym":"AAPL","p":1.0,"t":1772652572552}]"#;
        let parsed = parse_frame(Market::Stocks, frame).unwrap();
        assert_eq!(parsed.events.len(), 1);
        assert_eq!(parsed.errors.len(), 3);
        assert_eq!(parsed.errors[0].index, 0);
        assert_eq!(parsed.errors[0].ev.as_deref(), Some("T"));
        assert!(
            parsed.errors[0].reason.contains("invalid type"),
            "{}",
            parsed.errors[0]
        );
        assert!(parsed.errors[2].reason.contains("missing \"ev\""));
    }

    #[test]
    fn whole_frame_errors_are_named() {
        assert!(matches!(
            parse_frame(Market::Stocks, b"  "),
            Err(FrameError::Empty)
        ));
        assert!(matches!(
            parse_frame(Market::Stocks, b"{\"ev\":1}"),
            Err(FrameError::NotArray('{'))
        ));
        assert!(matches!(
            parse_frame(Market::Stocks, b"[{\"ev\":\"T\""),
            Err(FrameError::Json(_))
        ));
    }
}
