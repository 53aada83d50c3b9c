//! A configure push as a peer sends it (`agent::Agent::configure_json`, the path every transport
//! uses: the `--max-config-bytes` check, then the compiler thread under `--config-timeout`), with
//! schema paths chosen among hostile files (a FIFO nobody writes, `/dev/zero`, a directory, a
//! missing path, a file over `--max-schema-bytes`, a JSON file that is not a schema and holds a
//! secret, a real schema) and custom pattern lists of arbitrary count and size.
//!
//! Checked: every push is answered within the compile timeout (never blocked by a file); a
//! rejection leaves the running policy; a schema file error is the one fixed message whatever the
//! cause (it never says whether the path exists, never echoes the file); pattern lists over the
//! count or byte limits are rejected by those limits; an accepted push is idempotent.

#![no_main]

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sentinel_ws_agent::compiler::{DEFAULT_MAX_CUSTOM_PATTERNS, DEFAULT_MAX_CUSTOM_PATTERN_BYTES};
use sentinel_ws_agent::options::PolicyOptions;
use sentinel_ws_agent::policy::ConfigureOutcome;
use serde_json::{json, Map, Value};

const SECRET: &str = "fuzz-secret-4b1d";

/// The hostile files, created once per process.
fn paths() -> &'static Vec<PathBuf> {
    static PATHS: OnceLock<Vec<PathBuf>> = OnceLock::new();
    PATHS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("configure-push-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let fifo = dir.join("fifo");
        let _ = std::process::Command::new("mkfifo").arg(&fifo).status();
        let secret = dir.join("secret.json");
        let _ = std::fs::write(&secret, format!("{{\"type\": \"{SECRET}\"}}"));
        let big = dir.join("big.json");
        let _ = std::fs::write(&big, vec![b' '; 2 * 1024 * 1024]);
        let good = dir.join("good.json");
        let _ = std::fs::write(&good, br#"{"type": "object"}"#);
        vec![
            fifo,
            PathBuf::from("/dev/zero"),
            dir.clone(),
            dir.join("missing.json"),
            big,
            secret,
            good,
        ]
    })
}

fn patterns(input: &mut common::Cursor<'_>) -> Value {
    let count = match input.u8() % 4 {
        0 => usize::from(input.u8() % 8),
        1 => DEFAULT_MAX_CUSTOM_PATTERNS + usize::from(input.u8() % 3),
        2 => usize::from(input.u16() % 600),
        _ => 1,
    };
    let repeat = match input.u8() % 3 {
        0 => 1,
        1 => usize::from(input.u16() % 2048),
        _ => DEFAULT_MAX_CUSTOM_PATTERN_BYTES / count.max(1) + 1,
    };
    let unit = String::from_utf8_lossy(input.short()).into_owned();
    let pattern = if unit.is_empty() {
        format!("x{{{}}}", input.u16() % 2000)
    } else {
        unit.repeat(repeat.min(4096))
    };
    Value::Array(vec![Value::String(pattern); count])
}

fn config(input: &mut common::Cursor<'_>) -> Value {
    let mut object = Map::new();
    for _ in 0..(input.u8() % 4) {
        match input.u8() % 5 {
            0 | 1 => {
                let key = ["json-schema", "msgpack-schema"][usize::from(input.u8() % 2)];
                let path = &paths()[usize::from(input.u8()) % paths().len()];
                object.insert(key.into(), json!(path));
                if key == "msgpack-schema" {
                    object.insert("msgpack-validation".into(), json!(true));
                }
            }
            2 | 3 => {
                object.insert("custom-patterns".into(), patterns(input));
            }
            _ => {
                object.insert("block-mode".into(), json!(input.bool()));
            }
        }
    }
    Value::Object(object)
}

fuzz_target!(|data: &[u8]| {
    let mut input = common::Cursor::new(data);
    let config = config(&mut input);
    let text = serde_json::to_string(&config).expect("serializes");
    common::runtime().block_on(common::with_agent(PolicyOptions::default(), |context| async move {
        let agent = context.agent;
        let before = agent.policy().generation();
        let started = Instant::now();
        let result = agent.configure_json(&text).await;
        assert!(
            started.elapsed() < Duration::from_secs(7),
            "a push took {:?}",
            started.elapsed()
        );
        match result {
            Err(error) => {
                assert_eq!(agent.policy().generation(), before);
                let message = error.to_string();
                assert!(!message.contains(SECRET), "{message}");
                assert!(message.len() <= 2048, "{} bytes", message.len());
                if message.contains("schema file") {
                    assert!(
                        message.ends_with(
                            "schema file rejected: not a readable regular file of at most 1048576 bytes holding a JSON Schema"
                        ),
                        "{message}"
                    );
                }
                let patterns = config
                    .get("custom-patterns")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                if patterns > DEFAULT_MAX_CUSTOM_PATTERNS {
                    // Rejected by the pattern limits, a schema, or the whole push's size first.
                    assert!(
                        message.contains("custom-patterns")
                            || message.contains("schema")
                            || message.contains("--max-config-bytes"),
                        "{message}"
                    );
                }
            }
            Ok(_) => {
                let generation = agent.policy().generation();
                assert_eq!(
                    agent.configure_json(&text).await.ok(),
                    Some(ConfigureOutcome::Unchanged)
                );
                assert_eq!(agent.policy().generation(), generation);
            }
        }
    }));
});
