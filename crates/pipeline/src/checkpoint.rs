//! Quality checkpoints: named checks that run inside the pipeline and raise typed alerts.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use qadf_core_types::{Alert, Sample, SampleBatch, Severity, SpcResult};

use crate::stages::VoxelStage;

pub use qadf_core_types::rules::CheckpointAction;

/// The verdict of one check over one batch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CheckOutcome {
    /// Evaluations that passed.
    pub passed: u64,
    /// Evaluations that failed.
    pub failed: u64,
    /// One alert per failed evaluation (de-duplicated later by the pipeline).
    pub alerts: Vec<Alert>,
    /// Control-chart points to report (SPC checks).
    pub spc: Vec<SpcResult>,
}

/// A named quality check over a batch.
pub trait QualityCheck: Send + Sync {
    /// The checkpoint's name (alerts carry it).
    fn name(&self) -> &str;
    /// Evaluates the batch.
    fn check(&self, batch: &SampleBatch) -> CheckOutcome;
    /// Forgets what the check keeps of `build` (windows, charts, last samples): another consumer
    /// reads the build now, or its history is about to be replayed into a fresh state.
    fn forget(&self, _build: &str) {}
}

/// Drops the (build, source) streams of `build` from a per-stream state.
pub(crate) fn forget_streams<V>(streams: &mut HashMap<(String, String), V>, build: &str) {
    streams.retain(|(b, _), _| b != build);
}

/// An alert of check `check` at sample `s`.
pub(crate) fn alert(
    check: &str,
    severity: Severity,
    s: &Sample,
    signal: &str,
    value: f64,
    threshold: f64,
    message: String,
) -> Alert {
    Alert {
        checkpoint: check.to_owned(),
        severity,
        build_id: s.build_id.to_string(),
        layer: Some(s.layer),
        position: s.position,
        signal: Some(signal.to_owned()),
        unit: None,
        value,
        threshold,
        timestamp: s.timestamp,
        message,
    }
}

/// Warning and critical bands: a value is judged by the outermost band it leaves.
#[derive(Clone, Debug)]
pub(crate) struct Bands(Vec<(f64, f64, Severity)>);

impl Bands {
    /// The critical band (outermost) and the warning band, either may be absent.
    pub(crate) fn new(warning: Option<(f64, f64)>, critical: Option<(f64, f64)>) -> Bands {
        Bands(
            [(critical, Severity::Critical), (warning, Severity::Warning)]
                .into_iter()
                .filter_map(|(band, severity)| band.map(|(lo, hi)| (lo, hi, severity)))
                .collect(),
        )
    }

    /// `None` inside every band; else the limit crossed, "below" or "above", and the severity.
    pub(crate) fn judge(&self, v: f64) -> Option<(f64, &'static str, Severity)> {
        let &(lo, hi, severity) = self.0.iter().find(|(lo, hi, _)| !(v >= *lo && v <= *hi))?;
        Some(if v < lo { (lo, "below", severity) } else { (hi, "above", severity) })
    }
}

/// Each sample's `signal` must lie in its bands: outside the hard band a critical alert,
/// outside the soft band (only) a warning (e.g. melt-pool temperature limits).
#[derive(Clone, Debug)]
pub struct RangeCheck {
    name: String,
    signal: String,
    bands: Bands,
}

impl RangeCheck {
    /// A range check raising [`Severity::Critical`] alerts outside `[lo, hi]`.
    pub fn new(name: impl Into<String>, signal: impl Into<String>, lo: f64, hi: f64) -> RangeCheck {
        RangeCheck { name: name.into(), signal: signal.into(), bands: Bands::new(None, Some((lo, hi))) }
    }

    /// A range check with a soft (warning) band inside a hard (critical) band; either may be absent.
    pub fn bands(
        name: impl Into<String>,
        signal: impl Into<String>,
        warning: Option<(f64, f64)>,
        critical: Option<(f64, f64)>,
    ) -> RangeCheck {
        RangeCheck { name: name.into(), signal: signal.into(), bands: Bands::new(warning, critical) }
    }

    /// Sets the severity of every band's alerts.
    pub fn with_severity(mut self, severity: Severity) -> RangeCheck {
        for band in &mut self.bands.0 {
            band.2 = severity;
        }
        self
    }
}

