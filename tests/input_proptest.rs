//! Property tests of the parsers of outside input: whatever arrives, each returns a value or
//! an error and never panics.
//!
//! - Massive frames: the route-only and full paths agree on what they saw.
//! - WDS client frames, v1 and v2.
//! - Access tokens: a token changed anywhere is refused.
//! - The analyzers: well-formed events with any numbers and times write only JSON.

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::{json, Value};
use tickwire::actors::wds::protocol::{parse_v1, parse_v2};
use tickwire::analyzers::leaderboard::{rank, ShardBoard};
use tickwire::analyzers::quote::{Enrichment, PrevDay};
use tickwire::analyzers::shard::{Checkpoint, ShardConfig, ShardState};
use tickwire::analyzers::top_trades::widgets;
use tickwire::massive::frame::route_frame;
use tickwire::massive::{parse_frame, Market};
use tickwire::store::CacheWrite;
use tickwire::token::{self, Claims};

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

/// Numbers an analyzer divides by, multiplies or compares: zero, negative, tiny, huge and
/// ordinary ones.
fn arb_number() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        Just(-1.0),
        Just(f64::MIN_POSITIVE),
        Just(1e300),
        Just(-1e300),
        Just(f64::MAX),
        0.01f64..1000.0,
        any::<f64>().prop_filter("JSON has no NaN or infinity", |f| f.is_finite()),
    ]
}

/// Event times around one market day (2026-03-04, pre-market to after-hours and the next
/// day's reset), and now and then an absurd one.
fn arb_time() -> impl Strategy<Value = i64> {
    const DAY_START: i64 = 1_772_614_800_000; // 2026-03-04 04:00 ET
    prop_oneof![
        8 => (0i64..26 * 3_600_000).prop_map(|o| DAY_START + o),
        1 => any::<i64>(),
        1 => Just(0i64),
    ]
}

/// Well-formed Massive stock events (they decode), carrying the numbers and times above, for
/// a few symbols, so that one symbol sees several of them.
fn arb_stock_event() -> impl Strategy<Value = Value> {
    let sym = prop::sample::select(vec!["AAA", "BBB", "C.D", "X"]);
    let ev = prop::sample::select(vec!["A", "AM", "T", "Q", "LULD"]);
    (
        ev,
        sym,
        prop::collection::vec(arb_number(), 8),
        arb_time(),
        any::<bool>(),
    )
        .prop_map(|(ev, sym, n, t, with_op)| match ev {
            "A" | "AM" => {
                let mut a = json!({
                    "ev": ev, "sym": sym, "v": n[0], "av": n[1], "vw": n[2], "o": n[3],
                    "c": n[4], "h": n[5], "l": n[6], "a": n[7], "z": 10,
                    "s": t.saturating_sub(1000), "e": t,
                });
                if with_op {
                    a["op"] = json!(n[3]);
                }
                a
            }
            "T" => json!({"ev": "T", "sym": sym, "i": "1", "x": 4, "p": n[0], "s": n[1], "t": t, "q": 1, "z": 3}),
            "Q" => json!({"ev": "Q", "sym": sym, "bx": 1, "bp": n[0], "bs": n[1], "ax": 2, "ap": n[2], "as": n[3], "t": t, "q": 2, "z": 3}),
            _ => json!({"ev": "LULD", "T": sym, "h": n[0], "l": n[1], "i": [], "z": 3, "t": t, "q": 3}),
        })
}

/// What enrichment may bring back from REST: nothing, zeros, or any numbers.
fn arb_enrichment() -> impl Strategy<Value = Enrichment> {
    (any::<bool>(), prop::collection::vec(arb_number(), 8)).prop_map(|(prev, n)| Enrichment {
        prev_day: prev.then_some(PrevDay {
            o: n[0],
            h: n[1],
            l: n[2],
            c: n[3],
            v: n[4],
            vw: n[5],
        }),
        avg_volume: n[6],
        free_float: n[7],
    })
}

/// Every value a shard writes is JSON, whatever numbers it was fed.
fn assert_json_writes(out: &[CacheWrite]) -> Result<(), TestCaseError> {
    for w in out {
        prop_assert!(
            serde_json::from_slice::<Value>(&w.value).is_ok(),
            "{} is not JSON: {}",
            w.key,
            String::from_utf8_lossy(&w.value)
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    /// The analyzers take any sequence of decodable events, with enrichment arriving
    /// between them, and only ever write JSON: no panic on a zero open, an overflowing
    /// volume or a bar from another century. The leaderboards, the top-trades widgets and a
    /// checkpoint's round trip into a fresh shard hold up too.
    #[test]
    fn analyzers_take_any_numbers_and_times(
        events in prop::collection::vec((arb_stock_event(), prop::option::of(arb_enrichment())), 1..40),
    ) {
        let cfg = ShardConfig {
            raw: "quotes,luld,agg,trades,unknown".parse().unwrap(),
            top_trades: true,
            ..ShardConfig::default()
        };
        let mut shard = ShardState::new(cfg.clone());
        let mut out = Vec::new();
        for (i, (event, enrichment)) in events.iter().enumerate() {
            let raw = Bytes::from(event.to_string());
            // An absurd time is refused as ambiguous (and kept under `unknown`); the rest apply.
            let _ = shard.apply_raw(Market::Stocks, i, &raw, 1, &mut out);
            if let (Some(en), Some(sym)) = (enrichment, event.get("sym").and_then(Value::as_str)) {
                shard.enriched(sym, *en, &mut out);
            }
        }
        assert_json_writes(&out)?;
        if let Some(board) = shard.board() {
            let board = ShardBoard::decode(&board.encode()).expect("a board survives its round trip");
            for json in rank(&[board]) {
                prop_assert!(serde_json::from_slice::<Value>(&json).is_ok());
            }
        }
        for (_, json) in widgets(&shard.trade_stats(), "2026-03-04T10:00:00-05:00") {
            prop_assert!(serde_json::from_slice::<Value>(&json).is_ok());
        }
        if let Some(cp) = shard.checkpoint() {
            let cp = Checkpoint::decode(&cp.encode()).expect("a checkpoint survives its round trip");
            let mut fresh = ShardState::new(cfg);
            fresh.rehydrate(cp);
            out.clear();
            for (i, (event, _)) in events.iter().enumerate() {
                let raw = Bytes::from(event.to_string());
                let _ = fresh.apply_raw(Market::Stocks, i, &raw, 1, &mut out);
            }
            assert_json_writes(&out)?;
        }
    }
}
