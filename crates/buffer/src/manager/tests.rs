use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use qadf_core_types::{ManualClock, Timestamp};

use super::*;

fn sec(s: i64) -> Timestamp {
    Timestamp::from_nanos(s * 1_000_000_000)
}

fn buffer(window: usize, capacity: usize) -> (BufferManager<&'static str>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(sec(100)));
    (BufferManager::new(window, capacity).unwrap().with_clock(clock.clone()), clock)
}

#[test]
fn zero_and_inconsistent_sizes_are_typed_errors() {
    let cases = [
        (0, 10, 1, BufferError::ZeroSize { name: "window_size" }),
        (1, 0, 1, BufferError::ZeroSize { name: "buffer_size" }),
        (1, 10, 0, BufferError::ZeroSize { name: "channels" }),
        (11, 10, 1, BufferError::WindowLargerThanBuffer { window_size: 11, buffer_size: 10 }),
    ];
    for (window, capacity, channels, expected) in cases {
        assert_eq!(BufferManager::<()>::with_channels(window, capacity, channels).unwrap_err(), expected);
    }
    let (b, _) = buffer(2, 4);
    assert_eq!(b.get_window(0), Err(BufferError::ZeroSize { name: "window" }));
    for seconds in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(matches!(b.get_time_window(seconds), Err(BufferError::InvalidDuration { .. })), "{seconds}");
    }
}

#[test]
fn windows_return_the_newest_samples_and_fewer_when_short() {
    let (mut b, _) = buffer(2, 5);
    for i in 0..3 {
        b.add_data(&[i as f64], sec(i), if i == 1 { Some("one") } else { None }).unwrap();
    }
    assert_eq!(b.get_window(10).unwrap(), [0.0, 1.0, 2.0]);
    let w = b.get_sliding_window(2).unwrap();
    assert_eq!((w.values, w.timestamps, w.metadata), (vec![1.0, 2.0], vec![sec(1), sec(2)], vec![Some("one"), None]));
    assert_eq!(b.get_default_window().values, [1.0, 2.0]);
}

/// The Python original reported removed counts, oldest timestamp and age span of evicted data.
#[test]
fn overflow_statistics_describe_what_is_held() {
    let (mut b, _) = buffer(2, 3);
    for i in 0..5 {
        b.add_data(&[i as f64], sec(10 + i), Some("m")).unwrap();
    }
    let s = b.get_buffer_statistics();
    assert_eq!((s.total_added, s.total_removed, s.evicted_on_overflow, s.overflow_count), (5, 2, 2, 2));
    assert_eq!((s.oldest_timestamp, s.newest_timestamp), (Some(sec(12)), Some(sec(14))));
    assert_eq!((s.current_size, s.max_size, s.utilization_percent, s.age_span_seconds), (3, 3, 100.0, 2.0));
    assert!(b.is_full());
    assert_eq!(b.get_sliding_window(3).unwrap().metadata, [Some("m"); 3]);
    assert_eq!(b.metadata.len(), 3, "evicted samples' metadata is dropped with them");
}

#[test]
fn reject_policy_refuses_and_counts() {
    let (b, _) = buffer(1, 2);
    let mut b = b.with_policy(OverflowPolicy::RejectNew);
    b.add_data(&[1.0], sec(1), None).unwrap();
    b.add_data(&[2.0], sec(2), None).unwrap();
    assert_eq!(b.add_data(&[3.0], sec(3), None), Err(BufferError::Full { capacity: 2 }));
    let s = b.get_buffer_statistics();
    assert_eq!((s.total_added, s.rejected_full, s.overflow_count, s.total_removed), (2, 1, 1, 0));
    assert_eq!(b.get_window(5).unwrap(), [1.0, 2.0]);
}

#[test]
fn invalid_samples_are_refused_and_counted() {
    let clock = Arc::new(ManualClock::new(sec(0)));
    let mut b: BufferManager = BufferManager::with_channels(1, 4, 2).unwrap().with_clock(clock);
    assert_eq!(b.add_data(&[1.0], sec(1), None), Err(BufferError::WrongWidth { expected: 2, got: 1 }));
    assert!(matches!(b.add_data(&[1.0, f64::NAN], sec(1), None), Err(BufferError::NonFinite { .. })));
    b.add_data(&[1.0, 2.0], sec(1), None).unwrap();
    assert_eq!(b.get_buffer_statistics().rejected_invalid, 2);
    assert_eq!(b.get_sliding_window(1).unwrap().sample(0), [1.0, 2.0]);
}

#[test]
fn time_windows_relative_absolute_out_of_order_and_future() {
    let (mut b, clock) = buffer(1, 10);
    for s in [95, 97, 93, 99, 104] {
        b.add_data(&[s as f64], sec(s), None).unwrap();
    }
    assert!(!b.get_buffer_statistics().ordered);
    // Last 4 s before 100: 97, 99 and the future 104, in arrival order; 93 and 95 are older.
    assert_eq!(b.get_time_window(4.0).unwrap().values, [97.0, 99.0, 104.0]);
    assert_eq!(b.get_time_range(sec(93), sec(97)).values, [95.0, 93.0]);
    clock.set(sec(110));
    assert_eq!(b.get_time_window(6.5).unwrap().values, [104.0]);
    let s = b.get_buffer_statistics();
    assert_eq!((s.oldest_timestamp, s.newest_timestamp, s.age_span_seconds), (Some(sec(93)), Some(sec(104)), 11.0));
}

