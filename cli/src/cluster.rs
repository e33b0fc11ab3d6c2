//! `member` and `cluster` (SPEC section 9): serve sessions to a cluster over
//! NATS, and run one bulk operation on a whole cluster.
//!
//! `cluster` exits 0 when every expected member answered (and one was
//! expected at least), 3 when the result is partial (the partial figure is still printed, and stderr names the
//! members that did not answer), 2 on invalid input (checked before
//! anything is published, before NATS is even contacted) and 1 when NATS
//! cannot be reached.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use session_filter::cluster::{
    self, ClusterAnswer, ClusterClient, ClusterError, Member, MemberOptions,
};
use session_filter::{PropertyChange, SessionStore};

use crate::{compile, filter_text, select, Failure};

/// `member`'s arguments.
#[derive(Args, Debug)]
pub struct MemberArgs {
    /// The NATS server, such as nats://127.0.0.1:4222 (JetStream on: -js).
    #[arg(long, value_name = "URL")]
    nats: String,
    /// The cluster to serve in.
    #[arg(long, value_name = "NAME")]
    cluster: String,
    /// This member's name, unique in the cluster.
    #[arg(long, value_name = "NAME")]
    name: String,
    /// JSON-lines sessions (as `select` reads them), or `-` for stdin.
    #[arg(conflicts_with = "demo_part", required_unless_present = "demo_part")]
    file: Option<String>,
    /// Serve part I of N of the demo population: the sessions whose index
    /// is I-1 modulo N (so parts 1/N … N/N together are the population
    /// `select` uses without a file).
    #[arg(long, value_name = "I/N")]
    demo_part: Option<String>,
    /// Answer only requests whose reply subject starts with this prefix
    /// (the clients' inbox prefix).
    #[arg(long, value_name = "PREFIX", default_value = "_INBOX.")]
    reply_prefix: String,
    /// For testing: delay every reply by this many milliseconds.
    #[arg(long, value_name = "MS", hide = true)]
    reply_delay_ms: Option<u64>,
    /// How many requests to work on at once.
    #[arg(long, value_name = "N", hide = true, default_value_t = 8)]
    concurrency: usize,
}

/// `cluster`'s arguments.
#[derive(Args, Debug)]
pub struct ClusterArgs {
    /// The NATS server, such as nats://127.0.0.1:4222.
    #[arg(long, value_name = "URL")]
    nats: String,
    /// The cluster to run the operation on.
    #[arg(long, value_name = "NAME")]
    cluster: String,
    /// How long to wait for the members' answers.
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    timeout_ms: u64,
    #[command(subcommand)]
    op: ClusterOp,
}

/// The operations `cluster` runs. Each FILTER may be `-` (read from stdin);
/// one that starts with `-` follows `--`.
#[derive(Subcommand, Debug)]
pub enum ClusterOp {
    /// Print how many sessions match on the whole cluster.
    Count {
        /// The filter.
        filter: String,
    },
    /// Print the ids of the matching sessions, one JSON string a line, in
    /// `$SessionId` order.
    Select {
        /// The filter.
        filter: String,
    },
    /// Close the matching sessions; print how many were closed.
    Close {
        /// The filter.
        filter: String,
    },
    /// Change the roles of the matching sessions (remove, then add); print
    /// how many matched.
    Roles {
        /// The filter.
        filter: String,
        /// A role to remove (repeatable).
        #[arg(long = "remove", value_name = "ROLE")]
        remove: Vec<String>,
        /// A role to add (repeatable).
        #[arg(long = "add", value_name = "ROLE")]
        add: Vec<String>,
    },
    /// Set (a string) or remove (null) properties of the matching sessions,
    /// as in `{"Tier": "gold", "Trial": null}`; print how many matched.
    Set {
        /// The filter.
        filter: String,
        /// A JSON object of keys to new values or null.
        properties_json: String,
    },
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Failure::Io)
}

