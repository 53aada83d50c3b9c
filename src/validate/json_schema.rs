//! JSON Schema: loading and compiling one schema (from a file or inline), parsing a text message
//! strictly, and turning validation errors into reason codes that name the instance path and the
//! failed keyword without repeating what the sender wrote.
//!
//! A failure's reason is a [`SchemaReason`]: an instance path and the failed keyword, written
//! `/quantity: minimum`. A path segment is kept only when it is an array index or a property name
//! the schema itself declares (in `properties`, `required` or `dependentRequired`); any other
//! segment, which the sender chose, is written `*`. The root is `/`. For `required` the path ends
//! with the missing property.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use jsonschema::error::ValidationErrorKind;
use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::map::Entry;
use serde_json::{Map, Number, Value};

use super::ValidateError;
use crate::compiler::{read_regular_file, CompileLimits};
use crate::options::SchemaSource;

/// Longest reason code, in bytes.
const MAX_REASON_CODE_BYTES: usize = 120;
/// Longest array index kept in a reason code path (longer digit runs are written `*`).
const MAX_INDEX_DIGITS: usize = 10;

/// The keywords a failure can name (the validator's built-in ones; no custom keyword is
/// registered).
const KEYWORDS: [&str; 32] = [
    "additionalItems",
    "additionalProperties",
    "anyOf",
    "pattern",
    "const",
    "contains",
    "contentEncoding",
    "contentMediaType",
    "enum",
    "exclusiveMaximum",
    "exclusiveMinimum",
    "falseSchema",
    "format",
    "maxItems",
    "maximum",
    "maxLength",
    "maxProperties",
    "minItems",
    "minimum",
    "minLength",
    "minProperties",
    "multipleOf",
    "not",
    "oneOf",
    "propertyNames",
    "required",
    "type",
    "unevaluatedItems",
    "unevaluatedProperties",
    "uniqueItems",
    "$ref",
    SCHEMA_KEYWORD,
];

/// The keyword of a failure the validator does not explain (and of a keyword not in
/// [`KEYWORDS`]).
const SCHEMA_KEYWORD: &str = "schema";

/// Why a value does not match a schema, without anything the sender chose: where (the instance
/// path, at most [`MAX_REASON_CODE_BYTES`] with the keyword) and which keyword failed. Its
/// `Display` is the reason code on the wire: `/quantity: minimum`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaReason {
    /// `/`, `/quantity`, `/legs/0/price`, `/*/x`; cut (with `…`) to fit the code's bound.
    path: String,
    /// One of [`KEYWORDS`].
    keyword: &'static str,
}

impl SchemaReason {
    /// The reason of a failure the validator does not list: `/: schema`.
    pub fn unexplained() -> Self {
        SchemaReason {
            path: "/".to_string(),
            keyword: SCHEMA_KEYWORD,
        }
    }

    /// The instance path (segments the schema does not declare written `*`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The failed keyword (`minimum`, `required`, `type`, ...).
    pub fn keyword(&self) -> &'static str {
        self.keyword
    }
}

impl fmt::Display for SchemaReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.keyword)
    }
}

/// The validator's keyword as one of [`KEYWORDS`].
fn keyword_of(kind: &ValidationErrorKind) -> &'static str {
    let name = kind.keyword();
    KEYWORDS
        .iter()
        .find(|keyword| **keyword == name)
        .copied()
        .unwrap_or(SCHEMA_KEYWORD)
}

/// One compiled schema and the property names it declares.
pub struct JsonSchema {
    validator: jsonschema::Validator,
    declared: HashSet<String>,
}

impl fmt::Debug for JsonSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonSchema")
            .field("draft", &self.validator.draft())
            .field("declared", &self.declared.len())
            .finish_non_exhaustive()
    }
}

impl JsonSchema {
    /// Reads (for a path) and compiles a schema under the default limits, with detailed errors.
    /// `option` is the kebab-case option name (`json-schema`); errors name it and the file.
    pub fn load(option: &'static str, source: &SchemaSource) -> Result<Self, ValidateError> {
        Self::load_bounded(option, source, &CompileLimits::default().for_startup())
    }

