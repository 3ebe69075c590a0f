//! Fuzz target: bytes read back from the store as a shard checkpoint or as a shard's
//! leaderboard candidates (another node wrote them; they may be corrupt or from another
//! version). Decoding refuses or succeeds; what decodes is rehydrated into a shard, which
//! then takes a bar and must still write only JSON and rank JSON boards.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tickwire::massive::Market;
use tickwire::analyzers::leaderboard::{rank, ShardBoard};
use tickwire::analyzers::shard::{Checkpoint, ShardConfig, ShardState};

const BAR: &str = r#"{"ev":"A","sym":"AAA","v":100,"av":5000,"op":10,"vw":10.2,"o":10.1,"c":10.3,"h":10.4,"l":10.0,"a":10.2,"z":10,"s":1772634600000,"e":1772634601000}"#;

fn json(b: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(b).is_ok()
}

fuzz_target!(|data: &[u8]| {
    if let Ok(board) = ShardBoard::decode(data) {
        for b in rank(&[board]) {
            assert!(json(&b));
        }
    }
    if let Ok(cp) = Checkpoint::decode(data) {
        let mut shard = ShardState::new(ShardConfig::default());
        shard.rehydrate(cp);
        let mut out = Vec::new();
        let _ = shard.apply_raw(
            Market::Stocks,
            0,
            &Bytes::from_static(BAR.as_bytes()),
            1,
            &mut out,
        );
        for w in &out {
            assert!(json(&w.value), "{} is not JSON", w.key);
        }
        if let Some(board) = shard.board() {
            for b in rank(&[board]) {
                assert!(json(&b));
            }
        }
    }
});
