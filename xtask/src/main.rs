//! `cargo xtask`: project automation with no dependencies beyond anyhow.
//!
//! - `cargo xtask services up|down|status [kafka|redis|mongodb ...]`: the real test services.
//! - `cargo xtask ci`: the whole test suite (format, lints, unit and real-service integration tests).
//! - `cargo xtask scenarios [--full]`: the end-to-end scenarios (crash, scale-out, bad input, soak).
//! - `cargo xtask bench [kafka|storage|run|e2e|alerts|page]`: benchmarks against the real services; with no target,
//!   all of them in one run, written into docs/PERFORMANCE.md as one report.

mod alerts;
mod ping;
mod report;
mod run_bench;
mod services;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use services::{Layout, Service, run};

/// Features that compile the tests needing real services.
const SERVICE_FEATURES: &str =
    "qadf-integration-tests/services,qadf-kafka-io/services,qadf-storage/services,qadf-client/services";

const USAGE: &str = "usage:
  cargo xtask services up|down|status [kafka|redis|mongodb ...]
  cargo xtask ci        format check, clippy, and every test against the real services
  cargo xtask scenarios [--full]            the end-to-end scenarios of tests/ (full sizes with --full)
  cargo xtask bench                         every benchmark below in one run; writes the report into
                                            docs/PERFORMANCE.md (figures, same-run ceilings, seed targets)
  cargo xtask bench kafka [--records N]     Kafka throughput and latency against the real broker (default 1M)
  cargo xtask bench storage [--records N]   MongoDB/Redis/embedded stores against their ceilings (N samples,
                                            default 1,000,000)
  cargo xtask bench run [--records N]       `run` Kafka -> checks -> MongoDB and -> embedded, beside pymongo
                                            and the broker's fetch (backlog of ~N samples, default 12,000,000)
  cargo xtask bench e2e [--records N]       live-view WebSocket latency with 10 viewers (N batches, default 3000)
                                            and the demo's end-to-end samples/s
  cargo xtask bench alerts [--records S]    produce -> alert latency of `run` at 1k, 5k, 10k msg/s beside the
                                            broker's own latency (S seconds per rate, default 20)
  cargo xtask bench page [--records S]      the live page in headless Chromium while the demo streams 100,000
                                            samples/s: frames/s, frame sizes, main-thread busy time (S s, default 15)";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    match args.first().map(String::as_str) {
        Some("services") => services_command(&root, &args[1..]),
        Some("ci") => ci(&root),
        Some("bench") => bench(&root, &args[1..]),
        Some("scenarios") => scenarios(&root, &args[1..]),
        _ => {
            eprintln!("{USAGE}");
            bail!("unknown or missing command");
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

fn selected(names: &[String]) -> Result<Vec<Service>> {
    if names.is_empty() {
        return Ok(Service::ALL.to_vec());
    }
    names.iter().map(|n| Service::parse(n)).collect()
}

fn services_command(root: &Path, args: &[String]) -> Result<()> {
    let layout = Layout::new(root);
    let (verb, names) = args.split_first().context(USAGE)?;
    let services = selected(names)?;
    match verb.as_str() {
        "up" => services.into_iter().try_for_each(|s| layout.up(s)),
        "down" => services.into_iter().try_for_each(|s| layout.down(s)),
        "status" => {
            let down = services.into_iter().filter(|&s| !layout.status(s)).count();
            if down > 0 {
                bail!("{down} service(s) not answering; start them with `cargo xtask services up`");
            }
            Ok(())
        }
        other => bail!("unknown services verb `{other}`\n{USAGE}"),
    }
}

fn cargo(root: &Path) -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    c.current_dir(root);
    c
}

