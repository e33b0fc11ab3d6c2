//! Session locks (SPEC 11.6): named locks owned by sessions, granted in the
//! order they were asked for, with a fencing token (`sequence`) that grows
//! with every grant of a name.
//!
//! The whole table is one mutex: granting and releasing are atomic, so two
//! sessions never own a lock at once. Answers are collected under it and
//! queued after it is let go (queueing may close a session, which comes back
//! here).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::error::RpcError;
use crate::methods::{params, Call, Need};
use crate::security::{GlobalPermission, PathPermission};
use crate::server::Shared;
use crate::session::Client;

/// The longest lock name, in bytes.
pub const MAX_LOCK_NAME: usize = 1024;

/// When a lock is let go besides `locks.release`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// When the owning session closes.
    Session,
    /// Also when the owner's connection is lost.
    Connection,
}

impl Scope {
    /// Its name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Session => "session",
            Scope::Connection => "connection",
        }
    }

    /// The weaker of two scopes.
    fn weaker(self, other: Scope) -> Scope {
        if self == Scope::Connection || other == Scope::Connection {
            Scope::Connection
        } else {
            Scope::Session
        }
    }
}

/// Who owns a lock.
#[derive(Clone, Debug)]
struct Owner {
    session: Arc<str>,
    conn: u64,
    scope: Scope,
    sequence: u64,
}

/// A pending `locks.acquire`.
struct Waiter {
    client: Arc<Client>,
    conn: u64,
    scope: Scope,
    request: Value,
}

#[derive(Default)]
struct Lock {
    owner: Option<Owner>,
    /// The sequence of the last grant of this name.
    last: u64,
    waiters: VecDeque<Waiter>,
}

/// An answer to queue once the table is let go.
type Delivery = (Arc<Client>, u64, Value, Result<Value, RpcError>);

/// Every lock of the server.
#[derive(Default)]
pub(crate) struct LockTable {
    locks: Mutex<HashMap<String, Lock>>,
}

/// A held lock, as `locks.list` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldLock {
    /// The owner's `$SessionId`.
    pub session_id: String,
    /// Its fencing token.
    pub sequence: u64,
    /// Its scope.
    pub scope: Scope,
}

fn grant_answer(name: &str, owner: &Owner) -> Value {
    grant_answer_parts(name, owner.sequence, owner.scope)
}

/// The answer of a granted `locks.acquire`.
pub(crate) fn grant_answer_parts(name: &str, sequence: u64, scope: Scope) -> Value {
    json!({"name": name, "sequence": sequence, "scope": scope.name()})
}

impl LockTable {
    fn table(&self) -> MutexGuard<'_, HashMap<String, Lock>> {
        self.locks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Held locks, by name.
    pub(crate) fn held(&self) -> BTreeMap<String, HeldLock> {
        self.table()
            .iter()
            .filter_map(|(name, lock)| {
                let o = lock.owner.as_ref()?;
                Some((
                    name.clone(),
                    HeldLock {
                        session_id: o.session.to_string(),
                        sequence: o.sequence,
                        scope: o.scope,
                    },
                ))
            })
            .collect()
    }

    /// (locks held, acquires waiting).
    pub(crate) fn figures(&self) -> (usize, usize) {
        let table = self.table();
        let held = table.values().filter(|l| l.owner.is_some()).count();
        let waiting = table.values().map(|l| l.waiters.len()).sum();
        (held, waiting)
    }

    /// Grants the lock to the first waiter of a live session (with every
    /// other pending acquire of that session), or drops it when nobody
    /// waits.
    fn grant_next(table: &mut HashMap<String, Lock>, name: &str, out: &mut Vec<Delivery>) {
        let Some(lock) = table.get_mut(name) else {
            return;
        };
        lock.owner = None;
        while let Some(first) = lock.waiters.pop_front() {
            // A waiter whose connection is gone is cancelled (its answer
            // could not be delivered), as is one whose session closed.
            if !first.client.is_on(first.conn) {
                continue;
            }
            let session = first.client.id.clone();
            let mut mine = vec![first];
            let mut rest = VecDeque::new();
            for w in lock.waiters.drain(..) {
                if w.client.id == session {
                    mine.push(w);
                } else {
                    rest.push_back(w);
                }
            }
            lock.waiters = rest;
            let scope = mine.iter().fold(mine[0].scope, |s, w| s.weaker(w.scope));
            let conn = mine
                .iter()
                .find(|w| w.scope == Scope::Connection)
                .unwrap_or(&mine[0])
                .conn;
            lock.last += 1;
            let owner = Owner {
                session,
                conn,
                scope,
                sequence: lock.last,
            };
            for w in mine {
                out.push((w.client, w.conn, w.request, Ok(grant_answer(name, &owner))));
            }
            lock.owner = Some(owner);
            return;
        }
        if lock.waiters.is_empty() && lock.owner.is_none() {
            // Sequences live as long as the server: keep the name's last
            // grant, but not its queue.
            lock.waiters.shrink_to_fit();
        }
    }

