//! The JSON shapes v1 and v2 UDS share: the WebSocket frame event (decoded into a [`Frame`]) and
//! the agent response (encoded from a [`Verdict`]). Verified against the upstream crates; see
//! `docs/protocol.md` sections 3.1 and 4.1 of the shared reference.

use std::borrow::Cow;
use std::sync::Arc;

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::model::{Action, Direction, Frame, Opcode, Verdict};

/// Why a frame event could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum FrameDecodeError {
    /// Not JSON, or not the frame event's shape.
    #[error("malformed frame event: {0}")]
    Json(String),
    /// `opcode` is not one the proxy sends.
    #[error("unknown opcode `{0}`")]
    Opcode(String),
    /// `data` is not standard base64.
    #[error("frame data is not valid base64: {0}")]
    Base64(String),
}

/// The frame event as the proxies write it (`WebSocketFrameEvent`, both crates), as read from
/// the wire; [`FrameEvent::into_frame`] checks it and makes it a [`Frame`]. Public so that a
/// codec whose envelope carries the event (v1) reads both in one pass.
#[derive(Debug, Deserialize)]
pub struct FrameEvent<'a> {
    #[serde(borrow)]
    correlation_id: Cow<'a, str>,
    #[serde(borrow)]
    opcode: Cow<'a, str>,
    #[serde(borrow, default)]
    data: Cow<'a, str>,
    client_to_server: bool,
    #[serde(default = "default_fin")]
    fin: bool,
    #[serde(borrow, default)]
    route_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    client_ip: Option<Cow<'a, str>>,
}

fn default_fin() -> bool {
    true
}

/// Only the correlation id of an event, for answering events we do not otherwise read.
#[derive(Debug, Deserialize)]
struct WireCorrelation<'a> {
    #[serde(borrow)]
    correlation_id: Cow<'a, str>,
}

/// What the agent reads of a RequestHeaders event (`RequestHeadersEvent`, both crates): its
/// `metadata`'s correlation id (the trace id the WebSocket's frames will carry, if this request
/// is an upgrade) and client IP. v2 UDS also puts the id at the top level.
#[derive(Debug, Deserialize)]
struct WireRequestHeaders<'a> {
    #[serde(borrow, default)]
    correlation_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    metadata: WireRequestMetadata<'a>,
}

#[derive(Debug, Deserialize)]
struct WireRequestMetadata<'a> {
    #[serde(borrow, default)]
    correlation_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    client_ip: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    route_id: Option<Cow<'a, str>>,
}

/// What a JSON RequestHeaders event names about the WebSocket it may upgrade.
#[derive(Debug, PartialEq, Eq)]
pub struct UpgradeRequest<'a> {
    /// The request's (and so its WebSocket's) correlation id; never empty.
    pub correlation_id: Cow<'a, str>,
    /// The client IP (empty when the event has none).
    pub client_ip: Cow<'a, str>,
    /// The route the request matched, when the event names one.
    pub route_id: Option<Cow<'a, str>>,
}

/// The correlation id, client IP and route of a JSON RequestHeaders event, when it names an id
/// and at least one of the other two.
pub fn upgrade_request(json: &[u8]) -> Option<UpgradeRequest<'_>> {
    let event: WireRequestHeaders<'_> = serde_json::from_slice(json).ok()?;
    let metadata = event.metadata;
    let correlation_id = metadata
        .correlation_id
        .filter(|id| !id.is_empty())
        .or(event.correlation_id)
        .filter(|id| !id.is_empty())?;
    let client_ip = metadata.client_ip.unwrap_or_default();
    let route_id = metadata.route_id.filter(|route| !route.is_empty());
    (!client_ip.is_empty() || route_id.is_some()).then_some(UpgradeRequest {
        correlation_id,
        client_ip,
        route_id,
    })
}

/// The top-level `correlation_id` of a JSON event, if it has one.
pub fn correlation_id_of(json: &[u8]) -> Option<String> {
    serde_json::from_slice::<WireCorrelation<'_>>(json)
        .ok()
        .map(|c| c.correlation_id.into_owned())
}

/// Per-transport-connection decoding state: strings that repeat from frame to frame (route,
/// client IP) are interned, and payloads are decoded into a shared buffer that is split into
/// [`Bytes`], so most frames allocate neither.
#[derive(Debug, Default)]
pub struct FrameInterner {
    route_id: Option<Arc<str>>,
    client_ip: Option<Arc<str>>,
    payloads: BytesMut,
}

