//! Per-route policies through the real binary (issue 16): a policy file picks each connection's
//! policy by the route id of its first frame; block-action drop versus close; schemas per
//! direction; reloads by SIGHUP and by configure push under load; bad files refused with the file,
//! line and key (exit status 2 at start, the running policy kept on reload).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use conformance::{b64, raw, run_to_exit, Agent, AgentConfig};
use sentinel_agent_protocol::{
    AgentClient, AgentResponse, ConfigureEvent, Decision, EventType, WebSocketDecision,
    WebSocketFrameEvent,
};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

const TIMEOUT: Duration = Duration::from_secs(5);
const XSS: &str = "<script>alert(1)</script>";

/// The three routes of the issue, on a small scale: chat blocks XSS and closes; trading has a
/// schema per direction, no XSS check and drops; telemetry is detect-only.
const ROUTES: &str = r#"
[default]
max-message-size = 65536

[[route]]
match = "chat-*"
name = "chat"
xss-detection = true
block-action = "close"

[[route]]
match = "trading"
xss-detection = false
sqli-detection = false
command-injection = false
block-action = "drop"
schema.client.text = { type = "object", required = ["order"] }
schema.server.text = { type = "object", required = ["fill"] }

[[route]]
match = "telemetry"
block-mode = false
"#;

