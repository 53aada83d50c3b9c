//! The HTML scanner: walks a folded view once, parses every tag the way browsers split it (name,
//! attributes, quoted and bare values), and hands each position a rule starts from to the rules.

use super::super::rules::RuleFilter;
use super::super::search::{contains, find};
use super::js::*;
use super::rules::css::*;
use super::rules::markup::*;
use super::rules::script::*;
use super::rules::template::{server_side_include, template_at};
use super::text::*;
use super::vocab::*;
use super::Rule;

/// How deep quoted attribute values are scanned again for markup (`<img alt="</style><img
/// onerror=...>">`): each level is inside a different quote character, so the work stays linear.
pub(super) const MAX_DEPTH: u8 = 3;

pub(super) struct Scanner<'a, 'r> {
    s: &'a [u8],
    /// For `"`, `'` and `` ` ``: a position from which no such quote follows (searches that
    /// start at or after it fail at once).
    no_quote_after: [usize; 3],
    /// Nesting level of this scanner (0 for the whole view).
    depth: u8,
    /// The bytes scanning stops at ([`super::TRIGGER`] or [`super::TRIGGER_PUNCTUATION`]).
    trigger: &'static [bool; 256],
    /// How the next trigger byte is found.
    jump: Jump,
    /// The rules that may fire.
    rules: RuleFilter<'r>,
}

/// How [`Scanner::run`] finds the next byte of its trigger table. Every variant finds the same
/// position: `One`, `Two` and `Three` name every trigger byte the whole view holds (so any
/// slice of it, an attribute value included, holds no other), `Nowhere` says it holds none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Jump {
    /// Test every byte against the table.
    Table,
    /// The view holds no trigger byte.
    Nowhere,
    /// The only trigger byte the view holds.
    One(u8),
    /// The only two.
    Two(u8, u8),
    /// The only three.
    Three(u8, u8, u8),
}

pub(super) fn quote_slot(q: u8) -> usize {
    match q {
        b'"' => 0,
        b'\'' => 1,
        _ => 2,
    }
}

impl<'a, 'r> Scanner<'a, 'r> {
    /// A scanner of the whole view `s`, stopping at the bytes of `trigger`, reporting the rules
    /// `rules` allows.
    pub(super) fn new(
        s: &'a [u8],
        trigger: &'static [bool; 256],
        jump: Jump,
        rules: RuleFilter<'r>,
    ) -> Self {
        Scanner {
            s,
            no_quote_after: [usize::MAX; 3],
            depth: 0,
            trigger,
            jump,
            rules,
        }
    }

    /// Where the next trigger byte at or after `i` is.
    fn next_trigger(&self, i: usize) -> Option<usize> {
        let rest = &self.s[i..];
        let p = match self.jump {
            Jump::Table => rest.iter().position(|&c| self.trigger[usize::from(c)]),
            Jump::Nowhere => None,
            Jump::One(a) => memchr::memchr(a, rest),
            Jump::Two(a, b) => memchr::memchr2(a, b, rest),
            Jump::Three(a, b, c) => memchr::memchr3(a, b, c, rest),
        };
        p.map(|p| i + p)
    }

