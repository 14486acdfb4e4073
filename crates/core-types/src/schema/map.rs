//! From a parsed message to samples: the envelope, rows, arrays of rows and columnar batches.

use std::borrow::Cow;

use compact_str::CompactString;
use nalgebra::Point3;

use super::node::{Node, Num};
use super::{BuildFrom, LayerFrom, Layout, RecordContext, Role, Schema, TextPolicy};
use crate::error::CodecError;
use crate::sample::{Sample, Signals};
use crate::tags::Tags;
use crate::time::Timestamp;

/// Why one field of one sample is refused.
struct Refusal {
    field: String,
    rule: String,
}

fn refuse(field: &str, rule: impl Into<String>) -> Refusal {
    Refusal { field: field.escape_debug().to_string(), rule: rule.into() }
}

type Fields<'a> = [(Cow<'a, str>, Node<'a>)];

/// Every sample of a message, or the first refusal with the index of its sample.
pub(super) fn samples<'m>(
    schema: &Schema,
    root: &'m Node<'m>,
    record: &RecordContext<'_>,
    max_samples: usize,
) -> Result<Vec<Sample>, CodecError> {
    let as_error = |sample: usize, r: Refusal| CodecError::Schema { sample, field: r.field, rule: r.rule };
    let mut node = root;
    for (depth, step) in schema.envelope.iter().enumerate() {
        let path = schema.envelope[..=depth].join(".");
        let Node::Object(fields) = node else {
            let at =
                if depth == 0 { "the message".to_owned() } else { format!("`{}`", schema.envelope[..depth].join(".")) };
            return Err(as_error(
                0,
                refuse(&path, format!("{at} is {}, not an object (schema.envelope)", node.kind())),
            ));
        };
        node = match fields.iter().find(|(k, _)| k == step) {
            Some((_, inner)) => inner,
            None => return Err(as_error(0, refuse(&path, "is missing (schema.envelope)"))),
        };
    }
    let build = message_build(schema, record).map_err(|r| as_error(0, r))?;
    let mut out = Vec::new();
    let mut cache = RoleCache::default();
    let mut roles: Vec<Option<Role>> = Vec::new();
    let mut object = |fields: &'m Fields<'m>, out: &mut Vec<Sample>| -> Result<(), CodecError> {
        let first = out.len();
        roles.clear();
        roles.extend(fields.iter().enumerate().map(|(i, (k, _))| cache.role(schema, i, k)));
        if is_columnar(schema, fields, &roles) {
            let n = column_length(fields).map_err(|r| as_error(first, r))?;
            if first + n > max_samples {
                return Err(CodecError::TooManySamples { max: max_samples });
            }
            out.reserve(n);
            schema.columns(fields, &roles, n, &build, record, out).map_err(|(i, r)| as_error(first + i, r))?;
        } else {
            if first + 1 > max_samples {
                return Err(CodecError::TooManySamples { max: max_samples });
            }
            let row = fields.iter().zip(&roles).map(|((k, v), &role)| (k.as_ref(), v, role));
            out.push(schema.sample(row, &build, record).map_err(|r| as_error(first, r))?);
        }
        Ok(())
    };
    match node {
        Node::Object(fields) => object(fields, &mut out)?,
        Node::Array(items) => {
            if items.len() > max_samples {
                return Err(CodecError::TooManySamples { max: max_samples });
            }
            for item in items {
                match item {
                    Node::Object(fields) => object(fields, &mut out)?,
                    other => {
                        let rule = format!("is {}: an array of samples holds objects", other.kind());
                        return Err(as_error(out.len(), refuse(&format!("[{}]", out.len()), rule)));
                    }
                }
            }
        }
        Node::Ints(v) if v.is_empty() => {}
        other => {
            let field = if schema.envelope.is_empty() { "(message)".to_owned() } else { schema.envelope.join(".") };
            let rule = format!("is {}: give a sample object, an array of them or a columnar batch", other.kind());
            return Err(as_error(0, refuse(&field, rule)));
        }
    }
    Ok(out)
}

