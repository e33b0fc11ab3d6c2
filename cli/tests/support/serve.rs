//! Starting `session-filter serve` for a test, and a tiny HTTP/1.0 client.
//!
//! HTTP/1.0 keeps the client small: the server closes the connection after
//! each answer and streams (server-sent events) are not chunked.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::BIN;

/// A running server, killed when dropped.
pub struct Server {
    child: Child,
    /// `HOST:PORT`.
    pub addr: String,
    /// What the server printed on stderr before it listened (warnings).
    pub preamble: String,
}

impl Server {
    /// Starts `serve ARGS --addr 127.0.0.1:0` (unless ARGS name an
    /// `--addr`) and waits for its `listening on` line.
    pub fn start(args: &[&str]) -> Server {
        Server::try_start(args).unwrap_or_else(|e| panic!("serve {args:?}: {e}"))
    }

    /// Like [`Server::start`], but returns what the server printed when it
    /// exits without listening.
    pub fn try_start(args: &[&str]) -> Result<Server, String> {
        let mut child = Command::new(BIN)
            .arg("serve")
            .args(args)
            .args(if args.contains(&"--addr") {
                &[][..]
            } else {
                &["--addr", "127.0.0.1:0"][..]
            })
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {BIN}: {e}"))?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let (tx, rx) = mpsc::channel();
        // Keep reading stderr so the server never blocks on a full pipe.
        thread::spawn(move || {
            let mut sent = false;
            let mut printed = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent {
                    if let Some(addr) = line.strip_prefix("listening on http://") {
                        let _ = tx.send(Ok((addr.to_owned(), std::mem::take(&mut printed))));
                        sent = true;
                    } else {
                        printed.push_str(&line);
                        printed.push('\n');
                    }
                }
            }
            if !sent {
                let _ = tx.send(Err(printed));
            }
        });
        match rx.recv_timeout(Duration::from_secs(300)) {
            Ok(Ok((addr, preamble))) => Ok(Server {
                child,
                addr,
                preamble,
            }),
            Ok(Err(printed)) => {
                let status = child.wait().map_err(|e| e.to_string())?;
                Err(format!("exited with {status}: {printed}"))
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err("did not start listening".into())
            }
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sends a request and returns the status, the headers (lower-case
    /// names) and the body.
    pub fn request(&self, method: &str, path: &str, body: Option<&[u8]>) -> Answer {
        self.request_with(method, path, &[], body)
    }

    /// Like [`Server::request`], with `headers` in place of the default
    /// ones of the same name (`Host`: the server's address;
    /// `Content-Type: application/json`); a header given as `""` is left out.
    pub fn request_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Answer {
        let mut stream = TcpStream::connect(&self.addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .expect("timeout");
        let body = body.unwrap_or_default();
        let mut head = format!("{method} {path} HTTP/1.0\r\n");
        let defaults = [
            ("Host", self.addr.as_str()),
            ("Content-Type", "application/json"),
        ];
        let given = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
        for (name, value) in defaults.iter().filter(|(name, _)| !given(name)) {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        for (name, value) in headers.iter().filter(|(_, value)| !value.is_empty()) {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        stream.write_all(head.as_bytes()).expect("write");
        // The server may answer (and close) before reading an oversized body.
        let _ = stream.write_all(body);
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw);
        Answer::parse(&raw)
    }

    /// POSTs a JSON value.
    pub fn post(&self, path: &str, body: &Value) -> Answer {
        self.request("POST", path, Some(body.to_string().as_bytes()))
    }

    /// Opens a stream of server-sent events.
    pub fn events(&self, path: &str) -> Events {
        let mut stream = TcpStream::connect(&self.addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let head = format!("GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr);
        stream.write_all(head.as_bytes()).expect("write");
        let mut reader = BufReader::new(stream);
        let mut status = String::new();
        reader.read_line(&mut status).expect("status line");
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("header");
            if line.trim().is_empty() {
                break;
            }
            headers.push(line.trim().to_ascii_lowercase());
        }
        Events {
            status: status
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
            headers,
            reader,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    fn parse(raw: &[u8]) -> Answer {
        let text = String::from_utf8_lossy(raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Answer {
            status,
            headers,
            body: body.to_owned(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {:?}", self.status, self.body))
    }

    /// The error message of a JSON error answer.
    pub fn message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no error message: {}", self.body))
            .to_owned()
    }
}

/// A stream of server-sent events.
pub struct Events {
    pub status: u16,
    pub headers: Vec<String>,
    reader: BufReader<TcpStream>,
}

impl Events {
    /// The next event as (name, data), skipping comments; `None` when
    /// nothing arrives within `timeout` or the stream ends.
    pub fn next(&mut self, timeout: Duration) -> Option<(String, Value)> {
        let deadline = Instant::now() + timeout;
        let mut name = String::from("message");
        let mut data = String::new();
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            self.reader
                .get_ref()
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .ok()?;
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                if !data.is_empty() {
                    let value = serde_json::from_str(&data).expect("JSON event data");
                    return Some((name, value));
                }
                continue;
            }
            if let Some(v) = line.strip_prefix("event:") {
                name = v.trim().to_owned();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim_start());
            }
        }
    }

    /// Reads events until one named `name` satisfies `test`, or `timeout`.
    pub fn until(
        &mut self,
        timeout: Duration,
        mut test: impl FnMut(&str, &Value) -> bool,
    ) -> Vec<(String, Value)> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Some((name, data)) = self.next(left) else {
                break;
            };
            let done = test(&name, &data);
            seen.push((name, data));
            if done {
                return seen;
            }
        }
        panic!("the awaited event did not arrive in {timeout:?}; saw {seen:?}");
    }
}
