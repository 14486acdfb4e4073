//! Table tests of the schema: each producer shape to its samples, each bad shape to a refusal.

use super::*;

fn schema(toml_text: &str) -> Schema {
    let config: SchemaConfig = toml::from_str(toml_text).unwrap();
    Schema::compile(&config).unwrap()
}

const RECORD_TIME: Timestamp = Timestamp::from_nanos(1_700_000_000_000_000_000);

fn decode(schema: &Schema, text: &str) -> Result<Vec<Sample>, CodecError> {
    let record = RecordContext { timestamp: Some(RECORD_TIME), key: Some(b"key-build") };
    schema.decode(text, &record, &IngestLimits::default())
}

fn refusal(schema: &Schema, text: &str) -> (usize, String, String) {
    match decode(schema, text) {
        Err(CodecError::Schema { sample, field, rule }) => (sample, field, rule),
        other => panic!("expected a refusal of {text}, got {other:?}"),
    }
}

const PYTHON_FIXTURE: &str = r#"{"sensor_id": "sensor_0", "temperature": 1024.8, "power": 198.6, "velocity": 103.2, "x": 15.6, "y": 15.5, "z": 0.58, "timestamp": "2026-01-30T17:31:18.343884"}"#;

#[test]
fn the_python_originals_fixture_decodes_unchanged_under_the_defaults() {
    let s = decode(&Schema::default(), PYTHON_FIXTURE).unwrap();
    assert_eq!(s.len(), 1);
    let s = &s[0];
    assert_eq!((s.build_id.as_str(), s.source_id.as_str(), s.layer), ("unknown", "sensor_0", 0));
    assert_eq!(s.timestamp.as_nanos(), 1_769_794_278_343_884_000, "naive time read as UTC, to the microsecond");
    assert_eq!(s.position, Some(Point3::new(15.6, 15.5, 0.58)));
    let signals: Vec<(&str, f64)> = s.signals.iter().collect();
    assert_eq!(signals, [("temperature", 1024.8), ("power", 198.6), ("velocity", 103.2)]);
    assert!(s.tags.is_empty());
}

use crate::{Point3, Tags};

