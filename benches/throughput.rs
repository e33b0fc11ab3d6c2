//! The `eval` and `compile` groups: filter throughput against baselines
//! that run in the same benchmark.
//!
//! `cargo bench --bench throughput`. Each `eval` iteration evaluates one
//! filter over the whole population of 10 000 demo sessions; divide by
//! 10 000 for the time per session. Engines:
//!
//! - `vm`: ours, the bulk API (`Program::count`, blocks of 64 sessions).
//! - `vm_single`: ours, one `Program::matches` call per session.
//! - `reference`: our tree-walking reference evaluator over string maps.
//! - `closure`: a hand-written closure over the same interned sessions.
//! - `closure_strings`: a hand-written closure over `HashMap<String, String>`
//!   (roles pre-parsed into a `HashSet<String>`), as a server would do today.
//! - `cel`: cel-interpreter, each program compiled once, the session bound
//!   as a prebuilt map value in a child of a prebuilt context per evaluation.

mod common;

use std::collections::{HashMap, HashSet};
use std::hint::black_box;
use std::sync::Arc;

use cel_interpreter::objects::{Key as CelKey, Map as CelMap};
use cel_interpreter::{Context, Program as CelProgram, Value as CelValue};
use common::{Shape, AND3, EQ, HAS, IN10, MATCHES, MIXED, POPULATION, ROLES2, SHAPES};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use session_filter::{reference, string_to_roles, Filter, Interned, Program, PropertyKey, Session};

/// The same shape in CEL: `s` is the session's map, `r` its list of roles.
fn cel_text(shape: &Shape) -> &'static str {
    match shape.id {
        "eq" => "'$Country' in s && s['$Country'] == 'DE'",
        "and3" => "('$Country' in s && s['$Country'] == 'DE') \
                   && !('$ClientType' in s && s['$ClientType'] == 'JAVA') \
                   && ('Status' in s && s['Status'] == 'Open')",
        "in10" => "'$Country' in s && s['$Country'] in ['UK','DE','FR','US','JP','IT','ES','NL','SE','CH']",
        "roles2" => "'trader' in r && 'operator' in r",
        "mixed" => "!(('Department' in s && s['Department'] == 'Accounts') \
                   || ('Department' in s && s['Department'] == 'Payroll')) \
                   && ('$Country' in s && s['$Country'] in ['UK','DE','FR']) && 'trader' in r",
        "has" => "'Department' in s",
        // CEL's `matches` searches; anchored as `matches` is.
        "matches" => "'$ClientType' in s && s['$ClientType'].matches('^(?:JAVA.*|I[Oo]S)$')",
        other => panic!("no CEL text for {other}"),
    }
}

type InternedTest = Box<dyn Fn(&Session) -> bool>;

/// The `matches` shape's regex for the closures: the `regex` crate, anchored.
fn anchored() -> regex::Regex {
    regex::Regex::new("^(?:JAVA.*|I[Oo]S)$").unwrap()
}

/// The hand-written closure over interned sessions.
fn closure(shape: &Shape) -> InternedTest {
    let key = |k: &str| PropertyKey::new(k).unwrap();
    let sym = |v: &str| Interned::new(v).unwrap();
    match shape.id {
        "eq" => {
            let (country, de) = (key("$Country"), sym("DE"));
            Box::new(move |s| s.value(&country).is_some_and(|v| v == de))
        }
        "and3" => {
            let (country, client, status) = (key("$Country"), key("$ClientType"), key("Status"));
            let (de, java, open) = (sym("DE"), sym("JAVA"), sym("Open"));
            Box::new(move |s| {
                s.value(&country).is_some_and(|v| v == de)
                    && !s.value(&client).is_some_and(|v| v == java)
                    && s.value(&status).is_some_and(|v| v == open)
            })
        }
        "in10" => {
            let country = key("$Country");
            let held: Vec<Interned> = ["UK", "DE", "FR", "US", "JP", "IT", "ES", "NL", "SE", "CH"]
                .iter()
                .map(|v| sym(v))
                .collect();
            Box::new(move |s| {
                s.value(&country)
                    .is_some_and(|v| held.iter().any(|h| v == *h))
            })
        }
        "roles2" => {
            let (trader, operator) = (sym("trader"), sym("operator"));
            Box::new(move |s| s.has_interned_role(&trader) && s.has_interned_role(&operator))
        }
        "mixed" => {
            let (dept, country) = (key("Department"), key("$Country"));
            let (accounts, payroll, trader) = (sym("Accounts"), sym("Payroll"), sym("trader"));
            let held: Vec<Interned> = ["UK", "DE", "FR"].iter().map(|v| sym(v)).collect();
            Box::new(move |s| {
                let d = s.value(&dept);
                !d.is_some_and(|d| d == accounts || d == payroll)
                    && s.value(&country)
                        .is_some_and(|v| held.iter().any(|h| v == *h))
                    && s.has_interned_role(&trader)
            })
        }
        "has" => {
            let dept = key("Department");
            Box::new(move |s| s.value(&dept).is_some())
        }
        "matches" => {
            let client = key("$ClientType");
            let re = anchored();
            Box::new(move |s| {
                s.value(&client)
                    .is_some_and(|v| v.with_str(|t| re.is_match(t)))
            })
        }
        other => panic!("no closure for {other}"),
    }
}

