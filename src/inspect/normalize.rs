//! Byte-level normalization: the fold pass (case, controls, Unicode compatibility forms, Unicode
//! spaces) and the decode pass (URL, HTML entities, JavaScript/CSS escapes). Both are single
//! left-to-right scans that never produce more bytes than they read, so a view is never larger
//! than the text it came from.
//!
//! Views are byte strings: ASCII is lowercased, everything else stays UTF-8 (or whatever bytes a
//! binary message had). Detectors only look at ASCII structure, so they never need to decode.

/// Appends the folded form of `input` to `out` and returns the [`Marks`] of what it wrote.
///
/// - ASCII letters are lowercased;
/// - NUL, the other C0 controls (except tab, line feed, form feed and carriage return) and DEL are
///   dropped, as browsers and many parsers drop or ignore them, and so are whole terminal control
///   sequences (`ESC [ 2 A`, `ESC [ 1;31 m`: numeric parameters and a letter, nothing else);
/// - a run of U+FFFD (what invalid UTF-8 became) shrinks to one opaque non-ASCII byte, also when
///   characters this pass drops sit inside the run;
/// - fullwidth forms U+FF01..U+FF5E and the small-form `﹤﹥` become their ASCII letters;
/// - typographic quotes and primes become ASCII quotes (Windows best-fit mapping does the same);
/// - Unicode spaces (NBSP, U+2000..U+200A, U+3000) become a space, U+2028/U+2029 and U+0085 a line
///   feed, and zero-width characters (U+200B..U+200D, U+2060, U+FEFF) are dropped.
pub fn fold(input: &[u8], out: &mut Vec<u8>) -> Marks {
    // The output is never longer than the input: write into a buffer of that size, then trim.
    let start = out.len();
    out.resize(start + input.len(), 0);
    let buf = &mut out[start..];
    let mut i = 0;
    let mut j = 0;
    let n = input.len();
    // The OR of the table entries of every byte written: its high bits are the marks.
    let mut acc = 0u64;
    while i < n {
        // Eight bytes at a time while each is kept as one byte (most text): one table lookup
        // per byte and no branch on any of them.
        if let (Some(chunk), Some(dst)) = (input.get(i..i + 8), buf.get_mut(j..j + 8)) {
            let mut all = u64::MAX;
            let mut any = 0u64;
            let mut bytes = [0u8; 8];
            for (d, &b) in bytes.iter_mut().zip(chunk) {
                let e = FOLD[usize::from(b)];
                *d = e as u8;
                all &= e;
                any |= e;
            }
            if all & KEEP != 0 && any & SPECIAL == 0 {
                dst.copy_from_slice(&bytes);
                acc |= any;
                i += 8;
                j += 8;
                continue;
            }
        }
        let b = input[i];
        let e = FOLD[usize::from(b)];
        if e & SPECIAL == 0 {
            // A single byte: copied (ASCII lowercased, vertical tab as a space) or dropped
            // (controls), without a branch on which.
            buf[j] = e as u8;
            j += ((e & KEEP) >> KEEP_SHIFT) as usize;
            acc |= e;
            i += 1;
            continue;
        }
        if input[i..].starts_with(REPLACEMENT) {
            // U+FFFD, the common case in text that was not UTF-8: one opaque byte per run, also
            // when bytes this pass drops (controls, zero-width characters) sit inside the run.
            // (Views need not be UTF-8.)
            if j == 0 || buf[j - 1] != OPAQUE {
                buf[j] = OPAQUE;
                j += 1;
                acc |= MARK[usize::from(OPAQUE)] << MARK_SHIFT;
            }
            i += 3;
            continue;
        }
        let (consumed, emit) = fold_special(&input[i..]);
        if let Some(e) = emit {
            buf[j] = e;
            j += 1;
            acc |= MARK[usize::from(e)] << MARK_SHIFT;
        }
        i += consumed.max(1);
    }
    out.truncate(start + j);
    Marks(acc >> MARK_SHIFT)
}

