//! The session server in a cluster over NATS (SPEC section 12).
//!
//! Members register in a JetStream key-value bucket,
//! `session-server-<cluster>` (memory storage; an entry expires
//! [`FORGET_AFTER`] after its last refresh, so a member that dies is known
//! dead about 10 s later). An entry is the member's name (its
//! `$ServerName`, the key, created only if absent: names are unique), the
//! first part of its session ids and the subjects it answers on. Every
//! member watches the bucket: that roster routes requests by id and says
//! which members a request by filter waits for.
//!
//! Subjects (core NATS request/reply; replies only to `_INBOX.` subjects):
//! - `session-server.<cluster>.member.<name>`: requests by id for that
//!   member's sessions;
//! - `session-server.<cluster>.all`: requests by filter, answered by every
//!   member but the sender.
//!
//! A request carries an id; a member that sees the same id again answers
//! again (from the answers it remembers) without applying it twice.
//!
//! The lock table is cluster-wide ([`locks`]): a FILE-storage bucket, so
//! it survives a restart of the broker.

pub(crate) mod listen;
pub(crate) mod locks;
pub(crate) mod messages;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use async_nats::jetstream::{self, kv};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio::sync::{broadcast, Semaphore};
use tokio::task::AbortHandle;

use crate::error::RpcError;
use crate::methods::{After, Call, Request};
use crate::server::Shared;
use crate::session::{Client, State};

/// How long after its last refresh a member is still expected; then it is
/// known dead.
pub const FORGET_AFTER: Duration = Duration::from_secs(10);

/// How often a member rewrites its entry.
const REFRESH: Duration = Duration::from_secs(1);

/// How often the roster is checked for members that died.
const DEATH_CHECK: Duration = Duration::from_millis(200);

/// How many requests a member serves at once.
const CONCURRENCY: usize = 64;

/// How many answers to requests a member remembers (same-id dedup).
const REMEMBERED: usize = 4096;

/// The reply subjects a member answers on.
const REPLY_PREFIX: &str = "_INBOX.";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A member's entry in the membership bucket.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Entry {
    name: String,
    server_part: String,
    subjects: Vec<String>,
}

/// What the roster knows of one member.
#[derive(Clone, Debug)]
struct Known {
    part: String,
    heard: SystemTime,
}

/// Names of the cluster's subjects and buckets.
fn member_subject(cluster: &str, name: &str) -> String {
    format!("session-server.{cluster}.member.{name}")
}

fn all_subject(cluster: &str) -> String {
    format!("session-server.{cluster}.all")
}

fn members_bucket(cluster: &str) -> String {
    format!("session-server-{cluster}")
}

fn locks_bucket(cluster: &str) -> String {
    format!("session-server-{cluster}-locks")
}

/// A cluster or member name: 1 to 64 ASCII letters, digits, `-`, `_`
/// (names become parts of subjects and bucket keys).
pub(crate) fn check_name(what: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid {what} name {name:?}: expected 1 to 64 ASCII letters, digits, '-' and '_'"
        ))
    }
}

/// A request between members.
#[derive(Debug, Serialize, Deserialize)]
struct Wire {
    /// The request id (dedup).
    rid: String,
    /// The sending member.
    from: String,
    /// The calling session (on the sending member).
    caller: String,
    method: String,
    params: Map<String, Value>,
    /// For `clients.fetch`: the rows wanted, beyond the 10 000 of one page.
    #[serde(default)]
    rows: Option<usize>,
}

/// The answers a member remembers, by request id.
#[derive(Default)]
struct Recent {
    order: VecDeque<String>,
    answers: HashMap<String, Vec<u8>>,
}

