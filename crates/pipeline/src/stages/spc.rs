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

/// d₂ constants for subgroup sizes 2..=10 (expected range of n standard normals).
const D2: [f64; 9] = [1.128, 1.693, 2.059, 2.326, 2.534, 2.704, 2.847, 2.970, 3.078];

/// Which chart to keep.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ChartKind {
    /// Shewhart X̄ chart (limits from R̄) with subgroups of `subgroup_size` (2..=10).
    XBarR {
        /// Values per subgroup.
        subgroup_size: usize,
    },
    /// EWMA of individual values with weight `lambda` (0 < λ ≤ 1) and limit width `l` sigmas.
    Ewma {
        /// Weight of the newest value.
        lambda: f64,
        /// Limit width in sigmas (typically 2.7-3).
        l: f64,
    },
}

/// Names of the Western Electric rules the newest point violates, given the standardized history
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

#[derive(Debug, Default)]
struct ChartState {
    subgroup: Vec<f64>,
    warmup: Vec<(f64, f64)>,
    limits: Option<(f64, f64)>,
    history: VecDeque<f64>,
    ewma: f64,
    t: u32,
    last_value: Option<f64>,
}

/// Keeps a control chart of `signal` per (build, source) and reports verdicts and alerts.
pub struct SpcStage {
    name: String,
    signal: String,
    chart: ChartKind,
    warmup: usize,
    states: Mutex<HashMap<(String, String), ChartState>>,
}

impl SpcStage {
    /// A chart of `signal` learning its limits from the first `warmup` subgroups (X̄-R) or values (EWMA).
    pub fn new(signal: impl Into<String>, chart: ChartKind, warmup: usize) -> Result<SpcStage, StageError> {
        let signal = signal.into();
        let kind = match chart {
            ChartKind::XBarR { subgroup_size } if (2..=10).contains(&subgroup_size) => "xbar",
            ChartKind::Ewma { lambda, l } if lambda > 0.0 && lambda <= 1.0 && l > 0.0 => "ewma",
            _ => return Err(StageError::new("spc", format!("invalid chart parameters {chart:?}"))),
        };
        if warmup < 2 {
            return Err(StageError::new("spc", "warm-up needs at least 2 points"));
        }
        Ok(SpcStage { name: format!("spc:{kind}:{signal}"), signal, chart, warmup, states: Mutex::default() })
    }

    /// Feeds one value; returns the plotted point's verdict once limits are known.
    fn feed(&self, state: &mut ChartState, x: f64) -> Option<Verdict> {
        match self.chart {
            ChartKind::XBarR { subgroup_size } => {
                state.subgroup.push(x);
                if state.subgroup.len() < subgroup_size {
                    return None;
                }
                let n = subgroup_size as f64;
                let mean = state.subgroup.iter().sum::<f64>() / n;
                let range = state.subgroup.iter().cloned().fold(f64::MIN, f64::max)
                    - state.subgroup.iter().cloned().fold(f64::MAX, f64::min);
                state.subgroup.clear();
                let Some((cl, sigma)) = state.limits else {
                    state.warmup.push((mean, range));
                    if state.warmup.len() == self.warmup {
                        let m = state.warmup.len() as f64;
                        let cl = state.warmup.iter().map(|w| w.0).sum::<f64>() / m;
                        let r_bar = state.warmup.iter().map(|w| w.1).sum::<f64>() / m;
                        state.limits = Some((cl, r_bar / (D2[subgroup_size - 2] * n.sqrt())));
                    }
                    return None;
                };
                Some(self.judge(state, mean, cl, 3.0 * sigma))
            }
            ChartKind::Ewma { lambda, l } => {
                let Some((mu, sigma)) = state.limits else {
                    state.warmup.push((x, state.last_value.map_or(0.0, |p| (x - p).abs())));
                    state.last_value = Some(x);
                    if state.warmup.len() == self.warmup {
                        let m = state.warmup.len() as f64;
                        let mu = state.warmup.iter().map(|w| w.0).sum::<f64>() / m;
                        let mr_bar = state.warmup.iter().skip(1).map(|w| w.1).sum::<f64>() / (m - 1.0);
                        state.limits = Some((mu, mr_bar / D2[0]));
                        state.ewma = mu;
                    }
                    return None;
                };
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
        }
    }

    fn judge(&self, state: &mut ChartState, value: f64, cl: f64, half_width: f64) -> Verdict {
        // Standardize so the limit sits at 3: WE zones are thirds of the limit distance.
        let z = if half_width > 0.0 { 3.0 * (value - cl) / half_width } else { 0.0 };
        state.history.push_back(z);
        if state.history.len() > 8 {
            state.history.pop_front();
        }
        let violated = western_electric(state.history.make_contiguous());
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
        let mut states = self.states.lock();
        let mut latest: HashMap<(String, String), SpcResult> = HashMap::new();
        for s in &batch.samples {
            let Some(x) = s.signals.get(&self.signal) else { continue };
            let key = (s.build_id.to_string(), s.source_id.to_string());
            let state = states.entry(key.clone()).or_default();
            let Some(point) = self.feed(state, x).map(SpcResult::from) else { continue };
            if !point.in_control {
                result.alerts.push(Alert {
                    checkpoint: self.name.clone(),
                    severity: Severity::Warning,
                    build_id: s.build_id.to_string(),
                    layer: Some(s.layer),
                    position: s.position,
                    signal: Some(self.signal.clone()),
                    value: point.value,
                    threshold: if point.value > point.center_line {
                        point.upper_control_limit
                    } else {
                        point.lower_control_limit
                    },
                    timestamp: s.timestamp,
                    message: format!("{} out of control: {}", self.name, point.violated_rules.join("; ")),
                });
                result.spc_results.push(point.clone());
            }
            latest.insert(key, point);
        }
        result.spc_results.extend(latest.into_values().filter(|p| p.in_control));
        Ok(())
    }
}

#[cfg(test)]
mod tests;
