//! Roles strings: the string form of the `$Roles` set (SPEC section 4).

use std::fmt;

use ahash::AHashSet;

use super::escape::{escape_into, read_escaped, QuoteError};

/// Parses a roles string into its set of roles, in first-seen order.
///
/// Scanning left to right, every character outside quotes is ignored, so
/// commas, spaces and brackets are all fine. A `"` or `'` opens a role that
/// only the same quote closes; inside it `\` makes the next character
/// literal. An unterminated role is an error. Duplicates collapse; `""` is the
/// set holding one empty role and the empty string is the empty set.
///
/// ```
/// use session_filter::string_to_roles;
/// assert_eq!(string_to_roles(r#"["admin", 'client',"admin"]"#).unwrap(), ["admin", "client"]);
/// assert_eq!(string_to_roles("").unwrap(), Vec::<String>::new());
/// assert_eq!(string_to_roles(r#""""#).unwrap(), [""]);
/// assert!(string_to_roles(r#""admin"#).is_err());
/// ```
pub fn string_to_roles(s: &str) -> Result<Vec<String>, RolesError> {
    scan_roles(s, false)
}

/// Parses a roles string as a filter reads a `$Roles` value: like
/// [`string_to_roles`], but outside the quotes only whitespace, commas and
/// `[` `]` may appear.
pub(crate) fn string_to_roles_strict(s: &str) -> Result<Vec<String>, RolesError> {
    scan_roles(s, true)
}

/// Writes roles as a roles string: each role escaped and wrapped in `"`,
/// joined by `,` with no spaces, in the order given, each role once. No roles
/// give the empty string.
///
/// ```
/// use session_filter::{roles_to_string, string_to_roles};
/// let s = roles_to_string(["admin", "client", "admin"]);
/// assert_eq!(s, r#""admin","client""#);
/// assert_eq!(string_to_roles(&s).unwrap(), ["admin", "client"]);
/// assert_eq!(roles_to_string(Vec::<String>::new()), "");
/// ```
pub fn roles_to_string<I, S>(roles: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut seen = AHashSet::new();
    let mut out = String::new();
    for role in roles {
        let role = role.as_ref();
        if !seen.insert(role.to_owned()) {
            continue;
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push('"');
        escape_into(role, &mut out);
        out.push('"');
    }
    out
}

/// A roles string that could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolesError {
    /// Byte offset in the roles string of the problem: the opening quote of an
    /// unterminated role, or the unexpected character.
    pub offset: usize,
    /// What the problem is.
    pub kind: RolesErrorKind,
}

/// What is wrong with a roles string.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RolesErrorKind {
    /// The role opened by this quote is never closed.
    Unterminated {
        /// The opening quote.
        quote: char,
    },
    /// The role opened at `offset` ends in a `\` that escapes nothing.
    TrailingBackslash,
    /// A character other than whitespace, `,`, `[` or `]` outside the quotes
    /// of a roles string in a filter.
    Unexpected {
        /// The character.
        found: char,
    },
}

impl fmt::Display for RolesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            RolesErrorKind::Unterminated { quote } => write!(
                f,
                "an unterminated role: the {quote} at byte {} of the roles string is never closed",
                self.offset
            ),
            RolesErrorKind::TrailingBackslash => write!(
                f,
                "an unterminated role: the role opened at byte {} of the roles string ends in a lone `\\`",
                self.offset
            ),
            RolesErrorKind::Unexpected { found } => write!(
                f,
                "`{}` outside quotes at byte {} of the roles string \
                 (only whitespace, `,`, `[` and `]` may be there)",
                found.escape_debug(),
                self.offset
            ),
        }
    }
}

impl std::error::Error for RolesError {}

fn scan_roles(s: &str, strict: bool) -> Result<Vec<String>, RolesError> {
    let mut roles: Vec<String> = Vec::new();
    let mut seen: AHashSet<String> = AHashSet::new();
    let mut pos = 0;
    while let Some(c) = s[pos..].chars().next() {
        match c {
            '"' | '\'' => {
                let (role, used) =
                    read_escaped(&s[pos + 1..], Some(c)).map_err(|e| RolesError {
                        offset: pos,
                        kind: match e {
                            QuoteError::Unterminated => RolesErrorKind::Unterminated { quote: c },
                            QuoteError::TrailingBackslash { .. } => {
                                RolesErrorKind::TrailingBackslash
                            }
                        },
                    })?;
                pos += 1 + used;
                // Small sets stay a plain scan; the hash set guards against
                // quadratic work on hostile strings with many roles.
                let fresh = if roles.len() < 16 {
                    !roles.contains(&role)
                } else {
                    if seen.is_empty() {
                        seen.extend(roles.iter().cloned());
                    }
                    seen.insert(role.clone())
                };
                if fresh {
                    roles.push(role);
                }
            }
            ' ' | '\t' | '\r' | '\n' | ',' | '[' | ']' => pos += 1,
            _ if strict => {
                return Err(RolesError {
                    offset: pos,
                    kind: RolesErrorKind::Unexpected { found: c },
                })
            }
            _ => pos += c.len_utf8(),
        }
    }
    Ok(roles)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_reading_rejects_text_outside_quotes() {
        assert_eq!(
            string_to_roles_strict("admin").unwrap_err(),
            RolesError {
                offset: 0,
                kind: RolesErrorKind::Unexpected { found: 'a' }
            }
        );
        assert_eq!(
            string_to_roles_strict(r#""admin" x"#).unwrap_err().offset,
            8
        );
        assert_eq!(
            string_to_roles_strict("[ \"a\",\t'b' ]\n").unwrap(),
            ["a", "b"]
        );
        assert_eq!(string_to_roles_strict("").unwrap(), Vec::<String>::new());
        // The lenient reading ignores the same text.
        assert_eq!(string_to_roles("admin").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn errors_point_at_the_opening_quote() {
        let e = string_to_roles(r#""a", "b\"#).unwrap_err();
        assert_eq!(e.offset, 5);
        assert_eq!(e.kind, RolesErrorKind::TrailingBackslash);
        let e = string_to_roles("'a' 'b").unwrap_err();
        assert_eq!(e.kind, RolesErrorKind::Unterminated { quote: '\'' });
        assert_eq!(e.offset, 4);
    }

    #[test]
    fn many_duplicates_collapse_in_first_seen_order() {
        let s: String = (0..5000).map(|i| format!("\"r{}\",", i % 100)).collect();
        let roles = string_to_roles(&s).unwrap();
        assert_eq!(roles.len(), 100);
        assert_eq!(roles[0], "r0");
        assert_eq!(roles[99], "r99");
    }
}
