//! Watches on a store (SPEC 8.2): the events and counts every change gives,
//! against a naive model that evaluates every filter on every session before
//! and after every change; a concurrency stress test; and a consumer that
//! never reads.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::strategies::{expr, role, session, value};
use proptest::prelude::*;
use session_filter::syntax::Expr;
use session_filter::{
    reference, string_to_roles, Filter, Program, SessionStore, StoreOptions, Watch, WatchEvent,
    WatchOptions,
};

/// Every session's properties, by id.
type State = BTreeMap<String, HashMap<String, String>>;

fn state(store: &SessionStore) -> State {
    let mut out = State::new();
    store.for_each_session(|s| {
        let props: HashMap<String, String> = s.properties().into_iter().collect();
        out.insert(props["$SessionId"].clone(), props);
    });
    out
}

/// The keys a filter mentions (`$Roles` for role tests).
fn keys(e: &Expr, out: &mut BTreeSet<String>) {
    match e {
        Expr::All { .. } => {}
        Expr::Is { key, .. }
        | Expr::Ne { key, .. }
        | Expr::In { key, .. }
        | Expr::Matches { key, .. }
        | Expr::Has { key, .. } => {
            out.insert(key.name.clone());
        }
        Expr::HasRoles { .. } => {
            out.insert("$Roles".into());
        }
        Expr::Not { expr, .. } => keys(expr, out),
        Expr::And { exprs, .. } | Expr::Or { exprs, .. } => exprs.iter().for_each(|e| keys(e, out)),
    }
}

fn contains_all(e: &Expr) -> bool {
    match e {
        Expr::All { .. } => true,
        Expr::Not { expr, .. } => contains_all(expr),
        Expr::And { exprs, .. } | Expr::Or { exprs, .. } => exprs.iter().any(contains_all),
        _ => false,
    }
}

/// The keys whose value differs, roles compared as sets, with their
/// previous values.
fn changed(
    before: &HashMap<String, String>,
    after: &HashMap<String, String>,
) -> BTreeMap<String, Option<String>> {
    let same = |k: &str, a: &str, b: &str| {
        a == b
            || (k == "$Roles" && {
                let (x, y) = (string_to_roles(a).unwrap(), string_to_roles(b).unwrap());
                x.len() == y.len() && x.iter().all(|r| y.contains(r))
            })
    };
    let mut out = BTreeMap::new();
    for (k, v) in after {
        match before.get(k) {
            Some(old) if same(k, old, v) => {}
            old => {
                out.insert(k.clone(), old.cloned());
            }
        }
    }
    for (k, v) in before {
        if !after.contains_key(k) {
            out.insert(k.clone(), Some(v.clone()));
        }
    }
    out
}

/// What a watch of `filter` must report for a change from `before` to
/// `after`, sorted.
fn expected(filter: &Expr, before: &State, after: &State) -> Vec<WatchEvent> {
    let mut mentions = BTreeSet::new();
    keys(filter, &mut mentions);
    let m = |p: &HashMap<String, String>| reference::matches_map(filter, p);
    let props = |p: &HashMap<String, String>| p.clone().into_iter().collect::<BTreeMap<_, _>>();
    let mut out = Vec::new();
    for (id, b) in before {
        match after.get(id) {
            None if m(b) => out.push(WatchEvent::Left {
                id: id.clone(),
                closed: true,
            }),
            None => {}
            Some(a) => match (m(b), m(a)) {
                (true, false) => out.push(WatchEvent::Left {
                    id: id.clone(),
                    closed: false,
                }),
                (false, true) => out.push(WatchEvent::Entered {
                    id: id.clone(),
                    properties: props(a),
                }),
                (true, true) => {
                    let previous = changed(b, a);
                    if previous.keys().any(|k| mentions.contains(k)) {
                        out.push(WatchEvent::Updated {
                            id: id.clone(),
                            previous,
                        });
                    }
                }
                (false, false) => {}
            },
        }
    }
    for (id, a) in after {
        if !before.contains_key(id) && m(a) {
            out.push(WatchEvent::Entered {
                id: id.clone(),
                properties: props(a),
            });
        }
    }
    sort(&mut out);
    out
}

