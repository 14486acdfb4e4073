//! Each rule kind, configured through a rules file, raises its alert at the analytically
//! expected sample of a textbook sequence.

use std::sync::Arc;

use qadf_core_types::rules::RulesConfig;
use qadf_core_types::{Alert, Point3, Sample, SampleBatch, Severity, Timestamp};
use qadf_pipeline::rules::{add_rules, compile};
use qadf_pipeline::{Pipeline, PipelineBuilder, VoxelStage};
use qadf_voxel::VoxelGrid;

/// Samples 10 µs apart (100 kHz) of signal `v`, sample `i` at `i * 10 µs`.
fn samples(values: &[f64]) -> Vec<Sample> {
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let mut s = Sample::new(
                Timestamp::from_nanos(i as i64 * 10_000),
                Point3::new(1.0 + (i % 10) as f64 * 0.1, 1.0, 0.05),
                [("v", v)].into_iter().collect(),
            );
            s.build_id = "b1".into();
            s
        })
        .collect()
}

fn pipeline(rules: &str) -> Pipeline {
    let voxels =
        Arc::new(VoxelStage::per_build(VoxelGrid::new(Point3::origin(), Point3::new(10.0, 10.0, 1.0), 0.1).unwrap()));
    let rules = RulesConfig::from_toml_str(rules, "test").unwrap().compile(100, 1000).unwrap();
    let checks = compile(rules, &voxels).unwrap();
    add_rules(PipelineBuilder::new().dedup_interval(std::time::Duration::ZERO).add_stage(voxels), &checks).build()
}

/// The alerts of one batch, as (sample index, severity).
fn alerts(rules: &str, samples: Vec<Sample>) -> Vec<Alert> {
    pipeline(rules).process(SampleBatch::new(samples)).unwrap().alerts
}

fn at(a: &Alert) -> i64 {
    a.timestamp.as_nanos() / 10_000
}

#[test]
fn range_rule_raises_warning_then_critical_with_unit() {
    let mut v = vec![1900.0; 10];
    v[5] = 2050.0;
    v[7] = 2200.0;
    v[8] = 1650.0;
    let rules = r#"[[rule]]
name = "temp"
kind = "range"
signal = "v"
unit = "K"
warning = [1800.0, 2000.0]
critical = [1700.0, 2150.0]"#;
    let got: Vec<_> = alerts(rules, samples(&v)).iter().map(|a| (at(a), a.severity, a.threshold)).collect();
    assert_eq!(got, [(5, Severity::Warning, 2000.0), (7, Severity::Critical, 2150.0), (8, Severity::Critical, 1700.0)]);
    assert_eq!(alerts(rules, samples(&v))[0].unit.as_deref(), Some("K"));
}

#[test]
fn rate_and_gap_rules() {
    // 100 samples at 100 kHz: a floor of 200 kHz fails once, per build and source.
    let rate = "[[rule]]\nname = \"rate\"\nkind = \"rate\"\nmin_hz = 200000.0\nseverity = \"critical\"";
    let a = alerts(rate, samples(&[1.0; 100]));
    assert_eq!((a.len(), a[0].severity), (1, Severity::Critical));
    assert!((a[0].value - 100_000.0).abs() < 1e-6, "{a:?}");
    // Three periods at 100 kHz = 30 µs; samples 40..45 missing: the gap is seen at sample 45.
    let gap = "sample_rate_hz = 100000.0\n[[rule]]\nname = \"gap\"\nkind = \"gap\"\nmax_gap_periods = 3.0";
    let kept: Vec<Sample> =
        samples(&[1.0; 100]).into_iter().enumerate().filter(|(i, _)| !(40..45).contains(i)).map(|(_, s)| s).collect();
    let a = alerts(gap, kept);
    assert_eq!(a.iter().map(at).collect::<Vec<_>>(), [45]);
    assert!((a[0].value - 0.06).abs() < 1e-9 && (a[0].threshold - 0.03).abs() < 1e-9, "{a:?}");
}

#[test]
fn zscore_rule_flags_the_spike() {
    // Alternating 9 and 11 (window of 20: mean 10, std √(20/19) = 1.026): 14 at sample 40 is
    // 4 / 1.026 = 3.90 sigma out: flagged with k = 3.8, not with k = 4.
    let mut v: Vec<f64> = (0..60).map(|i| if i % 2 == 0 { 9.0 } else { 11.0 }).collect();
    v[40] = 14.0;
    let rules = "[[rule]]\nname = \"z\"\nkind = \"zscore\"\nsignal = \"v\"\nwindow = 20\nk = 3.8";
    let a = alerts(rules, samples(&v));
    assert_eq!(a.iter().map(at).collect::<Vec<_>>(), [40]);
    assert!((a[0].value - 4.0 / (20.0f64 / 19.0).sqrt()).abs() < 1e-9, "{a:?}");
    assert!(alerts(&rules.replace("3.8", "4.0"), samples(&v)).is_empty());
}

