//! `StreamingConfig`: the Python original's names and defaults, from TOML and the environment.
//!
//! Precedence (lowest first): defaults, the TOML file, `QADF_<FIELD>` environment variables (the
//! field name upper-cased, e.g. `QADF_KAFKA_TOPIC=parts`, lists comma-separated:
//! `QADF_KAFKA_BOOTSTRAP_SERVERS=a:9092,b:9092`). Command-line flags, applied by the binary, come last.
//! An unknown `QADF_*` variable is an error (a typo must not be ignored), except the `QADF_TEST_*`
//! namespace, which belongs to the test suite.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::codec::{DEFAULT_MAX_MESSAGE_BYTES, Encoding};
use crate::error::{ConfigError, FieldError};
use crate::limits::IngestLimits;
use crate::schema::{Schema, SchemaConfig};

/// Where a consumer starts when no committed offset exists.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OffsetReset {
    /// From the oldest retained message (the default everywhere: nothing is skipped).
    #[default]
    Earliest,
    /// From the next message produced after start.
    Latest,
}

/// How `run` talks to the Kafka brokers: Kafka's `security.protocol` values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KafkaSecurityProtocol {
    /// Plain TCP, no authentication (the default).
    #[default]
    Plaintext,
    /// TLS, no SASL.
    Ssl,
    /// SASL over plain TCP.
    SaslPlaintext,
    /// SASL over TLS.
    SaslSsl,
}

impl KafkaSecurityProtocol {
    /// Whether connections are encrypted.
    pub fn tls(self) -> bool {
        matches!(self, KafkaSecurityProtocol::Ssl | KafkaSecurityProtocol::SaslSsl)
    }

    /// Whether clients authenticate with SASL.
    pub fn sasl(self) -> bool {
        matches!(self, KafkaSecurityProtocol::SaslPlaintext | KafkaSecurityProtocol::SaslSsl)
    }
}

/// The SASL mechanism for Kafka (Kafka's `sasl.mechanism` names).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SaslMechanism {
    /// Username and password in clear (use it over TLS only).
    #[default]
    #[serde(rename = "PLAIN")]
    Plain,
    /// SCRAM with SHA-256.
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    /// SCRAM with SHA-512.
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

/// How `run` instances sharing a topic divide its partitions (docs/SCALING.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PartitionAssignment {
    /// Kafka's consumer group `consumer_group_id`: partitions rebalanced as members join, leave or
    /// die, offsets committed to the group coordinator.
    #[default]
    Group,
    /// Each instance reads what it is told (all partitions, or `--instance i --instances n`),
    /// offsets kept in the history store.
    Static,
}

/// What `run` does with a batch whose store fails permanently (bad data the server refuses).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreFailurePolicy {
    /// Send the batch's messages, with the reason, to the dead-letter topic, then commit past them.
    #[default]
    DeadLetter,
    /// Stop the consumer with nothing after the failed batch committed (a restart meets it again).
    Stop,
}

