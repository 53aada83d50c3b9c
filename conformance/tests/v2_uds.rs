//! Protocol v2 over the Unix socket, driven by Zentinel's own `AgentClientV2Uds` (the client a
//! Zentinel 0.6.54 proxy pools) against the real agent binary, plus byte-level checks with the
//! crate's public framing helpers.

use std::sync::Arc;
use std::time::Duration;

use conformance::{agent_binary, b64, Agent};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use zentinel_agent_protocol::v2::uds::{read_message, write_message};
use zentinel_agent_protocol::v2::{AgentClientV2Uds, CancelReason, MessageType};
use zentinel_agent_protocol::{
    AgentResponse, Decision, EventType, WebSocketDecision, WebSocketFrameEvent,
};

const TIMEOUT: Duration = Duration::from_secs(5);

async fn connect(agent: &Agent) -> AgentClientV2Uds {
    let client = AgentClientV2Uds::new("ws-inspector", agent.socket_str(), TIMEOUT)
        .await
        .unwrap();
    client.connect().await.expect("v2 handshake");
    client
}

fn event(
    cid: &str,
    opcode: &str,
    data: &[u8],
    client_to_server: bool,
    fin: bool,
) -> WebSocketFrameEvent {
    WebSocketFrameEvent {
        correlation_id: cid.into(),
        opcode: opcode.into(),
        data: b64(data),
        client_to_server,
        frame_index: 0,
        fin,
        route_id: Some("ws".into()),
        client_ip: "198.51.100.4".into(),
    }
}

async fn send(
    client: &AgentClientV2Uds,
    cid: &str,
    opcode: &str,
    data: &[u8],
    fin: bool,
) -> AgentResponse {
    client
        .send_websocket_frame(cid, &event(cid, opcode, data, true, fin))
        .await
        .expect("v2 frame")
}

fn is_close(response: &AgentResponse, code: u16) -> bool {
    matches!(&response.websocket_decision, Some(WebSocketDecision::Close { code: c, .. }) if *c == code)
}

fn is_allow(response: &AgentResponse) -> bool {
    matches!(
        response.websocket_decision,
        Some(WebSocketDecision::Allow) | None
    )
}

#[tokio::test]
async fn handshake_reports_truthful_capabilities() {
    let agent = Agent::start_default();
    let client = connect(&agent).await;
    let caps = client.capabilities().await.expect("capabilities");
    assert_eq!(caps.name, "sentinel-ws-agent");
    let version = std::process::Command::new(agent_binary())
        .arg("--version")
        .output()
        .unwrap();
    let version = String::from_utf8(version.stdout).unwrap();
    assert_eq!(
        version.trim(),
        format!("sentinel-ws-agent {}", caps.version)
    );
    assert!(caps.features.websocket);
    assert!(caps.features.config_push);
    assert!(caps.features.cancellation);
    assert!(caps.features.concurrent_requests > 0);
    assert!(
        caps.supported_events.contains(&EventType::WebSocketFrame),
        "{:?}",
        caps.supported_events
    );
}

#[tokio::test]
async fn frames_are_decided_and_answers_carry_the_correlation_id() {
    let agent = Agent::start_default();
    let client = connect(&agent).await;
    let response = send(&client, "v2-a", "text", b"hello", true).await;
    assert!(is_allow(&response), "{response:?}");
    assert_eq!(
        response
            .audit
            .custom
            .get("correlation_id")
            .and_then(|v| v.as_str()),
        Some("v2-a")
    );
    let response = send(&client, "v2-b", "text", b"<script>alert(1)</script>", true).await;
    assert!(is_close(&response, 1008), "{response:?}");
    assert!(response.audit.tags.contains(&"ws-xss".to_string()));
    let response = send(&client, "v2-c", "ping", b"", true).await;
    assert!(is_allow(&response), "{response:?}");
}

