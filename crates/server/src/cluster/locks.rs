//! The cluster-wide lock table (SPEC 11.6, 12): one JetStream key-value
//! entry per lock name in a FILE-storage bucket (it survives a restart of
//! the broker), changed only by compare-and-set on its revision:
//!
//! `{"seq": last grant's sequence, "owner": {session, member, scope, conn}
//! or null, "waiters": [{session, member, scope, conn}, …]}`
//!
//! The owner changes only by a successful update-if-revision, so there is
//! never more than one; `seq` grows with every grant and is never reset
//! (entries are never deleted): it is the fencing token. Waiters are served
//! in the order they were appended, whatever their member. Every member
//! watches the bucket and answers its own sessions' pending acquires when
//! an entry names one of them owner. When a member is known dead (its
//! membership entry expired), the survivors take its sessions out of every
//! entry and grant on; several doing so at once is harmless, each change
//! being a compare-and-set.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::kv;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{lock, Cluster};
use crate::error::RpcError;
use crate::locks::{grant_answer_parts, Scope};
use crate::server::Shared;
use crate::session::Client;

/// How long a change keeps trying while the broker is away.
const RETRY_FOR: Duration = Duration::from_secs(30);

/// An owner or a waiter, as the bucket holds it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct Holder {
    session: String,
    member: String,
    scope: Scope,
    conn: u64,
}

/// One lock's entry.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Entry {
    seq: u64,
    owner: Option<Holder>,
    waiters: Vec<Holder>,
}

impl Entry {
    /// Gives the lock to the first waiter whose member is alive.
    fn grant_next(&mut self, alive: &BTreeSet<String>) {
        self.owner = None;
        while !self.waiters.is_empty() {
            let next = self.waiters.remove(0);
            if alive.contains(&next.member) {
                self.seq += 1;
                self.owner = Some(next);
                return;
            }
        }
    }
}

/// A local `locks.acquire` waiting for its grant.
struct Waiter {
    client: Arc<Client>,
    conn: u64,
    request: Value,
}

/// Pending acquires by (lock name, session).
type Pending = HashMap<(String, Arc<str>), Vec<Waiter>>;

/// This member's side of the cluster-wide lock table.
pub(crate) struct ClusterLocks {
    bucket: kv::Store,
    /// Pending acquires, by (name, session).
    pending: Mutex<Pending>,
    /// The names each local session owns or waits for.
    involved: Mutex<HashMap<Arc<str>, HashSet<String>>>,
}

fn key(name: &str) -> String {
    let mut k = String::with_capacity(2 + 2 * name.len());
    k.push_str("l.");
    for b in name.bytes() {
        k.push_str(&format!("{b:02x}"));
    }
    k
}

