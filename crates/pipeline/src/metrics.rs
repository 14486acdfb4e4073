//! Latency histograms (HdrHistogram), throughput over a sliding window and over uptime, error and
//! checkpoint counts. Snapshots are serializable and never contain infinities.
//!
//! [`Metrics`] is the one owner of processing statistics: every pipeline built with the same
//! `Metrics` counts into it, so the figures survive a rebuild, and `StreamingClient`'s statistics
//! are a view of it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use qadf_core_types::{Alert, LatencySummary, Severity, Timestamp, finite_ratio};
use serde::{Deserialize, Serialize};

/// Longest latency the histograms resolve (longer ones are recorded as this).
const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// A latency distribution with 3 significant digits from 1 ns to 60 s.
#[derive(Debug)]
pub struct LatencyRecorder(Mutex<Histogram<u64>>);

impl Default for LatencyRecorder {
    fn default() -> LatencyRecorder {
        LatencyRecorder(Mutex::new(Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("static bounds are valid")))
    }
}

impl LatencyRecorder {
    /// Records one duration.
    pub fn record(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(MAX_LATENCY_NS).clamp(1, MAX_LATENCY_NS);
        self.0.lock().saturating_record(ns);
    }

    /// Count, min, mean, p50/p95/p99 and max in milliseconds.
    pub fn summary(&self) -> LatencySummary {
        let h = self.0.lock();
        if h.is_empty() {
            return LatencySummary::default();
        }
        let ms = |ns: u64| Some(ns as f64 / 1e6);
        LatencySummary {
            count: h.len(),
            min_ms: ms(h.min()),
            mean_ms: Some(h.mean() / 1e6),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p95_ms: ms(h.value_at_quantile(0.95)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    }

    /// Forgets every measurement.
    pub fn reset(&self) {
        self.0.lock().reset();
    }

    /// The distribution as Prometheus histogram buckets: for each upper bound, the count of
    /// measurements at or below it, then the count and sum (seconds) of all of them.
    pub fn buckets(&self, bounds: &[Duration]) -> LatencyBuckets {
        let h = self.0.lock();
        let ns = |d: &Duration| u64::try_from(d.as_nanos()).unwrap_or(MAX_LATENCY_NS).clamp(1, MAX_LATENCY_NS);
        LatencyBuckets {
            cumulative: bounds.iter().map(|b| (b.as_secs_f64(), h.count_between(1, ns(b)))).collect(),
            count: h.len(),
            sum_seconds: if h.is_empty() { 0.0 } else { h.mean() * h.len() as f64 / 1e9 },
        }
    }
}

/// A latency distribution as cumulative buckets (HdrHistogram's 3 significant digits).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LatencyBuckets {
    /// `(upper bound in seconds, measurements at or below it)`, in the order of the bounds.
    pub cumulative: Vec<(f64, u64)>,
    /// Measurements.
    pub count: u64,
    /// Their sum in seconds.
    pub sum_seconds: f64,
}

/// Distinct `(rule, severity)` pairs counted by name; further pairs count under [`OTHER_RULES`].
pub const MAX_ALERT_SERIES: usize = 256;
/// The rule name alerts of pairs past [`MAX_ALERT_SERIES`] are counted under.
pub const OTHER_RULES: &str = "(other)";

/// Items per second over the last `window` (in one-second buckets) and over the meter's uptime.
#[derive(Debug)]
pub struct ThroughputMeter {
    started: Instant,
    window_secs: u64,
    state: Mutex<Rate>,
}

#[derive(Debug, Default)]
struct Rate {
    total: u64,
    /// (second since start, items in that second), oldest first.
    buckets: VecDeque<(u64, u64)>,
}

/// Throughput figures at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// Items counted since start.
    pub total: u64,
    /// Items per second over the sliding window (over uptime while shorter than the window).
    pub per_second_window: f64,
    /// Items per second since start.
    pub per_second_uptime: f64,
    /// Seconds since start.
    pub uptime_seconds: f64,
}

