//! Messages to sessions (SPEC 11.7): requests by id or by filter, delivered
//! through each recipient's outbound queue, responses routed back to the
//! sender.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::clients::blocking;
use crate::error::RpcError;
use crate::methods::{params, Call, Need};
use crate::protocol;
use crate::security::PathPermission;
use crate::server::Shared;
use crate::session::Client;

/// The default `timeout_ms` of `messaging.send`.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;

/// Who waits for the answer of one delivered request.
enum Waiting {
    /// A request by id: the sender's own request `request` on `conn`.
    ById {
        sender: Arc<Client>,
        conn: u64,
        request: Value,
    },
    /// One recipient of a request by filter.
    ByFilter(Arc<Group>),
    /// A sender on another member of the cluster.
    Elsewhere(Elsewhere),
}

/// How an answer goes back to a sender on another member.
pub(crate) enum Elsewhere {
    /// A request by id: the forwarded request's outcome.
    Reply(tokio::sync::oneshot::Sender<Result<Value, RpcError>>),
    /// A request by filter: each answer is published on the sender's
    /// member's subject for that request.
    Stream {
        nats: async_nats::Client,
        subject: String,
    },
}

struct Pending {
    recipient: Arc<str>,
    waiting: Waiting,
}

/// A request by filter: its sender and its running totals.
struct Group {
    sender: Arc<Client>,
    id: u64,
    figures: Mutex<Figures>,
}

#[derive(Default)]
struct Figures {
    remaining: usize,
    responded: usize,
    failed: usize,
    done: bool,
}

