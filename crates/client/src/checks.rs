//! The quality rules `run`, the demo and `StreamingClient` apply: a rules file
//! (docs/RULES.md), or the demo's example rules when none is configured.

use std::path::Path;

use qadf_core_types::ConfigError;
use qadf_core_types::rules::{DEMO_RULES, Rule, RulesConfig};

/// Rules read from a file (or the built-in demo rules), checked.
#[derive(Clone, Debug)]
pub struct LoadedRules {
    /// The rules, in file order.
    pub rules: Vec<Rule>,
    /// Where they came from, for the start and reload lines.
    pub origin: String,
}

/// Reads and checks the rules of `path` (`None`: the demo's example rules). Gap rules in sample
/// periods use the file's `sample_rate_hz`, else `sample_rate_hz`; windows default to
/// `window_size` samples in buffers of `buffer_size` (the configuration's).
pub fn load(
    path: Option<&Path>,
    sample_rate_hz: Option<f64>,
    (window_size, buffer_size): (usize, usize),
) -> Result<LoadedRules, ConfigError> {
    let (mut config, origin) = match path {
        Some(p) => (RulesConfig::from_file(p)?, p.display().to_string()),
        None => (
            RulesConfig::from_toml_str(DEMO_RULES, "examples/rules/demo.toml")?,
            "the demo's example rules (examples/rules/demo.toml, built in; set rules_file or --rules for your own)"
                .to_owned(),
        ),
    };
    if config.sample_rate_hz.is_none() {
        config.sample_rate_hz = sample_rate_hz;
    }
    Ok(LoadedRules { rules: config.compile(window_size, buffer_size)?, origin })
}