/// The build every sample of the message takes from outside its fields, if the schema says so.
fn message_build(schema: &Schema, record: &RecordContext<'_>) -> Result<Option<CompactString>, Refusal> {
    match schema.build_from {
        BuildFrom::Field => Ok(None),
        BuildFrom::Constant => Ok(Some(schema.default_build.as_str().into())),
        BuildFrom::KafkaKey => match record.key.map(std::str::from_utf8) {
            Some(Ok(key)) if !key.is_empty() => Ok(Some(key.into())),
            Some(Ok(_)) | None => Err(refuse("(Kafka key)", "is missing or empty; schema.build_from = \"kafka_key\"")),
            Some(Err(_)) => Err(refuse("(Kafka key)", "is not UTF-8; schema.build_from = \"kafka_key\"")),
        },
    }
}

/// Whether an object is a columnar batch (see [`Layout::Auto`]).
fn is_columnar(schema: &Schema, fields: &Fields, roles: &[Option<Role>]) -> bool {
    match schema.layout {
        Layout::Rows => false,
        Layout::Columns => true,
        Layout::Auto => fields.iter().zip(roles).any(|((_, value), role)| match role {
            Some(Role::Time | Role::X | Role::Y | Role::Z | Role::Signal(_)) => value.array_len().is_some(),
            None => schema.all_signals && matches!(value, Node::Ints(_) | Node::Floats(_)),
            Some(_) => false,
        }),
    }
}

/// The common length of the object's arrays (1 when it has none).
fn column_length(fields: &Fields) -> Result<usize, Refusal> {
    let mut length: Option<(usize, &str)> = None;
    for (name, value) in fields {
        let Some(len) = value.array_len() else { continue };
        match length {
            None => length = Some((len, name)),
            Some((n, first)) if n != len => {
                return Err(refuse(name, format!("has {len} values but `{first}` has {n}: columns are equally long")));
            }
            Some(_) => {}
        }
    }
    Ok(length.map_or(1, |(n, _)| n))
}

/// The roles of the last object's fields, by position: the objects of a message usually list
/// the same fields in the same order, so one comparison per field finds its role.
#[derive(Default)]
struct RoleCache<'m> {
    by_position: Vec<(&'m str, Option<Role>)>,
}

impl<'m> RoleCache<'m> {
    fn role(&mut self, schema: &Schema, i: usize, name: &'m str) -> Option<Role> {
        if let Some(&(cached, role)) = self.by_position.get(i)
            && cached == name
        {
            return role;
        }
        let role = schema.role(name);
        match i.cmp(&self.by_position.len()) {
            std::cmp::Ordering::Less => self.by_position[i] = (name, role),
            std::cmp::Ordering::Equal => self.by_position.push((name, role)),
            std::cmp::Ordering::Greater => {}
        }
        role
    }
}

/// How the values of a column are read.
#[derive(Clone, Copy)]
enum ColumnKind {
    /// A numeric signal column, with its conversion.
    Signal(super::Conversion),
    /// x, y or z.
    Axis(usize),
    /// Epoch numbers.
    Time,
    /// Anything else: a node per value.
    Each,
}

/// A field of a columnar batch read per sample: an array, or a signal given once.
struct Column<'f, 'n> {
    name: &'f str,
    value: &'f Node<'n>,
    role: Option<Role>,
    kind: ColumnKind,
}

impl Column<'_, '_> {
    /// Whether every value is a number of a kind read without a node.
    fn is_numeric(&self) -> bool {
        !matches!(self.kind, ColumnKind::Each)
            && matches!(self.value, Node::Floats(_) | Node::Ints(_) | Node::Float(_) | Node::Int(_))
    }

    /// The number at `i` of a numeric column (or the scalar).
    fn number(&self, i: usize) -> Option<Num> {
        match self.value {
            Node::Floats(v) => Some(Num::Float(v[i])),
            Node::Ints(v) => Some(Num::Int(v[i])),
            Node::Float(v) => Some(Num::Float(*v)),
            Node::Int(v) => Some(Num::Int(*v)),
            _ => None,
        }
    }

