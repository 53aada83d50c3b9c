//! Protocol v1 over a connection: a sequence of length-prefixed JSON requests (mostly
//! well-formed frame and configure events built from the input, some raw bytes, some lying
//! lengths) is written to a fresh agent through the same dispatch as the Unix socket listener.
//!
//! Checked: the agent never panics or stalls; it writes only whole messages; every complete
//! request gets exactly one answer, in order, each a JSON `AgentResponse` with `version: 1` and a
//! `decision` (a frame request also a `websocket_decision`); a length over the 10 MiB maximum is
//! answered once and the connection closed.

#![no_main]

mod common;

use common::Cursor;
use libfuzzer_sys::fuzz_target;
use sentinel_ws_agent::transport::framing::V1_MAX_MESSAGE;

/// What a request was, for checking its answer.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Sent {
    Frame,
    Other,
}

const EVENTS: [&str; 8] = [
    "request_headers",
    "request_body_chunk",
    "response_headers",
    "response_body_chunk",
    "request_complete",
    "guardrail_inspect",
    "web_socket_frame",
    "websocket_frame",
];

/// How many answers the agent owes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// One per request.
    Exact,
    /// At least one per request (the last length was arbitrary: more messages may follow).
    AtLeast,
    /// Not a v1 connection at all.
    Unknown,
}

fn build(input: &mut Cursor<'_>) -> (Vec<u8>, Vec<Sent>, Expect) {
    let mut wire = Vec::new();
    let mut sent = Vec::new();
    let mut expect = Expect::Exact;
    let mut first = true;
    while !input.is_empty() && sent.len() < 64 {
        let control = input.u8();
        let (body, kind) = match control % 8 {
            0..=3 => {
                let (event, _) = common::frame_event(input);
                (
                    format!(r#"{{"version":1,"event_type":"web_socket_frame","payload":{event}}}"#)
                        .into_bytes(),
                    Sent::Frame,
                )
            }
            4 => {
                let config = String::from_utf8_lossy(input.long()).into_owned();
                (
                    format!(r#"{{"version":1,"event_type":"configure","payload":{{"agent_id":"a","config":{config}}}}}"#)
                        .into_bytes(),
                    Sent::Other,
                )
            }
            5 => {
                let event = EVENTS[usize::from(input.u8()) % EVENTS.len()];
                let payload = String::from_utf8_lossy(input.long()).into_owned();
                (
                    format!(
                        r#"{{"version":{},"event_type":"{event}","payload":{payload}}}"#,
                        input.u8()
                    )
                    .into_bytes(),
                    Sent::Other,
                )
            }
            6 => (input.long().to_vec(), Sent::Other),
            _ => {
                // A length that does not match what follows: the rest of the input is the body.
                let length = input.u32();
                let rest = input.rest();
                wire.extend_from_slice(&length.to_be_bytes());
                wire.extend_from_slice(rest);
                let length = length as usize;
                if first && (length == 0 || rest.first() != Some(&b'{')) {
                    // Not a v1 connection (closed, or served as v2 if it starts with 0x01).
                    return (wire, sent, Expect::Unknown);
                } else if length > V1_MAX_MESSAGE {
                    // Answered by --fail-open, then the connection is closed.
                    sent.push(Sent::Other);
                } else if rest.len() >= length {
                    // The length was not a lie after all; whatever follows is more messages
                    // whose number this builder does not model.
                    sent.push(Sent::Other);
                    expect = Expect::AtLeast;
                }
                break;
            }
        };
        if first && body.first() != Some(&b'{') {
            // Not a v1 connection: the listener closes it, or serves it as v2 (0x01), which is
            // the v2_stream target's business. Start it like v1 instead.
            continue;
        }
        first = false;
        wire.extend_from_slice(&(body.len() as u32).to_be_bytes());
        wire.extend_from_slice(&body);
        sent.push(kind);
    }
    (wire, sent, expect)
}

fuzz_target!(|data: &[u8]| {
    let mut input = Cursor::new(data);
    let (wire, sent, expect) = build(&mut input);
    let out = common::runtime().block_on(common::with_agent(common::stream_policy(), |context| {
        common::exchange(&wire, move |server| common::serve_like_uds(server, context))
    }));
    let answers = common::split_messages(&out);
    if expect == Expect::Unknown {
        return;
    }
    if expect == Expect::AtLeast {
        assert!(
            answers.len() >= sent.len(),
            "{} answers to {} requests",
            answers.len(),
            sent.len()
        );
    } else {
        assert_eq!(answers.len(), sent.len(), "one answer per request");
    }
    for (i, answer) in answers.iter().enumerate() {
        let value: serde_json::Value =
            serde_json::from_slice(answer).expect("every answer is JSON");
        assert_eq!(value["version"], 1, "{value}");
        assert!(value.get("decision").is_some(), "{value}");
        if sent.get(i) == Some(&Sent::Frame) {
            assert!(value.get("websocket_decision").is_some(), "{value}");
        }
    }
});
