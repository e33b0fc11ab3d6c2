//! Parses a filter in a loop, for profilers (perf, callgrind).
//!
//! `cargo run --release --example parse_loop -- [ITERATIONS] [FILTER | --conformance]`
//!
//! Without FILTER it parses the `mixed` filter of `benches/parse.rs`; with
//! `--conformance`, each iteration parses every valid filter of
//! `tests/conformance/filters.jsonl` once.

use session_filter::Filter;

const MIXED: &str = "not (Department is 'Accounts' or Department is 'Payroll') \
                     and $Country in ['UK','DE','FR'] and hasRoles ['trader']";

fn conformance_filters() -> Vec<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/conformance/filters.jsonl"
    );
    let text = std::fs::read_to_string(path).expect("tests/conformance/filters.jsonl");
    text.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|case| case.get("error").is_none())
        .filter_map(|case| case["filter"].as_str().map(String::from))
        .collect()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let filters = match args.next() {
        Some(flag) if flag == "--conformance" => conformance_filters(),
        Some(filter) => vec![filter],
        None => vec![MIXED.to_owned()],
    };
    let start = std::time::Instant::now();
    let mut ok = 0usize;
    for _ in 0..n {
        for f in &filters {
            ok += usize::from(Filter::parse(std::hint::black_box(f)).is_ok());
        }
    }
    let per = start.elapsed().as_secs_f64() / (n * filters.len()) as f64;
    eprintln!(
        "{ok}/{} ok, {:.3} µs per parse",
        n * filters.len(),
        per * 1e6
    );
}
