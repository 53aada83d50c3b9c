//! The shell lexer: reads words and simple commands out of a view the way a POSIX shell (and, for
//! the parts they share, cmd.exe) would, without allocating.
//!
//! - Quote removal: `'..'`, `".."`, ANSI-C `$'..'` (with `\xHH` and octal escapes) join the word.
//! - Escape removal in command words: `w\ho\am\i`, cmd.exe carets `w^ho^ami`.
//! - Empty expansions inside words are dropped: `$@`, `$*`, `$1`..`$9`, `$()`, `${x}` glued to
//!   letters (`c$@at`, `c${u}at`); `$IFS` / `${IFS}` are blanks.
//! - Globs in a command word (`/???/c?t`, `[u]name`, `c*t`) are kept and flagged, so a judgement
//!   can resolve them against the vocabulary.
//! - Substitutions inside an argument (`X$(echo X)X`, ``X`id`X``, `$((4+5))`) belong to that one
//!   word, which is flagged as holding one: a command's argument count is what the shell sees.
//! - Separators (`;`, `|`, `||`, `&`, `&&`, newline), `)`, backticks and a comment (` #`) end a
//!   command; `<`, `>` are redirections, whose target (`> /var/www/x.txt`, `2>nul`) is kept
//!   apart from the arguments (`2>&1` has none).
//! - A payload's comment-out suffix glued to the last word of the text (`sleep 5#`, `pwd//`,
//!   `id\\\\`) is not part of that word.

/// Longest command word or argument kept.
pub(super) const WORD_MAX: usize = 48;
/// Arguments read after a command word.
pub(super) const ARGS: usize = 5;

/// A word read the way the shell reads it.
pub(super) struct Word {
    buf: [u8; WORD_MAX],
    len: usize,
    /// Quotes, escapes or empty expansions were removed from inside the word.
    pub(super) obfuscated: bool,
    /// The word holds glob characters (`?`, `*`, `[...]`).
    pub(super) glob: bool,
    /// The word did not fit.
    pub(super) overflow: bool,
    /// A command substitution or arithmetic expansion (`$(..)`, `` `..` ``, `$((..))`) is part
    /// of the word (its text is not kept).
    pub(super) substitution: bool,
    /// The word holds a byte that naming a command can involve besides letters (`/`, `\\`,
    /// `.`, `%`, `$`): without one, the word is its own command name (a fast path).
    pub(super) punctuated: bool,
}

impl Default for Word {
    fn default() -> Self {
        Word {
            buf: [0; WORD_MAX],
            len: 0,
            obfuscated: false,
            glob: false,
            overflow: false,
            substitution: false,
            punctuated: false,
        }
    }
}

impl Word {
    pub(super) fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    fn push(&mut self, b: u8) {
        if self.len < WORD_MAX {
            self.buf[self.len] = b;
            self.len += 1;
            self.punctuated |= matches!(b, b'/' | b'\\' | b'.' | b'%' | b'$');
        } else {
            self.overflow = true;
        }
    }

    /// Empties the word without touching its buffer.
    fn clear(&mut self) {
        self.len = 0;
        self.obfuscated = false;
        self.glob = false;
        self.overflow = false;
        self.substitution = false;
        self.punctuated = false;
    }

    /// Drops a comment-out suffix a payload glues to the last word of the text (`5#`, `pwd//`,
    /// `id\\\\`): a run of `#`, or of two or more `/` or `\\`, when something is left.
    fn drop_trailing_comment(&mut self) {
        let w = &self.buf[..self.len];
        let hashes = w.iter().rev().take_while(|&&b| b == b'#').count();
        let slashes = w.iter().rev().take_while(|&&b| b == b'/').count();
        let backslashes = w.iter().rev().take_while(|&&b| b == b'\\').count();
        let cut = if hashes > 0 {
            hashes
        } else if slashes >= 2 {
            slashes
        } else if backslashes >= 2 {
            backslashes
        } else {
            0
        };
        if cut > 0 && cut < self.len {
            self.len -= cut;
        }
    }

