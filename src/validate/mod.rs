//! Message validation: JSON Schema on text messages and MessagePack on binary messages. Owns the
//! policy's compiled schemas and the decision of what is validated when; the detector pipeline
//! calls [`Validator::check_text_in`] and [`Validator::check_msgpack`] on complete messages only.
//!
//! - `--json-schema`: a complete text message travelling in `--schema-direction` must be one JSON
//!   value (no duplicate keys) matching the schema.
//! - `--msgpack-validation`: a complete binary message in either direction must be one MessagePack
//!   value ([`msgpack`]); in `--schema-direction` it must also match `--msgpack-schema`, or the
//!   JSON schema when that is not given.
//! - `schema.client.text`, `schema.server.text`, `schema.client.binary`, `schema.server.binary`
//!   (policy file, configure push): a schema for one direction and message type; it replaces the
//!   two above for that direction and type, and a binary one decodes that direction's binary
//!   messages as MessagePack.
//!
//! A failure is a list of typed [`Reason`]s (see [`json_schema`] for a schema failure's), at most
//! [`MAX_REASON_CODES`] per message, none repeating the sender's data; each one's `Display` is
//! the reason code on the wire.

pub mod json_schema;
pub mod msgpack;

use std::borrow::Cow;
use std::sync::Arc;

use crate::compiler::CompileLimits;
use crate::model::Direction;
use crate::options::{PolicyOptions, SchemaDirection};

pub use json_schema::{JsonError, JsonSchema, SchemaReason};
pub use msgpack::{MsgpackError, MAX_DEPTH};

/// Most reason codes reported for one message.
pub const MAX_REASON_CODES: usize = 4;

/// A schema or validation setting that cannot be used; names the option and the file.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// The schema file cannot be read, or is not a JSON Schema. Unless the limits ask for
    /// details (start-up), the message is the same whatever the cause: a peer pushing paths must
    /// not learn which files exist or what they hold.
    #[error("{origin}: schema file rejected: not a readable regular file of at most {max} bytes holding a JSON Schema{}", detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    FileRejected {
        /// The option and path (`--json-schema /etc/x.json`), escaped for logs.
        origin: String,
        /// `--max-schema-bytes`.
        max: u64,
        /// What is wrong, only at start-up.
        detail: Option<String>,
    },
    /// The document is not a schema the validator accepts (or refers outside itself).
    #[error("{origin}: not a valid JSON Schema: {message}")]
    Schema {
        /// The option and path (or `json-schema (inline schema)`).
        origin: String,
        /// The compiler's explanation.
        message: String,
    },
    /// `--msgpack-schema` is set while MessagePack validation is off.
    #[error("--msgpack-schema (msgpack-schema) needs --msgpack-validation (msgpack-validation) to be on")]
    MsgpackSchemaWithoutValidation,
}

/// One reason a message failed validation. Its `Display` is the reason code on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// A text message is not acceptable JSON: `json: syntax`, `json: depth`, ...
    Json(JsonError),
    /// A binary message is not well-formed MessagePack: `msgpack: trailing-bytes`, ...
    Msgpack(MsgpackError),
    /// The value does not match its schema: `/quantity: minimum`.
    Schema(SchemaReason),
}

impl Reason {
    /// The reason code for a verdict's audit trail (only a schema reason allocates).
    pub fn into_code(self) -> Cow<'static, str> {
        match self {
            Reason::Json(error) => Cow::Borrowed(error.reason_code()),
            Reason::Msgpack(error) => Cow::Borrowed(error.reason_code()),
            Reason::Schema(reason) => Cow::Owned(reason.to_string()),
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Json(error) => f.write_str(error.reason_code()),
            Reason::Msgpack(error) => f.write_str(error.reason_code()),
            Reason::Schema(reason) => reason.fmt(f),
        }
    }
}

/// Why a message failed validation: its reasons (at least one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// At most [`MAX_REASON_CODES`], distinct.
    pub reason_codes: Vec<Reason>,
}

impl Invalid {
    fn one(reason: Reason) -> Self {
        Invalid {
            reason_codes: vec![reason],
        }
    }

    /// The reason codes as the wire writes them.
    pub fn codes(&self) -> Vec<String> {
        self.reason_codes.iter().map(Reason::to_string).collect()
    }
}

