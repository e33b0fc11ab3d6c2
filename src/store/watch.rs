//! Watches: standing filters on a store, kept up to date by every change
//! (SPEC section 8.2).
//!
//! The store's shards share one [`Hub`]. Every mutation of a session, made
//! under its shard's write lock, tells the hub the session's state before
//! and after; the hub asks its [`FilterSet`] which watches that change
//! entered, left or updated (through the reverse index: only watches whose
//! filters read a changed key are evaluated, plus those that asked for
//! updates of a changed key) and queues their events and updates their
//! counts before the lock is released, so both are atomic with the change.
//! A store without watches pays one atomic load per mutation.
//!
//! An event's payloads (the id, the properties, the previous values) are
//! built once per change, behind `Arc`s, and shared by every watch that
//! gets the event.
//!
//! # The snapshot
//!
//! A watch is registered first and *cut* into the store shard by shard:
//! under one shard's read lock it learns the ids of the sessions that match
//! there (a bitmap of interned ids) and their number. Until a shard is cut
//! the watch ignores that shard's changes (the cut sees their result);
//! after, it gets them live. A session still in the snapshot's pending set
//! is not reported live: a change that keeps it matching is folded into the
//! snapshot (which reads the session when it delivers it), one that makes it
//! leave takes it out of the set silently, and a signal delivers it first.
//! The consumer pulls the pending sessions a chunk at a time through the
//! `recv` methods, each chunk read under its shard's read lock, so the
//! snapshot is complete whatever its size, never goes through the bounded
//! queue (it cannot lag), holds each shard's writers only for one chunk,
//! and no session is reported twice or missed.
//!
//! # The queue
//!
//! Each watch has a bounded queue. A writer never waits for a reader: an
//! event that does not fit is dropped and counted, and the count is
//! delivered as [`WatchEvent::Lagged`] exactly where the events went
//! missing, once the reader has taken everything queued before them.

use std::cell::OnceCell;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, Weak};
use std::time::{Duration, Instant};

use ahash::{AHashMap, AHashSet};
use roaring::RoaringBitmap;

use crate::intern::Sym;
use crate::session::{key_name, Key, Session};
use crate::standing::FilterSet;
use crate::vm::Program;

/// Sessions of a snapshot read per chunk, under one shard's read lock.
const SNAPSHOT_CHUNK: usize = 64;

/// A session's properties as events carry them: every key with its value,
/// `$Roles` as a canonical roles string.
pub type PropertyMap = BTreeMap<String, String>;

/// How a [`Watch`] starts, what it reports, and how much it buffers.
///
/// The defaults: a snapshot of the matching sessions first; `Entered`,
/// `Left`, `Signal` and `Updated` (for changes to keys the filter reads);
/// every event with the session's properties; a queue of 4096 events.
///
/// ```
/// use session_filter::WatchOptions;
///
/// // What a listener of `Desk` changes on every session wants:
/// let listener = WatchOptions::new().membership_only().updates_of(["Desk"]);
/// // What a live count wants: membership, no payloads, no snapshot.
/// let counter = WatchOptions::new().skip_snapshot().membership_only().without_properties();
/// # let _ = (listener, counter);
/// ```
#[derive(Clone, Debug)]
pub struct WatchOptions {
    snapshot: bool,
    capacity: usize,
    properties: bool,
    filter_updates: bool,
    update_keys: Vec<String>,
    all_updates: bool,
}

impl Default for WatchOptions {
    fn default() -> WatchOptions {
        WatchOptions {
            snapshot: true,
            capacity: 4096,
            properties: true,
            filter_updates: true,
            update_keys: Vec::new(),
            all_updates: false,
        }
    }
}

impl WatchOptions {
    /// The defaults (see [`WatchOptions`]).
    pub fn new() -> WatchOptions {
        WatchOptions::default()
    }

