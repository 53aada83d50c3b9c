//! Helpers shared by the fuzz targets: a cursor over the fuzzer's bytes, a builder of
//! well-formed WebSocket frame events (so that most inputs get past JSON syntax and reach
//! inspection), and a driver that runs one in-memory proxy connection against a fresh agent.

#![allow(dead_code)]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use sentinel_ws_agent as agent_lib;

use agent_lib::agent::Agent;
use agent_lib::health::{HealthReport, HealthState};
use agent_lib::lifecycle::Lifecycle;
use agent_lib::options::PolicyOptions;
use agent_lib::policy::Policy;
use agent_lib::transport::TransportContext;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

/// Reads the fuzzer's bytes front to back; every read succeeds (missing bytes are zeros or empty).
pub struct Cursor<'a> {
    data: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Cursor { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// Up to `n` bytes.
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }

    /// A length-prefixed (one byte) chunk.
    pub fn short(&mut self) -> &'a [u8] {
        let n = usize::from(self.u8());
        self.bytes(n)
    }

    /// A length-prefixed (two bytes) chunk.
    pub fn long(&mut self) -> &'a [u8] {
        let n = usize::from(self.u16());
        self.bytes(n)
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}

/// The opcode names a proxy sends, plus two it never sends.
pub const OPCODES: [&str; 9] = [
    "text",
    "binary",
    "continuation",
    "ping",
    "pong",
    "close",
    "reserved",
    "TEXT",
    "",
];

/// A JSON string literal for arbitrary bytes (lossy UTF-8, escaped by serde_json).
pub fn json_string(bytes: &[u8]) -> String {
    serde_json::to_string(&String::from_utf8_lossy(bytes)).expect("a string serializes")
}

