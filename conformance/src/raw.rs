//! Both Unix-socket protocols written by hand, byte for byte (length prefixes, JSON bodies, v2
//! message types), for tests that must send what the upstream clients never would: cut
//! messages, hostile fields, a peer that stops mid-message.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

pub const TIMEOUT: Duration = Duration::from_secs(30);

/// A frame event as both protocols carry it.
pub fn event(cid: &str, opcode: &str, data: &[u8], c2s: bool, fin: bool) -> Value {
    json!({
        "correlation_id": cid,
        "opcode": opcode,
        "data": crate::b64(data),
        "client_to_server": c2s,
        "frame_index": 0,
        "fin": fin,
        "route_id": "conformance",
        "client_ip": "203.0.113.9",
    })
}

/// The bytes of one v1 request: length prefix and JSON.
pub fn v1_bytes(event_type: &str, payload: &Value) -> Vec<u8> {
    let body =
        serde_json::to_vec(&json!({"version": 1, "event_type": event_type, "payload": payload}))
            .unwrap();
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

/// Sends one v1 request and reads its answer.
pub async fn v1_call(stream: &mut UnixStream, event_type: &str, payload: &Value) -> Value {
    stream
        .write_all(&v1_bytes(event_type, payload))
        .await
        .unwrap();
    tokio::time::timeout(TIMEOUT, v1_read(stream))
        .await
        .expect("a v1 answer in time")
        .expect("a v1 answer")
}

/// Reads one length-prefixed v1 answer.
pub async fn v1_read(stream: &mut UnixStream) -> std::io::Result<Value> {
    let length = stream.read_u32().await? as usize;
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await?;
    Ok(serde_json::from_slice(&body).expect("a JSON answer"))
}

/// The bytes of one v2 message.
pub fn v2_bytes(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = ((payload.len() + 1) as u32).to_be_bytes().to_vec();
    out.push(kind);
    out.extend_from_slice(payload);
    out
}

/// Connects and sends a v2 handshake carrying `config`; returns the stream and the answer.
pub async fn v2_handshake(socket: &Path, config: &Value) -> (UnixStream, Value) {
    let mut stream = UnixStream::connect(socket).await.unwrap();
    let hello = json!({"supported_versions": [2], "proxy_id": "zentinel-proxy",
                       "proxy_version": "0.6.54", "config": config,
                       "supported_encodings": ["json"]});
    stream
        .write_all(&v2_bytes(0x01, &serde_json::to_vec(&hello).unwrap()))
        .await
        .unwrap();
    let (kind, payload) = v2_read(&mut stream).await.expect("handshake answer");
    assert_eq!(kind, 0x02);
    (stream, serde_json::from_slice(&payload).unwrap())
}

/// Connects and completes a v2 handshake without configuration.
pub async fn v2_connect(socket: &Path) -> UnixStream {
    let (stream, answer) = v2_handshake(socket, &Value::Null).await;
    assert_eq!(answer["success"], true, "{answer}");
    stream
}

/// Reads the next v2 message that is not a periodic health (0x30) or metrics (0x31) report.
pub async fn v2_read(stream: &mut UnixStream) -> std::io::Result<(u8, Vec<u8>)> {
    loop {
        let length = tokio::time::timeout(TIMEOUT, stream.read_u32())
            .await
            .map_err(|_| std::io::Error::other("no v2 message in time"))??
            as usize;
        let kind = stream.read_u8().await?;
        let mut payload = vec![0; length.saturating_sub(1)];
        stream.read_exact(&mut payload).await?;
        if !matches!(kind, 0x30 | 0x31) {
            return Ok((kind, payload));
        }
    }
}

/// Sends one v2 frame and reads its answer (a connection with nothing else in flight).
pub async fn v2_call(stream: &mut UnixStream, event: &Value) -> Value {
    stream
        .write_all(&v2_bytes(0x15, &serde_json::to_vec(event).unwrap()))
        .await
        .unwrap();
    let (kind, payload) = v2_read(stream).await.expect("a v2 answer");
    assert_eq!(kind, 0x20);
    serde_json::from_slice(&payload).unwrap()
}

/// The frame verdict of an answer: "allow", "drop" or the close code.
pub fn verdict(answer: &Value) -> String {
    match &answer["websocket_decision"] {
        Value::String(s) => s.clone(),
        Value::Object(o) if o.contains_key("close") => {
            o["close"]["code"].as_u64().unwrap().to_string()
        }
        other => panic!("no websocket decision: {other} in {answer}"),
    }
}
