//! The SQL tokenizer: byte classes, tokens, the contexts a value can be pasted into, and the
//! lexer that turns a view into tokens (whitespace skipped, comments as tokens, MySQL `/*! */`
//! bodies read as code).

use super::vocab::{classify, Kw};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// A closed string literal.
    Str,
    /// A string running to the end of the input: the application's own quote closes it.
    OpenStr,
    Num,
    /// `@name`, `@@name`.
    Var,
    /// An identifier or keyword (see [`Kw`]).
    Word,
    /// A word followed by `(`.
    Func,
    /// Arithmetic, bitwise, assignment operators.
    Op,
    /// Comparison operators (also `LIKE`, `IN`, `IS`, ... via keywords).
    Cmp,
    /// `AND`, `OR`, `XOR`, `&&`, `||`.
    Logic,
    /// `NOT`, `!`.
    Not,
    LParen,
    RParen,
    Comma,
    Semi,
    Dot,
    Comment,
    Other,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Tok {
    pub(super) kind: Kind,
    pub(super) kw: Kw,
    /// Offsets in the view, as `u32` so a token is 12 bytes (views are cut to [`MAX_VIEW`]).
    from: u32,
    to: u32,
}

impl Tok {
    pub(super) const NONE: Tok = Tok {
        kind: Kind::Other,
        kw: Kw::None,
        from: 0,
        to: 0,
    };

    /// Where the token starts in the view.
    #[inline]
    pub(super) fn start(&self) -> usize {
        self.from as usize
    }

    /// Where the token ends in the view (exclusive).
    #[inline]
    pub(super) fn end(&self) -> usize {
        self.to as usize
    }

    pub(super) fn is_value(&self) -> bool {
        matches!(self.kind, Kind::Str | Kind::OpenStr | Kind::Num | Kind::Var)
            || (self.kind == Kind::Word
                && matches!(self.kw, Kw::None | Kw::Const | Kw::SqlFunc | Kw::Catalog))
    }

    pub(super) fn is_cmp(&self) -> bool {
        self.kind == Kind::Cmp || (self.kind == Kind::Word && self.kw == Kw::CmpWord)
    }
}

/// Byte classes of the tokenizer: bit 1 = word byte, bit 2 = space.
pub(super) static BYTE_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80 {
            t[b] |= 1;
        }
        if matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | 0xa0) {
            t[b] |= 2;
        }
        b += 1;
    }
    t
};

pub(super) fn is_word_byte(b: u8) -> bool {
    BYTE_CLASS[usize::from(b)] & 1 != 0
}

pub(super) fn is_space(b: u8) -> bool {
    BYTE_CLASS[usize::from(b)] & 2 != 0
}

/// Where tokenizing starts.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Context {
    /// As-is.
    Bare,
    /// Inside a delimited construct the application opened, which the payload closes: a string
    /// literal (`'`, `"`), a quoted identifier (`` ` ``), a PostgreSQL dollar-quoted string
    /// ([`DOLLAR`]: `$$`) or a comment ([`COMMENT`]: `*/`).
    Quoted(u8),
    /// Quotes are plain punctuation (no string literals at all).
    Agnostic,
}

/// [`Context::Quoted`] for a PostgreSQL dollar-quoted string, closed by `$$`.
pub(super) const DOLLAR: u8 = b'$';
/// [`Context::Quoted`] for a block comment, closed by `*/`.
pub(super) const COMMENT: u8 = b'*';

/// The bytes that close the construct of context `Quoted(q)`.
pub(super) fn closer(q: u8) -> &'static [u8] {
    match q {
        DOLLAR => b"$$",
        COMMENT => b"*/",
        b'`' => b"`",
        b'"' => b"\"",
        _ => b"'",
    }
}

/// The longest view the tokenizer reads (token offsets are `u32`); [`super::detect`] reads
/// the first `MAX_VIEW` bytes of a longer one.
pub(super) const MAX_VIEW: usize = u32::MAX as usize;

