//! Small helpers for putting untrusted text into logs and reasons without letting it grow unbounded.
//! [`for_log`] is the one way an untrusted string reaches a log line, in every log format.

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

/// Input bytes of an untrusted value shown in a log line; the rest is counted, not shown.
pub const LOG_VALUE_MAX_BYTES: usize = 256;

/// An untrusted value as it may appear in a log line: see [`for_log`].
#[derive(Clone, Copy)]
pub struct ForLog<'a>(&'a [u8]);

/// `value` made safe for a log line, in any log format: at most [`LOG_VALUE_MAX_BYTES`] bytes of
/// it are shown and the rest counted (`…(+N bytes)`); control characters (CR, LF, ESC, the C1
/// range, DEL), Unicode line and paragraph separators and bidirectional overrides are written as
/// `\u{..}`, bytes that are not UTF-8 as `\xNN`, and a backslash as `\\`, so that a value can
/// neither start a line of its own, nor move the cursor, nor pass for an escape it is not.
pub fn for_log<T: AsRef<[u8]> + ?Sized>(value: &T) -> ForLog<'_> {
    ForLog(value.as_ref())
}

impl std::fmt::Display for ForLog<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut end = self.0.len().min(LOG_VALUE_MAX_BYTES);
        // Cut before a character the limit would split, not inside it.
        let floor = end.saturating_sub(3);
        while end > floor && end < self.0.len() && self.0[end] & 0xc0 == 0x80 {
            end -= 1;
        }
        let shown = &self.0[..end];
        for chunk in shown.utf8_chunks() {
            for c in chunk.valid().chars() {
                match c {
                    '\\' => f.write_str("\\\\")?,
                    c if needs_escape(c) => write!(f, "\\u{{{:x}}}", u32::from(c))?,
                    c => f.write_char(c)?,
                }
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        if self.0.len() > shown.len() {
            write!(f, "…(+{} bytes)", self.0.len() - shown.len())?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for ForLog<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "\"{self}\"")
    }
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{061c}'
        )
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn for_log_escapes_line_breaks_terminal_sequences_and_cuts() {
        let forged = "a\r\n2030-02-03T04:05:06Z  INFO x: forged\u{1b}]0;title\u{7}\u{1b}[31m";
        let shown = for_log(forged).to_string();
        assert!(!shown.contains('\n') && !shown.contains('\r') && !shown.contains('\u{1b}'));
        assert!(shown.starts_with("a\\u{d}\\u{a}2030"), "{shown}");
        assert!(shown.contains("\\u{1b}]0;title\\u{7}"), "{shown}");
        assert_eq!(for_log(b"x\xff\\y".as_slice()).to_string(), "x\\xff\\\\y");
        assert_eq!(
            for_log("\u{202e}abc\u{2028}").to_string(),
            "\\u{202e}abc\\u{2028}"
        );
        let long = "é".repeat(300);
        let shown = for_log(&long).to_string();
        assert!(shown.ends_with("…(+344 bytes)"), "{shown}");
        assert!(shown.len() < 300, "{}", shown.len());
        assert_eq!(for_log("plain ü text").to_string(), "plain ü text");
    }

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
