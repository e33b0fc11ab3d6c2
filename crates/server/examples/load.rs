//! Load generator and side-by-side comparisons (issues 21, 22, 23).
//!
//! ```text
//! cargo run --release -p session-filter-server --example load -- \
//!     [--sessions N] [--disconnected M] [--handlers H] [--seconds S] \
//!     [--no-socketio] [--no-redis]
//! ```
//!
//! One run, on loopback only, bounded in count and time:
//!
//! 1. Starts the server in a child process (this same binary, `serve CONFIG`,
//!    built on the server library as `session-filter server` is) and opens N
//!    real WebSocket sessions from this process (tokio-tungstenite), spread
//!    over the source addresses 127.0.0.2, 127.0.0.3, … so that ephemeral
//!    ports never run out; then M more that drop their connection at once
//!    (sessions held while disconnected). Reports opens per second and the
//!    server's resident memory per idle session (`VmRSS` before and after).
//! 2. Messaging (issue 23): a request by filter to the H handler sessions
//!    until `messaging.done`, and requests by id per second.
//! 3. Listener latency: `clients.set_properties` by id to the listener's
//!    event, p50/p99, while 1 000 changes a second run.
//! 4. `clients.close` by a filter selecting 10% of the sessions: time from
//!    the request until every affected connected client has its `closed`.
//! 5. Locks (issue 22): uncontended acquire+release round trips per second
//!    over one connection, and the hand-off latency from a release to the
//!    next waiter's grant; the same against Redis (`SET NX PX`, a release
//!    script that also publishes, the waiter woken by pub/sub), when
//!    `redis-server` is installed.
//! 6. The same jobs with Socket.IO 4 (`benches/socketio/`, Node.js), when
//!    `node` and its `node_modules` are there.
//!
//! A process may hold as many sockets as `RLIMIT_NOFILE` allows; N is
//! capped to fit it (each side holds one descriptor per session).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::FuturesUnordered;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

type Ws = WebSocketStream<tokio::net::TcpStream>;
type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The path the handler sessions accept requests on.
const PATH: &str = "bench/echo";
/// Sessions per source address (the ephemeral range holds about 28 000).
const PER_SOURCE: usize = 10_000;
/// Opens in flight at once.
const OPEN_CONCURRENCY: usize = 256;
const ADMIN_PASSWORD: &str = "bench-password";

#[derive(Clone, Debug)]
struct Opts {
    sessions: usize,
    disconnected: usize,
    handlers: usize,
    seconds: u64,
    socketio: bool,
    redis: bool,
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("serve") {
        let config = args.get(2).ok_or("serve CONFIG")?;
        return serve(config);
    }
    let mut opts = Opts {
        sessions: 18_000,
        disconnected: 0,
        handlers: 10_000,
        seconds: 10,
        socketio: true,
        redis: true,
    };
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let mut num = |name: &str| -> Res<usize> {
            Ok(it
                .next()
                .ok_or(format!("{name} needs a number"))?
                .parse::<usize>()?)
        };
        match a.as_str() {
            "--sessions" => opts.sessions = num("--sessions")?,
            "--disconnected" => opts.disconnected = num("--disconnected")?,
            "--handlers" => opts.handlers = num("--handlers")?,
            "--seconds" => opts.seconds = num("--seconds")? as u64,
            "--no-socketio" => opts.socketio = false,
            "--no-redis" => opts.redis = false,
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let fds = nofile_limit();
    let cap = fds.saturating_sub(200) as usize;
    if opts.sessions > cap {
        eprintln!(
            "RLIMIT_NOFILE is {fds} here (not raisable without CAP_SYS_RESOURCE): \
             {} connected sessions, not {}",
            cap, opts.sessions
        );
        opts.sessions = cap;
    }
    opts.handlers = opts.handlers.min(opts.sessions);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(opts))
}

/// The soft limit of open files, raised to the hard one.
fn nofile_limit() -> u64 {
    let text = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|s| s.parse().ok())
        .unwrap_or(1024)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// `VmRSS` of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// CPU time (user + system) a process has used, in milliseconds: on a
/// busy machine, a job's cost that its wall time hides.
fn cpu_ms(pid: u32) -> f64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = text.rsplit_once(')').map(|(_, a)| a).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // SAFETY: sysconf only reads a constant of the system.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (ticks(11) + ticks(12)) * 1000.0 / hz
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

// ---------------------------------------------------------------- server

/// The child process: the server library on a multi-threaded runtime, as
/// `session-filter server --config FILE` runs it; stops when stdin closes
/// (the parent went away).
fn serve(config: &str) -> Res<()> {
    let text = std::fs::read_to_string(config)?;
    let config = session_filter_server::Config::parse(&text)?;
    let listen = config.server.listen.clone();
    let server = session_filter_server::Server::builder(config).build();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&listen).await?;
        eprintln!("listening on http://{}", listener.local_addr()?);
        // Each line on stdin asks for the allocator's figures; its end
        // stops the server.
        let stop = async {
            let _ = tokio::task::spawn_blocking(|| {
                for line in std::io::stdin().lines() {
                    if line.is_err() {
                        break;
                    }
                    eprintln!("heap {}", heap_in_use());
                }
            })
            .await;
        };
        server.serve(listener, stop).await?;
        Ok(())
    })
}

