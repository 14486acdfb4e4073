//! Black box: a photodiode monitor's messages (millivolts, naive ISO times, one JSON object per
//! sample) produced with confluent-kafka; the release `qadf-stream run` judges them by a rules
//! file of photodiode limits (not the demo's melt-pool rules); its layer reports are read back
//! from MongoDB with pymongo: OK, warning and critical layers where the producer put them, with
//! the samples, statistics, alerts by rule and dropout time each layer really had; and the same
//! reports are read from their Kafka topic with confluent-kafka and from the live view in Redis.

mod scenario;

use qadf_integration_tests::{Service, run_python};
use scenario::Scenario;

/// Three layers of 2,000 samples at 10 kHz around 500 mV (± 20): layer 1 has five readings of
/// 650 mV (outside the 400-600 warning band), layer 2 three of 750 mV (outside the 300-700
/// critical band) and a 2 ms dropout (20 samples missing).
const PRODUCER: &str = r#"
import json, random, sys
from datetime import datetime, timedelta
from confluent_kafka import Producer
broker, topic = sys.argv[1], sys.argv[2]
random.seed(11)
p = Producer({"bootstrap.servers": broker, "linger.ms": 5})
base = datetime(2026, 3, 2, 9, 0, 0)
sent = {0: [], 1: [], 2: []}
for layer in range(3):
    for i in range(2000):
        if layer == 2 and 1000 <= i < 1020:
            continue
        mv = round(random.uniform(480, 520), 2)
        if layer == 1 and i in (100, 300, 500, 700, 900):
            mv = 650.0
        if layer == 2 and i in (200, 400, 600):
            mv = 750.0
        t = base + timedelta(seconds=layer, microseconds=100 * i)
        d = {"build_id": "job-7", "sensor_id": "pd-1", "layer": layer, "photodiode": mv,
             "x": round(1 + (i % 100) * 0.05, 3), "y": round(1 + (i // 100) * 0.2, 3), "z": 0.03 * (layer + 1),
             "timestamp": t.isoformat()}
        p.produce(topic, value=json.dumps(d).encode())
        sent[layer].append(mv)
    p.poll(0)
assert p.flush(30) == 0
print(json.dumps({str(k): {"n": len(v), "min": min(v), "max": max(v), "mean": sum(v) / len(v)} for k, v in sent.items()}))
"#;

const READER: &str = r#"
import json, sys
from pymongo import MongoClient
uri, db, collection = sys.argv[1], sys.argv[2], sys.argv[3]
out = []
for d in MongoClient(uri)[db][collection + "_layer_reports"].find({"build_id": "job-7"}).sort("layer", 1):
    d.pop("_id")
    out.append(d)
print(json.dumps(out))
"#;

/// The layer reports published on their topic, as (key, layer, verdict).
const TOPIC_READER: &str = r#"
import json, sys, time
from confluent_kafka import Consumer
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": "reports-reader", "auto.offset.reset": "earliest",
              "session.timeout.ms": 6000, "enable.auto.commit": False})
c.subscribe([sys.argv[2]])
seen, deadline = [], time.time() + 60
while len(seen) < 3 and time.time() < deadline:
    m = c.poll(0.5)
    if m is not None and m.error() is None:
        r = json.loads(m.value())
        seen.append([m.key().decode(), r["layer"], r["verdict"]])
c.close()
print(json.dumps(sorted(seen, key=lambda s: s[1])))
"#;

const RULES: &str = r#"
sample_rate_hz = 10000.0

[[rule]]
name = "photodiode_level"
kind = "range"
signal = "photodiode"
unit = "mV"
warning = [400.0, 600.0]
critical = [300.0, 700.0]

[[rule]]
name = "photodiode_dropout"
kind = "gap"
max_gap_periods = 3.0
"#;

