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

use super::ids::IdMap;
use crate::intern::Sym;
use crate::session::{Key, PropertyKey, Session, Term, FIXED_SLOTS, SESSION_ID_SLOT};
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
                // Back to the small forms as it shrinks, so an emptied or
                // single posting is freed or held inline whatever it was.
                match b.len() {
                    0 => *self = Posting::Empty,
                    1 => *self = b.min().map_or(Posting::Empty, Posting::One),
                    n if n as usize <= SMALL_MAX / 2 => {
                        *self = Posting::Few(Box::new(b.iter().collect()));
                    }
                    _ => {}
                }
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

/// A value's posting as its map holds it, in 4 bytes: the slot itself when
/// one session has the value (most values of `$ClientIP` or `$StartTime`),
/// else, with the top bit set, the posting's place in `Index::shared`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ValuePosting(u32);

const SHARED: u32 = 1 << 31;

impl ValuePosting {
    fn one(slot: u32) -> Option<ValuePosting> {
        (slot < SHARED).then_some(ValuePosting(slot))
    }

    fn shared(at: u32) -> ValuePosting {
        ValuePosting(at | SHARED)
    }

    /// The place in `Index::shared`, or `None` for a single slot.
    fn place(self) -> Option<usize> {
        (self.0 & SHARED != 0).then_some((self.0 & !SHARED) as usize)
    }
}

/// A posting as the planner reads it: one slot, or a posting of the index.
#[derive(Clone, Copy)]
enum Post<'a> {
    One(u32),
    Held(&'a Posting),
}

impl Post<'_> {
    fn len(self) -> u64 {
        match self {
            Post::One(_) => 1,
            Post::Held(p) => p.len(),
        }
    }

    fn to_bitmap(self) -> RoaringBitmap {
        match self {
            Post::One(s) => std::iter::once(s).collect(),
            Post::Held(p) => p.to_bitmap(),
        }
    }

    fn union_into(self, acc: &mut RoaringBitmap) {
        match self {
            Post::One(s) => {
                acc.insert(s);
            }
            Post::Held(p) => p.union_into(acc),
        }
    }

    fn intersect(self, acc: &RoaringBitmap) -> RoaringBitmap {
        match self {
            Post::One(s) => std::iter::once(s).filter(|&s| acc.contains(s)).collect(),
            Post::Held(p) => p.intersect(acc),
        }
    }
}

type ValueMap = AHashMap<Sym, ValuePosting>;

/// The value maps by key: the fixed keys' by slot, so a lookup hashes once.
#[derive(Default)]
struct ValueMaps {
    fixed: [ValueMap; FIXED_SLOTS],
    other: AHashMap<Key, ValueMap>,
}

impl ValueMaps {
    fn get(&self, key: Key) -> Option<&ValueMap> {
        match key.fixed_slot() {
            Some(slot) => self.fixed.get(slot),
            None => self.other.get(&key),
        }
    }

    fn get_mut(&mut self, key: Key) -> Option<&mut ValueMap> {
        match key.fixed_slot() {
            Some(slot) => self.fixed.get_mut(slot),
            None => self.other.get_mut(&key),
        }
    }

    fn entry(&mut self, key: Key) -> &mut ValueMap {
        match key.fixed_slot().and_then(|slot| self.fixed.get_mut(slot)) {
            Some(map) => map,
            None => self.other.entry(key).or_default(),
        }
    }

    /// Drops `key`'s map if it is empty and not a fixed key's.
    fn remove_if_empty(&mut self, key: Key) {
        if key.fixed_slot().is_none() && self.other.get(&key).is_some_and(|m| m.is_empty()) {
            self.other.remove(&key);
        }
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.other.is_empty() && self.fixed.iter().all(|m| m.is_empty())
    }

    fn bytes(&self) -> usize {
        let entry = std::mem::size_of::<(Sym, ValuePosting)>() + 1;
        let outer = std::mem::size_of::<(Key, ValueMap)>() + 1;
        self.other.capacity() * outer
            + self
                .fixed
                .iter()
                .chain(self.other.values())
                .map(|m| m.capacity() * entry)
                .sum::<usize>()
    }
}

fn held(p: Option<&Posting>) -> Option<Post<'_>> {
    p.map(Post::Held)
}

