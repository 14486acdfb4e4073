//! A property test of the whole ingest path — in-process transport → decode → validate → voxel →
//! embedded history → commit — with arbitrary and adversarial messages: canonical and generic
//! samples, batches over the sample limit, thousands of fields, deep nesting, control characters,
//! duplicate and missing ids, fields and times, positions outside the grid, random and cut bytes.
//!
//! Properties, checked on 100,000 messages in CI (`QADF_TEST_INGEST_CASES` changes it), in runs
//! of 5,000 through one consumer each:
//! - no panic, and the consumer ends without an error;
//! - every dead letter names its message (a refused sample also its index within it);
//! - at every commit, every message before the committed position is accounted for: dead-lettered
//!   whole, or each of its samples stored or dead-lettered itself;
//! - at the end everything is committed and accounted for the same way;
//! - the process stays under 1 GiB of RSS.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use qadf_client::{ConsumerSinks, Ingest, StreamingClient};
use qadf_core_types::bucket::Bucket;
use qadf_core_types::{
    BackendError, Codec, Encoding, HistoryQuery, HistoryStore, LogPosition, MessageSink, MessageSource, OffsetStore,
    OutgoingMessage, RawMessage, Sample, SendError, StoreReport, StreamingConfig, Timestamp,
};
use qadf_kafka_io::{DeadLetterSink, MemoryOffsetStore, ORIGIN_HEADER, SAMPLE_HEADER, in_process};
use qadf_storage::EmbeddedStore;

const TOPIC: &str = "am_qadf_monitoring";
const RUN: usize = 5_000;

