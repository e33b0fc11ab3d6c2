//! The properties the fuzz targets check, written against the public API only.
//!
//! Each `check_*` function panics, naming the input, when a property fails.
//! The fuzz targets call them; `tests/fuzz_regressions.rs` in the main crate
//! includes this file, so a minimized crash replays there as a plain test
//! running exactly the same check.

#[cfg(fuzzing)]
pub mod gen;
mod matcher;
pub mod oracle;
mod standing;
pub mod watch_model;

pub use matcher::{check_differential, check_store, StoreOp};
pub use standing::check_standing;

use session_filter::syntax::{Expr, Span, Value};
use session_filter::{
    escape, roles_to_string, string_to_roles, unescape, Filter, FilterError, FilterErrorKind,
    Limits, RolesErrorKind,
};

/// The hand-written parser agrees with the pest grammar run as an oracle
/// (`oracle`), within `limits`: the same tree with the same spans, or an
/// error at the same position with the same message.
pub fn check_oracle(input: &str, limits: &Limits) {
    let hand = Filter::parse_with(input, limits);
    let pest = oracle::parse_with(input, limits);
    match (&hand, &pest) {
        (Ok(h), Ok(p)) => {
            assert_eq!(h, p, "{input:?}: the trees differ");
            assert_eq!(spans(h), spans(p), "{input:?}: the spans differ");
        }
        (Err(h), Err(p)) => {
            assert_eq!(
                (h.offset(), h.message()),
                (p.offset(), p.message()),
                "{input:?}: the errors differ"
            );
            assert_eq!(h.kind(), p.kind(), "{input:?}");
        }
        _ => panic!("{input:?}: hand {hand:?}, pest {pest:?}"),
    }
}

/// Every span of a filter's tree (nodes, keys, values), in pre-order.
fn spans(f: &Filter) -> Vec<Span> {
    let mut out = Vec::new();
    let mut stack = vec![f.expr()];
    while let Some(e) = stack.pop() {
        out.push(e.span());
        match e {
            Expr::Is { key, value, .. } | Expr::Ne { key, value, .. } => {
                out.extend([key.span, value.span]);
            }
            Expr::Matches { key, pattern, .. } => out.extend([key.span, pattern.value.span]),
            Expr::In { key, values, .. } => {
                out.push(key.span);
                out.extend(values.iter().map(|v| v.span));
            }
            Expr::Has { key, .. } => out.push(key.span),
            Expr::HasRoles { roles, .. } => out.extend(roles.iter().map(|v| v.span)),
            _ => {}
        }
        stack.extend(e.children().iter().rev());
    }
    out
}

/// The small limits the parse checks try besides the defaults.
pub fn small_limits() -> Limits {
    Limits::new()
        .with_max_depth(8)
        .with_max_items(4)
        .with_max_len(256)
}

/// Limits for text this module builds or prints: canonical text and escaped
/// values may be longer than the input they come from.
fn roomy_limits() -> Limits {
    Limits::new()
        .with_max_len(usize::MAX)
        .with_max_items(usize::MAX)
}

/// SPEC sections 2 and 5 on any text: parsing never panics; an error's
/// position is inside the input and agrees with its line and column; a parsed
/// filter's spans point at what they describe; each limit rejects exactly the
/// filters that exceed it.
pub fn check_parse(input: &str) {
    let full = Filter::parse(input);
    match &full {
        Ok(f) => {
            check_spans(input, f);
            check_limits_are_exact(input, f);
        }
        Err(e) => check_error(input, e),
    }

    // With small limits the parser accepts exactly the filters the defaults
    // accept that also fit the small limits; otherwise it names a limit that
    // really is exceeded.
    let limits = small_limits();
    let small = Filter::parse_with(input, &limits);
    if let Err(e) = &small {
        check_error(input, e);
    }
    match (&full, &small) {
        (Ok(f), Ok(g)) => assert_eq!(f, g, "{input:?}: the limits changed the tree"),
        (Err(e), Ok(_)) => {
            panic!("{input:?}: accepted within small limits but rejected by the defaults: {e}")
        }
        (Ok(f), Err(e)) => {
            let m = Measure::of(input, f);
            let exceeded = match e.kind() {
                FilterErrorKind::TooLong { max, .. } => input.len() > *max,
                FilterErrorKind::TooDeep { max } => m.depth > *max,
                FilterErrorKind::TooManyItems { max } => m.items > *max,
                _ => false,
            };
            assert!(
                exceeded,
                "{input:?} (len {}, depth {}, items {}) is valid, but with {limits:?} it fails: {e}",
                input.len(),
                m.depth,
                m.items
            );
        }
        (Err(_), Err(_)) => {}
    }
}

