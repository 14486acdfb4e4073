//! `cargo xtask bench storage`: our stores against each server's own ceiling, measured in the same
//! run on the same server. MongoDB: `store_buckets` against pymongo inserting the same bucket
//! documents (the bytes our store wrote, read back with the driver) into the same server; a
//! time-range query returning 10,000 samples. Redis: `put_many` against a raw pipelined SET loop.
//! Embedded: writes, bytes per sample on disk, the same query. Messages of 1,000 monitor samples
//! (`monitor_run`: two signals, position, time), stored 50 buckets per call as the writer groups
//! them. Size: `QADF_BENCH_SAMPLES` (default 1,000,000).
#![allow(missing_docs)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use mongodb::bson::{Document, doc};
use qadf_core_types::bucket::Bucket;
use qadf_core_types::{HistoryQuery, HistoryStore, Sample, StreamingConfig, Value};
use qadf_storage::{EmbeddedStore, MongoStore, RedisCache};

/// Samples per message, and so per bucket.
const PER_MESSAGE: usize = 1000;
/// Buckets per store call (the writer's group commit holds up to 50,000 samples).
const PER_CALL: usize = 50;

const PYMONGO: &str = r#"
import sys, time, bson
from pymongo import MongoClient
uri, db, path = sys.argv[1], sys.argv[2], sys.argv[3]
docs = list(bson.decode_file_iter(open(path, "rb")))
coll = MongoClient(uri)[db]["stream_data"]
t = time.perf_counter()
for k in range(0, len(docs), 50):
    coll.insert_many(docs[k:k + 50], ordered=False)
print(time.perf_counter() - t)
MongoClient(uri).drop_database(db)
"#;

fn buckets(samples: &[Sample]) -> Vec<Bucket> {
    samples
        .chunks(PER_MESSAGE)
        .flat_map(|m| Bucket::runs(m).into_iter().map(|r| Bucket::encode(&m[r]).unwrap()))
        .collect()
}

/// The query of the bench: 10,000 samples from the middle of `samples`.
fn middle(samples: &[Sample]) -> HistoryQuery {
    let at = samples.len() / 2 - 5_000;
    HistoryQuery { start: samples[at].timestamp, end: samples[at + 10_000].timestamp, ..HistoryQuery::all() }
}

/// Milliseconds of the fastest of five runs of `q`, and what it returned.
fn time_query(store: &dyn HistoryStore, q: &HistoryQuery) -> (f64, usize) {
    let mut best = f64::MAX;
    let mut found = 0;
    for _ in 0..5 {
        let t = Instant::now();
        found = store.query_stream_history(q).unwrap().len();
        best = best.min(t.elapsed().as_secs_f64() * 1e3);
    }
    (best, found)
}

