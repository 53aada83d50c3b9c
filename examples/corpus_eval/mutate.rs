//! Metamorphic mutations of attack rows: rewrites that keep an attack an attack while changing
//! what a rule tuned to known payloads would look for.
//!
//! Each [`Operator`] changes one aspect: probe words and identifiers, numbers, letter case,
//! whitespace, comments, quote style, shell separators, or wraps the text in a JSON string. An
//! operator is class-aware (shell command names keep their case, SQL keywords keep their
//! spelling, escapes keep their digits) and returns `None` when it has nothing to change in a
//! row. The rewrites are deterministic for a given seed.

/// One kind of rewrite.
#[derive(Clone, Copy, PartialEq, Eq, Debug, PartialOrd, Ord)]
pub enum Operator {
    /// Probe words, table names, string contents, host names, variable names, sink names.
    Rename,
    /// Every number mapped to another of the same width (equal numbers stay equal).
    Numbers,
    /// Letter case of keywords, tags and attribute names.
    Case,
    /// Spaces replaced by other blanks (tabs, runs, newlines; `${IFS}` in shell).
    Whitespace,
    /// SQL comments for spaces and other comment styles; JavaScript comments in calls.
    Comments,
    /// `'` and `"` swapped.
    Quotes,
    /// The first shell separator replaced by another (`;` `|` `&&` newline).
    Separators,
    /// The text as a string value of a JSON object.
    JsonString,
}

impl Operator {
    pub const ALL: [Operator; 8] = [
        Operator::Rename,
        Operator::Numbers,
        Operator::Case,
        Operator::Whitespace,
        Operator::Comments,
        Operator::Quotes,
        Operator::Separators,
        Operator::JsonString,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Operator::Rename => "rename",
            Operator::Numbers => "numbers",
            Operator::Case => "case",
            Operator::Whitespace => "whitespace",
            Operator::Comments => "comments",
            Operator::Quotes => "quotes",
            Operator::Separators => "separators",
            Operator::JsonString => "json-string",
        }
    }
}

/// The attack language a row is written in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Class {
    Xss,
    Sqli,
    Cmdi,
}

impl Class {
    pub fn of(label: &str) -> Option<Class> {
        match label {
            "xss" => Some(Class::Xss),
            "sqli" => Some(Class::Sqli),
            "cmdi" => Some(Class::Cmdi),
            _ => None,
        }
    }
}

/// A small deterministic generator (xorshift64*).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
}

/// The mutant of `text` under `op`, or `None` when `op` changes nothing in it.
pub fn mutate(text: &str, class: Class, op: Operator, rng: &mut Rng) -> Option<String> {
    let out = match op {
        Operator::Rename => rename(text, class, rng),
        Operator::Numbers => numbers(text, class, rng),
        Operator::Case => case(text, class, rng),
        Operator::Whitespace => whitespace(text, class, rng),
        Operator::Comments => comments(text, class, rng),
        Operator::Quotes => swap_quotes(text),
        Operator::Separators => separators(text, class, rng),
        Operator::JsonString => Some(json_string(text)),
    }?;
    (out != text).then_some(out)
}

// ---------------------------------------------------------------------------------------------
// Words and identifiers

