//! Session metric collectors and `/metrics` (SPEC 11.9): the methods'
//! checks, collectors against a model under random changes, the exposition
//! checked by Prometheus's own `promtool`, and a real Prometheus scraping
//! the server.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{anonymous, principal, start, start_with, Raw};
use serde_json::{json, Value};
use session_filter::{string_to_roles, PropertyChange};
use session_filter_server::CloseReason;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A tiny deterministic generator (no dependency needed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// `GET path` over HTTP/1.0 (no chunking): the status and the body.
async fn http_get(addr: &str, path: &str) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut bytes))
        .await
        .expect("an HTTP answer in time")
        .unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

/// A collector's groups from `metrics.fetch`: labels → (sessions, opened,
/// closed), and its ungrouped figure.
type Groups = BTreeMap<Vec<(String, String)>, (u64, u64, u64)>;

fn groups_of(fetched: &Value, name: &str) -> (Groups, u64) {
    let c = &fetched["collectors"][name];
    let mut groups = Groups::new();
    for g in c["groups"].as_array().expect("groups") {
        let labels: Vec<(String, String)> = g["labels"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        let figures = (
            g["sessions"].as_u64().unwrap(),
            g["opened"].as_u64().unwrap(),
            g["closed"].as_u64().unwrap(),
        );
        assert!(groups.insert(labels, figures).is_none(), "a group twice");
    }
    (groups, c["ungrouped"].as_u64().unwrap())
}

#[tokio::test]
async fn methods_check_params_then_permissions_then_filters() {
    let server = start().await;
    let url = server.url();
    let (mut ops, _) = principal(&url, "ops").await;
    let (mut viewer, _) = principal(&url, "viewer").await;
    let (mut client, _) = anonymous(&url, None).await;

    let put = |p: Value| p;
    // Params first (-32602), whoever asks.
    for bad in [
        json!({"name": "", "filter": "all"}),
        json!({"name": "c", "filter": "all", "max_groups": 0}),
        json!({"name": "c", "filter": "all", "max_groups": 10_001}),
        json!({"name": "c", "filter": "all", "max_groups": -1}),
        json!({"name": "c", "filter": "all", "max_groups": "ten"}),
        json!({"name": "c"}),
        json!({"name": "c", "filter": "all", "group_by": "Desk"}),
        json!({"name": "c", "filter": "all", "remove_empty": 1}),
    ] {
        assert_eq!(
            viewer
                .code("metrics.put_session_collector", bad.clone())
                .await,
            -32602,
            "{bad}"
        );
        assert_eq!(
            ops.code("metrics.put_session_collector", put(bad.clone()))
                .await,
            -32602,
            "{bad}"
        );
    }
    // Then permissions: CONTROL_SERVER to change, VIEW_SERVER to read.
    let good = json!({"name": "c", "filter": "all"});
    for (method, params) in [
        ("metrics.put_session_collector", good.clone()),
        ("metrics.remove_session_collector", json!({"name": "c"})),
        ("metrics.list_session_collectors", json!({})),
        ("metrics.fetch", json!({})),
    ] {
        let r = viewer.request(method, params.clone()).await;
        assert_eq!(r["error"]["code"], 103, "{method}: {r}");
        let wanted = if method.ends_with("collector") {
            "CONTROL_SERVER"
        } else {
            "VIEW_SERVER"
        };
        assert_eq!(r["error"]["data"]["permission"], wanted, "{method}");
        assert_eq!(client.code(method, params).await, 103, "{method}");
    }
    // Then filters and keys (106).
    let r = ops
        .request(
            "metrics.put_session_collector",
            json!({"name": "c", "filter": "Desk is"}),
        )
        .await;
    assert_eq!(r["error"]["code"], 106, "{r}");
    assert_eq!(r["error"]["data"]["offset"], 7, "{r}");
    for group_by in [
        json!(["a-b", "a.b"]),
        json!(["Desk", "Desk"]),
        json!(["collector"]),
        json!(["__x"]),
        json!(["$Nope"]),
        json!(["two words"]),
        json!([""]),
    ] {
        assert_eq!(
            ops.code(
                "metrics.put_session_collector",
                json!({"name": "c", "filter": "all", "group_by": group_by.clone()}),
            )
            .await,
            106,
            "{group_by}"
        );
    }
    // Nothing was put by the failures.
    let listed = ops.ok("metrics.list_session_collectors", json!({})).await;
    assert_eq!(listed, json!({"collectors": []}));

    // Defaults filled in, the filter as given, in name order.
    ops.ok(
        "metrics.put_session_collector",
        json!({"name": "z", "filter": "Desk is  'FX'", "group_by": ["$Country"]}),
    )
    .await;
    ops.ok(
        "metrics.put_session_collector",
        json!({"name": "a", "filter": "all", "max_groups": 3, "remove_empty": true,
               "export": false, "group_by": null}),
    )
    .await;
    let listed = ops.ok("metrics.list_session_collectors", json!({})).await;
    assert_eq!(
        listed,
        json!({"collectors": [
            {"name": "a", "filter": "all", "group_by": [], "max_groups": 3,
             "remove_empty": true, "export": false},
            {"name": "z", "filter": "Desk is  'FX'", "group_by": ["$Country"],
             "max_groups": 250, "remove_empty": false, "export": true},
        ]})
    );
    // Removing, an unknown name too.
    assert_eq!(
        ops.ok("metrics.remove_session_collector", json!({"name": "a"}))
            .await,
        json!({})
    );
    assert_eq!(
        ops.ok("metrics.remove_session_collector", json!({"name": "nope"}))
            .await,
        json!({})
    );
    let fetched = ops
        .ok("metrics.fetch", json!({"names": ["a", "z", "nope"]}))
        .await;
    let names: Vec<&String> = fetched["collectors"].as_object().unwrap().keys().collect();
    assert_eq!(names, ["z"], "names that are no collector's are left out");
}

#[tokio::test]
async fn groups_replacement_overflow_and_server_figures() {
    let server = start().await;
    let url = server.url();
    let (mut ops, _) = principal(&url, "ops").await;
    let mut desks = Vec::new();
    let mut ids = Vec::new();
    for desk in ["FX", "FX", "Rates", "Credit", "Equities"] {
        let (raw, id) = anonymous(&url, Some(desk)).await;
        desks.push(raw);
        ids.push(id);
    }
    let filter = common::only(&ids.iter().map(String::as_str).collect::<Vec<_>>());
    ops.ok(
        "metrics.put_session_collector",
        json!({"name": "desks", "filter": filter, "group_by": ["Desk"], "max_groups": 2}),
    )
    .await;
    let fetched = ops.ok("metrics.fetch", json!({"names": ["desks"]})).await;
    let (groups, ungrouped) = groups_of(&fetched, "desks");
    let total: u64 = groups.values().map(|g| g.0).sum();
    assert_eq!(groups.len(), 2, "{groups:?}");
    assert_eq!(total + ungrouped, 5);
    assert!(ungrouped >= 1);

    // A group appears with no groups kept, with a session that changes.
    let no_group = json!({"name": "desks", "filter": filter});
    ops.ok("metrics.put_session_collector", no_group).await;
    let fetched = ops.ok("metrics.fetch", json!({"names": ["desks"]})).await;
    let (groups, ungrouped) = groups_of(&fetched, "desks");
    assert_eq!(ungrouped, 0);
    assert_eq!(groups[&vec![]], (5, 5, 0), "a replacement starts afresh");

    // remove_empty: a group that falls to 0 goes, and starts from 0 again.
    ops.ok(
        "metrics.put_session_collector",
        json!({"name": "desks", "filter": filter, "group_by": ["Desk"], "remove_empty": true}),
    )
    .await;
    ops.ok(
        "clients.set_properties",
        json!({"session_id": ids[3], "properties": {"Desk": "Rates"}}),
    )
    .await;
    let fetched = ops.ok("metrics.fetch", json!({"names": ["desks"]})).await;
    let (groups, _) = groups_of(&fetched, "desks");
    let desk = |d: &str| vec![("Desk".to_string(), d.to_string())];
    assert_eq!(groups.get(&desk("Credit")), None, "{groups:?}");
    assert_eq!(groups[&desk("Rates")], (2, 2, 0));
    ops.ok(
        "clients.set_properties",
        json!({"session_id": ids[3], "properties": {"Desk": "Credit"}}),
    )
    .await;
    ops.ok(
        "clients.set_properties",
        json!({"session_id": ids[4], "properties": {"Desk": null}}),
    )
    .await;
    let fetched = ops.ok("metrics.fetch", json!({"names": ["desks"]})).await;
    let (groups, _) = groups_of(&fetched, "desks");
    assert_eq!(groups[&desk("Credit")], (1, 1, 0), "{groups:?}");
    assert_eq!(groups[&desk("Rates")], (1, 2, 1));
    assert_eq!(
        groups[&desk("")],
        (1, 1, 0),
        "an absent key groups under \"\""
    );

    // The server's own figures.
    let (mut watcher, _) = principal(&url, "ops").await;
    watcher
        .ok("clients.listen", json!({"filter": "Desk is 'FX'"}))
        .await;
    ops.ok("locks.acquire", json!({"name": "locks/a"})).await;
    drop(desks.remove(0)); // a lost connection: disconnected
    tokio::time::sleep(Duration::from_millis(200)).await;
    ops.ok("clients.close", json!({"session_id": ids[1]})).await;
    let fetched = ops.ok("metrics.fetch", json!({})).await;
    let s = &fetched["server"];
    assert_eq!(s["sessions"]["disconnected"], 1, "{s}");
    assert_eq!(s["sessions"]["active"], 5, "{s}"); // 3 desks, ops, watcher
    assert_eq!(s["opened"], 7, "{s}");
    assert_eq!(s["closed"]["CLOSED_BY_CONTROLLER"], 1, "{s}");
    assert_eq!(s["listeners"], 1, "{s}");
    assert_eq!(s["locks_held"], 1, "{s}");
    assert_eq!(s["lock_waiters"], 0, "{s}");
}

/// Every group of every collector equals what `clients.fetch` finds for
/// the collector's filter, grouped the same way; groups at 0 stay listed.
async fn check_against_store(ops: &mut Raw, collectors: &[(&str, &str, &[&str])]) {
    let fetched = ops.ok("metrics.fetch", json!({})).await;
    for (name, filter, keys) in collectors {
        let (groups, ungrouped) = groups_of(&fetched, name);
        let rows = ops
            .ok(
                "clients.fetch",
                json!({"filter": filter, "properties": keys, "limit": 10_000}),
            )
            .await;
        let mut expected: BTreeMap<Vec<(String, String)>, u64> = BTreeMap::new();
        for row in rows["sessions"].as_array().unwrap() {
            let mut labels: Vec<(String, String)> = keys
                .iter()
                .map(|k| {
                    let v = row["properties"][*k].as_str().unwrap_or("").to_owned();
                    let v = if *k == "$Roles" {
                        let mut roles = string_to_roles(&v).unwrap();
                        roles.sort();
                        session_filter::roles_to_string(roles)
                    } else {
                        v
                    };
                    (k.to_string(), v)
                })
                .collect();
            labels.sort(); // as the JSON object of metrics.fetch has them
            *expected.entry(labels).or_default() += 1;
        }
        assert_eq!(ungrouped, 0, "{name}: no overflow at 250 groups");
        if std::env::var("DEBUG_METRICS").is_ok() {
            eprintln!("{name}\n got {groups:?}\n expected {expected:?}");
        }
        for (labels, (sessions, opened, closed)) in &groups {
            assert_eq!(
                *sessions,
                expected.get(labels).copied().unwrap_or(0),
                "{name} {labels:?}"
            );
            assert_eq!(opened - closed, *sessions, "{name} {labels:?}");
        }
        for (labels, n) in &expected {
            assert_eq!(
                groups.get(labels).map(|g| g.0),
                Some(*n),
                "{name} {labels:?}"
            );
        }
        // And with clients.count where every value is present.
        for labels in expected.keys().take(3) {
            if labels.iter().any(|(k, v)| v.is_empty() || k == "$Roles") {
                continue;
            }
            let mut f = format!("({filter})");
            for (k, v) in labels {
                f.push_str(&format!(" and {k} is '{v}'"));
            }
            let counted = ops.ok("clients.count", json!({ "filter": f })).await;
            assert_eq!(counted["count"], json!(expected[labels]), "{f}");
        }
    }
}

#[tokio::test]
async fn collectors_follow_a_model_under_random_changes() {
    // No reconnect timeout closes a session behind the test's back: the
    // test is the only writer, so the figures are exact at every check.
    let server = start_with(|c| {
        c.replace(
            "reconnect_timeout_ms = 2000",
            "reconnect_timeout_ms = 600000",
        )
    })
    .await;
    let url = server.url();
    let store = server.server.store().clone();
    let (mut ops, _) = principal(&url, "ops").await;
    let collectors: &[(&str, &str, &[&str])] = &[
        ("traders", "hasRoles ['trader']", &["$Country"]),
        ("gold", "Tier is 'gold'", &[]),
        (
            "desks",
            "Desk is 'FX' or Tier is 'silver'",
            &["Desk", "$Roles"],
        ),
        ("everyone", "all", &["Tier"]),
    ];
    for (name, filter, keys) in collectors {
        ops.ok(
            "metrics.put_session_collector",
            json!({"name": name, "filter": filter, "group_by": keys}),
        )
        .await;
    }
    let countries = ["FR", "DE", "GB", ""];
    let tiers = ["gold", "silver", "bronze"];
    let desks = ["FX", "Rates", "Credit"];
    let roles = ["trader", "viewer", "admin"];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut live: Vec<String> = Vec::new();
    let mut connected: Vec<(Raw, String)> = Vec::new();
    for step in 0..400 {
        match rng.below(10) {
            0 | 1 => {
                let id = format!("s{step}");
                let mut props = vec![
                    ("$SessionId".to_string(), id.clone()),
                    ("$Principal".to_string(), String::new()),
                    ("$Country".to_string(), rng.pick(&countries).to_owned()),
                    (
                        "$Roles".to_string(),
                        session_filter::roles_to_string([rng.pick(&roles)]),
                    ),
                    ("Tier".to_string(), rng.pick(&tiers).to_owned()),
                ];
                if rng.below(3) > 0 {
                    props.push(("Desk".to_string(), rng.pick(&desks).to_owned()));
                }
                store.insert(props).unwrap();
                live.push(id);
            }
            2 | 3 if !live.is_empty() => {
                let id = &live[rng.below(live.len())];
                let change = match rng.below(4) {
                    0 => PropertyChange::new().set("Tier", rng.pick(&tiers)),
                    1 => PropertyChange::new().set("Desk", rng.pick(&desks)),
                    2 => PropertyChange::new().remove("Desk"),
                    _ => PropertyChange::new().set("$Country", rng.pick(&countries)),
                };
                store.change_session_properties(id, &change).unwrap();
            }
            4 if !live.is_empty() => {
                let id = &live[rng.below(live.len())];
                let filter = format!("$SessionId is '{id}'");
                let (remove, add) = (rng.pick(&roles), rng.pick(&roles));
                store.change_roles(&filter, &[remove], &[add]).unwrap();
            }
            5 if !live.is_empty() => {
                let id = live.swap_remove(rng.below(live.len()));
                assert!(server
                    .server
                    .close_session(&id, CloseReason::ClosedByController));
            }
            6 => {
                let desk = rng.pick(&["FX", "Rates"]);
                connected.push(anonymous(&url, Some(desk)).await);
            }
            7 if !connected.is_empty() => {
                // A lost connection: the session stays, disconnected.
                let (raw, _) = connected.swap_remove(rng.below(connected.len()));
                drop(raw);
            }
            8 if !connected.is_empty() => {
                let (mut raw, _) = connected.swap_remove(rng.below(connected.len()));
                raw.ok("close", json!({})).await;
            }
            _ => {
                ops.ok(
                    "clients.set_properties",
                    json!({"filter": "Tier is 'bronze' and Desk is 'Credit'",
                           "properties": {"Tier": "silver"}}),
                )
                .await;
            }
        }
        // A single writer: exact at every moment, checked often.
        if step % 4 == 0 {
            check_against_store(&mut ops, collectors).await;
        }
    }
    check_against_store(&mut ops, collectors).await;

    // The exposition gives the same figures.
    let (status, head, body) = http_get(&server.addr.to_string(), "/metrics").await;
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    let fetched = ops.ok("metrics.fetch", json!({})).await;
    let (groups, _) = groups_of(&fetched, "everyone");
    for (labels, (sessions, opened, closed)) in &groups {
        let tier = &labels[0].1;
        for (family, value) in [
            ("session_filter_collector_sessions", sessions),
            ("session_filter_collector_opened_total", opened),
            ("session_filter_collector_closed_total", closed),
        ] {
            let line = format!("{family}{{collector=\"everyone\",Tier=\"{tier}\"}} {value}");
            assert!(body.lines().any(|l| l == line), "{line} in\n{body}");
        }
    }
}

/// `promtool check metrics` on an exposition, or None when promtool is
/// not installed (a failure under CI=true).
fn promtool(text: &str) -> Option<(bool, String)> {
    let binary = ["/usr/bin/promtool", "/usr/local/bin/promtool"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let Some(binary) = binary else {
        let message = "promtool is not installed: install it with \
                       `apt-get update && apt-get install -y prometheus` (Debian/Ubuntu)";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{message}");
        }
        eprintln!("SKIPPED: {message}");
        return None;
    };
    use std::io::Write;
    let mut child = std::process::Command::new(binary)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), said))
}

