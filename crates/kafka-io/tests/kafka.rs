//! Against the real Kafka-protocol broker (Tansu) started by `cargo xtask services up`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use qadf_core_types::{
    Codec, DeadLetter, Encoding, MessageSink, OffsetReset, OffsetStore, OutgoingMessage, RawMessage,
};
use qadf_integration_tests::run_python;
use qadf_kafka_io::*;

fn broker() -> String {
    let addr = std::env::var("QADF_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:19092".to_owned());
    if std::net::TcpStream::connect_timeout(&addr.parse().expect("host:port"), Duration::from_secs(2)).is_err() {
        panic!("no Kafka-protocol broker at {addr}: start it with `cargo xtask services up kafka`");
    }
    addr
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}_{}_{nanos}", std::process::id())
}

fn producer() -> KafkaProducer {
    KafkaProducer::new(&[broker()]).unwrap()
}

fn message(topic: &str, key: Option<&str>, payload: String) -> OutgoingMessage {
    OutgoingMessage {
        topic: topic.into(),
        partition: None,
        key: key.map(|k| k.as_bytes().to_vec()),
        payload: payload.into_bytes(),
        headers: vec![],
    }
}

fn config(topic: &str, group: &str, assignment: Assignment) -> ConsumerConfig {
    ConsumerConfig {
        bootstrap: vec![broker()],
        topics: vec![topic.to_owned()],
        group: group.to_owned(),
        assignment,
        auto_offset_reset: OffsetReset::Earliest,
        fetch_max_bytes: 1 << 20,
        request_timeout: Duration::from_secs(5),
        security: Default::default(),
    }
}

/// A new one-partition topic holding `payloads` (unkeyed, in order).
fn topic_holding(prefix: &str, payloads: impl IntoIterator<Item = String>) -> String {
    let topic = unique(prefix);
    let p = producer();
    p.create_topic(&topic, 1).unwrap();
    p.send(payloads.into_iter().map(|m| message(&topic, None, m)).collect()).unwrap();
    topic
}

/// Polls until `n` messages arrived or 20 s passed.
fn consume(consumer: &mut KafkaConsumer, n: usize) -> Vec<RawMessage> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut out = Vec::new();
    while out.len() < n && Instant::now() < deadline {
        out.extend(consumer.poll_messages(n - out.len(), Duration::from_millis(200)).unwrap());
    }
    out
}

fn text(m: &RawMessage) -> String {
    String::from_utf8(m.payload.clone()).unwrap()
}

#[test]
fn produce_n_then_consume_n_in_order_per_partition() {
    let topic = unique("order");
    let p = producer();
    p.create_topic(&topic, 3).unwrap();
    let keys = ["build-a", "build-b", "build-c", "build-d", "build-e"];
    let messages: Vec<OutgoingMessage> =
        (0..300).map(|i| message(&topic, Some(keys[i % 5]), format!("{}:{i}", keys[i % 5]))).collect();
    p.send(messages).unwrap();
    assert_eq!(p.statistics().acknowledged, 300);

    let mut c =
        KafkaConsumer::new(config(&topic, "g", Assignment::All), Arc::new(MemoryOffsetStore::default())).unwrap();
    let got = consume(&mut c, 300);
    assert_eq!(got.len(), 300);
    let mut per_key: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut partition_of_key: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
    for m in &got {
        let t = text(m);
        let (key, i) = t.split_once(':').unwrap();
        per_key.entry(key.into()).or_default().push(i.parse().unwrap());
        partition_of_key.entry(key.into()).or_default().insert(m.origin.partition);
        assert_eq!(m.origin.partition, partition_for_key(key.as_bytes(), 3), "Kafka's key partitioning");
    }
    for (key, order) in &per_key {
        assert_eq!(order.len(), 60);
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{key} out of order: {order:?}");
        assert_eq!(partition_of_key[key].len(), 1);
    }
    assert!(c.lag().iter().all(|l| l.lag == 0 && l.high_watermark.is_some()), "{:?}", c.lag());
}

#[test]
fn shared_statistics_show_delivered_messages_and_the_lag_behind_the_broker() {
    let topic = topic_holding("lag", (0..50).map(|i| format!("m{i}")));
    let mut c =
        KafkaConsumer::new(config(&topic, "g", Assignment::All), Arc::new(MemoryOffsetStore::default())).unwrap();
    let shared = c.shared_statistics();
    assert_eq!(consume(&mut c, 10).len(), 10);
    // Read from another thread, as `qadf-stream run` prints it while the consumer runs.
    let seen = std::thread::spawn(move || shared.get()).join().unwrap();
    assert_eq!((seen.messages, seen.lag), (10, 40), "{seen:?}");
    assert_eq!(c.statistics().lag, 40);
}