fn main() {
    let n: usize = std::env::var("QADF_BENCH_SAMPLES").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let mongo = std::env::var("QADF_TEST_MONGODB").unwrap_or_else(|_| "127.0.0.1:17017".to_owned());
    let redis = std::env::var("QADF_TEST_REDIS").unwrap_or_else(|_| "127.0.0.1:16379".to_owned());
    let layers = n.div_ceil(100_000);
    // One layer a second (100,000 samples at 100 kHz), one after the other.
    let samples: Vec<Sample> = (0..layers)
        .flat_map(|l| {
            qadf_integration_tests::monitor_run(100_000, l as u32).into_iter().map(move |mut s| {
                s.timestamp = qadf_core_types::Timestamp::from_nanos(s.timestamp.as_nanos() + l as i64 * 1_000_000_000);
                s
            })
        })
        .take(n)
        .collect();
    let all = buckets(&samples);
    let pid = std::process::id();

    // MongoDB: ours, then pymongo inserting the very documents ours wrote.
    let config = StreamingConfig {
        mongodb_uri: format!("mongodb://{mongo}"),
        mongodb_database: format!("bench_ours_{pid}"),
        ..Default::default()
    };
    let store = MongoStore::connect(&config, Duration::from_secs(10)).unwrap();
    store.create_time_series_index(None).unwrap();
    let t = Instant::now();
    let mut inserted = 0;
    for call in all.chunks(PER_CALL) {
        inserted += store.store_buckets(call).unwrap().inserted;
    }
    let ours = n as f64 / t.elapsed().as_secs_f64();
    assert_eq!(inserted as usize, n);
    let (mongo_query_ms, mongo_found) = time_query(&store, &middle(&samples));
    assert_eq!(mongo_found, 10_000);
    let raw = mongodb::sync::Client::with_uri_str(format!("mongodb://{mongo}")).unwrap();
    let written: Vec<Document> = raw
        .database(&config.mongodb_database)
        .collection::<Document>("stream_data")
        .find(doc! {})
        .run()
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut file_bytes = Vec::new();
    for d in &written {
        d.to_writer(&mut file_bytes).unwrap();
    }
    let mongo_bytes = file_bytes.len() as f64 / n as f64;
    store.drop_all().unwrap();
    let file = std::env::temp_dir().join(format!("qadf-bench-buckets-{pid}.bson"));
    std::fs::write(&file, &file_bytes).unwrap();
    let python = std::env::var("QADF_BENCH_PYMONGO").map(PathBuf::from).unwrap_or_else(|_| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/services/cache/secantus-venv/bin/python")
    });
    let out = std::process::Command::new(&python)
        .args(["-c", PYMONGO, &format!("mongodb://{mongo}"), &format!("bench_py_{pid}"), file.to_str().unwrap()])
        .output()
        .expect("pymongo from the SecantusDB venv: run `cargo xtask services up mongodb`");
    std::fs::remove_file(&file).unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let py_seconds: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let ceiling = n as f64 / py_seconds;

    // Redis: our pipelined put_many against a raw pipelined SET loop with the same bytes.
    let keys = 20_000;
    let value = Value::Bytes(vec![7u8; 100]);
    let cache = RedisCache::connect(&format!("redis://{redis}/0"), Duration::from_secs(5)).unwrap();
    let entries: Vec<(String, Value)> = (0..keys).map(|i| (format!("qadf:bench:{pid}:{i}"), value.clone())).collect();
    let t = Instant::now();
    for chunk in entries.chunks(1000) {
        cache.put_many(chunk, Duration::from_secs(60)).unwrap();
    }
    let redis_ours = keys as f64 / t.elapsed().as_secs_f64();
    let raw_bytes = bincode::serde::encode_to_vec(&value, bincode::config::standard()).unwrap();
    let mut conn = redis::Client::open(format!("redis://{redis}/0")).unwrap().get_connection().unwrap();
    let t = Instant::now();
    for chunk in (0..keys).collect::<Vec<_>>().chunks(1000) {
        let mut pipe = redis::pipe();
        for i in chunk {
            pipe.cmd("SET").arg(format!("qadf:raw:{pid}:{i}")).arg(&raw_bytes).arg("PX").arg(60_000).ignore();
        }
        pipe.query::<()>(&mut conn).unwrap();
    }
    let redis_raw = keys as f64 / t.elapsed().as_secs_f64();

    // Embedded: writes, bytes on disk, the same query.
    let dir = std::env::temp_dir().join(format!("qadf-bench-{pid}"));
    std::fs::create_dir_all(&dir).unwrap();
    let embedded = EmbeddedStore::open(&dir.join("bench.redb")).unwrap();
    let t = Instant::now();
    for call in all.chunks(PER_CALL) {
        embedded.store_buckets(call).unwrap();
    }
    let embedded_rate = n as f64 / t.elapsed().as_secs_f64();
    let disk_bytes = std::fs::metadata(dir.join("bench.redb")).unwrap().len() as f64 / n as f64;
    let (query_ms, found) = time_query(&embedded, &middle(&samples));
    assert_eq!(found, 10_000);
    drop(embedded);
    std::fs::remove_dir_all(&dir).unwrap();

    println!(
        "| storage, {n} monitor samples in {} buckets (one run, same servers) | ours | ceiling | ratio |",
        all.len()
    );
    println!("|---|---|---|---|");
    println!(
        "| MongoDB (SecantusDB) `store_buckets`, {PER_CALL} bucket documents per call | {ours:.0} samples/s | pymongo \
         inserting the same documents {ceiling:.0} samples/s | {:.0}% |",
        100.0 * ours / ceiling
    );
    println!("| MongoDB bucket documents (BSON, with summaries) | {mongo_bytes:.2} B/sample | — | — |");
    println!("| MongoDB time-range query returning {mongo_found} of {n} | {mongo_query_ms:.1} ms | — | — |");
    println!(
        "| Redis `put_many` (pipelined PSETEX, bincode values), {keys} keys | {redis_ours:.0} keys/s | raw pipelined \
         SET {redis_raw:.0} keys/s | {:.0}% |",
        100.0 * redis_ours / redis_raw
    );
    println!("| embedded redb `store_buckets`, {PER_CALL} buckets per call | {embedded_rate:.0} samples/s | — | — |");
    println!("| embedded redb file | {disk_bytes:.2} B/sample | — | — |");
    println!("| embedded time-range query returning {found} of {n} | {query_ms:.1} ms | — | — |");
}