fn sort(events: &mut [WatchEvent]) {
    events.sort_by_key(|e| format!("{e:?}"));
}

#[derive(Clone, Debug)]
enum Step {
    Insert(Vec<(String, String)>),
    Close(Filter),
    CloseSession(usize),
    ChangeRoles(Filter, Vec<String>, Vec<String>),
    ChangeSessionRoles(usize, Vec<String>, Vec<String>),
    SetProperty(usize, String, String),
    RemoveProperty(usize, String),
    Watch(usize),
    Unwatch(usize),
}

fn step(filters: usize) -> impl Strategy<Value = Step> {
    let user_key =
        || prop::sample::select(vec!["k", "Department", "not", "x[y]"]).prop_map(String::from);
    let roles = || prop::collection::vec(role(), 0..3);
    prop_oneof![
        4 => session().prop_map(Step::Insert),
        1 => expr().prop_map(|e| Step::Close(e.into())),
        1 => (0..30usize).prop_map(Step::CloseSession),
        2 => (expr(), roles(), roles()).prop_map(|(e, r, a)| Step::ChangeRoles(e.into(), r, a)),
        1 => (0..30usize, roles(), roles()).prop_map(|(i, r, a)| Step::ChangeSessionRoles(i, r, a)),
        2 => (0..30usize, user_key(), value()).prop_map(|(i, k, v)| Step::SetProperty(i, k, v)),
        1 => (0..30usize, user_key()).prop_map(|(i, k)| Step::RemoveProperty(i, k)),
        1 => (0..filters).prop_map(Step::Watch),
        1 => (0..filters).prop_map(Step::Unwatch),
    ]
}

