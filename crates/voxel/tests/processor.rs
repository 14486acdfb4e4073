//! `IncrementalProcessor`: the upstream surface, updated-region reads, statistics, reset, and the
//! promise that a reader never sees half a batch.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use qadf_core_types::Point3;
use qadf_voxel::{Aggregation, DEFAULT_SIGNAL, IncrementalProcessor, VoxelError, VoxelGrid};

fn processor() -> IncrementalProcessor {
    IncrementalProcessor::new(VoxelGrid::new(Point3::origin(), Point3::new(100.0, 100.0, 100.0), 1.0).unwrap())
}

fn p(x: f64, y: f64, z: f64) -> Point3<f64> {
    Point3::new(x, y, z)
}

#[test]
fn update_voxel_grid_uses_the_default_signal_and_named_batches_keep_their_names() {
    let proc = processor();
    proc.update_voxel_grid(&[1.0], &[p(0.5, 0.5, 0.5)]).unwrap();
    let (t, a): (&[f64], &[f64]) = (&[1500.0, 1600.0], &[0.2, 0.4]);
    proc.process_signal_batch(&[("temperature", t), ("area", a)], &[p(0.5, 0.5, 0.5), p(0.6, 0.6, 0.6)]).unwrap();
    let stats = proc.get_statistics();
    assert_eq!(stats.signals, [DEFAULT_SIGNAL, "temperature", "area"]);
    let mean = proc.read(|g| g.cell("temperature", [0, 0, 0]).unwrap().aggregate(Aggregation::Mean));
    assert_eq!(mean, Some(1550.0));
    let area_max = proc.read(|g| g.cell("area", [0, 0, 0]).unwrap().aggregate(Aggregation::Max));
    assert_eq!(area_max, Some(0.4));
}

#[test]
fn updated_regions_are_kept_until_read_with_clear() {
    let proc = processor();
    assert_eq!(proc.get_combined_updated_region(), None);
    proc.update_voxel_grid(&[1.0, 2.0, 3.0], &[p(1.0, 1.0, 1.0), p(2.0, 2.0, 2.0), p(20.5, 1.0, 41.0)]).unwrap();
    let blocks: Vec<[u32; 3]> = proc.get_updated_regions(false).iter().map(|r| r.block).collect();
    assert_eq!(blocks, [[0, 0, 0], [2, 0, 5]]);
    let combined = proc.get_combined_updated_region().unwrap();
    assert_eq!((combined.index_min, combined.index_max), ([0, 0, 0], [24, 8, 48]));
    assert_eq!((combined.world_min, combined.world_max), ([0.0; 3], [24.0, 8.0, 48.0]));
    assert_eq!(proc.get_updated_regions(true).len(), 2, "a read without clear forgets nothing");
    assert!(proc.get_updated_regions(false).is_empty(), "a read with clear forgets what it returned");
    assert_eq!(proc.get_combined_updated_region(), None);
    proc.update_voxel_grid(&[4.0], &[p(1.0, 1.0, 1.0)]).unwrap();
    assert_eq!(proc.get_updated_regions(true).len(), 1, "a block changed again is listed again");
}

#[test]
fn statistics_count_batches_refusals_and_rejections_and_reset_zeroes_them() {
    let proc = processor();
    proc.update_voxel_grid(&[1.0, f64::NAN, 3.0], &[p(1.0, 1.0, 1.0), p(2.0, 2.0, 2.0), p(200.0, 1.0, 1.0)]).unwrap();
    let refused = proc.update_voxel_grid(&[1.0], &[p(1.0, 1.0, 1.0), p(2.0, 2.0, 2.0)]);
    assert!(matches!(refused, Err(VoxelError::LengthMismatch { values: 1, coordinates: 2, .. })));
    let stats = proc.get_statistics();
    assert_eq!((stats.batches_processed, stats.batches_refused), (1, 1));
    assert_eq!(stats.totals.points_applied, 2);
    assert_eq!(stats.totals.values_applied, 1);
    assert_eq!(stats.totals.rejected_non_finite_values, 1);
    assert_eq!(stats.totals.rejected_out_of_bounds, 1);
    assert_eq!((stats.dims, stats.blocks_allocated, stats.updated_blocks), ([100, 100, 100], 1, 1));
    assert!(stats.bytes_used >= 512 * 64, "{}", stats.bytes_used);
    proc.reset();
    let stats = proc.get_statistics();
    assert_eq!((stats.batches_processed, stats.batches_refused, stats.blocks_allocated), (0, 0, 0));
    assert_eq!(stats.totals.points_applied, 0);
    assert!(stats.signals.is_empty());
    assert_eq!(proc.read(|g| g.occupied_count(DEFAULT_SIGNAL)), 0);
}

/// Every batch adds `BATCH` values spread over many blocks; a reader must always see a whole
/// number of batches, both in the totals and in the cells themselves.
#[test]
fn readers_never_see_half_a_batch() {
    const BATCH: usize = 2_000;
    const BATCHES: usize = 200;
    let proc = Arc::new(processor());
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (proc, done) = (Arc::clone(&proc), Arc::clone(&done));
        std::thread::spawn(move || {
            loop {
                let finished = done.load(Ordering::Acquire);
                let (applied, in_cells) = proc.read(|g| {
                    let in_cells: u64 = g.occupied(DEFAULT_SIGNAL).map(|(_, c)| c.count).sum();
                    (g.totals().values_applied, in_cells)
                });
                assert_eq!(applied % BATCH as u64, 0, "totals show part of a batch");
                assert_eq!(in_cells, applied, "cells show part of a batch");
                if finished {
                    return applied;
                }
            }
        })
    };
    for b in 0..BATCHES {
        let coords: Vec<Point3<f64>> = (0..BATCH)
            .map(|i| p((i % 100) as f64 + 0.5, ((i / 100) * 5) as f64 + 0.5, (b % 100) as f64 + 0.5))
            .collect();
        proc.update_voxel_grid(&vec![1.0; BATCH], &coords).unwrap();
    }
    done.store(true, Ordering::Release);
    assert_eq!(reader.join().unwrap(), (BATCH * BATCHES) as u64, "the last read sees every batch");
    assert_eq!(proc.get_statistics().totals.values_applied, (BATCH * BATCHES) as u64);
}
