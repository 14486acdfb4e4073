use nalgebra::Point3;
use proptest::prelude::*;
use qadf_core_types::{Sample, Signals, Timestamp};

use super::*;
use crate::LayerSlice;

fn grid_100() -> VoxelGrid {
    VoxelGrid::new(Point3::origin(), Point3::new(100.0, 100.0, 100.0), 1.0).unwrap()
}

fn p(x: f64, y: f64, z: f64) -> Point3<f64> {
    Point3::new(x, y, z)
}

#[test]
fn dims_follow_the_upstream_formula() {
    let cases = [
        ([0.0, 0.0, 0.0], [10.0, 10.0, 0.0], 3.0, [4, 4, 1]),
        ([0.0, 0.0, 0.0], [100.0, 100.0, 100.0], 1.0, [100, 100, 100]),
        ([-5.0, 0.0, 0.0], [5.0, 0.5, 0.25], 0.5, [20, 1, 1]),
        ([0.0, 0.0, 0.0], [250.0, 250.0, 300.0], 0.1, [2500, 2500, 3000]),
    ];
    for (lo, hi, res, dims) in cases {
        let g = VoxelGrid::new(Point3::from(lo), Point3::from(hi), res).unwrap();
        assert_eq!(g.dims(), dims, "{lo:?}..{hi:?} at {res}");
    }
}

#[test]
fn invalid_specs_are_refused() {
    let bad = [
        (p(0.0, 0.0, 0.0), p(1.0, 1.0, 1.0), 0.0),
        (p(0.0, 0.0, 0.0), p(1.0, 1.0, 1.0), f64::NAN),
        (p(0.0, 0.0, 0.0), p(-1.0, 1.0, 1.0), 0.1),
        (p(0.0, f64::INFINITY, 0.0), p(1.0, 1.0, 1.0), 0.1),
        (p(0.0, 0.0, 0.0), p(1e9, 1.0, 1.0), 1e-3),
    ];
    for (lo, hi, res) in bad {
        assert!(matches!(VoxelGrid::new(lo, hi, res), Err(VoxelError::InvalidSpec(_))), "{lo} {hi} {res}");
    }
}

#[test]
fn points_are_placed_by_floor_and_the_upper_face_is_inside() {
    let g = grid_100();
    assert_eq!(g.voxel_index(&p(0.0, 0.0, 0.0)), Some([0, 0, 0]));
    assert_eq!(g.voxel_index(&p(10.99, 20.0, 30.5)), Some([10, 20, 30]));
    assert_eq!(g.voxel_index(&p(100.0, 100.0, 100.0)), Some([99, 99, 99]));
    assert_eq!(g.voxel_index(&p(100.000001, 50.0, 50.0)), None);
    assert_eq!(g.voxel_index(&p(-0.000001, 50.0, 50.0)), None);
    assert_eq!(g.voxel_index(&p(f64::NAN, 50.0, 50.0)), None);
}

#[test]
fn out_of_bounds_points_are_rejected_and_counted_never_clamped() {
    let mut g = grid_100();
    let coords = [p(50.0, 50.0, 50.0), p(150.0, 50.0, 50.0), p(-1.0, 0.0, 0.0), p(99.5, 99.5, 99.5)];
    let report = g.insert(&[("t", &[1.0, 2.0, 3.0, 4.0])], &coords).unwrap();
    assert_eq!((report.points_applied, report.rejected_out_of_bounds), (2, 2));
    assert_eq!(g.cell("t", [99, 99, 99]).unwrap().count, 1, "no edge voxel received a clamped point");
    assert_eq!(g.cell("t", [0, 49, 49]), None);
    assert_eq!(g.occupied_count("t"), 2);
}

#[test]
fn fail_policy_refuses_the_whole_call() {
    let mut g = grid_100().with_out_of_bounds(OutOfBoundsPolicy::Fail);
    let err = g.insert(&[("t", &[1.0, 2.0])], &[p(1.0, 1.0, 1.0), p(101.0, 1.0, 1.0)]).unwrap_err();
    assert_eq!(err, VoxelError::OutOfBounds { index: 1, x: 101.0, y: 1.0, z: 1.0 });
    assert_eq!((g.block_count(), g.totals()), (0, UpdateReport::default()));
}