/// The indexes of one shard.
#[derive(Default)]
pub(super) struct Index {
    /// Per key, the slots of each value. A map per key keeps an entry to a
    /// value id and a `ValuePosting`: 8 bytes, where a map keyed by both
    /// with the posting inline took 24.
    values: ValueMaps,
    /// The postings of values that more than one session has; free places
    /// are empty and listed in `free_shared`.
    shared: Vec<Posting>,
    free_shared: Vec<u32>,
    keys: AHashMap<Key, Posting>,
    roles: AHashMap<Sym, Posting>,
    /// Slots by their number of roles: every live slot is in exactly one.
    role_counts: AHashMap<u32, Posting>,
}

/// Adds `slot` to the posting of `key`.
fn post<K: std::hash::Hash + Eq>(map: &mut AHashMap<K, Posting>, key: K, slot: u32) {
    map.entry(key).or_default().insert(slot);
}

/// Removes `slot` from the posting of `key`, dropping the posting when it
/// empties, so the index never holds more than the live sessions need.
fn unpost<K: std::hash::Hash + Eq>(map: &mut AHashMap<K, Posting>, key: K, slot: u32) {
    if let Some(p) = map.get_mut(&key) {
        p.remove(slot);
        if p.is_empty() {
            map.remove(&key);
        }
    }
}

impl Index {
    /// Indexes the session in `slot`.
    pub(super) fn add(&mut self, slot: u32, s: &Session) {
        s.for_each_term(None, |term| self.add_term(slot, term));
    }

    /// Forgets the session in `slot`.
    pub(super) fn remove(&mut self, slot: u32, s: &Session) {
        s.for_each_term(None, |term| self.remove_term(slot, term));
    }

    fn add_term(&mut self, slot: u32, term: Term) {
        match term {
            Term::Present(key) => post(&mut self.keys, key, slot),
            // The id map answers `$SessionId`.
            Term::Value(key, _) if key == Key::fixed(SESSION_ID_SLOT) => {}
            Term::Value(key, v) => self.add_value(key, v, slot),
            Term::Role(r) => post(&mut self.roles, r, slot),
            Term::RoleCount(n) => post(&mut self.role_counts, n, slot),
        }
    }

    fn remove_term(&mut self, slot: u32, term: Term) {
        match term {
            Term::Present(key) => unpost(&mut self.keys, key, slot),
            Term::Value(key, _) if key == Key::fixed(SESSION_ID_SLOT) => {}
            Term::Value(key, v) => self.remove_value(key, v, slot),
            Term::Role(r) => unpost(&mut self.roles, r, slot),
            Term::RoleCount(n) => unpost(&mut self.role_counts, n, slot),
        }
    }

    /// Removes `slot` from the posting of `key`'s value `v`; a shared
    /// posting left with one slot goes back inline, an empty one is freed.
    fn remove_value(&mut self, key: Key, v: Sym, slot: u32) {
        let Some(map) = self.values.get_mut(key) else {
            return;
        };
        let Some(&posting) = map.get(&v) else {
            return;
        };
        match posting.place() {
            None if posting.0 == slot => {
                map.remove(&v);
            }
            None => {}
            Some(at) => {
                let Some(p) = self.shared.get_mut(at) else {
                    return;
                };
                p.remove(slot);
                // Back to a single slot held inline, or gone.
                let single = match &*p {
                    Posting::Empty => Some(None),
                    Posting::One(s) => ValuePosting::one(*s).map(Some),
                    _ => None,
                };
                if let Some(single) = single {
                    *p = Posting::Empty;
                    self.free_shared.push(at as u32);
                    match single {
                        Some(one) => {
                            map.insert(v, one);
                        }
                        None => {
                            map.remove(&v);
                        }
                    }
                }
            }
        }
        self.values.remove_if_empty(key);
    }

    /// Adds `slot` to the posting of `key`'s value `v`.
    fn add_value(&mut self, key: Key, v: Sym, slot: u32) {
        let map = self.values.entry(key);
        let (first, at) = match map.get(&v).map(|p| p.place()) {
            None => match ValuePosting::one(slot) {
                Some(one) => {
                    map.insert(v, one);
                    return;
                }
                None => (None, None),
            },
            Some(Some(at)) => (None, Some(at)),
            Some(None) => match map.get(&v) {
                Some(&ValuePosting(s)) if s == slot => return,
                Some(&ValuePosting(s)) => (Some(s), None),
                None => (None, None),
            },
        };
        let at = match at {
            Some(at) => at,
            None => {
                let mut p = Posting::default();
                if let Some(s) = first {
                    p.insert(s);
                }
                let at = match self.free_shared.pop() {
                    Some(at) => {
                        if let Some(place) = self.shared.get_mut(at as usize) {
                            *place = p;
                        }
                        at
                    }
                    None => {
                        self.shared.push(p);
                        (self.shared.len() - 1) as u32
                    }
                };
                map.insert(v, ValuePosting::shared(at));
                at as usize
            }
        };
        if let Some(p) = self.shared.get_mut(at) {
            p.insert(slot);
        }
    }

