//! `server`: the session server (SPEC 11), and `hash-password`.

use std::io::{self, Read};
use std::sync::Arc;

use rayon::prelude::*;
use session_filter::{SessionStore, StoreOptions};
use session_filter_server::{hash_password, random_password, Config, Server};

use crate::Failure;

/// The most `--churn` events a second.
const MAX_CHURN: f64 = 100_000.0;

/// Options of `server`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The TOML configuration (SPEC 11.4); without it, the embedded default
    /// (anonymous CLIENT sessions, and a principal `admin` whose random
    /// password is printed once on stderr).
    #[arg(long, value_name = "FILE")]
    config: Option<String>,
    /// The address to listen on, over the configuration's `listen`
    /// (`127.0.0.1:0` picks a free port).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Adds N sessions of the demo population (sessions without a
    /// connection), so there is something to filter at once.
    #[arg(long, value_name = "N")]
    demo: Option<usize>,
    /// Keeps the demo sessions changing: connecting, changing properties
    /// and roles, and closing, at about this many events a second.
    #[arg(long, value_name = "PER_SECOND")]
    churn: Option<f64>,
    /// Joins a cluster of session servers over this NATS server (JetStream
    /// on: `nats-server -js`), over the configuration's `[cluster] nats`;
    /// needs `--cluster` (or `[cluster] name`). The member's name is the
    /// configuration's `[server] name`, unique in the cluster.
    #[arg(long, value_name = "URL")]
    nats: Option<String>,
    /// The cluster to join (with `--nats`), over `[cluster] name`.
    #[arg(long, value_name = "NAME")]
    cluster: Option<String>,
}

pub fn run(args: Args) -> Result<(), Failure> {
    if let Some(rate) = args.churn {
        if !(rate > 0.0 && rate <= MAX_CHURN) {
            return Err(Failure::Invalid(format!(
                "--churn: expected a number of events a second above 0 and at most {MAX_CHURN}, \
                 found {rate}"
            )));
        }
    }
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Failure::Io(io::Error::new(e.kind(), format!("cannot read {path}: {e}")))
            })?;
            Config::parse(&text).map_err(|e| Failure::Invalid(format!("{path}: {e}")))?
        }
        None => {
            let password = random_password().map_err(Failure::Invalid)?;
            let hash = hash_password(&password).map_err(Failure::Invalid)?;
            eprintln!("admin password: {password}");
            Config::embedded_default(&hash)
        }
    };
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    let store = Arc::new(SessionStore::with_options(StoreOptions::new()));
    let ids = match args.demo {
        Some(n) => load_demo(&store, n)?,
        None => Vec::new(),
    };
    let listen = config.server.listen.clone();
    let nats = args.nats.or(config.cluster.nats.clone());
    let cluster = args.cluster.or(config.cluster.name.clone());
    let joining = match (nats, cluster) {
        (Some(nats), Some(cluster)) => Some((nats, cluster)),
        (None, None) => None,
        _ => {
            return Err(Failure::Invalid(
                "--nats and --cluster (or [cluster] nats and name) go together".into(),
            ))
        }
    };
    let server = Server::builder(config).store(store.clone()).build();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&listen).await.map_err(|e| {
            Failure::Io(io::Error::new(
                e.kind(),
                format!("cannot listen on {listen}: {e}"),
            ))
        })?;
        let addr = listener.local_addr()?;
        if let Some((nats, cluster)) = &joining {
            server
                .join_cluster(nats, cluster)
                .await
                .map_err(Failure::Invalid)?;
            eprintln!(
                "member {} of cluster {cluster} over {nats}",
                server.config().server.name
            );
        }
        if let Some(rate) = args.churn {
            crate::churn::spawn(store, rate, ids);
        }
        if !addr.ip().is_loopback() {
            eprintln!(
                "warning: listening on {addr}, beyond this machine: sessions open to anyone who \
                 can reach it, as the configuration allows"
            );
        }
        eprintln!("listening on http://{addr}");
        server.serve(listener, stop_signal()).await?;
        eprintln!("stopped: every session closed");
        Ok(())
    })
}

/// SIGTERM or Ctrl-C.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `hash-password`: a password on stdin (a final newline is not part of
/// it) → its argon2id PHC string.
pub fn hash(stdin: &mut impl Read) -> Result<String, Failure> {
    let mut text = String::new();
    stdin
        .read_to_string(&mut text)
        .map_err(|e| Failure::Invalid(format!("the password is not UTF-8 text: {e}")))?;
    let password = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    if password.is_empty() {
        return Err(Failure::Invalid("the password on stdin is empty".into()));
    }
    hash_password(password).map_err(Failure::Invalid)
}

/// Loads demo sessions `0..n`, in parallel; returns their ids.
fn load_demo(store: &SessionStore, n: usize) -> Result<Vec<String>, Failure> {
    (0..n as u64)
        .into_par_iter()
        .map(|i| {
            let props = session_filter::demo::properties(i);
            let id = props.first().map(|(_, id)| id.clone()).unwrap_or_default();
            store.insert(props).map(|()| id)
        })
        .collect::<Result<Vec<String>, _>>()
        .map_err(|e| Failure::Invalid(format!("demo population: {e}")))
}
