//! Globs that spell a sensitive path: `/e?c/p?sswd`, `/etc/pa[s]swd`, `/[e//]tc/[!q]asswd`. The
//! shell expands them to the file; nobody writes a file name that way in prose.

use super::super::lexer::{glob_match, is_blank, is_sep};
use super::{fire, Rule};
use crate::inspect::normalize::Marks;
use crate::inspect::rules::RuleFilter;

/// Files a glob is resolved against.
const GLOB_PATHS: &[&[u8]] = &[
    b"/etc/passwd",
    b"/etc/shadow",
    b"/etc/group",
    b"/etc/hosts",
    b"/etc/issue",
    b"/etc/sudoers",
    b"/proc/self/environ",
    b"/bin/sh",
    b"/bin/bash",
    b"/bin/cat",
    b"/bin/nc",
];

/// Bytes that end a word of a command line.
fn word_break(b: u8) -> bool {
    is_blank(b)
        || is_sep(b)
        || matches!(
            b,
            b'\'' | b'"' | b'`' | b'(' | b')' | b'<' | b'>' | b'{' | b'}' | b','
        )
}

/// A word with glob characters that matches one of [`GLOB_PATHS`].
pub(in crate::inspect::cmdi) fn glob_path(
    s: &[u8],
    marks: Marks,
    rules: RuleFilter<'_>,
) -> Option<Rule> {
    if !marks.has(b'/') || !(marks.has(b'?') || marks.has(b'[') || marks.has(b'*')) {
        return None;
    }
    // The words around each glob character, each word once.
    let mut word_end = 0;
    for g in memchr::memchr3_iter(b'?', b'*', b'[', s) {
        if g < word_end {
            continue;
        }
        let start = s[..g]
            .iter()
            .rposition(|&b| word_break(b))
            .map_or(0, |k| k + 1);
        word_end = s[g..]
            .iter()
            .position(|&b| word_break(b))
            .map_or(s.len(), |k| k + g);
        let w = &s[start..word_end];
        let Some(slash) = w.iter().position(|&b| b == b'/') else {
            continue;
        };
        let path = &w[slash..];
        let globs = path
            .iter()
            .filter(|&&b| matches!(b, b'?' | b'*' | b'['))
            .count();
        let stars = path.iter().filter(|&&b| b == b'*').count();
        let letters = path.iter().filter(|b| b.is_ascii_alphabetic()).count();
        if globs == 0 || stars > 3 || letters < 3 || path.len() > 64 {
            continue;
        }
        if GLOB_PATHS.iter().any(|t| glob_match(path, t)) {
            fire!(rules, "cmdi-glob-path");
        }
    }
    None
}
