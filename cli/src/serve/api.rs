//! The console's routes: the embedded page and the JSON API.
//!
//! Every answer is JSON, errors included: `{"error": {"message", …}}`, with
//! `line`, `column`, `offset` and `caret` (the input line with a caret under
//! the position, as the CLI prints it) for a bad filter. Bodies are JSON of
//! at most [`MAX_BODY`] bytes; a malformed body, a missing or unknown field
//! or an oversized body is a 400. Store work runs on tokio's blocking pool,
//! so a bulk action over a million sessions never stalls the live streams.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream::{self, Stream};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use session_filter::{
    Error, FetchRequest, Filter, FilterError, PropertyChange, Watch, WatchEvent, WatchOptions,
};

use super::App;
use crate::fetch::check_key;

/// The largest request body.
const MAX_BODY: usize = 1 << 20;
/// A fetch's page size when the request names none, and the largest allowed.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 10_000;
/// The most watch streams open at once.
const MAX_WATCHES: usize = 64;
/// Events sent in a row before the count is sent again.
const EVENTS_PER_COUNT: usize = 64;
/// How often an idle watch stream sends a comment, which also finds
/// clients that went away (their watch is then dropped).
const KEEP_ALIVE: Duration = Duration::from_secs(5);

const PAGE: &str = include_str!("console.html");
const STYLE: &str = include_str!("console.css");
const SCRIPT: &str = include_str!("console.js");

pub fn router(app: Arc<App>) -> Router {
    let writes = Router::new()
        .route("/api/close", post(close))
        .route("/api/roles", post(roles))
        .route("/api/properties", post(properties))
        .route_layer(middleware::from_fn_with_state(app.clone(), require_writes));
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", PAGE) }),
        )
        .route(
            "/console.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
        .route(
            "/console.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        // No icon: the page names none, and a browser asks anyway.
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/api/info", get(info))
        .route("/api/check", post(check))
        .route("/api/explain", post(explain))
        .route("/api/fetch", post(fetch))
        .route("/api/watch", get(watch))
        .merge(writes)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this route",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(app)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// An error answer: a status and `{"error": {...}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    error: Value,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error: json!({ "message": message.into() }),
        }
    }

    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// A bad filter, positioned as the CLI reports it.
    fn filter(e: &FilterError) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            error: json!({
                "line": e.line(),
                "column": e.column(),
                "offset": e.offset(),
                "message": e.message(),
                "caret": e.render(),
            }),
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        match e {
            Error::Filter(e) => ApiError::filter(&e),
            // The interner is full: the server's problem, not the request's.
            Error::Capacity(e) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            e => ApiError::bad_request(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.error }))).into_response()
    }
}

/// A JSON body whose rejections are JSON too.
struct Body<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Body<T>, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::bad_request(format!(
                    "the request body is larger than the limit of {} KiB",
                    MAX_BODY >> 10
                ))
            } else {
                ApiError::bad_request(format!("cannot read the request body: {}", e.body_text()))
            }
        })?;
        serde_json::from_slice(&bytes)
            .map(Body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
    }
}

/// Runs store work on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the request failed: {e}"),
        )
    })?
}

/// A JSON answer with the time the server spent on it, as `Server-Timing`.
fn timed(started: Instant, body: Value) -> Response {
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut response = Json(body).into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("store;dur={ms:.3}")) {
        response.headers_mut().insert("server-timing", value);
    }
    response
}

async fn require_writes(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    if app.allow_writes {
        next.run(request).await
    } else {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "writes are not allowed: start the server with --allow-writes",
        )
        .into_response()
    }
}