impl ThroughputMeter {
    /// A meter with a sliding window of `window` (whole seconds, at least one).
    pub fn new(window: Duration) -> ThroughputMeter {
        ThroughputMeter { started: Instant::now(), window_secs: window.as_secs().max(1), state: Mutex::default() }
    }

    /// Counts `n` items now.
    pub fn record(&self, n: u64) {
        self.record_at(n, self.started.elapsed());
    }

    /// Counts `n` items at `elapsed` since start (for tests and replays).
    pub fn record_at(&self, n: u64, elapsed: Duration) {
        let second = elapsed.as_secs();
        let mut s = self.state.lock();
        s.total += n;
        match s.buckets.back_mut() {
            Some((sec, count)) if *sec == second => *count += n,
            _ => s.buckets.push_back((second, n)),
        }
        // Keep the bucket the window starts inside of (a snapshot counts the part of it in the window).
        while s.buckets.front().is_some_and(|(sec, _)| *sec + self.window_secs < second) {
            s.buckets.pop_front();
        }
    }

    /// The figures now.
    pub fn snapshot(&self) -> Throughput {
        self.snapshot_at(self.started.elapsed())
    }

    /// The figures at `elapsed` since start.
    pub fn snapshot_at(&self, elapsed: Duration) -> Throughput {
        let s = self.state.lock();
        let now = elapsed.as_secs_f64();
        let window_start = now - self.window_secs as f64;
        // Items of the bucket the window starts inside of count for the part of its second in the window.
        // (A fold from +0.0: a float `sum` of nothing is -0.0, which prints as "-0".)
        let in_window = s
            .buckets
            .iter()
            .fold(0.0, |sum, &(sec, c)| sum + c as f64 * (sec as f64 + 1.0 - window_start).clamp(0.0, 1.0));
        let span = now.min(self.window_secs as f64);
        Throughput {
            total: s.total,
            per_second_window: finite_ratio(in_window, span).unwrap_or(0.0),
            per_second_uptime: finite_ratio(s.total as f64, now).unwrap_or(0.0),
            uptime_seconds: now,
        }
    }
}

/// Pass/fail counts of one quality checkpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckpointStats {
    /// Evaluations that passed.
    pub passed: u64,
    /// Evaluations that failed.
    pub failed: u64,
    /// `passed / (passed + failed)`, `None` before the first evaluation.
    pub pass_rate: Option<f64>,
}

/// Latency and failures of one stage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StageMetrics {
    /// Latency per batch.
    pub latency: LatencySummary,
    /// Errors returned (one per failed batch).
    pub errors: u64,
    /// Panics caught (one per failed batch).
    pub panics: u64,
}

/// A snapshot of a pipeline's metrics.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PipelineMetrics {
    /// Per stage, by name.
    pub stages: BTreeMap<String, StageMetrics>,
    /// Per checkpoint, by name.
    pub checkpoints: BTreeMap<String, CheckpointStats>,
    /// Whole-batch latency.
    pub end_to_end: LatencySummary,
    /// Batches that completed.
    pub batches_processed: u64,
    /// Batches dropped or that stopped their stream.
    pub batches_failed: u64,
    /// Samples through completed batches.
    pub samples: Throughput,
    /// Failures of any stage, each counted once.
    pub errors_total: u64,
    /// Alerts emitted.
    pub alerts_emitted: u64,
    /// Alerts suppressed as duplicates.
    pub alerts_suppressed: u64,
    /// Dead letters: samples the stages refused, and messages refused before the pipeline.
    pub dead_letters: u64,
    /// Time spent in completed batches, in milliseconds.
    pub total_processing_ms: f64,
    /// When the last batch completed.
    pub last_batch: Option<Timestamp>,
    /// Messages behind the log end over all partitions, as the consumer last reported.
    pub consumer_lag: u64,
    /// The same per partition, `(partition, messages behind)`.
    pub consumer_lag_by_partition: Vec<(i32, u64)>,
    /// Samples the history stored (replays it already held not counted).
    pub samples_stored: u64,
    /// Messages the consumer delivered.
    pub messages_consumed: u64,
    /// Samples decoded from them.
    pub samples_consumed: u64,
    /// Dead letters sent, by reason (a small fixed set: see `record_dead_letter_reason`).
    pub dead_letters_by_reason: BTreeMap<String, u64>,
    /// Alerts emitted, `(rule, severity, count)` by rule then severity (at most [`MAX_ALERT_SERIES`] pairs).
    pub alerts_by_rule: Vec<(String, Severity, u64)>,
    /// How long one group commit to the history took.
    pub store_latency: LatencySummary,
    /// Samples handed to the history writer and not yet stored, as last reported.
    pub store_queue_samples: u64,
}

