//! A structured filter and structured sessions: the compiled matcher (one at
//! a time, in blocks, in parallel, and through indexed and plain stores)
//! agrees with the reference evaluator.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use session_filter_fuzz::gen::{build_expr, Instr, SessionSpec};

#[derive(Arbitrary, Debug)]
struct Input {
    filter: Vec<Instr>,
    sessions: Vec<SessionSpec>,
}

fuzz_target!(|input: Input| {
    let sessions: Vec<_> = input.sessions.iter().map(SessionSpec::props).collect();
    session_filter_fuzz::check_differential(build_expr(&input.filter), &sessions);
});
