//! Property keys: the fixed properties a server assigns, and the rules for
//! user property keys (SPEC section 1).

use std::fmt;

/// `$ClientIP`: the client's address.
pub const CLIENT_IP: &str = "$ClientIP";
/// `$ClientType`: the kind of client library (`JAVA`, `PYTHON`, …).
pub const CLIENT_TYPE: &str = "$ClientType";
/// `$Connector`: the connector the session came in through.
pub const CONNECTOR: &str = "$Connector";
/// `$Country`: the client's country code (may be empty).
pub const COUNTRY: &str = "$Country";
/// `$GatewayType`: the gateway type, for gateway sessions.
pub const GATEWAY_TYPE: &str = "$GatewayType";
/// `$GatewayId`: the gateway id, for gateway sessions.
pub const GATEWAY_ID: &str = "$GatewayId";
/// `$Language`: the client's language code (may be empty).
pub const LANGUAGE: &str = "$Language";
/// `$Latitude`: the client's latitude, as a string (may be `"NaN"`).
pub const LATITUDE: &str = "$Latitude";
/// `$Longitude`: the client's longitude, as a string (may be `"NaN"`).
pub const LONGITUDE: &str = "$Longitude";
/// `$MQTTClientId`: the MQTT client id, for MQTT sessions.
pub const MQTT_CLIENT_ID: &str = "$MQTTClientId";
/// `$Principal`: the authenticated principal (empty when anonymous).
pub const PRINCIPAL: &str = "$Principal";
/// `$Roles`: the session's roles, as a roles string.
pub const ROLES: &str = "$Roles";
/// `$ServerName`: the name of the server holding the session.
pub const SERVER_NAME: &str = "$ServerName";
/// `$SessionId`: the session's unique id.
pub const SESSION_ID: &str = "$SessionId";
/// `$StartTime`: when the session started, in milliseconds since the epoch.
pub const START_TIME: &str = "$StartTime";
/// `$Transport`: the transport (`WEBSOCKET`, `TCP`, …).
pub const TRANSPORT: &str = "$Transport";

/// Every known fixed property, in the order SPEC section 1 lists them.
///
/// Filters may mention other `$` keys too (`$Version`); a key the server
/// does not set is simply absent.
pub const FIXED_PROPERTIES: [&str; 16] = [
    CLIENT_IP,
    CLIENT_TYPE,
    CONNECTOR,
    COUNTRY,
    GATEWAY_TYPE,
    GATEWAY_ID,
    LANGUAGE,
    LATITUDE,
    LONGITUDE,
    MQTT_CLIENT_ID,
    PRINCIPAL,
    ROLES,
    SERVER_NAME,
    SESSION_ID,
    START_TIME,
    TRANSPORT,
];

/// True for the keys of [`FIXED_PROPERTIES`].
pub fn is_fixed_property(key: &str) -> bool {
    FIXED_PROPERTIES.contains(&key)
}

/// The characters no key may contain, in a filter or in a session: the
/// grammar's `key` rule spells the same set (a test checks it), and the AST,
/// the parser's error messages and [`validate_user_key`] use this one.
pub(crate) const KEY_FORBIDDEN: [char; 8] = [' ', '\t', '\r', '\n', '"', '\'', '(', ')'];

/// True when `c` may not appear in a key.
#[inline]
pub(crate) fn is_key_forbidden(c: char) -> bool {
    KEY_FORBIDDEN.contains(&c)
}