#[test]
fn a_photodiode_rules_file_judges_each_layer_and_the_reports_are_read_back_with_pymongo() {
    let mut s = Scenario::new("rulesrun");
    s.extra.push(("QADF_MESSAGE_ENCODING".into(), "json".into()));
    let reports_topic = format!("{}_reports", s.topic);
    s.extra.push(("QADF_LAYER_REPORTS_TOPIC".into(), reports_topic.clone()));
    let redis = Service::Redis.addr();
    let (redis_host, redis_port) = redis.rsplit_once(':').unwrap();
    let prefix = format!("qadf_{}", s.topic);
    for (k, v) in [
        ("QADF_ENABLE_REDIS_CACHE", "true"),
        ("QADF_REDIS_HOST", redis_host),
        ("QADF_REDIS_PORT", redis_port),
        ("QADF_REDIS_KEY_PREFIX", prefix.as_str()),
    ] {
        s.extra.push((k.into(), v.into()));
    }
    let dir = std::env::temp_dir().join(format!("qadf-rules-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rules = dir.join("photodiode.toml");
    std::fs::write(&rules, RULES).unwrap();
    qadf_kafka_io::KafkaProducer::new(&[Service::Kafka.addr()]).unwrap().create_topic(&s.topic, 1).unwrap();
    let sent: serde_json::Value =
        serde_json::from_str(run_python(PRODUCER, &[&Service::Kafka.addr(), &s.topic]).trim()).unwrap();

    let lines = s.run_to_end(&["--rules", rules.to_str().unwrap(), "--exit-when-idle", "3"]);
    assert!(lines.iter().any(|l| l == &format!("rules: 2 from {}", rules.display())), "{lines:#?}");
    let summary = lines.iter().find(|l| l.starts_with("stopped:")).expect("a summary line");
    assert!(summary.contains("5980 messages") && summary.contains(" 0 dead letters"), "{summary}");
    assert_eq!(lines.iter().filter(|l| l.starts_with("layer report: build job-7")).count(), 3, "{lines:#?}");

    let config = s.config();
    let read = run_python(READER, &[&config.mongodb_uri, &s.database, &config.mongodb_collection]);
    let reports: Vec<serde_json::Value> = serde_json::from_str(read.trim()).unwrap();
    let verdicts: Vec<(i64, &str)> =
        reports.iter().map(|r| (r["layer"].as_i64().unwrap(), r["verdict"].as_str().unwrap())).collect();
    assert_eq!(verdicts, [(0, "ok"), (1, "warning"), (2, "critical")], "{reports:#?}");
    for r in &reports {
        let layer = r["layer"].to_string();
        let (want, got) = (&sent[&layer], &r["signals"]["photodiode"]);
        assert_eq!(r["samples"], want["n"], "layer {layer}: every sample counted");
        assert_eq!(got["count"], want["n"]);
        assert_eq!((&got["min"], &got["max"]), (&want["min"], &want["max"]), "layer {layer}");
        let mean = (got["mean"].as_f64().unwrap() - want["mean"].as_f64().unwrap()).abs();
        assert!(mean < 1e-9, "layer {layer}: mean off by {mean}");
        assert!(r["voxels"].as_i64().unwrap() > 0, "{r}");
    }
    assert_eq!(reports[0]["alerts_by_rule"], serde_json::json!({}));
    assert!(reports[1]["alerts_by_rule"]["photodiode_level"].as_i64().unwrap() >= 1, "{}", reports[1]);
    assert_eq!(reports[1]["voxels_out_of_limits"], 5, "five 650 mV readings in five voxels");
    assert!(reports[2]["alerts_by_rule"]["photodiode_dropout"].as_i64().unwrap() == 1, "{}", reports[2]);
    let dropout = reports[2]["dropout_ms"].as_f64().unwrap();
    assert!((dropout - 2.1).abs() < 1e-6, "the gap is 2.1 ms (21 periods): {dropout}");
    let published = run_python(TOPIC_READER, &[&Service::Kafka.addr(), &reports_topic]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(published.trim()).unwrap(),
        serde_json::json!([["job-7", 0, "ok"], ["job-7", 1, "warning"], ["job-7", 2, "critical"]]),
        "each report published once on its topic, keyed by build"
    );
    let cache =
        qadf_storage::RedisCache::connect(&format!("redis://{redis}/0"), std::time::Duration::from_secs(2)).unwrap();
    let view = qadf_storage::LiveView::new(std::sync::Arc::new(cache), prefix, std::time::Duration::from_secs(60));
    let cached = view.layer_report("job-7", 2).unwrap().expect("layer 2's report in the live view");
    assert_eq!((cached.verdict, cached.samples), (qadf_core_types::Verdict::Critical, 1980));
    s.store().drop_all().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
