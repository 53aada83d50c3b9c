//! Cross-site scripting detection: a small HTML tokenizer (tags, attribute names and values, in
//! the way browsers split them) plus checks for script reached from text: dangerous URI schemes,
//! attribute break-outs (`" onfocus="...`), JavaScript string break-outs (`";alert(1)//`),
//! template injection and CSS expressions.
//!
//! The input is a folded view (ASCII lowercase). Scanning is linear: every tag is parsed once, the
//! scan resumes where the tag ended, and a search for a closing quote that failed is remembered.

use super::normalize::Marks;
use super::rules::{RuleFilter, RuleInfo};
use super::search::{contains, find};
use crate::model::AuditTag;

/// Every rule this detector reports (see [`super::rules`]). These rules were tuned on the
/// development corpus's sources of this class.
pub(super) static RULES: &[RuleInfo] = &[
    RuleInfo::written_for(
        "xss-active-tag",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-attribute-breakout",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-base-tag",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-charset",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-context-breakout",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-css-expression",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-dangerous-uri",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-data-binding",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-data-uri",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-event-handler",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-foreign-content",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-html-import",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-javascript-uri",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-js-breakout",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-js-entity",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-js-sink",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-meta-refresh",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-obfuscated-url",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-remote-stylesheet",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-split-keyword",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-srcdoc",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-svg-animation",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-template-injection",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-xml-entity",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-xml-processing",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
];

/// Tags that load or run active content whatever their attributes.
fn active_tag(name: &[u8]) -> bool {
    matches!(
        name,
        b"script"
            | b"iframe"
            | b"frame"
            | b"frameset"
            | b"object"
            | b"embed"
            | b"applet"
            | b"isindex"
            | b"portal"
            | b"import"
            | b"vmlframe"
            | b"xml"
            | b"bgsound"
            | b"layer"
            | b"ilayer"
            | b"fencedframe"
            | b"handler"
            | b"listener"
    )
}

/// JavaScript functions and objects that payloads call to prove execution or to do harm.
const SINKS: &[&[u8]] = &[
    b"alert",
    b"prompt",
    b"confirm",
    b"eval",
    b"settimeout",
    b"setinterval",
    b"string.fromcharcode",
    b"document.cookie",
    b"document.write",
    b"document.location",
    b"document.domain",
    b"window.location",
    b"location.href",
    b"top.location",
    b"self.location",
    b"window.open",
    b"execscript",
    b"msgbox",
    b"activexobject",
    b"constructor",
    b"window[",
    b"top[",
    b"self[",
    b"parent[",
    b"this[",
    b"globalthis",
    b"document[",
];

type Rule = &'static str;

/// A table of the bytes in `bytes` (and 0xbc, the 7-bit `<`).
const fn byte_table(bytes: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut k = 0;
    while k < bytes.len() {
        t[bytes[k] as usize] = true;
        k += 1;
    }
    t[0xbc] = true;
    t
}

/// Bytes the scanner's rules start from (everything else is skipped in bulk).
static TRIGGER: [bool; 256] = byte_table(b"<:\"'`{$=(,-oapcen");

/// [`TRIGGER`] without the letters. The rules that start from a letter need a call (`(`, a
/// template literal's `` ` ``) or an attribute (`=`), except `new ActiveXObject`; a view without
/// those is scanned from punctuation only, which in prose is a few bytes in a hundred.
static TRIGGER_PUNCTUATION: [bool; 256] = byte_table(b"<:\"'`{$=(,-");

/// What the letter rules need (one of them).
const LETTER_RULE_MARKS: Marks = Marks::of(b"(`=");

/// Does `new activexobject` occur in `s`? Found from its rare `x`.
fn new_activex(s: &[u8]) -> bool {
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

/// The first XSS rule that fires on `view` (whose marks are `marks`).
/// Runs the detector with the rules `rules` allows.
pub fn detect(view: &[u8], marks: Marks, rules: RuleFilter<'_>) -> Option<Rule> {
    detect_first(view, marks).and_then(|rule| rules.fire(rule))
}

fn detect_first(view: &[u8], marks: Marks) -> Option<Rule> {
    let letters = marks.any(LETTER_RULE_MARKS) || new_activex(view);
    let mut sc = Scanner {
        s: view,
        no_quote_after: [usize::MAX; 3],
        depth: 0,
        trigger: if letters {
            &TRIGGER
        } else {
            &TRIGGER_PUNCTUATION
        },
    };
    sc.run()
}

/// How deep quoted attribute values are scanned again for markup (`<img alt="</style><img
/// onerror=...>">`): each level is inside a different quote character, so the work stays linear.
const MAX_DEPTH: u8 = 3;

struct Scanner<'a> {
    s: &'a [u8],
    /// For `"`, `'` and `` ` ``: a position from which no such quote follows (searches that
    /// start at or after it fail at once).
    no_quote_after: [usize; 3],
    /// Nesting level of this scanner (0 for the whole view).
    depth: u8,
    /// The bytes scanning stops at ([`TRIGGER`] or [`TRIGGER_PUNCTUATION`]).
    trigger: &'static [bool; 256],
}

fn quote_slot(q: u8) -> usize {
    match q {
        b'"' => 0,
        b'\'' => 1,
        _ => 2,
    }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0c)
}