async fn info(State(app): State<Arc<App>>) -> Result<Json<Value>, ApiError> {
    // Counting takes every shard's read lock, which a bulk change holds
    // for writing: off the async threads.
    blocking(move || {
        Ok(Json(json!({
            "sessions": app.store.len(),
            "allow_writes": app.allow_writes,
            "churn": app.churn,
        })))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterBody {
    filter: String,
}

async fn check(
    State(app): State<Arc<App>>,
    Body(body): Body<FilterBody>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let filter = Filter::parse_with(&body.filter, &app.limits).map_err(|e| ApiError::filter(&e))?;
    Ok(timed(started, json!({ "canonical": filter.to_string() })))
}

async fn explain(
    State(app): State<Arc<App>>,
    Body(body): Body<FilterBody>,
) -> Result<Response, ApiError> {
    blocking(move || {
        let started = Instant::now();
        let program = app.store.compile(&body.filter)?.explain();
        let explained = app.store.explain(&body.filter)?;
        // The store's explanation starts with the program.
        let plan = explained
            .strip_prefix(&program)
            .unwrap_or(&explained)
            .to_owned();
        Ok(timed(
            started,
            json!({ "program": program, "plan": plan, "sessions": app.store.len() }),
        ))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FetchBody {
    filter: String,
    /// A list of keys, or `"all"`; absent: only the ids.
    #[serde(default)]
    properties: Option<Value>,
    #[serde(default)]
    order_by: Option<String>,
    #[serde(default)]
    descending: bool,
    #[serde(default)]
    offset: usize,
    #[serde(default)]
    limit: Option<usize>,
}

impl FetchBody {
    fn request(&self) -> Result<FetchRequest, ApiError> {
        let mut request = FetchRequest::new();
        match &self.properties {
            None => {}
            Some(Value::String(all)) if all == "all" => request = request.all_properties(),
            Some(Value::Array(items)) => {
                let mut keys = Vec::with_capacity(items.len());
                for item in items {
                    let Value::String(key) = item else {
                        return Err(ApiError::bad_request(format!(
                            "properties: expected keys as strings, found {item}"
                        )));
                    };
                    check_key(key)
                        .map_err(|e| ApiError::bad_request(format!("properties: {e}")))?;
                    keys.push(key.clone());
                }
                request = request.properties(keys);
            }
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "properties: expected a list of keys or \"all\", found {other}"
                )))
            }
        }
        if let Some(key) = &self.order_by {
            check_key(key).map_err(|e| ApiError::bad_request(format!("order_by: {e}")))?;
            request = request.order_by(key.clone());
        }
        if self.descending {
            request = request.descending();
        }
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if limit > MAX_LIMIT {
            return Err(ApiError::bad_request(format!(
                "limit: expected at most {MAX_LIMIT} sessions a page, found {limit}"
            )));
        }
        Ok(request.offset(self.offset).limit(limit))
    }
}

async fn fetch(
    State(app): State<Arc<App>>,
    Body(body): Body<FetchBody>,
) -> Result<Response, ApiError> {
    let request = body.request()?;
    blocking(move || {
        let started = Instant::now();
        let page = app.store.fetch(&body.filter, &request)?;
        let sessions: Vec<Value> = page
            .sessions
            .into_iter()
            .map(|s| json!({ "id": s.id, "properties": s.properties }))
            .collect();
        Ok(timed(
            started,
            json!({ "total": page.total, "sessions": sessions }),
        ))
    })
    .await
}

async fn close(
    State(app): State<Arc<App>>,
    Body(body): Body<FilterBody>,
) -> Result<Response, ApiError> {
    blocking(move || {
        let started = Instant::now();
        let count = app.store.close(&body.filter)?;
        Ok(timed(started, json!({ "count": count })))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RolesBody {
    filter: String,
    #[serde(default)]
    remove: Vec<String>,
    #[serde(default)]
    add: Vec<String>,
}

async fn roles(
    State(app): State<Arc<App>>,
    Body(body): Body<RolesBody>,
) -> Result<Response, ApiError> {
    blocking(move || {
        let started = Instant::now();
        let remove: Vec<&str> = body.remove.iter().map(String::as_str).collect();
        let add: Vec<&str> = body.add.iter().map(String::as_str).collect();
        let count = app.store.change_roles(&body.filter, &remove, &add)?;
        Ok(timed(started, json!({ "count": count })))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PropertiesBody {
    filter: String,
    /// Key to new value, or `null` to remove it.
    properties: BTreeMap<String, Option<String>>,
}

async fn properties(
    State(app): State<Arc<App>>,
    Body(body): Body<PropertiesBody>,
) -> Result<Response, ApiError> {
    blocking(move || {
        let started = Instant::now();
        let change: PropertyChange = body.properties.into_iter().collect();
        let count = app.store.change_properties(&body.filter, &change)?;
        Ok(timed(started, json!({ "count": count })))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WatchQuery {
    filter: String,
}

/// Holds one of the [`MAX_WATCHES`] places while its stream is open.
struct WatchSlot(Arc<App>);

impl Drop for WatchSlot {
    fn drop(&mut self) {
        self.0.watches.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn watch(
    State(app): State<Arc<App>>,
    query: Result<Query<WatchQuery>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if app.watches.fetch_add(1, Ordering::Relaxed) >= MAX_WATCHES {
        app.watches.fetch_sub(1, Ordering::Relaxed);
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("too many watches: at most {MAX_WATCHES} may be open at once"),
        ));
    }
    let slot = WatchSlot(app.clone());
    // Registration takes every shard's read lock: off the async threads.
    let watch = blocking(move || {
        Ok(app
            .store
            .watch(&query.filter, WatchOptions::new().skip_snapshot())?)
    })
    .await?;
    let feed = Feed {
        pending: VecDeque::from([count_event(watch.count())]),
        watch,
        _slot: slot,
    };
    let events = stream::unfold(feed, |mut feed| async move {
        loop {
            if let Some(event) = feed.pending.pop_front() {
                return Some((Ok(event), feed));
            }
            // The store went away: end the stream.
            let first = feed.watch.recv_async().await?;
            feed.queue(first);
            while feed.pending.len() < EVENTS_PER_COUNT {
                match feed.watch.try_recv() {
                    Some(event) => feed.queue(event),
                    None => break,
                }
            }
            feed.pending.push_back(count_event(feed.watch.count()));
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// A watch stream's state; dropping it (when the client goes) drops the
/// watch, which unregisters it.
struct Feed {
    watch: Watch,
    pending: VecDeque<Event>,
    _slot: WatchSlot,
}

impl Feed {
    fn queue(&mut self, event: WatchEvent) {
        let event = match event {
            WatchEvent::Entered { id, properties } => Event::default()
                .event("entered")
                .data(json!({ "id": &*id, "properties": properties.as_deref() }).to_string()),
            WatchEvent::Left { id, closed, .. } => Event::default()
                .event("left")
                .data(json!({ "id": &*id, "closed": closed }).to_string()),
            // The count that follows resynchronises the client.
            WatchEvent::Lagged { missed } => Event::default()
                .event("lagged")
                .data(json!({ "missed": missed }).to_string()),
            // Updates do not change membership; the console shows only that.
            _ => return,
        };
        self.pending.push_back(event);
    }
}

fn count_event(count: u64) -> Event {
    Event::default()
        .event("count")
        .data(json!({ "count": count }).to_string())
}