/// SQL words the renamer keeps (keywords, functions and names that carry meaning).
const SQL_WORDS: &[&str] = &[
    "select",
    "union",
    "all",
    "distinct",
    "from",
    "where",
    "and",
    "or",
    "not",
    "xor",
    "null",
    "order",
    "group",
    "by",
    "having",
    "limit",
    "offset",
    "insert",
    "into",
    "values",
    "update",
    "set",
    "delete",
    "drop",
    "table",
    "database",
    "create",
    "alter",
    "exec",
    "execute",
    "declare",
    "waitfor",
    "delay",
    "time",
    "sleep",
    "benchmark",
    "pg_sleep",
    "like",
    "rlike",
    "regexp",
    "between",
    "in",
    "is",
    "as",
    "case",
    "when",
    "then",
    "else",
    "end",
    "if",
    "ifnull",
    "char",
    "chr",
    "concat",
    "concat_ws",
    "substring",
    "substr",
    "mid",
    "ascii",
    "ord",
    "length",
    "count",
    "version",
    "user",
    "database",
    "schema",
    "current_user",
    "system_user",
    "information_schema",
    "tables",
    "columns",
    "table_name",
    "column_name",
    "table_schema",
    "sysobjects",
    "syscolumns",
    "master",
    "sys",
    "mysql",
    "xp_cmdshell",
    "load_file",
    "outfile",
    "dumpfile",
    "extractvalue",
    "updatexml",
    "floor",
    "rand",
    "convert",
    "cast",
    "int",
    "varchar",
    "nvarchar",
    "numeric",
    "dbms_pipe",
    "receive_message",
    "dbms_lock",
    "utl_inaddr",
    "utl_http",
    "get_host_name",
    "elt",
    "make_set",
    "iif",
    "repeat",
    "regexp_substring",
    "left",
    "right",
    "hex",
    "unhex",
    "procedure",
    "analyse",
    "top",
    "dual",
    "sqlite_master",
    "randomblob",
    "upper",
    "lower",
    "true",
    "false",
    "boolean",
    "mode",
    "against",
    "match",
    "exp",
    "json_keys",
    "gtid_subset",
    "row",
    "pg_catalog",
    "all_users",
    "sysusers",
    "name",
    "password",
    "username",
    "admin",
    "shutdown",
    "truncate",
    "replace",
    "sounds",
    "escape",
    "collate",
    "binary",
    "char_length",
    "nchar",
    "varbinary",
    "to_char",
    "cstring",
    "xmltype",
    "ctxsys",
    "drithsx",
    "sn",
    "div",
    "mod",
    "asc",
    "desc",
    "join",
    "inner",
    "outer",
    "on",
    "using",
    "with",
    "exists",
    "any",
    "some",
    "begin",
    "commit",
    "rollback",
    "grant",
    "revoke",
    "use",
    "show",
    "describe",
];

/// Shell words the renamer keeps: well-known variables and Windows names whose name is their
/// meaning (registry hives and value types).
const SHELL_VARIABLES: &[&str] = &[
    "HKLM",
    "HKCU",
    "HKCR",
    "HKU",
    "HKCC",
    "REG_SZ",
    "REG_DWORD",
    "REG_QWORD",
    "REG_BINARY",
    "REG_EXPAND_SZ",
    "REG_MULTI_SZ",
    "IFS",
    "PATH",
    "HOME",
    "SHELL",
    "PWD",
    "USER",
    "ENV",
    "TERM",
    "HOSTNAME",
    "RANDOM",
    "LANG",
    "COMSPEC",
    "SYSTEMROOT",
    "WINDIR",
    "TEMP",
    "TMP",
    "USERNAME",
    "USERPROFILE",
    "PROGRAMFILES",
];

const JS_SINKS: &[&str] = &["alert", "prompt", "confirm"];

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// A random lowercase word of `len` letters.
fn random_word(rng: &mut Rng, len: usize) -> String {
    (0..len.max(2))
        .map(|_| char::from(b'a' + rng.below(26) as u8))
        .collect()
}

/// `word`'s new spelling keeping its case pattern (all caps, capitalized, lower).
fn respell(word: &str, fresh: &str) -> String {
    if word.len() > 1 && word.bytes().all(|b| !b.is_ascii_lowercase()) {
        fresh.to_ascii_uppercase()
    } else if word.bytes().next().is_some_and(|b| b.is_ascii_uppercase()) {
        let mut s = fresh.to_string();
        s[..1].make_ascii_uppercase();
        s
    } else {
        fresh.to_string()
    }
}

/// Calls `f(start, end)` for every identifier-like word in `text`.
fn words(text: &str, mut f: impl FnMut(usize, usize)) {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if is_ident_start(b[i]) && (i == 0 || !is_ident(b[i - 1])) {
            let start = i;
            while i < b.len() && is_ident(b[i]) {
                i += 1;
            }
            f(start, i);
        } else {
            i += 1;
        }
    }
}

