//! The in-situ process monitoring sample model: samples, named signals and batches.

use compact_str::CompactString;
use nalgebra::Point3;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::error::SampleError;
use crate::limits::IngestLimits;
use crate::tags::Tags;
use crate::time::Timestamp;

/// Well-known signal names emitted by melt-pool monitors.
pub mod signal {
    /// Melt-pool temperature in kelvin (pyrometer or thermal camera).
    pub const TEMPERATURE: &str = "temperature";
    /// Melt-pool area in mm².
    pub const MELT_POOL_AREA: &str = "melt_pool_area";
    /// Melt-pool emission intensity in sensor counts.
    pub const MELT_POOL_INTENSITY: &str = "melt_pool_intensity";
}

/// Named signal values of one sample, in the order they were given. Up to [`INLINE_SIGNALS`]
/// signals with names of up to 24 bytes are stored inline: a sample of a monitor's few signals
/// costs no allocation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Signals(SmallVec<[(CompactString, f64); INLINE_SIGNALS]>);

/// Signals a sample holds without an allocation (ISPM monitors send two to four).
pub const INLINE_SIGNALS: usize = 4;

impl Signals {
    /// An empty set of signals.
    pub fn new() -> Signals {
        Signals(SmallVec::new())
    }

    /// An empty set with room for `n` signals.
    pub fn with_capacity(n: usize) -> Signals {
        Signals(SmallVec::with_capacity(n))
    }

    /// Adds a signal (duplicates are caught by [`Sample::validate`]).
    pub fn push(&mut self, name: impl Into<CompactString>, value: f64) {
        self.0.push((name.into(), value));
    }

    /// The value of the named signal, if present.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.0.iter().find(|(n, _)| n == name).map(|&(_, v)| v)
    }

    /// The signals as (name, value) pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&str, f64)> {
        self.0.iter().map(|(n, v)| (n.as_str(), *v))
    }

    /// Number of signals.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no signals.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first name given twice, if any (quadratic for a few signals, sorted for many).
    pub fn first_duplicate(&self) -> Option<&str> {
        if self.0.len() <= 16 {
            return self
                .0
                .iter()
                .enumerate()
                .find(|(i, (n, _))| self.0[..*i].iter().any(|(e, _)| e == n))
                .map(|(_, (n, _))| n.as_str());
        }
        let mut names: Vec<&str> = self.0.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        names.windows(2).find(|w| w[0] == w[1]).map(|w| w[0])
    }
}

impl<N: Into<CompactString>> FromIterator<(N, f64)> for Signals {
    fn from_iter<I: IntoIterator<Item = (N, f64)>>(iter: I) -> Signals {
        Signals(iter.into_iter().map(|(n, v)| (n.into(), v)).collect())
    }
}

impl Serialize for Signals {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(n, v)| (n.as_str(), v)))
    }
}

impl<'de> Deserialize<'de> for Signals {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Signals, D::Error> {
        struct SignalsVisitor;
        impl<'de> serde::de::Visitor<'de> for SignalsVisitor {
            type Value = Signals;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map from signal name to number")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Signals, A::Error> {
                let mut out = SmallVec::with_capacity(map.size_hint().unwrap_or(0).min(64));
                while let Some((name, value)) = map.next_entry::<CompactString, f64>()? {
                    out.push((name, value));
                }
                Ok(Signals(out))
            }
        }
        deserializer.deserialize_map(SignalsVisitor)
    }
}

/// One monitoring sample: where the laser was, when, and what the sensors read.
///
/// JSON accepts the canonical form written by [`crate::codec`] and a generic mapping for messages
/// like the Python original's `{"value": 1.0}`; see the crate docs ("Generic JSON mapping").
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The build (print job) the sample belongs to.
    pub build_id: CompactString,
    /// The sensor or machine channel that produced the sample.
    pub source_id: CompactString,
    /// Layer number, counted from 0 at the build plate.
    pub layer: u32,
    /// When the sample was measured (UTC).
    pub timestamp: Timestamp,
    /// Scanner position in mm, or `None` when the message carried none (it then cannot be voxelized).
    pub position: Option<Point3<f64>>,
    /// Named signal values.
    pub signals: Signals,
    /// Text fields the message schema keeps with the sample (empty for most monitors).
    pub tags: Tags,
}

impl Sample {
    /// The content id of a sample: 16 hex digits of its timestamp (offset so they sort in time
    /// order, which keeps B-tree inserts in the stores near-sequential), then 16 hex digits of
    /// the XXH3-64 digest of every field (build, source, layer, timestamp, position, each
    /// signal's name and value bits), each length-prefixed.
    ///
    /// Deterministic across replays and versions (XXH3's output is fixed by its specification),
    /// and distinct for samples that differ in any field (used by tests as a content checksum).
    pub fn content_id(&self) -> String {
        let time = (self.timestamp.as_nanos() as u64) ^ (1 << 63);
        format!("{time:016x}{:016x}", self.digest())
    }

