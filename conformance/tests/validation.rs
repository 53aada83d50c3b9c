//! Message validation (JSON Schema on text, MessagePack on binary) driven by Sentinel 0.4.14's own
//! `AgentClient` against the real agent binary, with the example schemas of `examples/schemas/`.

use std::path::PathBuf;
use std::time::Duration;

use conformance::v1::{decision, V1Client as Client};
use conformance::{b64, run_to_exit, Agent, AgentConfig};
use sentinel_agent_protocol::{AgentResponse, Decision, WebSocketDecision};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(5);
const SCHEMA_REASON: &str = "Policy violation: schema validation failed";
const VALID_ORDER: &str =
    r#"{"action":"buy","symbol":"AAPL","quantity":100,"price":187.25,"order_type":"limit"}"#;

fn schema(name: &str) -> String {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "examples",
        "schemas",
        name,
    ]
    .iter()
    .collect();
    path.to_string_lossy().into_owned()
}

fn trading_agent(extra: &[&str]) -> Agent {
    let trading = schema("trading.json");
    let mut args = vec!["--json-schema", trading.as_str()];
    args.extend_from_slice(extra);
    AgentConfig::default().args(args).start()
}

fn assert_clean(response: &AgentResponse) {
    assert_eq!(decision(response), WebSocketDecision::Allow, "{response:?}");
    assert!(response.audit.tags.is_empty(), "{response:?}");
}

/// Closed 1008 as a schema failure; returns the close reason.
fn assert_schema_close(response: &AgentResponse) -> String {
    let WebSocketDecision::Close { code, reason } = decision(response) else {
        panic!("expected a close: {response:?}");
    };
    assert_eq!(code, 1008, "{response:?}");
    assert_eq!(reason, SCHEMA_REASON, "{response:?}");
    assert!(
        response
            .audit
            .tags
            .contains(&"ws-schema-invalid".to_string()),
        "{response:?}"
    );
    reason
}

fn assert_reason_code(response: &AgentResponse, code: &str) {
    assert!(
        response.audit.reason_codes.iter().any(|c| c == code),
        "reason code {code} missing: {response:?}"
    );
}

fn msgpack(value: &serde_json::Value) -> Vec<u8> {
    rmp_serde::to_vec(value).expect("encode MessagePack")
}

