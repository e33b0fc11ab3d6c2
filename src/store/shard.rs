//! One shard of a store: sessions in stable slots, the id index, the live
//! set, and the optional inverted index. Every change to a session goes
//! through here, so the indexes always describe the sessions exactly.

use roaring::RoaringBitmap;

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, RwLockWriteGuard};

use super::ids::IdMap;
use super::index::{self, Answer, Index, OpStats, ShardView};
use super::watch::Hub;
use crate::intern::{self, Sym};
use crate::session::{PropertyKey, RoleChange, Session};
use crate::vm::Program;

/// A shard compacts once its free slots outnumber its live ones by this
/// many: then every slot freed since the last compaction pays for moving
/// one live session, and the slots stay within twice the live sessions.
const COMPACT_SLACK: usize = 256;

/// Bytes a store's own structures hold, by part, counted from their
/// capacities (what the allocator was asked for, not what it rounds up to,
/// and not the interned strings: see [`interner_memory`](crate::interner_memory)).
///
/// ```
/// use session_filter::SessionStore;
/// let store = SessionStore::new();
/// store.insert([("$SessionId", "s1"), ("$Country", "UK")])?;
/// let m = store.memory();
/// assert_eq!(m.sessions, 1);
/// assert!(m.slots >= 1 && m.total() > m.records);
/// # Ok::<(), session_filter::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreMemory {
    /// Live sessions.
    pub sessions: usize,
    /// Session slots allocated, live or free.
    pub slots: usize,
    /// The slot arrays: every slot's session record.
    pub records: usize,
    /// What live sessions hold outside their records (property and role
    /// lists too long to sit in the record).
    pub session_heap: usize,
    /// Allocations behind `session_heap`, each a heap block of its own.
    pub session_allocations: usize,
    /// The live-slot sets (a bit per slot, and a bitmap for the planner).
    pub live: usize,
    /// Free-slot lists.
    pub free: usize,
    /// The `$SessionId` → slot maps.
    pub ids: usize,
    /// The inverted indexes' hash tables (entries and control bytes).
    pub index_tables: usize,
    /// The postings' own heap: slot vectors and bitmaps.
    pub index_postings: usize,
}

impl StoreMemory {
    /// All the parts together.
    pub fn total(&self) -> usize {
        self.records
            + self.session_heap
            + self.live
            + self.free
            + self.ids
            + self.index_tables
            + self.index_postings
    }
}

#[derive(Default)]
pub(super) struct Shard {
    /// Sessions by slot; free slots hold an empty session (which holds no strings).
    sessions: Vec<Session>,
    /// Live slots, one bit each, for block scans.
    live_words: Vec<u64>,
    /// Live slots, for the index planner.
    live: RoaringBitmap,
    /// Free slots, reused first so slots stay dense.
    free: Vec<u32>,
    /// `$SessionId` → slot.
    ids: IdMap,
    index: Option<Index>,
    /// The store's watches, told of every change while this shard is locked.
    hub: Arc<Hub>,
    /// This shard's place in the store, as the watches know it.
    number: usize,
}

/// A shard locked for writing. Slot numbers stay valid while it is held
/// (callers collect matching slots, then change or remove them); once it is
/// dropped, a shard that many removals left sparse compacts.
pub(super) struct ShardWriter<'a>(RwLockWriteGuard<'a, Shard>);

impl<'a> ShardWriter<'a> {
    pub(super) fn new(guard: RwLockWriteGuard<'a, Shard>) -> ShardWriter<'a> {
        ShardWriter(guard)
    }
}

impl Deref for ShardWriter<'_> {
    type Target = Shard;

    fn deref(&self) -> &Shard {
        &self.0
    }
}

impl DerefMut for ShardWriter<'_> {
    fn deref_mut(&mut self) -> &mut Shard {
        &mut self.0
    }
}

impl Drop for ShardWriter<'_> {
    fn drop(&mut self) {
        self.0.compact_if_sparse();
    }
}

impl Shard {
    pub(super) fn new(number: usize, indexed: bool, hub: Arc<Hub>) -> Shard {
        Shard {
            index: indexed.then(Index::default),
            hub,
            number,
            ..Shard::default()
        }
    }

