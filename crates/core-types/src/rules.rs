//! Quality rules as configuration: the rules file `run`, the demo and `StreamingClient` apply
//! (docs/RULES.md). A file is read into [`RulesConfig`] (TOML, unknown fields refused), then
//! [`RulesConfig::compile`] checks every rule and gives typed [`Rule`]s, naming every bad field.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{ConfigError, FieldError};
use crate::result::Severity;
use crate::sample::Sample;

/// The rules the demo applies (`examples/rules/demo.toml`): also what `run` applies when no
/// rules file is configured, said at start. Its limits are examples, not material data.
pub const DEMO_RULES: &str = include_str!("../../../examples/rules/demo.toml");

/// What the pipeline does with a batch whose checkpoint failed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointAction {
    /// Keep processing; the alerts are the record (the default).
    #[default]
    Continue,
    /// Stop processing this batch: it is not stored (`run` dead-letters it, naming the rule).
    DropBatch,
    /// Stop this stream (a `Pipeline` user stops; `run` treats it as `DropBatch` for now).
    StopStream,
}

/// A rules file as written: `sample_rate_hz` and a list of `[[rule]]` tables.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    /// The monitors' sample rate, for gap rules given in sample periods (`max_gap_periods`).
    pub sample_rate_hz: Option<f64>,
    /// The rules, in the order they run.
    #[serde(default, rename = "rule")]
    pub rules: Vec<RuleConfig>,
}

/// One `[[rule]]` table as written; which fields apply depends on `kind`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// The rule's name: alerts, metrics and reports carry it (unique in the file).
    pub name: String,
    /// `range`, `rate`, `gap`, `zscore`, `hotspot` or `spc`.
    pub kind: String,
    /// The signal judged (every kind but `rate` and `gap`).
    pub signal: Option<String>,
    /// The signal's unit, carried by the alerts (for the reader; values are not converted here).
    pub unit: Option<String>,
    /// `range`: `[low, high]` outside which a warning is raised.
    pub warning: Option<[f64; 2]>,
    /// `range`: `[low, high]` outside which a critical alert is raised.
    pub critical: Option<[f64; 2]>,
    /// `rate`: the lowest acceptable sample rate of a build and source, per second.
    pub min_hz: Option<f64>,
    /// `gap`: the longest gap between samples of one layer, in ms.
    pub max_gap_ms: Option<f64>,
    /// `gap`: the longest gap in sample periods (needs `sample_rate_hz`).
    pub max_gap_periods: Option<f64>,
    /// `zscore` and `window`: samples in the sliding window (default: the configuration's `window_size`).
    pub window: Option<usize>,
    /// `window`: a time window of this many ms of measurement time instead of a count of samples.
    pub window_ms: Option<f64>,
    /// `window`: samples a stream's buffer holds (default: the configuration's `buffer_size`).
    pub buffer: Option<usize>,
    /// `window`: `mean` (default) or `std` of the window, judged against the bands.
    pub statistic: Option<String>,
    /// `zscore` and `hotspot`: the limit in standard deviations.
    pub k: Option<f64>,
    /// `hotspot`: samples a voxel needs before it is judged (default 3).
    pub min_count: Option<u64>,
    /// `spc`: `xbar_r`, `xbar_s`, `ewma` or `cusum`.
    pub chart: Option<String>,
    /// `spc` `xbar_r`/`xbar_s`: values per subgroup (2-25).
    pub subgroup_size: Option<usize>,
    /// `spc` `ewma`: weight of the newest value (0 < λ ≤ 1; default 0.2).
    pub lambda: Option<f64>,
    /// `spc` `ewma`: limit width in sigmas (default 3).
    pub l: Option<f64>,
    /// `spc` `cusum`: allowance in sigmas (default 0.5).
    pub cusum_k: Option<f64>,
    /// `spc` `cusum`: decision interval in sigmas (default 5).
    pub cusum_h: Option<f64>,
    /// `spc`: subgroups (X̄ charts) or values learned before judging (default 20); unused with fixed limits.
    pub warmup: Option<usize>,
    /// `spc`: a fixed centre line instead of one learned over the warm-up (with `sigma`).
    pub center: Option<f64>,
    /// `spc`: a fixed process sigma of individual values (with `center`).
    pub sigma: Option<f64>,
    /// `spc` X̄ charts: the run rules applied, of `we1`-`we4` and `n2`, `n3`, `n4`, `n7`, `n8` (default `we1`-`we4`).
    pub run_rules: Option<Vec<String>>,
    /// The alert severity (default `warning`; a `range` rule's bands set their own).
    pub severity: Option<Severity>,
    /// What a firing rule does to its batch (default `continue`).
    pub action: Option<CheckpointAction>,
    /// One alert per condition per this many ms of measurement time (default: the
    /// configuration's `alert_dedup_interval_ms`).
    pub dedup_interval_ms: Option<u64>,
    /// Which samples the rule judges (default: all).
    pub scope: Option<Scope>,
}

