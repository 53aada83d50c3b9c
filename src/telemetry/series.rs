//! Every series of the metrics registry as typed values the agent can read: the recorder
//! ([`TeeRecorder`]) hands out handles that update the Prometheus recorder (what `/metrics`
//! renders) and, next to it, an atomic of this table. The MetricsReport is built from the table
//! ([`SeriesTable::read`]): no text is rendered and parsed back, and the report carries exactly the
//! series `/metrics` shows, whichever module registered them (the per-route counters, the per-IP
//! limits' figures).
//!
//! Counters are `u64`, gauges `f64` (kept as bits), histograms cumulative bucket counts over the
//! bounds [`super::histogram_bounds`] gives their name, with their count and sum. A histogram
//! without bounds is left to the Prometheus recorder alone (it renders it as a summary, which the
//! report never carried).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};

/// Labels of a series, sorted by name.
pub type Labels = BTreeMap<String, String>;

/// A counter's or gauge's value at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<V> {
    /// Metric name (one of [`super::names`]).
    pub name: String,
    /// Label pairs.
    pub labels: Labels,
    /// Value.
    pub value: V,
}

/// A histogram at one moment.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HistogramSample {
    /// Metric name.
    pub name: String,
    /// Label pairs.
    pub labels: Labels,
    /// Sum of observations.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
    /// Cumulative counts by upper bound; the last bound is `+Inf` and its count is `count`.
    pub buckets: Vec<(f64, u64)>,
}

/// Every series of the registry at one moment, sorted by name then labels.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeriesValues {
    /// Counters.
    pub counters: Vec<Sample<u64>>,
    /// Gauges.
    pub gauges: Vec<Sample<f64>>,
    /// Histograms with bucket bounds.
    pub histograms: Vec<HistogramSample>,
    /// Help texts by metric name.
    pub help: BTreeMap<String, String>,
}

/// One histogram's figures: per-bucket counts (not cumulative; the last is over every bound), the
/// count and the sum (as `f64` bits).
#[derive(Debug)]
struct HistogramCell {
    bounds: &'static [f64],
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_bits: AtomicU64,
}

impl HistogramCell {
    fn new(bounds: &'static [f64]) -> Self {
        HistogramCell {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_bits: AtomicU64::new(0f64.to_bits()),
        }
    }

    fn record(&self, value: f64) {
        // Prometheus buckets are `value <= le`; NaN lands in +Inf.
        let bucket = self
            .bounds
            .iter()
            .position(|le| value <= *le)
            .unwrap_or(self.bounds.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        let _ = self
            .sum_bits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + value).to_bits())
            });
    }

    fn sample(&self, name: String, labels: Labels) -> HistogramSample {
        let mut cumulative = 0;
        let buckets = self
            .bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(self.buckets.iter())
            .map(|(le, n)| {
                cumulative += n.load(Ordering::Relaxed);
                (le, cumulative)
            })
            .collect();
        HistogramSample {
            name,
            labels,
            sum: f64::from_bits(self.sum_bits.load(Ordering::Relaxed)),
            // The buckets' total, so that `+Inf` and `count` agree even mid-update.
            count: cumulative,
            buckets,
        }
    }
}

/// The typed figures of every series registered through the [`TeeRecorder`].
#[derive(Debug, Default)]
pub struct SeriesTable {
    counters: RwLock<HashMap<Key, Arc<AtomicU64>>>,
    gauges: RwLock<HashMap<Key, Arc<AtomicU64>>>,
    histograms: RwLock<HashMap<Key, Arc<HistogramCell>>>,
    help: RwLock<HashMap<String, String>>,
}

/// The cell of `key` in `map`, made with `make` on first use (every handle of one series shares
/// it, as the Prometheus recorder's handles share theirs).
fn cell<T>(map: &RwLock<HashMap<Key, Arc<T>>>, key: &Key, make: impl FnOnce() -> T) -> Arc<T> {
    if let Some(cell) = map.read().unwrap_or_else(|e| e.into_inner()).get(key) {
        return Arc::clone(cell);
    }
    let mut map = map.write().unwrap_or_else(|e| e.into_inner());
    Arc::clone(map.entry(key.clone()).or_insert_with(|| Arc::new(make())))
}