#[test]
fn hotspot_rule_flags_the_hot_voxel() {
    let mut s = samples(&(0..300).map(|i| 1900.0 + (i % 7) as f64).collect::<Vec<_>>());
    for x in s.iter_mut().skip(290) {
        x.position = Some(Point3::new(5.0, 5.0, 0.05));
        x.signals = [("v", 2600.0)].into_iter().collect();
    }
    let rules =
        "[[rule]]\nname = \"hot\"\nkind = \"hotspot\"\nsignal = \"v\"\nk = 4.0\nmin_count = 3\nseverity = \"critical\"";
    let a = alerts(rules, s);
    // The voxel stage fuses the batch before the rules run: each of the 10 hot samples sees its
    // voxel (10 samples, mean 2600) above the layer's mean + 4 sigma.
    assert_eq!(a.iter().map(at).collect::<Vec<_>>(), (290..300).collect::<Vec<_>>());
    let at_voxel = |a: &Alert| (a.position.unwrap() - Point3::new(5.05, 5.05, 0.05)).norm() < 1e-9;
    assert!(a.iter().all(|a| a.severity == Severity::Critical && at_voxel(a)), "{a:?}");
}

#[test]
fn spc_xbar_charts_with_fixed_and_learned_limits() {
    // Fixed: centre 10, sigma 1, subgroups of 4: UCL = 10 + 3 / 2 = 11.5. Subgroup 3 (samples
    // 12-15) has mean 11.6: WE1 at its last sample, 15. WE rules off but 1, so nothing else fires.
    let mut v = vec![10.0; 32];
    v[12..16].copy_from_slice(&[11.6; 4]);
    let fixed = "[[rule]]\nname = \"x\"\nkind = \"spc\"\nchart = \"xbar_r\"\nsignal = \"v\"\nsubgroup_size = 4\ncenter = 10.0\nsigma = 1.0\nrun_rules = [\"we1\"]";
    let a = alerts(fixed, samples(&v));
    assert_eq!(a.iter().map(at).collect::<Vec<_>>(), [15]);
    assert!((a[0].threshold - 11.5).abs() < 1e-12 && (a[0].value - 11.6).abs() < 1e-12, "{a:?}");

    // Learned X̄-S: 5 subgroups [9, 10, 10, 11]: S = √(2/3), c₄(4) = 0.9213, σ(X̄) = S / (c₄ · 2),
    // UCL = 10 + 3 σ(X̄) ≈ 11.329. A subgroup of 11.4 (samples 20-23) is out; one of 11.3 is in.
    let mut v: Vec<f64> = (0..5).flat_map(|_| [9.0, 10.0, 10.0, 11.0]).collect();
    v.extend([11.4; 4]);
    v.extend([10.0; 4]);
    v.extend([11.3; 4]);
    let learned = "[[rule]]\nname = \"s\"\nkind = \"spc\"\nchart = \"xbar_s\"\nsignal = \"v\"\nsubgroup_size = 4\nwarmup = 5\nrun_rules = [\"we1\"]";
    let a = alerts(learned, samples(&v));
    assert_eq!(a.iter().map(at).collect::<Vec<_>>(), [23]);
    let c4 = 0.921_317_731_923_561;
    let ucl = 10.0 + 3.0 * (2.0f64 / 3.0).sqrt() / (c4 * 2.0);
    assert!((a[0].threshold - ucl).abs() < 1e-9, "{} vs {ucl}", a[0].threshold);
}

