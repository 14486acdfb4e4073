//! `run`'s log lines: text (the message alone; journald and container runtimes add the time) or
//! JSON objects (`time`, `level`, `message`), filtered by level, with every URI password and
//! every configured secret masked.

use std::io::Write;

use qadf_core_types::{StreamingConfig, Timestamp};

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// The message alone, one a line.
    #[default]
    Text,
    /// One JSON object a line: `{"time":…,"level":…,"message":…}`.
    Json,
}

/// How urgent a line is (lines below the logger's level are not written).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Level {
    /// Progress and reports.
    #[default]
    Info,
    /// Something failed and was handled (the stream goes on).
    Warn,
    /// `run` stops.
    Error,
}

impl Level {
    fn word(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// Writes log lines to standard output.
#[derive(Clone, Debug, Default)]
pub struct Logger {
    format: LogFormat,
    level: Level,
    secrets: Vec<String>,
}

impl Logger {
    /// A logger in `format` writing `level` and above, masking the configuration's secrets.
    pub fn new(format: LogFormat, level: Level, config: &StreamingConfig) -> Logger {
        let secrets =
            [config.redis_password.expose()].into_iter().filter(|s| !s.is_empty()).map(str::to_owned).collect();
        Logger { format, level, secrets }
    }

    /// `message` with URI passwords and the configured secrets masked.
    pub fn mask(&self, message: &str) -> String {
        let mut masked = qadf_core_types::secret::mask_uris(message);
        for secret in &self.secrets {
            masked = masked.replace(secret.as_str(), "***");
        }
        masked
    }

    /// The line written for `message` at `level`, or `None` below the logger's level.
    pub fn format(&self, level: Level, message: &str) -> Option<String> {
        if level < self.level {
            return None;
        }
        let message = self.mask(message);
        Some(match self.format {
            LogFormat::Text => message,
            LogFormat::Json => serde_json::json!({
                "time": Timestamp::now().to_string(),
                "level": level.word(),
                "message": message,
            })
            .to_string(),
        })
    }

    /// Writes `message` at `level` (to standard output; errors to standard error).
    pub fn log(&self, level: Level, message: &str) {
        if let Some(line) = self.format(level, message) {
            if level == Level::Error {
                let _ = writeln!(std::io::stderr().lock(), "{line}");
            } else {
                let _ = writeln!(std::io::stdout().lock(), "{line}");
            }
        }
    }

    /// Writes `message` at info level.
    pub fn info(&self, message: &str) {
        self.log(Level::Info, message);
    }

    /// Writes `message` at warn level.
    pub fn warn(&self, message: &str) {
        self.log(Level::Warn, message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_filtered_masked_and_formatted() {
        let config = StreamingConfig {
            redis_password: qadf_core_types::secret::Secret::new("hunter2"),
            ..StreamingConfig::default()
        };
        let text = Logger::new(LogFormat::Text, Level::Warn, &config);
        assert_eq!(text.format(Level::Info, "progress"), None);
        assert_eq!(
            text.format(Level::Warn, "auth failed with hunter2 at mongodb://u:pw@h").as_deref(),
            Some("auth failed with *** at mongodb://u:***@h")
        );
        let json = Logger::new(LogFormat::Json, Level::Info, &config);
        let line: serde_json::Value =
            serde_json::from_str(&json.format(Level::Info, "a \"quoted\" line").unwrap()).unwrap();
        assert_eq!((line["level"].as_str(), line["message"].as_str()), (Some("info"), Some("a \"quoted\" line")));
        assert!(line["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{line}");
    }
}
