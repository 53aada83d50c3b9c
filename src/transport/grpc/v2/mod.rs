//! `AgentServiceV2` for both proxies' packages (`sentinel.agent.v2`, `zentinel.agent.v2`). The build
//! script generates the messages once and one server trait per package (the two differ only in
//! their gRPC paths); one [`Service`] implements both traits with the same methods, so the two
//! packages cannot behave differently.
//!
//! On `ProcessStream` (the RPC the proxies open, served by [`stream`]): the handshake reports
//! capabilities; a `websocket_frame` event is inspected and answered with `allow`, or with `block`
//! whose `status` is the WebSocket close code (the v2 response has no WebSocket decision), tags and
//! reason in `audit`; `configure` is applied (a rejected configuration ends the stream with
//! `INVALID_ARGUMENT` naming the key); `ping` gets a `pong`; `cancel` is accepted; HTTP events are
//! allowed (a `request_headers` event's client IP is first remembered for the WebSocket it may
//! upgrade, whose frame events carry none). Health is reported at once on every change and at the report interval, metrics at the
//! report interval. Answers may leave out of order (they carry the correlation id).
//! `ProcessEvent` answers one message the same way; `ControlStream` announces the agent's drain.
//! Every stream counts against --max-grpc-streams.

mod messages;
mod stream;

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::proto::sentinel_v2::{
    self as pb, proxy_to_agent, AgentControl, AgentToProxy, ProxyControl, ProxyToAgent,
};
use super::proto::zentinel_v2;
use crate::lifecycle::{ConnectionGuard, Transport};
use crate::telemetry::throttle::LogThrottle;
use crate::telemetry::Telemetry;
use crate::transport::TransportContext;
use messages::{
    allow_response, correlation_id_of, frame, frame_response, handshake_response, learn_upgrade,
    pong,
};

/// Messages buffered towards the proxy per stream.
const OUTBOUND_CAPACITY: usize = 1024;
/// Messages buffered towards the proxy per control stream (it only ever sends one).
const CONTROL_OUTBOUND_CAPACITY: usize = 16;

/// Log throttle of the line a peer can cause at will by opening too many streams (shared by both
/// packages).
static STREAM_REFUSALS: LogThrottle = LogThrottle::new();

/// What `ProcessStream` returns: the stream's messages to the proxy.
pub type ProcessStream = ReceiverStream<Result<AgentToProxy, Status>>;
/// What `ControlStream` returns: the agent's control messages to the proxy.
pub type ControlStream = ReceiverStream<Result<ProxyControl, Status>>;

/// `AgentServiceV2`, served under both packages.
#[derive(Debug, Clone)]
pub struct Service {
    context: TransportContext,
}

impl Service {
    /// Serves `context`'s agent.
    pub fn new(context: TransportContext) -> Self {
        Service { context }
    }

    /// The tonic server at `/sentinel.agent.v2.AgentServiceV2/...`.
    pub fn sentinel_server(self) -> pb::agent_service_v2_server::AgentServiceV2Server<Service> {
        pb::agent_service_v2_server::AgentServiceV2Server::new(self)
    }

    /// The tonic server at `/zentinel.agent.v2.AgentServiceV2/...`.
    pub fn zentinel_server(
        self,
    ) -> zentinel_v2::agent_service_v2_server::AgentServiceV2Server<Service> {
        zentinel_v2::agent_service_v2_server::AgentServiceV2Server::new(self)
    }

    /// A place under --max-grpc-streams for a new stream, or the status that refuses it.
    fn open_stream(&self) -> Result<ConnectionGuard, Status> {
        let limit = self.context.max_grpc_streams;
        // gRPC streams have a limit of their own: a flood of them never refuses a Unix socket
        // connection.
        self.context
            .lifecycle
            .try_open(Transport::Grpc, limit)
            .ok_or_else(|| {
                Telemetry::get().record_refused_connection(Transport::Grpc);
                Status::resource_exhausted("too many streams (raise --max-grpc-streams)")
            })
    }

    fn open_process_stream(
        &self,
        request: Request<Streaming<ProxyToAgent>>,
    ) -> Result<Response<ProcessStream>, Status> {
        if self.context.lifecycle.is_draining() {
            return Err(Status::unavailable("draining: not accepting new streams"));
        }
        let guard = self.open_stream().inspect_err(|_| {
            if let Some(unlogged) = STREAM_REFUSALS.event() {
                tracing::warn!(
                    limit = self.context.max_grpc_streams,
                    refused_since_last_line = unlogged + 1,
                    "too many gRPC streams; refusing new ones (raise --max-grpc-streams)"
                );
            }
        })?;
        let (outbound, receiver) = mpsc::channel(OUTBOUND_CAPACITY);
        tokio::spawn(stream::run_stream(
            self.context.clone(),
            request.into_inner(),
            outbound,
            guard,
        ));
        Ok(Response::new(ReceiverStream::new(receiver)))
    }

