//! Session metric collectors and the server's own figures (SPEC 11.9).
//!
//! A collector is a store watch (section 8.2): the store queues for it,
//! atomically with each change, which sessions entered, left or changed a
//! group-by key. Nothing ever rescans the store: a change costs only the
//! collectors whose filters it can affect, as for any watch.
//!
//! The events are applied to the group counts under the collector's lock,
//! by whoever reads the figures (`metrics.fetch`, a scrape of `/metrics`)
//! and every 100 ms by one thread for all collectors: no task wakes per
//! event, and a read sees every change made before it (the counts are then
//! the watch's counts).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Map, Value};
use session_filter::{
    properties as fixed, roles_to_string, string_to_roles, Program, PropertyMap, SessionStore,
    Watch, WatchEvent, WatchOptions,
};

use crate::error::RpcError;
use crate::methods::{params, Call, Need};
use crate::security::GlobalPermission::{ControlServer, ViewServer};
use crate::server::Shared;

/// `max_groups` when it is not given.
pub(crate) const DEFAULT_MAX_GROUPS: u64 = 250;
/// The largest `max_groups`.
pub(crate) const MAX_GROUPS: u64 = 10_000;
/// Events a collector's watch queues before it lags (and resyncs).
const WATCH_CAPACITY: usize = 1 << 16;
/// How often every collector's queued events are applied, besides on
/// each fetch and scrape.
const DRAIN_EVERY: Duration = Duration::from_secs(1);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A collector's definition, defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Spec {
    pub(crate) name: String,
    pub(crate) filter: String,
    pub(crate) group_by: Vec<String>,
    pub(crate) max_groups: u64,
    pub(crate) remove_empty: bool,
    pub(crate) export: bool,
}

impl Spec {
    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "filter": self.filter,
            "group_by": self.group_by,
            "max_groups": self.max_groups,
            "remove_empty": self.remove_empty,
            "export": self.export,
        })
    }

    /// The checks of params (-32602): a non-empty name, `max_groups` in range.
    pub(crate) fn check_params(&self) -> Result<(), String> {
        if self.name.is_empty() {
            return Err("a collector's name must not be empty".into());
        }
        if !(1..=MAX_GROUPS).contains(&self.max_groups) {
            return Err(format!(
                "max_groups must be from 1 to {MAX_GROUPS}, found {}",
                self.max_groups
            ));
        }
        Ok(())
    }
}

/// The Prometheus label name of a group-by key: each character outside
/// `[a-zA-Z0-9_]` becomes `_`, and a leading digit gets a `_` before it.
///
/// ```text
/// $Country → _Country    Desk-Name → Desk_Name    2fa → _2fa
/// ```
pub(crate) fn label_name(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 1);
    if key.starts_with(|c: char| c.is_ascii_digit()) {
        out.push('_');
    }
    for c in key.chars() {
        out.push(if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        });
    }
    out
}

/// Checks group-by keys (106 material) and gives their label names.
pub(crate) fn label_names(group_by: &[String]) -> Result<Vec<String>, String> {
    let mut names: Vec<String> = Vec::with_capacity(group_by.len());
    for (i, key) in group_by.iter().enumerate() {
        if !fixed::is_fixed_property(key) {
            session_filter::validate_user_key(key).map_err(|e| format!("group_by: {e}"))?;
        }
        if group_by[..i].contains(key) {
            return Err(format!("group_by: the key {key:?} appears twice"));
        }
        let name = label_name(key);
        if name.starts_with("__") {
            return Err(format!(
                "group_by: the key {key:?} gives the label name {name:?}, and names starting \
                 with __ are Prometheus's own"
            ));
        }
        if name == "collector" {
            return Err(format!(
                "group_by: the key {key:?} gives the label name \"collector\", which names the \
                 collector"
            ));
        }
        if let Some(j) = names.iter().position(|n| *n == name) {
            return Err(format!(
                "group_by: the keys {:?} and {key:?} give the same label name {name:?}",
                group_by[j]
            ));
        }
        names.push(name);
    }
    Ok(names)
}

/// Where a session of a grouped collector is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Group(usize),
    Ungrouped,
}