impl QualityCheck for RangeCheck {
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self, batch: &SampleBatch) -> CheckOutcome {
        let mut out = CheckOutcome::default();
        for s in &batch.samples {
            let Some(v) = s.signals.get(&self.signal) else { continue };
            let Some((threshold, side, severity)) = self.bands.judge(v) else {
                out.passed += 1;
                continue;
            };
            out.failed += 1;
            let word = if severity == Severity::Critical { "critical" } else { "warning" };
            let message = format!("{} = {v} is {side} the {word} limit {threshold}", self.signal);
            out.alerts.push(alert(&self.name, severity, s, &self.signal, v, threshold, message));
        }
        out
    }
}

/// The batch's sample rate (per build and source) must be at least `min_hz` (catches dropouts).
#[derive(Clone, Debug)]
pub struct RateCheck {
    name: String,
    min_hz: f64,
}

impl RateCheck {
    /// A rate floor in samples per second.
    pub fn new(name: impl Into<String>, min_hz: f64) -> RateCheck {
        RateCheck { name: name.into(), min_hz }
    }
}

impl QualityCheck for RateCheck {
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self, batch: &SampleBatch) -> CheckOutcome {
        let mut out = CheckOutcome::default();
        let mut streams: HashMap<(&str, &str), (usize, &Sample, &Sample)> = HashMap::new();
        for s in &batch.samples {
            let e = streams.entry((&s.build_id, &s.source_id)).or_insert((0, s, s));
            e.0 += 1;
            if s.timestamp < e.1.timestamp {
                e.1 = s;
            }
            if s.timestamp > e.2.timestamp {
                e.2 = s;
            }
        }
        for (n, first, last) in streams.into_values() {
            let span = last.timestamp.seconds_since(first.timestamp);
            if n < 2 || span <= 0.0 {
                continue;
            }
            let rate = (n - 1) as f64 / span;
            if rate >= self.min_hz {
                out.passed += 1;
            } else {
                out.failed += 1;
                let message =
                    format!("{} samples/s from {} is below the floor {}", rate.round(), last.source_id, self.min_hz);
                let mut a = alert(&self.name, Severity::Warning, last, "rate", rate, self.min_hz, message);
                a.signal = None;
                out.alerts.push(a);
            }
        }
        out
    }
}

/// No gap between consecutive samples of a build and source within one layer may exceed `max_gap`
/// (catches sensor dropouts whatever the batch size; the gap before a new layer, the recoat, is
/// allowed). The last sample of each stream is remembered across batches.
#[derive(Debug)]
pub struct GapCheck {
    name: String,
    max_gap_ns: i64,
    last: Mutex<HashMap<(String, String), (u32, i64)>>,
}

impl GapCheck {
    /// A check that flags gaps longer than `max_gap`.
    pub fn new(name: impl Into<String>, max_gap: std::time::Duration) -> GapCheck {
        let max_gap_ns = i64::try_from(max_gap.as_nanos()).unwrap_or(i64::MAX);
        GapCheck { name: name.into(), max_gap_ns, last: Mutex::default() }
    }
}

impl QualityCheck for GapCheck {
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self, batch: &SampleBatch) -> CheckOutcome {
        let mut out = CheckOutcome::default();
        let mut last = self.last.lock();
        for run in batch.samples.chunk_by(|a, b| a.build_id == b.build_id && a.source_id == b.source_id) {
            let key = (run[0].build_id.to_string(), run[0].source_id.to_string());
            let mut previous = last.get(&key).copied();
            for s in run {
                let t = s.timestamp.as_nanos();
                if let Some((layer, before)) = previous
                    && layer == s.layer
                {
                    let gap = t.saturating_sub(before);
                    if gap <= self.max_gap_ns {
                        out.passed += 1;
                    } else {
                        out.failed += 1;
                        let (gap_ms, max_ms) = (gap as f64 / 1e6, self.max_gap_ns as f64 / 1e6);
                        let message =
                            format!("no sample from {} for {gap_ms:.3} ms (at most {max_ms:.3} ms)", s.source_id);
                        let mut a = alert(&self.name, Severity::Warning, s, "gap_ms", gap_ms, max_ms, message);
                        a.signal = None;
                        out.alerts.push(a);
                    }
                }
                previous = Some((s.layer, t));
            }
            if let Some(p) = previous {
                last.insert(key, p);
            }
        }
        out
    }

    fn forget(&self, build: &str) {
        forget_streams(&mut self.last.lock(), build);
    }
}

