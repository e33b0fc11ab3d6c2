//! The server's shared state and the transitions of a session's life
//! (SPEC 11.2, 11.3).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use session_filter::properties as fixed;
use session_filter::{roles_to_string, PropertyChange, Session, SessionStore};
use tokio::sync::Notify;

use crate::config::ServerSection;
use crate::error::RpcError;
use crate::outbound::{Out, Overflow};
use crate::protocol;
use crate::security::{Authenticator, Decision, OpenRequest, Roles};
use crate::session::{Client, CloseReason, State};
use crate::stats::Stats;

/// The client types `open` accepts (SPEC 11.2).
pub(crate) const CLIENT_TYPES: [&str; 9] = [
    "ANDROID",
    "C",
    "DOTNET",
    "IOS",
    "JAVA",
    "JAVASCRIPT_BROWSER",
    "MQTT",
    "PYTHON",
    "OTHER",
];

/// What every connection and request shares.
pub(crate) struct Shared {
    pub(crate) config: ServerSection,
    pub(crate) store: Arc<SessionStore>,
    pub(crate) roles: Roles,
    pub(crate) authenticators: Vec<Arc<dyn Authenticator>>,
    clients: Mutex<HashMap<Arc<str>, Arc<Client>>>,
    server_part: u64,
    counter: AtomicU64,
    connections: AtomicU64,
    pub(crate) listener_ids: AtomicU64,
    pub(crate) stats: Stats,
    pub(crate) locks: crate::locks::LockTable,
    pub(crate) messaging: crate::messaging::Messaging,
    pub(crate) metrics: crate::metrics::Collectors,
    /// Notified once when the server starts shutting down.
    pub(crate) shutdown: Notify,
    /// The cluster this server is a member of, once it joined one.
    pub(crate) cluster: OnceLock<Arc<crate::cluster::Cluster>>,
}

/// The parameters of `open`, checked.
pub(crate) struct OpenParams {
    pub(crate) request: OpenRequest,
    pub(crate) reconnect: Option<(String, String)>,
}

/// What `open` made: the session and the connection it is on.
pub(crate) struct Opened {
    pub(crate) client: Arc<Client>,
    pub(crate) conn: u64,
    pub(crate) kick: Arc<Notify>,
    pub(crate) result: Value,
}

