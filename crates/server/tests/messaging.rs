//! Messages to sessions over real sockets (SPEC 11.7): each rule as its own
//! test, by id and by filter.

mod common;
mod support;

use std::time::{Duration, Instant};

use common::*;
use futures_util::SinkExt;
use serde_json::{json, Value};
use support::*;

const SHORT: Duration = Duration::from_millis(300);

/// A session that handles `path`.
async fn handler(url: &str, desk: Option<&str>, path: &str) -> (Raw, String) {
    let (mut c, id) = anonymous(url, desk).await;
    assert_eq!(
        c.ok("messaging.add_handler", json!({ "path": path })).await,
        json!({})
    );
    (c, id)
}

/// The next `messaging.request` a recipient gets.
async fn request_of(c: &mut Raw) -> Value {
    c.note("messaging.request").await["params"].clone()
}

async fn respond(c: &mut Raw, id: &Value, answer: Value) {
    let mut params = answer;
    params["id"] = id.clone();
    assert_eq!(c.ok("messaging.respond", params).await, json!({}));
}

#[tokio::test]
async fn by_id_the_response_comes_back() {
    let s = start_with(quick).await;
    let (mut ops, ops_id) = principal(&s.url(), "ops").await;
    let (mut r, r_id) = handler(&s.url(), None, "alerts/halt").await;
    send(
        &mut ops,
        "s",
        "messaging.send",
        json!({"session_id": r_id, "path": "alerts/halt", "request": {"desk": ["FX", 1]}}),
    )
    .await;
    let req = request_of(&mut r).await;
    assert_eq!(req["path"], "alerts/halt");
    assert_eq!(req["request"], json!({"desk": ["FX", 1]}));
    assert_eq!(req["from"], ops_id.as_str());
    // Another session cannot answer it for r.
    let (mut other, _) = handler(&s.url(), None, "alerts/halt").await;
    respond(&mut other, &req["id"], json!({"response": "forged"})).await;
    assert!(!answered_within(&mut ops, "s", SHORT).await);
    respond(&mut r, &req["id"], json!({"response": [true, null]})).await;
    assert_eq!(
        result(&mut ops, "s").await,
        json!({"response": [true, null]})
    );
    // Any JSON value travels, null included.
    send(
        &mut ops,
        "n",
        "messaging.send",
        json!({"session_id": r_id, "path": "alerts/halt", "request": null}),
    )
    .await;
    let req = request_of(&mut r).await;
    assert_eq!(req["request"], Value::Null);
    respond(&mut r, &req["id"], json!({"response": "ok"})).await;
    assert_eq!(result(&mut ops, "n").await, json!({"response": "ok"}));
}

#[tokio::test]
async fn by_id_an_error_answer_is_9003_with_its_text() {
    let s = start_with(quick).await;
    let (mut ops, _) = principal(&s.url(), "ops").await;
    let (mut r, r_id) = handler(&s.url(), None, "alerts").await;
    send(
        &mut ops,
        "s",
        "messaging.send",
        json!({"session_id": r_id, "path": "alerts", "request": 1}),
    )
    .await;
    let req = request_of(&mut r).await;
    respond(&mut r, &req["id"], json!({"error": "not today"})).await;
    let e = error(&mut ops, "s").await;
    assert_eq!(
        (e["code"].as_i64(), &e["data"]),
        (Some(9003), &json!("not today"))
    );
    // Neither response nor error: -32602.
    assert_eq!(
        r.code("messaging.respond", json!({"id": req["id"]})).await,
        -32602
    );
}

