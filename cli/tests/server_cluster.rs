//! SPEC section 12: session servers in a cluster over NATS, with real
//! processes: a `nats-server` of its own per test (JetStream with file
//! storage, on a free loopback port), three `session-filter server --nats
//! URL --cluster NAME` processes, and the Rust client crate against any of
//! them. A member is killed with SIGKILL, paused with SIGSTOP (a slow
//! member), and the broker is restarted.
//!
//! Without `nats-server` these tests skip with a message; under CI
//! (`CI=true`) a missing server is a failure. Every process is killed when
//! its guard drops, and every wait is bounded.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use session_filter_client::{connect, OpenOptions, Session, Target};
use support::nats::{nats, NatsServer};

mod support;

const BIN: &str = env!("CARGO_BIN_EXE_session-filter");
const PASSWORD: &str = "cluster test password";

// ---------------------------------------------------------------- members

fn config(name: &str, request_timeout_ms: u64) -> String {
    let hash = session_filter_server::hash_password(PASSWORD).expect("a hash");
    format!(
        r#"
[server]
name = "{name}"
listen = "127.0.0.1:0"
reconnect_timeout_ms = 1000

[anonymous]
allow = true
roles = ["CLIENT"]

[principals.ops]
password_hash = "{hash}"
roles = ["OPS"]

[roles.OPS]
global = ["VIEW_SESSION", "MODIFY_SESSION", "REGISTER_HANDLER", "VIEW_SERVER"]
paths = {{ "locks" = ["ACQUIRE_LOCK"], "alerts" = ["SEND_TO_SESSION"] }}

[[trusted_properties]]
key = "Desk"
values = ["FX", "Rates"]

[cluster]
request_timeout_ms = {request_timeout_ms}
"#
    )
}

/// A `session-filter server` process in a cluster, killed when dropped.
struct Member {
    name: String,
    child: Child,
    url: String,
    _lines: mpsc::Receiver<String>,
    config: PathBuf,
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.config);
    }
}

impl Member {
    /// Starts a member; `Err` with its stderr when it exits instead.
    fn try_start(
        nats: &NatsServer,
        cluster: &str,
        name: &str,
        timeout_ms: u64,
    ) -> Result<Member, String> {
        Member::try_start_with(nats, cluster, name, timeout_ms, &[])
    }

    /// [`Member::try_start`] with more arguments for the server; the binary
    /// is `SESSION_FILTER_BIN` when set (a release build for figures).
    fn try_start_with(
        nats: &NatsServer,
        cluster: &str,
        name: &str,
        timeout_ms: u64,
        extra: &[&str],
    ) -> Result<Member, String> {
        static CONFIGS: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "session-server-{}-{}-{name}.toml",
            std::process::id(),
            CONFIGS.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, config(name, timeout_ms)).expect("the config");
        let bin = std::env::var("SESSION_FILTER_BIN").unwrap_or_else(|_| BIN.to_owned());
        let mut child = Command::new(bin)
            .arg("server")
            .arg("--config")
            .arg(&path)
            .args(["--nats", &nats.url(), "--cluster", cluster])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the server starts");
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        let echo = std::env::var_os("SESSION_FILTER_CLUSTER_LOG").is_some();
        let who = name.to_owned();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if echo {
                    eprintln!("[{who}] {line}");
                }
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    if let Some(addr) = line.strip_prefix("listening on http://") {
                        return Ok(Member {
                            name: name.to_owned(),
                            child,
                            url: format!("ws://{addr}/session"),
                            _lines: rx,
                            config: path,
                        });
                    }
                    seen.push(line);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_file(&path);
        Err(seen.join("\n"))
    }

    fn start(nats: &NatsServer, cluster: &str, name: &str, timeout_ms: u64) -> Member {
        Member::try_start(nats, cluster, name, timeout_ms)
            .unwrap_or_else(|e| panic!("member {name} did not start: {e}"))
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// SIGKILL: no chance to deregister or close anything.
    fn kill_9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    async fn ops(&self) -> Session {
        connect(&self.url, OpenOptions::principal("ops", PASSWORD))
            .await
            .expect("an ops session")
    }

    async fn client(&self, desk: &str) -> Session {
        connect(&self.url, OpenOptions::anonymous().property("Desk", desk))
            .await
            .expect("a client session")
    }
}

