//! The matcher: an immutable branching program and the loop that runs it.
//!
//! A [`Program`] is a list of [`Op`]s. Each op tests one clause against the
//! session and jumps to one op if the test holds and to another if it does
//! not; two targets past the end mean "match" and "no match". `and`, `or`
//! and `not` compile to nothing but jump targets, so evaluation short-circuits
//! for free and needs no stack. Jumps only go forward, so a run takes at most
//! one step per op.
//!
//! Bulk evaluation runs the same program over blocks of 64 sessions: each op
//! tests, in one tight loop, the sessions of the block that reach it, and
//! sends a bit mask on to its two targets. Interpretation then costs once per
//! block, not once per session.

pub(crate) mod analysis;

use std::fmt;
use std::sync::Arc;

use rayon::prelude::*;

use crate::intern::{Interned, Sym};
use crate::session::{Session, FIXED_SLOTS};
use crate::syntax::Filter;
use crate::util::escape::escape;
use crate::util::properties::FIXED_PROPERTIES;
use crate::util::regex::Regex;

mod sets;

pub(crate) use sets::{Reach, SetOracle};

/// Where control goes after a test.
///
/// In a program, op targets are indices; the two past the end mean "match"
/// and "no match". That encoding is known only to this module: the compiler
/// builds ops with [`Label`]s and [`Program::assemble`] resolves them, and
/// every other reader asks [`Program::next`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    Op(usize),
    Match,
    Fail,
}

/// A jump target before assembly: an op in generation order, or an end.
pub(crate) struct Label;

impl Label {
    /// "The filter matches".
    pub const MATCH: u32 = u32::MAX;
    /// "The filter does not match".
    pub const FAIL: u32 = u32::MAX - 1;
    /// The most ops a program may hold (labels above are reserved).
    pub const MAX_OPS: usize = (u32::MAX - 3) as usize;
}

/// A range of the program's id pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pool {
    pub start: u32,
    pub len: u32,
}

/// What one op tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Test {
    /// A fixed property equals a value.
    FixedEq { slot: u8, value: Sym },
    /// A fixed property equals one of a sorted set of values.
    FixedIn { slot: u8, values: Pool },
    /// A fixed property is present.
    FixedHas { slot: u8 },
    /// Another property equals a value.
    OtherEq { key: Sym, value: Sym },
    /// Another property equals one of a sorted set of values.
    OtherIn { key: Sym, values: Pool },
    /// Another property is present.
    OtherHas { key: Sym },
    /// A fixed property is present and its whole value matches a regex
    /// (an index into `Program::regexes`).
    FixedMatches { slot: u8, regex: u32 },
    /// Another property is present and its whole value matches a regex.
    OtherMatches { key: Sym, regex: u32 },
    /// The session has every role of a sorted set.
    HasRoles { roles: Pool },
    /// The session's roles are exactly a sorted set.
    RolesEq { roles: Pool },
    /// The session's roles are exactly one of several sorted sets; the pool
    /// range indexes `Program::sets`.
    RolesIn { sets: Pool },
}

/// One instruction: a test and where to go after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Op {
    pub test: Test,
    pub on_true: u32,
    pub on_false: u32,
}

/// A compiled filter.
///
/// Immutable, `Send + Sync`, and cheap to clone (an `Arc`). Evaluating it
/// never allocates: [`Program::matches`] needs no scratch at all, and bulk
/// evaluation keeps one word per instruction on the stack for programs of
/// up to 30 instructions and, for larger ones, in a [`Cache`]: one you pass
/// ([`Program::count_with_cache`]) or the calling thread's own, made once.
///
/// ```
/// use session_filter::{Program, Session};
///
/// let program = Program::compile("$Country in ['UK','DE'] and hasRoles ['trader']")?;
/// let alice = Session::new([("$SessionId", "a"), ("$Country", "UK"), ("$Roles", r#""trader""#)])?;
/// let bob = Session::new([("$SessionId", "b"), ("$Country", "FR")])?;
/// assert!(program.matches(&alice));
/// assert!(!program.matches(&bob));
/// assert_eq!(program.count(&[alice, bob]), 1);
/// # Ok::<(), session_filter::Error>(())
/// ```
#[derive(Clone)]
pub struct Program(Arc<Inner>);

