//! How text that is not valid UTF-8 is read for inspection (`--invalid-utf8 inspect`): like
//! `String::from_utf8_lossy`, except that overlong encodings of the characters markup and quoting
//! hinge on (`<`, `>`, `'`, `"`, e.g. `C0 BC` for `<`) are read as those characters, because
//! lenient decoders behind the proxy read them so. Every other invalid sequence becomes U+FFFD.

use std::borrow::Cow;

/// Characters whose overlong forms are read as themselves.
const SIGNIFICANT: &[u8] = b"<>'\"";

/// `data` as text for the detectors: borrowed when it is valid UTF-8.
pub fn read_text(data: &[u8]) -> Cow<'_, str> {
    let first = match std::str::from_utf8(data) {
        Ok(text) => return Cow::Borrowed(text),
        Err(first) => first,
    };
    let mut out = String::with_capacity(data.len() + 8);
    let mut rest = data;
    let mut error = Some(first);
    loop {
        let Some(e) = error else {
            out.push_str(&String::from_utf8_lossy(rest));
            break;
        };
        let (valid, after) = rest.split_at(e.valid_up_to());
        out.push_str(&String::from_utf8_lossy(valid));
        match overlong(after) {
            Some((c, used)) => {
                out.push(char::from(c));
                rest = &after[used..];
            }
            None => {
                out.push('\u{fffd}');
                rest = &after[e.error_len().unwrap_or(after.len()).max(1).min(after.len())..];
            }
        }
        if rest.is_empty() {
            break;
        }
        error = std::str::from_utf8(rest).err();
    }
    Cow::Owned(out)
}

/// An overlong encoding of a [`SIGNIFICANT`] character at the start of `bytes`: the character and
/// the bytes it took.
fn overlong(bytes: &[u8]) -> Option<(u8, usize)> {
    let continuation = |i: usize| bytes.get(i).filter(|b| *b & 0xc0 == 0x80).map(|b| b & 0x3f);
    let (value, used) = match *bytes.first()? {
        lead @ (0xc0 | 0xc1) => (
            (u32::from(lead & 0x1f) << 6) | u32::from(continuation(1)?),
            2,
        ),
        0xe0 => {
            let (a, b) = (continuation(1)?, continuation(2)?);
            ((u32::from(a) << 6) | u32::from(b), 3)
        }
        0xf0 => {
            let (a, b, c) = (continuation(1)?, continuation(2)?, continuation(3)?);
            ((u32::from(a) << 12) | (u32::from(b) << 6) | u32::from(c), 4)
        }
        _ => return None,
    };
    let byte = u8::try_from(value).ok()?;
    SIGNIFICANT.contains(&byte).then_some((byte, used))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_text_is_borrowed() {
        assert!(matches!(
            read_text("héllo".as_bytes()),
            Cow::Borrowed("héllo")
        ));
    }

    #[test]
    fn overlong_markup_and_quotes_read_as_themselves() {
        assert_eq!(read_text(b"\xc0\xbcimg src=x\xc0\xbe"), "<img src=x>");
        assert_eq!(
            read_text(b"name=\xc0\xa7 or \xe0\x80\xa21"),
            "name=' or \"1"
        );
        assert_eq!(read_text(b"\xf0\x80\x80\xbcb\xf0\x80\x80\xbe"), "<b>");
    }

    #[test]
    fn other_invalid_bytes_become_replacement_characters() {
        assert_eq!(read_text(b"a\xc0\xafb"), "a\u{fffd}\u{fffd}b");
        assert_eq!(read_text(b"x\xff"), "x\u{fffd}");
        assert_eq!(read_text(b"\xc0"), "\u{fffd}");
        assert_eq!(read_text(b"ok \xe2\x82"), "ok \u{fffd}");
    }

    #[test]
    fn never_panics_and_never_grows_much_on_pseudo_random_bytes() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..2000 {
            let mut bytes = Vec::new();
            for _ in 0..(seed % 17) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                bytes.push((seed >> 24) as u8);
            }
            let text = read_text(&bytes);
            assert!(text.chars().count() <= bytes.len());
        }
    }
}
