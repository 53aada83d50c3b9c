//! The normalization layers under the content detectors (`inspect::fuzzing`): the fold pass, the
//! decode pass with its cheap pre-check, and the JSON string views.
//!
//! Checked: no panic; neither pass ever makes a view longer than its input; the marks the fold
//! pass returns are exactly those of the bytes it wrote (detectors skip rules by them); a decode
//! pass that reports no change copied its input exactly; folding valid UTF-8 without U+FFFD gives
//! valid UTF-8; folding is idempotent; whenever the decode pass would change a folded view, the pre-check says so (or a
//! decoding layer would be skipped); and whenever `serde_json` accepts a message as an object or
//! array, the JSON views hold exactly the strings (keys and values, in order) a JSON parser sees,
//! so that an application's view of a JSON message is always inspected.

#![no_main]

use std::fmt;

use libfuzzer_sys::fuzz_target;
use sentinel_ws_agent::inspect::fuzzing::{decode, fold, has_decodable, marks, JsonStrings};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Collects every string of a JSON document (object keys included) in document order.
struct Collect<'a>(&'a mut Vec<String>);

impl<'de> DeserializeSeed<'de> for Collect<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Collect<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.0.push(v.to_owned());
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Collect(self.0))?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key_seed(Collect(self.0))?.is_some() {
            map.next_value_seed(Collect(self.0))?;
        }
        Ok(())
    }
}

fn serde_strings(data: &[u8]) -> Option<Vec<String>> {
    let mut strings = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(data);
    Collect(&mut strings).deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(strings)
}

fuzz_target!(|data: &[u8]| {
    // Fold.
    let mut folded = Vec::new();
    let folded_marks = fold(data, &mut folded);
    assert!(folded.len() <= data.len());
    // The detectors skip rules whose bytes the marks rule out: they must be exactly the view's.
    assert_eq!(
        folded_marks,
        marks(&folded),
        "fold's marks differ from the view's bytes"
    );
    // A run of U+FFFD (what invalid UTF-8 became) folds to one opaque non-ASCII byte on purpose.
    let replacement = "\u{fffd}".as_bytes();
    let has_replacement = data.windows(3).any(|w| w == replacement);
    if std::str::from_utf8(data).is_ok() && !has_replacement {
        assert!(std::str::from_utf8(&folded).is_ok(), "fold broke UTF-8");
        let mut again = Vec::new();
        fold(&folded, &mut again);
        assert_eq!(again, folded, "fold is not idempotent");
    }

    // Decode, on folded views as the inspector applies it.
    for plus_is_space in [false, true] {
        let mut decoded = Vec::new();
        let changed = decode(&folded, plus_is_space, &mut decoded);
        assert!(decoded.len() <= folded.len());
        if !changed {
            assert_eq!(decoded, folded);
        } else {
            assert!(
                has_decodable(&folded, folded_marks, plus_is_space),
                "the pre-check missed a decodable view"
            );
        }
    }

    // JSON views against a real JSON parser.
    let mut json = JsonStrings::default();
    let is_json = json.extract(data);
    if is_json {
        for &(a, b) in &json.spans {
            assert!(a <= b && b <= json.buf.len());
        }
    }
    let first = data.iter().find(|b| !b" \t\r\n".contains(b));
    if matches!(first, Some(b'{' | b'[')) {
        if let Some(strings) = serde_strings(data) {
            assert!(is_json, "a JSON document the views do not read");
            let ours: Vec<&[u8]> = json.spans.iter().map(|&(a, b)| &json.buf[a..b]).collect();
            let theirs: Vec<&[u8]> = strings.iter().map(|s| s.as_bytes()).collect();
            assert_eq!(ours, theirs, "the views differ from the parser's strings");
        }
    }
});
