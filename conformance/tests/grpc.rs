//! The gRPC transport, driven by the upstream crates' gRPC clients: Sentinel's v1 `AgentClient`
//! (`sentinel.agent.v1.AgentProcessor`) and both crates' `AgentClientV2` plus their generated
//! `AgentServiceV2` clients (packages `sentinel.agent.v2` and `zentinel.agent.v2`).

use std::time::Duration;

use conformance::{b64, Agent, AgentConfig};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const TIMEOUT: Duration = Duration::from_secs(5);

fn grpc_agent(extra: &[&str]) -> Agent {
    AgentConfig::default()
        .args([
            "--grpc-address",
            "127.0.0.1:0",
            "--report-interval-ms",
            "200",
        ])
        .args(extra.iter().copied())
        .start()
}

#[tokio::test]
async fn v1_grpc_frame_is_closed_with_a_websocket_decision() {
    use sentinel_agent_protocol::{AgentClient, EventType, WebSocketDecision, WebSocketFrameEvent};
    let agent = grpc_agent(&[]);
    let mut client = AgentClient::grpc("ws", agent.grpc_endpoint(), TIMEOUT)
        .await
        .expect("grpc connect");
    let mut event = WebSocketFrameEvent {
        correlation_id: "g1".into(),
        opcode: "text".into(),
        data: b64(b"hello"),
        client_to_server: true,
        frame_index: 0,
        fin: true,
        route_id: Some("r".into()),
        client_ip: "10.0.0.1".into(),
    };
    let response = client
        .send_event(EventType::WebSocketFrame, &event)
        .await
        .unwrap();
    assert_eq!(
        response.websocket_decision,
        Some(WebSocketDecision::Allow),
        "{response:?}"
    );
    event.data = b64(b"<script>alert(1)</script>");
    let response = client
        .send_event(EventType::WebSocketFrame, &event)
        .await
        .unwrap();
    assert!(
        matches!(&response.websocket_decision, Some(WebSocketDecision::Close { code: 1008, reason }) if reason.contains("XSS")),
        "{response:?}"
    );
    assert!(
        response.audit.tags.contains(&"ws-xss".to_string()),
        "{response:?}"
    );
}

#[tokio::test]
async fn v2_grpc_handshake_reports_capabilities_in_both_packages() {
    let agent = grpc_agent(&[]);
    let endpoint = agent.grpc_endpoint();

    let sentinel = sentinel_agent_protocol::v2::AgentClientV2::new("ws", endpoint.clone(), TIMEOUT)
        .await
        .unwrap();
    sentinel
        .connect()
        .await
        .expect("sentinel.agent.v2 handshake");
    let caps = sentinel.capabilities().await.expect("capabilities");
    assert_eq!(caps.protocol_version, 2);
    assert_eq!(caps.agent_id, "sentinel-ws-agent");
    assert_eq!(caps.name, "sentinel-ws-agent");
    assert!(caps.features.websocket && caps.features.config_push && caps.features.metrics_export);
    assert!(caps.features.health_reporting && caps.features.cancellation);
    assert!(caps.features.concurrent_requests > 0);
    assert_eq!(caps.limits.max_body_size, 16 * 1024 * 1024);
    assert_eq!(caps.health.report_interval_ms, 200);

    let zentinel = zentinel_agent_protocol::v2::AgentClientV2::new("ws", endpoint, TIMEOUT)
        .await
        .unwrap();
    zentinel
        .connect()
        .await
        .expect("zentinel.agent.v2 handshake");
    let caps = zentinel.capabilities().await.expect("capabilities");
    assert!(caps.features.websocket);
    assert!(
        caps.supported_events
            .contains(&zentinel_agent_protocol::EventType::WebSocketFrame),
        "{:?}",
        caps.supported_events
    );
}

