//! Pipeline benchmarks (results in docs/PERFORMANCE.md): `cargo bench -p qadf-pipeline`.
#![allow(missing_docs)] // criterion_group! generates undocumented functions.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use parking_lot::Mutex;
use qadf_buffer::{BudgetPolicy, BufferPool, OverflowPolicy, PoolConfig};
use qadf_core_types::{Codec, Encoding, Origin, Point3, RawMessage, Sample, SampleBatch, Stage, Timestamp};
use qadf_pipeline::*;
use qadf_voxel::VoxelGrid;

const BATCH: usize = 100;

/// One message of 100 samples along a laser track of build `build`, starting at sample `start`.
fn message(build: &str, start: usize, codec: &Codec) -> RawMessage {
    let samples: Vec<Sample> = (start..start + BATCH)
        .map(|i| {
            let along = (i % 2000) as f64 * 0.01;
            let track = (i / 2000 % 200) as f64 * 0.1;
            let mut s = Sample::new(
                Timestamp::from_nanos(i as i64 * 10_000),
                Point3::new(40.0 + along, 40.0 + track, 0.015),
                [("temperature", 1900.0 + (i % 17) as f64), ("melt_pool_area", 0.04)].into_iter().collect(),
            );
            s.build_id = build.into();
            s.layer = 0;
            s
        })
        .collect();
    RawMessage {
        origin: Origin { topic: "bench".into(), partition: 0, offset: start as i64 },
        key: None,
        payload: codec.encode(&SampleBatch::new(samples)).unwrap(),
        headers: Vec::new(),
        timestamp: Timestamp::EPOCH,
    }
}

/// validate → voxel (per build, 0.1 mm plate) → buffer → range, rate and z-score checkpoints.
fn full_pipeline() -> Pipeline {
    let plate = VoxelGrid::new(Point3::origin(), Point3::new(250.0, 250.0, 10.0), 0.1).unwrap();
    let pool = BufferPool::new(PoolConfig {
        window_size: 100,
        buffer_size: 100_000,
        channels: 1,
        overflow: OverflowPolicy::EvictOldest,
        budget_bytes: 256 << 20,
        budget_policy: BudgetPolicy::Reject,
    })
    .unwrap();
    PipelineBuilder::new()
        .add_stage(Arc::new(ValidateStage::default()))
        .add_stage(Arc::new(VoxelStage::per_build(plate)))
        .add_stage(Arc::new(BufferStage::new(Arc::new(Mutex::new(pool)))))
        .add_checkpoint(
            Arc::new(RangeCheck::new("temperature_range", "temperature", 1500.0, 2100.0)),
            CheckpointAction::Continue,
        )
        .add_checkpoint(Arc::new(RateCheck::new("sample_rate", 50_000.0)), CheckpointAction::Continue)
        .add_checkpoint(Arc::new(ZScoreCheck::new("temperature_z", "temperature", 50, 6.0)), CheckpointAction::Continue)
        .build()
}

fn latency(c: &mut Criterion) {
    let codec = Codec::new(Encoding::Bincode);
    let messages: Vec<RawMessage> = (0..2000).map(|i| message("b", i * BATCH, &codec)).collect();
    let pipeline = full_pipeline();
    let mut group = c.benchmark_group("pipeline_batch_100");
    group.throughput(Throughput::Elements(BATCH as u64));
    let mut i = 0;
    let recorder = LatencyRecorder::default();
    group.bench_function("decode_validate_voxel_buffer_3_checkpoints", |b| {
        b.iter(|| {
            let t = Instant::now();
            let decoded = decode_messages(&codec, std::slice::from_ref(&messages[i % messages.len()]));
            let r = pipeline.process(decoded.batch).unwrap();
            recorder.record(t.elapsed());
            i += 1;
            black_box(r)
        })
    });
    let s = recorder.summary();
    eprintln!(
        "per-batch latency over {} batches: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        s.count,
        s.p50_ms.unwrap_or(0.0),
        s.p99_ms.unwrap_or(0.0),
        s.max_ms.unwrap_or(0.0)
    );
    let noop: Vec<Arc<dyn Stage>> = (0..5)
        .map(|n| Arc::new(FnStage::new(format!("noop{n}"), |_: &mut SampleBatch, _: &mut _| Ok(()))) as Arc<dyn Stage>)
        .collect();
    let machinery = create_processing_pipeline(noop);
    let empty_ish = SampleBatch::new(vec![]);
    group.throughput(Throughput::Elements(1));
    group.bench_function("machinery_5_noop_stages_per_batch", |b| {
        b.iter(|| black_box(machinery.process(empty_ish.clone()).unwrap()))
    });
    group.finish();
}

