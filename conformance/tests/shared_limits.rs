//! Per-client-IP budgets (issue 17), through the real binary and a real redis-server: two agents
//! sharing one Redis hold one budget per IP; another IP is unaffected; Redis stopped and restarted
//! mid-run never makes a frame wait and the limits fall back and come back; a Redis that answers
//! garbage or never answers leaves frames decided at once and health DEGRADED; without Redis the
//! budget is counted in the agent across connections. Budgets are per route and IP: a route with
//! its own `ip-*` limits has its own budget (and its own Redis keys); routes without share the
//! default one. A frame without a client IP takes the one its upgrade request (RequestHeaders)
//! named; one with none at all is counted, never silently skipped.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use conformance::raw::{self, v1_call, verdict};
use conformance::redis::{BrokenRedis, Misbehaviour, RedisServer};
use conformance::{Agent, AgentConfig};
use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::net::UnixStream;

/// No frame may take longer than this, whatever Redis does (the agent never waits for it).
const FRAME_DEADLINE: Duration = Duration::from_millis(100);

/// One decided frame: when it was sent (since the run started), whether it was allowed, how long
/// its answer took.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Duration,
    allowed: bool,
    latency: Duration,
}

fn frame(cid: &str, ip: &str) -> Value {
    let mut event = raw::event(cid, "text", b"hello shared budget", true, true);
    event["client_ip"] = ip.into();
    event
}

/// The two load tests measure rates and latencies against Redis's 20 ms call deadline: they run
/// alone (the other tests of this file, each with its own agents and Redis, take the machine's
/// two cores otherwise, and a late lease call is, by design, a fallback to local counting).
static MACHINE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// Sends one frame of `ip`; asserts that a refusal is the per-IP close.
async fn send(stream: &mut UnixStream, cid: &str, ip: &str) -> bool {
    send_event(stream, &frame(cid, ip)).await
}

/// Sends one frame of `ip` on `route` (no route id with `None`).
async fn send_on(stream: &mut UnixStream, route: Option<&str>, cid: &str, ip: &str) -> bool {
    let mut event = frame(cid, ip);
    event["route_id"] = route.into();
    send_event(stream, &event).await
}

/// Sends one v1 frame event; true when allowed, false when refused by the per-IP budget.
async fn send_event(stream: &mut UnixStream, event: &Value) -> bool {
    let answer = v1_call(stream, "web_socket_frame", event).await;
    match verdict(&answer).as_str() {
        "allow" => true,
        "1008" => {
            let tags = answer["audit"]["tags"].as_array().expect("tags");
            assert!(tags.iter().any(|t| t == "ws-ip-rate-limit"), "{answer}");
            false
        }
        other => panic!("unexpected decision {other}: {answer}"),
    }
}

