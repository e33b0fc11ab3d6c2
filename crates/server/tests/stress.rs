//! 200 clients churn (open, close, reopen, lose and regain their connection,
//! change their roles and properties, change others' by filter) while three
//! listeners run and read as they go; at quiescence each listener's
//! replayed view is exactly `clients.fetch` of its filter (SPEC 11.5, 8.2).
//!
//! `SEED=N` replays the churn's choices; `STRESS_CLIENTS` and
//! `STRESS_ROUNDS` change its size.

mod common;
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};
use support::*;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;

const DESKS: [&str; 4] = ["FX", "Rates", "Equities", "Credit"];

/// The listeners: filter and requested keys.
const LISTENERS: [(&str, &[&str]); 3] = [
    ("all", &["Desk", "Note"]),
    ("Desk is 'FX'", &["Note"]),
    ("hasRoles ['TRADER']", &[]),
];

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One churning client: its session, with its connection and token.
struct Churner {
    raw: Raw,
    id: String,
    token: String,
}

async fn open(url: &str, rng: &mut Rng) -> Churner {
    let mut raw = Raw::connect(url).await;
    let desk = *rng.pick(&DESKS);
    let r = call(&mut raw, "open", json!({"properties": {"Desk": desk}})).await;
    Churner {
        raw,
        id: r["session_id"].as_str().unwrap().to_owned(),
        token: r["token"].as_str().unwrap().to_owned(),
    }
}

async fn churn(url: String, seed: u64, rounds: usize) -> (Churner, usize) {
    let mut rng = Rng::new(seed);
    let mut me = open(&url, &mut rng).await;
    let mut requests = 0;
    for round in 0..rounds {
        requests += 1;
        match rng.below(100) {
            0..=34 => {
                let note = format!("n{}", rng.below(5));
                let r = call(
                    &mut me.raw,
                    "clients.set_properties",
                    json!({"session_id": me.id, "properties": {"Note": note}}),
                )
                .await;
                assert!(r["changed"].is_object());
            }
            35..=44 => {
                let desk = *rng.pick(&DESKS);
                call(
                    &mut me.raw,
                    "clients.set_properties",
                    json!({"session_id": me.id, "properties": {"Desk": desk, "Note": null}}),
                )
                .await;
            }
            45..=59 => {
                let (add, remove) = if rng.chance(50) {
                    (json!(["TRADER"]), json!([]))
                } else {
                    (json!([]), json!(["TRADER"]))
                };
                let r = call(
                    &mut me.raw,
                    "clients.change_roles",
                    json!({"session_id": me.id, "add": add, "remove": remove}),
                )
                .await;
                assert_eq!(r["count"], 1);
            }
            60..=67 => {
                // Others' properties by filter, while they change them too.
                let desk = *rng.pick(&DESKS);
                let note = format!("f{round}");
                call(
                    &mut me.raw,
                    "clients.set_properties",
                    json!({"filter": format!("Desk is '{desk}' and hasRoles ['TRADER']"),
                               "properties": {"Note": note}}),
                )
                .await;
            }
            68..=77 => {
                call(&mut me.raw, "close", json!({})).await;
                me.raw.closed().await;
                me = open(&url, &mut rng).await;
            }
            78..=89 => {
                // Lose the connection, then take the session back.
                let _ = me.raw.ws.close(None).await;
                if rng.chance(50) {
                    tokio::time::sleep(Duration::from_millis(rng.below(20))).await;
                }
                let mut raw = Raw::connect(&url).await;
                let r = call(
                    &mut raw,
                    "open",
                    json!({"reconnect": {"session_id": me.id, "token": me.token}}),
                )
                .await;
                assert_eq!(r["session_id"], me.id.as_str());
                me.raw = raw;
            }
            _ => {
                let n = call(
                    &mut me.raw,
                    "clients.count",
                    json!({"filter": only(&[&me.id])}),
                )
                .await;
                assert_eq!(n["count"], 1);
            }
        }
    }
    (me, requests)
}

/// A listener reading as events come, replaying them into its view.
async fn listen(
    mut raw: Raw,
    filter: &'static str,
    keys: &'static [&'static str],
    stop: oneshot::Receiver<()>,
) -> (Raw, Value, View) {
    let r = raw
        .ok(
            "clients.listen",
            json!({"filter": filter, "properties": keys}),
        )
        .await;
    let listener = r["listener"].clone();
    let mut view = View::default();
    view.replay(&mut raw.notes, &listener).unwrap();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => break,
            m = raw.ws.next() => {
                let text = match m {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(_)) => continue,
                    other => panic!("listener {filter} lost its connection: {other:?}"),
                };
                let v: Value = serde_json::from_str(text.as_str()).unwrap();
                if v["method"] == "clients.event" {
                    if let Err(e) = view.apply(&v["params"]) {
                        panic!("listener {filter}: {e}");
                    }
                } else {
                    raw.notes.push(v);
                }
            }
        }
    }
    (raw, listener, view)
}

