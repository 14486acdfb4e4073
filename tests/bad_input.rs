//! Scenario 4 — bad input at volume: a JSON stream in which 1% of the messages are malformed (bad
//! JSON, truncated JSON, a NaN literal, an oversize array, truncated bincode, a two-coordinate
//! position, a position outside the grid). `qadf-stream run` does not panic, stores every good
//! sample, and sends every bad message to the dead-letter topic with its reason.
//!
//! CI size: 2,000 messages; `QADF_TEST_FULL=1`: 20,000.

mod scenario;

use qadf_core_types::{Codec, Encoding, MessageSink, OutgoingMessage, SampleBatch};
use qadf_integration_tests::Service;
use qadf_kafka_io::KafkaProducer;
use scenario::{Scenario, build, checksum, stored};

/// The bad messages, one of each kind, with the words its dead letter's reason must contain.
fn bad_kinds(good: &[u8], oversize: usize) -> Vec<(Vec<u8>, &'static str)> {
    let text = String::from_utf8(good.to_vec()).unwrap();
    let nan = text.replacen(r#""temperature":"#, r#""temperature":NaN,"was":"#, 1);
    let two_d = {
        let start = text.find(r#""position":["#).unwrap() + r#""position":["#.len();
        let end = start + text[start..].find(']').unwrap();
        let coords: Vec<&str> = text[start..end].split(',').collect();
        format!("{}{},{}{}", &text[..start], coords[0], coords[1], &text[end..])
    };
    let outside = {
        let start = text.find(r#""position":["#).unwrap() + r#""position":["#.len();
        let end = start + text[start..].find(',').unwrap();
        format!("{}900.0{}", &text[..start], &text[end..])
    };
    let bincode = Codec::new(Encoding::Bincode).encode(&Codec::new(Encoding::Json).decode(good).unwrap()).unwrap();
    vec![
        (b"{not json".to_vec(), "JSON"),
        (good[..good.len() / 2].to_vec(), "JSON"),
        (nan.into_bytes(), "JSON"),
        (vec![b' '; oversize], "bytes"),
        (bincode[..bincode.len() - 3].to_vec(), ""),
        (two_d.into_bytes(), "position"),
        (outside.into_bytes(), "outside the voxel grid"),
    ]
}

#[test]
fn one_percent_malformed_messages_go_to_the_dead_letter_topic_and_every_good_sample_is_stored() {
    let messages = if scenario::full() { 20_000 } else { 2_000 };
    let bad_every = 100;
    let samples = build(1, (messages as f64 * 10.0).sqrt() / 10.0 + 1.0, "bad-input");
    let mut s = Scenario::new("badinput");
    s.extra.push(("QADF_MESSAGE_ENCODING".into(), "json".into()));
    s.extra.push(("QADF_MAX_MESSAGE_BYTES".into(), "100000".into()));
    let json = Codec::new(Encoding::Json);

    let mut good_samples = Vec::new();
    let mut payloads = Vec::new();
    let mut expected_reasons = Vec::new();
    let mut chunks = samples.chunks(10);
    for i in 0..messages {
        if i % bad_every == bad_every - 1 {
            let single = json.encode(&SampleBatch::new(vec![samples[i % samples.len()].clone()])).unwrap();
            let kinds = bad_kinds(&single, 150_000);
            let (payload, reason) = kinds[(i / bad_every) % kinds.len()].clone();
            payloads.push(payload);
            expected_reasons.push(reason);
        } else {
            let chunk = chunks.next().expect("enough simulated samples");
            good_samples.extend_from_slice(chunk);
            payloads.push(json.encode(&SampleBatch::new(chunk.to_vec())).unwrap());
        }
    }
    let producer = KafkaProducer::new(&[Service::Kafka.addr()]).unwrap();
    producer.create_topic(&s.topic, 2).unwrap();
    let outgoing: Vec<OutgoingMessage> = payloads
        .into_iter()
        .enumerate()
        .map(|(i, payload)| OutgoingMessage {
            topic: s.topic.clone(),
            partition: Some(i as i32 % 2),
            key: None,
            payload,
            headers: Vec::new(),
        })
        .collect();
    for part in outgoing.chunks(500) {
        producer.send(part.to_vec()).map_err(|e| e.error).unwrap();
    }

    let out = s.run_to_end(&["--exit-when-idle", "3"]);
    let last = out.iter().find(|l| l.starts_with("stopped:")).unwrap();
    let bad = messages / bad_every;
    assert!(last.contains(&format!("{bad} dead letters")), "{last}");
    assert!(out.iter().all(|l| !l.contains("panicked")), "{out:?}");

    let store = s.store();
    let held = stored(&store);
    assert_eq!(held.len(), good_samples.len(), "every good sample, and only those");
    assert_eq!(checksum(&held), checksum(&good_samples));

    // The dead-letter topic holds each bad message once, with a reason naming what was wrong.
    let reasons = s.dead_letter_reasons(bad);
    assert_eq!(reasons.len(), bad, "one dead letter per bad message");
    for want in &expected_reasons {
        assert!(reasons.iter().any(|r| r.contains(want)), "no reason mentions `{want}`: {reasons:?}");
    }
    eprintln!("dead-letter reasons: {:?}", reasons.iter().take(7).collect::<Vec<_>>());
    store.drop_all().unwrap();
}
