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

// ---------------------------------------------------------------------------------------------
// Raw protocol helpers: these tests need byte-level control (half-written messages, connections
// that never read, thousands of sockets), which the upstream clients do not give.

use conformance::raw::{self, event, verdict};

/// Polls `check` until it holds or `timeout` passes.
async fn eventually(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !check() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn truncated_messages_are_logged_and_other_connections_keep_being_served() {
    use tokio::io::AsyncWriteExt;
    let agent = AgentConfig::default().with_metrics().start();
    let mut v1_peer = tokio::net::UnixStream::connect(agent.socket())
        .await
        .unwrap();
    let mut v2_peer = raw::v2_connect(agent.socket()).await;
    let probe = event("peer", "text", b"hello", true, true);
    assert_eq!(
        verdict(&raw::v1_call(&mut v1_peer, "web_socket_frame", &probe).await),
        "allow"
    );

    // v1: a request cut off inside its body, then the connection closed.
    let whole = raw::v1_bytes(
        "web_socket_frame",
        &event("cut-v1", "text", b"<script>", true, true),
    );
    let mut cut = tokio::net::UnixStream::connect(agent.socket())
        .await
        .unwrap();
    cut.write_all(&whole[..whole.len() / 2]).await.unwrap();
    drop(cut);
    // v1: a length prefix cut off after two bytes.
    let mut cut = tokio::net::UnixStream::connect(agent.socket())
        .await
        .unwrap();
    cut.write_all(&whole[..2]).await.unwrap();
    drop(cut);
    // v1: a whole request answered, then the next one cut off.
    let mut cut = tokio::net::UnixStream::connect(agent.socket())
        .await
        .unwrap();
    assert_eq!(
        verdict(&raw::v1_call(&mut cut, "web_socket_frame", &probe).await),
        "allow"
    );
    cut.write_all(&whole[..whole.len() - 1]).await.unwrap();
    drop(cut);
    // v2: a frame cut off inside its body after a good handshake.
    let mut cut = raw::v2_connect(agent.socket()).await;
    let frame = raw::v2_bytes(
        0x15,
        &serde_json::to_vec(&event("cut-v2", "text", b"x", true, true)).unwrap(),
    );
    cut.write_all(&frame[..frame.len() - 10]).await.unwrap();
    drop(cut);
    // v2: a handshake cut off.
    let mut cut = tokio::net::UnixStream::connect(agent.socket())
        .await
        .unwrap();
    cut.write_all(&raw::v2_bytes(0x01, b"{\"supported_versions\":[2]}")[..12])
        .await
        .unwrap();
    drop(cut);

    let log = agent.wait_for_log("connection closed after", TIMEOUT);
    assert!(
        log.contains("proxy connection ended with an error"),
        "{log}"
    );
    // Logged at most once per second (a peer can cause these at will), counted every time.
    eventually(TIMEOUT, "every truncated connection counted", || {
        agent
            .metric("ws_agent_protocol_errors_total")
            .unwrap_or(0.0)
            >= 5.0
    })
    .await;
    // Nothing was decided for the cut-off frames, and every other connection is still served.
    assert!(!agent.log().contains("cut-v1") && !agent.log().contains("cut-v2"));
    assert_eq!(
        verdict(&raw::v1_call(&mut v1_peer, "web_socket_frame", &probe).await),
        "allow"
    );
    assert_eq!(verdict(&raw::v2_call(&mut v2_peer, &probe).await), "allow");
    let mut fresh = raw::v2_connect(agent.socket()).await;
    let attack = event("fresh", "text", b"<script>alert(1)</script>", true, true);
    assert_eq!(verdict(&raw::v2_call(&mut fresh, &attack).await), "1008");
    eventually(TIMEOUT, "closed connections released", || {
        agent.metric("ws_agent_transport_connections") == Some(3.0)
    })
    .await;
}

/// Writes `message` on `stream` over and over (at most `limit` bytes) without ever reading,
/// counting the bytes the agent accepted; returns the counter.
fn flood_without_reading(
    stream: tokio::net::UnixStream,
    message: Vec<u8>,
    limit: u64,
) -> std::sync::Arc<std::sync::atomic::AtomicU64> {
    use std::sync::atomic::Ordering;
    use tokio::io::AsyncWriteExt;
    let written = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = std::sync::Arc::clone(&written);
    tokio::spawn(async move {
        // The read half stays open (and unread) for as long as the task lives.
        let (_read, mut write) = stream.into_split();
        let batch: Vec<u8> = message.repeat((64 * 1024 / message.len()).max(1));
        while counter.load(Ordering::Relaxed) < limit {
            if write.write_all(&batch).await.is_err() {
                break;
            }
            counter.fetch_add(batch.len() as u64, Ordering::Relaxed);
        }
        // Keep the connection open, unread, until the test ends.
        std::future::pending::<()>().await;
    });
    written
}

/// Waits until `written` stops growing (the agent stopped reading), up to `timeout`; returns
/// the plateau.
async fn plateau(written: &std::sync::atomic::AtomicU64, timeout: Duration) -> u64 {
    use std::sync::atomic::Ordering;
    let deadline = std::time::Instant::now() + timeout;
    let mut last = u64::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = written.load(Ordering::Relaxed);
        if now == last || std::time::Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_is_held_back_and_others_keep_being_served() {
    // A v2 peer that sends frames but never reads its answers: once 1024 of its frames are in
    // flight (MAX_IN_FLIGHT_PER_CONNECTION) the agent stops reading that connection, so the peer's
    // writes block and the agent's memory stays flat, while other connections are served.
    // Measured (debug build): the peer gets ~1 MB into the socket, then blocks; RSS grows by a
    // few MB at most.
    const LIMIT: u64 = 256 * 1024 * 1024;
    let agent = AgentConfig::default().start();
    let mut other = raw::v2_connect(agent.socket()).await;
    let before = agent.rss_kib();
    for kind in ["frames", "pings and HTTP events"] {
        let stalled = raw::v2_connect(agent.socket()).await;
        let message = match kind {
            "frames" => raw::v2_bytes(
                0x15,
                &serde_json::to_vec(&event("stalled", "text", &[b'a'; 256], true, true)).unwrap(),
            ),
            // Messages answered outside the frame path must be held back the same way.
            _ => [
                raw::v2_bytes(0x41, &[b'p'; 256]),
                raw::v2_bytes(0x10, br#"{"correlation_id":"http-1","metadata":{}}"#),
            ]
            .concat(),
        };
        let written = flood_without_reading(stalled, message, LIMIT);
        let stopped_at = plateau(&written, Duration::from_secs(30)).await;
        assert!(
            stopped_at < 64 * 1024 * 1024,
            "{kind}: the agent kept reading a peer that never reads ({stopped_at} bytes)"
        );
        let grown = agent.rss_kib().saturating_sub(before);
        eprintln!("{kind}: the agent stopped reading after {stopped_at} bytes; RSS +{grown} KiB");
        assert!(grown < 128 * 1024, "{kind}: RSS grew by {grown} KiB");
        // Everyone else is still served, promptly.
        let started = std::time::Instant::now();
        let attack = event("other", "text", b"1' OR '1'='1", true, true);
        assert_eq!(verdict(&raw::v2_call(&mut other, &attack).await), "1008");
        let mut v1 = tokio::net::UnixStream::connect(agent.socket())
            .await
            .unwrap();
        let fine = event("v1-other", "text", b"fine", true, true);
        assert_eq!(
            verdict(&raw::v1_call(&mut v1, "web_socket_frame", &fine).await),
            "allow"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
}

/// Raises this process's open-file limit towards `wanted` (the agent, started afterwards,
/// inherits it); returns the limit in force.
fn raise_fd_limit(wanted: u64) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < wanted {
            limit.rlim_cur = wanted.min(limit.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        }
    }
    limit.rlim_cur
}

#[tokio::test]
async fn a_thousand_simultaneous_transport_connections_all_get_answers() {
    // 1,000 proxy connections open at once (half v1, half v2), each sending a frame only when
    // all are connected. Each side needs an fd per connection plus its own (tests in this binary
    // run in parallel): with a hard limit too low for that, fewer connections are used.
    let limit = raise_fd_limit(4096);
    let connections = if limit >= 2300 {
        1000
    } else {
        usize::try_from(limit.saturating_sub(300) / 2)
            .unwrap_or(0)
            .max(64)
    };
    eprintln!("fd limit {limit}: {connections} connections");
    let agent = AgentConfig::default().with_metrics().start();
    let mut streams = Vec::with_capacity(connections);
    for n in 0..connections {
        let stream = if n % 2 == 0 {
            tokio::net::UnixStream::connect(agent.socket())
                .await
                .unwrap()
        } else {
            raw::v2_connect(agent.socket()).await
        };
        streams.push(stream);
    }
    eventually(TIMEOUT, "every connection counted", || {
        agent.metric("ws_agent_transport_connections") == Some(connections as f64)
    })
    .await;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(connections));
    let mut tasks = Vec::new();
    for (n, mut stream) in streams.into_iter().enumerate() {
        let barrier = std::sync::Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let attack = n % 10 == 0;
            let text: &[u8] = if attack {
                b"<img src=x onerror=alert(1)>"
            } else {
                b"hi"
            };
            let frame = event(&format!("many-{n}"), "text", text, true, true);
            let answer = if n % 2 == 0 {
                raw::v1_call(&mut stream, "web_socket_frame", &frame).await
            } else {
                raw::v2_call(&mut stream, &frame).await
            };
            assert_eq!(
                verdict(&answer),
                if attack { "1008" } else { "allow" },
                "{n}"
            );
            stream
        }));
    }
    let mut streams = Vec::new();
    for task in tasks {
        streams.push(task.await.expect("every connection answered"));
    }
    assert_eq!(
        agent
            .metric("ws_agent_transport_connections_refused_total{transport=\"uds\"}")
            .unwrap_or(0.0),
        0.0
    );
    drop(streams);
    eventually(TIMEOUT, "every connection released", || {
        agent.metric("ws_agent_transport_connections") == Some(0.0)
    })
    .await;
}

