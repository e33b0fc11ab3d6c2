//! Shared helpers for the integration tests: locating and reading the
//! conformance cases.
#![allow(dead_code)]

pub mod strategies;

use std::path::{Path, PathBuf};

use serde_json::Value as Json;

/// The repository root: the library's manifest directory, found from the
/// manifest directory of whichever package runs the test (the library or
/// the CLI package in `cli/`).
pub fn root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .find(|dir| dir.join("tests/conformance").is_dir())
        .unwrap_or(here)
        .to_path_buf()
}

/// The crate's own copies of the conformance cases (`tests/conformance/`).
pub fn local_dir() -> PathBuf {
    root().join("tests/conformance")
}

/// The project's shared conformance cases (`../shared/conformance/`), or
/// `None` (with a message saying so) when this checkout has no `../shared`.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = root().join("../shared/conformance");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: {} is absent; only the crate's own copies in tests/conformance were checked",
            dir.display()
        );
        None
    }
}

/// Every directory of cases to check: the local copies, and the shared
/// cases when present.
pub fn case_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![local_dir()];
    dirs.extend(shared_dir());
    dirs
}

/// The JSON objects of a `.jsonl` file, one per non-blank line.
pub fn read_jsonl(path: &Path) -> Vec<Json> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}:{}: bad JSON: {e}", path.display(), i + 1))
        })
        .collect()
}

/// A conformance filter case.
pub struct FilterCase {
    pub filter: String,
    /// `Some((canonical, matching ids))` for a valid filter, `None` for an error case.
    pub valid: Option<(String, Vec<String>)>,
    /// For an error case whose position the spec fixes: its line and column.
    pub error_at: Option<(usize, usize)>,
}

/// The filter cases of `dir`: `filters.jsonl`, then `matches.jsonl` (the
/// `matches` clause, same format) when the directory has it.
pub fn filter_cases(dir: &Path) -> Vec<FilterCase> {
    let mut cases = cases_in(&dir.join("filters.jsonl"));
    let matches = dir.join("matches.jsonl");
    if matches.is_file() {
        cases.extend(cases_in(&matches));
    } else {
        eprintln!("SKIPPED: {} is absent", matches.display());
    }
    cases
}

/// The cases of one file of filter cases.
pub fn cases_in(path: &Path) -> Vec<FilterCase> {
    read_jsonl(path)
        .into_iter()
        .map(|v| {
            let filter = v["filter"].as_str().expect("filter is a string").to_owned();
            let valid = if v.get("error").is_some() {
                None
            } else {
                let canonical = v["canonical"].as_str().expect("canonical").to_owned();
                let matches = v["matches"]
                    .as_array()
                    .expect("matches")
                    .iter()
                    .map(|m| m.as_str().expect("id").to_owned())
                    .collect();
                Some((canonical, matches))
            };
            let number = |k: &str| v.get(k).and_then(|n| n.as_u64()).map(|n| n as usize);
            let error_at = number("line").zip(number("column"));
            FilterCase {
                filter,
                valid,
                error_at,
            }
        })
        .collect()
}

/// Conformance sessions: each a list of (key, value) pairs in file order.
pub fn sessions(dir: &Path) -> Vec<Vec<(String, String)>> {
    read_jsonl(&dir.join("sessions.jsonl"))
        .into_iter()
        .map(|v| {
            v.as_object()
                .expect("session is an object")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().expect("string value").to_owned()))
                .collect()
        })
        .collect()
}
