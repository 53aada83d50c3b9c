//! Protocol v2 over the Unix socket (Zentinel 0.6.54+, Sentinel with `protocol-version "v2"`):
//! `[u32 length][u8 type][payload]`, length counting the type byte. A JSON handshake (0x01/0x02)
//! opens the connection; then frames (0x15) are answered with 0x20 responses carrying
//! `audit.custom.correlation_id`, out of order, as detectors finish. Configure (0x17) is applied
//! idempotently, Ping (0x41) is echoed as Pong (0x42), Cancel (0x40) is accepted silently, HTTP
//! events are allowed (RequestHeaders (0x10) after its client IP is remembered for the WebSocket
//! it may upgrade).

use std::borrow::Cow;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::framing::{self, FramingError, V2_MAX_MESSAGE};
use super::json_wire::{self, FrameInterner, WireDecision};
use super::reports::{self, Report, ReportFigures, AGENT_NAME};
use super::TransportContext;
use crate::actors::{Answer, ReplyTarget};
use crate::agent::Agent;
use crate::health::HealthReport;
use crate::model::Verdict;
use crate::telemetry::Telemetry;
use crate::util::{cut, for_log};

/// Message type bytes (shared reference, section 1.4).
pub mod message_type {
    /// Proxy -> agent handshake.
    pub const HANDSHAKE_REQUEST: u8 = 0x01;
    /// Agent -> proxy handshake.
    pub const HANDSHAKE_RESPONSE: u8 = 0x02;
    /// First HTTP event type.
    pub const REQUEST_HEADERS: u8 = 0x10;
    /// Last HTTP event type before the frame event.
    pub const REQUEST_COMPLETE: u8 = 0x14;
    /// A WebSocket frame.
    pub const WEBSOCKET_FRAME: u8 = 0x15;
    /// Guardrail inspection (answered with allow: this agent does not inspect it).
    pub const GUARDRAIL_INSPECT: u8 = 0x16;
    /// Configuration push.
    pub const CONFIGURE: u8 = 0x17;
    /// Agent response.
    pub const AGENT_RESPONSE: u8 = 0x20;
    /// Health status report.
    pub const HEALTH_STATUS: u8 = 0x30;
    /// Metrics report.
    pub const METRICS_REPORT: u8 = 0x31;
    /// Cancel a request.
    pub const CANCEL: u8 = 0x40;
    /// Ping.
    pub const PING: u8 = 0x41;
    /// Pong.
    pub const PONG: u8 = 0x42;
}

/// The response `version` on v2 (proxies accept any value).
const V2_VERSION: u32 = 2;
/// Frames one transport connection may have in flight before the agent stops reading from it.
pub const MAX_IN_FLIGHT_PER_CONNECTION: usize = 1024;

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct HandshakeRequest<'a> {
    supported_versions: Vec<u32>,
    proxy_id: String,
    proxy_version: String,
    #[serde(borrow)]
    config: Option<&'a RawValue>,
    supported_encodings: Vec<String>,
}

#[derive(Debug, Serialize)]
struct HandshakeResponse<'a> {
    protocol_version: u32,
    capabilities: Capabilities<'a>,
    success: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    encoding: &'static str,
}

#[derive(Debug, Serialize)]
struct Capabilities<'a> {
    agent_id: &'a str,
    name: &'static str,
    version: &'static str,
    supported_events: [i32; 2],
    features: Features,
    limits: Limits,
}

#[derive(Debug, Serialize)]
struct Features {
    streaming_body: bool,
    websocket: bool,
    guardrails: bool,
    config_push: bool,
    metrics_export: bool,
    concurrent_requests: u32,
    cancellation: bool,
    flow_control: bool,
    health_reporting: bool,
}

#[derive(Debug, Serialize)]
struct Limits {
    max_body_size: u64,
    max_concurrency: u32,
    preferred_chunk_size: u64,
}

#[derive(Debug, Deserialize)]
struct ConfigureMessage<'a> {
    #[serde(default, borrow)]
    config: Option<&'a RawValue>,
    #[serde(borrow)]
    correlation_id: Cow<'a, str>,
}

