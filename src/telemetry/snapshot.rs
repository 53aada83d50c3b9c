//! Reads the figures back out of the one metrics registry (the Prometheus recorder's rendering),
//! so that the protocol's MetricsReport and the health monitor see exactly what `/metrics` shows.

use std::collections::BTreeMap;

/// Labels of a series, sorted by name.
pub type Labels = BTreeMap<String, String>;

/// A counter or gauge value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name.
    pub name: String,
    /// Label pairs.
    pub labels: Labels,
    /// Value.
    pub value: f64,
}

/// A histogram series.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HistogramSample {
    /// Metric name (without `_bucket`/`_sum`/`_count`).
    pub name: String,
    /// Label pairs (without `le`).
    pub labels: Labels,
    /// Sum of observations.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
    /// Cumulative bucket counts by upper bound (the last is `+Inf`).
    pub buckets: Vec<(f64, u64)>,
}

/// Every series in the registry at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsSnapshot {
    /// Counters.
    pub counters: Vec<Sample>,
    /// Gauges.
    pub gauges: Vec<Sample>,
    /// Histograms.
    pub histograms: Vec<HistogramSample>,
    /// Help texts by metric name.
    pub help: BTreeMap<String, String>,
}

impl MetricsSnapshot {
    /// Sum of a counter over every series whose labels include `filter`.
    pub fn counter_sum(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        self.counters
            .iter()
            .filter(|s| s.name == name && matches(&s.labels, filter))
            .map(|s| s.value)
            .sum()
    }

    /// A gauge's value (first series whose labels include `filter`).
    pub fn gauge(&self, name: &str, filter: &[(&str, &str)]) -> Option<f64> {
        self.gauges
            .iter()
            .find(|s| s.name == name && matches(&s.labels, filter))
            .map(|s| s.value)
    }

    /// A histogram (first series with this name).
    pub fn histogram(&self, name: &str) -> Option<&HistogramSample> {
        self.histograms.iter().find(|h| h.name == name)
    }

    /// Parses the Prometheus text exposition format as the recorder renders it.
    pub fn parse(text: &str) -> MetricsSnapshot {
        let mut snapshot = MetricsSnapshot::default();
        let mut types: BTreeMap<String, String> = BTreeMap::new();
        let mut histograms: BTreeMap<(String, Vec<(String, String)>), HistogramSample> =
            BTreeMap::new();
        for line in text.lines() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                if let Some((name, kind)) = rest.split_once(' ') {
                    types.insert(name.to_string(), kind.trim().to_string());
                }
                continue;
            }
            if let Some(rest) = line.strip_prefix("# HELP ") {
                if let Some((name, help)) = rest.split_once(' ') {
                    snapshot.help.insert(name.to_string(), help.to_string());
                }
                continue;
            }
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((series, value)) = split_sample(line) else {
                continue;
            };
            let (name, mut labels) = parse_series(series);
            let Some(value) = parse_value(value) else {
                continue;
            };
            match types.get(&name).map(String::as_str) {
                Some("counter") => snapshot.counters.push(Sample {
                    name,
                    labels,
                    value,
                }),
                Some("gauge") => snapshot.gauges.push(Sample {
                    name,
                    labels,
                    value,
                }),
                _ => {
                    let (base, part) = if let Some(base) = name.strip_suffix("_bucket") {
                        (base, "bucket")
                    } else if let Some(base) = name.strip_suffix("_sum") {
                        (base, "sum")
                    } else if let Some(base) = name.strip_suffix("_count") {
                        (base, "count")
                    } else {
                        continue;
                    };
                    if types.get(base).map(String::as_str) != Some("histogram") {
                        continue;
                    }
                    let le = labels.remove("le");
                    let key = (base.to_string(), labels.clone().into_iter().collect());
                    let entry = histograms.entry(key).or_insert_with(|| HistogramSample {
                        name: base.to_string(),
                        labels,
                        ..HistogramSample::default()
                    });
                    match part {
                        "bucket" => {
                            if let Some(le) = le.as_deref().and_then(parse_value) {
                                entry.buckets.push((le, value as u64));
                            }
                        }
                        "sum" => entry.sum = value,
                        _ => entry.count = value as u64,
                    }
                }
            }
        }
        snapshot.histograms = histograms.into_values().collect();
        snapshot
    }
}

fn matches(labels: &Labels, filter: &[(&str, &str)]) -> bool {
    filter
        .iter()
        .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
}

/// Splits `name{labels} value` at the value (labels may contain spaces inside quotes).
fn split_sample(line: &str) -> Option<(&str, &str)> {
    let end_of_series = match line.find('{') {
        Some(open) => {
            let close = find_closing_brace(line, open)?;
            close + 1
        }
        None => line.find(' ')?,
    };
    let (series, rest) = line.split_at(end_of_series);
    let value = rest.split_whitespace().next()?;
    Some((series, value))
}

fn find_closing_brace(line: &str, open: usize) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in line[open..].char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '}' if !in_quotes => return Some(open + i),
            _ => {}
        }
    }
    None
}

fn parse_series(series: &str) -> (String, Labels) {
    let Some(open) = series.find('{') else {
        return (series.to_string(), Labels::new());
    };
    let name = series[..open].to_string();
    let body = &series[open + 1..series.len().saturating_sub(1)];
    let mut labels = Labels::new();
    let mut rest = body;
    while let Some(eq) = rest.find("=\"") {
        let key = rest[..eq].trim_start_matches(',').trim().to_string();
        let mut value = String::new();
        let mut chars = rest[eq + 2..].char_indices();
        let mut consumed = rest.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, other)) => value.push(other),
                    None => {}
                },
                '"' => {
                    consumed = eq + 2 + i + 1;
                    break;
                }
                other => value.push(other),
            }
        }
        labels.insert(key, value);
        rest = &rest[consumed.min(rest.len())..];
    }
    (name, labels)
}

fn parse_value(value: &str) -> Option<f64> {
    match value {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP ws_agent_frames_total Frames decided
# TYPE ws_agent_frames_total counter
ws_agent_frames_total{direction="c2s",opcode="text",decision="allow"} 3
ws_agent_frames_total{direction="c2s",opcode="text",decision="close"} 2

# TYPE ws_agent_tracked_connections gauge
ws_agent_tracked_connections 4

# TYPE ws_agent_decision_latency_seconds histogram
ws_agent_decision_latency_seconds_bucket{le="0.001"} 4
ws_agent_decision_latency_seconds_bucket{le="+Inf"} 5
ws_agent_decision_latency_seconds_sum 0.25
ws_agent_decision_latency_seconds_count 5
# TYPE odd counter
odd{v="a \"q\" }"} 1
"#;

    #[test]
    fn parses_counters_gauges_and_histograms() {
        let s = MetricsSnapshot::parse(TEXT);
        assert_eq!(s.counter_sum("ws_agent_frames_total", &[]), 5.0);
        assert_eq!(
            s.counter_sum("ws_agent_frames_total", &[("decision", "close")]),
            2.0
        );
        assert_eq!(s.gauge("ws_agent_tracked_connections", &[]), Some(4.0));
        let h = s.histogram("ws_agent_decision_latency_seconds").unwrap();
        assert_eq!(h.count, 5);
        assert_eq!(h.buckets, vec![(0.001, 4), (f64::INFINITY, 5)]);
        assert_eq!(s.help["ws_agent_frames_total"], "Frames decided");
        assert_eq!(s.counters.last().unwrap().labels["v"], "a \"q\" }");
    }
}
