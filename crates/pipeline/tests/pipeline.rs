//! Behaviour of the pipeline as a user sees it.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use qadf_buffer::{BudgetPolicy, BufferPool, OverflowPolicy, PoolConfig};
use qadf_core_types::{Point3, Sample, SampleBatch, Stage, StreamingResult, Timestamp};
use qadf_pipeline::*;
use qadf_voxel::{IncrementalProcessor, VoxelGrid};

fn sample(i: i64, temperature: f64) -> Sample {
    let mut s = Sample::new(
        Timestamp::from_nanos(i * 10_000), // 100 kHz
        Point3::new(1.0 + (i % 10) as f64 * 0.1, 1.0, 0.05),
        [("temperature", temperature)].into_iter().collect(),
    );
    s.build_id = "b1".into();
    s.layer = i as u32 / 1000;
    s
}

fn batch(range: std::ops::Range<i64>, temperature: f64) -> SampleBatch {
    range.map(|i| sample(i, temperature)).collect::<Vec<_>>().into()
}

fn stage(
    name: &str,
    f: impl Fn(&mut SampleBatch, &mut StreamingResult) -> Result<(), String> + Send + Sync + 'static,
) -> Arc<dyn Stage> {
    Arc::new(FnStage::new(name, f))
}

#[test]
fn built_pipelines_are_immutable() {
    let first = create_processing_pipeline(vec![stage("a", |_, _| Ok(()))]);
    let second = first
        .to_builder()
        .add_stage(stage("b", |_, _| Err("b ran".into())))
        .insert_stage(0, stage("z", |_, _| Ok(())))
        .build();
    assert_eq!(first.step_names(), ["a"]);
    assert_eq!(second.step_names(), ["z", "a", "b"]);
    assert!(first.process_with_pipeline(batch(0..3, 1900.0)).is_ok(), "b is not part of the first pipeline");
    assert_eq!(second.to_builder().remove_stage("b").build().step_names(), ["z", "a"]);
}

#[test]
fn a_failing_stage_is_counted_once_with_its_name() {
    for policy in [ErrorPolicy::DropBatch, ErrorPolicy::SkipStage, ErrorPolicy::StopStream] {
        let pipeline = PipelineBuilder::new()
            .add_stage(stage("ok", |_, _| Ok(())))
            .add_stage(stage("broken", |_, _| Err("sensor table missing".into())))
            .error_policy(policy)
            .build();
        let outcome = pipeline.process(batch(0..5, 1900.0));
        let m = pipeline.metrics();
        assert_eq!((m.errors_total, m.stages["broken"].errors, m.stages["ok"].errors), (1, 1, 0), "{policy:?}");
        match (policy, outcome) {
            (ErrorPolicy::DropBatch, Err(PipelineError::StageFailed { stage, message, .. })) => {
                assert_eq!((stage.as_str(), message.as_str()), ("broken", "sensor table missing"));
                assert_eq!((m.batches_failed, m.batches_processed), (1, 0));
            }
            (ErrorPolicy::SkipStage, Ok(result)) => {
                assert_eq!(result.metadata["error.broken"], "sensor table missing");
                assert_eq!((m.batches_failed, m.batches_processed), (0, 1));
            }
            (ErrorPolicy::StopStream, Err(PipelineError::StreamStopped { by, .. })) => assert_eq!(by, "broken"),
            (policy, other) => panic!("{policy:?} gave {other:?}"),
        }
    }
}

#[test]
fn a_panicking_stage_neither_kills_the_pipeline_nor_the_pool() {
    let pipeline = Arc::new(
        PipelineBuilder::new()
            .add_stage(stage("fragile", |b, _| {
                assert!(b.samples[0].layer != 7, "layer 7 breaks me");
                Ok(())
            }))
            .build(),
    );
    let err = pipeline.process(batch(7000..7002, 1900.0)).unwrap_err();
    assert!(
        matches!(&err, PipelineError::StageFailed { message, .. } if message.contains("layer 7 breaks me")),
        "{err}"
    );
    assert!(pipeline.process(batch(0..2, 1900.0)).is_ok());
    let pool = ParallelProcessor::new(pipeline.clone(), 2, 4);
    let results = pool.process_all(vec![("s".into(), batch(7000..7001, 1.0)), ("s".into(), batch(1..2, 1.0))]);
    assert!(results[0].is_err() && results[1].is_ok());
    assert_eq!(pipeline.metrics().stages["fragile"].panics, 2);
    pool.shutdown();
}

