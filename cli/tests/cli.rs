//! SPEC sections 7 and 10: the command-line tool, driven as a black box.

#[path = "../../tests/common/mod.rs"]
mod common;
mod support;

use std::cmp::Reverse;
use std::io::Write;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::json;
use session_filter::{roles_to_string, Program, Session};
use support::{run, spawn, temp_lines, text};

/// Asserts exit code 2 and an `error: LINE:COL: …` report with a caret.
fn assert_filter_error(out: &Output, what: &str) {
    assert_eq!(out.status.code(), Some(2), "{what}: {out:?}");
    assert!(
        out.stdout.is_empty(),
        "{what}: stdout {:?}",
        text(&out.stdout)
    );
    let err = text(&out.stderr);
    let first = err.lines().next().unwrap_or("");
    let pos = first
        .strip_prefix("error: ")
        .unwrap_or_else(|| panic!("{what}: {err}"));
    let (line_col, message) = pos
        .split_once(": ")
        .unwrap_or_else(|| panic!("{what}: {err}"));
    let (line, col) = line_col
        .split_once(':')
        .unwrap_or_else(|| panic!("{what}: {err}"));
    assert!(
        line.parse::<usize>().is_ok() && col.parse::<usize>().is_ok(),
        "{what}: {err}"
    );
    assert!(message.starts_with("expected "), "{what}: {err}");
    assert!(err.trim_end().ends_with('^'), "{what}: {err}");
}

