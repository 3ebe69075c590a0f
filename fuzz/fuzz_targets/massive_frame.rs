//! Fuzz target: a frame from the Massive socket, in every market, through both the listener's
//! route-only parse and the full parse. Neither may panic, and when both take the frame they
//! agree on how many elements it holds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tickwire::massive::frame::route_frame;
use tickwire::massive::{parse_frame, Market};

fuzz_target!(|data: &[u8]| {
    let routes = route_frame(data);
    for m in Market::ALL {
        if let (Ok(full), Ok(routes)) = (parse_frame(m, data), &routes) {
            assert_eq!(full.events.len() + full.errors.len(), routes.len());
        }
    }
});