/// The compiled validators of one policy. Immutable and shared by every detector actor.
#[derive(Debug, Default)]
pub struct Validator {
    /// `--json-schema` as given (what [`Validator::check_text`] checks).
    json: Option<Arc<JsonSchema>>,
    /// The schema for complete text messages, per direction ([`Direction::index`]).
    text: [Option<Arc<JsonSchema>>; 2],
    /// Whether complete binary messages are decoded as MessagePack, per direction.
    msgpack: [bool; 2],
    /// The schema for decoded MessagePack messages, per direction.
    binary: [Option<Arc<JsonSchema>>; 2],
    direction: SchemaDirection,
}

const DIRECTIONS: [Direction; 2] = [Direction::ClientToServer, Direction::ServerToClient];

impl Validator {
    /// Reads and compiles the schemas the policy asks for, under the default limits.
    pub fn new(options: &PolicyOptions) -> Result<Self, ValidateError> {
        Self::with_limits(options, &CompileLimits::default().for_startup())
    }

    /// Reads (regular files of at most `--max-schema-bytes` only) and compiles the schemas the
    /// policy asks for. A `schema.<direction>.<type>` schema replaces `json-schema` (text) or
    /// `msgpack-schema` (binary) for its direction; a binary one decodes that direction's binary
    /// messages as MessagePack even when `msgpack-validation` is off.
    pub fn with_limits(
        options: &PolicyOptions,
        limits: &CompileLimits,
    ) -> Result<Self, ValidateError> {
        if options.msgpack_schema.is_some() && !options.msgpack_validation {
            return Err(ValidateError::MsgpackSchemaWithoutValidation);
        }
        let load = |option: &'static str, source: &crate::options::SchemaSource| {
            JsonSchema::load_bounded(option, source, limits).map(Arc::new)
        };
        let json = options
            .json_schema
            .as_ref()
            .map(|source| load("json-schema", source))
            .transpose()?;
        let msgpack_schema = match &options.msgpack_schema {
            Some(source) => Some(load("msgpack-schema", source)?),
            None if options.msgpack_validation => json.clone(),
            None => None,
        };
        let mut validator = Validator {
            json: json.clone(),
            direction: options.schema_direction,
            ..Validator::default()
        };
        for direction in DIRECTIONS {
            let index = direction.index();
            let applies = validator.schema_applies(direction);
            let own = options.schema.of(direction);
            let (text_key, binary_key) = match direction {
                Direction::ClientToServer => ("schema.client.text", "schema.client.binary"),
                Direction::ServerToClient => ("schema.server.text", "schema.server.binary"),
            };
            validator.text[index] = match &own.text {
                Some(source) => Some(load(text_key, source)?),
                None if applies => json.clone(),
                None => None,
            };
            validator.binary[index] = match &own.binary {
                Some(source) => Some(load(binary_key, source)?),
                None if applies => msgpack_schema.clone(),
                None => None,
            };
            validator.msgpack[index] = options.msgpack_validation || own.binary.is_some();
        }
        Ok(validator)
    }

    /// True when nothing is validated.
    pub fn is_empty(&self) -> bool {
        self.text.iter().all(Option::is_none) && !self.msgpack.iter().any(|m| *m)
    }

    /// True when `--schema-direction` covers messages travelling in `direction`.
    pub fn schema_applies(&self, direction: Direction) -> bool {
        matches!(
            (self.direction, direction),
            (SchemaDirection::Both, _)
                | (SchemaDirection::Client, Direction::ClientToServer)
                | (SchemaDirection::Server, Direction::ServerToClient)
        )
    }

    /// True when a complete text message travelling in `direction` is validated.
    pub fn validates_text(&self, direction: Direction) -> bool {
        self.text[direction.index()].is_some()
    }

    /// True when complete binary messages (of some direction) are decoded as MessagePack.
    pub fn validates_msgpack(&self) -> bool {
        self.msgpack.iter().any(|m| *m)
    }

    /// True when complete binary messages travelling in `direction` are decoded as MessagePack.
    pub fn validates_msgpack_in(&self, direction: Direction) -> bool {
        self.msgpack[direction.index()]
    }

    /// Validates a complete text message against `--json-schema` (everything passes without one).
    pub fn check_text(&self, data: &[u8]) -> Result<(), Invalid> {
        Self::check_json(self.json.as_deref(), data)
    }

    /// Validates a complete text message travelling in `direction` against that direction's text
    /// schema (everything passes when [`Validator::validates_text`] is false).
    pub fn check_text_in(&self, direction: Direction, data: &[u8]) -> Result<(), Invalid> {
        Self::check_json(self.text[direction.index()].as_deref(), data)
    }

    fn check_json(schema: Option<&JsonSchema>, data: &[u8]) -> Result<(), Invalid> {
        let Some(schema) = schema else {
            return Ok(());
        };
        let value = json_schema::parse_strict(data).map_err(|e| Invalid::one(Reason::Json(e)))?;
        check_value(schema, &value)
    }

    /// Decodes a complete binary message as MessagePack (when its direction decodes MessagePack)
    /// and, when a schema applies in `direction`, validates the decoded value. Every string of the
    /// message (keys too) is pushed onto `strings` for the content detectors, also when validation
    /// fails.
    pub fn check_msgpack<'a>(
        &self,
        data: &'a [u8],
        direction: Direction,
        strings: &mut Vec<&'a str>,
    ) -> Result<(), Invalid> {
        if !self.msgpack[direction.index()] {
            return Ok(());
        }
        msgpack::scan(data, strings).map_err(|e| Invalid::one(Reason::Msgpack(e)))?;
        let Some(schema) = &self.binary[direction.index()] else {
            return Ok(());
        };
        let value = msgpack::to_json(data).map_err(|e| Invalid::one(Reason::Msgpack(e)))?;
        check_value(schema, &value)
    }
}

