//! Session locks over real sockets (SPEC 11.6): each rule as its own test,
//! then a linearizability check of a random history.

mod common;
mod support;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use support::*;

const SHORT: Duration = Duration::from_millis(300);

/// A session of `ops` (ACQUIRE_LOCK under `locks`), with its token.
async fn ops(url: &str) -> (Raw, String, String) {
    let mut c = Raw::connect(url).await;
    let r = c
        .ok("open", json!({"principal": "ops", "credentials": PASSWORD}))
        .await;
    (
        c,
        r["session_id"].as_str().unwrap().to_owned(),
        r["token"].as_str().unwrap().to_owned(),
    )
}

async fn reconnect(url: &str, id: &str, token: &str) -> Raw {
    let mut c = Raw::connect(url).await;
    c.ok(
        "open",
        json!({"reconnect": {"session_id": id, "token": token}}),
    )
    .await;
    c
}

async fn acquire(c: &mut Raw, name: &str) -> Value {
    c.ok("locks.acquire", json!({ "name": name })).await
}

async fn released(c: &mut Raw, name: &str) -> bool {
    c.ok("locks.release", json!({ "name": name })).await["released"]
        .as_bool()
        .unwrap()
}

async fn list(c: &mut Raw) -> Value {
    c.ok("locks.list", json!({})).await["locks"].clone()
}

/// Sends an acquire that is expected to wait, and gives the server time to
/// queue it (requests on one connection are handled concurrently, so only
/// time orders two acquires of different connections).
async fn wait_for(c: &mut Raw, id: &str, name: &str, scope: &str) {
    send(
        c,
        id,
        "locks.acquire",
        json!({"name": name, "scope": scope}),
    )
    .await;
    assert!(
        !answered_within(c, id, Duration::from_millis(150)).await,
        "{id} was answered at once"
    );
}

#[tokio::test]
async fn a_free_lock_is_granted_at_once_and_sequences_grow() {
    let s = start_with(quick).await;
    let (mut a, _, _) = ops(&s.url()).await;
    assert_eq!(
        acquire(&mut a, "locks/a").await,
        json!({"name": "locks/a", "sequence": 1, "scope": "session"})
    );
    assert!(released(&mut a, "locks/a").await);
    assert_eq!(acquire(&mut a, "locks/a").await["sequence"], 2);
    // Names are independent.
    assert_eq!(acquire(&mut a, "locks/b").await["sequence"], 1);
    let g = a
        .ok(
            "locks.acquire",
            json!({"name": "locks/c", "scope": "connection"}),
        )
        .await;
    assert_eq!(g["scope"], "connection");
}

#[tokio::test]
async fn waiters_are_served_in_the_order_they_asked() {
    let s = start_with(quick).await;
    let (mut h, _, _) = ops(&s.url()).await;
    assert_eq!(acquire(&mut h, "locks/q").await["sequence"], 1);
    let mut waiters = Vec::new();
    for i in 0..4 {
        let (mut w, id, _) = ops(&s.url()).await;
        wait_for(&mut w, "w", "locks/q", "session").await;
        waiters.push((i, w, id));
    }
    assert!(released(&mut h, "locks/q").await);
    for (i, w, id) in waiters.iter_mut() {
        let g = result(w, "w").await;
        assert_eq!(g["sequence"], *i + 2, "waiter {i}");
        assert_eq!(list(&mut h).await["locks/q"]["session_id"], id.as_str());
        // The next one has not been served yet.
        assert!(released(w, "locks/q").await);
    }
    // Nobody waits: the lock is free again.
    assert_eq!(acquire(&mut h, "locks/q").await["sequence"], 6);
}

#[tokio::test]
async fn the_owner_asking_again_gets_the_same_sequence() {
    let s = start_with(quick).await;
    let (mut a, _, _) = ops(&s.url()).await;
    let first = acquire(&mut a, "locks/r").await;
    assert_eq!(acquire(&mut a, "locks/r").await, first);
    // Every pending acquire of a waiting session completes with the grant.
    let (mut b, _, _) = ops(&s.url()).await;
    wait_for(&mut b, "b1", "locks/r", "session").await;
    wait_for(&mut b, "b2", "locks/r", "session").await;
    assert!(released(&mut a, "locks/r").await);
    let (g1, g2) = (result(&mut b, "b1").await, result(&mut b, "b2").await);
    assert_eq!(g1, g2);
    assert_eq!(g1["sequence"], 2);
    // One release lets go of it, however many acquires there were.
    assert!(released(&mut b, "locks/r").await);
    assert!(!released(&mut b, "locks/r").await);
}