#[test]
fn clear_old_data_in_order_and_out_of_order_keeps_metadata_aligned() {
    for out_of_order in [false, true] {
        let (mut b, clock) = buffer(1, 10);
        let times: Vec<i64> = if out_of_order { vec![90, 80, 95, 85, 99] } else { vec![80, 85, 90, 95, 99] };
        let labels = ["a", "b", "c", "d", "e"];
        for (t, label) in times.iter().zip(labels) {
            b.add_data(&[*t as f64], sec(*t), Some(label)).unwrap();
        }
        clock.set(sec(100));
        let removed = b.clear_old_data(Duration::from_secs(12)); // keeps t >= 88
        let kept = b.get_sliding_window(10).unwrap();
        let expected: Vec<(f64, Option<&str>)> =
            times.iter().zip(labels).filter(|(t, _)| **t >= 88).map(|(t, l)| (*t as f64, Some(l))).collect();
        assert_eq!(removed, 5 - expected.len(), "out_of_order={out_of_order}");
        assert_eq!(kept.values.iter().copied().zip(kept.metadata).collect::<Vec<_>>(), expected);
        b.add_data(&[100.0], sec(100), Some("z")).unwrap();
        assert_eq!(b.get_sliding_window(1).unwrap().metadata, [Some("z")]);
        assert_eq!(b.get_buffer_statistics().removed_by_age, removed as u64);
    }
}

#[test]
fn flush_hands_out_everything_and_reset_zeroes() {
    let (mut b, _) = buffer(1, 3);
    for i in 0..4 {
        b.add_data(&[i as f64], sec(i), None).unwrap();
    }
    assert_eq!(b.flush_buffer().values, [1.0, 2.0, 3.0]);
    let s = b.get_buffer_statistics();
    assert_eq!((s.flushed, s.total_removed, s.current_size, s.oldest_timestamp), (3, 4, 0, None));
    b.reset();
    assert_eq!(
        b.get_buffer_statistics(),
        BufferStatistics { max_size: 3, ordered: true, bytes_used: b.bytes_used(), ..Default::default() }
    );
}

#[test]
fn a_single_value_sample_costs_sixteen_bytes() {
    let b: BufferManager = BufferManager::new(1, 1_000_000).unwrap();
    assert_eq!(b.bytes_used(), 16_000_000);
}

#[derive(Clone, Debug)]
enum Op {
    Add(i64, bool),
    ClearOld(u64),
    Flush,
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..60i64, any::<bool>()).prop_map(|(t, m)| Op::Add(t, m)),
        1 => (0..40u64).prop_map(Op::ClearOld),
        1 => Just(Op::Flush),
    ]
}

proptest! {
    /// Against a naive model (a Vec in arrival order), after every operation.
    #[test]
    fn prop_matches_a_naive_model(ops in proptest::collection::vec(arb_op(), 1..120), capacity in 1..12usize) {
        let clock = Arc::new(ManualClock::new(sec(50)));
        let mut b: BufferManager<u32> = BufferManager::new(1, capacity).unwrap().with_clock(clock);
        let mut model: Vec<(i64, f64, Option<u32>)> = Vec::new();
        let (mut added, mut removed) = (0u64, 0u64);
        for (i, op) in ops.into_iter().enumerate() {
            match op {
                Op::Add(t, with_meta) => {
                    let meta = with_meta.then_some(i as u32);
                    b.add_data(&[i as f64], sec(t), meta).unwrap();
                    if model.len() == capacity {
                        model.remove(0);
                        removed += 1;
                    }
                    model.push((t, i as f64, meta));
                    added += 1;
                }
                Op::ClearOld(age) => {
                    let before = model.len();
                    model.retain(|(t, _, _)| *t >= 50 - age as i64);
                    removed += (before - model.len()) as u64;
                    prop_assert_eq!(b.clear_old_data(Duration::from_secs(age)), before - model.len());
                }
                Op::Flush => {
                    removed += model.len() as u64;
                    model.clear();
                    b.flush_buffer();
                }
            }
            let all = b.get_sliding_window(capacity).unwrap();
            let got: Vec<_> = all.timestamps.iter().zip(&all.values).zip(&all.metadata)
                .map(|((t, v), m)| (t.as_nanos() / 1_000_000_000, *v, *m)).collect();
            prop_assert_eq!(&got, &model);
            let window = b.get_time_range(sec(20), sec(40));
            let expected: Vec<f64> = model.iter().filter(|(t, _, _)| (20..40).contains(t)).map(|(_, v, _)| *v).collect();
            prop_assert_eq!(window.values, expected);
            let s = b.get_buffer_statistics();
            prop_assert_eq!((s.total_added, s.total_removed, s.current_size), (added, removed, model.len()));
            prop_assert_eq!(s.oldest_timestamp.map(|t| t.as_nanos() / 1_000_000_000), model.iter().map(|m| m.0).min());
        }
    }
}