#[test]
fn non_finite_values_and_coordinates_are_rejected_and_counted() {
    let mut g = grid_100();
    let coords = [p(1.0, 1.0, 1.0), p(f64::NAN, 1.0, 1.0), p(1.0, 1.0, 1.0)];
    let report = g.insert(&[("t", &[f64::NAN, 5.0, f64::INFINITY]), ("a", &[1.0, 1.0, 3.0])], &coords).unwrap();
    assert_eq!(report.rejected_non_finite_coordinates, 1);
    assert_eq!(report.rejected_non_finite_values, 2);
    assert_eq!(report.values_applied, 2);
    assert_eq!(g.cell("t", [1, 1, 1]), None);
    assert_eq!(g.cell("a", [1, 1, 1]).unwrap().mean, 2.0);
}

#[test]
fn malformed_calls_insert_nothing() {
    let mut g = grid_100();
    let coords = [p(1.0, 1.0, 1.0), p(2.0, 2.0, 2.0)];
    type SignalList<'a> = Vec<(&'a str, &'a [f64])>;
    let cases: Vec<(SignalList, VoxelError)> = vec![
        (
            vec![("t", &[1.0, 2.0]), ("a", &[1.0])],
            VoxelError::LengthMismatch { signal: "a".into(), values: 1, coordinates: 2 },
        ),
        (vec![("t", &[1.0, 2.0]), ("t", &[1.0, 2.0])], VoxelError::DuplicateSignal { name: "t".into() }),
        (vec![("", &[1.0, 2.0])], VoxelError::EmptySignalName),
    ];
    for (signals, expected) in cases {
        assert_eq!(g.insert(&signals, &coords), Err(expected));
        assert_eq!((g.block_count(), g.totals(), g.signals().len()), (0, UpdateReport::default(), 0));
    }
}

#[test]
fn upstream_counter_example_across_batches() {
    let mut g = grid_100();
    let at = [p(10.0, 20.0, 30.0), p(10.5, 20.5, 30.5)];
    g.insert(&[("temperature", &[10.0, 20.0])], &at).unwrap();
    g.insert(&[("temperature", &[40.0])], &at[..1]).unwrap();
    let c = g.cell("temperature", [10, 20, 30]).unwrap();
    assert_eq!((c.count, c.first, c.last, c.min, c.max, c.sum), (3, 10.0, 40.0, 10.0, 40.0, 70.0));
    assert!((c.mean - 70.0 / 3.0).abs() < 1e-12);
    assert_eq!(g.value_at("temperature", &p(10.1, 20.1, 30.1)), Some(c.mean));
}

#[test]
fn signal_names_are_kept() {
    let mut g = grid_100();
    let at = [p(1.0, 1.0, 1.0)];
    g.insert(&[("temperature", &[1900.0]), ("melt_pool_area", &[0.04])], &at).unwrap();
    assert_eq!(g.signals(), ["temperature", "melt_pool_area"]);
    assert_eq!(g.cell("melt_pool_area", [1, 1, 1]).unwrap().mean, 0.04);
    assert_eq!(g.cell("signal_0", [1, 1, 1]), None);
}

#[test]
fn samples_with_mixed_signals_and_missing_positions() {
    let mut g = grid_100();
    let mut a = Sample::new(Timestamp::EPOCH, p(5.0, 5.0, 5.0), [("t", 1.0)].into_iter().collect());
    let b = Sample::new(Timestamp::EPOCH, p(5.0, 5.0, 5.0), [("area", 2.0), ("t", 3.0)].into_iter().collect());
    let mut c = a.clone();
    c.position = None;
    let d = Sample::new(Timestamp::EPOCH, p(500.0, 5.0, 5.0), Signals::from_iter([("t", 9.0)]));
    a.signals.push("nan", f64::NAN);
    let report = g.insert_samples(&[a, b, c, d]).unwrap();
    assert_eq!((report.points_applied, report.values_applied), (2, 3));
    assert_eq!(
        (report.rejected_no_position, report.rejected_out_of_bounds, report.rejected_non_finite_values),
        (1, 1, 1)
    );
    assert_eq!(g.cell("t", [5, 5, 5]).unwrap().mean, 2.0);
    assert_eq!(g.cell("area", [5, 5, 5]).unwrap().count, 1);
}

