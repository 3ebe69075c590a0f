//! Property tests of the parsers of outside input: whatever arrives, each returns a value or
//! an error and never panics.
//!
//! - Massive frames: the route-only and full paths agree on what they saw.
//! - WDS client frames, v1 and v2.
//! - Access tokens: a token changed anywhere is refused.

use proptest::prelude::*;
use serde_json::{json, Value};
use tickwire::massive::frame::route_frame;
use tickwire::massive::{parse_frame, Market};
use tickwire::token::{self, Claims};
use tickwire::wds::protocol::{parse_v1, parse_v2};

fn arb_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-zA-Z0-9 .:/-]{0,12}".prop_map(Value::from),
    ]
}

fn arb_value() -> impl Strategy<Value = Value> {
    arb_scalar().prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-zA-Z]{1,4}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Objects that look like Massive events: a known or random `ev` and plausible keys with
/// arbitrary values.
fn arb_event() -> impl Strategy<Value = Value> {
    let ev = prop_oneof![
        Just("T"),
        Just("Q"),
        Just("A"),
        Just("AM"),
        Just("LULD"),
        Just("NOI"),
        Just("FMV"),
        Just("status"),
        Just("XT"),
        Just("ZZ")
    ];
    let keys = prop::sample::subsequence(
        vec![
            "sym", "T", "p", "s", "t", "q", "i", "x", "z", "c", "ds", "v", "dv", "av", "dav", "o",
            "h", "l", "e", "bp", "ap", "bs", "as", "fmv", "status", "message", "otc", "pair",
        ],
        0..12,
    );
    (ev, keys, prop::collection::vec(arb_value(), 12)).prop_map(|(ev, keys, vals)| {
        let mut m = serde_json::Map::new();
        m.insert("ev".into(), json!(ev));
        for (k, v) in keys.into_iter().zip(vals) {
            m.insert(k.to_string(), v);
        }
        Value::Object(m)
    })
}

fn all_markets() -> impl Strategy<Value = Market> {
    prop::sample::select(Market::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512), m in all_markets()) {
        let _ = parse_frame(m, &bytes);
        let _ = route_frame(&bytes);
    }

    #[test]
    fn event_like_frames_decode_or_error_per_element(events in prop::collection::vec(arb_event(), 0..8),
                                                    m in all_markets()) {
        let frame = serde_json::to_vec(&events).unwrap();
        let parsed = parse_frame(m, &frame).expect("a JSON array is always a frame");
        prop_assert_eq!(parsed.events.len() + parsed.errors.len(), events.len());
        let routes = route_frame(&frame).unwrap();
        prop_assert_eq!(routes.len(), events.len());
        // Every element has a string ev, so routing always succeeds.
        prop_assert!(routes.iter().all(|r| r.is_ok()));
    }

    #[test]
    fn mutated_fixtures_never_panic(cut in 0usize..400, flip in 0usize..400, byte in any::<u8>()) {
        let base = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/frames/mixed_frame.json")).unwrap();
        let mut b = base.clone();
        if flip < b.len() { b[flip] = byte; }
        b.truncate(cut.min(b.len()));
        let _ = parse_frame(Market::Stocks, &b);
        let _ = route_frame(&b);
    }
}

/// Objects that look like WDS client frames: a known or random `action` (v1) and `type` (v2)
/// and the fields requests carry, with arbitrary values.
fn arb_client_frame() -> impl Strategy<Value = Value> {
    let verb = prop::sample::select(vec![
        "auth",
        "subscribe",
        "unsubscribe",
        "get",
        "ping",
        "nope",
        "",
    ]);
    let keys = prop::sample::subsequence(
        vec!["feed", "topic", "cache", "limit", "api_key", "token", "id"],
        0..7,
    );
    (verb, keys, prop::collection::vec(arb_value(), 7)).prop_map(|(verb, keys, vals)| {
        let mut m = serde_json::Map::new();
        m.insert("action".into(), json!(verb));
        m.insert("type".into(), json!(verb));
        for (k, v) in keys.into_iter().zip(vals) {
            m.insert(k.to_string(), v);
        }
        Value::Object(m)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn client_frames_parse_or_refuse(frame in arb_client_frame(), text in "\\PC{0,64}") {
        let json = frame.to_string();
        for t in [json.as_str(), text.as_str()] {
            let _ = parse_v1(t);
            let _ = parse_v2(t);
        }
    }
}

/// Exhaustive rather than sampled: every position, every printable character. Only the
/// untouched token passes (base64's unused trailing bits are refused too).
#[test]
fn a_token_changed_anywhere_is_refused() {
    let secret = b"proptest-secret";
    let now = token::now_secs();
    let claims = Claims::new("ann", &["viewer"], &["quote:*"], now, 600);
    let good = token::sign(&claims, secret).expect("sign");
    assert!(token::verify(&good, secret, now).is_ok());
    for i in 0..good.len() {
        for c in b' '..=b'~' {
            let mut bytes = good.clone().into_bytes();
            bytes[i] = c;
            let changed = String::from_utf8(bytes).expect("ASCII");
            if changed != good {
                assert!(
                    token::verify(&changed, secret, now).is_err(),
                    "accepted: {changed}"
                );
            }
        }
    }
}