pub(super) struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
    /// Inside a MySQL `/*! ... */` executable comment.
    in_exec_comment: bool,
    /// The text is form-encoded (no spaces, some `+`): a `+` next to a keyword is a space.
    plus_is_space: bool,
    /// Pending context string (consumed by the first call).
    ctx: Context,
}

impl<'a> Lexer<'a> {
    pub(super) fn new(s: &'a [u8], ctx: Context) -> Self {
        Lexer {
            s,
            i: 0,
            in_exec_comment: false,
            plus_is_space: false,
            ctx,
        }
    }

    /// Reads `+` next to a keyword as a space (form encoding that kept the `+` operators of
    /// the payload: `'+AND+7=CONCAT(CHAR(113)+CHAR(112))`).
    pub(super) fn form_encoded(mut self, yes: bool) -> Self {
        self.plus_is_space = yes;
        self
    }

    /// Is the `+` at `self.i` a space: a keyword (not a call) right after it or right
    /// before it?
    fn plus_blank(&self) -> bool {
        if !self.plus_is_space {
            return false;
        }
        let s = self.s;
        let after = &s[self.i + 1..];
        let len = after.iter().take_while(|&&b| is_word_byte(b)).count();
        let before_len = s[..self.i]
            .iter()
            .rev()
            .take_while(|&&b| is_word_byte(b))
            .count();
        let keyword = |w: &[u8], call: bool| {
            let (kind, kw) = classify(w);
            !call
                && (kind == Kind::Logic
                    || kind == Kind::Not
                    || !matches!(kw, Kw::None | Kw::SqlFunc | Kw::TimeFunc | Kw::Danger))
        };
        keyword(&after[..len], after.get(len) == Some(&b'('))
            || keyword(&s[self.i - before_len..self.i], false)
    }

    pub(super) fn peek(&self, k: usize) -> u8 {
        self.s.get(self.i + k).copied().unwrap_or(0)
    }

    pub(super) fn tok(&self, kind: Kind, kw: Kw, start: usize) -> Tok {
        // Views are at most MAX_VIEW bytes, so both offsets fit.
        Tok {
            kind,
            kw,
            from: start as u32,
            to: self.i.min(self.s.len()) as u32,
        }
    }

    /// Reads a string body whose opening quote is already consumed.
    pub(super) fn string_body(&mut self, q: u8, backslash_escapes: bool, start: usize) -> Tok {
        let n = self.s.len();
        while self.i < n {
            // Straight to the next byte that can end or escape the literal.
            let rest = &self.s[self.i..];
            let found = if backslash_escapes {
                memchr::memchr2(q, b'\\', rest)
            } else {
                memchr::memchr(q, rest)
            };
            let Some(k) = found else { break };
            self.i += k;
            if self.s[self.i] == b'\\' {
                self.i += 2;
                continue;
            }
            if self.peek(1) == q && backslash_escapes {
                // Doubled quote inside a literal.
                self.i += 2;
                continue;
            }
            self.i += 1;
            return self.tok(Kind::Str, Kw::None, start);
        }
        self.i = n;
        self.tok(Kind::OpenStr, Kw::None, start)
    }

    /// The break-out string of a context closed by two bytes (`$$`, `*/`): up to and with them,
    /// or the whole input (an open string) when they never come.
    fn closed_by(&mut self, close: &[u8]) -> Tok {
        match memchr::memmem::find(self.s, close) {
            Some(k) => {
                self.i = k + close.len();
                self.tok(Kind::Str, Kw::None, 0)
            }
            None => {
                self.i = self.s.len();
                self.tok(Kind::OpenStr, Kw::None, 0)
            }
        }
    }