#[tokio::test]
async fn configure_is_idempotent_and_rejects_naming_the_key() {
    let agent = Agent::start_default();
    // A Zentinel proxy configures every pooled connection: four identical pushes.
    let mut clients = Vec::new();
    for n in 0..4 {
        let client = connect(&agent).await;
        let response = client
            .send_configure(
                &format!("zentinel-configure-ws-{n}"),
                &serde_json::json!({"config": {"max-text-frame-size": 10}, "config_version": null}),
            )
            .await
            .unwrap();
        assert_eq!(response.decision, Decision::Allow, "{response:?}");
        clients.push(client);
    }
    let response = send(&clients[2], "cfg", "text", b"eleven byte", true).await;
    assert!(is_close(&response, 1009), "{response:?}");
    let response = clients[0]
        .send_configure(
            "zentinel-configure-ws-9",
            &serde_json::json!({"config": {"max-text-frame-size": -1}}),
        )
        .await
        .unwrap();
    match &response.decision {
        Decision::Block { status, body, .. } => {
            assert_eq!(*status, 500);
            assert!(
                body.as_deref()
                    .unwrap_or("")
                    .contains("max-text-frame-size"),
                "{response:?}"
            );
        }
        other => panic!("expected rejection, got {other:?}"),
    }
    // The running configuration stays.
    let response = send(&clients[1], "cfg2", "text", b"eleven byte", true).await;
    assert!(is_close(&response, 1009), "{response:?}");
    let log = agent.log();
    assert_eq!(log.matches("configuration applied").count(), 1, "{log}");
}

#[tokio::test]
async fn fragments_spread_over_pooled_connections_are_reassembled_by_correlation_id() {
    let agent = Agent::start_default();
    let first = connect(&agent).await;
    let second = connect(&agent).await;
    let third = connect(&agent).await;
    assert!(is_allow(
        &send(&first, "spread", "text", b"<img src=x o", false).await
    ));
    assert!(is_allow(
        &send(&second, "spread", "continuation", b"nerr", false).await
    ));
    let response = send(&third, "spread", "continuation", b"or=alert(1)>", true).await;
    assert!(is_close(&response, 1008), "{response:?}");
}

