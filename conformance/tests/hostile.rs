//! Hostile configuration and transport (issue 15), against the real binary: nothing a peer sends
//! may stall, bloat or fool the agent. One test per item of the issue; after each attack a
//! legitimate frame on another connection must be answered within 5 ms (best of a few tries, so
//! that a busy test machine does not decide the result) and the agent's RSS must stay within
//! 100 MB of its idle figure.

use std::path::Path;
use std::time::{Duration, Instant};

use conformance::raw::{self, v1_call, v2_bytes, v2_handshake, v2_read, verdict};
use conformance::{Agent, AgentConfig};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// The Targets line of the issue.
const ANSWER_WITHIN: Duration = Duration::from_millis(5);
const RSS_GROWTH_KIB: u64 = 100 * 1024;

/// A client-to-server frame event.
fn event(cid: &str, opcode: &str, data: &[u8], fin: bool) -> Value {
    raw::event(cid, opcode, data, true, fin)
}

async fn v2_configure(stream: &mut UnixStream, config: &Value, cid: &str) -> Value {
    let message = json!({"config": config, "correlation_id": cid});
    stream
        .write_all(&v2_bytes(0x17, &serde_json::to_vec(&message).unwrap()))
        .await
        .unwrap();
    let (kind, payload) = v2_read(stream).await.expect("a configure answer");
    assert_eq!(kind, 0x20);
    serde_json::from_slice(&payload).unwrap()
}

fn rejection(answer: &Value) -> String {
    answer["decision"]["block"]["body"]
        .as_str()
        .unwrap_or_else(|| panic!("accepted: {answer}"))
        .to_string()
}

