//! The judgement of one simple command: is this command word, with these arguments, something an
//! attacker runs ([`Verdict::Attack`]), a plausible command line ([`Verdict::Plausible`]) or
//! prose that happens to start with a command's name ([`Verdict::No`])?
//!
//! The command word is resolved first (directories and `.exe` stripped, globs matched against
//! [`GLOB_TARGETS`]); its kind from the vocabulary decides how much of a command line it needs.

use super::super::lexer::{glob_match, Command, Word};
use super::super::vocab::{self, Kind, GLOB_TARGETS};
use crate::inspect::search::{contains, Needles};

/// How much a command looks like something an attacker runs.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(in crate::inspect::cmdi) enum Verdict {
    No,
    /// A real command with a plausible command line.
    Plausible,
    /// Something attackers run and people rarely type in chat.
    Attack,
}

/// The name a command word runs: directories and `.exe` stripped; a glob (`c?t`, `[u]name`)
/// resolved to the first command of [`GLOB_TARGETS`] it matches (nothing when none does).
pub(in crate::inspect::cmdi) fn resolved_name(w: &Word) -> &[u8] {
    let word = w.as_bytes();
    // Most words are letters only: their own name.
    if !w.punctuated && !w.glob {
        return word;
    }
    // The user's shell: `$SHELL -c ...`.
    if matches!(word, b"$shell" | b"${shell}") {
        return b"sh";
    }
    // cmd.exe's own path: `%COMSPEC% /c ...`.
    if word == b"%comspec%" {
        return b"cmd";
    }
    // A Windows switch glued to the command (`bcdboot/r`).
    if let Some(slash) = word.iter().position(|&b| b == b'/') {
        let head = &word[..slash];
        if slash > 1 && vocab::kind(head) == Some(Kind::Windows) {
            return head;
        }
    }
    let name = w.command_name();
    // A versioned binary: `python3.10`, `php7.4`, `gcc10.1`.
    if let Some(dot) = name.iter().position(|&b| b == b'.') {
        let (head, tail) = name.split_at(dot);
        if tail.iter().all(|&b| b.is_ascii_digit() || b == b'.') && vocab::kind(name).is_none() {
            if vocab::kind(head).is_some() {
                return head;
            }
            let unversioned = head.trim_ascii_end();
            let digits = unversioned
                .iter()
                .rev()
                .take_while(|b| b.is_ascii_digit())
                .count();
            let base = &head[..head.len() - digits];
            if digits > 0 && vocab::kind(base).is_some() {
                return base;
            }
        }
    }
    if !w.glob {
        return name;
    }
    // A glob needs a literal letter and at most a few stars (the matcher backtracks on them).
    let stars = name.iter().filter(|&&b| b == b'*').count();
    if stars > 3 || !name.iter().any(u8::is_ascii_alphabetic) || name.len() < 2 {
        return &[];
    }
    GLOB_TARGETS
        .iter()
        .copied()
        .find(|t| glob_match(name, t))
        .unwrap_or(&[])
}

/// Does the word name a command of the vocabulary? (Its arguments are read only then.)
pub(in crate::inspect::cmdi) fn known_word(w: &Word) -> bool {
    vocab::kind(resolved_name(w)).is_some()
}

