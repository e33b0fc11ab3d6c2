//! The member side: serves one store's sessions to the cluster.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use futures_util::StreamExt;
use tokio::sync::{oneshot, Mutex, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

use super::membership::open_bucket;
use super::wire::{
    FetchSpec, Operation, Outcome, Page, PageEntry, Reply, Request, WireError, WireErrorKind,
    MAX_ID_LEN, VERSION,
};
use super::{check_name, request_subject, ClusterError, FORGET_AFTER};
use crate::properties::SESSION_ID;
use crate::{PropertyChange, SessionStore};

/// Settings of a [`Member`].
#[derive(Clone, Debug)]
pub struct MemberOptions {
    refresh: Duration,
    remembered_ids: usize,
    reply_delay: Duration,
    reply_prefix: String,
    concurrency: usize,
}

impl Default for MemberOptions {
    fn default() -> MemberOptions {
        MemberOptions {
            refresh: Duration::from_secs(1),
            remembered_ids: 4096,
            reply_delay: Duration::ZERO,
            reply_prefix: Self::DEFAULT_REPLY_PREFIX.to_owned(),
            concurrency: 8,
        }
    }
}

impl MemberOptions {
    /// The reply prefix of NATS clients that do not set their own inbox
    /// prefix.
    pub const DEFAULT_REPLY_PREFIX: &'static str = "_INBOX.";

    /// The defaults: refresh every second, remember 4096 request ids, no
    /// delay, answer on `_INBOX.` subjects only, at most 8 requests at
    /// once.
    pub fn new() -> MemberOptions {
        MemberOptions::default()
    }

    /// The prefix every reply subject must have (default `_INBOX.`, what
    /// NATS clients use for their inboxes; give the clients' own when they
    /// set `custom_inbox_prefix`). A request whose reply subject lies
    /// elsewhere is dropped without being run: a member never publishes on
    /// a subject a requester chose freely (such as the membership bucket's).
    /// A `.` is added when the prefix does not end in one.
    pub fn reply_prefix(mut self, prefix: impl Into<String>) -> MemberOptions {
        let mut prefix = prefix.into();
        if !prefix.ends_with('.') {
            prefix.push('.');
        }
        self.reply_prefix = prefix;
        self
    }

    /// How many requests the member works on at once (default 8, at least
    /// 1): a long `select` does not hold up the counts behind it. Mutating
    /// requests still run one at a time.
    pub fn concurrency(mut self, requests: usize) -> MemberOptions {
        self.concurrency = requests.max(1);
        self
    }

    /// How often the member rewrites its membership entry (at most a third
    /// of [`FORGET_AFTER`](super::FORGET_AFTER), so that one lost refresh
    /// does not make it missing).
    pub fn refresh(mut self, every: Duration) -> MemberOptions {
        self.refresh = every.clamp(Duration::from_millis(50), FORGET_AFTER / 3);
        self
    }

    /// How many ids of mutating requests the member remembers (at least 1),
    /// to apply each at most once. The oldest is forgotten first; a request
    /// repeated after that many others is applied again.
    pub fn remembered_ids(mut self, ids: usize) -> MemberOptions {
        self.remembered_ids = ids.max(1);
        self
    }

    /// For testing: wait this long before sending each reply, to play a
    /// member slower than a client's deadline. The operation itself is done
    /// at once.
    pub fn reply_delay(mut self, delay: Duration) -> MemberOptions {
        self.reply_delay = delay;
        self
    }
}

/// Serves one [`SessionStore`] to a cluster: answers every request
/// published on the cluster's subject, and keeps itself registered.
///
/// Up to [`MemberOptions::concurrency`] requests are handled at once, each
/// store operation on a blocking thread; mutating ones one at a time. A
/// request whose sender's deadline
/// (`timeout_ms`) passed before its turn came is dropped. Dropping a
/// `Member` stops it without deregistering (as if it had died); call
/// [`Member::stop`] to leave the cluster cleanly.
pub struct Member {
    name: String,
    cluster: String,
    nats: async_nats::Client,
    bucket: kv::Store,
    stop: Option<oneshot::Sender<()>>,
    serving: Option<JoinHandle<()>>,
    refreshing: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("name", &self.name)
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        for task in [self.serving.take(), self.refreshing.take()]
            .into_iter()
            .flatten()
        {
            task.abort();
        }
    }
}

