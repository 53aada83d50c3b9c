//! The v2 gRPC messages the agent builds and reads, in the types both packages share: a
//! `websocket_frame` event as a [`Frame`], and the handshake, decision, health, metrics, pong and
//! drain messages sent back. Pure conversions: no I/O, no agent state beyond what is passed in.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

use crate::agent::Agent;
use crate::health::HealthReport;
use crate::model::{Action, Direction, Frame, Opcode, Verdict};
use crate::transport::grpc::proto::sentinel_v2 as pb;
use crate::transport::reports::{self, ReportFigures, AGENT_NAME};
use crate::transport::TransportContext;
use pb::{agent_to_proxy, proxy_to_agent, AgentToProxy};

/// The v2 proto's frame types (no continuation: each frame is a whole message).
fn opcode_of(frame_type: i32) -> Opcode {
    match frame_type {
        1 => Opcode::Text,
        2 => Opcode::Binary,
        3 => Opcode::Ping,
        4 => Opcode::Pong,
        5 => Opcode::Close,
        _ => Opcode::Reserved,
    }
}

/// A `websocket_frame` event as the frame the agent inspects (the payload is moved, not copied).
pub(super) fn frame(agent: &Agent, event: pb::WebSocketFrameEvent) -> Frame {
    Frame {
        correlation_id: agent.intern(&event.correlation_id),
        direction: Direction::from_client_flag(event.client_to_server),
        opcode: opcode_of(event.frame_type),
        fin: true,
        payload: Bytes::from(event.payload),
        route_id: None,
        client_ip: None,
    }
}

/// How a verdict maps onto the HTTP-shaped v2 decision: allow stays allow; close becomes block
/// with the close code as status and the reason as body; drop becomes block with status 0.
fn block_of(verdict: &Verdict) -> Option<(u32, String)> {
    match &verdict.action {
        Action::Allow => None,
        Action::Drop => Some((0, Action::Drop.as_str().to_string())),
        Action::Close { code, reason } => Some((u32::from(*code), reason.to_string())),
    }
}

/// The handshake answer: capabilities, and `error` if the handshake's configuration was rejected.
pub(super) fn handshake_response(
    context: &TransportContext,
    error: Option<String>,
) -> AgentToProxy {
    let figures = reports::capability_figures(context);
    let capabilities = pb::AgentCapabilities {
        protocol_version: 2,
        agent_id: context.agent_id.to_string(),
        name: AGENT_NAME.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        supported_events: vec![
            pb::EventType::WebsocketFrame as i32,
            pb::EventType::Configure as i32,
        ],
        features: Some(pb::AgentFeatures {
            streaming_body: false,
            websocket: true,
            guardrails: false,
            config_push: true,
            metrics_export: true,
            concurrent_requests: figures.concurrency,
            cancellation: true,
            flow_control: false,
            health_reporting: true,
        }),
        limits: Some(pb::AgentLimits {
            max_body_size: figures.max_body_size,
            max_concurrency: figures.concurrency,
            preferred_chunk_size: figures.preferred_chunk_size,
            max_memory: None,
            max_processing_time_ms: None,
        }),
        health_config: Some(pb::HealthConfig {
            report_interval_ms: figures.report_interval_ms,
            include_load_metrics: true,
            include_resource_metrics: false,
        }),
    };
    AgentToProxy {
        message: Some(agent_to_proxy::Message::Handshake(pb::HandshakeResponse {
            protocol_version: 2,
            capabilities: Some(capabilities),
            success: error.is_none(),
            error,
        })),
    }
}

/// The answer to a decided frame (see [`block_of`]); tags, rule ids and reason codes go in `audit`.
pub(super) fn frame_response(correlation_id: &str, verdict: &Verdict) -> AgentToProxy {
    let decision = match block_of(verdict) {
        None => pb::agent_response::Decision::Allow(pb::AllowDecision {}),
        Some((status, body)) => pb::agent_response::Decision::Block(pb::BlockDecision {
            status,
            body: Some(body),
            headers: Vec::new(),
        }),
    };
    let mut custom = HashMap::new();
    custom.insert(
        "websocket_decision".to_string(),
        verdict.action.as_str().to_string(),
    );
    AgentToProxy {
        message: Some(agent_to_proxy::Message::Response(pb::AgentResponse {
            correlation_id: correlation_id.to_string(),
            decision: Some(decision),
            audit: Some(pb::AuditMetadata {
                tags: verdict
                    .tags
                    .iter()
                    .map(|t| t.as_str().to_string())
                    .collect(),
                rule_ids: verdict.rule_ids.iter().map(|r| r.to_string()).collect(),
                confidence: None,
                reason_codes: verdict.reason_codes.iter().map(|r| r.to_string()).collect(),
                custom,
            }),
            ..pb::AgentResponse::default()
        })),
    }
}

