//! `Node`: a JSON value parsed once, borrowing its strings from the message, with arrays of
//! numbers kept as flat columns (8 bytes a value), so a columnar batch costs no per-value node.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// One JSON value of a message.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Node<'a> {
    Null,
    Bool(bool),
    /// An integer that fits `i64`, kept exact (epoch nanoseconds need all 64 bits).
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    /// An array of integers only.
    Ints(Vec<i64>),
    /// An array of numbers with at least one non-integer (integers converted).
    Floats(Vec<f64>),
    /// Any other array.
    Array(Vec<Node<'a>>),
    /// An object, fields in message order.
    Object(Vec<(Cow<'a, str>, Node<'a>)>),
}

impl Node<'_> {
    /// What the value is, for refusals ("field `x` is a string: ...").
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Bool(_) => "a boolean",
            Node::Int(_) | Node::Float(_) => "a number",
            Node::Str(_) => "a string",
            Node::Ints(_) | Node::Floats(_) | Node::Array(_) => "an array",
            Node::Object(_) => "an object",
        }
    }

    /// The number, if this is one.
    pub(crate) fn number(&self) -> Option<f64> {
        match *self {
            Node::Int(v) => Some(v as f64),
            Node::Float(v) => Some(v),
            _ => None,
        }
    }

    /// The length, if this is an array.
    pub(crate) fn array_len(&self) -> Option<usize> {
        match self {
            Node::Ints(v) => Some(v.len()),
            Node::Floats(v) => Some(v.len()),
            Node::Array(v) => Some(v.len()),
            _ => None,
        }
    }

    /// Element `i` of an array as a node (numbers rebuilt from their column).
    pub(crate) fn element(&self, i: usize) -> Node<'_> {
        match self {
            Node::Ints(v) => Node::Int(v[i]),
            Node::Floats(v) => Node::Float(v[i]),
            Node::Array(v) => v[i].borrowed(),
            other => other.borrowed(),
        }
    }

    /// A cheap view of this node (strings borrowed, scalars copied; containers cloned).
    fn borrowed(&self) -> Node<'_> {
        match self {
            Node::Null => Node::Null,
            Node::Bool(b) => Node::Bool(*b),
            Node::Int(v) => Node::Int(*v),
            Node::Float(v) => Node::Float(*v),
            Node::Str(s) => Node::Str(Cow::Borrowed(s.as_ref())),
            other => other.clone(),
        }
    }
}

impl<'de> Deserialize<'de> for Node<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Node<'de>, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node<'de>, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node<'de>, E> {
        Ok(Node::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Node<'de>, E> {
        Ok(i64::try_from(v).map_or(Node::Float(v as f64), Node::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Node<'de>, E> {
        Ok(Node::Float(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Owned(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node<'de>, A::Error> {
        let mut ints: Vec<i64> = Vec::new();
        let mut floats: Vec<f64> = Vec::new();
        // Numbers go to a flat column until the first other value.
        while let Some(node) = seq.next_element::<Node<'de>>()? {
            match node {
                Node::Int(v) if floats.is_empty() => ints.push(v),
                Node::Int(v) => floats.push(v as f64),
                Node::Float(v) => {
                    if floats.is_empty() {
                        floats.extend(ints.drain(..).map(|i| i as f64));
                    }
                    floats.push(v);
                }
                other => {
                    let mut nodes: Vec<Node<'de>> = if floats.is_empty() {
                        ints.into_iter().map(Node::Int).collect()
                    } else {
                        floats.into_iter().map(Node::Float).collect()
                    };
                    nodes.push(other);
                    while let Some(node) = seq.next_element::<Node<'de>>()? {
                        nodes.push(node);
                    }
                    return Ok(Node::Array(nodes));
                }
            }
        }
        Ok(if floats.is_empty() { Node::Ints(ints) } else { Node::Floats(floats) })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node<'de>, A::Error> {
        let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8).min(64));
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            fields.push((key, map.next_value::<Node<'de>>()?));
        }
        Ok(Node::Object(fields))
    }
}