/// Drives `ip` at `rate` frames per second over `connections` proxy connections (each its own
/// WebSocket) until `until` (measured from `start`), recording every frame.
async fn drive(
    socket: PathBuf,
    ip: &'static str,
    rate: f64,
    connections: usize,
    start: Instant,
    until: Duration,
    samples: Arc<Mutex<Vec<Sample>>>,
) {
    let mut tasks = Vec::new();
    for c in 0..connections {
        let socket = socket.clone();
        let samples = Arc::clone(&samples);
        tasks.push(tokio::spawn(async move {
            let mut stream = UnixStream::connect(&socket).await.unwrap();
            let cid = format!("drive-{ip}-{c}-{}", std::process::id());
            let period = Duration::from_secs_f64(connections as f64 / rate);
            let mut ticker = tokio::time::interval(period);
            while start.elapsed() < until {
                ticker.tick().await;
                let sent = Instant::now();
                let allowed = send(&mut stream, &cid, ip).await;
                let sample = Sample {
                    at: sent - start,
                    allowed,
                    latency: sent.elapsed(),
                };
                samples.lock().unwrap().push(sample);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

/// (allowed per second, frames sent per second) of the samples sent within `[from, to)`.
fn rates(samples: &[Sample], from: Duration, to: Duration) -> (f64, f64) {
    let window: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at >= from && s.at < to)
        .collect();
    let secs = (to - from).as_secs_f64();
    let allowed = window.iter().filter(|s| s.allowed).count() as f64;
    (allowed / secs, window.len() as f64 / secs)
}

fn slowest(samples: &[Sample]) -> Duration {
    samples.iter().map(|s| s.latency).max().unwrap_or_default()
}

/// Polls a metric until it has `value` (the agent's own view of whether Redis answers).
fn wait_for_metric(agent: &Agent, series: &str, value: f64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let now = agent.metric(series);
        if now == Some(value) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{series} stayed {now:?}, expected {value}:\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn agent_with_redis(url: &str, messages_per_sec: u32, peers: u32) -> Agent {
    AgentConfig::default()
        .args(["--redis-url", url])
        .args(["--ip-max-messages-per-sec", &messages_per_sec.to_string()])
        .args(["--ip-burst", "0", "--redis-peers-hint", &peers.to_string()])
        .args(["--report-interval-ms", "200"])
        .with_metrics()
        .start()
}

/// The issue's target: two agents, one IP, a 1,000 messages/s budget, each agent driven at
/// 1,500/s: the total allowed is 1,000/s +- 10 % over 10 s. (The first second spends the full
/// bucket every token bucket starts with and is left out of the window.) Another IP, driven
/// through the first agent at the same time far under the budget, loses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_agents_sharing_redis_hold_one_budget_per_ip_and_other_ips_are_unaffected() {
    let _alone = MACHINE.write().await;
    let redis = RedisServer::start();
    let agents = [
        agent_with_redis(&redis.url(), 1000, 2),
        agent_with_redis(&redis.url(), 1000, 2),
    ];
    for agent in &agents {
        wait_for_metric(
            agent,
            "ws_agent_redis_fallback",
            0.0,
            Duration::from_secs(10),
        );
    }
    // A lease call answered after the 20 ms deadline switches that agent to local counting
    // until a probe 100 ms later answers (by design: no frame waits), and meanwhile it allows
    // the budget divided by the peers hint (500/s) on its own. On a busy shared machine that
    // happens now and then, so each such episode is allowed for: at most 250 ms at 500/s,
    // spread over the 10 s window (12.5/s per episode). Without episodes the bound is +- 10 %.
    let fallbacks = |agents: &[Agent]| -> f64 {
        agents
            .iter()
            .map(|a| a.metric("ws_agent_redis_fallbacks_total").unwrap_or(0.0))
            .sum()
    };
    let fallbacks_before = fallbacks(&agents);
    let start = Instant::now();
    let until = Duration::from_secs(11);
    let heavy = Arc::new(Mutex::new(Vec::new()));
    let other = Arc::new(Mutex::new(Vec::new()));
    let mut runs = Vec::new();
    for agent in &agents {
        runs.push(tokio::spawn(drive(
            agent.socket().to_owned(),
            "198.51.100.7",
            1500.0,
            6,
            start,
            until,
            Arc::clone(&heavy),
        )));
    }
    runs.push(tokio::spawn(drive(
        agents[0].socket().to_owned(),
        "192.0.2.44",
        50.0,
        1,
        start,
        until,
        Arc::clone(&other),
    )));
    for run in runs {
        run.await.unwrap();
    }
    let heavy = heavy.lock().unwrap().clone();
    let (allowed, offered) = rates(&heavy, Duration::from_secs(1), until);
    let episodes = fallbacks(&agents) - fallbacks_before;
    let ceiling = 1100.0 + episodes * 12.5;
    eprintln!(
        "two agents, one IP, budget 1000/s: offered {offered:.0}/s, allowed {allowed:.0}/s ({:.3} of the budget), {episodes} late-answer fallback episodes, ceiling {ceiling:.0}/s",
        allowed / 1000.0
    );
    assert!(
        offered >= 2400.0,
        "the drive did not reach 2 x 1,500/s (offered {offered:.0}/s): the figure would prove nothing"
    );
    assert!(
        episodes <= 16.0,
        "{episodes} fallback episodes in 11 s: Redis was not shared long enough to measure"
    );
    assert!(
        (900.0..=ceiling).contains(&allowed),
        "allowed {allowed:.0}/s, budget 1000/s +- 10 % (+ {:.0}/s for {episodes} fallback episodes)",
        ceiling - 1100.0
    );
    let other = other.lock().unwrap().clone();
    assert!(other.len() >= 400, "{} frames of the other IP", other.len());
    assert!(
        other.iter().all(|s| s.allowed),
        "another IP lost frames to the first IP's budget"
    );
    for agent in &agents {
        // Sharing again (a late answer's fallback ends with the next probe).
        wait_for_metric(
            agent,
            "ws_agent_redis_fallback",
            0.0,
            Duration::from_secs(5),
        );
        assert!(agent.metric("ws_agent_ip_leases_total").unwrap_or(0.0) > 10.0);
        assert!(agent.metric("ws_agent_ip_over_budget_total").unwrap_or(0.0) >= 1.0);
    }
}

/// Redis killed mid-run and restarted on the same port: no frame waits (none over 100 ms), the
/// limit falls back to the budget divided by the peers hint while Redis is gone, health says why,
/// and the shared budget comes back with Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_stopped_and_restarted_no_frame_waits_and_limits_fall_back_and_come_back() {
    let _alone = MACHINE.write().await;
    let mut redis = RedisServer::start();
    let agent = agent_with_redis(&redis.url(), 200, 2);
    wait_for_metric(
        &agent,
        "ws_agent_redis_fallback",
        0.0,
        Duration::from_secs(10),
    );
    let start = Instant::now();
    let until = Duration::from_secs(60);
    let samples = Arc::new(Mutex::new(Vec::new()));
    let run = tokio::spawn(drive(
        agent.socket().to_owned(),
        "198.51.100.8",
        400.0,
        2,
        start,
        until,
        Arc::clone(&samples),
    ));
    // Until the first lease answer an IP is counted locally (capacity / peers hint), and the
    // Redis bucket starts full: at 400/s against 200/s both are spent within about 1.5 s.
    let shared_phase = (Duration::from_millis(2500), Duration::from_millis(4500));
    tokio::time::sleep_until((start + shared_phase.1).into()).await;
    redis.stop();
    let agent_ref = &agent;
    tokio::task::block_in_place(|| {
        wait_for_metric(
            agent_ref,
            "ws_agent_redis_fallback",
            1.0,
            Duration::from_secs(5),
        )
    });
    let fell_back = start.elapsed() + Duration::from_millis(500);
    let (state, message) = tokio::task::block_in_place(|| health(agent_ref));
    let fallback_phase = (fell_back, fell_back + Duration::from_secs(2));
    tokio::time::sleep_until((start + fallback_phase.1).into()).await;
    redis.restart();
    tokio::task::block_in_place(|| {
        wait_for_metric(
            agent_ref,
            "ws_agent_redis_fallback",
            0.0,
            Duration::from_secs(15),
        )
    });
    // A restarted Redis has lost its buckets: the new one starts full, as at the very start,
    // and the first second spends that.
    let back = start.elapsed() + Duration::from_millis(1500);
    let back_phase = (back, back + Duration::from_secs(2));
    tokio::time::sleep_until((start + back_phase.1).into()).await;
    // Stop the drive.
    run.abort();
    let _ = run.await;
    let samples = samples.lock().unwrap().clone();
    let (shared, _) = rates(&samples, shared_phase.0, shared_phase.1);
    let (fallback, _) = rates(&samples, fallback_phase.0, fallback_phase.1);
    let (restored, _) = rates(&samples, back_phase.0, back_phase.1);
    eprintln!(
        "budget 200/s, peers hint 2, offered 400/s: shared {shared:.0}/s, Redis down {fallback:.0}/s, back {restored:.0}/s; {} frames, slowest {:?}",
        samples.len(),
        slowest(&samples)
    );
    // On a machine shared with compilers a scheduler hiccup can hold any one frame; the
    // agent's own waiting would show as many (every frame while Redis is gone), so the 99.9th
    // percentile is what is held to the deadline.
    let mut latencies: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
    latencies.sort();
    let p999 = latencies[latencies.len() * 999 / 1000];
    assert!(p999 < FRAME_DEADLINE, "99.9th percentile {p999:?}");
    assert_eq!(state, 2, "health while Redis is down: {message}");
    assert!(
        message.contains("per-IP limits counted locally"),
        "{message}"
    );
    assert!((170.0..=230.0).contains(&shared), "shared {shared:.0}/s");
    assert!(
        (80.0..=125.0).contains(&fallback),
        "fallback {fallback:.0}/s"
    );
    assert!(
        (170.0..=230.0).contains(&restored),
        "restored {restored:.0}/s"
    );
    assert!(agent.metric("ws_agent_redis_errors_total").unwrap_or(0.0) >= 1.0);
    // At least the outage (a slow first call to the restarted Redis may count once more).
    assert!(
        agent
            .metric("ws_agent_redis_fallbacks_total")
            .unwrap_or(0.0)
            >= 1.0
    );
    assert!(agent.log().contains("Redis unavailable"), "{}", agent.log());
}

/// The first DEGRADED v2 health report within 5 s (the monitor looks every 250 ms and reports a
/// change at once), or the last report seen.
fn health(agent: &Agent) -> (i64, String) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let mut stream = raw::v2_connect(agent.socket()).await;
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let report = next_health(&mut stream).await;
                if report.0 == 2 || Instant::now() > deadline {
                    return report;
                }
            }
        })
}

