//! Constructs that execute commands wherever they appear in a message: Shellshock function
//! definitions, PHP code evaluation (`{${phpinfo()}}`), server-side includes (`<!--#exec`),
//! template injection reaching Python object internals (`{{''.__class__}}`), and code calling a
//! command runner with a command line (`system('id')`, `exec("cat /etc/passwd")`).

use super::super::lexer::{is_blank, read_command, Command};
use super::judge::{has_sensitive, judge, known_word, resolved_name, Verdict};
use super::{fire, Rule};
use crate::inspect::normalize::Marks;
use crate::inspect::rules::RuleFilter;
use crate::inspect::search::{contains, find};

/// Commands that prove execution when code runs them (`system('echo x')`), whatever the
/// arguments.
fn common_command(name: &[u8]) -> bool {
    matches!(
        name,
        b"echo"
            | b"sleep"
            | b"ping"
            | b"cat"
            | b"ls"
            | b"id"
            | b"whoami"
            | b"uname"
            | b"dir"
            | b"type"
            | b"pwd"
            | b"curl"
            | b"wget"
            | b"nc"
            | b"bash"
            | b"sh"
            | b"cmd"
            | b"powershell"
            | b"net"
            | b"ipconfig"
            | b"ifconfig"
            | b"hostname"
    )
}

/// Constructs that are command execution wherever they appear.
pub(in crate::inspect::cmdi) fn code_constructs(
    s: &[u8],
    marks: Marks,
    rules: RuleFilter<'_>,
) -> Option<Rule> {
    // Every construct below needs one of these bytes; most messages have none.
    let paren = marks.has(b'(');
    let brace = marks.has(b'{');
    let dollar = marks.has(b'$');
    let angle = marks.has(b'<');
    if !(paren || brace || angle) {
        return None;
    }
    // Shellshock function definition.
    if let Some(p) = (paren && brace).then(|| find(s, b"() {")).flatten() {
        let rest = &s[p + 4..s.len().min(p + 12)];
        if rest.trim_ascii_start().starts_with(b":;") || rest.trim_ascii_start().starts_with(b": ;")
        {
            fire!(rules, "cmdi-shellshock");
        }
    }
    // PHP code evaluation: `{${phpinfo()}}`, `${@print(...)}`, `phpinfo();`.
    // PHP complex syntax evaluating a call: `{${phpinfo()}}`, `${@print(...)}`, `{$_GET[...]}`
    // (CMake's `${${var}}` nests names, not calls).
    let php_call = |p: usize| {
        let rest = &s[p..s.len().min(p + 48)];
        let name = rest
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_' || **b == b'@')
            .count();
        name > 0 && rest.get(name) == Some(&b'(')
    };
    if dollar
        && (find(s, b"{${").is_some_and(|p| php_call(p + 3))
            || find(s, b"${@").is_some()
            || find(s, b"{$_").is_some())
    {
        fire!(rules, "cmdi-code-exec");
    }
    // Server-side includes.
    if angle && find(s, b"<!--#exec").is_some() {
        fire!(rules, "cmdi-ssi");
    }
    // Server-side template injection reaching Python object internals.
    if let Some(p) = brace.then(|| find(s, b"{{")).flatten() {
        let window = &s[p..s.len().min(p + 256)];
        // The arithmetic probe of template injection: `{{7*7}}`.
        let inner = window[2..].trim_ascii_start();
        let digits = inner.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits > 0 {
            let rest = inner[digits..].trim_ascii_start();
            if let Some(&op) = rest.first() {
                let rest = rest[1..].trim_ascii_start();
                let d2 = rest.iter().take_while(|b| b.is_ascii_digit()).count();
                if matches!(op, b'+' | b'*' | b'-')
                    && d2 > 0
                    && rest[d2..].trim_ascii_start().starts_with(b"}}")
                {
                    fire!(rules, "cmdi-template-injection");
                }
            }
        }
        let end = find(window, b"}}").unwrap_or(window.len());
        if has_sensitive(&window[..end]) {
            fire!(rules, "cmdi-template-injection");
        }
        let mut compact = [0u8; 256];
        let mut len = 0;
        for &b in window {
            if !is_blank(b) {
                compact[len] = b;
                len += 1;
            }
        }
        let c = &compact[..len];
        for t in [
            &b"__class__"[..],
            b"__subclasses__",
            b"__globals__",
            b"__builtins__",
            b"__import__",
            b"__mro__",
            b"__base__",
            b"popen(",
        ] {
            if contains(c, t) {
                fire!(rules, "cmdi-template-injection");
            }
        }
    }
    // Code that runs a command line: `system('id')`, `exec("cat /etc/passwd")`.
    if !paren {
        return None;
    }
    for p in memchr::memchr_iter(b'(', s) {
        if p == 0 || !s[p - 1].is_ascii_lowercase() {
            continue;
        }
        let mut k = p;
        while k > 0 && p - k < 16 && (s[k - 1].is_ascii_lowercase() || s[k - 1] == b'_') {
            k -= 1;
        }
        if k > 0 && (s[k - 1].is_ascii_alphanumeric() || s[k - 1] == b'_') {
            continue;
        }
        // PHP functions that only a probe calls: `phpinfo();`.
        if matches!(
            &s[k..p],
            b"phpinfo" | b"phpversion" | b"php_uname" | b"get_current_user"
        ) {
            fire!(rules, "cmdi-code-exec");
        }
        // `await exec('ls')`, `self.exec(...)`: a call inside code someone pasted. Payloads call
        // these at the start, after a separator or quote, or inside `<?php`.
        let before = s[..k].trim_ascii_end();
        let prev = before.last().copied();
        // PHP also calls them joined to a string it closed (`".system('id')."`) or as the
        // value a statement prints (`';echo shell_exec('id');`).
        let joined_to_string = before.ends_with(b"'.") || before.ends_with(b"\".");
        let printed = [&b"echo"[..], b"print", b"return"].iter().any(|kw| {
            before.ends_with(kw)
                && (before.len() == kw.len()
                    || matches!(
                        before[before.len() - kw.len() - 1],
                        b';' | b'\'' | b'"' | b' ' | b'>'
                    ))
        });
        if prev.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
            && !before.ends_with(b"<?php")
            && !before.ends_with(b")")
            && !joined_to_string
            && !printed
        {
            continue;
        }
        let name = &s[k..p];
        if !matches!(
            name,
            b"system"
                | b"exec"
                | b"passthru"
                | b"shell_exec"
                | b"popen"
                | b"proc_open"
                | b"pcntl_exec"
                | b"spawn"
                | b"execsync"
        ) {
            continue;
        }
        let rest = s[p + 1..].trim_ascii_start();
        match rest.first() {
            Some(&q @ (b'\'' | b'"' | b'`')) => {
                let body = &rest[1..rest.len().min(257)];
                let body = &body[..body.iter().position(|&b| b == q).unwrap_or(body.len())];
                let mut cmd = Command::new();
                read_command(body, 0, false, known_word, &mut cmd);
                let c = &cmd;
                if judge(c) >= Verdict::Plausible || common_command(resolved_name(&c.name)) {
                    fire!(rules, "cmdi-code-exec");
                }
            }
            Some(b'$') => fire!(rules, "cmdi-code-exec"),
            _ => {}
        }
    }
    None
}