/// Requests in flight.
#[derive(Default)]
pub(crate) struct Messaging {
    pending: Mutex<HashMap<u64, Pending>>,
    next: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Messaging {
    fn next_id(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn take(&self, id: u64) -> Option<Pending> {
        lock(&self.pending).remove(&id)
    }
}

/// What a recipient answered.
pub(crate) enum Answer {
    Response(Value),
    Error(String),
}

/// Routes one answer (or a failure) back to whoever waits for it.
fn settle(shared: &Arc<Shared>, pending: Pending, answer: Answer) {
    match pending.waiting {
        Waiting::ById {
            sender,
            conn,
            request,
        } => {
            let outcome = match answer {
                Answer::Response(r) => Ok(json!({ "response": r })),
                Answer::Error(text) => Err(RpcError::Rejected(text)),
            };
            shared.answer(&sender, conn, &request, &outcome);
        }
        Waiting::Elsewhere(Elsewhere::Reply(tx)) => {
            let _ = tx.send(match answer {
                Answer::Response(r) => Ok(json!({ "response": r })),
                Answer::Error(text) => Err(RpcError::Rejected(text)),
            });
        }
        Waiting::Elsewhere(Elsewhere::Stream { nats, subject }) => {
            let mut note = json!({"session_id": &*pending.recipient});
            match answer {
                Answer::Response(r) => note["response"] = r,
                Answer::Error(e) => note["error"] = Value::String(e),
            }
            let payload = serde_json::to_vec(&note).unwrap_or_default();
            tokio::spawn(async move {
                let _ = nats.publish(subject, payload.into()).await;
            });
        }
        Waiting::ByFilter(group) => {
            let mut params = json!({"request": group.id, "session_id": &*pending.recipient});
            {
                let mut f = lock(&group.figures);
                if f.done {
                    return;
                }
                match &answer {
                    Answer::Response(r) => {
                        f.responded += 1;
                        params["response"] = r.clone();
                    }
                    Answer::Error(e) => {
                        f.failed += 1;
                        params["error"] = Value::String(e.clone());
                    }
                }
                f.remaining = f.remaining.saturating_sub(1);
            }
            shared.notify(
                &group.sender,
                protocol::notification("messaging.response", params),
            );
            finish_if_done(shared, &group, false);
        }
    }
}

/// Sends `messaging.done` once every recipient is accounted for (or, on
/// `timeout`, counts the rest as timed out).
fn finish_if_done(shared: &Arc<Shared>, group: &Arc<Group>, timeout: bool) {
    let done = {
        let mut f = lock(&group.figures);
        if f.done || (f.remaining > 0 && !timeout) {
            None
        } else {
            f.done = true;
            Some(json!({"request": group.id, "responded": f.responded,
                        "failed": f.failed, "timed_out": f.remaining}))
        }
    };
    if let Some(params) = done {
        shared.notify(
            &group.sender,
            protocol::notification("messaging.done", params),
        );
    }
}

/// A session closed: requests it had to answer fail (SESSION_CLOSED by id,
/// an error by filter); requests it sent are forgotten.
pub(crate) fn session_closed(shared: &Arc<Shared>, client: &Arc<Client>) {
    let mine: Vec<Pending> = {
        let mut pending = lock(&shared.messaging.pending);
        let ids: Vec<u64> = pending
            .iter()
            .filter(|(_, p)| p.recipient == client.id)
            .map(|(id, _)| *id)
            .collect();
        ids.into_iter()
            .filter_map(|id| pending.remove(&id))
            .collect()
    };
    for p in mine {
        recipient_closed(shared, p);
    }
    client.handlers().clear();
}

/// A request whose recipient closed before answering: 101 by id, an error
/// by filter.
fn recipient_closed(shared: &Arc<Shared>, p: Pending) {
    match p.waiting {
        Waiting::ById {
            sender,
            conn,
            request,
        } => shared.answer(&sender, conn, &request, &Err(RpcError::SessionClosed)),
        Waiting::Elsewhere(Elsewhere::Reply(tx)) => {
            let _ = tx.send(Err(RpcError::SessionClosed));
        }
        waiting @ (Waiting::ByFilter(_) | Waiting::Elsewhere(Elsewhere::Stream { .. })) => settle(
            shared,
            Pending {
                recipient: p.recipient,
                waiting,
            },
            Answer::Error("the session closed before it answered".into()),
        ),
    }
}

/// A recipient that closed between its lookup and the registration of its
/// request was missed by [`session_closed`]: settle the request now (at
/// most once: whoever takes it settles it).
fn unless_closed(shared: &Arc<Shared>, recipient: &Client, mid: u64) {
    if !recipient.is_open() {
        if let Some(p) = shared.messaging.take(mid) {
            recipient_closed(shared, p);
        }
    }
}

/// A parsed `messaging.*` request.
pub(crate) enum Request {
    AddHandler(String),
    RemoveHandler(String),
    Send {
        target: crate::clients::Target,
        path: String,
        request: Value,
        timeout: Duration,
    },
    Respond {
        id: u64,
        answer: Answer,
    },
}

#[derive(Deserialize)]
struct PathParams {
    path: String,
}

#[derive(Deserialize)]
struct SendParams {
    path: String,
    timeout_ms: Option<u64>,
}

#[derive(Deserialize)]
struct RespondParams {
    id: u64,
    error: Option<String>,
}

impl Request {
    pub(crate) fn parse(method: &str, p: Map<String, Value>) -> Result<Request, RpcError> {
        Ok(match method {
            "messaging.add_handler" => Request::AddHandler(params::<PathParams>(p)?.path),
            "messaging.remove_handler" => Request::RemoveHandler(params::<PathParams>(p)?.path),
            "messaging.send" => {
                let target = crate::clients::Target::parse(&p)?;
                let request = p
                    .get("request")
                    .cloned()
                    .ok_or_else(|| RpcError::params("missing field `request`"))?;
                let s: SendParams = params(p)?;
                Request::Send {
                    target,
                    path: s.path,
                    request,
                    timeout: Duration::from_millis(s.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS)),
                }
            }
            "messaging.respond" => {
                let response = p.get("response").cloned();
                let r: RespondParams = params(p)?;
                let answer = match (response, r.error) {
                    (_, Some(e)) => Answer::Error(e),
                    (Some(v), None) => Answer::Response(v),
                    (None, None) => return Err(RpcError::params("give `response` or `error`")),
                };
                Request::Respond { id: r.id, answer }
            }
            other => return Err(RpcError::MethodNotFound(other.to_owned())),
        })
    }

    pub(crate) fn needs(&self) -> Vec<Need> {
        match self {
            Request::Send { path, .. } => {
                vec![Need::Path(PathPermission::SendToSession, path.clone())]
            }
            _ => Vec::new(),
        }
    }

    /// `None` when the answer comes later (a send by id).
    pub(crate) async fn apply(
        self,
        call: &mut Call<'_>,
        id: &Value,
    ) -> Option<Result<Value, RpcError>> {
        let shared = call.shared.clone();
        match self {
            Request::AddHandler(path) => {
                call.client.handlers().insert(path);
                Some(Ok(json!({})))
            }
            Request::RemoveHandler(path) => {
                call.client.handlers().remove(&path);
                Some(Ok(json!({})))
            }
            Request::Respond { id: mid, answer } => {
                let pending = shared.messaging.take(mid);
                match pending {
                    Some(p) if p.recipient == call.client.id => settle(&shared, p, answer),
                    Some(p) => {
                        // Not the caller's to answer: put it back.
                        lock(&shared.messaging.pending).insert(mid, p);
                    }
                    None => {}
                }
                Some(Ok(json!({})))
            }
            Request::Send {
                target: crate::clients::Target::Id(target),
                path,
                request,
                timeout,
            } => {
                let Some(recipient) = shared.client(&target) else {
                    return Some(Err(if shared.store.get_session(&target).is_some() {
                        RpcError::Unhandled(path)
                    } else {
                        RpcError::NoSuchSession(target)
                    }));
                };
                if !recipient.handlers().contains(&path) {
                    return Some(Err(RpcError::Unhandled(path)));
                }
                let mid = shared.messaging.next_id();
                lock(&shared.messaging.pending).insert(
                    mid,
                    Pending {
                        recipient: recipient.id.clone(),
                        waiting: Waiting::ById {
                            sender: call.client.clone(),
                            conn: call.conn,
                            request: id.clone(),
                        },
                    },
                );
                deliver(&shared, &recipient, mid, &path, &request, &call.client.id);
                unless_closed(&shared, &recipient, mid);
                let shared2 = shared.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(timeout).await;
                    if let Some(Pending {
                        waiting:
                            Waiting::ById {
                                sender,
                                conn,
                                request,
                            },
                        ..
                    }) = shared2.messaging.take(mid)
                    {
                        shared2.answer(&sender, conn, &request, &Err(RpcError::TimedOut));
                    }
                });
                None
            }
            Request::Send {
                target: crate::clients::Target::Filter(filter),
                path,
                request,
                timeout,
            } => {
                let recipients = match handlers_matching(&shared, &filter, &path).await {
                    Ok(r) => r,
                    Err(e) => return Some(Err(e)),
                };
                // In a cluster, every other member delivers to its own
                // sessions and streams their answers back here (SPEC 12).
                let remote = match shared.cluster() {
                    Some(cluster) => Some(
                        crate::cluster::messages::send_by_filter(
                            cluster,
                            &call.client.id,
                            &filter,
                            &path,
                            &request,
                            timeout,
                        )
                        .await,
                    ),
                    None => None,
                };
                let remote_count = remote.as_ref().map_or(0, |r| r.count);
                let group = Arc::new(Group {
                    sender: call.client.clone(),
                    id: shared.messaging.next_id(),
                    figures: Mutex::new(Figures {
                        remaining: recipients.len() + remote_count,
                        ..Figures::default()
                    }),
                });
                // The result first, then responses, then `done`.
                let mut result =
                    json!({"request": group.id, "count": recipients.len() + remote_count});
                if let Some(remote) = &remote {
                    crate::cluster::mark_partial(&mut result, remote.missing.clone());
                }
                shared.answer(call.client, call.conn, id, &Ok(result));
                if let Some(remote) = remote {
                    let (shared, group) = (shared.clone(), group.clone());
                    tokio::spawn(async move {
                        remote
                            .receive(|recipient, answer| {
                                let pending = Pending {
                                    recipient,
                                    waiting: Waiting::ByFilter(group.clone()),
                                };
                                settle(&shared, pending, answer);
                                !lock(&group.figures).done
                            })
                            .await;
                    });
                }
                let mids = fan_out(
                    &shared,
                    &recipients,
                    || Waiting::ByFilter(group.clone()),
                    &path,
                    &request,
                    &call.client.id,
                );
                finish_if_done(&shared, &group, false);
                let shared2 = shared.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(timeout).await;
                    forget(&shared2, &mids);
                    finish_if_done(&shared2, &group, true);
                });
                None
            }
        }
    }
}