/// A session as a typical server holds it today.
struct StringSession {
    props: HashMap<String, String>,
    roles: HashSet<String>,
}

type StringTest = Box<dyn Fn(&StringSession) -> bool>;

fn closure_strings(shape: &Shape) -> StringTest {
    fn is(s: &StringSession, k: &str, v: &str) -> bool {
        s.props.get(k).is_some_and(|x| x == v)
    }
    match shape.id {
        "eq" => Box::new(|s| is(s, "$Country", "DE")),
        "and3" => Box::new(|s| {
            is(s, "$Country", "DE") && !is(s, "$ClientType", "JAVA") && is(s, "Status", "Open")
        }),
        "in10" => Box::new(|s| {
            s.props.get("$Country").is_some_and(|v| {
                ["UK", "DE", "FR", "US", "JP", "IT", "ES", "NL", "SE", "CH"].contains(&v.as_str())
            })
        }),
        "roles2" => Box::new(|s| s.roles.contains("trader") && s.roles.contains("operator")),
        "mixed" => Box::new(|s| {
            !(is(s, "Department", "Accounts") || is(s, "Department", "Payroll"))
                && s.props
                    .get("$Country")
                    .is_some_and(|v| ["UK", "DE", "FR"].contains(&v.as_str()))
                && s.roles.contains("trader")
        }),
        "has" => Box::new(|s| s.props.contains_key("Department")),
        "matches" => {
            let re = anchored();
            Box::new(move |s| s.props.get("$ClientType").is_some_and(|v| re.is_match(v)))
        }
        other => panic!("no closure for {other}"),
    }
}

fn cel_session(props: &[(String, String)]) -> (CelValue, CelValue) {
    let map: HashMap<CelKey, CelValue> = props
        .iter()
        .map(|(k, v)| {
            (
                CelKey::from(k.clone()),
                CelValue::String(Arc::new(v.clone())),
            )
        })
        .collect();
    let roles = props
        .iter()
        .find(|(k, _)| k == "$Roles")
        .map(|(_, v)| string_to_roles(v).unwrap())
        .unwrap_or_default();
    let roles = CelValue::List(Arc::new(
        roles
            .into_iter()
            .map(|r| CelValue::String(Arc::new(r)))
            .collect(),
    ));
    (CelValue::Map(CelMap { map: Arc::new(map) }), roles)
}

fn cel_matches(program: &CelProgram, root: &Context, session: &(CelValue, CelValue)) -> bool {
    let mut ctx = root.new_inner_scope();
    ctx.add_variable_from_value("s", session.0.clone());
    ctx.add_variable_from_value("r", session.1.clone());
    matches!(program.execute(&ctx), Ok(CelValue::Bool(true)))
}