/// One member's view of, and place in, the cluster.
pub(crate) struct Cluster {
    pub(crate) nats: async_nats::Client,
    pub(crate) cluster: String,
    pub(crate) name: String,
    part: String,
    pub(crate) timeout: Duration,
    roster: Mutex<BTreeMap<String, Known>>,
    recent: Mutex<Recent>,
    pub(crate) locks: locks::ClusterLocks,
    runtime: tokio::runtime::Handle,
    /// The name of each member known dead, when it is.
    pub(crate) deaths: broadcast::Sender<String>,
    /// The name of each member that joins, when it is first seen.
    pub(crate) joins: broadcast::Sender<String>,
    /// Watches run here for listeners on other members, by subject.
    remote_listeners: Mutex<HashMap<String, AbortHandle>>,
}

/// Opens a bucket, creating its stream by hand when absent (as
/// `create_key_value` would, which needs nats-server 2.10).
async fn open_bucket(
    nats: &async_nats::Client,
    bucket: &str,
    storage: jetstream::stream::StorageType,
    max_age: Duration,
) -> Result<kv::Store, String> {
    let js = jetstream::new(nats.clone());
    if let Ok(store) = js.get_key_value(bucket).await {
        return Ok(store);
    }
    let config = jetstream::stream::Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_age,
        storage,
        max_message_size: 1 << 20,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: jetstream::stream::DiscardPolicy::New,
        num_replicas: 1,
        ..Default::default()
    };
    let created = js.create_stream(config).await;
    js.get_key_value(bucket).await.map_err(|open| match created {
        Err(create) => format!(
            "NATS: cannot create the bucket {bucket} (is JetStream on? run nats-server with -js): {create}"
        ),
        Ok(_) => format!("NATS: cannot open the bucket {bucket}: {open}"),
    })
}

impl Cluster {
    /// Joins `cluster` over the NATS server at `url` as the member named
    /// by the server's `[server] name`, and starts serving the others.
    pub(crate) async fn start(
        shared: &Arc<Shared>,
        url: &str,
        cluster: &str,
        timeout: Duration,
    ) -> Result<Arc<Cluster>, String> {
        let name = shared.config.name.clone();
        check_name("cluster", cluster)?;
        check_name("member", &name)?;
        let nats = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(|e| format!("cannot reach the NATS server at {url}: {e}"))?;
        let members = open_bucket(
            &nats,
            &members_bucket(cluster),
            jetstream::stream::StorageType::Memory,
            FORGET_AFTER,
        )
        .await?;
        let lock_bucket = open_bucket(
            &nats,
            &locks_bucket(cluster),
            jetstream::stream::StorageType::File,
            Duration::ZERO,
        )
        .await?;
        let direct = member_subject(cluster, &name);
        let all = all_subject(cluster);
        let sub_direct = nats
            .subscribe(direct.clone())
            .await
            .map_err(|e| format!("NATS: cannot subscribe: {e}"))?;
        let sub_all = nats
            .subscribe(all.clone())
            .await
            .map_err(|e| format!("NATS: cannot subscribe: {e}"))?;
        nats.flush()
            .await
            .map_err(|e| format!("NATS: cannot flush: {e}"))?;
        let entry = Entry {
            name: name.clone(),
            server_part: shared.server_part_hex(),
            subjects: vec![direct, all],
        };
        let payload = serde_json::to_vec(&entry).map_err(|e| e.to_string())?;
        members
            .create(&name, payload.clone().into())
            .await
            .map_err(|e| match e.kind() {
                kv::CreateErrorKind::AlreadyExists => format!(
                    "a member named {name:?} is registered in cluster {cluster:?} already (if it \
                     died, its entry expires {} s after its last refresh)",
                    FORGET_AFTER.as_secs()
                ),
                _ => format!("NATS: cannot register in the membership bucket: {e}"),
            })?;
        let me = Arc::new(Cluster {
            nats: nats.clone(),
            cluster: cluster.to_owned(),
            name: name.clone(),
            part: shared.server_part_hex(),
            timeout,
            roster: Mutex::new(BTreeMap::new()),
            recent: Mutex::new(Recent::default()),
            locks: locks::ClusterLocks::new(lock_bucket),
            runtime: tokio::runtime::Handle::current(),
            deaths: broadcast::channel(64).0,
            joins: broadcast::channel(64).0,
            remote_listeners: Mutex::new(HashMap::new()),
        });
        let synced = Arc::new(tokio::sync::Notify::new());
        tokio::spawn(me.clone().watch_roster(members.clone(), synced.clone()));
        // Wait (a little) for the roster's current entries.
        let _ = tokio::time::timeout(Duration::from_secs(3), synced.notified()).await;
        tokio::spawn(me.clone().refresh(shared.clone(), members.clone(), payload));
        tokio::spawn(me.clone().detect_deaths(shared.clone(), members));
        tokio::spawn(serve(shared.clone(), me.clone(), sub_direct, false));
        tokio::spawn(serve(shared.clone(), me.clone(), sub_all, true));
        tokio::spawn(locks::watch(shared.clone(), me.clone()));
        Ok(me)
    }

