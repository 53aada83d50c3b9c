//! The one configuration type. [`Options`] is parsed by clap from flags and environment variables;
//! its [`PolicyOptions`] part is also what a proxy may push in a configure event, deserialized from
//! the same kebab-case names and validated the same way ([`PolicyOptions::patched`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, ValueEnum};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// Default Unix socket path (the one the Sentinel documentation uses for this agent).
pub const DEFAULT_SOCKET: &str = "/tmp/sentinel-ws.sock";

/// Everything the agent can be told at start-up.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "sentinel-ws-agent",
    version,
    about = "WebSocket frame inspection agent for the Sentinel and Zentinel reverse proxies",
    long_about = None
)]
pub struct Options {
    /// Unix socket the proxy connects to (serves protocol v1 JSON and v2 binary).
    #[arg(long, env = "AGENT_SOCKET", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,

    /// Permissions of the socket file, in octal (the proxy's user needs read and write).
    #[arg(long, env = "WS_SOCKET_MODE", default_value = "660", value_parser = parse_octal_mode)]
    pub socket_mode: u32,

    /// Also serve gRPC on HOST:PORT (keep it on loopback or behind TLS).
    #[arg(long, env = "AGENT_GRPC_ADDRESS", value_name = "HOST:PORT")]
    pub grpc_address: Option<String>,

