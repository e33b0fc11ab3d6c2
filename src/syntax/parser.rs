//! The parser: filter text → normalised, spanned [`Expr`], written by hand.
//!
//! `grammar/filter.pest` is the readable grammar, and this module follows it
//! rule for rule: a scanner of bytes (keys, quoted values, keywords that end
//! where a keyword may end, punctuation) under a loop that reads `unary`
//! operands and the `and`/`or` between them, grouping `and` tighter than
//! `or` (precedence climbing over the two levels). Parentheses open a frame
//! on a heap stack instead of recursing, so no input can run the thread out
//! of stack; the depth limit bounds the frames. The tests and a fuzz target
//! hold this parser to the pest grammar, run as an oracle: the same tree, or
//! an error at the same position with the same message.
//!
//! # Errors
//!
//! A syntax error is reported as pest reports it: at the furthest position
//! any rule was tried and failed, naming the rules tried there (see
//! [`Tracker`]). That bookkeeping costs time on every token, so the first
//! pass leaves it out; only a filter that fails is read a second time with
//! it on. Errors that are not about the grammar (a `$Roles` value that is no
//! roles string, a regex that does not compile, too many list items, nesting
//! past the limit) are noted as they are found, the first one kept, and
//! reported only when the text parses, as pest's builder found them after
//! the parse.

use smallvec::SmallVec;

use super::ast::{Expr, Key, Pattern, Span, Value};
use super::error::{Error, ErrorKind};
use super::expect::{describe_expected, describe_found, unterminated_value_at, Expected};
use super::scan::check_depth;
use super::Limits;
use crate::util::escape::read_escaped;
use crate::util::properties::ROLES;
use crate::util::regex::Regex;
use crate::util::roles::string_to_roles_strict;

