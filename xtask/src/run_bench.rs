//! `cargo xtask bench run`: what `qadf-stream run` (release) sustains from Kafka through the
//! production checks into MongoDB (SecantusDB) and into the embedded store, each beside its
//! ceiling measured in the same run by an independent client (`xtask/bench/run_ceilings.py`):
//! pymongo inserting the very bucket documents `run` wrote into the same server, and
//! confluent-kafka reading the same topic from the same broker.
//!
//! The backlog is produced first (`qadf-stream produce-sim`, bincode messages of 1,000 samples, as
//! a gateway batches a 100 kHz monitor), then `run` drains it; the rate is taken between the first
//! progress line that shows stored samples and the one where all are stored (lines every 2 s).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};

use crate::services::{Layout, Service};

/// Samples per message.
const PER_MESSAGE: u64 = 1000;

/// `(seconds since start, samples stored)` from each progress line of a `run` until it exits.
fn drain(binary: &Path, envs: &[(&str, String)], args: &[&str]) -> Result<Vec<(f64, u64)>> {
    let mut child = Command::new(binary)
        .arg("run")
        .args(args)
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting qadf-stream run")?;
    let started = Instant::now();
    let mut points = Vec::new();
    for line in BufReader::new(child.stdout.take().context("run's stdout")?).lines() {
        let line = line?;
        if let Some(stored) = line.split(", ").find_map(|part| part.strip_suffix(" stored")) {
            points.push((started.elapsed().as_secs_f64(), stored.parse().context("a stored count")?));
        }
        if line.starts_with("stopped") {
            println!("  {line}");
        }
    }
    if !child.wait()?.success() {
        bail!("qadf-stream run failed");
    }
    Ok(points)
}

/// The rate between the first line with stored samples and the first with all of them, and
/// how long that was.
fn rate(points: &[(f64, u64)], total: u64) -> Result<(f64, f64)> {
    let first = points.iter().find(|p| p.1 > 0).context("run stored nothing")?;
    let last = points.iter().find(|p| p.1 >= total).context("run did not store every sample")?;
    if first.0 >= last.0 {
        bail!("the backlog was stored between two progress lines: make it larger (--records)");
    }
    let seconds = last.0 - first.0;
    Ok(((last.1 - first.1) as f64 / seconds.max(1e-9), seconds))
}

