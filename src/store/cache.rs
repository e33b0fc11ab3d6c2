//! The store's bounded cache of compiled filters (SPEC section 6.3).
//!
//! Servers send the same filter texts again and again; parsing and compiling
//! one costs far more than running a selective one through the index. The
//! cache is keyed by the exact text: a store's limits are fixed when it is
//! made, so the text alone decides the program. Only filters that compile
//! are kept.
//!
//! The bound is in bytes: each entry weighs its text twice (the key, and
//! the strings of the syntax tree the program keeps), an estimate from
//! above of the program (its tables, its tree node by node, and the
//! interned strings it pins with the interner's entry for each) and the
//! cache's own entry, and at least
//! [`MIN_CACHED_FILTER_BYTES`](StoreOptions::MIN_CACHED_FILTER_BYTES). The
//! weights of the entries never add up past the bound, whatever texts
//! clients send. The cache has up to 8 shards (each of at least 32 KiB); a
//! filter that alone would weigh more than an eighth of a shard (at least
//! the least weight) is compiled every time and not kept.

use quick_cache::sync::{Cache, DefaultLifecycle};
use quick_cache::{OptionsBuilder, Weighter};

use super::{SessionStore, StoreOptions};
use crate::error::Error;
use crate::syntax::Limits;
use crate::vm::Program;

/// Bytes of a store's filter cache unless [`StoreOptions::filter_cache_bytes`]
/// says otherwise: a few thousand typical filters, small next to the
/// sessions.
pub(super) const DEFAULT_BYTES: usize = 2 << 20;

/// See [`StoreOptions::MIN_CACHED_FILTER_BYTES`].
const MIN_ENTRY_BYTES: usize = StoreOptions::MIN_CACHED_FILTER_BYTES;

/// A cached program with its weight, worked out once when it is stored.
#[derive(Clone)]
struct Cached {
    program: Program,
    bytes: u64,
}

/// Weighs an entry by the bytes it was estimated at.
#[derive(Clone, Copy)]
struct Bytes;

impl Weighter<String, Cached> for Bytes {
    fn weight(&self, _text: &String, cached: &Cached) -> u64 {
        cached.bytes
    }
}

type Programs = Cache<String, Cached, Bytes, ahash::RandomState, DefaultLifecycle<String, Cached>>;

/// Compiled filters by their text; off when made with 0 bytes.
pub(super) struct FilterCache {
    programs: Option<Programs>,
    /// The heaviest entry kept.
    max_entry: u64,
}

/// What an entry of `text` compiled to `program` weighs.
fn weight(text: &str, program: &Program) -> u64 {
    let bytes = std::mem::size_of::<(String, Cached)>()
        + 32 // the cache's own bookkeeping per entry
        + text.len()
        + program.estimated_bytes(text.len());
    bytes.max(MIN_ENTRY_BYTES) as u64
}

impl FilterCache {
    pub(super) fn new(bytes: usize) -> FilterCache {
        // quick_cache admits an entry only within its shard's hot part
        // (97% of the shard).
        let shard = bytes / shards(bytes);
        FilterCache {
            programs: programs(bytes),
            max_entry: (shard / 8).max(MIN_ENTRY_BYTES).min(shard / 32 * 31) as u64,
        }
    }

    /// The program of `text`, from the cache or compiled with `limits` (and
    /// then cached, when it compiles and is not too heavy).
    pub(super) fn compile(&self, text: &str, limits: &Limits) -> Result<Program, Error> {
        let compile = || Program::compile_with(text, limits);
        let Some(programs) = &self.programs else {
            return compile();
        };
        if let Some(cached) = programs.get(text) {
            return Ok(cached.program);
        }
        let program = compile()?;
        let bytes = weight(text, &program);
        if bytes <= self.max_entry {
            programs.insert(
                text.to_owned(),
                Cached {
                    program: program.clone(),
                    bytes,
                },
            );
        }
        Ok(program)
    }

    pub(super) fn len(&self) -> usize {
        self.programs.as_ref().map_or(0, Programs::len)
    }

    pub(super) fn bytes(&self) -> usize {
        self.programs.as_ref().map_or(0, |p| p.weight() as usize)
    }
}

/// Up to 8 shards, each of at least 32 of the smallest entries, dividing
/// the bound evenly: quick_cache rounds a shard's capacity up, which would
/// let an uneven split hold a few more than asked.
fn shards(bytes: usize) -> usize {
    let mut shards = 8;
    while shards > 1 && (!bytes.is_multiple_of(shards) || bytes / shards < 32 * MIN_ENTRY_BYTES) {
        shards /= 2;
    }
    shards
}

/// A cache of exactly `bytes` (its shards' capacities add up to the bound),
/// or none for less than one entry.
fn programs(bytes: usize) -> Option<Programs> {
    if bytes < MIN_ENTRY_BYTES {
        return None;
    }
    // Up to 8 shards, each of at least 32 of the smallest entries, dividing
    // the bound evenly: quick_cache rounds a shard's capacity up, which
    // would let an uneven split hold a few more than asked.
    let mut shards = 8;
    while shards > 1 && (!bytes.is_multiple_of(shards) || bytes / shards < 32 * MIN_ENTRY_BYTES) {
        shards /= 2;
    }
    let options = OptionsBuilder::new()
        .estimated_items_capacity(bytes / MIN_ENTRY_BYTES)
        .weight_capacity(bytes as u64)
        .shards(shards)
        .build()
        .ok()?;
    Some(Cache::with_options(
        options,
        Bytes,
        ahash::RandomState::new(),
        DefaultLifecycle::default(),
    ))
}