#[tokio::test]
async fn mixed_scopes_end_with_connection() {
    let s = start_with(quick).await;
    let (mut a, id, token) = ops(&s.url()).await;
    assert_eq!(acquire(&mut a, "locks/m").await["scope"], "session");
    let again = a
        .ok(
            "locks.acquire",
            json!({"name": "locks/m", "scope": "connection"}),
        )
        .await;
    assert_eq!(
        again,
        json!({"name": "locks/m", "sequence": 1, "scope": "connection"})
    );
    // Asking with `session` again does not make it stronger.
    assert_eq!(acquire(&mut a, "locks/m").await["scope"], "connection");
    let (mut ops2, _, _) = ops(&s.url()).await;
    assert_eq!(list(&mut ops2).await["locks/m"]["scope"], "connection");
    // And so it goes with the connection.
    wait_for(&mut ops2, "w", "locks/m", "session").await;
    drop(a);
    assert_eq!(result(&mut ops2, "w").await["sequence"], 2);
    // The session itself lives on.
    let mut back = reconnect(&s.url(), &id, &token).await;
    assert!(!released(&mut back, "locks/m").await);
}

#[tokio::test]
async fn a_connection_scoped_lock_goes_with_its_connection() {
    let s = start_with(quick).await;
    let (mut a, a_id, token) = ops(&s.url()).await;
    a.ok(
        "locks.acquire",
        json!({"name": "locks/c", "scope": "connection"}),
    )
    .await;
    let (mut b, _, _) = ops(&s.url()).await;
    wait_for(&mut b, "w", "locks/c", "session").await;
    a.ws.close(None).await.unwrap();
    let g = result(&mut b, "w").await;
    assert_eq!(g["sequence"], 2);
    // A is only disconnected: still in the store, without the lock.
    assert_eq!(
        b.ok("clients.count", json!({"filter": only(&[&a_id])}))
            .await["count"],
        1
    );
    let mut back = reconnect(&s.url(), &a_id, &token).await;
    assert!(!released(&mut back, "locks/c").await);
    // A take-over is a lost connection too (SPEC 11.3).
    back.ok(
        "locks.acquire",
        json!({"name": "locks/t", "scope": "connection"}),
    )
    .await;
    let _thief = reconnect(&s.url(), &a_id, &token).await;
    back.closed().await;
    assert_eq!(acquire(&mut b, "locks/t").await["sequence"], 2);
}

#[tokio::test]
async fn a_session_scoped_lock_is_kept_over_a_reconnect() {
    let s = start_with(quick).await;
    let (mut a, a_id, token) = ops(&s.url()).await;
    acquire(&mut a, "locks/s").await;
    let (mut b, _, _) = ops(&s.url()).await;
    a.ws.close(None).await.unwrap();
    drop(a);
    wait_for(&mut b, "w", "locks/s", "session").await;
    assert!(!answered_within(&mut b, "w", SHORT).await);
    let mut back = reconnect(&s.url(), &a_id, &token).await;
    assert_eq!(
        list(&mut back).await["locks/s"]["session_id"],
        a_id.as_str()
    );
    // A take-over keeps it too.
    let mut thief = reconnect(&s.url(), &a_id, &token).await;
    back.closed().await;
    assert!(!answered_within(&mut b, "w", SHORT).await);
    assert!(released(&mut thief, "locks/s").await);
    assert_eq!(result(&mut b, "w").await["sequence"], 2);
}

