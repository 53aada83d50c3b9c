//! The agent's figures, kept in one `metrics` registry: counters for frames and detections,
//! gauges for tracked connections and reassembly memory, a histogram of decision latency. Handles
//! are registered once ([`Telemetry::get`]) so the hot path only touches atomics. The Prometheus
//! endpoint ([`crate::ops::http`]) renders the same registry. Every series is named once, in
//! [`names`]. It depends only on the leaves [`crate::model`] and [`crate::clock`]: everything
//! else records into it, nothing here calls up.
//!
//! The figures the agent itself acts on (the MetricsReport's frame totals, the health monitor's
//! latency) are also kept in typed atomics next to their metrics ([`Figures`]), and every series
//! has a typed twin in the [`series`] table the MetricsReport is built from, so nothing reads the
//! registry back by parsing its text.

pub mod routes;
pub mod series;
pub mod throttle;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics::{Counter, Gauge, Histogram, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::model::{Action, AuditTag, Direction, Opcode, ReasonCode, Transport, Verdict};

/// The name of every series in the registry, each written once.
pub mod names {
    /// Frames decided, by direction, opcode and decision.
    pub const FRAMES: &str = "ws_agent_frames_total";
    /// Audit tags raised, by tag.
    pub const DETECTIONS: &str = "ws_agent_detections_total";
    /// Time from reading a frame to its decision.
    pub const DECISION_LATENCY: &str = "ws_agent_decision_latency_seconds";
    /// WebSocket connections with state in the agent.
    pub const TRACKED_CONNECTIONS: &str = "ws_agent_tracked_connections";
    /// Tracked connections with an awake actor.
    pub const CONNECTION_ACTORS: &str = "ws_agent_connection_actors";
    /// Bytes held for unfinished fragmented messages.
    pub const REASSEMBLY_BYTES: &str = "ws_agent_reassembly_bytes";
    /// Tracked connections forgotten, by reason.
    pub const EVICTIONS: &str = "ws_agent_evictions_total";
    /// Frames decided by `--fail-open` because every detector queue was full.
    pub const DETECTOR_SATURATED: &str = "ws_agent_detector_saturated_total";
    /// Detector actors restarted after a failure.
    pub const DETECTOR_RESTARTS: &str = "ws_agent_detector_restarts_total";
    /// Configure events, by result.
    pub const CONFIG_RELOADS: &str = "ws_agent_config_reloads_total";
    /// Malformed or unexpected messages from the proxy.
    pub const PROTOCOL_ERRORS: &str = "ws_agent_protocol_errors_total";
    /// Frames decided without complete inspection, by direction and reason.
    pub const FRAMES_UNINSPECTED: &str = "ws_agent_frames_uninspected_total";
    /// Proxy connections and gRPC streams refused at once, by transport.
    pub const TRANSPORT_REFUSED: &str = "ws_agent_transport_connections_refused_total";
    /// Proxy connections and gRPC streams closed because they stalled, by transport.
    pub const TRANSPORT_READ_TIMEOUTS: &str = "ws_agent_transport_read_timeouts_total";
    /// Open proxy connections.
    pub const TRANSPORT_CONNECTIONS: &str = "ws_agent_transport_connections";
    /// The agent's version, as a label of a gauge set to 1.
    pub const BUILD_INFO: &str = "ws_agent_build_info";
    /// Token leases Redis granted for per-client-IP budgets.
    pub const IP_LEASES: &str = "ws_agent_ip_leases_total";
    /// Redis calls that failed or were too slow.
    pub const REDIS_ERRORS: &str = "ws_agent_redis_errors_total";
    /// Switches of the per-IP limits from shared to local counting.
    pub const REDIS_FALLBACKS: &str = "ws_agent_redis_fallbacks_total";
    /// 1 while per-IP limits are counted locally because Redis does not answer.
    pub const REDIS_FALLBACK: &str = "ws_agent_redis_fallback";
    /// Lease requests not sent to Redis because too many were waiting.
    pub const REDIS_REQUESTS_REFUSED: &str = "ws_agent_redis_requests_refused_total";
    /// Time of Redis calls.
    pub const REDIS_LATENCY: &str = "ws_agent_redis_latency_seconds";
    /// Times a client IP went over its per-IP budget.
    pub const IP_OVER_BUDGET: &str = "ws_agent_ip_over_budget_total";
    /// Per-IP budgets (client IP and route scope) with state.
    pub const TRACKED_IPS: &str = "ws_agent_tracked_ips";
    /// Client data frames under a per-IP budget whose client IP is unknown (the budget cannot
    /// apply to them).
    pub const FRAMES_WITHOUT_CLIENT_IP: &str = "ws_agent_frames_without_client_ip_total";

    // The MetricsReport's protocol-level aggregates (counters the report adds; not in /metrics).

