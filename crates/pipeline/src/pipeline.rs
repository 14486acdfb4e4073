//! `Pipeline`: an immutable sequence of stages and quality checkpoints, built by `PipelineBuilder`.
//!
//! A built pipeline never changes: `to_builder()` starts a new one from its steps, so two pipelines
//! never share a mutable stage list (the Python original's aliasing defect). Stage failures and
//! panics are counted once, with the stage's name, and handled by the [`ErrorPolicy`].

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use qadf_core_types::{SampleBatch, Stage, StageError, StreamingResult, Timestamp};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{CheckpointAction, QualityCheck};
use crate::dedup::AlertDeduplicator;
use crate::error::PipelineError;
use crate::metrics::{CheckpointCounts, Metrics, PipelineMetrics, StepCounters};

/// What happens to a batch when a stage fails or panics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorPolicy {
    /// Drop the batch and report the error (the default: a failed batch is neither stored nor committed).
    #[default]
    DropBatch,
    /// Record the error in the result's metadata and go on with the next stage.
    SkipStage,
    /// Drop the batch and stop the stream.
    StopStream,
}

/// One step of a pipeline.
#[derive(Clone)]
pub enum Step {
    /// A processing stage.
    Stage(Arc<dyn Stage>),
    /// A quality checkpoint and what to do when it fails.
    Checkpoint(Arc<dyn QualityCheck>, CheckpointAction),
}

impl Step {
    /// The stage's or checkpoint's name.
    pub fn name(&self) -> &str {
        match self {
            Step::Stage(s) => s.name(),
            Step::Checkpoint(c, _) => c.name(),
        }
    }
}

/// Builds an immutable [`Pipeline`].
#[derive(Clone)]
pub struct PipelineBuilder {
    steps: Vec<Step>,
    error_policy: ErrorPolicy,
    dedup_interval: Duration,
    dedup_per_checkpoint: HashMap<String, Duration>,
    throughput_window: Duration,
    metrics: Option<Arc<Metrics>>,
}

impl Default for PipelineBuilder {
    fn default() -> PipelineBuilder {
        PipelineBuilder {
            steps: Vec::new(),
            error_policy: ErrorPolicy::default(),
            dedup_interval: Duration::from_secs(1),
            dedup_per_checkpoint: HashMap::new(),
            throughput_window: Duration::from_secs(10),
            metrics: None,
        }
    }
}

impl PipelineBuilder {
    /// An empty builder.
    pub fn new() -> PipelineBuilder {
        PipelineBuilder::default()
    }

    /// Appends a stage.
    pub fn add_stage(mut self, stage: Arc<dyn Stage>) -> PipelineBuilder {
        self.steps.push(Step::Stage(stage));
        self
    }

    /// Inserts a stage at `index` (clamped to the end).
    pub fn insert_stage(mut self, index: usize, stage: Arc<dyn Stage>) -> PipelineBuilder {
        self.steps.insert(index.min(self.steps.len()), Step::Stage(stage));
        self
    }

    /// Removes every step named `name`.
    pub fn remove_stage(mut self, name: &str) -> PipelineBuilder {
        self.steps.retain(|s| s.name() != name);
        self
    }

    /// Appends a quality checkpoint with its failure action.
    pub fn add_checkpoint(mut self, check: Arc<dyn QualityCheck>, action: CheckpointAction) -> PipelineBuilder {
        self.steps.push(Step::Checkpoint(check, action));
        self
    }

    /// Sets the stage error policy (default [`ErrorPolicy::DropBatch`]).
    pub fn error_policy(mut self, policy: ErrorPolicy) -> PipelineBuilder {
        self.error_policy = policy;
        self
    }

    /// Sets the alert de-duplication interval (default 1 s of measurement time; zero keeps all).
    pub fn dedup_interval(mut self, interval: Duration) -> PipelineBuilder {
        self.dedup_interval = interval;
        self
    }

