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
//!
//! # Layout
//!
//! Most strings of a large store belong to one session each (its
//! `$SessionId`, `$StartTime`, `$ClientIP`), so what one string costs is what
//! a session costs. Each string is stored once: a 20-byte slot holds its
//! reference count and, up to 15 bytes, its text (longer text gets a heap
//! block), and each shard's hash table holds bare slot numbers, finding a
//! string by hashing the text its slot holds. Slots grow a chunk at a time
//! and the table shrinks as strings go, so a demo session's three strings
//! cost about 26 bytes each, where an `Arc<str>` in the slot and another as
//! the map's key cost about 90. Reading a string back
//! ([`Interned::as_arc_str`]) copies it out.

use std::fmt;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};

use ahash::RandomState;
use hashbrown::HashTable;
use std::collections::BTreeSet;

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

    fn slot(self) -> u32 {
        self.0 >> SHARD_BITS
    }

    /// The id as a number (stable for as long as the string is held).
    pub(crate) fn as_u32(self) -> u32 {
        self.0
    }

    /// The id [`Sym::as_u32`] gave.
    pub(crate) fn from_u32(n: u32) -> Sym {
        Sym(n)
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

/// Text up to this many bytes sits in its slot (IPv4 addresses, epoch
/// milliseconds, short ids); longer text gets a heap block of its own.
const INLINE: usize = 15;
/// The `len` of a slot whose text is in the shard's `long` list.
const LONG: u8 = u8::MAX;
/// Slots per chunk: slot storage grows a chunk at a time and is given back
/// a chunk at a time, once no string is left in it. Small chunks (1 280
/// bytes) are given back despite the few long-lived strings scattered among
/// short-lived ones (a value two sessions share, a name interned early).
const CHUNK_BITS: u32 = 6;
const CHUNK: usize = 1 << CHUNK_BITS;

/// One string: its references and its text, in 20 bytes.
#[derive(Clone, Copy)]
struct Slot {
    /// References held; 0 for a free slot.
    refs: u32,
    /// The text's length when it is inline, else `LONG`.
    len: u8,
    /// The text when inline; else its place in `long`, as 4 little-endian
    /// bytes.
    bytes: [u8; INLINE],
}

impl Slot {
    const FREE: Slot = Slot {
        refs: 0,
        len: 0,
        bytes: [0; INLINE],
    };

    fn long_index(&self) -> Option<usize> {
        (self.len == LONG).then(|| {
            let [a, b, c, d, ..] = self.bytes;
            u32::from_le_bytes([a, b, c, d]) as usize
        })
    }
}

/// Bit words per chunk: one bit per slot, set while the slot is free.
const WORDS: usize = CHUNK / 64;

/// A chunk of slots. Ids must stay stable, so slots never move: a chunk
/// whose slots are all free gives its storage back instead, and is
/// allocated again when needed.
struct Chunk {
    /// The slots; empty while the chunk is given back.
    slots: Box<[Slot]>,
    /// A bit per free slot of an allocated chunk.
    free: [u64; WORDS],
    /// Slots holding a string.
    live: u32,
}

impl Chunk {
    fn given_back() -> Chunk {
        Chunk {
            slots: Box::default(),
            free: [0; WORDS],
            live: 0,
        }
    }
}

/// A shard of the table. The hash table holds slot numbers only and finds a
/// string by hashing the text its slots hold, so each string is stored once.
///
/// New strings take the lowest free slot of the lowest chunk that has one,
/// so the strings of long-gone sessions leave whole chunks behind, which
/// are given back. Slot memory therefore follows the live strings when they
/// go in roughly the order they came; strings that stay, scattered over
/// many chunks, keep those chunks (20 bytes a slot).
#[derive(Default)]
struct Shard {
    table: HashTable<u32>,
    chunks: Vec<Chunk>,
    /// Allocated chunks with a free slot.
    open: BTreeSet<u32>,
    /// Chunks given back, below the last allocated one.
    given_back: BTreeSet<u32>,
    /// Text too long for a slot, and the free places in this list.
    long: Vec<Box<str>>,
    long_free: Vec<u32>,
}

/// The slot numbered `i`, in storage split into chunks.
fn slot_in(chunks: &[Chunk], i: u32) -> Option<&Slot> {
    chunks
        .get((i >> CHUNK_BITS) as usize)?
        .slots
        .get(i as usize & (CHUNK - 1))
}

/// The text of slot `i` ("" for a slot that holds none).
fn text_in<'a>(chunks: &'a [Chunk], long: &'a [Box<str>], i: u32) -> &'a str {
    let Some(slot) = slot_in(chunks, i) else {
        return "";
    };
    match slot.long_index() {
        Some(at) => long.get(at).map_or("", |t| t),
        // Inline bytes were copied from a `str` whole, so they are UTF-8.
        None => {
            std::str::from_utf8(slot.bytes.get(..slot.len as usize).unwrap_or(&[])).unwrap_or("")
        }
    }
}

impl Shard {
    fn text(&self, i: u32) -> &str {
        text_in(&self.chunks, &self.long, i)
    }

    fn slot_mut(&mut self, i: u32) -> Option<&mut Slot> {
        self.chunks
            .get_mut((i >> CHUNK_BITS) as usize)?
            .slots
            .get_mut(i as usize & (CHUNK - 1))
    }

    /// A slot for a new string: the lowest free one of the lowest open
    /// chunk, in a chunk allocated for it if none is open.
    fn take_slot(&mut self) -> Result<u32, CapacityError> {
        let c = match self.open.first() {
            Some(&c) => c,
            None => self.allocate_chunk()?,
        };
        let Some(chunk) = self.chunks.get_mut(c as usize) else {
            return Err(CapacityError);
        };
        let Some(w) = chunk.free.iter().position(|&word| word != 0) else {
            self.open.remove(&c);
            return Err(CapacityError);
        };
        let bit = chunk.free[w].trailing_zeros();
        let i = (c << CHUNK_BITS) | (w as u32 * 64 + bit);
        if i >= MAX_SLOTS {
            return Err(CapacityError);
        }
        chunk.free[w] &= !(1 << bit);
        chunk.live += 1;
        if chunk.free.iter().all(|&word| word == 0) {
            self.open.remove(&c);
        }
        Ok(i)
    }

    /// Allocates a chunk, the lowest given back or a new one at the end.
    fn allocate_chunk(&mut self) -> Result<u32, CapacityError> {
        let c = match self.given_back.pop_first() {
            Some(c) => c,
            None => {
                let c = self.chunks.len() as u32;
                if c >= MAX_SLOTS >> CHUNK_BITS {
                    return Err(CapacityError);
                }
                self.chunks.push(Chunk::given_back());
                c
            }
        };
        if let Some(chunk) = self.chunks.get_mut(c as usize) {
            chunk.slots = vec![Slot::FREE; CHUNK].into_boxed_slice();
            chunk.free = [u64::MAX; WORDS];
        }
        self.open.insert(c);
        Ok(c)
    }

    /// Frees slot `i`, whose string is gone; a chunk left with no string
    /// is given back, unless it is the only open one and the lowest place
    /// a new chunk would take (so a string that comes and goes does not
    /// allocate a chunk each time).
    fn free_slot(&mut self, i: u32) {
        let c = i >> CHUNK_BITS;
        let Some(chunk) = self.chunks.get_mut(c as usize) else {
            return;
        };
        let at = i as usize & (CHUNK - 1);
        if let Some(slot) = chunk.slots.get_mut(at) {
            *slot = Slot::FREE;
        }
        chunk.free[at / 64] |= 1 << (at % 64);
        chunk.live = chunk.live.saturating_sub(1);
        let empty = chunk.live == 0;
        self.open.insert(c);
        let lower_given_back = self.given_back.first().is_some_and(|&g| g < c);
        if empty && (self.open.len() > 1 || lower_given_back) {
            self.give_back(c);
        }
    }

    fn give_back(&mut self, c: u32) {
        if let Some(chunk) = self.chunks.get_mut(c as usize) {
            *chunk = Chunk::given_back();
        }
        self.open.remove(&c);
        self.given_back.insert(c);
        // Chunks given back at the end go altogether.
        while self.chunks.last().is_some_and(|last| last.slots.is_empty()) {
            self.chunks.pop();
            self.given_back.remove(&(self.chunks.len() as u32));
        }
        if self.chunks.capacity() > 2 * self.chunks.len() + 16 {
            self.chunks.shrink_to_fit();
        }
    }

    /// Moves the long texts down to places `0..n` once most places are
    /// free, telling each one's slot its new place.
    fn compact_long(&mut self, hasher: &RandomState) {
        let live = self.long.len() - self.long_free.len();
        if self.long_free.len() < 64 || self.long_free.len() < live {
            return;
        }
        let old = std::mem::take(&mut self.long);
        let mut long: Vec<Box<str>> = Vec::with_capacity(live);
        for (at, text) in old.into_iter().enumerate() {
            // Long text is longer than a slot holds: empty means free.
            if text.is_empty() {
                continue;
            }
            let new_at = long.len() as u32;
            let hash = hasher.hash_one(&*text);
            let chunks = &self.chunks;
            let found = self
                .table
                .find(hash, |&j| {
                    slot_in(chunks, j).and_then(Slot::long_index) == Some(at)
                })
                .copied();
            if let Some(slot) = found.and_then(|j| self.slot_mut(j)) {
                slot.bytes[..4].copy_from_slice(&new_at.to_le_bytes());
            }
            long.push(text);
        }
        self.long = long;
        self.long_free = Vec::new();
    }

    /// The slot contents for `s`, moving long text to `long`.
    fn store(&mut self, s: &str) -> Slot {
        let mut slot = Slot {
            refs: 1,
            ..Slot::FREE
        };
        if let Some(inline) = slot.bytes.get_mut(..s.len()) {
            inline.copy_from_slice(s.as_bytes());
            slot.len = s.len() as u8;
            return slot;
        }
        let at = match self.long_free.pop() {
            Some(at) => {
                if let Some(place) = self.long.get_mut(at as usize) {
                    *place = Box::from(s);
                }
                at
            }
            None => {
                self.long.push(Box::from(s));
                (self.long.len() - 1) as u32
            }
        };
        slot.len = LONG;
        slot.bytes[..4].copy_from_slice(&at.to_le_bytes());
        slot
    }

    fn add_memory(&self, m: &mut InternerMemory) {
        m.strings += self.table.len();
        m.slots +=
            self.chunks.iter().map(|c| c.slots.len()).sum::<usize>() * std::mem::size_of::<Slot>();
        m.table += self.table.capacity() * (std::mem::size_of::<u32>() + 1);
        m.text += self.long.capacity() * std::mem::size_of::<Box<str>>();
        for text in self.long.iter().filter(|t| !t.is_empty()) {
            m.text += text.len();
            m.text_allocations += 1;
        }
        // The chunks' free bits and the sets of open and given-back chunks
        // (a B-tree entry is about 8 bytes with its share of the node).
        m.free += self.chunks.capacity() * std::mem::size_of::<Chunk>()
            + (self.open.len() + self.given_back.len()) * 8
            + self.long_free.capacity() * 4;
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
    fn hash(&self, s: &str) -> u64 {
        self.hasher.hash_one(s)
    }

    /// The shard of a string by its hash: middle bits, since the shard's
    /// table places entries by the low bits and tags them with the top ones.
    fn shard_of(hash: u64) -> usize {
        (hash >> 32) as usize % SHARDS
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
    let hash = interner.hash(s);
    let shard_no = Interner::shard_of(hash);
    let mut guard = interner.lock(shard_no);
    let shard = &mut *guard;
    let found = shard
        .table
        .find(hash, |&i| text_in(&shard.chunks, &shard.long, i) == s)
        .copied();
    if let Some(i) = found {
        if let Some(slot) = shard.slot_mut(i) {
            slot.refs = slot.refs.saturating_add(1);
        }
        return Ok(Sym::new(shard_no, i));
    }
    let i = shard.take_slot()?;
    let stored = shard.store(s);
    if let Some(slot) = shard.slot_mut(i) {
        *slot = stored;
    }
    let Shard {
        table,
        chunks,
        long,
        ..
    } = shard;
    table.insert_unique(hash, i, |&j| interner.hash(text_in(chunks, long, j)));
    Ok(Sym::new(shard_no, i))
}

/// The id of `s` if it is interned now, without taking a reference.
pub(crate) fn lookup(s: &str) -> Option<Sym> {
    let interner = &*INTERNER;
    let hash = interner.hash(s);
    let shard_no = Interner::shard_of(hash);
    let shard = interner.lock(shard_no);
    shard
        .table
        .find(hash, |&i| shard.text(i) == s)
        .map(|&i| Sym::new(shard_no, i))
}

/// Takes one more reference to a held `sym`.
pub(crate) fn retain(sym: Sym) {
    if sym.is_marker() {
        return;
    }
    let mut shard = INTERNER.lock(sym.shard());
    if let Some(slot) = shard.slot_mut(sym.slot()) {
        slot.refs = slot.refs.saturating_add(1);
    }
}

/// Gives back one reference; the string is removed when none is left.
pub(crate) fn release(sym: Sym) {
    if sym.is_marker() {
        return;
    }
    let interner = &*INTERNER;
    let mut guard = interner.lock(sym.shard());
    let shard = &mut *guard;
    let i = sym.slot();
    let Some(slot) = shard.slot_mut(i) else {
        return;
    };
    // A count that saturated is never decremented: that string stays.
    if slot.refs == u32::MAX || slot.refs == 0 {
        return;
    }
    slot.refs -= 1;
    if slot.refs > 0 {
        return;
    }
    let long = slot.long_index();
    let hash = interner.hash(shard.text(i));
    if let Ok(entry) = shard.table.find_entry(hash, |&j| j == i) {
        entry.remove();
    }
    if let Some(at) = long {
        if let Some(text) = shard.long.get_mut(at) {
            *text = Box::default();
            shard.long_free.push(at as u32);
        }
    }
    shard.free_slot(i);
    if long.is_some() {
        shard.compact_long(&interner.hasher);
    }
    // The table follows the live strings down, not only up (halving it
    // costs one rehash per half of the strings gone).
    let (len, capacity) = (shard.table.len(), shard.table.capacity());
    if capacity > 1024 && len * 4 < capacity {
        let Shard {
            table,
            chunks,
            long,
            ..
        } = shard;
        table.shrink_to(len * 2, |&j| interner.hash(text_in(chunks, long, j)));
    }
}

/// The string of a held `sym` (`None` for markers and free slots), copied
/// out of the table.
pub(crate) fn resolve(sym: Sym) -> Option<Arc<str>> {
    if sym.is_marker() {
        return None;
    }
    let shard = INTERNER.lock(sym.shard());
    let slot = slot_in(&shard.chunks, sym.slot())?;
    (slot.refs > 0).then(|| Arc::from(shard.text(sym.slot())))
}

thread_local! {
    /// Where [`with_text`] copies long text, reused so that reading a value
    /// allocates nothing once it has grown.
    static LONG_TEXT: std::cell::Cell<String> = const { std::cell::Cell::new(String::new()) };
}

/// Calls `f` with the string of a held `sym` ("" for markers and free
/// slots), copied out of the table so that the shard's lock is not held
/// while `f` runs (a regex over a long value takes a while). Short text is
/// copied to the stack and long text to a buffer the thread keeps: nothing
/// is allocated once that buffer has grown.
#[inline]
pub(crate) fn with_text<R>(sym: Sym, f: impl FnOnce(&str) -> R) -> R {
    if sym.is_marker() {
        return f("");
    }
    let mut inline = [0u8; INLINE];
    let mut len = 0;
    let mut long = None;
    {
        let shard = INTERNER.lock(sym.shard());
        if let Some(slot) = slot_in(&shard.chunks, sym.slot()).filter(|s| s.refs > 0) {
            if slot.long_index().is_some() {
                let mut buf = LONG_TEXT.take();
                buf.clear();
                buf.push_str(shard.text(sym.slot()));
                long = Some(buf);
            } else {
                len = (slot.len as usize).min(INLINE);
                inline[..len].copy_from_slice(&slot.bytes[..len]);
            }
        }
    }
    match long {
        Some(buf) => {
            let r = f(&buf);
            LONG_TEXT.set(buf);
            r
        }
        // Inline bytes were copied from a `str` whole, so they are UTF-8.
        None => f(std::str::from_utf8(&inline[..len]).unwrap_or("")),
    }
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
    (0..SHARDS).map(|i| INTERNER.lock(i).table.len()).sum()
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
    fn slots_stay_small() {
        assert_eq!(std::mem::size_of::<Slot>(), 20);
    }

    #[test]
    fn inline_and_long_text_round_trip_and_free_their_places() {
        let texts = [
            String::new(),
            "a".repeat(INLINE),
            "b".repeat(INLINE + 1),
            "intern-test-δ-long-string-🦀".to_owned(),
            "δδδδδδδ".to_owned(),
        ];
        let held: Vec<Interned> = texts.iter().map(|t| Interned::new(t).unwrap()).collect();
        for (t, h) in texts.iter().zip(&held) {
            assert_eq!(&*h.as_arc_str(), t.as_str());
            assert_eq!(lookup(t), Some(h.sym()));
        }
        let long = "intern-test-long-reused-".repeat(3);
        for i in 0..1000 {
            let h = Interned::new(&format!("{long}{i}")).unwrap();
            assert_eq!(&*h.as_arc_str(), format!("{long}{i}"));
        }
        let longs: usize = (0..SHARDS).map(|i| INTERNER.lock(i).long.len()).sum();
        assert!(longs < 100, "long places are reused: {longs}");
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
        let slots: usize = (0..SHARDS)
            .map(|i| INTERNER.lock(i).chunks.len() * CHUNK)
            .sum();
        assert!(slots < 20_000, "{slots} slots");
    }
}
