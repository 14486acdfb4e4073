//! The broker goes away and comes back (its own test binary: cargo runs binaries one at a time, so
//! restarting the shared broker cannot disturb other tests). Needs `cargo xtask services up kafka`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use qadf_core_types::{MessageSink, OffsetReset, OutgoingMessage};
use qadf_integration_tests::{answers, wait_until, xtask_services};
use qadf_kafka_io::*;

fn addr() -> String {
    std::env::var("QADF_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:19092".to_owned())
}

/// Stops the broker and starts it again through xtask, running `between` while it is down.
fn restart_broker(between: impl FnOnce()) {
    xtask_services("down", "kafka");
    assert!(!answers(&addr()));
    between();
    xtask_services("up", "kafka");
    wait_until("the broker is back", || answers(&addr()));
}

fn message(topic: &str, i: usize) -> OutgoingMessage {
    OutgoingMessage {
        topic: topic.into(),
        partition: Some(0),
        key: None,
        payload: i.to_string().into_bytes(),
        headers: vec![],
    }
}

#[test]
fn consumer_and_producer_survive_a_broker_restart() {
    assert!(answers(&addr()), "no broker at {}: start it with `cargo xtask services up kafka`", addr());
    let topic = format!("restart_{}", std::process::id());
    let producer = KafkaProducer::with_timeout(&[addr()], Duration::from_secs(1)).unwrap();
    producer.create_topic(&topic, 1).unwrap();
    producer.send((0..50).map(|i| message(&topic, i)).collect()).unwrap();
    let config = ConsumerConfig {
        bootstrap: vec![addr()],
        topics: vec![topic.clone()],
        group: "g".into(),
        assignment: Assignment::All,
        auto_offset_reset: OffsetReset::Earliest,
        fetch_max_bytes: 1 << 20,
        request_timeout: Duration::from_secs(2),
        security: Default::default(),
    };
    let mut consumer = KafkaConsumer::new(config, Arc::new(MemoryOffsetStore::default())).unwrap();
    let mut first = Vec::new();
    while first.len() < 50 {
        first.extend(consumer.poll_messages(50, Duration::from_millis(200)).unwrap());
    }
    consumer.commit(&positions_after(&first)).unwrap();

    let mut handed_back = Vec::new();
    restart_broker(|| {
        // While the broker is down: sends fail and hand the messages back; polls return nothing.
        let err = producer.send((50..60).map(|i| message(&topic, i)).collect()).unwrap_err();
        handed_back = err.into_inner();
        assert!(consumer.poll_messages(10, Duration::from_millis(500)).unwrap().is_empty());
    });
    assert_eq!(handed_back.len(), 10, "nothing unacknowledged is lost: the messages come back");

    // The in-memory broker lost the topic: recreate it and send the handed-back messages again.
    producer.create_topic(&topic, 1).unwrap();
    producer.send(handed_back).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut after = Vec::new();
    while after.len() < 10 && Instant::now() < deadline {
        after.extend(consumer.poll_messages(10, Duration::from_millis(200)).unwrap());
    }
    let payloads: Vec<String> = after.iter().map(|m| String::from_utf8(m.payload.clone()).unwrap()).collect();
    assert_eq!(payloads, (50..60).map(|i| i.to_string()).collect::<Vec<_>>());
    let stats = consumer.statistics();
    assert!(stats.reconnects >= 1, "{stats:?}");
    assert!(stats.offset_resets >= 1, "the position beyond the new log was reset: {stats:?}");
    assert!(producer.statistics().reconnects >= 1);
}