    /// Reads value `i` into the draft.
    fn read(&self, schema: &Schema, d: &mut Draft, i: usize) -> Result<(), Refusal> {
        match (self.kind, self.number(i)) {
            (ColumnKind::Signal(c), Some(v)) => d.signals.push(self.name, c.apply(v.as_f64())),
            (ColumnKind::Axis(k), Some(v)) if d.xyz[k].is_none() => d.xyz[k] = Some(v.as_f64()),
            (ColumnKind::Time, Some(v)) if d.time.is_none() => {
                d.time = Some(schema.time.number(v).map_err(|rule| refuse(self.name, rule))?);
            }
            _ => schema.field(d, self.name, &self.value.element(i), self.role)?,
        }
        Ok(())
    }
}

/// One sample's fields as read, before defaults.
#[derive(Clone, Default)]
struct Draft {
    build: Option<CompactString>,
    source: Option<CompactString>,
    layer: Option<u32>,
    time: Option<Timestamp>,
    position: Option<Point3<f64>>,
    xyz: [Option<f64>; 3],
    signals: Signals,
    tags: Tags,
}

fn set<T>(slot: &mut Option<T>, value: T, field: &str, role: Role) -> Result<(), Refusal> {
    match slot.replace(value) {
        Some(_) => Err(second(field, role)),
        None => Ok(()),
    }
}

/// The refusal of a field that gives a role the sample already has.
fn second(field: &str, role: Role) -> Refusal {
    refuse(field, format!("is a second {} field of this sample; give one", role.describe()))
}

impl Schema {
    /// The declared role of a field name, if any.
    pub(super) fn role(&self, name: &str) -> Option<Role> {
        self.roles.iter().find(|(n, _)| n == name).map(|&(_, r)| r)
    }

    /// One sample from its fields (names with values, roles looked up by the caller).
    fn sample<'n, 'v: 'n>(
        &self,
        fields: impl Iterator<Item = (&'n str, &'n Node<'v>, Option<Role>)>,
        build: &Option<CompactString>,
        record: &RecordContext<'_>,
    ) -> Result<Sample, Refusal> {
        let mut d = Draft::default();
        for (name, value, role) in fields {
            self.field(&mut d, name, value, role)?;
        }
        self.finish(d, build, record)
    }

    /// The samples of a columnar batch of `n`, appended to `out`: the scalars read once into a
    /// template, then each sample from the template and its index of every column. Numeric
    /// columns are read without building a node per value; when every column is one, each
    /// sample is built in place from the template.
    fn columns(
        &self,
        fields: &Fields,
        roles: &[Option<Role>],
        n: usize,
        build: &Option<CompactString>,
        record: &RecordContext<'_>,
        out: &mut Vec<Sample>,
    ) -> Result<(), (usize, Refusal)> {
        let mut template = Draft::default();
        let mut columns = Vec::new();
        for ((name, value), &role) in fields.iter().zip(roles) {
            // A signal given once for all samples is pushed per sample, so signals keep the
            // message's field order.
            let kind = self.column_kind(value, role);
            match (value.array_len(), kind) {
                (None, ColumnKind::Each) => self.field(&mut template, name, value, role).map_err(|r| (0, r))?,
                _ => columns.push(Column { name: name.as_ref(), value, role, kind }),
            }
        }
        if !columns.iter().all(Column::is_numeric) {
            for i in 0..n {
                let mut d = template.clone();
                for c in &columns {
                    c.read(self, &mut d, i).map_err(|r| (i, r))?;
                }
                out.push(self.finish(d, build, record).map_err(|r| (i, r))?);
            }
            return Ok(());
        }
        self.numeric_columns(&template, &columns, n, build, record, out)
    }

