//! `BufferStage`: appends every signal of every sample to its stream's temporal buffer.

use std::sync::Arc;

use parking_lot::Mutex;
use qadf_buffer::BufferPool;
use qadf_core_types::{SampleBatch, Stage, StageError, StreamingResult};

/// Stream key of a buffer: (build, source, signal).
pub type StreamKey = (String, String, String);

/// Appends to a shared [`BufferPool`] keyed by (build, source, signal).
pub struct BufferStage {
    pool: Arc<Mutex<BufferPool<StreamKey>>>,
}

impl BufferStage {
    /// A stage writing into `pool` (share the `Arc` to read windows elsewhere).
    pub fn new(pool: Arc<Mutex<BufferPool<StreamKey>>>) -> BufferStage {
        BufferStage { pool }
    }
}

impl Stage for BufferStage {
    fn name(&self) -> &str {
        "buffer"
    }

    /// Looks each stream's buffer up once per run of consecutive samples of one build and source.
    fn process(&self, batch: &mut SampleBatch, result: &mut StreamingResult) -> Result<(), StageError> {
        let mut pool = self.pool.lock();
        let mut refused = 0u64;
        for run in batch.samples.chunk_by(|a, b| a.build_id == b.build_id && a.source_id == b.source_id) {
            let (build, source) = (&run[0].build_id, &run[0].source_id);
            let mut names: Vec<&str> = run.iter().flat_map(|s| s.signals.iter().map(|(n, _)| n)).collect();
            names.sort_unstable();
            names.dedup();
            for name in names {
                let values = run.iter().filter_map(|s| s.signals.get(name).map(|v| (v, s.timestamp)));
                match pool.buffer_mut(&(build.to_string(), source.to_string(), name.to_owned())) {
                    Ok(buffer) => {
                        for (v, t) in values {
                            if buffer.add_value(v, t).is_err() {
                                refused += 1;
                            }
                        }
                    }
                    Err(_) => refused += values.count() as u64,
                }
            }
        }
        if refused > 0 {
            result.add_to_metric("buffer.refused", refused as f64);
        }
        Ok(())
    }
}