#[tokio::test]
async fn by_id_without_a_handler_is_109_and_unknown_is_107() {
    let s = start_with(quick).await;
    let (mut ops, _) = principal(&s.url(), "ops").await;
    let (mut r, r_id) = handler(&s.url(), None, "alerts/a").await;
    for path in ["alerts", "alerts/a/b", "alerts/b"] {
        let e = ops
            .request(
                "messaging.send",
                json!({"session_id": r_id, "path": path, "request": 1}),
            )
            .await;
        assert_eq!(e["error"]["code"], 109, "{path}: {e}");
    }
    r.ok("messaging.remove_handler", json!({"path": "alerts/a"}))
        .await;
    assert_eq!(
        ops.code(
            "messaging.send",
            json!({"session_id": r_id, "path": "alerts/a", "request": 1})
        )
        .await,
        109
    );
    assert!(drain(&mut r, SHORT)
        .await
        .iter()
        .all(|m| m["method"] != "messaging.request"));
    assert_eq!(
        ops.code(
            "messaging.send",
            json!({"session_id": "0000000000000000-0000000000000009", "path": "alerts", "request": 1})
        )
        .await,
        107
    );
    // A session in the store without a connection has no handler.
    s.server
        .store()
        .insert([("$SessionId", "embedded-1"), ("$Principal", "x")])
        .unwrap();
    assert_eq!(
        ops.code(
            "messaging.send",
            json!({"session_id": "embedded-1", "path": "alerts", "request": 1})
        )
        .await,
        109
    );
}

#[tokio::test]
async fn by_id_a_recipient_that_closes_is_101() {
    let s = start_with(quick).await;
    let (mut ops, _) = principal(&s.url(), "ops").await;
    let (mut r, r_id) = handler(&s.url(), None, "alerts").await;
    send(
        &mut ops,
        "s",
        "messaging.send",
        json!({"session_id": r_id, "path": "alerts", "request": 1}),
    )
    .await;
    request_of(&mut r).await;
    r.ok("close", json!({})).await;
    assert_eq!(error(&mut ops, "s").await["code"], 101);
    // Closed by a controller while a request waits: the same.
    let (mut r, r_id) = handler(&s.url(), None, "alerts").await;
    send(
        &mut ops,
        "t",
        "messaging.send",
        json!({"session_id": r_id, "path": "alerts", "request": 1}),
    )
    .await;
    request_of(&mut r).await;
    ops.ok("clients.close", json!({"filter": only(&[&r_id])}))
        .await;
    assert_eq!(error(&mut ops, "t").await["code"], 101);
}