#[test]
fn checkpoint_failures_raise_deduplicated_alerts_with_exact_counts() {
    let pipeline = PipelineBuilder::new()
        .add_checkpoint(
            Arc::new(RangeCheck::new("melt_pool_temp", "temperature", 1500.0, 2100.0)),
            CheckpointAction::Continue,
        )
        .dedup_interval(Duration::from_millis(100))
        .build();
    // 1000 samples at 100 kHz = 10 ms of build: one alert, 999 suppressed.
    let mut hot = batch(0..1000, 2300.0);
    hot.samples.extend(batch(1000..1500, 1900.0).samples);
    let result = pipeline.process(hot).unwrap();
    assert_eq!(result.alerts.len(), 1);
    let a = &result.alerts[0];
    assert_eq!((a.checkpoint.as_str(), a.value, a.threshold, a.layer), ("melt_pool_temp", 2300.0, 2100.0, Some(0)));
    assert_eq!(a.position, Some(Point3::new(1.0, 1.0, 0.05)));
    assert_eq!(result.quality_metrics["alerts.suppressed"], 999.0);
    let m = pipeline.metrics();
    assert_eq!((m.checkpoints["melt_pool_temp"].passed, m.checkpoints["melt_pool_temp"].failed), (500, 1000));
    assert_eq!(m.checkpoints["melt_pool_temp"].pass_rate, Some(500.0 / 1500.0));
    assert_eq!((m.alerts_emitted, m.alerts_suppressed), (1, 999));
    // 150 ms later in build time the condition alerts again.
    let later = pipeline.process(batch(15_000..15_010, 2300.0)).unwrap();
    assert_eq!(later.alerts.len(), 1);
}

#[test]
fn checkpoint_actions_drop_the_batch_or_stop_the_stream() {
    let check = || Arc::new(RangeCheck::new("limit", "temperature", 0.0, 2000.0));
    let dropping = PipelineBuilder::new().add_checkpoint(check(), CheckpointAction::DropBatch).build();
    match dropping.process(batch(0..3, 2500.0)) {
        Err(PipelineError::DroppedByCheckpoint { checkpoint, partial }) => {
            assert_eq!(checkpoint, "limit");
            assert_eq!(partial.alerts.len(), 1, "the alert travels with the dropped batch");
        }
        other => panic!("{other:?}"),
    }
    let stopping = Arc::new(PipelineBuilder::new().add_checkpoint(check(), CheckpointAction::StopStream).build());
    let pool = ParallelProcessor::new(stopping, 2, 4);
    let results = pool.process_all(vec![
        ("printer-1".into(), batch(0..3, 2500.0)),
        ("printer-1".into(), batch(3..6, 1900.0)),
        ("printer-2".into(), batch(0..3, 1900.0)),
    ]);
    assert!(matches!(&results[0], Err(PipelineError::StreamStopped { by, .. }) if by == "limit"));
    assert!(
        matches!(&results[1], Err(PipelineError::StreamStopped { .. })),
        "later batches of a stopped stream are refused"
    );
    assert!(results[2].is_ok(), "other streams go on");
    pool.shutdown();
}

#[test]
fn streams_keep_their_order_and_results_come_back_in_input_order() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorder = {
        let seen = seen.clone();
        stage("record", move |b, r| {
            let s = &b.samples[0];
            seen.lock().push((s.source_id.to_string(), s.layer));
            r.metadata.insert("layer".into(), s.layer.to_string());
            Ok(())
        })
    };
    let pool = ParallelProcessor::new(Arc::new(create_processing_pipeline(vec![recorder])), 2, 2);
    let items: Vec<(String, SampleBatch)> = (0..60u32)
        .map(|i| {
            let mut s = sample(0, 1900.0);
            s.source_id = format!("stream-{}", i % 3).into();
            s.layer = i;
            (s.source_id.to_string(), SampleBatch::new(vec![s]))
        })
        .collect();
    let results = pool.process_all(items);
    let layers: Vec<u32> = results.iter().map(|r| r.as_ref().unwrap().metadata["layer"].parse().unwrap()).collect();
    assert_eq!(layers, (0..60).collect::<Vec<_>>());
    let seen = seen.lock();
    for stream in 0..3 {
        let order: Vec<u32> = seen.iter().filter(|(s, _)| *s == format!("stream-{stream}")).map(|(_, l)| *l).collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "stream {stream}: {order:?}");
        assert_eq!(order.len(), 20);
    }
    pool.shutdown();
}

