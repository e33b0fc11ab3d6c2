//! Parse, compile and evaluate session filters.
//!
//! # Example
//!
//! ```
//! use session_filter::{Filter, string_to_roles, roles_to_string};
//!
//! let filter = Filter::parse("$Country in ['UK','DE'] and hasRoles ['trader']")?;
//! assert_eq!(filter.to_string(), r#"$Country in ["UK", "DE"] and hasRoles ["trader"]"#);
//!
//! let err = Filter::parse("Department is 'Accounts").unwrap_err();
//! assert_eq!(err.to_string(), "1:15: expected a closing ' for the value that starts here, found end of input");
//!
//! assert_eq!(string_to_roles(r#""a","b""#).unwrap(), ["a", "b"]);
//! assert_eq!(roles_to_string(["a", "b"]), r#""a","b""#);
//! # Ok::<(), session_filter::FilterError>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod syntax;
mod util;

pub use syntax::{Error as FilterError, ErrorKind as FilterErrorKind, Filter, Limits};
pub use util::escape::{escape, escape_into, unescape, UnescapeError};
pub use util::properties::*;
pub use util::roles::{roles_to_string, string_to_roles, RolesError, RolesErrorKind};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
