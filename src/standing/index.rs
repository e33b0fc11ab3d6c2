//! The reverse index of a [`FilterSet`](super::FilterSet): from terms a
//! session can have to the distinct filters (entries) that can only match a
//! session with that term.
//!
//! Each entry is *posted* under the terms of one access predicate (its
//! placement), chosen when it is added:
//!
//! - `post[term]`: the entries posted under `term`, for `matching`;
//! - `by_key[(term, key)]`: the same entries once per key they mention, so
//!   that `changes` finds the entries under a session's terms that read a
//!   changed key without looking at the others;
//! - `unindexed`, and `unindexed_by_key[key]` for each key they mention: the
//!   entries with no access predicate (only `ne`, `not`, absence), which every
//!   `matching` call runs and `changes` runs when one of their keys changes;
//! - `always`: the entries that match every session without a test.
//!
//! Every list holds `(entry, k)` where `k` is the membership's number in the
//! entry's placement, and the entry keeps, per membership, its index in the
//! list: removal is a swap-remove that fixes the one element it moved, so
//! adding and removing an entry cost O(memberships), never a rebuild.

use ahash::AHashMap;
use smallvec::SmallVec;

use crate::vm::analysis::{Access, Key, Term};

/// One list of the index: `(entry, membership number)`.
pub(super) type List = Vec<(u32, u32)>;

/// Where an entry is posted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Placement {
    /// Under each of these terms (the terms of one access predicate).
    Terms(SmallVec<[Term; 1]>),
    /// In the unindexed list, and under each key it mentions.
    Unindexed,
    /// In the list of entries that always match.
    Always,
    /// Nowhere: the entry never matches.
    Never,
}

/// The placement of one entry and its indices in its lists.
struct Placed {
    placement: Placement,
    keys: SmallVec<[Key; 2]>,
    /// Per membership (in the order of [`ReverseIndex::memberships`]), the
    /// entry's index in that list.
    back: Box<[u32]>,
}

/// A list of the index, named.
#[derive(Clone, Copy)]
enum ListRef {
    Post(Term),
    ByKey(Term, Key),
    Unindexed,
    UnindexedByKey(Key),
    Always,
}

/// See the module docs.
#[derive(Default)]
pub(super) struct ReverseIndex {
    post: AHashMap<Term, List>,
    by_key: AHashMap<(Term, Key), List>,
    unindexed: List,
    unindexed_by_key: AHashMap<Key, List>,
    always: List,
    /// By entry number.
    placed: Vec<Option<Placed>>,
}

impl ReverseIndex {
    /// Where an entry with `access` goes now: the access predicate of the
    /// best class (equality, then `in`, role, role count, presence) and,
    /// within it, the one whose lists are shortest, so postings stay
    /// balanced. Also whether a session may meet it through two terms.
    pub(super) fn place(&self, access: Access) -> (Placement, bool) {
        match access {
            Access::Always => (Placement::Always, false),
            Access::Never => (Placement::Never, false),
            Access::Unindexed => (Placement::Unindexed, false),
            Access::Any(alternatives) => {
                let cost = |terms: &[Term]| -> usize {
                    terms
                        .iter()
                        .map(|t| self.post.get(t).map_or(0, Vec::len))
                        .sum()
                };
                match alternatives
                    .into_iter()
                    .min_by_key(|a| (a.class, cost(&a.terms)))
                {
                    Some(best) => {
                        let multi = !best.exclusive();
                        (Placement::Terms(best.terms), multi)
                    }
                    None => (Placement::Unindexed, false),
                }
            }
        }
    }

