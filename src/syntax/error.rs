//! Positioned filter errors and their caret rendering.

use std::fmt;

use super::ast::Span;
use crate::util::roles::RolesError;

/// Why a filter was rejected.
///
/// Every kind's message names what was expected and what was found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The text does not follow the grammar.
    Syntax {
        /// What the grammar allowed here, in words (`` `is`, `eq`, `ne`, `matches` or `in` ``).
        expected: String,
        /// What the text holds here, in words (`` `extra` ``, `end of input`).
        found: String,
    },
    /// A quoted value has no closing quote.
    UnterminatedValue {
        /// The quote that opened the value.
        quote: char,
    },
    /// A quoted value ends in a `\` that escapes nothing.
    TrailingBackslash,
    /// The filter is empty or only whitespace.
    Empty,
    /// The filter text is longer than [`Limits::max_len`](super::Limits::max_len).
    TooLong {
        /// Length of the text, in bytes.
        len: usize,
        /// The limit, in bytes.
        max: usize,
    },
    /// `(` and `not` nest deeper than [`Limits::max_depth`](super::Limits::max_depth).
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// A list holds more items than [`Limits::max_items`](super::Limits::max_items).
    TooManyItems {
        /// The limit.
        max: usize,
    },
    /// A `$Roles` value in an `is`, `eq`, `ne` or `in` clause is not a roles string.
    InvalidRoles {
        /// Why, and where inside the value.
        error: RolesError,
    },
    /// The regular expression of a `matches` clause does not compile, or
    /// compiles to more than
    /// [`Limits::max_regex_size`](super::Limits::max_regex_size) bytes.
    InvalidRegex {
        /// The `regex` crate's message.
        error: String,
    },
    /// `$Roles matches …`: roles are a set, not a string (use `hasRoles` or
    /// `$Roles is`).
    RolesMatches,
    /// The parse ran out of stack. The parser does not recurse, so it never
    /// reports this; the kind stays for the pest grammar, which the tests
    /// run as an oracle and which recurses once per `(`.
    StackExhausted,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Syntax { expected, found } => {
                write!(f, "expected {expected}, found {found}")
            }
            ErrorKind::UnterminatedValue { quote } => write!(
                f,
                "expected a closing {quote} for the value that starts here, found end of input"
            ),
            ErrorKind::TrailingBackslash => write!(
                f,
                "expected a character after `\\` in the value that starts here, found end of input"
            ),
            ErrorKind::Empty => write!(f, "expected a filter, found an empty filter"),
            ErrorKind::TooLong { len, max } => write!(
                f,
                "expected at most {max} bytes of filter text (the length limit), found {len} bytes"
            ),
            ErrorKind::TooDeep { max } => write!(
                f,
                "expected at most {max} levels of `(` and `not` (the nesting depth limit), \
                 found deeper nesting"
            ),
            ErrorKind::TooManyItems { max } => write!(
                f,
                "expected at most {max} items in a list (the list item limit), found more"
            ),
            ErrorKind::InvalidRoles { error } => {
                write!(f, "expected a roles string for $Roles, found {error}")
            }
            ErrorKind::InvalidRegex { error } => write!(
                f,
                "expected a regular expression that compiles, found one that does not: {error}"
            ),
            ErrorKind::RolesMatches => write!(
                f,
                "expected a property other than $Roles before `matches` (roles are a set: \
                 use `hasRoles` or `$Roles is`), found `$Roles matches`"
            ),
            ErrorKind::StackExhausted => write!(
                f,
                "expected a filter the parser can nest on this thread's stack, \
                 found nesting that exhausts it (stack limit reached)"
            ),
        }
    }
}

/// A filter error: its kind, where it is, and the line it is on.
///
/// `Display` gives `LINE:COL: MESSAGE`; [`Error::render`] adds the input line
/// with a caret under the position.
///
/// ```
/// use session_filter::Filter;
///
/// let err = Filter::parse("Department is").unwrap_err();
/// assert_eq!((err.line(), err.column(), err.offset()), (1, 14, 13));
/// assert_eq!(err.to_string(), "1:14: expected a quoted value, found end of input");
/// assert_eq!(err.render(), "Department is\n             ^");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Error(Box<Inner>);

