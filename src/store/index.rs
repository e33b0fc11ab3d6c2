//! Inverted indexes over a shard's session slots, and the planner that
//! answers a compiled filter with them.
//!
//! For each `(key, value)`, each key and each role, the index keeps the set
//! of slots (a [`Posting`]) holding it, plus the slots by number of roles (for
//! `$Roles` equality). A posting starts as a small sorted vector, since most
//! values of high-cardinality keys (`$ClientIP`, `$StartTime`) belong to one
//! session, and becomes a roaring bitmap when it grows.
//!
//! `$SessionId` values get no postings: the shard's map from id to slot
//! answers them, and keeping both would cost a posting per session.
//!
//! The planner runs the same branching program as the VM, but over sets of
//! slots instead of one session: the slots reaching an op are split into
//! those for which the test holds (sent to its true target) and the rest
//! (sent to its false target). Each test is answered from the postings, or,
//! when few slots reach it and its postings are large, by testing those
//! slots' sessions directly. When even the first op would test every
//! session, the whole filter runs as a block scan instead.

use ahash::AHashMap;
use roaring::RoaringBitmap;
use smallvec::SmallVec;

use std::ops::ControlFlow;

use crate::intern::Sym;
use crate::session::{KeyId, Session, Term, SESSION_ID_SLOT};
use crate::vm::{Pool, Program, Reach, SetOracle, Test};

/// A posting stays a sorted vector up to this many slots.
const SMALL_MAX: usize = 24;

/// The slots that hold one key, value or role.
///
/// Most values of high-cardinality keys belong to one session, so a posting
/// of one slot is stored inline; the posting is 16 bytes, the size of a map
/// entry's payload, whatever it holds.
#[derive(Clone, Debug, Default)]
pub(super) enum Posting {
    #[default]
    Empty,
    One(u32),
    /// Sorted, 2 to `SMALL_MAX` slots. Boxed so that the posting stays 16
    /// bytes (a `Vec` would make it 32): one allocation more for the few
    /// postings of this size, less memory for the many of one slot.
    #[allow(clippy::box_collection)]
    Few(Box<Vec<u32>>),
    Big(Box<RoaringBitmap>),
}

impl Posting {
    fn insert(&mut self, slot: u32) {
        match self {
            Posting::Empty => *self = Posting::One(slot),
            Posting::One(s) if *s == slot => {}
            Posting::One(s) => {
                let (a, b) = if *s < slot { (*s, slot) } else { (slot, *s) };
                *self = Posting::Few(Box::new(vec![a, b]));
            }
            Posting::Few(v) => {
                if let Err(i) = v.binary_search(&slot) {
                    if v.len() < SMALL_MAX {
                        v.insert(i, slot);
                    } else {
                        let mut big: RoaringBitmap = v.iter().copied().collect();
                        big.insert(slot);
                        *self = Posting::Big(Box::new(big));
                    }
                }
            }
            Posting::Big(b) => {
                b.insert(slot);
            }
        }
    }

    fn remove(&mut self, slot: u32) {
        match self {
            Posting::One(s) if *s == slot => *self = Posting::Empty,
            Posting::Few(v) => {
                if let Ok(i) = v.binary_search(&slot) {
                    v.remove(i);
                }
                if let [only] = v[..] {
                    *self = Posting::One(only);
                }
            }
            Posting::Big(b) => {
                b.remove(slot);
            }
            Posting::Empty | Posting::One(_) => {}
        }
    }

    /// The slots, when not a bitmap.
    fn small(&self) -> &[u32] {
        match self {
            Posting::One(s) => std::slice::from_ref(s),
            Posting::Few(v) => v,
            Posting::Empty | Posting::Big(_) => &[],
        }
    }

