//! `WindowCheck`: a statistic of each stream's temporal window (the buffer crate's sliding count
//! and time windows), judged after each batch against warning and critical bands.

use std::collections::HashMap;

use parking_lot::Mutex;
use qadf_buffer::BufferManager;
use qadf_core_types::rules::{Span, Statistic};
use qadf_core_types::{SampleBatch, Timestamp};

use crate::checkpoint::{Bands, CheckOutcome, QualityCheck, alert, forget_streams};

/// Most streams (build and source) whose buffers one check holds; a new stream beyond it
/// replaces the least recently fed (memory stays at most `MAX_STREAMS × buffer` values).
pub const MAX_STREAMS: usize = 256;

/// The mean or standard deviation of each stream's last `span` must lie in its bands.
pub struct WindowCheck {
    name: String,
    signal: String,
    span: Span,
    buffer: usize,
    statistic: Statistic,
    bands: Bands,
    /// A feed counter, and each stream's buffer with the count at which it was last fed.
    streams: Mutex<(u64, Streams)>,
}

/// Each (build, source) stream's buffer, with the feed count at which it was last fed.
type Streams = HashMap<(String, String), (u64, BufferManager)>;

impl WindowCheck {
    /// A windowed check of `signal`; each stream's buffer holds `buffer` samples.
    pub fn new(
        name: impl Into<String>,
        signal: impl Into<String>,
        (span, buffer, statistic): (Span, usize, Statistic),
        warning: Option<(f64, f64)>,
        critical: Option<(f64, f64)>,
    ) -> WindowCheck {
        WindowCheck {
            name: name.into(),
            signal: signal.into(),
            span,
            buffer: buffer.max(1),
            statistic,
            bands: Bands::new(warning, critical),
            streams: Mutex::default(),
        }
    }

    /// The statistic of a buffer's current window, if it holds at least two values.
    fn judge(&self, buffer: &BufferManager, newest: Timestamp) -> Option<(f64, usize)> {
        let window = match self.span {
            Span::Samples(n) => buffer.get_sliding_window(n).ok()?,
            Span::Time(d) => buffer.get_time_range(newest - d, Timestamp::from_nanos(i64::MAX)),
        };
        let n = window.values.len();
        if n < 2 {
            return None;
        }
        let mean = window.values.iter().sum::<f64>() / n as f64;
        Some(match self.statistic {
            Statistic::Mean => (mean, n),
            Statistic::Std => {
                let ss: f64 = window.values.iter().map(|v| (v - mean) * (v - mean)).sum();
                ((ss / (n - 1) as f64).sqrt(), n)
            }
        })
    }
}

impl QualityCheck for WindowCheck {
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self, batch: &SampleBatch) -> CheckOutcome {
        let mut out = CheckOutcome::default();
        let mut guard = self.streams.lock();
        let (fed, streams) = &mut *guard;
        for run in batch.samples.chunk_by(|a, b| a.build_id == b.build_id && a.source_id == b.source_id) {
            let key = (run[0].build_id.to_string(), run[0].source_id.to_string());
            if !streams.contains_key(&key) && streams.len() >= MAX_STREAMS {
                let oldest = streams.iter().min_by_key(|(_, (t, _))| *t).map(|(k, _)| k.clone());
                oldest.map(|k| streams.remove(&k));
            }
            *fed += 1;
            let (touched, buffer) = streams
                .entry(key)
                .or_insert_with(|| (0, BufferManager::new(1, self.buffer).expect("a buffer of at least one")));
            *touched = *fed;
            let mut last = None;
            for s in run {
                let Some(v) = s.signals.get(&self.signal) else { continue };
                if buffer.add_value(v, s.timestamp).is_ok() {
                    last = Some(s);
                }
            }
            let Some(s) = last else { continue };
            let Some((value, n)) = self.judge(buffer, s.timestamp) else { continue };
            let Some((threshold, side, severity)) = self.bands.judge(value) else {
                out.passed += 1;
                continue;
            };
            out.failed += 1;
            let what = match self.statistic {
                Statistic::Mean => "mean",
                Statistic::Std => "standard deviation",
            };
            let message = format!("{what} of {} over the last {n} values = {value} is {side} {threshold}", self.signal);
            out.alerts.push(alert(&self.name, severity, s, &self.signal, value, threshold, message));
        }
        out
    }
    fn forget(&self, build: &str) {
        forget_streams(&mut self.streams.lock().1, build);
    }
}