    /// Do not report the sessions that match when the watch is made; only
    /// later changes (the count still starts at the number that match).
    pub fn skip_snapshot(mut self) -> WatchOptions {
        self.snapshot = false;
        self
    }

    /// The most events the queue holds (at least 1); beyond it, events are
    /// dropped and reported as [`WatchEvent::Lagged`]. The snapshot does not
    /// go through the queue: it is delivered whole whatever its size.
    pub fn capacity(mut self, events: usize) -> WatchOptions {
        self.capacity = events.max(1);
        self
    }

    /// Report membership only: no [`WatchEvent::Updated`] at all, and no
    /// update keys asked for before. [`updates_of`](WatchOptions::updates_of)
    /// or [`all_updates`](WatchOptions::all_updates) after it ask for those
    /// updates alone.
    pub fn membership_only(mut self) -> WatchOptions {
        self.filter_updates = false;
        self.update_keys.clear();
        self.all_updates = false;
        self
    }

    /// Events carry no properties (`properties: None`): for consumers that
    /// need only ids, and save building and sharing the maps.
    pub fn without_properties(mut self) -> WatchOptions {
        self.properties = false;
        self
    }

    /// Also report [`WatchEvent::Updated`] when a change touches one of
    /// `keys` (`$Roles` included) on a session that matches, even if the
    /// filter does not read that key: a listener of `all` that shows `Desk`
    /// sees every change of `Desk`. Adds to the keys asked for before.
    pub fn updates_of<I, K>(mut self, keys: I) -> WatchOptions
    where
        I: IntoIterator<Item = K>,
        K: Into<String>,
    {
        self.update_keys.extend(keys.into_iter().map(Into::into));
        self
    }

    /// Report [`WatchEvent::Updated`] for every change of a session that
    /// matches before and after, whatever keys it touches.
    pub fn all_updates(mut self) -> WatchOptions {
        self.all_updates = true;
        self
    }

    pub(crate) fn reports_snapshot(&self) -> bool {
        self.snapshot
    }
}

/// What happened to one session, as a watch sees it.
///
/// Payloads are shared: the id and maps of one change are built once and
/// every watch's event holds the same `Arc`s, so cloning an event is cheap.
/// `properties` is `None` when the watch was made
/// [`without_properties`](WatchOptions::without_properties).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WatchEvent {
    /// The session now matches: it was inserted, it changed into the
    /// filter, or it matched when the watch was made (the snapshot).
    Entered {
        /// Its `$SessionId`.
        id: Arc<str>,
        /// Its properties now.
        properties: Option<Arc<PropertyMap>>,
    },
    /// The session no longer matches.
    Left {
        /// Its `$SessionId`.
        id: Arc<str>,
        /// True when it was closed, false when it changed out of the filter.
        closed: bool,
        /// Its properties after the change, or the last ones it had when
        /// it was closed.
        properties: Option<Arc<PropertyMap>>,
    },
    /// The session matched before a change and still does, and the change
    /// touched a key the filter reads (or one the watch asked for with
    /// [`updates_of`](WatchOptions::updates_of)).
    Updated {
        /// Its `$SessionId`.
        id: Arc<str>,
        /// Each key whose value changed, with its previous value (`None`
        /// where the key was new).
        previous: Arc<BTreeMap<String, Option<String>>>,
        /// Its properties after the change.
        properties: Option<Arc<PropertyMap>>,
    },
    /// [`SessionStore::signal_session`](crate::SessionStore::signal_session)
    /// was called for a session the watch matches: in order with the
    /// session's other events.
    Signal {
        /// Its `$SessionId`.
        id: Arc<str>,
        /// The caller's tag.
        signal: &'static str,
        /// Its properties now.
        properties: Option<Arc<PropertyMap>>,
    },
    /// The queue was full and this many events were dropped here. Resync
    /// from [`Watch::count`] and the store's `select`.
    Lagged {
        /// How many events went missing.
        missed: u64,
    },
}

