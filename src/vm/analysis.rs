//! What a program asks of a session, for indexes over many programs.
//!
//! The standing filters (`crate::standing`) keep a reverse index from facts a
//! session can have (a key's value, a key's presence, a role, the number of
//! roles) to the programs that can only match a session having one of them.
//! This module reads the programs for that index, so that no other module
//! walks ops:
//!
//! - [`Program::keys`]: every key a program reads; a program's answer can
//!   only change when one of them does.
//! - [`Program::access`]: the *access predicates* of a program, tests that
//!   hold on every path from the entry to a match (found with dominators of
//!   the forward-only jump graph), so that a session failing one of them
//!   cannot match. When no single test does, a disjunctive one: a set of
//!   tests of which every path to a match passes one (`a or b`).

use smallvec::SmallVec;

use super::{Op, Program, Test};
// A part of `vm`, so the dataflow below reads jump targets as indices (the
// two past the end: match, then no match), as the interpreter does.

// The one `Key` and `Term` of the indexes live with the session layout.
pub(crate) use crate::session::{Key, Term};

/// How selective an access predicate is likely to be, best first: the
/// order in which an index prefers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Class {
    /// One value of one key.
    Eq,
    /// One of several values (of one key, or of several keys).
    In,
    /// One role.
    Role,
    /// A number of roles.
    Count,
    /// A key's presence.
    Presence,
}

/// One access predicate: every session the program matches has at least one
/// of `terms`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Alternative {
    pub class: Class,
    pub terms: SmallVec<[Term; 1]>,
}

impl Alternative {
    fn new(class: Class, terms: impl IntoIterator<Item = Term>) -> Alternative {
        Alternative {
            class,
            terms: terms.into_iter().collect(),
        }
    }

    /// True when no session has two of the terms (one value of one key, or
    /// distinct role counts), so a session meets the program through at most
    /// one of them.
    pub(crate) fn exclusive(&self) -> bool {
        let mut terms = self.terms.iter();
        let Some(first) = terms.next() else {
            return true;
        };
        match *first {
            Term::Value(key, _) => terms.all(|t| matches!(*t, Term::Value(k, _) if k == key)),
            Term::RoleCount(_) => terms.all(|t| matches!(t, Term::RoleCount(_))),
            Term::Present(_) | Term::Role(_) => self.terms.len() == 1,
        }
    }
}

/// What must hold of a session for a program to match it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// The program matches every session without testing anything.
    Always,
    /// The program matches no session (no path leads to a match).
    Never,
    /// Each alternative, on its own, is an access predicate (non-empty).
    Any(Vec<Alternative>),
    /// No positive test holds on every path to a match: only `ne`, `not`,
    /// absence, or a disjunction too wide to be worth indexing.
    Unindexed,
}

/// Terms a disjunctive access predicate may gather before it is not worth
/// an index entry per term (and the analysis stays linear in the program).
const COVER_MAX: usize = 64;