/// Things the reader asks the writer to send besides frame answers.
#[derive(Debug)]
enum Control {
    /// A complete message: type byte, payload, and the in-flight slot it holds until written (so
    /// that a peer that stops reading cannot queue unbounded replies, pongs included).
    Message(u8, Vec<u8>, Option<OwnedSemaphorePermit>),
}

/// Health and metrics reports queued but not yet written; a report due while the peer is not
/// reading is skipped rather than queued.
const MAX_QUEUED_REPORTS: usize = 2;

/// Serves one v2 connection whose first message's length and type byte (0x01) were already read.
pub async fn serve<S>(
    stream: S,
    context: TransportContext,
    first_length: usize,
) -> Result<(), FramingError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let agent = context.agent.clone();
    let (reader, writer) = tokio::io::split(stream);
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut writer = BufWriter::with_capacity(64 * 1024, writer);
    framing::check_length(first_length as u32, V2_MAX_MESSAGE)?;
    let mut payload = Vec::new();
    framing::within(
        context.read_timeout,
        "inside the handshake",
        framing::read_body(&mut reader, first_length - 1, &mut payload),
    )
    .await?;
    let (response, accepted) = handshake(&context, &payload).await;
    write_message(&mut writer, message_type::HANDSHAKE_RESPONSE, &response).await?;
    writer.flush().await?;
    if !accepted {
        return Ok(());
    }

    let (answers_tx, answers_rx) = mpsc::unbounded_channel::<Answer>();
    let (control_tx, control_rx) = mpsc::unbounded_channel::<Control>();
    let writer_task = tokio::spawn(write_loop(writer, answers_rx, control_rx));
    let reporter = tokio::spawn(report_loop(context.clone(), control_tx.clone()));
    // Every message that is answered holds one of these until its answer is written: a peer that
    // stops reading stops being read once MAX_IN_FLIGHT_PER_CONNECTION answers are waiting.
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT_PER_CONNECTION));
    let result = read_loop(
        &mut reader,
        &agent,
        context.read_timeout,
        (&answers_tx, &control_tx),
        &in_flight,
    )
    .await;
    reporter.abort();
    let _ = reporter.await;
    drop(answers_tx);
    drop(control_tx);
    // Answers still being decided are written before the connection is released.
    let written = writer_task.await.unwrap_or(Ok(()));
    result.and(written)
}

async fn handshake(context: &TransportContext, payload: &[u8]) -> (Vec<u8>, bool) {
    let agent = &context.agent;
    let mut error = None;
    match serde_json::from_slice::<HandshakeRequest>(payload) {
        Ok(request) => {
            tracing::info!(
                proxy_id = %for_log(&request.proxy_id),
                proxy_version = %for_log(&request.proxy_version),
                versions = ?request.supported_versions.iter().take(8).collect::<Vec<_>>(),
                encodings = ?request.supported_encodings.iter().take(8).map(|e| for_log(e)).collect::<Vec<_>>(),
                "v2 handshake"
            );
            let config = request.config.map_or("null", RawValue::get);
            if let Err(e) = agent.configure_from_handshake(config).await {
                error = Some(format!("configuration rejected: {e}"));
            }
        }
        Err(e) => {
            Telemetry::get().record_protocol_error();
            error = Some(format!("malformed handshake: {e}"));
        }
    }
    let figures = reports::capability_figures(context);
    let response = HandshakeResponse {
        protocol_version: 2,
        capabilities: Capabilities {
            agent_id: &context.agent_id,
            name: AGENT_NAME,
            version: env!("CARGO_PKG_VERSION"),
            // 6 = WebSocketFrame, 0 = Configure in the UDS capability encoding.
            supported_events: [6, 0],
            features: Features {
                streaming_body: false,
                websocket: true,
                guardrails: false,
                config_push: true,
                metrics_export: true,
                concurrent_requests: figures.concurrency,
                cancellation: true,
                flow_control: false,
                health_reporting: true,
            },
            limits: Limits {
                max_body_size: figures.max_body_size,
                max_concurrency: figures.concurrency,
                preferred_chunk_size: figures.preferred_chunk_size,
            },
        },
        success: error.is_none(),
        error: error.clone(),
        encoding: "json",
    };
    if let Some(error) = &error {
        tracing::error!(error = %for_log(error), "v2 handshake refused");
    }
    (
        serde_json::to_vec(&response).expect("serializes"),
        error.is_none(),
    )
}

