//! The depth pre-scan: bounds nesting before the parser builds anything.
//!
//! The parser keeps a frame per open `(` (on the heap) and the tree it
//! builds is as deep as the filter nests, so hostile nesting is rejected
//! first, cheaply. This scan reads the filter once, without recursion,
//! skipping quoted values, and measures the depth as SPEC section 5 counts
//! it: every `(` and every `not` on the path to a clause. It rejects a filter
//! as soon as that depth passes the limit. (It was written to keep pest's
//! recursion bounded; the pest grammar, run as the parser's oracle in the
//! tests, still relies on it.)
//!
//! Parentheses are counted exactly. A word that reads as the keyword `not`
//! counts unless the grammar would
//! read it as a key (`not is 'x'`, `not in […]`, `has not`); that guess only
//! looks a few tokens ahead, so the parser, which sees the real tree,
//! enforces the limit exactly afterwards. The scan never counts more than the
//! parser on a filter that parses, so it never rejects one the limit allows.
//!
//! Most filters need no scan: one shorter than the limit, or with fewer `(`,
//! `n` and `N` bytes than the limit, cannot nest deeper than it.

use super::ast::Span;
use super::error::{Error, ErrorKind};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok<'a> {
    Open,
    Close,
    /// A quoted value (or an unterminated one running to the end).
    Value,
    /// A run of characters other than whitespace, quotes and parentheses.
    Word(&'a [u8]),
}

#[derive(Clone)]
struct Tokens<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Tokens<'a> {
    /// The token and its byte range.
    type Item = (Tok<'a>, usize, usize);

    fn next(&mut self) -> Option<Self::Item> {
        let s = self.s;
        while self.pos < s.len() && matches!(s[self.pos], b' ' | b'\t' | b'\r' | b'\n') {
            self.pos += 1;
        }
        let start = self.pos;
        let tok = match *s.get(start)? {
            b'(' => {
                self.pos += 1;
                Tok::Open
            }
            b')' => {
                self.pos += 1;
                Tok::Close
            }
            q @ (b'"' | b'\'') => {
                let mut i = start + 1;
                while i < s.len() && s[i] != q {
                    i += if s[i] == b'\\' { 2 } else { 1 };
                }
                self.pos = (i + 1).min(s.len());
                Tok::Value
            }
            _ => {
                let mut i = start;
                while i < s.len() && !is_delimiter(s[i]) {
                    i += 1;
                }
                self.pos = i;
                Tok::Word(&s[start..i])
            }
        };
        Some((tok, start, self.pos))
    }
}

fn is_delimiter(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'"' | b'\'' | b'(' | b')')
}

/// True when `word` starts with the keyword `kw` (ASCII case-insensitive),
/// ending where a keyword may end inside a word: at its end, `[` or `{`.
fn starts_with_keyword(word: &[u8], kw: &[u8]) -> bool {
    word.len() >= kw.len()
        && word[..kw.len()].eq_ignore_ascii_case(kw)
        && matches!(word.get(kw.len()), None | Some(b'[' | b'{'))
}

fn is_exactly(word: &[u8], kw: &[u8]) -> bool {
    word.eq_ignore_ascii_case(kw)
}

/// Whether the tokens after a key-like word make it the key of a clause:
/// `is`/`eq`/`ne`/`matches` and a value, or `in` and the start of a list (a value, or
/// `[`/`{` and a value). Where a list only starts, the clause may still fail
/// further on, but then no reading of the `not` parses either.
///
/// `None` when the text ends before that is decided. On text cut short (the
/// allowed prefix of an over-long filter) a token reaching the end may itself
/// be cut, so it counts as the end too.
fn key_clause_follows(mut rest: Tokens<'_>, cut: bool) -> Option<bool> {
    let len = rest.s.len();
    let mut next = move || {
        rest.next()
            .filter(|&(_, _, end)| !cut || end < len)
            .map(|(tok, ..)| tok)
    };
    Some(match next()? {
        Tok::Word(op)
            if is_exactly(op, b"is")
                || is_exactly(op, b"eq")
                || is_exactly(op, b"ne")
                || is_exactly(op, b"matches") =>
        {
            matches!(next()?, Tok::Value)
        }
        Tok::Word(op) if is_exactly(op, b"in") => match next()? {
            Tok::Value => true,
            Tok::Word(b"[" | b"{") => matches!(next()?, Tok::Value),
            _ => false,
        },
        // `in[` or `in{` as one word: the keyword and the bracket.
        Tok::Word(op) if op.len() == 3 && starts_with_keyword(op, b"in") => {
            matches!(next()?, Tok::Value)
        }
        _ => false,
    })
}

