//! Session listeners (SPEC 11.5): a store watch per listener, its events
//! turned into `clients.event` notifications on the listening session's
//! outbound queue.
//!
//! State changes (`disconnected`, `reconnected`) and the reason a session
//! closes reach the watch as store signals, so they come in order with the
//! session's property events: one queue, one order.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Map, Value};
use session_filter::{WatchEvent, WatchOptions};

use crate::clients::Projection;
use crate::error::RpcError;
use crate::methods::{params, Call, Need};
use crate::protocol;
use crate::security::GlobalPermission::{RegisterHandler, ViewSession};
use crate::server::Shared;
use crate::session::{Client, CloseReason};

/// What the server tells listeners about a session beside its properties.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Signal {
    Disconnected,
    Reconnected,
    /// The session is about to close for this reason.
    Closing(CloseReason),
}

const DISCONNECTED: &str = "disconnected";
const RECONNECTED: &str = "reconnected";

impl Signal {
    fn tag(self) -> &'static str {
        match self {
            Signal::Disconnected => DISCONNECTED,
            Signal::Reconnected => RECONNECTED,
            Signal::Closing(reason) => reason.name(),
        }
    }
}

/// Tells every watch that matches session `id` (an unknown id is no one's).
pub(crate) fn signal(shared: &Shared, id: &str, signal: Signal) {
    let _ = shared.store.signal_session(id, signal.tag());
}

/// `clients.listen` and `clients.unlisten`.
pub(crate) enum Request {
    Listen {
        filter: String,
        projection: Projection,
        /// `properties` as given, for the other members of a cluster.
        properties: Option<Value>,
        after: Option<u64>,
    },
    Unlisten(String),
}

#[derive(Deserialize)]
struct ListenParams {
    filter: Option<String>,
    after: Option<u64>,
}

#[derive(Deserialize)]
struct UnlistenParams {
    listener: String,
}

impl Request {
    pub(crate) fn parse(method: &str, p: Map<String, Value>) -> Result<Request, RpcError> {
        if method == "clients.unlisten" {
            return Ok(Request::Unlisten(params::<UnlistenParams>(p)?.listener));
        }
        let projection = Projection::parse(p.get("properties"), Projection::none())?;
        let properties = p.get("properties").cloned();
        let l: ListenParams = params(p)?;
        Ok(Request::Listen {
            filter: l.filter.unwrap_or_else(|| "all".into()),
            projection,
            properties,
            after: l.after,
        })
    }

    pub(crate) fn needs(&self) -> Vec<Need> {
        match self {
            Request::Listen { .. } => {
                vec![Need::Global(ViewSession), Need::Global(RegisterHandler)]
            }
            Request::Unlisten(_) => Vec::new(),
        }
    }

    /// Answers by itself: the result must be queued before the snapshot.
    pub(crate) async fn apply(
        self,
        call: &mut Call<'_>,
        id: &Value,
    ) -> Option<Result<Value, RpcError>> {
        match self {
            Request::Unlisten(listener) => {
                if let Some(task) = call.client.listeners().remove(&listener) {
                    task.abort();
                }
                Some(Ok(json!({})))
            }
            Request::Listen {
                filter,
                projection,
                properties,
                after,
            } => {
                let program = match call.shared.store.compile(&filter) {
                    Ok(p) => p,
                    Err(e) => return Some(Err(e.into())),
                };
                let n = call.shared.listener_ids.fetch_add(1, Ordering::Relaxed) + 1;
                let listener = format!("L{n}");
                // In a cluster, every other member runs a watch for this
                // listener and streams its events here (SPEC 12).
                let remote = match call.shared.cluster() {
                    Some(cluster) => Some(
                        crate::cluster::listen::start(
                            cluster,
                            &call.client.id,
                            &listener,
                            &filter,
                            properties.as_ref(),
                            after,
                        )
                        .await,
                    ),
                    None => None,
                };
                let watch = call
                    .shared
                    .store
                    .watch_compiled(&program, watch_options(call.shared, &projection, after));
                let mut result = json!({ "listener": listener });
                if let Some(remote) = &remote {
                    crate::cluster::mark_partial(&mut result, remote.missing.clone());
                }
                call.shared.answer(call.client, call.conn, id, &Ok(result));
                let forward = Forward {
                    shared: call.shared.clone(),
                    sink: Sink::Local(call.client.clone()),
                    listener: listener.clone(),
                    projection,
                    after,
                };
                let task = match remote {
                    None => tokio::spawn(forward.run(watch)),
                    Some(remote) => {
                        let streams = remote.receive(call.shared.clone(), call.client.clone());
                        tokio::spawn(async move {
                            tokio::join!(forward.run(watch), streams);
                        })
                    }
                };
                call.client
                    .listeners()
                    .insert(listener, task.abort_handle());
                // A session that closed while this request ran has ended its
                // listeners already: this one must end too, not watch the
                // store for a session that is gone.
                if !call.client.is_open() {
                    call.client.end_listeners();
                }
                None
            }
        }
    }
}

/// The watch options of a listener.
fn watch_options(shared: &Shared, projection: &Projection, after: Option<u64>) -> WatchOptions {
    let mut options = WatchOptions::new().capacity(shared.config.max_queued_messages);
    if projection.is_empty() {
        options = options.membership_only();
        if after.is_none() {
            options = options.without_properties();
        }
    } else {
        options = options.all_updates();
    }
    options
}

