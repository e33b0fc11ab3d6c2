//! Standing filters: a set of filters kept under ids, asked which of them
//! match a session and which a change of a session entered or left
//! (SPEC section 8.1).
//!
//! A server registers listeners, metric collectors and branch tables as
//! filters, often hundreds of thousands of them, and asks for every session
//! that comes or changes which filters it meets. Running each filter on each
//! session costs the size of the set; a [`FilterSet`] costs, for most sets,
//! the filters a session could plausibly match.
//!
//! # Example
//!
//! ```
//! use session_filter::{FilterSet, Session};
//!
//! let mut set = FilterSet::new();
//! set.insert("uk-traders", "$Country is 'UK' and hasRoles ['trader']")?;
//! set.insert("not-ops", "Department ne 'Ops'")?;
//! set.insert("gold", "Tier is 'gold'")?;
//! assert!(set.insert("bad", "Tier is").is_err()); // the set is unchanged
//! assert_eq!(set.len(), 3);
//!
//! let before = Session::new([
//!     ("$SessionId", "s1"),
//!     ("$Country", "UK"),
//!     ("$Roles", r#""trader""#),
//!     ("Department", "Sales"),
//! ])?;
//! assert_eq!(set.matching(&before), ["uk-traders", "not-ops"]);
//! assert_eq!(set.first_match(&before), Some("uk-traders"));
//!
//! let mut after = before.clone();
//! after.set("Department", "Ops")?;
//! after.set("Tier", "gold")?;
//! let changes = set.changes(&before, &after);
//! assert_eq!(changes.entered, ["gold"]);
//! assert_eq!(changes.left, ["not-ops"]);
//! # Ok::<(), session_filter::Error>(())
//! ```
//!
//! # How it works
//!
//! Each filter is compiled once, and identical filters (the same canonical
//! text) registered under many ids share one *entry*, evaluated once per
//! session however many ids use it.
//!
//! Behind the entries is a reverse index. The compiler's analysis finds, for
//! each program, its *access predicates*: tests that hold on every path to a
//! match (an equality or `in` on a key, a role of a `hasRoles`, the role
//! count of a `$Roles` equality, a key's presence), or a set of them of which
//! every path passes one (`a or b`). The entry is posted under the terms of
//! one of them, so a session meets only the entries posted under terms it
//! has, and the VM verifies those candidates. This is how Elasticsearch's
//! percolator extracts terms and verifies, how Whang et al. ("Indexing
//! Boolean Expressions", VLDB 2009) index conjunctions, and how OpIndex
//! posts each subscription under one pivot attribute; like OpIndex, the
//! index picks among the candidates the best kind (equality, then `in`,
//! role, role count, presence) and, within it, the shortest posting list, so
//! postings stay balanced.
//!
//! Filters with no access predicate (only `ne`, `not`, absence) are run for
//! every session, as Whang et al.'s single "Z" list is. Here they are also
//! kept under every key they mention, and every posted entry under each
//! (access term, key it mentions) pair, so that [`FilterSet::changes`] runs
//! only the entries that read a changed key *and* could match one of the two
//! states: its cost grows with the filters that mention a changed key, not
//! with the size of the set.
//!
//! Adding or removing a filter touches only its own postings (a swap-remove
//! that fixes one back index), never a rebuild.
//!
//! # Costs
//!
//! Each registered id costs a map entry and a slot (its id twice, plus 20
//! bytes); each distinct filter its [`Program`], about 150 bytes of entry
//! and placement, and its postings: 8 bytes per access term, and again per
//! access term and mentioned key. On the standing benchmark's workload
//! (`examples/standing_memory.rs`), a million filters take about 620 bytes
//! each, programs included.
//!
//! Filters with no access predicate are evaluated for every session, so a
//! set dominated by them (`ne`, `not` and absence only) costs what running
//! them does; every other filter costs only the sessions that have its
//! access term.

mod index;

use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};

use ahash::AHashMap;
use smallvec::SmallVec;

use crate::error::Error;
use crate::session::Session;
use crate::syntax::Limits;
use crate::vm::analysis::Key;
use crate::vm::Program;

use index::{Placement, ReverseIndex};

