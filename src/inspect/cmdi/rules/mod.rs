//! The judgements of the command-injection detector, by shape:
//!
//! - `judge.rs`: one simple command, by its word's kind and its arguments;
//! - `position.rs`: commands where an injection puts them (after a separator, in `$(...)`);
//! - `leading.rs`: a message that is a dangerous command line, and pipes into an interpreter;
//! - `expansion.rs`: expansions only shell payloads have (`$((..))`, `${#V}`, `${IFS}`, `<<<`);
//! - `control.rs`: control flow carrying a payload (`if ...; then sleep 4; fi`, `for /f`);
//! - `glob.rs`: globs that spell a sensitive path (`/e?c/p?sswd`, `/etc/pa[s]swd`);
//! - `windows.rs`: PowerShell .NET downloaders, cmd.exe environment substrings;
//! - `code.rs`: code that runs commands (Shellshock, PHP, SSI, templates, `system('id')`).

pub(super) mod code;
pub(super) mod control;
pub(super) mod expansion;
pub(super) mod glob;
pub(super) mod judge;
pub(super) mod leading;
pub(super) mod position;
pub(super) mod windows;

/// A rule id (`cmdi-chain`, ...).
pub(super) type Rule = &'static str;

/// Reports `$id` from the enclosing function when the rule filter allows it; otherwise the
/// scan goes on to the other rules. Every rule matches through this, at its own site.
macro_rules! fire {
    ($rules:expr, $id:expr) => {
        if let Some(r) = $rules.fire($id) {
            return Some(r);
        }
    };
}
pub(super) use fire;
