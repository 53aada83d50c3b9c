//! Protocol v2 over a connection: a handshake (well-formed with a configuration from the input,
//! or raw bytes), then `[u32 length][type][payload]` messages (mostly well-formed frame events,
//! configure, ping, cancel and HTTP events, some raw, the last possibly with a lying length)
//! written to a fresh agent through the same dispatch as the Unix socket listener.
//!
//! Checked: no panic or stall; only whole messages come back; the first is the handshake
//! response; after a refused handshake nothing else; otherwise exactly the expected answers, in
//! any order: a 0x20 carrying `audit.custom.correlation_id` for every frame, HTTP event and
//! unknown message whose correlation id can be read, a 0x20 for every configure, a 0x42 echoing
//! every ping, nothing for a cancel.

#![no_main]

mod common;

use std::collections::BTreeMap;

use common::Cursor;
use libfuzzer_sys::fuzz_target;
use sentinel_ws_agent::transport::json_wire::correlation_id_of;
use sentinel_ws_agent::transport::v2::message_type as mt;

/// An answer the agent owes: (message type, correlation id or ping payload).
type Owed = (u8, Option<Vec<u8>>);

const TYPES: [u8; 10] = [
    mt::WEBSOCKET_FRAME,
    mt::WEBSOCKET_FRAME,
    mt::WEBSOCKET_FRAME,
    mt::CONFIGURE,
    mt::PING,
    mt::CANCEL,
    mt::REQUEST_HEADERS,
    mt::GUARDRAIL_INSPECT,
    mt::HANDSHAKE_REQUEST,
    0x99,
];

struct Plan {
    wire: Vec<u8>,
    owed: Vec<Owed>,
    /// The last message's length was arbitrary and not refused: more answers may come.
    open_ended: bool,
}

fn push_message(wire: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    wire.extend_from_slice(&(payload.len() as u32 + 1).to_be_bytes());
    wire.push(kind);
    wire.extend_from_slice(payload);
}

fn owed_for(kind: u8, payload: &[u8]) -> Option<Owed> {
    let id = || correlation_id_of(payload).map(String::into_bytes);
    match kind {
        mt::CONFIGURE => Some((mt::AGENT_RESPONSE, id())),
        mt::PING => Some((mt::PONG, Some(payload.to_vec()))),
        mt::CANCEL => None,
        // A frame event is always answered: with the empty id when its id cannot be read (an
        // empty body included).
        mt::WEBSOCKET_FRAME => Some((mt::AGENT_RESPONSE, Some(id().unwrap_or_default()))),
        _ => id().map(|id| (mt::AGENT_RESPONSE, Some(id))),
    }
}

fn build(input: &mut Cursor<'_>) -> Plan {
    let mut wire = Vec::new();
    let handshake = if input.u8() % 4 == 0 {
        input.long().to_vec()
    } else {
        let config = match input.u8() % 4 {
            0 => "null".to_string(),
            1 => "{}".to_string(),
            _ => String::from_utf8_lossy(input.short()).into_owned(),
        };
        format!(
            r#"{{"supported_versions":[2],"proxy_id":"zentinel-proxy","proxy_version":"0.6.54","config":{config},"supported_encodings":["json"]}}"#
        )
        .into_bytes()
    };
    push_message(&mut wire, mt::HANDSHAKE_REQUEST, &handshake);
    let mut owed = Vec::new();
    let mut open_ended = false;
    let mut messages = 0;
    while !input.is_empty() && messages < 64 {
        messages += 1;
        let control = input.u8();
        if control >= 0xf0 {
            // A length that does not match what follows: the rest of the input is the message.
            let length = input.u32() as usize;
            let rest = input.rest();
            wire.extend_from_slice(&(length as u32).to_be_bytes());
            wire.extend_from_slice(rest);
            if length > 0 && length <= 16 * 1024 * 1024 && rest.len() >= length {
                if let Some(o) = owed_for(rest[0], &rest[1..length]) {
                    owed.push(o);
                }
                open_ended = true;
            }
            break;
        }
        let kind = TYPES[usize::from(control) % TYPES.len()];
        let payload = match (kind, control / 16) {
            (_, 0..=1) => input.long().to_vec(),
            (mt::WEBSOCKET_FRAME, _) => common::frame_event(input).0.into_bytes(),
            (mt::CONFIGURE, _) => format!(
                r#"{{"config":{},"config_version":null,"correlation_id":"zentinel-configure-a-{}"}}"#,
                String::from_utf8_lossy(input.short()),
                input.u8()
            )
            .into_bytes(),
            (mt::PING, _) => format!(r#"{{"sequence":{},"timestamp_ms":1}}"#, input.u16()).into_bytes(),
            (mt::CANCEL, _) => br#"{"correlation_id":"ws-1","reason":0,"timestamp_ms":1}"#.to_vec(),
            _ => format!(
                r#"{{"correlation_id":{},"metadata":{{}}}}"#,
                common::json_string(input.short())
            )
            .into_bytes(),
        };
        push_message(&mut wire, kind, &payload);
        if let Some(o) = owed_for(kind, &payload) {
            owed.push(o);
        }
    }
    Plan {
        wire,
        owed,
        open_ended,
    }
}

fn count(owed: &[Owed]) -> BTreeMap<Owed, usize> {
    let mut counts = BTreeMap::new();
    for o in owed {
        *counts.entry(o.clone()).or_insert(0) += 1;
    }
    counts
}

fuzz_target!(|data: &[u8]| {
    let mut input = Cursor::new(data);
    let plan = build(&mut input);
    let out = common::runtime().block_on(common::with_agent(common::stream_policy(), |context| {
        common::exchange(&plan.wire, move |server| {
            common::serve_like_uds(server, context)
        })
    }));
    let messages = common::split_messages(&out);
    let (first, rest) = messages.split_first().expect("the handshake is answered");
    assert_eq!(first.first(), Some(&mt::HANDSHAKE_RESPONSE));
    let handshake: serde_json::Value =
        serde_json::from_slice(&first[1..]).expect("the handshake response is JSON");
    let accepted = handshake["success"]
        .as_bool()
        .expect("success is a boolean");
    if !accepted {
        assert!(handshake["error"].is_string(), "{handshake}");
        assert!(rest.is_empty(), "messages after a refused handshake");
        return;
    }
    let mut got = Vec::new();
    for message in rest {
        let (&kind, payload) = message.split_first().expect("a type byte");
        match kind {
            mt::HEALTH_STATUS | mt::METRICS_REPORT => continue,
            mt::PONG => got.push((kind, Some(payload.to_vec()))),
            mt::AGENT_RESPONSE => {
                let value: serde_json::Value =
                    serde_json::from_slice(payload).expect("every response is JSON");
                assert!(
                    value.get("version").is_some() && value.get("decision").is_some(),
                    "{value}"
                );
                let id = value["audit"]["custom"]["correlation_id"]
                    .as_str()
                    .map(|s| s.as_bytes().to_vec());
                got.push((kind, id));
            }
            other => panic!("unexpected message type {other:#04x}"),
        }
    }
    if plan.open_ended {
        let got = count(&got);
        for (o, n) in count(&plan.owed) {
            assert!(
                got.get(&o).copied().unwrap_or(0) >= n,
                "missing answer {o:?}"
            );
        }
    } else {
        assert_eq!(
            count(&got),
            count(&plan.owed),
            "answers differ from what was owed"
        );
    }
});
