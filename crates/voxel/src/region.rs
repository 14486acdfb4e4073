//! Dirty-region tracking: which blocks changed since the last read, in index and world space.
//!
//! The set holds each allocated block at most once, so its memory is bounded by the number of
//! blocks (which scales with the part), however long the stream runs.

use serde::{Deserialize, Serialize};

use crate::block::BLOCK_EDGE;
use crate::grid::VoxelGrid;

/// The blocks touched since the last clear, each at most once.
#[derive(Clone, Debug, Default)]
pub(crate) struct DirtySet {
    flags: Vec<bool>,
    list: Vec<u32>,
}

impl DirtySet {
    pub(crate) fn grow(&mut self, blocks: usize) {
        self.flags.resize(blocks, false);
    }

    #[inline]
    pub(crate) fn mark(&mut self, slot: u32) {
        let flag = &mut self.flags[slot as usize];
        if !*flag {
            *flag = true;
            self.list.push(slot);
        }
    }

    pub(crate) fn slots(&self) -> &[u32] {
        &self.list
    }

    pub(crate) fn clear(&mut self) {
        for &slot in &self.list {
            self.flags[slot as usize] = false;
        }
        self.list.clear();
    }

    pub(crate) fn bytes_used(&self) -> usize {
        self.flags.capacity() + self.list.capacity() * size_of::<u32>()
    }
}

/// A box of voxels: index range (`index_max` exclusive) and the world-space box it covers (mm).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Region {
    /// First voxel index per axis.
    pub index_min: [u32; 3],
    /// One past the last voxel index per axis.
    pub index_max: [u32; 3],
    /// Lower world corner.
    pub world_min: [f64; 3],
    /// Upper world corner.
    pub world_max: [f64; 3],
}

/// One changed block.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpdatedRegion {
    /// Block coordinates (voxel index / 8).
    pub block: [u32; 3],
    /// The voxels of the block inside the grid.
    pub region: Region,
}

impl VoxelGrid {
    fn region_of(&self, index_min: [u32; 3], index_max: [u32; 3]) -> Region {
        let (origin, res) = (self.bbox_min(), self.resolution());
        Region {
            index_min,
            index_max,
            world_min: std::array::from_fn(|a| origin[a] + index_min[a] as f64 * res),
            world_max: std::array::from_fn(|a| origin[a] + index_max[a] as f64 * res),
        }
    }

    fn block_region(&self, block: [u32; 3]) -> Region {
        let dims = self.dims();
        let min = std::array::from_fn(|a| block[a] * BLOCK_EDGE);
        let max = std::array::from_fn(|a| ((block[a] + 1) * BLOCK_EDGE).min(dims[a]));
        self.region_of(min, max)
    }

    /// The blocks changed since the last [`VoxelGrid::clear_updated_regions`], in order of first change.
    pub fn updated_regions(&self) -> Vec<UpdatedRegion> {
        self.dirty()
            .slots()
            .iter()
            .map(|&slot| {
                let block = self.block_origin(slot);
                UpdatedRegion { block, region: self.block_region(block) }
            })
            .collect()
    }

    /// Forgets which blocks changed.
    pub fn clear_updated_regions(&mut self) {
        self.dirty_mut().clear();
    }

    /// Number of blocks changed since the last clear.
    pub fn updated_block_count(&self) -> usize {
        self.dirty().slots().len()
    }

    /// The bounding box of every changed block, or `None` if nothing changed.
    pub fn combined_updated_region(&self) -> Option<Region> {
        let slots = self.dirty().slots();
        let first = self.block_region(self.block_origin(*slots.first()?));
        let (mut min, mut max) = (first.index_min, first.index_max);
        for &slot in &slots[1..] {
            let r = self.block_region(self.block_origin(slot));
            for a in 0..3 {
                min[a] = min[a].min(r.index_min[a]);
                max[a] = max[a].max(r.index_max[a]);
            }
        }
        Some(self.region_of(min, max))
    }
}
