//! Black box: messages written the way the Python original's producer writes them — `json.dumps`
//! of flat dicts with a string `sensor_id`, naive `datetime.isoformat()` times, aware ones and
//! `time.time()` floats, no build, no layer — produced with confluent-kafka, consumed by the
//! release `qadf-stream run` with the default schema (plus one declared tag), and read back from
//! MongoDB with pymongo and pcodec: every message stored, values and times equal to the
//! nanosecond the producer wrote, nothing dead-lettered.

mod scenario;

use qadf_integration_tests::{Service, run_python};
use scenario::Scenario;

const PRODUCER: &str = r#"
import json, random, sys
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from confluent_kafka import Producer
broker, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
random.seed(7)
p = Producer({"bootstrap.servers": broker, "linger.ms": 5})
base = datetime(2026, 1, 30, 17, 31, 18, 343884)
expected = []
for i in range(n):
    t = base + timedelta(microseconds=10 * i)
    utc = t.replace(tzinfo=timezone.utc)
    ns = (int(utc.timestamp()) * 10**6 + utc.microsecond) * 1000
    d = {"sensor_id": "sensor_%d" % (i % 3), "temperature": round(random.uniform(900, 1100), 1),
         "power": round(random.uniform(190, 210), 1), "velocity": round(random.uniform(95, 110), 1),
         "x": round(random.uniform(0, 30), 3), "y": round(random.uniform(0, 30), 3), "z": 0.58}
    form = i % 4
    if form == 0:
        d["timestamp"] = t.isoformat()                    # datetime.utcnow().isoformat()
    elif form == 1:
        d["timestamp"] = utc.isoformat()                  # aware: +00:00
    elif form == 2:
        f = utc.timestamp()                               # time.time()
        d["timestamp"] = f
        ns = int(Decimal(repr(f)) * 10**9)                # exactly the digits json.dumps writes
    else:
        d["timestamp"] = str(t)                           # str(datetime): a space, not a T
        d["material"] = "Ti-6Al-4V"
    p.produce(topic, value=json.dumps(d).encode())
    if i % 1000 == 0:
        p.poll(0)
    expected.append({"source_id": d["sensor_id"], "timestamp": ns, "x": d["x"], "y": d["y"], "z": d["z"],
                     "signals": [["temperature", d["temperature"]], ["power", d["power"]], ["velocity", d["velocity"]]],
                     "tags": {"material": d["material"]} if "material" in d else {}})
assert p.flush(30) == 0
print(json.dumps(expected))
"#;

const READER: &str = r#"
import json, struct, sys
from pcodec import standalone
from pymongo import MongoClient
uri, db = sys.argv[1], sys.argv[2]
out = []
for d in MongoClient(uri)[db]["stream_data"].find():
    blob = bytes(d["columns"])
    at, columns = 5, []
    while at < len(blob):
        n, = struct.unpack_from("<I", blob, at)
        columns.append(standalone.simple_decompress(blob[at + 4:at + 4 + n]))
        at += 4 + n
    times, (xs, ys, zs), signals = columns[0], columns[1:4], columns[4:]
    for i in range(d["count"]):
        assert d["build_id"] == "unknown" and d["layer"] == 0
        out.append({"source_id": d["source_id"], "timestamp": int(times[i]),
                    "x": float(xs[i]), "y": float(ys[i]), "z": float(zs[i]),
                    "signals": [[name, float(v[i])] for name, v in zip(d["signals"], signals)],
                    "tags": d["tags"]})
print(json.dumps(out))
"#;

#[test]
fn messages_as_the_python_originals_producer_writes_them_are_all_stored_with_equal_values_and_times() {
    let n = 4_000;
    let mut s = Scenario::new("pyprod");
    s.extra.push(("QADF_MESSAGE_ENCODING".into(), "json".into()));
    s.extra.push(("QADF_SCHEMA_TAG_FIELDS".into(), "material".into()));
    qadf_kafka_io::KafkaProducer::new(&[Service::Kafka.addr()]).unwrap().create_topic(&s.topic, 1).unwrap();
    let sent = run_python(PRODUCER, &[&Service::Kafka.addr(), &s.topic, &n.to_string()]);
    let lines = s.run_to_end(&["--exit-when-idle", "3"]);
    let summary = lines.iter().find(|l| l.starts_with("stopped:")).expect("a summary line");
    assert!(summary.contains(&format!("{n} messages")) && summary.contains(" 0 dead letters"), "{summary}");
    let read = run_python(READER, &[&s.config().mongodb_uri, &s.database]);
    let by_time = |text: &str| {
        let mut v: Vec<serde_json::Value> = serde_json::from_str(text.trim()).unwrap();
        v.sort_by_key(|s| s["timestamp"].as_i64().unwrap());
        v
    };
    let (sent, read) = (by_time(&sent), by_time(&read));
    assert_eq!(read.len(), n, "every message stored once");
    for (i, (want, got)) in sent.iter().zip(&read).enumerate() {
        assert_eq!(got, want, "sample {i}: values, times to the nanosecond, source and tags");
    }
    s.store().drop_all().unwrap();
}
