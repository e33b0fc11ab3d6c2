//! The store's bounded cache of compiled filters (SPEC section 6.3).
//!
//! Servers send the same filter texts again and again; parsing and compiling
//! one costs far more than running a selective one through the index. The
//! cache is keyed by the exact text: a store's limits are fixed when it is
//! made, so the text alone decides the program. Only filters that compile
//! are kept, and the number of entries never exceeds the bound, whatever
//! texts clients send (each entry is at most the limits' filter length plus
//! the program it compiles to).

use quick_cache::sync::{Cache, DefaultLifecycle};
use quick_cache::{OptionsBuilder, UnitWeighter};

use super::{SessionStore, StoreOptions};
use crate::error::Error;
use crate::syntax::Limits;
use crate::vm::Program;

/// Entries of a store's filter cache unless [`StoreOptions::filter_cache`]
/// says otherwise: enough for the distinct filters a server's clients use,
/// small next to the sessions (a few hundred kilobytes at most).
pub(super) const DEFAULT_ENTRIES: usize = 1024;

type Programs =
    Cache<String, Program, UnitWeighter, ahash::RandomState, DefaultLifecycle<String, Program>>;

/// Compiled filters by their text; off when made with 0 entries.
pub(super) struct FilterCache {
    programs: Option<Programs>,
}

impl FilterCache {
    pub(super) fn new(entries: usize) -> FilterCache {
        FilterCache {
            programs: programs(entries),
        }
    }

    /// The program of `text`, from the cache or compiled with `limits` (and
    /// then cached, when it compiles).
    pub(super) fn compile(&self, text: &str, limits: &Limits) -> Result<Program, Error> {
        let compile = || Program::compile_with(text, limits);
        let Some(programs) = &self.programs else {
            return compile();
        };
        if let Some(program) = programs.get(text) {
            return Ok(program);
        }
        let program = compile()?;
        programs.insert(text.to_owned(), program.clone());
        Ok(program)
    }

    pub(super) fn len(&self) -> usize {
        self.programs.as_ref().map_or(0, Programs::len)
    }
}

/// A cache of exactly `entries` (its shards' capacities add up to the
/// bound), or none for 0.
fn programs(entries: usize) -> Option<Programs> {
    if entries == 0 {
        return None;
    }
    // Up to 8 shards, each of at least 32 entries, dividing the bound evenly:
    // quick_cache rounds a shard's capacity up, which would let an uneven
    // split hold a few more than asked.
    let mut shards = 8;
    while shards > 1 && (!entries.is_multiple_of(shards) || entries / shards < 32) {
        shards /= 2;
    }
    let options = OptionsBuilder::new()
        .estimated_items_capacity(entries)
        .weight_capacity(entries as u64)
        .shards(shards)
        .build()
        .ok()?;
    Some(Cache::with_options(
        options,
        UnitWeighter,
        ahash::RandomState::new(),
        DefaultLifecycle::default(),
    ))
}

impl StoreOptions {
    /// How many compiled filters the store keeps, by their exact text, so
    /// that a filter sent again is not parsed again; the default is 1024, and
    /// 0 turns the cache off. The cache never holds more, and an answer is
    /// the same with it or without it. Filters that fail to compile are not
    /// kept.
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
    pub fn filter_cache(mut self, entries: usize) -> StoreOptions {
        self.filter_cache = entries;
        self
    }
}

impl SessionStore {
    /// How many compiled filters the store's filter cache holds now (at most
    /// [`StoreOptions::filter_cache`]).
    pub fn cached_filters(&self) -> usize {
        self.filters.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_is_exact_for_any_size() {
        for entries in [1, 2, 31, 33, 100, 1000, 1001, 1024, 4099] {
            let cache = programs(entries).unwrap();
            assert_eq!(cache.capacity(), entries as u64, "{entries}");
        }
        assert!(programs(0).is_none());
    }

    #[test]
    fn bad_filters_are_not_kept_and_good_ones_are_found_again() {
        let cache = FilterCache::new(8);
        let limits = Limits::default();
        assert!(cache.compile("k is", &limits).is_err());
        assert_eq!(cache.len(), 0);
        let a = cache.compile("k is 'v'", &limits).unwrap();
        let b = cache.compile("k is 'v'", &limits).unwrap();
        assert_eq!(cache.len(), 1);
        assert_eq!(a.to_string(), b.to_string());
    }
}