impl Member {
    /// Subscribes to the cluster's requests, registers as `name`, and
    /// serves `store` until stopped. Must be called within a tokio runtime.
    ///
    /// Fails with [`ClusterError::NameTaken`] when a member of that name is
    /// registered already (a live one, or one that died less than
    /// [`FORGET_AFTER`] ago). When the broker loses the membership entry
    /// (or the whole bucket, as a restarted broker does), the member
    /// writes it again at its next refresh.
    pub async fn start(
        nats: async_nats::Client,
        cluster: &str,
        name: &str,
        store: Arc<SessionStore>,
        options: MemberOptions,
    ) -> Result<Member, ClusterError> {
        check_name("cluster", cluster)?;
        check_name("member", name)?;
        let bucket = open_bucket(&nats, cluster).await?;
        let requests = nats
            .subscribe(request_subject(cluster))
            .await
            .map_err(|e| ClusterError::broker("subscribe to the cluster's requests", e))?;
        // The subscription is in place before anyone expects an answer.
        nats.flush()
            .await
            .map_err(|e| ClusterError::broker("flush the subscription", e))?;
        let entry = to_payload(&serde_json::json!({ "v": VERSION, "member": name }));
        // Create, not put: a second member of the same name must not take
        // over the first one's entry (each would then be counted once for
        // two answers).
        bucket
            .create(name, entry.clone().into())
            .await
            .map_err(|e| match e.kind() {
                kv::CreateErrorKind::AlreadyExists => ClusterError::NameTaken {
                    cluster: cluster.to_owned(),
                    name: name.to_owned(),
                },
                _ => ClusterError::broker("register in the membership bucket", e),
            })?;

        let refreshing = tokio::spawn(refresh(
            nats.clone(),
            cluster.to_owned(),
            bucket.clone(),
            name.to_owned(),
            entry,
            options.refresh,
        ));

        let (stop, stopped) = oneshot::channel();
        let server = Server {
            name: name.to_owned(),
            nats: nats.clone(),
            store,
            mutations: Mutex::new(RecentIds::new(options.remembered_ids)),
            reply_delay: options.reply_delay,
            reply_prefix: options.reply_prefix,
        };
        let permits = Arc::new(Semaphore::new(options.concurrency));
        let serving = tokio::spawn(Arc::new(server).serve(requests, stopped, permits));
        Ok(Member {
            name: name.to_owned(),
            cluster: cluster.to_owned(),
            nats,
            bucket,
            stop: Some(stop),
            serving: Some(serving),
            refreshing: Some(refreshing),
        })
    }

    /// The member's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Leaves the cluster cleanly: deregisters first, so that clients stop
    /// expecting this member, then finishes the request in hand and stops
    /// serving.
    ///
    /// When the broker does not answer, it gives up after
    /// [`Member::STOP_TIMEOUT`] with an error; the membership entry then
    /// expires as a dead member's would.
    pub async fn stop(mut self) -> Result<(), ClusterError> {
        let deadline = tokio::time::Instant::now() + Self::STOP_TIMEOUT;
        let late = |action| ClusterError::broker(action, "the broker did not answer in time");
        if let Some(refreshing) = self.refreshing.take() {
            refreshing.abort();
            let _ = refreshing.await;
        }
        let deregister = "deregister from the membership bucket";
        let deregistered =
            match tokio::time::timeout_at(deadline, self.bucket.delete(&self.name)).await {
                Ok(done) => done.map_err(|e| ClusterError::broker(deregister, e)),
                Err(_) => Err(late(deregister)),
            };
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut serving) = self.serving.take() {
            if tokio::time::timeout_at(deadline, &mut serving)
                .await
                .is_err()
            {
                serving.abort();
            }
        }
        let flush = "flush the last replies";
        let flushed = match tokio::time::timeout_at(deadline, self.nats.flush()).await {
            Ok(done) => done.map_err(|e| ClusterError::broker(flush, e)),
            Err(_) => Err(late(flush)),
        };
        deregistered.and(flushed)
    }

    /// How long [`Member::stop`] waits for the broker at most.
    pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);
}

/// Rewrites the membership entry every `every`. When the write fails (the
/// broker lost the bucket, as a restarted one with memory storage does),
/// opens the bucket again, creating it, and writes at once.
async fn refresh(
    nats: async_nats::Client,
    cluster: String,
    mut bucket: kv::Store,
    name: String,
    entry: Vec<u8>,
    every: Duration,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Err(e) = bucket.put(&name, entry.clone().into()).await else {
            continue;
        };
        tracing::warn!("member {name}: cannot refresh its membership ({e}); reopening the bucket");
        match open_bucket(&nats, &cluster).await {
            Ok(reopened) => {
                bucket = reopened;
                if let Err(e) = bucket.put(&name, entry.clone().into()).await {
                    tracing::warn!("member {name}: cannot register again: {e}");
                }
            }
            Err(e) => tracing::warn!("member {name}: cannot reopen the membership bucket: {e}"),
        }
    }
}