    pub(super) fn next_tok(&mut self) -> Option<Tok> {
        if let Context::Quoted(q) = self.ctx {
            self.ctx = Context::Bare;
            // The break-out string: no escapes (a payload's backslash is meant to eat the
            // application's escaping backslash).
            if matches!(q, DOLLAR | COMMENT) {
                return Some(self.closed_by(closer(q)));
            }
            return Some(self.string_body(q, false, 0));
        }
        let n = self.s.len();
        loop {
            if self.plus_is_space {
                while self.i < n
                    && (is_space(self.s[self.i]) || self.s[self.i] == b'+' && self.plus_blank())
                {
                    self.i += 1;
                }
            } else {
                self.i += self
                    .s
                    .get(self.i..)
                    .unwrap_or_default()
                    .iter()
                    .take_while(|&&b| is_space(b))
                    .count();
            }
            if self.i >= n {
                return None;
            }
            if self.in_exec_comment && self.s[self.i] == b'*' && self.peek(1) == b'/' {
                self.in_exec_comment = false;
                self.i += 2;
                continue;
            }
            break;
        }
        let start = self.i;
        let c = self.s[self.i];
        let c1 = self.peek(1);
        self.i += 1;
        let t = match c {
            b'\'' | b'"' if self.ctx == Context::Agnostic => self.tok(Kind::Other, Kw::None, start),
            b'\'' | b'"' => self.string_body(c, true, start),
            b'`' => {
                // Quoted identifier: a name, whatever keyword it spells, except that a catalog
                // stays a catalog (`` `information_schema`.`tables` ``).
                while self.i < n && self.s[self.i] != b'`' {
                    self.i += 1;
                }
                let (_, kw) = classify(&self.s[start + 1..self.i]);
                self.i = (self.i + 1).min(n);
                let kw = if kw == Kw::Catalog { kw } else { Kw::None };
                self.tok(Kind::Word, kw, start)
            }
            b'0'..=b'9' => self.number(start),
            b'.' if c1.is_ascii_digit() => self.number(start),
            b'.' => self.tok(Kind::Dot, Kw::None, start),
            // PostgreSQL containment and JSON path tests: `@>`, `@?`, `@@` (not `@@version`).
            b'@' if c1 == b'>' || c1 == b'?' || c1 == b'@' && !is_word_byte(self.peek(1)) => {
                self.i += 1;
                self.tok(Kind::Cmp, Kw::None, start)
            }
            b'@' => {
                while self.i < n && (is_word_byte(self.s[self.i]) || self.s[self.i] == b'@') {
                    self.i += 1;
                }
                self.tok(Kind::Var, Kw::None, start)
            }
            b'(' => self.tok(Kind::LParen, Kw::None, start),
            b')' => self.tok(Kind::RParen, Kw::None, start),
            b',' => self.tok(Kind::Comma, Kw::None, start),
            b';' => self.tok(Kind::Semi, Kw::None, start),
            // PostgreSQL JSON path operators `#>`, `#>>`, `#- '{..}'` (MySQL reads `#` as a
            // comment, but no payload's comment starts with them).
            b'#' if c1 == b'>' || c1 == b'-' && matches!(self.peek(1), b' ' | b'\'') => {
                self.i += 1;
                if self.peek(0) == b'>' {
                    self.i += 1;
                }
                self.tok(Kind::Op, Kw::None, start)
            }
            b'#' => self.line_comment(start),
            b'-' if c1 == b'-' => self.line_comment(start),
            // JSON member access `->`, `->>`.
            b'-' if c1 == b'>' => {
                self.i += 1;
                if self.peek(0) == b'>' {
                    self.i += 1;
                }
                self.tok(Kind::Op, Kw::None, start)
            }
            // PostgreSQL key tests `?|`, `?&`, and `? 'key'`; elsewhere `?` is punctuation.
            b'?' if matches!(c1, b'|' | b'&') => {
                self.i += 1;
                self.tok(Kind::Cmp, Kw::None, start)
            }
            b'?' if matches!(
                self.s[self.i..].iter().find(|&&b| !is_space(b)),
                Some(b'\'')
            ) =>
            {
                self.tok(Kind::Cmp, Kw::None, start)
            }
            b'/' if c1 == b'*' => {
                self.i += 1;
                if self.peek(0) == b'!' {
                    // MySQL executable comment: skip `!` and a version number, tokenize the body.
                    self.i += 1;
                    while self.i < n && self.s[self.i].is_ascii_digit() {
                        self.i += 1;
                    }
                    self.in_exec_comment = true;
                    return self.next_tok();
                }
                while self.i < n && !(self.s[self.i] == b'*' && self.peek(1) == b'/') {
                    self.i += 1;
                }
                self.i = (self.i + 2).min(n);
                self.tok(Kind::Comment, Kw::None, start)
            }
            b'&' if c1 == b'&' => {
                self.i += 1;
                self.tok(Kind::Logic, Kw::None, start)
            }
            b'|' if c1 == b'|' => {
                self.i += 1;
                self.tok(Kind::Logic, Kw::None, start)
            }
            b'=' => {
                if c1 == b'=' {
                    self.i += 1;
                }
                self.tok(Kind::Cmp, Kw::None, start)
            }
            b'<' => {
                if c1 == b'@' {
                    // PostgreSQL `<@` (contained in).
                    self.i += 1;
                    self.tok(Kind::Cmp, Kw::None, start)
                } else if c1 == b'=' {
                    self.i += 1;
                    if self.peek(0) == b'>' {
                        self.i += 1;
                    }
                    self.tok(Kind::Cmp, Kw::None, start)
                } else if c1 == b'>' {
                    self.i += 1;
                    self.tok(Kind::Cmp, Kw::None, start)
                } else if c1 == b'<' {
                    self.i += 1;
                    self.tok(Kind::Op, Kw::None, start)
                } else {
                    self.tok(Kind::Cmp, Kw::None, start)
                }
            }
            b'>' => {
                if c1 == b'=' {
                    self.i += 1;
                    self.tok(Kind::Cmp, Kw::None, start)
                } else if c1 == b'>' {
                    self.i += 1;
                    self.tok(Kind::Op, Kw::None, start)
                } else {
                    self.tok(Kind::Cmp, Kw::None, start)
                }
            }
            b'!' => {
                if matches!(c1, b'=' | b'<' | b'>') {
                    self.i += 1;
                    self.tok(Kind::Cmp, Kw::None, start)
                } else {
                    self.tok(Kind::Not, Kw::None, start)
                }
            }
            // Informix `sysmaster:sysdual`: a qualifier, like a dot.
            b':' if is_word_byte(c1)
                && start > 0
                && self.s.get(start - 1).is_some_and(|&b| is_word_byte(b)) =>
            {
                self.tok(Kind::Dot, Kw::None, start)
            }
            b':' if c1 == b'=' || c1 == b':' => {
                self.i += 1;
                self.tok(Kind::Op, Kw::None, start)
            }
            b'*' => self.tok(Kind::Op, Kw::All, start),
            b'+' | b'-' | b'/' | b'%' | b'^' | b'|' | b'&' | b'~' => {
                self.tok(Kind::Op, Kw::None, start)
            }
            b'[' => {
                // MSSQL quoted identifier when it closes on the same line.
                let mut j = self.i;
                while j < n && j - self.i < 128 && !matches!(self.s[j], b']' | b'\n') {
                    j += 1;
                }
                if j < n && self.s[j] == b']' && j > self.i {
                    self.i = j + 1;
                    self.tok(Kind::Word, Kw::None, start)
                } else {
                    self.tok(Kind::Other, Kw::None, start)
                }
            }
            c if is_word_byte(c) => {
                self.i += self.s[self.i..]
                    .iter()
                    .take_while(|&&b| is_word_byte(b))
                    .count();
                self.word(start)
            }
            _ => self.tok(Kind::Other, Kw::None, start),
        };
        Some(t)
    }