#[tokio::test]
async fn exposition_names_escapes_and_parses() {
    let server = start().await;
    let url = server.url();
    let store = server.server.store().clone();
    let (mut ops, _) = principal(&url, "ops").await;
    store
        .insert([
            ("$SessionId", "q1"),
            ("$Country", "FR"),
            ("2fa", "a \"quoted\" \\ value\nwith a newline"),
        ])
        .unwrap();
    ops.ok(
        "metrics.put_session_collector",
        json!({"name": "odd \"name\"", "filter": "all", "group_by": ["$Country", "2fa"]}),
    )
    .await;
    ops.ok(
        "metrics.put_session_collector",
        json!({"name": "hidden", "filter": "all", "export": false}),
    )
    .await;
    ops.ok("clients.count", json!({"filter": "all"})).await;
    ops.code("no.such.method", json!({})).await;
    ops.ok("metrics.fetch", json!({})).await;
    let text = server.server.metrics_text();
    for wanted in [
        "# TYPE session_filter_collector_sessions gauge",
        "# TYPE session_filter_collector_opened_total counter",
        "# TYPE session_filter_collector_closed_total counter",
        "# TYPE session_filter_collector_ungrouped gauge",
        r#"session_filter_collector_sessions{collector="odd \"name\"",_Country="FR",_2fa="a \"quoted\" \\ value\nwith a newline"} 1"#,
        r#"session_filter_collector_ungrouped{collector="odd \"name\""} 0"#,
        "# TYPE session_filter_sessions gauge",
        "# TYPE session_filter_sessions_opened_total counter",
        "session_filter_sessions_opened_total 1",
        r#"session_filter_sessions{state="active"} 2"#,
        r#"session_filter_sessions_closed_total{reason="CLOSED_BY_CONTROLLER"} 0"#,
        r#"session_filter_requests_total{method="clients.count",outcome="ok"} 1"#,
        r#"session_filter_requests_total{method="unknown",outcome="error"} 1"#,
        "# TYPE session_filter_request_duration_seconds histogram",
        r#"session_filter_request_duration_seconds_count{method="clients.count"} 1"#,
        r#"session_filter_request_duration_seconds_bucket{method="clients.count",le="+Inf"} 1"#,
        "session_filter_outbound_dropped_total 0",
        "session_filter_listeners 0",
        "session_filter_locks_held 0",
        "session_filter_lock_waiters 0",
        "session_filter_messages_sent_total 0",
    ] {
        assert!(
            text.lines().any(|l| l == wanted),
            "{wanted}\nnot in\n{text}"
        );
    }
    assert!(!text.contains("hidden"), "export: false stays off /metrics");
    if let Some((ok, said)) = promtool(&text) {
        assert!(ok, "promtool check metrics: {said}\n{text}");
    }
}

