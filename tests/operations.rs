//! Operating `run` against the real services: `/metrics` scraped while it consumes and parsed by
//! an independent parser (Python's `prometheus_client`), checked against what was produced and
//! stored; `/health/ready` and `qadf-stream status`; the Redis live view read back with
//! `redis-cli` and Python's `json.loads`; no configured password in any output.
//! (`/health/ready` against a stopped MongoDB is in `outages.rs`, which stops services.)

mod scenario;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use qadf_core_types::{OutgoingMessage, Sample};
use qadf_integration_tests::{Service, run_python, unique_name};
use serde_json::Value;

/// `GET path` of a running `run`: status and body.
fn get(addr: &str, path: &str) -> (u16, String) {
    qadf_client::ops::status::get(addr, path, Duration::from_secs(5)).unwrap()
}

/// `/metrics` parsed by `prometheus_client`: sample name with its labels (sorted) → value.
fn scrape(addr: &str) -> BTreeMap<String, f64> {
    let (status, text) = get(addr, "/metrics");
    assert_eq!(status, 200);
    let file = std::env::temp_dir().join(unique_name("metrics"));
    std::fs::write(&file, &text).unwrap();
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for family in text_string_to_metric_families(open(sys.argv[1]).read()):
    for s in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
print(json.dumps(out))
"#;
    let parsed = run_python(script, &[file.to_str().unwrap()]);
    let _ = std::fs::remove_file(&file);
    serde_json::from_str(&parsed).unwrap()
}

fn metric(m: &BTreeMap<String, f64>, name: &str) -> f64 {
    *m.get(name).unwrap_or_else(|| panic!("{name} missing from /metrics: {m:#?}"))
}

/// `redis-cli GET` of each key, each value read by Python's `json.loads` (`null` when absent).
fn redis_json(keys: &[String]) -> Value {
    let (host, port) = Service::Redis.addr().split_once(':').map(|(h, p)| (h.to_owned(), p.to_owned())).unwrap();
    let script = r#"
import json, subprocess, sys
host, port, keys = sys.argv[1], sys.argv[2], sys.argv[3:]
out = {}
for key in keys:
    raw = subprocess.run(["redis-cli", "-h", host, "-p", port, "--raw", "GET", key], check=True, capture_output=True).stdout
    out[key] = json.loads(raw) if raw.strip() else None
print(json.dumps(out))
"#;
    let mut args = vec![host.as_str(), port.as_str()];
    args.extend(keys.iter().map(String::as_str));
    serde_json::from_str(&run_python(script, &args)).unwrap()
}

