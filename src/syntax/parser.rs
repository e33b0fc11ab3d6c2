//! pest `Pairs` → [`Expr`]: the only module that names `Rule`.

use pest::error::{ErrorVariant, InputLocation};
use pest::iterators::{Pair, Pairs};
use pest::Parser as _;

use super::ast::{Expr, Key, Pattern, Span, Value};
use super::error::{Error, ErrorKind};
use super::scan::check_depth;
use super::Limits;
use crate::util::escape::{read_escaped, QuoteError};
use crate::util::properties::ROLES;
use crate::util::regex::Regex;
use crate::util::roles::string_to_roles_strict;

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/filter.pest"]
struct FilterParser;

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
    let parens = check_depth(input, limits.max_depth(), false)?;
    // pest and the builder recurse once per level of parentheses, and the
    // scan bounds the levels. Run them where the stack has room for that
    // many: here, or on a fresh stack when this thread is short of it.
    let needed = STACK_BASE + parens * STACK_PER_PAREN;
    stacker::maybe_grow(needed, needed, || parse_checked(input, limits))
}

/// The stack the parser needs besides its recursion, and per level of
/// parentheses (pest's rule frames and the builder's). Measured with rustc
/// 1.95 on x86_64: about 2.7 KiB per level in a debug build and 0.5 KiB in a
/// release build, and under 64 KiB besides; the margin covers other
/// compilers and settings. A deep filter on a thread short of stack gets a
/// fresh stack instead of an overflow.
const STACK_BASE: usize = 64 * 1024;
const STACK_PER_PAREN: usize = 8 * 1024;

/// [`parse`] of an input whose nesting the depth scan has bounded.
fn parse_checked(input: &str, limits: &Limits) -> Result<Expr, Error> {
    let mut pairs =
        FilterParser::parse(Rule::filter, input).map_err(|e| convert_error(&e, input))?;
    let mut builder = Builder {
        input,
        limits,
        operands: Vec::new(),
    };
    let filter = next(&mut pairs, Rule::filter, input)?;
    let mut inner = filter.into_inner();
    builder.expr(next(&mut inner, Rule::expr, input)?, 0)?;
    match builder.operands.pop() {
        Some(expr) if builder.operands.is_empty() => Ok(expr),
        _ => Err(builder.internal_error("one expression", 0)),
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn span_of(pair: &Pair<'_, Rule>) -> Span {
    let s = pair.as_span();
    Span::new(s.start() as u32, s.end() as u32)
}

/// The next pair, which the grammar guarantees is a `rule`. A mismatch is a
/// bug in this module, reported as an error rather than a panic.
fn next<'i>(pairs: &mut Pairs<'i, Rule>, rule: Rule, input: &str) -> Result<Pair<'i, Rule>, Error> {
    match pairs.next() {
        Some(pair) if pair.as_rule() == rule => Ok(pair),
        other => {
            let at = other.map_or(input.len() as u32, |p| span_of(&p).start);
            Err(Error::new(
                ErrorKind::Syntax {
                    expected: format!("{rule:?} (internal parser error)"),
                    found: describe_found(input, at as usize),
                },
                Span::new(at, at),
                input,
            ))
        }
    }
}

struct Builder<'a> {
    input: &'a str,
    limits: &'a Limits,
    /// The operands of the `and`/`or` chains being built, innermost chain
    /// last: one buffer for the whole filter, so each `And`/`Or` node
    /// allocates only its own vector, at its final size.
    operands: Vec<Expr>,
}