/// Replaces the byte ranges in `edits` (sorted, not overlapping) with new text.
fn apply(text: &str, edits: &[(usize, usize, String)]) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut at = 0;
    for (a, b, with) in edits {
        if *a < at {
            continue;
        }
        out.push_str(&text[at..*a]);
        out.push_str(with);
        at = *b;
    }
    out.push_str(&text[at..]);
    out
}

/// A consistent renaming: the same word always gets the same new word.
struct Renamer<'a> {
    rng: &'a mut Rng,
    map: Vec<(String, String)>,
}

impl Renamer<'_> {
    fn rename(&mut self, word: &str) -> String {
        let key = word.to_ascii_lowercase();
        if let Some((_, v)) = self.map.iter().find(|(k, _)| *k == key) {
            return respell(word, v);
        }
        let mut fresh = random_word(self.rng, word.len().clamp(3, 10));
        for _ in 0..32 {
            if !self.map.iter().any(|(_, v)| *v == fresh) && fresh != key {
                break;
            }
            fresh = random_word(self.rng, word.len().clamp(3, 10));
        }
        self.map.push((key, fresh.clone()));
        respell(word, &fresh)
    }
}

/// Is the word at `start..end` part of an escape (`\x3c`, `%3c`, `&#x3c`, `&lt`, `\u003c`)?
fn in_escape(b: &[u8], start: usize) -> bool {
    let prev = |k: usize| start.checked_sub(k).and_then(|p| b.get(p)).copied();
    matches!(prev(1), Some(b'\\' | b'%' | b'#' | b'&'))
        || (prev(1) == Some(b'x') && matches!(prev(2), Some(b'\\' | b'#' | b'0')))
}

