//! `cargo xtask bench alerts`: produce → alert latency of the release `qadf-stream run`, measured
//! by an independent client (confluent-kafka, `xtask/bench/alert_latency.py`) beside the broker's
//! own produce → consume latency for the same messages in the same seconds.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};

use crate::services::{Layout, Service};

/// Message rates measured (single-sample JSON messages per second).
pub const RATES: [u32; 3] = [1_000, 5_000, 10_000];

/// `fetch.wait.max.ms` of the broker's own reader: Tansu 0.6.0 lists a partition from its start
/// within each fetch's wait, so a 1 ms reader stops receiving after ~1,300 records (see the script).
const REFERENCE_WAIT_MS: u32 = 20;

/// Measures each rate for `seconds` with a fresh `run`, and returns one report line per rate.
pub fn bench(root: &Path, binary: &Path, seconds: u32) -> Result<Vec<String>> {
    let layout = Layout::new(root);
    layout.up(Service::Kafka)?;
    let python = layout.python_clients();
    let script = root.join("xtask/bench/alert_latency.py");
    let broker = Service::Kafka.addr();
    let mut lines = vec![format!(
        "produce -> alert on the alerts topic vs the broker's own produce -> consume (librdkafka, \
         fetch.wait.max.ms = {REFERENCE_WAIT_MS}), {seconds} s per rate, one 3000 K spike on a fresh layer every 50 ms \
         (confluent-kafka {})",
        script.display()
    )];
    for rate in RATES {
        let id = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
        let (topic, alerts) = (format!("latency_{id}_t"), format!("latency_{id}_alerts"));
        let py = |args: &[&str]| -> Result<String> {
            let out = Command::new(&python).arg(&script).args(args).output().context("running python")?;
            if !out.status.success() {
                bail!("{script:?} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        };
        py(&["create", &broker, &topic, &alerts])?;
        let data = std::env::temp_dir().join(format!("qadf-latency-{id}"));
        let mut run = Command::new(binary)
            .args(["run", "--data-dir", data.to_str().unwrap_or("qadf-latency"), "--sample-rate-hz"])
            .arg(rate.to_string())
            .envs([
                ("QADF_KAFKA_BOOTSTRAP_SERVERS", broker.clone()),
                ("QADF_KAFKA_TOPIC", topic.clone()),
                ("QADF_ALERTS_TOPIC", alerts.clone()),
                ("QADF_DEAD_LETTER_TOPIC", format!("latency_{id}_dlq")),
                ("QADF_CONSUMER_GROUP_ID", format!("latency_{id}_g")),
                ("QADF_ENABLE_MONGODB_STORAGE", "false".to_owned()),
                ("QADF_ENABLE_REDIS_CACHE", "false".to_owned()),
                ("QADF_MAX_BATCH_WAIT_MS", "1".to_owned()),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting qadf-stream run")?;
        std::thread::sleep(Duration::from_secs(3)); // connected and fetching
        let measured = py(&[
            "measure",
            &broker,
            &topic,
            &alerts,
            &rate.to_string(),
            &seconds.to_string(),
            &REFERENCE_WAIT_MS.to_string(),
        ]);
        let _ = Command::new("kill").args(["-TERM", &run.id().to_string()]).status();
        let _ = run.wait();
        let _ = std::fs::remove_dir_all(&data);
        lines.push(format!("{rate} msg/s: {}", measured?));
    }
    Ok(lines)
}
