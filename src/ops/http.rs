//! A deliberately small HTTP/1.1 endpoint for operators: `/metrics` (Prometheus text), `/healthz`
//! (the process is alive), `/readyz` (serving; 503 while draining) and `/connections` (the tracked
//! WebSocket connections, most active first, `?limit=N`, default 100). One request per
//! connection, bounded request size, no keep-alive.

use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::agent::Agent;
use crate::lifecycle::Lifecycle;

/// Longest request head read before answering 431.
const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// Connections listed by `/connections` without `?limit=`.
const DEFAULT_CONNECTIONS_LIMIT: usize = 100;
/// Most connections `/connections` lists, whatever `?limit=` says.
const MAX_CONNECTIONS_LIMIT: usize = 10_000;

/// `limit=N` from a query string.
fn query_limit(query: &[u8]) -> Option<usize> {
    query
        .split(|b| *b == b'&')
        .find_map(|pair| pair.strip_prefix(b"limit="))
        .and_then(|value| std::str::from_utf8(value).ok())
        .and_then(|value| value.parse().ok())
}

/// Serves for the life of the process (it keeps answering `/readyz` with 503 while draining);
/// never fails on a bad client.
pub async fn serve(
    listener: TcpListener,
    handle: PrometheusHandle,
    lifecycle: Arc<Lifecycle>,
    agent: Agent,
) {
    let handle = Arc::new(handle);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let handle = Arc::clone(&handle);
        let lifecycle = Arc::clone(&lifecycle);
        let agent = agent.clone();
        tokio::spawn(async move {
            let answered = answer(stream, &handle, &lifecycle, &agent);
            let _ = tokio::time::timeout(Duration::from_secs(10), answered).await;
        });
    }
}

async fn answer(
    mut stream: TcpStream,
    handle: &PrometheusHandle,
    lifecycle: &Lifecycle,
    agent: &Agent,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
        if head.len() > MAX_REQUEST_HEAD {
            return respond(
                &mut stream,
                431,
                "text/plain",
                b"request header too large\n",
            )
            .await;
        }
    }
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let mut parts = line.split(|b| *b == b' ');
    let method = parts.next().unwrap_or_default();
    let target = parts.next().unwrap_or_default();
    let mut target_parts = target.splitn(2, |b| *b == b'?');
    let path = target_parts.next().unwrap_or_default();
    let query = target_parts.next().unwrap_or_default();
    if method != b"GET" && method != b"HEAD" {
        return respond(&mut stream, 405, "text/plain", b"method not allowed\n").await;
    }
    match path {
        b"/metrics" => {
            handle.run_upkeep();
            let body = handle.render();
            respond(
                &mut stream,
                200,
                "text/plain; version=0.0.4",
                body.as_bytes(),
            )
            .await
        }
        b"/healthz" => respond(&mut stream, 200, "text/plain", b"ok\n").await,
        b"/connections" => {
            let limit = query_limit(query)
                .unwrap_or(DEFAULT_CONNECTIONS_LIMIT)
                .min(MAX_CONNECTIONS_LIMIT);
            let connections = super::connections::connections(agent, limit);
            let body = serde_json::json!({
                "tracked": agent.tracked_connections(),
                "shown": connections.len(),
                "connections": connections,
            });
            let body = serde_json::to_vec_pretty(&body).unwrap_or_default();
            respond(&mut stream, 200, "application/json", &body).await
        }
        b"/readyz" => {
            if lifecycle.is_draining() {
                respond(&mut stream, 503, "text/plain", b"draining\n").await
            } else {
                respond(&mut stream, 200, "text/plain", b"ready\n").await
            }
        }
        _ => respond(&mut stream, 404, "text/plain", b"not found\n").await,
    }
}

async fn respond(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.shutdown().await
}
