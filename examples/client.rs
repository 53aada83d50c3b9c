//! A minimal client for the agent's v1 protocol: sends one WebSocket frame and prints the
//! decision. Shows the wire format a proxy uses (4-byte big-endian length + JSON).
//!
//! ```sh
//! cargo run --example client -- /tmp/sentinel-ws.sock '<script>alert(1)</script>'
//! ```

use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let socket = args
        .next()
        .unwrap_or_else(|| "/tmp/sentinel-ws.sock".into());
    let text = args.next().unwrap_or_else(|| "hello".into());

    let request = serde_json::json!({
        "version": 1,
        "event_type": "web_socket_frame",
        "payload": {
            "correlation_id": "example-client",
            "opcode": "text",
            "data": base64::engine::general_purpose::STANDARD.encode(text.as_bytes()),
            "client_to_server": true,
            "frame_index": 0,
            "fin": true,
            "route_id": "example",
            "client_ip": "127.0.0.1"
        }
    });
    let body = serde_json::to_vec(&request)?;

    let mut stream = UnixStream::connect(&socket).await?;
    stream
        .write_all(&u32::try_from(body.len())?.to_be_bytes())
        .await?;
    stream.write_all(&body).await?;

    let length = stream.read_u32().await? as usize;
    anyhow::ensure!(
        length <= 10 * 1024 * 1024,
        "response too large: {length} bytes"
    );
    let mut response = vec![0; length];
    stream.read_exact(&mut response).await?;
    let response: serde_json::Value = serde_json::from_slice(&response)?;
    println!("decision: {}", response["websocket_decision"]);
    println!("tags:     {}", response["audit"]["tags"]);
    Ok(())
}
