//! The message schema: how a producer's JSON maps to samples — the `[schema]` section of the
//! configuration ([`SchemaConfig`]), compiled once into a [`Schema`] that decodes messages.
//!
//! Field names with aliases for build, source, layer, time and position; every numeric field
//! or an allow-list as signals, each with an optional unit converted to its canonical unit;
//! text fields kept as tags, ignored or refused, as declared; times as RFC 3339, naive ISO-8601
//! in a zone, or epoch numbers in a declared unit; an envelope path; rows, arrays of rows and
//! columnar batches. Every refusal names the field and the rule (docs/SCHEMA.md).

mod map;
mod node;
mod times;
mod units;

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub(crate) use node::Node;
pub use times::EpochUnit;
pub use units::{Conversion, Unit, resolve as resolve_unit};

use crate::error::{CodecError, FieldError};
use crate::limits::IngestLimits;
use crate::sample::{Sample, UNKNOWN};
use crate::time::Timestamp;
use times::{TimeReader, Zone};

/// How an object in a message is read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// A columnar batch when its time, x, y, z or any signal field holds an array; else one sample.
    #[default]
    Auto,
    /// Always one sample per object.
    Rows,
    /// Always a columnar batch: arrays are columns, scalars apply to every sample.
    Columns,
}

/// Where a sample's build comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuildFrom {
    /// A field of `build_fields`, else `default_build`.
    #[default]
    Field,
    /// The Kafka record's key (UTF-8).
    KafkaKey,
    /// Always `default_build` (one configuration per topic, so a constant per topic).
    Constant,
}

/// Where a sample's layer comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerFrom {
    /// A field of `layer_fields`, else 0.
    #[default]
    Field,
    /// `round((z - first_layer_z_mm) / layer_thickness_mm)`, from the sample's z.
    Z,
}

/// What happens to a text (or boolean) field that is no declared role.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TextPolicy {
    /// The message is refused, naming the field (the default: declared, not guessed).
    #[default]
    Refuse,
    /// The field is dropped.
    Ignore,
    /// The field is kept as a tag of the same name.
    Tags,
}

/// Which numeric fields are signals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SignalSelection {
    /// Every numeric field that is no other role (the default).
    #[default]
    All,
    /// Only these; other numeric fields are dropped.
    Only(Vec<String>),
}

impl Serialize for SignalSelection {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            SignalSelection::All => serializer.serialize_str("all"),
            SignalSelection::Only(names) => names.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for SignalSelection {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<SignalSelection, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Text(String),
            List(Vec<String>),
        }
        Ok(match Form::deserialize(deserializer)? {
            Form::Text(t) if t.trim() == "all" => SignalSelection::All,
            // `QADF_SCHEMA_SIGNALS=temperature,power` arrives as one string.
            Form::Text(t) => SignalSelection::Only(t.split(',').map(|s| s.trim().to_owned()).collect()),
            Form::List(names) => SignalSelection::Only(names),
        })
    }
}