/// Checks a user property key: non-empty, not starting with `$`, and free of
/// space, tab, CR, LF, `"`, `'`, `(` and `)`.
///
/// ```
/// use session_filter::{validate_user_key, KeyErrorKind};
/// assert!(validate_user_key("Department").is_ok());
/// assert!(validate_user_key("weird[key]").is_ok());
/// let err = validate_user_key("two words").unwrap_err();
/// assert_eq!(err.kind, KeyErrorKind::Forbidden { found: ' ', index: 3 });
/// assert_eq!(
///     err.to_string(),
///     "invalid user property key \"two words\": character ' ' at index 3 is not allowed"
/// );
/// assert!(validate_user_key("$Principal").is_err());
/// assert!(validate_user_key("").is_err());
/// ```
pub fn validate_user_key(key: &str) -> Result<(), KeyError> {
    let fail = |kind| {
        Err(KeyError {
            key: key.to_owned(),
            kind,
        })
    };
    if key.is_empty() {
        return fail(KeyErrorKind::Empty);
    }
    for (index, c) in key.chars().enumerate() {
        if index == 0 && c == '$' || is_key_forbidden(c) {
            return fail(KeyErrorKind::Forbidden { found: c, index });
        }
    }
    Ok(())
}

/// An invalid user property key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyError {
    /// The key that was rejected.
    pub key: String,
    /// Why.
    pub kind: KeyErrorKind,
}

/// Why a user property key was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyErrorKind {
    /// The key is empty.
    Empty,
    /// The key holds a character it may not: a leading `$`, whitespace, a
    /// quote or a parenthesis.
    Forbidden {
        /// The first offending character.
        found: char,
        /// Its index in the key, counted in characters (Unicode scalar values).
        index: usize,
    },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            KeyErrorKind::Empty => write!(f, "invalid user property key: the key is empty"),
            KeyErrorKind::Forbidden {
                found: '$',
                index: 0,
            } => write!(
                f,
                "invalid user property key {:?}: character '$' at index 0 is not allowed \
                 (keys starting with `$` are fixed properties)",
                self.key
            ),
            KeyErrorKind::Forbidden { found, index } => write!(
                f,
                "invalid user property key {:?}: character {:?} at index {index} is not allowed",
                self.key, found
            ),
        }
    }
}

impl std::error::Error for KeyError {}

#[cfg(test)]
mod tests {
    use super::*;

    /// The grammar's `key` rule cannot name the Rust table, so this checks
    /// that it forbids exactly the table's characters: a key clause on
    /// `a{c}b` reads that key for every other character.
    #[test]
    fn the_grammar_forbids_exactly_the_key_table() {
        use crate::syntax::{Expr, Filter};
        let chars = (0u32..0x80)
            .chain([0xa0, 0xe9, 0x2028, 0x1f600])
            .filter_map(char::from_u32);
        for c in chars {
            let key = format!("a{c}b");
            let parsed = Filter::parse(&format!("{key} is 'x'"));
            let read_whole = matches!(
                parsed.as_ref().map(|f| f.expr()),
                Ok(Expr::Is { key: k, .. }) if k.name == key
            );
            assert_eq!(read_whole, !is_key_forbidden(c), "{c:?}: {parsed:?}");
            assert_eq!(
                validate_user_key(&key).is_ok(),
                !is_key_forbidden(c),
                "{c:?}"
            );
        }
    }

    #[test]
    fn fixed_properties_are_distinct_dollar_keys() {
        for (i, k) in FIXED_PROPERTIES.iter().enumerate() {
            assert!(k.starts_with('$'));
            assert!(!FIXED_PROPERTIES[..i].contains(k), "{k} twice");
            assert!(validate_user_key(k).is_err());
        }
        assert!(is_fixed_property(ROLES));
        assert!(!is_fixed_property("$Version"));
    }

    #[test]
    fn names_the_first_offending_character() {
        for (key, found, index) in [
            ("a b", ' ', 1),
            ("a\tb", '\t', 1),
            ("ab\r", '\r', 2),
            ("\n", '\n', 0),
            ("é\"", '"', 1),
            ("x'y(z", '\'', 1),
            ("f(x)", '(', 1),
            ("x)", ')', 1),
            ("$x", '$', 0),
        ] {
            assert_eq!(
                validate_user_key(key).unwrap_err().kind,
                KeyErrorKind::Forbidden { found, index },
                "{key:?}"
            );
        }
        assert!(validate_user_key("a$b").is_ok());
        assert!(validate_user_key("東京").is_ok());
        assert_eq!(validate_user_key("").unwrap_err().kind, KeyErrorKind::Empty);
    }
}
