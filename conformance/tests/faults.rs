//! Fault injection against the real binary: the agent must never crash, stall or let a frame go
//! unanswered, whatever the proxy (or an attacker) sends.

use std::time::Duration;

use conformance::{b64, AgentConfig};
use sentinel_agent_protocol::{AgentClient, EventType, WebSocketDecision, WebSocketFrameEvent};

const TIMEOUT: Duration = Duration::from_secs(5);

fn text(cid: &str, text: &str) -> WebSocketFrameEvent {
    WebSocketFrameEvent {
        correlation_id: cid.into(),
        opcode: "text".into(),
        data: b64(text.as_bytes()),
        client_to_server: true,
        frame_index: 0,
        fin: true,
        route_id: None,
        client_ip: "127.0.0.1".into(),
    }
}

#[tokio::test]
async fn a_panicking_detector_is_restarted_and_its_frame_decided_by_fail_open() {
    for (fail_open, expected) in [("true", None), ("false", Some(1011))] {
        let agent = AgentConfig::default()
            .args([
                "--workers",
                "1",
                "--fail-open",
                fail_open,
                "--debug-panic-marker",
                "BOOM-7f3a",
            ])
            .with_metrics()
            .start();
        let mut client = AgentClient::unix_socket("faults", agent.socket(), TIMEOUT)
            .await
            .unwrap();
        let response = client
            .send_event(EventType::WebSocketFrame, &text("p", "BOOM-7f3a"))
            .await
            .unwrap();
        match (expected, &response.websocket_decision) {
            (None, Some(WebSocketDecision::Allow)) => {
                assert!(
                    response.audit.tags.contains(&"ws-fail-open".to_string()),
                    "{response:?}"
                )
            }
            (Some(code), Some(WebSocketDecision::Close { code: c, .. })) if *c == code => {}
            other => panic!("unexpected decision {other:?}: {response:?}"),
        }
        // The pool's only detector was replaced: later frames get real decisions.
        let deadline = std::time::Instant::now() + TIMEOUT;
        while agent.metric("ws_agent_detector_restarts_total") != Some(1.0) {
            assert!(
                std::time::Instant::now() < deadline,
                "detector not restarted"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let response = client
            .send_event(
                EventType::WebSocketFrame,
                &text("p", "<script>alert(1)</script>"),
            )
            .await
            .unwrap();
        assert!(
            matches!(
                response.websocket_decision,
                Some(WebSocketDecision::Close { code: 1008, .. })
            ),
            "{response:?}"
        );
        let response = client
            .send_event(EventType::WebSocketFrame, &text("q", "fine"))
            .await
            .unwrap();
        assert_eq!(response.websocket_decision, Some(WebSocketDecision::Allow));
    }
}

#[tokio::test]
async fn a_panicking_connection_actor_is_replaced_and_its_frame_still_decided() {
    let agent = AgentConfig::default()
        .args(["--fail-open", "--debug-panic-marker", "CRASH-c0nn"])
        .with_metrics()
        .start();
    let mut client = AgentClient::unix_socket("faults", agent.socket(), TIMEOUT)
        .await
        .unwrap();
    let response = client
        .send_event(EventType::WebSocketFrame, &text("ws-CRASH-c0nn", "hello"))
        .await
        .unwrap();
    assert_eq!(
        response.websocket_decision,
        Some(WebSocketDecision::Allow),
        "{response:?}"
    );
    assert!(
        response.audit.tags.contains(&"ws-fail-open".to_string()),
        "{response:?}"
    );
    let deadline = std::time::Instant::now() + TIMEOUT;
    while agent.metric("ws_agent_evictions_total{reason=\"failed\"}") != Some(1.0) {
        assert!(
            std::time::Instant::now() < deadline,
            "failed connection state was not dropped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(agent.metric("ws_agent_tracked_connections"), Some(0.0));
    // Everything else keeps working.
    let response = client
        .send_event(
            EventType::WebSocketFrame,
            &text("other", "<script>alert(1)</script>"),
        )
        .await
        .unwrap();
    assert!(matches!(
        response.websocket_decision,
        Some(WebSocketDecision::Close { code: 1008, .. })
    ));
}
