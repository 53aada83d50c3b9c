//! What every v2 transport tells the proxy about the agent, independent of the encoding:
//! capabilities for the handshake and the figures of a MetricsReport. Built from the running
//! agent and the typed figures of the one metrics registry ([`crate::telemetry::series`]).

use std::future::Future;

use crate::agent::Agent;
use crate::health::HealthReport;
use crate::model::Action;
use crate::telemetry::{
    self, names,
    series::{HistogramSample, Sample, SeriesValues},
    Figures, Telemetry,
};

use super::framing::V2_MAX_MESSAGE;
use super::TransportContext;

/// Name reported in capabilities.
pub const AGENT_NAME: &str = "sentinel-ws-agent";
/// Chunk size we would prefer for bodies (we do not inspect bodies; the field is required).
const PREFERRED_CHUNK_SIZE: u64 = 64 * 1024;

/// The handshake's capability figures.
#[derive(Debug, Clone)]
pub struct CapabilityFigures {
    /// Frames the detector pool can hold at once.
    pub concurrency: u32,
    /// The configured frame or message limit, or the v2 maximum.
    pub max_body_size: u64,
    /// Preferred body chunk size.
    pub preferred_chunk_size: u64,
    /// Health and metrics report interval.
    pub report_interval_ms: u32,
}

/// Capability figures for the running agent.
pub fn capability_figures(context: &TransportContext) -> CapabilityFigures {
    CapabilityFigures {
        concurrency: u32::try_from(context.agent.detectors().capacity()).unwrap_or(u32::MAX),
        max_body_size: max_body_size(&context.agent),
        preferred_chunk_size: PREFERRED_CHUNK_SIZE,
        report_interval_ms: u32::try_from(context.report_interval.as_millis()).unwrap_or(u32::MAX),
    }
}

fn max_body_size(agent: &Agent) -> u64 {
    let policy = agent.policy().load();
    let options = &policy.options;
    let frame_limit = options
        .max_text_frame_size
        .max(options.max_binary_frame_size);
    [options.max_message_size, frame_limit]
        .into_iter()
        .find(|limit| *limit > 0)
        .unwrap_or(V2_MAX_MESSAGE as u64)
}

/// The figures of one MetricsReport: every series of the registry, plus the protocol-level
/// aggregates `frames_processed`, `frames_allowed`, `frames_blocked` and `frames_dropped`
/// (by direction and reason) from the agent's typed [`Figures`].
#[derive(Debug, Clone, Default)]
pub struct ReportFigures {
    /// Counters.
    pub counters: Vec<Sample<u64>>,
    /// Gauges.
    pub gauges: Vec<Sample<f64>>,
    /// Histograms.
    pub histograms: Vec<HistogramSample>,
    /// Help texts by metric name.
    pub help: std::collections::BTreeMap<String, String>,
}

/// Builds the report figures from the registry's series (passed through) and the agent's typed
/// figures (the aggregates).
pub fn report_figures(series: SeriesValues, figures: &Figures) -> ReportFigures {
    let mut counters = series.counters;
    let aggregate = |name: &str, value: u64| Sample {
        name: name.to_string(),
        labels: Default::default(),
        value,
    };
    let derived = [
        aggregate(names::FRAMES_PROCESSED, figures.decided_total()),
        aggregate(names::FRAMES_ALLOWED, figures.decided(Action::ALLOW)),
        aggregate(names::FRAMES_BLOCKED, figures.decided(Action::CLOSE)),
    ];
    let dropped = figures.uninspected().map(|(direction, reason, n)| Sample {
        name: names::FRAMES_DROPPED.into(),
        labels: [
            ("direction".to_string(), direction.as_str().to_string()),
            ("reason".to_string(), reason.as_str().to_string()),
        ]
        .into(),
        value: n,
    });
    counters.extend(derived);
    counters.extend(dropped);
    ReportFigures {
        counters,
        gauges: series.gauges,
        histograms: series.histograms,
        help: series.help,
    }
}

/// One periodic report for the proxy.
#[derive(Debug)]
pub enum Report {
    /// The current health.
    Health(HealthReport),
    /// Every figure of the registry.
    Metrics(ReportFigures),
}

/// Hands `send` the health at once on every change and at the report interval, and the metrics at
/// the report interval, until `send` answers false (the connection is gone) or the health monitor
/// stops.
pub async fn report_loop<F, Fut>(context: &TransportContext, mut send: F)
where
    F: FnMut(Report) -> Fut,
    Fut: Future<Output = bool>,
{
    let mut health = context.health.clone();
    let mut ticker = tokio::time::interval(context.report_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let metrics_due = tokio::select! {
            _ = ticker.tick() => true,
            changed = health.changed() => {
                if changed.is_err() {
                    return;
                }
                false
            }
        };
        let current = health.borrow_and_update().clone();
        if !send(Report::Health(current)).await {
            return;
        }
        if metrics_due {
            if let Some(series) = telemetry::series() {
                if !send(Report::Metrics(report_figures(
                    series,
                    Telemetry::get().figures(),
                )))
                .await
                {
                    return;
                }
            }
        }
    }
}
