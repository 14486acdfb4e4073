use nalgebra::Point3;
use proptest::prelude::*;

use super::*;
use crate::sample::Sample;
use crate::sample::{Signals, UNKNOWN};
use crate::tags::Tags;
use crate::time::Timestamp;

fn sample(i: u32) -> Sample {
    Sample {
        build_id: "build-7".into(),
        source_id: "ispm-0".into(),
        layer: i,
        timestamp: Timestamp::from_nanos(1_795_000_000_000_000_000 + i as i64),
        position: Some(Point3::new(1.5, -2.25, 0.03 * i as f64)),
        signals: [("temperature", 1650.5 + i as f64), ("melt_pool_area", 0.0421)].into_iter().collect(),
        tags: if i.is_multiple_of(2) { Tags::new() } else { [("material", "Ti64")].into_iter().collect() },
    }
}

fn json() -> Codec {
    Codec::new(Encoding::Json)
}

fn bincode() -> Codec {
    Codec::new(Encoding::Bincode)
}

#[test]
fn both_encodings_round_trip_a_batch() {
    let batch = SampleBatch::new((0..5).map(sample).collect());
    for codec in [json(), bincode()] {
        assert_eq!(codec.decode(&codec.encode(&batch).unwrap()).unwrap(), batch, "{:?}", codec.encoding());
    }
}

#[test]
fn empty_batch_round_trips() {
    for codec in [json(), bincode()] {
        let bytes = codec.encode(&SampleBatch::default()).unwrap();
        assert_eq!(codec.decode(&bytes).unwrap(), SampleBatch::default());
    }
    assert_eq!(json().decode(b" [ ] ").unwrap().len(), 0);
}

#[test]
fn json_wire_format_is_canonical() {
    let text = String::from_utf8(json().encode(&SampleBatch::new(vec![sample(1)])).unwrap()).unwrap();
    assert_eq!(
        text,
        r#"[{"build_id":"build-7","source_id":"ispm-0","layer":1,"timestamp":"2026-11-18T11:06:40.000000001Z","position":[1.5,-2.25,0.03],"signals":{"temperature":1651.5,"melt_pool_area":0.0421},"tags":{"material":"Ti64"}}]"#
    );
    let untagged = String::from_utf8(json().encode(&SampleBatch::new(vec![sample(2)])).unwrap()).unwrap();
    assert!(!untagged.contains("tags"), "no tags, no field: {untagged}");
}

