//! MessagePack decoding for `--msgpack-validation` (`validate::msgpack`) and the validator path
//! that uses it, on arbitrary bytes, against the `rmpv` reference decoder.
//!
//! Checked: no panic, no deep recursion, no blow-up; a message is accepted exactly when the
//! reference reads it as one value ending at the message's end, nested at most `MAX_DEPTH`
//! containers deep, with UTF-8 strings and no reserved byte; the strings handed to the detectors
//! are exactly its `str` values (map keys included, in message order), borrowed from the message;
//! `to_json` succeeds only on what `scan` accepts and fails there only for a duplicate or
//! over-long key; `decode` is `scan` then `to_json`; `Validator::check_msgpack` gives 1 to 4
//! reason codes of at most 120 bytes.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sentinel_ws_agent::model::Direction;
use sentinel_ws_agent::options::{PolicyOptions, SchemaDirection, SchemaSource};
use sentinel_ws_agent::validate::msgpack::{decode, scan, to_json, MsgpackError};
use sentinel_ws_agent::validate::{Validator, MAX_DEPTH};
use serde_json::Value;

/// Containers (arrays and objects) the deepest value is nested in, counted without recursion.
fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((v, d)) = stack.pop() {
        match v {
            Value::Array(items) => {
                deepest = deepest.max(d + 1);
                stack.extend(items.iter().map(|i| (i, d + 1)));
            }
            Value::Object(map) => {
                deepest = deepest.max(d + 1);
                stack.extend(map.values().map(|i| (i, d + 1)));
            }
            _ => {}
        }
    }
    deepest
}

fn validator() -> &'static Validator {
    static VALIDATOR: OnceLock<Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let Value::Object(schema) = serde_json::json!({
            "type": "object",
            "properties": {"id": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}}},
            "required": ["id"],
            "additionalProperties": {"type": ["string", "number", "null", "boolean"]}
        }) else {
            unreachable!()
        };
        Validator::new(&PolicyOptions {
            msgpack_validation: true,
            msgpack_schema: Some(SchemaSource::Inline(schema)),
            schema_direction: SchemaDirection::Client,
            ..PolicyOptions::default()
        })
        .expect("the schema compiles")
    })
}

fuzz_target!(|data: &[u8]| {
    let mut strings = Vec::new();
    let scanned = scan(data, &mut strings);
    let json = to_json(data);
    match (&scanned, &json) {
        (Ok(()), Ok(value)) => {
            assert!(depth(value) <= MAX_DEPTH, "nested deeper than MAX_DEPTH");
        }
        (Ok(()), Err(MsgpackError::DuplicateKey | MsgpackError::KeyTooLong)) => {}
        (Ok(()), Err(e)) => panic!("scan accepted what to_json refused: {e}"),
        (Err(_), Ok(_)) => panic!("to_json accepted what scan refused"),
        (Err(_), Err(_)) => {}
    }
    for s in &strings {
        let start = s.as_ptr() as usize;
        let base = data.as_ptr() as usize;
        assert!(
            start >= base && start + s.len() <= base + data.len(),
            "a string not borrowed from the message"
        );
    }

    // Against a reference decoder: the message is accepted exactly when it is one value that
    // ends at the message's end, nested at most MAX_DEPTH containers, with UTF-8 strings and no
    // reserved byte; and the detectors get its strings in message order.
    let mut reader = data;
    let reference = rmpv::decode::read_value_with_max_depth(&mut reader, 4096)
        .ok()
        .filter(|_| reader.is_empty());
    let expected = reference.as_ref().and_then(|value| {
        let mut strs = Vec::new();
        let mut deepest = 0;
        // Pre-order walk: (value, containers around it).
        let mut stack = vec![(value, 0usize)];
        while let Some((v, d)) = stack.pop() {
            match v {
                rmpv::Value::String(s) => strs.push(s.as_str()?.to_owned()),
                rmpv::Value::Array(items) => {
                    deepest = deepest.max(d + 1);
                    stack.extend(items.iter().rev().map(|i| (i, d + 1)));
                }
                rmpv::Value::Map(entries) => {
                    deepest = deepest.max(d + 1);
                    for (k, v) in entries.iter().rev() {
                        stack.push((v, d + 1));
                        stack.push((k, d + 1));
                    }
                }
                _ => {}
            }
        }
        (deepest <= MAX_DEPTH).then_some(strs)
    });
    match (&scanned, &expected) {
        (Ok(()), Some(strs)) => assert_eq!(&strings, strs, "strings differ from the message's"),
        (Err(e), None) => {
            if reference.is_some() {
                assert!(
                    matches!(
                        e,
                        MsgpackError::TooDeep | MsgpackError::InvalidUtf8 | MsgpackError::Reserved
                    ),
                    "{e}"
                );
            }
        }
        (Ok(()), None) => panic!("accepted what the reference refuses (or nested too deep)"),
        // The reference reads the reserved byte 0xc1 as nil; the agent refuses it.
        (Err(MsgpackError::Reserved), Some(_)) => assert!(data.contains(&0xc1)),
        (Err(e), Some(_)) => panic!("refused ({e}) a value the reference accepts"),
    }

    let mut decoded_strings = Vec::new();
    let decoded = decode(data, &mut decoded_strings);
    match (&decoded, &scanned, &json) {
        (Ok(a), Ok(()), Ok(b)) => assert_eq!(a, b),
        (Err(e), Err(s), _) => assert_eq!(e, s),
        (Err(e), Ok(()), Err(j)) => assert_eq!(e, j),
        other => panic!("decode disagrees with scan + to_json: {other:?}"),
    }
    assert_eq!(decoded_strings, strings);

    for direction in [Direction::ClientToServer, Direction::ServerToClient] {
        let mut seen = Vec::new();
        match validator().check_msgpack(data, direction, &mut seen) {
            Ok(()) => {
                assert!(scanned.is_ok());
                if direction == Direction::ClientToServer {
                    assert!(json.is_ok());
                }
            }
            Err(invalid) => {
                assert!(!invalid.reason_codes.is_empty() && invalid.reason_codes.len() <= 4);
                for code in invalid.codes() {
                    assert!(code.len() <= 120, "reason code too long: {code}");
                }
            }
        }
        assert_eq!(seen, strings);
    }
});
