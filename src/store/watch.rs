//! Watches: standing filters on a store, kept up to date by every change
//! (SPEC section 8.2).
//!
//! The store's shards share one [`Hub`]. Every mutation of a session, made
//! under its shard's write lock, tells the hub the session's state before
//! and after; the hub asks its [`FilterSet`] which watches that change
//! entered, left or updated (through the reverse index: only watches whose
//! filters read a changed key are evaluated) and queues their events and
//! updates their counts before the lock is released, so both are atomic
//! with the change. A store without watches pays one atomic load per
//! mutation.
//!
//! Each watch has a bounded queue. A writer never waits for a reader: an
//! event that does not fit is dropped and counted, and the count is
//! delivered as [`WatchEvent::Lagged`] exactly where the events went
//! missing, once the reader has taken everything queued before them.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use ahash::AHashMap;

use crate::session::Session;
use crate::standing::FilterSet;
use crate::util::properties::ROLES;
use crate::vm::Program;

/// How a [`Watch`] starts and how much it buffers.
#[derive(Clone, Debug)]
pub struct WatchOptions {
    snapshot: bool,
    capacity: usize,
}

impl Default for WatchOptions {
    fn default() -> WatchOptions {
        WatchOptions {
            snapshot: true,
            capacity: 4096,
        }
    }
}

impl WatchOptions {
    /// The defaults: a snapshot of the matching sessions first, and a
    /// queue of 4096 events.
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
    /// dropped and reported as [`WatchEvent::Lagged`].
    pub fn capacity(mut self, events: usize) -> WatchOptions {
        self.capacity = events.max(1);
        self
    }
}

/// What happened to one session, as a watch sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WatchEvent {
    /// The session now matches: it was inserted, it changed into the
    /// filter, or it matched when the watch was made (the snapshot).
    Entered {
        /// Its `$SessionId`.
        id: String,
        /// All its properties, `$Roles` as a roles string.
        properties: BTreeMap<String, String>,
    },
    /// The session no longer matches.
    Left {
        /// Its `$SessionId`.
        id: String,
        /// True when it was closed, false when it changed out of the filter.
        closed: bool,
    },
    /// The session matched before a change and still does, and the change
    /// touched a key the filter reads.
    Updated {
        /// Its `$SessionId`.
        id: String,
        /// Each key whose value changed, with its previous value (`None`
        /// where the key was new).
        previous: BTreeMap<String, Option<String>>,
    },
    /// The queue was full and this many events were dropped here. Resync
    /// from [`Watch::count`] and the store's `select`.
    Lagged {
        /// How many events went missing.
        missed: u64,
    },
}

/// One watch's end of the hub: its queue's sender (dropped with the hub or
/// when the watch goes, which ends a waiting `recv`) and what it shares with
/// the watch.
struct Sink {
    tx: flume::Sender<WatchEvent>,
    shared: Arc<Shared>,
}

/// What the hub and the watch both read.
struct Shared {
    count: AtomicU64,
    /// Events dropped since the last `Lagged` was queued. Senders hold it
    /// while they queue, so a reader that finds the queue empty under it
    /// knows every missed event came after everything it has read.
    missed: Mutex<u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Sink {
    fn send(&self, event: WatchEvent) {
        let mut missed = lock(&self.shared.missed);
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
}

/// The events of one change, built once for every watch that gets them.
struct Lazy<'a, T, F: Fn() -> T> {
    value: Option<T>,
    make: &'a F,
}

impl<T: Clone, F: Fn() -> T> Lazy<'_, T, F> {
    fn get(&mut self) -> T {
        self.value.get_or_insert_with(self.make).clone()
    }
}

fn id_of(s: &Session) -> String {
    s.id().map(|id| id.to_string()).unwrap_or_default()
}

fn properties_of(s: &Session) -> BTreeMap<String, String> {
    s.properties().into_iter().collect()
}

impl Hub {
    /// True when some watch is registered. Read under a shard's write lock,
    /// so a watch registered (under every shard's read lock) before the
    /// change is seen.
    #[inline]
    pub(crate) fn active(&self) -> bool {
        self.active.load(Ordering::Relaxed) != 0
    }

