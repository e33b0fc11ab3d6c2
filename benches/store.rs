//! Benchmarks of a store of 1 000 000 demo sessions: `cargo bench --bench store`.
//!
//! The `store` group: `count`. Engines: `scan_serial` (every session, one
//! shard after another on one thread), `scan_parallel` (every session, shards
//! on the rayon pool) and `indexed` (the index planner, shards one after
//! another).
//! Shapes: `eq` and `in` (selective, on `$Principal`), `roles` (a selective
//! `hasRoles`) and `mixed` (broader).
//!
//! The `fetch` group: page 1 (50 sessions) by `$StartTime` of a broad filter.
//! Engines: `fetch` (`SessionStore::fetch_compiled`: a bounded heap per
//! shard), `sort_all` (what a caller does without `fetch`: select the
//! matches, get each one's `$StartTime` by id, sort them all, take 50) and
//! `scan_sort_all` (a leaner full sort: every match's `$StartTime` and id
//! gathered in one `for_each_session` pass, all sorted, 50 taken). `fetch`
//! runs the shards in parallel, the `for_each_session` pass on one thread;
//! run with `RAYON_NUM_THREADS=1` to compare the algorithms alone.
//!
//! The `cache` group: `count` of a selective filter. Engines: `cached_text`
//! (the filter as text, through the store's filter cache), `compiled`
//! (`count_compiled` with a program compiled beforehand) and
//! `compile_each_time` (what a store without the cache does: parse and
//! compile, then count).

mod common;

use std::hint::black_box;
use std::sync::{Arc, OnceLock};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use session_filter::{Execution, FetchRequest, Program, Session, SessionStore};

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

/// A broad filter: about two sessions in three match.
pub const FETCH_FILTER: &str = "Status ne 'Closed'";

/// A selective filter, answered from the index.
pub const CACHE_FILTER: &str = "$Principal is 'name42'";

/// The demo store, built once for every group.
fn demo_store() -> &'static SessionStore {
    static STORE: OnceLock<SessionStore> = OnceLock::new();
    STORE.get_or_init(|| {
        let store = SessionStore::new();
        for i in 0..STORE_SESSIONS as u64 {
            store
                .insert_session(Session::new(session_filter::demo::properties(i)).unwrap())
                .unwrap();
        }
        store
    })
}

fn store(c: &mut Criterion) {
    let store = demo_store();
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

/// The first page by `$StartTime`, the way a caller without `fetch` would
/// get it: the matching ids, each one's `$StartTime`, all sorted.
fn sort_all(store: &SessionStore, program: &Program, page: usize) -> Vec<Arc<str>> {
    let mut all: Vec<(Arc<str>, Arc<str>)> = store
        .select_compiled(program)
        .into_iter()
        .filter_map(|id| {
            let start = store.get_session(&id)?.get("$StartTime")?;
            Some((start, Arc::from(id)))
        })
        .collect();
    all.sort_unstable();
    all.into_iter().take(page).map(|(_, id)| id).collect()
}

/// A leaner full sort: every match's sort value and id from one pass.
fn scan_sort_all(store: &SessionStore, program: &Program, page: usize) -> Vec<Arc<str>> {
    let mut all: Vec<(Arc<str>, Arc<str>)> = Vec::new();
    store.for_each_session(|s| {
        if program.matches(s) {
            if let (Some(start), Some(id)) = (s.get("$StartTime"), s.id()) {
                all.push((start, id));
            }
        }
    });
    all.sort_unstable();
    all.into_iter().take(page).map(|(_, id)| id).collect()
}

fn fetch(c: &mut Criterion) {
    let store = demo_store();
    let program = Program::compile(FETCH_FILTER).unwrap();
    let request = FetchRequest::new().order_by("$StartTime").limit(50);
    let page = store.fetch_compiled(&program, &request).unwrap();
    let ids: Vec<Arc<str>> = page
        .sessions
        .iter()
        .map(|s| Arc::from(s.id.as_str()))
        .collect();
    assert_eq!(ids, sort_all(store, &program, 50), "the same page");
    assert_eq!(ids, scan_sort_all(store, &program, 50), "the same page");
    eprintln!(
        "fetch: {} of {STORE_SESSIONS} sessions match {FETCH_FILTER}",
        page.total
    );
    let mut group = c.benchmark_group("fetch");
    group.sample_size(10);
    group.bench_function(BenchmarkId::new("fetch", "page1_by_start_time"), |b| {
        b.iter(|| store.fetch_compiled(black_box(&program), black_box(&request)))
    });
    group.bench_function(BenchmarkId::new("sort_all", "page1_by_start_time"), |b| {
        b.iter(|| sort_all(store, black_box(&program), 50))
    });
    group.bench_function(
        BenchmarkId::new("scan_sort_all", "page1_by_start_time"),
        |b| b.iter(|| scan_sort_all(store, black_box(&program), 50)),
    );
    group.finish();
}

fn cache(c: &mut Criterion) {
    let store = demo_store();
    let program = Program::compile(CACHE_FILTER).unwrap();
    assert_eq!(
        store.count(CACHE_FILTER).unwrap(),
        store.count_compiled(&program)
    );
    let mut group = c.benchmark_group("cache");
    group.bench_function(BenchmarkId::new("cached_text", "eq"), |b| {
        b.iter(|| store.count(black_box(CACHE_FILTER)).unwrap())
    });
    group.bench_function(BenchmarkId::new("compiled", "eq"), |b| {
        b.iter(|| store.count_compiled(black_box(&program)))
    });
    group.bench_function(BenchmarkId::new("compile_each_time", "eq"), |b| {
        b.iter(|| store.count_compiled(&Program::compile(black_box(CACHE_FILTER)).unwrap()))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config().sample_size(20);
    targets = store, fetch, cache
}
criterion_main!(benches);