pub(crate) struct Inner {
    pub ops: Box<[Op]>,
    pub entry: u32,
    /// Value and role ids referred to by `Pool`s.
    pub syms: Box<[Sym]>,
    /// Role sets of `RolesIn`, as ranges of `syms`.
    pub sets: Box<[Pool]>,
    /// The regexes of `matches` tests, shared with the parsed filter.
    pub regexes: Box<[Arc<Regex>]>,
    /// The strings the program's ids name, held for as long as it lives
    /// (never read: dropping it gives them back).
    pub _held: Box<[Interned]>,
    /// The filter, printed on demand as its canonical text.
    pub filter: Filter,
}

/// Sessions per block in bulk evaluation: one bit each in a `u64`.
const BLOCK: usize = 64;
/// Sessions per parallel task.
const PAR_CHUNK: usize = 4096;

impl Program {
    /// Builds a program from ops in generation order, whose targets are
    /// generation indices or [`Label`]s, and whose jumps all go backwards in
    /// that order: reversing them makes every jump go forward.
    pub(crate) fn assemble(
        mut ops: Vec<Op>,
        entry: u32,
        syms: Vec<Sym>,
        sets: Vec<Pool>,
        regexes: Vec<Arc<Regex>>,
        held: Vec<Interned>,
        filter: Filter,
    ) -> Program {
        let n = ops.len() as u32;
        let resolve = |label: u32| match label {
            Label::MATCH => n,
            Label::FAIL => n + 1,
            i => n - 1 - i,
        };
        ops.reverse();
        for op in &mut ops {
            op.on_true = resolve(op.on_true);
            op.on_false = resolve(op.on_false);
        }
        Program(Arc::new(Inner {
            ops: ops.into_boxed_slice(),
            entry: resolve(entry),
            syms: syms.into_boxed_slice(),
            sets: sets.into_boxed_slice(),
            regexes: regexes.into_boxed_slice(),
            _held: held.into_boxed_slice(),
            filter,
        }))
    }

    /// True when `session` matches.
    #[inline]
    pub fn matches(&self, session: &Session) -> bool {
        let inner = &*self.0;
        let ops = &*inner.ops;
        let mut pc = inner.entry as usize;
        while let Some(op) = ops.get(pc) {
            pc = if inner.test(op.test, session) {
                op.on_true
            } else {
                op.on_false
            } as usize;
        }
        pc == ops.len()
    }

    /// How many of `sessions` match.
    pub fn count(&self, sessions: &[Session]) -> usize {
        self.count_live(sessions, None)
    }

    /// Calls `f` with the index of each matching session, in order.
    pub fn for_each_match(&self, sessions: &[Session], f: impl FnMut(usize)) {
        self.for_each_match_live(sessions, None, f)
    }

    /// A scratch for [`Program::count_with_cache`] and
    /// [`Program::for_each_match_with_cache`], sized for this program (and
    /// usable with any other: it grows when a larger one needs it).
    pub fn create_cache(&self) -> Cache {
        Cache {
            arrive: vec![0; self.0.ops.len() + 2],
        }
    }

