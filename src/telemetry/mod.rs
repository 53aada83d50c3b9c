//! The agent's figures, kept in one `metrics` registry: counters for frames and detections,
//! gauges for tracked connections and reassembly memory, a histogram of decision latency. Handles
//! are registered once ([`Telemetry::get`]) so the hot path only touches atomics. The Prometheus
//! endpoint ([`http`]) renders the same registry.

pub mod http;
pub mod snapshot;
pub mod throttle;

use std::sync::OnceLock;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics::{Counter, Gauge, Histogram, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::model::{Action, AuditTag, Direction, Opcode, Verdict};

/// Latency histogram bucket bounds, in seconds (10 µs .. 100 ms).
const LATENCY_BUCKETS: [f64; 12] = [
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1,
];

const DIRECTIONS: [Direction; 2] = [Direction::ClientToServer, Direction::ServerToClient];
const OPCODES: [Opcode; 7] = [
    Opcode::Continuation,
    Opcode::Text,
    Opcode::Binary,
    Opcode::Close,
    Opcode::Ping,
    Opcode::Pong,
    Opcode::Reserved,
];
const DECISIONS: [&str; 3] = Action::NAMES;

/// Why a tracked connection was forgotten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvictionReason {
    /// No frame for `--idle-timeout` seconds.
    Idle,
    /// `--max-connections` reached; the least recently seen went first.
    Capacity,
    /// A close frame was seen in both directions.
    Closed,
    /// The connection actor failed and was dropped (its next frame starts fresh state).
    Failed,
}

impl EvictionReason {
    fn index(self) -> usize {
        self as usize
    }
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            EvictionReason::Idle => "idle",
            EvictionReason::Capacity => "capacity",
            EvictionReason::Closed => "close",
            EvictionReason::Failed => "failed",
        }
    }
}

const EVICTION_REASONS: [EvictionReason; 4] = [
    EvictionReason::Idle,
    EvictionReason::Capacity,
    EvictionReason::Closed,
    EvictionReason::Failed,
];

/// Pre-registered metric handles.
pub struct Telemetry {
    frames: Vec<Counter>,
    detections: Vec<Counter>,
    latency: Histogram,
    tracked_connections: Gauge,
    connection_actors: Gauge,
    reassembly_bytes: Gauge,
    evictions: Vec<Counter>,
    detector_saturated: Counter,
    detector_restarts: Counter,
    config_applied: Counter,
    config_unchanged: Counter,
    config_rejected: Counter,
    protocol_errors: Counter,
    transport_connections: Gauge,
}

static TELEMETRY: OnceLock<Telemetry> = OnceLock::new();
static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder as the global `metrics` recorder. Call once, before anything
/// records a figure; later calls return `None`.
pub fn install_recorder() -> Option<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full("ws_agent_decision_latency_seconds".into()),
            &LATENCY_BUCKETS,
        )
        .ok()?
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(
                crate::shared_limits::metrics::REDIS_LATENCY.into(),
            ),
            &LATENCY_BUCKETS,
        )
        .ok()?
        .install_recorder()
        .ok()?;
    let _ = PROMETHEUS.set(handle.clone());
    Some(handle)
}

/// Every figure in the registry now (`None` when no recorder is installed, as in unit tests).
pub fn snapshot() -> Option<snapshot::MetricsSnapshot> {
    let handle = PROMETHEUS.get()?;
    handle.run_upkeep();
    Some(snapshot::MetricsSnapshot::parse(&handle.render()))
}

