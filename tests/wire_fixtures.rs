//! Table-driven tests of the Massive wire model over recorded-shape fixtures in
//! `tests/fixtures/frames/`: a realistic frame per event type, other markets, and malformed
//! frames. Each row says which events decode and how many elements fail.

use tickwire::massive::frame::route_frame;
use tickwire::massive::{parse_frame, Event, Market, StatusKind};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/frames/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

enum Expect {
    /// The `ev` of each decoded event, in order, and the number of element errors.
    Events(&'static [&'static str], usize),
    /// The whole frame fails with an error containing this text.
    FrameError(&'static str),
}

const TABLE: &[(&str, Market, Expect)] = &[
    (
        "stocks_trade.json",
        Market::Stocks,
        Expect::Events(&["T", "T"], 0),
    ),
    (
        "stocks_quote.json",
        Market::Stocks,
        Expect::Events(&["Q"], 0),
    ),
    (
        "stocks_second_agg.json",
        Market::Stocks,
        Expect::Events(&["A"], 0),
    ),
    (
        "stocks_minute_agg.json",
        Market::Stocks,
        Expect::Events(&["AM"], 0),
    ),
    (
        "stocks_luld.json",
        Market::Stocks,
        Expect::Events(&["LULD"], 0),
    ),
    (
        "stocks_noi.json",
        Market::Stocks,
        Expect::Events(&["NOI"], 0),
    ),
    (
        "stocks_fmv.json",
        Market::Stocks,
        Expect::Events(&["FMV", "FMV"], 0),
    ),
    (
        "status_lifecycle.json",
        Market::Stocks,
        Expect::Events(&["status"; 5], 0),
    ),
    (
        "mixed_frame.json",
        Market::Stocks,
        Expect::Events(&["T", "status", "Q", "A"], 0),
    ),
    (
        "missing_optionals.json",
        Market::Stocks,
        Expect::Events(&["T", "A"], 0),
    ),
    (
        "lenient_numbers.json",
        Market::Stocks,
        Expect::Events(&["A", "T"], 0),
    ),
    (
        "unknown_event_and_fields.json",
        Market::Stocks,
        Expect::Events(&["ZZ", "T"], 0),
    ),
    (
        "options_trade.json",
        Market::Options,
        Expect::Events(&["T"], 0),
    ),
    ("forex_quote.json", Market::Forex, Expect::Events(&["C"], 0)),
    (
        "crypto_trade.json",
        Market::Crypto,
        Expect::Events(&["XT"], 0),
    ),
    (
        "indices_value.json",
        Market::Indices,
        Expect::Events(&["V"], 0),
    ),
    (
        "bad_truncated.json",
        Market::Stocks,
        Expect::FrameError("not valid JSON"),
    ),
    (
        "bad_not_array.json",
        Market::Stocks,
        Expect::FrameError("not a JSON array"),
    ),
    (
        "bad_wrong_types.json",
        Market::Stocks,
        Expect::Events(&["T"], 3),
    ),
    (
        "bad_huge_numbers.json",
        Market::Stocks,
        Expect::Events(&[], 3),
    ),
    (
        "bad_ambiguous_timestamp.json",
        Market::Stocks,
        Expect::Events(&[], 1),
    ),
    ("bad_elements.json", Market::Stocks, Expect::Events(&[], 6)),
];

#[test]
fn every_fixture_decodes_as_expected() {
    for (file, market, expect) in TABLE {
        let bytes = fixture(file);
        let result = parse_frame(*market, &bytes);
        match expect {
            Expect::Events(evs, errors) => {
                let parsed = result.unwrap_or_else(|e| panic!("{file}: frame error {e}"));
                let got: Vec<&str> = parsed.events.iter().map(Event::ev).collect();
                assert_eq!(&got, evs, "{file}: events");
                assert_eq!(
                    parsed.errors.len(),
                    *errors,
                    "{file}: element errors {:?}",
                    parsed.errors
                );
                for e in &parsed.errors {
                    assert!(!e.reason.is_empty(), "{file}: errors name what was wrong");
                }
            }
            Expect::FrameError(text) => {
                let err = result
                    .err()
                    .unwrap_or_else(|| panic!("{file}: expected a frame error"));
                assert!(err.to_string().contains(text), "{file}: {err}");
            }
        }
    }
}

