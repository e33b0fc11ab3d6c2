//! What the CLI's integration tests share: the binary, running it, its
//! output as text, and temporary files. Each test file includes it with
//! `mod support;`.

// Each test file uses a part of it.
#![allow(dead_code)]

pub mod nats;
pub mod node;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The `session-filter` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_session-filter");

/// Starts the binary with `args`, its standard streams piped.
pub fn spawn(args: &[&str]) -> Child {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs")
}

/// Runs the binary with `args`, writing `stdin` (if any) to its standard
/// input, and waits for it.
pub fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = spawn(args);
    {
        let mut pipe = child.stdin.take().expect("stdin");
        // The tool may exit before reading everything; that is fine.
        let _ = pipe.write_all(stdin.unwrap_or_default());
    }
    child.wait_with_output().expect("the binary finishes")
}

/// Runs the binary and returns (exit code, stdout, stderr).
pub fn cli(args: &[&str]) -> (i32, String, String) {
    let out = run(args, None);
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

/// Output as text; the tool writes only UTF-8.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8 output")
}

/// A new path in the tests' temporary directory, unique in this run:
/// `STEM-PID-N.EXTENSION`.
pub fn temp_path(stem: &str, extension: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{stem}-{}-{n}.{extension}", std::process::id()))
}

/// A new file of these lines (each ended by a newline) in the tests'
/// temporary directory.
pub fn temp_lines(stem: &str, lines: &[String]) -> PathBuf {
    let path = temp_path(stem, "jsonl");
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(&path, text).expect("a temporary file");
    path
}
