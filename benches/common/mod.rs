//! What the benchmark targets share: the population and the filter shapes.
#![allow(dead_code)]

use std::time::Duration;

use criterion::Criterion;

/// The population size of the `eval` group.
pub const POPULATION: usize = 10_000;

/// Criterion settings that keep the whole suite under ten minutes.
pub fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(800))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
}

/// A filter shape: its benchmark id and its text.
pub struct Shape {
    pub id: &'static str,
    pub filter: &'static str,
}

pub const EQ: Shape = Shape {
    id: "eq",
    filter: "$Country is 'DE'",
};
pub const AND3: Shape = Shape {
    id: "and3",
    filter: "$Country is 'DE' and $ClientType ne 'JAVA' and Status is 'Open'",
};
pub const IN10: Shape = Shape {
    id: "in10",
    filter: "$Country in ['UK','DE','FR','US','JP','IT','ES','NL','SE','CH']",
};
pub const ROLES2: Shape = Shape {
    id: "roles2",
    filter: "hasRoles ['trader', 'operator']",
};
pub const MIXED: Shape = Shape {
    id: "mixed",
    filter: "not (Department is 'Accounts' or Department is 'Payroll') and \
             $Country in ['UK','DE','FR'] and hasRoles ['trader']",
};
pub const HAS: Shape = Shape {
    id: "has",
    filter: "has Department",
};

pub const MATCHES: Shape = Shape {
    id: "matches",
    filter: "$ClientType matches 'JAVA.*|I[Oo]S'",
};

pub const SHAPES: [Shape; 7] = [EQ, AND3, IN10, ROLES2, MIXED, HAS, MATCHES];

/// The valid filters of the crate's copy of `filters.jsonl`.
pub fn conformance_filters() -> Vec<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/conformance/filters.jsonl"
    );
    let text = std::fs::read_to_string(path).expect("tests/conformance/filters.jsonl");
    text.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|case| case.get("error").is_none())
        .filter_map(|case| case["filter"].as_str().map(String::from))
        .collect()
}

/// The demo population's properties, sessions `0..n`.
pub fn population(n: usize) -> Vec<Vec<(String, String)>> {
    (0..n as u64)
        .map(session_filter::demo::properties)
        .collect()
}