/// Where each session was counted before a resync, with its group's values.
type Restore = HashMap<Arc<str>, (Place, Box<[String]>)>;

/// One group's figures.
#[derive(Clone, Debug)]
pub(crate) struct Group {
    pub(crate) values: Box<[String]>,
    pub(crate) sessions: u64,
    pub(crate) opened: u64,
    pub(crate) closed: u64,
    /// Its labels as `/metrics` writes them, made on the first scrape.
    labels: std::sync::OnceLock<Box<str>>,
}

impl Group {
    /// `{collector="NAME",LABEL="VALUE",…}`, escaped.
    pub(crate) fn label_text(&self, collector: &str, names: &[String]) -> &str {
        self.labels
            .get_or_init(|| crate::prometheus::label_text(collector, names, &self.values))
    }
}

/// A collector's figures.
pub(crate) struct Figures {
    keys: Vec<String>,
    max_groups: usize,
    remove_empty: bool,
    /// Group slots, in the order groups appeared (a freed slot is reused).
    groups: Vec<Option<Group>>,
    free: Vec<usize>,
    index: HashMap<Box<[String]>, usize>,
    /// Where each session is counted (grouped collectors only: without
    /// group-by every session is in the one group).
    members: HashMap<Arc<str>, Place>,
    ungrouped: u64,
    /// While resyncing after a lag: where sessions were counted before, so
    /// those still in the same group are not counted as entering again.
    restore: Option<Restore>,
    /// Before a resync of a collector without group-by: the sessions it
    /// counted, and its opened and closed.
    restore_count: Option<(u64, u64, u64)>,
    /// The watch's snapshot is delivered and no resync is under way.
    settled: bool,
}

impl Figures {
    fn new(spec: &Spec) -> Figures {
        let mut figures = Figures {
            keys: spec.group_by.clone(),
            max_groups: spec.max_groups as usize,
            remove_empty: spec.remove_empty,
            groups: Vec::new(),
            free: Vec::new(),
            index: HashMap::new(),
            members: HashMap::new(),
            ungrouped: 0,
            restore: None,
            restore_count: None,
            settled: false,
        };
        if !figures.grouped() && !figures.remove_empty {
            figures.slot(Box::new([]));
        }
        figures
    }

    fn grouped(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The group values of a session's properties (an absent key is `""`,
    /// `$Roles` has its roles sorted).
    fn values(&self, properties: Option<&Arc<PropertyMap>>) -> Box<[String]> {
        self.keys
            .iter()
            .map(|key| {
                let value = properties
                    .and_then(|p| p.get(key))
                    .map(String::as_str)
                    .unwrap_or("");
                if key == fixed::ROLES {
                    sorted_roles(value)
                } else {
                    value.to_owned()
                }
            })
            .collect()
    }

    /// The slot of a group, made if there is room.
    fn slot(&mut self, values: Box<[String]>) -> Option<usize> {
        if let Some(&slot) = self.index.get(&values) {
            return Some(slot);
        }
        if self.index.len() >= self.max_groups {
            return None;
        }
        let group = Group {
            values: values.clone(),
            sessions: 0,
            opened: 0,
            closed: 0,
            labels: std::sync::OnceLock::new(),
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.groups[slot] = Some(group);
                slot
            }
            None => {
                self.groups.push(Some(group));
                self.groups.len() - 1
            }
        };
        self.index.insert(values, slot);
        Some(slot)
    }

    fn enter(&mut self, id: Arc<str>, values: Box<[String]>) {
        // While resyncing: where the session was counted before.
        let before = self.restore.as_mut().and_then(|r| r.remove(&id));
        let slot = self.slot(values.clone());
        let stayed = matches!(
            (&before, slot),
            (Some((Place::Group(s), old)), Some(slot)) if *s == slot && *old == values
        );
        if let (Some((Place::Group(slot), old)), false) = (&before, stayed) {
            // It left the group it was counted in while events were lost.
            if let Some(group) = self.groups.get_mut(*slot).and_then(Option::as_mut) {
                if group.values == *old {
                    group.closed += 1;
                }
            }
        }
        let place = match slot {
            Some(slot) => {
                if let Some(group) = self.groups[slot].as_mut() {
                    group.sessions += 1;
                    if !stayed {
                        group.opened += 1;
                    }
                }
                Place::Group(slot)
            }
            None => {
                self.ungrouped += 1;
                Place::Ungrouped
            }
        };
        if self.grouped() {
            self.members.insert(id, place);
        }
    }