#[test]
fn spc_ewma_and_cusum_charts() {
    // EWMA, λ = 0.2, L = 3, centre 0, σ 1, every x = 2: z_t = 2 (1 − 0.8^t) against
    // 3 √(λ/(2−λ) (1 − 0.64^t)); the first t where z_t exceeds it.
    let expected = (1..)
        .find(|&t| 2.0 * (1.0 - 0.8f64.powi(t)) > 3.0 * (0.2 / 1.8 * (1.0 - 0.64f64.powi(t))).sqrt())
        .unwrap() as i64
        - 1;
    let ewma = "[[rule]]\nname = \"e\"\nkind = \"spc\"\nchart = \"ewma\"\nsignal = \"v\"\nlambda = 0.2\nl = 3.0\ncenter = 0.0\nsigma = 1.0";
    assert_eq!(alerts(ewma, samples(&[2.0; 6]))[0..1].iter().map(at).collect::<Vec<_>>(), [expected]);
    assert_eq!(expected, 2, "t = 3 by hand: 0.976 > 0.859");

    // CUSUM, k = 0.5, h = 5, centre 0, σ 1, every x = 1.5: C⁺ grows by 1 a sample and first
    // exceeds 5 at the sixth (index 5); it restarts, so the next alarm is at index 11.
    let cusum = "[[rule]]\nname = \"c\"\nkind = \"spc\"\nchart = \"cusum\"\nsignal = \"v\"\ncusum_k = 0.5\ncusum_h = 5.0\ncenter = 0.0\nsigma = 1.0";
    assert_eq!(alerts(cusum, samples(&[1.5; 12])).iter().map(at).collect::<Vec<_>>(), [5, 11]);
    // Learned over a warm-up of 10 alternating values (mean 0, MR̄ = 2, σ = 2/1.128).
    let mut v: Vec<f64> = (0..10).map(|i| if i % 2 == 0 { -1.0 } else { 1.0 }).collect();
    v.extend([0.0; 5]);
    let learned = cusum.replace("center = 0.0\nsigma = 1.0", "warmup = 10");
    assert!(alerts(&learned, samples(&v)).is_empty(), "in control after the warm-up");
}

#[test]
fn scope_severity_and_per_rule_dedup() {
    let mut s = samples(&[2500.0; 20]);
    for x in s.iter_mut().take(5) {
        x.tags.insert("material", "Ti64");
    }
    for x in s.iter_mut().skip(15) {
        x.source_id = "pyro-2".into();
    }
    let rules = r#"
[[rule]]
name = "ti64_only"
kind = "range"
signal = "v"
critical = [0.0, 2000.0]
scope = { tags = { material = "Ti64" } }
[[rule]]
name = "pyro2_only"
kind = "range"
signal = "v"
warning = [0.0, 2000.0]
scope = { sources = ["pyro-2"] }
[[rule]]
name = "everyone_deduplicated"
kind = "zscore"
signal = "v"
window = 2
k = 1.0
severity = "info"
dedup_interval_ms = 1000
"#;
    let voxels =
        Arc::new(VoxelStage::per_build(VoxelGrid::new(Point3::origin(), Point3::new(10.0, 10.0, 1.0), 0.1).unwrap()));
    let checks = compile(RulesConfig::from_toml_str(rules, "t").unwrap().compile(100, 1000).unwrap(), &voxels).unwrap();
    // A global interval of zero keeps every range alert; the z-score rule keeps its own 1 s.
    let p = add_rules(PipelineBuilder::new().dedup_interval(std::time::Duration::ZERO), &checks).build();
    let a = p.process(SampleBatch::new(s)).unwrap().alerts;
    let by = |name: &str| a.iter().filter(|x| x.checkpoint == name).map(at).collect::<Vec<_>>();
    assert_eq!(by("ti64_only"), [0, 1, 2, 3, 4]);
    assert_eq!(by("pyro2_only"), [15, 16, 17, 18, 19]);
    assert!(a.iter().filter(|x| x.checkpoint == "pyro2_only").all(|x| x.severity == Severity::Warning));
    assert!(by("everyone_deduplicated").is_empty(), "constant values: no z-score alerts");
}

#[test]
fn window_rules_judge_the_buffers_count_and_time_windows_after_each_batch() {
    // Count window of 10, batches of 5: samples 0-19 are 9, 20-29 are 12. After the batch ending
    // at 24 the window holds five 9s and five 12s: mean 10.5, above the warning limit 10.
    let mut v = vec![9.0; 20];
    v.extend([12.0; 10]);
    let rules = "[[rule]]\nname = \"w\"\nkind = \"window\"\nsignal = \"v\"\nunit = \"mV\"\nwindow = 10\nbuffer = 50\nwarning = [0.0, 10.0]";
    let p = pipeline(rules);
    let mut alerts = Vec::new();
    for chunk in samples(&v).chunks(5) {
        alerts.extend(p.process(SampleBatch::new(chunk.to_vec())).unwrap().alerts);
    }
    let got: Vec<_> = alerts.iter().map(|a| (at(a), a.value, a.severity, a.unit.as_deref())).collect();
    assert_eq!(got, [(24, 10.5, Severity::Warning, Some("mV")), (29, 12.0, Severity::Warning, Some("mV"))]);

    // A time window of 50 µs of measurement time up to the newest sample (10 µs apart): samples
    // 4-9 of values 0-9, mean 6.5, above 6. The standard deviation of the same window: √3.5.
    let values: Vec<f64> = (0..10).map(f64::from).collect();
    let timed = "[[rule]]\nname = \"t\"\nkind = \"window\"\nsignal = \"v\"\nwindow_ms = 0.05\ncritical = [0.0, 6.0]";
    let a = alerts_of(timed, &values);
    assert_eq!(a.iter().map(|a| (at(a), a.value, a.severity)).collect::<Vec<_>>(), [(9, 6.5, Severity::Critical)]);
    let std = timed.replace("critical = [0.0, 6.0]", "statistic = \"std\"\ncritical = [0.0, 1.0]");
    let a = alerts_of(&std, &values);
    assert!((a[0].value - 3.5f64.sqrt()).abs() < 1e-12, "{a:?}");
}

