//! SPEC section 10, `watch FILTERS [EVENTS|-] [--first-match|--counts]`:
//! the command driven as a black box, and checked against a model that
//! evaluates every filter on every session before and after each event.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Output;

use proptest::prelude::*;
use serde_json::{json, Value as Json};
use session_filter::syntax::Expr;
use session_filter::{roles_to_string, Program, Session};
use support::{run, temp_lines, text};

mod support;

/// A file in the test's temporary directory holding these lines.
fn file(lines: &[String]) -> PathBuf {
    temp_lines("watch", lines)
}

fn lines(values: &[Json]) -> Vec<String> {
    values.iter().map(Json::to_string).collect()
}

/// Runs `watch` on these filters and events (the events from a file) and
/// returns the output; `extra` are more arguments (`--counts`, …).
fn watch(filters: &[Json], events: &[Json], extra: &[&str]) -> Output {
    let filters = file(&lines(filters));
    let events = file(&lines(events));
    let mut args = vec!["watch", filters.to_str().unwrap(), events.to_str().unwrap()];
    args.extend_from_slice(extra);
    run(&args, None)
}

fn ok(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    text(&out.stdout)
}

/// Asserts exit code 2 with a message naming the line, and returns stdout.
fn invalid(out: &Output, line: &str) -> String {
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = text(&out.stderr);
    assert!(err.starts_with(&format!("error: {line}: ")), "{err}");
    text(&out.stdout)
}

fn filter(id: impl Into<Json>, text: &str) -> Json {
    json!({"id": id.into(), "filter": text})
}

fn open(id: &str, props: Json) -> Json {
    let mut props = props;
    props["$SessionId"] = json!(id);
    json!({"op": "open", "properties": props})
}

