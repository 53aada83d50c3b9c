//! Text-message validation (`--json-schema`): the strict JSON parser (`validate::json_schema::
//! parse_strict`) and validation with reason codes, on arbitrary bytes, against a few schemas.
//!
//! Checked: no panic, no deep recursion; `parse_strict` accepts exactly what `serde_json` accepts
//! minus documents with a duplicate key (and gives the same value); its errors are classified
//! truthfully; a message that fails a schema gets 1 to 4 reason codes of at most 120 bytes whose
//! path segments are array indices, `*`, or names the schema itself contains, so a reason code
//! never repeats what the sender wrote.

#![no_main]

use std::collections::HashSet;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sentinel_ws_agent::options::{PolicyOptions, SchemaSource};
use sentinel_ws_agent::validate::json_schema::{parse_strict, JsonError};
use sentinel_ws_agent::validate::{Validator, MAX_REASON_CODES};
use serde_json::{json, Value};

struct Case {
    validator: Validator,
    /// Every string of the schema document, as it would appear in a JSON pointer.
    names: HashSet<String>,
}

fn schemas() -> Vec<Value> {
    vec![
        json!({
            "type": "object",
            "required": ["action", "symbol", "quantity"],
            "additionalProperties": false,
            "properties": {
                "action": {"enum": ["buy", "sell", "cancel"]},
                "symbol": {"type": "string", "pattern": "^[A-Z]{1,5}$", "maxLength": 5},
                "quantity": {"type": "integer", "minimum": 1, "multipleOf": 1},
                "a/b~c": {"type": "boolean"},
                "legs": {"type": "array", "maxItems": 3, "items": {"type": "object",
                    "properties": {"price": {"type": "number", "exclusiveMinimum": 0}}}},
                "tags": {"type": "object", "propertyNames": {"maxLength": 8},
                    "additionalProperties": {"type": "string"}}
            },
            "dependentRequired": {"legs": ["symbol"]}
        }),
        json!({"type": ["array", "integer", "string"], "items": {"$ref": "#"}, "minLength": 1,
               "uniqueItems": true}),
        json!({"$schema": "http://json-schema.org/draft-07/schema#",
               "oneOf": [{"type": "object", "required": ["t"], "properties": {"t": {"const": "chat"}}},
                         {"type": "array", "contains": {"type": "null"}}],
               "not": {"type": "object", "required": ["admin"]}}),
    ]
}

fn cases() -> &'static [Case] {
    static CASES: OnceLock<Vec<Case>> = OnceLock::new();
    CASES.get_or_init(|| {
        schemas()
            .into_iter()
            .map(|schema| {
                let mut names = HashSet::new();
                let mut stack = vec![&schema];
                while let Some(v) = stack.pop() {
                    match v {
                        Value::String(s) => {
                            names.insert(s.replace('~', "~0").replace('/', "~1"));
                        }
                        Value::Array(items) => stack.extend(items),
                        Value::Object(map) => {
                            for (k, v) in map {
                                names.insert(k.replace('~', "~0").replace('/', "~1"));
                                stack.push(v);
                            }
                        }
                        _ => {}
                    }
                }
                let Value::Object(object) = schema else {
                    unreachable!()
                };
                let validator = Validator::new(&PolicyOptions {
                    json_schema: Some(SchemaSource::Inline(object)),
                    ..PolicyOptions::default()
                })
                .expect("the schema compiles");
                Case { validator, names }
            })
            .collect()
    })
}

fn check_code(code: &str, names: &HashSet<String>) {
    assert!(code.len() <= 120, "reason code of {} bytes", code.len());
    let (path, keyword) = code.rsplit_once(": ").expect("`path: keyword`");
    assert!(
        !keyword.is_empty()
            && keyword
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'$' || b == b'-'),
        "{code}"
    );
    if matches!(path, "json" | "msgpack") {
        return;
    }
    assert!(path.starts_with('/'), "{code}");
    let (path, cut) = match path.strip_suffix('…') {
        Some(p) => (p, true),
        None => (path, false),
    };
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        let ok = segment.is_empty() && segments.len() == 1
            || *segment == "*"
            || (!segment.is_empty()
                && segment.len() <= 10
                && segment.bytes().all(|b| b.is_ascii_digit()))
            || names.contains(*segment)
            || (cut
                && last
                && (segment.is_empty()
                    || names.iter().any(|n| n.starts_with(*segment))
                    || segment.bytes().all(|b| b.is_ascii_digit())
                    || "*".starts_with(*segment)));
        assert!(ok, "segment {segment:?} of {code:?} is not the schema's");
    }
}

fuzz_target!(|data: &[u8]| {
    let strict = parse_strict(data);
    let loose: Result<Value, _> = serde_json::from_slice(data);
    match (&strict, &loose) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        // A duplicate key is reported where it is found, even if a syntax error follows.
        (Err(JsonError::DuplicateKey), _) => {}
        (Err(JsonError::TooDeep), Err(e)) => {
            assert!(e.to_string().contains("recursion limit"), "{e}")
        }
        (Err(JsonError::Syntax), Err(e)) => {
            assert!(!e.to_string().contains("recursion limit"), "{e}")
        }
        (Ok(_), Err(e)) => panic!("strict parser accepted what serde_json refuses: {e}"),
        (Err(e), Ok(_)) => panic!("strict parser refused ({e:?}) a document without duplicates"),
    }
    for case in cases() {
        match case.validator.check_text(data) {
            Ok(()) => assert!(strict.is_ok()),
            Err(invalid) => {
                assert!(!invalid.reason_codes.is_empty());
                assert!(invalid.reason_codes.len() <= MAX_REASON_CODES);
                for code in &invalid.reason_codes {
                    check_code(&code.to_string(), &case.names);
                }
            }
        }
    }
});
