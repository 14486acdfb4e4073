//! What processing a batch produced: `StreamingResult`, alerts and SPC verdicts.

use std::collections::BTreeMap;

use nalgebra::Point3;
use serde::{Deserialize, Serialize};

use crate::time::Timestamp;
use crate::traits::Origin;

/// How urgent an alert is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth recording.
    Info,
    /// Outside a soft limit; an engineer should look.
    Warning,
    /// Outside a hard limit; the part is at risk.
    Critical,
}

/// A failed quality checkpoint: what, where, when, and by how much.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// The checkpoint (condition) that failed.
    pub checkpoint: String,
    /// How urgent it is.
    pub severity: Severity,
    /// The build concerned.
    pub build_id: String,
    /// The layer concerned, if known.
    pub layer: Option<u32>,
    /// Where, in mm, if known.
    pub position: Option<Point3<f64>>,
    /// The signal checked, if any.
    pub signal: Option<String>,
    /// The unit of `value` and `threshold`, when the rule declares one.
    #[serde(default)]
    pub unit: Option<String>,
    /// The observed value.
    pub value: f64,
    /// The limit it crossed.
    pub threshold: f64,
    /// When the offending sample was measured.
    pub timestamp: Timestamp,
    /// A sentence for the operator.
    pub message: String,
}

/// One statistical-process-control verdict for one signal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpcResult {
    /// Chart kind and name, e.g. "xbar:temperature" or "ewma:temperature".
    pub chart: String,
    /// The signal charted.
    pub signal: String,
    /// The plotted statistic.
    pub value: f64,
    /// Centre line.
    pub center_line: f64,
    /// Upper control limit.
    pub upper_control_limit: f64,
    /// Lower control limit.
    pub lower_control_limit: f64,
    /// Whether no rule was violated.
    pub in_control: bool,
    /// Names of the violated rules (e.g. "WE1: one point beyond 3 sigma").
    pub violated_rules: Vec<String>,
}

/// Input that could not be used, kept with the reason so it can go to the dead-letter path.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Why it was rejected, e.g. "invalid JSON at line 1, column 5: ...".
    pub reason: String,
    /// Where it came from, when it came from a log.
    pub origin: Option<Origin>,
    /// For a single refused sample: its index within the message at `origin` (the payload is then
    /// that sample in bincode); `None` when the payload is the whole original message.
    #[serde(default)]
    pub sample_index: Option<usize>,
    /// The original bytes (a message), or the rejected sample in bincode.
    pub payload: Vec<u8>,
}

/// Everything one processed batch produced (the Python original's fields, typed).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamingResult {
    /// When processing finished.
    pub timestamp: Timestamp,
    /// Samples accepted and processed.
    pub processed_count: usize,
    /// Samples rejected (invalid, out of bounds, ...), each also counted by reason in `quality_metrics`.
    pub rejected_count: usize,
    /// The rejected input itself with reasons, for the dead-letter path.
    pub dead_letters: Vec<DeadLetter>,
    /// Wall time spent on the batch in ms.
    pub processing_time_ms: f64,
    /// Voxel cells updated.
    pub voxel_updates: u64,
    /// Named quality metrics (finite numbers only; use [`StreamingResult::set_metric`]).
    pub quality_metrics: BTreeMap<String, f64>,
    /// SPC verdicts.
    pub spc_results: Vec<SpcResult>,
    /// Alerts raised.
    pub alerts: Vec<Alert>,
    /// Reports of the layers this batch closed (a build's next layer started).
    #[serde(default)]
    pub layer_reports: Vec<crate::LayerReport>,
    /// Output of each stage that reported one, keyed by stage name (nothing is discarded).
    pub stage_outputs: BTreeMap<String, serde_json::Value>,
    /// Free-form context (source, partition range, ...).
    pub metadata: BTreeMap<String, String>,
}

impl DeadLetter {
    /// A refused sample's dead letter: the sample in bincode (standard configuration), origin and
    /// index unknown until the consumer traces it to its message.
    pub fn of_sample(reason: impl Into<String>, sample: &crate::Sample) -> DeadLetter {
        DeadLetter {
            reason: reason.into(),
            origin: None,
            sample_index: None,
            payload: bincode::serde::encode_to_vec(sample, bincode::config::standard()).unwrap_or_default(),
        }
    }

    /// The refused sample this dead letter holds, if its payload is one (see [`DeadLetter::of_sample`]).
    pub fn sample(&self) -> Option<crate::Sample> {
        bincode::serde::decode_from_slice(&self.payload, bincode::config::standard()).ok().map(|(s, _)| s)
    }
}

impl StreamingResult {
    /// Records a metric; a non-finite value is stored under `<name>.non_finite` as 1 so it stays visible.
    pub fn set_metric(&mut self, name: impl Into<String>, value: f64) {
        let name = name.into();
        if value.is_finite() {
            self.quality_metrics.insert(name, value);
        } else {
            self.quality_metrics.insert(format!("{name}.non_finite"), 1.0);
        }
    }

    /// Adds `by` to a counting metric.
    pub fn add_to_metric(&mut self, name: &str, by: f64) {
        *self.quality_metrics.entry(name.to_owned()).or_insert(0.0) += by;
    }
}
