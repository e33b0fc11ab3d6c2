//! Parse rate: text → AST, the hand-written parser against the pest grammar
//! it replaced (run as the tests' oracle, `fuzz/src/oracle.rs`).
//!
//! `cargo bench --bench parse`. Each shape of the throughput suite, the
//! crate's conformance filters (`conformance`, all of them per iteration)
//! and a `deep` filter are parsed by two engines, `pest` and `hand`:
//! `parse/ENGINE/SHAPE`. Throughput is in bytes of filter text.

mod common;
#[allow(dead_code)]
#[path = "../fuzz/src/oracle.rs"]
mod oracle;

use common::{conformance_filters, SHAPES};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use session_filter::Filter;

fn parse(c: &mut Criterion) {
    let mut inputs: Vec<(&str, Vec<String>)> = SHAPES
        .iter()
        .map(|s| (s.id, vec![s.filter.to_owned()]))
        .collect();
    inputs.push(("conformance", conformance_filters()));
    let deep = format!(
        "{}Department is 'Accounts'{}",
        "not (".repeat(100),
        ")".repeat(100)
    );
    inputs.push(("deep", vec![deep]));

    let mut group = c.benchmark_group("parse");
    for (shape, filters) in &inputs {
        for f in filters {
            let hand = Filter::parse(f).expect("parses");
            assert_eq!(oracle::parse(f).expect("pest parses"), hand, "{f}");
        }
        let bytes: usize = filters.iter().map(String::len).sum();
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_function(BenchmarkId::new("pest", shape), |b| {
            b.iter(|| {
                for f in filters {
                    black_box(oracle::parse(black_box(f)).ok());
                }
            })
        });
        group.bench_function(BenchmarkId::new("hand", shape), |b| {
            b.iter(|| {
                for f in filters {
                    black_box(Filter::parse(black_box(f)).ok());
                }
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = parse
}
criterion_main!(benches);