/// Sends health (0x30) at once on every change and at the report interval, and metrics (0x31) at
/// the report interval, until the connection ends. A report due while [`MAX_QUEUED_REPORTS`] are
/// still unwritten (the peer is not reading) is skipped rather than queued.
async fn report_loop(context: TransportContext, control: mpsc::UnboundedSender<Control>) {
    let queued = Arc::new(Semaphore::new(MAX_QUEUED_REPORTS));
    let interval_ms = u64::try_from(context.report_interval.as_millis()).unwrap_or(u64::MAX);
    let agent_id = Arc::clone(&context.agent_id);
    reports::report_loop(&context, |report| {
        let sent = match Arc::clone(&queued).try_acquire_owned() {
            // The peer is not reading: skip this report (the next one carries the state).
            Err(_) => true,
            Ok(slot) => {
                let message = match report {
                    Report::Health(health) => Control::Message(
                        message_type::HEALTH_STATUS,
                        encode_health(&agent_id, &health),
                        Some(slot),
                    ),
                    Report::Metrics(figures) => Control::Message(
                        message_type::METRICS_REPORT,
                        encode_metrics(&agent_id, interval_ms, &figures),
                        Some(slot),
                    ),
                };
                control.send(message).is_ok()
            }
        };
        async move { sent }
    })
    .await;
}

#[derive(Debug, Serialize)]
struct WireHealth<'a> {
    agent_id: &'a str,
    state: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    load: WireLoad,
    timestamp_ms: u64,
}

#[derive(Debug, Serialize)]
struct WireLoad {
    queue_depth: u32,
    capacity: u32,
}

/// The JSON of a 0x30 message: `state` is what the proxies read; the rest helps people.
fn encode_health(agent_id: &str, report: &HealthReport) -> Vec<u8> {
    let wire = WireHealth {
        agent_id,
        state: report.state.code(),
        message: report.message.as_deref(),
        load: WireLoad {
            queue_depth: report.queue_depth,
            capacity: report.capacity,
        },
        timestamp_ms: now_ms(),
    };
    serde_json::to_vec(&wire).expect("serializes")
}

#[derive(Debug, Serialize)]
struct WireMetricsReport<'a> {
    agent_id: &'a str,
    timestamp_ms: u64,
    interval_ms: u64,
    counters: Vec<WireSample<'a, u64>>,
    gauges: Vec<WireSample<'a, f64>>,
    histograms: Vec<WireHistogram<'a>>,
}

#[derive(Debug, Serialize)]
struct WireSample<'a, V> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    help: Option<&'a str>,
    labels: &'a std::collections::BTreeMap<String, String>,
    value: V,
}

#[derive(Debug, Serialize)]
struct WireHistogram<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    help: Option<&'a str>,
    labels: &'a std::collections::BTreeMap<String, String>,
    sum: f64,
    count: u64,
    buckets: Vec<WireBucket>,
}

#[derive(Debug, Serialize)]
struct WireBucket {
    le: WireBound,
    count: u64,
}

/// A bucket bound: a number, or the string "+Inf" as the proxies' reader expects.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum WireBound {
    Finite(f64),
    Infinite(&'static str),
}

