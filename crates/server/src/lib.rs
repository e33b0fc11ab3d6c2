//! A session server (SPEC section 11): clients open sessions over
//! WebSocket, an authenticator decides their principal and roles, sessions
//! live through lost connections until they close, and sessions with the
//! right permissions count, fetch, close, change, listen to and message the
//! others by session filter, and take named locks. The store of the
//! `session-filter` engine is its memory.
//!
//! # Example
//!
//! A server on a free port with the embedded default configuration and one
//! authenticator of the embedder's own, run on the embedder's runtime:
//!
//! ```no_run
//! use std::sync::Arc;
//! use session_filter_server::{Authenticator, Config, Decision, Grant, OpenRequest, Server};
//!
//! struct Tokens;
//! impl Authenticator for Tokens {
//!     fn authenticate(&self, request: &OpenRequest) -> Decision {
//!         match request.credentials.as_deref() {
//!             Some("let-me-in") => Decision::Allow(Grant {
//!                 principal: Some(request.principal.clone()),
//!                 roles: vec!["OPERATOR".into()],
//!                 ..Grant::default()
//!             }),
//!             _ => Decision::Abstain,
//!         }
//!     }
//! }
//!
//! # async fn run() -> std::io::Result<()> {
//! let hash = session_filter_server::hash_password("admin-password").unwrap();
//! let mut config = Config::embedded_default(&hash);
//! config.server.listen = "127.0.0.1:0".into();
//! let server = Server::builder(config).authenticator(Arc::new(Tokens)).build();
//! let store = server.store().clone(); // in-process control of the sessions
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! server.serve(listener, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # drop(store);
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod clients;
mod cluster;
mod config;
mod connection;
mod error;
mod fuzz;
mod http;
mod listen;
mod locks;
mod messaging;
mod methods;
mod metrics;
mod outbound;
mod prometheus;
mod protocol;
mod security;
mod server;
mod session;
mod stats;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use session_filter::{SessionStore, StoreOptions};

pub use crate::config::{Config, ConfigError};
pub use crate::error::RpcError;
#[doc(hidden)]
pub use crate::fuzz::{fuzz_decode, Decoded};
pub use crate::locks::{Scope, MAX_LOCK_NAME};
pub use crate::security::{
    hash_password, random_password, verify_password, Authenticator, ConfigAuthenticator, Decision,
    GlobalPermission, Grant, OpenRequest, PathPermission, Permissions, Roles,
};
pub use crate::session::CloseReason;

/// Builds a [`Server`].
pub struct ServerBuilder {
    config: Config,
    authenticators: Vec<Arc<dyn Authenticator>>,
    store: Option<Arc<SessionStore>>,
}

impl ServerBuilder {
    /// Adds an authenticator, asked before the configuration's own (which
    /// always comes last in the chain).
    pub fn authenticator(mut self, authenticator: Arc<dyn Authenticator>) -> ServerBuilder {
        self.authenticators.push(authenticator);
        self
    }

    /// Uses this store (for example one with sessions already in it).
    pub fn store(mut self, store: Arc<SessionStore>) -> ServerBuilder {
        self.store = Some(store);
        self
    }

    /// The server.
    pub fn build(self) -> Server {
        let mut authenticators = self.authenticators;
        authenticators.push(Arc::new(ConfigAuthenticator::new(&self.config)));
        let store = self
            .store
            .unwrap_or_else(|| Arc::new(SessionStore::with_options(StoreOptions::new())));
        let roles = Roles::from_config(&self.config);
        let shared = server::Shared::new(
            self.config.server.clone(),
            store,
            roles,
            authenticators,
            metrics::Collectors::with_configured(
                self.config
                    .metrics
                    .collectors
                    .iter()
                    .map(|c| c.spec())
                    .collect(),
            ),
        );
        shared.metrics.start_configured(&shared.store);
        Server {
            shared: Arc::new(shared),
            config: Arc::new(self.config),
        }
    }
}

/// The params object of a method (`null` is no params).
fn object(
    params: serde_json::Value,
) -> Result<serde_json::Map<String, serde_json::Value>, RpcError> {
    match params {
        serde_json::Value::Object(map) => Ok(map),
        serde_json::Value::Null => Ok(serde_json::Map::new()),
        other => Err(RpcError::params(format!(
            "params must be an object, found {other}"
        ))),
    }
}

/// A session server; clone it freely (it is a handle).
#[derive(Clone)]
pub struct Server {
    shared: Arc<server::Shared>,
    config: Arc<Config>,
}

impl Server {
    /// A builder for a server with this configuration.
    pub fn builder(config: Config) -> ServerBuilder {
        ServerBuilder {
            config,
            authenticators: Vec::new(),
            store: None,
        }
    }

    /// The store that holds every session's properties: sessions put here
    /// by the embedder are seen by filters like the clients' own (they have
    /// no connection).
    pub fn store(&self) -> &Arc<SessionStore> {
        &self.shared.store
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Closes a session for `reason` (its client is told, its locks go);
    /// false when there was none.
    pub fn close_session(&self, id: &str, reason: CloseReason) -> bool {
        self.shared.close(id, reason)
    }

    /// Joins a cluster of session servers over the NATS server at `nats`
    /// (JetStream on) as the member named by `[server] name` (SPEC 12):
    /// fails when that name is taken by a live member, the names are not
    /// ASCII letters, digits, `-` and `_`, or the broker cannot be reached.
    /// Call it once, before [`Server::serve`], within a tokio runtime.
    pub async fn join_cluster(&self, nats: &str, cluster: &str) -> Result<(), String> {
        if self.shared.cluster().is_some() {
            return Err("this server is in a cluster already".into());
        }
        let timeout =
            std::time::Duration::from_millis(self.config.cluster.request_timeout_ms.max(1));
        let joined = cluster::Cluster::start(&self.shared, nats, cluster, timeout).await?;
        self.shared
            .cluster
            .set(joined)
            .map_err(|_| "this server is in a cluster already".to_owned())
    }

    /// The router: `/session` (the WebSocket endpoint), the console at `/`,
    /// and `/metrics`. `local` is the address it is served on (for the
    /// Host and Origin checks).
    pub fn router(&self, local: SocketAddr) -> axum::Router {
        http::router(self.shared.clone(), self.config.clone(), local)
    }

    /// Adds or replaces a session metric collector in process, with the
    /// params of `metrics.put_session_collector` (SPEC 11.9):
    /// `{"name","filter","group_by"?,"max_groups"?,"remove_empty"?,"export"?}`.
    /// The errors are the method's (-32602, 106).
    ///
    /// ```no_run
    /// # async fn run(server: session_filter_server::Server) -> Result<(), session_filter_server::RpcError> {
    /// use serde_json::json;
    /// server
    ///     .put_session_collector(json!({
    ///         "name": "traders_by_country",
    ///         "filter": "hasRoles ['trader']",
    ///         "group_by": ["$Country"],
    ///     }))
    ///     .await?;
    /// let figures = server.fetch_metrics(json!({"names": ["traders_by_country"]})).await?;
    /// # drop(figures);
    /// # Ok(()) }
    /// ```
    pub async fn put_session_collector(&self, params: serde_json::Value) -> Result<(), RpcError> {
        match metrics::Request::parse("metrics.put_session_collector", object(params)?)? {
            metrics::Request::Put(spec) => self.shared.metrics.put(&self.shared.store, spec),
            _ => Err(RpcError::params("not a collector")),
        }
    }

    /// Removes a collector; false when there was none.
    pub fn remove_session_collector(&self, name: &str) -> bool {
        self.shared.metrics.remove(name)
    }

    /// What `metrics.fetch` answers for these params (`{"names"?}`): every
    /// collector caught up with the changes made before the call.
    pub async fn fetch_metrics(
        &self,
        params: serde_json::Value,
    ) -> Result<serde_json::Value, RpcError> {
        match metrics::Request::parse("metrics.fetch", object(params)?)? {
            metrics::Request::Fetch(names) => metrics::fetch(&self.shared, names.as_deref()).await,
            _ => Err(RpcError::params("not a fetch")),
        }
    }

    /// The router of `[metrics] listen`: `/metrics` alone, to any peer.
    pub fn metrics_router(&self) -> axum::Router {
        prometheus::router(self.shared.clone())
    }

    /// The Prometheus exposition (text format 0.0.4) that `/metrics`
    /// serves: the exported collectors and the server's own figures.
    pub fn metrics_text(&self) -> String {
        prometheus::render(&self.shared)
    }

    /// Serves on `listener` until `shutdown` completes, then closes every
    /// session (`SERVER_CLOSING`) and returns. With `[metrics] listen` set, `/metrics` is
    /// served on that address too (printed on stderr as `metrics on
    /// http://HOST:PORT/metrics`) and not on `listener`.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let local = listener.local_addr()?;
        if let Some(address) = &self.config.metrics.listen {
            let metrics = tokio::net::TcpListener::bind(address).await.map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot listen on {address} for metrics: {e}"),
                )
            })?;
            eprintln!("metrics on http://{}/metrics", metrics.local_addr()?);
            let app = self.metrics_router();
            let shared = self.shared.clone();
            tokio::spawn(async move {
                let stop = async move { shared.shutdown.notified().await };
                let _ = axum::serve(metrics, app).with_graceful_shutdown(stop).await;
            });
        }
        let app = self
            .router(local)
            .into_make_service_with_connect_info::<SocketAddr>();
        let shared = self.shared.clone();
        // Without TCP_NODELAY, a second small frame written before the peer
        // acknowledged the first waits for its delayed ACK (40 ms on
        // Linux): a burst of notifications stalled that long.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                shutdown.await;
                shared.close_all();
                shared.shutdown.notify_waiters();
            })
            .await;
        self.shared.close_all();
        result
    }
}
