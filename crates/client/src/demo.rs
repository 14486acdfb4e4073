//! The demo: a simulated build streamed through encode → decode → validate on embedded defaults.

use std::time::Instant;

use qadf_core_types::{Codec, SampleBatch, StreamingConfig, Timestamp, signal};

use crate::sim::{SimConfig, Simulator};

/// What the demo measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DemoSummary {
    /// Samples generated.
    pub samples: u64,
    /// Samples that decoded and validated.
    pub accepted: u64,
    /// Samples rejected, with the reason printed.
    pub rejected: u64,
    /// Batches (messages) processed.
    pub batches: u64,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Highest melt-pool temperature seen.
    pub max_temperature: f64,
}

/// Runs the demo, calling `progress` after each layer.
pub fn run(config: &StreamingConfig, sim: SimConfig, mut progress: impl FnMut(u32, &DemoSummary)) -> DemoSummary {
    let codec = Codec::new(config.message_encoding).with_max_message_bytes(config.max_message_bytes);
    let layers = sim.layers;
    let mut simulator = Simulator::new(sim, Timestamp::now());
    let mut summary = DemoSummary { max_temperature: f64::MIN, ..DemoSummary::default() };
    let started = Instant::now();
    for layer in 0..layers {
        let samples = simulator.layer(layer);
        summary.samples += samples.len() as u64;
        for chunk in samples.chunks(config.processing_batch_size) {
            summary.batches += 1;
            let decoded = codec.encode(&SampleBatch::new(chunk.to_vec())).and_then(|bytes| codec.decode(&bytes));
            match decoded {
                Ok(batch) => {
                    for s in &batch.samples {
                        match s.validate() {
                            Ok(()) => {
                                summary.accepted += 1;
                                let t = s.signals.get(signal::TEMPERATURE).unwrap_or(f64::MIN);
                                summary.max_temperature = summary.max_temperature.max(t);
                            }
                            Err(e) => {
                                summary.rejected += 1;
                                eprintln!("rejected a sample of layer {layer}: {e}");
                            }
                        }
                    }
                }
                Err(e) => {
                    summary.rejected += chunk.len() as u64;
                    eprintln!("rejected a batch of {} samples in layer {layer}: {e}", chunk.len());
                }
            }
        }
        summary.seconds = started.elapsed().as_secs_f64();
        progress(layer, &summary);
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_accepts_every_simulated_sample() {
        let sim = SimConfig { layers: 3, part_size_mm: 1.0, ..SimConfig::default() };
        let mut layers_seen = Vec::new();
        let summary = run(&StreamingConfig::default(), sim, |layer, _| layers_seen.push(layer));
        assert_eq!(layers_seen, [0, 1, 2]);
        assert_eq!((summary.samples, summary.accepted, summary.rejected), (300, 300, 0));
        assert_eq!(summary.batches, 3);
        assert!(summary.max_temperature > 1800.0 && summary.max_temperature < 2100.0);
    }
}