impl Program {
    /// Every key the program's tests read, sorted and distinct (`$Roles`
    /// for `hasRoles`, `$Roles` equality and `has $Roles`).
    pub(crate) fn keys(&self) -> SmallVec<[Key; 4]> {
        let mut keys: SmallVec<[Key; 4]> = self.ops().iter().map(|op| key_of(op.test)).collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// True when both programs were compiled from the same filter, that is
    /// the same canonical text (filters compare as normalised trees, which
    /// print alike exactly when they are equal), without printing either.
    pub(crate) fn same_filter(&self, other: &Program) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0) || self.0.filter == other.0.filter
    }

    /// The program's access predicates.
    pub(crate) fn access(&self) -> Access {
        let ops = self.ops();
        let entry = match self.entry() {
            super::Next::Match => return Access::Always,
            super::Next::Fail => return Access::Never,
            super::Next::Op(entry) => entry,
        };
        let outcomes = match dominating_outcomes(ops, entry) {
            Dominators::Unreachable => return Access::Never,
            // Still worth trying the cover, which is linear.
            Dominators::GaveUp => SmallVec::new(),
            Dominators::Outcomes(outcomes) => outcomes,
        };
        let mut alternatives = Vec::new();
        for (op, holds) in outcomes {
            if holds {
                if let Some(op) = ops.get(op) {
                    self.alternatives_of(op.test, &mut alternatives);
                }
            }
        }
        if !alternatives.is_empty() {
            return Access::Any(alternatives);
        }
        match self.cover(entry) {
            Some(terms) => {
                let class = terms.iter().map(|&t| class_in_cover(t)).max();
                let class = class.unwrap_or(Class::In).max(Class::In);
                Access::Any(vec![Alternative::new(class, terms)])
            }
            None => Access::Unindexed,
        }
    }

    /// The access predicates a test gives when it must hold.
    fn alternatives_of(&self, test: Test, out: &mut Vec<Alternative>) {
        let values = |key: Key, pool| {
            self.pool(pool)
                .iter()
                .map(move |&v| Term::Value(key, v))
                .collect::<SmallVec<[Term; 1]>>()
        };
        match test {
            Test::FixedEq { slot, value } => out.push(Alternative::new(
                Class::Eq,
                [Term::Value(Key::fixed(slot as usize), value)],
            )),
            Test::OtherEq { key, value } => out.push(Alternative::new(
                Class::Eq,
                [Term::Value(Key::other(key), value)],
            )),
            Test::FixedIn { slot, values: pool } => out.push(Alternative {
                class: Class::In,
                terms: values(Key::fixed(slot as usize), pool),
            }),
            Test::OtherIn { key, values: pool } => out.push(Alternative {
                class: Class::In,
                terms: values(Key::other(key), pool),
            }),
            Test::FixedHas { slot } | Test::FixedMatches { slot, .. } => out.push(
                Alternative::new(Class::Presence, [Term::Present(Key::fixed(slot as usize))]),
            ),
            Test::OtherHas { key } | Test::OtherMatches { key, .. } => out.push(Alternative::new(
                Class::Presence,
                [Term::Present(Key::other(key))],
            )),
            // Every role is required: any one of them is an access predicate.
            Test::HasRoles { roles } => out.extend(
                self.pool(roles)
                    .iter()
                    .map(|&r| Alternative::new(Class::Role, [Term::Role(r)])),
            ),
            Test::RolesEq { roles } => {
                out.push(Alternative::new(Class::Count, [Term::RoleCount(roles.len)]));
                out.extend(
                    self.pool(roles)
                        .iter()
                        .map(|&r| Alternative::new(Class::Role, [Term::Role(r)])),
                );
            }
            Test::RolesIn { sets } => {
                let mut counts: SmallVec<[u32; 4]> =
                    self.sets(sets).iter().map(|set| set.len).collect();
                counts.sort_unstable();
                counts.dedup();
                if !counts.is_empty() {
                    out.push(Alternative::new(
                        Class::Count,
                        counts.into_iter().map(Term::RoleCount),
                    ));
                }
            }
        }
    }

    /// The terms a test's truth guarantees, in the few words a disjunctive
    /// access predicate needs (one term where several would do).
    fn cover_terms(&self, test: Test) -> Option<SmallVec<[Term; 4]>> {
        let mut alternatives = Vec::new();
        self.alternatives_of(test, &mut alternatives);
        alternatives
            .into_iter()
            .min_by_key(|a| (a.terms.len(), a.class))
            .map(|a| a.terms.into_iter().collect())
            .filter(|terms: &SmallVec<[Term; 4]>| terms.len() <= COVER_MAX)
    }

    /// A set of terms of which every session that matches has one: a
    /// forward pass that carries, for each op, terms one of which every path
    /// to it has satisfied (`None` when some path has satisfied none).
    fn cover(&self, entry: usize) -> Option<SmallVec<[Term; 4]>> {
        #[derive(Clone)]
        enum Cover {
            Unreached,
            Nothing,
            Terms(SmallVec<[Term; 4]>),
        }
        fn merge(into: &mut Cover, from: Cover) {
            *into = match (std::mem::replace(into, Cover::Unreached), from) {
                (Cover::Unreached, c) | (c, Cover::Unreached) => c,
                (Cover::Nothing, _) | (_, Cover::Nothing) => Cover::Nothing,
                (Cover::Terms(mut a), Cover::Terms(b)) => {
                    for t in b {
                        if !a.contains(&t) {
                            a.push(t);
                        }
                    }
                    if a.len() > COVER_MAX {
                        Cover::Nothing
                    } else {
                        Cover::Terms(a)
                    }
                }
            };
        }
        let ops = self.ops();
        let n = ops.len();
        let mut state = vec![Cover::Unreached; n + 1];
        state[entry] = Cover::Nothing;
        for (j, op) in ops.iter().enumerate().skip(entry) {
            let here = std::mem::replace(&mut state[j], Cover::Unreached);
            if matches!(here, Cover::Unreached) {
                continue;
            }
            let on_true = match (self.cover_terms(op.test), &here) {
                (None, _) => here.clone(),
                (Some(x), Cover::Terms(c)) if c.len() <= x.len() => Cover::Terms(c.clone()),
                (Some(x), _) => Cover::Terms(x),
            };
            if let Some(slot) = state.get_mut(op.on_true as usize) {
                merge(slot, on_true);
            }
            if let Some(slot) = state.get_mut(op.on_false as usize) {
                merge(slot, here);
            }
        }
        match state.pop() {
            Some(Cover::Terms(terms)) => Some(terms),
            _ => None,
        }
    }
}