impl Builder<'_> {
    fn error(&self, kind: ErrorKind, span: Span) -> Error {
        Error::new(kind, span, self.input)
    }

    /// `expr = unary ((and | or) unary)*`, grouped so that `and` binds
    /// tighter than `or`, pushed onto the operand buffer. `depth` counts the
    /// `(` and `not` above; the pre-scan already bounds it, and recursion
    /// here is only through parentheses, so it is bounded by the depth
    /// limit. Results go through the buffer, not the return value, to keep
    /// the frames of this recursion small.
    fn expr(&mut self, pair: Pair<'_, Rule>, depth: usize) -> Result<(), Error> {
        let first = self.operands.len();
        // Where the conjuncts of the current `and` chain start.
        let mut conjuncts = first;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::unary => self.unary(p, depth)?,
                Rule::kw_and_or if p.as_str().eq_ignore_ascii_case("or") => {
                    self.group(conjuncts, true);
                    conjuncts += 1;
                }
                _ => {}
            }
        }
        self.group(conjuncts, true);
        self.group(first, false);
        Ok(())
    }

    /// Replaces the operands from `from` on with their `and` (`is_and`) or
    /// `or`; a lone operand stays as it is.
    #[inline(never)]
    fn group(&mut self, from: usize, is_and: bool) {
        if self.operands.len() != from + 1 {
            let group = Expr::nary(self.operands.drain(from..).collect(), is_and);
            self.operands.push(group);
        }
    }

    /// `unary = not* ( "(" expr ")" | clause )`, pushed onto the operand
    /// buffer.
    ///
    /// This is where the depth limit is enforced exactly: `depth` counts the
    /// `(` and `not` above, and each `not` and `(` here adds one. (The
    /// pre-scan already rejected deeper parentheses before pest ran, which is
    /// what keeps pest's recursion bounded; its count of `not`s only has to
    /// be close, since `not` costs pest no stack.)
    fn unary(&mut self, pair: Pair<'_, Rule>, depth: usize) -> Result<(), Error> {
        let end = span_of(&pair).end;
        let max = self.limits.max_depth();
        let operands = self.operands.len();
        // Where each `not` starts.
        let mut nots: Vec<u32> = Vec::new();
        let mut here = depth;
        for p in pair.into_inner() {
            let rule = p.as_rule();
            match rule {
                Rule::kw_not | Rule::lparen => {
                    here += 1;
                    if rule == Rule::kw_not {
                        nots.push(span_of(&p).start);
                    }
                    if here > max {
                        return Err(self.error(ErrorKind::TooDeep { max }, span_of(&p)));
                    }
                }
                Rule::rparen => {}
                // Parentheses leave no node: the group's tree is the operand.
                Rule::expr => self.expr(p, here)?,
                _ => self.clause(p)?,
            }
        }
        if self.operands.len() != operands + 1 {
            return Err(self.internal_error("a clause", end));
        }
        if !nots.is_empty() {
            self.negate(&nots, end);
        }
        Ok(())
    }

    /// Wraps the last operand in a `not` for each start in `nots`, the last
    /// innermost; each covers its operand and the operand's parentheses, up
    /// to `end`.
    #[inline(never)]
    fn negate(&mut self, nots: &[u32], end: u32) {
        if let Some(mut expr) = self.operands.pop() {
            for &start in nots.iter().rev() {
                expr = Expr::Not {
                    expr: Box::new(expr),
                    span: Span::new(start, end),
                };
            }
            self.operands.push(expr);
        }
    }

    /// The error for a pair the grammar does not produce here: a bug in this
    /// module, reported rather than a panic.
    #[cold]
    fn internal_error(&self, expected: &str, at: u32) -> Error {
        self.error(
            ErrorKind::Syntax {
                expected: format!("{expected} (internal parser error)"),
                found: describe_found(self.input, at as usize),
            },
            Span::new(at, at),
        )
    }

    /// A clause, pushed onto the operand buffer.
    #[inline(never)]
    fn clause(&mut self, pair: Pair<'_, Rule>) -> Result<(), Error> {
        let clause = self.read_clause(pair)?;
        self.operands.push(clause);
        Ok(())
    }

    fn read_clause(&self, pair: Pair<'_, Rule>) -> Result<Expr, Error> {
        let span = span_of(&pair);
        let rule = pair.as_rule();
        let mut inner = pair.into_inner();
        let input = self.input;
        Ok(match rule {
            Rule::key_clause => {
                let key = self.key(next(&mut inner, Rule::key, input)?);
                let op = inner.next();
                match op.as_ref().map(|p| p.as_rule()) {
                    Some(Rule::kw_in) => {
                        let values = self.list(next(&mut inner, Rule::list, input)?)?;
                        if key.name == ROLES {
                            for value in &values {
                                self.check_roles(value)?;
                            }
                        }
                        Expr::In { key, values, span }
                    }
                    _ => {
                        let value = self.value(next(&mut inner, Rule::value, input)?)?;
                        let op = op.as_ref().map_or("", |p| p.as_str());
                        if op.eq_ignore_ascii_case("matches") {
                            let pattern = matches_pattern(&key, value, self.limits, input)?;
                            return Ok(Expr::Matches { key, pattern, span });
                        }
                        if key.name == ROLES {
                            self.check_roles(&value)?;
                        }
                        if op.eq_ignore_ascii_case("ne") {
                            Expr::Ne { key, value, span }
                        } else {
                            Expr::Is { key, value, span }
                        }
                    }
                }
            }
            Rule::has_roles => {
                next(&mut inner, Rule::kw_hasroles, input)?;
                let roles = self.list(next(&mut inner, Rule::list, input)?)?;
                Expr::HasRoles { roles, span }
            }
            Rule::has => {
                next(&mut inner, Rule::kw_has, input)?;
                let key = self.key(next(&mut inner, Rule::key, input)?);
                Expr::Has { key, span }
            }
            Rule::all => Expr::All { span },
            other => {
                return Err(self.error(
                    ErrorKind::Syntax {
                        expected: format!("a clause, not {other:?} (internal parser error)"),
                        found: describe_found(input, span.start as usize),
                    },
                    span,
                ))
            }
        })
    }

    fn key(&self, pair: Pair<'_, Rule>) -> Key {
        Key {
            name: pair.as_str().to_owned(),
            span: span_of(&pair),
        }
    }

    fn value(&self, pair: Pair<'_, Rule>) -> Result<Value, Error> {
        let span = span_of(&pair);
        let quoted = pair.as_str();
        let quote = quoted.chars().next().unwrap_or('"');
        match read_escaped(&quoted[1..], Some(quote)) {
            Ok((text, used)) if used == quoted.len() - 1 => Ok(Value { text, span }),
            _ => Err(self.error(ErrorKind::UnterminatedValue { quote }, span)),
        }
    }

    fn list(&self, pair: Pair<'_, Rule>) -> Result<Vec<Value>, Error> {
        let mut values = Vec::new();
        for p in pair.into_inner() {
            if p.as_rule() != Rule::value {
                continue;
            }
            if values.len() == self.limits.max_items() {
                return Err(self.error(
                    ErrorKind::TooManyItems {
                        max: self.limits.max_items(),
                    },
                    span_of(&p),
                ));
            }
            values.push(self.value(p)?);
        }
        Ok(values)
    }

    /// A `$Roles` value compared by `is`, `eq`, `ne` or `in` must be a
    /// roles string, read strictly; the error points at the opening quote.
    fn check_roles(&self, value: &Value) -> Result<(), Error> {
        match string_to_roles_strict(&value.text) {
            Ok(_) => Ok(()),
            Err(e) => Err(self.error(
                ErrorKind::InvalidRoles { error: e },
                Span::new(value.span.start, value.span.start + 1),
            )),
        }
    }
}