    /// Rewrites the entry every [`REFRESH`]; recreates the bucket when the
    /// broker lost it (a restart). A member that could not refresh for
    /// [`FORGET_AFTER`] (a long pause, a partition) was declared dead by the
    /// others, who reported its sessions closed and granted its locks on:
    /// it closes its sessions (`CONNECTION_LOST`) and rejoins empty.
    async fn refresh(
        self: Arc<Self>,
        shared: Arc<Shared>,
        mut members: kv::Store,
        payload: Vec<u8>,
    ) {
        let mut last_ok = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(REFRESH).await;
            if last_ok.elapsed() >= FORGET_AFTER {
                tracing_note("this member was declared dead: closing its sessions, rejoining");
                for client in shared.all_clients() {
                    shared.close(&client.id, crate::session::CloseReason::ConnectionLost);
                }
            }
            if members
                .put(&self.name, payload.clone().into())
                .await
                .is_ok()
            {
                last_ok = tokio::time::Instant::now();
                continue;
            }
            if let Ok(store) = open_bucket(
                &self.nats,
                &members_bucket(&self.cluster),
                jetstream::stream::StorageType::Memory,
                FORGET_AFTER,
            )
            .await
            {
                members = store;
                if members
                    .put(&self.name, payload.clone().into())
                    .await
                    .is_ok()
                {
                    last_ok = tokio::time::Instant::now();
                }
            }
        }
    }

    /// Keeps the roster from the bucket, watching again when the watch ends
    /// (a broker restart).
    async fn watch_roster(
        self: Arc<Self>,
        mut members: kv::Store,
        synced: Arc<tokio::sync::Notify>,
    ) {
        loop {
            let empty = members
                .status()
                .await
                .map(|s| s.values() == 0)
                .unwrap_or(false);
            if empty {
                synced.notify_one();
            }
            if let Ok(mut entries) = members.watch_with_history(">").await {
                while let Some(entry) = entries.next().await {
                    let Ok(entry) = entry else { break };
                    {
                        let mut roster = lock(&self.roster);
                        match entry.operation {
                            kv::Operation::Put => {
                                if let Ok(e) = serde_json::from_slice::<Entry>(&entry.value) {
                                    let nanos = u64::try_from(entry.created.unix_timestamp_nanos())
                                        .unwrap_or(0);
                                    let heard =
                                        SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos);
                                    roster.insert(
                                        entry.key.clone(),
                                        Known {
                                            part: e.server_part,
                                            heard,
                                        },
                                    );
                                }
                            }
                            kv::Operation::Delete | kv::Operation::Purge => {
                                roster.remove(&entry.key);
                            }
                        }
                    }
                    if entry.seen_current || entry.delta == 0 {
                        synced.notify_one();
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
            if let Ok(store) = open_bucket(
                &self.nats,
                &members_bucket(&self.cluster),
                jetstream::stream::StorageType::Memory,
                FORGET_AFTER,
            )
            .await
            {
                members = store;
            }
        }
    }

    /// The other members alive now (heard from within [`FORGET_AFTER`]),
    /// by name, with their server parts.
    pub(crate) fn others(&self) -> BTreeMap<String, String> {
        let now = SystemTime::now();
        lock(&self.roster)
            .iter()
            .filter(|(name, k)| {
                **name != self.name
                    && now
                        .duration_since(k.heard)
                        .map_or(true, |age| age < FORGET_AFTER)
            })
            .map(|(name, k)| (name.clone(), k.part.clone()))
            .collect()
    }

    /// The members alive now, this one included.
    pub(crate) fn alive(&self) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = self.others().into_keys().collect();
        names.insert(self.name.clone());
        names
    }

    /// Watches for members that leave the alive set: each is known dead.
    async fn detect_deaths(self: Arc<Self>, shared: Arc<Shared>, members: kv::Store) {
        let mut before: BTreeSet<String> = self.others().into_keys().collect();
        loop {
            tokio::time::sleep(DEATH_CHECK).await;
            let mut now: BTreeSet<String> = self.others().into_keys().collect();
            for joined in now.difference(&before) {
                tracing_note(&format!("member {joined} joined"));
                let _ = self.joins.send(joined.clone());
            }
            let candidates: Vec<String> = before.difference(&now).cloned().collect();
            for dead in candidates {
                // The roster may only be late (this member was paused, its
                // watch behind): the bucket itself decides.
                match members.entry(&dead).await {
                    Ok(Some(entry)) if entry.operation == kv::Operation::Put => {
                        let nanos =
                            u64::try_from(entry.created.unix_timestamp_nanos()).unwrap_or(0);
                        let heard = SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos);
                        let fresh = SystemTime::now()
                            .duration_since(heard)
                            .map_or(true, |age| age < FORGET_AFTER);
                        if fresh {
                            if let Some(k) = lock(&self.roster).get_mut(&dead) {
                                k.heard = heard;
                            }
                            now.insert(dead);
                            continue;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => {
                        // The broker is away: nobody is declared dead now.
                        now.insert(dead);
                        continue;
                    }
                }
                tracing_note(&format!("member {dead} is known dead"));
                lock(&self.roster).remove(&dead);
                let _ = self.deaths.send(dead.clone());
                let me = self.clone();
                let shared = shared.clone();
                tokio::spawn(async move { me.locks.member_died(&shared, &me, &dead).await });
            }
            before = now;
        }
    }

    pub(crate) fn remote_listeners(&self) -> MutexGuard<'_, HashMap<String, AbortHandle>> {
        lock(&self.remote_listeners)
    }

    /// Runs `work` on the cluster's runtime (from any thread).
    pub(crate) fn spawn(&self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        self.runtime.spawn(work);
    }

    fn new_rid(&self) -> String {
        format!("{}-{:016x}", self.name, crate::security::random_u64())
    }

    /// The member that holds session `id`: `None` for this one.
    fn holder(&self, id: &str) -> Result<Option<String>, RpcError> {
        let part = id.split('-').next().unwrap_or("");
        if part == self.part {
            return Ok(None);
        }
        self.others()
            .into_iter()
            .find(|(_, p)| p == part)
            .map(|(name, _)| Some(name))
            .ok_or_else(|| RpcError::NoSuchSession(id.to_owned()))
    }

    /// Sends a request by id to member `to` and waits for its answer.
    async fn forward(&self, to: &str, wire: &Wire, wait: Duration) -> Result<Value, RpcError> {
        let payload = serde_json::to_vec(wire).map_err(|e| RpcError::data(e.to_string()))?;
        let subject = member_subject(&self.cluster, to);
        let reply = tokio::time::timeout(wait, self.nats.request(subject, payload.into())).await;
        match reply {
            Ok(Ok(message)) => decode_answer(&message.payload).1,
            Ok(Err(e)) => Err(RpcError::ClusterRouting(format!(
                "member {to} did not answer: {e}"
            ))),
            Err(_) => Err(RpcError::ClusterRouting(format!(
                "member {to} did not answer within {} ms",
                wait.as_millis()
            ))),
        }
    }

    /// Sends a request by filter to every other member; returns the answers
    /// by member and the members expected that did not answer in time.
    async fn fan_out(&self, wire: &Wire) -> (Vec<(String, Result<Value, RpcError>)>, Vec<String>) {
        let expected: BTreeSet<String> = self.others().into_keys().collect();
        let mut answers = Vec::new();
        if expected.is_empty() {
            return (answers, Vec::new());
        }
        let Ok(payload) = serde_json::to_vec(wire) else {
            return (answers, expected.into_iter().collect());
        };
        let inbox = self.nats.new_inbox();
        let Ok(mut replies) = self.nats.subscribe(inbox.clone()).await else {
            return (answers, expected.into_iter().collect());
        };
        if self
            .nats
            .publish_with_reply(all_subject(&self.cluster), inbox, payload.into())
            .await
            .is_err()
        {
            return (answers, expected.into_iter().collect());
        }
        let mut waiting = expected.clone();
        let deadline = tokio::time::Instant::now() + self.timeout;
        while !waiting.is_empty() {
            let next = tokio::time::timeout_at(deadline, replies.next()).await;
            let Ok(Some(message)) = next else { break };
            let (member, answer) = decode_answer(&message.payload);
            if answers.iter().any(|(m, _)| *m == member) {
                continue;
            }
            waiting.remove(&member);
            answers.push((member, answer));
        }
        (answers, waiting.into_iter().collect())
    }

    fn remembered(&self, rid: &str) -> Option<Vec<u8>> {
        lock(&self.recent).answers.get(rid).cloned()
    }

    fn remember(&self, rid: String, answer: Vec<u8>) {
        let mut recent = lock(&self.recent);
        if recent.answers.insert(rid.clone(), answer).is_none() {
            recent.order.push_back(rid);
        }
        while recent.order.len() > REMEMBERED {
            if let Some(old) = recent.order.pop_front() {
                recent.answers.remove(&old);
            }
        }
    }
}

