//! `StreamingClient`: the upstream entry point — one processing path for batches handed in
//! directly and, later, for batches from a consumer, with correct statistics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use qadf_core_types::{
    LatencySummary, Point3, SampleBatch, Stage, StreamStatistics, StreamingConfig, StreamingResult, Timestamp,
};
use qadf_pipeline::{
    CheckpointAction, LatencyRecorder, Pipeline, PipelineBuilder, PipelineError, QualityCheck, ThroughputMeter,
    ValidateStage, VoxelStage,
};
use qadf_voxel::VoxelGrid;

/// Why the client refused to start or a batch failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The configuration is not valid.
    #[error(transparent)]
    Config(#[from] qadf_core_types::ConfigError),
    /// The voxel grid described by the configuration is not valid.
    #[error("voxel grid: {0}")]
    Grid(#[from] qadf_voxel::VoxelError),
    /// The batch did not complete the pipeline (its partial result is inside).
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// `start_consumer` was called while a consumer runs.
    #[error("a consumer is already running")]
    ConsumerRunning,
    /// `stop_consumer` was called with no consumer.
    #[error("no consumer is running")]
    ConsumerNotRunning,
    /// The consumer thread panicked.
    #[error("the consumer thread panicked")]
    ConsumerPanicked,
    /// A processor name is already registered.
    #[error("a processor named `{0}` is already registered")]
    DuplicateProcessor(String),
}

/// Window of the sliding throughput figure.
const THROUGHPUT_WINDOW: Duration = Duration::from_secs(10);

struct Counters {
    started: Instant,
    latency: LatencyRecorder,
    throughput: ThroughputMeter,
    messages: u64,
    batches: u64,
    total_ms: f64,
    errors: u64,
    dead_letters: u64,
    consumer_lag: u64,
    last_update: Option<Timestamp>,
}

impl Counters {
    fn new() -> Counters {
        Counters {
            started: Instant::now(),
            latency: LatencyRecorder::default(),
            throughput: ThroughputMeter::new(THROUGHPUT_WINDOW),
            messages: 0,
            batches: 0,
            total_ms: 0.0,
            errors: 0,
            dead_letters: 0,
            consumer_lag: 0,
            last_update: None,
        }
    }
}

/// Processes monitoring batches through validation, voxel fusion, registered processors and
/// quality checkpoints, keeping the statistics the Python original promised (correctly).
pub struct StreamingClient {
    config: StreamingConfig,
    voxels: Arc<VoxelStage>,
    processors: Mutex<Vec<(String, Arc<dyn Stage>)>>,
    checkpoints: Mutex<Vec<(Arc<dyn QualityCheck>, CheckpointAction)>>,
    pipeline: RwLock<Arc<Pipeline>>,
    counters: Mutex<Counters>,
    pub(crate) consumer: Mutex<Option<crate::consumer::ConsumerLoop>>,
}

impl StreamingClient {
    /// A client for a validated `config`: validate → voxel fusion (one grid per build) → processors.
    pub fn new(config: StreamingConfig) -> Result<StreamingClient, ClientError> {
        config.validate()?;
        let grid = VoxelGrid::new(
            Point3::from(config.voxel_bbox_min),
            Point3::from(config.voxel_bbox_max),
            config.voxel_resolution,
        )?;
        let voxels = Arc::new(
            VoxelStage::per_build(grid).with_limits(config.max_signals_per_build, config.max_builds_in_memory),
        );
        let client = StreamingClient {
            config,
            voxels,
            processors: Mutex::default(),
            checkpoints: Mutex::default(),
            pipeline: RwLock::new(Arc::new(PipelineBuilder::new().build())),
            counters: Mutex::new(Counters::new()),
            consumer: Mutex::new(None),
        };
        client.rebuild();
        Ok(client)
    }

    /// The configuration in use.
    pub fn config(&self) -> &StreamingConfig {
        &self.config
    }

    /// The voxel stage (each build's grid is reachable through it).
    pub fn voxels(&self) -> &Arc<VoxelStage> {
        &self.voxels
    }

    /// Builds a new immutable pipeline from the current processors and checkpoints.
    fn rebuild(&self) {
        let mut builder = PipelineBuilder::new()
            .dedup_interval(Duration::from_millis(self.config.alert_dedup_interval_ms))
            .add_stage(Arc::new(ValidateStage::new(self.config.ingest_limits())))
            .add_stage(self.voxels.clone());
        for (_, stage) in self.processors.lock().iter() {
            builder = builder.add_stage(stage.clone());
        }
        for (check, action) in self.checkpoints.lock().iter() {
            builder = builder.add_checkpoint(check.clone(), *action);
        }
        *self.pipeline.write() = Arc::new(builder.build());
    }

    /// Adds a processing stage after the built-in ones (the upstream `register_processor`).
    pub fn register_processor(&self, name: &str, stage: Arc<dyn Stage>) -> Result<(), ClientError> {
        {
            let mut processors = self.processors.lock();
            if processors.iter().any(|(n, _)| n == name) {
                return Err(ClientError::DuplicateProcessor(name.to_owned()));
            }
            processors.push((name.to_owned(), stage));
        }
        self.rebuild();
        Ok(())
    }

    /// Removes a registered processor; returns whether it existed.
    pub fn unregister_processor(&self, name: &str) -> bool {
        let removed = {
            let mut processors = self.processors.lock();
            let before = processors.len();
            processors.retain(|(n, _)| n != name);
            processors.len() != before
        };
        if removed {
            self.rebuild();
        }
        removed
    }

    /// Adds a quality checkpoint that runs after every processor.
    pub fn add_quality_checkpoint(&self, check: Arc<dyn QualityCheck>, action: CheckpointAction) {
        self.checkpoints.lock().push((check, action));
        self.rebuild();
    }

    /// Runs one batch through the pipeline and updates the statistics (the upstream `process_stream_batch`).
    pub fn process_stream_batch(&self, mut batch: SampleBatch) -> Result<StreamingResult, ClientError> {
        self.process_in_place(&mut batch)
    }

    /// Like `process_stream_batch`, leaving the samples the pipeline kept in `batch`.
    pub(crate) fn process_in_place(&self, batch: &mut SampleBatch) -> Result<StreamingResult, ClientError> {
        let pipeline = self.pipeline.read().clone();
        let started = Instant::now();
        let outcome = pipeline.process_batch(batch);
        let elapsed = started.elapsed();
        let mut c = self.counters.lock();
        match &outcome {
            Ok(result) => {
                c.messages += result.processed_count as u64;
                c.batches += 1;
                c.total_ms += elapsed.as_secs_f64() * 1e3;
                c.latency.record(elapsed);
                c.throughput.record(result.processed_count as u64);
                c.dead_letters += result.dead_letters.len() as u64;
                c.last_update = Some(Timestamp::now());
            }
            Err(e) => {
                c.errors += 1;
                c.dead_letters += e.partial().map_or(0, |p| p.dead_letters.len() as u64);
            }
        }
        drop(c);
        Ok(outcome?)
    }

    /// Fuses already-processed samples (e.g. history after a restart) into the voxel grids only:
    /// no checkpoint, statistic or alert. Returns how many were applied (samples outside the grid
    /// are not).
    pub fn restore_voxels(&self, samples: Vec<qadf_core_types::Sample>) -> Result<u64, ClientError> {
        let mut batch = SampleBatch::new(samples);
        let mut result = StreamingResult::default();
        self.voxels.process(&mut batch, &mut result).map_err(|e| PipelineError::StageFailed {
            stage: "voxel".to_owned(),
            message: e.to_string(),
            partial: Box::new(result.clone()),
        })?;
        Ok(batch.len() as u64)
    }

    /// Whether the pipeline's built-in stages would keep `sample` (valid under the configured
    /// limits, and inside the voxel grid when it has a position): only such samples reach the history.
    pub fn admits(&self, sample: &qadf_core_types::Sample) -> bool {
        sample.validate_with(&self.config.ingest_limits()).is_ok()
            && sample.position.is_none_or(|p| self.voxels.contains(&p))
    }

    /// Records the consumer's lag (messages behind the log end, over all partitions).
    pub fn record_consumer_lag(&self, lag: u64) {
        self.counters.lock().consumer_lag = lag;
    }

    /// Counts dead letters found before the pipeline (undecodable messages).
    pub fn record_dead_letters(&self, n: u64) {
        self.counters.lock().dead_letters += n;
    }

    /// Throughput over a sliding window and over uptime, latency, errors (the upstream `get_stream_statistics`).
    pub fn get_stream_statistics(&self) -> StreamStatistics {
        let c = self.counters.lock();
        let t = c.throughput.snapshot();
        let latency: LatencySummary = c.latency.summary();
        StreamStatistics {
            messages_processed: c.messages,
            batches_processed: c.batches,
            total_processing_time_ms: c.total_ms,
            latency,
            throughput_window: t.per_second_window,
            throughput_uptime: t.per_second_uptime,
            uptime_seconds: c.started.elapsed().as_secs_f64(),
            last_update_time: c.last_update,
            errors: c.errors,
            dead_letters: c.dead_letters,
            consumer_lag: c.consumer_lag,
        }
    }

    /// Zeroes the statistics (the upstream `reset_statistics`).
    pub fn reset_statistics(&self) {
        *self.counters.lock() = Counters::new();
    }
}

#[cfg(test)]
mod tests;