/// The serving loop's state, shared by the requests in hand.
struct Server {
    name: String,
    nats: async_nats::Client,
    store: Arc<SessionStore>,
    /// Held by a mutating request from its check of the remembered ids to
    /// their update: mutations run one at a time, each at most once.
    mutations: Mutex<RecentIds>,
    reply_delay: Duration,
    reply_prefix: String,
}

impl Server {
    async fn serve(
        self: Arc<Self>,
        mut requests: async_nats::Subscriber,
        mut stopped: oneshot::Receiver<()>,
        permits: Arc<Semaphore>,
    ) {
        let mut in_hand = JoinSet::new();
        loop {
            let message = tokio::select! {
                biased;
                _ = &mut stopped => break,
                message = requests.next() => match message {
                    Some(message) => message,
                    None => break,
                },
            };
            let received = Instant::now();
            // At most `concurrency` requests at once; the rest wait in the
            // subscription.
            let permit = tokio::select! {
                biased;
                _ = &mut stopped => break,
                permit = Arc::clone(&permits).acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
            };
            let server = Arc::clone(&self);
            in_hand.spawn(async move {
                server.handle(message, received).await;
                drop(permit);
            });
            while in_hand.try_join_next().is_some() {}
        }
        let _ = requests.unsubscribe().await;
        // Finish the requests in hand (`stop` bounds the wait).
        while in_hand.join_next().await.is_some() {}
    }

    async fn handle(&self, message: async_nats::Message, received: Instant) {
        let Some(reply_to) = message.reply.clone() else {
            tracing::warn!(
                "member {}: ignored a request without a reply subject ({} bytes)",
                self.name,
                message.payload.len()
            );
            return;
        };
        // Publishing where a requester says would let anyone who may
        // publish requests write on any subject this member may: the
        // membership bucket's, for one.
        if !reply_to.starts_with(self.reply_prefix.as_str()) {
            tracing::warn!(
                "member {}: dropped a request whose reply subject {:?} is not under {:?}",
                self.name,
                reply_to.as_str(),
                self.reply_prefix
            );
            return;
        }
        let Some((id, outcome, took)) = self.answer(&message.payload, received).await else {
            return;
        };
        let reply = Reply {
            v: VERSION,
            id,
            member: self.name.clone(),
            micros: u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            more: false,
            outcome,
        };
        let max = self.nats.server_info().max_payload;
        let budget = part_budget(max, &reply);
        let parts = match reply.outcome {
            Outcome::Ids(ids) => split_ids(ids, budget)
                .into_iter()
                .map(|ids| Reply {
                    outcome: Outcome::Ids(ids),
                    id: reply.id.clone(),
                    member: reply.member.clone(),
                    ..reply
                })
                .collect(),
            outcome => vec![Reply { outcome, ..reply }],
        };
        if !self.reply_delay.is_zero() {
            tokio::time::sleep(self.reply_delay).await;
        }
        let last = parts.len().saturating_sub(1);
        for (i, part) in parts.into_iter().enumerate() {
            let part = Reply {
                more: i < last,
                ..part
            };
            let payload = self.fit(part, max);
            if let Err(e) = self.nats.publish(reply_to.clone(), payload.into()).await {
                tracing::warn!("member {}: cannot send a reply: {e}", self.name);
                return;
            }
        }
    }

    /// The reply's payload, or an error reply when it is over the broker's
    /// payload limit `max`.
    fn fit(&self, reply: Reply, max: usize) -> Vec<u8> {
        let payload = to_payload(&reply);
        if max > 0 && payload.len() > max {
            let too_large = Reply {
                outcome: Outcome::Error(WireError {
                    kind: WireErrorKind::Unavailable,
                    message: format!(
                        "the answer ({} bytes) exceeds the broker's payload limit ({max} bytes); \
                         fetch it in pages",
                        payload.len()
                    ),
                }),
                ..reply
            };
            return to_payload(&too_large);
        }
        payload
    }

