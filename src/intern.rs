//! Interned strings: small `Copy` ids for property keys, values and roles.
//!
//! Every string a session or a compiled filter holds is interned once in a
//! process-wide table and referred to by a [`Sym`]. Comparing two interned
//! strings is then comparing two `u32`s, which is what makes evaluation fast.
//!
//! # Memory stays bounded
//!
//! The table counts references. A [`Session`](crate::Session), a
//! [`Program`](crate::Program) and an [`Interned`] handle each hold one
//! reference to every string they use and give it back when dropped; a string
//! nobody holds is removed and its slot reused. So the table holds exactly the
//! strings of the sessions and programs that are alive: compiling a million
//! distinct filters from untrusted clients and dropping them leaves nothing
//! behind, and neither do sessions that come and go.
//!
//! Because a program holds its own values, a value that no session has yet
//! gets a `Sym` when the filter is compiled, and a session created later with
//! that value interns to the same `Sym`: the filter matches it.
//!
//! Slots are only reused once no holder is left, so a `Sym` held by a live
//! session or program always names the same string.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};

use ahash::RandomState;

/// An interned string: a small `Copy` id, equal for equal strings.
///
/// A `Sym` is only meaningful while something holds a reference to its
/// string (a session, a program, an [`Interned`] handle), which is why it
/// never leaves the crate: public code compares values through handles that
/// keep the string alive ([`Interned`], [`PropertyValue`](crate::PropertyValue)).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Sym(u32);

/// Shards of the table, so threads interning at once rarely meet on a lock.
const SHARD_BITS: u32 = 4;
const SHARDS: usize = 1 << SHARD_BITS;
/// Slots per shard: `Sym` values at and above `MAX_SLOTS << SHARD_BITS` are
/// reserved for markers.
const MAX_SLOTS: u32 = (u32::MAX >> SHARD_BITS) - 1;

impl Sym {
    /// A marker for "absent" in session slots; never the id of a string.
    pub(crate) const NONE: Sym = Sym(u32::MAX);
    /// A marker for "present" where only presence matters (`$Roles`).
    pub(crate) const PRESENT: Sym = Sym(u32::MAX - 1);

    fn new(shard: usize, slot: u32) -> Sym {
        Sym((slot << SHARD_BITS) | shard as u32)
    }

    fn shard(self) -> usize {
        (self.0 & (SHARDS as u32 - 1)) as usize
    }

    fn slot(self) -> usize {
        (self.0 >> SHARD_BITS) as usize
    }

    /// The id as a number (stable for as long as the string is held).
    pub(crate) fn as_u32(self) -> u32 {
        self.0
    }

    /// True for the markers that are not strings.
    pub(crate) fn is_marker(self) -> bool {
        self == Sym::NONE || self == Sym::PRESENT
    }
}

impl fmt::Debug for Sym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Sym::NONE => f.write_str("Sym(NONE)"),
            Sym::PRESENT => f.write_str("Sym(PRESENT)"),
            Sym(n) => write!(f, "Sym({n})"),
        }
    }
}

/// The table has no room for another distinct string (about 4 billion are
/// live at once): an error, never a panic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapacityError;

impl fmt::Display for CapacityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the string interner is full")
    }
}

impl std::error::Error for CapacityError {}

struct Slot {
    text: Option<Arc<str>>,
    refs: u32,
}

#[derive(Default)]
struct Shard {
    ids: HashMap<Arc<str>, u32, RandomState>,
    slots: Vec<Slot>,
    free: Vec<u32>,
}

impl Shard {
    fn add_memory(&self, m: &mut InternerMemory) {
        m.strings += self.ids.len();
        m.slots += self.slots.capacity() * std::mem::size_of::<Slot>();
        m.table += self.ids.capacity() * (std::mem::size_of::<(Arc<str>, u32)>() + 1);
        for text in self.slots.iter().filter_map(|s| s.text.as_ref()) {
            // An `Arc<str>` block: two counts, then the text.
            m.text += 16 + text.len();
            m.text_allocations += 1;
        }
        m.free += self.free.capacity() * 4;
    }
}

