//! `BufferManager`: the upstream buffer surface over a typed ring, with exact statistics.
//!
//! Out-of-order timestamps are accepted and kept in arrival order. Count windows
//! (`get_window`, `get_sliding_window`) are by arrival; time windows select by timestamp and stay
//! correct either way: binary search while timestamps arrive in order, a linear scan while an
//! out-of-order sample is held. Samples stamped in the future are kept and included in relative
//! time windows (a sensor clock running ahead must not hide data).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use qadf_core_types::{Clock, SystemClock, Timestamp};
use serde::{Deserialize, Serialize};

use crate::error::BufferError;
use crate::ring::Ring;

/// What happens when a full buffer receives a sample.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverflowPolicy {
    /// Drop the oldest sample and count it in `evicted_on_overflow` (the default).
    #[default]
    EvictOldest,
    /// Refuse the new sample with [`BufferError::Full`] and count it in `rejected_full`.
    RejectNew,
}

/// Samples copied out of a buffer: parallel timestamps, values (`channels` per sample) and metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Window<M> {
    /// Values per sample.
    pub channels: usize,
    /// Timestamps, one per sample.
    pub timestamps: Vec<Timestamp>,
    /// Values, `channels` per sample, sample-major.
    pub values: Vec<f64>,
    /// Metadata, one per sample (`None` where none was given).
    pub metadata: Vec<Option<M>>,
}

impl<M> Window<M> {
    fn empty(channels: usize) -> Window<M> {
        Window { channels, timestamps: Vec::new(), values: Vec::new(), metadata: Vec::new() }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    /// Whether the window is empty.
    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    /// The values of sample `i`.
    pub fn sample(&self, i: usize) -> &[f64] {
        &self.values[i * self.channels..(i + 1) * self.channels]
    }
}

/// Buffer statistics; every figure describes what is counted or held now, never data that is gone.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BufferStatistics {
    /// Samples accepted since creation or reset.
    pub total_added: u64,
    /// Samples that left: evicted on overflow + cleared by age + flushed.
    pub total_removed: u64,
    /// Samples evicted because the buffer was full.
    pub evicted_on_overflow: u64,
    /// Times a sample arrived at a full buffer (whatever the policy).
    pub overflow_count: u64,
    /// Samples removed by `clear_old_data`.
    pub removed_by_age: u64,
    /// Samples handed out by `flush_buffer`.
    pub flushed: u64,
    /// Samples refused because the buffer was full under [`OverflowPolicy::RejectNew`].
    pub rejected_full: u64,
    /// Samples refused as invalid (wrong width, non-finite value).
    pub rejected_invalid: u64,
    /// Earliest timestamp held.
    pub oldest_timestamp: Option<Timestamp>,
    /// Latest timestamp held.
    pub newest_timestamp: Option<Timestamp>,
    /// Samples held.
    pub current_size: usize,
    /// Capacity in samples.
    pub max_size: usize,
    /// `current_size / max_size` in percent.
    pub utilization_percent: f64,
    /// `newest - oldest` in seconds (0 when empty).
    pub age_span_seconds: f64,
    /// Whether timestamps held are in arrival order (time windows use binary search).
    pub ordered: bool,
    /// Bytes allocated for samples and metadata.
    pub bytes_used: usize,
}

/// Checks a buffer shape without allocating one.
pub(crate) fn validate_shape(window_size: usize, buffer_size: usize, channels: usize) -> Result<(), BufferError> {
    for (name, value) in [("window_size", window_size), ("buffer_size", buffer_size), ("channels", channels)] {
        if value == 0 {
            return Err(BufferError::ZeroSize { name });
        }
    }
    if window_size > buffer_size {
        return Err(BufferError::WindowLargerThanBuffer { window_size, buffer_size });
    }
    Ok(())
}

/// A bounded buffer of timestamped numeric samples with count and time windows.
#[derive(Debug)]
pub struct BufferManager<M = ()> {
    ring: Ring,
    window_size: usize,
    policy: OverflowPolicy,
    /// Metadata by absolute sequence number, ascending; only samples that carry some.
    metadata: VecDeque<(u64, M)>,
    /// Sequence number of the oldest sample held.
    first_seq: u64,
    stats: BufferStatistics,
    clock: Arc<dyn Clock>,
}

impl<M: Clone> BufferManager<M> {
    /// A buffer of `buffer_size` single-value samples whose default window is `window_size`.
    pub fn new(window_size: usize, buffer_size: usize) -> Result<BufferManager<M>, BufferError> {
        BufferManager::with_channels(window_size, buffer_size, 1)
    }