/// Bytes glibc's allocator has handed out and not had back.
fn heap_in_use() -> usize {
    // SAFETY: mallinfo2 only reads the allocator's counters.
    let info = unsafe { libc::mallinfo2() };
    info.uordblks + info.hblkhd
}

fn config_text(hash: &str) -> String {
    format!(
        r#"[server]
name = "bench"
listen = "127.0.0.1:0"
reconnect_timeout_ms = 3600000
# A listener's snapshot and a request's responses go through one session's
# queue: room for 50 000 sessions' worth.
max_queued_messages = 100000

[anonymous]
allow = true
roles = ["CLIENT"]

[principals.admin]
password_hash = "{hash}"
roles = ["ADMIN"]

[roles.ADMIN]
global = ["VIEW_SESSION", "MODIFY_SESSION", "REGISTER_HANDLER", "VIEW_SERVER", "CONTROL_SERVER"]
default_path = ["ACQUIRE_LOCK", "SEND_TO_SESSION"]

[[trusted_properties]]
key = "Group"
regex = "g[0-9]"
"#
    )
}

struct ServerChild {
    child: Child,
    addr: SocketAddr,
    heap: mpsc::UnboundedReceiver<usize>,
}

impl ServerChild {
    /// The server's heap in use, in bytes (glibc's `mallinfo2`).
    async fn heap(&mut self) -> Res<usize> {
        let stdin = self.child.stdin.as_mut().ok_or("no stdin")?;
        writeln!(stdin, "heap")?;
        stdin.flush()?;
        Ok(
            tokio::time::timeout(Duration::from_secs(5), self.heap.recv())
                .await?
                .ok_or("the server stopped")?,
        )
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server() -> Res<ServerChild> {
    let hash = session_filter_server::hash_password(ADMIN_PASSWORD)?;
    let dir = std::env::temp_dir().join(format!("sf-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("server.toml");
    std::fs::write(&path, config_text(&hash))?;
    // LOAD_SERVER_PREFIX runs the server under a profiler (`heaptrack`).
    let prefix = std::env::var("LOAD_SERVER_PREFIX").unwrap_or_default();
    let mut words: Vec<String> = prefix.split_whitespace().map(str::to_owned).collect();
    words.push(std::env::current_exe()?.display().to_string());
    let mut child = Command::new(&words[0])
        .args(&words[1..])
        .arg("serve")
        .arg(&path)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines
            .next()
            .ok_or("the server stopped before listening")??;
        if let Some(rest) = line.strip_prefix("listening on http://") {
            break rest.parse::<SocketAddr>()?;
        }
        eprintln!("server: {line}");
    };
    let (tx, heap) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            match line.strip_prefix("heap ").and_then(|n| n.parse().ok()) {
                Some(n) => {
                    let _ = tx.send(n);
                }
                None => eprintln!("server: {line}"),
            }
        }
    });
    Ok(ServerChild { child, addr, heap })
}

// ---------------------------------------------------------------- clients

fn source(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i / PER_SOURCE) as u8))
}

async fn connect(addr: SocketAddr, src: IpAddr) -> Res<Ws> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(src, 0))?;
    let tcp = socket.connect(addr).await?;
    tcp.set_nodelay(true)?;
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let url = format!("ws://127.0.0.1:{}/session", addr.port());
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, tcp, Some(config)).await?;
    Ok(ws)
}

fn request(id: u64, method: &str, params: Value) -> Message {
    Message::Text(
        json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
            .to_string()
            .into(),
    )
}

/// Sends a request and waits for its response (the notifications before it
/// are dropped: a client being set up gets none).
async fn call_raw(ws: &mut Ws, id: u64, method: &str, params: Value) -> Res<Value> {
    ws.send(request(id, method, params)).await?;
    while let Some(m) = ws.next().await {
        if let Message::Text(t) = m? {
            let v: Value = serde_json::from_str(&t)?;
            if v.get("id") == Some(&json!(id)) {
                if let Some(e) = v.get("error") {
                    return Err(format!("{method}: {e}").into());
                }
                return Ok(v["result"].clone());
            }
        }
    }
    Err(format!("{method}: connection closed").into())
}

/// When each affected client received `closed`.
#[derive(Default)]
struct Closed {
    count: AtomicUsize,
    last: Mutex<Option<Instant>>,
}

/// An idle client: answers pings (tungstenite does), answers
/// `messaging.request`, notes `closed`.
async fn idle(mut ws: Ws, closed: Arc<Closed>) {
    let mut next = 1_000u64;
    while let Some(Ok(m)) = ws.next().await {
        let Message::Text(t) = m else { continue };
        let Ok(v) = serde_json::from_str::<Value>(&t) else {
            continue;
        };
        match v.get("method").and_then(Value::as_str) {
            Some("closed") => {
                let now = Instant::now();
                *closed.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(now);
                closed.count.fetch_add(1, Ordering::SeqCst);
            }
            Some("messaging.request") => {
                next += 1;
                let rid = v["params"]["id"].clone();
                let answer = request(
                    next,
                    "messaging.respond",
                    json!({"id": rid, "response": {"ok": true}}),
                );
                if ws.send(answer).await.is_err() {
                    break;
                }
            }
            _ => {}
        }
    }
}