impl StoreOptions {
    /// The least a filter cache entry counts for: more than the smallest
    /// filter is estimated at (a `String` key, the program's shared block
    /// and tables, a syntax node, the cache's entry: about 540 bytes). A cache of `b` bytes holds at
    /// most `b / 1024` filters.
    pub const MIN_CACHED_FILTER_BYTES: usize = 1024;

    /// At most this many compiled filters in the store's filter cache:
    /// [`StoreOptions::filter_cache_bytes`] of `entries` times
    /// [`MIN_CACHED_FILTER_BYTES`](StoreOptions::MIN_CACHED_FILTER_BYTES), the least an entry counts for; 0 turns the
    /// cache off.
    ///
    /// ```
    /// use session_filter::{SessionStore, StoreOptions};
    /// let store = SessionStore::with_options(StoreOptions::new().filter_cache(2));
    /// for filter in ["all", "not all", "has k", "all"] {
    ///     store.count(filter)?;
    /// }
    /// assert!(store.cached_filters() <= 2);
    /// assert_eq!(SessionStore::with_options(StoreOptions::new().filter_cache(0)).cached_filters(), 0);
    /// # Ok::<(), session_filter::Error>(())
    /// ```
    pub fn filter_cache(self, entries: usize) -> StoreOptions {
        // A sixteenth more, so that one shard's hot part (97% of it) admits
        // an entry of the least weight.
        let bytes = match entries {
            0 => 0,
            n => n.saturating_mul(MIN_ENTRY_BYTES) + MIN_ENTRY_BYTES / 16,
        };
        self.filter_cache_bytes(bytes)
    }

    /// The bytes the store's cache of compiled filters may hold, by their
    /// exact text, so that a filter sent again is not parsed again; the
    /// default is 2 MiB, and less than [`MIN_CACHED_FILTER_BYTES`](StoreOptions::MIN_CACHED_FILTER_BYTES) turns the cache
    /// off. Each entry is weighed from above (its text, the program and
    /// syntax tree it compiled to, the strings it pins, the cache's entry;
    /// at least [`MIN_CACHED_FILTER_BYTES`](StoreOptions::MIN_CACHED_FILTER_BYTES)) and the weights never add up past the
    /// bound; a filter heavier than an eighth of a shard of the cache (it
    /// has up to 8 shards of at least 32 KiB) is compiled every time
    /// instead of kept. An answer is the same with the cache or
    /// without it; filters that fail to compile are not kept.
    ///
    /// ```
    /// use session_filter::{SessionStore, StoreOptions};
    /// let store = SessionStore::with_options(StoreOptions::new().filter_cache_bytes(64 << 10));
    /// for i in 0..1000 {
    ///     store.count(&format!("Desk is 'd{i}'"))?;
    /// }
    /// assert!(store.cached_filter_bytes() <= 64 << 10);
    /// # Ok::<(), session_filter::Error>(())
    /// ```
    pub fn filter_cache_bytes(mut self, bytes: usize) -> StoreOptions {
        self.filter_cache = bytes;
        self
    }
}

impl SessionStore {
    /// How many compiled filters the store's filter cache holds now.
    pub fn cached_filters(&self) -> usize {
        self.filters.len()
    }

    /// What the entries of the filter cache weigh now, in estimated bytes
    /// (at most [`StoreOptions::filter_cache_bytes`]).
    pub fn cached_filter_bytes(&self) -> usize {
        self.filters.bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_is_exact_for_any_size() {
        for entries in [1, 2, 31, 33, 100, 1000, 1001, 1024, 4099] {
            let bytes = entries * MIN_ENTRY_BYTES + entries % 7;
            let cache = programs(bytes).unwrap();
            assert_eq!(cache.capacity(), bytes as u64, "{bytes}");
        }
        assert!(programs(0).is_none());
        assert!(programs(MIN_ENTRY_BYTES - 1).is_none());
    }

    #[test]
    fn entries_weigh_what_their_filters_hold_and_heavy_ones_are_not_kept() {
        let limits = Limits::default();
        let small = Program::compile("k is 'v'").unwrap();
        assert_eq!(weight("k is 'v'", &small), MIN_ENTRY_BYTES as u64);
        let text = (0..200)
            .map(|i| format!("k{i} is 'value number {i}'"))
            .collect::<Vec<_>>()
            .join(" or ");
        let big = Program::compile(&text).unwrap();
        let w = weight(&text, &big);
        // At least the text twice and a node, an op and a pinned string
        // per clause.
        assert!(
            w as usize > 2 * text.len() + 200 * 100,
            "{w} for {}",
            text.len()
        );
        let cache = FilterCache::new(w as usize * 32);
        cache.compile(&text, &limits).unwrap();
        assert_eq!(cache.len(), 0, "over an eighth of a shard: not kept");
        let cache = FilterCache::new(w as usize * 64);
        cache.compile(&text, &limits).unwrap();
        assert_eq!((cache.len(), cache.bytes()), (1, w as usize));
    }

    #[test]
    fn bad_filters_are_not_kept_and_good_ones_are_found_again() {
        let cache = FilterCache::new(8 * MIN_ENTRY_BYTES);
        let limits = Limits::default();
        assert!(cache.compile("k is", &limits).is_err());
        assert_eq!(cache.len(), 0);
        let a = cache.compile("k is 'v'", &limits).unwrap();
        let b = cache.compile("k is 'v'", &limits).unwrap();
        assert_eq!(cache.len(), 1);
        assert_eq!(a.to_string(), b.to_string());
    }
}
