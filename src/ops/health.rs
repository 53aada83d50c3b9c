//! The agent's health, derived from real signals and published on a watch channel that every
//! v2 connection and gRPC stream reports from: DRAINING while draining, UNHEALTHY when the actor
//! system cannot serve, DEGRADED while the detector pool is saturated or decisions are far slower
//! than normal (the message says which), HEALTHY otherwise.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::agent::Agent;
use crate::lifecycle::Lifecycle;
use crate::telemetry::Telemetry;

/// How often the signals are read.
const EVALUATION_PERIOD: Duration = Duration::from_millis(250);
/// Latency is compared every this many evaluations (every 2 s).
const LATENCY_EVERY: u64 = 8;
/// Queue fill above which the pool counts as saturated.
const SATURATION_FILL: f64 = 0.8;
/// Latency above this multiple of the long-run average (and above `LATENCY_FLOOR_SECS`) is "far
/// above normal".
const LATENCY_FACTOR: f64 = 10.0;
const LATENCY_FLOOR_SECS: f64 = 0.005;

/// The protocol's health states (the integer is what goes on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthState {
    /// Serving normally.
    Healthy = 1,
    /// Serving, but saturated or slow.
    Degraded = 2,
    /// Finishing in-flight work before exiting.
    Draining = 3,
    /// Cannot serve.
    Unhealthy = 4,
}

impl HealthState {
    /// The wire value.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// A health state and, unless healthy, why.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthReport {
    /// The state.
    pub state: HealthState,
    /// Why it is not healthy.
    pub message: Option<String>,
    /// Jobs queued in the detector pool when the report was made.
    pub queue_depth: u32,
    /// Jobs the pool can hold.
    pub capacity: u32,
}

impl HealthReport {
    fn healthy() -> Self {
        HealthReport {
            state: HealthState::Healthy,
            message: None,
            queue_depth: 0,
            capacity: 0,
        }
    }
}

/// Starts the monitor; the receiver always holds the current report.
pub fn spawn_monitor(agent: Agent, lifecycle: Arc<Lifecycle>) -> watch::Receiver<HealthReport> {
    let (sender, receiver) = watch::channel(HealthReport::healthy());
    tokio::spawn(async move {
        let mut latency = LatencyTracker::default();
        let mut last_saturated = agent.detectors().saturated_total();
        let mut ticks = 0u64;
        let mut ticker = tokio::time::interval(EVALUATION_PERIOD);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = lifecycle.accepting_stopped(), if !lifecycle.is_draining() => {}
            }
            let saturated_now = agent.detectors().saturated_total();
            let saturated_recently = saturated_now > last_saturated;
            last_saturated = saturated_now;
            ticks += 1;
            // Latency is compared over LATENCY_EVERY ticks, so a period holds enough decisions.
            let latency = ticks.is_multiple_of(LATENCY_EVERY).then_some(&mut latency);
            let report = evaluate(&agent, &lifecycle, saturated_recently, latency);
            sender.send_if_modified(|current| {
                if *current != report
                    && (current.state != report.state || current.message != report.message)
                {
                    *current = report;
                    true
                } else {
                    false
                }
            });
            if sender.is_closed() {
                return;
            }
        }
    });
    receiver
}

fn evaluate(
    agent: &Agent,
    lifecycle: &Lifecycle,
    saturated_recently: bool,
    latency: Option<&mut LatencyTracker>,
) -> HealthReport {
    let queued = agent.detectors().queued();
    let capacity = agent.detectors().capacity();
    let mut report = HealthReport {
        state: HealthState::Healthy,
        message: None,
        queue_depth: u32::try_from(queued).unwrap_or(u32::MAX),
        capacity: u32::try_from(capacity).unwrap_or(u32::MAX),
    };
    if lifecycle.is_draining() {
        report.state = HealthState::Draining;
        report.message = Some(format!(
            "draining: new connections refused, {} proxy connections open",
            lifecycle.open_connections()
        ));
        return report;
    }
    if !agent.is_serving() {
        report.state = HealthState::Unhealthy;
        report.message = Some("the actor system has stopped".into());
        return report;
    }
    let fill = queued as f64 / capacity.max(1) as f64;
    if saturated_recently || fill >= SATURATION_FILL {
        report.state = HealthState::Degraded;
        report.message = Some(format!(
            "detector pool saturated: {queued} of {capacity} jobs queued"
        ));
        return report;
    }
    if let Some(reason) = agent.ip_limiter().degraded_reason() {
        report.state = HealthState::Degraded;
        report.message = Some(reason);
        return report;
    }
    if let Some((recent, normal)) = latency.and_then(LatencyTracker::update) {
        if recent > LATENCY_FLOOR_SECS && recent > normal * LATENCY_FACTOR {
            report.state = HealthState::Degraded;
            report.message = Some(format!(
                "decision latency {:.1} ms, normally {:.3} ms",
                recent * 1e3,
                normal * 1e3
            ));
        }
    }
    report
}

/// Average decision latency over the last period against a slow moving average.
#[derive(Debug, Default)]
struct LatencyTracker {
    last_sum: f64,
    last_count: u64,
    normal: Option<f64>,
}

impl LatencyTracker {
    /// (recent average, normal average) when frames were decided since the last call.
    fn update(&mut self) -> Option<(f64, f64)> {
        let (count, sum_secs) = Telemetry::get().figures().latency();
        let frames = count.saturating_sub(self.last_count);
        let sum = sum_secs - self.last_sum;
        self.last_count = count;
        self.last_sum = sum_secs;
        if frames == 0 {
            return None;
        }
        let recent = sum / frames as f64;
        let normal = *self.normal.get_or_insert(recent);
        // The baseline follows slowly, so a sudden slowdown stands out for a while.
        self.normal = Some(normal * 0.95 + recent * 0.05);
        Some((recent, normal))
    }
}
