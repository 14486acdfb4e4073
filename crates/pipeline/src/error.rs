//! Errors of the pipeline crate.

use qadf_core_types::StreamingResult;

/// Why a batch did not complete the pipeline. The partial result travels with it, so nothing it
/// found (alerts, dead letters, metrics) is lost.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// A stage failed (or panicked) and the error policy drops the batch.
    #[error("batch dropped: stage `{stage}` failed: {message}")]
    StageFailed {
        /// The stage.
        stage: String,
        /// What it reported (or the panic message).
        message: String,
        /// What the batch produced before the failure.
        partial: Box<StreamingResult>,
    },
    /// A quality checkpoint failed and its action drops the batch.
    #[error("batch dropped by checkpoint `{checkpoint}`")]
    DroppedByCheckpoint {
        /// The checkpoint.
        checkpoint: String,
        /// What the batch produced, including the alerts.
        partial: Box<StreamingResult>,
    },
    /// A stage or checkpoint asked to stop the stream; no further batch of it is processed.
    #[error("stream stopped by `{by}`")]
    StreamStopped {
        /// The stage or checkpoint that stopped it.
        by: String,
        /// What the batch produced, including the alerts.
        partial: Box<StreamingResult>,
    },
    /// The pipeline or worker pool was shut down.
    #[error("the pipeline is shut down")]
    ShutDown,
}

impl PipelineError {
    /// The partial result, if the batch got that far.
    pub fn partial(&self) -> Option<&StreamingResult> {
        match self {
            PipelineError::StageFailed { partial, .. }
            | PipelineError::DroppedByCheckpoint { partial, .. }
            | PipelineError::StreamStopped { partial, .. } => Some(partial),
            PipelineError::ShutDown => None,
        }
    }
}
