//! Expansions only a shell payload has: arithmetic `$(( 21+21 ))`, parameter lengths and slices
//! `${#V}` / `${V:0:1}`, a command substitution assigned to a variable and then used
//! (`V=$(id);echo $V`), `$IFS` standing for a blank (`cat${IFS}x`), here-strings feeding a
//! command (`cat<<<$(id)`), and Log4j lookups (`${jndi:ldap://h/a}`), which ask the server to
//! load and run code.

use super::super::lexer::{read_command, Command};
use super::judge::{known_word, Verdict};
use super::{fire, Rule};
use crate::inspect::normalize::Marks;
use crate::inspect::rules::RuleFilter;
use crate::inspect::search::find;

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Every expansion rule over `s`.
pub(in crate::inspect::cmdi) fn expansions(
    s: &[u8],
    marks: Marks,
    cmd: &mut Command,
    rules: RuleFilter<'_>,
) -> Option<Rule> {
    if !marks.has(b'$') && !marks.has(b'<') {
        return None;
    }
    if marks.has(b'$') {
        if marks.has(b'(') && arithmetic(s) {
            fire!(rules, "cmdi-arithmetic-expansion");
        }
        if marks.has(b'{') {
            if jndi_lookup(s) {
                fire!(rules, "cmdi-jndi-lookup");
            }
            if parameter_operation(s) {
                fire!(rules, "cmdi-parameter-expansion");
            }
        }
        if ifs_blank(s) {
            fire!(rules, "cmdi-ifs-blank");
        }
        if marks.has(b'=') && assigned_substitution(s, cmd) {
            fire!(rules, "cmdi-assigned-substitution");
        }
    }
    if marks.has(b'<') && here_string(s, cmd) {
        fire!(rules, "cmdi-here-string");
    }
    None
}

/// `$(( expr ))` with an arithmetic body: numbers, variables, operators.
fn arithmetic(s: &[u8]) -> bool {
    let mut from = 0;
    while let Some(p) = find(&s[from..], b"$((").map(|p| p + from) {
        from = p + 3;
        let body = &s[p + 3..s.len().min(p + 3 + 64)];
        let Some(close) = find(body, b"))") else {
            continue;
        };
        let expr = &body[..close];
        let arithmetic_only = expr.iter().all(|&b| {
            is_ident(b)
                || matches!(
                    b,
                    b' ' | b'+'
                        | b'-'
                        | b'*'
                        | b'/'
                        | b'%'
                        | b'$'
                        | b'<'
                        | b'>'
                        | b'='
                        | b'!'
                        | b'&'
                        | b'|'
                        | b'^'
                        | b'('
                        | b')'
                )
        });
        if arithmetic_only && expr.iter().any(u8::is_ascii_digit) {
            return true;
        }
    }
    false
}

/// `${#V}` (length) or `${V:1:2}` (slice): operations on a variable that a payload uses to build
/// or measure output; prose and templates (`${name}`) have neither.
fn parameter_operation(s: &[u8]) -> bool {
    let mut from = 0;
    while let Some(p) = find(&s[from..], b"${").map(|p| p + from) {
        from = p + 2;
        let rest = &s[p + 2..];
        if let Some(after) = rest.strip_prefix(b"#") {
            let k = after.iter().take_while(|&&b| is_ident(b)).count();
            if k > 0 && after.get(k) == Some(&b'}') {
                return true;
            }
            continue;
        }
        let k = rest.iter().take_while(|&&b| is_ident(b)).count();
        if k == 0 || !rest[0].is_ascii_alphabetic() {
            continue;
        }
        // `${V:0:1}`, `${V: -1}`, `${V:~0}`.
        let op = &rest[k..];
        if let Some(slice) = op.strip_prefix(b":") {
            let slice = slice.trim_ascii_start();
            let d = slice
                .iter()
                .take_while(|&&b| b.is_ascii_digit() || b == b'-')
                .count();
            if d > 0 && slice.get(d).is_some_and(|&b| b == b':' || b == b'}') {
                return true;
            }
        }
    }
    false
}

