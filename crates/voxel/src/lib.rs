//! Sparse voxel fusion of streaming monitoring samples, with exact per-voxel statistics and
//! bounded dirty-region tracking.
//!
//! - [`VoxelGrid`] (`grid.rs`): the grid over a bounding box, 8³ blocks allocated on first touch.
//! - [`CellStats`] / [`Aggregation`] (`cell.rs`): Welford statistics per voxel and signal; no finalize.
//! - [`UpdatedRegion`] / [`Region`] (`region.rs`): which blocks changed since a dashboard last read.
//! - [`LayerSlice`] / [`BlockContent`] (`export.rs`): serializable views for the live page and storage.
//! - [`IncrementalProcessor`] (`processor.rs`): the upstream surface, thread-safe (one writer, many readers).
//!
//! ```
//! use qadf_voxel::{Aggregation, IncrementalProcessor, VoxelGrid};
//! use qadf_core_types::Point3;
//!
//! let grid = VoxelGrid::new(Point3::origin(), Point3::new(100.0, 100.0, 100.0), 1.0).unwrap();
//! let processor = IncrementalProcessor::new(grid);
//! let at = [Point3::new(10.2, 20.7, 30.1)];
//! processor.update_voxel_grid(&[10.0], &at).unwrap();
//! processor.update_voxel_grid(&[20.0], &at).unwrap();
//! processor.update_voxel_grid(&[40.0], &at).unwrap();
//! let mean = processor.read(|g| g.cell("value", [10, 20, 30]).unwrap().aggregate(Aggregation::Mean));
//! assert!((mean.unwrap() - 70.0 / 3.0).abs() < 1e-12); // the Python original said 27.5
//! assert_eq!(processor.get_updated_regions(true).len(), 1);
//! ```
#![deny(missing_docs)]

mod block;
mod cell;
mod error;
mod export;
mod grid;
mod processor;
mod region;

pub use block::{BLOCK_EDGE, BLOCK_VOXELS, prefetch};
pub use cell::{Aggregation, CellStats};
pub use error::VoxelError;
pub use export::{BlockContent, LayerSlice};
pub use grid::{GridDigest, MAX_DIM, OutOfBoundsPolicy, UpdateReport, VoxelGrid};
pub use processor::{DEFAULT_SIGNAL, IncrementalProcessor, ProcessorStatistics};
pub use region::{Region, UpdatedRegion};
