//! The protocol-neutral words every layer shares: a WebSocket [`Frame`] as the proxy reports it, the
//! [`Verdict`] the agent answers with, and the [`AuditTag`]s that explain a verdict.
//!
//! Codecs turn wire messages into these types and back; actors and detectors never see wire structs.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

/// WebSocket close code for a policy violation (RFC 6455 section 7.4.1).
pub const CLOSE_POLICY_VIOLATION: u16 = 1008;
/// WebSocket close code for a protocol error (RFC 6455 section 7.4.1).
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// WebSocket close code for data inconsistent with its type (text that is not UTF-8).
pub const CLOSE_INVALID_PAYLOAD: u16 = 1007;
/// WebSocket close code for a message too big to process.
pub const CLOSE_MESSAGE_TOO_BIG: u16 = 1009;
/// WebSocket close code for an internal error (used when inspection fails and `--fail-open` is off).
pub const CLOSE_INTERNAL_ERROR: u16 = 1011;
/// Longest close reason a control frame can carry (125 bytes minus the 2-byte code).
pub const MAX_CLOSE_REASON_BYTES: usize = 123;

/// What a frame whose inspection could not complete is answered with, in words for log lines:
/// `allow (--fail-open)` or `close 1011 (--fail-open is off)`.
pub fn failure_answer(fail_open: bool) -> &'static str {
    if fail_open {
        "allow (--fail-open)"
    } else {
        "close 1011 (--fail-open is off)"
    }
}

/// Which way a frame travels through the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the WebSocket client towards the upstream server.
    ClientToServer,
    /// From the upstream server towards the client.
    ServerToClient,
}

impl Direction {
    /// Builds a direction from the proxy's `client_to_server` flag.
    pub fn from_client_flag(client_to_server: bool) -> Self {
        if client_to_server {
            Direction::ClientToServer
        } else {
            Direction::ServerToClient
        }
    }

    /// Short label for logs and metrics (`c2s` / `s2c`).
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::ClientToServer => "c2s",
            Direction::ServerToClient => "s2c",
        }
    }

    /// Index for per-direction arrays (client-to-server is 0).
    pub fn index(self) -> usize {
        match self {
            Direction::ClientToServer => 0,
            Direction::ServerToClient => 1,
        }
    }
}

/// RFC 6455 opcode of a frame, as the proxy names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Opcode {
    /// Continues a fragmented text or binary message.
    Continuation,
    /// First (or only) frame of a UTF-8 text message.
    Text,
    /// First (or only) frame of a binary message.
    Binary,
    /// Connection close control frame.
    Close,
    /// Ping control frame.
    Ping,
    /// Pong control frame.
    Pong,
    /// Reserved opcodes 0x3-0x7 and 0xB-0xF.
    Reserved,
}

impl Opcode {
    /// Parses the proxy's opcode name (`"text"`, `"binary"`, ...). Unknown names are `None`.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "continuation" => Opcode::Continuation,
            "text" => Opcode::Text,
            "binary" => Opcode::Binary,
            "close" => Opcode::Close,
            "ping" => Opcode::Ping,
            "pong" => Opcode::Pong,
            "reserved" => Opcode::Reserved,
            _ => return None,
        })
    }

    /// The proxy's name for this opcode.
    pub fn as_str(self) -> &'static str {
        match self {
            Opcode::Continuation => "continuation",
            Opcode::Text => "text",
            Opcode::Binary => "binary",
            Opcode::Close => "close",
            Opcode::Ping => "ping",
            Opcode::Pong => "pong",
            Opcode::Reserved => "reserved",
        }
    }
}

/// One WebSocket frame reported by the proxy.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The WebSocket connection's id; shared by both directions and by every transport connection.
    pub correlation_id: Arc<str>,
    /// Which way the frame travels.
    pub direction: Direction,
    /// The frame's opcode.
    pub opcode: Opcode,
    /// The FIN bit: false on every fragment but the last of a message.
    pub fin: bool,
    /// The unmasked payload.
    pub payload: Bytes,
    /// The proxy's route id, when it sent one.
    pub route_id: Option<Arc<str>>,
    /// The WebSocket client's IP address, when the proxy sent one.
    pub client_ip: Option<Arc<str>>,
}