async fn next_health(stream: &mut UnixStream) -> (i64, String) {
    loop {
        let length = tokio::time::timeout(raw::TIMEOUT, stream.read_u32())
            .await
            .expect("a report in time")
            .unwrap() as usize;
        let kind = stream.read_u8().await.unwrap();
        let mut payload = vec![0; length - 1];
        stream.read_exact(&mut payload).await.unwrap();
        if kind == 0x30 {
            let report: Value = serde_json::from_slice(&payload).unwrap();
            return (
                report["state"].as_i64().unwrap(),
                report["message"].as_str().unwrap_or("").to_string(),
            );
        }
    }
}

async fn broken_redis_case(misbehaviour: Misbehaviour) {
    let broken = BrokenRedis::start(misbehaviour);
    // Limit 20/s, peers hint 2: locally 10/s (no burst) while Redis does not answer.
    let agent = agent_with_redis(&broken.url(), 20, 2);
    let mut health_stream = raw::v2_connect(agent.socket()).await;
    let (state, message) = loop {
        let (state, message) = next_health(&mut health_stream).await;
        if state == 2 {
            break (state, message);
        }
    };
    assert_eq!(state, 2);
    assert!(message.contains("Redis"), "{misbehaviour:?}: {message}");
    let mut stream = UnixStream::connect(agent.socket()).await.unwrap();
    let mut allowed = 0;
    let mut slowest = Duration::ZERO;
    for _ in 0..30 {
        let started = Instant::now();
        if send(&mut stream, "broken-redis", "198.51.100.9").await {
            allowed += 1;
        }
        slowest = slowest.max(started.elapsed());
    }
    eprintln!("{misbehaviour:?} Redis: {allowed} of 30 allowed, slowest frame {slowest:?}, health {message:?}");
    assert!(
        slowest < FRAME_DEADLINE,
        "{misbehaviour:?}: a frame took {slowest:?}"
    );
    // The local fallback budget (10 at once) decides, neither everything nor nothing.
    assert!(
        (10..=12).contains(&allowed),
        "{misbehaviour:?}: {allowed} allowed"
    );
    assert!(Path::new(agent.socket()).exists());
}