pub(crate) fn tracing_note(text: &str) {
    if std::env::var_os("SESSION_FILTER_CLUSTER_LOG").is_some() {
        eprintln!("cluster: {:?} {text}", SystemTime::now());
    }
}

/// An answer's payload: `{"member", "ok"}` or `{"member", "error"}`.
fn encode_answer(member: &str, outcome: &Result<Value, RpcError>) -> Vec<u8> {
    let value = match outcome {
        Ok(v) => json!({"member": member, "ok": v}),
        Err(e) => json!({"member": member, "error": e.to_json()}),
    };
    serde_json::to_vec(&value).unwrap_or_default()
}

fn decode_answer(payload: &[u8]) -> (String, Result<Value, RpcError>) {
    let Ok(mut value) = serde_json::from_slice::<Value>(payload) else {
        return (String::new(), Err(RpcError::data("a malformed answer")));
    };
    let member = value["member"].as_str().unwrap_or("").to_owned();
    if let Some(ok) = value.get_mut("ok") {
        return (member, Ok(ok.take()));
    }
    let error = value["error"].take();
    (
        member,
        Err(RpcError::Remote {
            code: error["code"].as_i64().unwrap_or(-32603),
            message: error["message"].as_str().unwrap_or("").to_owned(),
            data: error.get("data").cloned(),
        }),
    )
}

