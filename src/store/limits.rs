//! Bounds on the data a store accepts: roles and properties per session and
//! per change, key and value lengths, keys per fetch.
//!
//! Filters are bounded by [`Limits`](crate::Limits); these bound what
//! clients can make a store hold or do in one call. Every check runs before
//! anything changes, so exceeding a limit is an [`Error::LimitExceeded`]
//! that names it and changes nothing.

use std::fmt;

use crate::error::Error;
use crate::session::Session;
use crate::util::properties::ROLES;

/// One of the [`DataLimits`], as an error names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DataLimit {
    /// Roles one session may have.
    RolesPerSession,
    /// Roles one role change may name (to remove and to add together).
    RolesPerChange,
    /// Properties one session may have (`$SessionId` and `$Roles` count).
    PropertiesPerSession,
    /// Keys one property change may name.
    PropertiesPerChange,
    /// Bytes of a property key.
    KeyLength,
    /// Bytes of a property value or a role.
    ValueLength,
    /// Keys one fetch may ask for.
    KeysPerFetch,
}

impl fmt::Display for DataLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DataLimit::RolesPerSession => "roles per session",
            DataLimit::RolesPerChange => "roles per change",
            DataLimit::PropertiesPerSession => "properties per session",
            DataLimit::PropertiesPerChange => "properties per change",
            DataLimit::KeyLength => "bytes per key",
            DataLimit::ValueLength => "bytes per value",
            DataLimit::KeysPerFetch => "keys per fetch",
        })
    }
}

/// Bounds on the data a [`SessionStore`](crate::SessionStore) accepts, set
/// with [`StoreOptions::data_limits`](crate::StoreOptions::data_limits).
///
/// The defaults are generous for a real server and still bound what one
/// client can do: 256 roles per session and per change, 1 024 properties
/// per session and per change, keys of 1 KiB, values (and roles) of
/// 64 KiB, 1 024 keys per fetch.
///
/// ```
/// use session_filter::{DataLimit, DataLimits, Error, SessionStore, StoreOptions};
///
/// let store = SessionStore::with_options(
///     StoreOptions::new().data_limits(DataLimits::new().with_value_len(8)),
/// );
/// let err = store.insert([("$SessionId", "a"), ("Note", "far too long")]).unwrap_err();
/// assert!(matches!(err, Error::LimitExceeded { limit: DataLimit::ValueLength, max: 8, .. }));
/// assert!(store.is_empty());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataLimits {
    roles_per_session: usize,
    roles_per_change: usize,
    properties_per_session: usize,
    properties_per_change: usize,
    key_len: usize,
    value_len: usize,
    keys_per_fetch: usize,
}

impl Default for DataLimits {
    fn default() -> DataLimits {
        DataLimits {
            roles_per_session: 256,
            roles_per_change: 256,
            properties_per_session: 1024,
            properties_per_change: 1024,
            key_len: 1024,
            value_len: 64 * 1024,
            keys_per_fetch: 1024,
        }
    }
}

impl DataLimits {
    /// The defaults (see [`DataLimits`]).
    pub fn new() -> DataLimits {
        DataLimits::default()
    }

    /// No bound at all on anything: for trusted input only.
    pub fn unlimited() -> DataLimits {
        DataLimits {
            roles_per_session: usize::MAX,
            roles_per_change: usize::MAX,
            properties_per_session: usize::MAX,
            properties_per_change: usize::MAX,
            key_len: usize::MAX,
            value_len: usize::MAX,
            keys_per_fetch: usize::MAX,
        }
    }

    /// The most roles one session may have.
    pub fn with_roles_per_session(mut self, n: usize) -> DataLimits {
        self.roles_per_session = n;
        self
    }

    /// The most roles one role change may name, to remove and to add.
    pub fn with_roles_per_change(mut self, n: usize) -> DataLimits {
        self.roles_per_change = n;
        self
    }

    /// The most properties one session may have.
    pub fn with_properties_per_session(mut self, n: usize) -> DataLimits {
        self.properties_per_session = n;
        self
    }

    /// The most keys one property change may name.
    pub fn with_properties_per_change(mut self, n: usize) -> DataLimits {
        self.properties_per_change = n;
        self
    }

    /// The longest key, in bytes.
    pub fn with_key_len(mut self, bytes: usize) -> DataLimits {
        self.key_len = bytes;
        self
    }

    /// The longest value or role, in bytes.
    pub fn with_value_len(mut self, bytes: usize) -> DataLimits {
        self.value_len = bytes;
        self
    }

    /// The most keys one fetch may ask for.
    pub fn with_keys_per_fetch(mut self, n: usize) -> DataLimits {
        self.keys_per_fetch = n;
        self
    }

    /// The value of one limit.
    pub fn get(&self, limit: DataLimit) -> usize {
        match limit {
            DataLimit::RolesPerSession => self.roles_per_session,
            DataLimit::RolesPerChange => self.roles_per_change,
            DataLimit::PropertiesPerSession => self.properties_per_session,
            DataLimit::PropertiesPerChange => self.properties_per_change,
            DataLimit::KeyLength => self.key_len,
            DataLimit::ValueLength => self.value_len,
            DataLimit::KeysPerFetch => self.keys_per_fetch,
        }
    }

    /// An error unless `actual` is within `limit`.
    pub(crate) fn check(&self, limit: DataLimit, actual: usize) -> Result<(), Error> {
        let max = self.get(limit);
        if actual > max {
            return Err(Error::LimitExceeded { limit, max, actual });
        }
        Ok(())
    }

    /// Checks one key and its value (a roles string for `$Roles`, whose
    /// roles are checked once parsed).
    pub(crate) fn check_pair(&self, key: &str, value: &str) -> Result<(), Error> {
        self.check(DataLimit::KeyLength, key.len())?;
        if key == ROLES {
            return Ok(());
        }
        self.check(DataLimit::ValueLength, value.len())
    }

    /// Checks a session's numbers of properties and roles.
    pub(crate) fn check_session_size(&self, session: &Session) -> Result<(), Error> {
        self.check(DataLimit::PropertiesPerSession, session.property_count())?;
        self.check(DataLimit::RolesPerSession, session.role_count())
    }

    /// Checks everything of a session built elsewhere: its sizes, and each
    /// key, value and role.
    pub(crate) fn check_session(&self, session: &Session) -> Result<(), Error> {
        self.check_session_size(session)?;
        for (key, value) in session.properties() {
            self.check(DataLimit::KeyLength, key.len())?;
            if key != ROLES {
                self.check(DataLimit::ValueLength, value.len())?;
            }
        }
        for role in session.roles() {
            self.check(DataLimit::ValueLength, role.len())?;
        }
        Ok(())
    }
}
