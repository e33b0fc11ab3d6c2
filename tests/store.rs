//! SPEC section 6: the session store, its bulk operations and their
//! guarantees under concurrency.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use proptest::prelude::*;
use session_filter::{
    reference, roles_to_string, string_to_roles, ClosedSession, Error, Execution, FetchPage,
    FetchRequest, Filter, PropertyChange, SessionStore, StoreOptions,
};

fn store_with(sessions: &[Vec<(String, String)>]) -> SessionStore {
    let store = SessionStore::new();
    for s in sessions {
        store
            .insert(s.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .unwrap();
    }
    store
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn conformance_filters_count_and_select_in_a_store() {
    for dir in common::case_dirs() {
        let store = store_with(&common::sessions(&dir));
        for case in common::filter_cases(&dir) {
            match &case.valid {
                Some((_, ids)) => {
                    assert_eq!(
                        store.count(&case.filter).unwrap(),
                        ids.len(),
                        "{}",
                        case.filter
                    );
                    assert_eq!(
                        sorted(store.select(&case.filter).unwrap()),
                        sorted(ids.clone())
                    );
                }
                None => assert!(matches!(store.count(&case.filter), Err(Error::Filter(_)))),
            }
        }
    }
}

#[test]
fn insert_validates_and_changes_nothing_on_error() {
    let store = SessionStore::new();
    store
        .insert([("$SessionId", "a"), ("$Version", "7"), ("k", "v")])
        .unwrap();
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("$Principal", "x")], "missing id"),
        (vec![("$SessionId", "a")], "duplicate id"),
        (vec![("$SessionId", "b"), ("bad key", "x")], "invalid key"),
        (
            vec![("$SessionId", "b"), ("$Roles", "\"open")],
            "invalid roles",
        ),
        (
            vec![("$SessionId", "b"), ("k", "1"), ("k", "2")],
            "duplicate key",
        ),
    ];
    for (props, what) in cases {
        let err = store.insert(props).unwrap_err();
        let ok = match what {
            "missing id" => matches!(err, Error::MissingSessionId),
            "duplicate id" => matches!(&err, Error::DuplicateSession(id) if id == "a"),
            "invalid key" => matches!(err, Error::InvalidKey(_)),
            "invalid roles" => matches!(err, Error::InvalidRoles(_)),
            _ => matches!(&err, Error::DuplicateKey(k) if k == "k"),
        };
        assert!(ok, "{what}: {err}");
        assert_eq!(store.len(), 1, "{what}");
        assert!(store.get("b").is_none(), "{what}");
    }
    assert_eq!(store.get("a").unwrap()["$Version"], "7");
}

#[test]
fn a_bad_filter_is_rejected_before_anything_is_touched() {
    let store = store_with(&[vec![("$SessionId".into(), "a".into())]]);
    for result in [
        store.count("a is").map(|_| ()),
        store.select("a is").map(|_| ()),
        store.close("(all").map(|_| ()),
        store.change_roles("all and", &[], &["x"]).map(|_| ()),
    ] {
        let Err(Error::Filter(e)) = result else {
            panic!("{result:?}")
        };
        assert!(e.line() >= 1 && e.to_string().contains("expected"), "{e}");
    }
    assert_eq!(store.len(), 1);
    assert_eq!(store.get("a").unwrap().get("$Roles"), None);
}

#[test]
fn change_roles_removes_then_adds_and_counts_matches() {
    let store = SessionStore::new();
    store
        .insert([("$SessionId", "a"), ("$Roles", "'x','y'")])
        .unwrap();
    store
        .insert([("$SessionId", "b"), ("$Roles", "'y'")])
        .unwrap();
    store.insert([("$SessionId", "c")]).unwrap();
    // A role in both lists ends up present; unchanged matches still count.
    assert_eq!(
        store
            .change_roles("hasRoles ['y']", &["x", "y"], &["y", "z"])
            .unwrap(),
        2
    );
    assert_eq!(store.get("a").unwrap()["$Roles"], "\"y\",\"z\"");
    assert_eq!(store.get("b").unwrap()["$Roles"], "\"y\",\"z\"");
    assert_eq!(
        store.get("c").unwrap().get("$Roles"),
        None,
        "c did not match"
    );
    // Emptied roles are written as "".
    assert_eq!(
        store
            .change_roles("$SessionId is 'a'", &["y", "z"], &[])
            .unwrap(),
        1
    );
    assert_eq!(store.get("a").unwrap()["$Roles"], "");
    assert_eq!(store.count("has $Roles and $Roles is ''").unwrap(), 1);
    // A session without $Roles gets it written.
    assert_eq!(
        store.change_roles("not has $Roles", &["q"], &[]).unwrap(),
        1
    );
    assert_eq!(store.get("c").unwrap()["$Roles"], "");
    store.change_session_roles("c", &[], &["w", "w"]).unwrap();
    assert_eq!(store.get("c").unwrap()["$Roles"], "\"w\"");
    assert!(
        matches!(store.change_session_roles("nope", &[], &["w"]), Err(Error::UnknownSession(id)) if id == "nope")
    );
    assert_eq!(store.change_roles("not all", &[], &["w"]).unwrap(), 0);
}

