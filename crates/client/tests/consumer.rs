//! The consumer path end to end on embedded defaults: in-process transport → StreamingClient →
//! embedded history, with dead letters, alerts, and offsets committed after storage.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use qadf_client::{ConsumerSinks, Ingest, StreamingClient};
use qadf_core_types::bucket::Bucket;
use qadf_core_types::{
    BackendError, BackendErrorKind, HistoryQuery, HistoryStore, MessageSink, MessageSource, OffsetStore,
    OutgoingMessage, Sample, StoreReport, StreamingConfig, Timestamp,
};
use qadf_kafka_io::{AlertSink, DeadLetterSink, MemoryOffsetStore, ORIGIN_HEADER, SAMPLE_HEADER, in_process};
use qadf_storage::EmbeddedStore;

fn message(payload: String) -> OutgoingMessage {
    OutgoingMessage {
        topic: "am_qadf_monitoring".into(),
        partition: Some(0),
        key: None,
        payload: payload.into_bytes(),
        headers: vec![],
    }
}

fn good(batch: usize) -> String {
    let samples: Vec<String> = (0..10)
        .map(|i| {
            let t = Timestamp::from_nanos(1_795_000_000_000_000_000i64 + (batch * 10 + i) as i64 * 10_000);
            format!(r#"{{"build_id":"b1","source_id":"ispm-0","layer":0,"timestamp":"{t}","position":[10.0,{},0.1],"signals":{{"temperature":1900.0}}}}"#, 10.0 + i as f64 * 0.1)
        })
        .collect();
    format!("[{}]", samples.join(","))
}

fn wait_until(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An empty embedded store in a fresh temporary directory (removed by the test at its end).
fn fresh_store(name: &str) -> (std::path::PathBuf, Arc<EmbeddedStore>) {
    let dir = std::env::temp_dir().join(format!("qadf-client-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let history = Arc::new(EmbeddedStore::open(&dir.join("history.redb")).unwrap());
    (dir, history)
}

/// Samples of `good(b)` for each of `batches`, decoded as the consumer decodes them.
fn good_samples(batches: std::ops::Range<usize>) -> Vec<qadf_core_types::Sample> {
    let codec = qadf_core_types::Codec::new(qadf_core_types::Encoding::Json);
    batches.flat_map(|b| codec.decode(good(b).as_bytes()).unwrap().samples).collect()
}

/// What a run killed between storing and committing left: `batches` stored (each message's
/// buckets), nothing committed.
fn stored_by_a_killed_run(history: &EmbeddedStore, batches: std::ops::Range<usize>) {
    for b in batches {
        history.store_samples(&good_samples(b..b + 1)).unwrap();
    }
}

/// Starts `client` consuming an in-process topic of `group` into `history` alone; returns the producer side and the loop.
fn start_storing(
    client: &Arc<StreamingClient>,
    history: &Arc<EmbeddedStore>,
    group: &str,
    offsets: &Arc<MemoryOffsetStore>,
) -> (in_process::InProcessSink, Ingest) {
    let (sink, source) = in_process::channel(64, group, offsets.clone());
    let sinks = ConsumerSinks { history: Some(history.clone()), ..Default::default() };
    (sink, Ingest::start(client, Box::new(source), sinks, |_| {}))
}

#[test]
fn consumed_batches_take_the_same_path_and_are_committed_only_once_stored() {
    let (dir, history) = fresh_store("consumer");
    let offsets = Arc::new(MemoryOffsetStore::default());
    let config = StreamingConfig {
        voxel_bbox_max: [50.0, 50.0, 10.0],
        voxel_resolution: 0.5,
        max_batch_wait_ms: 20,
        ..Default::default()
    };
    let client = Arc::new(StreamingClient::new(config).unwrap());

    let (sink, source) = in_process::channel(64, "g", offsets.clone());
    let (dl_sink, mut dl_source) = in_process::channel(64, "dlq", Arc::new(MemoryOffsetStore::default()));
    let sinks = ConsumerSinks {
        history: Some(history.clone()),
        dead_letters: Some(Arc::new(DeadLetterSink::new(Arc::new(dl_sink), "am_qadf_dead_letter"))),
        ..Default::default()
    };
    let results = Arc::new(AtomicUsize::new(0));
    let seen = results.clone();
    let ingest = Ingest::start(&client, Box::new(source), sinks, move |_| {
        seen.fetch_add(1, Ordering::SeqCst);
    });

    let mut messages: Vec<OutgoingMessage> = (0..10).map(|b| message(good(b))).collect();
    messages.insert(3, message("{not json".into()));
    messages.insert(7, message(r#"{"build_id":"b1","x":1,"y":1,"z":0.1}"#.into())); // no signals
    messages.insert(9, message(r#"{"build_id":"b1","x":900,"y":1,"z":0.1,"temperature":1}"#.into())); // outside the grid
    sink.send(messages).unwrap();

    wait_until("the 100 good samples are stored", || history.count().unwrap() == 100);
    wait_until("every offset is committed", || {
        offsets.load_offsets("g", "am_qadf_monitoring").unwrap().first().is_some_and(|c| c.next_offset == 13)
    });
    let report = ingest.stop().unwrap();
    assert_eq!(report.messages, 13);
    assert_eq!(report.dead_letters, 3, "{report:?}");
    assert_eq!(report.error, None);

    let dead = dl_source.poll(10, Duration::from_millis(500)).unwrap();
    let reasons: Vec<String> = dead.iter().map(|m| String::from_utf8_lossy(&m.headers[0].1).into_owned()).collect();
    // Every dead letter names its message; a refused sample also its index within it.
    let header = |m: &qadf_core_types::RawMessage, name: &str| {
        m.headers.iter().find(|(k, _)| k == name).map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    let origins: Vec<(Option<String>, Option<String>)> =
        dead.iter().map(|m| (header(m, ORIGIN_HEADER), header(m, SAMPLE_HEADER))).collect();
    let at = |offset: i64| Some(format!("am_qadf_monitoring/0/{offset}"));
    assert_eq!(
        origins,
        [(at(3), None), (at(7), Some("0".into())), (at(9), Some("0".into()))],
        "undecodable message 3 whole; samples 0 of messages 7 and 9"
    );
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("invalid JSON")));
    assert!(reasons.iter().any(|r| r.contains("no signals")));
    assert!(reasons.iter().any(|r| r.contains("outside the voxel grid")));

    let stats = client.get_stream_statistics();
    assert_eq!(stats.messages_processed, 100, "consumed samples count in the client's own statistics");
    assert_eq!(stats.dead_letters, 3);
    assert_eq!(results.load(Ordering::SeqCst) as u64, stats.batches_processed);

    // A replay of already-stored data stores nothing twice.
    let (sink, ingest) = start_storing(&client, &history, "g2", &offsets);
    sink.send((0..10).map(|b| message(good(b))).collect()).unwrap();
    wait_until("the replay is committed", || {
        offsets.load_offsets("g2", "am_qadf_monitoring").unwrap().first().is_some_and(|c| c.next_offset == 10)
    });
    ingest.stop().unwrap();
    assert_eq!(history.count().unwrap(), 100);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A sample of build b1 at `layer`, `ms` into the build, with the given temperature (short JSON form).
fn reading(layer: u32, ms: i64, temperature: f64) -> OutgoingMessage {
    let t = Timestamp::from_nanos(1_795_000_000_000_000_000i64 + ms * 1_000_000);
    message(format!(
        r#"{{"build_id":"b1","layer":{layer},"timestamp":"{t}","x":1,"y":1,"z":0.1,"temperature":{temperature}}}"#
    ))
}

/// A client raising an alert for temperatures outside 1700-2150 K.
fn client_with_range_check() -> Arc<StreamingClient> {
    let client =
        Arc::new(StreamingClient::new(StreamingConfig { max_batch_wait_ms: 20, ..Default::default() }).unwrap());
    client.add_quality_checkpoint(
        Arc::new(qadf_pipeline::RangeCheck::new("melt_pool_temperature", "temperature", 1700.0, 2150.0)),
        qadf_pipeline::CheckpointAction::Continue,
    );
    client
}

#[test]
fn alerts_are_published_to_the_alerts_sink_before_their_batch_is_committed() {
    let client = client_with_range_check();
    let offsets = Arc::new(MemoryOffsetStore::default());
    let (sink, source) = in_process::channel(16, "g", offsets.clone());
    let (alert_sink, mut alert_source) = in_process::channel(16, "alerts", Arc::new(MemoryOffsetStore::default()));
    let alerts = Arc::new(AlertSink::new(Arc::new(alert_sink), "am_qadf_alerts"));
    let sinks = ConsumerSinks { alerts: Some(alerts.clone()), ..Default::default() };
    let raised = Arc::new(AtomicUsize::new(0));
    let counted = raised.clone();
    let ingest = Ingest::start(&client, Box::new(source), sinks, move |r| {
        counted.fetch_add(r.alerts.len(), Ordering::SeqCst);
    });
    // A hot sample in layer 0, a normal one, a cold one in layer 1: two conditions.
    sink.send(vec![reading(0, 1, 2300.0), reading(0, 2, 1900.0), reading(1, 3, 1500.0)]).unwrap();
    wait_until("every offset is committed", || {
        offsets.load_offsets("g", "am_qadf_monitoring").unwrap().first().is_some_and(|c| c.next_offset == 3)
    });
    let report = ingest.stop().unwrap();
    assert_eq!(raised.load(Ordering::SeqCst), 2);
    assert_eq!(report.alerts_published, 2, "{report:?}");
    assert_eq!(alerts.sent(), 2);
    let published = alert_source.poll(10, Duration::from_millis(500)).unwrap();
    let decoded: Vec<qadf_core_types::Alert> =
        published.iter().map(|m| serde_json::from_slice(&m.payload).unwrap()).collect();
    let mut seen: Vec<(Option<u32>, f64)> = decoded.iter().map(|a| (a.layer, a.value)).collect();
    seen.sort_by_key(|s| s.0);
    assert_eq!(seen, vec![(Some(0), 2300.0), (Some(1), 1500.0)]);
    assert!(decoded.iter().all(|a| a.checkpoint == "melt_pool_temperature" && a.build_id == "b1"));
    assert!(published.iter().all(|m| m.key.as_deref() == Some(&b"b1"[..])));
}

/// A sink that refuses everything (the alerts topic is unreachable).
struct Refusing;

impl MessageSink for Refusing {
    fn send(&self, messages: Vec<OutgoingMessage>) -> Result<(), qadf_core_types::SendError<Vec<OutgoingMessage>>> {
        Err(qadf_core_types::SendError {
            value: messages,
            error: qadf_core_types::BackendError::new(qadf_core_types::BackendErrorKind::Unavailable, "test", "down"),
        })
    }
}

#[test]
fn a_failed_alert_publish_stops_the_consumer_uncommitted_and_stores_nothing() {
    let (dir, history) = fresh_store("alerts");
    let client = client_with_range_check();
    let offsets = Arc::new(MemoryOffsetStore::default());
    let (sink, source) = in_process::channel(8, "g", offsets.clone());
    let sinks = ConsumerSinks {
        history: Some(history.clone()),
        alerts: Some(Arc::new(AlertSink::new(Arc::new(Refusing), "am_qadf_alerts"))),
        ..Default::default()
    };
    let ingest = Ingest::start(&client, Box::new(source), sinks, |_| {});
    sink.send(vec![reading(0, 1, 2300.0)]).unwrap();
    wait_until("the consumer stops by itself", || !ingest.running());
    let report = ingest.stop().unwrap();
    assert!(report.error.as_deref().is_some_and(|e| e.contains("alerts sink failed")), "{report:?}");
    assert_eq!(report.alerts_published, 0);
    assert_eq!(history.count().unwrap(), 0, "a batch whose alerts were not published is not stored");
    assert!(offsets.load_offsets("g", "am_qadf_monitoring").unwrap().is_empty(), "nothing committed");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_refused_batch_without_a_dead_letter_sink_stops_the_consumer_uncommitted() {
    let offsets = Arc::new(MemoryOffsetStore::default());
    let client =
        Arc::new(StreamingClient::new(StreamingConfig { max_batch_wait_ms: 20, ..Default::default() }).unwrap());
    client.add_quality_checkpoint(
        Arc::new(qadf_pipeline::RangeCheck::new("limit", "temperature", 0.0, 2000.0)),
        qadf_pipeline::CheckpointAction::DropBatch,
    );
    let (sink, source) = in_process::channel(8, "g", offsets.clone());
    let ingest = Ingest::start(&client, Box::new(source), ConsumerSinks::default(), |_| {});
    sink.send(vec![message(r#"{"build_id":"b1","x":1,"y":1,"z":0.1,"temperature":2500}"#.into())]).unwrap();
    wait_until("the consumer stops by itself", || !ingest.running());
    let report = ingest.stop().unwrap();
    assert!(report.error.as_deref().is_some_and(|e| e.contains("stopped uncommitted")), "{report:?}");
    assert!(
        offsets.load_offsets("g", "am_qadf_monitoring").unwrap().is_empty(),
        "nothing committed: a restart delivers it again"
    );
}

#[test]
fn after_a_crash_between_storing_and_committing_the_grid_counts_each_sample_once() {
    let (dir, history) = fresh_store("replay");
    let config = StreamingConfig { voxel_bbox_max: [50.0, 50.0, 10.0], max_batch_wait_ms: 20, ..Default::default() };
    // The run that crashed: batches 0-5 stored, nothing committed.
    stored_by_a_killed_run(&history, 0..6);

    // The restarted run: the grid comes back from history, then every message is delivered again.
    let client = Arc::new(StreamingClient::new(config.clone()).unwrap());
    let restored = history.query_stream_history(&qadf_core_types::HistoryQuery::all()).unwrap();
    assert_eq!(client.restore(restored).unwrap(), 60);
    let offsets = Arc::new(MemoryOffsetStore::default());
    let (sink, ingest) = start_storing(&client, &history, "g", &offsets);
    sink.send((0..10).map(|b| message(good(b))).collect()).unwrap();
    wait_until("every offset is committed", || {
        offsets.load_offsets("g", "am_qadf_monitoring").unwrap().first().is_some_and(|c| c.next_offset == 10)
    });
    let report = ingest.stop().unwrap();
    assert_eq!(report.replayed, 60, "{report:?}");
    assert_eq!(client.get_stream_statistics().messages_processed, 40, "only the new samples are processed");
    assert_eq!(history.count().unwrap(), 100);

    // The same grid as one clean run over all 100 samples.
    let clean = StreamingClient::new(config).unwrap();
    for b in 0..10 {
        clean.process_stream_batch(good_samples(b..b + 1).into()).unwrap();
    }
    let digest = |c: &StreamingClient| c.voxels().grid("b1").unwrap().read(|g| g.digest("temperature"));
    assert_eq!(digest(&client), digest(&clean));
    assert_eq!(digest(&client).values, 100);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The embedded store, refusing for good every batch holding a sample with a `poison` signal
/// (as MongoDB refuses a document it cannot store): the error path of a permanent store failure;
/// while its flag is set, every write is refused as unavailable (reads still answer); its count
/// of history reads to refuse as unavailable goes down by one a read.
struct RefusingStore(Arc<EmbeddedStore>, std::sync::atomic::AtomicBool, AtomicUsize);

impl HistoryStore for RefusingStore {
    fn store_buckets(&self, buckets: &[Bucket]) -> Result<StoreReport, BackendError> {
        if self.1.load(Ordering::SeqCst) {
            return Err(BackendError::new(BackendErrorKind::Unavailable, "test", "writes are down"));
        }
        if buckets.iter().any(|b| b.key.signals.iter().any(|s| s == "poison")) {
            return Err(BackendError::new(BackendErrorKind::Rejected, "test", "document refused"));
        }
        self.0.store_buckets(buckets)
    }
    fn query_stream_history(&self, q: &HistoryQuery) -> Result<Vec<Sample>, BackendError> {
        if self.2.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            return Err(BackendError::new(BackendErrorKind::Unavailable, "test", "reads are down"));
        }
        self.0.query_stream_history(q)
    }
    fn count_samples(&self, q: &HistoryQuery) -> Result<u64, BackendError> {
        self.0.count_samples(q)
    }
    fn delete_old_data(&self, t: Timestamp) -> Result<u64, BackendError> {
        self.0.delete_old_data(t)
    }
    fn stored_buckets(&self, ids: &[String]) -> Result<Vec<bool>, BackendError> {
        self.0.stored_buckets(ids)
    }
}

const POISON: &str = r#"{"build_id":"b1","timestamp":"2026-11-18T11:06:40.000000001Z","x":1,"y":1,"z":0.1,"poison":1}"#;

/// Runs good(0), the poison message and good(1) through a consumer whose history refuses the
/// poison; returns the report, the committed position, the dead letters and the samples stored.
fn run_with_a_refusing_store(
    name: &str,
    policy: qadf_core_types::StoreFailurePolicy,
) -> (qadf_client::ConsumerReport, Option<i64>, Vec<qadf_core_types::RawMessage>, usize) {
    let (dir, inner) = fresh_store(name);
    let offsets = Arc::new(MemoryOffsetStore::default());
    let config = StreamingConfig { max_batch_wait_ms: 20, on_store_failure: policy, ..Default::default() };
    let client = Arc::new(StreamingClient::new(config).unwrap());
    let (sink, source) = in_process::channel(8, "g", offsets.clone());
    let (dl_sink, mut dl_source) = in_process::channel(8, "dlq", Arc::new(MemoryOffsetStore::default()));
    let sinks = ConsumerSinks {
        history: Some(Arc::new(RefusingStore(inner.clone(), Default::default(), Default::default()))),
        dead_letters: Some(Arc::new(DeadLetterSink::new(Arc::new(dl_sink), "am_qadf_dead_letter"))),
        ..Default::default()
    };
    let ingest = Ingest::start(&client, Box::new(source), sinks, |_| {});
    // One message a poll, so each is its own write job (a consumer that stopped refuses the rest).
    for m in [message(good(0)), message(POISON.into()), message(good(1))] {
        let _ = sink.send(vec![m]);
        std::thread::sleep(Duration::from_millis(150));
    }
    std::thread::sleep(Duration::from_millis(300));
    let report = ingest.stop().unwrap();
    let committed = offsets.load_offsets("g", "am_qadf_monitoring").unwrap().first().map(|c| c.next_offset);
    let letters = dl_source.poll(10, Duration::from_millis(300)).unwrap_or_default(); // no dead letter: its sink may be gone
    let stored = inner.count().unwrap() as usize;
    std::fs::remove_dir_all(&dir).unwrap();
    (report, committed, letters, stored)
}

#[test]
fn a_batch_the_history_refuses_goes_whole_to_the_dead_letters_before_its_position_is_committed() {
    let (report, committed, letters, stored) =
        run_with_a_refusing_store("refused", qadf_core_types::StoreFailurePolicy::DeadLetter);
    assert_eq!(report.error, None, "{report:?}");
    assert_eq!(report.store_failures, 1);
    assert_eq!(stored, 20, "the batches around it are stored");
    assert_eq!(letters.len(), 1, "the refused message, once");
    assert_eq!(letters[0].payload, POISON.as_bytes(), "with its original bytes");
    let reason = String::from_utf8_lossy(&letters[0].headers[0].1).into_owned();
    assert!(reason.contains("history refused") && reason.contains("document refused"), "{reason}");
    assert_eq!(committed, Some(3), "committed past it only once it is dead-lettered");
}

#[test]
fn with_on_store_failure_stop_nothing_from_the_refused_batch_on_is_committed() {
    let (report, committed, letters, _) = run_with_a_refusing_store("stop", qadf_core_types::StoreFailurePolicy::Stop);
    assert!(report.error.as_deref().is_some_and(|e| e.contains("history refused")), "{report:?}");
    assert!(letters.is_empty(), "{letters:?}");
    assert!(committed.is_none_or(|c| c <= 1), "committed {committed:?}: past the refused message at offset 1");
}

#[test]
fn replay_skipping_goes_on_past_a_sample_that_was_never_stored() {
    let (dir, history) = fresh_store("replay-gap");
    let config = StreamingConfig { voxel_bbox_max: [50.0, 50.0, 10.0], max_batch_wait_ms: 20, ..Default::default() };
    stored_by_a_killed_run(&history, 0..6);
    let client = Arc::new(StreamingClient::new(config).unwrap());
    let offsets = Arc::new(MemoryOffsetStore::default());
    let (sink, ingest) = start_storing(&client, &history, "g", &offsets);
    // The replay starts with a sample the killed run refused (outside the grid), so never stored.
    let mut messages = vec![message(r#"{"build_id":"b1","x":900,"y":1,"z":0.1,"temperature":1}"#.into())];
    messages.extend((0..10).map(|b| message(good(b))));
    sink.send(messages).unwrap();
    wait_until("every offset is committed", || {
        offsets.load_offsets("g", "am_qadf_monitoring").unwrap().first().is_some_and(|c| c.next_offset == 11)
    });
    let report = ingest.stop().unwrap();
    assert_eq!(report.replayed, 60, "{report:?}");
    assert_eq!(client.get_stream_statistics().messages_processed, 40, "only the new samples are processed");
    assert_eq!(client.voxels().grid("b1").unwrap().read(|g| g.digest("temperature")).values, 40);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_drop_batch_rule_publishes_its_alerts_dead_letters_the_batch_naming_the_rule_and_stores_nothing() {
    let (dir, history) = fresh_store("drop-rule");
    let client =
        Arc::new(StreamingClient::new(StreamingConfig { max_batch_wait_ms: 20, ..Default::default() }).unwrap());
    let rules = "[[rule]]\nname = \"too_hot\"\nkind = \"range\"\nsignal = \"temperature\"\nunit = \"K\"\ncritical = [0.0, 2000.0]\naction = \"drop_batch\"\n";
    let rules = qadf_core_types::rules::RulesConfig::from_toml_str(rules, "test").unwrap().compile(100, 1000).unwrap();
    client.set_rules(rules).unwrap();
    let offsets = Arc::new(MemoryOffsetStore::default());
    let (sink, source) = in_process::channel(8, "g", offsets.clone());
    let (dl_sink, mut dl_source) = in_process::channel(8, "dlq", Arc::new(MemoryOffsetStore::default()));
    let (alert_sink, mut alert_source) = in_process::channel(8, "alerts", Arc::new(MemoryOffsetStore::default()));
    let sinks = ConsumerSinks {
        history: Some(history.clone()),
        dead_letters: Some(Arc::new(DeadLetterSink::new(Arc::new(dl_sink), "am_qadf_dead_letter"))),
        alerts: Some(Arc::new(AlertSink::new(Arc::new(alert_sink), "am_qadf_alerts"))),
        notices: None,
    };
    let ingest = Ingest::start(&client, Box::new(source), sinks, |_| {});
    sink.send(vec![reading(0, 1, 2300.0)]).unwrap();
    wait_until("the refused batch is committed", || {
        offsets.load_offsets("g", "am_qadf_monitoring").unwrap().first().is_some_and(|c| c.next_offset == 1)
    });
    ingest.stop().unwrap();
    assert_eq!(history.count().unwrap(), 0, "a dropped batch is not stored");
    let letters = dl_source.poll(10, Duration::from_millis(500)).unwrap();
    let reason = letters[0].headers.iter().find(|(k, _)| k == "qadf.error").map(|(_, v)| String::from_utf8_lossy(v));
    assert_eq!(reason.as_deref(), Some("batch refused: batch dropped by checkpoint `too_hot`"));
    let alerts = alert_source.poll(10, Duration::from_millis(500)).unwrap();
    let alert: qadf_core_types::Alert = serde_json::from_slice(&alerts[0].payload).unwrap();
    assert_eq!((alert.checkpoint.as_str(), alert.value, alert.unit.as_deref()), ("too_hot", 2300.0, Some("K")));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An in-process source that behaves as a consumer-group member: assigned partition 0 at the
/// first ask, then, once `revoke_after` messages are delivered, revoking it (once); it records
/// what was committed when the loop released the partition.
struct GroupMember {
    inner: in_process::InProcessSource,
    delivered: i64,
    revoke_after: i64,
    assigned: bool,
    revoking: bool,
    committed: i64,
    /// (delivered, committed) at the release.
    released: Arc<parking_lot::Mutex<Option<(i64, i64)>>>,
}

impl GroupMember {
    /// A member over `inner` that revokes its partition after `revoke_after` messages.
    fn new(inner: in_process::InProcessSource, revoke_after: i64) -> GroupMember {
        GroupMember {
            inner,
            delivered: 0,
            revoke_after,
            assigned: false,
            revoking: false,
            committed: 0,
            released: Arc::default(),
        }
    }
}

impl MessageSource for GroupMember {
    fn poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<qadf_core_types::RawMessage>, BackendError> {
        // Like a group member: nothing before the first assignment, nothing after the release.
        if !self.assigned || self.revoking || self.released.lock().is_some() {
            std::thread::sleep(timeout);
            return Ok(Vec::new());
        }
        let got = self.inner.poll(max.min((self.revoke_after - self.delivered).max(0) as usize), timeout)?;
        self.delivered += got.len() as i64;
        Ok(got)
    }

    fn commit(&mut self, positions: &[qadf_core_types::LogPosition]) -> Result<(), BackendError> {
        self.committed = positions.iter().map(|p| p.next_offset).max().unwrap_or(self.committed);
        self.inner.commit(positions)
    }

    fn rebalance(&mut self) -> Option<qadf_core_types::Rebalance> {
        let partition = vec![("am_qadf_monitoring".to_owned(), 0)];
        if !self.assigned {
            self.assigned = true;
            return Some(qadf_core_types::Rebalance::Assigned(partition));
        }
        if self.delivered >= self.revoke_after && !self.revoking && self.released.lock().is_none() {
            self.revoking = true;
            return Some(qadf_core_types::Rebalance::Revoking(partition));
        }
        None
    }

    fn rebalance_pending(&self) -> bool {
        (!self.assigned || self.delivered >= self.revoke_after) && !self.revoking && self.released.lock().is_none()
    }

    fn release(&mut self) {
        self.revoking = false;
        *self.released.lock() = Some((self.delivered, self.committed));
    }
}

/// What the member recorded at its release: (messages delivered, committed offset).
type Released = Arc<parking_lot::Mutex<Option<(i64, i64)>>>;

/// A client of `config` consuming, as a group member that revokes its partition after five
/// messages, messages `batches` of [`good`] into `history`; returns once the partition is released.
fn member_revoking_after_five(
    config: StreamingConfig,
    history: Arc<dyn HistoryStore>,
    batches: std::ops::Range<usize>,
) -> (Arc<StreamingClient>, Ingest, Released, in_process::InProcessSink) {
    let client = Arc::new(StreamingClient::new(config).unwrap());
    let (sink, source) = in_process::channel(64, "g", Arc::new(MemoryOffsetStore::default()));
    let member = GroupMember::new(source, 5);
    let released = member.released.clone();
    let sinks = ConsumerSinks { history: Some(history), ..Default::default() };
    let ingest = Ingest::start(&client, Box::new(member), sinks, |_| {});
    for b in batches {
        sink.send(vec![message(good(b))]).unwrap();
    }
    wait_until("the partition is released", || released.lock().is_some());
    (client, ingest, released, sink)
}

#[test]
fn a_group_member_rebuilds_a_gained_build_from_history_and_commits_everything_before_releasing() {
    let (dir, history) = fresh_store("group-member");
    // Another member stored batches 0..5 of build b1 (and committed them) before this one got the partition.
    stored_by_a_killed_run(&history, 0..5);
    let config = StreamingConfig {
        voxel_bbox_max: [50.0, 50.0, 10.0],
        voxel_resolution: 0.5,
        max_batch_wait_ms: 20,
        // Commit only when forced, so what the release finds committed is the revocation's doing.
        auto_commit_interval_ms: 3_600_000,
        ..Default::default()
    };
    let (client, ingest, released, _sink) = member_revoking_after_five(config, history.clone(), 5..10);
    let report = ingest.stop().unwrap();
    assert_eq!(*released.lock(), Some((5, 5)), "everything delivered was committed before the release");
    assert_eq!(report.builds_restored, 1, "{report:?}");
    assert_eq!(report.rebalances, 2, "one assignment, one revocation: {report:?}");
    let grid = client.voxels().grid("b1").expect("b1's grid");
    let values = grid.read(|g| g.digest("temperature").values);
    assert_eq!(values, 100, "the 50 stored samples from the history plus the 50 consumed");
    assert_eq!(history.query_stream_history(&HistoryQuery::all()).unwrap().len(), 100);
    drop(client);
    let _ = std::fs::remove_dir_all(dir);
}

/// Message `b` of a drifting build b2: 10 temperatures around 1900 K, 8 K higher from message 5 on.
fn drifting(b: usize) -> String {
    let samples: Vec<String> = (0..10)
        .map(|i| {
            let n = b * 10 + i;
            let t = Timestamp::from_nanos(1_795_000_000_000_000_000i64 + n as i64 * 10_000);
            let noise = (((n as u64 * 2_654_435_761) >> 7) % 11) as f64 * 0.5 - 2.5;
            let temperature = 1900.0 + noise + if b >= 5 { 8.0 } else { 0.0 };
            format!(r#"{{"build_id":"b2","source_id":"ispm-0","layer":0,"timestamp":"{t}","position":[10.0,{},0.1],"signals":{{"temperature":{temperature}}}}}"#, 10.0 + i as f64 * 0.1)
        })
        .collect();
    format!("[{}]", samples.join(","))
}

/// A client judging temperature by three rules that keep state: a window mean, a z-score and an EWMA chart.
fn client_with_stateful_rules() -> Arc<StreamingClient> {
    let config = StreamingConfig {
        voxel_bbox_max: [50.0, 50.0, 10.0],
        voxel_resolution: 0.5,
        max_batch_wait_ms: 20,
        alert_dedup_interval_ms: 0, // every alert, for the comparison
        ..Default::default()
    };
    let client = Arc::new(StreamingClient::new(config).unwrap());
    let rules = r#"
[[rule]]
name = "mean_30"
kind = "window"
signal = "temperature"
window = 30
warning = [1895.0, 1905.0]
[[rule]]
name = "z_20"
kind = "zscore"
signal = "temperature"
window = 20
k = 3.0
[[rule]]
name = "ewma"
kind = "spc"
signal = "temperature"
chart = "ewma"
warmup = 20
"#;
    let rules = qadf_core_types::rules::RulesConfig::from_toml_str(rules, "test").unwrap().compile(100, 1000).unwrap();
    client.set_rules(rules).unwrap();
    client
}

/// Sends messages `batches` of [`drifting`] one at a time (each its own batch), each after the
/// previous was processed; returns every alert raised, as (rule, time, value).
fn alerts_of(
    client: &Arc<StreamingClient>,
    source: Box<dyn MessageSource>,
    sink: &in_process::InProcessSink,
    history: &Arc<EmbeddedStore>,
    batches: std::ops::Range<usize>,
) -> Vec<(String, i64, f64)> {
    let raised = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let processed = Arc::new(AtomicUsize::new(0));
    let (into, count) = (raised.clone(), processed.clone());
    let sinks = ConsumerSinks { history: Some(history.clone()), ..Default::default() };
    let ingest = Ingest::start(client, source, sinks, move |r| {
        into.lock().extend(r.alerts.iter().map(|a| (a.checkpoint.clone(), a.timestamp.as_nanos(), a.value)));
        count.fetch_add(1, Ordering::SeqCst);
    });
    for (k, b) in batches.enumerate() {
        sink.send(vec![message(drifting(b))]).unwrap();
        wait_until("the message is processed", || processed.load(Ordering::SeqCst) > k);
    }
    ingest.stop().unwrap();
    let mut alerts = raised.lock().clone();
    alerts.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    alerts
}

#[test]
fn a_gained_build_is_judged_by_windows_and_charts_rebuilt_from_history_as_an_uninterrupted_run_would() {
    // The reference: one member consumes all ten messages.
    let (dir, history) = fresh_store("rules-clean");
    let client = client_with_stateful_rules();
    let (sink, source) = in_process::channel(64, "g", Arc::new(MemoryOffsetStore::default()));
    let clean = alerts_of(&client, Box::new(source), &sink, &history, 0..10);
    let start_of_5 = 1_795_000_000_000_000_000i64 + 50 * 10_000;
    let clean_after: Vec<_> = clean.into_iter().filter(|a| a.1 >= start_of_5).collect();
    for rule in ["mean_30", "z_20", "ewma"] {
        assert!(clean_after.iter().any(|a| a.0 == rule), "the drift trips {rule}: {clean_after:?}");
    }
    let _ = std::fs::remove_dir_all(dir);

    // Another member stored messages 0..5; this one is given the partition and consumes 5..10.
    let (dir, history) = fresh_store("rules-gained");
    for b in 0..5 {
        let codec = qadf_core_types::Codec::new(qadf_core_types::Encoding::Json);
        history.store_samples(&codec.decode(drifting(b).as_bytes()).unwrap().samples).unwrap();
    }
    let client = client_with_stateful_rules();
    let (sink, source) = in_process::channel(64, "g", Arc::new(MemoryOffsetStore::default()));
    let member = GroupMember::new(source, 5);
    let gained = alerts_of(&client, Box::new(member), &sink, &history, 5..10);
    assert_eq!(gained, clean_after, "the same alerts as the uninterrupted run, rule by rule");
    let _ = std::fs::remove_dir_all(dir);

    // Without the history the same five messages are judged differently (the check above can fail).
    let (dir, history) = fresh_store("rules-fresh");
    let client = client_with_stateful_rules();
    let (sink, source) = in_process::channel(64, "g", Arc::new(MemoryOffsetStore::default()));
    let fresh = alerts_of(&client, Box::new(source), &sink, &history, 5..10);
    assert_ne!(fresh, clean_after);
    let _ = std::fs::remove_dir_all(dir);
}

/// A store over `inner` whose writes are down, and a configuration draining a revocation 300 ms.
fn writes_down_and_a_short_drain(inner: &Arc<EmbeddedStore>) -> (Arc<RefusingStore>, StreamingConfig) {
    let history = Arc::new(RefusingStore(inner.clone(), std::sync::atomic::AtomicBool::new(true), Default::default()));
    let config = StreamingConfig {
        voxel_bbox_max: [50.0, 50.0, 10.0],
        voxel_resolution: 0.5,
        max_batch_wait_ms: 20,
        drain_timeout_ms: 300,
        ..Default::default()
    };
    (history, config)
}

#[test]
fn a_revocation_that_outlasts_the_drain_gives_its_writes_up_and_stores_nothing_after_the_release() {
    let (dir, inner) = fresh_store("fence");
    let (history, config) = writes_down_and_a_short_drain(&inner);
    let (client, ingest, released, _sink) = member_revoking_after_five(config, history.clone(), 0..5);
    assert_eq!(*released.lock(), Some((5, 0)), "released after the drain timeout with nothing committed");
    // The store comes back: without the fence the writer's retries would store the five now.
    history.1.store(false, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(inner.count().unwrap(), 0, "nothing of the released partition stored after the release");
    let report = ingest.stop().unwrap();
    // One write job per poll: however the five messages were polled, every job was given up.
    assert!(report.writes_abandoned >= 1 && report.writes_abandoned <= report.polls, "{report:?}");
    assert_eq!(inner.count().unwrap(), 0, "nor at the stop");
    assert!(client.voxels().grid("b1").is_none(), "the build's grid, holding samples never stored, is forgotten");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_history_that_is_down_when_a_gained_build_is_rebuilt_holds_the_member_until_it_returns() {
    let (dir, inner) = fresh_store("rebuild-down");
    stored_by_a_killed_run(&inner, 0..5);
    // The first three reads of the history fail as unavailable: retried, not fatal.
    let history = Arc::new(RefusingStore(inner.clone(), Default::default(), AtomicUsize::new(3)));
    let config = StreamingConfig {
        voxel_bbox_max: [50.0, 50.0, 10.0],
        voxel_resolution: 0.5,
        max_batch_wait_ms: 20,
        ..Default::default()
    };
    let (client, ingest, _released, _sink) = member_revoking_after_five(config, history, 5..10);
    let report = ingest.stop().unwrap();
    assert_eq!(report.error, None, "{report:?}");
    assert_eq!(report.builds_restored, 1, "{report:?}");
    assert!(report.retries >= 3, "{report:?}");
    let values = client.voxels().grid("b1").expect("b1's grid").read(|g| g.digest("temperature").values);
    assert_eq!(values, 100, "the 50 stored samples from the history plus the 50 consumed");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_member_held_by_a_full_writer_queue_gives_way_to_the_revocation() {
    let (dir, inner) = fresh_store("parked");
    let (history, config) = writes_down_and_a_short_drain(&inner);
    let client = Arc::new(StreamingClient::new(config).unwrap());
    let (sink, source) = in_process::channel(64, "g", Arc::new(MemoryOffsetStore::default()));
    // Ten messages, one a poll: one write under way (the store is down), eight queued (the
    // writer's limit), the tenth held back when the revocation comes.
    let member = GroupMember::new(source, 10);
    let released = member.released.clone();
    let sinks = ConsumerSinks { history: Some(history.clone()), ..Default::default() };
    let ingest = Ingest::start(&client, Box::new(member), sinks, |_| {});
    for b in 0..10 {
        sink.send(vec![message(good(b))]).unwrap();
        std::thread::sleep(Duration::from_millis(60));
    }
    wait_until("the partition is released", || released.lock().is_some());
    assert_eq!(*released.lock(), Some((10, 0)), "released with nothing committed");
    history.1.store(false, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(1000));
    let report = ingest.stop().unwrap();
    assert_eq!(inner.count().unwrap(), 0, "nothing of the released partition stored after the release");
    assert_eq!(report.writes_abandoned, report.polls, "every job given up, the held one too: {report:?}");
    assert!(report.polls >= 10, "one poll a message: {report:?}");
    drop(sink);
    let _ = std::fs::remove_dir_all(dir);
}
