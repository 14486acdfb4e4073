//! `cargo xtask bench storage`: our stores against each server's own ceiling, measured in the same
//! run on the same server (pymongo `insert_many`; a raw pipelined Redis SET loop). Also the
//! embedded store. Size: `QADF_BENCH_DOCS` (default 20,000).
#![allow(missing_docs)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use qadf_core_types::{
    HistoryQuery, HistoryStore, Origin, Point3, Sample, StoredSample, StreamingConfig, Timestamp, Value,
};
use qadf_storage::{EmbeddedStore, MongoStore, RedisCache};

fn sample(i: usize) -> StoredSample {
    let mut s = Sample::new(
        Timestamp::from_nanos(1_795_000_000_000_000_000 + i as i64 * 10_000),
        Point3::new((i % 2000) as f64 * 0.01, (i / 2000) as f64 * 0.1, 0.03),
        [("temperature", 1900.0 + (i % 17) as f64), ("melt_pool_area", 0.04)].into_iter().collect(),
    );
    s.build_id = "plate-07".into();
    s.source_id = "ispm-0".into();
    StoredSample::from_origin(&Origin { topic: "am_qadf_monitoring".into(), partition: 0, offset: i as i64 }, 0, s)
}

const PYMONGO: &str = r#"
import sys, time, datetime
from pymongo import MongoClient
uri, db, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
coll = MongoClient(uri)[db]["stream_data"]
base = 1_795_000_000_000_000_000
docs = [{"_id": "am_qadf_monitoring/0/%d/0" % i,
         "timestamp": datetime.datetime.fromtimestamp((base + i * 10000) / 1e9, datetime.timezone.utc),
         "timestamp_ns": base + i * 10000, "build_id": "plate-07", "source_id": "ispm-0", "layer": 0,
         "position": [(i % 2000) * 0.01, (i // 2000) * 0.1, 0.03],
         "signals": {"temperature": 1900.0 + i % 17, "melt_pool_area": 0.04}} for i in range(n)]
t = time.perf_counter()
for k in range(0, n, 1000):
    coll.insert_many(docs[k:k + 1000], ordered=False)
print(time.perf_counter() - t)
MongoClient(uri).drop_database(db)
"#;

fn main() {
    let n: usize = std::env::var("QADF_BENCH_DOCS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let mongo = std::env::var("QADF_TEST_MONGODB").unwrap_or_else(|_| "127.0.0.1:17017".to_owned());
    let redis = std::env::var("QADF_TEST_REDIS").unwrap_or_else(|_| "127.0.0.1:16379".to_owned());
    let samples: Vec<StoredSample> = (0..n).map(sample).collect();
    let pid = std::process::id();

    // MongoDB: ours, then pymongo with the same documents into the same server.
    let config = StreamingConfig {
        mongodb_uri: format!("mongodb://{mongo}"),
        mongodb_database: format!("bench_ours_{pid}"),
        storage_batch_size: 1000,
        ..Default::default()
    };
    let store = MongoStore::connect(&config, Duration::from_secs(10)).unwrap();
    let t = Instant::now();
    let report = store.store_batch(&samples).unwrap();
    let ours = n as f64 / t.elapsed().as_secs_f64();
    assert_eq!(report.inserted as usize, n);
    store.drop_all().unwrap();
    let python = std::env::var("QADF_BENCH_PYMONGO").map(PathBuf::from).unwrap_or_else(|_| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/services/cache/secantus-venv/bin/python")
    });
    let out = std::process::Command::new(&python)
        .args(["-c", PYMONGO, &format!("mongodb://{mongo}"), &format!("bench_py_{pid}"), &n.to_string()])
        .output()
        .expect("pymongo from the SecantusDB venv: run `cargo xtask services up mongodb`");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let py_seconds: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let ceiling = n as f64 / py_seconds;

    // Redis: our pipelined put_many against a raw pipelined SET loop with the same bytes.
    let value = Value::Bytes(vec![7u8; 100]);
    let cache = RedisCache::connect(&format!("redis://{redis}/0"), Duration::from_secs(5)).unwrap();
    let entries: Vec<(String, Value)> = (0..n).map(|i| (format!("qadf:bench:{pid}:{i}"), value.clone())).collect();
    let t = Instant::now();
    for chunk in entries.chunks(1000) {
        cache.put_many(chunk, Duration::from_secs(60)).unwrap();
    }
    let redis_ours = n as f64 / t.elapsed().as_secs_f64();
    let raw_bytes = bincode::serde::encode_to_vec(&value, bincode::config::standard()).unwrap();
    let mut conn = redis::Client::open(format!("redis://{redis}/0")).unwrap().get_connection().unwrap();
    let t = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let mut pipe = redis::pipe();
        for i in chunk {
            pipe.cmd("SET").arg(format!("qadf:raw:{pid}:{i}")).arg(&raw_bytes).arg("PX").arg(60_000).ignore();
        }
        pipe.query::<()>(&mut conn).unwrap();
    }
    let redis_raw = n as f64 / t.elapsed().as_secs_f64();

    // Embedded: writes and a time-range query.
    let dir = std::env::temp_dir().join(format!("qadf-bench-{pid}"));
    std::fs::create_dir_all(&dir).unwrap();
    let embedded = EmbeddedStore::open(&dir.join("bench.redb")).unwrap();
    let many: Vec<StoredSample> = (0..n * 5).map(sample).collect();
    let t = Instant::now();
    for chunk in many.chunks(1000) {
        embedded.store_batch(chunk).unwrap();
    }
    let embedded_rate = many.len() as f64 / t.elapsed().as_secs_f64();
    let q = HistoryQuery {
        start: many[n].sample.timestamp,
        end: many[n * 3 / 2].sample.timestamp,
        build_id: None,
        source_id: None,
        layer: None,
        skip: 0,
        limit: usize::MAX,
    };
    let t = Instant::now();
    let found = embedded.query_stream_history(&q).unwrap().len();
    let query_ms = t.elapsed().as_secs_f64() * 1e3;
    std::fs::remove_dir_all(&dir).unwrap();

    println!("| storage, {n} samples (one run, same servers) | ours | ceiling | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| MongoDB (SecantusDB) `store_batch`, insert_many of 1000 unordered | {ours:.0} docs/s | pymongo {ceiling:.0} docs/s | {:.0}% |",
        100.0 * ours / ceiling
    );
    println!(
        "| Redis `put_many` (pipelined PSETEX, bincode values) | {redis_ours:.0} keys/s | raw pipelined SET {redis_raw:.0} keys/s | {:.0}% |",
        100.0 * redis_ours / redis_raw
    );
    println!(
        "| embedded redb `store_batch`, {} samples in batches of 1000 | {embedded_rate:.0} docs/s | — | — |",
        n * 5
    );
    println!("| embedded time-range query returning {found} of {} | {query_ms:.1} ms | — | — |", n * 5);
}