struct Interner {
    shards: Vec<Mutex<Shard>>,
    hasher: RandomState,
}

static INTERNER: LazyLock<Interner> = LazyLock::new(|| Interner {
    shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
    hasher: RandomState::new(),
});

impl Interner {
    fn shard_of(&self, s: &str) -> usize {
        (self.hasher.hash_one(s) >> 58) as usize % SHARDS
    }

    /// A panic elsewhere while a shard was locked cannot leave it
    /// inconsistent (every update is a single step), so poisoning is ignored.
    fn lock(&self, shard: usize) -> MutexGuard<'_, Shard> {
        self.shards[shard]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Interns `s`, taking one reference to it.
pub(crate) fn intern(s: &str) -> Result<Sym, CapacityError> {
    let interner = &*INTERNER;
    let shard_no = interner.shard_of(s);
    let mut shard = interner.lock(shard_no);
    if let Some(&slot) = shard.ids.get(s) {
        let refs = &mut shard.slots[slot as usize].refs;
        *refs = refs.saturating_add(1);
        return Ok(Sym::new(shard_no, slot));
    }
    let text: Arc<str> = Arc::from(s);
    let slot = match shard.free.pop() {
        Some(slot) => {
            shard.slots[slot as usize] = Slot {
                text: Some(text.clone()),
                refs: 1,
            };
            slot
        }
        None => {
            let slot = u32::try_from(shard.slots.len()).map_err(|_| CapacityError)?;
            if slot >= MAX_SLOTS {
                return Err(CapacityError);
            }
            shard.slots.push(Slot {
                text: Some(text.clone()),
                refs: 1,
            });
            slot
        }
    };
    shard.ids.insert(text, slot);
    Ok(Sym::new(shard_no, slot))
}

/// The id of `s` if it is interned now, without taking a reference.
pub(crate) fn lookup(s: &str) -> Option<Sym> {
    let interner = &*INTERNER;
    let shard_no = interner.shard_of(s);
    let shard = interner.lock(shard_no);
    shard.ids.get(s).map(|&slot| Sym::new(shard_no, slot))
}

/// Takes one more reference to a held `sym`.
pub(crate) fn retain(sym: Sym) {
    if sym.is_marker() {
        return;
    }
    let mut shard = INTERNER.lock(sym.shard());
    if let Some(slot) = shard.slots.get_mut(sym.slot()) {
        slot.refs = slot.refs.saturating_add(1);
    }
}

/// Gives back one reference; the string is removed when none is left.
pub(crate) fn release(sym: Sym) {
    if sym.is_marker() {
        return;
    }
    let mut shard = INTERNER.lock(sym.shard());
    let Some(slot) = shard.slots.get_mut(sym.slot()) else {
        return;
    };
    // A count that saturated is never decremented: that string stays.
    if slot.refs == u32::MAX || slot.refs == 0 {
        return;
    }
    slot.refs -= 1;
    if slot.refs == 0 {
        if let Some(text) = slot.text.take() {
            shard.ids.remove(&text);
        }
        shard.free.push(sym.slot() as u32);
    }
}

/// The string of a held `sym` (`None` for markers).
pub(crate) fn resolve(sym: Sym) -> Option<Arc<str>> {
    if sym.is_marker() {
        return None;
    }
    let shard = INTERNER.lock(sym.shard());
    shard.slots.get(sym.slot())?.text.clone()
}

/// How many distinct strings are interned now, across all shards.
///
/// ```
/// let handle = session_filter::Interned::new("a string nobody else uses 7f3a").unwrap();
/// // Other threads may intern too, so only a lower bound is certain here.
/// assert!(session_filter::interned_count() >= 1);
/// drop(handle);
/// ```
pub fn interned_count() -> usize {
    (0..SHARDS).map(|i| INTERNER.lock(i).ids.len()).sum()
}

/// Bytes the interner holds, by part, counted from the capacity of its
/// structures (what the allocator was asked for, not what it rounds up to).
///
/// ```
/// let m = session_filter::interner_memory();
/// assert!(m.total() >= m.slots);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct InternerMemory {
    /// Distinct strings held now.
    pub strings: usize,
    /// Slot tables: one entry per string, live or free.
    pub slots: usize,
    /// Hash tables that find a string's slot, control bytes included.
    pub table: usize,
    /// Text held outside the slots, in allocations of its own.
    pub text: usize,
    /// Text allocations, each one a heap block of its own.
    pub text_allocations: usize,
    /// Free-slot lists.
    pub free: usize,
}