fn write_policy(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// An agent started with `text` as its policy file, and that file's directory (keep it alive).
fn agent_with(text: &str, extra: &[&str]) -> (Agent, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_policy(dir.path(), "routes.toml", text);
    let agent = AgentConfig::default()
        .args(["--policy-file", path.to_str().unwrap()])
        .args(extra.iter().copied())
        .with_metrics()
        .start();
    (agent, path, dir)
}

async fn connect(agent: &Agent) -> AgentClient {
    AgentClient::unix_socket("routes", agent.socket(), TIMEOUT)
        .await
        .unwrap()
}

async fn frame(
    client: &mut AgentClient,
    route: Option<&str>,
    cid: &str,
    text: &str,
    client_to_server: bool,
    fin: bool,
    opcode: &str,
) -> AgentResponse {
    let event = WebSocketFrameEvent {
        correlation_id: cid.into(),
        opcode: opcode.into(),
        data: b64(text.as_bytes()),
        client_to_server,
        frame_index: 0,
        fin,
        route_id: route.map(Into::into),
        client_ip: "198.51.100.4".into(),
    };
    client
        .send_event(EventType::WebSocketFrame, &event)
        .await
        .unwrap()
}

async fn text(client: &mut AgentClient, route: &str, cid: &str, text: &str) -> WebSocketDecision {
    let response = frame(client, Some(route), cid, text, true, true, "text").await;
    response.websocket_decision.expect("a websocket decision")
}

async fn configure(client: &mut AgentClient, config: Value) -> AgentResponse {
    client
        .send_event(
            EventType::Configure,
            &ConfigureEvent {
                agent_id: "routes".into(),
                config,
            },
        )
        .await
        .unwrap()
}

fn is_close(decision: &WebSocketDecision, code: u16) -> bool {
    matches!(decision, WebSocketDecision::Close { code: c, .. } if *c == code)
}

#[tokio::test]
async fn the_same_message_is_allowed_on_one_route_and_closed_on_another() {
    let (agent, _, _dir) = agent_with(ROUTES, &[]);
    let mut client = connect(&agent).await;
    let response = frame(
        &mut client,
        Some("trading"),
        "t-1",
        r#"{"order": "<script>alert(1)</script>"}"#,
        true,
        true,
        "text",
    )
    .await;
    assert_eq!(
        response.websocket_decision,
        Some(WebSocketDecision::Allow),
        "{response:?}"
    );
    let chat = text(&mut client, "chat-eu", "c-1", XSS).await;
    assert!(is_close(&chat, 1008), "{chat:?}");
    // Detect-only: allowed, tagged.
    let response = frame(
        &mut client,
        Some("telemetry"),
        "m-1",
        XSS,
        true,
        true,
        "text",
    )
    .await;
    assert_eq!(response.websocket_decision, Some(WebSocketDecision::Allow));
    assert!(
        response.audit.tags.contains(&"detect-only".to_string()),
        "{response:?}"
    );
    // A route no table matches, and a frame without a route id, get the default (XSS closes).
    assert!(is_close(
        &text(&mut client, "elsewhere", "o-1", XSS).await,
        1008
    ));
    let response = frame(&mut client, None, "n-1", XSS, true, true, "text").await;
    assert!(is_close(&response.websocket_decision.unwrap(), 1008));
    // The route is fixed by the first frame: a later frame naming another route changes nothing.
    assert_eq!(
        text(&mut client, "chat-eu", "c-2", "hello").await,
        WebSocketDecision::Allow
    );
    let order = r#"{"order": "<script>alert(1)</script>"}"#;
    assert!(is_close(
        &text(&mut client, "trading", "c-2", order).await,
        1008
    ));
}

#[tokio::test]
async fn drop_keeps_the_connection_and_close_ends_it_per_route() {
    let (agent, _, _dir) = agent_with(
        "[[route]]\nmatch = \"drops\"\nblock-action = \"drop\"\n\n[[route]]\nmatch = \"closes\"\n",
        &[],
    );
    let mut client = connect(&agent).await;
    assert_eq!(
        text(&mut client, "drops", "d", XSS).await,
        WebSocketDecision::Drop
    );
    assert_eq!(
        text(&mut client, "drops", "d", "fine").await,
        WebSocketDecision::Allow
    );
    assert!(is_close(&text(&mut client, "closes", "c", XSS).await, 1008));

    // Fragmented with drop: the first fragment was forwarded clean, the violation shows on the
    // last one; a message with a dropped fragment cannot be repaired by the proxy, so it closes.
    let first = frame(&mut client, Some("drops"), "f", "<scr", true, false, "text").await;
    assert_eq!(first.websocket_decision, Some(WebSocketDecision::Allow));
    let last = frame(
        &mut client,
        Some("drops"),
        "f",
        "ipt>alert(1)</script>",
        true,
        true,
        "continuation",
    )
    .await;
    assert!(
        is_close(last.websocket_decision.as_ref().unwrap(), 1008),
        "{last:?}"
    );
    assert!(
        last.audit
            .reason_codes
            .contains(&"fragmented-message".to_string()),
        "{last:?}"
    );
}

#[tokio::test]
async fn rate_limit_action_drop_drops_the_message_over_the_rate() {
    let (agent, _, _dir) = agent_with(
        "[[route]]\nmatch = \"slow\"\nmax-messages-per-sec = 1\nrate-limit-burst = 0\nrate-limit-action = \"drop\"\n",
        &[],
    );
    let mut client = connect(&agent).await;
    assert_eq!(
        text(&mut client, "slow", "r", "one").await,
        WebSocketDecision::Allow
    );
    // A bucket of 1 per second with no burst: the messages right after are over the rate (drop),
    // and the connection stays usable.
    let mut dropped = 0;
    for i in 0..5 {
        match text(&mut client, "slow", "r", &format!("more {i}")).await {
            WebSocketDecision::Drop => dropped += 1,
            WebSocketDecision::Allow => {}
            other => panic!("rate-limit-action drop answered {other:?}"),
        }
    }
    assert!(dropped >= 3, "{dropped} of 5 dropped");
}

#[tokio::test]
async fn a_client_schema_and_a_server_schema_apply_on_one_route() {
    let (agent, _, _dir) = agent_with(ROUTES, &[]);
    let mut client = connect(&agent).await;
    let order = r#"{"order": 1}"#;
    let fill = r#"{"fill": 1}"#;
    let decide = |d: AgentResponse| d.websocket_decision.unwrap();
    assert_eq!(
        decide(frame(&mut client, Some("trading"), "s", order, true, true, "text").await),
        WebSocketDecision::Allow
    );
    assert_eq!(
        decide(frame(&mut client, Some("trading"), "s", fill, false, true, "text").await),
        WebSocketDecision::Allow
    );
    // Each schema in the other direction fails: trading drops.
    let wrong = frame(&mut client, Some("trading"), "s", fill, true, true, "text").await;
    assert_eq!(
        wrong.websocket_decision,
        Some(WebSocketDecision::Drop),
        "{wrong:?}"
    );
    assert!(wrong.audit.tags.contains(&"ws-schema-invalid".to_string()));
    let wrong = frame(
        &mut client,
        Some("trading"),
        "s",
        order,
        false,
        true,
        "text",
    )
    .await;
    assert_eq!(
        wrong.websocket_decision,
        Some(WebSocketDecision::Drop),
        "{wrong:?}"
    );
    // Chat has no schema.
    assert_eq!(
        text(&mut client, "chat-1", "x", "free text").await,
        WebSocketDecision::Allow
    );
}

#[tokio::test]
async fn connections_and_metrics_show_the_route_and_its_policy() {
    let (agent, _, _dir) = agent_with(ROUTES, &[]);
    let mut client = connect(&agent).await;
    text(&mut client, "chat-eu", "view-chat", "hello").await;
    text(&mut client, "somewhere", "view-other", "hello").await;
    assert!(is_close(
        &text(&mut client, "chat-eu", "view-chat-2", XSS).await,
        1008
    ));
    let (status, body) = agent.http_get("/connections");
    assert_eq!(status, 200);
    let view: Value = serde_json::from_str(&body).unwrap();
    let find = |cid: &str| {
        view.as_array()
            .or_else(|| view["connections"].as_array())
            .unwrap()
            .iter()
            .find(|c| c["correlation_id"] == cid)
            .cloned()
            .unwrap_or_else(|| panic!("{cid} in {body}"))
    };
    assert_eq!(find("view-chat")["route"], "chat-eu");
    assert_eq!(find("view-chat")["policy"], "chat");
    assert_eq!(find("view-other")["policy"], "default");
    assert_eq!(
        agent.metric(
            r#"ws_agent_frames_total{direction="c2s",opcode="text",decision="allow",route="chat"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        agent.metric(
            r#"ws_agent_frames_total{direction="c2s",opcode="text",decision="allow",route="other"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        agent.metric(r#"ws_agent_detections_total{tag="ws-xss",route="chat"}"#),
        Some(1.0)
    );
    let log = agent.wait_for_log("frame violation", TIMEOUT);
    let line = log.lines().find(|l| l.contains("frame violation")).unwrap();
    assert!(line.contains("policy=chat"), "{line}");
}

/// Bad files at start: exit status 2 and one message naming the file, line and key.
#[test]
fn bad_policy_files_stop_the_agent_with_status_2_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let big = "# padding\n".repeat(1024 * 1024);
    let cases: [(&str, &str, &[&str]); 6] = [
        ("syntax.toml", "[default]\nblock-mode = \n", &[":2:"]),
        (
            "unknown.toml",
            "[default]\nblock-mode = true\n\n[[route]]\nmatch = \"a\"\nxss-detecton = true\n",
            &[":6:1:", "route `a`", "xss-detecton"],
        ),
        (
            "glob.toml",
            "[[route]]\nmatch = \"chat-[ab]\"\n",
            &[":2:", "`match`", "chat-[ab]"],
        ),
        (
            "schema.toml",
            "[[route]]\nmatch = \"t\"\n\nschema.client.text = { type = \"nonsense\" }\n",
            &[":4:1:", "schema.client.text"],
        ),
        (
            "big.toml",
            big.as_str(),
            &["--max-config-bytes", "over the size limit"],
        ),
        (
            "value.json",
            r#"{"route": [{"match": "x", "block-action": "sometimes"}]}"#,
            &["route `x`", "block-action"],
        ),
    ];
    for (name, text, needles) in cases {
        let path = write_policy(dir.path(), name, text);
        let (status, stderr) = run_to_exit(&["--policy-file", path.to_str().unwrap()], &[]);
        assert_eq!(status.code(), Some(2), "{name}: {stderr}");
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("cannot start"))
            .collect();
        assert_eq!(lines.len(), 1, "{name}: {stderr}");
        assert!(
            lines[0].contains(path.to_str().unwrap()),
            "{name}: {stderr}"
        );
        for needle in needles {
            assert!(
                lines[0].contains(needle),
                "{name}: {needle:?} not in {stderr}"
            );
        }
    }
}

