//! Criterion benchmarks of the per-frame stages outside the detectors: wire decode and encode,
//! base64, reassembly, token buckets, `pipeline::evaluate`, and the actor hops of
//! `Agent::decide` against a bare tokio round trip and a bare chain of two ractor actors (the
//! `actor/in_task/*` ones run from a spawned task, as a transport connection does).
//!
//! ```text
//! cargo bench --bench pipeline               # everything (about 2 minutes)
//! cargo bench --bench pipeline -- actor      # only names containing "actor"
//! ```
//!
//! Besides criterion's own report, the run ends with a table of the median time per iteration of
//! every benchmark that ran and, where a benchmark has a baseline measured in the same run, the
//! ratio to it (noise on a shared machine moves both alike).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use criterion::Criterion;
use metrics::{Key, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use sentinel_ws_agent::agent::Agent;
use sentinel_ws_agent::inspect::MessagePart;
use sentinel_ws_agent::limits::reassembly::{MessageKind, Reassembly};
use sentinel_ws_agent::limits::TokenBucket;
use sentinel_ws_agent::model::{Direction, Frame, Opcode, Verdict};
use sentinel_ws_agent::options::PolicyOptions;
use sentinel_ws_agent::pipeline::{evaluate, InspectJob, PipelineScratch};
use sentinel_ws_agent::policy::Policy;
use sentinel_ws_agent::telemetry::series::{SeriesTable, TeeRecorder};
use sentinel_ws_agent::telemetry::{histogram_bounds, names};
use sentinel_ws_agent::testdata::pseudo_random_bytes;
use sentinel_ws_agent::transport::json_wire::{decode_frame, encode_frame_response, FrameInterner};
use sentinel_ws_agent::transport::v1::decode_frame_request;
use serde::Deserialize;
use serde_json::value::RawValue;

/// Median nanoseconds per iteration of each sample, by benchmark name.
fn samples() -> &'static Mutex<BTreeMap<String, Vec<f64>>> {
    static SAMPLES: OnceLock<Mutex<BTreeMap<String, Vec<f64>>>> = OnceLock::new();
    SAMPLES.get_or_init(Default::default)
}

fn record(name: &str, iters: u64, elapsed: Duration) {
    let per_iter = elapsed.as_nanos() as f64 / iters.max(1) as f64;
    samples()
        .lock()
        .unwrap()
        .entry(name.to_string())
        .or_default()
        .push(per_iter);
}

/// Benchmarks `routine` under `name`, recording each sample for the ratio table.
fn bench<O>(c: &mut Criterion, name: &str, mut routine: impl FnMut() -> O) {
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(routine());
            }
            let elapsed = start.elapsed();
            record(name, iters, elapsed);
            elapsed
        })
    });
}

const CHAT: &str =
    "Hey, are we still on for lunch at noon? I can bring the slides for the quarterly review, ok?";

fn chat_100() -> Vec<u8> {
    let mut text = CHAT.as_bytes().to_vec();
    text.resize(100, b'!');
    text
}

fn binary(size: usize) -> Vec<u8> {
    pseudo_random_bytes(size, 0x9E37_79B9_7F4A_7C15)
}

fn frame_event(payload: &[u8], opcode: &str) -> String {
    let data = base64::engine::general_purpose::STANDARD.encode(payload);
    format!(
        r#"{{"correlation_id":"trace-0123456789abcdef","opcode":"{opcode}","data":"{data}","client_to_server":true,"frame_index":42,"fin":true,"route_id":"ws-route","client_ip":"127.0.0.1"}}"#
    )
}

/// The v1 envelope, as `transport::v1` reads it (that struct is private to the transport).
#[derive(Deserialize)]
struct V1Request<'a> {
    #[allow(dead_code)]
    #[serde(default)]
    version: Option<u64>,
    #[allow(dead_code)]
    #[serde(borrow)]
    event_type: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    payload: &'a RawValue,
}