/// Which samples a rule judges: every listed criterion must hold (an empty list holds for all).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// Only these builds.
    #[serde(default)]
    pub builds: Vec<String>,
    /// Only these sources (sensors).
    #[serde(default)]
    pub sources: Vec<String>,
    /// Only samples carrying every one of these tags with these values (from the message schema).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Only samples inside this plate region, `[x_min, y_min, x_max, y_max]` in mm.
    pub region: Option<[f64; 4]>,
}

impl Scope {
    /// Whether the scope holds for every sample.
    pub fn is_all(&self) -> bool {
        self.builds.is_empty() && self.sources.is_empty() && self.tags.is_empty() && self.region.is_none()
    }

    /// Whether `s` is judged by a rule of this scope.
    pub fn admits(&self, s: &Sample) -> bool {
        (self.builds.is_empty() || self.builds.iter().any(|b| *b == s.build_id))
            && (self.sources.is_empty() || self.sources.iter().any(|b| *b == s.source_id))
            && self.tags.iter().all(|(k, v)| s.tags.get(k) == Some(v.as_str()))
            && self.region.is_none_or(|[x0, y0, x1, y1]| {
                s.position.is_some_and(|p| (x0..=x1).contains(&p.x) && (y0..=y1).contains(&p.y))
            })
    }
}

/// A control chart (Montgomery, *Introduction to Statistical Quality Control*), checked.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Chart {
    /// Shewhart X̄ with limits from the mean range R̄ (subgroups of 2-25).
    XBarR {
        /// Values per subgroup.
        subgroup_size: usize,
    },
    /// Shewhart X̄ with limits from the mean standard deviation S̄ (subgroups of 2-25).
    XBarS {
        /// Values per subgroup.
        subgroup_size: usize,
    },
    /// EWMA of individual values.
    Ewma {
        /// Weight of the newest value.
        lambda: f64,
        /// Limit width in sigmas.
        l: f64,
    },
    /// Tabular CUSUM of individual values: C⁺ = max(0, C⁺ + x − μ − kσ), C⁻ = max(0, C⁻ + μ − kσ − x);
    /// out of control when either exceeds hσ (both then restart from 0).
    Cusum {
        /// Allowance in sigmas (typically 0.5).
        k: f64,
        /// Decision interval in sigmas (typically 4-5).
        h: f64,
    },
}

impl Chart {
    /// Values per plotted point (1 for EWMA and CUSUM).
    pub fn subgroup_size(self) -> usize {
        match self {
            Chart::XBarR { subgroup_size } | Chart::XBarS { subgroup_size } => subgroup_size,
            Chart::Ewma { .. } | Chart::Cusum { .. } => 1,
        }
    }
}

/// A run rule for X̄ charts, judged on the standardized points (limits at ±3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunRule {
    /// Western Electric 1 (Nelson 1): one point beyond 3 σ.
    We1,
    /// Western Electric 2 (Nelson 5): 2 of 3 beyond 2 σ on one side.
    We2,
    /// Western Electric 3 (Nelson 6): 4 of 5 beyond 1 σ on one side.
    We3,
    /// Western Electric 4: 8 in a row on one side of the centre line.
    We4,
    /// Nelson 2: 9 in a row on one side of the centre line.
    N2,
    /// Nelson 3: 6 in a row steadily increasing or decreasing.
    N3,
    /// Nelson 4: 14 in a row alternating up and down.
    N4,
    /// Nelson 7: 15 in a row within 1 σ (on either side).
    N7,
    /// Nelson 8: 8 in a row beyond 1 σ, on both sides.
    N8,
}

