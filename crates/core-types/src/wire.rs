//! Serde forms of [`Sample`]: one canonical struct form written by every encoder; JSON input
//! goes through the default message schema ([`crate::schema`]), bincode input is canonical.

use std::sync::OnceLock;

use compact_str::CompactString;
use nalgebra::Point3;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

use crate::IngestLimits;
use crate::sample::{Sample, Signals};
use crate::schema::{RecordContext, Schema};
use crate::tags::Tags;
use crate::time::Timestamp;

/// The canonical field layout, written by every encoder and read by binary decoders. JSON
/// leaves out empty tags; bincode, which is not self-describing, always writes them.
#[derive(Serialize)]
struct SampleRef<'a> {
    build_id: &'a str,
    source_id: &'a str,
    layer: u32,
    timestamp: Timestamp,
    position: Option<[f64; 3]>,
    signals: &'a Signals,
    #[serde(skip_serializing_if = "skip_tags", serialize_with = "tags_only")]
    tags: (bool, &'a Tags),
}

/// The tags field: `(human_readable, tags)`, skipped for JSON when empty.
fn skip_tags(tags: &(bool, &Tags)) -> bool {
    tags.0 && tags.1.is_empty()
}

fn tags_only<S: Serializer>(tags: &(bool, &Tags), serializer: S) -> Result<S::Ok, S::Error> {
    tags.1.serialize(serializer)
}

#[derive(Deserialize)]
struct SampleOwned {
    build_id: CompactString,
    source_id: CompactString,
    layer: u32,
    timestamp: Timestamp,
    position: Option<[f64; 3]>,
    signals: Signals,
    tags: Tags,
}

impl Serialize for Sample {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let tags = (serializer.is_human_readable(), &self.tags);
        SampleRef {
            build_id: &self.build_id,
            source_id: &self.source_id,
            layer: self.layer,
            timestamp: self.timestamp,
            position: self.position.map(|p| [p.x, p.y, p.z]),
            signals: &self.signals,
            tags,
        }
        .serialize(serializer)
    }
}

/// The default schema, compiled once.
pub(crate) fn default_schema() -> &'static Schema {
    static DEFAULT: OnceLock<Schema> = OnceLock::new();
    DEFAULT.get_or_init(Schema::default)
}

impl<'de> Deserialize<'de> for Sample {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Sample, D::Error> {
        if deserializer.is_human_readable() {
            // One JSON object through the default schema (a columnar batch is refused here).
            let node = crate::schema::Node::deserialize(deserializer)?;
            if !matches!(node, crate::schema::Node::Object(_)) {
                return Err(de::Error::custom("a sample is a JSON object"));
            }
            let mut samples = default_schema()
                .decode_node(&node, &RecordContext::default(), &IngestLimits::UNBOUNDED)
                .map_err(de::Error::custom)?;
            match (samples.pop(), samples.is_empty()) {
                (Some(sample), true) => Ok(sample),
                _ => Err(de::Error::custom("expected one sample, found a columnar batch")),
            }
        } else {
            let s = SampleOwned::deserialize(deserializer)?;
            Ok(Sample {
                build_id: s.build_id,
                source_id: s.source_id,
                layer: s.layer,
                timestamp: s.timestamp,
                position: s.position.map(Point3::from),
                signals: s.signals,
                tags: s.tags,
            })
        }
    }
}