/// The correlation id an event carries (empty when it has none). Every event kind is named, so
/// a new kind in the proto is a compile error here rather than an answer with a lost id.
pub(super) fn correlation_id_of(message: &proxy_to_agent::Message) -> &str {
    use proxy_to_agent::Message;
    match message {
        Message::RequestHeaders(event) => event
            .metadata
            .as_ref()
            .map_or("", |m| m.correlation_id.as_str()),
        Message::RequestBodyChunk(event) | Message::ResponseBodyChunk(event) => {
            &event.correlation_id
        }
        Message::ResponseHeaders(event) => &event.correlation_id,
        Message::RequestComplete(event) => &event.correlation_id,
        Message::Guardrail(event) => &event.correlation_id,
        Message::WebsocketFrame(event) => &event.correlation_id,
        Message::Cancel(event) => &event.correlation_id,
        Message::Configure(_) | Message::Handshake(_) | Message::Ping(_) => "",
    }
}

/// Remembers the client IP and route of a RequestHeaders event for the WebSocket it may upgrade
/// (the v2 frame event has neither); call it before answering the event.
pub(super) fn learn_upgrade(agent: &Agent, event: &pb::RequestHeadersEvent) {
    if let Some(metadata) = &event.metadata {
        agent.learn_upgrade(
            &metadata.correlation_id,
            &metadata.client_ip,
            metadata.route_id.as_deref(),
        );
    }
}

/// `allow` for an event the agent does not inspect.
pub(super) fn allow_response(correlation_id: &str) -> AgentToProxy {
    AgentToProxy {
        message: Some(agent_to_proxy::Message::Response(pb::AgentResponse {
            correlation_id: correlation_id.to_string(),
            decision: Some(pb::agent_response::Decision::Allow(pb::AllowDecision {})),
            ..pb::AgentResponse::default()
        })),
    }
}

/// A health report.
pub(super) fn health_message(agent_id: &str, report: &HealthReport) -> AgentToProxy {
    AgentToProxy {
        message: Some(agent_to_proxy::Message::Health(pb::HealthStatus {
            agent_id: agent_id.to_string(),
            state: report.state.code(),
            message: report.message.clone(),
            load: Some(pb::LoadMetrics {
                queue_depth: report.queue_depth,
                ..pb::LoadMetrics::default()
            }),
            timestamp_ms: now_ms(),
            timeout_multiplier: 1.0,
            recoverable: true,
            ..pb::HealthStatus::default()
        })),
    }
}

/// A metrics report over `interval_ms`.
pub(super) fn metrics_message(
    agent_id: &str,
    interval_ms: u64,
    figures: &ReportFigures,
) -> AgentToProxy {
    let labels = |l: &BTreeMap<String, String>| {
        l.iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<HashMap<_, _>>()
    };
    let help = |name: &str| figures.help.get(name).cloned();
    AgentToProxy {
        message: Some(agent_to_proxy::Message::Metrics(pb::MetricsReport {
            agent_id: agent_id.to_string(),
            timestamp_ms: now_ms(),
            interval_ms,
            counters: figures
                .counters
                .iter()
                .map(|s| pb::CounterMetric {
                    name: s.name.clone(),
                    help: help(&s.name),
                    labels: labels(&s.labels),
                    value: s.value,
                })
                .collect(),
            gauges: figures
                .gauges
                .iter()
                .map(|s| pb::GaugeMetric {
                    name: s.name.clone(),
                    help: help(&s.name),
                    labels: labels(&s.labels),
                    value: s.value,
                })
                .collect(),
            histograms: figures
                .histograms
                .iter()
                .map(|h| pb::HistogramMetric {
                    name: h.name.clone(),
                    help: help(&h.name),
                    labels: labels(&h.labels),
                    sum: h.sum,
                    count: h.count,
                    buckets: h
                        .buckets
                        .iter()
                        .map(|(le, count)| pb::HistogramBucket {
                            le: *le,
                            count: *count,
                        })
                        .collect(),
                })
                .collect(),
        })),
    }
}

/// The answer to a ping.
pub(super) fn pong(ping: &pb::Ping) -> AgentToProxy {
    AgentToProxy {
        message: Some(agent_to_proxy::Message::Pong(pb::Pong {
            sequence: ping.sequence,
            ping_timestamp_ms: ping.timestamp_ms,
            timestamp_ms: now_ms(),
        })),
    }
}

/// The `DrainRequest` announced on open control streams when the agent starts draining.
pub(super) fn drain_announcement() -> pb::ProxyControl {
    pb::ProxyControl {
        message: Some(pb::proxy_control::Message::Drain(pb::DrainRequest {
            duration_ms: 0,
            reason: pb::drain_request::Reason::Manual as i32,
            timestamp_ms: now_ms(),
        })),
    }
}

fn now_ms() -> u64 {
    crate::transport::v2::now_ms()
}
