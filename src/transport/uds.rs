//! The Unix socket listener: binds safely (replaces a stale socket, refuses to touch anything that
//! is not a socket, removes its file on exit), accepts proxy connections until draining starts,
//! and sends each connection to v1 or v2 by the byte after its first length prefix.

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::AsyncReadExt;
use tokio::net::{UnixListener, UnixStream};

use super::framing::{self, FramingError};
use super::{v1, v2, TransportContext};
use crate::lifecycle::Transport;
use crate::telemetry::throttle::LogThrottle;
use crate::telemetry::Telemetry;

/// The socket cannot be bound.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// Something that is not a socket is at the path.
    #[error("refusing to replace {path}: it exists and is not a Unix socket (remove it or choose another --socket)")]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// Another process is serving on the socket.
    #[error("{path} is in use by a running process (stop it or choose another --socket)")]
    InUse {
        /// The path.
        path: PathBuf,
    },
    /// An I/O error binding or inspecting the path.
    #[error("cannot bind {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

/// A bound socket; the file is removed when this is dropped (if it is still ours).
#[derive(Debug)]
pub struct BoundSocket {
    listener: UnixListener,
    path: PathBuf,
    inode: u64,
}

impl Drop for BoundSocket {
    fn drop(&mut self) {
        // Only remove the file if it is still the socket we created.
        if let Ok(meta) = std::fs::symlink_metadata(&self.path) {
            if meta.file_type().is_socket() && meta.ino() == self.inode {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// Binds `path` with permissions `mode`, replacing a stale socket file left by a dead process.
/// Anything else at the path (a file, a directory, a symlink even to a socket) is refused.
pub async fn bind(path: &Path, mode: u32) -> Result<BoundSocket, BindError> {
    let io_error = |source| BindError::Io {
        path: path.to_owned(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if UnixStream::connect(path).await.is_ok() {
                return Err(BindError::InUse {
                    path: path.to_owned(),
                });
            }
            tracing::info!(path = %path.display(), "removing stale socket file");
            std::fs::remove_file(path).map_err(io_error)?;
        }
        Ok(_) => {
            return Err(BindError::NotASocket {
                path: path.to_owned(),
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(e)),
    }
    let listener = UnixListener::bind(path).map_err(io_error)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io_error)?;
    let inode = std::fs::symlink_metadata(path).map_err(io_error)?.ino();
    Ok(BoundSocket {
        listener,
        path: path.to_owned(),
        inode,
    })
}

/// Accepts connections until the lifecycle stops accepting.
pub async fn serve(socket: BoundSocket, context: TransportContext) {
    let lifecycle = Arc::clone(&context.lifecycle);
    let mut stop = lifecycle.stop_accepting();
    loop {
        let accepted = tokio::select! {
            accepted = socket.listener.accept() => accepted,
            _ = stop.wait_for(|s| *s) => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                // Out of file descriptors and similar: back off briefly instead of spinning.
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let Some(guard) =
            lifecycle.try_open(Transport::UnixSocket, context.max_transport_connections)
        else {
            Telemetry::get().record_refused_connection(Transport::UnixSocket);
            if let Some(unlogged) = REFUSALS.event() {
                tracing::warn!(
                    limit = context.max_transport_connections,
                    refused_since_last_line = unlogged + 1,
                    "too many Unix socket connections; closing new ones (raise --max-transport-connections)"
                );
            }
            drop(stream);
            continue;
        };
        let context = context.clone();
        tokio::spawn(async move {
            let result = serve_connection(stream, context).await;
            match result {
                Ok(()) | Err(FramingError::Closed) => {}
                Err(error @ FramingError::TimedOut { .. }) => {
                    Telemetry::get().record_read_timeout(Transport::UnixSocket);
                    if let Some(unlogged) = TIMEOUTS.event() {
                        tracing::warn!(
                            %error,
                            closed_since_last_line = unlogged + 1,
                            "stalled proxy connection closed"
                        );
                    }
                }
                Err(error) => {
                    Telemetry::get().record_protocol_error();
                    if let Some(unlogged) = FAILURES.event() {
                        tracing::warn!(
                            %error,
                            ended_since_last_line = unlogged + 1,
                            "proxy connection ended with an error"
                        );
                    }
                }
            }
            drop(guard);
        });
    }
    tracing::info!(path = %socket.path.display(), "stopped accepting on the Unix socket");
    drop(socket);
}

/// Log throttles of the lines a peer can cause at will.
static REFUSALS: LogThrottle = LogThrottle::new();
static TIMEOUTS: LogThrottle = LogThrottle::new();
static FAILURES: LogThrottle = LogThrottle::new();

async fn serve_connection(
    mut stream: UnixStream,
    context: TransportContext,
) -> Result<(), FramingError> {
    // A connection that sends nothing (or stops inside the first length prefix) is closed after
    // --read-timeout instead of holding its place forever.
    let (length, first) = framing::within(context.read_timeout, "before a first message", async {
        let length = framing::read_length(&mut stream).await? as usize;
        if length == 0 {
            return Err(FramingError::Empty);
        }
        let first = stream.read_u8().await?;
        Ok((length, first))
    })
    .await?;
    match first {
        v2::message_type::HANDSHAKE_REQUEST => v2::serve(stream, context, length).await,
        b'{' => v1::serve(stream, context.agent, length, first, context.read_timeout).await,
        other => {
            tracing::error!(
                first_byte = other,
                "unknown protocol: expected 0x01 (v2 handshake) or '{{' (v1 JSON); closing the connection"
            );
            Err(FramingError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                "unknown protocol",
            )))
        }
    }
}