#[test]
fn check_gives_every_conformance_canonical_form_or_error() {
    for dir in common::case_dirs() {
        for case in common::filter_cases(&dir) {
            // A filter that starts with `-` follows `--`.
            let out = run(&["check", "--", &case.filter], None);
            match &case.valid {
                Some((canonical, _)) => {
                    assert_eq!(out.status.code(), Some(0), "{:?}: {out:?}", case.filter);
                    assert_eq!(text(&out.stdout), format!("{canonical}\n"));
                }
                None => {
                    assert_filter_error(&out, &case.filter);
                    // `matches.jsonl` fixes the position of some errors.
                    if let Some((line, column)) = case.error_at {
                        let prefix = format!("error: {line}:{column}: ");
                        assert!(
                            text(&out.stderr).starts_with(&prefix),
                            "{:?}: {}",
                            case.filter,
                            text(&out.stderr)
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn check_reads_stdin_and_rejects_invalid_utf8() {
    let out = run(&["check", "-"], Some(b"$Country  IN ['UK']\n"));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "$Country in [\"UK\"]\n");

    let out = run(&["check", "-"], Some(b"x is '\xff'"));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).starts_with("error: "), "{out:?}");

    let out = run(&["check", "-"], Some(b"x is 'a\0b'"));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, b"x is \"a\0b\"\n");

    let out = run(&["check", "-"], Some(b"x is \"\\"));
    assert_filter_error(&out, "lone backslash");

    let out = run(&["check", "-"], Some(b""));
    assert_filter_error(&out, "empty stdin");
}

#[test]
fn hostile_filters_get_clean_errors() {
    let deep = "(".repeat(60_000);
    assert_filter_error(&run(&["check", "--", &deep], None), "60 000 parentheses");
    let nots = "not ".repeat(30_000);
    assert_filter_error(&run(&["check", "-"], Some(nots.as_bytes())), "30 000 nots");
    let huge = format!("x is '{}'", "a".repeat(100_000));
    assert_filter_error(
        &run(&["check", "-"], Some(huge.as_bytes())).clone(),
        "100 KB",
    );
    let out = run(&["check", "-"], Some(&vec![b'('; 10 << 20]));
    assert_eq!(out.status.code(), Some(2), "10 MB on stdin");
}

#[test]
fn exit_codes_and_usage() {
    let out = run(&["check"], None);
    assert_eq!(
        out.status.code(),
        Some(2),
        "missing argument is a usage error"
    );
    let out = run(&["frobnicate"], None);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["check", "-x is 'y'"], None);
    assert_eq!(out.status.code(), Some(2), "a leading `-` needs `--`");
    let out = run(&["--help"], None);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn escape_and_roles_commands_follow_the_conformance_cases() {
    for dir in common::case_dirs() {
        for case in common::read_jsonl(&dir.join("roles.jsonl")) {
            let input = &case["input"];
            // Arguments cannot carry NUL bytes; the library tests cover those.
            if input.to_string().contains("\\u0000") {
                continue;
            }
            let out = match case["fn"].as_str().unwrap() {
                "escape" => run(&["escape", "--", input.as_str().unwrap()], None),
                "string_to_roles" => run(&["roles", "parse", "--", input.as_str().unwrap()], None),
                "roles_to_string" => run(&["roles", "format", "--", &input.to_string()], None),
                other => panic!("unknown fn {other}"),
            };
            if case.get("error").is_some() {
                assert_eq!(out.status.code(), Some(2), "{case}: {out:?}");
                assert!(text(&out.stderr).starts_with("error: "), "{case}");
                continue;
            }
            assert_eq!(out.status.code(), Some(0), "{case}: {out:?}");
            let expected = match &case["output"] {
                serde_json::Value::String(s) => s.clone(),
                array => serde_json::to_string(array).unwrap(),
            };
            assert_eq!(text(&out.stdout), format!("{expected}\n"), "{case}");
        }
    }
}

#[test]
fn roles_format_rejects_what_is_not_an_array_of_strings() {
    for bad in ["[1]", "{\"a\":1}", "[\"a\"", "\"a\"", ""] {
        let out = run(&["roles", "format", "--", bad], None);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(text(&out.stderr).starts_with("error: "));
    }
}

#[test]
fn select_gives_every_conformance_match_list() {
    for dir in common::case_dirs() {
        let sessions = dir.join("sessions.jsonl");
        let sessions = sessions.to_str().unwrap();
        for case in common::filter_cases(&dir) {
            let out = run(&["select", "--quiet", "--", &case.filter, sessions], None);
            match &case.valid {
                Some((_, ids)) => {
                    assert_eq!(out.status.code(), Some(0), "{:?}: {out:?}", case.filter);
                    let expected: String = ids.iter().map(|id| format!("{id}\n")).collect();
                    assert_eq!(text(&out.stdout), expected, "{:?}", case.filter);
                    let out = run(&["select", "--count", "--", &case.filter, sessions], None);
                    assert_eq!(text(&out.stdout), format!("{}\n", ids.len()));
                    // The summary goes to stderr, never stdout.
                    assert!(text(&out.stderr).contains(&format!("matched {} of 12", ids.len())));
                }
                None => assert_filter_error(&out, &case.filter),
            }
        }
    }
}

#[test]
fn select_reads_stdin_with_roles_arrays_blank_lines_and_missing_ids() {
    let input = b"{\"$SessionId\":\"a\",\"$Roles\":[\"x\",\"y\"]}\n\n  \n{\"k\":\"v\",\"$Roles\":\"'x'\"}\r\n{\"$SessionId\":\"c\"}";
    let out = run(&["select", "-q", "hasRoles ['x']", "-"], Some(input));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(text(&out.stdout), "a\n4\n");
    assert!(out.stderr.is_empty());
}

#[test]
fn select_reports_malformed_lines_after_printing_what_came_before() {
    for (bad, what) in [
        ("{\"$Country\": 1}", "a number"),
        ("{\"k\": [\"x\"]}", "an array for a user key"),
        ("{\"bad key\": \"x\"}", "an invalid user key"),
        ("{\"a\": \"1\", \"a\": \"2\"}", "a duplicate key"),
        ("{\"$Roles\": \"'unterminated\"}", "a bad roles string"),
        ("[\"not\", \"an object\"]", "an array"),
        ("{\"a\": ", "truncated JSON"),
        ("{\"$Roles\": [1]}", "a roles array of numbers"),
    ] {
        let input =
            format!("{{\"$SessionId\":\"first\"}}\n\n{bad}\n{{\"$SessionId\":\"after\"}}\n");
        let out = run(&["select", "-q", "all", "-"], Some(input.as_bytes()));
        assert_eq!(out.status.code(), Some(2), "{what}: {out:?}");
        assert_eq!(text(&out.stdout), "first\n", "{what}");
        assert!(
            text(&out.stderr).starts_with("error: line 3: "),
            "{what}: {}",
            text(&out.stderr)
        );
    }
    let out = run(&["select", "-q", "all", "-"], Some(b"{\"k\":\"\xff\"}\n"));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).starts_with("error: line 1: "));
}

#[test]
fn select_runs_on_the_demo_population_and_fails_cleanly_on_missing_files() {
    let out = run(&["select", "--count", "-q", "all"], None);
    assert_eq!(text(&out.stdout), "5000\n");
    let a = run(
        &[
            "select",
            "-q",
            "hasRoles ['operator'] and $Country in ['UK','DE']",
        ],
        None,
    );
    let b = run(
        &[
            "select",
            "-q",
            "hasRoles ['operator'] and $Country in ['UK','DE']",
        ],
        None,
    );
    assert_eq!(a.stdout, b.stdout, "the demo population is deterministic");
    let n = text(&a.stdout).lines().count();
    assert!(n > 10 && n < 1000, "{n}");
    let out = run(&["select", "all", "/no/such/file.jsonl"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("/no/such/file.jsonl"));
    let out = run(&["select", "all extra"], None);
    assert_filter_error(&out, "bad filter");
}

#[test]
fn explain_prints_one_instruction_a_line_then_the_plan() {
    let out = run(&["explain", "not (Department is 'Accounts' or Department is 'Payroll') and $Country in ['UK','DE','FR'] and hasRoles ['trader']"], None);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with(
            "filter: not (Department is \"Accounts\" or Department is \"Payroll\") and $Country in [\"UK\", \"DE\", \"FR\"] and hasRoles [\"trader\"]\n\
             entry 0\n\
             0: Department in [\"Accounts\", \"Payroll\"] ? FAIL : 1\n\
             1: $Country in [\"DE\", \"FR\", \"UK\"] ? 2 : FAIL\n\
             2: hasRoles [\"trader\"] ? MATCH : FAIL\n\
             plan: 32 of 32 shards use the index, 0 scan every session\n\
             0: index on 32 shards, 5000 reached, "
        ),
        "{stdout}"
    );
    assert!(stdout.ends_with("(plan measured on the demo population of 5000 sessions)\n"));
    assert_filter_error(&run(&["explain", "x is"], None), "bad filter");
}

// SPEC section 10 (and 6.2): select's projection, order and paging, checked
// against what the library says of the same sessions.

/// A session read back from a JSON line, as the tool must read it.
struct Row {
    /// 1-based line number.
    line: usize,
    session: Session,
}

/// A population with what ordering and projection must handle: ids out of
/// order, repeated and missing; sort keys repeated, missing and differing
/// only in case or past ASCII; roles as strings and as arrays; values that
/// need escaping in JSON.
fn population(n: usize) -> Vec<String> {
    let mut seed = 0x5EED_u64;
    let mut next = |m: usize| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) as usize % m
    };
    let tiers = ["gold", "silver", "bronze", "Gold", "", "gold\u{e9}", "gol"];
    (0..n)
        .map(|_| {
            let mut o = serde_json::Map::new();
            if next(10) != 0 {
                o.insert("$SessionId".into(), json!(format!("s{}", next(2 * n))));
            }
            if next(4) != 0 {
                o.insert("Tier".into(), json!(tiers[next(tiers.len())]));
            }
            if next(3) != 0 {
                o.insert("$Country".into(), json!(["UK", "DE", "FR"][next(3)]));
            }
            let roles = match next(3) {
                0 => None,
                1 => Some(json!(["admin", "op\"s"])),
                _ => Some(json!("'client'")),
            };
            if let Some(roles) = roles {
                o.insert("$Roles".into(), roles);
            }
            if next(5) == 0 {
                o.insert("Note".into(), json!("a \"quoted\"\nline\\ \u{1} \u{263a}"));
            }
            serde_json::Value::Object(o).to_string()
        })
        .collect()
}

