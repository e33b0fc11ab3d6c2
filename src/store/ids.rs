//! The id map of a shard: `$SessionId` → slot. A module of its own, so the
//! shard (which owns it) and the index's planner (which answers
//! `$SessionId` tests with it) both use it without depending on each other.

use ahash::RandomState;
use hashbrown::HashTable;

use crate::intern::Sym;
use crate::session::Session;

/// `$SessionId` → slot: a table of bare slot numbers, hashed by the id of
/// the session in the slot, so the id is stored once (in the session).
#[derive(Default)]
pub(super) struct IdMap {
    table: HashTable<u32>,
    hasher: RandomState,
}

impl IdMap {
    fn hash(&self, id: Sym) -> u64 {
        self.hasher.hash_one(id)
    }

    /// The slot of the session with this id.
    pub(super) fn get(&self, sessions: &[Session], id: Sym) -> Option<u32> {
        self.table
            .find(self.hash(id), |&slot| {
                sessions.get(slot as usize).map(id_sym) == Some(id)
            })
            .copied()
    }

    /// Adds the session in `slot` (in place already).
    pub(super) fn insert(&mut self, sessions: &[Session], slot: u32) {
        let Some(session) = sessions.get(slot as usize) else {
            return;
        };
        let hasher = &self.hasher;
        self.table
            .insert_unique(hasher.hash_one(id_sym(session)), slot, |&s| {
                hasher.hash_one(sessions.get(s as usize).map_or(Sym::NONE, id_sym))
            });
    }

    /// Forgets `slot`, whose session has this id.
    pub(super) fn remove(&mut self, id: Sym, slot: u32) {
        if let Ok(entry) = self.table.find_entry(self.hash(id), |&s| s == slot) {
            entry.remove();
        }
    }

    pub(super) fn len(&self) -> usize {
        self.table.len()
    }

    pub(super) fn bytes(&self) -> usize {
        self.table.capacity() * (std::mem::size_of::<u32>() + 1)
    }

    /// An empty map with room for `n` slots and the same hasher.
    pub(super) fn emptied(&mut self, n: usize) -> IdMap {
        IdMap {
            table: HashTable::with_capacity(n),
            hasher: std::mem::take(&mut self.hasher),
        }
    }
}

fn id_sym(session: &Session) -> Sym {
    session.id_sym()
}