    /// XXH3-64 of every field (see [`Sample::content_id`]): traces a refused sample to its message.
    pub fn digest(&self) -> u64 {
        let sample = self;
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        let mut text = |t: &str| {
            h.update(&(t.len() as u64).to_le_bytes());
            h.update(t.as_bytes());
        };
        text(&sample.build_id);
        text(&sample.source_id);
        h.update(&sample.layer.to_le_bytes());
        h.update(&sample.timestamp.as_nanos().to_le_bytes());
        match sample.position {
            Some(p) => {
                h.update(&[1]);
                for c in [p.x, p.y, p.z] {
                    h.update(&c.to_bits().to_le_bytes());
                }
            }
            None => h.update(&[0]),
        }
        h.update(&(sample.signals.len() as u64).to_le_bytes());
        for (name, value) in sample.signals.iter() {
            h.update(&(name.len() as u64).to_le_bytes());
            h.update(name.as_bytes());
            h.update(&value.to_bits().to_le_bytes());
        }
        // Appended only when present, so the ids of untagged samples never change.
        if !sample.tags.is_empty() {
            h.update(&(sample.tags.len() as u64).to_le_bytes());
            for (name, value) in sample.tags.iter() {
                for t in [name, value] {
                    h.update(&(t.len() as u64).to_le_bytes());
                    h.update(t.as_bytes());
                }
            }
        }
        h.digest()
    }

    /// A sample at a position with the given signals; ids default to `"unknown"`, layer to 0.
    pub fn new(timestamp: Timestamp, position: Point3<f64>, signals: Signals) -> Sample {
        Sample {
            build_id: UNKNOWN.into(),
            source_id: UNKNOWN.into(),
            layer: 0,
            timestamp,
            position: Some(position),
            signals,
            tags: Tags::new(),
        }
    }

    /// Checks the semantic rules under the default [`IngestLimits`].
    pub fn validate(&self) -> Result<(), SampleError> {
        self.validate_with(&IngestLimits::default())
    }

    /// Checks the semantic rules: ids non-empty, at least one and at most
    /// `limits.max_signals_per_sample` signals, names non-empty, unique, at most
    /// `limits.max_name_bytes` long and free of control characters, all numbers finite; at most
    /// `limits.max_signals_per_sample` tags, names and values bounded like signal names.
    pub fn validate_with(&self, limits: &IngestLimits) -> Result<(), SampleError> {
        for (field, id) in [("build_id", &self.build_id), ("source_id", &self.source_id)] {
            if id.is_empty() {
                return Err(SampleError::EmptyId { field });
            }
            check_name(field, id, limits)?;
        }
        if self.signals.is_empty() {
            return Err(SampleError::NoSignals);
        }
        if self.signals.len() > limits.max_signals_per_sample {
            return Err(SampleError::TooManySignals { count: self.signals.len(), max: limits.max_signals_per_sample });
        }
        if let Some(p) = self.position
            && !(p.x.is_finite() && p.y.is_finite() && p.z.is_finite())
        {
            return Err(SampleError::NonFinitePosition { x: p.x, y: p.y, z: p.z });
        }
        for (name, value) in self.signals.iter() {
            if name.is_empty() {
                return Err(SampleError::EmptySignalName);
            }
            check_name("signal name", name, limits)?;
            if !value.is_finite() {
                return Err(SampleError::NonFiniteSignal { name: name.to_owned(), value });
            }
        }
        if let Some(name) = self.signals.first_duplicate() {
            return Err(SampleError::DuplicateSignal { name: name.to_owned() });
        }
        if self.tags.len() > limits.max_signals_per_sample {
            return Err(SampleError::TooManyTags { count: self.tags.len(), max: limits.max_signals_per_sample });
        }
        for (name, value) in self.tags.iter() {
            check_name("tag name", name, limits)?;
            if name.is_empty() || name.contains('.') || name.starts_with('$') {
                return Err(SampleError::TagName { name: name.escape_debug().to_string() });
            }
            check_name("tag value", value, limits)?;
        }
        Ok(())
    }
}

/// Refuses an over-long or control-character name (callers refuse empty ones with their own error).
fn check_name(field: &'static str, name: &str, limits: &IngestLimits) -> Result<(), SampleError> {
    if name.len() > limits.max_name_bytes {
        let prefix: String = name.chars().take(32).filter(|c| !c.is_control()).collect();
        return Err(SampleError::NameTooLong { field, prefix, len: name.len(), max: limits.max_name_bytes });
    }
    if name.chars().any(char::is_control) {
        return Err(SampleError::ControlCharacter { field, name: name.escape_debug().to_string() });
    }
    Ok(())
}