    /// Gives the checkpoint named `checkpoint` its own de-duplication interval.
    pub fn dedup_interval_for(mut self, checkpoint: &str, interval: Duration) -> PipelineBuilder {
        self.dedup_per_checkpoint.insert(checkpoint.to_owned(), interval);
        self
    }

    /// Sets the throughput sliding window (default 10 s; ignored with [`PipelineBuilder::metrics`]).
    pub fn throughput_window(mut self, window: Duration) -> PipelineBuilder {
        self.throughput_window = window;
        self
    }

    /// Counts into `metrics` (shared with earlier pipelines) instead of fresh counters.
    pub fn metrics(mut self, metrics: Arc<Metrics>) -> PipelineBuilder {
        self.metrics = Some(metrics);
        self
    }

    /// The pipeline, counting into the given metrics or fresh ones.
    pub fn build(self) -> Pipeline {
        let metrics = self.metrics.unwrap_or_else(|| Arc::new(Metrics::new(self.throughput_window)));
        let counters = self
            .steps
            .iter()
            .map(|s| {
                let checkpoint = matches!(s, Step::Checkpoint(..)).then(|| metrics.checkpoint(s.name()));
                (metrics.step(s.name()), checkpoint)
            })
            .collect();
        Pipeline {
            steps: self.steps.into(),
            counters,
            error_policy: self.error_policy,
            dedup: AlertDeduplicator::with_intervals(self.dedup_interval, self.dedup_per_checkpoint.clone()),
            dedup_interval: self.dedup_interval,
            dedup_per_checkpoint: self.dedup_per_checkpoint,
            throughput_window: self.throughput_window,
            metrics,
        }
    }
}

/// The upstream `create_processing_pipeline(stages)`: a pipeline of the given stages in order.
pub fn create_processing_pipeline(stages: Vec<Arc<dyn Stage>>) -> Pipeline {
    stages.into_iter().fold(PipelineBuilder::new(), PipelineBuilder::add_stage).build()
}

/// An immutable, shareable (`Send + Sync`) pipeline of stages and checkpoints.
pub struct Pipeline {
    steps: Arc<[Step]>,
    /// Per step, in step order: its counters and, for a checkpoint, its pass/fail counts.
    counters: Vec<(Arc<StepCounters>, Option<CheckpointCounts>)>,
    error_policy: ErrorPolicy,
    dedup: AlertDeduplicator,
    dedup_interval: Duration,
    dedup_per_checkpoint: HashMap<String, Duration>,
    throughput_window: Duration,
    metrics: Arc<Metrics>,
}

/// What a stage did with a batch.
enum Failure {
    Error(StageError),
    Panic(String),
}

impl Pipeline {
    /// A builder starting from this pipeline's steps and settings (metrics start fresh; pass
    /// [`Pipeline::shared_metrics`] to [`PipelineBuilder::metrics`] to keep counting).
    pub fn to_builder(&self) -> PipelineBuilder {
        PipelineBuilder {
            steps: self.steps.to_vec(),
            error_policy: self.error_policy,
            dedup_interval: self.dedup_interval,
            dedup_per_checkpoint: self.dedup_per_checkpoint.clone(),
            throughput_window: self.throughput_window,
            metrics: None,
        }
    }

    /// The counters this pipeline counts into.
    pub fn shared_metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Names of the steps, in order.
    pub fn step_names(&self) -> Vec<&str> {
        self.steps.iter().map(Step::name).collect()
    }

    /// The upstream `process_with_pipeline(data)`; same as [`Pipeline::process`].
    pub fn process_with_pipeline(&self, data: SampleBatch) -> Result<StreamingResult, PipelineError> {
        self.process(data)
    }

    /// Runs every step on the batch.
    pub fn process(&self, mut batch: SampleBatch) -> Result<StreamingResult, PipelineError> {
        self.process_batch(&mut batch)
    }