#[tokio::test]
async fn by_id_the_timeout_is_102_and_a_late_response_is_dropped() {
    let s = start_with(quick).await;
    let (mut ops, _) = principal(&s.url(), "ops").await;
    let (mut r, r_id) = handler(&s.url(), None, "alerts").await;
    let sent = Instant::now();
    send(
        &mut ops,
        "s",
        "messaging.send",
        json!({"session_id": r_id, "path": "alerts", "request": 1, "timeout_ms": 300}),
    )
    .await;
    let req = request_of(&mut r).await;
    assert_eq!(error(&mut ops, "s").await["code"], 102);
    assert!(sent.elapsed() >= Duration::from_millis(300));
    // The late answer is taken ({}) and goes nowhere.
    respond(&mut r, &req["id"], json!({"response": "late"})).await;
    let got = drain(&mut ops, SHORT).await;
    assert!(got.is_empty(), "{got:?}");
    // A disconnected recipient gets the request when it reconnects, and
    // its answer still counts within the timeout.
    let mut first = Raw::connect(&s.url()).await;
    let opened = first.ok("open", json!({})).await;
    let (id, token) = (
        opened["session_id"].as_str().unwrap().to_owned(),
        opened["token"].as_str().unwrap().to_owned(),
    );
    first
        .ok("messaging.add_handler", json!({"path": "alerts"}))
        .await;
    first.ws.close(None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    send(
        &mut ops,
        "d",
        "messaging.send",
        json!({"session_id": id, "path": "alerts", "request": "queued"}),
    )
    .await;
    let mut back = Raw::connect(&s.url()).await;
    back.ok(
        "open",
        json!({"reconnect": {"session_id": id, "token": token}}),
    )
    .await;
    let req = request_of(&mut back).await;
    assert_eq!(req["request"], "queued");
    respond(&mut back, &req["id"], json!({"response": 2})).await;
    assert_eq!(result(&mut ops, "d").await, json!({"response": 2}));
}

/// Sends by filter and collects the result, the responses and `done`.
async fn by_filter(
    c: &mut Raw,
    tag: &str,
    filter: &str,
    path: &str,
    timeout_ms: u64,
) -> (Value, Vec<Value>, Value) {
    send(
        c,
        tag,
        "messaging.send",
        json!({"filter": filter, "path": path, "request": {"q": tag}, "timeout_ms": timeout_ms}),
    )
    .await;
    let r = result(c, tag).await;
    let rid = r["request"].clone();
    let mut responses = Vec::new();
    loop {
        let m = match c.notes.iter().position(|n| {
            (n["method"] == "messaging.response" || n["method"] == "messaging.done")
                && n["params"]["request"] == rid
        }) {
            Some(i) => c.notes.remove(i),
            None => {
                let m = c.read().await.expect("closed before messaging.done");
                let mine = (m["method"] == "messaging.response" || m["method"] == "messaging.done")
                    && m["params"]["request"] == rid;
                if !mine {
                    c.notes.push(m);
                    continue;
                }
                m
            }
        };
        if m["method"] == "messaging.done" {
            return (r, responses, m["params"].clone());
        }
        responses.push(m["params"].clone());
    }
}

#[tokio::test]
async fn by_filter_only_matching_sessions_with_a_handler_get_it() {
    let s = start_with(quick).await;
    let (mut ops, _) = principal(&s.url(), "ops").await;
    let (mut ok1, ok1_id) = handler(&s.url(), Some("FX"), "alerts").await;
    let (mut ok2, ok2_id) = handler(&s.url(), Some("FX"), "alerts").await;
    let (mut bad, bad_id) = handler(&s.url(), Some("FX"), "alerts").await;
    let (mut mute, mute_id) = handler(&s.url(), Some("FX"), "alerts").await;
    let (mut nohandler, _) = anonymous(&s.url(), Some("FX")).await;
    let (mut otherpath, _) = handler(&s.url(), Some("FX"), "alerts/other").await;
    let (mut rates, _) = handler(&s.url(), Some("Rates"), "alerts").await;
    let answer = async move {
        let r = request_of(&mut ok1).await;
        respond(&mut ok1, &r["id"], json!({"response": "one"})).await;
        let r = request_of(&mut ok2).await;
        respond(&mut ok2, &r["id"], json!({"response": {"n": 2}})).await;
        let r = request_of(&mut bad).await;
        respond(&mut bad, &r["id"], json!({"error": "no"})).await;
        let r = request_of(&mut mute).await;
        assert_eq!(r["request"], json!({"q": "f"}));
        (ok1, ok2, bad, mute, r["id"].clone())
    };
    let answering = tokio::spawn(answer);
    let started = Instant::now();
    let (r, responses, done) = by_filter(&mut ops, "f", "Desk is 'FX'", "alerts", 1500).await;
    assert!(started.elapsed() >= Duration::from_millis(1500));
    assert_eq!(r["count"], 4);
    let mut got: Vec<(String, Value)> = responses
        .iter()
        .map(|p| {
            let v = p
                .get("response")
                .cloned()
                .unwrap_or_else(|| json!({"error": p["error"]}));
            (p["session_id"].as_str().unwrap().to_owned(), v)
        })
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    let mut want = vec![
        (ok1_id, json!("one")),
        (ok2_id, json!({"n": 2})),
        (bad_id, json!({"error": "no"})),
    ];
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got, want);
    assert_eq!(
        done,
        json!({"request": r["request"], "responded": 2, "failed": 1, "timed_out": 1})
    );
    let (_ok1, _ok2, _bad, mut mute, mute_request) = answering.await.unwrap();
    // The mute one's late answer is taken and dropped.
    respond(&mut mute, &mute_request, json!({"response": "late"})).await;
    let _ = mute_id;
    for c in [&mut nohandler, &mut otherpath, &mut rates] {
        let got = drain(c, Duration::from_millis(100)).await;
        assert!(
            got.iter()
                .chain(c.notes.iter())
                .all(|m| m["method"] != "messaging.request"),
            "{got:?}"
        );
    }
    let got = drain(&mut ops, SHORT).await;
    assert!(got.is_empty(), "{got:?}");
}

