//! `MemoryOffsetStore`: committed offsets in memory (tests and the embedded demo).

use std::collections::HashMap;

use parking_lot::Mutex;
use qadf_core_types::{BackendError, LogPosition, OffsetStore};

/// Offsets per (group, topic, partition), lost with the process.
#[derive(Debug, Default)]
pub struct MemoryOffsetStore {
    offsets: Mutex<HashMap<(String, String, i32), i64>>,
}

impl OffsetStore for MemoryOffsetStore {
    fn load_offsets(&self, group: &str, topic: &str) -> Result<Vec<LogPosition>, BackendError> {
        let offsets = self.offsets.lock();
        let mut out: Vec<LogPosition> = offsets
            .iter()
            .filter(|((g, t, _), _)| g == group && t == topic)
            .map(|((_, t, p), o)| LogPosition { topic: t.clone(), partition: *p, next_offset: *o })
            .collect();
        out.sort_by_key(|c| c.partition);
        Ok(out)
    }

    fn store_offsets(&self, group: &str, positions: &[LogPosition]) -> Result<(), BackendError> {
        let mut offsets = self.offsets.lock();
        for c in positions {
            offsets.insert((group.to_owned(), c.topic.clone(), c.partition), c.next_offset);
        }
        Ok(())
    }
}