fn codec(c: &mut Criterion) {
    let chat = chat_100();
    let v2_event = frame_event(&chat, "text");
    let v1_request = format!(
        r#"{{"version":1,"event_type":"web_socket_frame","payload":{}}}"#,
        v2_event
    );
    let id: Arc<str> = Arc::from("trace-0123456789abcdef");
    let mut interner = FrameInterner::default();
    bench(c, "decode/v2_frame_event_100B", || {
        decode_frame(v2_event.as_bytes(), &mut interner, |_| Arc::clone(&id)).unwrap()
    });
    bench(c, "decode/v1_frame_event_100B", || {
        decode_frame_request(v1_request.as_bytes(), &mut interner, |_| Arc::clone(&id))
            .unwrap()
            .unwrap()
    });
    // What the agent did before reading envelope and event in one pass.
    bench(c, "decode/v1_frame_event_100B_two_passes", || {
        let request: V1Request<'_> = serde_json::from_slice(v1_request.as_bytes()).unwrap();
        decode_frame(request.payload.get().as_bytes(), &mut interner, |_| {
            Arc::clone(&id)
        })
        .unwrap()
    });
    let big_event = frame_event(&binary(16 * 1024), "binary");
    bench(c, "decode/v2_frame_event_16KiB", || {
        decode_frame(big_event.as_bytes(), &mut interner, |_| Arc::clone(&id)).unwrap()
    });

    let allow = Verdict::allow();
    let mut out = Vec::with_capacity(512);
    bench(c, "encode/response_allow_v2", || {
        out.clear();
        encode_frame_response(&mut out, 2, &allow, Some("trace-0123456789abcdef"));
        out.len()
    });
    let close = {
        let mut v = Verdict::close(1008, "Policy violation: XSS detected");
        v.add_tag(sentinel_ws_agent::model::AuditTag::Xss);
        v.rule_ids.push("xss-script-tag".into());
        v
    };
    bench(c, "encode/response_close_v2", || {
        out.clear();
        encode_frame_response(&mut out, 2, &close, Some("trace-0123456789abcdef"));
        out.len()
    });
    // The floor of an allow answer: copying a prebuilt response.
    let prebuilt = out.clone();
    bench(c, "encode/baseline_copy_prebuilt", || {
        out.clear();
        out.extend_from_slice(&prebuilt);
        out.len()
    });

    let b64 = base64::engine::general_purpose::STANDARD;
    for (label, raw) in [("100B", chat.clone()), ("16KiB", binary(16 * 1024))] {
        let text = b64.encode(&raw);
        bench(c, &format!("base64/decode_alloc_{label}"), || {
            b64.decode(text.as_bytes()).unwrap()
        });
        let mut reused = Vec::with_capacity(raw.len());
        bench(c, &format!("base64/decode_reused_{label}"), || {
            reused.clear();
            b64.decode_vec(text.as_bytes(), &mut reused).unwrap();
            reused.len()
        });
    }
}

fn limits(c: &mut Criterion) {
    let policy = Policy::compile(PolicyOptions::default()).unwrap();
    let limits = policy.limits;
    let message = binary(1020);
    let parts: Vec<Bytes> = message.chunks(340).map(Bytes::copy_from_slice).collect();
    let mut reassembly = Reassembly::default();
    bench(c, "reassembly/push_3_fragments_1KiB", || {
        let a = reassembly
            .push(Opcode::Text, false, parts[0].clone(), &limits)
            .unwrap();
        let b = reassembly
            .push(Opcode::Continuation, false, parts[1].clone(), &limits)
            .unwrap();
        let c = reassembly
            .push(Opcode::Continuation, true, parts[2].clone(), &limits)
            .unwrap();
        (a, b, c)
    });
    let whole = Bytes::from(message.clone());
    bench(c, "reassembly/push_unfragmented_1KiB", || {
        reassembly
            .push(Opcode::Text, true, whole.clone(), &limits)
            .unwrap()
    });

    let mut bucket = TokenBucket::full(110.0, 0);
    let mut now = 0u64;
    bench(c, "token_bucket/try_take", || {
        now += 1_000_000;
        bucket.try_take(1.0, 100.0, 110.0, now)
    });
}

fn job(policy: &Arc<Policy>, kind: MessageKind, data: Vec<u8>) -> InspectJob {
    InspectJob {
        policy: Arc::clone(policy),
        kind,
        part: MessagePart::Complete,
        data: Bytes::from(data),
        direction: Direction::ClientToServer,
        prior: Verdict::allow(),
        whole_message: true,
    }
}