/// SPEC section 5: `parse(display(f)) == f`, and display is idempotent.
pub fn check_roundtrip(input: &str) {
    let Ok(f) = Filter::parse(input) else {
        return;
    };
    let printed = f.to_string();
    let g = match Filter::parse_with(&printed, &roomy_limits()) {
        Ok(g) => g,
        Err(e) => panic!(
            "{input:?} prints as {printed:?}, which does not parse: {e}\n{}",
            e.render()
        ),
    };
    assert_eq!(
        f, g,
        "{input:?} prints as {printed:?}, which parses differently"
    );
    let again = g.to_string();
    assert_eq!(printed, again, "{input:?}: display is not idempotent");
}

/// SPEC section 4 on any text `s`: `escape`/`unescape`, `string_to_roles`
/// against a plain reference, `roles_to_string` (first-seen order, each role
/// once, round trip), and the same strings used as filter values.
pub fn check_roles(s: &str) {
    // escape: a `\` before every `\`, `"` and `'`, nothing else.
    let escaped = escape(s);
    let mut expected = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | '"' | '\'') {
            expected.push('\\');
        }
        expected.push(c);
    }
    assert_eq!(escaped, expected, "escape({s:?})");
    assert_eq!(
        unescape(&escaped).as_deref(),
        Ok(s),
        "unescape(escape({s:?}))"
    );

    // Quoting the escaped text in either quote gives a value reading back as `s`.
    for q in ['"', '\''] {
        let text = format!("k is {q}{escaped}{q}");
        match Filter::parse_with(&text, &roomy_limits()) {
            Ok(f) => assert_eq!(f.expr(), &Expr::is("k", s), "{text:?}"),
            Err(e) => panic!("{text:?} does not parse: {e}"),
        }
    }

    // string_to_roles agrees with the reference, errors included.
    let got = string_to_roles(s).map_err(|e| (e.offset, e.kind));
    assert_eq!(got, reference_roles(s, false), "string_to_roles({s:?})");
    if let Ok(roles) = &got {
        let printed = roles_to_string(roles);
        assert_eq!(
            string_to_roles(&printed).as_ref(),
            Ok(roles),
            "string_to_roles(roles_to_string({roles:?})) via {printed:?}"
        );
    }

    // In a filter, a `$Roles` value is read strictly; a bad one is an error at
    // the value's opening quote (offset 10 in `$Roles is '…'`).
    let text = format!("$Roles is '{escaped}'");
    match (
        Filter::parse_with(&text, &roomy_limits()),
        reference_roles(s, true),
    ) {
        (Ok(_), Ok(_)) => {}
        (Err(e), Err(_)) => {
            assert!(
                matches!(e.kind(), FilterErrorKind::InvalidRoles { .. }) && e.offset() == 10,
                "{text:?}: expected an invalid-roles error at offset 10, got {e:?}"
            );
            check_error(&text, &e);
        }
        (Ok(_), Err(why)) => panic!("{text:?} parses, but the roles string is bad: {why:?}"),
        (Err(e), Ok(_)) => panic!("{text:?} is rejected, but the roles string is good: {e}"),
    }

    // The text split at commas as a list of roles: roles_to_string writes
    // each role once, in first-seen order, and reads back as that set.
    let list: Vec<&str> = s.split(',').collect();
    let mut unique: Vec<&str> = Vec::new();
    for r in &list {
        if !unique.contains(r) {
            unique.push(r);
        }
    }
    let printed = roles_to_string(&list);
    let expected = unique
        .iter()
        .map(|r| format!("\"{}\"", escape(r)))
        .collect::<Vec<_>>()
        .join(",");
    assert_eq!(printed, expected, "roles_to_string({list:?})");
    assert_eq!(
        string_to_roles(&printed),
        Ok(unique.iter().map(|r| r.to_string()).collect::<Vec<_>>()),
        "string_to_roles({printed:?})"
    );

    // The same list in a hasRoles clause keeps its order and duplicates.
    let items: Vec<String> = list.iter().map(|r| format!("'{}'", escape(r))).collect();
    let text = format!("hasRoles [{}]", items.join(", "));
    match Filter::parse_with(&text, &roomy_limits()) {
        Ok(f) => assert_eq!(f.expr(), &Expr::has_roles(list.iter().copied()), "{text:?}"),
        Err(e) => panic!("{text:?} does not parse: {e}"),
    }
}