#[test]
fn a_slow_stage_bounds_what_is_queued() {
    let slow = stage("slow", |_, _| {
        std::thread::sleep(Duration::from_millis(20));
        Ok(())
    });
    let pool = ParallelProcessor::new(Arc::new(create_processing_pipeline(vec![slow])), 1, 2);
    let mut accepted = 0;
    let refused = loop {
        match pool.try_submit("s", batch(0..1, 1900.0)) {
            Ok(_) => accepted += 1,
            Err(TrySubmitError::Full(batch)) => break batch,
            Err(other) => panic!("{other}"),
        }
        assert!(accepted <= 5, "queue (2) + one in the worker + results (2) at most");
    };
    assert_eq!(refused.len(), 1, "the refused batch is handed back");
    assert!(pool.queue_depths()[0] <= 2);
    let rest = pool.shutdown();
    assert_eq!(rest.len(), accepted, "every accepted batch completes");
}

#[test]
fn built_in_stages_validate_convert_fuse_buffer_and_chart() {
    let grid = VoxelGrid::new(Point3::origin(), Point3::new(10.0, 10.0, 1.0), 0.1).unwrap();
    let voxels = Arc::new(IncrementalProcessor::new(grid));
    let pool = Arc::new(Mutex::new(
        BufferPool::new(PoolConfig {
            window_size: 10,
            buffer_size: 1000,
            channels: 1,
            overflow: OverflowPolicy::EvictOldest,
            budget_bytes: 1 << 20,
            budget_policy: BudgetPolicy::Reject,
        })
        .unwrap(),
    ));
    let pipeline = PipelineBuilder::new()
        .add_stage(Arc::new(ValidateStage::default()))
        .add_stage(Arc::new(UnitConversion::new("temp_c", 1.0, 273.15).rename("temperature")))
        .add_stage(Arc::new(VoxelStage::new(voxels.clone())))
        .add_stage(Arc::new(BufferStage::new(pool.clone())))
        .add_stage(Arc::new(SpcStage::new("temperature", ChartKind::XBarR { subgroup_size: 5 }, 4).unwrap()))
        .build();
    let mut samples: Vec<Sample> = (0..40)
        .map(|i| {
            let mut s = sample(i, 0.0);
            s.signals = [("temp_c", 1600.0 + (i % 3) as f64)].into_iter().collect();
            s
        })
        .collect();
    samples[3].signals.push("bad", f64::NAN);
    samples[4].position = Some(Point3::new(50.0, 1.0, 0.05));
    let result = pipeline.process(samples.into()).unwrap();
    assert_eq!((result.processed_count, result.rejected_count, result.dead_letters.len()), (38, 2, 2));
    assert!(result.dead_letters[0].reason.contains("not a finite number"));
    assert!(result.dead_letters[1].reason.contains("outside the voxel grid"));
    assert_eq!(result.voxel_updates, 38);
    let mean = voxels.read(|g| g.value_at("temperature", &Point3::new(1.0, 1.0, 0.05))).unwrap();
    assert!((mean - 1874.15).abs() < 1.0, "converted to kelvin: {mean}");
    let held = pool.lock().get(&("b1".into(), "ispm".into(), "temperature".into())).map(|b| b.len());
    assert_eq!(held, None, "buffers are keyed by the sample's own source id");
    let key = ("b1".to_owned(), qadf_core_types::UNKNOWN.to_owned(), "temperature".to_owned());
    assert_eq!(pool.lock().get(&key).unwrap().len(), 38);
    assert_eq!(result.spc_results.len(), 1, "after a warm-up of 4 subgroups, the latest verdict");
    assert!(result.spc_results[0].in_control);
}

#[test]
fn rate_zscore_and_hot_spot_checks_on_known_inputs() {
    // Rate: 100 kHz passes a 50 kHz floor; a dropout (1 kHz) fails it.
    let rate = RateCheck::new("rate", 50_000.0);
    assert_eq!((rate.check(&batch(0..100, 1900.0)).passed, rate.check(&batch(0..100, 1900.0)).failed), (1, 0));
    let sparse: SampleBatch = (0..100).map(|i| sample(i * 100, 1900.0)).collect::<Vec<_>>().into();
    assert_eq!(rate.check(&sparse).failed, 1);

    // Z-score: a steady noisy signal passes; one jump of 20 sigma fails once.
    let z = ZScoreCheck::new("z", "temperature", 50, 4.0);
    let steady: SampleBatch = (0..200).map(|i| sample(i, 1900.0 + (i % 5) as f64)).collect::<Vec<_>>().into();
    let out = z.check(&steady);
    assert_eq!((out.passed, out.failed), (150, 0));
    let out = z.check(&batch(200..201, 1960.0));
    assert_eq!((out.failed, out.alerts.len()), (1, 1));

    // Hot spot: one voxel far hotter than the rest of its layer.
    let grid = VoxelGrid::new(Point3::origin(), Point3::new(10.0, 10.0, 1.0), 0.1).unwrap();
    let voxels = Arc::new(IncrementalProcessor::new(grid));
    let hot = HotSpotCheck::new("hot", "temperature", 4.0, 3, Arc::new(VoxelStage::new(voxels.clone())));
    let mut samples: Vec<Sample> = (0..300).map(|i| sample(i, 1900.0 + (i % 7) as f64)).collect();
    for s in samples.iter_mut().skip(290) {
        s.position = Some(Point3::new(5.0, 5.0, 0.05));
        s.signals = [("temperature", 2600.0)].into_iter().collect();
    }
    let b: SampleBatch = samples.into();
    voxels.process_samples(&b).unwrap();
    let out = hot.check(&b);
    let at_hot_voxel = |a: &qadf_core_types::Alert| (a.position.unwrap() - Point3::new(5.05, 5.05, 0.05)).norm() < 1e-9;
    assert_eq!(out.failed, 10, "each of the 10 hot samples sees its voxel above the layer limit");
    assert!(out.alerts.iter().all(at_hot_voxel), "{out:?}");
}