/// The Targets check after an attack: a clean frame on a fresh connection is answered, the best
/// of five within 5 ms and none after 100 ms; RSS within 100 MB of `idle_kib`.
async fn still_serving(agent: &Agent, idle_kib: u64, after: &str) {
    let mut stream = UnixStream::connect(agent.socket()).await.unwrap();
    let mut best = Duration::MAX;
    for n in 0..5 {
        let started = Instant::now();
        let answer = v1_call(
            &mut stream,
            "web_socket_frame",
            &event(&format!("ok-{n}"), "text", b"hello there", true),
        )
        .await;
        let took = started.elapsed();
        assert_eq!(verdict(&answer), "allow", "{after}");
        assert!(
            took < Duration::from_millis(100),
            "{after}: a clean frame took {took:?}"
        );
        best = best.min(took);
    }
    eprintln!("{after}: clean frame answered in {best:?} (best of 5)");
    assert!(
        best <= ANSWER_WITHIN,
        "{after}: a clean frame took {best:?}"
    );
    let rss = agent.rss_kib();
    eprintln!("{after}: RSS {rss} KiB (idle {idle_kib} KiB)");
    assert!(
        rss <= idle_kib + RSS_GROWTH_KIB,
        "{after}: RSS {rss} KiB, idle {idle_kib} KiB"
    );
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Item 1: schema paths pushed by a peer are read only if they are small regular files, off the
/// runtime, and the error neither says whether the path exists nor echoes the file.
#[tokio::test]
async fn pushed_schema_paths_cannot_stall_bloat_or_probe_the_agent() {
    let agent = AgentConfig::default().with_metrics().start();
    let idle = agent.rss_kib();
    let fifo = agent.dir().join("fifo");
    mkfifo(&fifo);
    let secret = agent.dir().join("secret.json");
    std::fs::write(&secret, r#"{"type": "hunter2-secret-value"}"#).unwrap();
    let big = agent.dir().join("big.json");
    std::fs::write(
        &big,
        format!("{{\"description\": \"{}\"}}", "x".repeat(2 * 1024 * 1024)),
    )
    .unwrap();
    let missing = agent.dir().join("missing.json");
    let paths = [
        "/dev/zero".to_string(),
        fifo.display().to_string(),
        secret.display().to_string(),
        big.display().to_string(),
        missing.display().to_string(),
        agent.dir().display().to_string(),
    ];
    let mut v1 = UnixStream::connect(agent.socket()).await.unwrap();
    let (mut v2, _) = v2_handshake(agent.socket(), &Value::Null).await;
    for (n, path) in paths.iter().enumerate() {
        for key in ["json-schema", "msgpack-schema"] {
            let config = if key == "json-schema" {
                json!({"json-schema": path})
            } else {
                json!({"msgpack-validation": true, "msgpack-schema": path})
            };
            let started = Instant::now();
            let answer = v1_call(
                &mut v1,
                "configure",
                &json!({"agent_id": "h", "config": config}),
            )
            .await;
            let reason = rejection(&answer);
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{path}: {:?}",
                started.elapsed()
            );
            // Every cause gives the same words: nothing tells a missing file from a FIFO, a
            // device, a directory, a large file or a file that is not a schema.
            let expected = format!("--{key} {path}: schema file rejected: not a readable regular file of at most 1048576 bytes holding a JSON Schema");
            assert_eq!(reason, expected, "{path}");
            assert!(!reason.contains("hunter2"), "{reason}");
            let answer = v2_configure(&mut v2, &config, &format!("c{n}{key}")).await;
            assert_eq!(rejection(&answer), expected);
        }
        let (_, answer) = v2_handshake(agent.socket(), &json!({"json-schema": path})).await;
        assert_eq!(answer["success"], false, "{answer}");
        still_serving(&agent, idle, &format!("schema path {path}")).await;
    }
    // /healthz and /metrics never froze, and SIGTERM still works (below, by Drop's kill).
    assert_eq!(agent.http_get("/healthz").0, 200);
    assert!(!agent.log().contains("hunter2"));
    // A real schema file still works.
    let good = agent.dir().join("good.json");
    std::fs::write(&good, r#"{"type": "object"}"#).unwrap();
    let answer = v1_call(
        &mut v1,
        "configure",
        &json!({"agent_id": "h", "config": {"json-schema": good}}),
    )
    .await;
    assert_eq!(answer["decision"], "allow", "{answer}");
    let answer = v1_call(
        &mut v1,
        "web_socket_frame",
        &event("schema", "text", b"[1]", true),
    )
    .await;
    assert_eq!(verdict(&answer), "1008");
}

/// Item 2: custom pattern lists are bounded in count, bytes and compiled size, and compiled on
/// the compiler thread while other clients' frames keep being answered.
#[tokio::test]
async fn custom_pattern_floods_are_bounded_and_compiled_off_the_frame_path() {
    let agent = AgentConfig::default().with_metrics().start();
    let idle = agent.rss_kib();
    let mut v1 = UnixStream::connect(agent.socket()).await.unwrap();
    let flood: Vec<String> = vec!["x{1000}".into(); 5000];
    let answer = v1_call(
        &mut v1,
        "configure",
        &json!({"agent_id": "h", "config": {"custom-patterns": flood}}),
    )
    .await;
    let reason = rejection(&answer);
    assert!(
        reason.contains("custom-patterns") && reason.contains("--max-custom-patterns"),
        "{reason}"
    );
    still_serving(&agent, idle, "5000 patterns").await;
    // 256 patterns (the count limit) that each compile large: the per-pattern budget refuses them.
    let heavy: Vec<String> = vec!["x{1000}".into(); 256];
    let answer = v1_call(
        &mut v1,
        "configure",
        &json!({"agent_id": "h", "config": {"custom-patterns": heavy}}),
    )
    .await;
    assert!(rejection(&answer).contains("custom-patterns"), "{answer}");
    still_serving(&agent, idle, "256 heavy patterns").await;
    // A 9 MiB handshake configuration is refused unparsed.
    let patterns: Vec<String> = (0..9 * 1024).map(|n| format!("{n:0>1020}")).collect();
    let (_, answer) = v2_handshake(agent.socket(), &json!({"custom-patterns": patterns})).await;
    assert_eq!(answer["success"], false);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("max-config-bytes"),
        "{answer}"
    );
    still_serving(&agent, idle, "9 MiB handshake config").await;

    // A valid but slow-to-compile list (160 alternations; ~2 s in a debug build) compiles on its own thread: frames of
    // another client meanwhile are answered at their usual pace.
    let slow: Vec<String> = (0..160)
        .map(|n| {
            let words: Vec<String> = (0..25).map(|w| format!("w{n:03}x{w:02}")).collect();
            format!(r"\b(?:{})\b", words.join("|"))
        })
        .collect();
    assert!(slow.iter().map(String::len).sum::<usize>() < 64 * 1024);
    let socket = agent.socket().to_owned();
    let other = tokio::spawn(async move {
        let mut stream = UnixStream::connect(&socket).await.unwrap();
        let mut latencies = Vec::new();
        let until = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < until {
            let started = Instant::now();
            let answer = v1_call(
                &mut stream,
                "web_socket_frame",
                &event("other", "text", b"plain words", true),
            )
            .await;
            latencies.push(started.elapsed());
            assert_eq!(verdict(&answer), "allow");
        }
        latencies.sort();
        latencies
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let answer = v1_call(
        &mut v1,
        "configure",
        &json!({"agent_id": "h", "config": {"custom-patterns": slow}}),
    )
    .await;
    eprintln!(
        "160-pattern configure answered in {:?}: {}",
        started.elapsed(),
        answer["decision"]
    );
    let latencies = other.await.unwrap();
    let p99 = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)];
    eprintln!(
        "other client during the compile: {} frames, p99 {p99:?}, max {:?}",
        latencies.len(),
        latencies.last().unwrap()
    );
    assert!(
        p99 < Duration::from_millis(10),
        "p99 {p99:?} while a configuration compiled"
    );
    still_serving(&agent, idle, "160 slow patterns").await;
}

/// Item 3: gRPC streams have their own limit, advertised per connection and counted in total;
/// a stream that sends nothing is ended; the Unix socket is never refused because of them.
#[tokio::test]
async fn a_grpc_stream_flood_never_locks_out_the_unix_socket() {
    use tokio_stream::wrappers::ReceiverStream;
    use zentinel_agent_protocol::grpc_v2::agent_service_v2_client::AgentServiceV2Client;
    use zentinel_agent_protocol::grpc_v2::ProxyToAgent;
    let agent = AgentConfig::default()
        .with_metrics()
        .args([
            "--grpc-address",
            "127.0.0.1:0",
            "--max-grpc-streams",
            "16",
            "--max-transport-connections",
            "16",
            "--read-timeout",
            "2",
        ])
        .start();
    let idle = agent.rss_kib();
    let endpoint = agent.grpc_endpoint();
    // Streams that send HEADERS and never a message, over several connections.
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..4 {
        let channel = tonic::transport::Endpoint::from_shared(endpoint.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        for _ in 0..10 {
            let mut client = AgentServiceV2Client::new(channel.clone());
            let (tx, rx) = tokio::sync::mpsc::channel::<ProxyToAgent>(1);
            match tokio::time::timeout(
                Duration::from_secs(5),
                client.process_stream(ReceiverStream::new(rx)),
            )
            .await
            {
                Ok(Ok(response)) => held.push((tx, response.into_inner())),
                Ok(Err(status)) => {
                    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status}");
                    refused += 1;
                }
                Err(_) => panic!("no answer to a new stream"),
            }
        }
    }
    assert_eq!(held.len(), 16, "streams served at once");
    assert_eq!(refused, 24);
    // Meanwhile every Unix socket client is served.
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(UnixStream::connect(agent.socket()).await.unwrap());
    }
    for (n, client) in clients.iter_mut().enumerate() {
        let answer = v1_call(
            client,
            "web_socket_frame",
            &event(&format!("uds-{n}"), "text", b"hi", true),
        )
        .await;
        assert_eq!(verdict(&answer), "allow");
    }
    still_serving(&agent, idle, "gRPC stream flood").await;
    // The silent streams are ended with DEADLINE_EXCEEDED after --read-timeout.
    for (_tx, mut inbound) in held {
        let ended = tokio::time::timeout(Duration::from_secs(10), inbound.message())
            .await
            .expect("the silent stream ended");
        let status = ended.expect_err("ended with a status");
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status}");
    }
    assert_eq!(
        agent.metric("ws_agent_transport_read_timeouts_total{transport=\"grpc\"}"),
        Some(16.0)
    );
    assert_eq!(
        agent.metric("ws_agent_transport_connections_refused_total{transport=\"grpc\"}"),
        Some(24.0)
    );
    assert_eq!(
        agent
            .metric("ws_agent_transport_connections_refused_total{transport=\"uds\"}")
            .unwrap_or(0.0),
        0.0
    );
    // Refusals are logged at most once per second.
    let lines = agent
        .log()
        .lines()
        .filter(|l| l.contains("too many gRPC streams"))
        .count();
    assert!((1..=3).contains(&lines), "{lines} refusal lines");
}

