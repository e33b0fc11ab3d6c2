//! The checks of the `differential` and `store` targets: the compiled
//! matcher, the bulk paths and the indexed store against the reference
//! evaluator, and store operations against a plain model.

use std::collections::{BTreeMap, HashMap};

use session_filter::syntax::Expr;
use session_filter::{
    reference, roles_to_string, string_to_roles, Error, Execution, Filter, Program, PropertyChange,
    Session, SessionStore, StoreOptions,
};

/// Session properties as `(key, value)` pairs.
pub type Props = Vec<(String, String)>;

/// SPEC section 3: for `expr` and every session, `Program::matches` equals
/// the reference evaluator; `count`, `select`, their parallel forms, and an
/// indexed and a plain store agree; the canonical text compiles to a program
/// that agrees too. Sessions that are not valid (a bad key or roles string)
/// are skipped.
pub fn check_differential(expr: Expr, sessions: &[Props]) {
    let filter = Filter::from(expr);
    let Ok(program) = Program::new(&filter) else {
        return; // a hand-built `$Roles` value that is not a roles string
    };
    let text = filter.to_string();
    let limits = session_filter::Limits::new()
        .with_max_len(usize::MAX)
        .with_max_items(usize::MAX)
        .with_max_depth(usize::MAX);
    // A tree built by hand may nest deeper than any filter text may (the
    // depth ceiling); its text is then rightly refused, and only that.
    let reparsed = match Program::compile_with(&text, &limits) {
        Ok(p) => Some(p),
        Err(Error::Filter(e))
            if matches!(e.kind(), session_filter::FilterErrorKind::TooDeep { .. }) =>
        {
            None
        }
        Err(e) => panic!("{text:?} does not parse: {e}"),
    };

    let indexed = SessionStore::with_options(StoreOptions::new().shards(2));
    let plain = SessionStore::with_options(StoreOptions::new().shards(3).index(false));
    let mut built = Vec::new();
    let mut expected = Vec::new();
    for (i, props) in sessions.iter().enumerate() {
        let Ok(session) = Session::new(props.iter().map(|(k, v)| (k.as_str(), v.as_str()))) else {
            continue;
        };
        let map: HashMap<String, String> = props.iter().cloned().collect();
        let want = reference::matches_map(filter.expr(), &map);
        assert_eq!(
            program.matches(&session),
            want,
            "{text}\n{props:?}\n{}",
            program.explain()
        );
        if let Some(reparsed) = &reparsed {
            assert_eq!(
                reparsed.matches(&session),
                want,
                "{text} (reparsed)\n{props:?}"
            );
        }
        if want {
            expected.push(built.len());
        }
        let with_id = |id: String| {
            let mut s = session.clone();
            s.set("$SessionId", &id).map(|()| s)
        };
        if let (Ok(a), Ok(b)) = (with_id(format!("s{i}")), with_id(format!("s{i}"))) {
            indexed.insert_session(a).expect("fresh id");
            plain.insert_session(b).expect("fresh id");
        }
        built.push(session);
    }
    assert_eq!(program.select(&built), expected, "{text}");
    assert_eq!(program.par_select(&built), expected, "{text}");
    assert_eq!(program.count(&built), expected.len(), "{text}");
    assert_eq!(program.par_count(&built), expected.len(), "{text}");
    let n = expected.len();
    for (store, name) in [(&indexed, "indexed"), (&plain, "plain")] {
        for execution in [
            Execution::Auto,
            Execution::Indexed,
            Execution::ScanSerial,
            Execution::ScanParallel,
        ] {
            assert_eq!(
                store.count_with(&program, execution),
                n,
                "{text}: {name} store, {execution:?}"
            );
        }
        assert_eq!(
            store.select_compiled(&program).len(),
            n,
            "{text}: {name} store select"
        );
    }
}