#[tokio::test]
async fn a_proxy_that_disconnects_mid_request_disturbs_nothing() {
    // Frames are written and the socket closed before any answer is read: the agent decides
    // them, fails to write (or finds the peer gone), releases the connection and keeps serving.
    use tokio::io::AsyncWriteExt;
    let agent = AgentConfig::default().with_metrics().start();
    let mut other = raw::v2_connect(agent.socket()).await;
    let big = "<b>".repeat(20_000);
    for round in 0..10 {
        // v1: one request in flight, then gone.
        let mut v1 = tokio::net::UnixStream::connect(agent.socket())
            .await
            .unwrap();
        let frame = event(&format!("gone-{round}"), "text", big.as_bytes(), true, true);
        v1.write_all(&raw::v1_bytes("web_socket_frame", &frame))
            .await
            .unwrap();
        drop(v1);
        // v2: many frames in flight, then gone (half-closed first, then fully).
        let v2 = raw::v2_connect(agent.socket()).await;
        let (_read, mut write) = v2.into_split();
        for n in 0..100 {
            let data = if n % 3 == 0 {
                big.as_bytes()
            } else {
                b"x".as_slice()
            };
            let frame = event(&format!("gone-{round}-{n}"), "text", data, n % 2 == 0, true);
            write
                .write_all(&raw::v2_bytes(0x15, &serde_json::to_vec(&frame).unwrap()))
                .await
                .unwrap();
        }
        if round % 2 == 0 {
            write.shutdown().await.unwrap();
        }
    }
    let answer = raw::v2_call(
        &mut other,
        &event("other", "text", b"; cat /etc/passwd", true, true),
    )
    .await;
    assert_eq!(verdict(&answer), "1008");
    eventually(
        Duration::from_secs(30),
        "abandoned connections released",
        || agent.metric("ws_agent_transport_connections") == Some(1.0),
    )
    .await;
    let log = agent.log();
    assert!(!log.contains("panicked"), "{log}");
    assert_eq!(
        agent
            .metric("ws_agent_detector_restarts_total")
            .unwrap_or(0.0),
        0.0
    );
}

