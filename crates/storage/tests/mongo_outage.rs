//! MongoDB stopped mid-run: writes wait (bounded) and complete once it returns, nothing lost.
//! Its own test binary (cargo runs binaries one at a time), as it restarts the shared server.

use std::sync::Arc;
use std::time::Duration;

use qadf_core_types::{HistoryStore, LogPosition, OffsetStore, Point3, Sample, StreamingConfig, Timestamp};
use qadf_integration_tests::{wait_until, xtask_services};
use qadf_storage::{MongoStore, QueueLimit, WriteJob, spawn_writer};

fn addr() -> String {
    std::env::var("QADF_TEST_MONGODB").unwrap_or_else(|_| "127.0.0.1:17017".to_owned())
}

fn answers() -> bool {
    qadf_integration_tests::answers(&addr())
}

fn job(n: i64) -> WriteJob {
    let samples = (0..10)
        .map(|i| Sample::new(Timestamp::from_nanos(n * 10 + i), Point3::origin(), [("t", 1.0)].into_iter().collect()))
        .collect();
    WriteJob::whole(samples, vec![LogPosition { topic: "t".into(), partition: 0, next_offset: n + 1 }])
}

#[test]
fn writes_wait_for_mongodb_and_complete_when_it_returns() {
    assert!(answers(), "no MongoDB-protocol server at {}: start it with `cargo xtask services up mongodb`", addr());
    let config = StreamingConfig {
        mongodb_uri: format!("mongodb://{}", addr()),
        mongodb_database: format!("outage_{}", std::process::id()),
        ..Default::default()
    };
    let store = Arc::new(MongoStore::connect(&config, Duration::from_secs(1)).unwrap());
    let writer = spawn_writer(store.clone(), Some((store.clone(), "g".into())), QueueLimit::jobs(4));
    writer.submit(job(0)).unwrap();
    assert!(writer.recv_done(Duration::from_secs(10)).unwrap().result.is_ok());

    xtask_services("down", "mongodb");
    assert!(!answers());
    for n in 1..4 {
        writer.submit(job(n)).unwrap(); // queued: the writer is retrying, memory stays bounded
    }
    std::thread::sleep(Duration::from_secs(2));
    assert!(writer.statistics().retries.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    assert!(writer.recv_done(Duration::from_millis(10)).is_none(), "nothing completes while it is down");

    xtask_services("up", "mongodb");
    wait_until("MongoDB is back", answers);

    for _ in 1..4 {
        let done = writer.recv_done(Duration::from_secs(60)).expect("the queued batches complete");
        assert!(done.result.is_ok(), "{:?}", done.result);
    }
    let q = qadf_core_types::HistoryQuery {
        start: Timestamp::EPOCH,
        end: Timestamp::from_nanos(1_000),
        build_id: None,
        source_id: None,
        layer: None,
        tags: Vec::new(),
        skip: 0,
        limit: usize::MAX,
    };
    assert_eq!(store.query_stream_history(&q).unwrap().len(), 40, "every sample of every batch, once");
    assert_eq!(store.load_offsets("g", "t").unwrap()[0].next_offset, 4);
    writer.finish();
    store.drop_all().unwrap();
}
