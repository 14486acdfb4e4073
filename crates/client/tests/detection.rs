//! Injected, labelled defects produce alerts at the right layer and place; clean layers produce none.

use std::sync::Arc;

use qadf_client::StreamingClient;
use qadf_client::sim::{Defect, DefectKind, STUCK_VALUE, SimConfig, Simulator};
use qadf_core_types::{Alert, SampleBatch, StreamingConfig, Timestamp};
use qadf_pipeline::{CheckpointAction, RangeCheck, RateCheck};

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
    let range = RangeCheck::new("melt_pool_temperature", "temperature", 1700.0, 2150.0);
    client.add_quality_checkpoint(Arc::new(range), CheckpointAction::Continue);
    client.add_quality_checkpoint(Arc::new(RateCheck::new("sample_rate", 97_000.0)), CheckpointAction::Continue);

    let mut simulator = Simulator::new(sim.clone(), Timestamp::now());
    let mut alerts: Vec<Alert> = Vec::new();
    for layer in 0..sim.layers {
        for chunk in simulator.layer(layer).chunks(100) {
            alerts.extend(client.process_stream_batch(SampleBatch::new(chunk.to_vec())).unwrap().alerts);
        }
    }

    let near = |a: &Alert, d: &Defect| {
        a.position
            .is_some_and(|p| ((p.x - d.center[0]).powi(2) + (p.y - d.center[1]).powi(2)).sqrt() <= d.radius_mm + 0.5)
    };
    let detected: Vec<bool> =
        defects.iter().map(|d| alerts.iter().any(|a| a.layer == Some(d.layer) && near(a, d))).collect();
    let false_alarms =
        alerts.iter().filter(|a| !defects.iter().any(|d| a.layer == Some(d.layer) && near(a, d))).count();
    eprintln!(
        "detected {detected:?} of {} defects, {false_alarms} false alarms out of {} alerts",
        defects.len(),
        alerts.len()
    );
    assert_eq!(detected, [true; 4], "every injected defect raises an alert at its layer and place");
    assert_eq!(false_alarms, 0, "clean regions and layers stay quiet");
    assert!(alerts.iter().any(|a| a.value == STUCK_VALUE), "the stuck sensor's value is in its alert");
}
