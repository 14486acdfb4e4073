//! `qadf-stream`: the command line of the streaming layer.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use qadf_client::demo;
use qadf_client::sim::SimConfig;
use qadf_core_types::StreamingConfig;

/// Real-time streaming quality assessment for additive manufacturing.
#[derive(Parser)]
#[command(name = "qadf-stream", version)]
struct Cli {
    /// TOML configuration file (environment variables QADF_<FIELD> override it).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Simulate a laser powder-bed-fusion build and stream it on embedded defaults (no services).
    Demo {
        /// Layers to build.
        #[arg(long, default_value_t = 20)]
        layers: u32,
        /// Side of the simulated square part in mm.
        #[arg(long, default_value_t = 20.0)]
        part_size: f64,
        /// Seed of the simulator.
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let config = StreamingConfig::load(cli.config.as_deref())?;
    match cli.command {
        Command::Demo { layers, part_size, seed } => {
            let sim = SimConfig { layers, part_size_mm: part_size, seed, ..SimConfig::default() };
            println!(
                "simulating {layers} layers of a {part_size} mm part (seed {seed}), {:?} messages",
                config.message_encoding
            );
            let summary = demo::run(&config, sim, |layer, s| {
                println!(
                    "layer {:>4} done: {:>10} samples, {:>10.0} samples/s, {:>8} voxel blocks, {:>7.1} MiB grid",
                    layer,
                    s.samples,
                    s.samples as f64 / s.seconds.max(1e-9),
                    s.voxels.blocks_allocated,
                    s.voxels.bytes_used as f64 / 1048576.0
                );
            });
            println!(
                "done: {} samples in {} batches, {} accepted, {} rejected, {:.2} s ({:.0} samples/s), max temperature {:.1} K",
                summary.samples,
                summary.batches,
                summary.accepted,
                summary.rejected,
                summary.seconds,
                summary.samples as f64 / summary.seconds.max(1e-9),
                summary.max_temperature
            );
            println!(
                "voxels: {} values in {} blocks ({} out of bounds); temperature buffer: {} held, mean of the last second {:.1} K",
                summary.voxels.totals.values_applied,
                summary.voxels.blocks_allocated,
                summary.voxels.totals.rejected_out_of_bounds,
                summary.buffer.current_size,
                summary.recent_mean_temperature.unwrap_or(f64::NAN)
            );
            if summary.rejected > 0 {
                anyhow::bail!("{} samples were rejected", summary.rejected);
            }
            Ok(())
        }
    }
}
