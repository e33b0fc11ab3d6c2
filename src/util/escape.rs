//! The escape rules of quoted values: the one place they live.
//!
//! Inside a quoted value `\` makes the next character literal and is dropped
//! (`\"`, `\'` and `\\` are the documented escapes; `\x` is `x`). The filter
//! parser, the canonical printer and the roles utilities all use these
//! functions.

use std::fmt;

/// Puts `\` before every `\`, `"` and `'`; nothing else changes.
///
/// Quoting the result in either kind of quote gives a value that reads back
/// as `s`.
///
/// ```
/// use session_filter::escape;
/// assert_eq!(escape(r#"xyz"\"#), r#"xyz\"\\"#);
/// assert_eq!(escape("it's"), r"it\'s");
/// ```
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    escape_into(s, &mut out);
    out
}

/// Appends [`escape`]`(s)` to `out`.
pub fn escape_into(s: &str, out: &mut String) {
    let mut rest = s;
    while let Some(i) = rest.find(['\\', '"', '\'']) {
        out.push_str(&rest[..i]);
        out.push('\\');
        out.push_str(&rest[i..i + 1]);
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
}

/// Removes escapes: every `\` is dropped and the character after it kept.
///
/// This reads the text between the quotes of a value; it does not look for
/// quotes. A `\` at the very end escapes nothing and is an error.
///
/// ```
/// use session_filter::{escape, unescape};
/// assert_eq!(unescape(r#"xyz\"\\"#).unwrap(), r#"xyz"\"#);
/// assert_eq!(unescape(r"\x").unwrap(), "x");
/// assert!(unescape(r"abc\").is_err());
/// let s = "any 'thing' \"at\" all \\";
/// assert_eq!(unescape(&escape(s)).unwrap(), s);
/// ```
pub fn unescape(s: &str) -> Result<String, UnescapeError> {
    match read_escaped(s, None) {
        Ok((text, _)) => Ok(text),
        Err(QuoteError::TrailingBackslash { offset }) => Err(UnescapeError { offset }),
        // Without a closing quote to look for, only the backslash can fail.
        Err(QuoteError::Unterminated) => Err(UnescapeError { offset: s.len() }),
    }
}

/// [`unescape`] found a `\` with nothing after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnescapeError {
    /// Byte offset of the lone backslash.
    pub offset: usize,
}

impl fmt::Display for UnescapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "expected a character after `\\` at byte {}, found end of input",
            self.offset
        )
    }
}

impl std::error::Error for UnescapeError {}

/// Why [`read_escaped`] stopped short.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum QuoteError {
    /// The closing quote never came.
    Unterminated,
    /// The text ended right after a `\` (at this byte offset).
    TrailingBackslash { offset: usize },
}

/// Reads escaped text from the start of `s` up to the unescaped `close`
/// quote (or to the end of `s` when `close` is `None`).
///
/// Returns the unescaped text and the byte length consumed, the closing quote
/// included.
pub(crate) fn read_escaped(s: &str, close: Option<char>) -> Result<(String, usize), QuoteError> {
    let mut out = String::new();
    let mut rest = s;
    let mut consumed = 0;
    loop {
        let stop = match close {
            Some(q) => rest.find(['\\', q]),
            None => rest.find('\\'),
        };
        let Some(i) = stop else {
            return match close {
                Some(_) => Err(QuoteError::Unterminated),
                None => {
                    out.push_str(rest);
                    Ok((out, s.len()))
                }
            };
        };
        out.push_str(&rest[..i]);
        if rest.as_bytes()[i] == b'\\' {
            let mut after = rest[i + 1..].chars();
            let Some(c) = after.next() else {
                return Err(QuoteError::TrailingBackslash {
                    offset: consumed + i,
                });
            };
            out.push(c);
            let used = i + 1 + c.len_utf8();
            consumed += used;
            rest = &rest[used..];
        } else {
            return Ok((out, consumed + i + 1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_escaped_stops_at_the_closing_quote() {
        assert_eq!(
            read_escaped(r#"ab\"c" rest"#, Some('"')),
            Ok((r#"ab"c"#.into(), 6))
        );
        assert_eq!(
            read_escaped(r#"it"s'"#, Some('\'')),
            Ok((r#"it"s"#.into(), 5))
        );
        assert_eq!(read_escaped("é\\€'", Some('\'')), Ok(("é€".into(), 7)));
        assert_eq!(
            read_escaped("abc", Some('"')),
            Err(QuoteError::Unterminated)
        );
        assert_eq!(
            read_escaped("ab\\", Some('"')),
            Err(QuoteError::TrailingBackslash { offset: 2 })
        );
    }

    #[test]
    fn unescape_reports_the_lone_backslash() {
        assert_eq!(unescape("a\\\\b\\"), Err(UnescapeError { offset: 4 }));
        assert_eq!(unescape(""), Ok(String::new()));
    }
}
