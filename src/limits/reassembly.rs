//! Reassembly of one direction's fragmented messages (RFC 6455 section 5.4) with the frame and
//! message size limits applied on the way.
//!
//! The proxy reports frames one by one: a `text` or `binary` frame with `fin:false` starts a
//! message, `continuation` frames extend it, the one with `fin:true` ends it; control frames may
//! arrive in between and never reach this module. Continuations inherit the first fragment's type
//! and size limit. A whole message is handed out once, when it completes; meanwhile every fragment
//! yields a window (the tail of what came before plus the new bytes) so that content split across
//! fragments is seen on the fragment that completes it. Each fragment costs O(fragment + window),
//! so a message costs time linear in its size.

use bytes::{Bytes, BytesMut};

use crate::model::Opcode;

/// The type of a data message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// UTF-8 text (inspected lossily when it is not valid UTF-8).
    Text,
    /// Binary data.
    Binary,
}

impl MessageKind {
    /// The label used in reasons and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Text => "text",
            MessageKind::Binary => "binary",
        }
    }
}

/// Size bounds and buffering choices for one message stream. A limit of 0 means unlimited.
#[derive(Debug, Clone, Copy)]
pub struct SizeLimits {
    /// Largest text frame (the first fragment and its continuations).
    pub max_text_frame: u64,
    /// Largest binary frame.
    pub max_binary_frame: u64,
    /// Largest message, all fragments together.
    pub max_message: u64,
    /// Most bytes one unfinished message may hold in memory, whatever `max_message` says.
    pub buffer_cap: usize,
    /// Bytes of earlier fragments repeated in front of each new fragment's window.
    pub window_context: usize,
    /// Whether binary messages are kept for inspection (otherwise only their sizes are tracked).
    pub keep_binary: bool,
}

impl SizeLimits {
    fn frame_limit(&self, kind: MessageKind) -> u64 {
        match kind {
            MessageKind::Text => self.max_text_frame,
            MessageKind::Binary => self.max_binary_frame,
        }
    }

    fn keeps(&self, kind: MessageKind) -> bool {
        kind == MessageKind::Text || self.keep_binary
    }
}

/// What a data frame contributes to inspection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assembled {
    /// Nothing to inspect (a binary fragment while binary messages are not kept).
    Nothing {
        /// The message's type.
        kind: MessageKind,
    },
    /// The message is unfinished: inspect this window (tail of earlier fragments + this one).
    Partial {
        /// The message's type.
        kind: MessageKind,
        /// The bytes to inspect now.
        window: Bytes,
    },
    /// The message is complete.
    Complete {
        /// The message's type.
        kind: MessageKind,
        /// The whole message.
        message: Bytes,
    },
}

/// A size bound that the frame or its message broke. The rest of the message is refused too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReassemblyError {
    /// A single frame is over its type's frame limit.
    #[error("{} frame of {size} bytes exceeds the {limit}-byte limit", kind.as_str())]
    FrameTooBig {
        /// The message's type.
        kind: MessageKind,
        /// The frame's size.
        size: u64,
        /// The limit it broke.
        limit: u64,
    },
    /// The fragments so far are over the message limit.
    #[error("{} message of {size}+ bytes exceeds the {limit}-byte limit", kind.as_str())]
    MessageTooBig {
        /// The message's type.
        kind: MessageKind,
        /// Bytes seen so far.
        size: u64,
        /// The limit it broke.
        limit: u64,
    },
    /// The unfinished message would hold more memory than the agent allows per message.
    #[error("{} message of {size}+ bytes exceeds the {limit}-byte reassembly buffer", kind.as_str())]
    BufferFull {
        /// The message's type.
        kind: MessageKind,
        /// Bytes seen so far.
        size: u64,
        /// The buffer bound.
        limit: u64,
    },
}

#[derive(Debug)]
struct InProgress {
    kind: MessageKind,
    total: u64,
    /// Bytes so far; `None` when the kind is not kept or the message was refused.
    buffer: Option<BytesMut>,
    /// Set once a limit refused the message: its remaining fragments are refused too.
    refused: Option<ReassemblyError>,
}

/// One direction's reassembly state: at most one unfinished message.
#[derive(Debug, Default)]
pub struct Reassembly {
    in_progress: Option<InProgress>,
}