fn parallel_throughput(c: &mut Criterion) {
    let codec = Codec::new(Encoding::Bincode);
    let batches_per_stream = 500;
    let items: Vec<(String, RawMessage)> = (0..batches_per_stream)
        .flat_map(|i| ["build-a", "build-b"].map(|b| (b.to_owned(), message(b, i * BATCH, &codec))))
        .collect();
    let pool = ParallelProcessor::new(Arc::new(full_pipeline()), 2, 16);
    let mut group = c.benchmark_group("pipeline_parallel_2_workers");
    group
        .throughput(Throughput::Elements((items.len() * BATCH) as u64))
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("two_builds_process_predecoded", |b| {
        b.iter_batched(
            || items.iter().map(|(s, m)| (s.clone(), decode_messages(&codec, std::slice::from_ref(m)).batch)).collect(),
            |work| assert!(pool.process_all(work).iter().all(Result::is_ok)),
            criterion::BatchSize::LargeInput,
        )
    });
    group.bench_function("decode_only_one_thread", |b| {
        b.iter(|| {
            for (_, m) in &items {
                black_box(decode_messages(&codec, std::slice::from_ref(m)));
            }
        })
    });
    group.finish();
}

/// validate → voxel, then (when `rules`) the demo's rules file plus one X̄-R chart, compiled
/// through the rules file as `run` does.
fn rules_pipeline(rules: bool) -> Pipeline {
    let plate = VoxelGrid::new(Point3::origin(), Point3::new(250.0, 250.0, 10.0), 0.1).unwrap();
    let voxels = Arc::new(VoxelStage::per_build(plate));
    let builder = PipelineBuilder::new().add_stage(Arc::new(ValidateStage::default())).add_stage(voxels.clone());
    if !rules {
        return builder.build();
    }
    let text = format!(
        "{}\n[[rule]]\nname = \"temperature_xbar\"\nkind = \"spc\"\nchart = \"xbar_r\"\nsignal = \"temperature\"\nsubgroup_size = 5\nwarmup = 25\n",
        qadf_core_types::rules::DEMO_RULES
    );
    let mut config = qadf_core_types::rules::RulesConfig::from_toml_str(&text, "bench").unwrap();
    config.sample_rate_hz = Some(100_000.0);
    let checks = rules::compile(config.compile(100, 1000).unwrap(), &voxels).unwrap();
    rules::add_rules(builder, &checks).build()
}

/// The demo's rules plus one SPC chart, beside the same pipeline without rules (its ceiling).
fn rules_throughput(c: &mut Criterion) {
    let codec = Codec::new(Encoding::Bincode);
    let batches: Vec<SampleBatch> = (0..2000)
        .map(|i| decode_messages(&codec, std::slice::from_ref(&message("b", i * BATCH, &codec))).batch)
        .collect();
    let mut group = c.benchmark_group("rules_batch_100_one_thread");
    group.throughput(Throughput::Elements(BATCH as u64));
    for (name, rules) in [("validate_voxel_no_rules_ceiling", false), ("validate_voxel_demo_rules_plus_xbar_r", true)] {
        let pipeline = rules_pipeline(rules);
        let mut i = 0;
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    i += 1;
                    batches[i % batches.len()].clone()
                },
                |mut batch| black_box(pipeline.process_batch(&mut batch).unwrap()),
                criterion::BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, latency, parallel_throughput, rules_throughput);
criterion_main!(benches);
