//! `Builds`: what is known of every build on the stream (samples, layer, newest sample, alerts),
//! kept by a pipeline stage ([`BuildsStage`]) and read by the live page, the Redis live view and
//! the metrics. One entry per build, however the builds mix in batches; at most [`MAX_BUILDS`]
//! (the one seen longest ago is forgotten first).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use qadf_core_types::{Alert, SampleBatch, Stage, StageError, StreamingResult, Timestamp};
use serde::{Deserialize, Serialize};

/// Builds remembered at once.
pub const MAX_BUILDS: usize = 256;
/// Alerts remembered per build (the most recent).
pub const RECENT_ALERTS: usize = 50;

/// One build as the stream has shown it so far.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BuildState {
    /// The build id.
    pub build: String,
    /// Samples processed.
    pub samples: u64,
    /// Layer of the newest sample.
    pub layer: Option<u32>,
    /// Height (mm) of the newest sample with a position.
    pub z_mm: Option<f64>,
    /// Measurement time of the newest sample, ns since the epoch.
    pub newest_sample_ns: Option<i64>,
    /// Alerts raised.
    pub alerts: u64,
    /// When its last batch was processed (wall clock), ns since the epoch.
    pub last_update_ns: i64,
    /// Bumped on every change (the live view rewrites only builds that changed).
    pub version: u64,
    /// Marked finished by the source (the demo, when its build is sent and processed).
    #[serde(default)]
    pub finished: bool,
}

/// Where a build stands, as the live page shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildStatus {
    /// Batches keep coming.
    Running,
    /// No batch for `stall_seconds` (the machine paused, the producer or the broker is stuck).
    Stalled,
    /// The source said the build is complete.
    Finished,
}

impl BuildState {
    /// Its status at `now_ns` (server clock) when `stall_ns` without a batch means stalled.
    pub fn status(&self, now_ns: i64, stall_ns: i64) -> BuildStatus {
        if self.finished {
            BuildStatus::Finished
        } else if now_ns.saturating_sub(self.last_update_ns) > stall_ns {
            BuildStatus::Stalled
        } else {
            BuildStatus::Running
        }
    }
}

#[derive(Default)]
struct Entry {
    state: BuildState,
    recent: VecDeque<Alert>,
}

/// Every build on the stream; shared by the stage that fills it and its readers.
#[derive(Default)]
pub struct Builds {
    entries: Mutex<BTreeMap<String, Entry>>,
}

impl Builds {
    /// A shared, empty table.
    pub fn new() -> Arc<Builds> {
        Arc::default()
    }

    fn with_entry(entries: &mut BTreeMap<String, Entry>, build: &str, f: impl FnOnce(&mut Entry)) {
        if !entries.contains_key(build) && entries.len() >= MAX_BUILDS {
            let oldest = entries.iter().min_by_key(|(_, e)| e.state.last_update_ns).map(|(b, _)| b.clone());
            if let Some(oldest) = oldest {
                entries.remove(&oldest);
            }
        }
        let entry = entries.entry(build.to_owned()).or_insert_with(|| Entry {
            state: BuildState { build: build.to_owned(), ..BuildState::default() },
            recent: VecDeque::new(),
        });
        f(entry);
        entry.state.version += 1;
        entry.state.last_update_ns = Timestamp::now().as_nanos();
    }

    /// Notes a processed batch: per build, its samples, newest layer, height and sample time.
    pub fn observe(&self, batch: &SampleBatch) {
        let mut entries = self.entries.lock();
        let mut start = 0;
        // Consecutive samples of one build are folded together (batches are mostly one build).
        while start < batch.samples.len() {
            let build = &batch.samples[start].build_id;
            let end =
                batch.samples[start..].iter().position(|s| s.build_id != *build).map_or(batch.len(), |n| start + n);
            let run = &batch.samples[start..end];
            Builds::with_entry(&mut entries, build, |e| {
                e.state.finished = false;
                e.state.samples += run.len() as u64;
                if let Some(last) = run.last() {
                    e.state.layer = Some(last.layer);
                }
                if let Some(z) = run.iter().rev().find_map(|s| s.position.map(|p| p.z)) {
                    e.state.z_mm = Some(z);
                }
                let newest = run.iter().map(|s| s.timestamp.as_nanos()).max();
                e.state.newest_sample_ns = e.state.newest_sample_ns.max(newest);
            });
            start = end;
        }
    }

    /// Notes alerts, each under its build.
    pub fn on_alerts(&self, alerts: &[Alert]) {
        if alerts.is_empty() {
            return;
        }
        let mut entries = self.entries.lock();
        for a in alerts {
            Builds::with_entry(&mut entries, &a.build_id, |e| {
                e.state.alerts += 1;
                if e.recent.len() == RECENT_ALERTS {
                    e.recent.pop_front();
                }
                e.recent.push_back(a.clone());
            });
        }
    }

