//! The program run over sets of sessions at once.
//!
//! [`Program::matches`] follows one session down the branching program.
//! [`Program::run_sets`] follows a *set* of them: the set reaching an op is
//! split into the members for which the op's test holds (sent on to its true
//! target) and the rest (sent to its false target), and the sets that arrive
//! at "match" are the answer. The caller supplies a [`SetOracle`] that
//! answers one test for one set, however it likes: the store's index answers
//! from postings or by testing the few sessions that reach an op. The walk,
//! the jump targets and the end-of-program convention stay here.

use std::ops::ControlFlow;

use super::{Next, Program, Test};

/// The members reaching an op: every member of the universe, or some.
///
/// `All` lets an oracle answer the first test without materialising the
/// universe (the index can return a posting as it is).
#[derive(Clone, Debug)]
pub(crate) enum Reach<S> {
    All,
    Some(S),
}

/// Answers one test for a set of members, for [`Program::run_sets`].
pub(crate) trait SetOracle {
    /// A set of members (slots, sessions, filters).
    type Set;

    /// The members of `here` for which `test`, the test of op `pc`, holds;
    /// or `Break` to give up the walk (the caller then does something else,
    /// such as a scan).
    fn split(
        &mut self,
        program: &Program,
        pc: usize,
        test: Test,
        here: &Reach<Self::Set>,
    ) -> ControlFlow<(), Self::Set>;

    /// The members of `here` that are not in `yes` (a subset of `here`).
    fn difference(&mut self, here: Reach<Self::Set>, yes: &Self::Set) -> Self::Set;

    /// Adds the members of `more` to `acc`.
    fn union(&mut self, acc: &mut Self::Set, more: Self::Set);

    /// True when the set has no member.
    fn is_empty(&self, set: &Self::Set) -> bool;

    /// A set with no member.
    fn empty(&mut self) -> Self::Set;
}

impl Program {
    /// Runs the program over a set of members, asking `oracle` to answer each
    /// test for the members that reach it.
    ///
    /// Returns the members that match (`Reach::All` when the program matches
    /// everything without testing), or `None` when the oracle gave up.
    pub(crate) fn run_sets<O: SetOracle>(&self, oracle: &mut O) -> Option<Reach<O::Set>> {
        let inner = &*self.0;
        let ops = &*inner.ops;
        let start = match inner.next(inner.entry) {
            Next::Match => return Some(Reach::All),
            Next::Fail => return Some(Reach::Some(oracle.empty())),
            Next::Op(pc) => pc,
        };
        // Sets waiting at each op; those sent to "fail" are dropped.
        let mut waiting: Vec<Option<Reach<O::Set>>> = Vec::new();
        waiting.resize_with(ops.len(), || None);
        waiting[start] = Some(Reach::All);
        let mut matched: Option<Reach<O::Set>> = None;
        for pc in start..ops.len() {
            let Some(here) = waiting[pc].take() else {
                continue;
            };
            let op = ops[pc];
            let yes = match oracle.split(self, pc, op.test, &here) {
                ControlFlow::Continue(yes) => yes,
                ControlFlow::Break(()) => return None,
            };
            let no_goes = inner.next(op.on_false);
            let no = match no_goes {
                Next::Fail => None,
                _ => Some(oracle.difference(here, &yes)),
            };
            for (set, next) in [(Some(yes), inner.next(op.on_true)), (no, no_goes)] {
                let Some(set) = set else { continue };
                if oracle.is_empty(&set) {
                    continue;
                }
                let slot = match next {
                    Next::Fail => continue,
                    Next::Match => &mut matched,
                    Next::Op(t) => &mut waiting[t],
                };
                match slot {
                    None => *slot = Some(Reach::Some(set)),
                    Some(Reach::All) => {}
                    Some(Reach::Some(acc)) => oracle.union(acc, set),
                }
            }
        }
        Some(matched.unwrap_or_else(|| Reach::Some(oracle.empty())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Session;

    /// A second oracle: plain lists of session indices, each test answered
    /// by testing the sessions. The walk must agree with `matches`.
    struct Lists<'a> {
        sessions: &'a [Session],
        asked: usize,
    }

    impl SetOracle for Lists<'_> {
        type Set = Vec<usize>;

        fn split(
            &mut self,
            program: &Program,
            _pc: usize,
            test: Test,
            here: &Reach<Vec<usize>>,
        ) -> ControlFlow<(), Vec<usize>> {
            self.asked += 1;
            let all: Vec<usize> = (0..self.sessions.len()).collect();
            let here = match here {
                Reach::All => &all,
                Reach::Some(v) => v,
            };
            ControlFlow::Continue(
                here.iter()
                    .copied()
                    .filter(|&i| program.test(test, &self.sessions[i]))
                    .collect(),
            )
        }

        fn difference(&mut self, here: Reach<Vec<usize>>, yes: &Vec<usize>) -> Vec<usize> {
            let here = match here {
                Reach::All => (0..self.sessions.len()).collect(),
                Reach::Some(v) => v,
            };
            here.into_iter().filter(|i| !yes.contains(i)).collect()
        }

        fn union(&mut self, acc: &mut Vec<usize>, more: Vec<usize>) {
            acc.extend(more);
            acc.sort_unstable();
            acc.dedup();
        }

        fn is_empty(&self, set: &Vec<usize>) -> bool {
            set.is_empty()
        }

        fn empty(&mut self) -> Vec<usize> {
            Vec::new()
        }
    }

    #[test]
    fn the_walk_over_sets_agrees_with_matches() {
        let sessions: Vec<Session> = (0..40)
            .map(|i| {
                Session::new([
                    ("a", (i % 3).to_string()),
                    ("b", (i % 5).to_string()),
                    (
                        "$Roles",
                        if i % 2 == 0 { "\"r\"" } else { "\"s\"" }.to_string(),
                    ),
                ])
                .unwrap()
            })
            .collect();
        for filter in [
            "a is '1'",
            "a is '1' and not b is '2'",
            "a is '1' or b in ['2' '3'] and hasRoles ['r']",
            "not (a is '0' or b is '0') and not hasRoles ['s']",
            "all",
            "not all",
            "$Roles is '\"r\"' or a ne '2'",
        ] {
            let program = Program::compile(filter).unwrap();
            let expected: Vec<usize> = (0..sessions.len())
                .filter(|&i| program.matches(&sessions[i]))
                .collect();
            let mut oracle = Lists {
                sessions: &sessions,
                asked: 0,
            };
            let got = match program.run_sets(&mut oracle) {
                Some(Reach::All) => (0..sessions.len()).collect(),
                Some(Reach::Some(mut v)) => {
                    v.sort_unstable();
                    v
                }
                None => panic!("this oracle never gives up"),
            };
            assert_eq!(got, expected, "{filter}");
            assert!(oracle.asked <= program.op_count(), "each op at most once");
        }
    }
}