#[test]
fn user_properties_change_all_or_nothing() {
    let store = SessionStore::new();
    store
        .insert([("$SessionId", "a"), ("$Principal", "p"), ("k", "1")])
        .unwrap();
    store
        .set_properties("a", [("k", "2"), ("new", "3")])
        .unwrap();
    let got = store.get("a").unwrap();
    assert_eq!(
        (
            got["k"].as_str(),
            got["new"].as_str(),
            got["$Principal"].as_str()
        ),
        ("2", "3", "p")
    );
    let before = store.get("a");
    for (props, what) in [
        (vec![("k", "9"), ("$Principal", "q")], "fixed key"),
        (vec![("k", "9"), ("$SessionId", "b")], "session id"),
        (vec![("k", "9"), ("bad(key)", "x")], "invalid key"),
        (vec![("k", "9"), ("k", "8")], "duplicate key"),
    ] {
        assert!(store.set_properties("a", props).is_err(), "{what}");
        assert_eq!(store.get("a"), before, "{what}");
    }
    assert!(matches!(
        store.set_properties("zz", [("k", "1")]),
        Err(Error::UnknownSession(_))
    ));
    assert!(
        matches!(store.remove_properties("a", &["k", "$Principal"]), Err(Error::NotUserKey(k)) if k == "$Principal")
    );
    assert!(matches!(
        store.remove_properties("a", &["k", ""]),
        Err(Error::InvalidKey(_))
    ));
    assert_eq!(store.get("a"), before);
    store.remove_properties("a", &["k", "absent"]).unwrap();
    assert_eq!(store.get("a").unwrap().get("k"), None);
    assert!(matches!(
        store.remove_properties("zz", &["k"]),
        Err(Error::UnknownSession(_))
    ));
    assert_eq!(store.count("has k").unwrap(), 0);
    assert_eq!(store.count("new is '3'").unwrap(), 1);
}

#[test]
fn close_removes_matches_and_close_session_one() {
    let store = SessionStore::with_options(StoreOptions::new().shards(4).parallel_threshold(0));
    for i in 0..1000 {
        store
            .insert([("$SessionId", format!("s{i}")), ("n", (i % 7).to_string())])
            .unwrap();
    }
    assert_eq!(store.close("n is '3'").unwrap(), 143);
    assert_eq!(store.count("n is '3'").unwrap(), 0);
    assert_eq!(store.len(), 857);
    assert!(store.close_session("s0"));
    assert!(!store.close_session("s0"));
    assert!(!store.close_session("s3"), "closed by the filter");
    assert_eq!(store.len(), 856);
    // Ids can be reused once closed.
    store.insert([("$SessionId", "s3")]).unwrap();
    assert_eq!(store.close("all").unwrap(), 857);
    assert!(store.is_empty());
}

#[test]
fn close_sessions_returns_exactly_the_removed_sessions() {
    let store = SessionStore::with_options(StoreOptions::new().shards(4).parallel_threshold(0));
    for i in 0..500 {
        store
            .insert([
                ("$SessionId", format!("s{i:03}")),
                ("n", (i % 7).to_string()),
                ("$Roles", roles_to_string([format!("r{}", i % 3)])),
            ])
            .unwrap();
    }
    let mut expected = Vec::new();
    store.for_each_session(|s| {
        let props: BTreeMap<String, String> = s.properties().into_iter().collect();
        if props["n"] == "3" {
            expected.push(ClosedSession {
                id: props["$SessionId"].clone(),
                properties: props,
            });
        }
    });
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    let closed = store.close_sessions("n is '3'").unwrap();
    assert_eq!(closed.len(), 71);
    assert_eq!(closed, expected);
    assert_eq!(store.len(), 429);
    assert_eq!(store.count("n is '3'").unwrap(), 0);
    assert!(closed.iter().all(|c| store.get(&c.id).is_none()));
    assert!(store.close_sessions("n is").is_err());
    assert_eq!(store.len(), 429);
    assert_eq!(store.close_sessions("n is '3'").unwrap(), []);
    let program = store.compile("all").unwrap();
    assert_eq!(store.close_sessions_compiled(&program).len(), 429);
    assert!(store.is_empty());
}

#[test]
fn property_changes_by_filter_normalise_and_reject_as_a_whole() {
    let store = SessionStore::with_options(StoreOptions::new().shards(4).parallel_threshold(0));
    for i in 0..300 {
        store
            .insert([
                ("$SessionId", format!("s{i}")),
                ("$Country", "DE".into()),
                ("n", (i % 3).to_string()),
            ])
            .unwrap();
    }
    let change = PropertyChange::new()
        .set("$Country", "gb")
        .set("$Language", "EN")
        .set("$Latitude", "51.5")
        .set("$Longitude", "-0.1e0x")
        .set("Tier", "gold")
        .remove("n");
    assert_eq!(store.change_properties("n is '0'", &change).unwrap(), 100);
    assert_eq!(
        store
            .count("$Country is 'GB' and $Language is 'en' and $Latitude is '51.5' and $Longitude is 'NaN' and Tier is 'gold' and not has n")
            .unwrap(),
        100
    );
    // Matches count whether or not they change.
    assert_eq!(
        store
            .set_properties_where("Tier is 'gold'", &change)
            .unwrap(),
        100
    );
    let before: Vec<_> = (0..300).map(|i| store.get(&format!("s{i}"))).collect();
    for (bad, err) in [
        (
            change.clone().set("$Principal", "eve"),
            Error::NotSettable("$Principal".into()),
        ),
        (
            change.clone().set("$SessionId", "x"),
            Error::NotSettable("$SessionId".into()),
        ),
        (
            change.clone().set("$Roles", "'a'"),
            Error::NotSettable("$Roles".into()),
        ),
        (
            change.clone().remove("$Country"),
            Error::NotRemovable("$Country".into()),
        ),
    ] {
        assert_eq!(store.change_properties("all", &bad), Err(err.clone()));
        assert_eq!(store.change_session_properties("s1", &bad), Err(err));
    }
    assert!(matches!(
        store.change_properties("all", &change.clone().set("bad key", "x")),
        Err(Error::InvalidKey(_))
    ));
    assert!(matches!(
        store.change_properties("all and", &change),
        Err(Error::Filter(_))
    ));
    assert!(matches!(
        store.change_session_properties("nobody", &change),
        Err(Error::UnknownSession(id)) if id == "nobody"
    ));
    let after: Vec<_> = (0..300).map(|i| store.get(&format!("s{i}"))).collect();
    assert_eq!(after, before, "failed changes changed nothing");
    // The existing by-id forms still reject fixed keys.
    assert!(store.set_properties("s1", [("$Country", "FR")]).is_err());
    assert!(store.remove_properties("s1", &["$Country"]).is_err());
}

