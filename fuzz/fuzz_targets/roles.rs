//! Any string through the roles utilities: `string_to_roles` against a
//! reference, `roles_to_string` round trips, `escape`/`unescape`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        session_filter_fuzz::check_roles(s);
    }
});