/// The JSON of a 0x31 message, in the shape of the proxies' `MetricsReport`.
fn encode_metrics(agent_id: &str, interval_ms: u64, figures: &ReportFigures) -> Vec<u8> {
    let help = |name: &str| figures.help.get(name).map(String::as_str);
    let report = WireMetricsReport {
        agent_id,
        timestamp_ms: now_ms(),
        interval_ms,
        counters: figures
            .counters
            .iter()
            .map(|s| WireSample {
                name: &s.name,
                help: help(&s.name),
                labels: &s.labels,
                value: s.value,
            })
            .collect(),
        gauges: figures
            .gauges
            .iter()
            .map(|s| WireSample {
                name: &s.name,
                help: help(&s.name),
                labels: &s.labels,
                value: s.value,
            })
            .collect(),
        histograms: figures
            .histograms
            .iter()
            .map(|h| WireHistogram {
                name: &h.name,
                help: help(&h.name),
                labels: &h.labels,
                sum: h.sum,
                count: h.count,
                buckets: h
                    .buckets
                    .iter()
                    .map(|(le, count)| WireBucket {
                        le: if le.is_finite() {
                            WireBound::Finite(*le)
                        } else {
                            WireBound::Infinite("+Inf")
                        },
                        count: *count,
                    })
                    .collect(),
            })
            .collect(),
    };
    serde_json::to_vec(&report).expect("serializes")
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

async fn read_loop<R: AsyncRead + Unpin>(
    reader: &mut R,
    agent: &Agent,
    read_timeout: std::time::Duration,
    (answers, control): (
        &mpsc::UnboundedSender<Answer>,
        &mpsc::UnboundedSender<Control>,
    ),
    in_flight: &Arc<Semaphore>,
) -> Result<(), FramingError> {
    let mut payload = Vec::new();
    let mut interner = FrameInterner::default();
    loop {
        let length = match framing::read_next_length(reader, read_timeout).await {
            Ok(length) => length,
            Err(FramingError::Closed) => return Ok(()),
            Err(error) => return Err(error),
        };
        let length = framing::check_length(length, V2_MAX_MESSAGE)?;
        if length == 0 {
            return Err(FramingError::Empty);
        }
        let mut kind = [0u8; 1];
        payload.clear();
        framing::within(read_timeout, "inside a message", async {
            reader.read_exact(&mut kind).await?;
            framing::read_body(reader, length - 1, &mut payload).await
        })
        .await?;
        match kind[0] {
            message_type::WEBSOCKET_FRAME => {
                let permit = Arc::clone(in_flight).acquire_owned().await.ok();
                match json_wire::decode_frame(&payload, &mut interner, |id| agent.intern(id)) {
                    Ok(frame) => {
                        let target = ReplyTarget::Queue {
                            queue: answers.clone(),
                            permit,
                        };
                        agent.submit(frame, target).await;
                    }
                    Err((correlation_id, error)) => {
                        // Always answered: with the id when it can be read, else with the empty
                        // id such a request carries (an empty body included), so that no peer
                        // waits out its timeout for an answer that never comes.
                        let verdict =
                            json_wire::undecodable_frame(agent, correlation_id.as_deref(), &error);
                        let _ = answers.send(Answer {
                            correlation_id: Arc::from(correlation_id.unwrap_or_default()),
                            verdict,
                            permit,
                        });
                    }
                }
            }
            message_type::CONFIGURE => {
                // Compiled off this task too: frames behind it on this connection keep flowing.
                let permit = Arc::clone(in_flight).acquire_owned().await.ok();
                let (agent, control, payload) = (agent.clone(), control.clone(), payload.clone());
                tokio::spawn(async move {
                    let _ = control.send(configure(&agent, &payload, permit).await);
                });
            }
            message_type::PING => {
                let permit = Arc::clone(in_flight).acquire_owned().await.ok();
                let _ = control.send(Control::Message(
                    message_type::PONG,
                    payload.clone(),
                    permit,
                ));
            }
            message_type::CANCEL => {
                tracing::debug!("cancel accepted");
            }
            message_type::REQUEST_HEADERS..=message_type::REQUEST_COMPLETE
            | message_type::GUARDRAIL_INSPECT => {
                if kind[0] == message_type::REQUEST_HEADERS {
                    // An upgrade request names the client IP and route its WebSocket's frames
                    // may lack; learned before the answer, so before any of those frames.
                    if let Some(upgrade) = json_wire::upgrade_request(&payload) {
                        agent.learn_upgrade(
                            &upgrade.correlation_id,
                            &upgrade.client_ip,
                            upgrade.route_id.as_deref(),
                        );
                    }
                }
                // Not ours to inspect; answer at once so the proxy does not wait out its timeout.
                if let Some(id) = json_wire::correlation_id_of(&payload) {
                    let permit = Arc::clone(in_flight).acquire_owned().await.ok();
                    let mut body = Vec::with_capacity(128);
                    json_wire::encode_plain_response(
                        &mut body,
                        V2_VERSION,
                        WireDecision::Allow,
                        &[],
                        Some(&id),
                    );
                    let _ =
                        control.send(Control::Message(message_type::AGENT_RESPONSE, body, permit));
                }
            }
            other => {
                Telemetry::get().record_protocol_error();
                tracing::error!(message_type = other, "unexpected v2 message type; ignored");
                if let Some(id) = json_wire::correlation_id_of(&payload) {
                    let permit = Arc::clone(in_flight).acquire_owned().await.ok();
                    let verdict = Verdict::failure(
                        agent.policy().fail_open(),
                        crate::model::ReasonCode::UnknownMessageType,
                    );
                    let _ = answers.send(Answer {
                        correlation_id: Arc::from(id),
                        verdict,
                        permit,
                    });
                }
            }
        }
    }
}

async fn configure(agent: &Agent, payload: &[u8], permit: Option<OwnedSemaphorePermit>) -> Control {
    let parsed = if payload.len() > agent.max_config_bytes().saturating_add(4096) {
        Err(agent.reject_oversized(payload.len()).to_string())
    } else {
        serde_json::from_slice::<ConfigureMessage<'_>>(payload)
            .map_err(|error| format!("malformed configure message: {error}"))
    };
    let (correlation_id, result) = match parsed {
        Ok(message) => (
            Some(message.correlation_id.into_owned()),
            agent
                .configure_json(message.config.map_or("null", RawValue::get))
                .await
                .map_err(|e| e.to_string()),
        ),
        Err(error) => {
            Telemetry::get().record_protocol_error();
            (json_wire::correlation_id_of(payload), Err(error))
        }
    };
    let mut body = Vec::with_capacity(256);
    match result {
        Ok(_) => json_wire::encode_plain_response(
            &mut body,
            V2_VERSION,
            WireDecision::Allow,
            &[],
            correlation_id.as_deref(),
        ),
        Err(reason) => {
            let reason = cut(&reason, 512);
            json_wire::encode_plain_response(
                &mut body,
                V2_VERSION,
                WireDecision::Block {
                    status: 500,
                    body: Some(&reason),
                },
                &[Cow::Borrowed("invalid-configuration")],
                correlation_id.as_deref(),
            );
        }
    }
    Control::Message(message_type::AGENT_RESPONSE, body, permit)
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: BufWriter<W>,
    mut answers: mpsc::UnboundedReceiver<Answer>,
    mut control: mpsc::UnboundedReceiver<Control>,
) -> Result<(), FramingError> {
    let mut body = Vec::with_capacity(512);
    let mut answers_open = true;
    let mut control_open = true;
    while answers_open || control_open {
        tokio::select! {
            answer = answers.recv(), if answers_open => match answer {
                Some(answer) => write_answer(&mut writer, &mut body, answer).await?,
                None => answers_open = false,
            },
            message = control.recv(), if control_open => match message {
                Some(Control::Message(kind, payload, permit)) => {
                    write_message(&mut writer, kind, &payload).await?;
                    drop(permit);
                }
                None => control_open = false,
            },
        }
        // Batch whatever else is ready into the same flush; yielding once lets detectors that are
        // about to answer do so, which turns one write (and one wake-up of the proxy) per answer
        // into one per batch.
        while let Ok(answer) = answers.try_recv() {
            write_answer(&mut writer, &mut body, answer).await?;
        }
        tokio::task::yield_now().await;
        while let Ok(answer) = answers.try_recv() {
            write_answer(&mut writer, &mut body, answer).await?;
        }
        writer.flush().await?;
    }
    Ok(())
}

async fn write_answer<W: AsyncWrite + Unpin>(
    writer: &mut BufWriter<W>,
    body: &mut Vec<u8>,
    answer: Answer,
) -> Result<(), FramingError> {
    body.clear();
    json_wire::encode_frame_response(
        body,
        V2_VERSION,
        &answer.verdict,
        Some(&answer.correlation_id),
    );
    write_message(writer, message_type::AGENT_RESPONSE, body).await?;
    drop(answer.permit);
    Ok(())
}

async fn write_message<W: AsyncWrite + Unpin>(
    writer: &mut BufWriter<W>,
    kind: u8,
    payload: &[u8],
) -> Result<(), FramingError> {
    let length = u32::try_from(payload.len() + 1).unwrap_or(u32::MAX);
    writer.write_all(&length.to_be_bytes()).await?;
    writer.write_all(&[kind]).await?;
    writer.write_all(payload).await?;
    Ok(())
}
