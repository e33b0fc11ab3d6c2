//! A concurrent store of sessions with bulk selection and bulk actions
//! (SPEC section 6), optionally index-accelerated.
//!
//! Sessions are spread over shards by `$SessionId`; each shard keeps its
//! sessions in stable slots behind its own read-write lock, with an index
//! from id to slot and, unless turned off, inverted indexes from property
//! values, keys and roles to slots (see the `index` module). A bulk
//! operation compiles its filter first (a bad filter touches nothing), then
//! visits the shards, in parallel when the store is large, holding one
//! shard's lock at a time. Every session therefore changes atomically: a
//! concurrent reader sees it wholly before or wholly after a change.
//!
//! # Memory
//!
//! Measured with `cargo run --release --example memory` on 1 000 000 demo
//! sessions (13 properties, 2.5 roles on average): a store without the index
//! takes about 230 resident bytes per session, the index adds about 70
//! (README, "Memory per session", has the breakdown;
//! [`SessionStore::memory`] reports it by part). A session is a 128-byte
//! record in its shard's slot array, 4 bytes in the id map (a table of bare
//! slots: the id is stored once, in the session) and its share of the
//! interner; its values that no other session has (`$ClientIP`,
//! `$StartTime`) cost the index a 9-byte entry each, the slot held in the
//! entry itself; `$SessionId` needs none (the id map answers it). Turn the
//! index off with [`StoreOptions::index`] where memory matters more than
//! selective filters.
//!
//! Memory follows the live sessions, not the peak: a shard whose free slots
//! outnumber its live ones (by 256) moves its sessions down to dense slots
//! and rebuilds its live sets, id map and index at their size, once the
//! operation that freed them lets go of the shard's lock.

mod cache;
mod change;
mod fetch;
mod ids;
mod index;
mod limits;
mod shard;
mod watch;

pub use self::change::{ClosedSession, PropertyChange};
pub use self::fetch::{FetchPage, FetchRequest, FetchedSession};
pub use self::limits::{DataLimit, DataLimits};

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};

use ahash::RandomState;
use rayon::prelude::*;
use roaring::RoaringBitmap;

use self::cache::FilterCache;
use self::index::OpStats;
pub use self::shard::StoreMemory;
use self::shard::{Shard, ShardWriter};
use self::watch::{Hub, SnapshotReader};
pub use self::watch::{PropertyMap, Watch, WatchEvent, WatchOptions};
use crate::error::Error;
use crate::session::{RoleChange, Session};
use crate::syntax::Limits;
use crate::util::properties::{validate_user_key, SESSION_ID};
use crate::vm::Program;

/// How a bulk operation runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Execution {
    /// The index where the planner finds it pays (when the store has one),
    /// and shards in parallel when the store holds at least
    /// [`StoreOptions::parallel_threshold`] sessions.
    #[default]
    Auto,
    /// Scan every session, one shard after another on the calling thread.
    ScanSerial,
    /// Scan every session, shards in parallel on the rayon thread pool.
    ScanParallel,
    /// The index where the planner finds it pays, one shard after another.
    Indexed,
}

/// Settings of a [`SessionStore`].
#[derive(Clone, Debug)]
pub struct StoreOptions {
    shards: usize,
    limits: Limits,
    parallel_threshold: usize,
    index: bool,
    /// Bytes of the filter cache.
    filter_cache: usize,
    data_limits: DataLimits,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions {
            shards: 32,
            limits: Limits::default(),
            parallel_threshold: 20_000,
            index: true,
            filter_cache: cache::DEFAULT_BYTES,
            data_limits: DataLimits::default(),
        }
    }
}

impl StoreOptions {
    /// The default options: 32 shards, default [`Limits`], parallel bulk
    /// operations from 20 000 sessions up, index on, a 2 MiB cache of
    /// compiled filters (see [`StoreOptions::filter_cache_bytes`]), the
    /// default [`DataLimits`].
    pub fn new() -> StoreOptions {
        StoreOptions::default()
    }