    /// PEM certificate chain for gRPC over TLS (with --grpc-tls-key).
    #[arg(
        long,
        env = "AGENT_GRPC_TLS_CERT",
        value_name = "PATH",
        requires = "grpc_tls_key"
    )]
    pub grpc_tls_cert: Option<PathBuf>,

    /// PEM private key for gRPC over TLS (with --grpc-tls-cert).
    #[arg(
        long,
        env = "AGENT_GRPC_TLS_KEY",
        value_name = "PATH",
        requires = "grpc_tls_cert"
    )]
    pub grpc_tls_key: Option<PathBuf>,

    /// PEM CA bundle: require gRPC clients to present a certificate it signed (mutual TLS).
    #[arg(
        long,
        env = "AGENT_GRPC_TLS_CLIENT_CA",
        value_name = "PATH",
        requires = "grpc_tls_cert"
    )]
    pub grpc_tls_client_ca: Option<PathBuf>,

    /// Serve /metrics, /healthz and /readyz over HTTP on HOST:PORT (off by default).
    #[arg(long, env = "WS_METRICS_ADDRESS", value_name = "HOST:PORT")]
    pub metrics_address: Option<String>,

    /// Number of detector actors (default: the number of CPUs).
    #[arg(long, env = "WS_WORKERS", value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: Option<u16>,

    /// Agent id reported to proxies in capabilities, health and metrics reports.
    #[arg(long, env = "AGENT_ID", default_value = "sentinel-ws-agent")]
    pub agent_id: String,

    /// Milliseconds between health and metrics reports on v2 connections and gRPC streams
    /// (health is also reported at once on every change).
    #[arg(long, env = "WS_REPORT_INTERVAL_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..))]
    pub report_interval_ms: u64,

    /// Most bytes all connections together may hold for unfinished fragmented messages; a message
    /// that would go over is closed with 1009 (or allowed with --fail-open).
    #[arg(long, env = "WS_MAX_BUFFERED", default_value_t = 256 * 1024 * 1024)]
    pub max_buffered_bytes: usize,

    /// Most proxy connections served at once (Unix socket and gRPC); further ones are closed at
    /// once and logged.
    #[arg(long, env = "WS_MAX_TRANSPORT_CONNECTIONS", default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_transport_connections: u64,

    /// Most gRPC streams served at once (all connections together); also advertised to each
    /// connection as SETTINGS_MAX_CONCURRENT_STREAMS. Counted apart from Unix-socket connections.
    #[arg(long, env = "WS_MAX_GRPC_STREAMS", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_grpc_streams: u32,

    /// Seconds a proxy connection may take to send a complete first message, or to finish a
    /// message it started; a stalled one is closed. Idle time between messages is not limited.
    #[arg(long, env = "WS_READ_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub read_timeout: u64,

    /// Largest schema file read (`json-schema`, `msgpack-schema`), in bytes; only regular files
    /// are read.
    #[arg(long, env = "WS_MAX_SCHEMA_BYTES", default_value_t = crate::compiler::DEFAULT_MAX_SCHEMA_BYTES, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_schema_bytes: u64,

    /// Most custom patterns one configuration may list.
    #[arg(long, env = "WS_MAX_CUSTOM_PATTERNS", default_value_t = crate::compiler::DEFAULT_MAX_CUSTOM_PATTERNS)]
    pub max_custom_patterns: usize,

    /// Most bytes of pattern source one configuration may list, all patterns together.
    #[arg(long, env = "WS_MAX_CUSTOM_PATTERN_BYTES", default_value_t = crate::compiler::DEFAULT_MAX_CUSTOM_PATTERN_BYTES)]
    pub max_custom_pattern_bytes: usize,

    /// Largest configuration a proxy may push (v1 configure, v2 Configure, the v2 handshake's
    /// config, gRPC configure), in bytes of JSON.
    #[arg(long, env = "WS_MAX_CONFIG_BYTES", default_value_t = crate::compiler::DEFAULT_MAX_CONFIG_BYTES, value_parser = clap::value_parser!(u64).range(2..))]
    pub max_config_bytes: u64,

    /// Seconds a pushed configuration may take to be read and compiled (off the frame path)
    /// before it is rejected; the running configuration stays.
    #[arg(long, env = "WS_CONFIG_TIMEOUT", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub config_timeout: u64,

    /// Test hook: a detector panics on messages containing this marker (fault-injection tests).
    #[arg(long, env = "WS_DEBUG_PANIC_MARKER", hide = true)]
    pub debug_panic_marker: Option<String>,

    /// Seconds without a frame after which a WebSocket's actor hibernates (its state is parked in a
    /// small record and a new actor starts on its next frame), to keep idle connections cheap.
    #[arg(long, env = "WS_HIBERNATE_AFTER", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub hibernate_after: u64,

    /// Seconds to keep serving in-flight requests after SIGTERM/SIGINT before exiting.
    #[arg(long, env = "WS_DRAIN_TIMEOUT", default_value_t = 30)]
    pub drain_timeout: u64,

    /// Redis shared by every agent for the per-client-IP limits (`redis://HOST:PORT/DB`,
    /// `rediss://` for TLS). Without it the per-IP limits are counted in this agent alone.
    #[arg(long, env = "WS_REDIS_URL", value_name = "URL")]
    pub redis_url: Option<String>,

    /// Agents sharing the Redis budget: while Redis does not answer, each agent counts the per-IP
    /// limits divided by this.
    #[arg(long, env = "WS_REDIS_PEERS_HINT", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub redis_peers_hint: u32,

    /// Most per-IP budgets with state at once: one per client IP, plus one per client IP and
    /// route for policy-file routes with `ip-*` limits of their own; the least recently seen are
    /// forgotten first (and any idle for 30 s).
    #[arg(long, env = "WS_MAX_TRACKED_IPS", default_value_t = crate::shared_limits::DEFAULT_MAX_TRACKED_IPS, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_tracked_ips: u64,

    /// Log line format.
    #[arg(long, env = "WS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Per-route policy file: TOML (JSON when the name ends in `.json`) with a `[default]` table
    /// and `[[route]]` tables matched on the proxy's route id (README "Per-route policies").
    /// Read at start (a bad file stops the agent) and again on SIGHUP.
    #[arg(long, env = "WS_POLICY_FILE", value_name = "PATH")]
    pub policy_file: Option<PathBuf>,

    /// Inspection policy; the part a proxy may replace with a configure event.
    #[command(flatten)]
    pub policy: PolicyOptions,
}

impl Options {
    /// Parses flags and environment, with the `WS_PATTERNS` escaping rule applied.
    pub fn parse_from_env() -> Result<Self, clap::Error> {
        Self::parse_args(std::env::args_os())
    }

    /// Parses the given arguments (the first is the program name) and the environment.
    pub fn parse_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = Self::command().try_get_matches_from(args)?;
        let mut options = Self::from_arg_matches(&matches)?;
        options.policy.custom_patterns =
            split_env_patterns(&matches, options.policy.custom_patterns);
        Ok(options)
    }

    /// The number of detector actors to start.
    pub fn worker_count(&self) -> usize {
        match self.workers {
            Some(n) => usize::from(n),
            None => std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// A flag given on the command line keeps commas; the `WS_PATTERNS` variable is a comma-separated
/// list in which `\,` stands for a literal comma.
fn split_env_patterns(matches: &ArgMatches, patterns: Vec<String>) -> Vec<String> {
    if matches.value_source("custom_patterns") != Some(ValueSource::EnvVariable) {
        return patterns;
    }
    patterns
        .iter()
        .flat_map(|value| split_escaped_commas(value))
        .filter(|p| !p.is_empty())
        .collect()
}

/// Splits on commas not preceded by a backslash; `\,` becomes `,`, every other backslash stays.
pub fn split_escaped_commas(value: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&',') => {
                current.push(',');
                chars.next();
            }
            ',' => parts.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    parts.push(current);
    parts
}

/// How log lines are written (to standard error; `RUST_LOG` sets the level).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Which direction's messages the schemas apply to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SchemaDirection {
    /// Messages from the WebSocket client only.
    #[default]
    Client,
    /// Messages from the upstream server only.
    Server,
    /// Both directions.
    Both,
}