/// Requests waiting for their response, by id: each gets the response and
/// when it arrived.
type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<(Instant, Value)>>>>;

/// A controller connection: many requests in flight, responses matched by
/// id, notifications stamped with their arrival.
struct Ctl {
    out: mpsc::UnboundedSender<Message>,
    pending: Pending,
    next: AtomicU64,
    notes: tokio::sync::Mutex<mpsc::UnboundedReceiver<(Instant, Value)>>,
}

impl Ctl {
    async fn open(addr: SocketAddr, src: IpAddr, admin: bool) -> Res<Ctl> {
        let mut ws = connect(addr, src).await?;
        let params = if admin {
            json!({"principal": "admin", "credentials": ADMIN_PASSWORD})
        } else {
            json!({})
        };
        call_raw(&mut ws, 0, "open", params).await?;
        let (mut sink, mut stream) = ws.split();
        let (out, mut rx) = mpsc::unbounded_channel::<Message>();
        tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                if sink.feed(m).await.is_err() {
                    break;
                }
                while let Ok(m) = rx.try_recv() {
                    if sink.feed(m).await.is_err() {
                        return;
                    }
                }
                if sink.flush().await.is_err() {
                    break;
                }
            }
        });
        let pending: Pending = Arc::default();
        let (notes_tx, notes) = mpsc::unbounded_channel();
        let p = pending.clone();
        tokio::spawn(async move {
            while let Some(Ok(m)) = stream.next().await {
                let now = Instant::now();
                let Message::Text(t) = m else { continue };
                let Ok(v) = serde_json::from_str::<Value>(&t) else {
                    continue;
                };
                if v.get("method").is_some() {
                    let _ = notes_tx.send((now, v));
                } else if let Some(id) = v.get("id").and_then(Value::as_u64) {
                    let waiter = p.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                    if let Some(w) = waiter {
                        let _ = w.send((now, v));
                    }
                }
            }
        });
        Ok(Ctl {
            out,
            pending,
            next: AtomicU64::new(1),
            notes: tokio::sync::Mutex::new(notes),
        })
    }

    /// Sends a request; the receiver gets the whole response and when it
    /// arrived.
    fn send(&self, method: &str, params: Value) -> oneshot::Receiver<(Instant, Value)> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, tx);
        let _ = self.out.send(request(id, method, params));
        rx
    }

    async fn call(&self, method: &str, params: Value) -> Res<Value> {
        let (_, v) = self.send(method, params).await?;
        if let Some(e) = v.get("error") {
            return Err(format!("{method}: {e}").into());
        }
        Ok(v["result"].clone())
    }

    /// The next notification named `method`, within `timeout`.
    async fn note(&self, method: &str, timeout: Duration) -> Option<(Instant, Value)> {
        let mut notes = self.notes.lock().await;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let (at, v) = tokio::time::timeout_at(deadline, notes.recv())
                .await
                .ok()??;
            if v.get("method").and_then(Value::as_str) == Some(method) {
                return Some((at, v));
            }
        }
    }
}

// ---------------------------------------------------------------- figures

#[derive(Default, Debug)]
struct Figures {
    opens_per_s: f64,
    rss_before_kib: u64,
    rss_after_kib: u64,
    bytes_per_session: f64,
    heap_per_session: f64,
    heap_per_disconnected: f64,
    disconnected: usize,
    bytes_per_disconnected: f64,
    close_selected: usize,
    close_connected: usize,
    close_ms: f64,
    close_answer_ms: f64,
    close_cpu_ms: f64,
    send_filter_cpu_ms: f64,
    listener_cpu_ms_per_s: f64,
    send_filter_recipients: usize,
    send_filter_ms: f64,
    send_by_id_per_s: f64,
    listener_samples: usize,
    listener_p50_ms: f64,
    listener_p99_ms: f64,
    listener_rate: f64,
    lock_round_trips_per_s: f64,
    handoff_p50_ms: f64,
    handoff_p99_ms: f64,
}

async fn run(opts: Opts) -> Res<()> {
    let load_start = loadavg();
    eprintln!("load generator: {opts:?}; loadavg {load_start}");
    let ours = ours(&opts).await?;
    eprintln!("ours: {ours:#?}");
    let redis = if opts.redis {
        match redis_bench(&opts).await {
            Ok(r) => Some(r),
            Err(e) => {
                eprintln!("redis skipped: {e}");
                None
            }
        }
    } else {
        None
    };
    let socketio = if opts.socketio {
        match socketio_bench(&opts) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("socket.io skipped: {e}");
                None
            }
        }
    } else {
        None
    };
    let load_end = loadavg();
    report(
        &opts,
        &ours,
        redis.as_ref(),
        socketio.as_ref(),
        &load_start,
        &load_end,
    );
    Ok(())
}

