//! Memory follows the live sessions, not the peak: a store that held many
//! sessions and lost most of them comes within twice the structures of a
//! store that only ever held the survivors. Measured by the capacity of
//! those structures (`SessionStore::memory`), since the allocator may keep
//! freed pages and resident size alone cannot show it.

use std::sync::{Mutex, MutexGuard, PoisonError};

use session_filter::{
    interner_memory, Execution, InternerMemory, Program, SessionStore, StoreMemory,
};

const PEAK: usize = 200_000;

/// The interner is global: the tests here run one at a time, so the one
/// that measures it sees only its own strings come and go.
static ALONE: Mutex<()> = Mutex::new(());

fn alone() -> MutexGuard<'static, ()> {
    ALONE.lock().unwrap_or_else(PoisonError::into_inner)
}

fn session(i: usize) -> Vec<(String, String)> {
    let mut props = session_filter::demo::properties(i as u64);
    let keep = if i.is_multiple_of(10) { "yes" } else { "no" };
    props.push(("Keep".into(), keep.into()));
    props
}

fn fresh_survivors() -> SessionStore {
    let store = SessionStore::new();
    for i in (0..PEAK).step_by(10) {
        store.insert(session(i)).unwrap();
    }
    store
}

fn peaked() -> SessionStore {
    let store = SessionStore::new();
    for i in 0..PEAK {
        store.insert(session(i)).unwrap();
    }
    store
}

/// Every part of `after` within twice the same part of `fresh`.
fn assert_within_twice(after: &StoreMemory, fresh: &StoreMemory) {
    assert_eq!(after.sessions, fresh.sessions);
    let parts = [
        ("slots", after.slots, fresh.slots),
        ("records", after.records, fresh.records),
        ("live sets", after.live, fresh.live),
        // A fresh store has no free slots: bound the list by its slots.
        ("free lists", after.free, fresh.free.max(fresh.slots * 4)),
        ("id maps", after.ids, fresh.ids),
        ("index tables", after.index_tables, fresh.index_tables),
        ("index postings", after.index_postings, fresh.index_postings),
        ("total", after.total(), fresh.total()),
    ];
    for (part, a, f) in parts {
        assert!(a <= 2 * f, "{part}: {a} bytes after the drop, {f} fresh");
    }
}

/// The store answers as the fresh one does, by index and by scan.
fn assert_same_answers(store: &SessionStore, fresh: &SessionStore) {
    for filter in [
        "all",
        "Status ne 'Closed'",
        "$Principal is 'name42'",
        "hasRoles ['trader']",
    ] {
        let program = Program::compile(filter).unwrap();
        let want = fresh.count_with(&program, Execution::ScanSerial);
        for execution in [Execution::ScanSerial, Execution::Indexed] {
            assert_eq!(store.count_with(&program, execution), want, "{filter}");
        }
        assert_eq!(
            store.select_compiled(&program),
            fresh.select_compiled(&program)
        );
    }
    assert_eq!(store.get("s000010"), fresh.get("s000010"));
    assert_eq!(store.get("s000011"), None);
}

#[test]
fn closing_by_filter_shrinks_the_store_to_its_live_sessions() {
    let _alone = alone();
    let store = peaked();
    let peak = store.memory();
    assert_eq!(store.close("Keep is 'no'").unwrap(), PEAK - PEAK / 10);
    let fresh = fresh_survivors();
    let after = store.memory();
    assert!(after.total() * 4 < peak.total(), "{after:?}\n{peak:?}");
    assert_within_twice(&after, &fresh.memory());
    assert_same_answers(&store, &fresh);
    // Slots are reused after the compaction, and new sessions are found.
    store.insert(session(1)).unwrap();
    assert!(store.get("s000001").is_some());
    assert_eq!(store.count("$SessionId is 's000001'").unwrap(), 1);
}

#[test]
fn closing_one_by_one_shrinks_the_store_too() {
    let _alone = alone();
    let store = peaked();
    for i in (0..PEAK).filter(|i| !i.is_multiple_of(10)) {
        assert!(store.close_session(&format!("s{i:06}")));
    }
    let fresh = fresh_survivors();
    assert_within_twice(&store.memory(), &fresh.memory());
    assert_same_answers(&store, &fresh);
}

#[test]
fn changes_after_a_compaction_reach_the_right_sessions() {
    let _alone = alone();
    let store = peaked();
    store.close("Keep is 'no'").unwrap();
    assert_eq!(
        store
            .change_roles("$SessionId in ['s000010', 's000020']", &[], &["shrunk"])
            .unwrap(),
        2
    );
    assert_eq!(
        store.select("hasRoles ['shrunk']").unwrap(),
        ["s000010", "s000020"]
    );
    store.set_properties("s000030", [("Tier", "tin")]).unwrap();
    assert_eq!(store.select("Tier is 'tin'").unwrap(), ["s000030"]);
}

/// The interner's slots follow the live strings when sessions end roughly
/// in the order they began: the chunks that held only the strings of
/// closed sessions are given back, and so is everything once the store is
/// gone. (Survivors scattered evenly over the peak keep their chunks: ids
/// are stable, so slots never move; README, "Memory per session".)
#[test]
fn the_interner_gives_back_the_chunks_of_strings_that_are_gone() {
    let _alone = alone();
    let base = interner_memory();
    let store = peaked();
    let peak = interner_memory();
    for i in 0..PEAK - PEAK / 10 {
        assert!(store.close_session(&format!("s{i:06}")));
    }
    let after = interner_memory();
    let grown = |m: &InternerMemory| {
        (
            m.slots.saturating_sub(base.slots),
            m.total().saturating_sub(base.total()),
        )
    };
    eprintln!("base {base:?}\npeak {peak:?}\nafter {after:?}");
    let (peak_slots, peak_total) = grown(&peak);
    let (after_slots, after_total) = grown(&after);
    assert!(
        after_slots * 3 <= peak_slots,
        "slots: {after_slots} of {peak_slots} kept"
    );
    assert!(
        after_total * 3 <= peak_total,
        "total: {after_total} of {peak_total} kept"
    );
    drop(store);
    let end = interner_memory();
    eprintln!("end {end:?}");
    // At most one empty chunk (64 slots of 20 bytes) kept per shard, and
    // hash tables too small to shrink.
    assert!(end.slots <= base.slots.max(16 * 64 * 20), "{end:?}");
    assert!(end.total() <= base.total() + (128 << 10), "{end:?}");
}