fn rename(text: &str, class: Class, rng: &mut Rng) -> Option<String> {
    let b = text.as_bytes();
    let mut edits = Vec::new();
    let mut renamer = Renamer {
        rng,
        map: Vec::new(),
    };
    match class {
        Class::Sqli => {
            // Table names after FROM/INTO/UPDATE/JOIN/TABLE, and the alphanumeric contents of
            // string literals (`'a'='a'` stays a tautology under a consistent renaming).
            let mut prev_kw = String::new();
            words(text, |s, e| {
                let w = &text[s..e];
                let lw = w.to_ascii_lowercase();
                // A whole string literal, or the one the application's quote will close.
                let quoted = s > 0
                    && matches!(b[s - 1], b'\'' | b'"')
                    && b.get(e).is_none_or(|c| *c == b[s - 1])
                    && !w.bytes().any(|c| c.is_ascii_digit());
                let table = matches!(
                    prev_kw.as_str(),
                    "from" | "into" | "update" | "join" | "table"
                );
                if (quoted || table)
                    && !SQL_WORDS.contains(&lw.as_str())
                    && !in_escape(b, s)
                    && b.get(e) != Some(&b'(')
                    && b.get(e) != Some(&b'.')
                {
                    edits.push((s, e, renamer.rename(w)));
                }
                prev_kw = lw;
            });
        }
        Class::Cmdi => {
            // Probe words: arguments of echo/printf/set that are plain words, all-caps tokens,
            // variable names (not the well-known ones), host names.
            let mut after_echo = false;
            words(text, |s, e| {
                let w = &text[s..e];
                let lw = w.to_ascii_lowercase();
                let upper = w.len() >= 3 && w.bytes().all(|c| c.is_ascii_uppercase());
                let var = (s > 0 && b[s - 1] == b'$')
                    || (s > 1 && b[s - 1] == b'{' && b[s - 2] == b'$')
                    || (s > 2 && b[s - 1] == b'#' && b[s - 2] == b'{' && b[s - 3] == b'$')
                    || (b.get(e) == Some(&b'=') && (s == 0 || !is_ident(b[s - 1])) && upper);
                // A plain word standing alone as an argument (not `<?php`, not a path part).
                let alone = (s == 0 || matches!(b[s - 1], b' ' | b'\t' | b'\'' | b'"'))
                    && b.get(e).is_none_or(|c| {
                        matches!(c, b' ' | b'\t' | b'\'' | b'"' | b';' | b'|' | b'&')
                    });
                // PHP superglobals (`$_GET`) and well-known variables keep their names.
                let keep = SHELL_VARIABLES.iter().any(|v| v.eq_ignore_ascii_case(w))
                    || w.starts_with('_')
                    || w.starts_with("HKEY")
                    || in_escape(b, s);
                if !keep && (upper || var || (after_echo && alone && w.len() >= 3)) {
                    edits.push((s, e, renamer.rename(w)));
                }
                after_echo = matches!(lw.as_str(), "echo" | "printf");
            });
        }
        Class::Xss => {
            // Sinks swap among themselves; alphanumeric string arguments get new contents.
            words(text, |s, e| {
                let w = &text[s..e];
                let lw = w.to_ascii_lowercase();
                if JS_SINKS.contains(&lw.as_str()) {
                    let others: Vec<&str> = JS_SINKS.iter().copied().filter(|x| *x != lw).collect();
                    let with = others[renamer.rng.below(others.len())];
                    edits.push((s, e, respell(w, with)));
                } else if s > 1
                    && matches!(b[s - 1], b'\'' | b'"')
                    && b.get(e) == Some(&b[s - 1])
                    && b[s - 2] == b'('
                    && sink_before(text, s - 2)
                {
                    edits.push((s, e, renamer.rename(w)));
                }
            });
        }
    }
    // Host names (`evil.example`, `attacker.com`): the label before a top-level domain.
    for tld in [".com", ".net", ".org", ".example", ".io"] {
        let mut from = 0;
        while let Some(p) = text[from..].find(tld).map(|p| p + from) {
            let mut s = p;
            while s > 0 && (is_ident(b[s - 1]) || b[s - 1] == b'-') {
                s -= 1;
            }
            if s < p && !edits.iter().any(|(a, z, _)| *a < p && s < *z) {
                edits.push((s, p, renamer.rename(&text[s..p])));
            }
            from = p + tld.len();
        }
    }
    edits.sort_by_key(|e| e.0);
    Some(apply(text, &edits))
}

/// Is the word that ends at `paren` (the byte of a `(`) one of [`JS_SINKS`]?
fn sink_before(text: &str, paren: usize) -> bool {
    let head = &text.as_bytes()[..paren];
    let start = head
        .iter()
        .rposition(|&c| !is_ident(c))
        .map_or(0, |p| p + 1);
    let word = text[start..paren].to_ascii_lowercase();
    JS_SINKS.contains(&word.as_str())
}

// ---------------------------------------------------------------------------------------------
// Numbers

fn numbers(text: &str, class: Class, rng: &mut Rng) -> Option<String> {
    let b = text.as_bytes();
    let mut map: Vec<(String, String)> = Vec::new();
    let mut edits = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let s = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let e = i;
        let before = s.checked_sub(1).map(|p| b[p]);
        let after = b.get(e).copied();
        // Digits glued to letters (`h1`, `utf8`, `base64`, hex), escapes, file descriptors in
        // redirections and time literals keep their value.
        let glued = before.is_some_and(|c| is_ident(c) || matches!(c, b'\\' | b'%' | b'#'))
            || after.is_some_and(is_ident)
            || (class == Class::Cmdi
                && (before.is_some_and(|c| matches!(c, b'>' | b'<' | b'&'))
                    || after.is_some_and(|c| matches!(c, b'>' | b'<'))))
            || before == Some(b':')
            || after == Some(b':')
            // `utf-7`, `iso-8859-1`: part of a name.
            || (before == Some(b'-') && s >= 2 && b[s - 2].is_ascii_alphabetic())
            || (before == Some(b'.') && class == Class::Xss);
        if glued {
            continue;
        }
        let old = &text[s..e];
        let new = match map.iter().find(|(k, _)| k == old) {
            Some((_, v)) => v.clone(),
            None => {
                // Distinct numbers stay distinct where there is room (single digits run out).
                let mut v = fresh_number(old, rng);
                for _ in 0..32 {
                    if !map.iter().any(|(_, x)| *x == v) {
                        break;
                    }
                    v = fresh_number(old, rng);
                }
                if map.iter().any(|(_, x)| *x == v) {
                    v = old.to_string();
                }
                map.push((old.to_string(), v.clone()));
                v
            }
        };
        edits.push((s, e, new));
    }
    Some(apply(text, &edits))
}