fn split(key: &Key) -> (String, Labels) {
    let labels = key
        .labels()
        .map(|l| (l.key().to_string(), l.value().to_string()))
        .collect();
    (key.name().to_string(), labels)
}

fn sorted<T>(mut samples: Vec<T>, by: impl Fn(&T) -> (&String, &Labels)) -> Vec<T> {
    samples.sort_by(|a, b| by(a).cmp(&by(b)));
    samples
}

impl SeriesTable {
    /// Every series now.
    pub fn read(&self) -> SeriesValues {
        let counters = self
            .counters
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(key, value)| {
                let (name, labels) = split(key);
                Sample {
                    name,
                    labels,
                    value: value.load(Ordering::Relaxed),
                }
            })
            .collect();
        let gauges = self
            .gauges
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(key, bits)| {
                let (name, labels) = split(key);
                Sample {
                    name,
                    labels,
                    value: f64::from_bits(bits.load(Ordering::Relaxed)),
                }
            })
            .collect();
        let histograms = self
            .histograms
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(key, cell)| {
                let (name, labels) = split(key);
                cell.sample(name, labels)
            })
            .collect();
        let help = self
            .help
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(name, help)| (name.clone(), help.clone()))
            .collect();
        SeriesValues {
            counters: sorted(counters, |s: &Sample<u64>| (&s.name, &s.labels)),
            gauges: sorted(gauges, |s: &Sample<f64>| (&s.name, &s.labels)),
            histograms: sorted(histograms, |h: &HistogramSample| (&h.name, &h.labels)),
            help,
        }
    }

    fn describe(&self, key: &KeyName, description: &SharedString) {
        self.help
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.as_str().to_string(), description.to_string());
    }
}

/// A counter handle: the Prometheus recorder's and the table's atomic.
struct TeeCounter {
    exported: Counter,
    value: Arc<AtomicU64>,
}

impl CounterFn for TeeCounter {
    fn increment(&self, value: u64) {
        self.exported.increment(value);
        self.value.fetch_add(value, Ordering::Relaxed);
    }

    fn absolute(&self, value: u64) {
        self.exported.absolute(value);
        self.value.fetch_max(value, Ordering::Relaxed);
    }
}

/// A gauge handle: the Prometheus recorder's and the table's `f64` bits.
struct TeeGauge {
    exported: Gauge,
    value: Arc<AtomicU64>,
}

impl TeeGauge {
    fn update(&self, f: impl Fn(f64) -> f64) {
        let _ = self
            .value
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some(f(f64::from_bits(bits)).to_bits())
            });
    }
}

impl GaugeFn for TeeGauge {
    fn increment(&self, value: f64) {
        self.exported.increment(value);
        self.update(|v| v + value);
    }

    fn decrement(&self, value: f64) {
        self.exported.decrement(value);
        self.update(|v| v - value);
    }

    fn set(&self, value: f64) {
        self.exported.set(value);
        self.value.store(value.to_bits(), Ordering::Relaxed);
    }
}

/// A histogram handle: the Prometheus recorder's and the table's buckets.
struct TeeHistogram {
    exported: Histogram,
    cell: Arc<HistogramCell>,
}

impl HistogramFn for TeeHistogram {
    fn record(&self, value: f64) {
        self.exported.record(value);
        self.cell.record(value);
    }
}

/// The process's `metrics` recorder: the Prometheus recorder, with every handle also counting
/// into a [`SeriesTable`].
pub struct TeeRecorder<R> {
    exported: R,
    table: Arc<SeriesTable>,
    bounds: fn(&str) -> Option<&'static [f64]>,
}

impl<R> TeeRecorder<R> {
    /// Wraps `exported`; histograms named so that `bounds` gives bucket bounds are kept in the
    /// table too.
    pub fn new(
        exported: R,
        table: Arc<SeriesTable>,
        bounds: fn(&str) -> Option<&'static [f64]>,
    ) -> Self {
        TeeRecorder {
            exported,
            table,
            bounds,
        }
    }
}

