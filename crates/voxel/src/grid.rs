//! `VoxelGrid`: a sparse grid of 8³-voxel blocks holding exact statistics per voxel and signal.

use nalgebra::Point3;
use qadf_core_types::Sample;
use serde::{Deserialize, Serialize};

use crate::block::{BLOCK_VOXELS, BlockTable, local_index, prefetch};
use crate::cell::{Aggregation, CellStats};
use crate::error::VoxelError;
use crate::region::DirtySet;

/// What happens to a point outside the bounding box.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutOfBoundsPolicy {
    /// Skip the point and count it in `rejected_out_of_bounds` (the default).
    #[default]
    Reject,
    /// Fail the whole call with [`VoxelError::OutOfBounds`]; nothing is inserted.
    Fail,
}

/// A whole-grid summary of one signal (see [`VoxelGrid::digest`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GridDigest {
    /// The signal.
    pub signal: String,
    /// Non-empty voxels.
    pub voxels: u64,
    /// Values fused.
    pub values: u64,
    /// Sum of every value (equal across orders up to floating-point rounding).
    pub sum: f64,
    /// Smallest value.
    pub min: Option<f64>,
    /// Largest value.
    pub max: Option<f64>,
}

/// Counts of what a grid accepted and rejected since creation or reset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateReport {
    /// Points that landed in a voxel.
    pub points_applied: u64,
    /// Signal values added to voxel statistics.
    pub values_applied: u64,
    /// Points outside the bounding box (never clamped).
    pub rejected_out_of_bounds: u64,
    /// Points with a NaN or infinite coordinate.
    pub rejected_non_finite_coordinates: u64,
    /// Values that were NaN or infinite (their point's other values still count).
    pub rejected_non_finite_values: u64,
    /// Samples without a position.
    pub rejected_no_position: u64,
    /// Blocks allocated.
    pub new_blocks: u64,
}

impl UpdateReport {
    fn add(&mut self, other: &UpdateReport) {
        self.points_applied += other.points_applied;
        self.values_applied += other.values_applied;
        self.rejected_out_of_bounds += other.rejected_out_of_bounds;
        self.rejected_non_finite_coordinates += other.rejected_non_finite_coordinates;
        self.rejected_non_finite_values += other.rejected_non_finite_values;
        self.rejected_no_position += other.rejected_no_position;
        self.new_blocks += other.new_blocks;
    }
}

/// Why a point has no voxel.
enum Miss {
    OutOfBounds,
    NonFinite,
}

/// Sparse voxel grid over a closed bounding box `[bbox_min, bbox_max]` at a cubic `resolution` (mm).
///
/// `dims = max(ceil(extent / resolution), 1)` per axis; the voxel of `p` is
/// `floor((p - bbox_min) / resolution)`, with points exactly on `bbox_max` in the last voxel.
/// Memory is spent only on touched 8³ blocks (found through a hash map, as in Voxblox and OpenVDB).
#[derive(Clone, Debug)]
pub struct VoxelGrid {
    bbox_min: Point3<f64>,
    bbox_max: Point3<f64>,
    resolution: f64,
    dims: [u32; 3],
    aggregation: Aggregation,
    out_of_bounds: OutOfBoundsPolicy,
    signals: Vec<String>,
    /// Per signal, per block slot: the block's 512 cells (one allocation per block: growth never copies).
    layers: Vec<Vec<Box<[CellStats]>>>,
    table: BlockTable,
    block_coords: Vec<[u32; 3]>,
    dirty: DirtySet,
    totals: UpdateReport,
    scratch: Vec<u32>,
}

/// How many points ahead the apply loop prefetches cells (measured: docs/PERFORMANCE.md, "Fifth look").
const PREFETCH_DISTANCE: usize = 64;

/// A block of empty cells, allocated zeroed (fresh memory from the OS needs no initialising pass).
fn new_block() -> Box<[CellStats]> {
    let block = Box::<[CellStats]>::new_zeroed_slice(BLOCK_VOXELS);
    // SAFETY: every field of `CellStats` is a `u64` or `f64`, for which all zero bits is a valid
    // value, and all zero bits is exactly `CellStats::EMPTY` (checked by a unit test in cell.rs).
    #[allow(unsafe_code)]
    unsafe {
        block.assume_init()
    }
}

/// Largest number of voxels per axis (blocks are addressed with 21 bits per axis).
pub const MAX_DIM: u32 = (1 << 21) * 8;

