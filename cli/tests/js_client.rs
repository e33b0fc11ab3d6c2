//! The JavaScript client's Node tests (`clients/js/test/*.test.mjs`) against
//! this build's `session-filter server`: runs `npm ci` in `clients/js` when
//! its `node_modules` is missing, then `node --test`.
//!
//! Needs Node.js 20 or later. Without it the test is skipped with a note,
//! except under CI (`CI=true`), where it fails.

use std::path::Path;
use std::process::Command;

use support::node::{node_major, npm_ci, skip};
use support::BIN;

mod support;

#[test]
fn the_javascript_client_passes_its_node_tests() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/js");
    match node_major() {
        Some(major) if major >= 20 => {}
        Some(major) => {
            return skip(&format!(
                "the JS client tests need Node.js 20 or later, found {major}"
            ))
        }
        None => return skip("the JS client tests need Node.js 20 or later (node was not found)"),
    }
    if let Err(message) = npm_ci(&dir, "ws") {
        return skip(&message);
    }
    let mut tests: Vec<_> = std::fs::read_dir(dir.join("test"))
        .expect("clients/js/test exists")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.to_string_lossy().ends_with(".test.mjs"))
        .collect();
    tests.sort();
    assert!(!tests.is_empty(), "no clients/js/test/*.test.mjs");
    let status = Command::new("node")
        .arg("--test")
        .args(&tests)
        .current_dir(&dir)
        .env("SESSION_FILTER_BIN", BIN)
        .status()
        .expect("node runs");
    assert!(
        status.success(),
        "the JS client's Node tests failed: {status}"
    );
}
