//! `Bucket`: a run of consecutive samples of one build, source and layer stored as columns — the
//! unit of history (MongoDB's bucket pattern; one document or redb record per bucket).
//!
//! A bucket is homogeneous: every sample in it has the same build, source, layer, tags, the same
//! signal names in the same order, and a position or none ([`BucketKey`]). Real monitors send
//! homogeneous runs, so buckets are long; mixed input only makes them shorter, and a decoded
//! bucket gives back exactly the samples it was made of (field for field, signal order kept).
//!
//! Columns (`Bucket::columns`, format version 1): one byte `1`, the sample count as `u32`
//! little-endian, then one section per column — a `u32` little-endian byte length and the column
//! compressed with pcodec (`pco` 1.x standalone format, lossless; readable from Python with the
//! `pcodec` package): timestamps in nanoseconds (`i64`), then x, y, z in mm (`f64`) when the key
//! has positions, then one `f64` column per signal in key order. Per-signal min, max and sum sit
//! beside the columns, so summaries need no unpacking.
//!
//! How runs are cut ([`Bucket::runs_by`]): at every change of key, at [`MAX_BUCKET_SAMPLES`], when
//! the run would span more than [`MAX_BUCKET_SPAN_NS`], and — in `run` — at every Kafka message.
//! A message is re-read whole after a restart and decodes to the same samples, so it is cut into
//! the same runs; a bucket's id is a digest of its samples, so the replay rewrites the same
//! buckets and every sample is stored once. The span bound lets a time-range query find every
//! bucket overlapping it among those starting at most one span before it.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::{HistoryQuery, Point3, Sample, Signals, Tags, Timestamp};

/// Format version of [`Bucket::columns`].
pub const COLUMNS_VERSION: u8 = 1;

/// Most samples one bucket holds (a longer run is cut into several buckets).
pub const MAX_BUCKET_SAMPLES: usize = 10_000;

/// Longest time one bucket spans, end minus start (1 s; a longer run is cut).
pub const MAX_BUCKET_SPAN_NS: i64 = 1_000_000_000;

/// What every sample of a bucket shares.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketKey {
    /// The build.
    pub build_id: String,
    /// The source (sensor or channel).
    pub source_id: String,
    /// The layer.
    pub layer: u32,
    /// Whether the samples carry a position (all do, or none does).
    pub has_position: bool,
    /// The signal names, in the samples' order.
    pub signals: Vec<String>,
    /// The tags every sample carries (from the message schema; usually none).
    pub tags: Tags,
}

impl BucketKey {
    /// The key of `sample`.
    pub fn of(sample: &Sample) -> BucketKey {
        BucketKey {
            build_id: sample.build_id.to_string(),
            source_id: sample.source_id.to_string(),
            layer: sample.layer,
            has_position: sample.position.is_some(),
            signals: sample.signals.iter().map(|(n, _)| n.to_owned()).collect(),
            tags: sample.tags.clone(),
        }
    }

    /// Whether `sample` belongs under this key (compared without allocating).
    pub fn admits(&self, sample: &Sample) -> bool {
        self.build_id == sample.build_id
            && self.source_id == sample.source_id
            && self.layer == sample.layer
            && self.has_position == sample.position.is_some()
            && self.signals.len() == sample.signals.len()
            && self.signals.iter().zip(sample.signals.iter()).all(|(a, (b, _))| a == b)
            && self.tags == sample.tags
    }

    /// Whether samples under this key can match `q`'s build, source, layer and tags.
    pub fn matches(&self, q: &HistoryQuery) -> bool {
        q.build_id.as_ref().is_none_or(|b| *b == self.build_id)
            && q.source_id.as_ref().is_none_or(|s| *s == self.source_id)
            && q.layer.is_none_or(|l| l == self.layer)
            && self.tags.contains_all(&q.tags)
    }
}

/// Count, min, max and sum of one signal over a bucket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignalSummary {
    /// The signal.
    pub name: String,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Sum of the values (the mean is `sum / count`).
    pub sum: f64,
}

/// Why a bucket could not be made or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BucketError {
    /// No samples were given.
    #[error("a bucket needs at least one sample")]
    Empty,
    /// More than [`MAX_BUCKET_SAMPLES`] samples were given.
    #[error("a bucket holds at most {MAX_BUCKET_SAMPLES} samples, {0} were given")]
    TooLarge(usize),
    /// The samples span more than [`MAX_BUCKET_SPAN_NS`].
    #[error("a bucket spans at most {MAX_BUCKET_SPAN_NS} ns, these span {0} ns")]
    TooWide(i64),
    /// A sample does not share the first sample's key.
    #[error("sample {0} has another build, source, layer, tags, signal set or position presence than the first")]
    MixedKeys(usize),
    /// The columns are not a valid version-1 encoding for this key.
    #[error("corrupt bucket columns: {0}")]
    Corrupt(String),
}