/// The sessions of `lines` that `filter` matches, by the library.
fn matches(filter: &str, lines: &[String]) -> Vec<Row> {
    let program = Program::compile(filter).expect("a valid filter");
    lines
        .iter()
        .enumerate()
        .filter_map(|(i, line)| {
            let object: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(line).expect("a JSON object");
            let pairs = object.into_iter().map(|(k, v)| match v {
                serde_json::Value::String(s) => (k, s),
                roles => {
                    let roles: Vec<String> = serde_json::from_value(roles).expect("roles");
                    (k, roles_to_string(&roles))
                }
            });
            let session = Session::new(pairs).expect("a valid session");
            program.matches(&session).then_some(Row {
                line: i + 1,
                session,
            })
        })
        .collect()
}

/// SPEC 6.2's order as a plain sort: present values before absent ones, by
/// bytes (reversed for `desc`), then ids ascending with absent ids last,
/// then line.
fn sort(rows: &mut [Row], key: &str, desc: bool) {
    let bytes = |v: Option<std::sync::Arc<str>>| v.map(|v| v.as_bytes().to_vec());
    let then = |r: &Row| (r.session.id().is_none(), bytes(r.session.id()), r.line);
    if desc {
        rows.sort_by_key(|r| {
            let v = r.session.get(key);
            (v.is_none(), Reverse(bytes(v)), then(r))
        });
    } else {
        rows.sort_by_key(|r| {
            let v = r.session.get(key);
            (v.is_none(), bytes(v), then(r))
        });
    }
}

