//! Helpers for the cross-crate integration tests: where the real services are, and a clear
//! failure when they are not running.
//!
//! The service tests are compiled only with the `services` feature (`cargo xtask ci` enables it);
//! the addresses come from `QADF_TEST_KAFKA`, `QADF_TEST_REDIS` and `QADF_TEST_MONGODB`, set by
//! `cargo xtask ci`, or default to the ports `cargo xtask services up` uses.
#![deny(missing_docs)]

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A real service the integration tests talk to.
#[derive(Clone, Copy, Debug)]
pub enum Service {
    /// The Kafka-protocol broker (Tansu).
    Kafka,
    /// Redis.
    Redis,
    /// The MongoDB-protocol server (SecantusDB).
    Mongodb,
}

impl Service {
    fn env_var(self) -> &'static str {
        match self {
            Service::Kafka => "QADF_TEST_KAFKA",
            Service::Redis => "QADF_TEST_REDIS",
            Service::Mongodb => "QADF_TEST_MONGODB",
        }
    }

    fn default_addr(self) -> &'static str {
        match self {
            Service::Kafka => "127.0.0.1:19092",
            Service::Redis => "127.0.0.1:16379",
            Service::Mongodb => "127.0.0.1:17017",
        }
    }

    /// The service's `host:port`, without checking it (for tests that stop and start it).
    pub fn addr_unchecked(self) -> String {
        std::env::var(self.env_var()).unwrap_or_else(|_| self.default_addr().to_owned())
    }

    /// The service's `host:port`, after checking that it accepts connections.
    ///
    /// # Panics
    /// When nothing listens there, with a message saying how to start the services.
    pub fn addr(self) -> String {
        let addr = std::env::var(self.env_var()).unwrap_or_else(|_| self.default_addr().to_owned());
        let sock: SocketAddr =
            addr.parse().unwrap_or_else(|e| panic!("{}={addr} is not host:port: {e}", self.env_var()));
        if let Err(e) = TcpStream::connect_timeout(&sock, Duration::from_secs(2)) {
            panic!(
                "{self:?} is not reachable at {addr} ({e}). Start the test services with \
                 `cargo xtask services up` (or run everything with `cargo xtask ci`)."
            );
        }
        addr
    }
}

/// A name unique to this test run, for topics, keys, databases and collections.
pub fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{prefix}_{}_{nanos}", std::process::id())
}

/// Whether something accepts TCP connections at `addr` within 200 ms.
pub fn answers(addr: &str) -> bool {
    addr.parse::<SocketAddr>().is_ok_and(|sock| TcpStream::connect_timeout(&sock, Duration::from_millis(200)).is_ok())
}

/// Polls `condition` every 50 ms for up to 30 s.
///
/// # Panics
/// When it does not hold in time, naming `what`.
pub fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `xtask services <verb> <service>` with the binary that started the services (its path
/// comes from `QADF_TEST_XTASK`, set by `cargo xtask ci`, else `target/debug/xtask`).
///
/// # Panics
/// When the command cannot run or fails.
pub fn xtask_services(verb: &str, service: &str) {
    let xtask = std::env::var("QADF_TEST_XTASK")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/xtask"));
    let status = std::process::Command::new(&xtask)
        .args(["services", verb, service])
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}: {e} (build it with `cargo xtask services up`)", xtask.display()));
    assert!(status.success(), "xtask services {verb} {service} failed");
}