/// The `[schema]` section of the configuration: how a JSON message maps to samples.
///
/// The defaults read the canonical form and the Python original's shapes unchanged (see
/// docs/SCHEMA.md): `sensor_id` is the source, naive times are UTC, epoch numbers are seconds,
/// a missing layer is 0, a missing build is `unknown`. Bincode messages are always canonical.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchemaConfig {
    /// Dotted path to the samples inside each message (`payload.data`); empty: the message itself.
    pub envelope: String,
    /// How an object is read: `auto`, `rows` or `columns`.
    pub layout: Layout,
    /// Where the build comes from: `field`, `kafka_key` or `constant`.
    pub build_from: BuildFrom,
    /// Fields naming the build. Default `["build_id", "build"]`.
    pub build_fields: Vec<String>,
    /// The build when the message names none (and the constant of `build_from = "constant"`). Default `unknown`.
    pub default_build: String,
    /// Fields naming the source. Default `["source_id", "sensor_id"]`.
    pub source_fields: Vec<String>,
    /// The source when the message names none. Default `unknown`.
    pub default_source: String,
    /// Where the layer comes from: `field` or `z`.
    pub layer_from: LayerFrom,
    /// Fields holding the layer number. Default `["layer"]`.
    pub layer_fields: Vec<String>,
    /// Layer thickness in mm, for `layer_from = "z"`. Default 0.03.
    pub layer_thickness_mm: f64,
    /// Height of layer 0 in mm, for `layer_from = "z"`. Default 0.
    pub first_layer_z_mm: f64,
    /// Fields holding the time. Default `["timestamp", "time", "ts", "t"]`.
    pub timestamp_fields: Vec<String>,
    /// Unit of epoch numbers: `seconds`, `milliseconds`, `microseconds`, `nanoseconds` or `infer`. Default `seconds`.
    pub epoch_unit: EpochUnit,
    /// Zone of naive ISO-8601 times: `UTC`, an offset (`+01:00`) or an IANA name. Default `UTC`.
    pub time_zone: String,
    /// Fields holding the position as `[x, y, z]` or `{"x", "y", "z"}`. Default `["position"]`.
    pub position_fields: Vec<String>,
    /// Fields holding x. Default `["x"]`.
    pub x_fields: Vec<String>,
    /// Fields holding y. Default `["y"]`.
    pub y_fields: Vec<String>,
    /// Fields holding z. Default `["z"]`.
    pub z_fields: Vec<String>,
    /// Unit of positions, converted to mm. Default `mm`.
    pub position_unit: String,
    /// Which numeric fields are signals: `"all"` or a list of names. Default `"all"`.
    pub signals: SignalSelection,
    /// Fields holding a nested `{name: number}` map of signals (the canonical form). Default `["signals"]`.
    pub signal_map_fields: Vec<String>,
    /// Fields kept as tags (text, stored with the sample, usable in queries). Default none.
    pub tag_fields: Vec<String>,
    /// Fields holding a nested `{name: text}` map of tags (the canonical form). Default `["tags"]`.
    pub tag_map_fields: Vec<String>,
    /// Text or boolean fields that are no declared role: `refuse`, `ignore` or `tags`. Default `refuse`.
    pub other_text: TextPolicy,
    /// Unit per signal (`temperature = "degC"`), converted to the canonical unit of its kind.
    pub units: BTreeMap<String, String>,
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

impl Default for SchemaConfig {
    fn default() -> SchemaConfig {
        SchemaConfig {
            envelope: String::new(),
            layout: Layout::Auto,
            build_from: BuildFrom::Field,
            build_fields: names(&["build_id", "build"]),
            default_build: UNKNOWN.to_owned(),
            source_fields: names(&["source_id", "sensor_id"]),
            default_source: UNKNOWN.to_owned(),
            layer_from: LayerFrom::Field,
            layer_fields: names(&["layer"]),
            layer_thickness_mm: 0.03,
            first_layer_z_mm: 0.0,
            timestamp_fields: names(&["timestamp", "time", "ts", "t"]),
            epoch_unit: EpochUnit::Seconds,
            time_zone: "UTC".to_owned(),
            position_fields: names(&["position"]),
            x_fields: names(&["x"]),
            y_fields: names(&["y"]),
            z_fields: names(&["z"]),
            position_unit: "mm".to_owned(),
            signals: SignalSelection::All,
            signal_map_fields: names(&["signals"]),
            tag_fields: Vec::new(),
            tag_map_fields: names(&["tags"]),
            other_text: TextPolicy::Refuse,
            units: BTreeMap::new(),
        }
    }
}

/// What a message field is, once the schema has named it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Role {
    Build,
    Source,
    Layer,
    Time,
    Position,
    X,
    Y,
    Z,
    SignalMap,
    TagMap,
    Tag,
    /// A declared signal (listed, or given a unit).
    Signal(Conversion),
}

