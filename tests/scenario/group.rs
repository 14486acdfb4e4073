//! Helpers of the consumer-group scenarios (tests/groups.rs, and the rebalance under an outage in
//! tests/outages.rs): producing to a partition, the group's offsets as confluent-kafka reads them,
//! members' assignments from their logs, and grids against a clean run's.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use qadf_core_types::{Codec, Encoding, MessageSink, OutgoingMessage, Sample, SampleBatch};
use qadf_integration_tests::{Service, run_python};
use qadf_kafka_io::KafkaProducer;

use super::{RunningChild, Scenario, grid_lines};

/// Session timeout of the members (the issue's probe: 6 s keeps joins quick).
pub const SESSION_MS: u64 = 6_000;

/// Sends `samples` as 100-sample messages to `partition` of `topic`.
pub fn send(producer: &KafkaProducer, topic: &str, partition: i32, samples: &[Sample]) {
    let codec = Codec::new(Encoding::Bincode);
    let messages: Vec<OutgoingMessage> = samples
        .chunks(100)
        .map(|chunk| OutgoingMessage {
            topic: topic.to_owned(),
            partition: Some(partition),
            key: Some(chunk[0].build_id.as_bytes().to_vec()),
            payload: codec.encode(&SampleBatch::new(chunk.to_vec())).unwrap(),
            headers: Vec::new(),
        })
        .collect();
    for part in messages.chunks(500) {
        producer.send(part.to_vec()).map_err(|e| e.error).expect("producing");
    }
}

/// The group's committed offsets per partition, read by confluent-kafka's AdminClient.
pub fn group_offsets(group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let script = r#"
import json, sys
from confluent_kafka import TopicPartition, ConsumerGroupTopicPartitions
from confluent_kafka.admin import AdminClient
broker, group, topic, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
admin = AdminClient({"bootstrap.servers": broker})
request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(n)])
result = admin.list_consumer_group_offsets([request])[group].result(timeout=30)
print(json.dumps({tp.partition: tp.offset for tp in result.topic_partitions}))
"#;
    let out = run_python(script, &[&Service::Kafka.addr(), group, topic, &partitions.to_string()]);
    let parsed: BTreeMap<String, i64> = serde_json::from_str(out.trim()).unwrap();
    parsed.into_iter().map(|(p, o)| (p.parse().unwrap(), o)).collect()
}

/// Waits until `condition` holds, at most `within`; panics with `what` and the members' output.
pub fn wait(what: &str, within: Duration, members: &[&RunningChild], condition: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    while !condition() {
        if start.elapsed() > within {
            let out: Vec<String> = members.iter().map(|m| m.lines().join("\n")).collect();
            panic!("{what} not within {within:?}:\n{}", out.join("\n-----\n"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

/// The partitions of the member's latest assignment, as it logged it.
pub fn assigned(member: &RunningChild) -> Option<BTreeSet<i32>> {
    let lines = member.lines();
    let line = lines.iter().rev().find(|l| l.contains("(assigned by the group)"))?;
    let list = line.rsplit(": ").next()?;
    Some(list.split(", ").filter_map(|tp| tp.rsplit('/').next()?.parse().ok()).collect())
}

pub fn finish(mut member: RunningChild) -> Vec<String> {
    let status = member.child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let lines = member.lines();
    assert!(status.success(), "{}", lines.join("\n"));
    lines
}

/// Each build's grid is printed by the one member that ended with it (`outputs`), and equals the
/// grid of a clean run: one member alone on the same topic, stopped once it has stored all `total`
/// samples (not when idle: a slow broker answer on a loaded machine must not end it early).
pub fn grids_equal_a_clean_run(s: &Scenario, outputs: &[Vec<String>], total: usize) {
    let mut got: BTreeMap<(String, String), serde_json::Value> = BTreeMap::new();
    for out in outputs {
        for line in grid_lines(out) {
            let key = (line["build"].as_str().unwrap().to_owned(), line["grid"]["signal"].to_string());
            assert!(got.insert(key.clone(), line["grid"].clone()).is_none(), "{key:?} printed twice");
        }
    }
    let clean = s.sibling("clean");
    let clean_store = clean.store();
    let reference_run = clean.spawn_run(&[]);
    wait("the clean run storing everything", Duration::from_secs(300), &[&reference_run], || {
        clean_store.count().unwrap() >= total as u64
    });
    reference_run.signal("-TERM");
    let reference = finish(reference_run);
    let want: BTreeMap<(String, String), serde_json::Value> = grid_lines(&reference)
        .into_iter()
        .map(|l| ((l["build"].as_str().unwrap().to_owned(), l["grid"]["signal"].to_string()), l["grid"].clone()))
        .collect();
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "every build's grid, once");
    // On a mismatch, what each member said of its rebalances (a drain timeout is the known way to lose one).
    let group_lines: Vec<&String> = outputs.iter().flatten().filter(|l| l.contains("consumer group:")).collect();
    eprintln!("the members' rebalances: {group_lines:#?}");
    for (key, w) in &want {
        let g = &got[key];
        for field in ["voxels", "values", "min", "max"] {
            assert_eq!(g[field], w[field], "{key:?} {field}: {g} vs {w}; {group_lines:?}");
        }
        let (gs, ws) = (g["sum"].as_f64().unwrap(), w["sum"].as_f64().unwrap());
        assert!((gs - ws).abs() <= 1e-9 * ws.abs(), "{key:?}: sums differ beyond rounding: {gs} vs {ws}");
    }
    clean_store.drop_all().unwrap();
}

/// How many write jobs the member gave up at revocations (its last `consumer group:` line).
pub fn writes_given_up(lines: &[String]) -> u64 {
    let line = lines.iter().rev().find(|l| l.contains("consumer group:")).expect("a consumer group line");
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.windows(4).position(|w| w[1..] == ["write", "jobs", "given"]).expect("write jobs given up");
    words[at].parse().unwrap()
}

/// The first or second half (`k` = 0, 1) of a build's samples.
pub fn half(b: &[Sample], k: usize) -> Vec<Sample> {
    b[b.len() * k / 2..b.len() * (k + 1) / 2].to_vec()
}

/// A group scenario under `prefix` on a fresh topic of four partitions and a build of `layers`
/// layers for each partition (named `<prefix>-<p>`), nothing produced yet.
pub fn four_builds(prefix: &str, layers: u32) -> (Scenario, KafkaProducer, Vec<Vec<Sample>>) {
    let builds: Vec<Vec<Sample>> = (0..4).map(|b| super::build(layers, 6.0, &format!("{prefix}-{b}"))).collect();
    let s = Scenario::in_group(prefix, SESSION_MS);
    let producer = KafkaProducer::new(&[Service::Kafka.addr()]).unwrap();
    producer.create_topic(&s.topic, 4).unwrap();
    (s, producer, builds)
}

/// Produces half `k` (0, 1) of each build to its partition.
pub fn send_halves(producer: &KafkaProducer, topic: &str, builds: &[Vec<Sample>], k: usize) {
    for (p, b) in builds.iter().enumerate() {
        send(producer, topic, p as i32, &half(b, k));
    }
}
