//! Shell control flow used as a payload: `if [ 3 -eq 3 ]; then sleep 4; fi`, `for i in 1 2; do
//! id; done`, `while ...; do ...; done`, on one line or split over newlines; a test chained to an
//! attack command (`[ 7 -ne $(id|wc -c) ] || sleep 4`); and cmd.exe's
//! `for /f "..." %i in ('cmd') do ...`, also inside code that hands it to a shell.
//!
//! People paste scripts too (`if [ "$(id -u)" -eq 0 ]; then echo root; fi`), so the structure
//! must carry a payload's mark: a body that runs an attack command (a timer, a probe, a download),
//! or a condition that compares constants or measures output (`[ 3 -eq 3 ]`, `[ ${#V} -eq 4 ]`),
//! the oracle of a blind injection.

use super::super::lexer::{is_blank, is_sep, read_command, substitution_end, Command};
use super::judge::{is_number, judge, known_word, Verdict};
use super::{fire, Rule};
use crate::inspect::normalize::Marks;
use crate::inspect::rules::RuleFilter;
use crate::inspect::search::find;

/// The bytes [`is_sep`] accepts.
const SEPARATORS: Marks = Marks::of(b";|&\n\r");

/// What cmd.exe's `for` needs besides `in (`: a switch or a `%` variable.
const WINDOWS_FOR: Marks = Marks::of(b"%/");

/// The word at `i` (up to a blank, a separator or a quote), and where it ends.
fn word_at(s: &[u8], i: usize) -> (&[u8], usize) {
    let mut k = i;
    while k < s.len() && !is_blank(s[k]) && !is_sep(s[k]) {
        k += 1;
    }
    (&s[i..k], k)
}

/// Command positions of `s`: the start, and after every separator (blanks skipped).
fn command_starts(s: &[u8]) -> impl Iterator<Item = usize> + '_ {
    std::iter::once(0)
        .chain(
            s.iter()
                .enumerate()
                .filter(|&(_, &b)| is_sep(b))
                .map(|(k, _)| k + 1),
        )
        .map(move |k| {
            let mut j = k;
            while j < s.len() && (is_blank(s[j]) || is_sep(s[j])) {
                j += 1;
            }
            j
        })
}

/// Control structures of `s`.
pub(in crate::inspect::cmdi) fn control_flow(
    s: &[u8],
    marks: Marks,
    cmd: &mut Command,
    rules: RuleFilter<'_>,
) -> Option<Rule> {
    // A shell structure puts `then`/`fi` or `done` after a separator; cmd.exe's `for` has
    // `in (` and a switch or a `%` variable. Most messages have none of these.
    // A chained test needs `&&`/`||` and `[ ` or `test`.
    let chained_test = (marks.has(b'&') || marks.has(b'|'))
        && (find(s, b"[ ").is_some() || find(s, b"test ").is_some());
    if chained_test {
        for at in command_starts(s) {
            if test_then_attack(s, at, cmd) {
                fire!(rules, "cmdi-test-chain");
            }
        }
    }
    let shell = marks.any(SEPARATORS)
        && (find(s, b"done").is_some() || find(s, b"then").is_some() && find(s, b"fi").is_some());
    let windows = marks.any(WINDOWS_FOR)
        && (find(s, b" in (").is_some() || find(s, b" in(").is_some())
        && find(s, b"for").is_some();
    if windows {
        // cmd.exe's `for` wherever a command starts, also inside a string or backticks code
        // hands to a shell (`system('for /f ...')`, `` print(`for /f ...`) ``).
        let mut from = 0;
        while let Some(p) = find(&s[from..], b"for").map(|p| p + from) {
            from = p + 3;
            let before = s[..p].trim_ascii_end();
            let list_start = before.last().is_none_or(|&b| is_sep(b));
            let quoted_start = matches!(s[..p].last(), Some(b'`' | b'\'' | b'"' | b'(' | b'@'));
            let rest = &s[p + 3..];
            if !rest.first().is_some_and(|&b| is_blank(b)) || !(list_start || quoted_start) {
                continue;
            }
            // Inside code, only with its switch: `for /f`, `for /l`.
            let switch = matches!(
                rest.trim_ascii_start(),
                [b'/', b'f' | b'l' | b'r' | b'd', ..]
            );
            if (list_start || switch) && windows_for(rest) {
                fire!(rules, "cmdi-windows-for");
            }
        }
    }
    if !shell {
        return None;
    }
    let mut last = usize::MAX;
    for at in command_starts(s) {
        if at == last || at >= s.len() {
            continue;
        }
        last = at;
        let (kw, after) = word_at(s, at);
        let (body_kw, end_kw): (&[u8], &[u8]) = match kw {
            b"if" => (b"then", b"fi"),
            b"for" | b"while" | b"until" => (b"do", b"done"),
            _ => continue,
        };
        let Some(body) = keyword_at_command_position(s, after, body_kw) else {
            continue;
        };
        let Some(end) = keyword_at_command_position(s, body, end_kw) else {
            continue;
        };
        let condition = &s[after..body];
        let constant_condition = kw == b"if" && constant_test(condition);
        let mut attack = false;
        // The commands of the condition and the body.
        for k in command_starts(&s[after..end]).map(|k| k + after) {
            if k >= end {
                break;
            }
            let (w, wend) = word_at(s, k);
            let k = if matches!(w, b"then" | b"do" | b"else" | b"elif") {
                wend
            } else {
                k
            };
            read_command(&s[..end], k, false, known_word, cmd);
            if judge(cmd) == Verdict::Attack {
                attack = true;
                break;
            }
        }
        if attack || constant_condition {
            fire!(rules, "cmdi-control-flow");
        }
    }
    None
}