/// A field name, borrowed from the message unless it holds escapes (serde's own `Cow<str>`
/// always allocates).
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Key<'de>, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// A JSON syntax error at a 1-based line and column of the whole message.
#[derive(Debug)]
pub(crate) struct SyntaxError {
    pub(crate) line: usize,
    pub(crate) column: usize,
    pub(crate) message: String,
}

/// Parses JSON text into a node (the caller bounds size and depth first). An object is read by
/// a scanner that takes numbers, and arrays of plain numbers — the columns of a monitor's
/// batch — without a serde call per value; anything it does not expect (escapes in a name, a
/// syntax error) is read by serde_json instead, which also places any error.
pub(crate) fn parse(text: &str, max_depth: usize) -> Result<Node<'_>, ParseError> {
    let mut scanner = Scanner { text, at: 0, depth: 0, max_depth, too_deep: false, column_len: 0 };
    scanner.skip_ws();
    if let Some(node) = scanner.value()
        && text[scanner.at..].bytes().all(is_ws)
    {
        return Ok(node);
    }
    if scanner.too_deep || crate::limits::json_depth_exceeds(text.as_bytes(), max_depth) {
        return Err(ParseError::TooDeep);
    }
    let located = |e: serde_json::Error| {
        let text = e.to_string();
        let message = text.rfind(" at line ").map_or(text.clone(), |at| text[..at].to_owned());
        ParseError::Syntax(SyntaxError { line: e.line(), column: e.column(), message })
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let node = Node::deserialize(&mut de).map_err(located)?;
    de.end().map_err(located)?;
    Ok(node)
}

/// Why a message is not a JSON value we read.
#[derive(Debug)]
pub(crate) enum ParseError {
    /// Not JSON.
    Syntax(SyntaxError),
    /// Nested deeper than the limit.
    TooDeep,
}

fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r')
}

/// A cursor over the message for the object fast path; every method gives `None` where the
/// serde path must take over.
struct Scanner<'a> {
    text: &'a str,
    at: usize,
    /// Arrays and objects open (beyond [`SCAN_DEPTH`], serde_json's own limit takes over).
    depth: usize,
    /// The deepest nesting allowed (`max_json_depth`).
    max_depth: usize,
    /// Set when the message nests deeper than `max_depth`.
    too_deep: bool,
    /// The length of the last number column read: the next is likely as long.
    column_len: usize,
}

