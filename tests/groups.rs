//! Consumer groups (docs/SCALING.md): `qadf-stream run` instances as members of one Kafka
//! consumer group on real Tansu and SecantusDB, the release binary.
//!
//! - Failover and scale-up: 3 members on 6 partitions (one build per partition, as machines key
//!   their data); one is SIGKILLed mid-stream and its partitions move to the others within the
//!   session timeout; a fourth instance joins mid-stream (three members again, two partitions each). At the end every sample is stored exactly once,
//!   the group's committed offsets (read with confluent-kafka's AdminClient) are at the log end,
//!   and each build's grid, printed by the member that ended with it, equals a clean run's.
//! - Mixed group: a qadf member and a confluent-kafka consumer split the partitions; what each
//!   read adds up to the log, nothing twice.
//! - SIGTERM: a member stopped mid-stream stores, commits and leaves; the other takes over with
//!   nothing delivered twice.

mod scenario;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use qadf_core_types::Sample;
use qadf_integration_tests::Service;
use qadf_kafka_io::KafkaProducer;
use scenario::group::{
    SESSION_MS, assigned, finish, four_builds, grids_equal_a_clean_run, group_offsets, send, send_halves, wait,
};
use scenario::{RunningChild, Scenario, build, checksum, stored};

/// The number after `key` in the member's `stopped:` line (e.g. "messages").
fn stopped_count(lines: &[String], key: &str) -> u64 {
    let line = lines.iter().find(|l| l.contains("stopped:")).expect("a stopped line");
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| w.trim_end_matches(',') == key).expect(key);
    words[at - 1].parse().unwrap()
}

fn replayed(lines: &[String]) -> u64 {
    let line = lines.iter().find(|l| l.contains("replayed samples skipped")).expect("a replay line");
    line.rsplit(": ").next().unwrap().trim().parse().unwrap()
}

#[test]
fn a_killed_member_fails_over_a_fourth_scales_up_and_every_sample_is_stored_once() {
    let layers = if scenario::full() { 12 } else { 3 };
    let builds: Vec<Vec<Sample>> = (0..6).map(|b| build(layers, 6.0, &format!("machine-{b}"))).collect();
    let total: usize = builds.iter().map(Vec::len).sum();
    let thirds = |b: &Vec<Sample>, k: usize| b[b.len() * k / 3..b.len() * (k + 1) / 3].to_vec();
    let s = Scenario::in_group("groups", SESSION_MS);
    let producer = KafkaProducer::new(&[Service::Kafka.addr()]).unwrap();
    producer.create_topic(&s.topic, 6).unwrap();
    let store = s.store();

    for (p, b) in builds.iter().enumerate() {
        send(&producer, &s.topic, p as i32, &thirds(b, 0));
    }
    let members: Vec<RunningChild> = (0..3).map(|_| s.spawn_run(&[])).collect();
    let refs: Vec<&RunningChild> = members.iter().collect();
    wait("three members sharing six partitions", Duration::from_secs(60), &refs, || {
        members.iter().all(|m| assigned(m).is_some_and(|a| a.len() == 2))
    });
    // Kill the third member while it works: part of its share stored, the rest not.
    let victim_parts = assigned(&members[2]).unwrap();
    wait("the victim storing", Duration::from_secs(60), &refs, || store.count().unwrap() > 0);
    let mut members = members;
    let victim = members.pop().unwrap();
    victim.kill_9();
    let killed = Instant::now();
    let refs: Vec<&RunningChild> = members.iter().collect();
    let moved = wait("the victim's partitions moving", Duration::from_millis(SESSION_MS * 3), &refs, || {
        let held: BTreeSet<i32> = members.iter().filter_map(assigned).flatten().collect();
        victim_parts.is_subset(&held) && held.len() == 6
    });
    eprintln!(
        "the killed member's partitions {victim_parts:?} moved after {moved:?} (session timeout {SESSION_MS} ms)"
    );
    // The coordinator removes the member after the session timeout; the survivors hear of the
    // rebalance at their next heartbeat (a sixth of it), store, commit and rejoin.
    assert!(
        killed.elapsed() < Duration::from_millis(SESSION_MS * 2),
        "moved within the session timeout and one rebalance: {moved:?}"
    );
    for (p, b) in builds.iter().enumerate() {
        send(&producer, &s.topic, p as i32, &thirds(b, 1));
    }

    // A fourth member joins mid-stream: the last third flows once the group has rebalanced.
    members.push(s.spawn_run(&[]));
    let refs: Vec<&RunningChild> = members.iter().collect();
    wait("the new member sharing the six partitions", Duration::from_secs(60), &refs, || {
        let now: Vec<BTreeSet<i32>> = members.iter().filter_map(assigned).collect();
        now.len() == 3 && now.iter().all(|a| a.len() == 2) && now.iter().flatten().collect::<BTreeSet<_>>().len() == 6
    });
    for (p, b) in builds.iter().enumerate() {
        send(&producer, &s.topic, p as i32, &thirds(b, 2));
    }
    wait("everything stored", Duration::from_secs(300), &refs, || store.count().unwrap() >= total as u64);
    // Stopped together (SIGTERM), each member prints the grids of the builds it ended with.
    for m in &members {
        m.signal("-TERM");
    }
    let outputs: Vec<Vec<String>> = members.into_iter().map(finish).collect();

    let held = stored(&store);
    assert_eq!(held.len(), total, "every sample stored exactly once");
    let all: Vec<&Sample> = builds.iter().flatten().collect();
    assert_eq!(checksum(&held), checksum(all.iter().copied()), "the stored contents are the produced ones");
    let ends: BTreeMap<i32, i64> = (0..6).map(|p| (p, builds[p as usize].chunks(100).len() as i64)).collect();
    assert_eq!(group_offsets(&s.group, &s.topic, 6), ends, "the group's committed offsets are at the log end");

    grids_equal_a_clean_run(&s, &outputs, total);
    let restored: usize = outputs.iter().map(|o| o.iter().filter(|l| l.contains("rebuilt from")).count()).sum();
    assert!(restored >= victim_parts.len(), "the killed member's builds were rebuilt from the history");
    s.store().drop_all().unwrap();
}

