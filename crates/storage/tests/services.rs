//! The Redis (and later MongoDB) implementations against the same trait contracts, on the real
//! servers started by `cargo xtask services up`.

mod suite;

use std::time::Duration;

use qadf_core_types::{Cache, Value};
use qadf_storage::{RedisCache, keys};
use suite::cache_suite;

fn redis_url() -> String {
    let addr = std::env::var("QADF_TEST_REDIS").unwrap_or_else(|_| "127.0.0.1:16379".to_owned());
    assert!(
        std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2)).is_ok(),
        "no Redis at {addr}: start it with `cargo xtask services up redis`"
    );
    format!("redis://{addr}/0")
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Keys of one test run, so parallel tests never share keys.
struct Prefixed<'a>(&'a RedisCache, String);

impl Cache for Prefixed<'_> {
    fn put(&self, key: &str, value: &Value, ttl: Duration) -> Result<(), qadf_core_types::BackendError> {
        self.0.put(&format!("{}:{key}", self.1), value, ttl)
    }
    fn get(&self, key: &str) -> Result<Option<Value>, qadf_core_types::BackendError> {
        self.0.get(&format!("{}:{key}", self.1))
    }
}

#[test]
fn redis_keeps_the_cache_contract() {
    let cache = RedisCache::connect(&redis_url(), Duration::from_secs(2)).unwrap();
    cache_suite(&Prefixed(&cache, unique("qadf-test")), &|| std::thread::sleep(Duration::from_millis(1100)));
}

#[test]
fn redis_pipelined_writes_and_the_key_scheme() {
    let cache = RedisCache::connect(&redis_url(), Duration::from_secs(2)).unwrap();
    let build = unique("build");
    let entries: Vec<(String, Value)> =
        (0..100u32).map(|n| (keys::layer("qadf", &build, n), Value::Int(n as i64))).collect();
    cache.put_many(&entries, Duration::from_secs(30)).unwrap();
    assert_eq!(cache.get(&keys::layer("qadf", &build, 42)).unwrap(), Some(Value::Int(42)));
    assert_eq!(keys::latest("qadf", "b7"), "qadf:b7:latest");
    cache.ping().unwrap();
}

