//! `client`: a command-line client of the session protocol (SPEC 11),
//! printing JSON lines, as people use `nats` or `redis-cli`.

use std::io::{self, Read, Write};
use std::time::Duration;

use serde_json::{json, Value};
use session_filter_client::{connect, Error, OpenOptions, Response, Session, Target};

use crate::Failure;

/// Options of `client`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The session endpoint, `ws://HOST:PORT/session`.
    #[arg(
        long,
        value_name = "URL",
        default_value = "ws://127.0.0.1:8080/session"
    )]
    url: String,
    /// The principal to open the session as (default: anonymous).
    #[arg(long, value_name = "P")]
    principal: Option<String>,
    /// Read the password from stdin (a final newline is not part of it).
    #[arg(long)]
    password_stdin: bool,
    #[command(subcommand)]
    command: ClientCommand,
}

/// `client metrics …`.
#[derive(clap::Subcommand, Debug)]
enum MetricsCommand {
    /// Adds or replaces a collector; prints `{}`.
    Put {
        name: String,
        /// The filter (one starting with `-` follows `--`).
        filter: String,
        /// Group-by keys (comma-separated).
        #[arg(long, value_name = "K1,K2", value_delimiter = ',')]
        group_by: Vec<String>,
        /// Most groups kept (1 to 10 000; default 250).
        #[arg(long, value_name = "N")]
        max_groups: Option<u64>,
        /// Drop groups that fall to 0.
        #[arg(long)]
        remove_empty: bool,
        /// Keep it off `/metrics`.
        #[arg(long)]
        no_export: bool,
    },
    /// Removes a collector; prints `{}`.
    Remove { name: String },
    /// Prints every collector, one JSON line each.
    List,
    /// Prints the figures of the collectors (all, or those named) and the
    /// server's.
    Fetch { names: Vec<String> },
}

/// Which sessions an operation acts on: `--id ID`, or a filter.
#[derive(clap::Args, Debug)]
struct TargetArgs {
    /// One session by id.
    #[arg(long, value_name = "SESSION_ID", conflicts_with = "filter")]
    id: Option<String>,
    /// A filter (a filter starting with `-` follows `--`).
    #[arg(required_unless_present = "id")]
    filter: Option<String>,
}

impl TargetArgs {
    fn target(self) -> Target {
        match (self.id, self.filter) {
            (Some(id), _) => Target::Id(id),
            (None, f) => Target::Filter(f.unwrap_or_default()),
        }
    }
}

#[derive(clap::Subcommand, Debug)]
enum ClientCommand {
    /// Prints `{"count":N}` for a filter.
    Count { filter: String },
    /// Prints a page of matching sessions (`{"total","sessions"}`).
    Fetch {
        filter: String,
        /// Keys to return (comma-separated; `*F` all fixed, `*U` all user),
        /// or `all`.
        #[arg(long, value_name = "K1,K2")]
        properties: Option<String>,
        /// Order by this key.
        #[arg(long, value_name = "KEY")]
        sort: Option<String>,
        /// Descending.
        #[arg(long)]
        desc: bool,
        #[arg(long, default_value_t = 0)]
        offset: usize,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Prints a session's properties.
    Get {
        session_id: String,
        /// Keys (comma-separated; default all).
        #[arg(long, value_name = "K1,K2")]
        keys: Option<String>,
    },
    /// Closes sessions by id or filter; prints `{"count":N}`.
    Close {
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Changes roles by id or filter; prints `{"count":N}`.
    Roles {
        #[command(flatten)]
        target: TargetArgs,
        /// Roles to add (comma-separated).
        #[arg(long, value_delimiter = ',')]
        add: Vec<String>,
        /// Roles to remove (comma-separated).
        #[arg(long, value_delimiter = ',')]
        remove: Vec<String>,
    },
    /// Sets properties (`--set K=V`, `--remove K`) by id or filter.
    Set {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long = "set", value_name = "K=V")]
        set: Vec<String>,
        #[arg(long = "remove", value_name = "K")]
        remove: Vec<String>,
    },
    /// Listens to the sessions a filter matches, printing each event.
    Listen {
        #[arg(default_value = "all")]
        filter: String,
        /// Keys to report (comma-separated).
        #[arg(long, value_name = "K1,K2", value_delimiter = ',')]
        properties: Vec<String>,
        /// Only sessions that started after this time (ms since the epoch).
        #[arg(long)]
        after: Option<u64>,
        /// Stop after this many events.
        #[arg(long)]
        events: Option<usize>,
    },
    /// Prints the session's own permissions (on PATH, if given).
    Permissions { path: Option<String> },
    /// Session metric collectors (SPEC 11.9): put, remove, list, fetch.
    #[command(subcommand)]
    Metrics(MetricsCommand),
    /// Sends any request: METHOD and its params as JSON.
    Call {
        method: String,
        #[arg(default_value = "{}")]
        params: String,
    },
    /// Holds a lock while a command runs, and exits with its status; the
    /// fencing token is in the command's environment as
    /// `SESSION_FILTER_LOCK_SEQUENCE`.
    Lock {
        name: String,
        /// `session` or `connection`.
        #[arg(long, default_value = "session")]
        scope: String,
        /// The command, after `--`.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Sends a request to every matching session with a handler for PATH;
    /// prints each response and the summary.
    Send {
        filter: String,
        path: String,
        /// The request, as JSON.
        request: String,
        #[arg(long, value_name = "MS")]
        timeout: Option<u64>,
    },
    /// Answers requests sent to PATH: echoes each request back, or with
    /// `-- COMMAND…` runs it with the request on stdin and answers its stdout
    /// (as JSON when it parses, else as a string).
    Handle {
        path: String,
        /// Stop after this many requests.
        #[arg(long)]
        requests: Option<usize>,
        #[arg(last = true)]
        command: Vec<String>,
    },
}

fn failure(e: Error) -> Failure {
    match e {
        Error::Connection(m) => Failure::Io(io::Error::other(m)),
        other => Failure::Invalid(other.to_string()),
    }
}

fn print(value: &Value) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    writeln!(out, "{value}")?;
    out.flush()?;
    Ok(())
}