impl Telemetry {
    /// The process-wide handles (registered on first use against the installed recorder).
    pub fn get() -> &'static Telemetry {
        TELEMETRY.get_or_init(Telemetry::register)
    }

    fn register() -> Telemetry {
        describe_counter!(
            "ws_agent_frames_total",
            "Frames decided, by direction, opcode and decision"
        );
        describe_counter!("ws_agent_detections_total", "Audit tags raised, by tag");
        describe_histogram!(
            "ws_agent_decision_latency_seconds",
            Unit::Seconds,
            "Time from reading a frame to its decision"
        );
        describe_gauge!(
            "ws_agent_tracked_connections",
            "WebSocket connections with state in the agent"
        );
        describe_gauge!(
            "ws_agent_connection_actors",
            "Tracked connections with an awake actor (the others hibernate)"
        );
        describe_gauge!(
            "ws_agent_reassembly_bytes",
            Unit::Bytes,
            "Bytes held for unfinished fragmented messages"
        );
        describe_counter!(
            "ws_agent_evictions_total",
            "Tracked connections forgotten, by reason"
        );
        describe_counter!(
            "ws_agent_detector_saturated_total",
            "Frames decided by --fail-open because every detector queue was full"
        );
        describe_counter!(
            "ws_agent_detector_restarts_total",
            "Detector actors restarted after a failure"
        );
        describe_counter!(
            "ws_agent_config_reloads_total",
            "Configure events, by result (applied, unchanged, rejected)"
        );
        describe_counter!(
            "ws_agent_protocol_errors_total",
            "Malformed or unexpected messages from the proxy"
        );
        describe_counter!(
            "ws_agent_frames_uninspected_total",
            "Frames decided by --fail-open without complete inspection, by direction and reason"
        );
        describe_counter!(
            "ws_agent_transport_connections_refused_total",
            "Proxy connections and gRPC streams refused at once (--max-transport-connections, --max-grpc-streams), by transport"
        );
        describe_counter!(
            "ws_agent_transport_read_timeouts_total",
            "Proxy connections and gRPC streams closed because they stalled (--read-timeout), by transport"
        );
        describe_gauge!(
            "ws_agent_transport_connections",
            "Open proxy connections (Unix socket and gRPC streams)"
        );
        let mut frames = Vec::with_capacity(DIRECTIONS.len() * OPCODES.len() * DECISIONS.len());
        for direction in DIRECTIONS {
            for opcode in OPCODES {
                for decision in DECISIONS {
                    frames.push(counter!("ws_agent_frames_total",
                        "direction" => direction.as_str(),
                        "opcode" => opcode.as_str(),
                        "decision" => decision));
                }
            }
        }
        gauge!("ws_agent_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        Telemetry {
            frames,
            detections: AuditTag::ALL
                .iter()
                .map(|tag| counter!("ws_agent_detections_total", "tag" => tag.as_str()))
                .collect(),
            latency: histogram!("ws_agent_decision_latency_seconds"),
            tracked_connections: gauge!("ws_agent_tracked_connections"),
            connection_actors: gauge!("ws_agent_connection_actors"),
            reassembly_bytes: gauge!("ws_agent_reassembly_bytes"),
            evictions: EVICTION_REASONS
                .iter()
                .map(|r| counter!("ws_agent_evictions_total", "reason" => r.as_str()))
                .collect(),
            detector_saturated: counter!("ws_agent_detector_saturated_total"),
            detector_restarts: counter!("ws_agent_detector_restarts_total"),
            config_applied: counter!("ws_agent_config_reloads_total", "result" => "applied"),
            config_unchanged: counter!("ws_agent_config_reloads_total", "result" => "unchanged"),
            config_rejected: counter!("ws_agent_config_reloads_total", "result" => "rejected"),
            protocol_errors: counter!("ws_agent_protocol_errors_total"),
            transport_connections: gauge!("ws_agent_transport_connections"),
        }
    }

    /// Counts one decided frame and its tags, and records its latency.
    pub fn record_decision(
        &self,
        direction: Direction,
        opcode: Opcode,
        verdict: &Verdict,
        latency_secs: f64,
    ) {
        let decision = verdict.action.index();
        let opcode_index = OPCODES.iter().position(|o| *o == opcode).unwrap_or(0);
        let index = (direction.index() * OPCODES.len() + opcode_index) * DECISIONS.len() + decision;
        self.frames[index].increment(1);
        for tag in &verdict.tags {
            self.detections[tag.index()].increment(1);
        }
        self.latency.record(latency_secs);
    }

    /// Counts a frame decided without complete inspection, by the reason code of its failure.
    pub fn record_uninspected(&self, direction: Direction, reason_code: &'static str) {
        counter!("ws_agent_frames_uninspected_total",
            "direction" => direction.as_str(),
            "reason" => reason_code)
        .increment(1);
    }

    /// Sets the number of connection actors awake (the rest of the tracked connections hibernate).
    pub fn set_connection_actors(&self, count: usize) {
        self.connection_actors.set(count as f64);
    }

    /// Sets the number of tracked WebSocket connections.
    pub fn set_tracked_connections(&self, count: usize) {
        self.tracked_connections.set(count as f64);
    }

    /// Adds (or with a negative value removes) reassembly bytes.
    pub fn add_reassembly_bytes(&self, delta: i64) {
        if delta >= 0 {
            self.reassembly_bytes.increment(delta as f64);
        } else {
            self.reassembly_bytes.decrement((-delta) as f64);
        }
    }

    /// Counts evicted connections.
    pub fn record_evictions(&self, reason: EvictionReason, count: u64) {
        self.evictions[reason.index()].increment(count);
    }

    /// Counts a frame refused because every detector queue was full.
    pub fn record_saturation(&self) {
        self.detector_saturated.increment(1);
    }

    /// Counts a detector restart.
    pub fn record_detector_restart(&self) {
        self.detector_restarts.increment(1);
    }

    /// Counts a configure event by its result.
    pub fn record_configure(&self, result: Result<bool, ()>) {
        match result {
            Ok(true) => self.config_applied.increment(1),
            Ok(false) => self.config_unchanged.increment(1),
            Err(()) => self.config_rejected.increment(1),
        }
    }

    /// Counts a malformed or unexpected message from a proxy.
    pub fn record_protocol_error(&self) {
        self.protocol_errors.increment(1);
    }

    /// Counts a proxy connection (or gRPC stream) refused at once because of its transport's
    /// limit (`--max-transport-connections`, `--max-grpc-streams`).
    pub fn record_refused_connection(&self, transport: crate::lifecycle::Transport) {
        counter!("ws_agent_transport_connections_refused_total", "transport" => transport.as_str())
            .increment(1);
    }

    /// Counts a proxy connection (or gRPC stream) closed because it stalled (`--read-timeout`).
    pub fn record_read_timeout(&self, transport: crate::lifecycle::Transport) {
        counter!("ws_agent_transport_read_timeouts_total", "transport" => transport.as_str())
            .increment(1);
    }

    /// Tracks open proxy connections.
    pub fn transport_connection_opened(&self) {
        self.transport_connections.increment(1.0);
    }

    /// Tracks closed proxy connections.
    pub fn transport_connection_closed(&self) {
        self.transport_connections.decrement(1.0);
    }
}
