//! Fuzz target: a text frame from a WDS client, read as protocol v1 and as v2. Either a
//! request or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tickwire::actors::wds::protocol::{parse_v1, parse_v2};

fuzz_target!(|text: &str| {
    let _ = parse_v1(text);
    let _ = parse_v2(text);
});