fn keys(list: &str) -> Value {
    if list == "all" {
        return json!("all");
    }
    json!(list
        .split(',')
        .filter(|k| !k.is_empty())
        .collect::<Vec<_>>())
}

pub fn run(args: Args) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: Args) -> Result<(), Failure> {
    let mut options = OpenOptions {
        principal: args.principal.clone(),
        client_type: Some("OTHER".into()),
        ..OpenOptions::default()
    };
    if args.password_stdin {
        let mut text = String::new();
        io::stdin().read_to_string(&mut text)?;
        let password = text
            .strip_suffix("\r\n")
            .or_else(|| text.strip_suffix('\n'))
            .unwrap_or(&text);
        options.credentials = Some(password.to_owned());
    }
    let session = connect(&args.url, options).await.map_err(failure)?;
    let outcome = command(&session, args.command).await;
    if session.closed_reason().is_none() && session.is_connected() {
        let _ = tokio::time::timeout(Duration::from_secs(2), session.close()).await;
    }
    outcome
}

async fn command(session: &Session, command: ClientCommand) -> Result<(), Failure> {
    match command {
        ClientCommand::Count { filter } => {
            let n = session.count(&filter).await.map_err(failure)?;
            print(&json!({ "count": n }))
        }
        ClientCommand::Fetch {
            filter,
            properties,
            sort,
            desc,
            offset,
            limit,
        } => {
            let params = json!({
                "properties": properties.as_deref().map(keys),
                "order_by": sort, "descending": desc, "offset": offset, "limit": limit,
            });
            print(&session.fetch(&filter, params).await.map_err(failure)?)
        }
        ClientCommand::Get {
            session_id,
            keys: k,
        } => {
            let params = json!({"session_id": session_id, "keys": k.as_deref().map(keys)});
            print(
                &session
                    .call("clients.get_properties", params)
                    .await
                    .map_err(failure)?,
            )
        }
        ClientCommand::Close { target } => {
            let n = session
                .close_sessions(target.target())
                .await
                .map_err(failure)?;
            print(&json!({ "count": n }))
        }
        ClientCommand::Roles {
            target,
            add,
            remove,
        } => {
            let add: Vec<&str> = add.iter().map(String::as_str).collect();
            let remove: Vec<&str> = remove.iter().map(String::as_str).collect();
            let n = session
                .change_roles(target.target(), &remove, &add)
                .await
                .map_err(failure)?;
            print(&json!({ "count": n }))
        }
        ClientCommand::Set {
            target,
            set,
            remove,
        } => {
            let mut change: Vec<(String, Option<String>)> = Vec::new();
            for pair in &set {
                let (k, v) = pair.split_once('=').ok_or_else(|| {
                    Failure::Invalid(format!("--set {pair:?}: expected KEY=VALUE"))
                })?;
                change.push((k.to_owned(), Some(v.to_owned())));
            }
            change.extend(remove.into_iter().map(|k| (k, None)));
            let change: Vec<(&str, Option<&str>)> = change
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_deref()))
                .collect();
            print(
                &session
                    .set_properties(target.target(), &change)
                    .await
                    .map_err(failure)?,
            )
        }
        ClientCommand::Listen {
            filter,
            properties,
            after,
            events,
        } => {
            let properties: Vec<&str> = properties.iter().map(String::as_str).collect();
            let mut listener = session
                .listen(&filter, &properties, after)
                .await
                .map_err(failure)?;
            print(&json!({ "listener": listener.id() }))?;
            let mut seen = 0;
            while events.is_none_or(|n| seen < n) {
                match listener.next().await {
                    Some(event) => print(&event)?,
                    None => break,
                }
                seen += 1;
            }
            Ok(())
        }
        ClientCommand::Permissions { path } => print(
            &session
                .permissions(path.as_deref())
                .await
                .map_err(failure)?,
        ),
        ClientCommand::Metrics(command) => metrics(session, command).await,
        ClientCommand::Call { method, params } => {
            let params: Value = serde_json::from_str(&params)
                .map_err(|e| Failure::Invalid(format!("params are not JSON: {e}")))?;
            print(&session.call(&method, params).await.map_err(failure)?)
        }
        ClientCommand::Lock {
            name,
            scope,
            command,
        } => {
            let guard = session.lock(&name, &scope).await.map_err(failure)?;
            print(&json!({"name": guard.name, "sequence": guard.sequence, "scope": guard.scope}))?;
            let (program, rest) = command
                .split_first()
                .ok_or_else(|| Failure::Invalid("give the command after --".into()))?;
            let status = tokio::process::Command::new(program)
                .args(rest)
                .env("SESSION_FILTER_LOCK_SEQUENCE", guard.sequence.to_string())
                .env("SESSION_FILTER_LOCK_NAME", &guard.name)
                .status()
                .await
                .map_err(|e| Failure::Io(io::Error::new(e.kind(), format!("{program}: {e}"))))?;
            let _ = guard.release().await;
            match status.code() {
                Some(0) => Ok(()),
                code => Err(Failure::Status(code.unwrap_or(1))),
            }
        }
        ClientCommand::Send {
            filter,
            path,
            request,
            timeout,
        } => {
            let request: Value = serde_json::from_str(&request)
                .map_err(|e| Failure::Invalid(format!("the request is not JSON: {e}")))?;
            let mut responses = session
                .send_to_filter(&filter, &path, request, timeout)
                .await
                .map_err(failure)?;
            print(&json!({"request": responses.request, "count": responses.count}))?;
            while let Some(r) = responses.next().await {
                match r {
                    Response::Answer(v) => print(&v)?,
                    Response::Done(v) => {
                        print(&v)?;
                        break;
                    }
                }
            }
            Ok(())
        }
        ClientCommand::Handle {
            path,
            requests,
            command,
        } => {
            let mut handler = session.add_handler(&path).await.map_err(failure)?;
            print(&json!({ "handling": path }))?;
            let mut seen = 0;
            while requests.is_none_or(|n| seen < n) {
                let Some(request) = handler.next().await else {
                    break;
                };
                print(
                    &json!({"id": request.id, "from": request.from, "request": request.request}),
                )?;
                let answer = match command.split_first() {
                    None => Ok(request.request.clone()),
                    Some((program, rest)) => run_handler(program, rest, &request.request).await,
                };
                let sent = match answer {
                    Ok(v) => handler.respond(&request, v).await,
                    Err(e) => handler.reject(&request, &e).await,
                };
                sent.map_err(failure)?;
                seen += 1;
            }
            Ok(())
        }
    }
}

