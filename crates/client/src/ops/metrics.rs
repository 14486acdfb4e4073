//! `/metrics` in the Prometheus text exposition format (version 0.0.4).
//!
//! Every figure is read, at scrape time, from the one owner that counts it: the pipeline's
//! `Metrics` (samples, batches, dead letters by reason, alerts by rule and severity, latencies,
//! the store queue), the Kafka consumer's statistics (fetch errors, reconnects), the live view's
//! and the feed's counters, and the health state. Names follow Prometheus conventions
//! (`qadf_…_total` counters, `…_seconds` histograms); labels are bounded: dead-letter reasons are
//! a fixed set, rules at most `MAX_ALERT_SERIES` pairs, partitions the topic's, no build ids.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use qadf_kafka_io::SharedStatistics;
use qadf_pipeline::LatencyBuckets;

use crate::StreamingClient;
use crate::dashboard::LiveFeed;
use crate::ops::Health;

/// Upper bounds of the latency histograms, in seconds.
pub const LATENCY_BOUNDS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The dead-letter reasons, always exposed (0 until one happens).
pub const DEAD_LETTER_REASONS: [&str; 4] = ["undecodable", "refused_sample", "batch_refused", "store_refused"];

/// Counters of the Redis live-view writer.
#[derive(Debug, Default)]
pub struct LiveViewCounters {
    /// Keys written.
    pub writes: AtomicU64,
    /// Rounds (every 0.5 s) in which a write failed.
    pub failed: AtomicU64,
}

/// Where the metrics are read from.
pub struct Sources {
    /// The client (its pipeline metrics and builds).
    pub client: Arc<StreamingClient>,
    /// The Kafka consumer's statistics, when consuming from Kafka.
    pub kafka: Option<SharedStatistics>,
    /// The Redis live view's counters, when the cache is enabled.
    pub live_view: Option<Arc<LiveViewCounters>>,
    /// The live page's feed, when served.
    pub feed: Option<Arc<LiveFeed>>,
}

/// A Prometheus text exposition being written.
#[derive(Default)]
pub struct Exposition(String);

/// Escapes a label value (backslash, double quote, newline).
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn labels(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
    format!("{{{}}}", inner.join(","))
}

impl Exposition {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// A metric family of one `kind` (`counter`, `gauge`) with one sample per label set.
    pub fn family(&mut self, name: &str, kind: &str, help: &str, samples: &[(Vec<(&str, &str)>, f64)]) {
        self.head(name, kind, help);
        for (pairs, value) in samples {
            let _ = writeln!(self.0, "{name}{} {value}", labels(pairs));
        }
    }

    /// A counter without labels.
    pub fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, "counter", help, &[(Vec::new(), value as f64)]);
    }

    /// A gauge without labels.
    pub fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.family(name, "gauge", help, &[(Vec::new(), value)]);
    }

    /// A histogram from cumulative buckets.
    pub fn histogram(&mut self, name: &str, help: &str, buckets: &LatencyBuckets) {
        self.head(name, "histogram", help);
        for (le, count) in &buckets.cumulative {
            let _ = writeln!(self.0, "{name}_bucket{{le=\"{le}\"}} {count}");
        }
        let _ = writeln!(self.0, "{name}_bucket{{le=\"+Inf\"}} {}", buckets.count);
        let _ = writeln!(self.0, "{name}_sum {}", buckets.sum_seconds);
        let _ = writeln!(self.0, "{name}_count {}", buckets.count);
    }

    /// The text.
    pub fn finish(self) -> String {
        self.0
    }
}

