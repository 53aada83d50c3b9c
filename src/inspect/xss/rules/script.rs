//! Script rules that need no markup: keywords split across string literals, sinks passed around
//! as values.

use super::super::super::search::find;
use super::super::text::skip_ws;
use super::super::Rule;

/// Script assembled from short string literals: `'jav'+'ascript:'`, `a='ev'+'al'`. The contents
/// of the literals are joined in order; a keyword that only appears across a joint is one that
/// was split on purpose.
pub(in crate::inspect::xss) fn split_keyword(s: &[u8]) -> Option<Rule> {
    const MAX: usize = 512;
    let mut joined = [0u8; MAX];
    let mut len = 0;
    // Where each literal's content starts in `joined` (only the first few dozen are kept).
    let mut starts = [0u16; 64];
    let mut literals = 0;
    let mut prev_end = 0;
    let mut i = 0;
    while i < s.len() && len < MAX {
        let q = s[i];
        if !matches!(q, b'\'' | b'"') {
            i += 1;
            continue;
        }
        let Some(end) = s[i + 1..].iter().position(|&b| b == q) else {
            break;
        };
        let body = &s[i + 1..i + 1 + end];
        // Literals separated only by a comma are items of a list, not parts of one string.
        let listed = s[prev_end.min(i)..i].trim_ascii() == b",";
        prev_end = i + end + 2;
        if body.len() <= 12 {
            if literals < starts.len() {
                starts[literals] = if listed {
                    u16::MAX
                } else {
                    u16::try_from(len).unwrap_or(u16::MAX)
                };
            }
            literals += 1;
            for &b in body {
                if len < MAX {
                    joined[len] = b;
                    len += 1;
                }
            }
        }
        i += end + 2;
    }
    if literals < 2 {
        return None;
    }
    let joined = &joined[..len];
    let starts = &starts[..literals.min(64)];
    for kw in [
        &b"javascript:"[..],
        b"eval",
        b"alert",
        b"iframe",
        b"location",
        b"cookie",
        b"fromcharcode",
    ] {
        let mut from = 0;
        while let Some(p) = find(&joined[from..], kw) {
            let at = from + p;
            // Split: some literal starts strictly inside the keyword.
            if starts
                .iter()
                .any(|&b| usize::from(b) > at && usize::from(b) < at + kw.len())
            {
                return Some("xss-split-keyword");
            }
            from = at + 1;
        }
    }
    None
}

/// `alert` / `prompt` / `confirm` / `eval` referenced as a value (after `=`, `(` or `,`), not
/// called by name: `a=alert,a(1)`, `(alert)(1)`, `b=eval;`.
pub(in crate::inspect::xss) fn sink_reference(s: &[u8]) -> Option<Rule> {
    let s = skip_ws(s);
    if !matches!(s.first(), Some(b'a' | b'p' | b'c' | b'e')) {
        return None;
    }
    for sink in [&b"alert"[..], b"prompt", b"confirm", b"eval"] {
        if let Some(after) = s.strip_prefix(sink) {
            let after = skip_ws(after);
            if matches!(after.first(), None | Some(b';' | b',' | b')')) {
                return Some("xss-js-sink");
            }
        }
    }
    None
}