/// A number of the same width as `old` (at most 255 where `old` was, so addresses stay
/// addresses), different from it where possible.
fn fresh_number(old: &str, rng: &mut Rng) -> String {
    let value: u64 = old.parse().unwrap_or(0);
    let width = old.len().min(18);
    for _ in 0..16 {
        let v = if width == 1 {
            rng.below(10) as u64
        } else {
            let lo = 10u64.pow(width as u32 - 1);
            lo + rng.next() % (9 * lo)
        };
        let v = if value <= 255 && v > 255 { v % 256 } else { v };
        if v != value {
            return v.to_string();
        }
    }
    old.to_string()
}

// ---------------------------------------------------------------------------------------------
// Case

fn case(text: &str, class: Class, rng: &mut Rng) -> Option<String> {
    let b = text.as_bytes();
    let mut out = b.to_vec();
    match class {
        // Shell commands are case-sensitive: only probe words change (see `rename`).
        Class::Cmdi => return None,
        Class::Sqli => {
            // Keywords and function names (string contents and identifiers keep their case,
            // whatever quotes a break-out leaves unbalanced).
            words(text, |s, e| {
                if SQL_WORDS.contains(&text[s..e].to_ascii_lowercase().as_str()) {
                    for c in &mut out[s..e] {
                        if rng.coin() {
                            *c = flip(*c);
                        }
                    }
                }
            });
        }
        Class::Xss => {
            // Tag names, attribute names and URI schemes: the parts HTML reads without case.
            let mut k = 0;
            while k < b.len() {
                let start_tag = b[k] == b'<'
                    && b.get(k + 1)
                        .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'/');
                let attr = b[k].is_ascii_alphabetic()
                    && k > 0
                    && matches!(b[k - 1], b' ' | b'/' | b'\t' | b'\n')
                    && attr_name_then_eq(b, k);
                let scheme =
                    b[k..].len() >= 11 && b[k..k + 11].eq_ignore_ascii_case(b"javascript:");
                if start_tag || attr || scheme {
                    let mut j = if start_tag { k + 1 } else { k };
                    if b.get(j) == Some(&b'/') {
                        j += 1;
                    }
                    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'-') {
                        if b[j].is_ascii_alphabetic() && rng.coin() {
                            out[j] = flip(b[j]);
                        }
                        j += 1;
                    }
                    k = j.max(k + 1);
                } else {
                    k += 1;
                }
            }
        }
    }
    String::from_utf8(out).ok()
}

fn attr_name_then_eq(b: &[u8], k: usize) -> bool {
    let mut j = k;
    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'-') {
        j += 1;
    }
    b.get(j) == Some(&b'=')
}

fn flip(c: u8) -> u8 {
    if c.is_ascii_lowercase() {
        c.to_ascii_uppercase()
    } else {
        c.to_ascii_lowercase()
    }
}

// ---------------------------------------------------------------------------------------------
// Whitespace, comments, quotes, separators

/// Every space outside quotes, replaced by one of `choices`.
fn replace_spaces(text: &str, rng: &mut Rng, choices: &[&str]) -> Option<String> {
    let b = text.as_bytes();
    let mut edits = Vec::new();
    let mut quote = 0u8;
    let mut comment = false;
    for (k, &c) in b.iter().enumerate() {
        if comment {
            comment = !(c == b'/' && k > 0 && b[k - 1] == b'*');
            continue;
        }
        if quote != 0 {
            if c == quote {
                quote = 0;
            }
            continue;
        }
        if c == b'\'' || c == b'"' {
            quote = c;
        } else if c == b'/' && b.get(k + 1) == Some(&b'*') {
            comment = true;
        } else if c == b' ' {
            edits.push((k, k + 1, rng.pick(choices).to_string()));
        }
    }
    if edits.is_empty() {
        return None;
    }
    Some(apply(text, &edits))
}

