//! Client control (SPEC 11.5): count, fetch, read, close and change
//! sessions by id or by filter.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Map, Value};
use session_filter::{FetchRequest, Program, PropertyChange};

use crate::error::RpcError;
use crate::methods::{params, Call, Need};
use crate::security::GlobalPermission::{ModifySession, ViewSession};
use crate::server::Shared;
use crate::session::CloseReason;

/// The most rows one `clients.fetch` returns.
pub const MAX_FETCH_LIMIT: usize = 10_000;

/// Exactly one of `session_id` and `filter`.
#[derive(Clone, Debug)]
pub(crate) enum Target {
    Id(String),
    Filter(String),
}

#[derive(Deserialize)]
struct TargetParams {
    session_id: Option<String>,
    filter: Option<String>,
}

impl Target {
    pub(crate) fn parse(p: &Map<String, Value>) -> Result<Target, RpcError> {
        let t: TargetParams = params(p.clone())?;
        match (t.session_id, t.filter) {
            (Some(id), None) => Ok(Target::Id(id)),
            (None, Some(filter)) => Ok(Target::Filter(filter)),
            (None, None) => Err(RpcError::params("give one of session_id and filter")),
            (Some(_), Some(_)) => Err(RpcError::params(
                "give only one of session_id and filter, not both",
            )),
        }
    }
}

/// Which properties to return: keys, with `*F` (every fixed property) and
/// `*U` (every user property), or all of them.
#[derive(Clone, Debug, Default)]
pub(crate) struct Projection {
    all: bool,
    fixed: bool,
    user: bool,
    keys: Vec<String>,
}

impl Projection {
    pub(crate) fn none() -> Projection {
        Projection::default()
    }

    pub(crate) fn all() -> Projection {
        Projection {
            all: true,
            ..Projection::default()
        }
    }

    /// From a params value: absent, `"all"`, or a list of keys.
    pub(crate) fn parse(
        value: Option<&Value>,
        default: Projection,
    ) -> Result<Projection, RpcError> {
        match value {
            None | Some(Value::Null) => Ok(default),
            Some(Value::String(s)) if s == "all" => Ok(Projection::all()),
            Some(Value::Array(items)) => {
                let mut p = Projection::default();
                for item in items {
                    match item.as_str() {
                        Some("*F") => p.fixed = true,
                        Some("*U") => p.user = true,
                        Some(k) => p.keys.push(k.to_owned()),
                        None => return Err(RpcError::params("properties must be strings")),
                    }
                }
                Ok(p)
            }
            Some(_) => Err(RpcError::params(
                "properties must be a list of keys or \"all\"",
            )),
        }
    }

    /// This projection with `key` asked for too.
    pub(crate) fn with_key(mut self, key: &str) -> Projection {
        self.keys.push(key.to_owned());
        self
    }

    /// True when no property is asked for.
    pub(crate) fn is_empty(&self) -> bool {
        !self.all && !self.fixed && !self.user && self.keys.is_empty()
    }

    /// True when `key` is asked for.
    pub(crate) fn wants(&self, key: &str) -> bool {
        self.all
            || (self.fixed && key.starts_with('$'))
            || (self.user && !key.starts_with('$'))
            || self.keys.iter().any(|k| k == key)
    }

    /// The fetch request that reads enough for this projection.
    fn fetch(&self, request: FetchRequest) -> FetchRequest {
        if self.all || self.fixed || self.user {
            request.all_properties()
        } else if self.keys.is_empty() {
            request
        } else {
            request.properties(self.keys.iter().cloned())
        }
    }

    /// The asked-for subset of `properties`.
    pub(crate) fn apply<'a>(
        &self,
        properties: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Map<String, Value> {
        properties
            .into_iter()
            .filter(|(k, _)| self.wants(k))
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect()
    }
}