impl Role {
    fn describe(self) -> &'static str {
        match self {
            Role::Build => "build",
            Role::Source => "source",
            Role::Layer => "layer",
            Role::Time => "time",
            Role::Position => "position",
            Role::X => "x",
            Role::Y => "y",
            Role::Z => "z",
            Role::SignalMap => "signal map",
            Role::TagMap => "tag map",
            Role::Tag => "tag",
            Role::Signal(_) => "signal",
        }
    }
}

/// Where a message came from, for what the schema may take from it.
#[derive(Clone, Copy, Debug, Default)]
pub struct RecordContext<'a> {
    /// The Kafka record's timestamp: the time of a sample that gives none.
    pub timestamp: Option<Timestamp>,
    /// The Kafka record's key (`build_from = "kafka_key"`).
    pub key: Option<&'a [u8]>,
}

/// A compiled [`SchemaConfig`]: decodes JSON messages into samples.
#[derive(Clone, Debug, PartialEq)]
pub struct Schema {
    envelope: Vec<String>,
    layout: Layout,
    roles: Vec<(String, Role)>,
    all_signals: bool,
    build_from: BuildFrom,
    default_build: String,
    default_source: String,
    layer_from: LayerFrom,
    layer_thickness_mm: f64,
    first_layer_z_mm: f64,
    time: TimeReader,
    position_unit: Conversion,
    other_text: TextPolicy,
    units: Vec<(String, Unit)>,
}

impl Default for Schema {
    fn default() -> Schema {
        Schema::compile(&SchemaConfig::default()).expect("the default schema is valid")
    }
}