/// Answers the requests on one subscription, at most [`CONCURRENCY`] at
/// once, replying only to inboxes.
async fn serve(
    shared: Arc<Shared>,
    cluster: Arc<Cluster>,
    mut requests: async_nats::Subscriber,
    fan_out: bool,
) {
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    while let Some(message) = requests.next().await {
        let Some(reply) = message.reply.clone() else {
            continue;
        };
        if !reply.starts_with(REPLY_PREFIX) {
            continue;
        }
        let Ok(wire) = serde_json::from_slice::<Wire>(&message.payload) else {
            continue;
        };
        if fan_out && wire.from == cluster.name {
            continue;
        }
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let shared = shared.clone();
        let cluster = cluster.clone();
        tokio::spawn(async move {
            let answer = match cluster.remembered(&wire.rid) {
                Some(answer) => answer,
                None => {
                    let rid = wire.rid.clone();
                    let outcome = execute(&shared, &cluster, wire).await;
                    let answer = encode_answer(&cluster.name, &outcome);
                    cluster.remember(rid, answer.clone());
                    answer
                }
            };
            let _ = cluster.nats.publish(reply, answer.into()).await;
            drop(permit);
        });
    }
}

/// Runs a request from another member here, as its caller (whose
/// permissions that member checked).
async fn execute(
    shared: &Arc<Shared>,
    cluster: &Arc<Cluster>,
    wire: Wire,
) -> Result<Value, RpcError> {
    match wire.method.as_str() {
        listen::LISTEN => return listen::serve(shared, cluster, &wire.from, &wire.params),
        listen::UNLISTEN => return Ok(listen::unserve(cluster, &wire.params)),
        messages::SEND => {
            return messages::serve(shared, cluster, &wire.caller, &wire.params).await
        }
        _ => {}
    }
    let mut request = Request::parse(&wire.method, wire.params)?;
    if let (Request::Clients(crate::clients::Request::Fetch { limit, .. }), Some(rows)) =
        (&mut request, wire.rows)
    {
        *limit = rows;
    }
    let caller = Arc::new(Client::new(
        Arc::from(wire.caller.as_str()),
        String::new(),
        1,
        State::Closed,
    ));
    let mut call = Call {
        shared,
        client: &caller,
        conn: 0,
        after: After::default(),
    };
    match request {
        Request::Clients(r) => r.apply(&mut call).await,
        Request::Messaging(crate::messaging::Request::Send {
            target: crate::clients::Target::Id(target),
            path,
            request,
            timeout,
        }) => {
            crate::messaging::serve_by_id(shared, &wire.caller, &target, &path, &request, timeout)
                .await
        }
        _ => Err(RpcError::MethodNotFound(wire.method)),
    }
}

