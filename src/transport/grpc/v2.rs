//! `AgentServiceV2` for both proxies' packages (`sentinel.agent.v2`, `zentinel.agent.v2`). The two
//! packages have identical messages, so one macro generates the service for each.
//!
//! On `ProcessStream` (the RPC the proxies open): the handshake reports capabilities; a
//! `websocket_frame` event is inspected and answered with `allow`, or with `block` whose `status`
//! is the WebSocket close code (the v2 response has no WebSocket decision), tags and reason in
//! `audit`; `configure` is applied (a rejected configuration ends the stream with
//! `INVALID_ARGUMENT` naming the key); `ping` gets a `pong`; `cancel` is accepted; HTTP events are
//! allowed. Health is reported at once on every change and at the report interval, metrics at the
//! report interval. Answers may leave out of order (they carry the correlation id).

use bytes::Bytes;

use crate::model::{Action, Direction, Frame, Opcode, Verdict};

/// Frames one stream may have in flight before the agent stops reading from it.
const MAX_IN_FLIGHT_PER_STREAM: usize = 1024;
/// Messages buffered towards the proxy per stream.
const OUTBOUND_CAPACITY: usize = 1024;

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

fn frame(
    agent: &crate::agent::Agent,
    correlation_id: &str,
    client_to_server: bool,
    frame_type: i32,
    payload: Vec<u8>,
) -> Frame {
    Frame {
        correlation_id: agent.intern(correlation_id),
        direction: Direction::from_client_flag(client_to_server),
        opcode: opcode_of(frame_type),
        fin: true,
        payload: Bytes::from(payload),
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

/// Parses a pushed `config_json` (empty means no configuration).
/// Log throttles of the lines a peer can cause at will (shared by both packages' services).
static STREAM_REFUSALS: crate::telemetry::throttle::LogThrottle =
    crate::telemetry::throttle::LogThrottle::new();
static STREAM_TIMEOUTS: crate::telemetry::throttle::LogThrottle =
    crate::telemetry::throttle::LogThrottle::new();

/// An empty `config_json` means no configuration (gRPC clients send `""` or `"{}"`).
fn config_text(config_json: &str) -> &str {
    if config_json.trim().is_empty() {
        "null"
    } else {
        config_json
    }
}

fn now_ms() -> u64 {
    crate::transport::v2::now_ms()
}

macro_rules! agent_service_v2 {
    ($module:ident, $proto:ident) => {
        /// `AgentServiceV2` in this package.
        pub mod $module {
            use std::collections::HashMap;
            use std::pin::Pin;
            use std::sync::Arc;

            use tokio::sync::{mpsc, Semaphore};
            use tokio_stream::wrappers::ReceiverStream;
            use tonic::{Request, Response, Status, Streaming};

            use super::super::proto::$proto as pb;
            use super::{block_of, frame, now_ms, config_text, MAX_IN_FLIGHT_PER_STREAM, OUTBOUND_CAPACITY};
            use crate::actors::{Answer, ReplyTarget};
            use crate::health::HealthReport;
            use crate::lifecycle::{ConnectionGuard, Transport};
            use crate::model::Verdict;

            use crate::transport::reports::{self, Report, ReportFigures, AGENT_NAME};
            use crate::transport::TransportContext;
            use pb::agent_service_v2_server::AgentServiceV2;
            use pb::{agent_to_proxy, proxy_to_agent, AgentToProxy, ProxyToAgent};

            /// The service.
            #[derive(Debug, Clone)]
            pub struct Service {
                context: TransportContext,
            }

            impl Service {
                /// Serves `context`'s agent.
                pub fn new(context: TransportContext) -> Self {
                    Service { context }
                }

                /// The generated tonic server around this service.
                pub fn server(self) -> pb::agent_service_v2_server::AgentServiceV2Server<Service> {
                    pb::agent_service_v2_server::AgentServiceV2Server::new(self)
                }
            }

            fn handshake_response(context: &TransportContext, error: Option<String>) -> AgentToProxy {
                let figures = reports::capability_figures(context);
                let capabilities = pb::AgentCapabilities {
                    protocol_version: 2,
                    agent_id: context.agent_id.to_string(),
                    name: AGENT_NAME.to_string(),
                    version: env!("CARGO_PKG_VERSION").to_string(),
                    supported_events: vec![pb::EventType::WebsocketFrame as i32, pb::EventType::Configure as i32],
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

            fn frame_response(correlation_id: &str, verdict: &Verdict) -> AgentToProxy {
                let decision = match block_of(verdict) {
                    None => pb::agent_response::Decision::Allow(pb::AllowDecision {}),
                    Some((status, body)) => pb::agent_response::Decision::Block(pb::BlockDecision {
                        status,
                        body: Some(body),
                        headers: Vec::new(),
                    }),
                };
                let mut custom = HashMap::new();
                custom.insert("websocket_decision".to_string(), verdict.action.as_str().to_string());
                AgentToProxy {
                    message: Some(agent_to_proxy::Message::Response(pb::AgentResponse {
                        correlation_id: correlation_id.to_string(),
                        decision: Some(decision),
                        audit: Some(pb::AuditMetadata {
                            tags: verdict.tags.iter().map(|t| t.as_str().to_string()).collect(),
                            rule_ids: verdict.rule_ids.iter().map(|r| r.to_string()).collect(),
                            confidence: None,
                            reason_codes: verdict.reason_codes.iter().map(|r| r.to_string()).collect(),
                            custom,
                        }),
                        ..pb::AgentResponse::default()
                    })),
                }
            }

            fn allow_response(correlation_id: &str) -> AgentToProxy {
                AgentToProxy {
                    message: Some(agent_to_proxy::Message::Response(pb::AgentResponse {
                        correlation_id: correlation_id.to_string(),
                        decision: Some(pb::agent_response::Decision::Allow(pb::AllowDecision {})),
                        ..pb::AgentResponse::default()
                    })),
                }
            }

            fn health_message(agent_id: &str, report: &HealthReport) -> AgentToProxy {
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

            fn metrics_message(agent_id: &str, interval_ms: u64, figures: &ReportFigures) -> AgentToProxy {
                let labels = |l: &std::collections::BTreeMap<String, String>| {
                    l.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<HashMap<_, _>>()
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
                                value: s.value as u64,
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
                                    .map(|(le, count)| pb::HistogramBucket { le: *le, count: *count })
                                    .collect(),
                            })
                            .collect(),
                    })),
                }
            }

            fn pong(ping: &pb::Ping) -> AgentToProxy {
                AgentToProxy {
                    message: Some(agent_to_proxy::Message::Pong(pb::Pong {
                        sequence: ping.sequence,
                        ping_timestamp_ms: ping.timestamp_ms,
                        timestamp_ms: now_ms(),
                    })),
                }
            }

            /// Applies a pushed configuration; the error names the key.
            async fn configure(context: &TransportContext, config_json: &str) -> Result<(), String> {
                context.agent.configure_json(config_text(config_json)).await.map(|_| ()).map_err(|e| e.to_string())
            }

            /// Applies the handshake's configuration, if it carries one.
            async fn configure_from_handshake(context: &TransportContext, config_json: &str) -> Result<(), String> {
                context.agent.configure_from_handshake(config_text(config_json)).await.map(|_| ()).map_err(|e| e.to_string())
            }

            type Outbound = mpsc::Sender<Result<AgentToProxy, Status>>;

            /// Health at once on every change and at the interval; metrics at the interval.
            async fn report_loop(context: TransportContext, outbound: Outbound) {
                let interval_ms = u64::try_from(context.report_interval.as_millis()).unwrap_or(u64::MAX);
                let agent_id = Arc::clone(&context.agent_id);
                reports::report_loop(&context, |report| {
                    let message = match report {
                        Report::Health(health) => health_message(&agent_id, &health),
                        Report::Metrics(figures) => metrics_message(&agent_id, interval_ms, &figures),
                    };
                    let outbound = outbound.clone();
                    async move { outbound.send(Ok(message)).await.is_ok() }
                })
                .await;
            }

            /// Forwards decided frames to the proxy until every responder is done.
            async fn answer_loop(mut answers: mpsc::UnboundedReceiver<Answer>, outbound: Outbound) {
                while let Some(answer) = answers.recv().await {
                    let message = frame_response(&answer.correlation_id, &answer.verdict);
                    if outbound.send(Ok(message)).await.is_err() {
                        return;
                    }
                    drop(answer.permit);
                }
            }

            async fn run_stream(context: TransportContext, mut inbound: Streaming<ProxyToAgent>, outbound: Outbound, guard: ConnectionGuard) {
                let _guard = guard;
                // A stream must send its first message within --read-timeout (HEADERS alone hold
                // nothing); later idle time is the proxy's to spend.
                let first = match tokio::time::timeout(context.read_timeout, inbound.message()).await {
                    Ok(first) => first,
                    Err(_) => {
                        crate::telemetry::Telemetry::get().record_read_timeout(Transport::Grpc);
                        if let Some(unlogged) = super::STREAM_TIMEOUTS.event() {
                            tracing::warn!(
                                closed_since_last_line = unlogged + 1,
                                "gRPC stream sent no message within --read-timeout; ended"
                            );
                        }
                        let _ = outbound
                            .send(Err(Status::deadline_exceeded("no message within --read-timeout")))
                            .await;
                        return;
                    }
                };
                let mut first = Some(first);
                let (answers_tx, answers_rx) = mpsc::unbounded_channel::<Answer>();
                let answers = tokio::spawn(answer_loop(answers_rx, outbound.clone()));
                let mut reporter: Option<tokio::task::JoinHandle<()>> = None;
                let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT_PER_STREAM));
                loop {
                    let received = match first.take() {
                        Some(received) => received,
                        None => inbound.message().await,
                    };
                    let message = match received {
                        Ok(Some(message)) => message,
                        Ok(None) => break,
                        Err(status) => {
                            tracing::debug!(%status, "v2 gRPC stream ended with an error");
                            break;
                        }
                    };
                    let Some(message) = message.message else { continue };
                    let reply = match message {
                        proxy_to_agent::Message::Handshake(handshake) => {
                            tracing::info!(
                                proxy_id = %crate::util::for_log(&handshake.proxy_id),
                                proxy_version = %crate::util::for_log(&handshake.proxy_version),
                                "v2 gRPC handshake"
                            );
                            let error = configure_from_handshake(&context, &handshake.config_json).await
                                .err()
                                .map(|e| format!("configuration rejected: {e}"));
                            let refused = error.is_some();
                            let _ = outbound.send(Ok(handshake_response(&context, error))).await;
                            if refused {
                                break;
                            }
                            if reporter.is_none() {
                                reporter = Some(tokio::spawn(report_loop(context.clone(), outbound.clone())));
                            }
                            continue;
                        }
                        proxy_to_agent::Message::WebsocketFrame(event) => {
                            let permit = Arc::clone(&in_flight).acquire_owned().await.ok();
                            let frame = frame(&context.agent, &event.correlation_id, event.client_to_server, event.frame_type, event.payload);
                            context.agent.submit(frame, ReplyTarget::Queue { queue: answers_tx.clone(), permit }).await;
                            continue;
                        }
                        proxy_to_agent::Message::Configure(event) => match configure(&context, &event.config_json).await {
                            Ok(()) => continue,
                            Err(reason) => {
                                // The proxies treat an ended stream as a rejected configuration.
                                let _ = outbound.send(Err(Status::invalid_argument(reason))).await;
                                break;
                            }
                        },
                        proxy_to_agent::Message::Ping(ping) => pong(&ping),
                        proxy_to_agent::Message::Cancel(cancel) => {
                            tracing::debug!(correlation_id = %crate::util::for_log(&cancel.correlation_id), "cancel accepted");
                            continue;
                        }
                        proxy_to_agent::Message::RequestHeaders(event) => {
                            allow_response(event.metadata.as_ref().map_or("", |m| m.correlation_id.as_str()))
                        }
                        proxy_to_agent::Message::RequestBodyChunk(event) | proxy_to_agent::Message::ResponseBodyChunk(event) => {
                            allow_response(&event.correlation_id)
                        }
                        proxy_to_agent::Message::ResponseHeaders(event) => allow_response(&event.correlation_id),
                        proxy_to_agent::Message::RequestComplete(event) => allow_response(&event.correlation_id),
                        proxy_to_agent::Message::Guardrail(event) => allow_response(&event.correlation_id),
                    };
                    if outbound.send(Ok(reply)).await.is_err() {
                        break;
                    }
                }
                if let Some(reporter) = reporter {
                    reporter.abort();
                }
                drop(answers_tx);
                // Frames still being decided are answered before the stream closes.
                let _ = answers.await;
            }

            #[tonic::async_trait]
            impl AgentServiceV2 for Service {
                type ProcessStreamStream = ReceiverStream<Result<AgentToProxy, Status>>;
                type ControlStreamStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::ProxyControl, Status>> + Send + 'static>>;

                async fn process_stream(
                    &self,
                    request: Request<Streaming<ProxyToAgent>>,
                ) -> Result<Response<Self::ProcessStreamStream>, Status> {
                    if self.context.lifecycle.is_draining() {
                        return Err(Status::unavailable("draining: not accepting new streams"));
                    }
                    // gRPC streams have a limit of their own: a flood of them never refuses a Unix
                    // socket connection.
                    let Some(guard) = self.context.lifecycle.try_open(Transport::Grpc, self.context.max_grpc_streams) else {
                        crate::telemetry::Telemetry::get().record_refused_connection(Transport::Grpc);
                        if let Some(unlogged) = super::STREAM_REFUSALS.event() {
                            tracing::warn!(
                                limit = self.context.max_grpc_streams,
                                refused_since_last_line = unlogged + 1,
                                "too many gRPC streams; refusing new ones (raise --max-grpc-streams)"
                            );
                        }
                        return Err(Status::resource_exhausted("too many streams (raise --max-grpc-streams)"));
                    };
                    let (outbound, receiver) = mpsc::channel(OUTBOUND_CAPACITY);
                    tokio::spawn(run_stream(self.context.clone(), request.into_inner(), outbound, guard));
                    Ok(Response::new(ReceiverStream::new(receiver)))
                }

                async fn control_stream(
                    &self,
                    request: Request<Streaming<pb::AgentControl>>,
                ) -> Result<Response<Self::ControlStreamStream>, Status> {
                    // Counted against --max-grpc-streams like ProcessStream (the proxies never
                    // open this stream; a peer holding many must not go unbounded).
                    let Some(guard) = self.context.lifecycle.try_open(Transport::Grpc, self.context.max_grpc_streams) else {
                        crate::telemetry::Telemetry::get().record_refused_connection(Transport::Grpc);
                        return Err(Status::resource_exhausted("too many streams (raise --max-grpc-streams)"));
                    };
                    let mut inbound = request.into_inner();
                    let lifecycle = Arc::clone(&self.context.lifecycle);
                    let (outbound, receiver) = mpsc::channel::<Result<pb::ProxyControl, Status>>(16);
                    tokio::spawn(async move {
                        let _guard = guard;
                        // The proto types this stream's inbound side as AgentControl, so a peer
                        // cannot send DrainRequest/ShutdownRequest here; the agent announces its
                        // own drain instead, and logs what it receives.
                        loop {
                            tokio::select! {
                                message = inbound.message() => match message {
                                    Ok(Some(message)) => tracing::debug!(?message, "control stream message ignored"),
                                    _ => return,
                                },
                                _ = lifecycle.accepting_stopped() => {
                                    let drain = pb::ProxyControl {
                                        message: Some(pb::proxy_control::Message::Drain(pb::DrainRequest {
                                            duration_ms: 0,
                                            reason: pb::drain_request::Reason::Manual as i32,
                                            timestamp_ms: now_ms(),
                                        })),
                                    };
                                    let _ = outbound.send(Ok(drain)).await;
                                    // Keep the stream open until the peer goes away.
                                    while let Ok(Some(_)) = inbound.message().await {}
                                    return;
                                }
                            }
                        }
                    });
                    Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
                }

                async fn process_event(&self, request: Request<ProxyToAgent>) -> Result<Response<AgentToProxy>, Status> {
                    let Some(message) = request.into_inner().message else {
                        return Err(Status::invalid_argument("empty message"));
                    };
                    let context = &self.context;
                    let reply = match message {
                        proxy_to_agent::Message::Handshake(handshake) => {
                            let error = configure_from_handshake(context, &handshake.config_json).await.err();
                            handshake_response(context, error)
                        }
                        proxy_to_agent::Message::WebsocketFrame(event) => {
                            let correlation_id = event.correlation_id.clone();
                            let frame = frame(&context.agent, &event.correlation_id, event.client_to_server, event.frame_type, event.payload);
                            let verdict = context.agent.decide(frame).await;
                            frame_response(&correlation_id, &verdict)
                        }
                        proxy_to_agent::Message::Configure(event) => {
                            configure(context, &event.config_json).await.map_err(Status::invalid_argument)?;
                            allow_response("")
                        }
                        proxy_to_agent::Message::Ping(ping) => pong(&ping),
                        proxy_to_agent::Message::Cancel(_) => allow_response(""),
                        proxy_to_agent::Message::RequestHeaders(event) => {
                            allow_response(event.metadata.as_ref().map_or("", |m| m.correlation_id.as_str()))
                        }
                        proxy_to_agent::Message::RequestBodyChunk(event) | proxy_to_agent::Message::ResponseBodyChunk(event) => {
                            allow_response(&event.correlation_id)
                        }
                        proxy_to_agent::Message::ResponseHeaders(event) => allow_response(&event.correlation_id),
                        proxy_to_agent::Message::RequestComplete(event) => allow_response(&event.correlation_id),
                        proxy_to_agent::Message::Guardrail(event) => allow_response(&event.correlation_id),
                    };
                    Ok(Response::new(reply))
                }
            }
        }
    };
}

agent_service_v2!(sentinel, sentinel_v2);
agent_service_v2!(zentinel, zentinel_v2);