impl RunRule {
    /// Every rule, with its name in a rules file.
    pub const ALL: [(RunRule, &'static str); 9] = [
        (RunRule::We1, "we1"),
        (RunRule::We2, "we2"),
        (RunRule::We3, "we3"),
        (RunRule::We4, "we4"),
        (RunRule::N2, "n2"),
        (RunRule::N3, "n3"),
        (RunRule::N4, "n4"),
        (RunRule::N7, "n7"),
        (RunRule::N8, "n8"),
    ];

    /// The code a violation message starts with (`WE1`, `N3`, ...).
    pub fn code(self) -> &'static str {
        match self {
            RunRule::We1 => "WE1",
            RunRule::We2 => "WE2",
            RunRule::We3 => "WE3",
            RunRule::We4 => "WE4",
            RunRule::N2 => "N2",
            RunRule::N3 => "N3",
            RunRule::N4 => "N4",
            RunRule::N7 => "N7",
            RunRule::N8 => "N8",
        }
    }
}

/// Where a chart's limits come from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Limits {
    /// Learned over the first `n` subgroups (X̄ charts) or values.
    WarmUp(usize),
    /// Given: centre line and the sigma of individual values.
    Fixed {
        /// The centre line.
        center: f64,
        /// The sigma of individual values.
        sigma: f64,
    },
}

/// The span of a windowed rule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Span {
    /// The last `n` samples of the stream.
    Samples(usize),
    /// The samples of the last span of measurement time (up to the stream's newest sample).
    Time(Duration),
}

/// What a windowed rule judges of its window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Statistic {
    /// The mean of the window's values.
    Mean,
    /// Their sample standard deviation.
    Std,
}

/// What one rule checks, with its parameters checked.
#[derive(Clone, Debug, PartialEq)]
pub enum RuleSpec {
    /// Each value within `[low, high]` bands: outside `warning` a warning, outside `critical` a critical alert.
    Range {
        /// The soft band.
        warning: Option<(f64, f64)>,
        /// The hard band.
        critical: Option<(f64, f64)>,
    },
    /// A sample-rate floor per build and source.
    Rate {
        /// Samples per second.
        min_hz: f64,
    },
    /// No gap between samples of one layer longer than this.
    Gap {
        /// The longest gap.
        max_gap: Duration,
    },
    /// Each value within `k` sigmas of the preceding `window` values of its build and source.
    ZScore {
        /// Window length in samples.
        window: usize,
        /// Limit in sigmas.
        k: f64,
    },
    /// A statistic of each stream's temporal window (the buffer crate's), after each batch,
    /// within `[low, high]` bands as for `Range`.
    Window {
        /// Count or time window.
        span: Span,
        /// Samples each stream's buffer holds.
        buffer: usize,
        /// Mean or standard deviation.
        statistic: Statistic,
        /// The soft band.
        warning: Option<(f64, f64)>,
        /// The hard band.
        critical: Option<(f64, f64)>,
    },
    /// A voxel's mean within `k` sigmas of its layer's.
    HotSpot {
        /// Limit in sigmas.
        k: f64,
        /// Samples a voxel needs before it is judged.
        min_count: u64,
    },
    /// A control chart of the signal per build and source.
    Spc {
        /// Which chart.
        chart: Chart,
        /// Where its limits come from.
        limits: Limits,
        /// The run rules X̄ points are judged by.
        run_rules: Vec<RunRule>,
    },
}