    /// An all-numeric batch: `n` samples laid out from the template, then filled one column at a
    /// time (one dispatch per column, not per value). The refusal returned is the one a
    /// sample-by-sample reading meets first: later columns are read only up to the first
    /// refused sample.
    fn numeric_columns(
        &self,
        template: &Draft,
        columns: &[Column],
        n: usize,
        build: &Option<CompactString>,
        record: &RecordContext<'_>,
        out: &mut Vec<Sample>,
    ) -> Result<(), (usize, Refusal)> {
        let signals = columns.iter().filter(|c| matches!(c.kind, ColumnKind::Signal(_))).count();
        let (build_id, source_id) = (self.build_id(template, build), self.source_id(template));
        let timestamp = template.time.or(record.timestamp).unwrap_or_else(Timestamp::now);
        let start = out.len();
        out.extend((0..n).map(|_| Sample {
            build_id: build_id.clone(),
            source_id: source_id.clone(),
            layer: 0,
            timestamp,
            position: None,
            signals: match template.signals.is_empty() {
                true => Signals::with_capacity(signals),
                false => template.signals.clone(),
            },
            tags: template.tags.clone(),
        }));
        let samples = &mut out[start..];
        let mut refused: Option<(usize, Refusal)> = None;
        let mut axes: [Option<&Column>; 3] = [None; 3];
        let mut timed = template.time.is_some();
        for c in columns {
            let limit = refused.as_ref().map_or(n, |(i, _)| *i);
            let mut refuse_at = |i: usize, r: Refusal| refused = Some((i, r));
            match c.kind {
                _ if limit == 0 => break,
                ColumnKind::Signal(conversion) => {
                    let name = CompactString::from(c.name);
                    for (i, s) in samples[..limit].iter_mut().enumerate() {
                        let v = c.number(i).map_or(f64::NAN, Num::as_f64);
                        s.signals.push(name.clone(), conversion.apply(v));
                    }
                }
                ColumnKind::Axis(k) => match template.xyz[k].is_some() || axes[k].is_some() {
                    true => refuse_at(0, second(c.name, [Role::X, Role::Y, Role::Z][k])),
                    false => axes[k] = Some(c),
                },
                ColumnKind::Time if timed => refuse_at(0, second(c.name, Role::Time)),
                ColumnKind::Time => {
                    timed = true;
                    for (i, s) in samples[..limit].iter_mut().enumerate() {
                        let Some(v) = c.number(i) else { continue };
                        match self.time.number(v) {
                            Ok(t) => s.timestamp = t,
                            Err(rule) => {
                                refuse_at(i, refuse(c.name, rule));
                                break;
                            }
                        }
                    }
                }
                ColumnKind::Each => {}
            }
        }
        let limit = refused.as_ref().map_or(n, |(i, _)| *i);
        for (i, s) in samples[..limit].iter_mut().enumerate() {
            let mut xyz = template.xyz;
            for (k, c) in axes.iter().enumerate() {
                if let Some(c) = c {
                    xyz[k] = c.number(i).map(Num::as_f64);
                }
            }
            match self.place(template.position, xyz, template.layer) {
                Ok(placed) => (s.position, s.layer) = placed,
                Err(r) => {
                    refused = Some((i, r));
                    break;
                }
            }
        }
        refused.map_or(Ok(()), Err)
    }

    /// How a column's values (or a scalar signal's) can be taken without a node each.
    fn column_kind(&self, value: &Node, role: Option<Role>) -> ColumnKind {
        let numeric = matches!(value, Node::Ints(_) | Node::Floats(_) | Node::Int(_) | Node::Float(_));
        let column = value.array_len().is_some();
        match role {
            Some(Role::Signal(c)) if numeric => ColumnKind::Signal(c),
            None if numeric && self.all_signals => ColumnKind::Signal(super::Conversion::IDENTITY),
            Some(Role::X) if column => ColumnKind::Axis(0),
            Some(Role::Y) if column => ColumnKind::Axis(1),
            Some(Role::Z) if column => ColumnKind::Axis(2),
            Some(Role::Time) if column && numeric => ColumnKind::Time,
            _ => ColumnKind::Each,
        }
    }

    /// Reads one field into the draft.
    fn field(&self, d: &mut Draft, name: &str, value: &Node, role: Option<Role>) -> Result<(), Refusal> {
        if matches!(value, Node::Null) {
            return Ok(());
        }
        {
            match role {
                Some(role @ Role::Build) => set(&mut d.build, id(name, value)?, name, role)?,
                Some(role @ Role::Source) => set(&mut d.source, id(name, value)?, name, role)?,
                Some(role @ Role::Layer) => set(&mut d.layer, layer(name, value)?, name, role)?,
                Some(role @ Role::Time) => {
                    let t = self.time.read(value).map_err(|rule| refuse(name, rule))?;
                    set(&mut d.time, t, name, role)?;
                }
                Some(role @ Role::Position) => set(&mut d.position, position(name, value)?, name, role)?,
                Some(role @ Role::X) => set(&mut d.xyz[0], coordinate(name, value)?, name, role)?,
                Some(role @ Role::Y) => set(&mut d.xyz[1], coordinate(name, value)?, name, role)?,
                Some(role @ Role::Z) => set(&mut d.xyz[2], coordinate(name, value)?, name, role)?,
                Some(Role::SignalMap) => self.signal_map(name, value, &mut d.signals)?,
                Some(Role::TagMap) => tag_map(name, value, &mut d.tags)?,
                Some(Role::Tag) => add_tag(&mut d.tags, name, text(name, value)?)?,
                Some(Role::Signal(conversion)) => match value.number() {
                    Some(v) => d.signals.push(name, conversion.apply(v)),
                    None => return Err(refuse(name, format!("is {}: a signal is a number", value.kind()))),
                },
                None => self.other(name, value, d)?,
            }
        }
        Ok(())
    }

