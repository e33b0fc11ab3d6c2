//! The index-accelerated store: every answer equals what a scan gives and
//! what the reference evaluator gives, after any sequence of changes.

mod common;

use std::collections::HashMap;

use common::strategies::{expr, role, session};
use proptest::prelude::*;
use session_filter::syntax::Expr;
use session_filter::{
    reference, Execution, FetchRequest, Filter, Program, PropertyChange, SessionStore, StoreOptions,
};

#[derive(Clone, Debug)]
enum Step {
    Insert(Vec<(String, String)>),
    Close(Filter),
    CloseSession(usize),
    ChangeRoles(Filter, Vec<String>, Vec<String>),
    SetProperty(usize, String, String),
    RemoveProperty(usize, String),
    ChangeProperties(Filter, PropertyChange),
    ChangeSessionProperties(usize, PropertyChange),
    CloseSessions(Filter),
}

/// A property change over keys the index holds (fixed and user), with
/// removals, and now and then an invalid key that makes it change nothing.
fn change() -> impl Strategy<Value = PropertyChange> {
    let key = prop::sample::select(vec![
        "k",
        "Department",
        "not",
        "x[y]",
        "$Country",
        "$Language",
        "$Latitude",
        "$Principal",
    ])
    .prop_map(String::from);
    prop::collection::vec((key, prop::option::of(common::strategies::value())), 0..4)
        .prop_map(|pairs| pairs.into_iter().collect())
}

fn step() -> impl Strategy<Value = Step> {
    let user_key =
        || prop::sample::select(vec!["k", "Department", "not", "x[y]"]).prop_map(String::from);
    prop_oneof![
        4 => session().prop_map(Step::Insert),
        1 => expr().prop_map(|e| Step::Close(e.into())),
        1 => (0..40usize).prop_map(Step::CloseSession),
        2 => (expr(), prop::collection::vec(role(), 0..3), prop::collection::vec(role(), 0..3))
            .prop_map(|(e, r, a)| Step::ChangeRoles(e.into(), r, a)),
        1 => (0..40usize, user_key(), common::strategies::value())
            .prop_map(|(i, k, v)| Step::SetProperty(i, k, v)),
        1 => (0..40usize, user_key()).prop_map(|(i, k)| Step::RemoveProperty(i, k)),
        2 => (expr(), change()).prop_map(|(e, c)| Step::ChangeProperties(e.into(), c)),
        2 => (0..40usize, change()).prop_map(|(i, c)| Step::ChangeSessionProperties(i, c)),
        1 => expr().prop_map(|e| Step::CloseSessions(e.into())),
    ]
}