/// Latency and failure counters of one step (steps sharing a name share them).
#[derive(Debug, Default)]
pub(crate) struct StepCounters {
    pub(crate) latency: LatencyRecorder,
    pub(crate) errors: AtomicU64,
    pub(crate) panics: AtomicU64,
}

/// A checkpoint's pass/fail counts, shared by the pipelines that run it.
pub(crate) type CheckpointCounts = Arc<Mutex<CheckpointStats>>;

/// The live counters behind [`PipelineMetrics`]; share one between pipelines (an `Arc`) so a
/// rebuild keeps counting where the last pipeline stopped.
#[derive(Debug)]
pub struct Metrics {
    steps: Mutex<BTreeMap<String, Arc<StepCounters>>>,
    checkpoints: Mutex<BTreeMap<String, CheckpointCounts>>,
    pub(crate) end_to_end: LatencyRecorder,
    pub(crate) samples: ThroughputMeter,
    pub(crate) batches_processed: AtomicU64,
    pub(crate) batches_failed: AtomicU64,
    pub(crate) errors_total: AtomicU64,
    pub(crate) alerts_emitted: AtomicU64,
    pub(crate) alerts_suppressed: AtomicU64,
    dead_letters: AtomicU64,
    samples_stored: AtomicU64,
    processing_ns: AtomicU64,
    /// Nanoseconds since the epoch of the last completed batch; `i64::MIN` before the first.
    last_batch_ns: AtomicI64,
    /// `(partition, messages behind)` as the consumer last reported.
    consumer_lag: Mutex<Vec<(i32, u64)>>,
    messages_consumed: AtomicU64,
    samples_consumed: AtomicU64,
    dead_letters_by_reason: Mutex<BTreeMap<String, u64>>,
    alerts_by_rule: Mutex<BTreeMap<(String, Severity), u64>>,
    pub(crate) store_latency: LatencyRecorder,
    store_queue_samples: AtomicU64,
}

impl Metrics {
    /// Fresh counters with a throughput window of `throughput_window`.
    pub fn new(throughput_window: Duration) -> Metrics {
        Metrics {
            steps: Mutex::default(),
            checkpoints: Mutex::default(),
            end_to_end: LatencyRecorder::default(),
            samples: ThroughputMeter::new(throughput_window),
            batches_processed: AtomicU64::new(0),
            batches_failed: AtomicU64::new(0),
            errors_total: AtomicU64::new(0),
            alerts_emitted: AtomicU64::new(0),
            alerts_suppressed: AtomicU64::new(0),
            dead_letters: AtomicU64::new(0),
            samples_stored: AtomicU64::new(0),
            processing_ns: AtomicU64::new(0),
            last_batch_ns: AtomicI64::new(i64::MIN),
            consumer_lag: Mutex::default(),
            messages_consumed: AtomicU64::new(0),
            samples_consumed: AtomicU64::new(0),
            dead_letters_by_reason: Mutex::default(),
            alerts_by_rule: Mutex::default(),
            store_latency: LatencyRecorder::default(),
            store_queue_samples: AtomicU64::new(0),
        }
    }

    /// Counts a poll's messages and the samples decoded from them.
    pub fn record_consumed(&self, messages: u64, samples: u64) {
        self.messages_consumed.fetch_add(messages, Ordering::Relaxed);
        self.samples_consumed.fetch_add(samples, Ordering::Relaxed);
    }