/// Starts the services, runs every check once, and stops the services whatever happened.
fn ci(root: &Path) -> Result<()> {
    let started = Instant::now();
    step("cargo fmt --check", || run(cargo(root).args(["fmt", "--all", "--", "--check"])))?;
    let layout = Layout::new(root);
    let result = step("services up", || Service::ALL.into_iter().try_for_each(|s| layout.up(s)))
        .and_then(|()| {
            step("cargo clippy", || {
                run(cargo(root).args([
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--features",
                    SERVICE_FEATURES,
                    "--",
                    "-D",
                    "warnings",
                ]))
            })
        })
        .and_then(|()| {
            step("cargo test", || {
                let mut test = cargo(root);
                test.args(["test", "--workspace", "--features", SERVICE_FEATURES]);
                for s in Service::ALL {
                    test.env(s.env_var(), s.addr());
                }
                test.env("QADF_TEST_PYTHON", layout.python_clients());
                test.env("QADF_TEST_CHROMIUM", services::chromium()?);
                test.env("QADF_TEST_QADF_STREAM", release_binary(root)?);
                // Restart tests stop and start services through this very binary.
                if let Ok(me) = std::env::current_exe() {
                    test.env("QADF_TEST_XTASK", me);
                }
                run(&mut test)
            })
        });
    for s in Service::ALL {
        if let Err(e) = layout.down(s) {
            eprintln!("warning: could not stop {}: {e:#}", s.name());
        }
    }
    result?;
    println!("ci passed in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Builds the release `qadf-stream` the end-to-end scenarios run (the soak needs its speed).
fn release_binary(root: &Path) -> Result<PathBuf> {
    step("cargo build --release -p qadf-client", || {
        run(cargo(root).args(["build", "--release", "-p", "qadf-client", "--bin", "qadf-stream"]))
    })?;
    Ok(root.join("target/release/qadf-stream"))
}

/// The end-to-end scenarios of `tests/` against the real services; `--full` runs their full sizes.
fn scenarios(root: &Path, args: &[String]) -> Result<()> {
    let full = match args {
        [] => false,
        [flag] if flag == "--full" => true,
        _ => bail!("{USAGE}"),
    };
    let layout = Layout::new(root);
    Service::ALL.into_iter().try_for_each(|s| layout.up(s))?;
    let binary = release_binary(root)?;
    let mut test = cargo(root);
    test.args(["test", "-p", "qadf-integration-tests", "--features", "services", "--", "--nocapture"]);
    for s in Service::ALL {
        test.env(s.env_var(), s.addr());
    }
    test.env("QADF_TEST_QADF_STREAM", binary);
    if let Ok(me) = std::env::current_exe() {
        test.env("QADF_TEST_XTASK", me);
    }
    if full {
        test.env("QADF_TEST_FULL", "1");
    }
    run(&mut test)
}

/// Benchmarks that need a real service: starts it, runs the bench binary, leaves the service up.
fn bench(root: &Path, args: &[String]) -> Result<()> {
    let Some((target, rest)) = args.split_first() else {
        return bench_report(root);
    };
    let records = match rest {
        [flag, n] if flag == "--records" => Some(n.parse::<u64>().context("--records takes a number")?),
        [] => None,
        _ => bail!("{USAGE}"),
    };
    match target.as_str() {
        "kafka" => {
            Layout::new(root).up(Service::Kafka)?;
            run(cargo(root)
                .args(["bench", "-p", "qadf-kafka-io", "--features", "services", "--bench", "kafka"])
                .env("QADF_BENCH_RECORDS", records.unwrap_or(1_000_000).to_string())
                .env(Service::Kafka.env_var(), Service::Kafka.addr()))
        }
        "storage" => {
            let layout = Layout::new(root);
            layout.up(Service::Redis)?;
            layout.up(Service::Mongodb)?;
            let mut bench = cargo(root);
            bench.args(["bench", "-p", "qadf-storage", "--features", "services", "--bench", "storage"]);
            bench.env("QADF_BENCH_SAMPLES", records.unwrap_or(1_000_000).to_string());
            for s in [Service::Redis, Service::Mongodb] {
                bench.env(s.env_var(), s.addr());
            }
            run(&mut bench)
        }
        "run" => {
            for line in run_bench::bench(root, &release_binary(root)?, records.unwrap_or(12_000_000))? {
                println!("{line}");
            }
            Ok(())
        }
        "alerts" => {
            let seconds = records.map_or(Ok(20), u32::try_from).context("--records: seconds per rate")?;
            for line in alerts::bench(root, &release_binary(root)?, seconds)? {
                println!("{line}");
            }
            Ok(())
        }
        "page" => {
            let binary = release_binary(root)?;
            run(cargo(root)
                .args(["test", "-p", "qadf-integration-tests", "--features", "services", "--test", "browser"])
                .args(["--", "--ignored", "--exact", "page_cost_at_100000_samples_per_second", "--nocapture"])
                .env("QADF_TEST_QADF_STREAM", binary)
                .env("QADF_BENCH_SECONDS", records.unwrap_or(15).to_string()))
        }
        "e2e" => run(cargo(root)
            .args(["bench", "-p", "qadf-client", "--bench", "e2e"])
            .env("QADF_BENCH_BATCHES", records.unwrap_or(3000).to_string())),
        other => bail!("unknown benchmark `{other}`\n{USAGE}"),
    }
}

/// Every service benchmark in one run, one report in docs/PERFORMANCE.md.
fn bench_report(root: &Path) -> Result<()> {
    let layout = Layout::new(root);
    for s in Service::ALL {
        layout.up(s)?;
    }
    let mut kafka = cargo(root);
    kafka.args(["bench", "-p", "qadf-kafka-io", "--features", "services", "--bench", "kafka"]);
    kafka.env("QADF_BENCH_RECORDS", "1000000").env(Service::Kafka.env_var(), Service::Kafka.addr());
    let mut storage = cargo(root);
    storage.args(["bench", "-p", "qadf-storage", "--features", "services", "--bench", "storage"]);
    storage.env("QADF_BENCH_SAMPLES", "1000000");
    for s in [Service::Redis, Service::Mongodb] {
        storage.env(s.env_var(), s.addr());
    }
    let mut e2e = cargo(root);
    e2e.args(["bench", "-p", "qadf-client", "--bench", "e2e"]).env("QADF_BENCH_BATCHES", "3000");
    let run_lines = run_bench::bench(root, &release_binary(root)?, 12_000_000)?;
    let alert_lines = alerts::bench(root, &release_binary(root)?, 20)?;
    let sections = vec![
        ("Kafka: 1,000,000 records, one partition (`bench kafka`)", report::run_capture(&mut kafka)?),
        ("Storage: 1,000,000 samples in buckets (`bench storage`)", report::run_capture(&mut storage)?),
        ("`run` throughput to MongoDB and embedded (`bench run`)", run_lines),
        ("End to end: live view and demo (`bench e2e`)", report::run_capture(&mut e2e)?),
        ("Alert latency of `run` (`bench alerts`)", alert_lines),
    ];
    let doc = root.join("docs/PERFORMANCE.md");
    report::write_into(&doc, &report::render(&sections))?;
    println!("report written into {}", doc.display());
    Ok(())
}

fn step(name: &str, f: impl FnOnce() -> Result<()>) -> Result<()> {
    println!("== {name}");
    let t = Instant::now();
    let r = f().with_context(|| format!("step `{name}` failed"));
    println!("== {name}: {} in {:.1} s", if r.is_ok() { "ok" } else { "FAILED" }, t.elapsed().as_secs_f64());
    r
}