/// What happens to a text message that is not valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum InvalidUtf8 {
    /// Close the WebSocket with 1007 (invalid frame payload data), as RFC 6455 requires.
    #[default]
    Close,
    /// Inspect the lossy reading (overlong forms of `<`, `>`, `'`, `"` read as those characters).
    Inspect,
}

/// What a violation does in block mode: close the WebSocket (1008), or drop the offending message
/// and keep the connection. A message that arrived in fragments is closed either way (see
/// [`crate::pipeline`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ViolationAction {
    /// Close the WebSocket with 1008 (size limits keep 1009).
    #[default]
    Close,
    /// Drop the message (the proxy removes the frame) and keep the connection.
    Drop,
}

/// The schemas of one direction, per message type (policy file and configure push only).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct MessageSchemas {
    /// JSON Schema every complete text message must match.
    pub text: Option<SchemaSource>,
    /// JSON Schema every complete binary message, decoded as MessagePack, must match.
    pub binary: Option<SchemaSource>,
}

/// Schemas per direction and message type: `schema.client.text`, `schema.server.binary`, ...
/// Each one set replaces `json-schema` / `msgpack-schema` for its direction and type.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct DirectionalSchemas {
    /// Messages from the WebSocket client.
    pub client: MessageSchemas,
    /// Messages from the upstream server.
    pub server: MessageSchemas,
}

impl DirectionalSchemas {
    /// The schemas of `direction`.
    pub fn of(&self, direction: crate::model::Direction) -> &MessageSchemas {
        match direction {
            crate::model::Direction::ClientToServer => &self.client,
            crate::model::Direction::ServerToClient => &self.server,
        }
    }
}

/// Where a schema comes from: a file path (flags, env, configure) or an inline JSON object
/// (configure only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SchemaSource {
    /// A path to a JSON file.
    Path(PathBuf),
    /// The schema itself.
    Inline(serde_json::Map<String, Value>),
}

impl std::str::FromStr for SchemaSource {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(SchemaSource::Path(PathBuf::from(s)))
    }
}