/// A set of filters under ids the caller chooses, in insertion order
/// (SPEC section 8.1).
///
/// - [`insert`](FilterSet::insert) adds a filter under an id, or replaces
///   the filter of an id already there, which keeps its place;
///   [`remove`](FilterSet::remove) frees the id. A bad filter is an error
///   and leaves the set unchanged.
/// - [`matching`](FilterSet::matching): the ids whose filter matches a
///   session, in set order; [`first_match`](FilterSet::first_match) the
///   first of them.
/// - [`changes`](FilterSet::changes): for two states of one session, the ids
///   it entered and left.
///
/// Ids are any `Clone + Eq + Hash` type; the set is `Send + Sync` when the
/// id type is, and is meant to be shared behind a lock (every query takes
/// `&self` and allocates only its answer and a small scratch list).
///
/// See the [module docs](self) for an example and how the index works.
pub struct FilterSet<Id> {
    limits: Limits,
    /// Registered ids by slot number; `None` for a free slot.
    slots: Vec<Option<Slot<Id>>>,
    free_slots: Vec<u32>,
    by_id: AHashMap<Id, u32>,
    /// The position the next new id gets.
    next_pos: u32,
    /// Distinct filters by entry number; `None` for a free entry.
    entries: Vec<Option<Entry>>,
    free_entries: Vec<u32>,
    /// Entries by the hash of their canonical text.
    by_text: AHashMap<u64, SmallVec<[u32; 1]>>,
    hasher: ahash::RandomState,
    index: ReverseIndex,
}

/// One registered id.
struct Slot<Id> {
    id: Id,
    /// Its place in set order (increasing with insertion).
    pos: u32,
    /// The entry of its filter, and its index in that entry's `ids`.
    entry: u32,
    at: u32,
}

/// One distinct filter and the ids that use it.
struct Entry {
    program: Program,
    /// `(pos << 32) | slot` of each id using it, in no particular order.
    ids: SmallVec<[u64; 1]>,
    /// The smallest of `ids`.
    first: u64,
    /// A session may meet the entry through two of its terms.
    multi: bool,
    hash: u64,
}

/// The ids a change of one session entered and left: see
/// [`FilterSet::changes`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Changes<Id> {
    /// Ids whose filter matches the session after the change and did not
    /// before, in set order.
    pub entered: Vec<Id>,
    /// Ids whose filter matched the session before the change and does not
    /// after, in set order.
    pub left: Vec<Id>,
}

impl<Id> Default for Changes<Id> {
    fn default() -> Self {
        Changes {
            entered: Vec::new(),
            left: Vec::new(),
        }
    }
}

impl<Id> Changes<Id> {
    /// True when the change entered and left nothing.
    pub fn is_empty(&self) -> bool {
        self.entered.is_empty() && self.left.is_empty()
    }
}

fn pack(pos: u32, slot: u32) -> u64 {
    (u64::from(pos) << 32) | u64::from(slot)
}

fn slot_of(packed: u64) -> usize {
    (packed & u64::from(u32::MAX)) as usize
}

/// Feeds formatted text to a hasher, so a program's canonical text is
/// hashed without being built.
struct HashWriter<'a, H>(&'a mut H);

impl<H: Hasher> fmt::Write for HashWriter<'_, H> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.write(s.as_bytes());
        Ok(())
    }
}

impl<Id: Clone + Eq + Hash> Default for FilterSet<Id> {
    fn default() -> Self {
        FilterSet::new()
    }
}

impl<Id: Clone + Eq + Hash> FilterSet<Id> {
    /// An empty set that parses filters with the default [`Limits`].
    pub fn new() -> FilterSet<Id> {
        FilterSet::with_limits(Limits::default())
    }

    /// An empty set that parses filters within `limits`.
    pub fn with_limits(limits: Limits) -> FilterSet<Id> {
        FilterSet {
            limits,
            slots: Vec::new(),
            free_slots: Vec::new(),
            by_id: AHashMap::new(),
            next_pos: 0,
            entries: Vec::new(),
            free_entries: Vec::new(),
            by_text: AHashMap::new(),
            hasher: ahash::RandomState::new(),
            index: ReverseIndex::default(),
        }
    }

