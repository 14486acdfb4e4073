//! `IncrementalProcessor`: the upstream streaming surface over a shared `VoxelGrid`.
//!
//! Concurrency: the grid sits behind a `parking_lot::RwLock`. Each call that changes it holds the
//! write lock for the whole batch, so readers (`read`, exports, statistics) see a batch either
//! completely or not at all. One writer at a time; any number of concurrent readers.

use std::sync::atomic::{AtomicU64, Ordering};

use nalgebra::Point3;
use parking_lot::RwLock;
use qadf_core_types::SampleBatch;
use serde::{Deserialize, Serialize};

use crate::error::VoxelError;
use crate::grid::{UpdateReport, VoxelGrid};
use crate::region::{Region, UpdatedRegion};

/// Signal name used by [`IncrementalProcessor::update_voxel_grid`], which takes unnamed values.
pub const DEFAULT_SIGNAL: &str = "value";

/// Processor statistics; all counts since creation or reset.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessorStatistics {
    /// Calls that changed the grid.
    pub batches_processed: u64,
    /// Calls refused with an error (nothing inserted).
    pub batches_refused: u64,
    /// Accepted and rejected counts.
    pub totals: UpdateReport,
    /// Signals known to the grid.
    pub signals: Vec<String>,
    /// Voxels per axis.
    pub dims: [u32; 3],
    /// Allocated 8³ blocks.
    pub blocks_allocated: usize,
    /// Blocks changed since the updated regions were last cleared.
    pub updated_blocks: usize,
    /// Bytes held by the grid.
    pub bytes_used: usize,
}

/// Applies streaming batches to a voxel grid and tracks what changed.
#[derive(Debug)]
pub struct IncrementalProcessor {
    grid: RwLock<VoxelGrid>,
    batches_processed: AtomicU64,
    batches_refused: AtomicU64,
}

impl IncrementalProcessor {
    /// A processor owning `grid`.
    pub fn new(grid: VoxelGrid) -> IncrementalProcessor {
        IncrementalProcessor {
            grid: RwLock::new(grid),
            batches_processed: AtomicU64::new(0),
            batches_refused: AtomicU64::new(0),
        }
    }

    fn count<T>(&self, result: Result<T, VoxelError>) -> Result<T, VoxelError> {
        let counter = if result.is_ok() { &self.batches_processed } else { &self.batches_refused };
        counter.fetch_add(1, Ordering::Relaxed);
        result
    }

    /// Adds unnamed values (signal [`DEFAULT_SIGNAL`]) at `coordinates` (N × 3 points).
    pub fn update_voxel_grid(&self, values: &[f64], coordinates: &[Point3<f64>]) -> Result<UpdateReport, VoxelError> {
        self.process_signal_batch(&[(DEFAULT_SIGNAL, values)], coordinates)
    }

    /// Adds several named signals measured at the same coordinates; names are kept.
    pub fn process_signal_batch(
        &self,
        signals: &[(&str, &[f64])],
        coordinates: &[Point3<f64>],
    ) -> Result<UpdateReport, VoxelError> {
        let result = self.grid.write().insert(signals, coordinates);
        self.count(result)
    }

    /// Adds every signal of every sample in the batch at its position.
    pub fn process_samples(&self, batch: &SampleBatch) -> Result<UpdateReport, VoxelError> {
        let result = self.grid.write().insert_samples(&batch.samples);
        self.count(result)
    }

    /// The blocks changed since the last clear; `clear` forgets them after reading.
    pub fn get_updated_regions(&self, clear: bool) -> Vec<UpdatedRegion> {
        if clear {
            let mut grid = self.grid.write();
            let regions = grid.updated_regions();
            grid.clear_updated_regions();
            regions
        } else {
            self.grid.read().updated_regions()
        }
    }

    /// The bounding box of all changed blocks, or `None` if nothing changed.
    pub fn get_combined_updated_region(&self) -> Option<Region> {
        self.grid.read().combined_updated_region()
    }

    /// Current statistics.
    pub fn get_statistics(&self) -> ProcessorStatistics {
        let grid = self.grid.read();
        ProcessorStatistics {
            batches_processed: self.batches_processed.load(Ordering::Relaxed),
            batches_refused: self.batches_refused.load(Ordering::Relaxed),
            totals: grid.totals(),
            signals: grid.signals().to_vec(),
            dims: grid.dims(),
            blocks_allocated: grid.block_count(),
            updated_blocks: grid.updated_block_count(),
            bytes_used: grid.bytes_used(),
        }
    }

    /// Runs `f` on a consistent view of the grid (no batch is half-applied in it).
    pub fn read<R>(&self, f: impl FnOnce(&VoxelGrid) -> R) -> R {
        f(&self.grid.read())
    }

    /// Empties the grid and zeroes the statistics.
    pub fn reset(&self) {
        self.grid.write().reset();
        self.batches_processed.store(0, Ordering::Relaxed);
        self.batches_refused.store(0, Ordering::Relaxed);
    }
}