    /// The request's id, this member's outcome, and the time the store
    /// took (parsing the filter included; zero when it was not asked);
    /// `None` when the request's deadline passed before its work started.
    async fn answer(
        &self,
        payload: &[u8],
        received: Instant,
    ) -> Option<(String, Outcome, Duration)> {
        let request: Request = match serde_json::from_slice(payload) {
            Ok(request) => request,
            Err(e) => {
                tracing::warn!("member {}: malformed request: {e}", self.name);
                return Some((
                    salvage_id(payload),
                    malformed(format!("not a request: {e}")),
                    Duration::ZERO,
                ));
            }
        };
        if request.v != VERSION {
            let message = format!(
                "request version {} is not supported (this member speaks version {VERSION})",
                request.v
            );
            return Some((
                request.id,
                error(WireErrorKind::Version, message),
                Duration::ZERO,
            ));
        }
        if request.id.is_empty() || request.id.len() > MAX_ID_LEN {
            let message = format!("a request id must have 1 to {MAX_ID_LEN} bytes");
            return Some((String::new(), malformed(message), Duration::ZERO));
        }
        let deadline = request
            .timeout_ms
            .map(|ms| received + Duration::from_millis(ms));
        let late = || deadline.is_some_and(|d| Instant::now() >= d);
        let mut recent = if request.op.is_mutating() {
            let recent = self.mutations.lock().await;
            if let Some(outcome) = recent.get(&request.id) {
                return Some((request.id, outcome.clone(), Duration::ZERO));
            }
            Some(recent)
        } else {
            None
        };
        if late() {
            tracing::warn!(
                "member {}: dropped request {} whose sender stopped waiting before its turn",
                self.name,
                request.id
            );
            return None;
        }
        let store = Arc::clone(&self.store);
        let Request { id, filter, op, .. } = request;
        let run = move || {
            let started = Instant::now();
            let outcome = execute(&store, &filter, op);
            (outcome, started.elapsed())
        };
        let (outcome, took) = match tokio::task::spawn_blocking(run).await {
            Ok(done) => done,
            Err(e) => {
                tracing::warn!("member {}: an operation failed: {e}", self.name);
                let message = format!("the operation failed: {e}");
                (error(WireErrorKind::Unavailable, message), Duration::ZERO)
            }
        };
        if let Some(recent) = &mut recent {
            recent.insert(id.clone(), outcome.clone());
        }
        Some((id, outcome, took))
    }
}

/// The bytes of ids one reply may carry under the broker's payload limit
/// `max` (0: unknown, taken as 1 MiB), leaving room for the rest of
/// `reply`.
fn part_budget(max: usize, reply: &Reply) -> usize {
    let max = if max == 0 { 1 << 20 } else { max };
    let envelope = reply.id.len() + reply.member.len() + 128;
    max.saturating_sub(envelope).max(1)
}

/// Splits sorted ids into runs whose JSON fits in `budget` bytes each (an
/// id longer than that alone in its run); at least one run, maybe empty.
fn split_ids(ids: Vec<String>, budget: usize) -> Vec<Vec<String>> {
    let mut parts = vec![Vec::new()];
    let mut used = 0;
    for id in ids {
        // Quotes and a comma; escapes at most double an id.
        let size = id.len() * 2 + 3;
        let current = parts.last().map_or(0, Vec::len);
        if current > 0 && used + size > budget {
            parts.push(Vec::new());
            used = 0;
        }
        used += size;
        if let Some(part) = parts.last_mut() {
            part.push(id);
        }
    }
    parts
}

/// Runs one operation on the store.
fn execute(store: &SessionStore, filter: &str, op: Operation) -> Outcome {
    let result = match op {
        Operation::Count => store.count(filter).map(Outcome::Count),
        Operation::Select => store.select(filter).map(Outcome::Ids),
        Operation::Close => store.close(filter).map(Outcome::Count),
        Operation::ChangeRoles { remove, add } => {
            let remove: Vec<&str> = remove.iter().map(String::as_str).collect();
            let add: Vec<&str> = add.iter().map(String::as_str).collect();
            store
                .change_roles(filter, &remove, &add)
                .map(Outcome::Count)
        }
        Operation::Fetch(spec) => fetch(store, filter, &spec).map(Outcome::Page),
        Operation::ChangeProperties { properties } => {
            let change: PropertyChange = properties.into_iter().collect();
            store.change_properties(filter, &change).map(Outcome::Count)
        }
    };
    result.unwrap_or_else(|e| {
        let kind = match e {
            crate::Error::Filter(_) => WireErrorKind::Filter,
            _ => WireErrorKind::Invalid,
        };
        error(kind, e.to_string())
    })
}