    /// Reads (for a path: a regular file of at most `--max-schema-bytes`, never blocking) and
    /// compiles a schema. For a file, every problem (missing, not regular, too large, not JSON, not
    /// a schema) gives the same error unless `limits` asks for details: nothing of the file's
    /// content or existence reaches a peer that pushed the path.
    pub fn load_bounded(
        option: &'static str,
        source: &SchemaSource,
        limits: &CompileLimits,
    ) -> Result<Self, ValidateError> {
        match source {
            SchemaSource::Path(path) => {
                let rejected = |detail: String| ValidateError::FileRejected {
                    origin: format!(
                        "--{option} {}",
                        crate::util::for_log(path.as_os_str().as_encoded_bytes())
                    ),
                    max: limits.max_schema_bytes,
                    detail: limits
                        .detailed_file_errors
                        .then(|| crate::util::cut(&detail, 400).into_owned()),
                };
                let bytes = read_regular_file(path, limits.max_schema_bytes)
                    .map_err(|problem| rejected(problem.to_string()))?;
                let document: Value = serde_json::from_slice(&bytes)
                    .map_err(|error| rejected(format!("not valid JSON: {error}")))?;
                Self::compile(&document)
                    .map_err(|message| rejected(format!("not a valid JSON Schema: {message}")))
            }
            SchemaSource::Inline(object) => {
                Self::compile(&Value::Object(object.clone())).map_err(|message| {
                    ValidateError::Schema {
                        origin: format!("{option} (inline schema)"),
                        message,
                    }
                })
            }
        }
    }

    /// Compiles a schema document: the draft comes from `$schema` (2020-12 when absent); no
    /// reference outside the document is fetched.
    pub fn compile(document: &Value) -> Result<Self, String> {
        let validator = jsonschema::options()
            .offline()
            .build(document)
            .map_err(|error| {
                let path = error.instance_path().as_str();
                let message = if matches!(error.kind(), ValidationErrorKind::Referencing(_)) {
                    format!("a $ref cannot be resolved inside the document (nothing is fetched): {error}")
                } else if path.is_empty() {
                    error.to_string()
                } else {
                    format!("{error} (at {path})")
                };
                crate::util::cut(&message, 400).into_owned()
            })?;
        Ok(JsonSchema {
            validator,
            declared: declared_names(document),
        })
    }

    /// True when `instance` matches.
    pub fn is_valid(&self, instance: &Value) -> bool {
        self.validator.is_valid(instance)
    }

    /// Appends up to `max` distinct reasons why `instance` does not match.
    pub fn reasons(&self, instance: &Value, max: usize, out: &mut Vec<SchemaReason>) {
        let start = out.len();
        for error in self.validator.iter_errors(instance) {
            if out.len() - start >= max {
                break;
            }
            let reason = self.reason(error.instance_path().as_str(), error.kind());
            if !out[start..].contains(&reason) {
                out.push(reason);
            }
        }
    }

    /// The path and keyword of one failure, with every segment the schema does not declare
    /// written `*`.
    fn reason(&self, pointer: &str, kind: &ValidationErrorKind) -> SchemaReason {
        let mut code = String::new();
        for raw in pointer.split('/').skip(1) {
            code.push('/');
            if self.is_safe_segment(raw) {
                code.push_str(raw);
            } else {
                code.push('*');
            }
        }
        if let ValidationErrorKind::Required {
            property: Value::String(name),
        } = kind
        {
            if self.declared.contains(name.as_str()) {
                code.push('/');
                push_escaped(&mut code, name);
            }
        }
        if code.is_empty() {
            code.push('/');
        }
        // A long path is cut, never the keyword.
        let keyword = keyword_of(kind);
        let room = MAX_REASON_CODE_BYTES.saturating_sub(keyword.len() + 2 + '…'.len_utf8());
        if code.len() > room {
            code = crate::util::cut(&code, room).into_owned();
        }
        SchemaReason {
            path: code,
            keyword,
        }
    }

    /// An escaped JSON pointer segment that is an array index or a declared property name.
    fn is_safe_segment(&self, raw: &str) -> bool {
        if !raw.is_empty()
            && raw.len() <= MAX_INDEX_DIGITS
            && raw.bytes().all(|b| b.is_ascii_digit())
        {
            return true;
        }
        let name: Cow<'_, str> = if raw.contains('~') {
            Cow::Owned(raw.replace("~1", "/").replace("~0", "~"))
        } else {
            Cow::Borrowed(raw)
        };
        self.declared.contains(name.as_ref())
    }
}

fn push_escaped(out: &mut String, name: &str) {
    for c in name.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            c => out.push(c),
        }
    }
}

