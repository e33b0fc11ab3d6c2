//! Structured fuzz input: filters as postfix instructions over a small
//! vocabulary (so that filters and sessions meet often), sessions and store
//! operations. Only the fuzz crate builds this (`cfg(fuzzing)`).

use arbitrary::Arbitrary;
use session_filter::roles_to_string;
use session_filter::syntax::Expr;

use crate::matcher::Props;
use crate::StoreOp;

/// Keys filters use; sessions use these and `bad key`, which they must reject.
const KEYS: &[&str] = &[
    "$Country",
    "$Principal",
    "$Version",
    "$Roles",
    "Department",
    "k",
    "not",
    "x[y]",
    "東京",
];

/// A key for a session: one of `KEYS`, or now and then one no session takes.
fn session_key(i: u8) -> &'static str {
    KEYS.get(i as usize % (KEYS.len() + 1))
        .copied()
        .unwrap_or("bad key")
}
const VALUES: &[&str] = &["", "UK", "DE", "a'b", "a\"b", "\\", "é", "UK ", "\n", "v"];
const ROLES: &[&str] = &["", "admin", "client", "a,b", "q\"", "q'", "\\", "r r"];
/// Regular expressions for `matches` clauses, over the values above.
const REGEXES: &[&str] = &[
    "UK|DE", ".*", "", "[A-Z]{2}", "a'b", "é.?", "(?i)uk", "\\\\", "a\"b|\n", "U.?", "v+", "\\s*",
    "(a|a)*b",
];

fn pick<'a>(list: &[&'a str], i: u8) -> &'a str {
    list[i as usize % list.len()]
}

fn roles(ids: &[u8]) -> Vec<String> {
    ids.iter().map(|&i| pick(ROLES, i).to_owned()).collect()
}

/// One clause.
#[derive(Arbitrary, Debug, Clone)]
pub enum ClauseSpec {
    All,
    Is(u8, u8),
    Ne(u8, u8),
    In(u8, Vec<u8>),
    Matches(u8, u8),
    Has(u8),
    HasRoles(Vec<u8>),
    RolesIs(Vec<u8>),
    RolesNe(Vec<u8>),
    RolesIn(Vec<Vec<u8>>),
}

impl ClauseSpec {
    fn expr(&self) -> Expr {
        let key = |k: u8| pick(KEYS, k).to_owned();
        let value = |v: u8| pick(VALUES, v).to_owned();
        match self {
            ClauseSpec::All => Expr::all(),
            ClauseSpec::Is(k, v) => Expr::is(key(*k), value(*v)),
            ClauseSpec::Ne(k, v) => Expr::ne(key(*k), value(*v)),
            ClauseSpec::In(k, vs) if !vs.is_empty() => {
                Expr::is_in(key(*k), vs.iter().map(|&v| value(v)))
            }
            ClauseSpec::In(k, _) => Expr::is_in(key(*k), [""]),
            // `$Roles matches` is an error; its key is `k` instead.
            ClauseSpec::Matches(k, r) => {
                let key = Some(key(*k)).filter(|k| k != "$Roles");
                Expr::matches(key.unwrap_or_else(|| "k".into()), pick(REGEXES, *r))
            }
            ClauseSpec::Has(k) => Expr::has(key(*k)),
            ClauseSpec::HasRoles(rs) if !rs.is_empty() => Expr::has_roles(roles(rs)),
            ClauseSpec::HasRoles(_) => Expr::has_roles([""]),
            ClauseSpec::RolesIs(rs) => Expr::is("$Roles", roles_to_string(roles(rs))),
            ClauseSpec::RolesNe(rs) => Expr::ne("$Roles", roles_to_string(roles(rs))),
            ClauseSpec::RolesIn(sets) if !sets.is_empty() => {
                Expr::is_in("$Roles", sets.iter().map(|s| roles_to_string(roles(s))))
            }
            ClauseSpec::RolesIn(_) => Expr::is("$Roles", ""),
        }
    }
}

/// A filter in postfix: clauses push, `Not` negates the top, `And(n)` and
/// `Or(n)` combine the top `n` (at least two). Built with a stack, never
/// recursion, whatever the input.
#[derive(Arbitrary, Debug, Clone)]
pub enum Instr {
    Clause(ClauseSpec),
    Not,
    And(u8),
    Or(u8),
}