impl WatchEvent {
    /// The `$SessionId` the event is about (`None` for `Lagged`).
    pub fn id(&self) -> Option<&str> {
        match self {
            WatchEvent::Entered { id, .. }
            | WatchEvent::Left { id, .. }
            | WatchEvent::Updated { id, .. }
            | WatchEvent::Signal { id, .. } => Some(id),
            WatchEvent::Lagged { .. } => None,
        }
    }

    /// The session's properties the event carries, if any.
    pub fn properties(&self) -> Option<&Arc<PropertyMap>> {
        match self {
            WatchEvent::Entered { properties, .. }
            | WatchEvent::Left { properties, .. }
            | WatchEvent::Updated { properties, .. }
            | WatchEvent::Signal { properties, .. } => properties.as_ref(),
            WatchEvent::Lagged { .. } => None,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The snapshot's progress: which shards are cut, and the matching sessions
/// of each that are not delivered yet.
struct Snapshot {
    cut: Vec<bool>,
    /// Per shard, the interned `$SessionId`s still to deliver.
    pending: Vec<RoaringBitmap>,
    /// Sessions pending in all shards.
    remaining: u64,
}

/// How a watch must treat a change of one session, given its snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Standing {
    /// The watch has not cut this shard yet: the cut will see the result.
    Uncut,
    /// The session is in the snapshot, not delivered yet.
    Pending,
    /// Report the change.
    Live,
}

/// What the hub and a watch both hold: its count, its lag and its snapshot.
pub(crate) struct WatchState {
    count: AtomicU64,
    /// Events dropped since the last `Lagged` was queued. Senders hold it
    /// while they queue, so a reader that finds the queue empty under it
    /// knows every missed event came after everything it has read.
    missed: Mutex<u64>,
    /// True until every shard is cut and the snapshot delivered; never
    /// true again after (so a stale `false` cannot be read).
    opening: AtomicBool,
    snapshot: Mutex<Snapshot>,
    /// Events carry properties.
    properties: bool,
}

impl WatchState {
    /// How to treat a change of the session `id` in `shard`; with `take`,
    /// a pending session leaves the snapshot (the caller reports it, or it
    /// left the filter). Called under that shard's write lock.
    fn standing(&self, shard: usize, id: Sym, take: bool) -> Standing {
        if !self.opening.load(Ordering::Acquire) {
            return Standing::Live;
        }
        let mut snap = lock(&self.snapshot);
        if !snap.cut.get(shard).copied().unwrap_or(true) {
            return Standing::Uncut;
        }
        let Some(pending) = snap.pending.get_mut(shard) else {
            return Standing::Live;
        };
        if !pending.contains(id.as_u32()) {
            return Standing::Live;
        }
        if take {
            pending.remove(id.as_u32());
            snap.remaining -= 1;
            self.close_if_done(&snap);
        }
        Standing::Pending
    }

    fn close_if_done(&self, snap: &Snapshot) {
        if snap.remaining == 0 && snap.cut.iter().all(|&c| c) {
            self.opening.store(false, Ordering::Release);
        }
    }

    /// Cuts the watch into `shard`, whose read lock the caller holds:
    /// `count` sessions match there, with these ids (`None` when the watch
    /// skips its snapshot).
    pub(crate) fn cut(&self, shard: usize, count: u64, ids: Option<RoaringBitmap>) {
        let mut snap = lock(&self.snapshot);
        if let Some(ids) = ids {
            snap.remaining += ids.len();
            if let Some(pending) = snap.pending.get_mut(shard) {
                *pending = ids;
            }
        }
        if let Some(cut) = snap.cut.get_mut(shard) {
            *cut = true;
        }
        self.count.fetch_add(count, Ordering::Relaxed);
        self.close_if_done(&snap);
    }

    /// The first shard with sessions of the snapshot still to deliver.
    pub(crate) fn next_pending_shard(&self) -> Option<usize> {
        if !self.opening.load(Ordering::Acquire) {
            return None;
        }
        lock(&self.snapshot)
            .pending
            .iter()
            .position(|p| !p.is_empty())
    }

    /// Takes up to a chunk of `shard`'s pending sessions and adds their
    /// `Entered` events to `out`; the caller holds that shard's read lock
    /// and `session` finds a session there by interned id.
    pub(crate) fn take_chunk<'s>(
        &self,
        shard: usize,
        session: impl Fn(Sym) -> Option<&'s Session>,
        out: &mut VecDeque<WatchEvent>,
    ) {
        let ids: Vec<u32> = {
            let mut snap = lock(&self.snapshot);
            let Some(pending) = snap.pending.get_mut(shard) else {
                return;
            };
            let ids: Vec<u32> = pending.iter().take(SNAPSHOT_CHUNK).collect();
            if let Some(&last) = ids.last() {
                pending.remove_range(..=last);
            }
            snap.remaining -= ids.len() as u64;
            self.close_if_done(&snap);
            ids
        };
        for id in ids {
            if let Some(s) = session(Sym::from_u32(id)) {
                let parts = EventParts::new(s);
                out.push_back(parts.entered(self.properties));
            }
        }
    }

    fn remaining(&self) -> u64 {
        if !self.opening.load(Ordering::Acquire) {
            return 0;
        }
        lock(&self.snapshot).remaining
    }
}

/// Reads chunks of a watch's snapshot from the store that made it: finds
/// the next shard with pending sessions, locks it for reading and calls
/// [`WatchState::take_chunk`]. False once the store is gone.
pub(crate) type SnapshotReader =
    Box<dyn Fn(&WatchState, &mut VecDeque<WatchEvent>) -> bool + Send + Sync>;

/// One watch's end of the hub: its queue's sender (dropped with the hub or
/// when the watch goes, which ends a waiting `recv`), what it shares with
/// the watch, and what it asked for.
struct Sink {
    tx: flume::Sender<WatchEvent>,
    state: Arc<WatchState>,
    program: Program,
    /// `Updated` for changes of keys the filter reads.
    filter_updates: bool,
}

impl Sink {
    fn send(&self, event: WatchEvent) {
        let mut missed = lock(&self.state.missed);
        if *missed > 0 {
            match self.tx.try_send(WatchEvent::Lagged { missed: *missed }) {
                Ok(()) => *missed = 0,
                Err(_) => {
                    *missed += 1;
                    return;
                }
            }
        }
        if self.tx.try_send(event).is_err() {
            *missed += 1;
        }
    }
}

/// The watches of one store, shared by its shards.
#[derive(Default)]
pub(crate) struct Hub {
    /// The number of live watches: the one load a mutation pays when 0.
    active: AtomicUsize,
    next_key: AtomicU64,
    registry: RwLock<Registry>,
}

#[derive(Default)]
struct Registry {
    filters: FilterSet<u64>,
    sinks: AHashMap<u64, Sink>,
    /// Watches that asked for updates of keys, by key name.
    updates_by_key: AHashMap<String, Vec<u64>>,
    /// Watches that asked for every update.
    all_updates: Vec<u64>,
}

impl Registry {
    fn wants_extra_updates(&self) -> bool {
        !self.updates_by_key.is_empty() || !self.all_updates.is_empty()
    }
}

/// The payloads of one change's events, each built at most once and shared
/// by every watch that gets them.
struct EventParts<'a> {
    session: &'a Session,
    id: OnceCell<Arc<str>>,
    properties: OnceCell<Arc<PropertyMap>>,
}