impl Reassembly {
    /// Bytes held for the unfinished message.
    pub fn buffered_bytes(&self) -> usize {
        self.in_progress
            .as_ref()
            .and_then(|p| p.buffer.as_ref())
            .map_or(0, |b| b.len())
    }

    /// True while a fragmented message is unfinished.
    pub fn is_mid_message(&self) -> bool {
        self.in_progress.is_some()
    }

    /// Forgets any unfinished message (used when the connection state is dropped).
    pub fn clear(&mut self) {
        self.in_progress = None;
    }

    /// Takes one data frame (`text`, `binary` or `continuation`).
    ///
    /// A `continuation` with no message in progress is treated as a complete text message, so
    /// that a stray fragment is inspected rather than skipped. A `text`/`binary` frame arriving
    /// while a message is unfinished abandons the unfinished one (the peer broke RFC 6455; its
    /// fragments were already inspected as windows).
    pub fn push(
        &mut self,
        opcode: Opcode,
        fin: bool,
        payload: Bytes,
        limits: &SizeLimits,
    ) -> Result<Assembled, ReassemblyError> {
        let size = payload.len() as u64;
        match opcode {
            Opcode::Text | Opcode::Binary => {
                let kind = if opcode == Opcode::Text {
                    MessageKind::Text
                } else {
                    MessageKind::Binary
                };
                self.in_progress = None;
                self.start(kind, fin, payload, size, limits)
            }
            _ => match self.in_progress.take() {
                None => self.start(MessageKind::Text, true, payload, size, limits),
                Some(progress) => self.extend(progress, fin, payload, size, limits),
            },
        }
    }

    fn start(
        &mut self,
        kind: MessageKind,
        fin: bool,
        payload: Bytes,
        size: u64,
        limits: &SizeLimits,
    ) -> Result<Assembled, ReassemblyError> {
        let refusal = check_frame(kind, size, limits)
            .or_else(|| check_message(kind, size, limits))
            .or_else(|| (!fin).then(|| check_buffer(kind, size, limits)).flatten());
        if let Some(error) = refusal {
            if !fin {
                self.in_progress = Some(InProgress {
                    kind,
                    total: size,
                    buffer: None,
                    refused: Some(error),
                });
            }
            return Err(error);
        }
        if fin {
            return Ok(if limits.keeps(kind) {
                Assembled::Complete {
                    kind,
                    message: payload,
                }
            } else {
                Assembled::Nothing { kind }
            });
        }
        let keep = limits.keeps(kind);
        self.in_progress = Some(InProgress {
            kind,
            total: size,
            buffer: keep.then(|| BytesMut::from(&payload[..])),
            refused: None,
        });
        Ok(if keep {
            Assembled::Partial {
                kind,
                window: payload,
            }
        } else {
            Assembled::Nothing { kind }
        })
    }

    fn extend(
        &mut self,
        mut progress: InProgress,
        fin: bool,
        payload: Bytes,
        size: u64,
        limits: &SizeLimits,
    ) -> Result<Assembled, ReassemblyError> {
        let kind = progress.kind;
        progress.total = progress.total.saturating_add(size);
        if let Some(error) = progress.refused {
            let error = refresh_size(error, progress.total);
            if !fin {
                self.in_progress = Some(progress);
            }
            return Err(error);
        }
        // A message that holds a buffer is bounded by the cap even if the policy stopped keeping
        // its type since it started (a configure event turned binary inspection off mid-message).
        let refusal = check_frame(kind, size, limits)
            .or_else(|| check_message(kind, progress.total, limits))
            .or_else(|| {
                progress
                    .buffer
                    .is_some()
                    .then(|| check_held(kind, progress.total, limits))
                    .flatten()
            });
        if let Some(error) = refusal {
            if !fin {
                progress.buffer = None;
                progress.refused = Some(error);
                self.in_progress = Some(progress);
            }
            return Err(error);
        }
        let Some(mut buffer) = progress.buffer.take() else {
            if !fin {
                self.in_progress = Some(progress);
            }
            return Ok(Assembled::Nothing { kind });
        };
        let context_start = buffer.len().saturating_sub(limits.window_context);
        buffer.extend_from_slice(&payload);
        if fin {
            return Ok(Assembled::Complete {
                kind,
                message: buffer.freeze(),
            });
        }
        let window = Bytes::copy_from_slice(&buffer[context_start..]);
        progress.buffer = Some(buffer);
        self.in_progress = Some(progress);
        Ok(Assembled::Partial { kind, window })
    }
}