#[test]
fn a_large_fetch_agrees_with_a_full_sort() {
    let store = SessionStore::with_options(StoreOptions::new().shards(8).parallel_threshold(0));
    let mut all = Vec::new();
    for i in 0..5000u64 {
        let mut props = vec![(
            "$SessionId".to_string(),
            format!("s{:04}", (i * 7919) % 5000),
        )];
        // Few distinct values, so ties are common; every ninth lacks the key.
        if i % 9 != 0 {
            props.push(("$StartTime".into(), (i * 31 % 97).to_string()));
        }
        props.push(("n".into(), (i % 4).to_string()));
        store
            .insert(props.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .unwrap();
        all.push(props.into_iter().collect::<BTreeMap<String, String>>());
    }
    for (offset, limit) in [(0, 50), (17, 10), (1200, 5), (1249, 10), (5000, 3), (0, 0)] {
        for descending in [false, true] {
            let r = Fetch {
                projection: Some(Some(vec!["$StartTime".into(), "missing".into()])),
                order_by: Some("$StartTime".into()),
                descending,
                offset,
                limit: Some(limit),
            };
            let got = show_page(store.fetch("n ne '2'", &r.request()).unwrap());
            assert_eq!(got, model_fetch(&all, "n ne '2'", &r), "{r:?}");
            let by_id = Fetch {
                order_by: None,
                projection: None,
                ..r
            };
            let got = show_page(store.fetch("n ne '2'", &by_id.request()).unwrap());
            assert_eq!(got, model_fetch(&all, "n ne '2'", &by_id), "{by_id:?}");
        }
    }
    let page = store.fetch("all", &FetchRequest::new().limit(0)).unwrap();
    assert_eq!((page.total, page.sessions.len()), (5000, 0));
    let page = store.fetch(
        "all",
        &FetchRequest::new().offset(usize::MAX).limit(usize::MAX),
    );
    assert_eq!(page.unwrap().sessions, []);
}

#[test]
fn the_filter_cache_never_grows_past_its_bound() {
    for bound in [1, 7, 64, 100] {
        let store = SessionStore::with_options(StoreOptions::new().filter_cache(bound));
        store.insert([("$SessionId", "a"), ("k", "v7")]).unwrap();
        for i in 0..2000 {
            assert_eq!(
                store.count(&format!("k is 'v{}'", i % 500)).unwrap(),
                usize::from(i % 500 == 7)
            );
            assert!(
                store.cached_filters() <= bound,
                "{} > {bound}",
                store.cached_filters()
            );
            // Bad filters are never kept.
            assert!(store.count(&format!("k is 'v{i}")).is_err());
        }
        assert!(store.cached_filters() > 0);
    }
    let off = SessionStore::with_options(StoreOptions::new().filter_cache(0));
    off.count("all").unwrap();
    assert_eq!(off.cached_filters(), 0);
    let default = SessionStore::new();
    for i in 0..3000 {
        default.count(&format!("k is 'v{i}'")).unwrap();
    }
    // The default bound: 2 MiB, each entry counted at least 1 KiB.
    assert!(default.cached_filters() <= 2048);
    assert!(default.cached_filter_bytes() <= 2 << 20);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A store with its filter cache on (and small, so that it evicts) and
    /// one with it off give the same answers to the same random filters, asked
    /// twice each, between random changes.
    #[test]
    fn the_filter_cache_never_changes_an_answer(
        sessions in prop::collection::vec(common::strategies::session(), 0..30),
        filters in prop::collection::vec(common::strategies::expr(), 1..12),
        roles in common::strategies::role_set(),
    ) {
        let cached = SessionStore::with_options(StoreOptions::new().shards(2).filter_cache(3));
        let plain = SessionStore::with_options(StoreOptions::new().shards(2).filter_cache(0));
        for (i, s) in sessions.iter().enumerate() {
            let id = format!("s{i}");
            let props = s
                .iter()
                .filter(|(k, _)| k != "$SessionId")
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .chain([("$SessionId", id.as_str())]);
            let props: Vec<_> = props.collect();
            cached.insert(props.clone()).unwrap();
            plain.insert(props).unwrap();
        }
        let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
        let texts: Vec<String> = filters.iter().map(|f| Filter::from(f.clone()).to_string()).collect();
        for round in 0..2 {
            for text in texts.iter().chain(texts.iter().rev()) {
                prop_assert_eq!(cached.count(text), plain.count(text));
                prop_assert_eq!(cached.select(text).map(sorted), plain.select(text).map(sorted));
                let request = FetchRequest::new().order_by("k").all_properties().limit(5);
                prop_assert_eq!(cached.fetch(text, &request), plain.fetch(text, &request));
                prop_assert_eq!(cached.explain(text).is_ok(), plain.explain(text).is_ok());
                prop_assert_eq!(
                    cached.compile(text).map(|p| p.to_string()),
                    plain.compile(text).map(|p| p.to_string())
                );
                prop_assert!(cached.cached_filters() <= 3);
            }
            let text = &texts[round % texts.len()];
            prop_assert_eq!(
                cached.change_roles(text, &[], &roles),
                plain.change_roles(text, &[], &roles)
            );
            let change = PropertyChange::new().set("k", format!("r{round}"));
            prop_assert_eq!(
                cached.change_properties(text, &change),
                plain.change_properties(text, &change)
            );
            prop_assert_eq!(cached.close_sessions(text), plain.close_sessions(text));
        }
        prop_assert_eq!(cached.close("all"), plain.close("all"));
    }
}

// --- Concurrency --------------------------------------------------------------

#[test]
fn readers_never_see_a_half_changed_session_while_writers_flip_roles() {
    let store = Arc::new(SessionStore::with_options(
        StoreOptions::new().shards(8).parallel_threshold(0),
    ));
    const N: usize = 4000;
    for i in 0..N {
        store
            .insert([
                ("$SessionId", format!("s{i}")),
                ("$Roles", "\"A\"".to_string()),
            ])
            .unwrap();
    }
    let done = Arc::new(AtomicBool::new(false));
    let flips = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for w in 0..2 {
        let (store, done, flips) = (store.clone(), done.clone(), flips.clone());
        handles.push(std::thread::spawn(move || {
            let (from, to) = if w == 0 { ("A", "B") } else { ("B", "A") };
            for _ in 0..40 {
                let filter = format!("hasRoles ['{from}']");
                store.change_roles(&filter, &[from], &[to]).unwrap();
                flips.fetch_add(1, Ordering::Relaxed);
            }
            done.store(true, Ordering::Relaxed);
        }));
    }
    let either = store.compile("hasRoles ['A'] or hasRoles ['B']").unwrap();
    let both = store.compile("hasRoles ['A'] and hasRoles ['B']").unwrap();
    let mut reads = 0;
    while !done.load(Ordering::Relaxed) || reads < 20 {
        // Each session has exactly one of A and B at every moment, whether
        // the index answers or a scan does.
        assert_eq!(store.count("hasRoles ['A'] or hasRoles ['B']").unwrap(), N);
        assert_eq!(store.count("hasRoles ['A'] and hasRoles ['B']").unwrap(), 0);
        assert_eq!(store.count("not has $Roles or $Roles is ''").unwrap(), 0);
        for execution in [
            Execution::Indexed,
            Execution::ScanSerial,
            Execution::ScanParallel,
        ] {
            assert_eq!(store.count_with(&either, execution), N);
            assert_eq!(store.count_with(&both, execution), 0);
        }
        reads += 1;
    }
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(flips.load(Ordering::Relaxed), 80);
    assert_eq!(store.count("$Roles in ['\"A\"', '\"B\"']").unwrap(), N);
}

#[test]
fn inserts_racing_closes_lose_nothing_and_count_nothing_twice() {
    let store = Arc::new(SessionStore::with_options(
        StoreOptions::new().shards(8).parallel_threshold(0),
    ));
    let inserting = Arc::new(AtomicUsize::new(3));
    let mut inserters = Vec::new();
    for t in 0..3 {
        let (store, inserting) = (store.clone(), inserting.clone());
        inserters.push(std::thread::spawn(move || {
            for i in 0..3000 {
                store
                    .insert([("$SessionId", format!("t{t}-{i}")), ("gen", "x".into())])
                    .unwrap();
            }
            inserting.fetch_sub(1, Ordering::Relaxed);
        }));
    }
    let mut closed = 0;
    let mut by_id = 0;
    let mut round = 0;
    while inserting.load(Ordering::Relaxed) > 0 {
        closed += store
            .close("gen is 'x' and not $SessionId in ['t0-7', 't1-7', 't2-7']")
            .unwrap();
        round += 1;
        for t in 0..3 {
            by_id += usize::from(store.close_session(&format!("t{t}-{}", round * 13 % 3000)));
        }
    }
    for h in inserters {
        h.join().unwrap();
    }
    closed += store.close("gen is 'x'").unwrap();
    assert_eq!(
        closed + by_id,
        9000,
        "every inserted session was closed exactly once"
    );
    assert!(store.is_empty());
}

#[test]
fn concurrent_close_session_succeeds_exactly_once() {
    let store = Arc::new(SessionStore::new());
    for i in 0..200 {
        store.insert([("$SessionId", format!("s{i}"))]).unwrap();
    }
    let wins: Vec<usize> = (0..4)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || {
                (0..200)
                    .filter(|i| store.close_session(&format!("s{i}")))
                    .count()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    assert_eq!(wins.iter().sum::<usize>(), 200);
    assert!(store.is_empty());
}

// --- Model-based property test ----------------------------------------------

type Model = Vec<BTreeMap<String, String>>;

#[derive(Clone, Debug)]
enum Op {
    Insert(Vec<(String, String)>),
    Close(String),
    CloseSession(String),
    ChangeRoles(String, Vec<String>, Vec<String>),
    ChangeSessionRoles(String, Vec<String>, Vec<String>),
    SetProperties(String, Vec<(String, String)>),
    RemoveProperties(String, Vec<String>),
    Count(String),
    Select(String),
    Get(String),
    ChangeSessionProperties(String, Change),
    ChangeProperties(String, Change),
    CloseSessions(String),
    Fetch(String, Fetch),
}

/// A property change as pairs, `None` meaning removal (duplicates allowed:
/// the last word on a key wins).
type Change = Vec<(String, Option<String>)>;

/// A fetch request as plain data, so that the model can read it.
#[derive(Clone, Debug)]
struct Fetch {
    /// `None`: no properties; `Some(None)`: all; `Some(Some(keys))`: these.
    projection: Option<Option<Vec<String>>>,
    order_by: Option<String>,
    descending: bool,
    offset: usize,
    limit: Option<usize>,
}

impl Fetch {
    fn request(&self) -> FetchRequest {
        let mut r = FetchRequest::new();
        match &self.projection {
            None => {}
            Some(None) => r = r.all_properties(),
            Some(Some(keys)) => r = r.properties(keys.iter().cloned()),
        }
        if let Some(key) = &self.order_by {
            r = r.order_by(key);
        }
        if self.descending {
            r = r.descending();
        }
        if let Some(n) = self.limit {
            r = r.limit(n);
        }
        r.offset(self.offset)
    }
}

fn change_key() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "k",
        "m",
        "Tier",
        "bad key",
        "",
        "$Country",
        "$Language",
        "$Latitude",
        "$Longitude",
        "$Principal",
        "$SessionId",
        "$Roles",
        "$Version",
    ])
    .prop_map(String::from)
}