fn pipeline(c: &mut Criterion) {
    let policy = Arc::new(Policy::compile(PolicyOptions::default()).unwrap());
    let mut scratch = PipelineScratch::default();
    let chat = job(&policy, MessageKind::Text, chat_100());
    bench(c, "evaluate/chat_100B", || evaluate(&chat, &mut scratch));
    let attack = job(
        &policy,
        MessageKind::Text,
        br#"{"type":"chat.message","body":"<script>alert(document.cookie)</script>"}"#.to_vec(),
    );
    bench(c, "evaluate/xss_70B", || evaluate(&attack, &mut scratch));
    let binary_policy = Arc::new(
        Policy::compile(PolicyOptions {
            inspect_binary: true,
            ..PolicyOptions::default()
        })
        .unwrap(),
    );
    let big = job(&binary_policy, MessageKind::Binary, binary(64 * 1024));
    bench(c, "evaluate/binary_64KiB_inspect_binary", || {
        evaluate(&big, &mut scratch)
    });
}

fn actors(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let agent = runtime.block_on(async {
        let (agent, _handle) = Agent::start(Policy::compile(PolicyOptions::default()).unwrap(), 2)
            .await
            .unwrap();
        agent
    });
    let frame = Frame {
        correlation_id: Arc::from("trace-0123456789abcdef"),
        direction: Direction::ClientToServer,
        opcode: Opcode::Text,
        fin: true,
        payload: Bytes::from(chat_100()),
        route_id: Some(Arc::from("ws-route")),
        client_ip: Some(Arc::from("127.0.0.1")),
    };
    // Open the connection once so the loop measures the tracked case.
    runtime.block_on(agent.decide(frame.clone()));

    let timed = |name: &str, c: &mut Criterion, f: &dyn Fn(u64) -> Duration| {
        c.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let elapsed = f(iters);
                record(name, iters, elapsed);
                elapsed
            })
        });
    };
    timed("actor/agent_decide_chat_100B", c, &|iters| {
        runtime.block_on(async {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(agent.decide(frame.clone()).await);
            }
            start.elapsed()
        })
    });
    timed("actor/baseline_oneshot_spawned_task", c, &|iters| {
        runtime.block_on(async {
            let start = Instant::now();
            for _ in 0..iters {
                let (tx, rx) = tokio::sync::oneshot::channel();
                tokio::spawn(async move {
                    let _ = tx.send(Verdict::allow());
                });
                black_box(rx.await.unwrap());
            }
            start.elapsed()
        })
    });
    // One long-lived task answering over mpsc + oneshot: the cost of a single actor-like hop.
    let (requests, mut inbox) =
        tokio::sync::mpsc::unbounded_channel::<tokio::sync::oneshot::Sender<Verdict>>();
    runtime.spawn(async move {
        while let Some(reply) = inbox.recv().await {
            let _ = reply.send(Verdict::allow());
        }
    });
    timed("actor/baseline_mpsc_task_hop", c, &|iters| {
        runtime.block_on(async {
            let start = Instant::now();
            for _ in 0..iters {
                let (tx, rx) = tokio::sync::oneshot::channel();
                requests.send(tx).unwrap();
                black_box(rx.await.unwrap());
            }
            start.elapsed()
        })
    });
    in_task(c, &runtime, &agent, &frame, &requests);
    agent.stop();
}

/// A bare ractor actor that answers a oneshot with an allow.
struct Answerer;

impl ractor::Actor for Answerer {
    type Msg = tokio::sync::oneshot::Sender<Verdict>;
    type State = ();
    type Arguments = ();

    async fn pre_start(
        &self,
        _myself: ractor::ActorRef<Self::Msg>,
        _args: (),
    ) -> Result<(), ractor::ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ractor::ActorRef<Self::Msg>,
        reply: Self::Msg,
        _state: &mut (),
    ) -> Result<(), ractor::ActorProcessingErr> {
        let _ = reply.send(Verdict::allow());
        Ok(())
    }
}

/// A bare ractor actor that passes the oneshot on to the next actor.
struct Forwarder;

impl ractor::Actor for Forwarder {
    type Msg = tokio::sync::oneshot::Sender<Verdict>;
    type State = ractor::ActorRef<Self::Msg>;
    type Arguments = ractor::ActorRef<Self::Msg>;