    /// A field the schema does not name: a signal, a tag, dropped or refused.
    fn other(&self, name: &str, value: &Node, d: &mut Draft) -> Result<(), Refusal> {
        match value {
            Node::Int(_) | Node::Float(_) => {
                if self.all_signals {
                    d.signals.push(name, value.number().unwrap_or_default());
                }
                Ok(())
            }
            Node::Str(_) | Node::Bool(_) => match self.other_text {
                TextPolicy::Tags => add_tag(&mut d.tags, name, text(name, value)?),
                TextPolicy::Ignore => Ok(()),
                TextPolicy::Refuse => Err(refuse(
                    name,
                    format!(
                        "is {}: only numbers are signals; declare it in schema.tag_fields (or a role), or set schema.other_text = \"tags\" or \"ignore\"",
                        value.kind()
                    ),
                )),
            },
            _ if self.other_text == TextPolicy::Ignore || !self.all_signals => Ok(()),
            _ => Err(refuse(
                name,
                format!(
                    "is {}: only numbers are signals (declare the field, or set schema.other_text = \"ignore\")",
                    value.kind()
                ),
            )),
        }
    }

    fn signal_map(&self, field: &str, value: &Node, signals: &mut Signals) -> Result<(), Refusal> {
        let Node::Object(entries) = value else {
            return Err(refuse(field, format!("is {}: a signal map is an object of numbers", value.kind())));
        };
        for (name, v) in entries {
            match v {
                Node::Null => {}
                _ => match v.number() {
                    Some(n) => signals.push(name.as_ref(), self.conversion(name).apply(n)),
                    None => {
                        return Err(refuse(
                            &format!("{field}.{name}"),
                            format!("is {}: a signal is a number", v.kind()),
                        ));
                    }
                },
            }
        }
        Ok(())
    }

    /// The sample a draft makes, with the message's defaults.
    fn finish(&self, d: Draft, build: &Option<CompactString>, record: &RecordContext<'_>) -> Result<Sample, Refusal> {
        let (position, layer) = self.place(d.position, d.xyz, d.layer)?;
        Ok(Sample {
            build_id: self.build_id(&d, build),
            source_id: self.source_id(&d),
            layer,
            timestamp: d.time.or(record.timestamp).unwrap_or_else(Timestamp::now),
            position,
            signals: d.signals,
            tags: d.tags,
        })
    }

    /// The build of a draft: the message's (key or constant), its field's, or the default.
    fn build_id(&self, d: &Draft, build: &Option<CompactString>) -> CompactString {
        match (build, &d.build) {
            (Some(b), _) | (None, Some(b)) => b.clone(),
            (None, None) => self.default_build.as_str().into(),
        }
    }

    /// The source of a draft: its field's, or the default.
    fn source_id(&self, d: &Draft) -> CompactString {
        d.source.clone().unwrap_or_else(|| self.default_source.as_str().into())
    }

