//! Standing filters: a `FilterSet` and a store's watches over a sequence of
//! store operations give exactly what a naive model evaluating every filter
//! before and after every operation gives.
#![no_main]

use libfuzzer_sys::fuzz_target;
use session_filter_fuzz::gen::{build_expr, Instr, OpSpec};

fuzz_target!(|input: (Vec<Vec<Instr>>, Vec<OpSpec>)| {
    let (filters, ops) = input;
    let filters: Vec<_> = filters.iter().take(8).map(|f| build_expr(f)).collect();
    let ops: Vec<_> = ops.iter().map(OpSpec::op).collect();
    session_filter_fuzz::check_standing(&filters, &ops);
});