/// Item 3: a unary call whose HEADERS come without its message holds a stream too: it is
/// ended with DEADLINE_EXCEEDED after --read-timeout (v1 and both v2 packages), while a unary
/// call with its message is answered at once.
#[tokio::test]
async fn a_unary_call_without_its_message_is_ended() {
    let agent = AgentConfig::default()
        .with_metrics()
        .args(["--grpc-address", "127.0.0.1:0", "--read-timeout", "1"])
        .start();
    let endpoint = agent.grpc_endpoint();
    let address = endpoint.trim_start_matches("http://").to_string();
    let tcp = tokio::net::TcpStream::connect(&address).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let mut held = Vec::new();
    for path in [
        "/sentinel.agent.v1.AgentProcessor/ProcessEvent",
        "/sentinel.agent.v2.AgentServiceV2/ProcessEvent",
        "/zentinel.agent.v2.AgentServiceV2/ProcessEvent",
    ] {
        let mut client = client.clone().ready().await.unwrap();
        let request = http::Request::builder()
            .method("POST")
            .uri(format!("{endpoint}{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .unwrap();
        // HEADERS without END_STREAM, and never a DATA frame.
        let (response, body) = client.send_request(request, false).unwrap();
        held.push((path, response, body));
    }
    let started = std::time::Instant::now();
    for (path, response, _body) in held {
        let response = tokio::time::timeout(Duration::from_secs(8), response)
            .await
            .unwrap_or_else(|_| panic!("{path}: no answer"))
            .unwrap();
        // A trailers-only answer: the status is in the headers.
        let status = response
            .headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        assert_eq!(
            status.as_deref(),
            Some("4"),
            "{path}: DEADLINE_EXCEEDED, got {:?}",
            response.headers()
        );
    }
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert_eq!(
        agent.metric("ws_agent_transport_read_timeouts_total{transport=\"grpc\"}"),
        Some(3.0)
    );
    // A complete unary call is answered well within the bound.
    use zentinel_agent_protocol::grpc_v2::agent_service_v2_client::AgentServiceV2Client;
    let mut v2 = AgentServiceV2Client::connect(endpoint).await.unwrap();
    let started = std::time::Instant::now();
    let answer = v2
        .process_event(zentinel_agent_protocol::grpc_v2::ProxyToAgent::default())
        .await;
    assert!(started.elapsed() < Duration::from_millis(900), "{answer:?}");
}

/// Item 4: control characters, CR/LF and terminal escapes in every logged field are escaped, in
/// both log formats.
#[tokio::test]
async fn log_injection_through_every_logged_field_is_escaped() {
    for format in ["text", "json"] {
        let agent = AgentConfig::default()
            .args(["--log-format", format, "--log-frames"])
            .start();
        let forged =
            "a\r\n2026-01-01T00:00:00Z  INFO fake: admin logged in\u{1b}]0;owned\u{7}\u{1b}[2J";
        let mut v1 = UnixStream::connect(agent.socket()).await.unwrap();
        // A violation line: correlation id, route, client IP (and the payload excerpt).
        let mut frame = event(forged, "text", b"<script>alert(1)</script>\r\nINFO x", true);
        frame["route_id"] = json!(forged);
        frame["client_ip"] = json!(forged);
        assert_eq!(
            verdict(&v1_call(&mut v1, "web_socket_frame", &frame).await),
            "1008"
        );
        // A configuration rejection naming an unknown key, and a pattern error.
        let config = json!({ forged: true });
        rejection(
            &v1_call(
                &mut v1,
                "configure",
                &json!({"agent_id": "h", "config": config}),
            )
            .await,
        );
        let config = json!({"custom-patterns": [format!("({forged}")]});
        rejection(
            &v1_call(
                &mut v1,
                "configure",
                &json!({"agent_id": "h", "config": config}),
            )
            .await,
        );
        // An undecodable frame with an injected correlation id and opcode.
        let mut bad = event(forged, "text", b"x", true);
        bad["opcode"] = json!(forged);
        v1_call(&mut v1, "web_socket_frame", &bad).await;
        // A v2 handshake with injected proxy id and version.
        let mut stream = UnixStream::connect(agent.socket()).await.unwrap();
        let hello = json!({"supported_versions": [2], "proxy_id": forged, "proxy_version": forged, "config": null});
        stream
            .write_all(&v2_bytes(0x01, &serde_json::to_vec(&hello).unwrap()))
            .await
            .unwrap();
        v2_read(&mut stream).await.unwrap();
        let log = agent.wait_for_log("v2 handshake", Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let log = if log.contains("frame violation") {
            agent.log()
        } else {
            log
        };
        assert!(log.contains("frame violation"), "{log}");
        assert!(
            !log.contains('\u{1b}') && !log.contains('\u{7}') && !log.contains('\r'),
            "{format}: raw control characters in:\n{log}"
        );
        for line in log.lines() {
            assert!(
                !line.starts_with("2026-01-01T00:00:00Z"),
                "{format}: forged line {line}"
            );
            if format == "json" {
                serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            }
        }
        assert!(
            log.contains("admin logged in"),
            "the escaped value is still shown"
        );
    }
}

/// Item 5: a connection that sends nothing, or stops inside a message, is closed after
/// --read-timeout; a pooled connection idle between messages stays; closes are logged at most
/// once per second with a count, and counted.
#[tokio::test]
async fn silent_and_stalled_connections_are_closed_but_idle_pooled_ones_stay() {
    let agent = AgentConfig::default()
        .with_metrics()
        .args(["--read-timeout", "1", "--max-transport-connections", "24"])
        .start();
    let idle = agent.rss_kib();
    // A pooled connection that completed a message, then stays idle past the timeout.
    let mut pooled = UnixStream::connect(agent.socket()).await.unwrap();
    assert_eq!(
        verdict(
            &v1_call(
                &mut pooled,
                "web_socket_frame",
                &event("pool", "text", b"hi", true)
            )
            .await
        ),
        "allow"
    );
    let (mut v2_pooled, _) = v2_handshake(agent.socket(), &Value::Null).await;
    let mut stalled = Vec::new();
    for n in 0..22 {
        let mut stream = UnixStream::connect(agent.socket()).await.unwrap();
        match n % 4 {
            0 => {}
            1 => stream.write_all(&[0, 0]).await.unwrap(),
            2 => stream.write_all(&[0, 0, 1, 0, b'{']).await.unwrap(),
            _ => {
                // A stall inside a later message of a working connection.
                let answer = v1_call(
                    &mut stream,
                    "web_socket_frame",
                    &event("s", "text", b"ok", true),
                )
                .await;
                assert_eq!(verdict(&answer), "allow");
                stream.write_all(&[0, 0, 0, 50, b'{', b'"']).await.unwrap();
            }
        }
        stalled.push(stream);
    }
    // The limit is full now: the proxy's own new connection is refused until the stalled close.
    let started = Instant::now();
    for stream in &mut stalled {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte))
            .await
            .expect("closed by the agent");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        verdict(
            &v1_call(
                &mut pooled,
                "web_socket_frame",
                &event("pool", "text", b"again", true)
            )
            .await
        ),
        "allow"
    );
    let frame = serde_json::to_vec(&event("pool2", "text", b"again", true)).unwrap();
    v2_pooled.write_all(&v2_bytes(0x15, &frame)).await.unwrap();
    let (kind, _) = v2_read(&mut v2_pooled).await.unwrap();
    assert_eq!(kind, 0x20);
    still_serving(&agent, idle, "stalled connections").await;
    assert_eq!(
        agent.metric("ws_agent_transport_read_timeouts_total{transport=\"uds\"}"),
        Some(22.0)
    );
    let lines = agent
        .log()
        .lines()
        .filter(|l| l.contains("stalled proxy connection closed"))
        .count();
    assert!((1..=4).contains(&lines), "{lines} lines for 22 closes");
}

/// Item 6: a text message that is not valid UTF-8 (judged per message) is closed with 1007; with
/// `--invalid-utf8 inspect` the overlong forms of markup characters are read as such.
#[tokio::test]
async fn invalid_utf8_text_is_closed_and_overlong_markup_is_read_as_markup() {
    let agent = Agent::start_default();
    let mut v1 = UnixStream::connect(agent.socket()).await.unwrap();
    let overlong = b"\xc0\xbcscript\xc0\xbealert(1)\xc0\xbc/script\xc0\xbe";
    let answer = v1_call(
        &mut v1,
        "web_socket_frame",
        &event("u1", "text", overlong, true),
    )
    .await;
    assert_eq!(verdict(&answer), "1007", "{answer}");
    assert!(answer["audit"]["tags"]
        .as_array()
        .unwrap()
        .contains(&json!("ws-protocol-violation")));
    // A character split across fragments is valid; a message ending inside one is not.
    let euro = "price: 5 €".as_bytes();
    let (head, tail) = euro.split_at(euro.len() - 2);
    assert_eq!(
        verdict(
            &v1_call(
                &mut v1,
                "web_socket_frame",
                &event("u2", "text", head, false)
            )
            .await
        ),
        "allow"
    );
    assert_eq!(
        verdict(
            &v1_call(
                &mut v1,
                "web_socket_frame",
                &event("u2", "continuation", tail, true)
            )
            .await
        ),
        "allow"
    );
    assert_eq!(
        verdict(
            &v1_call(
                &mut v1,
                "web_socket_frame",
                &event("u3", "text", head, false)
            )
            .await
        ),
        "allow"
    );
    assert_eq!(
        verdict(
            &v1_call(
                &mut v1,
                "web_socket_frame",
                &event("u3", "continuation", b"", true)
            )
            .await
        ),
        "1007"
    );
    // Binary messages are not text.
    assert_eq!(
        verdict(
            &v1_call(
                &mut v1,
                "web_socket_frame",
                &event("u4", "binary", b"\xff\xfe", true)
            )
            .await
        ),
        "allow"
    );

    let agent = AgentConfig::default()
        .args(["--invalid-utf8", "inspect"])
        .start();
    let mut v1 = UnixStream::connect(agent.socket()).await.unwrap();
    let answer = v1_call(
        &mut v1,
        "web_socket_frame",
        &event("u5", "text", overlong, true),
    )
    .await;
    assert_eq!(verdict(&answer), "1008", "{answer}");
    assert!(
        answer["audit"]["tags"]
            .as_array()
            .unwrap()
            .contains(&json!("ws-xss")),
        "{answer}"
    );
    assert_eq!(
        verdict(
            &v1_call(
                &mut v1,
                "web_socket_frame",
                &event("u6", "text", b"caf\xe9 ok", true)
            )
            .await
        ),
        "allow"
    );
}

/// Item 7: a data frame that starts a new message inside a fragmented one is a protocol error
/// (1002); in detect-only mode both parts are inspected together.
#[tokio::test]
async fn a_new_message_inside_a_fragmented_one_is_a_protocol_error() {
    let agent = Agent::start_default();
    let mut v1 = UnixStream::connect(agent.socket()).await.unwrap();
    assert_eq!(
        verdict(
            &v1_call(
                &mut v1,
                "web_socket_frame",
                &event("f1", "text", b"name=' OR ", false)
            )
            .await
        ),
        "allow"
    );
    let answer = v1_call(
        &mut v1,
        "web_socket_frame",
        &event("f1", "text", b"7=7 -- ", true),
    )
    .await;
    assert_eq!(verdict(&answer), "1002", "{answer}");
    // Control frames between fragments stay legal.
    assert_eq!(
        verdict(
            &v1_call(
                &mut v1,
                "web_socket_frame",
                &event("f2", "text", b"part one ", false)
            )
            .await
        ),
        "allow"
    );
    assert_eq!(
        verdict(&v1_call(&mut v1, "web_socket_frame", &event("f2", "ping", b"", true)).await),
        "allow"
    );
    assert_eq!(
        verdict(
            &v1_call(
                &mut v1,
                "web_socket_frame",
                &event("f2", "continuation", b"part two", true)
            )
            .await
        ),
        "allow"
    );

    let agent = AgentConfig::default()
        .args(["--block-mode", "false"])
        .start();
    let mut v1 = UnixStream::connect(agent.socket()).await.unwrap();
    v1_call(
        &mut v1,
        "web_socket_frame",
        &event("f3", "text", b"name=' OR ", false),
    )
    .await;
    let answer = v1_call(
        &mut v1,
        "web_socket_frame",
        &event("f3", "text", b"7=7 -- ", true),
    )
    .await;
    assert_eq!(verdict(&answer), "allow");
    let tags = answer["audit"]["tags"].as_array().unwrap();
    assert!(
        tags.contains(&json!("ws-protocol-violation")) && tags.contains(&json!("ws-sqli")),
        "{answer}"
    );
}

/// Item 8: an empty v2 frame body is answered; failure lines name the real answer; a start that
/// fails does not restart detectors in a storm; a panic is one log line.
#[tokio::test]
async fn smaller_hostile_cases_are_answered_and_logged_briefly() {
    let agent = AgentConfig::default().with_metrics().start();
    let (mut v2, _) = v2_handshake(agent.socket(), &Value::Null).await;
    v2.write_all(&v2_bytes(0x15, b"")).await.unwrap();
    let (kind, payload) = v2_read(&mut v2).await.expect("an answer to an empty frame");
    assert_eq!(kind, 0x20);
    let answer: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(verdict(&answer), "1011", "{answer}");
    assert_eq!(answer["audit"]["custom"]["correlation_id"], "");
    let log = agent.wait_for_log("undecodable WebSocket frame", Duration::from_secs(5));
    assert!(log.contains("close 1011 (--fail-open is off)"), "{log}");
    assert!(!log.contains("answering by --fail-open"), "{log}");

    // The metrics port is taken: the start fails with a handful of lines.
    let address = agent.metrics_address();
    let (status, stderr) = conformance::run_to_exit(&["--metrics-address", &address], &[]);
    assert!(!status.success());
    assert!(stderr.contains("cannot serve metrics"), "{stderr}");
    assert!(!stderr.contains("restarting detector"), "{stderr}");
    assert!(stderr.lines().count() < 10, "{stderr}");

    // With RUST_BACKTRACE=1, a detector panic is one line.
    let agent = AgentConfig::default()
        .args(["--debug-panic-marker", "BOOM-MARK"])
        .env("RUST_BACKTRACE", "1")
        .start();
    let mut v1 = UnixStream::connect(agent.socket()).await.unwrap();
    let before = agent.log().lines().count();
    for n in 0..3 {
        let answer = v1_call(
            &mut v1,
            "web_socket_frame",
            &event(&format!("p{n}"), "text", b"x BOOM-MARK y", true),
        )
        .await;
        assert_eq!(verdict(&answer), "1011", "{answer}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = agent.log();
    let added = log.lines().count() - before;
    assert!(added <= 12, "{added} lines for 3 panics:\n{log}");
    assert!(!log.contains("stack backtrace"), "{log}");
}
