//! The history is readable by others: an independent client in Python (pymongo and pcodec's own
//! package, installed by `cargo xtask services up kafka` with the other black-box clients) reads
//! the bucket documents `MongoStore` wrote, decodes the columns from their description in
//! docs/HISTORY.md, and reconstructs exactly the stored samples — times to the nanosecond, every
//! value's bits, build, source, layer — and the summaries beside them.

use std::time::Duration;

use qadf_core_types::{HistoryStore, Sample, StreamingConfig};
use qadf_integration_tests::{monitor_run, run_python};
use qadf_storage::MongoStore;

const READER: &str = r#"
import json, struct, sys
from pcodec import standalone
from pymongo import MongoClient
uri, db = sys.argv[1], sys.argv[2]
out = []
for d in MongoClient(uri)[db]["stream_data"].find().sort([("start_ns", 1), ("_id", 1)]):
    blob = bytes(d["columns"])
    assert blob[0] == 1, "format version"
    count, = struct.unpack_from("<I", blob, 1)
    assert count == d["count"]
    at, columns = 5, []
    while at < len(blob):
        n, = struct.unpack_from("<I", blob, at)
        columns.append(standalone.simple_decompress(blob[at + 4:at + 4 + n]))
        at += 4 + n
    times, rest = columns[0], columns[1:]
    positions, signals = (rest[:3], rest[3:]) if d["has_position"] else (None, rest)
    assert len(signals) == len(d["signals"])
    for i in range(count):
        out.append({
            "build_id": d["build_id"], "source_id": d["source_id"], "layer": d["layer"],
            "timestamp": int(times[i]),
            "position": [float(c[i]).hex() for c in positions] if positions else None,
            "signals": [[name, float(v[i]).hex()] for name, v in zip(d["signals"], signals)],
        })
    for s, name, v in zip(d["summaries"], d["signals"], signals):
        assert s["name"] == name and s["min"] == float(v.min()) and s["max"] == float(v.max())
print(json.dumps(out))
"#;

#[test]
fn python_reads_the_bucket_documents_back_into_exactly_the_stored_samples() {
    let addr = std::env::var("QADF_TEST_MONGODB").unwrap_or_else(|_| "127.0.0.1:17017".to_owned());
    let config = StreamingConfig {
        mongodb_uri: format!("mongodb://{addr}"),
        mongodb_database: format!("python_reads_{}", std::process::id()),
        ..Default::default()
    };
    let store = MongoStore::connect(&config, Duration::from_secs(5)).unwrap();
    let mut samples = monitor_run(2_500, 4);
    samples.extend(monitor_run(300, 5)); // another layer: another bucket
    let mut plain = monitor_run(3, 6);
    for s in &mut plain {
        s.position = None; // a bucket without positions
    }
    samples.extend(plain);
    store.store_samples(&samples).unwrap();
    let out = run_python(READER, &[&config.mongodb_uri, &config.mongodb_database]);
    store.drop_all().unwrap();
    let mut read: Vec<serde_json::Value> = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(read.len(), samples.len());
    // The runs overlap in time (each starts at the generator's first instant): compare in one order.
    let order = |v: &serde_json::Value| (v["timestamp"].as_i64(), v["layer"].as_u64());
    read.sort_by_key(order);
    samples.sort_by_key(|s| (s.timestamp, s.layer));
    for (i, (r, s)) in read.iter().zip(&samples).enumerate() {
        assert_eq!(r, &expected(s), "sample {i}");
    }
}

/// What the Python reader prints for `s` (floats as `float.hex()`: their exact bits).
fn expected(s: &Sample) -> serde_json::Value {
    serde_json::json!({
        "build_id": s.build_id, "source_id": s.source_id, "layer": s.layer,
        "timestamp": s.timestamp.as_nanos(),
        "position": s.position.map(|p| [python_hex(p.x), python_hex(p.y), python_hex(p.z)]),
        "signals": s.signals.iter().map(|(n, v)| (n.to_owned(), python_hex(v))).collect::<Vec<_>>(),
    })
}

/// Python's `float.hex()` of a finite, positive, normal `f64`: the exact bits as text.
fn python_hex(v: f64) -> String {
    assert!(v.is_normal() && v > 0.0, "{v}");
    let bits = v.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mantissa = format!("{:013x}", bits & ((1 << 52) - 1));
    format!("0x1.{mantissa}p{exponent:+}")
}