    /// Counts `n` dead letters sent for `reason` (one of a few fixed words, e.g. `undecodable`).
    pub fn record_dead_letter_reason(&self, reason: &str, n: u64) {
        if n > 0 {
            *self.dead_letters_by_reason.lock().entry(reason.to_owned()).or_default() += n;
        }
    }

    /// Counts emitted alerts by rule and severity.
    pub(crate) fn record_alerts(&self, alerts: &[Alert]) {
        if alerts.is_empty() {
            return;
        }
        let mut by_rule = self.alerts_by_rule.lock();
        for a in alerts {
            let known = by_rule.contains_key(&(a.checkpoint.clone(), a.severity));
            let rule = if known || by_rule.len() < MAX_ALERT_SERIES { a.checkpoint.as_str() } else { OTHER_RULES };
            *by_rule.entry((rule.to_owned(), a.severity)).or_default() += 1;
        }
    }

    /// Records how long one write to the history took.
    pub fn record_store(&self, elapsed: Duration) {
        self.store_latency.record(elapsed);
    }

    /// Records the samples waiting for the history writer.
    pub fn record_store_queue(&self, samples: u64) {
        self.store_queue_samples.store(samples, Ordering::Relaxed);
    }

    /// Batch (end-to-end) and store latency as Prometheus buckets with the given upper bounds.
    pub fn latency_buckets(&self, bounds: &[Duration]) -> (LatencyBuckets, LatencyBuckets) {
        (self.end_to_end.buckets(bounds), self.store_latency.buckets(bounds))
    }

    /// The counters of the step named `name`.
    pub(crate) fn step(&self, name: &str) -> Arc<StepCounters> {
        self.steps.lock().entry(name.to_owned()).or_default().clone()
    }

    /// The pass/fail counts of the checkpoint named `name`.
    pub(crate) fn checkpoint(&self, name: &str) -> CheckpointCounts {
        self.checkpoints.lock().entry(name.to_owned()).or_default().clone()
    }