impl<R: Recorder> Recorder for TeeRecorder<R> {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.table.describe(&key, &description);
        self.exported.describe_counter(key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.table.describe(&key, &description);
        self.exported.describe_gauge(key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.table.describe(&key, &description);
        self.exported.describe_histogram(key, unit, description);
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        Counter::from_arc(Arc::new(TeeCounter {
            exported: self.exported.register_counter(key, metadata),
            value: cell(&self.table.counters, key, || AtomicU64::new(0)),
        }))
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(Arc::new(TeeGauge {
            exported: self.exported.register_gauge(key, metadata),
            value: cell(&self.table.gauges, key, || AtomicU64::new(0f64.to_bits())),
        }))
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        let exported = self.exported.register_histogram(key, metadata);
        match (self.bounds)(key.name()) {
            Some(bounds) => Histogram::from_arc(Arc::new(TeeHistogram {
                exported,
                cell: cell(&self.table.histograms, key, || HistogramCell::new(bounds)),
            })),
            None => exported,
        }
    }
}

#[cfg(test)]
mod tests {
    use metrics::{counter, describe_counter, gauge, histogram};
    use metrics_exporter_prometheus::PrometheusBuilder;

    use super::*;

    const BOUNDS: [f64; 2] = [0.001, 0.01];

    fn bounds(name: &str) -> Option<&'static [f64]> {
        (name == "t_latency_seconds").then_some(&BOUNDS)
    }

    #[test]
    fn the_table_holds_what_prometheus_renders() {
        let prometheus = PrometheusBuilder::new()
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full("t_latency_seconds".into()),
                &BOUNDS,
            )
            .unwrap()
            .build_recorder();
        let handle = prometheus.handle();
        let table = Arc::new(SeriesTable::default());
        let recorder = TeeRecorder::new(prometheus, Arc::clone(&table), bounds);
        metrics::with_local_recorder(&recorder, || {
            describe_counter!("t_frames_total", "Frames");
            let close = counter!("t_frames_total", "decision" => "close");
            close.increment(2);
            // A second handle of the same series counts into the same figure.
            counter!("t_frames_total", "decision" => "close").increment(1);
            let _registered = counter!("t_frames_total", "decision" => "allow");
            let open = gauge!("t_open");
            open.increment(3.0);
            open.decrement(1.0);
            gauge!("t_build_info", "version" => "1.2.3").set(1.0);
            let latency = histogram!("t_latency_seconds");
            for value in [0.0005, 0.001, 0.005, 0.5] {
                latency.record(value);
            }
            // No bounds: left to the Prometheus recorder (a summary there), not in the table.
            histogram!("t_other_seconds").record(1.0);
        });
        let values = table.read();
        let counters: Vec<_> = values
            .counters
            .iter()
            .map(|s| (s.name.as_str(), s.labels["decision"].as_str(), s.value))
            .collect();
        assert_eq!(
            counters,
            vec![
                ("t_frames_total", "allow", 0),
                ("t_frames_total", "close", 3)
            ]
        );
        assert_eq!(values.help["t_frames_total"], "Frames");
        let gauge = |name: &str| values.gauges.iter().find(|g| g.name == name).unwrap();
        assert_eq!(gauge("t_open").value, 2.0);
        assert_eq!(gauge("t_build_info").labels["version"], "1.2.3");
        assert_eq!(values.histograms.len(), 1);
        let latency = &values.histograms[0];
        assert_eq!(latency.count, 4);
        assert!((latency.sum - 0.5065).abs() < 1e-12);
        assert_eq!(
            latency.buckets,
            vec![(0.001, 2), (0.01, 3), (f64::INFINITY, 4)]
        );
        // The same figures, as /metrics renders them.
        let text = handle.render();
        for line in [
            "t_frames_total{decision=\"close\"} 3",
            "t_frames_total{decision=\"allow\"} 0",
            "t_open 2",
            "t_latency_seconds_bucket{le=\"0.001\"} 2",
            "t_latency_seconds_bucket{le=\"0.01\"} 3",
            "t_latency_seconds_bucket{le=\"+Inf\"} 4",
            "t_latency_seconds_count 4",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
        }
    }

    #[test]
    fn a_nan_observation_lands_over_every_bound() {
        let cell = HistogramCell::new(&BOUNDS);
        cell.record(f64::NAN);
        let sample = cell.sample("x".into(), Labels::new());
        assert_eq!(sample.buckets.last(), Some(&(f64::INFINITY, 1)));
        assert_eq!(sample.buckets[0].1, 0);
    }
}