/// Where `kw` stands at a command position at or after `from` (just after it).
fn keyword_at_command_position(s: &[u8], from: usize, kw: &[u8]) -> Option<usize> {
    let mut k = from;
    while let Some(p) = find(&s[k..], kw).map(|p| p + k) {
        k = p + 1;
        let before = s[from..p].trim_ascii_end();
        let at_position = before.last().is_some_and(|&b| is_sep(b))
            || before.ends_with(b"then")
            || before.ends_with(b"do")
            || before.ends_with(b"else");
        let after_ok = s
            .get(p + kw.len())
            .is_none_or(|&b| is_blank(b) || is_sep(b));
        if at_position && after_ok {
            return Some(p + kw.len());
        }
    }
    None
}

/// A test of constants or lengths: `[ 3 -eq 3 ]`, `[ ${#v} -ne 4 ]`, `(( 2 > 1 ))`.
fn constant_test(cond: &[u8]) -> bool {
    let mut words = cond
        .split(|&b| is_blank(b) || matches!(b, b'[' | b']' | b'(' | b')' | b';'))
        .filter(|w| !w.is_empty());
    let (Some(a), Some(op), Some(b)) = (words.next(), words.next(), words.next()) else {
        return false;
    };
    let comparison = matches!(
        op,
        b"-eq" | b"-ne" | b"-gt" | b"-lt" | b"-ge" | b"-le" | b"=" | b"==" | b"!=" | b">" | b"<"
    );
    let length = |w: &[u8]| w.starts_with(b"${#");
    comparison && (is_number(a) && is_number(b) || length(a) || length(b))
}

/// A test of constants, lengths or command output at `at`, chained by `&&` or `||` to an attack
/// command: `[ 7 -ne $(id|wc -c) ] || sleep 4`, `test 5 -eq ${#v} && ping -c 3 127.0.0.1` (the
/// oracle of a blind injection, without `if`).
fn test_then_attack(s: &[u8], at: usize, cmd: &mut Command) -> bool {
    let (kw, mut k) = word_at(s, at);
    let bracket = matches!(kw, b"[" | b"[[");
    if !(bracket || kw == b"test") {
        return false;
    }
    let n = s.len().min(at + 512);
    // Operands (`N`, `${#v}`, a substitution) and the operator, up to `]` or the chain.
    let mut words: [&[u8]; 3] = [&[]; 3];
    let mut count = 0;
    loop {
        while k < n && is_blank(s[k]) {
            k += 1;
        }
        if k >= n {
            return false;
        }
        let start = k;
        if s[k] == b'$' && s.get(k + 1) == Some(&b'(') {
            let Some(end) = substitution_end(s, k + 1) else {
                return false;
            };
            k = end;
        } else if s[k] == b'`' {
            let Some(close) = s[k + 1..n].iter().position(|&b| b == b'`') else {
                return false;
            };
            k += close + 2;
        } else if bracket && s[k] == b']' {
            while k < n && s[k] == b']' {
                k += 1;
            }
            while k < n && is_blank(s[k]) {
                k += 1;
            }
            break;
        } else if is_sep(s[k]) {
            if bracket {
                return false;
            }
            break;
        } else {
            while k < n && !is_blank(s[k]) && !is_sep(s[k]) && s[k] != b']' {
                k += 1;
            }
        }
        if count == words.len() {
            return false;
        }
        words[count] = &s[start..k];
        count += 1;
    }
    let [a, op, b] = words;
    let operand = |w: &[u8]| {
        is_number(w) || w.starts_with(b"${#") || w.starts_with(b"$(") || w.starts_with(b"`")
    };
    let comparison = matches!(
        op,
        b"-eq" | b"-ne" | b"-gt" | b"-lt" | b"-ge" | b"-le" | b"=" | b"==" | b"!="
    );
    if count != 3 || !comparison || !(is_number(a) && operand(b) || is_number(b) && operand(a)) {
        return false;
    }
    // The chain: `&&` or `||`, then the command it runs.
    let chained = s.get(k..k + 2).is_some_and(|op| op == b"&&" || op == b"||");
    if !chained {
        return false;
    }
    read_command(s, k + 2, false, known_word, cmd);
    judge(cmd) == Verdict::Attack
}

/// After cmd.exe's `for`: a switch (`/f`, `/l`), a `%` variable, `in (...)` and `do`.
fn windows_for(rest: &[u8]) -> bool {
    let rest = rest.trim_ascii_start();
    let switch = rest.len() >= 2
        && rest[0] == b'/'
        && matches!(rest[1], b'f' | b'l' | b'r' | b'd')
        && rest.get(2).is_none_or(|&b| is_blank(b));
    let window = &rest[..rest.len().min(256)];
    let variable = find(window, b"%").is_some();
    let in_do = find(window, b" in (")
        .or_else(|| find(window, b" in("))
        .is_some()
        && find(window, b" do ")
            .or_else(|| find(window, b")do "))
            .is_some();
    (switch || variable) && in_do
}
