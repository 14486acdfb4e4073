//! Layer verdicts and reports: every processed batch's samples and alerts are folded into the
//! open layer of their build; a layer's [`LayerReport`] is made when its build's next layer
//! starts, or when the stream ends ([`LayerReporter::finish`]).

use std::collections::{BTreeMap, HashMap, HashSet};

use parking_lot::Mutex;
use qadf_core_types::rules::{Rule, RuleSpec};
use qadf_core_types::{Alert, LayerReport, LayerSignal, Sample, Timestamp, Verdict};
use qadf_voxel::VoxelGrid;

/// Most distinct x-y voxels one open layer remembers (beyond it, new voxels are not counted).
pub const MAX_LAYER_VOXELS: usize = 1 << 22;

/// Most builds with an open layer; a new build beyond it closes the oldest's layer.
pub const MAX_OPEN_BUILDS: usize = 64;

/// Running statistics of one signal (Welford).
#[derive(Clone, Copy)]
struct Running {
    count: u64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
}

impl Running {
    fn new() -> Running {
        Running { count: 0, mean: 0.0, m2: 0.0, min: f64::INFINITY, max: f64::NEG_INFINITY }
    }

    fn push(&mut self, v: f64) {
        self.count += 1;
        let delta = v - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (v - self.mean);
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    fn summary(&self) -> LayerSignal {
        let std = if self.count > 1 { (self.m2 / (self.count - 1) as f64).sqrt() } else { 0.0 };
        LayerSignal { count: self.count, mean: self.mean, min: self.min, max: self.max, std }
    }
}

/// What is known of a layer while it is open.
struct OpenLayer {
    layer: u32,
    opened: u64,
    samples: u64,
    late: u64,
    first: Timestamp,
    last: Timestamp,
    signals: BTreeMap<String, Running>,
    voxels: HashSet<u64>,
    flagged: HashSet<u64>,
    alerts: BTreeMap<String, u64>,
    verdict: Verdict,
    dropout_ms: f64,
}

impl OpenLayer {
    fn new(layer: u32, opened: u64, t: Timestamp) -> OpenLayer {
        OpenLayer {
            layer,
            opened,
            samples: 0,
            late: 0,
            first: t,
            last: t,
            signals: BTreeMap::new(),
            voxels: HashSet::new(),
            flagged: HashSet::new(),
            alerts: BTreeMap::new(),
            verdict: Verdict::Ok,
            dropout_ms: 0.0,
        }
    }

    fn report(self, build_id: &str) -> LayerReport {
        let (voxels, flagged) = (self.voxels.len() as u64, self.flagged.len() as u64);
        LayerReport {
            build_id: build_id.to_owned(),
            layer: self.layer,
            verdict: self.verdict,
            samples: self.samples,
            late_samples: self.late,
            first_sample: self.first,
            last_sample: self.last,
            signals: self.signals.iter().map(|(n, r)| (n.clone(), r.summary())).collect(),
            voxels,
            voxels_out_of_limits: flagged,
            out_of_limits_share: if voxels == 0 { 0.0 } else { flagged as f64 / voxels as f64 },
            alerts_by_rule: self.alerts,
            dropout_ms: self.dropout_ms,
        }
    }
}

/// Folds batches into per-layer reports.
pub struct LayerReporter {
    grid: VoxelGrid,
    judged: parking_lot::RwLock<Judged>,
    open: Mutex<(u64, HashMap<String, OpenLayer>)>,
}

/// What the rules say a report counts.
#[derive(Default)]
struct Judged {
    /// Range rules' outer bands: (signal, low, high).
    limits: Vec<(String, f64, f64)>,
    /// Names of the gap rules (their alert values are gaps in ms).
    gap_rules: HashSet<String>,
}

impl LayerReporter {
    /// A reporter placing samples in `grid`'s x-y voxels and judging them by `rules`' range bands.
    pub fn new(grid: VoxelGrid, rules: &[Rule]) -> LayerReporter {
        let reporter = LayerReporter { grid, judged: Default::default(), open: Mutex::default() };
        reporter.set_rules(rules);
        reporter
    }