fn change_value() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "1", "2", "", "x'y", "uK", "De", "1.5", "-.5e3", "1e", "NaN",
    ])
    .prop_map(String::from)
}

/// The values of `change_value` that are decimal numbers (SPEC 6.1).
fn model_decimal(v: &str) -> bool {
    matches!(v, "1" | "2" | "1.5" | "-.5e3")
}

fn change() -> impl Strategy<Value = Change> {
    prop::collection::vec((change_key(), prop::option::of(change_value())), 0..4)
}

fn fetch() -> impl Strategy<Value = Fetch> {
    let key = || {
        prop::sample::select(vec![
            "k",
            "$Country",
            "$SessionId",
            "$Roles",
            "Tier",
            "absent",
        ])
        .prop_map(String::from)
    };
    (
        prop::option::of(prop::option::of(prop::collection::vec(key(), 0..3))),
        prop::option::of(key()),
        any::<bool>(),
        0..4usize,
        prop::option::of(0..4usize),
    )
        .prop_map(|(projection, order_by, descending, offset, limit)| Fetch {
            projection,
            order_by,
            descending,
            offset,
            limit,
        })
}

fn property_change(change: &Change) -> PropertyChange {
    change.iter().cloned().collect()
}

fn id() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "c", "d", "e"]).prop_map(String::from)
}

