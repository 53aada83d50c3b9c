//! Byte-level helpers shared by the scanner and the rules: whitespace as HTML sees it, quote
//! stripping, scheme matching that ignores the controls URL parsers drop, byte tables.

/// A table of the bytes in `bytes` (and 0xbc, the 7-bit `<`).
pub(super) const fn byte_table(bytes: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut k = 0;
    while k < bytes.len() {
        t[bytes[k] as usize] = true;
        k += 1;
    }
    t[0xbc] = true;
    t
}

pub(super) fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0c)
}

/// `hay` starts with `needle`, ignoring tabs, line feeds and carriage returns in `hay` (as URL
/// parsers do inside schemes).
pub(super) fn starts_with_loose(hay: &[u8], needle: &[u8]) -> bool {
    let mut i = 0;
    for &c in needle {
        while i < hay.len() && matches!(hay[i], b'\t' | b'\n' | b'\r') {
            i += 1;
        }
        if hay.get(i) != Some(&c) {
            return false;
        }
        i += 1;
    }
    true
}

pub(super) fn strip_quote(v: &[u8]) -> &[u8] {
    let v = skip_ws(v);
    match v.first() {
        Some(b'"' | b'\'' | b'`') => &v[1..],
        _ => v,
    }
}

pub(super) fn ends_with_loose(hay: &[u8], needle: &[u8]) -> bool {
    let mut i = hay.len();
    for &c in needle.iter().rev() {
        while i > 0 && matches!(hay[i - 1], b'\t' | b'\n' | b'\r') {
            i -= 1;
        }
        if i == 0 || hay[i - 1] != c {
            return false;
        }
        i -= 1;
    }
    // The scheme must start a token.
    i == 0 || !hay[i - 1].is_ascii_alphanumeric()
}

pub(super) fn skip_ws(s: &[u8]) -> &[u8] {
    let k = s.iter().position(|&b| !is_ws(b)).unwrap_or(s.len());
    &s[k..]
}

/// Is `b` part of a JavaScript identifier (ASCII part)?
pub(super) fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'$')
}

/// From `i`, past whitespace and `/* ... */` comments (what JavaScript ignores between tokens).
pub(super) fn skip_code_gap(s: &[u8], mut i: usize) -> usize {
    loop {
        while i < s.len() && is_ws(s[i]) {
            i += 1;
        }
        if s.get(i) == Some(&b'/') && s.get(i + 1) == Some(&b'*') {
            match s.get(i + 2..).and_then(|r| find_bytes(r, b"*/")) {
                Some(e) => i += 2 + e + 2,
                None => return s.len(),
            }
            continue;
        }
        return i;
    }
}

/// Back from `end` (exclusive), past whitespace and `/* ... */` comments: the end of the token
/// before.
pub(super) fn skip_code_gap_back(s: &[u8], mut end: usize) -> usize {
    end = end.min(s.len());
    loop {
        while end > 0 && is_ws(s[end - 1]) {
            end -= 1;
        }
        if end >= 4 && s[end - 1] == b'/' && s[end - 2] == b'*' {
            // A comment ends here: find where it starts.
            match s[..end - 2].windows(2).rposition(|w| w == b"/*") {
                Some(p) => end = p,
                None => return end,
            }
            continue;
        }
        return end;
    }
}

fn find_bytes(hay: &[u8], needle: &[u8]) -> Option<usize> {
    super::super::search::find(hay, needle)
}
