//! `SpcStage`: statistical process control per (build, source) for one signal.
//!
//! Charts (Montgomery, *Introduction to Statistical Quality Control*):
//! - X̄-R: subgroups of `n` consecutive values; after `warmup` subgroups the centre line is the mean
//!   of subgroup means and σ(X̄) = R̄ / (d₂ √n). Points are judged by the Western Electric rules.
//! - EWMA: z_t = λ x_t + (1 − λ) z_{t−1}; after `warmup` values, μ₀ is their mean and σ = MR̄ / 1.128;
//!   limits μ₀ ± L σ √(λ / (2 − λ) · (1 − (1 − λ)^{2t})).

use std::collections::{HashMap, VecDeque};

use parking_lot::Mutex;
use qadf_core_types::{Alert, SampleBatch, Severity, SpcResult, Stage, StageError, StreamingResult};

use crate::checkpoint::{CheckOutcome, QualityCheck};
use qadf_core_types::rules::RunRule;

/// d₂ constants for subgroup sizes 2..=25 (expected range of n standard normals).
const D2: [f64; 24] = [
    1.128, 1.693, 2.059, 2.326, 2.534, 2.704, 2.847, 2.970, 3.078, 3.173, 3.258, 3.336, 3.407, 3.472, 3.532, 3.588,
    3.640, 3.689, 3.735, 3.778, 3.819, 3.858, 3.895, 3.931,
];

/// Largest subgroup of the X̄ charts.
pub const MAX_SUBGROUP: usize = 25;

/// c₄(n) = √(2/(n−1)) Γ(n/2) / Γ((n−1)/2): the expected sample standard deviation of n standard
/// normals (bias of S). Computed from Γ(x+1) = x Γ(x), starting at Γ(1)/Γ(½) = 1/√π.
fn c4(n: usize) -> f64 {
    let mut ratio = 1.0 / std::f64::consts::PI.sqrt(); // Γ(n/2)/Γ((n−1)/2) at n = 2
    for m in 2..n {
        ratio = (m as f64 - 1.0) / 2.0 / ratio;
    }
    (2.0 / (n as f64 - 1.0)).sqrt() * ratio
}

/// Which chart to keep: the rules file's chart (one type for both).
pub use qadf_core_types::rules::Chart as ChartKind;

/// Names of the Western Electric rules the newest point violates (Nelson's others: [`nelson`]), given the standardized history
/// `z` (newest last). A rule only fires when the newest point takes part in it.
pub fn western_electric(z: &[f64]) -> Vec<&'static str> {
    let mut violated = Vec::new();
    let Some(&last) = z.last() else { return violated };
    let tail = |n: usize| &z[z.len().saturating_sub(n)..];
    if last.abs() > 3.0 {
        violated.push("WE1: one point beyond 3 sigma");
    }
    let side = last.signum();
    let beyond = |n: usize, k: f64| tail(n).iter().filter(|v| v.signum() == side && v.abs() > k).count();
    if last.abs() > 2.0 && z.len() >= 3 && beyond(3, 2.0) >= 2 {
        violated.push("WE2: 2 of 3 beyond 2 sigma on one side");
    }
    if last.abs() > 1.0 && z.len() >= 5 && beyond(5, 1.0) >= 4 {
        violated.push("WE3: 4 of 5 beyond 1 sigma on one side");
    }
    if z.len() >= 8 && last != 0.0 && tail(8).iter().all(|v| v.signum() == side && *v != 0.0) {
        violated.push("WE4: 8 in a row on one side of the centre line");
    }
    violated
}