/// Configuration of the whole streaming layer. Field names follow the Python original.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamingConfig {
    /// Kafka brokers as `host:port`. Default `["localhost:9092"]`.
    pub kafka_bootstrap_servers: Vec<String>,
    /// Topic of monitoring samples. Default `am_qadf_monitoring`.
    pub kafka_topic: String,
    /// Consumer group id (the key of committed offsets). Default `am_qadf_consumers`.
    pub consumer_group_id: String,
    /// Start position without a committed offset. Default `earliest`.
    pub auto_offset_reset: OffsetReset,
    /// Commit processed offsets on an interval. Default `true`.
    pub enable_auto_commit: bool,
    /// Auto-commit interval in ms. Default 5000.
    pub auto_commit_interval_ms: u64,
    /// Most records returned by one poll. Default 100.
    pub max_poll_records: usize,
    /// Broker session timeout in ms: a group member silent this long is removed and its
    /// partitions move on. Default 30000.
    pub session_timeout_ms: u64,
    /// Kafka transport and authentication: `plaintext` (default), `ssl`, `sasl_plaintext`, `sasl_ssl`.
    pub kafka_security_protocol: KafkaSecurityProtocol,
    /// SASL mechanism: `PLAIN` (default), `SCRAM-SHA-256`, `SCRAM-SHA-512`.
    pub kafka_sasl_mechanism: SaslMechanism,
    /// SASL user. Default empty.
    pub kafka_sasl_username: String,
    /// SASL password; never printed (`QADF_KAFKA_SASL_PASSWORD`, or a file with `_FILE`). Default empty.
    pub kafka_sasl_password: crate::secret::Secret,
    /// PEM file of the CA that signed the brokers' certificates (empty: the system's roots). Default empty.
    pub kafka_tls_ca_file: String,
    /// How instances divide the partitions: `group` (Kafka's consumer group, the default) or `static`.
    pub assignment: PartitionAssignment,
    /// Longest a group member takes, on a rebalance or a stop, to store and commit what it holds
    /// of the partitions it gives up, in ms (below `session_timeout_ms`). Default 10000.
    pub drain_timeout_ms: u64,
    /// Longest wait for a batch to fill before it is processed anyway, in ms. Default 100.
    pub max_batch_wait_ms: u64,
    /// Wire encoding of messages. Default `json`.
    pub message_encoding: Encoding,
    /// Largest accepted message in bytes; larger ones go to the dead-letter topic. Default 1 MiB.
    pub max_message_bytes: usize,
    /// Topic that receives undecodable messages with their error. Default `am_qadf_dead_letter`.
    pub dead_letter_topic: String,
    /// Topic that receives every quality alert `run` raises, as JSON keyed by build. Default `am_qadf_alerts`.
    pub alerts_topic: String,
    /// Topic that receives each layer's report (docs/RULES.md), as JSON keyed by build. Default `am_qadf_layer_reports`.
    pub layer_reports_topic: String,
    /// Capacity of each temporal buffer in samples: the default `buffer` of a rules file's
    /// `window` rules (docs/RULES.md). Default 1000.
    pub buffer_size: usize,
    /// Default window length in samples: of `window` and `zscore` rules. Default 100.
    pub window_size: usize,
    /// Samples per processing batch. Default 100.
    pub processing_batch_size: usize,
    /// Cache recent state in Redis. Default `true`.
    pub enable_redis_cache: bool,
    /// Redis host. Default `localhost`.
    pub redis_host: String,
    /// Redis port. Default 6379.
    pub redis_port: u16,
    /// Redis database number. Default 0.
    pub redis_db: i64,
    /// Redis ACL user (empty: the default user). Default empty.
    pub redis_username: String,
    /// Redis password (empty: none); never printed. Set it with `QADF_REDIS_PASSWORD`. Default empty.
    pub redis_password: crate::secret::Secret,
    /// Connect to Redis over TLS. Default `false`.
    pub redis_tls: bool,
    /// PEM file of the CA that signed Redis's certificate (empty: the system's roots). Default empty.
    pub redis_tls_ca_file: String,
    /// Prefix of every Redis key. Default `qadf`.
    pub redis_key_prefix: String,
    /// Time to live of cached entries in seconds. Default 3600.
    pub redis_ttl_seconds: i64,
    /// Persist samples in MongoDB. Default `true`.
    pub enable_mongodb_storage: bool,
    /// MongoDB connection string. Default `mongodb://localhost:27017`.
    pub mongodb_uri: String,
    /// MongoDB database name. Default `am_qadf`.
    pub mongodb_database: String,
    /// MongoDB collection of samples. Default `stream_data`.
    pub mongodb_collection: String,
    /// Documents per `insert_many`. Default 1000.
    pub storage_batch_size: usize,
    /// Seconds of history to keep, by bucket end time; 0 keeps everything. Default 0. MongoDB: a
    /// TTL index on `end`; embedded: `run` deletes older buckets once a minute.
    pub history_retention_seconds: u64,
    /// Lower corner of the voxel grid in mm. Default `[0, 0, 0]`.
    pub voxel_bbox_min: [f64; 3],
    /// Upper corner of the voxel grid in mm. Default `[250, 250, 300]` (a build plate).
    pub voxel_bbox_max: [f64; 3],
    /// Voxel edge in mm. Default 0.1.
    pub voxel_resolution: f64,
    /// One alert per condition per this interval of measurement time, in ms (0 keeps all). Default 1000.
    pub alert_dedup_interval_ms: u64,
    /// Most signals one sample may carry; a sample with more is a dead letter. Default 64.
    pub max_signals_per_sample: usize,
    /// Longest signal, build or source name in bytes (control characters are never accepted). Default 128.
    pub max_name_bytes: usize,
    /// Most samples one message may carry; a larger message is a dead letter. Default 100,000.
    pub max_samples_per_message: usize,
    /// Deepest JSON nesting of arrays and objects in a message. Default 16.
    pub max_json_depth: usize,
    /// Most distinct signals one build's voxel grid holds; samples bringing more are dead letters. Default 64.
    pub max_signals_per_build: usize,
    /// Most builds whose voxel grids are held in memory; the least recently used is released. Default 16.
    pub max_builds_in_memory: usize,
    /// What to do with a batch whose store fails permanently. Default `dead_letter`.
    pub on_store_failure: StoreFailurePolicy,
    /// Longest wait, after SIGTERM or SIGINT, to store and commit what is in flight, in ms. Default 10000.
    pub shutdown_timeout_ms: u64,
    /// Where `run` serves the live page, `/metrics` and `/health/*` (docs/OPERATIONS.md); empty
    /// serves nothing. Default `127.0.0.1:8765`.
    pub dashboard_addr: String,
    /// `/health/ready` reports not ready while the consumer lags more than this many messages
    /// behind the log end (0: no bound). Default 100,000.
    pub ready_max_lag: u64,
    /// Cell edge in mm of the live page's per-layer maps; 0 takes `voxel_resolution`. Default 0.
    pub layer_map_resolution_mm: f64,
    /// Layers per build whose maps stay in memory (older ones are rebuilt from the history on
    /// demand). Default 16.
    pub layer_maps_in_memory: usize,
    /// A build with no sample for this many seconds reads `stalled` on the live page. Default 10.
    pub stall_seconds: f64,
    /// The quality rules file (docs/RULES.md; `--rules` overrides it). Default empty: `run` and
    /// the demo apply the demo's example rules (examples/rules/demo.toml) and say so.
    pub rules_file: String,
    /// How JSON messages map to samples (the `[schema]` table; `QADF_SCHEMA_<SETTING>` in the
    /// environment). See docs/SCHEMA.md.
    pub schema: SchemaConfig,
}