/// A "Redis" that answers garbage: frames are decided at once from the local fallback, health is
/// DEGRADED and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_answering_garbage_leaves_frames_decided_and_health_degraded() {
    let _shared = MACHINE.read().await;
    broken_redis_case(Misbehaviour::Garbage).await;
}

/// A "Redis" that accepts and never answers: the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_hangs_leaves_frames_decided_and_health_degraded() {
    let _shared = MACHINE.read().await;
    broken_redis_case(Misbehaviour::Hang).await;
}

/// Without --redis-url the per-IP budget is counted in the agent, across every connection of the
/// IP; another IP has its own.
#[tokio::test]
async fn without_redis_the_ip_budget_spans_the_connections_of_one_agent() {
    let _shared = MACHINE.read().await;
    let agent = AgentConfig::default()
        .args(["--ip-max-messages-per-sec", "3", "--ip-burst", "0"])
        .start();
    let mut stream = UnixStream::connect(agent.socket()).await.unwrap();
    let mut allowed = 0;
    for n in 0..9 {
        if send(&mut stream, &format!("local-{n}"), "203.0.113.50").await {
            allowed += 1;
        }
    }
    assert_eq!(
        allowed, 3,
        "three connections of one IP share its 3 messages"
    );
    assert!(send(&mut stream, "local-other", "203.0.113.51").await);
}