impl<'a> EventParts<'a> {
    fn new(session: &'a Session) -> EventParts<'a> {
        EventParts {
            session,
            id: OnceCell::new(),
            properties: OnceCell::new(),
        }
    }

    fn id(&self) -> Arc<str> {
        self.id
            .get_or_init(|| self.session.id().unwrap_or_else(|| Arc::from("")))
            .clone()
    }

    fn properties(&self, wanted: bool) -> Option<Arc<PropertyMap>> {
        wanted.then(|| {
            self.properties
                .get_or_init(|| Arc::new(self.session.properties().into_iter().collect()))
                .clone()
        })
    }

    fn entered(&self, properties: bool) -> WatchEvent {
        WatchEvent::Entered {
            id: self.id(),
            properties: self.properties(properties),
        }
    }

    fn left(&self, closed: bool, properties: bool) -> WatchEvent {
        WatchEvent::Left {
            id: self.id(),
            closed,
            properties: self.properties(properties),
        }
    }

    fn signal(&self, signal: &'static str, properties: bool) -> WatchEvent {
        WatchEvent::Signal {
            id: self.id(),
            signal,
            properties: self.properties(properties),
        }
    }
}

/// The keys whose value differs between two states of a session, with
/// their values before (`None` where the key is new).
fn previous_values(before: &Session, changed: &[Key]) -> BTreeMap<String, Option<String>> {
    changed
        .iter()
        .filter_map(|&key| Some((key_name(key)?.to_string(), before.value_text(key))))
        .collect()
}

impl Hub {
    /// True when some watch is registered. Read under a shard's write lock,
    /// so a watch registered before the change is seen.
    #[inline]
    pub(crate) fn active(&self) -> bool {
        self.active.load(Ordering::Relaxed) != 0
    }