impl Default for StreamingConfig {
    fn default() -> StreamingConfig {
        StreamingConfig {
            kafka_bootstrap_servers: vec!["localhost:9092".to_owned()],
            kafka_topic: "am_qadf_monitoring".to_owned(),
            consumer_group_id: "am_qadf_consumers".to_owned(),
            auto_offset_reset: OffsetReset::Earliest,
            enable_auto_commit: true,
            auto_commit_interval_ms: 5000,
            max_poll_records: 100,
            session_timeout_ms: 30_000,
            kafka_security_protocol: KafkaSecurityProtocol::Plaintext,
            kafka_sasl_mechanism: SaslMechanism::Plain,
            kafka_sasl_username: String::new(),
            kafka_sasl_password: crate::secret::Secret::default(),
            kafka_tls_ca_file: String::new(),
            assignment: PartitionAssignment::Group,
            drain_timeout_ms: 10_000,
            max_batch_wait_ms: 100,
            message_encoding: Encoding::Json,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            dead_letter_topic: "am_qadf_dead_letter".to_owned(),
            alerts_topic: "am_qadf_alerts".to_owned(),
            layer_reports_topic: "am_qadf_layer_reports".to_owned(),
            buffer_size: 1000,
            window_size: 100,
            processing_batch_size: 100,
            enable_redis_cache: true,
            redis_host: "localhost".to_owned(),
            redis_port: 6379,
            redis_db: 0,
            redis_username: String::new(),
            redis_password: crate::secret::Secret::default(),
            redis_tls: false,
            redis_tls_ca_file: String::new(),
            redis_key_prefix: "qadf".to_owned(),
            redis_ttl_seconds: 3600,
            enable_mongodb_storage: true,
            mongodb_uri: "mongodb://localhost:27017".to_owned(),
            mongodb_database: "am_qadf".to_owned(),
            mongodb_collection: "stream_data".to_owned(),
            storage_batch_size: 1000,
            history_retention_seconds: 0,
            voxel_bbox_min: [0.0, 0.0, 0.0],
            voxel_bbox_max: [250.0, 250.0, 300.0],
            voxel_resolution: 0.1,
            alert_dedup_interval_ms: 1000,
            max_signals_per_sample: 64,
            max_name_bytes: 128,
            max_samples_per_message: 100_000,
            max_json_depth: 16,
            max_signals_per_build: 64,
            max_builds_in_memory: 16,
            on_store_failure: StoreFailurePolicy::DeadLetter,
            shutdown_timeout_ms: 10_000,
            dashboard_addr: "127.0.0.1:8765".to_owned(),
            ready_max_lag: 100_000,
            layer_map_resolution_mm: 0.0,
            layer_maps_in_memory: 16,
            stall_seconds: 10.0,
            rules_file: String::new(),
            schema: SchemaConfig::default(),
        }
    }
}

