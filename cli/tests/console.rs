//! The console (`clients/js/console`) in Debian's headless Chromium, driven by
//! playwright-core: runs `cli/tests/console/console.test.mjs` with
//! `node --test`, which starts this build's `session-filter server` itself.
//!
//! Needs `/usr/bin/chromium` and Node.js 20 or later; runs `npm ci` in
//! `cli/tests/console` and `clients/js` when their `node_modules` are
//! missing. When something is missing the test is skipped with a note on how
//! to install it, except under CI (`CI=true`), where it fails. It writes a
//! screenshot to `cli/tests/console/console.png` (not committed), or where
//! `SCREENSHOT` says: `SCREENSHOT=$PWD/docs/console.png` renews the README's.

use std::io::Write;
use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_session-filter");
const CHROMIUM: &str = "/usr/bin/chromium";

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

/// `npm ci` in `dir` unless `dir/node_modules/package` is there; an error says why not.
fn npm_ci(dir: &Path, package: &str) -> Result<(), String> {
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

#[test]
fn the_console_works_in_headless_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = root.join("cli/tests/console");
    if !Path::new(CHROMIUM).exists() {
        return skip(&format!(
            "the console tests need {CHROMIUM} (apt-get install -y chromium)"
        ));
    }
    if node_major().unwrap_or(0) < 20 {
        return skip("the console tests need Node.js 20 or later");
    }
    for (folder, package) in [
        (dir.clone(), "playwright-core"),
        (root.join("clients/js"), "ws"),
    ] {
        if let Err(message) = npm_ci(&folder, package) {
            return skip(&message);
        }
    }
    let status = Command::new("node")
        .args(["--test", "console.test.mjs"])
        .current_dir(&dir)
        .env("SESSION_FILTER_BIN", BIN)
        .env("CHROMIUM", CHROMIUM)
        .env(
            "SCREENSHOT",
            std::env::var_os("SCREENSHOT").unwrap_or_else(|| dir.join("console.png").into()),
        )
        .status()
        .expect("node runs");
    assert!(
        status.success(),
        "the console's browser tests failed: {status}"
    );
}