/// Deepest nesting the scanner follows.
const SCAN_DEPTH: usize = 64;

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(is_ws) {
            self.at += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        self.skip_ws();
        (self.peek() == Some(c)).then(|| self.at += 1)
    }

    /// `{ "name": value, ... }`.
    fn object(&mut self) -> Option<Node<'a>> {
        self.eat(b'{')?;
        let mut fields = Vec::with_capacity(8);
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Some(Node::Object(fields));
        }
        loop {
            self.skip_ws();
            let key = self.plain_string()?;
            self.eat(b':')?;
            self.skip_ws();
            let value = self.value()?;
            fields.push((Cow::Borrowed(key), value));
            self.skip_ws();
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(Node::Object(fields));
                }
                _ => return None,
            }
        }
    }

    /// `[ value, ... ]` that is not all numbers.
    fn array(&mut self) -> Option<Node<'a>> {
        self.eat(b'[')?;
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Some(Node::Ints(Vec::new()));
        }
        loop {
            self.skip_ws();
            items.push(self.value()?);
            self.skip_ws();
            match self.peek()? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Some(Node::Array(items));
                }
                _ => return None,
            }
        }
    }

    /// A string without escapes, borrowed.
    fn plain_string(&mut self) -> Option<&'a str> {
        let bytes = self.text.as_bytes();
        if bytes.get(self.at) != Some(&b'"') {
            return None;
        }
        let start = self.at + 1;
        let len = bytes[start..].iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
        if bytes[start + len] != b'"' {
            return None;
        }
        self.at = start + len + 1;
        Some(&self.text[start..start + len])
    }

    fn value(&mut self) -> Option<Node<'a>> {
        match self.peek()? {
            b'"' => {
                let at = self.at;
                match self.plain_string() {
                    Some(s) => Some(Node::Str(Cow::Borrowed(s))),
                    None => {
                        self.at = at;
                        self.by_serde()
                    }
                }
            }
            b'-' | b'0'..=b'9' => {
                let (node, end) = number_at(self.text, self.at)?;
                self.at = end;
                Some(node)
            }
            b'[' | b'{' if self.depth + 1 > self.max_depth => {
                self.too_deep = true;
                None
            }
            b'[' => match numbers(self.text, self.at, self.column_len) {
                Some((node, end)) => {
                    self.at = end;
                    self.column_len = node.array_len().unwrap_or(0);
                    Some(node)
                }
                None => self.nested(Scanner::array),
            },
            b'{' => self.nested(Scanner::object),
            b't' => self.literal("true", Node::Bool(true)),
            b'f' => self.literal("false", Node::Bool(false)),
            b'n' => self.literal("null", Node::Null),
            _ => self.by_serde(),
        }
    }

    /// An array or object one level down.
    fn nested(&mut self, read: fn(&mut Scanner<'a>) -> Option<Node<'a>>) -> Option<Node<'a>> {
        if self.depth >= SCAN_DEPTH {
            return None;
        }
        self.depth += 1;
        let node = read(self);
        self.depth -= 1;
        node
    }

    fn literal(&mut self, word: &str, node: Node<'a>) -> Option<Node<'a>> {
        self.text[self.at..].starts_with(word).then(|| {
            self.at += word.len();
            node
        })
    }

    /// A string with escapes, read by serde_json.
    fn by_serde(&mut self) -> Option<Node<'a>> {
        let rest = &self.text[self.at..];
        let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<Node<'a>>();
        let node = stream.next()?.ok()?;
        self.at += stream.byte_offset();
        Some(node)
    }
}

/// A JSON number as read: an exact integer, or a double.
#[derive(Clone, Copy)]
pub(crate) enum Num {
    /// An integer that fits `i64`.
    Int(i64),
    /// Any other number.
    Float(f64),
}

impl Num {
    /// The number as a double.
    pub(crate) fn as_f64(self) -> f64 {
        match self {
            Num::Int(v) => v as f64,
            Num::Float(v) => v,
        }
    }

    fn node(self) -> Node<'static> {
        match self {
            Num::Int(v) => Node::Int(v),
            Num::Float(v) => Node::Float(v),
        }
    }
}

/// Powers of ten that fit a `u64`.
const POW10_U64: [u64; 20] = {
    let mut table = [1u64; 20];
    let mut i = 1;
    while i < 20 {
        table[i] = table[i - 1] * 10;
        i += 1;
    }
    table
};

/// The decimal digit at `i` of `b`, if there is one.
#[inline(always)]
fn digit(b: &[u8], i: usize) -> Option<u64> {
    let d = b.get(i)?.wrapping_sub(b'0');
    (d < 10).then_some(u64::from(d))
}

/// The run of decimal digits from `i` of `b`: its value (wrapping past 19 digits, where it
/// is not used) and its length.
#[inline(always)]
fn digit_run(b: &[u8], i: usize) -> (u64, usize) {
    let (mut value, mut len) = (0u64, 0usize);
    for &c in b.get(i..).unwrap_or_default() {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        value = value.wrapping_mul(10).wrapping_add(u64::from(d));
        len += 1;
    }
    (value, len)
}

/// The JSON number at `i` of `text` as a node, as serde_json reads it (see [`lex_number`]), and
/// the offset after it; `None` if no number starts there.
fn number_at(text: &str, i: usize) -> Option<(Node<'static>, usize)> {
    lex_number(text, i).map(|(n, end)| (n.node(), end))
}

