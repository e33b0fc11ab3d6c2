//! A Rust client of the session-filter server's protocol (SPEC section 11:
//! JSON-RPC 2.0 over WebSocket).
//!
//! Open a session, call any method, and take listener events, incoming
//! requests and responses to requests by filter as streams (channels). A
//! lost connection can be taken back with [`Session::reconnect`], which
//! keeps the same session, listeners and handlers.
//!
//! ```no_run
//! use session_filter_client::{connect, OpenOptions, Target};
//!
//! # async fn run() -> Result<(), session_filter_client::Error> {
//! let admin = connect("ws://127.0.0.1:8080/session",
//!     OpenOptions::principal("admin", "password")).await?;
//! let traders = admin.count("hasRoles ['trader']").await?;
//! let closed = admin.close_sessions(Target::filter("$Principal is 'client'")).await?;
//! let mut listener = admin.listen("Department is 'Accounts'", &["Department"], None).await?;
//! while let Some(event) = listener.next().await {
//!     println!("{event}");
//! }
//! # let _ = (traders, closed);
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

/// What went wrong.
#[derive(Clone, Debug, PartialEq)]
pub enum Error {
    /// The server answered with an error (SPEC 11.1 codes).
    Rpc {
        /// The JSON-RPC error code.
        code: i64,
        /// The server's message.
        message: String,
        /// Its `data`, if any.
        data: Option<Value>,
    },
    /// The connection could not be made, or was lost before the answer.
    Connection(String),
    /// The server's answer was not what the protocol says.
    Protocol(String),
}

impl Error {
    /// The JSON-RPC code of an error answer.
    pub fn code(&self) -> Option<i64> {
        match self {
            Error::Rpc { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Rpc {
                code,
                message,
                data,
            } => {
                write!(f, "{message} (code {code}")?;
                if let Some(d) = data {
                    write!(f, ", data {d}")?;
                }
                f.write_str(")")
            }
            Error::Connection(m) => write!(f, "connection: {m}"),
            Error::Protocol(m) => write!(f, "protocol: {m}"),
        }
    }
}

impl std::error::Error for Error {}

/// How to open a session.
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    /// The principal (none: anonymous).
    pub principal: Option<String>,
    /// Its credentials.
    pub credentials: Option<String>,
    /// Proposed user properties.
    pub properties: BTreeMap<String, String>,
    /// The client type (default `OTHER`).
    pub client_type: Option<String>,
}

impl OpenOptions {
    /// An anonymous session.
    pub fn anonymous() -> OpenOptions {
        OpenOptions::default()
    }

    /// A session of `principal` with a password.
    pub fn principal(principal: impl Into<String>, password: impl Into<String>) -> OpenOptions {
        OpenOptions {
            principal: Some(principal.into()),
            credentials: Some(password.into()),
            ..OpenOptions::default()
        }
    }

    /// Proposes a user property.
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> OpenOptions {
        self.properties.insert(key.into(), value.into());
        self
    }
}

/// Which sessions an operation acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// One session by id.
    Id(String),
    /// Every session a filter matches.
    Filter(String),
}

impl Target {
    /// A session by id.
    pub fn id(id: impl Into<String>) -> Target {
        Target::Id(id.into())
    }

    /// Sessions by filter.
    pub fn filter(filter: impl Into<String>) -> Target {
        Target::Filter(filter.into())
    }

    fn insert(&self, params: &mut Value) {
        match self {
            Target::Id(id) => params["session_id"] = json!(id),
            Target::Filter(f) => params["filter"] = json!(f),
        }
    }
}

/// A notification from the server.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    /// Its method (`clients.event`, `closed`, …).
    pub method: String,
    /// Its params.
    pub params: Value,
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}",
            json!({"method": self.method, "params": self.params})
        )
    }
}

