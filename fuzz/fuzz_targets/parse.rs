//! Any bytes that are UTF-8, as a filter: parsing never panics, errors are
//! well placed, and the limits (default and small) are exact.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(input) = std::str::from_utf8(data) {
        session_filter_fuzz::check_parse(input);
        if cfg!(feature = "length-cuts") {
            session_filter_fuzz::check_length_cuts(input);
        }
    }
});