/// Names of the Nelson rules beyond Western Electric's that the newest point completes, given the
/// standardized history `z` (newest last): N2, N3, N4, N7, N8 (Nelson, *J. Quality Technology*, 1984).
pub fn nelson(z: &[f64]) -> Vec<&'static str> {
    let mut violated = Vec::new();
    let tail = |n: usize| (z.len() >= n).then(|| &z[z.len() - n..]);
    let one_side = |w: &[f64]| w.iter().all(|v| *v > 0.0) || w.iter().all(|v| *v < 0.0);
    if tail(9).is_some_and(one_side) {
        violated.push("N2: 9 in a row on one side of the centre line");
    }
    // The direction of each step: +1 up, -1 down, 0 level (`f64::signum` calls 0 positive).
    let steps = |w: &[f64]| w.windows(2).map(|p| (p[1] > p[0]) as i8 - (p[1] < p[0]) as i8).collect::<Vec<i8>>();
    if tail(6).is_some_and(|w| {
        let s = steps(w);
        s.iter().all(|d| *d > 0) || s.iter().all(|d| *d < 0)
    }) {
        violated.push("N3: 6 in a row steadily increasing or decreasing");
    }
    if tail(14).is_some_and(|w| steps(w).windows(2).all(|d| d[0] != 0 && d[0] == -d[1])) {
        violated.push("N4: 14 in a row alternating up and down");
    }
    if tail(15).is_some_and(|w| w.iter().all(|v| v.abs() < 1.0)) {
        violated.push("N7: 15 in a row within 1 sigma of the centre line");
    }
    if tail(8).is_some_and(|w| w.iter().all(|v| v.abs() > 1.0) && !one_side(w)) {
        violated.push("N8: 8 in a row beyond 1 sigma, on both sides");
    }
    violated
}

#[derive(Debug, Default)]
struct ChartState {
    subgroup: Vec<f64>,
    warmup: Vec<(f64, f64)>,
    limits: Option<(f64, f64)>,
    history: VecDeque<f64>,
    ewma: f64,
    t: u32,
    last_value: Option<f64>,
    /// CUSUM sums (C⁺, C⁻).
    cusum: (f64, f64),
}

/// Keeps a control chart of `signal` per (build, source) and reports verdicts and alerts: as a
/// pipeline stage, or as a quality check (a rules file's `spc` rule).
pub struct SpcStage {
    name: String,
    signal: String,
    chart: ChartKind,
    warmup: usize,
    /// Given limits: (centre line, sigma of individual values).
    fixed: Option<(f64, f64)>,
    /// The run rules X̄ points are judged by (default Western Electric 1-4).
    run_rules: Vec<RunRule>,
    severity: Severity,
    states: Mutex<HashMap<(String, String), ChartState>>,
}

impl SpcStage {
    /// A chart of `signal` learning its limits from the first `warmup` subgroups (X̄ charts) or
    /// values (EWMA, CUSUM).
    pub fn new(signal: impl Into<String>, chart: ChartKind, warmup: usize) -> Result<SpcStage, StageError> {
        let signal = signal.into();
        let kind = match chart {
            ChartKind::XBarR { subgroup_size } if (2..=MAX_SUBGROUP).contains(&subgroup_size) => "xbar",
            ChartKind::XBarS { subgroup_size } if (2..=MAX_SUBGROUP).contains(&subgroup_size) => "xbar_s",
            ChartKind::Ewma { lambda, l } if lambda > 0.0 && lambda <= 1.0 && l > 0.0 => "ewma",
            ChartKind::Cusum { k, h } if k >= 0.0 && h > 0.0 => "cusum",
            _ => return Err(StageError::new("spc", format!("invalid chart parameters {chart:?}"))),
        };
        if warmup < 2 {
            return Err(StageError::new("spc", "warm-up needs at least 2 points"));
        }
        Ok(SpcStage {
            name: format!("spc:{kind}:{signal}"),
            signal,
            chart,
            warmup,
            fixed: None,
            run_rules: vec![RunRule::We1, RunRule::We2, RunRule::We3, RunRule::We4],
            severity: Severity::Warning,
            states: Mutex::default(),
        })
    }

    /// Renames the chart (alerts and metrics carry the name).
    pub fn with_name(mut self, name: impl Into<String>) -> SpcStage {
        self.name = name.into();
        self
    }

    /// Given limits instead of a warm-up: the centre line and the sigma of individual values.
    pub fn with_fixed_limits(mut self, center: f64, sigma: f64) -> SpcStage {
        self.fixed = Some((center, sigma));
        self
    }

    /// Judges X̄ points by these run rules only.
    pub fn with_run_rules(mut self, rules: &[RunRule]) -> SpcStage {
        self.run_rules = rules.to_vec();
        self
    }

    /// Sets the severity of the chart's alerts (default warning).
    pub fn with_severity(mut self, severity: Severity) -> SpcStage {
        self.severity = severity;
        self
    }

    /// A new stream's state: limits set at once when they are given.
    fn fresh(&self) -> ChartState {
        let mut state = ChartState::default();
        if let Some((center, sigma)) = self.fixed {
            let n = self.chart.subgroup_size() as f64;
            state.limits = Some((center, sigma / n.sqrt()));
            state.ewma = center;
        }
        state
    }

