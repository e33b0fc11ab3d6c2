//! SPEC sections 2 and 5: the grammar, the canonical form, errors and limits.

// The fuzz targets' checks, shared rather than written twice.
#[allow(dead_code, unused_imports)]
#[path = "../fuzz/src/lib.rs"]
mod checks;
mod common;

use proptest::prelude::*;
use session_filter::syntax::{Expr, Span};
use session_filter::{roles_to_string, Filter, FilterError, FilterErrorKind, Limits};

/// Every position an error reports is inside the input and agrees with the
/// line and column it gives, and the message says what was expected and
/// found: the fuzz targets' own check.
fn assert_well_placed(input: &str, err: &FilterError) {
    checks::check_error(input, err);
}

#[test]
fn conformance_filters_give_their_canonical_form_or_an_error() {
    for dir in common::case_dirs() {
        let cases = common::filter_cases(&dir);
        assert!(cases.len() > 50, "{}: too few cases", dir.display());
        for case in cases {
            let result = Filter::parse(&case.filter);
            match (&case.valid, result) {
                (Some((canonical, _)), Ok(f)) => {
                    assert_eq!(&f.to_string(), canonical, "{:?}", case.filter);
                    let again = Filter::parse(canonical).expect("canonical form parses");
                    assert_eq!(again, f, "{canonical:?} parses to the same filter");
                    assert_eq!(&again.to_string(), canonical, "display is idempotent");
                }
                (Some(_), Err(e)) => panic!("{:?} should parse, got {e}", case.filter),
                (None, Ok(f)) => panic!("{:?} should fail, parsed as {f}", case.filter),
                (None, Err(e)) => {
                    assert_well_placed(&case.filter, &e);
                    if let Some(at) = case.error_at {
                        assert_eq!((e.line(), e.column()), at, "{:?}: {e}", case.filter);
                    }
                }
            }
        }
    }
}

/// SPEC sections 2, 3 and 5 on `matches`: the shared cases (read at test
/// time, skipped with a message when absent) and the crate's copy.
#[test]
fn conformance_matches_cases_give_their_canonical_form_or_an_error_where_they_say() {
    let mut dirs = vec![common::local_dir()];
    dirs.extend(common::shared_dir());
    for dir in dirs {
        let path = dir.join("matches.jsonl");
        if !path.is_file() {
            eprintln!("SKIPPED: {} is absent", path.display());
            continue;
        }
        let cases = common::cases_in(&path);
        assert!(cases.len() >= 40, "{}: too few cases", path.display());
        let mut positioned = 0;
        for case in cases {
            match (&case.valid, Filter::parse(&case.filter)) {
                (Some((canonical, _)), Ok(f)) => assert_eq!(&f.to_string(), canonical),
                (None, Err(e)) => {
                    if let Some(at) = case.error_at {
                        assert_eq!((e.line(), e.column()), at, "{:?}: {e}", case.filter);
                        positioned += 1;
                    }
                }
                (_, r) => panic!("{:?}: {r:?}", case.filter),
            }
        }
        assert!(positioned >= 10, "{}", path.display());
    }
}

#[test]
fn a_bad_regex_is_reported_at_its_opening_quote_with_the_regex_error() {
    let input = "Desk ne 'Crédit'\n  and Desk matches 'F(X'";
    let err = error_of(input);
    assert_eq!((err.line(), err.column(), err.offset()), (2, 20, 37));
    let FilterErrorKind::InvalidRegex { error } = err.kind() else {
        panic!("{err:?}");
    };
    assert!(error.contains("unclosed group"), "{error}");
    assert!(err.message().contains("unclosed group"), "{err}");
    let err = error_of("$Roles matches '.*'");
    assert_eq!(err.kind(), &FilterErrorKind::RolesMatches);
    assert_eq!(err.offset(), 15);
    // Alone, `gold)|(silver` is no regex, though anchored in a group it is.
    let err = error_of("Tier matches 'gold)|(silver'");
    assert!(matches!(err.kind(), FilterErrorKind::InvalidRegex { .. }));
    // The size limit is the server's to set.
    let big = r"Name matches '\\w{30}'";
    let err = error_of(big);
    assert!(err.message().contains("size limit"), "{err}");
    let roomy = Limits::new().with_max_regex_size(1 << 24);
    assert!(Filter::parse_with(big, &roomy).is_ok());
    let tight = Limits::new().with_max_regex_size(64);
    assert!(Filter::parse_with("k matches 'abc'", &Limits::new()).is_ok());
    assert!(Filter::parse_with("k matches '[a-z]{20}'", &tight).is_err());
}

