//! The pest grammar as an oracle: `grammar/filter.pest` run by pest, its
//! pairs built into the same tree and its errors put in the same words as
//! the hand-written parser's (`session_filter::syntax::oracle`). This is the
//! parser the library used before it was written by hand; the tests
//! (`tests/syntax_oracle.rs`) and the `oracle` fuzz target hold the two to
//! the same tree, or the same error.
//!
//! pest recurses once per `(`, so deep nesting is rejected first by the
//! library's own depth scan, as it was when pest was the parser.

use pest::error::{ErrorVariant, InputLocation};
use pest::iterators::{Pair, Pairs};
use pest::Parser as _;

use session_filter::syntax::oracle::{
    check_depth, describe_expected, describe_found, matches_pattern, roles_value_error,
    unterminated_value_at, Expected,
};
use session_filter::syntax::{Expr, Key, Span, Value};
use session_filter::{Filter, FilterError, FilterErrorKind, Limits};

// The path is tried from the manifest directory first, then from its `src`:
// `../grammar` is the grammar both from the fuzz crate and from the library.
#[derive(pest_derive::Parser)]
#[grammar = "../grammar/filter.pest"]
struct FilterParser;

/// Parses `input` with pest, within `limits`: what `Filter::parse_with` did
/// when pest was its parser.
pub fn parse_with(input: &str, limits: &Limits) -> Result<Filter, FilterError> {
    if input.len() > limits.max_len() {
        let mut at = limits.max_len();
        while !input.is_char_boundary(at) {
            at -= 1;
        }
        check_depth(&input[..at], limits.max_depth(), true)?;
        return Err(FilterError::new(
            FilterErrorKind::TooLong {
                len: input.len(),
                max: limits.max_len(),
            },
            Span::new(at as u32, input.len().min(u32::MAX as usize) as u32),
            input,
        ));
    }
    if input.trim_start_matches([' ', '\t', '\r', '\n']).is_empty() {
        let at = input.len() as u32;
        return Err(FilterError::new(
            FilterErrorKind::Empty,
            Span::new(at, at),
            input,
        ));
    }
    check_depth(input, limits.max_depth(), false)?;
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
        Some(expr) if builder.operands.is_empty() => Ok(Filter::from(expr)),
        _ => Err(internal_error(input, "one expression", 0)),
    }
}

/// [`parse_with`] the default limits.
pub fn parse(input: &str) -> Result<Filter, FilterError> {
    parse_with(input, &Limits::default())
}

fn span_of(pair: &Pair<'_, Rule>) -> Span {
    let s = pair.as_span();
    Span::new(s.start() as u32, s.end() as u32)
}

#[cold]
fn internal_error(input: &str, expected: &str, at: u32) -> FilterError {
    FilterError::new(
        FilterErrorKind::Syntax {
            expected: format!("{expected} (internal oracle error)"),
            found: describe_found(input, at as usize),
        },
        Span::new(at, at),
        input,
    )
}

fn next<'i>(
    pairs: &mut Pairs<'i, Rule>,
    rule: Rule,
    input: &str,
) -> Result<Pair<'i, Rule>, FilterError> {
    match pairs.next() {
        Some(pair) if pair.as_rule() == rule => Ok(pair),
        other => {
            let at = other.map_or(input.len() as u32, |p| span_of(&p).start);
            Err(internal_error(input, &format!("{rule:?}"), at))
        }
    }
}

struct Builder<'a> {
    input: &'a str,
    limits: &'a Limits,
    operands: Vec<Expr>,
}