/// Routes and budgets for the per-route tests: the default budget holds 3 messages at once,
/// `tight` its own 2, `roomy` its own 10 (it sets only `ip-burst`, which is enough to make the
/// budget its own); `chat-*` and `news` set no `ip-*` key and share the default budget. Every
/// rate is 1 message/s, so a test of a few dozen frames sees no refill worth a message.
const ROUTE_BUDGETS: &str = r#"
[default]
ip-max-messages-per-sec = 1
ip-burst = 2

[[route]]
match = "tight"
ip-burst = 1

[[route]]
match = "roomy"
ip-burst = 9

[[route]]
match = "chat-*"
name = "chat"
max-message-size = 65536

[[route]]
match = "news"
"#;

fn route_budget_agent(extra: &[&str]) -> (Agent, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.toml");
    std::fs::write(&path, ROUTE_BUDGETS).unwrap();
    let agent = AgentConfig::default()
        .args(["--policy-file", path.to_str().unwrap()])
        .args(extra.iter().copied())
        .with_metrics()
        .start();
    (agent, dir)
}

/// Frames of `ip` on `route`, each on a WebSocket of its own, until `count`; how many were
/// allowed.
async fn allowed_on(
    stream: &mut UnixStream,
    route: Option<&str>,
    ip: &str,
    tag: &str,
    count: usize,
) -> usize {
    let mut allowed = 0;
    for n in 0..count {
        if send_on(stream, route, &format!("{tag}-{n}"), ip).await {
            allowed += 1;
        }
    }
    allowed
}

/// Without Redis: one IP over its budget on a route with its own (smaller) budget stays allowed
/// on a route with its own larger one; two routes without their own budget (and frames without
/// a route id) share the default budget.
#[tokio::test]
async fn each_route_with_its_own_ip_limits_has_its_own_budget_and_the_others_share_the_default() {
    let _shared = MACHINE.read().await;
    let (agent, _dir) = route_budget_agent(&[]);
    let mut stream = UnixStream::connect(agent.socket()).await.unwrap();
    let ip = "203.0.113.60";
    assert_eq!(
        allowed_on(&mut stream, Some("tight"), ip, "tight", 5).await,
        2
    );
    assert_eq!(
        allowed_on(&mut stream, Some("roomy"), ip, "roomy", 12).await,
        10,
        "`roomy` has its own budget, untouched by `tight`'s"
    );
    // `chat-eu` and `news` share the default budget of 3, which `tight` and `roomy` left alone.
    let mut shared = 0;
    for n in 0..3 {
        shared += allowed_on(&mut stream, Some("chat-eu"), ip, &format!("chat{n}"), 1).await;
        shared += allowed_on(&mut stream, Some("news"), ip, &format!("news{n}"), 1).await;
    }
    assert_eq!(shared, 3, "two routes without ip-* limits share one budget");
    assert_eq!(
        allowed_on(&mut stream, None, ip, "no-route", 2).await,
        0,
        "frames without a route id count against the default budget too"
    );
    // Budgets are still per IP.
    assert_eq!(
        allowed_on(&mut stream, Some("tight"), "203.0.113.61", "other", 2).await,
        2
    );
    // Per-IP state: (tight, roomy, default) for the first IP, tight for the second.
    assert_eq!(agent.metric("ws_agent_tracked_ips"), Some(4.0));
}