fn user_key() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["k", "m", "Tier", "bad key", "$Principal", ""]).prop_map(String::from)
}

fn value() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["1", "2", "", "x'y"]).prop_map(String::from)
}

fn role() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["r", "s", "t", ""]).prop_map(String::from)
}

fn filter() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "all",
        "not all",
        "k is '1'",
        "k ne '1'",
        "has Tier",
        "hasRoles ['r']",
        "hasRoles ['r' 's']",
        "$Roles is ''",
        "$Roles is '\"s\"'",
        "$Principal in ['p1', 'p2'] or has m",
        "not (k is '2' or m is '1') and has $Roles",
        "$SessionId in ['a', 'c']",
        "$Country is 'UK'",
        "$Language in ['de', 'De']",
        "$Latitude is 'NaN' or has $Longitude",
        "k is",
    ])
    .prop_map(String::from)
}

fn op() -> impl Strategy<Value = Op> {
    let props = || prop::collection::vec((user_key(), value()), 0..3);
    prop_oneof![
        3 => (id(), prop::option::of(prop::sample::select(vec!["p1", "p2"])), props(),
              prop::option::of(prop::collection::vec(role(), 0..3)))
            .prop_map(|(id, principal, user, roles)| {
                let mut p = vec![("$SessionId".to_string(), id)];
                if let Some(pr) = principal {
                    p.push(("$Principal".into(), pr.into()));
                }
                p.extend(user);
                if let Some(r) = roles {
                    p.push(("$Roles".into(), roles_to_string(r)));
                }
                Op::Insert(p)
            }),
        1 => filter().prop_map(Op::Close),
        1 => id().prop_map(Op::CloseSession),
        2 => (filter(), prop::collection::vec(role(), 0..3), prop::collection::vec(role(), 0..3))
            .prop_map(|(f, r, a)| Op::ChangeRoles(f, r, a)),
        1 => (id(), prop::collection::vec(role(), 0..2), prop::collection::vec(role(), 0..2))
            .prop_map(|(i, r, a)| Op::ChangeSessionRoles(i, r, a)),
        1 => (id(), props()).prop_map(|(i, p)| Op::SetProperties(i, p)),
        1 => (id(), prop::collection::vec(user_key(), 0..3)).prop_map(|(i, k)| Op::RemoveProperties(i, k)),
        2 => filter().prop_map(Op::Count),
        1 => filter().prop_map(Op::Select),
        1 => id().prop_map(Op::Get),
        2 => (id(), change()).prop_map(|(i, c)| Op::ChangeSessionProperties(i, c)),
        2 => (filter(), change()).prop_map(|(f, c)| Op::ChangeProperties(f, c)),
        1 => filter().prop_map(Op::CloseSessions),
        2 => (filter(), fetch()).prop_map(|(f, r)| Op::Fetch(f, r)),
    ]
}

fn model_matches(filter: &str, s: &BTreeMap<String, String>) -> bool {
    let f = Filter::parse(filter).unwrap();
    let map: HashMap<String, String> = s.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    reference::matches_map(f.expr(), &map)
}

fn change_model_roles(s: &mut BTreeMap<String, String>, remove: &[String], add: &[String]) {
    let mut roles = string_to_roles(s.get("$Roles").map_or("", String::as_str)).unwrap();
    roles.retain(|r| !remove.contains(r));
    for a in add {
        if !roles.contains(a) {
            roles.push(a.clone());
        }
    }
    s.insert("$Roles".into(), roles_to_string(roles));
}

fn valid_user_key(k: &str) -> bool {
    !k.starts_with('$') && session_filter::validate_user_key(k).is_ok()
}