    /// Every build, by id.
    pub fn list(&self) -> Vec<BuildState> {
        self.entries.lock().values().map(|e| e.state.clone()).collect()
    }

    /// Marks `build` finished (until another sample of it comes).
    pub fn finish(&self, build: &str) {
        if let Some(e) = self.entries.lock().get_mut(build) {
            e.state.finished = true;
            e.state.version += 1;
        }
    }

    /// One build's state.
    pub fn get(&self, build: &str) -> Option<BuildState> {
        self.entries.lock().get(build).map(|e| e.state.clone())
    }

    /// The build whose last batch came most recently.
    pub fn newest(&self) -> Option<BuildState> {
        self.entries.lock().values().max_by_key(|e| e.state.last_update_ns).map(|e| e.state.clone())
    }

    /// A build's most recent alerts, oldest first.
    pub fn recent_alerts(&self, build: &str) -> Vec<Alert> {
        self.entries.lock().get(build).map(|e| e.recent.iter().cloned().collect()).unwrap_or_default()
    }

    /// Builds known.
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    /// Whether no build was seen yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The pipeline stage that fills a [`Builds`] table from every batch; register it in the client.
pub struct BuildsStage(pub Arc<Builds>);

impl Stage for BuildsStage {
    fn name(&self) -> &str {
        "builds"
    }

    fn process(&self, batch: &mut SampleBatch, _result: &mut StreamingResult) -> Result<(), StageError> {
        self.0.observe(batch);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use qadf_core_types::{Point3, Sample, Severity};

    use super::*;

    fn sample(build: &str, layer: u32, t: i64) -> Sample {
        let point = Point3::new(1.0, 1.0, f64::from(layer) * 0.03);
        let mut s = Sample::new(Timestamp::from_nanos(t), point, Default::default());
        s.build_id = build.into();
        s.layer = layer;
        s
    }

    fn alert(build: &str) -> Alert {
        Alert {
            checkpoint: "hot".into(),
            severity: Severity::Critical,
            build_id: build.into(),
            layer: Some(1),
            position: None,
            signal: None,
            unit: None,
            value: 1.0,
            threshold: 0.0,
            timestamp: Timestamp::EPOCH,
            message: String::new(),
        }
    }

    #[test]
    fn a_mixed_batch_counts_under_each_of_its_builds() {
        let builds = Builds::new();
        let batch =
            SampleBatch::new(vec![sample("a", 1, 10), sample("b", 4, 30), sample("a", 2, 20), sample("a", 2, 5)]);
        builds.observe(&batch);
        builds.on_alerts(&[alert("b"), alert("b"), alert("c")]);
        let a = builds.get("a").unwrap();
        assert_eq!((a.samples, a.layer, a.newest_sample_ns, a.alerts), (3, Some(2), Some(20), 0));
        let b = builds.get("b").unwrap();
        assert_eq!((b.samples, b.layer, b.alerts), (1, Some(4), 2));
        assert_eq!(builds.recent_alerts("b").len(), 2);
        assert_eq!(builds.list().iter().map(|s| s.build.as_str()).collect::<Vec<_>>(), ["a", "b", "c"]);
    }

    #[test]
    fn a_build_is_running_then_stalled_and_finished_when_its_source_says_so() {
        let builds = Builds::new();
        builds.observe(&SampleBatch::new(vec![sample("a", 0, 1)]));
        let a = builds.get("a").unwrap();
        let (t, stall) = (a.last_update_ns, 10_000_000_000);
        assert_eq!(a.status(t + stall, stall), BuildStatus::Running);
        assert_eq!(a.status(t + stall + 1, stall), BuildStatus::Stalled);
        builds.finish("a");
        assert_eq!(builds.get("a").unwrap().status(t + 2 * stall, stall), BuildStatus::Finished);
        builds.observe(&SampleBatch::new(vec![sample("a", 1, 2)]));
        assert!(!builds.get("a").unwrap().finished, "a new sample: the build runs again");
    }

    #[test]
    fn the_table_and_each_build_s_alerts_are_bounded() {
        let builds = Builds::new();
        for i in 0..MAX_BUILDS + 10 {
            builds.observe(&SampleBatch::new(vec![sample(&format!("b{i}"), 0, 1)]));
        }
        assert_eq!(builds.len(), MAX_BUILDS);
        let many: Vec<Alert> = (0..RECENT_ALERTS + 5).map(|_| alert("x")).collect();
        builds.on_alerts(&many);
        assert_eq!(builds.recent_alerts("x").len(), RECENT_ALERTS);
        assert_eq!(builds.get("x").unwrap().alerts, (RECENT_ALERTS + 5) as u64);
    }
}