/// Every property name the schema declares, found without recursion.
fn declared_names(document: &Value) -> HashSet<String> {
    let mut names = HashSet::new();
    let mut stack = vec![document];
    while let Some(value) = stack.pop() {
        match value {
            Value::Object(object) => {
                for (key, child) in object {
                    match (key.as_str(), child) {
                        (
                            "properties" | "dependentRequired" | "dependentSchemas",
                            Value::Object(p),
                        ) => {
                            names.extend(p.keys().cloned());
                        }
                        ("required", Value::Array(required)) => {
                            names.extend(
                                required.iter().filter_map(Value::as_str).map(String::from),
                            );
                        }
                        _ => {}
                    }
                    stack.push(child);
                }
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    names
}

/// Why a text message is not acceptable JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// Not JSON (or not UTF-8, or text after the value).
    #[error("not valid JSON")]
    Syntax,
    /// Nested deeper than the parser's limit of 128.
    #[error("nested too deep")]
    TooDeep,
    /// An object has the same key twice.
    #[error("an object has the same key twice")]
    DuplicateKey,
}

impl JsonError {
    /// The reason code reported in the audit metadata.
    pub fn reason_code(self) -> &'static str {
        match self {
            JsonError::Syntax => "json: syntax",
            JsonError::TooDeep => "json: depth",
            JsonError::DuplicateKey => "json: duplicate-key",
        }
    }
}

const DUPLICATE_KEY: &str = "duplicate key";

/// Parses a text message as exactly one JSON value, refusing duplicate object keys (a schema must
/// not see a different object than the application, which may keep the first of two keys).
/// Nesting is limited to 128 levels by `serde_json`'s parser, which fails before recursing deeper.
pub fn parse_strict(data: &[u8]) -> Result<Value, JsonError> {
    let mut deserializer = serde_json::Deserializer::from_slice(data);
    let value = Strict
        .deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value))
        .map_err(|error| {
            if error.is_data() && error.to_string().starts_with(DUPLICATE_KEY) {
                JsonError::DuplicateKey
            } else if error.to_string().starts_with("recursion limit") {
                JsonError::TooDeep
            } else {
                JsonError::Syntax
            }
        })?;
    Ok(value)
}