/// Why an audit record was written; rendered as the `ws-*` tags of the product table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AuditTag {
    /// Cross-site scripting content.
    Xss,
    /// SQL injection content.
    Sqli,
    /// Shell command injection content.
    CmdInjection,
    /// An operator's custom pattern matched.
    CustomPattern,
    /// The message does not match the configured schema.
    SchemaInvalid,
    /// A frame or message size limit was exceeded.
    SizeLimit,
    /// A per-connection rate limit was exceeded.
    RateLimit,
    /// Block mode is off: the violation was only reported.
    DetectOnly,
    /// Inspection could not complete and `--fail-open` let the frame through.
    FailOpen,
    /// Inspection could not complete and the frame was closed (`--fail-open` is off).
    InspectionError,
    /// The peer broke the WebSocket protocol (a new message inside a fragmented one, text that is
    /// not UTF-8).
    ProtocolViolation,
    /// A per-client-IP rate limit was exceeded (all connections of the IP, across agents sharing
    /// a Redis).
    IpRateLimit,
}

impl AuditTag {
    /// Every tag, in a fixed order (used for compact indices and metric labels).
    pub const ALL: [AuditTag; 12] = [
        AuditTag::Xss,
        AuditTag::Sqli,
        AuditTag::CmdInjection,
        AuditTag::CustomPattern,
        AuditTag::SchemaInvalid,
        AuditTag::SizeLimit,
        AuditTag::RateLimit,
        AuditTag::DetectOnly,
        AuditTag::FailOpen,
        AuditTag::InspectionError,
        AuditTag::ProtocolViolation,
        AuditTag::IpRateLimit,
    ];

    /// Position in [`AuditTag::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The tag at `index` in [`AuditTag::ALL`].
    pub fn from_index(index: usize) -> Option<AuditTag> {
        AuditTag::ALL.get(index).copied()
    }

    /// The tag as it appears in audit metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditTag::Xss => "ws-xss",
            AuditTag::Sqli => "ws-sqli",
            AuditTag::CmdInjection => "ws-cmd-injection",
            AuditTag::CustomPattern => "ws-custom-pattern",
            AuditTag::SchemaInvalid => "ws-schema-invalid",
            AuditTag::SizeLimit => "ws-size-limit",
            AuditTag::RateLimit => "ws-rate-limit",
            AuditTag::DetectOnly => "detect-only",
            AuditTag::FailOpen => "ws-fail-open",
            AuditTag::InspectionError => "ws-inspection-error",
            AuditTag::ProtocolViolation => "ws-protocol-violation",
            AuditTag::IpRateLimit => "ws-ip-rate-limit",
        }
    }
}

impl fmt::Display for AuditTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The agent's own machine-readable reason codes: why a limit closed a frame, or why a frame
/// could not be inspected. (A validation failure's codes name the schema path and keyword and are
/// built by [`crate::validate`]; these are the fixed ones.) Each code is named once, here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReasonCode {
    /// A text frame over `--max-text-frame-size`.
    TextFrameSize,
    /// A binary frame over `--max-binary-frame-size`.
    BinaryFrameSize,
    /// A message over `--max-message-size`.
    MessageSize,
    /// The reassembly buffer (per message or process-wide) is full.
    ReassemblyBuffer,
    /// The client's message rate is exceeded.
    MessageRate,
    /// The client's byte rate is exceeded.
    ByteRate,
    /// A new data frame inside a fragmented message.
    InterleavedMessage,
    /// A text message that is not UTF-8.
    InvalidUtf8,
    /// The frame's actor or queue went away before it was decided.
    InspectionLost,
    /// Every detector queue was full.
    DetectorSaturated,
    /// The detector slot had no actor (it was being restarted).
    DetectorUnavailable,
    /// The proxy's frame event could not be decoded.
    UndecodableFrame,
    /// A v2 message of a type the agent does not know.
    UnknownMessageType,
    /// A v1 request over the size limit.
    RequestTooLarge,
    /// A v1 request that is not valid JSON of the expected shape.
    MalformedRequest,
    /// The client IP's message rate is exceeded (all its connections, across agents).
    IpMessageRate,
    /// The client IP's byte rate is exceeded.
    IpByteRate,
}

