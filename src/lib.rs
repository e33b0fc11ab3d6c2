//! Parse, compile and evaluate session filters.
//!
//! A server holding many client sessions selects them in bulk with filters
//! such as `$Country in ['UK','DE'] and hasRoles ['trader']`. This crate
//! parses the filter language, compiles a filter once
//! into a small [`Program`], and evaluates it against interned
//! [`Session`]s, one at a time or millions at once.
//!
//! # Example
//!
//! ```
//! use session_filter::{Filter, Program, Session, string_to_roles, roles_to_string};
//!
//! // Parse and print the canonical form.
//! let filter = Filter::parse("$Country in ['UK','DE'] and hasRoles ['trader']")?;
//! assert_eq!(filter.to_string(), r#"$Country in ["UK", "DE"] and hasRoles ["trader"]"#);
//!
//! // Compile once, evaluate many times.
//! let program = Program::new(&filter)?;
//! let sessions = vec![
//!     Session::new([("$SessionId", "s1"), ("$Country", "UK"), ("$Roles", r#""trader""#)])?,
//!     Session::new([("$SessionId", "s2"), ("$Country", "DE")])?,
//! ];
//! assert!(program.matches(&sessions[0]));
//! assert_eq!(program.count(&sessions), 1);
//! assert_eq!(program.select(&sessions), [0]);
//!
//! // Errors name the position and the problem.
//! let err = Program::compile("Department is 'Accounts").unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "invalid filter: 1:15: expected a closing ' for the value that starts here, found end of input"
//! );
//!
//! // Utilities.
//! assert_eq!(string_to_roles(r#""a","b""#)?, ["a", "b"]);
//! assert_eq!(roles_to_string(["a", "b"]), r#""a","b""#);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Input safety
//!
//! Filters may come from clients that are not trusted. Parsing is bounded by
//! [`Limits`] (length, nesting depth, list size), never panics and never
//! recurses deeper than the depth limit allows; every later pass walks the
//! tree with a heap stack. Sessions and compiled programs hold their strings
//! in a process-wide reference-counted interner, so compiling and dropping
//! any number of filters, or churning sessions, leaves no memory behind
//! ([`interned_count`] shows it).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "cluster")]
pub mod cluster;
mod compile;
#[doc(hidden)]
pub mod demo;
mod error;
mod intern;
pub mod properties;
#[doc(hidden)]
pub mod reference;
#[cfg(feature = "serde")]
mod serde;
mod session;
pub mod standing;
mod store;
pub mod syntax;
mod util;
mod vm;

pub use error::Error;
pub use intern::{interned_count, interner_memory, CapacityError, Interned, InternerMemory};
pub use session::{PropertyKey, PropertyValue, Session};
pub use standing::FilterSet;
pub use store::{
    ClosedSession, DataLimit, DataLimits, Execution, FetchPage, FetchRequest, FetchedSession,
    PropertyChange, PropertyMap, SessionStore, StoreMemory, StoreOptions, Watch, WatchEvent,
    WatchOptions,
};
pub use syntax::{Error as FilterError, ErrorKind as FilterErrorKind, Filter, Limits};
pub use util::escape::{escape, escape_into, unescape, UnescapeError};
pub use util::properties::{validate_user_key, KeyError, KeyErrorKind};
pub use util::roles::{roles_to_string, string_to_roles, RolesError, RolesErrorKind};
pub use vm::{Cache, Program};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