/// [`FOLD`] layout: the byte written (bits 0-7), whether it is kept, whether the byte may start
/// a sequence that needs [`fold_special`] (ESC and the lead bytes of rewritten UTF-8
/// sequences), and from [`MARK_SHIFT`] on the byte's [`Marks`] bit.
const KEEP_SHIFT: u32 = 8;
const KEEP: u64 = 1 << KEEP_SHIFT;
const SPECIAL: u64 = 1 << 9;
const MARK_SHIFT: u32 = 16;

static FOLD: [u64; 256] = {
    let mut t = [0u64; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let out = if c == 0x0b {
            b' '
        } else {
            c.to_ascii_lowercase()
        };
        let keep = (c >= 0x20 && c < 0x7f)
            || c >= 0x80
            || matches!(c, b'\t' | b'\n' | b'\r' | 0x0c | 0x0b);
        t[b] = if c == 0x1b || is_fold_lead(c) {
            SPECIAL
        } else if keep {
            out as u64 | KEEP | (mark_bit(out) << MARK_SHIFT)
        } else {
            0
        };
        b += 1;
    }
    t
};

/// Which kinds of byte a view holds, one bit per kind: each ASCII punctuation character, space,
/// tab, line feed, carriage return and form feed has its own bit; letters share one, digits one,
/// and bytes above 0x7f one (0xbc, the 7-bit `<`, also has its own). [`fold`] computes them as it
/// writes a view, so a detector can tell in one test that a view lacks every byte one of its
/// rules needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Marks(u64);

/// The [`Marks`] bit of byte `b`.
const fn mark_bit(b: u8) -> u64 {
    let k = match b {
        b'!'..=b'/' => b - b'!',
        b':'..=b'@' => 15 + b - b':',
        b'['..=b'`' => 22 + b - b'[',
        b'{'..=b'~' => 28 + b - b'{',
        b' ' => 32,
        b'\t' => 33,
        b'\n' => 34,
        b'\r' => 35,
        0x0c => 36,
        b'0'..=b'9' => 37,
        b'a'..=b'z' | b'A'..=b'Z' => 38,
        0xbc => 39,
        0x80..=0xff => 40,
        _ => 41,
    };
    let bit = 1u64 << k;
    // 0xbc is also a byte above 0x7f.
    if b == 0xbc {
        bit | 1 << 40
    } else {
        bit
    }
}

impl Marks {
    /// The marks of every byte in `bytes` (a constant set to test views against).
    pub const fn of(bytes: &[u8]) -> Marks {
        let mut m = 0;
        let mut k = 0;
        while k < bytes.len() {
            m |= mark_bit(bytes[k]);
            k += 1;
        }
        Marks(m)
    }
    /// The marks of both views.
    pub fn union(self, other: Marks) -> Marks {
        Marks(self.0 | other.0)
    }
    /// Does the view hold any byte of `set`?
    pub fn any(self, set: Marks) -> bool {
        self.0 & set.0 != 0
    }
    /// Does the view hold byte `b` (or another byte of its kind: letters, digits, non-ASCII)?
    pub fn has(self, b: u8) -> bool {
        self.0 & mark_bit(b) != 0
    }
    /// A space.
    pub fn space(self) -> bool {
        self.has(b' ')
    }
    /// A `+`.
    pub fn plus(self) -> bool {
        self.has(b'+')
    }
    /// A `%`, `&` or `\` (what starts an escape the decode pass reads).
    pub fn escape_intro(self) -> bool {
        self.any(ESCAPE_INTRO)
    }
    /// Does the view hold byte `b` itself? Exact for ASCII punctuation and whitespace (each has
    /// its own bit) and for 0xbc; for letters, digits and other bytes above 0x7f it says whether
    /// one of the kind is there (as [`Marks::has`]).
    pub fn holds(self, b: u8) -> bool {
        let bit = if b == 0xbc {
            mark_bit(0xbc) & !mark_bit(0x80)
        } else {
            mark_bit(b)
        };
        self.0 & bit != 0
    }
}

const ESCAPE_INTRO: Marks = Marks::of(b"%&\\");

/// [`mark_bit`] of every byte.
static MARK: [u64; 256] = {
    let mut t = [0u64; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = mark_bit(b as u8);
        b += 1;
    }
    t
};

