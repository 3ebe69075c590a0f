//! Fuzz target: whatever a client presents as its access token is refused (it cannot carry
//! this secret's signature), and never panics the verifier.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tickwire::token::verify;

fuzz_target!(|text: &str| {
    assert!(verify(text, b"fuzz-secret", 1_772_650_000).is_err());
});