/// Bytes reserved at a time for decoded payloads.
const PAYLOAD_BLOCK: usize = 64 * 1024;

impl FrameInterner {
    fn intern(slot: &mut Option<Arc<str>>, value: Option<Cow<'_, str>>) -> Option<Arc<str>> {
        let value = value?;
        match slot {
            Some(cached) if **cached == *value => Some(Arc::clone(cached)),
            _ => {
                let fresh: Arc<str> = Arc::from(value.as_ref());
                *slot = Some(Arc::clone(&fresh));
                Some(fresh)
            }
        }
    }
}

/// Decodes a JSON frame event. `intern_id` maps the correlation id to a shared string. On error,
/// the correlation id is returned too when it could be read, so the request can still be answered.
pub fn decode_frame(
    json: &[u8],
    interner: &mut FrameInterner,
    intern_id: impl FnOnce(&str) -> Arc<str>,
) -> Result<Frame, (Option<String>, FrameDecodeError)> {
    let event: FrameEvent<'_> = serde_json::from_slice(json).map_err(|e| {
        (
            correlation_id_of(json),
            FrameDecodeError::Json(e.to_string()),
        )
    })?;
    event.into_frame(interner, intern_id)
}

impl FrameEvent<'_> {
    /// The [`Frame`] of this event: the opcode must be one the proxy sends and `data` standard
    /// base64 (decoded into `interner`'s payload buffer). On error the correlation id comes back
    /// too, so that the request can still be answered.
    pub fn into_frame(
        self,
        interner: &mut FrameInterner,
        intern_id: impl FnOnce(&str) -> Arc<str>,
    ) -> Result<Frame, (Option<String>, FrameDecodeError)> {
        let opcode = Opcode::from_name(&self.opcode).ok_or_else(|| {
            (
                Some(self.correlation_id.to_string()),
                FrameDecodeError::Opcode(crate::util::cut(&self.opcode, 32).into_owned()),
            )
        })?;
        let payload = decode_base64(self.data.as_bytes(), &mut interner.payloads).map_err(|e| {
            (
                Some(self.correlation_id.to_string()),
                FrameDecodeError::Base64(e.to_string()),
            )
        })?;
        Ok(Frame {
            correlation_id: intern_id(&self.correlation_id),
            direction: Direction::from_client_flag(self.client_to_server),
            opcode,
            fin: self.fin,
            payload,
            route_id: FrameInterner::intern(&mut interner.route_id, self.route_id),
            client_ip: FrameInterner::intern(&mut interner.client_ip, self.client_ip),
        })
    }
}

/// The answer to a frame event that could not be decoded (v1 and v2 UDS): counted as a protocol
/// error, logged with the correlation id when it was read, and decided by `--fail-open`.
pub fn undecodable_frame(
    agent: &crate::agent::Agent,
    correlation_id: Option<&str>,
    error: &FrameDecodeError,
) -> Verdict {
    crate::telemetry::Telemetry::get().record_protocol_error();
    let fail_open = agent.policy().fail_open();
    tracing::error!(
        correlation_id = %crate::util::for_log(correlation_id.unwrap_or("")),
        error = %crate::util::for_log(&error.to_string()),
        answer = crate::model::failure_answer(fail_open),
        "undecodable WebSocket frame; answered without inspection"
    );
    Verdict::failure(fail_open, crate::model::ReasonCode::UndecodableFrame)
}

/// Decodes standard base64 into `buffer` and splits the result off as its own [`Bytes`].
fn decode_base64(data: &[u8], buffer: &mut BytesMut) -> Result<Bytes, base64::DecodeSliceError> {
    let estimate = base64::decoded_len_estimate(data.len());
    if buffer.capacity() < estimate {
        buffer.reserve(estimate.max(PAYLOAD_BLOCK));
    }
    buffer.resize(estimate, 0);
    match base64::engine::general_purpose::STANDARD.decode_slice(data, &mut buffer[..]) {
        Ok(written) => {
            buffer.truncate(written);
            Ok(buffer.split().freeze())
        }
        Err(error) => {
            buffer.clear();
            Err(error)
        }
    }
}

