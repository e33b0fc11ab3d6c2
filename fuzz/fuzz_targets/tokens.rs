//! Structured fuzzing: filter text built from a soup of keywords (in mixed
//! case), keys that spell keywords, quoted values (roles strings among them),
//! brackets, parentheses, commas and whitespace, so that most inputs get far
//! into the grammar. Each text goes through the parse and round-trip checks.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use session_filter::properties::FIXED_PROPERTIES;
use session_filter::{escape, roles_to_string};

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Keyword {
    And,
    Or,
    Not,
    Is,
    Eq,
    Ne,
    Matches,
    In,
    Has,
    HasRoles,
    All,
}

impl Keyword {
    fn text(self) -> &'static str {
        match self {
            Keyword::And => "and",
            Keyword::Or => "or",
            Keyword::Not => "not",
            Keyword::Is => "is",
            Keyword::Eq => "eq",
            Keyword::Ne => "ne",
            Keyword::Matches => "matches",
            Keyword::In => "in",
            Keyword::Has => "has",
            Keyword::HasRoles => "hasRoles",
            Keyword::All => "all",
        }
    }
}

/// Keys that are ordinary, fixed, or close to the grammar's edges.
const KEYS: &[&str] = &[
    "a",
    "b",
    "k",
    "Tier",
    "Department",
    "[x]",
    "k[",
    "{k}",
    "k,",
    "not[x]",
    "in[x]",
    "is[",
    "has[x]",
    "$Version",
    "notice",
    "é",
    "\\",
];

/// Value texts that touch escapes, quotes and keywords.
const VALUES: &[&str] = &[
    "",
    "x",
    "a b",
    "it's",
    "\"",
    "\\",
    "(",
    ")",
    "not",
    "\n",
    "'\"'",
    "\"a\",\"b\"",
    "[]",
    "é",
];

#[derive(Arbitrary, Debug)]
enum Key {
    Listed(u8),
    Fixed(u8),
    Keyword(Keyword, u8),
    Text(String),
}

#[derive(Arbitrary, Debug)]
enum ValueText {
    Listed(u8),
    /// A roles string made of the roles `r0` … `r3`.
    Roles(Vec<u8>),
    Text(String),
    /// Put between the quotes unescaped.
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Token {
    Keyword(Keyword, u8),
    Key(Key),
    Value(bool, ValueText),
    Open,
    Close,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Comma,
    Quote(bool),
    Backslash,
    Char(char),
}

#[derive(Arbitrary, Debug)]
enum Gap {
    Space,
    None,
    Newline,
    Tab,
    CrLf,
    Spaces(u8),
}

#[derive(Arbitrary, Debug)]
struct Piece {
    gap: Gap,
    token: Token,
}

/// `word` with the ASCII letters whose bit is set in `mask` upper-cased.
fn cased(word: &str, mask: u8) -> String {
    word.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask & (1 << (i % 8)) != 0 {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

fn render(pieces: &[Piece]) -> String {
    let mut out = String::new();
    for piece in pieces {
        match piece.gap {
            Gap::Space => out.push(' '),
            Gap::None => {}
            Gap::Newline => out.push('\n'),
            Gap::Tab => out.push('\t'),
            Gap::CrLf => out.push_str("\r\n"),
            Gap::Spaces(n) => out.extend(std::iter::repeat_n(' ', usize::from(n % 4))),
        }
        match &piece.token {
            Token::Keyword(kw, mask) => out.push_str(&cased(kw.text(), *mask)),
            Token::Key(Key::Listed(i)) => out.push_str(KEYS[usize::from(*i) % KEYS.len()]),
            Token::Key(Key::Fixed(i)) => {
                out.push_str(FIXED_PROPERTIES[usize::from(*i) % FIXED_PROPERTIES.len()])
            }
            Token::Key(Key::Keyword(kw, mask)) => out.push_str(&cased(kw.text(), *mask)),
            Token::Key(Key::Text(s)) => out.push_str(s),
            Token::Value(double, text) => {
                let q = if *double { '"' } else { '\'' };
                out.push(q);
                match text {
                    ValueText::Listed(i) => {
                        out.push_str(&escape(VALUES[usize::from(*i) % VALUES.len()]))
                    }
                    ValueText::Roles(roles) => {
                        let roles = roles.iter().map(|r| format!("r{}", r % 4));
                        out.push_str(&escape(&roles_to_string(roles)));
                    }
                    ValueText::Text(s) => out.push_str(&escape(s)),
                    ValueText::Raw(s) => out.push_str(s),
                }
                out.push(q);
            }
            Token::Open => out.push('('),
            Token::Close => out.push(')'),
            Token::LBracket => out.push('['),
            Token::RBracket => out.push(']'),
            Token::LBrace => out.push('{'),
            Token::RBrace => out.push('}'),
            Token::Comma => out.push(','),
            Token::Quote(double) => out.push(if *double { '"' } else { '\'' }),
            Token::Backslash => out.push('\\'),
            Token::Char(c) => out.push(*c),
        }
    }
    out
}

fuzz_target!(|pieces: Vec<Piece>| {
    let text = render(&pieces);
    session_filter_fuzz::check_parse(&text);
    session_filter_fuzz::check_roundtrip(&text);
    session_filter_fuzz::check_oracle(&text, &session_filter::Limits::default());
});