/// Queues `messaging.request` for a recipient.
fn deliver(
    shared: &Arc<Shared>,
    recipient: &Arc<Client>,
    mid: u64,
    path: &str,
    request: &Value,
    from: &str,
) {
    shared.stats.messages_sent.fetch_add(1, Ordering::Relaxed);
    let note = protocol::notification(
        "messaging.request",
        json!({"id": mid, "path": path, "request": request, "from": from}),
    );
    shared.notify(recipient, note);
}

/// Delivers a request by id from a session on another member (`from`) and
/// waits for the recipient's answer, at most `timeout`.
pub(crate) async fn serve_by_id(
    shared: &Arc<Shared>,
    from: &str,
    target: &str,
    path: &str,
    request: &Value,
    timeout: Duration,
) -> Result<Value, RpcError> {
    let Some(recipient) = shared.client(target) else {
        return Err(if shared.store.get_session(target).is_some() {
            RpcError::Unhandled(path.to_owned())
        } else {
            RpcError::NoSuchSession(target.to_owned())
        });
    };
    if !recipient.handlers().contains(path) {
        return Err(RpcError::Unhandled(path.to_owned()));
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mid = shared.messaging.next_id();
    lock(&shared.messaging.pending).insert(
        mid,
        Pending {
            recipient: recipient.id.clone(),
            waiting: Waiting::Elsewhere(Elsewhere::Reply(tx)),
        },
    );
    deliver(shared, &recipient, mid, path, request, from);
    unless_closed(shared, &recipient, mid);
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(_)) => Err(RpcError::SessionClosed),
        Err(_) => {
            shared.messaging.take(mid);
            Err(RpcError::TimedOut)
        }
    }
}