#[test]
fn a_shadowed_route_is_a_warning_and_the_agent_starts() {
    let (agent, _, _dir) = agent_with(
        "[[route]]\nmatch = \"chat-*\"\n\n[[route]]\nmatch = \"chat-eu\"\n",
        &[],
    );
    let log = agent.wait_for_log("shadowed route", TIMEOUT);
    assert!(
        log.contains("route `chat-eu` (line 4) can never match"),
        "{log}"
    );
}

/// Shared by the load clients and the test: a stop flag and the frames answered so far.
#[derive(Default)]
struct Load {
    stop: AtomicBool,
    answered: AtomicU64,
}

/// Sends frames continuously on one v2 connection (8 WebSockets, one frame in flight on each)
/// until told to stop, checking that every answer belongs to the one frame in flight on its
/// WebSocket and allows it; at the end, the next answer is a marker frame's, so no answer was
/// owed twice. Returns the frames answered.
async fn load(socket: PathBuf, client: usize, shared: Arc<Load>, route: &'static str) -> u64 {
    const SOCKETS: usize = 8;
    let mut stream = raw::v2_connect(&socket).await;
    let send = |cid: String, body: &str| {
        let mut event = raw::event(&cid, "text", body.as_bytes(), true, true);
        event["route_id"] = route.into();
        raw::v2_bytes(0x15, &serde_json::to_vec(&event).unwrap())
    };
    let cids: Vec<String> = (0..SOCKETS).map(|i| format!("load-{client}-{i}")).collect();
    let mut in_flight = [true; SOCKETS];
    for cid in &cids {
        stream
            .write_all(&send(cid.clone(), "hello there"))
            .await
            .unwrap();
    }
    let mut answered = 0u64;
    while in_flight.iter().any(|f| *f) {
        let (kind, payload) = raw::v2_read(&mut stream).await.expect("an answer");
        assert_eq!(kind, 0x20);
        let answer: Value = serde_json::from_slice(&payload).unwrap();
        let cid = answer["audit"]["custom"]["correlation_id"]
            .as_str()
            .unwrap()
            .to_string();
        let index = cids
            .iter()
            .position(|c| *c == cid)
            .unwrap_or_else(|| panic!("unknown {cid}"));
        assert!(in_flight[index], "a second answer for {cid}: {answer}");
        assert_eq!(raw::verdict(&answer), "allow", "{answer}");
        in_flight[index] = false;
        answered += 1;
        shared.answered.fetch_add(1, Ordering::Relaxed);
        if !shared.stop.load(Ordering::Relaxed) {
            stream.write_all(&send(cid, "hello there")).await.unwrap();
            in_flight[index] = true;
        }
    }
    // Nothing more is owed: the next answer is the marker's.
    stream
        .write_all(&send(format!("marker-{client}"), "done"))
        .await
        .unwrap();
    let (_, payload) = raw::v2_read(&mut stream).await.unwrap();
    let answer: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(
        answer["audit"]["custom"]["correlation_id"],
        format!("marker-{client}")
    );
    answered
}

