//! The abstract syntax tree of a filter.
//!
//! The tree is normalised (SPEC section 5): `and` and `or` are n-ary and flat,
//! parentheses leave no node, and `eq` is read as `is`. Every node carries the
//! [`Span`] of the source text it came from; equality ignores spans, so a
//! parsed filter equals the same filter parsed from its canonical form.
//!
//! Nothing here recurses on the shape of the tree: equality and drop walk it
//! with a heap stack, so a tree of any depth built by hand is safe to compare
//! and to drop.

use std::fmt;

/// A byte range `start..end` of the filter text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    /// Byte offset of the first byte.
    pub start: u32,
    /// Byte offset one past the last byte.
    pub end: u32,
}

impl Span {
    /// A span from `start` to `end` (byte offsets).
    pub const fn new(start: u32, end: u32) -> Span {
        Span { start, end }
    }

    /// The span covering both `self` and `other`.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

/// A property key as written in a filter: any non-empty run of characters
/// other than whitespace, quotes and parentheses.
#[derive(Clone, Debug)]
pub struct Key {
    /// The key, exactly as written.
    pub name: String,
    /// Where the key was written (default for keys built by hand).
    pub span: Span,
}

impl Key {
    /// A key with an empty span, for building filters by hand.
    ///
    /// The name is not checked here; a filter holding a key that the grammar
    /// cannot read prints text that does not parse back. Use
    /// [`is_filter_key`] to check a name first.
    pub fn new(name: impl Into<String>) -> Key {
        Key {
            name: name.into(),
            span: Span::default(),
        }
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.name == other.name
    }
}
impl Eq for Key {}

/// True when `name` can be written as a key in a filter: non-empty, with no
/// whitespace (space, tab, CR, LF), quote or parenthesis.
///
/// ```
/// use session_filter::syntax::is_filter_key;
/// assert!(is_filter_key("$Country"));
/// assert!(is_filter_key("weird[key]"));
/// assert!(!is_filter_key("two words"));
/// assert!(!is_filter_key(""));
/// ```
pub fn is_filter_key(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(crate::util::properties::is_key_forbidden)
}

/// A value: the text between the quotes, with escapes already removed.
#[derive(Clone, Debug)]
pub struct Value {
    /// The unescaped text.
    pub text: String,
    /// Where the value was written, quotes included (default when built by hand).
    pub span: Span,
}

impl Value {
    /// A value with an empty span, for building filters by hand.
    pub fn new(text: impl Into<String>) -> Value {
        Value {
            text: text.into(),
            span: Span::default(),
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        self.text == other.text
    }
}
impl Eq for Value {}

/// The regular expression of a `matches` clause: the value as written
/// (unescaped), and, once parsed, the regex compiled from it.
///
/// The parser compiles each regular expression once, anchored at both ends,
/// and a [`Program`](crate::Program) compiled from the filter shares that
/// compiled form; a pattern built by hand ([`Pattern::new`]) is compiled by
/// the program, within the default [`Limits`](crate::Limits). Equality
/// compares the text only.
#[derive(Clone, Debug)]
pub struct Pattern {
    /// The regular expression's text (the value after unescaping).
    pub value: Value,
    regex: Option<std::sync::Arc<crate::util::regex::Regex>>,
}

impl Pattern {
    /// A pattern from its text, not yet compiled (for building filters by
    /// hand; the program compiles it, and rejects one that does not compile).
    pub fn new(text: impl Into<String>) -> Pattern {
        Pattern {
            value: Value::new(text),
            regex: None,
        }
    }

    /// A parsed pattern with its compiled regex.
    pub(crate) fn compiled(value: Value, regex: crate::util::regex::Regex) -> Pattern {
        Pattern {
            value,
            regex: Some(std::sync::Arc::new(regex)),
        }
    }

    /// The text of the regular expression.
    pub fn as_str(&self) -> &str {
        &self.value.text
    }