    /// Counts a completed batch of `samples` that took `elapsed`.
    pub(crate) fn batch_done(&self, samples: usize, elapsed: Duration) {
        self.end_to_end.record(elapsed);
        self.samples.record(samples as u64);
        self.batches_processed.fetch_add(1, Ordering::Relaxed);
        self.processing_ns.fetch_add(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
        self.last_batch_ns.store(Timestamp::now().as_nanos(), Ordering::Relaxed);
    }

    /// Counts dead letters (the pipeline's own, or messages refused before it, such as undecodable ones).
    pub fn record_dead_letters(&self, n: u64) {
        self.dead_letters.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts samples the history stored.
    pub fn record_stored(&self, n: u64) {
        self.samples_stored.fetch_add(n, Ordering::Relaxed);
    }

    /// Records the consumer's lag: messages behind the log end, `(partition, lag)` for each partition.
    pub fn record_consumer_lag(&self, per_partition: Vec<(i32, u64)>) {
        *self.consumer_lag.lock() = per_partition;
    }

    /// A snapshot of every counter.
    pub fn snapshot(&self) -> PipelineMetrics {
        let stages = self
            .steps
            .lock()
            .iter()
            .map(|(name, c)| {
                let m = StageMetrics {
                    latency: c.latency.summary(),
                    errors: c.errors.load(Ordering::Relaxed),
                    panics: c.panics.load(Ordering::Relaxed),
                };
                (name.clone(), m)
            })
            .collect();
        let last = self.last_batch_ns.load(Ordering::Relaxed);
        let lag = self.consumer_lag.lock().clone();
        PipelineMetrics {
            stages,
            checkpoints: self.checkpoints.lock().iter().map(|(name, s)| (name.clone(), *s.lock())).collect(),
            end_to_end: self.end_to_end.summary(),
            batches_processed: self.batches_processed.load(Ordering::Relaxed),
            batches_failed: self.batches_failed.load(Ordering::Relaxed),
            samples: self.samples.snapshot(),
            errors_total: self.errors_total.load(Ordering::Relaxed),
            alerts_emitted: self.alerts_emitted.load(Ordering::Relaxed),
            alerts_suppressed: self.alerts_suppressed.load(Ordering::Relaxed),
            dead_letters: self.dead_letters.load(Ordering::Relaxed),
            total_processing_ms: self.processing_ns.load(Ordering::Relaxed) as f64 / 1e6,
            last_batch: (last != i64::MIN).then(|| Timestamp::from_nanos(last)),
            consumer_lag: lag.iter().map(|&(_, l)| l).sum(),
            consumer_lag_by_partition: lag,
            samples_stored: self.samples_stored.load(Ordering::Relaxed),
            messages_consumed: self.messages_consumed.load(Ordering::Relaxed),
            samples_consumed: self.samples_consumed.load(Ordering::Relaxed),
            dead_letters_by_reason: self.dead_letters_by_reason.lock().clone(),
            alerts_by_rule: self.alerts_by_rule.lock().iter().map(|((r, s), n)| (r.clone(), *s, *n)).collect(),
            store_latency: self.store_latency.summary(),
            store_queue_samples: self.store_queue_samples.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_summary_has_percentiles_and_no_infinity_when_empty() {
        let r = LatencyRecorder::default();
        assert_eq!(r.summary(), LatencySummary::default());
        assert!(!serde_json::to_string(&r.summary()).unwrap().contains("inf"));
        for ms in 1..=100 {
            r.record(Duration::from_millis(ms));
        }
        let s = r.summary();
        assert_eq!(s.count, 100);
        let close = |x: Option<f64>, y: f64| (x.unwrap() - y).abs() / y < 0.01;
        assert!(
            close(s.p50_ms, 50.0) && close(s.p99_ms, 99.0) && close(s.max_ms, 100.0) && close(s.min_ms, 1.0),
            "{s:?}"
        );
    }

    /// The Python original divided the cumulative count by the time since the previous batch.
    #[test]
    fn throughput_is_a_true_rate_over_the_window_and_uptime() {
        let m = ThroughputMeter::new(Duration::from_secs(10));
        for second in 0..20u64 {
            m.record_at(if second < 10 { 1000 } else { 100 }, Duration::from_secs(second));
        }
        let t = m.snapshot_at(Duration::from_secs(20));
        assert_eq!(t.total, 11_000);
        assert!((t.per_second_window - 100.0).abs() < 1e-9, "{t:?}");
        assert!((t.per_second_uptime - 550.0).abs() < 1e-9, "{t:?}");
        let early = ThroughputMeter::new(Duration::from_secs(10));
        early.record_at(500, Duration::from_millis(1500));
        let t = early.snapshot_at(Duration::from_secs(2));
        assert!((t.per_second_window - 250.0).abs() < 1e-9 && (t.per_second_uptime - 250.0).abs() < 1e-9, "{t:?}");
        assert_eq!(ThroughputMeter::new(Duration::from_secs(1)).snapshot_at(Duration::ZERO).per_second_uptime, 0.0);
        // Not -0.0, which printed as "-0 samples/s".
        let idle = ThroughputMeter::new(Duration::from_secs(10)).snapshot_at(Duration::from_secs(5));
        assert!(idle.per_second_window.is_sign_positive(), "{idle:?}");
    }

    /// A steady rate read mid-second: the window held only 9.5 s of items for 10 s (the soak showed
    /// 45,000/s for a true 50,000/s).
    #[test]
    fn a_steady_rate_reads_true_between_whole_seconds() {
        let m = ThroughputMeter::new(Duration::from_secs(10));
        let mut recorded = 0;
        for at in [25_500u64, 29_990, 30_000] {
            while recorded * 100 + 50 <= at {
                m.record_at(100, Duration::from_millis(recorded * 100 + 50));
                recorded += 1;
            }
            let t = m.snapshot_at(Duration::from_millis(at));
            assert!((t.per_second_window - 1000.0).abs() < 20.0, "at {at} ms: {t:?}");
        }
    }
}