#[test]
fn a_poll_holds_about_fetch_max_bytes_of_payload_however_many_messages_it_may_take() {
    let topic = topic_holding("poll-bytes", (0..10).map(|i| format!("{i}:{}", "x".repeat(300_000))));
    let mut c =
        KafkaConsumer::new(config(&topic, "g", Assignment::All), Arc::new(MemoryOffsetStore::default())).unwrap();
    let first = c.poll_messages(100, Duration::from_secs(5)).unwrap();
    // 1 MiB: the fourth message of 300 kB crosses it, so the poll stops there.
    assert_eq!(first.len(), 4, "a poll stops once it holds fetch_max_bytes");
    let mut all = first;
    all.extend(consume(&mut c, 6));
    let order: Vec<usize> = all.iter().map(|m| text(m).split(':').next().unwrap().parse().unwrap()).collect();
    assert_eq!(order, (0..10).collect::<Vec<_>>(), "the rest follows in order, nothing skipped");
}

#[test]
fn a_consumer_dropped_without_commit_is_redelivered_from_the_last_commit() {
    let topic = topic_holding("redeliver", (0..100).map(|i| i.to_string()));
    let offsets: Arc<dyn OffsetStore> = Arc::new(MemoryOffsetStore::default());

    let mut first = KafkaConsumer::new(config(&topic, "g", Assignment::All), offsets.clone()).unwrap();
    let got = consume(&mut first, 60);
    assert_eq!(got.len(), 60);
    first.commit(&positions_after(&got[..30])).unwrap(); // the sinks stored only the first 30
    drop(first); // a crash: 30..60 were delivered but never committed

    let mut second = KafkaConsumer::new(config(&topic, "g", Assignment::All), offsets.clone()).unwrap();
    let again = consume(&mut second, 70);
    let offsets_seen: Vec<i64> = again.iter().map(|m| m.origin.offset).collect();
    assert_eq!(offsets_seen, (30..100).collect::<Vec<_>>(), "resumes at the committed offset, nothing missing");
    second.commit(&positions_after(&again)).unwrap();
    drop(second);
    assert_eq!(offsets.load_offsets("g", &topic).unwrap()[0].next_offset, 100);
}

#[test]
fn pause_resume_and_seek() {
    let topic = unique("pause");
    let p = producer();
    p.create_topic(&topic, 2).unwrap();
    let to = |partition: i32, n: usize| -> Vec<OutgoingMessage> {
        (0..n)
            .map(|i| OutgoingMessage {
                partition: Some(partition),
                ..message(&topic, None, format!("{partition}:{i}"))
            })
            .collect()
    };
    p.send(to(0, 10)).unwrap();
    p.send(to(1, 10)).unwrap();
    let mut c =
        KafkaConsumer::new(config(&topic, "g", Assignment::All), Arc::new(MemoryOffsetStore::default())).unwrap();
    c.pause(&topic, 0);
    let got = consume(&mut c, 10);
    assert!(got.iter().all(|m| m.origin.partition == 1) && got.len() == 10);
    assert!(c.poll_messages(10, Duration::from_millis(300)).unwrap().is_empty(), "paused partition stays quiet");
    c.resume(&topic, 0);
    let got = consume(&mut c, 10);
    assert_eq!(
        got.iter().map(|m| (m.origin.partition, m.origin.offset)).collect::<Vec<_>>(),
        (0..10).map(|o| (0, o)).collect::<Vec<_>>()
    );

    c.seek(&topic, 1, SeekTo::Offset(7)).unwrap();
    assert_eq!(consume(&mut c, 3).iter().map(text).collect::<Vec<_>>(), ["1:7", "1:8", "1:9"]);
    c.seek(&topic, 0, SeekTo::Beginning).unwrap();
    assert_eq!(consume(&mut c, 10).len(), 10);
    c.seek(&topic, 0, SeekTo::End).unwrap();
    assert!(c.poll_messages(5, Duration::from_millis(300)).unwrap().is_empty());
    assert!(c.seek(&topic, 9, SeekTo::Beginning).is_err(), "an unassigned partition is an error");
}

