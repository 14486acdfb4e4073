//! `StreamingClient`: the upstream entry point — one processing path for batches handed in
//! directly and, later, for batches from a consumer, with correct statistics.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use qadf_core_types::{
    Codec, HistoryQuery, HistoryStore, Point3, SampleBatch, Stage, StreamStatistics, StreamingConfig, StreamingResult,
};
use qadf_pipeline::layers::LayerReporter;
use qadf_pipeline::rules::{self, RuleCheck};
use qadf_pipeline::{
    CheckpointAction, Metrics, Pipeline, PipelineBuilder, PipelineError, QualityCheck, ValidateStage, VoxelStage,
};
use qadf_voxel::VoxelGrid;

use crate::layer_maps::{Geometry, LayerMaps};

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
    /// The consumer thread panicked.
    #[error("the consumer thread panicked")]
    ConsumerPanicked,
    /// A rule could not be built into a check.
    #[error("rule: {0}")]
    Rule(#[from] qadf_core_types::StageError),
    /// A processor name is already registered.
    #[error("a processor named `{0}` is already registered")]
    DuplicateProcessor(String),
    /// The history store could not be read.
    #[error("history: {0}")]
    History(#[from] qadf_core_types::BackendError),
}

impl ClientError {
    /// As a backend error, for a retry: the history's own (transient or not), anything else a refusal.
    pub(crate) fn into_backend(self) -> qadf_core_types::BackendError {
        match self {
            ClientError::History(e) => e,
            other => qadf_core_types::BackendError::new(
                qadf_core_types::BackendErrorKind::Rejected,
                "client",
                other.to_string(),
            ),
        }
    }
}

/// Window of the sliding throughput figure.
const THROUGHPUT_WINDOW: Duration = Duration::from_secs(10);

/// Processes monitoring batches through validation, voxel fusion, registered processors and
/// quality checkpoints, keeping the statistics the Python original promised (correctly).
pub struct StreamingClient {
    config: StreamingConfig,
    codec: Codec,
    voxels: Arc<VoxelStage>,
    processors: Mutex<Vec<(String, Arc<dyn Stage>)>>,
    checkpoints: Mutex<Vec<(Arc<dyn QualityCheck>, CheckpointAction)>>,
    /// The rules file's checks (before the checkpoints added in code).
    rules: Mutex<Vec<Arc<RuleCheck>>>,
    /// Per-layer verdicts and reports of the processed batches.
    layers: LayerReporter,
    /// The current pipeline; its metrics are the client's statistics (kept across rebuilds).
    pipeline: RwLock<Arc<Pipeline>>,
    /// Every build the processed batches held, with its newest layer, sample and alerts.
    builds: Arc<crate::builds::Builds>,
    /// Every layer's map and summary, for the live page.
    maps: Arc<LayerMaps>,
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
            VoxelStage::per_build(grid.clone()).with_limits(config.max_signals_per_build, config.max_builds_in_memory),
        );
        let codec = Codec::for_config(&config)?;
        let layers = LayerReporter::new(grid, &[]);
        let resolution =
            if config.layer_map_resolution_mm > 0.0 { config.layer_map_resolution_mm } else { config.voxel_resolution };
        let (min, max) = (config.voxel_bbox_min, config.voxel_bbox_max);
        let geometry = Geometry::covering([min[0], min[1]], [max[0], max[1]], resolution);
        let maps = Arc::new(LayerMaps::new(geometry, config.layer_maps_in_memory));
        let client = StreamingClient {
            config,
            codec,
            voxels,
            processors: Mutex::default(),
            checkpoints: Mutex::default(),
            rules: Mutex::default(),
            layers,
            pipeline: RwLock::new(Arc::new(PipelineBuilder::new().throughput_window(THROUGHPUT_WINDOW).build())),
            builds: crate::builds::Builds::new(),
            maps,
        };
        client.rebuild();
        Ok(client)
    }

    /// The configuration in use.
    pub fn config(&self) -> &StreamingConfig {
        &self.config
    }

    /// The codec messages are decoded with: the configured encoding, size and ingest limits,
    /// and message schema.
    pub fn codec(&self) -> &Codec {
        &self.codec
    }

    /// Every build seen, for live views (filled after each processed batch).
    pub fn builds(&self) -> &Arc<crate::builds::Builds> {
        &self.builds
    }

    /// Every layer's map and summary (filled after each processed batch).
    pub fn layer_maps(&self) -> &Arc<LayerMaps> {
        &self.maps
    }

    /// The quality rules applied now (as loaded from the rules file).
    pub fn rules(&self) -> Vec<qadf_core_types::rules::Rule> {
        self.rules.lock().iter().map(|c| c.rule().clone()).collect()
    }

    /// The voxel stage (each build's grid is reachable through it).
    pub fn voxels(&self) -> &Arc<VoxelStage> {
        &self.voxels
    }

    /// Builds a new immutable pipeline from the current processors and checkpoints, counting
    /// into the same metrics as the one it replaces.
    fn rebuild(&self) {
        let metrics = self.metrics(); // the read guard must be gone before the rebuild writes
        self.rebuild_with(metrics);
    }

    fn rebuild_with(&self, metrics: Arc<Metrics>) {
        let mut builder = PipelineBuilder::new()
            .metrics(metrics)
            .dedup_interval(Duration::from_millis(self.config.alert_dedup_interval_ms))
            .add_stage(Arc::new(ValidateStage::new(self.config.ingest_limits())))
            .add_stage(self.voxels.clone());
        for (_, stage) in self.processors.lock().iter() {
            builder = builder.add_stage(stage.clone());
        }
        builder = rules::add_rules(builder, &self.rules.lock());
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

    /// Applies `rules` from the next batch on, replacing the rules applied so far (their windows
    /// and charts start afresh); checkpoints added in code stay.
    pub fn set_rules(&self, rules: Vec<qadf_core_types::rules::Rule>) -> Result<(), ClientError> {
        // Compile first: a rule that cannot be built leaves both the checks and the reports as they were.
        let compiled = rules::compile(rules.clone(), &self.voxels)?;
        self.layers.set_rules(&rules);
        *self.rules.lock() = compiled;
        self.rebuild();
        Ok(())
    }

    /// Loads and applies a rules file (`None`: `rules_file` of the configuration, or the demo's
    /// example rules when that is empty); returns what was applied, for the log.
    pub fn load_rules(
        &self,
        path: Option<&std::path::Path>,
        sample_rate_hz: Option<f64>,
    ) -> Result<crate::checks::LoadedRules, ClientError> {
        let configured = (!self.config.rules_file.is_empty()).then(|| std::path::Path::new(&self.config.rules_file));
        let loaded = crate::checks::load(
            path.or(configured),
            sample_rate_hz,
            (self.config.window_size, self.config.buffer_size),
        )?;
        self.set_rules(loaded.rules.clone())?;
        Ok(loaded)
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
        let mut result = pipeline.process_batch(batch)?;
        result.layer_reports = self.layers.observe(&batch.samples, &result.alerts);
        self.builds.observe(batch);
        self.builds.on_alerts(&result.alerts);
        self.maps.observe(&batch.samples, &result.alerts, &result.layer_reports);
        Ok(result)
    }

    /// Closes every open layer (the stream ended): their reports.
    pub fn finish_layers(&self) -> Vec<qadf_core_types::LayerReport> {
        let reports = self.layers.finish();
        self.maps.observe(&[], &[], &reports);
        reports
    }

    /// Restores the state of already-processed samples (the history, after a restart or a
    /// rebalance): fuses them into the voxel grids and replays them through the rules' and
    /// checkpoints' windows, charts and last samples, raising no alert and counting no statistic.
    /// Returns how many were applied (samples outside the grid are not). The state equals an
    /// uninterrupted run's when each stream's samples arrived in time order (the history's order).
    pub fn restore(&self, samples: Vec<qadf_core_types::Sample>) -> Result<u64, ClientError> {
        let mut batch = SampleBatch::new(samples);
        let mut result = StreamingResult::default();
        self.voxels.process(&mut batch, &mut result).map_err(|e| PipelineError::StageFailed {
            stage: "voxel".to_owned(),
            message: e.to_string(),
            partial: Box::new(result.clone()),
        })?;
        for check in self.checks() {
            drop(check.check(&batch)); // only the state it keeps matters here, not its verdict
        }
        self.maps.observe(&batch.samples, &[], &[]);
        Ok(batch.len() as u64)
    }

    /// Replaces this client's state of `build` (voxel grid, rule windows and charts) by the one
    /// restored from its stored history (a consumer-group member given the partitions of a build
    /// another member processed): returns how many stored samples were applied.
    pub fn rebuild_from_history(&self, build: &str, history: &dyn HistoryStore) -> Result<u64, ClientError> {
        let query = HistoryQuery { build_id: Some(build.to_owned()), ..HistoryQuery::all() };
        let samples = history.query_stream_history(&query)?;
        self.forget_build(build);
        if samples.is_empty() {
            return Ok(0);
        }
        self.restore(samples)
    }

    /// Forgets the voxel grid and the rules' state of `build` (another consumer-group member reads it now).
    pub fn forget_build(&self, build: &str) {
        self.voxels.forget(build);
        for check in self.checks() {
            check.forget(build);
        }
    }

    /// Every quality check the pipeline runs: the rules', then those added in code.
    fn checks(&self) -> Vec<Arc<dyn QualityCheck>> {
        let rules = self.rules.lock().iter().map(|r| r.clone() as Arc<dyn QualityCheck>).collect::<Vec<_>>();
        rules.into_iter().chain(self.checkpoints.lock().iter().map(|(c, _)| c.clone())).collect()
    }

    /// Whether the pipeline's built-in stages would keep `sample` (valid under the configured
    /// limits, and inside the voxel grid when it has a position): only such samples reach the history.
    pub fn admits(&self, sample: &qadf_core_types::Sample) -> bool {
        sample.validate_with(&self.config.ingest_limits()).is_ok()
            && sample.position.is_none_or(|p| self.voxels.contains(&p))
    }

    /// The counters behind the statistics (per stage and checkpoint too), shared by every pipeline
    /// the client builds.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.pipeline.read().shared_metrics().clone()
    }

    /// Throughput over a sliding window and over uptime, latency, errors (the upstream
    /// `get_stream_statistics`): a view of [`StreamingClient::metrics`].
    pub fn get_stream_statistics(&self) -> StreamStatistics {
        let m = self.metrics().snapshot();
        StreamStatistics {
            messages_processed: m.samples.total,
            batches_processed: m.batches_processed,
            total_processing_time_ms: m.total_processing_ms,
            latency: m.end_to_end,
            throughput_window: m.samples.per_second_window,
            throughput_uptime: m.samples.per_second_uptime,
            uptime_seconds: m.samples.uptime_seconds,
            last_update_time: m.last_batch,
            errors: m.batches_failed,
            dead_letters: m.dead_letters,
            consumer_lag: m.consumer_lag,
            consumer_lag_by_partition: m.consumer_lag_by_partition,
            samples_stored: m.samples_stored,
        }
    }

    /// Zeroes the statistics (the upstream `reset_statistics`): the next pipeline counts afresh.
    pub fn reset_statistics(&self) {
        self.rebuild_with(Arc::new(Metrics::new(THROUGHPUT_WINDOW)));
    }
}

#[cfg(test)]
mod tests;
