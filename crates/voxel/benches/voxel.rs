//! Voxel fusion benchmarks (results in docs/PERFORMANCE.md): `cargo bench -p qadf-voxel`.
#![allow(missing_docs)] // criterion_group! generates undocumented functions.

use std::hint::black_box;
use std::sync::OnceLock;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use qadf_core_types::Point3;
use qadf_voxel::{Aggregation, VoxelGrid};

/// SplitMix64, for reproducible points without a dependency.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

const POINTS: usize = 1_000_000;
const BATCH: usize = 10_000;

fn uniform_points() -> (Vec<Point3<f64>>, Vec<f64>) {
    let mut rng = Rng(42);
    let coords = (0..POINTS).map(|_| Point3::new(rng.unit() * 100.0, rng.unit() * 100.0, rng.unit() * 100.0)).collect();
    let values = (0..POINTS).map(|_| 1500.0 + 500.0 * rng.unit()).collect();
    (coords, values)
}

fn grid_100() -> VoxelGrid {
    VoxelGrid::new(Point3::origin(), Point3::new(100.0, 100.0, 100.0), 1.0).unwrap()
}

fn insert_all(grid: &mut VoxelGrid, coords: &[Point3<f64>], values: &[f64]) {
    for (c, v) in coords.chunks(BATCH).zip(values.chunks(BATCH)) {
        black_box(grid.insert(&[("temperature", v)], c).unwrap());
    }
}

/// 1M uniform random points, 100 mm cube at 1 mm, batches of 10,000, one signal.
fn uniform_random(c: &mut Criterion) {
    let (coords, values) = uniform_points();
    let mut group = c.benchmark_group("voxel_uniform_1m");
    group.throughput(Throughput::Elements(POINTS as u64)).sample_size(20);
    group.bench_function("fresh_grid", |b| {
        b.iter_batched_ref(grid_100, |grid| insert_all(grid, &coords, &values), BatchSize::LargeInput)
    });
    let mut warm = grid_100();
    insert_all(&mut warm, &coords, &values);
    group.bench_function("warm_grid", |b| b.iter(|| insert_all(&mut warm, &coords, &values)));
    // The machine's floor for this access pattern: one scattered 64-byte read-modify-write per
    // point over a grid-sized array, indices precomputed, no bounds or statistics work.
    let cells = 1_000_000usize;
    let mut rng = Rng(9);
    let indices: Vec<u32> = (0..POINTS).map(|_| (rng.unit() * cells as f64) as u32).collect();
    let mut lines = vec![[0u64; 8]; cells];
    group.bench_function("memory_floor_scattered_64b_updates", |b| {
        b.iter(|| {
            for (i, &at) in indices.iter().enumerate() {
                if let Some(&ahead) = indices.get(i + 16) {
                    qadf_voxel::prefetch(&lines[ahead as usize]);
                }
                let line = &mut lines[at as usize];
                line[0] += 1;
                line[1] = line[1].wrapping_add(at as u64);
            }
            black_box(&lines);
        })
    });
    group.finish();
}

/// Laser tracks layer by layer: 4 parts of 20 x 20 mm on a 250 x 250 mm plate at 0.1 mm,
/// hatch 0.1 mm, a sample every 0.01 mm along a track (1 m/s at 100 kHz), 30 um layers.
fn scan_path_layers(layers: u32) -> Vec<(Vec<Point3<f64>>, Vec<f64>)> {
    let mut rng = Rng(7);
    let parts = [(40.0, 40.0), (190.0, 40.0), (40.0, 190.0), (190.0, 190.0)];
    (0..layers)
        .map(|layer| {
            let z = 0.015 + 0.03 * layer as f64;
            let mut coords = Vec::new();
            for &(x0, y0) in &parts {
                for track in 0..200 {
                    for step in 0..2000 {
                        let (along, across) = (step as f64 * 0.01, track as f64 * 0.1 + 0.05);
                        let (x, y) = if layer % 2 == 0 { (along, across) } else { (across, along) };
                        coords.push(Point3::new(x0 + x, y0 + y, z));
                    }
                }
            }
            let values = coords.iter().map(|_| 1900.0 + 30.0 * (rng.unit() - 0.5)).collect();
            (coords, values)
        })
        .collect()
}

fn plate() -> VoxelGrid {
    VoxelGrid::new(Point3::origin(), Point3::new(250.0, 250.0, 300.0), 0.1).unwrap()
}

type Layers = Vec<(Vec<Point3<f64>>, Vec<f64>)>;

/// The scan-path points, built (and the resulting grid's memory reported) on first use only.
fn scan_path_data() -> &'static Layers {
    static DATA: OnceLock<Layers> = OnceLock::new();
    DATA.get_or_init(|| {
        let layers = scan_path_layers(10);
        let points: usize = layers.iter().map(|(c, _)| c.len()).sum();
        let mut grid = plate();
        for (coords, values) in &layers {
            for (c, v) in coords.chunks(BATCH).zip(values.chunks(BATCH)) {
                grid.insert(&[("temperature", v)], c).unwrap();
            }
        }
        eprintln!(
            "scan path: {points} points in 10 layers -> {} blocks, {} occupied voxels, {:.1} MiB used",
            grid.block_count(),
            grid.occupied_count("temperature"),
            grid.bytes_used() as f64 / (1024.0 * 1024.0)
        );
        layers
    })
}

fn scan_path(c: &mut Criterion) {
    let points = 4 * 200 * 2000 * 10;
    let mut group = c.benchmark_group("voxel_scan_path_10_layers");
    group.throughput(Throughput::Elements(points as u64)).sample_size(10).measurement_time(Duration::from_secs(20));
    group.bench_function("fresh_plate", |b| {
        let layers = scan_path_data();
        b.iter_batched_ref(
            plate,
            |grid| {
                for (coords, values) in layers {
                    for (c, v) in coords.chunks(BATCH).zip(values.chunks(BATCH)) {
                        black_box(grid.insert(&[("temperature", v)], c).unwrap());
                    }
                }
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

/// Slice export of a fully populated 250 x 250 mm layer at 0.1 mm (6.25 million voxels).
fn full_plate_layer() -> VoxelGrid {
    let mut grid = plate();
    let row: Vec<Point3<f64>> = (0..2500).map(|i| Point3::new(0.05 + 0.1 * i as f64, 0.0, 0.05)).collect();
    let values = vec![1900.0; row.len()];
    let mut coords = row.clone();
    for j in 0..2500 {
        for (c, r) in coords.iter_mut().zip(&row) {
            *c = Point3::new(r.x, 0.05 + 0.1 * j as f64, r.z);
        }
        grid.insert(&[("temperature", &values)], &coords).unwrap();
    }
    eprintln!("full plate layer: {} blocks, {:.0} MiB", grid.block_count(), grid.bytes_used() as f64 / 1048576.0);
    grid
}

fn layer_slice(c: &mut Criterion) {
    let mut group = c.benchmark_group("voxel_layer_slice");
    group.sample_size(10);
    let mut grid = None;
    group.bench_function("plate_250mm_at_0.1mm", |b| {
        let grid = grid.get_or_insert_with(full_plate_layer);
        b.iter(|| black_box(grid.layer_slice("temperature", 0.05, Aggregation::Mean).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, uniform_random, scan_path, layer_slice);
criterion_main!(benches);
