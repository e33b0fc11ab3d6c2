//! What a syntax error says was expected and what was found, in the words of
//! the language. One home for those words: the parser reports with them, and
//! so does the pest grammar where the tests and fuzz targets run it as an
//! oracle (it maps its rules to [`Expected`]).

use crate::util::escape::{read_escaped, QuoteError};

use super::error::ErrorKind;

/// Something the grammar tried at the position of a syntax error: a token or
/// a rule of `grammar/filter.pest`, by the name it has there.
///
/// Public only for the pest oracle of the tests and fuzz targets.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Expected {
    /// `expr`: a whole expression.
    Expr,
    /// `unary`: a clause, a group or a `not`.
    Unary,
    /// `key`.
    Key,
    /// `kw_compare`: `is`, `eq`, `ne` or `matches`.
    Compare,
    /// `kw_in`.
    In,
    /// `value`: a quoted value.
    Value,
    /// `list`: a list of quoted values.
    List,
    /// `lparen`.
    LParen,
    /// `kw_not`.
    Not,
    /// `kw_has`.
    Has,
    /// `kw_hasroles`.
    HasRoles,
    /// `kw_all`.
    All,
    /// `lbracket`.
    LBracket,
    /// `lbrace`.
    LBrace,
    /// `comma`.
    Comma,
    /// `rbracket`.
    RBracket,
    /// `rbrace`.
    RBrace,
    /// `kw_and_or`: `and` or `or`.
    AndOr,
    /// `rparen`.
    RParen,
    /// `EOI`: the end of the input.
    End,
    /// Any other rule (`filter`, `key_clause`, `has_roles`, `has`, `all`).
    Other,
}

/// What the grammar expected, in words, in a fixed order: `positives` are
/// the rules tried at the error's position.
#[doc(hidden)]
pub fn describe_expected(positives: &[Expected]) -> String {
    use Expected as E;
    let clause_start = [E::Key, E::Has, E::HasRoles, E::All];
    let is_clause =
        positives.contains(&E::Key) && positives.iter().any(|r| clause_start[1..].contains(r));
    let mut words: Vec<(u8, &str)> = Vec::new();
    for rule in positives {
        let rule_words: &[(u8, &str)] = match rule {
            r if is_clause && clause_start.contains(r) => &[(0, "a clause")],
            E::Expr | E::Unary => &[(0, "a clause")],
            E::Key => &[(1, "a property key")],
            // One token rule reads all four (or both) keywords; name each.
            E::Compare => &[(2, "`is`"), (3, "`eq`"), (4, "`ne`"), (5, "`matches`")],
            E::In => &[(6, "`in`")],
            E::Value => &[(7, "a quoted value")],
            E::List => &[(8, "a list of quoted values")],
            E::LParen => &[(9, "`(`")],
            E::Not => &[(10, "`not`")],
            E::Has => &[(11, "`has`")],
            E::HasRoles => &[(12, "`hasRoles`")],
            E::All => &[(13, "`all`")],
            E::LBracket => &[(14, "`[`")],
            E::LBrace => &[(15, "`{`")],
            E::Comma => &[(16, "`,`")],
            E::RBracket => &[(17, "`]`")],
            E::RBrace => &[(18, "`}`")],
            E::AndOr => &[(19, "`and`"), (20, "`or`")],
            E::RParen => &[(21, "`)`")],
            E::End => &[(22, "end of input")],
            E::Other => &[(23, "a valid filter")],
        };
        words.extend_from_slice(rule_words);
    }
    words.sort_unstable();
    words.dedup();
    match words.as_slice() {
        [] => "a valid filter".into(),
        [(_, one)] => (*one).into(),
        [init @ .., (_, last)] => {
            let init: Vec<&str> = init.iter().map(|(_, w)| *w).collect();
            format!("{} or {last}", init.join(", "))
        }
    }
}

/// The most characters of the input quoted in a "found …" message.
const FOUND_MAX_CHARS: usize = 32;

/// What the input holds at `pos`, in words: `` `word` ``, a quoted value, a
/// parenthesis, or end of input.
#[doc(hidden)]
pub fn describe_found(input: &str, pos: usize) -> String {
    let rest = input.get(pos..).unwrap_or("");
    let Some(c) = rest.chars().next() else {
        return "end of input".into();
    };
    let token = match c {
        ' ' | '\t' | '\r' | '\n' => return "whitespace".into(),
        '(' | ')' => &rest[..1],
        '"' | '\'' => match read_escaped(&rest[1..], Some(c)) {
            Ok((_, used)) => &rest[..1 + used],
            Err(_) => rest,
        },
        _ => rest
            .find(crate::util::properties::KEY_FORBIDDEN)
            .map_or(rest, |end| &rest[..end]),
    };
    let mut shown: String = token
        .chars()
        .take(FOUND_MAX_CHARS)
        .map(|c| {
            if c.is_control() {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            }
        })
        .collect();
    if token.chars().nth(FOUND_MAX_CHARS).is_some() {
        shown.push('…');
    }
    format!("`{shown}`")
}

/// The error for a quoted value at `pos` that never closes, if there is one.
#[doc(hidden)]
pub fn unterminated_value_at(input: &str, pos: usize) -> Option<ErrorKind> {
    let quote = input
        .get(pos..)?
        .chars()
        .next()
        .filter(|c| matches!(c, '"' | '\''))?;
    match read_escaped(&input[pos + 1..], Some(quote)) {
        Ok(_) => None,
        Err(QuoteError::Unterminated) => Some(ErrorKind::UnterminatedValue { quote }),
        Err(QuoteError::TrailingBackslash { .. }) => Some(ErrorKind::TrailingBackslash),
    }
}