fn name_of(key: &str) -> Option<String> {
    let hex = key.strip_prefix("l.")?;
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

fn unavailable(e: impl std::fmt::Display) -> RpcError {
    RpcError::data(format!("the cluster's lock table is unavailable: {e}"))
}

impl ClusterLocks {
    pub(crate) fn new(bucket: kv::Store) -> ClusterLocks {
        ClusterLocks {
            bucket,
            pending: Mutex::new(HashMap::new()),
            involved: Mutex::new(HashMap::new()),
        }
    }

    /// Changes a lock's entry by compare-and-set: `f` says what it returns
    /// and whether it changed the entry; retried on a conflict and while
    /// the broker is away (up to [`RETRY_FOR`]).
    async fn modify<R>(
        &self,
        key: &str,
        mut f: impl FnMut(&mut Entry) -> (R, bool),
    ) -> Result<(R, Entry), RpcError> {
        let deadline = tokio::time::Instant::now() + RETRY_FOR;
        let mut last_error = String::new();
        let mut attempt: u32 = 0;
        loop {
            if attempt > 0 {
                if tokio::time::Instant::now() > deadline {
                    return Err(unavailable(last_error));
                }
                let pause = if attempt < 5 { 1 } else { 50 };
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            attempt += 1;
            let current = match self.bucket.entry(key).await {
                Ok(c) => c,
                Err(e) => {
                    last_error = e.to_string();
                    continue;
                }
            };
            let (mut entry, revision) = match current {
                Some(c) => (
                    serde_json::from_slice::<Entry>(&c.value).unwrap_or_default(),
                    Some(c.revision),
                ),
                None => (Entry::default(), None),
            };
            let (result, changed) = f(&mut entry);
            if !changed {
                return Ok((result, entry));
            }
            let Ok(value) = serde_json::to_vec(&entry) else {
                return Err(unavailable("cannot encode an entry"));
            };
            let written = match revision {
                None => self
                    .bucket
                    .create(key, value.into())
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                Some(r) => self
                    .bucket
                    .update(key, value.into(), r)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
            };
            match written {
                Ok(()) => return Ok((result, entry)),
                Err(e) => last_error = e,
            }
        }
    }

    fn involve(&self, session: &Arc<str>, name: &str) {
        lock(&self.involved)
            .entry(session.clone())
            .or_default()
            .insert(name.to_owned());
    }

    /// Answers the pending acquires of (name, session) with a grant.
    fn deliver_grant(&self, shared: &Arc<Shared>, name: &str, owner: &Holder, seq: u64) {
        let session: Arc<str> = Arc::from(owner.session.as_str());
        let waiters = lock(&self.pending)
            .remove(&(name.to_owned(), session))
            .unwrap_or_default();
        let answer = grant_answer_parts(name, seq, owner.scope);
        for w in waiters {
            shared.answer(&w.client, w.conn, &w.request, &Ok(answer.clone()));
        }
    }

    /// `locks.acquire`: answered when the grant comes.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn acquire(
        &self,
        shared: &Arc<Shared>,
        cluster: &Cluster,
        client: &Arc<Client>,
        conn: u64,
        name: String,
        scope: Scope,
        request: Value,
    ) {
        lock(&self.pending)
            .entry((name.clone(), client.id.clone()))
            .or_default()
            .push(Waiter {
                client: client.clone(),
                conn,
                request: request.clone(),
            });
        self.involve(&client.id, &name);
        let me = Holder {
            session: client.id.to_string(),
            member: cluster.name.clone(),
            scope,
            conn,
        };
        let changed = self
            .modify(&key(&name), |e| match &mut e.owner {
                Some(o) if o.session == me.session => {
                    let mut changed = false;
                    if o.scope != scope {
                        o.scope = Scope::Connection;
                        if scope == Scope::Connection {
                            o.conn = conn;
                        }
                        changed = true;
                    }
                    ((), changed)
                }
                Some(_) => match e.waiters.iter_mut().find(|w| w.session == me.session) {
                    Some(w) => {
                        if w.scope != scope {
                            w.scope = Scope::Connection;
                            if scope == Scope::Connection {
                                w.conn = conn;
                            }
                            ((), true)
                        } else {
                            ((), false)
                        }
                    }
                    None => {
                        e.waiters.push(me.clone());
                        ((), true)
                    }
                },
                None => {
                    e.seq += 1;
                    e.owner = Some(me.clone());
                    ((), true)
                }
            })
            .await;
        match changed {
            Ok(((), entry)) => {
                if let Some(owner) = entry.owner.as_ref().filter(|o| o.session == me.session) {
                    self.deliver_grant(shared, &name, owner, entry.seq);
                }
            }
            Err(e) => {
                let waiters = lock(&self.pending)
                    .remove(&(name.clone(), client.id.clone()))
                    .unwrap_or_default();
                for w in waiters {
                    shared.answer(&w.client, w.conn, &w.request, &Err(e.clone()));
                }
            }
        }
    }

    /// `locks.release`: true when `session` owned it.
    pub(crate) async fn release(
        &self,
        cluster: &Cluster,
        session: &str,
        name: &str,
    ) -> Result<bool, RpcError> {
        let alive = cluster.alive();
        let (released, _) = self
            .modify(&key(name), |e| {
                if e.owner.as_ref().is_some_and(|o| o.session == session) {
                    e.grant_next(&alive);
                    (true, true)
                } else {
                    (false, false)
                }
            })
            .await?;
        Ok(released)
    }

    /// `locks.cancel`: the session's pending acquires of `name` answer 120.
    pub(crate) async fn cancel(
        &self,
        shared: &Arc<Shared>,
        session: &Arc<str>,
        name: &str,
    ) -> Result<usize, RpcError> {
        let waiters = lock(&self.pending)
            .remove(&(name.to_owned(), session.clone()))
            .unwrap_or_default();
        self.modify(&key(name), |e| {
            let before = e.waiters.len();
            e.waiters.retain(|w| w.session != **session);
            ((), e.waiters.len() != before)
        })
        .await?;
        let n = waiters.len();
        for w in waiters {
            shared.answer(
                &w.client,
                w.conn,
                &w.request,
                &Err(RpcError::Cancelled(format!(
                    "the acquire of {name:?} was cancelled"
                ))),
            );
        }
        Ok(n)
    }

    /// Session `id` is gone (`conn: None`) or lost connection `conn`: its
    /// locks of the matching scope go, its acquires on it are dropped.
    pub(crate) async fn let_go(&self, cluster: &Cluster, id: &str, conn: Option<u64>) {
        let session: Arc<str> = Arc::from(id);
        let names: Vec<String> = {
            let mut involved = lock(&self.involved);
            match conn {
                None => involved.remove(&session).unwrap_or_default(),
                Some(_) => involved.get(&session).cloned().unwrap_or_default(),
            }
            .into_iter()
            .collect()
        };
        for name in names {
            let still_waiting = {
                let mut pending = lock(&self.pending);
                let k = (name.clone(), session.clone());
                match conn {
                    None => {
                        pending.remove(&k);
                        false
                    }
                    Some(c) => {
                        if let Some(ws) = pending.get_mut(&k) {
                            ws.retain(|w| w.conn != c);
                            if ws.is_empty() {
                                pending.remove(&k);
                                false
                            } else {
                                true
                            }
                        } else {
                            false
                        }
                    }
                }
            };
            let alive = cluster.alive();
            let _ = self
                .modify(&key(&name), |e| {
                    let before = e.waiters.len();
                    if !still_waiting {
                        e.waiters
                            .retain(|w| !(w.session == id && conn.is_none_or(|c| w.conn == c)));
                    }
                    let mut changed = e.waiters.len() != before;
                    let release = e.owner.as_ref().is_some_and(|o| {
                        o.session == id
                            && conn.is_none_or(|c| o.scope == Scope::Connection && o.conn == c)
                    });
                    if release {
                        e.grant_next(&alive);
                        changed = true;
                    }
                    ((), changed)
                })
                .await;
        }
    }

    /// Every lock entry's name.
    async fn names(&self) -> Result<Vec<String>, RpcError> {
        let mut keys = self.bucket.keys().await.map_err(unavailable)?;
        let mut names = Vec::new();
        while let Some(k) = keys.next().await {
            let k = k.map_err(unavailable)?;
            if let Some(n) = name_of(&k) {
                names.push(n);
            }
        }
        Ok(names)
    }

    /// Member `dead` is known dead: its sessions own and wait for nothing.
    pub(crate) async fn member_died(&self, _shared: &Arc<Shared>, cluster: &Cluster, dead: &str) {
        let names = match self.names().await {
            Ok(names) => names,
            Err(e) => {
                super::tracing_note(&format!("cannot list the locks: {e}"));
                return;
            }
        };
        super::tracing_note(&format!("{dead} is dead: letting go of its locks"));
        for name in names {
            let alive = cluster.alive();
            let _ = self
                .modify(&key(&name), |e| {
                    let before = e.waiters.len();
                    e.waiters.retain(|w| w.member != dead);
                    let mut changed = e.waiters.len() != before;
                    if e.owner.as_ref().is_some_and(|o| o.member == dead) {
                        e.grant_next(&alive);
                        changed = true;
                    }
                    ((), changed)
                })
                .await;
            super::tracing_note(&format!("{dead}'s hold on {name:?} let go"));
        }
    }

    /// `locks.list`: every owned lock of the cluster.
    pub(crate) async fn list(&self) -> Result<Value, RpcError> {
        let mut locks = Map::new();
        for name in self.names().await? {
            let Ok(Some(value)) = self.bucket.get(key(&name)).await else {
                continue;
            };
            let Ok(entry) = serde_json::from_slice::<Entry>(&value) else {
                continue;
            };
            if let Some(o) = entry.owner {
                locks.insert(
                    name,
                    json!({"session_id": o.session, "server": o.member,
                           "sequence": entry.seq, "scope": o.scope.name()}),
                );
            }
        }
        Ok(json!({ "locks": locks }))
    }
}

/// Watches the lock bucket: a grant to one of this member's sessions
/// answers its pending acquires; a grant to a session that closed
/// meanwhile is let go at once. Watches again after a broker restart.
pub(crate) async fn watch(shared: Arc<Shared>, cluster: Arc<Cluster>) {
    let locks = &cluster.locks;
    loop {
        if let Ok(mut entries) = locks.bucket.watch_with_history(">").await {
            while let Some(entry) = entries.next().await {
                let Ok(entry) = entry else { break };
                if entry.operation != kv::Operation::Put {
                    continue;
                }
                let (Some(name), Ok(e)) = (
                    name_of(&entry.key),
                    serde_json::from_slice::<Entry>(&entry.value),
                ) else {
                    continue;
                };
                let Some(owner) = e.owner.as_ref().filter(|o| o.member == cluster.name) else {
                    continue;
                };
                let open = shared.client(&owner.session).is_some_and(|c| c.is_open());
                if open {
                    locks.deliver_grant(&shared, &name, owner, e.seq);
                } else {
                    let cluster = cluster.clone();
                    let id = owner.session.clone();
                    tokio::spawn(async move {
                        let alive = cluster.alive();
                        let _ = cluster
                            .locks
                            .modify(&key(&name), |e| {
                                if e.owner.as_ref().is_some_and(|o| o.session == id) {
                                    e.grant_next(&alive);
                                    ((), true)
                                } else {
                                    ((), false)
                                }
                            })
                            .await;
                    });
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_any_name() {
        for name in ["a", "locks/x y", "é/∂", "a.b*>"] {
            let k = key(name);
            assert!(k
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b'l' || b == b'.'));
            assert_eq!(name_of(&k).as_deref(), Some(name));
        }
        assert_eq!(name_of("x.00"), None);
    }

    #[test]
    fn grants_skip_dead_members_and_grow_the_sequence() {
        let h = |s: &str, m: &str| Holder {
            session: s.into(),
            member: m.into(),
            scope: Scope::Session,
            conn: 1,
        };
        let mut e = Entry {
            seq: 4,
            owner: Some(h("a", "m1")),
            waiters: vec![h("b", "m2"), h("c", "m3")],
        };
        let alive: BTreeSet<String> = ["m3".to_string()].into();
        e.grant_next(&alive);
        assert_eq!(e.owner, Some(h("c", "m3")));
        assert_eq!(e.seq, 5);
        assert!(e.waiters.is_empty());
        e.grant_next(&alive);
        assert_eq!(e.owner, None);
        assert_eq!(e.seq, 5);
    }
}
