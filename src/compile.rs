//! [`Expr`] → [`Program`]: intern the strings, pick a test for each clause,
//! and lay the boolean structure out as jumps.
//!
//! Code generation is the classic "jump to true / jump to false" scheme: a
//! clause becomes one op whose targets are the labels it was given; `not`
//! swaps the labels; `a and b` sends `a`'s true exit to `b` and its false
//! exit to the `and`'s false label; `or` the other way round. `all` emits
//! nothing and is just its true label, which folds `all`, `not all` and what
//! they make constant. Operands are generated last to first, so every label
//! an op jumps to already exists; reversing the list at the end makes every
//! jump go forward. The walk uses a heap stack, never recursion.
//!
//! Two rewrites keep programs short: inside an `or`, `k is a`, `k eq b` and
//! `k in [c]` on the same key merge into one `k in [a, b, c]`; inside an
//! `and`, `k ne a` and `k ne b` merge into one negated `in`.

use std::sync::Arc;

use ahash::AHashMap;
use smallvec::SmallVec;

use crate::error::Error;
use crate::intern::{Interned, Sym};
use crate::session::fixed_slot;
use crate::syntax::{Expr, Filter, Limits, Value};
use crate::util::properties::ROLES;
use crate::util::regex::Regex;
use crate::util::roles::string_to_roles_strict;
use crate::vm::{Label, Op, Pool, Program, Test};

const MATCH: u32 = Label::MATCH;
const FAIL: u32 = Label::FAIL;
const MAX_OPS: usize = Label::MAX_OPS;

impl Program {
    /// Parses and compiles a filter with the default [`Limits`].
    pub fn compile(filter: &str) -> Result<Program, Error> {
        Program::compile_with(filter, &Limits::default())
    }

    /// Parses and compiles a filter within `limits`.
    pub fn compile_with(filter: &str, limits: &Limits) -> Result<Program, Error> {
        Program::from_parsed(Filter::parse_with(filter, limits)?)
    }

    /// Compiles a parsed filter (the program keeps a copy of it, for
    /// [`Display`](std::fmt::Display)).
    ///
    /// Fails only for filters built by hand that the parser would reject (a
    /// `$Roles` value that is not a roles string), or when the interner or
    /// the program is full.
    ///
    /// ```
    /// use session_filter::{Filter, Program};
    /// let filter = Filter::parse("has Tier")?;
    /// let program = Program::new(&filter)?;
    /// assert_eq!(program.to_string(), "has Tier");
    /// // Or, giving the filter away:
    /// let program = Program::try_from(filter)?;
    /// # Ok::<(), session_filter::Error>(())
    /// ```
    pub fn new(filter: &Filter) -> Result<Program, Error> {
        Program::from_parsed(filter.clone())
    }

    /// [`Program::new`], keeping the filter without a copy.
    pub(crate) fn from_parsed(filter: Filter) -> Result<Program, Error> {
        // Room for a typical filter, so the vectors rarely grow.
        let mut c = Compiler {
            ops: Vec::with_capacity(8),
            syms: Vec::with_capacity(16),
            sets: Vec::new(),
            regexes: Vec::new(),
            held: Vec::with_capacity(16),
        };
        let entry = c.compile(filter.expr())?;
        Ok(Program::assemble(
            c.ops, entry, c.syms, c.sets, c.regexes, c.held, filter,
        ))
    }
}

impl TryFrom<Filter> for Program {
    type Error = Error;

    /// [`Program::new`], keeping the filter without a copy.
    fn try_from(filter: Filter) -> Result<Program, Error> {
        Program::from_parsed(filter)
    }
}

impl TryFrom<&Filter> for Program {
    type Error = Error;

    /// [`Program::new`].
    fn try_from(filter: &Filter) -> Result<Program, Error> {
        Program::new(filter)
    }
}

/// An operand of an `and`/`or` after merging: an expression, or a merged
/// membership test (negated for merged `ne`s).
enum Operand<'a> {
    Expr(&'a Expr),
    Test { test: Test, negated: bool },
}

