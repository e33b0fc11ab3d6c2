//! The standing-filter workload, shared by `benches/standing.rs` and
//! `examples/standing_memory.rs`: deterministic filters, as structured
//! clauses that print both as our filters and in a-tree's language, and the
//! 64 sessions the benchmark runs.
//!
//! Of `n` filters, a fixed broad set of `min(n / 5, 2000)` is operational
//! (listeners and metrics over low-cardinality keys), and does not grow
//! with `n`; the rest are per-user filters, which do:
//!
//! - broad, three in four: positive conjunctions of one to three clauses
//!   over `$Country` (`is`, `in`), `Department`, `Tier`, `hasRoles` and
//!   `has Department`, sometimes with a negative clause, one in ten a
//!   disjunction across keys (`Department is 'IT' or hasRoles ['admin']`);
//! - broad, one in four: negative only (`ne`, `not`, absence);
//! - per-user: `$Principal is 'nameX'` (10 000 names) or `Account is 'aY'`
//!   (100 000 values), half each, plus 0 to 2 of `Tier is`, `Department ne`,
//!   `$Country in`, `hasRoles`, `not Status is`.
//!
//! The sessions are demo sessions 0..64 (`session_filter::demo`, whose
//! principals are `name0` … `name999`) with an `Account` each.
#![allow(dead_code)]

/// Sessions per benchmark iteration.
pub const SESSIONS: usize = 64;

const COUNTRIES: [&str; 12] = [
    "UK", "DE", "FR", "US", "JP", "NZ", "IT", "ES", "NL", "BE", "CH", "SE",
];
const DEPARTMENTS: [&str; 7] = [
    "Accounts",
    "Payroll",
    "Trading",
    "Sales",
    "IT",
    "Legal",
    "Operations",
];
const TIERS: [&str; 3] = ["gold", "silver", "bronze"];
const STATUSES: [&str; 3] = ["Open", "Closed", "Pending"];
const ROLES: [&str; 8] = [
    "admin", "client", "operator", "trader", "auditor", "viewer", "support", "manager",
];
/// Distinct `$Principal` values the filters pin.
pub const PRINCIPALS: u64 = 10_000;
/// Distinct `Account` values the filters pin (and the sessions draw from).
pub const ACCOUNTS: u64 = 100_000;