    fn leave(&mut self, id: &str) {
        let place = if self.grouped() {
            match self.members.remove(id) {
                Some(place) => place,
                None => return,
            }
        } else {
            match self.index.get(&[][..]) {
                Some(&slot) => Place::Group(slot),
                None => return,
            }
        };
        self.uncount(place, true);
    }

    /// Takes one session out of `place`; `closed` counts it as leaving.
    fn uncount(&mut self, place: Place, closed: bool) {
        match place {
            Place::Ungrouped => self.ungrouped = self.ungrouped.saturating_sub(1),
            Place::Group(slot) => {
                let Some(group) = self.groups.get_mut(slot).and_then(Option::as_mut) else {
                    return;
                };
                group.sessions = group.sessions.saturating_sub(1);
                if closed {
                    group.closed += 1;
                }
                if group.sessions == 0 && self.remove_empty {
                    self.drop_group(slot);
                }
            }
        }
    }

    fn drop_group(&mut self, slot: usize) {
        if let Some(group) = self.groups.get_mut(slot).and_then(Option::take) {
            self.index.remove(&group.values);
            self.free.push(slot);
        }
    }

    /// Applies one event; false for `Lagged` (the caller resyncs).
    fn apply(&mut self, event: WatchEvent) -> bool {
        match event {
            WatchEvent::Entered { id, properties } => {
                let values = self.values(properties.as_ref());
                self.enter(id, values);
            }
            WatchEvent::Left { id, .. } => self.leave(&id),
            WatchEvent::Updated {
                id,
                previous,
                properties,
            } => {
                // Only a change of a group-by key can move the session
                // (an ungrouped one may find room in a group when it does).
                if !self.grouped() || !self.keys.iter().any(|k| previous.contains_key(k)) {
                    return true;
                }
                let values = self.values(properties.as_ref());
                let same = match self.members.get(&id) {
                    Some(Place::Group(slot)) => self.groups[*slot]
                        .as_ref()
                        .is_some_and(|g| g.values == values),
                    Some(Place::Ungrouped) => false,
                    None => false,
                };
                if !same {
                    self.leave(&id);
                    self.enter(id, values);
                }
            }
            WatchEvent::Lagged { .. } => return false,
            _ => {}
        }
        true
    }

    /// Starts a resync: every count to 0, the old places kept aside.
    fn begin_restore(&mut self) {
        let mut restore = HashMap::with_capacity(self.members.len());
        for (id, place) in self.members.drain() {
            let values = match place {
                Place::Group(slot) => self.groups[slot]
                    .as_ref()
                    .map(|g| g.values.clone())
                    .unwrap_or_default(),
                Place::Ungrouped => Box::new([]),
            };
            restore.insert(id, (place, values));
        }
        for group in self.groups.iter_mut().flatten() {
            group.sessions = 0;
        }
        self.ungrouped = 0;
        if self.grouped() {
            self.restore = Some(restore);
        } else {
            // Without members, the counters are reconciled from the counts
            // (those the figures had, whatever the lost events changed).
            let (counted, opened, closed) = self
                .groups
                .iter()
                .flatten()
                .next()
                .map(|g| (g.opened - g.closed, g.opened, g.closed))
                .unwrap_or((0, 0, 0));
            self.restore_count = Some((counted, opened, closed));
        }
    }

