//! Script rules that need no markup: keywords split across string literals, sinks passed around
//! as values.

use super::super::super::search::find;
use super::super::text::{is_ident, is_ws, skip_code_gap, skip_code_gap_back, skip_ws};
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
        // Literals separated only by a comma are items of a list, and by a colon a key and its
        // value (JSON, object literals): not parts of one string.
        let listed = matches!(s[prev_end.min(i)..i].trim_ascii(), b"," | b":");
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

/// Objects whose properties leak the session or move the page.
const GLOBALS: &[&[u8]] = &[
    b"document",
    b"window",
    b"self",
    b"top",
    b"parent",
    b"globalthis",
    b"frames",
    b"content",
];

/// The identifier that ends at `end` (exclusive), when a whole one does.
fn ident_before(s: &[u8], end: usize) -> &[u8] {
    let mut k = end;
    while k > 0 && is_ident(s[k - 1]) {
        k -= 1;
    }
    &s[k..end]
}

/// The object whose member `name` starts at `at`, spelled `obj.name`, `obj /**/ . name`,
/// `obj["name"]` or `(obj)['name']`; and where the member access ends.
fn member_of(s: &[u8], at: usize, name_len: usize) -> Option<(&[u8], usize)> {
    let end = at + name_len;
    if s.get(end).copied().is_some_and(is_ident) {
        return None;
    }
    if at == 0 {
        return None;
    }
    let (before_obj, after) = if matches!(s[at - 1], b'"' | b'\'' | b'`') {
        // `["name"]`: the quote closes right after the name, a `[` opens before it.
        let q = s[at - 1];
        if s.get(end) != Some(&q) {
            return None;
        }
        let open = skip_code_gap_back(s, at - 1);
        if open == 0 || s[open - 1] != b'[' {
            return None;
        }
        let close = skip_code_gap(s, end + 1);
        if s.get(close) != Some(&b']') {
            return None;
        }
        (skip_code_gap_back(s, open - 1), close + 1)
    } else {
        let dot = skip_code_gap_back(s, at);
        if dot == 0 || s[dot - 1] != b'.' {
            return None;
        }
        (skip_code_gap_back(s, dot - 1), end)
    };
    // `(document)`: a parenthesized object.
    let obj_end = if before_obj > 0 && s[before_obj - 1] == b')' {
        skip_code_gap_back(s, before_obj - 1)
    } else {
        before_obj
    };
    Some((ident_before(s, obj_end), after))
}

/// Properties that only script reads or sets, where [`sensitive_member_at`] looks.
pub(in crate::inspect::xss) const SENSITIVE: &[&[u8]] = &[b"cookie", b"domain", b"location"];

/// A global object's member that only script reads, whose name starts at `at`: the session
/// cookie, the document's domain, the page's location (read whole, assigned, or assigned from).
pub(in crate::inspect::xss) fn sensitive_member_at(s: &[u8], at: usize) -> bool {
    let Some(prop) = SENSITIVE.iter().find(|p| s[at..].starts_with(p)) else {
        return false;
    };
    let Some((obj, after)) = member_of(s, at, prop.len()) else {
        return false;
    };
    if !GLOBALS.contains(&obj) || (*prop == b"domain" && obj != b"document") {
        return false;
    }
    if *prop != b"location" {
        return true;
    }
    // `window.location` alone, `x=window.location`, `window.location='//evil'`,
    // `window.location.href=...`.
    let obj_start = s[..at].windows(obj.len()).rposition(|w| w == obj);
    let before = obj_start.map_or(0, |o| skip_code_gap_back(s, o));
    let whole_before = before == 0 || matches!(s[before - 1], b'=' | b'(' | b',' | b';');
    let mut k = skip_code_gap(s, after);
    if s[k..].starts_with(b".href") || s[k..].starts_with(b".hash") {
        k = skip_code_gap(s, k + 5);
    }
    let assigned = s.get(k) == Some(&b'=') && s.get(k + 1) != Some(&b'=');
    let whole_after = k >= s.len() || matches!(s[k], b';' | b')' | b',');
    assigned || (whole_before && whole_after)
}

/// Script that writes the page: `document.body.appendChild(...)`, `el.innerHTML = ...`,
/// `document.querySelector("p").textContent = "..."`, `document.write(...)`.
pub(in crate::inspect::xss) fn dom_write(code: &[u8]) -> bool {
    if !code.starts_with(b"document.") {
        return false;
    }
    // The document is reached through a method call, then written.
    let reached = [
        &b"queryselector"[..],
        b"getelementby",
        b"body.",
        b"createelement(",
        b"documentelement.",
        b"write(",
        b"writeln(",
    ]
    .iter()
    .any(|m| code[9..].starts_with(m));
    if !reached {
        return false;
    }
    if code[9..].starts_with(b"write(") || code[9..].starts_with(b"writeln(") {
        return true;
    }
    for sink in [
        &b".innerhtml"[..],
        b".outerhtml",
        b".textcontent",
        b".innertext",
        b".srcdoc",
    ] {
        let mut from = 0;
        while let Some(p) = find(&code[from..], sink) {
            let k = skip_code_gap(code, from + p + sink.len());
            if code.get(k) == Some(&b'=') && code.get(k + 1) != Some(&b'=') {
                return true;
            }
            from += p + 1;
        }
    }
    [
        &b"appendchild("[..],
        b"insertadjacenthtml(",
        b"replacewith(",
    ]
    .iter()
    .any(|m| find(code, m).is_some())
}

