//! The per-IP limits' figures, registered once in the agent's `metrics` registry (the hot path
//! only touches their atomics): leases, Redis errors and latency, fallbacks, IPs over budget and
//! IPs tracked.

use std::sync::OnceLock;

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Counter,
    Gauge, Histogram, Unit,
};

/// Name of the Redis latency histogram (its buckets are set where the recorder is installed).
pub const REDIS_LATENCY: &str = "ws_agent_redis_latency_seconds";

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
    /// Client IPs with per-IP state.
    pub tracked_ips: Gauge,
}

static METRICS: OnceLock<SharedLimitMetrics> = OnceLock::new();

impl SharedLimitMetrics {
    /// The process-wide handles.
    pub fn get() -> &'static SharedLimitMetrics {
        METRICS.get_or_init(|| {
            describe_counter!(
                "ws_agent_ip_leases_total",
                "Token leases Redis granted for per-client-IP budgets"
            );
            describe_counter!(
                "ws_agent_redis_errors_total",
                "Redis calls that failed or took over 20 ms"
            );
            describe_counter!(
                "ws_agent_redis_fallbacks_total",
                "Times per-IP limits fell back to counting in this agent because Redis did not answer"
            );
            describe_gauge!(
                "ws_agent_redis_fallback",
                "1 while per-IP limits are counted in this agent because Redis does not answer"
            );
            describe_counter!(
                "ws_agent_redis_requests_refused_total",
                "Lease requests not sent to Redis because too many were waiting"
            );
            describe_histogram!(REDIS_LATENCY, Unit::Seconds, "Time of Redis calls");
            describe_counter!(
                "ws_agent_ip_over_budget_total",
                "Times a client IP went over its per-IP budget"
            );
            describe_gauge!(
                "ws_agent_tracked_ips",
                "Client IPs with per-IP limit state in this agent"
            );
            SharedLimitMetrics {
                leases: counter!("ws_agent_ip_leases_total"),
                redis_errors: counter!("ws_agent_redis_errors_total"),
                fallbacks: counter!("ws_agent_redis_fallbacks_total"),
                fallback_active: gauge!("ws_agent_redis_fallback"),
                queue_refused: counter!("ws_agent_redis_requests_refused_total"),
                redis_latency: histogram!(REDIS_LATENCY),
                ips_over_budget: counter!("ws_agent_ip_over_budget_total"),
                tracked_ips: gauge!("ws_agent_tracked_ips"),
            }
        })
    }
}
