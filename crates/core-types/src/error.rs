//! Typed errors shared by every crate.

use std::time::Duration;

/// Why a decoded sample is not usable.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SampleError {
    /// The sample carries no signal at all.
    #[error("the sample has no signals")]
    NoSignals,
    /// A signal name is the empty string.
    #[error("a signal has an empty name")]
    EmptySignalName,
    /// The same signal name appears twice.
    #[error("signal `{name}` appears more than once")]
    DuplicateSignal {
        /// The repeated name.
        name: String,
    },
    /// A signal value is NaN or infinite.
    #[error("signal `{name}` is not a finite number ({value})")]
    NonFiniteSignal {
        /// The signal name.
        name: String,
        /// The offending value.
        value: f64,
    },
    /// A coordinate is NaN or infinite.
    #[error("position ({x}, {y}, {z}) is not finite")]
    NonFinitePosition {
        /// x in mm.
        x: f64,
        /// y in mm.
        y: f64,
        /// z in mm.
        z: f64,
    },
    /// An id field is empty.
    #[error("`{field}` is empty")]
    EmptyId {
        /// The field name.
        field: &'static str,
    },
    /// The sample carries more signals than `max_signals_per_sample`.
    #[error("the sample has {count} signals, over the limit max_signals_per_sample = {max}")]
    TooManySignals {
        /// Signals carried.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The sample carries more tags than `max_signals_per_sample` (tags share the signals' bound).
    #[error("the sample has {count} tags, over the limit max_signals_per_sample = {max}")]
    TooManyTags {
        /// Tags carried.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A tag name holds `.` or starts with `$` (tags are stored as document fields, queried by path).
    #[error("tag name {name:?} holds `.` or starts with `$`")]
    TagName {
        /// The name, escaped.
        name: String,
    },
    /// A name (signal, build or source) is longer than `max_name_bytes`.
    #[error("{field} `{}…` is {len} bytes, over the limit max_name_bytes = {max}", .prefix)]
    NameTooLong {
        /// Which name: "signal name", "build_id" or "source_id".
        field: &'static str,
        /// The first characters of the name.
        prefix: String,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A name holds a control character (NUL, newline, escape, ...), which no store or page can show safely.
    #[error("{field} {name:?} holds a control character")]
    ControlCharacter {
        /// Which name: "signal name", "build_id" or "source_id".
        field: &'static str,
        /// The name, escaped.
        name: String,
    },
}

/// Why bytes could not be decoded into a batch, or a batch into bytes.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The message is larger than the configured limit.
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    Oversize {
        /// Message length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// The message is empty.
    #[error("message is empty")]
    Empty,
    /// A JSON message is not valid UTF-8.
    #[error("message is not valid UTF-8 (first bad byte at offset {valid_up_to})")]
    InvalidUtf8 {
        /// Length of the valid prefix.
        valid_up_to: usize,
    },
    /// JSON syntax or shape error.
    #[error("invalid JSON at line {line}, column {column}: {message}")]
    Json {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser said.
        message: String,
    },
    /// Bincode decoding failed (truncated, corrupt, or wrong shape).
    #[error("invalid bincode: {message}")]
    Bincode {
        /// What the decoder said.
        message: String,
    },
    /// Bytes were left over after a complete bincode message.
    #[error("{extra} bytes left over after a complete bincode message")]
    TrailingBytes {
        /// Number of unread bytes.
        extra: usize,
    },
    /// The message holds more samples than `max_samples_per_message`.
    #[error("message holds more than {max} samples, the limit max_samples_per_message")]
    TooManySamples {
        /// The limit.
        max: usize,
    },
    /// The JSON nests arrays and objects deeper than `max_json_depth`.
    #[error("JSON nests deeper than {max} levels, the limit max_json_depth")]
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// The message is well-formed JSON that the message schema refuses: the field and the rule.
    #[error("sample {sample}: field `{field}`: {rule}")]
    Schema {
        /// Index of the sample within the message (0 for a single object).
        sample: usize,
        /// The field as written in the message (or the schema setting, for a missing field).
        field: String,
        /// The rule it breaks.
        rule: String,
    },
    /// Encoding failed (for example a map key that is not a string).
    #[error("could not encode: {message}")]
    Encode {
        /// What the encoder said.
        message: String,
    },
}

/// A problem with one configuration field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The field name, as written in TOML.
    pub field: String,
    /// What is wrong and how to fix it.
    pub reason: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}`: {}", self.field, self.reason)
    }
}

/// Why a configuration could not be loaded or is not valid.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Io {
        /// The file path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown or mistyped fields.
    #[error("config {origin} is not valid: {message}")]
    Parse {
        /// The file path, or "environment".
        origin: String,
        /// What the parser said (it names the field).
        message: String,
    },
    /// An environment variable could not be applied.
    #[error("environment variable {var}={value:?} is not valid: {reason}")]
    Env {
        /// The variable name.
        var: String,
        /// Its value.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// One or more fields hold values that make no sense.
    #[error("invalid configuration: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
}

/// What went wrong in a backend (broker, cache, store).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendErrorKind {
    /// The backend cannot be reached; retrying later may succeed.
    Unavailable,
    /// The operation did not finish in time; retrying may succeed.
    Timeout,
    /// The backend refused the request (bad data, missing topic, permissions); retrying will not help.
    Rejected,
    /// The backend returned data that could not be understood.
    Corrupt,
    /// The component was stopped or closed.
    Closed,
}

/// A backend failure, with the backend's name and its own message.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{backend} {kind:?}: {message}")]
pub struct BackendError {
    /// The class of failure.
    pub kind: BackendErrorKind,
    /// Which backend failed, e.g. "kafka", "redis", "mongodb", "embedded".
    pub backend: &'static str,
    /// A human-readable description.
    pub message: String,
    /// How long the caller should wait before retrying, when known.
    pub retry_after: Option<Duration>,
}

impl BackendError {
    /// A backend error without a retry hint.
    pub fn new(kind: BackendErrorKind, backend: &'static str, message: impl Into<String>) -> BackendError {
        BackendError { kind, backend, message: message.into(), retry_after: None }
    }

    /// Whether retrying the same operation later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self.kind, BackendErrorKind::Unavailable | BackendErrorKind::Timeout)
    }
}

/// A send that was refused; hands the value back so nothing is lost.
#[derive(Debug, thiserror::Error)]
#[error("send failed: {error}")]
pub struct SendError<T> {
    /// The value that was not sent.
    pub value: T,
    /// Why.
    pub error: BackendError,
}

impl<T> SendError<T> {
    /// Takes the unsent value back.
    pub fn into_inner(self) -> T {
        self.value
    }
}

/// A failure inside a pipeline stage, reported with the stage's name.
#[derive(Debug, thiserror::Error)]
#[error("stage `{stage}` failed: {message}")]
pub struct StageError {
    /// The stage name.
    pub stage: String,
    /// What went wrong.
    pub message: String,
}

impl StageError {
    /// A stage error for the named stage.
    pub fn new(stage: impl Into<String>, message: impl Into<String>) -> StageError {
        StageError { stage: stage.into(), message: message.into() }
    }
}
