//! `ValidateStage`: removes samples that break the sample rules and keeps them as dead letters.

use qadf_core_types::{DeadLetter, IngestLimits, SampleBatch, SampleError, Stage, StageError, StreamingResult};

/// Moves invalid samples (no signals, NaN, duplicate names, names over the limits, ...) out of
/// the batch into `result.dead_letters` (payload: the sample in bincode) and counts them by reason.
#[derive(Clone, Copy, Debug, Default)]
pub struct ValidateStage {
    limits: IngestLimits,
}

impl ValidateStage {
    /// Validates under `limits` (the default stage uses [`IngestLimits::default`]).
    pub fn new(limits: IngestLimits) -> ValidateStage {
        ValidateStage { limits }
    }
}

fn reason_key(e: &SampleError) -> &'static str {
    match e {
        SampleError::NoSignals => "no_signals",
        SampleError::EmptySignalName => "empty_signal_name",
        SampleError::DuplicateSignal { .. } => "duplicate_signal",
        SampleError::NonFiniteSignal { .. } => "non_finite_signal",
        SampleError::NonFinitePosition { .. } => "non_finite_position",
        SampleError::EmptyId { .. } => "empty_id",
        SampleError::TooManySignals { .. } => "too_many_signals",
        SampleError::NameTooLong { .. } => "name_too_long",
        SampleError::ControlCharacter { .. } => "control_character",
        _ => "other",
    }
}

impl Stage for ValidateStage {
    fn name(&self) -> &str {
        "validate"
    }

    fn process(&self, batch: &mut SampleBatch, result: &mut StreamingResult) -> Result<(), StageError> {
        let mut rejected = Vec::new();
        batch.samples.retain(|s| match s.validate_with(&self.limits) {
            Ok(()) => true,
            Err(e) => {
                rejected.push((reason_key(&e), DeadLetter::of_sample(e.to_string(), s)));
                false
            }
        });
        for (key, letter) in rejected {
            result.add_to_metric(&format!("rejected.{key}"), 1.0);
            result.rejected_count += 1;
            result.dead_letters.push(letter);
        }
        Ok(())
    }
}