/// Each sample's `signal` must be within `k` standard deviations of the preceding `window` samples
/// of its build and source (a rolling z-score over a sliding window).
///
/// The window's sum and sum of squares are kept incrementally around a reference value (the
/// shifted-data algorithm, so large offsets such as 1900 K lose no precision) and re-summed exactly
/// every `window` values, so rounding cannot drift over a long stream.
#[derive(Debug)]
pub struct ZScoreCheck {
    name: String,
    signal: String,
    window: usize,
    k: f64,
    history: Mutex<HashMap<(String, String), Rolling>>,
}

#[derive(Debug, Default)]
struct Rolling {
    values: std::collections::VecDeque<f64>,
    reference: f64,
    sum: f64,
    sum_sq: f64,
    since_exact: usize,
}

impl Rolling {
    fn push(&mut self, v: f64, window: usize) {
        if self.values.is_empty() {
            self.reference = v;
        }
        if self.values.len() == window
            && let Some(old) = self.values.pop_front()
        {
            let d = old - self.reference;
            self.sum -= d;
            self.sum_sq -= d * d;
        }
        self.values.push_back(v);
        let d = v - self.reference;
        self.sum += d;
        self.sum_sq += d * d;
        self.since_exact += 1;
        if self.since_exact >= window {
            self.reference = self.values.iter().sum::<f64>() / self.values.len() as f64;
            self.sum = self.values.iter().map(|x| x - self.reference).sum();
            self.sum_sq = self.values.iter().map(|x| (x - self.reference) * (x - self.reference)).sum();
            self.since_exact = 0;
        }
    }

    /// Mean and sample standard deviation of the window.
    fn mean_std(&self) -> (f64, f64) {
        let n = self.values.len() as f64;
        let mean_d = self.sum / n;
        let var = ((self.sum_sq - n * mean_d * mean_d) / (n - 1.0)).max(0.0);
        (self.reference + mean_d, var.sqrt())
    }
}

impl ZScoreCheck {
    /// A z-score check over the last `window` samples (at least 2).
    pub fn new(name: impl Into<String>, signal: impl Into<String>, window: usize, k: f64) -> ZScoreCheck {
        ZScoreCheck { name: name.into(), signal: signal.into(), window: window.max(2), k, history: Mutex::default() }
    }
}

impl QualityCheck for ZScoreCheck {
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self, batch: &SampleBatch) -> CheckOutcome {
        let mut out = CheckOutcome::default();
        let mut history = self.history.lock();
        for run in batch.samples.chunk_by(|a, b| a.build_id == b.build_id && a.source_id == b.source_id) {
            let rolling = history.entry((run[0].build_id.to_string(), run[0].source_id.to_string())).or_default();
            for s in run {
                let Some(v) = s.signals.get(&self.signal) else { continue };
                if rolling.values.len() == self.window {
                    let (mean, std) = rolling.mean_std();
                    let z = if std > 0.0 { (v - mean) / std } else { 0.0 };
                    if z.abs() <= self.k {
                        out.passed += 1;
                    } else {
                        out.failed += 1;
                        let message = format!("{} = {v} is {z:.1} sigma from the recent mean {mean:.3}", self.signal);
                        out.alerts.push(alert(&self.name, Severity::Warning, s, &self.signal, z, self.k, message));
                    }
                }
                rolling.push(v, self.window);
            }
        }
        out
    }

    fn forget(&self, build: &str) {
        forget_streams(&mut self.history.lock(), build);
    }
}

/// A voxel whose mean `signal` exceeds the current layer's mean by more than `k` standard
/// deviations (over the layer's samples so far) is a hot spot. Place it after the voxel stage.
pub struct HotSpotCheck {
    name: String,
    signal: String,
    k: f64,
    min_count: u64,
    voxels: Arc<VoxelStage>,
    /// Per build: (layer, Welford count, mean, M2) of the signal over the layer's samples.
    layers: Mutex<HashMap<String, (u32, u64, f64, f64)>>,
}

impl HotSpotCheck {
    /// A hot-spot check over `voxels`; a voxel needs `min_count` samples before it is judged.
    pub fn new(
        name: impl Into<String>,
        signal: impl Into<String>,
        k: f64,
        min_count: u64,
        voxels: Arc<VoxelStage>,
    ) -> HotSpotCheck {
        HotSpotCheck { name: name.into(), signal: signal.into(), k, min_count, voxels, layers: Mutex::default() }
    }
}