    /// Ends a resync once the new watch's snapshot is delivered: sessions
    /// counted before and not seen again left.
    fn end_restore(&mut self) {
        if let Some(restore) = self.restore.take() {
            for (_, (place, values)) in restore {
                if let Place::Group(slot) = place {
                    if let Some(group) = self.groups.get_mut(slot).and_then(Option::as_mut) {
                        if group.values == values {
                            group.closed += 1;
                        }
                    }
                }
            }
        }
        if let Some((old, opened, closed)) = self.restore_count.take() {
            // The new snapshot counted every session as entering again: what
            // is more now than before entered, what is fewer left.
            if let Some(group) = self.groups.iter_mut().flatten().next() {
                let now = group.sessions;
                group.opened = opened + now.saturating_sub(old);
                group.closed = closed + old.saturating_sub(now);
            }
        }
        if self.remove_empty {
            let empty: Vec<usize> = self
                .groups
                .iter()
                .enumerate()
                .filter(|(_, g)| g.as_ref().is_some_and(|g| g.sessions == 0))
                .map(|(i, _)| i)
                .collect();
            for slot in empty {
                self.drop_group(slot);
            }
        }
    }

    /// The groups, in slot order.
    pub(crate) fn groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.iter().flatten()
    }

    /// Sessions that match but are in no kept group.
    pub(crate) fn ungrouped(&self) -> u64 {
        self.ungrouped
    }
}

/// A roles string with its roles sorted (a string that does not parse is
/// kept as it is).
fn sorted_roles(value: &str) -> String {
    match string_to_roles(value) {
        Ok(mut roles) => {
            roles.sort();
            roles_to_string(roles)
        }
        Err(_) => value.to_owned(),
    }
}

/// One collector: its definition, its watch and its figures.
pub(crate) struct Collector {
    pub(crate) spec: Spec,
    /// The label names of its group-by keys.
    pub(crate) labels: Vec<String>,
    store: Arc<SessionStore>,
    program: Program,
    options: WatchOptions,
    counted: Mutex<Counted>,
}

/// A watch and the figures of the events taken from it: both under one
/// lock, so events are applied in their order whoever drains them.
struct Counted {
    watch: Watch,
    figures: Figures,
}

/// A collector's figures, every queued event applied.
pub(crate) struct FiguresGuard<'a>(MutexGuard<'a, Counted>);

impl std::ops::Deref for FiguresGuard<'_> {
    type Target = Figures;

    fn deref(&self) -> &Figures {
        &self.0.figures
    }
}

impl Collector {
    /// Puts a collector on the store: checks its filter and keys (106) and
    /// registers its watch.
    pub(crate) fn start(store: &Arc<SessionStore>, spec: Spec) -> Result<Collector, RpcError> {
        Collector::start_with(store, spec, WATCH_CAPACITY)
    }

    /// [`Collector::start`] with a watch queue of `capacity` events.
    fn start_with(
        store: &Arc<SessionStore>,
        spec: Spec,
        capacity: usize,
    ) -> Result<Collector, RpcError> {
        let program = store.compile(&spec.filter)?;
        let labels = label_names(&spec.group_by).map_err(RpcError::data)?;
        let (program, options) = watch_of(store, &spec, program);
        let options = options.capacity(capacity);
        let watch = store.watch_compiled(&program, options.clone());
        let figures = Figures::new(&spec);
        Ok(Collector {
            spec,
            labels,
            store: store.clone(),
            program,
            options,
            counted: Mutex::new(Counted { watch, figures }),
        })
    }

    /// The figures, once every event queued now is applied: they count
    /// every change made before the call.
    pub(crate) fn figures(&self) -> FiguresGuard<'_> {
        let mut counted = lock(&self.counted);
        self.drain(&mut counted);
        FiguresGuard(counted)
    }

    /// Applies every event ready now; a watch that lagged is replaced.
    fn drain(&self, counted: &mut Counted) {
        // Nothing queued and the snapshot delivered: no event, and no lag
        // (events are dropped only when the queue is full, and the drain
        // that emptied it took the `Lagged` marker too).
        if counted.watch.queued() == 0 && counted.figures.settled {
            return;
        }
        loop {
            let mut lagged = false;
            while let Some(event) = counted.watch.try_recv() {
                if !counted.figures.apply(event) {
                    lagged = true;
                    break;
                }
            }
            if !lagged {
                if counted.watch.snapshot_remaining() == 0 {
                    counted.figures.end_restore();
                    counted.figures.settled = true;
                }
                return;
            }
            // A new watch, whose snapshot recounts the sessions (those
            // still where they were counted are not counted as new).
            counted.watch = self
                .store
                .watch_compiled(&self.program, self.options.clone());
            counted.figures.begin_restore();
            counted.figures.settled = false;
        }
    }

    fn to_json(&self) -> Value {
        let figures = self.figures();
        let groups: Vec<Value> = figures
            .groups()
            .map(|g| {
                let labels: Map<String, Value> = self
                    .spec
                    .group_by
                    .iter()
                    .zip(g.values.iter())
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect();
                json!({
                    "labels": labels,
                    "sessions": g.sessions,
                    "opened": g.opened,
                    "closed": g.closed,
                })
            })
            .collect();
        json!({ "groups": groups, "ungrouped": figures.ungrouped })
    }
}

