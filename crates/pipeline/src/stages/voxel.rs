//! `VoxelStage`: fuses every sample into its build's voxel grid.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use qadf_core_types::{DeadLetter, Sample, SampleBatch, Stage, StageError, StreamingResult};
use qadf_voxel::{IncrementalProcessor, VoxelGrid};

enum Grids {
    Shared(Arc<IncrementalProcessor>),
    PerBuild { template: Box<VoxelGrid>, grids: Mutex<BuildGrids> },
}

/// The grids of the builds in memory, each with the tick of its last use.
#[derive(Default)]
struct BuildGrids {
    grids: HashMap<String, (Arc<IncrementalProcessor>, u64)>,
    tick: u64,
    released: u64,
}

/// Default of [`VoxelStage::with_limits`]: distinct signals one grid may hold.
pub const DEFAULT_MAX_SIGNALS_PER_BUILD: usize = 64;
/// Default of [`VoxelStage::with_limits`]: builds whose grids are held in memory.
pub const DEFAULT_MAX_BUILDS: usize = 16;

/// Applies the batch to a voxel grid. Samples outside the grid, and samples that would give
/// their build's grid more than `max_signals` distinct signals, leave the batch as dead letters
/// (never clamped); samples without a position stay (other stages can use them) and are counted.
/// At most `max_builds` grids are held: a new build releases the least recently used one
/// (counted in [`VoxelStage::released_builds`]; its history stays in the store).
pub struct VoxelStage {
    grids: Grids,
    max_signals: usize,
    max_builds: usize,
}

impl VoxelStage {
    /// Every build writes into `voxels`.
    pub fn new(voxels: Arc<IncrementalProcessor>) -> VoxelStage {
        VoxelStage {
            grids: Grids::Shared(voxels),
            max_signals: DEFAULT_MAX_SIGNALS_PER_BUILD,
            max_builds: DEFAULT_MAX_BUILDS,
        }
    }

    /// Each build gets its own grid shaped like `template` (builds are then fused in parallel).
    pub fn per_build(template: VoxelGrid) -> VoxelStage {
        VoxelStage {
            grids: Grids::PerBuild { template: Box::new(template), grids: Mutex::default() },
            max_signals: DEFAULT_MAX_SIGNALS_PER_BUILD,
            max_builds: DEFAULT_MAX_BUILDS,
        }
    }

    /// At most `max_signals` distinct signals per grid and `max_builds` grids in memory (each at least 1).
    pub fn with_limits(mut self, max_signals: usize, max_builds: usize) -> VoxelStage {
        self.max_signals = max_signals.max(1);
        self.max_builds = max_builds.max(1);
        self
    }

    /// Grids released to make room for a newer build.
    pub fn released_builds(&self) -> u64 {
        match &self.grids {
            Grids::Shared(_) => 0,
            Grids::PerBuild { grids, .. } => grids.lock().released,
        }
    }

    /// Whether `p` lies inside the grid (every build's grid has the same shape).
    pub fn contains(&self, p: &qadf_core_types::Point3<f64>) -> bool {
        match &self.grids {
            Grids::Shared(g) => g.read(|grid| grid.voxel_index(p).is_some()),
            Grids::PerBuild { template, .. } => template.voxel_index(p).is_some(),
        }
    }

    /// The grid of `build_id` (the shared grid, whatever the build, for [`VoxelStage::new`]).
    pub fn grid(&self, build_id: &str) -> Option<Arc<IncrementalProcessor>> {
        match &self.grids {
            Grids::Shared(g) => Some(g.clone()),
            Grids::PerBuild { grids, .. } => grids.lock().grids.get(build_id).map(|(g, _)| g.clone()),
        }
    }

    /// Drops the grid of `build_id` (its samples went to another consumer-group member); false
    /// if it had none (always for [`VoxelStage::new`]).
    pub fn forget(&self, build_id: &str) -> bool {
        match &self.grids {
            Grids::Shared(_) => false,
            Grids::PerBuild { grids, .. } => grids.lock().grids.remove(build_id).is_some(),
        }
    }

    /// The builds that have a grid (empty for [`VoxelStage::new`]).
    pub fn builds(&self) -> Vec<String> {
        match &self.grids {
            Grids::Shared(_) => Vec::new(),
            Grids::PerBuild { grids, .. } => {
                let mut builds: Vec<String> = grids.lock().grids.keys().cloned().collect();
                builds.sort();
                builds
            }
        }
    }

    fn grid_for(&self, build_id: &str) -> Arc<IncrementalProcessor> {
        match &self.grids {
            Grids::Shared(g) => g.clone(),
            Grids::PerBuild { template, grids } => {
                let mut builds = grids.lock();
                builds.tick += 1;
                let tick = builds.tick;
                if let Some((grid, used)) = builds.grids.get_mut(build_id) {
                    *used = tick;
                    return grid.clone();
                }
                if builds.grids.len() >= self.max_builds
                    && let Some(oldest) = builds.grids.iter().min_by_key(|(_, (_, used))| *used).map(|(b, _)| b.clone())
                {
                    builds.grids.remove(&oldest);
                    builds.released += 1;
                }
                let mut fresh = (**template).clone();
                fresh.reset();
                let grid = Arc::new(IncrementalProcessor::new(fresh));
                builds.grids.insert(build_id.to_owned(), (grid.clone(), tick));
                grid
            }
        }
    }

