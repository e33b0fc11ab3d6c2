//! Measures the memory a store takes per session, with and without the
//! index: `cargo run --release --example memory [SESSIONS]`.
//!
//! Each configuration runs in a child process of its own and reports the
//! growth of its resident set (Linux `/proc/self/status`), so one does not
//! inherit the other's freed memory.

use std::process::Command;

use session_filter::{SessionStore, StoreOptions};

fn rss_bytes() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn measure(indexed: bool, n: usize) {
    let before = rss_bytes().unwrap_or(0);
    let store = SessionStore::with_options(StoreOptions::new().index(indexed));
    for i in 0..n as u64 {
        store
            .insert(session_filter::demo::properties(i))
            .expect("demo sessions are valid");
    }
    let after = rss_bytes().unwrap_or(0);
    println!(
        "{} {:.0} {:.0}",
        if indexed { "indexed" } else { "plain" },
        after.saturating_sub(before) as f64 / n as f64,
        store.index_bytes() as f64 / n as f64
    );
    assert_eq!(store.len(), n);
}

fn main() {
    let mut args = std::env::args().skip(1);
    let first = args.next();
    if let Some(mode @ ("plain" | "indexed")) = first.as_deref() {
        let n = args
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1_000_000);
        measure(mode == "indexed", n);
        return;
    }
    let n: usize = first.and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let exe = std::env::current_exe().expect("own path");
    let mut results = Vec::new();
    for mode in ["plain", "indexed"] {
        let out = Command::new(&exe)
            .args([mode, &n.to_string()])
            .output()
            .expect("child runs");
        let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let fields: Vec<f64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        results.push((mode, fields));
    }
    println!("{n} demo sessions (13 properties, 0-5 roles each):");
    let plain = results[0].1.first().copied().unwrap_or(0.0);
    let indexed = results[1].1.first().copied().unwrap_or(0.0);
    let estimate = results[1].1.get(1).copied().unwrap_or(0.0);
    println!("  store without index: {plain:.0} bytes per session (resident)");
    println!("  store with index:    {indexed:.0} bytes per session (resident)");
    println!(
        "  index overhead:      {:.0} bytes per session (resident), {estimate:.0} by the index's own estimate",
        indexed - plain
    );
}