impl VoxelGrid {
    /// A grid over `[bbox_min, bbox_max]` at `resolution` mm, reporting means and rejecting out-of-bounds points.
    pub fn new(bbox_min: Point3<f64>, bbox_max: Point3<f64>, resolution: f64) -> Result<VoxelGrid, VoxelError> {
        if !(resolution.is_finite() && resolution > 0.0) {
            return Err(VoxelError::InvalidSpec(format!("resolution must be a positive number, not {resolution}")));
        }
        let mut dims = [0u32; 3];
        for axis in 0..3 {
            let (lo, hi) = (bbox_min[axis], bbox_max[axis]);
            if !(lo.is_finite() && hi.is_finite() && hi >= lo) {
                return Err(VoxelError::InvalidSpec(format!(
                    "axis {axis}: bbox_max ({hi}) must be finite and not below bbox_min ({lo})"
                )));
            }
            let n = ((hi - lo) / resolution).ceil().max(1.0);
            if n > MAX_DIM as f64 {
                return Err(VoxelError::InvalidSpec(format!(
                    "axis {axis}: {n} voxels exceeds the limit of {MAX_DIM}; use a coarser resolution"
                )));
            }
            dims[axis] = n as u32;
        }
        Ok(VoxelGrid {
            bbox_min,
            bbox_max,
            resolution,
            dims,
            aggregation: Aggregation::default(),
            out_of_bounds: OutOfBoundsPolicy::default(),
            signals: Vec::new(),
            layers: Vec::new(),
            table: BlockTable::default(),
            block_coords: Vec::new(),
            dirty: DirtySet::default(),
            totals: UpdateReport::default(),
            scratch: Vec::new(),
        })
    }

    /// Sets the aggregation reported by exports (default [`Aggregation::Mean`]).
    pub fn with_aggregation(mut self, aggregation: Aggregation) -> VoxelGrid {
        self.aggregation = aggregation;
        self
    }

    /// Sets the out-of-bounds policy (default [`OutOfBoundsPolicy::Reject`]).
    pub fn with_out_of_bounds(mut self, policy: OutOfBoundsPolicy) -> VoxelGrid {
        self.out_of_bounds = policy;
        self
    }

    /// Voxels per axis.
    pub fn dims(&self) -> [u32; 3] {
        self.dims
    }

    /// Edge length of a voxel in mm.
    pub fn resolution(&self) -> f64 {
        self.resolution
    }

    /// Lower corner of the bounding box.
    pub fn bbox_min(&self) -> Point3<f64> {
        self.bbox_min
    }

    /// Upper corner of the bounding box.
    pub fn bbox_max(&self) -> Point3<f64> {
        self.bbox_max
    }

    /// The aggregation exports report by default.
    pub fn aggregation(&self) -> Aggregation {
        self.aggregation
    }

    /// Names of the signals seen so far, in order of first appearance.
    pub fn signals(&self) -> &[String] {
        &self.signals
    }

    /// Totals of accepted and rejected points since creation or [`VoxelGrid::reset`].
    pub fn totals(&self) -> UpdateReport {
        self.totals
    }

    /// Number of allocated 8³ blocks.
    pub fn block_count(&self) -> usize {
        self.block_coords.len()
    }

    /// Bytes held by the grid's allocations (cells, block table, dirty set).
    pub fn bytes_used(&self) -> usize {
        let blocks: usize = self.layers.iter().map(|l| l.len() * BLOCK_VOXELS * size_of::<CellStats>()).sum();
        let cells = blocks + self.layers.iter().map(|l| l.capacity() * size_of::<Box<[CellStats]>>()).sum::<usize>();
        let table = self.table.bytes_used();
        let coords = self.block_coords.capacity() * size_of::<[u32; 3]>();
        cells + table + coords + self.dirty.bytes_used() + self.scratch.capacity() * size_of::<u32>()
    }

    /// The voxel index of `p`, or `None` if it is outside the box or not finite.
    pub fn voxel_index(&self, p: &Point3<f64>) -> Option<[u32; 3]> {
        self.locate(p).ok()
    }

    /// World coordinates of the centre of voxel `index`.
    pub fn voxel_center(&self, index: [u32; 3]) -> Point3<f64> {
        Point3::from(std::array::from_fn(|a| self.bbox_min[a] + (index[a] as f64 + 0.5) * self.resolution))
    }

    #[inline(always)]
    fn locate(&self, p: &Point3<f64>) -> Result<[u32; 3], Miss> {
        let (lo, hi) = (&self.bbox_min, &self.bbox_max);
        // One combined test per kind: NaN fails every comparison, so it is caught by `inside`.
        let inside = p.x >= lo.x && p.x <= hi.x && p.y >= lo.y && p.y <= hi.y && p.z >= lo.z && p.z <= hi.z;
        if !inside {
            return Err(if p.x.is_finite() && p.y.is_finite() && p.z.is_finite() {
                Miss::OutOfBounds
            } else {
                Miss::NonFinite
            });
        }
        let r = self.resolution;
        let i = [(p.x - lo.x) / r, (p.y - lo.y) / r, (p.z - lo.z) / r];
        Ok(std::array::from_fn(|a| (i[a] as u32).min(self.dims[a] - 1)))
    }

