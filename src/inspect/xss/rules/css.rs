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

pub(in crate::inspect::xss) fn css_dangerous_plain(css: &[u8]) -> bool {
    // Every shape below has one of these bytes; most attribute values have none.
    if !css
        .iter()
        .any(|&b| matches!(b, b'(' | b':' | b'\\' | b'@' | b'-'))
    {
        return false;
    }
    find(css, b"expression(").is_some()
        || find(css, b"behaviour:").is_some()
        || find(css, b"binding:url(").is_some()
        || find(css, b"expression\\").is_some()
        || find(css, b"javascript:").is_some()
        || find(css, b"vbscript:").is_some()
        || find(css, b"behavior:").is_some()
        || find(css, b"-moz-binding").is_some()
        || find(css, b"@import").is_some()
        || find(css, b"url(").is_some_and(|p| url_runs_script(&css[p + 4..]))
}

/// After `url(`: a script scheme (`url(javascript:...)`, `url( 'vbscript`), also cut short.
pub(in crate::inspect::xss) fn url_runs_script(after: &[u8]) -> bool {
    let k = after
        .iter()
        .position(|&b| !(is_ws(b) || matches!(b, b'"' | b'\'')))
        .unwrap_or(after.len());
    let v = &after[k..];
    v.starts_with(b"javascript") || v.starts_with(b"vbscript") || v.starts_with(b"livescript")
}