/// Runs `detect` on `s` lowercased, with its marks: what the detectors' unit tests feed them.
#[cfg(test)]
pub fn on_lowercase(
    s: &str,
    detect: fn(&[u8], Marks, super::RuleFilter<'_>) -> Option<&'static str>,
) -> Option<&'static str> {
    let view = s.to_ascii_lowercase();
    detect(
        view.as_bytes(),
        marks(view.as_bytes()),
        super::RuleFilter::ALL,
    )
}

/// The marks of `view` (for views [`fold`] did not write).
pub fn marks(view: &[u8]) -> Marks {
    Marks(view.iter().fold(0u64, |acc, &b| acc | MARK[usize::from(b)]))
}

/// A sequence starting with ESC or a fold lead byte: (bytes consumed, byte written if any).
fn fold_special(s: &[u8]) -> (usize, Option<u8>) {
    let b = s[0];
    if b == 0x1b {
        if s.get(1) == Some(&b'[') {
            // A terminal control sequence as terminals are sent them (ESC [, numeric parameters,
            // one letter, `@` or `~`: colours, cursor moves) is dropped whole, so its parameters
            // are not glued to the next word. Anything else is not one: only the ESC goes, so
            // `ESC [<script>` keeps every byte of its markup.
            let mut j = 2;
            while j < s.len() && j < 32 && matches!(s[j], b'0'..=b'9' | b';' | b'?') {
                j += 1;
            }
            if s.get(j)
                .is_some_and(|&f| f.is_ascii_alphabetic() || f == b'@' || f == b'~')
            {
                return (j + 1, None);
            }
        }
        return (1, None);
    }
    let b1 = s.get(1).copied().unwrap_or(0);
    let b2 = s.get(2).copied().unwrap_or(0);
    match (b, b1, b2) {
        // U+FF01..U+FF3F -> 0x21..0x5F
        (0xef, 0xbc, 0x81..=0xbf) => (3, Some(ascii_lower(b2 - 0x81 + 0x21))),
        // U+FF40..U+FF5E -> 0x60..0x7E
        (0xef, 0xbd, 0x80..=0x9e) => (3, Some(b2 - 0x80 + 0x60)),
        // Small form variants: U+FE64 < and U+FE65 >.
        (0xef, 0xb9, 0xa4) => (3, Some(b'<')),
        (0xef, 0xb9, 0xa5) => (3, Some(b'>')),
        // U+FEFF zero-width no-break space.
        (0xef, 0xbb, 0xbf) => (3, None),
        // U+3000 ideographic space.
        (0xe3, 0x80, 0x80) => (3, Some(b' ')),
        // U+2000..U+200A spaces, U+200B..U+200D zero width, U+2060 word joiner.
        (0xe2, 0x80, 0x80..=0x8a) => (3, Some(b' ')),
        (0xe2, 0x80, 0x8b..=0x8d) | (0xe2, 0x81, 0xa0) => (3, None),
        // Typographic quotes and primes (U+2018, U+2019, U+2032; U+201C, U+201D, U+2033):
        // Windows "best fit" conversion and some database collations turn them into ASCII
        // quotes, so payloads use them to slip past filters.
        (0xe2, 0x80, 0x98 | 0x99 | 0xb2) => (3, Some(b'\'')),
        (0xe2, 0x80, 0x9c | 0x9d | 0xb3) => (3, Some(b'"')),
        // U+2028/U+2029 line and paragraph separators.
        (0xe2, 0x80, 0xa8 | 0xa9) => (3, Some(b'\n')),
        // U+00A0 no-break space, U+0085 next line.
        (0xc2, 0xa0, _) => (2, Some(b' ')),
        (0xc2, 0x85, _) => (2, Some(b'\n')),
        _ => (1, Some(b)),
    }
}

/// What a run of U+FFFD becomes in a view: a byte that is never ASCII and never starts a
/// sequence the fold rewrites, so every detector reads it as an opaque word character.
const OPAQUE: u8 = 0xff;

/// UTF-8 of U+FFFD REPLACEMENT CHARACTER.
const REPLACEMENT: &[u8] = "\u{fffd}".as_bytes();

/// Lead bytes of the multi-byte sequences [`fold`] rewrites.
const fn is_fold_lead(b: u8) -> bool {
    matches!(b, 0xc2 | 0xe2 | 0xe3 | 0xef)
}