#[test]
fn a_single_object_is_a_batch_of_one() {
    let batch = json().decode(br#"{"build_id":"b","layer":2,"x":1,"y":2,"z":3,"signals":{"t":5}}"#).unwrap();
    assert_eq!(batch.len(), 1);
    let s = &batch.samples[0];
    assert_eq!((s.layer, s.position, s.signals.get("t")), (2, Some(Point3::new(1.0, 2.0, 3.0)), Some(5.0)));
}

/// The documented generic mapping: numeric fields become signals of the same name.
#[test]
fn generic_python_message_maps_numbers_to_named_signals() {
    let before = Timestamp::now();
    let batch = json().decode(br#"[{"value": 1.0}, {"value": 2, "pressure": 3.5}]"#).unwrap();
    let first = &batch.samples[0];
    assert_eq!(first.signals, [("value", 1.0)].into_iter().collect::<Signals>());
    assert_eq!((first.build_id.as_str(), first.source_id.as_str(), first.layer), (UNKNOWN, UNKNOWN, 0));
    assert_eq!(first.position, None, "no position is invented");
    assert!(first.timestamp >= before, "a sample without a timestamp is stamped when decoded");
    assert_eq!(batch.samples[1].signals.get("pressure"), Some(3.5));
    assert!(first.validate().is_ok());
}

#[test]
fn bad_json_inputs_give_typed_errors() {
    let cases: &[(&[u8], &str)] = &[
        (b"", "message is empty"),
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b"42", "give a sample object"),
        (b"{\"value\": 1.0", "line 1"),
        (br#"{"value": "hot"}"#, "field `value`: is a string"),
        (br#"{"note": {"a": 1}}"#, "field `note`: is an object"),
        (br#"{"x": 1, "y": 2}"#, "must be given together"),
        (br#"{"x": 1, "y": 2, "z": 3, "position": [1,2,3]}"#, "not both"),
        (br#"{"layer": -1, "v": 1}"#, "a layer is a whole number"),
        (br#"{"layer": 1, "layer": 2}"#, "second layer field"),
        (br#"{"timestamp": "noon", "v": 1}"#, "RFC 3339"),
        (br#"{"v": NaN}"#, "line 1"),
        (br#"[{"v": 1}] trailing"#, "trailing characters"),
    ];
    for (input, expected) in cases {
        let err = json().decode(input).unwrap_err().to_string();
        assert!(err.contains(expected), "{:?}: got `{err}`, expected `{expected}`", String::from_utf8_lossy(input));
    }
}

#[test]
fn oversize_messages_are_refused_both_ways() {
    let codec = json().with_max_message_bytes(64);
    let batch = SampleBatch::new((0..3).map(sample).collect());
    assert!(matches!(codec.encode(&batch), Err(CodecError::Oversize { max: 64, .. })));
    let big = vec![b' '; 65];
    assert_eq!(codec.decode(&big), Err(CodecError::Oversize { len: 65, max: 64 }));
}

#[test]
fn json_refuses_to_encode_nan_but_bincode_carries_it_for_validation() {
    let mut s = sample(0);
    s.signals.push("bad", f64::NAN);
    let batch = SampleBatch::new(vec![s]);
    assert!(matches!(json().encode(&batch), Err(CodecError::Encode { .. })));
    let decoded = bincode().decode(&bincode().encode(&batch).unwrap()).unwrap();
    assert!(decoded.samples[0].signals.get("bad").unwrap().is_nan());
    assert!(decoded.samples[0].validate().is_err());
}

#[test]
fn every_truncation_of_bincode_is_an_error() {
    let bytes = bincode().encode(&SampleBatch::new((0..3).map(sample).collect())).unwrap();
    for cut in 1..bytes.len() {
        assert!(bincode().decode(&bytes[..cut]).is_err(), "prefix of {cut} bytes decoded");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(bincode().decode(&longer), Err(CodecError::TrailingBytes { extra: 1 }));
}

#[test]
fn a_huge_declared_length_does_not_allocate_or_panic() {
    // A batch claiming u64::MAX samples: varint 0xFF marker then 8 bytes.
    let bytes = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F];
    assert!(matches!(bincode().decode(&bytes), Err(CodecError::Bincode { .. })));
}

fn arb_sample() -> impl Strategy<Value = Sample> {
    let finite = -1e12..1e12f64;
    (
        "[a-z0-9-]{1,12}",
        "[a-z0-9-]{1,12}",
        any::<u32>(),
        any::<i64>(),
        proptest::option::of((finite.clone(), finite.clone(), finite.clone())),
        proptest::collection::vec(("[a-z_]{1,10}", finite), 1..5),
        proptest::collection::vec(("[a-z_]{1,10}", "[ -~]{0,12}"), 0..3),
    )
        .prop_map(|(build_id, source_id, layer, ts, pos, signals, tags)| Sample {
            build_id: build_id.into(),
            source_id: source_id.into(),
            layer,
            timestamp: Timestamp::from_nanos(ts),
            position: pos.map(|(x, y, z)| Point3::new(x, y, z)),
            signals: signals.into_iter().collect(),
            tags: tags.into_iter().collect(),
        })
}

proptest! {
    #[test]
    fn prop_round_trip(samples in proptest::collection::vec(arb_sample(), 0..8)) {
        let batch = SampleBatch::new(samples);
        for codec in [json().with_max_message_bytes(usize::MAX), bincode()] {
            prop_assert_eq!(codec.decode(&codec.encode(&batch).unwrap()).unwrap(), batch.clone());
        }
    }

    #[test]
    fn prop_arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = json().decode(&bytes);
        let _ = bincode().decode(&bytes);
    }
}

#[test]
fn a_json_sample_without_a_timestamp_takes_the_record_timestamp_so_a_replay_decodes_the_same() {
    let codec = Codec::new(Encoding::Json);
    let record = Timestamp::from_nanos(1_795_000_000_123_456_789);
    let text = br#"[{"value": 1.0}, {"value": 2.0, "timestamp": 5.25}]"#;
    let first = codec.decode_at(text, record).unwrap();
    assert_eq!(first.samples[0].timestamp, record);
    assert_eq!(
        first.samples[1].timestamp,
        Timestamp::from_nanos(5_250_000_000),
        "a sample's own time wins (epoch seconds)"
    );
    assert_eq!(codec.decode_at(text, record).unwrap(), first, "the same bytes decode to the same samples");
}

#[test]
fn messages_over_the_sample_and_depth_limits_are_refused_naming_the_limit() {
    let limits = IngestLimits { max_samples_per_message: 3, max_json_depth: 4, ..IngestLimits::default() };
    let codec = Codec::new(Encoding::Json).with_limits(limits);
    let four = br#"[{"v":1},{"v":1},{"v":1},{"v":1}]"#;
    assert_eq!(codec.decode(four).unwrap_err(), CodecError::TooManySamples { max: 3 });
    assert!(codec.decode(br#"[{"v":1},{"v":1},{"v":1}]"#).is_ok());
    let deep = br#"{"v": [[[[1]]]]}"#;
    let e = codec.decode(deep).unwrap_err();
    assert_eq!(e, CodecError::TooDeep { max: 4 });
    assert!(e.to_string().contains("max_json_depth"));
    let bincode = Codec::new(Encoding::Bincode).with_limits(limits);
    let batch = SampleBatch::new((0..4).map(sample).collect());
    let bytes = Codec::new(Encoding::Bincode).encode(&batch).unwrap();
    assert_eq!(bincode.decode(&bytes).unwrap_err(), CodecError::TooManySamples { max: 3 });
}
