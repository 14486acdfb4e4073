//! Redis restarted mid-run: the same `RedisCache` fails while it is down and recovers by itself.
//! Its own test binary (cargo runs binaries one at a time), as it restarts the shared server.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use qadf_core_types::{BackendErrorKind, Cache, Value};
use qadf_storage::RedisCache;

fn addr() -> String {
    std::env::var("QADF_TEST_REDIS").unwrap_or_else(|_| "127.0.0.1:16379".to_owned())
}

fn answers() -> bool {
    std::net::TcpStream::connect_timeout(&addr().parse().unwrap(), Duration::from_millis(200)).is_ok()
}

fn wait_until(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_cache_recovers_after_redis_restarts() {
    assert!(answers(), "no Redis at {}: start it with `cargo xtask services up redis`", addr());
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/services/redis");
    let cache = RedisCache::connect(&format!("redis://{}/0", addr()), Duration::from_millis(500)).unwrap();
    cache.put("qadf:restart:before", &Value::Int(1), Duration::from_secs(60)).unwrap();

    let pid = std::fs::read_to_string(dir.join("pid"))
        .expect("Redis PID file: start it with `cargo xtask services up redis`");
    Command::new("kill").arg(pid.trim()).status().unwrap();
    wait_until("Redis is down", || !answers());
    let err = cache.put("qadf:restart:during", &Value::Int(2), Duration::from_secs(60)).unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::Unavailable, "{err}");

    let port = addr().rsplit_once(':').unwrap().1.to_owned();
    let dir = std::fs::canonicalize(&dir).unwrap();
    let status = Command::new("redis-server")
        .args(["--daemonize", "yes", "--bind", "127.0.0.1", "--port", &port, "--save", "", "--appendonly", "no"])
        .arg("--pidfile")
        .arg(dir.join("pid"))
        .arg("--logfile")
        .arg(dir.join("log"))
        .arg("--dir")
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    wait_until("Redis is back", answers);

    // The pool checks connections on checkout: the next call reconnects instead of failing.
    cache.put("qadf:restart:after", &Value::Text("ok".into()), Duration::from_secs(60)).unwrap();
    assert_eq!(cache.get("qadf:restart:after").unwrap(), Some(Value::Text("ok".into())));
    assert_eq!(cache.get("qadf:restart:before").unwrap(), None, "Redis keeps nothing on disk here");
}