impl QualityCheck for HotSpotCheck {
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self, batch: &SampleBatch) -> CheckOutcome {
        let mut out = CheckOutcome::default();
        let mut layers = self.layers.lock();
        for run in batch.samples.chunk_by(|a, b| a.build_id == b.build_id) {
            let Some(voxels) = self.voxels.grid(&run[0].build_id) else { continue };
            let stats = layers.entry(run[0].build_id.to_string()).or_insert((run[0].layer, 0, 0.0, 0.0));
            voxels.read(|grid| {
                for s in run {
                    let (Some(v), Some(p)) = (s.signals.get(&self.signal), s.position) else { continue };
                    if stats.0 != s.layer {
                        *stats = (s.layer, 0, 0.0, 0.0);
                    }
                    stats.1 += 1;
                    let delta = v - stats.2;
                    stats.2 += delta / stats.1 as f64;
                    stats.3 += delta * (v - stats.2);
                    if stats.1 < 30 {
                        continue;
                    }
                    let std = (stats.3 / (stats.1 - 1) as f64).sqrt();
                    let limit = stats.2 + self.k * std;
                    let Some(index) = grid.voxel_index(&p) else { continue };
                    let Some(cell) = grid.cell(&self.signal, index) else { continue };
                    if cell.count < self.min_count {
                        continue;
                    }
                    if cell.mean <= limit {
                        out.passed += 1;
                    } else {
                        out.failed += 1;
                        let message = format!(
                            "voxel mean {} = {:.1} exceeds the layer's {:.1} + {} sigma",
                            self.signal, cell.mean, stats.2, self.k
                        );
                        let mut a = alert(&self.name, Severity::Critical, s, &self.signal, cell.mean, limit, message);
                        a.position = Some(grid.voxel_center(index));
                        out.alerts.push(a);
                    }
                }
            });
        }
        out
    }

    fn forget(&self, build: &str) {
        self.layers.lock().remove(build);
    }
}

/// A checkpoint from a predicate over the whole batch (the upstream `add_quality_checkpoint`).
pub struct FnCheck<F> {
    name: String,
    predicate: F,
}

impl<F: Fn(&SampleBatch) -> bool + Send + Sync> FnCheck<F> {
    /// A check that passes when `predicate` holds for the batch.
    pub fn new(name: impl Into<String>, predicate: F) -> FnCheck<F> {
        FnCheck { name: name.into(), predicate }
    }
}

impl<F: Fn(&SampleBatch) -> bool + Send + Sync> QualityCheck for FnCheck<F> {
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self, batch: &SampleBatch) -> CheckOutcome {
        if (self.predicate)(batch) {
            return CheckOutcome { passed: 1, ..CheckOutcome::default() };
        }
        let first = batch.samples.first();
        CheckOutcome {
            passed: 0,
            failed: 1,
            spc: Vec::new(),
            alerts: vec![Alert {
                checkpoint: self.name.clone(),
                severity: Severity::Warning,
                build_id: first.map_or_else(|| qadf_core_types::UNKNOWN.to_owned(), |s| s.build_id.to_string()),
                layer: first.map(|s| s.layer),
                position: None,
                signal: None,
                unit: None,
                value: 0.0,
                threshold: 1.0,
                timestamp: first.map_or_else(qadf_core_types::Timestamp::now, |s| s.timestamp),
                message: format!("checkpoint `{}` failed for a batch of {} samples", self.name, batch.len()),
            }],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Rolling;

    /// The incremental window agrees with a naive recomputation after a long stream near 1900.
    #[test]
    fn rolling_window_statistics_do_not_drift() {
        let window = 50;
        let mut rolling = Rolling::default();
        let mut all = Vec::new();
        for i in 0..100_000u64 {
            let v = 1900.0 + ((i * 7919) % 101) as f64 * 0.37 - 18.0;
            rolling.push(v, window);
            all.push(v);
            if i % 9973 == 0 && all.len() >= window {
                let w = &all[all.len() - window..];
                let mean = w.iter().sum::<f64>() / window as f64;
                let std = (w.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (window - 1) as f64).sqrt();
                let (m, s) = rolling.mean_std();
                assert!((m - mean).abs() < 1e-9 && (s - std).abs() < 1e-9, "at {i}: ({m}, {s}) vs ({mean}, {std})");
            }
        }
    }
}