/// With Redis: each route with its own budget leases from keys of its own
/// (`sentinel-ws:ip:route:NAME:{IP}:messages`); routes without one use the default keys
/// (`sentinel-ws:ip:{IP}:messages`, as before routes had budgets); and `tight` going over its
/// budget leaves `roomy` allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_each_route_budget_leases_from_keys_of_its_own() {
    let _shared = MACHINE.read().await;
    let redis = RedisServer::start();
    let (agent, _dir) = route_budget_agent(&["--redis-url", &redis.url()]);
    wait_for_metric(
        &agent,
        "ws_agent_redis_fallback",
        0.0,
        Duration::from_secs(10),
    );
    let mut stream = UnixStream::connect(agent.socket()).await.unwrap();
    let ip = "203.0.113.70";
    // Until its first lease answer a budget is also counted locally, so `tight` may allow a
    // little more than its 2; it must go over within a few frames all the same.
    let mut refused_at = None;
    for n in 0..20 {
        if !send_on(&mut stream, Some("tight"), &format!("tight-{n}"), ip).await {
            refused_at = Some(n);
            break;
        }
    }
    let refused_at = refused_at.expect("`tight` never went over its budget of 2");
    assert!(refused_at <= 5, "`tight` allowed {refused_at} frames");
    // A fresh budget of its own: allowed at once (a budget keyed by the IP alone would be the
    // one `tight` just spent). How many more follow depends on when leases answer.
    assert!(
        send_on(&mut stream, Some("roomy"), "roomy", ip).await,
        "`roomy` has its own budget"
    );
    assert!(send_on(&mut stream, Some("news"), "news", ip).await);
    let expected: std::collections::BTreeSet<String> = [
        format!("sentinel-ws:ip:route:roomy:{{{ip}}}:messages"),
        format!("sentinel-ws:ip:route:tight:{{{ip}}}:messages"),
        format!("sentinel-ws:ip:{{{ip}}}:messages"),
    ]
    .into_iter()
    .collect();
    // Leases are asked off the frame path, and a key expires once its bucket would be full
    // again: collect what shows up until every expected key was seen.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = std::collections::BTreeSet::new();
    while !expected.is_subset(&seen) && Instant::now() < deadline {
        seen.extend(redis.keys("sentinel-ws:*"));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen, expected);
}