/// The JSON number at `start` of `text`, as serde_json reads it — integers that fit `i64`
/// exact (`-0` is the float -0.0), others `f64` correctly rounded — and the offset after it;
/// `None` if no valid number starts there. One pass: the digits are accumulated as they are
/// checked, and a decimal of at most 15 digits is one exact division (Clinger's fast path:
/// mantissa and power of ten are exact doubles); longer ones and exponents go to
/// [`parsed_number`].
#[inline(always)]
fn lex_number(text: &str, start: usize) -> Option<(Num, usize)> {
    const POW10: [f64; 16] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];
    let b = text.as_bytes();
    let negative = b.get(start) == Some(&b'-');
    let whole = start + usize::from(negative);
    // Wrapping: a mantissa of more than 19 digits is not used (the token is parsed instead).
    let (mut mantissa, whole_digits) = digit_run(b, whole);
    let mut i = whole + whole_digits;
    if whole_digits == 0 || (whole_digits > 1 && b[whole] == b'0') {
        return None;
    }
    let mut fraction = 0;
    if b.get(i) == Some(&b'.') {
        let (value, len) = digit_run(b, i + 1);
        if len == 0 {
            return None;
        }
        mantissa = mantissa.wrapping_mul(POW10_U64.get(len).copied().unwrap_or(0)).wrapping_add(value);
        fraction = len;
        i += 1 + len;
    }
    let digits = whole_digits + fraction;
    if matches!(b.get(i), Some(b'e' | b'E')) || digits > 19 {
        return parsed_number(text, start);
    }
    let num = match fraction {
        0 if negative && mantissa == 0 => Num::Float(-0.0),
        // Up to 19 digits the mantissa is exact; it is an i64 if it fits (epoch nanoseconds do).
        0 if mantissa <= i64::MAX as u64 => Num::Int(if negative { -(mantissa as i64) } else { mantissa as i64 }),
        1.. if digits <= 15 => {
            let v = mantissa as f64 / POW10[fraction];
            Num::Float(if negative { -v } else { v })
        }
        _ => return parsed_number(text, start),
    };
    Some((num, i))
}

/// The number at `start` of `text` by `str::parse`: exponents, and mantissas too long for
/// [`lex_number`]'s exact arithmetic.
#[cold]
fn parsed_number(text: &str, start: usize) -> Option<(Num, usize)> {
    let b = text.as_bytes();
    let mut i = start + usize::from(b.get(start) == Some(&b'-'));
    let skip_digits = |i: &mut usize| {
        let first = *i;
        while digit(b, *i).is_some() {
            *i += 1;
        }
        *i > first
    };
    skip_digits(&mut i).then_some(())?;
    let mut integer = true;
    if b.get(i) == Some(&b'.') {
        integer = false;
        i += 1;
        skip_digits(&mut i).then_some(())?;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        integer = false;
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        skip_digits(&mut i).then_some(())?;
    }
    let token = &text[start..i];
    let float = || token.parse::<f64>().ok().filter(|v| v.is_finite()).map(Num::Float);
    let num = if integer { token.parse::<i64>().ok().map(Num::Int).or_else(float)? } else { float()? };
    Some((num, i))
}