impl Sources {
    /// The exposition of every metric.
    pub fn render(&self, health: &Health) -> String {
        let mut out = Exposition::default();
        let metrics = self.client.metrics();
        let m = metrics.snapshot();
        out.family(
            "qadf_build_info",
            "gauge",
            "The running qadf-stream version.",
            &[(vec![("version", env!("CARGO_PKG_VERSION"))], 1.0)],
        );
        out.counter("qadf_messages_consumed_total", "Kafka messages delivered to the pipeline.", m.messages_consumed);
        out.counter("qadf_samples_consumed_total", "Samples decoded from consumed messages.", m.samples_consumed);
        out.counter("qadf_samples_processed_total", "Samples through completed batches.", m.samples.total);
        out.counter("qadf_samples_stored_total", "Samples newly stored in the history.", m.samples_stored);
        out.counter("qadf_batches_processed_total", "Batches that completed the pipeline.", m.batches_processed);
        out.counter("qadf_batches_failed_total", "Batches refused by a stage or rule.", m.batches_failed);
        out.counter("qadf_errors_total", "Failures of any stage, each counted once.", m.errors_total);
        let reasons: Vec<(Vec<(&str, &str)>, f64)> = DEAD_LETTER_REASONS
            .iter()
            .map(|r| (vec![("reason", *r)], m.dead_letters_by_reason.get(*r).copied().unwrap_or(0) as f64))
            .collect();
        out.family(
            "qadf_dead_letters_total",
            "counter",
            "Messages or samples sent to the dead-letter topic, by reason.",
            &reasons,
        );
        let severities: Vec<(String, &'static str, u64)> =
            m.alerts_by_rule.iter().map(|(rule, s, n)| (rule.clone(), severity(*s), *n)).collect();
        let alerts: Vec<(Vec<(&str, &str)>, f64)> = severities
            .iter()
            .map(|(rule, s, n)| (vec![("rule", rule.as_str()), ("severity", *s)], *n as f64))
            .collect();
        out.family("qadf_alerts_total", "counter", "Quality alerts raised, by rule and severity.", &alerts);
        out.counter("qadf_alerts_suppressed_total", "Alerts suppressed as duplicates.", m.alerts_suppressed);
        let partitions: Vec<String> = m.consumer_lag_by_partition.iter().map(|(p, _)| p.to_string()).collect();
        let lag: Vec<(Vec<(&str, &str)>, f64)> = m
            .consumer_lag_by_partition
            .iter()
            .zip(&partitions)
            .map(|((_, l), p)| (vec![("partition", p.as_str())], *l as f64))
            .collect();
        out.family("qadf_consumer_lag_messages", "gauge", "Messages behind the log end, per partition.", &lag);
        let bounds: Vec<Duration> = LATENCY_BOUNDS.iter().map(|s| Duration::from_secs_f64(*s)).collect();
        let (batch, store) = metrics.latency_buckets(&bounds);
        out.histogram("qadf_batch_duration_seconds", "Time one batch took through the pipeline.", &batch);
        out.histogram("qadf_store_duration_seconds", "Time the group commit that stored a batch took.", &store);
        out.gauge("qadf_store_queue_samples", "Samples waiting for the history writer.", m.store_queue_samples as f64);
        if let Some(kafka) = &self.kafka {
            let k = kafka.get();
            out.counter("qadf_kafka_fetches_total", "Fetch requests sent to the broker.", k.fetches);
            out.counter("qadf_kafka_fetch_errors_total", "Fetch requests that failed.", k.fetch_errors);
            out.counter("qadf_kafka_reconnects_total", "Broker connections rebuilt after a failure.", k.reconnects);
            out.counter("qadf_kafka_commits_total", "Offset commits written.", k.commits);
            out.counter(
                "qadf_kafka_assignments_total",
                "Partition assignments received from the consumer group (0 with static assignment).",
                k.assignments,
            );
            out.counter(
                "qadf_kafka_drain_timeouts_total",
                "Partitions released before their data was stored and committed (drain_timeout_ms passed).",
                k.drain_timeouts,
            );
            out.counter(
                "qadf_kafka_commits_refused_total",
                "Offset commits the group coordinator refused (a rebalance under way).",
                k.commits_refused,
            );
        }
        if let Some(live) = &self.live_view {
            out.counter(
                "qadf_live_view_writes_total",
                "Keys written to the Redis live view.",
                live.writes.load(Ordering::Relaxed),
            );
            out.counter(
                "qadf_live_view_failures_total",
                "Redis live-view rounds in which a write failed.",
                live.failed.load(Ordering::Relaxed),
            );
        }
        if let Some(feed) = &self.feed {
            let f = feed.statistics();
            out.gauge("qadf_dashboard_viewers", "Live pages connected.", f.subscribers as f64);
            out.counter("qadf_dashboard_frames_total", "Frames published to the live pages.", f.frames_sent);
            out.counter("qadf_dashboard_frames_dropped_total", "Frames slow viewers could not take.", f.frames_dropped);
        }
        out.gauge(
            "qadf_builds",
            "Builds seen on the stream (at most 256 remembered).",
            self.client.builds().len() as f64,
        );
        let (broker, store) = health.up();
        out.gauge("qadf_broker_up", "1 when the broker answered the last health ping.", f64::from(u8::from(broker)));
        out.gauge("qadf_store_up", "1 when the store answered the last health ping.", f64::from(u8::from(store)));
        let ready = health.readiness(m.consumer_lag).ready;
        out.gauge("qadf_ready", "1 when /health/ready answers ready.", f64::from(u8::from(ready)));
        out.gauge("qadf_uptime_seconds", "Seconds since the statistics started.", m.samples.uptime_seconds);
        out.finish()
    }
}

fn severity(s: qadf_core_types::Severity) -> &'static str {
    match s {
        qadf_core_types::Severity::Info => "info",
        qadf_core_types::Severity::Warning => "warning",
        qadf_core_types::Severity::Critical => "critical",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped_and_families_have_help_and_type() {
        let mut out = Exposition::default();
        out.family("x_total", "counter", "Help.", &[(vec![("rule", "a\"b\\c\nd")], 2.0)]);
        out.histogram(
            "d_seconds",
            "Durations.",
            &LatencyBuckets { cumulative: vec![(0.5, 1), (1.0, 3)], count: 4, sum_seconds: 6.5 },
        );
        let text = out.finish();
        assert!(
            text.contains("# HELP x_total Help.\n# TYPE x_total counter\nx_total{rule=\"a\\\"b\\\\c\\nd\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("d_seconds_bucket{le=\"0.5\"} 1\nd_seconds_bucket{le=\"1\"} 3\nd_seconds_bucket{le=\"+Inf\"} 4\nd_seconds_sum 6.5\nd_seconds_count 4\n"), "{text}");
    }

    #[test]
    fn a_fresh_client_exposes_every_family_with_zeros() {
        let client = Arc::new(StreamingClient::new(qadf_core_types::StreamingConfig::default()).unwrap());
        let sources = Sources { client, kafka: None, live_view: None, feed: None };
        let text = sources.render(&Health::new(0));
        for line in [
            "qadf_samples_processed_total 0",
            "qadf_dead_letters_total{reason=\"store_refused\"} 0",
            "qadf_batch_duration_seconds_count 0",
            "qadf_ready 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
        }
    }
}