fn has_dup(keys: impl IntoIterator<Item = String>) -> bool {
    let mut seen = Vec::new();
    keys.into_iter().any(|k| {
        let dup = seen.contains(&k);
        seen.push(k);
        dup
    })
}

/// The change as the store applies it (last word on a key wins, settable
/// fixed properties normalised), or `None` when it is invalid.
fn model_change(change: &Change) -> Option<Vec<(String, Option<String>)>> {
    let last: BTreeMap<String, Option<String>> = change.iter().cloned().collect();
    let mut out = Vec::new();
    for (k, v) in last {
        if !k.starts_with('$') {
            if !valid_user_key(&k) {
                return None;
            }
            out.push((k, v));
            continue;
        }
        let v = v?;
        let v = match k.as_str() {
            "$Country" => v.to_ascii_uppercase(),
            "$Language" => v.to_ascii_lowercase(),
            "$Latitude" | "$Longitude" if model_decimal(&v) => v,
            "$Latitude" | "$Longitude" => "NaN".into(),
            _ => return None,
        };
        out.push((k, Some(v)));
    }
    Some(out)
}

/// Applies a checked change to one model session; returns what changed.
fn apply_model_change(
    s: &mut BTreeMap<String, String>,
    change: &[(String, Option<String>)],
) -> BTreeMap<String, Option<String>> {
    let mut changed = BTreeMap::new();
    for (k, v) in change {
        let old = s.get(k).cloned();
        if old.as_ref() == v.as_ref() {
            continue;
        }
        changed.insert(k.clone(), old);
        match v {
            Some(v) => s.insert(k.clone(), v.clone()),
            None => s.remove(k),
        };
    }
    changed
}

/// A fetch over the model: sort every match, then cut the page.
fn model_fetch(model: &Model, filter: &str, r: &Fetch) -> String {
    let mut matches: Vec<&BTreeMap<String, String>> =
        model.iter().filter(|s| model_matches(filter, s)).collect();
    let key = r.order_by.as_deref().unwrap_or("$SessionId");
    matches.sort_by(|a, b| {
        let by_value = match (a.get(key), b.get(key)) {
            (Some(x), Some(y)) if r.descending => y.as_bytes().cmp(x.as_bytes()),
            (Some(x), Some(y)) => x.as_bytes().cmp(y.as_bytes()),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        };
        by_value.then_with(|| a["$SessionId"].cmp(&b["$SessionId"]))
    });
    let page: Vec<(String, BTreeMap<String, String>)> = matches
        .iter()
        .skip(r.offset)
        .take(r.limit.unwrap_or(usize::MAX))
        .map(|s| {
            let props = match &r.projection {
                None => BTreeMap::new(),
                Some(None) => (*s).clone(),
                Some(Some(keys)) => keys
                    .iter()
                    .filter_map(|k| Some((k.clone(), s.get(k)?.clone())))
                    .collect(),
            };
            (s["$SessionId"].clone(), props)
        })
        .collect();
    format!("{} {:?}", matches.len(), page)
}

fn show_page(page: FetchPage) -> String {
    let sessions: Vec<(String, BTreeMap<String, String>)> = page
        .sessions
        .into_iter()
        .map(|s| (s.id, s.properties))
        .collect();
    format!("{} {:?}", page.total, sessions)
}

fn show_closed(closed: Vec<ClosedSession>) -> String {
    let closed: Vec<(String, BTreeMap<String, String>)> =
        closed.into_iter().map(|c| (c.id, c.properties)).collect();
    format!("{closed:?}")
}

