//! SPEC section 7: the command-line tool, driven as a black box.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_session-filter"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    {
        let mut pipe = child.stdin.take().expect("stdin");
        // The tool may exit before reading everything; that is fine.
        let _ = pipe.write_all(stdin.unwrap_or_default());
    }
    child.wait_with_output().expect("the binary finishes")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8 output")
}

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
                None => assert_filter_error(&out, &case.filter),
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