/// What the cluster made of a request.
pub(crate) enum Routed {
    /// Run it here as usual.
    Local(Request),
    /// Answered (or answering by itself, `None`).
    Done(Option<Result<Value, RpcError>>),
}

/// Where a request runs: routes requests by id to the member that holds
/// the session, runs requests by filter on every member and combines the
/// answers (SPEC 9, 12).
pub(crate) async fn route(
    cluster: &Arc<Cluster>,
    call: &mut Call<'_>,
    request: Request,
    method: &str,
    params: &Map<String, Value>,
) -> Routed {
    use crate::clients::{Request as C, Target};
    if let Request::Messaging(crate::messaging::Request::Send {
        target: Target::Id(id),
        timeout,
        ..
    }) = &request
    {
        return match cluster.holder(id) {
            Ok(None) => Routed::Local(request),
            Err(e) => Routed::Done(Some(Err(e))),
            Ok(Some(member)) => {
                let wire = Wire {
                    rid: cluster.new_rid(),
                    from: cluster.name.clone(),
                    caller: call.client.id.to_string(),
                    method: method.to_owned(),
                    params: params.clone(),
                    rows: None,
                };
                // The recipient has the whole timeout to answer.
                let wait = *timeout + cluster.timeout;
                Routed::Done(Some(cluster.forward(&member, &wire, wait).await))
            }
        };
    }
    let Request::Clients(r) = request else {
        return Routed::Local(request);
    };
    let by_id = match &r {
        C::GetProperties { session_id, .. } => Some(session_id.clone()),
        C::Close(Target::Id(id))
        | C::ChangeRoles {
            target: Target::Id(id),
            ..
        }
        | C::SetProperties {
            target: Target::Id(id),
            ..
        } => Some(id.clone()),
        _ => None,
    };
    let wire = |params: Map<String, Value>, rows: Option<usize>| Wire {
        rid: cluster.new_rid(),
        from: cluster.name.clone(),
        caller: call.client.id.to_string(),
        method: method.to_owned(),
        params,
        rows,
    };
    if let Some(id) = by_id {
        return match cluster.holder(&id) {
            Ok(None) => Routed::Local(Request::Clients(r)),
            Err(e) => Routed::Done(Some(Err(e))),
            Ok(Some(member)) => {
                let wire = wire(params.clone(), None);
                Routed::Done(Some(cluster.forward(&member, &wire, cluster.timeout).await))
            }
        };
    }
    // By filter: the filter is checked here first; nothing is sent when it
    // is bad.
    let filter = match &r {
        C::Count(f) => f,
        C::Fetch { filter, .. } => filter,
        C::Close(Target::Filter(f))
        | C::ChangeRoles {
            target: Target::Filter(f),
            ..
        }
        | C::SetProperties {
            target: Target::Filter(f),
            ..
        } => f,
        _ => return Routed::Local(Request::Clients(r)),
    };
    if let Err(e) = call.shared.store.compile(filter) {
        return Routed::Done(Some(Err(e.into())));
    }
    if let C::Fetch {
        order_by,
        descending,
        offset,
        limit,
        ..
    } = &r
    {
        let (order_by, descending, offset, limit) =
            (order_by.clone(), *descending, *offset, *limit);
        return Routed::Done(Some(
            fetch(
                cluster, call, r, params, order_by, descending, offset, limit, wire,
            )
            .await,
        ));
    }
    let wire = wire(params.clone(), None);
    let (local, (remote, missing)) = tokio::join!(r.apply(call), cluster.fan_out(&wire));
    let mut result = match local {
        Ok(v) => v,
        Err(e) => return Routed::Done(Some(Err(e))),
    };
    let mut count = result["count"].as_u64().unwrap_or(0);
    let mut missing = missing;
    for (member, answer) in remote {
        match answer {
            Ok(v) => count += v["count"].as_u64().unwrap_or(0),
            Err(_) => missing.push(member),
        }
    }
    result["count"] = json!(count);
    mark_partial(&mut result, missing);
    Routed::Done(Some(Ok(result)))
}