    /// [`Program::count`] with a scratch the caller keeps, so that nothing is
    /// allocated once the cache has grown to the program's size.
    ///
    /// ```
    /// use session_filter::{Program, Session};
    /// let program = Program::compile("has a or has b")?;
    /// let mut cache = program.create_cache();
    /// let sessions = [Session::new([("a", "1")])?, Session::new([("c", "1")])?];
    /// assert_eq!(program.count_with_cache(&mut cache, &sessions), 1);
    /// # Ok::<(), session_filter::Error>(())
    /// ```
    pub fn count_with_cache(&self, cache: &mut Cache, sessions: &[Session]) -> usize {
        let mut n = 0;
        let arrive = cache.words(self.0.ops.len() + 2);
        self.blocks(arrive, sessions, None, |_, bits| {
            n += bits.count_ones() as usize
        });
        n
    }

    /// [`Program::for_each_match`] with a scratch the caller keeps.
    pub fn for_each_match_with_cache(
        &self,
        cache: &mut Cache,
        sessions: &[Session],
        mut f: impl FnMut(usize),
    ) {
        let arrive = cache.words(self.0.ops.len() + 2);
        self.blocks(arrive, sessions, None, |base, bits| {
            each_bit(base, bits, &mut f)
        });
    }

    /// [`Program::count`] over the sessions whose bit is set in `live`
    /// (bit `i % 64` of word `i / 64`; all of them when `None`).
    pub(crate) fn count_live(&self, sessions: &[Session], live: Option<&[u64]>) -> usize {
        let mut n = 0;
        self.with_scratch(|arrive| {
            self.blocks(arrive, sessions, live, |_, bits| {
                n += bits.count_ones() as usize
            })
        });
        n
    }

    /// [`Program::for_each_match`] over the sessions whose bit is set in `live`.
    pub(crate) fn for_each_match_live(
        &self,
        sessions: &[Session],
        live: Option<&[u64]>,
        mut f: impl FnMut(usize),
    ) {
        self.with_scratch(|arrive| {
            self.blocks(arrive, sessions, live, |base, bits| {
                each_bit(base, bits, &mut f)
            })
        });
    }

    /// Runs `f` with a scratch: on the stack for small programs, else the
    /// thread's cache (taken out while in use, so a callback that evaluates
    /// again on this thread simply gets a fresh one).
    fn with_scratch(&self, f: impl FnOnce(&mut [u64])) {
        let words = self.0.ops.len() + 2;
        if words <= STACK_WORDS {
            let mut stack = [0u64; STACK_WORDS];
            f(&mut stack[..words]);
            return;
        }
        let mut cache = THREAD_CACHE.with(|c| c.take());
        f(cache.words(words));
        THREAD_CACHE.with(|c| c.set(cache));
    }

    /// Evaluates every block of `sessions` and hands `f` each block's first
    /// index and match mask.
    fn blocks(
        &self,
        arrive: &mut [u64],
        sessions: &[Session],
        live: Option<&[u64]>,
        mut f: impl FnMut(usize, u64),
    ) {
        for (b, block) in sessions.chunks(BLOCK).enumerate() {
            let mask = block_mask(block.len(), live, b);
            f(b * BLOCK, self.eval_block(block, mask, arrive));
        }
    }

    /// The indices of the matching sessions, in order.
    pub fn select(&self, sessions: &[Session]) -> Vec<usize> {
        let mut out = Vec::new();
        self.for_each_match(sessions, |i| out.push(i));
        out
    }

    /// [`Program::count`] across the threads of the rayon pool.
    pub fn par_count(&self, sessions: &[Session]) -> usize {
        sessions
            .par_chunks(PAR_CHUNK)
            .map(|chunk| self.count(chunk))
            .sum()
    }

    /// [`Program::select`] across the threads of the rayon pool.
    pub fn par_select(&self, sessions: &[Session]) -> Vec<usize> {
        sessions
            .par_chunks(PAR_CHUNK)
            .enumerate()
            .flat_map_iter(|(c, chunk)| {
                self.select(chunk)
                    .into_iter()
                    .map(move |i| c * PAR_CHUNK + i)
            })
            .collect()
    }