impl ReasonCode {
    /// Every code, in [`ReasonCode::index`] order.
    pub const ALL: [ReasonCode; 17] = [
        ReasonCode::TextFrameSize,
        ReasonCode::BinaryFrameSize,
        ReasonCode::MessageSize,
        ReasonCode::ReassemblyBuffer,
        ReasonCode::MessageRate,
        ReasonCode::ByteRate,
        ReasonCode::InterleavedMessage,
        ReasonCode::InvalidUtf8,
        ReasonCode::InspectionLost,
        ReasonCode::DetectorSaturated,
        ReasonCode::DetectorUnavailable,
        ReasonCode::UndecodableFrame,
        ReasonCode::UnknownMessageType,
        ReasonCode::RequestTooLarge,
        ReasonCode::MalformedRequest,
        ReasonCode::IpMessageRate,
        ReasonCode::IpByteRate,
    ];

    /// Position in [`ReasonCode::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The code as it appears in audit metadata, logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::TextFrameSize => "text-frame-size",
            ReasonCode::BinaryFrameSize => "binary-frame-size",
            ReasonCode::MessageSize => "message-size",
            ReasonCode::ReassemblyBuffer => "reassembly-buffer",
            ReasonCode::MessageRate => "message-rate",
            ReasonCode::ByteRate => "byte-rate",
            ReasonCode::InterleavedMessage => "interleaved-message",
            ReasonCode::InvalidUtf8 => "invalid-utf8",
            ReasonCode::InspectionLost => "inspection-lost",
            ReasonCode::DetectorSaturated => "detector-saturated",
            ReasonCode::DetectorUnavailable => "detector-unavailable",
            ReasonCode::UndecodableFrame => "undecodable-frame",
            ReasonCode::UnknownMessageType => "unknown-message-type",
            ReasonCode::RequestTooLarge => "request-too-large",
            ReasonCode::MalformedRequest => "malformed-request",
            ReasonCode::IpMessageRate => "ip-message-rate",
            ReasonCode::IpByteRate => "ip-byte-rate",
        }
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which transport a proxy connection came in on; each has its own limit, so that a flood on one
/// never refuses the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A Unix socket connection (v1 or v2).
    UnixSocket,
    /// A gRPC stream (bidirectional or unary).
    Grpc,
}

impl Transport {
    /// Position among the transports (0: Unix socket, 1: gRPC).
    pub fn index(self) -> usize {
        match self {
            Transport::UnixSocket => 0,
            Transport::Grpc => 1,
        }
    }

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::UnixSocket => "uds",
            Transport::Grpc => "grpc",
        }
    }
}

/// What the proxy should do with the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Forward the frame unchanged.
    Allow,
    /// Remove the frame and keep the connection.
    Drop,
    /// Close the WebSocket with this code and reason (reason at most 123 bytes).
    Close {
        /// RFC 6455 close code.
        code: u16,
        /// Short human-readable reason; never echoes more than a few bytes of the payload.
        reason: Cow<'static, str>,
    },
}

impl Action {
    /// Every action's name, in [`Action::index`] order.
    pub const NAMES: [&'static str; 3] = ["allow", "drop", "close"];

    /// The action's name in logs, metrics and the v2 `websocket_decision` field.
    pub fn as_str(&self) -> &'static str {
        Self::NAMES[self.index()]
    }

    /// Position of the action in [`Action::NAMES`].
    pub fn index(&self) -> usize {
        match self {
            Action::Allow => Self::ALLOW,
            Action::Drop => Self::DROP,
            Action::Close { .. } => Self::CLOSE,
        }
    }

    /// [`Action::index`] of [`Action::Allow`].
    pub const ALLOW: usize = 0;
    /// [`Action::index`] of [`Action::Drop`].
    pub const DROP: usize = 1;
    /// [`Action::index`] of any [`Action::Close`].
    pub const CLOSE: usize = 2;
}

