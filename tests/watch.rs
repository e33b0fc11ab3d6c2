//! Watches on a store (SPEC 8.2): the events and counts every change gives,
//! against a naive model that evaluates every filter on every session before
//! and after every change; a concurrency stress test; and a consumer that
//! never reads.

mod common;
#[path = "../fuzz/src/watch_model.rs"]
mod watch_model;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::strategies::{expr, role, session, value};
use proptest::prelude::*;
use session_filter::syntax::Expr;
use session_filter::{
    Error, Filter, Program, SessionStore, StoreOptions, Watch, WatchEvent, WatchOptions,
};
use watch_model::{expected, expected_with, matches, replay, sorted, state, Reports, State};

#[derive(Clone, Debug)]
enum Step {
    Insert(Vec<(String, String)>),
    Close(Filter),
    CloseSession(usize),
    ChangeRoles(Filter, Vec<String>, Vec<String>),
    ChangeSessionRoles(usize, Vec<String>, Vec<String>),
    SetProperty(usize, String, String),
    RemoveProperty(usize, String),
    Signal(usize),
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
        1 => (0..30usize).prop_map(Step::Signal),
        1 => (0..filters).prop_map(Step::Watch),
        1 => (0..filters).prop_map(Step::Unwatch),
    ]
}

fn contains_all(e: &Expr) -> bool {
    match e {
        Expr::All { .. } => true,
        Expr::Not { expr, .. } => contains_all(expr),
        Expr::And { exprs, .. } | Expr::Or { exprs, .. } => exprs.iter().any(contains_all),
        _ => false,
    }
}

/// Filters for watches, each with what it reports: no `all` inside (the
/// compiler keeps some tests the model's folding drops, so the keys a
/// filter reads would differ), plain `all`, and repeats, so that identical
/// filters share an entry.
fn watch_filters() -> impl Strategy<Value = Vec<(Expr, Reports)>> {
    let one = prop_oneof![
        8 => expr().prop_filter("no folding", |e| !contains_all(e)),
        1 => Just(Expr::all()),
    ];
    let keys = prop::collection::btree_set(
        prop::sample::select(vec!["k", "Department", "$Roles", "$Country"]).prop_map(String::from),
        0..2,
    );
    let reports = (
        any::<bool>(),
        keys,
        prop::bool::weighted(0.2),
        any::<bool>(),
    )
        .prop_map(
            |(filter_updates, update_keys, all_updates, properties)| Reports {
                filter_updates,
                update_keys,
                all_updates,
                properties,
            },
        );
    prop::collection::vec((one, reports), 1..6).prop_map(|mut v| {
        let again = v[0].clone();
        v.push(again);
        v
    })
}

/// The options a watch that reports `r` is made with.
fn options(r: &Reports) -> WatchOptions {
    let mut o = WatchOptions::new();
    if !r.filter_updates {
        o = o.membership_only();
    }
    o = o.updates_of(r.update_keys.iter().cloned());
    if r.all_updates {
        o = o.all_updates();
    }
    if !r.properties {
        o = o.without_properties();
    }
    o
}

