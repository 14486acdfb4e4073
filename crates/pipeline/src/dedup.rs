//! Alert de-duplication: one alert per condition per interval, not one per sample.
//!
//! A condition is (checkpoint, build, layer, signal): a defect in a new layer is a new entry in
//! the part's quality record, however soon it follows the last one. Intervals are measured in the
//! alerts' own timestamps (measurement time), so replaying a stream gives the same alerts.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use qadf_core_types::{Alert, Timestamp};

/// A condition: (checkpoint, build, layer, signal).
type Condition = (String, String, Option<u32>, Option<String>);

/// Keeps the first alert of each condition per interval and counts the rest.
#[derive(Debug)]
pub struct AlertDeduplicator {
    interval: Duration,
    last_emitted: Mutex<HashMap<Condition, Timestamp>>,
}

impl AlertDeduplicator {
    /// A de-duplicator with the given interval (zero keeps every alert).
    pub fn new(interval: Duration) -> AlertDeduplicator {
        AlertDeduplicator { interval, last_emitted: Mutex::default() }
    }

    /// Removes duplicates from `alerts` in place; returns how many were suppressed.
    pub fn filter(&self, alerts: &mut Vec<Alert>) -> usize {
        if self.interval.is_zero() || alerts.is_empty() {
            return 0;
        }
        let before = alerts.len();
        let mut last = self.last_emitted.lock();
        alerts.retain(|a| {
            let key = (a.checkpoint.clone(), a.build_id.clone(), a.layer, a.signal.clone());
            match last.get(&key) {
                Some(&t) if a.timestamp >= t && a.timestamp < t + self.interval => false,
                _ => {
                    last.insert(key, a.timestamp);
                    true
                }
            }
        });
        before - alerts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qadf_core_types::Severity;

    fn alert(checkpoint: &str, signal: &str, ms: i64) -> Alert {
        Alert {
            checkpoint: checkpoint.into(),
            severity: Severity::Warning,
            build_id: "b".into(),
            layer: None,
            position: None,
            signal: Some(signal.into()),
            value: 0.0,
            threshold: 0.0,
            timestamp: Timestamp::from_nanos(ms * 1_000_000),
            message: String::new(),
        }
    }

    #[test]
    fn one_alert_per_condition_per_interval() {
        let d = AlertDeduplicator::new(Duration::from_millis(100));
        let mut first =
            vec![alert("hot", "t", 0), alert("hot", "t", 10), alert("hot", "area", 20), alert("cold", "t", 30)];
        assert_eq!(d.filter(&mut first), 1);
        assert_eq!(first.len(), 3);
        let mut second = vec![alert("hot", "t", 99), alert("hot", "t", 100), alert("hot", "t", 150)];
        assert_eq!(d.filter(&mut second), 2);
        assert_eq!(second[0].timestamp, Timestamp::from_nanos(100_000_000), "a new interval starts at 100 ms");
        let mut next_layer = vec![alert("hot", "t", 160), alert("hot", "t", 170)];
        next_layer[1].layer = Some(1);
        assert_eq!(d.filter(&mut next_layer), 1, "the same condition in a new layer is kept");
        assert_eq!(next_layer[0].layer, Some(1));
    }
}
