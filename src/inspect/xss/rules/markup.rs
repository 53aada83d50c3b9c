//! Markup rules: one attribute judged by its name and value (event handlers, script-bearing
//! URIs, `srcdoc`, data binding, charsets, SVG animation of handlers) and declarations (DTD
//! entities and default attributes, XSLT, processing instructions).

use super::super::super::search::{contains, find};
use super::super::js::{js_like, sink_at};
use super::super::text::{is_ws, skip_ws, strip_quote};
use super::super::Rule;
use super::css::css_dangerous;
use super::uri::{dangerous_scheme, obfuscated_url};

/// Declarations and processing instructions at `i` (a `<`): DTD subsets, entity and attribute
/// list declarations, XSLT, IE's `<?import`.
pub(in crate::inspect::xss) fn declaration(s: &[u8], i: usize) -> Option<Rule> {
    let n = s.len();
    if s[i..].starts_with(b"<!entity") {
        let window = &s[i..n.min(i + 256)];
        if contains(window, b"system") || contains(window, b"public") {
            return Some("xss-xml-entity");
        }
    }
    if s[i..].starts_with(b"<!attlist") {
        // DTD default attributes: `<!ATTLIST img onerror CDATA "alert(1)">`.
        let window = &s[i..n.min(i + 512)];
        let mut k = 0;
        while let Some(p) = find(&window[k..], b" on") {
            let at = k + p + 1;
            let name_end = window[at..]
                .iter()
                .position(|b| !b.is_ascii_lowercase())
                .map_or(window.len(), |e| at + e);
            if name_end - at >= 5 && window[name_end..].starts_with(b" cdata") {
                return Some("xss-xml-entity");
            }
            k = at;
        }
    }
    // An internal DTD subset declares entities and default attributes.
    if s[i..].starts_with(b"<!doctype") {
        let window = &s[i..n.min(i + 128)];
        let decl_end = window
            .iter()
            .position(|&b| b == b'>')
            .unwrap_or(window.len());
        if window[..decl_end].contains(&b'[') {
            return Some("xss-xml-entity");
        }
    }
    if s[i..].starts_with(b"<xsl:")
        || s[i..].starts_with(b"<?import")
        || s[i..].starts_with(b"<?xml-stylesheet")
    {
        return Some("xss-xml-processing");
    }
    None
}

/// After `on...=`: the value, when `s` starts with an event handler attribute.
pub(in crate::inspect::xss) fn handler_value(s: &[u8]) -> Option<&[u8]> {
    if !s.starts_with(b"on") {
        return None;
    }
    let mut j = 2;
    while j < s.len() && s[j].is_ascii_lowercase() {
        j += 1;
    }
    if j < 5 {
        return None;
    }
    while j < s.len() && is_ws(s[j]) {
        j += 1;
    }
    if s.get(j) != Some(&b'=') {
        return None;
    }
    Some(&s[j + 1..])
}

