//! The `store` group: `count` over a store of 1 000 000 demo sessions.
//!
//! `cargo bench --bench store`. Engines: `scan_serial` (every session, one
//! shard after another on one thread), `scan_parallel` (every session, shards
//! on the rayon pool) and `indexed` (the index planner, shards one after
//! another).
//! Shapes: `eq` and `in` (selective, on `$Principal`), `roles` (a selective
//! `hasRoles`) and `mixed` (broader).

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use session_filter::{Execution, Program, Session, SessionStore};

pub const STORE_SESSIONS: usize = 1_000_000;

pub const STORE_SHAPES: [(&str, &str); 4] = [
    ("eq", "$Principal is 'name42'"),
    (
        "in",
        "$Principal in ['name1', 'name7', 'name42', 'name99', 'name500']",
    ),
    ("roles", "hasRoles ['auditor', 'guest', 'developer']"),
    ("mixed", common::MIXED.filter),
];

fn store(c: &mut Criterion) {
    let store = SessionStore::new();
    for i in 0..STORE_SESSIONS as u64 {
        store
            .insert_session(Session::new(session_filter::demo::properties(i)).unwrap())
            .unwrap();
    }
    let mut group = c.benchmark_group("store");
    for (shape, filter) in STORE_SHAPES {
        let program = Program::compile(filter).unwrap();
        let serial = store.count_with(&program, Execution::ScanSerial);
        assert_eq!(serial, store.count_with(&program, Execution::ScanParallel));
        assert_eq!(serial, store.count_with(&program, Execution::Indexed));
        eprintln!("store/{shape}: {serial} of {STORE_SESSIONS} sessions match {filter}");
        for (engine, execution) in [
            ("scan_serial", Execution::ScanSerial),
            ("scan_parallel", Execution::ScanParallel),
            ("indexed", Execution::Indexed),
        ] {
            group.bench_function(BenchmarkId::new(engine, shape), |b| {
                b.iter(|| store.count_with(black_box(&program), execution))
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config().sample_size(20);
    targets = store
}
criterion_main!(benches);