    pub(super) fn len(&self) -> u64 {
        match self {
            Posting::Big(b) => b.len(),
            small => small.small().len() as u64,
        }
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn to_bitmap(&self) -> RoaringBitmap {
        match self {
            Posting::Big(b) => (**b).clone(),
            small => {
                RoaringBitmap::from_sorted_iter(small.small().iter().copied()).unwrap_or_default()
            }
        }
    }

    fn union_into(&self, acc: &mut RoaringBitmap) {
        match self {
            Posting::Big(b) => *acc |= &**b,
            small => acc.extend(small.small().iter().copied()),
        }
    }

    fn intersect(&self, acc: &RoaringBitmap) -> RoaringBitmap {
        match self {
            Posting::Big(b) => &**b & acc,
            small => small
                .small()
                .iter()
                .copied()
                .filter(|&s| acc.contains(s))
                .collect(),
        }
    }

    /// Heap bytes held, roughly.
    fn heap_bytes(&self) -> usize {
        match self {
            Posting::Empty | Posting::One(_) => 0,
            Posting::Few(v) => std::mem::size_of::<Vec<u32>>() + v.capacity() * 4,
            Posting::Big(b) => std::mem::size_of::<RoaringBitmap>() + b.serialized_size(),
        }
    }
}

/// The indexes of one shard.
#[derive(Default)]
pub(super) struct Index {
    values: AHashMap<(KeyId, Sym), Posting>,
    keys: AHashMap<KeyId, Posting>,
    roles: AHashMap<Sym, Posting>,
    /// Slots by their number of roles: every live slot is in exactly one.
    role_counts: AHashMap<u32, Posting>,
}

/// Adds `slot` to the posting of `key`, or removes it (dropping the posting
/// when it empties, so the index never holds more than the live sessions
/// need).
fn touch<K: std::hash::Hash + Eq>(map: &mut AHashMap<K, Posting>, key: K, slot: u32, add: bool) {
    if add {
        map.entry(key).or_default().insert(slot);
    } else if let Some(p) = map.get_mut(&key) {
        p.remove(slot);
        if p.is_empty() {
            map.remove(&key);
        }
    }
}

impl Index {
    /// Indexes the session in `slot`.
    pub(super) fn add(&mut self, slot: u32, s: &Session) {
        self.touch_session(slot, s, true);
    }

    /// Forgets the session in `slot`.
    pub(super) fn remove(&mut self, slot: u32, s: &Session) {
        self.touch_session(slot, s, false);
    }

    fn touch_session(&mut self, slot: u32, s: &Session, add: bool) {
        s.for_each_term(|term| self.touch_term(slot, term, add));
    }

    fn touch_term(&mut self, slot: u32, term: Term, add: bool) {
        match term {
            Term::Key(key) => touch(&mut self.keys, key, slot, add),
            // The id map answers `$SessionId`.
            Term::Value(key, _) if key == KeyId::fixed(SESSION_ID_SLOT) => {}
            Term::Value(key, v) => touch(&mut self.values, (key, v), slot, add),
            Term::Role(r) => touch(&mut self.roles, r, slot, add),
            Term::RoleCount(n) => touch(&mut self.role_counts, n, slot, add),
        }
    }

    /// Indexes the roles (and `$Roles` presence) of the session in `slot`.
    pub(super) fn add_roles(&mut self, slot: u32, s: &Session) {
        self.touch_roles(slot, s, true);
    }

    /// Forgets the roles of the session in `slot`.
    pub(super) fn remove_roles(&mut self, slot: u32, s: &Session) {
        self.touch_roles(slot, s, false);
    }

    fn touch_roles(&mut self, slot: u32, s: &Session, add: bool) {
        s.for_each_role_term(|term| self.touch_term(slot, term, add));
    }

    /// Heap bytes the index holds, roughly: postings plus map entries.
    pub(super) fn heap_bytes(&self) -> usize {
        fn map<K>(m: &AHashMap<K, Posting>) -> usize {
            let entry = std::mem::size_of::<K>() + std::mem::size_of::<Posting>() + 1;
            m.capacity() * entry + m.values().map(Posting::heap_bytes).sum::<usize>()
        }
        map(&self.values) + map(&self.keys) + map(&self.roles) + map(&self.role_counts)
    }

    /// Bytes of the hash tables and of the postings' own heap.
    pub(super) fn memory(&self) -> (usize, usize) {
        fn map<K>(m: &AHashMap<K, Posting>) -> (usize, usize) {
            let entry = std::mem::size_of::<K>() + std::mem::size_of::<Posting>() + 1;
            (
                m.capacity() * entry,
                m.values().map(Posting::heap_bytes).sum::<usize>(),
            )
        }
        let parts = [
            map(&self.values),
            map(&self.keys),
            map(&self.roles),
            map(&self.role_counts),
        ];
        (
            parts.iter().map(|p| p.0).sum(),
            parts.iter().map(|p| p.1).sum(),
        )
    }