#[test]
fn a_qadf_member_and_a_confluent_kafka_consumer_split_the_partitions_with_no_overlap() {
    let samples = build(2, 6.0, "mixed-build");
    let s = Scenario::in_group("mixed", SESSION_MS);
    let producer = KafkaProducer::new(&[Service::Kafka.addr()]).unwrap();
    producer.create_topic(&s.topic, 4).unwrap();
    let per: Vec<Vec<Sample>> = (0..4).map(|p| samples.iter().skip(p).step_by(4).cloned().collect()).collect();
    for (p, part) in per.iter().enumerate() {
        send(&producer, &s.topic, p as i32, part);
    }
    let messages: usize = per.iter().map(|p| p.chunks(100).len()).sum();
    // The Python member reads slowly (10 ms a message, each committed), so the qadf member joins
    // while it works: the group moves two partitions at their committed offsets.
    let script = r#"
import json, sys, time
from confluent_kafka import Consumer
broker, group, topic = sys.argv[1], sys.argv[2], sys.argv[3]
c = Consumer({"bootstrap.servers": broker, "group.id": group, "enable.auto.commit": False,
              "auto.offset.reset": "earliest", "session.timeout.ms": 6000})
assignment = []
def on_assign(consumer, partitions):
    assignment[:] = sorted(p.partition for p in partitions)
    print(json.dumps({"assigned": assignment}), flush=True)
c.subscribe([topic], on_assign=on_assign)
seen, last = [], time.time()
while time.time() - last < 8:
    m = c.poll(0.2)
    if m is None or m.error():
        continue
    seen.append([m.partition(), m.offset()])
    c.commit(message=m, asynchronous=False)
    last = time.time()
    time.sleep(0.01)
c.close()
print(json.dumps({"seen": seen, "final": assignment}), flush=True)
"#;
    let python = std::process::Command::new(qadf_integration_tests::python_clients())
        .arg("-c")
        .arg(script)
        .args([&Service::Kafka.addr(), &s.group, &s.topic])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let member = s.spawn_run(&["--exit-when-idle", "12"]);
    let out = python.wait_with_output().unwrap();
    assert!(out.status.success());
    let lines = finish(member);
    let last: serde_json::Value =
        serde_json::from_str(String::from_utf8(out.stdout).unwrap().lines().last().unwrap()).unwrap();
    let python_parts: BTreeSet<i64> = last["final"].as_array().unwrap().iter().map(|p| p.as_i64().unwrap()).collect();
    let seen: Vec<(i64, i64)> =
        last["seen"].as_array().unwrap().iter().map(|m| (m[0].as_i64().unwrap(), m[1].as_i64().unwrap())).collect();
    let unique: BTreeSet<(i64, i64)> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "the Python member read nothing twice");

    // The qadf member's assignments over time: all four before the Python member joined (or
    // after it left), and the complement of the Python member's share while both were in.
    let qadf_assignments: Vec<BTreeSet<i64>> = lines
        .iter()
        .filter(|l| l.contains("(assigned by the group)"))
        .map(|l| {
            l.rsplit(": ").next().unwrap().split(", ").filter_map(|tp| tp.rsplit('/').next()?.parse().ok()).collect()
        })
        .collect();
    eprintln!("python member: {python_parts:?}, {} messages; qadf member: {qadf_assignments:?}", seen.len());
    assert_eq!(python_parts.len(), 2, "the range assignor gives each of two members two of four partitions");
    assert!(
        qadf_assignments.iter().any(|q| q.is_disjoint(&python_parts) && q.len() == 2),
        "while both were members, they split the partitions with no overlap: {python_parts:?} {qadf_assignments:?}"
    );
    let qadf_messages = stopped_count(&lines, "messages") as usize;
    assert_eq!(qadf_messages + seen.len(), messages, "what the two members read adds up to the log, nothing twice");
    let python_samples: usize =
        seen.iter().map(|&(p, offset)| per[p as usize].chunks(100).nth(offset as usize).unwrap().len()).sum();
    assert_eq!(stored(&s.store()).len(), samples.len() - python_samples, "the qadf member stored the rest");
    s.store().drop_all().unwrap();
}

