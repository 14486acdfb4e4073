//! `qadf-stream`: the command line of the streaming layer.

mod production;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use qadf_client::demo;
use qadf_client::sim::SimConfig;
use qadf_core_types::{HistoryQuery, StreamingConfig, Timestamp};

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
    /// Production mode: consume Kafka, process, store history and commit offsets after storage.
    Run {
        /// This instance's number when several share the topic (partition p goes to p mod n).
        #[arg(long, requires = "instances")]
        instance: Option<u32>,
        /// How many instances share the topic.
        #[arg(long, requires = "instance")]
        instances: Option<u32>,
        /// Stop after this many seconds without a message (default: run until stopped).
        #[arg(long)]
        exit_when_idle: Option<f64>,
        /// Directory of the embedded store (used when MongoDB storage is disabled).
        #[arg(long, default_value = "qadf-data")]
        data_dir: PathBuf,
    },
    /// Send a simulated build to Kafka.
    ProduceSim {
        /// Kafka broker host:port (overrides the configuration).
        #[arg(long)]
        kafka: Option<String>,
        /// Topic (overrides the configuration).
        #[arg(long)]
        topic: Option<String>,
        /// Partitions of the topic if it has to be created.
        #[arg(long, default_value_t = 4)]
        partitions: i32,
        /// Layers to build.
        #[arg(long, default_value_t = 5)]
        layers: u32,
        /// Side of the simulated square part in mm.
        #[arg(long, default_value_t = 5.0)]
        part_size: f64,
        /// Build id.
        #[arg(long, default_value = "sim-build")]
        build: String,
        /// Seed of the simulator.
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
    /// Read stored history.
    Query {
        /// Start, RFC 3339 (default: the epoch).
        #[arg(long)]
        from: Option<String>,
        /// End (exclusive), RFC 3339 (default: now).
        #[arg(long)]
        to: Option<String>,
        /// Only this build.
        #[arg(long)]
        build: Option<String>,
        /// Only this layer.
        #[arg(long)]
        layer: Option<u32>,
        /// Most samples to print.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Print the count only.
        #[arg(long)]
        count: bool,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
        /// Directory of the embedded store (used when MongoDB storage is disabled).
        #[arg(long, default_value = "qadf-data")]
        data_dir: PathBuf,
    },
}

fn parse_time(text: Option<&str>, default: Timestamp) -> Result<Timestamp> {
    text.map_or(Ok(default), |t| Timestamp::parse_rfc3339(t).map_err(anyhow::Error::msg))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let mut config = StreamingConfig::load(cli.config.as_deref())?;
    match cli.command {
        Command::Run { instance, instances, exit_when_idle, data_dir } => {
            let options = production::RunOptions {
                instance: instance.zip(instances),
                exit_when_idle: exit_when_idle.map(Duration::from_secs_f64),
                data_dir,
            };
            let report = production::run(config, options, |line| println!("{line}"))?;
            println!(
                "stopped: {} messages in {} polls, {} commits, {} dead letters, {} refused batches{}",
                report.messages,
                report.polls,
                report.commits,
                report.dead_letters,
                report.failed_batches,
                report.error.as_deref().map(|e| format!(", error: {e}")).unwrap_or_default()
            );
            if let Some(e) = report.error {
                anyhow::bail!(e);
            }
            Ok(())
        }
        Command::ProduceSim { kafka, topic, partitions, layers, part_size, build, seed } => {
            if let Some(k) = kafka {
                config.kafka_bootstrap_servers = vec![k];
            }
            if let Some(t) = topic {
                config.kafka_topic = t;
            }
            config.validate()?;
            let sim = SimConfig { layers, part_size_mm: part_size, seed, build_id: build, ..SimConfig::default() };
            let sent = production::produce_sim(&config, sim, partitions).context("producing the simulated build")?;
            println!("sent {sent} samples to {}", config.kafka_topic);
            Ok(())
        }
        Command::Query { from, to, build, layer, limit, count, json, data_dir } => {
            let q = HistoryQuery {
                start: parse_time(from.as_deref(), Timestamp::EPOCH)?,
                end: parse_time(to.as_deref(), Timestamp::now())?,
                build_id: build,
                source_id: None,
                layer,
                skip: 0,
                limit: if count { usize::MAX } else { limit },
            };
            let found = production::query(&config, &data_dir, &q)?;
            if count {
                println!("{}", found.len());
            } else if json {
                for s in &found {
                    println!("{}", serde_json::to_string(s)?);
                }
            } else {
                println!("{:<32} {:<14} {:>5} {:>24}  signals", "timestamp", "build", "layer", "position (mm)");
                for s in &found {
                    let p = s
                        .sample
                        .position
                        .map_or_else(|| "-".to_owned(), |p| format!("{:.2},{:.2},{:.3}", p.x, p.y, p.z));
                    let signals: Vec<String> = s.sample.signals.iter().map(|(n, v)| format!("{n}={v:.3}")).collect();
                    println!(
                        "{:<32} {:<14} {:>5} {:>24}  {}",
                        s.sample.timestamp,
                        s.sample.build_id,
                        s.sample.layer,
                        p,
                        signals.join(" ")
                    );
                }
            }
            Ok(())
        }
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
