//! Commands at the positions an injection creates: after a separator (`;`, `|`, `||`, `&`, `&&`,
//! newline), inside `$(...)` or backticks, as the first item of a brace expansion
//! (`{cat,/etc/passwd}`), and redirections to a network device (`>& /dev/tcp/h/p`).
//!
//! Position decides how much the command must look like an attack: right after the first token of
//! the message (`127.0.0.1; id`, `x|echo QWE`), or in a message that starts with a separator, a
//! plausible command line is enough; deep inside a sentence only an unmistakable one counts.

use super::super::lexer::{is_blank, is_sep, read_command, Command};
use super::judge::{judge, known_word, Verdict};
use super::{fire, Rule};
use crate::inspect::rules::RuleFilter;
use crate::inspect::search::contains;

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

/// Where the message's first token ends, and other landmarks of an injection's position.
struct Landmarks {
    /// End of the first token (separators up to here follow the value the payload extends).
    lead: usize,
    first_alnum: usize,
    first_blank: usize,
    /// The message starts (after quotes and blanks) with a separator: a command list.
    starts_with_separator: bool,
    /// The first token is a command word of the vocabulary.
    first_is_command: bool,
}

impl Landmarks {
    fn of(s: &[u8]) -> Self {
        let n = s.len();
        let start = s.iter().position(|&b| !is_blank(b)).unwrap_or(n);
        let mut lead = start;
        while lead < n && !is_blank(s[lead]) && !is_sep(s[lead]) {
            lead += 1;
        }
        let first_token_end = lead;
        // Blanks between the first token and its separator: `x || id`.
        while lead < n && is_blank(s[lead]) {
            lead += 1;
        }
        Landmarks {
            lead,
            first_alnum: s
                .iter()
                .position(|b| b.is_ascii_alphanumeric())
                .unwrap_or(n),
            first_blank: s.iter().position(|&b| is_blank(b)).unwrap_or(n),
            starts_with_separator: s
                .iter()
                .find(|&&b| !(is_blank(b) || matches!(b, b'\'' | b'"')))
                .is_some_and(|&b| is_sep(b)),
            first_is_command: super::super::vocab::kind(&s[start..first_token_end]).is_some(),
        }
    }
}

/// Scans every command position of `s`.
pub(in crate::inspect::cmdi) fn command_positions(
    s: &[u8],
    cmd: &mut Command,
    rules: RuleFilter<'_>,
) -> Option<Rule> {
    let n = s.len();
    let marks = Landmarks::of(s);
    // The list changed into `/etc` (`cd /;cd etc;...`): bare `passwd` then names a sensitive file.
    let mut in_etc = false;
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
            b'$' if s.get(i + 1) == Some(&b'(') && s.get(i + 2) != Some(&b'(') => {
                (i + 2, "cmdi-substitution")
            }
            b'{' if s
                .get(i + 1)
                .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'/' || *b == b',') =>
            {
                if rules.allows("cmdi-brace-expansion") && brace_expansion(s, i, cmd) {
                    return Some("cmdi-brace-expansion");
                }
                i += 1;
                continue;
            }
            b'<' | b'>' => {
                if network_redirect(&s[i + 1..n.min(i + 24)]) {
                    fire!(rules, "cmdi-reverse-shell");
                }
                i += 1;
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        };
        read_command(s, cmd_at, false, known_word, cmd);
        let c = &*cmd;
        let v = judge(c);
        if c.name.command_name() == b"cd" {
            in_etc = matches!(c.arg(0), b"/etc" | b"/etc/" | b"etc" | b"etc/");
        } else if in_etc
            && known_word(&c.name)
            && c.args()
                .any(|a| matches!(a, b"passwd" | b"shadow" | b"sudoers" | b"group"))
        {
            fire!(rules, "cmdi-relative-sensitive-read");
        }
        // A message that itself starts with a separator is a command list from the start: every
        // command in it stands where an injection puts one (`\necho x\ncurl ...`).
        let in_lead = i <= marks.lead || i <= marks.first_alnum || marks.starts_with_separator;
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
            fire!(rules, kind);
        }
        // A command list: the first token is itself a command (`time; ansible-console`), and a
        // command of the vocabulary follows its separator.
        if kind == "cmdi-chain"
            && i <= marks.lead
            && marks.first_is_command
            && c.complete
            && c.nargs <= 3
            && c.name.command_name().len() >= 3
            && known_word(&c.name)
        {
            fire!(rules, "cmdi-command-list");
        }
        if (c.name.obfuscated || c.name.glob || c.ifs_blank)
            && (v >= Verdict::Plausible || in_lead && c.complete && known_word(&c.name))
        {
            fire!(rules, "cmdi-obfuscated-command");
        }
        if kind == "cmdi-substitution" && v == Verdict::Plausible {
            // A substitution glued to the first token (`x$(id)`, `` `ls` ``).
            if i < marks.first_blank && c.end != 0 {
                fire!(rules, kind);
            }
        }
        i = cmd_at.max(i + 1);
    }
    None
}

/// A brace expansion at `open` whose first item is a command: `{cat,/etc/passwd}`.
fn brace_expansion(s: &[u8], open: usize, cmd: &mut Command) -> bool {
    let n = s.len();
    let window = &s[..n.min(open + 129)];
    // An empty first item (`{,ifconfig,eth0}`) expands to nothing.
    let first = if window.get(open + 1) == Some(&b',') {
        open + 2
    } else {
        open + 1
    };
    read_command(window, first, true, known_word, cmd);
    let c = &*cmd;
    let closed = c.end == b'}' || window.get(c.stop) == Some(&b'}');
    closed
        && contains(&window[open..c.stop.min(window.len())], b",")
        && judge(c) >= Verdict::Plausible
}

/// After a `<` or `>`: a network device (`/dev/tcp/h/p`), the other end of a reverse shell.
fn network_redirect(rest: &[u8]) -> bool {
    let k = rest
        .iter()
        .position(|&b| !(is_blank(b) || b == b'&' || b.is_ascii_digit()))
        .unwrap_or(rest.len());
    let rest = &rest[k..];
    if rest.starts_with(b"/dev/tcp/") || rest.starts_with(b"/dev/udp/") {
        return true;
    }
    // `$d/tcp/h/p` with `d=/dev`.
    let var = rest.strip_prefix(b"$").map_or(0, |r| {
        r.iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
            .count()
    });
    var > 0 && {
        let after = &rest[1 + var..];
        after.starts_with(b"/tcp/") || after.starts_with(b"/udp/")
    }
}

/// After the closing backtick at `close` (and a punctuation mark): a space and then more words
/// (Markdown code in a sentence), rather than the end, a separator or a quote (shell substitution).
fn markdown_span(s: &[u8], close: usize) -> bool {
    let mut rest = s.get(close + 1..).unwrap_or(&[]);
    // Punctuation of the sentence may close the span first: `` run `make`. Then ... ``.
    if let [b'.' | b',' | b':' | b'!' | b'?' | b')', after @ ..] = rest {
        rest = after;
    }
    let trimmed = rest.trim_ascii_start();
    if trimmed.len() == rest.len() {
        // Glued to what follows (`` `id`x ``): part of a shell word.
        return false;
    }
    trimmed
        .first()
        .is_some_and(|&b| !(is_sep(b) || matches!(b, b'\'' | b'"' | b'`' | b'<' | b'>')))
}
