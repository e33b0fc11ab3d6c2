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

use std::path::Path;
use std::process::Command;

use support::node::{node_major, npm_ci, skip};
use support::BIN;

mod support;

const CHROMIUM: &str = "/usr/bin/chromium";

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
