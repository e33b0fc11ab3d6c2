use session_filter::Program;
const MIXED: &str = "not (Department is 'Accounts' or Department is 'Payroll') \
                     and $Country in ['UK','DE','FR'] and hasRoles ['trader']";
fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20000);
    let keep = Program::compile(MIXED).unwrap();
    for _ in 0..n {
        std::hint::black_box(Program::compile(std::hint::black_box(MIXED)).unwrap());
    }
    drop(keep);
}
