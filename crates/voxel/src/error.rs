//! Errors of the voxel crate.

/// Why a voxel operation was refused. Nothing is inserted when one is returned.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum VoxelError {
    /// The bounding box or resolution is unusable.
    #[error("invalid voxel grid: {0}")]
    InvalidSpec(String),
    /// A signal's value count differs from the coordinate count.
    #[error("signal `{signal}` has {values} values for {coordinates} coordinates")]
    LengthMismatch {
        /// The signal.
        signal: String,
        /// Its number of values.
        values: usize,
        /// The number of coordinates.
        coordinates: usize,
    },
    /// A signal name is the empty string.
    #[error("a signal has an empty name")]
    EmptySignalName,
    /// The same signal name was given twice in one call.
    #[error("signal `{name}` was given twice")]
    DuplicateSignal {
        /// The repeated name.
        name: String,
    },
    /// A point lies outside the bounding box under [`crate::OutOfBoundsPolicy::Fail`].
    #[error("point {index} at ({x}, {y}, {z}) is outside the bounding box")]
    OutOfBounds {
        /// Position of the point in the call.
        index: usize,
        /// x in mm.
        x: f64,
        /// y in mm.
        y: f64,
        /// z in mm.
        z: f64,
    },
    /// The signal has never been seen by this grid.
    #[error("unknown signal `{0}`")]
    UnknownSignal(String),
}
