//! Measures the memory a store takes per session, with and without the
//! index, and where it goes: `cargo run --release --example memory [SESSIONS]`.
//!
//! Each configuration runs in a child process of its own and reports the
//! growth of its resident set (Linux `/proc/self/status`), so one does not
//! inherit the other's freed memory. A counting allocator gives the heap the
//! store asked for and what the allocator adds to it; the store's and the
//! interner's own reports (`SessionStore::memory`, `interner_memory`) split
//! it by part.

use std::alloc::{GlobalAlloc, Layout, System};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use session_filter::{interner_memory, SessionStore, StoreOptions};

/// Counts live heap blocks, the bytes asked for, and the bytes glibc's
/// malloc takes for them (an 8-byte header, 16-byte granules, 32 at least).
struct Counting;

static BLOCKS: AtomicUsize = AtomicUsize::new(0);
static ASKED: AtomicUsize = AtomicUsize::new(0);
static TAKEN: AtomicUsize = AtomicUsize::new(0);

fn chunk(size: usize) -> usize {
    ((size + 8 + 15) & !15).max(32)
}

fn count(layout: Layout, sign: isize) {
    let (asked, taken) = (layout.size(), chunk(layout.size()));
    if sign > 0 {
        BLOCKS.fetch_add(1, Relaxed);
        ASKED.fetch_add(asked, Relaxed);
        TAKEN.fetch_add(taken, Relaxed);
    } else {
        BLOCKS.fetch_sub(1, Relaxed);
        ASKED.fetch_sub(asked, Relaxed);
        TAKEN.fetch_sub(taken, Relaxed);
    }
}

// SAFETY: forwards every call to the system allocator unchanged; the
// counters are atomics, which allocate nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout, 1);
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(layout, -1);
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(layout, -1);
        // A layout of the new size with the same alignment: valid, as the
        // caller guarantees for `realloc`.
        if let Ok(new) = Layout::from_size_align(new_size, layout.align()) {
            count(new, 1);
        }
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn rss_bytes() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The figures of one configuration, per session, in the order of `ROWS`.
const ROWS: [&str; 17] = [
    "resident (RSS growth)",
    "heap asked for",
    "allocator headers and rounding",
    "resident - heap taken (untouched or kept pages)",
    "session records (slot array)",
    "  of which: record size, bytes",
    "  of which: slots per live session",
    "session lists outside the record",
    "$SessionId -> slot map",
    "live sets and free lists",
    "interner: slots",
    "interner: hash tables",
    "interner: text blocks",
    "interner: strings per session",
    "index: hash tables",
    "index: postings",
    "heap blocks per session",
];

fn measure(indexed: bool, n: usize) {
    let rss0 = rss_bytes().unwrap_or(0);
    let (blocks0, asked0, taken0) = (
        BLOCKS.load(Relaxed),
        ASKED.load(Relaxed),
        TAKEN.load(Relaxed),
    );
    let intern0 = interner_memory();
    let store = SessionStore::with_options(StoreOptions::new().index(indexed));
    for i in 0..n as u64 {
        store
            .insert(session_filter::demo::properties(i))
            .expect("demo sessions are valid");
    }
    let rss = rss_bytes().unwrap_or(0).saturating_sub(rss0) as f64;
    let blocks = BLOCKS.load(Relaxed).saturating_sub(blocks0) as f64;
    let asked = ASKED.load(Relaxed).saturating_sub(asked0) as f64;
    let taken = TAKEN.load(Relaxed).saturating_sub(taken0) as f64;
    let m = store.memory();
    let im = interner_memory();
    let d = |a: usize, b: usize| a.saturating_sub(b) as f64;
    let figures = [
        rss,
        asked,
        taken - asked,
        rss - taken,
        m.records as f64,
        (m.records / m.slots.max(1)) as f64 * n as f64,
        m.slots as f64,
        m.session_heap as f64,
        m.ids as f64,
        (m.live + m.free) as f64,
        d(im.slots, intern0.slots) + d(im.free, intern0.free),
        d(im.table, intern0.table),
        d(im.text, intern0.text),
        d(im.strings, intern0.strings),
        m.index_tables as f64,
        m.index_postings as f64,
        blocks,
    ];
    let line: Vec<String> = figures
        .iter()
        .map(|f| format!("{:.2}", f / n as f64))
        .collect();
    println!(
        "{} {}",
        if indexed { "indexed" } else { "plain" },
        line.join(" ")
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
    let mut results: Vec<Vec<f64>> = Vec::new();
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
        results.push(fields);
    }
    let at = |r: usize, i: usize| results[r].get(i).copied().unwrap_or(0.0);
    let (plain, indexed) = (at(0, 0), at(1, 0));
    println!("{n} demo sessions (13 properties, 0-5 roles each):");
    println!("  store without index: {plain:.0} bytes per session (resident)");
    println!("  store with index:    {indexed:.0} bytes per session (resident)");
    println!(
        "  index overhead:      {:.0} bytes per session (resident)",
        indexed - plain
    );
    println!();
    println!("Where the bytes of a session go (per session; parts by capacity):");
    println!("  {:<50} {:>9} {:>9}", "", "plain", "indexed");
    for (i, row) in ROWS.iter().enumerate() {
        let precision = if row.contains("per ") { 2 } else { 0 };
        println!(
            "  {row:<50} {:>9.p$} {:>9.p$}",
            at(0, i),
            at(1, i),
            p = precision
        );
    }
}