#[test]
fn opens_and_closes_by_id_and_by_where() {
    let filters = [
        filter("ops", "Department is 'Ops'"),
        filter("uk", "$Country is 'UK'"),
    ];
    let events = [
        open("a", json!({"Department": "Ops"})),
        open("b", json!({"Department": "Ops", "$Country": "UK"})),
        open("c", json!({"Department": "Sales"})),
        json!({"op": "close", "id": "a"}),
        json!({"op": "close", "where": "$Country is 'UK' or Department is 'Sales'"}),
    ];
    let expected = "\
{\"line\":1,\"session\":\"a\",\"filter\":\"ops\",\"event\":\"entered\"}
{\"line\":2,\"session\":\"b\",\"filter\":\"ops\",\"event\":\"entered\"}
{\"line\":2,\"session\":\"b\",\"filter\":\"uk\",\"event\":\"entered\"}
{\"line\":4,\"session\":\"a\",\"filter\":\"ops\",\"event\":\"left\"}
{\"line\":5,\"session\":\"b\",\"filter\":\"ops\",\"event\":\"left\"}
{\"line\":5,\"session\":\"b\",\"filter\":\"uk\",\"event\":\"left\"}
";
    assert_eq!(ok(&watch(&filters, &events, &[])), expected);
}

#[test]
fn role_changes_and_property_sets_and_removals() {
    let filters = [
        filter("admins", "hasRoles ['admin']"),
        filter("tier", "Tier in ['gold', 'silver']"),
    ];
    let events = [
        open("a", json!({"$Roles": ["client"]})),
        // By id: add, then remove (either list may be absent).
        json!({"op": "roles", "id": "a", "add": ["admin"]}),
        json!({"op": "roles", "id": "a", "remove": ["admin", "client"]}),
        // By filter, matching sessions without $Roles too.
        open("b", json!({})),
        json!({"op": "roles", "where": "all", "remove": ["x"], "add": ["admin"]}),
        // Properties: a set enters, a change within the filter is no
        // membership change, null removes.
        json!({"op": "set", "id": "b", "properties": {"Tier": "gold"}}),
        json!({"op": "set", "id": "b", "properties": {"Tier": "silver", "Other": "1"}}),
        json!({"op": "set", "where": "all", "properties": {"Tier": null}}),
        // Removing an absent key changes nothing.
        json!({"op": "set", "id": "a", "properties": {"Tier": null}}),
    ];
    let expected = "\
{\"line\":2,\"session\":\"a\",\"filter\":\"admins\",\"event\":\"entered\"}
{\"line\":3,\"session\":\"a\",\"filter\":\"admins\",\"event\":\"left\"}
{\"line\":5,\"session\":\"a\",\"filter\":\"admins\",\"event\":\"entered\"}
{\"line\":5,\"session\":\"b\",\"filter\":\"admins\",\"event\":\"entered\"}
{\"line\":6,\"session\":\"b\",\"filter\":\"tier\",\"event\":\"entered\"}
{\"line\":8,\"session\":\"b\",\"filter\":\"tier\",\"event\":\"left\"}
";
    assert_eq!(ok(&watch(&filters, &events, &[])), expected);
}

#[test]
fn one_line_sorts_by_session_id_bytes_then_set_order() {
    // Set order is not the order of the ids; session ids sort as bytes
    // ("B" < "a" < "b" < "é").
    let filters = [
        filter("z", "k is 'v'"),
        filter("y", "not k is 'v'"),
        filter(7, "all"),
    ];
    let mut events = Vec::new();
    for id in ["é", "b", "B", "a"] {
        events.push(open(id, json!({"k": "v"})));
    }
    // One line flips every session out of `z` and into `y`.
    events.push(json!({"op": "set", "where": "all", "properties": {"k": "w"}}));
    events.push(json!({"op": "close", "where": "all"}));
    let out = ok(&watch(&filters, &events, &[]));
    let got: Vec<(u64, String, Json, String)> = out
        .lines()
        .map(|l| {
            let v: Json = serde_json::from_str(l).unwrap();
            (
                v["line"].as_u64().unwrap(),
                v["session"].as_str().unwrap().to_owned(),
                v["filter"].clone(),
                v["event"].as_str().unwrap().to_owned(),
            )
        })
        .filter(|(line, ..)| *line >= 5)
        .collect();
    let mut expected = Vec::new();
    for id in ["B", "a", "b", "é"] {
        expected.push((5, id.to_owned(), json!("z"), "left".to_owned()));
        expected.push((5, id.to_owned(), json!("y"), "entered".to_owned()));
    }
    for id in ["B", "a", "b", "é"] {
        expected.push((6, id.to_owned(), json!("y"), "left".to_owned()));
        expected.push((6, id.to_owned(), json!(7), "left".to_owned()));
    }
    assert_eq!(got, expected);
    // Integer ids are printed as given.
    assert!(out.contains("\"filter\":7,"), "{out}");
}

#[test]
fn first_match_follows_set_order_and_ends_in_null() {
    let filters = [
        filter("vip", "Tier is 'gold'"),
        filter("ops", "Department is 'Ops'"),
        filter("rest", "all"),
    ];
    let events = [
        open("a", json!({"Department": "Ops"})),
        // Entering a later filter does not change the first match.
        open("b", json!({"Tier": "gold", "Department": "Ops"})),
        json!({"op": "set", "id": "a", "properties": {"Tier": "gold"}}),
        json!({"op": "set", "where": "all", "properties": {"Department": null}}),
        json!({"op": "set", "where": "all", "properties": {"Tier": null}}),
        json!({"op": "close", "id": "b"}),
        json!({"op": "close", "where": "all"}),
    ];
    let expected = "\
{\"line\":1,\"session\":\"a\",\"first\":\"ops\"}
{\"line\":2,\"session\":\"b\",\"first\":\"vip\"}
{\"line\":3,\"session\":\"a\",\"first\":\"vip\"}
{\"line\":5,\"session\":\"a\",\"first\":\"rest\"}
{\"line\":5,\"session\":\"b\",\"first\":\"rest\"}
{\"line\":6,\"session\":\"b\",\"first\":null}
{\"line\":7,\"session\":\"a\",\"first\":null}
";
    assert_eq!(ok(&watch(&filters, &events, &["--first-match"])), expected);

    // A session that matches nothing has no first match to report.
    let filters = [filter("ops", "Department is 'Ops'")];
    let events = [open("a", json!({})), json!({"op": "close", "id": "a"})];
    assert_eq!(ok(&watch(&filters, &events, &["--first-match"])), "");
}

#[test]
fn counts_print_one_object_in_set_order() {
    let filters = [
        filter("z", "k is 'v'"),
        filter(2, "all"),
        filter("a", "none is 'here'"),
    ];
    let events = [
        open("a", json!({"k": "v"})),
        open("b", json!({"k": "v"})),
        open("c", json!({})),
        json!({"op": "close", "id": "b"}),
    ];
    assert_eq!(
        ok(&watch(&filters, &events, &["--counts"])),
        "{\"z\":1,\"2\":2,\"a\":0}\n"
    );
    assert_eq!(ok(&watch(&[], &events, &["--counts"])), "{}\n");
    assert_eq!(ok(&watch(&[], &events, &[])), "");
    let out = watch(&filters, &events, &["--counts", "--first-match"]);
    assert_eq!(out.status.code(), Some(2), "the modes exclude each other");
}

#[test]
fn events_come_from_stdin_and_blank_lines_are_skipped() {
    let filters = file(&lines(&[filter("all", "all")]));
    let filters = filters.to_str().unwrap();
    let events = "\n{\"op\":\"open\",\"properties\":{\"$SessionId\":\"a\"}}\r\n  \n\
                  {\"op\":\"close\",\"id\":\"a\"}";
    let expected = "\
{\"line\":2,\"session\":\"a\",\"filter\":\"all\",\"event\":\"entered\"}
{\"line\":4,\"session\":\"a\",\"filter\":\"all\",\"event\":\"left\"}
";
    for args in [vec!["watch", filters], vec!["watch", filters, "-"]] {
        assert_eq!(ok(&run(&args, Some(events.as_bytes()))), expected);
    }
    // Filters from stdin, with a blank line; not both from stdin.
    let events = file(&lines(&[open("a", json!({}))]));
    let out = run(
        &["watch", "-", events.to_str().unwrap()],
        Some(b"\n{\"id\":\"all\",\"filter\":\"all\"}\n"),
    );
    assert_eq!(
        ok(&out),
        "{\"line\":1,\"session\":\"a\",\"filter\":\"all\",\"event\":\"entered\"}\n"
    );
    let out = run(&["watch", "-", "-"], None);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn bad_filter_lines_are_reported_with_their_line_number() {
    let events = [open("a", json!({}))];
    // A bad filter is reported as `check` reports it, after the line.
    let out = watch(&[filter("a", "all"), filter("b", "k is")], &events, &[]);
    assert_eq!(invalid(&out, "filters line 2"), "");
    let err = text(&out.stderr);
    assert!(
        err.starts_with("error: filters line 2: 1:5: expected "),
        "{err}"
    );
    assert!(err.trim_end().ends_with('^'), "{err}");

    let out = watch(
        &[
            filter("a", "all"),
            filter("b", "all"),
            filter("a", "k is 'v'"),
        ],
        &events,
        &[],
    );
    invalid(&out, "filters line 3");
    assert!(
        text(&out.stderr).contains("already used on line 1"),
        "{out:?}"
    );
    // `1` and `"1"` are the same id (they are the same key in --counts).
    invalid(
        &watch(&[filter(1, "all"), filter("1", "all")], &events, &[]),
        "filters line 2",
    );

    for bad in [
        json!({"id": "a"}),
        json!({"filter": "all"}),
        json!({"id": 1.5, "filter": "all"}),
        json!({"id": null, "filter": "all"}),
        json!({"id": "a", "filter": "all", "extra": 1}),
        json!(["a", "all"]),
    ] {
        invalid(&watch(&[bad], &events, &[]), "filters line 1");
    }
    let filters = file(&["{\"id\":\"a\",\"filter\":\"all\"".into()]);
    let out = run(&["watch", filters.to_str().unwrap(), "-"], None);
    invalid(&out, "filters line 1");
    // A missing file is an I/O failure.
    let out = run(&["watch", "/nonexistent/filters.jsonl", "-"], None);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

#[test]
fn bad_event_lines_are_reported_with_their_line_number_after_earlier_output() {
    let filters = [filter("all", "all")];
    let good = [
        open("a", json!({})),
        json!({"op": "roles", "id": "a", "add": ["x"]}),
    ];
    let printed = "{\"line\":1,\"session\":\"a\",\"filter\":\"all\",\"event\":\"entered\"}\n";
    let cases: Vec<(Json, &str)> = vec![
        (json!({"op": "close", "id": "nobody"}), "nobody"),
        (
            json!({"op": "set", "id": "nobody", "properties": {"k": "v"}}),
            "nobody",
        ),
        (
            json!({"op": "roles", "id": "nobody", "add": ["x"]}),
            "nobody",
        ),
        (open("a", json!({})), "already exists"),
        (
            json!({"op": "open", "properties": {"k": "v"}}),
            "$SessionId",
        ),
        (
            json!({"op": "close", "id": "a", "where": "all"}),
            "not both",
        ),
        (json!({"op": "close"}), "needs"),
        (json!({"op": "close", "where": "k is"}), "expected "),
        (
            json!({"op": "open", "properties": {"$SessionId": "b", "k": 1}}),
            "string",
        ),
        (
            json!({"op": "open", "properties": {"$SessionId": "b", "k": null}}),
            "string",
        ),
        (
            json!({"op": "open", "properties": {"$SessionId": "b", "k k": "v"}}),
            "",
        ),
        (
            json!({"op": "set", "id": "a", "properties": {"$Roles": "'x'"}}),
            "$Roles",
        ),
        (
            json!({"op": "set", "id": "a", "properties": {"k": ["v"]}}),
            "string",
        ),
        (json!({"op": "set", "id": "a"}), "properties"),
        (json!({"op": "open", "id": "a", "properties": {}}), "\"id\""),
        (json!({"op": "fly", "id": "a"}), "unknown op"),
        (json!({"id": "a"}), "op"),
        (json!({"op": "close", "id": "a", "colour": "red"}), "colour"),
        (json!({"op": "roles", "id": "a", "add": "x"}), ""),
        (json!("close"), ""),
    ];
    for (bad, needle) in cases {
        let mut events = good.to_vec();
        events.push(bad.clone());
        events.push(json!({"op": "close", "id": "a"}));
        let out = watch(&filters, &events, &[]);
        assert_eq!(invalid(&out, "events line 3"), printed, "{bad}");
        assert!(text(&out.stderr).contains(needle), "{bad}: {out:?}");
    }
    // Text that is not JSON, and a duplicate key.
    for bad in [
        "{\"op\":\"close\",\"id\":",
        "{\"op\":\"close\",\"id\":\"a\",\"id\":\"a\"}",
        "{\"op\":\"set\",\"id\":\"a\",\"properties\":{\"k\":\"v\",\"k\":null}}",
        "not json",
    ] {
        let mut events = lines(&good);
        events.push(bad.into());
        let filters = file(&lines(&filters));
        let out = run(
            &["watch", filters.to_str().unwrap()],
            Some(events.join("\n").as_bytes()),
        );
        assert_eq!(invalid(&out, "events line 3"), printed, "{bad}");
    }
    // With --counts nothing is printed before the end.
    let mut events = good.to_vec();
    events.push(json!({"op": "close", "id": "nobody"}));
    let out = watch(&filters, &events, &["--counts"]);
    assert_eq!(invalid(&out, "events line 3"), "");
}

#[test]
fn a_bulk_change_larger_than_any_default_queue_is_reported_in_full() {
    let filters = [filter("x", "hasRoles ['x']"), filter("all", "all")];
    let n = 5000;
    let mut events: Vec<Json> = (0..n)
        .map(|i| open(&format!("s{i:05}"), json!({})))
        .collect();
    events.push(json!({"op": "roles", "where": "all", "add": ["x"]}));
    events.push(json!({"op": "close", "where": "hasRoles ['x']"}));
    let out = ok(&watch(&filters, &events, &[]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), n + n + 2 * n);
    assert_eq!(
        lines[n],
        "{\"line\":5001,\"session\":\"s00000\",\"filter\":\"x\",\"event\":\"entered\"}"
    );
    assert_eq!(
        lines[lines.len() - 1],
        "{\"line\":5002,\"session\":\"s04999\",\"filter\":\"all\",\"event\":\"left\"}"
    );
    let out = ok(&watch(&filters, &events[..=n], &["--counts"]));
    assert_eq!(out, format!("{{\"x\":{n},\"all\":{n}}}\n"));
}

// The differential test: random filters and event logs, the CLI against a
// model that evaluates every filter on every session around every event.

/// A session in the model: its properties and, when it has them, its roles.
#[derive(Clone, Debug, Default)]
struct ModelSession {
    props: BTreeMap<String, String>,
    roles: Option<BTreeSet<String>>,
}

impl ModelSession {
    fn session(&self, id: &str) -> Session {
        let mut pairs: Vec<(String, String)> = self.props.clone().into_iter().collect();
        pairs.push(("$SessionId".into(), id.into()));
        if let Some(roles) = &self.roles {
            pairs.push(("$Roles".into(), roles_to_string(roles)));
        }
        Session::new(pairs).expect("a valid model session")
    }
}

#[derive(Default)]
struct Model {
    programs: Vec<Program>,
    sessions: BTreeMap<String, ModelSession>,
}

impl Model {
    fn matching(&self) -> BTreeMap<String, BTreeSet<usize>> {
        self.sessions
            .iter()
            .map(|(id, s)| {
                let session = s.session(id);
                let positions = self
                    .programs
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.matches(&session))
                    .map(|(i, _)| i)
                    .collect();
                (id.clone(), positions)
            })
            .collect()
    }

    /// The ids an event's target names.
    fn targets(&self, target: &Target) -> Vec<String> {
        match target {
            Target::Id(id) => vec![id.clone()],
            Target::Where(filter) => {
                let program = Program::compile(filter).expect("a valid filter");
                self.sessions
                    .iter()
                    .filter(|(id, s)| program.matches(&s.session(id)))
                    .map(|(id, _)| id.clone())
                    .collect()
            }
        }
    }

    fn apply(&mut self, event: &ModelEvent) {
        match event {
            ModelEvent::Open(id, session) => {
                self.sessions.insert(id.clone(), session.clone());
            }
            ModelEvent::Set(target, change) => {
                for id in self.targets(target) {
                    let s = self.sessions.get_mut(&id).expect("an open session");
                    for (k, v) in change {
                        match v {
                            Some(v) => s.props.insert(k.clone(), normalised(k, v)),
                            None => s.props.remove(k),
                        };
                    }
                }
            }
            ModelEvent::Roles(target, remove, add) => {
                for id in self.targets(target) {
                    let s = self.sessions.get_mut(&id).expect("an open session");
                    let roles = s.roles.get_or_insert_with(BTreeSet::new);
                    for r in remove {
                        roles.remove(r);
                    }
                    roles.extend(add.iter().cloned());
                }
            }
            ModelEvent::Close(target) => {
                for id in self.targets(target) {
                    self.sessions.remove(&id);
                }
            }
        }
    }
}

/// A value as SPEC 6.1 stores it.
fn normalised(key: &str, value: &str) -> String {
    match key {
        "$Country" => value.to_ascii_uppercase(),
        "$Language" => value.to_ascii_lowercase(),
        "$Latitude" | "$Longitude" if is_decimal(value) => value.to_owned(),
        "$Latitude" | "$Longitude" => "NaN".to_owned(),
        _ => value.to_owned(),
    }
}

/// `[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?`, the whole string.
fn is_decimal(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mantissa_ok = digits(int) && digits(frac) && !(int.is_empty() && frac.is_empty());
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

#[derive(Clone, Debug)]
enum Target {
    Id(String),
    Where(String),
}

#[derive(Clone, Debug)]
enum ModelEvent {
    Open(String, ModelSession),
    Set(Target, Vec<(String, Option<String>)>),
    Roles(Target, Vec<String>, Vec<String>),
    Close(Target),
}

impl ModelEvent {
    fn json(&self) -> Json {
        fn target(t: &Target, mut event: Json) -> Json {
            match t {
                Target::Id(id) => event["id"] = json!(id),
                Target::Where(filter) => event["where"] = json!(filter),
            }
            event
        }
        match self {
            ModelEvent::Open(id, s) => {
                let mut props = json!(s.props);
                props["$SessionId"] = json!(id);
                if let Some(roles) = &s.roles {
                    // Both forms of $Roles, as `select` reads them.
                    props["$Roles"] = if roles.len() % 2 == 0 {
                        json!(roles)
                    } else {
                        json!(roles_to_string(roles))
                    };
                }
                json!({"op": "open", "properties": props})
            }
            ModelEvent::Set(t, change) => {
                let props: serde_json::Map<String, Json> =
                    change.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
                target(t, json!({"op": "set", "properties": props}))
            }
            ModelEvent::Roles(t, remove, add) => {
                let mut event = json!({"op": "roles"});
                // Either list may be absent.
                if !remove.is_empty() {
                    event["remove"] = json!(remove);
                }
                if !add.is_empty() || remove.is_empty() {
                    event["add"] = json!(add);
                }
                target(t, event)
            }
            ModelEvent::Close(t) => target(t, json!({"op": "close"})),
        }
    }
}

/// An event as generated: session ids as indexes into the open sessions,
/// resolved against the model so that every event is valid.
#[derive(Clone, Debug)]
enum RawEvent {
    Open(usize, BTreeMap<String, String>, Option<Vec<String>>),
    Set(RawTarget, BTreeMap<String, Option<String>>),
    Roles(RawTarget, Vec<String>, Vec<String>),
    Close(RawTarget),
}

#[derive(Clone, Debug)]
enum RawTarget {
    Id(usize),
    Where(Expr),
}

const SESSION_IDS: &[&str] = &["s0", "s1", "S2", "é3", "a\"4", "s10", "s2", "t"];

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "Department",
        "k",
        "x[y]",
        "東京",
        "$Country",
        "$Language",
        "$Latitude",
        "$SessionId",
    ])
    .prop_map(String::from)
}

/// Keys a `set` may set: user keys and the fixed keys it normalises.
fn settable_key() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "Department",
        "k",
        "x[y]",
        "東京",
        "$Country",
        "$Language",
        "$Latitude",
    ])
    .prop_map(String::from)
}

/// Keys a `set` may remove.
fn user_key() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["Department", "k", "x[y]", "東京"]).prop_map(String::from)
}

fn value() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "", "UK", "uk", "a'b", "a\"b", "\\", "é", "s1", "EN", "1.5", "NaN",
    ])
    .prop_map(String::from)
}

/// A change for `set`: values for settable keys, removals of user keys.
fn change() -> impl Strategy<Value = BTreeMap<String, Option<String>>> {
    let entry = prop_oneof![
        (settable_key(), value().prop_map(Some)),
        (user_key(), Just(None)),
    ];
    prop::collection::vec(entry, 1..3).prop_map(|entries| entries.into_iter().collect())
}

fn role() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["admin", "client", "a,b", "q\"", ""]).prop_map(String::from)
}

fn expr() -> impl Strategy<Value = Expr> {
    let clause = prop_oneof![
        Just(Expr::all()),
        (key(), value()).prop_map(|(k, v)| Expr::is(k, v)),
        (key(), prop::collection::vec(value(), 1..3)).prop_map(|(k, v)| Expr::is_in(k, v)),
        key().prop_map(Expr::has),
        Just(Expr::has("$Roles")),
        prop::collection::vec(role(), 1..3).prop_map(Expr::has_roles),
    ];
    clause.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(Expr::not),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::and),
            prop::collection::vec(inner, 2..4).prop_map(Expr::or),
        ]
    })
}

fn raw_target() -> impl Strategy<Value = RawTarget> {
    prop_oneof![
        3 => any::<usize>().prop_map(RawTarget::Id),
        1 => expr().prop_map(RawTarget::Where),
    ]
}

fn raw_event() -> impl Strategy<Value = RawEvent> {
    let roles = || prop::collection::vec(role(), 0..3);
    prop_oneof![
        3 => (
            0..SESSION_IDS.len(),
            prop::collection::btree_map(key().prop_filter("no id", |k| k != "$SessionId"), value(), 0..4),
            prop::option::of(roles()),
        )
            .prop_map(|(i, props, roles)| RawEvent::Open(i, props, roles)),
        3 => (raw_target(), change()).prop_map(|(t, change)| RawEvent::Set(t, change)),
        2 => (raw_target(), roles(), roles()).prop_map(|(t, r, a)| RawEvent::Roles(t, r, a)),
        1 => raw_target().prop_map(RawEvent::Close),
    ]
}

/// Resolves the generated events into a valid log, replaying them on a
/// model without filters: an open takes the first free id from its index
/// on, an id target names an open session (a line with none to name is
/// dropped).
fn resolve(raw: &[RawEvent]) -> Vec<ModelEvent> {
    let mut model = Model::default();
    let mut events = Vec::new();
    for event in raw {
        let open: Vec<&String> = model.sessions.keys().collect();
        let target = |t: &RawTarget| match t {
            RawTarget::Id(_) if open.is_empty() => None,
            RawTarget::Id(i) => Some(Target::Id(open[i % open.len()].clone())),
            RawTarget::Where(e) => Some(Target::Where(e.to_string())),
        };
        let event = match event {
            RawEvent::Open(i, props, roles) => (0..SESSION_IDS.len())
                .map(|d| SESSION_IDS[(i + d) % SESSION_IDS.len()])
                .find(|id| !model.sessions.contains_key(*id))
                .map(|id| {
                    let session = ModelSession {
                        props: props.clone(),
                        roles: roles.as_ref().map(|r| r.iter().cloned().collect()),
                    };
                    ModelEvent::Open(id.to_owned(), session)
                }),
            RawEvent::Set(t, change) => {
                target(t).map(|t| ModelEvent::Set(t, change.clone().into_iter().collect()))
            }
            RawEvent::Roles(t, r, a) => {
                target(t).map(|t| ModelEvent::Roles(t, r.clone(), a.clone()))
            }
            RawEvent::Close(t) => target(t).map(ModelEvent::Close),
        };
        if let Some(event) = event {
            model.apply(&event);
            events.push(event);
        }
    }
    events
}

/// The three outputs the model expects for this log.
fn expected(filters: &[Expr], ids: &[Json], events: &[ModelEvent]) -> (Vec<Json>, Vec<Json>, Json) {
    let mut model = Model {
        programs: filters
            .iter()
            .map(|e| Program::compile(&e.to_string()).expect("a valid filter"))
            .collect(),
        ..Model::default()
    };
    let (mut changes, mut firsts) = (Vec::new(), Vec::new());
    for (n, event) in events.iter().enumerate() {
        let before = model.matching();
        model.apply(event);
        let after = model.matching();
        let touched: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
        let empty = BTreeSet::new();
        for id in touched {
            let was = before.get(id).unwrap_or(&empty);
            let is = after.get(id).unwrap_or(&empty);
            for &i in was.symmetric_difference(is) {
                let event = if is.contains(&i) { "entered" } else { "left" };
                changes
                    .push(json!({"line": n + 1, "session": id, "filter": ids[i], "event": event}));
            }
            if was.first() != is.first() {
                let first = is.first().map_or(Json::Null, |&i| ids[i].clone());
                firsts.push(json!({"line": n + 1, "session": id, "first": first}));
            }
        }
    }
    let counts = model.matching();
    let mut object = serde_json::Map::new();
    for (i, id) in ids.iter().enumerate() {
        let key = match id {
            Json::String(s) => s.clone(),
            other => other.to_string(),
        };
        let n = counts.values().filter(|m| m.contains(&i)).count();
        object.insert(key, json!(n));
    }
    (changes, firsts, Json::Object(object))
}

fn parse_lines(out: &Output) -> Vec<Json> {
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn watch_agrees_with_evaluating_every_filter_around_every_event(
        filters in prop::collection::vec(expr(), 1..6),
        raw in prop::collection::vec(raw_event(), 5..40),
    ) {
        // Ids of both kinds, strings and integers.
        let ids: Vec<Json> = (0..filters.len())
            .map(|i| if i % 2 == 0 { json!(format!("f{i}")) } else { json!(i) })
            .collect();
        let filter_lines: Vec<Json> = filters
            .iter()
            .zip(&ids)
            .map(|(e, id)| json!({"id": id, "filter": e.to_string()}))
            .collect();
        let events = resolve(&raw);
        let event_lines: Vec<Json> = events.iter().map(ModelEvent::json).collect();
        let (changes, firsts, counts) = expected(&filters, &ids, &events);

        let got = parse_lines(&watch(&filter_lines, &event_lines, &[]));
        prop_assert_eq!(got, changes, "events {:#?}", event_lines);
        let got = parse_lines(&watch(&filter_lines, &event_lines, &["--first-match"]));
        prop_assert_eq!(got, firsts, "events {:#?}", event_lines);
        let got = parse_lines(&watch(&filter_lines, &event_lines, &["--counts"]));
        prop_assert_eq!(got, vec![counts]);
    }
}

#[test]
fn set_normalises_the_fixed_properties_it_may_set_and_rejects_the_rest() {
    // SPEC 6.1: $Country upper-cased, $Language lower-cased, $Latitude and
    // $Longitude kept when decimal and "NaN" otherwise.
    let filters = [
        filter("uk", "$Country is 'UK'"),
        filter("en", "$Language is 'en'"),
        filter("lat", "$Latitude is '-1.5e3'"),
        filter("nan", "$Longitude is 'NaN'"),
    ];
    let events = [
        open("a", json!({})),
        json!({"op": "set", "id": "a", "properties": {"$Country": "uk", "$Language": "EN"}}),
        json!({"op": "set", "where": "all", "properties": {"$Latitude": "-1.5e3", "$Longitude": "east"}}),
        json!({"op": "set", "where": "all", "properties": {"$Latitude": "1."}}),
    ];
    let expected = "\
{\"line\":2,\"session\":\"a\",\"filter\":\"uk\",\"event\":\"entered\"}
{\"line\":2,\"session\":\"a\",\"filter\":\"en\",\"event\":\"entered\"}
{\"line\":3,\"session\":\"a\",\"filter\":\"lat\",\"event\":\"entered\"}
{\"line\":3,\"session\":\"a\",\"filter\":\"nan\",\"event\":\"entered\"}
{\"line\":4,\"session\":\"a\",\"filter\":\"lat\",\"event\":\"left\"}
";
    assert_eq!(ok(&watch(&filters, &events, &[])), expected);

    // Other fixed keys cannot be set and none can be removed, by id or by
    // filter; user keys are validated.
    let filters = [filter("all", "all"), filter("k", "has k")];
    for (change, needle) in [
        (json!({"$Roles": "\"x\""}), "$Roles"),
        (json!({"$SessionId": "b"}), "cannot be set"),
        (json!({"$Principal": "eve"}), "cannot be set"),
        (json!({"$Country": null}), "cannot be removed"),
        (json!({"k": "v", "bad key": "v"}), "bad key"),
    ] {
        for (field, target) in [("id", "a"), ("where", "all")] {
            let mut bad = json!({"op": "set", "properties": change.clone()});
            bad[field] = json!(target);
            let events = [open("a", json!({})), bad.clone()];
            let out = watch(&filters, &events, &[]);
            let printed =
                "{\"line\":1,\"session\":\"a\",\"filter\":\"all\",\"event\":\"entered\"}\n";
            assert_eq!(invalid(&out, "events line 2"), printed, "{bad}");
            assert!(text(&out.stderr).contains(needle), "{bad}: {out:?}");
        }
    }
}