/// The id used when a generic message names no build or source.
pub const UNKNOWN: &str = "unknown";

/// An ordered batch of samples; the unit that flows through the pipeline.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SampleBatch {
    /// The samples, in arrival order.
    pub samples: Vec<Sample>,
}

impl SampleBatch {
    /// A batch of the given samples.
    pub fn new(samples: Vec<Sample>) -> SampleBatch {
        SampleBatch { samples }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The values of one signal with the positions they were measured at, skipping samples that lack either.
    pub fn signal_column(&self, name: &str) -> (Vec<f64>, Vec<Point3<f64>>) {
        let mut values = Vec::with_capacity(self.samples.len());
        let mut positions = Vec::with_capacity(self.samples.len());
        for s in &self.samples {
            if let (Some(v), Some(p)) = (s.signals.get(name), s.position) {
                values.push(v);
                positions.push(p);
            }
        }
        (values, positions)
    }
}

impl From<Vec<Sample>> for SampleBatch {
    fn from(samples: Vec<Sample>) -> SampleBatch {
        SampleBatch { samples }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_signals(names: &[&str]) -> Sample {
        let signals: Signals = names.iter().map(|n| (*n, 1.0)).collect();
        Sample::new(Timestamp::from_nanos(1), Point3::new(1.0, 2.0, 3.0), signals)
    }

    #[test]
    fn limits_refuse_many_signals_long_names_and_control_characters_naming_the_limit() {
        let limits = IngestLimits { max_signals_per_sample: 3, max_name_bytes: 8, ..IngestLimits::default() };
        let many = with_signals(&["a", "b", "c", "d"]);
        let e = many.validate_with(&limits).unwrap_err();
        assert_eq!(e, SampleError::TooManySignals { count: 4, max: 3 });
        assert!(e.to_string().contains("max_signals_per_sample"));
        let long = with_signals(&["temperature_in_kelvin"]);
        assert!(long.validate_with(&limits).unwrap_err().to_string().contains("max_name_bytes"));
        for bad in ["tem\0p", "a\nb", "\u{1b}[31m"] {
            let e = with_signals(&[bad]).validate_with(&limits).unwrap_err();
            assert!(matches!(e, SampleError::ControlCharacter { .. }), "{bad:?}: {e}");
        }
        let mut id = with_signals(&["t"]);
        id.build_id = "b\0".into();
        assert!(matches!(id.validate_with(&limits), Err(SampleError::ControlCharacter { field: "build_id", .. })));
        assert!(with_signals(&["a", "b", "c"]).validate_with(&limits).is_ok());
    }

    #[test]
    fn duplicates_are_found_among_many_signals_without_quadratic_work() {
        let names: Vec<String> = (0..50_000).map(|i| format!("f{i}")).collect();
        let mut signals: Signals = names.iter().map(|n| (n.as_str(), 1.0)).collect();
        assert_eq!(signals.first_duplicate(), None);
        signals.push("f123", 2.0);
        assert_eq!(signals.first_duplicate(), Some("f123"));
        let s = Sample::new(Timestamp::from_nanos(1), Point3::origin(), signals);
        assert!(matches!(s.validate_with(&IngestLimits::UNBOUNDED), Err(SampleError::DuplicateSignal { .. })));
    }

    #[test]
    fn content_ids_differ_for_samples_differing_in_any_field_and_are_stable() {
        let base = with_signals(&["t"]);
        let mut variants = vec![base.clone()];
        let mut v = base.clone();
        v.signals = [("t", 2.0)].into_iter().collect();
        variants.push(v);
        let mut v = base.clone();
        v.build_id = "a/b".into();
        v.source_id = "c".into();
        variants.push(v);
        let mut v = base.clone();
        v.build_id = "a".into();
        v.source_id = "b/c".into();
        variants.push(v);
        let mut v = base.clone();
        v.layer = 1;
        variants.push(v);
        let mut v = base.clone();
        v.position = None;
        variants.push(v);
        let mut v = base.clone();
        v.tags.insert("material", "Ti64");
        variants.push(v);
        let ids: std::collections::HashSet<String> = variants.iter().map(Sample::content_id).collect();
        assert_eq!(ids.len(), variants.len(), "every variant has its own id");
        assert_eq!(base.content_id(), base.clone().content_id());
        // Fixed by the XXH3 specification: a changed id would re-store every replayed sample.
        assert_eq!(base.content_id(), "8000000000000001c9bc5c0a06e8b73c");
    }
}