/// Files and directories whose reading is the goal of an injection.
static SENSITIVE_PATHS: Needles = Needles::new(&[
    b"/etc/passwd",
    b"/etc/shadow",
    b"/etc/group",
    b"/etc/hosts",
    b"/etc/issue",
    b"/etc/sudoers",
    b"/etc/master.passwd",
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

pub(in crate::inspect::cmdi) fn has_sensitive(arg: &[u8]) -> bool {
    SENSITIVE_PATHS.any_in(arg)
}

/// An argument that looks like a command line rather than a word of prose: an option, a path, a
/// variable, a number, a host or URL, a glob.
pub(in crate::inspect::cmdi) fn shellish(arg: &[u8]) -> bool {
    let Some(&f) = arg.first() else { return false };
    matches!(
        f,
        b'-' | b'/' | b'.' | b'~' | b'$' | b'%' | b'\\' | b'*' | b'0'..=b'9' | b'{'
    ) || arg
        .iter()
        .any(|&b| matches!(b, b'/' | b'\\' | b'.' | b'=' | b':' | b'*'))
}

pub(in crate::inspect::cmdi) fn is_number(a: &[u8]) -> bool {
    !a.is_empty() && a.iter().all(|b| b.is_ascii_digit() || *b == b'.')
}

/// An option (`-a`, `--all`, `/c` for Windows tools) rather than a dash in prose.
fn is_option(a: &[u8]) -> bool {
    match a {
        [b'-', b'-', c, ..] | [b'-', c, ..] => c.is_ascii_alphanumeric(),
        _ => false,
    }
}

/// A path argument: `/etc`, `./x`, `~/x`, `c:\x`.
fn is_path(a: &[u8]) -> bool {
    a.starts_with(b"/")
        || a.starts_with(b"./")
        || a.starts_with(b"../")
        || a.starts_with(b"~/")
        || (a.len() >= 3 && a[0].is_ascii_lowercase() && a[1] == b':' && a[2] == b'\\')
}

/// A URL or a network address (`http://h/x`, `1.2.3.4`, `h.example:4444`).
fn is_remote(a: &[u8]) -> bool {
    contains(a, b"://")
        || contains(a, b"\\\\")
        || (a.iter().filter(|&&b| b == b'.').count() >= 1
            && a.first().is_some_and(u8::is_ascii_alphanumeric)
            && a.iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'/')))
}

/// The verdict on command `c`: [`judge_command_line`], and a command whose output goes to a
/// file (`ps aux > /var/www/x.html`, `route print > c:\\x.txt`) is a plausible command line
/// whatever its arguments.
pub(in crate::inspect::cmdi) fn judge(c: &Command) -> Verdict {
    let v = judge_command_line(c);
    if v == Verdict::No && writes_file(c) && known_word(&c.name) {
        return Verdict::Plausible;
    }
    v
}

/// The command's output goes to a file (not a device: `nul`, `/dev/null`).
fn writes_file(c: &Command) -> bool {
    let t = c.target.as_bytes();
    !t.is_empty()
        && !matches!(t, b"nul" | b"/dev/null" | b"con")
        && (t.contains(&b'/') || t.contains(&b'\\') || t.contains(&b'.'))
}