impl Schema {
    /// Compiles `config`, naming every bad setting (fields as `schema.<name>`).
    pub fn compile(config: &SchemaConfig) -> Result<Schema, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut error = |field: &str, reason: String| {
            errors.push(FieldError { field: format!("schema.{field}"), reason });
        };
        let mut units = Vec::new();
        for (signal, unit) in &config.units {
            match units::resolve(unit) {
                Ok(u) => units.push((signal.clone(), u)),
                Err(e) => error(&format!("units.{signal}"), e),
            }
        }
        let conversion_of = |name: &str| unit_in(&units, name).map_or(Conversion::IDENTITY, |u| u.conversion);
        let mut roles: Vec<(String, Role)> = Vec::new();
        let lists: [(&str, &Vec<String>, Role); 11] = [
            ("build_fields", &config.build_fields, Role::Build),
            ("source_fields", &config.source_fields, Role::Source),
            ("layer_fields", &config.layer_fields, Role::Layer),
            ("timestamp_fields", &config.timestamp_fields, Role::Time),
            ("position_fields", &config.position_fields, Role::Position),
            ("x_fields", &config.x_fields, Role::X),
            ("y_fields", &config.y_fields, Role::Y),
            ("z_fields", &config.z_fields, Role::Z),
            ("signal_map_fields", &config.signal_map_fields, Role::SignalMap),
            ("tag_fields", &config.tag_fields, Role::Tag),
            ("tag_map_fields", &config.tag_map_fields, Role::TagMap),
        ];
        for (setting, fields, role) in lists {
            for field in fields {
                if field.is_empty() {
                    error(setting, "holds an empty field name".to_owned());
                } else if let Some((_, other)) = roles.iter().find(|(n, _)| n == field) {
                    error(setting, format!("`{field}` is already the {} field", other.describe()));
                } else {
                    roles.push((field.clone(), role));
                }
            }
        }
        let all_signals = match &config.signals {
            SignalSelection::All => true,
            SignalSelection::Only(list) => {
                for name in list {
                    if let Some((_, other)) = roles.iter().find(|(n, _)| n == name) {
                        error("signals", format!("`{name}` is already the {} field", other.describe()));
                    } else if name.is_empty() {
                        error("signals", "holds an empty name".to_owned());
                    } else {
                        roles.push((name.clone(), Role::Signal(conversion_of(name))));
                    }
                }
                false
            }
        };
        for (signal, unit) in &units {
            if let Some((_, role)) = roles.iter().find(|(n, _)| n == signal) {
                if !matches!(role, Role::Signal(_)) {
                    error(
                        &format!("units.{signal}"),
                        format!("`{signal}` is the {} field, not a signal", role.describe()),
                    );
                }
            } else if all_signals {
                roles.push((signal.clone(), Role::Signal(unit.conversion)));
            } else {
                error(&format!("units.{signal}"), format!("`{signal}` is not among schema.signals"));
            }
        }
        let position_unit = match units::resolve(&config.position_unit) {
            Ok(u) if u.canonical == "mm" => u.conversion,
            Ok(_) => {
                error("position_unit", format!("`{}` is not a length", config.position_unit));
                Conversion::IDENTITY
            }
            Err(e) => {
                error("position_unit", e);
                Conversion::IDENTITY
            }
        };
        let zone = Zone::parse(&config.time_zone).unwrap_or_else(|e| {
            error("time_zone", e);
            Zone::parse("UTC").expect("UTC")
        });
        if config.layer_from == LayerFrom::Z {
            if !(config.layer_thickness_mm.is_finite() && config.layer_thickness_mm > 0.0) {
                error("layer_thickness_mm", "must be a positive number of mm when layer_from = \"z\"".to_owned());
            }
            if !config.first_layer_z_mm.is_finite() {
                error("first_layer_z_mm", "must be a finite number of mm".to_owned());
            }
        }
        if config.default_build.is_empty() {
            error("default_build", "must not be empty".to_owned());
        }
        if config.default_source.is_empty() {
            error("default_source", "must not be empty".to_owned());
        }
        let envelope: Vec<String> = if config.envelope.is_empty() {
            Vec::new()
        } else {
            config.envelope.split('.').map(str::to_owned).collect()
        };
        if envelope.iter().any(String::is_empty) {
            error(
                "envelope",
                format!("`{}` has an empty step: give a dotted path such as payload.data", config.envelope),
            );
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Schema {
            envelope,
            layout: config.layout,
            roles,
            all_signals,
            build_from: config.build_from,
            default_build: config.default_build.clone(),
            default_source: config.default_source.clone(),
            layer_from: config.layer_from,
            layer_thickness_mm: config.layer_thickness_mm,
            first_layer_z_mm: config.first_layer_z_mm,
            time: TimeReader { unit: config.epoch_unit, zone },
            position_unit,
            other_text: config.other_text,
            units,
        })
    }

    /// The canonical unit a signal is stored in, when the schema declares one.
    pub fn unit_of(&self, signal: &str) -> Option<&str> {
        unit_in(&self.units, signal).map(|u| u.canonical.as_str())
    }

    /// How a signal's values are converted to its canonical unit (identity when none is declared).
    pub(super) fn conversion(&self, signal: &str) -> Conversion {
        unit_in(&self.units, signal).map_or(Conversion::IDENTITY, |u| u.conversion)
    }

    /// Decodes one JSON message (the caller has checked its size and UTF-8; depth is checked here).
    pub fn decode(
        &self,
        text: &str,
        record: &RecordContext<'_>,
        limits: &IngestLimits,
    ) -> Result<Vec<Sample>, CodecError> {
        let root = node::parse(text, limits.max_json_depth).map_err(|e| match e {
            node::ParseError::Syntax(e) => CodecError::Json { line: e.line, column: e.column, message: e.message },
            node::ParseError::TooDeep => CodecError::TooDeep { max: limits.max_json_depth },
        })?;
        self.decode_node(&root, record, limits)
    }

    /// Decodes a parsed message.
    pub(crate) fn decode_node(
        &self,
        root: &Node,
        record: &RecordContext<'_>,
        limits: &IngestLimits,
    ) -> Result<Vec<Sample>, CodecError> {
        map::samples(self, root, record, limits.max_samples_per_message)
    }
}

#[cfg(test)]
mod tests;

/// The declared unit of a signal, if any.
fn unit_in<'u>(units: &'u [(String, Unit)], signal: &str) -> Option<&'u Unit> {
    units.iter().find(|(n, _)| n == signal).map(|(_, u)| u)
}
