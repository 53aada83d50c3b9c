//! Length-prefixed message reading shared by v1 and v2: a 4-byte big-endian length, then that many
//! bytes. Lengths are checked before anything is allocated, and the body buffer grows only as
//! bytes actually arrive, so a lying length prefix cannot make the agent allocate its value.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Largest v1 message (the proxies' `MAX_MESSAGE_SIZE`).
pub const V1_MAX_MESSAGE: usize = 10 * 1024 * 1024;
/// Largest v2 message (the proxies' `MAX_UDS_MESSAGE_SIZE`), type byte included.
pub const V2_MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// Why a message could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FramingError {
    /// The peer closed the connection between messages.
    #[error("connection closed")]
    Closed,
    /// The peer closed the connection inside a message.
    #[error("connection closed after {received} of {expected} bytes")]
    Truncated {
        /// Bytes announced.
        expected: usize,
        /// Bytes received.
        received: usize,
    },
    /// The length prefix is over the protocol's maximum.
    #[error("message length {length} exceeds the {max}-byte maximum")]
    TooLong {
        /// The announced length.
        length: u64,
        /// The protocol maximum.
        max: usize,
    },
    /// A zero length (v2 needs at least the type byte).
    #[error("zero-length message")]
    Empty,
    /// An I/O error.
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
    /// The peer stalled: no complete first message, or a message started and not finished,
    /// within `--read-timeout`.
    #[error("stalled for over {secs} s {what} (--read-timeout)")]
    TimedOut {
        /// What it did not finish.
        what: &'static str,
        /// The timeout.
        secs: u64,
    },
}

/// Runs `step` (a read the peer must finish) within `read_timeout`.
pub async fn within<T>(
    read_timeout: Duration,
    what: &'static str,
    step: impl std::future::Future<Output = Result<T, FramingError>>,
) -> Result<T, FramingError> {
    tokio::time::timeout(read_timeout, step)
        .await
        .unwrap_or(Err(FramingError::TimedOut {
            what,
            secs: read_timeout.as_secs(),
        }))
}

/// Reads the 4-byte length of the next message of an open connection: waiting for its first byte
/// is idle time (pooled connections wait between messages), the rest must come within
/// `read_timeout`.
pub async fn read_next_length<R: AsyncRead + Unpin>(
    reader: &mut R,
    read_timeout: Duration,
) -> Result<u32, FramingError> {
    let mut prefix = [0u8; 4];
    let first = reader.read(&mut prefix).await?;
    if first == 0 {
        return Err(FramingError::Closed);
    }
    let mut filled = first;
    within(read_timeout, "inside a length prefix", async {
        while filled < 4 {
            let n = reader.read(&mut prefix[filled..]).await?;
            if n == 0 {
                return Err(FramingError::Truncated {
                    expected: 4,
                    received: filled,
                });
            }
            filled += n;
        }
        Ok(())
    })
    .await?;
    Ok(u32::from_be_bytes(prefix))
}

/// Reads a 4-byte big-endian length; a clean end of stream before it is [`FramingError::Closed`].
pub async fn read_length<R: AsyncRead + Unpin>(reader: &mut R) -> Result<u32, FramingError> {
    let mut prefix = [0u8; 4];
    let mut filled = 0;
    while filled < 4 {
        let n = reader.read(&mut prefix[filled..]).await?;
        if n == 0 {
            return Err(if filled == 0 {
                FramingError::Closed
            } else {
                FramingError::Truncated {
                    expected: 4,
                    received: filled,
                }
            });
        }
        filled += n;
    }
    Ok(u32::from_be_bytes(prefix))
}

/// Checks `length` against `max`.
pub fn check_length(length: u32, max: usize) -> Result<usize, FramingError> {
    let length = length as usize;
    if length > max {
        return Err(FramingError::TooLong {
            length: length as u64,
            max,
        });
    }
    Ok(length)
}

/// Appends exactly `length` bytes to `buffer`, growing it only as data arrives.
pub async fn read_body<R: AsyncRead + Unpin>(
    reader: &mut R,
    length: usize,
    buffer: &mut Vec<u8>,
) -> Result<(), FramingError> {
    let start = buffer.len();
    buffer.reserve(length.min(64 * 1024));
    let mut limited = reader.take(length as u64);
    limited.read_to_end(buffer).await?;
    let received = buffer.len() - start;
    if received < length {
        return Err(FramingError::Truncated {
            expected: length,
            received,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_length_and_body() {
        let data: &[u8] = &[0, 0, 0, 3, b'a', b'b', b'c'];
        let mut reader = data;
        let len = read_length(&mut reader).await.unwrap();
        let len = check_length(len, 10).unwrap();
        let mut buf = Vec::new();
        read_body(&mut reader, len, &mut buf).await.unwrap();
        assert_eq!(buf, b"abc");
        assert!(matches!(
            read_length(&mut reader).await,
            Err(FramingError::Closed)
        ));
    }

    #[tokio::test]
    async fn lying_length_does_not_allocate_it() {
        let data: &[u8] = &[b'x'; 10];
        let mut reader = data;
        let mut buf = Vec::new();
        let err = read_body(&mut reader, 1 << 30, &mut buf).await.unwrap_err();
        assert!(matches!(err, FramingError::Truncated { received: 10, .. }));
        assert!(buf.capacity() < 1 << 20);
        assert!(matches!(
            check_length(u32::MAX, V2_MAX_MESSAGE),
            Err(FramingError::TooLong { .. })
        ));
    }
}