/// What `--properties KEYS` (or `--all-properties`, for `None`) prints for
/// a row.
fn object(row: &Row, keys: Option<&[&str]>) -> serde_json::Value {
    let mut o = serde_json::Map::new();
    let id = match row.session.id() {
        Some(id) => json!(&*id),
        None => json!(row.line),
    };
    o.insert("$SessionId".into(), id);
    match keys {
        Some(keys) => {
            for &k in keys {
                if let Some(v) = row.session.get(k) {
                    o.insert(k.into(), json!(&*v));
                }
            }
        }
        None => {
            for (k, v) in row.session.properties() {
                o.insert(k, json!(v));
            }
        }
    }
    serde_json::Value::Object(o)
}

/// What the plain output prints for a row.
fn id_line(row: &Row) -> String {
    match row.session.id() {
        Some(id) => format!("{id}\n"),
        None => format!("{}\n", row.line),
    }
}

/// Each stdout line as JSON, checking that `$SessionId` comes first.
fn objects(out: &Output) -> Vec<serde_json::Value> {
    text(&out.stdout)
        .lines()
        .map(|l| {
            assert!(l.starts_with("{\"$SessionId\":"), "{l}");
            serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"))
        })
        .collect()
}

/// The page of `rows` that `--offset`, `--limit` select.
fn page<T>(rows: &[T], offset: usize, limit: Option<usize>) -> &[T] {
    let start = offset.min(rows.len());
    let end = limit.map_or(rows.len(), |l| start.saturating_add(l).min(rows.len()));
    &rows[start..end]
}

fn ok(out: Output, what: &str) -> Output {
    assert_eq!(out.status.code(), Some(0), "{what}: {out:?}");
    out
}

const FILTER: &str = "not $Country is 'FR'";

