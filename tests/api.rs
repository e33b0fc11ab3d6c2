//! The public API's safety promises: handles that cannot name the wrong
//! string, callbacks that may re-enter the store, limits on every bulk
//! operation, ordered and parallel results that agree, and the planner's
//! choice between index and scan.

use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use session_filter::properties::FIXED_PROPERTIES;
use session_filter::{
    Error, Execution, FilterErrorKind, Interned, Limits, Program, PropertyKey, Session,
    SessionStore, StoreOptions,
};

/// Runs `f` on another thread and fails the test if it takes longer than
/// `secs` (a deadlock shows as a timeout, not a hung test run).
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .expect("timed out: the call deadlocked or hung")
}

#[test]
fn a_handle_keeps_its_string_when_the_session_it_matched_is_gone() {
    let held = Interned::new("api-test-handle-α").unwrap();
    let key = PropertyKey::new("k").unwrap();
    {
        let s = Session::new([("k", "api-test-handle-α")]).unwrap();
        assert!(s.value(&key).is_some_and(|v| v == held));
    }
    // Strings come and go; the handle's string stays interned, so no later
    // string can take its id.
    for i in 0..2000 {
        drop(Session::new([("k", format!("api-test-handle-other-{i}"))]).unwrap());
    }
    let other = Session::new([("k", "api-test-handle-β")]).unwrap();
    assert!(!other.value(&key).is_some_and(|v| v == held));
    let same = Session::new([("k", "api-test-handle-α")]).unwrap();
    assert!(same.value(&key).is_some_and(|v| v == held));
    assert_eq!(
        &*same.value(&key).unwrap().as_arc_str(),
        "api-test-handle-α"
    );
}

#[test]
fn property_keys_resolve_every_fixed_property_and_cannot_be_forged() {
    // A key is only made by `PropertyKey::new` (the type is opaque), so no
    // slot out of range can exist; every fixed name resolves and reads back.
    for (i, &name) in FIXED_PROPERTIES.iter().enumerate() {
        let key = PropertyKey::new(name).unwrap();
        assert_eq!(&*key.name(), name);
        let value = format!("v{i}");
        let s = Session::new([(name, if name == "$Roles" { "" } else { &value })]).unwrap();
        match name {
            "$Roles" => assert!(s.value(&key).is_none(), "$Roles is a set"),
            _ => assert_eq!(&*s.value(&key).unwrap().as_arc_str(), value),
        }
    }
    let unknown = PropertyKey::new("$Version").unwrap();
    let s = Session::new([("$Version", "7")]).unwrap();
    assert_eq!(&*s.value(&unknown).unwrap().as_arc_str(), "7");
}

#[test]
fn callbacks_may_reenter_the_store() {
    let store = Arc::new(SessionStore::with_options(StoreOptions::new().shards(4)));
    for i in 0..200 {
        store
            .insert([("$SessionId", format!("s{i}")), ("n", (i % 4).to_string())])
            .unwrap();
    }
    let s = store.clone();
    let (visited, closed) = within(20, move || {
        let mut visited: Vec<String> = Vec::new();
        let mut closed = 0;
        s.for_each_session(|session| {
            let id = session.id().unwrap();
            visited.push(id.to_string());
            if id.starts_with("new-") {
                return;
            }
            // Reads, writes and bulk operations from inside the callback.
            assert!(s.count("all").unwrap() > 0);
            assert!(s.get(&id).is_some() || closed > 0);
            if session.get("n").as_deref() == Some("0") && s.close_session(&id) {
                closed += 1;
            }
            s.change_roles(&format!("$SessionId is '{id}'"), &[], &["seen"])
                .unwrap();
            s.insert([("$SessionId", format!("new-{id}"))]).unwrap();
        });
        (visited, closed)
    });
    // Each session once, as it was when its shard was copied; sessions
    // inserted meanwhile into shards not yet visited may be seen too.
    let mut originals: Vec<&String> = visited.iter().filter(|v| !v.starts_with("new-")).collect();
    originals.sort();
    originals.dedup();
    assert_eq!(originals.len(), 200);
    assert_eq!(
        visited.iter().filter(|v| !v.starts_with("new-")).count(),
        200
    );
    let mut all = visited.clone();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), visited.len(), "no session twice");
    assert_eq!(closed, 50);
    assert_eq!(store.count("n is '0'").unwrap(), 0);
    assert_eq!(store.count("hasRoles ['seen']").unwrap(), 150);
    assert_eq!(store.len(), 150 + 200);
}