/// The filter the instructions describe (`all` for none).
pub fn build_expr(instrs: &[Instr]) -> Expr {
    let mut stack: Vec<Expr> = Vec::new();
    for instr in instrs {
        match instr {
            Instr::Clause(c) => stack.push(c.expr()),
            Instr::Not => {
                if let Some(e) = stack.pop() {
                    stack.push(Expr::not(e));
                }
            }
            Instr::And(n) | Instr::Or(n) => {
                let n = (*n as usize % 4 + 2).min(stack.len());
                if n < 2 {
                    continue;
                }
                let operands = stack.split_off(stack.len() - n);
                stack.push(if matches!(instr, Instr::And(_)) {
                    Expr::and(operands)
                } else {
                    Expr::or(operands)
                });
            }
        }
    }
    Expr::and(stack)
}

/// A session: properties from the vocabulary, and perhaps roles.
#[derive(Arbitrary, Debug, Clone)]
pub struct SessionSpec {
    props: Vec<(u8, u8)>,
    roles: Option<Vec<u8>>,
}

impl SessionSpec {
    /// Its properties (duplicate keys and bad keys possible, on purpose).
    pub fn props(&self) -> Props {
        let mut props: Props = self
            .props
            .iter()
            .filter(|&&(k, _)| session_key(k) != "$Roles")
            .map(|&(k, v)| (session_key(k).to_owned(), pick(VALUES, v).to_owned()))
            .collect();
        if let Some(r) = &self.roles {
            props.push(("$Roles".into(), roles_to_string(roles(r))));
        }
        props
    }
}

/// A store operation.
#[derive(Arbitrary, Debug, Clone)]
pub enum OpSpec {
    Insert(u8, SessionSpec),
    Close(Vec<Instr>),
    CloseSession(u8),
    ChangeRoles(Vec<Instr>, Vec<u8>, Vec<u8>),
    ChangeSessionRoles(u8, Vec<u8>, Vec<u8>),
    SetProperties(u8, Vec<(u8, u8)>),
    RemoveProperties(u8, Vec<u8>),
    ChangeProperties(Vec<Instr>, Vec<(u8, Option<u8>)>),
    ChangeSessionProperties(u8, Vec<(u8, Option<u8>)>),
    Query(Vec<Instr>, u8),
}

/// Keys a property change names: the session keys and the settable fixed
/// properties (whose values get normalised), and `$SessionId`, refused.
const CHANGE_KEYS: &[&str] = &["$Language", "$Latitude", "$Longitude", "$SessionId"];
/// Values for changes: the vocabulary and numbers that are and are not
/// decimals.
const CHANGE_VALUES: &[&str] = &["uK", "EN", "1.5", "-.5e3", "1e", ".", "+7.", "NaN"];

fn change(pairs: &[(u8, Option<u8>)]) -> Vec<(String, Option<String>)> {
    pairs
        .iter()
        .map(|&(k, v)| {
            let key = match k as usize % (KEYS.len() + 1 + CHANGE_KEYS.len()) {
                i if i <= KEYS.len() => session_key(i as u8),
                i => CHANGE_KEYS[i - KEYS.len() - 1],
            };
            let value = v.map(
                |v| match v as usize % (VALUES.len() + CHANGE_VALUES.len()) {
                    i if i < VALUES.len() => VALUES[i],
                    i => CHANGE_VALUES[i - VALUES.len()],
                },
            );
            (key.to_owned(), value.map(str::to_owned))
        })
        .collect()
}

impl OpSpec {
    /// The operation, on session ids `s0` … `s7`.
    pub fn op(&self) -> StoreOp {
        let i = |n: &u8| *n as usize % 8;
        let props = |ps: &[(u8, u8)]| -> Props {
            ps.iter()
                .map(|&(k, v)| (session_key(k).to_owned(), pick(VALUES, v).to_owned()))
                .collect()
        };
        match self {
            OpSpec::Insert(n, s) => StoreOp::Insert(i(n), s.props()),
            OpSpec::Close(f) => StoreOp::Close(build_expr(f)),
            OpSpec::CloseSession(n) => StoreOp::CloseSession(i(n)),
            OpSpec::ChangeRoles(f, r, a) => StoreOp::ChangeRoles(build_expr(f), roles(r), roles(a)),
            OpSpec::ChangeSessionRoles(n, r, a) => {
                StoreOp::ChangeSessionRoles(i(n), roles(r), roles(a))
            }
            OpSpec::SetProperties(n, ps) => StoreOp::SetProperties(i(n), props(ps)),
            OpSpec::RemoveProperties(n, ks) => StoreOp::RemoveProperties(
                i(n),
                ks.iter().map(|&k| session_key(k).to_owned()).collect(),
            ),
            OpSpec::ChangeProperties(f, c) => StoreOp::ChangeProperties(build_expr(f), change(c)),
            OpSpec::ChangeSessionProperties(n, c) => {
                StoreOp::ChangeSessionProperties(i(n), change(c))
            }
            OpSpec::Query(f, n) => StoreOp::Query(build_expr(f), i(n)),
        }
    }
}