impl Builder<'_> {
    fn expr(&mut self, pair: Pair<'_, Rule>, depth: usize) -> Result<(), FilterError> {
        let first = self.operands.len();
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

    fn group(&mut self, from: usize, is_and: bool) {
        if self.operands.len() != from + 1 {
            let operands: Vec<Expr> = self.operands.drain(from..).collect();
            self.operands.push(if is_and {
                Expr::and(operands)
            } else {
                Expr::or(operands)
            });
        }
    }

    fn unary(&mut self, pair: Pair<'_, Rule>, depth: usize) -> Result<(), FilterError> {
        let end = span_of(&pair).end;
        let max = self.limits.max_depth();
        let operands = self.operands.len();
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
                        return Err(FilterError::new(
                            FilterErrorKind::TooDeep { max },
                            span_of(&p),
                            self.input,
                        ));
                    }
                }
                Rule::rparen => {}
                Rule::expr => self.expr(p, here)?,
                _ => {
                    let clause = self.clause(p)?;
                    self.operands.push(clause);
                }
            }
        }
        if self.operands.len() != operands + 1 {
            return Err(internal_error(self.input, "a clause", end));
        }
        if let Some(mut expr) = self.operands.pop() {
            for &start in nots.iter().rev() {
                expr = Expr::Not {
                    expr: Box::new(expr),
                    span: Span::new(start, end),
                };
            }
            self.operands.push(expr);
        }
        Ok(())
    }

    fn clause(&self, pair: Pair<'_, Rule>) -> Result<Expr, FilterError> {
        let span = span_of(&pair);
        let rule = pair.as_rule();
        let mut inner = pair.into_inner();
        let input = self.input;
        Ok(match rule {
            Rule::key_clause => {
                let key = key(next(&mut inner, Rule::key, input)?);
                let op = inner.next();
                match op.as_ref().map(|p| p.as_rule()) {
                    Some(Rule::kw_in) => {
                        let values = self.list(next(&mut inner, Rule::list, input)?)?;
                        if key.name == "$Roles" {
                            for value in &values {
                                roles_value_error(value, input).map_or(Ok(()), Err)?;
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
                        if key.name == "$Roles" {
                            roles_value_error(&value, input).map_or(Ok(()), Err)?;
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
                let key = key(next(&mut inner, Rule::key, input)?);
                Expr::Has { key, span }
            }
            Rule::all => Expr::All { span },
            _ => return Err(internal_error(input, "a clause", span.start)),
        })
    }

    fn value(&self, pair: Pair<'_, Rule>) -> Result<Value, FilterError> {
        let span = span_of(&pair);
        let quoted = pair.as_str();
        match session_filter::unescape(&quoted[1..quoted.len() - 1]) {
            Ok(text) => Ok(Value { text, span }),
            Err(_) => Err(internal_error(self.input, "a value", span.start)),
        }
    }

    fn list(&self, pair: Pair<'_, Rule>) -> Result<Vec<Value>, FilterError> {
        let mut values = Vec::new();
        for p in pair.into_inner() {
            if p.as_rule() != Rule::value {
                continue;
            }
            if values.len() == self.limits.max_items() {
                return Err(FilterError::new(
                    FilterErrorKind::TooManyItems {
                        max: self.limits.max_items(),
                    },
                    span_of(&p),
                    self.input,
                ));
            }
            values.push(self.value(p)?);
        }
        Ok(values)
    }
}

fn key(pair: Pair<'_, Rule>) -> Key {
    Key {
        name: pair.as_str().to_owned(),
        span: span_of(&pair),
    }
}

/// pest's error in the parser's words: the same position and message.
fn convert_error(e: &pest::error::Error<Rule>, input: &str) -> FilterError {
    let pos = match e.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    };
    let at = Span::new(pos as u32, pos as u32);
    let kind = match &e.variant {
        ErrorVariant::CustomError { .. } => FilterErrorKind::StackExhausted,
        ErrorVariant::ParsingError { positives, .. } => {
            if positives.contains(&Rule::value) {
                if let Some(kind) = unterminated_value_at(input, pos) {
                    return FilterError::new(
                        kind,
                        Span::new(pos as u32, input.len() as u32),
                        input,
                    );
                }
            }
            let expected: Vec<Expected> = positives.iter().map(|&r| expected(r)).collect();
            FilterErrorKind::Syntax {
                expected: describe_expected(&expected),
                found: describe_found(input, pos),
            }
        }
    };
    FilterError::new(kind, at, input)
}

/// The grammar's rule by the parser's name for it.
fn expected(rule: Rule) -> Expected {
    match rule {
        Rule::expr => Expected::Expr,
        Rule::unary => Expected::Unary,
        Rule::key => Expected::Key,
        Rule::kw_compare => Expected::Compare,
        Rule::kw_in => Expected::In,
        Rule::value => Expected::Value,
        Rule::list => Expected::List,
        Rule::lparen => Expected::LParen,
        Rule::kw_not => Expected::Not,
        Rule::kw_has => Expected::Has,
        Rule::kw_hasroles => Expected::HasRoles,
        Rule::kw_all => Expected::All,
        Rule::lbracket => Expected::LBracket,
        Rule::lbrace => Expected::LBrace,
        Rule::comma => Expected::Comma,
        Rule::rbracket => Expected::RBracket,
        Rule::rbrace => Expected::RBrace,
        Rule::kw_and_or => Expected::AndOr,
        Rule::rparen => Expected::RParen,
        Rule::EOI => Expected::End,
        _ => Expected::Other,
    }
}