    /// Frames decided, whatever the decision.
    pub const FRAMES_PROCESSED: &str = "frames_processed";
    /// Frames allowed.
    pub const FRAMES_ALLOWED: &str = "frames_allowed";
    /// Frames answered with a close.
    pub const FRAMES_BLOCKED: &str = "frames_blocked";
    /// Frames decided without complete inspection, by direction and reason.
    pub const FRAMES_DROPPED: &str = "frames_dropped";
}

/// Latency histogram bucket bounds, in seconds (10 µs .. 100 ms).
const LATENCY_BUCKETS: [f64; 12] = [
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1,
];

pub(crate) const DIRECTIONS: [Direction; 2] =
    [Direction::ClientToServer, Direction::ServerToClient];
pub(crate) const OPCODES: [Opcode; 7] = [
    Opcode::Continuation,
    Opcode::Text,
    Opcode::Binary,
    Opcode::Close,
    Opcode::Ping,
    Opcode::Pong,
    Opcode::Reserved,
];
pub(crate) const DECISIONS: [&str; 3] = Action::NAMES;

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

/// The result of a configure event (the `result` label of [`names::CONFIG_RELOADS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigResult {
    /// A new configuration was compiled and swapped in.
    Applied,
    /// The pushed configuration equals the running one.
    Unchanged,
    /// The pushed configuration was refused; the running one stays.
    Rejected,
}

impl ConfigResult {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ConfigResult::Applied => "applied",
            ConfigResult::Unchanged => "unchanged",
            ConfigResult::Rejected => "rejected",
        }
    }
}

const CONFIG_RESULTS: [ConfigResult; 3] = [
    ConfigResult::Applied,
    ConfigResult::Unchanged,
    ConfigResult::Rejected,
];

/// The figures the agent reads back itself, as typed atomics updated next to their metrics.
#[derive(Debug)]
pub struct Figures {
    /// Frames decided, by [`Action::index`].
    decisions: [AtomicU64; 3],
    /// Frames decided without complete inspection, by [`Direction::index`] and
    /// [`ReasonCode::index`].
    uninspected: [[AtomicU64; ReasonCode::ALL.len()]; 2],
    /// Decisions timed, and the sum of their latencies in nanoseconds.
    latency_count: AtomicU64,
    latency_nanos: AtomicU64,
}

impl Figures {
    fn new() -> Self {
        Figures {
            decisions: std::array::from_fn(|_| AtomicU64::new(0)),
            uninspected: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            latency_count: AtomicU64::new(0),
            latency_nanos: AtomicU64::new(0),
        }
    }

    /// Frames decided with `action` (by [`Action::index`]; any [`Action::Close`] counts as close).
    pub fn decided(&self, action_index: usize) -> u64 {
        self.decisions
            .get(action_index)
            .map_or(0, |n| n.load(Ordering::Relaxed))
    }

    /// Frames decided, whatever the decision.
    pub fn decided_total(&self) -> u64 {
        self.decisions
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .sum()
    }

    /// Frames decided without complete inspection, per direction and reason, where any were.
    pub fn uninspected(&self) -> impl Iterator<Item = (Direction, ReasonCode, u64)> + '_ {
        DIRECTIONS.into_iter().flat_map(move |direction| {
            ReasonCode::ALL.into_iter().filter_map(move |reason| {
                let n = self.uninspected[direction.index()][reason.index()].load(Ordering::Relaxed);
                (n > 0).then_some((direction, reason, n))
            })
        })
    }

    /// (decisions timed, sum of their latencies in seconds).
    pub fn latency(&self) -> (u64, f64) {
        let count = self.latency_count.load(Ordering::Relaxed);
        let nanos = self.latency_nanos.load(Ordering::Relaxed);
        (count, nanos as f64 / 1e9)
    }
}

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
    config_results: Vec<Counter>,
    protocol_errors: Counter,
    transport_connections: Gauge,
    figures: Figures,
}

static TELEMETRY: OnceLock<Telemetry> = OnceLock::new();
static SERIES: OnceLock<Arc<series::SeriesTable>> = OnceLock::new();

/// How often the Prometheus recorder's histogram samples are folded into its buckets when nobody
/// scrapes `/metrics` (a scrape folds them too); without it they pile up in memory.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The bucket bounds of a histogram series, by name (the same for `/metrics` and the reports).
pub fn histogram_bounds(name: &str) -> Option<&'static [f64]> {
    (name == names::DECISION_LATENCY || name == names::REDIS_LATENCY).then_some(&LATENCY_BUCKETS)
}