/// An option glued to its number (`-c3`, `-n5`) or standing alone (`-c`), of one of `letters`.
fn timing_option(a: &[u8], letters: &[u8]) -> bool {
    match a {
        [b'-', l, rest @ ..] => letters.contains(l) && rest.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

/// The verdict on command `c` by its word and arguments.
fn judge_command_line(c: &Command) -> Verdict {
    let name = resolved_name(&c.name);
    if name.is_empty() || c.name.overflow {
        return Verdict::No;
    }
    let Some(kind) = vocab::kind(name) else {
        return Verdict::No;
    };
    let arg = |k: usize| c.arg(k);
    let any_arg = |f: &dyn Fn(&[u8]) -> bool| c.args().any(f);
    let no_args = c.nargs == 0;
    let first_shellish = c.nargs > 0 && shellish(arg(0));
    // Only the file-reading commands ask, and most candidate commands are not those.
    let sensitive = || any_arg(&has_sensitive);
    let opt = |o: &[u8]| any_arg(&|a: &[u8]| a == o);
    let opt_has = |ch: u8| {
        any_arg(&|a: &[u8]| a.len() >= 2 && a[0] == b'-' && a[1] != b'-' && a.contains(&ch))
    };
    let plausible_if = |b: bool| if b { Verdict::Plausible } else { Verdict::No };
    match name {
        // Recon commands people rarely type inside a sentence.
        b"whoami" | b"ifconfig" | b"ipconfig" | b"systeminfo" | b"sysinfo" | b"tasklist"
        | b"netstat" | b"hostname" | b"getuid" | b"phpinfo" | b"getmac" | b"qwinsta" | b"quser" => {
            if no_args || first_shellish {
                Verdict::Attack
            } else {
                Verdict::Plausible
            }
        }
        b"id" => {
            if no_args {
                Verdict::Attack
            } else {
                plausible_if(first_shellish && arg(0).starts_with(b"-"))
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
            plausible_if(no_args || first_shellish || name == b"ps" && arg(0) == b"aux")
        }
        // Network and service listings: `ip addr`, `route print`, `sc query`, `query user`.
        b"ip" => plausible_if(matches!(
            arg(0),
            b"a" | b"addr" | b"address" | b"r" | b"route" | b"link" | b"neigh" | b"-4" | b"-6"
        )),
        b"getent" => plausible_if(matches!(
            arg(0),
            b"passwd" | b"shadow" | b"group" | b"hosts"
        )),
        b"route" => plausible_if(no_args || first_shellish || arg(0) == b"print"),
        b"query" => plausible_if(matches!(arg(0), b"user" | b"session" | b"process")),
        // Arithmetic a payload proves execution with: `expr 12 + 34`.
        b"expr" => plausible_if(c.nargs >= 3 && is_number(arg(0)) && is_number(arg(2))),
        b"cat" | b"tac" | b"more" | b"less" | b"head" | b"tail" | b"type" | b"nl" | b"strings"
        | b"xxd" | b"od" | b"base64" | b"grep" => {
            if sensitive() {
                Verdict::Attack
            } else {
                plausible_if(first_shellish)
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
            } else {
                plausible_if(no_args || first_shellish || arg(0).starts_with(b"c:"))
            }
        }
        b"nc" | b"ncat" | b"netcat" | b"socat" | b"telnet" => {
            let shell = any_arg(&|a: &[u8]| {
                a.ends_with(b"/sh")
                    || a.ends_with(b"/bash")
                    || a.starts_with(b"cmd")
                    || a.starts_with(b"exec:")
            });
            if opt_has(b'e') || opt_has(b'c') || shell || (opt_has(b'l') && opt_has(b'p')) {
                Verdict::Attack
            } else {
                plausible_if(first_shellish || c.nargs >= 2)
            }
        }
        b"bash" | b"sh" | b"zsh" | b"dash" | b"ksh" | b"csh" | b"tcsh" | b"ash" | b"busybox" => {
            if opt(b"-i")
                || opt(b"-c")
                || (c.redirect
                    && (contains(c.target.as_bytes(), b"/dev/tcp")
                        || any_arg(&|a: &[u8]| contains(a, b"/dev/tcp"))))
            {
                Verdict::Attack
            } else {
                plausible_if(no_args || first_shellish)
            }
        }
        b"curl" | b"wget" | b"fetch" | b"tftp" | b"ftp" | b"lwp-download" | b"bitsadmin" => {
            let remote = any_arg(&is_remote);
            if c.end == b'|'
                || opt(b"-o")
                || opt(b"-o-")
                || opt(b"/transfer")
                || any_arg(&|a: &[u8]| contains(a, b"/tmp/"))
                || (remote && (c.redirect || opt(b"-d") || opt(b"--data") || opt(b"-t")))
            {
                Verdict::Attack
            } else {
                plausible_if(first_shellish || c.nargs >= 1 && contains(arg(0), b"."))
            }
        }
        b"certutil" => {
            if opt(b"-urlcache") || opt(b"-decode") || opt(b"-decodehex") || any_arg(&is_remote) {
                Verdict::Attack
            } else {
                plausible_if(first_shellish)
            }
        }
        b"mshta" | b"regsvr32" | b"rundll32" | b"msiexec" | b"cscript" | b"wscript"
        | b"msbuild" | b"installutil" | b"cmstp" | b"odbcconf" | b"regasm" => {
            let code = any_arg(&|a: &[u8]| {
                is_remote(a)
                    || contains(a, b"javascript:")
                    || contains(a, b"vbscript:")
                    || contains(a, b"scrobj")
                    || a.ends_with(b".hta")
                    || a.ends_with(b".sct")
                    || a.ends_with(b".js")
                    || a.ends_with(b".vbs")
                    || a.ends_with(b".dll")
                    || a.ends_with(b".msi")
            });
            if code {
                Verdict::Attack
            } else {
                plausible_if(no_args || first_shellish)
            }
        }
        b"python" | b"python2" | b"python3" | b"perl" | b"php" | b"ruby" | b"lua" | b"node"
        | b"nodejs" | b"powershell" | b"pwsh" | b"cmd" | b"php5" | b"php7" | b"irb" => {
            // The option that takes code differs: `php -r`, `node -e`, `python -c`, `cmd /c`.
            let code_opt = match name {
                b"php" | b"php5" | b"php7" => opt(b"-r"),
                b"cmd" => {
                    opt(b"/c")
                        || opt(b"/k")
                        || opt(b"/r")
                        || any_arg(&|a: &[u8]| a.ends_with(b".exe") || a.ends_with(b".bat"))
                }
                // A cmdlet run directly: `powershell Start-Sleep 3`.
                b"powershell" | b"pwsh" if is_cmdlet(arg(0)) => true,
                b"powershell" | b"pwsh" => any_arg(&|a: &[u8]| {
                    a.starts_with(b"-e")
                        || a.starts_with(b"-c")
                        || a.starts_with(b"-nop")
                        || a.starts_with(b"-w")
                        || a.starts_with(b"-exec")
                        || a.starts_with(b"-file")
                        || a.starts_with(b"/c")
                        || a.starts_with(b"iex")
                        || a.ends_with(b".exe")
                        || a.ends_with(b".ps1")
                }),
                _ => false,
            };
            if opt(b"-c") || opt(b"-e") || code_opt || opt(b"-enc") || opt(b"-command") {
                Verdict::Attack
            } else {
                plausible_if(no_args || first_shellish)
            }
        }
        b"ping" => {
            let timing = any_arg(&|a: &[u8]| timing_option(a, b"cnitw"));
            let host = any_arg(&|a: &[u8]| {
                a.iter().filter(|&&b| b == b'.').count() >= 1
                    && a.iter()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
                    || a == b"localhost"
            });
            if timing && host {
                Verdict::Attack
            } else {
                plausible_if(host || first_shellish)
            }
        }
        b"sleep" | b"timeout" | b"usleep" => {
            if c.nargs >= 1 && (is_number(arg(0)) || arg(0) == b"/t") {
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
            } else {
                plausible_if(
                    c.nargs >= 1
                        && (first_shellish
                            || c.args[0].obfuscated
                            // Command output echoed, maybe between markers: `echo X$(id)X`.
                            || c.args[..c.nargs].iter().any(|a| a.substitution)
                            // A marker echoed on its own: `echo QWE`, `echo QWE > f`.
                            || c.complete && c.nargs <= 2),
                )
            }
        }
        b"rm" | b"del" | b"rmdir" | b"erase" => {
            if opt(b"-rf") || opt(b"-fr") || opt(b"/s") || opt(b"/q") || opt(b"/f") {
                Verdict::Attack
            } else {
                plausible_if(first_shellish)
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
        b"net" | b"net1" => {
            if matches!(
                arg(0),
                b"user" | b"localgroup" | b"group" | b"view" | b"share" | b"use" | b"accounts"
            ) {
                Verdict::Attack
            } else {
                Verdict::No
            }
        }
        b"wmic" => {
            if any_arg(&|a: &[u8]| matches!(a, b"process" | b"os" | b"useraccount" | b"call")) {
                Verdict::Attack
            } else {
                plausible_if(first_shellish)
            }
        }
        b"schtasks" | b"sc" => {
            if any_arg(&|a: &[u8]| matches!(a, b"/create" | b"create" | b"config" | b"/run")) {
                Verdict::Attack
            } else {
                plausible_if(
                    c.nargs > 0 && arg(0).starts_with(b"/")
                        || name == b"sc" && matches!(arg(0), b"query" | b"queryex" | b"qc"),
                )
            }
        }
        // `set` alone lists cmd.exe's environment; only as the whole rest of the text.
        b"set" if no_args && c.complete && (c.end == 0 || c.end == b'#') => Verdict::Plausible,
        b"start" | b"call" | b"set" | b"copy" | b"format" | b"expand" => {
            // Everyday English words: only with a command line's shape.
            plausible_if(c.nargs > 0 && (is_path(arg(0)) || arg(0).starts_with(b"/")))
        }
        b"shutdown" | b"reboot" | b"halt" => plausible_if(first_shellish || no_args),
        // Builtins that run their argument as a command: `trap 'rm -f x' EXIT`, `eval "id"`.
        b"trap" | b"eval" => plausible_if(c.nargs > 0 && starts_with_command(arg(0))),
        _ => judge_by_kind(c, name, kind),
    }
}

/// Commands without a judgement of their own: by their kind.
fn judge_by_kind(c: &Command, name: &[u8], kind: Kind) -> Verdict {
    let first = c.arg(0);
    let no_args = c.nargs == 0;
    let flagged = is_option(first) || is_path(first);
    let v = match kind {
        Kind::Probe => no_args || shellish(first),
        Kind::Network | Kind::Interpreter | Kind::Reader | Kind::Changer => {
            flagged || shellish(first) && c.nargs >= 1 && !first.ends_with(b".")
        }
        Kind::Timing => shellish(first),
        Kind::Windows => {
            // A switch glued to the command: `bcdboot/r`.
            let glued_switch = c.name.as_bytes().len() > name.len() + 1
                && c.name.as_bytes().get(name.len()) == Some(&b'/');
            glued_switch
                || c.nargs > 0
                    && (first.starts_with(b"/") && first.len() <= 12
                        || is_path(first)
                        || first.starts_with(b"%"))
                || c.redirect
        }
        Kind::PowerShell => return judge_powershell(c, name),
        Kind::Tool => flagged || c.redirect && c.nargs > 0,
    };
    if v {
        Verdict::Plausible
    } else {
        Verdict::No
    }
}

/// PowerShell cmdlets and aliases.
fn judge_powershell(c: &Command, name: &[u8]) -> Verdict {
    let any_arg = |f: &dyn Fn(&[u8]) -> bool| c.args().any(f);
    let param = any_arg(&|a: &[u8]| a.starts_with(b"-") && a.len() > 1);
    let remote = any_arg(&|a: &[u8]| contains(a, b"http") || contains(a, b"\\\\"));
    let cmdlet = name.contains(&b'-');
    match name {
        b"start-sleep" | b"sleep" => {
            if any_arg(&is_number) {
                Verdict::Attack
            } else {
                Verdict::No
            }
        }
        b"invoke-expression" | b"iex" | b"invoke-command" | b"icm" => {
            if c.nargs > 0 || c.end == b'(' {
                Verdict::Attack
            } else {
                Verdict::Plausible
            }
        }
        b"invoke-webrequest"
        | b"iwr"
        | b"invoke-restmethod"
        | b"irm"
        | b"start-bitstransfer"
        | b"wget"
        | b"curl" => {
            if remote {
                Verdict::Attack
            } else if param {
                Verdict::Plausible
            } else {
                Verdict::No
            }
        }
        b"start-process"
        | b"saps"
        | b"new-object"
        | b"add-type"
        | b"set-executionpolicy"
        | b"get-wmiobject"
        | b"gwmi"
        | b"invoke-wmimethod"
        | b"set-mppreference"
        | b"get-process"
        | b"get-childitem"
        | b"get-content"
        | b"get-localuser"
        | b"gci"
        | b"gc"
        | b"get-computerinfo"
        | b"get-service"
        | b"test-connection" => {
            if param || any_arg(&is_path) || any_arg(&|a: &[u8]| contains(a, b"net.")) {
                Verdict::Attack
            } else if c.nargs == 0 && cmdlet {
                Verdict::Plausible
            } else {
                Verdict::No
            }
        }
        _ => {
            if param || c.nargs == 0 && cmdlet {
                Verdict::Plausible
            } else {
                Verdict::No
            }
        }
    }
}

/// A PowerShell cmdlet (`start-sleep`, `get-childitem`): Verb-Noun of the vocabulary.
fn is_cmdlet(a: &[u8]) -> bool {
    a.contains(&b'-') && vocab::kind(a) == Some(Kind::PowerShell)
}

/// Does `text` start with a command word of the vocabulary (`rm -f x`, `id`)?
fn starts_with_command(text: &[u8]) -> bool {
    let end = text
        .iter()
        .position(|&b| b == b' ' || b == b';')
        .unwrap_or(text.len());
    vocab::kind(&text[..end]).is_some()
}