/// Runs a handler command with the request on stdin; its stdout is the
/// answer (JSON when it parses), a failure the error text.
async fn metrics(session: &Session, command: MetricsCommand) -> Result<(), Failure> {
    match command {
        MetricsCommand::Put {
            name,
            filter,
            group_by,
            max_groups,
            remove_empty,
            no_export,
        } => {
            let mut spec = json!({
                "name": name,
                "filter": filter,
                "group_by": group_by,
                "remove_empty": remove_empty,
                "export": !no_export,
            });
            if let Some(n) = max_groups {
                spec["max_groups"] = json!(n);
            }
            session.put_session_collector(spec).await.map_err(failure)?;
            print(&json!({}))
        }
        MetricsCommand::Remove { name } => {
            session
                .remove_session_collector(&name)
                .await
                .map_err(failure)?;
            print(&json!({}))
        }
        MetricsCommand::List => {
            for collector in session.list_session_collectors().await.map_err(failure)? {
                print(&collector)?;
            }
            Ok(())
        }
        MetricsCommand::Fetch { names } => {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let names = (!names.is_empty()).then_some(names.as_slice());
            print(&session.fetch_metrics(names).await.map_err(failure)?)
        }
    }
}

async fn run_handler(program: &str, args: &[String], request: &Value) -> Result<Value, String> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("{program}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(request.to_string().as_bytes()).await;
    }
    let output = child.wait_with_output().await.map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if !output.status.success() {
        return Err(format!("{program} exited with {}: {text}", output.status));
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
}