    /// The limits filters are parsed within.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The number of registered ids.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// True when no id is registered.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The number of distinct filters (by canonical text) among the
    /// registered ones: what a query evaluates at most.
    pub fn distinct_filters(&self) -> usize {
        self.entries.len() - self.free_entries.len()
    }

    /// True when `id` is registered.
    pub fn contains(&self, id: &Id) -> bool {
        self.by_id.contains_key(id)
    }

    /// The compiled filter of `id`.
    pub fn get(&self, id: &Id) -> Option<&Program> {
        let slot = self.slot(*self.by_id.get(id)?)?;
        self.entry(slot.entry).map(|e| &e.program)
    }

    /// The ids and their filters, in set order.
    pub fn iter(&self) -> impl Iterator<Item = (&Id, &Program)> + '_ {
        let mut order: Vec<u64> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| pack(s.pos, i as u32)))
            .collect();
        order.sort_unstable();
        order.into_iter().filter_map(move |packed| {
            let slot = self.slot(slot_of(packed) as u32)?;
            Some((&slot.id, &self.entry(slot.entry)?.program))
        })
    }

    /// Parses and compiles `filter` and registers it under `id`. An id
    /// already registered gets the new filter and keeps its place in set
    /// order. Returns the filter the id had before.
    ///
    /// A bad filter is an error and leaves the set unchanged.
    pub fn insert(&mut self, id: Id, filter: &str) -> Result<Option<Program>, Error> {
        let program = Program::compile_with(filter, &self.limits)?;
        Ok(self.insert_program(id, program))
    }

    /// Registers a compiled filter under `id`: [`FilterSet::insert`] without
    /// the parsing. Returns the filter the id had before.
    pub fn insert_program(&mut self, id: Id, program: Program) -> Option<Program> {
        let entry = self.entry_for(program);
        match self.by_id.get(&id).copied() {
            Some(s) => {
                let (old_entry, pos) = match self.slot(s) {
                    Some(slot) => (slot.entry, slot.pos),
                    None => return None,
                };
                let old = self.entry(old_entry).map(|e| e.program.clone());
                if old_entry != entry {
                    self.detach(s);
                    self.attach(s, pos, entry);
                }
                old
            }
            None => {
                if self.next_pos == u32::MAX {
                    self.renumber();
                }
                let pos = self.next_pos;
                self.next_pos += 1;
                let s = match self.free_slots.pop() {
                    Some(s) => s,
                    None => {
                        self.slots.push(None);
                        (self.slots.len() - 1) as u32
                    }
                };
                self.slots[s as usize] = Some(Slot {
                    id: id.clone(),
                    pos,
                    entry,
                    at: 0,
                });
                self.by_id.insert(id, s);
                self.attach(s, pos, entry);
                None
            }
        }
    }

    /// Unregisters `id`, returning its filter.
    pub fn remove(&mut self, id: &Id) -> Option<Program> {
        let s = self.by_id.remove(id)?;
        let program = self
            .slot(s)
            .and_then(|slot| self.entry(slot.entry))
            .map(|e| e.program.clone());
        self.detach(s);
        self.slots[s as usize] = None;
        self.free_slots.push(s);
        if self.by_id.is_empty() {
            // Nothing left to order: positions start again.
            self.next_pos = 0;
        }
        program
    }

    /// The ids whose filter matches `session`, in set order.
    pub fn matching(&self, session: &Session) -> Vec<Id> {
        let mut hits: Vec<u64> = Vec::new();
        let mut multi: SmallVec<[u32; 16]> = SmallVec::new();
        let mut verify = |e: u32, hits: &mut Vec<u64>| {
            if let Some(entry) = self.entry(e) {
                if entry.multi {
                    multi.push(e);
                } else if entry.program.matches(session) {
                    hits.extend_from_slice(&entry.ids);
                }
            }
        };
        session.for_each_term(None, |term| {
            for &(e, _) in self.index.posted(&term) {
                verify(e, &mut hits);
            }
        });
        for &(e, _) in self.index.unindexed() {
            verify(e, &mut hits);
        }
        for &(e, _) in self.index.always() {
            if let Some(entry) = self.entry(e) {
                hits.extend_from_slice(&entry.ids);
            }
        }
        // Entries met through several terms: once each.
        multi.sort_unstable();
        multi.dedup();
        for e in multi {
            if let Some(entry) = self.entry(e) {
                if entry.program.matches(session) {
                    hits.extend_from_slice(&entry.ids);
                }
            }
        }
        self.ids_in_order(hits)
    }

    /// The first id, in set order, whose filter matches `session`.
    ///
    /// Candidates whose first id comes after the best match so far are not
    /// evaluated at all.
    pub fn first_match(&self, session: &Session) -> Option<Id> {
        let mut best = u64::MAX;
        let consider = |e: u32, best: &mut u64| {
            if let Some(entry) = self.entry(e) {
                if entry.first < *best && entry.program.matches(session) {
                    *best = entry.first;
                }
            }
        };
        session.for_each_term(None, |term| {
            for &(e, _) in self.index.posted(&term) {
                consider(e, &mut best);
            }
        });
        for list in [self.index.unindexed(), self.index.always()] {
            for &(e, _) in list {
                consider(e, &mut best);
            }
        }
        (best != u64::MAX)
            .then(|| self.slot(slot_of(best) as u32).map(|s| s.id.clone()))
            .flatten()
    }

    /// For two states of one session, the ids whose filter matches `after`
    /// and not `before` (entered) and those that matched `before` and not
    /// `after` (left), each in set order: the set difference of the two
    /// [`matching`](FilterSet::matching) results.
    ///
    /// Only filters that read a key whose value differs between the two
    /// (roles compared as sets) can change, and of those only the ones
    /// either state could match are evaluated, found through the index: the
    /// cost grows with the filters that mention a changed key, not with the
    /// size of the set.
    pub fn changes(&self, before: &Session, after: &Session) -> Changes<Id> {
        let changed = before.changed_keys(after);
        self.changes_and_stayed(before, after, &changed, false).0
    }

    /// [`FilterSet::changes`] for the keys that differ between the two
    /// states (`changed`, from `Session::changed_keys`) and, when
    /// `want_stayed`, the ids whose filter reads a changed key and matches
    /// both states (in set order): the watches a change updates.
    pub(crate) fn changes_and_stayed(
        &self,
        before: &Session,
        after: &Session,
        changed: &[Key],
        want_stayed: bool,
    ) -> (Changes<Id>, Vec<Id>) {
        if changed.is_empty() {
            return (Changes::default(), Vec::new());
        }
        let mut candidates: SmallVec<[u32; 32]> = SmallVec::new();
        let mut gather = |term| {
            self.index
                .posted_reading(&term, changed, |e| candidates.push(e))
        };
        // Every term of `before`, and the terms of `after` that differ.
        before.for_each_term(None, &mut gather);
        after.for_each_term(Some(changed), &mut gather);
        for &key in changed {
            candidates.extend(self.index.unindexed_reading(key).iter().map(|&(e, _)| e));
        }
        candidates.sort_unstable();
        candidates.dedup();
        let (mut entered, mut left, mut stayed) = (Vec::new(), Vec::new(), Vec::new());
        for e in candidates {
            let Some(entry) = self.entry(e) else { continue };
            match (entry.program.matches(before), entry.program.matches(after)) {
                (false, true) => entered.extend_from_slice(&entry.ids),
                (true, false) => left.extend_from_slice(&entry.ids),
                (true, true) if want_stayed => stayed.extend_from_slice(&entry.ids),
                _ => {}
            }
        }
        let changes = Changes {
            entered: self.ids_in_order(entered),
            left: self.ids_in_order(left),
        };
        (changes, self.ids_in_order(stayed))
    }

    fn slot(&self, s: u32) -> Option<&Slot<Id>> {
        self.slots.get(s as usize).and_then(Option::as_ref)
    }

    #[inline]
    fn entry(&self, e: u32) -> Option<&Entry> {
        self.entries.get(e as usize).and_then(Option::as_ref)
    }

    fn ids_in_order(&self, mut hits: Vec<u64>) -> Vec<Id> {
        hits.sort_unstable();
        hits.into_iter()
            .filter_map(|packed| self.slot(slot_of(packed) as u32).map(|s| s.id.clone()))
            .collect()
    }

    fn hash_of(&self, program: &Program) -> u64 {
        let mut hasher = self.hasher.build_hasher();
        // Writing to a hasher cannot fail.
        let _ = fmt::write(&mut HashWriter(&mut hasher), format_args!("{program}"));
        hasher.finish()
    }

    /// The entry of `program`'s canonical text, made and indexed if there is
    /// none yet.
    fn entry_for(&mut self, program: Program) -> u32 {
        let hash = self.hash_of(&program);
        if let Some(same) = self.by_text.get(&hash) {
            for &e in same {
                if self
                    .entry(e)
                    .is_some_and(|x| x.program.same_filter(&program))
                {
                    return e;
                }
            }
        }
        let keys = program.keys().into_iter().collect();
        let (placement, multi) = self.index.place(program.access());
        let e = match self.free_entries.pop() {
            Some(e) => e,
            None => {
                self.entries.push(None);
                (self.entries.len() - 1) as u32
            }
        };
        self.entries[e as usize] = Some(Entry {
            program,
            ids: SmallVec::new(),
            first: u64::MAX,
            multi: multi && matches!(placement, Placement::Terms(_)),
            hash,
        });
        self.index.add(e, placement, keys);
        self.by_text.entry(hash).or_default().push(e);
        e
    }

    /// Adds slot `s` (at position `pos`) to entry `e`.
    fn attach(&mut self, s: u32, pos: u32, e: u32) {
        let packed = pack(pos, s);
        let Some(entry) = self.entries.get_mut(e as usize).and_then(Option::as_mut) else {
            return;
        };
        let at = entry.ids.len() as u32;
        entry.ids.push(packed);
        entry.first = entry.first.min(packed);
        if let Some(slot) = self.slots.get_mut(s as usize).and_then(Option::as_mut) {
            slot.entry = e;
            slot.at = at;
            slot.pos = pos;
        }
    }

    /// Takes slot `s` off its entry, dropping the entry when no id is left.
    fn detach(&mut self, s: u32) {
        let Some(slot) = self.slot(s) else { return };
        let (e, at) = (slot.entry, slot.at as usize);
        let Some(entry) = self.entries.get_mut(e as usize).and_then(Option::as_mut) else {
            return;
        };
        if at >= entry.ids.len() {
            return;
        }
        let gone = entry.ids.swap_remove(at);
        if let Some(&moved) = entry.ids.get(at) {
            if let Some(m) = self.slots.get_mut(slot_of(moved)).and_then(Option::as_mut) {
                m.at = at as u32;
            }
        }
        if entry.ids.is_empty() {
            let hash = entry.hash;
            self.index.remove(e);
            if let Some(same) = self.by_text.get_mut(&hash) {
                same.retain(|x| *x != e);
                if same.is_empty() {
                    self.by_text.remove(&hash);
                }
            }
            self.entries[e as usize] = None;
            self.free_entries.push(e);
        } else if gone == entry.first {
            entry.first = entry.ids.iter().copied().min().unwrap_or(u64::MAX);
        }
    }

    /// Gives the ids positions `0..len` in set order, once positions have
    /// run out (after four billion insertions).
    fn renumber(&mut self) {
        let mut order: Vec<(u32, u32)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (s.pos, i as u32)))
            .collect();
        order.sort_unstable();
        for entry in self.entries.iter_mut().flatten() {
            entry.ids.clear();
            entry.first = u64::MAX;
        }
        for (pos, &(_, s)) in order.iter().enumerate() {
            let e = match self.slot(s) {
                Some(slot) => slot.entry,
                None => continue,
            };
            self.attach(s, pos as u32, e);
        }
        self.next_pos = order.len() as u32;
    }
}

