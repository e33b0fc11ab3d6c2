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