    fn registry(&self) -> RwLockReadGuard<'_, Registry> {
        self.registry.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Calls `f` with the sink of every watch whose filter matches
    /// `session`, and the payloads its events share.
    fn each_matching(&self, session: &Session, mut f: impl FnMut(&Sink, &EventParts<'_>)) {
        if !self.active() {
            return;
        }
        let registry = self.registry();
        let parts = EventParts::new(session);
        for key in registry.filters.matching(session) {
            if let Some(sink) = registry.sinks.get(&key) {
                f(sink, &parts);
            }
        }
    }

    /// A session was inserted into `shard`.
    pub(crate) fn inserted(&self, shard: usize, session: &Session) {
        self.each_matching(session, |sink, parts| {
            // A new session is in no snapshot; taking it is harmless.
            if sink.state.standing(shard, session.id_sym(), true) != Standing::Uncut {
                sink.state.count.fetch_add(1, Ordering::Relaxed);
                sink.send(parts.entered(sink.state.properties));
            }
        });
    }

    /// A session was closed in `shard`.
    pub(crate) fn closed(&self, shard: usize, session: &Session) {
        self.each_matching(session, |sink, parts| {
            match sink.state.standing(shard, session.id_sym(), true) {
                Standing::Uncut => {}
                Standing::Pending => {
                    sink.state.count.fetch_sub(1, Ordering::Relaxed);
                }
                Standing::Live => {
                    sink.state.count.fetch_sub(1, Ordering::Relaxed);
                    sink.send(parts.left(true, sink.state.properties));
                }
            }
        });
    }

    /// A session of `shard` changed from `before` to `after`.
    pub(crate) fn changed(&self, shard: usize, before: &Session, after: &Session) {
        if !self.active() {
            return;
        }
        let changed = before.changed_keys(after);
        if changed.is_empty() {
            return;
        }
        let registry = self.registry();
        let id = after.id_sym();
        let (changes, stayed) = registry
            .filters
            .changes_and_stayed(before, after, &changed, true);
        let parts = EventParts::new(after);
        let previous = OnceCell::new();
        let updated = |sink: &Sink| WatchEvent::Updated {
            id: parts.id(),
            previous: previous
                .get_or_init(|| Arc::new(previous_values(before, &changed)))
                .clone(),
            properties: parts.properties(sink.state.properties),
        };
        for key in &changes.entered {
            let Some(sink) = registry.sinks.get(key) else {
                continue;
            };
            if sink.state.standing(shard, id, true) == Standing::Uncut {
                continue;
            }
            sink.state.count.fetch_add(1, Ordering::Relaxed);
            sink.send(parts.entered(sink.state.properties));
        }
        for key in &changes.left {
            let Some(sink) = registry.sinks.get(key) else {
                continue;
            };
            match sink.state.standing(shard, id, true) {
                Standing::Uncut => continue,
                Standing::Pending => {
                    sink.state.count.fetch_sub(1, Ordering::Relaxed);
                }
                Standing::Live => {
                    sink.state.count.fetch_sub(1, Ordering::Relaxed);
                    sink.send(parts.left(false, sink.state.properties));
                }
            }
        }
        // A pending session's change is folded into the snapshot, which
        // reads the session when it delivers it.
        let mut told: AHashSet<u64> = AHashSet::new();
        for key in &stayed {
            let Some(sink) = registry.sinks.get(key) else {
                continue;
            };
            if sink.filter_updates && sink.state.standing(shard, id, false) == Standing::Live {
                sink.send(updated(sink));
                told.insert(*key);
            }
        }
        if !registry.wants_extra_updates() {
            return;
        }
        // Watches that asked for updates of a changed key (or of all),
        // whatever their filters read: those that match both states.
        let mut extra: Vec<u64> = registry.all_updates.clone();
        for &key in changed.iter() {
            if let Some(name) = key_name(key) {
                if let Some(keys) = registry.updates_by_key.get(&*name) {
                    extra.extend_from_slice(keys);
                }
            }
        }
        extra.sort_unstable();
        extra.dedup();
        for key in extra {
            if told.contains(&key) || changes.entered.contains(&key) || changes.left.contains(&key)
            {
                continue;
            }
            let Some(sink) = registry.sinks.get(&key) else {
                continue;
            };
            // Not entered or left: it matches both states or neither.
            let matches = stayed.contains(&key) || sink.program.matches(after);
            if matches && sink.state.standing(shard, id, false) == Standing::Live {
                sink.send(updated(sink));
            }
        }
    }

    /// A caller's signal for a session of `shard`: a `Signal` event to every
    /// watch that matches it, a pending session's `Entered` first.
    pub(crate) fn signal(&self, shard: usize, session: &Session, signal: &'static str) {
        self.each_matching(session, |sink, parts| {
            let properties = sink.state.properties;
            match sink.state.standing(shard, session.id_sym(), true) {
                Standing::Uncut => return,
                Standing::Pending => sink.send(parts.entered(properties)),
                Standing::Live => {}
            }
            sink.send(parts.signal(signal, properties));
        });
    }

    /// Registers a watch of `program` on a store of `shards` shards. The
    /// caller then cuts it into every shard ([`WatchState::cut`]) before it
    /// hands it out; until a shard is cut, the watch ignores its changes.
    pub(crate) fn register(
        self: &Arc<Hub>,
        program: &Program,
        options: &WatchOptions,
        shards: usize,
        reader: SnapshotReader,
    ) -> Watch {
        let mut registry = self
            .registry
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = flume::bounded(options.capacity);
        let state = Arc::new(WatchState {
            count: AtomicU64::new(0),
            missed: Mutex::new(0),
            opening: AtomicBool::new(true),
            snapshot: Mutex::new(Snapshot {
                cut: vec![false; shards],
                pending: vec![RoaringBitmap::new(); shards],
                remaining: 0,
            }),
            properties: options.properties,
        });
        registry.filters.insert_program(key, program.clone());
        registry.sinks.insert(
            key,
            Sink {
                tx,
                state: state.clone(),
                program: program.clone(),
                filter_updates: options.filter_updates,
            },
        );
        let mut names = options.update_keys.clone();
        names.sort_unstable();
        names.dedup();
        for name in names {
            registry.updates_by_key.entry(name).or_default().push(key);
        }
        if options.all_updates {
            registry.all_updates.push(key);
        }
        self.active.fetch_add(1, Ordering::Relaxed);
        Watch {
            key,
            state,
            rx,
            hub: Arc::downgrade(self),
            program: program.clone(),
            snapshot: options.snapshot,
            reader,
            delivery: Mutex::new(Delivery::default()),
        }
    }

    fn unregister(&self, key: u64) {
        let mut registry = self
            .registry
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if registry.sinks.remove(&key).is_some() {
            registry.filters.remove(&key);
            registry.updates_by_key.retain(|_, keys| {
                keys.retain(|&k| k != key);
                !keys.is_empty()
            });
            registry.all_updates.retain(|&k| k != key);
            self.active.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// The consumer's side of the snapshot: the chunk being delivered, and a
/// live event held back behind its session's `Entered` from that chunk.
#[derive(Default)]
struct Delivery {
    chunk: VecDeque<WatchEvent>,
    held: Option<WatchEvent>,
}

/// A standing filter on a store: its live count and its events (SPEC 8.2).
///
/// Made by [`SessionStore::watch`](crate::SessionStore::watch). Receive
/// blocking ([`recv`](Watch::recv), [`recv_timeout`](Watch::recv_timeout)),
/// without waiting ([`try_recv`](Watch::try_recv)), or from async code
/// ([`recv_async`](Watch::recv_async), any executor). Dropping the watch
/// unregisters it.
///
/// The snapshot (every session that matched when the watch was made) is
/// read from the store by these calls, a chunk at a time, interleaved with
/// the live events that follow; each session's events keep their order.
///
/// ```
/// use session_filter::{SessionStore, WatchEvent, WatchOptions};
///
/// let store = SessionStore::new();
/// store.insert([("$SessionId", "a"), ("Department", "Ops")])?;
/// let ops = store.watch("Department is 'Ops'", WatchOptions::new())?;
/// assert_eq!(ops.count(), 1);
/// let first = ops.try_recv().unwrap();
/// assert!(matches!(&first, WatchEvent::Entered { id, .. } if &**id == "a"));
/// assert_eq!(first.properties().unwrap()["Department"], "Ops");
///
/// store.insert([("$SessionId", "b"), ("Department", "Sales")])?;
/// store.change_roles("$SessionId is 'b'", &[], &["x"])?; // not a key it reads
/// assert_eq!(ops.try_recv(), None);
///
/// store.signal_session("a", "disconnected")?;
/// assert!(matches!(ops.try_recv(), Some(WatchEvent::Signal { signal: "disconnected", .. })));
///
/// store.close_session("a");
/// assert_eq!(ops.count(), 0);
/// assert!(matches!(ops.try_recv(), Some(WatchEvent::Left { closed: true, .. })));
/// # Ok::<(), session_filter::Error>(())
/// ```
pub struct Watch {
    key: u64,
    state: Arc<WatchState>,
    rx: flume::Receiver<WatchEvent>,
    hub: Weak<Hub>,
    program: Program,
    /// The watch reports a snapshot.
    snapshot: bool,
    reader: SnapshotReader,
    delivery: Mutex<Delivery>,
}

impl Watch {
    /// How many sessions match now. Exact whenever it can be observed: it
    /// changes atomically with the session changes, and when no change is in
    /// flight it equals the store's `count` of the filter.
    pub fn count(&self) -> u64 {
        self.state.count.load(Ordering::Relaxed)
    }

    /// The watched filter.
    pub fn program(&self) -> &Program {
        &self.program
    }

    pub(crate) fn state(&self) -> &WatchState {
        &self.state
    }

    /// How many sessions of the snapshot are still to be delivered (0 once
    /// it is complete, and for a watch that skipped it).
    pub fn snapshot_remaining(&self) -> u64 {
        self.state.remaining() + lock(&self.delivery).chunk.len() as u64
    }

    /// The next event if one is ready (or a `Lagged` marker, once the events
    /// queued before the missing ones are read). May read a chunk of the
    /// snapshot from the store.
    ///
    /// Live events come first, so a large snapshot does not make the queue
    /// overflow; the snapshot is read when the queue is empty. A live event
    /// about a session whose `Entered` is still in the chunk read last (it
    /// was read under the shard's lock, so the event came after it) is
    /// delivered right after that `Entered`.
    pub fn try_recv(&self) -> Option<WatchEvent> {
        let mut delivery = lock(&self.delivery);
        if let Some(event) = delivery.held.take() {
            return Some(event);
        }
        if let Some(event) = self.try_queue() {
            let at = event
                .id()
                .and_then(|id| delivery.chunk.iter().position(|e| e.id() == Some(id)));
            if let Some(entered) = at.and_then(|at| delivery.chunk.remove(at)) {
                delivery.held = Some(event);
                return Some(entered);
            }
            return Some(event);
        }
        if let Some(event) = delivery.chunk.pop_front() {
            return Some(event);
        }
        if self.snapshot {
            let chunk = &mut delivery.chunk;
            while chunk.is_empty() && self.state.next_pending_shard().is_some() {
                if !(self.reader)(&self.state, chunk) {
                    break;
                }
            }
            if let Some(event) = delivery.chunk.pop_front() {
                return Some(event);
            }
        }
        // A chunk read just now may have let events in behind it.
        self.try_queue()
    }

    /// How many events wait in the queue now (the snapshot aside).
    pub fn queued(&self) -> usize {
        self.rx.len()
    }

    /// The next queued event, without waiting.
    fn try_queue(&self) -> Option<WatchEvent> {
        match self.rx.try_recv() {
            Ok(event) => Some(event),
            Err(_) => self.lag(),
        }
    }

    /// The number of missed events, once the queue is empty.
    fn lag(&self) -> Option<WatchEvent> {
        let mut missed = lock(&self.state.missed);
        // Senders queue under this lock: with it held, an empty queue means
        // every missed event came after everything read so far.
        if let Ok(event) = self.rx.try_recv() {
            return Some(event);
        }
        match std::mem::take(&mut *missed) {
            0 => None,
            missed => Some(WatchEvent::Lagged { missed }),
        }
    }

    /// Waits for the next event; `None` once the store is dropped and
    /// everything has been read.
    pub fn recv(&self) -> Option<WatchEvent> {
        if let Some(event) = self.try_recv() {
            return Some(event);
        }
        match self.rx.recv() {
            Ok(event) => Some(event),
            Err(_) => self.lag(),
        }
    }

    /// Waits at most `timeout` for the next event.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<WatchEvent> {
        if let Some(event) = self.try_recv() {
            return Some(event);
        }
        let deadline = Instant::now() + timeout;
        match self.rx.recv_deadline(deadline) {
            Ok(event) => Some(event),
            Err(_) => self.lag(),
        }
    }

    /// Waits for the next event from async code, on any executor; `None`
    /// once the store is dropped and everything has been read.
    pub async fn recv_async(&self) -> Option<WatchEvent> {
        if let Some(event) = self.try_recv() {
            return Some(event);
        }
        match self.rx.recv_async().await {
            Ok(event) => Some(event),
            Err(_) => self.lag(),
        }
    }

    /// Every event ready now (the rest of the snapshot included), without
    /// waiting.
    pub fn drain(&self) -> Vec<WatchEvent> {
        std::iter::from_fn(|| self.try_recv()).collect()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(hub) = self.hub.upgrade() {
            hub.unregister(self.key);
        }
    }
}

impl fmt::Debug for Watch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watch")
            .field("filter", &self.program.to_string())
            .field("count", &self.count())
            .field("queued", &self.rx.len())
            .field("snapshot_remaining", &self.snapshot_remaining())
            .finish()
    }
}