    pub(super) fn line_comment(&mut self, start: usize) -> Tok {
        let n = self.s.len();
        while self.i < n && self.s[self.i] != b'\n' {
            self.i += 1;
        }
        self.tok(Kind::Comment, Kw::None, start)
    }

    pub(super) fn number(&mut self, start: usize) -> Tok {
        let n = self.s.len();
        let s = self.s;
        if s[start] == b'0' && matches!(self.peek(0), b'x' | b'b') {
            self.i += 1;
            while self.i < n && s[self.i].is_ascii_hexdigit() {
                self.i += 1;
            }
        } else {
            while self.i < n && (s[self.i].is_ascii_digit() || s[self.i] == b'.') {
                self.i += 1;
            }
            if self.i < n && s[self.i] == b'e' {
                let save = self.i;
                self.i += 1;
                if self.i < n && matches!(s[self.i], b'+' | b'-') {
                    self.i += 1;
                }
                if self.i < n && s[self.i].is_ascii_digit() {
                    while self.i < n && s[self.i].is_ascii_digit() {
                        self.i += 1;
                    }
                } else {
                    self.i = save;
                }
            }
        }
        if self.i < n && is_word_byte(s[self.i]) && s[self.i] != b'$' {
            // `86union`, `1and`: MySQL ends the number where a keyword starts.
            let num_end = self.i;
            let mut k = self.i;
            while k < n && is_word_byte(s[k]) {
                k += 1;
            }
            let (kind, kw) = classify(&s[num_end..k]);
            if kind == Kind::Logic || matches!(kw, Kw::Union | Kw::Select | Kw::From | Kw::Order) {
                self.i = num_end;
                return self.tok(Kind::Num, Kw::None, start);
            }
            // `8h`, `109m`, `1e`: a bareword, not a number.
            while self.i < n && is_word_byte(s[self.i]) {
                self.i += 1;
            }
            return self.tok(Kind::Word, Kw::None, start);
        }
        self.tok(Kind::Num, Kw::None, start)
    }

