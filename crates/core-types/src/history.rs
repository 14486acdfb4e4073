//! Answering history queries from buckets — what every [`HistoryStore`](crate::HistoryStore) shares.
//!
//! A store scans the buckets whose start lies in `[scan_start(q), q.end)` in (start, id) order
//! (an index or an ordered table) and hands them to [`answer`]; buckets cannot span more than
//! [`MAX_BUCKET_SPAN_NS`], so no overlapping bucket starts earlier.

use crate::bucket::{Bucket, BucketError, MAX_BUCKET_SPAN_NS};
use crate::{BackendError, BackendErrorKind, HistoryQuery, Sample};

/// The earliest start of a bucket that can hold samples of `q`'s time range.
pub fn scan_start(q: &HistoryQuery) -> i64 {
    q.start.as_nanos().saturating_sub(MAX_BUCKET_SPAN_NS)
}

/// A bucket that cannot be read, as a store error.
pub fn corrupt(e: BucketError) -> BackendError {
    BackendError::new(BackendErrorKind::Corrupt, "history", e.to_string())
}

impl Bucket {
    /// Whether every sample of the bucket lies in `q`'s time range.
    pub fn inside(&self, q: &HistoryQuery) -> bool {
        self.start >= q.start && self.end < q.end
    }

    /// Whether some sample of the bucket may lie in `q`'s time range.
    pub fn overlaps(&self, q: &HistoryQuery) -> bool {
        self.end >= q.start && self.start < q.end
    }

    /// How many of the bucket's samples `q` selects (skip and limit aside): the bucket's count
    /// when it lies inside the range, otherwise its samples are decoded and counted.
    pub fn count_in(&self, q: &HistoryQuery) -> Result<u64, BackendError> {
        if !self.key.matches(q) || !self.overlaps(q) {
            return Ok(0);
        }
        if self.inside(q) {
            return Ok(u64::from(self.count));
        }
        let samples = self.decode().map_err(corrupt)?;
        Ok(samples.iter().filter(|s| s.timestamp >= q.start && s.timestamp < q.end).count() as u64)
    }
}

/// Answers `q` from `buckets` (ascending by start, then id, none starting before
/// [`scan_start`]): decodes the buckets that match and overlap, keeps their samples in the range,
/// stops once no later bucket can be among the first `skip + limit`, and returns them sorted by
/// time (ties in scan order, then in bucket order) after `skip`, at most `limit`.
pub fn answer(
    q: &HistoryQuery,
    buckets: impl IntoIterator<Item = Result<Bucket, BackendError>>,
) -> Result<Vec<Sample>, BackendError> {
    let need = q.skip.saturating_add(q.limit);
    let mut found: Vec<(i64, usize, usize, Sample)> = Vec::new();
    let mut latest = i64::MIN;
    for (seq, bucket) in buckets.into_iter().enumerate() {
        let bucket = bucket?;
        if found.len() >= need && bucket.start.as_nanos() > latest {
            break; // every later bucket starts after all that was found
        }
        if !bucket.key.matches(q) || !bucket.overlaps(q) {
            continue;
        }
        for (i, s) in bucket.decode().map_err(corrupt)?.into_iter().enumerate() {
            if s.timestamp >= q.start && s.timestamp < q.end {
                latest = latest.max(s.timestamp.as_nanos());
                found.push((s.timestamp.as_nanos(), seq, i, s));
            }
        }
    }
    found.sort_unstable_by_key(|(t, seq, i, _)| (*t, *seq, *i));
    Ok(found.into_iter().skip(q.skip).take(q.limit).map(|(.., s)| s).collect())
}