/// `hay` starts with `needle`, ignoring tabs, line feeds and carriage returns in `hay` (as URL
/// parsers do inside schemes).
fn starts_with_loose(hay: &[u8], needle: &[u8]) -> bool {
    let mut i = 0;
    for &c in needle {
        while i < hay.len() && matches!(hay[i], b'\t' | b'\n' | b'\r') {
            i += 1;
        }
        if hay.get(i) != Some(&c) {
            return false;
        }
        i += 1;
    }
    true
}

/// The length of a dangerous URI scheme at the start of `v` (after leading spaces and controls).
fn dangerous_scheme(v: &[u8]) -> Option<usize> {
    let start = v
        .iter()
        .position(|&b| !(b <= b' ' || b >= 0x80 || b == b'"' || b == b'\''))
        .unwrap_or(v.len());
    let v = &v[start..];
    for scheme in [&b"javascript:"[..], b"vbscript:", b"livescript:", b"mocha:"] {
        if starts_with_loose(v, scheme) {
            return Some(start + scheme.len());
        }
    }
    for scheme in [
        &b"data:text/html"[..],
        b"data:image/svg",
        b"data:application/x",
        b"data:text/xml",
        b"data:application/xhtml",
        b"data:text/javascript",
        b"data:application/javascript",
    ] {
        if starts_with_loose(v, scheme) {
            return Some(start + scheme.len());
        }
    }
    None
}

