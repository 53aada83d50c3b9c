//! Protocol v1 over the Unix socket (Sentinel 0.4.x): 4-byte big-endian length + JSON
//! `{"version":1,"event_type":...,"payload":...}`, strictly one request then one response, in
//! order. Events: `web_socket_frame` (inspected), `configure` (applied; allow when valid),
//! `request_headers` (allowed; its client IP and route are remembered for the WebSocket it may
//! upgrade), every other known event is allowed untouched.

use std::borrow::Cow;
use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use super::framing::{self, FramingError, V1_MAX_MESSAGE};
use super::json_wire::{self, FrameDecodeError, FrameEvent, FrameInterner, WireDecision};
use crate::agent::Agent;
use crate::model::{Frame, Verdict};
use crate::telemetry::Telemetry;
use crate::util::{cut, for_log};

/// The response `version` v1 proxies require.
const V1_VERSION: u32 = 1;

/// Event names the v1 protocol defines besides the three we act on.
const OTHER_EVENTS: [&str; 5] = [
    "request_body_chunk",
    "response_headers",
    "response_body_chunk",
    "request_complete",
    "guardrail_inspect",
];

#[derive(Debug, Deserialize)]
struct WireRequest<'a> {
    #[serde(default)]
    version: Option<u64>,
    #[serde(borrow)]
    event_type: Cow<'a, str>,
    #[serde(borrow)]
    payload: &'a RawValue,
}

/// A frame request, the envelope and its event read in one pass (most requests are frames).
#[derive(Debug, Deserialize)]
struct WireFrameRequest<'a> {
    #[serde(default)]
    version: Option<u64>,
    #[serde(borrow)]
    event_type: Cow<'a, str>,
    #[serde(borrow)]
    payload: FrameEvent<'a>,
}

#[derive(Debug, Deserialize)]
struct WireConfigure<'a> {
    #[serde(default, borrow)]
    config: Option<&'a RawValue>,
}

/// Serves one v1 connection whose first message's length and first body byte were already read.
/// A message the peer started must be finished within `read_timeout` (its length prefix after the
/// first byte, then its body); the time between messages is not limited.
pub async fn serve<S>(
    stream: S,
    agent: Agent,
    first_length: usize,
    first_byte: u8,
    read_timeout: Duration,
) -> Result<(), FramingError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Requests and answers strictly alternate, so one buffered stream serves both directions
    // (no split halves and their lock on every read and write).
    let mut stream = BufReader::with_capacity(64 * 1024, stream);
    let mut request = Vec::new();
    let mut response = Vec::with_capacity(512);
    let mut interner = FrameInterner::default();
    let mut pending_first = Some((first_length, first_byte));
    loop {
        request.clear();
        let length = match pending_first.take() {
            Some((length, byte)) => {
                request.push(byte);
                length
            }
            None => match framing::read_next_length(&mut stream, read_timeout).await {
                Ok(length) => length as usize,
                Err(FramingError::Closed) => return Ok(()),
                Err(error) => return Err(error),
            },
        };
        if let Err(error) = framing::check_length(length as u32, V1_MAX_MESSAGE) {
            // The body cannot be skipped without reading it: answer, then drop the connection.
            tracing::error!(%error, answer = crate::model::failure_answer(agent.policy().fail_open()), "v1 request too large; answered without inspection, closing the connection");
            Telemetry::get().record_protocol_error();
            start_message(&mut response);
            let verdict = Verdict::failure(
                agent.policy().fail_open(),
                crate::model::ReasonCode::RequestTooLarge,
            );
            json_wire::encode_frame_response(&mut response, V1_VERSION, &verdict, None);
            write_message(&mut stream, &mut response).await?;
            return Err(error);
        }
        let remaining = length.saturating_sub(request.len());
        framing::within(
            read_timeout,
            "inside a message body",
            framing::read_body(&mut stream, remaining, &mut request),
        )
        .await?;
        start_message(&mut response);
        handle_request(&agent, &request, &mut interner, &mut response).await;
        write_message(&mut stream, &mut response).await?;
    }
}