fn looks_windows(text: &str) -> bool {
    let l = text.to_ascii_lowercase();
    l.contains("cmd") || l.contains("powershell") || l.contains('%') || l.contains(":\\")
}

fn whitespace(text: &str, class: Class, rng: &mut Rng) -> Option<String> {
    match class {
        Class::Sqli => replace_spaces(text, rng, &["  ", "\t", "\n", "\r\n", " \t "]),
        Class::Xss => {
            // Inside tags only: outside them a space can be part of a JavaScript string.
            let b = text.as_bytes();
            let mut edits = Vec::new();
            let mut in_tag = false;
            let mut quote = 0u8;
            for (k, &c) in b.iter().enumerate() {
                if quote != 0 {
                    if c == quote {
                        quote = 0;
                    }
                    continue;
                }
                match c {
                    b'<' if b.get(k + 1).is_some_and(|n| n.is_ascii_alphabetic()) => in_tag = true,
                    b'>' => in_tag = false,
                    b'\'' | b'"' if in_tag => quote = c,
                    b' ' if in_tag => {
                        edits.push((k, k + 1, rng.pick(&["\t", "\n", "  ", "\r\n"]).to_string()))
                    }
                    _ => {}
                }
            }
            (!edits.is_empty()).then(|| apply(text, &edits))
        }
        Class::Cmdi => {
            let blanks = replace_spaces(text, rng, &["  ", "\t"]);
            // Windows command lines and PHP code have no `$IFS`.
            if looks_windows(text) || text.contains("<?") {
                return blanks;
            }
            // `${IFS}` only where it separates a command's words (`cat${IFS}/etc/passwd`),
            // not in syntax that needs a real blank (`() { :;}`).
            let b = text.as_bytes();
            let mut edits = Vec::new();
            let mut quote = 0u8;
            for (k, &c) in b.iter().enumerate() {
                if quote != 0 {
                    if c == quote {
                        quote = 0;
                    }
                    continue;
                }
                if c == b'\'' || c == b'"' {
                    quote = c;
                } else if c == b' '
                    && k > 0
                    && is_ident(b[k - 1])
                    && b.get(k + 1)
                        .is_some_and(|n| is_ident(*n) || matches!(n, b'-' | b'/' | b'.'))
                {
                    edits.push((k, k + 1, rng.pick(&["${IFS}", "$IFS$9", "\t"]).to_string()));
                }
            }
            if edits.is_empty() {
                blanks
            } else {
                Some(apply(text, &edits))
            }
        }
    }
}

fn comments(text: &str, class: Class, rng: &mut Rng) -> Option<String> {
    match class {
        Class::Sqli => {
            // Spaces become inline comments; a trailing `--` comment changes style.
            let mut out = replace_spaces(text, rng, &["/**/", "/*x*/", " /**/ "])
                .unwrap_or_else(|| text.to_string());
            if let Some(p) = out.rfind("--") {
                if out[p..].trim_end() == "--" || out[p..].starts_with("-- ") {
                    let style = rng.pick(&["#", "-- -", "--+"]);
                    out.replace_range(p..out.len(), style);
                }
            }
            Some(out)
        }
        Class::Xss => {
            // A JavaScript comment inside every call's parentheses: `alert(/**/1)`.
            let b = text.as_bytes();
            let mut edits = Vec::new();
            for k in 1..b.len() {
                if b[k] == b'(' && is_ident(b[k - 1]) {
                    edits.push((k + 1, k + 1, "/**/".to_string()));
                }
            }
            (!edits.is_empty()).then(|| apply(text, &edits))
        }
        Class::Cmdi => None,
    }
}