async fn ours(opts: &Opts) -> Res<Figures> {
    let mut server = start_server()?;
    let addr = server.addr;
    let pid = server.child.id();
    let mut f = Figures {
        disconnected: opts.disconnected,
        ..Figures::default()
    };
    let admin = Ctl::open(addr, source(0), true).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    f.rss_before_kib = rss_kib(pid);
    let heap_before = server.heap().await?;

    // Open the sessions: Group g0..g9 in turn; the first H have a handler.
    let closed = Arc::new(Closed::default());
    let ids: Arc<Mutex<Vec<(usize, String)>>> = Arc::default();
    let gate = Arc::new(Semaphore::new(OPEN_CONCURRENCY));
    let started = Instant::now();
    let mut tasks = FuturesUnordered::new();
    for i in 0..opts.sessions {
        let permit = gate.clone().acquire_owned().await?;
        let (closed, ids) = (closed.clone(), ids.clone());
        let handler = i < opts.handlers;
        tasks.push(tokio::spawn(async move {
            let result: Res<()> = async {
                let mut ws = connect(addr, source(i)).await?;
                let group = format!("g{}", i % 10);
                let opened =
                    call_raw(&mut ws, 1, "open", json!({"properties": {"Group": group}})).await?;
                if handler {
                    call_raw(&mut ws, 2, "messaging.add_handler", json!({"path": PATH})).await?;
                }
                let id = opened["session_id"].as_str().unwrap_or_default().to_owned();
                ids.lock().unwrap_or_else(|e| e.into_inner()).push((i, id));
                drop(permit);
                tokio::spawn(idle(ws, closed));
                Ok(())
            }
            .await;
            result.map_err(|e| e.to_string())
        }));
        // Reap finished opens as we go, to report failures early.
        while let Some(Some(done)) = futures_util::FutureExt::now_or_never(tasks.next()) {
            done??;
        }
    }
    while let Some(done) = tasks.next().await {
        done??;
    }
    let open_time = started.elapsed();
    f.opens_per_s = opts.sessions as f64 / open_time.as_secs_f64();
    eprintln!(
        "opened {} sessions in {:.2} s ({:.0}/s)",
        opts.sessions,
        open_time.as_secs_f64(),
        f.opens_per_s
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    f.rss_after_kib = rss_kib(pid);
    f.bytes_per_session = (f.rss_after_kib.saturating_sub(f.rss_before_kib) * 1024) as f64
        / opts.sessions.max(1) as f64;
    let heap_after = server.heap().await?;
    f.heap_per_session =
        heap_after.saturating_sub(heap_before) as f64 / opts.sessions.max(1) as f64;
    eprintln!(
        "server VmRSS {} KiB -> {} KiB: {:.0} bytes per idle session ({:.0} of heap in use)",
        f.rss_before_kib, f.rss_after_kib, f.bytes_per_session, f.heap_per_session
    );

    // Sessions held while disconnected: open, then drop the connection.
    if opts.disconnected > 0 {
        let started = Instant::now();
        let mut tasks = FuturesUnordered::new();
        for j in 0..opts.disconnected {
            let i = opts.sessions + j;
            let permit = gate.clone().acquire_owned().await?;
            tasks.push(tokio::spawn(async move {
                let result: Res<()> = async {
                    let mut ws = connect(addr, source(i % (PER_SOURCE * 4))).await?;
                    let group = format!("g{}", i % 10);
                    call_raw(&mut ws, 1, "open", json!({"properties": {"Group": group}})).await?;
                    drop(ws);
                    drop(permit);
                    Ok(())
                }
                .await;
                result.map_err(|e| e.to_string())
            }));
            while let Some(Some(done)) = futures_util::FutureExt::now_or_never(tasks.next()) {
                done??;
            }
        }
        while let Some(done) = tasks.next().await {
            done??;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let rss = rss_kib(pid);
        let heap = server.heap().await?;
        f.heap_per_disconnected = heap.saturating_sub(heap_after) as f64 / opts.disconnected as f64;
        f.bytes_per_disconnected =
            (rss.saturating_sub(f.rss_after_kib) * 1024) as f64 / opts.disconnected as f64;
        eprintln!(
            "{} disconnected sessions in {:.2} s; VmRSS {} KiB: {:.0} bytes per disconnected session ({:.0} of heap)",
            opts.disconnected,
            started.elapsed().as_secs_f64(),
            rss,
            f.bytes_per_disconnected,
            f.heap_per_disconnected
        );
        let total = admin
            .call("clients.count", json!({"filter": "all"}))
            .await?;
        eprintln!("clients.count all: {total}");
    }

    let mut ids = std::mem::take(&mut *ids.lock().unwrap_or_else(|e| e.into_inner()));
    ids.sort();
    let ids: Vec<String> = ids.into_iter().map(|(_, id)| id).collect();

    // Messaging by filter: every matching session with a handler.
    let mut best = f64::INFINITY;
    let cpu0 = cpu_ms(pid);
    for _ in 0..3 {
        let t0 = Instant::now();
        let r = admin
            .call(
                "messaging.send",
                json!({"filter": "all", "path": PATH, "request": {"n": 1}, "timeout_ms": 30000}),
            )
            .await?;
        let (at, done) = admin
            .note("messaging.done", Duration::from_secs(40))
            .await
            .ok_or("no messaging.done")?;
        let took = ms(at - t0);
        f.send_filter_recipients = r["count"].as_u64().unwrap_or(0) as usize;
        eprintln!(
            "messaging.send by filter to {} handlers: done in {took:.1} ms ({})",
            f.send_filter_recipients, done["params"]
        );
        best = best.min(took);
    }
    f.send_filter_ms = best;
    f.send_filter_cpu_ms = (cpu_ms(pid) - cpu0) / 3.0;

    // Requests by id: 64 in flight, for a bounded time.
    if opts.handlers > 0 {
        let window = 64;
        let deadline = Instant::now() + Duration::from_secs(opts.seconds.min(5));
        let started = Instant::now();
        let mut inflight = FuturesUnordered::new();
        let mut done = 0usize;
        let mut k = 0usize;
        let handlers = opts.handlers.max(1);
        while Instant::now() < deadline {
            while inflight.len() < window {
                let id = &ids[k % handlers];
                k += 1;
                inflight.push(admin.send(
                    "messaging.send",
                    json!({"session_id": id, "path": PATH, "request": {"n": k}, "timeout_ms": 10000}),
                ));
            }
            if let Some(r) = inflight.next().await {
                let (_, v) = r?;
                if v.get("error").is_some() {
                    return Err(format!("messaging.send by id: {v}").into());
                }
                done += 1;
            }
        }
        while let Some(r) = inflight.next().await {
            r?;
            done += 1;
        }
        f.send_by_id_per_s = done as f64 / started.elapsed().as_secs_f64();
        eprintln!("messaging.send by id: {:.0} requests/s", f.send_by_id_per_s);
    }

    // Listener latency while 1 000 changes a second run.
    {
        let listener = Ctl::open(addr, source(0), true).await?;
        let driver = Ctl::open(addr, source(0), true).await?;
        let filter = "Group is 'g1' or Group is 'g2'";
        listener
            .call(
                "clients.listen",
                json!({"filter": filter, "properties": ["Tick"]}),
            )
            .await?;
        let expected = ids
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 10 == 1 || i % 10 == 2)
            .count()
            + (opts.sessions..opts.sessions + opts.disconnected)
                .filter(|i| i % 10 == 1 || i % 10 == 2)
                .count();
        let mut snapshot = 0;
        while snapshot < expected {
            let (_, v) = listener
                .note("clients.event", Duration::from_secs(30))
                .await
                .ok_or("listener snapshot incomplete")?;
            if v["params"]["event"] == "open" {
                snapshot += 1;
            }
        }
        eprintln!("listener snapshot: {snapshot} sessions");
        let sent: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
        let s2 = sent.clone();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let collector = tokio::spawn(async move {
            let mut lat = Vec::new();
            while let Some((at, v)) = listener.note("clients.event", Duration::from_secs(5)).await {
                let tick = v["params"]["properties"]["Tick"]
                    .as_str()
                    .and_then(|t| t.parse::<u64>().ok());
                if let Some(tick) = tick {
                    if let Some(t0) = s2.lock().unwrap_or_else(|e| e.into_inner()).remove(&tick) {
                        lat.push(ms(at - t0));
                    }
                }
                if stop2.load(Ordering::SeqCst)
                    && s2.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
                {
                    break;
                }
            }
            lat
        });
        let total = ids.len();
        let mut interval = tokio::time::interval(Duration::from_millis(10));
        let mut tick = 0u64;
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let started = Instant::now();
        let cpu0 = cpu_ms(pid);
        let mut responses = FuturesUnordered::new();
        while started.elapsed() < Duration::from_secs(opts.seconds) {
            interval.tick().await;
            for _ in 0..10 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let i = (rng % total as u64) as usize;
                tick += 1;
                let group = i % 10;
                if group == 1 || group == 2 {
                    sent.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(tick, Instant::now());
                }
                responses.push(driver.send(
                    "clients.set_properties",
                    json!({"session_id": ids[i], "properties": {"Tick": tick.to_string()}}),
                ));
            }
            while let Some(Some(r)) = futures_util::FutureExt::now_or_never(responses.next()) {
                r?;
            }
        }
        while let Some(r) = responses.next().await {
            r?;
        }
        f.listener_rate = tick as f64 / started.elapsed().as_secs_f64();
        f.listener_cpu_ms_per_s = (cpu_ms(pid) - cpu0) / started.elapsed().as_secs_f64();
        stop.store(true, Ordering::SeqCst);
        let mut lat = collector.await?;
        lat.sort_by(f64::total_cmp);
        f.listener_samples = lat.len();
        f.listener_p50_ms = percentile(&lat, 0.5);
        f.listener_p99_ms = percentile(&lat, 0.99);
        eprintln!(
            "listener: {} samples at {:.0} changes/s: p50 {:.3} ms, p99 {:.3} ms",
            lat.len(),
            f.listener_rate,
            f.listener_p50_ms,
            f.listener_p99_ms
        );
    }

    // Close by a filter selecting 10%.
    {
        let expected = (0..opts.sessions).filter(|i| i % 10 == 9).count();
        let cpu0 = cpu_ms(pid);
        let t0 = Instant::now();
        let (answered, r) = admin
            .send("clients.close", json!({"filter": "Group is 'g9'"}))
            .await?;
        f.close_answer_ms = ms(answered - t0);
        f.close_selected = r["result"]["count"].as_u64().unwrap_or(0) as usize;
        let deadline = Instant::now() + Duration::from_secs(60);
        while closed.count.load(Ordering::SeqCst) < expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        f.close_connected = closed.count.load(Ordering::SeqCst);
        // The connections finish closing after the last `closed` is sent.
        tokio::time::sleep(Duration::from_millis(500)).await;
        f.close_cpu_ms = cpu_ms(pid) - cpu0;
        let last = closed
            .last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or(t0);
        f.close_ms = ms(last - t0);
        eprintln!(
            "clients.close by filter: {} closed (answered in {:.1} ms), {} connected clients got `closed` in {:.1} ms",
            f.close_selected, f.close_answer_ms, f.close_connected, f.close_ms
        );
    }

    // Locks: uncontended round trips, then hand-off.
    {
        let a = Ctl::open(addr, source(0), true).await?;
        let b = Ctl::open(addr, source(0), true).await?;
        let name = json!({"name": "bench/lock"});
        let started = Instant::now();
        let mut n = 0u64;
        while started.elapsed() < Duration::from_secs(opts.seconds.min(5)) {
            a.call("locks.acquire", name.clone()).await?;
            a.call("locks.release", name.clone()).await?;
            n += 1;
        }
        f.lock_round_trips_per_s = n as f64 / started.elapsed().as_secs_f64();
        let mut lat = Vec::new();
        for _ in 0..1000 {
            a.call("locks.acquire", name.clone()).await?;
            let granted = b.send("locks.acquire", name.clone());
            tokio::time::sleep(Duration::from_millis(2)).await;
            let t0 = Instant::now();
            let released = a.send("locks.release", name.clone());
            let (at, v) = granted.await?;
            if v.get("error").is_some() {
                return Err(format!("hand-off: {v}").into());
            }
            lat.push(ms(at - t0));
            released.await?;
            b.call("locks.release", name.clone()).await?;
        }
        lat.sort_by(f64::total_cmp);
        f.handoff_p50_ms = percentile(&lat, 0.5);
        f.handoff_p99_ms = percentile(&lat, 0.99);
        eprintln!(
            "locks: {:.0} acquire+release round trips/s; hand-off p50 {:.3} ms, p99 {:.3} ms",
            f.lock_round_trips_per_s, f.handoff_p50_ms, f.handoff_p99_ms
        );
    }
    drop(server);
    Ok(f)
}