/// A fetch, with each session's value of the order key, so that the
/// client can merge the members' pages. The key is fetched for that even
/// when it was not asked for, and then left out of the properties.
fn fetch(store: &SessionStore, filter: &str, spec: &FetchSpec) -> Result<Page, crate::Error> {
    let key = spec.order_key().to_owned();
    let by_id = key == SESSION_ID;
    let mut spec = spec.clone();
    let mut added = false;
    if !by_id && !spec.all_properties {
        let keys = spec.properties.get_or_insert_with(Vec::new);
        if !keys.contains(&key) {
            keys.push(key.clone());
            added = true;
        }
    }
    let page = store.fetch(filter, &spec.to_request())?;
    let sessions = page
        .sessions
        .into_iter()
        .map(|session| {
            let mut properties = session.properties;
            let sort = if by_id {
                Some(session.id.clone())
            } else if added {
                properties.remove(&key)
            } else {
                properties.get(&key).cloned()
            };
            PageEntry {
                id: session.id,
                sort,
                properties,
            }
        })
        .collect();
    Ok(Page {
        total: page.total,
        sessions,
    })
}

fn error(kind: WireErrorKind, message: String) -> Outcome {
    Outcome::Error(WireError { kind, message })
}

fn malformed(message: String) -> Outcome {
    error(WireErrorKind::Malformed, message)
}

/// The id of a request that does not parse as one, if it has a usable one,
/// so that its sender can match the error to its request.
fn salvage_id(payload: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(payload)
        .ok()
        .and_then(|v| v.get("id").and_then(|id| id.as_str()).map(str::to_owned))
        .filter(|id| id.len() <= MAX_ID_LEN)
        .unwrap_or_default()
}

/// The outcomes of the last mutating requests, by id, oldest forgotten
/// first.
struct RecentIds {
    capacity: usize,
    order: VecDeque<String>,
    outcomes: HashMap<String, Outcome>,
}

impl RecentIds {
    fn new(capacity: usize) -> RecentIds {
        RecentIds {
            capacity,
            order: VecDeque::new(),
            outcomes: HashMap::new(),
        }
    }

    fn get(&self, id: &str) -> Option<&Outcome> {
        self.outcomes.get(id)
    }

    fn insert(&mut self, id: String, outcome: Outcome) {
        if self.outcomes.insert(id.clone(), outcome).is_none() {
            self.order.push_back(id);
        }
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.outcomes.remove(&old);
            }
        }
    }
}

/// A value as a JSON message payload. Serializing the wire types and JSON
/// values cannot fail; if it ever did, the payload would be empty and the
/// receiver would report it as malformed.
pub(super) fn to_payload<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_ids_are_bounded_and_oldest_first() {
        let mut recent = RecentIds::new(2);
        recent.insert("a".into(), Outcome::Count(1));
        recent.insert("b".into(), Outcome::Count(2));
        recent.insert("a".into(), Outcome::Count(9));
        assert_eq!(recent.get("a"), Some(&Outcome::Count(9)));
        recent.insert("c".into(), Outcome::Count(3));
        assert_eq!(recent.get("a"), None);
        assert_eq!(recent.get("b"), Some(&Outcome::Count(2)));
        assert_eq!(recent.order.len(), 2);
        assert_eq!(recent.outcomes.len(), 2);
    }

    #[test]
    fn ids_split_into_parts_that_fit() {
        let ids: Vec<String> = (0..100).map(|i| format!("s{i:03}")).collect();
        // Each id costs 4 * 2 + 3 = 11 bytes: 9 a part of 100 bytes.
        let parts = split_ids(ids.clone(), 100);
        assert_eq!(parts.len(), 12);
        assert!(parts.iter().all(|p| p.len() <= 9 && !p.is_empty()));
        assert_eq!(parts.concat(), ids);
        assert_eq!(split_ids(Vec::new(), 100), vec![Vec::<String>::new()]);
        assert_eq!(split_ids(ids.clone(), 1).len(), 100);
        assert_eq!(split_ids(ids, 1 << 20).len(), 1);
    }

    #[test]
    fn operations_run_on_the_store() {
        let store = SessionStore::new();
        store
            .insert([("$SessionId", "s1"), ("Tier", "gold")])
            .unwrap();
        store.insert([("$SessionId", "s2")]).unwrap();
        assert_eq!(
            execute(&store, "has Tier", Operation::Count),
            Outcome::Count(1)
        );
        assert_eq!(
            execute(&store, "all", Operation::Select),
            Outcome::Ids(vec!["s1".into(), "s2".into()])
        );
        assert!(matches!(
            execute(&store, "Tier is", Operation::Close),
            Outcome::Error(WireError {
                kind: WireErrorKind::Filter,
                ..
            })
        ));
        assert_eq!(store.len(), 2);
        assert_eq!(salvage_id(br#"{"id":"x","v":"one"}"#), "x");
        assert_eq!(salvage_id(b"\xff"), "");
    }
}
