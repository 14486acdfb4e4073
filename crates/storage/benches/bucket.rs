//! Bytes and CPU per sample of the bucket column encoding (`core-types/src/bucket.rs`), beside what the
//! history stores today, measured in the same run: one bincode record per sample (the embedded
//! store) and one BSON document per sample as `MongoStore` writes it (its field layout, without
//! the `_id` and indexes). `cargo bench -p qadf-storage --bench bucket` (`QADF_BENCH_SAMPLES`, default 1,000,000).

use std::time::Instant;

use qadf_core_types::bucket::{Bucket, MAX_BUCKET_SAMPLES};

fn main() {
    let n: usize = std::env::var("QADF_BENCH_SAMPLES").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let samples: Vec<_> = (0..n.div_ceil(MAX_BUCKET_SAMPLES))
        .flat_map(|layer| qadf_integration_tests::monitor_run(MAX_BUCKET_SAMPLES, layer as u32))
        .take(n)
        .collect();
    let per = |bytes: usize| bytes as f64 / n as f64;
    let ns = |t: Instant| t.elapsed().as_nanos() as f64 / n as f64;

    let t = Instant::now();
    let buckets: Vec<Bucket> =
        Bucket::runs(&samples).into_iter().map(|r| Bucket::encode(&samples[r]).unwrap()).collect();
    let encode_ns = ns(t);
    let bucket_bytes: usize = buckets.iter().map(|b| b.columns.len()).sum();
    let t = Instant::now();
    let decoded: usize = buckets.iter().map(|b| b.decode().unwrap().len()).sum();
    let decode_ns = ns(t);
    assert_eq!(decoded, n);

    // The same buckets as BSON arrays (the other candidate): one array per column.
    let t = Instant::now();
    let array_bytes: usize = Bucket::runs(&samples)
        .into_iter()
        .map(|r| {
            let run = &samples[r];
            let mut doc = mongodb::bson::Document::new();
            doc.insert("t", run.iter().map(|s| s.timestamp.as_nanos()).collect::<Vec<i64>>());
            for (axis, pick) in [("x", 0), ("y", 1), ("z", 2)] {
                let column: Vec<f64> = run.iter().map(|s| s.position.map_or(0.0, |p| p[pick])).collect();
                doc.insert(axis, column);
            }
            for (name, _) in run[0].signals.iter() {
                doc.insert(name, run.iter().map(|s| s.signals.get(name).unwrap_or(0.0)).collect::<Vec<f64>>());
            }
            mongodb::bson::to_vec(&doc).unwrap().len()
        })
        .sum();
    let array_ns = ns(t);

    let t = Instant::now();
    let bincode_bytes: usize =
        samples.iter().map(|s| bincode::serde::encode_to_vec(s, bincode::config::standard()).unwrap().len()).sum();
    let bincode_ns = ns(t);
    let t = Instant::now();
    let bson_bytes: usize =
        samples.iter().map(|s| mongodb::bson::to_vec(&mongodb::bson::to_document(s).unwrap()).unwrap().len()).sum();
    let bson_ns = ns(t);

    println!(
        "| {n} monitor samples (2 signals, position, time; {} buckets) | bytes/sample | encode ns/sample |",
        buckets.len()
    );
    println!("|---|---|---|");
    println!(
        "| bucket columns (pcodec), decode {decode_ns:.0} ns/sample | {:.2} | {encode_ns:.0} |",
        per(bucket_bytes)
    );
    println!("| the same buckets as BSON arrays, one per column | {:.2} | {array_ns:.0} |", per(array_bytes));
    println!("| bincode record per sample (embedded store today) | {:.2} | {bincode_ns:.0} |", per(bincode_bytes));
    println!("| BSON document per sample (MongoDB today, fields only) | {:.2} | {bson_ns:.0} |", per(bson_bytes));
}