    /// Keep inverted indexes (the default) so that selective filters touch
    /// only the sessions they select, at a memory cost per session (see the
    /// module docs); `false` makes every bulk operation a scan.
    pub fn index(mut self, on: bool) -> StoreOptions {
        self.index = on;
        self
    }

    /// The number of shards (at least 1). More shards mean less contention
    /// between writers and more parallelism in bulk operations.
    pub fn shards(mut self, shards: usize) -> StoreOptions {
        self.shards = shards.clamp(1, 1 << 16);
        self
    }

    /// The limits filter strings are parsed with.
    pub fn limits(mut self, limits: Limits) -> StoreOptions {
        self.limits = limits;
        self
    }

    /// The bounds on the data the store accepts: roles and properties per
    /// session and per change, key and value lengths, keys per fetch (see
    /// [`DataLimits`] for the defaults).
    pub fn data_limits(mut self, limits: DataLimits) -> StoreOptions {
        self.data_limits = limits;
        self
    }

    /// The store size from which [`Execution::Auto`] runs in parallel.
    pub fn parallel_threshold(mut self, sessions: usize) -> StoreOptions {
        self.parallel_threshold = sessions;
        self
    }
}

/// Sessions keyed by `$SessionId`, with bulk operations by filter.
///
/// All methods take `&self`; the store is `Send + Sync` and meant to be
/// shared with an `Arc`.
///
/// ```
/// use session_filter::SessionStore;
///
/// let store = SessionStore::new();
/// store.insert([("$SessionId", "s1"), ("$Principal", "alice"), ("$Roles", r#""client""#)])?;
/// store.insert([("$SessionId", "s2"), ("$Principal", "bob"), ("Department", "Accounts")])?;
///
/// assert_eq!(store.count("$Principal in ['alice', 'bob']")?, 2);
/// assert_eq!(store.change_roles("Department is 'Accounts'", &[], &["trader"])?, 1);
/// assert_eq!(store.select("hasRoles ['trader']")?, ["s2"]);
/// assert_eq!(store.close("$Principal is 'alice'")?, 1);
/// assert_eq!(store.len(), 1);
/// # Ok::<(), session_filter::Error>(())
/// ```
pub struct SessionStore {
    /// Shared with the watches, which read their snapshots from them.
    shards: Arc<[RwLock<Shard>]>,
    hub: Arc<Hub>,
    hasher: RandomState,
    options: StoreOptions,
    filters: FilterCache,
}

impl fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionStore")
            .field("sessions", &self.len())
            .field("options", &self.options)
            .finish()
    }
}

impl Default for SessionStore {
    fn default() -> SessionStore {
        SessionStore::new()
    }
}

impl SessionStore {
    /// An empty store with the default options.
    pub fn new() -> SessionStore {
        SessionStore::with_options(StoreOptions::default())
    }

    /// An empty store with these options.
    pub fn with_options(options: StoreOptions) -> SessionStore {
        let hub = Arc::new(Hub::default());
        SessionStore {
            shards: (0..options.shards)
                .map(|number| RwLock::new(Shard::new(number, options.index, hub.clone())))
                .collect(),
            hub,
            hasher: RandomState::new(),
            filters: FilterCache::new(options.filter_cache),
            options,
        }
    }

    fn shard_of(&self, id: &str) -> &RwLock<Shard> {
        let i = (self.hasher.hash_one(id) % self.shards.len() as u64) as usize;
        &self.shards[i]
    }