fn check_frame(kind: MessageKind, size: u64, limits: &SizeLimits) -> Option<ReassemblyError> {
    let limit = limits.frame_limit(kind);
    (limit > 0 && size > limit).then_some(ReassemblyError::FrameTooBig { kind, size, limit })
}

fn check_message(kind: MessageKind, total: u64, limits: &SizeLimits) -> Option<ReassemblyError> {
    let limit = limits.max_message;
    (limit > 0 && total > limit).then_some(ReassemblyError::MessageTooBig {
        kind,
        size: total,
        limit,
    })
}

fn check_buffer(kind: MessageKind, total: u64, limits: &SizeLimits) -> Option<ReassemblyError> {
    if !limits.keeps(kind) {
        return None;
    }
    check_held(kind, total, limits)
}

/// The cap on bytes held, for a message whose bytes are held.
fn check_held(kind: MessageKind, total: u64, limits: &SizeLimits) -> Option<ReassemblyError> {
    let limit = limits.buffer_cap as u64;
    (total > limit).then_some(ReassemblyError::BufferFull {
        kind,
        size: total,
        limit,
    })
}

/// The refusal repeated for a later fragment, with the running size.
fn refresh_size(error: ReassemblyError, total: u64) -> ReassemblyError {
    match error {
        ReassemblyError::FrameTooBig { kind, size, limit } => {
            ReassemblyError::FrameTooBig { kind, size, limit }
        }
        ReassemblyError::MessageTooBig { kind, limit, .. } => ReassemblyError::MessageTooBig {
            kind,
            size: total,
            limit,
        },
        ReassemblyError::BufferFull { kind, limit, .. } => ReassemblyError::BufferFull {
            kind,
            size: total,
            limit,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> SizeLimits {
        SizeLimits {
            max_text_frame: 0,
            max_binary_frame: 0,
            max_message: 0,
            buffer_cap: 1024,
            window_context: 4,
            keep_binary: false,
        }
    }

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn whole_message_passes_without_copy() {
        let mut r = Reassembly::default();
        let payload = b("hello");
        let out = r
            .push(Opcode::Text, true, payload.clone(), &limits())
            .unwrap();
        let Assembled::Complete { message, .. } = out else {
            panic!("{out:?}")
        };
        assert_eq!(message.as_ptr(), payload.as_ptr());
    }

    #[test]
    fn fragments_give_windows_then_the_whole_message() {
        let mut r = Reassembly::default();
        let l = limits();
        assert_eq!(
            r.push(Opcode::Text, false, b("<scr"), &l).unwrap(),
            Assembled::Partial {
                kind: MessageKind::Text,
                window: b("<scr")
            }
        );
        assert_eq!(
            r.push(Opcode::Continuation, false, b("ipt>al"), &l)
                .unwrap(),
            Assembled::Partial {
                kind: MessageKind::Text,
                window: b("<scr")
                    .iter()
                    .chain(b"ipt>al")
                    .copied()
                    .collect::<Vec<u8>>()
                    .into()
            }
        );
        assert_eq!(r.buffered_bytes(), 10);
        assert_eq!(
            r.push(Opcode::Continuation, true, b("ert(1)"), &l).unwrap(),
            Assembled::Complete {
                kind: MessageKind::Text,
                message: b("<script>alert(1)")
            }
        );
        assert!(!r.is_mid_message());
    }

    #[test]
    fn window_context_is_bounded() {
        let mut r = Reassembly::default();
        let l = limits();
        r.push(Opcode::Text, false, b("0123456789"), &l).unwrap();
        let out = r.push(Opcode::Continuation, false, b("ab"), &l).unwrap();
        assert_eq!(
            out,
            Assembled::Partial {
                kind: MessageKind::Text,
                window: b("6789ab")
            }
        );
    }

    #[test]
    fn continuations_inherit_type_and_frame_limit() {
        let mut r = Reassembly::default();
        let l = SizeLimits {
            max_text_frame: 4,
            ..limits()
        };
        r.push(Opcode::Text, false, b("abc"), &l).unwrap();
        let err = r
            .push(Opcode::Continuation, false, b("abcde"), &l)
            .unwrap_err();
        assert!(matches!(
            err,
            ReassemblyError::FrameTooBig {
                kind: MessageKind::Text,
                size: 5,
                limit: 4
            }
        ));
        // The rest of the refused message is refused too, then the state resets.
        assert!(r.push(Opcode::Continuation, true, b("a"), &l).is_err());
        assert!(r.push(Opcode::Text, true, b("ok"), &l).is_ok());
    }

    #[test]
    fn message_limit_counts_all_fragments() {
        let mut r = Reassembly::default();
        let l = SizeLimits {
            max_message: 8,
            ..limits()
        };
        r.push(Opcode::Binary, false, b("1234"), &l).unwrap();
        r.push(Opcode::Continuation, false, b("1234"), &l).unwrap();
        let err = r.push(Opcode::Continuation, true, b("1"), &l).unwrap_err();
        assert!(matches!(
            err,
            ReassemblyError::MessageTooBig {
                size: 9,
                limit: 8,
                ..
            }
        ));
        assert!(!r.is_mid_message());
    }

    #[test]
    fn binary_is_tracked_but_not_kept_unless_asked() {
        let mut r = Reassembly::default();
        let l = limits();
        assert_eq!(
            r.push(Opcode::Binary, false, b("xx"), &l).unwrap(),
            Assembled::Nothing {
                kind: MessageKind::Binary
            }
        );
        assert_eq!(r.buffered_bytes(), 0);
        assert_eq!(
            r.push(Opcode::Continuation, true, b("yy"), &l).unwrap(),
            Assembled::Nothing {
                kind: MessageKind::Binary
            }
        );
        let keep = SizeLimits {
            keep_binary: true,
            ..l
        };
        r.push(Opcode::Binary, false, b("xx"), &keep).unwrap();
        assert!(matches!(
            r.push(Opcode::Continuation, true, b("yy"), &keep).unwrap(),
            Assembled::Complete {
                kind: MessageKind::Binary,
                ..
            }
        ));
    }

    #[test]
    fn buffer_cap_bounds_memory() {
        let mut r = Reassembly::default();
        let l = SizeLimits {
            buffer_cap: 6,
            ..limits()
        };
        r.push(Opcode::Text, false, b("1234"), &l).unwrap();
        let err = r
            .push(Opcode::Continuation, false, b("567"), &l)
            .unwrap_err();
        assert!(matches!(err, ReassemblyError::BufferFull { .. }));
        assert_eq!(r.buffered_bytes(), 0);
    }

    #[test]
    fn buffer_cap_holds_when_binary_stops_being_kept_mid_message() {
        // Found by the `reassembly` fuzz target: a binary message started while binary messages
        // were kept, then a configure event turned that off; its later fragments were appended
        // without the cap check, so one message could hold unbounded memory.
        let mut r = Reassembly::default();
        let keep = SizeLimits {
            keep_binary: true,
            buffer_cap: 6,
            ..limits()
        };
        r.push(Opcode::Binary, false, b("1234"), &keep).unwrap();
        let stop = SizeLimits {
            keep_binary: false,
            ..keep
        };
        let err = r
            .push(Opcode::Continuation, false, b("567"), &stop)
            .unwrap_err();
        assert!(matches!(err, ReassemblyError::BufferFull { size: 7, .. }));
        assert_eq!(r.buffered_bytes(), 0);
        let smaller = SizeLimits {
            buffer_cap: 0,
            ..stop
        };
        let mut r = Reassembly::default();
        r.push(Opcode::Binary, false, b(""), &keep).unwrap();
        assert!(r
            .push(Opcode::Continuation, false, b("abc"), &smaller)
            .is_err());
        assert!(r.buffered_bytes() <= smaller.buffer_cap);
    }

    #[test]
    fn stray_continuation_is_inspected_as_text() {
        let mut r = Reassembly::default();
        assert!(matches!(
            r.push(Opcode::Continuation, true, b("x"), &limits())
                .unwrap(),
            Assembled::Complete {
                kind: MessageKind::Text,
                ..
            }
        ));
    }
}
