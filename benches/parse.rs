//! Parse rate: text → AST over the conformance filters.
//!
//! `cargo bench --bench parse`. Throughput is reported in bytes of filter
//! text; the per-filter time of the `mixed` shape is the figure the
//! `compile` group of the throughput suite builds on.

mod common;

use common::{conformance_filters, MIXED};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use session_filter::Filter;

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
    group.throughput(Throughput::Bytes(MIXED.filter.len() as u64));
    group.bench_function(BenchmarkId::new("mixed", MIXED.filter.len()), |b| {
        b.iter(|| black_box(Filter::parse(black_box(MIXED.filter)).ok()))
    });
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
