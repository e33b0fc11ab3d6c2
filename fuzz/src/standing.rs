//! The check of the `standing` target: a `FilterSet` and the watches of a
//! store against a naive model that evaluates every filter on every session
//! before and after every operation (SPEC section 8).

use session_filter::syntax::Expr;
use session_filter::{
    Filter, FilterSet, Program, Session, SessionStore, StoreOptions, WatchOptions,
};

use super::matcher::apply_store;
use super::watch_model::{expected, matches, sorted, state, Props};
use super::StoreOp;

fn session(p: &Props) -> Session {
    match Session::new(p) {
        Ok(s) => s,
        Err(e) => panic!("the store gave back a session it cannot rebuild: {p:?}: {e}"),
    }
}

/// SPEC section 8: after every operation, each watch has reported exactly
/// the entered, left and updated events the model derives, and its count is
/// the number of sessions that match; a `FilterSet` of the same filters
/// gives, for every session, the matching ids and first match in set order,
/// and for every changed session the entered and left ids.
pub fn check_standing(filters: &[Expr], ops: &[StoreOp]) {
    // Filters that do not compile (hand-built bad `$Roles`) are left out.
    let filters: Vec<(Expr, Program)> = filters
        .iter()
        .filter_map(|e| {
            Program::try_from(Filter::from(e.clone()))
                .ok()
                .map(|p| (e.clone(), p))
        })
        .collect();
    let store = SessionStore::with_options(StoreOptions::new().shards(3));
    let watches: Vec<_> = filters
        .iter()
        .map(|(_, p)| store.watch_compiled(p, WatchOptions::new().capacity(1 << 16)))
        .collect();
    let mut set = FilterSet::new();
    for (i, (_, p)) in filters.iter().enumerate() {
        set.insert_program(i, p.clone());
    }
    for (step, op) in ops.iter().enumerate() {
        let bad_filter = match op {
            StoreOp::Close(e)
            | StoreOp::ChangeRoles(e, ..)
            | StoreOp::ChangeProperties(e, _)
            | StoreOp::Query(e, _) => Program::try_from(Filter::from(e.clone())).is_err(),
            _ => false,
        };
        if bad_filter {
            continue;
        }
        let before = state(&store);
        apply_store(&store, op);
        let after = state(&store);
        for ((e, _), w) in filters.iter().zip(&watches) {
            let got = sorted(w.drain());
            let want = expected(e, &before, &after);
            assert_eq!(
                got,
                want,
                "step {step}: {op:?}: watch of {}",
                Filter::from(e.clone())
            );
            let count = after.values().filter(|p| matches(e, p)).count();
            assert_eq!(
                w.count() as usize,
                count,
                "step {step}: count of {}",
                Filter::from(e.clone())
            );
        }
        for (id, a) in &after {
            let now = session(a);
            let naive: Vec<usize> = (0..filters.len())
                .filter(|&i| matches(&filters[i].0, a))
                .collect();
            assert_eq!(set.matching(&now), naive, "step {step}: matching {id}");
            assert_eq!(
                set.first_match(&now),
                naive.first().copied(),
                "step {step}: first match {id}"
            );
            if let Some(b) = before.get(id) {
                let then = session(b);
                let was: Vec<usize> = (0..filters.len())
                    .filter(|&i| matches(&filters[i].0, b))
                    .collect();
                let changes = set.changes(&then, &now);
                let entered: Vec<usize> =
                    naive.iter().copied().filter(|i| !was.contains(i)).collect();
                let left: Vec<usize> = was.iter().copied().filter(|i| !naive.contains(i)).collect();
                assert_eq!(changes.entered, entered, "step {step}: entered {id}");
                assert_eq!(changes.left, left, "step {step}: left {id}");
            }
        }
    }
}