/// Runs the bench with a backlog of about `samples` samples; returns the report lines.
pub fn bench(root: &Path, binary: &Path, samples: u64) -> Result<Vec<String>> {
    let layout = Layout::new(root);
    layout.up(Service::Kafka)?;
    layout.up(Service::Mongodb)?;
    let (broker, mongo) = (Service::Kafka.addr(), format!("mongodb://{}", Service::Mongodb.addr()));
    let id = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let topic = format!("bench_run_{id}");
    // A simulated layer of a 40 mm part is 160,000 samples (400 tracks of 400 points).
    let layers = samples.div_ceil(160_000).max(1);
    let common = [
        ("QADF_KAFKA_BOOTSTRAP_SERVERS", broker.clone()),
        ("QADF_KAFKA_TOPIC", topic.clone()),
        ("QADF_MESSAGE_ENCODING", "bincode".to_owned()),
        ("QADF_PROCESSING_BATCH_SIZE", PER_MESSAGE.to_string()),
        ("QADF_ENABLE_REDIS_CACHE", "false".to_owned()),
        ("QADF_DEAD_LETTER_TOPIC", format!("{topic}_dlq")),
        ("QADF_ALERTS_TOPIC", format!("{topic}_alerts")),
        ("QADF_AUTO_OFFSET_RESET", "earliest".to_owned()),
        ("QADF_MAX_BATCH_WAIT_MS", "20".to_owned()),
    ];
    let t = Instant::now();
    let out = Command::new(binary)
        .args(["produce-sim", "--partitions", "1", "--part-size", "40", "--build", "bench"])
        .args(["--layers", &layers.to_string()])
        .envs(common.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .context("qadf-stream produce-sim")?;
    if !out.status.success() {
        bail!("produce-sim failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let total: u64 = text
        .split_whitespace()
        .skip_while(|w| *w != "sent")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("produce-sim's output: {text}"))?;
    let messages = total.div_ceil(PER_MESSAGE);
    println!("backlog: {total} samples in {messages} messages, produced in {:.1} s", t.elapsed().as_secs_f64());

    let python = layout.python_clients();
    let script = root.join("xtask/bench/run_ceilings.py");
    let py = |args: &[&str]| -> Result<(f64, f64)> {
        let out = Command::new(&python).arg(&script).args(args).output().context("running python")?;
        if !out.status.success() {
            bail!("{script:?} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut words = text.split_whitespace().map(str::parse::<f64>);
        match (words.next(), words.next()) {
            (Some(Ok(n)), Some(Ok(s))) => Ok((n, s)),
            _ => bail!("{script:?} printed {text}"),
        }
    };

    // MongoDB history.
    let database = format!("bench_run_{id}");
    let mut envs = common.to_vec();
    envs.extend([
        ("QADF_ENABLE_MONGODB_STORAGE", "true".to_owned()),
        ("QADF_MONGODB_URI", mongo.clone()),
        ("QADF_MONGODB_DATABASE", database.clone()),
        ("QADF_CONSUMER_GROUP_ID", format!("{topic}_mongo")),
    ]);
    let (mongo_rate, mongo_seconds) = rate(&drain(binary, &envs, &["--exit-when-idle", "5"])?, total)?;
    let (py_samples, py_seconds) = py(&["mongo", &mongo, &database, &format!("{database}_pymongo")])?;
    let pymongo_rate = py_samples / py_seconds;
    if py_samples as u64 != total {
        bail!("the history holds {py_samples} samples, {total} were sent");
    }
    let _ = py(&["mongo", &mongo, &database, &database]); // drops it (copying onto itself is refused)

    // Embedded history.
    let data = std::env::temp_dir().join(format!("qadf-bench-run-{id}"));
    let mut envs = common.to_vec();
    envs.extend([
        ("QADF_ENABLE_MONGODB_STORAGE", "false".to_owned()),
        ("QADF_CONSUMER_GROUP_ID", format!("{topic}_embedded")),
    ]);
    let dir = data.to_str().context("a temporary path")?;
    let embedded = drain(binary, &envs, &["--exit-when-idle", "5", "--data-dir", dir]);
    let disk = std::fs::metadata(data.join("history.redb")).map(|m| m.len()).unwrap_or(0);
    let _ = std::fs::remove_dir_all(&data);
    let (embedded_rate, embedded_seconds) = rate(&embedded?, total)?;
    let (fetched, fetch_seconds) = py(&["fetch", &broker, &topic, &messages.to_string()])?;
    let fetch_rate = fetched * PER_MESSAGE as f64 / fetch_seconds;

    Ok(vec![
        format!(
            "| `run`, {total} samples in messages of {PER_MESSAGE} (production checks on) | `run` | ceiling, same run | ratio |"
        ),
        "|---|---|---|---|".to_owned(),
        format!(
            "| → MongoDB (SecantusDB) buckets, {mongo_seconds:.0} s | {mongo_rate:.0} samples/s | pymongo inserting the \
             same bucket documents: {pymongo_rate:.0} samples/s | {:.0}% |",
            100.0 * mongo_rate / pymongo_rate
        ),
        format!(
            "| → embedded redb buckets, {embedded_seconds:.0} s ({:.2} B/sample on disk) | {embedded_rate:.0} samples/s | \
             confluent-kafka reading the topic: {fetch_rate:.0} samples/s | {:.0}% |",
            disk as f64 / total as f64,
            100.0 * embedded_rate / fetch_rate
        ),
    ])
}