#[test]
fn select_properties_show_chosen_keys_with_roles_as_roles_strings() {
    let lines = population(300);
    let path = temp_lines("properties", &lines);
    let path = path.to_str().unwrap();
    let rows = matches(FILTER, &lines);
    // `$SessionId` again, a duplicate and an absent key change nothing.
    let keys = ["Tier", "$Roles", "Missing", "Note", "$Country"];
    let arg = "Tier,$Roles,Missing,$SessionId,Note,Tier,$Country";
    let out = ok(
        run(&["select", "-q", FILTER, path, "--properties", arg], None),
        "--properties",
    );
    let expected: Vec<_> = rows.iter().map(|r| object(r, Some(&keys))).collect();
    assert_eq!(objects(&out), expected);
    assert!(rows.iter().any(|r| r.session.id().is_none()));

    // A roles array comes back as its roles string.
    let input = b"{\"$SessionId\":\"a\",\"$Roles\":[\"x\",\"y\"],\"k\":\"v\"}\n{\"k\":\"w\"}\n";
    let out = ok(
        run(
            &["select", "-q", "all", "-", "--properties", "$Roles"],
            Some(input),
        ),
        "roles",
    );
    assert_eq!(
        text(&out.stdout),
        "{\"$SessionId\":\"a\",\"$Roles\":\"\\\"x\\\",\\\"y\\\"\"}\n{\"$SessionId\":2}\n"
    );
}

#[test]
fn select_all_properties_show_every_property() {
    let lines = population(300);
    let path = temp_lines("all-properties", &lines);
    let path = path.to_str().unwrap();
    for filter in [FILTER, "all", "Tier is 'gold'"] {
        let rows = matches(filter, &lines);
        let out = ok(
            run(&["select", "-q", filter, path, "--all-properties"], None),
            filter,
        );
        let expected: Vec<_> = rows.iter().map(|r| object(r, None)).collect();
        assert_eq!(objects(&out), expected, "{filter}");
    }
}

#[test]
fn select_sorts_in_both_directions_with_absent_keys_last_and_ties_by_id() {
    // By hand first: "1" < "10" < "2" as bytes, ties by id, absent last.
    let input = b"{\"$SessionId\":\"b\",\"k\":\"2\"}\n{\"$SessionId\":\"a\",\"k\":\"2\"}\n{\"$SessionId\":\"c\"}\n{\"k\":\"1\"}\n{\"$SessionId\":\"d\",\"k\":\"10\"}\n";
    let out = ok(
        run(&["select", "-q", "all", "-", "--sort", "k"], Some(input)),
        "ascending",
    );
    assert_eq!(text(&out.stdout), "4\nd\na\nb\nc\n");
    let out = ok(
        run(
            &["select", "-q", "all", "-", "--sort", "k", "--desc"],
            Some(input),
        ),
        "descending",
    );
    assert_eq!(text(&out.stdout), "a\nb\nd\n4\nc\n");
    let out = ok(
        run(
            &["select", "-q", "all", "-", "--desc", "--sort", "$SessionId"],
            Some(input),
        ),
        "ids descending",
    );
    assert_eq!(text(&out.stdout), "d\nc\nb\na\n4\n");

    let lines = population(400);
    let path = temp_lines("sort", &lines);
    let path = path.to_str().unwrap();
    for key in ["Tier", "$SessionId", "$Roles", "Missing"] {
        for desc in [false, true] {
            let mut rows = matches(FILTER, &lines);
            sort(&mut rows, key, desc);
            let mut args = vec!["select", "-q", FILTER, path, "--sort", key];
            if desc {
                args.push("--desc");
            }
            let out = ok(run(&args, None), key);
            let expected: String = rows.iter().map(id_line).collect();
            assert_eq!(text(&out.stdout), expected, "{key} desc={desc}");

            args.extend(["--properties", "Tier,$Roles"]);
            let out = ok(run(&args, None), key);
            let expected: Vec<_> = rows
                .iter()
                .map(|r| object(r, Some(&["Tier", "$Roles"])))
                .collect();
            assert_eq!(objects(&out), expected, "{key} desc={desc}");
        }
    }
}