#[test]
fn the_canonical_form_and_generic_objects_decode_as_before() {
    let canonical = r#"{"build_id":"b1","source_id":"s1","layer":3,"timestamp":"2026-11-27T21:35:55.123456789Z","position":[1.0,2.0,0.09],"signals":{"temperature":1650.5},"tags":{"material":"Ti64"}}"#;
    let s = &decode(&Schema::default(), canonical).unwrap()[0];
    assert_eq!((s.build_id.as_str(), s.source_id.as_str(), s.layer), ("b1", "s1", 3));
    assert_eq!(s.timestamp, Timestamp::parse_rfc3339("2026-11-27T21:35:55.123456789Z").unwrap());
    assert_eq!(s.signals.get("temperature"), Some(1650.5));
    assert_eq!(s.tags.get("material"), Some("Ti64"));
    let generic = &decode(&Schema::default(), r#"[{"value": 1.0}, {"value": 2}]"#).unwrap();
    assert_eq!(generic.len(), 2);
    assert_eq!(generic[1].signals.get("value"), Some(2.0));
    assert_eq!(generic[0].timestamp, RECORD_TIME, "no time: the Kafka record's");
    assert_eq!(generic[0].position, None);
    assert_eq!(decode(&Schema::default(), "[]").unwrap(), vec![]);
}

#[test]
fn python_producer_time_forms_decode_to_the_nanosecond() {
    let d = Schema::default();
    let t = |text: &str| decode(&d, text).unwrap()[0].timestamp.as_nanos();
    assert_eq!(t(r#"{"v": 1, "timestamp": 1769794278.343884}"#), 1_769_794_278_343_884_000, "time.time()");
    assert_eq!(t(r#"{"v": 1, "timestamp": "2026-01-30T17:31:18.343884+00:00"}"#), 1_769_794_278_343_884_000);
    assert_eq!(t(r#"{"v": 1, "time": "2026-01-30 17:31:18.343884"}"#), 1_769_794_278_343_884_000, "alias");
    let ms = schema("epoch_unit = \"milliseconds\"");
    assert_eq!(
        decode(&ms, r#"{"v": 1, "ts": 1769794278343}"#).unwrap()[0].timestamp.as_nanos(),
        1_769_794_278_343_000_000
    );
    let ns = schema("epoch_unit = \"nanoseconds\"");
    assert_eq!(
        decode(&ns, r#"{"v": 1, "t": 1769794278343884001}"#).unwrap()[0].timestamp.as_nanos(),
        1_769_794_278_343_884_001
    );
    let local = schema("time_zone = \"Europe/Berlin\"");
    assert_eq!(
        decode(&local, r#"{"v": 1, "timestamp": "2026-01-30T18:31:18.343884"}"#).unwrap()[0].timestamp.as_nanos(),
        1_769_794_278_343_884_000
    );
}

#[test]
fn roles_aliases_units_tags_envelope_layer_from_z_and_the_kafka_key() {
    let s = schema(
        r#"
        envelope = "payload.data"
        build_from = "kafka_key"
        source_fields = ["machine"]
        layer_from = "z"
        layer_thickness_mm = 0.03
        first_layer_z_mm = 0.03
        position_fields = ["pos"]
        position_unit = "um"
        signals = ["temp", "intensity"]
        tag_fields = ["material", "job"]
        [units]
        temp = "degC"
        intensity = "mV"
        "#,
    );
    let text = r#"{"payload": {"data": [
        {"machine": "m1", "pos": {"x": 1000, "y": 2000, "z": 120}, "temp": 1600.0, "intensity": 1500, "material": "Ti64", "job": 7, "noise": 3, "timestamp": "2026-01-30T17:31:18Z"},
        {"machine": "m1", "pos": [1000, 2000, 30], "temp": 1700.5, "intensity": 1400, "material": "Ti64", "job": 7}
    ]}, "meta": "ignored outside the envelope"}"#;
    let out = decode(&s, text).unwrap();
    assert_eq!(out.len(), 2);
    let a = &out[0];
    assert_eq!((a.build_id.as_str(), a.source_id.as_str()), ("key-build", "m1"));
    assert_eq!(a.position, Some(Point3::new(1.0, 2.0, 0.12)));
    assert_eq!(a.layer, 3, "z 0.12 mm, first layer at 0.03 mm, 0.03 mm layers");
    assert_eq!(out[1].layer, 0);
    assert_eq!(a.signals.get("temp"), Some(1873.15), "°C to K");
    assert!((a.signals.get("intensity").unwrap() - 1.5).abs() < 1e-12, "mV to V");
    assert_eq!(a.signals.get("noise"), None, "not in the allow-list");
    assert_eq!((a.tags.get("material"), a.tags.get("job")), (Some("Ti64"), Some("7")));
    assert_eq!(s.unit_of("temp"), Some("K"));
    assert_eq!(out[1].timestamp, RECORD_TIME);
    let constant = schema("build_from = \"constant\"\ndefault_build = \"plate-7\"");
    assert_eq!(decode(&constant, r#"{"build_id": "other", "v": 1}"#).unwrap()[0].build_id, "plate-7");
    let text_tags = schema("other_text = \"tags\"");
    let t = &decode(&text_tags, r#"{"v": 1, "status": "ok", "flag": true}"#).unwrap()[0];
    assert_eq!((t.tags.get("status"), t.tags.get("flag")), (Some("ok"), Some("true")));
    let ignore = schema("other_text = \"ignore\"");
    let i = &decode(&ignore, r#"{"v": 1, "status": "ok", "nested": {"a": 1}, "list": [1, "x"]}"#).unwrap()[0];
    assert!(i.tags.is_empty() && i.signals.len() == 1);
}

#[test]
fn columnar_batches_broadcast_scalars_and_keep_every_column() {
    let d = Schema::default();
    let text = r#"{"build_id": "b1", "sensor_id": "s1", "layer": 4,
        "t": [1769794278.0, 1769794278.00001, 1769794278.00002],
        "x": [1, 2, 3], "y": [4.5, 5.5, 6.5], "z": [0.12, 0.12, 0.12],
        "temperature": [1600.0, null, 1602.0], "power": 200}"#;
    let out = decode(&d, text).unwrap();
    assert_eq!(out.len(), 3);
    assert_eq!(out[1].timestamp.as_nanos(), 1_769_794_278_000_010_000);
    assert_eq!(out[2].position, Some(Point3::new(3.0, 6.5, 0.12)));
    assert_eq!((out[2].build_id.as_str(), out[2].source_id.as_str(), out[2].layer), ("b1", "s1", 4));
    assert_eq!(out[0].signals.iter().collect::<Vec<_>>(), [("temperature", 1600.0), ("power", 200.0)]);
    assert_eq!(out[1].signals.iter().collect::<Vec<_>>(), [("power", 200.0)], "null: no value in that row");
    let positions = r#"{"timestamp": ["2026-01-30T17:31:18Z", "2026-01-30T17:31:19Z"], "position": [[1,2,3],[4,5,6]], "v": [1, 2]}"#;
    let out = decode(&d, positions).unwrap();
    assert_eq!(out[1].position, Some(Point3::new(4.0, 5.0, 6.0)));
    let rows = schema("layout = \"rows\"");
    let (_, field, rule) = refusal(&rows, r#"{"v": [1, 2]}"#);
    assert_eq!(field, "v");
    assert!(rule.contains("an array"), "{rule}");
    let columns = schema("layout = \"columns\"");
    assert_eq!(decode(&columns, r#"{"v": 1}"#).unwrap().len(), 1);
}

#[test]
fn all_numeric_batches_build_the_samples_the_general_path_builds() {
    // All-number columns take the in-place path; a text column sends the same batch through
    // the per-field path. Both must give the same samples, and the same refusals.
    let tags =
        schema("other_text = \"tags\"\nlayer_from = \"z\"\nlayer_thickness_mm = 0.05\nepoch_unit = \"nanoseconds\"");
    let numeric = r#"{"build_id": "b1", "t": [1769794278343884001, 1769794278343894001], "x": [1.5, 2],
        "y": [3, 4.25], "z": [0.1, 0.15], "temperature": [1890.5, 1891], "power": 200}"#;
    let with_text = numeric.replacen('{', r#"{"material": ["Ti64", "Ti64"], "#, 1);
    let fast = decode(&tags, numeric).unwrap();
    let mut general = decode(&tags, &with_text).unwrap();
    for s in &mut general {
        assert_eq!(s.tags.get("material"), Some("Ti64"));
        s.tags = Tags::default();
    }
    assert_eq!(fast, general);
    assert_eq!((fast[1].layer, fast[1].timestamp.as_nanos()), (3, 1_769_794_278_343_894_001));
    for (bad, field, rule) in [
        (r#"{"t": [1, 2], "timestamp": [1, 2], "v": [1, 2]}"#, "timestamp", "second time field"),
        (r#"{"x": [1, 2], "y": [1, 2], "v": [1, 2]}"#, "x/y/z", "together"),
        (r#"{"t": [1, 2], "v": [1, 2], "layer": 1.5}"#, "layer", "whole number"),
        (r#"{"t": [1, 1e300], "v": [1, 2]}"#, "t", "1e300 is outside the years"),
    ] {
        let (sample, got_field, got_rule) = refusal(&Schema::default(), bad);
        assert_eq!(got_field, field, "{bad}: {got_rule}");
        assert!(got_rule.contains(rule), "{bad}: `{got_rule}` should say `{rule}`");
        let slow = bad.replacen('{', r#"{"note": ["a", "b"], "#, 1);
        let tagged = schema("other_text = \"tags\"");
        assert_eq!(refusal(&tagged, &slow), (sample, got_field, got_rule), "{slow}");
    }
    // Refusals in different columns: the first refused sample is named, whichever column is read first.
    let by_z = "layer_from = \"z\"\nlayer_thickness_mm = 0.05";
    for (bad, sample, field) in [
        (r#"{"t": [1, 2, 1e300], "x": [1, 1, 1], "y": [1, 1, 1], "z": [0.1, -5, 0.1]}"#, 1, "z"),
        (r#"{"t": [1, 1e300, 1], "x": [1, 1, 1], "y": [1, 1, 1], "z": [0.1, 0.1, -5]}"#, 1, "t"),
        (r#"{"t": [1e300, 1], "x": [1, 1], "y": [1, 1], "z": [1, 1], "v": [1, 2], "timestamp": [1, 2]}"#, 0, "t"),
    ] {
        let fast = refusal(&schema(by_z), bad);
        assert_eq!((fast.0, fast.1.as_str()), (sample, field), "{bad}: {}", fast.2);
        let slow = bad.replacen('{', r#"{"note": ["a", "b", "c"], "#, 1);
        let slow = if bad.contains("[1e300, 1]") { slow.replacen(r#", "c"]"#, "]", 1) } else { slow };
        assert_eq!(refusal(&schema(&format!("{by_z}\nother_text = \"tags\"")), &slow), fast, "{slow}");
    }
}

#[test]
fn every_refusal_names_the_field_and_the_rule() {
    let d = Schema::default();
    let cases: &[(&str, usize, &str, &str)] = &[
        (r#"{"sensor_id": "s", "material": "Ti64", "v": 1}"#, 0, "material", "only numbers are signals"),
        (r#"[{"v": 1}, {"v": 2, "timestamp": "30/01/2026"}]"#, 1, "timestamp", "is not a time"),
        (r#"{"v": 1, "timestamp": true}"#, 0, "timestamp", "a boolean"),
        (r#"{"v": 1, "layer": -1}"#, 0, "layer", "a layer is a whole number"),
        (r#"{"v": 1, "layer": 2.5}"#, 0, "layer", "2.5"),
        (r#"{"v": 1, "build_id": 1.5}"#, 0, "build_id", "an id is text or an integer"),
        (r#"{"v": 1, "source_id": "a", "sensor_id": "b"}"#, 0, "sensor_id", "second source field"),
        (r#"{"v": 1, "x": 1, "y": 2}"#, 0, "x/y/z", "together"),
        (r#"{"v": 1, "position": [1, 2]}"#, 0, "position", "[x, y, z]"),
        (r#"{"v": 1, "position": [1, 2, 3], "x": 1, "y": 1, "z": 1}"#, 0, "position", "not both"),
        (r#"{"v": {"a": 1}}"#, 0, "v", "an object"),
        (r#"{"signals": {"t": "hot"}}"#, 0, "signals.t", "a signal is a number"),
        (r#"{"t": [1, 2], "v": [1, 2, 3]}"#, 0, "v", "columns are equally long"),
        (r#"[1, 2]"#, 0, "(message)", "an array"),
        (r#""text""#, 0, "(message)", "a string"),
        (r#"[{"v": 1}, 3]"#, 1, "[1]", "holds objects"),
        (r#"{"v": 1, "timestamp": 1795000000000000001}"#, 0, "timestamp", "epoch_unit"),
        (r#"{"v": 1, "tags": {"a": [1]}}"#, 0, "tags.a", "a tag is text"),
        (r#"{"v": 1, "\u001b[31m": "x"}"#, 0, "\\u{1b}[31m", "only numbers"),
    ];
    for &(text, sample, field, rule) in cases {
        let (got_sample, got_field, got_rule) = refusal(&d, text);
        assert_eq!((got_sample, got_field.as_str()), (sample, field), "{text}: {got_rule}");
        assert!(got_rule.contains(rule), "{text}: `{got_rule}` should say `{rule}`");
    }
    let envelope = schema("envelope = \"payload.data\"");
    assert_eq!(refusal(&envelope, r#"{"payload": {}}"#).1, "payload.data");
    assert!(refusal(&envelope, r#"{"payload": 3}"#).2.contains("not an object"));
    let key = schema("build_from = \"kafka_key\"");
    let none = RecordContext { timestamp: None, key: None };
    let e = key.decode(r#"{"v": 1}"#, &none, &IngestLimits::default()).unwrap_err();
    assert!(e.to_string().contains("Kafka key"), "{e}");
    let z = schema("layer_from = \"z\"");
    assert_eq!(refusal(&z, r#"{"v": 1}"#).1, "z");
    assert_eq!(refusal(&z, r#"{"v": 1, "x": 0, "y": 0, "z": -1}"#).1, "z");
    let few = IngestLimits { max_samples_per_message: 2, ..IngestLimits::default() };
    let columns = r#"{"t": [1, 2, 3], "v": [1, 2, 3]}"#;
    assert_eq!(d.decode(columns, &none, &few), Err(CodecError::TooManySamples { max: 2 }));
    assert_eq!(d.decode(r#"[{"v":1},{"v":1},{"v":1}]"#, &none, &few), Err(CodecError::TooManySamples { max: 2 }));
}

#[test]
fn bad_settings_are_named_at_compile_time() {
    let config: SchemaConfig = toml::from_str(
        r#"
        source_fields = ["build_id"]
        time_zone = "Mars/Olympus"
        position_unit = "K"
        layer_from = "z"
        layer_thickness_mm = 0
        envelope = "a..b"
        signals = ["temperature"]
        [units]
        temperature = "furlongs"
        power = "W"
        "#,
    )
    .unwrap();
    let errors = Schema::compile(&config).unwrap_err();
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    for want in [
        "schema.source_fields",
        "schema.time_zone",
        "schema.position_unit",
        "schema.layer_thickness_mm",
        "schema.envelope",
        "schema.units.temperature",
        "schema.units.power",
    ] {
        assert!(fields.contains(&want), "{want} missing from {errors:?}");
    }
    assert!(toml::from_str::<SchemaConfig>("unknown_setting = 1").is_err());
    let env_list: SchemaConfig = toml::from_str("signals = \"temperature, power\"").unwrap();
    assert_eq!(env_list.signals, SignalSelection::Only(vec!["temperature".into(), "power".into()]));
}

/// A columnar batch of homogeneous samples, as a monitor sends one: scalars for what all share,
/// one array per coordinate and signal, times as RFC 3339 text or epoch nanoseconds.
fn columnar(samples: &[Sample], nanos: bool) -> String {
    use serde_json::{Value, json};
    let first = &samples[0];
    let mut object = serde_json::Map::new();
    object.insert("build_id".into(), json!(first.build_id));
    object.insert("source_id".into(), json!(first.source_id));
    object.insert("layer".into(), json!(first.layer));
    let times: Vec<Value> = samples
        .iter()
        .map(|s| if nanos { json!(s.timestamp.as_nanos()) } else { json!(s.timestamp.to_rfc3339()) })
        .collect();
    object.insert("t".into(), Value::Array(times));
    if first.position.is_some() {
        for (axis, get) in [("x", 0), ("y", 1), ("z", 2)] {
            object.insert(axis.into(), samples.iter().map(|s| s.position.unwrap()[get]).collect());
        }
    }
    for (name, _) in first.signals.iter() {
        object.insert(name.into(), samples.iter().map(|s| s.signals.get(name).unwrap()).collect());
    }
    for (name, value) in first.tags.iter() {
        object.insert(name.into(), json!(value));
    }
    Value::Object(object).to_string()
}

use proptest::prelude::*;

fn arb_run() -> impl Strategy<Value = Vec<Sample>> {
    let finite = -1e9..1e9f64;
    (
        "[a-z0-9-]{1,12}",
        "[a-z0-9-]{1,12}",
        any::<u32>(),
        any::<bool>(),
        proptest::collection::btree_set("s_[a-z_]{1,8}", 1..4),
        proptest::collection::vec((-4e18..4e18f64, (finite.clone(), finite.clone(), finite), any::<u64>()), 1..40),
        proptest::option::of("[ -~]{1,12}"),
    )
        .prop_map(|(build, source, layer, placed, names, rows, material)| {
            rows.into_iter()
                .map(|(t, (x, y, z), seed)| Sample {
                    build_id: build.as_str().into(),
                    source_id: source.as_str().into(),
                    layer,
                    timestamp: Timestamp::from_nanos(t as i64),
                    position: placed.then(|| Point3::new(x, y, z)),
                    signals: names.iter().enumerate().map(|(i, n)| (n.as_str(), (seed >> i) as f64 / 7.0)).collect(),
                    tags: material.iter().map(|m| ("material", m.as_str())).collect(),
                })
                .collect()
        })
}

proptest! {
    #[test]
    fn prop_columnar_batches_round_trip_exactly(run in arb_run(), nanos in any::<bool>()) {
        let config = SchemaConfig {
            epoch_unit: if nanos { EpochUnit::Nanoseconds } else { EpochUnit::Seconds },
            tag_fields: vec!["material".into()],
            ..SchemaConfig::default()
        };
        let schema = Schema::compile(&config).unwrap();
        let decoded = schema.decode(&columnar(&run, nanos), &RecordContext::default(), &IngestLimits::UNBOUNDED).unwrap();
        prop_assert_eq!(decoded, run);
    }
}