/// A run of samples of one key, as columns with their summaries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// Deterministic: the first time (sortable), the count and a digest (see [`Bucket::id_of`]).
    pub id: String,
    /// What every sample shares.
    pub key: BucketKey,
    /// Earliest sample time.
    pub start: Timestamp,
    /// Latest sample time.
    pub end: Timestamp,
    /// Number of samples.
    pub count: u32,
    /// Per signal, in key order.
    pub summaries: Vec<SignalSummary>,
    /// The encoded columns (see the module docs).
    pub columns: Vec<u8>,
}

impl Bucket {
    /// The runs of consecutive samples sharing a key, each at most [`MAX_BUCKET_SAMPLES`] long
    /// and [`MAX_BUCKET_SPAN_NS`] wide (all of `samples` taken as one message).
    pub fn runs(samples: &[Sample]) -> Vec<Range<usize>> {
        Bucket::runs_by(samples, |_, _| true)
    }

    /// Like [`Bucket::runs`], also cut between samples `i - 1` and `i` unless
    /// `same_message(i - 1, i)`: no bucket holds samples of two messages.
    pub fn runs_by(samples: &[Sample], same_message: impl Fn(usize, usize) -> bool) -> Vec<Range<usize>> {
        let mut out = Vec::new();
        let mut start = 0;
        while start < samples.len() {
            let key = BucketKey::of(&samples[start]);
            let limit = samples.len().min(start + MAX_BUCKET_SAMPLES);
            let (mut lo, mut hi) = (samples[start].timestamp.as_nanos(), samples[start].timestamp.as_nanos());
            let end = (start + 1..limit)
                .find(|&i| {
                    let t = samples[i].timestamp.as_nanos();
                    (lo, hi) = (lo.min(t), hi.max(t));
                    !same_message(i - 1, i) || !key.admits(&samples[i]) || span(lo, hi) > MAX_BUCKET_SPAN_NS
                })
                .unwrap_or(limit);
            out.push(start..end);
            start = end;
        }
        out
    }

    /// The id `samples` get as a bucket: their first time (16 hex digits, so ids sort by time),
    /// their count, and XXH3-64 of their key and every sample's time, position and values. The
    /// same samples always give the same id, so a replay rewrites a bucket instead of adding one;
    /// computing it needs no encoding (a consumer checks what a restart already stored with it).
    pub fn id_of(samples: &[Sample]) -> String {
        let Some(first) = samples.first() else { return String::new() };
        let key = BucketKey::of(first);
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for text in [&key.build_id, &key.source_id].into_iter().chain(&key.signals) {
            h.update(&(text.len() as u64).to_le_bytes());
            h.update(text.as_bytes());
        }
        h.update(&key.layer.to_le_bytes());
        h.update(&[u8::from(key.has_position)]);
        // Only when present, so untagged buckets keep the ids they always had.
        for (name, value) in key.tags.iter() {
            for text in [name, value] {
                h.update(&(text.len() as u64).to_le_bytes());
                h.update(text.as_bytes());
            }
        }
        let mut start = i64::MAX;
        for s in samples {
            start = start.min(s.timestamp.as_nanos());
            h.update(&s.timestamp.as_nanos().to_le_bytes());
            if let Some(p) = s.position {
                for c in [p.x, p.y, p.z] {
                    h.update(&c.to_bits().to_le_bytes());
                }
            }
            for (_, v) in s.signals.iter() {
                h.update(&v.to_bits().to_le_bytes());
            }
        }
        let time = (start as u64) ^ (1 << 63);
        format!("{time:016x}{:08x}{:016x}", samples.len(), h.digest())
    }

