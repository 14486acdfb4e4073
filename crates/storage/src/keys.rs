//! The cache key scheme: `{prefix}:builds`, `{prefix}:{build}:latest`, `{prefix}:{build}:alerts`,
//! `{prefix}:{build}:report:{n}`, `{prefix}:{build}:layer:{n}` (every value plain JSON; see
//! docs/OPERATIONS.md for what `run` writes).

/// Key of the list of builds on the stream.
pub fn builds(prefix: &str) -> String {
    format!("{prefix}:builds")
}

/// Key of a build's latest state (statistics, progress).
pub fn latest(prefix: &str, build: &str) -> String {
    format!("{prefix}:{build}:latest")
}

/// Key of one layer's slice of a build.
pub fn layer(prefix: &str, build: &str, layer: u32) -> String {
    format!("{prefix}:{build}:layer:{layer}")
}

/// Key of a build's most recent alerts.
pub fn alerts(prefix: &str, build: &str) -> String {
    format!("{prefix}:{build}:alerts")
}

/// Key of one layer's report (verdict and statistics) of a build.
pub fn report(prefix: &str, build: &str, layer: u32) -> String {
    format!("{prefix}:{build}:report:{layer}")
}