    pub(super) fn word(&mut self, start: usize) -> Tok {
        let (kind, kw) = classify(&self.s[start..self.i]);
        if kind == Kind::Op && matches!(&self.s[start..self.i], b"mod" | b"div") {
            // `MOD(7, 2)` is a function, `7 MOD 2` an operator.
            let rest = &self.s[self.i..];
            let arg = rest
                .trim_ascii_start()
                .strip_prefix(b"(")
                .unwrap_or(b"select");
            if !arg.trim_ascii_start().starts_with(b"select") {
                return self.tok(Kind::Func, Kw::SqlFunc, start);
            }
        }
        if kind != Kind::Word {
            return self.tok(kind, kw, start);
        }
        // A function call: `(` right after, or after spaces for names SQL knows.
        let mut j = self.i;
        let known = matches!(kw, Kw::TimeFunc | Kw::Danger | Kw::SqlFunc);
        if known {
            // Spaces and empty comments (`SLEEP/**/(5)`) may stand before the parenthesis.
            loop {
                while j < self.s.len() && is_space(self.s[j]) {
                    j += 1;
                }
                match self.s.get(j..).and_then(|r| r.strip_prefix(b"/*")) {
                    Some(r) if r.len() < 64 => match memchr::memmem::find(r, b"*/") {
                        Some(k) if !r[..k].contains(&b'!') => j += 2 + k + 2,
                        _ => break,
                    },
                    _ => break,
                }
            }
        }
        // Clause keywords stay keywords before `(` (`FROM(SELECT ..)`, `VALUES(1)`).
        let clause = matches!(
            kw,
            Kw::Union
                | Kw::Select
                | Kw::From
                | Kw::Where
                | Kw::Having
                | Kw::Into
                | Kw::Values
                | Kw::Limit
                | Kw::Set
        );
        if self.s.get(j) == Some(&b'(') && !clause {
            return self.tok(Kind::Func, kw, start);
        }
        self.tok(Kind::Word, kw, start)
    }
}