    /// Encodes `samples` (one key, 1 to [`MAX_BUCKET_SAMPLES`] of them).
    pub fn encode(samples: &[Sample]) -> Result<Bucket, BucketError> {
        let first = samples.first().ok_or(BucketError::Empty)?;
        if samples.len() > MAX_BUCKET_SAMPLES {
            return Err(BucketError::TooLarge(samples.len()));
        }
        let key = BucketKey::of(first);
        if let Some(i) = samples.iter().position(|s| !key.admits(s)) {
            return Err(BucketError::MixedKeys(i));
        }
        let times: Vec<i64> = samples.iter().map(|s| s.timestamp.as_nanos()).collect();
        let (lo, hi) = times.iter().fold((i64::MAX, i64::MIN), |(lo, hi), &t| (lo.min(t), hi.max(t)));
        if span(lo, hi) > MAX_BUCKET_SPAN_NS {
            return Err(BucketError::TooWide(span(lo, hi)));
        }
        let mut columns = vec![COLUMNS_VERSION];
        columns.extend_from_slice(&(samples.len() as u32).to_le_bytes());
        section(&mut columns, &times)?;
        if key.has_position {
            let axis = |f: fn(&Point3<f64>) -> f64| -> Vec<f64> {
                samples.iter().map(|s| s.position.as_ref().map_or(0.0, f)).collect()
            };
            for column in [axis(|p| p.x), axis(|p| p.y), axis(|p| p.z)] {
                section(&mut columns, &column)?;
            }
        }
        let mut values: Vec<Vec<f64>> = vec![Vec::with_capacity(samples.len()); key.signals.len()];
        for s in samples {
            for (column, (_, v)) in values.iter_mut().zip(s.signals.iter()) {
                column.push(v);
            }
        }
        let mut summaries = Vec::with_capacity(key.signals.len());
        for (name, values) in key.signals.iter().zip(&values) {
            summaries.push(SignalSummary {
                name: name.clone(),
                min: values.iter().copied().fold(f64::INFINITY, f64::min),
                max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                sum: values.iter().sum(),
            });
            section(&mut columns, values)?;
        }
        let start = Timestamp::from_nanos(lo);
        Ok(Bucket {
            id: Bucket::id_of(samples),
            start,
            end: Timestamp::from_nanos(hi),
            count: samples.len() as u32,
            key,
            summaries,
            columns,
        })
    }

    /// The samples, exactly as they were encoded.
    pub fn decode(&self) -> Result<Vec<Sample>, BucketError> {
        let mut r = Reader { bytes: &self.columns, at: 0 };
        if r.take(1)? != [COLUMNS_VERSION] {
            return Err(BucketError::Corrupt("unknown format version".to_owned()));
        }
        let count = u32::from_le_bytes(r.take(4)?.try_into().expect("4 bytes")) as usize;
        if count != self.count as usize {
            return Err(BucketError::Corrupt(format!("{count} samples in the columns, {} in the bucket", self.count)));
        }
        let times: Vec<i64> = r.column(count)?;
        let positions: Option<[Vec<f64>; 3]> =
            if self.key.has_position { Some([r.column(count)?, r.column(count)?, r.column(count)?]) } else { None };
        let signals: Vec<Vec<f64>> = self.key.signals.iter().map(|_| r.column(count)).collect::<Result<_, _>>()?;
        if r.at != self.columns.len() {
            return Err(BucketError::Corrupt("bytes after the last column".to_owned()));
        }
        Ok((0..count)
            .map(|i| Sample {
                build_id: self.key.build_id.as_str().into(),
                source_id: self.key.source_id.as_str().into(),
                layer: self.key.layer,
                timestamp: Timestamp::from_nanos(times[i]),
                position: positions.as_ref().map(|[x, y, z]| Point3::new(x[i], y[i], z[i])),
                signals: self.key.signals.iter().zip(&signals).map(|(n, v)| (n.clone(), v[i])).collect::<Signals>(),
                tags: self.key.tags.clone(),
            })
            .collect())
    }
}

/// Appends one compressed column with its length.
fn section<T: pco::data_types::Number>(out: &mut Vec<u8>, values: &[T]) -> Result<(), BucketError> {
    let bytes = pco::standalone::simple_compress(values, &pco::ChunkConfig::default())
        .map_err(|e| BucketError::Corrupt(format!("compressing a column: {e}")))?;
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(&bytes);
    Ok(())
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BucketError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| BucketError::Corrupt("the columns end early".to_owned()))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn column<T: pco::data_types::Number>(&mut self, count: usize) -> Result<Vec<T>, BucketError> {
        let len = u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")) as usize;
        let values: Vec<T> = pco::standalone::simple_decompress(self.take(len)?)
            .map_err(|e| BucketError::Corrupt(format!("a column: {e}")))?;
        if values.len() != count {
            return Err(BucketError::Corrupt(format!("a column of {} values for {count} samples", values.len())));
        }
        Ok(values)
    }
}

/// `hi - lo` without overflow, saturated to `i64::MAX`.
fn span(lo: i64, hi: i64) -> i64 {
    i64::try_from(i128::from(hi) - i128::from(lo)).unwrap_or(i64::MAX)
}