/// A WebSocket frame event object as a proxy writes it, with its fields drawn from `input`.
/// Returns the JSON text and the correlation id used.
pub fn frame_event(input: &mut Cursor<'_>) -> (String, String) {
    let flags = input.u8();
    // Few distinct ids, so that frames of one WebSocket meet in one connection actor.
    let cid = if flags & 0x80 != 0 {
        String::from_utf8_lossy(input.short()).into_owned()
    } else {
        format!("ws-{}", flags & 0x03)
    };
    let opcode = OPCODES[usize::from(input.u8()) % OPCODES.len()];
    let payload = input.long();
    let data = if flags & 0x40 != 0 {
        // Not quite base64: the agent must answer anyway.
        String::from_utf8_lossy(payload).into_owned()
    } else {
        base64::engine::general_purpose::STANDARD.encode(payload)
    };
    let mut json = format!(
        r#"{{"correlation_id":{},"opcode":"{}","data":{},"client_to_server":{},"fin":{},"frame_index":{}"#,
        json_string(cid.as_bytes()),
        opcode,
        json_string(data.as_bytes()),
        flags & 0x04 != 0,
        flags & 0x08 == 0,
        input.u16(),
    );
    if flags & 0x10 != 0 {
        json.push_str(r#","route_id":"ws-route","client_ip":"198.51.100.7""#);
    }
    if flags & 0x20 != 0 {
        json.push_str(r#","extra":[1,{"x":null}]"#);
    }
    json.push('}');
    (json, cid)
}

/// The policy the stream targets start with: every detector and validator on, small limits so
/// that size and eviction paths run too. No custom patterns: a policy is compiled for every input
/// and regex compilation would dominate the run time (the `detectors` and `configure` targets
/// cover custom patterns, and a configure event in the input can still add some).
pub fn stream_policy() -> PolicyOptions {
    let schema = serde_json::json!({
        "type": "object",
        "properties": {"op": {"enum": ["buy", "sell"]}, "qty": {"type": "integer", "minimum": 1}},
        "required": ["op"]
    });
    let serde_json::Value::Object(schema) = schema else {
        unreachable!()
    };
    PolicyOptions {
        json_schema: Some(agent_lib::options::SchemaSource::Inline(schema)),
        schema_direction: agent_lib::options::SchemaDirection::Both,
        msgpack_validation: true,
        inspect_binary: true,
        max_text_frame_size: 2048,
        max_message_size: 8192,
        max_messages_per_sec: 50,
        rate_limit_burst: 20,
        max_connections: 4,
        ..PolicyOptions::default()
    }
}

/// One tokio runtime for the whole fuzzing process (current-thread: everything runs on the
/// fuzzer's thread, so an input replays the same way).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

/// Starts a fresh agent (one detector) with `options`, runs `f` with its transport context, then
/// stops it, so that no state leaks from one input to the next.
pub async fn with_agent<F, Fut, T>(options: PolicyOptions, f: F) -> T
where
    F: FnOnce(TransportContext) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let policy = Policy::compile(options).expect("the fuzz policy compiles");
    let (agent, handle) = Agent::start(policy, 1).await.expect("agent starts");
    let (_health_tx, health) = watch::channel(HealthReport {
        state: HealthState::Healthy,
        message: None,
        queue_depth: 0,
        capacity: 0,
    });
    let context = TransportContext {
        agent: agent.clone(),
        lifecycle: Lifecycle::new(),
        health,
        agent_id: Arc::from("fuzz"),
        // Only the report sent at connection start; none while an input runs.
        report_interval: Duration::from_secs(3600),
        max_transport_connections: 16,
        max_grpc_streams: 16,
        read_timeout: Duration::from_secs(10),
    };
    let out = f(context).await;
    agent.stop();
    let _ = handle.await;
    out
}

/// Writes `input` as a proxy would (then half-closes) while reading everything the agent
/// answers; returns the answer bytes. The agent side is `serve`, given the other end.
pub async fn exchange<S, Fut>(input: &[u8], serve: S) -> Vec<u8>
where
    S: FnOnce(tokio::io::DuplexStream) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (client, server) = tokio::io::duplex(64 * 1024);
    let (mut read_half, mut write_half) = tokio::io::split(client);
    let writer = async {
        // The agent may close early (a refused length, a failed handshake): stop writing then.
        let _ = write_half.write_all(input).await;
        let _ = write_half.shutdown().await;
        drop(write_half);
    };
    let reader = async {
        let mut out = Vec::new();
        let _ = read_half.read_to_end(&mut out).await;
        out
    };
    let agent_side = serve(server);
    let ((), out, ()) = tokio::join!(writer, reader, agent_side);
    out
}

/// Splits length-prefixed messages (`[u32 BE length][body]`); panics on a partial one, since the
/// agent always writes whole messages.
pub fn split_messages(mut bytes: &[u8]) -> Vec<&[u8]> {
    let mut messages = Vec::new();
    while !bytes.is_empty() {
        assert!(
            bytes.len() >= 4,
            "a partial length prefix in the agent's output"
        );
        let length = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
        assert!(
            bytes.len() >= 4 + length,
            "a partial message in the agent's output"
        );
        messages.push(&bytes[4..4 + length]);
        bytes = &bytes[4 + length..];
    }
    messages
}

/// What the Unix socket listener does with a new connection: the first length and byte choose
/// the protocol (`transport::uds::serve_connection`, which takes a `UnixStream`).
pub async fn serve_like_uds<S>(mut stream: S, context: TransportContext)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    use agent_lib::transport::{framing, v1, v2};
    let Ok(length) = framing::read_length(&mut stream).await else {
        return;
    };
    let length = length as usize;
    if length == 0 {
        return;
    }
    let Ok(first) = stream.read_u8().await else {
        return;
    };
    let _ = match first {
        v2::message_type::HANDSHAKE_REQUEST => v2::serve(stream, context, length).await,
        b'{' => v1::serve(stream, context.agent, length, first, context.read_timeout).await,
        _ => Ok(()),
    };
}