impl<Id: fmt::Debug + Clone + Eq + Hash> fmt::Debug for FilterSet<Id> {
    /// The number of ids, distinct filters and postings, and each id with
    /// its filter's canonical text, in set order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Filters<'a, Id>(&'a FilterSet<Id>);
        impl<Id: fmt::Debug + Clone + Eq + Hash> fmt::Debug for Filters<'_, Id> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_map()
                    .entries(self.0.iter().map(|(id, p)| (id, p.to_string())))
                    .finish()
            }
        }
        let (terms, postings) = self.index.sizes();
        f.debug_struct("FilterSet")
            .field("len", &self.len())
            .field("distinct_filters", &self.distinct_filters())
            .field("terms", &terms)
            .field("postings", &postings)
            .field("unindexed", &self.index.unindexed().len())
            .field("filters", &Filters(self))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(props: &[(&str, &str)]) -> Session {
        Session::new(props.iter().copied()).unwrap()
    }

    #[test]
    fn sets_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<FilterSet<u64>>();
        check::<FilterSet<String>>();
    }

    #[test]
    fn each_filter_is_posted_under_its_best_access_term() {
        let mut set = FilterSet::new();
        set.insert(1, "Tier is 'gold' and $Country in ['UK', 'DE'] and has x")
            .unwrap();
        set.insert(2, "Tier ne 'gold'").unwrap();
        set.insert(3, "all").unwrap();
        set.insert(4, "not all").unwrap();
        set.insert(5, "hasRoles ['a'] or Tier is 'x'").unwrap();
        let placement = |id: u64| {
            let e = set.slot(set.by_id[&id]).unwrap().entry;
            set.index.placement(e).cloned().unwrap()
        };
        assert!(matches!(placement(1), Placement::Terms(t) if t.len() == 1));
        assert_eq!(placement(2), Placement::Unindexed);
        assert_eq!(placement(3), Placement::Always);
        assert_eq!(placement(4), Placement::Never);
        assert!(matches!(placement(5), Placement::Terms(t) if t.len() == 2));
        set.index.check();
    }

    #[test]
    fn postings_stay_balanced() {
        let mut set = FilterSet::new();
        // Each filter has two equality terms; the second filter goes under
        // the term the first left empty.
        set.insert(1, "a is 'x' and b is 'y'").unwrap();
        set.insert(2, "a is 'x' and b is 'y' and has c").unwrap();
        let (terms, postings) = set.index.sizes();
        assert_eq!((terms, postings), (2, 2));
    }

    #[test]
    fn identical_filters_share_one_entry() {
        let mut set = FilterSet::new();
        for id in 0..1000u32 {
            set.insert(id, "Tier  IS 'gold'").unwrap();
        }
        set.insert(1000, "Tier is \"gold\"").unwrap();
        assert_eq!((set.len(), set.distinct_filters()), (1001, 1));
        let s = session(&[("Tier", "gold")]);
        assert_eq!(set.matching(&s).len(), 1001);
        assert_eq!(set.first_match(&s), Some(0));
        for id in 0..1000u32 {
            set.remove(&id);
        }
        assert_eq!(set.matching(&s), [1000]);
        set.remove(&1000);
        assert_eq!(set.distinct_filters(), 0);
        assert_eq!(set.index.sizes(), (0, 0));
        set.index.check();
    }

    #[test]
    fn positions_renumber_when_they_run_out() {
        let mut set = FilterSet::new();
        set.insert("a", "has x").unwrap();
        set.insert("b", "has x and has y").unwrap();
        set.insert("c", "has x").unwrap();
        set.remove(&"a");
        set.next_pos = u32::MAX;
        set.insert("d", "has y").unwrap();
        assert_eq!(set.next_pos, 3);
        let s = session(&[("x", "1"), ("y", "2")]);
        assert_eq!(set.matching(&s), ["b", "c", "d"]);
        assert_eq!(set.first_match(&s), Some("b"));
    }

    #[test]
    fn debug_lists_ids_in_order() {
        let mut set = FilterSet::new();
        set.insert("z", "has x").unwrap();
        set.insert("a", "Tier ne 'gold'").unwrap();
        let text = format!("{set:?}");
        assert!(
            text.contains(r#"filters: {"z": "has x", "a": "Tier ne \"gold\""}"#),
            "{text}"
        );
        assert!(text.contains("distinct_filters: 2"), "{text}");
    }
}