    /// The posting of `key`'s value `v`.
    fn value(&self, key: Key, v: Sym) -> Option<Post<'_>> {
        let posting = *self.values.get(key)?.get(&v)?;
        match posting.place() {
            None => Some(Post::One(posting.0)),
            Some(at) => self.shared.get(at).map(Post::Held),
        }
    }

    /// Indexes one key (not `$Roles`) of the session in `slot`.
    pub(super) fn add_key(&mut self, slot: u32, s: &Session, key: &PropertyKey) {
        s.for_each_term(Some(&[key.key()]), |term| self.add_term(slot, term));
    }

    /// Forgets one key (not `$Roles`) of the session in `slot`.
    pub(super) fn remove_key(&mut self, slot: u32, s: &Session, key: &PropertyKey) {
        s.for_each_term(Some(&[key.key()]), |term| self.remove_term(slot, term));
    }

    /// Indexes the roles (and `$Roles` presence) of the session in `slot`.
    pub(super) fn add_roles(&mut self, slot: u32, s: &Session) {
        s.for_each_term(Some(&[Key::roles()]), |term| self.add_term(slot, term));
    }

    /// Forgets the roles of the session in `slot`.
    pub(super) fn remove_roles(&mut self, slot: u32, s: &Session) {
        s.for_each_term(Some(&[Key::roles()]), |term| self.remove_term(slot, term));
    }

    /// Heap bytes the index holds, roughly: postings plus map entries.
    pub(super) fn heap_bytes(&self) -> usize {
        let (tables, postings) = self.memory();
        tables + postings
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
        let parts = [map(&self.keys), map(&self.roles), map(&self.role_counts)];
        let values = self.values.bytes();
        let shared = (self.shared.capacity() + 1) * std::mem::size_of::<Posting>()
            + self.free_shared.capacity() * 4
            + self.shared.iter().map(Posting::heap_bytes).sum::<usize>();
        (
            values + parts.iter().map(|p| p.0).sum::<usize>(),
            shared + parts.iter().map(|p| p.1).sum::<usize>(),
        )
    }

    /// The postings a test reads: how many, and their total size.
    fn postings_of<'a>(&'a self, program: &Program, test: Test) -> SmallVec<[Option<Post<'a>>; 4]> {
        let value = |key: Key, v: Sym| self.value(key, v);
        match test {
            Test::FixedEq { slot, value: v } => {
                smallvec::smallvec![value(Key::fixed(slot as usize), v)]
            }
            Test::FixedIn { slot, values } => program
                .pool(values)
                .iter()
                .map(|&v| value(Key::fixed(slot as usize), v))
                .collect(),
            // A regex holds only where the key is present: the presence
            // posting is a superset, which the planner tests one by one.
            Test::FixedHas { slot } | Test::FixedMatches { slot, .. } => {
                smallvec::smallvec![held(self.keys.get(&Key::fixed(slot as usize)))]
            }
            Test::OtherEq { key, value: v } => smallvec::smallvec![value(Key::other(key), v)],
            Test::OtherIn { key, values } => program
                .pool(values)
                .iter()
                .map(|&v| value(Key::other(key), v))
                .collect(),
            Test::OtherHas { key } | Test::OtherMatches { key, .. } => {
                smallvec::smallvec![held(self.keys.get(&Key::other(key)))]
            }
            Test::HasRoles { roles } => program
                .pool(roles)
                .iter()
                .map(|r| held(self.roles.get(r)))
                .collect(),
            Test::RolesEq { roles } => {
                let mut p: SmallVec<[Option<Post<'a>>; 4]> = program
                    .pool(roles)
                    .iter()
                    .map(|r| held(self.roles.get(r)))
                    .collect();
                p.push(held(self.role_counts.get(&roles.len)));
                p
            }
            Test::RolesIn { sets } => program
                .sets(sets)
                .iter()
                .flat_map(|&set| {
                    program
                        .pool(set)
                        .iter()
                        .map(move |r| held(self.roles.get(r)))
                        .chain([held(self.role_counts.get(&set.len))])
                })
                .collect(),
        }
    }

    /// The live slots for which `test` holds, from the postings alone (for
    /// a `matches` test, a superset: the slots where its key is present).
    fn answer(&self, program: &Program, test: Test) -> RoaringBitmap {
        let intersection = |posts: &mut dyn Iterator<Item = Option<Post<'_>>>| -> RoaringBitmap {
            let mut posts: SmallVec<[Post<'_>; 4]> = match posts.collect::<Option<_>>() {
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
                .map(|r| held(self.roles.get(r)))
                .chain([held(self.role_counts.get(&set.len))]);
            intersection(&mut posts)
        };
        match test {
            Test::HasRoles { roles } => {
                intersection(&mut program.pool(roles).iter().map(|r| held(self.roles.get(r))))
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
    pub ids: &'a IdMap,
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
        // A regex is answered from the postings of its key's presence, then
        // tested on each session there.
        let regex = matches!(test, Test::FixedMatches { .. } | Test::OtherMatches { .. });
        let index_cost = match &ids {
            Some(ids) => ids.len() as u64 * COST_PER_POSTING,
            None => {
                let posts = self.index.postings_of(program, test);
                let per_slot = if regex {
                    COST_PER_TESTED_SESSION
                } else {
                    COST_PER_POSTED_SLOT
                };
                posts.len() as u64 * COST_PER_POSTING
                    + posts.iter().flatten().map(|p| p.len()).sum::<u64>() * per_slot
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
                        .filter_map(|&v| self.shard.ids.get(self.shard.sessions, v))
                        .collect(),
                    None => self.index.answer(program, test),
                };
                let mut answer = match here {
                    Reach::All => answer,
                    Reach::Some(b) => answer & b,
                };
                if regex {
                    let sessions = self.shard.sessions;
                    answer.retain(|slot| {
                        sessions
                            .get(slot as usize)
                            .is_some_and(|s| program.test(test, s))
                    });
                }
                answer
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
        assert_eq!(std::mem::size_of::<(Sym, ValuePosting)>(), 8);
    }

    #[test]
    fn a_big_value_posting_that_shrinks_to_one_slot_or_none_is_freed() {
        let mut index = Index::default();
        let (key, v) = (Key::fixed(3), crate::intern::Sym::PRESENT);
        let slots = 0..(SMALL_MAX as u32 * 4);
        for slot in slots.clone() {
            index.add_value(key, v, slot);
        }
        assert!(matches!(
            index.value(key, v),
            Some(Post::Held(Posting::Big(_)))
        ));
        for slot in slots.clone().skip(1) {
            index.remove_value(key, v, slot);
        }
        // One slot left: held inline again, the shared posting freed.
        assert!(matches!(index.value(key, v), Some(Post::One(0))));
        assert_eq!(index.free_shared.len(), index.shared.len());
        assert!(index.shared.iter().all(|p| matches!(p, Posting::Empty)));
        index.remove_value(key, v, 0);
        assert!(index.value(key, v).is_none());
        assert!(index.values.is_empty());
        // The same for key, role and count postings: gone when empty.
        let mut p = Posting::default();
        for slot in slots.clone() {
            p.insert(slot);
        }
        for slot in slots.clone().skip(2) {
            p.remove(slot);
        }
        assert!(matches!(&p, Posting::Few(v) if v[..] == [0, 1]));
        p.remove(0);
        assert!(matches!(p, Posting::One(1)));
        p.remove(1);
        assert!(p.is_empty() && matches!(p, Posting::Empty));
    }

    #[test]
    fn value_postings_move_between_inline_and_shared() {
        let mut index = Index::default();
        let (key, v) = (Key::fixed(3), crate::intern::Sym::PRESENT);
        assert_eq!(key.fixed_slot(), Some(3));
        assert_eq!(
            Key::fixed(FIXED_SLOTS - 1).fixed_slot(),
            Some(FIXED_SLOTS - 1)
        );
        assert_eq!(Key::other(v).fixed_slot(), None);
        index.add_value(key, v, 5);
        assert!(matches!(index.value(key, v), Some(Post::One(5))));
        index.add_value(key, v, 5);
        index.add_value(key, v, 9);
        assert_eq!(index.value(key, v).map(|p| p.len()), Some(2));
        index.remove_value(key, v, 5);
        assert!(matches!(index.value(key, v), Some(Post::One(9))));
        // A slot too large to hold inline lives in a shared posting.
        index.add_value(key, v, SHARED + 1);
        index.remove_value(key, v, 9);
        assert!(matches!(index.value(key, v), Some(Post::Held(_))));
        assert_eq!(index.value(key, v).map(|p| p.len()), Some(1));
        index.remove_value(key, v, SHARED + 1);
        assert!(index.value(key, v).is_none());
        assert!(index.values.is_empty());
        assert_eq!(index.free_shared.len(), index.shared.len());
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