fn cases() -> usize {
    std::env::var("QADF_TEST_INGEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000)
}

fn config() -> StreamingConfig {
    StreamingConfig {
        voxel_bbox_max: [20.0, 20.0, 5.0],
        voxel_resolution: 0.5,
        max_batch_wait_ms: 5,
        max_samples_per_message: 50,
        max_builds_in_memory: 4,
        max_signals_per_build: 16,
        max_signals_per_sample: 8,
        alert_dedup_interval_ms: 0,
        ..Default::default()
    }
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::sample::select(vec!["temperature", "melt_pool_area", "intensity", "x1", "value"]).prop_map(String::from),
        1 => "[a-z]{1,12}",
        1 => "[a-z]{0,3}[\u{0}\u{7}\n\u{1b}\u{7f}][a-z]{0,3}", // control characters
        1 => (129usize..400).prop_map(|n| "n".repeat(n)),                // over max_name_bytes
        1 => Just("sig".repeat(60)),
    ]
}

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (0.0..3000.0f64).prop_map(|v| format!("{v}")),
        1 => prop::sample::select(vec!["1e308", "-0", "1e-320", "123456789012345678901234567890", "7"]).prop_map(String::from),
    ]
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// One JSON sample object, well-formed or not quite.
fn sample_object() -> impl Strategy<Value = String> {
    let build = prop_oneof![4 => prop::sample::select(vec!["b1", "b2", "b3", "b4", "b5", "b6"]).prop_map(String::from), 1 => name()];
    let timestamp = prop_oneof![
        // Epoch seconds with nanoseconds, as the default schema reads numbers.
        3 => (1_795_000_000_000_000_000i64..1_795_000_100_000_000_000)
            .prop_map(|t| format!(r#""timestamp":{}.{:09},"#, t / 1_000_000_000, t % 1_000_000_000)),
        1 => Just(String::new()), // missing: the record's time
        1 => Just(r#""timestamp":"2026-11-30T10:00:00Z","#.to_owned()),
        1 => Just(r#""timestamp":"yesterday","#.to_owned()),
    ];
    let position = prop_oneof![
        4 => (0.0..20.0f64, 0.0..20.0f64, 0.0..5.0f64).prop_map(|(x, y, z)| format!(r#""x":{x},"y":{y},"z":{z},"#)),
        1 => (0.0..20.0f64, 0.0..20.0f64, 0.0..5.0f64).prop_map(|(x, y, z)| format!(r#""position":[{x},{y},{z}],"#)),
        1 => Just(r#""x":900,"y":1,"z":1,"#.to_owned()), // outside the grid
        1 => Just(String::new()),                         // none
        1 => Just(r#""x":1,"y":1,"#.to_owned()),          // incomplete
    ];
    let signals = prop::collection::vec((name(), number()), 0..5);
    let extra = prop_oneof![
        6 => Just(String::new()),
        1 => Just(r#""layer":3,"#.to_owned()),
        1 => Just(r#""build_id":"again","#.to_owned()), // a duplicate id field
        1 => Just(r#""sensor":"s-1","#.to_owned()),    // a string field
        1 => Just(r#""nested":{"a":[1,2]},"#.to_owned()),
    ];
    (build, name(), timestamp, position, signals, extra).prop_map(|(b, s, t, p, sig, e)| {
        let signals: Vec<String> = sig.iter().map(|(n, v)| format!("{}:{v}", json_str(n))).collect();
        let body =
            format!("\"build_id\":{},\"source_id\":{},{t}{p}{e}{}", json_str(&b), json_str(&s), signals.join(","));
        format!("{{{}}}", body.trim_end_matches(','))
    })
}

/// One message's payload.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        10 => sample_object().prop_map(String::into_bytes),
        4 => prop::collection::vec(sample_object(), 0..60).prop_map(|v| format!("[{}]", v.join(",")).into_bytes()),
        1 => (20usize..3000).prop_map(|n| {
            let fields: Vec<String> = (0..n).map(|i| format!(r#""f{i}":1"#)).collect();
            format!(r#"{{"build_id":"wide","x":1,"y":1,"z":1,{}}}"#, fields.join(",")).into_bytes()
        }),
        1 => (10usize..200).prop_map(|d| format!(r#"{{"v":{}1{}}}"#, "[".repeat(d), "]".repeat(d)).into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..300),
        1 => sample_object().prop_flat_map(|s| {
            let len = s.len();
            (Just(s), 0..len).prop_map(|(s, cut)| s.as_bytes()[..cut].to_vec())
        }),
    ]
}

/// Dead letters as they are sent: the offsets of whole messages; (offset, content id) of single samples.
#[derive(Default)]
struct Letters {
    messages: HashSet<i64>,
    samples: HashSet<(i64, String)>,
}

struct RecordingSink(Arc<Mutex<Letters>>);

impl MessageSink for RecordingSink {
    fn send(&self, messages: Vec<OutgoingMessage>) -> Result<(), SendError<Vec<OutgoingMessage>>> {
        let mut letters = self.0.lock();
        for m in messages {
            let (_, origin) =
                m.headers.iter().find(|(k, _)| k == ORIGIN_HEADER).expect("every dead letter names its message");
            let offset: i64 = String::from_utf8_lossy(origin).rsplit('/').next().unwrap().parse().unwrap();
            match m.headers.iter().find(|(k, _)| k == SAMPLE_HEADER) {
                None => {
                    letters.messages.insert(offset);
                }
                Some(_) => {
                    let (sample, _): (Sample, usize) =
                        bincode::serde::decode_from_slice(&m.payload, bincode::config::standard())
                            .expect("a refused sample travels as bincode");
                    letters.samples.insert((offset, sample.content_id()));
                }
            }
        }
        Ok(())
    }
}

/// What was delivered, and the check run at every commit.
struct Ledger {
    codec: Codec,
    delivered: Mutex<HashMap<i64, RawMessage>>,
    letters: Arc<Mutex<Letters>>,
    history: Arc<Observed>,
    verified: Mutex<i64>,
    violations: Mutex<Vec<String>>,
}

impl Ledger {
    /// Checks messages `verified..next_offset`: each dead-lettered whole, or each of its samples
    /// stored or dead-lettered itself (one store look-up for the whole range).
    fn verify_up_to(&self, next_offset: i64) {
        let mut verified = self.verified.lock();
        let mut violations = self.violations.lock();
        let mut samples: Vec<(i64, String)> = Vec::new();
        {
            let (delivered, letters) = (self.delivered.lock(), self.letters.lock());
            for offset in *verified..next_offset {
                if letters.messages.contains(&offset) {
                    continue;
                }
                let Some(m) = delivered.get(&offset) else {
                    violations.push(format!("offset {offset} committed but never delivered"));
                    continue;
                };
                match self.codec.decode_at(&m.payload, m.timestamp) {
                    Ok(batch) => samples.extend(batch.samples.iter().map(|s| (offset, s.content_id()))),
                    Err(e) => violations.push(format!("offset {offset}: undecodable ({e}) and not dead-lettered")),
                }
            }
        }
        let stored = self.history.stored.lock();
        let letters = self.letters.lock();
        for (offset, id) in &samples {
            if !stored.contains(id) && !letters.samples.contains(&(*offset, id.clone())) {
                let payload = &self.delivered.lock()[offset].payload;
                let text: String = String::from_utf8_lossy(payload).chars().take(300).collect();
                violations.push(format!("offset {offset}: sample {id} neither stored nor dead-lettered: {text}"));
            }
        }
        *verified = (*verified).max(next_offset);
    }
}

/// The embedded history, noting the content id of every sample of every bucket it stored (what
/// the ledger checks at each commit; at the end of a run the history read back must hold exactly
/// these samples).
struct Observed {
    inner: EmbeddedStore,
    stored: Mutex<HashSet<String>>,
}

impl HistoryStore for Observed {
    fn store_buckets(&self, buckets: &[Bucket]) -> Result<StoreReport, BackendError> {
        let report = self.inner.store_buckets(buckets)?;
        let mut stored = self.stored.lock();
        for b in buckets {
            stored.extend(b.decode().expect("a bucket just stored decodes").iter().map(Sample::content_id));
        }
        Ok(report)
    }
    fn query_stream_history(&self, q: &HistoryQuery) -> Result<Vec<Sample>, BackendError> {
        self.inner.query_stream_history(q)
    }
    fn count_samples(&self, q: &HistoryQuery) -> Result<u64, BackendError> {
        self.inner.count_samples(q)
    }
    fn delete_old_data(&self, t: Timestamp) -> Result<u64, BackendError> {
        self.inner.delete_old_data(t)
    }
    fn stored_buckets(&self, ids: &[String]) -> Result<Vec<bool>, BackendError> {
        self.inner.stored_buckets(ids)
    }
}

/// The source, recording what it delivers (with the record timestamps the decoder used).
struct Recording {
    inner: in_process::InProcessSource,
    ledger: Arc<Ledger>,
}

impl MessageSource for Recording {
    fn poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<RawMessage>, BackendError> {
        let messages = self.inner.poll(max, timeout)?;
        let mut delivered = self.ledger.delivered.lock();
        for m in &messages {
            delivered.insert(m.origin.offset, m.clone());
        }
        Ok(messages)
    }

    fn commit(&mut self, positions: &[LogPosition]) -> Result<(), BackendError> {
        for c in positions {
            self.ledger.verify_up_to(c.next_offset);
        }
        self.inner.commit(positions)
    }
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn every_message_is_stored_or_dead_lettered_and_nothing_is_committed_before_it_is() {
    let total = cases();
    let mut runner = TestRunner::new_with_rng(Config::default(), TestRng::from_seed(RngAlgorithm::XorShift, &[7; 16]));
    let strategy = payload();
    let dir = std::env::temp_dir().join(format!("qadf-ingest-property-{}", std::process::id()));
    let (mut kinds, mut done) = (0usize, 0usize);
    while done < total {
        let n = RUN.min(total - done);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let inner = EmbeddedStore::open(&dir.join("history.redb")).unwrap();
        let history = Arc::new(Observed { inner, stored: Mutex::default() });
        let config = config();
        let letters = Arc::new(Mutex::new(Letters::default()));
        let ledger = Arc::new(Ledger {
            codec: Codec::new(Encoding::Json).with_limits(config.ingest_limits()),
            delivered: Mutex::default(),
            letters: letters.clone(),
            history: history.clone(),
            verified: Mutex::new(0),
            violations: Mutex::default(),
        });
        let offsets = Arc::new(MemoryOffsetStore::default());
        let (sink, source) = in_process::channel(256, "g", offsets.clone());
        let client = Arc::new(StreamingClient::new(config).unwrap());
        let sinks = ConsumerSinks {
            history: Some(history.clone()),
            dead_letters: Some(Arc::new(DeadLetterSink::new(Arc::new(RecordingSink(letters.clone())), "dlq"))),
            ..Default::default()
        };
        let ingest =
            Ingest::start(&client, Box::new(Recording { inner: source, ledger: ledger.clone() }), sinks, |_| {});
        for _ in 0..n {
            let payload = strategy.new_tree(&mut runner).unwrap().current();
            kinds += usize::from(payload.first() == Some(&b'['));
            let message =
                OutgoingMessage { topic: TOPIC.into(), partition: Some(0), key: None, payload, headers: Vec::new() };
            sink.send(vec![message]).unwrap();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while offsets.load_offsets("g", TOPIC).unwrap().first().is_none_or(|c| c.next_offset < n as i64) {
            assert!(ingest.running(), "the consumer stopped: {:?}", ingest.stop());
            assert!(std::time::Instant::now() < deadline, "not everything was committed in 120 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        let report = ingest.stop().unwrap();
        assert_eq!(report.error, None, "{report:?}");
        assert_eq!(report.messages, n as u64);
        ledger.verify_up_to(n as i64);
        let read_back: HashSet<String> =
            history.query_stream_history(&HistoryQuery::all()).unwrap().iter().map(Sample::content_id).collect();
        assert_eq!(read_back, *history.stored.lock(), "the history holds exactly what it was given");
        let violations = ledger.violations.lock();
        assert!(violations.is_empty(), "{} violations, first: {:?}", violations.len(), violations.first());
        done += n;
        assert!(rss_kib() < 1 << 20, "RSS {} KiB after {done} messages", rss_kib());
    }
    assert!(kinds > total / 10, "the generator makes batches too ({kinds} of {total})");
    std::fs::remove_dir_all(&dir).unwrap();
}