/// Where a pending request's answer goes, and what it opens.
struct Pending {
    answer: oneshot::Sender<Result<Value, Error>>,
    /// A channel to register under the id the result names
    /// (`listener` or `request`), before the next message is read.
    opens: Option<(&'static str, mpsc::UnboundedSender<Notification>)>,
}

#[derive(Default)]
struct Routes {
    pending: HashMap<u64, Pending>,
    listeners: HashMap<String, mpsc::UnboundedSender<Notification>>,
    requests: HashMap<u64, mpsc::UnboundedSender<Notification>>,
    handlers: HashMap<String, mpsc::UnboundedSender<Notification>>,
}

struct Inner {
    url: String,
    routes: Mutex<Routes>,
    out: Mutex<Option<mpsc::UnboundedSender<Message>>>,
    next: AtomicU64,
    others: mpsc::UnboundedSender<Notification>,
    others_rx: Mutex<Option<mpsc::UnboundedReceiver<Notification>>>,
    closed: Mutex<Option<String>>,
    connected: AtomicBool,
    session_id: Mutex<String>,
    token: Mutex<String>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An open session. Cloning gives another handle to the same session.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
    result: Arc<Value>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session").field("id", &self.id()).finish()
    }
}

/// Opens a session at `url` (`ws://HOST:PORT/session`).
pub async fn connect(url: &str, options: OpenOptions) -> Result<Session, Error> {
    let mut params = json!({});
    if let Some(p) = &options.principal {
        params["principal"] = json!(p);
    }
    if let Some(c) = &options.credentials {
        params["credentials"] = json!(c);
    }
    if !options.properties.is_empty() {
        params["properties"] = json!(options.properties);
    }
    if let Some(t) = &options.client_type {
        params["client_type"] = json!(t);
    }
    let (others, others_rx) = mpsc::unbounded_channel();
    let inner = Arc::new(Inner {
        url: url.to_owned(),
        routes: Mutex::new(Routes::default()),
        out: Mutex::new(None),
        next: AtomicU64::new(0),
        others,
        others_rx: Mutex::new(Some(others_rx)),
        closed: Mutex::new(None),
        connected: AtomicBool::new(false),
        session_id: Mutex::new(String::new()),
        token: Mutex::new(String::new()),
    });
    let result = open(&inner, params).await?;
    Ok(Session {
        inner,
        result: Arc::new(result),
    })
}

/// Connects and sends `open`.
async fn open(inner: &Arc<Inner>, params: Value) -> Result<Value, Error> {
    let (socket, _) = tokio_tungstenite::connect_async(inner.url.as_str())
        .await
        .map_err(|e| Error::Connection(e.to_string()))?;
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    *lock(&inner.out) = Some(tx);
    inner.connected.store(true, Ordering::SeqCst);
    tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if sink.send(m).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let reader = inner.clone();
    tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            if let Message::Text(text) = message {
                reader.route(text.as_str());
            }
        }
        reader.lost();
    });
    let result = call(inner, "open", params, None).await?;
    if let Some(id) = result.get("session_id").and_then(Value::as_str) {
        *lock(&inner.session_id) = id.to_owned();
    }
    if let Some(t) = result.get("token").and_then(Value::as_str) {
        *lock(&inner.token) = t.to_owned();
    }
    Ok(result)
}