/// Installs the Prometheus recorder, teed into the [`series`] table, as the global `metrics`
/// recorder, and starts its upkeep on the current runtime. Call once, before anything records a
/// figure; later calls return `None`.
pub fn install_recorder() -> Option<PrometheusHandle> {
    let mut builder = PrometheusBuilder::new();
    for name in [names::DECISION_LATENCY, names::REDIS_LATENCY] {
        let bounds = histogram_bounds(name)?;
        builder = builder
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full(name.into()),
                bounds,
            )
            .ok()?;
    }
    let prometheus = builder.build_recorder();
    let handle = prometheus.handle();
    let table = Arc::new(series::SeriesTable::default());
    let recorder = series::TeeRecorder::new(prometheus, Arc::clone(&table), histogram_bounds);
    metrics::set_global_recorder(recorder).ok()?;
    let _ = SERIES.set(table);
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(UPKEEP_INTERVAL);
        loop {
            ticker.tick().await;
            upkeep.run_upkeep();
        }
    });
    Some(handle)
}

/// Every series in the registry now, for the MetricsReport that hands the proxy all of them
/// (`None` when no recorder is installed, as in unit tests), read from their typed twins.
pub fn series() -> Option<series::SeriesValues> {
    Some(SERIES.get()?.read())
}

impl Telemetry {
    /// The process-wide handles (registered on first use against the installed recorder).
    pub fn get() -> &'static Telemetry {
        TELEMETRY.get_or_init(Telemetry::register)
    }

    fn register() -> Telemetry {
        describe_counter!(
            names::FRAMES,
            "Frames decided, by direction, opcode and decision"
        );
        describe_counter!(names::DETECTIONS, "Audit tags raised, by tag");
        describe_histogram!(
            names::DECISION_LATENCY,
            Unit::Seconds,
            "Time from reading a frame to its decision"
        );
        describe_gauge!(
            names::TRACKED_CONNECTIONS,
            "WebSocket connections with state in the agent"
        );
        describe_gauge!(
            names::CONNECTION_ACTORS,
            "Tracked connections with an awake actor (the others hibernate)"
        );
        describe_gauge!(
            names::REASSEMBLY_BYTES,
            Unit::Bytes,
            "Bytes held for unfinished fragmented messages"
        );
        describe_counter!(names::EVICTIONS, "Tracked connections forgotten, by reason");
        describe_counter!(
            names::DETECTOR_SATURATED,
            "Frames decided by --fail-open because every detector queue was full"
        );
        describe_counter!(
            names::DETECTOR_RESTARTS,
            "Detector actors restarted after a failure"
        );
        describe_counter!(
            names::CONFIG_RELOADS,
            "Configure events, by result (applied, unchanged, rejected)"
        );
        describe_counter!(
            names::PROTOCOL_ERRORS,
            "Malformed or unexpected messages from the proxy"
        );
        describe_counter!(
            names::FRAMES_UNINSPECTED,
            "Frames decided by --fail-open without complete inspection, by direction and reason"
        );
        describe_counter!(
            names::TRANSPORT_REFUSED,
            "Proxy connections and gRPC streams refused at once (--max-transport-connections, --max-grpc-streams), by transport"
        );
        describe_counter!(
            names::TRANSPORT_READ_TIMEOUTS,
            "Proxy connections and gRPC streams closed because they stalled (--read-timeout), by transport"
        );
        describe_gauge!(
            names::TRANSPORT_CONNECTIONS,
            "Open proxy connections (Unix socket and gRPC streams)"
        );
        let mut frames = Vec::with_capacity(DIRECTIONS.len() * OPCODES.len() * DECISIONS.len());
        for direction in DIRECTIONS {
            for opcode in OPCODES {
                for decision in DECISIONS {
                    frames.push(counter!(names::FRAMES,
                        "direction" => direction.as_str(),
                        "opcode" => opcode.as_str(),
                        "decision" => decision));
                }
            }
        }
        gauge!(names::BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        Telemetry {
            frames,
            detections: AuditTag::ALL
                .iter()
                .map(|tag| counter!(names::DETECTIONS, "tag" => tag.as_str()))
                .collect(),
            latency: histogram!(names::DECISION_LATENCY),
            tracked_connections: gauge!(names::TRACKED_CONNECTIONS),
            connection_actors: gauge!(names::CONNECTION_ACTORS),
            reassembly_bytes: gauge!(names::REASSEMBLY_BYTES),
            evictions: EVICTION_REASONS
                .iter()
                .map(|r| counter!(names::EVICTIONS, "reason" => r.as_str()))
                .collect(),
            detector_saturated: counter!(names::DETECTOR_SATURATED),
            detector_restarts: counter!(names::DETECTOR_RESTARTS),
            config_results: CONFIG_RESULTS
                .iter()
                .map(|r| counter!(names::CONFIG_RELOADS, "result" => r.as_str()))
                .collect(),
            protocol_errors: counter!(names::PROTOCOL_ERRORS),
            transport_connections: gauge!(names::TRANSPORT_CONNECTIONS),
            figures: Figures::new(),
        }
    }

    /// Counts one decided frame and its tags, and records its latency.
    pub fn record_decision(
        &self,
        direction: Direction,
        opcode: Opcode,
        verdict: &Verdict,
        latency_nanos: u64,
    ) {
        let decision = verdict.action.index();
        let opcode_index = OPCODES.iter().position(|o| *o == opcode).unwrap_or(0);
        let index = (direction.index() * OPCODES.len() + opcode_index) * DECISIONS.len() + decision;
        self.frames[index].increment(1);
        for tag in &verdict.tags {
            self.detections[tag.index()].increment(1);
        }
        self.latency.record(latency_nanos as f64 / 1e9);
        let figures = &self.figures;
        figures.decisions[decision].fetch_add(1, Ordering::Relaxed);
        figures.latency_count.fetch_add(1, Ordering::Relaxed);
        figures
            .latency_nanos
            .fetch_add(latency_nanos, Ordering::Relaxed);
    }

    /// The figures the agent reads back itself.
    pub fn figures(&self) -> &Figures {
        &self.figures
    }

    /// Counts one decided frame on its route's counters (`route` label), with its latency and the
    /// figures the agent reads back, as [`Telemetry::record_decision`] does for unlabelled ones.
    pub fn record_routed_decision(
        &self,
        counters: &routes::RouteCounters,
        direction: Direction,
        opcode: Opcode,
        verdict: &Verdict,
        latency_nanos: u64,
    ) {
        counters.record(direction, opcode, verdict);
        self.latency.record(latency_nanos as f64 / 1e9);
        let figures = &self.figures;
        figures.decisions[verdict.action.index()].fetch_add(1, Ordering::Relaxed);
        figures.latency_count.fetch_add(1, Ordering::Relaxed);
        figures
            .latency_nanos
            .fetch_add(latency_nanos, Ordering::Relaxed);
    }

    /// Counts a frame decided without complete inspection, by the reason code of its failure.
    pub fn record_uninspected(&self, direction: Direction, reason: ReasonCode) {
        // Registered on first use, so /metrics lists only reasons that happened.
        counter!(names::FRAMES_UNINSPECTED,
            "direction" => direction.as_str(),
            "reason" => reason.as_str())
        .increment(1);
        self.figures.uninspected[direction.index()][reason.index()].fetch_add(1, Ordering::Relaxed);
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
    pub fn record_configure(&self, result: ConfigResult) {
        self.config_results[result as usize].increment(1);
    }

    /// Counts a malformed or unexpected message from a proxy.
    pub fn record_protocol_error(&self) {
        self.protocol_errors.increment(1);
    }

    /// Counts a proxy connection (or gRPC stream) refused at once because of its transport's
    /// limit (`--max-transport-connections`, `--max-grpc-streams`).
    pub fn record_refused_connection(&self, transport: Transport) {
        counter!(names::TRANSPORT_REFUSED, "transport" => transport.as_str()).increment(1);
    }

    /// Counts a proxy connection (or gRPC stream) closed because it stalled (`--read-timeout`).
    pub fn record_read_timeout(&self, transport: Transport) {
        counter!(names::TRANSPORT_READ_TIMEOUTS, "transport" => transport.as_str()).increment(1);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_and_latency_are_counted_in_the_typed_figures() {
        let telemetry = Telemetry::get();
        let figures = telemetry.figures();
        // Other tests decide frames in the same process: compare differences.
        let (count_before, sum_before) = figures.latency();
        let closed_before = figures.decided(Action::CLOSE);
        let uninspected_before: u64 = figures
            .uninspected()
            .filter(|(d, r, _)| {
                *d == Direction::ServerToClient && *r == ReasonCode::DetectorUnavailable
            })
            .map(|(_, _, n)| n)
            .sum();
        let verdict = Verdict::close(1008, "test");
        telemetry.record_decision(Direction::ClientToServer, Opcode::Text, &verdict, 2_000_000);
        telemetry.record_uninspected(Direction::ServerToClient, ReasonCode::DetectorUnavailable);
        let (count, sum) = figures.latency();
        assert!(count > count_before);
        assert!(sum - sum_before >= 0.002 - 1e-9);
        assert!(figures.decided(Action::CLOSE) > closed_before);
        let uninspected: u64 = figures
            .uninspected()
            .filter(|(d, r, _)| {
                *d == Direction::ServerToClient && *r == ReasonCode::DetectorUnavailable
            })
            .map(|(_, _, n)| n)
            .sum();
        assert!(uninspected > uninspected_before);
    }

    #[test]
    fn every_reason_code_has_its_own_name_and_index() {
        for (i, code) in ReasonCode::ALL.iter().enumerate() {
            assert_eq!(code.index(), i);
            assert!(ReasonCode::ALL[..i]
                .iter()
                .all(|other| other.as_str() != code.as_str()));
        }
    }
}
