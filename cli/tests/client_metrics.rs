//! `session-filter client metrics put|remove|list|fetch` against a real
//! `session-filter server` (SPEC 11.9).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_session-filter");

/// Kills the server when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A server with 200 demo sessions; its session URL and metrics URL.
fn server(dir: &std::path::Path) -> (Server, String, String) {
    let config = dir.join("server.toml");
    std::fs::write(
        &config,
        r#"
[server]
listen = "127.0.0.1:0"
[anonymous]
allow = true
roles = ["ADMIN"]
[roles.ADMIN]
global = ["VIEW_SESSION", "VIEW_SERVER", "CONTROL_SERVER"]
[metrics]
listen = "127.0.0.1:0"
[[metrics.collectors]]
name = "configured"
filter = "all"
"#,
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["server", "--demo", "200", "--config"])
        .arg(&config)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let server = Server(child);
    let (mut url, mut metrics) = (None, None);
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        if let Some(addr) = line.strip_prefix("listening on http://") {
            url = Some(format!("ws://{addr}/session"));
        }
        if let Some(m) = line.strip_prefix("metrics on ") {
            metrics = Some(m.to_owned());
        }
        if url.is_some() && metrics.is_some() {
            break;
        }
    }
    (
        server,
        url.expect("listening on"),
        metrics.expect("metrics on"),
    )
}

fn client(url: &str, args: &[&str]) -> (bool, Vec<Value>, String) {
    let out = Command::new(BIN)
        .args(["client", "--url", url, "metrics"])
        .args(args)
        .output()
        .unwrap();
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (
        out.status.success(),
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn put_list_fetch_remove() {
    let dir = std::env::temp_dir().join(format!("sf-client-metrics-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (_server, url, metrics) = server(&dir);
    assert!(metrics.starts_with("http://127.0.0.1:") && metrics.ends_with("/metrics"));

    let (ok, out, err) = client(
        &url,
        &[
            "put",
            "gold",
            "Tier is 'gold'",
            "--group-by",
            "$Country",
            "--max-groups",
            "3",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(out, [serde_json::json!({})]);
    let (ok, out, _) = client(&url, &["list"]);
    assert!(ok);
    let names: Vec<&str> = out.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["configured", "gold"]);
    assert_eq!(out[1]["max_groups"], 3);
    assert_eq!(out[1]["group_by"], serde_json::json!(["$Country"]));

    let (ok, out, _) = client(&url, &["fetch", "gold", "configured"]);
    assert!(ok);
    let gold = &out[0]["collectors"]["gold"];
    let groups = gold["groups"].as_array().unwrap();
    assert!(groups.len() <= 3, "{gold}");
    let grouped: u64 = groups.iter().map(|g| g["sessions"].as_u64().unwrap()).sum();
    let (ok, out2, _) = client(&url, &["fetch", "configured"]);
    assert!(ok);
    let everyone = out2[0]["collectors"]["configured"]["groups"][0]["sessions"]
        .as_u64()
        .unwrap();
    assert!(everyone >= 200, "the demo sessions, and the client's own");
    assert!(grouped + gold["ungrouped"].as_u64().unwrap() > 0);

    let (ok, _, err) = client(&url, &["put", "bad", "Tier is"]);
    assert!(!ok);
    assert!(err.contains("106"), "{err}");
    let (ok, _, _) = client(&url, &["remove", "gold"]);
    assert!(ok);
    let (_, out, _) = client(&url, &["list"]);
    assert_eq!(out.len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}