    async fn pre_start(
        &self,
        _myself: ractor::ActorRef<Self::Msg>,
        next: Self::Arguments,
    ) -> Result<Self::State, ractor::ActorProcessingErr> {
        Ok(next)
    }

    async fn handle(
        &self,
        _myself: ractor::ActorRef<Self::Msg>,
        reply: Self::Msg,
        next: &mut Self::State,
    ) -> Result<(), ractor::ActorProcessingErr> {
        let _ = next.send_message(reply);
        Ok(())
    }
}

/// Round trips driven from a spawned task, as a v1 transport connection drives `Agent::decide`:
/// the agent's two hops, a bare chain of two ractor actors, and one plain tokio task hop.
/// `requests` is the long-lived answering task of `actor/baseline_mpsc_task_hop`.
fn in_task(
    c: &mut Criterion,
    runtime: &tokio::runtime::Runtime,
    agent: &Agent,
    frame: &Frame,
    requests: &tokio::sync::mpsc::UnboundedSender<AnswerSender>,
) {
    use ractor::Actor as _;
    let answerer = runtime
        .block_on(Answerer::spawn(None, Answerer, ()))
        .unwrap()
        .0;
    let forwarder = runtime
        .block_on(Forwarder::spawn(None, Forwarder, answerer.clone()))
        .unwrap()
        .0;
    let measure = |name: &str, c: &mut Criterion, round_trip: &(dyn Fn() -> RoundTrip + Sync)| {
        c.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut next = round_trip();
                let task = runtime.spawn(async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(next().await);
                    }
                    start.elapsed()
                });
                let elapsed = runtime.block_on(task).unwrap();
                record(name, iters, elapsed);
                elapsed
            })
        });
    };
    measure("actor/in_task/agent_decide_chat_100B", c, &|| {
        let (agent, frame) = (agent.clone(), frame.clone());
        Box::new(move || {
            let (agent, frame) = (agent.clone(), frame.clone());
            Box::pin(async move { agent.decide(frame).await })
        })
    });
    measure("actor/in_task/ractor_two_hops", c, &|| {
        let forwarder = forwarder.clone();
        oneshot_round_trip(move |reply| drop(forwarder.send_message(reply)))
    });
    measure("actor/in_task/mpsc_task_hop", c, &|| {
        let requests = requests.clone();
        oneshot_round_trip(move |reply| drop(requests.send(reply)))
    });
    forwarder.stop(None);
    answerer.stop(None);
}

/// A round trip that hands a fresh oneshot to `send` and awaits its answer.
fn oneshot_round_trip(send: impl Fn(AnswerSender) + Send + 'static) -> RoundTrip {
    Box::new(move || {
        let (reply, answer) = tokio::sync::oneshot::channel();
        send(reply);
        Box::pin(async move { answer.await.unwrap_or_else(|_| Verdict::allow()) })
    })
}

/// What the teed recorder costs a frame: a counter increment and a latency record through the
/// Prometheus recorder alone (the baseline) and through [`TeeRecorder`] over it, which the agent
/// installs (one more atomic add per increment, one bucket search per record).
fn telemetry(c: &mut Criterion) {
    let latency_bounds = histogram_bounds(names::DECISION_LATENCY).expect("latency buckets");
    let prometheus = || {
        PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(names::DECISION_LATENCY.into()),
                latency_bounds,
            )
            .expect("buckets")
            .build_recorder()
    };
    let plain = prometheus();
    let plain_handle = plain.handle();
    let inner = prometheus();
    let teed_handle = inner.handle();
    let teed = TeeRecorder::new(inner, Arc::new(SeriesTable::default()), histogram_bounds);
    let metadata = Metadata::new(module_path!(), Level::INFO, None);
    let frames = Key::from_parts(
        names::FRAMES,
        vec![
            Label::new("direction", "client_to_server"),
            Label::new("opcode", "text"),
            Label::new("decision", "allow"),
        ],
    );
    let latency = Key::from_name(names::DECISION_LATENCY);
    let (plain_counter, teed_counter) = (
        plain.register_counter(&frames, &metadata),
        teed.register_counter(&frames, &metadata),
    );
    let (plain_histogram, teed_histogram) = (
        plain.register_histogram(&latency, &metadata),
        teed.register_histogram(&latency, &metadata),
    );
    bench(c, "telemetry/counter_prometheus", || {
        plain_counter.increment(1)
    });
    bench(c, "telemetry/counter_teed", || teed_counter.increment(1));
    // Latencies spread over the buckets, 10 us .. 12 ms, as real ones are.
    let samples: Vec<f64> = (0..64).map(|i| 1e-5 * 1.12f64.powi(i)).collect();
    // Prometheus keeps raw samples until they are folded into its buckets (the agent's upkeep
    // does it every 5 s); both runs fold every 4,096 records so that memory stays flat.
    let mut k = 0usize;
    bench(c, "telemetry/histogram_prometheus", || {
        k = k.wrapping_add(1);
        plain_histogram.record(samples[k % samples.len()]);
        if k.is_multiple_of(4096) {
            plain_handle.run_upkeep();
        }
    });
    bench(c, "telemetry/histogram_teed", || {
        k = k.wrapping_add(1);
        teed_histogram.record(samples[k % samples.len()]);
        if k.is_multiple_of(4096) {
            teed_handle.run_upkeep();
        }
    });
}

