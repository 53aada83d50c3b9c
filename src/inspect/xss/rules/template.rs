//! Server-side template injection: text that a template engine would evaluate, judged by what the
//! evaluated expression reaches. A bare placeholder (`Hello {{name}}`, `{{ user.name | upper }}`)
//! is what chat templates look like and is left alone; an expression that reaches the engine's
//! objects (`request`, `config`, `self`, Python's `__class__`, Java's `T(java.lang.Runtime)`),
//! calls a dangerous method, includes or imports what the request names, or is an arithmetic
//! probe (`{{7*7}}`) is an attack.
//!
//! Delimiters: `{{ }}` (Jinja, Twig, Handlebars, Angular), `{% %}` (Jinja, Django, Tornado,
//! Liquid), `${ }` (JSP EL, FreeMarker, Velocity, Thymeleaf), `#{ }` and `*{ }` (JSF, Thymeleaf,
//! Ruby), `<% %>` (ERB, JSP, ASP), `<#...>` (FreeMarker directives), `#set($` (Velocity) and
//! `<!--#` (server-side includes).

use super::super::super::search::find;
use super::super::js::sink_in;
use super::super::text::{is_ident, is_ws, skip_ws};
use super::super::Rule;

/// How far an expression is read.
const MAX_BODY: usize = 256;

/// Objects of template engines and their languages that expose the application or the runtime.
/// (Objects that templates show data from, `this`, `object`, `product`, `session`, are left out:
/// `{{ object.title }}` is what a template is for.)
const ENGINE_OBJECTS: &[&[u8]] = &[
    b"request",
    b"config",
    b"self",
    b"_self",
    b"settings",
    b"lipsum",
    b"cycler",
    b"joiner",
    b"namespace",
    b"url_for",
    b"get_flashed_messages",
    b"os",
    b"sys",
    b"subprocess",
    b"runtime",
    b"class",
    b"constructor",
    b"environment",
    b"java",
    b"system",
    b"kernel",
    b"process",
    b"global",
    b"servletcontext",
    b"facescontext",
    b"pagecontext",
];

/// Methods and functions whose call in a template runs or reads what it should not.
const DANGEROUS_CALLS: &[&[u8]] = &[
    b"getclass(",
    b"forname(",
    b"getruntime(",
    b"exec(",
    b"popen(",
    b"system(",
    b"eval(",
    b"__import__(",
    b"import(",
    b"require(",
    b"open(",
    b"read(",
    b"readlines(",
    b"items(",
    b"getattribute(",
    b"getmethod(",
    b"invoke(",
    b"newinstance(",
    b"spawn(",
    b"execsync(",
    b"load(",
    b"subclasses(",
    b"mro(",
    b"globals(",
    b"locals(",
    b"dir(",
    b"vars(",
    b"getenv(",
    b"readfile(",
    b"file_get_contents(",
    b"passthru(",
    b"shell_exec(",
    b"registerundefinedfiltercallback(",
    b"getfilter(",
];

/// The first identifier of `body` (after spaces and an opening parenthesis).
fn leading_ident(body: &[u8]) -> (&[u8], &[u8]) {
    let mut b = skip_ws(body);
    while let Some(rest) = b.strip_prefix(b"(") {
        b = skip_ws(rest);
    }
    let end = b.iter().position(|&c| !is_ident(c)).unwrap_or(b.len());
    (&b[..end], &b[end..])
}

/// `7*7`, `7 * '7'`, `1337+1`: the whole expression is arithmetic on numbers.
fn arithmetic_probe(body: &[u8]) -> bool {
    let b = body.trim_ascii();
    let mut i = 0;
    let mut numbers = 0;
    let mut ops = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() {
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                i += 1;
            }
            numbers += 1;
            continue;
        }
        match c {
            b'*' | b'+' | b'-' | b'/' | b'%' => ops += 1,
            b'\'' | b'"' | b'(' | b')' => {}
            _ if is_ws(c) => {}
            _ => return false,
        }
        i += 1;
    }
    numbers >= 2 && ops >= 1
}

/// Does the expression `body` reach what a template should not?
fn dangerous_expression(body: &[u8]) -> bool {
    if find(body, b"__").is_some() {
        // Python's dunders: `''.__class__.__mro__`, `self.__init__.__globals__`.
        return true;
    }
    if arithmetic_probe(body) {
        return true;
    }
    let (first, after) = leading_ident(body);
    let after = skip_ws(after);
    let member = matches!(after.first(), Some(b'.' | b'[' | b'('));
    if member && ENGINE_OBJECTS.contains(&first) {
        return true;
    }
    // Spring's `T(java.lang.Runtime)`, a type reference.
    if first == b"t" && after.first() == Some(&b'(') {
        return true;
    }
    if find(body, b"java.lang").is_some() || find(body, b"freemarker.").is_some() {
        return true;
    }
    if DANGEROUS_CALLS.iter().any(|c| {
        find(body, c).is_some_and(|p| p == 0 || !is_ident(body[p - 1]) || body[p - 1] == b'_')
    }) {
        return true;
    }
    // A string's or a list's attributes: `''.constructor`, `[].join.call`.
    if matches!(body.trim_ascii_start().first(), Some(b'\'' | b'"' | b'[')) && body.contains(&b'.')
    {
        let t = body.trim_ascii_start();
        let close = match t[0] {
            b'[' => t.iter().position(|&c| c == b']'),
            q => t[1..].iter().position(|&c| c == q).map(|p| p + 1),
        };
        if close.is_some_and(|c| t.get(c + 1) == Some(&b'.')) {
            return true;
        }
    }
    contains_sink(body)
}