/// A free loopback port (bound and let go).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn metrics_listen_serves_there_and_not_on_the_main_listener() {
    let port = free_port();
    let server = start_with(|c| {
        format!(
            "{c}\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n\n[[metrics.collectors]]\n\
             name = \"configured\"\nfilter = \"Desk is 'FX'\"\ngroup_by = [\"Desk\"]\n"
        )
    })
    .await;
    let (_fx, _) = anonymous(&server.url(), Some("FX")).await;
    let (mut ops, _) = principal(&server.url(), "ops").await;
    let fetched = ops.ok("metrics.fetch", json!({})).await;
    let (groups, _) = groups_of(&fetched, "configured");
    assert_eq!(
        groups[&vec![("Desk".to_string(), "FX".to_string())]],
        (1, 1, 0)
    );
    let mut answer = (0, String::new(), String::new());
    for _ in 0..50 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            answer = http_get(&format!("127.0.0.1:{port}"), "/metrics").await;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(answer.0, 200, "{}", answer.1);
    assert!(answer
        .2
        .contains(r#"session_filter_collector_sessions{collector="configured",Desk="FX"} 1"#));
    let (status, _, _) = http_get(&server.addr.to_string(), "/metrics").await;
    assert_eq!(status, 404, "not on the main listener");
}

/// Prometheus's binary, or None (a failure under CI=true).
fn prometheus_binary() -> Option<&'static str> {
    let found = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    if found.is_none() {
        let message = "prometheus is not installed: install it with \
                       `apt-get update && apt-get install -y prometheus` (Debian/Ubuntu)";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{message}");
        }
        eprintln!("SKIPPED: {message}");
    }
    found
}