#[tokio::test]
async fn both_directions_of_one_websocket_in_flight_on_separate_connections() {
    // A Zentinel proxy inspects the two directions of one WebSocket concurrently and spreads
    // frames over its pooled connections; both share the correlation id. Here the client side
    // sends fragmented attacks and the server side clean fragmented messages at the same time on
    // two connections: each direction is reassembled on its own and answered correctly.
    let agent = AgentConfig::default().start();
    let c2s = raw::v2_connect(agent.socket()).await;
    let s2c = raw::v2_connect(agent.socket()).await;
    let run = |mut stream: tokio::net::UnixStream, client_to_server: bool| async move {
        for n in 0..200 {
            let cid = format!("both-{}", n % 7);
            let (first, last): (&[u8], &[u8]) = if client_to_server {
                (b"<scr", b"ipt>alert(1)</script>")
            } else {
                (b"<scr", b"olling>fine</scrolling>")
            };
            let a = raw::v2_call(
                &mut stream,
                &event(&cid, "text", first, client_to_server, false),
            )
            .await;
            assert_eq!(verdict(&a), "allow");
            tokio::task::yield_now().await;
            let b = raw::v2_call(
                &mut stream,
                &event(&cid, "continuation", last, client_to_server, true),
            )
            .await;
            assert_eq!(
                verdict(&b),
                if client_to_server { "1008" } else { "allow" },
                "{cid} c2s={client_to_server}: {b}"
            );
            assert_eq!(b["audit"]["custom"]["correlation_id"], cid.as_str());
        }
    };
    let (a, b) = tokio::join!(tokio::spawn(run(c2s, true)), tokio::spawn(run(s2c, false)));
    a.unwrap();
    b.unwrap();
}