/// One checked rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// Its name (unique in the file).
    pub name: String,
    /// The signal judged (`None` for `rate` and `gap`).
    pub signal: Option<String>,
    /// The signal's unit, for the alerts.
    pub unit: Option<String>,
    /// What it checks.
    pub spec: RuleSpec,
    /// The severity of its alerts (a `range` rule's bands set their own).
    pub severity: Severity,
    /// What a failure does to the batch.
    pub action: CheckpointAction,
    /// Its de-duplication interval, if not the configuration's.
    pub dedup_interval: Option<Duration>,
    /// The samples it judges.
    pub scope: Scope,
}

/// The largest rules file read.
pub const MAX_RULES_FILE_BYTES: u64 = 1 << 20;

/// Most rules one file may hold (each runs on every batch).
pub const MAX_RULES: usize = 1000;

/// The kinds a rule may have.
pub const RULE_KINDS: [&str; 7] = ["range", "rate", "gap", "zscore", "window", "hotspot", "spc"];

impl RulesConfig {
    /// Reads a rules file from TOML text (`origin` names it in errors).
    pub fn from_toml_str(text: &str, origin: &str) -> Result<RulesConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse { origin: origin.to_owned(), message: e.to_string() })
    }

    /// Reads a rules file (at most [`MAX_RULES_FILE_BYTES`]).
    pub fn from_file(path: &Path) -> Result<RulesConfig, ConfigError> {
        let io = |source| ConfigError::Io { path: path.display().to_string(), source };
        let size = std::fs::metadata(path).map_err(io)?.len();
        if size > MAX_RULES_FILE_BYTES {
            return Err(ConfigError::Parse {
                origin: path.display().to_string(),
                message: format!("{size} bytes: a rules file is at most {MAX_RULES_FILE_BYTES} bytes"),
            });
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        RulesConfig::from_toml_str(&text, &path.display().to_string())
    }

    /// Checks every rule, naming every bad field (`rule[2].k: ...`); `window_size` and
    /// `buffer_size` (of the configuration) are the defaults of windowed rules.
    pub fn compile(&self, window_size: usize, buffer_size: usize) -> Result<Vec<Rule>, ConfigError> {
        let mut errors = Vec::new();
        if let Some(hz) = self.sample_rate_hz
            && !(hz.is_finite() && hz > 0.0)
        {
            errors.push(FieldError { field: "sample_rate_hz".to_owned(), reason: format!("{hz} is not > 0") });
        }
        if self.rules.len() > MAX_RULES {
            errors.push(FieldError {
                field: "rule".to_owned(),
                reason: format!("{} rules: a file holds at most {MAX_RULES}", self.rules.len()),
            });
        }
        let mut rules = Vec::new();
        for (i, r) in self.rules.iter().enumerate().take(MAX_RULES) {
            let mut bad = |field: &str, reason: String| {
                errors.push(FieldError { field: format!("rule[{i}].{field}"), reason });
            };
            if r.name.trim().is_empty() || r.name.chars().any(char::is_control) {
                bad("name", "give a name without control characters".to_owned());
            } else if self.rules[..i].iter().any(|o| o.name == r.name) {
                bad("name", format!("`{}` names an earlier rule too; names are unique", r.name.escape_debug()));
            }
            if let Some(rule) = compile_rule(r, self.sample_rate_hz, (window_size, buffer_size), &mut bad) {
                rules.push(rule);
            }
        }
        if errors.is_empty() { Ok(rules) } else { Err(ConfigError::Invalid(errors)) }
    }
}

/// The fields of `r` a rule of its kind reads; every other given field is refused.
fn used_fields(kind: &str, chart: Option<&str>) -> &'static [&'static str] {
    match (kind, chart) {
        ("range", _) => &["signal", "unit", "warning", "critical"],
        ("rate", _) => &["min_hz"],
        ("gap", _) => &["max_gap_ms", "max_gap_periods"],
        ("zscore", _) => &["signal", "unit", "window", "k"],
        ("window", _) => &["signal", "unit", "window", "window_ms", "buffer", "statistic", "warning", "critical"],
        ("hotspot", _) => &["signal", "unit", "k", "min_count"],
        ("spc", Some("ewma")) => &["signal", "unit", "chart", "lambda", "l", "warmup", "center", "sigma"],
        ("spc", Some("cusum")) => &["signal", "unit", "chart", "cusum_k", "cusum_h", "warmup", "center", "sigma"],
        ("spc", _) => &["signal", "unit", "chart", "subgroup_size", "warmup", "center", "sigma", "run_rules"],
        _ => &[],
    }
}