/// Delivers a request by filter from a session on another member to the
/// matching sessions here with a handler for `path`; their answers are
/// published on `subject` until `timeout`. Returns how many got it.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn serve_by_filter(
    shared: &Arc<Shared>,
    nats: async_nats::Client,
    from: &str,
    filter: &str,
    path: &str,
    request: &Value,
    timeout: Duration,
    subject: String,
) -> Result<usize, RpcError> {
    let recipients = handlers_matching(shared, filter, path).await?;
    let mids = fan_out(
        shared,
        &recipients,
        || {
            Waiting::Elsewhere(Elsewhere::Stream {
                nats: nats.clone(),
                subject: subject.clone(),
            })
        },
        path,
        request,
        from,
    );
    let shared2 = shared.clone();
    tokio::spawn(async move {
        tokio::time::sleep(timeout).await;
        forget(&shared2, &mids);
    });
    Ok(recipients.len())
}

/// The sessions of this member that `filter` matches and that handle
/// `path` (found through the store's index, off the async workers).
async fn handlers_matching(
    shared: &Arc<Shared>,
    filter: &str,
    path: &str,
) -> Result<Vec<Arc<Client>>, RpcError> {
    let program = shared.store.compile(filter)?;
    let store_shared = shared.clone();
    let ids = blocking(move || Ok(store_shared.store.select_compiled(&program))).await?;
    Ok(ids
        .iter()
        .filter_map(|id| shared.client(id))
        .filter(|c| c.handlers().contains(path))
        .collect())
}

/// Registers one pending request per recipient (answered through
/// `waiting()`), then delivers them; returns their ids. A recipient found
/// closed once its request is registered settles it at once.
fn fan_out(
    shared: &Arc<Shared>,
    recipients: &[Arc<Client>],
    waiting: impl Fn() -> Waiting,
    path: &str,
    request: &Value,
    from: &str,
) -> Vec<u64> {
    let mut mids = Vec::with_capacity(recipients.len());
    {
        let mut pending = lock(&shared.messaging.pending);
        for r in recipients {
            let mid = shared.messaging.next_id();
            pending.insert(
                mid,
                Pending {
                    recipient: r.id.clone(),
                    waiting: waiting(),
                },
            );
            mids.push(mid);
        }
    }
    for (r, mid) in recipients.iter().zip(&mids) {
        deliver(shared, r, *mid, path, request, from);
        unless_closed(shared, r, *mid);
    }
    mids
}

/// Drops the requests still pending among `mids` (their time is up).
fn forget(shared: &Shared, mids: &[u64]) {
    let mut pending = lock(&shared.messaging.pending);
    for mid in mids {
        pending.remove(mid);
    }
}
