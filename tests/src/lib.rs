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