/// The HTTP-level decision field (ignored by the proxies for frames, required on the wire).
#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WireDecision<'a> {
    /// Let it through.
    Allow,
    /// Refuse (used to reject a configure event).
    Block {
        /// HTTP-style status.
        status: u16,
        /// Human-readable reason.
        body: Option<&'a str>,
    },
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
enum WireWebSocketDecision<'a> {
    Allow,
    Drop,
    Close { code: u16, reason: &'a str },
}

#[derive(Debug, Serialize)]
struct WireCustom<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_id: Option<&'a str>,
}

#[derive(Debug, Serialize)]
struct WireAudit<'a> {
    tags: Vec<&'a str>,
    rule_ids: &'a [Cow<'static, str>],
    reason_codes: &'a [Cow<'static, str>],
    custom: WireCustom<'a>,
}

#[derive(Debug, Serialize)]
struct WireResponse<'a> {
    version: u32,
    decision: WireDecision<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    websocket_decision: Option<WireWebSocketDecision<'a>>,
    audit: WireAudit<'a>,
}

/// Appends the JSON response for a frame verdict. `correlation_id` goes into
/// `audit.custom.correlation_id` (v2 routes responses by it; v1 ignores it).
pub fn encode_frame_response(
    out: &mut Vec<u8>,
    version: u32,
    verdict: &Verdict,
    correlation_id: Option<&str>,
) {
    if *verdict == Verdict::allow() {
        // The common answer, written without the serializer: only the id varies.
        out.extend_from_slice(b"{\"version\":");
        out.extend_from_slice(if version == 1 { b"1" } else { b"2" });
        out.extend_from_slice(
            b",\"decision\":\"allow\",\"websocket_decision\":\"allow\",\"audit\":{\"tags\":[],\"rule_ids\":[],\"reason_codes\":[],\"custom\":{",
        );
        if let Some(id) = correlation_id {
            out.extend_from_slice(b"\"correlation_id\":");
            serde_json::to_writer(&mut *out, id).expect("serializing to a Vec cannot fail");
        }
        out.extend_from_slice(b"}}}");
        return;
    }
    let websocket_decision = match &verdict.action {
        Action::Allow => WireWebSocketDecision::Allow,
        Action::Drop => WireWebSocketDecision::Drop,
        Action::Close { code, reason } => WireWebSocketDecision::Close {
            code: *code,
            reason,
        },
    };
    let response = WireResponse {
        version,
        decision: WireDecision::Allow,
        websocket_decision: Some(websocket_decision),
        audit: WireAudit {
            tags: verdict.tags.iter().map(|t| t.as_str()).collect(),
            rule_ids: &verdict.rule_ids,
            reason_codes: &verdict.reason_codes,
            custom: WireCustom { correlation_id },
        },
    };
    serde_json::to_writer(out, &response).expect("serializing to a Vec cannot fail");
}