    fn signal_layer(&mut self, name: &str) -> usize {
        if let Some(i) = self.signals.iter().position(|s| s == name) {
            return i;
        }
        self.signals.push(name.to_owned());
        self.layers.push((0..self.block_coords.len()).map(|_| new_block()).collect());
        self.signals.len() - 1
    }

    /// The slot of the block holding voxel `index`, allocating it (for every signal) if new.
    #[inline]
    fn slot_for(&mut self, index: [u32; 3], report: &mut UpdateReport) -> u32 {
        let block = [index[0] >> 3, index[1] >> 3, index[2] >> 3];
        let (coords, layers, dirty) = (&mut self.block_coords, &mut self.layers, &mut self.dirty);
        self.table.get_or_insert(block, || {
            coords.push(block);
            for layer in layers.iter_mut() {
                layer.push(new_block());
            }
            dirty.grow(coords.len());
            report.new_blocks += 1;
            coords.len() as u32 - 1
        })
    }

    /// Adds named signal values measured at `coordinates` (the upstream `process_signal_batch`).
    ///
    /// Every value slice must have one value per coordinate, and names must be unique and non-empty;
    /// otherwise nothing is inserted and a typed error says why. Points outside the box follow the
    /// [`OutOfBoundsPolicy`]; non-finite coordinates and values are skipped and counted.
    pub fn insert(
        &mut self,
        signals: &[(&str, &[f64])],
        coordinates: &[Point3<f64>],
    ) -> Result<UpdateReport, VoxelError> {
        for (i, (name, values)) in signals.iter().enumerate() {
            if name.is_empty() {
                return Err(VoxelError::EmptySignalName);
            }
            if values.len() != coordinates.len() {
                return Err(VoxelError::LengthMismatch {
                    signal: (*name).to_owned(),
                    values: values.len(),
                    coordinates: coordinates.len(),
                });
            }
            if signals[..i].iter().any(|(earlier, _)| earlier == name) {
                return Err(VoxelError::DuplicateSignal { name: (*name).to_owned() });
            }
        }
        if self.out_of_bounds == OutOfBoundsPolicy::Fail
            && let Some((i, p)) =
                coordinates.iter().enumerate().find(|(_, p)| matches!(self.locate(p), Err(Miss::OutOfBounds)))
        {
            return Err(VoxelError::OutOfBounds { index: i, x: p.x, y: p.y, z: p.z });
        }
        let mut report = UpdateReport::default();
        let mut cells = std::mem::take(&mut self.scratch);
        cells.clear();
        cells.reserve(coordinates.len());
        for p in coordinates {
            match self.locate(p) {
                Ok(index) => {
                    let slot = self.slot_for(index, &mut report);
                    self.dirty.mark(slot);
                    cells.push(slot * BLOCK_VOXELS as u32 + local_index(index));
                    report.points_applied += 1;
                }
                Err(Miss::OutOfBounds) => {
                    cells.push(u32::MAX);
                    report.rejected_out_of_bounds += 1;
                }
                Err(Miss::NonFinite) => {
                    cells.push(u32::MAX);
                    report.rejected_non_finite_coordinates += 1;
                }
            }
        }
        for (name, values) in signals {
            let layer_index = self.signal_layer(name);
            let layer = &mut self.layers[layer_index];
            for (i, (&cell, &value)) in cells.iter().zip(values.iter()).enumerate() {
                if let Some(&ahead) = cells.get(i + PREFETCH_DISTANCE)
                    && ahead != u32::MAX
                {
                    prefetch(&layer[(ahead >> 9) as usize][(ahead & 511) as usize]);
                }
                if cell == u32::MAX {
                    continue;
                }
                if value.is_finite() {
                    layer[(cell >> 9) as usize][(cell & 511) as usize].push(value);
                    report.values_applied += 1;
                } else {
                    report.rejected_non_finite_values += 1;
                }
            }
        }
        self.scratch = cells;
        self.totals.add(&report);
        Ok(report)
    }