#[test]
fn route_only_path_agrees_with_full_parse() {
    for (file, market, expect) in TABLE {
        if !matches!(expect, Expect::Events(_, 0)) {
            continue;
        }
        let bytes = fixture(file);
        let routes = route_frame(&bytes).unwrap();
        let parsed = parse_frame(*market, &bytes).unwrap();
        assert_eq!(routes.len(), parsed.events.len(), "{file}");
        for (r, e) in routes.iter().zip(&parsed.events) {
            let r = r.as_ref().unwrap();
            assert_eq!(r.ev, e.ev(), "{file}");
            if let Some(sym) = e.symbol() {
                assert_eq!(r.symbol.as_deref(), Some(sym), "{file}");
            }
        }
    }
    // Other markets' ticker keys.
    for (file, sym) in [
        ("forex_quote.json", "USD/CNH"),
        ("indices_value.json", "I:SPX"),
        ("crypto_trade.json", "BTC-USD"),
    ] {
        let bytes = fixture(file);
        let routes = route_frame(&bytes).unwrap();
        assert_eq!(
            routes[0].as_ref().unwrap().symbol.as_deref(),
            Some(sym),
            "{file}"
        );
    }
}

#[test]
fn field_values_and_units() {
    let p = parse_frame(Market::Stocks, &fixture("stocks_trade.json")).unwrap();
    let Event::Trade(t) = &p.events[1] else {
        panic!()
    };
    assert_eq!(t.s.0, 0.0);
    assert!(
        (t.size() - 0.0073).abs() < 1e-12,
        "ds carries the exact fractional size"
    );
    assert_eq!(t.trfi, Some(202));
    assert_eq!(t.i.as_ref().unwrap().0, "71675577320245");

    let p = parse_frame(Market::Stocks, &fixture("stocks_luld.json")).unwrap();
    let Event::Luld(l) = &p.events[0] else {
        panic!()
    };
    assert_eq!(l.sym, "AAPL");
    assert_eq!(l.t.0, 1772652572553123456, "LULD t stays in ns");

    let p = parse_frame(Market::Stocks, &fixture("stocks_fmv.json")).unwrap();
    let (Event::Fmv(a), Event::Fmv(b)) = (&p.events[0], &p.events[1]) else {
        panic!()
    };
    assert_eq!(a.t.0, 1772652572553000000);
    assert_eq!(
        b.t.0, 1772652572553000000,
        "a ms FMV timestamp is normalised to ns"
    );

    let p = parse_frame(Market::Stocks, &fixture("lenient_numbers.json")).unwrap();
    let Event::SecondAgg(bar) = &p.events[0] else {
        panic!()
    };
    assert_eq!(bar.z.unwrap().0, 91.5);
    let Event::Trade(t) = &p.events[1] else {
        panic!()
    };
    assert_eq!(
        t.t.0, 1772652572552,
        "a ns trade timestamp is normalised to ms"
    );
    assert_eq!(t.i.as_ref().unwrap().0, "123");

    let p = parse_frame(Market::Stocks, &fixture("status_lifecycle.json")).unwrap();
    let kinds: Vec<StatusKind> = p
        .events
        .iter()
        .map(|e| match e {
            Event::Status(s) => s.kind(),
            _ => panic!(),
        })
        .collect();
    assert_eq!(kinds[3], StatusKind::MaxConnections);
    assert_eq!(kinds[4], StatusKind::Other("brand_new".into()));

    let p = parse_frame(Market::Forex, &fixture("forex_quote.json")).unwrap();
    let Event::Other(o) = &p.events[0] else {
        panic!()
    };
    assert!(o.known && o.market == Market::Forex);
    let p = parse_frame(Market::Stocks, &fixture("unknown_event_and_fields.json")).unwrap();
    let Event::Other(o) = &p.events[0] else {
        panic!()
    };
    assert!(!o.known);
    assert_eq!(
        o.raw.get(),
        r#"{"ev":"ZZ","sym":"AAPL","whatever":[1,2,3]}"#,
        "unknown events are kept whole"
    );
}

#[test]
fn stocks_events_round_trip_through_the_writer() {
    for file in [
        "stocks_trade.json",
        "stocks_quote.json",
        "stocks_second_agg.json",
        "stocks_minute_agg.json",
        "stocks_luld.json",
        "stocks_noi.json",
        "mixed_frame.json",
    ] {
        let parsed = parse_frame(Market::Stocks, &fixture(file)).unwrap();
        let written = tickwire::massive::events::encode_frame(&parsed.events);
        let again = parse_frame(Market::Stocks, written.as_bytes()).unwrap();
        assert!(again.errors.is_empty());
        for (a, b) in parsed.events.iter().zip(&again.events) {
            assert_eq!(a.to_json(), b.to_json(), "{file}");
        }
        assert!(
            !written.contains("null"),
            "{file}: optional fields are omitted, never null"
        );
    }
}