fn eval(c: &mut Criterion) {
    let raw = common::population(POPULATION);
    let sessions: Vec<Session> = raw
        .iter()
        .map(|p| Session::new(p.clone()).unwrap())
        .collect();
    let maps: Vec<HashMap<String, String>> =
        raw.iter().map(|p| p.iter().cloned().collect()).collect();
    let strings: Vec<StringSession> = maps
        .iter()
        .map(|m| StringSession {
            props: m.clone(),
            roles: m
                .get("$Roles")
                .map(|r| string_to_roles(r).unwrap())
                .unwrap_or_default()
                .into_iter()
                .collect(),
        })
        .collect();
    let cel_sessions: Vec<(CelValue, CelValue)> = raw.iter().map(|p| cel_session(p)).collect();
    let cel_root = Context::default();

    let mut group = c.benchmark_group("eval");
    for shape in &SHAPES {
        let filter = Filter::parse(shape.filter).unwrap();
        let program = Program::compile(shape.filter).unwrap();
        let interned = closure(shape);
        let by_strings = closure_strings(shape);
        let cel = CelProgram::compile(cel_text(shape)).unwrap();

        // Every engine must agree before anything is measured.
        let expected = program.count(&sessions);
        let counts = [
            (
                "vm_single",
                sessions.iter().filter(|s| program.matches(s)).count(),
            ),
            (
                "reference",
                maps.iter()
                    .filter(|m| reference::matches_map(filter.expr(), m))
                    .count(),
            ),
            ("closure", sessions.iter().filter(|s| interned(s)).count()),
            (
                "closure_strings",
                strings.iter().filter(|s| by_strings(s)).count(),
            ),
            (
                "cel",
                cel_sessions
                    .iter()
                    .filter(|s| cel_matches(&cel, &cel_root, s))
                    .count(),
            ),
        ];
        for (engine, count) in counts {
            assert_eq!(
                count, expected,
                "{engine} disagrees with vm on {}",
                shape.id
            );
        }
        assert!(
            expected > 0 && expected < POPULATION,
            "{}: {expected} matches",
            shape.id
        );

        group.bench_function(BenchmarkId::new("vm", shape.id), |b| {
            b.iter(|| program.count(black_box(&sessions)))
        });
        group.bench_function(BenchmarkId::new("vm_single", shape.id), |b| {
            b.iter(|| {
                black_box(&sessions)
                    .iter()
                    .filter(|s| program.matches(s))
                    .count()
            })
        });
        group.bench_function(BenchmarkId::new("closure", shape.id), |b| {
            b.iter(|| black_box(&sessions).iter().filter(|s| interned(s)).count())
        });
        group.bench_function(BenchmarkId::new("closure_strings", shape.id), |b| {
            b.iter(|| black_box(&strings).iter().filter(|s| by_strings(s)).count())
        });
        group.bench_function(BenchmarkId::new("reference", shape.id), |b| {
            b.iter(|| {
                black_box(&maps)
                    .iter()
                    .filter(|m| reference::matches_map(filter.expr(), m))
                    .count()
            })
        });
        group.bench_function(BenchmarkId::new("cel", shape.id), |b| {
            b.iter(|| {
                black_box(&cel_sessions)
                    .iter()
                    .filter(|s| cel_matches(&cel, &cel_root, s))
                    .count()
            })
        });
    }
    group.finish();
}

fn compile(c: &mut Criterion) {
    let mut group = c.benchmark_group("compile");
    let text = MIXED.filter;
    group.bench_function(BenchmarkId::new("parse", "mixed"), |b| {
        b.iter(|| Filter::parse(black_box(text)).unwrap())
    });
    group.bench_function(BenchmarkId::new("compile", "mixed"), |b| {
        b.iter(|| Program::compile(black_box(text)).unwrap())
    });
    let cel = cel_text(&MIXED);
    group.bench_function(BenchmarkId::new("cel", "mixed"), |b| {
        b.iter(|| CelProgram::compile(black_box(cel)).unwrap())
    });
    group.finish();
}

/// A regular expression that makes a backtracking engine take exponential
/// time: with the `regex` crate's linear-time engines it answers at once
/// (compare with `eval/vm/has`, which reads the same key).
fn regex(c: &mut Criterion) {
    let mut group = c.benchmark_group("regex");
    let program = Program::compile("Name matches '(a|a)*b'").unwrap();
    let long = Session::new([("$SessionId", "s"), ("Name", &"a".repeat(100_000))]).unwrap();
    assert!(!program.matches(&long));
    group.bench_function(BenchmarkId::new("vm", "nested_alternation_100k"), |b| {
        b.iter(|| program.matches(black_box(&long)))
    });
    group.finish();
}

// Keep the named shapes referenced for readers of this file.
const _: [&Shape; 7] = [&EQ, &AND3, &IN10, &ROLES2, &MIXED, &HAS, &MATCHES];

criterion_group! {
    name = benches;
    config = common::config();
    targets = eval, compile, regex
}
criterion_main!(benches);