    fn open_control_stream(
        &self,
        request: Request<Streaming<AgentControl>>,
    ) -> Result<Response<ControlStream>, Status> {
        // Counted against --max-grpc-streams like ProcessStream (the proxies never open this
        // stream; a peer holding many must not go unbounded).
        let guard = self.open_stream()?;
        let mut inbound = request.into_inner();
        let lifecycle = Arc::clone(&self.context.lifecycle);
        let (outbound, receiver) = mpsc::channel(CONTROL_OUTBOUND_CAPACITY);
        tokio::spawn(async move {
            let _guard = guard;
            // The proto types this stream's inbound side as AgentControl, so a peer cannot send
            // DrainRequest/ShutdownRequest here; the agent announces its own drain instead, and
            // logs what it receives.
            loop {
                tokio::select! {
                    message = inbound.message() => match message {
                        Ok(Some(message)) => tracing::debug!(?message, "control stream message ignored"),
                        _ => return,
                    },
                    _ = lifecycle.accepting_stopped() => {
                        let _ = outbound.send(Ok(messages::drain_announcement())).await;
                        // Keep the stream open until the peer goes away.
                        while let Ok(Some(_)) = inbound.message().await {}
                        return;
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }

    async fn answer_event(
        &self,
        request: Request<ProxyToAgent>,
    ) -> Result<Response<AgentToProxy>, Status> {
        let Some(message) = request.into_inner().message else {
            return Err(Status::invalid_argument("empty message"));
        };
        let context = &self.context;
        let reply = match message {
            proxy_to_agent::Message::Handshake(handshake) => {
                let error = configure_from_handshake(context, &handshake.config_json)
                    .await
                    .err();
                handshake_response(context, error)
            }
            proxy_to_agent::Message::WebsocketFrame(event) => {
                let frame = frame(&context.agent, event);
                let correlation_id = Arc::clone(&frame.correlation_id);
                let verdict = context.agent.decide(frame).await;
                frame_response(&correlation_id, &verdict)
            }
            proxy_to_agent::Message::Configure(event) => {
                configure(context, &event.config_json)
                    .await
                    .map_err(Status::invalid_argument)?;
                allow_response("")
            }
            proxy_to_agent::Message::Ping(ping) => pong(&ping),
            proxy_to_agent::Message::Cancel(_) => allow_response(""),
            // HTTP events are not the agent's to inspect: allowed, echoing their id. An upgrade
            // request's client IP is remembered for its WebSocket's frames first.
            http_event => {
                if let proxy_to_agent::Message::RequestHeaders(event) = &http_event {
                    learn_upgrade(&context.agent, event);
                }
                allow_response(correlation_id_of(&http_event))
            }
        };
        Ok(Response::new(reply))
    }
}

/// An empty `config_json` means no configuration (gRPC clients send `""` or `"{}"`).
fn config_text(config_json: &str) -> &str {
    if config_json.trim().is_empty() {
        "null"
    } else {
        config_json
    }
}

/// Applies a pushed configuration; the error names the key.
async fn configure(context: &TransportContext, config_json: &str) -> Result<(), String> {
    context
        .agent
        .configure_json(config_text(config_json))
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Applies the handshake's configuration, if it carries one.
async fn configure_from_handshake(
    context: &TransportContext,
    config_json: &str,
) -> Result<(), String> {
    context
        .agent
        .configure_from_handshake(config_text(config_json))
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

// The two packages' generated server traits have the same methods over the same message types
// (build.rs maps `zentinel.agent.v2` onto `sentinel.agent.v2`); both hand every call to the one
// implementation above.

#[tonic::async_trait]
impl pb::agent_service_v2_server::AgentServiceV2 for Service {
    type ProcessStreamStream = ProcessStream;
    type ControlStreamStream = ControlStream;

    async fn process_stream(
        &self,
        request: Request<Streaming<ProxyToAgent>>,
    ) -> Result<Response<ProcessStream>, Status> {
        self.open_process_stream(request)
    }

    async fn control_stream(
        &self,
        request: Request<Streaming<AgentControl>>,
    ) -> Result<Response<ControlStream>, Status> {
        self.open_control_stream(request)
    }

    async fn process_event(
        &self,
        request: Request<ProxyToAgent>,
    ) -> Result<Response<AgentToProxy>, Status> {
        self.answer_event(request).await
    }
}

#[tonic::async_trait]
impl zentinel_v2::agent_service_v2_server::AgentServiceV2 for Service {
    type ProcessStreamStream = ProcessStream;
    type ControlStreamStream = ControlStream;

    async fn process_stream(
        &self,
        request: Request<Streaming<ProxyToAgent>>,
    ) -> Result<Response<ProcessStream>, Status> {
        self.open_process_stream(request)
    }

    async fn control_stream(
        &self,
        request: Request<Streaming<AgentControl>>,
    ) -> Result<Response<ControlStream>, Status> {
        self.open_control_stream(request)
    }

    async fn process_event(
        &self,
        request: Request<ProxyToAgent>,
    ) -> Result<Response<AgentToProxy>, Status> {
        self.answer_event(request).await
    }
}
