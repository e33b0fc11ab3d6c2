//! The check of the `standing` target: a `FilterSet` and the watches of a
//! store against a naive model that evaluates every filter on every session
//! before and after every operation (SPEC section 8).

use std::collections::{BTreeMap, BTreeSet};

use session_filter::syntax::Expr;
use session_filter::{
    reference, string_to_roles, Filter, FilterSet, Program, Session, SessionStore, StoreOptions,
    WatchEvent, WatchOptions,
};

use super::matcher::apply_store;
use super::StoreOp;

type Props = BTreeMap<String, String>;
type State = BTreeMap<String, Props>;

fn state(store: &SessionStore) -> State {
    let mut out = State::new();
    store.for_each_session(|s| {
        let props: Props = s.properties().into_iter().collect();
        if let Some(id) = props.get("$SessionId") {
            out.insert(id.clone(), props);
        }
    });
    out
}

/// `e` with `all` folded away: `Some(e)` for a filter that tests
/// something, `None` with the constant otherwise (the compiler drops a test
/// that leads to the same place either way, which is this folding).
fn fold(e: &Expr) -> Result<Expr, bool> {
    match e {
        Expr::All { .. } => Err(true),
        Expr::Not { expr, .. } => fold(expr).map(Expr::not).map_err(|c| !c),
        Expr::And { exprs, .. } | Expr::Or { exprs, .. } => {
            let is_and = matches!(e, Expr::And { .. });
            let mut kept = Vec::new();
            for x in exprs {
                match fold(x) {
                    Ok(x) => kept.push(x),
                    // `false` in an `and`, `true` in an `or`, decides.
                    Err(c) if c != is_and => return Err(c),
                    Err(_) => {}
                }
            }
            match kept.len() {
                0 => Err(is_and),
                1 => Ok(kept.remove(0)),
                _ if is_and => Ok(Expr::and(kept)),
                _ => Ok(Expr::or(kept)),
            }
        }
        other => Ok(other.clone()),
    }
}

/// The keys a (folded) filter reads.
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

/// Keys whose value differs (roles as sets), with their values before.
fn changed(before: &Props, after: &Props) -> BTreeMap<String, Option<String>> {
    let same = |k: &str, a: &str, b: &str| {
        a == b
            || (k == "$Roles" && {
                let (x, y) = (
                    string_to_roles(a).unwrap_or_default(),
                    string_to_roles(b).unwrap_or_default(),
                );
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

fn matches(filter: &Expr, p: &Props) -> bool {
    reference::matches(filter, |k| p.get(k).map(String::as_str))
}

fn sorted(mut events: Vec<WatchEvent>) -> Vec<WatchEvent> {
    events.sort_by_key(|e| format!("{e:?}"));
    events
}

/// What a watch of `filter` must report for a change from `before` to `after`.
fn expected(filter: &Expr, before: &State, after: &State) -> Vec<WatchEvent> {
    let mut reads = BTreeSet::new();
    if let Ok(folded) = fold(filter) {
        keys(&folded, &mut reads);
    }
    let mut out = Vec::new();
    for (id, b) in before {
        let id = id.clone();
        match after.get(&id) {
            None if matches(filter, b) => out.push(WatchEvent::Left { id, closed: true }),
            None => {}
            Some(a) => match (matches(filter, b), matches(filter, a)) {
                (true, false) => out.push(WatchEvent::Left { id, closed: false }),
                (false, true) => out.push(WatchEvent::Entered {
                    id,
                    properties: a.clone(),
                }),
                (true, true) => {
                    let previous = changed(b, a);
                    if previous.keys().any(|k| reads.contains(k)) {
                        out.push(WatchEvent::Updated { id, previous });
                    }
                }
                (false, false) => {}
            },
        }
    }
    for (id, a) in after {
        if !before.contains_key(id) && matches(filter, a) {
            out.push(WatchEvent::Entered {
                id: id.clone(),
                properties: a.clone(),
            });
        }
    }
    sorted(out)
}

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