/// The kind-specific fields `r` gives.
fn given_fields(r: &RuleConfig) -> Vec<&'static str> {
    let given = [
        ("signal", r.signal.is_some()),
        ("unit", r.unit.is_some()),
        ("warning", r.warning.is_some()),
        ("critical", r.critical.is_some()),
        ("min_hz", r.min_hz.is_some()),
        ("max_gap_ms", r.max_gap_ms.is_some()),
        ("max_gap_periods", r.max_gap_periods.is_some()),
        ("window", r.window.is_some()),
        ("window_ms", r.window_ms.is_some()),
        ("buffer", r.buffer.is_some()),
        ("statistic", r.statistic.is_some()),
        ("k", r.k.is_some()),
        ("min_count", r.min_count.is_some()),
        ("chart", r.chart.is_some()),
        ("subgroup_size", r.subgroup_size.is_some()),
        ("lambda", r.lambda.is_some()),
        ("l", r.l.is_some()),
        ("cusum_k", r.cusum_k.is_some()),
        ("cusum_h", r.cusum_h.is_some()),
        ("warmup", r.warmup.is_some()),
        ("center", r.center.is_some()),
        ("sigma", r.sigma.is_some()),
        ("run_rules", r.run_rules.is_some()),
    ];
    given.iter().filter(|(_, g)| *g).map(|(n, _)| *n).collect()
}

fn positive(v: f64) -> bool {
    v.is_finite() && v > 0.0
}

fn band(field: &str, v: Option<[f64; 2]>, bad: &mut impl FnMut(&str, String)) -> Option<(f64, f64)> {
    let [lo, hi] = v?;
    if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
        bad(field, format!("[{lo}, {hi}] is not a band: give [low, high] with low <= high"));
    }
    Some((lo, hi))
}

/// `(low, high)`.
type Band = (f64, f64);

/// The warning and critical bands of a `range` or `window` rule (at least one; warning inside critical).
fn bands(r: &RuleConfig, bad: &mut impl FnMut(&str, String)) -> (Option<Band>, Option<Band>) {
    let warning = band("warning", r.warning, bad);
    let critical = band("critical", r.critical, bad);
    match (warning, critical) {
        (None, None) => bad("critical", "give `critical` or `warning` (or both) as [low, high]".to_owned()),
        (Some(w), Some(c)) if w.0 < c.0 || w.1 > c.1 => {
            bad("warning", format!("[{}, {}] reaches outside `critical` [{}, {}]", w.0, w.1, c.0, c.1));
        }
        _ => {}
    }
    (warning, critical)
}