    /// The program, one instruction a line: its index, the test, and the
    /// targets when the test holds and when it does not (`MATCH`, `FAIL` or
    /// another index).
    ///
    /// ```
    /// let p = session_filter::Program::compile("not $Country is 'DE' or has Tier")?;
    /// assert_eq!(
    ///     p.explain(),
    ///     "entry 0\n\
    ///      0: $Country is \"DE\" ? 1 : MATCH\n\
    ///      1: has Tier ? MATCH : FAIL\n"
    /// );
    /// # Ok::<(), session_filter::Error>(())
    /// ```
    pub fn explain(&self) -> String {
        let inner = &*self.0;
        let target = |t: u32| match inner.next(t) {
            Next::Match => "MATCH".to_owned(),
            Next::Fail => "FAIL".to_owned(),
            Next::Op(t) => t.to_string(),
        };
        let mut out = format!("entry {}\n", target(inner.entry));
        for (i, op) in inner.ops.iter().enumerate() {
            out.push_str(&format!(
                "{i}: {} ? {} : {}\n",
                inner.describe(op.test),
                target(op.on_true),
                target(op.on_false)
            ));
        }
        out
    }

    /// The number of instructions.
    pub fn op_count(&self) -> usize {
        self.0.ops.len()
    }

    /// Bytes the program holds, estimated from above for a program compiled
    /// from `text_len` bytes of filter text: its tables, the syntax tree it
    /// keeps (counted node by node; its strings are no longer than the
    /// text) and the interned strings it pins (no longer than the text
    /// either, plus the interner's entry for each).
    pub(crate) fn estimated_bytes(&self, text_len: usize) -> usize {
        use crate::syntax::{Expr, Value};
        use std::mem::size_of;
        // Allocation overhead per heap block, and an interner entry.
        const BLOCK: usize = 16;
        const PINNED: usize = 48;
        let inner = &*self.0;
        let mut tree = 0;
        let mut stack = vec![inner.filter.expr()];
        while let Some(e) = stack.pop() {
            let values = match e {
                Expr::In { values, .. } => values.len(),
                Expr::HasRoles { roles, .. } => roles.len(),
                _ => 1,
            };
            tree += size_of::<Expr>() + BLOCK + values * (size_of::<Value>() + BLOCK);
            stack.extend(e.children());
        }
        size_of::<Inner>()
            + BLOCK
            + tree
            + inner.ops.len() * size_of::<Op>()
            + inner.syms.len() * size_of::<Sym>()
            + inner.sets.len() * size_of::<Pool>()
            + inner._held.len() * (size_of::<Interned>() + PINNED)
            + 2 * text_len
    }

    /// The answer of a program that decides without testing anything:
    /// `Some(true)` for `all` and what folds to it, `Some(false)` for
    /// `not all` and the like, `None` for a program that tests sessions.
    ///
    /// ```
    /// use session_filter::Program;
    /// assert_eq!(Program::compile("all or has x")?.constant(), Some(true));
    /// assert_eq!(Program::compile("not all and has x")?.constant(), Some(false));
    /// assert_eq!(Program::compile("has x")?.constant(), None);
    /// # Ok::<(), session_filter::Error>(())
    /// ```
    pub fn constant(&self) -> Option<bool> {
        match self.0.next(self.0.entry) {
            Next::Match => Some(true),
            Next::Fail => Some(false),
            Next::Op(_) => None,
        }
    }

    /// The match mask of a block of at most 64 sessions. `arrive[i]` collects
    /// the sessions that reach op `i`; ops run in order since jumps only go
    /// forward.
    fn eval_block(&self, block: &[Session], all: u64, arrive: &mut [u64]) -> u64 {
        let inner = &*self.0;
        let n = inner.ops.len();
        if all == 0 {
            return 0;
        }
        arrive.fill(0);
        arrive[inner.entry as usize] = all;
        let start = inner.entry as usize;
        for pc in start..n {
            let here = arrive[pc];
            if here == 0 {
                continue;
            }
            let op = inner.ops[pc];
            let yes = inner.test_block(op.test, block, here);
            arrive[op.on_true as usize] |= yes;
            arrive[op.on_false as usize] |= here & !yes;
        }
        arrive[n]
    }
}

