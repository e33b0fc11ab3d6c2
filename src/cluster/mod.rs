//! Cluster-wide bulk operations over NATS (SPEC section 9; feature
//! `cluster`).
//!
//! When one server is not enough, sessions are spread over several, each
//! embedding its own [`SessionStore`](crate::SessionStore). A [`Member`]
//! serves one store under a cluster name; a [`ClusterClient`] runs one
//! operation on every member and combines the answers into a
//! [`ClusterAnswer`]:
//!
//! - counts add up; `select` ids are merged in `$SessionId` order and
//!   `fetch` pages in the requested order;
//! - the client parses the filter (and checks the rest of the request)
//!   before it publishes anything, and every member parses it again with
//!   its own limits;
//! - each request carries an id, and a member applies a mutating request
//!   at most once per id (it remembers the last
//!   [`MemberOptions::remembered_ids`] of them);
//! - the answer names every member that answered, with its own figure
//!   (expected or not), and every member that was expected and did not
//!   answer before the deadline. A partial answer says so
//!   ([`ClusterAnswer::is_complete`]); so does one for which no member was
//!   expected, since a roster the client could not read (or an empty
//!   bucket while members serve) does not prove that nobody holds
//!   sessions: the client then waits the whole deadline and reports every
//!   reply it got.
//!
//! # Transport and membership
//!
//! Requests go out on the core NATS subject
//! `session-filter.<cluster>.request`, which every member subscribes to;
//! replies come back on the client's own inbox. The format is the
//! versioned JSON of [`wire`].
//!
//! Members register in a JetStream key-value bucket,
//! `session-filter-<cluster>` (memory storage, one value per member, values
//! expire after [`FORGET_AFTER`]), and refresh their entry every
//! [`MemberOptions::refresh`]. A member that stops cleanly
//! ([`Member::stop`]) deletes its entry and is no longer expected at once;
//! one that dies keeps its entry until it expires, 10 s after it was last
//! written, and is reported missing until then. A client watches the bucket
//! and expects every member whose entry is younger than [`FORGET_AFTER`]
//! when an operation starts. A member registers with create-if-absent, so a
//! second member of the same name does not start
//! ([`ClusterError::NameTaken`]); and it writes its entry again, creating
//! the bucket, when the broker has lost it (a restarted broker).
//!
//! # Security
//!
//! A member answers only on reply subjects under its requesters' inbox
//! prefix ([`MemberOptions::reply_prefix`], `_INBOX.` by default), so a
//! request cannot make it publish elsewhere. Anyone who may publish on the
//! request subject may still close every session: give that permission to
//! the clients that should have it (see the README for a set of NATS
//! permissions).
//!
//! Why a bucket rather than heartbeats on a plain subject: a client that
//! has just started (the CLI runs one operation and exits) learns the whole
//! membership, dead members included, from the bucket at once, instead of
//! listening for a heartbeat period, and no member has to keep a roster of
//! the others. The broker's clock decides when an entry is forgotten, so
//! members' clocks do not matter; a client compares an entry's time with its
//! own clock, so a client's clock should be within a second or so of the
//! broker's (NTP).
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use session_filter::SessionStore;
//! use session_filter::cluster::{self, ClusterClient, Member, MemberOptions};
//!
//! # async fn run() -> Result<(), cluster::ClusterError> {
//! let store = Arc::new(SessionStore::new());
//! store.insert([("$SessionId", "s1"), ("Department", "IT")]).expect("a valid session");
//!
//! let nats = cluster::connect("nats://127.0.0.1:4222").await?;
//! let member = Member::start(nats.clone(), "prod", "server-1", store, MemberOptions::new()).await?;
//!
//! let client = ClusterClient::connect(nats, "prod").await?;
//! let closed = client.close("Department is 'IT'").await?;
//! if !closed.is_complete() {
//!     eprintln!("partial: {} did not answer", closed.missing.join(", "));
//! }
//! println!("closed {} sessions", closed.value);
//! member.stop().await?;
//! # Ok(())
//! # }
//! ```
//!
//! Events worth a log line (a malformed message, a failed refresh) are
//! emitted with [`tracing`](https://docs.rs/tracing); nothing here panics on
//! what arrives from the wire.

mod client;
mod member;
mod membership;
pub mod wire;

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

pub use self::client::{ClusterAnswer, ClusterClient, MemberFailure, MemberFigure};
pub use self::member::{Member, MemberOptions};
pub use self::wire::FetchSpec;

