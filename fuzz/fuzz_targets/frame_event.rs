//! The JSON frame event v1 and v2 share (`transport::json_wire`): `decode_frame` and
//! `correlation_id_of` on raw bytes (half the time) or on an event object built from the input,
//! the v1 one-pass read of the same event in its envelope (`decode_frame_request`, which must
//! agree with the event alone), then the response encoders on what was decoded.
//!
//! Checked: no panic; a decoded frame carries exactly the event's fields (payload = the base64
//! decoding of `data`); when decoding fails, the correlation id it hands back for the answer is
//! the one `correlation_id_of` reads; a response always encodes to JSON that carries the
//! correlation id in `audit.custom` (v2 routing) and a close reason within 123 bytes.

#![no_main]

mod common;

use std::sync::Arc;

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use sentinel_ws_agent::model::{Opcode, Verdict, MAX_CLOSE_REASON_BYTES};
use sentinel_ws_agent::transport::json_wire::{
    correlation_id_of, decode_frame, encode_frame_response, encode_plain_response,
    FrameDecodeError, FrameInterner, WireDecision,
};
use sentinel_ws_agent::transport::v1::decode_frame_request;

fuzz_target!(|data: &[u8]| {
    let mut input = common::Cursor::new(data);
    let json = if input.u8() & 1 == 0 {
        input.rest().to_vec()
    } else {
        common::frame_event(&mut input).0.into_bytes()
    };
    let mut interner = FrameInterner::default();
    let id = correlation_id_of(&json);
    // Lossy: the agent (like serde_json for any struct) does not check UTF-8 inside the values of
    // fields it ignores, which is harmless; the fields it reads are checked.
    let value: Option<serde_json::Value> =
        serde_json::from_str(&String::from_utf8_lossy(&json)).ok();
    // The v1 codec reads envelope and event in one pass: it must decode exactly what the event
    // alone decodes, and leave to the general path (None) or refuse what the event alone refuses.
    let mut envelope = br#"{"version":1,"event_type":"web_socket_frame","payload":"#.to_vec();
    envelope.extend_from_slice(&json);
    envelope.push(b'}');
    let one_pass = decode_frame_request(&envelope, &mut FrameInterner::default(), |s: &str| {
        Arc::from(s)
    });
    let alone = decode_frame(&json, &mut FrameInterner::default(), |s: &str| Arc::from(s));
    match (&one_pass, &alone) {
        (Some(Ok(a)), Ok(b)) => {
            assert_eq!(
                (&a.correlation_id, a.opcode, &a.payload, a.direction, a.fin),
                (&b.correlation_id, b.opcode, &b.payload, b.direction, b.fin)
            );
            assert_eq!((&a.route_id, &a.client_ip), (&b.route_id, &b.client_ip));
        }
        (Some(Err((a, _))), Err((b, _))) => assert_eq!(a, b),
        (None, Err(_)) => {}
        (one_pass, alone) => panic!("one pass {one_pass:?}, the event alone {alone:?}"),
    }
    match decode_frame(&json, &mut interner, |s: &str| Arc::from(s)) {
        Ok(frame) => {
            let value = value.expect("a decoded event is JSON");
            assert_eq!(id.as_deref(), Some(&*frame.correlation_id));
            assert_eq!(
                value["correlation_id"].as_str(),
                Some(&*frame.correlation_id)
            );
            assert_eq!(
                Some(frame.opcode),
                Opcode::from_name(value["opcode"].as_str().unwrap())
            );
            let data = value.get("data").and_then(|d| d.as_str()).unwrap_or("");
            let payload = base64::engine::general_purpose::STANDARD
                .decode(data)
                .expect("the agent decoded it");
            assert_eq!(&frame.payload[..], &payload[..]);
            assert_eq!(
                frame.direction.index() == 0,
                value["client_to_server"].as_bool().unwrap()
            );
            assert_eq!(
                frame.fin,
                value.get("fin").map_or(true, |f| f.as_bool().unwrap())
            );
            assert_eq!(
                frame.route_id.as_deref(),
                value.get("route_id").and_then(|r| r.as_str())
            );

            let mut verdict = Verdict::close(1008, format!("{}é", frame.correlation_id).repeat(40));
            verdict.reason_codes.push(frame.opcode.as_str().into());
            let mut out = Vec::new();
            encode_frame_response(&mut out, 2, &verdict, Some(&frame.correlation_id));
            let response: serde_json::Value = serde_json::from_slice(&out).expect("JSON out");
            assert_eq!(
                response["audit"]["custom"]["correlation_id"].as_str(),
                Some(&*frame.correlation_id)
            );
            let reason = response["websocket_decision"]["close"]["reason"]
                .as_str()
                .expect("a close reason");
            assert!(
                reason.len() <= MAX_CLOSE_REASON_BYTES,
                "{} bytes",
                reason.len()
            );
        }
        Err((error_id, error)) => {
            match error {
                FrameDecodeError::Json(_) => assert_eq!(error_id, id),
                FrameDecodeError::Opcode(ref name) => {
                    assert!(name.len() <= 32 + '…'.len_utf8());
                    assert_eq!(error_id, id);
                }
                FrameDecodeError::Base64(_) => assert_eq!(error_id, id),
            }
            let mut out = Vec::new();
            encode_plain_response(
                &mut out,
                1,
                WireDecision::Block {
                    status: 400,
                    body: Some(&error.to_string()),
                },
                &[],
                error_id.as_deref(),
            );
            let response: serde_json::Value = serde_json::from_slice(&out).expect("JSON out");
            assert_eq!(
                response["audit"]["custom"]["correlation_id"].as_str(),
                error_id.as_deref()
            );
        }
    }
});