    /// The position (from one position field, or x, y and z together, in mm) and the layer
    /// (its field, or from z) of a sample.
    fn place(
        &self,
        position: Option<Point3<f64>>,
        xyz: [Option<f64>; 3],
        layer: Option<u32>,
    ) -> Result<(Option<Point3<f64>>, u32), Refusal> {
        let scale = |p: Point3<f64>| p.map(|c| self.position_unit.apply(c));
        let position = match (position, xyz) {
            (Some(p), [None, None, None]) => Some(scale(p)),
            (None, [Some(x), Some(y), Some(z)]) => Some(scale(Point3::new(x, y, z))),
            (None, [None, None, None]) => None,
            (Some(_), _) => return Err(refuse("position", "give either a position field or x/y/z, not both")),
            (None, _) => return Err(refuse("x/y/z", "x, y and z must be given together")),
        };
        let layer = match self.layer_from {
            LayerFrom::Field => layer.unwrap_or(0),
            LayerFrom::Z => {
                let Some(p) = position else {
                    return Err(refuse("z", "is missing: schema.layer_from = \"z\" needs a position"));
                };
                let n = ((p.z - self.first_layer_z_mm) / self.layer_thickness_mm).round();
                if !(0.0..=f64::from(u32::MAX)).contains(&n) {
                    return Err(refuse("z", format!("{} mm is below schema.first_layer_z_mm or too high", p.z)));
                }
                n as u32
            }
        };
        Ok((position, layer))
    }
}

fn id(field: &str, value: &Node) -> Result<CompactString, Refusal> {
    match value {
        Node::Str(s) => Ok(CompactString::from(s.as_ref())),
        Node::Int(i) => Ok(CompactString::from(i.to_string())),
        other => Err(refuse(field, format!("is {}: an id is text or an integer", other.kind()))),
    }
}

fn layer(field: &str, value: &Node) -> Result<u32, Refusal> {
    let n = match *value {
        Node::Int(i) => u32::try_from(i).ok(),
        Node::Float(f) if f.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&f) => Some(f as u32),
        _ => None,
    };
    n.ok_or_else(|| refuse(field, format!("is {}: a layer is a whole number 0-4294967295", describe(value))))
}

fn coordinate(field: &str, value: &Node) -> Result<f64, Refusal> {
    value.number().ok_or_else(|| refuse(field, format!("is {}: a coordinate is a number of mm", value.kind())))
}

fn position(field: &str, value: &Node) -> Result<Point3<f64>, Refusal> {
    let bad = || refuse(field, format!("is {}: a position is [x, y, z] or {{\"x\", \"y\", \"z\"}}", describe(value)));
    match value {
        Node::Ints(v) if v.len() == 3 => Ok(Point3::new(v[0] as f64, v[1] as f64, v[2] as f64)),
        Node::Floats(v) if v.len() == 3 => Ok(Point3::new(v[0], v[1], v[2])),
        Node::Object(fields) => {
            let get = |axis: &str| fields.iter().find(|(k, _)| k == axis).and_then(|(_, v)| v.number());
            match (get("x"), get("y"), get("z")) {
                (Some(x), Some(y), Some(z)) if fields.len() == 3 => Ok(Point3::new(x, y, z)),
                _ => Err(bad()),
            }
        }
        _ => Err(bad()),
    }
}

fn text(field: &str, value: &Node) -> Result<String, Refusal> {
    match value {
        Node::Str(s) => Ok(s.as_ref().to_owned()),
        Node::Bool(b) => Ok(b.to_string()),
        Node::Int(i) => Ok(i.to_string()),
        Node::Float(f) => Ok(f.to_string()),
        other => Err(refuse(field, format!("is {}: a tag is text", other.kind()))),
    }
}

fn add_tag(tags: &mut Tags, name: &str, value: String) -> Result<(), Refusal> {
    if tags.insert(name, value).is_some() {
        return Err(refuse(name, "is a tag given twice"));
    }
    Ok(())
}

fn tag_map(field: &str, value: &Node, tags: &mut Tags) -> Result<(), Refusal> {
    let Node::Object(entries) = value else {
        return Err(refuse(field, format!("is {}: a tag map is an object of text", value.kind())));
    };
    for (name, v) in entries {
        if !matches!(v, Node::Null) {
            add_tag(tags, name, text(&format!("{field}.{name}"), v)?)?;
        }
    }
    Ok(())
}

/// The value's kind, with the number itself for a number that breaks a numeric rule.
fn describe(value: &Node) -> String {
    match value {
        Node::Int(i) => i.to_string(),
        Node::Float(f) => f.to_string(),
        other => other.kind().to_owned(),
    }
}