    /// The directory part (`/usr/bin/`, `c:\windows\`), empty when there is none.
    pub(super) fn directory(&self) -> &[u8] {
        let w = self.as_bytes();
        let end = w
            .iter()
            .rposition(|&b| b == b'/' || b == b'\\')
            .map_or(0, |p| p + 1);
        &w[..end]
    }

    /// The command name: directories (`/usr/bin/`, `c:\windows\`) and `.exe` stripped.
    pub(super) fn command_name(&self) -> &[u8] {
        let w = self.as_bytes();
        let name = &w[self.directory().len()..];
        name.strip_suffix(b".exe").unwrap_or(name)
    }
}

/// A simple command: a command word and its first arguments.
pub(super) struct Command {
    pub(super) name: Word,
    pub(super) args: [Word; ARGS],
    pub(super) nargs: usize,
    /// The command has a redirection (`>`, `<`, `2>&1`, `<<<`) before its end.
    pub(super) redirect: bool,
    /// The first redirection's file (`/var/www/x.txt` of `> /var/www/x.txt`), empty when none.
    pub(super) target: Word,
    /// A `$IFS` / `${IFS}` stood for a blank somewhere in the command.
    pub(super) ifs_blank: bool,
    /// Every argument up to the end of the command was read (no more than [`ARGS`]).
    pub(super) complete: bool,
    /// What ended the command: 0 for the end of the text, else the separator byte.
    pub(super) end: u8,
    /// Where reading stopped.
    pub(super) stop: usize,
}

impl Command {
    pub(super) fn new() -> Self {
        Command {
            name: Word::default(),
            args: Default::default(),
            nargs: 0,
            redirect: false,
            target: Word::default(),
            ifs_blank: false,
            complete: false,
            end: 0,
            stop: 0,
        }
    }

    /// Argument `k`, empty when there is none.
    pub(super) fn arg(&self, k: usize) -> &[u8] {
        if k < self.nargs {
            self.args[k].as_bytes()
        } else {
            &[]
        }
    }

    /// The arguments that were read.
    pub(super) fn args(&self) -> impl Iterator<Item = &[u8]> {
        self.args[..self.nargs].iter().map(Word::as_bytes)
    }
}

pub(super) fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | 0x0c | 0x0b)
}

pub(super) fn is_sep(b: u8) -> bool {
    matches!(b, b';' | b'|' | b'&' | b'\n' | b'\r')
}

/// Length of an `$IFS`-style blank at `s`, if any (`${ifs}`, `$ifs`, `$ifs$9`).
pub(super) fn ifs_at(s: &[u8]) -> usize {
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

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// Reads an ANSI-C quoted string `$'...'` whose body starts at `i`; returns where it ends.
fn read_ansi_c(s: &[u8], mut i: usize, w: &mut Word) -> usize {
    let n = s.len();
    while i < n && s[i] != b'\'' {
        if s[i] == b'\\' && i + 1 < n {
            let c = s[i + 1];
            if c == b'x' {
                let h1 = s.get(i + 2).copied().and_then(hex);
                let h2 = s.get(i + 3).copied().and_then(hex);
                if let (Some(a), Some(b)) = (h1, h2) {
                    w.push(a * 16 + b);
                    i += 4;
                    continue;
                }
            } else if c.is_ascii_digit() {
                let mut v: u32 = 0;
                let mut k = i + 1;
                while k < n && k < i + 4 && (b'0'..=b'7').contains(&s[k]) {
                    v = v * 8 + u32::from(s[k] - b'0');
                    k += 1;
                }
                w.push(u8::try_from(v & 0xff).unwrap_or(0).to_ascii_lowercase());
                i = k;
                continue;
            }
            w.push(c);
            i += 2;
            continue;
        }
        w.push(s[i]);
        i += 1;
    }
    (i + 1).min(n)
}

/// Where a `${...}` starting at `i` ends (after its `}`), if it closes within a short span.
fn brace_expansion_end(s: &[u8], i: usize) -> Option<usize> {
    let rest = s.get(i + 2..)?;
    let close = rest.iter().take(40).position(|&b| b == b'}')?;
    Some(i + 2 + close + 1)
}

/// Reads one word starting at `i` (blanks already skipped). Stops at blanks, separators,
/// redirections, parentheses and backticks (and `,`/`}` inside a brace expansion).
///
/// Escapes are removed only from command words (`wh\oami`, `wh^oami`); in arguments they are
/// kept, since there they are usually Windows paths (`c:\windows\repair`).
pub(super) fn read_word(
    s: &[u8],
    i: usize,
    brace: bool,
    command_word: bool,
    w: &mut Word,
) -> usize {
    read_word_in(s, i, brace, command_word, true, w)
}

/// Where the substitution opened at `open` (`$(`) ends, just after its `)`: parentheses nested,
/// quotes skipped, within [`SUBSTITUTION_MAX`] bytes.
pub(super) fn substitution_end(s: &[u8], open: usize) -> Option<usize> {
    let end = s.len().min(open + SUBSTITUTION_MAX);
    let mut depth = 0usize;
    let mut k = open;
    while k < end {
        match s[k] {
            b'(' => depth += 1,
            b')' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Some(k + 1);
                }
            }
            q @ (b'\'' | b'"') => {
                k += 1;
                while k < end && s[k] != q {
                    k += 1;
                }
            }
            _ => {}
        }
        k += 1;
    }
    None
}

