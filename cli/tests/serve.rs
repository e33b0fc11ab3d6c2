//! `session-filter serve`: every endpoint of the JSON API, driven over HTTP
//! against the binary, and checked against the CLI where both answer.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::cli;
use support::serve::Server;

/// A small demo population: fast to start, enough to page through.
const SMALL: &[&str] = &["--demo-sessions", "500"];

fn total(server: &Server, filter: &str) -> u64 {
    let answer = server.post("/api/fetch", &json!({ "filter": filter, "limit": 0 }));
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.json()["total"].as_u64().expect("total")
}

fn ids(answer: &Value) -> Vec<String> {
    answer["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_owned())
        .collect()
}

#[test]
fn check_gives_the_canonical_form_of_the_cli() {
    let server = Server::start(SMALL);
    for filter in [
        "$Country IN ['UK','DE'] And NOT (Tier eq 'gold')",
        "hasRoles{\"trader\" 'admin'} or has Department",
        "all",
    ] {
        let answer = server.post("/api/check", &json!({ "filter": filter }));
        assert_eq!(answer.status, 200, "{answer:?}");
        assert!(answer.header("server-timing").is_some(), "{answer:?}");
        let (code, stdout, _) = cli(&["check", "--", filter]);
        assert_eq!(code, 0);
        assert_eq!(answer.json(), json!({ "canonical": stdout.trim_end() }));
    }
}

#[test]
fn a_bad_filter_is_positioned_as_the_cli_positions_it() {
    let server = Server::start(SMALL);
    for filter in [
        "Department is",
        "$Country in ['UK',,'DE']",
        "a is 'x' and\n  (b is 'y' or c ix 'z')",
        "$Roles is 'admin'",
        "東京 is 'x' extra",
        "   ",
    ] {
        let answer = server.post("/api/check", &json!({ "filter": filter }));
        assert_eq!(answer.status, 400, "{filter:?}: {answer:?}");
        let error = &answer.json()["error"];
        let (code, _, stderr) = cli(&["check", "--", filter]);
        assert_eq!(code, 2);
        // The CLI prints `error: LINE:COL: MESSAGE` and then the caret rendering.
        let expected = format!(
            "error: {}:{}: {}\n{}\n",
            error["line"],
            error["column"],
            error["message"].as_str().unwrap_or(""),
            error["caret"].as_str().unwrap_or("")
        );
        assert_eq!(stderr, expected, "{filter:?}");
        assert!(error["offset"].as_u64().is_some(), "{error}");
        // The same answer from every endpoint that takes a filter.
        let fetched = server.post("/api/fetch", &json!({ "filter": filter }));
        assert_eq!(fetched.status, 400);
        assert_eq!(fetched.json()["error"], *error);
    }
    let answer = server.post("/api/check", &json!({ "filter": "Department is" }));
    assert_eq!(
        answer.json()["error"],
        json!({
            "line": 1, "column": 14, "offset": 13,
            "message": "expected a quoted value, found end of input",
            "caret": "Department is\n             ^",
        })
    );
}

#[test]
fn the_store_filter_limits_apply() {
    let server = Server::start(SMALL);
    let deep = format!("{}a is 'b'{}", "(".repeat(300), ")".repeat(300));
    let long = format!("a in [{}]", "'x' ".repeat(20_000));
    for (filter, limit) in [(deep, "nesting depth limit"), (long, "length limit")] {
        for path in ["/api/check", "/api/fetch", "/api/explain"] {
            let answer = server.post(path, &json!({ "filter": filter }));
            assert_eq!(answer.status, 400, "{path}");
            assert!(
                answer.message().contains(limit),
                "{path}: {}",
                answer.message()
            );
        }
    }
}

#[test]
fn explain_gives_the_program_and_the_plan() {
    let server = Server::start(SMALL);
    let answer = server.post("/api/explain", &json!({ "filter": "Tier is 'gold'" }));
    assert_eq!(answer.status, 200, "{answer:?}");
    let body = answer.json();
    assert_eq!(
        body["program"],
        "entry 0\n0: Tier is \"gold\" ? MATCH : FAIL\n"
    );
    let plan = body["plan"].as_str().expect("plan");
    assert!(
        plan.starts_with("plan: 32 of 32 shards use the index"),
        "{plan}"
    );
    assert!(plan.contains("500 reached"), "{plan}");
    assert_eq!(body["sessions"], 500);
}

#[test]
fn fetch_pages_as_the_cli_selects() {
    // The default population is the one `select` runs on without FILE.
    let server = Server::start(&[]);
    let filter = "$Country in ['UK', 'DE', 'FR'] or hasRoles ['trader']";
    let (_, count, _) = cli(&["select", filter, "--count", "--quiet"]);
    assert_eq!(total(&server, filter).to_string(), count.trim_end());

    let answer = server.post(
        "/api/fetch",
        &json!({
            "filter": filter,
            "properties": ["$Country", "$Roles", "Department"],
            "order_by": "$StartTime",
            "descending": true,
            "offset": 7,
            "limit": 12,
        }),
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    let body = answer.json();
    assert_eq!(body["total"].to_string(), count.trim_end());
    let (code, stdout, _) = cli(&[
        "select",
        filter,
        "--properties",
        "$Country,$Roles,Department",
        "--sort",
        "$StartTime",
        "--desc",
        "--offset",
        "7",
        "--limit",
        "12",
        "--quiet",
    ]);
    assert_eq!(code, 0);
    let expected: Vec<Value> = stdout
        .lines()
        .map(|line| {
            let mut props: BTreeMap<String, Value> =
                serde_json::from_str(line).expect("a JSON line");
            let id = props.remove("$SessionId").expect("an id");
            json!({ "id": id, "properties": props })
        })
        .collect();
    assert_eq!(expected.len(), 12);
    assert_eq!(body["sessions"], Value::Array(expected));
}

#[test]
fn fetch_defaults_all_properties_and_totals_only() {
    let server = Server::start(SMALL);
    // By default: by id, the first 100, ids only.
    let answer = server
        .post("/api/fetch", &json!({ "filter": "all" }))
        .json();
    assert_eq!(answer["total"], 500);
    let got = ids(&answer);
    assert_eq!(got.len(), 100);
    assert_eq!(got[0], "s000000");
    assert_eq!(got[99], "s000099");
    assert_eq!(answer["sessions"][0]["properties"], json!({}));

    let answer = server
        .post(
            "/api/fetch",
            &json!({ "filter": "$SessionId is 's000042'", "properties": "all" }),
        )
        .json();
    let props = &answer["sessions"][0]["properties"];
    let expected: BTreeMap<String, String> =
        session_filter::demo::properties(42).into_iter().collect();
    assert_eq!(*props, json!(expected));

    let answer = server
        .post("/api/fetch", &json!({ "filter": "all", "limit": 0 }))
        .json();
    assert_eq!(answer, json!({ "total": 500, "sessions": [] }));
    let answer = server
        .post(
            "/api/fetch",
            &json!({ "filter": "all", "offset": 490, "limit": 50 }),
        )
        .json();
    assert_eq!(ids(&answer).len(), 10);
}

#[test]
fn bad_requests_are_json_400s() {
    let server = Server::start(SMALL);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "/api/check",
            b"{\"filter\": ".to_vec(),
            "invalid JSON body: EOF",
        ),
        ("/api/check", b"[1, 2]".to_vec(), "invalid JSON body"),
        ("/api/check", b"{}".to_vec(), "missing field `filter`"),
        (
            "/api/check",
            b"{\"filter\": 7}".to_vec(),
            "invalid type: integer `7`",
        ),
        ("/api/check", b"".to_vec(), "invalid JSON body: EOF"),
        (
            "/api/fetch",
            br#"{"filter": "all", "orderBy": "x"}"#.to_vec(),
            "unknown field `orderBy`",
        ),
        (
            "/api/fetch",
            br#"{"filter": "all", "properties": "some"}"#.to_vec(),
            "properties: expected a list of keys or \"all\"",
        ),
        (
            "/api/fetch",
            br#"{"filter": "all", "properties": ["a b"]}"#.to_vec(),
            "properties: ",
        ),
        (
            "/api/fetch",
            br#"{"filter": "all", "properties": [1]}"#.to_vec(),
            "properties: expected keys as strings, found 1",
        ),
        (
            "/api/fetch",
            br#"{"filter": "all", "order_by": "(x)"}"#.to_vec(),
            "order_by: ",
        ),
        (
            "/api/fetch",
            br#"{"filter": "all", "limit": 10001}"#.to_vec(),
            "limit: expected at most 10000",
        ),
        (
            "/api/fetch",
            br#"{"filter": "all", "offset": -1}"#.to_vec(),
            "invalid value: integer `-1`",
        ),
    ];
    for (path, body, message) in cases {
        let answer = server.request("POST", path, Some(&body));
        assert_eq!(answer.status, 400, "{path} {body:?}: {answer:?}");
        assert!(
            answer.header("content-type") == Some("application/json"),
            "{answer:?}"
        );
        assert!(
            answer.message().contains(message),
            "{path} {:?}: {}",
            String::from_utf8_lossy(&body),
            answer.message()
        );
    }
    // Over the 1 MiB body limit.
    let big = json!({ "filter": format!("a is '{}'", "x".repeat(2 << 20)) });
    let answer = server.post("/api/check", &big);
    assert_eq!(answer.status, 400, "{:?}", answer.status);
    assert!(answer
        .message()
        .contains("larger than the limit of 1024 KiB"));

    let answer = server.request("GET", "/api/nothing", None);
    assert_eq!(
        (answer.status, answer.message().as_str()),
        (404, "no such route")
    );
    let answer = server.request("GET", "/api/check", None);
    assert_eq!(answer.status, 405);
    assert!(answer.message().contains("method not allowed"));
}

