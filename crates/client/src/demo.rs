//! The demo: a simulated build streamed through encode → decode → validate → voxel fusion →
//! temperature buffer, on embedded defaults (no external service).

use std::time::{Duration, Instant};

use qadf_buffer::{BufferManager, BufferStatistics};
use qadf_core_types::{Codec, Point3, SampleBatch, StreamingConfig, Timestamp, signal};
use qadf_voxel::{IncrementalProcessor, ProcessorStatistics, VoxelGrid};

use crate::sim::{SimConfig, Simulator};

/// Voxel edge of the demo's grid in mm.
pub const DEMO_RESOLUTION_MM: f64 = 0.1;

/// What the demo measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DemoSummary {
    /// Samples generated.
    pub samples: u64,
    /// Samples that decoded and validated.
    pub accepted: u64,
    /// Samples rejected, each reported on stderr with its reason.
    pub rejected: u64,
    /// Batches (messages) processed.
    pub batches: u64,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Highest melt-pool temperature seen.
    pub max_temperature: f64,
    /// Voxel grid statistics.
    pub voxels: ProcessorStatistics,
    /// Temperature buffer statistics.
    pub buffer: BufferStatistics,
    /// Mean temperature over the last second of build time.
    pub recent_mean_temperature: Option<f64>,
}

/// Runs the demo, calling `progress` after each layer.
pub fn run(config: &StreamingConfig, sim: SimConfig, mut progress: impl FnMut(u32, &DemoSummary)) -> DemoSummary {
    let codec = Codec::new(config.message_encoding).with_max_message_bytes(config.max_message_bytes);
    let layers = sim.layers;
    let height = (layers as f64 * sim.layer_thickness_mm).max(DEMO_RESOLUTION_MM);
    let grid = VoxelGrid::new(Point3::origin(), Point3::new(250.0, 250.0, height), DEMO_RESOLUTION_MM)
        .expect("the demo's plate is a valid grid");
    let voxels = IncrementalProcessor::new(grid);
    let mut temperatures: BufferManager =
        BufferManager::new(config.window_size, config.buffer_size.max(100_000)).expect("validated config sizes");
    let mut simulator = Simulator::new(sim, Timestamp::now());
    let mut summary = DemoSummary { max_temperature: f64::MIN, ..DemoSummary::default() };
    let started = Instant::now();
    for layer in 0..layers {
        let samples = simulator.layer(layer);
        summary.samples += samples.len() as u64;
        for chunk in samples.chunks(config.processing_batch_size) {
            summary.batches += 1;
            let decoded = codec.encode(&SampleBatch::new(chunk.to_vec())).and_then(|bytes| codec.decode(&bytes));
            let mut batch = match decoded {
                Ok(batch) => batch,
                Err(e) => {
                    summary.rejected += chunk.len() as u64;
                    eprintln!("rejected a batch of {} samples in layer {layer}: {e}", chunk.len());
                    continue;
                }
            };
            batch.samples.retain(|s| match s.validate() {
                Ok(()) => true,
                Err(e) => {
                    eprintln!("rejected a sample of layer {layer}: {e}");
                    false
                }
            });
            summary.rejected += (chunk.len() - batch.len()) as u64;
            summary.accepted += batch.len() as u64;
            if let Err(e) = voxels.process_samples(&batch) {
                eprintln!("voxel update of layer {layer} refused: {e}");
            }
            for s in &batch.samples {
                if let Some(t) = s.signals.get(signal::TEMPERATURE) {
                    summary.max_temperature = summary.max_temperature.max(t);
                    if let Err(e) = temperatures.add_value(t, s.timestamp) {
                        eprintln!("temperature buffer refused a sample: {e}");
                    }
                }
            }
        }
        summary.seconds = started.elapsed().as_secs_f64();
        summary.voxels = voxels.get_statistics();
        progress(layer, &summary);
    }
    summary.buffer = temperatures.get_buffer_statistics();
    if let Some(newest) = summary.buffer.newest_timestamp {
        let recent = temperatures.get_time_range(newest - Duration::from_secs(1), newest + Duration::from_nanos(1));
        summary.recent_mean_temperature =
            (!recent.is_empty()).then(|| recent.values.iter().sum::<f64>() / recent.len() as f64);
    }
    summary.voxels = voxels.get_statistics();
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_accepts_every_simulated_sample_and_fuses_it() {
        let sim = SimConfig { layers: 3, part_size_mm: 1.0, ..SimConfig::default() };
        let mut layers_seen = Vec::new();
        let summary = run(&StreamingConfig::default(), sim, |layer, _| layers_seen.push(layer));
        assert_eq!(layers_seen, [0, 1, 2]);
        assert_eq!((summary.samples, summary.accepted, summary.rejected), (300, 300, 0));
        assert_eq!(summary.batches, 3);
        assert!(summary.max_temperature > 1800.0 && summary.max_temperature < 2100.0);
        assert_eq!(summary.voxels.totals.points_applied, 300);
        assert_eq!(summary.voxels.totals.values_applied, 600, "temperature and melt-pool area");
        assert_eq!(summary.buffer.total_added, 300);
        let recent = summary.recent_mean_temperature.unwrap();
        assert!((1850.0..1950.0).contains(&recent), "{recent}");
    }
}
