//! JSON decode through the message schema, one thread, beside its ceiling measured in the same
//! run: serde_json parsing the same bytes into nothing (`IgnoredAny`), which no decoder that
//! reads every byte can beat. `cargo bench -p qadf-core-types --bench schema`
//! (`QADF_BENCH_SAMPLES`, default 2,000,000 per form).

use std::time::Instant;

use qadf_core_types::schema::{EpochUnit, SchemaConfig};
use qadf_core_types::{Codec, Encoding, RecordContext, SampleBatch, Schema, Timestamp};
use serde::de::IgnoredAny;

/// A 100-sample message as the Python original's producer writes one sample (a list of them).
fn python_rows(m: usize) -> String {
    let rows: Vec<String> = (0..100)
        .map(|i| {
            let k = m * 100 + i;
            format!(
                r#"{{"sensor_id": "sensor_{}", "temperature": {:.1}, "power": {:.1}, "velocity": {:.1}, "x": {:.3}, "y": {:.3}, "z": 0.58, "timestamp": "2026-01-30T17:31:{:02}.{:06}"}}"#,
                k % 3,
                1000.0 + (k % 200) as f64 * 0.5,
                198.6 + (k % 7) as f64,
                103.2,
                (k % 3000) as f64 * 0.01,
                (k / 3000 % 3000) as f64 * 0.01,
                (k / 100_000) % 60,
                (k * 10) % 1_000_000
            )
        })
        .collect();
    format!("[{}]", rows.join(", "))
}

/// A 1,000-sample columnar batch with integer nanosecond times (`epoch_unit = "nanoseconds"`).
fn columnar(m: usize) -> String {
    let n = 1000;
    let t0 = 1_769_794_278_343_884_000i64 + (m * n) as i64 * 10_000;
    let col = |f: &dyn Fn(usize) -> String| (0..n).map(f).collect::<Vec<_>>().join(",");
    format!(
        r#"{{"build_id": "b1", "sensor_id": "pyro-1", "layer": 7, "t": [{}], "x": [{}], "y": [{}], "z": [{}], "temperature": [{}], "intensity": [{}]}}"#,
        col(&|i| (t0 + i as i64 * 10_000).to_string()),
        col(&|i| format!("{:.3}", 10.0 + (i % 500) as f64 * 0.01)),
        col(&|i| format!("{:.3}", 10.0 + (i / 500) as f64 * 0.1)),
        col(&|_| "0.21".to_owned()),
        col(&|i| format!("{:.1}", 1890.0 + (i % 97) as f64 * 0.1)),
        col(&|i| ((i * 37) % 4096).to_string()),
    )
}

/// Samples per second decoding every message once per pass, best of three passes.
fn rate(messages: &[String], samples: usize, mut decode: impl FnMut(&str) -> usize) -> f64 {
    (0..3)
        .map(|_| {
            let t = Instant::now();
            let n: usize = messages.iter().map(|m| decode(m)).sum();
            assert_eq!(n, samples);
            n as f64 / t.elapsed().as_secs_f64()
        })
        .fold(0.0, f64::max)
}

fn main() {
    let total: usize = std::env::var("QADF_BENCH_SAMPLES").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000_000);
    let record = RecordContext { timestamp: Some(Timestamp::EPOCH), key: None };
    let default = Codec::new(Encoding::Json).with_max_message_bytes(usize::MAX);
    let nanos = SchemaConfig { epoch_unit: EpochUnit::Nanoseconds, ..SchemaConfig::default() };
    let columns_codec = default.clone().with_schema(std::sync::Arc::new(Schema::compile(&nanos).unwrap()));
    let canonical_codec = default.clone();

    let form = std::env::var("QADF_BENCH_FORM").unwrap_or_default();
    let wanted = |name: &str| name.contains(&form);
    let rows: Vec<String> =
        if wanted("Python canonical") { (0..total / 100).map(python_rows).collect() } else { Vec::new() };
    let batches: Vec<String> = if wanted("columnar") { (0..total / 1000).map(columnar).collect() } else { Vec::new() };
    let canonical: Vec<String> = rows
        .iter()
        .map(|m| {
            let batch: SampleBatch = default.decode_record(m.as_bytes(), &record).unwrap();
            String::from_utf8(default.encode(&batch).unwrap()).unwrap()
        })
        .collect();

    let ceiling = |per: usize| move |m: &str| serde_json::from_str::<IgnoredAny>(m).map(|_| per).unwrap();
    println!("| form (one thread) | decode through the schema | ceiling: serde_json parse only | share |");
    println!("|---|---|---|---|");
    for (name, messages, per, codec) in [
        ("Python-original dicts, 100 per message (naive ISO times, string sensor id)", &rows, 100, &default),
        ("canonical objects, 100 per message (RFC 3339 times)", &canonical, 100, &canonical_codec),
        ("columnar batch, 1,000 per message (integer ns times)", &batches, 1000, &columns_codec),
    ] {
        // `QADF_BENCH_FORM=columnar` (a word of the form's name) measures one form, for profiling.
        if !name.contains(&form) {
            continue;
        }
        let samples = messages.len() * per;
        let through = rate(messages, samples, |m| codec.decode_record(m.as_bytes(), &record).unwrap().len());
        let parse = rate(messages, samples, ceiling(per));
        let bytes: usize = messages.iter().map(String::len).sum();
        println!(
            "| {name}; {:.0} B/sample | {:.2} M samples/s | {:.2} M samples/s | {:.0}% |",
            bytes as f64 / samples as f64,
            through / 1e6,
            parse / 1e6,
            100.0 * through / parse
        );
    }
}
