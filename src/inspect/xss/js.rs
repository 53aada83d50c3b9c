//! The JavaScript reader: does text start like script, is a sink (a function or object that runs
//! or leaks code) called or assigned at a position, is a statement keyword there.

use super::super::search::find;
use super::text::{is_ws, skip_ws, strip_quote};
use super::vocab::SINKS;

/// Does `new activexobject` occur in `s`? Found from its rare `x`.
pub(super) fn new_activex(s: &[u8]) -> bool {
    const BEFORE: &[u8] = b"new active";
    let mut from = 0;
    while let Some(p) = find(&s[from..], b"x") {
        let at = from + p;
        if s[..at].ends_with(BEFORE) && s[at..].starts_with(b"xobject") {
            return true;
        }
        from = at + 1;
    }
    false
}

/// Does `rest` (what follows `javascript:` or a `=` in a break-out) start like script?
pub(super) fn js_like(rest: &[u8]) -> bool {
    let mut i = 0;
    while i < rest.len() && is_ws(rest[i]) {
        i += 1;
    }
    let Some(&c) = rest.get(i) else {
        return false;
    };
    if matches!(
        c,
        b'/' | b'\''
            | b'"'
            | b'('
            | b'['
            | b'{'
            | b'`'
            | b'%'
            | b'&'
            | b'\\'
            | b'!'
            | b'+'
            | b'-'
            | b'~'
    ) {
        // `javascript:/*`, `javascript:'...'`, `javascript:(...)`; but not a bare `javascript:`
        // followed by ordinary quoted prose: require some punctuation of code to follow.
        return rest[i..]
            .iter()
            .take(256)
            .any(|&b| matches!(b, b'(' | b'`' | b'=' | b';'));
    }
    if !(c.is_ascii_alphabetic() || c == b'_' || c == b'$') {
        return false;
    }
    let mut j = i;
    while j < rest.len()
        && (rest[j].is_ascii_alphanumeric() || matches!(rest[j], b'_' | b'$' | b'.'))
    {
        j += 1;
    }
    loop {
        while j < rest.len() && is_ws(rest[j]) {
            j += 1;
        }
        // `eval/**/(...)`
        if rest[j..].starts_with(b"/*") {
            match find(&rest[j + 2..], b"*/") {
                Some(e) => j += 2 + e + 2,
                None => return false,
            }
            continue;
        }
        break;
    }
    matches!(rest.get(j), Some(b'(' | b'`' | b'=' | b'[' | b':'))
}

/// Does a JavaScript sink start at `s`?
pub(super) fn sink_at(s: &[u8]) -> bool {
    let Some(&first) = s.first() else {
        return false;
    };
    // Every sink starts with one of these letters.
    if !matches!(
        first,
        b'a' | b'c' | b'd' | b'e' | b'g' | b'l' | b'm' | b'p' | b's' | b't' | b'w'
    ) {
        return false;
    }
    for sink in SINKS.iter().filter(|k| k[0] == first) {
        if s.starts_with(sink) {
            let after = &s[sink.len()..];
            if sink.ends_with(b"[") {
                return true;
            }
            let mut k = 0;
            while k < after.len() && is_ws(after[k]) {
                k += 1;
            }
            match after.get(k) {
                Some(b'(') => return true,
                Some(b'`') if template_call(&after[k..]) => return true,
                Some(b'.' | b'=') if sink.contains(&b'.') => return true,
                Some(b'.') if *sink == b"constructor" => return true,
                _ => {}
            }
        }
    }
    false
}

