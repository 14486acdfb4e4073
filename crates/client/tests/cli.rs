//! The `qadf-stream` binary end to end against the real broker: simulate (with defects) → Kafka →
//! `run` → embedded history → `query`, alerts on the alerts topic, and a second `run` that finds
//! everything already committed.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use qadf_core_types::{Alert, StreamingConfig};
use qadf_kafka_io::{ConsumerConfig, KafkaConsumer, MemoryOffsetStore};

/// Every message on `topic`, read from the start by a fresh group, until `expected` arrived or 20 s passed.
fn read_topic(broker: &str, topic: &str, expected: usize) -> Vec<Vec<u8>> {
    let config = StreamingConfig {
        kafka_bootstrap_servers: vec![broker.to_owned()],
        kafka_topic: topic.to_owned(),
        consumer_group_id: format!("{topic}_reader"),
        ..Default::default()
    };
    let mut consumer =
        KafkaConsumer::new(ConsumerConfig::from_streaming(&config), Arc::new(MemoryOffsetStore::default())).unwrap();
    let (mut payloads, deadline) = (Vec::new(), Instant::now() + Duration::from_secs(20));
    while payloads.len() < expected && Instant::now() < deadline {
        payloads
            .extend(consumer.poll_messages(1000, Duration::from_millis(200)).unwrap().into_iter().map(|m| m.payload));
    }
    payloads
}

fn broker() -> String {
    let addr = std::env::var("QADF_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:19092".to_owned());
    assert!(
        std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), std::time::Duration::from_secs(2)).is_ok(),
        "no broker at {addr}: start it with `cargo xtask services up kafka`"
    );
    addr
}

fn qadf(args: &[&str], env: &[(&str, String)]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_qadf-stream"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "qadf-stream {args:?} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[test]
fn simulate_consume_store_and_query_through_the_cli() {
    let id = format!(
        "{}_{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    );
    let data = std::env::temp_dir().join(format!("qadf-cli-{id}"));
    let env = [
        ("QADF_KAFKA_BOOTSTRAP_SERVERS", broker()),
        ("QADF_KAFKA_TOPIC", format!("cli_{id}")),
        ("QADF_DEAD_LETTER_TOPIC", format!("cli_{id}_dlq")),
        ("QADF_ALERTS_TOPIC", format!("cli_{id}_alerts")),
        ("QADF_CONSUMER_GROUP_ID", format!("g_{id}")),
        ("QADF_ENABLE_MONGODB_STORAGE", "false".into()),
        ("QADF_ENABLE_REDIS_CACHE", "false".into()),
        ("QADF_MAX_BATCH_WAIT_MS", "50".into()),
        ("QADF_DASHBOARD_ADDR", "127.0.0.1:0".into()),
    ];
    let data_dir = data.to_str().unwrap();
    let sent = qadf(&["produce-sim", "--partitions", "2", "--layers", "3", "--part-size", "1.0", "--defects"], &env);
    let samples: u64 = sent.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(samples > 200 && samples <= 300, "300 samples less any in the dropout: {sent}");

    let run = qadf(&["run", "--exit-when-idle", "2", "--data-dir", data_dir], &env);
    assert!(run.contains("consuming 2 partitions"), "{run}");
    assert_eq!(qadf(&["query", "--count", "--data-dir", data_dir], &env).trim(), samples.to_string());
    // The injected defects raised alerts, and each one reached the alerts topic as JSON.
    let published: usize = run
        .lines()
        .find_map(|l| l.strip_prefix("stopped: ")?.split(", ").find_map(|p| p.strip_suffix(" alerts published")))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no alert count in:\n{run}"));
    assert!(published > 0, "{run}");
    let alerts: Vec<Alert> = read_topic(&env[0].1, &format!("cli_{id}_alerts"), published)
        .iter()
        .map(|p| serde_json::from_slice(p).unwrap())
        .collect();
    assert_eq!(alerts.len(), published);
    assert!(alerts.iter().all(|a| a.build_id == "sim-build"), "{alerts:?}");
    let rows = qadf(&["query", "--json", "--limit", "2", "--data-dir", data_dir], &env);
    assert_eq!(rows.lines().count(), 2);
    assert!(rows.contains("\"build_id\":\"sim-build\""), "{rows}");
    // Paging, filters and counts keep their meaning over buckets.
    let second = qadf(&["query", "--json", "--skip", "1", "--limit", "1", "--data-dir", data_dir], &env);
    assert_eq!(second.trim(), rows.lines().nth(1).unwrap(), "skip 1, limit 1 is the second of the first two");
    let count = |extra: &[&str]| -> u64 {
        let args: Vec<&str> =
            ["query", "--count", "--data-dir", data_dir].into_iter().chain(extra.iter().copied()).collect();
        qadf(&args, &env).trim().parse().unwrap()
    };
    let per_layer: Vec<u64> = (0..3).map(|l| count(&["--layer", &l.to_string()])).collect();
    assert_eq!(per_layer.iter().sum::<u64>(), samples, "{per_layer:?}");
    assert!(per_layer.iter().all(|&n| n > 0), "{per_layer:?}");
    assert_eq!(count(&["--source", "no-such-sensor"]), 0);
    assert_eq!(count(&["--build", "sim-build"]), samples);

    // Everything was committed after storage: a second run finds nothing new and stores nothing twice.
    let again = qadf(&["run", "--exit-when-idle", "1", "--data-dir", data_dir], &env);
    assert!(again.contains("stopped: 0 messages"), "{again}");
    assert_eq!(qadf(&["query", "--count", "--data-dir", data_dir], &env).trim(), samples.to_string());

    // With a retention of 1 s, `run` deletes the buckets that ended longer ago from the embedded store.
    let mut keep_one_second = env.to_vec();
    keep_one_second.push(("QADF_HISTORY_RETENTION_SECONDS", "1".into()));
    let pruned = qadf(&["run", "--exit-when-idle", "3", "--data-dir", data_dir], &keep_one_second);
    assert!(pruned.contains(&format!("retention: deleted {samples} samples")), "{pruned}");
    assert_eq!(qadf(&["query", "--count", "--data-dir", data_dir], &env).trim(), "0");
    std::fs::remove_dir_all(&data).unwrap();
}
