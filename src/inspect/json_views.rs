//! JSON-aware views: when a text message is a JSON document, every object key and string value is
//! decoded (escapes resolved) into one buffer, so each can be inspected on its own. The scanner is
//! iterative (an explicit container stack, no recursion), validates as it goes and gives up on
//! anything that is not JSON, leaving the raw views to do the work.

/// Deepest nesting accepted; deeper documents are treated as not JSON (the raw views still run).
const MAX_DEPTH: usize = 256;

/// Decoded strings of one JSON document: `buf[spans[k].0..spans[k].1]` is the k-th string.
#[derive(Debug, Default)]
pub struct JsonStrings {
    /// Decoded UTF-8 bytes of every string, back to back.
    pub buf: Vec<u8>,
    /// Byte ranges of the strings in `buf`.
    pub spans: Vec<(usize, usize)>,
    /// `keys[k]`: string k is an object key (a field name), not a value.
    pub keys: Vec<bool>,
    stack: Vec<u8>,
}

impl JsonStrings {
    /// Clears the previous document.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.spans.clear();
        self.keys.clear();
        self.stack.clear();
    }

    /// Parses `text`; returns true (with strings filled in) when it is a JSON object or array.
    /// On false the contents are unspecified and must be ignored.
    pub fn extract(&mut self, text: &[u8]) -> bool {
        self.clear();
        let mut p = Parser { s: text, i: 0 };
        p.ws();
        if !matches!(p.peek(), Some(b'{' | b'[')) {
            return false;
        }
        // Expecting: a value (V), or after a value: `,` / closer (A); in objects a key (K) then
        // `:`.
        #[derive(PartialEq)]
        enum Want {
            Value,
            After,
            KeyOrClose,
            Key,
        }
        let mut want = Want::Value;
        loop {
            p.ws();
            let Some(c) = p.peek() else {
                return self.stack.is_empty() && want == Want::After;
            };
            match want {
                Want::Value => {
                    match c {
                        b'{' | b'[' => {
                            if self.stack.len() >= MAX_DEPTH {
                                return false;
                            }
                            self.stack.push(c);
                            p.i += 1;
                            want = if c == b'{' {
                                Want::KeyOrClose
                            } else {
                                p.ws();
                                if p.peek() == Some(b']') {
                                    p.i += 1;
                                    self.stack.pop();
                                    Want::After
                                } else {
                                    Want::Value
                                }
                            };
                            continue;
                        }
                        b'"' => {
                            if !self.string(&mut p) {
                                return false;
                            }
                        }
                        b'-' | b'0'..=b'9' => {
                            if !p.number() {
                                return false;
                            }
                        }
                        b't' => {
                            if !p.literal(b"true") {
                                return false;
                            }
                        }
                        b'f' => {
                            if !p.literal(b"false") {
                                return false;
                            }
                        }
                        b'n' => {
                            if !p.literal(b"null") {
                                return false;
                            }
                        }
                        _ => return false,
                    }
                    want = Want::After;
                }
                Want::After => {
                    if self.stack.is_empty() {
                        return false; // trailing garbage
                    }
                    let top = *self.stack.last().unwrap_or(&b'[');
                    p.i += 1;
                    match (c, top) {
                        (b',', b'{') => want = Want::Key,
                        (b',', _) => want = Want::Value,
                        (b'}', b'{') | (b']', b'[') => {
                            self.stack.pop();
                            want = Want::After;
                        }
                        _ => return false,
                    }
                }
                Want::KeyOrClose | Want::Key => {
                    if c == b'}' && want == Want::KeyOrClose {
                        p.i += 1;
                        self.stack.pop();
                        want = Want::After;
                        continue;
                    }
                    if c != b'"' || !self.string(&mut p) {
                        return false;
                    }
                    if let Some(key) = self.keys.last_mut() {
                        *key = true;
                    }
                    p.ws();
                    if p.peek() != Some(b':') {
                        return false;
                    }
                    p.i += 1;
                    want = Want::Value;
                }
            }
        }
    }

    /// Decodes the string at `p` (on its opening quote) into `buf` and records its span.
    fn string(&mut self, p: &mut Parser<'_>) -> bool {
        let start = self.buf.len();
        p.i += 1;
        loop {
            // Copy the run of plain bytes in one go.
            let run_start = p.i;
            while let Some(&c) = p.s.get(p.i) {
                if c == b'"' || c == b'\\' || c < 0x20 {
                    break;
                }
                p.i += 1;
            }
            self.buf.extend_from_slice(&p.s[run_start..p.i]);
            match p.s.get(p.i) {
                Some(b'"') => {
                    p.i += 1;
                    self.spans.push((start, self.buf.len()));
                    self.keys.push(false);
                    return true;
                }
                Some(b'\\') => {
                    let Some(&e) = p.s.get(p.i + 1) else {
                        return false;
                    };
                    p.i += 2;
                    let simple = match e {
                        b'"' => b'"',
                        b'\\' => b'\\',
                        b'/' => b'/',
                        b'b' => 0x08,
                        b'f' => 0x0c,
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'u' => {
                            let Some(mut cp) = p.hex4() else {
                                return false;
                            };
                            if (0xd800..0xdc00).contains(&cp) {
                                // A high surrogate: combine with a following low one if present.
                                if p.s.get(p.i) == Some(&b'\\') && p.s.get(p.i + 1) == Some(&b'u') {
                                    let save = p.i;
                                    p.i += 2;
                                    match p.hex4() {
                                        Some(lo) if (0xdc00..0xe000).contains(&lo) => {
                                            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                                        }
                                        _ => p.i = save,
                                    }
                                }
                            }
                            let c = char::from_u32(cp).unwrap_or('\u{fffd}');
                            let mut tmp = [0u8; 4];
                            self.buf
                                .extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
                            continue;
                        }
                        _ => return false,
                    };
                    self.buf.push(simple);
                }
                _ => return false, // end of input or raw control character
            }
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        if self.s.get(self.i..self.i + word.len()) == Some(word) {
            self.i += word.len();
            true
        } else {
            false
        }
    }

    fn number(&mut self) -> bool {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        let digits = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        if self.i == digits {
            return false;
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            let frac = self.i;
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.i += 1;
            }
            if self.i == frac {
                return false;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            let exp = self.i;
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.i += 1;
            }
            if self.i == exp {
                return false;
            }
        }
        self.i > start
    }

    fn hex4(&mut self) -> Option<u32> {
        let mut v = 0u32;
        for k in 0..4 {
            let c = *self.s.get(self.i + k)?;
            v = v * 16 + (c as char).to_digit(16)?;
        }
        self.i += 4;
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(text: &str) -> Option<Vec<String>> {
        let mut j = JsonStrings::default();
        if !j.extract(text.as_bytes()) {
            return None;
        }
        Some(
            j.spans
                .iter()
                .map(|&(a, b)| String::from_utf8_lossy(&j.buf[a..b]).into_owned())
                .collect(),
        )
    }

    #[test]
    fn marks_which_strings_are_keys() {
        let mut j = JsonStrings::default();
        assert!(j.extract(br#"{"a":"b","c":["d",{"e":"f"}]}"#));
        assert_eq!(j.keys, [true, false, true, false, true, false]);
    }

    #[test]
    fn extracts_keys_and_values() {
        assert_eq!(
            strings(
                r#"{"type":"message","data":{"text":"\u003cscript\u003e","n":[1,true,null,-2.5e3]}}"#
            ),
            Some(vec![
                "type".into(),
                "message".into(),
                "data".into(),
                "text".into(),
                "<script>".into(),
                "n".into()
            ])
        );
        assert_eq!(strings("[]"), Some(vec![]));
        assert_eq!(strings(r#"["\ud83d\ude00"]"#), Some(vec!["😀".into()]));
    }

    #[test]
    fn rejects_non_json() {
        for t in [
            "hello",
            "{",
            "[1,]",
            "{\"a\"}",
            "[1] x",
            "\"str\"",
            "{\"a\":1,}",
            "[\"\\q\"]",
        ] {
            assert_eq!(strings(t), None, "{t}");
        }
        let deep = "[".repeat(100_000);
        assert_eq!(strings(&deep), None);
    }
}
