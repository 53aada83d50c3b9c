//! The daemon as an operator runs it: socket file handling, options from the environment,
//! signals and drain.

use std::os::unix::fs::FileTypeExt;
use std::time::Duration;

use conformance::{run_to_exit, AgentConfig};
use sentinel_agent_protocol::{AgentClient, EventType, WebSocketDecision, WebSocketFrameEvent};

const TIMEOUT: Duration = Duration::from_secs(5);

/// A proxy connection the agent has accepted and answered a frame on, to be held open through a
/// drain (a connection still in the listen backlog is not one the agent waits for).
fn served_connection(agent: &conformance::Agent) -> std::os::unix::net::UnixStream {
    use std::io::{Read, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(agent.socket()).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let request = serde_json::to_vec(&serde_json::json!({
        "version": 1,
        "event_type": "web_socket_frame",
        "payload": frame("held", "hello"),
    }))
    .unwrap();
    stream
        .write_all(&(request.len() as u32).to_be_bytes())
        .unwrap();
    stream.write_all(&request).unwrap();
    let mut length = [0u8; 4];
    stream.read_exact(&mut length).unwrap();
    let mut response = vec![0u8; u32::from_be_bytes(length) as usize];
    stream.read_exact(&mut response).unwrap();
    let response: serde_json::Value = serde_json::from_slice(&response).unwrap();
    assert_eq!(response["decision"], "allow", "{response}");
    stream
}

fn frame(cid: &str, text: &str) -> WebSocketFrameEvent {
    WebSocketFrameEvent {
        correlation_id: cid.into(),
        opcode: "text".into(),
        data: conformance::b64(text.as_bytes()),
        client_to_server: true,
        frame_index: 0,
        fin: true,
        route_id: None,
        client_ip: "127.0.0.1".into(),
    }
}

#[test]
fn refuses_to_replace_a_file_that_is_not_a_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-a-socket");
    std::fs::write(&path, b"precious").unwrap();
    let (status, stderr) = run_to_exit(&["--socket", path.to_str().unwrap()], &[]);
    assert!(!status.success());
    assert!(stderr.contains("not a Unix socket"), "{stderr}");
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
}

#[test]
fn refuses_a_symlink_in_place_of_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    std::fs::write(&target, b"x").unwrap();
    let link = dir.path().join("link.sock");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let (status, stderr) = run_to_exit(&["--socket", link.to_str().unwrap()], &[]);
    assert!(!status.success(), "{stderr}");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
}

#[tokio::test]
async fn replaces_a_stale_socket_and_removes_it_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stale.sock");
    // A socket file with nobody listening, as a crashed agent leaves it.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(std::fs::symlink_metadata(&path)
        .unwrap()
        .file_type()
        .is_socket());
    let mut agent = AgentConfig::default()
        .args(["--socket", path.to_str().unwrap(), "--drain-timeout", "5"])
        .start_at(&path);
    let mut client = AgentClient::unix_socket("t", &path, TIMEOUT).await.unwrap();
    let response = client
        .send_event(EventType::WebSocketFrame, &frame("s", "hi"))
        .await
        .unwrap();
    assert_eq!(response.websocket_decision, Some(WebSocketDecision::Allow));
    // A second agent on the same path refuses to steal it.
    let (status, stderr) = run_to_exit(&["--socket", path.to_str().unwrap()], &[]);
    assert!(!status.success());
    assert!(stderr.contains("in use"), "{stderr}");

    agent.signal("TERM");
    // The socket disappears at once: new proxy connections are refused while draining.
    let deadline = std::time::Instant::now() + TIMEOUT;
    while path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "socket file not removed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The existing connection keeps full inspection while draining.
    let response = client
        .send_event(
            EventType::WebSocketFrame,
            &frame("s", "<script>alert(1)</script>"),
        )
        .await
        .unwrap();
    assert!(matches!(
        response.websocket_decision,
        Some(WebSocketDecision::Close { code: 1008, .. })
    ));
    client.close().await.unwrap();
    let status = agent.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status}");
}

#[test]
fn drain_timeout_bounds_the_wait_for_proxies() {
    let mut agent = AgentConfig::default()
        .args(["--drain-timeout", "1"])
        .start();
    let held = served_connection(&agent);
    agent.signal("INT");
    let started = std::time::Instant::now();
    let status = agent.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        agent.log().contains("drain timeout reached"),
        "{}",
        agent.log()
    );
    drop(held);
}

#[tokio::test]
async fn options_come_from_the_environment() {
    let agent = AgentConfig::default()
        .env("WS_BLOCK_MODE", "0")
        .env("WS_XSS", "false")
        .env("WS_SQLI", "1")
        .start();
    let mut client = AgentClient::unix_socket("t", agent.socket(), TIMEOUT)
        .await
        .unwrap();
    let response = client
        .send_event(
            EventType::WebSocketFrame,
            &frame("e", "<script>alert(1)</script>"),
        )
        .await
        .unwrap();
    assert_eq!(response.websocket_decision, Some(WebSocketDecision::Allow));
    assert!(response.audit.tags.is_empty(), "{response:?}");
    let response = client
        .send_event(
            EventType::WebSocketFrame,
            &frame("e", "' UNION SELECT a FROM b--"),
        )
        .await
        .unwrap();
    assert_eq!(response.websocket_decision, Some(WebSocketDecision::Allow));
    assert!(
        response.audit.tags.contains(&"detect-only".to_string()),
        "{response:?}"
    );
}

#[test]
fn readyz_turns_503_while_draining() {
    let agent = AgentConfig::default()
        .args(["--drain-timeout", "10"])
        .with_metrics()
        .start();
    assert_eq!(agent.http_get("/readyz").0, 200);
    assert_eq!(agent.http_get("/healthz").0, 200);
    let _held = served_connection(&agent);
    agent.signal("TERM");
    let deadline = std::time::Instant::now() + TIMEOUT;
    while agent.http_get("/readyz").0 != 503 {
        assert!(
            std::time::Instant::now() < deadline,
            "readyz never turned 503"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(agent.http_get("/healthz").0, 200);
}

#[test]
fn a_second_signal_exits_at_once() {
    let mut agent = AgentConfig::default()
        .args(["--drain-timeout", "60"])
        .start();
    let _held = served_connection(&agent);
    agent.signal("TERM");
    agent.wait_for_log("draining", TIMEOUT);
    let started = std::time::Instant::now();
    agent.signal("TERM");
    let status = agent.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(agent.log().contains("second signal"), "{}", agent.log());
}

#[test]
fn socket_is_created_with_the_configured_mode() {
    use std::os::unix::fs::PermissionsExt;
    let agent = AgentConfig::default().start();
    let mode = std::fs::metadata(agent.socket())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o660);
    drop(agent);
    let agent = AgentConfig::default()
        .args(["--socket-mode", "600"])
        .start();
    let mode = std::fs::metadata(agent.socket())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
}