    fn acquire(
        &self,
        client: &Arc<Client>,
        conn: u64,
        name: &str,
        scope: Scope,
        request: Value,
    ) -> Vec<Delivery> {
        let mut out = Vec::new();
        let mut table = self.table();
        // A request read just before its connection was lost (or its
        // session closed) may get here after the loss let go of the
        // connection's locks: it must not take or wait for one then, or the
        // lock would stay with an owner that is gone. The state changes
        // before the loss reaches this table, so checking it under the
        // table's mutex is enough.
        if !client.is_on(conn) {
            let error = if client.is_open() {
                RpcError::Cancelled(format!("the connection that asked for {name:?} was lost"))
            } else {
                RpcError::SessionClosed
            };
            out.push((client.clone(), conn, request, Err(error)));
            return out;
        }
        let lock = table.entry(name.to_owned()).or_default();
        match &mut lock.owner {
            Some(owner) if owner.session == client.id => {
                if scope != owner.scope {
                    owner.scope = Scope::Connection;
                    if scope == Scope::Connection {
                        owner.conn = conn;
                    }
                }
                out.push((client.clone(), conn, request, Ok(grant_answer(name, owner))));
            }
            Some(_) => lock.waiters.push_back(Waiter {
                client: client.clone(),
                conn,
                scope,
                request,
            }),
            None => {
                lock.last += 1;
                let owner = Owner {
                    session: client.id.clone(),
                    conn,
                    scope,
                    sequence: lock.last,
                };
                out.push((
                    client.clone(),
                    conn,
                    request,
                    Ok(grant_answer(name, &owner)),
                ));
                lock.owner = Some(owner);
            }
        }
        out
    }

    fn release(&self, session: &str, name: &str) -> (bool, Vec<Delivery>) {
        let mut out = Vec::new();
        let mut table = self.table();
        let owned = table
            .get(name)
            .and_then(|l| l.owner.as_ref())
            .is_some_and(|o| &*o.session == session);
        if owned {
            Self::grant_next(&mut table, name, &mut out);
        }
        (owned, out)
    }

    fn cancel(&self, session: &str, name: &str) -> Vec<Delivery> {
        let mut out = Vec::new();
        let mut table = self.table();
        if let Some(lock) = table.get_mut(name) {
            lock.waiters.retain(|w| {
                if &*w.client.id == session {
                    out.push((
                        w.client.clone(),
                        w.conn,
                        w.request.clone(),
                        Err(RpcError::Cancelled(format!(
                            "the acquire of {name:?} was cancelled"
                        ))),
                    ));
                    false
                } else {
                    true
                }
            });
        }
        out
    }

    /// Lets go of what `session` owns and waits for, where `keep` says no.
    fn drop_where(
        &self,
        session: &str,
        owned: impl Fn(&Owner) -> bool,
        waiting: impl Fn(&Waiter) -> bool,
    ) -> Vec<Delivery> {
        let mut out = Vec::new();
        let mut table = self.table();
        let names: Vec<String> = table.keys().cloned().collect();
        for name in names {
            let Some(lock) = table.get_mut(&name) else {
                continue;
            };
            lock.waiters
                .retain(|w| !(&*w.client.id == session && waiting(w)));
            let release = lock
                .owner
                .as_ref()
                .is_some_and(|o| &*o.session == session && owned(o));
            if release {
                Self::grant_next(&mut table, &name, &mut out);
            }
        }
        out
    }
}

fn deliver(shared: &Arc<Shared>, out: Vec<Delivery>) {
    for (client, conn, request, answer) in out {
        shared.answer(&client, conn, &request, &answer);
    }
}

/// The connection `conn` of session `id` is gone: its connection-scoped
/// locks go and its pending acquires are cancelled (their answers could not
/// be delivered).
pub(crate) fn connection_lost(shared: &Arc<Shared>, id: &str, conn: u64) {
    if let Some(cluster) = shared.cluster() {
        let c = cluster.clone();
        let id = id.to_owned();
        cluster.spawn(async move { c.locks.let_go(&c, &id, Some(conn)).await });
        return;
    }
    let out = shared.locks.drop_where(
        id,
        |o| o.scope == Scope::Connection && o.conn == conn,
        |w| w.conn == conn,
    );
    deliver(shared, out);
}