    /// The postings a test reads: how many, and their total size.
    fn postings_of<'a>(
        &'a self,
        program: &Program,
        test: Test,
    ) -> SmallVec<[Option<&'a Posting>; 4]> {
        let value = |key: KeyId, v: Sym| self.values.get(&(key, v));
        match test {
            Test::FixedEq { slot, value: v } => {
                smallvec::smallvec![value(KeyId::fixed(slot as usize), v)]
            }
            Test::FixedIn { slot, values } => program
                .pool(values)
                .iter()
                .map(|&v| value(KeyId::fixed(slot as usize), v))
                .collect(),
            Test::FixedHas { slot } => {
                smallvec::smallvec![self.keys.get(&KeyId::fixed(slot as usize))]
            }
            Test::OtherEq { key, value: v } => smallvec::smallvec![value(KeyId::other(key), v)],
            Test::OtherIn { key, values } => program
                .pool(values)
                .iter()
                .map(|&v| value(KeyId::other(key), v))
                .collect(),
            Test::OtherHas { key } => smallvec::smallvec![self.keys.get(&KeyId::other(key))],
            Test::HasRoles { roles } => program
                .pool(roles)
                .iter()
                .map(|r| self.roles.get(r))
                .collect(),
            Test::RolesEq { roles } => {
                let mut p: SmallVec<[Option<&Posting>; 4]> = program
                    .pool(roles)
                    .iter()
                    .map(|r| self.roles.get(r))
                    .collect();
                p.push(self.role_counts.get(&roles.len));
                p
            }
            Test::RolesIn { sets } => program
                .sets(sets)
                .iter()
                .flat_map(|&set| {
                    program
                        .pool(set)
                        .iter()
                        .map(|r| self.roles.get(r))
                        .chain([self.role_counts.get(&set.len)])
                })
                .collect(),
        }
    }

    /// The live slots for which `test` holds, from the postings alone.
    fn answer(&self, program: &Program, test: Test) -> RoaringBitmap {
        let intersection = |posts: &mut dyn Iterator<Item = Option<&Posting>>| -> RoaringBitmap {
            let mut posts: SmallVec<[&Posting; 4]> = match posts.collect::<Option<_>>() {
                Some(p) => p,
                None => return RoaringBitmap::new(),
            };
            posts.sort_by_key(|p| p.len());
            let mut iter = posts.into_iter();
            let Some(first) = iter.next() else {
                return RoaringBitmap::new();
            };
            let mut acc = first.to_bitmap();
            for p in iter {
                if acc.is_empty() {
                    break;
                }
                acc = p.intersect(&acc);
            }
            acc
        };
        let role_set = |set: Pool| -> RoaringBitmap {
            let mut posts = program
                .pool(set)
                .iter()
                .map(|r| self.roles.get(r))
                .chain([self.role_counts.get(&set.len)]);
            intersection(&mut posts)
        };
        match test {
            Test::HasRoles { roles } => {
                intersection(&mut program.pool(roles).iter().map(|r| self.roles.get(r)))
            }
            Test::RolesEq { roles } => role_set(roles),
            Test::RolesIn { sets } => {
                let mut acc = RoaringBitmap::new();
                for &set in program.sets(sets) {
                    acc |= role_set(set);
                }
                acc
            }
            // Everything else is one posting or the union of several.
            test => {
                let mut acc = RoaringBitmap::new();
                for p in self.postings_of(program, test).into_iter().flatten() {
                    p.union_into(&mut acc);
                }
                acc
            }
        }
    }
}

/// How one op was answered, for `explain`.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct OpStats {
    /// Shards where the postings answered the op.
    pub by_index: usize,
    /// Shards where the op tested the reaching sessions one by one.
    pub by_test: usize,
    /// Slots that reached the op, over all shards.
    pub reached: u64,
    /// Of those, slots for which the test held.
    pub held: u64,
}

/// What a shard's evaluation found.
pub(super) enum Answer {
    /// The matching slots.
    Slots(RoaringBitmap),
    /// Not worth the index: run a block scan.
    Scan,
}

/// Rough costs, in nanoseconds, that decide between postings and tests.
const COST_PER_POSTING: u64 = 60;
const COST_PER_POSTED_SLOT: u64 = 1;
const COST_PER_TESTED_SESSION: u64 = 40;

/// The `$SessionId` values a test compares with, if it is one of those.
fn id_values(program: &Program, test: Test) -> Option<SmallVec<[Sym; 4]>> {
    match test {
        Test::FixedEq { slot, value } if slot as usize == SESSION_ID_SLOT => {
            Some(smallvec::smallvec![value])
        }
        Test::FixedIn { slot, values } if slot as usize == SESSION_ID_SLOT => {
            Some(program.pool(values).iter().copied().collect())
        }
        _ => None,
    }
}

/// The shard's data the planner reads besides its index.
pub(super) struct ShardView<'a> {
    pub sessions: &'a [Session],
    pub live: &'a RoaringBitmap,
    /// `$SessionId` → slot.
    pub positions: &'a AHashMap<Sym, u32>,
}