/// At low rates a lease still covers the IP's burst: with 1 message/s and a burst of 4 the first
/// lease holds five messages, so of eight sent at once after it five are allowed (six if Redis
/// refilled a token meanwhile), not the one token 0.2 s of the rate would be. An attempt during
/// which the agent fell back to local counting (a late Redis answer on a busy host) proves
/// nothing and is repeated with another IP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_a_lease_covers_the_burst_at_low_rates() {
    let _shared = MACHINE.read().await;
    let redis = RedisServer::start();
    let agent = AgentConfig::default()
        .args(["--redis-url", &redis.url()])
        .args(["--ip-max-messages-per-sec", "1", "--ip-burst", "4"])
        .with_metrics()
        .start();
    let mut stream = UnixStream::connect(agent.socket()).await.unwrap();
    for attempt in 0..3 {
        wait_for_metric(
            &agent,
            "ws_agent_redis_fallback",
            0.0,
            Duration::from_secs(10),
        );
        let fallbacks = agent
            .metric("ws_agent_redis_fallbacks_total")
            .unwrap_or(0.0);
        let leases = agent.metric("ws_agent_ip_leases_total").unwrap_or(0.0);
        let ip = format!("203.0.113.{}", 90 + attempt);
        // The first frame is decided locally and asks for the IP's first lease.
        assert!(send(&mut stream, &format!("first-{attempt}"), &ip).await);
        // Until the lease is granted or the call failed (a fallback).
        let deadline = Instant::now() + Duration::from_secs(10);
        while agent.metric("ws_agent_ip_leases_total").unwrap_or(0.0) == leases
            && agent
                .metric("ws_agent_redis_fallbacks_total")
                .unwrap_or(0.0)
                == fallbacks
        {
            assert!(Instant::now() < deadline, "no lease:\n{}", agent.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut allowed = 0;
        for n in 0..8 {
            allowed += usize::from(send(&mut stream, &format!("burst-{attempt}-{n}"), &ip).await);
        }
        if agent
            .metric("ws_agent_redis_fallbacks_total")
            .unwrap_or(0.0)
            != fallbacks
        {
            eprintln!("attempt {attempt}: the agent fell back to local counting; again");
            continue;
        }
        assert!(
            (5..=6).contains(&allowed),
            "{allowed} of a burst of 8 allowed from the lease (1/s, burst 4)"
        );
        return;
    }
    panic!(
        "every attempt fell back to local counting:\n{}",
        agent.log()
    );
}

/// The upgrade request's client IP applies to frames that carry none (v1 here, with an empty
/// `client_ip`; gRPC v2 frames never carry one: tests/grpc.rs), and a frame with no IP at all is
/// counted in `ws_agent_frames_without_client_ip_total` and logged, not silently skipped.
#[tokio::test]
async fn frames_without_a_client_ip_take_their_upgrade_requests_ip_or_are_counted() {
    let _shared = MACHINE.read().await;
    let agent = AgentConfig::default()
        .args(["--ip-max-messages-per-sec", "1", "--ip-burst", "2"])
        .with_metrics()
        .start();
    let mut stream = UnixStream::connect(agent.socket()).await.unwrap();
    let headers = serde_json::json!({
        "metadata": {
            "correlation_id": "upgraded", "request_id": "r1", "client_ip": "203.0.113.80",
            "client_port": 50000, "server_name": null, "protocol": "HTTP/1.1",
            "tls_version": null, "tls_cipher": null, "route_id": "conformance",
            "upstream_id": null, "timestamp": "2025-01-01T00:00:00Z"
        },
        "method": "GET",
        "uri": "/ws",
        "headers": {"upgrade": ["websocket"], "connection": ["Upgrade"]}
    });
    let answer = v1_call(&mut stream, "request_headers", &headers).await;
    assert_eq!(answer["decision"], "allow", "{answer}");
    let mut allowed = 0;
    for _ in 0..5 {
        if send(&mut stream, "upgraded", "").await {
            allowed += 1;
        }
    }
    assert_eq!(
        allowed, 3,
        "the upgrade request's IP budget (3 at once) applies"
    );
    // The same IP's budget, from another connection that carries the IP itself.
    assert!(!send(&mut stream, "carries-it", "203.0.113.80").await);
    assert_eq!(
        agent
            .metric("ws_agent_frames_without_client_ip_total")
            .unwrap_or(0.0),
        0.0
    );

    for _ in 0..4 {
        assert!(send(&mut stream, "never-upgraded", "").await);
    }
    assert_eq!(
        agent.metric("ws_agent_frames_without_client_ip_total"),
        Some(4.0)
    );
    agent.wait_for_log("per-IP budgets cannot apply", Duration::from_secs(5));
}
