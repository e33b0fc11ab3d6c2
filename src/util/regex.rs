//! The regular expressions of `matches` clauses (SPEC section 3): the
//! `regex` crate's dialect, anchored at both ends, compiled once.
//!
//! A pattern is parsed on its own first, so it must be a regular expression
//! by itself (`gold)|(silver` is not, although `^(?:gold)|(silver)$` would
//! be). Its syntax tree is then wrapped in start and end assertions and
//! compiled by regex-automata's meta engine, configured as the `regex` crate
//! configures it, within a size limit measured as
//! `regex::RegexBuilder::size_limit` measures it. Wrapping the tree rather
//! than the text keeps flags and comments (`(?x)a # note`) from escaping the
//! anchors. Anchoring both ends makes the test "some match covers the whole
//! value", as Java's `String.matches` (`Acc|Accounts` matches `Accounts`).

use regex_automata::meta;
use regex_automata::util::syntax::Config as SyntaxConfig;
use regex_automata::MatchKind;
use regex_syntax::hir::{Hir, Look};

/// A compiled `matches` regular expression. Cloning shares the compiled
/// program (each clone has its own pool of search caches).
#[derive(Clone)]
pub(crate) struct Regex {
    meta: meta::Regex,
    /// The pattern as written (before anchoring), for `explain`.
    pattern: std::sync::Arc<str>,
}

impl Regex {
    /// Compiles `pattern`, anchored at both ends, with the compiled NFA at
    /// most `size_limit` bytes. The error is the `regex` crate's message.
    pub(crate) fn new(pattern: &str, size_limit: usize) -> Result<Regex, String> {
        let hir = anchored(pattern)?;
        let config = meta::Config::new()
            .match_kind(MatchKind::LeftmostFirst)
            .utf8_empty(true)
            .nfa_size_limit(Some(size_limit));
        meta::Builder::new()
            .configure(config)
            .syntax(SyntaxConfig::new().utf8(true))
            .build_from_hir(&hir)
            .map(|meta| Regex {
                meta,
                pattern: pattern.into(),
            })
            .map_err(|e| match e.size_limit() {
                // The words of `regex::Error::CompiledTooBig`.
                Some(limit) => format!("Compiled regex exceeds size limit of {limit} bytes."),
                None => e.to_string(),
            })
    }

    /// True when the whole of `text` matches. Allocates nothing once the
    /// calling thread has a search cache (the regex keeps a pool of them).
    #[inline]
    pub(crate) fn is_match(&self, text: &str) -> bool {
        self.meta.is_match(text)
    }

    /// The pattern as written.
    pub(crate) fn as_str(&self) -> &str {
        &self.pattern
    }
}

impl std::fmt::Debug for Regex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Regex").field(&self.pattern).finish()
    }
}

/// `pattern` parsed on its own, as the `regex` crate parses it, then
/// wrapped in `\A(?:…)\z`.
pub(crate) fn anchored(pattern: &str) -> Result<Hir, String> {
    let hir = regex_syntax::ParserBuilder::new()
        .utf8(true)
        .build()
        .parse(pattern)
        .map_err(|e| e.to_string())?;
    Ok(Hir::concat(vec![
        Hir::look(Look::Start),
        hir,
        Hir::look(Look::End),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 256 * 1024;

    #[test]
    fn anchored_at_both_ends_and_any_match_covering_the_value_counts() {
        let r = Regex::new("gold|silver", LIMIT).unwrap();
        assert!(r.is_match("gold") && r.is_match("silver"));
        assert!(!r.is_match("golden") && !r.is_match("a gold"));
        assert!(Regex::new("Acc|Accounts", LIMIT)
            .unwrap()
            .is_match("Accounts"));
        // Flags and comments stay inside the group.
        let r = Regex::new("(?x) a b # a comment", LIMIT).unwrap();
        assert!(r.is_match("ab") && !r.is_match("abc"));
        let r = Regex::new("(?m)a$", LIMIT).unwrap();
        assert!(!r.is_match("a\nb"));
    }

    #[test]
    fn a_pattern_must_compile_on_its_own() {
        assert!(Regex::new("gold)|(silver", LIMIT).is_err());
        assert!(Regex::new("(.)\\1", LIMIT).is_err());
        let err = Regex::new("\\w{30}", LIMIT).unwrap_err();
        assert!(err.contains("size limit of 262144 bytes"), "{err}");
        assert!(Regex::new("\\w{30}", 64 * LIMIT).is_ok());
    }
}