/// The `Signal` events a signal to `id` gives a watch of `filter`.
fn signalled(filter: &Expr, r: &Reports, state: &State, id: &str) -> Vec<WatchEvent> {
    match state.get(id) {
        Some(p) if matches(filter, p) => vec![WatchEvent::Signal {
            id: Arc::from(id),
            signal: "ping",
            properties: r.properties.then(|| Arc::new(p.clone())),
        }],
        _ => Vec::new(),
    }
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
        Step::Signal(i) => {
            let id = format!("s{i}");
            match store.signal_session(&id, "ping") {
                Ok(()) => assert!(store.get(&id).is_some()),
                Err(e) => assert_eq!(e, Error::UnknownSession(id)),
            }
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
        let program = |f: &Expr| Program::new(&f.clone().into()).unwrap();
        let mut watches: Vec<Option<Watch>> = filters
            .iter()
            .map(|(f, r)| Some(store.watch_compiled(&program(f), options(r))))
            .collect();
        let mut next_id = 0;
        for step in &steps {
            let before = state(&store);
            match step {
                Step::Watch(i) if *i < filters.len() && watches[*i].is_none() => {
                    // A watch made now reports the sessions that match as entered.
                    let (f, r) = &filters[*i];
                    let w = store.watch_compiled(&program(f), options(r));
                    prop_assert_eq!(w.snapshot_remaining() as usize, expected(f, &State::new(), &before).len());
                    let got = sorted(w.drain());
                    prop_assert_eq!(got, expected_with(f, r, &State::new(), &before), "snapshot");
                    prop_assert_eq!(w.snapshot_remaining(), 0);
                    watches[*i] = Some(w);
                }
                Step::Unwatch(i) if *i < filters.len() => watches[*i] = None,
                _ => {}
            }
            apply(&store, step, &mut next_id);
            let after = state(&store);
            for ((f, r), w) in filters.iter().zip(&watches) {
                let Some(w) = w else { continue };
                let got = sorted(w.drain());
                let want = match step {
                    Step::Signal(i) => signalled(f, r, &after, &format!("s{i}")),
                    _ => expected_with(f, r, &before, &after),
                };
                prop_assert_eq!(&got, &want, "{} after {:?}", Filter::from(f.clone()), step);
                let count = after.values().filter(|p| matches(f, p)).count();
                prop_assert_eq!(w.count() as usize, count, "count of {}", Filter::from(f.clone()));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    /// A snapshot read only after changes (and read a little at a time in
    /// between) still tells each session once, and the replay ends equal to
    /// the matching sessions: changes of pending sessions fold into the
    /// snapshot or take them out of it.
    #[test]
    fn a_snapshot_read_late_tells_each_session_once(
        filters in watch_filters(),
        first in prop::collection::vec(session(), 0..60),
        steps in prop::collection::vec(step(1), 1..40),
        shards in 1usize..4,
    ) {
        let store = SessionStore::with_options(StoreOptions::new().shards(shards));
        let mut next_id = 0;
        for props in first {
            apply(&store, &Step::Insert(props), &mut next_id);
        }
        let (f, r) = &filters[0];
        let w = store.watch_compiled(&Program::new(&f.clone().into()).unwrap(), options(r));
        let mut members = BTreeSet::new();
        for (n, step) in steps.iter().enumerate() {
            apply(&store, step, &mut next_id);
            if n % 3 == 0 {
                if let Some(e) = w.try_recv() {
                    replay(&mut members, e).map_err(TestCaseError::fail)?;
                }
            }
        }
        for e in w.drain() {
            replay(&mut members, e).map_err(TestCaseError::fail)?;
        }
        let want: BTreeSet<String> = state(&store)
            .into_iter()
            .filter(|(_, p)| matches(f, p))
            .map(|(id, _)| id)
            .collect();
        prop_assert_eq!(&members, &want);
        prop_assert_eq!(w.count() as usize, want.len());
        prop_assert_eq!(w.snapshot_remaining(), 0);
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
        .all(|(i, e)| e.id() == Some(&*format!("s{i}"))));
    assert_eq!(
        events[16],
        WatchEvent::Lagged {
            missed: 10_000 - 16
        }
    );
    // After the marker, delivery resumes.
    store.insert([("$SessionId", "late"), ("k", "v")]).unwrap();
    assert!(matches!(lazy.try_recv(), Some(WatchEvent::Entered { id, .. }) if &*id == "late"));
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
                ids.push(id.to_string());
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

/// SPEC 8.2 and issue 19: a snapshot far larger than the queue is delivered
/// whole while a writer keeps changing the store, with no `Lagged`, no
/// session told twice and none missed. Before, the snapshot went through
/// the queue and was cut at its capacity.
#[test]
fn a_snapshot_larger_than_the_queue_is_delivered_whole_while_a_writer_works() {
    const SESSIONS: usize = 200_000;
    const OPS: usize = 4_000;
    let store = Arc::new(SessionStore::new());
    for i in 0..SESSIONS {
        store
            .insert([("$SessionId", format!("s{i}")), ("Group", "a".into())])
            .unwrap();
    }
    let filter = "Group is 'a'";
    let watch = Arc::new(
        store
            .watch(
                filter,
                WatchOptions::new().capacity(16).updates_of(["Desk"]),
            )
            .unwrap(),
    );
    assert_eq!(watch.count() as usize, SESSIONS);
    assert_eq!(watch.snapshot_remaining() as usize, SESSIONS);
    let received = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writer = {
        let (store, watch, received) = (store.clone(), watch.clone(), received.clone());
        thread::spawn(move || {
            for op in 0..OPS {
                // Spread over the snapshot, and never more than a few events
                // ahead of the reader, so only the snapshot could overflow
                // the queue.
                while received.load(Ordering::Acquire) < op * 40 || watch.queued() > 4 {
                    thread::yield_now();
                }
                let i = (op * 7919) % SESSIONS;
                let id = format!("s{i}");
                match op % 5 {
                    0 => store
                        .insert([("$SessionId", format!("w{op}")), ("Group", "a".into())])
                        .unwrap(),
                    1 => {
                        let group = ["a", "b"][op % 2];
                        let _ = store.set_properties(&id, [("Group", group)]);
                    }
                    2 => {
                        let _ = store.set_properties(&id, [("Desk", format!("d{op}"))]);
                    }
                    3 => {
                        store.close_session(&id);
                    }
                    _ => {
                        let _ = store.signal_session(&id, "ping");
                    }
                }
            }
        })
    };
    let mut members = BTreeSet::new();
    let mut told = 0usize;
    loop {
        match watch.recv_timeout(Duration::from_millis(50)) {
            Some(event) => {
                received.fetch_add(1, Ordering::Release);
                told += 1;
                replay(&mut members, event).unwrap();
            }
            None if writer.is_finished() => break,
            None => {}
        }
    }
    writer.join().unwrap();
    for event in watch.drain() {
        replay(&mut members, event).unwrap();
    }
    assert_eq!(watch.snapshot_remaining(), 0);
    let expected: BTreeSet<String> = store.select(filter).unwrap().into_iter().collect();
    assert_eq!(members.len(), expected.len());
    assert!(members == expected, "replayed events equal select");
    assert_eq!(watch.count() as usize, expected.len());
    assert!(told >= SESSIONS, "{told} events");
}

/// A signal reaches every watch that matches the session, in order with its
/// changes, with its properties; one to a session still in a watch's
/// snapshot delivers the session first, and the snapshot does not repeat it.
#[test]
fn signals_arrive_in_order_with_changes_and_before_the_snapshot_repeats_nothing() {
    let store = SessionStore::new();
    for i in 0..300 {
        store
            .insert([("$SessionId", format!("s{i}")), ("Desk", "FX".into())])
            .unwrap();
    }
    let w = store.watch("Desk is 'FX'", WatchOptions::new()).unwrap();
    let other = store.watch("Desk is 'Rates'", WatchOptions::new()).unwrap();
    store.signal_session("s250", "disconnected").unwrap();
    store.set_properties("s250", [("Desk", "Rates")]).unwrap();
    store.signal_session("s250", "reconnected").unwrap();
    let events = w.drain();
    assert_eq!(events.len(), 300 + 2, "300 entered, one signal, one left");
    let of_250: Vec<&WatchEvent> = events.iter().filter(|e| e.id() == Some("s250")).collect();
    assert!(matches!(of_250[0], WatchEvent::Entered { .. }));
    assert!(
        matches!(of_250[1], WatchEvent::Signal { signal: "disconnected", properties: Some(p), .. } if p["Desk"] == "FX")
    );
    assert!(
        matches!(of_250[2], WatchEvent::Left { closed: false, properties: Some(p), .. } if p["Desk"] == "Rates")
    );
    assert_eq!(of_250.len(), 3);
    let ids: BTreeSet<&str> = events.iter().filter_map(WatchEvent::id).collect();
    assert_eq!(ids.len(), 300);
    let got = other.drain();
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(matches!(
        &got[1],
        WatchEvent::Signal {
            signal: "reconnected",
            ..
        }
    ));
    assert_eq!(
        store.signal_session("nobody", "x"),
        Err(Error::UnknownSession("nobody".into()))
    );
}

/// `updates_of` reports changes of keys the filter does not read;
/// `membership_only` reports none; `without_properties` carries no maps; and
/// watches that get the same event share its payloads.
#[test]
fn options_choose_updates_and_payloads_and_payloads_are_shared() {
    let store = SessionStore::new();
    store
        .insert([("$SessionId", "a"), ("Desk", "FX"), ("Tier", "gold")])
        .unwrap();
    let desk = store
        .watch("all", WatchOptions::new().updates_of(["Desk"]))
        .unwrap();
    let plain = store.watch("all", WatchOptions::new()).unwrap();
    let tier = store
        .watch(
            "Tier is 'gold'",
            WatchOptions::new().membership_only().without_properties(),
        )
        .unwrap();
    let every = store
        .watch("has Tier", WatchOptions::new().all_updates())
        .unwrap();
    for w in [&desk, &plain, &tier, &every] {
        assert_eq!(w.drain().len(), 1);
    }
    store.set_properties("a", [("Desk", "Rates")]).unwrap();
    let d = desk.drain();
    assert!(
        matches!(&d[..], [WatchEvent::Updated { previous, properties: Some(p), .. }]
            if previous["Desk"].as_deref() == Some("FX") && p["Desk"] == "Rates"),
        "{d:?}"
    );
    assert_eq!(plain.drain(), [], "`all` reads no key");
    assert_eq!(tier.drain(), []);
    let e = every.drain();
    assert_eq!(e.len(), 1);
    // One change, one payload, whoever gets it.
    match (&d[0], &e[0]) {
        (
            WatchEvent::Updated {
                previous: p1,
                properties: Some(m1),
                ..
            },
            WatchEvent::Updated {
                previous: p2,
                properties: Some(m2),
                ..
            },
        ) => assert!(Arc::ptr_eq(p1, p2) && Arc::ptr_eq(m1, m2)),
        other => panic!("{other:?}"),
    }
    store.set_properties("a", [("Tier", "silver")]).unwrap();
    assert!(matches!(
        &tier.drain()[..],
        [WatchEvent::Left {
            properties: None,
            ..
        }]
    ));
    assert_eq!(every.drain().len(), 1);
    // A key the filter reads, with membership only: nothing.
    let only = store
        .watch("has Tier", WatchOptions::new().membership_only())
        .unwrap();
    only.drain();
    store.set_properties("a", [("Tier", "bronze")]).unwrap();
    assert_eq!(only.drain(), []);
    assert_eq!(every.drain().len(), 1);
}
