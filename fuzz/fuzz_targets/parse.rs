//! Any bytes that are UTF-8, as a filter: parsing never panics, errors are
//! well placed, the limits (default and small) are exact, and a filter cut
//! by the length limit alone is reported as too long.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(input) = std::str::from_utf8(data) {
        session_filter_fuzz::check_parse(input);
        session_filter_fuzz::check_length_cuts(input);
    }
});
