//! Parse rate: text → AST over the conformance filters.
//!
//! `cargo bench --bench parse`. Throughput is reported in bytes of filter
//! text; the per-filter time of the `mixed` shape is the figure the
//! `compile` group of the throughput suite builds on.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use session_filter::Filter;

/// The valid filters of the crate's copy of `filters.jsonl`.
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

const MIXED: &str = "not (Department is 'Accounts' or Department is 'Payroll') \
                     and $Country in ['UK','DE','FR'] and hasRoles ['trader']";

fn parse(c: &mut Criterion) {
    let filters = conformance_filters();
    assert!(filters.iter().all(|f| Filter::parse(f).is_ok()));
    let bytes: usize = filters.iter().map(String::len).sum();
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function(BenchmarkId::new("conformance", filters.len()), |b| {
        b.iter(|| {
            for f in &filters {
                black_box(Filter::parse(black_box(f)).ok());
            }
        })
    });
    group.throughput(Throughput::Bytes(MIXED.len() as u64));
    group.bench_function(BenchmarkId::new("mixed", MIXED.len()), |b| {
        b.iter(|| black_box(Filter::parse(black_box(MIXED)).ok()))
    });
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