#[tokio::test]
async fn a_closed_session_lets_go_of_its_locks() {
    let s = start_with(quick).await;
    let (mut a, a_id, _) = ops(&s.url()).await;
    acquire(&mut a, "locks/x").await;
    acquire(&mut a, "locks/y").await;
    let (mut b, _, _) = ops(&s.url()).await;
    wait_for(&mut b, "x", "locks/x", "session").await;
    a.ok("close", json!({})).await;
    assert_eq!(result(&mut b, "x").await["sequence"], 2);
    // A waiter closed by a controller is never served: b's next grant
    // after its release is the very next sequence.
    let (mut c, c_id, _) = ops(&s.url()).await;
    wait_for(&mut c, "c", "locks/x", "session").await;
    let _ = a_id;
    b.ok("clients.close", json!({"session_id": c_id})).await;
    assert!(released(&mut b, "locks/x").await);
    assert_eq!(acquire(&mut b, "locks/x").await["sequence"], 3);
    // Closed by the reconnect timeout: the same.
    let (mut d, _, _) = ops(&s.url()).await;
    acquire(&mut d, "locks/z").await;
    d.ws.close(None).await.unwrap();
    send(&mut b, "z", "locks.acquire", json!({"name": "locks/z"})).await;
    // reconnect_timeout_ms is 2000 in the test configuration.
    assert!(!answered_within(&mut b, "z", Duration::from_millis(1000)).await);
    assert_eq!(result(&mut b, "z").await["sequence"], 2);
}

#[tokio::test]
async fn release_by_someone_else_is_false() {
    let s = start_with(quick).await;
    let (mut a, a_id, _) = ops(&s.url()).await;
    let (mut b, _, _) = ops(&s.url()).await;
    assert!(!released(&mut b, "locks/never").await);
    acquire(&mut a, "locks/n").await;
    assert!(!released(&mut b, "locks/n").await);
    assert_eq!(list(&mut b).await["locks/n"]["session_id"], a_id.as_str());
    assert!(released(&mut a, "locks/n").await);
    assert!(!released(&mut a, "locks/n").await);
}

#[tokio::test]
async fn cancel_answers_pending_acquires_with_120() {
    let s = start_with(quick).await;
    let (mut a, _, _) = ops(&s.url()).await;
    acquire(&mut a, "locks/k").await;
    let (mut b, _, _) = ops(&s.url()).await;
    assert_eq!(
        b.ok("locks.cancel", json!({"name": "locks/k"})).await,
        json!({"cancelled": 0})
    );
    wait_for(&mut b, "b1", "locks/k", "session").await;
    wait_for(&mut b, "b2", "locks/k", "connection").await;
    let (mut c, _, _) = ops(&s.url()).await;
    wait_for(&mut c, "c1", "locks/k", "session").await;
    assert_eq!(
        b.ok("locks.cancel", json!({"name": "locks/k"})).await,
        json!({"cancelled": 2})
    );
    assert_eq!(error(&mut b, "b1").await["code"], 120);
    assert_eq!(error(&mut b, "b2").await["code"], 120);
    // The owner's cancel does not release; others' waits are untouched.
    assert_eq!(
        a.ok("locks.cancel", json!({"name": "locks/k"})).await,
        json!({"cancelled": 0})
    );
    assert!(!answered_within(&mut c, "c1", SHORT).await);
    assert!(released(&mut a, "locks/k").await);
    assert_eq!(result(&mut c, "c1").await["sequence"], 2);
}

#[tokio::test]
async fn a_lost_connection_cancels_its_pending_acquires() {
    let s = start_with(quick).await;
    let (mut a, _, _) = ops(&s.url()).await;
    acquire(&mut a, "locks/l").await;
    let (mut b, b_id, token) = ops(&s.url()).await;
    wait_for(&mut b, "w", "locks/l", "session").await;
    let (mut c, c_id, _) = ops(&s.url()).await;
    wait_for(&mut c, "w", "locks/l", "session").await;
    b.ws.close(None).await.unwrap();
    drop(b);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(released(&mut a, "locks/l").await);
    // b was first in line, but its acquire went with its connection.
    assert_eq!(result(&mut c, "w").await["sequence"], 2);
    assert_eq!(list(&mut a).await["locks/l"]["session_id"], c_id.as_str());
    let mut back = reconnect(&s.url(), &b_id, &token).await;
    assert!(!released(&mut back, "locks/l").await);
    // Nothing from the lost connection is delivered on the new one.
    let got = drain(&mut back, SHORT).await;
    assert!(got.iter().all(|m| m["id"] != "w"), "{got:?}");
}

