//! Serde forms of [`Sample`]: one canonical struct form, plus the generic JSON mapping on input.

use std::fmt;

use nalgebra::Point3;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::sample::{Sample, Signals, UNKNOWN};
use crate::time::Timestamp;

/// The canonical field layout, written by every encoder and read by binary decoders.
#[derive(Serialize)]
struct SampleRef<'a> {
    build_id: &'a str,
    source_id: &'a str,
    layer: u32,
    timestamp: Timestamp,
    position: Option<[f64; 3]>,
    signals: &'a Signals,
}

#[derive(Deserialize)]
struct SampleOwned {
    build_id: String,
    source_id: String,
    layer: u32,
    timestamp: Timestamp,
    position: Option<[f64; 3]>,
    signals: Signals,
}

impl Serialize for Sample {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        SampleRef {
            build_id: &self.build_id,
            source_id: &self.source_id,
            layer: self.layer,
            timestamp: self.timestamp,
            position: self.position.map(|p| [p.x, p.y, p.z]),
            signals: &self.signals,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Sample {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Sample, D::Error> {
        if deserializer.is_human_readable() {
            deserializer.deserialize_map(SampleVisitor { default_timestamp: None })
        } else {
            let s = SampleOwned::deserialize(deserializer)?;
            Ok(Sample {
                build_id: s.build_id,
                source_id: s.source_id,
                layer: s.layer,
                timestamp: s.timestamp,
                position: s.position.map(Point3::from),
                signals: s.signals,
            })
        }
    }
}

/// Reads both the canonical object and generic objects such as `{"value": 1.0}`; a sample
/// without a timestamp gets `default_timestamp` (the Kafka record's), or the decode time without one.
struct SampleVisitor {
    default_timestamp: Option<Timestamp>,
}

/// Deserializes one JSON sample whose missing timestamp is the given one.
#[derive(Clone, Copy)]
pub(crate) struct SampleSeed(pub(crate) Option<Timestamp>);

impl<'de> de::DeserializeSeed<'de> for SampleSeed {
    type Value = Sample;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Sample, D::Error> {
        deserializer.deserialize_map(SampleVisitor { default_timestamp: self.0 })
    }
}

/// Deserializes a JSON array of samples, refusing more than `max` of them before allocating them.
pub(crate) struct BatchSeed {
    pub(crate) sample: SampleSeed,
    pub(crate) max: usize,
}

/// The error text a [`BatchSeed`] gives when the array is longer than its limit.
pub(crate) const TOO_MANY_SAMPLES: &str = "qadf: too many samples";

impl<'de> de::DeserializeSeed<'de> for BatchSeed {
    type Value = Vec<Sample>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Vec<Sample>, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for BatchSeed {
    type Value = Vec<Sample>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of sample objects")
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Sample>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(sample) = seq.next_element_seed(self.sample)? {
            if out.len() == self.max {
                return Err(de::Error::custom(TOO_MANY_SAMPLES));
            }
            out.push(sample);
        }
        Ok(out)
    }
}

/// A JSON field value that is either a number (a generic signal) or something else (an error).
enum Scalar {
    Number(f64),
    Other(&'static str),
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Scalar, D::Error> {
        struct ScalarVisitor;
        impl<'de> Visitor<'de> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar::Number(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Number(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar::Number(v as f64))
            }
            fn visit_str<E>(self, _: &str) -> Result<Scalar, E> {
                Ok(Scalar::Other("a string"))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Scalar, E> {
                Ok(Scalar::Other("a boolean"))
            }
            fn visit_unit<E>(self) -> Result<Scalar, E> {
                Ok(Scalar::Other("null"))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other("an array"))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other("an object"))
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

impl<'de> Visitor<'de> for SampleVisitor {
    type Value = Sample;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sample object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Sample, A::Error> {
        let mut build_id = None;
        let mut source_id = None;
        let mut layer = None;
        let mut timestamp = None;
        let mut position: Option<Option<[f64; 3]>> = None;
        let mut xyz: [Option<f64>; 3] = [None; 3];
        let mut signals = Signals::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "build_id" => set_once(&mut build_id, map.next_value()?, "build_id")?,
                "source_id" => set_once(&mut source_id, map.next_value()?, "source_id")?,
                "layer" => set_once(&mut layer, map.next_value()?, "layer")?,
                "timestamp" => set_once(&mut timestamp, map.next_value()?, "timestamp")?,
                "position" => set_once(&mut position, map.next_value()?, "position")?,
                "x" => set_once(&mut xyz[0], map.next_value()?, "x")?,
                "y" => set_once(&mut xyz[1], map.next_value()?, "y")?,
                "z" => set_once(&mut xyz[2], map.next_value()?, "z")?,
                "signals" => {
                    for (name, value) in map.next_value::<Signals>()?.iter() {
                        signals.push(name, value);
                    }
                }
                other => match map.next_value::<Scalar>()? {
                    Scalar::Number(v) => signals.push(other, v),
                    Scalar::Other(kind) => {
                        return Err(de::Error::custom(format!(
                            "field `{other}` is {kind}: only numbers can be generic signals"
                        )));
                    }
                },
            }
        }
        let position = match (position.flatten(), xyz) {
            (Some(p), [None, None, None]) => Some(Point3::from(p)),
            (None, [Some(x), Some(y), Some(z)]) => Some(Point3::new(x, y, z)),
            (None, [None, None, None]) => None,
            (Some(_), _) => return Err(de::Error::custom("give either `position` or `x`/`y`/`z`, not both")),
            (None, _) => return Err(de::Error::custom("`x`, `y` and `z` must be given together")),
        };
        Ok(Sample {
            build_id: build_id.unwrap_or_else(|| UNKNOWN.to_owned()),
            source_id: source_id.unwrap_or_else(|| UNKNOWN.to_owned()),
            layer: layer.unwrap_or(0),
            timestamp: timestamp.or(self.default_timestamp).unwrap_or_else(Timestamp::now),
            position,
            signals,
        })
    }
}

fn set_once<T, E: de::Error>(slot: &mut Option<T>, value: T, field: &'static str) -> Result<(), E> {
    if slot.replace(value).is_some() {
        return Err(E::duplicate_field(field));
    }
    Ok(())
}
