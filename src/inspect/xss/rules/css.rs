//! CSS rules: style that runs script (`expression(...)`, `behavior`, `-moz-binding`, `javascript:`
//! URLs, `@import`), also when split by comments and escapes.

use super::super::super::search::find;
use super::super::text::is_ws;

/// `expression` (possibly split by CSS comments or escapes) right before the `(` at `paren`,
/// after a `:` or `=`.
pub(in crate::inspect::xss) fn expression_before(s: &[u8], paren: usize) -> bool {
    let start = paren.saturating_sub(96);
    let window = &s[start..paren];
    // Walk backwards, dropping `/*...*/`, backslashes and spaces.
    let mut out = [0u8; 96];
    let mut len = 0;
    let mut k = window.len();
    while k > 0 && len < out.len() {
        let b = window[k - 1];
        if b == b'/' && k >= 2 && window[k - 2] == b'*' {
            // End of a comment: skip back to its start.
            let mut m = k - 2;
            while m >= 2 && !(window[m - 2] == b'/' && window[m - 1] == b'*') {
                m -= 1;
            }
            k = m.saturating_sub(2);
            continue;
        }
        if !(is_ws(b) || b == b'\\') {
            out[len] = b;
            len += 1;
        }
        k -= 1;
        if len > 11 {
            break;
        }
    }
    out[..len].reverse();
    let t = &out[..len];
    t.ends_with(b"expression")
        && t.len() > 10
        && matches!(t[t.len() - 11], b':' | b'=' | b'"' | b'\'')
}

pub(in crate::inspect::xss) fn css_dangerous(css: &[u8]) -> bool {
    if css_dangerous_plain(css) {
        return true;
    }
    if find(css, b"/*").is_none() && !css.contains(&b'\\') && !css.iter().any(|&b| is_ws(b)) {
        return false;
    }
    // CSS ignores comments and escapes inside identifiers: `expr/**/ession(`, `\65xpression`.
    // Comments do not start inside strings: `("*//*")` is a string.
    let mut buf = [0u8; 512];
    let mut len = 0;
    let mut i = 0;
    while i < css.len() && len < buf.len() {
        if matches!(css[i], b'"' | b'\'') {
            let q = css[i];
            let end = css[i + 1..]
                .iter()
                .position(|&b| b == q)
                .map_or(css.len(), |p| i + 1 + p + 1);
            for &b in &css[i..end.min(css.len())] {
                if len < buf.len() {
                    buf[len] = b;
                    len += 1;
                }
            }
            i = end;
            continue;
        }
        if css[i] == b'/' && css.get(i + 1) == Some(&b'*') {
            i += 2;
            while i < css.len() && !(css[i] == b'*' && css.get(i + 1) == Some(&b'/')) {
                i += 1;
            }
            i += 2;
            continue;
        }
        if !(is_ws(css[i]) || css[i] == b'\\') {
            buf[len] = css[i];
            len += 1;
        }
        i += 1;
    }
    css_dangerous_plain(&buf[..len])
}

/// Style that runs script, read without comments and escapes: `expression(`, `expression\`,
/// `behavior:` / `behaviour:`, `binding:url(`, `-moz-binding`, `javascript:` / `vbscript:`,
/// `@import`, or a first `url(` that runs a script scheme. Every one of these holds one of the
/// bytes `(`, `:`, `\`, `-`, `@` at a fixed place, so one pass visits only those bytes and
/// compares the words around them.
pub(in crate::inspect::xss) fn css_dangerous_plain(css: &[u8]) -> bool {
    let mut first_url = true;
    for (p, &b) in css.iter().enumerate() {
        if !CSS_MARKERS[usize::from(b)] {
            continue;
        }
        let before = &css[..p];
        let dangerous = match b {
            b'(' => {
                if before.ends_with(b"expression") {
                    true
                } else if first_url && before.ends_with(b"url") {
                    // Only the first `url(` is judged.
                    first_url = false;
                    url_runs_script(&css[p + 1..])
                } else {
                    false
                }
            }
            b':' => {
                before.ends_with(b"behaviour")
                    || before.ends_with(b"behavior")
                    || before.ends_with(b"javascript")
                    || before.ends_with(b"vbscript")
                    || (before.ends_with(b"binding") && css[p + 1..].starts_with(b"url("))
            }
            b'\\' => before.ends_with(b"expression"),
            b'-' => css[p..].starts_with(b"-moz-binding"),
            _ => css[p..].starts_with(b"@import"),
        };
        if dangerous {
            return true;
        }
    }
    false
}

/// The bytes [`css_dangerous_plain`] compares around.
static CSS_MARKERS: [bool; 256] = {
    let mut t = [false; 256];
    t[b'(' as usize] = true;
    t[b':' as usize] = true;
    t[b'\\' as usize] = true;
    t[b'-' as usize] = true;
    t[b'@' as usize] = true;
    t
};

/// After `url(`: a script scheme (`url(javascript:...)`, `url( 'vbscript`), also cut short.
pub(in crate::inspect::xss) fn url_runs_script(after: &[u8]) -> bool {
    let k = after
        .iter()
        .position(|&b| !(is_ws(b) || matches!(b, b'"' | b'\'')))
        .unwrap_or(after.len());
    let v = &after[k..];
    v.starts_with(b"javascript") || v.starts_with(b"vbscript") || v.starts_with(b"livescript")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The needle-by-needle reading the one-pass [`css_dangerous_plain`] replaced.
    fn by_needles(css: &[u8]) -> bool {
        let has = |n: &[u8]| css.windows(n.len()).any(|w| w == n);
        has(b"expression(")
            || has(b"behaviour:")
            || has(b"binding:url(")
            || has(b"expression\\")
            || has(b"javascript:")
            || has(b"vbscript:")
            || has(b"behavior:")
            || has(b"-moz-binding")
            || has(b"@import")
            || css
                .windows(4)
                .position(|w| w == b"url(")
                .is_some_and(|p| url_runs_script(&css[p + 4..]))
    }

    #[test]
    fn one_pass_reads_what_the_needles_read() {
        let pieces: &[&[u8]] = &[
            b"url(",
            b"javascript",
            b":",
            b"vbscript",
            b"expression",
            b"(",
            b"\\",
            b"behavior",
            b"behaviour",
            b"binding",
            b"-moz-binding",
            b"@import",
            b"color",
            b" ",
            b"'",
            b"red",
            b";",
            b"-",
            b"@",
            b"x",
        ];
        let mut x: u32 = 0x1234_5678;
        for _ in 0..20_000 {
            let mut css = Vec::new();
            for _ in 0..(x % 7) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                css.extend_from_slice(pieces[(x as usize) % pieces.len()]);
            }
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            assert_eq!(
                css_dangerous_plain(&css),
                by_needles(&css),
                "{}",
                String::from_utf8_lossy(&css)
            );
        }
        assert!(css_dangerous_plain(b"width:expression(alert(1))"));
        assert!(css_dangerous_plain(b"background:url( 'vbscript:x')"));
        assert!(!css_dangerous_plain(
            b"background:url(a.png) url( vbscript)"
        ));
        assert!(!css_dangerous_plain(b"color: red; margin-top: -2px"));
    }
}