#[tokio::test]
async fn acquire_lock_is_checked_on_the_name_as_a_path() {
    let s = start_with(quick).await;
    let (mut o, _, _) = ops(&s.url()).await;
    // OPS: locks = [ACQUIRE_LOCK], locks/forbidden = [].
    acquire(&mut o, "locks").await;
    acquire(&mut o, "locks/deep/er/name").await;
    for name in ["locks/forbidden", "locks/forbidden/x", "elsewhere", "lock"] {
        let r = o.request("locks.acquire", json!({ "name": name })).await;
        assert_eq!(r["error"]["code"], 103, "{name}: {r}");
        assert_eq!(
            r["error"]["data"],
            json!({"permission": "ACQUIRE_LOCK", "path": name})
        );
    }
    // CLIENT: locks/public only.
    let (mut anon, _) = anonymous(&s.url(), None).await;
    acquire(&mut anon, "locks/public/a").await;
    assert_eq!(
        anon.code("locks.acquire", json!({"name": "locks/a"})).await,
        103
    );
    // The nearest assignment decides even when it is empty; default_path
    // applies only where none is assigned.
    let s = start_with(|c| {
        let c = quick(c);
        c + r#"
[principals.pathy]
password_hash = "@H@"
roles = ["PATHY", "OTHER"]

[roles.PATHY]
default_path = ["ACQUIRE_LOCK"]
paths = { "a" = [], "a/b/c" = ["ACQUIRE_LOCK"] }

[roles.OTHER]
paths = { "a/b" = [] }
"#
        .replace("@H@", quick_hash())
        .as_str()
    })
    .await;
    let (mut p, _) = principal(&s.url(), "pathy").await;
    for (name, ok) in [
        ("z", true),
        ("z/y", true),
        ("a", false),
        ("a/x", false),
        ("a/b", false),
        ("a/b/x", false),
        ("a/b/c", true),
        ("a/b/c/d", true),
    ] {
        let r = p.request("locks.acquire", json!({ "name": name })).await;
        assert_eq!(r.get("result").is_some(), ok, "{name}: {r}");
    }
}

#[tokio::test]
async fn locks_list_needs_view_server_and_shows_every_owner() {
    let s = start_with(quick).await;
    let (mut anon, anon_id) = anonymous(&s.url(), None).await;
    let r = anon.request("locks.list", json!({})).await;
    assert_eq!(r["error"]["code"], 103);
    assert_eq!(r["error"]["data"]["permission"], "VIEW_SERVER");
    let (mut o, o_id, _) = ops(&s.url()).await;
    assert_eq!(list(&mut o).await, json!({}));
    acquire(&mut anon, "locks/public/p").await;
    acquire(&mut o, "locks/o").await;
    o.ok(
        "locks.acquire",
        json!({"name": "locks/o2", "scope": "connection"}),
    )
    .await;
    assert!(released(&mut o, "locks/o").await);
    acquire(&mut o, "locks/o").await;
    assert_eq!(
        list(&mut o).await,
        json!({
            "locks/public/p": {"session_id": anon_id, "server": "test-1", "sequence": 1, "scope": "session"},
            "locks/o": {"session_id": o_id, "server": "test-1", "sequence": 2, "scope": "session"},
            "locks/o2": {"session_id": o_id, "server": "test-1", "sequence": 1, "scope": "connection"},
        })
    );
    // Waiters are not owners.
    let (mut w, _, _) = ops(&s.url()).await;
    wait_for(&mut w, "w", "locks/o", "session").await;
    assert_eq!(list(&mut o).await["locks/o"]["session_id"], o_id.as_str());
}