#[test]
fn every_bulk_operation_applies_the_store_limits() {
    let limits = Limits::new()
        .with_max_len(24)
        .with_max_depth(2)
        .with_max_items(3);
    let store = SessionStore::with_options(StoreOptions::new().limits(limits));
    store.insert([("$SessionId", "a"), ("n", "1")]).unwrap();
    let long = "n is '1' or n is '2' or n is '3'";
    let deep = "not not not has n";
    let many = "n in ['1' '2' '3' '4']";
    for (filter, expect) in [(long, "TooLong"), (deep, "TooDeep"), (many, "TooManyItems")] {
        let kind_of = |r: Result<(), Error>| match r {
            Err(Error::Filter(e)) => match e.kind() {
                FilterErrorKind::TooLong { .. } => "TooLong",
                FilterErrorKind::TooDeep { .. } => "TooDeep",
                FilterErrorKind::TooManyItems { .. } => "TooManyItems",
                _ => "other",
            },
            _ => "not a filter error",
        };
        let ops: [(&str, Result<(), Error>); 6] = [
            ("compile", store.compile(filter).map(drop)),
            ("count", store.count(filter).map(drop)),
            ("select", store.select(filter).map(drop)),
            ("explain", store.explain(filter).map(drop)),
            (
                "change_roles",
                store.change_roles(filter, &[], &["x"]).map(drop),
            ),
            ("close", store.close(filter).map(drop)),
        ];
        for (op, result) in ops {
            assert_eq!(kind_of(result), expect, "{op} on {filter:?}");
        }
    }
    // Nothing changed, and a filter within the limits works.
    assert_eq!(store.select("has n").unwrap(), ["a"]);
    assert_eq!(store.get("a").unwrap().get("$Roles"), None);
}

#[test]
fn select_is_in_session_id_order_whatever_the_shards() {
    let ids: Vec<String> = (0..500)
        .map(|i| format!("id-{:03}", (i * 37) % 500))
        .collect();
    let fill = || {
        let store = SessionStore::new();
        for id in &ids {
            store
                .insert([("$SessionId", id.as_str()), ("k", "v")])
                .unwrap();
        }
        store
    };
    let (a, b) = (fill(), fill());
    let mut sorted = ids.clone();
    sorted.sort();
    for execution in [
        Execution::Auto,
        Execution::ScanSerial,
        Execution::ScanParallel,
    ] {
        let p = Program::compile("has k").unwrap();
        assert_eq!(a.select_with(&p, execution), sorted);
        assert_eq!(b.select_with(&p, execution), sorted);
    }
}

#[test]
fn parallel_evaluation_over_many_chunks_equals_sequential() {
    // 10 000 sessions: three parallel chunks of 4096 and a partial one.
    let sessions: Vec<Session> = (0..10_000)
        .map(|i| {
            Session::new([
                ("$SessionId", format!("s{i}")),
                ("n", (i % 7).to_string()),
                ("$Roles", if i % 3 == 0 { "\"r\"" } else { "" }.to_string()),
            ])
            .unwrap()
        })
        .collect();
    for filter in [
        "n is '3'",
        "n in ['1' '5'] and not hasRoles ['r']",
        "all",
        "not all",
    ] {
        let p = Program::compile(filter).unwrap();
        let expected: Vec<usize> = (0..sessions.len())
            .filter(|&i| p.matches(&sessions[i]))
            .collect();
        assert_eq!(p.select(&sessions), expected, "{filter}");
        assert_eq!(p.par_select(&sessions), expected, "{filter}");
        assert_eq!(p.par_count(&sessions), expected.len(), "{filter}");
        assert_eq!(p.count(&sessions), expected.len(), "{filter}");
    }
}

/// How many shards scanned every session, from `explain`'s plan line.
fn shards_scanning(store: &SessionStore, filter: &str) -> usize {
    let plan = store.explain(filter).unwrap();
    let line = plan
        .lines()
        .find(|l| l.starts_with("plan: "))
        .expect("a plan line");
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|&w| w == "scan").expect("scan count");
    words[at - 1].parse().unwrap()
}

#[test]
fn the_planner_uses_the_index_for_selective_tests_and_scans_otherwise() {
    let store = SessionStore::with_options(StoreOptions::new().shards(4));
    for i in 0..4000 {
        store
            .insert([
                ("$SessionId", format!("s{i}")),
                ("n", (i % 1000).to_string()),
                ("all", "same".to_string()),
            ])
            .unwrap();
    }
    let check = |filter: &str| {
        let p = store.compile(filter).unwrap();
        let serial = store.count_with(&p, Execution::ScanSerial);
        assert_eq!(store.count_with(&p, Execution::Indexed), serial, "{filter}");
        assert_eq!(
            store.select_with(&p, Execution::Indexed),
            store.select_with(&p, Execution::ScanSerial),
            "{filter}"
        );
        serial
    };
    // A value four sessions hold: every shard answers from the index.
    assert_eq!(check("n is '7'"), 4);
    assert_eq!(shards_scanning(&store, "n is '7'"), 0);
    assert_eq!(check("$SessionId is 's7'"), 1);
    assert_eq!(shards_scanning(&store, "$SessionId is 's7'"), 0);
    // A list of thousands of values nobody holds costs more in postings
    // than testing every session: every shard scans.
    let absent: Vec<String> = (0..5000).map(|i| format!("'x{i}'")).collect();
    let wide = format!("n in [{}]", absent.join(" "));
    assert_eq!(check(&wide), 0);
    assert_eq!(shards_scanning(&store, &wide), 4);
    // Mixed shapes give the same answers either way.
    for filter in [
        "not n is '7'",
        "n is '7' or all is 'same'",
        "has all and not n in ['1' '2' '3']",
        "not all",
        "all",
    ] {
        check(filter);
    }
}