/// A Log4j lookup: `${jndi:...}`, or nested lookups that spell it (`${${lower:j}ndi:...}`,
/// `${${::-j}${::-n}di:...}`).
fn jndi_lookup(s: &[u8]) -> bool {
    let mut from = 0;
    while let Some(p) = find(&s[from..], b"${").map(|p| p + from) {
        from = p + 2;
        let rest = &s[p + 2..s.len().min(p + 2 + 24)];
        if rest.starts_with(b"jndi:") {
            return true;
        }
        // A lookup whose default spells the `$`: `${:1:-x$}{jndi:...}`.
        if find(&s[p..s.len().min(p + 48)], b"{jndi:").is_some() {
            return true;
        }
        if rest.starts_with(b"${")
            && [
                &b"${lower:"[..],
                b"${upper:",
                b"${::-",
                b"${env:",
                b"${date:",
            ]
            .iter()
            .any(|l| rest.starts_with(l))
        {
            return true;
        }
    }
    false
}

/// `$IFS` as a blank: glued to words on both sides (`cat${IFS}/etc/passwd`, `ls$IFS-la`).
fn ifs_blank(s: &[u8]) -> bool {
    let mut from = 0;
    while let Some(p) = find(&s[from..], b"$").map(|p| p + from) {
        from = p + 1;
        let len = super::super::lexer::ifs_at(&s[p..]);
        if len == 0 {
            continue;
        }
        let before = p.checked_sub(1).and_then(|k| s.get(k));
        let after = s.get(p + len);
        let word = |b: Option<&u8>| {
            b.is_some_and(|&b| {
                b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'.' | b'\'' | b'"')
            })
        };
        if word(before) && (word(after) || after.is_none() && len == 6) {
            return true;
        }
    }
    false
}

/// `V=$(cmd ...)` or ``V=`cmd` `` with a command of the vocabulary inside, and `$V` used later.
fn assigned_substitution(s: &[u8], cmd: &mut Command) -> bool {
    let mut from = 0;
    while let Some(eq) = find(&s[from..], b"=").map(|p| p + from) {
        from = eq + 1;
        let open = match s.get(eq + 1..eq + 3) {
            Some([b'$', b'(']) => eq + 3,
            Some([b'`', _]) => eq + 2,
            _ => continue,
        };
        if s.get(open) == Some(&b'(') {
            continue;
        }
        let name_start = s[..eq]
            .iter()
            .rposition(|&b| !is_ident(b))
            .map_or(0, |k| k + 1);
        let name = &s[name_start..eq];
        if name.is_empty() || !name[0].is_ascii_alphabetic() || name.len() > 24 {
            continue;
        }
        read_command(s, open, false, known_word, cmd);
        if super::judge::judge(cmd) < Verdict::Plausible && !known_word(&cmd.name) {
            continue;
        }
        // The variable used later: `$V`, `${V}`, `${#V}`.
        let later = &s[cmd.stop.min(s.len())..];
        let mut k = 0;
        while let Some(d) = find(&later[k..], b"$").map(|d| d + k) {
            k = d + 1;
            let r = &later[d + 1..];
            let r = r.strip_prefix(b"{").unwrap_or(r);
            let r = r.strip_prefix(b"#").unwrap_or(r);
            if r.starts_with(name) && !r.get(name.len()).is_some_and(|&b| is_ident(b)) {
                return true;
            }
        }
    }
    false
}

/// A here-string feeding a command: `cat<<<$(id)`, `bash <<< "id"`, `base64 -d<<<aWQ=`.
fn here_string(s: &[u8], cmd: &mut Command) -> bool {
    let mut from = 0;
    while let Some(p) = find(&s[from..], b"<<<").map(|p| p + from) {
        from = p + 3;
        let after = s[p + 3..].trim_ascii_start();
        if after.starts_with(b"$(") || after.starts_with(b"`") {
            return true;
        }
        // The command before it: start of its segment.
        let seg = s[..p]
            .iter()
            .rposition(|&b| super::super::lexer::is_sep(b) || matches!(b, b'`' | b'('))
            .map_or(0, |k| k + 1);
        read_command(s, seg, false, known_word, cmd);
        if known_word(&cmd.name) && !after.is_empty() {
            return true;
        }
    }
    false
}
