//! The shared smoke test of the session protocol (`conformance/server/
//! smoke.py`), run against this build's `session-filter server`.
//!
//! It reads `../shared/conformance/server/smoke.py` when the checkout has
//! the shared folder beside it, and the repository's copy in `tests/conformance/server/`
//! when it has not. The script needs Python 3.11+ and installs its two packages into
//! a virtual environment of its own on first use; without Python the test
//! says so and passes, unless `CI` is set.

use std::path::PathBuf;
use std::process::Command;

fn script() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let shared = manifest.join("../../shared/conformance/server/smoke.py");
    if shared.exists() {
        return shared;
    }
    eprintln!("../shared is absent: running the copy in tests/conformance/server/");
    manifest.join("../tests/conformance/server/smoke.py")
}

#[test]
fn smoke_test_of_the_session_protocol_passes() {
    let python = Command::new("python3").arg("--version").output();
    if python.is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 is needed for the smoke test"
        );
        eprintln!("SKIPPED: no python3");
        return;
    }
    let out = Command::new("python3")
        .arg(script())
        .args(["--", env!("CARGO_BIN_EXE_session-filter"), "server"])
        .output()
        .expect("run smoke.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "smoke.py failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}