    /// Moves samples outside their build's grid, or bringing a signal past the build's limit,
    /// into dead letters, keeping the others in order.
    fn reject_unplaceable(&self, batch: &mut SampleBatch, result: &mut StreamingResult) {
        let mut refused: Vec<(Sample, String, &'static str)> = Vec::new();
        // The build of the previous sample and the signals its grid holds with this batch's
        // accepted ones; the builds met earlier in the batch keep theirs, so a batch that
        // alternates builds cannot pass a build's limit.
        let mut current: Option<(String, Vec<String>)> = None;
        let mut earlier: HashMap<String, Vec<String>> = HashMap::new();
        batch.samples.retain(|s| {
            if current.as_ref().is_none_or(|(b, _)| *b != s.build_id) {
                if let Some((b, known)) = current.take() {
                    earlier.insert(b, known);
                }
                let known = earlier
                    .remove(s.build_id.as_str())
                    .unwrap_or_else(|| self.grid_for(&s.build_id).read(|g| g.signals().to_vec()));
                current = Some((s.build_id.to_string(), known));
            }
            let Some((_, known)) = current.as_mut() else { return true };
            if let Some(p) = s.position
                && !self.contains(&p)
            {
                let reason = format!("position {:?} is outside the voxel grid", [p.x, p.y, p.z]);
                refused.push((s.clone(), reason, "rejected.out_of_bounds"));
                return false;
            }
            let new = s.signals.iter().filter(|(n, _)| !known.iter().any(|k| k == n)).count();
            if new > 0 {
                if known.len() + new > self.max_signals {
                    let reason = format!(
                        "build {:?} holds {} signals and this sample brings {new} more, over the limit max_signals_per_build = {}",
                        s.build_id,
                        known.len(),
                        self.max_signals
                    );
                    refused.push((s.clone(), reason, "rejected.signals_per_build"));
                    return false;
                }
                for (n, _) in s.signals.iter() {
                    if !known.iter().any(|k| k == n) {
                        known.push(n.to_owned());
                    }
                }
            }
            true
        });
        for (s, reason, metric) in refused {
            result.dead_letters.push(DeadLetter::of_sample(reason, &s));
            result.rejected_count += 1;
            result.add_to_metric(metric, 1.0);
        }
    }
}

impl Stage for VoxelStage {
    fn name(&self) -> &str {
        "voxel"
    }

    fn process(&self, batch: &mut SampleBatch, result: &mut StreamingResult) -> Result<(), StageError> {
        self.reject_unplaceable(batch, result);
        let Some(first) = batch.samples.first() else { return Ok(()) };
        let single_build = batch.samples.iter().all(|s| s.build_id == first.build_id);
        let groups: Vec<(Arc<IncrementalProcessor>, Option<SampleBatch>)> =
            if single_build || matches!(self.grids, Grids::Shared(_)) {
                vec![(self.grid_for(&first.build_id), None)]
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

#[cfg(test)]
mod tests {
    use qadf_core_types::{Point3, Timestamp};

    use super::*;

    fn sample(build: &str, signal: &str) -> Sample {
        let mut s =
            Sample::new(Timestamp::from_nanos(1), Point3::new(1.0, 1.0, 1.0), [(signal, 1.0)].into_iter().collect());
        s.build_id = build.into();
        s
    }

    fn stage(max_signals: usize, max_builds: usize) -> VoxelStage {
        let grid = VoxelGrid::new(Point3::origin(), Point3::new(10.0, 10.0, 10.0), 1.0).unwrap();
        VoxelStage::per_build(grid).with_limits(max_signals, max_builds)
    }

    #[test]
    fn samples_bringing_a_signal_past_the_build_limit_become_dead_letters_naming_it() {
        let stage = stage(3, 4);
        let mut batch = SampleBatch::new((0..5).map(|i| sample("b", &format!("s{i}"))).collect());
        let mut result = StreamingResult::default();
        stage.process(&mut batch, &mut result).unwrap();
        assert_eq!(batch.len(), 3);
        assert_eq!(result.dead_letters.len(), 2);
        assert!(result.dead_letters[0].reason.contains("max_signals_per_build"), "{}", result.dead_letters[0].reason);
        assert_eq!(stage.grid("b").unwrap().read(|g| g.signals().len()), 3);
        // Known signals still pass; another build has its own budget.
        let mut batch = SampleBatch::new(vec![sample("b", "s0"), sample("c", "s9")]);
        stage.process(&mut batch, &mut StreamingResult::default()).unwrap();
        assert_eq!(batch.len(), 2);
    }

    #[test]
    fn a_batch_alternating_builds_cannot_pass_a_build_signal_limit() {
        let stage = stage(2, 4);
        let names = ["s0", "x", "s1", "x", "s2", "x", "s3"];
        let samples = names.iter().enumerate().map(|(i, n)| sample(if i % 2 == 0 { "a" } else { "b" }, n)).collect();
        let mut batch = SampleBatch::new(samples);
        let mut result = StreamingResult::default();
        stage.process(&mut batch, &mut result).unwrap();
        assert_eq!(stage.grid("a").unwrap().read(|g| g.signals().len()), 2, "{:?}", result.dead_letters);
        assert_eq!(result.dead_letters.len(), 2);
    }

    #[test]
    fn at_most_max_builds_grids_are_held_and_the_least_recently_used_is_released() {
        let stage = stage(8, 2);
        for build in ["a", "b", "a", "c"] {
            stage.process(&mut SampleBatch::new(vec![sample(build, "t")]), &mut StreamingResult::default()).unwrap();
        }
        assert_eq!(stage.builds(), ["a", "c"], "b was used least recently");
        assert_eq!(stage.released_builds(), 1);
    }
}
