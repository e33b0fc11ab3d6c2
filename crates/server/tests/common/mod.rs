//! A real server on a free loopback port, and raw WebSocket clients.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use session_filter_server::{Config, Server};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The password of every principal in [`CONFIG`].
pub const PASSWORD: &str = "correct horse";

/// A configuration with an operator, a viewer, anonymous clients, and
/// small limits where tests need them (`@HASH@` is the password's hash).
pub const CONFIG: &str = r#"
[server]
name = "test-1"
connector = "tests"
listen = "127.0.0.1:0"
reconnect_timeout_ms = 2000
max_queued_messages = 200
max_message_bytes = 65536

[anonymous]
allow = true
roles = ["CLIENT"]

[principals.ops]
password_hash = "@HASH@"
roles = ["OPS"]

[principals.viewer]
password_hash = "@HASH@"
roles = ["VIEWER"]

[roles.OPS]
global = ["VIEW_SESSION", "MODIFY_SESSION", "REGISTER_HANDLER", "VIEW_SERVER", "CONTROL_SERVER"]
paths = { "locks" = ["ACQUIRE_LOCK"], "alerts" = ["SEND_TO_SESSION"], "locks/forbidden" = [] }

[roles.VIEWER]
global = ["VIEW_SESSION"]

[roles.CLIENT]
paths = { "locks/public" = ["ACQUIRE_LOCK"] }

[[trusted_properties]]
key = "Desk"
values = ["FX", "Rates", "Equities", "Credit"]
"#;

/// The password's hash, computed once.
pub fn hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| session_filter_server::hash_password(PASSWORD).unwrap())
}

/// A running server; dropping it stops the server.
pub struct TestServer {
    pub addr: SocketAddr,
    pub server: Server,
    stop: Option<oneshot::Sender<()>>,
}

impl TestServer {
    pub fn url(&self) -> String {
        format!("ws://{}/session", self.addr)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts a server with [`CONFIG`] as changed by `edit`.
pub async fn start_with(edit: impl FnOnce(String) -> String) -> TestServer {
    let text = edit(CONFIG.replace("@HASH@", hash()));
    let config = Config::parse(&text).expect("test configuration");
    let server = Server::builder(config).build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let s = server.clone();
    tokio::spawn(async move {
        let _ = s
            .serve(listener, async move {
                let _ = stopped.await;
            })
            .await;
    });
    TestServer {
        addr,
        server,
        stop: Some(stop),
    }
}

pub async fn start() -> TestServer {
    start_with(|c| c).await
}

/// A raw WebSocket client speaking JSON-RPC by hand.
pub struct Raw {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next: u64,
    /// Notifications read while waiting for a response.
    pub notes: Vec<Value>,
}

pub const WAIT: Duration = Duration::from_secs(5);

impl Raw {
    pub async fn connect(url: &str) -> Raw {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Raw {
            ws,
            next: 0,
            notes: Vec::new(),
        }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::Text(text.into())).await.unwrap();
    }

    /// The next JSON message, or None when the connection closed.
    pub async fn read(&mut self) -> Option<Value> {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => return serde_json::from_str(t.as_str()).ok(),
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => return None,
                Ok(Some(Ok(_))) => continue,
                Err(_) => panic!("no message within {WAIT:?}"),
            }
        }
    }

    /// Sends a request and returns its response (notifications on the way
    /// are kept in `notes`).
    pub async fn request(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let text = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.send_text(&text.to_string()).await;
        loop {
            let m = self
                .read()
                .await
                .expect("connection closed before the response");
            if m.get("id") == Some(&json!(id)) {
                return m;
            }
            self.notes.push(m);
        }
    }

    /// The result of a request, panicking on an error.
    pub async fn ok(&mut self, method: &str, params: Value) -> Value {
        let r = self.request(method, params).await;
        r.get("result")
            .cloned()
            .unwrap_or_else(|| panic!("{method} failed: {r}"))
    }

    /// The error code of a request that must fail.
    pub async fn code(&mut self, method: &str, params: Value) -> i64 {
        let r = self.request(method, params).await;
        r["error"]["code"]
            .as_i64()
            .unwrap_or_else(|| panic!("{method} did not fail: {r}"))
    }

    /// The next notification of `method` (from `notes` first).
    pub async fn note(&mut self, method: &str) -> Value {
        if let Some(i) = self.notes.iter().position(|n| n["method"] == method) {
            return self.notes.remove(i);
        }
        loop {
            let m = self
                .read()
                .await
                .unwrap_or_else(|| panic!("closed before a {method} notification"));
            if m["method"] == method {
                return m;
            }
            self.notes.push(m);
        }
    }

    /// Waits until the server closes the connection.
    pub async fn closed(&mut self) {
        while self.read().await.is_some() {}
    }
}

/// An anonymous session proposing `Desk`.
pub async fn anonymous(url: &str, desk: Option<&str>) -> (Raw, String) {
    let mut raw = Raw::connect(url).await;
    let props = desk.map(|d| json!({ "Desk": d })).unwrap_or(json!({}));
    let r = raw
        .ok("open", json!({"properties": props, "client_type": "OTHER"}))
        .await;
    let id = r["session_id"].as_str().unwrap().to_owned();
    (raw, id)
}

/// A session of `principal`.
pub async fn principal(url: &str, principal: &str) -> (Raw, String) {
    let mut raw = Raw::connect(url).await;
    let r = raw
        .ok(
            "open",
            json!({"principal": principal, "credentials": PASSWORD}),
        )
        .await;
    let id = r["session_id"].as_str().unwrap().to_owned();
    (raw, id)
}

/// A filter matching exactly these ids.
pub fn only(ids: &[&str]) -> String {
    let quoted: Vec<String> = ids.iter().map(|i| format!("'{i}'")).collect();
    format!("$SessionId in [{}]", quoted.join(", "))
}

pub type Shared<T> = Arc<std::sync::Mutex<T>>;