/// `'` and `"` swapped, unless the text also has typographic quotes (which the agent reads as
/// ASCII quotes, so swapping only the ASCII ones would unbalance them).
fn swap_quotes(text: &str) -> Option<String> {
    if text.contains([
        '\u{2018}', '\u{2019}', '\u{2032}', '\u{201c}', '\u{201d}', '\u{2033}',
    ]) {
        return None;
    }
    Some(
        text.chars()
            .map(|c| match c {
                '\'' => '"',
                '"' => '\'',
                c => c,
            })
            .collect(),
    )
}

/// The first shell separator (outside quotes) replaced by another.
fn separators(text: &str, class: Class, rng: &mut Rng) -> Option<String> {
    if class != Class::Cmdi {
        return None;
    }
    let b = text.as_bytes();
    let mut quote = 0u8;
    let mut depth = 0usize;
    let mut k = 0;
    while k < b.len() {
        let c = b[k];
        if quote != 0 {
            if c == quote {
                quote = 0;
            }
        } else if c == b'\'' || c == b'"' {
            quote = c;
        } else if matches!(c, b'(' | b'{' | b'[') {
            depth += 1;
        } else if matches!(c, b')' | b'}' | b']') {
            depth = depth.saturating_sub(1);
        } else if let Some(len) = entity_len(b, k) {
            k += len;
            continue;
        } else if depth == 0 && matches!(c, b';' | b'|' | b'&' | b'\n') {
            let len = if matches!(c, b'|' | b'&') && b.get(k + 1) == Some(&c) {
                2
            } else {
                1
            };
            let old = &text[k..k + len];
            let choices: Vec<&str> = [";", "|", "&&", "\n"]
                .into_iter()
                .filter(|s| *s != old)
                .collect();
            let with = choices[rng.below(choices.len())];
            return Some(apply(text, &[(k, k + len, with.to_string())]));
        }
        k += 1;
    }
    None
}

/// The length of the HTML character reference (`&lt;`, `&#60;`) at `k`, if one starts there.
fn entity_len(b: &[u8], k: usize) -> Option<usize> {
    if b[k] != b'&' {
        return None;
    }
    let rest = &b[k + 1..];
    let n = rest
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'#')
        .count();
    (n > 0 && rest.get(n) == Some(&b';')).then_some(n + 2)
}

fn json_string(text: &str) -> String {
    let quoted = serde_json::to_string(text).unwrap_or_default();
    format!(r#"{{"id":42,"value":{quoted}}}"#)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(text: &str, class: Class, op: Operator) -> Option<String> {
        mutate(text, class, op, &mut Rng::new(7))
    }

    #[test]
    fn numbers_keep_equal_numbers_equal_and_escapes_intact() {
        let out = m(
            "1 or 51=51 and %3c &#60; 2>&1",
            Class::Sqli,
            Operator::Numbers,
        )
        .unwrap();
        let parts: Vec<&str> = out.split(' ').collect();
        let (a, b) = parts[2].split_once('=').unwrap();
        assert_eq!(a, b);
        assert!(out.contains("%3c") && out.contains("&#60;"));
    }

    #[test]
    fn separators_replace_the_first_one() {
        let out = m("x;id;uname", Class::Cmdi, Operator::Separators).unwrap();
        assert!(out.ends_with(";uname") && !out.starts_with("x;"));
    }

    #[test]
    fn sql_case_leaves_strings_alone() {
        let out = m("' or 'abc'='abc' union select", Class::Sqli, Operator::Case).unwrap();
        assert!(out.contains("'abc'='abc'"));
        assert!(out.to_ascii_lowercase().ends_with("union select"));
    }

    #[test]
    fn renaming_is_consistent() {
        let out = m("' or 'abc'='abc", Class::Sqli, Operator::Rename).unwrap();
        let q: Vec<&str> = out.split('\'').collect();
        assert_eq!(q[2], q[4]);
        assert_ne!(q[2], "abc");
    }
}