/// Empties `buffer` and leaves room for the length prefix, so a response goes out in one write.
fn start_message(buffer: &mut Vec<u8>) {
    buffer.clear();
    buffer.extend_from_slice(&[0; 4]);
}

/// Fills in the length prefix of a buffer begun with [`start_message`] and writes it whole.
async fn write_message<W: AsyncWrite + Unpin>(
    writer: &mut W,
    buffer: &mut [u8],
) -> Result<(), FramingError> {
    let length = u32::try_from(buffer.len().saturating_sub(4)).unwrap_or(u32::MAX);
    buffer[..4].copy_from_slice(&length.to_be_bytes());
    writer.write_all(buffer).await?;
    writer.flush().await?;
    Ok(())
}

/// A `web_socket_frame` request read in one pass, envelope and event together (most requests
/// are frames; the envelope is not read first and the event again). `None` when `json` is not a
/// frame request of that shape: then the general path reads it and says what is wrong.
pub fn decode_frame_request(
    json: &[u8],
    interner: &mut FrameInterner,
    intern_id: impl FnOnce(&str) -> std::sync::Arc<str>,
) -> Option<Result<Frame, (Option<String>, FrameDecodeError)>> {
    let request = serde_json::from_slice::<WireFrameRequest<'_>>(json).ok()?;
    if request.event_type != "web_socket_frame" {
        return None;
    }
    note_version(request.version);
    Some(request.payload.into_frame(interner, intern_id))
}

/// Logs a request whose version is not v1's (it is served anyway).
fn note_version(version: Option<u64>) {
    if version.is_some_and(|v| v != u64::from(V1_VERSION)) {
        tracing::debug!(
            ?version,
            "v1 request with an unexpected version; serving it anyway"
        );
    }
}

/// Decides a decoded frame (or answers an undecodable one by `--fail-open`) into `out`.
async fn answer_frame(
    agent: &Agent,
    decoded: Result<Frame, (Option<String>, FrameDecodeError)>,
    out: &mut Vec<u8>,
) {
    let verdict = match decoded {
        Ok(frame) => agent.decide(frame).await,
        Err((correlation_id, error)) => {
            json_wire::undecodable_frame(agent, correlation_id.as_deref(), &error)
        }
    };
    json_wire::encode_frame_response(out, V1_VERSION, &verdict, None);
}

/// Answers one request into `out`.
async fn handle_request(
    agent: &Agent,
    json: &[u8],
    interner: &mut FrameInterner,
    out: &mut Vec<u8>,
) {
    // Any other request, and a frame event that does not read in one pass, take the general
    // path below (which reports what is wrong).
    if let Some(decoded) = decode_frame_request(json, interner, |id| agent.intern(id)) {
        answer_frame(agent, decoded, out).await;
        return;
    }
    let request: WireRequest<'_> = match serde_json::from_slice(json) {
        Ok(request) => request,
        Err(error) => {
            reject_malformed(agent, out, &format!("malformed v1 request: {error}"));
            return;
        }
    };
    note_version(request.version);
    match request.event_type.as_ref() {
        "web_socket_frame" => {
            let decoded =
                json_wire::decode_frame(request.payload.get().as_bytes(), interner, |id| {
                    agent.intern(id)
                });
            answer_frame(agent, decoded, out).await;
        }
        "configure" => {
            let result = configure(agent, request.payload.get()).await;
            match result {
                Ok(_) => json_wire::encode_plain_response(
                    out,
                    V1_VERSION,
                    WireDecision::Allow,
                    &[],
                    None,
                ),
                Err(reason) => {
                    let reason = cut(&reason, 512);
                    json_wire::encode_plain_response(
                        out,
                        V1_VERSION,
                        WireDecision::Block {
                            status: 400,
                            body: Some(&reason),
                        },
                        &[Cow::Borrowed("invalid-configuration")],
                        None,
                    );
                }
            }
        }
        "request_headers" => {
            // An upgrade request names the client IP and route its WebSocket's frames may
            // lack; learned before the answer, so before any of those frames. Allowed untouched.
            if let Some(upgrade) = json_wire::upgrade_request(request.payload.get().as_bytes()) {
                agent.learn_upgrade(
                    &upgrade.correlation_id,
                    &upgrade.client_ip,
                    upgrade.route_id.as_deref(),
                );
            }
            json_wire::encode_plain_response(out, V1_VERSION, WireDecision::Allow, &[], None);
        }
        other if OTHER_EVENTS.contains(&other) => {
            tracing::debug!(
                event = other,
                "v1 event this agent does not inspect; allowed"
            );
            json_wire::encode_plain_response(out, V1_VERSION, WireDecision::Allow, &[], None);
        }
        other => {
            let message = format!("unknown v1 event type `{}`", cut(other, 64));
            reject_malformed(agent, out, &message);
        }
    }
}

