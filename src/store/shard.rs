//! One shard of a store: sessions in stable slots, the id index, the live
//! set, and the optional inverted index. Every change to a session goes
//! through here, so the indexes always describe the sessions exactly.

use ahash::AHashMap;
use roaring::RoaringBitmap;

use std::sync::Arc;

use super::index::{self, Answer, Index, OpStats, ShardView};
use super::watch::Hub;
use crate::intern::{self, Sym};
use crate::session::{RoleChange, Session};
use crate::util::properties::SESSION_ID;
use crate::vm::Program;

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
    /// `$SessionId` (by id; the session holds the string) → slot.
    positions: AHashMap<Sym, u32>,
    index: Option<Index>,
    /// The store's watches, told of every change while this shard is locked.
    hub: Arc<Hub>,
}

fn id_sym(session: &Session) -> Sym {
    session.get_sym(SESSION_ID).unwrap_or(Sym::NONE)
}

impl Shard {
    pub(super) fn new(indexed: bool, hub: Arc<Hub>) -> Shard {
        Shard {
            index: indexed.then(Index::default),
            hub,
            ..Shard::default()
        }
    }

    fn view(&self) -> ShardView<'_> {
        ShardView {
            sessions: &self.sessions,
            live: &self.live,
            positions: &self.positions,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.positions.len()
    }

    /// The slot of the session with this id.
    pub(super) fn slot(&self, id: &str) -> Option<u32> {
        self.positions.get(&intern::lookup(id)?).copied()
    }

    pub(super) fn contains_id(&self, id: Sym) -> bool {
        self.positions.contains_key(&id)
    }

    pub(super) fn session(&self, slot: u32) -> &Session {
        &self.sessions[slot as usize]
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
        self.positions.insert(id_sym(&session), slot);
        if let Some(index) = &mut self.index {
            index.add(slot, &session);
        }
        self.hub.inserted(&session);
        self.sessions[slot as usize] = session;
    }

    /// Removes the session in `slot`.
    pub(super) fn remove(&mut self, slot: u32) {
        let session = std::mem::replace(&mut self.sessions[slot as usize], Session::empty());
        if let Some(index) = &mut self.index {
            index.remove(slot, &session);
        }
        self.positions.remove(&id_sym(&session));
        self.live_words[slot as usize / 64] &= !(1 << (slot % 64));
        self.live.remove(slot);
        self.free.push(slot);
        self.hub.closed(&session);
        // An emptied shard gives its memory back.
        if self.live.is_empty() {
            *self = Shard::new(self.index.is_some(), self.hub.clone());
        }
    }

    /// Puts `session` (same id) in place of the one in `slot`.
    pub(super) fn replace(&mut self, slot: u32, session: Session) {
        if let Some(index) = &mut self.index {
            index.remove(slot, &self.sessions[slot as usize]);
            index.add(slot, &session);
        }
        let before = std::mem::replace(&mut self.sessions[slot as usize], session);
        self.hub.changed(&before, &self.sessions[slot as usize]);
    }

    /// Changes the session in `slot` in place with `f`, which must not change
    /// its `$SessionId`; the index forgets the session before and learns it
    /// again after, so it stays exact, and the watches see both states.
    pub(super) fn change(&mut self, slot: u32, f: impl FnOnce(&mut Session)) {
        let session = &mut self.sessions[slot as usize];
        let before = self.hub.active().then(|| session.clone());
        if let Some(index) = &mut self.index {
            index.remove(slot, session);
            f(session);
            index.add(slot, session);
        } else {
            f(session);
        }
        if let Some(before) = before {
            self.hub.changed(&before, session);
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
            self.hub.changed(&before, session);
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
        m.ids += self.positions.capacity() * (std::mem::size_of::<(Sym, u32)>() + 1);
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
