//! Listeners across the cluster (SPEC 11.5, 12): for a listener on member
//! A, every other member runs a watch with the same filter and streams its
//! events, already in their `clients.event` form, to A on a subject of
//! their own; A queues them on the listening session like its own. Events
//! of one session come from the one member that holds it, over one NATS
//! connection to one subscriber, so they stay in order (snapshot first).
//!
//! When a member is known dead, A reports each of its sessions the
//! listener had seen open as `close` with reason `CONNECTION_LOST`. When
//! the listener ends (unlisten, its session closed), A tells the others to
//! stop; a member whose listening member is known dead stops by itself.

use std::collections::HashSet;
use std::sync::Arc;

use futures_util::StreamExt;
use serde_json::{json, Map, Value};

use super::{Cluster, Wire};
use crate::protocol;
use crate::server::Shared;
use crate::session::{Client, CloseReason};

/// The method name of a remote watch between members.
pub(crate) const LISTEN: &str = "cluster.listen";
/// The method name that stops one.
pub(crate) const UNLISTEN: &str = "cluster.unlisten";
/// What a remote watch publishes when it could not keep up.
pub(crate) const LAGGED: &str = "{\"lagged\":true}";

/// One other member's stream for a listener.
struct Stream {
    member: String,
    subject: String,
    events: async_nats::Subscriber,
}

/// The other members' streams of one listener, and the members that did
/// not answer.
pub(crate) struct Remote {
    cluster: Arc<Cluster>,
    ask: Ask,
    joins: tokio::sync::broadcast::Receiver<String>,
    streams: Vec<Stream>,
    /// The members that did not start a watch in time.
    pub(crate) missing: Vec<String>,
}

/// What a listener asks of the other members.
#[derive(Clone)]
struct Ask {
    caller: String,
    listener: String,
    filter: String,
    properties: Option<Value>,
    after: Option<u64>,
}

/// Asks `member` to run a watch for a listener; its stream, or `None` when
/// it did not answer in time.
async fn ask(cluster: &Arc<Cluster>, member: String, a: &Ask) -> Option<Stream> {
    let subject = format!(
        "session-server.{}.events.{}.{:016x}",
        cluster.cluster,
        cluster.name,
        crate::security::random_u64()
    );
    // Subscribed before the other member is asked: nothing is missed.
    let events = cluster.nats.subscribe(subject.clone()).await.ok()?;
    let _ = cluster.nats.flush().await;
    let mut params = Map::new();
    params.insert("filter".into(), json!(a.filter));
    if let Some(p) = &a.properties {
        params.insert("properties".into(), p.clone());
    }
    params.insert("after".into(), json!(a.after));
    params.insert("listener".into(), json!(a.listener));
    params.insert("subject".into(), json!(subject));
    let wire = Wire {
        rid: cluster.new_rid(),
        from: cluster.name.clone(),
        caller: a.caller.clone(),
        method: LISTEN.into(),
        params,
        rows: None,
    };
    match cluster.forward(&member, &wire, cluster.timeout).await {
        Ok(_) => Some(Stream {
            member,
            subject,
            events,
        }),
        Err(_) => {
            stop(cluster, &member, &subject);
            None
        }
    }
}

/// Asks every other member to run a watch for `listener`.
pub(crate) async fn start(
    cluster: &Arc<Cluster>,
    caller: &str,
    listener: &str,
    filter: &str,
    properties: Option<&Value>,
    after: Option<u64>,
) -> Remote {
    let a = Ask {
        caller: caller.to_owned(),
        listener: listener.to_owned(),
        filter: filter.to_owned(),
        properties: properties.cloned(),
        after,
    };
    // Members that join from now on are asked too.
    let joins = cluster.joins.subscribe();
    let members: Vec<String> = cluster.others().into_keys().collect();
    let streams =
        futures_util::future::join_all(members.iter().map(|m| ask(cluster, m.clone(), &a))).await;
    let mut remote = Remote {
        cluster: cluster.clone(),
        ask: a,
        joins,
        streams: Vec::new(),
        missing: Vec::new(),
    };
    for (member, stream) in members.into_iter().zip(streams) {
        match stream {
            Some(s) => remote.streams.push(s),
            None => remote.missing.push(member),
        }
    }
    remote
}

/// Tells `member` to stop the watch streaming on `subject`.
fn stop(cluster: &Arc<Cluster>, member: &str, subject: &str) {
    let mut params = Map::new();
    params.insert("subject".into(), json!(subject));
    let wire = Wire {
        rid: cluster.new_rid(),
        from: cluster.name.clone(),
        caller: String::new(),
        method: UNLISTEN.into(),
        params,
        rows: None,
    };
    let c = cluster.clone();
    let member = member.to_owned();
    cluster.spawn(async move {
        let _ = c.forward(&member, &wire, c.timeout).await;
    });
}

