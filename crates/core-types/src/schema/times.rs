//! Reading a message's time: RFC 3339 text, naive ISO-8601 text in a configured zone, or an
//! epoch number in a declared unit — exact to the nanosecond the producer wrote.

use std::io::Write as _;

use chrono::{FixedOffset, LocalResult, NaiveDateTime, TimeZone};
use serde::{Deserialize, Serialize};

use super::node::{Node, Num};
use crate::time::Timestamp;

/// The unit of a time given as a number since the Unix epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EpochUnit {
    /// Seconds, integer or fractional (Python's `time.time()`). The default.
    #[default]
    Seconds,
    /// Milliseconds (Java's and JavaScript's clocks).
    Milliseconds,
    /// Microseconds.
    Microseconds,
    /// Nanoseconds (Go's `UnixNano`, Python's `time.time_ns()`).
    Nanoseconds,
    /// From the magnitude: below 1e11 seconds, below 1e14 milliseconds, below 1e17
    /// microseconds, else nanoseconds (right for every time from 1973 to 5138).
    Infer,
}

impl EpochUnit {
    fn nanos_per_unit(self, magnitude: f64) -> i128 {
        match self {
            EpochUnit::Seconds => 1_000_000_000,
            EpochUnit::Milliseconds => 1_000_000,
            EpochUnit::Microseconds => 1_000,
            EpochUnit::Nanoseconds => 1,
            EpochUnit::Infer if magnitude < 1e11 => 1_000_000_000,
            EpochUnit::Infer if magnitude < 1e14 => 1_000_000,
            EpochUnit::Infer if magnitude < 1e17 => 1_000,
            EpochUnit::Infer => 1,
        }
    }
}

/// The zone naive times are read in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Zone {
    Fixed(FixedOffset),
    Named(chrono_tz::Tz),
}

impl Zone {
    /// `UTC`, an offset such as `+01:00`, or an IANA name such as `Europe/Berlin`.
    pub(crate) fn parse(text: &str) -> Result<Zone, String> {
        let text = text.trim();
        if matches!(text, "UTC" | "utc" | "Z" | "GMT") {
            return Ok(Zone::Fixed(FixedOffset::east_opt(0).expect("zero offset")));
        }
        if let Ok(offset) = text.parse::<FixedOffset>() {
            return Ok(Zone::Fixed(offset));
        }
        text.parse::<chrono_tz::Tz>().map(Zone::Named).map_err(|_| {
            format!(
                "`{text}` is not a time zone: give UTC, an offset such as +01:00, or an IANA name such as Europe/Berlin"
            )
        })
    }

    fn instant(self, naive: NaiveDateTime) -> Result<i64, String> {
        let local = match self {
            Zone::Fixed(z) => z.from_local_datetime(&naive).map(|t| t.timestamp_nanos_opt()),
            Zone::Named(z) => z.from_local_datetime(&naive).map(|t| t.timestamp_nanos_opt()),
        };
        match local {
            // The earlier of two readings when clocks go back (documented in docs/SCHEMA.md).
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.ok_or_else(|| OUT_OF_RANGE.to_owned()),
            LocalResult::None => Err("does not exist in the configured time zone (clocks went forward)".to_owned()),
        }
    }
}

const OUT_OF_RANGE: &str = "is outside the years 1678-2262";

/// Reads times as the schema declares.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct TimeReader {
    pub(crate) unit: EpochUnit,
    pub(crate) zone: Zone,
}

impl TimeReader {
    /// The instant `node` gives, or the rule it breaks.
    pub(crate) fn read(&self, node: &Node) -> Result<Timestamp, String> {
        match node {
            Node::Str(text) => self.text(text),
            Node::Int(v) => self.number(Num::Int(*v)),
            Node::Float(v) => self.number(Num::Float(*v)),
            other => Err(format!("is {}: a time is a string or a number", other.kind())),
        }
    }

    /// The instant an epoch number gives, in the declared unit.
    pub(crate) fn number(&self, v: Num) -> Result<Timestamp, String> {
        match v {
            Num::Int(v) => self.epoch(v as f64, |per_unit| v as i128 * per_unit),
            Num::Float(v) => self.float(v),
        }
    }