/// The watch of a collector: its filter and its options.
///
/// Without group-by, membership alone (ids, no properties). With group-by
/// keys, the filter is widened by a clause that is always true but reads
/// every key, `(F) and (has K or not has K)…`: the store's reverse index
/// then finds the collector through the terms of `F` when a group-by key of
/// a session changes, and evaluates only the collectors that session can
/// match. (`updates_of(keys)` would say the same, but the store evaluates
/// every watch that asked for updates of a key on each change of it: with
/// thousands of collectors grouped by `$Country`, thousands of filters per
/// change.) A filter the widened text does not compile for falls back to
/// `updates_of`.
fn watch_of(store: &SessionStore, spec: &Spec, program: Program) -> (Program, WatchOptions) {
    let options = WatchOptions::new().capacity(WATCH_CAPACITY);
    if spec.group_by.is_empty() {
        return (program, options.membership_only().without_properties());
    }
    let always: Vec<String> = spec
        .group_by
        .iter()
        .map(|k| format!("(has {k} or not has {k})"))
        .collect();
    let widened = format!("({}) and {}", spec.filter, always.join(" and "));
    match store.compile(&widened) {
        Ok(widened) => (widened, options),
        Err(_) => (
            program,
            options
                .membership_only()
                .updates_of(spec.group_by.iter().cloned()),
        ),
    }
}

/// The server's collectors, by name.
#[derive(Default)]
pub(crate) struct Collectors {
    table: Arc<Mutex<BTreeMap<String, Arc<Collector>>>>,
    /// Collectors of the configuration, put when the server starts.
    configured: Mutex<Option<Vec<Spec>>>,
    drainer: std::sync::OnceLock<()>,
    /// The size of the last `/metrics` text.
    pub(crate) last_scrape: std::sync::atomic::AtomicUsize,
}

impl Collectors {
    /// Collectors declared in the configuration, put by
    /// [`Collectors::start_configured`].
    pub(crate) fn with_configured(specs: Vec<Spec>) -> Collectors {
        Collectors {
            table: Arc::default(),
            configured: Mutex::new(Some(specs)),
            drainer: std::sync::OnceLock::new(),
            last_scrape: Default::default(),
        }
    }

    /// Starts the thread that drains every collector's watch now and then,
    /// so queues stay short between fetches and scrapes (it ends once the
    /// collectors are dropped).
    fn start_drainer(&self) {
        self.drainer.get_or_init(|| {
            let table = Arc::downgrade(&self.table);
            let _ = std::thread::Builder::new()
                .name("metrics-drain".into())
                .spawn(move || loop {
                    std::thread::sleep(DRAIN_EVERY);
                    let Some(table) = table.upgrade() else {
                        return;
                    };
                    let all: Vec<Arc<Collector>> = lock(&table).values().cloned().collect();
                    drop(table);
                    for collector in all {
                        drop(collector.figures());
                    }
                });
        });
    }

    /// Puts the configuration's collectors, once (they were checked when
    /// the configuration was read).
    pub(crate) fn start_configured(&self, store: &Arc<SessionStore>) {
        let Some(specs) = lock(&self.configured).take() else {
            return;
        };
        if !specs.is_empty() {
            self.start_drainer();
        }
        for spec in specs {
            match Collector::start(store, spec.clone()) {
                Ok(c) => {
                    lock(&self.table).insert(spec.name, Arc::new(c));
                }
                Err(e) => eprintln!("metrics: collector {:?} not started: {e}", spec.name),
            }
        }
    }