/// Filters for watches: no `all` inside (the compiler folds it away with
/// the keys beside it, which the model cannot see), plain `all`, and
/// repeats, so that identical filters share an entry.
fn watch_filters() -> impl Strategy<Value = Vec<Expr>> {
    let one = prop_oneof![
        8 => expr().prop_filter("no folding", |e| !contains_all(e)),
        1 => Just(Expr::all()),
    ];
    prop::collection::vec(one, 1..6).prop_map(|mut v| {
        let again = v[0].clone();
        v.push(again);
        v
    })
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn apply(store: &SessionStore, step: &Step, next_id: &mut usize) {
    match step {
        Step::Insert(props) => {
            let id = format!("s{next_id}");
            *next_id += 1;
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
        Step::ChangeSessionRoles(i, r, a) => {
            let _ = store.change_session_roles(&format!("s{i}"), &strs(r), &strs(a));
        }
        Step::SetProperty(i, k, v) => {
            let _ = store.set_properties(&format!("s{i}"), [(k, v)]);
        }
        Step::RemoveProperty(i, k) => {
            let _ = store.remove_properties(&format!("s{i}"), &[k.as_str()]);
        }
        Step::Watch(_) | Step::Unwatch(_) => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn watches_report_exactly_what_the_naive_model_sees(
        filters in watch_filters(),
        steps in prop::collection::vec(step(6), 1..40),
        shards in 1usize..4,
    ) {
        let store = SessionStore::with_options(StoreOptions::new().shards(shards));
        let mut watches: Vec<Option<Watch>> = filters
            .iter()
            .map(|f| Some(store.watch_compiled(&Program::new(&f.clone().into()).unwrap(), WatchOptions::new())))
            .collect();
        let mut next_id = 0;
        for step in &steps {
            let before = state(&store);
            match step {
                Step::Watch(i) if *i < filters.len() && watches[*i].is_none() => {
                    // A watch made now reports the sessions that match as entered.
                    let w = store.watch_compiled(&Program::new(&filters[*i].clone().into()).unwrap(), WatchOptions::new());
                    let mut got = w.drain();
                    sort(&mut got);
                    prop_assert_eq!(got, expected(&filters[*i], &State::new(), &before), "snapshot");
                    watches[*i] = Some(w);
                }
                Step::Unwatch(i) if *i < filters.len() => watches[*i] = None,
                _ => {}
            }
            apply(&store, step, &mut next_id);
            let after = state(&store);
            for (f, w) in filters.iter().zip(&watches) {
                let Some(w) = w else { continue };
                let mut got = w.drain();
                sort(&mut got);
                prop_assert_eq!(&got, &expected(f, &before, &after), "{} after {:?}", f, step);
                let count = after.values().filter(|p| reference::matches_map(f, p)).count();
                prop_assert_eq!(w.count() as usize, count, "count of {}", f);
            }
        }
    }
}

#[test]
fn a_consumer_that_never_reads_blocks_no_writer_and_learns_what_it_missed() {
    let store = SessionStore::new();
    let lazy = store
        .watch("has k", WatchOptions::new().capacity(16))
        .unwrap();
    // Far more events than the queue holds; the writers finish regardless.
    for i in 0..5000 {
        store
            .insert([("$SessionId", format!("s{i}")), ("k", "v".into())])
            .unwrap();
    }
    store.change_roles("has k", &[], &["r"]).unwrap(); // no Updated: roles not read
    assert_eq!(store.close("has k").unwrap(), 5000);
    assert_eq!(
        lazy.count(),
        0,
        "the count stays exact while events are dropped"
    );
    let events = lazy.drain();
    assert_eq!(events.len(), 17, "the queue, then one marker");
    assert!(events[..16]
        .iter()
        .enumerate()
        .all(|(i, e)| matches!(e, WatchEvent::Entered { id, .. } if *id == format!("s{i}"))));
    assert_eq!(
        events[16],
        WatchEvent::Lagged {
            missed: 10_000 - 16
        }
    );
    // After the marker, delivery resumes.
    store.insert([("$SessionId", "late"), ("k", "v")]).unwrap();
    assert!(matches!(lazy.try_recv(), Some(WatchEvent::Entered { id, .. }) if id == "late"));
    assert_eq!(lazy.try_recv(), None);
}

#[test]
fn dropping_a_watch_unregisters_it_and_dropping_the_store_ends_recv() {
    let store = SessionStore::new();
    let w = store.watch("has k", WatchOptions::new()).unwrap();
    let other = store
        .watch("has k", WatchOptions::new().skip_snapshot())
        .unwrap();
    drop(w);
    store.insert([("$SessionId", "a"), ("k", "v")]).unwrap();
    assert_eq!(other.count(), 1);
    drop(store);
    assert!(matches!(other.recv(), Some(WatchEvent::Entered { .. })));
    assert_eq!(other.recv(), None, "the store is gone: no hang");
}

#[test]
fn async_receivers_get_the_same_events() {
    let store = Arc::new(SessionStore::new());
    let w = store.watch("k is 'v'", WatchOptions::new()).unwrap();
    let writer = {
        let store = store.clone();
        thread::spawn(move || {
            for i in 0..100 {
                store
                    .insert([("$SessionId", format!("s{i}")), ("k", "v".into())])
                    .unwrap();
            }
        })
    };
    let got = futures_lite_block_on(async {
        let mut ids = Vec::new();
        while ids.len() < 100 {
            if let Some(WatchEvent::Entered { id, .. }) = w.recv_async().await {
                ids.push(id);
            }
        }
        ids
    });
    writer.join().unwrap();
    let expected: Vec<String> = (0..100).map(|i| format!("s{i}")).collect();
    assert_eq!(got, expected, "one writer's events arrive in order");
}

/// A minimal executor: polls the future on this thread, parking between
/// wake-ups.
fn futures_lite_block_on<F: std::future::Future>(fut: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        thread::park_timeout(Duration::from_millis(50));
    }
}

/// Replays one watch's events into the set of ids it says match.
fn replay(members: &mut BTreeSet<String>, event: WatchEvent) -> Result<(), String> {
    match event {
        WatchEvent::Entered { id, .. } => {
            if !members.insert(id.clone()) {
                return Err(format!("{id} entered twice"));
            }
        }
        WatchEvent::Left { id, .. } => {
            if !members.remove(&id) {
                return Err(format!("{id} left without entering"));
            }
        }
        WatchEvent::Updated { id, .. } => {
            if !members.contains(&id) {
                return Err(format!("{id} updated while outside"));
            }
        }
        WatchEvent::Lagged { missed } => return Err(format!("lagged by {missed}")),
        _ => return Err("an unknown event".into()),
    }
    Ok(())
}

#[test]
fn concurrent_writers_and_readers_lose_nothing_and_report_nothing_twice() {
    let store = Arc::new(SessionStore::with_options(StoreOptions::new().shards(8)));
    for i in 0..400 {
        store
            .insert([
                ("$SessionId", format!("s{i}")),
                ("Department", ["Ops", "Sales"][i % 2].into()),
            ])
            .unwrap();
    }
    let filters = [
        "Department is 'Ops'",
        "hasRoles ['trader'] and not Department is 'Sales'",
        "Tier ne 'gold'",
        "has Tier or hasRoles ['auditor']",
    ];
    let stop = Arc::new(AtomicBool::new(false));
    // Readers start mid-stream: their snapshots meet the writers' changes.
    let readers: Vec<_> = filters
        .iter()
        .map(|&f| {
            let store = store.clone();
            let stop = stop.clone();
            thread::spawn(move || {
                let watch = store
                    .watch(f, WatchOptions::new().capacity(1 << 20))
                    .unwrap();
                let mut members = BTreeSet::new();
                loop {
                    match watch.recv_timeout(Duration::from_millis(20)) {
                        Some(e) => replay(&mut members, e).map_err(|e| format!("{f}: {e}"))?,
                        None if stop.load(Ordering::Acquire) => {
                            // Quiescent: take what is left.
                            for e in watch.drain() {
                                replay(&mut members, e).map_err(|e| format!("{f}: {e}"))?;
                            }
                            return Ok::<_, String>((f, members, watch.count()));
                        }
                        None => {}
                    }
                }
            })
        })
        .collect();
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let store = store.clone();
            thread::spawn(move || {
                for round in 0..300usize {
                    let i = (round * 7 + w * 131) % 400;
                    let id = format!("s{i}");
                    match round % 6 {
                        0 => {
                            let _ = store.set_properties(
                                &id,
                                [("Department", ["Ops", "Sales", "Dev"][round % 3])],
                            );
                        }
                        1 => {
                            let _ = store.change_session_roles(&id, &["auditor"], &["trader"]);
                        }
                        2 => {
                            let _ = store
                                .set_properties(&id, [("Tier", ["gold", "silver"][round % 2])]);
                        }
                        3 => {
                            store.close_session(&id);
                            let _ =
                                store.insert([("$SessionId", id.as_str()), ("Department", "Ops")]);
                        }
                        4 => {
                            let f = format!("$SessionId in ['s{}' 's{}']", i, (i + 1) % 400);
                            store.change_roles(&f, &["trader"], &["auditor"]).unwrap();
                        }
                        _ => {
                            let _ = store.remove_properties(&id, &["Tier"]);
                        }
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    // Let the readers register if they have not yet, then stop them.
    thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Release);
    for r in readers {
        let (filter, members, count) = r.join().unwrap().unwrap();
        let expected: BTreeSet<String> = store.select(filter).unwrap().into_iter().collect();
        assert_eq!(members, expected, "{filter}: replayed events equal select");
        assert_eq!(
            count as usize,
            store.count(filter).unwrap(),
            "{filter}: count"
        );
    }
}