/// Does `rest` (what follows `javascript:` or a `=` in a break-out) start like script?
fn js_like(rest: &[u8]) -> bool {
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
fn sink_at(s: &[u8]) -> bool {
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

impl Scanner<'_> {
    fn run(&mut self) -> Option<Rule> {
        let s = self.s;
        let n = s.len();
        let mut i = 0;
        let mut seen_quote = false;
        while i < n {
            let b = s[i];
            if !self.trigger[usize::from(b)] {
                // Jump to the next byte any rule below starts from.
                match s[i..].iter().position(|&c| self.trigger[usize::from(c)]) {
                    Some(p) => {
                        i += p;
                        continue;
                    }
                    None => break,
                }
            }
            match b {
                b'<' => {
                    let second = s.get(i + 1).copied().unwrap_or(0);
                    if matches!(second, b'!' | b'?' | b'x') {
                        if let Some(r) = declaration(s, i) {
                            return Some(r);
                        }
                    }
                    // Closing a script element ends the script context the text sits in.
                    if second == b'/' && s[i + 2..].starts_with(b"script") {
                        let after = s.get(i + 8).copied();
                        if after.is_none()
                            || matches!(after, Some(b'>' | b'/' | b' ' | b'\t' | b'\n'))
                        {
                            return Some("xss-context-breakout");
                        }
                    }
                    // End tags carry no attributes, but a handler in one is never innocent.
                    let start = if second == b'/' { i + 2 } else { i + 1 };
                    if let Some(&c) = s.get(start) {
                        if c.is_ascii_alphabetic() {
                            let (rule, next) = self.tag(start);
                            if rule.is_some() {
                                return rule;
                            }
                            i = next.max(i + 1);
                            continue;
                        }
                    }
                }
                b':' => {
                    if let Some(r) = self.scheme_in_text(i) {
                        return Some(r);
                    }
                }
                b'c' if s[i..].starts_with(b"createelement(") && creates_script(&s[i + 14..]) => {
                    return Some("xss-js-sink");
                }
                b'n' if s[i..].starts_with(b"new activexobject") => {
                    return Some("xss-js-sink");
                }
                0xbc => {
                    // US-ASCII read as 7-bit: `¼script¾` is `<script>` once the top bit goes.
                    let rest = &s[i + 1..n.min(i + 16)];
                    let end = rest
                        .iter()
                        .position(|b| !b.is_ascii_lowercase())
                        .unwrap_or(rest.len());
                    if active_tag(&rest[..end]) {
                        return Some("xss-active-tag");
                    }
                }
                b'"' | b'\'' | b'`' => {
                    seen_quote = true;
                    if let Some(r) = self.breakout(i) {
                        return Some(r);
                    }
                }
                b'{' if s.get(i + 1) == Some(&b'{') => {
                    // AngularJS / template expression reaching the Function constructor.
                    let body = &s[i + 2..n.min(i + 2 + 200)];
                    if contains(body, b"constructor") || sink_in(body) {
                        return Some("xss-template-injection");
                    }
                }
                b'$' if s.get(i + 1) == Some(&b'{') => {
                    let body = &s[i + 2..n.min(i + 2 + 100)];
                    if sink_at(skip_ws(body)) {
                        return Some("xss-template-injection");
                    }
                }
                b'o' if s[i..].starts_with(b"on")
                    && (i == 0
                        || matches!(
                            s[i - 1],
                            b' ' | b'\t' | b'\n' | b'\r' | 0x0c | b'/' | b'"' | b'\''
                        )) =>
                {
                    // An event handler outside a tag we parsed: the rest of a broken-out tag.
                    if let Some(v) = handler_value(&s[i..]) {
                        if js_like(v) || sink_at(skip_ws(strip_quote(v))) {
                            return Some("xss-event-handler");
                        }
                    }
                }
                b'a' | b'p' | b'c' | b'e'
                    if (i == 0 || !s[i - 1].is_ascii_alphanumeric()) && call_at_boundary(s, i) =>
                {
                    return Some("xss-js-sink");
                }
                b'=' | b'(' | b',' => {
                    // A sink passed around as a value: `a=alert,a(1)`, `(alert)(1)`.
                    if let Some(r) = sink_reference(&s[i + 1..]) {
                        return Some(r);
                    }
                    if b == b'(' && i >= 3 && &s[i - 3..i] == b"ion" && expression_before(s, i) {
                        return Some("xss-css-expression");
                    }
                    if b == b'(' && i >= 10 && &s[i - 10..i] == b"expression" {
                        let before = &s[..i - 10];
                        let prev = before.iter().rev().find(|&&b| !is_ws(b)).copied();
                        if matches!(prev, Some(b':' | b'=' | b'"' | b'\'' | b';' | b'{' | b'x')) {
                            return Some("xss-css-expression");
                        }
                    }
                }
                b'-' if s[i..].starts_with(b"-moz-binding") => {
                    return Some("xss-css-expression");
                }
                _ => {}
            }
            i += 1;
        }
        if seen_quote {
            if let Some(r) = split_keyword(s) {
                return Some(r);
            }
        }
        // A lone sink call is the whole message: `alert(1)`, `prompt(document.domain)`.
        let t = skip_ws(s);
        // A message that starts with an event handler: the rest of a broken-out tag.
        if let Some(v) = handler_value(t) {
            if js_like(v) || sink_at(skip_ws(strip_quote(v))) {
                return Some("xss-attribute-breakout");
            }
        }
        if proof_sink(t) && sink_at(t) {
            return Some("xss-js-sink");
        }
        None
    }

    /// Parses a tag whose name starts at `i`; returns a rule and where scanning resumes.
    fn tag(&mut self, i: usize) -> (Option<Rule>, usize) {
        let s = self.s;
        let n = s.len();
        let mut j = i;
        while j < n && !is_ws(s[j]) && !matches!(s[j], b'/' | b'>' | b'<') {
            j += 1;
        }
        let name = &s[i..j];
        // `<script`, `<svg/onload`: the name must end at a separator or the end of the text.
        let clean_name = name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b':');
        // Namespaced elements (`<x:script xmlns:x=...>`) are the element after the prefix.
        let local = name
            .iter()
            .rposition(|&b| b == b':')
            .map_or(name, |p| &name[p + 1..]);
        // `Local<Object>`, `Vec<Frame>`: a type parameter, not a tag.
        let bare = s.get(j) == Some(&b'>');
        let generic = i >= 2 && (s[i - 2].is_ascii_alphanumeric() || s[i - 2] == b'_');
        if clean_name && bare && generic {
            return (None, j);
        }
        // A bare `<object>` or `<embed>` is a placeholder people write; a script, an iframe,
        // or any of them with attributes is markup.
        let always = matches!(
            local,
            b"script" | b"iframe" | b"portal" | b"isindex" | b"fencedframe"
        );
        if clean_name && active_tag(local) && (always || !bare) {
            return (Some("xss-active-tag"), j);
        }
        // SVG and MathML roots switch the HTML parser into foreign content, where scripts,
        // handlers and links follow other parsing rules; XSL stylesheets are programs.
        if clean_name
            && (matches!(name, b"svg" | b"math" | b"stylesheet")
                || name.starts_with(b"svg:")
                || name.starts_with(b"math:"))
        {
            return (Some("xss-foreign-content"), j);
        }
        if !clean_name {
            if let Some(eq) = name.iter().position(|&b| b == b'=') {
                // `<IMGSRC="javascript:...">`: the name swallowed an attribute.
                if let Some(r) = check_attr(&name[..eq], strip_quote(&name[eq + 1..]), true) {
                    return (Some(r), j);
                }
            }
        }
        let mut rule: Option<Rule> = None;
        let mut has_href = false;
        let mut http_equiv = false;
        let mut stylesheet = false;
        let mut remote_href = false;
        let is_style = local == b"style";
        let mut script_type = false;
        // Attributes.
        loop {
            while j < n && (is_ws(s[j]) || s[j] == b'/') {
                j += 1;
            }
            if j >= n {
                break;
            }
            if s[j] == b'>' {
                j += 1;
                break;
            }
            let an_start = j;
            let name_at = if s.get(j + 1) == Some(&b'/') {
                j + 2
            } else {
                j + 1
            };
            if s[j] == b'<' && s.get(name_at).is_some_and(|c| c.is_ascii_alphabetic()) {
                // `<b <script>`: let the outer scan take the new tag.
                break;
            }
            // An attribute name may begin with `=` or a quote.
            j += 1;
            while j < n && !is_ws(s[j]) && !matches!(s[j], b'/' | b'>' | b'=') {
                j += 1;
            }
            let aname = &s[an_start..j];
            let mut k = j;
            while k < n && is_ws(s[k]) {
                k += 1;
            }
            let mut value: &[u8] = &[];
            let mut has_value = false;
            if k < n && s[k] == b'=' {
                has_value = true;
                k += 1;
                while k < n && is_ws(s[k]) {
                    k += 1;
                }
                if k < n && matches!(s[k], b'"' | b'\'') {
                    let q = s[k];
                    match self.find_quote(q, k + 1) {
                        Some(end) => {
                            value = &s[k + 1..end];
                            j = end + 1;
                        }
                        None => {
                            // Unterminated: the value runs to the end; resume after the quote.
                            value = &s[k + 1..];
                            let r = check_attr(aname, value, has_value);
                            return (r.or(rule), k + 1);
                        }
                    }
                } else {
                    let vs = k;
                    while k < n && !is_ws(s[k]) && s[k] != b'>' {
                        k += 1;
                    }
                    value = &s[vs..k];
                    j = k;
                }
            }
            if let Some(r) = check_attr(aname, value, has_value) {
                rule = Some(r);
                break;
            }
            match aname {
                b"href" | b"xlink:href" => {
                    has_href = true;
                    remote_href = value.starts_with(b"http:")
                        || value.starts_with(b"https:")
                        || value.starts_with(b"//");
                }
                b"http-equiv"
                    if find(value, b"refresh").is_some()
                        || find(value, b"cookie").is_some()
                        || value == b"link" =>
                {
                    http_equiv = true
                }
                b"rel" if value == b"stylesheet" => stylesheet = true,
                b"type" if contains(value, b"javascript") || contains(value, b"ecmascript") => {
                    script_type = true
                }
                _ => {}
            }
            // Markup hidden in a quoted value is parsed for real in other contexts (comments,
            // `<style>`, `<noscript>`, mismatched quotes).
            if value.contains(&b'<') && self.depth < MAX_DEPTH {
                let mut inner = Scanner {
                    s: value,
                    no_quote_after: [usize::MAX; 3],
                    depth: self.depth + 1,
                    // A value holds no byte its view does not.
                    trigger: self.trigger,
                };
                if let Some(r) = inner.run() {
                    rule = Some(r);
                    break;
                }
            }
        }
        if rule.is_none() {
            if name == b"base" && has_href {
                rule = Some("xss-base-tag");
            } else if local == b"link" && stylesheet && remote_href {
                // A stylesheet from elsewhere can read the page through selectors.
                rule = Some("xss-remote-stylesheet");
            } else if name == b"meta" && http_equiv {
                rule = Some("xss-meta-refresh");
            } else if is_style && script_type {
                rule = Some("xss-active-tag");
            } else if is_style {
                let body = &s[j..n.min(j + 4096)];
                let end = find(body, b"</style").unwrap_or(body.len());
                let css = &body[..end];
                if css_dangerous(css) {
                    rule = Some("xss-css-expression");
                }
            }
        }
        (rule, j)
    }

    fn find_quote(&mut self, q: u8, from: usize) -> Option<usize> {
        let slot = quote_slot(q);
        if from >= self.no_quote_after[slot] {
            return None;
        }
        match self.s[from.min(self.s.len())..]
            .iter()
            .position(|&b| b == q)
        {
            Some(p) => Some(from + p),
            None => {
                self.no_quote_after[slot] = from;
                None
            }
        }
    }

    /// `javascript:` and friends in running text (not inside a tag we parsed).
    fn scheme_in_text(&self, colon: usize) -> Option<Rule> {
        let s = self.s;
        for scheme in [&b"javascript"[..], b"vbscript", b"livescript"] {
            if ends_with_loose(&s[..colon], scheme) {
                let rest = &s[colon + 1..];
                if js_like(rest) {
                    return Some("xss-javascript-uri");
                }
            }
        }
        if colon >= 4 && &s[colon - 4..colon] == b"data" {
            let rest = &s[colon + 1..];
            for mime in [
                &b"text/html"[..],
                b"image/svg+xml",
                b"text/xml",
                b"application/xhtml",
            ] {
                if rest.starts_with(mime) {
                    let after = &rest[mime.len()..];
                    if after.starts_with(b",") || after.starts_with(b";") {
                        return Some("xss-data-uri");
                    }
                }
            }
        }
        None
    }

    /// After a quote: an attribute break-out (`" onfocus=alert(1)`, `"><`) or a JavaScript
    /// string break-out (`";alert(1)//`, `'-alert(1)-'`).
    fn breakout(&self, q: usize) -> Option<Rule> {
        let s = self.s;
        let mut k = q + 1;
        // Close brackets and spaces the payload uses to leave the expression.
        let mut closers = 0;
        while k < s.len() && (is_ws(s[k]) || matches!(s[k], b')' | b']' | b'}')) && closers < 8 {
            k += 1;
            closers += 1;
        }
        let &c = s.get(k)?;
        match c {
            b';' | b'+' | b'-' | b'*' | b'/' | b'|' | b'&' | b'^' | b',' | b'?' | b':' | b'=' => {
                // `'-alert(1)-'`, `";alert(1)//`, `"+alert(1)+"`, `'||alert(1)||'`.
                let mut m = k;
                while m < s.len()
                    && m < k + 3
                    && matches!(
                        s[m],
                        b';' | b'+'
                            | b'-'
                            | b'*'
                            | b'/'
                            | b'|'
                            | b'&'
                            | b'^'
                            | b','
                            | b'?'
                            | b':'
                            | b'='
                    )
                {
                    m += 1;
                }
                let rest = skip_ws(&s[m..]);
                if sink_at(rest) {
                    return Some("xss-js-breakout");
                }
                // `'; return this; var d='`: a statement after the string was closed.
                // Only where the message itself opens with the break-out: code people paste
                // is full of `');` followed by statements.
                let leading = q < 16 && !s[..q].iter().any(|&b| is_ws(b));
                if c == b';' && leading && js_statement(rest) {
                    return Some("xss-js-breakout");
                }
            }
            b'o' if is_ws(s[q + 1]) || s[q + 1] == b'/' || k == q + 1 => {
                // An event handler right after leaving an attribute value.
                if let Some(v) = handler_value(&s[k..]) {
                    if js_like(v) || sink_at(skip_ws(strip_quote(v))) {
                        return Some("xss-attribute-breakout");
                    }
                }
            }
            _ => {}
        }
        // A handler after other attributes (`" autofocus onfocus="alert(1)`) is found by the
        // scan itself, which checks every `on...=` that follows a space or a quote.
        None
    }
}

