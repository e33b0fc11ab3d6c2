//! SPEC section 8.1: a set of standing filters. `matching`, `first_match`
//! and `changes` must equal running every registered filter in set order,
//! whatever was inserted, replaced and removed before.

mod common;

use proptest::prelude::*;
use session_filter::syntax::Expr;
use session_filter::{Filter, FilterSet, Limits, Program, Session};

fn session(props: &[(&str, &str)]) -> Session {
    Session::new(props.iter().copied()).expect("valid session")
}

/// The set's contents as a plain list in set order, evaluated one by one.
#[derive(Default)]
struct Naive {
    filters: Vec<(u32, Program)>,
}

impl Naive {
    fn insert(&mut self, id: u32, program: Program) {
        match self.filters.iter_mut().find(|(i, _)| *i == id) {
            Some(slot) => slot.1 = program,
            None => self.filters.push((id, program)),
        }
    }

    fn remove(&mut self, id: u32) {
        self.filters.retain(|(i, _)| *i != id);
    }

    fn matching(&self, s: &Session) -> Vec<u32> {
        self.filters
            .iter()
            .filter(|(_, p)| p.matches(s))
            .map(|(id, _)| *id)
            .collect()
    }
}

fn difference(a: &[u32], b: &[u32]) -> Vec<u32> {
    a.iter().copied().filter(|x| !b.contains(x)).collect()
}

#[derive(Clone, Debug)]
enum Step {
    /// Insert (or replace) one id, through the text or the program.
    Insert {
        id: u32,
        filter: Expr,
        text: bool,
    },
    /// The same filter under many ids.
    InsertMany {
        start: u32,
        count: u32,
        filter: Expr,
    },
    Remove(u32),
    /// Query a session, and a change of it.
    Check {
        before: Vec<(String, String)>,
        edits: Vec<(String, Option<String>)>,
        roles: Option<Vec<String>>,
    },
}

fn step() -> impl Strategy<Value = Step> {
    use common::strategies::{expr, key, role_set, session, value};
    prop_oneof![
        4 => (0..24u32, expr(), any::<bool>())
            .prop_map(|(id, filter, text)| Step::Insert { id, filter, text }),
        1 => (100..140u32, 1..60u32, expr())
            .prop_map(|(start, count, filter)| Step::InsertMany { start, count, filter }),
        2 => prop_oneof![0..24u32, 100..200u32].prop_map(Step::Remove),
        3 => (
            session(),
            prop::collection::vec(
                (
                    key().prop_filter("roles apart", |k| k != "$Roles"),
                    prop::option::of(value())
                ),
                0..3
            ),
            prop::option::of(role_set()),
        )
            .prop_map(|(before, edits, roles)| Step::Check { before, edits, roles }),
    ]
}

