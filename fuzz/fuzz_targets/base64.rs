//! The base64 layer of the frame event (`data`), through `json_wire::decode_frame` as the
//! transports call it.
//!
//! Checked: any payload, encoded the way the proxies encode it (standard alphabet, padding) and
//! written with or without JSON `\u` escapes, decodes to exactly that payload; and whatever text
//! the agent does accept as `data` is the canonical encoding of what it decoded, so the bytes it
//! inspects are the only bytes that text can stand for.

#![no_main]

mod common;

use std::fmt::Write;
use std::sync::Arc;

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use sentinel_ws_agent::transport::json_wire::{decode_frame, FrameDecodeError, FrameInterner};

/// `text` as a JSON string literal in which the characters picked by `mask` are `\u` escapes.
fn escaped(text: &str, mask: &[u8]) -> String {
    let mut out = String::from("\"");
    for (i, c) in text.chars().enumerate() {
        let escape = !mask.is_empty() && mask[i % mask.len()] & (1 << (i % 8)) != 0;
        match c {
            '"' | '\\' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if escape && (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn event(data_literal: &str) -> Vec<u8> {
    format!(
        r#"{{"correlation_id":"b64","opcode":"binary","client_to_server":true,"fin":true,"data":{data_literal}}}"#
    )
    .into_bytes()
}

fuzz_target!(|data: &[u8]| {
    let mut input = common::Cursor::new(data);
    let mask = input.short();
    let rest = input.rest();
    let mut interner = FrameInterner::default();

    // What a proxy sends always decodes to the frame's payload.
    let encoded = base64::engine::general_purpose::STANDARD.encode(rest);
    let frame = decode_frame(
        &event(&escaped(&encoded, mask)),
        &mut interner,
        |s: &str| Arc::from(s),
    )
    .expect("the proxy's encoding decodes");
    assert_eq!(&frame.payload[..], rest);

    // Whatever else is accepted is canonical.
    let text = String::from_utf8_lossy(rest);
    match decode_frame(&event(&escaped(&text, mask)), &mut interner, |s: &str| {
        Arc::from(s)
    }) {
        Ok(frame) => {
            assert_eq!(
                base64::engine::general_purpose::STANDARD.encode(&frame.payload),
                text,
                "accepted a non-canonical encoding"
            );
        }
        Err((id, error)) => {
            assert_eq!(id.as_deref(), Some("b64"));
            assert!(matches!(error, FrameDecodeError::Base64(_)), "{error}");
        }
    }
});