#[test]
fn gap_check_finds_a_dropout_whatever_the_batching_and_allows_the_recoat() {
    // 100 kHz (10 µs apart) with samples 300..320 missing; layer 1 starts at sample 1000.
    let samples: Vec<Sample> = (0..1500).filter(|i| !(300..320).contains(i)).map(|i| sample(i, 1900.0)).collect();
    for size in [7, 100, 1500] {
        let gap = GapCheck::new("gap", Duration::from_micros(30));
        let outcomes: Vec<CheckOutcome> = samples.chunks(size).map(|c| gap.check(&c.to_vec().into())).collect();
        let failed: u64 = outcomes.iter().map(|o| o.failed).sum();
        let passed: u64 = outcomes.iter().map(|o| o.passed).sum();
        let alerts: Vec<_> = outcomes.into_iter().flat_map(|o| o.alerts).collect();
        assert_eq!(failed, 1, "batches of {size}: one gap of 210 µs");
        assert_eq!(passed, samples.len() as u64 - 2 - failed, "the first sample and the new layer's are not compared");
        assert_eq!(alerts[0].timestamp, Timestamp::from_nanos(320 * 10_000), "at the sample after the gap");
        assert!((alerts[0].value - 0.21).abs() < 1e-9 && alerts[0].layer == Some(0), "{:?}", alerts[0]);
    }
    // A longer pause between layers (the recoat) is not a dropout.
    let gap = GapCheck::new("gap", Duration::from_micros(30));
    let recoat: SampleBatch = vec![sample(998, 1900.0), sample(999, 1900.0), sample(5000, 1900.0)].into();
    assert_eq!(gap.check(&recoat).failed, 0, "sample 5000 is in layer 5");
}

#[test]
fn metrics_serialize_without_infinities() {
    let pipeline = create_processing_pipeline(vec![stage("a", |_, _| Ok(()))]);
    let empty = serde_json::to_string(&pipeline.metrics()).unwrap();
    for _ in 0..10 {
        pipeline.process(batch(0..100, 1900.0)).unwrap();
    }
    let m = pipeline.metrics();
    assert_eq!(
        (m.batches_processed, m.samples.total, m.stages["a"].latency.count, m.end_to_end.count),
        (10, 1000, 10, 10)
    );
    let full = serde_json::to_string(&m).unwrap();
    for json in [empty, full] {
        assert!(!json.contains("inf") && !json.contains("NaN"), "{json}");
    }
}

#[test]
fn per_build_grids_keep_builds_apart_and_the_batch_in_order() {
    let template = VoxelGrid::new(Point3::origin(), Point3::new(10.0, 10.0, 1.0), 0.1).unwrap();
    let voxels = Arc::new(VoxelStage::per_build(template));
    let pipeline = PipelineBuilder::new().add_stage(voxels.clone()).build();
    let mut samples: Vec<Sample> = (0..6).map(|i| sample(i, 1000.0 + i as f64)).collect();
    for (i, s) in samples.iter_mut().enumerate() {
        s.build_id = if i % 2 == 0 { "even".into() } else { "odd".into() };
    }
    samples[4].position = Some(Point3::new(99.0, 0.0, 0.0));
    let result = pipeline.process(samples.into()).unwrap();
    assert_eq!((result.processed_count, result.rejected_count, result.voxel_updates), (5, 1, 5));
    let count = |build: &str| voxels.grid(build).unwrap().get_statistics().totals.values_applied;
    assert_eq!((count("even"), count("odd")), (2, 3));
    assert!(voxels.grid("other").is_none());
}
