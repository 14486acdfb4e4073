//! The trait contracts, as functions any implementation's tests call.
#![allow(dead_code)] // each test binary uses the suites it needs

use std::collections::BTreeMap;
use std::time::Duration;

use qadf_core_types::bucket::{Bucket, MAX_BUCKET_SAMPLES};
use qadf_core_types::{Cache, HistoryQuery, HistoryStore, LogPosition, OffsetStore, Point3, Sample, Timestamp, Value};

/// Sample `i`: build, source and layer change from one to the next, so each is a bucket of its own.
pub fn sample(i: i64) -> Sample {
    let mut s = Sample::new(
        Timestamp::from_nanos(1_795_000_000_000_000_000 + i * 1_000_003),
        Point3::new(i as f64 * 0.1, 2.5, 0.03 * (i % 4) as f64),
        [("temperature", 1900.0 + i as f64 * 0.25), ("melt_pool_area", 0.04)].into_iter().collect(),
    );
    s.build_id = if i % 2 == 0 { "build-a".into() } else { "build-b".into() };
    s.source_id = format!("ispm-{}", i % 3).into();
    s.layer = (i % 4) as u32;
    match i % 5 {
        0 => s.tags.insert("material", "Ti64"),
        1 => s.tags.insert("material", "316L"),
        _ => None,
    };
    s
}

fn query(from: i64, to: i64) -> HistoryQuery {
    HistoryQuery {
        start: sample(from).timestamp,
        end: sample(to).timestamp,
        build_id: None,
        source_id: None,
        layer: None,
        tags: Vec::new(),
        skip: 0,
        limit: usize::MAX,
    }
}

fn between(start: Timestamp, end: Timestamp) -> HistoryQuery {
    HistoryQuery { start, end, ..HistoryQuery::all() }
}

/// The `HistoryStore` contract.
pub fn history_suite(store: &dyn HistoryStore) {
    mixed_samples(store);
    long_runs(store);
}

/// One-sample buckets: stored out of order, returned sorted; filters, paging, retention.
fn mixed_samples(store: &dyn HistoryStore) {
    let mut all: Vec<Sample> = (0..100).map(sample).collect();
    all.reverse();
    assert_eq!(Bucket::runs(&all).len(), 100, "every sample differs in key from the next");
    assert_eq!(store.store_samples(&all).unwrap().inserted, 100);
    let replay = store.store_samples(&all[..60]).unwrap();
    assert_eq!((replay.inserted, replay.already_stored), (0, 60), "a replay stores nothing twice");
    let ids = [Bucket::id_of(&[sample(5)]), "never-stored".to_owned(), Bucket::id_of(&[sample(99)])];
    assert_eq!(store.stored_buckets(&ids).unwrap(), [true, false, true], "membership in the order asked");
    assert_eq!(store.stored_buckets(&[]).unwrap(), Vec::<bool>::new());

    let got = store.query_stream_history(&query(10, 50)).unwrap();
    assert_eq!(got, (10..50).map(sample).collect::<Vec<_>>(), "time-ordered, [start, end), exact round trip");
    assert_eq!(store.count_samples(&query(10, 50)).unwrap(), 40);

    let filtered = HistoryQuery { build_id: Some("build-a".into()), layer: Some(2), ..query(0, 100) };
    let found = store.query_stream_history(&filtered).unwrap();
    assert_eq!(found.iter().map(|s| s.layer).collect::<Vec<_>>(), vec![2; 25], "i % 4 == 2 is always build-a");
    assert!(found.iter().all(|s| s.build_id == "build-a"));
    assert_eq!(store.count_samples(&filtered).unwrap(), 25);
    let by_source = HistoryQuery { source_id: Some("ispm-1".into()), ..query(0, 100) };
    assert_eq!(store.query_stream_history(&by_source).unwrap().len(), 33);
    assert_eq!(store.count_samples(&by_source).unwrap(), 33);

    let tagged = HistoryQuery { tags: vec![("material".into(), "Ti64".into())], ..query(0, 100) };
    let ti = store.query_stream_history(&tagged).unwrap();
    assert_eq!(ti, (0..100).filter(|i| i % 5 == 0).map(sample).collect::<Vec<_>>(), "tags stored and queryable");
    assert_eq!(store.count_samples(&tagged).unwrap(), 20);
    let none =
        HistoryQuery { tags: vec![("material".into(), "Ti64".into()), ("job".into(), "j".into())], ..query(0, 100) };
    assert!(store.query_stream_history(&none).unwrap().is_empty(), "every tag must match");
    let mut paged = Vec::new();
    for page in 0.. {
        let q = HistoryQuery { skip: page * 7, limit: 7, ..query(0, 100) };
        let part = store.query_stream_history(&q).unwrap();
        if part.is_empty() {
            break;
        }
        paged.extend(part);
    }
    assert_eq!(paged, (0..100).map(sample).collect::<Vec<_>>(), "pages join up without gaps or repeats");

    assert_eq!(store.delete_old_data(sample(30).timestamp).unwrap(), 30);
    let rest = store.query_stream_history(&query(0, 100)).unwrap();
    assert_eq!(rest.first(), Some(&sample(30)));
    assert_eq!(rest.len(), 70);
    store.delete_old_data(Timestamp::from_nanos(i64::MAX)).unwrap();
}

