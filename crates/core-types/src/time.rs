//! UTC timestamps with nanosecond resolution.

use std::fmt;
use std::ops::{Add, Sub};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A UTC instant as whole nanoseconds since the Unix epoch (covers the years 1678 to 2262).
///
/// Wire forms: JSON writes an RFC 3339 string with nanoseconds (`"2026-11-27T21:35:55.123456789Z"`);
/// bincode writes the `i64`. JSON input may also be an integer (nanoseconds since the epoch) or a
/// float (seconds since the epoch, as Python's `time.time()` gives).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// The current wall-clock time.
    pub fn now() -> Timestamp {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
            Err(e) => Timestamp(-i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX)),
        }
    }

    /// A timestamp from nanoseconds since the Unix epoch.
    pub const fn from_nanos(nanos: i64) -> Timestamp {
        Timestamp(nanos)
    }

    /// Nanoseconds since the Unix epoch.
    pub const fn as_nanos(self) -> i64 {
        self.0
    }

    /// A timestamp from (possibly fractional) seconds since the epoch; `None` if not finite or out of range.
    pub fn from_secs_f64(secs: f64) -> Option<Timestamp> {
        let nanos = (secs * 1e9).round();
        if nanos.is_finite() && nanos >= i64::MIN as f64 && nanos < i64::MAX as f64 {
            Some(Timestamp(nanos as i64))
        } else {
            None
        }
    }

    /// Seconds since the epoch as a float (loses sub-microsecond precision for current dates).
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// Parses an RFC 3339 string such as `2026-11-27T21:35:55.5Z` or `...+01:00`.
    pub fn parse_rfc3339(text: &str) -> Result<Timestamp, String> {
        let parsed = chrono::DateTime::parse_from_rfc3339(text)
            .map_err(|e| format!("`{text}` is not an RFC 3339 timestamp: {e}"))?;
        parsed.timestamp_nanos_opt().map(Timestamp).ok_or_else(|| format!("`{text}` is outside the years 1678-2262"))
    }

    /// Formats as RFC 3339 in UTC with nanoseconds.
    pub fn to_rfc3339(self) -> String {
        chrono::DateTime::from_timestamp_nanos(self.0).to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
    }

    /// The signed time from `earlier` to `self` in seconds.
    pub fn seconds_since(self, earlier: Timestamp) -> f64 {
        (self.0 as i128 - earlier.0 as i128) as f64 / 1e9
    }

    /// `self - duration`, saturating at the representable range.
    pub fn saturating_sub(self, duration: Duration) -> Timestamp {
        Timestamp(self.0.saturating_sub(duration_nanos(duration)))
    }

    /// `self + duration`, saturating at the representable range.
    pub fn saturating_add(self, duration: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(duration_nanos(duration)))
    }
}

fn duration_nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, rhs: Duration) -> Timestamp {
        self.saturating_add(rhs)
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, rhs: Duration) -> Timestamp {
        self.saturating_sub(rhs)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.to_rfc3339())
        } else {
            serializer.serialize_i64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
        if deserializer.is_human_readable() {
            deserializer.deserialize_any(TimestampVisitor)
        } else {
            i64::deserialize(deserializer).map(Timestamp)
        }
    }
}

struct TimestampVisitor;

impl Visitor<'_> for TimestampVisitor {
    type Value = Timestamp;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an RFC 3339 string, integer nanoseconds or float seconds since the Unix epoch")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
        Timestamp::parse_rfc3339(v).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
        Ok(Timestamp(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
        i64::try_from(v).map(Timestamp).map_err(|_| E::custom(format!("{v} nanoseconds is beyond the year 2262")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Timestamp, E> {
        Timestamp::from_secs_f64(v).ok_or_else(|| E::custom(format!("{v} is not a usable number of seconds")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip_keeps_nanoseconds() {
        let ts = Timestamp::from_nanos(1_795_000_000_123_456_789);
        assert_eq!(Timestamp::parse_rfc3339(&ts.to_rfc3339()), Ok(ts));
        assert!(ts.to_rfc3339().ends_with(".123456789Z"));
    }

    #[test]
    fn offsets_are_converted_to_utc() {
        let a = Timestamp::parse_rfc3339("2026-01-01T01:00:00+01:00").unwrap();
        let b = Timestamp::parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn json_accepts_string_integer_and_float() {
        let s: Timestamp = serde_json::from_str("\"1970-01-01T00:00:01Z\"").unwrap();
        let i: Timestamp = serde_json::from_str("1000000000").unwrap();
        let f: Timestamp = serde_json::from_str("1.0").unwrap();
        assert_eq!((s, i, f), (Timestamp(1_000_000_000), Timestamp(1_000_000_000), Timestamp(1_000_000_000)));
        assert!(serde_json::from_str::<Timestamp>("\"yesterday\"").is_err());
        assert!(serde_json::from_str::<Timestamp>("1e300").is_err());
    }

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp::from_nanos(i64::MAX - 1);
        assert_eq!(t + Duration::from_secs(1), Timestamp::from_nanos(i64::MAX));
        assert_eq!(Timestamp::from_nanos(5).seconds_since(Timestamp::from_nanos(2)), 3e-9);
    }
}