#[tokio::test]
async fn limits_in_capabilities_follow_the_configuration() {
    let agent = grpc_agent(&["--max-message-size", "4096"]);
    let client =
        zentinel_agent_protocol::v2::AgentClientV2::new("ws", agent.grpc_endpoint(), TIMEOUT)
            .await
            .unwrap();
    client.connect().await.unwrap();
    assert_eq!(
        client.capabilities().await.unwrap().limits.max_body_size,
        4096
    );
}

/// A raw `zentinel.agent.v2` ProcessStream.
mod raw {
    use super::*;
    use zentinel_agent_protocol::grpc_v2::agent_service_v2_client::AgentServiceV2Client;
    pub use zentinel_agent_protocol::grpc_v2::*;

    pub struct Stream {
        pub tx: mpsc::Sender<ProxyToAgent>,
        pub inbound: tonic::Streaming<AgentToProxy>,
    }

    pub async fn open(endpoint: &str, config_json: &str) -> Stream {
        let mut client = AgentServiceV2Client::connect(endpoint.to_string())
            .await
            .unwrap();
        let (tx, rx) = mpsc::channel(64);
        tx.send(ProxyToAgent {
            message: Some(proxy_to_agent::Message::Handshake(HandshakeRequest {
                supported_versions: vec![2],
                proxy_id: "zentinel-proxy".into(),
                proxy_version: "0.6.54".into(),
                config_json: config_json.into(),
            })),
        })
        .await
        .unwrap();
        let inbound = client
            .process_stream(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        Stream { tx, inbound }
    }

    impl Stream {
        pub async fn send(&self, message: proxy_to_agent::Message) {
            self.tx
                .send(ProxyToAgent {
                    message: Some(message),
                })
                .await
                .unwrap();
        }

        /// The next message that satisfies `wanted` (others, such as periodic reports, are skipped).
        pub async fn next_matching(
            &mut self,
            wanted: impl Fn(&agent_to_proxy::Message) -> bool,
        ) -> Result<agent_to_proxy::Message, tonic::Status> {
            loop {
                let message = tokio::time::timeout(TIMEOUT, self.inbound.message())
                    .await
                    .expect("message in time")?
                    .ok_or_else(|| tonic::Status::cancelled("stream ended"))?;
                if let Some(message) = message.message {
                    if wanted(&message) {
                        return Ok(message);
                    }
                }
            }
        }

        /// Sends the RequestHeaders event of a WebSocket's upgrade request (as Zentinel does for
        /// a route whose agent subscribes to request headers) and checks that it is allowed.
        pub async fn upgrade(&mut self, cid: &str, ip: &str, route: Option<&str>) {
            self.send(proxy_to_agent::Message::RequestHeaders(
                RequestHeadersEvent {
                    metadata: Some(RequestMetadata {
                        correlation_id: cid.into(),
                        request_id: format!("req-{cid}"),
                        client_ip: ip.into(),
                        client_port: 50_000,
                        protocol: "HTTP/1.1".into(),
                        route_id: route.map(str::to_string),
                        ..Default::default()
                    }),
                    method: "GET".into(),
                    uri: "/ws".into(),
                    http_version: "HTTP/1.1".into(),
                    headers: vec![Header {
                        name: "upgrade".into(),
                        value: "websocket".into(),
                    }],
                },
            ))
            .await;
            let response = self.response().await;
            assert_eq!(response.correlation_id, cid);
            assert!(
                matches!(response.decision, Some(agent_response::Decision::Allow(_))),
                "request headers are allowed: {response:?}"
            );
        }

        pub async fn response(&mut self) -> AgentResponse {
            match self
                .next_matching(|m| matches!(m, agent_to_proxy::Message::Response(_)))
                .await
                .unwrap()
            {
                agent_to_proxy::Message::Response(response) => response,
                _ => unreachable!(),
            }
        }
    }

    pub fn frame(cid: &str, frame_type: i32, payload: &[u8]) -> proxy_to_agent::Message {
        proxy_to_agent::Message::WebsocketFrame(WebSocketFrameEvent {
            correlation_id: cid.into(),
            client_to_server: true,
            frame_type,
            payload: payload.to_vec(),
        })
    }
}

#[tokio::test]
async fn v2_stream_frames_map_close_to_block_with_the_close_code() {
    let agent = grpc_agent(&["--max-text-frame-size", "64"]);
    let mut stream = raw::open(&agent.grpc_endpoint(), "").await;
    let handshake = stream
        .next_matching(|m| matches!(m, raw::agent_to_proxy::Message::Handshake(_)))
        .await
        .unwrap();
    assert!(matches!(handshake, raw::agent_to_proxy::Message::Handshake(h) if h.success));

    stream.send(raw::frame("s1", 1, b"hello")).await;
    let response = stream.response().await;
    assert_eq!(response.correlation_id, "s1");
    assert!(
        matches!(
            response.decision,
            Some(raw::agent_response::Decision::Allow(_))
        ),
        "{response:?}"
    );

    stream
        .send(raw::frame(
            "s2",
            1,
            b"1' UNION SELECT password FROM users--",
        ))
        .await;
    let response = stream.response().await;
    match &response.decision {
        Some(raw::agent_response::Decision::Block(block)) => assert_eq!(block.status, 1008),
        other => panic!("{other:?}"),
    }
    let audit = response.audit.unwrap();
    assert!(audit.tags.contains(&"ws-sqli".to_string()));
    assert_eq!(
        audit.custom.get("websocket_decision").map(String::as_str),
        Some("close")
    );

    stream.send(raw::frame("s3", 1, &[b'a'; 65])).await;
    let response = stream.response().await;
    assert!(
        matches!(response.decision, Some(raw::agent_response::Decision::Block(ref b)) if b.status == 1009),
        "{response:?}"
    );

    stream
        .send(raw::proxy_to_agent::Message::Ping(raw::Ping {
            sequence: 42,
            timestamp_ms: 1,
        }))
        .await;
    let pong = stream
        .next_matching(|m| matches!(m, raw::agent_to_proxy::Message::Pong(_)))
        .await
        .unwrap();
    assert!(
        matches!(pong, raw::agent_to_proxy::Message::Pong(p) if p.sequence == 42 && p.ping_timestamp_ms == 1)
    );
}

#[tokio::test]
async fn v2_stream_configure_is_applied_idempotently_and_rejected_by_ending_the_stream() {
    let agent = grpc_agent(&[]);
    let endpoint = agent.grpc_endpoint();
    let mut stream = raw::open(&endpoint, r#"{"block-mode": false}"#).await;
    stream
        .next_matching(|m| matches!(m, raw::agent_to_proxy::Message::Handshake(h) if h.success))
        .await
        .unwrap();
    for _ in 0..3 {
        stream
            .send(raw::proxy_to_agent::Message::Configure(
                raw::ConfigureEvent {
                    config_json: r#"{"block-mode": false}"#.into(),
                    config_version: Some("1".into()),
                    is_initial: true,
                    timestamp_ms: 0,
                },
            ))
            .await;
        // Zentinel probes the configuration with a ping; a pong means accepted.
        stream
            .send(raw::proxy_to_agent::Message::Ping(raw::Ping {
                sequence: 1,
                timestamp_ms: 0,
            }))
            .await;
        stream
            .next_matching(|m| matches!(m, raw::agent_to_proxy::Message::Pong(_)))
            .await
            .unwrap();
    }
    stream
        .send(raw::frame("detect", 1, b"<script>alert(1)</script>"))
        .await;
    let response = stream.response().await;
    assert!(
        matches!(
            response.decision,
            Some(raw::agent_response::Decision::Allow(_))
        ),
        "{response:?}"
    );
    assert!(response
        .audit
        .unwrap()
        .tags
        .contains(&"detect-only".to_string()));
    assert_eq!(
        agent.log().matches("configuration applied").count(),
        1,
        "{}",
        agent.log()
    );

    stream
        .send(raw::proxy_to_agent::Message::Configure(
            raw::ConfigureEvent {
                config_json: r#"{"rate-limit-burst": "many"}"#.into(),
                config_version: None,
                is_initial: false,
                timestamp_ms: 0,
            },
        ))
        .await;
    let status = stream.next_matching(|_| false).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("rate-limit-burst"), "{status:?}");

    // The running configuration stays (still detect-only).
    let mut stream = raw::open(&endpoint, "").await;
    stream
        .send(raw::frame("still", 1, b"<script>alert(1)</script>"))
        .await;
    let response = stream.response().await;
    assert!(
        matches!(
            response.decision,
            Some(raw::agent_response::Decision::Allow(_))
        ),
        "{response:?}"
    );
}

#[tokio::test]
async fn health_turns_draining_on_sigterm_while_frames_keep_their_real_decision() {
    let agent = grpc_agent(&["--drain-timeout", "10"]);
    let mut stream = raw::open(&agent.grpc_endpoint(), "").await;
    let health = stream
        .next_matching(|m| matches!(m, raw::agent_to_proxy::Message::Health(_)))
        .await
        .unwrap();
    assert!(matches!(health, raw::agent_to_proxy::Message::Health(h) if h.state == 1));
    agent.signal("TERM");
    let health = stream
        .next_matching(|m| matches!(m, raw::agent_to_proxy::Message::Health(h) if h.state != 1))
        .await
        .unwrap();
    match health {
        raw::agent_to_proxy::Message::Health(h) => {
            assert_eq!(h.state, 3, "{h:?}");
            assert!(h.message.unwrap_or_default().contains("draining"));
        }
        _ => unreachable!(),
    }
    // Draining never means allow-all.
    stream
        .send(raw::frame("late", 1, b"$(cat /etc/passwd)"))
        .await;
    let response = stream.response().await;
    assert!(
        matches!(response.decision, Some(raw::agent_response::Decision::Block(ref b)) if b.status == 1008),
        "{response:?}"
    );
}

/// v2 gRPC frame events carry no client IP: the agent takes it from the RequestHeaders event of
/// the WebSocket's upgrade request (same correlation id), so the IP budget applies to the frames
/// of that WebSocket and of every other WebSocket of the IP; frames whose upgrade was never seen
/// are counted in `ws_agent_frames_without_client_ip_total` and logged instead of silently
/// escaping the budget.
#[tokio::test]
async fn v2_stream_frames_are_held_to_the_ip_budget_of_their_upgrade_request() {
    let agent = AgentConfig::default()
        .args(["--grpc-address", "127.0.0.1:0"])
        .args(["--ip-max-messages-per-sec", "1", "--ip-burst", "2"])
        .with_metrics()
        .start();
    let mut stream = raw::open(&agent.grpc_endpoint(), "").await;
    stream
        .next_matching(|m| matches!(m, raw::agent_to_proxy::Message::Handshake(h) if h.success))
        .await
        .unwrap();

    /// True when allowed; a refusal must be the per-IP close.
    async fn send(stream: &mut raw::Stream, cid: &str) -> bool {
        stream.send(raw::frame(cid, 1, b"hello")).await;
        let response = stream.response().await;
        assert_eq!(response.correlation_id, cid);
        match &response.decision {
            Some(raw::agent_response::Decision::Allow(_)) => true,
            Some(raw::agent_response::Decision::Block(block)) => {
                assert_eq!(block.status, 1008, "{response:?}");
                let tags = &response.audit.as_ref().unwrap().tags;
                assert!(tags.contains(&"ws-ip-rate-limit".to_string()), "{tags:?}");
                false
            }
            other => panic!("{other:?}"),
        }
    }

    stream.upgrade("ws-a", "198.51.100.20", None).await;
    let mut allowed = 0;
    for _ in 0..5 {
        allowed += usize::from(send(&mut stream, "ws-a").await);
    }
    assert_eq!(allowed, 3, "the IP's budget holds 3 messages at once");
    // The violation log line names the learned IP.
    agent.wait_for_log("client_ip=198.51.100.20", TIMEOUT);
    // Another WebSocket of the same IP: the same, spent budget.
    stream.upgrade("ws-b", "198.51.100.20", None).await;
    assert!(!send(&mut stream, "ws-b").await);
    // Another IP has its own.
    stream.upgrade("ws-c", "198.51.100.21", None).await;
    assert!(send(&mut stream, "ws-c").await);
    assert_eq!(
        agent
            .metric("ws_agent_frames_without_client_ip_total")
            .unwrap_or(0.0),
        0.0
    );

    // No upgrade request seen: allowed, and counted.
    for _ in 0..4 {
        assert!(send(&mut stream, "ws-unknown").await);
    }
    assert_eq!(
        agent.metric("ws_agent_frames_without_client_ip_total"),
        Some(4.0)
    );
    let log = agent.wait_for_log("per-IP budgets cannot apply", TIMEOUT);
    assert_eq!(
        log.matches("per-IP budgets cannot apply").count(),
        1,
        "logged once (at most once a second)"
    );
}

/// v2 gRPC frame events carry no route id either: a WebSocket whose upgrade request named its
/// route gets that route's policy from the policy file, one whose upgrade was not seen gets the
/// default policy.
#[tokio::test]
async fn v2_stream_frames_get_the_policy_of_their_upgrade_requests_route() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("routes.toml");
    std::fs::write(
        &policy,
        r#"
[[route]]
match = "trading"
xss-detection = false
schema.client.text = { type = "object", required = ["order"] }

[[route]]
match = "telemetry"
block-mode = false
"#,
    )
    .unwrap();
    let agent = grpc_agent(&["--policy-file", policy.to_str().unwrap()]);
    let mut stream = raw::open(&agent.grpc_endpoint(), "").await;
    stream
        .next_matching(|m| matches!(m, raw::agent_to_proxy::Message::Handshake(h) if h.success))
        .await
        .unwrap();