#[test]
fn matches_is_a_keyword_only_where_an_operator_stands() {
    assert_eq!(canonical("not matches 'no'"), r#"not matches "no""#);
    assert_eq!(canonical("has matches"), "has matches");
    assert_eq!(canonical("matches matches'x'"), r#"matches matches "x""#);
    assert_eq!(canonical("k MATCHES\"a\\\\d\""), r#"k matches "a\\d""#);
    let err = error_of("Tier matches");
    assert_eq!(err.offset(), 12);
    assert_eq!(err.message(), "expected a quoted value, found end of input");
    let err = error_of("Tier matchesx 'a'");
    assert!(err.message().contains("`matches`"), "{err}");
}

fn error_of(input: &str) -> FilterError {
    let err = Filter::parse(input).expect_err(input);
    assert_well_placed(input, &err);
    err
}

fn canonical(input: &str) -> String {
    Filter::parse(input)
        .unwrap_or_else(|e| panic!("{input:?}: {e}"))
        .to_string()
}

#[test]
fn keywords_are_ascii_case_insensitive_and_whole_words() {
    assert_eq!(
        canonical("a Eq 'x' AnD b NE 'y' oR NoT HAS c"),
        r#"a is "x" and b ne "y" or not has c"#
    );
    assert_eq!(canonical("HASROLES['r']"), r#"hasRoles ["r"]"#);
    assert_eq!(canonical("x IN{'a' 'b'}"), r#"x in ["a", "b"]"#);
    assert_eq!(canonical("notice is 'x'"), r#"notice is "x""#);
    assert_eq!(canonical("not(all)"), "not all");
    assert_eq!(
        canonical("hasRoles[\"r\"]or all"),
        r#"hasRoles ["r"] or all"#
    );
    // No Unicode case folding: the Kelvin sign is not a `k`, and `ı` is not `i`.
    assert!(Filter::parse("x ıs 'a'").is_err());
    assert_eq!(canonical("has \u{212A}"), "has \u{212A}");
    // A keyword must end at a delimiter.
    assert!(Filter::parse("x is 'a' andy is 'b'").is_err());
    assert!(Filter::parse("allx").is_err());
}

#[test]
fn keys_that_spell_keywords_are_keys() {
    for (input, expected) in [
        ("all is 'x'", r#"all is "x""#),
        ("has has", "has has"),
        ("not is 'y'", r#"not is "y""#),
        ("is is 'y'", r#"is is "y""#),
        ("not is is 'y'", r#"not is is "y""#),
        ("in in ['a']", r#"in in ["a"]"#),
        ("hasRoles in ['a']", r#"hasRoles in ["a"]"#),
        ("has not", "has not"),
        ("not and is 'y'", r#"not and is "y""#),
        ("or is 'x' or and is 'y'", r#"or is "x" or and is "y""#),
        ("not[x] is 'y'", r#"not[x] is "y""#),
        ("a,b in 'x','y'", r#"a,b in ["x", "y"]"#),
    ] {
        assert_eq!(canonical(input), expected, "{input:?}");
    }
}

#[test]
fn values_take_both_quotes_and_backslash_escapes() {
    let f = Filter::parse(
        r#"a is 'it\'s "so"' and b is "\x\\\"" and c is 'line
two'"#,
    )
    .unwrap();
    let values: Vec<String> = f
        .expr()
        .children()
        .iter()
        .map(|e| match e {
            Expr::Is { value, .. } => value.text.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(values, [r#"it's "so""#, "x\\\"", "line\ntwo"]);
    assert_eq!(
        f.to_string(),
        "a is \"it\\'s \\\"so\\\"\" and b is \"x\\\\\\\"\" and c is \"line\ntwo\""
    );
}

/// `not` is taken wherever no clause can be read at its place, before every
/// kind of clause and group; where a key clause can be read, `not` is its key.
#[test]
fn not_negates_every_kind_of_operand() {
    for (input, canonical_form) in [
        ("not x is 'y'", r#"not x is "y""#),
        ("not x in ['y']", r#"not x in ["y"]"#),
        ("not hasRoles ['r']", r#"not hasRoles ["r"]"#),
        ("NOT has not", "not has not"),
        ("not all", "not all"),
        ("not(all)", "not all"),
        ("not not all", "not not all"),
        ("not not is 'y'", r#"not not is "y""#),
        ("not in in ['a']", r#"not in in ["a"]"#),
    ] {
        assert_eq!(canonical(input), canonical_form, "{input:?}");
        assert_eq!(canonical(canonical_form), canonical_form, "{input:?}");
    }
    // No clause on the key `not` can be read, so `not` is taken and `is`
    // is the key of a clause that never comes.
    assert_eq!(
        error_of("not is").to_string(),
        "1:7: expected `is`, `eq`, `ne`, `matches` or `in`, found end of input"
    );
}

/// `key (is | eq | ne) value` and `key in list` share one grammar rule that
/// reads the key once: each operator still gives its own clause, spanning
/// from the key to the end of the value or list, and round-trips.
#[test]
fn key_clauses_share_the_key_and_keep_their_operator() {
    for (input, canonical_form) in [
        ("k is 'v'", r#"k is "v""#),
        ("k EQ 'v'", r#"k is "v""#),
        ("k ne 'v'", r#"k ne "v""#),
        ("k in 'v'", r#"k in ["v"]"#),
        ("k IN ['v' 'w']", r#"k in ["v", "w"]"#),
        ("in in{'v'}", r#"in in ["v"]"#),
        ("ne ne'v'", r#"ne ne "v""#),
    ] {
        let f = Filter::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(f.to_string(), canonical_form, "{input:?}");
        assert_eq!(
            f.expr().span(),
            Span::new(0, input.len() as u32),
            "{input:?}"
        );
        assert_eq!(Filter::parse(canonical_form), Ok(f), "{input:?}");
    }
}

/// The grammar reads the plain characters of a key or a value as one run
/// (a `skip_until`), and escapes between runs: escapes at either end, in a
/// row, before a multi-byte character, and long runs all round-trip.
#[test]
fn keys_and_values_read_as_runs_round_trip() {
    let long = "ab東".repeat(700);
    let values = [
        "",
        "\\",
        "\\\\",
        "\\x",
        "x\\",
        "\\\"\\'",
        "a\\\\b",
        "\\é東",
        "(not) [a, b]",
        "line\nbreak",
        long.as_str(),
    ];
    for key in ["k", "東京", "not[x]", "a,b", "\\", "é\u{0}", long.as_str()] {
        for text in values {
            let f = Filter::from(Expr::is(key, text));
            let printed = f.to_string();
            let parsed = Filter::parse(&printed).unwrap_or_else(|e| panic!("{printed:?}: {e}"));
            assert_eq!(parsed, f, "{printed:?}");
            let single = format!("{key} is '{}'", session_filter::escape(text));
            assert_eq!(Filter::parse(&single), Ok(f), "{single:?}");
        }
    }
}

#[test]
fn lists_take_commas_or_whitespace_and_matching_brackets() {
    for ok in [
        "x in ['a','b']",
        "x in ['a' 'b']",
        "x in {'a', 'b'}",
        "x in 'a''b'",
        "x in\t[\n'a'\r\n,'b' ]",
    ] {
        assert_eq!(canonical(ok), r#"x in ["a", "b"]"#, "{ok:?}");
    }
    for bad in [
        "x in ['a','b'}",
        "x in {'a'] ",
        "x in [,'a']",
        "x in ['a',,'b']",
        "x in ['a',]",
        "x in []",
        "x in [",
        "hasRoles ,'a'",
        "hasRoles",
    ] {
        error_of(bad);
    }
}

#[test]
fn errors_name_what_was_expected_and_found() {
    let e = error_of("Department is \"Accounts\" &&  Status is \"Open\"");
    assert_eq!(
        e.to_string(),
        "1:26: expected `and`, `or` or end of input, found `&&`"
    );
    let e = error_of("Department");
    assert_eq!(
        e.to_string(),
        "1:11: expected `is`, `eq`, `ne`, `matches` or `in`, found end of input"
    );
    let e = error_of("a is 'x' and\n  (b is 'y'");
    assert_eq!((e.line(), e.column()), (2, 12));
    assert_eq!(e.render(), "  (b is 'y'\n           ^");
    let e = error_of("x is 'abc");
    assert_eq!(
        e.kind(),
        &FilterErrorKind::UnterminatedValue { quote: '\'' }
    );
    assert_eq!(e.offset(), 5);
    let e = error_of("x is \"abc\\");
    assert_eq!(e.kind(), &FilterErrorKind::TrailingBackslash);
    assert_eq!(e.kind(), error_of("x in ['a', \"\\").kind());
    assert_eq!(error_of("   \n\t").kind(), &FilterErrorKind::Empty);
}

#[test]
fn roles_values_are_checked_at_their_opening_quote() {
    for (input, offset) in [
        ("$Roles is 'admin'", 10),
        ("$Roles eq '\"a' and all", 10),
        ("$Roles ne 'x\"y\"'", 10),
        ("all and $Roles in ['\"a\"', \"'b\", 'c']", 26),
    ] {
        let e = error_of(input);
        assert_eq!(e.offset(), offset, "{input:?}: {e}");
        assert!(
            matches!(e.kind(), FilterErrorKind::InvalidRoles { .. }),
            "{e}"
        );
    }
    // `hasRoles` takes role names, not roles strings; other keys are not checked.
    assert!(Filter::parse("hasRoles ['admin'] and $Role is 'admin'").is_ok());
    assert!(Filter::parse("$Roles is '[\"a\", \\'b\\']'").is_ok());
}

fn nested_parens(n: usize) -> String {
    format!("{}all{}", "(".repeat(n), ")".repeat(n))
}

#[test]
fn depth_limit_counts_parentheses_and_nots() {
    let limit = Limits::DEFAULT_MAX_DEPTH;
    assert!(Filter::parse(&nested_parens(limit)).is_ok());
    let e = error_of(&nested_parens(limit + 1));
    assert_eq!(e.kind(), &FilterErrorKind::TooDeep { max: limit });
    assert_eq!(e.offset(), limit);
    assert!(e.to_string().contains("nesting depth limit"), "{e}");

    let nots = |n: usize| format!("{}has x", "not ".repeat(n));
    assert!(Filter::parse(&nots(limit)).is_ok());
    assert_eq!(
        error_of(&nots(limit + 1)).kind(),
        &FilterErrorKind::TooDeep { max: limit }
    );

    let mixed = |n: usize| format!("{}all{}", "not (".repeat(n), ")".repeat(n));
    assert!(Filter::parse(&mixed(limit / 2)).is_ok());
    assert!(Filter::parse(&mixed(limit / 2 + 1)).is_err());
    // A `not` before a key spelled `in[` counts (found by fuzzing).
    let zero = Limits::new().with_max_depth(0);
    assert!(Filter::parse_with("not in[ ne\"\"", &zero).is_err());
    assert!(Filter::parse_with("not in[ ne\"\"", &Limits::new().with_max_depth(1)).is_ok());
    let hidden = format!("{}not in[x is 'y'", "not ".repeat(limit));
    assert_eq!(
        error_of(&hidden).kind(),
        &FilterErrorKind::TooDeep { max: limit }
    );
    // Keys spelled `not` do not count.
    let keyed = format!("{}not is 'x'{}", "(".repeat(limit), ")".repeat(limit));
    assert!(Filter::parse(&keyed).is_ok());
}

#[test]
fn hostile_nesting_fails_fast_with_a_positioned_error() {
    for input in [
        "(".repeat(60_000),
        nested_parens(60_000),
        format!("{}all", "not ".repeat(30_000)),
        format!("{}all", "not(".repeat(15_000)),
        "not ".repeat(30_000),
    ] {
        // Within the default length limit or not, the depth check fires.
        let e = error_of(&input);
        assert!(matches!(e.kind(), FilterErrorKind::TooDeep { .. }), "{e}");
        let roomy = Limits::new().with_max_len(1 << 20);
        let e = Filter::parse_with(&input, &roomy).unwrap_err();
        assert!(matches!(e.kind(), FilterErrorKind::TooDeep { .. }), "{e}");
    }
}

#[test]
fn filters_at_the_depth_ceiling_parse_on_a_2_mib_thread() {
    let ceiling = Limits::MAX_DEPTH_CEILING;
    let limits = Limits::new().with_max_depth(usize::MAX);
    assert_eq!(limits.max_depth(), ceiling);
    let handle = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let f =
                Filter::parse_with(&nested_parens(ceiling), &limits).map_err(|e| e.to_string())?;
            let g = Filter::parse_with(
                &format!(
                    "{}x is 'y'{}",
                    "not (".repeat(ceiling / 2),
                    ")".repeat(ceiling / 2)
                ),
                &limits,
            )
            .map_err(|e| e.to_string())?;
            let too_deep = Filter::parse_with(&nested_parens(ceiling + 1), &limits);
            Ok::<_, String>((f.to_string(), g.expr().depth(), too_deep.is_err()))
        })
        .expect("spawn");
    let (printed, depth, rejected) = handle.join().expect("no stack overflow").expect("parses");
    assert_eq!(printed, "all");
    assert_eq!(depth, Limits::MAX_DEPTH_CEILING / 2 + 1);
    assert!(rejected);
}

#[test]
fn deep_filters_parse_on_a_small_thread() {
    // The parser needs more than this for 256 levels in a debug build; it
    // sees that the thread is short of stack and moves to a fresh one.
    let handle = std::thread::Builder::new()
        .stack_size(128 * 1024)
        .spawn(|| {
            let f = Filter::parse(&nested_parens(Limits::DEFAULT_MAX_DEPTH));
            f.map(|f| f.to_string()).map_err(|e| e.to_string())
        })
        .expect("spawn");
    let printed = handle.join().expect("no stack overflow");
    assert_eq!(printed.as_deref(), Ok("all"));
}

#[test]
fn length_and_item_limits_name_themselves() {
    let long = format!("x is '{}'", "a".repeat(100_000));
    let e = error_of(&long);
    assert_eq!(
        e.kind(),
        &FilterErrorKind::TooLong {
            len: long.len(),
            max: Limits::DEFAULT_MAX_LEN
        }
    );
    assert!(e.to_string().contains("length limit"));
    assert!(Filter::parse_with(&long, &Limits::new().with_max_len(200_000)).is_ok());

    let list = |n: usize| {
        let items: Vec<String> = (0..n).map(|i| format!("'{i}'")).collect();
        format!("x in [{}]", items.join(","))
    };
    let limit = Limits::DEFAULT_MAX_ITEMS;
    let roomy = Limits::new().with_max_len(1 << 20);
    assert!(Filter::parse_with(&list(limit), &roomy).is_ok());
    let input = list(limit + 1);
    let e = Filter::parse_with(&input, &roomy).unwrap_err();
    assert_well_placed(&input, &e);
    assert_eq!(e.kind(), &FilterErrorKind::TooManyItems { max: limit });
    assert_eq!(&input[e.offset()..], format!("'{limit}']"));
    let small = Limits::new().with_max_items(2);
    assert!(Filter::parse_with("hasRoles ['a' 'b']", &small).is_ok());
    assert!(Filter::parse_with("hasRoles ['a' 'b' 'c']", &small).is_err());
}

#[test]
fn odd_bytes_get_clean_errors_or_parse_as_keys() {
    assert_eq!(canonical("x is '\0'"), "x is \"\0\"");
    assert_eq!(canonical("\0 is 'x'"), "\0 is \"x\"");
    for input in [
        "\0",
        "\\",
        "x is \\",
        "x is '\\",
        "\\'",
        "'",
        "\"",
        ")",
        "(",
        "[",
        "]]",
        "\u{feff}all",
    ] {
        error_of(input);
    }
}

#[test]
fn spans_point_into_the_source() {
    let src = "not (a is 'x' or has b) and hasRoles ['r']";
    let f = Filter::parse(src).unwrap();
    let Expr::And { exprs, span } = f.expr() else {
        panic!("{:?}", f.expr())
    };
    assert_eq!(*span, Span::new(0, src.len() as u32));
    let slice = |s: Span| &src[s.start as usize..s.end as usize];
    assert_eq!(slice(exprs[0].span()), "not (a is 'x' or has b)");
    assert_eq!(slice(exprs[1].span()), "hasRoles ['r']");
    let Expr::Not { expr, .. } = &exprs[0] else {
        panic!()
    };
    assert_eq!(slice(expr.span()), "a is 'x' or has b");
    let Expr::Or { exprs: inner, .. } = &**expr else {
        panic!()
    };
    let Expr::Is { key, value, .. } = &inner[0] else {
        panic!()
    };
    assert_eq!((slice(key.span), slice(value.span)), ("a", "'x'"));
}

// --- Property tests -------------------------------------------------------

/// Keys the grammar can read, weighted towards the awkward ones.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "$Principal",
            "$Country",
            "$Roles",
            "Department",
            "not",
            "is",
            "eq",
            "ne",
            "in",
            "has",
            "hasRoles",
            "all",
            "and",
            "or",
            "NOT",
            "not[x]",
            "[x]",
            "{y}",
            "a,b",
            "in[",
            "東京",
            "k\u{0}",
        ])
        .prop_map(String::from),
        "[^ \t\r\n\"'()]{1,8}",
    ]
}

/// Any text, weighted towards quotes, backslashes and newlines.
fn text() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z\"'\\\\ \n,é😀\u{0}]{0,6}", any::<String>(),]
}

fn roles_value() -> impl Strategy<Value = String> {
    prop::collection::vec(text(), 0..4).prop_map(roles_to_string)
}

fn clause() -> impl Strategy<Value = Expr> {
    // `$Roles` compared by is/ne/in needs a roles string: it has its own arms.
    let plain_key = || key().prop_filter("not $Roles", |k| k != "$Roles");
    prop_oneof![
        Just(Expr::all()),
        (plain_key(), text()).prop_map(|(k, v)| Expr::is(k, v)),
        (plain_key(), text()).prop_map(|(k, v)| Expr::ne(k, v)),
        (plain_key(), prop::collection::vec(text(), 1..4)).prop_map(|(k, v)| Expr::is_in(k, v)),
        roles_value().prop_map(|v| Expr::is("$Roles", v)),
        roles_value().prop_map(|v| Expr::ne("$Roles", v)),
        prop::collection::vec(roles_value(), 1..3).prop_map(|v| Expr::is_in("$Roles", v)),
        key().prop_map(Expr::has),
        prop::collection::vec(text(), 1..4).prop_map(Expr::has_roles),
    ]
}

/// Normalised filters: the constructors flatten `and`/`or`.
pub fn expr() -> impl Strategy<Value = Expr> {
    clause().prop_recursive(5, 48, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(Expr::not),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::and),
            prop::collection::vec(inner, 2..4).prop_map(Expr::or),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn display_parses_back_to_the_same_filter(e in expr()) {
        let f = Filter::from(e);
        let printed = f.to_string();
        let parsed = Filter::parse_with(&printed, &Limits::new().with_max_len(1 << 20))
            .map_err(|err| TestCaseError::fail(format!("{printed:?}: {err}")))?;
        prop_assert_eq!(&parsed, &f, "{:?}", printed);
        prop_assert_eq!(parsed.to_string(), printed);
    }

    #[test]
    fn arbitrary_text_never_panics_and_errors_are_placed(s in "[ -~\t\n\r\0é東(){}\\[\\]'\"\\\\]{0,40}") {
        match Filter::parse(&s) {
            Ok(f) => {
                let again = Filter::parse(&f.to_string());
                prop_assert_eq!(again, Ok(f));
            }
            Err(e) => assert_well_placed(&s, &e),
        }
    }

    #[test]
    fn token_soup_never_panics(tokens in prop::collection::vec(prop::sample::select(vec![
        "not", "and", "or", "(", ")", "is", "eq", "ne", "in", "has", "hasRoles", "all", "x",
        "'v'", "\"w\"", "[", "]", "{", "}", ",", "$Roles", "'\"r\"'", "\\", "'",
    ]), 0..24), seps in prop::collection::vec(prop::sample::select(vec!["", " ", "\n"]), 24)) {
        let s: String = tokens.iter().zip(&seps).map(|(t, sep)| format!("{t}{sep}")).collect();
        match Filter::parse(&s) {
            Ok(f) => {
                let again = Filter::parse(&f.to_string());
                prop_assert_eq!(again, Ok(f));
            }
            Err(e) => assert_well_placed(&s, &e),
        }
    }
}