/// Declarations and processing instructions at `i` (a `<`): DTD subsets, entity and attribute
/// list declarations, XSLT, IE's `<?import`.
fn declaration(s: &[u8], i: usize) -> Option<Rule> {
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

/// `expression` (possibly split by CSS comments or escapes) right before the `(` at `paren`,
/// after a `:` or `=`.
fn expression_before(s: &[u8], paren: usize) -> bool {
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

/// A call of `alert`, `prompt`, `confirm` or `eval` at `i` that starts a JavaScript expression:
/// preceded by punctuation (or nothing), not by a word of prose.
fn call_at_boundary(s: &[u8], i: usize) -> bool {
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

/// An `http(s)://` URL whose host hides what it is: a bare 32-bit number, hexadecimal or
/// zero-padded octal parts, or a user-info part that looks like a host (`http://a.com@b`).
fn obfuscated_url(v: &[u8]) -> bool {
    let v = skip_ws(v);
    let rest = if let Some(r) = v.strip_prefix(b"http://") {
        r
    } else if let Some(r) = v.strip_prefix(b"https://") {
        r
    } else {
        return false;
    };
    let end = rest
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#' | b'"' | b'\'' | b' '))
        .unwrap_or(rest.len());
    let authority = &rest[..end];
    if let Some(at) = authority.iter().position(|&b| b == b'@') {
        // `http://trusted.com@evil`: the part before `@` is a user name dressed as a host.
        return authority[..at].contains(&b'.');
    }
    let host = authority
        .iter()
        .position(|&b| b == b':')
        .map_or(authority, |p| &authority[..p]);
    if host.len() >= 8 && host.iter().all(u8::is_ascii_digit) {
        return true;
    }
    host.split(|&b| b == b'.').any(|part| {
        part.starts_with(b"0x") && part.len() > 2
            || part.len() > 1 && part[0] == b'0' && part.iter().all(u8::is_ascii_digit)
    }) && host
        .iter()
        .all(|b| b.is_ascii_hexdigit() || matches!(b, b'.' | b'x'))
}

/// Script assembled from short string literals: `'jav'+'ascript:'`, `a='ev'+'al'`. The contents
/// of the literals are joined in order; a keyword that only appears across a joint is one that
/// was split on purpose.
fn split_keyword(s: &[u8]) -> Option<Rule> {
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

/// After `createElement(`: a script-running element is being made.
fn creates_script(s: &[u8]) -> bool {
    let s = strip_quote(s);
    s.starts_with(b"script") || s.starts_with(b"iframe") || s.starts_with(b"object")
}

/// A JavaScript statement keyword that cannot start prose after `';`.
fn js_statement(s: &[u8]) -> bool {
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

/// `alert` / `prompt` / `confirm` / `eval` referenced as a value (after `=`, `(` or `,`), not
/// called by name: `a=alert,a(1)`, `(alert)(1)`, `b=eval;`.
fn sink_reference(s: &[u8]) -> Option<Rule> {
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

/// After `on...=`: the value, when `s` starts with an event handler attribute.
fn handler_value(s: &[u8]) -> Option<&[u8]> {
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

fn strip_quote(v: &[u8]) -> &[u8] {
    let v = skip_ws(v);
    match v.first() {
        Some(b'"' | b'\'' | b'`') => &v[1..],
        _ => v,
    }
}

/// Checks one attribute.
fn check_attr(name: &[u8], value: &[u8], has_value: bool) -> Option<Rule> {
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

fn css_dangerous(css: &[u8]) -> bool {
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

fn css_dangerous_plain(css: &[u8]) -> bool {
    find(css, b"expression(").is_some()
        || find(css, b"behaviour:").is_some()
        || find(css, b"binding:url(").is_some()
        || find(css, b"expression\\").is_some()
        || find(css, b"javascript:").is_some()
        || find(css, b"vbscript:").is_some()
        || find(css, b"behavior:").is_some()
        || find(css, b"-moz-binding").is_some()
        || find(css, b"@import").is_some()
}

fn ends_with_loose(hay: &[u8], needle: &[u8]) -> bool {
    let mut i = hay.len();
    for &c in needle.iter().rev() {
        while i > 0 && matches!(hay[i - 1], b'\t' | b'\n' | b'\r') {
            i -= 1;
        }
        if i == 0 || hay[i - 1] != c {
            return false;
        }
        i -= 1;
    }
    // The scheme must start a token.
    i == 0 || !hay[i - 1].is_ascii_alphanumeric()
}

fn skip_ws(s: &[u8]) -> &[u8] {
    let k = s.iter().position(|&b| !is_ws(b)).unwrap_or(s.len());
    &s[k..]
}

fn sink_in(s: &[u8]) -> bool {
    (0..s.len()).any(|i| (i == 0 || !s[i - 1].is_ascii_alphanumeric()) && sink_at(&s[i..]))
}

/// Sinks that payloads call to prove execution; a message that is only a call of one of these is
/// a probe. (`setTimeout(...)` or `fetch(...)` alone is ordinary code.)
fn proof_sink(t: &[u8]) -> bool {
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
fn template_call(after: &[u8]) -> bool {
    after.first() == Some(&b'`') && after.get(1).is_some_and(|&b| !is_ws(b) && b != b'`')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(s: &str) -> Option<Rule> {
        super::super::normalize::on_lowercase(s, detect)
    }

    #[test]
    fn sink_first_letters_are_listed() {
        for sink in SINKS {
            assert!(
                sink_at(&[sink, &b"(1)"[..]].concat()) || sink.ends_with(b"["),
                "{sink:?}"
            );
        }
    }

    #[test]
    fn attacks() {
        for s in [
            "<script>alert(1)</script>",
            "new ActiveXObject",
            "go: new ActiveXObject",
            "<SCRIPT SRC=//evil/x.js>",
            "<img src=x onerror=alert(1)>",
            "<svg/onload=alert(1)>",
            "<body onload = \"go()\">",
            "<a href=\"javascript:alert(1)\">x</a>",
            "<a href=\" java\tscript:alert(1)\">x</a>",
            "<iframe src=//evil>",
            "<object data=x.swf>",
            "<embed src=x.swf>",
            "<iframe srcdoc=\"&lt;script&gt;\">",
            "<div style=\"width:expression(alert(1))\">",
            "<base href=//evil/>",
            "<meta http-equiv=refresh content=\"0;url=javascript:alert(1)\">",
            "\";alert(1)//",
            "'-alert(1)-'",
            "\" onmouseover=\"alert(1)",
            "javascript:alert(document.cookie)",
            "{{constructor.constructor('alert(1)')()}}",
            "alert(1)",
            "<a href=data:text/html;base64,PHNjcmlwdD4=>",
            "<form><button formaction=javascript:alert(1)>x",
            "<math><mtext>x</mtext></math>",
            "<link rel=stylesheet href=//evil.example/a.css>",
            "<a href=\"http://3232235777/\">x</a>",
            "<img src=`x`onerror=alert(1)>",
            "<p style=\"color:expr/**/ession(alert(1))\">",
            "<!DOCTYPE r [<!ENTITY e SYSTEM \"http://evil.example/\">]><r>&e;</r>",
            "<title><img alt=\"</title><img src=x onerror=alert(1)>\"></title>",
            "x=prompt,x(1)",
            "</b onclick=alert(1)>",
            "a=\"ja\"+\"vascript:\"+\"alert(1)\"",
            "x=0||'ev'+'al'",
            "</script><b>",
            "document.createElement('script')",
        ] {
            assert!(hit(s).is_some(), "missed {s:?}");
        }
    }

    #[test]
    fn prose() {
        for s in [
            "Hi; how are you?",
            "I <3 you",
            "5 > 3 and 2 < 4",
            "use <b>bold</b> here",
            "<a href=\"/teams/\">teams</a>",
            "curl --socks4 <host[:port]>",
            "identity<T>(arg: T)",
            "javascript: the good parts",
            "online=true",
            "it's 'one' or 'two'",
            "<<<<<<<<<",
            "<a x=\"",
            "'''''",
            "I said 'eval' and 'uate' twice",
            "the 'java' island and 'script' writing",
        ] {
            assert_eq!(hit(s), None, "flagged {s:?}");
        }
    }
}
