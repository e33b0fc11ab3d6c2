//! The console in a real headless Chromium: starts two servers and runs
//! `cli/tests/browser/test.mjs` (playwright-core) against them.
//!
//! Needs Debian's `chromium` at `/usr/bin/chromium`, `node`, and
//! `npm ci` in `cli/tests/browser`. When one is missing the test is
//! skipped with a note on how to install it, except under CI (`CI=true`),
//! where it fails.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::Command;

use support::serve::Server;
use support::BIN;

const CHROMIUM: &str = "/usr/bin/chromium";

/// What is missing to run the browser tests, with how to install it.
fn missing(dir: &Path) -> Vec<String> {
    let mut missing = Vec::new();
    if !Path::new(CHROMIUM).exists() {
        missing.push(format!("{CHROMIUM} (apt-get install -y chromium)"));
    }
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|out| out.status.success()) {
        missing.push("node (Node.js 18 or later)".into());
    }
    if !dir.join("node_modules/playwright-core").is_dir() {
        missing.push(format!(
            "playwright-core (npm ci in {}; no browser download is needed)",
            dir.display()
        ));
    }
    missing
}

#[test]
fn the_console_works_in_headless_chromium() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let missing = missing(&dir);
    if !missing.is_empty() {
        let message = format!("browser tests need {}", missing.join(", "));
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{message}");
        }
        // Straight to stderr: the test harness would hide an eprintln.
        let _ = writeln!(std::io::stderr(), "SKIPPED: {message}");
        return;
    }
    // The population `select` uses without FILE, so counts compare with
    // the CLI; and a smaller one with churn, for the live watches.
    let serve = Server::start(&["--allow-writes"]);
    let churn = Server::start(&["--demo-sessions", "2000", "--churn", "300"]);
    let status = Command::new("node")
        .arg(dir.join("test.mjs"))
        .current_dir(&dir)
        .env("SERVE_URL", serve.url())
        .env("CHURN_URL", churn.url())
        .env("SESSION_FILTER_BIN", BIN)
        .env("SCREENSHOT", dir.join("console.png"))
        .status()
        .expect("node runs");
    assert!(status.success(), "the browser tests failed: {status}");
}