/// Parses `input` into a normalised expression, within `limits`.
pub(crate) fn parse(input: &str, limits: &Limits) -> Result<Expr, Error> {
    if input.len() > limits.max_len() {
        // Over-long and over-deep at once: either error may be reported. The
        // depth error is the more telling one for hostile nesting, and the
        // scan of the allowed prefix costs no more than a parse would.
        let at = floor_char_boundary(input, limits.max_len());
        check_depth(&input[..at], limits.max_depth(), true)?;
        return Err(Error::new(
            ErrorKind::TooLong {
                len: input.len(),
                max: limits.max_len(),
            },
            Span::new(at as u32, input.len().min(u32::MAX as usize) as u32),
            input,
        ));
    }
    let first = input.trim_start_matches([' ', '\t', '\r', '\n']);
    if first.is_empty() {
        let at = input.len() as u32;
        return Err(Error::new(ErrorKind::Empty, Span::new(at, at), input));
    }
    // Rejects nesting past the limit before anything is built, as the
    // parser did when pest read the text: the scan reports the first `(` or
    // `not` past the limit in text order.
    check_depth(input, limits.max_depth(), false)?;
    let mut parser = Parser::new(input, limits, false);
    match parser.filter() {
        Ok(expr) => match parser.noted.take() {
            Some(error) => Err(error),
            None => Ok(expr),
        },
        Err(Failed) => {
            // Again, noting what was tried where, for the message.
            let mut parser = Parser::new(input, limits, true);
            // The second pass fails as the first did.
            let _ = parser.filter();
            Err(parser.syntax_error())
        }
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The text does not follow the grammar (where and why is in the
/// [`Tracker`], on the second pass).
#[derive(Debug)]
struct Failed;

/// pest's record of the rules that failed at the furthest position reached
/// (`ParserState::track` in pest 2.9), so that errors name the same
/// alternatives. Rules are recorded where they start; a rule that fails
/// where it started, after its own rules made several attempts there (or
/// none), stands for them (a `unary` for its `not`, `(` and clause, a `list`
/// for its `[`, `{` and value). Inside the negative lookahead that tells the
/// keyword `not` from a key (`not is 'x'`), failures are not recorded, but
/// the rules that succeed are, apart: they move the furthest position too.
#[derive(Default)]
struct Tracker {
    /// Inside the negative lookahead.
    negative: bool,
    /// The furthest position where a rule was recorded.
    at: usize,
    /// The rules that failed there.
    positives: SmallVec<[Expected; 8]>,
    /// The rules that succeeded there inside the negative lookahead.
    negatives: SmallVec<[Expected; 4]>,
}

/// The tracker's state where a rule starts.
#[derive(Clone, Copy)]
struct Mark {
    pos: usize,
    positives: usize,
    negatives: usize,
    attempts: usize,
}

impl Tracker {
    fn attempts_at(&self, pos: usize) -> usize {
        if pos == self.at {
            self.positives.len() + self.negatives.len()
        } else {
            0
        }
    }

    fn mark(&self, pos: usize) -> Mark {
        let (positives, negatives) = if pos == self.at {
            (self.positives.len(), self.negatives.len())
        } else {
            (0, 0)
        };
        Mark {
            pos,
            positives,
            negatives,
            attempts: self.attempts_at(pos),
        }
    }

    /// The rule `rule`, started at `m`, has succeeded (`ok`) or failed.
    fn done(&mut self, rule: Expected, m: Mark, ok: bool) {
        if ok != self.negative {
            return;
        }
        let pos = m.pos;
        let now = self.attempts_at(pos);
        if now > m.attempts && now - m.attempts == 1 {
            // One rule inside said it all.
            return;
        }
        if pos == self.at {
            self.positives.truncate(m.positives);
            self.negatives.truncate(m.negatives);
        }
        if pos > self.at {
            self.positives.clear();
            self.negatives.clear();
            self.at = pos;
        }
        if pos == self.at {
            if self.negative {
                self.negatives.push(rule);
            } else {
                self.positives.push(rule);
            }
        }
    }
}

/// An open parenthesis: where its group's operands start, and the `not`s
/// of the `unary` it is the operand of.
struct Group {
    /// Index in the operand buffer of the group's first operand.
    first: usize,
    /// Index of the first operand of the `and` chain being read.
    conjuncts: usize,
    /// The depth of a clause read directly inside.
    depth: usize,
    /// Where each `not` before the `(` starts.
    nots: SmallVec<[u32; 2]>,
}

struct Parser<'a> {
    input: &'a str,
    bytes: &'a [u8],
    limits: &'a Limits,
    /// On the second pass: what was tried where.
    tracker: Option<Tracker>,
    /// The first error found that is not about the grammar.
    noted: Option<Error>,
    /// The operands of the `and`/`or` chains being read, innermost last:
    /// one buffer for the whole filter, so each `And`/`Or` node allocates
    /// only its own vector, at its final size.
    operands: Vec<Expr>,
}

#[inline]
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Bytes that end a key: whitespace, quotes, parentheses.
#[inline]
fn ends_key(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'"' | b'\'' | b'(' | b')')
}

const AND_OR: &[&[u8]] = &[b"and", b"or"];
const COMPARE: &[&[u8]] = &[b"is", b"eq", b"ne", b"matches"];
const IN: &[&[u8]] = &[b"in"];
const NOT: &[&[u8]] = &[b"not"];
const HAS: &[&[u8]] = &[b"has"];
const HAS_ROLES: &[&[u8]] = &[b"hasroles"];
const ALL: &[&[u8]] = &[b"all"];

/// The operator of a key clause.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Is,
    Ne,
    Matches,
    In,
}