    fn text(&self, text: &str) -> Result<Timestamp, String> {
        // The forms producers write, parsed by hand (chrono's format parser costs ~1 µs a
        // time); anything else, and every named zone, goes through chrono below.
        if let Some(iso) = Iso::parse(text.as_bytes()) {
            match (iso.offset_seconds, self.zone) {
                (Some(offset), _) => return iso.instant(offset).ok_or_else(|| format!("`{text}` {OUT_OF_RANGE}")),
                (None, Zone::Fixed(z)) => {
                    return iso.instant(z.local_minus_utc()).ok_or_else(|| format!("`{text}` {OUT_OF_RANGE}"));
                }
                (None, Zone::Named(_)) => {}
            }
        }
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
            return t
                .timestamp_nanos_opt()
                .map(Timestamp::from_nanos)
                .ok_or_else(|| format!("`{text}` {OUT_OF_RANGE}"));
        }
        for format in ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z"] {
            if let Ok(t) = chrono::DateTime::parse_from_str(text, format) {
                return t
                    .timestamp_nanos_opt()
                    .map(Timestamp::from_nanos)
                    .ok_or_else(|| format!("`{text}` {OUT_OF_RANGE}"));
            }
        }
        for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
            if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
                return self.zone.instant(naive).map(Timestamp::from_nanos).map_err(|e| format!("`{text}` {e}"));
            }
        }
        Err(format!(
            "`{}` is not a time: give RFC 3339 (2026-01-30T17:31:18.343884Z), naive ISO-8601 (read in schema.time_zone) or an epoch number",
            text.chars().take(40).collect::<String>().escape_debug()
        ))
    }

    /// A float epoch, read from its shortest decimal form (what `json.dumps` wrote), so
    /// `1767000000.123456` is exactly 123456 µs past the second.
    fn float(&self, v: f64) -> Result<Timestamp, String> {
        if !v.is_finite() {
            return Err(format!("{v} is not a time"));
        }
        if v.abs() >= 1e25 {
            return Err(format!("{v:e} {OUT_OF_RANGE}"));
        }
        let mut buf = [0u8; 400];
        let mut cursor = std::io::Cursor::new(&mut buf[..]);
        write!(cursor, "{}", v.abs()).map_err(|_| format!("{v} {OUT_OF_RANGE}"))?;
        let len = cursor.position() as usize;
        let text = std::str::from_utf8(&buf[..len]).unwrap_or("0");
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        if whole.len() > 25 {
            return Err(format!("{v} {OUT_OF_RANGE}"));
        }
        let whole: i128 = whole.parse().map_err(|_| format!("{v} {OUT_OF_RANGE}"))?;
        let sign = if v < 0.0 { -1 } else { 1 };
        let fraction = digits(fraction);
        self.epoch(v, |per_unit| sign * (whole * per_unit + fraction.scaled(per_unit)))
    }

    /// The instant `nanos(nanoseconds per unit)` gives for an epoch number of magnitude `v`.
    fn epoch(&self, v: f64, nanos: impl Fn(i128) -> i128) -> Result<Timestamp, String> {
        let unit = self.unit;
        i64::try_from(nanos(unit.nanos_per_unit(v.abs())))
            .map(Timestamp::from_nanos)
            .map_err(|_| format!("{v} ({unit:?}) since the epoch {OUT_OF_RANGE} (is schema.epoch_unit right?)"))
    }
}

/// `YYYY-MM-DD[T| ]HH:MM:SS[.f{1,9}][Z|±HH:MM]`, the ISO-8601 forms producers write.
#[derive(Debug, PartialEq)]
struct Iso {
    days: i64,
    seconds_of_day: i64,
    nanos: i64,
    offset_seconds: Option<i32>,
}

