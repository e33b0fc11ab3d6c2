//! Any text as one inbound WebSocket message of the session server: the
//! JSON-RPC framing, `open`'s params or the method's typed params, and the
//! permission check (SPEC 11.1, 11.4) must never panic, and every answer
//! is one of the error codes the spec lists, in its order of checks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use session_filter_server::{fuzz_decode, Decoded};

/// SPEC 11.1's codes that can come before a method runs.
const CODES: [i64; 6] = [-32700, -32600, -32601, -32602, 103, 111];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match fuzz_decode(text) {
        Decoded::Notification => {}
        Decoded::Rejected(code) => {
            assert!(matches!(code, -32700 | -32600 | -32602), "{text:?}: {code}")
        }
        Decoded::Request { method, codes } => {
            for code in &codes {
                assert!(*code == 0 || CODES.contains(code), "{text:?}: {code}");
            }
            // Params are checked before permissions: a params error is the
            // same whatever the roles.
            if codes.iter().any(|c| *c < 0 || *c == 111) {
                assert!(codes.iter().all(|c| *c == codes[0]), "{method}: {codes:?}");
            }
            // `open` and methods that need nothing are never denied.
            if method == "open" || method == "close" || method == "permissions" {
                assert!(!codes.contains(&103), "{method}: {codes:?}");
            }
        }
    }
});
