//! Statistics reported by the streaming layer; every float is finite or absent (never infinity).

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// A latency distribution in milliseconds; `None` until something was measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Number of measurements.
    pub count: u64,
    /// Smallest.
    pub min_ms: Option<f64>,
    /// Arithmetic mean.
    pub mean_ms: Option<f64>,
    /// Median.
    pub p50_ms: Option<f64>,
    /// 95th percentile.
    pub p95_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// Largest.
    pub max_ms: Option<f64>,
}

/// Client-level statistics (the Python original's fields, with correct rates).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamStatistics {
    /// Samples processed since start or the last reset.
    pub messages_processed: u64,
    /// Batches processed.
    pub batches_processed: u64,
    /// Sum of batch processing times in ms.
    pub total_processing_time_ms: f64,
    /// Batch latency distribution.
    pub latency: LatencySummary,
    /// Samples per second over the recent sliding window.
    pub throughput_window: f64,
    /// Samples per second since start or the last reset.
    pub throughput_uptime: f64,
    /// Seconds since start or the last reset.
    pub uptime_seconds: f64,
    /// When the last batch finished.
    pub last_update_time: Option<Timestamp>,
    /// Failures, one per failed batch or stage.
    pub errors: u64,
    /// Messages sent to the dead-letter path.
    pub dead_letters: u64,
    /// Messages behind the partitions' high watermarks.
    pub consumer_lag: u64,
    /// The same per partition, `(partition, messages behind)`, as of the consumer's last poll.
    #[serde(default)]
    pub consumer_lag_by_partition: Vec<(i32, u64)>,
    /// Samples the history stored (replays it already held not counted).
    #[serde(default)]
    pub samples_stored: u64,
}

/// `numerator / denominator`, or `None` when the denominator is zero or the result is not finite.
pub fn finite_ratio(numerator: f64, denominator: f64) -> Option<f64> {
    let r = numerator / denominator;
    (denominator != 0.0 && r.is_finite()).then_some(r)
}
