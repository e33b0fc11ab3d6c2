//! The method table: each method's params parsed into a typed request, its
//! permissions checked here before it is applied (SPEC 11.1 order: params,
//! permissions, filter and keys, target).

use std::sync::Arc;
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

use crate::clients;
use crate::error::RpcError;
use crate::security::{GlobalPermission, PathPermission};
use crate::server::Shared;
use crate::session::{Client, CloseReason};

/// A permission a request needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Need {
    Global(GlobalPermission),
    Path(PathPermission, String),
}

/// A parsed request.
pub(crate) enum Request {
    Close,
    Permissions { path: Option<String> },
    Clients(clients::Request),
    Listen(crate::listen::Request),
    Locks(crate::locks::Request),
    Messaging(crate::messaging::Request),
    Metrics(crate::metrics::Request),
    Filters(FiltersRequest),
}

/// `filters.check` and `filters.explain`: the console's canonical form and
/// plan, which need no permission (they read no session).
pub(crate) enum FiltersRequest {
    Check(String),
    Explain(String),
}

/// Reads params into `T`: a missing or mistyped field is -32602.
pub(crate) fn params<T: DeserializeOwned>(params: Map<String, Value>) -> Result<T, RpcError> {
    serde_json::from_value(Value::Object(params)).map_err(|e| RpcError::params(e.to_string()))
}

#[derive(serde::Deserialize)]
struct PathParams {
    path: Option<String>,
}

#[derive(serde::Deserialize)]
struct FilterParams {
    filter: String,
}

/// The method names the server has, for the request figures (anything else
/// counts as `unknown`).
pub(crate) const METHODS: [&str; 27] = [
    "open",
    "close",
    "permissions",
    "clients.count",
    "clients.fetch",
    "clients.get_properties",
    "clients.close",
    "clients.change_roles",
    "clients.set_properties",
    "clients.listen",
    "clients.unlisten",
    "locks.acquire",
    "locks.release",
    "locks.cancel",
    "locks.list",
    "messaging.add_handler",
    "messaging.remove_handler",
    "messaging.send",
    "messaging.respond",
    "metrics.put_session_collector",
    "metrics.remove_session_collector",
    "metrics.list_session_collectors",
    "metrics.fetch",
    "filters.check",
    "filters.explain",
    "unknown",
    "",
];

/// The static name of a method, for the figures.
pub(crate) fn method_name(method: &str) -> &'static str {
    METHODS
        .iter()
        .find(|m| **m == method && !m.is_empty())
        .copied()
        .unwrap_or("unknown")
}

impl Request {
    pub(crate) fn parse(method: &str, p: Map<String, Value>) -> Result<Request, RpcError> {
        Ok(match method {
            "close" => Request::Close,
            "permissions" => Request::Permissions {
                path: params::<PathParams>(p)?.path,
            },
            "open" => {
                return Err(RpcError::IncompatibleState(
                    "the session is open already".into(),
                ))
            }
            "clients.listen" | "clients.unlisten" => {
                Request::Listen(crate::listen::Request::parse(method, p)?)
            }
            m if m.starts_with("clients.") => Request::Clients(clients::Request::parse(m, p)?),
            m if m.starts_with("locks.") => Request::Locks(crate::locks::Request::parse(m, p)?),
            m if m.starts_with("messaging.") => {
                Request::Messaging(crate::messaging::Request::parse(m, p)?)
            }
            m if m.starts_with("metrics.") => {
                Request::Metrics(crate::metrics::Request::parse(m, p)?)
            }
            "filters.check" => {
                Request::Filters(FiltersRequest::Check(params::<FilterParams>(p)?.filter))
            }
            "filters.explain" => {
                Request::Filters(FiltersRequest::Explain(params::<FilterParams>(p)?.filter))
            }
            other => return Err(RpcError::MethodNotFound(other.to_owned())),
        })
    }

    pub(crate) fn needs(&self) -> Vec<Need> {
        match self {
            Request::Close | Request::Permissions { .. } | Request::Filters(_) => Vec::new(),
            Request::Clients(r) => r.needs(),
            Request::Listen(r) => r.needs(),
            Request::Locks(r) => r.needs(),
            Request::Messaging(r) => r.needs(),
            Request::Metrics(r) => r.needs(),
        }
    }
}

/// The first permission of `needs` that `roles` lack.
pub(crate) fn check(shared: &Shared, roles: &[String], needs: &[Need]) -> Result<(), RpcError> {
    check_roles(&shared.roles, roles, needs)
}

