//! The verdict and report of one layer of one build: what a process engineer reads after each layer.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::result::Severity;
use crate::time::Timestamp;

/// OK, warning or critical: the worst severity among the layer's alerts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// No warning or critical alert.
    #[default]
    Ok,
    /// At least one warning, no critical alert.
    Warning,
    /// At least one critical alert.
    Critical,
}

impl Verdict {
    /// The verdict an alert of `severity` gives (info alerts leave a layer OK).
    pub fn of(severity: Severity) -> Verdict {
        match severity {
            Severity::Info => Verdict::Ok,
            Severity::Warning => Verdict::Warning,
            Severity::Critical => Verdict::Critical,
        }
    }
}

/// One signal over one layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerSignal {
    /// Values seen.
    pub count: u64,
    /// Their mean.
    pub mean: f64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
    /// Their sample standard deviation (0 for one value).
    pub std: f64,
}

/// The report of one layer of one build, made when the build's next layer starts (or the stream ends).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerReport {
    /// The build.
    pub build_id: String,
    /// The layer (counted from 0 at the plate, as everywhere).
    pub layer: u32,
    /// The verdict.
    pub verdict: Verdict,
    /// Samples of the layer.
    pub samples: u64,
    /// Samples of the layer that arrived after the build's next layer had started (not in `signals`).
    pub late_samples: u64,
    /// Measurement time of the first and last sample.
    pub first_sample: Timestamp,
    /// See `first_sample`.
    pub last_sample: Timestamp,
    /// Per signal: count, mean, min, max, std.
    pub signals: BTreeMap<String, LayerSignal>,
    /// Voxels the layer's samples fell in.
    pub voxels: u64,
    /// Of those, voxels holding a value outside a range rule's outer band.
    pub voxels_out_of_limits: u64,
    /// `voxels_out_of_limits / voxels` (0 when no voxel).
    pub out_of_limits_share: f64,
    /// Alerts raised (after de-duplication) by rule.
    pub alerts_by_rule: BTreeMap<String, u64>,
    /// Time without samples within the layer, from the gap rules' alerts, in ms.
    pub dropout_ms: f64,
}