/// An array of plain JSON numbers at `start` of `text` as a column, and the offset after it;
/// `None` for anything else. Numbers are read as [`lex_number`] reads them; `hint` is the
/// expected length (the previous column's).
fn numbers(text: &str, start: usize, hint: usize) -> Option<(Node<'static>, usize)> {
    let b = text.as_bytes();
    let skip = |i: &mut usize| {
        while b.get(*i).copied().is_some_and(is_ws) {
            *i += 1;
        }
    };
    if b.get(start) != Some(&b'[') {
        return None;
    }
    let mut i = start + 1;
    skip(&mut i);
    match b.get(i) {
        Some(b']') => return Some((Node::Ints(Vec::new()), i + 1)),
        Some(b'-' | b'0'..=b'9') => {}
        _ => return None,
    }
    let mut ints: Vec<i64> = Vec::with_capacity(hint);
    let mut floats: Vec<f64> = Vec::new();
    loop {
        let (num, end) = lex_number(text, i)?;
        match num {
            Num::Int(v) if floats.is_empty() => ints.push(v),
            Num::Int(v) => floats.push(v as f64),
            Num::Float(v) => {
                if floats.is_empty() {
                    floats.reserve_exact(ints.capacity().max(hint));
                    floats.extend(ints.drain(..).map(|i| i as f64));
                }
                floats.push(v);
            }
        }
        i = end;
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b']') => break,
            _ => {
                skip(&mut i);
                match b.get(i) {
                    Some(b',') => i += 1,
                    Some(b']') => break,
                    _ => return None,
                }
            }
        }
        skip(&mut i);
    }
    let node = if floats.is_empty() { Node::Ints(ints) } else { Node::Floats(floats) };
    Some((node, i + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The serde path, for comparison with the scanner.
    fn by_serde(text: &str) -> Option<Node<'_>> {
        serde_json::from_str::<Node>(text).ok()
    }

    /// The column scanner on a whole text.
    fn column(text: &str) -> Option<Node<'static>> {
        let start = text.len() - text.trim_start().len();
        numbers(text, start, 0).filter(|(_, end)| text[*end..].bytes().all(is_ws)).map(|(n, _)| n)
    }

    #[test]
    fn the_column_scanner_reads_numbers_as_serde_does_and_leaves_the_rest() {
        for text in [
            "[1, 2, 3]",
            " [ -1 ,0, -0 ] ",
            "[1.5, 2]",
            "[1, 2.5e3, -0.0, 1E-7]",
            "[9223372036854775807, 9223372036854775808]",
            "[18446744073709551616, -9223372036854775809]",
            "[0.1, 0.30000000000000004, 1769794278.343884]",
            "[0.1234567890123456789, 12345678901234567.5, 123456789012345.67]",
            "[-9223372036854775808, 9999999999999999999, 1.7976931348623157e308, 5e-324]",
            "[1,2 ,3\n,\t4]",
            "[]",
            "[ ]",
        ] {
            assert_eq!(column(text), by_serde(text), "{text}");
        }
        for not_plain in [
            "[1, null]",
            "[1,]",
            "[01]",
            "[1.]",
            "[.5]",
            "[+1]",
            "[1e400]",
            "[1] x",
            "[\"1\"]",
            "[[1]]",
            "{}",
            "[-]",
            "[1 2]",
        ] {
            assert_eq!(column(not_plain), None, "{not_plain}");
        }
    }

    proptest::proptest! {
        #[test]
        fn prop_columns_equal_the_serde_reading(values in proptest::collection::vec(proptest::num::f64::NORMAL | proptest::num::f64::ZERO, 0..20), ints in proptest::collection::vec(proptest::prelude::any::<i64>(), 0..20)) {
            let text = serde_json::to_string(&values).unwrap();
            proptest::prop_assert_eq!(column(&text), by_serde(&text));
            let text = serde_json::to_string(&ints).unwrap();
            proptest::prop_assert_eq!(column(&text), by_serde(&text));
            let decimals: Vec<String> = values.iter().map(|v| format!("{:.6}", v.abs() % 1e6)).collect();
            let text = format!("[{}]", decimals.join(","));
            proptest::prop_assert_eq!(column(&text), by_serde(&text), "{}", text);
        }
    }

    proptest::proptest! {
        #[test]
        fn prop_digit_runs_of_any_length_and_ending_read_exactly(digits in "[0-9]{1,24}", end in "([^0-9eE.][^0-9]{0,8})?", at in 0usize..3) {
            let text = format!("{}{digits}{end}", " ".repeat(at));
            let (value, len) = digit_run(text.as_bytes(), at);
            proptest::prop_assert_eq!(len, digits.len());
            if len <= 19 {
                proptest::prop_assert_eq!(value, digits.parse::<u64>().unwrap());
            }
            let number = digits.trim_start_matches('0');
            let number = if number.is_empty() { "0" } else { number };
            for text in [number.to_owned(), format!("-{number}.{digits}"), format!("{number}.{digits}{end}")] {
                let token = text.trim_end_matches(|c: char| !c.is_ascii_digit());
                let serde = serde_json::from_str::<Node>(token).unwrap();
                proptest::prop_assert_eq!(number_at(&text, 0), Some((serde, token.len())), "{}", text);
            }
        }
    }

    #[test]
    fn the_object_scanner_reads_what_serde_reads() {
        for text in [
            r#"{"a": 1, "b": -2.5, "c": "x", "d": true, "e": false, "f": null, "g": [1, 2], "h": [1.5, null], "i": {"j": [3]}}"#,
            r#"{"k\u00e9y": "v\n", "s": "caf\u00e9", "n": -0, "big": 123456789012345678901, "e": 1e-3, "x": 0.30000000000000004}"#,
            r#" { } "#,
            r#"{"t": [1769794278343884001, 1769794278343894001], "x": [10.01, 10.02], "name": "pyro-1", "rows": [{"a": 1}]}"#,
            r#"{"a": 1.234567890123456789, "b": 123456.7890123456, "c": 9007199254740993, "d": -1234567.25}"#,
            r#"[{"a": 1}, {"b": [1, "x", [2, {"c": null}]]}, [], [[1], [2.5]]]"#,
            r#"[]"#,
            r#""top""#,
            r#"12"#,
        ] {
            assert_eq!(parse(text, 128).ok(), by_serde(text), "{text}");
        }
        let deep = "[".repeat(100_000);
        assert!(parse(&deep, 128).is_err(), "deep nesting ends in an error, not a stack overflow");
        for (text, max) in [("[[1]]", 1), (r#"{"a": {"b": 1}}"#, 1), (r#"{"a": [1]}"#, 1), (r#"[{"a": "\n"}]"#, 1)] {
            assert!(matches!(parse(text, max), Err(ParseError::TooDeep)), "{text}");
            assert!(parse(text, 2).is_ok(), "{text}");
        }
        let deep_objects = r#"{"a":"#.repeat(1000);
        assert!(parse(&deep_objects, 128).is_err());
    }

    #[test]
    fn errors_inside_a_field_are_placed_in_the_whole_message() {
        for text in [
            "{\"a\": 1,\n \"b\": [1, tru]}",
            "{\"a\": {\"b\": nul}}",
            "{\"a\": [1,\n2,\n x]}",
            "[{\"a\": 1}, {\"b\": }]",
            "{\"a\": 1} x",
            "{\"a\": 01}",
        ] {
            let ParseError::Syntax(ours) = parse(text, 128).unwrap_err() else { panic!("{text}: not a syntax error") };
            let whole = serde_json::from_str::<serde_json::Value>(text).unwrap_err();
            assert_eq!((ours.line, ours.column), (whole.line(), whole.column()), "{text}: {ours:?}");
            assert!(!ours.message.contains(" at line "), "{}", ours.message);
        }
    }

    #[test]
    fn number_arrays_become_columns_and_mixed_arrays_stay_nodes() {
        assert_eq!(parse("[1, 2, 3]", 128).unwrap(), Node::Ints(vec![1, 2, 3]));
        assert_eq!(parse("[1, 2.5]", 128).unwrap(), Node::Floats(vec![1.0, 2.5]));
        assert_eq!(parse("[1, null]", 128).unwrap(), Node::Array(vec![Node::Int(1), Node::Null]));
        assert_eq!(parse("[]", 128).unwrap(), Node::Ints(vec![]));
        assert_eq!(parse("18446744073709551615", 128).unwrap(), Node::Float(18446744073709551615.0));
        let Node::Object(fields) = parse(r#"{"a": "x", "b": [1.5, 2]}"#, 128).unwrap() else { panic!() };
        assert_eq!(fields[0], (Cow::Borrowed("a"), Node::Str(Cow::Borrowed("x"))));
        assert!(matches!(fields[0].1, Node::Str(Cow::Borrowed(_))), "strings borrow from the message");
        assert!(matches!(fields[0].0, Cow::Borrowed(_)), "and so do field names");
        assert_eq!(fields[1].1.element(1), Node::Float(2.0));
        assert!(parse("{} x", 128).is_err());
    }
}
