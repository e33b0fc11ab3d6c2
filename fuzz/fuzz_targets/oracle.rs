//! Any bytes that are UTF-8, as a filter: the hand-written parser agrees
//! with the pest grammar run as an oracle (the same tree and spans, or the
//! same error), with the default limits and with small ones.
#![no_main]

use libfuzzer_sys::fuzz_target;
use session_filter::Limits;

fuzz_target!(|data: &[u8]| {
    if let Ok(input) = std::str::from_utf8(data) {
        session_filter_fuzz::check_oracle(input, &Limits::default());
        session_filter_fuzz::check_oracle(input, &session_filter_fuzz::small_limits());
    }
});
