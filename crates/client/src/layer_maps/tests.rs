use std::collections::BTreeMap;
use std::sync::Arc;

use qadf_core_types::{Alert, HistoryStore, LayerReport, Point3, Sample, Severity, Signals, Timestamp, Verdict};
use qadf_storage::EmbeddedStore;

use super::*;

fn sample(build: &str, layer: u32, x: f64, t: f64, at: i64) -> Sample {
    let mut signals = Signals::new();
    signals.push("temperature", t);
    let mut s = Sample::new(Timestamp::from_nanos(at), Point3::new(x, 1.0, layer as f64 * 0.03), signals);
    s.build_id = build.into();
    s.layer = layer;
    s
}

fn alert(build: &str, layer: u32, severity: Severity) -> Alert {
    Alert {
        checkpoint: "t".to_owned(),
        severity,
        build_id: build.to_owned(),
        layer: Some(layer),
        position: Some(Point3::new(1.0, 1.0, 0.0)),
        signal: Some("temperature".to_owned()),
        unit: Some("K".to_owned()),
        value: 2349.5,
        threshold: 2150.0,
        timestamp: Timestamp::from_nanos(5),
        message: "hot".to_owned(),
    }
}

fn maps(keep: usize) -> LayerMaps {
    LayerMaps::new(Geometry::covering([0.0, 0.0], [10.0, 10.0], 0.1), keep)
}

fn max_of(maps: &LayerMaps, build: &str, layer: u32) -> Result<f64, MapError> {
    maps.with_map(build, layer, |m| {
        m.raster
            .tiles_since("temperature", Stat::Max, 0)
            .iter()
            .flat_map(|t| t.values.iter().flatten().copied())
            .fold(f64::NEG_INFINITY, f64::max)
    })
}

#[test]
fn each_layer_has_its_own_map_and_summary() {
    let m = maps(16);
    let batch: Vec<Sample> =
        (0..3).flat_map(|l| (0..10).map(move |i| sample("b", l, i as f64, 1000.0 + l as f64, i))).collect();
    m.observe(&batch, &[alert("b", 1, Severity::Critical)], &[]);
    assert_eq!(max_of(&m, "b", 0), Ok(1000.0));
    assert_eq!(max_of(&m, "b", 2), Ok(1002.0), "no slab: layer 2 holds only layer 2's values");
    let strip = m.summaries("b", 0);
    assert_eq!(
        strip.iter().map(|s| (s.layer, s.samples, s.alerts)).collect::<Vec<_>>(),
        [(0, 10, 0), (1, 10, 1), (2, 10, 0)]
    );
    assert_eq!((strip[1].verdict, strip[1].first_sample_ns, strip[1].last_sample_ns), (Verdict::Critical, 0, 9));
    assert_eq!(m.alerts("b", 1).len(), 1);
    assert_eq!(m.newest("b").map(|(l, _)| l), Some(2));
    assert_eq!(max_of(&m, "other", 0), Err(MapError::Unknown));
}

#[test]
fn only_changed_summaries_are_returned_and_a_report_closes_its_layer() {
    let m = maps(16);
    m.observe(&[sample("b", 0, 1.0, 1.0, 1), sample("b", 1, 1.0, 1.0, 2)], &[], &[]);
    let seen = m.summaries("b", 0).iter().map(|s| s.version).max().unwrap();
    let mut signals = BTreeMap::new();
    signals.insert(
        "temperature".to_owned(),
        qadf_core_types::LayerSignal { count: 1, mean: 1.0, min: 1.0, max: 1.0, std: 0.0 },
    );
    let report = LayerReport {
        build_id: "b".to_owned(),
        layer: 0,
        verdict: Verdict::Warning,
        samples: 1,
        late_samples: 0,
        first_sample: Timestamp::from_nanos(1),
        last_sample: Timestamp::from_nanos(1),
        signals,
        voxels: 1,
        voxels_out_of_limits: 1,
        out_of_limits_share: 1.0,
        alerts_by_rule: BTreeMap::new(),
        dropout_ms: 0.0,
    };
    m.observe(&[], &[], &[report]);
    let changed = m.summaries("b", seen);
    assert_eq!(changed.len(), 1);
    assert!(
        changed[0].closed && changed[0].verdict == Verdict::Warning && changed[0].signals.contains_key("temperature")
    );
}

#[test]
fn old_maps_leave_memory_and_come_back_from_the_history() {
    let m = maps(2);
    let samples: Vec<Sample> = (0..5).map(|l| sample("b", l, 2.0, 1500.0 + l as f64, l as i64 + 1)).collect();
    for s in &samples {
        m.observe(std::slice::from_ref(s), &[], &[]);
    }
    let in_memory = |l| m.with_map("b", l, |v| !v.from_history);
    assert_eq!((in_memory(3), in_memory(4)), (Ok(true), Ok(true)));
    assert_eq!(max_of(&m, "b", 0), Err(MapError::NotKept), "no history: an old map is gone, and says so");
    assert_eq!(m.summaries("b", 0).len(), 5, "the strip keeps every layer");

    let dir = std::env::temp_dir().join(format!("qadf-layer-maps-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = Arc::new(EmbeddedStore::open(&dir.join("history.redb")).unwrap());
    store.store_samples(&samples).unwrap();
    m.set_history(store);
    assert_eq!(max_of(&m, "b", 1), Ok(1501.0), "rebuilt from the history");
    assert_eq!(m.with_map("b", 1, |v| v.from_history), Ok(true));
    std::fs::remove_dir_all(&dir).unwrap();
}
