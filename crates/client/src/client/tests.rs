use std::sync::atomic::{AtomicUsize, Ordering};

use qadf_core_types::{Codec, Encoding, Sample, Timestamp};
use qadf_pipeline::{FnStage, RangeCheck};

use super::*;

fn config() -> StreamingConfig {
    StreamingConfig { voxel_bbox_max: [50.0, 50.0, 10.0], voxel_resolution: 0.5, ..StreamingConfig::default() }
}

fn batch(n: usize, temperature: f64) -> SampleBatch {
    (0..n)
        .map(|i| {
            let mut s = Sample::new(
                Timestamp::from_nanos(i as i64 * 10_000),
                Point3::new(10.0 + i as f64 * 0.01, 10.0, 0.1),
                [("temperature", temperature)].into_iter().collect(),
            );
            s.build_id = "b1".into();
            s
        })
        .collect::<Vec<_>>()
        .into()
}

#[test]
fn the_python_example_runs_with_a_registered_processor_whose_output_is_kept() {
    let client = StreamingClient::new(config()).unwrap();
    let processor = FnStage::new("my_processor", |b: &mut SampleBatch, r: &mut StreamingResult| {
        r.stage_outputs.insert("my_processor".into(), serde_json::json!({ "processed": b.len() }));
        Ok(())
    });
    client.register_processor("my_processor", Arc::new(processor)).unwrap();
    // The original's example: [{'value': 1.0}, {'value': 2.0}, {'value': 3.0}] (no position: counted, not fused).
    let batch = Codec::new(Encoding::Json).decode(br#"[{"value": 1.0}, {"value": 2.0}, {"value": 3.0}]"#).unwrap();
    let result = client.process_stream_batch(batch).unwrap();
    assert_eq!(result.processed_count, 3);
    assert_eq!(
        result.stage_outputs["my_processor"],
        serde_json::json!({ "processed": 3 }),
        "nothing a processor returns is discarded"
    );
    assert_eq!(result.quality_metrics["voxel.no_position"], 3.0);
    assert!(matches!(
        client.register_processor(
            "my_processor",
            Arc::new(FnStage::new("x", |_: &mut SampleBatch, _: &mut StreamingResult| Ok(())))
        ),
        Err(ClientError::DuplicateProcessor(_))
    ));
    assert!(client.unregister_processor("my_processor"));
    assert!(!client.process_stream_batch(batch_of_values()).unwrap().stage_outputs.contains_key("my_processor"));
}

fn batch_of_values() -> SampleBatch {
    Codec::new(Encoding::Json).decode(br#"[{"value": 1.0}]"#).unwrap()
}

#[test]
fn samples_are_fused_per_build_and_checkpoints_raise_alerts() {
    let client = StreamingClient::new(config()).unwrap();
    client.add_quality_checkpoint(
        Arc::new(RangeCheck::new("limit", "temperature", 1500.0, 2100.0)),
        CheckpointAction::Continue,
    );
    let result = client.process_stream_batch(batch(100, 2300.0)).unwrap();
    assert_eq!((result.processed_count, result.voxel_updates), (100, 100));
    assert_eq!(result.alerts.len(), 1, "de-duplicated: one alert for the condition");
    let grid = client.voxels().grid("b1").unwrap();
    assert_eq!(grid.get_statistics().totals.values_applied, 100);
}

#[test]
fn statistics_count_once_and_report_true_rates() {
    let client = StreamingClient::new(config()).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let flaky = {
        let calls = calls.clone();
        FnStage::new("flaky", move |_: &mut SampleBatch, _: &mut StreamingResult| {
            if calls.fetch_add(1, Ordering::SeqCst) == 1 { Err("sensor table missing".to_owned()) } else { Ok(()) }
        })
    };
    client.register_processor("flaky", Arc::new(flaky)).unwrap();
    for _ in 0..3 {
        let _ = client.process_stream_batch(batch(100, 1900.0));
    }
    let s = client.get_stream_statistics();
    assert_eq!((s.messages_processed, s.batches_processed, s.errors), (200, 2, 1), "one error for one failed batch");
    assert!(s.throughput_uptime > 0.0 && s.throughput_uptime.is_finite());
    // Younger than the 10 s window, the window rate is the uptime rate (exact rates are tested
    // with injected times in qadf-pipeline's metrics).
    assert!((s.throughput_window - s.throughput_uptime).abs() < 1e-6 * s.throughput_uptime, "{s:?}");
    assert_eq!(s.latency.count, 2);
    assert!(!serde_json::to_string(&s).unwrap().contains("inf"));
    client.reset_statistics();
    assert_eq!(client.get_stream_statistics().messages_processed, 0);
}

#[test]
fn an_invalid_config_is_refused_with_the_field_named() {
    let bad = StreamingConfig { voxel_resolution: -1.0, ..StreamingConfig::default() };
    let err = StreamingClient::new(bad).err().unwrap().to_string();
    assert!(err.contains("voxel_resolution"), "{err}");
}

/// One owner of the statistics: adding a processor or a checkpoint rebuilds the pipeline, and the
/// statistics (and the per-stage and per-checkpoint counts behind them) go on from where they were.
#[test]
fn statistics_survive_a_pipeline_rebuild_and_are_the_pipelines_metrics() {
    let client = StreamingClient::new(config()).unwrap();
    client.process_stream_batch(batch(100, 1900.0)).unwrap();
    client.add_quality_checkpoint(
        Arc::new(RangeCheck::new("limit", "temperature", 1500.0, 2100.0)),
        CheckpointAction::Continue,
    );
    client.process_stream_batch(batch(50, 2300.0)).unwrap();
    let s = client.get_stream_statistics();
    assert_eq!((s.messages_processed, s.batches_processed, s.latency.count), (150, 2, 2), "{s:?}");
    assert!(s.last_update_time.is_some() && s.total_processing_time_ms > 0.0, "{s:?}");
    let m = client.metrics().snapshot();
    assert_eq!(m.stages["validate"].latency.count, 2, "the validate stage ran in both pipelines: {m:?}");
    let limit = m.checkpoints["limit"];
    assert_eq!((limit.passed + limit.failed, m.alerts_emitted), (50, 1), "only the second batch met the checkpoint");
    assert_eq!((m.samples.total, m.batches_processed), (s.messages_processed, s.batches_processed));
    client.metrics().record_dead_letters(3);
    client.metrics().record_consumer_lag(vec![(0, 3), (1, 4)]);
    let s = client.get_stream_statistics();
    assert_eq!((s.dead_letters, s.consumer_lag), (3, 7));
    assert_eq!(s.consumer_lag_by_partition, [(0, 3), (1, 4)]);
    client.reset_statistics();
    let s = client.get_stream_statistics();
    assert_eq!((s.messages_processed, s.batches_processed, s.dead_letters), (0, 0, 0));
    client.process_stream_batch(batch(10, 1900.0)).unwrap();
    assert_eq!(client.get_stream_statistics().messages_processed, 10, "the reset pipeline counts again");
}