fn three(nats: &NatsServer, cluster: &str, timeout_ms: u64) -> Vec<Member> {
    ["m1", "m2", "m3"]
        .iter()
        .map(|n| Member::start(nats, cluster, n, timeout_ms))
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

fn code(r: Result<Value, session_filter_client::Error>) -> i64 {
    match r {
        Ok(v) => panic!("expected an error, got {v}"),
        Err(e) => e.code().unwrap_or_else(|| panic!("not an RPC error: {e}")),
    }
}

// ---------------------------------------------------------------- tests

#[test]
fn requests_by_id_and_by_filter_reach_every_member() {
    let Some(nats) = nats() else { return };
    let members = three(&nats, "c1", 2000);
    // A second member under a live name does not start.
    let refused = Member::try_start(&nats, "c1", "m2", 2000);
    assert!(
        refused.as_ref().is_err_and(|e| e.contains("registered")),
        "a duplicate name must be refused: {:?}",
        refused.as_ref().map(|m| &m.name)
    );
    runtime().block_on(async {
        let mut ops = Vec::new();
        let mut clients = Vec::new();
        for (i, m) in members.iter().enumerate() {
            ops.push(m.ops().await);
            // Member i holds i + 1 FX sessions and one Rates session.
            for _ in 0..=i {
                clients.push((m.name.clone(), m.client("FX").await));
            }
            clients.push((m.name.clone(), m.client("Rates").await));
        }
        // 3 ops + 6 FX + 3 Rates.
        for o in &ops {
            assert_eq!(o.count("all").await.expect("count"), 12);
            let fx = o.call("clients.count", json!({"filter": "Desk is 'FX'"})).await.expect("count");
            assert_eq!(fx["count"], 6);
            assert_eq!(fx["partial"], false);
            assert_eq!(fx["missing"], json!([]));
        }
        // By id, from every member to every session.
        for o in &ops {
            for (member, c) in &clients {
                let p = o.get_properties(&c.id(), Some(&["$ServerName", "Desk"])).await.expect("get");
                assert_eq!(p["$ServerName"], json!(member), "{p}");
            }
        }
        // A bad filter is refused before anything is sent.
        assert_eq!(code(ops[0].call("clients.count", json!({"filter": "Desk is"})).await), 106);
        // An id no live member holds is 107.
        assert_eq!(code(ops[0].get_properties("00000000deadbeef-0000000000000001", None).await), 107);
        // Pages merge in order across members.
        let page = ops[1]
            .fetch("Desk is 'FX'", json!({"properties": ["$ServerName"], "order_by": "$ServerName", "descending": true, "offset": 1, "limit": 4}))
            .await
            .expect("fetch");
        assert_eq!(page["total"], 6);
        let servers: Vec<&str> = page["sessions"].as_array().expect("rows").iter().map(|r| r["properties"]["$ServerName"].as_str().unwrap_or("")).collect();
        assert_eq!(servers, ["m3", "m3", "m2", "m2"], "{page}");
        // The ordering key is not returned unless asked for.
        let page = ops[0].fetch("Desk is 'FX'", json!({"order_by": "$ServerName", "limit": 6})).await.expect("fetch");
        let rows = page["sessions"].as_array().expect("rows");
        assert_eq!(rows.len(), 6);
        assert!(rows.iter().all(|r| r["properties"] == json!({})), "{page}");
        let ids: Vec<String> = rows.iter().map(|r| r["id"].as_str().unwrap_or("").to_owned()).collect();
        let fx_on = |m: &str| clients.iter().filter(|(n, c)| n == m && c.opened()["properties"]["Desk"] == "FX").count();
        assert_eq!(fx_on("m1") + fx_on("m2") + fx_on("m3"), 6);
        assert_eq!(ids.len(), 6);
        // A change by id on another member.
        let (_, target) = &clients[clients.len() - 1];
        let changed = ops[0].set_properties(Target::id(target.id()), &[("Desk", Some("FX"))]).await.expect("set");
        assert_eq!(changed["changed"]["Desk"], "Rates", "{changed}");
        assert_eq!(ops[2].count("Desk is 'FX'").await.expect("count"), 7);
        // A change by filter on every member.
        let r = ops[1].call("clients.change_roles", json!({"filter": "Desk is 'Rates'", "add": ["RATES"]})).await.expect("roles");
        assert_eq!(r["count"], 2, "{r}");
        assert_eq!(ops[0].count("hasRoles ['RATES']").await.expect("count"), 2);
        // Close by id across members: the target is told.
        let (_, victim) = &clients[0];
        assert_eq!(ops[2].close_sessions(Target::id(victim.id())).await.expect("close"), 1);
        let deadline = Instant::now() + Duration::from_secs(5);
        while victim.closed_reason().is_none() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(victim.closed_reason().as_deref(), Some("CLOSED_BY_CONTROLLER"));
        assert_eq!(code(ops[1].get_properties(&victim.id(), None).await), 107);
        // Close by filter on every member.
        let r = ops[0].call("clients.close", json!({"filter": "Desk is 'FX'"})).await.expect("close");
        assert_eq!(r["count"], 6, "{r}");
        assert_eq!(r["partial"], false);
        for o in &ops {
            assert_eq!(o.count("all").await.expect("count"), 5);
        }
    });
}

#[test]
fn a_slow_member_is_reported_missing_not_waited_for() {
    let Some(nats) = nats() else { return };
    let members = three(&nats, "c2", 500);
    runtime().block_on(async {
        let ops = members[0].ops().await;
        let far = members[1].client("FX").await;
        members[2].client("FX").await;
        assert_eq!(ops.count("Desk is 'FX'").await.expect("count"), 2);
        members[1].signal("-STOP");
        let started = Instant::now();
        let r = ops
            .call("clients.count", json!({"filter": "Desk is 'FX'"}))
            .await
            .expect("count");
        let took = started.elapsed();
        assert_eq!(r["partial"], true, "{r}");
        assert_eq!(r["missing"], json!(["m2"]));
        assert_eq!(r["count"], 1);
        assert!(took < Duration::from_millis(2000), "waited {took:?}");
        // By id: 112 after the timeout.
        assert_eq!(code(ops.get_properties(&far.id(), None).await), 112);
        members[1].signal("-CONT");
        let r = ops
            .call("clients.count", json!({"filter": "Desk is 'FX'"}))
            .await
            .expect("count");
        assert_eq!(r["partial"], false, "{r}");
        assert_eq!(r["count"], 2);
    });
}

#[test]
fn a_lock_passes_across_members_through_kill_9_and_a_broker_restart() {
    let Some(mut nats) = nats() else { return };
    let mut members = three(&nats, "c3", 1000);
    runtime().block_on(async {
        let s1 = members[0].ops().await;
        let s2 = members[1].ops().await;
        let s3 = members[2].ops().await;
        let first = s1.lock("locks/a", "session").await.expect("granted");
        // Waiters on members 2 and 3, in that order.
        let w2 = tokio::spawn({
            let s2 = s2.clone();
            async move { s2.lock("locks/a", "session").await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let w3 = tokio::spawn({
            let s3 = s3.clone();
            async move { s3.lock("locks/a", "session").await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let listed = s3.call("locks.list", json!({})).await.expect("list");
        assert_eq!(listed["locks"]["locks/a"]["server"], "m1", "{listed}");
        assert_eq!(
            listed["locks"]["locks/a"]["sequence"],
            json!(first.sequence)
        );
        assert!(!w2.is_finished() && !w3.is_finished());
        // Member 1 dies without a word: within the membership expiry (10
        // s) the next waiter, on member 2, gets the lock.
        let killed = Instant::now();
        members[0].kill_9();
        let second = tokio::time::timeout(Duration::from_secs(20), w2)
            .await
            .expect("member 2's waiter is granted within 20 s")
            .expect("the task")
            .expect("granted");
        let after = killed.elapsed();
        assert!(second.sequence > first.sequence);
        assert!(
            after >= Duration::from_secs(5),
            "granted {after:?} after the kill: the owner's member was not known dead yet"
        );
        assert!(
            !w3.is_finished(),
            "two owners: member 3's waiter was granted too"
        );
        let listed = s3.call("locks.list", json!({})).await.expect("list");
        assert_eq!(listed["locks"]["locks/a"]["server"], "m2", "{listed}");
        // The broker restarts: the lock table is on file storage.
        nats.restart();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let listed = s3
            .call("locks.list", json!({}))
            .await
            .expect("list after the restart");
        assert_eq!(
            listed["locks"]["locks/a"]["session_id"],
            json!(s2.id()),
            "{listed}"
        );
        assert_eq!(
            listed["locks"]["locks/a"]["sequence"],
            json!(second.sequence)
        );
        let second_sequence = second.sequence;
        assert!(second.release().await.expect("released"));
        let third = tokio::time::timeout(Duration::from_secs(10), w3)
            .await
            .expect("member 3's waiter is granted")
            .expect("the task")
            .expect("granted");
        assert!(third.sequence > second_sequence);
        // A member restarted under the dead one's name is accepted once
        // that one is known dead.
        members[0] = Member::start(&nats, "c3", "m1", 1000);
        let again = members[0].ops().await;
        let r = again
            .call("locks.release", json!({"name": "locks/a"}))
            .await
            .expect("release");
        assert_eq!(r["released"], false);
    });
}

/// Waits for the listener's next event that passes `keep`, bounded.
async fn next_event(
    listener: &mut session_filter_client::Listener,
    within: Duration,
    keep: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = listener
            .next_timeout(left)
            .await
            .unwrap_or_else(|| panic!("no event within {within:?}"));
        if keep(&event) {
            return event;
        }
    }
}

#[test]
fn a_listener_sees_the_sessions_of_every_member() {
    let Some(nats) = nats() else { return };
    let mut members = three(&nats, "c4", 1000);
    runtime().block_on(async {
        let ops = members[0].ops().await;
        let fx2 = members[1].client("FX").await;
        let fx3 = members[2].client("FX").await;
        let rates1 = members[0].client("Rates").await;
        let fx1 = members[0].client("FX").await;
        let mut listener = ops
            .listen("Desk is 'FX'", &["Desk", "$ServerName"], None)
            .await
            .expect("listen");
        // The snapshot: the FX sessions of all three members.
        let mut seen = std::collections::BTreeMap::new();
        for _ in 0..3 {
            let e = next_event(&mut listener, Duration::from_secs(5), |_| true).await;
            assert_eq!(e["event"], "open", "{e}");
            seen.insert(
                e["session_id"].as_str().unwrap_or("").to_owned(),
                e["properties"]["$ServerName"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            );
        }
        let expected: std::collections::BTreeMap<String, String> = [
            (fx1.id(), "m1".to_owned()),
            (fx2.id(), "m2".to_owned()),
            (fx3.id(), "m3".to_owned()),
        ]
        .into_iter()
        .collect();
        assert_eq!(seen, expected);
        // A new session on member 3, a change on member 2 (made from member
        // 1), a session of member 1 that starts to match.
        let late = members[2].client("FX").await;
        let e = next_event(&mut listener, Duration::from_secs(5), |_| true).await;
        assert_eq!(
            (e["event"].as_str(), e["session_id"].as_str()),
            (Some("open"), Some(late.id().as_str())),
            "{e}"
        );
        ops.set_properties(Target::id(fx2.id()), &[("Desk", Some("Rates"))])
            .await
            .expect("set");
        let e = next_event(&mut listener, Duration::from_secs(5), |_| true).await;
        assert_eq!(
            (e["event"].as_str(), e["session_id"].as_str()),
            (Some("left"), Some(fx2.id().as_str())),
            "{e}"
        );
        ops.set_properties(Target::id(rates1.id()), &[("Desk", Some("FX"))])
            .await
            .expect("set");
        let e = next_event(&mut listener, Duration::from_secs(5), |_| true).await;
        assert_eq!(
            (e["event"].as_str(), e["session_id"].as_str()),
            (Some("open"), Some(rates1.id().as_str())),
            "{e}"
        );
        // A close on member 3 by id from member 1.
        ops.close_sessions(Target::id(fx3.id()))
            .await
            .expect("close");
        let e = next_event(&mut listener, Duration::from_secs(5), |_| true).await;
        assert_eq!(
            (e["event"].as_str(), e["reason"].as_str()),
            (Some("close"), Some("CLOSED_BY_CONTROLLER")),
            "{e}"
        );
        assert_eq!(e["session_id"], json!(fx3.id()));
        // Member 3 dies: its remaining session (`late`) is reported closed,
        // CONNECTION_LOST, once it is known dead.
        let killed = Instant::now();
        members[2].kill_9();
        let e = next_event(&mut listener, Duration::from_secs(15), |_| true).await;
        assert_eq!(
            (e["event"].as_str(), e["reason"].as_str()),
            (Some("close"), Some("CONNECTION_LOST")),
            "{e}"
        );
        assert_eq!(e["session_id"], json!(late.id()));
        eprintln!(
            "the dead member's session was reported closed {:?} after the kill",
            killed.elapsed()
        );
        // Nothing else is told twice.
        assert!(listener
            .next_timeout(Duration::from_millis(500))
            .await
            .is_none());
        // A member that joins later: its sessions are seen too.
        let m4 = Member::start(&nats, "c4", "m4", 1000);
        let newcomer = m4.client("FX").await;
        let e = next_event(&mut listener, Duration::from_secs(10), |_| true).await;
        assert_eq!(
            (e["event"].as_str(), e["session_id"].as_str()),
            (Some("open"), Some(newcomer.id().as_str())),
            "{e}"
        );
        assert_eq!(e["properties"]["$ServerName"], "m4");
    });
}

#[test]
fn messages_reach_sessions_on_every_member_and_answers_come_back() {
    let Some(nats) = nats() else { return };
    let members = three(&nats, "c5", 1000);
    runtime().block_on(async {
        let sender = members[0].ops().await;
        let mut handlers = Vec::new();
        for m in &members {
            let session = m.client("FX").await;
            let mut handler = session.add_handler("alerts").await.expect("handler");
            let name = m.name.clone();
            handlers.push(session.id());
            tokio::spawn(async move {
                let _keep = session;
                while let Some(request) = handler.next().await {
                    if request.request["reject"] == true {
                        let _ = handler.reject(&request, &format!("no from {name}")).await;
                    } else {
                        let reply =
                            json!({"member": name, "from": request.from, "got": request.request});
                        let _ = handler.respond(&request, reply).await;
                    }
                }
            });
        }
        // A session without a handler, on member 2.
        let plain = members[1].client("FX").await;
        // By filter: every member's handler answers, through member 1.
        let mut responses = sender
            .send_to_filter("Desk is 'FX'", "alerts", json!({"n": 1}), Some(5000))
            .await
            .expect("send");
        assert_eq!(responses.count, 3);
        let mut answered = std::collections::BTreeSet::new();
        loop {
            let step = tokio::time::timeout(Duration::from_secs(10), responses.next())
                .await
                .expect("a response in time")
                .expect("a response");
            match step {
                session_filter_client::Response::Answer(a) => {
                    assert_eq!(a["response"]["from"], json!(sender.id()), "{a}");
                    assert_eq!(a["response"]["got"], json!({"n": 1}));
                    answered.insert(a["response"]["member"].as_str().unwrap_or("").to_owned());
                }
                session_filter_client::Response::Done(d) => {
                    assert_eq!(
                        (
                            d["responded"].as_u64(),
                            d["failed"].as_u64(),
                            d["timed_out"].as_u64()
                        ),
                        (Some(3), Some(0), Some(0)),
                        "{d}"
                    );
                    break;
                }
            }
        }
        assert_eq!(
            answered,
            ["m1", "m2", "m3"].iter().map(|s| s.to_string()).collect()
        );
        // By id, to a session on member 3; a rejection keeps its text.
        let r = sender
            .send_to_session(&handlers[2], "alerts", json!({"n": 2}), None)
            .await
            .expect("send");
        assert_eq!(r["member"], "m3", "{r}");
        let e = sender
            .send_to_session(&handlers[1], "alerts", json!({"reject": true}), None)
            .await
            .expect_err("rejected");
        assert_eq!(e.code(), Some(9003));
        assert!(e.to_string().contains("no from m2"), "{e}");
        assert_eq!(
            code(
                sender
                    .send_to_session(&plain.id(), "alerts", json!(1), None)
                    .await
            ),
            109
        );
    });
}

/// One stretch in which a client knew it owned a lock: from the grant it
/// read to the release it had not sent yet (or the kill of its member).
#[derive(Debug, Clone)]
struct Stretch {
    name: &'static str,
    #[allow(dead_code)] // shown in a failure's message
    session: String,
    sequence: u64,
    from: Duration,
    to: Duration,
}

#[test]
fn lock_owners_never_overlap_across_members_even_through_kill_9() {
    let Some(nats) = nats() else { return };
    let mut members = three(&nats, "c6", 1000);
    let urls: Vec<String> = members.iter().map(|m| m.url.clone()).collect();
    let names: [&'static str; 2] = ["locks/x", "locks/y"];
    let killed_at = std::sync::Arc::new(std::sync::OnceLock::<Duration>::new());
    let rt = runtime();
    let mut base = Instant::now();
    let stretches = rt.block_on(async {
        // Sessions first (a password check takes a while in a debug
        // build), then the clock starts.
        let mut sessions = Vec::new();
        for (m, url) in urls.iter().enumerate() {
            for c in 0..4usize {
                let session = connect(url, OpenOptions::principal("ops", PASSWORD))
                    .await
                    .expect("a session");
                sessions.push((m, c, session));
            }
        }
        base = Instant::now();
        let mut tasks = Vec::new();
        {
            for (m, c, session) in sessions {
                let killed_at = killed_at.clone();
                let name = names[(m + c) % 2];
                tasks.push(tokio::spawn(async move {
                    let mut mine = Vec::new();
                    let end = Duration::from_secs(22);
                    let mut i = 0u64;
                    while base.elapsed() < end {
                        let left = end.saturating_sub(base.elapsed());
                        let Ok(Ok(guard)) =
                            tokio::time::timeout(left, session.lock(name, "session")).await
                        else {
                            break;
                        };
                        let from = base.elapsed();
                        i += 1;
                        tokio::time::sleep(Duration::from_millis((i * 7 + m as u64 * 3) % 25))
                            .await;
                        let sequence = guard.sequence;
                        let mut to = base.elapsed();
                        let released = guard.release().await;
                        if let (2, Some(k)) = (m, killed_at.get()) {
                            // A client of the killed member owned nothing
                            // after the kill.
                            to = to.min(*k);
                        }
                        mine.push(Stretch {
                            name,
                            session: session.id(),
                            sequence,
                            from,
                            to,
                        });
                        if released.is_err() {
                            break;
                        }
                    }
                    mine
                }));
            }
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let _ = killed_at.set(base.elapsed());
        eprintln!("killing m3 at {:?}", base.elapsed());
        members[2].kill_9();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("a client task"));
        }
        all
    });
    let kill = *killed_at.get().expect("killed");
    for name in names {
        let mut mine: Vec<&Stretch> = stretches.iter().filter(|s| s.name == name).collect();
        mine.sort_by_key(|s| s.from);
        assert!(mine.len() > 10, "{name}: only {} grants", mine.len());
        for pair in mine.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            assert!(a.to <= b.from, "two owners of {name}: {a:?} and {b:?}");
            assert!(
                b.sequence > a.sequence,
                "the sequence of {name} went back: {a:?} then {b:?}"
            );
        }
        let after = mine.iter().filter(|s| s.from > kill).count();
        assert!(after > 0, "{name}: no grant after member 3 was killed");
        // The first grant after the kill that waited for the dead member.
        let resumed = mine
            .windows(2)
            .filter(|p| p[1].from > kill)
            .map(|p| p[1].from.saturating_sub(p[0].to))
            .max();
        eprintln!(
            "{name}: {} grants checked, {after} after the kill; the longest hand-off {resumed:?}",
            mine.len()
        );
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Figures for the README (run by hand, with a release build:
/// `cargo build --release -p session-filter-cli && SESSION_FILTER_BIN=
/// <target>/release/session-filter cargo test -p session-filter-cli --test
/// server_cluster figures -- --ignored --nocapture`): three members with
/// 20 000 sessions each against one member with 60 000, close by filter;
/// lock hand-off between sessions on two members; a listener's latency for
/// a change on another member.
#[test]
#[ignore = "figures, run by hand"]
fn figures() {
    let Some(nats) = nats() else { return };
    let per_member = std::env::var("FIGURES_SESSIONS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(20_000);
    let rounds = 200;
    let filter = "Department in ['Trading', 'Payroll'] or Tier is 'gold'";
    let rt = runtime();
    // One member with every session.
    let single = Member::try_start_with(
        &nats,
        "solo",
        "solo",
        5000,
        &["--demo", &(3 * per_member).to_string()],
    )
    .expect("the single member");
    let single_close = rt.block_on(async {
        let ops = single.ops().await;
        let n = ops.count(filter).await.expect("count");
        let started = Instant::now();
        let r = ops
            .call("clients.close", json!({ "filter": filter }))
            .await
            .expect("close");
        let took = started.elapsed();
        assert_eq!(r["count"].as_u64(), Some(n));
        (n, took)
    });
    drop(single);
    let demo = per_member.to_string();
    let members: Vec<Member> = ["m1", "m2", "m3"]
        .iter()
        .map(|n| {
            Member::try_start_with(&nats, "bench", n, 5000, &["--demo", &demo]).expect("a member")
        })
        .collect();
    rt.block_on(async {
        let ops: Vec<Session> = {
            let mut v = Vec::new();
            for m in &members {
                v.push(m.ops().await);
            }
            v
        };
        let n = ops[0].count(filter).await.expect("count");
        let started = Instant::now();
        let r = ops[0].call("clients.close", json!({ "filter": filter })).await.expect("close");
        let cluster_close = started.elapsed();
        assert_eq!(r["count"].as_u64(), Some(n), "{r}");
        assert_eq!(r["partial"], false);
        eprintln!(
            "close by filter: one member, {} sessions: {} closed in {:?}; three members, {per_member} each: {n} closed in {:?} ({:.2}x)",
            3 * per_member,
            single_close.0,
            single_close.1,
            cluster_close,
            cluster_close.as_secs_f64() / single_close.1.as_secs_f64()
        );
        // Lock hand-off: a holder on one member releases, a waiter on
        // another gets it; the time from the release to the grant.
        let mut hand_offs = Vec::new();
        let mut holder = ops[0].lock("locks/bench", "session").await.expect("lock");
        for i in 0..rounds {
            let next = ops[(i + 1) % 3].clone();
            let waiting = tokio::spawn(async move {
                let g = next.lock("locks/bench", "session").await;
                (g, Instant::now())
            });
            // Let the waiter queue up.
            tokio::time::sleep(Duration::from_millis(20)).await;
            let released = Instant::now();
            assert!(holder.release().await.expect("release"));
            let (g, at) = waiting.await.expect("the waiter");
            hand_offs.push(at.saturating_duration_since(released));
            holder = g.expect("granted");
        }
        hand_offs.sort();
        eprintln!(
            "lock hand-off across members ({rounds}): p50 {:?}, p99 {:?}",
            percentile(&hand_offs, 0.5),
            percentile(&hand_offs, 0.99)
        );
        // Listener latency: a listener on member 1, a change made on
        // member 2 to its own session.
        let watched = members[1].client("FX").await;
        let mut listener = ops[0]
            .listen(&format!("$SessionId is '{}'", watched.id()), &["Desk"], None)
            .await
            .expect("listen");
        next_event(&mut listener, Duration::from_secs(5), |e| e["event"] == "open").await;
        let mut latencies = Vec::new();
        for i in 0..rounds {
            let desk = if i % 2 == 0 { "Rates" } else { "FX" };
            let started = Instant::now();
            ops[1]
                .set_properties(Target::id(watched.id()), &[("Desk", Some(desk))])
                .await
                .expect("set");
            next_event(&mut listener, Duration::from_secs(5), |e| e["event"] == "update").await;
            latencies.push(started.elapsed());
        }
        latencies.sort();
        eprintln!(
            "listener latency, change on another member ({rounds}): p50 {:?}, p99 {:?}",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99)
        );
    });
}

#[test]
fn a_member_paused_past_the_expiry_is_declared_dead_and_rejoins_empty() {
    let Some(nats) = nats() else { return };
    let members = three(&nats, "c7", 500);
    runtime().block_on(async {
        let ops = members[0].ops().await;
        let paused = members[1].ops().await;
        let held = paused.lock("locks/p", "session").await.expect("granted");
        let waiter = tokio::spawn({
            let ops = ops.clone();
            async move { ops.lock("locks/p", "session").await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(ops.count("all").await.expect("count"), 2);
        members[1].signal("-STOP");
        // Known dead: the lock goes to the waiter on member 1, and the
        // member's sessions are no longer counted nor expected.
        let granted = tokio::time::timeout(Duration::from_secs(20), waiter)
            .await
            .expect("granted within 20 s")
            .expect("the task")
            .expect("granted");
        assert!(granted.sequence > held.sequence);
        let r = ops
            .call("clients.count", json!({"filter": "all"}))
            .await
            .expect("count");
        assert_eq!(
            (r["count"].as_u64(), &r["partial"]),
            (Some(1), &json!(false)),
            "{r}"
        );
        assert_eq!(code(ops.get_properties(&paused.id(), None).await), 107);
        // It wakes up: it learns it was declared dead, closes its sessions
        // and rejoins empty.
        members[1].signal("-CONT");
        let deadline = Instant::now() + Duration::from_secs(10);
        while paused.closed_reason().is_none() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(paused.closed_reason().as_deref(), Some("CONNECTION_LOST"));
        let fresh = members[1].client("FX").await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = ops
                .get_properties(&fresh.id(), Some(&["$ServerName"]))
                .await;
            if let Ok(p) = r {
                assert_eq!(p["$ServerName"], "m2");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the member did not rejoin: {r:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The lock stayed with the one owner it was granted to.
        let listed = ops.call("locks.list", json!({})).await.expect("list");
        assert_eq!(
            listed["locks"]["locks/p"]["session_id"],
            json!(ops.id()),
            "{listed}"
        );
        assert_eq!(
            listed["locks"]["locks/p"]["sequence"],
            json!(granted.sequence)
        );
    });
}