/// The inspection policy: detection, validation, limits and modes. Field names in kebab-case are
/// the keys of a pushed configuration.
#[derive(Debug, Clone, PartialEq, Args, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct PolicyOptions {
    /// Detect cross-site scripting in messages.
    #[arg(long, env = "WS_XSS", default_value_t = true, value_parser = parse_bool, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    #[serde(deserialize_with = "flexible_bool")]
    pub xss_detection: bool,

    /// Detect SQL injection in messages.
    #[arg(long, env = "WS_SQLI", default_value_t = true, value_parser = parse_bool, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    #[serde(deserialize_with = "flexible_bool")]
    pub sqli_detection: bool,

    /// Detect shell command injection in messages.
    #[arg(long, env = "WS_CMD", default_value_t = true, value_parser = parse_bool, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    #[serde(deserialize_with = "flexible_bool")]
    pub command_injection: bool,

    /// Extra regular expression to block (repeat the flag; in WS_PATTERNS separate with commas and
    /// write a literal comma as `\,`).
    #[arg(long = "custom-patterns", env = "WS_PATTERNS", value_name = "REGEX", action = clap::ArgAction::Append)]
    #[serde(deserialize_with = "string_or_list")]
    pub custom_patterns: Vec<String>,

    /// JSON Schema every complete text message in `--schema-direction` must match (a file; a
    /// pushed configuration may also give the schema object inline).
    #[arg(long, env = "WS_JSON_SCHEMA", value_name = "PATH")]
    pub json_schema: Option<SchemaSource>,

    /// Which direction's messages the schemas (JSON and MessagePack) apply to.
    #[arg(long, env = "WS_SCHEMA_DIRECTION", value_enum, default_value_t = SchemaDirection::Client)]
    pub schema_direction: SchemaDirection,

    /// Binary messages must be exactly one valid MessagePack value (both directions); its strings
    /// go to the content detectors.
    #[arg(long, env = "WS_MSGPACK", default_value_t = false, value_parser = parse_bool, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    #[serde(deserialize_with = "flexible_bool")]
    pub msgpack_validation: bool,

    /// JSON Schema for decoded MessagePack messages (default: the JSON schema); needs
    /// `--msgpack-validation`.
    #[arg(long, env = "WS_MSGPACK_SCHEMA", value_name = "PATH")]
    pub msgpack_schema: Option<SchemaSource>,

    /// Messages per second a client may send on one connection (0 = unlimited).
    #[arg(long, env = "WS_RATE_MESSAGES", default_value_t = 0)]
    pub max_messages_per_sec: u32,

    /// Payload bytes per second a client may send on one connection (0 = unlimited).
    #[arg(long, env = "WS_RATE_BYTES", default_value_t = 0)]
    pub max_bytes_per_sec: u64,

    /// Messages a client may send at once above the per-second rate.
    #[arg(long, env = "WS_RATE_BURST", default_value_t = 10)]
    pub rate_limit_burst: u32,

    /// Messages per second one client IP may send, all its connections together (and across
    /// agents with --redis-url); 0 = unlimited. A policy-file route that sets this,
    /// `ip-max-bytes-per-sec` or `ip-burst` has a budget of its own per IP; the others share
    /// the default one.
    #[arg(long, env = "WS_IP_RATE_MESSAGES", default_value_t = 0)]
    pub ip_max_messages_per_sec: u32,

    /// Payload bytes per second one client IP may send, all its connections together; 0 =
    /// unlimited.
    #[arg(long, env = "WS_IP_RATE_BYTES", default_value_t = 0)]
    pub ip_max_bytes_per_sec: u64,

    /// Messages one client IP may send at once above its per-second rate.
    #[arg(long, env = "WS_IP_RATE_BURST", default_value_t = 10)]
    pub ip_burst: u32,

    /// Largest text frame in bytes (0 = unlimited); fragments count against their message's type.
    #[arg(long, env = "WS_MAX_TEXT", default_value_t = 0)]
    pub max_text_frame_size: u64,

    /// Largest binary frame in bytes (0 = unlimited).
    #[arg(long, env = "WS_MAX_BINARY", default_value_t = 0)]
    pub max_binary_frame_size: u64,

    /// Largest message in bytes, all fragments together (0 = unlimited).
    #[arg(long, env = "WS_MAX_MESSAGE", default_value_t = 0)]
    pub max_message_size: u64,

    /// Schemas per direction and message type (`schema.client.text`, ...): policy file and
    /// configure push only.
    #[arg(skip)]
    pub schema: DirectionalSchemas,

    /// In block mode, what a content violation (detection, schema) does: `close` the WebSocket
    /// (1008) or `drop` the message and keep the connection. A fragmented message is closed either
    /// way (its earlier fragments were already forwarded).
    #[arg(long, env = "WS_BLOCK_ACTION", value_enum, default_value_t = ViolationAction::Close)]
    pub block_action: ViolationAction,

    /// In block mode, what a rate-limit violation does: `close` (1008) or `drop` the message.
    #[arg(long, env = "WS_RATE_LIMIT_ACTION", value_enum, default_value_t = ViolationAction::Close)]
    pub rate_limit_action: ViolationAction,

    /// Close violating connections; when false, only tag them (`detect-only`).
    #[arg(long, env = "WS_BLOCK_MODE", default_value_t = true, value_parser = parse_bool, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    #[serde(deserialize_with = "flexible_bool")]
    pub block_mode: bool,

    /// Allow frames whose inspection cannot complete (otherwise close them with 1011).
    #[arg(long, env = "WS_FAIL_OPEN", default_value_t = false, value_parser = parse_bool, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    #[serde(deserialize_with = "flexible_bool")]
    pub fail_open: bool,

    /// Log an escaped excerpt (at most 64 bytes) of each blocked payload.
    #[arg(long, env = "WS_LOG_FRAMES", default_value_t = false, value_parser = parse_bool, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    #[serde(deserialize_with = "flexible_bool")]
    pub log_frames: bool,

    /// Run the content detectors on binary messages too.
    #[arg(long, env = "WS_INSPECT_BINARY", default_value_t = false, value_parser = parse_bool, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    #[serde(deserialize_with = "flexible_bool")]
    pub inspect_binary: bool,

    /// What to do with a text message that is not valid UTF-8 (judged on the whole message):
    /// `close` it with 1007 (RFC 6455), or `inspect` its lossy reading like any other text.
    #[arg(long, env = "WS_INVALID_UTF8", value_enum, default_value_t = InvalidUtf8::Close)]
    pub invalid_utf8: InvalidUtf8,

    /// Forget a WebSocket connection after this many seconds without a frame.
    #[arg(long, env = "WS_IDLE_TIMEOUT", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout: u64,

    /// Most WebSocket connections tracked at once; the least recently seen are evicted first.
    #[arg(long, env = "WS_MAX_CONNECTIONS", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: u64,
}

