//! The low-latency stage pipeline: typed stages, quality checkpoints that raise alerts, SPC,
//! parallel streams and latency metrics.
//!
//! - [`Pipeline`] / [`PipelineBuilder`] (`pipeline.rs`): immutable once built; errors counted once.
//! - [`QualityCheck`] and the built-in checks (`checkpoint.rs`): range, rate, rolling z-score, hot spot.
//! - [`rules`] (`rules.rs`): a rules file's rules as checkpoints (scope, severity, unit, action).
//! - [`layers`] (`layers.rs`): per-layer verdicts and reports from processed batches.
//! - Built-in stages (`stages/`): validate, unit conversion, voxel, buffer, SPC (X̄-R, EWMA, WE rules).
//! - [`decode_messages`] (`decode.rs`): raw messages to a batch; undecodable ones to dead letters.
//! - [`AlertDeduplicator`] (`dedup.rs`): one alert per condition per interval.
//! - [`ParallelProcessor`] (`parallel.rs`): a fixed worker pool with bounded queues.
//! - Metrics (`metrics.rs`): HdrHistogram latencies, true throughput, counts; no infinities.
//!
//! ```
//! use std::sync::Arc;
//! use qadf_core_types::{Point3, Sample, SampleBatch, Timestamp};
//! use qadf_pipeline::{CheckpointAction, PipelineBuilder, RangeCheck, ValidateStage};
//!
//! let pipeline = PipelineBuilder::new()
//!     .add_stage(Arc::new(ValidateStage::default()))
//!     .add_checkpoint(Arc::new(RangeCheck::new("melt_pool_temp", "temperature", 1500.0, 2100.0)), CheckpointAction::Continue)
//!     .build();
//! let sample = |t: f64| Sample::new(Timestamp::EPOCH, Point3::origin(), [("temperature", t)].into_iter().collect());
//! let result = pipeline.process(SampleBatch::new(vec![sample(1900.0), sample(2400.0)])).unwrap();
//! assert_eq!((result.processed_count, result.alerts.len()), (2, 1));
//! assert_eq!(pipeline.metrics().checkpoints["melt_pool_temp"].pass_rate, Some(0.5));
//! ```
#![deny(missing_docs)]

mod checkpoint;
mod decode;
mod dedup;
mod error;
pub mod layers;
mod metrics;
mod parallel;
mod pipeline;
pub mod rules;
mod stages;
mod window_check;

pub use checkpoint::{
    CheckOutcome, CheckpointAction, FnCheck, GapCheck, HotSpotCheck, QualityCheck, RangeCheck, RateCheck, ZScoreCheck,
};
pub use decode::{Decoded, decode_messages};
pub use dedup::{AlertDeduplicator, MAX_REMEMBERED_CONDITIONS};
pub use error::PipelineError;
pub use metrics::{
    CheckpointStats, LatencyBuckets, LatencyRecorder, MAX_ALERT_SERIES, Metrics, OTHER_RULES, PipelineMetrics,
    StageMetrics, Throughput, ThroughputMeter,
};
pub use parallel::{Completed, ParallelProcessor, TrySubmitError};
pub use pipeline::{ErrorPolicy, Pipeline, PipelineBuilder, Step, create_processing_pipeline};
pub use stages::{
    BufferStage, ChartKind, FnStage, SpcStage, UnitConversion, ValidateStage, VoxelStage, nelson, western_electric,
};
pub use window_check::WindowCheck;