#[test]
fn writes_are_forbidden_without_allow_writes() {
    let server = Server::start(SMALL);
    let info = server.request("GET", "/api/info", None).json();
    assert_eq!(
        info,
        json!({ "sessions": 500, "allow_writes": false, "churn": null })
    );
    for (path, body) in [
        ("/api/close", json!({ "filter": "all" })),
        (
            "/api/roles",
            json!({ "filter": "all", "remove": [], "add": ["x"] }),
        ),
        (
            "/api/properties",
            json!({ "filter": "all", "properties": { "Tier": "x" } }),
        ),
        // Forbidden before the body is even read.
        ("/api/close", json!("not a body")),
    ] {
        let answer = server.post(path, &body);
        assert_eq!(answer.status, 403, "{path}: {answer:?}");
        assert!(answer.message().contains("--allow-writes"));
    }
    assert_eq!(total(&server, "all"), 500);
    assert_eq!(total(&server, "hasRoles ['x'] or Tier is 'x'"), 0);
}

#[test]
fn writes_change_the_store_with_allow_writes() {
    let server = Server::start(&["--demo-sessions", "500", "--allow-writes"]);
    let uk = total(&server, "$Country is 'UK'");
    assert!(uk > 0);
    let answer = server.post("/api/close", &json!({ "filter": "$Country is 'UK'" }));
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.json(), json!({ "count": uk }));
    assert_eq!(total(&server, "all"), 500 - uk);
    assert_eq!(total(&server, "$Country is 'UK'"), 0);

    let gold = total(&server, "Tier is 'gold'");
    let answer = server.post(
        "/api/roles",
        &json!({ "filter": "Tier is 'gold'", "remove": ["admin"], "add": ["vip", "admin"] }),
    );
    assert_eq!(answer.json(), json!({ "count": gold }));
    assert_eq!(total(&server, "hasRoles ['vip', 'admin']"), gold);
    // Either list may be left out.
    let answer = server.post(
        "/api/roles",
        &json!({ "filter": "hasRoles ['vip']", "remove": ["vip"] }),
    );
    assert_eq!(answer.json(), json!({ "count": gold }));
    assert_eq!(total(&server, "hasRoles ['vip']"), 0);

    let answer = server.post(
        "/api/properties",
        &json!({
            "filter": "Tier is 'gold'",
            "properties": { "Tier": "platinum", "$Country": "nz", "Status": null },
        }),
    );
    assert_eq!(answer.json(), json!({ "count": gold }));
    assert_eq!(
        total(
            &server,
            "Tier is 'platinum' and $Country is 'NZ' and not has Status"
        ),
        gold
    );

    // Nothing half-applies: an invalid change changes no session.
    for (body, message) in [
        (
            json!({ "filter": "all", "properties": { "Tier": "x", "$Principal": "eve" } }),
            "\"$Principal\" cannot be set",
        ),
        (
            json!({ "filter": "all", "properties": { "Tier": "x", "a b": "y" } }),
            "",
        ),
        (
            json!({ "filter": "all", "properties": { "Tier": "x", "$Country": null } }),
            "cannot be removed",
        ),
        (json!({ "filter": "all" }), "missing field `properties`"),
    ] {
        let answer = server.post("/api/properties", &body);
        assert_eq!(answer.status, 400, "{body}: {answer:?}");
        assert!(answer.message().contains(message), "{}", answer.message());
    }
    assert_eq!(total(&server, "Tier is 'x'"), 0);
    // A bad filter is positioned, and closes nothing.
    let answer = server.post("/api/close", &json!({ "filter": "Tier is" }));
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["error"]["column"], 8);
    assert_eq!(total(&server, "all"), 500 - uk);
}