    async fn decide(stream: &mut raw::Stream, cid: &str, payload: &str) -> raw::AgentResponse {
        stream.send(raw::frame(cid, 1, payload.as_bytes())).await;
        let response = stream.response().await;
        assert_eq!(response.correlation_id, cid);
        response
    }
    fn closes(response: &raw::AgentResponse) -> bool {
        matches!(response.decision, Some(raw::agent_response::Decision::Block(ref b)) if b.status == 1008)
    }
    fn allows(response: &raw::AgentResponse) -> bool {
        matches!(
            response.decision,
            Some(raw::agent_response::Decision::Allow(_))
        )
    }

    let order = r#"{"order": "<img src=x onerror=alert(1)>"}"#;
    stream
        .upgrade("ws-trading", "198.51.100.30", Some("trading"))
        .await;
    let response = decide(&mut stream, "ws-trading", order).await;
    assert!(allows(&response), "trading has no XSS check: {response:?}");
    let response = decide(&mut stream, "ws-trading", r#"{"fill": 1}"#).await;
    assert!(closes(&response), "trading's client schema: {response:?}");

    stream.upgrade("ws-telemetry", "", Some("telemetry")).await;
    let response = decide(&mut stream, "ws-telemetry", order).await;
    assert!(allows(&response), "telemetry is detect-only: {response:?}");
    let tags = &response.audit.as_ref().unwrap().tags;
    assert!(tags.contains(&"detect-only".to_string()), "{tags:?}");

    // Neither a route nor an upgrade: the default policy.
    stream.upgrade("ws-plain", "198.51.100.31", None).await;
    assert!(closes(&decide(&mut stream, "ws-plain", order).await));
    assert!(closes(&decide(&mut stream, "ws-unseen", order).await));
}
