//! Injected, labelled defects produce alerts at the right layer and place; clean layers produce none,
//! over several seeds and batch sizes.

use qadf_client::StreamingClient;
use qadf_client::demo::alert_matches;
use qadf_client::sim::{Defect, DefectKind, STUCK_VALUE, SimConfig, Simulator};
use qadf_core_types::{Alert, SampleBatch, StreamingConfig, Timestamp, Verdict};

#[test]
fn injected_defects_are_detected_where_they_are_and_clean_layers_stay_quiet() {
    let center = [125.0, 125.0];
    let defects = vec![
        Defect { kind: DefectKind::HotSpot, layer: 1, center, radius_mm: 0.4 },
        Defect { kind: DefectKind::ColdTrack, layer: 3, center, radius_mm: 0.4 },
        Defect { kind: DefectKind::StuckSensor, layer: 4, center, radius_mm: 0.4 },
        Defect { kind: DefectKind::Dropout, layer: 5, center, radius_mm: 0.4 },
    ];
    let sim = SimConfig { layers: 6, part_size_mm: 4.0, defects: defects.clone(), ..SimConfig::default() };
    let config = StreamingConfig { alert_dedup_interval_ms: 0, ..StreamingConfig::default() };
    let client = StreamingClient::new(config).unwrap();
    client.load_rules(Some(&examples_demo_rules()), Some(sim.sample_rate_hz)).unwrap();

    let mut simulator = Simulator::new(sim.clone(), Timestamp::now());
    let mut alerts: Vec<Alert> = Vec::new();
    let mut reports = Vec::new();
    for layer in 0..sim.layers {
        for chunk in simulator.layer(layer).chunks(100) {
            let result = client.process_stream_batch(SampleBatch::new(chunk.to_vec())).unwrap();
            alerts.extend(result.alerts);
            reports.extend(result.layer_reports);
        }
    }
    reports.extend(client.finish_layers());
    // One report per layer, in order: the defect layers are critical (temperature out of its
    // band) or warning (the dropout's gap), the clean ones OK.
    let verdicts: Vec<(u32, Verdict)> = reports.iter().map(|r| (r.layer, r.verdict)).collect();
    let expected =
        [Verdict::Ok, Verdict::Critical, Verdict::Ok, Verdict::Critical, Verdict::Critical, Verdict::Warning];
    assert_eq!(verdicts, expected.iter().enumerate().map(|(l, v)| (l as u32, *v)).collect::<Vec<_>>(), "{reports:#?}");
    assert!(reports.iter().all(|r| r.samples > 0 && r.signals.contains_key("temperature")));
    assert!(
        reports[5].dropout_ms > 0.0 && reports[5].alerts_by_rule.contains_key("sensor_dropout"),
        "{:?}",
        reports[5]
    );
    assert!(reports[1].voxels_out_of_limits > 0 && reports[1].out_of_limits_share < 0.1, "{:?}", reports[1]);
    assert!(reports[0].voxels > 0 && reports[0].voxels_out_of_limits == 0, "{:?}", reports[0]);

    let detected: Vec<bool> = defects.iter().map(|d| alerts.iter().any(|a| alert_matches(a, d))).collect();
    let false_alarms = alerts.iter().filter(|a| !defects.iter().any(|d| alert_matches(a, d))).count();
    eprintln!(
        "detected {detected:?} of {} defects, {false_alarms} false alarms out of {} alerts",
        defects.len(),
        alerts.len()
    );
    assert_eq!(detected, [true; 4], "every injected defect raises an alert at its layer and place");
    assert_eq!(false_alarms, 0, "clean regions and layers stay quiet");
    assert!(alerts.iter().any(|a| a.value == STUCK_VALUE), "the stuck sensor's value is in its alert");
}

#[test]
fn detection_rate_over_seeds_and_batch_sizes_with_default_deduplication() {
    let (mut injected, mut detected, mut false_alarms, mut alerts_total) = (0, 0, 0, 0);
    for seed in 1..=8u64 {
        let batch = [1, 100, 1000][seed as usize % 3];
        let mut sim = SimConfig { layers: 10, part_size_mm: 5.0, seed, ..SimConfig::default() };
        sim.defects = qadf_client::demo::demo_defects(&sim);
        let client = StreamingClient::new(StreamingConfig::default()).unwrap();
        client.load_rules(Some(&examples_demo_rules()), Some(sim.sample_rate_hz)).unwrap();
        let mut simulator = Simulator::new(sim.clone(), Timestamp::now());
        let mut alerts: Vec<Alert> = Vec::new();
        for layer in 0..sim.layers {
            for chunk in simulator.layer(layer).chunks(batch) {
                alerts.extend(client.process_stream_batch(SampleBatch::new(chunk.to_vec())).unwrap().alerts);
            }
        }
        injected += sim.defects.len();
        detected += sim.defects.iter().filter(|d| alerts.iter().any(|a| alert_matches(a, d))).count();
        false_alarms += alerts.iter().filter(|a| !sim.defects.iter().any(|d| alert_matches(a, d))).count();
        alerts_total += alerts.len();
    }
    eprintln!(
        "8 seeds: {detected} of {injected} defects detected, {false_alarms} false alarms in {alerts_total} alerts"
    );
    assert_eq!((detected, injected), (32, 32), "detection rate 100%");
    assert_eq!(false_alarms, 0);
    assert!(alerts_total <= 8 * 4 * 3, "de-duplication keeps the record short: {alerts_total} alerts");
}

/// The demo's rules file, the one the demo applies (and `run` when no rules file is set).
fn examples_demo_rules() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/rules/demo.toml")
}
