//! The naive model of a store's watches (SPEC section 8.2): evaluate every
//! filter on every session before and after an operation and derive the
//! events a watch must report. One model for the `standing` fuzz target and
//! `tests/watch.rs` in the main crate, which includes this file.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use session_filter::syntax::Expr;
use session_filter::{reference, string_to_roles, SessionStore, WatchEvent};

/// One session's properties.
pub type Props = BTreeMap<String, String>;

/// Every session's properties, by `$SessionId`.
pub type State = BTreeMap<String, Props>;

/// What a watch was asked to report besides membership (the model of
/// `WatchOptions`).
#[derive(Clone, Debug)]
pub struct Reports {
    /// `Updated` for changes of keys the filter reads.
    pub filter_updates: bool,
    /// `Updated` for changes of these keys, whatever the filter reads.
    pub update_keys: BTreeSet<String>,
    /// `Updated` for every change.
    pub all_updates: bool,
    /// Events carry the session's properties.
    pub properties: bool,
}

impl Default for Reports {
    /// What `WatchOptions::new()` reports.
    fn default() -> Reports {
        Reports {
            filter_updates: true,
            update_keys: BTreeSet::new(),
            all_updates: false,
            properties: true,
        }
    }
}

/// Every session of the store, read through the public API.
pub fn state(store: &SessionStore) -> State {
    let mut out = State::new();
    store.for_each_session(|s| {
        let props: Props = s.properties().into_iter().collect();
        if let Some(id) = props.get("$SessionId") {
            out.insert(id.clone(), props);
        }
    });
    out
}

/// `e` with `all` folded away: `Ok(e)` for a filter that tests something,
/// `Err` with the constant otherwise (the compiler drops a test that leads
/// to the same place either way, which is this folding).
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
pub fn changed(before: &Props, after: &Props) -> BTreeMap<String, Option<String>> {
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

/// True when the filter matches the session.
pub fn matches(filter: &Expr, p: &Props) -> bool {
    reference::matches(filter, |k| p.get(k).map(String::as_str))
}

/// Events in a canonical order, to compare sets of them.
pub fn sorted(mut events: Vec<WatchEvent>) -> Vec<WatchEvent> {
    events.sort_by_key(|e| format!("{e:?}"));
    events
}

/// What a watch of `filter` made with the default options must report for
/// an operation that took the store from `before` to `after`, sorted.
pub fn expected(filter: &Expr, before: &State, after: &State) -> Vec<WatchEvent> {
    expected_with(filter, &Reports::default(), before, after)
}

/// [`expected`] for a watch that reports `reports`.
pub fn expected_with(
    filter: &Expr,
    reports: &Reports,
    before: &State,
    after: &State,
) -> Vec<WatchEvent> {
    let mut reads = BTreeSet::new();
    if let Ok(folded) = fold(filter) {
        keys(&folded, &mut reads);
    }
    let props = |p: &Props| reports.properties.then(|| Arc::new(p.clone()));
    let mut out = Vec::new();
    for (id, b) in before {
        let id: Arc<str> = Arc::from(id.as_str());
        match after.get(&*id) {
            None if matches(filter, b) => out.push(WatchEvent::Left {
                id,
                closed: true,
                properties: props(b),
            }),
            None => {}
            Some(a) => match (matches(filter, b), matches(filter, a)) {
                (true, false) => out.push(WatchEvent::Left {
                    id,
                    closed: false,
                    properties: props(a),
                }),
                (false, true) => out.push(WatchEvent::Entered {
                    id,
                    properties: props(a),
                }),
                (true, true) => {
                    let previous = changed(b, a);
                    let told = |k: &String| {
                        (reports.filter_updates && reads.contains(k))
                            || reports.update_keys.contains(k)
                    };
                    if !previous.is_empty() && (reports.all_updates || previous.keys().any(told)) {
                        out.push(WatchEvent::Updated {
                            id,
                            previous: Arc::new(previous),
                            properties: props(a),
                        });
                    }
                }
                (false, false) => {}
            },
        }
    }
    for (id, a) in after {
        if !before.contains_key(id) && matches(filter, a) {
            out.push(WatchEvent::Entered {
                id: Arc::from(id.as_str()),
                properties: props(a),
            });
        }
    }
    sorted(out)
}

/// Replays one watch's events into the set of ids it says match; an error
/// names a session told twice, one that left or was updated without having
/// entered, and any lag.
pub fn replay(members: &mut BTreeSet<String>, event: WatchEvent) -> Result<(), String> {
    match event {
        WatchEvent::Entered { id, .. } => {
            if !members.insert(id.to_string()) {
                return Err(format!("{id} entered twice"));
            }
        }
        WatchEvent::Left { id, .. } => {
            if !members.remove(&*id) {
                return Err(format!("{id} left without entering"));
            }
        }
        WatchEvent::Updated { id, .. } | WatchEvent::Signal { id, .. } => {
            if !members.contains(&*id) {
                return Err(format!("{id} updated or signalled while outside"));
            }
        }
        WatchEvent::Lagged { missed } => return Err(format!("lagged by {missed}")),
        _ => return Err("an unknown event".into()),
    }
    Ok(())
}
