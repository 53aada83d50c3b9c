//! One `ProcessStream`: the handshake (configuration, then capabilities and the periodic reports),
//! frames handed to the agent and answered as they are decided (possibly out of order: answers
//! carry the correlation id), pushed configurations, pings, and `allow` for HTTP events. The
//! stream must send its first message within --read-timeout; frames decided after the proxy
//! stops sending are still answered before the stream closes.

use std::sync::Arc;

use tokio::sync::{mpsc, Semaphore};
use tonic::{Status, Streaming};

use super::messages::{
    allow_response, correlation_id_of, frame, frame_response, handshake_response, health_message,
    learn_upgrade, metrics_message, pong,
};
use super::{configure, configure_from_handshake};
use crate::actors::{Answer, ReplyTarget};
use crate::lifecycle::{ConnectionGuard, Transport};
use crate::telemetry::throttle::LogThrottle;
use crate::transport::grpc::proto::sentinel_v2::{proxy_to_agent, AgentToProxy, ProxyToAgent};
use crate::transport::reports::{self, Report};
use crate::transport::TransportContext;

/// Frames one stream may have in flight before the agent stops reading from it.
const MAX_IN_FLIGHT_PER_STREAM: usize = 1024;

/// Log throttle of the line a peer can cause at will by opening silent streams.
static STREAM_TIMEOUTS: LogThrottle = LogThrottle::new();

/// Where a stream's messages to the proxy go (bounded; an `Err` ends the stream with that status).
pub(super) type Outbound = mpsc::Sender<Result<AgentToProxy, Status>>;

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

/// Serves one stream until the proxy ends it, it fails, or a configuration is rejected; `guard`
/// holds its place under --max-grpc-streams until then.
pub(super) async fn run_stream(
    context: TransportContext,
    mut inbound: Streaming<ProxyToAgent>,
    outbound: Outbound,
    guard: ConnectionGuard,
) {
    let _guard = guard;
    // A stream must send its first message within --read-timeout (HEADERS alone hold
    // nothing); later idle time is the proxy's to spend.
    let first = match tokio::time::timeout(context.read_timeout, inbound.message()).await {
        Ok(first) => first,
        Err(_) => {
            crate::telemetry::Telemetry::get().record_read_timeout(Transport::Grpc);
            if let Some(unlogged) = STREAM_TIMEOUTS.event() {
                tracing::warn!(
                    closed_since_last_line = unlogged + 1,
                    "gRPC stream sent no message within --read-timeout; ended"
                );
            }
            let _ = outbound
                .send(Err(Status::deadline_exceeded(
                    "no message within --read-timeout",
                )))
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
        let Some(message) = message.message else {
            continue;
        };
        let reply = match message {
            proxy_to_agent::Message::Handshake(handshake) => {
                tracing::info!(
                    proxy_id = %crate::util::for_log(&handshake.proxy_id),
                    proxy_version = %crate::util::for_log(&handshake.proxy_version),
                    "v2 gRPC handshake"
                );
                let error = configure_from_handshake(&context, &handshake.config_json)
                    .await
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
                let frame = frame(&context.agent, event);
                context
                    .agent
                    .submit(
                        frame,
                        ReplyTarget::Queue {
                            queue: answers_tx.clone(),
                            permit,
                        },
                    )
                    .await;
                continue;
            }
            proxy_to_agent::Message::Configure(event) => {
                match configure(&context, &event.config_json).await {
                    Ok(()) => continue,
                    Err(reason) => {
                        // The proxies treat an ended stream as a rejected configuration.
                        let _ = outbound.send(Err(Status::invalid_argument(reason))).await;
                        break;
                    }
                }
            }
            proxy_to_agent::Message::Ping(ping) => pong(&ping),
            proxy_to_agent::Message::Cancel(cancel) => {
                tracing::debug!(correlation_id = %crate::util::for_log(&cancel.correlation_id), "cancel accepted");
                continue;
            }
            // HTTP events are not the agent's to inspect: allowed, echoing their id. An upgrade
            // request's client IP is remembered for its WebSocket's frames first.
            http_event => {
                if let proxy_to_agent::Message::RequestHeaders(event) = &http_event {
                    learn_upgrade(&context.agent, event);
                }
                allow_response(correlation_id_of(&http_event))
            }
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