/// Adds `partial` and `missing` to a result by filter.
pub(crate) fn mark_partial(result: &mut Value, mut missing: Vec<String>) {
    missing.sort();
    missing.dedup();
    result["partial"] = json!(!missing.is_empty());
    result["missing"] = json!(missing);
}

/// A fetch on every member: each gives its first `offset + limit` rows in
/// the order asked for (with the ordering key), the pages merge (SPEC 6.2).
#[allow(clippy::too_many_arguments)]
async fn fetch(
    cluster: &Arc<Cluster>,
    call: &mut Call<'_>,
    mut r: crate::clients::Request,
    params: &Map<String, Value>,
    order_by: Option<String>,
    descending: bool,
    offset: usize,
    limit: usize,
    wire: impl Fn(Map<String, Value>, Option<usize>) -> Wire,
) -> Result<Value, RpcError> {
    let rows = offset.saturating_add(limit);
    let mut remote_params = params.clone();
    remote_params.insert("offset".into(), json!(0));
    remote_params.insert(
        "limit".into(),
        json!(rows.min(crate::clients::MAX_FETCH_LIMIT)),
    );
    // The ordering key travels with each row, and is dropped at the end
    // unless it was asked for.
    let mut strip = false;
    if let Some(key) = &order_by {
        if let crate::clients::Request::Fetch { projection, .. } = &mut r {
            if !projection.wants(key) {
                strip = true;
                *projection = projection.clone().with_key(key);
            }
        }
        if strip {
            let mut keys = match remote_params.get("properties") {
                Some(Value::Array(keys)) => keys.clone(),
                _ => Vec::new(),
            };
            keys.push(json!(key));
            remote_params.insert("properties".into(), Value::Array(keys));
        }
    }
    if let crate::clients::Request::Fetch {
        offset: o,
        limit: l,
        ..
    } = &mut r
    {
        *o = 0;
        *l = rows;
    }
    let wire = wire(remote_params, Some(rows));
    let (local, (remote, mut missing)) = tokio::join!(r.apply(call), cluster.fan_out(&wire));
    let local = local?;
    let mut total = local["total"].as_u64().unwrap_or(0);
    let mut all: Vec<Value> = local["sessions"].as_array().cloned().unwrap_or_default();
    for (member, answer) in remote {
        match answer {
            Ok(v) => {
                total += v["total"].as_u64().unwrap_or(0);
                all.extend(v["sessions"].as_array().cloned().unwrap_or_default());
            }
            Err(_) => missing.push(member),
        }
    }
    let id = |row: &Value| row["id"].as_str().unwrap_or("").to_owned();
    match &order_by {
        None => {
            all.sort_by_key(id);
            if descending {
                all.reverse();
            }
        }
        Some(key) => all.sort_by(|a, b| {
            let va = a["properties"][key].as_str();
            let vb = b["properties"][key].as_str();
            let by_value = match (va, vb) {
                (Some(x), Some(y)) => {
                    let o = x.as_bytes().cmp(y.as_bytes());
                    if descending {
                        o.reverse()
                    } else {
                        o
                    }
                }
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            };
            by_value.then_with(|| id(a).cmp(&id(b)))
        }),
    }
    let mut page: Vec<Value> = all.into_iter().skip(offset).take(limit).collect();
    if strip {
        if let Some(key) = &order_by {
            for row in &mut page {
                if let Some(props) = row["properties"].as_object_mut() {
                    props.remove(key);
                }
            }
        }
    }
    let mut result = json!({"total": total, "sessions": page});
    mark_partial(&mut result, missing);
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_subjects_and_buckets() {
        for good in ["a", "prod-eu_1", "X9"] {
            assert!(check_name("cluster", good).is_ok(), "{good}");
        }
        for bad in ["", "a.b", "a b", "*", ">", "é", &"x".repeat(65)] {
            assert!(check_name("member", bad).is_err(), "{bad}");
        }
        assert_eq!(member_subject("c", "m1"), "session-server.c.member.m1");
        assert_eq!(locks_bucket("c"), "session-server-c-locks");
    }

    #[test]
    fn answers_keep_results_and_errors_as_they_were() {
        let ok = encode_answer("m2", &Ok(json!({"count": 3})));
        assert_eq!(
            decode_answer(&ok),
            ("m2".to_owned(), Ok(json!({"count": 3})))
        );
        let error = RpcError::NoSuchSession("abc".into());
        let (member, back) = decode_answer(&encode_answer("m3", &Err(error.clone())));
        assert_eq!(member, "m3");
        let back = back.expect_err("an error");
        assert_eq!(back.code(), 107);
        assert_eq!(back.to_json(), error.to_json());
        let (_, garbage) = decode_answer(b"not json");
        assert_eq!(garbage.expect_err("an error").code(), 106);
    }

    #[test]
    fn partial_results_say_who_is_missing() {
        let mut r = json!({"count": 1});
        mark_partial(&mut r, vec!["m3".into(), "m2".into(), "m3".into()]);
        assert_eq!(
            r,
            json!({"count": 1, "partial": true, "missing": ["m2", "m3"]})
        );
        let mut r = json!({"count": 1});
        mark_partial(&mut r, Vec::new());
        assert_eq!(r["partial"], false);
    }
}
