//! SPEC section 9: cluster-wide bulk operations over NATS, with real
//! processes: a `nats-server` of its own per test (on a free loopback
//! port), three `session-filter member` processes each serving a third of
//! the demo population, and `session-filter cluster` as the client.
//!
//! Without `nats-server` these tests skip with a message (install it with
//! `apt-get install -y nats-server`); under CI (`CI=true`) a missing server
//! is a failure. Every process is killed when its guard drops, and every
//! wait is bounded.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use session_filter::cluster::wire::{Operation, Outcome, Reply, Request, WireErrorKind, VERSION};
use session_filter::cluster::{self, ClusterClient, FetchSpec};
use session_filter::{PropertyChange, SessionStore};
use support::nats::{nats, nats_with, NatsServer};
use support::{text, BIN};

mod support;

/// The CLI's demo population (`select` without a file).
const DEMO_SESSIONS: u64 = 5000;

/// Filters of several shapes, each checked against one store.
const FILTERS: [&str; 6] = [
    "all",
    "Department is 'IT'",
    "$Country in ['UK', 'DE'] and hasRoles ['trader']",
    "not has Department",
    "$Principal is 'name7'",
    "Tier is 'none'",
];

// ---------------------------------------------------------------- guards

/// A `session-filter member` process, killed when dropped.
struct MemberProcess {
    name: String,
    child: Child,
    stderr: mpsc::Receiver<String>,
}

impl Drop for MemberProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl MemberProcess {
    fn start(nats: &NatsServer, cluster: &str, name: &str, args: &[&str]) -> MemberProcess {
        let mut child = Command::new(BIN)
            .args([
                "member",
                "--nats",
                &nats.url(),
                "--cluster",
                cluster,
                "--name",
                name,
            ])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the member starts");
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let member = MemberProcess {
            name: name.to_owned(),
            child,
            stderr: rx,
        };
        member.expect_line("serving", Duration::from_secs(20));
        member
    }

    /// Waits for a stderr line containing `what`.
    fn expect_line(&self, what: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) if line.contains(what) => return line,
                Ok(_) => {}
                Err(e) => panic!("member {}: no line with {what:?}: {e}", self.name),
            }
        }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal}");
    }

    /// Waits (bounded) for the process to exit.
    fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "member {} did not exit",
                self.name
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Three members, each serving a third of the demo population.
fn three_members(nats: &NatsServer, cluster: &str) -> Vec<MemberProcess> {
    three_members_with(nats, cluster, &[&[], &[], &[]])
}

fn three_members_with(
    nats: &NatsServer,
    cluster: &str,
    extra: &[&[&str]; 3],
) -> Vec<MemberProcess> {
    (1..=3)
        .map(|i| {
            let part = format!("{i}/3");
            let mut args = vec!["--demo-part", part.as_str()];
            args.extend_from_slice(extra[i - 1]);
            MemberProcess::start(nats, cluster, &format!("m{i}"), &args)
        })
        .collect()
}

/// One store over the union of the parts: the whole demo population.
fn union_store() -> SessionStore {
    let store = SessionStore::new();
    for i in 0..DEMO_SESSIONS {
        store.insert(session_filter::demo::properties(i)).unwrap();
    }
    store
}

/// The demo sessions of part `i` of 3.
fn part_store(i: u64) -> SessionStore {
    let store = SessionStore::new();
    for index in (i - 1..DEMO_SESSIONS).step_by(3) {
        store
            .insert(session_filter::demo::properties(index))
            .unwrap();
    }
    store
}

/// Runs `session-filter cluster …` (bounded in time).
fn cluster_cli(nats: &str, cluster: &str, args: &[&str]) -> Output {
    let mut child = Command::new(BIN)
        .args(["cluster", "--nats", nats, "--cluster", cluster])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the client runs");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("`cluster {args:?}` did not finish");
        }
        thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("output")
}