#[tokio::test]
async fn by_filter_done_comes_even_when_nobody_is_reached() {
    let s = start_with(quick).await;
    let (mut ops, _) = principal(&s.url(), "ops").await;
    let (_plain, _) = anonymous(&s.url(), Some("FX")).await;
    let (r, responses, done) = by_filter(&mut ops, "z", "Desk is 'FX'", "alerts", 30_000).await;
    assert_eq!(r["count"], 0);
    assert!(responses.is_empty());
    assert_eq!(
        done,
        json!({"request": r["request"], "responded": 0, "failed": 0, "timed_out": 0})
    );
    // A bad filter is 106 with its position, and nothing is sent.
    let e = ops
        .request(
            "messaging.send",
            json!({"filter": "Desk is", "path": "alerts", "request": 1}),
        )
        .await;
    assert_eq!(e["error"]["code"], 106);
    assert!(e["error"]["data"]["offset"].is_u64(), "{e}");
    // Neither or both targets: -32602; no request: -32602.
    for params in [
        json!({"path": "alerts", "request": 1}),
        json!({"filter": "all", "session_id": "x", "path": "alerts", "request": 1}),
        json!({"filter": "all", "path": "alerts"}),
        json!({"filter": "all", "request": 1}),
    ] {
        assert_eq!(ops.code("messaging.send", params).await, -32602);
    }
}

#[tokio::test]
async fn by_filter_a_recipient_that_closes_counts_as_failed() {
    let s = start_with(quick).await;
    let (mut ops, _) = principal(&s.url(), "ops").await;
    let (mut a, a_id) = handler(&s.url(), Some("Credit"), "alerts").await;
    let (mut b, b_id) = handler(&s.url(), Some("Credit"), "alerts").await;
    let answering = tokio::spawn(async move {
        let r = request_of(&mut a).await;
        a.ok("close", json!({})).await;
        let _ = r;
        let r = request_of(&mut b).await;
        respond(&mut b, &r["id"], json!({"response": 1})).await;
        b
    });
    let (r, responses, done) = by_filter(&mut ops, "c", "Desk is 'Credit'", "alerts", 10_000).await;
    assert_eq!(r["count"], 2);
    assert_eq!(
        done,
        json!({"request": r["request"], "responded": 1, "failed": 1, "timed_out": 0})
    );
    let failed: Vec<&Value> = responses
        .iter()
        .filter(|p| p.get("error").is_some())
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["session_id"], a_id.as_str());
    assert!(failed[0]["error"].is_string());
    let ok: Vec<&Value> = responses
        .iter()
        .filter(|p| p.get("response").is_some())
        .collect();
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0]["session_id"], b_id.as_str());
    answering.await.unwrap();
}

#[tokio::test]
async fn send_to_session_is_checked_on_the_path() {
    let s = start_with(quick).await;
    let (mut ops, _) = principal(&s.url(), "ops").await;
    let (_r, r_id) = handler(&s.url(), None, "other").await;
    for path in ["other", "alert", "x/alerts"] {
        for target in [json!({"session_id": r_id}), json!({"filter": "all"})] {
            let mut params = target;
            params["path"] = json!(path);
            params["request"] = json!(1);
            let e = ops.request("messaging.send", params).await;
            assert_eq!(e["error"]["code"], 103, "{e}");
            assert_eq!(
                e["error"]["data"],
                json!({"permission": "SEND_TO_SESSION", "path": path})
            );
        }
    }
    // "alerts" grants it below too.
    let (_deep, deep_id) = handler(&s.url(), None, "alerts/a/b").await;
    let e = ops
        .request(
            "messaging.send",
            json!({"session_id": deep_id, "path": "alerts/a/b", "request": 1, "timeout_ms": 50}),
        )
        .await;
    assert_eq!(e["error"]["code"], 102, "{e}");
    // Anonymous CLIENTs have no SEND_TO_SESSION; the permission is checked
    // before the target (an unknown id is still 103).
    let (mut anon, _) = anonymous(&s.url(), None).await;
    assert_eq!(
        anon.code(
            "messaging.send",
            json!({"session_id": "nobody", "path": "alerts", "request": 1})
        )
        .await,
        103
    );
    // Handlers need no permission.
    assert_eq!(
        anon.ok("messaging.add_handler", json!({"path": "alerts"}))
            .await,
        json!({})
    );
}