    /// Adds or replaces a collector.
    pub(crate) fn put(&self, store: &Arc<SessionStore>, spec: Spec) -> Result<(), RpcError> {
        self.start_drainer();
        let collector = Arc::new(Collector::start(store, spec)?);
        let old = lock(&self.table).insert(collector.spec.name.clone(), collector);
        drop(old);
        Ok(())
    }

    /// Removes a collector; false when there was none.
    pub(crate) fn remove(&self, name: &str) -> bool {
        let old = lock(&self.table).remove(name);
        old.is_some()
    }

    /// Every collector, by name.
    pub(crate) fn all(&self) -> Vec<Arc<Collector>> {
        lock(&self.table).values().cloned().collect()
    }

    fn named(&self, names: Option<&[String]>) -> Vec<Arc<Collector>> {
        let table = lock(&self.table);
        match names {
            None => table.values().cloned().collect(),
            Some(names) => names.iter().filter_map(|n| table.get(n).cloned()).collect(),
        }
    }
}

/// A parsed `metrics.*` request.
pub(crate) enum Request {
    Put(Spec),
    Remove(String),
    List,
    Fetch(Option<Vec<String>>),
}

#[derive(Deserialize)]
struct PutParams {
    name: String,
    filter: String,
    group_by: Option<Vec<String>>,
    max_groups: Option<u64>,
    remove_empty: Option<bool>,
    export: Option<bool>,
}

#[derive(Deserialize)]
struct NameParams {
    name: String,
}

#[derive(Deserialize)]
struct FetchParams {
    names: Option<Vec<String>>,
}

impl Request {
    pub(crate) fn parse(method: &str, p: Map<String, Value>) -> Result<Request, RpcError> {
        Ok(match method {
            "metrics.put_session_collector" => {
                let p: PutParams = params(p)?;
                let spec = Spec {
                    name: p.name,
                    filter: p.filter,
                    group_by: p.group_by.unwrap_or_default(),
                    max_groups: p.max_groups.unwrap_or(DEFAULT_MAX_GROUPS),
                    remove_empty: p.remove_empty.unwrap_or(false),
                    export: p.export.unwrap_or(true),
                };
                spec.check_params().map_err(RpcError::params)?;
                Request::Put(spec)
            }
            "metrics.remove_session_collector" => Request::Remove(params::<NameParams>(p)?.name),
            "metrics.list_session_collectors" => Request::List,
            "metrics.fetch" => Request::Fetch(params::<FetchParams>(p)?.names),
            other => return Err(RpcError::MethodNotFound(other.to_owned())),
        })
    }

    pub(crate) fn needs(&self) -> Vec<Need> {
        match self {
            Request::Put(_) | Request::Remove(_) => vec![Need::Global(ControlServer)],
            Request::List | Request::Fetch(_) => vec![Need::Global(ViewServer)],
        }
    }

    pub(crate) async fn apply(self, call: &mut Call<'_>) -> Result<Value, RpcError> {
        let shared = call.shared;
        match self {
            Request::Put(spec) => {
                shared.metrics.put(&shared.store, spec)?;
                Ok(json!({}))
            }
            Request::Remove(name) => {
                shared.metrics.remove(&name);
                Ok(json!({}))
            }
            Request::List => {
                let list: Vec<Value> = shared
                    .metrics
                    .all()
                    .iter()
                    .map(|c| c.spec.to_json())
                    .collect();
                Ok(json!({ "collectors": list }))
            }
            Request::Fetch(names) => fetch(shared, names.as_deref()).await,
        }
    }
}

