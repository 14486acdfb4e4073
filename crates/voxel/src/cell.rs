//! Per-voxel, per-signal streaming statistics (Welford) and the reported aggregations.

use serde::{Deserialize, Serialize};

/// Exact running statistics of the values that landed in one voxel for one signal.
///
/// Mean and variance use Welford's update for single values and Chan et al.'s pairwise formula for
/// merging, so no finalize step exists: every field is exact (to floating-point rounding) at any time.
/// One cell is one 64-byte cache line, and an empty cell is all zero bits (so blocks are allocated
/// zeroed, with no initialising pass); `min`, `max`, `first` and `last` mean nothing while `count` is 0.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[repr(C, align(64))]
pub struct CellStats {
    /// Number of values.
    pub count: u64,
    /// Sum of values.
    pub sum: f64,
    /// Running mean.
    pub mean: f64,
    /// Sum of squared deviations from the mean (Welford's M2).
    pub m2: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// First value applied.
    pub first: f64,
    /// Last value applied.
    pub last: f64,
}

impl CellStats {
    /// A cell that has seen nothing (all zero bits).
    pub const EMPTY: CellStats =
        CellStats { count: 0, sum: 0.0, mean: 0.0, m2: 0.0, min: 0.0, max: 0.0, first: 0.0, last: 0.0 };

    /// Adds one value (callers guarantee it is finite).
    #[inline]
    pub fn push(&mut self, value: f64) {
        let fresh = self.count == 0;
        self.count += 1;
        if fresh {
            self.first = value;
        }
        self.last = value;
        self.sum += value;
        let delta = value - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (value - self.mean);
        self.min = if fresh { value } else { self.min.min(value) };
        self.max = if fresh { value } else { self.max.max(value) };
    }

    /// Merges statistics of values that came after this cell's (Chan et al. 1979).
    pub fn merge(&mut self, later: &CellStats) {
        if later.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = *later;
            return;
        }
        let n_a = self.count as f64;
        let n_b = later.count as f64;
        let n = n_a + n_b;
        let delta = later.mean - self.mean;
        self.mean += delta * n_b / n;
        self.m2 += later.m2 + delta * delta * n_a * n_b / n;
        self.count += later.count;
        self.sum += later.sum;
        self.min = self.min.min(later.min);
        self.max = self.max.max(later.max);
        self.last = later.last;
    }

    /// Whether no value landed here.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Population variance (numpy's default, ddof = 0); `None` when empty.
    pub fn variance(&self) -> Option<f64> {
        (self.count > 0).then(|| (self.m2 / self.count as f64).max(0.0))
    }

    /// Sample variance (ddof = 1); `None` with fewer than two values.
    pub fn sample_variance(&self) -> Option<f64> {
        (self.count > 1).then(|| (self.m2 / (self.count - 1) as f64).max(0.0))
    }

    /// The reported value under `aggregation`; `None` when empty.
    pub fn aggregate(&self, aggregation: Aggregation) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        Some(match aggregation {
            Aggregation::Mean => self.mean,
            Aggregation::Max => self.max,
            Aggregation::Min => self.min,
            Aggregation::Sum => self.sum,
            Aggregation::First => self.first,
            Aggregation::Last => self.last,
            Aggregation::Count => self.count as f64,
            Aggregation::Std => self.variance().unwrap_or(0.0).sqrt(),
        })
    }
}

impl Default for CellStats {
    fn default() -> CellStats {
        CellStats::EMPTY
    }
}

/// Which statistic a voxel reports when exported (the upstream `aggregation` plus count and std).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregation {
    /// Arithmetic mean (the default).
    #[default]
    Mean,
    /// Largest value.
    Max,
    /// Smallest value.
    Min,
    /// Sum of values.
    Sum,
    /// First value applied.
    First,
    /// Last value applied.
    Last,
    /// Number of values.
    Count,
    /// Population standard deviation.
    Std,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(values: &[f64]) -> CellStats {
        let mut c = CellStats::EMPTY;
        values.iter().for_each(|&v| c.push(v));
        c
    }

    /// The Python original's counter-example: 10, 20, then 40 in a later batch gave 27.5.
    #[test]
    fn upstream_counter_example_gives_the_true_mean() {
        let mut c = cell(&[10.0, 20.0]);
        c.push(40.0);
        assert_eq!(c.count, 3);
        assert!((c.mean - 70.0 / 3.0).abs() < 1e-12, "{}", c.mean);
        let mut merged = cell(&[10.0, 20.0]);
        merged.merge(&cell(&[40.0]));
        assert!((merged.mean - 70.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn every_aggregation_of_a_known_sequence() {
        let c = cell(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        let expected = [
            (Aggregation::Mean, 5.0),
            (Aggregation::Max, 9.0),
            (Aggregation::Min, 2.0),
            (Aggregation::Sum, 40.0),
            (Aggregation::First, 2.0),
            (Aggregation::Last, 9.0),
            (Aggregation::Count, 8.0),
            (Aggregation::Std, 2.0),
        ];
        for (aggregation, value) in expected {
            assert_eq!(c.aggregate(aggregation), Some(value), "{aggregation:?}");
        }
        assert_eq!(c.sample_variance(), Some(32.0 / 7.0));
        assert_eq!(CellStats::EMPTY.aggregate(Aggregation::Mean), None);
    }

    #[test]
    fn welford_is_stable_for_large_offsets() {
        // Naive sum-of-squares variance loses everything at an offset of 1e9; Welford does not.
        let c = cell(&[1e9 + 4.0, 1e9 + 7.0, 1e9 + 13.0, 1e9 + 16.0]);
        assert!((c.variance().unwrap() - 22.5).abs() < 1e-6, "{:?}", c.variance());
    }

    #[test]
    fn a_cell_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<CellStats>(), 64);
    }

    #[test]
    fn an_empty_cell_is_all_zero_bits_and_its_first_value_sets_min_and_max() {
        let e = CellStats::EMPTY;
        let bits = [e.count, e.sum.to_bits(), e.mean.to_bits(), e.m2.to_bits()];
        let rest = [e.min, e.max, e.first, e.last].map(f64::to_bits);
        assert!(bits.iter().chain(&rest).all(|&b| b == 0));
        // A first value above zero must still be the minimum, and one below zero the maximum.
        assert_eq!((cell(&[5.0]).min, cell(&[-5.0]).max), (5.0, -5.0));
        assert_eq!((cell(&[5.0, 7.0]).min, cell(&[-5.0, -7.0]).max), (5.0, -5.0));
    }
}