/// A filter error's position is a character boundary inside the input, its
/// line and column agree with it, its message names what was expected and
/// what was found, and it renders.
pub fn check_error(input: &str, err: &FilterError) {
    let offset = err.offset();
    assert!(
        offset <= input.len(),
        "{input:?}: error offset {offset} is past the end ({}): {err:?}",
        input.len()
    );
    assert!(
        input.is_char_boundary(offset),
        "{input:?}: error offset {offset} is inside a character: {err:?}"
    );
    let Span { start, end } = err.span();
    assert!(
        start <= end && end as usize <= input.len(),
        "{input:?}: error span {start}..{end} is not inside the input: {err:?}"
    );
    let before = &input[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    assert_eq!(
        (err.line(), err.column()),
        (line, column),
        "{input:?}: line and column disagree with offset {offset}: {err:?}"
    );
    if let FilterErrorKind::Syntax { expected, .. } = err.kind() {
        assert!(
            !expected.contains("internal parser error"),
            "{input:?}: {err}"
        );
    }
    let message = err.message();
    assert!(
        message.starts_with("expected ") && message.contains(", found "),
        "{input:?}: the message must name what was expected and what was found: {message}"
    );
    assert_eq!(err.to_string(), format!("{line}:{column}: {message}"));
    let render = err.render();
    assert!(render.ends_with('^'), "{input:?}: render {render:?}");
}

/// Every span of a parsed filter is inside the input; keys and values point
/// at their own text.
fn check_spans(input: &str, f: &Filter) {
    let inside = |span: Span, what: &str| {
        let (s, e) = (span.start as usize, span.end as usize);
        assert!(
            s <= e && e <= input.len() && input.is_char_boundary(s) && input.is_char_boundary(e),
            "{input:?}: the span {span} of {what} is not a range of the input"
        );
        &input[s..e]
    };
    let value = |v: &Value| {
        let text = inside(v.span, "a value");
        let quote = text.chars().next();
        assert!(
            text.len() >= 2 && matches!(quote, Some('"' | '\'')) && text.ends_with(quote.unwrap()),
            "{input:?}: the span of the value {:?} holds {text:?}",
            v.text
        );
        assert_eq!(
            unescape(&text[1..text.len() - 1]).as_deref(),
            Ok(v.text.as_str()),
            "{input:?}: the span of a value holds {text:?}"
        );
    };
    let mut stack = vec![f.expr()];
    while let Some(e) = stack.pop() {
        let node = inside(e.span(), "a node").to_owned();
        match e {
            Expr::Is { key, value: v, .. } | Expr::Ne { key, value: v, .. } => {
                assert_eq!(inside(key.span, "a key"), key.name, "{input:?}");
                value(v);
            }
            Expr::Matches { key, pattern, .. } => {
                assert_eq!(inside(key.span, "a key"), key.name, "{input:?}");
                value(&pattern.value);
            }
            Expr::In { key, values, .. } => {
                assert_eq!(inside(key.span, "a key"), key.name, "{input:?}");
                values.iter().for_each(value);
            }
            Expr::Has { key, .. } => {
                assert_eq!(inside(key.span, "a key"), key.name, "{input:?}");
            }
            Expr::HasRoles { roles, .. } => roles.iter().for_each(value),
            _ => {}
        }
        for child in e.children() {
            let c = child.span();
            assert!(
                e.span().start <= c.start && c.end <= e.span().end,
                "{input:?}: a child's span {c} is outside its parent's {} ({node:?})",
                e.span()
            );
            stack.push(child);
        }
    }
}

/// The measures SPEC section 5's limits are about, taken from a parsed filter
/// and its text.
#[derive(Clone, Copy, Debug)]
pub struct Measure {
    /// The most `(` and `not` on the path to any clause.
    pub depth: usize,
    /// The most values in one `in` or `hasRoles` list.
    pub items: usize,
}

impl Measure {
    /// Measures `f`, parsed from `input`. Parentheses leave no node, so they
    /// are counted in the text: outside values, every `(` and `)` is one (keys
    /// cannot hold them), and a clause is inside the groups open before it.
    pub fn of(input: &str, f: &Filter) -> Measure {
        let mut values: Vec<Span> = Vec::new();
        let mut clauses: Vec<(usize, usize)> = Vec::new(); // (start, nots above)
        let mut items = 0;
        let mut stack = vec![(f.expr(), 0usize)];
        while let Some((e, nots)) = stack.pop() {
            match e {
                Expr::Not { expr, .. } => stack.push((expr, nots + 1)),
                Expr::And { exprs, .. } | Expr::Or { exprs, .. } => {
                    stack.extend(exprs.iter().map(|c| (c, nots)));
                }
                _ => {
                    clauses.push((e.span().start as usize, nots));
                    match e {
                        Expr::Is { value, .. } | Expr::Ne { value, .. } => values.push(value.span),
                        Expr::Matches { pattern, .. } => values.push(pattern.value.span),
                        Expr::In { values: vs, .. } | Expr::HasRoles { roles: vs, .. } => {
                            items = items.max(vs.len());
                            values.extend(vs.iter().map(|v| v.span));
                        }
                        _ => {}
                    }
                }
            }
        }
        values.sort();
        clauses.sort();

        let bytes = input.as_bytes();
        let (mut open, mut depth, mut i) = (0usize, 0usize, 0usize);
        let (mut next_value, mut next_clause) = (values.iter().peekable(), clauses.iter());
        let mut clause = next_clause.next();
        while let Some(&(at, nots)) = clause {
            if i >= at {
                depth = depth.max(open + nots);
                clause = next_clause.next();
                continue;
            }
            if let Some(v) = next_value.next_if(|v| v.start as usize == i) {
                i = v.end as usize;
                continue;
            }
            match bytes[i] {
                b'(' => open += 1,
                b')' => open = open.saturating_sub(1),
                _ => {}
            }
            i += 1;
        }
        Measure { depth, items }
    }
}

/// Each limit accepts a filter exactly at its measure and rejects it, naming
/// that limit, one below.
fn check_limits_are_exact(input: &str, f: &Filter) {
    let m = Measure::of(input, f);
    let defaults = Limits::new();
    assert!(
        m.depth <= defaults.max_depth() && m.items <= defaults.max_items(),
        "{input:?} parses with the default limits but measures {m:?}"
    );

    let accepts = |limits: Limits, what: &str| match Filter::parse_with(input, &limits) {
        Ok(g) => assert_eq!(&g, f, "{input:?}: the {what} limit changed the tree"),
        Err(e) => panic!("{input:?} ({m:?}) is rejected with {limits:?}: {e}"),
    };
    let rejects = |limits: Limits, want: FilterErrorKind| match Filter::parse_with(input, &limits) {
        Ok(_) => panic!("{input:?} ({m:?}) is accepted with {limits:?}; expected {want:?}"),
        Err(e) => {
            check_error(input, &e);
            assert_eq!(
                e.kind(),
                &want,
                "{input:?} ({m:?}) with {limits:?}: {e}\n{}",
                e.render()
            );
        }
    };

    accepts(defaults.with_max_depth(m.depth), "depth");
    if m.depth > 0 {
        let max = m.depth - 1;
        rejects(
            defaults.with_max_depth(max),
            FilterErrorKind::TooDeep { max },
        );
    }
    if m.items > 0 {
        accepts(defaults.with_max_items(m.items), "item");
        let max = m.items - 1;
        rejects(
            defaults.with_max_items(max),
            FilterErrorKind::TooManyItems { max },
        );
    }
    accepts(defaults.with_max_len(input.len()), "length");
    let max = input.len() - 1;
    rejects(
        defaults.with_max_len(max),
        FilterErrorKind::TooLong {
            len: input.len(),
            max,
        },
    );
}

/// SPEC section 5 on a filter cut short: exceeding only the length limit,
/// wherever it falls, gives the length error. The other limits are set as
/// tight as the filter allows, so a depth counted wrongly on the cut text
/// shows; the cuts are the ends of words (up to 32 of them).
pub fn check_length_cuts(input: &str) {
    let Ok(f) = Filter::parse(input) else {
        return;
    };
    let m = Measure::of(input, &f);
    let tight = Limits::new()
        .with_max_depth(m.depth)
        .with_max_items(m.items);
    let bytes = input.as_bytes();
    let ends: Vec<usize> = (1..input.len())
        .filter(|&i| bytes[i].is_ascii_whitespace() && !bytes[i - 1].is_ascii_whitespace())
        .collect();
    for &max in ends.iter().step_by(ends.len() / 32 + 1) {
        let want = FilterErrorKind::TooLong {
            len: input.len(),
            max,
        };
        match Filter::parse_with(input, &tight.with_max_len(max)) {
            Ok(_) => panic!("{input:?} is accepted with max_len {max}"),
            Err(e) => {
                check_error(input, &e);
                assert_eq!(
                    e.kind(),
                    &want,
                    "{input:?} ({m:?}) cut at {max} bytes, {:?}: {e}",
                    &input[..max]
                );
            }
        }
    }
}

/// SPEC section 4's `string_to_roles`, written out plainly as the oracle:
/// the roles in first-seen order, or the error's offset (the role's opening
/// quote, or the stray character when `strict`) and kind.
pub fn reference_roles(s: &str, strict: bool) -> Result<Vec<String>, (usize, RolesErrorKind)> {
    let mut roles: Vec<String> = Vec::new();
    let mut chars = s.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' | '\'' => {
                let mut role = String::new();
                loop {
                    match chars.next() {
                        None => return Err((at, RolesErrorKind::Unterminated { quote: c })),
                        Some((_, '\\')) => match chars.next() {
                            None => return Err((at, RolesErrorKind::TrailingBackslash)),
                            Some((_, x)) => role.push(x),
                        },
                        Some((_, x)) if x == c => break,
                        Some((_, x)) => role.push(x),
                    }
                }
                if !roles.contains(&role) {
                    roles.push(role);
                }
            }
            ' ' | '\t' | '\r' | '\n' | ',' | '[' | ']' => {}
            _ if strict => return Err((at, RolesErrorKind::Unexpected { found: c })),
            _ => {}
        }
    }
    Ok(roles)
}