    /// The compiled regex, if the parser compiled it.
    pub(crate) fn regex(&self) -> Option<&std::sync::Arc<crate::util::regex::Regex>> {
        self.regex.as_ref()
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.value == other.value
    }
}
impl Eq for Pattern {}

/// A filter expression.
///
/// Build one with [`Filter::parse`](crate::Filter::parse), or by hand with the
/// constructors ([`Expr::and`], [`Expr::or`], [`Expr::not`], [`Expr::is`], …),
/// which keep the tree normalised.
#[derive(Clone, Debug)]
pub enum Expr {
    /// `all`: true for every session.
    All {
        /// Source span.
        span: Span,
    },
    /// `key is value` (also written `key eq value`).
    Is {
        /// The property compared.
        key: Key,
        /// The value it must equal.
        value: Value,
        /// Source span.
        span: Span,
    },
    /// `key ne value`: not `key is value`.
    Ne {
        /// The property compared.
        key: Key,
        /// The value it must not equal.
        value: Value,
        /// Source span.
        span: Span,
    },
    /// `key matches "regex"`: the key is present and its whole value
    /// matches the regular expression.
    Matches {
        /// The property matched.
        key: Key,
        /// The regular expression.
        pattern: Pattern,
        /// Source span.
        span: Span,
    },
    /// `key in [v1, …]`.
    In {
        /// The property compared.
        key: Key,
        /// The values, in the order written, duplicates kept.
        values: Vec<Value>,
        /// Source span.
        span: Span,
    },
    /// `has key`.
    Has {
        /// The property that must be present.
        key: Key,
        /// Source span.
        span: Span,
    },
    /// `hasRoles [r1, …]`.
    HasRoles {
        /// The roles that must all be present, in the order written.
        roles: Vec<Value>,
        /// Source span.
        span: Span,
    },
    /// `not e`.
    Not {
        /// The negated expression.
        expr: Box<Expr>,
        /// Source span.
        span: Span,
    },
    /// `e1 and e2 and …`: two or more operands, none of them an `And`.
    And {
        /// The operands.
        exprs: Vec<Expr>,
        /// Source span.
        span: Span,
    },
    /// `e1 or e2 or …`: two or more operands, none of them an `Or`.
    Or {
        /// The operands.
        exprs: Vec<Expr>,
        /// Source span.
        span: Span,
    },
}

impl Expr {
    /// `all`.
    pub fn all() -> Expr {
        Expr::All {
            span: Span::default(),
        }
    }

    /// `key is value`.
    pub fn is(key: impl Into<String>, value: impl Into<String>) -> Expr {
        Expr::Is {
            key: Key::new(key),
            value: Value::new(value),
            span: Span::default(),
        }
    }

    /// `key ne value`.
    pub fn ne(key: impl Into<String>, value: impl Into<String>) -> Expr {
        Expr::Ne {
            key: Key::new(key),
            value: Value::new(value),
            span: Span::default(),
        }
    }

    /// `key matches "regex"` (compiled when the filter is compiled into a
    /// [`Program`](crate::Program), which rejects a regex that does not
    /// compile).
    pub fn matches(key: impl Into<String>, regex: impl Into<String>) -> Expr {
        Expr::Matches {
            key: Key::new(key),
            pattern: Pattern::new(regex),
            span: Span::default(),
        }
    }

    /// `key in [values…]`.
    pub fn is_in<I, S>(key: impl Into<String>, values: I) -> Expr
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Expr::In {
            key: Key::new(key),
            values: values.into_iter().map(Value::new).collect(),
            span: Span::default(),
        }
    }

    /// `has key`.
    pub fn has(key: impl Into<String>) -> Expr {
        Expr::Has {
            key: Key::new(key),
            span: Span::default(),
        }
    }

    /// `hasRoles [roles…]`.
    pub fn has_roles<I, S>(roles: I) -> Expr
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Expr::HasRoles {
            roles: roles.into_iter().map(Value::new).collect(),
            span: Span::default(),
        }
    }