async fn call(
    inner: &Arc<Inner>,
    method: &str,
    params: Value,
    opens: Option<(&'static str, mpsc::UnboundedSender<Notification>)>,
) -> Result<Value, Error> {
    let id = inner.next.fetch_add(1, Ordering::Relaxed) + 1;
    let (tx, rx) = oneshot::channel();
    lock(&inner.routes)
        .pending
        .insert(id, Pending { answer: tx, opens });
    let text = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
    let sent = lock(&inner.out)
        .as_ref()
        .is_some_and(|out| out.send(Message::Text(text.into())).is_ok());
    if !sent {
        lock(&inner.routes).pending.remove(&id);
        return Err(Error::Connection("not connected".into()));
    }
    rx.await.unwrap_or_else(|_| {
        Err(Error::Connection(
            "the connection was lost before the answer".into(),
        ))
    })
}

impl Inner {
    fn route(&self, text: &str) {
        let Ok(message) = serde_json::from_str::<Value>(text) else {
            return;
        };
        if let Some(method) = message.get("method").and_then(Value::as_str) {
            let params = message.get("params").cloned().unwrap_or(Value::Null);
            let note = Notification {
                method: method.to_owned(),
                params,
            };
            self.notify(note);
            return;
        }
        let Some(id) = message.get("id").and_then(Value::as_u64) else {
            return;
        };
        let mut routes = lock(&self.routes);
        let Some(pending) = routes.pending.remove(&id) else {
            return;
        };
        let outcome = if let Some(error) = message.get("error") {
            Err(Error::Rpc {
                code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: error
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                data: error.get("data").cloned(),
            })
        } else {
            let result = message.get("result").cloned().unwrap_or(Value::Null);
            if let Some((field, channel)) = pending.opens {
                match result.get(field) {
                    Some(Value::String(s)) => {
                        routes.listeners.insert(s.clone(), channel);
                    }
                    Some(Value::Number(n)) => {
                        if let Some(n) = n.as_u64() {
                            routes.requests.insert(n, channel);
                        }
                    }
                    _ => {}
                }
            }
            Ok(result)
        };
        drop(routes);
        let _ = pending.answer.send(outcome);
    }

    fn notify(&self, note: Notification) {
        let routes = lock(&self.routes);
        let channel = match note.method.as_str() {
            "clients.event" => note
                .params
                .get("listener")
                .and_then(Value::as_str)
                .and_then(|l| routes.listeners.get(l)),
            "messaging.response" | "messaging.done" => note
                .params
                .get("request")
                .and_then(Value::as_u64)
                .and_then(|r| routes.requests.get(&r)),
            "messaging.request" => note
                .params
                .get("path")
                .and_then(Value::as_str)
                .and_then(|p| routes.handlers.get(p)),
            "closed" => {
                *lock(&self.closed) = Some(
                    note.params
                        .get("reason")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                );
                None
            }
            _ => None,
        };
        let note = match channel {
            Some(c) => match c.send(note) {
                Ok(()) => return,
                Err(e) => e.0,
            },
            None => note,
        };
        drop(routes);
        let _ = self.others.send(note);
    }

    fn lost(&self) {
        self.connected.store(false, Ordering::SeqCst);
        *lock(&self.out) = None;
        let pending: Vec<Pending> = lock(&self.routes).pending.drain().map(|(_, p)| p).collect();
        for p in pending {
            let _ = p.answer.send(Err(Error::Connection(
                "the connection was lost before the answer".into(),
            )));
        }
    }
}

/// A listener's events (`clients.event` params).
pub struct Listener {
    id: String,
    events: mpsc::UnboundedReceiver<Notification>,
}

impl Listener {
    /// The listener's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The next event's params; `None` once the session is gone.
    pub async fn next(&mut self) -> Option<Value> {
        self.events.recv().await.map(|n| n.params)
    }

    /// The next event, waiting at most `timeout`.
    pub async fn next_timeout(&mut self, timeout: Duration) -> Option<Value> {
        tokio::time::timeout(timeout, self.next())
            .await
            .ok()
            .flatten()
    }
}

/// Requests sent to a path this session handles.
pub struct Handler {
    session: Session,
    path: String,
    requests: mpsc::UnboundedReceiver<Notification>,
}

/// One request to answer.
#[derive(Clone, Debug)]
pub struct IncomingRequest {
    /// The id to answer under.
    pub id: u64,
    /// The path it was sent to.
    pub path: String,
    /// The request itself.
    pub request: Value,
    /// The sender's session id.
    pub from: String,
}

impl Handler {
    /// The path handled.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The next request; `None` once the session is gone.
    pub async fn next(&mut self) -> Option<IncomingRequest> {
        let n = self.requests.recv().await?;
        Some(IncomingRequest {
            id: n.params.get("id").and_then(Value::as_u64).unwrap_or(0),
            path: self.path.clone(),
            request: n.params.get("request").cloned().unwrap_or(Value::Null),
            from: n
                .params
                .get("from")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
        })
    }

    /// Answers a request.
    pub async fn respond(&self, request: &IncomingRequest, response: Value) -> Result<(), Error> {
        self.session
            .call(
                "messaging.respond",
                json!({"id": request.id, "response": response}),
            )
            .await
            .map(|_| ())
    }

    /// Refuses a request with an error text.
    pub async fn reject(&self, request: &IncomingRequest, error: &str) -> Result<(), Error> {
        self.session
            .call(
                "messaging.respond",
                json!({"id": request.id, "error": error}),
            )
            .await
            .map(|_| ())
    }
}

/// The responses to a request by filter, ending with the summary.
pub struct Responses {
    /// How many sessions the request reached.
    pub count: u64,
    /// The request's id.
    pub request: u64,
    events: mpsc::UnboundedReceiver<Notification>,
}

/// One step of a request by filter.
#[derive(Clone, Debug, PartialEq)]
pub enum Response {
    /// A recipient answered (`response` or `error` in the params).
    Answer(Value),
    /// Every recipient is accounted for: `responded`, `failed`, `timed_out`.
    Done(Value),
}

impl Responses {
    /// The next response, then the summary, then `None`.
    pub async fn next(&mut self) -> Option<Response> {
        let n = self.events.recv().await?;
        Some(if n.method == "messaging.done" {
            self.events.close();
            Response::Done(n.params)
        } else {
            Response::Answer(n.params)
        })
    }
}

/// A lock this session owns; released when dropped (or by
/// [`LockGuard::release`]).
pub struct LockGuard {
    session: Session,
    /// The lock's name.
    pub name: String,
    /// Its fencing token.
    pub sequence: u64,
    /// Its scope (`session` or `connection`).
    pub scope: String,
    released: bool,
}

impl LockGuard {
    /// True when the lock may have been lost: the session closed, or (for
    /// scope `connection`) its connection was lost.
    pub fn is_lost(&self) -> bool {
        self.session.closed_reason().is_some()
            || (self.scope == "connection" && !self.session.is_connected())
    }

    /// Releases the lock; true when this session still owned it.
    pub async fn release(mut self) -> Result<bool, Error> {
        self.released = true;
        let r = self
            .session
            .call("locks.release", json!({"name": self.name}))
            .await?;
        Ok(r.get("released").and_then(Value::as_bool).unwrap_or(false))
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let session = self.session.clone();
        let name = self.name.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = session.call("locks.release", json!({ "name": name })).await;
            });
        }
    }
}

