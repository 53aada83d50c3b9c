//! Windows shapes that are not a simple command line: PowerShell's .NET downloaders and decoders
//! (`(New-Object Net.WebClient).DownloadString(...)`, `[Convert]::FromBase64String(...)` run by
//! `iex`), and cmd.exe's environment substrings (`%COMSPEC:~-16,1%`), which payloads use to spell
//! a command without writing it.

use super::{fire, Rule};
use crate::inspect::normalize::Marks;
use crate::inspect::rules::RuleFilter;
use crate::inspect::search::{contains, find, Needles};

/// What a .NET member or static call has: a `.` or `::`.
const MEMBER_CALL: Marks = Marks::of(b".:");

/// Every Windows-only rule over `s`.
pub(in crate::inspect::cmdi) fn windows_shapes(
    s: &[u8],
    marks: Marks,
    rules: RuleFilter<'_>,
) -> Option<Rule> {
    if marks.has(b'%') && env_substring(s) {
        fire!(rules, "cmdi-windows-env-substring");
    }
    // Every downloader is a member or static call: a `.` or `::` next to its `(`.
    if marks.has(b'(') && marks.any(MEMBER_CALL) && dotnet_exec(s) {
        fire!(rules, "cmdi-powershell-dotnet");
    }
    None
}

/// `%NAME:~N,M%` (or `%NAME:~N%`).
fn env_substring(s: &[u8]) -> bool {
    let mut from = 0;
    while let Some(p) = find(&s[from..], b":~").map(|p| p + from) {
        from = p + 2;
        let name_start = s[..p]
            .iter()
            .rposition(|&b| !(b.is_ascii_alphanumeric() || b == b'_'))
            .map_or(0, |k| k + 1);
        if name_start == 0 || s[name_start - 1] != b'%' || name_start == p {
            continue;
        }
        let rest = &s[p + 2..];
        let d = rest
            .iter()
            .take_while(|&&b| b.is_ascii_digit() || b == b'-' || b == b',')
            .count();
        if d > 0 && rest.get(d) == Some(&b'%') {
            return true;
        }
    }
    false
}

/// .NET calls that download or decode code.
static DOWNLOADERS: Needles = Needles::new(&[
    b".downloadstring(",
    b".downloadfile(",
    b".downloaddata(",
    b"net.webclient",
    b"frombase64string(",
    b"[system.diagnostics.process]::start(",
    b"[diagnostics.process]::start(",
    b"[reflection.assembly]::load",
]);

/// A .NET call that downloads or decodes code, next to PowerShell's way of running it.
fn dotnet_exec(s: &[u8]) -> bool {
    let download = DOWNLOADERS.any_in(s);
    download
        && (contains(s, b"iex")
            || contains(s, b"invoke-expression")
            || contains(s, b"new-object")
            || contains(s, b"::start(")
            || contains(s, b"::load"))
}