#[test]
fn a_member_stopped_with_sigterm_hands_over_with_nothing_delivered_twice() {
    let (s, producer, builds) = four_builds("term", if scenario::full() { 12 } else { 4 });
    send_halves(&producer, &s.topic, &builds, 0);
    let total: usize = builds.iter().map(Vec::len).sum();
    let messages: usize = builds.iter().map(|b| b.chunks(100).len()).sum();
    let store = s.store();
    let (a, b) = (s.spawn_run(&["--exit-when-idle", "15"]), s.spawn_run(&["--exit-when-idle", "15"]));
    wait("two members sharing four partitions", Duration::from_secs(60), &[&a, &b], || {
        [&a, &b].iter().all(|m| assigned(m).is_some_and(|p| p.len() == 2))
    });
    send_halves(&producer, &s.topic, &builds, 1);
    wait("storing under way", Duration::from_secs(60), &[&a, &b], || store.count().unwrap() > total as u64 / 2);
    a.signal("-TERM");
    let a = finish(a);
    wait("the other member taking all four", Duration::from_secs(30), &[&b], || {
        assigned(&b).is_some_and(|p| p.len() == 4)
    });
    wait("everything stored", Duration::from_secs(120), &[&b], || store.count().unwrap() >= total as u64);
    let b = finish(b);
    assert_eq!(stored(&store).len(), total, "every sample stored once");
    assert_eq!(replayed(&b), 0, "the member taking over met nothing already stored");
    let (ma, mb) = (stopped_count(&a, "messages") as usize, stopped_count(&b, "messages") as usize);
    assert_eq!(ma + mb, messages, "each message delivered once: {ma} + {mb}");
    let ends: BTreeMap<i32, i64> = (0..4).map(|p| (p, builds[p as usize].chunks(100).len() as i64)).collect();
    assert_eq!(group_offsets(&s.group, &s.topic, 4), ends);
    store.drop_all().unwrap();
}