impl InternerMemory {
    /// All the parts together.
    pub fn total(&self) -> usize {
        self.slots + self.table + self.text + self.free
    }
}

/// What the interner holds now, by part (see [`InternerMemory`]).
pub fn interner_memory() -> InternerMemory {
    let mut m = InternerMemory::default();
    for i in 0..SHARDS {
        INTERNER.lock(i).add_memory(&mut m);
    }
    m
}

/// A held interned string: equal strings give equal handles, compared by id.
///
/// Useful to hand-written code that compares session values by id (the
/// benchmark baselines do, through [`Session::value`](crate::Session::value));
/// cloning takes another reference, dropping gives it back, and the string
/// stays interned while a handle holds it.
///
/// ```
/// use session_filter::{Interned, PropertyKey, Session};
///
/// let uk = Interned::new("UK")?;
/// let s = Session::new([("$SessionId", "s1"), ("$Country", "UK")])?;
/// assert!(s.value(&PropertyKey::new("$Country")?).is_some_and(|v| v == uk));
/// assert_eq!(uk, Interned::new("UK")?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(PartialEq, Eq, Hash)]
pub struct Interned(Sym);

impl Interned {
    /// Interns `s` and holds it.
    pub fn new(s: &str) -> Result<Interned, CapacityError> {
        intern(s).map(Interned)
    }

    /// The id.
    pub(crate) fn sym(&self) -> Sym {
        self.0
    }

    /// The string.
    pub fn as_arc_str(&self) -> Arc<str> {
        resolve(self.0).unwrap_or_else(|| Arc::from(""))
    }
}

impl Clone for Interned {
    fn clone(&self) -> Interned {
        retain(self.0);
        Interned(self.0)
    }
}

impl Drop for Interned {
    fn drop(&mut self) {
        release(self.0);
    }
}

impl fmt::Debug for Interned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Interned({:?}, {:?})", self.0, self.as_arc_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_strings_share_an_id_while_held() {
        let a = Interned::new("intern-test-α").unwrap();
        let b = Interned::new("intern-test-α").unwrap();
        let c = Interned::new("intern-test-β").unwrap();
        assert_eq!(a.sym(), b.sym());
        assert_ne!(a.sym(), c.sym());
        assert_eq!(&*a.as_arc_str(), "intern-test-α");
        assert_eq!(lookup("intern-test-α"), Some(a.sym()));
    }

    #[test]
    fn strings_nobody_holds_are_removed() {
        let key = "intern-test-removed-γ";
        let a = Interned::new(key).unwrap();
        let a2 = a.clone();
        drop(a);
        assert!(lookup(key).is_some(), "still held by the clone");
        drop(a2);
        assert_eq!(lookup(key), None);
        // Interning again works and resolves to the right text.
        let again = Interned::new(key).unwrap();
        assert_eq!(&*again.as_arc_str(), key);
    }

    #[test]
    fn markers_are_not_strings() {
        assert_eq!(resolve(Sym::NONE), None);
        assert_eq!(resolve(Sym::PRESENT), None);
        release(Sym::NONE);
        retain(Sym::PRESENT);
    }

    #[test]
    fn many_transient_strings_leave_nothing_behind() {
        let prefix = "intern-test-transient-";
        for i in 0..20_000 {
            let h = Interned::new(&format!("{prefix}{i}")).unwrap();
            drop(h);
        }
        for i in (0..20_000).step_by(997) {
            assert_eq!(lookup(&format!("{prefix}{i}")), None);
        }
        // Freed slots are reused: the shards did not grow by 20 000 slots.
        let slots: usize = (0..SHARDS).map(|i| INTERNER.lock(i).slots.len()).sum();
        assert!(slots < 20_000, "{slots} slots");
    }
}