/// Calls `f` with `base + i` for every bit `i` set in `bits`.
#[inline]
fn each_bit(base: usize, mut bits: u64, f: &mut impl FnMut(usize)) {
    while bits != 0 {
        f(base + bits.trailing_zeros() as usize);
        bits &= bits - 1;
    }
}

/// Programs needing at most this many scratch words evaluate with the
/// scratch on the stack.
const STACK_WORDS: usize = 32;

thread_local! {
    static THREAD_CACHE: std::cell::Cell<Cache> = std::cell::Cell::new(Cache::default());
}

/// Scratch for bulk evaluation: one word per instruction, reusable across
/// calls and programs (the shape of regex-automata's `Cache`).
#[derive(Default)]
pub struct Cache {
    arrive: Vec<u64>,
}

impl Cache {
    /// At least `n` words (grown, never shrunk).
    fn words(&mut self, n: usize) -> &mut [u64] {
        if self.arrive.len() < n {
            self.arrive.resize(n, 0);
        }
        &mut self.arrive[..n]
    }
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("words", &self.arrive.len())
            .finish()
    }
}

/// The sessions of block `b` (of `len` sessions) to evaluate.
fn block_mask(len: usize, live: Option<&[u64]>, b: usize) -> u64 {
    let all = if len == BLOCK {
        u64::MAX
    } else {
        (1u64 << len) - 1
    };
    match live {
        Some(words) => all & words.get(b).copied().unwrap_or(0),
        None => all,
    }
}

impl Program {
    /// The ops, for analyses of the program (not for running it).
    pub(crate) fn ops(&self) -> &[Op] {
        &self.0.ops
    }

    /// Where the program starts.
    pub(crate) fn entry(&self) -> Next {
        self.0.next(self.0.entry)
    }

    /// The ids of a pool.
    pub(crate) fn pool(&self, p: Pool) -> &[Sym] {
        self.0.pool(p)
    }

    /// The role sets of a `RolesIn` test.
    pub(crate) fn sets(&self, p: Pool) -> &[Pool] {
        self.0.sets_of(p)
    }

    /// Runs one test on one session.
    pub(crate) fn test(&self, test: Test, session: &Session) -> bool {
        self.0.test(test, session)
    }
}

impl Inner {
    #[inline]
    fn next(&self, target: u32) -> Next {
        let n = self.ops.len();
        match target as usize {
            t if t < n => Next::Op(t),
            t if t == n => Next::Match,
            _ => Next::Fail,
        }
    }

    fn sets_of(&self, p: Pool) -> &[Pool] {
        self.sets
            .get(p.start as usize..(p.start + p.len) as usize)
            .unwrap_or(&[])
    }

    fn pool(&self, p: Pool) -> &[Sym] {
        self.syms
            .get(p.start as usize..(p.start + p.len) as usize)
            .unwrap_or(&[])
    }

    #[inline]
    fn test(&self, test: Test, s: &Session) -> bool {
        match test {
            Test::FixedEq { slot, value } => s.fixed_sym(slot as usize) == value,
            Test::FixedIn { slot, values } => {
                let v = s.fixed_sym(slot as usize);
                v != Sym::NONE && contains(self.pool(values), v)
            }
            Test::FixedHas { slot } => s.fixed_sym(slot as usize) != Sym::NONE,
            Test::OtherEq { key, value } => s.other(key) == Some(value),
            Test::OtherIn { key, values } => {
                s.other(key).is_some_and(|v| contains(self.pool(values), v))
            }
            Test::OtherHas { key } => s.other(key).is_some(),
            Test::FixedMatches { slot, regex } => {
                let v = s.fixed_sym(slot as usize);
                v != Sym::NONE && self.is_match(regex, v)
            }
            Test::OtherMatches { key, regex } => {
                s.other(key).is_some_and(|v| self.is_match(regex, v))
            }
            Test::HasRoles { roles } => has_all(s.role_syms(), self.pool(roles)),
            Test::RolesEq { roles } => same_set(s.role_syms(), self.pool(roles)),
            Test::RolesIn { sets } => self
                .sets_of(sets)
                .iter()
                .any(|&set| same_set(s.role_syms(), self.pool(set))),
        }
    }