#[test]
fn select_pages_with_offset_and_limit_in_both_orders() {
    let lines = population(300);
    let path = temp_lines("paging", &lines);
    let path = path.to_str().unwrap();
    let in_order = matches(FILTER, &lines);
    let mut sorted = matches(FILTER, &lines);
    sort(&mut sorted, "Tier", true);
    let in_order: Vec<String> = in_order.iter().map(id_line).collect();
    let sorted: Vec<String> = sorted.iter().map(id_line).collect();
    let n = in_order.len();
    assert!(n > 100, "{n}");
    for (offset, limit) in [
        (0, Some(0)),
        (0, Some(1)),
        (0, Some(10)),
        (7, Some(10)),
        (7, None),
        (n - 3, Some(10)),
        (n, Some(5)),
        (n + 10, None),
        (0, Some(n + 10)),
    ] {
        let offset_arg = offset.to_string();
        let limit_arg = limit.map(|l| l.to_string());
        let mut args = vec!["select", FILTER, path, "--offset", &offset_arg];
        if let Some(limit) = &limit_arg {
            args.extend(["--limit", limit]);
        }
        let out = ok(run(&args, None), "input order");
        let what = format!("offset {offset} limit {limit:?}");
        assert_eq!(
            text(&out.stdout),
            page(&in_order, offset, limit).concat(),
            "{what}"
        );
        let printed = page(&in_order, offset, limit).len();
        assert!(
            text(&out.stderr).contains(&format!(", printed {printed}")),
            "{what}: {}",
            text(&out.stderr)
        );
        args.extend(["--sort", "Tier", "--desc", "-q"]);
        let out = ok(run(&args, None), "sorted");
        assert_eq!(
            text(&out.stdout),
            page(&sorted, offset, limit).concat(),
            "sorted, {what}"
        );
    }
}

#[test]
fn select_count_ignores_paging_and_counts_every_match() {
    let lines = population(300);
    let path = temp_lines("count", &lines);
    let path = path.to_str().unwrap();
    let n = matches(FILTER, &lines).len();
    for extra in [
        &["--limit", "3"][..],
        &["--offset", "5", "--limit", "0"],
        &["--sort", "Tier", "--desc", "--limit", "1"],
        &["--all-properties", "--limit", "2"],
    ] {
        let mut args = vec!["select", "--count", FILTER, path];
        args.extend(extra);
        let out = ok(run(&args, None), "count");
        assert_eq!(text(&out.stdout), format!("{n}\n"), "{extra:?}");
        assert!(
            text(&out.stderr).contains(&format!("matched {n} of 300 ")),
            "{extra:?}: {}",
            text(&out.stderr)
        );
    }
    // Counting reads everything, so it finds a malformed line past the page.
    let input = b"{\"$SessionId\":\"a\"}\n{\"a\": \n";
    let out = run(
        &["select", "--count", "all", "-", "--limit", "1"],
        Some(input),
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out.stderr).starts_with("error: line 2: "));
}