/// A call of `alert`, `prompt`, `confirm` or `eval` at `i` that starts a JavaScript expression:
/// preceded by punctuation (or nothing), not by a word of prose.
pub(super) fn call_at_boundary(s: &[u8], i: usize) -> bool {
    if i > 0 && (s[i - 1].is_ascii_alphanumeric() || matches!(s[i - 1], b'_' | b'.' | b'$')) {
        return false;
    }
    let rest = &s[i..];
    let len = if rest.starts_with(b"alert") {
        5
    } else if rest.starts_with(b"prompt") {
        6
    } else if rest.starts_with(b"confirm") {
        7
    } else if rest.starts_with(b"eval") {
        4
    } else {
        return false;
    };
    let after = skip_ws(&rest[len..]);
    let called = after.first() == Some(&b'(')
        || template_call(after)
        || after.starts_with(b".call(")
        || after.starts_with(b".apply(");
    if !called {
        return false;
    }
    // What comes before, ignoring spaces: the start, or JavaScript punctuation.
    let before = s[..i].iter().rev().find(|&&b| !is_ws(b)).copied();
    match before {
        None => true,
        Some(b) => matches!(
            b,
            b';' | b'}'
                | b'{'
                | b')'
                | b'('
                | b'='
                | b','
                | b':'
                | b'!'
                | b'&'
                | b'|'
                | b'?'
                | b'+'
                | b'-'
                | b'*'
                | b'/'
                | b'>'
                | b'['
                | b'"'
                | b'\''
                | b'`'
        ),
    }
}

/// After `createElement(`: a script-running element is being made.
pub(super) fn creates_script(s: &[u8]) -> bool {
    let s = strip_quote(s);
    s.starts_with(b"script") || s.starts_with(b"iframe") || s.starts_with(b"object")
}

/// A JavaScript statement keyword that cannot start prose after `';`.
pub(super) fn js_statement(s: &[u8]) -> bool {
    for kw in [
        &b"return "[..],
        b"return;",
        b"var ",
        b"let ",
        b"const ",
        b"throw ",
        b"function(",
        b"function ",
    ] {
        if s.starts_with(kw) {
            let rest = skip_ws(&s[kw.len()..]);
            // `var x=`, `return this`, `function(){`: an identifier or code follows.
            return rest.first().is_some_and(|b| {
                b.is_ascii_alphabetic() || matches!(b, b'_' | b'$' | b'(' | b'{' | b';')
            });
        }
    }
    false
}

pub(super) fn sink_in(s: &[u8]) -> bool {
    (0..s.len()).any(|i| (i == 0 || !s[i - 1].is_ascii_alphanumeric()) && sink_at(&s[i..]))
}

/// Sinks that payloads call to prove execution; a message that is only a call of one of these is
/// a probe. (`setTimeout(...)` or `fetch(...)` alone is ordinary code.)
pub(super) fn proof_sink(t: &[u8]) -> bool {
    if [
        &b"alert"[..],
        b"prompt",
        b"confirm",
        b"eval",
        b"execscript",
        b"msgbox",
    ]
    .iter()
    .any(|p| t.starts_with(p))
    {
        return true;
    }
    // `top['al\x65rt'](1)`: a global looked up by a computed name and called.
    for global in [
        &b"top["[..],
        b"self[",
        b"parent[",
        b"window[",
        b"globalthis[",
    ] {
        if let Some(rest) = t.strip_prefix(global) {
            let close = rest.iter().take(64).position(|&b| b == b']');
            return close.is_some_and(|c| rest.get(c + 1) == Some(&b'('));
        }
    }
    // setTimeout with a string or a value from the URL is eval; with a function it is code.
    for timer in [&b"settimeout("[..], b"setinterval("] {
        if let Some(arg) = t.strip_prefix(timer) {
            let arg = skip_ws(arg);
            return matches!(arg.first(), Some(b'\'' | b'"' | b'`'))
                || arg.starts_with(b"location")
                || arg.starts_with(b"name")
                || arg.starts_with(b"atob(")
                || arg.starts_with(b"unescape(");
        }
    }
    false
}

/// `` alert`1` ``: a tagged template call, told apart from a word in Markdown backticks
/// (`` `eval` ``) by what follows the backtick.
pub(super) fn template_call(after: &[u8]) -> bool {
    after.first() == Some(&b'`') && after.get(1).is_some_and(|&b| !is_ws(b) && b != b'`')
}