    /// The regex `regex` matches the whole of the value `v`. Kept out of
    /// line, so that [`Inner::test`] stays small enough to inline into the
    /// block loops of the other tests.
    #[inline(never)]
    fn is_match(&self, regex: u32, v: Sym) -> bool {
        self.regexes
            .get(regex as usize)
            .is_some_and(|r| crate::intern::with_text(v, |text| r.is_match(text)))
    }

    /// The sessions of `block` among `here` for which `test` holds. Cheap
    /// tests run branch-free over the whole block; the others visit only the
    /// sessions that reach them.
    #[inline]
    fn test_block(&self, test: Test, block: &[Session], here: u64) -> u64 {
        #[inline(always)]
        fn dense(block: &[Session], here: u64, f: impl Fn(&Session) -> bool) -> u64 {
            let mut bits = 0u64;
            for (i, s) in block.iter().enumerate() {
                bits |= (f(s) as u64) << i;
            }
            bits & here
        }
        #[inline(always)]
        fn sparse(block: &[Session], here: u64, f: impl Fn(&Session) -> bool) -> u64 {
            let mut bits = 0u64;
            let mut rest = here;
            while rest != 0 {
                let i = rest.trailing_zeros() as usize;
                if block.get(i).is_some_and(&f) {
                    bits |= 1 << i;
                }
                rest &= rest - 1;
            }
            bits
        }
        let dense_enough = here.count_ones() as usize * 4 >= block.len();
        match test {
            Test::FixedEq { slot, value } => {
                let slot = (slot as usize).min(FIXED_SLOTS - 1);
                dense(block, here, |s| s.fixed_sym(slot) == value)
            }
            Test::FixedHas { slot } => {
                let slot = (slot as usize).min(FIXED_SLOTS - 1);
                dense(block, here, |s| s.fixed_sym(slot) != Sym::NONE)
            }
            Test::FixedIn { slot, values } if values.len <= 8 && dense_enough => {
                let slot = (slot as usize).min(FIXED_SLOTS - 1);
                let set = self.pool(values);
                dense(block, here, |s| set.contains(&s.fixed_sym(slot)))
            }
            // The common tests each get a loop of their own, so that the
            // kind of test is decided once per block, not once per session
            // (which inlining `Inner::test` would do only by luck).
            Test::FixedIn { slot, values } => {
                let slot = (slot as usize).min(FIXED_SLOTS - 1);
                let set = self.pool(values);
                sparse(block, here, |s| {
                    let v = s.fixed_sym(slot);
                    v != Sym::NONE && contains(set, v)
                })
            }
            Test::OtherEq { key, value } => sparse(block, here, |s| s.other(key) == Some(value)),
            Test::OtherIn { key, values } => {
                let set = self.pool(values);
                sparse(block, here, |s| {
                    s.other(key).is_some_and(|v| contains(set, v))
                })
            }
            Test::OtherHas { key } => sparse(block, here, |s| s.other(key).is_some()),
            Test::HasRoles { roles } => {
                let set = self.pool(roles);
                match set {
                    [one] => sparse(block, here, |s| s.role_syms().contains(one)),
                    [a, b] => sparse(block, here, |s| {
                        s.role_syms().contains(a) && s.role_syms().contains(b)
                    }),
                    _ => sparse(block, here, |s| has_all(s.role_syms(), set)),
                }
            }
            test => sparse(block, here, |s| self.test(test, s)),
        }
    }