/// A filter to ask: any generated filter, or one on `$SessionId` (which the
/// index answers from the id map), alone or combined.
fn probe() -> impl Strategy<Value = Expr> {
    let id = || (0..12usize).prop_map(|i| format!("s{i}"));
    let by_id = prop_oneof![
        id().prop_map(|i| Expr::is("$SessionId", i)),
        id().prop_map(|i| Expr::ne("$SessionId", i)),
        prop::collection::vec(id(), 1..4).prop_map(|ids| Expr::is_in("$SessionId", ids)),
    ];
    prop_oneof![
        3 => expr(),
        1 => by_id.clone(),
        1 => (by_id, expr()).prop_map(|(a, b)| Expr::and([a, b])),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Applies a change to both stores; ids are `s0`, `s1`, … in insert order.
fn apply(stores: &[&SessionStore], change: &Step, next_id: &mut usize) {
    for store in stores {
        match change {
            Step::Insert(props) => {
                let id = format!("s{next_id}");
                let props = props
                    .iter()
                    .filter(|(k, _)| k != "$SessionId")
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .chain([("$SessionId", id.as_str())]);
                store.insert(props).unwrap();
            }
            Step::Close(f) => {
                store.close_compiled(&Program::new(f).unwrap());
            }
            Step::CloseSession(i) => {
                store.close_session(&format!("s{i}"));
            }
            Step::ChangeRoles(f, r, a) => {
                store
                    .change_roles_compiled(&Program::new(f).unwrap(), &strs(r), &strs(a))
                    .unwrap();
            }
            Step::SetProperty(i, k, v) => {
                let _ = store.set_properties(&format!("s{i}"), [(k, v)]);
            }
            Step::RemoveProperty(i, k) => {
                let _ = store.remove_properties(&format!("s{i}"), &[k.as_str()]);
            }
            Step::ChangeProperties(f, c) => {
                let _ = store.change_properties_compiled(&Program::new(f).unwrap(), c);
            }
            Step::ChangeSessionProperties(i, c) => {
                let _ = store.change_session_properties(&format!("s{i}"), c);
            }
            Step::CloseSessions(f) => {
                store.close_sessions_compiled(&Program::new(f).unwrap());
            }
        }
    }
    if matches!(change, Step::Insert(_)) {
        *next_id += 1;
    }
}

/// The ids matching `filter` by the reference evaluator over every session.
fn reference_ids(store: &SessionStore, filter: &Filter) -> Vec<String> {
    let mut ids = Vec::new();
    store.for_each_session(|s| {
        let map: HashMap<String, String> = s.properties().into_iter().collect();
        if reference::matches_map(filter.expr(), &map) {
            ids.push(map["$SessionId"].clone());
        }
    });
    ids.sort();
    ids
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn indexed_equals_scan_equals_reference(
        changes in prop::collection::vec(step(), 1..40),
        probes in prop::collection::vec(probe(), 1..6),
    ) {
        let indexed = SessionStore::with_options(StoreOptions::new().shards(3));
        let plain = SessionStore::with_options(StoreOptions::new().shards(2).index(false));
        let mut next_id = 0;
        for change in &changes {
            apply(&[&indexed, &plain], change, &mut next_id);
            prop_assert_eq!(indexed.len(), plain.len());
            for probe in &probes {
                let filter = Filter::from(probe.clone());
                let program = Program::new(&filter).unwrap();
                let expected = reference_ids(&plain, &filter);
                prop_assert_eq!(reference_ids(&indexed, &filter), expected.clone());
                let n = expected.len();
                prop_assert_eq!(indexed.count_with(&program, Execution::Indexed), n, "{}", filter);
                prop_assert_eq!(indexed.count_with(&program, Execution::ScanSerial), n);
                prop_assert_eq!(indexed.count_with(&program, Execution::ScanParallel), n);
                prop_assert_eq!(plain.count_with(&program, Execution::Auto), n);
                prop_assert_eq!(sorted(indexed.select_compiled(&program)), expected.clone());
                prop_assert_eq!(sorted(plain.select_compiled(&program)), expected.clone());
                let page = indexed.fetch_compiled(&program, &FetchRequest::new()).unwrap();
                let ids: Vec<String> = page.sessions.into_iter().map(|s| s.id).collect();
                prop_assert_eq!((page.total, ids), (n, expected));
            }
        }
    }
}

#[test]
fn selective_filters_use_the_index_and_broad_ones_may_scan() {
    let store = SessionStore::with_options(StoreOptions::new().shards(4));
    for i in 0..4000u64 {
        store.insert(session_filter::demo::properties(i)).unwrap();
    }
    let plan = store
        .explain("$SessionId in ['s000042', 's000043', 'nobody']")
        .unwrap();
    assert!(
        plan.contains("0: index on 4 shards, 4000 reached, 2 passed"),
        "{plan}"
    );
    let plan = store.explain("$Principal is 'name42'").unwrap();
    assert!(plan.contains("plan: 4 of 4 shards use the index"), "{plan}");
    assert!(
        plan.contains("0: index on 4 shards, 4000 reached"),
        "{plan}"
    );

    // A long list of values nobody has: testing sessions beats 3000 lookups.
    let values: Vec<String> = (0..3000).map(|i| format!("'v{i}'")).collect();
    let plan = store
        .explain(&format!("$Country in [{}]", values.join(",")))
        .unwrap();
    assert!(
        plan.contains("plan: 0 of 4 shards use the index, 4 scan"),
        "{plan}"
    );

    // Mixed: the index narrows, later ops may test the few sessions left.
    let mixed = "not (Department is 'Accounts' or Department is 'Payroll') and $Country in ['UK','DE','FR'] and hasRoles ['trader']";
    let plan = store.explain(mixed).unwrap();
    assert!(plan.contains("plan: 4 of 4 shards use the index"), "{plan}");
    let program = Program::compile(mixed).unwrap();
    assert_eq!(
        store.count_with(&program, Execution::Indexed),
        store.count_with(&program, Execution::ScanSerial)
    );

    let plain = SessionStore::with_options(StoreOptions::new().index(false));
    plain.insert([("$SessionId", "x")]).unwrap();
    assert!(plain.explain("all").unwrap().contains("no index"));
    assert_eq!(plain.index_bytes(), 0);
    assert!(store.index_bytes() > 0);
}

#[test]
fn closing_everything_gives_the_index_memory_back() {
    let store = SessionStore::with_options(StoreOptions::new().shards(2));
    for i in 0..2000u64 {
        store.insert(session_filter::demo::properties(i)).unwrap();
    }
    assert!(store.index_bytes() > 100_000);
    assert_eq!(store.close("all").unwrap(), 2000);
    assert!(store.index_bytes() < 1000, "{}", store.index_bytes());
    store.insert([("$SessionId", "again"), ("k", "v")]).unwrap();
    assert_eq!(store.count("k is 'v'").unwrap(), 1);
}
