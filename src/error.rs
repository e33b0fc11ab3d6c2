//! The crate's error type.

use std::fmt;

use crate::intern::CapacityError;
use crate::store::DataLimit;
use crate::syntax::Error as FilterError;
use crate::util::properties::KeyError;
use crate::util::roles::RolesError;

/// Everything that can go wrong outside the parser's own errors: building
/// sessions, compiling filters, and store operations.
///
/// A bad filter arrives as [`Error::Filter`], carrying the positioned
/// [`FilterError`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The filter text is invalid: position, message and caret rendering inside.
    Filter(FilterError),
    /// A user property key is invalid.
    InvalidKey(KeyError),
    /// A `$Roles` value is not a roles string.
    InvalidRoles(RolesError),
    /// The same property key was given twice for one session.
    DuplicateKey(String),
    /// A session given to a store has no `$SessionId`.
    MissingSessionId,
    /// A store already holds a session with this `$SessionId`.
    DuplicateSession(String),
    /// A store holds no session with this `$SessionId`.
    UnknownSession(String),
    /// Only user properties may be set or removed this way; this key is fixed.
    NotUserKey(String),
    /// A property change sets a fixed property that cannot be set: of the
    /// fixed properties only `$Country`, `$Language`, `$Latitude` and
    /// `$Longitude` can (SPEC section 6.1).
    NotSettable(String),
    /// A property change removes a fixed property; none can be removed.
    NotRemovable(String),
    /// The string interner has no room left.
    Capacity(CapacityError),
    /// The filter compiles to more instructions than a program can hold.
    ProgramTooLarge,
    /// A `matches` clause of a filter built by hand has a regular expression
    /// that does not compile (or is on `$Roles`); the parser reports the same
    /// as a positioned [`Error::Filter`].
    InvalidRegex(String),
    /// Input goes past one of the store's [`DataLimits`](crate::DataLimits);
    /// nothing was changed.
    LimitExceeded {
        /// Which limit.
        limit: DataLimit,
        /// The limit's value.
        max: usize,
        /// What the input asked for.
        actual: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Filter(e) => write!(f, "invalid filter: {e}"),
            Error::InvalidKey(e) => e.fmt(f),
            Error::InvalidRoles(e) => write!(f, "invalid $Roles value: {e}"),
            Error::DuplicateKey(k) => write!(f, "property key {k:?} is given more than once"),
            Error::MissingSessionId => write!(f, "the session has no $SessionId"),
            Error::DuplicateSession(id) => {
                write!(f, "a session with $SessionId {id:?} already exists")
            }
            Error::UnknownSession(id) => write!(f, "no session has $SessionId {id:?}"),
            Error::NotUserKey(k) => write!(
                f,
                "{k:?} is a fixed property: only user properties can be set or removed"
            ),
            Error::NotSettable(k) => write!(
                f,
                "{k:?} cannot be set: of the fixed properties only $Country, $Language, \
                 $Latitude and $Longitude can"
            ),
            Error::NotRemovable(k) => {
                write!(f, "{k:?} is a fixed property: it cannot be removed")
            }
            Error::Capacity(e) => e.fmt(f),
            Error::ProgramTooLarge => write!(f, "the filter compiles to too large a program"),
            Error::InvalidRegex(e) => write!(f, "invalid regular expression: {e}"),
            Error::LimitExceeded { limit, max, actual } => {
                write!(f, "{limit}: {actual} is over the store's limit of {max}")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Filter(e) => Some(e),
            Error::InvalidKey(e) => Some(e),
            Error::InvalidRoles(e) => Some(e),
            Error::Capacity(e) => Some(e),
            _ => None,
        }
    }
}

impl From<FilterError> for Error {
    fn from(e: FilterError) -> Error {
        Error::Filter(e)
    }
}

impl From<KeyError> for Error {
    fn from(e: KeyError) -> Error {
        Error::InvalidKey(e)
    }
}

impl From<RolesError> for Error {
    fn from(e: RolesError) -> Error {
        Error::InvalidRoles(e)
    }
}

impl From<CapacityError> for Error {
    fn from(e: CapacityError) -> Error {
        Error::Capacity(e)
    }
}
