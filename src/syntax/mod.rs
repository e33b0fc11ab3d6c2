//! The language front end: grammar, AST, parser, canonical printer, errors.

mod ast;
mod error;
mod expect;
mod parser;
mod print;
mod scan;

use std::fmt;
use std::str::FromStr;

pub use ast::{is_filter_key, Expr, Key, Pattern, Span, Value};
pub use error::{Error, ErrorKind};

/// What the pest grammar, run as an oracle by the tests and fuzz targets,
/// needs to report errors in the words the parser uses. Not a stable API.
#[doc(hidden)]
pub mod oracle {
    pub use super::expect::{describe_expected, describe_found, unterminated_value_at, Expected};
    pub use super::parser::{matches_pattern, roles_value_error};
    pub use super::scan::check_depth;
}

/// Limits on the filters [`Filter::parse_with`] accepts.
///
/// A server parsing filters from clients it does not trust keeps these
/// bounds on the work and memory one filter may take. Exceeding a limit is an
/// ordinary [`Error`] that names the limit.
///
/// ```
/// use session_filter::{Filter, FilterErrorKind, Limits};
///
/// let strict = Limits::new().with_max_depth(2);
/// assert!(Filter::parse_with("not (a is 'x')", &strict).is_ok());
/// let err = Filter::parse_with("not not (a is 'x')", &strict).unwrap_err();
/// assert_eq!(err.kind(), &FilterErrorKind::TooDeep { max: 2 });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Limits {
    max_len: usize,
    max_depth: usize,
    max_items: usize,
    max_regex_size: usize,
}

impl Limits {
    /// Default [`max_len`](Limits::max_len): 64 KiB.
    pub const DEFAULT_MAX_LEN: usize = 64 * 1024;
    /// Default [`max_depth`](Limits::max_depth): 256.
    pub const DEFAULT_MAX_DEPTH: usize = 256;
    /// Default [`max_items`](Limits::max_items): 10 000.
    pub const DEFAULT_MAX_ITEMS: usize = 10_000;
    /// Default [`max_regex_size`](Limits::max_regex_size): 256 KiB.
    pub const DEFAULT_MAX_REGEX_SIZE: usize = 256 * 1024;
    /// The hard ceiling on [`max_depth`](Limits::max_depth): a filter nested
    /// this deep still parses on a 2 MiB thread in a debug build.
    pub const MAX_DEPTH_CEILING: usize = 512;

    /// The default limits: 64 KiB of text, depth 256, 10 000 items per
    /// list, 256 KiB per compiled regular expression.
    pub const fn new() -> Limits {
        Limits {
            max_len: Self::DEFAULT_MAX_LEN,
            max_depth: Self::DEFAULT_MAX_DEPTH,
            max_items: Self::DEFAULT_MAX_ITEMS,
            max_regex_size: Self::DEFAULT_MAX_REGEX_SIZE,
        }
    }

    /// The largest compiled size of the regular expression of one
    /// `matches` clause, in bytes, as `regex::RegexBuilder::size_limit`
    /// measures it.
    pub const fn max_regex_size(&self) -> usize {
        self.max_regex_size
    }

    /// Sets [`max_regex_size`](Limits::max_regex_size), in bytes.
    ///
    /// ```
    /// use session_filter::{Filter, FilterErrorKind, Limits};
    ///
    /// let f = r"Name matches '\\w{30}'";
    /// assert!(Filter::parse_with(f, &Limits::new().with_max_regex_size(1 << 24)).is_ok());
    /// let err = Filter::parse(f).unwrap_err();
    /// assert!(matches!(err.kind(), FilterErrorKind::InvalidRegex { .. }));
    /// assert_eq!(err.column(), 14);
    /// ```
    pub const fn with_max_regex_size(mut self, bytes: usize) -> Limits {
        self.max_regex_size = bytes;
        self
    }

    /// The longest filter text accepted, in bytes.
    pub const fn max_len(&self) -> usize {
        self.max_len
    }

    /// The deepest nesting accepted: the number of `(` and `not` on the path
    /// from the top of the filter to any clause. The limit itself is allowed.
    pub const fn max_depth(&self) -> usize {
        self.max_depth
    }

    /// The most values accepted in one `in` or `hasRoles` list.
    pub const fn max_items(&self) -> usize {
        self.max_items
    }

    /// Sets [`max_len`](Limits::max_len), in bytes (at most `u32::MAX`, as
    /// spans are 32-bit).
    pub const fn with_max_len(mut self, bytes: usize) -> Limits {
        self.max_len = if bytes > u32::MAX as usize {
            u32::MAX as usize
        } else {
            bytes
        };
        self
    }

    /// Sets [`max_depth`](Limits::max_depth). A value above
    /// [`MAX_DEPTH_CEILING`](Limits::MAX_DEPTH_CEILING) is lowered to it:
    /// deeper nesting would risk the parser's stack.
    pub const fn with_max_depth(mut self, depth: usize) -> Limits {
        self.max_depth = if depth > Self::MAX_DEPTH_CEILING {
            Self::MAX_DEPTH_CEILING
        } else {
            depth
        };
        self
    }

    /// Sets [`max_items`](Limits::max_items).
    pub const fn with_max_items(mut self, items: usize) -> Limits {
        self.max_items = items;
        self
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::new()
    }
}

/// A parsed filter: a normalised [`Expr`] tree.
///
/// `Display` prints the canonical form, which parses back to an equal
/// filter. Equality ignores source spans.
///
/// ```
/// use session_filter::Filter;
///
/// let f: Filter = "$Country IN ['UK','DE'] And NOT (Tier eq 'gold')".parse()?;
/// assert_eq!(f.to_string(), r#"$Country in ["UK", "DE"] and not Tier is "gold""#);
/// assert_eq!(f, Filter::parse(&f.to_string())?);
/// # Ok::<(), session_filter::FilterError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    expr: Expr,
}

impl Filter {
    /// Parses a filter with the default [`Limits`].
    pub fn parse(input: &str) -> Result<Filter, Error> {
        Filter::parse_with(input, &Limits::default())
    }

    /// Parses a filter within `limits`.
    pub fn parse_with(input: &str, limits: &Limits) -> Result<Filter, Error> {
        parser::parse(input, limits).map(|expr| Filter { expr })
    }

    /// The expression tree.
    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    /// The expression tree, by value.
    pub fn into_expr(self) -> Expr {
        self.expr
    }
}

impl From<Expr> for Filter {
    fn from(expr: Expr) -> Filter {
        Filter { expr }
    }
}

impl FromStr for Filter {
    type Err = Error;

    fn from_str(s: &str) -> Result<Filter, Error> {
        Filter::parse(s)
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.expr.fmt(f)
    }
}