fn compile_rule(
    r: &RuleConfig,
    sample_rate_hz: Option<f64>,
    (window_size, buffer_size): (usize, usize),
    bad: &mut impl FnMut(&str, String),
) -> Option<Rule> {
    if !RULE_KINDS.contains(&r.kind.as_str()) {
        bad("kind", format!("`{}` is not a rule kind; use one of {}", r.kind.escape_debug(), RULE_KINDS.join(", ")));
        return None;
    }
    let used = used_fields(&r.kind, r.chart.as_deref());
    for field in given_fields(r) {
        if !used.contains(&field) {
            bad(field, format!("is not read by a `{}` rule{}", r.kind, chart_note(r)));
        }
    }
    if matches!(r.kind.as_str(), "range" | "window") && r.severity.is_some() {
        bad("severity", "a `range` rule's bands set their severity: `warning` and `critical`".to_owned());
    }
    let mut failed = false;
    let mut bad = |field: &str, reason: String| {
        failed = true;
        bad(field, reason);
    };
    let signal = match (&r.signal, used.contains(&"signal")) {
        (Some(s), true) if s.is_empty() || s.chars().any(char::is_control) => {
            bad("signal", "give a signal name without control characters".to_owned());
            None
        }
        (None, true) => {
            bad("signal", format!("a `{}` rule judges one signal: give its name", r.kind));
            None
        }
        (s, _) => s.clone(),
    };
    let k = |bad: &mut dyn FnMut(&str, String), default: Option<f64>| match r.k.or(default) {
        Some(k) if positive(k) => k,
        Some(k) => {
            bad("k", format!("{k} is not > 0"));
            1.0
        }
        None => {
            bad("k", "give the limit in standard deviations".to_owned());
            1.0
        }
    };
    let spec = match r.kind.as_str() {
        "range" => {
            let (warning, critical) = bands(r, &mut bad);
            RuleSpec::Range { warning, critical }
        }
        "rate" => match r.min_hz {
            Some(hz) if positive(hz) => RuleSpec::Rate { min_hz: hz },
            Some(hz) => {
                bad("min_hz", format!("{hz} is not > 0"));
                RuleSpec::Rate { min_hz: 1.0 }
            }
            None => {
                bad("min_hz", "give the lowest acceptable rate in samples per second".to_owned());
                RuleSpec::Rate { min_hz: 1.0 }
            }
        },
        "gap" => {
            let ms = match (r.max_gap_ms, r.max_gap_periods, sample_rate_hz) {
                (Some(ms), None, _) => ms,
                (None, Some(p), Some(hz)) => p * 1e3 / hz,
                (None, Some(_), None) => {
                    bad("max_gap_periods", "needs `sample_rate_hz` at the top of the rules file".to_owned());
                    1.0
                }
                (Some(_), Some(_), _) => {
                    bad("max_gap_ms", "give `max_gap_ms` or `max_gap_periods`, not both".to_owned());
                    1.0
                }
                (None, None, _) => {
                    bad("max_gap_ms", "give `max_gap_ms` or `max_gap_periods`".to_owned());
                    1.0
                }
            };
            if !positive(ms) || ms > 1e12 {
                bad("max_gap_ms", format!("a gap of {ms} ms is not > 0 (or is absurdly long)"));
            }
            RuleSpec::Gap { max_gap: Duration::from_secs_f64(ms.clamp(1e-6, 1e12) / 1e3) }
        }
        "zscore" => {
            let window = r.window.unwrap_or(window_size);
            if !(2..=1_000_000).contains(&window) {
                bad("window", format!("{window} samples: give 2 to 1,000,000"));
            }
            RuleSpec::ZScore { window, k: k(&mut bad, None) }
        }
        "window" => {
            let (warning, critical) = bands(r, &mut bad);
            let buffer = r.buffer.unwrap_or(buffer_size);
            if !(1..=10_000_000).contains(&buffer) {
                bad("buffer", format!("{buffer} samples: give 1 to 10,000,000"));
            }
            let span = match (r.window, r.window_ms) {
                (Some(_), Some(_)) => {
                    bad("window_ms", "give `window` (samples) or `window_ms`, not both".to_owned());
                    Span::Samples(1)
                }
                (_, Some(ms)) if positive(ms) && ms <= 1e9 => Span::Time(Duration::from_secs_f64(ms / 1e3)),
                (_, Some(ms)) => {
                    bad("window_ms", format!("{ms} ms: give a span > 0 (at most 1e9)"));
                    Span::Samples(1)
                }
                (n, None) => {
                    let n = n.unwrap_or(window_size);
                    if !(1..=buffer).contains(&n) {
                        bad("window", format!("{n} samples: give 1 to `buffer` ({buffer})"));
                    }
                    Span::Samples(n)
                }
            };
            let statistic = match r.statistic.as_deref() {
                None | Some("mean") => Statistic::Mean,
                Some("std") => Statistic::Std,
                Some(other) => {
                    bad("statistic", format!("`{}`: use mean or std", other.escape_debug()));
                    Statistic::Mean
                }
            };
            RuleSpec::Window { span, buffer, statistic, warning, critical }
        }
        "hotspot" => RuleSpec::HotSpot { k: k(&mut bad, None), min_count: r.min_count.unwrap_or(3).max(1) },
        _ => spc(r, &mut bad),
    };
    let dedup_interval = r.dedup_interval_ms.map(Duration::from_millis);
    let severity = r.severity.unwrap_or(Severity::Warning);
    if failed {
        return None;
    }
    Some(Rule {
        name: r.name.clone(),
        signal,
        unit: r.unit.clone(),
        spec,
        severity,
        action: r.action.unwrap_or_default(),
        dedup_interval,
        scope: r.scope.clone().unwrap_or_default(),
    })
}