#[test]
fn dirty_regions_are_blocks_each_listed_once() {
    let mut g = grid_100();
    for _ in 0..1000 {
        g.insert(&[("t", &[1.0, 2.0])], &[p(1.0, 1.0, 1.0), p(20.0, 1.0, 1.0)]).unwrap();
    }
    let regions = g.updated_regions();
    assert_eq!(regions.len(), 2, "1000 calls into two blocks track two blocks");
    assert_eq!(regions[0].block, [0, 0, 0]);
    assert_eq!(regions[0].region.index_max, [8, 8, 8]);
    assert_eq!(regions[1].block, [2, 0, 0]);
    assert_eq!(regions[1].region.world_min, [16.0, 0.0, 0.0]);
    let combined = g.combined_updated_region().unwrap();
    assert_eq!((combined.index_min, combined.index_max), ([0, 0, 0], [24, 8, 8]));
    g.clear_updated_regions();
    assert!(g.updated_regions().is_empty() && g.combined_updated_region().is_none());
    g.insert(&[("t", &[1.0])], &[p(99.9, 99.9, 99.9)]).unwrap();
    let last = g.updated_regions();
    assert_eq!(last[0].block, [12, 12, 12]);
    assert_eq!(last[0].region.index_max, [100, 100, 100], "clipped to the grid");
}

#[test]
fn memory_scales_with_touched_blocks_not_the_box() {
    let mut g = VoxelGrid::new(Point3::origin(), p(250.0, 250.0, 300.0), 0.1).unwrap();
    assert!(g.bytes_used() < 4096, "an empty plate costs {} bytes", g.bytes_used());
    let coords: Vec<_> = (0..64).map(|i| p(100.0 + 0.1 * (i % 8) as f64, 100.0 + 0.1 * (i / 8) as f64, 0.05)).collect();
    g.insert(&[("t", &vec![1.0; 64])], &coords).unwrap();
    assert_eq!(g.block_count(), 1);
    assert!(g.bytes_used() >= 512 * 64 && g.bytes_used() < 64 * 1024, "{}", g.bytes_used());
}

#[test]
fn layer_slice_is_cropped_to_touched_blocks_and_positions_values() {
    let mut g = grid_100();
    g.insert(&[("t", &[5.0, 7.0, 9.0])], &[p(10.5, 20.5, 3.5), p(30.5, 25.5, 3.5), p(30.5, 25.5, 4.5)]).unwrap();
    let s = g.layer_slice("t", 3.2, Aggregation::Mean).unwrap();
    assert_eq!((s.z_index, s.index_origin, s.width, s.height), (3, [8, 16], 24, 16));
    assert_eq!((s.get(10, 20), s.get(30, 25), s.get(11, 20), s.get(0, 0)), (Some(5.0), Some(7.0), None, None));
    assert_eq!(s.world_origin, [8.0, 16.0]);
    let json = serde_json::to_string(&s).unwrap();
    assert!(!json.contains("NaN") && !json.contains("inf"));
    let back: LayerSlice = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s);
    let empty = g.layer_slice("t", 50.0, Aggregation::Mean).unwrap();
    assert_eq!((empty.width, empty.height, empty.values.len()), (0, 0, 0));
    assert!(matches!(g.layer_slice("nope", 3.0, Aggregation::Mean), Err(VoxelError::UnknownSignal(_))));
    assert!(matches!(g.layer_slice("t", 300.0, Aggregation::Mean), Err(VoxelError::OutOfBounds { .. })));
}

#[test]
fn block_contents_of_dirty_blocks() {
    let mut g = grid_100();
    g.insert(&[("t", &[5.0, 6.0])], &[p(1.5, 2.5, 3.5), p(1.5, 2.5, 3.5)]).unwrap();
    let blocks = g.block_contents("t", Aggregation::Count, &g.updated_regions()).unwrap();
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].values.len(), 512);
    assert_eq!(blocks[0].values[1 + 8 * 2 + 64 * 3], Some(2.0));
    assert_eq!(blocks[0].values.iter().flatten().count(), 1);
}

