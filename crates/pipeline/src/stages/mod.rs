//! Built-in stages: validation, unit conversion, voxel fusion, buffering, SPC, and a closure adapter.

mod buffer;
mod spc;
mod units;
mod validate;
mod voxel;

pub use buffer::BufferStage;
pub use spc::{ChartKind, SpcStage, nelson, western_electric};
pub use units::UnitConversion;
pub use validate::ValidateStage;
pub use voxel::VoxelStage;

use qadf_core_types::{SampleBatch, Stage, StageError, StreamingResult};

/// A stage from a closure (the upstream "stage is a function").
pub struct FnStage<F> {
    name: String,
    f: F,
}

impl<F> FnStage<F>
where
    F: Fn(&mut SampleBatch, &mut StreamingResult) -> Result<(), String> + Send + Sync,
{
    /// A stage named `name` running `f`; an `Err` message becomes a [`StageError`] with the name.
    pub fn new(name: impl Into<String>, f: F) -> FnStage<F> {
        FnStage { name: name.into(), f }
    }
}

impl<F> Stage for FnStage<F>
where
    F: Fn(&mut SampleBatch, &mut StreamingResult) -> Result<(), String> + Send + Sync,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn process(&self, batch: &mut SampleBatch, result: &mut StreamingResult) -> Result<(), StageError> {
        (self.f)(batch, result).map_err(|message| StageError::new(&self.name, message))
    }
}