    /// Judges from now on by `rules` (open layers stay open).
    pub fn set_rules(&self, rules: &[Rule]) {
        let mut limits = Vec::new();
        let mut gap_rules = HashSet::new();
        for rule in rules {
            match (&rule.spec, &rule.signal) {
                (RuleSpec::Range { warning, critical }, Some(signal)) => {
                    if let Some((lo, hi)) = warning.or(*critical) {
                        limits.push((signal.clone(), lo, hi));
                    }
                }
                (RuleSpec::Gap { .. }, _) => {
                    gap_rules.insert(rule.name.clone());
                }
                _ => {}
            }
        }
        *self.judged.write() = Judged { limits, gap_rules };
    }

    /// Folds one processed batch in; returns the reports of the layers it closed.
    pub fn observe(&self, samples: &[Sample], alerts: &[Alert]) -> Vec<LayerReport> {
        let mut closed = Vec::new();
        let judged = self.judged.read();
        let mut open = self.open.lock();
        let (ticket, layers) = &mut *open;
        for s in samples {
            let current = match layers.get_mut(s.build_id.as_str()) {
                Some(l) if l.layer == s.layer => l,
                Some(l) if s.layer < l.layer => {
                    l.late += 1;
                    continue;
                }
                _ => {
                    *ticket += 1;
                    let fresh = OpenLayer::new(s.layer, *ticket, s.timestamp);
                    if let Some(done) = layers.insert(s.build_id.to_string(), fresh) {
                        closed.push(done.report(&s.build_id));
                    } else if layers.len() > MAX_OPEN_BUILDS
                        && let Some(oldest) = layers.iter().min_by_key(|(_, l)| l.opened).map(|(b, _)| b.clone())
                        && let Some(done) = layers.remove(&oldest)
                    {
                        closed.push(done.report(&oldest));
                    }
                    layers.get_mut(s.build_id.as_str()).expect("just inserted")
                }
            };
            self.add(&judged, current, s);
        }
        for a in alerts {
            let Some(l) = layers.get_mut(a.build_id.as_str()) else { continue };
            if Some(l.layer) != a.layer {
                continue; // an alert of a layer already reported (cannot happen within one batch order)
            }
            *l.alerts.entry(a.checkpoint.clone()).or_default() += 1;
            l.verdict = l.verdict.max(Verdict::of(a.severity));
            if judged.gap_rules.contains(&a.checkpoint) && a.value.is_finite() {
                l.dropout_ms += a.value;
            }
        }
        closed
    }

    /// Closes every open layer (the stream ended): their reports.
    pub fn finish(&self) -> Vec<LayerReport> {
        let mut open = self.open.lock();
        let mut layers: Vec<(String, OpenLayer)> = open.1.drain().collect();
        layers.sort_by(|a, b| a.0.cmp(&b.0));
        layers.into_iter().map(|(b, l)| l.report(&b)).collect()
    }

    fn add(&self, judged: &Judged, l: &mut OpenLayer, s: &Sample) {
        l.samples += 1;
        l.first = l.first.min(s.timestamp);
        l.last = l.last.max(s.timestamp);
        for (name, v) in s.signals.iter() {
            match l.signals.get_mut(name) {
                Some(r) => r.push(v),
                None => {
                    let mut r = Running::new();
                    r.push(v);
                    l.signals.insert(name.to_owned(), r);
                }
            }
        }
        let Some([x, y, _]) = s.position.and_then(|p| self.grid.voxel_index(&p)) else { return };
        let key = (u64::from(x) << 32) | u64::from(y);
        if l.voxels.len() < MAX_LAYER_VOXELS {
            l.voxels.insert(key);
        }
        let outside =
            judged.limits.iter().any(|(signal, lo, hi)| s.signals.get(signal).is_some_and(|v| v < *lo || v > *hi));
        if outside && l.voxels.contains(&key) {
            l.flagged.insert(key);
        }
    }
}

#[cfg(test)]
mod tests;