/// [`check`] against a role table.
pub(crate) fn check_roles(
    table: &crate::security::Roles,
    roles: &[String],
    needs: &[Need],
) -> Result<(), RpcError> {
    for need in needs {
        match need {
            Need::Global(p) => {
                if !table.has_global(roles, *p) {
                    return Err(RpcError::missing(*p));
                }
            }
            Need::Path(p, path) => {
                if !table.path_permissions(roles, path).contains(p) {
                    return Err(RpcError::missing_on_path(*p, path));
                }
            }
        }
    }
    Ok(())
}

/// What a request asks to happen after its answer is queued.
#[derive(Default)]
pub(crate) struct After {
    /// Close the caller's own session for this reason.
    pub(crate) close_self: Option<CloseReason>,
}

/// Context of one request.
pub(crate) struct Call<'a> {
    pub(crate) shared: &'a Arc<Shared>,
    pub(crate) client: &'a Arc<Client>,
    pub(crate) conn: u64,
    pub(crate) after: After,
}

/// Handles one request of an open session and queues its answer.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    client: Arc<Client>,
    conn: u64,
    id: Value,
    method: String,
    p: Map<String, Value>,
) {
    let started = Instant::now();
    let name = method_name(&method);
    let mut call = Call {
        shared: &shared,
        client: &client,
        conn,
        after: After::default(),
    };
    let outcome = run(&mut call, &method, p, &id).await;
    if let Some(outcome) = outcome {
        shared
            .stats
            .request(name, outcome.is_ok(), started.elapsed());
        shared.answer(&client, conn, &id, &outcome);
    }
    if let Some(reason) = call.after.close_self {
        shared.close(&client.id, reason);
    }
}

/// Runs a request; `None` when the method answers by itself (a wait that
/// completes later, such as `locks.acquire`).
async fn run(
    call: &mut Call<'_>,
    method: &str,
    p: Map<String, Value>,
    id: &Value,
) -> Option<Result<Value, RpcError>> {
    let raw = call.shared.cluster().map(|_| p.clone());
    let request = match Request::parse(method, p) {
        Ok(r) => r,
        Err(e) => return Some(Err(e)),
    };
    let needs = request.needs();
    if !needs.is_empty() {
        let Some(roles) = call.shared.roles_of(&call.client.id) else {
            return Some(Err(RpcError::SessionClosed));
        };
        if let Err(e) = check(call.shared, &roles, &needs) {
            return Some(Err(e));
        }
    }
    // In a cluster, requests by id go to the session's member and requests
    // by filter to every member (SPEC 12).
    let request = match (call.shared.cluster().cloned(), raw) {
        (Some(cluster), Some(raw)) => {
            match crate::cluster::route(&cluster, call, request, method, &raw).await {
                crate::cluster::Routed::Local(request) => request,
                crate::cluster::Routed::Done(outcome) => return outcome,
            }
        }
        _ => request,
    };
    match request {
        Request::Close => {
            call.after.close_self = Some(CloseReason::ClosedByClient);
            Some(Ok(json!({})))
        }
        Request::Permissions { path } => Some(permissions(call, path.as_deref())),
        Request::Clients(r) => Some(r.apply(call).await),
        Request::Listen(r) => r.apply(call, id).await,
        Request::Locks(r) => r.apply(call, id).await,
        Request::Messaging(r) => r.apply(call, id).await,
        Request::Metrics(r) => Some(r.apply(call).await),
        Request::Filters(r) => Some(filters(call.shared, r)),
    }
}

fn permissions(call: &Call<'_>, path: Option<&str>) -> Result<Value, RpcError> {
    let roles = call
        .shared
        .roles_of(&call.client.id)
        .ok_or(RpcError::SessionClosed)?;
    let granted = call.shared.roles.permissions(&roles, path);
    Ok(json!({
        "global": granted.global.iter().map(|p| p.name()).collect::<Vec<_>>(),
        "path": granted.path.iter().map(|p| p.name()).collect::<Vec<_>>(),
    }))
}

fn filters(shared: &Shared, request: FiltersRequest) -> Result<Value, RpcError> {
    match request {
        FiltersRequest::Check(filter) => {
            let program = shared.store.compile(&filter)?;
            Ok(json!({ "canonical": program.to_string() }))
        }
        FiltersRequest::Explain(filter) => {
            let program = shared.store.compile(&filter)?;
            let plan = shared.store.explain(&filter)?;
            Ok(
                json!({ "canonical": program.to_string(), "program": program.explain(), "plan": plan }),
            )
        }
    }
}
