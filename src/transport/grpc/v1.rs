//! `sentinel.agent.v1.AgentProcessor`: the gRPC path on which Sentinel 0.4.x can use the agent for
//! frames (decisions in `AgentResponse` fields 30-32). Frame data arrives as raw bytes.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use tonic::{Request, Response, Status, Streaming};

use super::proto::sentinel_v1::agent_processor_server::AgentProcessor;
use super::proto::sentinel_v1::{
    agent_request, agent_response, AgentRequest, AgentResponse, AllowDecision, AuditMetadata,
    WebSocketAllowDecision, WebSocketCloseDecision, WebSocketDropDecision,
};
use crate::agent::Agent;
use crate::lifecycle::Transport;
use crate::model::{Action, Direction, Frame, Opcode, Verdict};
use crate::telemetry::Telemetry;
use crate::transport::TransportContext;

/// The v1 service.
#[derive(Debug, Clone)]
pub struct V1Service {
    agent: Agent,
    context: TransportContext,
}

impl V1Service {
    /// Serves frames to the context's agent, under its gRPC stream limits.
    pub fn new(context: TransportContext) -> Self {
        V1Service {
            agent: context.agent.clone(),
            context,
        }
    }

    async fn answer(&self, request: AgentRequest) -> AgentResponse {
        let event = match request.event {
            Some(agent_request::Event::WebsocketFrame(event)) => event,
            Some(agent_request::Event::RequestHeaders(headers)) => {
                // Allowed; an upgrade request's client IP and route are remembered for its WebSocket
                // first.
                if let Some(metadata) = &headers.metadata {
                    self.agent.learn_upgrade(
                        &metadata.correlation_id,
                        &metadata.client_ip,
                        metadata.route_id.as_deref(),
                    );
                }
                return response(None);
            }
            // Other HTTP events are not ours to inspect.
            _ => return response(None),
        };
        let Some(opcode) = Opcode::from_name(&event.opcode) else {
            Telemetry::get().record_protocol_error();
            tracing::error!(opcode = %crate::util::for_log(&event.opcode), answer = crate::model::failure_answer(self.agent.policy().fail_open()), "unknown opcode in a v1 gRPC frame; answered without inspection");
            return response(Some(&Verdict::failure(
                self.agent.policy().fail_open(),
                crate::model::ReasonCode::UndecodableFrame,
            )));
        };
        let frame = Frame {
            correlation_id: self.agent.intern(&event.correlation_id),
            direction: Direction::from_client_flag(event.client_to_server),
            opcode,
            fin: event.fin,
            payload: Bytes::from(event.data),
            route_id: event.route_id.map(Arc::from),
            client_ip: (!event.client_ip.is_empty()).then(|| Arc::from(event.client_ip)),
        };
        let verdict = self.agent.decide(frame).await;
        response(Some(&verdict))
    }
}

/// A v1 response: HTTP decision allow, and the WebSocket decision when there is a verdict.
fn response(verdict: Option<&Verdict>) -> AgentResponse {
    let mut response = AgentResponse {
        version: 1,
        decision: Some(agent_response::Decision::Allow(AllowDecision {})),
        ..AgentResponse::default()
    };
    if let Some(verdict) = verdict {
        response.websocket_decision = Some(match &verdict.action {
            Action::Allow => {
                agent_response::WebsocketDecision::WebsocketAllow(WebSocketAllowDecision {})
            }
            Action::Drop => {
                agent_response::WebsocketDecision::WebsocketDrop(WebSocketDropDecision {})
            }
            Action::Close { code, reason } => {
                agent_response::WebsocketDecision::WebsocketClose(WebSocketCloseDecision {
                    code: u32::from(*code),
                    reason: reason.to_string(),
                })
            }
        });
        response.audit = Some(AuditMetadata {
            tags: verdict
                .tags
                .iter()
                .map(|t| t.as_str().to_string())
                .collect(),
            rule_ids: verdict.rule_ids.iter().map(Cow::to_string).collect(),
            reason_codes: verdict.reason_codes.iter().map(Cow::to_string).collect(),
            ..AuditMetadata::default()
        });
    }
    response
}

#[tonic::async_trait]
impl AgentProcessor for V1Service {
    async fn process_event(
        &self,
        request: Request<AgentRequest>,
    ) -> Result<Response<AgentResponse>, Status> {
        Ok(Response::new(self.answer(request.into_inner()).await))
    }

    async fn process_event_stream(
        &self,
        request: Request<Streaming<AgentRequest>>,
    ) -> Result<Response<AgentResponse>, Status> {
        // Counted against --max-grpc-streams, and a stream must send its first event within
        // --read-timeout, like the v2 ProcessStream.
        let Some(_guard) = self
            .context
            .lifecycle
            .try_open(Transport::Grpc, self.context.max_grpc_streams)
        else {
            Telemetry::get().record_refused_connection(Transport::Grpc);
            return Err(Status::resource_exhausted(
                "too many streams (raise --max-grpc-streams)",
            ));
        };
        let mut stream = request.into_inner();
        let mut last = response(None);
        let first = match tokio::time::timeout(self.context.read_timeout, stream.message()).await {
            Ok(first) => first?,
            Err(_) => {
                Telemetry::get().record_read_timeout(Transport::Grpc);
                return Err(Status::deadline_exceeded(
                    "no message within --read-timeout",
                ));
            }
        };
        let mut next = first;
        while let Some(event) = next {
            last = self.answer(event).await;
            next = stream.message().await?;
        }
        Ok(Response::new(last))
    }
}
