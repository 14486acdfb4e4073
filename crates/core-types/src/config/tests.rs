use super::*;

fn invalid_fields(config: &StreamingConfig) -> Vec<String> {
    match config.validate() {
        Ok(()) => Vec::new(),
        Err(ConfigError::Invalid(errors)) => errors.into_iter().map(|e| e.field).collect(),
        Err(other) => panic!("unexpected error {other}"),
    }
}

#[test]
fn defaults_match_the_python_original_and_are_valid() {
    let c = StreamingConfig::default();
    assert_eq!(c.kafka_bootstrap_servers, ["localhost:9092"]);
    assert_eq!((c.kafka_topic.as_str(), c.consumer_group_id.as_str()), ("am_qadf_monitoring", "am_qadf_consumers"));
    assert_eq!((c.auto_commit_interval_ms, c.max_poll_records, c.session_timeout_ms), (5000, 100, 30_000));
    assert_eq!((c.buffer_size, c.processing_batch_size, c.storage_batch_size), (1000, 100, 1000));
    assert_eq!((c.redis_host.as_str(), c.redis_port, c.redis_db), ("localhost", 6379, 0));
    assert!(c.enable_redis_cache && c.enable_mongodb_storage);
    c.validate().unwrap();
}

/// Each case: a mutation and the one field it must be blamed on.
#[test]
fn validate_names_the_offending_field() {
    type Mutation = fn(&mut StreamingConfig);
    let cases: &[(&str, Mutation)] = &[
        ("kafka_bootstrap_servers", |c| c.kafka_bootstrap_servers.clear()),
        ("kafka_bootstrap_servers", |c| c.kafka_bootstrap_servers = vec!["localhost".into()]),
        ("kafka_bootstrap_servers", |c| c.kafka_bootstrap_servers = vec!["h:0".into()]),
        ("kafka_topic", |c| c.kafka_topic = String::new()),
        ("kafka_topic", |c| c.kafka_topic = "has space".into()),
        ("dead_letter_topic", |c| c.dead_letter_topic = c.kafka_topic.clone()),
        ("alerts_topic", |c| c.alerts_topic = "has space".into()),
        ("alerts_topic", |c| c.alerts_topic = c.dead_letter_topic.clone()),
        ("consumer_group_id", |c| c.consumer_group_id = " ".into()),
        ("auto_commit_interval_ms", |c| c.auto_commit_interval_ms = 0),
        ("max_poll_records", |c| c.max_poll_records = 0),
        ("drain_timeout_ms", |c| c.drain_timeout_ms = c.session_timeout_ms),
        ("drain_timeout_ms", |c| c.drain_timeout_ms = 0),
        ("processing_batch_size", |c| c.processing_batch_size = 0),
        ("buffer_size", |c| c.buffer_size = 0),
        ("window_size", |c| c.window_size = c.buffer_size + 1),
        ("redis_ttl_seconds", |c| c.redis_ttl_seconds = -5),
        ("redis_db", |c| c.redis_db = -1),
        ("redis_port", |c| c.redis_port = 0),
        ("mongodb_uri", |c| c.mongodb_uri = "http://x".into()),
        ("mongodb_database", |c| c.mongodb_database = "a.b".into()),
        ("mongodb_collection", |c| c.mongodb_collection = "system.x".into()),
        ("storage_batch_size", |c| c.storage_batch_size = 0),
        ("max_message_bytes", |c| c.max_message_bytes = 0),
        ("voxel_resolution", |c| c.voxel_resolution = 0.0),
        ("voxel_bbox_min", |c| c.voxel_bbox_min = [f64::NAN, 0.0, 0.0]),
        ("voxel_bbox_max", |c| c.voxel_bbox_max = [250.0, -1.0, 300.0]),
        ("layer_map_resolution_mm", |c| c.layer_map_resolution_mm = 0.0001),
        ("layer_map_resolution_mm", |c| c.layer_map_resolution_mm = f64::NAN),
        ("layer_maps_in_memory", |c| c.layer_maps_in_memory = 0),
        ("stall_seconds", |c| c.stall_seconds = 0.0),
        ("stall_seconds", |c| c.stall_seconds = f64::INFINITY),
    ];
    for (field, mutate) in cases {
        let mut c = StreamingConfig::default();
        mutate(&mut c);
        let fields = invalid_fields(&c);
        assert!(fields.iter().any(|f| f == field), "{field}: got {fields:?}");
        assert!(fields.iter().all(|f| f == field), "{field}: extra complaints {fields:?}");
    }
}