fn ascii_lower(b: u8) -> u8 {
    b.to_ascii_lowercase()
}

fn hex_val(b: u8) -> Option<u32> {
    match b {
        b'0'..=b'9' => Some(u32::from(b - b'0')),
        b'a'..=b'f' => Some(u32::from(b - b'a' + 10)),
        b'A'..=b'F' => Some(u32::from(b - b'A' + 10)),
        _ => None,
    }
}

/// Appends `cp` as UTF-8 (invalid scalar values become U+FFFD).
fn push_code_point(out: &mut Vec<u8>, cp: u32) {
    let c = char::from_u32(cp).unwrap_or('\u{fffd}');
    let mut buf = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

/// True when `input`, whose marks are `m`, holds something the decode pass would change (cheap
/// pre-check).
pub fn has_decodable(input: &[u8], m: Marks, plus_is_space: bool) -> bool {
    // Most texts have none of the introducers: the marks settle it.
    if !(m.escape_intro() || plus_is_space && m.plus()) {
        return false;
    }
    let n = input.len();
    for (i, &b) in input.iter().enumerate() {
        match b {
            b'%' if i + 2 < n + 1 => {
                let a = input.get(i + 1).copied().unwrap_or(0);
                let c = input.get(i + 2).copied().unwrap_or(0);
                if (hex_val(a).is_some() && hex_val(c).is_some()) || a == b'u' {
                    return true;
                }
            }
            b'&' if input
                .get(i + 1)
                .is_some_and(|c| *c == b'#' || c.is_ascii_alphabetic()) =>
            {
                return true;
            }
            b'\\'
                if input.get(i + 1).is_some_and(|c| {
                    c.is_ascii_alphanumeric() || matches!(c, b'\'' | b'"' | b'\\' | b'/' | b'`')
                }) =>
            {
                return true;
            }
            b'+' if plus_is_space => return true,
            _ => {}
        }
    }
    false
}

/// Named HTML character references we decode (lowercase, as views are folded first). The set
/// covers the characters that matter to markup, script and SQL syntax.
fn named_entity(name: &[u8]) -> Option<&'static [u8]> {
    Some(match name {
        b"lt" => b"<",
        b"gt" => b">",
        b"amp" => b"&",
        b"quot" => b"\"",
        b"apos" => b"'",
        b"colon" => b":",
        b"lpar" => b"(",
        b"rpar" => b")",
        b"tab" => b"\t",
        b"newline" => b"\n",
        b"nbsp" => b" ",
        b"sol" => b"/",
        b"bsol" => b"\\",
        b"lsqb" | b"lbrack" => b"[",
        b"rsqb" | b"rbrack" => b"]",
        b"lcub" | b"lbrace" => b"{",
        b"rcub" | b"rbrace" => b"}",
        b"excl" => b"!",
        b"num" => b"#",
        b"dollar" => b"$",
        b"percnt" => b"%",
        b"ast" | b"midast" => b"*",
        b"plus" => b"+",
        b"comma" => b",",
        b"period" => b".",
        b"semi" => b";",
        b"equals" => b"=",
        b"quest" => b"?",
        b"commat" => b"@",
        b"grave" => b"`",
        b"lowbar" | b"underbar" => b"_",
        b"hat" => b"^",
        b"vert" | b"verbar" => b"|",
        b"hyphen" | b"dash" => b"-",
        _ => return None,
    })
}

