use qadf_core_types::rules::RulesConfig;
use qadf_core_types::{Point3, Severity};

use super::*;

fn sample(build: &str, layer: u32, i: i64, x: f64, t: f64) -> Sample {
    let mut s = Sample::new(Timestamp::from_nanos(i), Point3::new(x, 1.05, 0.0), [("t", t)].into_iter().collect());
    s.build_id = build.into();
    s.layer = layer;
    s
}

fn reporter() -> LayerReporter {
    let rules = "sample_rate_hz = 1000.0\n[[rule]]\nname = \"hot\"\nkind = \"range\"\nsignal = \"t\"\nwarning = [0.0, 10.0]\ncritical = [-5.0, 20.0]\n[[rule]]\nname = \"gap\"\nkind = \"gap\"\nmax_gap_periods = 3.0\n";
    let rules = RulesConfig::from_toml_str(rules, "t").unwrap().compile(10, 1000).unwrap();
    LayerReporter::new(VoxelGrid::new(Point3::origin(), Point3::new(10.0, 10.0, 1.0), 0.1).unwrap(), &rules)
}

fn alert(build: &str, layer: u32, rule: &str, severity: Severity, value: f64) -> Alert {
    Alert {
        checkpoint: rule.into(),
        severity,
        build_id: build.into(),
        layer: Some(layer),
        position: None,
        signal: None,
        unit: None,
        value,
        threshold: 0.0,
        timestamp: Timestamp::EPOCH,
        message: String::new(),
    }
}

#[test]
fn a_layer_is_reported_when_its_builds_next_layer_starts_with_statistics_voxels_and_verdict() {
    let r = reporter();
    // Layer 0: four samples in two x-y voxels (x 1.0 and 1.25), one of them at 12 (outside the
    // warning band): one voxel of two out of limits. A warning and a 0.5 ms gap alert.
    let layer0 = [
        sample("b", 0, 1, 1.01, 2.0),
        sample("b", 0, 2, 1.02, 4.0),
        sample("b", 0, 3, 1.25, 6.0),
        sample("b", 0, 4, 1.26, 12.0),
    ];
    let alerts = [alert("b", 0, "hot", Severity::Warning, 12.0), alert("b", 0, "gap", Severity::Warning, 0.5)];
    assert!(r.observe(&layer0, &alerts).is_empty(), "layer 0 is still open");
    let closed = r.observe(&[sample("b", 1, 5, 1.0, 3.0), sample("b", 0, 6, 1.0, 3.0)], &[]);
    assert_eq!(closed.len(), 1);
    let report = &closed[0];
    assert_eq!((report.build_id.as_str(), report.layer, report.verdict), ("b", 0, Verdict::Warning));
    assert_eq!(
        (report.samples, report.first_sample, report.last_sample),
        (4, Timestamp::from_nanos(1), Timestamp::from_nanos(4))
    );
    let t = &report.signals["t"];
    assert_eq!((t.count, t.mean, t.min, t.max), (4, 6.0, 2.0, 12.0));
    assert!((t.std - (56.0f64 / 3.0).sqrt()).abs() < 1e-12, "{t:?}");
    assert_eq!((report.voxels, report.voxels_out_of_limits, report.out_of_limits_share), (2, 1, 0.5));
    assert_eq!(report.alerts_by_rule, [("gap".to_owned(), 1), ("hot".to_owned(), 1)].into_iter().collect());
    assert_eq!(report.dropout_ms, 0.5);
    // The late layer-0 sample counts in layer 1's report as late, not in its statistics.
    let finished = r.finish();
    assert_eq!(
        (finished[0].layer, finished[0].samples, finished[0].late_samples, finished[0].verdict),
        (1, 1, 1, Verdict::Ok)
    );
}

#[test]
fn builds_keep_their_own_layers_and_a_critical_alert_makes_a_critical_layer() {
    let r = reporter();
    let batch = [sample("a", 0, 1, 1.0, 1.0), sample("b", 3, 2, 1.0, 1.0), sample("a", 0, 3, 1.0, 30.0)];
    assert!(
        r.observe(
            &batch,
            &[alert("a", 0, "hot", Severity::Critical, 30.0), alert("b", 2, "hot", Severity::Critical, 1.0)]
        )
        .is_empty()
    );
    let done = r.finish();
    let verdicts: Vec<_> = done.iter().map(|l| (l.build_id.as_str(), l.layer, l.verdict, l.samples)).collect();
    assert_eq!(verdicts, [("a", 0, Verdict::Critical, 2), ("b", 3, Verdict::Ok, 1)], "b's alert is of another layer");
    assert!(r.finish().is_empty(), "finish closes every layer once");
}