    /// The test in the words of the language, values resolved.
    fn describe(&self, test: Test) -> String {
        let text = |s: Sym| {
            crate::intern::resolve(s)
                .map(|t| t.to_string())
                .unwrap_or_default()
        };
        let quoted = |s: Sym| format!("\"{}\"", escape(&text(s)));
        // Pools are sorted by id, which differs from run to run: print them
        // sorted by text.
        let list = |p: Pool| {
            let mut items: Vec<String> = self.pool(p).iter().map(|&s| quoted(s)).collect();
            items.sort();
            format!("[{}]", items.join(", "))
        };
        let fixed = |slot: u8| FIXED_PROPERTIES.get(slot as usize).copied().unwrap_or("?");
        match test {
            Test::FixedEq { slot, value } => format!("{} is {}", fixed(slot), quoted(value)),
            Test::FixedIn { slot, values } => format!("{} in {}", fixed(slot), list(values)),
            Test::FixedHas { slot } => format!("has {}", fixed(slot)),
            Test::OtherEq { key, value } => format!("{} is {}", text(key), quoted(value)),
            Test::OtherIn { key, values } => format!("{} in {}", text(key), list(values)),
            Test::OtherHas { key } => format!("has {}", text(key)),
            Test::FixedMatches { slot, regex } => {
                format!("{} matches {}", fixed(slot), self.pattern(regex))
            }
            Test::OtherMatches { key, regex } => {
                format!("{} matches {}", text(key), self.pattern(regex))
            }
            Test::HasRoles { roles } => format!("hasRoles {}", list(roles)),
            Test::RolesEq { roles } => format!("$Roles is the set {}", list(roles)),
            Test::RolesIn { sets } => {
                let sets: Vec<String> = self.sets_of(sets).iter().map(|&p| list(p)).collect();
                let mut sets = sets;
                sets.sort();
                format!("$Roles is one of the sets [{}]", sets.join(", "))
            }
        }
    }
}

impl Inner {
    /// The text of regex `regex`, quoted as a value.
    fn pattern(&self, regex: u32) -> String {
        let text = self.regexes.get(regex as usize).map_or("", |r| r.as_str());
        format!("\"{}\"", escape(text))
    }
}

/// `v` is in `set` (sorted).
#[inline]
fn contains(set: &[Sym], v: Sym) -> bool {
    if set.len() <= 8 {
        set.contains(&v)
    } else {
        set.binary_search(&v).is_ok()
    }
}

/// Every role of `required` (sorted, distinct) is in `roles` (distinct).
#[inline]
fn has_all(roles: &[Sym], required: &[Sym]) -> bool {
    if required.len() > roles.len() {
        return false;
    }
    if required.len() <= 4 {
        required.iter().all(|r| roles.contains(r))
    } else {
        roles.iter().filter(|&&r| contains(required, r)).count() == required.len()
    }
}

/// `roles` (distinct) is exactly `set` (sorted, distinct).
#[inline]
fn same_set(roles: &[Sym], set: &[Sym]) -> bool {
    roles.len() == set.len() && roles.iter().all(|&r| contains(set, r))
}

impl fmt::Display for Program {
    /// The canonical text of the filter the program was compiled from.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.filter, f)
    }
}

impl fmt::Debug for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Program")
            .field("filter", &self.0.filter.to_string())
            .field("ops", &self.0.ops.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hot_types_stay_small() {
        assert!(
            std::mem::size_of::<Op>() <= 24,
            "{}",
            std::mem::size_of::<Op>()
        );
        assert!(std::mem::size_of::<Test>() <= 16);
    }

    #[test]
    fn programs_are_send_and_sync() {
        fn check<T: Send + Sync + Clone>() {}
        check::<Program>();
        check::<Session>();
    }
}