/// Fails with [`ErrorKind::TooDeep`] at the first `(` or `not` that nests
/// deeper than `max`. Otherwise returns a bound on how deeply the filter
/// nests parentheses (at most `max`).
///
/// `cut` says `input` is the allowed prefix of a longer filter: then a `not`
/// whose reading depends on text past the cut is not counted, so the scan
/// never reports a depth the whole filter does not have.
#[doc(hidden)]
pub fn check_depth(input: &str, max: usize, cut: bool) -> Result<usize, Error> {
    // Every `(` and every `not` on a path to a clause has a byte of its own,
    // a `(` or an `n`/`N`: a filter with no more bytes than the limit, or no
    // more of those bytes (most filters are one or both), cannot nest too
    // deep and needs no scan.
    if input.len() <= max {
        return Ok(input.bytes().filter(|&b| b == b'(').count());
    }
    let mut parens = 0;
    let mut counted = 0;
    for b in input.bytes() {
        match b {
            b'(' => parens += 1,
            b'n' | b'N' => {}
            _ => continue,
        }
        counted += 1;
        if counted > max {
            // Hostile input stops counting here and goes to the scan.
            return scan_depth(input, max, cut);
        }
    }
    Ok(parens)
}

/// The scan proper: [`check_depth`] without the shortcut. The bound it
/// returns is the deepest nesting of parentheses it saw.
fn scan_depth(input: &str, max: usize, cut: bool) -> Result<usize, Error> {
    let mut tokens = Tokens {
        s: input.as_bytes(),
        pos: 0,
    };
    // The depth a clause read now would have.
    let mut depth = 0usize;
    // `not`s at this parenthesis level still waiting for their operand.
    let mut pending = 0usize;
    // For each open `(`, the `not`s that were pending before it.
    let mut saved: Vec<usize> = Vec::new();
    let mut deepest_parens = 0;
    let mut after_has = false;
    while let Some((tok, start, end)) = tokens.next() {
        let deeper = match tok {
            Tok::Open => {
                saved.push(pending);
                deepest_parens = deepest_parens.max(saved.len());
                pending = 0;
                true
            }
            Tok::Close => {
                if let Some(before) = saved.pop() {
                    depth = depth.saturating_sub(1 + before + pending);
                    pending = 0;
                }
                false
            }
            Tok::Word(w)
                if !after_has
                    && starts_with_keyword(w, b"not")
                    && match key_clause_follows(tokens.clone(), cut) {
                        Some(is_key) => !is_key,
                        // Past the end of a whole filter nothing parses, so
                        // counting is harmless; past a cut it may be wrong.
                        None => !cut,
                    } =>
            {
                pending += 1;
                true
            }
            // Anything else starts or continues a clause, which takes the
            // pending `not`s as its own.
            _ => {
                depth -= pending;
                pending = 0;
                false
            }
        };
        if deeper {
            depth += 1;
            if depth > max {
                return Err(Error::new(
                    ErrorKind::TooDeep { max },
                    Span::new(start as u32, end as u32),
                    input,
                ));
            }
        }
        after_has = matches!(tok, Tok::Word(w) if is_exactly(w, b"has"));
    }
    Ok(deepest_parens)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The deepest nesting the scan measures: the smallest limit that passes.
    fn depth(input: &str) -> usize {
        (0..64)
            .find(|&max| scan_depth(input, max, false).is_ok())
            .expect("depth below 64")
    }

    #[test]
    fn counts_parentheses_and_nots_on_the_path_to_a_clause() {
        assert_eq!(depth("all"), 0);
        assert_eq!(depth("(all)"), 1);
        assert_eq!(depth("not all"), 1);
        assert_eq!(depth("not not not has Tier"), 3);
        assert_eq!(depth("not (a is 'x' and not (b is 'y'))"), 4);
        assert_eq!(depth("not a is 'x' and not b is 'y'"), 1);
        assert_eq!(depth("(not (all)) or ((all))"), 3);
        assert_eq!(depth("not(not(all))"), 4);
        assert_eq!(depth("NOT all"), 1);
    }

    #[test]
    fn a_not_read_as_a_key_does_not_count() {
        assert_eq!(depth("not is 'no'"), 0);
        assert_eq!(depth("not eq\"no\""), 0);
        assert_eq!(depth("not matches 'no'"), 0);
        assert_eq!(depth("not in ['a']"), 0);
        assert_eq!(depth("not in['a']"), 0);
        assert_eq!(depth("not[x] is 'y'"), 0);
        assert_eq!(depth("has not"), 0);
        assert_eq!(depth("not not is 'y'"), 1);
        assert_eq!(depth("not is is 'y'"), 1);
        assert_eq!(depth("not and is 'y'"), 1);
        assert_eq!(depth("notice is 'x'"), 0);
        assert_eq!(depth("not in {'a'}"), 0);
        // `in[` is the key here: the list cannot start at ` ne`.
        assert_eq!(depth("not in[ ne\"\""), 1);
        assert_eq!(depth("not in [x] is 'y'"), 1);
        assert_eq!(depth("not in[x is 'y'"), 1);
    }

    #[test]
    fn on_a_cut_prefix_a_not_read_past_the_cut_does_not_count() {
        // Whole, these are clauses on the key `not` or `nothing`, at depth 1.
        for prefix in ["(not", "(not is", "(not i", "(not is 'y", "(nothing is 'x'"] {
            assert!(scan_depth(prefix, 1, true).is_ok(), "{prefix:?}");
        }
        assert!(scan_depth("(not not is 'x'", 1, true).is_err());
        assert!(scan_depth("((all", 1, true).is_err());
    }

    #[test]
    fn quoted_values_are_skipped() {
        assert_eq!(depth(r#"a is "((((not not" and b is '\'(('"#), 0);
        assert_eq!(depth(r#"(a is "unterminated ((((("#), 1);
    }

    #[test]
    fn the_shortcut_only_passes_filters_the_scan_passes() {
        let deep = |open: &str, n: usize| format!("{}all{}", open.repeat(n), ")".repeat(n));
        let mut inputs = vec![
            deep("(", 3),
            deep("not (", 3),
            deep("NOT(", 3),
            "not not not has n".to_owned(),
            "n is 'x' and N is '((('".to_owned(),
            deep("(", 300),
            deep("not(", 200),
            format!("{}all", "not ".repeat(300)),
            format!("x in [{}'a']", "'n', ".repeat(100)),
        ];
        inputs.push(format!("{} and {}", inputs[5], inputs[6]));
        for input in &inputs {
            for max in (0..12).chain([255, 256, 299, 300, 301, 600]) {
                let Ok(parens) = check_depth(input, max, false) else {
                    continue;
                };
                let scanned = scan_depth(input, max, false);
                assert!(scanned.is_ok(), "{input:?} at {max}");
                // Both bound the nesting of parentheses from above.
                let nesting = input.matches('(').count().min(scanned.unwrap_or(0));
                assert!(parens <= max && parens >= nesting, "{input:?} at {max}");
            }
        }
    }

    #[test]
    fn the_bound_covers_the_nesting_of_parentheses() {
        let input = format!(
            "({}) or ({}all{})",
            "x is '(('",
            "(".repeat(20),
            ")".repeat(20)
        );
        // 24 `(` bytes (two of them quoted), 21 levels of parentheses.
        assert_eq!(check_depth(&input, 64, false).unwrap(), 24);
        assert_eq!(check_depth(&input, 22, false).unwrap(), 21);
        assert!(check_depth(&input, 20, false).is_err());
    }

    #[test]
    fn reports_the_first_token_past_the_limit() {
        let input = format!("{}all{}", "(".repeat(5), ")".repeat(5));
        let err = check_depth(&input, 3, false).unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::TooDeep { max: 3 });
        assert_eq!(err.offset(), 3);
        let err = check_depth("not not  not all", 2, false).unwrap_err();
        assert_eq!(err.span(), Span::new(9, 12));
    }
}
