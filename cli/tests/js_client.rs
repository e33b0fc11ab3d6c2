//! The JavaScript client's Node tests (`clients/js/test/*.test.mjs`) against
//! this build's `session-filter server`: runs `npm ci` in `clients/js` when
//! its `node_modules` is missing, then `node --test`.
//!
//! Needs Node.js 20 or later. Without it the test is skipped with a note,
//! except under CI (`CI=true`), where it fails.

use std::io::Write;
use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_session-filter");

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn skip(message: &str) {
    assert!(!under_ci(), "{message}");
    // Straight to stderr: the test harness would hide an eprintln.
    let _ = writeln!(std::io::stderr(), "SKIPPED: {message}");
}

/// Node's major version, if `node` runs.
fn node_major() -> Option<u32> {
    let out = Command::new("node").arg("--version").output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .trim_start_matches('v')
        .split('.')
        .next()?
        .parse()
        .ok()
}

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
    if !dir.join("node_modules/ws").is_dir() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status();
        match status {
            Ok(status) if status.success() => {}
            Ok(status) => return skip(&format!("npm ci in {} failed: {status}", dir.display())),
            Err(e) => return skip(&format!("npm ci in {} could not run: {e}", dir.display())),
        }
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
