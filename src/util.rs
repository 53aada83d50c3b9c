//! Small helpers for putting untrusted text into logs and reasons without letting it grow unbounded.

use std::borrow::Cow;
use std::fmt::Write;

/// `text` cut to at most `max` bytes on a character boundary, with `…` appended when cut.
pub fn cut(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…", &text[..end]))
}

/// At most `max` bytes of `bytes`, printable ASCII kept and everything else escaped as `\xNN`,
/// so that a log line can never carry control characters or unbounded attacker data.
pub fn escaped_excerpt(bytes: &[u8], max: usize) -> String {
    let mut out = String::with_capacity(max.min(bytes.len()) + 8);
    for &b in bytes.iter().take(max) {
        match b {
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    if bytes.len() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_respects_char_boundaries() {
        assert_eq!(cut("héllo", 2), "h…");
        assert_eq!(cut("abc", 3), "abc");
    }

    #[test]
    fn excerpt_escapes_control_bytes_and_bounds_length() {
        assert_eq!(escaped_excerpt(b"a\nb\xff", 64), "a\\x0ab\\xff");
        assert_eq!(escaped_excerpt(&[b'x'; 100], 4), "xxxx…");
    }
}