impl Default for PolicyOptions {
    /// The same values as the flag defaults above (a unit test keeps the two in step).
    fn default() -> Self {
        PolicyOptions {
            xss_detection: true,
            sqli_detection: true,
            command_injection: true,
            custom_patterns: Vec::new(),
            json_schema: None,
            schema_direction: SchemaDirection::Client,
            msgpack_validation: false,
            msgpack_schema: None,
            max_messages_per_sec: 0,
            max_bytes_per_sec: 0,
            rate_limit_burst: 10,
            ip_max_messages_per_sec: 0,
            ip_max_bytes_per_sec: 0,
            ip_burst: 10,
            max_text_frame_size: 0,
            max_binary_frame_size: 0,
            max_message_size: 0,
            schema: DirectionalSchemas::default(),
            block_action: ViolationAction::Close,
            rate_limit_action: ViolationAction::Close,
            block_mode: true,
            fail_open: false,
            log_frames: false,
            inspect_binary: false,
            invalid_utf8: InvalidUtf8::Close,
            idle_timeout: 300,
            max_connections: 100_000,
        }
    }
}

/// A pushed configuration that cannot be applied; names the offending key.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    /// The configuration is not a JSON object.
    #[error("configuration must be a JSON object of option names, got {0}")]
    NotAnObject(&'static str),
    /// A key that is not an option of this agent.
    #[error("unknown option `{key}` (options are kebab-case names such as `block-mode`)")]
    UnknownKey {
        /// The key as received (cut to 64 bytes).
        key: String,
    },
    /// A known key with a value of the wrong type or range.
    #[error("invalid value for `{key}`: {message}")]
    InvalidValue {
        /// The option name.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

impl PolicyOptions {
    /// Applies a pushed configuration on top of `self` (normally the start-up policy), so that the
    /// same configuration applied twice gives the same result. Keys absent from `config` keep their
    /// value from `self`; `null` (or an empty object) changes nothing.
    pub fn patched(&self, config: &Value) -> Result<PolicyOptions, ConfigError> {
        let object = match config {
            Value::Null => return Ok(self.clone()),
            Value::Object(object) => object,
            Value::Bool(_) => return Err(ConfigError::NotAnObject("a boolean")),
            Value::Number(_) => return Err(ConfigError::NotAnObject("a number")),
            Value::String(_) => return Err(ConfigError::NotAnObject("a string")),
            Value::Array(_) => return Err(ConfigError::NotAnObject("an array")),
        };
        let Value::Object(mut merged) = serde_json::to_value(self).expect("options serialize")
        else {
            unreachable!("PolicyOptions serializes to an object")
        };
        let known: BTreeMap<String, ()> = merged.keys().map(|k| (k.clone(), ())).collect();
        for (key, value) in object {
            if !known.contains_key(key) {
                return Err(ConfigError::UnknownKey {
                    key: crate::util::cut(key, 64).into_owned(),
                });
            }
            // Deserialize the key alone so that a type error is reported against its name.
            let single = Value::Object([(key.clone(), value.clone())].into_iter().collect());
            if let Err(error) = serde_json::from_value::<PolicyOptions>(single) {
                return Err(ConfigError::InvalidValue {
                    key: key.clone(),
                    message: crate::util::cut(&error.to_string(), 160).into_owned(),
                });
            }
            merged.insert(key.clone(), value.clone());
        }
        let patched: PolicyOptions =
            serde_json::from_value(Value::Object(merged)).map_err(|error| {
                ConfigError::InvalidValue {
                    key: "configuration".into(),
                    message: error.to_string(),
                }
            })?;
        patched.check_ranges()?;
        Ok(patched)
    }

    /// Range checks clap enforces for flags, repeated for pushed values.
    fn check_ranges(&self) -> Result<(), ConfigError> {
        if self.idle_timeout == 0 {
            return Err(ConfigError::InvalidValue {
                key: "idle-timeout".into(),
                message: "must be at least 1 second".into(),
            });
        }
        if self.max_connections == 0 {
            return Err(ConfigError::InvalidValue {
                key: "max-connections".into(),
                message: "must be at least 1".into(),
            });
        }
        Ok(())
    }
}

/// Parses a file mode in octal (`660`, `0660`, `0o660`).
pub fn parse_octal_mode(value: &str) -> Result<u32, String> {
    let digits = value.trim().trim_start_matches("0o");
    let mode = u32::from_str_radix(digits, 8)
        .map_err(|_| format!("expected an octal mode such as 660, got `{value}`"))?;
    if mode > 0o777 {
        return Err(format!("mode {value} has bits beyond 0777"));
    }
    Ok(mode)
}

/// Parses `true/false/1/0/yes/no/on/off` (any case).
pub fn parse_bool(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        other => Err(format!("expected true or false, got `{other}`")),
    }
}

fn flexible_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flexible {
        Bool(bool),
        Int(u64),
        Text(String),
    }
    match Flexible::deserialize(deserializer)
        .map_err(|_| serde::de::Error::custom("expected true or false"))?
    {
        Flexible::Bool(b) => Ok(b),
        Flexible::Int(0) => Ok(false),
        Flexible::Int(1) => Ok(true),
        Flexible::Int(n) => Err(serde::de::Error::custom(format!(
            "expected true or false, got {n}"
        ))),
        Flexible::Text(text) => parse_bool(&text).map_err(serde::de::Error::custom),
    }
}