/// Where a benchmark's answerer sends its verdict.
type AnswerSender = tokio::sync::oneshot::Sender<Verdict>;

/// Starts one round trip; each call returns the future of its answer.
type RoundTrip =
    Box<dyn FnMut() -> std::pin::Pin<Box<dyn std::future::Future<Output = Verdict> + Send>> + Send>;

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// Prints the median per-iteration time of each benchmark and its ratio to its baseline.
fn summary() {
    let samples = samples().lock().unwrap();
    if samples.is_empty() {
        return;
    }
    let figure = |name: &str| samples.get(name).map(|v| median(v));
    let baselines: [(&str, &str); 14] = [
        ("telemetry/counter_teed", "telemetry/counter_prometheus"),
        ("telemetry/histogram_teed", "telemetry/histogram_prometheus"),
        ("decode/v1_frame_event_100B", "decode/v2_frame_event_100B"),
        (
            "decode/v1_frame_event_100B_two_passes",
            "decode/v1_frame_event_100B",
        ),
        ("decode/v2_frame_event_16KiB", "decode/v2_frame_event_100B"),
        ("encode/response_allow_v2", "encode/baseline_copy_prebuilt"),
        ("encode/response_close_v2", "encode/baseline_copy_prebuilt"),
        ("base64/decode_alloc_100B", "base64/decode_reused_100B"),
        ("base64/decode_alloc_16KiB", "base64/decode_reused_16KiB"),
        (
            "reassembly/push_3_fragments_1KiB",
            "reassembly/push_unfragmented_1KiB",
        ),
        (
            "actor/agent_decide_chat_100B",
            "actor/baseline_oneshot_spawned_task",
        ),
        (
            "actor/baseline_oneshot_spawned_task",
            "actor/baseline_mpsc_task_hop",
        ),
        ("actor/in_task/agent_decide_chat_100B", "evaluate/chat_100B"),
        (
            "actor/in_task/ractor_two_hops",
            "actor/in_task/mpsc_task_hop",
        ),
    ];
    println!();
    println!("{:<42} {:>12}  ratio to baseline", "benchmark", "median");
    for (name, values) in samples.iter() {
        let value = median(values);
        let ratio = baselines
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, base)| Some((base, figure(base)?)))
            .map(|(base, b)| format!("{:.2}x {base}", value / b))
            .unwrap_or_default();
        println!("{name:<42} {:>9.1} ns  {ratio}", value);
    }
    if let (Some(decide), Some(evaluate), Some(hop)) = (
        figure("actor/agent_decide_chat_100B"),
        figure("evaluate/chat_100B"),
        figure("actor/baseline_mpsc_task_hop"),
    ) {
        println!(
            "actor overhead of decide (decide - evaluate): {:.0} ns = {:.1}x one mpsc task hop",
            decide - evaluate,
            (decide - evaluate) / hop
        );
    }
}

fn main() {
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    codec(&mut criterion);
    limits(&mut criterion);
    pipeline(&mut criterion);
    telemetry(&mut criterion);
    actors(&mut criterion);
    criterion.final_summary();
    // `cargo bench` passes --bench; `cargo test` and `-- --test` run each routine once, which
    // gives no figures worth a table.
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test") {
        summary();
    }
}
