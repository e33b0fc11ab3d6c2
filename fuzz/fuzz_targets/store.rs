//! A sequence of store operations: an indexed and a plain store give the
//! answers of a simple model at every step.
#![no_main]

use libfuzzer_sys::fuzz_target;
use session_filter_fuzz::gen::OpSpec;

fuzz_target!(|ops: Vec<OpSpec>| {
    let ops: Vec<_> = ops.iter().map(OpSpec::op).collect();
    session_filter_fuzz::check_store(&ops);
});