/// Applies `op` to the model; returns what the store should answer, as text.
fn apply_model(model: &mut Model, op: &Op) -> String {
    let bad_filter = |f: &str| Filter::parse(f).is_err();
    let find = |model: &Model, id: &str| model.iter().position(|s| s["$SessionId"] == id);
    match op {
        Op::Insert(props) => {
            let id = &props[0].1;
            let keys = props.iter().map(|(k, _)| k.clone());
            if has_dup(keys)
                || props
                    .iter()
                    .any(|(k, _)| !k.starts_with('$') && !valid_user_key(k))
            {
                return "err".into();
            }
            if find(model, id).is_some() {
                return "err".into();
            }
            let mut s: BTreeMap<String, String> = props.iter().cloned().collect();
            if let Some(r) = s.get("$Roles").cloned() {
                s.insert(
                    "$Roles".into(),
                    roles_to_string(string_to_roles(&r).unwrap()),
                );
            }
            model.push(s);
            "ok".into()
        }
        Op::Close(f) if bad_filter(f) => "err".into(),
        Op::Close(f) => {
            let before = model.len();
            model.retain(|s| !model_matches(f, s));
            (before - model.len()).to_string()
        }
        Op::CloseSession(id) => match find(model, id) {
            Some(i) => {
                model.remove(i);
                "true".into()
            }
            None => "false".into(),
        },
        Op::ChangeRoles(f, _, _) if bad_filter(f) => "err".into(),
        Op::ChangeRoles(f, remove, add) => {
            let mut n = 0;
            for s in model.iter_mut().filter(|s| model_matches(f, s)) {
                change_model_roles(s, remove, add);
                n += 1;
            }
            n.to_string()
        }
        Op::ChangeSessionRoles(id, remove, add) => match find(model, id) {
            Some(i) => {
                change_model_roles(&mut model[i], remove, add);
                "ok".into()
            }
            None => "err".into(),
        },
        Op::SetProperties(id, props) => {
            if props.iter().any(|(k, _)| !valid_user_key(k))
                || has_dup(props.iter().map(|(k, _)| k.clone()))
            {
                return "err".into();
            }
            match find(model, id) {
                Some(i) => {
                    model[i].extend(props.iter().cloned());
                    "ok".into()
                }
                None => "err".into(),
            }
        }
        Op::RemoveProperties(id, keys) => {
            if keys.iter().any(|k| !valid_user_key(k)) {
                return "err".into();
            }
            match find(model, id) {
                Some(i) => {
                    for k in keys {
                        model[i].remove(k);
                    }
                    "ok".into()
                }
                None => "err".into(),
            }
        }
        Op::Count(f) if bad_filter(f) => "err".into(),
        Op::Count(f) => model
            .iter()
            .filter(|s| model_matches(f, s))
            .count()
            .to_string(),
        Op::Select(f) if bad_filter(f) => "err".into(),
        Op::Select(f) => {
            let mut ids: Vec<String> = model
                .iter()
                .filter(|s| model_matches(f, s))
                .map(|s| s["$SessionId"].clone())
                .collect();
            ids.sort();
            format!("{ids:?}")
        }
        Op::Get(id) => format!("{:?}", find(model, id).map(|i| model[i].clone())),
        Op::ChangeSessionProperties(id, change) => {
            let (Some(change), Some(i)) = (model_change(change), find(model, id)) else {
                return "err".into();
            };
            format!("{:?}", apply_model_change(&mut model[i], &change))
        }
        Op::ChangeProperties(f, _) if bad_filter(f) => "err".into(),
        Op::ChangeProperties(f, change) => {
            let Some(change) = model_change(change) else {
                return "err".into();
            };
            let mut n = 0;
            for s in model.iter_mut().filter(|s| model_matches(f, s)) {
                apply_model_change(s, &change);
                n += 1;
            }
            n.to_string()
        }
        Op::CloseSessions(f) if bad_filter(f) => "err".into(),
        Op::CloseSessions(f) => {
            let (mut closed, kept): (Model, Model) =
                model.drain(..).partition(|s| model_matches(f, s));
            *model = kept;
            closed.sort_by(|a, b| a["$SessionId"].cmp(&b["$SessionId"]));
            let closed: Vec<(String, BTreeMap<String, String>)> = closed
                .into_iter()
                .map(|s| (s["$SessionId"].clone(), s))
                .collect();
            format!("{closed:?}")
        }
        Op::Fetch(f, _) if bad_filter(f) => "err".into(),
        Op::Fetch(f, r) => model_fetch(model, f, r),
    }
}