impl Iso {
    fn parse(b: &[u8]) -> Option<Iso> {
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            let digits = b.get(r)?;
            digits.iter().all(u8::is_ascii_digit).then(|| digits.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
        };
        let at = |i: usize, c: u8| b.get(i) == Some(&c);
        if !(at(4, b'-')
            && at(7, b'-')
            && matches!(b.get(10), Some(b'T' | b't' | b' '))
            && at(13, b':')
            && at(16, b':'))
        {
            return None;
        }
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&month)
            || day < 1
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return None;
        }
        let mut i = 19;
        let mut nanos = 0;
        if at(i, b'.') {
            let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if digits == 0 || digits > 9 {
                return None;
            }
            nanos = num(i + 1..i + 1 + digits)? * 10i64.pow(9 - digits as u32);
            i += 1 + digits;
        }
        let offset_seconds = match b.get(i) {
            None => None,
            Some(b'Z' | b'z') if i + 1 == b.len() => Some(0),
            Some(&sign @ (b'+' | b'-')) if i + 6 == b.len() && at(i + 3, b':') => {
                let (h, m) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
                if h > 23 || m > 59 {
                    return None;
                }
                let magnitude = (h * 3600 + m * 60) as i32;
                Some(if sign == b'-' { -magnitude } else { magnitude })
            }
            _ => return None,
        };
        Some(Iso {
            days: days_from_civil(year, month, day),
            seconds_of_day: hour * 3600 + minute * 60 + second,
            nanos,
            offset_seconds,
        })
    }

    /// The instant, read at `offset` seconds east of UTC.
    fn instant(&self, offset: i32) -> Option<Timestamp> {
        let seconds = i128::from(self.days) * 86_400 + i128::from(self.seconds_of_day) - i128::from(offset);
        i64::try_from(seconds * 1_000_000_000 + i128::from(self.nanos)).ok().map(Timestamp::from_nanos)
    }
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Decimal digits after the point, as an integer and a count.
#[derive(Clone, Copy)]
struct Fraction {
    value: i128,
    digits: u32,
}

impl Fraction {
    /// The fraction times `per_unit` nanoseconds, rounded half up.
    fn scaled(self, per_unit: i128) -> i128 {
        if self.digits == 0 {
            return 0;
        }
        let denominator = 10i128.pow(self.digits);
        (self.value * per_unit * 2 + denominator) / (2 * denominator)
    }
}