/// One store operation, on ids `s0` … and filters given as trees.
#[derive(Clone, Debug)]
pub enum StoreOp {
    /// Insert a session with this id and these other properties.
    Insert(usize, Props),
    /// Close every session matching the filter.
    Close(Expr),
    /// Close one session.
    CloseSession(usize),
    /// Remove then add roles on every matching session.
    ChangeRoles(Expr, Vec<String>, Vec<String>),
    /// The same on one session.
    ChangeSessionRoles(usize, Vec<String>, Vec<String>),
    /// Set user properties of one session.
    SetProperties(usize, Props),
    /// Remove user properties of one session.
    RemoveProperties(usize, Vec<String>),
    /// Set (`Some`) or remove (`None`) properties of every matching session.
    ChangeProperties(Expr, Vec<(String, Option<String>)>),
    /// The same on one session.
    ChangeSessionProperties(usize, Vec<(String, Option<String>)>),
    /// Count, select and get, compared with the model.
    Query(Expr, usize),
}

/// SPEC 6.1's decimal numbers, read the plain way:
/// `[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?`.
fn is_decimal(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(at) => (&s[..at], Some(&s[at + 1..])),
        None => (s, None),
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        None => digits(mantissa),
        Some((int, frac)) => {
            (digits(int) && (frac.is_empty() || digits(frac))) || (int.is_empty() && digits(frac))
        }
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e)));
    mantissa_ok && exponent_ok
}

/// A property change as the model reads it: the last word on each key,
/// normalised, or `None` when the change is refused.
fn model_change(pairs: &[(String, Option<String>)]) -> Option<BTreeMap<String, Option<String>>> {
    let mut out = BTreeMap::new();
    for (k, v) in pairs {
        out.insert(k.clone(), v.clone());
    }
    for (k, v) in out.iter_mut() {
        if !k.starts_with('$') {
            if !user_key_ok(k) {
                return None;
            }
            continue;
        }
        let value = v.as_mut()?;
        match k.as_str() {
            "$Country" => value.make_ascii_uppercase(),
            "$Language" => value.make_ascii_lowercase(),
            "$Latitude" | "$Longitude" if !is_decimal(value) => *value = "NaN".into(),
            "$Latitude" | "$Longitude" => {}
            _ => return None,
        }
    }
    Some(out)
}

/// Applies a checked change to one model session; the keys that changed,
/// with their previous values.
fn model_apply(
    s: &mut BTreeMap<String, String>,
    change: &BTreeMap<String, Option<String>>,
) -> BTreeMap<String, Option<String>> {
    let mut changed = BTreeMap::new();
    for (k, v) in change {
        let old = match v {
            Some(v) if s.get(k) == Some(v) => continue,
            Some(v) => s.insert(k.clone(), v.clone()),
            None if !s.contains_key(k) => continue,
            None => s.remove(k),
        };
        changed.insert(k.clone(), old);
    }
    changed
}

/// The model: sessions as maps in insert order, `$Roles` canonical.
#[derive(Default)]
pub struct Model {
    sessions: Vec<BTreeMap<String, String>>,
}

fn id(i: usize) -> String {
    format!("s{i}")
}

fn user_key_ok(k: &str) -> bool {
    !k.starts_with('$') && session_filter::validate_user_key(k).is_ok()
}

fn distinct(keys: impl IntoIterator<Item = String>) -> bool {
    let mut seen = Vec::new();
    keys.into_iter().all(|k| {
        let fresh = !seen.contains(&k);
        seen.push(k);
        fresh
    })
}

impl Model {
    fn find(&self, id: &str) -> Option<usize> {
        self.sessions.iter().position(|s| s["$SessionId"] == id)
    }

    fn matches(filter: &Filter, s: &BTreeMap<String, String>) -> bool {
        reference::matches(filter.expr(), |k| s.get(k).map(String::as_str))
    }

