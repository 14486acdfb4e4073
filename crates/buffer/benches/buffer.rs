//! Buffer benchmarks (results in docs/PERFORMANCE.md): `cargo bench -p qadf-buffer`.
#![allow(missing_docs)] // criterion_group! generates undocumented functions.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use qadf_buffer::{BufferManager, SharedBuffer};
use qadf_core_types::{ManualClock, Timestamp};

const N: usize = 1_000_000;

fn full_buffer(capacity: usize) -> BufferManager {
    let mut b = BufferManager::new(1, capacity).unwrap();
    for i in 0..capacity {
        b.add_value(i as f64, Timestamp::from_nanos(i as i64 * 1_000)).unwrap();
    }
    b
}

fn add(c: &mut Criterion) {
    let mut group = c.benchmark_group("buffer_add_1m_single_value");
    group.throughput(Throughput::Elements(N as u64));
    // Steady state: the buffer is full, so every add also evicts (and counts) the oldest sample.
    let mut buffer = full_buffer(N);
    let mut t = N as i64;
    group.bench_function("add_value", |b| {
        b.iter(|| {
            for i in 0..N {
                t += 1;
                buffer.add_value(black_box(i as f64), Timestamp::from_nanos(t)).unwrap();
            }
        })
    });
    group.bench_function("add_data_with_metadata_none", |b| {
        b.iter(|| {
            for i in 0..N {
                t += 1;
                buffer.add_data(&[black_box(i as f64)], Timestamp::from_nanos(t), None).unwrap();
            }
        })
    });
    let shared = SharedBuffer::new(full_buffer(N));
    group.bench_function("shared_add_data_lock_per_sample", |b| {
        b.iter(|| {
            for i in 0..N {
                t += 1;
                shared.add_data(&[black_box(i as f64)], Timestamp::from_nanos(t), None).unwrap();
            }
        })
    });
    let values: Vec<f64> = (0..N).map(|i| i as f64).collect();
    group.bench_function("shared_add_values_one_lock", |b| {
        b.iter_batched(
            || {
                let ts: Vec<Timestamp> = (0..N as i64).map(|i| Timestamp::from_nanos(t + i)).collect();
                t += N as i64;
                ts
            },
            |ts| shared.add_values(&values, &ts).1.unwrap(),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn windows(c: &mut Criterion) {
    let mut group = c.benchmark_group("buffer_windows");
    let big = full_buffer(N);
    group.bench_function("sliding_window_1000_of_1m", |b| b.iter(|| black_box(big.get_sliding_window(1000).unwrap())));
    // The same 10,000-sample time window out of a 100k and a 1M buffer: cost must not follow capacity.
    for capacity in [100_000usize, N] {
        let end = capacity as i64 * 1_000;
        let clock = Arc::new(ManualClock::new(Timestamp::from_nanos(end)));
        let buffer = full_buffer(capacity).with_clock(clock);
        let seconds = 0.01; // 10,000 samples 1 us apart
        group.bench_function(format!("time_window_10k_of_{capacity}"), |b| {
            b.iter(|| {
                let w = buffer.get_time_window(black_box(seconds)).unwrap();
                assert_eq!(w.len(), 10_000);
                w
            })
        });
    }
    group.finish();
}

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// 10 million single-value samples: the crate's accounting and the process RSS growth.
fn memory(c: &mut Criterion) {
    let mut group = c.benchmark_group("buffer_memory");
    group.sample_size(10);
    group.bench_function("fill_10m", |b| {
        b.iter_batched(
            || (),
            |()| {
                let before = rss_bytes();
                let buffer = full_buffer(10_000_000);
                let grown = rss_bytes().saturating_sub(before);
                let accounted = buffer.bytes_used();
                assert!(accounted <= 240_000_000 && grown <= 240_000_000, "accounted {accounted}, RSS grew {grown}");
                static ONCE: std::sync::Once = std::sync::Once::new();
                ONCE.call_once(|| {
                    eprintln!("10M samples: accounted {} MB, RSS grew {} MB", accounted / 1_000_000, grown / 1_000_000)
                });
                buffer
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, add, windows, memory);
criterion_main!(benches);
