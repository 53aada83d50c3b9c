//! The length-prefixed framing shared by v1 and v2 (`transport::framing`), over an in-memory
//! reader that hands out the input in chunks of fuzzer-chosen sizes.
//!
//! Checked: `read_length` returns the big-endian prefix or says how the stream ended;
//! `check_length` accepts exactly the lengths up to the maximum; `read_body` appends exactly the
//! announced bytes or reports a truncation with the true count, and never reserves memory for
//! bytes that did not arrive (a lying length cannot make the agent allocate it).

#![no_main]

mod common;

use std::pin::Pin;
use std::task::{Context, Poll};

use libfuzzer_sys::fuzz_target;
use sentinel_ws_agent::transport::framing::{
    check_length, read_body, read_length, FramingError, V1_MAX_MESSAGE, V2_MAX_MESSAGE,
};
use tokio::io::{AsyncRead, ReadBuf};

/// Yields `data` in chunks of the sizes in `chunks` (cycled; 0 means 1).
struct Chunked<'a> {
    data: &'a [u8],
    chunks: &'a [u8],
    turn: usize,
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let size = if self.chunks.is_empty() {
            usize::MAX
        } else {
            usize::from(self.chunks[self.turn % self.chunks.len()]).max(1)
        };
        self.turn += 1;
        let n = size.min(self.data.len()).min(buf.remaining());
        buf.put_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Poll::Ready(Ok(()))
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = common::Cursor::new(data);
    let chunks = input.short();
    let max = match input.u8() % 3 {
        0 => V1_MAX_MESSAGE,
        1 => V2_MAX_MESSAGE,
        _ => usize::from(input.u16()),
    };
    let stream = input.rest();
    let mut reader = Chunked {
        data: stream,
        chunks,
        turn: 0,
    };
    common::runtime().block_on(async {
        let mut consumed = 0usize;
        let mut buffer = Vec::new();
        loop {
            let length = match read_length(&mut reader).await {
                Ok(length) => length,
                Err(FramingError::Closed) => {
                    assert_eq!(consumed, stream.len());
                    return;
                }
                Err(FramingError::Truncated { expected, received }) => {
                    assert_eq!(expected, 4);
                    assert!(received > 0 && received < 4);
                    assert_eq!(consumed + received, stream.len());
                    return;
                }
                Err(other) => panic!("read_length: {other}"),
            };
            assert_eq!(
                length,
                u32::from_be_bytes(stream[consumed..consumed + 4].try_into().unwrap())
            );
            consumed += 4;
            let length = match check_length(length, max) {
                Ok(n) => {
                    assert!(n <= max);
                    n
                }
                Err(FramingError::TooLong { length: l, max: m }) => {
                    assert!(l as usize > max && m == max);
                    return;
                }
                Err(other) => panic!("check_length: {other}"),
            };
            let before = buffer.len();
            match read_body(&mut reader, length, &mut buffer).await {
                Ok(()) => {
                    assert_eq!(buffer.len() - before, length);
                    assert_eq!(&buffer[before..], &stream[consumed..consumed + length]);
                    consumed += length;
                }
                Err(FramingError::Truncated { expected, received }) => {
                    assert_eq!(expected, length);
                    assert_eq!(consumed + received, stream.len());
                    assert_eq!(buffer.len() - before, received);
                    // Memory follows the bytes that arrived, not the announced length.
                    assert!(
                        buffer.capacity() <= 2 * (before + received) + 64 * 1024 + 64,
                        "capacity {} for {} bytes",
                        buffer.capacity(),
                        before + received
                    );
                    return;
                }
                Err(other) => panic!("read_body: {other}"),
            }
            if buffer.len() > 1 << 20 {
                buffer.clear();
            }
        }
    });
});
