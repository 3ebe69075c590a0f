//! Fuzz target: lines of input as the events of one stocks shard, each applied as the
//! processor applies a queued event, with every raw route and top trades on. No panic, and
//! every value written, every leaderboard and every top-trades widget is JSON; the state's
//! checkpoint survives its round trip.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tickwire::massive::Market;
use tickwire::analyzers::leaderboard::rank;
use tickwire::analyzers::shard::{Checkpoint, ShardConfig, ShardState};
use tickwire::analyzers::top_trades::widgets;

fn json(b: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(b).is_ok()
}

fuzz_target!(|data: &[u8]| {
    let mut shard = ShardState::new(ShardConfig {
        raw: "quotes,luld,agg,trades,unknown"
            .parse()
            .expect("known routes"),
        top_trades: true,
        ..ShardConfig::default()
    });
    let mut out = Vec::new();
    for (i, line) in data.split(|b| *b == b'\n').enumerate() {
        let raw = Bytes::copy_from_slice(line);
        let _ = shard.apply_raw(Market::Stocks, i, &raw, 1, &mut out);
    }
    for w in &out {
        // The `unknown` list keeps what did not decode as it came: not ours to vouch for.
        assert!(
            w.key == "unknown" || json(&w.value),
            "{} is not JSON",
            w.key
        );
    }
    if let Some(board) = shard.board() {
        for b in rank(&[board]) {
            assert!(json(&b));
        }
    }
    for (key, w) in widgets(&shard.trade_stats(), "2026-03-04T10:00:00-05:00") {
        assert!(json(&w), "{key} is not JSON");
    }
    if let Some(cp) = shard.checkpoint() {
        Checkpoint::decode(&cp.encode()).expect("a checkpoint survives its round trip");
    }
});