/// A parsed client-control request.
pub(crate) enum Request {
    Count(String),
    Fetch {
        filter: String,
        projection: Projection,
        order_by: Option<String>,
        descending: bool,
        offset: usize,
        limit: usize,
    },
    GetProperties {
        session_id: String,
        projection: Projection,
    },
    Close(Target),
    ChangeRoles {
        target: Target,
        remove: Vec<String>,
        add: Vec<String>,
    },
    SetProperties {
        target: Target,
        change: Vec<(String, Option<String>)>,
    },
}

#[derive(Deserialize)]
struct FetchParams {
    filter: String,
    order_by: Option<String>,
    descending: Option<bool>,
    offset: Option<usize>,
    limit: Option<usize>,
}

#[derive(Deserialize)]
struct GetParams {
    session_id: String,
}

#[derive(Deserialize)]
struct RolesParams {
    remove: Option<Vec<String>>,
    add: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct CountParams {
    filter: String,
}

impl Request {
    pub(crate) fn parse(method: &str, p: Map<String, Value>) -> Result<Request, RpcError> {
        Ok(match method {
            "clients.count" => Request::Count(params::<CountParams>(p)?.filter),
            "clients.fetch" => {
                let projection = Projection::parse(p.get("properties"), Projection::none())?;
                let f: FetchParams = params(p)?;
                let limit = f.limit.unwrap_or(100);
                if limit > MAX_FETCH_LIMIT {
                    return Err(RpcError::params(format!(
                        "limit {limit} is over {MAX_FETCH_LIMIT}"
                    )));
                }
                Request::Fetch {
                    filter: f.filter,
                    projection,
                    order_by: f.order_by,
                    descending: f.descending.unwrap_or(false),
                    offset: f.offset.unwrap_or(0),
                    limit,
                }
            }
            "clients.get_properties" => {
                let projection = Projection::parse(p.get("keys"), Projection::all())?;
                Request::GetProperties {
                    session_id: params::<GetParams>(p)?.session_id,
                    projection,
                }
            }
            "clients.close" => Request::Close(Target::parse(&p)?),
            "clients.change_roles" => {
                let target = Target::parse(&p)?;
                let r: RolesParams = params(p)?;
                let (remove, add) = (r.remove.unwrap_or_default(), r.add.unwrap_or_default());
                if remove.is_empty() && add.is_empty() {
                    return Err(RpcError::params("both role lists are empty"));
                }
                if let Some(both) = remove.iter().find(|r| add.contains(r)) {
                    return Err(RpcError::params(format!(
                        "the role {both:?} is in both lists"
                    )));
                }
                Request::ChangeRoles {
                    target,
                    remove,
                    add,
                }
            }
            "clients.set_properties" => {
                let target = Target::parse(&p)?;
                let Some(Value::Object(props)) = p.get("properties") else {
                    return Err(RpcError::params(
                        "properties must be an object of key to string or null",
                    ));
                };
                let mut change = Vec::with_capacity(props.len());
                for (k, v) in props {
                    match v {
                        Value::String(s) => change.push((k.clone(), Some(s.clone()))),
                        Value::Null => change.push((k.clone(), None)),
                        _ => {
                            return Err(RpcError::params(format!(
                                "the value of {k:?} must be a string or null"
                            )))
                        }
                    }
                }
                Request::SetProperties { target, change }
            }
            other => return Err(RpcError::MethodNotFound(other.to_owned())),
        })
    }

    pub(crate) fn needs(&self) -> Vec<Need> {
        match self {
            Request::Count(_) | Request::Fetch { .. } | Request::GetProperties { .. } => {
                vec![Need::Global(ViewSession)]
            }
            Request::Close(_) | Request::ChangeRoles { .. } => vec![Need::Global(ModifySession)],
            Request::SetProperties { .. } => {
                vec![Need::Global(ViewSession), Need::Global(ModifySession)]
            }
        }
    }

