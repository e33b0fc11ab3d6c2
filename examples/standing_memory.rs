//! Measures what a `FilterSet` costs per registered filter: insert time
//! (parse and compile included) and resident memory, for the standing
//! benchmark's workload (`benches/common/standing.rs`):
//! `cargo run --release --example standing_memory [FILTERS]` (default
//! 1 000 000).
//!
//! The filter texts are generated before the first reading of the resident
//! set (Linux `/proc/self/statm`), so they are not counted; what is counted
//! is the set: its compiled programs (each keeps its parsed filter for
//! printing), the interned strings they hold, ids and the reverse index.

#[path = "../benches/common/standing.rs"]
mod workload;

use std::time::Instant;

use session_filter::{FilterSet, Program};

fn resident_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// CPU time this process has used (user and system), from
/// `/proc/self/stat`: on a shared machine, fairer than the wall clock.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let texts: Vec<String> = workload::filters(n).iter().map(|c| c.text()).collect();

    // Parse and compile alone, dropped again, for the split of the time.
    let (start, cpu) = (Instant::now(), cpu_seconds());
    for text in &texts {
        drop(Program::compile(text).expect("workload filters are valid"));
    }
    let compile = start.elapsed();
    let compile_cpu = cpu_seconds().zip(cpu).map(|(b, a)| b - a);

    let before = resident_bytes().unwrap_or(0);
    let (start, cpu) = (Instant::now(), cpu_seconds());
    let mut set = FilterSet::new();
    for (id, text) in texts.iter().enumerate() {
        set.insert(id as u32, text)
            .expect("workload filters are valid");
    }
    let insert = start.elapsed();
    let insert_cpu = cpu_seconds().zip(cpu).map(|(b, a)| b - a);
    let after = resident_bytes().unwrap_or(0);

    let per = |d: std::time::Duration| d.as_secs_f64() * 1e9 / n as f64;
    println!(
        "{n} filters ({} distinct) of the standing workload:",
        set.distinct_filters()
    );
    let per_cpu = |s: Option<f64>| s.map_or(f64::NAN, |s| s * 1e9 / n as f64);
    println!(
        "  insert:   {:.0} ns per filter, parse and compile included ({:.0} ns of it parse and compile alone)",
        per(insert),
        per(compile)
    );
    println!(
        "            {:.0} ns of CPU time per filter ({:.0} ns parse and compile alone)",
        per_cpu(insert_cpu),
        per_cpu(compile_cpu)
    );
    println!(
        "  resident: {:.0} bytes per registered filter ({:.1} MiB in all)",
        after.saturating_sub(before) as f64 / n as f64,
        after.saturating_sub(before) as f64 / (1024.0 * 1024.0)
    );
    // Keep the set alive up to the reading.
    assert_eq!(set.len(), n);
}
