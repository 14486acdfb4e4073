//! Alert de-duplication: one alert per condition per interval, not one per sample.
//!
//! A condition is (checkpoint, build, layer, signal): a defect in a new layer is a new entry in
//! the part's quality record, however soon it follows the last one. Intervals are measured in the
//! alerts' own timestamps (measurement time), so replaying a stream gives the same alerts.
//! Conditions whose interval ended before the newest alert seen are forgotten once more than
//! [`MAX_REMEMBERED_CONDITIONS`] are held, so memory stays bounded over any number of builds and
//! layers (a late, out-of-order alert of a forgotten condition is then kept: a duplicate, never a
//! loss).

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use qadf_core_types::{Alert, Timestamp};

/// A condition: (checkpoint, build, layer, signal).
type Condition = (String, String, Option<u32>, Option<String>);

/// How many conditions are held before expired ones are forgotten.
pub const MAX_REMEMBERED_CONDITIONS: usize = 4096;

/// Keeps the first alert of each condition per interval and counts the rest.
#[derive(Debug)]
pub struct AlertDeduplicator {
    interval: Duration,
    /// Intervals of checkpoints that set their own (a rules file's `dedup_interval_ms`).
    per_checkpoint: HashMap<String, Duration>,
    last_emitted: Mutex<Emitted>,
}

/// When each condition last let an alert through, the newest alert time seen, and the size at
/// which expired conditions are next looked for (twice what the last look kept, so a flood of live
/// conditions does not rescan the map on every call).
#[derive(Debug)]
struct Emitted {
    at: HashMap<Condition, Timestamp>,
    newest: Option<Timestamp>,
    prune_above: usize,
}

impl Default for Emitted {
    fn default() -> Emitted {
        Emitted { at: HashMap::new(), newest: None, prune_above: MAX_REMEMBERED_CONDITIONS }
    }
}

impl AlertDeduplicator {
    /// A de-duplicator with the given interval (zero keeps every alert).
    pub fn new(interval: Duration) -> AlertDeduplicator {
        AlertDeduplicator::with_intervals(interval, HashMap::new())
    }

    /// A de-duplicator whose named checkpoints keep their own interval (others keep `interval`).
    pub fn with_intervals(interval: Duration, per_checkpoint: HashMap<String, Duration>) -> AlertDeduplicator {
        AlertDeduplicator { interval, per_checkpoint, last_emitted: Mutex::default() }
    }

    /// Removes duplicates from `alerts` in place; returns how many were suppressed.
    pub fn filter(&self, alerts: &mut Vec<Alert>) -> usize {
        if (self.interval.is_zero() && self.per_checkpoint.is_empty()) || alerts.is_empty() {
            return 0;
        }
        let before = alerts.len();
        let mut emitted = self.last_emitted.lock();
        let Emitted { at, newest, prune_above } = &mut *emitted;
        alerts.retain(|a| {
            *newest = Some(newest.map_or(a.timestamp, |n| n.max(a.timestamp)));
            let interval = self.per_checkpoint.get(&a.checkpoint).copied().unwrap_or(self.interval);
            if interval.is_zero() {
                return true;
            }
            let key = (a.checkpoint.clone(), a.build_id.to_string(), a.layer, a.signal.clone());
            match at.get(&key) {
                Some(&t) if a.timestamp >= t && a.timestamp < t + interval => false,
                _ => {
                    at.insert(key, a.timestamp);
                    true
                }
            }
        });
        if at.len() > *prune_above
            && let Some(newest) = *newest
        {
            let longest = self.per_checkpoint.values().copied().fold(self.interval, Duration::max);
            at.retain(|_, t| *t + longest > newest);
            *prune_above = (2 * at.len()).max(MAX_REMEMBERED_CONDITIONS);
        }
        before - alerts.len()
    }

    /// Conditions currently remembered (bounded: see [`MAX_REMEMBERED_CONDITIONS`]).
    pub fn remembered(&self) -> usize {
        self.last_emitted.lock().at.len()
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
            unit: None,
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

    #[test]
    fn expired_conditions_are_forgotten_so_memory_stays_bounded() {
        let d = AlertDeduplicator::new(Duration::from_millis(100));
        for layer in 0..20_000u32 {
            let mut alerts =
                vec![alert("hot", "t", i64::from(layer) * 10), alert("hot", "t", i64::from(layer) * 10 + 1)];
            alerts.iter_mut().for_each(|a| a.layer = Some(layer));
            assert_eq!(d.filter(&mut alerts), 1, "layer {layer}: one kept, one suppressed");
            assert!(d.remembered() <= MAX_REMEMBERED_CONDITIONS + 1, "layer {layer}: {} remembered", d.remembered());
        }
        // Conditions still inside their interval are kept: a repeat within it is suppressed.
        let mut repeat = vec![alert("hot", "t", 199_995)];
        repeat[0].layer = Some(19_999);
        assert_eq!(d.filter(&mut repeat), 1);
    }
}
