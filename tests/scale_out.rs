//! Scenario 3 — scale-out: two `qadf-stream run` instances, "0 of 2" and "1 of 2", share a
//! 4-partition topic, one consumer group and one MongoDB database. The union of what they store
//! is everything, with no duplicates. With one instance stopped, its partitions wait (nothing of
//! them is stored or committed); restarting it resumes them. See docs/SCALING.md.
//!
//! CI size: 40,000 + 20,000 samples; `QADF_TEST_FULL=1`: 400,000 + 200,000.

mod scenario;

use std::collections::BTreeMap;

use scenario::{Scenario, build, checksum, committed, produce, stored};

fn instance(s: &Scenario, i: u32) -> scenario::RunningChild {
    s.spawn_run(&["--instance", &i.to_string(), "--instances", "2", "--exit-when-idle", "3"])
}

fn finish(mut run: scenario::RunningChild) -> Vec<String> {
    let status = run.child.wait().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(status.success(), "{}", run.lines().join("\n"));
    run.lines()
}

#[test]
fn two_instances_split_four_partitions_and_a_stopped_one_resumes_its_own() {
    let layers = if scenario::full() { 40 } else { 4 };
    let first = build(layers, 10.0, "scale-a");
    let s = Scenario::new("scale");
    let log_end = produce(&s.topic, 4, &first);
    let store = s.store();

    let (a, b) = (instance(&s, 0), instance(&s, 1));
    let (a, b) = (finish(a), finish(b));
    for (out, name) in [(&a, "0"), (&b, "1")] {
        assert!(out.iter().any(|l| l.contains("consuming 2 partitions")), "instance {name}: {out:?}");
    }
    let held = stored(&store);
    assert_eq!(held.len(), first.len(), "the union is everything, nothing twice");
    assert_eq!(checksum(&held), checksum(&first));
    assert_eq!(committed(&store, &s.group, &s.topic), log_end);

    // Instance 1 is down: partitions 1 and 3 (its share) wait; instance 0 takes only 0 and 2.
    let second = build(layers / 2, 10.0, "scale-b");
    let added = produce(&s.topic, 4, &second);
    let mine: usize = second.chunks(100).enumerate().filter(|(i, _)| i % 4 % 2 == 0).map(|(_, c)| c.len()).sum();
    finish(instance(&s, 0));
    assert_eq!(stored(&store).len(), first.len() + mine, "only instance 0's partitions moved on");
    let offsets = committed(&store, &s.group, &s.topic);
    let expected: BTreeMap<i32, i64> =
        log_end.iter().map(|(&p, &end)| (p, if p % 2 == 0 { end + added[&p] } else { end })).collect();
    assert_eq!(offsets, expected, "partitions 1 and 3 wait at their committed offsets");

    // Restarting instance 1 resumes exactly where it stopped.
    finish(instance(&s, 1));
    let held = stored(&store);
    assert_eq!(held.len(), first.len() + second.len());
    assert_eq!(checksum(&held), checksum(first.iter().chain(&second)));
    let end: BTreeMap<i32, i64> = log_end.iter().map(|(&p, &e)| (p, e + added[&p])).collect();
    assert_eq!(committed(&store, &s.group, &s.topic), end);
    store.drop_all().unwrap();
}