fn check_value(schema: &JsonSchema, value: &serde_json::Value) -> Result<(), Invalid> {
    if schema.is_valid(value) {
        return Ok(());
    }
    let mut reasons = Vec::new();
    schema.reasons(value, MAX_REASON_CODES, &mut reasons);
    if reasons.is_empty() {
        reasons.push(SchemaReason::unexplained());
    }
    Err(Invalid {
        reason_codes: reasons.into_iter().map(Reason::Schema).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::SchemaSource;
    use serde_json::json;

    fn inline(schema: serde_json::Value) -> Option<SchemaSource> {
        let serde_json::Value::Object(object) = schema else {
            panic!("object schema")
        };
        Some(SchemaSource::Inline(object))
    }

    #[test]
    fn nothing_configured_is_empty() {
        let validator = Validator::new(&PolicyOptions::default()).unwrap();
        assert!(validator.is_empty());
        assert!(!validator.validates_text(Direction::ClientToServer));
        assert!(!validator.validates_msgpack());
    }

    #[test]
    fn schema_file_errors_name_option_file_and_problem() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.json");
        let options = PolicyOptions {
            json_schema: Some(SchemaSource::Path(missing.clone())),
            ..PolicyOptions::default()
        };
        let error = Validator::new(&options).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!(
                "--json-schema {}: schema file rejected",
                missing.display()
            )),
            "{error}"
        );

        let broken = dir.path().join("broken.json");
        std::fs::write(&broken, "{\"type\": ").unwrap();
        let options = PolicyOptions {
            msgpack_validation: true,
            msgpack_schema: Some(SchemaSource::Path(broken.clone())),
            ..PolicyOptions::default()
        };
        let error = Validator::new(&options).unwrap_err().to_string();
        assert!(
            error.contains(&format!("--msgpack-schema {}", broken.display())),
            "{error}"
        );
        assert!(
            error.contains("not valid JSON") && error.contains("line 1"),
            "{error}"
        );

        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, r#"{"type": "nonsense"}"#).unwrap();
        let options = PolicyOptions {
            json_schema: Some(SchemaSource::Path(bad.clone())),
            ..PolicyOptions::default()
        };
        let error = Validator::new(&options).unwrap_err().to_string();
        assert!(
            error.contains(&format!("--json-schema {}", bad.display())),
            "{error}"
        );
        assert!(error.contains("not a valid JSON Schema"), "{error}");

        let options = PolicyOptions {
            json_schema: inline(json!({"minimum": "one"})),
            ..PolicyOptions::default()
        };
        let error = Validator::new(&options).unwrap_err().to_string();
        assert!(
            error.starts_with("json-schema (inline schema): "),
            "{error}"
        );
    }

    #[test]
    fn msgpack_schema_needs_msgpack_validation() {
        let options = PolicyOptions {
            msgpack_schema: inline(json!({})),
            ..PolicyOptions::default()
        };
        let error = Validator::new(&options).unwrap_err().to_string();
        assert!(error.contains("msgpack-validation"), "{error}");
    }

    #[test]
    fn text_is_validated_in_the_schema_direction_only() {
        let options = PolicyOptions {
            json_schema: inline(json!({"type": "object", "required": ["a"]})),
            ..PolicyOptions::default()
        };
        let validator = Validator::new(&options).unwrap();
        assert!(validator.validates_text(Direction::ClientToServer));
        assert!(!validator.validates_text(Direction::ServerToClient));
        assert!(validator.check_text(br#"{"a":1}"#).is_ok());
        assert_eq!(
            validator.check_text(b"{}").unwrap_err().codes(),
            vec!["/a: required"]
        );
        assert_eq!(
            validator.check_text(b"{\"a\":").unwrap_err().codes(),
            vec!["json: syntax"]
        );
    }

    #[test]
    fn msgpack_uses_its_own_schema_or_the_json_one() {
        let order = [0x81, 0xa1, b'a', 0x01];
        let mut options = PolicyOptions {
            json_schema: inline(json!({"required": ["a"]})),
            msgpack_validation: true,
            schema_direction: SchemaDirection::Both,
            ..PolicyOptions::default()
        };
        let validator = Validator::new(&options).unwrap();
        let mut strings = Vec::new();
        assert!(validator
            .check_msgpack(&order, Direction::ServerToClient, &mut strings)
            .is_ok());
        assert_eq!(strings, vec!["a"]);

        options.msgpack_schema = inline(json!({"required": ["b"]}));
        let validator = Validator::new(&options).unwrap();
        let error = validator
            .check_msgpack(&order, Direction::ClientToServer, &mut Vec::new())
            .unwrap_err();
        assert_eq!(error.codes(), vec!["/b: required"]);
        // Well-formedness is checked in both directions, the schema only in its direction.
        options.schema_direction = SchemaDirection::Server;
        let validator = Validator::new(&options).unwrap();
        assert!(validator
            .check_msgpack(&order, Direction::ClientToServer, &mut Vec::new())
            .is_ok());
        let error = validator
            .check_msgpack(&[0xc0, 0xc0], Direction::ClientToServer, &mut Vec::new())
            .unwrap_err();
        assert_eq!(error.codes(), vec!["msgpack: trailing-bytes"]);
    }

    #[test]
    fn deepest_accepted_messages_validate_on_a_small_stack() {
        // A recursive schema walks every level; 128 (JSON) and 64 (MessagePack) levels must fit
        // comfortably in a 2 MiB stack (tokio's worker default), even in a debug build.
        let options = PolicyOptions {
            json_schema: inline(json!({
                "type": ["array", "integer"], "items": {"$ref": "#"}
            })),
            msgpack_validation: true,
            ..PolicyOptions::default()
        };
        let validator = Validator::new(&options).unwrap();
        std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || {
                let json = |levels: usize, leaf: &str| {
                    format!("{}{leaf}{}", "[".repeat(levels), "]".repeat(levels))
                };
                assert!(validator.check_text(json(127, "1").as_bytes()).is_ok());
                let error = validator
                    .check_text(json(127, "\"x\"").as_bytes())
                    .unwrap_err();
                let code = &error.codes()[0];
                assert!(
                    code.starts_with("/0/0/0/") && code.ends_with("…: type"),
                    "{code}"
                );
                assert!(code.len() <= 120, "{code}");
                assert_eq!(
                    validator.check_text(json(200, "1").as_bytes()).unwrap_err(),
                    Invalid::one(Reason::Json(JsonError::TooDeep))
                );
                let mut packed = vec![0x91; MAX_DEPTH];
                packed.push(0x01);
                let direction = Direction::ClientToServer;
                assert!(validator
                    .check_msgpack(&packed, direction, &mut Vec::new())
                    .is_ok());
                *packed.last_mut().unwrap() = 0xc0;
                assert!(validator
                    .check_msgpack(&packed, direction, &mut Vec::new())
                    .is_err());
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
