//! The per-IP limits' figures, registered once in the agent's `metrics` registry (the hot path
//! only touches their atomics): leases, Redis errors and latency, fallbacks, IPs over budget,
//! budgets tracked and frames no budget could apply to (no client IP).

use std::sync::OnceLock;

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Counter,
    Gauge, Histogram, Unit,
};

use crate::telemetry::names;

/// Pre-registered handles.
#[derive(Debug)]
pub struct SharedLimitMetrics {
    /// Lease calls Redis answered.
    pub leases: Counter,
    /// Redis calls that failed or were too slow.
    pub redis_errors: Counter,
    /// Switches from shared to local counting.
    pub fallbacks: Counter,
    /// 1 while per-IP limits are counted locally because Redis does not answer.
    pub fallback_active: Gauge,
    /// Lease or give-back requests not sent (queue full or too many calls in flight).
    pub queue_refused: Counter,
    /// Time of Redis calls (script calls and probes).
    pub redis_latency: Histogram,
    /// Times a client IP went over its budget (first refused frame after allowed ones).
    pub ips_over_budget: Counter,
    /// Budgets (client IP and scope) with per-IP state.
    pub tracked_ips: Gauge,
    /// Client data frames under a per-IP budget that had no client IP.
    pub frames_without_ip: Counter,
}

static METRICS: OnceLock<SharedLimitMetrics> = OnceLock::new();

impl SharedLimitMetrics {
    /// The process-wide handles.
    pub fn get() -> &'static SharedLimitMetrics {
        METRICS.get_or_init(|| {
            describe_counter!(
                names::IP_LEASES,
                "Token leases Redis granted for per-client-IP budgets"
            );
            describe_counter!(
                names::REDIS_ERRORS,
                "Redis calls that failed or took over 20 ms"
            );
            describe_counter!(
                names::REDIS_FALLBACKS,
                "Times per-IP limits fell back to counting in this agent because Redis did not answer"
            );
            describe_gauge!(
                names::REDIS_FALLBACK,
                "1 while per-IP limits are counted in this agent because Redis does not answer"
            );
            describe_counter!(
                names::REDIS_REQUESTS_REFUSED,
                "Lease requests not sent to Redis because too many were waiting"
            );
            describe_histogram!(names::REDIS_LATENCY, Unit::Seconds, "Time of Redis calls");
            describe_counter!(
                names::IP_OVER_BUDGET,
                "Times a client IP went over its per-IP budget"
            );
            describe_gauge!(
                names::TRACKED_IPS,
                "Per-IP budgets (client IP and route scope) with state in this agent"
            );
            describe_counter!(
                names::FRAMES_WITHOUT_CLIENT_IP,
                "Client data frames under a per-IP budget whose client IP is unknown (not in the frame, no upgrade request seen): the budget could not apply"
            );
            SharedLimitMetrics {
                leases: counter!(names::IP_LEASES),
                redis_errors: counter!(names::REDIS_ERRORS),
                fallbacks: counter!(names::REDIS_FALLBACKS),
                fallback_active: gauge!(names::REDIS_FALLBACK),
                queue_refused: counter!(names::REDIS_REQUESTS_REFUSED),
                redis_latency: histogram!(names::REDIS_LATENCY),
                ips_over_budget: counter!(names::IP_OVER_BUDGET),
                tracked_ips: gauge!(names::TRACKED_IPS),
                frames_without_ip: counter!(names::FRAMES_WITHOUT_CLIENT_IP),
            }
        })
    }
}