#[tokio::test]
async fn many_websockets_in_flight_on_one_connection() {
    let agent = Agent::start_default();
    let client = Arc::new(connect(&agent).await);
    let mut tasks = Vec::new();
    for n in 0..256 {
        let client = Arc::clone(&client);
        tasks.push(tokio::spawn(async move {
            let cid = format!("mux-{n}");
            let attack = n % 4 == 0;
            let text: &[u8] = if attack {
                b"1' UNION SELECT pass FROM users--"
            } else {
                b"hello"
            };
            let response = send(&client, &cid, "text", text, true).await;
            assert_eq!(
                response
                    .audit
                    .custom
                    .get("correlation_id")
                    .and_then(|v| v.as_str()),
                Some(cid.as_str())
            );
            assert_eq!(is_close(&response, 1008), attack, "{cid}: {response:?}");
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test]
async fn cancel_is_accepted_and_the_connection_keeps_serving() {
    let agent = Agent::start_default();
    let client = connect(&agent).await;
    client
        .cancel_request("gone", CancelReason::ProxyShutdown)
        .await
        .unwrap();
    client.ping().await.unwrap();
    assert!(is_allow(
        &send(&client, "after-cancel", "text", b"still here", true).await
    ));
}

/// The next message that is not a periodic health (0x30) or metrics (0x31) report.
async fn next_reply(
    stream: &mut UnixStream,
) -> Result<(MessageType, Vec<u8>), zentinel_agent_protocol::AgentProtocolError> {
    loop {
        let (kind, payload) = tokio::time::timeout(TIMEOUT, read_message(stream))
            .await
            .expect("reply in time")?;
        if !matches!(kind, MessageType::HealthStatus | MessageType::MetricsReport) {
            return Ok((kind, payload));
        }
    }
}

/// Handshake by hand, returning the raw stream.
async fn raw_handshake(agent: &Agent) -> UnixStream {
    let mut stream = UnixStream::connect(agent.socket()).await.unwrap();
    // A newer proxy may add fields; they are ignored.
    let request = serde_json::json!({
        "supported_versions": [2, 3],
        "proxy_id": "zentinel-proxy",
        "proxy_version": "0.6.54",
        "config": null,
        "supported_encodings": ["json"],
        "features_from_the_future": {"x": 1}
    });
    write_message(
        &mut stream,
        MessageType::HandshakeRequest,
        &serde_json::to_vec(&request).unwrap(),
    )
    .await
    .unwrap();
    let (kind, payload) = read_message(&mut stream).await.unwrap();
    assert_eq!(kind, MessageType::HandshakeResponse);
    let response: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(response["success"], true);
    assert_eq!(response["encoding"], "json");
    stream
}

#[tokio::test]
async fn ping_is_echoed_as_pong() {
    let agent = Agent::start_default();
    let mut stream = raw_handshake(&agent).await;
    let ping = br#"{"sequence":7,"timestamp_ms":1234}"#;
    write_message(&mut stream, MessageType::Ping, ping)
        .await
        .unwrap();
    let (kind, payload) = next_reply(&mut stream).await.unwrap();
    assert_eq!(kind, MessageType::Pong);
    assert_eq!(payload, ping);
}

#[tokio::test]
async fn post_handshake_configure_is_answered_with_its_correlation_id() {
    let agent = Agent::start_default();
    let mut stream = raw_handshake(&agent).await;
    let configure = br#"{"config":{"block-mode":true},"config_version":null,"correlation_id":"zentinel-configure-ws-1"}"#;
    write_message(&mut stream, MessageType::Configure, configure)
        .await
        .unwrap();
    let (kind, payload) = next_reply(&mut stream).await.unwrap();
    assert_eq!(kind, MessageType::AgentResponse);
    let response: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(response["decision"], "allow");
    assert_eq!(
        response["audit"]["custom"]["correlation_id"],
        "zentinel-configure-ws-1"
    );
}

#[tokio::test]
async fn malformed_messages_get_errors_not_crashes() {
    let agent = Agent::start_default();
    // A frame whose data is not base64: decided by --fail-open (off: close 1011), still routed.
    let mut stream = raw_handshake(&agent).await;
    let bad = br#"{"correlation_id":"bad-b64","opcode":"text","data":"***","client_to_server":true,"frame_index":0,"fin":true,"route_id":null,"client_ip":"x"}"#;
    write_message(&mut stream, MessageType::WebSocketFrame, bad)
        .await
        .unwrap();
    let (_, payload) = next_reply(&mut stream).await.unwrap();
    let response: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(
        response["websocket_decision"]["close"]["code"], 1011,
        "{response}"
    );
    assert_eq!(response["audit"]["custom"]["correlation_id"], "bad-b64");

    // An unknown message type is logged and skipped; the connection keeps working.
    let mut raw = Vec::new();
    raw.extend_from_slice(&3u32.to_be_bytes());
    raw.extend_from_slice(&[0x7f, b'{', b'}']);
    stream.write_all(&raw).await.unwrap();
    write_message(&mut stream, MessageType::Ping, b"{}")
        .await
        .unwrap();
    let (kind, _) = next_reply(&mut stream).await.unwrap();
    assert_eq!(kind, MessageType::Pong);

    // A 4 GiB length prefix closes that connection without allocating it.
    // (One write: the agent may close the connection as soon as it has read the length.)
    stream
        .write_all(&[0xff, 0xff, 0xff, 0xff, 0x15])
        .await
        .unwrap();
    let closed = next_reply(&mut stream).await;
    assert!(closed.is_err(), "connection should be closed");
    agent.wait_for_log("exceeds the 16777216-byte maximum", TIMEOUT);

    // Garbage that is neither protocol: that connection is closed, the agent keeps serving.
    let mut garbage = UnixStream::connect(agent.socket()).await.unwrap();
    garbage.write_all(b"\x00\x00\x00\x05GET /").await.unwrap();
    let client = connect(&agent).await;
    assert!(is_allow(
        &send(&client, "still-alive", "text", b"ok", true).await
    ));
}

#[tokio::test]
async fn metrics_report_counters_match_the_frames_sent() {
    use zentinel_agent_protocol::v2::MetricsReport;
    let agent = conformance::AgentConfig::default()
        .args(["--report-interval-ms", "200"])
        .with_metrics()
        .start();
    let (reports_tx, mut reports) = tokio::sync::mpsc::unbounded_channel::<MetricsReport>();
    let mut client = AgentClientV2Uds::new("ws", agent.socket_str(), TIMEOUT)
        .await
        .unwrap();
    client.set_metrics_callback(Arc::new(move |report| {
        let _ = reports_tx.send(report);
    }));
    client.connect().await.unwrap();
    for n in 0..10 {
        let text: &[u8] = if n % 3 == 0 {
            b"<script>alert(1)</script>"
        } else {
            b"hello"
        };
        send(&client, &format!("m-{n}"), "text", text, true).await;
    }
    let counter = |report: &MetricsReport, name: &str| {
        report
            .counters
            .iter()
            .filter(|c| c.name == name)
            .map(|c| c.value)
            .sum::<u64>()
    };
    let report = loop {
        let report = tokio::time::timeout(TIMEOUT, reports.recv())
            .await
            .expect("a report")
            .expect("open");
        if counter(&report, "frames_processed") == 10 {
            break report;
        }
    };
    assert_eq!(report.agent_id, "sentinel-ws-agent");
    assert_eq!(report.interval_ms, 200);
    assert_eq!(counter(&report, "frames_blocked"), 4);
    assert_eq!(counter(&report, "frames_allowed"), 6);
    let xss = report
        .counters
        .iter()
        .find(|c| {
            c.name == "ws_agent_detections_total"
                && c.labels.get("tag").map(String::as_str) == Some("ws-xss")
        })
        .expect("detections by tag");
    assert_eq!(xss.value, 4);
    let latency = report
        .histograms
        .iter()
        .find(|h| h.name == "ws_agent_decision_latency_seconds")
        .expect("latency histogram");
    assert_eq!(latency.count, 10);
    // Cumulative buckets ending in +Inf, which holds every observation.
    assert!(latency.buckets.windows(2).all(|w| w[0].count <= w[1].count));
    let last = latency.buckets.last().expect("buckets");
    assert!(last.le.is_infinite());
    assert_eq!(last.count, 10);
    assert!(latency.sum > 0.0);
    assert!(report
        .gauges
        .iter()
        .any(|g| g.name == "ws_agent_tracked_connections" && g.value == 10.0));
    // Every registered series is carried, with its help text, labels and kind.
    let frames = |decision: &str| {
        report
            .counters
            .iter()
            .filter(|c| {
                c.name == "ws_agent_frames_total"
                    && c.labels.get("decision").map(String::as_str) == Some(decision)
            })
            .map(|c| c.value)
            .sum::<u64>()
    };
    assert_eq!((frames("allow"), frames("close")), (6, 4));
    let frames_help = report
        .counters
        .iter()
        .find(|c| c.name == "ws_agent_frames_total")
        .and_then(|c| c.help.as_deref());
    assert_eq!(
        frames_help,
        Some("Frames decided, by direction, opcode and decision")
    );
    let build_info = report
        .gauges
        .iter()
        .find(|g| g.name == "ws_agent_build_info")
        .expect("build info");
    assert_eq!(build_info.value, 1.0);
    assert!(build_info
        .labels
        .get("version")
        .is_some_and(|v| !v.is_empty()));
    assert!(report
        .gauges
        .iter()
        .any(|g| g.name == "ws_agent_transport_connections" && g.value >= 1.0));
    for counter in [
        "ws_agent_evictions_total",
        "ws_agent_config_reloads_total",
        "ws_agent_protocol_errors_total",
        "ws_agent_ip_leases_total",
    ] {
        assert!(
            report.counters.iter().any(|c| c.name == counter),
            "{counter} missing from the report"
        );
    }
    // The Prometheus endpoint shows the same figures: one registry.
    assert_eq!(
        agent.metric("ws_agent_detections_total{tag=\"ws-xss\"}"),
        Some(4.0)
    );
    assert_eq!(
        agent.metric("ws_agent_frames_total{direction=\"c2s\",opcode=\"text\",decision=\"close\"}"),
        Some(4.0)
    );
}

#[tokio::test]
async fn health_reports_draining_on_sigterm_and_frames_keep_full_inspection() {
    let agent = conformance::AgentConfig::default()
        .args(["--report-interval-ms", "200", "--drain-timeout", "10"])
        .start();
    let mut stream = raw_handshake(&agent).await;
    let state = |payload: &[u8]| {
        serde_json::from_slice::<serde_json::Value>(payload).unwrap()["state"].as_i64()
    };
    loop {
        let (kind, payload) = tokio::time::timeout(TIMEOUT, read_message(&mut stream))
            .await
            .unwrap()
            .unwrap();
        if kind == MessageType::HealthStatus {
            assert_eq!(state(&payload), Some(1));
            break;
        }
    }
    agent.signal("TERM");
    loop {
        let (kind, payload) = tokio::time::timeout(TIMEOUT, read_message(&mut stream))
            .await
            .unwrap()
            .unwrap();
        if kind == MessageType::HealthStatus && state(&payload) == Some(3) {
            let report: serde_json::Value = serde_json::from_slice(&payload).unwrap();
            assert!(
                report["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("draining"),
                "{report}"
            );
            break;
        }
    }
    let frame = serde_json::to_vec(&event(
        "drain",
        "text",
        b"<script>alert(1)</script>",
        true,
        true,
    ))
    .unwrap();
    let mut frame_json: serde_json::Value = serde_json::from_slice(&frame).unwrap();
    frame_json["correlation_id"] = "drain".into();
    write_message(
        &mut stream,
        MessageType::WebSocketFrame,
        &serde_json::to_vec(&frame_json).unwrap(),
    )
    .await
    .unwrap();
    let (_, payload) = next_reply(&mut stream).await.unwrap();
    let response: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(
        response["websocket_decision"]["close"]["code"], 1008,
        "{response}"
    );
}