    /// A buffer of `buffer_size` samples of `channels` values each.
    pub fn with_channels(
        window_size: usize,
        buffer_size: usize,
        channels: usize,
    ) -> Result<BufferManager<M>, BufferError> {
        validate_shape(window_size, buffer_size, channels)?;
        Ok(BufferManager {
            ring: Ring::new(buffer_size, channels),
            window_size,
            policy: OverflowPolicy::default(),
            metadata: VecDeque::new(),
            first_seq: 0,
            stats: BufferStatistics { max_size: buffer_size, ..BufferStatistics::default() },
            clock: Arc::new(SystemClock),
        })
    }

    /// Sets the overflow policy (default [`OverflowPolicy::EvictOldest`]).
    pub fn with_policy(mut self, policy: OverflowPolicy) -> BufferManager<M> {
        self.policy = policy;
        self
    }

    /// Sets the clock that relative time windows and age cleanup use (default: the system clock).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> BufferManager<M> {
        self.clock = clock;
        self
    }

    /// The default window length.
    pub fn window_size(&self) -> usize {
        self.window_size
    }

    /// Values per sample.
    pub fn channels(&self) -> usize {
        self.ring.channels()
    }

    /// Samples held.
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.ring.len() == 0
    }

    /// Whether the buffer holds `buffer_size` samples.
    pub fn is_full(&self) -> bool {
        self.ring.is_full()
    }

    /// Bytes allocated for samples and metadata.
    pub fn bytes_used(&self) -> usize {
        self.ring.bytes_used() + self.metadata.capacity() * size_of::<(u64, M)>()
    }

    /// Adds one sample of `channels` finite values.
    pub fn add_data(&mut self, data: &[f64], timestamp: Timestamp, metadata: Option<M>) -> Result<(), BufferError> {
        if data.len() != self.ring.channels() {
            self.stats.rejected_invalid += 1;
            return Err(BufferError::WrongWidth { expected: self.ring.channels(), got: data.len() });
        }
        if let Some(&bad) = data.iter().find(|v| !v.is_finite()) {
            self.stats.rejected_invalid += 1;
            return Err(BufferError::NonFinite { value: bad });
        }
        if self.ring.is_full() {
            self.stats.overflow_count += 1;
            match self.policy {
                OverflowPolicy::RejectNew => {
                    self.stats.rejected_full += 1;
                    return Err(BufferError::Full { capacity: self.ring.capacity() });
                }
                OverflowPolicy::EvictOldest => {
                    self.stats.evicted_on_overflow += 1;
                    self.stats.total_removed += 1;
                    self.ring.pop_front();
                    self.first_seq += 1;
                    if self.metadata.front().is_some_and(|(seq, _)| *seq < self.first_seq) {
                        self.metadata.pop_front();
                    }
                }
            }
        }
        let seq = self.first_seq + self.ring.len() as u64;
        self.ring.push(timestamp, data);
        if let Some(m) = metadata {
            self.metadata.push_back((seq, m));
        }
        self.stats.total_added += 1;
        Ok(())
    }

    /// Adds one single-value sample without metadata (the fast path for one-channel buffers).
    #[inline]
    pub fn add_value(&mut self, value: f64, timestamp: Timestamp) -> Result<(), BufferError> {
        self.add_data(std::slice::from_ref(&value), timestamp, None)
    }

    fn metadata_for(&self, logical: usize) -> Option<M> {
        let seq = self.first_seq + logical as u64;
        let i = self.metadata.partition_point(|(s, _)| *s < seq);
        self.metadata.get(i).filter(|(s, _)| *s == seq).map(|(_, m)| m.clone())
    }

    fn copy_range(&self, start: usize, end: usize) -> Window<M> {
        let mut w = Window::empty(self.ring.channels());
        w.timestamps.reserve(end - start);
        w.values.reserve((end - start) * self.ring.channels());
        self.ring.copy_range(start, end, &mut w.timestamps, &mut w.values);
        w.metadata = vec![None; end - start];
        let first = self.first_seq + start as u64;
        let from = self.metadata.partition_point(|(s, _)| *s < first);
        for (seq, m) in self.metadata.range(from..).take_while(|(s, _)| *s < self.first_seq + end as u64) {
            w.metadata[(seq - first) as usize] = Some(m.clone());
        }
        w
    }

    fn copy_where(&self, keep: impl Fn(Timestamp) -> bool) -> Window<M> {
        let mut w = Window::empty(self.ring.channels());
        for i in (0..self.ring.len()).filter(|&i| keep(self.ring.timestamp(i))) {
            self.ring.copy_one(i, &mut w.timestamps, &mut w.values);
            w.metadata.push(self.metadata_for(i));
        }
        w
    }

    fn check_count(n: usize) -> Result<(), BufferError> {
        if n == 0 { Err(BufferError::ZeroSize { name: "window" }) } else { Ok(()) }
    }

    /// The values of the last `n` samples by arrival (fewer if fewer are held); O(n).
    pub fn get_window(&self, n: usize) -> Result<Vec<f64>, BufferError> {
        Ok(self.get_sliding_window(n)?.values)
    }

    /// The last `n` samples by arrival with timestamps and metadata (fewer if fewer are held); O(n).
    pub fn get_sliding_window(&self, n: usize) -> Result<Window<M>, BufferError> {
        BufferManager::<M>::check_count(n)?;
        let len = self.ring.len();
        Ok(self.copy_range(len - n.min(len), len))
    }

    /// The last `window_size` samples.
    pub fn get_default_window(&self) -> Window<M> {
        let len = self.ring.len();
        self.copy_range(len - self.window_size.min(len), len)
    }

    /// Samples stamped within the last `seconds` before the clock's now (and any stamped later).
    pub fn get_time_window(&self, seconds: f64) -> Result<Window<M>, BufferError> {
        if !(seconds.is_finite() && seconds > 0.0) {
            return Err(BufferError::InvalidDuration { seconds });
        }
        let start = self.clock.now() - Duration::from_secs_f64(seconds);
        Ok(self.get_time_range(start, Timestamp::from_nanos(i64::MAX)))
    }

    /// Samples with `start <= timestamp < end`, in arrival order.
    pub fn get_time_range(&self, start: Timestamp, end: Timestamp) -> Window<M> {
        if self.ring.is_ordered() {
            let (a, b) = (self.ring.lower_bound(start), self.ring.lower_bound(end));
            self.copy_range(a, b.max(a))
        } else {
            self.copy_where(|t| t >= start && t < end)
        }
    }

    /// Hands out every sample held and empties the buffer.
    pub fn flush_buffer(&mut self) -> Window<M> {
        let all = self.copy_range(0, self.ring.len());
        self.stats.flushed += all.len() as u64;
        self.stats.total_removed += all.len() as u64;
        self.first_seq += self.ring.len() as u64;
        self.ring.clear();
        self.metadata.clear();
        all
    }

    /// Removes samples stamped more than `max_age` before the clock's now; returns how many.
    pub fn clear_old_data(&mut self, max_age: Duration) -> usize {
        let cutoff = self.clock.now() - max_age;
        let removed = if self.ring.is_ordered() {
            let n = self.ring.lower_bound(cutoff);
            (0..n).for_each(|_| self.ring.pop_front());
            self.first_seq += n as u64;
            while self.metadata.front().is_some_and(|(seq, _)| *seq < self.first_seq) {
                self.metadata.pop_front();
            }
            n
        } else {
            // Compact, then renumber the survivors' metadata to stay contiguous.
            let mut kept = Vec::new();
            let removed = self.ring.retain(|i, t| {
                let keep = t >= cutoff;
                if keep {
                    kept.push(i);
                }
                keep
            });
            let old_first = self.first_seq;
            let metadata = std::mem::take(&mut self.metadata);
            let mut by_seq = metadata.into_iter().peekable();
            for (new_index, old_index) in kept.into_iter().enumerate() {
                let old_seq = old_first + old_index as u64;
                while by_seq.next_if(|(s, _)| *s < old_seq).is_some() {}
                if let Some((_, m)) = by_seq.next_if(|(s, _)| *s == old_seq) {
                    self.metadata.push_back((old_first + removed as u64 + new_index as u64, m));
                }
            }
            self.first_seq += removed as u64;
            removed
        };
        self.stats.removed_by_age += removed as u64;
        self.stats.total_removed += removed as u64;
        removed
    }

    /// Statistics of what is counted and held now.
    pub fn get_buffer_statistics(&self) -> BufferStatistics {
        let mut s = self.stats.clone();
        let span = self.ring.time_span();
        s.oldest_timestamp = span.map(|(lo, _)| lo);
        s.newest_timestamp = span.map(|(_, hi)| hi);
        s.age_span_seconds = span.map_or(0.0, |(lo, hi)| hi.seconds_since(lo));
        s.current_size = self.ring.len();
        s.utilization_percent = 100.0 * self.ring.len() as f64 / self.ring.capacity() as f64;
        s.ordered = self.ring.is_ordered();
        s.bytes_used = self.bytes_used();
        s
    }

    /// Empties the buffer and zeroes every counter; keeps capacity, window, policy and clock.
    pub fn reset(&mut self) {
        self.ring.clear();
        self.metadata.clear();
        self.first_seq = 0;
        self.stats = BufferStatistics { max_size: self.ring.capacity(), ..BufferStatistics::default() };
    }
}

#[cfg(test)]
mod tests;