/// The key a test reads.
fn key_of(test: Test) -> Key {
    match test {
        Test::FixedEq { slot, .. }
        | Test::FixedIn { slot, .. }
        | Test::FixedHas { slot }
        | Test::FixedMatches { slot, .. } => Key::fixed(slot as usize),
        Test::OtherEq { key, .. }
        | Test::OtherIn { key, .. }
        | Test::OtherHas { key }
        | Test::OtherMatches { key, .. } => Key::other(key),
        Test::HasRoles { .. } | Test::RolesEq { .. } | Test::RolesIn { .. } => Key::roles(),
    }
}

fn class_in_cover(term: Term) -> Class {
    match term {
        Term::Value(..) => Class::In,
        Term::Role(_) => Class::Role,
        Term::RoleCount(_) => Class::Count,
        Term::Present(_) => Class::Presence,
    }
}

enum Dominators {
    /// No path from the entry leads to a match.
    Unreachable,
    /// The pass would cost more than a small multiple of the program's size.
    GaveUp,
    /// The `(op, outcome)` pairs every path from the entry to a match takes.
    Outcomes(SmallVec<[(usize, bool); 8]>),
}

/// The test outcomes that dominate the match exit.
///
/// The graph has a node per op, one for the match exit (`n`) and one per
/// edge (`n + 1 + 2 * op + outcome`, outcome 0 for true), so that dominating
/// an exit by an edge is dominating it by a node. Jumps go forward, so op
/// order is a topological order and one pass computes each node's immediate
/// dominator as the nearest common dominator of its predecessors (Cooper,
/// Harvey and Kennedy's intersection, without iterating to a fixed point).
fn dominating_outcomes(ops: &[Op], entry: usize) -> Dominators {
    const ROOT: u32 = u32::MAX;
    let n = ops.len();
    let edge = |op: usize, holds: bool| (n + 1 + 2 * op + usize::from(!holds)) as u32;
    let nodes = 3 * n + 1;
    let mut idom = vec![ROOT; nodes];
    let mut depth = vec![0u32; nodes];
    let mut reached = vec![false; n + 1];
    reached[entry] = true;
    // The walk up to a common dominator is short in practice; a pathological
    // program gives up and is left unindexed, which is always correct.
    let mut budget = 64 * nodes + 4096;
    let mut common = |mut a: u32, mut b: u32, idom: &[u32], depth: &[u32]| -> Option<u32> {
        while a != b {
            budget = budget.checked_sub(1)?;
            let (da, db) = (depth[a as usize], depth[b as usize]);
            if da >= db {
                a = idom[a as usize];
            } else {
                b = idom[b as usize];
            }
            if a == ROOT || b == ROOT {
                return None;
            }
        }
        Some(a)
    };
    for (j, op) in ops.iter().enumerate().skip(entry) {
        if !reached[j] {
            continue;
        }
        if j != entry {
            depth[j] = depth[idom[j] as usize] + 1;
        }
        for (holds, target) in [(true, op.on_true), (false, op.on_false)] {
            let e = edge(j, holds);
            idom[e as usize] = j as u32;
            depth[e as usize] = depth[j] + 1;
            let t = target as usize;
            if t > n {
                continue;
            }
            if reached[t] {
                match common(idom[t], e, &idom, &depth) {
                    Some(d) => idom[t] = d,
                    None => return Dominators::GaveUp,
                }
            } else {
                reached[t] = true;
                idom[t] = e;
            }
        }
    }
    if !reached[n] {
        return Dominators::Unreachable;
    }
    let mut outcomes = SmallVec::new();
    let mut at = idom[n];
    while at != ROOT {
        let node = at as usize;
        if node > n {
            let k = node - n - 1;
            outcomes.push((k / 2, k.is_multiple_of(2)));
        }
        at = idom[node];
    }
    Dominators::Outcomes(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intern::{self, Sym};

    fn access(filter: &str) -> Access {
        Program::compile(filter).unwrap().access()
    }

    fn sym(s: &str) -> Sym {
        intern::lookup(s).unwrap()
    }

    fn key(k: &str) -> Key {
        match crate::session::fixed_slot(k) {
            Some(slot) => Key::fixed(slot),
            None => Key::other(sym(k)),
        }
    }

    /// The terms of each alternative, for filters whose strings stay
    /// interned while the program lives.
    fn alternatives(filter: &str) -> (Program, Vec<(Class, Vec<Term>)>) {
        let p = Program::compile(filter).unwrap();
        let alts = match p.access() {
            Access::Any(alts) => alts
                .into_iter()
                .map(|a| (a.class, a.terms.into_vec()))
                .collect(),
            other => panic!("{filter}: {other:?}"),
        };
        (p, alts)
    }

    #[test]
    fn a_conjunct_holds_on_every_path_and_a_disjunct_does_not() {
        let (_p, alts) = alternatives("a is 'x' and (b is 'y' or c is 'z')");
        assert_eq!(
            alts,
            [(Class::Eq, vec![Term::Value(key("a"), sym("x"))])],
            "only a must hold"
        );
        let (_p, alts) = alternatives("$Country is 'UK' and Tier in ['gold', 'silver'] and has T");
        assert_eq!(alts.len(), 3);
        assert!(alts.contains(&(Class::Eq, vec![Term::Value(key("$Country"), sym("UK"))])));
        assert!(alts.iter().any(|(c, t)| *c == Class::In && t.len() == 2));
        assert!(alts.contains(&(Class::Presence, vec![Term::Present(key("T"))])));
    }

    #[test]
    fn negations_give_no_access_predicate() {
        for filter in [
            "not a is 'x'",
            "a ne 'x'",
            "not has a",
            "not hasRoles ['r']",
            "a ne 'x' and not (b is 'y' and c is 'z')",
            "has a or not has b",
        ] {
            assert_eq!(access(filter), Access::Unindexed, "{filter}");
        }
        // A negated negation is positive again.
        let (_p, alts) = alternatives("not (a ne 'x')");
        assert_eq!(alts, [(Class::Eq, vec![Term::Value(key("a"), sym("x"))])]);
    }

    #[test]
    fn a_disjunction_of_positive_tests_is_covered_by_its_branches() {
        let (_p, alts) = alternatives("a is 'x' or hasRoles ['r1', 'r2']");
        assert_eq!(alts.len(), 1);
        let (class, terms) = &alts[0];
        assert_eq!(*class, Class::Role);
        assert_eq!(terms.len(), 2);
        assert!(terms.contains(&Term::Value(key("a"), sym("x"))));
        // A branch that can match without a positive test leaves it open.
        assert_eq!(access("a is 'x' or b ne 'y'"), Access::Unindexed);
        // Same-key alternatives merge into one `in`: a dominating test.
        let (_p, alts) = alternatives("a is 'x' or a is 'y'");
        assert_eq!(alts[0].0, Class::In);
        assert!((Alternative {
            class: Class::In,
            terms: alts[0].1.iter().copied().collect()
        })
        .exclusive());
    }

    #[test]
    fn roles_give_a_role_or_a_count() {
        let (_p, alts) = alternatives("hasRoles ['a', 'b']");
        assert_eq!(alts.len(), 2);
        assert!(alts.iter().all(|(c, t)| *c == Class::Role && t.len() == 1));
        let (_p, alts) = alternatives(r#"$Roles is '"a","b"'"#);
        assert!(alts.contains(&(Class::Count, vec![Term::RoleCount(2)])));
        assert!(alts.contains(&(Class::Role, vec![Term::Role(sym("a"))])));
        let (_p, alts) = alternatives(r#"$Roles in ['', '"a"', '"b"', '"a","b"']"#);
        assert_eq!(
            alts,
            [(
                Class::Count,
                vec![Term::RoleCount(0), Term::RoleCount(1), Term::RoleCount(2)]
            )]
        );
    }

    #[test]
    fn constants_and_dead_ends_are_told_apart() {
        assert_eq!(access("all"), Access::Always);
        assert_eq!(access("not all"), Access::Never);
        assert_eq!(access("has a and not all"), Access::Never);
        assert_eq!(access("has a or not has a"), Access::Unindexed);
    }

    #[test]
    fn same_filter_means_same_canonical_text() {
        let p = Program::compile("Tier  IS 'gold' and (has x)").unwrap();
        let q = Program::compile(r#"Tier is "gold" and has x"#).unwrap();
        let r = Program::compile("Tier is 'gold' and has y").unwrap();
        assert!(p.same_filter(&q) && p.same_filter(&p.clone()));
        assert_eq!(p.to_string(), q.to_string());
        assert!(!p.same_filter(&r));
    }

    #[test]
    fn keys_are_every_key_read() {
        let p = Program::compile("a is 'x' or not (hasRoles ['r'] and has $Country)").unwrap();
        let keys = p.keys();
        assert_eq!(keys.len(), 3);
        assert!(keys.contains(&key("a")));
        assert!(keys.contains(&Key::roles()));
        assert!(keys.contains(&key("$Country")));
        assert!(Program::compile("all").unwrap().keys().is_empty());
    }

    #[test]
    fn long_programs_stay_linear() {
        let text = (0..3000)
            .map(|i| format!("k{i} is 'v'"))
            .collect::<Vec<_>>()
            .join(" or ");
        let p = Program::compile(&text).unwrap();
        // Too wide to cover: unindexed, quickly.
        let start = std::time::Instant::now();
        assert_eq!(p.access(), Access::Unindexed);
        let text = (0..3000)
            .map(|i| format!("(k{i} is 'v' or j{i} ne 'w')"))
            .collect::<Vec<_>>()
            .join(" and ");
        let limits = crate::Limits::new().with_max_len(1 << 20);
        let p = Program::compile_with(&text, &limits).unwrap();
        assert_eq!(p.access(), Access::Unindexed);
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }
}