#[test]
fn reset_forgets_everything_but_the_spec() {
    let mut g = grid_100();
    g.insert(&[("t", &[1.0])], &[p(1.0, 1.0, 1.0)]).unwrap();
    g.reset();
    assert_eq!(
        (g.block_count(), g.signals().len(), g.totals(), g.updated_block_count()),
        (0, 0, UpdateReport::default(), 0)
    );
    assert_eq!(g.dims(), [100, 100, 100]);
}

fn assert_same_grid(a: &VoxelGrid, b: &VoxelGrid) -> Result<(), TestCaseError> {
    prop_assert_eq!(a.totals().values_applied, b.totals().values_applied);
    let mut cells_a: Vec<_> = a.occupied("t").map(|(i, c)| (i, *c)).collect();
    let mut cells_b: Vec<_> = b.occupied("t").map(|(i, c)| (i, *c)).collect();
    cells_a.sort_by_key(|(i, _)| *i);
    cells_b.sort_by_key(|(i, _)| *i);
    prop_assert_eq!(cells_a.len(), cells_b.len());
    for ((ia, ca), (ib, cb)) in cells_a.iter().zip(&cells_b) {
        prop_assert_eq!(ia, ib);
        prop_assert_eq!((ca.count, ca.min, ca.max), (cb.count, cb.min, cb.max));
        let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * (1.0 + x.abs().max(y.abs()));
        prop_assert!(close(ca.mean, cb.mean) && close(ca.sum, cb.sum) && close(ca.m2, cb.m2), "{:?} vs {:?}", ca, cb);
    }
    Ok(())
}

fn arb_points() -> impl Strategy<Value = Vec<(Point3<f64>, f64)>> {
    // Few distinct voxels (a 4 mm cube at 1 mm) so voxels receive many values.
    proptest::collection::vec(((0.0..4.0f64, 0.0..4.0f64, 0.0..4.0f64), -1e3..1e3f64), 1..300)
        .prop_map(|v| v.into_iter().map(|((x, y, z), value)| (p(x, y, z), value)).collect())
}

proptest! {
    /// Any split of the same ordered points gives the same grid, first and last included.
    #[test]
    fn prop_any_batching_gives_the_same_grid(points in arb_points(), cuts in proptest::collection::vec(0..300usize, 0..10)) {
        let (coords, values): (Vec<_>, Vec<_>) = points.iter().cloned().unzip();
        let mut whole = grid_100();
        whole.insert(&[("t", &values)], &coords).unwrap();
        let mut bounds: Vec<usize> = cuts.into_iter().map(|c| c % (points.len() + 1)).collect();
        bounds.extend([0, points.len()]);
        bounds.sort_unstable();
        let mut split = grid_100();
        for w in bounds.windows(2) {
            split.insert(&[("t", &values[w[0]..w[1]])], &coords[w[0]..w[1]]).unwrap();
        }
        assert_same_grid(&whole, &split)?;
        for ((i, a), (_, b)) in whole.occupied("t").zip(split.occupied("t")) {
            prop_assert_eq!((a.first, a.last), (b.first, b.last), "voxel {:?}", i);
        }
    }

    /// Reordering whole batches changes no order-free statistic.
    #[test]
    fn prop_batch_order_does_not_matter(points in arb_points(), chunk in 1..50usize) {
        let batches: Vec<_> = points.chunks(chunk).collect();
        let mut forward = grid_100();
        let mut backward = grid_100();
        for (grid, order) in [(&mut forward, batches.clone()), (&mut backward, batches.iter().rev().cloned().collect())] {
            for batch in order {
                let (coords, values): (Vec<_>, Vec<_>) = batch.iter().cloned().unzip();
                grid.insert(&[("t", &values)], &coords).unwrap();
            }
        }
        assert_same_grid(&forward, &backward)?;
    }
}
