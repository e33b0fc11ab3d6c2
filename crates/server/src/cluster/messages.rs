//! Messages by filter across the cluster (SPEC 11.7, 12): the sender's
//! member asks every other member to deliver the request to its own
//! matching sessions; each answers with how many got it, then publishes
//! every recipient's answer on the sender's member's subject for that
//! request, which turns them into `messaging.response` notifications like
//! its own recipients' answers.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Map, Value};

use super::{Cluster, Wire};
use crate::messaging::Answer;

/// The method name of a delivery by filter between members.
pub(crate) const SEND: &str = "cluster.send";

/// The other members' part of a request by filter.
pub(crate) struct RemoteSend {
    /// How many sessions on other members got it.
    pub(crate) count: usize,
    /// The members that did not answer in time.
    pub(crate) missing: Vec<String>,
    answers: Option<async_nats::Subscriber>,
    until: tokio::time::Instant,
}

/// Asks every other member to deliver a request by filter.
pub(crate) async fn send_by_filter(
    cluster: &Arc<Cluster>,
    caller: &str,
    filter: &str,
    path: &str,
    request: &Value,
    timeout: Duration,
) -> RemoteSend {
    let until = tokio::time::Instant::now() + timeout;
    let subject = format!(
        "session-server.{}.responses.{}.{:016x}",
        cluster.cluster,
        cluster.name,
        crate::security::random_u64()
    );
    let answers = cluster.nats.subscribe(subject.clone()).await.ok();
    let mut params = Map::new();
    params.insert("filter".into(), json!(filter));
    params.insert("path".into(), json!(path));
    params.insert("request".into(), request.clone());
    params.insert("timeout_ms".into(), json!(timeout.as_millis() as u64));
    params.insert("subject".into(), json!(subject));
    let wire = Wire {
        rid: cluster.new_rid(),
        from: cluster.name.clone(),
        caller: caller.to_owned(),
        method: SEND.into(),
        params,
        rows: None,
    };
    let (replies, mut missing) = if answers.is_some() {
        cluster.fan_out(&wire).await
    } else {
        (Vec::new(), cluster.others().into_keys().collect())
    };
    let mut count = 0;
    for (member, reply) in replies {
        match reply {
            Ok(v) => count += v["count"].as_u64().unwrap_or(0) as usize,
            Err(_) => missing.push(member),
        }
    }
    RemoteSend {
        count,
        missing,
        answers,
        until,
    }
}

impl RemoteSend {
    /// Passes each recipient's answer to `settle` (false: stop) until the
    /// request's timeout.
    pub(crate) async fn receive(self, mut settle: impl FnMut(Arc<str>, Answer) -> bool) {
        let Some(mut answers) = self.answers else {
            return;
        };
        if self.count == 0 {
            return;
        }
        while let Ok(Some(message)) = tokio::time::timeout_at(self.until, answers.next()).await {
            let Ok(note) = serde_json::from_slice::<Value>(&message.payload) else {
                continue;
            };
            let Some(recipient) = note["session_id"].as_str() else {
                continue;
            };
            let answer = match (note.get("response"), note["error"].as_str()) {
                (_, Some(e)) => Answer::Error(e.to_owned()),
                (Some(r), None) => Answer::Response(r.clone()),
                (None, None) => continue,
            };
            if !settle(Arc::from(recipient), answer) {
                break;
            }
        }
    }
}

/// Delivers here a request by filter from another member.
pub(crate) async fn serve(
    shared: &Arc<crate::server::Shared>,
    cluster: &Arc<Cluster>,
    caller: &str,
    params: &Map<String, Value>,
) -> Result<Value, crate::error::RpcError> {
    let text = |k: &str| params.get(k).and_then(Value::as_str);
    let (Some(filter), Some(path), Some(subject), Some(request), Some(timeout)) = (
        text("filter"),
        text("path"),
        text("subject"),
        params.get("request"),
        params.get("timeout_ms").and_then(Value::as_u64),
    ) else {
        return Err(crate::error::RpcError::params("a malformed remote send"));
    };
    let count = crate::messaging::serve_by_filter(
        shared,
        cluster.nats.clone(),
        caller,
        filter,
        path,
        request,
        Duration::from_millis(timeout),
        subject.to_owned(),
    )
    .await?;
    Ok(json!({ "count": count }))
}