#[tokio::test]
async fn a_recipient_that_stops_reading_does_not_delay_the_others() {
    // A queue of 600: when the slow one is closed, every request still
    // pending on it fails at once, and the sender gets a response and a
    // `done` for each; rounds are paced (at most 100 a second, so at most
    // about 200 such notifications), so the sender's own queue never
    // overflows while it reads, however fast the machine.
    let s =
        start_with(|c| quick(c).replace("max_queued_messages = 200", "max_queued_messages = 600"))
            .await;
    let (mut ops, _) = principal(&s.url(), "ops").await;
    // The slow one handles the path and never reads again.
    let (slow, slow_id) = handler(&s.url(), Some("Equities"), "alerts").await;
    let mut quick = Vec::new();
    for _ in 0..5 {
        quick.push(handler(&s.url(), Some("Equities"), "alerts").await);
    }
    let answering: Vec<_> = quick
        .into_iter()
        .map(|(mut c, _)| {
            tokio::spawn(async move {
                loop {
                    let m = match c.read().await {
                        Some(m) => m,
                        None => return,
                    };
                    if m["method"] == "messaging.request" {
                        let id = m["params"]["id"].clone();
                        c.send_text(
                            &json!({"jsonrpc": "2.0", "id": "r", "method": "messaging.respond",
                                    "params": {"id": id, "response": "quick"}})
                            .to_string(),
                        )
                        .await;
                    }
                }
            })
        })
        .collect();
    // Big requests fill the slow one's socket, then its queue, until it is
    // closed; the quick answers never wait for it.
    let pad = "y".repeat(50_000);
    let mut rounds = Vec::new();
    let mut slow_gone = false;
    for round in 0..2000 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let tag = format!("r{round}");
        send(
            &mut ops,
            &tag,
            "messaging.send",
            json!({"filter": "Desk is 'Equities'", "path": "alerts",
                   "request": pad, "timeout_ms": 1000}),
        )
        .await;
        let r = result(&mut ops, &tag).await;
        let rid = r["request"].clone();
        let started = Instant::now();
        let mut quick_answers = 0;
        while quick_answers < 5 {
            let i = ops.notes.iter().position(|m| {
                m["method"] == "messaging.response"
                    && m["params"]["request"] == rid
                    && m["params"]["response"] == "quick"
            });
            match i {
                Some(i) => {
                    ops.notes.remove(i);
                    quick_answers += 1;
                }
                None => {
                    let m = ops.read().await.expect("ops closed");
                    ops.notes.push(m);
                }
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "round {round}: the quick answers took {:?}",
            started.elapsed()
        );
        rounds.push((rid, r["count"].as_u64().unwrap()));
        if round % 10 == 9 {
            let count = ops
                .ok("clients.count", json!({"filter": only(&[&slow_id])}))
                .await["count"]
                .clone();
            if count == 0 {
                slow_gone = true;
                break;
            }
        }
    }
    assert!(slow_gone, "the slow recipient was never closed");
    // Every request is done: the slow one's share timed out or failed when
    // it closed.
    for (rid, count) in &rounds {
        let done = loop {
            if let Some(i) = ops
                .notes
                .iter()
                .position(|m| m["method"] == "messaging.done" && m["params"]["request"] == *rid)
            {
                break ops.notes.remove(i)["params"].clone();
            }
            let m = ops.read().await.expect("ops closed");
            ops.notes.push(m);
        };
        assert_eq!(done["responded"], 5, "{done}");
        let rest = done["failed"].as_u64().unwrap() + done["timed_out"].as_u64().unwrap();
        assert_eq!(rest, count - 5, "{done}");
    }
    drop(slow);
    for a in answering {
        a.abort();
    }
}

