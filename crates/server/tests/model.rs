//! A differential test of a session's life (SPEC 11.3, 11.5): a seeded
//! random sequence of opens, lost connections, reconnects and take-overs,
//! closes (own, by id, by filter), role and property changes (by id and by
//! filter) from several clients runs against the real server and against a
//! simple model. Every answer is checked against the model on the way;
//! at the end every listener's events, replayed, give exactly the model's
//! view of its filter, and `clients.count` and `clients.fetch` agree.
//!
//! `SEED=N` replays a run; `MODEL_STEPS=N` changes its length.

mod common;
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use support::*;

/// The filters of the run, and the model's reading of each. None matches
/// the controllers (principal `ops`, no `Desk`, no `Note`, no `TRADER`).
const FILTERS: [&str; 6] = [
    "$Principal is ''",
    "Desk is 'FX'",
    "hasRoles ['TRADER']",
    "Note is 'a' or Desk is 'Rates'",
    "has Note and not Desk is 'Credit'",
    "Desk in ['Credit', 'Rates'] and not hasRoles ['TRADER']",
];

const DESKS: [&str; 5] = ["FX", "Rates", "Equities", "Credit", "Other"];
const NOTES: [&str; 3] = ["a", "b", "c"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Life {
    Active,
    Disconnected,
}

/// One client session as the model sees it.
struct Model {
    id: String,
    token: String,
    desk: Option<String>,
    note: Option<String>,
    trader: bool,
    life: Life,
    /// Its connection while it has one.
    raw: Option<Raw>,
}

impl Model {
    fn matches(&self, filter: usize) -> bool {
        let desk = self.desk.as_deref();
        match filter {
            0 => true,
            1 => desk == Some("FX"),
            2 => self.trader,
            3 => self.note.as_deref() == Some("a") || desk == Some("Rates"),
            4 => self.note.is_some() && desk != Some("Credit"),
            5 => matches!(desk, Some("Credit" | "Rates")) && !self.trader,
            _ => unreachable!(),
        }
    }

    fn property(&self, key: &str) -> Option<String> {
        match key {
            "Desk" => self.desk.clone(),
            "Note" => self.note.clone(),
            _ => None,
        }
    }
}

/// A listener: which controller owns it, its id, its filter (None: `all`)
/// and the keys it asked for.
struct Listening {
    controller: usize,
    listener: Value,
    filter: Option<usize>,
    keys: Vec<&'static str>,
    view: View,
    /// Unlistened: nothing may come for it after the answer.
    stopped: bool,
}

struct Run {
    url: String,
    rng: Rng,
    sessions: Vec<Model>,
    controllers: Vec<(Raw, String)>,
    listeners: Vec<Listening>,
    log: Vec<String>,
}

impl Run {
    fn live(&self, life: Option<Life>) -> Vec<usize> {
        (0..self.sessions.len())
            .filter(|&i| life.is_none_or(|l| self.sessions[i].life == l))
            .collect()
    }

    fn matching(&self, filter: usize) -> Vec<usize> {
        (0..self.sessions.len())
            .filter(|&i| self.sessions[i].matches(filter))
            .collect()
    }

    fn controller(&mut self) -> usize {
        self.rng.below(self.controllers.len() as u64) as usize
    }

    async fn open(&mut self) {
        let mut raw = Raw::connect(&self.url).await;
        let desk = match self.rng.below(5) {
            4 => None,
            n => Some(DESKS[n as usize].to_owned()),
        };
        let props = desk
            .as_ref()
            .map(|d| json!({ "Desk": d }))
            .unwrap_or(json!({}));
        let r = raw.ok("open", json!({ "properties": props })).await;
        assert_eq!(
            r["properties"].get("Desk").and_then(Value::as_str),
            desk.as_deref()
        );
        let id = r["session_id"].as_str().unwrap().to_owned();
        self.log.push(format!("open {id} {desk:?}"));
        self.sessions.push(Model {
            id,
            token: r["token"].as_str().unwrap().to_owned(),
            desk,
            note: None,
            trader: false,
            life: Life::Active,
            raw: Some(raw),
        });
    }

    async fn disconnect(&mut self, i: usize) {
        let s = &mut self.sessions[i];
        self.log.push(format!("disconnect {}", s.id));
        let mut raw = s.raw.take().unwrap();
        let _ = raw.ws.close(None).await;
        s.life = Life::Disconnected;
    }

    /// Takes the session back (a take-over when it is still connected).
    async fn reconnect(&mut self, i: usize) {
        let s = &mut self.sessions[i];
        self.log
            .push(format!("reconnect {} from {:?}", s.id, s.life));
        let mut raw = Raw::connect(&self.url).await;
        let r = raw
            .ok(
                "open",
                json!({"reconnect": {"session_id": s.id, "token": s.token}}),
            )
            .await;
        assert_eq!(r["session_id"], s.id.as_str());
        for key in ["Desk", "Note"] {
            assert_eq!(
                r["properties"].get(key).and_then(Value::as_str),
                s.property(key).as_deref(),
                "{key} of {} after a reconnect",
                s.id
            );
        }
        if let Some(mut old) = s.raw.replace(raw) {
            // Taken over: the old connection is dropped without `closed`.
            while let Some(m) = old.read().await {
                assert_ne!(m["method"], "closed", "a take-over sent closed: {m}");
            }
        }
        s.life = Life::Active;
    }

    /// The session closes itself.
    async fn close_self(&mut self, i: usize) {
        let mut s = self.sessions.remove(i);
        self.log.push(format!("close self {}", s.id));
        let mut raw = s.raw.take().unwrap();
        assert_eq!(raw.ok("close", json!({})).await, json!({}));
        raw.closed().await;
        // Its close is done once the store no longer has it.
        let c = self.controller();
        for _ in 0..100 {
            let n = self.controllers[c]
                .0
                .ok("clients.count", json!({"filter": only(&[&s.id])}))
                .await["count"]
                .clone();
            if n == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{} is still in the store after its close", s.id);
    }

    /// A random target: one session's id, or one of the filters.
    fn target(&mut self) -> (Value, Vec<usize>, String) {
        self.target_of(0)
    }

    /// A target, by id or by one of the filters from `first` on.
    fn target_of(&mut self, first: usize) -> (Value, Vec<usize>, String) {
        if self.rng.chance(60) && !self.sessions.is_empty() {
            let i = self.rng.below(self.sessions.len() as u64) as usize;
            let id = self.sessions[i].id.clone();
            (json!({ "session_id": id }), vec![i], id)
        } else {
            let f = first + self.rng.below((FILTERS.len() - first) as u64) as usize;
            (
                json!({ "filter": FILTERS[f] }),
                self.matching(f),
                FILTERS[f].to_owned(),
            )
        }
    }

    async fn close_others(&mut self) {
        // Not every session at once, most of the time.
        let first = if self.rng.chance(90) { 1 } else { 0 };
        let (params, hit, what) = self.target_of(first);
        let c = self.controller();
        self.log
            .push(format!("close {what} ({} sessions)", hit.len()));
        let r = self.controllers[c].0.ok("clients.close", params).await;
        assert_eq!(r["count"], hit.len(), "close {what}");
        for i in hit.into_iter().rev() {
            let mut s = self.sessions.remove(i);
            if let Some(mut raw) = s.raw.take() {
                let closed = raw.note("closed").await;
                assert_eq!(closed["params"]["reason"], "CLOSED_BY_CONTROLLER");
            }
        }
    }

    async fn change_roles(&mut self) {
        let (mut params, hit, what) = self.target();
        let add = self.rng.chance(50);
        let role = json!(["TRADER"]);
        params[if add { "add" } else { "remove" }] = role;
        if self.rng.chance(30) {
            // A role that is only a label, on the other side.
            params[if add { "remove" } else { "add" }] = json!(["LABEL"]);
        }
        let c = self.controller();
        self.log.push(format!(
            "{} TRADER on {what} ({} sessions)",
            if add { "add" } else { "remove" },
            hit.len()
        ));
        let r = self.controllers[c]
            .0
            .ok("clients.change_roles", params)
            .await;
        assert_eq!(r["count"], hit.len(), "change_roles {what}");
        for i in hit {
            self.sessions[i].trader = add;
        }
    }

    async fn set_properties(&mut self) {
        let (mut params, hit, what) = self.target();
        let mut change = serde_json::Map::new();
        let mut model_change: Vec<(&str, Option<String>)> = Vec::new();
        if self.rng.chance(60) {
            let note = match self.rng.below(4) {
                3 => None,
                n => Some(NOTES[n as usize].to_owned()),
            };
            change.insert("Note".into(), json!(note));
            model_change.push(("Note", note));
        }
        if model_change.is_empty() || self.rng.chance(40) {
            let desk = match self.rng.below(7) {
                n @ 0..=4 => Some(DESKS[n as usize].to_owned()),
                _ => None,
            };
            change.insert("Desk".into(), json!(desk));
            model_change.push(("Desk", desk));
        }
        params["properties"] = Value::Object(change);
        let c = self.controller();
        self.log.push(format!(
            "set {model_change:?} on {what} ({} sessions)",
            hit.len()
        ));
        let by_id = params.get("session_id").is_some();
        let r = self.controllers[c]
            .0
            .ok("clients.set_properties", params)
            .await;
        if by_id {
            // What changed, with the previous values.
            let s = &self.sessions[hit[0]];
            let mut want = serde_json::Map::new();
            for (key, value) in &model_change {
                let before = s.property(key);
                if before != *value {
                    want.insert((*key).into(), json!(before));
                }
            }
            assert_eq!(r["changed"], Value::Object(want), "set on {what}");
        } else {
            assert_eq!(r["count"], hit.len(), "set on {what}");
        }
        for i in hit {
            for (key, value) in &model_change {
                let s = &mut self.sessions[i];
                match *key {
                    "Desk" => s.desk = value.clone(),
                    _ => s.note = value.clone(),
                }
            }
        }
    }

    async fn check_count(&mut self) {
        let f = self.rng.below(FILTERS.len() as u64) as usize;
        let c = self.controller();
        let n = self.controllers[c]
            .0
            .ok("clients.count", json!({"filter": FILTERS[f]}))
            .await["count"]
            .clone();
        assert_eq!(n, self.matching(f).len(), "count of {}", FILTERS[f]);
    }

    async fn listen(&mut self, controller: usize, filter: Option<usize>, keys: Vec<&'static str>) {
        let mut params = json!({ "properties": keys });
        if let Some(f) = filter {
            params["filter"] = json!(FILTERS[f]);
        }
        let r = self.controllers[controller]
            .0
            .ok("clients.listen", params)
            .await;
        self.listeners.push(Listening {
            controller,
            listener: r["listener"].clone(),
            filter,
            keys,
            view: View::default(),
            stopped: false,
        });
        // Nothing else happens meanwhile: the snapshot alone is the model's
        // view of the filter now.
        self.settle_and_compare_one(self.listeners.len() - 1).await;
    }

    /// Stops listener `l`: what came before the answer is its last.
    async fn unlisten(&mut self, l: usize) {
        let c = self.listeners[l].controller;
        let listener = self.listeners[l].listener.clone();
        let raw = &mut self.controllers[c].0;
        let r = raw
            .ok("clients.unlisten", json!({ "listener": listener }))
            .await;
        assert_eq!(r, json!({}));
        self.listeners[l]
            .view
            .replay(&mut raw.notes, &listener)
            .unwrap();
        self.listeners[l].stopped = true;
        // Another session's unlisten of it does nothing.
        let other = (c + 1) % self.controllers.len();
        let r = self.controllers[other]
            .0
            .ok("clients.unlisten", json!({ "listener": listener }))
            .await;
        assert_eq!(r, json!({}));
    }

    /// What listener `l` must show.
    fn expected(&self, l: &Listening) -> BTreeMap<String, Seen> {
        let mut want = BTreeMap::new();
        for s in &self.sessions {
            if l.filter.is_none_or(|f| s.matches(f)) {
                let properties = l
                    .keys
                    .iter()
                    .filter_map(|k| s.property(k).map(|v| ((*k).to_owned(), v)))
                    .collect();
                let state = match s.life {
                    Life::Active => "active",
                    Life::Disconnected => "disconnected",
                };
                want.insert(
                    s.id.clone(),
                    Seen {
                        state: state.into(),
                        properties,
                    },
                );
            }
        }
        if l.filter.is_none() {
            for (_, id) in &self.controllers {
                want.insert(
                    id.clone(),
                    Seen {
                        state: "active".into(),
                        properties: BTreeMap::new(),
                    },
                );
            }
        }
        want
    }

    /// Replays what every listener got until its view is the model's (the
    /// server notices a dropped socket on its own time), then compares.
    async fn settle_and_compare(&mut self) {
        for l in 0..self.listeners.len() {
            self.settle_and_compare_one(l).await;
        }
    }

    async fn settle_and_compare_one(&mut self, l: usize) {
        {
            if self.listeners[l].stopped {
                let c = self.listeners[l].controller;
                let raw = &mut self.controllers[c].0;
                drain(raw, Duration::from_millis(50)).await;
                let listener = &self.listeners[l].listener;
                let late: Vec<&Value> = raw
                    .notes
                    .iter()
                    .filter(|n| n["params"]["listener"] == *listener)
                    .collect();
                assert!(late.is_empty(), "events after unlisten: {late:?}");
                return;
            }
            let want = self.expected(&self.listeners[l]);
            let mut tries = 0;
            loop {
                let c = self.listeners[l].controller;
                let listener = self.listeners[l].listener.clone();
                let raw = &mut self.controllers[c].0;
                drain(raw, Duration::from_millis(50)).await;
                let outcome = self.listeners[l].view.replay(&mut raw.notes, &listener);
                if let Err(e) = outcome {
                    panic!("listener {listener}: {e}\n{}", self.log.join("\n"));
                }
                if self.listeners[l].view.sessions == want || tries == 60 {
                    break;
                }
                tries += 1;
            }
            let l = &self.listeners[l];
            assert_eq!(
                l.view.sessions,
                want,
                "listener {} on {:?} {:?} after {:?} events\n{}",
                l.listener,
                l.filter.map(|f| FILTERS[f]),
                l.keys,
                l.view.counts,
                self.log.join("\n")
            );
        }
    }
}

async fn run(seed: u64, steps: usize) {
    eprintln!("model: SEED={seed} MODEL_STEPS={steps}");
    // No reconnect timeout within the run: a disconnected session stays.
    let s = start_with(|c| {
        let c = quick(c);
        c.replace(
            "reconnect_timeout_ms = 2000",
            "reconnect_timeout_ms = 600000",
        )
        .replace("max_queued_messages = 200", "max_queued_messages = 5000")
    })
    .await;
    let mut controllers = Vec::new();
    for _ in 0..2 {
        controllers.push(principal(&s.url(), "ops").await);
    }
    let mut run = Run {
        url: s.url(),
        rng: Rng::new(seed),
        sessions: Vec::new(),
        controllers,
        listeners: Vec::new(),
        log: Vec::new(),
    };
    // Some sessions first, so the listeners start with a snapshot.
    for _ in 0..6 {
        run.open().await;
    }
    run.set_properties().await;
    run.change_roles().await;
    run.listen(0, None, vec!["Desk", "Note"]).await;
    run.listen(1, Some(1), vec!["Note"]).await;
    run.listen(0, Some(2), vec![]).await;
    for step in 0..steps {
        if step == steps / 2 {
            run.listen(1, Some(3), vec!["Desk", "Note"]).await;
            run.listen(0, Some(4), vec!["Note"]).await;
            // A second listener on `all`, to be stopped later.
            run.listen(1, None, vec!["Note"]).await;
        }
        if step % 50 == 49 {
            // Midway too, not only at the end.
            run.settle_and_compare().await;
        }
        if step == steps * 3 / 4 {
            let last = run.listeners.len() - 1;
            run.unlisten(last).await;
        }
        let active = run.live(Some(Life::Active));
        let disconnected = run.live(Some(Life::Disconnected));
        match run.rng.below(100) {
            0..=14 if run.sessions.len() < 30 => run.open().await,
            0..=14 => run.check_count().await,
            15..=19 if !active.is_empty() => {
                let i = *run.rng.pick(&active);
                run.disconnect(i).await;
            }
            20..=27 if !disconnected.is_empty() => {
                let i = *run.rng.pick(&disconnected);
                run.reconnect(i).await;
            }
            28..=30 if !active.is_empty() => {
                let i = *run.rng.pick(&active);
                run.reconnect(i).await;
            }
            31..=34 if !active.is_empty() => {
                let i = *run.rng.pick(&active);
                run.close_self(i).await;
            }
            35..=39 => run.close_others().await,
            40..=41 => run.check_count().await,
            42..=59 => run.change_roles().await,
            60..=91 => run.set_properties().await,
            _ => run.check_count().await,
        }
    }
    run.settle_and_compare().await;
    // Counts and fetches agree with the model too.
    for (f, filter) in FILTERS.iter().enumerate() {
        let want: BTreeMap<String, (Option<String>, Option<String>)> = run
            .matching(f)
            .into_iter()
            .map(|i| {
                let s = &run.sessions[i];
                (s.id.clone(), (s.desk.clone(), s.note.clone()))
            })
            .collect();
        let c = &mut run.controllers[f % 2].0;
        let n = c.ok("clients.count", json!({ "filter": filter })).await["count"].clone();
        assert_eq!(n, want.len(), "count of {filter}");
        let page = c
            .ok(
                "clients.fetch",
                json!({"filter": filter, "properties": ["Desk", "Note"], "limit": 10000}),
            )
            .await;
        assert_eq!(page["total"], want.len());
        let got: BTreeMap<String, (Option<String>, Option<String>)> = page["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let p = &r["properties"];
                (
                    r["id"].as_str().unwrap().to_owned(),
                    (
                        p["Desk"].as_str().map(str::to_owned),
                        p["Note"].as_str().map(str::to_owned),
                    ),
                )
            })
            .collect();
        assert_eq!(got, want, "fetch of {filter}");
    }
    let events: usize = run
        .listeners
        .iter()
        .filter(|l| !l.stopped)
        .map(|l| l.view.counts.values().sum::<usize>())
        .sum();
    eprintln!(
        "model: {} steps, {} sessions at the end, {events} listener events replayed",
        steps,
        run.sessions.len()
    );
    assert!(events > steps / 2, "too few events to mean anything");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_and_counts_agree_with_a_model() {
    let steps = std::env::var("MODEL_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    run(Rng::seed(), steps).await;
}