#[tokio::test]
async fn names_of_0_or_more_than_1024_bytes_are_invalid_params() {
    let s = start_with(quick).await;
    let (mut o, _, _) = ops(&s.url()).await;
    let longest = format!("locks/{}", "é".repeat((1024 - 6) / 2));
    assert_eq!(longest.len(), 1024);
    acquire(&mut o, &longest).await;
    let too_long = format!("{longest}x");
    for method in ["locks.acquire", "locks.release", "locks.cancel"] {
        for name in ["", too_long.as_str()] {
            assert_eq!(
                o.code(method, json!({ "name": name })).await,
                -32602,
                "{method} {}",
                name.len()
            );
        }
        assert_eq!(o.code(method, json!({})).await, -32602);
        assert_eq!(o.code(method, json!({"name": 3})).await, -32602);
    }
    assert_eq!(
        o.code(
            "locks.acquire",
            json!({"name": "locks/a", "scope": "forever"})
        )
        .await,
        -32602
    );
    // Params come before permissions (SPEC 11.1): even where it is denied.
    let (mut anon, _) = anonymous(&s.url(), None).await;
    assert_eq!(
        anon.code("locks.acquire", json!({ "name": "" })).await,
        -32602
    );
}

#[tokio::test]
async fn a_holder_that_stops_reading_keeps_its_lock_until_its_queue_overflows() {
    let s =
        start_with(|c| quick(c).replace("max_queued_messages = 200", "max_queued_messages = 20"))
            .await;
    let (mut h, h_id, _) = ops(&s.url()).await;
    acquire(&mut h, "locks/slow").await;
    h.ok(
        "clients.listen",
        json!({"filter": "Desk is 'FX'", "properties": ["Note"]}),
    )
    .await;
    // From now on h never reads.
    let (mut w, _, _) = ops(&s.url()).await;
    wait_for(&mut w, "w", "locks/slow", "session").await;
    assert!(!answered_within(&mut w, "w", Duration::from_millis(500)).await);
    assert_eq!(
        list(&mut w).await["locks/slow"]["session_id"],
        h_id.as_str()
    );
    // Events for h pile up in its socket and then its queue, which
    // overflows: h is closed (MESSAGE_QUEUE_LIMIT_REACHED) and w is served.
    let (_fx, fx_id) = anonymous(&s.url(), Some("FX")).await;
    let (mut c, _, _) = ops(&s.url()).await;
    let pad = "x".repeat(60_000);
    let mut granted = None;
    for i in 0..2000 {
        c.ok(
            "clients.set_properties",
            json!({"session_id": fx_id, "properties": {"Note": format!("{i}{pad}")}}),
        )
        .await;
        if i % 50 == 49 && answered_within(&mut w, "w", Duration::from_millis(1)).await {
            granted = Some(i);
            break;
        }
    }
    assert!(granted.is_some(), "the lock was never handed on");
    assert_eq!(result(&mut w, "w").await["sequence"], 2);
    assert_eq!(
        c.ok("clients.count", json!({"filter": only(&[&h_id])}))
            .await["count"],
        0
    );
    drop(h);
}

/// What the clients of the linearizability check saw.
#[derive(Debug, Clone)]
enum Seen {
    /// A grant answered to an acquire sent when the client did not hold the
    /// lock: when it was sent and when the answer came.
    Grant {
        name: String,
        session: String,
        sequence: u64,
        sent: Duration,
        received: Duration,
    },
    /// A stretch of time in which the client knew it owned the lock (from
    /// an answer it read to an act it had not yet done): inside the
    /// server's own ownership.
    Owned {
        name: String,
        session: String,
        sequence: u64,
        from: Duration,
        to: Duration,
    },
}

struct Held {
    name: String,
    sequence: u64,
    scope: &'static str,
    since: Duration,
}

struct Locker {
    url: String,
    raw: Raw,
    id: String,
    token: String,
    rng: Rng,
    held: Option<Held>,
    base: std::time::Instant,
    seen: std::sync::Arc<std::sync::Mutex<Vec<Seen>>>,
    tags: u64,
}

const NAMES: [&str; 3] = ["locks/public/a", "locks/public/b", "locks/public/c"];

impl Locker {
    async fn open(url: &str) -> (Raw, String, String) {
        let mut raw = Raw::connect(url).await;
        let r = raw.ok("open", json!({})).await;
        (
            raw,
            r["session_id"].as_str().unwrap().to_owned(),
            r["token"].as_str().unwrap().to_owned(),
        )
    }

    fn now(&self) -> Duration {
        self.base.elapsed()
    }

    fn tag(&mut self) -> String {
        self.tags += 1;
        format!("t{}", self.tags)
    }

