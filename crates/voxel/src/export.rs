//! Serializable exports for the live view and storage: a layer slice and changed blocks' contents.
//!
//! Empty voxels are `None` (JSON `null`), so no NaN or infinity ever reaches a serializer.

use serde::{Deserialize, Serialize};

use crate::block::BLOCK_EDGE;
use crate::cell::Aggregation;
use crate::error::VoxelError;
use crate::grid::VoxelGrid;
use crate::region::UpdatedRegion;

/// One signal's aggregate over the voxels of one z level, cropped to the touched blocks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerSlice {
    /// The signal.
    pub signal: String,
    /// The statistic reported.
    pub aggregation: Aggregation,
    /// Voxel index along z.
    pub z_index: u32,
    /// Voxel edge in mm.
    pub resolution: f64,
    /// Voxel index (x, y) of `values[0]`.
    pub index_origin: [u32; 2],
    /// World (x, y) in mm of the lower corner of `values[0]`.
    pub world_origin: [f64; 2],
    /// Columns (x).
    pub width: u32,
    /// Rows (y).
    pub height: u32,
    /// Row-major values, `values[row * width + column]`; `None` where nothing landed.
    pub values: Vec<Option<f64>>,
}

impl LayerSlice {
    /// The value at voxel (x, y) of the grid, if inside the slice and not empty.
    pub fn get(&self, x: u32, y: u32) -> Option<f64> {
        let (col, row) = (x.checked_sub(self.index_origin[0])?, y.checked_sub(self.index_origin[1])?);
        if col >= self.width || row >= self.height {
            return None;
        }
        self.values[(row * self.width + col) as usize]
    }
}

/// The contents of one changed block for one signal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockContent {
    /// The block and the voxels it covers.
    pub region: UpdatedRegion,
    /// 512 values, x fastest (`x + 8 y + 64 z` within the block); `None` where empty or outside the grid.
    pub values: Vec<Option<f64>>,
}

impl VoxelGrid {
    /// The slice of `signal` at height `z_mm` under `aggregation`.
    pub fn layer_slice(&self, signal: &str, z_mm: f64, aggregation: Aggregation) -> Result<LayerSlice, VoxelError> {
        let cells = self.layer(signal).ok_or_else(|| VoxelError::UnknownSignal(signal.to_owned()))?;
        let probe = nalgebra::Point3::new(self.bbox_min().x, self.bbox_min().y, z_mm);
        let z_index =
            self.voxel_index(&probe).ok_or(VoxelError::OutOfBounds { index: 0, x: probe.x, y: probe.y, z: z_mm })?[2];
        let bz = z_index / BLOCK_EDGE;
        let blocks: Vec<(usize, [u32; 3])> =
            self.blocks().iter().enumerate().filter(|(_, b)| b[2] == bz).map(|(s, b)| (s, *b)).collect();
        let mut slice = LayerSlice {
            signal: signal.to_owned(),
            aggregation,
            z_index,
            resolution: self.resolution(),
            index_origin: [0, 0],
            world_origin: [self.bbox_min().x, self.bbox_min().y],
            width: 0,
            height: 0,
            values: Vec::new(),
        };
        let Some(lo) = blocks.iter().map(|(_, b)| [b[0], b[1]]).reduce(|a, b| [a[0].min(b[0]), a[1].min(b[1])]) else {
            return Ok(slice);
        };
        let hi = blocks.iter().map(|(_, b)| [b[0], b[1]]).fold(lo, |a, b| [a[0].max(b[0]), a[1].max(b[1])]);
        let dims = self.dims();
        let origin = [lo[0] * BLOCK_EDGE, lo[1] * BLOCK_EDGE];
        let width = ((hi[0] + 1) * BLOCK_EDGE).min(dims[0]) - origin[0];
        let height = ((hi[1] + 1) * BLOCK_EDGE).min(dims[1]) - origin[1];
        let mut values = vec![None; width as usize * height as usize];
        let local_z = (z_index % BLOCK_EDGE) as usize;
        for (slot, block) in blocks {
            let base = local_z * 64;
            for ly in 0..BLOCK_EDGE {
                let y = block[1] * BLOCK_EDGE + ly;
                if y >= dims[1] {
                    break;
                }
                let row = (y - origin[1]) as usize * width as usize;
                for lx in 0..BLOCK_EDGE {
                    let x = block[0] * BLOCK_EDGE + lx;
                    if x >= dims[0] {
                        break;
                    }
                    let cell = &cells[slot][base + (ly * BLOCK_EDGE + lx) as usize];
                    values[row + (x - origin[0]) as usize] = cell.aggregate(aggregation);
                }
            }
        }
        slice.index_origin = origin;
        slice.world_origin = std::array::from_fn(|a| self.bbox_min()[a] + origin[a] as f64 * self.resolution());
        (slice.width, slice.height, slice.values) = (width, height, values);
        Ok(slice)
    }

    /// The contents of the given regions' blocks for `signal` under `aggregation`.
    pub fn block_contents(
        &self,
        signal: &str,
        aggregation: Aggregation,
        regions: &[UpdatedRegion],
    ) -> Result<Vec<BlockContent>, VoxelError> {
        let cells = self.layer(signal).ok_or_else(|| VoxelError::UnknownSignal(signal.to_owned()))?;
        Ok(regions
            .iter()
            .filter_map(|region| {
                let slot = self.block_slot(region.block)? as usize;
                let block = &cells[slot];
                Some(BlockContent { region: *region, values: block.iter().map(|c| c.aggregate(aggregation)).collect() })
            })
            .collect())
    }
}