fn digits(fraction: &str) -> Fraction {
    let kept = &fraction[..fraction.len().min(18)];
    Fraction { value: kept.parse().unwrap_or(0), digits: kept.len() as u32 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn reader(unit: EpochUnit, zone: &str) -> TimeReader {
        TimeReader { unit, zone: Zone::parse(zone).unwrap() }
    }

    fn read(r: &TimeReader, node: Node) -> Result<i64, String> {
        r.read(&node).map(Timestamp::as_nanos)
    }

    fn text(s: &str) -> Node<'_> {
        Node::Str(Cow::Borrowed(s))
    }

    #[test]
    fn text_times_rfc3339_and_naive_in_the_zone_to_the_nanosecond() {
        let utc = reader(EpochUnit::Seconds, "UTC");
        let t = 1_769_794_278_343_884_000; // 2026-01-30T17:31:18.343884Z
        assert_eq!(read(&utc, text("2026-01-30T17:31:18.343884")), Ok(t));
        assert_eq!(read(&utc, text("2026-01-30 17:31:18.343884")), Ok(t), "str(datetime)");
        assert_eq!(read(&utc, text("2026-01-30T17:31:18.343884Z")), Ok(t));
        assert_eq!(read(&utc, text("2026-01-30T18:31:18.343884+01:00")), Ok(t));
        assert_eq!(read(&utc, text("2026-01-30 18:31:18.343884+01:00")), Ok(t));
        assert_eq!(read(&utc, text("2026-01-30T17:31:18.343884123Z")), Ok(t + 123));
        assert_eq!(read(&utc, text("2026-01-30T17:31:18")), Ok(t - 343_884_000));
        let berlin = reader(EpochUnit::Seconds, "Europe/Berlin");
        assert_eq!(read(&berlin, text("2026-01-30T18:31:18.343884")), Ok(t), "CET is UTC+1 in January");
        assert_eq!(read(&berlin, text("2026-07-30T19:31:18")), read(&utc, text("2026-07-30T17:31:18")), "CEST");
        let gap = read(&berlin, text("2026-03-29T02:30:00")).unwrap_err();
        assert!(gap.contains("does not exist"), "{gap}");
        let fixed = reader(EpochUnit::Seconds, "+05:30");
        assert_eq!(read(&fixed, text("2026-01-30T23:01:18.343884")), Ok(t));
        let bad = read(&utc, text("30/01/2026")).unwrap_err();
        assert!(bad.contains("is not a time"), "{bad}");
        assert!(Zone::parse("Mars/Olympus").unwrap_err().contains("not a time zone"));
    }

    proptest::proptest! {
        #[test]
        fn the_hand_parser_agrees_with_chrono(
            secs in -5_000_000_000i64..9_000_000_000, nanos in 0u32..1_000_000_000, digits in 0usize..10,
            offset_minutes in -1439i32..1440, form in 0u8..4,
        ) {
            let t = chrono::DateTime::from_timestamp(secs, nanos).unwrap();
            let zone = FixedOffset::east_opt(offset_minutes * 60).unwrap();
            let local = t.with_timezone(&zone);
            let fraction = if digits == 0 { String::new() } else { format!(".{:09}", nanos)[..=digits].to_owned() };
            let base = local.format("%Y-%m-%dT%H:%M:%S").to_string() + &fraction;
            let text = match form {
                0 => base.clone() + &local.format("%:z").to_string(),
                1 => base.replace('T', " ") + &local.format("%:z").to_string(),
                2 => base.clone(),
                _ => base.replace('T', " "),
            };
            let ours = Iso::parse(text.as_bytes()).unwrap();
            let by_chrono = match ours.offset_seconds {
                Some(_) => chrono::DateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S%.f%:z")
                    .or_else(|_| chrono::DateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M:%S%.f%:z"))
                    .unwrap().timestamp_nanos_opt(),
                None => NaiveDateTime::parse_from_str(&text.replace(' ', "T"), "%Y-%m-%dT%H:%M:%S%.f").unwrap()
                    .and_utc().timestamp_nanos_opt(),
            };
            proptest::prop_assert_eq!(ours.instant(ours.offset_seconds.unwrap_or(0)).map(Timestamp::as_nanos), by_chrono, "{}", text);
        }
    }

    #[test]
    fn the_hand_parser_leaves_what_it_does_not_know_to_chrono() {
        for odd in [
            "2026-02-30T00:00:00",
            "2026-01-30T24:00:00",
            "2026-01-30T17:31:18.1234567891",
            "2026-01-30T17:31:18+0100",
            "2026-01-30T17:31:60Z",
            "2026-1-30T17:31:18",
        ] {
            assert_eq!(Iso::parse(odd.as_bytes()), None, "{odd}");
        }
        let utc = reader(EpochUnit::Seconds, "UTC");
        assert_eq!(
            read(&utc, text("2026-01-30T17:31:18+0100")),
            read(&utc, text("2026-01-30T16:31:18Z")),
            "chrono reads ±HHMM"
        );
    }

    #[test]
    fn epoch_numbers_in_the_declared_unit_exact_to_the_decimal_written() {
        let s = reader(EpochUnit::Seconds, "UTC");
        assert_eq!(read(&s, Node::Float(1767000000.123456)), Ok(1_767_000_000_123_456_000));
        assert_eq!(read(&s, Node::Float(1767000000.5)), Ok(1_767_000_000_500_000_000));
        assert_eq!(read(&s, Node::Int(1767000000)), Ok(1_767_000_000_000_000_000));
        assert_eq!(read(&s, Node::Float(-1.25)), Ok(-1_250_000_000));
        let ms = reader(EpochUnit::Milliseconds, "UTC");
        assert_eq!(read(&ms, Node::Int(1767000000123)), Ok(1_767_000_000_123_000_000));
        assert_eq!(read(&ms, Node::Float(1767000000123.5)), Ok(1_767_000_000_123_500_000));
        let us = reader(EpochUnit::Microseconds, "UTC");
        assert_eq!(read(&us, Node::Int(1767000000123456)), Ok(1_767_000_000_123_456_000));
        let ns = reader(EpochUnit::Nanoseconds, "UTC");
        assert_eq!(read(&ns, Node::Int(1_795_000_000_000_000_001)), Ok(1_795_000_000_000_000_001));
        let infer = reader(EpochUnit::Infer, "UTC");
        for (v, want) in [
            (Node::Float(1767000000.25), 1_767_000_000_250_000_000),
            (Node::Int(1767000000250), 1_767_000_000_250_000_000),
            (Node::Int(1767000000250000), 1_767_000_000_250_000_000),
            (Node::Int(1767000000250000000), 1_767_000_000_250_000_000),
        ] {
            assert_eq!(read(&infer, v), Ok(want));
        }
        let e = read(&s, Node::Int(1_795_000_000_000_000_001)).unwrap_err();
        assert!(e.contains("outside the years") && e.contains("epoch_unit"), "{e}");
        assert!(read(&s, Node::Bool(true)).unwrap_err().contains("a boolean"));
    }
}