fn run(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let mut set = FilterSet::new();
    let mut naive = Naive::default();
    for step in steps {
        match step {
            Step::Insert { id, filter, text } => {
                let filter = Filter::from(filter);
                let program = if text {
                    set.insert(id, &filter.to_string())
                        .map_err(|e| TestCaseError::fail(format!("{filter}: {e}")))?;
                    Program::compile(&filter.to_string()).expect("valid")
                } else {
                    let program = Program::new(&filter).expect("valid");
                    set.insert_program(id, program.clone());
                    program
                };
                naive.insert(id, program);
            }
            Step::InsertMany {
                start,
                count,
                filter,
            } => {
                let program = Program::try_from(Filter::from(filter)).expect("valid");
                for id in start..start + count {
                    set.insert_program(id, program.clone());
                    naive.insert(id, program.clone());
                }
            }
            Step::Remove(id) => {
                let had = set.remove(&id).is_some();
                prop_assert_eq!(had, naive.filters.iter().any(|(i, _)| *i == id));
                naive.remove(id);
            }
            Step::Check {
                before,
                edits,
                roles,
            } => {
                let before = Session::new(before).expect("valid session");
                let mut after = before.clone();
                for (key, value) in edits {
                    match value {
                        Some(v) => after.set(&key, &v).expect("valid edit"),
                        None => {
                            after.remove(&key);
                        }
                    }
                }
                if let Some(roles) = roles {
                    after.set_roles(roles).expect("valid roles");
                }
                prop_assert_eq!(set.len(), naive.filters.len());
                let (b, a) = (naive.matching(&before), naive.matching(&after));
                prop_assert_eq!(&set.matching(&before), &b, "before {:?}", before);
                prop_assert_eq!(&set.matching(&after), &a, "after {:?}", after);
                prop_assert_eq!(set.first_match(&before), b.first().copied());
                prop_assert_eq!(set.first_match(&after), a.first().copied());
                let changes = set.changes(&before, &after);
                prop_assert_eq!(&changes.entered, &difference(&a, &b), "entered");
                prop_assert_eq!(&changes.left, &difference(&b, &a), "left");
                let back = set.changes(&after, &before);
                prop_assert_eq!(&back.entered, &changes.left);
                prop_assert_eq!(&back.left, &changes.entered);
                let order: Vec<u32> = set.iter().map(|(id, _)| *id).collect();
                let expected: Vec<u32> = naive.filters.iter().map(|(id, _)| *id).collect();
                prop_assert_eq!(order, expected);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The differential law: the index never changes an answer.
    #[test]
    fn set_answers_equal_running_every_filter_in_order(
        steps in prop::collection::vec(step(), 1..40)
    ) {
        run(steps)?;
    }
}

#[test]
fn conformance_filters_as_one_set_equal_each_filter_alone() {
    for dir in common::case_dirs() {
        let sessions: Vec<Session> = common::sessions(&dir)
            .into_iter()
            .map(|p| Session::new(p).expect("valid session"))
            .collect();
        let mut set = FilterSet::new();
        let mut naive = Naive::default();
        for (i, case) in common::filter_cases(&dir).into_iter().enumerate() {
            if case.valid.is_none() {
                assert!(
                    set.insert(i as u32, &case.filter).is_err(),
                    "{}",
                    case.filter
                );
                continue;
            }
            set.insert(i as u32, &case.filter).expect("valid case");
            naive.insert(i as u32, Program::compile(&case.filter).expect("valid"));
        }
        assert!(set.len() > 10, "{}", set.len());
        for (i, s) in sessions.iter().enumerate() {
            let expected = naive.matching(s);
            assert_eq!(
                set.matching(s),
                expected,
                "session {i} in {}",
                dir.display()
            );
            assert_eq!(set.first_match(s), expected.first().copied());
            for t in &sessions {
                let other = naive.matching(t);
                let changes = set.changes(s, t);
                assert_eq!(changes.entered, difference(&other, &expected));
                assert_eq!(changes.left, difference(&expected, &other));
            }
        }
    }
}

#[test]
fn ids_keep_insertion_order_and_replacing_keeps_the_place() {
    let mut set = FilterSet::new();
    for (id, filter) in [
        ("c", "has Tier"),
        ("a", "Tier is 'gold'"),
        ("b", "Tier ne 'silver'"),
    ] {
        assert!(set.insert(id, filter).unwrap().is_none());
    }
    let gold = session(&[("Tier", "gold")]);
    assert_eq!(set.matching(&gold), ["c", "a", "b"]);
    // Replacing keeps the place, and returns the filter replaced.
    let old = set.insert("c", "Tier is 'none'").unwrap();
    assert_eq!(old.map(|p| p.to_string()).as_deref(), Some("has Tier"));
    assert_eq!(set.matching(&gold), ["a", "b"]);
    set.insert("c", "Tier in ['gold', 'x']").unwrap();
    assert_eq!(set.matching(&gold), ["c", "a", "b"]);
    assert_eq!(set.first_match(&gold), Some("c"));
    // Removing frees the id; inserting it again puts it last.
    assert_eq!(
        set.remove(&"c").map(|p| p.to_string()).as_deref(),
        Some(r#"Tier in ["gold", "x"]"#)
    );
    assert!(set.remove(&"c").is_none());
    assert_eq!(set.first_match(&gold), Some("a"));
    set.insert("c", "has Tier").unwrap();
    assert_eq!(set.matching(&gold), ["a", "b", "c"]);
    let order: Vec<&str> = set.iter().map(|(id, _)| *id).collect();
    assert_eq!(order, ["a", "b", "c"]);
    assert_eq!(
        set.get(&"b").map(|p| p.to_string()).as_deref(),
        Some(r#"Tier ne "silver""#)
    );
}

#[test]
fn a_bad_filter_is_an_error_and_leaves_the_set_unchanged() {
    let mut set = FilterSet::with_limits(Limits::new().with_max_depth(2));
    set.insert(1, "Tier is 'gold'").unwrap();
    let before = format!("{set:?}");
    for bad in [
        "Tier is",
        "",
        "$Roles is 'admin'",
        "not not not has x",
        "hasRoles []",
    ] {
        let err = set.insert(1, bad).unwrap_err();
        assert!(
            matches!(err, session_filter::Error::Filter(_)),
            "{bad}: {err}"
        );
        assert!(set.insert(2, bad).is_err());
        assert_eq!(format!("{set:?}"), before, "{bad}");
    }
    assert_eq!(set.len(), 1);
    assert!(!set.contains(&2));
    assert_eq!(set.matching(&session(&[("Tier", "gold")])), [1]);
}

#[test]
fn constant_filters_and_absent_keys() {
    let mut set = FilterSet::new();
    set.insert(1, "all").unwrap();
    set.insert(2, "not all").unwrap();
    set.insert(3, "not has Department").unwrap();
    set.insert(4, "$Roles is ''").unwrap();
    set.insert(5, "has $Roles").unwrap();
    let empty = Session::empty();
    assert_eq!(set.matching(&empty), [1, 3, 4]);
    let no_roles = session(&[("$Roles", "")]);
    assert_eq!(set.matching(&no_roles), [1, 3, 4, 5]);
    let changes = set.changes(&empty, &no_roles);
    assert_eq!((changes.entered, changes.left), (vec![5], vec![]));
    let dept = session(&[("Department", "Ops"), ("$Roles", r#""a""#)]);
    let changes = set.changes(&empty, &dept);
    assert_eq!(changes.entered, [5]);
    assert_eq!(changes.left, [3, 4]);
    assert!(set.changes(&dept, &dept.clone()).is_empty());
}

#[test]
fn one_filter_under_many_ids_is_one_entry() {
    let mut set = FilterSet::new();
    for id in 0..100_000u32 {
        set.insert(id, "Department is 'Ops' and not hasRoles ['guest']")
            .unwrap();
    }
    set.insert(100_000, "Department is 'Ops'").unwrap();
    assert_eq!((set.len(), set.distinct_filters()), (100_001, 2));
    let ops = session(&[("Department", "Ops")]);
    let all = set.matching(&ops);
    assert_eq!(all.len(), 100_001);
    assert!(all.windows(2).all(|w| w[0] < w[1]));
    let mut sales = ops.clone();
    sales.set("Department", "Sales").unwrap();
    assert_eq!(set.changes(&ops, &sales).left.len(), 100_001);
    for id in (0..100_000u32).step_by(2) {
        set.remove(&id);
    }
    assert_eq!(set.first_match(&ops), Some(1));
    assert_eq!(set.matching(&ops).len(), 50_001);
}