/// Session `id` closed: every lock it owns goes, every acquire it made is
/// dropped.
pub(crate) fn session_closed(shared: &Arc<Shared>, id: &str) {
    if let Some(cluster) = shared.cluster() {
        let c = cluster.clone();
        let id = id.to_owned();
        cluster.spawn(async move { c.locks.let_go(&c, &id, None).await });
        return;
    }
    let out = shared.locks.drop_where(id, |_| true, |_| true);
    deliver(shared, out);
}

/// A parsed `locks.*` request.
pub(crate) enum Request {
    Acquire { name: String, scope: Scope },
    Release(String),
    Cancel(String),
    List,
}

#[derive(Deserialize)]
struct AcquireParams {
    name: String,
    scope: Option<Scope>,
}

#[derive(Deserialize)]
struct NameParams {
    name: String,
}

fn checked_name(name: String) -> Result<String, RpcError> {
    if name.is_empty() || name.len() > MAX_LOCK_NAME {
        return Err(RpcError::params(format!(
            "a lock name is 1 to {MAX_LOCK_NAME} bytes; this one is {}",
            name.len()
        )));
    }
    Ok(name)
}

impl Request {
    pub(crate) fn parse(method: &str, p: Map<String, Value>) -> Result<Request, RpcError> {
        Ok(match method {
            "locks.acquire" => {
                let a: AcquireParams = params(p)?;
                Request::Acquire {
                    name: checked_name(a.name)?,
                    scope: a.scope.unwrap_or(Scope::Session),
                }
            }
            "locks.release" => Request::Release(checked_name(params::<NameParams>(p)?.name)?),
            "locks.cancel" => Request::Cancel(checked_name(params::<NameParams>(p)?.name)?),
            "locks.list" => Request::List,
            other => return Err(RpcError::MethodNotFound(other.to_owned())),
        })
    }

    pub(crate) fn needs(&self) -> Vec<Need> {
        match self {
            Request::Acquire { name, .. } => {
                vec![Need::Path(PathPermission::AcquireLock, name.clone())]
            }
            Request::List => vec![Need::Global(GlobalPermission::ViewServer)],
            Request::Release(_) | Request::Cancel(_) => Vec::new(),
        }
    }

    /// `None` when the answer is queued by the lock table (a grant).
    pub(crate) async fn apply(
        self,
        call: &mut Call<'_>,
        id: &Value,
    ) -> Option<Result<Value, RpcError>> {
        let shared = call.shared;
        if let Some(cluster) = shared.cluster() {
            return self.apply_cluster(call, cluster, id).await;
        }
        match self {
            Request::Acquire { name, scope } => {
                let out = shared
                    .locks
                    .acquire(call.client, call.conn, &name, scope, id.clone());
                deliver(shared, out);
                None
            }
            Request::Release(name) => {
                let (released, out) = shared.locks.release(&call.client.id, &name);
                deliver(shared, out);
                Some(Ok(json!({ "released": released })))
            }
            Request::Cancel(name) => {
                let out = shared.locks.cancel(&call.client.id, &name);
                let cancelled = out.len();
                deliver(shared, out);
                Some(Ok(json!({ "cancelled": cancelled })))
            }
            Request::List => {
                let server = shared.config.name.clone();
                let locks: Map<String, Value> = shared
                    .locks
                    .held()
                    .into_iter()
                    .map(|(name, l)| {
                        (
                            name,
                            json!({"session_id": l.session_id, "server": server,
                                   "sequence": l.sequence, "scope": l.scope.name()}),
                        )
                    })
                    .collect();
                Some(Ok(json!({ "locks": locks })))
            }
        }
    }

    /// The same on the cluster-wide lock table (SPEC 12).
    async fn apply_cluster(
        self,
        call: &mut Call<'_>,
        cluster: &Arc<crate::cluster::Cluster>,
        id: &Value,
    ) -> Option<Result<Value, RpcError>> {
        let shared = call.shared;
        let locks = &cluster.locks;
        match self {
            Request::Acquire { name, scope } => {
                locks
                    .acquire(
                        shared,
                        cluster,
                        call.client,
                        call.conn,
                        name,
                        scope,
                        id.clone(),
                    )
                    .await;
                None
            }
            Request::Release(name) => Some(
                locks
                    .release(cluster, &call.client.id, &name)
                    .await
                    .map(|released| json!({ "released": released })),
            ),
            Request::Cancel(name) => Some(
                locks
                    .cancel(shared, &call.client.id, &name)
                    .await
                    .map(|cancelled| json!({ "cancelled": cancelled })),
            ),
            Request::List => Some(locks.list().await),
        }
    }
}