/// JSFuck and friends: script written with `[]()!+` alone (`(![]+[])[+!+[]]`), which only a
/// JavaScript engine makes sense of. (`+` may have become a space in form encoding.)
pub(in crate::inspect::xss) fn bracket_script(s: &[u8]) -> bool {
    let mut brackets = 0;
    let mut bangs = 0;
    let mut code = 0;
    for &b in s {
        match b {
            b'[' | b']' => brackets += 1,
            b'!' => bangs += 1,
            b'(' | b')' | b'+' => {}
            _ if is_ws(b) => continue,
            _ => return false,
        }
        code += 1;
    }
    code >= 12 && brackets >= 6 && bangs >= 2 && find(s, b"![]").is_some()
}

/// A global looked up by a computed name: `self["al"+"ert"]`, `top /**/ ['\x61lert']`,
/// `window[atob(...)]`; the name is a sink, escaped, or built.
pub(in crate::inspect::xss) fn computed_global_at(s: &[u8], open: usize) -> bool {
    let obj_end = skip_code_gap_back(s, open);
    let obj = ident_before(s, obj_end);
    if obj.is_empty() || !GLOBALS.contains(&obj) {
        return false;
    }
    let start = obj_end - obj.len();
    if start > 0 && matches!(s[start - 1], b'.') {
        return false;
    }
    let k = skip_code_gap(s, open + 1);
    let Some(&q) = s.get(k) else {
        return false;
    };
    let inner = &s[k..s.len().min(k + 96)];
    let close = inner.iter().position(|&b| b == b']').unwrap_or(inner.len());
    let inner = &inner[..close];
    if matches!(q, b'"' | b'\'' | b'`') {
        let escaped = inner.contains(&b'\\');
        let built = inner.contains(&b'+');
        let sink = [
            &b"alert"[..],
            b"eval",
            b"prompt",
            b"confirm",
            b"cookie",
            b"location",
        ]
        .iter()
        .any(|w| {
            inner.get(1..).is_some_and(|name| name.starts_with(w))
                && inner.get(1 + w.len()) == Some(&q)
        });
        escaped || built || sink
    } else {
        inner.starts_with(b"atob(")
            || inner.starts_with(b"unescape(")
            || inner.starts_with(b"string.fromcharcode")
    }
}

/// A function called with a tagged template instead of parentheses, through `.call`/`.apply`
/// (`` [].sort.call`${alert}1` ``), or a sink interpolated into a template (`` `${alert}` ``):
/// ways to call without `(`.
pub(in crate::inspect::xss) fn template_call_shape(s: &[u8]) -> bool {
    let mut from = 0;
    while let Some(p) = s[from..].iter().position(|&b| b == b'`') {
        let tick = from + p;
        from = tick + 1;
        let end = skip_code_gap_back(s, tick);
        let name = ident_before(s, end);
        if matches!(name, b"call" | b"apply" | b"bind") {
            let dot = skip_code_gap_back(s, end - name.len());
            if dot > 0 && s[dot - 1] == b'.' {
                // The template is empty or interpolates something.
                let body = &s[tick + 1..];
                let close = body.iter().position(|&b| b == b'`').unwrap_or(body.len());
                let empty = body.first() == Some(&b'`');
                if empty || find(&body[..close], b"${").is_some() {
                    return true;
                }
            }
        }
    }
    // `${alert}`, `${ eval }`: a sink handed over as a template's value.
    let mut from = 0;
    while let Some(p) = find(&s[from..], b"${") {
        let k = skip_code_gap(s, from + p + 2);
        from += p + 2;
        for sink in [&b"alert"[..], b"prompt", b"confirm", b"eval"] {
            if s[k..].starts_with(sink) {
                let after = skip_code_gap(s, k + sink.len());
                if s.get(after) == Some(&b'}') {
                    return true;
                }
            }
        }
    }
    false
}

/// `new Function(...)`: code compiled from a string.
pub(in crate::inspect::xss) fn function_constructor(s: &[u8]) -> bool {
    let mut from = 0;
    while let Some(p) = find(&s[from..], b"function") {
        let at = from + p;
        from = at + 1;
        let before = skip_code_gap_back(s, at);
        if before >= 3
            && &s[before - 3..before] == b"new"
            && (before == 3 || !is_ident(s[before - 4]))
        {
            let k = skip_code_gap(s, at + 8);
            if s.get(k) == Some(&b'(') {
                return true;
            }
        }
    }
    false
}

/// A message that is an ES module import of a script from a path or URL:
/// `import {a} from "./x.js";`, `import("//evil/x.js")`.
pub(in crate::inspect::xss) fn module_import(s: &[u8]) -> bool {
    let t = skip_ws(s);
    let Some(rest) = t.strip_prefix(b"import") else {
        return false;
    };
    let spec_at = if let Some(p) = find(rest, b" from ") {
        p + 6
    } else if rest.first() == Some(&b'(') {
        1
    } else {
        return false;
    };
    if !(rest
        .first()
        .is_some_and(|&b| is_ws(b) || b == b'{' || b == b'('))
    {
        return false;
    }
    let spec = skip_ws(&rest[spec_at..]);
    let Some(&q) = spec.first() else {
        return false;
    };
    if !matches!(q, b'"' | b'\'' | b'`') {
        return false;
    }
    let path = &spec[1..];
    path.starts_with(b"./")
        || path.starts_with(b"../")
        || path.starts_with(b"/")
        || path.starts_with(b"http")
        || path.starts_with(b"data:")
}