impl Session {
    /// Its `$SessionId`.
    pub fn id(&self) -> String {
        lock(&self.inner.session_id).clone()
    }

    /// Its reconnect token.
    pub fn token(&self) -> String {
        lock(&self.inner.token).clone()
    }

    /// The result of `open`: `session_id`, `token`, `properties`,
    /// `reconnect_timeout_ms`.
    pub fn opened(&self) -> &Value {
        &self.result
    }

    /// The reason of a `closed` notification, once one came.
    pub fn closed_reason(&self) -> Option<String> {
        lock(&self.inner.closed).clone()
    }

    /// True while the connection is up.
    pub fn is_connected(&self) -> bool {
        self.inner.connected.load(Ordering::SeqCst)
    }

    /// Notifications no listener, handler or request took (`closed`
    /// among them); only the first caller gets the channel.
    pub fn notifications(&self) -> Option<mpsc::UnboundedReceiver<Notification>> {
        lock(&self.inner.others_rx).take()
    }

    /// Sends any request and waits for its result.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, Error> {
        call(&self.inner, method, params, None).await
    }

    /// Drops the connection without `close` (as a network failure would).
    pub fn drop_connection(&self) {
        *lock(&self.inner.out) = None;
    }

    /// Takes the session back on a new connection with its token: same
    /// id, same listeners and handlers.
    pub async fn reconnect(&self) -> Result<Value, Error> {
        let params = json!({"reconnect": {"session_id": self.id(), "token": self.token()}});
        open(&self.inner, params).await
    }

    /// The caller's permissions (on `path`, if given).
    pub async fn permissions(&self, path: Option<&str>) -> Result<Value, Error> {
        self.call("permissions", json!({ "path": path })).await
    }

    /// How many sessions match.
    pub async fn count(&self, filter: &str) -> Result<u64, Error> {
        let r = self
            .call("clients.count", json!({ "filter": filter }))
            .await?;
        number(&r, "count")
    }

    /// A page of matching sessions (`params` as SPEC 11.5: `properties`,
    /// `order_by`, `descending`, `offset`, `limit`).
    pub async fn fetch(&self, filter: &str, mut params: Value) -> Result<Value, Error> {
        if !params.is_object() {
            params = json!({});
        }
        params["filter"] = json!(filter);
        self.call("clients.fetch", params).await
    }

    /// A session's properties (`keys`: none for all).
    pub async fn get_properties(&self, id: &str, keys: Option<&[&str]>) -> Result<Value, Error> {
        let r = self
            .call(
                "clients.get_properties",
                json!({"session_id": id, "keys": keys}),
            )
            .await?;
        Ok(r.get("properties").cloned().unwrap_or(Value::Null))
    }

    /// Closes sessions; returns how many.
    pub async fn close_sessions(&self, target: Target) -> Result<u64, Error> {
        let mut params = json!({});
        target.insert(&mut params);
        number(&self.call("clients.close", params).await?, "count")
    }

    /// Changes roles; returns the number of matching sessions.
    pub async fn change_roles(
        &self,
        target: Target,
        remove: &[&str],
        add: &[&str],
    ) -> Result<u64, Error> {
        let mut params = json!({"remove": remove, "add": add});
        target.insert(&mut params);
        number(&self.call("clients.change_roles", params).await?, "count")
    }

    /// Changes properties (`None` removes): by id the changed keys with
    /// their previous values, by filter the count.
    pub async fn set_properties(
        &self,
        target: Target,
        properties: &[(&str, Option<&str>)],
    ) -> Result<Value, Error> {
        let props: Map<String, Value> = properties
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(|v| json!(v)).unwrap_or(Value::Null)))
            .collect();
        let mut params = json!({ "properties": props });
        target.insert(&mut params);
        self.call("clients.set_properties", params).await
    }

    /// Listens to the sessions a filter matches.
    pub async fn listen(
        &self,
        filter: &str,
        properties: &[&str],
        after: Option<u64>,
    ) -> Result<Listener, Error> {
        let (tx, rx) = mpsc::unbounded_channel();
        let params = json!({"filter": filter, "properties": properties, "after": after});
        let r = call(
            &self.inner,
            "clients.listen",
            params,
            Some(("listener", tx)),
        )
        .await?;
        let id = r
            .get("listener")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::Protocol("clients.listen gave no listener".into()))?;
        Ok(Listener {
            id: id.to_owned(),
            events: rx,
        })
    }

    /// Stops a listener.
    pub async fn unlisten(&self, listener: &Listener) -> Result<(), Error> {
        self.call("clients.unlisten", json!({"listener": listener.id}))
            .await
            .map(|_| ())
    }

    /// Takes a lock, waiting for it; `scope` is `session` or `connection`.
    pub async fn lock(&self, name: &str, scope: &str) -> Result<LockGuard, Error> {
        let r = self
            .call("locks.acquire", json!({"name": name, "scope": scope}))
            .await?;
        Ok(LockGuard {
            session: self.clone(),
            name: name.to_owned(),
            sequence: number(&r, "sequence")?,
            scope: r
                .get("scope")
                .and_then(Value::as_str)
                .unwrap_or(scope)
                .to_owned(),
            released: false,
        })
    }

    /// Accepts requests sent to `path`.
    pub async fn add_handler(&self, path: &str) -> Result<Handler, Error> {
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.inner.routes)
            .handlers
            .insert(path.to_owned(), tx);
        if let Err(e) = self
            .call("messaging.add_handler", json!({ "path": path }))
            .await
        {
            lock(&self.inner.routes).handlers.remove(path);
            return Err(e);
        }
        Ok(Handler {
            session: self.clone(),
            path: path.to_owned(),
            requests: rx,
        })
    }

    /// Sends a request to one session and waits for its response.
    pub async fn send_to_session(
        &self,
        id: &str,
        path: &str,
        request: Value,
        timeout_ms: Option<u64>,
    ) -> Result<Value, Error> {
        let r = self
            .call(
                "messaging.send",
                json!({"session_id": id, "path": path, "request": request, "timeout_ms": timeout_ms}),
            )
            .await?;
        Ok(r.get("response").cloned().unwrap_or(Value::Null))
    }

    /// Sends a request to every matching session with a handler for
    /// `path`; the responses come as a stream ending with the summary.
    pub async fn send_to_filter(
        &self,
        filter: &str,
        path: &str,
        request: Value,
        timeout_ms: Option<u64>,
    ) -> Result<Responses, Error> {
        let (tx, rx) = mpsc::unbounded_channel();
        let params =
            json!({"filter": filter, "path": path, "request": request, "timeout_ms": timeout_ms});
        let r = call(&self.inner, "messaging.send", params, Some(("request", tx))).await?;
        Ok(Responses {
            count: number(&r, "count")?,
            request: number(&r, "request")?,
            events: rx,
        })
    }

    /// Adds or replaces a session metric collector (SPEC 11.9): `spec` is
    /// `{"name","filter","group_by"?,"max_groups"?,"remove_empty"?,"export"?}`.
    /// Needs CONTROL_SERVER.
    ///
    /// ```no_run
    /// # async fn run(session: &session_filter_client::Session) -> Result<(), session_filter_client::Error> {
    /// use serde_json::json;
    /// session
    ///     .put_session_collector(json!({
    ///         "name": "traders_by_country",
    ///         "filter": "hasRoles ['trader']",
    ///         "group_by": ["$Country"],
    ///     }))
    ///     .await?;
    /// let figures = session.fetch_metrics(Some(&["traders_by_country"])).await?;
    /// println!("{}", figures["collectors"]["traders_by_country"]["groups"]);
    /// # Ok(()) }
    /// ```
    pub async fn put_session_collector(&self, spec: Value) -> Result<(), Error> {
        self.call("metrics.put_session_collector", spec)
            .await
            .map(|_| ())
    }

    /// Removes a collector (an unknown name too). Needs CONTROL_SERVER.
    pub async fn remove_session_collector(&self, name: &str) -> Result<(), Error> {
        self.call("metrics.remove_session_collector", json!({ "name": name }))
            .await
            .map(|_| ())
    }

    /// Every collector, defaults filled in. Needs VIEW_SERVER.
    pub async fn list_session_collectors(&self) -> Result<Vec<Value>, Error> {
        let r = self
            .call("metrics.list_session_collectors", json!({}))
            .await?;
        match r.get("collectors") {
            Some(Value::Array(list)) => Ok(list.clone()),
            _ => Err(Error::Protocol(format!(
                "the result has no collectors: {r}"
            ))),
        }
    }

    /// The collectors' figures (all, or those `names`) and the server's:
    /// `{"collectors":{NAME:{"groups","ungrouped"}},"server":{…}}`. Needs
    /// VIEW_SERVER.
    pub async fn fetch_metrics(&self, names: Option<&[&str]>) -> Result<Value, Error> {
        self.call("metrics.fetch", json!({ "names": names })).await
    }

    /// Closes this session.
    pub async fn close(&self) -> Result<(), Error> {
        self.call("close", json!({})).await.map(|_| ())
    }
}

fn number(v: &Value, field: &str) -> Result<u64, Error> {
    v.get(field)
        .and_then(Value::as_u64)
        .ok_or_else(|| Error::Protocol(format!("the result has no number {field:?}: {v}")))
}