fn contains_sink(body: &[u8]) -> bool {
    find(body, b"constructor").is_some() || sink_in(body)
}

/// The expression between `open_len` bytes of opening delimiter at `i` and `close` (or the end
/// of the text, or [`MAX_BODY`]).
fn body_at<'a>(s: &'a [u8], i: usize, open_len: usize, close: &[u8]) -> &'a [u8] {
    let start = (i + open_len).min(s.len());
    let window = &s[start..s.len().min(start + MAX_BODY)];
    let end = find(window, close).unwrap_or(window.len());
    &window[..end]
}

/// A `{%` statement: `{% include request.GET.t %}`, `{% import os %}`, `{% extends x %}`, or
/// one whose expression is dangerous.
fn statement(body: &[u8]) -> bool {
    let (kw, rest) = leading_ident(body);
    let arg = skip_ws(rest);
    match kw {
        // Including or extending what the request names (a literal path is a template's own).
        b"include" | b"extends" | b"embed" | b"source" | b"render" | b"ssi" => {
            if matches!(arg.first(), Some(b'\'' | b'"')) {
                return dangerous_expression(arg);
            }
            !arg.is_empty()
        }
        // Tornado's `{% import os %}`: a Python module, not a quoted template.
        b"import" | b"from" | b"load" => arg.first().is_some_and(|&c| c.is_ascii_alphabetic()),
        b"debug" => true,
        _ => dangerous_expression(arg),
    }
}

/// A template construct that starts at `i`, judged; `None` when there is none or it is harmless.
pub(in crate::inspect::xss) fn template_at(s: &[u8], i: usize) -> Option<Rule> {
    let rest = &s[i..];
    let second = rest.get(1).copied().unwrap_or(0);
    match (rest[0], second) {
        (b'{', b'{') => {
            let body = body_at(s, i, 2, b"}}");
            if contains_sink(body) {
                return Some("xss-template-injection");
            }
            dangerous_expression(body).then_some("xss-template-expression")
        }
        (b'{', b'%') => statement(body_at(s, i, 2, b"%}")).then_some("xss-template-statement"),
        (b'$' | b'#' | b'*' | b'@', b'{') => {
            let body = body_at(s, i, 2, b"}");
            // `${HOME}`, `#{id}`: a variable; `${7*7}`, `${T(java.lang.Runtime)}` reach further.
            dangerous_expression(body).then_some("xss-template-expression")
        }
        (b'<', b'%') => {
            let body = body_at(s, i, 2, b"%>");
            let body = body
                .strip_prefix(b"=")
                .or_else(|| body.strip_prefix(b"-"))
                .unwrap_or(body);
            // ERB, JSP, ASP code: a call or a dangerous expression; `<%= name %>` is not.
            let code = body.contains(&b'(') || body.contains(&b'`') || find(body, b"::").is_some();
            (code || dangerous_expression(body)).then_some("xss-template-expression")
        }
        (b'<', b'#') => {
            // FreeMarker directives that define or load: `<#assign ex="...Execute"?new()>`.
            let (kw, _) = leading_ident(&rest[2..]);
            let directive = matches!(
                kw,
                b"assign" | b"include" | b"import" | b"setting" | b"global"
            );
            let window = &rest[..rest.len().min(MAX_BODY)];
            (directive && (find(window, b"?new(").is_some() || dangerous_expression(&rest[2..])))
                .then_some("xss-template-statement")
        }
        (b'#', b's') if rest.starts_with(b"#set") => {
            // Velocity: `#set($x = ...)`.
            let after = skip_ws(&rest[4..]);
            let after = after.strip_prefix(b"(").map(skip_ws);
            after
                .is_some_and(|a| a.first() == Some(&b'$'))
                .then_some("xss-template-statement")
        }
        _ => None,
    }
}

/// A server-side include directive (`<!--#exec cmd=...-->`, `<!--#include virtual=...-->`,
/// `<!--#echo var=...-->`): a comment that the web server executes.
pub(in crate::inspect::xss) fn server_side_include(s: &[u8], i: usize) -> bool {
    let rest = &s[i..];
    let Some(after) = rest.strip_prefix(b"<!--#") else {
        return false;
    };
    let (kw, tail) = leading_ident(after);
    matches!(
        kw,
        b"exec" | b"include" | b"echo" | b"set" | b"config" | b"fsize" | b"flastmod" | b"printenv"
    ) && (kw == b"printenv"
        || skip_ws(tail)
            .first()
            .is_some_and(|c| c.is_ascii_alphabetic()))
}
