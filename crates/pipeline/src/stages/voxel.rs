//! `VoxelStage`: fuses every sample into its build's voxel grid.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use qadf_core_types::{DeadLetter, Sample, SampleBatch, Stage, StageError, StreamingResult};
use qadf_voxel::{IncrementalProcessor, VoxelGrid};

enum Grids {
    Shared(Arc<IncrementalProcessor>),
    PerBuild { template: Box<VoxelGrid>, grids: Mutex<HashMap<String, Arc<IncrementalProcessor>>> },
}

/// Applies the batch to a voxel grid. Samples outside the grid leave the batch as dead letters
/// (never clamped); samples without a position stay (other stages can use them) and are counted.
pub struct VoxelStage {
    grids: Grids,
}

impl VoxelStage {
    /// Every build writes into `voxels`.
    pub fn new(voxels: Arc<IncrementalProcessor>) -> VoxelStage {
        VoxelStage { grids: Grids::Shared(voxels) }
    }

    /// Each build gets its own grid shaped like `template` (builds are then fused in parallel).
    pub fn per_build(template: VoxelGrid) -> VoxelStage {
        VoxelStage { grids: Grids::PerBuild { template: Box::new(template), grids: Mutex::default() } }
    }

    /// The grid of `build_id` (the shared grid, whatever the build, for [`VoxelStage::new`]).
    pub fn grid(&self, build_id: &str) -> Option<Arc<IncrementalProcessor>> {
        match &self.grids {
            Grids::Shared(g) => Some(g.clone()),
            Grids::PerBuild { grids, .. } => grids.lock().get(build_id).cloned(),
        }
    }

    /// The builds that have a grid (empty for [`VoxelStage::new`]).
    pub fn builds(&self) -> Vec<String> {
        match &self.grids {
            Grids::Shared(_) => Vec::new(),
            Grids::PerBuild { grids, .. } => {
                let mut builds: Vec<String> = grids.lock().keys().cloned().collect();
                builds.sort();
                builds
            }
        }
    }

    fn grid_for(&self, build_id: &str) -> Arc<IncrementalProcessor> {
        match &self.grids {
            Grids::Shared(g) => g.clone(),
            Grids::PerBuild { template, grids } => grids
                .lock()
                .entry(build_id.to_owned())
                .or_insert_with(|| {
                    let mut fresh = (**template).clone();
                    fresh.reset();
                    Arc::new(IncrementalProcessor::new(fresh))
                })
                .clone(),
        }
    }

    /// Moves samples outside their build's grid into dead letters, keeping the others in order.
    fn reject_outside(&self, batch: &mut SampleBatch, result: &mut StreamingResult) {
        let mut outside = Vec::new();
        let mut current: Option<(String, Arc<IncrementalProcessor>)> = None;
        batch.samples.retain(|s| {
            let Some(p) = s.position else { return true };
            if current.as_ref().is_none_or(|(b, _)| *b != s.build_id) {
                current = Some((s.build_id.clone(), self.grid_for(&s.build_id)));
            }
            let inside = current.as_ref().is_some_and(|(_, g)| g.read(|grid| grid.voxel_index(&p).is_some()));
            if !inside {
                outside.push(s.clone());
            }
            inside
        });
        for s in outside {
            let reason = format!("position {:?} is outside the voxel grid", s.position.map(|p| [p.x, p.y, p.z]));
            let payload = bincode::serde::encode_to_vec(&s, bincode::config::standard()).unwrap_or_default();
            result.dead_letters.push(DeadLetter { reason, origin: None, payload });
            result.rejected_count += 1;
            result.add_to_metric("rejected.out_of_bounds", 1.0);
        }
    }
}

impl Stage for VoxelStage {
    fn name(&self) -> &str {
        "voxel"
    }

    fn process(&self, batch: &mut SampleBatch, result: &mut StreamingResult) -> Result<(), StageError> {
        self.reject_outside(batch, result);
        let Some(first) = batch.samples.first() else { return Ok(()) };
        let single_build = batch.samples.iter().all(|s| s.build_id == first.build_id);
        let groups: Vec<(Arc<IncrementalProcessor>, Option<SampleBatch>)> =
            if single_build || matches!(self.grids, Grids::Shared(_)) {
                vec![(self.grid_for(&first.build_id.clone()), None)]
            } else {
                // Mixed builds (rare: batches normally come from one partition): fuse copies per build.
                let mut builds: Vec<&str> = batch.samples.iter().map(|s| s.build_id.as_str()).collect();
                builds.sort_unstable();
                builds.dedup();
                builds
                    .into_iter()
                    .map(|b| {
                        let mine: Vec<Sample> = batch.samples.iter().filter(|s| s.build_id == b).cloned().collect();
                        (self.grid_for(b), Some(SampleBatch::new(mine)))
                    })
                    .collect()
            };
        for (voxels, group) in groups {
            let report = voxels
                .process_samples(group.as_ref().unwrap_or(batch))
                .map_err(|e| StageError::new("voxel", e.to_string()))?;
            result.voxel_updates += report.values_applied;
            if report.rejected_no_position > 0 {
                result.add_to_metric("voxel.no_position", report.rejected_no_position as f64);
            }
        }
        Ok(())
    }
}