#[tokio::test]
async fn valid_order_is_allowed_and_invalid_ones_closed_naming_path_and_keyword() {
    let agent = trading_agent(&[]);
    let mut client = Client::connect(&agent).await;
    assert_clean(&client.text("t1", VALID_ORDER).await);
    assert_clean(
        &client
            .text("t1", r#"{"action":"cancel","symbol":"MSFT","quantity":1}"#)
            .await,
    );

    let cases = [
        (
            r#"{"action":"buy","symbol":"AAPL","quantity":0}"#,
            "/quantity: minimum",
        ),
        (
            r#"{"action":"buy","symbol":"AAPL","quantity":1.5}"#,
            "/quantity: type",
        ),
        (
            r#"{"action":"hold","symbol":"AAPL","quantity":1}"#,
            "/action: enum",
        ),
        (
            r#"{"action":"buy","symbol":"aapl","quantity":1}"#,
            "/symbol: pattern",
        ),
        (r#"{"action":"buy","symbol":"AAPL"}"#, "/quantity: required"),
        (
            r#"{"action":"buy","symbol":"AAPL","quantity":1,"leverage":50}"#,
            "/: additionalProperties",
        ),
        (r#"["buy","AAPL",1]"#, "/: type"),
        (
            r#"{"action":"buy","symbol":"AAPL","quantity":1"#,
            "json: syntax",
        ),
        (
            r#"{"action":"buy","symbol":"AAPL","quantity":1,"quantity":-5}"#,
            "json: duplicate-key",
        ),
    ];
    for (index, (message, code)) in cases.iter().enumerate() {
        let response = client.text(&format!("bad-{index}"), message).await;
        assert_schema_close(&response);
        assert_reason_code(&response, code);
        assert!(response.audit.reason_codes.len() <= 4, "{response:?}");
    }
    // Several failures in one message: a few reason codes, each naming its field.
    let response = client
        .text(
            "many",
            r#"{"action":"hold","symbol":"toolong","quantity":-1}"#,
        )
        .await;
    assert_schema_close(&response);
    for code in ["/action: enum", "/symbol: pattern", "/quantity: minimum"] {
        assert_reason_code(&response, code);
    }
    let log = agent.wait_for_log("ws-schema-invalid", TIMEOUT);
    assert!(log.contains("/quantity: minimum"), "{log}");
}

#[tokio::test]
async fn a_schema_alone_sends_text_to_validation() {
    // Every content detector off: only the schema needs the detector pool.
    let agent = trading_agent(&[
        "--xss-detection",
        "false",
        "--sqli-detection",
        "false",
        "--command-injection",
        "false",
    ]);
    let mut client = Client::connect(&agent).await;
    assert_clean(&client.text("only", VALID_ORDER).await);
    let response = client.text("only", r#"{"action":"buy"}"#).await;
    assert_schema_close(&response);
    assert_reason_code(&response, "/symbol: required");
}

#[tokio::test]
async fn detect_only_allows_invalid_messages_with_tags() {
    let agent = trading_agent(&["--block-mode", "false"]);
    let mut client = Client::connect(&agent).await;
    let response = client
        .text("d", r#"{"action":"buy","symbol":"AAPL","quantity":0}"#)
        .await;
    assert_eq!(decision(&response), WebSocketDecision::Allow);
    assert_eq!(
        response.audit.tags,
        vec!["ws-schema-invalid".to_string(), "detect-only".to_string()]
    );
    assert_reason_code(&response, "/quantity: minimum");
}

#[tokio::test]
async fn server_messages_are_validated_only_when_the_direction_says_so() {
    let agent = trading_agent(&[]);
    let mut client = Client::connect(&agent).await;
    assert_clean(
        &client
            .frame("dir", "text", b"{\"fill\":\"done\"}", false, true)
            .await,
    );

    let agent = trading_agent(&["--schema-direction", "both"]);
    let mut client = Client::connect(&agent).await;
    assert_schema_close(
        &client
            .frame("dir", "text", b"{\"fill\":\"done\"}", false, true)
            .await,
    );

    let trading = schema("trading.json");
    let agent = AgentConfig::default()
        .env("WS_JSON_SCHEMA", &trading)
        .env("WS_SCHEMA_DIRECTION", "server")
        .start();
    let mut client = Client::connect(&agent).await;
    assert_clean(&client.text("dir", "not json at all").await);
    assert_schema_close(
        &client
            .frame("dir", "text", b"not json at all", false, true)
            .await,
    );
}

#[tokio::test]
async fn valid_message_split_across_three_fragments_passes() {
    let agent = trading_agent(&[]);
    let mut client = Client::connect(&agent).await;
    let message = VALID_ORDER.as_bytes();
    let (a, rest) = message.split_at(20);
    let (b, c) = rest.split_at(30);
    // Neither partial window is JSON on its own; neither is refused for it.
    assert_clean(&client.frame("frag", "text", a, true, false).await);
    assert_clean(&client.frame("frag", "continuation", b, true, false).await);
    assert_clean(&client.frame("frag", "continuation", c, true, true).await);
    // The connection goes on.
    assert_clean(&client.text("frag", VALID_ORDER).await);
}

#[tokio::test]
async fn invalid_message_split_across_fragments_is_closed_on_its_last_fragment() {
    let agent = trading_agent(&[]);
    let mut client = Client::connect(&agent).await;
    let message = br#"{"action":"buy","symbol":"AAPL","quantity":0}"#;
    assert_clean(
        &client
            .frame("frag", "text", &message[..10], true, false)
            .await,
    );
    assert_clean(
        &client
            .frame("frag", "continuation", &message[10..30], true, false)
            .await,
    );
    let response = client
        .frame("frag", "continuation", &message[30..], true, true)
        .await;
    assert_schema_close(&response);
    assert_reason_code(&response, "/quantity: minimum");
}

#[tokio::test]
async fn schema_failure_reason_does_not_contain_the_attackers_value() {
    let agent = trading_agent(&[
        "--xss-detection",
        "false",
        "--sqli-detection",
        "false",
        "--command-injection",
        "false",
    ]);
    let mut client = Client::connect(&agent).await;
    let secret = "EXFIL-4242-token";
    let message = json!({
        "action": secret,
        "symbol": secret,
        "quantity": secret,
        secret: secret,
        "client_order_id": format!("{secret}/{secret}/{secret}")
    })
    .to_string();
    let response = client.text("leak", &message).await;
    let reason = assert_schema_close(&response);
    assert!(!reason.contains(secret), "{reason}");
    assert!(!response.audit.reason_codes.is_empty());
    assert!(response.audit.reason_codes.len() <= 4, "{response:?}");
    for code in &response.audit.reason_codes {
        assert!(
            !code.contains("EXFIL"),
            "reason code echoes the value: {code}"
        );
    }
    let encoded = format!("{response:?}");
    assert!(!encoded.contains("EXFIL"), "{encoded}");
    let log = agent.wait_for_log("ws-schema-invalid", TIMEOUT);
    assert!(!log.contains("EXFIL"), "{log}");
}

#[tokio::test]
async fn msgpack_order_is_decoded_and_validated() {
    let agent = trading_agent(&["--msgpack-validation"]);
    let mut client = Client::connect(&agent).await;
    let order =
        msgpack(&json!({"action": "sell", "symbol": "NVDA", "quantity": 25, "price": 120.5}));
    assert_clean(&client.binary("mp", &order).await);

    let response = client
        .binary(
            "mp-bad",
            &msgpack(&json!({"action": "sell", "symbol": "NVDA", "quantity": 0})),
        )
        .await;
    assert_schema_close(&response);
    assert_reason_code(&response, "/quantity: minimum");

    let mut trailing = order.clone();
    trailing.extend_from_slice(&[0xc0]);
    let response = client.binary("mp-trailing", &trailing).await;
    assert_schema_close(&response);
    assert_reason_code(&response, "msgpack: trailing-bytes");

    let response = client
        .binary("mp-truncated", &order[..order.len() - 1])
        .await;
    assert_schema_close(&response);
    assert_reason_code(&response, "msgpack: truncated");

    // A valid order in three binary fragments passes; a JSON text order still is checked too.
    let (a, rest) = order.split_at(5);
    let (b, c) = rest.split_at(10);
    assert_clean(&client.frame("mp-frag", "binary", a, true, false).await);
    assert_clean(
        &client
            .frame("mp-frag", "continuation", b, true, false)
            .await,
    );
    assert_clean(&client.frame("mp-frag", "continuation", c, true, true).await);
    assert_clean(&client.text("mp-frag", VALID_ORDER).await);
}

#[tokio::test]
async fn msgpack_nested_ten_thousand_levels_is_rejected_and_the_agent_keeps_serving() {
    let agent = AgentConfig::default()
        .args(["--msgpack-validation"])
        .start();
    let mut client = Client::connect(&agent).await;
    // 10,000 one-element arrays around a nil, and the same with maps.
    let mut arrays = vec![0x91u8; 10_000];
    arrays.push(0xc0);
    let mut maps = [0x81u8, 0xa1, b'k'].repeat(10_000);
    maps.push(0xc0);
    for (cid, data) in [("deep-a", arrays), ("deep-m", maps)] {
        let response = client.binary(cid, &data).await;
        assert_schema_close(&response);
        assert_reason_code(&response, "msgpack: depth");
    }
    // Still serving, on the same and on a new connection.
    assert_clean(
        &client
            .binary("after", &msgpack(&json!({"ok": [1, 2, 3]})))
            .await,
    );
    let mut other = Client::connect(&agent).await;
    assert_clean(&other.text("after2", "hello").await);
}

#[tokio::test]
async fn msgpack_without_schema_checks_only_the_encoding() {
    let agent = AgentConfig::default()
        .args(["--msgpack-validation"])
        .start();
    let mut client = Client::connect(&agent).await;
    assert_clean(
        &client
            .binary("wf", &msgpack(&json!({"anything": [1, "two"]})))
            .await,
    );
    let response = client.binary("wf2", &[0xc1]).await;
    assert_schema_close(&response);
    assert_reason_code(&response, "msgpack: reserved-type");
    // Server messages are decoded too: the flag says the binary protocol is MessagePack.
    let response = client.frame("wf3", "binary", b"\xa3ab", false, true).await;
    assert_schema_close(&response);
    // Text is not affected.
    assert_clean(&client.text("wf4", "plain text").await);
}

#[tokio::test]
async fn msgpack_schema_overrides_the_json_schema_for_binary() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("telemetry.json");
    std::fs::write(
        &path,
        json!({"type": "array", "items": {"type": "number"}, "maxItems": 3}).to_string(),
    )
    .unwrap();
    let trading = schema("trading.json");
    let agent = AgentConfig::default()
        .args([
            "--json-schema",
            trading.as_str(),
            "--msgpack-validation",
            "--msgpack-schema",
            path.to_str().unwrap(),
        ])
        .start();
    let mut client = Client::connect(&agent).await;
    assert_clean(&client.binary("tm", &msgpack(&json!([1.5, 2, 3]))).await);
    let response = client.binary("tm2", &msgpack(&json!([1, 2, 3, 4]))).await;
    assert_schema_close(&response);
    assert_reason_code(&response, "/: maxItems");
    assert_clean(&client.text("tm3", VALID_ORDER).await);
}

#[tokio::test]
async fn msgpack_string_with_a_script_tag_is_closed_as_xss() {
    let agent = AgentConfig::default()
        .args(["--msgpack-validation"])
        .start();
    let mut client = Client::connect(&agent).await;
    let message = msgpack(&json!({
        "type": "message",
        "room": "lobby",
        "text": "<script>alert(document.cookie)</script>"
    }));
    let response = client.binary("xss", &message).await;
    let WebSocketDecision::Close { code, reason } = decision(&response) else {
        panic!("expected a close: {response:?}");
    };
    assert_eq!(code, 1008);
    assert_eq!(reason, "Policy violation: XSS detected");
    assert!(
        response.audit.tags.contains(&"ws-xss".to_string()),
        "{response:?}"
    );
    assert!(!response
        .audit
        .tags
        .contains(&"ws-schema-invalid".to_string()));
    // A key is a string too.
    let response = client
        .binary(
            "xss-key",
            &msgpack(&json!({"<img src=x onerror=alert(1)>": 1})),
        )
        .await;
    assert!(
        response.audit.tags.contains(&"ws-xss".to_string()),
        "{response:?}"
    );
}

#[test]
fn schema_start_up_errors_name_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "{\"type\": \"object\",").unwrap();
    let invalid = dir.path().join("invalid.json");
    std::fs::write(
        &invalid,
        r#"{"properties": {"quantity": {"minimum": "one"}}}"#,
    )
    .unwrap();
    let remote = dir.path().join("remote.json");
    std::fs::write(&remote, r#"{"$ref": "https://example.com/order.json"}"#).unwrap();
    for (path, problem) in [
        (&missing, "schema file rejected"),
        (&broken, "not valid JSON"),
        (&invalid, "not a valid JSON Schema"),
        (&remote, "not a valid JSON Schema"),
    ] {
        let path = path.to_str().unwrap();
        let (status, stderr) = run_to_exit(&["--json-schema", path], &[]);
        assert!(!status.success(), "{path}");
        assert!(
            stderr.contains(&format!("--json-schema {path}")),
            "{stderr}"
        );
        assert!(stderr.contains(problem), "{stderr}");
    }
    let (status, stderr) = run_to_exit(&[], &[("WS_JSON_SCHEMA", invalid.to_str().unwrap())]);
    assert!(!status.success());
    assert!(stderr.contains("/properties/quantity/minimum"), "{stderr}");
    let path = broken.to_str().unwrap();
    let (status, stderr) = run_to_exit(&["--msgpack-validation", "--msgpack-schema", path], &[]);
    assert!(!status.success());
    assert!(
        stderr.contains(&format!("--msgpack-schema {path}")),
        "{stderr}"
    );
    let (status, stderr) = run_to_exit(&["--msgpack-schema", &schema("chat.json")], &[]);
    assert!(!status.success());
    assert!(stderr.contains("msgpack-validation"), "{stderr}");
}

fn assert_rejected_naming(response: &AgentResponse, needle: &str) {
    match &response.decision {
        Decision::Block { body, .. } => assert!(
            body.as_deref().unwrap_or("").contains(needle),
            "{response:?}"
        ),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn schema_is_replaced_through_configure_and_a_bad_one_is_rejected() {
    let agent = Agent::start_default();
    let mut client = Client::connect(&agent).await;
    assert_clean(&client.text("cfg", "free text").await);

    // An inline schema object.
    let response = client
        .configure(json!({"json-schema": {
            "type": "object",
            "required": ["ping"],
            "properties": {"ping": {"type": "integer"}}
        }}))
        .await;
    assert_eq!(response.decision, Decision::Allow, "{response:?}");
    assert_clean(&client.text("cfg", r#"{"ping": 1}"#).await);
    let response = client.text("cfg2", "free text").await;
    assert_schema_close(&response);
    assert_reason_code(&response, "json: syntax");

    // A path.
    let response = client
        .configure(json!({"json-schema": schema("chat.json")}))
        .await;
    assert_eq!(response.decision, Decision::Allow, "{response:?}");
    assert_clean(
        &client
            .text(
                "cfg3",
                r#"{"type":"message","room":"lobby","text":"hi all"}"#,
            )
            .await,
    );
    let response = client
        .text("cfg4", r#"{"type":"message","room":"lobby"}"#)
        .await;
    assert_schema_close(&response);
    assert_reason_code(&response, "/text: required");

    // Bad pushed schemas are rejected by key and the chat schema stays.
    let response = client
        .configure(json!({"json-schema": {"type": "nonsense"}}))
        .await;
    assert_rejected_naming(&response, "json-schema");
    let response = client
        .configure(json!({"json-schema": "/nonexistent/schema.json"}))
        .await;
    assert_rejected_naming(&response, "json-schema /nonexistent/schema.json");
    let response = client
        .configure(json!({"msgpack-validation": true, "msgpack-schema": {"minimum": "x"}}))
        .await;
    assert_rejected_naming(&response, "msgpack-schema");
    assert_clean(
        &client
            .text("cfg5", r#"{"type":"typing","room":"lobby"}"#)
            .await,
    );
    assert_schema_close(&client.text("cfg6", r#"{"ping": 1}"#).await);

    // Removing the schema turns validation off again.
    let response = client.configure(json!({"json-schema": null})).await;
    assert_eq!(response.decision, Decision::Allow, "{response:?}");
    assert_clean(&client.text("cfg7", "free text").await);
}

/// The same decisions through Zentinel's v2 client, including a schema pushed in a v2 configure.
#[tokio::test]
async fn v2_client_gets_the_same_validation_decisions() {
    use zentinel_agent_protocol::v2::AgentClientV2Uds;
    use zentinel_agent_protocol::{Decision as DecisionV2, WebSocketDecision as WsDecisionV2};

    let agent = trading_agent(&["--msgpack-validation"]);
    let client = AgentClientV2Uds::new("ws-inspector", agent.socket_str(), TIMEOUT)
        .await
        .unwrap();
    client.connect().await.expect("v2 handshake");
    let send = |cid: &'static str, opcode: &'static str, data: Vec<u8>| {
        let event = zentinel_agent_protocol::WebSocketFrameEvent {
            correlation_id: cid.into(),
            opcode: opcode.into(),
            data: b64(&data),
            client_to_server: true,
            frame_index: 0,
            fin: true,
            route_id: Some("ws".into()),
            client_ip: "198.51.100.4".into(),
        };
        let client = &client;
        async move {
            client
                .send_websocket_frame(cid, &event)
                .await
                .expect("v2 frame")
        }
    };
    let is_schema_close = |response: &zentinel_agent_protocol::AgentResponse| {
        matches!(&response.websocket_decision,
            Some(WsDecisionV2::Close { code: 1008, reason }) if reason == SCHEMA_REASON)
            && response
                .audit
                .tags
                .contains(&"ws-schema-invalid".to_string())
    };

    let response = send("v2-ok", "text", VALID_ORDER.into()).await;
    assert!(
        matches!(
            response.websocket_decision,
            Some(WsDecisionV2::Allow) | None
        ),
        "{response:?}"
    );
    let response = send(
        "v2-bad",
        "text",
        br#"{"action":"buy","symbol":"AAPL","quantity":0}"#.to_vec(),
    )
    .await;
    assert!(is_schema_close(&response), "{response:?}");
    assert!(response
        .audit
        .reason_codes
        .contains(&"/quantity: minimum".to_string()));
    let response = send("v2-mp", "binary", vec![0xc0, 0xc0]).await;
    assert!(is_schema_close(&response), "{response:?}");

    let response = client
        .send_configure(
            "zentinel-configure-ws-0",
            &json!({"config": {"json-schema": {"type": "object", "required": ["op"]}}}),
        )
        .await
        .unwrap();
    assert_eq!(response.decision, DecisionV2::Allow, "{response:?}");
    let response = send("v2-cfg", "text", VALID_ORDER.into()).await;
    assert!(is_schema_close(&response), "{response:?}");
    assert!(response
        .audit
        .reason_codes
        .contains(&"/op: required".to_string()));
}