    /// Feeds one value; returns the plotted point's verdict once limits are known.
    fn feed(&self, state: &mut ChartState, x: f64) -> Option<Verdict> {
        match self.chart {
            ChartKind::XBarR { subgroup_size } | ChartKind::XBarS { subgroup_size } => {
                state.subgroup.push(x);
                if state.subgroup.len() < subgroup_size {
                    return None;
                }
                let n = subgroup_size as f64;
                let mean = state.subgroup.iter().sum::<f64>() / n;
                let spread = match self.chart {
                    ChartKind::XBarS { .. } => {
                        (state.subgroup.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0)).sqrt()
                    }
                    _ => {
                        state.subgroup.iter().cloned().fold(f64::MIN, f64::max)
                            - state.subgroup.iter().cloned().fold(f64::MAX, f64::min)
                    }
                };
                state.subgroup.clear();
                let Some((cl, sigma)) = state.limits else {
                    state.warmup.push((mean, spread));
                    if state.warmup.len() == self.warmup {
                        let m = state.warmup.len() as f64;
                        let cl = state.warmup.iter().map(|w| w.0).sum::<f64>() / m;
                        let mean_spread = state.warmup.iter().map(|w| w.1).sum::<f64>() / m;
                        let unbias = match self.chart {
                            ChartKind::XBarS { .. } => c4(subgroup_size),
                            _ => D2[subgroup_size - 2],
                        };
                        state.limits = Some((cl, mean_spread / (unbias * n.sqrt())));
                    }
                    return None;
                };
                let mut v = self.judge(state, mean, cl, 3.0 * sigma);
                v.violated_rules.retain(|r| {
                    let code = r.split(':').next().unwrap_or_default();
                    self.run_rules.iter().any(|rule| rule.code() == code)
                });
                v.in_control = v.violated_rules.is_empty();
                Some(v)
            }
            ChartKind::Ewma { lambda, l } => {
                let (mu, sigma) = self.individuals_limits(state, x)?;
                state.t += 1;
                state.ewma = lambda * x + (1.0 - lambda) * state.ewma;
                let width =
                    l * sigma * (lambda / (2.0 - lambda) * (1.0 - (1.0 - lambda).powi(2 * state.t as i32))).sqrt();
                let mut v = self.judge(state, state.ewma, mu, width);
                // EWMA points are autocorrelated: only the limit rule applies.
                v.violated_rules =
                    if v.value > v.ucl || v.value < v.lcl { vec!["EWMA beyond its control limit"] } else { Vec::new() };
                v.in_control = v.violated_rules.is_empty();
                Some(v)
            }
            ChartKind::Cusum { k, h } => {
                let (mu, sigma) = self.individuals_limits(state, x)?;
                let (up, down) = state.cusum;
                let up = (up + x - mu - k * sigma).max(0.0);
                let down = (down + mu - k * sigma - x).max(0.0);
                let limit = h * sigma;
                let out = up > limit || down > limit;
                state.cusum = if out { (0.0, 0.0) } else { (up, down) };
                Some(Verdict {
                    chart: self.name.clone(),
                    signal: self.signal.clone(),
                    value: if up >= down { up } else { -down },
                    center_line: 0.0,
                    ucl: limit,
                    lcl: -limit,
                    in_control: !out,
                    violated_rules: if out { vec!["CUSUM beyond its decision interval"] } else { Vec::new() },
                })
            }
        }
    }

    /// The (mean, sigma) of individual values, learned over the warm-up (σ = MR̄ / d₂(2));
    /// `None` while still learning (the value is taken into the warm-up).
    fn individuals_limits(&self, state: &mut ChartState, x: f64) -> Option<(f64, f64)> {
        if let Some(limits) = state.limits {
            return Some(limits);
        }
        state.warmup.push((x, state.last_value.map_or(0.0, |p| (x - p).abs())));
        state.last_value = Some(x);
        if state.warmup.len() == self.warmup {
            let m = state.warmup.len() as f64;
            let mu = state.warmup.iter().map(|w| w.0).sum::<f64>() / m;
            let mr_bar = state.warmup.iter().skip(1).map(|w| w.1).sum::<f64>() / (m - 1.0);
            state.limits = Some((mu, mr_bar / D2[0]));
            state.ewma = mu;
        }
        None
    }

    fn judge(&self, state: &mut ChartState, value: f64, cl: f64, half_width: f64) -> Verdict {
        // Standardize so the limit sits at 3: WE zones are thirds of the limit distance.
        let z = if half_width > 0.0 { 3.0 * (value - cl) / half_width } else { 0.0 };
        state.history.push_back(z);
        if state.history.len() > 15 {
            state.history.pop_front();
        }
        let history = state.history.make_contiguous();
        let mut violated = western_electric(history);
        violated.extend(nelson(history));
        Verdict {
            chart: self.name.clone(),
            signal: self.signal.clone(),
            value,
            center_line: cl,
            ucl: cl + half_width,
            lcl: cl - half_width,
            in_control: violated.is_empty(),
            violated_rules: violated,
        }
    }

    /// Judges every value of the batch: the out-of-control points with their alerts, then the
    /// latest in-control point of each stream; and how many points were in and out of control.
    fn evaluate(&self, batch: &SampleBatch) -> CheckOutcome {
        let mut out = CheckOutcome::default();
        let mut states = self.states.lock();
        let mut latest: HashMap<(String, String), SpcResult> = HashMap::new();
        // One state lookup per run of a build and source (not per sample).
        for run in batch.samples.chunk_by(|a, b| a.build_id == b.build_id && a.source_id == b.source_id) {
            let key = (run[0].build_id.to_string(), run[0].source_id.to_string());
            let state = states.entry(key.clone()).or_insert_with(|| self.fresh());
            let mut last = None;
            for s in run {
                let Some(x) = s.signals.get(&self.signal) else { continue };
                let Some(point) = self.feed(state, x).map(SpcResult::from) else { continue };
                if point.in_control {
                    out.passed += 1;
                } else {
                    out.failed += 1;
                    let threshold = if point.value > point.center_line {
                        point.upper_control_limit
                    } else {
                        point.lower_control_limit
                    };
                    out.alerts.push(Alert {
                        checkpoint: self.name.clone(),
                        severity: self.severity,
                        build_id: s.build_id.to_string(),
                        layer: Some(s.layer),
                        position: s.position,
                        signal: Some(self.signal.clone()),
                        unit: None,
                        value: point.value,
                        threshold,
                        timestamp: s.timestamp,
                        message: format!("{} out of control: {}", self.name, point.violated_rules.join("; ")),
                    });
                    out.spc.push(point.clone());
                }
                last = Some(point);
            }
            // The latest point of each stream (a stream seen in several runs keeps its last).
            if let Some(point) = last {
                latest.insert(key, point);
            }
        }
        out.spc.extend(latest.into_values().filter(|p| p.in_control));
        out
    }
}