/// The milliseconds since the epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Shared {
    pub(crate) fn new(
        config: ServerSection,
        store: Arc<SessionStore>,
        roles: Roles,
        authenticators: Vec<Arc<dyn Authenticator>>,
        metrics: crate::metrics::Collectors,
    ) -> Shared {
        Shared {
            config,
            store,
            roles,
            authenticators,
            clients: Mutex::new(HashMap::new()),
            server_part: crate::security::random_u64(),
            counter: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            listener_ids: AtomicU64::new(0),
            stats: Stats::default(),
            locks: crate::locks::LockTable::default(),
            messaging: crate::messaging::Messaging::default(),
            metrics,
            shutdown: Notify::new(),
            cluster: OnceLock::new(),
        }
    }

    /// The cluster, when this server is a member of one.
    pub(crate) fn cluster(&self) -> Option<&Arc<crate::cluster::Cluster>> {
        self.cluster.get()
    }

    /// The first part of this server's session ids.
    pub(crate) fn server_part_hex(&self) -> String {
        format!("{:016x}", self.server_part)
    }

    fn clients(&self) -> MutexGuard<'_, HashMap<Arc<str>, Arc<Client>>> {
        self.clients.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The protocol session with this id, if it is open.
    pub(crate) fn client(&self, id: &str) -> Option<Arc<Client>> {
        self.clients().get(id).cloned()
    }

    /// Every protocol session open now.
    pub(crate) fn all_clients(&self) -> Vec<Arc<Client>> {
        self.clients().values().cloned().collect()
    }

    /// The number of sessions by state: (active, disconnected).
    pub(crate) fn session_states(&self) -> (usize, usize) {
        let clients = self.all_clients();
        let disconnected = clients
            .iter()
            .filter(|c| matches!(*c.state(), State::Disconnected { .. }))
            .count();
        // Sessions in the store without a connection of ours (the demo
        // population, an embedder's own) count as active.
        let total = self.store.len();
        (total.saturating_sub(disconnected), disconnected)
    }

    /// A new session id in Diffusion's form: this server, then a counter.
    pub(crate) fn new_session_id(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        format!("{:016x}-{:016x}", self.server_part, n)
    }

    /// A new connection number (never 0).
    pub(crate) fn new_connection(&self) -> u64 {
        self.connections.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The roles of a session now, or none if it is gone.
    pub(crate) fn roles_of(&self, id: &str) -> Option<Vec<String>> {
        let session: Session = self.store.get_session(id)?;
        Some(session.roles().iter().map(|r| r.to_string()).collect())
    }

    /// Opens a session: asks the authenticators (off the async workers),
    /// builds its properties and puts it in the store.
    pub(crate) async fn open(self: &Arc<Self>, params: OpenParams) -> Result<Opened, RpcError> {
        if let Some((id, token)) = params.reconnect {
            return self.reconnect(&id, &token);
        }
        let shared = self.clone();
        let request = params.request.clone();
        let decision = tokio::task::spawn_blocking(move || {
            for a in &shared.authenticators {
                match a.authenticate(&request) {
                    Decision::Abstain => continue,
                    other => return other,
                }
            }
            Decision::Deny
        })
        .await
        .unwrap_or(Decision::Deny);
        let grant = match decision {
            Decision::Allow(grant) => grant,
            _ => {
                return Err(RpcError::AccessDenied {
                    permission: None,
                    path: None,
                    message: "the authenticators refused the session".into(),
                })
            }
        };
        let request = params.request;
        let id = self.new_session_id();
        let token = crate::security::new_token().map_err(RpcError::data)?;
        let mut props: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in &grant.properties {
            if !k.starts_with('$') {
                props.insert(k.clone(), v.clone());
            }
        }
        let principal = grant.principal.clone().unwrap_or(request.principal.clone());
        props.insert(fixed::SESSION_ID.into(), id.clone());
        props.insert(fixed::PRINCIPAL.into(), principal);
        props.insert(fixed::ROLES.into(), roles_to_string(&grant.roles));
        props.insert(fixed::CLIENT_IP.into(), request.client_ip.clone());
        props.insert(fixed::TRANSPORT.into(), "WEBSOCKET".into());
        props.insert(fixed::CLIENT_TYPE.into(), request.client_type.clone());
        props.insert(fixed::CONNECTOR.into(), self.config.connector.clone());
        props.insert(fixed::SERVER_NAME.into(), self.config.name.clone());
        props.insert(fixed::START_TIME.into(), now_ms().to_string());
        props.insert(fixed::COUNTRY.into(), String::new());
        props.insert(fixed::LANGUAGE.into(), String::new());
        props.insert(fixed::LATITUDE.into(), "NaN".into());
        props.insert(fixed::LONGITUDE.into(), "NaN".into());
        // The four settable fixed properties go through the change path, so
        // an authenticator's values are normalised as SPEC 6.1 says.
        let mut change = PropertyChange::new();
        for key in [
            fixed::COUNTRY,
            fixed::LANGUAGE,
            fixed::LATITUDE,
            fixed::LONGITUDE,
        ] {
            if let Some(v) = grant.properties.get(key) {
                change = change.set(key, v.clone());
            }
        }
        let arc_id: Arc<str> = Arc::from(id.as_str());
        let conn = self.new_connection();
        let kick = Arc::new(Notify::new());
        let client = Arc::new(Client::new(
            arc_id.clone(),
            token.clone(),
            self.config.max_queued_messages,
            State::Active {
                conn,
                kick: kick.clone(),
            },
        ));
        // Registered before the store sees it, so a listener that sees the
        // session also finds its state.
        self.clients().insert(arc_id.clone(), client.clone());
        let inserted = self.store.insert(props.iter()).and_then(|()| {
            if change.is_empty() {
                Ok(())
            } else {
                self.store
                    .change_session_properties(&id, &change)
                    .map(|_| ())
            }
        });
        if let Err(e) = inserted {
            self.clients().remove(&arc_id);
            self.store.close_session(&id);
            return Err(RpcError::from(e));
        }
        self.stats.opened.fetch_add(1, Ordering::Relaxed);
        let result = self.open_result(&client)?;
        Ok(Opened {
            client,
            conn,
            kick,
            result,
        })
    }

    fn open_result(&self, client: &Client) -> Result<Value, RpcError> {
        let properties = self.store.get(&client.id).ok_or(RpcError::SessionClosed)?;
        Ok(json!({
            "session_id": &*client.id,
            "token": client.token,
            "properties": properties,
            "reconnect_timeout_ms": self.config.reconnect_timeout_ms,
        }))
    }

    /// Takes a session back with its token (SPEC 11.3).
    fn reconnect(self: &Arc<Self>, id: &str, token: &str) -> Result<Opened, RpcError> {
        let client = self
            .client(id)
            .ok_or_else(|| RpcError::NoSuchSession(id.to_owned()))?;
        if !crate::security::same_token(&client.token, token) {
            return Err(RpcError::AccessDenied {
                permission: None,
                path: None,
                message: "the reconnect token does not match".into(),
            });
        }
        let conn = self.new_connection();
        let kick = Arc::new(Notify::new());
        let previous = {
            let mut state = client.state();
            let previous = match &*state {
                State::Closed => return Err(RpcError::NoSuchSession(id.to_owned())),
                State::Active { conn, kick } => {
                    kick.notify_one();
                    Some(*conn)
                }
                State::Disconnected { .. } => None,
            };
            *state = State::Active {
                conn,
                kick: kick.clone(),
            };
            if previous.is_none() {
                // Listeners see `reconnected`, in order with the session's
                // other events.
                self.signal(&client.id, crate::listen::Signal::Reconnected);
            }
            previous
        };
        if let Some(old) = previous {
            // A take-over is a lost connection for the locks.
            self.locks_connection_lost(&client.id, old);
        }
        let result = self.open_result(&client)?;
        Ok(Opened {
            client,
            conn,
            kick,
            result,
        })
    }

    /// Tells the session's listeners about a state change.
    pub(crate) fn signal(&self, id: &str, signal: crate::listen::Signal) {
        crate::listen::signal(self, id, signal);
    }

    fn locks_connection_lost(self: &Arc<Self>, id: &str, conn: u64) {
        crate::locks::connection_lost(self, id, conn);
    }

    /// The connection `conn` of a session is gone without `close`: the
    /// session waits for a reconnect (SPEC 11.3).
    pub(crate) fn connection_lost(self: &Arc<Self>, client: &Arc<Client>, conn: u64) {
        {
            let mut state = client.state();
            match &*state {
                State::Active { conn: c, .. } if *c == conn => {}
                _ => return, // taken over, or closed
            }
            *state = State::Disconnected { conn };
            self.signal(&client.id, crate::listen::Signal::Disconnected);
        }
        self.locks_connection_lost(&client.id, conn);
        let shared = self.clone();
        let client = client.clone();
        let wait = Duration::from_millis(self.config.reconnect_timeout_ms);
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let expired = matches!(*client.state(), State::Disconnected { conn: c } if c == conn);
            if expired {
                shared.close(&client.id, CloseReason::ConnectionLost);
            }
        });
    }

    /// Queues a notification for a session; closes it when its queue
    /// overflows. False when it could not be queued.
    pub(crate) fn notify(self: &Arc<Self>, client: &Arc<Client>, text: String) -> bool {
        self.push(client, Out::Notification(text))
    }

    /// Queues a response on connection `conn`.
    pub(crate) fn respond(self: &Arc<Self>, client: &Arc<Client>, conn: u64, text: String) -> bool {
        self.push(client, Out::Response { conn, text })
    }

    fn push(self: &Arc<Self>, client: &Arc<Client>, out: Out) -> bool {
        match client.outbound.push(out) {
            Ok(()) => true,
            Err(Overflow) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                self.close(&client.id, CloseReason::MessageQueueLimitReached);
                false
            }
        }
    }

    /// Closes a protocol session (or a store-only one) for `reason`: takes
    /// it out of the store, tells its client when it can, ends what it owns.
    /// False when there was no such session.
    pub(crate) fn close(self: &Arc<Self>, id: &str, reason: CloseReason) -> bool {
        let client = self.client(id);
        if let Some(client) = &client {
            if !self.mark_closed(client, reason) {
                return false;
            }
        }
        // Listeners learn the reason before the session leaves their view.
        self.signal(id, crate::listen::Signal::Closing(reason));
        let removed = self.store.close_session(id);
        match client {
            Some(client) => {
                self.finish(&client, reason);
                true
            }
            None => {
                if removed {
                    self.stats.closed(reason);
                }
                removed
            }
        }
    }

    /// A session the store already removed (a close by filter): finish it.
    pub(crate) fn closed_in_store(self: &Arc<Self>, id: &str, reason: CloseReason) {
        match self.client(id) {
            Some(client) => {
                if self.mark_closed(&client, reason) {
                    self.finish(&client, reason);
                }
            }
            None => self.stats.closed(reason),
        }
    }

    /// Moves a session to `Closed` and tells its connection; false when it
    /// was closed already.
    fn mark_closed(&self, client: &Arc<Client>, reason: CloseReason) -> bool {
        let mut state = client.state();
        let previous = std::mem::replace(&mut *state, State::Closed);
        match previous {
            State::Closed => false,
            State::Active { kick, .. } => {
                if reason == CloseReason::MessageQueueLimitReached {
                    // The client is not reading: drop the connection at once.
                    client.outbound.clear();
                    kick.notify_one();
                } else {
                    client.outbound.push_close(reason.name());
                }
                true
            }
            State::Disconnected { .. } => {
                client.outbound.clear();
                true
            }
        }
    }

    fn finish(self: &Arc<Self>, client: &Arc<Client>, reason: CloseReason) {
        self.clients().remove(&client.id);
        client.end_listeners();
        crate::locks::session_closed(self, &client.id);
        crate::messaging::session_closed(self, client);
        self.stats.closed(reason);
    }

    /// Answers a request on connection `conn`.
    pub(crate) fn answer(
        self: &Arc<Self>,
        client: &Arc<Client>,
        conn: u64,
        id: &Value,
        outcome: &Result<Value, RpcError>,
    ) {
        let text = match outcome {
            Ok(result) => protocol::response(id, result.clone()),
            Err(e) => protocol::error_response(id, e),
        };
        self.respond(client, conn, text);
    }

    /// Closes every session (shutdown).
    pub(crate) fn close_all(self: &Arc<Self>) {
        for client in self.all_clients() {
            self.close(&client.id, CloseReason::ServerClosing);
        }
    }
}