#[test]
fn redis_text_values_are_stored_as_is_and_credentials_come_from_the_configuration() {
    let url = redis_url();
    let admin = redis::Client::open(url.as_str()).unwrap();
    let mut admin = admin.get_connection().unwrap();
    let (user, password, prefix) = (unique("qadf-acl"), unique("pw"), unique("acl"));
    // An ACL user allowed only its own key prefix.
    redis::cmd("ACL")
        .arg(&["SETUSER", &user, "on", &format!(">{password}"), &format!("~{prefix}:*"), "+@all"][..])
        .query::<()>(&mut admin)
        .unwrap();
    let (host, port) = url.trim_start_matches("redis://").trim_end_matches("/0").split_once(':').unwrap();
    let mut config = qadf_core_types::StreamingConfig {
        redis_host: host.to_owned(),
        redis_port: port.parse().unwrap(),
        redis_username: user.clone(),
        redis_password: qadf_core_types::secret::Secret::new(password.clone()),
        ..Default::default()
    };
    let cache = RedisCache::from_config(&config, Duration::from_secs(2)).unwrap();
    let key = format!("{prefix}:b1:latest");
    cache.put_text(&key, r#"{"samples":3}"#, Duration::from_secs(30)).unwrap();
    let raw: String = redis::cmd("GET").arg(&key).query(&mut admin).unwrap();
    assert_eq!(raw, r#"{"samples":3}"#, "plain text, no framing");
    assert_eq!(cache.get_text(&key).unwrap().as_deref(), Some(r#"{"samples":3}"#));
    let denied = cache.put_text("elsewhere:key", "x", Duration::from_secs(30)).unwrap_err();
    assert!(!denied.to_string().contains(&password), "{denied}");
    config.redis_password = qadf_core_types::secret::Secret::new("wrong");
    let refused = RedisCache::from_config(&config, Duration::from_millis(500)).unwrap().ping().unwrap_err();
    assert!(!refused.to_string().contains(&password), "{refused}");
    redis::cmd("ACL").arg(&["DELUSER", user.as_str()][..]).query::<()>(&mut admin).unwrap();
}

fn mongo(name: &str) -> qadf_storage::MongoStore {
    let addr = std::env::var("QADF_TEST_MONGODB").unwrap_or_else(|_| "127.0.0.1:17017".to_owned());
    assert!(
        std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2)).is_ok(),
        "no MongoDB-protocol server at {addr}: start it with `cargo xtask services up mongodb`"
    );
    let config = qadf_core_types::StreamingConfig {
        mongodb_uri: format!("mongodb://{addr}"),
        mongodb_database: unique(name).replace('-', "_"),
        mongodb_collection: "stream_data".into(),
        storage_batch_size: 16, // several insert_many calls per test batch
        ..Default::default()
    };
    qadf_storage::MongoStore::connect(&config, Duration::from_secs(5)).unwrap()
}

#[test]
fn mongodb_keeps_the_history_contract() {
    let store = mongo("history");
    suite::history_suite(&store);
    store.drop_all().unwrap();
}

#[test]
fn mongodb_keeps_the_layer_report_contract() {
    let store = mongo("reports");
    suite::layer_report_suite(&store);
    store.drop_all().unwrap();
}

#[test]
fn mongodb_keeps_the_offset_contract() {
    let store = mongo("offsets");
    suite::offset_suite(&store);
    store.drop_all().unwrap();
}

#[test]
fn mongodb_indexes_and_typed_bucket_documents() {
    use qadf_core_types::HistoryStore;
    use qadf_core_types::bucket::Bucket;
    let store = mongo("indexes");
    let names = store.create_time_series_index(Some(Duration::from_secs(30 * 24 * 3600))).unwrap();
    for expected in ["start_ns_1", "build_id_1_start_ns_1", "source_id_1_start_ns_1", "end_1"] {
        assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
    }
    let samples = qadf_integration_tests::monitor_run(500, 2);
    store.store_samples(&samples).unwrap();
    assert_eq!(store.count().unwrap(), 500);
    let stats = store.statistics();
    assert!(stats.reachable && stats.documents == 1 && stats.indexes.len() >= 5, "{stats:?}");
    // Read the raw document with the driver: times are BSON UTC datetimes, counts and layers typed.
    let addr = std::env::var("QADF_TEST_MONGODB").unwrap_or_else(|_| "127.0.0.1:17017".to_owned());
    let raw = mongodb::sync::Client::with_uri_str(format!("mongodb://{addr}")).unwrap();
    let (db, _) = store.names();
    let document = raw
        .database(db)
        .collection::<mongodb::bson::Document>("stream_data")
        .find_one(mongodb::bson::doc! {})
        .run()
        .unwrap()
        .unwrap();
    let ms = |i: usize| samples[i].timestamp.as_nanos() / 1_000_000;
    assert_eq!(document.get_datetime("start").unwrap().timestamp_millis(), ms(0));
    assert_eq!(document.get_datetime("end").unwrap().timestamp_millis(), ms(499));
    assert_eq!(document.get_i64("layer").unwrap(), 2);
    assert_eq!(document.get_i64("count").unwrap(), 500);
    assert_eq!(document.get_str("_id").unwrap(), Bucket::id_of(&samples));
    let summary = document.get_array("summaries").unwrap()[0].as_document().unwrap().clone();
    let max = samples.iter().map(|s| s.signals.get("temperature").unwrap()).fold(f64::MIN, f64::max);
    assert_eq!((summary.get_str("name").unwrap(), summary.get_f64("max").unwrap()), ("temperature", max));
    store.drop_all().unwrap();
}

#[test]
fn redis_over_tls_trusts_the_configured_ca_and_refuses_another() {
    let dir = std::env::temp_dir().join(unique("qadf-redis-tls"));
    qadf_integration_tests::make_certificates(&dir, "qadf test CA");
    qadf_integration_tests::make_certificates(&dir.join("other"), "another CA");
    let port = qadf_integration_tests::free_port();
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    // Debian's redis-server (installed by `cargo xtask services up redis`), TLS only, no disk.
    let mut server = std::process::Command::new("redis-server")
        .args(["--port", "0", "--tls-port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--tls-cert-file", &path("server.pem"), "--tls-key-file", &path("server.key")])
        .args(["--tls-ca-cert-file", &path("ca.pem"), "--tls-auth-clients", "no", "--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server");
    qadf_integration_tests::wait_until("redis-server --tls-port answers", || {
        qadf_integration_tests::answers(&format!("127.0.0.1:{port}"))
    });
    let config = qadf_core_types::StreamingConfig {
        redis_host: "localhost".to_owned(),
        redis_port: port,
        redis_tls: true,
        redis_tls_ca_file: path("ca.pem"),
        ..Default::default()
    };
    let outcome = std::panic::catch_unwind(|| {
        let cache = RedisCache::from_config(&config, Duration::from_secs(2)).unwrap();
        cache.put_text("qadf:tls", "{\"over\":\"tls\"}", Duration::from_secs(30)).unwrap();
        assert_eq!(cache.get_text("qadf:tls").unwrap().as_deref(), Some("{\"over\":\"tls\"}"));

        let untrusted = qadf_core_types::StreamingConfig { redis_tls_ca_file: path("other/ca.pem"), ..config.clone() };
        let refused = RedisCache::from_config(&untrusted, Duration::from_secs(2)).unwrap().ping().unwrap_err();
        assert!(refused.to_string().contains("certificate"), "a server signed by another CA: {refused}");
        let plain =
            qadf_core_types::StreamingConfig { redis_tls: false, redis_tls_ca_file: String::new(), ..config.clone() };
        assert!(
            RedisCache::from_config(&plain, Duration::from_secs(2)).unwrap().ping().is_err(),
            "plain TCP to a TLS port"
        );
        let missing = qadf_core_types::StreamingConfig { redis_tls_ca_file: path("nowhere.pem"), ..config.clone() };
        let err =
            RedisCache::from_config(&missing, Duration::from_secs(2)).err().expect("a missing CA file is refused");
        assert!(err.to_string().contains("redis_tls_ca_file"), "{err}");
    });
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn mongodb_over_tls_through_the_uri_trusts_the_named_ca_and_refuses_another() {
    let plain = std::env::var("QADF_TEST_MONGODB").unwrap_or_else(|_| "127.0.0.1:17017".to_owned());
    let dir = std::env::temp_dir().join(unique("qadf-mongodb-tls"));
    qadf_integration_tests::make_certificates(&dir, "qadf test CA");
    qadf_integration_tests::make_certificates(&dir.join("other"), "another CA");
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    // The test server speaks no TLS itself: socat terminates TLS in front of it (as for Kafka in
    // tests/secured.rs), so the driver's own TLS (rustls) is what is tested.
    let port = qadf_integration_tests::free_port();
    let mut terminator = std::process::Command::new("socat")
        .arg(format!(
            "openssl-listen:{port},reuseaddr,fork,bind=127.0.0.1,cert={},key={},verify=0",
            path("server.pem"),
            path("server.key")
        ))
        .arg(format!("tcp:{plain}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("socat (installed by `cargo xtask services up kafka`)");
    qadf_integration_tests::wait_until("the TLS terminator answers", || {
        qadf_integration_tests::answers(&format!("127.0.0.1:{port}"))
    });
    let config = |ca: &str| qadf_core_types::StreamingConfig {
        mongodb_uri: format!("mongodb://localhost:{port}/?tls=true&tlsCAFile={}&directConnection=true", path(ca)),
        mongodb_database: unique("tls").replace('-', "_"),
        mongodb_collection: "stream_data".into(),
        ..Default::default()
    };
    let outcome = std::panic::catch_unwind(|| {
        use qadf_core_types::HistoryStore;
        let store = qadf_storage::MongoStore::connect(&config("ca.pem"), Duration::from_secs(5)).unwrap();
        let samples: Vec<qadf_core_types::Sample> = (0..10)
            .map(|i| {
                let mut s = qadf_core_types::Sample::new(
                    qadf_core_types::Timestamp::from_nanos(1_795_000_000_000_000_000 + i * 10_000),
                    qadf_core_types::Point3::new(1.0, 1.0, 0.05),
                    [("temperature", 1900.0 + i as f64)].into_iter().collect(),
                );
                s.build_id = "tls".into();
                s
            })
            .collect();
        assert_eq!(store.store_samples(&samples).unwrap().inserted, 10);
        let back = store.query_stream_history(&qadf_core_types::HistoryQuery::all()).unwrap();
        assert_eq!(back.len(), 10, "stored and read back over TLS");
        store.drop_all().unwrap();

        let untrusted = qadf_storage::MongoStore::connect(&config("other/ca.pem"), Duration::from_secs(3)).unwrap();
        let refused = untrusted.ping().unwrap_err().to_string();
        assert!(refused.contains("certificate") || refused.contains("UnknownIssuer"), "another CA: {refused}");
        let no_tls = qadf_core_types::StreamingConfig {
            mongodb_uri: format!("mongodb://localhost:{port}/?directConnection=true"),
            ..config("ca.pem")
        };
        let plain_to_tls = qadf_storage::MongoStore::connect(&no_tls, Duration::from_secs(3)).unwrap();
        assert!(plain_to_tls.ping().is_err(), "plain TCP to a TLS port");
    });
    let _ = terminator.kill();
    let _ = terminator.wait();
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