impl<'a> Parser<'a> {
    fn new(input: &'a str, limits: &'a Limits, track: bool) -> Parser<'a> {
        Parser {
            input,
            bytes: input.as_bytes(),
            limits,
            tracker: track.then(Tracker::default),
            noted: None,
            operands: Vec::new(),
        }
    }

    // ---- bookkeeping -------------------------------------------------

    #[inline]
    fn mark(&self, pos: usize) -> Option<Mark> {
        self.tracker.as_ref().map(|t| t.mark(pos))
    }

    #[inline]
    fn done(&mut self, rule: Expected, m: Option<Mark>, ok: bool) {
        if let (Some(t), Some(m)) = (self.tracker.as_mut(), m) {
            t.done(rule, m, ok);
        }
    }

    /// A token rule (no rules inside) tried at `pos`.
    #[inline]
    fn tried(&mut self, rule: Expected, pos: usize, ok: bool) {
        if let Some(t) = self.tracker.as_mut() {
            let m = t.mark(pos);
            t.done(rule, m, ok);
        }
    }

    /// Notes an error that is not about the grammar, keeping the first.
    #[cold]
    fn note(&mut self, kind: ErrorKind, span: Span) {
        if self.noted.is_none() && self.tracker.is_none() {
            self.noted = Some(Error::new(kind, span, self.input));
        }
    }

    /// The syntax error the tracker found.
    fn syntax_error(&self) -> Error {
        let (pos, positives) = match &self.tracker {
            Some(t) => (t.at, &t.positives[..]),
            None => (0, &[][..]),
        };
        if positives.contains(&Expected::Value) {
            if let Some(kind) = unterminated_value_at(self.input, pos) {
                return Error::new(
                    kind,
                    Span::new(pos as u32, self.input.len() as u32),
                    self.input,
                );
            }
        }
        let kind = ErrorKind::Syntax {
            expected: describe_expected(positives),
            found: describe_found(self.input, pos),
        };
        Error::new(kind, Span::new(pos as u32, pos as u32), self.input)
    }

    // ---- the scanner -------------------------------------------------

    #[inline]
    fn skip(&self, mut pos: usize) -> usize {
        while pos < self.bytes.len() && is_space(self.bytes[pos]) {
            pos += 1;
        }
        pos
    }

    /// Where a keyword may end: whitespace, a quote, a parenthesis, `[`,
    /// `{` or the end.
    #[inline]
    fn keyword_ends(&self, pos: usize) -> bool {
        match self.bytes.get(pos) {
            None => true,
            Some(&b) => ends_key(b) || b == b'[' || b == b'{',
        }
    }

    /// One of `words` (ASCII case-insensitive) at `pos`, ending where a
    /// keyword may: the index of the word and where it ends.
    #[inline]
    fn keyword(&mut self, rule: Expected, pos: usize, words: &[&[u8]]) -> Option<(usize, usize)> {
        let rest = self.bytes.get(pos..).unwrap_or(&[]);
        let found = words.iter().enumerate().find_map(|(i, w)| {
            (rest.len() >= w.len()
                && rest[..w.len()].eq_ignore_ascii_case(w)
                && self.keyword_ends(pos + w.len()))
            .then_some((i, pos + w.len()))
        });
        self.tried(rule, pos, found.is_some());
        found
    }

    /// The byte `b` at `pos`.
    #[inline]
    fn punct(&mut self, rule: Expected, pos: usize, b: u8) -> bool {
        let ok = self.bytes.get(pos) == Some(&b);
        self.tried(rule, pos, ok);
        ok
    }

    /// A key at `pos`: where it ends.
    #[inline]
    fn key(&mut self, pos: usize) -> Option<usize> {
        let rest = self.bytes.get(pos..).unwrap_or(&[]);
        let len = rest.iter().position(|&b| ends_key(b)).unwrap_or(rest.len());
        let ok = len > 0;
        self.tried(Expected::Key, pos, ok);
        ok.then_some(pos + len)
    }

    /// A quoted value at `pos`: where it ends (after the closing quote).
    #[inline]
    fn value(&mut self, pos: usize) -> Option<usize> {
        let end = self.value_end(pos);
        self.tried(Expected::Value, pos, end.is_some());
        end
    }

    fn value_end(&self, pos: usize) -> Option<usize> {
        let quote = *self.bytes.get(pos)?;
        if quote != b'"' && quote != b'\'' {
            return None;
        }
        let mut i = pos + 1;
        while i < self.bytes.len() {
            match self.bytes[i] {
                // A multi-byte character after `\` is skipped a byte at a
                // time: its other bytes are never a quote or a backslash.
                b'\\' => i += 2,
                b if b == quote => return Some(i + 1),
                _ => i += 1,
            }
        }
        None
    }

    /// The value whose quotes are `start..end`, unescaped.
    fn read_value(&self, start: usize, end: usize) -> Value {
        let inner = &self.input[start + 1..end - 1];
        let text = if inner.contains('\\') {
            read_escaped(inner, None).map_or_else(|_| inner.to_owned(), |(t, _)| t)
        } else {
            inner.to_owned()
        };
        Value {
            text,
            span: Span::new(start as u32, end as u32),
        }
    }

    fn read_key(&self, start: usize, end: usize) -> Key {
        Key {
            name: self.input[start..end].to_owned(),
            span: Span::new(start as u32, end as u32),
        }
    }

    // ---- clauses -----------------------------------------------------

    /// `clause = key_clause | has_roles | has | all` at `pos`: the clause
    /// and where it ends.
    fn clause(&mut self, pos: usize) -> Option<(Expr, usize)> {
        if let Some(found) = self.key_clause(pos, false) {
            return Some(found);
        }
        if let Some(found) = self.has_roles(pos) {
            return Some(found);
        }
        if let Some(found) = self.has(pos) {
            return Some(found);
        }
        let m = self.mark(pos);
        let all = self.keyword(Expected::All, pos, ALL);
        self.done(Expected::Other, m, all.is_some());
        all.map(|(_, end)| {
            let span = Span::new(pos as u32, end as u32);
            (Expr::All { span }, end)
        })
    }

    /// `key_clause = key ~ (kw_compare ~ value | kw_in ~ list)`. A `probe`
    /// (the lookahead after `not`) only finds where it would end and builds
    /// nothing (its tree is an `all` standing in).
    fn key_clause(&mut self, pos: usize, probe: bool) -> Option<(Expr, usize)> {
        let m = self.mark(pos);
        let found = self.key_clause_inner(pos, probe);
        self.done(Expected::Other, m, found.is_some());
        found
    }

    fn key_clause_inner(&mut self, pos: usize, probe: bool) -> Option<(Expr, usize)> {
        let key_end = self.key(pos)?;
        let at = self.skip(key_end);
        let mut compared = None;
        if let Some((word, end)) = self.keyword(Expected::Compare, at, COMPARE) {
            let value_at = self.skip(end);
            if let Some(value_end) = self.value(value_at) {
                let op = match word {
                    0 | 1 => Op::Is,
                    2 => Op::Ne,
                    _ => Op::Matches,
                };
                compared = Some((op, value_at, value_end));
            }
        }
        let mut values = Vec::new();
        let (op, end) = match compared {
            Some((op, _, value_end)) => (op, value_end),
            None => {
                let (_, end) = self.keyword(Expected::In, at, IN)?;
                let list_at = self.skip(end);
                let out = if probe { None } else { Some(&mut values) };
                let end = self.list(list_at, out)?;
                (Op::In, end)
            }
        };
        if probe {
            return Some((Expr::all(), end));
        }
        let key = self.read_key(pos, key_end);
        let span = Span::new(pos as u32, end as u32);
        let expr = match (op, compared) {
            (Op::In, _) => {
                if key.name == ROLES {
                    for v in &values {
                        self.check_roles(v);
                    }
                }
                Expr::In { key, values, span }
            }
            (op, Some((_, value_at, value_end))) => {
                let value = self.read_value(value_at, value_end);
                match op {
                    Op::Matches => {
                        let pattern = self.pattern(&key, value);
                        Expr::Matches { key, pattern, span }
                    }
                    Op::Ne => {
                        if key.name == ROLES {
                            self.check_roles(&value);
                        }
                        Expr::Ne { key, value, span }
                    }
                    _ => {
                        if key.name == ROLES {
                            self.check_roles(&value);
                        }
                        Expr::Is { key, value, span }
                    }
                }
            }
            (_, None) => Expr::all(),
        };
        Some((expr, end))
    }

    /// `has_roles = kw_hasroles ~ list`.
    fn has_roles(&mut self, pos: usize) -> Option<(Expr, usize)> {
        let m = self.mark(pos);
        let mut roles = Vec::new();
        let end = self
            .keyword(Expected::HasRoles, pos, HAS_ROLES)
            .and_then(|(_, end)| {
                let at = self.skip(end);
                self.list(at, Some(&mut roles))
            });
        self.done(Expected::Other, m, end.is_some());
        let end = end?;
        let span = Span::new(pos as u32, end as u32);
        Some((Expr::HasRoles { roles, span }, end))
    }

    /// `has = kw_has ~ key`.
    fn has(&mut self, pos: usize) -> Option<(Expr, usize)> {
        let m = self.mark(pos);
        let found = self.keyword(Expected::Has, pos, HAS).and_then(|(_, end)| {
            let at = self.skip(end);
            self.key(at).map(|end| (at, end))
        });
        self.done(Expected::Other, m, found.is_some());
        let (key_at, end) = found?;
        let key = self.read_key(key_at, end);
        let span = Span::new(pos as u32, end as u32);
        Some((Expr::Has { key, span }, end))
    }

    /// `list = "[" items "]" | "{" items "}" | items`: where it ends. The
    /// values go to `out` (none when probing).
    fn list(&mut self, pos: usize, mut out: Option<&mut Vec<Value>>) -> Option<usize> {
        let m = self.mark(pos);
        let mut end = None;
        for (open, close, open_rule, close_rule) in [
            (b'[', b']', Expected::LBracket, Expected::RBracket),
            (b'{', b'}', Expected::LBrace, Expected::RBrace),
        ] {
            if !self.punct(open_rule, pos, open) {
                continue;
            }
            let at = self.skip(pos + 1);
            if let Some(items_end) = self.items(at, out.as_deref_mut()) {
                let at = self.skip(items_end);
                if self.punct(close_rule, at, close) {
                    end = Some(at + 1);
                    break;
                }
            }
            if let Some(out) = out.as_deref_mut() {
                out.clear();
            }
        }
        if end.is_none() {
            end = self.items(pos, out);
        }
        self.done(Expected::List, m, end.is_some());
        end
    }

    /// `items = value ~ (","? ~ value)*`: where they end. As in pest, the
    /// whitespace before the repetition is part of the items when the
    /// repetition matches nothing (a list of one value), and is given back
    /// otherwise.
    fn items(&mut self, pos: usize, mut out: Option<&mut Vec<Value>>) -> Option<usize> {
        let mut end = self.value(pos)?;
        self.item(pos, end, out.as_deref_mut());
        let mut first = true;
        loop {
            let mut at = self.skip(end);
            let before_comma = at;
            if self.punct(Expected::Comma, at, b',') {
                at = self.skip(at + 1);
            }
            let Some(value_end) = self.value(at) else {
                return Some(if first { before_comma } else { end });
            };
            first = false;
            self.item(at, value_end, out.as_deref_mut());
            end = value_end;
        }
    }

    /// Keeps the value `start..end` of a list, within the item limit.
    #[inline]
    fn item(&mut self, start: usize, end: usize, out: Option<&mut Vec<Value>>) {
        let Some(out) = out else { return };
        if self.tracker.is_some() {
            return;
        }
        if out.len() >= self.limits.max_items() {
            if out.len() == self.limits.max_items() {
                let max = self.limits.max_items();
                self.note(
                    ErrorKind::TooManyItems { max },
                    Span::new(start as u32, end as u32),
                );
                // Past the limit, one more stands for all the rest.
                out.push(Value::new(""));
            }
            return;
        }
        out.push(self.read_value(start, end));
    }

    /// A `$Roles` value compared by `is`, `eq`, `ne` or `in` must be a
    /// roles string, read strictly; the error points at the opening quote.
    fn check_roles(&mut self, value: &Value) {
        if let Err(error) = string_to_roles_strict(&value.text) {
            let at = Span::new(value.span.start, value.span.start + 1);
            self.note(ErrorKind::InvalidRoles { error }, at);
        }
    }

    /// The pattern of `key matches value`, compiled (unless an error is
    /// already noted, which will be reported instead).
    fn pattern(&mut self, key: &Key, value: Value) -> Pattern {
        if self.noted.is_some() || self.tracker.is_some() {
            return Pattern::new(value.text);
        }
        match matches_pattern(key, value.clone(), self.limits, self.input) {
            Ok(pattern) => pattern,
            Err(error) => {
                self.noted = Some(error);
                Pattern::new(value.text)
            }
        }
    }

    // ---- the structure -----------------------------------------------

    /// `filter = SOI ~ expr ~ EOI`, with `expr` and `unary` read in a loop
    /// and each `(` a frame on a heap stack.
    fn filter(&mut self) -> Result<Expr, Failed> {
        let max = self.limits.max_depth();
        let mut groups: Vec<Group> = Vec::new();
        let mut group = Group {
            first: 0,
            conjuncts: 0,
            depth: 0,
            nots: SmallVec::new(),
        };
        let mut pos = self.skip(0);
        'unary: loop {
            // `unary = (&kw_not ~ !key_clause ~ kw_not)* ~ ("(" expr ")" | clause)`
            let unary = self.mark(pos);
            let mut nots: SmallVec<[u32; 2]> = SmallVec::new();
            let mut at = pos;
            loop {
                let word = if nots.is_empty() { at } else { self.skip(at) };
                if self.keyword(Expected::Not, word, NOT).is_none() || self.key_clause_follows(word)
                {
                    break;
                }
                nots.push(word as u32);
                at = word + 3;
                if group.depth + nots.len() > max {
                    self.note(
                        ErrorKind::TooDeep { max },
                        Span::new(word as u32, at as u32),
                    );
                }
            }
            let start = self.skip(at);
            if self.punct(Expected::LParen, start, b'(') {
                let depth = group.depth + nots.len() + 1;
                if depth > max {
                    self.note(
                        ErrorKind::TooDeep { max },
                        Span::new(start as u32, start as u32 + 1),
                    );
                }
                let first = self.operands.len();
                groups.push(std::mem::replace(
                    &mut group,
                    Group {
                        first,
                        conjuncts: first,
                        depth,
                        nots,
                    },
                ));
                pos = self.skip(start + 1);
                continue 'unary;
            }
            let Some((clause, mut end)) = self.clause(start) else {
                self.done(Expected::Unary, unary, false);
                return Err(Failed);
            };
            self.operands.push(clause);
            self.negate(&nots, end);
            // After an operand: `and`/`or` and another, or the end of the
            // group or of the filter.
            loop {
                let at = self.skip(end);
                if let Some((word, after)) = self.keyword(Expected::AndOr, at, AND_OR) {
                    if word == 1 {
                        self.group(group.conjuncts, true);
                        group.conjuncts += 1;
                    }
                    pos = self.skip(after);
                    continue 'unary;
                }
                match groups.pop() {
                    Some(outer) => {
                        if !self.punct(Expected::RParen, at, b')') {
                            return Err(Failed);
                        }
                        end = at + 1;
                        self.group(group.conjuncts, true);
                        self.group(group.first, false);
                        // Parentheses leave no node: the group's tree is the
                        // operand of the `not`s before it.
                        let inner = std::mem::replace(&mut group, outer);
                        self.negate(&inner.nots, end);
                    }
                    None => {
                        let at_end = at == self.bytes.len();
                        self.tried(Expected::End, at, at_end);
                        if !at_end {
                            return Err(Failed);
                        }
                        self.group(group.conjuncts, true);
                        self.group(0, false);
                        return match (self.operands.pop(), self.operands.is_empty()) {
                            (Some(expr), true) => Ok(expr),
                            _ => Err(Failed),
                        };
                    }
                }
            }
        }
    }

    /// `!key_clause` after a `not` at `pos`: true when a key clause can be
    /// read there, which makes the `not` its key.
    fn key_clause_follows(&mut self, pos: usize) -> bool {
        if let Some(t) = self.tracker.as_mut() {
            t.negative = true;
        }
        let follows = self.key_clause(pos, true).is_some();
        if let Some(t) = self.tracker.as_mut() {
            t.negative = false;
        }
        follows
    }

    /// Replaces the operands from `from` on with their `and` (`is_and`) or
    /// `or`; a lone operand stays as it is.
    #[inline]
    fn group(&mut self, from: usize, is_and: bool) {
        if self.operands.len() != from + 1 {
            let group = Expr::nary(self.operands.drain(from..).collect(), is_and);
            self.operands.push(group);
        }
    }

    /// Wraps the last operand in a `not` for each start in `nots`, the last
    /// innermost; each covers its operand (and its parentheses) up to `end`.
    #[inline]
    fn negate(&mut self, nots: &[u32], end: usize) {
        if nots.is_empty() {
            return;
        }
        if let Some(mut expr) = self.operands.pop() {
            for &start in nots.iter().rev() {
                expr = Expr::Not {
                    expr: Box::new(expr),
                    span: Span::new(start, end as u32),
                };
            }
            self.operands.push(expr);
        }
    }
}

/// The pattern of `key matches value`: `key` is not `$Roles`, and the value
/// compiles as a regular expression within the limits. Either error is
/// reported at the value's opening quote.
#[doc(hidden)]
pub fn matches_pattern(
    key: &Key,
    value: Value,
    limits: &Limits,
    input: &str,
) -> Result<Pattern, Error> {
    let at = Span::new(value.span.start, value.span.start + 1);
    if key.name == ROLES {
        return Err(Error::new(ErrorKind::RolesMatches, at, input));
    }
    match Regex::new(&value.text, limits.max_regex_size()) {
        Ok(regex) => Ok(Pattern::compiled(value, regex)),
        Err(error) => Err(Error::new(ErrorKind::InvalidRegex { error }, at, input)),
    }
}

/// The error for a `$Roles` value compared by `is`, `eq`, `ne` or `in`
/// that is not a roles string read strictly, at its opening quote.
#[doc(hidden)]
pub fn roles_value_error(value: &Value, input: &str) -> Option<Error> {
    string_to_roles_strict(&value.text).err().map(|error| {
        Error::new(
            ErrorKind::InvalidRoles { error },
            Span::new(value.span.start, value.span.start + 1),
            input,
        )
    })
}