/// Checks one attribute.
pub(in crate::inspect::xss) fn check_attr(
    name: &[u8],
    value: &[u8],
    has_value: bool,
) -> Option<Rule> {
    // `x:ontimer` is the `ontimer` attribute of a namespace.
    let name = name
        .iter()
        .rposition(|&b| b == b':')
        .map_or(name, |p| &name[p + 1..]);
    if name.len() >= 5
        && name.starts_with(b"on")
        && name[2..].iter().all(|b| b.is_ascii_lowercase())
        && has_value
    {
        return Some("xss-event-handler");
    }
    // `onload!#$%&()*~+-_.,:;?@[/|\]^`=alert(1)`: old parsers ended the name at the letters.
    let letters = name
        .iter()
        .skip(2)
        .take_while(|b| b.is_ascii_lowercase())
        .count();
    if name.starts_with(b"on")
        && letters >= 3
        && name[2 + letters..]
            .iter()
            .all(|b| !b.is_ascii_alphanumeric())
        && has_value
        && (js_like(value) || sink_at(skip_ws(strip_quote(value))))
    {
        return Some("xss-event-handler");
    }
    if !has_value {
        return None;
    }
    // Netscape JavaScript entities: `&{alert(1)};`.
    if find(value, b"&{").is_some() {
        return Some("xss-js-entity");
    }
    // A handler hidden in a value that another parser splits differently:
    // `` src=`x`onerror=alert(1) ``, `src= onmouseover="alert(1)"`.
    let mut k = 0;
    while let Some(p) = find(&value[k..], b"on") {
        let at = k + p;
        let boundary =
            at == 0 || matches!(value[at - 1], b'`' | b'\'' | b'"' | b' ' | b'/' | b'\t');
        if boundary {
            if let Some(v) = handler_value(&value[at..]) {
                if js_like(v) || sink_at(skip_ws(strip_quote(v))) {
                    return Some("xss-event-handler");
                }
            }
        }
        k = at + 2;
    }
    if obfuscated_url(value) {
        return Some("xss-obfuscated-url");
    }
    if dangerous_scheme(value).is_some() {
        return Some("xss-dangerous-uri");
    }
    // Scheme later in a value: `&{javascript:...}`, `url(javascript:...)`, `0;url=javascript:`.
    for scheme in [&b"javascript:"[..], b"vbscript:"] {
        if let Some(p) = find(value, scheme) {
            if js_like(&value[p + scheme.len()..]) || name == b"content" || name == b"style" {
                return Some("xss-dangerous-uri");
            }
        }
    }
    match name {
        b"srcdoc" if value.contains(&b'<') || find(value, b"&lt").is_some() => Some("xss-srcdoc"),
        _ if css_dangerous(value) => Some("xss-css-expression"),
        b"datasrc" | b"dataformatas" => Some("xss-data-binding"),
        // Charsets that reinterpret ASCII (UTF-7 and relatives) turn text into markup.
        b"charset" | b"content"
            if find(value, b"utf-7").is_some()
                || find(value, b"utf7").is_some()
                || find(value, b"x-imap").is_some()
                || find(value, b"x-mac-").is_some() =>
        {
            Some("xss-charset")
        }
        b"attributename"
            if value.starts_with(b"on")
                || value.ends_with(b"href")
                || value == b"innerhtml"
                || value == b"outerhtml" =>
        {
            Some("xss-svg-animation")
        }
        b"rel" if value == b"import" => Some("xss-html-import"),
        b"formaction" | b"action" if value.starts_with(b"javascript") => Some("xss-dangerous-uri"),
        _ => None,
    }
}

/// Elements spelled out letter by letter in `<f o r m`, `<s c r i p t`: after the `<`, single
/// letters separated by spaces that join into an element that runs or submits something.
pub(in crate::inspect::xss) fn spaced_tag_name(after_lt: &[u8]) -> bool {
    let mut joined = [0u8; 12];
    let mut len = 0;
    let mut k = 0;
    while k < after_lt.len() && len < joined.len() {
        let c = after_lt[k];
        if !c.is_ascii_lowercase() {
            break;
        }
        // One letter, then a space (or the end after the last letter).
        if after_lt.get(k + 1).is_some_and(|b| b.is_ascii_lowercase()) {
            // A word: the name's end (an attribute follows) or no spelled name at all.
            if len == 0 {
                return false;
            }
            break;
        }
        joined[len] = c;
        len += 1;
        k += 1;
        let spaces = after_lt[k..].iter().take_while(|&&b| is_ws(b)).count();
        if spaces == 0 {
            break;
        }
        k += spaces;
    }
    len >= 4
        && matches!(
            &joined[..len],
            b"form"
                | b"script"
                | b"iframe"
                | b"dialog"
                | b"object"
                | b"embed"
                | b"frame"
                | b"frameset"
                | b"svg"
                | b"math"
                | b"style"
                | b"input"
                | b"button"
                | b"video"
                | b"audio"
                | b"image"
                | b"body"
                | b"meta"
                | b"link"
                | b"base"
                | b"applet"
                | b"details"
                | b"marquee"
                | b"isindex"
        )
}
