//! One WebSocket connection: a single task owns the socket, reads requests
//! (each handled in a task of its own, at most [`MAX_IN_FLIGHT`] at once),
//! and writes whatever the session's outbound queue holds (SPEC 11.1–11.3).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::SinkExt;
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::{Notify, Semaphore};

use crate::error::RpcError;
use crate::methods;
use crate::outbound::Out;
use crate::protocol::{self, Inbound};
use crate::security::OpenRequest;
use crate::server::{OpenParams, Opened, Shared, CLIENT_TYPES};
use crate::session::{Client, CloseReason};

/// Requests of one connection being handled at once; past it, the
/// connection stops reading until one finishes.
pub const MAX_IN_FLIGHT: usize = 64;

/// Messages written before the socket is flushed.
const WRITE_BATCH: usize = 64;

#[derive(Deserialize)]
struct ReconnectParams {
    session_id: String,
    token: String,
}

#[derive(Deserialize)]
struct OpenFields {
    principal: Option<String>,
    credentials: Option<String>,
    client_type: Option<String>,
    reconnect: Option<ReconnectParams>,
}

/// Reads `open`'s params (SPEC 11.2).
pub(crate) fn open_params(p: Map<String, Value>, peer: SocketAddr) -> Result<OpenParams, RpcError> {
    let mut properties = std::collections::BTreeMap::new();
    match p.get("properties") {
        None | Some(Value::Null) => {}
        Some(Value::Object(props)) => {
            for (k, v) in props {
                match v {
                    Value::String(s) => {
                        properties.insert(k.clone(), s.clone());
                    }
                    _ => {
                        return Err(RpcError::params(format!(
                            "the proposed property {k:?} is not a string"
                        )))
                    }
                }
            }
        }
        Some(_) => return Err(RpcError::params("properties must be an object")),
    }
    let f: OpenFields = methods::params(p)?;
    let client_type = f.client_type.unwrap_or_else(|| "OTHER".into());
    if !CLIENT_TYPES.contains(&client_type.as_str()) {
        return Err(RpcError::params(format!(
            "client_type {client_type:?} is not one of {}",
            CLIENT_TYPES.join(", ")
        )));
    }
    // Proposed keys that are not valid user keys are dropped, as untrusted.
    properties.retain(|k, _| session_filter::validate_user_key(k).is_ok());
    Ok(OpenParams {
        request: OpenRequest {
            principal: f.principal.unwrap_or_default(),
            credentials: f.credentials,
            properties,
            client_ip: peer.ip().to_canonical().to_string(),
            client_type,
        },
        reconnect: f.reconnect.map(|r| (r.session_id, r.token)),
    })
}

/// Why a read failed: too large a message, or anything else.
fn too_large(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(t) = s.downcast_ref::<tungstenite::Error>() {
            return matches!(t, tungstenite::Error::Capacity(_));
        }
        source = s.source();
    }
    false
}

async fn send_text(ws: &mut WebSocket, text: String) -> bool {
    ws.send(Message::Text(text.into())).await.is_ok()
}

/// Serves one connection until it closes.
pub(crate) async fn run(shared: Arc<Shared>, mut ws: WebSocket, peer: SocketAddr) {
    // The open phase's state (its timeout, the open request, the
    // authenticators' futures) lives in a box of its own, freed once the
    // session is open: inline, it would size this task's future, which
    // every idle connection keeps.
    let Some(opened) = Box::pin(open_phase(&shared, &mut ws, peer)).await else {
        return;
    };
    let Opened {
        client, conn, kick, ..
    } = opened;
    let lost = session_phase(&shared, &mut ws, &client, conn, &kick).await;
    if lost {
        shared.connection_lost(&client, conn);
    }
}

/// Until `open` succeeds: every other method is 111.
async fn open_phase(shared: &Arc<Shared>, ws: &mut WebSocket, peer: SocketAddr) -> Option<Opened> {
    let idle = Duration::from_millis(shared.config.ping_interval_ms.max(1000) * 2);
    loop {
        let message = match tokio::time::timeout(idle, ws.recv()).await {
            Ok(Some(Ok(m))) => m,
            _ => return None,
        };
        let text = match message {
            Message::Text(t) => t,
            Message::Binary(_) => {
                let _ = ws
                    .send(Message::Close(Some(CloseFrame {
                        code: 1003,
                        reason: CloseReason::InvalidInboundMessage.name().into(),
                    })))
                    .await;
                return None;
            }
            Message::Close(_) => return None,
            _ => continue,
        };
        let (id, method, params) = match protocol::parse(&text) {
            Inbound::Invalid { id, error } => {
                send_text(ws, protocol::error_response(&id, &error)).await;
                continue;
            }
            Inbound::Notification => continue,
            Inbound::Request { id, method, params } => (id, method, params),
        };
        let name = methods::method_name(&method);
        let started = std::time::Instant::now();
        if method != "open" {
            let error = if name == "unknown" {
                RpcError::MethodNotFound(method)
            } else {
                RpcError::IncompatibleState("the first request must be open".into())
            };
            shared.stats.request(name, false, started.elapsed());
            send_text(ws, protocol::error_response(&id, &error)).await;
            continue;
        }
        let outcome = match open_params(params, peer) {
            Ok(p) => shared.open(p).await,
            Err(e) => Err(e),
        };
        shared
            .stats
            .request(name, outcome.is_ok(), started.elapsed());
        match outcome {
            Ok(mut opened) => {
                // The result first; notifications queued while the session
                // was disconnected follow it. It is taken, not cloned: kept
                // in `opened`, it would stay for the connection's life
                // (about 2.8 KiB of every idle session).
                let result = std::mem::take(&mut opened.result);
                if !send_text(ws, protocol::response(&id, result)).await {
                    shared.connection_lost(&opened.client, opened.conn);
                    return None;
                }
                return Some(opened);
            }
            Err(error) => {
                send_text(ws, protocol::error_response(&id, &error)).await;
                if error.code() == 103 {
                    let _ = ws.send(Message::Close(None)).await;
                    return None;
                }
            }
        }
    }
}

