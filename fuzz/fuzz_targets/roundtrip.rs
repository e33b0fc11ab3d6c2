//! Whatever parses prints a canonical form that parses back to an equal
//! filter and prints identically.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(input) = std::str::from_utf8(data) {
        session_filter_fuzz::check_roundtrip(input);
    }
});