const RELOAD_BEFORE: &str = "[[route]]\nmatch = \"busy\"\ncustom-patterns = [\"forbidden-one\"]\n";
const RELOAD_AFTER: &str = "[[route]]\nmatch = \"busy\"\ncustom-patterns = [\"forbidden-two\"]\n";

/// Starts four load clients on route `busy` and waits until they answered 500 frames.
async fn start_load(agent: &Agent) -> (Arc<Load>, Vec<tokio::task::JoinHandle<u64>>) {
    let shared = Arc::new(Load::default());
    let tasks = (0..4)
        .map(|client| {
            tokio::spawn(load(
                agent.socket().to_owned(),
                client,
                Arc::clone(&shared),
                "busy",
            ))
        })
        .collect();
    wait_answered(&shared, 500).await;
    (shared, tasks)
}

/// Waits until the load clients answered `more` frames beyond what they had.
async fn wait_answered(shared: &Load, more: u64) {
    let target = shared.answered.load(Ordering::Relaxed) + more;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while shared.answered.load(Ordering::Relaxed) < target {
        assert!(std::time::Instant::now() < deadline, "the load stalled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Lets the load run 500 more frames (across the reload just made), stops it and checks it.
async fn finish_load(shared: Arc<Load>, tasks: Vec<tokio::task::JoinHandle<u64>>) -> u64 {
    wait_answered(&shared, 500).await;
    shared.stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for task in tasks {
        total += tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("load ends")
            .unwrap();
    }
    total
}

async fn blocked(client: &mut AgentClient, cid: &str, body: &str) -> bool {
    is_close(&text(client, "busy", cid, body).await, 1008)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_under_load_with_every_frame_answered_once() {
    let (agent, path, _dir) = agent_with(RELOAD_BEFORE, &[]);
    let mut probe = connect(&agent).await;
    assert!(blocked(&mut probe, "p-1", "forbidden-one").await);
    let (load, tasks) = start_load(&agent).await;
    let before = agent
        .metric(r#"ws_agent_config_reloads_total{result="applied"}"#)
        .unwrap_or(0.0);

    std::fs::write(&path, RELOAD_AFTER).unwrap();
    agent.signal("HUP");
    wait_metric(
        &agent,
        r#"ws_agent_config_reloads_total{result="applied"}"#,
        before + 1.0,
    )
    .await;
    // A new connection on the route gets the new file; the old pattern no longer applies.
    assert!(blocked(&mut probe, "p-2", "forbidden-two").await);
    assert!(!blocked(&mut probe, "p-3", "forbidden-one").await);

    // A bad file on SIGHUP: logged, counted, the running policy stays.
    std::fs::write(&path, "[[route]]\nmatch = \"busy\"\nblock-mod = false\n").unwrap();
    agent.signal("HUP");
    wait_metric(
        &agent,
        r#"ws_agent_config_reloads_total{result="rejected"}"#,
        1.0,
    )
    .await;
    let log = agent.wait_for_log("block-mod", TIMEOUT);
    assert!(
        log.contains("routes.toml:3:1: route `busy`: unknown option `block-mod`"),
        "{log}"
    );
    assert!(blocked(&mut probe, "p-4", "forbidden-two").await);

    let answered = finish_load(load, tasks).await;
    assert!(answered > 0);
    let log = agent.log();
    let timing = log
        .lines()
        .rfind(|l| l.contains("policy file loaded"))
        .unwrap();
    println!("SIGHUP reload under load: {answered} frames answered once each; {timing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configure_pushes_a_policy_file_or_an_inline_policy_under_load() {
    let (agent, _, _dir) = agent_with(RELOAD_BEFORE, &[]);
    let after = write_policy(agent.dir(), "after.toml", RELOAD_AFTER);
    let mut probe = connect(&agent).await;
    let (load, tasks) = start_load(&agent).await;

    let response = configure(&mut probe, json!({"policy-file": after.to_str().unwrap()})).await;
    assert_eq!(response.decision, Decision::Allow, "{response:?}");
    assert!(blocked(&mut probe, "q-1", "forbidden-two").await);

    let inline =
        json!({"policy": {"route": [{"match": "busy", "custom-patterns": ["forbidden-three"]}]}});
    let response = configure(&mut probe, inline).await;
    assert_eq!(response.decision, Decision::Allow, "{response:?}");
    assert!(blocked(&mut probe, "q-2", "forbidden-three").await);

    // Rejected pushes keep the running policy: a bad glob, a schema that does not compile, a
    // policy pushed together with options.
    for bad in [
        json!({"policy": {"route": [{"match": "busy[", "custom-patterns": ["x"]}]}}),
        json!({"policy": {"route": [{"match": "busy", "schema": {"client": {"text": {"type": "nonsense"}}}}]}}),
        json!({"policy": {"route": []}, "block-mode": false}),
        json!({"policy-file": agent.dir().join("missing.toml").to_str().unwrap()}),
    ] {
        let response = configure(&mut probe, bad.clone()).await;
        assert!(
            matches!(response.decision, Decision::Block { .. }),
            "{bad}: {response:?}"
        );
    }
    assert!(blocked(&mut probe, "q-3", "forbidden-three").await);

    let answered = finish_load(load, tasks).await;
    assert!(answered > 0);
}

async fn wait_metric(agent: &Agent, series: &str, at_least: f64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if agent.metric(series).unwrap_or(0.0) >= at_least {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{series} never reached {at_least}:\n{}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A policy file of 50 routes, 10 of them with a schema file each (the reload target's size).
fn fifty_routes(dir: &Path) -> String {
    let mut text = String::from("[default]\nmax-message-size = 1048576\n");
    for i in 0..50 {
        text.push_str(&format!(
            "\n[[route]]\nmatch = \"route-{i:02}-*\"\nmax-messages-per-sec = {}\n",
            100 + i
        ));
        if i % 5 == 0 {
            let schema = dir.join(format!("schema-{i}.json"));
            std::fs::write(
                &schema,
                json!({"type": "object", "required": ["id"], "properties": {
                    "id": {"type": "integer", "minimum": i}, "note": {"type": "string", "maxLength": 200}}})
                .to_string(),
            )
            .unwrap();
            text.push_str(&format!(
                "schema.client.text = {:?}\n",
                schema.to_str().unwrap()
            ));
        }
    }
    text
}

/// The reload target (50 routes, 10 schemas, at most 50 ms) is a figure, not an assertion: this
/// reloads such a file five times by SIGHUP and prints the times the agent logs (run it against a
/// release binary with SENTINEL_WS_AGENT_BIN=target/release/sentinel-ws-agent).
#[tokio::test]
async fn a_50_route_file_with_10_schemas_reloads_and_prints_its_time() {
    let dir = tempfile::tempdir().unwrap();
    let (agent, path, _policy_dir) = agent_with(&fifty_routes(dir.path()), &[]);
    let mut client = connect(&agent).await;
    for round in 1..=5 {
        agent.signal("HUP");
        wait_metric(
            &agent,
            r#"ws_agent_config_reloads_total{result="applied"}"#,
            f64::from(round),
        )
        .await;
    }
    // Every route works after the reloads: route-10 has a schema, route-11 has none.
    let decision = text(&mut client, "route-10-x", "s-1", r#"{"id": 1}"#).await;
    assert!(is_close(&decision, 1008), "{decision:?}");
    assert_eq!(
        text(&mut client, "route-11-x", "s-2", "free text").await,
        WebSocketDecision::Allow
    );
    let times: Vec<String> = agent
        .log()
        .lines()
        .filter(|l| l.contains("policy file loaded"))
        .filter_map(|l| {
            l.split("elapsed_ms=\"")
                .nth(1)?
                .split('"')
                .next()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(times.len(), 6, "start + 5 reloads");
    println!(
        "policy file {}: 50 routes, 10 schemas; load at start and 5 reloads, ms: {}",
        path.display(),
        times.join(", ")
    );
}

/// A connection picks up its route's new policy on its next frame after a reload, and keeps its
/// rate bucket and its unfinished message.
#[tokio::test]
async fn a_reload_keeps_buckets_and_unfinished_messages() {
    let before = "[[route]]\nmatch = \"kept\"\nmax-messages-per-sec = 1\nrate-limit-burst = 0\nblock-action = \"drop\"\nrate-limit-action = \"drop\"\n";
    let after = format!("{before}custom-patterns = [\"only-after\"]\n");
    let (agent, path, _dir) = agent_with(before, &[]);
    let mut client = connect(&agent).await;
    // The bucket's one token goes to this message; a fragmented message then starts.
    assert_eq!(
        text(&mut client, "kept", "k", "first").await,
        WebSocketDecision::Allow
    );
    let token_taken = std::time::Instant::now();
    let started = frame(
        &mut client,
        Some("kept"),
        "k-frag",
        "<scr",
        true,
        false,
        "text",
    )
    .await;
    assert_eq!(started.websocket_decision, Some(WebSocketDecision::Allow));

    std::fs::write(&path, after).unwrap();
    agent.signal("HUP");
    wait_metric(
        &agent,
        r#"ws_agent_config_reloads_total{result="applied"}"#,
        1.0,
    )
    .await;

    // The new policy applies to "k" (its pattern), and its bucket is still empty: dropped for
    // the rate, whatever the content.
    let response = frame(
        &mut client,
        Some("kept"),
        "k",
        "only-after",
        true,
        true,
        "text",
    )
    .await;
    assert!(
        token_taken.elapsed() < Duration::from_secs(1),
        "the reload took over a second: the bucket refilled, so this run shows nothing about it"
    );
    assert_eq!(
        response.websocket_decision,
        Some(WebSocketDecision::Drop),
        "{response:?}"
    );
    assert!(
        response.audit.tags.contains(&"ws-rate-limit".to_string()),
        "{response:?}"
    );
    // The fragmented message started before the reload is still reassembled: split XSS is found.
    let last = frame(
        &mut client,
        Some("kept"),
        "k-frag",
        "ipt>alert(1)</script>",
        true,
        true,
        "continuation",
    )
    .await;
    assert!(
        is_close(last.websocket_decision.as_ref().unwrap(), 1008),
        "{last:?}"
    );
    // A new connection on the route gets the new pattern (its bucket is full).
    let response = frame(
        &mut client,
        Some("kept"),
        "k-new",
        "only-after",
        true,
        true,
        "text",
    )
    .await;
    assert_eq!(
        response.websocket_decision,
        Some(WebSocketDecision::Drop),
        "{response:?}"
    );
    assert!(
        response
            .audit
            .tags
            .contains(&"ws-custom-pattern".to_string()),
        "{response:?}"
    );
}