/// Longest quoted string read as part of a word.
const QUOTED_MAX: usize = 512;

/// Longest substitution read as part of an argument word.
const SUBSTITUTION_MAX: usize = 512;

/// [`read_word`], where `in_backtick` says the word is inside a backtick substitution (a
/// backtick then ends it rather than opening one).
fn read_word_in(
    s: &[u8],
    mut i: usize,
    brace: bool,
    command_word: bool,
    in_backtick: bool,
    w: &mut Word,
) -> usize {
    let n = s.len();
    while i < n {
        let b = s[i];
        if b == b'`' && !command_word && !in_backtick {
            // A backtick substitution inside an argument: ``X`id`X``.
            if let Some(close) = s[i + 1..n.min(i + 1 + SUBSTITUTION_MAX)]
                .iter()
                .position(|&c| c == b'`')
            {
                w.substitution = true;
                i += close + 2;
                continue;
            }
        }
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
                // A long quoted string (`"open('/var/www/x','w').write('y')"`) is read to its
                // end; the word keeps what fits.
                while j < n && s[j] != q && j - i <= QUOTED_MAX {
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
            b'\\' if command_word => {
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
            b'^' if command_word && s.get(i + 1).is_some_and(u8::is_ascii_alphanumeric) => {
                // cmd.exe escape: `w^ho^ami`.
                w.obfuscated = true;
                i += 1;
                continue;
            }
            b'?' | b'*' | b'[' if command_word => {
                w.glob = true;
            }
            b'$' => {
                if ifs_at(&s[i..]) > 0 {
                    break;
                }
                match s.get(i + 1) {
                    // Expansions that are empty in practice: `$@`, `$*`, `$1`..`$9`.
                    Some(&c) if c == b'@' || c == b'*' || (c.is_ascii_digit() && c != b'0') => {
                        w.obfuscated = true;
                        i += 2;
                        continue;
                    }
                    Some(b'(') if s.get(i + 2) == Some(&b')') => {
                        // `$()`: an empty substitution.
                        w.obfuscated = true;
                        i += 3;
                        continue;
                    }
                    Some(b'(') if !command_word => {
                        // `X$(echo X)X`, `$((4+5))`: part of this argument.
                        match substitution_end(s, i + 1) {
                            Some(end) => {
                                w.substitution = true;
                                i = end;
                                continue;
                            }
                            None => break,
                        }
                    }
                    Some(b'(') => break,
                    Some(c) if command_word && w.len > 0 && c.is_ascii_alphabetic() => {
                        // `sh$xx`: an unset variable glued to the word.
                        w.obfuscated = true;
                        i += 1;
                        while i < n && (s[i].is_ascii_alphanumeric() || s[i] == b'_') {
                            i += 1;
                        }
                        continue;
                    }
                    Some(b'\'') => {
                        w.obfuscated = true;
                        i = read_ansi_c(s, i + 2, w);
                        continue;
                    }
                    Some(b'{') if command_word => {
                        // `c${u}at`: a parameter glued to letters, empty when unset.
                        let glued_before = w.len > 0;
                        if let Some(end) = brace_expansion_end(s, i) {
                            let glued_after = s.get(end).is_some_and(u8::is_ascii_alphanumeric);
                            if glued_before || glued_after {
                                w.obfuscated = true;
                                i = end;
                                continue;
                            }
                        }
                    }
                    _ => {}
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
    if i >= n {
        w.drop_trailing_comment();
    }
    i
}

/// Skips blanks, `$IFS` forms and form-encoding `+` at `i`; reports whether an `$IFS` was one.
pub(super) fn skip_blanks(s: &[u8], mut i: usize, ifs: &mut bool) -> usize {
    let n = s.len();
    while i < n {
        if is_blank(s[i]) || s[i] == b'+' {
            i += 1;
            continue;
        }
        let k = ifs_at(&s[i..]);
        if k > 0 {
            *ifs = true;
            i += k;
            continue;
        }
        break;
    }
    i
}

/// Command words that run the command after them: `nohup id`, `sudo -u x id`, `timeout 5 id`.
fn is_prefix_command(name: &[u8]) -> bool {
    matches!(
        name,
        b"nohup"
            | b"sudo"
            | b"time"
            | b"nice"
            | b"setsid"
            | b"exec"
            | b"command"
            | b"builtin"
            | b"busybox"
            | b"stdbuf"
            | b"doas"
            | b"call"
            | b"strace"
            | b"ltrace"
            | b"watch"
            | b"xargs"
            | b"env"
            | b"timeout"
    )
}

/// A bare variable as the command word (`$u wget ...`): empty when unset, so the next word is
/// the command.
fn is_bare_variable(w: &[u8]) -> bool {
    let name = w.strip_prefix(b"$").unwrap_or(&[]);
    let name = name
        .strip_prefix(b"{")
        .and_then(|n| n.strip_suffix(b"}"))
        .unwrap_or(name);
    !name.is_empty() && name.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Reads a command (word and a few arguments) at `i` into `c`, which is reused between calls so
/// that a text full of separators costs no more than its length. `known` says which command
/// words deserve reading their arguments; a prefix command (`nohup`, `sudo`) is skipped, with its
/// options, when a known command follows it.
pub(super) fn read_command(
    s: &[u8],
    i: usize,
    brace: bool,
    known: fn(&Word) -> bool,
    c: &mut Command,
) {
    c.name.clear();
    c.nargs = 0;
    c.redirect = false;
    c.target.clear();
    c.ifs_blank = false;
    c.complete = false;
    c.end = 0;
    c.stop = i;
    let mut ifs = false;
    let mut j = skip_blanks(s, i, &mut ifs);
    j = read_word(s, j, brace, true, &mut c.name);
    if is_prefix_command(c.name.command_name())
        || (is_bare_variable(c.name.as_bytes()) && !known(&c.name))
    {
        // `nohup ifconfig`, `sudo -u root id`: the command after the prefix and its options.
        let mut k = skip_blanks(s, j, &mut ifs);
        while k < s.len() && (s[k] == b'-' || s[k].is_ascii_digit()) {
            while k < s.len() && !is_blank(s[k]) && !is_sep(s[k]) {
                k += 1;
            }
            k = skip_blanks(s, k, &mut ifs);
        }
        let mut next = Word::default();
        let after = read_word(s, k, brace, true, &mut next);
        if known(&next) {
            if is_bare_variable(c.name.as_bytes()) {
                next.obfuscated = true;
            }
            c.name = next;
            j = after;
        }
    }
    if !known(&c.name) {
        // Not a command we judge: its arguments do not matter.
        c.stop = j;
        return;
    }
    let n = s.len();
    // Parentheses opened among the arguments (`iex (iwr ...)`): their `)` does not end it.
    let mut depth = 0usize;
    // A command that starts a backtick substitution (`` `echo x` ``) ends at the next backtick;
    // elsewhere a backtick among the arguments opens one that is part of an argument
    // (``echo `id` ``). (A command after a separator inside backticks is taken for the second.)
    let in_backtick = s[..i]
        .iter()
        .rev()
        .take(8)
        .find(|&&b| !is_blank(b))
        .is_some_and(|&b| b == b'`');
    while j < n {
        j = skip_blanks(s, j, &mut ifs);
        if j >= n {
            c.complete = true;
            break;
        }
        let b = s[j];
        if b == b'(' {
            depth += 1;
        } else if b == b')' && depth > 0 {
            depth -= 1;
            j += 1;
            continue;
        }
        if is_sep(b) || b == b')' || (b == b'`' && in_backtick) || (brace && b == b'}') {
            c.end = b;
            c.complete = true;
            break;
        }
        if b == b'#' && j > 0 && is_blank(s[j - 1]) {
            // A comment: the rest of the line is not the command's.
            c.end = b;
            c.complete = true;
            break;
        }
        if b == b'<' || b == b'>' {
            c.redirect = true;
            j = redirection(s, j, brace, c);
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
        j = read_word_in(s, j, brace, false, in_backtick, &mut c.args[c.nargs]);
        let arg = c.args[c.nargs].as_bytes();
        let fd_number = arg.len() <= 2
            && arg.iter().all(u8::is_ascii_digit)
            && matches!(s.get(j), Some(b'<' | b'>'));
        if !fd_number {
            c.nargs += 1;
        }
        if j == before {
            // `(` or another byte no word starts with.
            j += 1;
        }
    }
    c.ifs_blank = ifs;
    c.complete |= j >= n;
    c.stop = j;
}

/// Reads the redirection at `i` (`>`, `>>`, `2>`, `<`, `>&`, `&>`): a descriptor copy (`>&2`,
/// `2>&1`) has no file; otherwise its file becomes `c.target` (the first one) and is not an
/// argument. A process substitution (`<(...)`) is left to the caller. Returns where it ends.
fn redirection(s: &[u8], mut i: usize, brace: bool, c: &mut Command) -> usize {
    let n = s.len();
    while i < n && matches!(s[i], b'<' | b'>' | b'|') {
        i += 1;
    }
    if i < n && s[i] == b'&' {
        let digits = s[i + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit() || **b == b'-')
            .count();
        if digits > 0 {
            return i + 1 + digits;
        }
        i += 1;
    }
    let mut ifs = false;
    i = skip_blanks(s, i, &mut ifs);
    if i >= n || s[i] == b'(' || is_sep(s[i]) {
        return i;
    }
    if c.target.len == 0 {
        read_word(s, i, brace, false, &mut c.target)
    } else {
        let mut other = Word::default();
        read_word(s, i, brace, false, &mut other)
    }
}

/// Does the glob `pattern` (`?`, `*`, `[abc]`) match all of `word`?
pub(super) fn glob_match(pattern: &[u8], word: &[u8]) -> bool {
    match pattern.split_first() {
        None => word.is_empty(),
        Some((b'*', rest)) => (0..=word.len()).any(|k| glob_match(rest, &word[k..])),
        Some((b'?', rest)) => !word.is_empty() && glob_match(rest, &word[1..]),
        Some((b'[', rest)) => {
            let Some(close) = rest.iter().position(|&b| b == b']') else {
                return word.first() == Some(&b'[') && glob_match(rest, &word[1..]);
            };
            let (set, after) = (&rest[..close], &rest[close + 1..]);
            let negate = matches!(set.first(), Some(b'!' | b'^'));
            let set = if negate { &set[1..] } else { set };
            match word.split_first() {
                Some((&c, tail)) => in_bracket(set, c) != negate && glob_match(after, tail),
                None => false,
            }
        }
        Some((&p, rest)) => word.first() == Some(&p) && glob_match(rest, &word[1..]),
    }
}

/// Is `c` in the bracket expression `set` (`abc`, `a-z`)?
fn in_bracket(set: &[u8], c: u8) -> bool {
    let mut k = 0;
    while k < set.len() {
        if k + 2 < set.len() && set[k + 1] == b'-' {
            if (set[k]..=set[k + 2]).contains(&c) {
                return true;
            }
            k += 3;
        } else {
            // `[?]`: a payload's wildcard in brackets (`/[?]tc`).
            if set[k] == c || set[k] == b'?' {
                return true;
            }
            k += 1;
        }
    }
    false
}
