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
            Action::Allow => 0,
            Action::Drop => 1,
            Action::Close { .. } => 2,
        }
    }
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
}

impl Verdict {
    /// Allow with an empty audit trail; allocates nothing.
    pub const fn allow() -> Self {
        Verdict {
            action: Action::Allow,
            tags: Vec::new(),
            rule_ids: Vec::new(),
            reason_codes: Vec::new(),
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
    pub fn failure(fail_open: bool, reason_code: &'static str) -> Self {
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
        verdict.reason_codes.push(Cow::Borrowed(reason_code));
        verdict
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
