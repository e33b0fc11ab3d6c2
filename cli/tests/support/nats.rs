//! A `nats-server` with JetStream on a free loopback port, for the tests of
//! the engine's cluster (`cluster.rs`) and of the session servers' cluster
//! (`server_cluster.rs`): skipped with a note when it is not installed,
//! except under CI.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// A `nats-server` with JetStream, on a free loopback port.
pub struct NatsServer {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    binary: PathBuf,
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_file(self.dir.with_extension("conf"));
    }
}

impl NatsServer {
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn spawn(binary: &PathBuf, port: u16, dir: &PathBuf) -> Child {
        let mut command = Command::new(binary);
        command
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir);
        let config = dir.with_extension("conf");
        if config.is_file() {
            command.arg("-c").arg(&config);
        }
        command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts")
    }

    /// Waits (bounded) until the server accepts connections; false when it
    /// exited first.
    pub fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Kills the server and starts a new one on the same port: everything
    /// it held in memory (the membership buckets) is lost.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = NatsServer::spawn(&self.binary, self.port, &self.dir);
        assert!(self.wait_ready(), "nats-server did not restart");
    }
}

fn nats_server_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|dir| dir.join("nats-server"))
        .find(|p| p.is_file())
}

/// Starts a server, or returns `None` (after saying why) when there is no
/// `nats-server` outside CI.
pub fn nats() -> Option<NatsServer> {
    nats_with("")
}

/// [`nats`] with these lines of server configuration.
pub fn nats_with(config: &str) -> Option<NatsServer> {
    let Some(binary) = nats_server_binary() else {
        let message = "nats-server is not installed: install it with \
                       `apt-get update && apt-get install -y nats-server` (Debian/Ubuntu)";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{message}");
        }
        eprintln!("SKIPPED: {message}");
        return None;
    };
    static SERVERS: AtomicUsize = AtomicUsize::new(0);
    for _attempt in 0..5 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!(
            "session-filter-nats-{}-{}",
            std::process::id(),
            SERVERS.fetch_add(1, Ordering::Relaxed)
        ));
        if !config.is_empty() {
            std::fs::write(dir.with_extension("conf"), config).expect("config");
        }
        let child = NatsServer::spawn(&binary, port, &dir);
        let mut server = NatsServer {
            child,
            port,
            dir,
            binary: binary.clone(),
        };
        if server.wait_ready() {
            return Some(server);
        }
        // The port was taken meanwhile: try another. Dropping `server`
        // kills it and removes its directory.
    }
    panic!("nats-server did not start");
}