/// `metrics.fetch`: the collectors, each caught up first, and the server.
pub(crate) async fn fetch(shared: &Shared, names: Option<&[String]>) -> Result<Value, RpcError> {
    let collectors = shared.metrics.named(names);
    let mut out = Map::new();
    for c in &collectors {
        out.insert(c.spec.name.clone(), c.to_json());
    }
    let figures = ServerFigures::read(shared);
    let closed: Map<String, Value> = figures
        .closed
        .iter()
        .map(|(reason, n)| ((*reason).to_owned(), json!(n)))
        .collect();
    Ok(json!({
        "collectors": out,
        "server": {
            "sessions": {"active": figures.active, "disconnected": figures.disconnected},
            "opened": figures.opened,
            "closed": closed,
            "listeners": figures.listeners,
            "locks_held": figures.locks_held,
            "lock_waiters": figures.lock_waiters,
        },
    }))
}

/// The server's own figures at one moment.
pub(crate) struct ServerFigures {
    pub(crate) active: usize,
    pub(crate) disconnected: usize,
    pub(crate) opened: u64,
    pub(crate) closed: Vec<(&'static str, u64)>,
    pub(crate) listeners: usize,
    pub(crate) locks_held: usize,
    pub(crate) lock_waiters: usize,
}

impl ServerFigures {
    pub(crate) fn read(shared: &Shared) -> ServerFigures {
        use std::sync::atomic::Ordering;
        let (active, disconnected) = shared.session_states();
        let (locks_held, lock_waiters) = shared.locks.figures();
        let listeners = shared
            .all_clients()
            .iter()
            .map(|c| c.listeners().len())
            .sum();
        ServerFigures {
            active,
            disconnected,
            opened: shared.stats.opened.load(Ordering::Relaxed),
            closed: shared
                .stats
                .closed_by_reason()
                .into_iter()
                .map(|(r, n)| (r.name(), n))
                .collect(),
            listeners,
            locks_held,
            lock_waiters,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names_are_sanitised() {
        assert_eq!(label_name("$Country"), "_Country");
        assert_eq!(label_name("Desk-Name"), "Desk_Name");
        assert_eq!(label_name("2fa"), "_2fa");
        assert_eq!(label_name("é"), "_");
        assert_eq!(label_name("a.b.c"), "a_b_c");
    }

    #[test]
    fn label_collisions_and_bad_keys() {
        let keys = |k: &[&str]| label_names(&k.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(keys(&["$Country", "Desk"]).unwrap(), ["_Country", "Desk"]);
        assert!(keys(&["a-b", "a.b"]).is_err());
        assert!(keys(&["Desk", "Desk"]).is_err());
        assert!(keys(&["collector"]).is_err());
        assert!(keys(&["__x"]).is_err());
        assert!(keys(&["$_x"]).is_err());
        assert!(keys(&["$Nope"]).is_err());
        assert!(keys(&["two words"]).is_err());
    }

    fn spec(group_by: &[&str], max_groups: u64, remove_empty: bool) -> Spec {
        Spec {
            name: "c".into(),
            filter: "all".into(),
            group_by: group_by.iter().map(|s| s.to_string()).collect(),
            max_groups,
            remove_empty,
            export: true,
        }
    }

    fn entered(id: &str, props: &[(&str, &str)]) -> WatchEvent {
        let map: PropertyMap = props
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        WatchEvent::Entered {
            id: Arc::from(id),
            properties: Some(Arc::new(map)),
        }
    }

    fn left(id: &str) -> WatchEvent {
        WatchEvent::Left {
            id: Arc::from(id),
            closed: true,
            properties: None,
        }
    }

    fn table(f: &Figures) -> Vec<(Vec<String>, u64, u64, u64)> {
        f.groups()
            .map(|g| (g.values.to_vec(), g.sessions, g.opened, g.closed))
            .collect()
    }

    #[test]
    fn groups_overflow_into_ungrouped_and_free_their_slots() {
        let mut f = Figures::new(&spec(&["Desk"], 1, true));
        f.apply(entered("a", &[("Desk", "FX")]));
        f.apply(entered("b", &[("Desk", "Rates")]));
        assert_eq!(table(&f), [(vec!["FX".to_string()], 1, 1, 0)]);
        assert_eq!(f.ungrouped(), 1);
        f.apply(left("a"));
        assert!(table(&f).is_empty(), "remove_empty frees the slot");
        // b stays ungrouped until it changes.
        assert_eq!(f.ungrouped(), 1);
        f.apply(WatchEvent::Updated {
            id: Arc::from("b"),
            previous: Arc::new([("Desk".to_string(), Some("Rates".to_string()))].into()),
            properties: Some(Arc::new(
                [("Desk".to_string(), "Credit".to_string())].into(),
            )),
        });
        assert_eq!(f.ungrouped(), 0);
        assert_eq!(table(&f), [(vec!["Credit".to_string()], 1, 1, 0)]);
    }

    #[test]
    fn roles_group_sorted_and_absent_keys_group_empty() {
        let mut f = Figures::new(&spec(&["$Roles", "Desk"], 10, false));
        f.apply(entered("a", &[("$Roles", r#""b","a""#)]));
        f.apply(entered("b", &[("$Roles", r#""a","b""#), ("Desk", "")]));
        assert_eq!(
            table(&f),
            [(vec![r#""a","b""#.to_string(), String::new()], 2, 2, 0)]
        );
    }

    #[test]
    fn ungrouped_collector_lists_its_group_at_zero() {
        let mut f = Figures::new(&spec(&[], 250, false));
        assert_eq!(table(&f), [(vec![], 0, 0, 0)]);
        f.apply(WatchEvent::Entered {
            id: Arc::from("a"),
            properties: None,
        });
        f.apply(left("a"));
        assert_eq!(table(&f), [(vec![], 0, 1, 1)]);
        let f = Figures::new(&spec(&[], 250, true));
        assert!(table(&f).is_empty());
    }

    #[test]
    fn a_lagging_watch_is_replaced_and_the_figures_stay_exact() {
        use session_filter::{PropertyChange, StoreOptions};
        for group_by in [&["Desk"][..], &[]] {
            let store = Arc::new(SessionStore::with_options(StoreOptions::new()));
            for i in 0..20 {
                let desk = ["FX", "Rates"][i % 2];
                store
                    .insert([("$SessionId", format!("s{i}")), ("Desk", desk.into())])
                    .unwrap();
            }
            let c = Collector::start_with(
                &store,
                Spec {
                    filter: "Desk is 'FX' or Desk is 'Rates'".into(),
                    ..spec(group_by, 250, false)
                },
                4,
            )
            .unwrap();
            drop(c.figures()); // the snapshot: 20 sessions entered
                               // Far more events than the queue holds.
            for round in 0..10 {
                for i in 0..20 {
                    let desk = ["FX", "Rates", "Credit"][(i + round) % 3];
                    let change = PropertyChange::new().set("Desk", desk);
                    store
                        .change_session_properties(&format!("s{i}"), &change)
                        .unwrap();
                }
            }
            store.close_session("s0");
            let figures = c.figures();
            let total: u64 = figures.groups().map(|g| g.sessions).sum();
            let matching = store.count("Desk is 'FX' or Desk is 'Rates'").unwrap() as u64;
            assert_eq!(total, matching, "{group_by:?}");
            for g in figures.groups() {
                if let [desk] = &g.values[..] {
                    let n = store.count(&format!("Desk is '{desk}'")).unwrap() as u64;
                    assert_eq!(g.sessions, n, "{desk}");
                }
                assert!(
                    g.opened >= g.sessions && g.opened - g.closed == g.sessions,
                    "{group_by:?} {:?} {} {} {}",
                    g.values,
                    g.sessions,
                    g.opened,
                    g.closed
                );
            }
        }
    }

    #[test]
    fn resync_keeps_sessions_that_stayed() {
        let mut f = Figures::new(&spec(&["Desk"], 10, false));
        f.apply(entered("a", &[("Desk", "FX")]));
        f.apply(entered("b", &[("Desk", "FX")]));
        f.begin_restore();
        f.apply(entered("a", &[("Desk", "FX")]));
        f.apply(entered("c", &[("Desk", "FX")]));
        f.end_restore();
        // a stayed, b left, c entered.
        assert_eq!(table(&f), [(vec!["FX".to_string()], 2, 3, 1)]);
    }
}
