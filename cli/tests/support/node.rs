//! Node.js for the tests that run JavaScript (`console.rs`, `js_client.rs`):
//! its version, `npm ci`, and skipping with a note when it is missing
//! (a failure under CI).

use std::io::Write;
use std::path::Path;
use std::process::Command;

pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

pub fn skip(message: &str) {
    assert!(!under_ci(), "{message}");
    // Straight to stderr: the test harness would hide an eprintln.
    let _ = writeln!(std::io::stderr(), "SKIPPED: {message}");
}

/// Node's major version, if `node` runs.
pub fn node_major() -> Option<u32> {
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

/// `npm ci` in `dir` unless `dir/node_modules/package` is there; an error says why not.
pub fn npm_ci(dir: &Path, package: &str) -> Result<(), String> {
    if dir.join("node_modules").join(package).is_dir() {
        return Ok(());
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .status()
        .map_err(|e| format!("npm ci in {} could not run: {e}", dir.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("npm ci in {} failed: {status}", dir.display()))
    }
}
