//! The reference evaluator: the meaning of SPEC section 3, written as
//! plainly as possible, over plain string maps.
//!
//! It exists to check the compiled matcher against (tests and fuzzing
//! compare the two on generated filters and sessions), not for speed. It
//! walks the tree with a heap stack, so any tree is safe.

use std::collections::HashMap;

use crate::syntax::Expr;
use crate::util::properties::ROLES;
use crate::util::roles::string_to_roles;

/// True when a session with properties `get` matches `expr`.
///
/// `get(key)` returns the session's value for `key`. `$Roles` values (the
/// session's and the filter's) are read as roles strings; a session whose
/// `$Roles` does not read has no roles, and a filter value that does not read
/// (possible only in a tree built by hand) matches nothing.
///
/// ```
/// use std::collections::HashMap;
/// use session_filter::{reference, Filter};
///
/// let session: HashMap<String, String> =
///     [("$Country", "UK"), ("$Roles", "\"trader\"")].map(|(k, v)| (k.into(), v.into())).into();
/// let f = Filter::parse("$Country in ['UK','DE'] and hasRoles ['trader']")?;
/// assert!(reference::matches_map(f.expr(), &session));
/// # Ok::<(), session_filter::FilterError>(())
/// ```
pub fn matches<'s>(expr: &Expr, get: impl Fn(&str) -> Option<&'s str>) -> bool {
    let session_roles: Vec<String> = get(ROLES)
        .map(|s| string_to_roles(s).unwrap_or_default())
        .unwrap_or_default();
    let roles_equal = |value: &str| match string_to_roles(value) {
        Ok(set) => {
            set.len() == session_roles.len() && set.iter().all(|r| session_roles.contains(r))
        }
        Err(_) => false,
    };
    let clause = |e: &Expr| -> bool {
        match e {
            Expr::All { .. } => true,
            Expr::Is { key, value, .. } if key.name == ROLES => roles_equal(&value.text),
            Expr::Ne { key, value, .. } if key.name == ROLES => !roles_equal(&value.text),
            Expr::In { key, values, .. } if key.name == ROLES => {
                values.iter().any(|v| roles_equal(&v.text))
            }
            Expr::Is { key, value, .. } => get(&key.name) == Some(value.text.as_str()),
            Expr::Ne { key, value, .. } => get(&key.name) != Some(value.text.as_str()),
            Expr::In { key, values, .. } => {
                get(&key.name).is_some_and(|v| values.iter().any(|x| x.text == v))
            }
            Expr::Matches { key, pattern, .. } => {
                key.name != ROLES
                    && get(&key.name).is_some_and(|v| whole_match(pattern.as_str(), v))
            }
            Expr::Has { key, .. } => get(&key.name).is_some(),
            Expr::HasRoles { roles, .. } => roles.iter().all(|r| session_roles.contains(&r.text)),
            Expr::Not { .. } | Expr::And { .. } | Expr::Or { .. } => false,
        }
    };

    // Post-order: children's results are on `results` when a node combines.
    enum Step<'a> {
        Visit(&'a Expr),
        Combine(&'a Expr),
    }
    let mut steps = vec![Step::Visit(expr)];
    let mut results: Vec<bool> = Vec::new();
    while let Some(step) = steps.pop() {
        match step {
            Step::Visit(e)
                if e.children().is_empty() && !matches!(e, Expr::And { .. } | Expr::Or { .. }) =>
            {
                results.push(clause(e))
            }
            Step::Visit(e) => {
                steps.push(Step::Combine(e));
                steps.extend(e.children().iter().map(Step::Visit));
            }
            Step::Combine(e) => {
                let n = e.children().len();
                let operands = results.split_off(results.len().saturating_sub(n));
                results.push(match e {
                    Expr::Not { .. } => !operands.first().copied().unwrap_or(false),
                    Expr::And { .. } => operands.iter().all(|&b| b),
                    _ => operands.iter().any(|&b| b),
                });
            }
        }
    }
    results.pop().unwrap_or(false)
}

/// True when some match of the regular expression `pattern` covers the
/// whole of `value` (false for a pattern that does not compile, possible
/// only in a tree built by hand). Written apart from the engine's path: the
/// `regex` crate, compiled here each time, from the pattern's syntax tree
/// wrapped in `\A(?:…)\z` and printed back as text.
fn whole_match(pattern: &str, value: &str) -> bool {
    let Ok(hir) = crate::util::regex::anchored(pattern) else {
        return false;
    };
    regex::RegexBuilder::new(&hir.to_string())
        .size_limit(1 << 30)
        .build()
        .is_ok_and(|r| r.is_match(value))
}

/// [`matches()`] over a map of strings.
pub fn matches_map(expr: &Expr, session: &HashMap<String, String>) -> bool {
    matches(expr, |k| session.get(k).map(String::as_str))
}