/// A broker failure: exit 1.
fn broker(e: ClusterError) -> Failure {
    match e {
        ClusterError::Invalid(e) => Failure::Invalid(e.to_string()),
        e @ (ClusterError::InvalidName { .. } | ClusterError::NameTaken { .. }) => {
            Failure::Invalid(e.to_string())
        }
        e => Failure::Io(io::Error::other(e.to_string())),
    }
}

/// `member`: serves sessions until SIGTERM or Ctrl-C, then deregisters.
pub fn member(args: MemberArgs) -> Result<(), Failure> {
    cluster::check_name("cluster", &args.cluster).map_err(broker)?;
    cluster::check_name("member", &args.name).map_err(broker)?;
    let store = Arc::new(SessionStore::new());
    match (&args.file, &args.demo_part) {
        (_, Some(part)) => load_demo_part(&store, part)?,
        (Some(file), None) => drop(select::load_store(&store, file)?),
        (None, None) => return Err(Failure::Invalid("give FILE or --demo-part I/N".into())),
    }
    let mut options = MemberOptions::new()
        .reply_prefix(args.reply_prefix)
        .concurrency(args.concurrency);
    if let Some(ms) = args.reply_delay_ms {
        options = options.reply_delay(Duration::from_millis(ms));
    }
    runtime()?.block_on(async {
        let nats = cluster::connect(&args.nats).await.map_err(broker)?;
        let sessions = store.len();
        let member = Member::start(nats, &args.cluster, &args.name, store, options)
            .await
            .map_err(broker)?;
        eprintln!(
            "member {}: serving {sessions} sessions in cluster {} at {}",
            args.name, args.cluster, args.nats
        );
        stopped().await?;
        member.stop().await.map_err(broker)?;
        eprintln!("member {}: stopped and deregistered", args.name);
        Ok(())
    })
}

/// Waits for SIGTERM or Ctrl-C (SIGINT).
async fn stopped() -> Result<(), Failure> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => Ok(()),
            ctrl_c = tokio::signal::ctrl_c() => ctrl_c.map_err(Failure::Io),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.map_err(Failure::Io)
    }
}

/// `I/N`: the demo sessions whose index is I-1 modulo N.
fn load_demo_part(store: &SessionStore, part: &str) -> Result<(), Failure> {
    let invalid = || {
        Failure::Invalid(format!(
            "--demo-part: expected I/N with 1 <= I <= N, found {part:?}"
        ))
    };
    let (i, n) = part.split_once('/').ok_or_else(invalid)?;
    let (i, n): (usize, usize) = match (i.parse(), n.parse()) {
        (Ok(i), Ok(n)) if 1 <= i && i <= n => (i, n),
        _ => return Err(invalid()),
    };
    for index in (i - 1..select::DEMO_SESSIONS).step_by(n) {
        store
            .insert(session_filter::demo::properties(index as u64))
            .map_err(|e| Failure::Invalid(format!("demo population: {e}")))?;
    }
    Ok(())
}