/// Prefix of configuration environment variables.
pub const ENV_PREFIX: &str = "QADF_";
/// Environment namespace reserved for the test suite (never read as configuration).
pub const TEST_ENV_PREFIX: &str = "QADF_TEST_";

/// Fields whose value `QADF_<FIELD>_FILE` may read from a file (secrets, and URIs carrying them).
pub const SECRET_FILE_FIELDS: [&str; 3] = ["redis_password", "kafka_sasl_password", "mongodb_uri"];

impl StreamingConfig {
    /// Parses TOML text (unknown fields are errors); does not validate.
    pub fn from_toml_str(text: &str) -> Result<StreamingConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse { origin: "TOML".to_owned(), message: e.to_string() })
    }

    /// Reads a TOML file (unknown fields are errors); does not validate.
    pub fn from_toml_file(path: &Path) -> Result<StreamingConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Io { path: path.display().to_string(), source })?;
        toml::from_str(&text)
            .map_err(|e| ConfigError::Parse { origin: path.display().to_string(), message: e.to_string() })
    }

    /// Defaults, then the file if given, then the process environment; validated.
    pub fn load(path: Option<&Path>) -> Result<StreamingConfig, ConfigError> {
        let base = match path {
            Some(p) => StreamingConfig::from_toml_file(p)?,
            None => StreamingConfig::default(),
        };
        let config = base.with_env(std::env::vars())?;
        config.validate()?;
        Ok(config)
    }

    /// Applies `QADF_<FIELD>` overrides from the given variables; does not validate.
    pub fn with_env<I, K, V>(self, vars: I) -> Result<StreamingConfig, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut table = toml::Table::try_from(&self)
            .map_err(|e| ConfigError::Parse { origin: "defaults".to_owned(), message: e.to_string() })?;
        let mut changed = false;
        for (var, value) in vars {
            let (var, value) = (var.as_ref(), value.as_ref());
            let Some(field) = var.strip_prefix(ENV_PREFIX) else { continue };
            if var.starts_with(TEST_ENV_PREFIX) {
                continue;
            }
            // A secret is never echoed, and a URI's password is masked (a typo must not leak it).
            let shown = if crate::secret::is_secret_name(var) {
                "(hidden)".to_owned()
            } else {
                crate::secret::mask_uris(value)
            };
            let env_error = |reason: String| ConfigError::Env { var: var.to_owned(), value: shown.clone(), reason };
            let field = field.to_ascii_lowercase();
            // `QADF_<SECRET>_FILE=path`: the secret is the file's content (one trailing newline
            // dropped), as container secrets are mounted; neither path nor content is echoed.
            let from_file;
            let (field, value) = match field.strip_suffix("_file") {
                Some(secret) if SECRET_FILE_FIELDS.contains(&secret) => {
                    let text = std::fs::read_to_string(value)
                        .map_err(|e| env_error(format!("cannot read the file it names: {}", e.kind())))?;
                    from_file =
                        text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text).to_owned();
                    (secret.to_owned(), from_file.as_str())
                }
                _ => (field, value),
            };
            // `QADF_SCHEMA_TIME_ZONE` sets `time_zone` of the `[schema]` table.
            let (target, field) = match field.strip_prefix("schema_") {
                Some(setting) if !table.contains_key(&field) => {
                    let Some(toml::Value::Table(schema)) = table.get_mut("schema") else {
                        return Err(env_error("the configuration has no [schema] table".to_owned()));
                    };
                    (schema, setting.to_owned())
                }
                _ => (&mut table, field),
            };
            let Some(current) = target.get(&field) else {
                return Err(env_error(format!("there is no configuration field `{field}`")));
            };
            let parsed = parse_like(current, value).map_err(env_error)?;
            target.insert(field, parsed);
            changed = true;
        }
        if !changed {
            return Ok(self);
        }
        toml::Value::Table(table)
            .try_into()
            .map_err(|e| ConfigError::Parse { origin: "environment".to_owned(), message: e.to_string() })
    }

    /// Rejects values that make no sense, naming every offending field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut errors = Vec::new();
        let mut check = |ok: bool, field: &str, reason: &str| {
            if !ok {
                errors.push(FieldError { field: field.to_owned(), reason: reason.to_owned() });
            }
        };
        check(
            !self.kafka_bootstrap_servers.is_empty(),
            "kafka_bootstrap_servers",
            "list at least one broker as host:port",
        );
        for server in &self.kafka_bootstrap_servers {
            check(
                is_host_port(server),
                "kafka_bootstrap_servers",
                &format!("`{server}` is not host:port with a port in 1-65535"),
            );
        }
        check(is_topic(&self.kafka_topic), "kafka_topic", TOPIC_RULE);
        check(is_topic(&self.dead_letter_topic), "dead_letter_topic", TOPIC_RULE);
        check(self.dead_letter_topic != self.kafka_topic, "dead_letter_topic", "must differ from kafka_topic");
        check(is_topic(&self.alerts_topic), "alerts_topic", TOPIC_RULE);
        check(
            self.alerts_topic != self.kafka_topic && self.alerts_topic != self.dead_letter_topic,
            "alerts_topic",
            "must differ from kafka_topic and dead_letter_topic",
        );
        check(is_topic(&self.layer_reports_topic), "layer_reports_topic", TOPIC_RULE);
        check(
            ![&self.kafka_topic, &self.dead_letter_topic, &self.alerts_topic].contains(&&self.layer_reports_topic),
            "layer_reports_topic",
            "must differ from kafka_topic, dead_letter_topic and alerts_topic",
        );
        check(!self.consumer_group_id.trim().is_empty(), "consumer_group_id", "must not be empty");
        check(
            !self.enable_auto_commit || self.auto_commit_interval_ms > 0,
            "auto_commit_interval_ms",
            "must be > 0 when enable_auto_commit is true",
        );
        check(self.max_poll_records > 0, "max_poll_records", "must be > 0");
        check(self.session_timeout_ms > 0, "session_timeout_ms", "must be > 0");
        check(
            self.drain_timeout_ms > 0 && self.drain_timeout_ms < self.session_timeout_ms,
            "drain_timeout_ms",
            "must be > 0 and below session_timeout_ms",
        );
        check(self.max_message_bytes > 0, "max_message_bytes", "must be > 0");
        check(self.buffer_size > 0, "buffer_size", "must be > 0");
        check(self.window_size > 0, "window_size", "must be > 0");
        check(
            self.buffer_size == 0 || self.window_size <= self.buffer_size,
            "window_size",
            "must not exceed buffer_size",
        );
        check(self.processing_batch_size > 0, "processing_batch_size", "must be > 0");
        check(!self.redis_host.trim().is_empty(), "redis_host", "must not be empty");
        let sasl = self.kafka_security_protocol.sasl();
        check(!sasl || !self.kafka_sasl_username.is_empty(), "kafka_sasl_username", "must be set for SASL");
        check(!sasl || !self.kafka_sasl_password.is_empty(), "kafka_sasl_password", "must be set for SASL");
        check(
            self.kafka_tls_ca_file.is_empty() || self.kafka_security_protocol.tls(),
            "kafka_tls_ca_file",
            "is set but kafka_security_protocol has no TLS (ssl or sasl_ssl)",
        );
        check(
            self.redis_tls_ca_file.is_empty() || self.redis_tls,
            "redis_tls_ca_file",
            "is set but redis_tls is false",
        );
        check(self.redis_port > 0, "redis_port", "must be in 1-65535");
        check(self.redis_db >= 0, "redis_db", "must be >= 0");
        check(self.redis_ttl_seconds > 0, "redis_ttl_seconds", "must be > 0 (seconds until a cached entry expires)");
        check(!self.redis_key_prefix.contains(char::is_whitespace), "redis_key_prefix", "must not contain whitespace");
        check(
            self.mongodb_uri.starts_with("mongodb://") || self.mongodb_uri.starts_with("mongodb+srv://"),
            "mongodb_uri",
            "must start with mongodb:// or mongodb+srv://",
        );
        check(
            !self.mongodb_database.is_empty() && !self.mongodb_database.contains(['/', '\\', '.', ' ', '"', '$']),
            "mongodb_database",
            "must be non-empty without / \\ . space \" or $",
        );
        check(
            !self.mongodb_collection.is_empty()
                && !self.mongodb_collection.contains('$')
                && !self.mongodb_collection.starts_with("system."),
            "mongodb_collection",
            "must be non-empty, without $, and not start with system.",
        );
        check(self.storage_batch_size > 0, "storage_batch_size", "must be > 0");
        check(
            self.voxel_resolution.is_finite() && self.voxel_resolution > 0.0,
            "voxel_resolution",
            "must be a positive number of mm",
        );
        let finite = |c: &[f64; 3]| c.iter().all(|v| v.is_finite());
        check(finite(&self.voxel_bbox_min), "voxel_bbox_min", "must be three finite numbers");
        check(
            finite(&self.voxel_bbox_max)
                && (!finite(&self.voxel_bbox_min) || (0..3).all(|a| self.voxel_bbox_max[a] >= self.voxel_bbox_min[a])),
            "voxel_bbox_max",
            "must be finite and not below voxel_bbox_min on any axis",
        );
        check(self.max_signals_per_sample > 0, "max_signals_per_sample", "must be > 0");
        check(self.max_name_bytes > 0, "max_name_bytes", "must be > 0");
        check(self.max_samples_per_message > 0, "max_samples_per_message", "must be > 0");
        check(
            (2..=128).contains(&self.max_json_depth),
            "max_json_depth",
            "must be 2-128 (an array of sample objects is 2)",
        );
        check(
            self.max_signals_per_build >= self.max_signals_per_sample,
            "max_signals_per_build",
            "must be at least max_signals_per_sample",
        );
        check(self.max_builds_in_memory > 0, "max_builds_in_memory", "must be > 0");
        check(self.shutdown_timeout_ms > 0, "shutdown_timeout_ms", "must be > 0");
        check(
            self.dashboard_addr.is_empty() || is_host_port(&self.dashboard_addr) || self.dashboard_addr.ends_with(":0"),
            "dashboard_addr",
            "must be host:port (port 0 picks a free one) or empty (serve nothing)",
        );
        check(
            self.layer_map_resolution_mm == 0.0
                || (self.layer_map_resolution_mm.is_finite() && self.layer_map_resolution_mm >= 0.001),
            "layer_map_resolution_mm",
            "must be 0 (the voxel resolution) or a cell edge of at least 0.001 mm",
        );
        check(self.layer_maps_in_memory > 0, "layer_maps_in_memory", "must be > 0");
        check(
            self.stall_seconds.is_finite() && self.stall_seconds > 0.0,
            "stall_seconds",
            "must be a number of seconds > 0",
        );
        if let Err(schema_errors) = Schema::compile(&self.schema) {
            errors.extend(schema_errors);
        }
        if errors.is_empty() { Ok(()) } else { Err(ConfigError::Invalid(errors)) }
    }

    /// The bounds every message and sample must keep, from this configuration.
    pub fn ingest_limits(&self) -> IngestLimits {
        IngestLimits {
            max_signals_per_sample: self.max_signals_per_sample,
            max_name_bytes: self.max_name_bytes,
            max_samples_per_message: self.max_samples_per_message,
            max_json_depth: self.max_json_depth,
        }
    }
}