/// Kills the child when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_real_prometheus_scrapes_what_metrics_fetch_gives() {
    let Some(binary) = prometheus_binary() else {
        return;
    };
    let server = start().await;
    let url = server.url();
    let (mut ops, _) = principal(&url, "ops").await;
    let mut sessions = Vec::new();
    for desk in ["FX", "FX", "Rates"] {
        sessions.push(anonymous(&url, Some(desk)).await);
    }
    ops.ok(
        "metrics.put_session_collector",
        json!({"name": "prom", "filter": "Desk is 'FX' or Desk is 'Rates'",
               "group_by": ["Desk", "$ClientType"]}),
    )
    .await;

    let dir = std::env::temp_dir().join(format!("sf-prometheus-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: session-filter\n    metrics_path: /metrics\n\
             \x20   static_configs:\n      - targets: ['{}']\n",
            server.addr
        ),
    )
    .unwrap();
    let port = free_port();
    let _prometheus = Child(
        std::process::Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let fetched = ops.ok("metrics.fetch", json!({"names": ["prom"]})).await;
    let (groups, _) = groups_of(&fetched, "prom");
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for (labels, (sessions, _, _)) in &groups {
        let desk = labels.iter().find(|(k, _)| k == "Desk").unwrap();
        expected.insert(desk.1.clone(), *sessions);
    }
    assert_eq!(expected.values().sum::<u64>(), 3);
    let query = "/api/v1/query?query=session_filter_collector_sessions%7Bcollector%3D%22prom%22%7D";
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "Prometheus never had the figures; last answer: {last}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            continue;
        }
        let (status, _, body) = http_get(&format!("127.0.0.1:{port}"), query).await;
        last = body.clone();
        if status != 200 {
            continue;
        }
        let Ok(answer) = serde_json::from_str::<Value>(&body) else {
            continue;
        };
        let mut seen: BTreeMap<String, u64> = BTreeMap::new();
        for r in answer["data"]["result"].as_array().into_iter().flatten() {
            assert_eq!(r["metric"]["_ClientType"], "OTHER", "{r}");
            let desk = r["metric"]["Desk"].as_str().unwrap_or("").to_owned();
            let value = r["value"][1].as_str().and_then(|v| v.parse().ok());
            seen.insert(desk, value.unwrap_or(u64::MAX));
        }
        if seen == expected {
            break;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