/// `clients.fetch` of a filter, as a view with every session active.
async fn fetched(c: &mut Raw, filter: &str, keys: &[&str]) -> BTreeMap<String, Seen> {
    let page = call(
        c,
        "clients.fetch",
        json!({"filter": filter, "properties": keys, "limit": 10000}),
    )
    .await;
    let rows = page["sessions"].as_array().unwrap();
    assert_eq!(page["total"], rows.len());
    rows.iter()
        .map(|r| {
            let properties = r["properties"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect();
            (
                r["id"].as_str().unwrap().to_owned(),
                Seen {
                    state: "active".into(),
                    properties,
                },
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_match_fetch_after_200_clients_churn() {
    let clients = env("STRESS_CLIENTS", 200);
    let rounds = env("STRESS_ROUNDS", 25);
    let seed = Rng::seed();
    eprintln!("stress: SEED={seed} STRESS_CLIENTS={clients} STRESS_ROUNDS={rounds}");
    // Anonymous sessions may control the others here; disconnected ones
    // stay for the whole run; queues hold a burst of the whole churn.
    let s = start_with(|c| {
        let c = quick(c);
        c.replacen("roles = [\"CLIENT\"]", "roles = [\"OPS\"]", 1)
            .replace(
                "reconnect_timeout_ms = 2000",
                "reconnect_timeout_ms = 600000",
            )
            .replace("max_queued_messages = 200", "max_queued_messages = 100000")
    })
    .await;
    let url = s.url();
    let mut stops = Vec::new();
    let mut listening = Vec::new();
    for (filter, keys) in LISTENERS {
        let (raw, _) = principal(&url, "ops").await;
        let (stop, stopped) = oneshot::channel();
        stops.push(stop);
        listening.push(tokio::spawn(listen(raw, filter, keys, stopped)));
    }
    let started = Instant::now();
    let mut rng = Rng::new(seed);
    let churning: Vec<_> = (0..clients)
        .map(|_| tokio::spawn(churn(url.clone(), rng.next(), rounds)))
        .collect();
    let mut churners = Vec::new();
    let mut requests = 0;
    for c in churning {
        let (churner, n) = c.await.unwrap();
        churners.push(churner);
        requests += n;
    }
    let churn_time = started.elapsed();
    for stop in stops {
        let _ = stop.send(());
    }
    let mut listeners = Vec::new();
    for l in listening {
        listeners.push(l.await.unwrap());
    }
    // Quiescence: what is still in flight arrives; then each view is the
    // fetch of its filter.
    for ((raw, listener, view), (filter, keys)) in listeners.iter_mut().zip(LISTENERS) {
        let mut want = BTreeMap::new();
        for _ in 0..100 {
            drain(raw, Duration::from_millis(50)).await;
            view.replay(&mut raw.notes, listener)
                .unwrap_or_else(|e| panic!("listener {filter}: {e}"));
            want = fetched(raw, filter, keys).await;
            view.replay(&mut raw.notes, listener)
                .unwrap_or_else(|e| panic!("listener {filter}: {e}"));
            if view.sessions == want {
                break;
            }
        }
        let diff: Vec<_> = want
            .iter()
            .filter(|(id, seen)| view.sessions.get(*id) != Some(seen))
            .map(|(id, seen)| (id, seen, view.sessions.get(id)))
            .collect();
        let extra: Vec<_> = view
            .sessions
            .keys()
            .filter(|id| !want.contains_key(*id))
            .collect();
        assert!(
            diff.is_empty() && extra.is_empty(),
            "listener {filter}: wrong or missing {diff:?}, extra {extra:?} (SEED={seed})"
        );
        eprintln!(
            "stress: listener {filter}: {} sessions, events {:?}",
            want.len(),
            view.counts
        );
    }
    let all = &listeners[0].2;
    assert_eq!(all.sessions.len(), clients + LISTENERS.len());
    assert!(all.counts.get("close").copied().unwrap_or(0) > 0);
    eprintln!("stress: {requests} requests from {clients} clients in {churn_time:?}");
    drop(churners);
}