    fn record(&self, s: Seen) {
        self.seen.lock().unwrap().push(s);
    }

    /// Ends the known stretch of ownership now (before the act that may
    /// end the real one).
    fn stop_owning(&mut self) {
        if let Some(h) = &self.held {
            let to = self.now();
            self.record(Seen::Owned {
                name: h.name.clone(),
                session: self.id.clone(),
                sequence: h.sequence,
                from: h.since,
                to,
            });
        }
    }

    /// A reconnect with the token, as a new connection.
    async fn reconnect(&mut self) {
        let mut raw = Raw::connect(&self.url).await;
        let r = raw
            .ok(
                "open",
                json!({"reconnect": {"session_id": self.id, "token": self.token}}),
            )
            .await;
        assert_eq!(r["session_id"], self.id.as_str());
        self.raw = raw;
    }

    /// After a lost connection or a take-over: a session-scoped lock is
    /// still ours (asking again answers at once with its sequence), a
    /// connection-scoped one is gone.
    async fn after_reconnect(&mut self) {
        let Some(h) = self.held.take() else { return };
        if h.scope == "connection" {
            return;
        }
        let g = self
            .raw
            .ok("locks.acquire", json!({"name": h.name, "scope": "session"}))
            .await;
        assert_eq!(
            g["sequence"], h.sequence,
            "{} lost {} over a reconnect",
            self.id, h.name
        );
        let since = self.now();
        self.held = Some(Held { since, ..h });
    }

    fn granted(&mut self, name: &str, g: &Value, sent: Duration) {
        let received = self.now();
        let sequence = g["sequence"].as_u64().unwrap();
        assert_eq!(g["name"], name);
        self.record(Seen::Grant {
            name: name.to_owned(),
            session: self.id.clone(),
            sequence,
            sent,
            received,
        });
        let scope = if g["scope"] == "connection" {
            "connection"
        } else {
            "session"
        };
        self.held = Some(Held {
            name: name.to_owned(),
            sequence,
            scope,
            since: received,
        });
    }

    async fn try_acquire(&mut self) {
        let name = *self.rng.pick(&NAMES);
        let scope = if self.rng.chance(30) {
            "connection"
        } else {
            "session"
        };
        let tag = self.tag();
        let sent = self.now();
        send(
            &mut self.raw,
            &tag,
            "locks.acquire",
            json!({"name": name, "scope": scope}),
        )
        .await;
        let patience = Duration::from_millis(100 + self.rng.below(1400));
        if let Ok(r) = tokio::time::timeout(patience, reply(&mut self.raw, &tag)).await {
            let g = r.get("result").unwrap_or_else(|| panic!("{r}"));
            return self.granted(name, &g.clone(), sent);
        }
        match self.rng.below(100) {
            0..=49 => {
                // Keep waiting.
                match tokio::time::timeout(Duration::from_secs(3), reply(&mut self.raw, &tag)).await
                {
                    Ok(r) => {
                        let g = r.get("result").unwrap_or_else(|| panic!("{r}"));
                        self.granted(name, &g.clone(), sent)
                    }
                    Err(_) => self.cancel(name, &tag, sent).await,
                }
            }
            50..=84 => self.cancel(name, &tag, sent).await,
            _ => {
                // Lose the connection while waiting: the acquire is
                // cancelled, unless the grant came first (then, with scope
                // session, the session owns the lock without knowing).
                drop(std::mem::replace(
                    &mut self.raw,
                    Raw::connect(&self.url).await,
                ));
                self.reconnect().await;
                let r = self.raw.ok("locks.release", json!({ "name": name })).await;
                let _owned_unknowingly = r["released"] == true;
            }
        }
    }

    async fn cancel(&mut self, name: &str, tag: &str, sent: Duration) {
        let ctag = self.tag();
        send(
            &mut self.raw,
            &ctag,
            "locks.cancel",
            json!({ "name": name }),
        )
        .await;
        let cancelled = result(&mut self.raw, &ctag).await["cancelled"].clone();
        let r = reply(&mut self.raw, tag).await;
        if let Some(g) = r.get("result") {
            // The grant came before the cancel.
            assert_eq!(cancelled, 0, "{r}");
            self.granted(name, &g.clone(), sent);
        } else {
            assert_eq!(r["error"]["code"], 120, "{r}");
            assert_eq!(cancelled, 1);
        }
    }