#[test]
fn all_problems_are_reported_at_once_with_the_field_names() {
    let c = StreamingConfig { processing_batch_size: 0, redis_ttl_seconds: -1, ..StreamingConfig::default() };
    let message = c.validate().unwrap_err().to_string();
    assert!(message.contains("`processing_batch_size`") && message.contains("`redis_ttl_seconds`"), "{message}");
}

#[test]
fn toml_overrides_defaults_and_rejects_unknown_fields() {
    let c = StreamingConfig::from_toml_str("kafka_topic = \"parts\"\nprocessing_batch_size = 500\n").unwrap();
    assert_eq!((c.kafka_topic.as_str(), c.processing_batch_size, c.buffer_size), ("parts", 500, 1000));
    let err = StreamingConfig::from_toml_str("kafka_topik = \"x\"").unwrap_err().to_string();
    assert!(err.contains("kafka_topik"), "{err}");
    let err = StreamingConfig::from_toml_str("redis_port = 70000").unwrap_err().to_string();
    assert!(err.contains("redis_port"), "{err}");
}

#[test]
fn environment_overrides_the_file() {
    let file = StreamingConfig::from_toml_str("kafka_topic = \"from_file\"\nredis_port = 7000").unwrap();
    let vars = [
        ("QADF_KAFKA_TOPIC", "from_env"),
        ("QADF_KAFKA_BOOTSTRAP_SERVERS", "a:1, b:2"),
        ("QADF_ENABLE_REDIS_CACHE", "false"),
        ("QADF_MESSAGE_ENCODING", "bincode"),
        ("QADF_VOXEL_BBOX_MAX", "100, 100.5, 20"),
        ("QADF_TEST_KAFKA", "ignored: reserved for tests"),
        ("PATH", "/usr/bin"),
    ];
    let c = file.with_env(vars).unwrap();
    assert_eq!(c.kafka_topic, "from_env");
    assert_eq!(c.kafka_bootstrap_servers, ["a:1", "b:2"]);
    assert_eq!((c.enable_redis_cache, c.redis_port, c.message_encoding), (false, 7000, Encoding::Bincode));
    assert_eq!(c.voxel_bbox_max, [100.0, 100.5, 20.0]);
}

#[test]
fn bad_environment_values_name_the_variable() {
    let cases = [
        ("QADF_REDIS_PORT", "many", "QADF_REDIS_PORT"),
        ("QADF_ENABLE_REDIS_CACHE", "maybe", "true or false"),
        ("QADF_KAFKA_TOPICC", "x", "no configuration field `kafka_topicc`"),
        ("QADF_MESSAGE_ENCODING", "xml", "message_encoding"),
        ("QADF_REDIS_PORT", "70000", "redis_port"),
        ("QADF_VOXEL_BBOX_MIN", "0, x, 0", "`x` is not a number"),
    ];
    for (var, value, expected) in cases {
        let err = StreamingConfig::default().with_env([(var, value)]).unwrap_err().to_string();
        assert!(err.contains(expected), "{var}={value}: `{err}` lacks `{expected}`");
    }
}

#[test]
fn file_loading_reports_the_path() {
    let err = StreamingConfig::from_toml_file(Path::new("/nonexistent/qadf.toml")).unwrap_err().to_string();
    assert!(err.contains("/nonexistent/qadf.toml"), "{err}");
}

#[test]
fn the_schema_table_loads_from_toml_and_the_environment_and_is_validated() {
    let text = "kafka_topic = \"t\"\n[schema]\nsource_fields = [\"machine\"]\ntime_zone = \"Europe/Berlin\"\n[schema.units]\ntemperature = \"degC\"\n";
    let config = StreamingConfig::from_toml_str(text).unwrap();
    assert_eq!(config.schema.source_fields, ["machine"]);
    assert_eq!(config.schema.units["temperature"], "degC");
    config.validate().unwrap();
    let env = [
        ("QADF_SCHEMA_TIME_ZONE", "+02:00"),
        ("QADF_SCHEMA_TAG_FIELDS", "material,job"),
        ("QADF_SCHEMA_EPOCH_UNIT", "milliseconds"),
    ];
    let config = config.with_env(env).unwrap();
    assert_eq!(config.schema.time_zone, "+02:00");
    assert_eq!(config.schema.tag_fields, ["material", "job"]);
    assert_eq!(config.schema.epoch_unit, crate::schema::EpochUnit::Milliseconds);
    assert_eq!(config.schema.source_fields, ["machine"], "the file's settings stay");
    let e = StreamingConfig::default().with_env([("QADF_SCHEMA_NO_SUCH", "1")]).unwrap_err();
    assert!(e.to_string().contains("no configuration field `no_such`"), "{e}");
    let bad = StreamingConfig::from_toml_str("[schema]\ntime_zone = \"Nowhere/Else\"\n").unwrap();
    let e = bad.validate().unwrap_err().to_string();
    assert!(e.contains("schema.time_zone"), "{e}");
}