    fn view(&self) -> ShardView<'_> {
        ShardView {
            sessions: &self.sessions,
            live: &self.live,
            ids: &self.ids,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.ids.len()
    }

    /// The slot of the session with this id.
    pub(super) fn slot(&self, id: &str) -> Option<u32> {
        self.ids.get(&self.sessions, intern::lookup(id)?)
    }

    pub(super) fn contains_id(&self, id: Sym) -> bool {
        self.ids.get(&self.sessions, id).is_some()
    }

    pub(super) fn session(&self, slot: u32) -> &Session {
        &self.sessions[slot as usize]
    }

    /// The session whose `$SessionId` has this interned id.
    pub(super) fn session_by_id(&self, id: Sym) -> Option<&Session> {
        let slot = self.ids.get(&self.sessions, id)?;
        self.sessions.get(slot as usize)
    }

    /// This shard's place in the store.
    pub(super) fn number(&self) -> usize {
        self.number
    }

    /// Tells the watches of a signal for the session in `slot`.
    pub(super) fn signal(&self, slot: u32, signal: &'static str) {
        self.hub
            .signal(self.number, &self.sessions[slot as usize], signal);
    }

    /// Adds a session whose id the caller checked is new.
    pub(super) fn insert(&mut self, session: Session) {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.sessions.push(Session::empty());
                (self.sessions.len() - 1) as u32
            }
        };
        let word = slot as usize / 64;
        if self.live_words.len() <= word {
            self.live_words.resize(word + 1, 0);
        }
        self.live_words[word] |= 1 << (slot % 64);
        self.live.insert(slot);
        if let Some(index) = &mut self.index {
            index.add(slot, &session);
        }
        self.sessions[slot as usize] = session;
        self.ids.insert(&self.sessions, slot);
        // Last, as `remove` does: the shard is whole whatever the hub does.
        self.hub
            .inserted(self.number, &self.sessions[slot as usize]);
    }

    /// Removes the session in `slot`.
    pub(super) fn remove(&mut self, slot: u32) {
        let session = std::mem::replace(&mut self.sessions[slot as usize], Session::empty());
        if let Some(index) = &mut self.index {
            index.remove(slot, &session);
        }
        self.ids.remove(session.id_sym(), slot);
        self.live_words[slot as usize / 64] &= !(1 << (slot % 64));
        self.live.remove(slot);
        self.free.push(slot);
        self.hub.closed(self.number, &session);
        // An emptied shard gives its memory back.
        if self.live.is_empty() {
            *self = Shard::new(self.number, self.index.is_some(), self.hub.clone());
        }
    }

    /// Compacts the shard when free slots far outnumber live ones (see
    /// `COMPACT_SLACK`), so its memory follows the live sessions, not the
    /// peak. Only while no caller holds slot numbers: see [`ShardWriter`].
    fn compact_if_sparse(&mut self) {
        if self.free.len() > self.len() + COMPACT_SLACK {
            self.compact();
        }
    }

    /// Moves the live sessions to slots `0..n`, in order, and rebuilds the
    /// slot-keyed structures at their size.
    fn compact(&mut self) {
        let n = self.len();
        let old = std::mem::take(&mut self.sessions);
        let live_words = std::mem::take(&mut self.live_words);
        let is_live = |slot: usize| {
            live_words
                .get(slot / 64)
                .is_some_and(|w| w & (1 << (slot % 64)) != 0)
        };
        let mut sessions = Vec::with_capacity(n);
        // Free slots hold empty sessions, which hold no strings.
        sessions.extend(
            old.into_iter()
                .enumerate()
                .filter(|&(slot, _)| is_live(slot))
                .map(|(_, s)| s),
        );
        let n = sessions.len();
        self.sessions = sessions;
        self.live_words = vec![u64::MAX; n / 64];
        if !n.is_multiple_of(64) {
            self.live_words.push((1u64 << (n % 64)) - 1);
        }
        self.live = RoaringBitmap::new();
        self.live.insert_range(0..n as u32);
        self.free = Vec::new();
        let mut ids = self.ids.emptied(n);
        for slot in 0..n as u32 {
            ids.insert(&self.sessions, slot);
        }
        self.ids = ids;
        if let Some(index) = &mut self.index {
            *index = Index::default();
            for (slot, session) in self.sessions.iter().enumerate() {
                index.add(slot as u32, session);
            }
        }
    }

    /// Changes the values of `keys` (never `$Roles` or `$SessionId`) of the
    /// session in `slot` in place with `f`, which changes nothing else; the
    /// index forgets those keys before and learns them again after, so it
    /// stays exact at the cost of the keys changed, and the watches see
    /// both states.
    pub(super) fn change_keys(
        &mut self,
        slot: u32,
        keys: &[&PropertyKey],
        f: impl FnOnce(&mut Session),
    ) {
        let session = &mut self.sessions[slot as usize];
        let before = self.hub.active().then(|| session.clone());
        if let Some(index) = &mut self.index {
            for key in keys {
                index.remove_key(slot, session, key);
            }
            f(session);
            for key in keys {
                index.add_key(slot, session, key);
            }
        } else {
            f(session);
        }
        if let Some(before) = before {
            self.hub.changed(self.number, &before, session);
        }
    }

    /// Applies a role change to the session in `slot`.
    pub(super) fn change_roles(&mut self, slot: u32, change: &RoleChange) {
        let session = &mut self.sessions[slot as usize];
        let before = self.hub.active().then(|| session.clone());
        if let Some(index) = &mut self.index {
            index.remove_roles(slot, session);
            session.change_roles(change);
            index.add_roles(slot, session);
        } else {
            session.change_roles(change);
        }
        if let Some(before) = before {
            self.hub.changed(self.number, &before, session);
        }
    }

    /// The matching slots from the index, when `use_index`, the shard has an
    /// index and the planner finds it pays; `None` means scan.
    fn indexed(&self, program: &Program, use_index: bool) -> Option<RoaringBitmap> {
        let index = self.index.as_ref().filter(|_| use_index)?;
        match index::evaluate(index, program, &self.view(), None) {
            Answer::Slots(slots) => Some(slots),
            Answer::Scan => None,
        }
    }

    /// The slots of the sessions that match, in slot order.
    pub(super) fn matching(&self, program: &Program, use_index: bool) -> Vec<u32> {
        if let Some(slots) = self.indexed(program, use_index) {
            return slots.iter().collect();
        }
        let mut out = Vec::new();
        program.for_each_match_live(&self.sessions, Some(&self.live_words), |i| {
            out.push(i as u32)
        });
        out
    }

    /// How many sessions match.
    pub(super) fn count(&self, program: &Program, use_index: bool) -> usize {
        match self.indexed(program, use_index) {
            Some(slots) => slots.len() as usize,
            None => program.count_live(&self.sessions, Some(&self.live_words)),
        }
    }

    /// Plans `program` and records how each op was answered; true when the
    /// shard would scan instead.
    pub(super) fn explain(&self, program: &Program, stats: &mut [OpStats]) -> bool {
        match &self.index {
            Some(index) => matches!(
                index::evaluate(index, program, &self.view(), Some(stats)),
                Answer::Scan
            ),
            None => true,
        }
    }

    /// Adds what this shard holds to `m`.
    pub(super) fn add_memory(&self, m: &mut StoreMemory) {
        m.sessions += self.len();
        m.slots += self.sessions.capacity();
        m.records += self.sessions.capacity() * std::mem::size_of::<Session>();
        for (_, s) in self.sessions() {
            let (bytes, blocks) = s.heap_bytes();
            m.session_heap += bytes;
            m.session_allocations += blocks;
        }
        m.live += self.live_words.capacity() * 8 + self.live.serialized_size();
        m.free += self.free.capacity() * 4;
        m.ids += self.ids.bytes();
        if let Some(index) = &self.index {
            let (tables, postings) = index.memory();
            m.index_tables += tables;
            m.index_postings += postings;
        }
    }

    /// Heap bytes of the index, roughly (0 without one).
    pub(super) fn index_bytes(&self) -> usize {
        self.index.as_ref().map_or(0, |i| i.heap_bytes())
            + if self.index.is_some() {
                self.live.serialized_size()
            } else {
                0
            }
    }

    /// Every live session, with its slot.
    pub(super) fn sessions(&self) -> impl Iterator<Item = (u32, &Session)> {
        self.live
            .iter()
            .map(|slot| (slot, &self.sessions[slot as usize]))
    }
}
