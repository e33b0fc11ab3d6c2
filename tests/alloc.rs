//! Evaluation allocates nothing, for programs of any size (SPEC section 5):
//! a counting global allocator watches `matches`, `count` and the cache
//! variants on this thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use session_filter::{Program, Session};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; only counts calls, on a
// thread-local that needs no allocation itself.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

/// A filter of about `clauses` tests.
fn filter_of(clauses: usize) -> String {
    (0..clauses)
        .map(|i| match i % 4 {
            0 => format!("k{i} is 'v{i}'"),
            1 => format!("(has k{i} and k{i} ne 'v{i}')"),
            2 => format!("hasRoles ['r{i}']"),
            _ => format!("$Country in ['C{i}', 'UK']"),
        })
        .collect::<Vec<_>>()
        .join(" or ")
}

#[test]
fn evaluation_allocates_nothing_for_programs_of_any_size() {
    let sessions: Vec<Session> = (0..300)
        .map(|i| {
            Session::new([
                ("$SessionId", format!("s{i}")),
                ("$Country", if i % 3 == 0 { "UK" } else { "FR" }.to_string()),
                (&format!("k{}", i % 40), format!("v{}", i % 40)),
            ])
            .unwrap()
        })
        .collect();
    for clauses in [1, 2, 8, 29, 30, 31, 64, 500] {
        let program = Program::compile(&filter_of(clauses)).unwrap();
        let expected = sessions.iter().filter(|s| program.matches(s)).count();
        assert!(
            expected > 0 && expected < sessions.len(),
            "{clauses}: {expected}"
        );
        let n = allocations_during(|| {
            for s in &sessions {
                std::hint::black_box(program.matches(s));
            }
        });
        assert_eq!(n, 0, "matches, {} ops", program.op_count());

        // The thread's cache is made once; after that, nothing.
        assert_eq!(program.count(&sessions), expected);
        let n = allocations_during(|| assert_eq!(program.count(&sessions), expected));
        assert_eq!(n, 0, "count, {} ops", program.op_count());
        let mut seen = 0;
        let n = allocations_during(|| program.for_each_match(&sessions, |_| seen += 1));
        assert_eq!((n, seen), (0, expected), "for_each_match");

        let mut cache = program.create_cache();
        let n = allocations_during(|| {
            assert_eq!(program.count_with_cache(&mut cache, &sessions), expected)
        });
        assert_eq!(n, 0, "count_with_cache, {} ops", program.op_count());
    }
}

#[test]
fn regex_evaluation_allocates_nothing_once_warm() {
    let sessions: Vec<Session> = (0..300)
        .map(|i| {
            Session::new([
                ("$SessionId", format!("s{i}")),
                ("$Country", if i % 3 == 0 { "UK" } else { "FR" }.to_string()),
                // Short values sit in the interner's slots, long ones apart.
                ("Name", format!("{}-{i}", "x".repeat(i % 40))),
            ])
            .unwrap()
        })
        .collect();
    let program =
        Program::compile("$Country matches 'U.' or Name matches 'x{20,}-[0-9]*5'").unwrap();
    let expected = sessions.iter().filter(|s| program.matches(s)).count();
    assert!(expected > 100 && expected < 300, "{expected}");
    let n = allocations_during(|| {
        for s in &sessions {
            std::hint::black_box(program.matches(s));
        }
    });
    assert_eq!(n, 0, "matches");
    assert_eq!(program.count(&sessions), expected);
    let n = allocations_during(|| assert_eq!(program.count(&sessions), expected));
    assert_eq!(n, 0, "count");
}
