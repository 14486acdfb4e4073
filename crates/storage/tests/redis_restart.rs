//! Redis restarted mid-run: the same `RedisCache` fails while it is down and recovers by itself.
//! Its own test binary (cargo runs binaries one at a time), as it restarts the shared server.

use std::time::Duration;

use qadf_core_types::{BackendErrorKind, Cache, Value};
use qadf_integration_tests::{wait_until, xtask_services};
use qadf_storage::RedisCache;

fn addr() -> String {
    std::env::var("QADF_TEST_REDIS").unwrap_or_else(|_| "127.0.0.1:16379".to_owned())
}

fn answers() -> bool {
    qadf_integration_tests::answers(&addr())
}

#[test]
fn the_cache_recovers_after_redis_restarts() {
    assert!(answers(), "no Redis at {}: start it with `cargo xtask services up redis`", addr());
    let cache = RedisCache::connect(&format!("redis://{}/0", addr()), Duration::from_millis(500)).unwrap();
    cache.put("qadf:restart:before", &Value::Int(1), Duration::from_secs(60)).unwrap();

    xtask_services("down", "redis");
    assert!(!answers());
    let err = cache.put("qadf:restart:during", &Value::Int(2), Duration::from_secs(60)).unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::Unavailable, "{err}");
    xtask_services("up", "redis");
    wait_until("Redis is back", answers);

    // The pool checks connections on checkout: the next call reconnects instead of failing.
    cache.put("qadf:restart:after", &Value::Text("ok".into()), Duration::from_secs(60)).unwrap();
    assert_eq!(cache.get("qadf:restart:after").unwrap(), Some(Value::Text("ok".into())));
    assert_eq!(cache.get("qadf:restart:before").unwrap(), None, "Redis keeps nothing on disk here");
}