#[test]
fn select_stops_reading_once_the_page_is_printed() {
    // Odd lines match; the page of offset 1, limit 2 ends on line 5, and the
    // malformed line 7 is never read.
    let mut lines: Vec<String> = (1..=6)
        .map(|i| format!("{{\"$SessionId\":\"s{i}\",\"odd\":\"{}\"}}", i % 2))
        .collect();
    lines.push("{\"odd\": ".into());
    lines.extend(population(5000));
    let path = temp_lines("early-stop", &lines);
    let path = path.to_str().unwrap();
    let filter = "odd is '1'";
    let out = ok(
        run(
            &["select", filter, path, "--offset", "1", "--limit", "2"],
            None,
        ),
        "early stop",
    );
    assert_eq!(text(&out.stdout), "s3\ns5\n");
    let err = text(&out.stderr);
    assert!(err.contains("matched 3 of 5 sessions"), "{err}");
    assert!(err.contains("stopped reading"), "{err}");
    let out = ok(
        run(
            &[
                "select",
                "-q",
                filter,
                path,
                "--limit",
                "3",
                "--all-properties",
            ],
            None,
        ),
        "early stop with properties",
    );
    assert_eq!(objects(&out).len(), 3);

    // Without a limit, or sorted, the whole input is read and the line is
    // found; sorted, nothing was printed before it.
    let out = run(&["select", "-q", filter, path, "--offset", "1"], None);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(text(&out.stdout), "s3\ns5\n");
    assert!(text(&out.stderr).starts_with("error: line 7: "));
    let out = run(
        &[
            "select", "-q", filter, path, "--limit", "2", "--sort", "odd",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stdout.is_empty());
    assert!(text(&out.stderr).starts_with("error: line 7: "));
}

#[test]
fn select_stops_reading_an_endless_stdin_once_the_page_is_printed() {
    let mut child = spawn(&["select", "-q", "all", "-", "--limit", "3", "--offset", "2"]);
    let mut pipe = child.stdin.take().expect("stdin");
    // Writes until the tool goes away.
    let writer = std::thread::spawn(move || {
        let mut i = 0u64;
        while pipe
            .write_all(format!("{{\"$SessionId\":\"s{i}\"}}\n").as_bytes())
            .is_ok()
        {
            i += 1;
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("select kept reading an endless stdin");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().expect("the binary finishes");
    writer.join().expect("the writer stops");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(text(&out.stdout), "s2\ns3\ns4\n");
}

#[test]
fn select_pages_sorts_and_projects_the_demo_population() {
    let filter = "hasRoles ['operator']";
    let program = Program::compile(filter).expect("a valid filter");
    let sessions = session_filter::demo::sessions(5000).expect("the demo population");
    let rows: Vec<Row> = sessions
        .into_iter()
        .enumerate()
        .filter(|(_, s)| program.matches(s))
        .map(|(i, session)| Row {
            line: i + 1,
            session,
        })
        .collect();
    let out = ok(run(&["select", "-q", filter, "--limit", "5"], None), "demo");
    let expected: String = rows.iter().take(5).map(id_line).collect();
    assert_eq!(text(&out.stdout), expected);

    let mut sorted = rows;
    sort(&mut sorted, "Department", true);
    assert!(sorted.len() > 100, "{}", sorted.len());
    let keys = ["Department", "$Roles"];
    let args = [
        "select",
        "-q",
        filter,
        "--sort",
        "Department",
        "--desc",
        "--offset",
        "5",
        "--limit",
        "20",
        "--properties",
        "Department,$Roles",
    ];
    let out = ok(run(&args, None), "demo sorted");
    let expected: Vec<_> = page(&sorted, 5, Some(20))
        .iter()
        .map(|r| object(r, Some(&keys)))
        .collect();
    assert_eq!(objects(&out), expected);
    // A fifth of the demo sessions have no department: they come last.
    sort(&mut sorted, "Department", false);
    assert!(sorted
        .last()
        .is_some_and(|r| r.session.get("Department").is_none()));
    let out = ok(
        run(
            &[
                "select",
                "-q",
                filter,
                "--sort",
                "Department",
                "--all-properties",
            ],
            None,
        ),
        "demo, all properties",
    );
    let expected: Vec<_> = sorted.iter().map(|r| object(r, None)).collect();
    assert_eq!(objects(&out), expected);
}

#[test]
fn select_paging_usage_errors_exit_2() {
    let input = b"{\"$SessionId\":\"a\"}\n";
    for (args, needle) in [
        (&["--desc"][..], "--desc needs --sort"),
        (
            &["--properties", "a", "--all-properties"],
            "cannot be used with",
        ),
        (&["--offset", "-1"], "-1"),
        (&["--limit", "-1"], "-1"),
        (&["--limit", "x"], "invalid value"),
        (&["--limit", "1.5"], "invalid value"),
        (&["--offset", ""], "invalid value"),
        (&["--limit"], "--limit"),
        (&["--sort", "bad key"], "invalid user property key"),
        (&["--sort", ""], "invalid user property key"),
        (&["--properties", "a,bad key"], "invalid user property key"),
        (&["--properties", "a,,b"], "invalid user property key"),
    ] {
        let mut all = vec!["select", "all", "-"];
        all.extend(args);
        let out = run(&all, Some(input));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let err = text(&out.stderr);
        assert!(
            err.starts_with("error: ") && err.contains(needle),
            "{args:?}: {err}"
        );
    }
    // The same on the demo population.
    let out = run(&["select", "all", "--desc"], None);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