/// A verdict before it becomes a serializable [`SpcResult`].
struct Verdict {
    chart: String,
    signal: String,
    value: f64,
    center_line: f64,
    ucl: f64,
    lcl: f64,
    in_control: bool,
    violated_rules: Vec<&'static str>,
}

impl From<Verdict> for SpcResult {
    fn from(v: Verdict) -> SpcResult {
        SpcResult {
            chart: v.chart,
            signal: v.signal,
            value: v.value,
            center_line: v.center_line,
            upper_control_limit: v.ucl,
            lower_control_limit: v.lcl,
            in_control: v.in_control,
            violated_rules: v.violated_rules.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

impl Stage for SpcStage {
    fn name(&self) -> &str {
        &self.name
    }

    /// Reports every out-of-control point (with an alert) and the latest point of each stream.
    fn process(&self, batch: &mut SampleBatch, result: &mut StreamingResult) -> Result<(), StageError> {
        let outcome = self.evaluate(batch);
        result.alerts.extend(outcome.alerts);
        result.spc_results.extend(outcome.spc);
        Ok(())
    }
}

impl QualityCheck for SpcStage {
    fn name(&self) -> &str {
        &self.name
    }

    /// In-control points pass, out-of-control points fail (each with an alert).
    fn check(&self, batch: &SampleBatch) -> CheckOutcome {
        self.evaluate(batch)
    }

    fn forget(&self, build: &str) {
        crate::checkpoint::forget_streams(&mut self.states.lock(), build);
    }
}

#[cfg(test)]
mod tests;
