//! `serve [FILE]`: the web console and its JSON API over a [`SessionStore`].
//!
//! The sessions come from FILE (JSON lines, read as `select` reads them) or,
//! without FILE, from the demo population `select` uses. The page, its
//! style and its script are embedded in the binary (see [`api`]); nothing is
//! fetched from elsewhere. With `--churn` a thread plays sessions connecting,
//! changing and closing (see [`crate::churn`]), so live watches show life.
//!
//! Every request first passes [`guard`]: the console answers only for its
//! own host names and origin, so other web sites can neither write through
//! a visitor's browser nor read through DNS rebinding.

mod api;
pub mod guard;

use std::io;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use axum::serve::ListenerExt;
use rayon::prelude::*;
use session_filter::{Limits, SessionStore, StoreOptions};

use crate::{select, Failure};

/// The most `--churn` events a second.
const MAX_CHURN: f64 = 100_000.0;

/// Options of `serve`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// JSON-lines sessions, as `select` reads them, or `-` for stdin;
    /// without FILE, the demo population `select` uses.
    file: Option<String>,
    /// The address to listen on (`127.0.0.1:0` picks a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    addr: String,
    /// Allow the bulk actions: close, roles and properties.
    #[arg(long)]
    allow_writes: bool,
    /// Also answer requests for this host name (`HOST` or `HOST:PORT`;
    /// without a port, the server's), besides the bound address,
    /// `localhost` and `127.0.0.1`; may be repeated. Others get 421.
    #[arg(long, value_name = "HOST")]
    allow_host: Vec<String>,
    /// Simulate sessions connecting, changing properties and roles, and
    /// closing, at about this many events a second.
    #[arg(long, value_name = "PER_SECOND")]
    churn: Option<f64>,
    /// The size of the demo population (for tests and measurements).
    #[arg(long, value_name = "N", hide = true, conflicts_with = "file")]
    demo_sessions: Option<usize>,
}

/// What every request handler shares.
pub(crate) struct App {
    pub store: SessionStore,
    /// The store's filter limits, for `check`, which parses without the store.
    pub limits: Limits,
    pub allow_writes: bool,
    pub churn: Option<f64>,
    /// Open watch streams, to bound them.
    pub watches: AtomicUsize,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let churn = match args.churn {
        Some(rate) if !(rate > 0.0 && rate <= MAX_CHURN) => {
            return Err(Failure::Invalid(format!(
                "--churn: expected a number of events a second above 0 and at most {MAX_CHURN}, \
                 found {rate}"
            )))
        }
        rate => rate,
    };
    let limits = Limits::default();
    let store = SessionStore::with_options(StoreOptions::new().limits(limits));
    let ids = match &args.file {
        Some(path) => select::load_store(&store, path)?,
        None => load_demo(&store, args.demo_sessions.unwrap_or(select::DEMO_SESSIONS))?,
    };
    let app = Arc::new(App {
        store,
        limits,
        allow_writes: args.allow_writes,
        churn,
        watches: AtomicUsize::new(0),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&args.addr)
            .await
            .map_err(|e| {
                Failure::Io(io::Error::new(
                    e.kind(),
                    format!("cannot listen on {}: {e}", args.addr),
                ))
            })?;
        let addr = listener.local_addr()?;
        if args.allow_writes && !addr.ip().is_loopback() {
            eprintln!(
                "warning: --allow-writes on {addr}, which is not a loopback address: anyone \
                 who can reach it (and whose Host header is allowed) can close and change \
                 every session; there is no authentication"
            );
        }
        let allowed = Arc::new(guard::Allowed::new(addr, &args.allow_host));
        if let Some(rate) = churn {
            crate::churn::spawn(app.clone(), |app: &App| &app.store, rate, ids);
        }
        eprintln!("listening on http://{addr}");
        // Small answers go out at once, not after the client's delayed ACK.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let router =
            api::router(app).layer(axum::middleware::from_fn_with_state(allowed, guard::layer));
        axum::serve(listener, router).await?;
        Ok(())
    })
}

/// Loads demo sessions `0..n`, in parallel; returns their ids.
pub(crate) fn load_demo(store: &SessionStore, n: usize) -> Result<Vec<String>, Failure> {
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
