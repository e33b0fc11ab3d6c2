//! SPEC 6.3 and issue 19: the filter cache is bounded in bytes, not in
//! entries, so clients sending large distinct filters cannot make a store
//! pin more than its bound. One test in this binary, so no other test
//! interns strings while it measures the interner.

use session_filter::{interner_memory, SessionStore, StoreOptions};

#[test]
fn large_distinct_filters_cannot_pin_more_than_the_cache_bound() {
    let bound = 1 << 20;
    let store = SessionStore::with_options(StoreOptions::new().filter_cache_bytes(bound));
    store.insert([("$SessionId", "a"), ("k", "v")]).unwrap();
    let before = interner_memory().total();
    // Each filter pins a 4 KB string; 2 000 of them are 8 MB, 1 000 (the
    // old bound in entries) 4 MB.
    for i in 0..2000 {
        let value = format!("{i:04}{}", "x".repeat(4000));
        let filter = format!("k is '{value}' or Desk is 'd{i}'");
        assert_eq!(store.count(&filter).unwrap(), 0);
        assert!(store.cached_filter_bytes() <= bound);
    }
    let grown = interner_memory().total().saturating_sub(before);
    assert!(
        grown <= bound,
        "the cached filters pin {grown} bytes of strings, over the {bound}-byte bound"
    );
    assert!(store.cached_filters() > 0);
    // The filters that are kept are found again.
    let kept = store.cached_filters();
    let last = format!("k is '{:04}{}' or Desk is 'd1999'", 1999, "x".repeat(4000));
    store.count(&last).unwrap();
    assert_eq!(store.cached_filters(), kept);
}
