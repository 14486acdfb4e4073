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
