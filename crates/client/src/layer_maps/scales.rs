//! `Scale`: how the page colours a signal — its unit, a fixed range, the limits of the rules that
//! judge it, and the rounding of the values sent.

use qadf_core_types::rules::{Rule, RuleSpec};
use qadf_core_types::signal;
use serde::{Deserialize, Serialize};

/// One signal's colour scale for one build (fixed for the build once chosen).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scale {
    /// The signal.
    pub signal: String,
    /// Its unit ("" when neither the rules nor the signal's name tell).
    pub unit: String,
    /// The colour ramp's range: the limits a value must stay in, else the range of the build's
    /// first layer.
    pub lo: f64,
    /// See `lo`.
    pub hi: f64,
    /// The band of the warning limits, from the rules.
    pub warning: Option<[f64; 2]>,
    /// The band of the critical limits, from the rules.
    pub critical: Option<[f64; 2]>,
    /// Values are sent as integer multiples of this (half of it is the rounding).
    pub step: f64,
    /// The rule the limits come from (`None`: no rule limits this signal).
    pub rule: Option<String>,
}

/// The unit a well-known signal is measured in.
fn default_unit(name: &str) -> &'static str {
    match name {
        signal::TEMPERATURE => "K",
        signal::MELT_POOL_AREA => "mm²",
        signal::MELT_POOL_INTENSITY => "counts",
        _ => "",
    }
}

/// The rounding of values on a range of `span`: a power of ten, about a thousandth of it.
pub fn step_for(span: f64) -> f64 {
    if !(span.is_finite() && span > 0.0) {
        return 1.0;
    }
    10f64.powf((span / 1000.0).log10().floor()).max(1e-6)
}

/// `signal`'s scale for `build`: from the first range rule that judges it there, else from the
/// `observed` range (min, max) of its values.
pub fn scale(signal: &str, build: &str, rules: &[Rule], observed: Option<(f64, f64)>) -> Scale {
    let judging = rules.iter().find_map(|r| match &r.spec {
        RuleSpec::Range { warning, critical }
            if r.signal.as_deref() == Some(signal)
                && (r.scope.builds.is_empty() || r.scope.builds.iter().any(|b| b == build))
                && (warning.is_some() || critical.is_some()) =>
        {
            Some((r, warning.map(|(a, b)| [a, b]), critical.map(|(a, b)| [a, b])))
        }
        _ => None,
    });
    let unit = judging.and_then(|(r, ..)| r.unit.clone()).unwrap_or_else(|| default_unit(signal).to_owned());
    let (lo, hi) = match judging {
        Some((_, Some(w), _)) => (w[0], w[1]),
        Some((_, None, Some(c))) => (c[0], c[1]),
        _ => observed.filter(|(a, b)| a.is_finite() && b.is_finite()).unwrap_or((0.0, 1.0)),
    };
    let (lo, hi) = if hi > lo { (lo, hi) } else { (lo - 0.5, lo + 0.5) };
    Scale {
        signal: signal.to_owned(),
        unit,
        lo,
        hi,
        warning: judging.and_then(|(_, w, _)| w),
        critical: judging.and_then(|(.., c)| c),
        step: step_for(hi - lo),
        rule: judging.map(|(r, ..)| r.name.clone()),
    }
}

#[cfg(test)]
mod tests {
    use qadf_core_types::rules::RulesConfig;

    use super::*;

    fn rules(text: &str) -> Vec<Rule> {
        RulesConfig::from_toml_str(text, "test").unwrap().compile(100, 1000).unwrap()
    }

    #[test]
    fn a_range_rule_sets_the_range_the_unit_and_the_limits() {
        let rules = rules(
            r#"
            [[rule]]
            name = "t"
            kind = "range"
            signal = "temperature"
            unit = "degC"
            warning = [1750.0, 2100.0]
            critical = [1700.0, 2150.0]
            "#,
        );
        let s = scale("temperature", "b", &rules, Some((0.0, 5000.0)));
        assert_eq!((s.lo, s.hi, s.unit.as_str(), s.rule.as_deref()), (1750.0, 2100.0, "degC", Some("t")));
        assert_eq!((s.warning, s.critical), (Some([1750.0, 2100.0]), Some([1700.0, 2150.0])));
        assert_eq!(s.step, 0.1, "350 K span: tenths");
    }

    #[test]
    fn without_a_rule_the_observed_range_and_the_signals_unit_are_used() {
        let s = scale("melt_pool_area", "b", &[], Some((0.02, 0.09)));
        assert_eq!((s.lo, s.hi, s.unit.as_str(), s.rule), (0.02, 0.09, "mm²", None));
        assert_eq!(s.step, 1e-5);
        let flat = scale("x", "b", &[], Some((3.0, 3.0)));
        assert_eq!((flat.lo, flat.hi, flat.unit.as_str()), (2.5, 3.5, ""));
        assert_eq!(scale("x", "b", &[], None).hi, 1.0);
    }

    #[test]
    fn a_rule_scoped_to_another_build_does_not_set_the_scale() {
        let rules = rules(
            r#"
            [[rule]]
            name = "t"
            kind = "range"
            signal = "temperature"
            critical = [1700.0, 2150.0]
            scope = { builds = ["other"] }
            "#,
        );
        assert_eq!(scale("temperature", "b", &rules, Some((1.0, 2.0))).rule, None);
        assert_eq!(scale("temperature", "other", &rules, None).critical, Some([1700.0, 2150.0]));
    }
}