#[derive(Clone, PartialEq, Eq)]
struct Inner {
    kind: ErrorKind,
    span: Span,
    line: usize,
    column: usize,
    /// The input line (or a window of it) holding the position, made printable.
    snippet: String,
    /// Column of the position within `snippet`, 0-based, in characters.
    caret: usize,
}

/// The most characters of the input line kept on each side of the position.
const SNIPPET_RADIUS: usize = 60;

impl Error {
    /// An error of `kind` at `span` of `input`.
    pub fn new(kind: ErrorKind, span: Span, input: &str) -> Error {
        let mut offset = (span.start as usize).min(input.len());
        while !input.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &input[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
        let line_end = input[offset..]
            .find('\n')
            .map_or(input.len(), |i| offset + i);
        let prefix: Vec<char> = input[line_start..offset].chars().collect();
        let column = prefix.len() + 1;

        let skip = prefix.len().saturating_sub(SNIPPET_RADIUS);
        let mut snippet = String::new();
        if skip > 0 {
            snippet.push('…');
        }
        let mut caret = usize::from(skip > 0);
        for &c in &prefix[skip..] {
            snippet.push(printable(c));
            caret += 1;
        }
        let rest = input[offset..line_end].trim_end_matches('\r');
        for (taken, c) in rest.chars().enumerate() {
            if taken == SNIPPET_RADIUS {
                snippet.push('…');
                break;
            }
            snippet.push(printable(c));
        }
        Error(Box::new(Inner {
            kind,
            span,
            line,
            column,
            snippet,
            caret,
        }))
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.0.kind
    }

    /// The span of the input the error is about.
    pub fn span(&self) -> Span {
        self.0.span
    }

    /// Byte offset of the position in the input.
    pub fn offset(&self) -> usize {
        self.0.span.start as usize
    }

    /// 1-based line of the position (only LF ends a line).
    pub fn line(&self) -> usize {
        self.0.line
    }

    /// 1-based column of the position, counted in Unicode scalar values.
    pub fn column(&self) -> usize {
        self.0.column
    }

    /// The message, without the position.
    pub fn message(&self) -> String {
        self.0.kind.to_string()
    }

    /// The input line holding the position, and under it a caret pointing at
    /// the position. Long lines are cut around the position (marked `…`);
    /// control characters show as `�` so the caret stays aligned.
    pub fn render(&self) -> String {
        let pad: String = self
            .0
            .snippet
            .chars()
            .take(self.0.caret)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        format!("{}\n{}^", self.0.snippet, pad)
    }
}

fn printable(c: char) -> char {
    if c.is_control() && c != '\t' {
        '\u{FFFD}'
    } else {
        c
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.0.line, self.0.column, self.0.kind)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.0.kind)
            .field("span", &self.0.span)
            .field("line", &self.0.line)
            .field("column", &self.0.column)
            .finish()
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(input: &str, offset: u32) -> Error {
        Error::new(ErrorKind::Empty, Span::new(offset, offset), input)
    }

    #[test]
    fn lines_end_only_at_lf_and_columns_count_chars() {
        let e = at("ab\ncé\rx", 6);
        assert_eq!((e.line(), e.column()), (2, 3));
        assert_eq!(e.render(), "cé\u{FFFD}x\n  ^");
        let e = at("東京 x", 7);
        assert_eq!((e.line(), e.column()), (1, 4));
    }

    #[test]
    fn caret_at_end_of_input_and_after_crlf() {
        let e = at("a is\r\n", 6);
        assert_eq!((e.line(), e.column()), (2, 1));
        assert_eq!(e.render(), "\n^");
        let e = at("has", 3);
        assert_eq!(e.render(), "has\n   ^");
    }

    #[test]
    fn tabs_keep_the_caret_aligned() {
        let e = at("\tx\ty", 3);
        assert_eq!(e.render(), "\tx\ty\n\t \t^");
    }

    #[test]
    fn long_lines_are_cut_around_the_position() {
        let input = "a".repeat(10_000);
        let e = at(&input, 5_000);
        let r = e.render();
        let (line, caret) = r.split_once('\n').unwrap();
        assert!(line.chars().count() <= 2 * SNIPPET_RADIUS + 2);
        assert_eq!(caret.len(), SNIPPET_RADIUS + 2);
        assert_eq!(e.column(), 5_001);
    }

    #[test]
    fn error_is_small() {
        assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
    }
}