    fn registry(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.registry.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// A session was inserted.
    pub(crate) fn inserted(&self, session: &Session) {
        if !self.active() {
            return;
        }
        let registry = self.registry();
        let make = || WatchEvent::Entered {
            id: id_of(session),
            properties: properties_of(session),
        };
        let mut event = Lazy {
            value: None,
            make: &make,
        };
        for key in registry.filters.matching(session) {
            if let Some(sink) = registry.sinks.get(&key) {
                sink.shared.count.fetch_add(1, Ordering::Relaxed);
                sink.send(event.get());
            }
        }
    }

    /// A session was closed.
    pub(crate) fn closed(&self, session: &Session) {
        if !self.active() {
            return;
        }
        let registry = self.registry();
        for key in registry.filters.matching(session) {
            if let Some(sink) = registry.sinks.get(&key) {
                sink.shared.count.fetch_sub(1, Ordering::Relaxed);
                sink.send(WatchEvent::Left {
                    id: id_of(session),
                    closed: true,
                });
            }
        }
    }

    /// A session changed from `before` to `after`.
    pub(crate) fn changed(&self, before: &Session, after: &Session) {
        if !self.active() {
            return;
        }
        let registry = self.registry();
        let (changes, stayed) = registry.filters.changes_and_stayed(before, after);
        let make_entered = || WatchEvent::Entered {
            id: id_of(after),
            properties: properties_of(after),
        };
        let mut entered = Lazy {
            value: None,
            make: &make_entered,
        };
        for key in changes.entered {
            if let Some(sink) = registry.sinks.get(&key) {
                sink.shared.count.fetch_add(1, Ordering::Relaxed);
                sink.send(entered.get());
            }
        }
        for key in changes.left {
            if let Some(sink) = registry.sinks.get(&key) {
                sink.shared.count.fetch_sub(1, Ordering::Relaxed);
                sink.send(WatchEvent::Left {
                    id: id_of(after),
                    closed: false,
                });
            }
        }
        let make_updated = || WatchEvent::Updated {
            id: id_of(after),
            previous: previous_values(before, after),
        };
        let mut updated = Lazy {
            value: None,
            make: &make_updated,
        };
        for key in stayed {
            if let Some(sink) = registry.sinks.get(&key) {
                sink.send(updated.get());
            }
        }
    }

    /// Registers a watch; the caller holds every shard's read lock, so no
    /// change is in flight, and passes `matching`, which visits every
    /// session that matches now.
    pub(crate) fn register(
        self: &Arc<Hub>,
        program: &Program,
        options: &WatchOptions,
        matching: impl FnOnce(&mut dyn FnMut(&Session)),
    ) -> Watch {
        let mut registry = self
            .registry
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = flume::bounded(options.capacity);
        let shared = Arc::new(Shared {
            count: AtomicU64::new(0),
            missed: Mutex::new(0),
        });
        let sink = Sink {
            tx,
            shared: shared.clone(),
        };
        let mut count = 0;
        matching(&mut |s| {
            count += 1;
            if options.snapshot {
                sink.send(WatchEvent::Entered {
                    id: id_of(s),
                    properties: properties_of(s),
                });
            }
        });
        shared.count.store(count, Ordering::Relaxed);
        registry.filters.insert_program(key, program.clone());
        registry.sinks.insert(key, sink);
        self.active.fetch_add(1, Ordering::Relaxed);
        Watch {
            key,
            shared,
            rx,
            hub: Arc::downgrade(self),
            program: program.clone(),
        }
    }

    fn unregister(&self, key: u64) {
        let mut registry = self
            .registry
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if registry.sinks.remove(&key).is_some() {
            registry.filters.remove(&key);
            self.active.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// The keys whose value differs between two states of a session, with
/// their values before (`None` where the key is new).
fn previous_values(before: &Session, after: &Session) -> BTreeMap<String, Option<String>> {
    let old = properties_of(before);
    let new = properties_of(after);
    let mut out = BTreeMap::new();
    for (k, v) in &new {
        let same = match old.get(k) {
            // Roles are a set: the same roles in another order are no change.
            Some(_) if k == ROLES => before.same_roles(after),
            old => old == Some(v),
        };
        if !same {
            out.insert(k.clone(), old.get(k).cloned());
        }
    }
    for (k, v) in old {
        if !new.contains_key(&k) {
            out.insert(k, Some(v));
        }
    }
    out
}

/// A standing filter on a store: its live count and its events (SPEC 8.2).
///
/// Made by [`SessionStore::watch`](crate::SessionStore::watch). Receive
/// blocking ([`recv`](Watch::recv), [`recv_timeout`](Watch::recv_timeout)),
/// without waiting ([`try_recv`](Watch::try_recv)), or from async code
/// ([`recv_async`](Watch::recv_async), any executor). Dropping the watch
/// unregisters it.
///
/// ```
/// use session_filter::{SessionStore, WatchEvent, WatchOptions};
///
/// let store = SessionStore::new();
/// store.insert([("$SessionId", "a"), ("Department", "Ops")])?;
/// let ops = store.watch("Department is 'Ops'", WatchOptions::new())?;
/// assert_eq!(ops.count(), 1);
/// assert!(matches!(ops.try_recv(), Some(WatchEvent::Entered { id, .. }) if id == "a"));
///
/// store.insert([("$SessionId", "b"), ("Department", "Sales")])?;
/// store.change_roles("$SessionId is 'b'", &[], &["x"])?; // not a key it reads
/// assert_eq!(ops.try_recv(), None);
///
/// store.close_session("a");
/// assert_eq!(ops.count(), 0);
/// assert_eq!(ops.try_recv(), Some(WatchEvent::Left { id: "a".into(), closed: true }));
/// # Ok::<(), session_filter::Error>(())
/// ```
pub struct Watch {
    key: u64,
    shared: Arc<Shared>,
    rx: flume::Receiver<WatchEvent>,
    hub: Weak<Hub>,
    program: Program,
}

impl Watch {
    /// How many sessions match now. Exact whenever it can be observed: it
    /// changes atomically with the session changes, and when no change is in
    /// flight it equals the store's `count` of the filter.
    pub fn count(&self) -> u64 {
        self.shared.count.load(Ordering::Relaxed)
    }

    /// The watched filter.
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// The next event if one is queued (or a `Lagged` marker, once the
    /// events queued before the missing ones are read).
    pub fn try_recv(&self) -> Option<WatchEvent> {
        match self.rx.try_recv() {
            Ok(event) => Some(event),
            Err(_) => self.lag(),
        }
    }

    /// The number of missed events, once the queue is empty.
    fn lag(&self) -> Option<WatchEvent> {
        let mut missed = lock(&self.shared.missed);
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

    /// Every event queued now, without waiting.
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
            .finish()
    }
}