    /// Adds every signal of every sample at its position (samples may carry different signals).
    pub fn insert_samples(&mut self, samples: &[Sample]) -> Result<UpdateReport, VoxelError> {
        if self.out_of_bounds == OutOfBoundsPolicy::Fail
            && let Some((i, p)) = samples
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.position.map(|p| (i, p)))
                .find(|(_, p)| matches!(self.locate(p), Err(Miss::OutOfBounds)))
        {
            return Err(VoxelError::OutOfBounds { index: i, x: p.x, y: p.y, z: p.z });
        }
        let mut report = UpdateReport::default();
        let mut last_signal: Option<(usize, usize)> = None; // (signal position in sample, layer)
        for sample in samples {
            let Some(p) = sample.position else {
                report.rejected_no_position += 1;
                continue;
            };
            let index = match self.locate(&p) {
                Ok(index) => index,
                Err(Miss::OutOfBounds) => {
                    report.rejected_out_of_bounds += 1;
                    continue;
                }
                Err(Miss::NonFinite) => {
                    report.rejected_non_finite_coordinates += 1;
                    continue;
                }
            };
            let slot = self.slot_for(index, &mut report) as usize;
            self.dirty.mark(slot as u32);
            report.points_applied += 1;
            let cell = local_index(index) as usize;
            for (position, (name, value)) in sample.signals.iter().enumerate() {
                if !value.is_finite() {
                    report.rejected_non_finite_values += 1;
                    continue;
                }
                let layer = match last_signal {
                    Some((pos, layer)) if pos == position && self.signals[layer] == name => layer,
                    _ => self.signal_layer(name),
                };
                last_signal = Some((position, layer));
                self.layers[layer][slot][cell].push(value);
                report.values_applied += 1;
            }
        }
        self.totals.add(&report);
        Ok(report)
    }

    /// The statistics of one voxel for one signal; `None` if nothing landed there.
    pub fn cell(&self, signal: &str, index: [u32; 3]) -> Option<&CellStats> {
        let layer = self.signals.iter().position(|s| s == signal)?;
        if (0..3).any(|a| index[a] >= self.dims[a]) {
            return None;
        }
        let slot = self.table.get([index[0] >> 3, index[1] >> 3, index[2] >> 3])?;
        let cell = &self.layers[layer][slot as usize][local_index(index) as usize];
        (!cell.is_empty()).then_some(cell)
    }

    /// The reported value (default aggregation) of `signal` at world point `p`.
    pub fn value_at(&self, signal: &str, p: &Point3<f64>) -> Option<f64> {
        self.cell(signal, self.voxel_index(p)?)?.aggregate(self.aggregation)
    }

    /// Every non-empty voxel of `signal` with its statistics, in block order.
    pub fn occupied(&self, signal: &str) -> impl Iterator<Item = ([u32; 3], &CellStats)> {
        let layer = self.signals.iter().position(|s| s == signal).map(|i| &self.layers[i]);
        layer.into_iter().flat_map(move |cells| {
            cells.iter().zip(&self.block_coords).flat_map(|(block, &origin)| {
                block.iter().enumerate().filter(|(_, c)| !c.is_empty()).map(move |(local, c)| {
                    let local = local as u32;
                    ([origin[0] * 8 + (local & 7), origin[1] * 8 + ((local >> 3) & 7), origin[2] * 8 + (local >> 6)], c)
                })
            })
        })
    }

    /// A summary of `signal` over the whole grid, for comparing grids (e.g. a run with restarts
    /// against a clean one): occupied voxels, values, and their sum, minimum and maximum.
    pub fn digest(&self, signal: &str) -> GridDigest {
        let mut d = GridDigest { signal: signal.to_owned(), ..GridDigest::default() };
        for (_, c) in self.occupied(signal) {
            d.voxels += 1;
            d.values += c.count;
            d.sum += c.sum;
            d.min = Some(d.min.map_or(c.min, |m: f64| m.min(c.min)));
            d.max = Some(d.max.map_or(c.max, |m: f64| m.max(c.max)));
        }
        d
    }

    /// Number of non-empty voxels of `signal`.
    pub fn occupied_count(&self, signal: &str) -> usize {
        self.occupied(signal).count()
    }

    /// Removes every block, signal and count; keeps the box, resolution and policies.
    pub fn reset(&mut self) {
        self.signals.clear();
        self.layers.clear();
        self.table.clear();
        self.block_coords.clear();
        self.dirty = DirtySet::default();
        self.totals = UpdateReport::default();
    }

    pub(crate) fn dirty(&self) -> &DirtySet {
        &self.dirty
    }

    pub(crate) fn dirty_mut(&mut self) -> &mut DirtySet {
        &mut self.dirty
    }

    pub(crate) fn block_origin(&self, slot: u32) -> [u32; 3] {
        self.block_coords[slot as usize]
    }

    pub(crate) fn block_slot(&self, block: [u32; 3]) -> Option<u32> {
        self.table.get(block)
    }

    pub(crate) fn blocks(&self) -> &[[u32; 3]] {
        &self.block_coords
    }

    pub(crate) fn layer(&self, signal: &str) -> Option<&[Box<[CellStats]>]> {
        self.signals.iter().position(|s| s == signal).map(|i| self.layers[i].as_slice())
    }
}

#[cfg(test)]
mod tests;