/// Applies a configure event's `config`, refusing a payload over `--max-config-bytes` unparsed.
async fn configure(agent: &Agent, payload: &str) -> Result<(), String> {
    if payload.len() > agent.max_config_bytes().saturating_add(4096) {
        return Err(agent.reject_oversized(payload.len()).to_string());
    }
    let event = serde_json::from_str::<WireConfigure<'_>>(payload)
        .map_err(|e| format!("malformed configure event: {e}"))?;
    let json = event.config.map_or("null", RawValue::get);
    agent
        .configure_json(json)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn reject_malformed(agent: &Agent, out: &mut Vec<u8>, message: &str) {
    Telemetry::get().record_protocol_error();
    tracing::error!(error = %for_log(message), answer = crate::model::failure_answer(agent.policy().fail_open()), "bad v1 request; answered without inspection");
    let verdict = Verdict::failure(
        agent.policy().fail_open(),
        crate::model::ReasonCode::MalformedRequest,
    );
    json_wire::encode_frame_response(out, V1_VERSION, &verdict, None);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::{Direction, Opcode};

    fn request(event_type: &str, payload: &str) -> String {
        format!(r#"{{"payload":{payload},"version":1,"event_type":"{event_type}"}}"#)
    }

    const EVENT: &str = r#"{"client_ip":"203.0.113.9","client_to_server":false,"correlation_id":"trace-1","data":"aGk=","fin":true,"frame_index":3,"opcode":"text","route_id":"ws"}"#;

    #[test]
    fn a_frame_request_reads_in_one_pass_whatever_the_key_order() {
        let json = request("web_socket_frame", EVENT);
        let frame = decode_frame_request(json.as_bytes(), &mut FrameInterner::default(), |id| {
            Arc::from(id)
        })
        .expect("a frame request")
        .expect("a valid frame");
        assert_eq!(&*frame.correlation_id, "trace-1");
        assert_eq!(frame.direction, Direction::ServerToClient);
        assert_eq!(frame.opcode, Opcode::Text);
        assert_eq!(&frame.payload[..], b"hi");
        assert_eq!(frame.route_id.as_deref(), Some("ws"));
        assert_eq!(frame.client_ip.as_deref(), Some("203.0.113.9"));
    }

    #[test]
    fn other_requests_and_unreadable_frames_are_left_to_the_general_path() {
        let decode = |json: &str| {
            decode_frame_request(json.as_bytes(), &mut FrameInterner::default(), |id| {
                Arc::from(id)
            })
            .map(|decoded| decoded.is_ok())
        };
        assert_eq!(decode(&request("request_headers", EVENT)), None);
        assert_eq!(decode(&request("configure", r#"{"config":{}}"#)), None);
        assert_eq!(
            decode(&request("web_socket_frame", r#"{"correlation_id":"x"}"#)),
            None
        );
        assert_eq!(decode("not json"), None);
        // It reads, but its opcode is not one the proxy sends: decoded to an error that keeps
        // the correlation id, as the general path does.
        let bad_opcode = EVENT.replace(r#""opcode":"text""#, r#""opcode":"bogus""#);
        let json = request("web_socket_frame", &bad_opcode);
        let (id, _) = decode_frame_request(json.as_bytes(), &mut FrameInterner::default(), |id| {
            Arc::from(id)
        })
        .expect("a frame request")
        .expect_err("an unknown opcode");
        assert_eq!(id.as_deref(), Some("trace-1"));
    }
}