// ---------------------------------------------------------------- redis

struct Redis {
    r: tokio::io::BufReader<tokio::net::tcp::OwnedReadHalf>,
    w: tokio::net::tcp::OwnedWriteHalf,
}

#[derive(Debug, PartialEq)]
enum Resp {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Resp>>),
}

impl Redis {
    async fn connect(port: u16) -> Res<Redis> {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        tcp.set_nodelay(true)?;
        let (r, w) = tcp.into_split();
        Ok(Redis {
            r: tokio::io::BufReader::new(r),
            w,
        })
    }

    async fn send(&mut self, args: &[&[u8]]) -> Res<()> {
        let mut buf = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            buf.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            buf.extend_from_slice(a);
            buf.extend_from_slice(b"\r\n");
        }
        self.w.write_all(&buf).await?;
        Ok(())
    }

    async fn cmd(&mut self, args: &[&[u8]]) -> Res<Resp> {
        self.send(args).await?;
        self.read().await
    }

    fn read(
        &mut self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Res<Resp>> + Send + '_>> {
        Box::pin(async move {
            let mut line = String::new();
            self.r.read_line(&mut line).await?;
            let line = line.trim_end();
            let (kind, rest) = line.split_at(1.min(line.len()));
            Ok(match kind {
                "+" => Resp::Simple(rest.into()),
                "-" => Resp::Error(rest.into()),
                ":" => Resp::Int(rest.parse()?),
                "$" => {
                    let n: i64 = rest.parse()?;
                    if n < 0 {
                        Resp::Bulk(None)
                    } else {
                        let mut data = vec![0; n as usize + 2];
                        tokio::io::AsyncReadExt::read_exact(&mut self.r, &mut data).await?;
                        data.truncate(n as usize);
                        Resp::Bulk(Some(data))
                    }
                }
                "*" => {
                    let n: i64 = rest.parse()?;
                    if n < 0 {
                        Resp::Array(None)
                    } else {
                        let mut items = Vec::new();
                        for _ in 0..n {
                            items.push(self.read().await?);
                        }
                        Resp::Array(Some(items))
                    }
                }
                _ => return Err(format!("bad RESP line {line:?}").into()),
            })
        })
    }
}