fn redis_ttl(key: &str) -> i64 {
    let (host, port) = Service::Redis.addr().split_once(':').map(|(h, p)| (h.to_owned(), p.to_owned())).unwrap();
    let out = Command::new("redis-cli").args(["-h", &host, "-p", &port, "TTL", key]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn metrics_health_and_the_redis_live_view_match_what_was_produced_and_stored() {
    let mut s = scenario::Scenario::new("ops");
    let prefix = unique_name("qadfops");
    let redis = Service::Redis.addr();
    let (host, port) = redis.split_once(':').unwrap();
    for (k, v) in [
        ("QADF_ENABLE_REDIS_CACHE", "true"),
        ("QADF_REDIS_HOST", host),
        ("QADF_REDIS_PORT", port),
        ("QADF_REDIS_KEY_PREFIX", prefix.as_str()),
        ("QADF_REDIS_TTL_SECONDS", "600"),
    ] {
        s.extra.push((k.to_owned(), v.to_owned()));
    }
    // Two printers on one topic (a message at the seam holds both), and three undecodable messages.
    let mut samples = scenario::build(2, 2.0, "printer-a");
    samples.extend(scenario::build(2, 3.0, "printer-b"));
    let per_partition = scenario::produce(&s.topic, 2, &samples);
    let messages: i64 = per_partition.values().sum();
    let garbage: Vec<OutgoingMessage> = (0..3)
        .map(|i| OutgoingMessage {
            topic: s.topic.clone(),
            partition: Some(0),
            key: None,
            payload: format!("not a batch {i}").into_bytes(),
            headers: Vec::new(),
        })
        .collect();
    qadf_core_types::MessageSink::send(&qadf_kafka_io::KafkaProducer::new(&[Service::Kafka.addr()]).unwrap(), garbage)
        .map_err(|e| e.error)
        .unwrap();
    let n = samples.len() as f64;
    let run = s.spawn_run(&[]);
    let addr = run.http_addr();
    let deadline = Instant::now() + Duration::from_secs(60);
    let m = loop {
        let m = scrape(&addr);
        if m.get("qadf_samples_stored_total") == Some(&n) || Instant::now() > deadline {
            break m;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let store = s.store();
    assert_eq!(store.count().unwrap() as f64, n, "MongoDB holds every sample");
    assert_eq!(metric(&m, "qadf_samples_stored_total"), n);
    assert_eq!(metric(&m, "qadf_samples_consumed_total"), n);
    assert_eq!(metric(&m, "qadf_samples_processed_total"), n);
    assert_eq!(metric(&m, "qadf_messages_consumed_total"), (messages + 3) as f64);
    assert_eq!(metric(&m, "qadf_dead_letters_total{reason=undecodable}"), 3.0);
    assert_eq!(metric(&m, "qadf_dead_letters_total{reason=store_refused}"), 0.0);
    let batches = metric(&m, "qadf_batches_processed_total");
    assert!(batches > 0.0);
    assert_eq!(metric(&m, "qadf_batch_duration_seconds_count"), batches, "one latency per batch");
    assert_eq!(metric(&m, "qadf_batch_duration_seconds_bucket{le=+Inf}"), batches);
    assert!(metric(&m, "qadf_store_duration_seconds_count") > 0.0);
    for p in 0..2 {
        assert_eq!(metric(&m, &format!("qadf_consumer_lag_messages{{partition={p}}}")), 0.0);
    }
    assert_eq!((metric(&m, "qadf_broker_up"), metric(&m, "qadf_store_up")), (1.0, 1.0));
    assert_eq!(metric(&m, "qadf_ready"), 1.0);
    assert_eq!(metric(&m, "qadf_builds"), 2.0);

    let (status, body) = get(&addr, "/health/ready");
    let ready: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((status, &ready["ready"]), (200, &Value::Bool(true)), "{body}");
    assert_eq!(get(&addr, "/health/live").0, 200);
    let out = Command::new(scenario::binary()).args(["status", "--addr", &addr]).output().unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && printed.contains(&format!("{addr}: ready")), "{printed}");

    // The live view: one key set per build, plain JSON, read back by redis-cli and json.loads.
    let count = |b: &str| samples.iter().filter(|s: &&Sample| s.build_id == b).count() as u64;
    let keys: Vec<String> = ["printer-a", "printer-b"]
        .iter()
        .flat_map(|b| {
            [format!("{prefix}:{b}:latest"), format!("{prefix}:{b}:alerts"), format!("{prefix}:{b}:report:0")]
        })
        .chain([format!("{prefix}:builds")])
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let view = loop {
        let view = redis_json(&keys);
        let done = ["printer-a", "printer-b"].iter().all(|b| {
            view[format!("{prefix}:{b}:latest")]["samples"].as_u64() == Some(count(b))
                && !view[format!("{prefix}:{b}:report:0")].is_null()
        });
        if done || Instant::now() > deadline {
            break view;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(view[format!("{prefix}:builds")], serde_json::json!(["printer-a", "printer-b"]), "{view:#}");
    let cache: std::sync::Arc<dyn qadf_core_types::Cache> = std::sync::Arc::new(
        qadf_storage::RedisCache::connect(&format!("redis://{redis}/0"), Duration::from_secs(2)).unwrap(),
    );
    let live = qadf_storage::LiveView::new(cache, prefix.as_str(), Duration::from_secs(600));
    let mut alerts_in_view = 0;
    for b in ["printer-a", "printer-b"] {
        let latest = &view[format!("{prefix}:{b}:latest")];
        assert_eq!(latest["build"], b, "{latest:#}");
        assert_eq!(latest["samples"].as_u64(), Some(count(b)), "{b}: {latest:#}");
        assert_eq!(latest["layer"].as_u64(), Some(1), "the newest sample is of the last layer");
        assert!(latest["newest_sample"].as_str().is_some_and(|t| t.ends_with('Z')), "{latest:#}");
        assert_eq!(latest["statistics"]["samples_stored"].as_f64(), Some(n), "the stream's statistics");
        let rust: Value = serde_json::to_value(live.alerts(b).unwrap()).unwrap();
        assert_eq!(view[format!("{prefix}:{b}:alerts")], rust, "Python and Rust read the same alerts");
        alerts_in_view += latest["alerts"].as_u64().unwrap();
        let report: Value = serde_json::to_value(live.layer_report(b, 0).unwrap().expect("layer 0's report")).unwrap();
        assert_eq!(view[format!("{prefix}:{b}:report:0")], report, "the layer report, read by both");
        // Partitions interleave, so some of layer 0's samples may come after it closed (late).
        assert_eq!((report["build_id"].as_str(), report["layer"].as_u64()), (Some(b), Some(0)), "{report:#}");
        assert!(report["samples"].as_u64() > Some(0), "{report:#}");
        let ttl = redis_ttl(&format!("{prefix}:{b}:latest"));
        assert!((1..=600).contains(&ttl), "TTL from redis_ttl_seconds: {ttl}");
    }
    let alerts_metric: f64 = m.iter().filter(|(k, _)| k.starts_with("qadf_alerts_total{")).map(|(_, v)| v).sum();
    assert_eq!(alerts_metric, alerts_in_view as f64, "alerts by rule add up to the builds' alerts");
    run.signal("-TERM");
    let mut run = run;
    assert!(run.child.wait().unwrap().success(), "{}", run.lines().join("\n"));
}

#[test]
fn no_password_of_a_configured_uri_or_secret_appears_in_any_output() {
    const MONGO_PW: &str = "Mongo-Sekr1t-9";
    const REDIS_PW: &str = "Redis-Sekr1t-7";
    let mongo = Service::Mongodb.addr();
    let uri = format!("mongodb://qadf:{MONGO_PW}@{mongo}/?authSource=admin");
    let mut outputs = Vec::new();
    // A mistyped variable holding a URI: refused, named, its password not echoed.
    let mut typo = scenario::Scenario::new("secret_typo");
    typo.extra.push(("QADF_MONGODB_URL".to_owned(), uri.clone()));
    let mut child = typo.spawn_run(&["--exit-when-idle", "1"]);
    let status = child.child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let lines = child.lines().join("\n");
    assert!(!status.success() && lines.contains("QADF_MONGODB_URL"), "{status}: {lines}");
    outputs.push(lines);
    // The URI with a password the server refuses (run stops at start), then a Redis password the
    // server does not expect (run goes on, its live-view writes fail), in both log formats:
    // whatever fails, nothing prints either secret (nor do /metrics and /health/ready).
    let plain = format!("mongodb://{mongo}");
    for (format, uri) in [("text", uri.as_str()), ("json", plain.as_str())] {
        let mut s = scenario::Scenario::new("secret");
        let redis = Service::Redis.addr();
        let (host, port) = redis.split_once(':').unwrap();
        for (k, v) in [
            ("QADF_MONGODB_URI", uri),
            ("QADF_ENABLE_REDIS_CACHE", "true"),
            ("QADF_REDIS_HOST", host),
            ("QADF_REDIS_PORT", port),
            ("QADF_REDIS_PASSWORD", REDIS_PW),
        ] {
            s.extra.push((k.to_owned(), v.to_owned()));
        }
        scenario::produce(&s.topic, 1, &scenario::build(1, 1.0, "secret-build"));
        let mut run = s.spawn_run(&["--exit-when-idle", "3", "--log-format", format]);
        let deadline = Instant::now() + Duration::from_secs(60);
        while run.child.try_wait().unwrap().is_none() {
            if let Some(line) = run.lines().iter().find(|l| l.contains("serving the live page")) {
                let addr = line.rsplit(' ').next().unwrap().trim_start_matches("http://").trim_end_matches('/');
                for path in ["/health/ready", "/metrics"] {
                    if let Ok((_, body)) = qadf_client::ops::status::get(addr, path, Duration::from_secs(2)) {
                        outputs.push(body);
                    }
                }
            }
            assert!(Instant::now() < deadline, "run did not end: {}", run.lines().join("\n"));
            std::thread::sleep(Duration::from_millis(300));
        }
        std::thread::sleep(Duration::from_millis(200));
        let lines = run.lines().join("\n");
        eprintln!("--log-format {format}:\n{lines}");
        if format == "json" {
            for line in run.lines().iter().filter(|l| l.starts_with('{')) {
                let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
                assert!(v["level"].is_string() && v["message"].is_string(), "{line}");
            }
        }
        outputs.push(lines);
    }
    for out in &outputs {
        assert!(!out.contains(MONGO_PW) && !out.contains(REDIS_PW), "a secret was printed:\n{out}");
    }
    assert!(outputs.iter().any(|o| o.contains("qadf:***@")), "the URI is shown masked somewhere: {outputs:#?}");
}