/// A monitor's long runs, cut into full buckets: queries cut them at the edges, counts come
/// from bucket counts, retention goes by bucket end time.
fn long_runs(store: &dyn HistoryStore) {
    let n = 2 * MAX_BUCKET_SAMPLES + 5_000;
    let samples = qadf_integration_tests::monitor_run(n, 6);
    let runs = Bucket::runs(&samples);
    assert_eq!(runs.len(), 3);
    assert_eq!(store.store_samples(&samples).unwrap().inserted, n as u64);
    assert_eq!(store.store_samples(&samples).unwrap().already_stored, n as u64, "a replay");
    let t = |i: usize| samples[i].timestamp;

    // Across two bucket edges: exactly the samples in [start, end).
    let q = between(t(7_000), t(21_234));
    assert_eq!(store.query_stream_history(&q).unwrap(), samples[7_000..21_234]);
    assert_eq!(store.count_samples(&q).unwrap(), 14_234);
    let page = HistoryQuery { skip: 100, limit: 10, ..q.clone() };
    assert_eq!(store.query_stream_history(&page).unwrap(), samples[7_100..7_110], "skip and limit in time order");
    let layer = HistoryQuery { layer: Some(7), ..q.clone() };
    assert!(store.query_stream_history(&layer).unwrap().is_empty());
    assert_eq!(store.count_samples(&layer).unwrap(), 0);
    assert_eq!(store.count_samples(&HistoryQuery::all()).unwrap(), n as u64);

    // Retention by bucket end: a cut inside the second bucket removes the first only.
    assert_eq!(store.delete_old_data(t(MAX_BUCKET_SAMPLES + 10)).unwrap(), MAX_BUCKET_SAMPLES as u64);
    assert_eq!(store.query_stream_history(&HistoryQuery::all()).unwrap(), samples[MAX_BUCKET_SAMPLES..]);
    store.delete_old_data(Timestamp::from_nanos(i64::MAX)).unwrap();
    assert_eq!(store.count_samples(&HistoryQuery::all()).unwrap(), 0);
}

/// The `OffsetStore` contract.
pub fn offset_suite(store: &dyn OffsetStore) {
    let cp = |topic: &str, partition, next_offset| LogPosition { topic: topic.into(), partition, next_offset };
    assert!(store.load_offsets("g", "t").unwrap().is_empty());
    store.store_offsets("g", &[cp("t", 1, 10), cp("t", 0, 5), cp("u", 0, 7)]).unwrap();
    store.store_offsets("other", &[cp("t", 0, 99)]).unwrap();
    store.store_offsets("g", &[cp("t", 1, 12)]).unwrap();
    assert_eq!(store.load_offsets("g", "t").unwrap(), [cp("t", 0, 5), cp("t", 1, 12)]);
    assert_eq!(store.load_offsets("g", "u").unwrap(), [cp("u", 0, 7)]);
    assert_eq!(store.load_offsets("other", "t").unwrap(), [cp("t", 0, 99)]);
}

/// A layer report of `build` and `layer` with `samples` samples.
pub fn layer_report(build: &str, layer: u32, samples: u64) -> qadf_core_types::LayerReport {
    qadf_core_types::LayerReport {
        build_id: build.into(),
        layer,
        verdict: qadf_core_types::Verdict::Critical,
        samples,
        late_samples: 1,
        first_sample: Timestamp::from_nanos(1_795_000_000_000_000_001),
        last_sample: Timestamp::from_nanos(1_795_000_000_123_456_789),
        signals: [(
            "temperature".to_owned(),
            qadf_core_types::LayerSignal { count: samples, mean: 1901.25, min: 1700.5, max: 2349.5, std: 12.125 },
        )]
        .into_iter()
        .collect(),
        voxels: 400,
        voxels_out_of_limits: 3,
        out_of_limits_share: 0.0075,
        alerts_by_rule: [("melt_pool_temperature".to_owned(), 7)].into_iter().collect(),
        dropout_ms: 0.25,
    }
}

/// The `LayerReportStore` contract.
pub fn layer_report_suite(store: &dyn qadf_core_types::LayerReportStore) {
    assert!(store.layer_reports("b").unwrap().is_empty());
    store.store_layer_reports(&[layer_report("b", 2, 10), layer_report("b", 0, 5), layer_report("c", 0, 1)]).unwrap();
    store.store_layer_reports(&[layer_report("b", 2, 12)]).unwrap();
    let b = store.layer_reports("b").unwrap();
    assert_eq!(b, [layer_report("b", 0, 5), layer_report("b", 2, 12)], "by layer, the last stored, every field equal");
    assert_eq!(store.layer_reports("c").unwrap(), [layer_report("c", 0, 1)]);
    assert!(store.layer_reports("b2").unwrap().is_empty(), "a build id is matched whole");
}

/// The `Cache` contract; `expire` moves time past a 1 s TTL.
pub fn cache_suite(cache: &dyn Cache, expire: &dyn Fn()) {
    let values = [
        ("int", Value::Int(42)),
        ("text that looks like a number", Value::Text("123".into())),
        ("time", Value::Time(Timestamp::from_nanos(1_795_000_000_123_456_789))),
        ("float", Value::Float(0.1)),
        ("list", Value::List(vec![Value::Null, Value::Bool(true), Value::Bytes(vec![0, 255])])),
        ("map", Value::Map(BTreeMap::from([("layer".to_owned(), Value::Int(7))]))),
    ];
    for (key, v) in &values {
        cache.put(key, v, Duration::from_secs(60)).unwrap();
    }
    for (key, v) in &values {
        assert_eq!(cache.get(key).unwrap().as_ref(), Some(v), "{key} comes back as the type it went in");
    }
    assert_eq!(cache.get("absent").unwrap(), None);
    cache.put("short", &Value::Int(1), Duration::from_secs(1)).unwrap();
    expire();
    assert_eq!(cache.get("short").unwrap(), None, "expired");
    assert_eq!(cache.get("int").unwrap(), Some(Value::Int(42)), "longer TTLs are unaffected");
}