    /// `not expr`.
    #[allow(clippy::should_implement_trait)]
    pub fn not(expr: Expr) -> Expr {
        let span = expr.span();
        Expr::Not {
            expr: Box::new(expr),
            span,
        }
    }

    /// The conjunction of `exprs`, flattened: nested `And`s are spliced in,
    /// a single operand is returned as is, and no operands give `all`.
    pub fn and(exprs: impl IntoIterator<Item = Expr>) -> Expr {
        Self::nary(exprs.into_iter().collect(), true)
    }

    /// The disjunction of `exprs`, flattened: nested `Or`s are spliced in, a
    /// single operand is returned as is, and no operands give `not all`.
    pub fn or(exprs: impl IntoIterator<Item = Expr>) -> Expr {
        Self::nary(exprs.into_iter().collect(), false)
    }

    /// [`Expr::and`] (`is_and`) or [`Expr::or`] of `exprs`. The vector
    /// becomes the node's own unless an operand has to be spliced in.
    pub(crate) fn nary(mut exprs: Vec<Expr>, is_and: bool) -> Expr {
        let splices = |e: &Expr| match e {
            Expr::And { .. } => is_and,
            Expr::Or { .. } => !is_and,
            _ => false,
        };
        if exprs.iter().any(splices) {
            let mut flat = Vec::with_capacity(exprs.len());
            for mut e in exprs {
                match &mut e {
                    Expr::And { exprs, .. } if is_and => flat.append(exprs),
                    Expr::Or { exprs, .. } if !is_and => flat.append(exprs),
                    _ => flat.push(e),
                }
            }
            exprs = flat;
        }
        match exprs.len() {
            0 if is_and => Expr::all(),
            0 => Expr::not(Expr::all()),
            1 => exprs.pop().unwrap_or_else(Expr::all),
            _ => {
                let span = exprs
                    .iter()
                    .map(Expr::span)
                    .reduce(Span::to)
                    .unwrap_or_default();
                if is_and {
                    Expr::And { exprs, span }
                } else {
                    Expr::Or { exprs, span }
                }
            }
        }
    }

    /// The source span of this expression.
    pub fn span(&self) -> Span {
        match self {
            Expr::All { span }
            | Expr::Is { span, .. }
            | Expr::Ne { span, .. }
            | Expr::Matches { span, .. }
            | Expr::In { span, .. }
            | Expr::Has { span, .. }
            | Expr::HasRoles { span, .. }
            | Expr::Not { span, .. }
            | Expr::And { span, .. }
            | Expr::Or { span, .. } => *span,
        }
    }

    /// The direct sub-expressions (empty for clauses).
    pub fn children(&self) -> &[Expr] {
        match self {
            Expr::Not { expr, .. } => std::slice::from_ref(&**expr),
            Expr::And { exprs, .. } | Expr::Or { exprs, .. } => exprs,
            _ => &[],
        }
    }

    /// The depth of the tree: 1 for a clause, one more for each level of
    /// `not`, `and` and `or` above it. Computed without recursion.
    pub fn depth(&self) -> usize {
        let mut max = 0;
        let mut stack = vec![(self, 1usize)];
        while let Some((e, d)) = stack.pop() {
            max = max.max(d);
            stack.extend(e.children().iter().map(|c| (c, d + 1)));
        }
        max
    }

