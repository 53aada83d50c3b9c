//! A protocol v1 client for tests: Sentinel 0.4.14's own `AgentClient` over the Unix socket, with
//! helpers that build frame and configure events the way the proxy does.

use std::path::Path;
use std::time::Duration;

use sentinel_agent_protocol::{
    AgentClient, AgentResponse, ConfigureEvent, EventType, WebSocketDecision, WebSocketFrameEvent,
};

use crate::{b64, Agent};

/// How long a test waits for one answer.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Sentinel's v1 client plus a frame counter.
pub struct V1Client {
    /// The upstream client, for events the helpers do not cover.
    pub inner: AgentClient,
    index: u64,
}

impl V1Client {
    /// Connects to `agent`'s socket.
    pub async fn connect(agent: &Agent) -> V1Client {
        V1Client::connect_path(agent.socket()).await
    }

    /// Connects to the socket at `path`.
    pub async fn connect_path(path: &Path) -> V1Client {
        let inner = AgentClient::unix_socket("ws-test", path, TIMEOUT)
            .await
            .expect("connect v1");
        V1Client { inner, index: 0 }
    }

    /// Sends one frame as the proxy would (route `ws-route`, client 192.0.2.7).
    pub async fn frame(
        &mut self,
        cid: &str,
        opcode: &str,
        data: &[u8],
        client_to_server: bool,
        fin: bool,
    ) -> AgentResponse {
        self.index += 1;
        let event = WebSocketFrameEvent {
            correlation_id: cid.into(),
            opcode: opcode.into(),
            data: b64(data),
            client_to_server,
            frame_index: self.index,
            fin,
            route_id: Some("ws-route".into()),
            client_ip: "192.0.2.7".into(),
        };
        self.inner
            .send_event(EventType::WebSocketFrame, &event)
            .await
            .expect("v1 frame")
    }

    /// A complete client-to-server text message.
    pub async fn text(&mut self, cid: &str, text: &str) -> AgentResponse {
        self.frame(cid, "text", text.as_bytes(), true, true).await
    }

    /// A complete client-to-server binary message.
    pub async fn binary(&mut self, cid: &str, data: &[u8]) -> AgentResponse {
        self.frame(cid, "binary", data, true, true).await
    }

    /// A `configure` event, as Sentinel sends it on its first connection.
    pub async fn configure(&mut self, config: serde_json::Value) -> AgentResponse {
        let event = ConfigureEvent {
            agent_id: "ws-test".into(),
            config,
        };
        self.inner
            .send_event(EventType::Configure, &event)
            .await
            .expect("v1 configure")
    }
}

/// The WebSocket decision of a response (panics when there is none).
pub fn decision(response: &AgentResponse) -> WebSocketDecision {
    response
        .websocket_decision
        .clone()
        .expect("a websocket decision")
}