/// Answers `program` for a shard from its index, or says a scan is better.
/// `stats`, when given, collects how each op was answered.
pub(super) fn evaluate(
    index: &Index,
    program: &Program,
    shard: &ShardView<'_>,
    stats: Option<&mut [OpStats]>,
) -> Answer {
    let mut oracle = Planner {
        index,
        shard,
        stats,
    };
    match program.run_sets(&mut oracle) {
        None => Answer::Scan,
        Some(Reach::All) => Answer::Slots(shard.live.clone()),
        Some(Reach::Some(slots)) => Answer::Slots(slots),
    }
}

/// Answers each test of a program for the slots reaching it, from the
/// postings or by testing those slots' sessions, whichever costs less.
struct Planner<'a, 'b> {
    index: &'a Index,
    shard: &'a ShardView<'b>,
    stats: Option<&'a mut [OpStats]>,
}

impl SetOracle for Planner<'_, '_> {
    type Set = RoaringBitmap;

    fn split(
        &mut self,
        program: &Program,
        pc: usize,
        test: Test,
        here: &Reach<RoaringBitmap>,
    ) -> ControlFlow<(), RoaringBitmap> {
        let here_len = match here {
            Reach::All => self.shard.live.len(),
            Reach::Some(b) => b.len(),
        };
        let ids = id_values(program, test);
        let index_cost = match &ids {
            Some(ids) => ids.len() as u64 * COST_PER_POSTING,
            None => {
                let posts = self.index.postings_of(program, test);
                posts.len() as u64 * COST_PER_POSTING
                    + posts.iter().flatten().map(|p| p.len()).sum::<u64>() * COST_PER_POSTED_SLOT
            }
        };
        let by_index = index_cost <= here_len * COST_PER_TESTED_SESSION;
        let yes = match (by_index, here) {
            // Testing every session one by one: the block scan does that best.
            (false, Reach::All) => return ControlFlow::Break(()),
            (false, Reach::Some(b)) => b
                .iter()
                .filter(|&slot| {
                    self.shard
                        .sessions
                        .get(slot as usize)
                        .is_some_and(|s| program.test(test, s))
                })
                .collect(),
            (true, here) => {
                let answer: RoaringBitmap = match &ids {
                    Some(ids) => ids
                        .iter()
                        .filter_map(|v| self.shard.positions.get(v).copied())
                        .collect(),
                    None => self.index.answer(program, test),
                };
                match here {
                    Reach::All => answer,
                    Reach::Some(b) => answer & b,
                }
            }
        };
        if let Some(st) = self.stats.as_deref_mut().and_then(|s| s.get_mut(pc)) {
            if by_index {
                st.by_index += 1;
            } else {
                st.by_test += 1;
            }
            st.reached += here_len;
            st.held += yes.len();
        }
        ControlFlow::Continue(yes)
    }

    fn difference(&mut self, here: Reach<RoaringBitmap>, yes: &RoaringBitmap) -> RoaringBitmap {
        match here {
            Reach::All => self.shard.live - yes,
            Reach::Some(b) => b - yes,
        }
    }

    fn union(&mut self, acc: &mut RoaringBitmap, more: RoaringBitmap) {
        *acc |= more;
    }

    fn is_empty(&self, set: &RoaringBitmap) -> bool {
        set.is_empty()
    }

    fn empty(&mut self) -> RoaringBitmap {
        RoaringBitmap::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postings_stay_small_in_a_map() {
        assert_eq!(std::mem::size_of::<Posting>(), 16);
        assert_eq!(std::mem::size_of::<(KeyId, Sym)>(), 8);
    }

    #[test]
    fn postings_grow_from_small_to_bitmap_and_back_to_empty() {
        let mut p = Posting::default();
        p.insert(7);
        assert!(matches!(p, Posting::One(7)));
        p.insert(5);
        assert_eq!(p.small(), [5, 7]);
        p.remove(7);
        assert!(matches!(p, Posting::One(5)));
        p.remove(5);
        assert!(p.is_empty());
        for s in (0..100).rev() {
            p.insert(s * 3);
        }
        p.insert(3);
        assert!(matches!(p, Posting::Big(_)));
        assert_eq!(p.len(), 100);
        for s in 0..100 {
            p.remove(s * 3);
        }
        assert!(p.is_empty());
        let mut small = Posting::default();
        small.insert(9);
        small.insert(2);
        assert_eq!(small.to_bitmap().iter().collect::<Vec<_>>(), [2, 9]);
        let acc: RoaringBitmap = [2, 3].into_iter().collect();
        assert_eq!(small.intersect(&acc).iter().collect::<Vec<_>>(), [2]);
    }
}
