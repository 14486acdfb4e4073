//! `Ring`: fixed-capacity circular storage of (timestamp, `channels` values) in two flat arrays.
//!
//! A sample costs `8 + 8 * channels` bytes and no heap object. Logical index 0 is the oldest
//! sample in arrival order. `disorder` counts adjacent pairs whose timestamps decrease, so time
//! lookups know when binary search is valid (it is whenever `disorder == 0`).

use qadf_core_types::Timestamp;

#[derive(Clone, Debug)]
pub(crate) struct Ring {
    channels: usize,
    capacity: usize,
    head: usize,
    len: usize,
    timestamps: Vec<Timestamp>,
    values: Vec<f64>,
    disorder: usize,
}

impl Ring {
    pub(crate) fn new(capacity: usize, channels: usize) -> Ring {
        Ring {
            channels,
            capacity,
            head: 0,
            len: 0,
            timestamps: vec![Timestamp::EPOCH; capacity],
            values: vec![0.0; capacity * channels],
            disorder: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(crate) fn channels(&self) -> usize {
        self.channels
    }

    pub(crate) fn is_full(&self) -> bool {
        self.len == self.capacity
    }

    /// Whether timestamps are non-decreasing in arrival order.
    pub(crate) fn is_ordered(&self) -> bool {
        self.disorder == 0
    }

    pub(crate) fn bytes_used(&self) -> usize {
        self.timestamps.capacity() * size_of::<Timestamp>() + self.values.capacity() * size_of::<f64>()
    }

    #[inline]
    fn physical(&self, logical: usize) -> usize {
        let i = self.head + logical;
        if i >= self.capacity { i - self.capacity } else { i }
    }

    #[inline]
    pub(crate) fn timestamp(&self, logical: usize) -> Timestamp {
        self.timestamps[self.physical(logical)]
    }

    /// Appends a sample; when full, overwrites the oldest (the caller decides whether that is allowed).
    #[inline]
    pub(crate) fn push(&mut self, timestamp: Timestamp, values: &[f64]) {
        debug_assert_eq!(values.len(), self.channels);
        if self.len == self.capacity {
            self.pop_front();
        }
        if self.len > 0 && timestamp < self.timestamp(self.len - 1) {
            self.disorder += 1;
        }
        let slot = self.physical(self.len);
        self.timestamps[slot] = timestamp;
        self.values[slot * self.channels..(slot + 1) * self.channels].copy_from_slice(values);
        self.len += 1;
    }

    /// Removes the oldest sample.
    pub(crate) fn pop_front(&mut self) {
        if self.len == 0 {
            return;
        }
        if self.len > 1 && self.timestamp(1) < self.timestamp(0) {
            self.disorder -= 1;
        }
        self.head = self.physical(1);
        self.len -= 1;
    }

    /// Copies logical samples `start..end` (O(end - start)).
    pub(crate) fn copy_range(&self, start: usize, end: usize, timestamps: &mut Vec<Timestamp>, values: &mut Vec<f64>) {
        let (first, second) = self.split(start, end);
        for range in [first, second] {
            timestamps.extend_from_slice(&self.timestamps[range.clone()]);
            values.extend_from_slice(&self.values[range.start * self.channels..range.end * self.channels]);
        }
    }

    /// Copies one logical sample.
    pub(crate) fn copy_one(&self, logical: usize, timestamps: &mut Vec<Timestamp>, values: &mut Vec<f64>) {
        let slot = self.physical(logical);
        timestamps.push(self.timestamps[slot]);
        values.extend_from_slice(&self.values[slot * self.channels..(slot + 1) * self.channels]);
    }

    /// The physical ranges of logical `start..end` (the second is empty unless it wraps).
    fn split(&self, start: usize, end: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let (a, n) = (self.physical(start), end - start);
        if a + n <= self.capacity { (a..a + n, 0..0) } else { (a..self.capacity, 0..a + n - self.capacity) }
    }

    /// First logical index whose timestamp is `>= t`; requires [`Ring::is_ordered`].
    pub(crate) fn lower_bound(&self, t: Timestamp) -> usize {
        let (mut lo, mut hi) = (0, self.len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.timestamp(mid) < t { lo = mid + 1 } else { hi = mid }
        }
        lo
    }

    /// Keeps the samples for which `keep(logical, timestamp)` holds, in order; returns how many were removed.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(usize, Timestamp) -> bool) -> usize {
        let mut fresh = Ring::new(0, self.channels);
        fresh.capacity = self.capacity;
        fresh.timestamps = Vec::with_capacity(self.capacity);
        fresh.values = Vec::with_capacity(self.capacity * self.channels);
        for i in 0..self.len {
            let t = self.timestamp(i);
            if keep(i, t) {
                self.copy_one(i, &mut fresh.timestamps, &mut fresh.values);
            }
        }
        let removed = self.len - fresh.timestamps.len();
        fresh.len = fresh.timestamps.len();
        fresh.disorder = fresh.timestamps.windows(2).filter(|w| w[1] < w[0]).count();
        fresh.timestamps.resize(self.capacity, Timestamp::EPOCH);
        fresh.values.resize(self.capacity * self.channels, 0.0);
        *self = fresh;
        removed
    }

    /// Smallest and largest timestamp held (O(1) when ordered, O(n) otherwise).
    pub(crate) fn time_span(&self) -> Option<(Timestamp, Timestamp)> {
        if self.len == 0 {
            return None;
        }
        if self.is_ordered() {
            return Some((self.timestamp(0), self.timestamp(self.len - 1)));
        }
        let (first, second) = self.split(0, self.len);
        let all = self.timestamps[first].iter().chain(&self.timestamps[second]);
        all.fold(None, |acc, &t| match acc {
            None => Some((t, t)),
            Some((lo, hi)) => Some((lo.min(t), hi.max(t))),
        })
    }

    pub(crate) fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
        self.disorder = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(n: i64) -> Timestamp {
        Timestamp::from_nanos(n)
    }

    #[test]
    fn wraps_and_keeps_arrival_order() {
        let mut r = Ring::new(3, 1);
        for i in 0..5 {
            r.push(ts(i), &[i as f64 * 10.0]);
        }
        let (mut t, mut v) = (Vec::new(), Vec::new());
        r.copy_range(0, r.len(), &mut t, &mut v);
        assert_eq!(t, [ts(2), ts(3), ts(4)]);
        assert_eq!(v, [20.0, 30.0, 40.0]);
        assert_eq!(r.lower_bound(ts(3)), 1);
    }

    #[test]
    fn disorder_is_tracked_through_eviction_and_retain() {
        let mut r = Ring::new(3, 2);
        r.push(ts(5), &[1.0, 1.0]);
        r.push(ts(3), &[2.0, 2.0]);
        assert!(!r.is_ordered());
        assert_eq!(r.time_span(), Some((ts(3), ts(5))));
        r.push(ts(6), &[3.0, 3.0]);
        r.push(ts(7), &[4.0, 4.0]); // evicts ts(5): the inversion 5 > 3 leaves with it
        assert!(r.is_ordered());
        r.push(ts(1), &[5.0, 5.0]);
        assert!(!r.is_ordered());
        assert_eq!(r.retain(|_, t| t != ts(1)), 1);
        assert!(r.is_ordered());
        assert_eq!(r.len(), 2);
    }
}
