//! The configure-event path (`policy::SharedPolicy::configure`, i.e. `options::PolicyOptions::
//! patched` then `policy::Policy::compile`) with arbitrary JSON: raw text half the time, otherwise
//! an object of the agent's real option names with values of arbitrary types (inline schemas and
//! regular expressions included); then a few messages through `pipeline::evaluate` under the
//! resulting policy.
//!
//! Checked: no panic or stall; a rejected configuration leaves the running policy and its
//! generation untouched and its error names an option of the configuration (or the key it does
//! not know) in a bounded message; an accepted one is idempotent (pushing it again changes
//! nothing, as Zentinel pushes it on every pooled connection); whatever policy results inspects
//! and validates messages without panicking.

#![no_main]

mod common;

use std::sync::Arc;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sentinel_ws_agent::inspect::MessagePart;
use sentinel_ws_agent::limits::reassembly::MessageKind;
use sentinel_ws_agent::model::{Direction, Verdict};
use sentinel_ws_agent::options::PolicyOptions;
use sentinel_ws_agent::pipeline::{evaluate, InspectJob, PipelineScratch};
use sentinel_ws_agent::policy::{ConfigureOutcome, Policy, SharedPolicy};
use serde_json::{json, Map, Value};

const KEYS: [&str; 21] = [
    "xss-detection",
    "sqli-detection",
    "command-injection",
    "custom-patterns",
    "json-schema",
    "schema-direction",
    "msgpack-validation",
    "msgpack-schema",
    "max-messages-per-sec",
    "max-bytes-per-sec",
    "rate-limit-burst",
    "max-text-frame-size",
    "max-binary-frame-size",
    "max-message-size",
    "block-mode",
    "fail-open",
    "log-frames",
    "inspect-binary",
    "idle-timeout",
    "max-connections",
    "unknown-option",
];

fn value(input: &mut common::Cursor<'_>, key: &str) -> Value {
    match input.u8() % 12 {
        0 => Value::Null,
        1 => Value::Bool(input.bool()),
        2 => json!(input.u8()),
        3 => json!(input.u32()),
        4 => json!(-i64::from(input.u16())),
        5 => json!(f64::from(input.u16()) / 7.0),
        6 => json!(u64::MAX - u64::from(input.u8())),
        7 => Value::String(String::from_utf8_lossy(input.short()).into_owned()),
        8 => Value::Array(
            (0..input.u8() % 4)
                .map(|_| Value::String(String::from_utf8_lossy(input.short()).into_owned()))
                .collect(),
        ),
        9 => serde_json::from_slice(input.long()).unwrap_or(Value::Null),
        10 => match key {
            "schema-direction" => {
                json!(["client", "server", "both", "Both"][usize::from(input.u8()) % 4])
            }
            _ => json!(["true", "off", "1", "yes", "maybe"][usize::from(input.u8()) % 5]),
        },
        _ => {
            json!({"type": "object", "properties": {"a": {"type": "integer", "maximum": input.u8()}}})
        }
    }
}

fn config(input: &mut common::Cursor<'_>) -> Value {
    if input.u8() % 3 == 0 {
        return serde_json::from_slice(input.rest()).unwrap_or(Value::Null);
    }
    let mut object = Map::new();
    for _ in 0..input.u8() % 8 {
        let key = KEYS[usize::from(input.u8()) % KEYS.len()];
        let v = value(input, key);
        object.insert(key.to_string(), v);
    }
    Value::Object(object)
}

/// Keeps a schema given as a path from reading the fuzzer's choice of file.
fn no_files(config: &mut Value) {
    if let Value::Object(object) = config {
        for key in ["json-schema", "msgpack-schema"] {
            if let Some(v @ Value::String(_)) = object.get_mut(key) {
                *v = Value::String("/nonexistent/fuzz-schema.json".into());
            }
        }
        // `schema.<direction>.<type>` paths too.
        if let Some(Value::Object(directions)) = object.get_mut("schema") {
            for kinds in directions.values_mut() {
                if let Value::Object(kinds) = kinds {
                    for v in kinds.values_mut() {
                        if v.is_string() {
                            *v = Value::String("/nonexistent/fuzz-schema.json".into());
                        }
                    }
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = common::Cursor::new(data);
    let mut config = config(&mut input);
    no_files(&mut config);
    let baseline = PolicyOptions::default();
    let shared = SharedPolicy::new(Policy::compile(baseline.clone()).expect("defaults compile"));
    match shared.configure(&config) {
        Err(error) => {
            assert_eq!(shared.generation(), 0);
            assert_eq!(shared.load().options, baseline);
            let message = error.to_string();
            assert!(
                message.len() <= 2048,
                "an error message of {} bytes",
                message.len()
            );
            let keys: Vec<&str> = config
                .as_object()
                .map(|o| o.keys().map(String::as_str).collect())
                .unwrap_or_default();
            if config.is_object() {
                assert!(
                    keys.iter().any(
                        |k| message.contains(&sentinel_ws_agent::util::cut(k, 64).into_owned())
                    ) || message.contains("configuration"),
                    "the error names no key of the configuration: {message}"
                );
            }
        }
        Ok(outcome) => {
            let generation = shared.generation();
            assert_eq!(generation, u64::from(outcome == ConfigureOutcome::Applied));
            let options = shared.load().options.clone();
            assert_eq!(
                shared.configure(&config).ok(),
                Some(ConfigureOutcome::Unchanged)
            );
            assert_eq!(shared.generation(), generation);
            assert_eq!(options.patched(&config).as_ref(), Ok(&options));

            let policy: Arc<Policy> = shared.load();
            let mut scratch = PipelineScratch::default();
            let messages: [(MessageKind, &[u8]); 4] = [
                (
                    MessageKind::Text,
                    br#"{"a":5,"b":"<script>alert(1)</script>"}"#,
                ),
                (MessageKind::Text, b"hello ' or 1=1 --"),
                (
                    MessageKind::Binary,
                    &[0x82, 0xa1, b'a', 0x05, 0xa1, b'b', 0xa3, b'x', b'y', b'z'],
                ),
                (MessageKind::Binary, input.rest()),
            ];
            for (kind, data) in messages {
                for direction in [Direction::ClientToServer, Direction::ServerToClient] {
                    let job = InspectJob {
                        policy: Arc::clone(&policy),
                        kind,
                        part: MessagePart::Complete,
                        data: Bytes::copy_from_slice(data),
                        direction,
                        prior: Verdict::allow(),
                        whole_message: true,
                    };
                    let _ = evaluate(&job, &mut scratch);
                }
            }
        }
    }
});