fn apply_store(store: &SessionStore, op: &Op) -> String {
    fn strs(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    fn ok<T>(r: Result<T, Error>, f: impl Fn(T) -> String) -> String {
        r.map_or_else(|_| "err".into(), f)
    }
    match op {
        Op::Insert(p) => ok(
            store.insert(p.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            |_| "ok".into(),
        ),
        Op::Close(f) => ok(store.close(f), |n| n.to_string()),
        Op::CloseSession(id) => store.close_session(id).to_string(),
        Op::ChangeRoles(f, r, a) => {
            ok(store.change_roles(f, &strs(r), &strs(a)), |n| n.to_string())
        }
        Op::ChangeSessionRoles(id, r, a) => {
            ok(store.change_session_roles(id, &strs(r), &strs(a)), |_| {
                "ok".into()
            })
        }
        Op::SetProperties(id, p) => ok(
            store.set_properties(id, p.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            |_| "ok".into(),
        ),
        Op::RemoveProperties(id, keys) => {
            ok(store.remove_properties(id, &strs(keys)), |_| "ok".into())
        }
        Op::Count(f) => ok(store.count(f), |n| n.to_string()),
        Op::Select(f) => ok(store.select(f), |ids| format!("{:?}", sorted(ids))),
        Op::Get(id) => format!("{:?}", store.get(id)),
        Op::ChangeSessionProperties(id, c) => ok(
            store.change_session_properties(id, &property_change(c)),
            |changed| format!("{changed:?}"),
        ),
        Op::ChangeProperties(f, c) => ok(store.change_properties(f, &property_change(c)), |n| {
            n.to_string()
        }),
        Op::CloseSessions(f) => ok(store.close_sessions(f), show_closed),
        Op::Fetch(f, r) => ok(store.fetch(f, &r.request()), show_page),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn store_agrees_with_a_simple_model(ops in prop::collection::vec(op(), 1..40)) {
        let store = SessionStore::with_options(StoreOptions::new().shards(3));
        let mut model: Model = Vec::new();
        for (step, op) in ops.iter().enumerate() {
            let want = apply_model(&mut model, op);
            let got = apply_store(&store, op);
            prop_assert_eq!(got, want, "step {}: {:?}", step, op);
            prop_assert_eq!(store.len(), model.len());
        }
        // Nothing else changed either: every session is as the model has it.
        for s in &model {
            prop_assert_eq!(store.get(&s["$SessionId"]), Some(s.clone()));
        }
    }
}

/// Issue 19: limits on data. Each one is an error that names it and
/// changes nothing, by id and by filter.
#[test]
fn data_limits_name_the_limit_and_change_nothing() {
    use session_filter::{DataLimit, DataLimits};
    let limits = DataLimits::new()
        .with_roles_per_session(3)
        .with_roles_per_change(4)
        .with_properties_per_session(4)
        .with_properties_per_change(2)
        .with_key_len(10) // `$SessionId` fits
        .with_value_len(8)
        .with_keys_per_fetch(2);
    let store = SessionStore::with_options(StoreOptions::new().data_limits(limits));
    fn over<T>(r: Result<T, Error>, limit: DataLimit) {
        match r {
            Err(Error::LimitExceeded { limit: l, .. }) => assert_eq!(l, limit),
            other => panic!("{limit:?}: {:?}", other.map(drop)),
        }
    }
    over(
        store.insert([("$SessionId", "a"), ("LongerKey10", "v")]),
        DataLimit::KeyLength,
    );
    over(
        store.insert([("$SessionId", "a"), ("k", "123456789")]),
        DataLimit::ValueLength,
    );
    over(
        store.insert([
            ("$SessionId", "a"),
            ("a", ""),
            ("b", ""),
            ("c", ""),
            ("d", ""),
        ]),
        DataLimit::PropertiesPerSession,
    );
    over(
        store.insert([("$SessionId", "a"), ("$Roles", "'w','x','y','z'")]),
        DataLimit::RolesPerSession,
    );
    over(
        store.insert([("$SessionId", "a"), ("$Roles", "'123456789'")]),
        DataLimit::ValueLength,
    );
    over(
        store.insert_session(
            session_filter::Session::new([("$SessionId", "a"), ("k", "123456789")]).unwrap(),
        ),
        DataLimit::ValueLength,
    );
    assert!(store.is_empty());
    store
        .insert([("$SessionId", "a"), ("k", "1"), ("$Roles", "'r1','r2'")])
        .unwrap();
    store.insert([("$SessionId", "b"), ("k", "1")]).unwrap();
    let before = (store.get("a"), store.get("b"));
    // By id.
    over(
        store.set_properties("a", [("x", "1"), ("y", "2")]),
        DataLimit::PropertiesPerSession,
    );
    over(
        store.set_properties("a", [("x", "1"), ("y", "2"), ("z", "3")]),
        DataLimit::PropertiesPerChange,
    );
    over(
        store.remove_properties("a", &["x", "y", "z"]),
        DataLimit::PropertiesPerChange,
    );
    over(
        store.change_session_roles("a", &[], &["r3", "r4"]),
        DataLimit::RolesPerSession,
    );
    over(
        store.change_session_roles("a", &["a", "b"], &["c", "d", "e"]),
        DataLimit::RolesPerChange,
    );
    over(
        store.change_session_properties("b", &PropertyChange::new().set("k", "123456789")),
        DataLimit::ValueLength,
    );
    // By filter: `b` could take two roles, `a` cannot, so neither does.
    over(
        store.change_roles("has k", &[], &["r3", "r4"]),
        DataLimit::RolesPerSession,
    );
    over(
        store.change_properties("has k", &PropertyChange::new().set("n", "1").set("m", "2")),
        DataLimit::PropertiesPerSession,
    );
    assert_eq!((store.get("a"), store.get("b")), before, "nothing changed");
    // Within the limits, the same kinds of change go through.
    store.change_roles("has k", &["r1"], &["r3"]).unwrap();
    store
        .change_properties("has k", &PropertyChange::new().set("n", "1"))
        .unwrap();
    assert_eq!(store.get("a").unwrap()["$Roles"], r#""r2","r3""#);
    over(
        store.fetch("all", &FetchRequest::new().properties(["k", "n", "x"])),
        DataLimit::KeysPerFetch,
    );
    assert_eq!(
        store
            .fetch("all", &FetchRequest::new().properties(["k", "n"]))
            .unwrap()
            .total,
        2
    );
    let text = Error::LimitExceeded {
        limit: DataLimit::KeyLength,
        max: 8,
        actual: 9,
    }
    .to_string();
    assert!(
        text.contains("bytes per key") && text.contains('8') && text.contains('9'),
        "{text}"
    );
}

/// The defaults are what a real server can live with.
#[test]
fn default_data_limits_allow_a_real_server() {
    use session_filter::{DataLimit, DataLimits};
    let d = DataLimits::new();
    assert_eq!(d.get(DataLimit::PropertiesPerSession), 1024);
    assert_eq!(d.get(DataLimit::RolesPerSession), 256);
    assert_eq!(d.get(DataLimit::KeyLength), 1024);
    assert_eq!(d.get(DataLimit::ValueLength), 64 * 1024);
    assert_eq!(d.get(DataLimit::KeysPerFetch), 1024);
    let store = SessionStore::new();
    let props: Vec<(String, String)> = (0..1023)
        .map(|i| (format!("k{i}"), "v".repeat(1000)))
        .chain([("$SessionId".to_string(), "a".to_string())])
        .collect();
    store.insert(props).unwrap();
    assert!(store.set_properties("a", [("one-more", "v")]).is_err());
}

/// SPEC 6.1: `set_properties` and `remove_properties` go through the one
/// change path, which touches only the keys changed: on a session of
/// thousands of keys a one-key change costs about what it costs on a small
/// session (before, each call cloned the session and re-indexed every key).
#[test]
fn a_one_key_change_costs_the_key_not_the_session() {
    use std::time::{Duration, Instant};
    let store = SessionStore::new();
    let wide: Vec<(String, String)> = (0..1000)
        .map(|i| (format!("k{i}"), format!("v{i}")))
        .chain([("$SessionId".to_string(), "wide".to_string())])
        .collect();
    store.insert(wide).unwrap();
    store
        .insert([("$SessionId", "narrow"), ("k0", "v")])
        .unwrap();
    // The least time of several rounds, to see past a noisy machine.
    let time = |id: &str| {
        (0..5)
            .map(|round| {
                let start = Instant::now();
                for i in 0..100 {
                    let value = format!("x{round}-{i}");
                    store.set_properties(id, [("k0", value.as_str())]).unwrap();
                    store.remove_properties(id, &["absent"]).unwrap();
                }
                start.elapsed()
            })
            .min()
            .unwrap_or(Duration::ZERO)
    };
    let (wide, narrow) = (time("wide"), time("narrow"));
    assert!(
        wide < narrow * 10 + Duration::from_millis(5),
        "a one-key change on 1000 keys took {wide:?}, on one key {narrow:?}"
    );
}