fn chart_note(r: &RuleConfig) -> String {
    r.chart.as_deref().map(|c| format!(" with chart `{}`", c.escape_debug())).unwrap_or_default()
}

/// The chart, limits and run rules of an `spc` rule.
fn spc(r: &RuleConfig, bad: &mut impl FnMut(&str, String)) -> RuleSpec {
    let subgroup = |bad: &mut dyn FnMut(&str, String)| match r.subgroup_size {
        Some(n) if (2..=25).contains(&n) => n,
        Some(n) => {
            bad("subgroup_size", format!("{n}: give 2 to 25 values per subgroup"));
            2
        }
        None => 5,
    };
    let chart = match r.chart.as_deref() {
        Some("xbar_r") => Chart::XBarR { subgroup_size: subgroup(bad) },
        Some("xbar_s") => Chart::XBarS { subgroup_size: subgroup(bad) },
        Some("ewma") => {
            let (lambda, l) = (r.lambda.unwrap_or(0.2), r.l.unwrap_or(3.0));
            if !(lambda > 0.0 && lambda <= 1.0) {
                bad("lambda", format!("{lambda}: give 0 < lambda <= 1"));
            }
            if !positive(l) {
                bad("l", format!("{l} is not > 0"));
            }
            Chart::Ewma { lambda, l }
        }
        Some("cusum") => {
            let (k, h) = (r.cusum_k.unwrap_or(0.5), r.cusum_h.unwrap_or(5.0));
            if !(k.is_finite() && k >= 0.0) {
                bad("cusum_k", format!("{k} is not >= 0"));
            }
            if !positive(h) {
                bad("cusum_h", format!("{h} is not > 0"));
            }
            Chart::Cusum { k, h }
        }
        Some(other) => {
            bad("chart", format!("`{}` is not a chart; use xbar_r, xbar_s, ewma or cusum", other.escape_debug()));
            Chart::XBarR { subgroup_size: 5 }
        }
        None => {
            bad("chart", "give the chart: xbar_r, xbar_s, ewma or cusum".to_owned());
            Chart::XBarR { subgroup_size: 5 }
        }
    };
    let limits = match (r.center, r.sigma) {
        (Some(center), Some(sigma)) if center.is_finite() && positive(sigma) => Limits::Fixed { center, sigma },
        (Some(_), Some(sigma)) => {
            bad("sigma", format!("fixed limits need a finite `center` and `sigma` > 0 (got sigma {sigma})"));
            Limits::WarmUp(20)
        }
        (Some(_), None) | (None, Some(_)) => {
            bad(
                if r.center.is_some() { "sigma" } else { "center" },
                "fixed limits need both `center` and `sigma`".into(),
            );
            Limits::WarmUp(20)
        }
        (None, None) => match r.warmup.unwrap_or(20) {
            n if (2..=100_000).contains(&n) => Limits::WarmUp(n),
            n => {
                bad("warmup", format!("{n}: give 2 to 100,000"));
                Limits::WarmUp(20)
            }
        },
    };
    let mut run_rules = Vec::new();
    for name in r.run_rules.clone().unwrap_or_else(|| ["we1", "we2", "we3", "we4"].map(String::from).to_vec()) {
        match RunRule::ALL.iter().find(|(_, n)| *n == name) {
            Some((rule, _)) => run_rules.push(*rule),
            None => bad(
                "run_rules",
                format!(
                    "`{}` is not a run rule; use we1-we4 (Western Electric) or n2, n3, n4, n7, n8 (Nelson)",
                    name.escape_debug()
                ),
            ),
        }
    }
    RuleSpec::Spc { chart, limits, run_rules }
}

#[cfg(test)]
mod tests;