    /// The lists an entry placed so with these keys belongs to, in order.
    fn memberships<'a>(
        placement: &'a Placement,
        keys: &'a [Key],
    ) -> impl Iterator<Item = ListRef> + 'a {
        let (terms, unindexed, always): (&[Term], bool, bool) = match placement {
            Placement::Terms(terms) => (terms, false, false),
            Placement::Unindexed => (&[], true, false),
            Placement::Always => (&[], false, true),
            Placement::Never => (&[], false, false),
        };
        let posts = terms.iter().map(|&t| ListRef::Post(t));
        let by_key = terms
            .iter()
            .flat_map(move |&t| keys.iter().map(move |&k| ListRef::ByKey(t, k)));
        let unindexed = unindexed.then_some(ListRef::Unindexed).into_iter().chain(
            keys.iter()
                .filter(move |_| unindexed)
                .map(|&k| ListRef::UnindexedByKey(k)),
        );
        posts
            .chain(by_key)
            .chain(unindexed)
            .chain(always.then_some(ListRef::Always))
    }

    fn list_mut(&mut self, r: ListRef) -> &mut List {
        match r {
            ListRef::Post(t) => self.post.entry(t).or_default(),
            ListRef::ByKey(t, k) => self.by_key.entry((t, k)).or_default(),
            ListRef::Unindexed => &mut self.unindexed,
            ListRef::UnindexedByKey(k) => self.unindexed_by_key.entry(k).or_default(),
            ListRef::Always => &mut self.always,
        }
    }

    /// Drops the list of `r` when it is empty, so the maps hold no more
    /// than the live entries need.
    fn drop_if_empty(&mut self, r: ListRef) {
        match r {
            ListRef::Post(t) => {
                if self.post.get(&t).is_some_and(Vec::is_empty) {
                    self.post.remove(&t);
                }
            }
            ListRef::ByKey(t, k) => {
                if self.by_key.get(&(t, k)).is_some_and(Vec::is_empty) {
                    self.by_key.remove(&(t, k));
                }
            }
            ListRef::UnindexedByKey(k) => {
                if self.unindexed_by_key.get(&k).is_some_and(Vec::is_empty) {
                    self.unindexed_by_key.remove(&k);
                }
            }
            ListRef::Unindexed | ListRef::Always => {}
        }
    }

    /// Adds entry `e` to the lists of its placement.
    pub(super) fn add(&mut self, e: u32, placement: Placement, keys: SmallVec<[Key; 2]>) {
        let refs: SmallVec<[ListRef; 8]> = Self::memberships(&placement, &keys).collect();
        let mut back = Vec::with_capacity(refs.len());
        for (k, &r) in refs.iter().enumerate() {
            let list = self.list_mut(r);
            back.push(list.len() as u32);
            list.push((e, k as u32));
        }
        let at = e as usize;
        if self.placed.len() <= at {
            self.placed.resize_with(at + 1, || None);
        }
        self.placed[at] = Some(Placed {
            placement,
            keys,
            back: back.into_boxed_slice(),
        });
    }

    /// Removes entry `e` from every list it is in.
    pub(super) fn remove(&mut self, e: u32) {
        let Some(placed) = self.placed.get_mut(e as usize).and_then(Option::take) else {
            return;
        };
        let refs = Self::memberships(&placed.placement, &placed.keys);
        for (r, &at) in refs.zip(placed.back.iter()) {
            let list = self.list_mut(r);
            let at = at as usize;
            if at >= list.len() {
                continue;
            }
            list.swap_remove(at);
            if let Some(&(moved, k)) = list.get(at) {
                let slot = self
                    .placed
                    .get_mut(moved as usize)
                    .and_then(Option::as_mut)
                    .and_then(|p| p.back.get_mut(k as usize));
                if let Some(slot) = slot {
                    *slot = at as u32;
                }
            }
            self.drop_if_empty(r);
        }
        if self.placed.last().is_some_and(Option::is_none) {
            while self.placed.last().is_some_and(Option::is_none) {
                self.placed.pop();
            }
        }
    }

    /// The entries posted under `term`.
    #[inline]
    pub(super) fn posted(&self, term: &Term) -> &[(u32, u32)] {
        self.post.get(term).map_or(&[], Vec::as_slice)
    }

    /// The entries posted under `term` that mention `key`.
    #[inline]
    pub(super) fn posted_reading(&self, term: Term, key: Key) -> &[(u32, u32)] {
        self.by_key.get(&(term, key)).map_or(&[], Vec::as_slice)
    }

    /// The entries with no access predicate.
    pub(super) fn unindexed(&self) -> &[(u32, u32)] {
        &self.unindexed
    }

    /// The entries with no access predicate that mention `key`.
    pub(super) fn unindexed_reading(&self, key: Key) -> &[(u32, u32)] {
        self.unindexed_by_key.get(&key).map_or(&[], Vec::as_slice)
    }

    /// The entries that match every session.
    pub(super) fn always(&self) -> &[(u32, u32)] {
        &self.always
    }

    /// How many distinct terms have postings, and how many postings there
    /// are in all (for `Debug`).
    pub(super) fn sizes(&self) -> (usize, usize) {
        let postings = self.post.values().map(Vec::len).sum();
        (self.post.len(), postings)
    }

    /// The placement of entry `e` (for tests).
    #[cfg(test)]
    pub(super) fn placement(&self, e: u32) -> Option<&Placement> {
        self.placed
            .get(e as usize)
            .and_then(Option::as_ref)
            .map(|p| &p.placement)
    }

    /// Checks that every back index points at its own element (for tests).
    #[cfg(test)]
    pub(super) fn check(&self) {
        for (e, placed) in self.placed.iter().enumerate() {
            let Some(placed) = placed else { continue };
            let refs = Self::memberships(&placed.placement, &placed.keys);
            for (k, (r, &at)) in refs.zip(placed.back.iter()).enumerate() {
                let list = match r {
                    ListRef::Post(t) => &self.post[&t],
                    ListRef::ByKey(t, key) => &self.by_key[&(t, key)],
                    ListRef::Unindexed => &self.unindexed,
                    ListRef::UnindexedByKey(key) => &self.unindexed_by_key[&key],
                    ListRef::Always => &self.always,
                };
                assert_eq!(list[at as usize], (e as u32, k as u32));
            }
        }
        let total: usize = self.post.values().map(Vec::len).sum::<usize>()
            + self.by_key.values().map(Vec::len).sum::<usize>()
            + self.unindexed.len()
            + self.unindexed_by_key.values().map(Vec::len).sum::<usize>()
            + self.always.len();
        let expected: usize = self.placed.iter().flatten().map(|p| p.back.len()).sum();
        assert_eq!(total, expected, "no stale list elements");
        assert!(self.post.values().all(|l| !l.is_empty()));
        assert!(self.by_key.values().all(|l| !l.is_empty()));
    }
}