    pub(crate) async fn apply(self, call: &mut Call<'_>) -> Result<Value, RpcError> {
        let shared = call.shared.clone();
        match self {
            Request::Count(filter) => {
                let program = shared.store.compile(&filter)?;
                blocking(move || Ok(json!({"count": shared.store.count_compiled(&program)}))).await
            }
            Request::Fetch {
                filter,
                projection,
                order_by,
                descending,
                offset,
                limit,
            } => {
                let program = shared.store.compile(&filter)?;
                let mut request = FetchRequest::new().offset(offset).limit(limit);
                if let Some(key) = order_by {
                    request = request.order_by(key);
                }
                if descending {
                    request = request.descending();
                }
                let request = projection.fetch(request);
                blocking(move || {
                    let page = shared.store.fetch_compiled(&program, &request)?;
                    let sessions: Vec<Value> = page
                        .sessions
                        .iter()
                        .map(|s| json!({"id": s.id, "properties": projection.apply(&s.properties)}))
                        .collect();
                    Ok(json!({"total": page.total, "sessions": sessions}))
                })
                .await
            }
            Request::GetProperties {
                session_id,
                projection,
            } => {
                let properties = shared
                    .store
                    .get(&session_id)
                    .ok_or(RpcError::NoSuchSession(session_id))?;
                Ok(json!({ "properties": projection.apply(&properties) }))
            }
            Request::Close(Target::Id(id)) => {
                if id == *call.client.id {
                    // The caller's answer comes first, then its own close.
                    call.after.close_self = Some(CloseReason::ClosedByController);
                    return Ok(json!({"count": 1}));
                }
                if shared.close(&id, CloseReason::ClosedByController) {
                    Ok(json!({"count": 1}))
                } else {
                    Err(RpcError::NoSuchSession(id))
                }
            }
            Request::Close(Target::Filter(filter)) => {
                let program = shared.store.compile(&filter)?;
                let me = call.client.id.clone();
                let (count, self_closed) =
                    blocking(move || Ok(close_by_filter(&shared, &program, &me))).await?;
                if self_closed {
                    call.after.close_self = Some(CloseReason::ClosedByController);
                }
                Ok(json!({ "count": count }))
            }
            Request::ChangeRoles {
                target,
                remove,
                add,
            } => {
                let remove: Vec<&str> = remove.iter().map(String::as_str).collect();
                let add: Vec<&str> = add.iter().map(String::as_str).collect();
                match target {
                    Target::Id(id) => {
                        shared.store.change_session_roles(&id, &remove, &add)?;
                        Ok(json!({"count": 1}))
                    }
                    Target::Filter(filter) => {
                        let program = shared.store.compile(&filter)?;
                        let count = shared
                            .store
                            .change_roles_compiled(&program, &remove, &add)?;
                        Ok(json!({ "count": count }))
                    }
                }
            }
            Request::SetProperties { target, change } => {
                let change: PropertyChange = change.into_iter().collect();
                match target {
                    Target::Id(id) => {
                        let changed = shared.store.change_session_properties(&id, &change)?;
                        let changed: BTreeMap<String, Value> = changed
                            .into_iter()
                            .map(|(k, v)| (k, v.map(Value::String).unwrap_or(Value::Null)))
                            .collect();
                        Ok(json!({ "changed": changed }))
                    }
                    Target::Filter(filter) => {
                        let program = shared.store.compile(&filter)?;
                        let count = blocking(move || {
                            shared
                                .store
                                .change_properties_compiled(&program, &change)
                                .map_err(RpcError::from)
                        })
                        .await?;
                        Ok(json!({ "count": count }))
                    }
                }
            }
        }
    }
}

/// Closes every session `program` matches; returns how many, and whether
/// `me` was among them (its own close is left to the caller, after its
/// answer).
fn close_by_filter(shared: &Arc<Shared>, program: &Program, me: &str) -> (usize, bool) {
    let closed = shared.store.close_sessions_compiled(program);
    let mut self_closed = false;
    for session in &closed {
        if session.id == me {
            self_closed = true;
        } else {
            shared.closed_in_store(&session.id, CloseReason::ClosedByController);
        }
    }
    (closed.len(), self_closed)
}

/// Runs store work that may take long off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, RpcError> + Send + 'static,
) -> Result<T, RpcError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| RpcError::data(format!("the request failed: {e}")))?
}
