//! `limits::reassembly::Reassembly::push` with arbitrary sequences of data frames (text, binary,
//! continuation; any FIN bit; any payload) under arbitrary size limits that may change from frame
//! to frame, as the process-wide `--max-buffered-bytes` budget and configure events change them.
//!
//! Checked against a model of RFC 6455 fragmentation: the bytes held never exceed the buffer cap
//! in force; a complete message is exactly the concatenation of its fragments; a window is a
//! suffix of the message so far that ends with the new fragment and repeats at most
//! `window_context` earlier bytes; continuations inherit the first fragment's type; every refusal
//! names a limit that was really broken, with the true sizes; no limit is broken without a
//! refusal; and once a message is refused, its remaining fragments are refused too.

#![no_main]

mod common;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sentinel_ws_agent::limits::reassembly::{MessageKind, SizeLimits};
use sentinel_ws_agent::limits::{Assembled, Reassembly, ReassemblyError};
use sentinel_ws_agent::model::Opcode;

struct Model {
    kind: MessageKind,
    data: Vec<u8>,
    total: u64,
    refused: bool,
    /// Whether the message's bytes are kept (decided by its first fragment).
    kept: bool,
}

fn small_limit(input: &mut common::Cursor<'_>) -> u64 {
    match input.u8() % 4 {
        0 => 0,
        _ => u64::from(input.u16() % 2048),
    }
}

fn limits(input: &mut common::Cursor<'_>) -> SizeLimits {
    SizeLimits {
        max_text_frame: small_limit(input),
        max_binary_frame: small_limit(input),
        max_message: small_limit(input),
        buffer_cap: usize::from(input.u16() % 4096),
        window_context: usize::from(input.u8() % 64),
        keep_binary: input.bool(),
    }
}

fn keeps(limits: &SizeLimits, kind: MessageKind) -> bool {
    kind == MessageKind::Text || limits.keep_binary
}

fuzz_target!(|data: &[u8]| {
    let mut input = common::Cursor::new(data);
    let mut limits = limits(&mut input);
    let mut reassembly = Reassembly::default();
    let mut model: Option<Model> = None;
    let mut frames = 0;
    while !input.is_empty() && frames < 256 {
        frames += 1;
        let control = input.u8();
        if control & 0x80 != 0 {
            limits = self::limits(&mut input);
        }
        let opcode = match control % 3 {
            0 => Opcode::Text,
            1 => Opcode::Binary,
            _ => Opcode::Continuation,
        };
        let fin = control & 0x04 != 0;
        let payload = input.short();
        let size = payload.len() as u64;

        // The model: what this frame belongs to.
        let (kind, fin, starts) = match opcode {
            Opcode::Text => (MessageKind::Text, fin, true),
            Opcode::Binary => (MessageKind::Binary, fin, true),
            _ => match &model {
                Some(m) => (m.kind, fin, false),
                // A stray continuation is inspected as a complete text message.
                None => (MessageKind::Text, true, true),
            },
        };
        if starts {
            model = Some(Model {
                kind,
                data: Vec::new(),
                total: 0,
                refused: false,
                kept: keeps(&limits, kind),
            });
        }
        let m = model.as_mut().unwrap();
        m.total += size;
        m.data.extend_from_slice(payload);
        let was_refused = m.refused;
        let frame_limit = match kind {
            MessageKind::Text => limits.max_text_frame,
            MessageKind::Binary => limits.max_binary_frame,
        };

        let result = reassembly.push(opcode, fin, Bytes::copy_from_slice(payload), &limits);
        assert!(
            reassembly.buffered_bytes() <= limits.buffer_cap,
            "{} bytes held over a {}-byte cap",
            reassembly.buffered_bytes(),
            limits.buffer_cap
        );
        match result {
            Ok(assembled) => {
                assert!(!was_refused, "a fragment of a refused message was accepted");
                assert!(
                    frame_limit == 0 || size <= frame_limit,
                    "frame limit not enforced"
                );
                assert!(
                    limits.max_message == 0 || m.total <= limits.max_message,
                    "message limit not enforced"
                );
                match assembled {
                    Assembled::Complete { kind: k, message } => {
                        assert!(fin);
                        assert_eq!(k, kind);
                        assert!(m.kept);
                        assert_eq!(
                            &message[..],
                            &m.data[..],
                            "message differs from its fragments"
                        );
                    }
                    Assembled::Partial { kind: k, window } => {
                        assert!(!fin);
                        assert_eq!(k, kind);
                        assert!(m.kept);
                        assert!(
                            m.data.ends_with(&window),
                            "a window is not the message's tail"
                        );
                        assert!(window.ends_with(payload));
                        assert!(window.len() <= payload.len() + limits.window_context);
                        assert!(m.data.len() <= limits.buffer_cap, "buffer cap not enforced");
                    }
                    Assembled::Nothing { kind: k } => {
                        assert_eq!(k, kind);
                        assert!(!m.kept, "a kept message was not assembled");
                    }
                }
                if fin {
                    model = None;
                }
            }
            Err(error) => {
                match error {
                    ReassemblyError::FrameTooBig {
                        kind: k,
                        size: s,
                        limit,
                    } => {
                        assert_eq!(k, kind);
                        if !was_refused {
                            assert!(limit > 0 && s > limit && s == size && limit == frame_limit);
                        }
                    }
                    ReassemblyError::MessageTooBig {
                        kind: k,
                        size: s,
                        limit,
                    } => {
                        assert_eq!(k, kind);
                        assert_eq!(s, m.total);
                        if !was_refused {
                            assert!(limit > 0 && s > limit && limit == limits.max_message);
                        }
                    }
                    ReassemblyError::BufferFull {
                        kind: k,
                        size: s,
                        limit,
                    } => {
                        assert_eq!(k, kind);
                        assert_eq!(s, m.total);
                        if !was_refused {
                            // Bytes are held when the first fragment was kept; a first fragment
                            // is checked against the policy in force.
                            assert!(if starts { keeps(&limits, kind) } else { m.kept });
                            assert!(s > limit && limit == limits.buffer_cap as u64);
                        }
                    }
                }
                if fin {
                    model = None;
                } else {
                    m.refused = true;
                }
            }
        }
        assert_eq!(reassembly.is_mid_message(), model.is_some());
    }
});