    async fn act_holding(&mut self) {
        tokio::time::sleep(Duration::from_millis(self.rng.below(30))).await;
        let h = self.held.as_ref().unwrap();
        let (name, sequence) = (h.name.clone(), h.sequence);
        match self.rng.below(100) {
            0..=44 => {
                self.stop_owning();
                self.held = None;
                let r = self.raw.ok("locks.release", json!({ "name": name })).await;
                assert_eq!(r["released"], true, "{} lost {name}", self.id);
            }
            45..=59 => {
                let scope = *self.rng.pick(&["session", "connection"]);
                let g = self
                    .raw
                    .ok("locks.acquire", json!({"name": name, "scope": scope}))
                    .await;
                assert_eq!(g["sequence"], sequence, "a repeat acquire of {name}: {g}");
                let h = self.held.as_mut().unwrap();
                if scope == "connection" {
                    h.scope = "connection";
                }
                assert_eq!(g["scope"], h.scope);
            }
            60..=74 => {
                // Lose the connection, then take the session back.
                self.stop_owning();
                let _ = self.raw.ws.close(None).await;
                self.reconnect().await;
                self.after_reconnect().await;
            }
            75..=84 => {
                // Take the session over from a new connection.
                self.stop_owning();
                let old = std::mem::replace(&mut self.raw, Raw::connect(&self.url).await);
                let mut fresh = std::mem::replace(&mut self.raw, old);
                let r = fresh
                    .ok(
                        "open",
                        json!({"reconnect": {"session_id": self.id, "token": self.token}}),
                    )
                    .await;
                assert_eq!(r["session_id"], self.id.as_str());
                self.raw = fresh;
                self.after_reconnect().await;
            }
            _ => {
                self.stop_owning();
                self.held = None;
                self.raw.ok("close", json!({})).await;
                let (raw, id, token) = Locker::open(&self.url).await;
                (self.raw, self.id, self.token) = (raw, id, token);
            }
        }
    }