#[test]
fn a_mistyped_variable_never_echoes_a_password() {
    let cases = [
        ("QADF_MONGODB_URL", "mongodb://qadf:Sup3rSecret@db:27017"),
        ("QADF_REDIS_PASSWORDD", "Sup3rSecret"),
        ("QADF_REDIS_PASSWORD_FILE", "Sup3rSecret"),
    ];
    for (var, value) in cases {
        let err = StreamingConfig::default().with_env([(var, value)]).unwrap_err().to_string();
        assert!(err.contains(var) && !err.contains("Sup3rSecret"), "{var}: {err}");
    }
    let c = StreamingConfig::default().with_env([("QADF_REDIS_PASSWORD", "Sup3rSecret")]).unwrap();
    assert_eq!(c.redis_password.expose(), "Sup3rSecret");
    assert!(!format!("{c:?}").contains("Sup3rSecret"), "Debug hides the password");
}

#[test]
fn instances_form_a_consumer_group_unless_told_static() {
    let c = StreamingConfig::default();
    assert_eq!(c.assignment, crate::PartitionAssignment::Group);
    let c = c.with_env([("QADF_ASSIGNMENT", "static"), ("QADF_DRAIN_TIMEOUT_MS", "2000")]).unwrap();
    assert_eq!((c.assignment, c.drain_timeout_ms), (crate::PartitionAssignment::Static, 2000));
    assert!(StreamingConfig::default().with_env([("QADF_ASSIGNMENT", "round-robin")]).is_err());
}

#[test]
fn secrets_come_from_files_named_by_file_variables_and_are_never_echoed() {
    let dir = std::env::temp_dir().join(format!("qadf-secret-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("redis_password");
    std::fs::write(&file, "Fr0mF1le\n").unwrap();
    let uri = dir.join("mongodb_uri");
    std::fs::write(&uri, "mongodb://qadf:Ur1Secret@db:27017").unwrap();
    let c = StreamingConfig::default()
        .with_env([
            ("QADF_REDIS_PASSWORD_FILE", file.to_str().unwrap()),
            ("QADF_MONGODB_URI_FILE", uri.to_str().unwrap()),
        ])
        .unwrap();
    assert_eq!(c.redis_password.expose(), "Fr0mF1le", "one trailing newline dropped");
    assert_eq!(c.mongodb_uri, "mongodb://qadf:Ur1Secret@db:27017");
    let missing = dir.join("Sup3rSecret");
    let err = StreamingConfig::default()
        .with_env([("QADF_KAFKA_SASL_PASSWORD_FILE", missing.to_str().unwrap())])
        .unwrap_err()
        .to_string();
    assert!(err.contains("QADF_KAFKA_SASL_PASSWORD_FILE") && !err.contains("Sup3rSecret"), "{err}");
    // Only secrets read from files: any other `_FILE` is an unknown field.
    assert!(StreamingConfig::default().with_env([("QADF_KAFKA_TOPIC_FILE", file.to_str().unwrap())]).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sasl_needs_a_user_and_a_password_and_a_ca_file_needs_tls() {
    use crate::KafkaSecurityProtocol;
    let sasl =
        StreamingConfig { kafka_security_protocol: KafkaSecurityProtocol::SaslSsl, ..StreamingConfig::default() };
    let err = sasl.validate().unwrap_err().to_string();
    assert!(err.contains("kafka_sasl_username") && err.contains("kafka_sasl_password"), "{err}");
    let c = StreamingConfig::default()
        .with_env([
            ("QADF_KAFKA_SECURITY_PROTOCOL", "sasl_ssl"),
            ("QADF_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256"),
            ("QADF_KAFKA_SASL_USERNAME", "qadf"),
            ("QADF_KAFKA_SASL_PASSWORD", "pw"),
        ])
        .unwrap();
    c.validate().unwrap();
    assert_eq!(c.kafka_sasl_mechanism, crate::SaslMechanism::ScramSha256);
    let stray = StreamingConfig { kafka_tls_ca_file: "ca.pem".into(), ..StreamingConfig::default() };
    assert!(stray.validate().unwrap_err().to_string().contains("kafka_tls_ca_file"));
    let stray = StreamingConfig { redis_tls_ca_file: "ca.pem".into(), ..StreamingConfig::default() };
    assert!(stray.validate().unwrap_err().to_string().contains("redis_tls_ca_file"));
}