/// The open session's loop. True when the connection was lost (not closed
/// by the server).
async fn session_phase(
    shared: &Arc<Shared>,
    ws: &mut WebSocket,
    client: &Arc<Client>,
    conn: u64,
    kick: &Arc<Notify>,
) -> bool {
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut ping = tokio::time::interval(Duration::from_millis(shared.config.ping_interval_ms));
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    let mut awaiting_pong = false;
    let mut batch: Vec<Out> = Vec::new();
    // Whatever waits already (a reconnect's queued notifications).
    client.outbound.wake.notify_one();
    loop {
        tokio::select! {
            biased;
            _ = kick.notified() => return false,
            _ = client.outbound.wake.notified() => {
                match write(ws, client, conn, kick, &mut batch).await {
                    Written::Ok => {}
                    Written::Closed => return false,
                    Written::Lost => return true,
                }
            }
            message = ws.recv() => {
                let message = match message {
                    Some(Ok(m)) => m,
                    Some(Err(e)) if too_large(&e) => {
                        shared.close(&client.id, CloseReason::MessageTooLarge);
                        let _ = write(ws, client, conn, kick, &mut batch).await;
                        return false;
                    }
                    _ => return true,
                };
                match message {
                    Message::Text(text) => {
                        let (id, method, params) = match protocol::parse(&text) {
                            Inbound::Invalid { id, error } => {
                                shared.stats.request("unknown", false, Duration::ZERO);
                                shared.respond(client, conn, protocol::error_response(&id, &error));
                                continue;
                            }
                            Inbound::Notification => continue,
                            Inbound::Request { id, method, params } => (id, method, params),
                        };
                        let Ok(permit) = in_flight.clone().acquire_owned().await else {
                            return true;
                        };
                        let (shared, client) = (shared.clone(), client.clone());
                        tokio::spawn(async move {
                            methods::handle(shared, client, conn, id, method, params).await;
                            drop(permit);
                        });
                    }
                    Message::Binary(_) => {
                        shared.close(&client.id, CloseReason::InvalidInboundMessage);
                        let _ = write(ws, client, conn, kick, &mut batch).await;
                        return false;
                    }
                    Message::Pong(_) => awaiting_pong = false,
                    Message::Ping(_) => {}
                    Message::Close(_) => return true,
                }
            }
            _ = ping.tick() => {
                if awaiting_pong {
                    // No pong since the last ping: the client is unresponsive.
                    return true;
                }
                awaiting_pong = true;
                if ws.send(Message::Ping(Default::default())).await.is_err() {
                    return true;
                }
            }
        }
    }
}

enum Written {
    Ok,
    /// The session closed: `closed` was sent and the socket closed.
    Closed,
    /// The socket failed, or the connection was dropped.
    Lost,
}

/// Writes what the queue holds, in batches; gives up at once when the
/// connection is kicked (a client that stopped reading never holds us).
async fn write(
    ws: &mut WebSocket,
    client: &Client,
    conn: u64,
    kick: &Notify,
    batch: &mut Vec<Out>,
) -> Written {
    loop {
        batch.clear();
        client.outbound.take(WRITE_BATCH, batch);
        if batch.is_empty() {
            return Written::Ok;
        }
        let mut close: Option<String> = None;
        let result = tokio::select! {
            biased;
            _ = kick.notified() => return Written::Lost,
            r = async {
                for out in batch.drain(..) {
                    match out {
                        Out::Response { conn: c, .. } if c != conn => continue,
                        Out::Response { text, .. } | Out::Notification(text) => {
                            ws.feed(Message::Text(text.into())).await?;
                        }
                        Out::Close(reason) => {
                            let note = protocol::notification("closed", serde_json::json!({"reason": &reason}));
                            ws.feed(Message::Text(note.into())).await?;
                            close = Some(reason);
                            break;
                        }
                    }
                }
                ws.flush().await
            } => r,
        };
        if result.is_err() {
            return Written::Lost;
        }
        if let Some(reason) = close {
            let frame = CloseFrame {
                code: 1000,
                reason: reason.into(),
            };
            let _ =
                tokio::time::timeout(Duration::from_secs(1), ws.send(Message::Close(Some(frame))))
                    .await;
            return Written::Closed;
        }
    }
}
