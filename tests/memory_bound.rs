//! SPEC section 5: compiling untrusted filters by the million must not grow
//! memory without bound. This binary holds a single test, so no other test
//! interns strings while it counts.

use session_filter::{interned_count, Program, Session};

#[test]
fn compiled_and_dropped_filters_and_sessions_leave_no_strings_behind() {
    let baseline = interned_count();
    // A long-lived session, and a program that holds a value it lacks.
    let keeper = Session::new([("$SessionId", "keeper"), ("Tier", "gold")]).unwrap();
    let waiting = Program::compile("Tier is 'platinum'").unwrap();
    let held = interned_count();
    assert!(held > baseline);

    for i in 0..20_000 {
        let text = format!(
            "$Principal is 'user-{i}' or hasRoles ['role-{i}'] or Department in ['d{i}', 'e{i}'] or k{i} is 'x'"
        );
        let program = Program::compile(&text).unwrap();
        assert!(!program.matches(&keeper));
    }
    for i in 0..10_000 {
        let s = Session::new([
            ("$SessionId", format!("churn-{i}")),
            ("$ClientIP", format!("10.0.{i}")),
        ])
        .unwrap();
        drop(s);
    }
    assert_eq!(
        interned_count(),
        held,
        "only the live session's and program's strings remain"
    );

    // The program still matches a session created after it was compiled.
    let later = Session::new([("$SessionId", "later"), ("Tier", "platinum")]).unwrap();
    assert!(waiting.matches(&later));
    drop((keeper, waiting, later));
    assert_eq!(interned_count(), baseline);
}