/// A `serde_json::Value` deserializer that fails on a duplicate key.
struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(Strict)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Strict)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(Strict)?;
            match object.entry(key) {
                Entry::Vacant(entry) => {
                    entry.insert(value);
                }
                Entry::Occupied(_) => return Err(A::Error::custom(DUPLICATE_KEY)),
            }
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::Path;

    fn trading() -> JsonSchema {
        JsonSchema::compile(&json!({
            "type": "object",
            "required": ["action", "symbol", "quantity"],
            "additionalProperties": false,
            "properties": {
                "action": {"enum": ["buy", "sell", "cancel"]},
                "symbol": {"type": "string", "pattern": "^[A-Z]{1,5}$"},
                "quantity": {"type": "integer", "minimum": 1},
                "legs": {"type": "array", "items": {"type": "object", "properties": {"price": {"type": "number"}}}},
                "tags": {"type": "object", "additionalProperties": {"type": "string"}}
            }
        }))
        .unwrap()
    }

    fn codes(schema: &JsonSchema, instance: Value) -> Vec<String> {
        assert!(!schema.is_valid(&instance));
        let mut out = Vec::new();
        schema.reasons(&instance, 4, &mut out);
        out.iter().map(SchemaReason::to_string).collect()
    }

    #[test]
    fn reason_codes_name_path_and_keyword() {
        let schema = trading();
        assert!(schema.is_valid(&json!({"action": "buy", "symbol": "AAPL", "quantity": 1})));
        assert_eq!(
            codes(
                &schema,
                json!({"action": "buy", "symbol": "AAPL", "quantity": 0})
            ),
            vec!["/quantity: minimum"]
        );
        assert_eq!(
            codes(&schema, json!({"action": "buy", "symbol": "AAPL"})),
            vec!["/quantity: required"]
        );
        assert_eq!(codes(&schema, json!([1])), vec!["/: type"]);
        assert_eq!(
            codes(
                &schema,
                json!({"action": "buy", "symbol": "AAPL", "quantity": 1, "legs": [{"price": "x"}]})
            ),
            vec!["/legs/0/price: type"]
        );
    }

    #[test]
    fn reason_codes_never_repeat_sender_chosen_names_or_values() {
        let schema = trading();
        let evil = "<script>alert(1)</script>";
        let all = codes(
            &schema,
            json!({
                "action": evil,
                "symbol": evil,
                "quantity": 1,
                evil: 1,
                "tags": {evil: 5}
            }),
        );
        assert!(all.len() <= 4, "{all:?}");
        for code in &all {
            assert!(!code.contains("script"), "{code}");
        }
        assert!(all.contains(&"/action: enum".to_string()), "{all:?}");
        assert!(all.contains(&"/tags/*: type".to_string()), "{all:?}");
    }

    #[test]
    fn strict_parse_refuses_duplicates_depth_and_garbage() {
        assert_eq!(
            parse_strict(br#"{"a":[1,2.5,null,true,"x"]}"#).unwrap(),
            json!({"a": [1, 2.5, null, true, "x"]})
        );
        assert_eq!(
            parse_strict(br#"{"a":1,"a":2}"#),
            Err(JsonError::DuplicateKey)
        );
        assert_eq!(parse_strict(br#"{"a":1} x"#), Err(JsonError::Syntax));
        assert_eq!(parse_strict(b"{\"a\":\"\xff\"}"), Err(JsonError::Syntax));
        assert_eq!(parse_strict(br#"{"a":1"#), Err(JsonError::Syntax));
        let deep = "[".repeat(100_000);
        assert_eq!(parse_strict(deep.as_bytes()), Err(JsonError::TooDeep));
    }

    #[test]
    fn example_schemas_compile_and_accept_their_examples() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/schemas");
        let load = |name: &str| {
            let source = SchemaSource::Path(Path::new(dir).join(name));
            JsonSchema::load("json-schema", &source).unwrap()
        };
        let trading = load("trading.json");
        let order = br#"{"action":"buy","symbol":"AAPL","quantity":100,"price":187.25,"order_type":"limit"}"#;
        assert!(trading.is_valid(&parse_strict(order).unwrap()));
        assert!(!trading.is_valid(&json!({"action": "buy", "symbol": "AAPL", "quantity": 0})));
        let chat = load("chat.json");
        assert!(chat.is_valid(&json!({"type": "message", "room": "lobby", "text": "hi"})));
        assert!(chat.is_valid(&json!({"type": "typing", "room": "lobby"})));
        assert!(!chat.is_valid(&json!({"type": "message", "room": "lobby"})));
        // The tables of examples/schemas/README.md.
        let first_code = |schema: &JsonSchema, message: &str| {
            let value = match parse_strict(message.as_bytes()) {
                Ok(value) => value,
                Err(error) => return error.reason_code().to_string(),
            };
            let mut out = Vec::new();
            schema.reasons(&value, 4, &mut out);
            out.iter()
                .map(SchemaReason::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        for (message, code) in [
            (
                r#"{"action":"buy","symbol":"AAPL","quantity":0}"#,
                "/quantity: minimum",
            ),
            (
                r#"{"action":"buy","symbol":"aapl","quantity":1}"#,
                "/symbol: pattern",
            ),
            (
                r#"{"action":"hold","symbol":"AAPL","quantity":1}"#,
                "/action: enum",
            ),
            (r#"{"action":"buy","symbol":"AAPL"}"#, "/quantity: required"),
            (
                r#"{"action":"buy","symbol":"AAPL","quantity":1,"leverage":50}"#,
                "/: additionalProperties",
            ),
            (
                r#"{"action":"buy","symbol":"AAPL","quantity":1,"quantity":-5}"#,
                "json: duplicate-key",
            ),
        ] {
            assert_eq!(first_code(&trading, message), code, "{message}");
        }
        for (message, code) in [
            (r#"{"type":"message","room":"lobby"}"#, "/text: required"),
            (
                r#"{"type":"message","room":"Lobby!","text":"hi"}"#,
                "/room: pattern",
            ),
            (
                r#"{"type":"shout","room":"lobby","text":"hi"}"#,
                "/type: enum",
            ),
            ("hello", "json: syntax"),
        ] {
            assert_eq!(first_code(&chat, message), code, "{message}");
        }
        assert!(chat.is_valid(
            &json!({"type":"message","room":"lobby","text":"see you at 5","reply_to":41})
        ));
    }

    #[test]
    fn draft_comes_from_dollar_schema_and_refs_stay_inside() {
        let draft7 = JsonSchema::compile(&json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "definitions": {"n": {"type": "integer"}},
            "items": [{"$ref": "#/definitions/n"}]
        }))
        .unwrap();
        assert_eq!(draft7.validator.draft(), jsonschema::Draft::Draft7);
        assert!(!draft7.is_valid(&json!(["x"])));
        let anchored = JsonSchema::compile(&json!({
            "$defs": {"qty": {"$anchor": "qty", "type": "integer"}},
            "properties": {"q": {"$ref": "#qty"}}
        }))
        .unwrap();
        assert!(anchored.is_valid(&json!({"q": 1})));
        assert!(!anchored.is_valid(&json!({"q": "1"})));
        let default = JsonSchema::compile(&json!({"type": "string"})).unwrap();
        assert_eq!(default.validator.draft(), jsonschema::Draft::Draft202012);
        let remote = JsonSchema::compile(&json!({"$ref": "https://example.com/s.json"}));
        assert!(remote.is_err());
        let invalid =
            JsonSchema::compile(&json!({"properties": {"q": {"minimum": "one"}}})).unwrap_err();
        assert!(
            invalid.contains("minimum") || invalid.contains("/properties/q"),
            "{invalid}"
        );
    }
}