/// Decodes one layer of URL (`%XX`, `%uXXXX`, optionally `+`), HTML character references and
/// JavaScript/CSS escapes, appending to `out`. Returns whether anything was decoded. The output
/// is never longer than the input.
pub fn decode(input: &[u8], plus_is_space: bool, out: &mut Vec<u8>) -> bool {
    out.reserve(input.len());
    let n = input.len();
    let mut i = 0;
    let mut changed = false;
    while i < n {
        // Copy the run up to the next byte that can start an escape.
        let run = input[i..]
            .iter()
            .position(|&b| matches!(b, b'%' | b'&' | b'\\') || (plus_is_space && b == b'+'))
            .unwrap_or(n - i);
        if run > 0 {
            out.extend_from_slice(&input[i..i + run]);
            i += run;
            continue;
        }
        let b = input[i];
        match b {
            b'%' => {
                if let Some((cp, len)) = url_escape(&input[i..]) {
                    if cp < 0x100 {
                        // A percent-escaped byte (possibly one byte of a UTF-8 sequence).
                        out.push(cp as u8);
                    } else {
                        push_code_point(out, cp);
                    }
                    i += len;
                    changed = true;
                    continue;
                }
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
                changed = true;
                continue;
            }
            b'&' => {
                if let Some((len, cp, named)) = html_reference(&input[i..]) {
                    match named {
                        Some(s) => out.extend_from_slice(s),
                        None => push_code_point(out, cp),
                    }
                    i += len;
                    changed = true;
                    continue;
                }
            }
            b'\\' => {
                if let Some((cp, len)) = backslash_escape(&input[i..]) {
                    push_code_point(out, cp);
                    i += len;
                    changed = true;
                    continue;
                }
            }
            _ => {}
        }
        out.push(b);
        i += 1;
    }
    changed
}

/// `%XX` or `%uXXXX` at the start of `s`: (value, length).
fn url_escape(s: &[u8]) -> Option<(u32, usize)> {
    let a = *s.get(1)?;
    if a == b'u' || a == b'U' {
        let mut v = 0u32;
        for k in 0..4 {
            v = v * 16 + hex_val(*s.get(2 + k)?)?;
        }
        return Some((v, 6));
    }
    let hi = hex_val(a)?;
    let lo = hex_val(*s.get(2)?)?;
    Some((hi * 16 + lo, 3))
}

/// An HTML character reference at the start of `s` (which begins with `&`):
/// (length consumed, code point, or the named replacement).
fn html_reference(s: &[u8]) -> Option<(usize, u32, Option<&'static [u8]>)> {
    let first = *s.get(1)?;
    if first == b'#' {
        let (hex, mut j) = match s.get(2) {
            Some(b'x' | b'X') => (true, 3),
            _ => (false, 2),
        };
        let start = j;
        let mut v: u32 = 0;
        while let Some(&c) = s.get(j) {
            let d = if hex {
                hex_val(c)
            } else if c.is_ascii_digit() {
                Some(u32::from(c - b'0'))
            } else {
                None
            };
            let Some(d) = d else { break };
            // Saturate: leading zeros are allowed, huge values become U+FFFD.
            v = v
                .saturating_mul(if hex { 16 } else { 10 })
                .saturating_add(d)
                .min(0x11_0000);
            j += 1;
        }
        if j == start {
            return None;
        }
        if s.get(j) == Some(&b';') {
            j += 1;
        }
        return Some((j, v, None));
    }
    if !first.is_ascii_alphabetic() {
        return None;
    }
    let mut j = 1;
    while j < s.len() && j <= 10 && s[j].is_ascii_alphabetic() {
        j += 1;
    }
    let name = &s[1..j];
    let lower: [u8; 10] = {
        let mut l = [0u8; 10];
        for (k, c) in name.iter().take(10).enumerate() {
            l[k] = c.to_ascii_lowercase();
        }
        l
    };
    let lname = &lower[..name.len().min(10)];
    // Longest match first, `;` optional (browsers accept the legacy forms without it).
    for len in (2..=lname.len()).rev() {
        if let Some(rep) = named_entity(&lname[..len]) {
            let mut consumed = 1 + len;
            if len == name.len() && s.get(consumed) == Some(&b';') {
                consumed += 1;
            }
            return Some((consumed, 0, Some(rep)));
        }
    }
    None
}