#[test]
fn cross_site_requests_are_refused_and_change_nothing() {
    let server = Server::start(&["--demo-sessions", "500", "--allow-writes"]);
    let close_all = br#"{"filter": "all"}"#;
    // What a page of another site can send without a preflight, and what it
    // sends with one: each is refused before any route runs.
    for (headers, status) in [
        (vec![("Content-Type", "text/plain")], 415),
        (vec![("Content-Type", "text/plain;charset=UTF-8")], 415),
        (
            vec![("Content-Type", "application/x-www-form-urlencoded")],
            415,
        ),
        (vec![("Content-Type", "")], 415),
        (
            vec![
                ("Content-Type", "text/plain"),
                ("Origin", "https://attacker.example"),
            ],
            403,
        ),
        (vec![("Origin", "https://attacker.example")], 403),
        (vec![("Origin", "null")], 403),
        (vec![("Sec-Fetch-Site", "cross-site")], 403),
    ] {
        for path in ["/api/close", "/api/check", "/api/fetch"] {
            let answer = server.request_with("POST", path, &headers, Some(close_all));
            assert_eq!(answer.status, status, "{path} {headers:?}: {answer:?}");
            assert!(!answer.message().is_empty());
        }
    }
    assert_eq!(total(&server, "all"), 500);
    // The console's own page: its origin, same-origin fetch metadata.
    let origin = server.url();
    let answer = server.request_with(
        "POST",
        "/api/close",
        &[("Origin", &origin), ("Sec-Fetch-Site", "same-origin")],
        Some(br#"{"filter": "$SessionId is 's000001'"}"#),
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.json(), json!({ "count": 1 }));
    assert_eq!(total(&server, "all"), 499);
}

#[test]
fn a_request_for_another_host_is_misdirected() {
    let server = Server::start(&["--demo-sessions", "50", "--allow-host", "console.example"]);
    let port = server.addr.rsplit_once(':').expect("port").1.to_owned();
    // DNS rebinding: attacker.example resolves to this server, and the
    // browser sends its own name.
    for host in [
        format!("attacker.example:{port}"),
        "attacker.example".to_owned(),
        format!("localhost:{}", port.parse::<u16>().expect("port") + 1),
        "console.example:1".to_owned(),
    ] {
        for (method, path) in [
            ("GET", "/"),
            ("GET", "/api/info"),
            ("GET", "/api/watch?filter=all"),
            ("POST", "/api/fetch"),
        ] {
            let answer = server.request_with(
                method,
                path,
                &[("Host", &host)],
                Some(br#"{"filter": "all"}"#),
            );
            assert_eq!(answer.status, 421, "{host} {path}: {answer:?}");
            assert!(answer.message().contains("--allow-host"), "{answer:?}");
        }
    }
    let answer = server.request_with("GET", "/api/info", &[("Host", "")], None);
    assert_eq!(answer.status, 421, "no Host: {answer:?}");
    for host in [
        format!("localhost:{port}"),
        format!("LocalHost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("console.example:{port}"),
    ] {
        let answer = server.request_with("GET", "/api/info", &[("Host", &host)], None);
        assert_eq!(answer.status, 200, "{host}: {answer:?}");
    }
}

#[test]
fn every_answer_forbids_framing_and_foreign_code() {
    let server = Server::start(SMALL);
    let csp = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
               img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
    for (method, path, headers) in [
        ("GET", "/", vec![]),
        ("GET", "/console.js", vec![]),
        ("GET", "/favicon.ico", vec![]),
        ("GET", "/api/nothing", vec![]),
        ("POST", "/api/check", vec![]),
        ("POST", "/api/check", vec![("Content-Type", "text/plain")]),
        ("GET", "/", vec![("Host", "attacker.example")]),
    ] {
        let answer = server.request_with(method, path, &headers, Some(b"{\"filter\": \"all\"}"));
        assert_eq!(answer.header("x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(
            answer.header("content-security-policy"),
            Some(csp),
            "{path}"
        );
        assert_eq!(answer.header("x-content-type-options"), Some("nosniff"));
    }
    let events = server.events("/api/watch?filter=all");
    assert!(events.headers.contains(&"x-frame-options: deny".to_owned()));
    // The policy allows no inline code: the page has none.
    let page = server.request("GET", "/", None).body;
    for inline in ["<style", " style=", "<script>", "javascript:", "data:"] {
        assert!(!page.contains(inline), "the page has {inline:?}");
    }
    // No event handler attributes (` onclick=`).
    let handler = page.split(" on").skip(1).find(|rest| {
        let name = rest.trim_start_matches(|c: char| c.is_ascii_lowercase());
        name.len() < rest.len() && name.starts_with('=')
    });
    assert_eq!(handler, None, "the page has an inline handler");
    assert_eq!(page.matches("<script src=\"/console.js\"").count(), 1);
}

#[test]
fn writes_on_a_non_loopback_address_are_warned_about() {
    for (args, warned) in [
        (&["--addr", "0.0.0.0:0", "--allow-writes"][..], true),
        (&["--addr", "0.0.0.0:0"][..], false),
        (&["--allow-writes"][..], false),
    ] {
        let args: Vec<&str> = args.iter().chain(SMALL).copied().collect();
        let server = Server::start(&args);
        assert_eq!(
            server
                .preamble
                .contains("warning: --allow-writes on 0.0.0.0:"),
            warned,
            "{args:?}: {}",
            server.preamble
        );
        if warned {
            assert!(server.preamble.contains("no authentication"));
        }
    }
}

#[test]
fn a_watch_streams_the_count_and_the_sessions_that_enter_and_leave() {
    let server = Server::start(&["--demo-sessions", "500", "--allow-writes"]);
    let filter = "Tier is 'gold'";
    let gold = total(&server, filter);
    let mut events = server.events("/api/watch?filter=Tier%20is%20%27gold%27");
    assert_eq!(events.status, 200);
    assert!(
        events
            .headers
            .contains(&"content-type: text/event-stream".to_owned()),
        "{:?}",
        events.headers
    );
    assert_eq!(
        events.next(Duration::from_secs(10)),
        Some(("count".to_owned(), json!({ "count": gold })))
    );

    // Close some gold sessions: each is reported as left, then the count.
    let closing = "Tier is 'gold' and $Country in ['DE', 'FR', 'US']";
    let closed = server
        .post("/api/close", &json!({ "filter": closing }))
        .json()["count"]
        .as_u64()
        .expect("count");
    assert!(closed > 0);
    let seen = events.until(Duration::from_secs(10), |name, data| {
        name == "count" && data["count"] == gold - closed
    });
    let left: Vec<&Value> = seen
        .iter()
        .filter(|(name, _)| name == "left")
        .map(|(_, data)| data)
        .collect();
    assert_eq!(left.len() as u64, closed, "{seen:?}");
    assert!(left.iter().all(|d| d["closed"] == true));

    // Sessions changed into the filter enter it.
    let silver = total(&server, "Tier is 'silver' and $Country is 'JP'");
    server.post(
        "/api/properties",
        &json!({ "filter": "Tier is 'silver' and $Country is 'JP'", "properties": { "Tier": "gold" } }),
    );
    let seen = events.until(Duration::from_secs(10), |name, data| {
        name == "count" && data["count"] == gold - closed + silver
    });
    let entered = seen.iter().filter(|(name, _)| name == "entered").count();
    assert_eq!(entered as u64, silver);
    let (_, first) = seen
        .iter()
        .find(|(name, _)| name == "entered")
        .expect("entered");
    assert_eq!(first["properties"]["Tier"], "gold");
    assert!(first["id"].as_str().is_some());
}

#[test]
fn a_bad_watch_is_a_json_400() {
    let server = Server::start(SMALL);
    let answer = server.request("GET", "/api/watch?filter=Tier%20is", None);
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["error"]["column"], 8);
    let answer = server.request("GET", "/api/watch", None);
    assert_eq!(answer.status, 400);
    assert!(
        answer.message().contains("missing field `filter`"),
        "{}",
        answer.message()
    );
}

#[test]
fn churn_moves_the_watched_count() {
    let server = Server::start(&["--demo-sessions", "300", "--churn", "400"]);
    let info = server.request("GET", "/api/info", None).json();
    assert_eq!(info["churn"], 400.0);
    let mut events = server.events("/api/watch?filter=all");
    let (_, first) = events.next(Duration::from_secs(10)).expect("a count");
    let start = first["count"].clone();
    let seen = events.until(Duration::from_secs(20), |name, data| {
        name == "count" && data["count"] != start
    });
    assert!(seen
        .iter()
        .any(|(name, _)| name == "entered" || name == "left"));
    // Roles and properties change too.
    let mut events = server.events("/api/watch?filter=Status%20is%20%27Open%27");
    events.until(Duration::from_secs(20), |name, _| name == "entered");
}

#[test]
fn serves_a_file_of_json_lines_as_select_reads_it() {
    let dir = support::temp_path("serve", "d");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let good = dir.join("good.jsonl");
    std::fs::write(
        &good,
        concat!(
            r#"{"$SessionId": "b", "$Roles": ["admin", "ops"], "Tier": "gold"}"#,
            "\n\n",
            r#"{"$SessionId": "a", "$Roles": "\"ops\"", "Tier": "silver"}"#,
            "\n",
        ),
    )
    .expect("write");
    let server = Server::start(&[good.to_str().expect("path")]);
    let answer = server
        .post(
            "/api/fetch",
            &json!({ "filter": "hasRoles ['ops']", "properties": ["$Roles"] }),
        )
        .json();
    assert_eq!(
        answer,
        json!({ "total": 2, "sessions": [
            { "id": "a", "properties": { "$Roles": "\"ops\"" } },
            { "id": "b", "properties": { "$Roles": "\"admin\",\"ops\"" } },
        ]})
    );
    drop(server);

    // A line longer than `select` reads (16 MiB), though valid JSON.
    let long = format!(
        "{{\"$SessionId\": \"a\"}}\n{{\"$SessionId\": \"b\", \"x\": \"{}\"}}\n",
        "y".repeat(17 << 20)
    );
    for (name, content, message) in [
        (
            "long.jsonl",
            long.as_str(),
            "long.jsonl: line 2: longer than 16 MiB",
        ),
        (
            "bad.jsonl",
            "{\"$SessionId\": \"a\"}\n{\"x\": 1}\n",
            "bad.jsonl: line 2: invalid session JSON",
        ),
        (
            "noid.jsonl",
            "{\"Tier\": \"gold\"}\n",
            "line 1: the session has no $SessionId",
        ),
        (
            "dup.jsonl",
            "{\"$SessionId\": \"a\"}\n{\"$SessionId\": \"a\"}\n",
            "line 2: a session with $SessionId \"a\" already exists",
        ),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, content).expect("write");
        let err = Server::try_start(&[path.to_str().expect("path")])
            .err()
            .expect("an error");
        assert!(err.contains("exit status: 2"), "{err}");
        assert!(err.contains(message), "{err}");
    }
    let err = Server::try_start(&["--churn", "0"])
        .err()
        .expect("an error");
    assert!(err.contains("--churn"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn serves_the_embedded_console() {
    let server = Server::start(SMALL);
    for (path, content_type, marker) in [
        ("/", "text/html; charset=utf-8", "id=\"filter\""),
        ("/console.css", "text/css; charset=utf-8", "#canonical"),
        (
            "/console.js",
            "text/javascript; charset=utf-8",
            "/api/check",
        ),
    ] {
        let answer = server.request("GET", path, None);
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("content-type"), Some(content_type));
        assert!(answer.body.contains(marker), "{path}");
        // Nothing comes from elsewhere.
        assert!(!answer.body.contains("https://"), "{path}");
    }
}

/// Checking and counting as you type over 1 000 000 sessions: each
/// keystroke is a check and a fetch of the count (`limit: 0`), measured
/// here as round trips. Run it in release:
/// `cargo test --release -p session-filter-cli --test serve -- --ignored --nocapture`.
#[test]
#[ignore = "loads a million sessions; run by hand in release"]
fn keystroke_latency_over_a_million_sessions() {
    let started = Instant::now();
    let server = Server::start(&["--demo-sessions", "1000000"]);
    println!("loaded 1 000 000 sessions in {:.1?}", started.elapsed());
    for filter in [
        "$Principal is 'name42' and hasRoles ['trader']",
        "$Country in ['UK', 'NZ'] and Tier is 'gold' and Department is 'Legal'",
        "$SessionId in ['s000042', 's123456', 's999999']",
        "$ClientIP is '10.1.2.3' or $Principal is 'name7'",
    ] {
        // A keystroke: check, and when the text is a filter, count it.
        let mut keystroke = Vec::new();
        let mut valid = Vec::new();
        let mut page = Vec::new();
        // Each prefix of the filter is a keystroke.
        for end in (1..=filter.len()).filter(|&i| filter.is_char_boundary(i)) {
            let text = &filter[..end];
            let t = Instant::now();
            let answer = server.post("/api/check", &json!({ "filter": text }));
            if answer.status == 200 {
                server.post("/api/fetch", &json!({ "filter": text, "limit": 0 }));
                valid.push(t.elapsed());
            }
            keystroke.push(t.elapsed());
            if answer.status == 200 {
                let t = Instant::now();
                server.post(
                    "/api/fetch",
                    &json!({ "filter": text, "limit": 20, "properties": ["$Principal", "$Country"] }),
                );
                page.push(t.elapsed());
            }
        }
        let stats = |mut v: Vec<Duration>| {
            v.sort();
            let median = v.get(v.len() / 2).copied().unwrap_or_default();
            let max = v.last().copied().unwrap_or_default();
            format!("median {median:.2?}, max {max:.2?} over {}", v.len())
        };
        println!(
            "{filter}\n  every keystroke: {}\n  check+count of a valid filter: {}\n  first page of 20: {}",
            stats(keystroke),
            stats(valid),
            stats(page)
        );
        let total = total(&server, filter);
        println!("  matches: {total}");
    }
}