/// The figure on stdout, asserting the exit code.
fn figure(out: &Output, code: i32) -> usize {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{out:?}\n{}",
        text(&out.stderr)
    );
    text(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

// ----------------------------------------------------------------- tests

#[test]
fn count_select_and_fetch_equal_one_store_over_the_union() {
    let Some(nats) = nats() else { return };
    let _members = three_members(&nats, "union");
    let store = union_store();
    for filter in FILTERS {
        let out = cluster_cli(&nats.url(), "union", &["count", filter]);
        assert_eq!(figure(&out, 0), store.count(filter).unwrap(), "{filter}");
        assert!(
            text(&out.stderr).contains("3 of 3 members answered"),
            "{filter}: {}",
            text(&out.stderr)
        );

        let out = cluster_cli(&nats.url(), "union", &["select", filter]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let ids: Vec<String> = text(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON string a line"))
            .collect();
        assert_eq!(ids, store.select(filter).unwrap(), "{filter}");
    }
    // fetch, through the library: the merged pages equal one store's page.
    let specs = [
        FetchSpec::new(),
        FetchSpec::new().limit(0),
        FetchSpec::new()
            .order_by("$SessionId")
            .descending()
            .limit(7),
        FetchSpec::new()
            .properties(["$Country", "Tier"])
            .order_by("$Country")
            .offset(10)
            .limit(25),
        FetchSpec::new()
            .all_properties()
            .order_by("Department")
            .descending()
            .limit(40),
        FetchSpec::new().order_by("$Roles").offset(4990),
        FetchSpec::new()
            .properties(["Tier"])
            .order_by("Department")
            .offset(3990),
    ];
    runtime().block_on(async {
        let nats = cluster::connect(&nats.url()).await.unwrap();
        let client = ClusterClient::connect(nats, "union").await.unwrap();
        for filter in FILTERS {
            for spec in &specs {
                let answer = client.fetch(filter, spec).await.unwrap();
                assert!(answer.is_complete(), "{answer:?}");
                let expected = store.fetch(filter, &spec.to_request()).unwrap();
                assert_eq!(answer.value, expected, "{filter} {spec:?}");
                let figures: usize = answer.answered.iter().map(|m| m.figure).sum();
                assert_eq!(figures, expected.total);
            }
        }
    });
    // The parts together are exactly the population `select` uses.
    let local = Command::new(BIN)
        .args(["select", "--count", "-q", "all"])
        .output()
        .unwrap();
    assert_eq!(text(&local.stdout).trim(), DEMO_SESSIONS.to_string());
}

#[test]
fn close_roles_and_set_by_filter_change_every_member_and_sum_the_matches() {
    let Some(nats) = nats() else { return };
    let _members = three_members(&nats, "change");
    let store = union_store();
    let url = nats.url();

    let filter = "Department is 'IT'";
    let expected = store
        .change_roles(filter, &["guest"], &["it staff"])
        .unwrap();
    let out = cluster_cli(
        &url,
        "change",
        &["roles", filter, "--remove", "guest", "--add", "it staff"],
    );
    assert_eq!(figure(&out, 0), expected);
    // Every member matched some and reported its own figure.
    let err = text(&out.stderr);
    for i in 1..=3u64 {
        let own = part_store(i).count(filter).unwrap();
        assert!(own > 0);
        assert!(err.contains(&format!("m{i} ({own})")), "{err}");
    }
    for check in ["hasRoles ['it staff']", "hasRoles ['guest']", "all"] {
        let out = cluster_cli(&url, "change", &["count", check]);
        assert_eq!(figure(&out, 0), store.count(check).unwrap(), "{check}");
    }

    let filter = "Department is 'Sales' or $Country is 'uk'";
    let change = PropertyChange::new()
        .set("Tier", "platinum")
        .set("$Country", "uk")
        .remove("Status");
    let expected = store.change_properties(filter, &change).unwrap();
    let json = r#"{"Tier": "platinum", "$Country": "uk", "Status": null}"#;
    let out = cluster_cli(&url, "change", &["set", filter, json]);
    assert_eq!(figure(&out, 0), expected);
    for check in [
        "Tier is 'platinum'",
        "has Status",
        "$Country is 'UK'",
        "$Country is 'uk'",
    ] {
        let out = cluster_cli(&url, "change", &["count", check]);
        assert_eq!(figure(&out, 0), store.count(check).unwrap(), "{check}");
    }
    // A fixed key that cannot be set is refused before anything is sent.
    let out = cluster_cli(&url, "change", &["set", "all", r#"{"$SessionId": "x"}"#]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");

    let filter = "hasRoles ['it staff'] or $Country is 'UK'";
    let expected = store.close(filter).unwrap();
    let out = cluster_cli(&url, "change", &["close", filter]);
    assert_eq!(figure(&out, 0), expected);
    let out = cluster_cli(&url, "change", &["count", filter]);
    assert_eq!(figure(&out, 0), 0);
    let out = cluster_cli(&url, "change", &["count", "all"]);
    assert_eq!(figure(&out, 0), store.len());
}

#[test]
fn a_killed_member_makes_the_result_partial_until_it_is_forgotten() {
    let Some(nats) = nats() else { return };
    let mut members = three_members(&nats, "killed");
    let url = nats.url();
    assert_eq!(
        figure(&cluster_cli(&url, "killed", &["count", "all"]), 0),
        5000
    );

    members[2].signal("-KILL");
    members[2].wait_exit(Duration::from_secs(5));
    let killed = Instant::now();
    let partial = part_store(1).len() + part_store(2).len();
    let out = cluster_cli(&url, "killed", &["--timeout-ms", "500", "count", "all"]);
    // The partial figure is printed, and the result is said to be partial.
    assert_eq!(figure(&out, 3), partial);
    let err = text(&out.stderr);
    assert!(err.contains("2 of 3 members answered"), "{err}");
    assert!(err.contains("partial result: no answer from m3"), "{err}");

    // 10 s after it was last heard from, it is no longer expected.
    loop {
        let out = cluster_cli(&url, "killed", &["--timeout-ms", "300", "count", "all"]);
        if out.status.code() == Some(0) {
            assert_eq!(figure(&out, 0), partial);
            break;
        }
        assert_eq!(figure(&out, 3), partial);
        assert!(
            killed.elapsed() < Duration::from_secs(13),
            "m3 is still expected"
        );
        thread::sleep(Duration::from_millis(250));
    }
    // Refreshed every second, it was last heard at most a second before the kill.
    assert!(
        killed.elapsed() >= Duration::from_secs(8),
        "{:?}",
        killed.elapsed()
    );
}

#[test]
fn a_member_stopped_with_sigterm_is_no_longer_expected() {
    let Some(nats) = nats() else { return };
    let mut members = three_members(&nats, "stopped");
    let url = nats.url();
    members[1].signal("-TERM");
    assert!(members[1].wait_exit(Duration::from_secs(10)).success());
    members[1].expect_line("deregistered", Duration::from_secs(1));
    let out = cluster_cli(&url, "stopped", &["count", "all"]);
    assert_eq!(figure(&out, 0), part_store(1).len() + part_store(3).len());
    assert!(
        text(&out.stderr).contains("2 of 2 members answered"),
        "{out:?}"
    );
}

#[test]
fn a_member_stopped_while_the_broker_is_down_exits_in_bounded_time() {
    let Some(nats) = nats() else { return };
    let mut member = MemberProcess::start(&nats, "down", "m1", &["--demo-part", "1/3"]);
    drop(nats);
    let started = Instant::now();
    member.signal("-TERM");
    // It cannot deregister: it says so and exits 1, within its stop timeout.
    let status = member.wait_exit(Duration::from_secs(15));
    assert_eq!(status.code(), Some(1));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    member.expect_line("deregister", Duration::from_secs(1));
}

#[test]
fn a_member_slower_than_the_deadline_is_missing_and_the_rest_is_returned() {
    let Some(nats) = nats() else { return };
    let _members = three_members_with(&nats, "slow", &[&[], &[], &["--reply-delay-ms", "3000"]]);
    let started = Instant::now();
    let out = cluster_cli(
        &nats.url(),
        "slow",
        &["--timeout-ms", "400", "count", "all"],
    );
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(figure(&out, 3), part_store(1).len() + part_store(2).len());
    let err = text(&out.stderr);
    assert!(err.contains("no answer from m3"), "{err}");
    assert!(err.contains("m1 (1667), m2 (1667)"), "{err}");
}

/// A request as members read it.
fn request(id: &str, filter: &str, op: Operation, timeout_ms: Option<u64>) -> Vec<u8> {
    serde_json::to_vec(&Request {
        v: VERSION,
        id: id.into(),
        filter: filter.into(),
        timeout_ms,
        op,
    })
    .unwrap()
}

/// Publishes a raw request and gathers the three members' replies.
async fn raw_request(nats: &async_nats::Client, cluster: &str, payload: Vec<u8>) -> Vec<Reply> {
    let inbox = nats.new_inbox();
    let mut replies = nats.subscribe(inbox.clone()).await.unwrap();
    nats.publish_with_reply(cluster::request_subject(cluster), inbox, payload.into())
        .await
        .unwrap();
    let mut out = Vec::new();
    while out.len() < 3 {
        match tokio::time::timeout(Duration::from_secs(5), replies.next()).await {
            Ok(Some(message)) => out.push(serde_json::from_slice(&message.payload).unwrap()),
            _ => panic!("only {} replies", out.len()),
        }
    }
    out.sort_by(|a: &Reply, b: &Reply| a.member.cmp(&b.member));
    out
}

#[test]
fn a_request_id_delivered_twice_changes_nothing_twice() {
    let Some(nats) = nats() else { return };
    let _members = three_members(&nats, "twice");
    let store = union_store();
    let filter = "Department is 'Legal'";
    let expected: Vec<usize> = (1..=3)
        .map(|i| part_store(i).count(filter).unwrap())
        .collect();
    let close = |id: &str| request(id, filter, Operation::Close, None);
    runtime().block_on(async {
        let client = cluster::connect(&nats.url()).await.unwrap();
        for _ in 0..2 {
            // The same answer both times: the first time's.
            let replies = raw_request(&client, "twice", close("close-legal-1")).await;
            let counts: Vec<usize> = replies
                .iter()
                .map(|r| match r.outcome {
                    Outcome::Count(n) => n,
                    ref other => panic!("{other:?}"),
                })
                .collect();
            assert_eq!(counts, expected);
        }
        // A new id is a new request: nothing left to close.
        let replies = raw_request(&client, "twice", close("close-legal-2")).await;
        assert!(replies.iter().all(|r| r.outcome == Outcome::Count(0)));
    });
    let closed: usize = expected.iter().sum();
    let out = cluster_cli(&nats.url(), "twice", &["count", "all"]);
    assert_eq!(figure(&out, 0), store.len() - closed);
}

#[test]
fn a_bad_filter_publishes_nothing() {
    let Some(nats) = nats() else { return };
    let _members = three_members(&nats, "bad");
    let url = nats.url();
    runtime().block_on(async {
        let client = cluster::connect(&url).await.unwrap();
        let mut seen = client.subscribe("session-filter.>").await.unwrap();
        client.flush().await.unwrap();

        for args in [
            &["close", "Department is 'IT"][..],
            &["roles", "hasRoles []", "--add", "x"],
            &["count", "not"],
            &["select", ""],
        ] {
            let out = cluster_cli(&url, "bad", args);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
            assert!(out.stdout.is_empty());
            assert!(
                text(&out.stderr).trim_end().ends_with('^'),
                "{}",
                text(&out.stderr)
            );
        }
        // The library refuses too, before publishing.
        let cluster_client = ClusterClient::connect(client.clone(), "bad").await.unwrap();
        assert!(matches!(
            cluster_client.close("Department is").await,
            Err(cluster::ClusterError::Invalid(_))
        ));

        // A good one is seen, so the subscriber would have seen the others.
        let out = cluster_cli(&url, "bad", &["count", "all"]);
        assert_eq!(figure(&out, 0), 5000);
        let first = tokio::time::timeout(Duration::from_secs(5), seen.next())
            .await
            .expect("the good request is seen")
            .expect("a message");
        let request: Request = serde_json::from_slice(&first.payload).unwrap();
        assert_eq!(
            (request.filter.as_str(), request.op),
            ("all", Operation::Count)
        );
        let more = tokio::time::timeout(Duration::from_millis(300), seen.next()).await;
        assert!(more.is_err(), "{more:?}");
    });
}

#[test]
fn malformed_messages_get_an_error_reply_and_change_nothing() {
    let Some(nats) = nats() else { return };
    let _members = three_members(&nats, "malformed");
    let url = nats.url();
    runtime().block_on(async {
        let client = cluster::connect(&url).await.unwrap();
        let cases: [(&[u8], WireErrorKind); 5] = [
            (b"\xff\xfe not json", WireErrorKind::Malformed),
            (
                br#"{"v":1,"id":"x","op":"close"}"#,
                WireErrorKind::Malformed,
            ),
            (
                br#"{"v":1,"id":"x","op":"drop_all","filter":"all"}"#,
                WireErrorKind::Malformed,
            ),
            (
                br#"{"v":2,"id":"x","op":"close","filter":"all"}"#,
                WireErrorKind::Version,
            ),
            (
                br#"{"v":1,"id":"y","op":"close","filter":"all and"}"#,
                WireErrorKind::Filter,
            ),
        ];
        for (payload, kind) in cases {
            for reply in raw_request(&client, "malformed", payload.to_vec()).await {
                match reply.outcome {
                    Outcome::Error(e) => assert_eq!(e.kind, kind, "{e:?}"),
                    other => panic!("{other:?}"),
                }
            }
        }
        // No reply subject: ignored.
        client
            .publish(cluster::request_subject("malformed"), b"{}".to_vec().into())
            .await
            .unwrap();
        client.flush().await.unwrap();
    });
    let out = cluster_cli(&url, "malformed", &["count", "all"]);
    assert_eq!(figure(&out, 0), 5000);
}

#[test]
fn nats_unreachable_exits_1_and_invalid_input_exits_2() {
    // A port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("nats://127.0.0.1:{port}");
    let out = cluster_cli(&url, "none", &["count", "all"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        text(&out.stderr).contains("cannot reach the NATS server"),
        "{out:?}"
    );
    // Invalid input is refused before NATS is contacted.
    for args in [
        &["count", "all and"][..],
        &["set", "all", "[1]"],
        &["set", "all", r#"{"a":1}"#],
    ] {
        let out = cluster_cli(&url, "none", args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    }
    let out = cluster_cli(&url, "bad.name", &["count", "all"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = Command::new(BIN)
        .args([
            "member",
            "--nats",
            &url,
            "--cluster",
            "c",
            "--name",
            "m",
            "--demo-part",
            "4/3",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// Waits (bounded) for `child` to exit and returns its output; kills it
/// and fails when it is still running after `within`.
fn output_within(mut child: Child, within: Duration, what: &str) -> Output {
    let deadline = Instant::now() + within;
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!("{what} is still running: {}", text(&out.stderr));
        }
        thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

#[test]
fn an_empty_roster_is_partial_and_every_reply_is_reported() {
    let Some(nats) = nats() else { return };
    let url = nats.url();
    // Nobody is registered, and nobody answers: not a complete zero.
    let started = Instant::now();
    let out = cluster_cli(&url, "ghost", &["--timeout-ms", "500", "count", "all"]);
    assert_eq!(figure(&out, 3), 0);
    assert!(started.elapsed() >= Duration::from_millis(500));
    let err = text(&out.stderr);
    assert!(err.contains("no member is registered"), "{err}");
    assert!(err.contains("partial result"), "{err}");

    // A member that serves without being registered (its entry lost) is
    // still counted, and reported.
    runtime().block_on(async {
        let client = cluster::connect(&url).await.unwrap();
        let mut requests = client
            .subscribe(cluster::request_subject("ghost"))
            .await
            .unwrap();
        client.flush().await.unwrap();
        let answering = client.clone();
        let ghost = tokio::spawn(async move {
            while let Some(message) = requests.next().await {
                let request: Request = serde_json::from_slice(&message.payload).unwrap();
                let reply = Reply {
                    v: VERSION,
                    id: request.id,
                    member: "ghost".into(),
                    micros: 0,
                    more: false,
                    outcome: Outcome::Count(7),
                };
                let payload = serde_json::to_vec(&reply).unwrap();
                answering
                    .publish(message.reply.unwrap(), payload.into())
                    .await
                    .unwrap();
            }
        });
        let url = url.clone();
        let out = tokio::task::spawn_blocking(move || {
            cluster_cli(&url, "ghost", &["--timeout-ms", "500", "count", "all"])
        })
        .await
        .unwrap();
        assert_eq!(figure(&out, 3), 7);
        let err = text(&out.stderr);
        assert!(err.contains("1 of 0 members answered: ghost (7)"), "{err}");
        assert!(
            err.contains("answered without being registered: ghost"),
            "{err}"
        );
        ghost.abort();
    });
}

#[test]
fn members_register_again_when_the_broker_lost_the_bucket() {
    let Some(mut nats) = nats() else { return };
    let _member = MemberProcess::start(&nats, "restart", "m1", &["--demo-part", "1/3"]);
    let url = nats.url();
    let part = part_store(1).len();
    assert_eq!(
        figure(&cluster_cli(&url, "restart", &["count", "all"]), 0),
        part
    );
    // The buckets live in the broker's memory: a restart loses them. The
    // member makes its bucket again and registers, before any client
    // comes (a client would find an empty roster otherwise).
    nats.restart();
    let restarted = Instant::now();
    runtime().block_on(async {
        let client = cluster::connect(&url).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let bucket = cluster::membership_bucket("restart");
        loop {
            if let Ok(kv) = js.get_key_value(&bucket).await {
                if let Ok(Some(_)) = kv.get("m1").await {
                    break;
                }
            }
            assert!(
                restarted.elapsed() < Duration::from_secs(20),
                "m1 did not register again"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    loop {
        let out = cluster_cli(&url, "restart", &["--timeout-ms", "500", "count", "all"]);
        if out.status.code() == Some(0) {
            assert_eq!(figure(&out, 0), part);
            break;
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(20),
            "m1 did not register again: {}",
            text(&out.stderr)
        );
        thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_second_member_of_the_same_name_does_not_start() {
    let Some(nats) = nats() else { return };
    let _first = MemberProcess::start(&nats, "twins", "m1", &["--demo-part", "1/3"]);
    let second = Command::new(BIN)
        .args(["member", "--nats", &nats.url(), "--cluster", "twins"])
        .args(["--name", "m1", "--demo-part", "2/3"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the member starts");
    let out = output_within(second, Duration::from_secs(20), "the second m1");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("a member named \"m1\" is registered in cluster \"twins\""),
        "{}",
        text(&out.stderr)
    );
    // The first one still serves, alone.
    let out = cluster_cli(&nats.url(), "twins", &["count", "all"]);
    assert_eq!(figure(&out, 0), part_store(1).len());
}

#[test]
fn members_answer_only_on_inbox_subjects() {
    let Some(nats) = nats() else { return };
    let _members = three_members(&nats, "subjects");
    let url = nats.url();
    runtime().block_on(async {
        let client = cluster::connect(&url).await.unwrap();
        // A reply subject that is the membership bucket's: a reply there
        // would register a member "intruder" (and a close would run).
        for (id, op) in [("r1", Operation::Count), ("r2", Operation::Close)] {
            let request = request(id, "all", op, None);
            client
                .publish_with_reply(
                    cluster::request_subject("subjects"),
                    format!("$KV.{}.intruder", cluster::membership_bucket("subjects")),
                    request.into(),
                )
                .await
                .unwrap();
        }
        client.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let cluster_client = ClusterClient::connect(client, "subjects").await.unwrap();
        assert_eq!(cluster_client.members(), ["m1", "m2", "m3"]);
    });
    // Nothing was closed.
    let out = cluster_cli(&url, "subjects", &["count", "all"]);
    assert_eq!(figure(&out, 0), 5000);
    assert!(text(&out.stderr).contains("3 of 3 members answered"));
}

#[test]
fn a_member_serves_requests_concurrently_and_drops_late_ones() {
    let Some(nats) = nats() else { return };
    let url = nats.url();
    let _slow = MemberProcess::start(
        &nats,
        "busy",
        "m1",
        &["--demo-part", "1/3", "--reply-delay-ms", "1500"],
    );
    runtime().block_on(async {
        let client = cluster::connect(&url).await.unwrap();
        let inbox = client.new_inbox();
        let mut replies = client.subscribe(inbox.clone()).await.unwrap();
        // Four requests at once, each answered 1.5 s after it is taken up:
        // one after another they would take 6 s.
        let started = Instant::now();
        for i in 0..4 {
            let payload = request(&format!("c{i}"), "all", Operation::Count, None);
            client
                .publish_with_reply(
                    cluster::request_subject("busy"),
                    inbox.clone(),
                    payload.into(),
                )
                .await
                .unwrap();
        }
        for _ in 0..4 {
            let message = tokio::time::timeout(Duration::from_secs(10), replies.next())
                .await
                .expect("a reply in time")
                .expect("a reply");
            let reply: Reply = serde_json::from_slice(&message.payload).unwrap();
            assert_eq!(reply.outcome, Outcome::Count(part_store(1).len()));
        }
        assert!(
            started.elapsed() < Duration::from_millis(4000),
            "{:?}",
            started.elapsed()
        );
    });
    drop(_slow);

    // One request at a time: a close that waits behind a slow count past
    // its sender's deadline is never run.
    let _one = MemberProcess::start(
        &nats,
        "queue",
        "m1",
        &[
            "--demo-part",
            "1/3",
            "--reply-delay-ms",
            "1000",
            "--concurrency",
            "1",
        ],
    );
    runtime().block_on(async {
        let client = cluster::connect(&url).await.unwrap();
        let inbox = client.new_inbox();
        let mut replies = client.subscribe(inbox.clone()).await.unwrap();
        for (id, op, timeout) in [
            ("slow", Operation::Count, None),
            ("late", Operation::Close, Some(300)),
        ] {
            client
                .publish_with_reply(
                    cluster::request_subject("queue"),
                    inbox.clone(),
                    request(id, "all", op, timeout).into(),
                )
                .await
                .unwrap();
        }
        let message = tokio::time::timeout(Duration::from_secs(10), replies.next())
            .await
            .expect("a reply in time")
            .expect("a reply");
        let reply: Reply = serde_json::from_slice(&message.payload).unwrap();
        assert_eq!(reply.id, "slow");
        let more = tokio::time::timeout(Duration::from_millis(2000), replies.next()).await;
        assert!(more.is_err(), "the late close was answered: {more:?}");
    });
    let out = cluster_cli(&url, "queue", &["--timeout-ms", "3000", "count", "all"]);
    assert_eq!(figure(&out, 0), part_store(1).len());
}

#[test]
fn a_select_larger_than_a_message_comes_in_parts() {
    // 2 KiB messages: each member's 1 667 ids (about 17 KiB of JSON) need
    // several.
    let Some(nats) = nats_with("max_payload: 2048\n") else {
        return;
    };
    let _members = three_members(&nats, "parts");
    let store = union_store();
    for filter in ["all", "Department is 'IT'"] {
        let out = cluster_cli(&nats.url(), "parts", &["select", filter]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let ids: Vec<String> = text(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(ids, store.select(filter).unwrap(), "{filter}");
    }
}
