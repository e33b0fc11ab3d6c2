//! Parses (or compiles) a filter in a loop, for profilers (perf, callgrind).
//!
//! `cargo run --release --example parse_loop -- [ITERATIONS] [--compile] [FILTER | --conformance]`
//!
//! Without FILTER it parses the `mixed` filter of the benchmarks; with
//! `--conformance`, each iteration parses every valid filter of
//! `tests/conformance/filters.jsonl` once. `--compile` compiles to a program
//! (text → program, as the `compile` benchmark does) instead of parsing.

#[path = "../benches/common/mod.rs"]
mod common;

use session_filter::{Filter, Program};

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let compile = args.iter().any(|a| a == "--compile");
    args.retain(|a| a != "--compile");
    let mut args = args.into_iter();
    let n: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let filters = match args.next() {
        Some(flag) if flag == "--conformance" => common::conformance_filters(),
        Some(filter) => vec![filter],
        None => vec![common::MIXED.filter.to_owned()],
    };
    let start = std::time::Instant::now();
    let mut ok = 0usize;
    for _ in 0..n {
        for f in &filters {
            let f = std::hint::black_box(f);
            ok += usize::from(if compile {
                Program::compile(f).is_ok()
            } else {
                Filter::parse(f).is_ok()
            });
        }
    }
    let per = start.elapsed().as_secs_f64() / (n * filters.len()) as f64;
    eprintln!(
        "{ok}/{} ok, {:.3} µs per {}",
        n * filters.len(),
        per * 1e6,
        if compile { "compile" } else { "parse" }
    );
}
