//! SPEC section 3: what filters mean. The compiled matcher, the bulk and
//! parallel paths and the reference evaluator must all agree with the
//! conformance cases and with each other.

mod common;

use std::collections::HashMap;

use proptest::prelude::*;
use session_filter::{reference, roles_to_string, Filter, Program, Session};

fn build(sessions: &[Vec<(String, String)>]) -> Vec<Session> {
    sessions
        .iter()
        .map(|p| {
            Session::new(p.iter().map(|(k, v)| (k.as_str(), v.as_str()))).expect("valid session")
        })
        .collect()
}

fn ids(
    sessions: &[Vec<(String, String)>],
    indices: impl IntoIterator<Item = usize>,
) -> Vec<String> {
    indices
        .into_iter()
        .map(|i| {
            sessions[i]
                .iter()
                .find(|(k, _)| k == "$SessionId")
                .map(|(_, v)| v.clone())
                .expect("id")
        })
        .collect()
}

#[test]
fn conformance_filters_match_exactly_the_listed_sessions() {
    for dir in common::case_dirs() {
        let raw = common::sessions(&dir);
        let sessions = build(&raw);
        let maps: Vec<HashMap<String, String>> =
            raw.iter().map(|p| p.iter().cloned().collect()).collect();
        for case in common::filter_cases(&dir) {
            let Some((_, expected)) = &case.valid else {
                continue;
            };
            let filter = Filter::parse(&case.filter).unwrap();
            let program = Program::compile(&case.filter).unwrap();
            let what = format!("{} in {}", case.filter, dir.display());
            let one_by_one: Vec<usize> = (0..sessions.len())
                .filter(|&i| program.matches(&sessions[i]))
                .collect();
            assert_eq!(
                &ids(&raw, one_by_one),
                expected,
                "matches: {what}\n{}",
                program.explain()
            );
            assert_eq!(
                &ids(&raw, program.select(&sessions)),
                expected,
                "select: {what}"
            );
            assert_eq!(
                &ids(&raw, program.par_select(&sessions)),
                expected,
                "par_select: {what}"
            );
            assert_eq!(program.count(&sessions), expected.len(), "count: {what}");
            assert_eq!(
                program.par_count(&sessions),
                expected.len(),
                "par_count: {what}"
            );
            let by_reference: Vec<usize> = (0..maps.len())
                .filter(|&i| reference::matches_map(filter.expr(), &maps[i]))
                .collect();
            assert_eq!(&ids(&raw, by_reference), expected, "reference: {what}");
        }
    }
}

#[test]
fn values_no_session_had_at_compile_time_match_later_sessions() {
    let program =
        Program::compile("Tag is 'matcher-test-fresh-ζ' or hasRoles ['matcher-test-role-ζ']")
            .unwrap();
    let later = Session::new([("Tag", "matcher-test-fresh-ζ")]).unwrap();
    assert!(program.matches(&later));
    let later = Session::new([("$Roles", "'matcher-test-role-ζ', 'x'")]).unwrap();
    assert!(program.matches(&later));
    assert!(!program.matches(&Session::new([("Tag", "other")]).unwrap()));
}

#[test]
fn roles_compare_as_sets_and_absent_roles_are_empty() {
    let none = Session::new([("$SessionId", "a")]).unwrap();
    let empty = Session::new([("$Roles", "")]).unwrap();
    let ab = Session::new([("$Roles", "'b','a','b'")]).unwrap();
    let check = |f: &str, expected: [bool; 3]| {
        let p = Program::compile(f).unwrap();
        assert_eq!([&none, &empty, &ab].map(|s| p.matches(s)), expected, "{f}");
    };
    check("$Roles is ''", [true, true, false]);
    check("$Roles is '\"a\",\"b\"'", [false, false, true]);
    check("$Roles ne '[\"b\" \"a\"]'", [true, true, false]);
    check("$Roles in ['\"a\"', '\"b\",\"a\"']", [false, false, true]);
    check("has $Roles", [false, true, true]);
    check("hasRoles ['a', 'a']", [false, false, true]);
    check("hasRoles ['a', 'c']", [false, false, false]);
    check("not hasRoles ['a']", [true, true, false]);
}

#[test]
fn large_sets_and_many_properties_take_the_binary_search_paths() {
    let values: Vec<String> = (0..100).map(|i| format!("v{i}")).collect();
    let list: Vec<String> = values.iter().map(|v| format!("'{v}'")).collect();
    let p = Program::compile(&format!(
        "k in [{}] and $Country in [{}]",
        list.join(","),
        list.join(",")
    ))
    .unwrap();
    let mut props: Vec<(String, String)> = (0..30).map(|i| (format!("u{i}"), "x".into())).collect();
    props.push(("k".into(), "v57".into()));
    props.push(("$Country".into(), "v3".into()));
    let s = Session::new(props.clone()).unwrap();
    assert!(p.matches(&s));
    props.pop();
    props.push(("$Country".into(), "v100".into()));
    assert!(!p.matches(&Session::new(props).unwrap()));

    let roles: Vec<String> = (0..50).map(|i| format!("r{i}")).collect();
    let quoted: Vec<String> = roles.iter().map(|r| format!("'{r}'")).collect();
    let has_all = Program::compile(&format!("hasRoles [{}]", quoted.join(" "))).unwrap();
    let exactly = Program::compile(&format!(
        "$Roles is '{}'",
        roles_to_string(&roles).replace('\'', "\\'")
    ))
    .unwrap();
    let full = Session::new([("$Roles", roles_to_string(roles.iter().rev()))]).unwrap();
    let partial = Session::new([("$Roles", roles_to_string(&roles[1..]))]).unwrap();
    assert!(has_all.matches(&full) && exactly.matches(&full));
    assert!(!has_all.matches(&partial) && !exactly.matches(&partial));
}

#[test]
fn bulk_paths_handle_partial_blocks() {
    let sessions = session_filter::demo::sessions(1000).unwrap();
    for f in [
        "all",
        "not all",
        "$Country is 'DE'",
        "has Department and not hasRoles ['admin']",
    ] {
        let p = Program::compile(f).unwrap();
        for n in [0, 1, 63, 64, 65, 130, 999, 1000] {
            let slice = &sessions[..n];
            let expected: Vec<usize> = (0..n).filter(|&i| p.matches(&slice[i])).collect();
            assert_eq!(p.select(slice), expected, "{f} over {n}");
            assert_eq!(p.count(slice), expected.len());
            assert_eq!(p.par_select(slice), expected);
        }
    }
}

// --- Differential property test ------------------------------------------

use common::strategies::{expr, session};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn compiled_matcher_agrees_with_the_reference(
        e in expr(),
        sessions in prop::collection::vec(session(), 1..70),
    ) {
        let filter = Filter::from(e);
        let program = Program::new(&filter).unwrap();
        // The canonical text compiles to a program that agrees too.
        let reparsed = Program::compile(&filter.to_string()).unwrap();
        let built = build(&sessions);
        let mut expected = Vec::new();
        for (i, raw) in sessions.iter().enumerate() {
            let map: HashMap<String, String> = raw.iter().cloned().collect();
            let want = reference::matches_map(filter.expr(), &map);
            prop_assert_eq!(program.matches(&built[i]), want, "session {:?}\n{}\n{}", raw, filter, program.explain());
            prop_assert_eq!(reparsed.matches(&built[i]), want);
            if want {
                expected.push(i);
            }
        }
        prop_assert_eq!(program.select(&built), expected.clone());
        prop_assert_eq!(program.count(&built), expected.len());
    }
}