    async fn run(mut self, until: Duration) -> Locker {
        while self.now() < until {
            if self.held.is_some() {
                self.act_holding().await;
            } else {
                self.try_acquire().await;
            }
        }
        if let Some(h) = &self.held {
            let name = h.name.clone();
            self.stop_owning();
            self.held = None;
            let r = self.raw.ok("locks.release", json!({ "name": name })).await;
            assert_eq!(r["released"], true, "{} lost {name}", self.id);
        }
        self
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_random_history_is_linearizable() {
    let seed = Rng::seed();
    eprintln!("locks: SEED={seed}");
    let s = start_with(quick).await;
    let base = std::time::Instant::now();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut rng = Rng::new(seed);
    let until = Duration::from_secs(6);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (raw, id, token) = Locker::open(&s.url()).await;
        let locker = Locker {
            url: s.url(),
            raw,
            id,
            token,
            rng: Rng::new(rng.next()),
            held: None,
            base,
            seen: seen.clone(),
            tags: 0,
        };
        tasks.push(tokio::spawn(locker.run(until)));
    }
    let mut lockers = Vec::new();
    for t in tasks {
        lockers.push(t.await.unwrap());
    }
    let seen = seen.lock().unwrap().clone();
    for name in NAMES {
        let grants: Vec<(&String, u64, Duration, Duration)> = seen
            .iter()
            .filter_map(|s| match s {
                Seen::Grant {
                    name: n,
                    session,
                    sequence,
                    sent,
                    received,
                } if n == name => Some((session, *sequence, *sent, *received)),
                _ => None,
            })
            .collect();
        let owned: Vec<(&String, u64, Duration, Duration)> = seen
            .iter()
            .filter_map(|s| match s {
                Seen::Owned {
                    name: n,
                    session,
                    sequence,
                    from,
                    to,
                } if n == name => Some((session, *sequence, *from, *to)),
                _ => None,
            })
            .collect();
        assert!(grants.len() > 5, "{name}: only {} grants", grants.len());
        // One owner per sequence.
        let mut by_sequence = std::collections::BTreeMap::new();
        for (session, sequence, _, _) in grants.iter().chain(owned.iter()) {
            let first = by_sequence.entry(*sequence).or_insert(*session);
            assert_eq!(
                *first, *session,
                "{name}: sequence {sequence} granted twice"
            );
        }
        // Never two owners at once.
        for (i, a) in owned.iter().enumerate() {
            for b in &owned[i + 1..] {
                if a.1 != b.1 {
                    assert!(
                        a.3 <= b.2 || b.3 <= a.2,
                        "{name}: {} (sequence {}) owned {:?}..{:?} while {} (sequence {}) owned {:?}..{:?}",
                        a.0, a.1, a.2, a.3, b.0, b.1, b.2, b.3
                    );
                }
            }
        }
        // Sequences grow with time: by sequence, grants were read in order.
        let mut in_order = grants.clone();
        in_order.sort_by_key(|g| g.1);
        for w in in_order.windows(2) {
            assert!(
                w[0].1 < w[1].1 && w[0].3 < w[1].3,
                "{name}: sequence {} read at {:?}, sequence {} at {:?}",
                w[0].1,
                w[0].3,
                w[1].1,
                w[1].3
            );
        }
        // First come, first served: an acquire sent well before another
        // (the margin covers the time a request takes to reach the lock
        // table) is granted first.
        let margin = Duration::from_millis(100);
        let mut pairs = 0;
        for a in &grants {
            for b in &grants {
                if a.0 != b.0 && a.2 + margin < b.2 && b.2 < a.3 {
                    pairs += 1;
                    assert!(
                        a.1 < b.1,
                        "{name}: {} asked at {:?} and got {}, {} asked at {:?} and got {}",
                        a.0,
                        a.2,
                        a.1,
                        b.0,
                        b.2,
                        b.1
                    );
                }
            }
        }
        // No grant is lost: every owner is gone, so the lock is free.
        let (mut last, _, _) = Locker::open(&s.url()).await;
        let max = by_sequence.keys().max().copied().unwrap_or(0);
        send(&mut last, "final", "locks.acquire", json!({ "name": name })).await;
        let g = tokio::time::timeout(Duration::from_secs(2), result(&mut last, "final"))
            .await
            .unwrap_or_else(|_| panic!("{name} is still held by someone gone"));
        assert!(g["sequence"].as_u64().unwrap() > max, "{g}");
        eprintln!(
            "locks: {name}: {} grants, {} stretches owned, {pairs} pairs ordered, last sequence {max}",
            grants.len(),
            owned.len()
        );
    }
    drop(lockers);
}

/// An acquire sent just before its connection drops (scope `connection`) or
/// its session closes must not leave the lock to an owner that is gone: the
/// next session gets it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquires_racing_a_lost_connection_or_a_close_leave_no_owner() {
    let s = start_with(quick).await;
    let (mut b, _) = anonymous(&s.url(), None).await;
    let name = "locks/public/race";
    let (mut a, mut a_id, mut token) = Locker::open(&s.url()).await;
    for round in 0..150 {
        let close = round % 2 == 1;
        let acquire = json!({"jsonrpc": "2.0", "id": "a", "method": "locks.acquire",
                             "params": {"name": name, "scope": "connection"}});
        a.send_text(&acquire.to_string()).await;
        if close {
            a.send_text(&json!({"jsonrpc": "2.0", "id": "c", "method": "close"}).to_string())
                .await;
            a.closed().await;
        } else {
            drop(a);
        }
        let tag = format!("b{round}");
        send(&mut b, &tag, "locks.acquire", json!({ "name": name })).await;
        // Well within the reconnect timeout (2 s), which would close the
        // gone owner's session and so free the lock anyway.
        let got = tokio::time::timeout(Duration::from_secs(1), reply(&mut b, &tag)).await;
        let Ok(g) = got else {
            panic!(
                "round {round} ({}): the lock stayed with a gone owner",
                if close { "close" } else { "lost connection" }
            );
        };
        assert!(g.get("result").is_some(), "{g}");
        assert!(released(&mut b, name).await);
        if close {
            (a, a_id, token) = Locker::open(&s.url()).await;
        } else {
            a = reconnect(&s.url(), &a_id, &token).await;
        }
    }
}