/// A handler that answers every request at once, until its session closes.
fn answer_all(mut c: Raw) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(m) = c.read().await {
            if m["method"] == "messaging.request" {
                let id = m["params"]["id"].clone();
                let text = json!({"jsonrpc": "2.0", "id": "r", "method": "messaging.respond",
                                  "params": {"id": id, "response": "here"}});
                if c.ws
                    .send(tokio_tungstenite::tungstenite::Message::Text(
                        text.to_string().into(),
                    ))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            if m["method"] == "closed" {
                return;
            }
        }
    })
}

/// Recipients closed, opened and changed while a request by filter fans
/// out: every recipient counted is accounted for in `done`, those that
/// closed as failed, none as timed out (the others answer at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_filter_summaries_are_exact_while_recipients_come_change_and_go() {
    let s = start_with(quick).await;
    let (mut sender, _) = principal(&s.url(), "ops").await;
    let (mut closer, _) = principal(&s.url(), "ops").await;
    let (mut changer, _) = principal(&s.url(), "ops").await;
    let mut failed_total = 0;
    for round in 0..8 {
        let desk = ["FX", "Rates", "Equities", "Credit"][round % 4];
        let mut ids = Vec::new();
        let mut tasks = Vec::new();
        for _ in 0..30 {
            let (c, id) = handler(&s.url(), Some(desk), "alerts").await;
            tasks.push(answer_all(c));
            ids.push(id);
        }
        let half: Vec<&str> = ids.iter().step_by(2).map(String::as_str).collect();
        let others: Vec<String> = ids.iter().skip(1).step_by(6).cloned().collect();
        // Meanwhile: five newcomers, and five sessions moved away.
        let url = s.url();
        let changing = tokio::spawn(async move {
            let mut more = Vec::new();
            for (i, id) in others.iter().enumerate() {
                let (c, new_id) = handler(&url, Some(desk), "alerts").await;
                more.push((answer_all(c), new_id));
                let tag = format!("m{i}");
                send(
                    &mut changer,
                    &tag,
                    "clients.set_properties",
                    json!({"session_id": id, "properties": {"Desk": "Other"}}),
                )
                .await;
                result(&mut changer, &tag).await;
            }
            (changer, more)
        });
        let tag = format!("s{round}");
        send(
            &mut sender,
            &tag,
            "messaging.send",
            json!({"filter": format!("Desk is '{desk}'"), "path": "alerts",
                   "request": round, "timeout_ms": 5000}),
        )
        .await;
        closer
            .ok("clients.close", json!({ "filter": only(&half) }))
            .await;
        let r = result(&mut sender, &tag).await;
        let count = r["count"].as_u64().unwrap();
        let done = loop {
            let d = sender.note("messaging.done").await;
            if d["params"]["request"] == r["request"] {
                break d["params"].clone();
            }
        };
        let (responded, failed, timed_out) = (
            done["responded"].as_u64().unwrap(),
            done["failed"].as_u64().unwrap(),
            done["timed_out"].as_u64().unwrap(),
        );
        assert_eq!(
            (responded + failed, timed_out),
            (count, 0),
            "round {round}: count {count}, {done}"
        );
        assert!(responded >= 10, "round {round}: {done}");
        failed_total += failed;
        let (back, more) = changing.await.unwrap();
        changer = back;
        for (t, id) in more {
            t.abort();
            ids.push(id);
        }
        for t in tasks {
            t.abort();
        }
        let all: Vec<&str> = ids.iter().map(String::as_str).collect();
        closer
            .ok("clients.close", json!({ "filter": only(&all) }))
            .await;
    }
    eprintln!("messaging: {failed_total} recipients closed during a fan-out");
}