/// Where a listener's events go.
pub(crate) enum Sink {
    /// To a session of this server.
    Local(Arc<Client>),
    /// To a listener on another member of the cluster, over NATS.
    Remote {
        nats: async_nats::Client,
        subject: String,
    },
}

/// Starts a watch on this member for a listener on another member of the
/// cluster, its events published on `subject`.
pub(crate) fn start_remote(
    shared: &Arc<Shared>,
    nats: async_nats::Client,
    subject: String,
    listener: String,
    filter: &str,
    properties: Option<&Value>,
    after: Option<u64>,
) -> Result<tokio::task::JoinHandle<()>, RpcError> {
    let program = shared.store.compile(filter)?;
    let projection = Projection::parse(properties, Projection::none())?;
    let watch = shared
        .store
        .watch_compiled(&program, watch_options(shared, &projection, after));
    let forward = Forward {
        shared: shared.clone(),
        sink: Sink::Remote { nats, subject },
        listener,
        projection,
        after,
    };
    Ok(tokio::spawn(forward.run(watch)))
}

/// One listener's forwarding task.
struct Forward {
    shared: Arc<Shared>,
    sink: Sink,
    listener: String,
    projection: Projection,
    after: Option<u64>,
}

impl Forward {
    async fn run(self, watch: session_filter::Watch) {
        // Sessions the `after` rule drops, and the reasons of sessions about
        // to close.
        let mut dropped: HashSet<Arc<str>> = HashSet::new();
        let mut reasons: HashMap<Arc<str>, &'static str> = HashMap::new();
        while let Some(event) = watch.recv_async().await {
            let note = match event {
                WatchEvent::Lagged { .. } => {
                    // The queue of the listener could not keep up.
                    match &self.sink {
                        Sink::Local(client) => {
                            self.shared
                                .close(&client.id, CloseReason::MessageQueueLimitReached);
                        }
                        Sink::Remote { nats, subject } => {
                            // The listening member closes its session as if
                            // its own queue had overflowed.
                            let _ = nats
                                .publish(subject.clone(), crate::cluster::listen::LAGGED.into())
                                .await;
                        }
                    }
                    break;
                }
                WatchEvent::Entered { id, properties } => {
                    if let Some(after) = self.after {
                        let start = properties
                            .as_ref()
                            .and_then(|p| p.get(session_filter::properties::START_TIME))
                            .and_then(|v| v.parse::<u64>().ok())
                            .unwrap_or(0);
                        if start <= after {
                            dropped.insert(id);
                            continue;
                        }
                    }
                    let props = self.project(properties.as_deref());
                    self.event(&id, "open", self.state(&id), props, None, None)
                }
                WatchEvent::Updated {
                    id,
                    previous,
                    properties,
                } => {
                    if dropped.contains(&id) || self.projection.is_empty() {
                        continue;
                    }
                    let changed: Map<String, Value> = previous
                        .iter()
                        .filter(|(k, _)| self.projection.wants(k))
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                v.clone().map(Value::String).unwrap_or(Value::Null),
                            )
                        })
                        .collect();
                    if changed.is_empty() {
                        continue;
                    }
                    let props = self.project(properties.as_deref());
                    self.event(&id, "update", self.state(&id), props, Some(changed), None)
                }
                WatchEvent::Left {
                    id,
                    closed,
                    properties,
                } => {
                    if dropped.remove(&id) {
                        reasons.remove(&id);
                        continue;
                    }
                    if closed {
                        let reason = reasons
                            .remove(&id)
                            .unwrap_or(CloseReason::ClosedByController.name());
                        self.event(&id, "close", "closed", Map::new(), None, Some(reason))
                    } else {
                        let props = self.project(properties.as_deref());
                        self.event(&id, "left", self.state(&id), props, None, None)
                    }
                }
                WatchEvent::Signal {
                    id,
                    signal,
                    properties,
                } => {
                    if dropped.contains(&id) {
                        continue;
                    }
                    let state = match signal {
                        DISCONNECTED => DISCONNECTED,
                        RECONNECTED => RECONNECTED,
                        reason => {
                            reasons.insert(id, reason);
                            continue;
                        }
                    };
                    let props = self.project(properties.as_deref());
                    self.event(&id, "update", state, props, None, None)
                }
                _ => continue,
            };
            let sent = match &self.sink {
                Sink::Local(client) => self.shared.notify(client, note),
                Sink::Remote { nats, subject } => {
                    nats.publish(subject.clone(), note.into()).await.is_ok()
                }
            };
            if !sent {
                break;
            }
        }
    }

    fn project(&self, properties: Option<&session_filter::PropertyMap>) -> Map<String, Value> {
        match properties {
            Some(p) if !self.projection.is_empty() => self.projection.apply(p.iter()),
            _ => Map::new(),
        }
    }

    fn state(&self, id: &str) -> &'static str {
        match self.shared.client(id) {
            Some(client) => match client.state_name() {
                "closed" => "closed",
                "disconnected" => DISCONNECTED,
                _ => "active",
            },
            None => "active",
        }
    }

    fn event(
        &self,
        id: &str,
        event: &str,
        state: &str,
        properties: Map<String, Value>,
        changed: Option<Map<String, Value>>,
        reason: Option<&str>,
    ) -> String {
        let mut params = json!({
            "listener": self.listener,
            "session_id": id,
            "event": event,
            "state": state,
            "properties": properties,
        });
        if let Some(changed) = changed {
            params["changed"] = Value::Object(changed);
        }
        if let Some(reason) = reason {
            params["reason"] = Value::String(reason.to_owned());
        }
        protocol::notification("clients.event", params)
    }
}
