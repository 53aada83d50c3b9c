//! What an operator sees: Prometheus figures, the /connections view, and the structured log line
//! written for every violation.

use std::time::Duration;

use conformance::{b64, Agent, AgentConfig};
use sentinel_agent_protocol::{AgentClient, AgentResponse, EventType, WebSocketFrameEvent};

const TIMEOUT: Duration = Duration::from_secs(5);

async fn send(
    client: &mut AgentClient,
    cid: &str,
    text: &str,
    client_to_server: bool,
) -> AgentResponse {
    let event = WebSocketFrameEvent {
        correlation_id: cid.into(),
        opcode: "text".into(),
        data: b64(text.as_bytes()),
        client_to_server,
        frame_index: 0,
        fin: true,
        route_id: Some("chat-route".into()),
        client_ip: "203.0.113.9".into(),
    };
    client
        .send_event(EventType::WebSocketFrame, &event)
        .await
        .unwrap()
}

async fn connect(agent: &Agent) -> AgentClient {
    AgentClient::unix_socket("ops", agent.socket(), TIMEOUT)
        .await
        .unwrap()
}

#[tokio::test]
async fn metrics_show_frames_detections_latency_and_connections() {
    let agent = AgentConfig::default().with_metrics().start();
    let mut client = connect(&agent).await;
    for _ in 0..3 {
        send(&mut client, "ops-1", "hello", true).await;
    }
    send(&mut client, "ops-1", "hi back", false).await;
    send(&mut client, "ops-2", "' OR 1=1 --", true).await;
    let (status, body) = agent.http_get("/metrics");
    assert_eq!(status, 200);
    let value = |series: &str| agent.metric(series);
    assert_eq!(
        value("ws_agent_frames_total{direction=\"c2s\",opcode=\"text\",decision=\"allow\"}"),
        Some(3.0),
        "{body}"
    );
    assert_eq!(
        value("ws_agent_frames_total{direction=\"s2c\",opcode=\"text\",decision=\"allow\"}"),
        Some(1.0)
    );
    assert_eq!(
        value("ws_agent_frames_total{direction=\"c2s\",opcode=\"text\",decision=\"close\"}"),
        Some(1.0)
    );
    assert_eq!(
        value("ws_agent_detections_total{tag=\"ws-sqli\"}"),
        Some(1.0)
    );
    assert_eq!(value("ws_agent_decision_latency_seconds_count"), Some(5.0));
    assert_eq!(value("ws_agent_tracked_connections"), Some(2.0));
    assert!(body.contains("ws_agent_build_info{version="), "{body}");
    assert!(body.contains("ws_agent_evictions_total"), "{body}");
    assert!(body.contains("ws_agent_reassembly_bytes"), "{body}");
    // Bounded cardinality: no label carries a correlation id, a route, an IP or a payload.
    for forbidden in ["ops-1", "ops-2", "chat-route", "203.0.113.9", "OR 1=1"] {
        assert!(!body.contains(forbidden), "/metrics exposes {forbidden}");
    }
}

#[tokio::test]
async fn connections_view_lists_counters_most_active_first_and_honours_the_cap() {
    let agent = AgentConfig::default()
        .args(["--max-messages-per-sec", "100"])
        .with_metrics()
        .start();
    let mut client = connect(&agent).await;
    for n in 0..5 {
        for _ in 0..=n {
            send(&mut client, &format!("view-{n}"), "hello", true).await;
        }
    }
    send(&mut client, "view-4", "<script>alert(1)</script>", false).await;
    let (status, body) = agent.http_get("/connections?limit=2");
    assert_eq!(status, 200);
    let view: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(view["tracked"], 5);
    let connections = view["connections"].as_array().unwrap();
    assert_eq!(connections.len(), 2);
    let top = &connections[0];
    assert_eq!(top["correlation_id"], "view-4");
    assert_eq!(top["route"], "chat-route");
    assert_eq!(top["client_ip"], "203.0.113.9");
    assert_eq!(top["frames"]["client_to_server"], 5);
    assert_eq!(top["frames"]["server_to_client"], 1);
    assert_eq!(top["bytes"]["client_to_server"], 25);
    assert_eq!(top["last_detection"], "ws-xss");
    assert!(top["message_bucket"].as_f64().unwrap() < 110.0);
    assert!(top["idle_secs"].as_f64().unwrap() >= 0.0);
    assert_eq!(connections[1]["correlation_id"], "view-3");
    let (_, body) = agent.http_get("/connections");
    let view: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(view["connections"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn every_violation_is_one_structured_line_with_an_excerpt_only_when_asked() {
    let agent = AgentConfig::default()
        .args(["--log-format", "json"])
        .start();
    let mut client = connect(&agent).await;
    let secret = "<script>alert('SECRETPAYLOAD')</script>";
    send(&mut client, "log-1", secret, true).await;
    let log = agent.wait_for_log("frame violation", TIMEOUT);
    let line = log.lines().find(|l| l.contains("frame violation")).unwrap();
    let record: serde_json::Value = serde_json::from_str(line).expect("one JSON object per line");
    assert_eq!(record["correlation_id"], "log-1");
    assert_eq!(record["route"], "chat-route");
    assert_eq!(record["client_ip"], "203.0.113.9");
    assert_eq!(record["direction"], "c2s");
    assert_eq!(record["tag"], "ws-xss");
    assert_eq!(record["decision"], "close");
    assert!(!record["rule_id"].as_str().unwrap().is_empty());
    assert!(
        !log.contains("SECRETPAYLOAD"),
        "payload logged without --log-frames"
    );
    drop(agent);

    let agent = AgentConfig::default()
        .args(["--log-format", "json", "--log-frames"])
        .start();
    let mut client = connect(&agent).await;
    let long = format!("{secret}{}", "x".repeat(200));
    send(&mut client, "log-2", &long, true).await;
    let log = agent.wait_for_log("frame violation", TIMEOUT);
    let line = log.lines().find(|l| l.contains("frame violation")).unwrap();
    let record: serde_json::Value = serde_json::from_str(line).unwrap();
    let excerpt = record["payload"].as_str().unwrap();
    assert!(excerpt.contains("SECRETPAYLOAD"), "{excerpt}");
    assert!(
        excerpt.len() <= 64 * 4 + 3,
        "excerpt not bounded: {}",
        excerpt.len()
    );
    assert!(!excerpt.contains(&"x".repeat(100)));
}