/// A JavaScript or CSS escape at the start of `s` (which begins with `\`): (code point, length).
fn backslash_escape(s: &[u8]) -> Option<(u32, usize)> {
    let c = *s.get(1)?;
    match c {
        b'x' | b'X' => {
            let v = hex_val(*s.get(2)?)? * 16 + hex_val(*s.get(3)?)?;
            Some((v, 4))
        }
        b'u' | b'U' => {
            if s.get(2) == Some(&b'{') {
                let mut v = 0u32;
                let mut j = 3;
                while let Some(d) = s.get(j).and_then(|&c| hex_val(c)) {
                    v = v.saturating_mul(16).saturating_add(d).min(0x11_0000);
                    j += 1;
                    if j > 12 {
                        return None;
                    }
                }
                if j == 3 || s.get(j) != Some(&b'}') {
                    return None;
                }
                return Some((v, j + 1));
            }
            let mut v = 0u32;
            for k in 0..4 {
                v = v * 16 + hex_val(*s.get(2 + k)?)?;
            }
            Some((v, 6))
        }
        b'n' => Some((u32::from(b'\n'), 2)),
        b'r' => Some((u32::from(b'\r'), 2)),
        b't' => Some((u32::from(b'\t'), 2)),
        b'\'' | b'"' | b'\\' | b'/' | b'`' => Some((u32::from(c), 2)),
        b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
            // Octal (JS: up to three digits 0-7) unless a non-octal hex digit follows, in which
            // case it is a CSS escape (up to six hex digits and an optional space).
            let mut j = 1;
            let mut all_octal = true;
            while j < s.len() && j <= 6 && hex_val(s[j]).is_some() {
                if !(b'0'..=b'7').contains(&s[j]) {
                    all_octal = false;
                }
                j += 1;
            }
            let digits = &s[1..j];
            // JavaScript octal escapes have at most three digits; four or more are CSS.
            if all_octal && digits.len() <= 3 {
                let take = digits.len().min(3);
                let mut v = 0u32;
                for &d in &digits[..take] {
                    v = v * 8 + u32::from(d - b'0');
                }
                if v > 0o377 {
                    // Only two digits belong to the escape.
                    v = u32::from(digits[0] - b'0') * 8 + u32::from(digits[1] - b'0');
                    return Some((v, 3));
                }
                return Some((v, 1 + take));
            }
            let mut v = 0u32;
            for &d in digits {
                v = v * 16 + hex_val(d)?;
            }
            let mut len = j;
            if s.get(len) == Some(&b' ') {
                len += 1;
            }
            Some((v, len))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folded(s: &str) -> String {
        let mut out = Vec::new();
        fold(s.as_bytes(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    fn decoded(s: &str) -> String {
        let mut out = Vec::new();
        decode(s.as_bytes(), false, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn fold_handles_case_controls_and_fullwidth() {
        assert_eq!(folded("<SCRIPT>"), "<script>");
        assert_eq!(folded("＜ｓｃｒｉｐｔ＞"), "<script>");
        assert_eq!(folded("ＡＬＥＲＴ"), "alert");
        assert_eq!(folded("a\0b\x01c\td"), "abc\td");
        assert_eq!(folded("a\u{200b}b\u{3000}c"), "ab c");
        assert_eq!(folded("héllo"), "héllo");
    }

    #[test]
    fn fold_drops_terminal_sequences_but_never_what_they_cannot_hold() {
        assert_eq!(
            folded("\x1b[1;31mCAT /etc/passwd\x1b[0m"),
            "cat /etc/passwd"
        );
        assert_eq!(folded("a\x1b[2Ab\x1b[sc"), "abc");
        // Not a sequence a terminal is sent: only the ESC is dropped.
        assert_eq!(folded("\x1b[<script>"), "[<script>");
        assert_eq!(folded("\x1b['OR 1=1"), "['or 1=1");
        assert_eq!(folded("\x1b[12"), "[12");
        assert_eq!(folded("\x1b[\x7fx"), "[x");
    }

    #[test]
    fn dropped_characters_inside_a_replacement_run_change_nothing() {
        // (`folded` shows the opaque byte as one U+FFFD.)
        let run = folded("a\u{fffd}\u{fffd}b");
        assert_eq!(run, "a\u{fffd}b");
        assert_eq!(folded("a\u{fffd}\x7f\u{fffd}b"), run);
        assert_eq!(folded("a\u{fffd}\u{200b}\0\u{fffd}b"), run);
        assert_ne!(folded("a\u{fffd}x\u{fffd}b"), run);
    }

    /// [`fold`] one byte at a time through the table (no eight-byte paths).
    fn fold_bytewise(input: &[u8]) -> (Vec<u8>, Marks) {
        let mut out = Vec::new();
        let mut acc = 0u64;
        for k in 0..input.len() {
            let mut one = Vec::new();
            // Single bytes fold alone except the special ones, which this test keeps out.
            let m = fold(&input[k..k + 1], &mut one);
            out.extend_from_slice(&one);
            acc |= m.0;
        }
        (out, Marks(acc))
    }

    #[test]
    fn fold_reads_runs_of_plain_bytes_as_one_byte_at_a_time() {
        let mut x: u32 = 0x9e37_79b9;
        // Mostly letters, digits and spaces, so that long plain runs occur, with the other
        // single-byte kinds sprinkled in (the bytes before and after each range too).
        let alphabet = b"aAzZmM09 5@[`{/:!,.\t\x0b\x00\x7f\x80\xbc";
        for len in [0usize, 1, 7, 8, 9, 15, 16, 17, 64, 301] {
            for _ in 0..200 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        if !x.is_multiple_of(4) {
                            b"abcXYZ 019qQ"[(x as usize >> 3) % 12]
                        } else {
                            alphabet[(x as usize >> 3) % alphabet.len()]
                        }
                    })
                    .collect();
                let mut out = Vec::new();
                let m = fold(&bytes, &mut out);
                assert_eq!((out, m), fold_bytewise(&bytes), "{bytes:?}");
            }
        }
        for b in 0..=0x7fu8 {
            let chunk = [b; 8];
            let mut out = Vec::new();
            let m = fold(&chunk, &mut out);
            assert_eq!((out, m), fold_bytewise(&chunk), "{b:#x}");
        }
    }

    #[test]
    fn fold_maps_vertical_tab_anywhere() {
        // Also past the first eight bytes, where whole chunks are copied.
        assert_eq!(folded("ABCDEFGHIJ\x0bk"), "abcdefghij k");
        assert_eq!(folded("\x0bx"), " x");
    }

    #[test]
    fn fold_marks_what_it_writes() {
        let mut x: u32 = 0x2545_f491;
        for len in [0usize, 1, 7, 8, 9, 64, 500] {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    let alphabet = b"aZ9 <>;'(\t\x0b\x00\x1b[\xbc\xef\xbc\x9c\xe2\x80\x99\xc2\xa0";
                    alphabet[(x as usize) % alphabet.len()]
                })
                .collect();
            let mut out = Vec::new();
            let m = fold(&bytes, &mut out);
            assert_eq!(m, marks(&out), "{bytes:?}");
        }
        assert!(marks(b"a(b").has(b'('));
        assert!(!marks(b"ab").any(Marks::of(b"()")));
        assert!(marks(b"x").has(b'q'), "letters share a mark");
    }

    #[test]
    fn decode_url_html_and_js() {
        assert_eq!(decoded("%3cscript%3E"), "<script>");
        assert_eq!(decoded("%253c"), "%3c");
        assert_eq!(decoded("&lt;a&gt;&quot;&apos;&amp;"), "<a>\"'&");
        assert_eq!(
            decoded("javascript&colon;alert&lpar;1&rpar;"),
            "javascript:alert(1)"
        );
        assert_eq!(decoded("&#60;&#x3c;&#0000060&#x3C"), "<<<<");
        assert_eq!(decoded("java&tab;script&newline;"), "java\tscript\n");
        assert_eq!(decoded("\\x3c\\u003c\\u{3c}\\74"), "<<<<");
        assert_eq!(decoded("expression\\28 x\\29"), "expression(x)");
        assert_eq!(decoded("100%"), "100%");
        assert_eq!(decoded("&#99999999999999999999999;"), "\u{fffd}");
        assert_eq!(decoded("&"), "&");
        assert_eq!(decoded("\\"), "\\");
        assert_eq!(decoded("%u003c"), "<");
    }

    #[test]
    fn decode_never_grows() {
        for s in [
            "&#1114111;",
            "&#x10FFFF",
            "\\u{10ffff}",
            "%uffff",
            "\\777",
            "&lt",
        ] {
            let mut out = Vec::new();
            decode(s.as_bytes(), true, &mut out);
            assert!(out.len() <= s.len(), "{s}");
        }
    }
}