fn alerts_of(rules: &str, values: &[f64]) -> Vec<Alert> {
    alerts(rules, samples(values))
}

#[test]
fn a_nelson_run_rule_chosen_in_the_file_fires_where_its_run_completes() {
    // X̄ of 4, centre 10, sigma 1: σ(X̄) = 0.5, z = 2 (mean − 10). Subgroup means 10.0, 10.1,
    // ... 10.5 (z 0 to 1, inside every limit) rise six times in a row: N3 at the sixth subgroup's
    // last sample, 23. With only `we1`-`we4`, nothing fires.
    let v: Vec<f64> = (0..6).flat_map(|g| [10.0 + 0.1 * f64::from(g); 4]).collect();
    let rules = "[[rule]]\nname = \"trend\"\nkind = \"spc\"\nchart = \"xbar_r\"\nsignal = \"v\"\nsubgroup_size = 4\ncenter = 10.0\nsigma = 1.0\nrun_rules = [\"n3\"]";
    let a = alerts(rules, samples(&v));
    assert_eq!(a.iter().map(at).collect::<Vec<_>>(), [23], "{a:?}");
    assert!(a[0].message.contains("N3: 6 in a row steadily increasing"), "{}", a[0].message);
    assert!(alerts(&rules.replace("[\"n3\"]", "[\"we1\", \"we2\", \"we3\", \"we4\"]"), samples(&v)).is_empty());
}

#[test]
fn forgetting_a_build_drops_only_its_windows_charts_and_last_samples() {
    let rules = r#"sample_rate_hz = 100000.0
[[rule]]
name = "z"
kind = "zscore"
signal = "v"
window = 20
k = 3.0
[[rule]]
name = "ewma"
kind = "spc"
signal = "v"
chart = "ewma"
warmup = 20
[[rule]]
name = "gap"
kind = "gap"
max_gap_periods = 3.0"#;
    let voxels =
        Arc::new(VoxelStage::per_build(VoxelGrid::new(Point3::origin(), Point3::new(10.0, 10.0, 1.0), 0.1).unwrap()));
    let checks =
        compile(RulesConfig::from_toml_str(rules, "test").unwrap().compile(100, 1000).unwrap(), &voxels).unwrap();
    let of = |build: &str, values: &[f64], from: i64| -> Vec<Sample> {
        let mut s = samples(values);
        for x in &mut s {
            x.build_id = build.into();
            x.timestamp = Timestamp::from_nanos(x.timestamp.as_nanos() + from * 10_000);
        }
        s
    };
    let steady: Vec<f64> = (0..40).map(|i| if i % 2 == 0 { 9.0 } else { 11.0 }).collect();
    for build in ["b1", "b2"] {
        for check in &checks {
            assert!(
                qadf_pipeline::QualityCheck::check(&**check, &SampleBatch::new(of(build, &steady, 0)))
                    .alerts
                    .is_empty()
            );
        }
    }
    for check in &checks {
        qadf_pipeline::QualityCheck::forget(&**check, "b1");
    }
    // After a gap of 60 periods, a jump of 40: the remembered build b2 trips every rule; b1 starts afresh.
    let jump = [50.0, 51.0];
    for check in &checks {
        let name = qadf_pipeline::QualityCheck::name(&**check).to_owned();
        let b2 = qadf_pipeline::QualityCheck::check(&**check, &SampleBatch::new(of("b2", &jump, 100)));
        assert!(!b2.alerts.is_empty(), "{name} remembers b2");
        let b1 = qadf_pipeline::QualityCheck::check(&**check, &SampleBatch::new(of("b1", &jump, 100)));
        assert!(b1.alerts.is_empty(), "{name} forgot b1: {:?}", b1.alerts);
    }
}