/// A filter as structured clauses.
#[derive(Clone, Debug)]
pub enum Clause {
    Is(&'static str, String),
    Ne(&'static str, String),
    In(&'static str, Vec<String>),
    Has(&'static str),
    HasRoles(Vec<&'static str>),
    Not(Box<Clause>),
    And(Vec<Clause>),
    Or(Vec<Clause>),
}

fn quote(v: &str) -> String {
    format!("'{v}'")
}

fn list(vs: &[String]) -> String {
    let items: Vec<String> = vs.iter().map(|v| quote(v)).collect();
    format!("[{}]", items.join(", "))
}

impl Clause {
    /// Our filter language.
    pub fn text(&self) -> String {
        match self {
            Clause::Is(k, v) => format!("{k} is {}", quote(v)),
            Clause::Ne(k, v) => format!("{k} ne {}", quote(v)),
            Clause::In(k, vs) => format!("{k} in {}", list(vs)),
            Clause::Has(k) => format!("has {k}"),
            Clause::HasRoles(rs) => {
                let rs: Vec<String> = rs.iter().map(|r| r.to_string()).collect();
                format!("hasRoles {}", list(&rs))
            }
            Clause::Not(c) => format!("not ({})", c.text()),
            Clause::And(cs) => join(cs, " and ", Clause::text),
            Clause::Or(cs) => join(cs, " or ", Clause::text),
        }
    }

    /// a-tree's language. a-tree has three-valued logic (a test of an
    /// absent attribute is unknown, and `not unknown` is unknown), so
    /// negations are pushed down to the clauses and a negated clause says
    /// what to do when the attribute is absent: `k ne 'v'` is
    /// `k is null or k <> 'v'`. Its `roles all of [..]` holds when the
    /// *event's* roles are all in the list (`all_of(event, list)` in its
    /// source), not the other way round, so `hasRoles [a, b]` is
    /// `roles one of ['a'] and roles one of ['b']`.
    pub fn atree(&self) -> String {
        self.atree_signed(true)
    }

    fn atree_signed(&self, positive: bool) -> String {
        let attr = atree_attribute;
        match (self, positive) {
            (Clause::Is(k, v), true) => format!("{} = {}", attr(k), quote(v)),
            (Clause::Is(k, v), false) => {
                format!("({0} is null or {0} <> {1})", attr(k), quote(v))
            }
            (Clause::Ne(k, v), p) => Clause::Is(k, v.clone()).atree_signed(!p),
            (Clause::In(k, vs), true) => format!("{} in {}", attr(k), list(vs)),
            (Clause::In(k, vs), false) => {
                format!("({0} is null or {0} not in {1})", attr(k), list(vs))
            }
            (Clause::Has(k), true) => format!("{} is not null", attr(k)),
            (Clause::Has(k), false) => format!("{} is null", attr(k)),
            (Clause::HasRoles(rs), p) => {
                let op = if p { "one of" } else { "none of" };
                let tests: Vec<String> = rs
                    .iter()
                    .map(|r| format!("roles {op} [{}]", quote(r)))
                    .collect();
                format!("({})", tests.join(if p { " and " } else { " or " }))
            }
            (Clause::Not(c), p) => c.atree_signed(!p),
            (Clause::And(cs), true) | (Clause::Or(cs), false) => {
                join(cs, " and ", |c| c.atree_signed(positive))
            }
            (Clause::Or(cs), true) | (Clause::And(cs), false) => {
                join(cs, " or ", |c| c.atree_signed(positive))
            }
        }
    }
}

fn join(cs: &[Clause], sep: &str, f: impl Fn(&Clause) -> String) -> String {
    let parts: Vec<String> = cs.iter().map(|c| format!("({})", f(c))).collect();
    parts.join(sep)
}

/// The a-tree attribute of one of our keys (its identifiers are
/// `[a-zA-Z_][a-zA-Z0-9_-]*`, so no `$`).
pub fn atree_attribute(key: &str) -> &'static str {
    match key {
        "$Principal" => "principal",
        "$Country" => "country",
        "Department" => "department",
        "Tier" => "tier",
        "Status" => "status",
        "Account" => "account",
        _ => "unknown",
    }
}

/// The string attributes a-tree needs, by our key (roles apart).
pub const ATREE_KEYS: [&str; 6] = [
    "$Principal",
    "$Country",
    "Department",
    "Tier",
    "Status",
    "Account",
];

/// SplitMix64, as `session_filter::demo` uses.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    fn some<'a>(&mut self, items: &[&'a str], k: usize) -> Vec<&'a str> {
        let mut out: Vec<&str> = Vec::with_capacity(k);
        while out.len() < k {
            let x = self.pick(items);
            if !out.contains(&x) {
                out.push(x);
            }
        }
        out
    }
}

fn s(v: &str) -> String {
    v.to_owned()
}

fn strings(vs: Vec<&str>) -> Vec<String> {
    vs.into_iter().map(s).collect()
}

/// The number of broad filters among `n`.
pub fn broad_count(n: usize) -> usize {
    (n / 5).min(2000)
}

fn negative(r: &mut Rng) -> Clause {
    match r.below(7) {
        0 => Clause::Ne("Department", s(r.pick(&DEPARTMENTS))),
        1 => Clause::Not(Box::new(Clause::HasRoles(vec![r.pick(&ROLES)]))),
        2 => Clause::Not(Box::new(Clause::Has("Department"))),
        3 => Clause::Not(Box::new(Clause::And(vec![
            Clause::Is("$Country", s(r.pick(&COUNTRIES))),
            Clause::Is("Tier", s(r.pick(&TIERS))),
        ]))),
        4 => Clause::And(vec![
            Clause::Ne("$Country", s(r.pick(&COUNTRIES))),
            Clause::Ne("Tier", s(r.pick(&TIERS))),
        ]),
        5 => Clause::Not(Box::new(Clause::In(
            "Department",
            strings(r.some(&DEPARTMENTS, 2)),
        ))),
        _ => Clause::And(vec![
            Clause::Ne("Status", s(r.pick(&STATUSES))),
            Clause::Not(Box::new(Clause::HasRoles(vec![r.pick(&ROLES)]))),
        ]),
    }
}

fn positive_clause(r: &mut Rng) -> Clause {
    match r.below(7) {
        0 => Clause::Is("$Country", s(r.pick(&COUNTRIES))),
        1 => Clause::In("$Country", strings(r.some(&COUNTRIES, 3))),
        2 => Clause::Is("Department", s(r.pick(&DEPARTMENTS))),
        3 => Clause::Is("Tier", s(r.pick(&TIERS))),
        4 => Clause::HasRoles(vec![r.pick(&ROLES)]),
        5 => Clause::HasRoles(r.some(&ROLES, 2)),
        _ => Clause::Has("Department"),
    }
}

fn broad(i: usize, r: &mut Rng) -> Clause {
    if i % 4 == 3 {
        return negative(r);
    }
    if r.below(10) == 0 {
        return Clause::Or(vec![
            Clause::Is("Department", s(r.pick(&DEPARTMENTS))),
            Clause::HasRoles(vec![r.pick(&ROLES)]),
        ]);
    }
    let mut clauses: Vec<Clause> = (0..1 + r.below(3)).map(|_| positive_clause(r)).collect();
    if r.below(4) == 0 {
        clauses.push(match r.below(2) {
            0 => Clause::Ne("Status", s(r.pick(&STATUSES))),
            _ => Clause::Not(Box::new(Clause::Is("Tier", s(r.pick(&TIERS))))),
        });
    }
    if clauses.len() == 1 {
        clauses.pop().unwrap()
    } else {
        Clause::And(clauses)
    }
}

fn per_user(r: &mut Rng) -> Clause {
    let pin = if r.below(2) == 0 {
        Clause::Is("$Principal", format!("name{}", r.below(PRINCIPALS)))
    } else {
        Clause::Is("Account", format!("a{}", r.below(ACCOUNTS)))
    };
    let extra = r.below(3);
    if extra == 0 {
        return pin;
    }
    let mut clauses = vec![pin];
    for _ in 0..extra {
        clauses.push(match r.below(5) {
            0 => Clause::Is("Tier", s(r.pick(&TIERS))),
            1 => Clause::Ne("Department", s(r.pick(&DEPARTMENTS))),
            2 => Clause::In("$Country", strings(r.some(&COUNTRIES, 2))),
            3 => Clause::HasRoles(vec![r.pick(&ROLES)]),
            _ => Clause::Not(Box::new(Clause::Is("Status", s(r.pick(&STATUSES))))),
        });
    }
    Clause::And(clauses)
}

/// The `n` filters of the workload, broad ones first.
pub fn filters(n: usize) -> Vec<Clause> {
    let mut r = Rng::new(0x5717_D1A6);
    let b = broad_count(n);
    let mut out: Vec<Clause> = (0..b).map(|i| broad(i, &mut r)).collect();
    out.extend((b..n).map(|_| per_user(&mut r)));
    out
}

/// The properties of the benchmark's sessions: demo sessions `0..64`, each
/// with an `Account`.
pub fn sessions() -> Vec<Vec<(String, String)>> {
    let mut r = Rng::new(0xACC0);
    (0..SESSIONS as u64)
        .map(|i| {
            let mut props = session_filter::demo::properties(i);
            props.push(("Account".into(), format!("a{}", r.below(ACCOUNTS))));
            props
        })
        .collect()
}

/// The same sessions after one change each: `Department` moves to the next
/// department (or is set, for the sessions without one).
pub fn changed_sessions() -> Vec<Vec<(String, String)>> {
    sessions()
        .into_iter()
        .map(|mut props| {
            match props.iter_mut().find(|(k, _)| k == "Department") {
                Some((_, v)) => {
                    let at = DEPARTMENTS.iter().position(|d| d == v).unwrap_or(0);
                    *v = DEPARTMENTS[(at + 1) % DEPARTMENTS.len()].to_owned();
                }
                None => props.push(("Department".into(), "Sales".into())),
            }
            props
        })
        .collect()
}
