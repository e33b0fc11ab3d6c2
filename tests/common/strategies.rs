//! Proptest strategies shared by the differential, store and index tests:
//! filters and sessions over a small vocabulary so that they meet often,
//! with the awkward cases (quotes, backslashes, unicode, empty strings,
//! absent properties, `$Roles` edge cases) well represented.

use proptest::prelude::*;
use session_filter::roles_to_string;
use session_filter::syntax::Expr;

/// A small vocabulary so that generated filters and sessions meet often.
pub fn key() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "$Country",
        "$Principal",
        "$Version",
        "Department",
        "k",
        "not",
        "all",
        "x[y]",
        "東京",
    ])
    .prop_map(String::from)
}

pub fn value() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "", "UK", "DE", "a'b", "a\"b", "\\", "é", "UK ", "\n", "v",
    ])
    .prop_map(String::from)
}

pub fn role() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["", "admin", "client", "a,b", "q\"", "q'", "\\", "r r"])
        .prop_map(String::from)
}

pub fn role_set() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(role(), 0..4)
}

/// Regular expressions over the vocabulary: alternations, classes,
/// repetition, flags, escapes, the empty regex.
pub fn regex() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "UK|DE", ".*", "", "[A-Z]{2}", "a'b", "é.?", "(?i)uk", "\\\\", "a\"b|\n", "U", "v+", "\\s*",
    ])
    .prop_map(String::from)
}

pub fn clause() -> impl Strategy<Value = Expr> {
    prop_oneof![
        (key(), regex()).prop_map(|(k, r)| Expr::matches(k, r)),
        Just(Expr::all()),
        (key(), value()).prop_map(|(k, v)| Expr::is(k, v)),
        (key(), value()).prop_map(|(k, v)| Expr::ne(k, v)),
        (key(), prop::collection::vec(value(), 1..4)).prop_map(|(k, v)| Expr::is_in(k, v)),
        key().prop_map(Expr::has),
        Just(Expr::has("$Roles")),
        prop::collection::vec(role(), 1..4).prop_map(Expr::has_roles),
        role_set().prop_map(|r| Expr::is("$Roles", roles_to_string(r))),
        role_set().prop_map(|r| Expr::ne("$Roles", roles_to_string(r))),
        prop::collection::vec(role_set(), 1..3)
            .prop_map(|sets| Expr::is_in("$Roles", sets.into_iter().map(roles_to_string))),
    ]
}

pub fn expr() -> impl Strategy<Value = Expr> {
    clause().prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(Expr::not),
            prop::collection::vec(inner.clone(), 2..5).prop_map(Expr::and),
            prop::collection::vec(inner, 2..5).prop_map(Expr::or),
        ]
    })
}

pub fn session() -> impl Strategy<Value = Vec<(String, String)>> {
    (
        prop::collection::btree_map(
            key().prop_filter("roles apart", |k| k != "$Roles"),
            value(),
            0..6,
        ),
        prop::option::of(role_set()),
    )
        .prop_map(|(props, roles)| {
            let mut props: Vec<(String, String)> = props.into_iter().collect();
            if let Some(r) = roles {
                props.push(("$Roles".into(), roles_to_string(r)));
            }
            props
        })
}