fn string_or_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    match OneOrMany::deserialize(deserializer)
        .map_err(|_| serde::de::Error::custom("expected a pattern or an array of patterns"))?
    {
        OneOrMany::One(pattern) => Ok(vec![pattern]),
        OneOrMany::Many(patterns) => Ok(patterns),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(args: &[&str]) -> Options {
        let mut all = vec!["sentinel-ws-agent"];
        all.extend_from_slice(args);
        Options::parse_args(all).expect("parses")
    }

    #[test]
    fn flag_defaults_match_default_impl() {
        assert_eq!(parse(&[]).policy, PolicyOptions::default());
    }

    #[test]
    fn booleans_accept_every_spelling() {
        assert!(!parse(&["--block-mode", "false"]).policy.block_mode);
        assert!(!parse(&["--block-mode=false"]).policy.block_mode);
        assert!(parse(&["--fail-open"]).policy.fail_open);
        assert!(
            parse(&["--fail-open", "--block-mode", "0"])
                .policy
                .fail_open
        );
        assert!(
            !parse(&["--fail-open", "--block-mode", "0"])
                .policy
                .block_mode
        );
        assert!(parse(&["--inspect-binary", "true"]).policy.inspect_binary);
    }

    #[test]
    fn repeated_pattern_flags_keep_commas() {
        let options = parse(&["--custom-patterns", "a{1,3}", "--custom-patterns", "b"]);
        assert_eq!(options.policy.custom_patterns, vec!["a{1,3}", "b"]);
    }

    #[test]
    fn env_patterns_split_on_unescaped_commas() {
        assert_eq!(
            split_escaped_commas(r"foo,x{1\,3},bar\d"),
            vec!["foo", "x{1,3}", r"bar\d"]
        );
    }

    #[test]
    fn patch_overlays_and_is_idempotent() {
        let base = PolicyOptions::default();
        let config =
            json!({"block-mode": false, "custom-patterns": "evil", "max-messages-per-sec": 5});
        let once = base.patched(&config).unwrap();
        assert!(!once.block_mode);
        assert_eq!(once.custom_patterns, vec!["evil"]);
        assert_eq!(once.max_messages_per_sec, 5);
        assert_eq!(base.patched(&config).unwrap(), once);
        assert_eq!(base.patched(&Value::Null).unwrap(), base);
    }

    #[test]
    fn patch_errors_name_the_key() {
        let base = PolicyOptions::default();
        let err = base.patched(&json!({"xss-detecton": true})).unwrap_err();
        assert!(err.to_string().contains("xss-detecton"), "{err}");
        let err = base
            .patched(&json!({"max-messages-per-sec": "lots"}))
            .unwrap_err();
        assert!(err.to_string().contains("max-messages-per-sec"), "{err}");
        let err = base.patched(&json!({"idle-timeout": 0})).unwrap_err();
        assert!(err.to_string().contains("idle-timeout"), "{err}");
        assert!(base.patched(&json!([1])).is_err());
    }
}