/// The pattern of `key matches value`: `key` is not `$Roles`, and the value
/// compiles as a regular expression within the limits. Either error is
/// reported at the value's opening quote.
pub(crate) fn matches_pattern(
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

/// Turns pest's error into ours: the same position, and a message in the
/// words of the language.
fn convert_error(e: &pest::error::Error<Rule>, input: &str) -> Error {
    let pos = match e.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    };
    let at = Span::new(pos as u32, pos as u32);
    let kind = match &e.variant {
        // The grammar raises no custom errors: pest's own limits are the
        // only source of them (see `ErrorKind::StackExhausted`).
        ErrorVariant::CustomError { .. } => ErrorKind::StackExhausted,
        ErrorVariant::ParsingError { positives, .. } => {
            if positives.contains(&Rule::value) {
                if let Some(kind) = unterminated_value_at(input, pos) {
                    return Error::new(kind, Span::new(pos as u32, input.len() as u32), input);
                }
            }
            ErrorKind::Syntax {
                expected: describe_expected(positives),
                found: describe_found(input, pos),
            }
        }
    };
    Error::new(kind, at, input)
}

/// The error for a quoted value at `pos` that never closes, if there is one.
fn unterminated_value_at(input: &str, pos: usize) -> Option<ErrorKind> {
    let quote = input[pos..]
        .chars()
        .next()
        .filter(|c| matches!(c, '"' | '\''))?;
    match read_escaped(&input[pos + 1..], Some(quote)) {
        Ok(_) => None,
        Err(QuoteError::Unterminated) => Some(ErrorKind::UnterminatedValue { quote }),
        Err(QuoteError::TrailingBackslash { .. }) => Some(ErrorKind::TrailingBackslash),
    }
}

/// What the grammar expected, in words, in a fixed order.
fn describe_expected(positives: &[Rule]) -> String {
    let clause_start = [Rule::key, Rule::kw_has, Rule::kw_hasroles, Rule::kw_all];
    let is_clause =
        positives.contains(&Rule::key) && positives.iter().any(|r| clause_start[1..].contains(r));
    let mut words: Vec<(u8, &str)> = Vec::new();
    for rule in positives {
        let rule_words: &[(u8, &str)] = match rule {
            r if is_clause && clause_start.contains(r) => &[(0, "a clause")],
            Rule::expr | Rule::unary => &[(0, "a clause")],
            Rule::key => &[(1, "a property key")],
            // One token rule reads all three (or both) keywords; name each.
            Rule::kw_compare => &[(2, "`is`"), (3, "`eq`"), (4, "`ne`"), (5, "`matches`")],
            Rule::kw_in => &[(6, "`in`")],
            Rule::value => &[(7, "a quoted value")],
            Rule::list => &[(8, "a list of quoted values")],
            Rule::lparen => &[(9, "`(`")],
            Rule::kw_not => &[(10, "`not`")],
            Rule::kw_has => &[(11, "`has`")],
            Rule::kw_hasroles => &[(12, "`hasRoles`")],
            Rule::kw_all => &[(13, "`all`")],
            Rule::lbracket => &[(14, "`[`")],
            Rule::lbrace => &[(15, "`{`")],
            Rule::comma => &[(16, "`,`")],
            Rule::rbracket => &[(17, "`]`")],
            Rule::rbrace => &[(18, "`}`")],
            Rule::kw_and_or => &[(19, "`and`"), (20, "`or`")],
            Rule::rparen => &[(21, "`)`")],
            Rule::EOI => &[(22, "end of input")],
            _ => &[(23, "a valid filter")],
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
pub(crate) fn describe_found(input: &str, pos: usize) -> String {
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
