//! Hostile input through `qadf-stream run` (the release binary against real Tansu and
//! SecantusDB): every message ends stored or dead-lettered with a reason naming the rule, the
//! process neither aborts nor stalls, and a second full read of the topic stores nothing twice.
//!
//! Each case is a regression test of the ingest issue's numbered failures: a message with 50,000
//! fields (an abort loop before), a NUL inside a signal name (a stall before), distinct samples
//! sharing build, source and time, or ids with `/` in them (one of each pair was lost before), a
//! sample without a timestamp (stored again on every read before), deep nesting, too many samples
//! in one message, too many signals for one build, more builds than the grid cache holds.

mod scenario;

use qadf_core_types::{MessageSink, OutgoingMessage};
use qadf_integration_tests::Service;
use qadf_kafka_io::KafkaProducer;
use scenario::{Scenario, stored};

const TS: &str = "2026-11-30T10:00:00.000000001Z";

/// A canonical JSON sample.
fn sample(build: &str, source: &str, timestamp: Option<&str>, signals: &str) -> String {
    let ts = timestamp.map(|t| format!(r#""timestamp":"{t}","#)).unwrap_or_default();
    format!(r#"{{"build_id":"{build}","source_id":"{source}",{ts}"x":1.0,"y":2.0,"z":0.03,{signals}}}"#)
}

#[test]
fn hostile_messages_end_stored_or_dead_lettered_and_a_second_read_stores_nothing_twice() {
    let mut s = Scenario::new("hostile");
    s.extra.push(("QADF_MESSAGE_ENCODING".into(), "json".into()));
    s.extra.push(("QADF_MAX_SAMPLES_PER_MESSAGE".into(), "50".into()));
    s.extra.push(("QADF_MAX_BUILDS_IN_MEMORY".into(), "4".into()));

    // (payload, words its dead letter's reason must hold, or "" for a message to store), samples to store.
    let mut cases: Vec<(String, &str, usize)> = Vec::new();
    let many: Vec<String> = (0..50_000).map(|i| format!(r#""f{i}":1.0"#)).collect();
    cases.push((sample("h", "s", Some(TS), &many.join(",")), "max_signals_per_sample", 0));
    cases.push((sample("h", "s", Some(TS), r#""tem\u0000p":1.0"#), "control character", 0));
    cases.push((sample("h", "s", Some(TS), r#""temperature":1800.0"#), "", 1));
    cases.push((sample("h", "s", Some(TS), r#""temperature":1801.0"#), "", 1)); // same build, source, time
    cases.push((sample("a/b", "c", Some(TS), r#""temperature":1.0"#), "", 1));
    cases.push((sample("a", "b/c", Some(TS), r#""temperature":1.0"#), "", 1)); // same joined id before
    cases.push((sample("h", "no-time", None, r#""temperature":1900.0"#), "", 1));
    let deep = format!(r#"{{"build_id":"h","x":{}1{}}}"#, "[".repeat(100), "]".repeat(100));
    cases.push((deep, "max_json_depth", 0));
    let sixty: Vec<String> = (0..60).map(|i| sample("h", "s", Some(TS), &format!(r#""v{i}":1.0"#))).collect();
    cases.push((format!("[{}]", sixty.join(",")), "max_samples_per_message", 0));
    for i in 0..70 {
        let reason = if i < 64 { "" } else { "max_signals_per_build" };
        cases.push((sample("wide", "s", Some(TS), &format!(r#""sig{i}":1.0"#)), reason, usize::from(i < 64)));
    }
    for b in 0..20 {
        cases.push((sample(&format!("build-{b}"), "s", Some(TS), r#""temperature":1.0"#), "", 1));
    }
    // Other producers' shapes through the default schema (docs/SCHEMA.md).
    let python = r#"{"sensor_id": "sensor_0", "temperature": 1024.8, "power": 198.6, "velocity": 103.2, "x": 15.6, "y": 15.5, "z": 0.58, "timestamp": "2026-01-30T17:31:18.343884"}"#;
    cases.push((python.to_owned(), "", 1));
    cases.push((
        r#"{"build_id": "py", "sensor_id": 7, "timestamp": 1769794278.5, "temperature": 1.0}"#.to_owned(),
        "",
        1,
    ));
    cases.push((r#"{"build_id": "py", "material": "Ti64", "temperature": 1.0}"#.to_owned(), "field `material`", 0));
    cases.push((
        r#"{"build_id": "py", "timestamp": 1795000000000000001, "temperature": 1.0}"#.to_owned(),
        "epoch_unit",
        0,
    ));
    cases.push((r#"{"build_id": "py", "tags": {"a.b": "x"}, "temperature": 1.0}"#.to_owned(), "holds `.`", 0));
    let column = |n: usize| (0..n).map(|i| format!("{}", 1.0 + i as f64 * 0.01)).collect::<Vec<_>>().join(",");
    let columnar = |n: usize| {
        format!(
            r#"{{"build_id": "cols", "sensor_id": "s", "t": [{}], "x": [{}], "y": [{}], "z": [{}], "temperature": [{}]}}"#,
            (0..n).map(|i| (1_769_794_278 + i).to_string()).collect::<Vec<_>>().join(","),
            column(n),
            column(n),
            column(n),
            column(n)
        )
    };
    cases.push((columnar(10), "", 10));
    cases.push((columnar(60), "max_samples_per_message", 0));
    cases.push((r#"{"build_id": "cols", "t": [1, 2], "temperature": [1.0, 2.0, 3.0]}"#.to_owned(), "equally long", 0));
    let producer = KafkaProducer::new(&[Service::Kafka.addr()]).unwrap();
    producer.create_topic(&s.topic, 1).unwrap();
    let outgoing: Vec<OutgoingMessage> = cases
        .iter()
        .map(|(payload, _, _)| OutgoingMessage {
            topic: s.topic.clone(),
            partition: Some(0),
            key: None,
            payload: payload.clone().into_bytes(),
            headers: Vec::new(),
        })
        .collect();
    producer.send(outgoing).map_err(|e| e.error).unwrap();

    let out = s.run_to_end(&["--exit-when-idle", "3"]);
    let last = out.iter().find(|l| l.starts_with("stopped:")).unwrap_or_else(|| panic!("{out:?}"));
    let want_letters = cases.iter().filter(|(_, r, _)| !r.is_empty()).count();
    assert!(!last.contains("error"), "{last}");
    assert!(last.contains(&format!("{want_letters} dead letters")), "{last}");
    assert!(out.iter().all(|l| !l.contains("panicked")), "{out:?}");

    let store = s.store();
    let want_stored: usize = cases.iter().map(|(_, _, n)| n).sum();
    let held = stored(&store);
    assert_eq!(held.len(), want_stored, "every storable sample, each once");
    let temps: Vec<f64> =
        held.iter().filter(|x| x.build_id == "h").filter_map(|x| x.signals.get("temperature")).collect();
    assert!(temps.contains(&1800.0) && temps.contains(&1801.0) && temps.contains(&1900.0), "{temps:?}");
    assert_eq!(held.iter().filter(|x| x.build_id.contains('/') || x.source_id.contains('/')).count(), 2);

    let reasons = s.dead_letter_reasons(want_letters);
    assert_eq!(reasons.len(), want_letters, "{reasons:?}");
    for (_, want, _) in cases.iter().filter(|(_, r, _)| !r.is_empty()) {
        assert!(reasons.iter().any(|r| r.contains(want)), "no reason names `{want}`: {reasons:?}");
    }

    // Read the whole topic again as if the offsets were lost: nothing new is stored.
    let again = Scenario { group: format!("{}_again", s.group), ..s.sibling("again") };
    let again = Scenario { database: s.database.clone(), ..again };
    again.run_to_end(&["--exit-when-idle", "3"]);
    assert_eq!(stored(&store).len(), want_stored, "a replay stores every sample once (the timestamp-less one too)");
    store.drop_all().unwrap();
}