/// Appends a JSON response with only an HTTP-level decision (configure and non-frame events).
pub fn encode_plain_response(
    out: &mut Vec<u8>,
    version: u32,
    decision: WireDecision<'_>,
    reason_codes: &[Cow<'static, str>],
    correlation_id: Option<&str>,
) {
    let response = WireResponse {
        version,
        decision,
        websocket_decision: None,
        audit: WireAudit {
            tags: Vec::new(),
            rule_ids: &[],
            reason_codes,
            custom: WireCustom { correlation_id },
        },
    };
    serde_json::to_writer(out, &response).expect("serializing to a Vec cannot fail");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AuditTag, CLOSE_MESSAGE_TOO_BIG};

    #[test]
    fn decodes_the_verified_wire_example() {
        let json = br#"{"client_ip":"127.0.0.1","client_to_server":true,"correlation_id":"trace-1","data":"aGk=","fin":true,"frame_index":0,"opcode":"text","route_id":"ws-route"}"#;
        let frame = decode_frame(json, &mut FrameInterner::default(), |id: &str| {
            Arc::from(id)
        })
        .unwrap();
        assert_eq!(&*frame.correlation_id, "trace-1");
        assert_eq!(frame.opcode, Opcode::Text);
        assert_eq!(&frame.payload[..], b"hi");
        assert_eq!(frame.direction, Direction::ClientToServer);
        assert_eq!(frame.route_id.as_deref(), Some("ws-route"));
    }

    #[test]
    fn bad_base64_keeps_the_correlation_id() {
        let json =
            br#"{"client_to_server":true,"correlation_id":"c","data":"!!!","opcode":"text"}"#;
        let (id, err) = decode_frame(json, &mut FrameInterner::default(), |id: &str| {
            Arc::from(id)
        })
        .unwrap_err();
        assert_eq!(id.as_deref(), Some("c"));
        assert!(matches!(err, FrameDecodeError::Base64(_)));
    }

    #[test]
    fn allow_fast_path_is_the_serializers_answer() {
        for (version, id) in [(1, None), (2, Some("c\"1\\\u{1}é"))] {
            let mut fast = Vec::new();
            encode_frame_response(&mut fast, version, &Verdict::allow(), id);
            let expected = serde_json::json!({
                "version": version,
                "decision": "allow",
                "websocket_decision": "allow",
                "audit": {"tags": [], "rule_ids": [], "reason_codes": [], "custom":
                    id.map_or(serde_json::json!({}), |id| serde_json::json!({"correlation_id": id}))},
            });
            assert_eq!(
                serde_json::from_slice::<serde_json::Value>(&fast).unwrap(),
                expected
            );
        }
    }

    #[test]
    fn payloads_share_a_buffer_but_stay_distinct() {
        let mut interner = FrameInterner::default();
        let event = |data: &str| {
            format!(
                r#"{{"correlation_id":"c","opcode":"text","data":"{data}","client_to_server":true}}"#
            )
        };
        let first = decode_frame(event("aGVsbG8=").as_bytes(), &mut interner, |id: &str| {
            Arc::from(id)
        })
        .unwrap();
        let second = decode_frame(event("d29ybGQ=").as_bytes(), &mut interner, |id: &str| {
            Arc::from(id)
        })
        .unwrap();
        assert_eq!(&first.payload[..], b"hello");
        assert_eq!(&second.payload[..], b"world");
        assert!(
            decode_frame(event("@@").as_bytes(), &mut interner, |id: &str| Arc::from(
                id
            ))
            .is_err()
        );
        let third = decode_frame(event("").as_bytes(), &mut interner, |id: &str| {
            Arc::from(id)
        })
        .unwrap();
        assert!(third.payload.is_empty());
    }

    #[test]
    fn encodes_close_with_audit_and_correlation_id() {
        let mut verdict = Verdict::close(CLOSE_MESSAGE_TOO_BIG, "too big");
        verdict.add_tag(AuditTag::SizeLimit);
        let mut out = Vec::new();
        encode_frame_response(&mut out, 2, &verdict, Some("cid"));
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["version"], 2);
        assert_eq!(value["decision"], "allow");
        assert_eq!(value["websocket_decision"]["close"]["code"], 1009);
        assert_eq!(value["audit"]["tags"][0], "ws-size-limit");
        assert_eq!(value["audit"]["custom"]["correlation_id"], "cid");
    }

    #[test]
    fn request_headers_name_their_websockets_client_ip_and_route() {
        // As Sentinel's v1 and Zentinel's v2 UDS write it (v2 adds the top-level id).
        let v1 = br#"{"metadata":{"correlation_id":"trace-1","request_id":"r","client_ip":"198.51.100.4","client_port":1,"server_name":null,"protocol":"HTTP/1.1","tls_version":null,"tls_cipher":null,"route_id":"ws","upstream_id":null,"timestamp":"t"},"method":"GET","uri":"/","headers":{}}"#;
        let request = upgrade_request(v1).unwrap();
        assert_eq!(&*request.correlation_id, "trace-1");
        assert_eq!(&*request.client_ip, "198.51.100.4");
        assert_eq!(request.route_id.as_deref(), Some("ws"));
        let v2 = br#"{"correlation_id":"trace-2","metadata":{"correlation_id":"","client_ip":"198.51.100.5"}}"#;
        let request = upgrade_request(v2).unwrap();
        assert_eq!(
            (&*request.correlation_id, &*request.client_ip),
            ("trace-2", "198.51.100.5")
        );
        assert_eq!(request.route_id, None);
        let route_only = br#"{"metadata":{"correlation_id":"x","client_ip":"","route_id":"chat"}}"#;
        assert_eq!(
            upgrade_request(route_only).unwrap().route_id.as_deref(),
            Some("chat")
        );
        assert!(
            upgrade_request(br#"{"metadata":{"correlation_id":"x","client_ip":""}}"#).is_none()
        );
        assert!(upgrade_request(br#"{"metadata":{"client_ip":"198.51.100.5"}}"#).is_none());
        assert!(upgrade_request(b"not json").is_none());
    }
}