const TOPIC_RULE: &str = "must be 1-249 characters of a-z A-Z 0-9 . _ -";

fn is_topic(name: &str) -> bool {
    (1..=249).contains(&name.len())
        && name != "."
        && name != ".."
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn is_host_port(server: &str) -> bool {
    match server.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0),
        None => false,
    }
}

/// Parses an environment string as the same TOML type as the field's current value.
fn parse_like(current: &toml::Value, text: &str) -> Result<toml::Value, String> {
    use toml::Value;
    match current {
        Value::String(_) => Ok(Value::String(text.to_owned())),
        Value::Integer(_) => text.trim().parse().map(Value::Integer).map_err(|_| "expected an integer".to_owned()),
        Value::Float(_) => text.trim().parse().map(Value::Float).map_err(|_| "expected a number".to_owned()),
        Value::Boolean(_) => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Value::Boolean(true)),
            "false" | "0" | "no" | "off" => Ok(Value::Boolean(false)),
            _ => Err("expected true or false".to_owned()),
        },
        Value::Array(items) if matches!(items.first(), Some(Value::Float(_) | Value::Integer(_))) => text
            .split(',')
            .map(|s| s.trim().parse().map(Value::Float).map_err(|_| format!("`{}` is not a number", s.trim())))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Value::Array(_) => Ok(Value::Array(
            text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| Value::String(s.to_owned())).collect(),
        )),
        _ => Err("this field cannot be set from the environment".to_owned()),
    }
}

#[cfg(test)]
mod tests;