#[test]
fn undecodable_messages_go_to_the_dead_letter_topic_with_their_reason() {
    let (topic, dlq) = (unique("dl_in"), unique("dl_out"));
    let p = Arc::new(producer());
    p.create_topic(&topic, 1).unwrap();
    p.create_topic(&dlq, 1).unwrap();
    let payloads: Vec<Vec<u8>> =
        vec![br#"{"value": 1}"#.to_vec(), b"{broken".to_vec(), vec![0xff, 0xfe, 0xfd], br#"{"value": 2}"#.to_vec()];
    p.send(
        payloads
            .iter()
            .map(|b| OutgoingMessage { payload: b.clone(), ..message(&topic, None, String::new()) })
            .collect(),
    )
    .unwrap();

    let mut c =
        KafkaConsumer::new(config(&topic, "g", Assignment::All), Arc::new(MemoryOffsetStore::default())).unwrap();
    let codec = Codec::new(Encoding::Json);
    let mut good = 0;
    let mut letters = Vec::new();
    for m in consume(&mut c, 4) {
        match codec.decode(&m.payload) {
            Ok(b) => good += b.len(),
            Err(e) => letters.push(DeadLetter {
                reason: e.to_string(),
                origin: Some(m.origin.clone()),
                sample_index: None,
                payload: m.payload.clone(),
            }),
        }
    }
    assert_eq!((good, letters.len()), (2, 2));
    let sink = DeadLetterSink::new(p.clone(), &dlq);
    sink.send(&letters).unwrap();
    assert_eq!(sink.sent(), 2);

    let mut d = KafkaConsumer::new(config(&dlq, "g", Assignment::All), Arc::new(MemoryOffsetStore::default())).unwrap();
    let dead = consume(&mut d, 2);
    assert_eq!(dead.iter().map(|m| m.payload.clone()).collect::<Vec<_>>(), [payloads[1].clone(), payloads[2].clone()]);
    let header = |m: &RawMessage, name: &str| {
        m.headers.iter().find(|(n, _)| n == name).map(|(_, v)| String::from_utf8_lossy(v).into_owned()).unwrap()
    };
    assert!(header(&dead[0], REASON_HEADER).contains("invalid JSON"));
    assert!(header(&dead[1], REASON_HEADER).contains("UTF-8"));
    assert_eq!(header(&dead[1], ORIGIN_HEADER), format!("{topic}/0/2"));
}

#[test]
fn two_instances_share_four_partitions_without_overlap() {
    let topic = unique("split");
    let p = producer();
    p.create_topic(&topic, 4).unwrap();
    p.send((0..400).map(|i| message(&topic, None, i.to_string())).collect()).unwrap();
    let store = Arc::new(MemoryOffsetStore::default());
    let mut seen = Vec::new();
    for instance in 0..2 {
        let mut c =
            KafkaConsumer::new(config(&topic, "g", Assignment::InstanceOf { instance, instances: 2 }), store.clone())
                .unwrap();
        let parts: Vec<i32> = c.assignment().into_iter().map(|(_, p)| p).collect();
        assert_eq!(parts, if instance == 0 { vec![0, 2] } else { vec![1, 3] });
        let got = consume(&mut c, 200);
        assert!(got.iter().all(|m| parts.contains(&m.origin.partition)));
        seen.extend(got.iter().map(text));
        assert!(
            c.poll_messages(10, Duration::from_millis(200)).unwrap().is_empty(),
            "instance {instance} got more than its share"
        );
    }
    let unique_payloads: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!((seen.len(), unique_payloads.len()), (400, 400), "union is everything, no overlap");
}

#[test]
fn a_caught_up_partition_does_not_hold_back_records_buffered_from_another() {
    // Regression (found by the soak scenario): with partition 0 full and partition 1 empty, every
    // small poll used to wait `max_wait` on partition 1 before serving partition 0's buffer.
    let topic = unique("buffered");
    let p = producer();
    p.create_topic(&topic, 2).unwrap();
    let messages: Vec<OutgoingMessage> =
        (0..200).map(|i| OutgoingMessage { partition: Some(0), ..message(&topic, None, format!("m{i}")) }).collect();
    p.send(messages).unwrap();
    let mut consumer =
        KafkaConsumer::new(config(&topic, "g", Assignment::All), Arc::new(MemoryOffsetStore::default())).unwrap();
    let got = consume(&mut consumer, 1); // the first fetch of each partition may wait
    let waited_at_start = consumer.statistics().waiting_fetches;
    let mut delivered = got.len();
    while delivered < 200 {
        let batch = consumer.poll_messages(5, Duration::from_secs(2)).unwrap();
        assert!(!batch.is_empty(), "records are at hand, so a poll returns some");
        delivered += batch.len();
    }
    let waited = consumer.statistics().waiting_fetches - waited_at_start;
    assert!(waited <= 1, "{waited} fetches waited for data while records were buffered or behind");
}

#[test]
fn instances_starting_together_may_both_create_a_topic() {
    // Regression: two `qadf-stream run` instances creating the dead-letter topic at the same time;
    // the one that lost the race used to fail with TopicAlreadyExists.
    for _ in 0..3 {
        let topic = unique("race");
        let results: Vec<Result<(), KafkaError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let topic = topic.clone();
                    scope.spawn(move || producer().create_topic(&topic, 2))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for r in results {
            r.unwrap();
        }
    }
}

#[test]
fn latest_reset_skips_what_was_there_before_start() {
    let topic = topic_holding("latest", (0..5).map(|i| format!("old{i}")));
    let mut cfg = config(&topic, "g", Assignment::All);
    cfg.auto_offset_reset = OffsetReset::Latest;
    let mut c = KafkaConsumer::new(cfg, Arc::new(MemoryOffsetStore::default())).unwrap();
    producer().send(vec![message(&topic, None, "new".into())]).unwrap();
    let got = consume(&mut c, 1);
    assert_eq!(got.iter().map(text).collect::<Vec<_>>(), ["new"]);
}

/// An independent client (librdkafka) produces keyed JSON; we read all of it, and every key sits
/// in the partition our murmur2 partitioner would have chosen.
#[test]
fn black_box_confluent_kafka_produces_and_we_consume() {
    let topic = unique("bb_in");
    producer().create_topic(&topic, 4).unwrap();
    let script = r#"
import sys, json
from confluent_kafka import Producer
p = Producer({"bootstrap.servers": sys.argv[1], "partitioner": "murmur2_random"})
for i in range(200):
    p.produce(sys.argv[2], key="printer-%d" % (i % 7), value=json.dumps({"value": i, "layer": i // 20}))
p.flush(30)
print("ok")
"#;
    assert_eq!(run_python(script, &[&broker(), &topic]).trim(), "ok");
    let mut c =
        KafkaConsumer::new(config(&topic, "g", Assignment::All), Arc::new(MemoryOffsetStore::default())).unwrap();
    let got = consume(&mut c, 200);
    assert_eq!(got.len(), 200);
    let codec = Codec::new(Encoding::Json);
    let mut values: Vec<f64> =
        got.iter().map(|m| codec.decode(&m.payload).unwrap().samples[0].signals.get("value").unwrap()).collect();
    values.sort_by(f64::total_cmp);
    assert_eq!(values, (0..200).map(f64::from).collect::<Vec<_>>());
    for m in &got {
        assert_eq!(
            m.origin.partition,
            partition_for_key(m.key.as_deref().unwrap(), 4),
            "same partitioner as librdkafka"
        );
    }
}

/// We produce; an independent consumer group (librdkafka) reads every message.
#[test]
fn black_box_we_produce_and_confluent_kafka_consumes() {
    let topic = unique("bb_out");
    let p = producer();
    p.create_topic(&topic, 2).unwrap();
    p.send((0..150).map(|i| message(&topic, Some(&format!("k{}", i % 3)), format!("m{i}"))).collect()).unwrap();
    let script = r#"
import sys, time
from confluent_kafka import Consumer
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": "bb", "auto.offset.reset": "earliest",
              "session.timeout.ms": 6000, "enable.auto.commit": False})
c.subscribe([sys.argv[2]])
seen, deadline = set(), time.time() + 60
while len(seen) < 150 and time.time() < deadline:
    m = c.poll(0.5)
    if m is not None and m.error() is None:
        seen.add(m.value().decode())
c.close()
print(len(seen))
"#;
    assert_eq!(run_python(script, &[&broker(), &topic]).trim(), "150");
}

/// The source/sink contract, run against every transport: offsets increase by one per message in
/// send order within a partition, payloads arrive intact, a commit succeeds, nothing is repeated.
fn source_contract(sink: &dyn MessageSink, source: &mut dyn qadf_core_types::MessageSource, topic: &str) {
    let sent: Vec<String> = (0..50).map(|i| format!("payload-{i}")).collect();
    let messages =
        sent.iter().map(|p| OutgoingMessage { partition: Some(0), ..message(topic, None, p.clone()) }).collect();
    sink.send(messages).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = Vec::new();
    while got.len() < 50 && Instant::now() < deadline {
        got.extend(source.poll(50 - got.len(), Duration::from_millis(200)).unwrap());
    }
    assert_eq!(got.iter().map(text).collect::<Vec<_>>(), sent);
    assert!(got.windows(2).all(|w| w[1].origin.offset == w[0].origin.offset + 1));
    source.commit(&positions_after(&got)).unwrap();
    assert!(source.poll(10, Duration::from_millis(300)).unwrap().is_empty(), "nothing is delivered twice");
}

#[test]
fn both_transports_keep_the_same_contract() {
    let store = Arc::new(MemoryOffsetStore::default());
    let (sink, mut source) = in_process::channel(128, "g", store);
    source_contract(&sink, &mut source, "contract");

    let topic = unique("contract");
    let producer = producer();
    producer.create_topic(&topic, 1).unwrap();
    let mut consumer =
        KafkaConsumer::new(config(&topic, "g", Assignment::All), Arc::new(MemoryOffsetStore::default())).unwrap();
    source_contract(&producer, &mut consumer, &topic);
}