/// Stops the other member's watch when its stream is dropped (the
/// listener's task ended or was aborted).
struct StopOnDrop {
    cluster: Arc<Cluster>,
    member: String,
    subject: String,
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        stop(&self.cluster, &self.member, &self.subject);
    }
}

impl Remote {
    /// Queues every stream's events on `client` until the listener ends;
    /// asks each member that joins meanwhile for its stream too.
    pub(crate) async fn receive(self, shared: Arc<Shared>, client: Arc<Client>) {
        let Remote {
            cluster,
            ask: a,
            mut joins,
            streams,
            ..
        } = self;
        let one = |s: Stream| {
            receive_one(
                shared.clone(),
                cluster.clone(),
                client.clone(),
                a.listener.clone(),
                s,
            )
        };
        let mut running: futures_util::stream::FuturesUnordered<_> =
            streams.into_iter().map(one).collect();
        loop {
            tokio::select! {
                Some(()) = running.next(), if !running.is_empty() => {}
                joined = joins.recv() => match joined {
                    Ok(member) => {
                        if let Some(s) = ask(&cluster, member, &a).await {
                            running.push(one(s));
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => break,
                },
            }
        }
    }
}

async fn receive_one(
    shared: Arc<Shared>,
    cluster: Arc<Cluster>,
    client: Arc<Client>,
    listener: String,
    stream: Stream,
) {
    let Stream {
        member,
        subject,
        mut events,
    } = stream;
    let _stop = StopOnDrop {
        cluster: cluster.clone(),
        member: member.clone(),
        subject,
    };
    let mut deaths = cluster.deaths.subscribe();
    // The member's sessions this listener has seen open.
    let mut open: HashSet<String> = HashSet::new();
    loop {
        tokio::select! {
            message = events.next() => {
                let Some(message) = message else { break };
                let Ok(text) = String::from_utf8(message.payload.to_vec()) else { continue };
                if text == LAGGED {
                    shared.close(&client.id, CloseReason::MessageQueueLimitReached);
                    break;
                }
                if let Ok(note) = serde_json::from_str::<Value>(&text) {
                    let params = &note["params"];
                    if let Some(id) = params["session_id"].as_str() {
                        match params["event"].as_str() {
                            Some("open") => { open.insert(id.to_owned()); }
                            Some("left") | Some("close") => { open.remove(id); }
                            _ => {}
                        }
                    }
                }
                if !shared.notify(&client, text) {
                    break;
                }
            }
            dead = deaths.recv() => {
                match dead {
                    Ok(dead) if dead == member => {
                        for id in open.drain() {
                            let note = protocol::notification("clients.event", json!({
                                "listener": listener,
                                "session_id": id,
                                "event": "close",
                                "state": "closed",
                                "properties": {},
                                "reason": CloseReason::ConnectionLost.name(),
                            }));
                            if !shared.notify(&client, note) {
                                break;
                            }
                        }
                        break;
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => break,
                }
            }
        }
    }
}

/// Runs a watch here for a listener on member `from`, until told to stop
/// or `from` is known dead.
pub(crate) fn serve(
    shared: &Arc<Shared>,
    cluster: &Arc<Cluster>,
    from: &str,
    params: &Map<String, Value>,
) -> Result<Value, crate::error::RpcError> {
    let text = |k: &str| params.get(k).and_then(Value::as_str).map(str::to_owned);
    let (Some(filter), Some(listener), Some(subject)) =
        (text("filter"), text("listener"), text("subject"))
    else {
        return Err(crate::error::RpcError::params("a malformed remote listen"));
    };
    let after = params.get("after").and_then(Value::as_u64);
    let task = crate::listen::start_remote(
        shared,
        cluster.nats.clone(),
        subject.clone(),
        listener,
        &filter,
        params.get("properties"),
        after,
    )?;
    cluster
        .remote_listeners()
        .insert(subject.clone(), task.abort_handle());
    let mut deaths = cluster.deaths.subscribe();
    let from = from.to_owned();
    let c = cluster.clone();
    let mut task = task;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut task => break,
                dead = deaths.recv() => match dead {
                    Ok(dead) if dead == from => {
                        task.abort();
                        break;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    _ => {}
                },
            }
        }
        c.remote_listeners().remove(&subject);
    });
    Ok(json!({}))
}

/// Stops the watch streaming on `subject`.
pub(crate) fn unserve(cluster: &Cluster, params: &Map<String, Value>) -> Value {
    if let Some(subject) = params.get("subject").and_then(Value::as_str) {
        if let Some(task) = cluster.remote_listeners().remove(subject) {
            task.abort();
        }
    }
    json!({})
}
