//! The in-situ process monitoring sample model: samples, named signals and batches.

use nalgebra::Point3;
use serde::{Deserialize, Serialize};

use crate::error::SampleError;
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

/// Named signal values of one sample, in the order they were given.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Signals(Vec<(String, f64)>);

impl Signals {
    /// An empty set of signals.
    pub fn new() -> Signals {
        Signals(Vec::new())
    }

    /// Adds a signal (duplicates are caught by [`Sample::validate`]).
    pub fn push(&mut self, name: impl Into<String>, value: f64) {
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
}

impl<N: Into<String>> FromIterator<(N, f64)> for Signals {
    fn from_iter<I: IntoIterator<Item = (N, f64)>>(iter: I) -> Signals {
        Signals(iter.into_iter().map(|(n, v)| (n.into(), v)).collect())
    }
}

impl Serialize for Signals {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(n, v)| (n, v)))
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
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(2).min(64));
                while let Some((name, value)) = map.next_entry::<String, f64>()? {
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
    pub build_id: String,
    /// The sensor or machine channel that produced the sample.
    pub source_id: String,
    /// Layer number, counted from 0 at the build plate.
    pub layer: u32,
    /// When the sample was measured (UTC).
    pub timestamp: Timestamp,
    /// Scanner position in mm, or `None` when the message carried none (it then cannot be voxelized).
    pub position: Option<Point3<f64>>,
    /// Named signal values.
    pub signals: Signals,
}

impl Sample {
    /// A sample at a position with the given signals; ids default to `"unknown"`, layer to 0.
    pub fn new(timestamp: Timestamp, position: Point3<f64>, signals: Signals) -> Sample {
        Sample {
            build_id: UNKNOWN.to_owned(),
            source_id: UNKNOWN.to_owned(),
            layer: 0,
            timestamp,
            position: Some(position),
            signals,
        }
    }

    /// Checks the semantic rules: at least one signal, names non-empty and unique, all numbers finite.
    pub fn validate(&self) -> Result<(), SampleError> {
        if self.build_id.is_empty() {
            return Err(SampleError::EmptyId { field: "build_id" });
        }
        if self.source_id.is_empty() {
            return Err(SampleError::EmptyId { field: "source_id" });
        }
        if self.signals.is_empty() {
            return Err(SampleError::NoSignals);
        }
        if let Some(p) = self.position
            && !(p.x.is_finite() && p.y.is_finite() && p.z.is_finite())
        {
            return Err(SampleError::NonFinitePosition { x: p.x, y: p.y, z: p.z });
        }
        for (i, (name, value)) in self.signals.iter().enumerate() {
            if name.is_empty() {
                return Err(SampleError::EmptySignalName);
            }
            if !value.is_finite() {
                return Err(SampleError::NonFiniteSignal { name: name.to_owned(), value });
            }
            if self.signals.iter().take(i).any(|(earlier, _)| earlier == name) {
                return Err(SampleError::DuplicateSignal { name: name.to_owned() });
            }
        }
        Ok(())
    }
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