    // A panic elsewhere while a shard was locked leaves it consistent (every
    // change to a shard is completed before anything can panic), so poisoning
    // is ignored.
    fn read(shard: &RwLock<Shard>) -> RwLockReadGuard<'_, Shard> {
        shard.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The shard, locked for writing; it compacts when the lock is let go
    /// if removals left it sparse.
    fn write(shard: &RwLock<Shard>) -> ShardWriter<'_> {
        ShardWriter::new(shard.write().unwrap_or_else(PoisonError::into_inner))
    }

    /// Compiles a filter with the store's limits; the error is the positioned
    /// filter error. A filter text compiled before is taken from the store's
    /// filter cache (see [`StoreOptions::filter_cache_bytes`]); every method that
    /// takes a filter as text compiles it here.
    pub fn compile(&self, filter: &str) -> Result<Program, Error> {
        self.filters.compile(filter, &self.options.limits)
    }

    /// Adds a session. It must have a `$SessionId` no other session in the
    /// store has; any `$` key is accepted, user keys are validated, and
    /// `$Roles` must be a roles string; the session must be within the
    /// store's [`DataLimits`]. On an error nothing changes.
    pub fn insert<I, K, V>(&self, props: I) -> Result<(), Error>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let limits = &self.options.data_limits;
        let mut count = 0;
        // Checked before anything is interned, so an oversized input costs
        // nothing but the check.
        let props: Vec<(K, V)> = props.into_iter().collect();
        for (key, value) in &props {
            count += 1;
            limits.check_pair(key.as_ref(), value.as_ref())?;
        }
        limits.check(DataLimit::PropertiesPerSession, count)?;
        let session = Session::new(props)?;
        limits.check_session_size(&session)?;
        for role in session.roles() {
            limits.check(DataLimit::ValueLength, role.len())?;
        }
        self.insert_checked(session)
    }

    /// Adds a session built beforehand; the rules of [`SessionStore::insert`].
    pub fn insert_session(&self, session: Session) -> Result<(), Error> {
        self.options.data_limits.check_session(&session)?;
        self.insert_checked(session)
    }

    /// Adds a session within the limits.
    fn insert_checked(&self, session: Session) -> Result<(), Error> {
        let id = session.id().ok_or(Error::MissingSessionId)?;
        let id_sym = session.get_sym(SESSION_ID).ok_or(Error::MissingSessionId)?;
        let mut shard = Self::write(self.shard_of(&id));
        if shard.contains_id(id_sym) {
            return Err(Error::DuplicateSession(id.to_string()));
        }
        shard.insert(session);
        Ok(())
    }

    /// The number of sessions.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| Self::read(s).len()).sum()
    }

    /// True when the store holds no session.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn parallel(&self, execution: Execution) -> bool {
        match execution {
            Execution::ScanSerial | Execution::Indexed => false,
            Execution::ScanParallel => true,
            Execution::Auto => {
                self.shards.len() > 1 && self.len() >= self.options.parallel_threshold
            }
        }
    }

    /// True when `execution` may use the index.
    fn indexed(execution: Execution) -> bool {
        matches!(execution, Execution::Auto | Execution::Indexed)
    }

    /// Runs `f` on every shard, in parallel or not, and sums the results.
    fn each_shard<F>(&self, execution: Execution, f: F) -> usize
    where
        F: Fn(&RwLock<Shard>) -> usize + Sync + Send,
    {
        self.map_shards(execution, f).into_iter().sum()
    }

    /// Runs `f` on every shard, in parallel or not, and collects the results
    /// in shard order.
    fn map_shards<T, F>(&self, execution: Execution, f: F) -> Vec<T>
    where
        T: Send,
        F: Fn(&RwLock<Shard>) -> T + Sync + Send,
    {
        if self.parallel(execution) {
            self.shards.par_iter().map(f).collect()
        } else {
            self.shards.iter().map(f).collect()
        }
    }

    /// How many sessions match `filter`.
    pub fn count(&self, filter: &str) -> Result<usize, Error> {
        Ok(self.count_compiled(&self.compile(filter)?))
    }

    /// How many sessions match a compiled filter.
    pub fn count_compiled(&self, program: &Program) -> usize {
        self.count_with(program, Execution::Auto)
    }

    /// How many sessions match, run as `execution` says.
    pub fn count_with(&self, program: &Program, execution: Execution) -> usize {
        let use_index = Self::indexed(execution);
        self.each_shard(execution, |shard| {
            Self::read(shard).count(program, use_index)
        })
    }

    /// The `$SessionId`s of the sessions that match `filter`, sorted (byte
    /// order), so the same store gives the same list every time.
    pub fn select(&self, filter: &str) -> Result<Vec<String>, Error> {
        Ok(self.select_compiled(&self.compile(filter)?))
    }

    /// [`SessionStore::select`] with a compiled filter.
    pub fn select_compiled(&self, program: &Program) -> Vec<String> {
        self.select_with(program, Execution::Auto)
    }

    /// [`SessionStore::select`], run as `execution` says.
    pub fn select_with(&self, program: &Program, execution: Execution) -> Vec<String> {
        let use_index = Self::indexed(execution);
        let ids = |shard: &RwLock<Shard>| -> Vec<String> {
            let shard = Self::read(shard);
            shard
                .matching(program, use_index)
                .into_iter()
                .filter_map(|slot| shard.session(slot).id().map(|id| id.to_string()))
                .collect()
        };
        let mut ids: Vec<String> = self
            .map_shards(execution, ids)
            .into_iter()
            .flatten()
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Removes every session that matches `filter`; returns how many.
    pub fn close(&self, filter: &str) -> Result<usize, Error> {
        Ok(self.close_compiled(&self.compile(filter)?))
    }

    /// [`SessionStore::close`] with a compiled filter.
    pub fn close_compiled(&self, program: &Program) -> usize {
        self.close_with(program, Execution::Auto)
    }

    /// [`SessionStore::close`], run as `execution` says.
    pub fn close_with(&self, program: &Program, execution: Execution) -> usize {
        let use_index = Self::indexed(execution);
        self.each_shard(execution, |shard| {
            let mut shard = Self::write(shard);
            let matches = shard.matching(program, use_index);
            for &slot in &matches {
                shard.remove(slot);
            }
            matches.len()
        })
    }

    /// Removes the session with this id; true if there was one, false
    /// (and no change) when no session has it.
    pub fn close_session(&self, id: &str) -> bool {
        let mut shard = Self::write(self.shard_of(id));
        match shard.slot(id) {
            Some(slot) => {
                shard.remove(slot);
                true
            }
            None => false,
        }
    }

    /// For every session that matches `filter`: removes `roles_to_remove`,
    /// then adds `roles_to_add` (a role in both ends up present), and writes
    /// `$Roles`. Returns the number of matching sessions, changed or not.
    pub fn change_roles(
        &self,
        filter: &str,
        roles_to_remove: &[&str],
        roles_to_add: &[&str],
    ) -> Result<usize, Error> {
        let program = self.compile(filter)?;
        self.change_roles_compiled(&program, roles_to_remove, roles_to_add)
    }

    /// [`SessionStore::change_roles`] with a compiled filter.
    pub fn change_roles_compiled(
        &self,
        program: &Program,
        roles_to_remove: &[&str],
        roles_to_add: &[&str],
    ) -> Result<usize, Error> {
        self.change_roles_with(program, roles_to_remove, roles_to_add, Execution::Auto)
    }

    /// [`SessionStore::change_roles`], run as `execution` says.
    ///
    /// A change that would give a matching session more roles than the
    /// store's [`DataLimits`] allow is an error and changes nothing.
    pub fn change_roles_with(
        &self,
        program: &Program,
        roles_to_remove: &[&str],
        roles_to_add: &[&str],
        execution: Execution,
    ) -> Result<usize, Error> {
        let change = self.role_change(roles_to_remove, roles_to_add)?;
        self.change_matching(
            program,
            execution,
            change.adds(),
            |s| {
                self.options
                    .data_limits
                    .check(DataLimit::RolesPerSession, change.roles_after(s))
            },
            |shard, slot| shard.change_roles(slot, &change),
        )
    }

    /// A role change checked against the store's limits and interned.
    fn role_change(&self, remove: &[&str], add: &[&str]) -> Result<RoleChange, Error> {
        let limits = &self.options.data_limits;
        limits.check(DataLimit::RolesPerChange, remove.len() + add.len())?;
        for role in remove.iter().chain(add) {
            limits.check(DataLimit::ValueLength, role.len())?;
        }
        RoleChange::new(remove, add)
    }

    /// Applies a change to every session `program` matches, all or none, and
    /// returns how many match. When the change can make a session grow
    /// (`grows`), `fits` must hold for every matching session before any is
    /// changed: every shard is locked for writing, in order, while the
    /// change is checked and applied. A change that cannot make a session
    /// grow cannot break a limit and runs shard by shard, as `execution`
    /// says.
    fn change_matching(
        &self,
        program: &Program,
        execution: Execution,
        grows: bool,
        fits: impl Fn(&Session) -> Result<(), Error>,
        apply: impl Fn(&mut ShardWriter<'_>, u32) + Sync + Send,
    ) -> Result<usize, Error> {
        let use_index = Self::indexed(execution);
        if !grows {
            return Ok(self.each_shard(execution, |shard| {
                let mut shard = Self::write(shard);
                let matches = shard.matching(program, use_index);
                for &slot in &matches {
                    apply(&mut shard, slot);
                }
                matches.len()
            }));
        }
        let mut shards: Vec<ShardWriter<'_>> = self.shards.iter().map(Self::write).collect();
        let matches: Vec<Vec<u32>> = shards
            .iter()
            .map(|shard| shard.matching(program, use_index))
            .collect();
        for (shard, slots) in shards.iter().zip(&matches) {
            for &slot in slots {
                fits(shard.session(slot))?;
            }
        }
        for (shard, slots) in shards.iter_mut().zip(&matches) {
            for &slot in slots {
                apply(shard, slot);
            }
        }
        Ok(matches.iter().map(Vec::len).sum())
    }

    /// [`SessionStore::change_roles`] for the one session with this id.
    pub fn change_session_roles(
        &self,
        id: &str,
        roles_to_remove: &[&str],
        roles_to_add: &[&str],
    ) -> Result<(), Error> {
        let change = self.role_change(roles_to_remove, roles_to_add)?;
        let mut shard = Self::write(self.shard_of(id));
        let slot = shard
            .slot(id)
            .ok_or_else(|| Error::UnknownSession(id.to_owned()))?;
        self.options.data_limits.check(
            DataLimit::RolesPerSession,
            change.roles_after(shard.session(slot)),
        )?;
        shard.change_roles(slot, &change);
        Ok(())
    }

    /// Sets user properties of one session: all of them, or none when a key
    /// is invalid, fixed (`$…`) or given twice, the id is unknown, or a
    /// [`DataLimits`] bound would be passed.
    ///
    /// It takes user keys only and stores values as given (no normalising);
    /// it is [`SessionStore::change_session_properties`] with a change of
    /// sets, which also sets the fixed properties that may be set.
    pub fn set_properties<I, K, V>(&self, id: &str, props: I) -> Result<(), Error>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut change = PropertyChange::new();
        for (key, value) in props {
            let key = key.as_ref();
            check_user_key(key)?;
            if change.names(key) {
                return Err(Error::DuplicateKey(key.to_owned()));
            }
            change = change.set(key, value.as_ref());
        }
        self.change_session_properties(id, &change).map(drop)
    }

    /// Removes user properties of one session (keys it lacks are fine): all
    /// of them, or none when a key is invalid or fixed, the id is unknown,
    /// or more keys are named than a change may name.
    ///
    /// It takes user keys only; it is
    /// [`SessionStore::change_session_properties`] with a change of removals.
    pub fn remove_properties(&self, id: &str, keys: &[&str]) -> Result<(), Error> {
        let mut change = PropertyChange::new();
        for key in keys {
            check_user_key(key)?;
            change = change.remove(*key);
        }
        self.change_session_properties(id, &change).map(drop)
    }

    /// The properties of the session with this id (`$Roles` as a canonical
    /// roles string), or `None` when no session has it (a lookup, as a
    /// map's `get`; the operations that change a session by id treat an
    /// unknown id as an error).
    pub fn get(&self, id: &str) -> Option<BTreeMap<String, String>> {
        let shard = Self::read(self.shard_of(id));
        let slot = shard.slot(id)?;
        Some(shard.session(slot).properties().into_iter().collect())
    }

    /// A copy of the session with this id, or `None`.
    pub fn get_session(&self, id: &str) -> Option<Session> {
        let shard = Self::read(self.shard_of(id));
        shard.slot(id).map(|slot| shard.session(slot).clone())
    }

    /// Calls `f` with every session, shard by shard.
    ///
    /// Each shard is copied under its read lock and `f` runs after the lock
    /// is released, so `f` may call back into the store (even change it)
    /// without deadlocking. A session changed or closed meanwhile is seen as
    /// it was when its shard was copied.
    ///
    /// ```
    /// use session_filter::SessionStore;
    /// let store = SessionStore::new();
    /// store.insert([("$SessionId", "a"), ("Tier", "gold")])?;
    /// store.insert([("$SessionId", "b")])?;
    /// // Re-entering the store from the callback is fine.
    /// store.for_each_session(|s| {
    ///     if s.get("Tier").is_none() {
    ///         store.close_session(&s.id().unwrap());
    ///     }
    /// });
    /// assert_eq!(store.select("all")?, ["a"]);
    /// # Ok::<(), session_filter::Error>(())
    /// ```
    pub fn for_each_session(&self, mut f: impl FnMut(&Session)) {
        for shard in self.shards.iter() {
            let copies: Vec<Session> = Self::read(shard)
                .sessions()
                .map(|(_, s)| s.clone())
                .collect();
            copies.iter().for_each(&mut f);
        }
    }

    /// Registers a standing filter and returns its [`Watch`]: a live count
    /// and the events of the sessions it matches (SPEC 8.2). Unless
    /// `options` skips it, the watch first reports every session that
    /// matches now, then every later change, with nothing missed or
    /// reported twice in between. A bad filter is an error.
    ///
    /// Registration visits the shards one at a time, under each one's read
    /// lock only long enough to count its matches and note their ids; the
    /// snapshot's events are built later, a chunk at a time, as the watch's
    /// `recv` methods read them (see [`Watch`]). A watch never blocks the
    /// writers after that (see [`WatchOptions::capacity`]).
    pub fn watch(&self, filter: &str, options: WatchOptions) -> Result<Watch, Error> {
        Ok(self.watch_compiled(&self.compile(filter)?, options))
    }

    /// [`SessionStore::watch`] with a compiled filter.
    pub fn watch_compiled(&self, program: &Program, options: WatchOptions) -> Watch {
        let shards = Arc::downgrade(&self.shards);
        let reader: SnapshotReader = Box::new(move |state, out| {
            let Some(shards) = shards.upgrade() else {
                return false;
            };
            let Some(number) = state.next_pending_shard() else {
                return true;
            };
            let Some(shard) = shards.get(number) else {
                return false;
            };
            let shard = Self::read(shard);
            state.take_chunk(number, |id| shard.session_by_id(id), out);
            true
        });
        let watch = self
            .hub
            .register(program, &options, self.shards.len(), reader);
        for shard in self.shards.iter() {
            let shard = Self::read(shard);
            let (count, ids) = if options.reports_snapshot() {
                let ids: RoaringBitmap = shard
                    .matching(program, true)
                    .into_iter()
                    .map(|slot| shard.session(slot).id_sym().as_u32())
                    .collect();
                (ids.len(), Some(ids))
            } else {
                (shard.count(program, true) as u64, None)
            };
            watch.state().cut(shard.number(), count, ids);
        }
        watch
    }

    /// Sends `signal` to every watch that matches the session with this id
    /// now, as a [`WatchEvent::Signal`] carrying its properties, in order
    /// with the session's other events (it is delivered under the session's
    /// shard lock, as changes are). A server uses it for state that is not
    /// a property, such as `"disconnected"` and `"reconnected"`. An unknown
    /// id is an error naming it.
    ///
    /// ```
    /// use session_filter::{Error, SessionStore, WatchEvent, WatchOptions};
    /// let store = SessionStore::new();
    /// store.insert([("$SessionId", "a"), ("Desk", "FX")])?;
    /// let w = store.watch("all", WatchOptions::new().skip_snapshot())?;
    /// store.signal_session("a", "disconnected")?;
    /// assert!(matches!(w.try_recv(), Some(WatchEvent::Signal { id, signal: "disconnected", .. }) if &*id == "a"));
    /// assert_eq!(store.signal_session("zz", "x"), Err(Error::UnknownSession("zz".into())));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn signal_session(&self, id: &str, signal: &'static str) -> Result<(), Error> {
        let shard = Self::write(self.shard_of(id));
        let slot = shard
            .slot(id)
            .ok_or_else(|| Error::UnknownSession(id.to_owned()))?;
        shard.signal(slot, signal);
        Ok(())
    }

    /// True when the store keeps inverted indexes.
    pub fn is_indexed(&self) -> bool {
        self.options.index
    }

    /// Heap bytes the inverted indexes hold, roughly (0 without them).
    pub fn index_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| Self::read(s).index_bytes())
            .sum()
    }

    /// What the store's own structures hold now, by part (see
    /// [`StoreMemory`]); the strings are the interner's
    /// ([`interner_memory`](crate::interner_memory)).
    pub fn memory(&self) -> StoreMemory {
        let mut m = StoreMemory::default();
        for shard in self.shards.iter() {
            Self::read(shard).add_memory(&mut m);
        }
        m
    }

    /// How the store would run `filter`: the compiled program, then for each
    /// instruction how the shards answered it (from the index, or by testing
    /// the sessions that reach it) and how many sessions reached it and
    /// passed. The planner decides per shard at run time; this runs it.
    ///
    /// ```
    /// use session_filter::SessionStore;
    /// let store = SessionStore::new();
    /// for i in 0..1000 {
    ///     store.insert([("$SessionId", format!("s{i}")), ("n", (i % 10).to_string())])?;
    /// }
    /// let plan = store.explain("n is '7'")?;
    /// assert!(plan.contains("0: index on 32 shards, 1000 reached, 100 passed"), "{plan}");
    /// # Ok::<(), session_filter::Error>(())
    /// ```
    pub fn explain(&self, filter: &str) -> Result<String, Error> {
        let program = self.compile(filter)?;
        let mut out = program.explain();
        if !self.options.index {
            out.push_str("plan: scan every session (this store has no index)\n");
            return Ok(out);
        }
        let mut stats = vec![OpStats::default(); program.op_count()];
        let mut scanned = 0;
        for shard in self.shards.iter() {
            scanned += usize::from(Self::read(shard).explain(&program, &mut stats));
        }
        let _ = writeln!(
            out,
            "plan: {} of {} shards use the index, {} scan every session",
            self.shards.len() - scanned,
            self.shards.len(),
            scanned
        );
        for (pc, st) in stats.iter().enumerate() {
            let mut how = Vec::new();
            if st.by_index > 0 {
                how.push(format!("index on {} shards", st.by_index));
            }
            if st.by_test > 0 {
                how.push(format!("tests on {} shards", st.by_test));
            }
            if how.is_empty() {
                how.push("not reached".into());
            }
            let _ = writeln!(
                out,
                "{pc}: {}, {} reached, {} passed",
                how.join(" and "),
                st.reached,
                st.held
            );
        }
        Ok(out)
    }
}

fn check_user_key(key: &str) -> Result<(), Error> {
    if key.starts_with('$') {
        return Err(Error::NotUserKey(key.to_owned()));
    }
    validate_user_key(key).map_err(Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<SessionStore>();
    }

    #[test]
    fn remove_at_keeps_the_index_right() {
        let store = SessionStore::with_options(StoreOptions::new().shards(1));
        for i in 0..10 {
            store
                .insert([("$SessionId", format!("r{i}")), ("n", (i % 3).to_string())])
                .unwrap();
        }
        assert_eq!(store.close("n is '0'").unwrap(), 4);
        for i in 0..10 {
            let id = format!("r{i}");
            assert_eq!(store.get(&id).is_some(), i % 3 != 0, "{id}");
            if i % 3 != 0 {
                assert_eq!(store.get(&id).unwrap()["$SessionId"], id);
            }
        }
        assert!(store.close_session("r1"));
        assert!(!store.close_session("r1"));
        assert_eq!(store.len(), 5);
    }
}