    /// Runs every step on the batch in place, leaving what the stages kept (for storage).
    pub fn process_batch(&self, batch: &mut SampleBatch) -> Result<StreamingResult, PipelineError> {
        let started = Instant::now();
        let mut result = StreamingResult::default();
        for (step, (counters, checkpoint_stats)) in self.steps.iter().zip(&self.counters) {
            match step {
                Step::Stage(stage) => {
                    let t = Instant::now();
                    let outcome = catch_unwind(AssertUnwindSafe(|| stage.process(batch, &mut result)));
                    counters.latency.record(t.elapsed());
                    let failure = match outcome {
                        Ok(Ok(())) => continue,
                        Ok(Err(e)) => {
                            counters.errors.fetch_add(1, Ordering::Relaxed);
                            Failure::Error(e)
                        }
                        Err(panic) => {
                            counters.panics.fetch_add(1, Ordering::Relaxed);
                            Failure::Panic(panic_message(panic.as_ref()))
                        }
                    };
                    self.metrics.errors_total.fetch_add(1, Ordering::Relaxed);
                    let message = match failure {
                        Failure::Error(e) => e.message,
                        Failure::Panic(m) => format!("panicked: {m}"),
                    };
                    let name = stage.name().to_owned();
                    match self.error_policy {
                        ErrorPolicy::SkipStage => {
                            result.metadata.insert(format!("error.{name}"), message);
                        }
                        ErrorPolicy::DropBatch => {
                            return Err(self.fail(PipelineError::StageFailed {
                                stage: name,
                                message,
                                partial: result.into(),
                            }));
                        }
                        ErrorPolicy::StopStream => {
                            result.metadata.insert(format!("error.{name}"), message);
                            return Err(self.fail(PipelineError::StreamStopped { by: name, partial: result.into() }));
                        }
                    }
                }
                Step::Checkpoint(check, action) => {
                    let t = Instant::now();
                    let outcome = check.check(batch);
                    counters.latency.record(t.elapsed());
                    if let Some(stats) = checkpoint_stats {
                        let mut stats = stats.lock();
                        stats.passed += outcome.passed;
                        stats.failed += outcome.failed;
                        stats.pass_rate = Some(stats.passed as f64 / (stats.passed + stats.failed).max(1) as f64);
                    }
                    result.add_to_metric(&format!("checkpoint.{}.failed", check.name()), outcome.failed as f64);
                    result.alerts.extend(outcome.alerts);
                    result.spc_results.extend(outcome.spc);
                    if outcome.failed > 0 && *action != CheckpointAction::Continue {
                        self.finish_alerts(&mut result);
                        let name = check.name().to_owned();
                        return Err(self.fail(match action {
                            CheckpointAction::DropBatch => {
                                PipelineError::DroppedByCheckpoint { checkpoint: name, partial: result.into() }
                            }
                            _ => PipelineError::StreamStopped { by: name, partial: result.into() },
                        }));
                    }
                }
            }
        }
        self.finish_alerts(&mut result);
        result.processed_count = batch.len();
        result.timestamp = Timestamp::now();
        let elapsed = started.elapsed();
        result.processing_time_ms = elapsed.as_secs_f64() * 1e3;
        self.metrics.record_dead_letters(result.dead_letters.len() as u64);
        self.metrics.batch_done(batch.len(), elapsed);
        Ok(result)
    }

    fn finish_alerts(&self, result: &mut StreamingResult) {
        let suppressed = self.dedup.filter(&mut result.alerts);
        if suppressed > 0 {
            result.add_to_metric("alerts.suppressed", suppressed as f64);
        }
        self.metrics.alerts_suppressed.fetch_add(suppressed as u64, Ordering::Relaxed);
        self.metrics.alerts_emitted.fetch_add(result.alerts.len() as u64, Ordering::Relaxed);
        self.metrics.record_alerts(&result.alerts);
    }

    fn fail(&self, error: PipelineError) -> PipelineError {
        self.metrics.batches_failed.fetch_add(1, Ordering::Relaxed);
        self.metrics.record_dead_letters(error.partial().map_or(0, |p| p.dead_letters.len() as u64));
        error
    }

    /// A snapshot of the metrics (of every pipeline sharing them).
    pub fn metrics(&self) -> PipelineMetrics {
        self.metrics.snapshot()
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-text panic payload".to_owned())
}