    pub(super) fn run(&mut self) -> Option<Rule> {
        let s = self.s;
        let n = s.len();
        let mut i = 0;
        let mut seen_quote = false;
        while i < n {
            let b = s[i];
            if !self.trigger[usize::from(b)] {
                // Jump to the next byte any rule below starts from.
                match self.next_trigger(i) {
                    Some(p) => {
                        i = p;
                        continue;
                    }
                    None => break,
                }
            }
            // The letter rules start words (`alert(`, `onload=`, `new ActiveXObject`): inside a
            // word, go to its end in one step.
            if b.is_ascii_alphabetic() && i > 0 && s[i - 1].is_ascii_alphanumeric() {
                i += 1;
                while i < n && s[i].is_ascii_alphanumeric() {
                    i += 1;
                }
                continue;
            }
            match b {
                b'<' => {
                    let second = s.get(i + 1).copied().unwrap_or(0);
                    if matches!(second, b'!' | b'?' | b'x') {
                        if let Some(r) = declaration(s, i) {
                            fire!(self.rules, r);
                        }
                    }
                    // Closing a script element ends the script context the text sits in.
                    if second == b'/' && s[i + 2..].starts_with(b"script") {
                        let after = s.get(i + 8).copied();
                        if after.is_none()
                            || matches!(after, Some(b'>' | b'/' | b' ' | b'\t' | b'\n'))
                        {
                            fire!(self.rules, "xss-context-breakout");
                        }
                    }
                    // Server-side code and directives: `<%= ... %>`, `<#assign ...>`, `<!--#exec`.
                    if matches!(second, b'%' | b'#') {
                        if let Some(r) = template_at(s, i) {
                            fire!(self.rules, r);
                        }
                    }
                    if second == b'!' && server_side_include(s, i) {
                        fire!(self.rules, "xss-server-side-include");
                    }
                    // `<f o r m`: an element name spelled with spaces between its letters.
                    if spaced_tag_name(&s[i + 1..]) {
                        fire!(self.rules, "xss-spaced-tag");
                    }
                    // End tags carry no attributes, but a handler in one is never innocent.
                    // `<:vmlframe`: a namespace prefix left empty.
                    let start = if matches!(second, b'/' | b':') {
                        i + 2
                    } else {
                        i + 1
                    };
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
                        fire!(self.rules, r);
                    }
                }
                b'c' if s[i..].starts_with(b"createelement(") && creates_script(&s[i + 14..]) => {
                    fire!(self.rules, "xss-js-sink");
                }
                b'n' if s[i..].starts_with(b"new activexobject") => {
                    fire!(self.rules, "xss-js-sink");
                }
                0xbc => {
                    // US-ASCII read as 7-bit: `¼script¾` is `<script>` once the top bit goes.
                    let rest = &s[i + 1..n.min(i + 16)];
                    let end = rest
                        .iter()
                        .position(|b| !b.is_ascii_lowercase())
                        .unwrap_or(rest.len());
                    if active_tag(&rest[..end]) {
                        fire!(self.rules, "xss-active-tag");
                    }
                }
                b'"' | b'\'' | b'`' => {
                    seen_quote = true;
                    if let Some(r) = self.breakout(i) {
                        fire!(self.rules, r);
                    }
                }
                b'{' if matches!(s.get(i + 1), Some(b'{' | b'%')) => {
                    // Template expressions and statements: AngularJS reaching the Function
                    // constructor, Jinja reaching `request` or `__class__`, `{% include x %}`.
                    if let Some(r) = template_at(s, i) {
                        fire!(self.rules, r);
                    }
                }
                b'$' | b'#' | b'*' if s.get(i + 1) == Some(&b'{') => {
                    let body = &s[i + 2..n.min(i + 2 + 100)];
                    if b == b'$' && sink_at(skip_ws(body)) {
                        fire!(self.rules, "xss-template-injection");
                    }
                    if let Some(r) = template_at(s, i) {
                        fire!(self.rules, r);
                    }
                }
                b'#' if s[i..].starts_with(b"#set") => {
                    if let Some(r) = template_at(s, i) {
                        fire!(self.rules, r);
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
                            fire!(self.rules, "xss-event-handler");
                        }
                        // `" onmouseenter=` and nothing after it: an attribute being opened.
                        // (Not a whole message `onboarding=`: a form field left empty.)
                        if i > 0 && strip_quote(v).iter().all(|&b| is_ws(b)) {
                            fire!(self.rules, "xss-open-handler");
                        }
                    }
                }
                b'a' | b'p' | b'c' | b'e'
                    if (i == 0 || !s[i - 1].is_ascii_alphanumeric()) && call_at_boundary(s, i) =>
                {
                    fire!(self.rules, "xss-js-sink");
                }
                b'=' | b'(' | b',' => {
                    // A sink passed around as a value: `a=alert,a(1)`, `(alert)(1)`.
                    if let Some(r) = sink_reference(&s[i + 1..]) {
                        fire!(self.rules, r);
                    }
                    if b == b'(' && i >= 3 && &s[i - 3..i] == b"url" && url_runs_script(&s[i + 1..])
                    {
                        fire!(self.rules, "xss-css-script-url");
                    }
                    if b == b'(' && i >= 3 && &s[i - 3..i] == b"ion" && expression_before(s, i) {
                        fire!(self.rules, "xss-css-expression");
                    }
                    if b == b'(' && i >= 10 && &s[i - 10..i] == b"expression" {
                        let before = &s[..i - 10];
                        let prev = before.iter().rev().find(|&&b| !is_ws(b)).copied();
                        if matches!(prev, Some(b':' | b'=' | b'"' | b'\'' | b';' | b'{' | b'x')) {
                            fire!(self.rules, "xss-css-expression");
                        }
                    }
                }
                b'-' if s[i..].starts_with(b"-moz-binding") => {
                    fire!(self.rules, "xss-css-expression");
                }
                _ => {}
            }
            i += 1;
        }
        if seen_quote {
            if let Some(r) = split_keyword(s) {
                fire!(self.rules, r);
            }
        }
        // A lone sink call is the whole message: `alert(1)`, `prompt(document.domain)`.
        let t = skip_ws(s);
        // A message that starts with an event handler: the rest of a broken-out tag.
        if let Some(v) = handler_value(t) {
            if js_like(v) || sink_at(skip_ws(strip_quote(v))) {
                fire!(self.rules, "xss-attribute-breakout");
            }
        }
        if proof_sink(t) && sink_at(t) {
            fire!(self.rules, "xss-js-sink");
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
            if let Some(r) = self.rules.fire("xss-active-tag") {
                return (Some(r), j);
            }
        }
        // SVG and MathML roots switch the HTML parser into foreign content, where scripts,
        // handlers and links follow other parsing rules; XSL stylesheets are programs.
        if clean_name
            && (matches!(name, b"svg" | b"math" | b"stylesheet")
                || name.starts_with(b"svg:")
                || name.starts_with(b"math:"))
        {
            if let Some(r) = self.rules.fire("xss-foreign-content") {
                return (Some(r), j);
            }
        }
        if !clean_name {
            if let Some(eq) = name.iter().position(|&b| b == b'=') {
                // `<scriptsrc=`, `<importimplementation=`: an active element with an attribute
                // glued to its name.
                let glued = &name[..eq];
                if glued.iter().all(u8::is_ascii_lowercase)
                    && [
                        &b"script"[..],
                        b"iframe",
                        b"import",
                        b"object",
                        b"embed",
                        b"frame",
                    ]
                    .iter()
                    .any(|t| glued.len() > t.len() + 2 && glued.starts_with(t))
                {
                    if let Some(r) = self.rules.fire("xss-glued-tag") {
                        return (Some(r), j);
                    }
                }
                // `<IMGSRC="javascript:...">`: the name swallowed an attribute.
                if let Some(r) = check_attr(&name[..eq], strip_quote(&name[eq + 1..]), true)
                    .and_then(|r| self.rules.fire(r))
                {
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
        let mut unterminated = false;
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
                            // Unterminated: the value runs to the end; the tag ends with it and
                            // scanning resumes after the quote.
                            value = &s[k + 1..];
                            j = k + 1;
                            unterminated = true;
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
            if let Some(r) = check_attr(aname, value, has_value).and_then(|r| self.rules.fire(r)) {
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
            if unterminated {
                // The rest of the text is this value; the outer scan reads it again.
                break;
            }
            // Markup hidden in a quoted value is parsed for real in other contexts (comments,
            // `<style>`, `<noscript>`, mismatched quotes).
            if value.contains(&b'<') && self.depth < MAX_DEPTH {
                // A value holds no byte its view does not: the same trigger bytes.
                let mut inner = Scanner::new(value, self.trigger, self.jump, self.rules);
                inner.depth = self.depth + 1;
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
            } else if local == b"link" && script_type {
                // A "stylesheet" typed as script.
                rule = Some("xss-script-link");
            } else if is_style {
                let body = &s[j..n.min(j + 4096)];
                let end = find(body, b"</style").unwrap_or(body.len());
                let css = &body[..end];
                if css_dangerous(css) {
                    rule = Some("xss-css-expression");
                } else if css.trim_ascii_start().starts_with(b"@\\")
                    || css.trim_ascii_start().starts_with(b"=\\")
                {
                    // An at-rule or a value spelled in escapes at the start of a style sheet.
                    rule = Some("xss-style-escape");
                }
            }
        }
        (rule.and_then(|r| self.rules.fire(r)), j)
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
                // A scheme split by tabs or newlines (`ja&tab;vascript:`), or followed by
                // escapes (`javascript:\u0061lert`), is spelled to pass a filter.
                if !s[..colon].ends_with(scheme) || skip_ws(rest).first() == Some(&b'\\') {
                    return Some("xss-obfuscated-scheme");
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
            b'f' | b's' | b'x' if k == q + 1 => {
                // Out of the value and into an attribute that runs or loads a document:
                // `'formaction=`, `"srcdoc=`.
                for name in [&b"formaction"[..], b"srcdoc", b"xlink:href"] {
                    if let Some(after) = s[k..].strip_prefix(name) {
                        if skip_ws(after).first() == Some(&b'=') {
                            return Some("xss-attribute-injection");
                        }
                    }
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