    fn change_roles(s: &mut BTreeMap<String, String>, remove: &[String], add: &[String]) {
        let mut roles =
            string_to_roles(s.get("$Roles").map_or("", String::as_str)).unwrap_or_default();
        roles.retain(|r| !remove.contains(r));
        for a in add {
            if !roles.contains(a) {
                roles.push(a.clone());
            }
        }
        s.insert("$Roles".into(), roles_to_string(roles));
    }

    /// Applies `op`; returns what the store must answer, as text.
    fn apply(&mut self, op: &StoreOp) -> String {
        match op {
            StoreOp::Insert(i, props) => {
                let mut all = vec![("$SessionId".to_string(), id(*i))];
                all.extend(props.iter().filter(|(k, _)| k != "$SessionId").cloned());
                let valid = distinct(all.iter().map(|(k, _)| k.clone()))
                    && all.iter().all(|(k, v)| {
                        (k.starts_with('$') || user_key_ok(k))
                            && (k != "$Roles" || string_to_roles(v).is_ok())
                    });
                if !valid || self.find(&id(*i)).is_some() {
                    return "err".into();
                }
                let mut s: BTreeMap<String, String> = all.into_iter().collect();
                if let Some(r) = s.get("$Roles").cloned() {
                    s.insert(
                        "$Roles".into(),
                        roles_to_string(string_to_roles(&r).unwrap_or_default()),
                    );
                }
                self.sessions.push(s);
                "ok".into()
            }
            StoreOp::Close(e) => {
                let f = Filter::from(e.clone());
                let before = self.sessions.len();
                self.sessions.retain(|s| !Self::matches(&f, s));
                (before - self.sessions.len()).to_string()
            }
            StoreOp::CloseSession(i) => match self.find(&id(*i)) {
                Some(at) => {
                    self.sessions.remove(at);
                    "true".into()
                }
                None => "false".into(),
            },
            StoreOp::ChangeRoles(e, remove, add) => {
                let f = Filter::from(e.clone());
                let mut n = 0;
                for s in self.sessions.iter_mut().filter(|s| Self::matches(&f, s)) {
                    Self::change_roles(s, remove, add);
                    n += 1;
                }
                n.to_string()
            }
            StoreOp::ChangeSessionRoles(i, remove, add) => match self.find(&id(*i)) {
                Some(at) => {
                    Self::change_roles(&mut self.sessions[at], remove, add);
                    "ok".into()
                }
                None => "err".into(),
            },
            StoreOp::SetProperties(i, props) => {
                let valid = props.iter().all(|(k, _)| user_key_ok(k))
                    && distinct(props.iter().map(|(k, _)| k.clone()));
                match self.find(&id(*i)) {
                    Some(at) if valid => {
                        self.sessions[at].extend(props.iter().cloned());
                        "ok".into()
                    }
                    _ => "err".into(),
                }
            }
            StoreOp::RemoveProperties(i, keys) => {
                let valid = keys.iter().all(|k| user_key_ok(k));
                match self.find(&id(*i)) {
                    Some(at) if valid => {
                        keys.iter().for_each(|k| {
                            self.sessions[at].remove(k);
                        });
                        "ok".into()
                    }
                    _ => "err".into(),
                }
            }
            StoreOp::ChangeProperties(e, pairs) => {
                let Some(change) = model_change(pairs) else {
                    return "err".into();
                };
                let f = Filter::from(e.clone());
                let mut n = 0;
                for s in self.sessions.iter_mut().filter(|s| Self::matches(&f, s)) {
                    model_apply(s, &change);
                    n += 1;
                }
                n.to_string()
            }
            StoreOp::ChangeSessionProperties(i, pairs) => {
                match (model_change(pairs), self.find(&id(*i))) {
                    (Some(change), Some(at)) => {
                        format!("{:?}", model_apply(&mut self.sessions[at], &change))
                    }
                    _ => "err".into(),
                }
            }
            StoreOp::Query(e, i) => {
                let f = Filter::from(e.clone());
                let mut ids: Vec<String> = self
                    .sessions
                    .iter()
                    .filter(|s| Self::matches(&f, s))
                    .map(|s| s["$SessionId"].clone())
                    .collect();
                ids.sort();
                let got = self.find(&id(*i)).map(|at| self.sessions[at].clone());
                format!("{} {ids:?} {got:?}", ids.len())
            }
        }
    }
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Applies `op` to the store; returns its answer, as text.
pub(crate) fn apply_store(store: &SessionStore, op: &StoreOp) -> String {
    fn text<T>(r: Result<T, Error>, f: impl Fn(T) -> String) -> String {
        r.map_or_else(|_| "err".into(), f)
    }
    let compile = |e: &Expr| Program::try_from(Filter::from(e.clone()));
    match op {
        StoreOp::Insert(i, props) => {
            let id = id(*i);
            let all = [("$SessionId", id.as_str())].into_iter().chain(
                props
                    .iter()
                    .filter(|(k, _)| k != "$SessionId")
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            );
            text(store.insert(all), |()| "ok".into())
        }
        StoreOp::Close(e) => text(compile(e).map(|p| store.close_compiled(&p)), |n| {
            n.to_string()
        }),
        StoreOp::CloseSession(i) => store.close_session(&id(*i)).to_string(),
        StoreOp::ChangeRoles(e, r, a) => text(
            compile(e).and_then(|p| store.change_roles_compiled(&p, &strs(r), &strs(a))),
            |n| n.to_string(),
        ),
        StoreOp::ChangeSessionRoles(i, r, a) => text(
            store.change_session_roles(&id(*i), &strs(r), &strs(a)),
            |()| "ok".into(),
        ),
        StoreOp::SetProperties(i, props) => text(
            store.set_properties(&id(*i), props.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            |()| "ok".into(),
        ),
        StoreOp::RemoveProperties(i, keys) => {
            text(store.remove_properties(&id(*i), &strs(keys)), |()| {
                "ok".into()
            })
        }
        StoreOp::ChangeProperties(e, pairs) => {
            let change: PropertyChange = pairs.iter().cloned().collect();
            text(
                compile(e).and_then(|p| store.change_properties_compiled(&p, &change)),
                |n| n.to_string(),
            )
        }
        StoreOp::ChangeSessionProperties(i, pairs) => {
            let change: PropertyChange = pairs.iter().cloned().collect();
            text(
                store.change_session_properties(&id(*i), &change),
                |changed| format!("{changed:?}"),
            )
        }
        StoreOp::Query(e, i) => {
            let Ok(p) = compile(e) else {
                return "err".into();
            };
            let mut ids = store.select_compiled(&p);
            ids.sort();
            let n = store.count_compiled(&p);
            assert_eq!(
                n,
                ids.len(),
                "count and select disagree on {}",
                Filter::from(e.clone())
            );
            let got = store.get(&id(*i));
            format!("{n} {ids:?} {got:?}")
        }
    }
}

/// SPEC section 6: a sequence of operations on an indexed and a plain store
/// gives the answers of the model at every step.
pub fn check_store(ops: &[StoreOp]) {
    // Filters the model cannot compile either (hand-built bad `$Roles`) are
    // skipped as a whole sequence: both sides would only say "err".
    let mut model = Model::default();
    let indexed = SessionStore::with_options(StoreOptions::new().shards(3));
    let plain = SessionStore::with_options(StoreOptions::new().shards(2).index(false));
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
        let want = model.apply(op);
        assert_eq!(
            apply_store(&indexed, op),
            want,
            "step {step}: {op:?} (indexed store)"
        );
        assert_eq!(
            apply_store(&plain, op),
            want,
            "step {step}: {op:?} (plain store)"
        );
        assert_eq!(indexed.len(), model.sessions.len());
        assert_eq!(plain.len(), model.sessions.len());
    }
}