#[tokio::test]
async fn a_million_correlation_ids_stay_within_max_connections() {
    // Distinct correlation ids (one frame each) over 4 pipelined v2 connections, with
    // --max-connections 1000: the tracked-connection gauge never exceeds the bound, RSS stays
    // flat while the ids pour in, and once they go idle every one is evicted.
    //
    // The issue asks for 1,000,000 ids; in a debug build on 2 shared cores that takes ~130 s, so
    // the default is 300,000 (~40 s) and FAULTS_IDS=1000000 runs the full million. Measured
    // (debug build, RSS in KiB): 100,000 ids in 12 s, baseline 20,024, peak 34,992, after
    // eviction 34,048; 1,000,000 ids in 129 s, baseline 20,040, peak 37,640, after eviction
    // 37,212, peak tracked 1000 in both. RSS rises by ~15 MB (the 1000 tracked connections and
    // the allocator's pools) and then stays flat; freed state is reused rather than returned to
    // the system, so RSS after eviction stays near the peak instead of dropping to the baseline.
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const IDS: u64 = 300_000;
    const CONNECTIONS: u64 = 4;
    let ids: u64 = std::env::var("FAULTS_IDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(IDS);
    let agent = AgentConfig::default()
        .args(["--max-connections", "1000", "--idle-timeout", "1"])
        .with_metrics()
        .start();
    let baseline = agent.rss_kib();
    let started = std::time::Instant::now();
    let answered = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..CONNECTIONS {
        let stream = raw::v2_connect(agent.socket()).await;
        let (read, mut write) = stream.into_split();
        let count = ids / CONNECTIONS + u64::from(c < ids % CONNECTIONS);
        tasks.push(tokio::spawn(async move {
            let mut batch = Vec::with_capacity(256 * 1024);
            for n in 0..count {
                let frame = event(&format!("id-{c}-{n}"), "text", b"hi", true, true);
                batch.extend_from_slice(&raw::v2_bytes(0x15, &serde_json::to_vec(&frame).unwrap()));
                if batch.len() > 200 * 1024 {
                    write.write_all(&batch).await.unwrap();
                    batch.clear();
                }
            }
            write.write_all(&batch).await.unwrap();
            // Keep the write half open until every answer has arrived.
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }));
        let answered = Arc::clone(&answered);
        tasks.push(tokio::spawn(async move {
            let mut reader = tokio::io::BufReader::with_capacity(256 * 1024, read);
            let mut payload = Vec::new();
            let mut got = 0;
            while got < count {
                let length = reader.read_u32().await.expect("answers keep coming") as usize;
                payload.resize(length, 0);
                reader.read_exact(&mut payload).await.unwrap();
                if payload[0] == 0x20 {
                    assert!(payload.windows(5).any(|w| w == b"allow"));
                    got += 1;
                    answered.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let mut peak_tracked = 0.0f64;
    let mut peak_rss = baseline;
    let mut halfway_rss = None;
    while answered.load(Ordering::Relaxed) < ids {
        if halfway_rss.is_none() && answered.load(Ordering::Relaxed) >= ids / 2 {
            halfway_rss = Some(agent.rss_kib());
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "only {} of {ids} answered",
            answered.load(Ordering::Relaxed)
        );
        let tracked = agent.metric("ws_agent_tracked_connections").unwrap_or(0.0);
        assert!(tracked <= 1000.0, "{tracked} connections tracked");
        peak_tracked = peak_tracked.max(tracked);
        peak_rss = peak_rss.max(agent.rss_kib());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let elapsed = started.elapsed();
    for task in &tasks {
        task.abort();
    }
    eventually(Duration::from_secs(20), "idle ids evicted", || {
        agent.metric("ws_agent_tracked_connections") == Some(0.0)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = agent.rss_kib();
    eprintln!(
        "{ids} ids in {elapsed:?}: peak tracked {peak_tracked}, RSS KiB baseline {baseline}, \
         halfway {halfway_rss:?}, peak {peak_rss}, after eviction {after}"
    );
    assert!(
        peak_rss - baseline < 256 * 1024,
        "RSS grew from {baseline} to {peak_rss} KiB"
    );
    assert!(after <= peak_rss);
    // Flat: the second half of the ids costs (next to) nothing more.
    let halfway = halfway_rss.unwrap_or(baseline);
    assert!(
        peak_rss.saturating_sub(halfway) < 16 * 1024,
        "RSS kept growing: {halfway} KiB halfway, {peak_rss} KiB at the end"
    );
    // Every id but the last 1000 was evicted while the ids poured in: by capacity, or, on a
    // machine so loaded that an id waited over --idle-timeout (1 s) before 1000 newer ones came,
    // by the idle sweep (seen at load average 10 with this binary and with main's alike).
    let evicted = |reason: &str| {
        agent
            .metric(&format!("ws_agent_evictions_total{{reason=\"{reason}\"}}"))
            .unwrap_or(0.0)
    };
    let (capacity, idle) = (evicted("capacity"), evicted("idle"));
    assert!(
        capacity + idle >= ids as f64 && capacity >= (ids / 2) as f64,
        "evicted by capacity {capacity}, idle {idle} of {ids}"
    );
}

#[tokio::test]
async fn slow_custom_patterns_stay_linear_and_oversized_ones_are_refused() {
    // Patterns that make a backtracking engine take exponential time on "aaaa…!" are decided in
    // linear time by the regex crate: a 1 MiB frame (the proxies' largest) against both.
    let agent = AgentConfig::default()
        .args([
            "--custom-patterns",
            "(a+)+$",
            "--custom-patterns",
            "(a|aa)*b",
        ])
        .start();
    let mut stream = raw::v2_connect(agent.socket()).await;
    let mut text = vec![b'a'; 1024 * 1024 - 1];
    text.push(b'!');
    let started = std::time::Instant::now();
    let answer = raw::v2_call(&mut stream, &event("redos", "text", &text, true, true)).await;
    let took = started.elapsed();
    assert_eq!(verdict(&answer), "allow", "{answer}");
    eprintln!("1 MiB against (a+)+$ and (a|aa)*b: {took:?}");
    assert!(took < Duration::from_secs(8), "{took:?}");
    // ...and they still match what they describe.
    let answer = raw::v2_call(&mut stream, &event("redos", "text", b"aaab", true, true)).await;
    assert_eq!(verdict(&answer), "1008");
    assert_eq!(answer["audit"]["rule_ids"][0], "custom-1");

    // A pattern whose compiled program exceeds the size limit is a start-up error naming it.
    let huge = r"(?:\w{100}){100}";
    let (status, stderr) =
        conformance::run_to_exit(&["--custom-patterns", "ok", "--custom-patterns", huge], &[]);
    assert!(!status.success());
    assert!(
        stderr.contains("custom-patterns") && stderr.contains("#1"),
        "{stderr}"
    );
    assert!(
        stderr.contains(huge) && stderr.contains("size limit"),
        "{stderr}"
    );
    // Pushed at run time, it is rejected the same way and the running patterns stay.
    let config =
        serde_json::json!({"config": {"custom-patterns": [huge]}, "correlation_id": "cfg-huge"});
    let answer = configure_v2(&mut stream, &config).await;
    assert_eq!(answer["decision"]["block"]["status"], 500, "{answer}");
    let reason = answer["decision"]["block"]["body"].as_str().unwrap();
    assert!(
        reason.contains("custom-patterns") && reason.contains("size limit"),
        "{reason}"
    );
    let answer = raw::v2_call(&mut stream, &event("redos", "text", b"aab", true, true)).await;
    assert_eq!(verdict(&answer), "1008");
}

/// Sends a v2 Configure (0x17) and reads its answer.
async fn configure_v2(
    stream: &mut tokio::net::UnixStream,
    message: &serde_json::Value,
) -> serde_json::Value {
    use tokio::io::AsyncWriteExt;
    stream
        .write_all(&raw::v2_bytes(0x17, &serde_json::to_vec(message).unwrap()))
        .await
        .unwrap();
    let (kind, payload) = raw::v2_read(stream).await.expect("a configure answer");
    assert_eq!(kind, 0x20);
    assert!(payload.len() < 2048, "an answer of {} bytes", payload.len());
    serde_json::from_slice(&payload).unwrap()
}

#[tokio::test]
async fn huge_and_wrongly_typed_configure_values_are_rejected_naming_the_key() {
    use serde_json::json;
    // Built before connecting: a v1 connection that sends no first message within
    // --read-timeout is closed, and a debug build on a loaded machine can take that long here.
    let five_mib_object = {
        let mut object = serde_json::Map::new();
        for n in 0..100_000 {
            object.insert(format!("key-{n:08}"), json!("v".repeat(40)));
        }
        serde_json::Value::Object(object)
    };
    assert!(serde_json::to_vec(&five_mib_object).unwrap().len() >= 5 * 1024 * 1024);
    let agent = AgentConfig::default().with_metrics().start();
    let mut v1 = tokio::net::UnixStream::connect(agent.socket())
        .await
        .unwrap();
    let mut v2 = raw::v2_connect(agent.socket()).await;
    let cases = [
        json!({"block-mode": five_mib_object}),
        json!({"custom-patterns": "a".repeat(5 * 1024 * 1024)}),
        json!({"schema-direction": five_mib_object}),
        json!({"max-connections": "lots"}),
        json!({"idle-timeout": -1}),
        json!({"idle-timeout": 0}),
        json!({"xss-detection": [true]}),
        json!({"custom-patterns": 5}),
        json!({"json-schema": 42}),
        json!({"json-schema": {"type": "nonsense"}}),
        json!({"schema-direction": "sideways"}),
        json!({"max-text-frame-size": 1.5}),
        json!({"rate-limit-burst": 99_999_999_999u64}),
        json!({"msgpack-schema": {"type": "object"}}),
    ];
    let mut rejected = 0;
    for (n, config) in cases.iter().enumerate() {
        let key = config.as_object().unwrap().keys().next().unwrap().clone();
        // A push over --max-config-bytes (1 MiB) is refused unparsed, naming that bound.
        let oversized = serde_json::to_vec(config).unwrap().len() > 1024 * 1024;
        let expected_key = if oversized {
            "max-config-bytes".to_string()
        } else if key == "msgpack-schema" {
            "msgpack-validation".to_string()
        } else {
            key.clone()
        };
        // v1 configure event.
        let started = std::time::Instant::now();
        let answer = raw::v1_call(
            &mut v1,
            "configure",
            &json!({"agent_id": "faults", "config": config}),
        )
        .await;
        let reason = answer["decision"]["block"]["body"]
            .as_str()
            .unwrap_or_else(|| panic!("{key}: accepted: {answer}"));
        assert!(reason.contains(&expected_key), "{key}: {reason}");
        assert!(
            reason.len() <= 520,
            "{key}: a reason of {} bytes",
            reason.len()
        );
        // Rejected promptly: a 5 MiB pattern is refused by its length, before the regex parser
        // spends seconds on it (this took ~14 s per push in a debug build before).
        let took = started.elapsed();
        eprintln!("{key}: rejected in {took:?}");
        assert!(took < Duration::from_secs(5), "{key}: rejected in {took:?}");
        // v2 Configure message.
        let answer = configure_v2(
            &mut v2,
            &json!({"config": config, "correlation_id": format!("cfg-{n}")}),
        )
        .await;
        let reason = answer["decision"]["block"]["body"]
            .as_str()
            .unwrap_or_else(|| panic!("{key}: accepted: {answer}"));
        assert!(reason.contains(&expected_key), "{key}: {reason}");
        assert_eq!(
            answer["audit"]["custom"]["correlation_id"],
            format!("cfg-{n}")
        );
        rejected += 2;
    }
    // A v2 handshake carrying a bad configuration is refused, naming the key.
    {
        use tokio::io::AsyncWriteExt;
        let mut stream = tokio::net::UnixStream::connect(agent.socket())
            .await
            .unwrap();
        let hello = json!({"supported_versions": [2], "proxy_id": "zentinel-proxy", "proxy_version": "0.6.54",
                           "config": {"block-mode": five_mib_object}});
        stream
            .write_all(&raw::v2_bytes(0x01, &serde_json::to_vec(&hello).unwrap()))
            .await
            .unwrap();
        let (kind, payload) = raw::v2_read(&mut stream).await.unwrap();
        assert_eq!(kind, 0x02);
        assert!(
            payload.len() < 4096,
            "a handshake answer of {} bytes",
            payload.len()
        );
        let answer: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(answer["success"], false);
        assert!(
            answer["error"]
                .as_str()
                .unwrap()
                .contains("max-config-bytes"),
            "{answer}"
        );
        rejected += 1;
    }
    // The running configuration is unchanged and served.
    assert_eq!(
        agent.metric("ws_agent_config_reloads_total{result=\"rejected\"}"),
        Some(rejected as f64)
    );
    assert_eq!(
        agent
            .metric("ws_agent_config_reloads_total{result=\"applied\"}")
            .unwrap_or(0.0),
        0.0
    );
    let attack = event("after", "text", b"<script>alert(1)</script>", true, true);
    assert_eq!(verdict(&raw::v2_call(&mut v2, &attack).await), "1008");
    let fine = event("after", "text", b"aaaa", true, true);
    assert_eq!(
        verdict(&raw::v1_call(&mut v1, "web_socket_frame", &fine).await),
        "allow"
    );
    // No log line carries the huge values.
    let longest = agent.log().lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 8192, "a log line of {longest} bytes");
}