    /// True when both nodes have the same kind and the same clause contents
    /// (keys, values); children are not compared.
    fn same_node(&self, other: &Expr) -> bool {
        match (self, other) {
            (Expr::All { .. }, Expr::All { .. }) => true,
            (
                Expr::Is {
                    key: k1, value: v1, ..
                },
                Expr::Is {
                    key: k2, value: v2, ..
                },
            )
            | (
                Expr::Ne {
                    key: k1, value: v1, ..
                },
                Expr::Ne {
                    key: k2, value: v2, ..
                },
            ) => k1 == k2 && v1 == v2,
            (
                Expr::Matches {
                    key: k1,
                    pattern: p1,
                    ..
                },
                Expr::Matches {
                    key: k2,
                    pattern: p2,
                    ..
                },
            ) => k1 == k2 && p1 == p2,
            (
                Expr::In {
                    key: k1,
                    values: v1,
                    ..
                },
                Expr::In {
                    key: k2,
                    values: v2,
                    ..
                },
            ) => k1 == k2 && v1 == v2,
            (Expr::Has { key: k1, .. }, Expr::Has { key: k2, .. }) => k1 == k2,
            (Expr::HasRoles { roles: r1, .. }, Expr::HasRoles { roles: r2, .. }) => r1 == r2,
            (Expr::Not { .. }, Expr::Not { .. }) => true,
            (Expr::And { exprs: a, .. }, Expr::And { exprs: b, .. })
            | (Expr::Or { exprs: a, .. }, Expr::Or { exprs: b, .. }) => a.len() == b.len(),
            _ => false,
        }
    }
}

/// Structural equality that ignores spans, without recursion.
impl PartialEq for Expr {
    fn eq(&self, other: &Expr) -> bool {
        let mut stack = vec![(self, other)];
        while let Some((a, b)) = stack.pop() {
            if !a.same_node(b) {
                return false;
            }
            stack.extend(a.children().iter().zip(b.children()));
        }
        true
    }
}
impl Eq for Expr {}

/// Dropping walks the tree with a heap stack, so a hand-built chain of a
/// million `not`s does not overflow the thread's stack.
impl Drop for Expr {
    fn drop(&mut self) {
        if self.children().is_empty() {
            return;
        }
        let mut stack = Vec::new();
        take_children(self, &mut stack);
        while let Some(mut e) = stack.pop() {
            take_children(&mut e, &mut stack);
            // `e` now has no children and drops without recursing.
        }
    }
}

fn take_children(e: &mut Expr, into: &mut Vec<Expr>) {
    match e {
        Expr::Not { expr, .. } => into.push(std::mem::replace(&mut **expr, Expr::all())),
        Expr::And { exprs, .. } | Expr::Or { exprs, .. } => into.append(exprs),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hot_types_stay_small() {
        assert_eq!(std::mem::size_of::<Span>(), 8);
        assert!(
            std::mem::size_of::<Expr>() <= 80,
            "{}",
            std::mem::size_of::<Expr>()
        );
    }

    #[test]
    fn equality_ignores_spans() {
        let mut a = Expr::is("k", "v");
        if let Expr::Is { span, key, .. } = &mut a {
            *span = Span::new(3, 9);
            key.span = Span::new(3, 4);
        }
        assert_eq!(a, Expr::is("k", "v"));
        assert_ne!(a, Expr::is("k", "w"));
        assert_ne!(a, Expr::ne("k", "v"));
    }

    #[test]
    fn constructors_flatten() {
        let e = Expr::and([Expr::has("a"), Expr::and([Expr::has("b"), Expr::has("c")])]);
        assert_eq!(e.children().len(), 3);
        assert_eq!(Expr::or([Expr::has("a")]), Expr::has("a"));
        assert_eq!(Expr::and([]), Expr::all());
        assert_eq!(Expr::or([]), Expr::not(Expr::all()));
        // An `or` inside an `and` stays a child.
        let e = Expr::and([Expr::has("a"), Expr::or([Expr::has("b"), Expr::has("c")])]);
        assert_eq!(e.children().len(), 2);
        assert_eq!(e.depth(), 3);
    }

    #[test]
    fn deep_trees_compare_and_drop_on_a_small_stack() {
        std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(|| {
                let build = || {
                    let mut e = Expr::has("x");
                    for i in 0..200_000 {
                        e = if i % 2 == 0 {
                            Expr::not(e)
                        } else {
                            Expr::and([e, Expr::has("y")])
                        };
                    }
                    e
                };
                let (a, b) = (build(), build());
                assert!(a == b);
                assert_eq!(a.depth(), 200_001);
                drop(a);
                drop(b);
            })
            .expect("spawn")
            .join()
            .expect("no stack overflow");
    }
}