/// Releases a lock held with this token, and tells the waiters.
const RELEASE: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then \
    redis.call('del', KEYS[1]); redis.call('publish', KEYS[2], '1'); return 1 \
    else return 0 end";

struct RedisFigures {
    round_trips_per_s: f64,
    handoff_p50_ms: f64,
    handoff_p99_ms: f64,
}

struct RedisChild(Child);
impl Drop for RedisChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn redis_bench(opts: &Opts) -> Res<RedisFigures> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "no", "--protected-mode", "yes"])
        .stdout(Stdio::null())
        .spawn()?;
    let _guard = RedisChild(child);
    let mut a = None;
    for _ in 0..100 {
        match Redis::connect(port).await {
            Ok(r) => {
                a = Some(r);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let mut a = a.ok_or("redis-server did not start")?;
    let mut b = Redis::connect(port).await?;
    let mut sub = Redis::connect(port).await?;
    let sha = match a.cmd(&[b"SCRIPT", b"LOAD", RELEASE.as_bytes()]).await? {
        Resp::Bulk(Some(s)) => s,
        other => return Err(format!("SCRIPT LOAD: {other:?}").into()),
    };
    let key: &[u8] = b"bench:lock";
    let channel: &[u8] = b"bench:lock:released";
    let acquire = |token: &'static [u8]| -> [&'static [u8]; 6] {
        [b"SET", b"bench:lock", token, b"NX", b"PX", b"30000"]
    };
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < Duration::from_secs(opts.seconds.min(5)) {
        let got = a.cmd(&acquire(b"a")).await?;
        if got != Resp::Simple("OK".into()) {
            return Err(format!("SET NX: {got:?}").into());
        }
        let released = a.cmd(&[b"EVALSHA", &sha, b"2", key, channel, b"a"]).await?;
        if released != Resp::Int(1) {
            return Err(format!("release: {released:?}").into());
        }
        n += 1;
    }
    let round_trips_per_s = n as f64 / started.elapsed().as_secs_f64();
    // The waiter listens for releases on a connection of its own.
    sub.cmd(&[b"SUBSCRIBE", channel]).await?;
    let mut lat = Vec::new();
    for _ in 0..1000 {
        if a.cmd(&acquire(b"a")).await? != Resp::Simple("OK".into()) {
            return Err("hand-off: A could not take the lock".into());
        }
        if b.cmd(&acquire(b"b")).await? != Resp::Bulk(None) {
            return Err("hand-off: B took a held lock".into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        let t0 = Instant::now();
        let release = async { a.cmd(&[b"EVALSHA", &sha, b"2", key, channel, b"a"]).await };
        let wait = async {
            loop {
                let _message = sub.read().await?;
                if b.cmd(&acquire(b"b")).await? == Resp::Simple("OK".into()) {
                    return Ok::<Instant, Box<dyn std::error::Error + Send + Sync>>(Instant::now());
                }
            }
        };
        let (released, granted) = tokio::join!(release, wait);
        released?;
        lat.push(ms(granted? - t0));
        b.cmd(&[b"EVALSHA", &sha, b"2", key, channel, b"b"]).await?;
        // B's own release is published too: read it before the next round.
        sub.read().await?;
    }
    lat.sort_by(f64::total_cmp);
    let f = RedisFigures {
        round_trips_per_s,
        handoff_p50_ms: percentile(&lat, 0.5),
        handoff_p99_ms: percentile(&lat, 0.99),
    };
    eprintln!(
        "redis: {:.0} SET NX + release round trips/s; hand-off p50 {:.3} ms, p99 {:.3} ms",
        f.round_trips_per_s, f.handoff_p50_ms, f.handoff_p99_ms
    );
    Ok(f)
}

// ---------------------------------------------------------------- socket.io

struct NodeChild(Child);
impl Drop for NodeChild {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn socketio_bench(opts: &Opts) -> Res<Value> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../benches/socketio");
    if !dir.join("node_modules/socket.io").exists() {
        return Err(format!("run `npm ci` in {}", dir.display()).into());
    }
    let mut server = Command::new("node")
        .arg("--expose-gc")
        .arg("server.js")
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = server.stdout.take().ok_or("no stdout")?;
    let server = NodeChild(server);
    let mut lines = BufReader::new(stdout).lines();
    let port: u16 = loop {
        let line = lines.next().ok_or("the Socket.IO server stopped")??;
        if let Some(p) = line.strip_prefix("listening ") {
            break p.trim().parse()?;
        }
    };
    let output = Command::new("node")
        .arg("--max-old-space-size=8192")
        .arg("load.js")
        .current_dir(&dir)
        .env("PORT", port.to_string())
        .env("SERVER_PID", server.0.id().to_string())
        .env("SESSIONS", opts.sessions.to_string())
        .env("HANDLERS", opts.handlers.to_string())
        .env("SECONDS", opts.seconds.to_string())
        .stderr(Stdio::inherit())
        .output()?;
    drop(server);
    let text = String::from_utf8(output.stdout)?;
    let last = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or("load.js printed no result")?;
    let v: Value = serde_json::from_str(last)?;
    eprintln!("socket.io: {v}");
    Ok(v)
}

// ---------------------------------------------------------------- report

fn report(
    opts: &Opts,
    ours: &Figures,
    redis: Option<&RedisFigures>,
    sio: Option<&Value>,
    load_start: &str,
    load_end: &str,
) {
    let num = |v: Option<&Value>, k: &str| v.and_then(|v| v[k].as_f64()).unwrap_or(f64::NAN);
    let s = |k: &str| num(sio, k);
    println!(
        "\n## Load run: {} connected sessions{}, {} handlers; loadavg before {load_start}, after {load_end}\n",
        opts.sessions,
        if opts.disconnected > 0 {
            format!(" + {} disconnected", opts.disconnected)
        } else {
            String::new()
        },
        opts.handlers
    );
    println!("| measure | session-filter | Socket.IO 4 | ratio |");
    println!("|---|---|---|---|");
    let row = |name: &str, ours: f64, theirs: f64, unit: &str, higher_better: bool| {
        let ratio = if higher_better {
            ours / theirs
        } else {
            theirs / ours
        };
        println!(
            "| {name} | {ours:.1} {unit} | {theirs:.1} {unit} | {ratio:.1}× {} |",
            if higher_better { "more" } else { "better" }
        );
    };
    row(
        "opens per second",
        ours.opens_per_s,
        s("opens_per_s"),
        "/s",
        true,
    );
    row(
        "server RSS per idle session",
        ours.bytes_per_session,
        s("bytes_per_session"),
        "B",
        false,
    );
    row(
        "close by filter (10%), until the last `closed`",
        ours.close_ms,
        s("close_ms"),
        "ms",
        false,
    );
    row(
        "listener p50 at 1 000 changes/s",
        ours.listener_p50_ms,
        s("listener_p50_ms"),
        "ms",
        false,
    );
    row(
        "listener p99 at 1 000 changes/s",
        ours.listener_p99_ms,
        s("listener_p99_ms"),
        "ms",
        false,
    );
    row(
        "request to every handler session, until done",
        ours.send_filter_ms,
        s("send_filter_ms"),
        "ms",
        false,
    );
    row(
        "server CPU for that request, until done",
        ours.send_filter_cpu_ms,
        s("send_filter_cpu_ms"),
        "ms",
        false,
    );
    row(
        "server CPU for the close by filter",
        ours.close_cpu_ms,
        s("close_cpu_ms"),
        "ms",
        false,
    );
    row(
        "server CPU per second of 1 000 changes/s with a listener",
        ours.listener_cpu_ms_per_s,
        s("listener_cpu_ms_per_s"),
        "ms",
        false,
    );
    row(
        "requests by id per second",
        ours.send_by_id_per_s,
        s("send_by_id_per_s"),
        "/s",
        true,
    );
    println!(
        "\nclose: {} selected ({} connected clients told; Socket.IO: {}); messaging: {} recipients \
         (Socket.IO: {}); listener samples: {} (Socket.IO: {})",
        ours.close_selected,
        ours.close_connected,
        s("close_count"),
        ours.send_filter_recipients,
        s("send_filter_recipients"),
        ours.listener_samples,
        s("listener_samples"),
    );
    println!(
        "server heap in use per idle connected session: {:.0} bytes (glibc mallinfo2)",
        ours.heap_per_session
    );
    println!(
        "clients.close answered after {:.1} ms (the store's part and the queueing of every `closed`)",
        ours.close_answer_ms
    );
    if ours.disconnected > 0 {
        println!(
            "disconnected sessions held: {}, {:.0} bytes of RSS and {:.0} of heap each",
            ours.disconnected, ours.bytes_per_disconnected, ours.heap_per_disconnected
        );
    }
    if let Some(r) = redis {
        println!("\n| locks | session-filter | Redis SET NX PX + script | ratio |");
        println!("|---|---|---|---|");
        println!(
            "| acquire+release round trips/s, one connection | {:.0} | {:.0} | {:.2}× |",
            ours.lock_round_trips_per_s,
            r.round_trips_per_s,
            ours.lock_round_trips_per_s / r.round_trips_per_s
        );
        println!(
            "| hand-off p50 | {:.3} ms | {:.3} ms | {:.2}× |",
            ours.handoff_p50_ms,
            r.handoff_p50_ms,
            r.handoff_p50_ms / ours.handoff_p50_ms
        );
        println!(
            "| hand-off p99 | {:.3} ms | {:.3} ms | {:.2}× |",
            ours.handoff_p99_ms,
            r.handoff_p99_ms,
            r.handoff_p99_ms / ours.handoff_p99_ms
        );
    } else {
        println!(
            "\nlocks: {:.0} round trips/s, hand-off p50 {:.3} ms p99 {:.3} ms (no Redis)",
            ours.lock_round_trips_per_s, ours.handoff_p50_ms, ours.handoff_p99_ms
        );
    }
}
