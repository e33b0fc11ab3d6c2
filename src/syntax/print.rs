//! The canonical form (SPEC section 5), printed without recursion.
//!
//! Keywords in lower case (`hasRoles` as written), `eq` as `is`, single
//! spaces, values in double quotes via [`escape`](crate::escape), lists as
//! `[a, b]`, chains of one operator flat, and parentheses only where
//! precedence needs them: an `or` inside an `and`, an `and` or `or` inside a
//! `not`.

use std::fmt;

use super::ast::{Expr, Value};
use crate::util::escape::escape_into;

enum Task<'a> {
    Expr(&'a Expr),
    Text(&'static str),
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        let mut stack = vec![Task::Expr(self)];
        while let Some(task) = stack.pop() {
            let e = match task {
                Task::Text(t) => {
                    out.push_str(t);
                    continue;
                }
                Task::Expr(e) => e,
            };
            match e {
                Expr::All { .. } => out.push_str("all"),
                Expr::Is { key, value, .. } => clause(&mut out, &key.name, " is ", value),
                Expr::Ne { key, value, .. } => clause(&mut out, &key.name, " ne ", value),
                Expr::Matches { key, pattern, .. } => {
                    clause(&mut out, &key.name, " matches ", &pattern.value)
                }
                Expr::In { key, values, .. } => {
                    out.push_str(&key.name);
                    out.push_str(" in ");
                    list(&mut out, values);
                }
                Expr::Has { key, .. } => {
                    out.push_str("has ");
                    out.push_str(&key.name);
                }
                Expr::HasRoles { roles, .. } => {
                    out.push_str("hasRoles ");
                    list(&mut out, roles);
                }
                Expr::Not { expr, .. } => {
                    out.push_str("not ");
                    push_operand(
                        &mut stack,
                        expr,
                        matches!(**expr, Expr::And { .. } | Expr::Or { .. }),
                    );
                }
                Expr::And { exprs, .. } | Expr::Or { exprs, .. } => {
                    let is_and = matches!(e, Expr::And { .. });
                    let sep = if is_and { " and " } else { " or " };
                    for (i, operand) in exprs.iter().enumerate().rev() {
                        push_operand(
                            &mut stack,
                            operand,
                            is_and && matches!(operand, Expr::Or { .. }),
                        );
                        if i > 0 {
                            stack.push(Task::Text(sep));
                        }
                    }
                }
            }
        }
        f.write_str(&out)
    }
}

/// Schedules `e`, in parentheses when `parens` (tasks run in reverse order).
fn push_operand<'a>(stack: &mut Vec<Task<'a>>, e: &'a Expr, parens: bool) {
    if parens {
        stack.push(Task::Text(")"));
        stack.push(Task::Expr(e));
        stack.push(Task::Text("("));
    } else {
        stack.push(Task::Expr(e));
    }
}

fn clause(out: &mut String, key: &str, op: &str, value: &Value) {
    out.push_str(key);
    out.push_str(op);
    quoted(out, value);
}

fn list(out: &mut String, values: &[Value]) {
    out.push('[');
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        quoted(out, v);
    }
    out.push(']');
}

fn quoted(out: &mut String, value: &Value) {
    out.push('"');
    escape_into(&value.text, out);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parentheses_only_where_precedence_needs_them() {
        let a = || Expr::has("a");
        let b = || Expr::has("b");
        let e = Expr::and([Expr::or([a(), b()]), Expr::not(Expr::and([a(), b()]))]);
        assert_eq!(e.to_string(), "(has a or has b) and not (has a and has b)");
        let e = Expr::or([Expr::and([a(), b()]), Expr::not(Expr::not(a()))]);
        assert_eq!(e.to_string(), "has a and has b or not not has a");
    }

    #[test]
    fn values_print_escaped_in_double_quotes() {
        let e = Expr::and([
            Expr::is("k", "it's \"x\" \\"),
            Expr::is_in("c", ["", "a\nb"]),
            Expr::has_roles(["r"]),
            Expr::ne("k", ""),
        ]);
        assert_eq!(
            e.to_string(),
            "k is \"it\\'s \\\"x\\\" \\\\\" and c in [\"\", \"a\nb\"] and hasRoles [\"r\"] and k ne \"\""
        );
    }

    #[test]
    fn deep_trees_print_on_a_small_stack() {
        std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(|| {
                let mut e = Expr::all();
                for _ in 0..100_000 {
                    e = Expr::not(e);
                }
                let s = e.to_string();
                assert_eq!(s.len(), 100_000 * 4 + 3);
            })
            .expect("spawn")
            .join()
            .expect("no stack overflow");
    }
}