/// How long after its last refresh a member that stopped without a word
/// is still expected (and reported missing); then it is forgotten.
pub const FORGET_AFTER: Duration = Duration::from_secs(10);

/// The subject a cluster's requests are published on.
pub fn request_subject(cluster: &str) -> String {
    format!("session-filter.{cluster}.request")
}

/// The JetStream key-value bucket a cluster's members register in.
pub fn membership_bucket(cluster: &str) -> String {
    format!("session-filter-{cluster}")
}

/// Connects to a NATS server (for example `nats://127.0.0.1:4222`), failing
/// at once when it cannot be reached rather than retrying.
pub async fn connect(url: &str) -> Result<async_nats::Client, ClusterError> {
    async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .map_err(|e| ClusterError::Connect {
            url: url.to_owned(),
            source: Box::new(e),
        })
}

/// What can go wrong in a cluster operation or in running a member.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClusterError {
    /// The request is invalid (a bad filter, role or property change):
    /// nothing was published.
    Invalid(crate::Error),
    /// A cluster or member name is not a run of ASCII letters, digits, `-`
    /// and `_` (names become parts of NATS subjects and bucket keys).
    InvalidName {
        /// "cluster" or "member".
        what: &'static str,
        /// The name given.
        name: String,
    },
    /// The NATS server cannot be reached.
    Connect {
        /// The address tried.
        url: String,
        /// Why not.
        source: Box<dyn StdError + Send + Sync>,
    },
    /// Another member of this name is registered in the cluster (alive,
    /// or dead less than [`FORGET_AFTER`] ago): a member does not start.
    NameTaken {
        /// The cluster.
        cluster: String,
        /// The member name taken.
        name: String,
    },
    /// The broker refused or failed an action (JetStream off, a publish
    /// that failed, a connection lost).
    Broker {
        /// What was being done.
        action: &'static str,
        /// Why it failed.
        source: Box<dyn StdError + Send + Sync>,
    },
}

impl ClusterError {
    fn broker(action: &'static str, source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        ClusterError::Broker {
            action,
            source: source.into(),
        }
    }
}

impl fmt::Display for ClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClusterError::Invalid(e) => e.fmt(f),
            ClusterError::InvalidName { what, name } => write!(
                f,
                "invalid {what} name {name:?}: expected ASCII letters, digits, '-' and '_'"
            ),
            ClusterError::Connect { url, source } => {
                write!(f, "cannot reach the NATS server at {url}: {source}")
            }
            ClusterError::NameTaken { cluster, name } => write!(
                f,
                "a member named {name:?} is registered in cluster {cluster:?} already \
                 (if it died, its entry expires {} s after its last refresh)",
                FORGET_AFTER.as_secs()
            ),
            ClusterError::Broker { action, source } => write!(f, "NATS: cannot {action}: {source}"),
        }
    }
}

impl StdError for ClusterError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            ClusterError::Invalid(e) => Some(e),
            ClusterError::InvalidName { .. } | ClusterError::NameTaken { .. } => None,
            ClusterError::Connect { source, .. } | ClusterError::Broker { source, .. } => {
                Some(source.as_ref())
            }
        }
    }
}

impl From<crate::Error> for ClusterError {
    fn from(e: crate::Error) -> ClusterError {
        ClusterError::Invalid(e)
    }
}

/// Checks a cluster or member name (`what` says which, for the error): 1
/// to 64 ASCII letters, digits, `-` and `_`, since names become parts of
/// NATS subjects and bucket keys.
///
/// ```
/// use session_filter::cluster::check_name;
/// assert!(check_name("cluster", "prod-eu_1").is_ok());
/// assert!(check_name("member", "a.b").is_err());
/// ```
pub fn check_name(what: &'static str, name: &str) -> Result<(), ClusterError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ClusterError::InvalidName {
            what,
            name: name.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_subjects_and_buckets() {
        for good in ["a", "prod-eu_1", "X9"] {
            assert!(check_name("cluster", good).is_ok(), "{good}");
        }
        for bad in ["", "a.b", "a b", "*", ">", "é", &"x".repeat(65)] {
            assert!(check_name("cluster", bad).is_err(), "{bad}");
        }
        assert_eq!(request_subject("c1"), "session-filter.c1.request");
        assert_eq!(membership_bucket("c1"), "session-filter-c1");
    }
}