/// `cluster`: one operation on the whole cluster.
pub fn run(args: ClusterArgs) -> Result<(), Failure> {
    // Everything is checked before NATS is contacted: an empty store runs
    // the operation as a member would, on no session.
    let checker = SessionStore::new();
    let check = |result: Result<usize, session_filter::Error>| {
        result.map_err(|e| Failure::Invalid(e.to_string()))
    };
    let op = match args.op {
        ClusterOp::Count { filter } => Op::Count(checked(filter)?),
        ClusterOp::Select { filter } => Op::Select(checked(filter)?),
        ClusterOp::Close { filter } => Op::Close(checked(filter)?),
        ClusterOp::Roles {
            filter,
            remove,
            add,
        } => {
            let filter = checked(filter)?;
            check(checker.change_roles(&filter, &strs(&remove), &strs(&add)))?;
            Op::Roles {
                filter,
                remove,
                add,
            }
        }
        ClusterOp::Set {
            filter,
            properties_json,
        } => {
            let filter = checked(filter)?;
            let properties: BTreeMap<String, Option<String>> =
                serde_json::from_str(&properties_json).map_err(|e| {
                    Failure::Invalid(format!(
                        "expected a JSON object of strings or nulls for the properties, {e}"
                    ))
                })?;
            let change: PropertyChange = properties.into_iter().collect();
            check(checker.change_properties(&filter, &change))?;
            Op::Set { filter, change }
        }
    };
    cluster::check_name("cluster", &args.cluster).map_err(broker)?;
    let timeout = Duration::from_millis(args.timeout_ms);
    runtime()?.block_on(async {
        let nats = cluster::connect(&args.nats).await.map_err(broker)?;
        let client = ClusterClient::connect(nats, &args.cluster)
            .await
            .map_err(broker)?
            .timeout(timeout);
        match op {
            Op::Count(filter) => report_total(client.count(&filter).await.map_err(broker)?),
            Op::Close(filter) => report_total(client.close(&filter).await.map_err(broker)?),
            Op::Roles {
                filter,
                remove,
                add,
            } => report_total(
                client
                    .change_roles(&filter, &strs(&remove), &strs(&add))
                    .await
                    .map_err(broker)?,
            ),
            Op::Set { filter, change } => report_total(
                client
                    .change_properties(&filter, &change)
                    .await
                    .map_err(broker)?,
            ),
            Op::Select(filter) => {
                let answer = client.select(&filter).await.map_err(broker)?;
                let mut out = io::BufWriter::new(io::stdout().lock());
                for id in &answer.value {
                    let json =
                        serde_json::to_string(id).map_err(|e| Failure::Io(io::Error::other(e)))?;
                    writeln!(out, "{json}")?;
                }
                out.flush()?;
                report(&answer)
            }
        }
    })
}

/// A checked operation.
enum Op {
    Count(String),
    Select(String),
    Close(String),
    Roles {
        filter: String,
        remove: Vec<String>,
        add: Vec<String>,
    },
    Set {
        filter: String,
        change: PropertyChange,
    },
}

/// The filter text (from stdin for `-`), parsed and compiled as `check`
/// does, so a bad one is reported with its position and caret.
fn checked(filter: String) -> Result<String, Failure> {
    let text = filter_text(filter)?;
    compile(&text)?;
    Ok(text)
}

fn strs(roles: &[String]) -> Vec<&str> {
    roles.iter().map(String::as_str).collect()
}

fn report_total(answer: ClusterAnswer<usize>) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    writeln!(out, "{}", answer.value)?;
    out.flush()?;
    report(&answer)
}

/// Who answered, on stderr; `Failure::Partial` (exit 3) unless everyone did.
fn report<T>(answer: &ClusterAnswer<T>) -> Result<(), Failure> {
    let figures: Vec<String> = answer
        .answered
        .iter()
        .map(|m| format!("{} ({})", m.member, m.figure))
        .collect();
    let replied = answer.answered.len() + answer.failed.len();
    let expected = answer.expected.len();
    if expected == 0 {
        eprintln!("no member is registered in this cluster: waited the whole timeout for answers");
    }
    eprintln!(
        "{replied} of {expected} members answered{}{}",
        if figures.is_empty() { "" } else { ": " },
        figures.join(", ")
    );
    let unexpected: Vec<&str> = answer
        .answered
        .iter()
        .map(|m| m.member.as_str())
        .chain(answer.failed.iter().map(|m| m.member.as_str()))
        .filter(|m| !answer.expected.iter().any(|e| e == m))
        .collect();
    if !unexpected.is_empty() {
        eprintln!(
            "answered without being registered: {}",
            unexpected.join(", ")
        );
    }
    for failure in &answer.failed {
        eprintln!("member {} failed: {}", failure.member, failure.message);
    }
    if answer.is_complete() {
        return Ok(());
    }
    if expected == 0 {
        eprintln!("partial result: no member was expected, so none can be known to be missing");
    } else if !answer.missing.is_empty() {
        eprintln!(
            "partial result: no answer from {}",
            answer.missing.join(", ")
        );
    } else {
        eprintln!("partial result: some members failed");
    }
    Err(Failure::Partial)
}