enum Task<'a> {
    /// Generate `operand`, going to `t` when it holds and `f` when not; push
    /// its entry label.
    Gen(Operand<'a>, u32, u32),
    /// The label of the operand after these of an `and` (`is_and`) or `or`
    /// is on the result stack: generate the last of `operands` to go there
    /// when true (`and`) or false (`or`), and to `exit` otherwise.
    Chain {
        operands: Vec<Operand<'a>>,
        is_and: bool,
        exit: u32,
    },
}

struct Compiler {
    /// Ops in generation order (last operand first); reversed at the end.
    ops: Vec<Op>,
    syms: Vec<Sym>,
    sets: Vec<Pool>,
    /// The regexes of `matches` tests: the parser's, shared, not compiled
    /// again.
    regexes: Vec<Arc<Regex>>,
    held: Vec<Interned>,
}

impl Compiler {
    fn compile(&mut self, root: &Expr) -> Result<u32, Error> {
        let mut tasks: SmallVec<[Task<'_>; 8]> =
            smallvec::smallvec![Task::Gen(Operand::Expr(root), MATCH, FAIL)];
        let mut labels: SmallVec<[u32; 8]> = SmallVec::new();
        while let Some(task) = tasks.pop() {
            match task {
                Task::Gen(Operand::Test { test, negated }, t, f) => {
                    let (t, f) = if negated { (f, t) } else { (t, f) };
                    labels.push(self.emit(test, t, f)?);
                }
                Task::Gen(Operand::Expr(e), t, f) => match e {
                    Expr::All { .. } => labels.push(t),
                    Expr::Not { expr, .. } => tasks.push(Task::Gen(Operand::Expr(expr), f, t)),
                    Expr::And { exprs, .. } | Expr::Or { exprs, .. } => {
                        let is_and = matches!(e, Expr::And { .. });
                        let mut operands = self.merge(exprs, is_and)?;
                        // An `and` leaves early to `f`, an `or` to `t`.
                        let exit = if is_and { f } else { t };
                        match operands.pop() {
                            Some(last) => {
                                tasks.push(Task::Chain {
                                    operands,
                                    is_and,
                                    exit,
                                });
                                tasks.push(Task::Gen(last, t, f));
                            }
                            // No operands: `and` holds, `or` does not.
                            None => labels.push(if is_and { t } else { f }),
                        }
                    }
                    Expr::Ne { .. } => {
                        let test = self.clause(e)?;
                        labels.push(self.emit_or_fold(test, f, t)?);
                    }
                    clause => {
                        let test = self.clause(clause)?;
                        labels.push(self.emit_or_fold(test, t, f)?);
                    }
                },
                Task::Chain {
                    mut operands,
                    is_and,
                    exit,
                } => {
                    if let Some(prev) = operands.pop() {
                        let next = labels.pop().unwrap_or(FAIL);
                        let (t, f) = if is_and { (next, exit) } else { (exit, next) };
                        tasks.push(Task::Chain {
                            operands,
                            is_and,
                            exit,
                        });
                        tasks.push(Task::Gen(prev, t, f));
                    }
                }
            }
        }
        Ok(labels.pop().unwrap_or(FAIL))
    }

    fn emit(&mut self, test: Test, on_true: u32, on_false: u32) -> Result<u32, Error> {
        // A test that leads to the same place either way decides nothing
        // (`has a or all`): leave it out, so the program reads fewer keys
        // and folds to a constant where it can.
        if on_true == on_false {
            return Ok(on_true);
        }
        if self.ops.len() >= MAX_OPS {
            return Err(Error::ProgramTooLarge);
        }
        self.ops.push(Op {
            test,
            on_true,
            on_false,
        });
        Ok((self.ops.len() - 1) as u32)
    }

    /// Emits `test`, or just the label it always leads to (`None` is a test
    /// that always holds, such as `hasRoles` of no roles).
    fn emit_or_fold(&mut self, test: Option<Test>, t: u32, f: u32) -> Result<u32, Error> {
        match test {
            Some(test) => self.emit(test, t, f),
            None => Ok(t),
        }
    }

    /// The operands of an `and` (`is_and`) or `or`, with same-key `ne`s
    /// (in an `and`) or `is`/`in`s (in an `or`) merged into one test.
    fn merge<'a>(&mut self, exprs: &'a [Expr], is_and: bool) -> Result<Vec<Operand<'a>>, Error> {
        // The key `e` could merge on, and its values.
        let member = |e: &'a Expr| -> Option<(&'a str, &'a [Value])> {
            let (key, values) = match e {
                Expr::Ne { key, value, .. } if is_and => (key, std::slice::from_ref(value)),
                Expr::Is { key, value, .. } if !is_and => (key, std::slice::from_ref(value)),
                Expr::In { key, values, .. } if !is_and => (key, &values[..]),
                _ => return None,
            };
            (key.name != ROLES).then_some((key.name.as_str(), values))
        };
        let mut operands: Vec<Operand<'a>> = Vec::with_capacity(exprs.len());
        if exprs.len() <= 16 {
            // Few operands: compare keys pairwise, allocating nothing more.
            for (i, e) in exprs.iter().enumerate() {
                let Some((key, _)) = member(e) else {
                    operands.push(Operand::Expr(e));
                    continue;
                };
                let same = |x: &'a Expr| member(x).is_some_and(|(k, _)| k == key);
                if exprs[..i].iter().any(same) {
                    continue; // merged into the group of an earlier operand
                }
                if !exprs[i + 1..].iter().any(same) {
                    operands.push(Operand::Expr(e));
                    continue;
                }
                let values: SmallVec<[&str; 8]> = exprs[i..]
                    .iter()
                    .filter_map(|x| member(x).filter(|(k, _)| *k == key))
                    .flat_map(|(_, vs)| vs.iter().map(|v| v.text.as_str()))
                    .collect();
                let test = self.membership(key, &values)?;
                operands.push(Operand::Test {
                    test,
                    negated: is_and,
                });
            }
            return Ok(operands);
        }
        // Many operands: group by key in a map.
        let mut groups: AHashMap<&'a str, (usize, Vec<&'a str>)> = AHashMap::new();
        let mut slots: Vec<Option<Operand<'a>>> = Vec::with_capacity(exprs.len());
        for e in exprs {
            let Some((key, values)) = member(e) else {
                slots.push(Some(Operand::Expr(e)));
                continue;
            };
            let values = values.iter().map(|v| v.text.as_str());
            match groups.get_mut(key) {
                Some((_, all)) => all.extend(values),
                None => {
                    groups.insert(key, (slots.len(), values.collect()));
                    slots.push(None);
                }
            }
        }
        for (key, (at, values)) in groups {
            let test = self.membership(key, &values)?;
            slots[at] = Some(Operand::Test {
                test,
                negated: is_and,
            });
        }
        operands.extend(slots.into_iter().flatten());
        Ok(operands)
    }

    fn intern(&mut self, s: &str) -> Result<Sym, Error> {
        let held = Interned::new(s)?;
        let sym = held.sym();
        self.held.push(held);
        Ok(sym)
    }

    /// Interns `values` into the pool, sorted and distinct.
    fn pool(&mut self, values: &[&str]) -> Result<Pool, Error> {
        let mut syms: SmallVec<[Sym; 8]> = SmallVec::with_capacity(values.len());
        for v in values {
            syms.push(self.intern(v)?);
        }
        syms.sort_unstable();
        syms.dedup();
        self.pool_of(&syms)
    }

    fn pool_of(&mut self, syms: &[Sym]) -> Result<Pool, Error> {
        let start = u32::try_from(self.syms.len()).map_err(|_| Error::ProgramTooLarge)?;
        let len = u32::try_from(syms.len()).map_err(|_| Error::ProgramTooLarge)?;
        start.checked_add(len).ok_or(Error::ProgramTooLarge)?;
        self.syms.extend_from_slice(syms);
        Ok(Pool { start, len })
    }

    /// `key` equals one of `values` (not `$Roles`).
    fn membership(&mut self, key: &str, values: &[&str]) -> Result<Test, Error> {
        let pool = self.pool(values)?;
        let single = (pool.len == 1).then(|| self.syms[pool.start as usize]);
        Ok(match (fixed_slot(key), single) {
            (Some(slot), Some(value)) => Test::FixedEq {
                slot: slot as u8,
                value,
            },
            (Some(slot), None) => Test::FixedIn {
                slot: slot as u8,
                values: pool,
            },
            (None, Some(value)) => Test::OtherEq {
                key: self.intern(key)?,
                value,
            },
            (None, None) => Test::OtherIn {
                key: self.intern(key)?,
                values: pool,
            },
        })
    }

    /// A `$Roles` value as a pool of role ids, sorted and distinct.
    fn role_set(&mut self, value: &str) -> Result<Pool, Error> {
        // Read strictly, as the parser does: a filter built by hand gets the
        // same answer as its text would.
        let roles = string_to_roles_strict(value)?;
        let refs: SmallVec<[&str; 8]> = roles.iter().map(String::as_str).collect();
        self.pool(&refs)
    }

    /// The test of a clause (`ne` gives the test of `is`, for the caller to
    /// negate); `None` for a test that always holds.
    fn clause(&mut self, e: &Expr) -> Result<Option<Test>, Error> {
        Ok(Some(match e {
            Expr::Is { key, value, .. } | Expr::Ne { key, value, .. } if key.name == ROLES => {
                Test::RolesEq {
                    roles: self.role_set(&value.text)?,
                }
            }
            Expr::Is { key, value, .. } | Expr::Ne { key, value, .. } => {
                self.membership(&key.name, &[&value.text])?
            }
            Expr::In { key, values, .. } if key.name == ROLES => {
                let mut sets = Vec::with_capacity(values.len());
                for v in values {
                    sets.push(self.role_set(&v.text)?);
                }
                let start = u32::try_from(self.sets.len()).map_err(|_| Error::ProgramTooLarge)?;
                let len = u32::try_from(sets.len()).map_err(|_| Error::ProgramTooLarge)?;
                self.sets.extend(sets);
                Test::RolesIn {
                    sets: Pool { start, len },
                }
            }
            Expr::In { key, values, .. } => {
                let values: Vec<&str> = values.iter().map(|v| v.text.as_str()).collect();
                self.membership(&key.name, &values)?
            }
            Expr::Matches { key, pattern, .. } => {
                if key.name == ROLES {
                    return Err(Error::InvalidRegex(
                        "$Roles cannot be matched against a regular expression \
                         (roles are a set: use `hasRoles` or `$Roles is`)"
                            .into(),
                    ));
                }
                // A pattern built by hand has not been compiled yet.
                let regex = match pattern.regex() {
                    Some(regex) => regex.clone(),
                    None => Arc::new(
                        Regex::new(pattern.as_str(), Limits::DEFAULT_MAX_REGEX_SIZE)
                            .map_err(Error::InvalidRegex)?,
                    ),
                };
                let regex_id =
                    u32::try_from(self.regexes.len()).map_err(|_| Error::ProgramTooLarge)?;
                self.regexes.push(regex);
                match fixed_slot(&key.name) {
                    Some(slot) => Test::FixedMatches {
                        slot: slot as u8,
                        regex: regex_id,
                    },
                    None => Test::OtherMatches {
                        key: self.intern(&key.name)?,
                        regex: regex_id,
                    },
                }
            }
            Expr::Has { key, .. } => match fixed_slot(&key.name) {
                Some(slot) => Test::FixedHas { slot: slot as u8 },
                None => Test::OtherHas {
                    key: self.intern(&key.name)?,
                },
            },
            Expr::HasRoles { roles, .. } => {
                let values: Vec<&str> = roles.iter().map(|v| v.text.as_str()).collect();
                let pool = self.pool(&values)?;
                if pool.len == 0 {
                    return Ok(None);
                }
                Test::HasRoles { roles: pool }
            }
            // `all`, `not`, `and`, `or` are handled by the caller.
            _ => return Ok(None),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intern;

    fn explain(filter: &str) -> String {
        Program::compile(filter).unwrap().explain()
    }

    #[test]
    fn tests_that_decide_nothing_are_left_out() {
        assert_eq!(explain("has a or all"), "entry MATCH\n");
        assert_eq!(explain("not (has a and not all)"), "entry MATCH\n");
        assert_eq!(
            explain("(has a or all) and has b"),
            "entry 0\n0: has b ? MATCH : FAIL\n"
        );
    }

    #[test]
    fn jumps_go_forward_and_constants_fold() {
        assert_eq!(explain("all"), "entry MATCH\n");
        assert_eq!(explain("not all"), "entry FAIL\n");
        assert_eq!(explain("all and not all"), "entry FAIL\n");
        assert_eq!(explain("not all or all"), "entry MATCH\n");
        assert_eq!(
            explain("has x and all"),
            "entry 0\n0: has x ? MATCH : FAIL\n"
        );
        assert_eq!(
            explain("not not has x"),
            "entry 0\n0: has x ? MATCH : FAIL\n"
        );
        assert_eq!(
            explain("has a and (has b or not has c)"),
            "entry 0\n0: has a ? 1 : FAIL\n1: has b ? MATCH : 2\n2: has c ? FAIL : MATCH\n"
        );
    }

    #[test]
    fn same_key_alternatives_merge() {
        assert_eq!(
            explain("not (Department is 'Accounts' or Department is 'Payroll') and $Country in ['UK','DE']")
                .lines()
                .count(),
            3
        );
        let p = explain("k ne 'a' and k ne 'b'");
        assert_eq!(p.lines().count(), 2, "{p}");
        assert!(p.contains("? FAIL : MATCH"), "{p}");
        let p = explain("$Country is 'UK' or $Country is 'UK'");
        assert!(p.contains("$Country is \"UK\""), "{p}");
    }

    #[test]
    fn roles_compile_to_set_tests() {
        let p = explain(
            "$Roles is '\"a\",\"b\",\"a\"' or $Roles in ['', '\"c\"'] or hasRoles ['x' 'x']",
        );
        assert!(p.contains("$Roles is the set ["), "{p}");
        assert!(p.contains("$Roles is one of the sets [[\"c\"], []]"), "{p}");
        assert!(p.contains("hasRoles [\"x\"]"), "{p}");
    }

    #[test]
    fn dropped_programs_give_back_their_strings() {
        let value = "compile-test-only-value-ε";
        let p = Program::compile(&format!("k is '{value}' or hasRoles ['{value}-r']")).unwrap();
        assert!(intern::lookup(value).is_some());
        let q = p.clone();
        drop(p);
        assert!(intern::lookup(value).is_some());
        drop(q);
        assert_eq!(intern::lookup(value), None);
        assert_eq!(intern::lookup(&format!("{value}-r")), None);
    }

    #[test]
    fn a_regex_is_compiled_once_and_shared_by_the_programs_of_a_filter() {
        let filter = Filter::parse("Tier matches 'gold|silver' or Name matches 'x.*'").unwrap();
        let Expr::Or { exprs, .. } = filter.expr() else {
            panic!("{filter:?}");
        };
        let Expr::Matches { pattern, .. } = &exprs[0] else {
            panic!("{filter:?}");
        };
        let parsed = Arc::clone(pattern.regex().expect("compiled by the parser"));
        let a = Program::new(&filter).unwrap();
        let b = Program::new(&filter).unwrap();
        // This handle, the filter, and each program twice (its copy of the
        // filter, its table of regexes) hold the one compiled regex.
        assert_eq!(Arc::strong_count(&parsed), 6);
        drop((a, b, filter));
        assert_eq!(Arc::strong_count(&parsed), 1);
    }

    #[test]
    fn hand_built_invalid_roles_is_an_error_not_a_panic() {
        let f = Filter::from(Expr::is("$Roles", "admin\"x"));
        assert!(matches!(Program::new(&f), Err(Error::InvalidRoles(_))));
        let f = Filter::from(Expr::matches("k", "(a"));
        assert!(matches!(Program::new(&f), Err(Error::InvalidRegex(_))));
        let f = Filter::from(Expr::matches("$Roles", "a"));
        assert!(matches!(Program::new(&f), Err(Error::InvalidRegex(_))));
        let p = Program::new(&Filter::from(Expr::matches("k", "a|b"))).unwrap();
        assert_eq!(
            p.explain(),
            "entry 0\n0: k matches \"a|b\" ? MATCH : FAIL\n"
        );
        let f = Filter::from(Expr::has_roles(Vec::<String>::new()));
        assert_eq!(Program::new(&f).unwrap().explain(), "entry MATCH\n");
    }
}
