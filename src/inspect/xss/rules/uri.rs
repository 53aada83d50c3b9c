//! URI rules: schemes that run script or carry a document (`javascript:`, `data:text/html`), and
//! `http(s)` URLs whose host is disguised.

use super::super::text::{skip_ws, starts_with_loose};

/// The length of a dangerous URI scheme at the start of `v` (after leading spaces and controls).
pub(in crate::inspect::xss) fn dangerous_scheme(v: &[u8]) -> Option<usize> {
    let start = v
        .iter()
        .position(|&b| !(b <= b' ' || b >= 0x80 || b == b'"' || b == b'\''))
        .unwrap_or(v.len());
    let v = &v[start..];
    for scheme in [&b"javascript:"[..], b"vbscript:", b"livescript:", b"mocha:"] {
        if starts_with_loose(v, scheme) {
            return Some(start + scheme.len());
        }
    }
    for scheme in [
        &b"data:text/html"[..],
        b"data:image/svg",
        b"data:application/x",
        b"data:text/xml",
        b"data:application/xhtml",
        b"data:text/javascript",
        b"data:application/javascript",
    ] {
        if starts_with_loose(v, scheme) {
            return Some(start + scheme.len());
        }
    }
    None
}

/// An `http(s)://` URL whose host hides what it is: a bare 32-bit number, hexadecimal or
/// zero-padded octal parts, or a user-info part that looks like a host (`http://a.com@b`).
pub(in crate::inspect::xss) fn obfuscated_url(v: &[u8]) -> bool {
    let v = skip_ws(v);
    let rest = if let Some(r) = v.strip_prefix(b"http://") {
        r
    } else if let Some(r) = v.strip_prefix(b"https://") {
        r
    } else {
        return false;
    };
    let end = rest
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#' | b'"' | b'\'' | b' '))
        .unwrap_or(rest.len());
    let authority = &rest[..end];
    if let Some(at) = authority.iter().position(|&b| b == b'@') {
        // `http://trusted.com@evil`: the part before `@` is a user name dressed as a host.
        return authority[..at].contains(&b'.');
    }
    let host = authority
        .iter()
        .position(|&b| b == b':')
        .map_or(authority, |p| &authority[..p]);
    if host.len() >= 8 && host.iter().all(u8::is_ascii_digit) {
        return true;
    }
    host.split(|&b| b == b'.').any(|part| {
        part.starts_with(b"0x") && part.len() > 2
            || part.len() > 1 && part[0] == b'0' && part.iter().all(u8::is_ascii_digit)
    }) && host
        .iter()
        .all(|b| b.is_ascii_hexdigit() || matches!(b, b'.' | b'x'))
}