/// The agent's answer for one frame: the action plus the audit trail that explains it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// What the proxy should do.
    pub action: Action,
    /// Audit tags, in the order they were raised, without duplicates.
    pub tags: Vec<AuditTag>,
    /// Ids of the rules that fired (`xss-script-tag`, `custom-0`, ...).
    pub rule_ids: Vec<Cow<'static, str>>,
    /// Machine-readable reason codes (`/quantity: minimum`, `text-frame-size`, ...).
    pub reason_codes: Vec<Cow<'static, str>>,
    /// Why inspection could not complete, when the frame was decided by `--fail-open` (allowed
    /// with `ws-fail-open`, or closed with `ws-inspection-error`).
    pub uninspected: Option<ReasonCode>,
}

impl Verdict {
    /// Allow with an empty audit trail; allocates nothing.
    pub const fn allow() -> Self {
        Verdict {
            action: Action::Allow,
            tags: Vec::new(),
            rule_ids: Vec::new(),
            reason_codes: Vec::new(),
            uninspected: None,
        }
    }

    /// Close with `code` and a reason cut to [`MAX_CLOSE_REASON_BYTES`] on a character boundary.
    pub fn close(code: u16, reason: impl Into<Cow<'static, str>>) -> Self {
        Verdict {
            action: Action::Close {
                code,
                reason: truncate_reason(reason.into()),
            },
            ..Verdict::allow()
        }
    }

    /// The decision for a frame whose inspection could not complete (saturation, crash, bad
    /// input): allow with `ws-fail-open` when `fail_open`, else close 1011.
    pub fn failure(fail_open: bool, reason: ReasonCode) -> Self {
        let mut verdict = if fail_open {
            Verdict::allow()
        } else {
            Verdict::close(CLOSE_INTERNAL_ERROR, "Inspection unavailable")
        };
        verdict.add_tag(if fail_open {
            AuditTag::FailOpen
        } else {
            AuditTag::InspectionError
        });
        verdict.add_reason(reason);
        verdict.uninspected = Some(reason);
        verdict
    }

    /// Adds one of the agent's own reason codes to the audit trail.
    pub fn add_reason(&mut self, reason: ReasonCode) {
        self.reason_codes.push(Cow::Borrowed(reason.as_str()));
    }

    /// Adds `tag` unless it is already present.
    pub fn add_tag(&mut self, tag: AuditTag) {
        if !self.tags.contains(&tag) {
            self.tags.push(tag);
        }
    }

    /// True when the proxy forwards the frame.
    pub fn is_allow(&self) -> bool {
        self.action == Action::Allow
    }

    /// The first violation tag (content, schema, size or rate), for logs and metrics.
    pub fn primary_tag(&self) -> Option<AuditTag> {
        self.tags
            .iter()
            .copied()
            .find(|t| !matches!(t, AuditTag::DetectOnly))
    }
}

/// Cuts a close reason to [`MAX_CLOSE_REASON_BYTES`] without splitting a UTF-8 character.
pub fn truncate_reason(reason: Cow<'static, str>) -> Cow<'static, str> {
    if reason.len() <= MAX_CLOSE_REASON_BYTES {
        return reason;
    }
    let mut end = MAX_CLOSE_REASON_BYTES;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(reason[..end].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reason_is_cut_on_a_char_boundary() {
        let long = "é".repeat(100); // 200 bytes
        let verdict = Verdict::close(CLOSE_POLICY_VIOLATION, long);
        let Action::Close { reason, .. } = verdict.action else {
            panic!("expected close");
        };
        assert!(reason.len() <= MAX_CLOSE_REASON_BYTES);
        assert_eq!(reason.len(), 122);
    }

    #[test]
    fn opcode_names_round_trip() {
        for name in [
            "continuation",
            "text",
            "binary",
            "close",
            "ping",
            "pong",
            "reserved",
        ] {
            assert_eq!(Opcode::from_name(name).unwrap().as_str(), name);
        }
        assert_eq!(Opcode::from_name("Text"), None);
    }
}
