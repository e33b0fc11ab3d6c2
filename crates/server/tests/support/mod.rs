//! What the lifecycle, lock and messaging tests share beside `common`:
//! requests sent without waiting, answers awaited by id, a check that
//! nothing arrives, a seeded random source, and a listener's view rebuilt
//! from its events.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::common::Raw;

/// Sends a request under a string id of the caller's choosing (`Raw`'s own
/// ids are numbers, so they never collide) without waiting for its answer.
pub async fn send(c: &mut Raw, id: &str, method: &str, params: Value) {
    let text = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    c.send_text(&text.to_string()).await;
}

/// How long a test waits for one message when the machine is busy (the
/// stress test's 200 clients on two cores); `Raw`'s own wait is shorter.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The next JSON message, or None when the connection closed; waits up to
/// [`PATIENCE`].
pub async fn read_patient(c: &mut Raw) -> Option<Value> {
    loop {
        match tokio::time::timeout(PATIENCE, c.ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return serde_json::from_str(t.as_str()).ok(),
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => return None,
            Ok(Some(Ok(_))) => continue,
            Err(_) => panic!("no message within {PATIENCE:?}"),
        }
    }
}

/// Sends a request and returns its result (panicking on an error), waiting
/// up to [`PATIENCE`] for each message.
pub async fn call(c: &mut Raw, method: &str, params: Value) -> Value {
    static TAGS: AtomicU64 = AtomicU64::new(0);
    let tag = format!("p{}", TAGS.fetch_add(1, Ordering::Relaxed));
    send(c, &tag, method, params).await;
    result(c, &tag).await
}

/// Reads until the server closes the connection.
pub async fn closed_patient(c: &mut Raw) {
    while read_patient(c).await.is_some() {}
}

/// The response to request `id` (from what was read already first).
pub async fn reply(c: &mut Raw, id: &str) -> Value {
    if let Some(i) = c.notes.iter().position(|n| n["id"] == id) {
        return c.notes.remove(i);
    }
    loop {
        let m = read_patient(c)
            .await
            .unwrap_or_else(|| panic!("closed before the response to {id}"));
        if m["id"] == id {
            return m;
        }
        c.notes.push(m);
    }
}

/// The result of request `id`, panicking on an error.
pub async fn result(c: &mut Raw, id: &str) -> Value {
    let r = reply(c, id).await;
    r.get("result")
        .cloned()
        .unwrap_or_else(|| panic!("{id} failed: {r}"))
}

/// The error of request `id`, panicking on a result.
pub async fn error(c: &mut Raw, id: &str) -> Value {
    let r = reply(c, id).await;
    r.get("error")
        .cloned()
        .unwrap_or_else(|| panic!("{id} did not fail: {r}"))
}

/// Reads for `wait` and returns what arrived (also kept in `notes`); stops
/// early when the connection closes.
pub async fn drain(c: &mut Raw, wait: Duration) -> Vec<Value> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            break;
        }
        match tokio::time::timeout(left, c.read()).await {
            Ok(Some(m)) => {
                got.push(m.clone());
                c.notes.push(m);
            }
            Ok(None) | Err(_) => break,
        }
    }
    got
}

/// True when a response to `id` has arrived within `wait`.
pub async fn answered_within(c: &mut Raw, id: &str, wait: Duration) -> bool {
    drain(c, wait).await;
    c.notes.iter().any(|n| n["id"] == id)
}

/// xorshift64*: a seeded random source, so a failing run can be replayed
/// (the seed is printed).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// A seed from the environment (`SEED`), or from the clock.
    pub fn seed() -> u64 {
        std::env::var("SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(7)
            })
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// What a listener shows of one session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub state: String,
    pub properties: BTreeMap<String, String>,
}

/// A listener's view, rebuilt from its `clients.event` notifications only:
/// `open` adds a session, `update` changes it, `left` and `close` remove
/// it. Replaying checks the protocol's own promises on the way (no `open`
/// of a session in view, no `update` or `left` of one outside it).
#[derive(Debug, Default)]
pub struct View {
    pub sessions: BTreeMap<String, Seen>,
    /// Events replayed, by kind.
    pub counts: HashMap<String, usize>,
}

fn props(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("?").to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

impl View {
    /// Applies one `clients.event`'s params; an error says what broke.
    pub fn apply(&mut self, p: &Value) -> Result<(), String> {
        let id = p["session_id"].as_str().ok_or("no session_id")?.to_owned();
        let event = p["event"].as_str().ok_or("no event")?;
        let state = p["state"].as_str().ok_or("no state")?;
        *self.counts.entry(event.to_owned()).or_default() += 1;
        match event {
            "open" => {
                if self.sessions.contains_key(&id) {
                    return Err(format!("open of {id}, already in view: {p}"));
                }
                if state == "closed" || state == "reconnected" {
                    return Err(format!("open with state {state}: {p}"));
                }
                self.sessions.insert(
                    id,
                    Seen {
                        state: state.to_owned(),
                        properties: props(&p["properties"]),
                    },
                );
            }
            "update" => {
                let seen = self
                    .sessions
                    .get_mut(&id)
                    .ok_or_else(|| format!("update of {id}, not in view: {p}"))?;
                // `reconnected` is the event's state; the session is active.
                seen.state = if state == "reconnected" {
                    "active".into()
                } else {
                    state.to_owned()
                };
                seen.properties = props(&p["properties"]);
            }
            "left" => {
                if self.sessions.remove(&id).is_none() {
                    return Err(format!("left of {id}, not in view: {p}"));
                }
            }
            "close" => {
                if self.sessions.remove(&id).is_none() {
                    return Err(format!("close of {id}, not in view: {p}"));
                }
                if p["reason"].as_str().is_none() || state != "closed" {
                    return Err(format!("close without a reason or state closed: {p}"));
                }
            }
            other => return Err(format!("unknown event {other}: {p}")),
        }
        Ok(())
    }

    /// Replays every `clients.event` of `listener` in `notes` (removing
    /// them), in order.
    pub fn replay(&mut self, notes: &mut Vec<Value>, listener: &Value) -> Result<(), String> {
        let mut rest = Vec::with_capacity(notes.len());
        let mut outcome = Ok(());
        for n in notes.drain(..) {
            if n["method"] == "clients.event" && n["params"]["listener"] == *listener {
                if outcome.is_ok() {
                    outcome = self.apply(&n["params"]);
                }
            } else {
                rest.push(n);
            }
        }
        *notes = rest;
        outcome
    }
}

/// An argon2id hash of [`crate::common::PASSWORD`] with the smallest
/// parameters (m=8 KiB, t=1): the server reads the parameters from the
/// hash, so logging in costs microseconds instead of the default's much
/// longer work, which many parallel tests in a debug build cannot afford.
pub fn quick_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let params = argon2::Params::new(8, 1, 1, None).unwrap();
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let salt = SaltString::encode_b64(b"a fixed test salt").unwrap();
        argon
            .hash_password(crate::common::PASSWORD.as_bytes(), &salt)
            .unwrap()
            .to_string()
    })
}

/// The test configuration with [`quick_hash`] for every principal.
pub fn quick(config: String) -> String {
    config.replace(crate::common::hash(), quick_hash())
}
