//! `qadf-stream`: the command line of the streaming layer.

mod allocator;
mod production;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use qadf_client::logging::{Level, LogFormat, Logger};
use qadf_client::sim::SimConfig;
use qadf_client::{demo, schema_check};
use qadf_core_types::{Codec, Encoding, HistoryQuery, StreamingConfig, Timestamp};

/// Real-time streaming quality assessment for additive manufacturing.
#[derive(Parser)]
#[command(name = "qadf-stream", version)]
struct Cli {
    /// TOML configuration file (environment variables QADF_<FIELD> override it).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Log lines as text (the message alone) or JSON objects (time, level, message).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Least urgent log lines written: info, warn or error.
    #[arg(long, global = true, value_enum, default_value_t = Level::Info)]
    log_level: Level,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Simulate a laser powder-bed-fusion build with labelled defects and stream it through the full
    /// pipeline on embedded defaults (no services), serving the live dashboard.
    Demo(DemoArgs),
    /// Production mode: consume Kafka, process, store history and commit offsets after storage.
    Run(RunArgs),
    /// Send a simulated build to Kafka.
    ProduceSim(ProduceSimArgs),
    /// Read stored history.
    Query(QueryArgs),
    /// The message schema: check sample messages against it.
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Quality rules: check a rules file.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Asks a running `run` whether it is ready (its /health/ready): one line per check; exit
    /// status 0 ready, 1 not ready, 2 not reachable.
    Status {
        /// Address `run` serves on (default: dashboard_addr of the configuration).
        #[arg(long)]
        addr: Option<String>,
    },
}

/// `qadf-stream rules ...`.
#[derive(Subcommand)]
enum RulesCommand {
    /// Checks a rules file and prints its rules, or every bad field (exit status 1).
    Check {
        /// The rules file.
        file: PathBuf,
        /// Sample rate of the monitors in Hz, for gap rules in sample periods when the file gives none.
        #[arg(long)]
        sample_rate_hz: Option<f64>,
    },
}

/// `qadf-stream schema ...`.
#[derive(Subcommand)]
enum SchemaCommand {
    /// Reads sample messages, one per line, and prints the samples each maps to or why it is
    /// refused (exit status 1 if any is refused).
    Check {
        /// File of messages, one per line (`-` reads standard input).
        file: PathBuf,
        /// Kafka key the messages are taken to carry (for `schema.build_from = "kafka_key"`).
        #[arg(long)]
        key: Option<String>,
    },
}

/// The options of `demo`.
#[derive(clap::Args)]
struct DemoArgs {
    /// Layers to build.
    #[arg(long, default_value_t = 20)]
    layers: u32,
    /// Side of the simulated square part in mm.
    #[arg(long, default_value_t = 20.0)]
    part_size: f64,
    /// Seed of the simulator (noise and defect places).
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Samples per second to send (a real monitor: 100,000); 0 sends as fast as possible.
    #[arg(long, default_value_t = 100_000.0)]
    rate: f64,
    /// Address of the live dashboard (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8765")]
    dashboard: String,
    /// Do not serve the dashboard.
    #[arg(long)]
    no_dashboard: bool,
    /// After the build, keep serving the dashboard until Ctrl-C.
    #[arg(long)]
    hold: bool,
    /// Start the build only when the first dashboard viewer connects.
    #[arg(long)]
    wait_for_viewer: bool,
    /// Keep the history in <DIR>/history.redb (default: history is not kept).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Message encoding on the (in-process) wire: json or bincode (overrides the configuration).
    #[arg(long)]
    encoding: Option<String>,
    /// Quality rules file (default: `rules_file` of the configuration, else examples/rules/demo.toml).
    #[arg(long)]
    rules: Option<PathBuf>,
    /// Halt the machine after this layer (counted from 0) for --pause-seconds: the page reads stalled.
    #[arg(long)]
    pause_after_layer: Option<u32>,
    /// How long --pause-after-layer halts, in seconds.
    #[arg(long, default_value_t = 15.0, requires = "pause_after_layer")]
    pause_seconds: f64,
}

/// The options of `run`.
#[derive(clap::Args)]
struct RunArgs {
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
    /// Rebuild the voxel grids and the rules' windows and charts from the stored history before consuming (after a restart).
    #[arg(long)]
    restore_voxels: bool,
    /// Sampling rate of the monitors in Hz (for gap rules given in sample periods).
    #[arg(long, default_value_t = 100_000.0)]
    sample_rate_hz: f64,
    /// Quality rules file (default: `rules_file` of the configuration, else the demo's example rules).
    #[arg(long)]
    rules: Option<PathBuf>,
    /// Serve the live page, /metrics and /health here (overrides dashboard_addr; port 0 picks one).
    #[arg(long)]
    dashboard_addr: Option<String>,
    /// Serve no live page, metrics or health endpoints.
    #[arg(long, conflicts_with = "dashboard_addr")]
    no_dashboard: bool,
}

/// The options of `produce-sim`.
#[derive(clap::Args)]
struct ProduceSimArgs {
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
    /// Inject the demo's labelled defects (hot spot, cold track, stuck sensor, dropout).
    #[arg(long)]
    defects: bool,
}

/// The options of `query`.
#[derive(clap::Args)]
struct QueryArgs {
    /// Start, RFC 3339 (default: the epoch).
    #[arg(long)]
    from: Option<String>,
    /// End (exclusive), RFC 3339 (default: now).
    #[arg(long)]
    to: Option<String>,
    /// Only this build.
    #[arg(long)]
    build: Option<String>,
    /// Only this source (sensor).
    #[arg(long)]
    source: Option<String>,
    /// Only this layer.
    #[arg(long)]
    layer: Option<u32>,
    /// Only samples with this tag, as NAME=VALUE (repeatable: every one must match).
    #[arg(long)]
    tag: Vec<String>,
    /// Samples to pass over first (paging, in time order).
    #[arg(long, default_value_t = 0)]
    skip: usize,
    /// Most samples to print.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Print the number of matching samples only (skip and limit aside; from bucket counts).
    #[arg(long)]
    count: bool,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    json: bool,
    /// Directory of the embedded store (used when MongoDB storage is disabled).
    #[arg(long, default_value = "qadf-data")]
    data_dir: PathBuf,
}

fn parse_time(text: Option<&str>, default: Timestamp) -> Result<Timestamp> {
    text.map_or(Ok(default), |t| Timestamp::parse_rfc3339(t).map_err(anyhow::Error::msg))
}

/// `--instance i --instances n`: n at least 1 and i below n.
fn check_instance(instance: Option<u32>, instances: Option<u32>) -> Result<Option<(u32, u32)>> {
    match instance.zip(instances) {
        Some((_, 0)) => anyhow::bail!("--instances: must be at least 1"),
        Some((i, n)) if i >= n => {
            anyhow::bail!("--instance: {i} is not below --instances {n} (instances are numbered 0 to {})", n - 1)
        }
        pair => Ok(pair),
    }
}

/// A number of seconds from the command line: finite, 0 or more, at most a year.
fn seconds(flag: &str, value: f64) -> Result<Duration> {
    anyhow::ensure!(
        value.is_finite() && (0.0..=365.0 * 86_400.0).contains(&value),
        "{flag}: {value} is not a number of seconds from 0 to 31536000"
    );
    Ok(Duration::from_secs_f64(value))
}

/// `--sample-rate-hz`: the dropout check waits three sample periods, so the rate is bounded to
/// keep that wait between a nanosecond and a day.
fn check_sample_rate(hz: f64) -> Result<f64> {
    anyhow::ensure!(
        hz.is_finite() && (3.0 / 86_400.0..=3e9).contains(&hz),
        "--sample-rate-hz: {hz} is not a rate from 0.0000347 (a sample a day) to 3000000000 Hz"
    );
    Ok(hz)
}

/// The flags the process's signals set.
struct SignalFlags {
    /// The first SIGTERM or SIGINT sets it (`run` then drains, stores, commits and exits 0); a
    /// second one exits at once with status 130, uncommitted.
    stop: Arc<AtomicBool>,
    /// SIGHUP sets it: `run` reloads its rules file.
    reload: Arc<AtomicBool>,
}

/// Watches SIGTERM, SIGINT and SIGHUP on a thread of its own.
fn on_signals() -> Result<SignalFlags> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let flags = SignalFlags { stop: Arc::default(), reload: Arc::default() };
    let mut signals =
        signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP]).context("installing the signal handlers")?;
    let (stop, reload) = (flags.stop.clone(), flags.reload.clone());
    std::thread::Builder::new()
        .name("signals".to_owned())
        .spawn(move || {
            for signal in signals.forever() {
                if signal == SIGHUP {
                    reload.store(true, Ordering::SeqCst);
                } else if stop.swap(true, Ordering::SeqCst) {
                    eprintln!("second signal: exiting at once, uncommitted");
                    std::process::exit(130);
                } else {
                    eprintln!("signal received: finishing what is in flight (signal again to quit at once)");
                }
            }
        })
        .context("starting the signal thread")?;
    Ok(flags)
}

fn main() {
    allocator::tune();
    let cli = Cli::parse();
    let (format, level) = (cli.log_format, cli.log_level);
    let outcome = StreamingConfig::load(cli.config.as_deref()).map_err(anyhow::Error::from).and_then(|config| {
        let log = Logger::new(format, level, &config);
        dispatch(config, cli.command, &log).map_err(|e| anyhow::anyhow!(log.mask(&format!("{e:#}"))))
    });
    if let Err(e) = outcome {
        // Whatever failed, its message is masked: no password of a URI is ever printed.
        Logger::new(format, Level::Error, &StreamingConfig::default()).log(Level::Error, &format!("error: {e:#}"));
        std::process::exit(1);
    }
}

fn dispatch(config: StreamingConfig, command: Command, log: &Logger) -> Result<()> {
    match command {
        Command::Run(args) => run_command(config, args, log),
        Command::Status { addr } => status_command(&config, addr),
        Command::ProduceSim(args) => produce_sim_command(config, args),
        Command::Query(args) => query_command(config, args),
        Command::Demo(args) => demo_command(config, args),
        Command::Schema(SchemaCommand::Check { file, key }) => schema_check_command(&config, &file, key.as_deref()),
        Command::Rules(RulesCommand::Check { file, sample_rate_hz }) => {
            rules_check_command(&config, &file, sample_rate_hz)
        }
    }
}

/// `qadf-stream schema check FILE`.
fn schema_check_command(config: &StreamingConfig, file: &Path, key: Option<&str>) -> Result<()> {
    let codec = Codec::for_config(config)?;
    let input: Box<dyn std::io::BufRead> = if file == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
        Box::new(std::io::BufReader::new(f))
    };
    let limits = config.ingest_limits();
    let out = std::io::stdout().lock();
    let summary = schema_check::check_lines(&codec, &limits, key.map(str::as_bytes), input, out)?;
    if summary.refused > 0 {
        std::process::exit(1);
    }
    Ok(())
}

/// `qadf-stream rules check FILE`: the file's rules, one a line, or every bad field.
fn rules_check_command(config: &StreamingConfig, file: &Path, sample_rate_hz: Option<f64>) -> Result<()> {
    match qadf_client::checks::load(Some(file), sample_rate_hz, (config.window_size, config.buffer_size)) {
        Ok(loaded) => {
            for rule in &loaded.rules {
                println!("ok  {}: {:?} of {}", rule.name, rule.spec, rule.signal.as_deref().unwrap_or("(timing)"));
            }
            println!("{}: {} rules, all valid", loaded.origin, loaded.rules.len());
            Ok(())
        }
        Err(qadf_core_types::ConfigError::Invalid(errors)) => {
            for e in &errors {
                println!("bad {e}");
            }
            println!("{}: {} bad fields", file.display(), errors.len());
            std::process::exit(1);
        }
        Err(e) => {
            println!("bad {e}");
            std::process::exit(1);
        }
    }
}

/// `qadf-stream status`: the readiness of a running `run`.
fn status_command(config: &StreamingConfig, addr: Option<String>) -> Result<()> {
    let addr = addr.unwrap_or_else(|| config.dashboard_addr.clone());
    anyhow::ensure!(!addr.is_empty(), "no address: dashboard_addr is empty; pass --addr HOST:PORT");
    match qadf_client::ops::status::readiness(&addr, Duration::from_secs(5)) {
        Ok(ready) => {
            for line in qadf_client::ops::status::lines(&addr, &ready) {
                println!("{line}");
            }
            std::process::exit(if ready.ready { 0 } else { 1 });
        }
        Err(e) => {
            println!("{addr}: not reachable ({e})");
            std::process::exit(2);
        }
    }
}

/// `qadf-stream run`: consume, process, store and commit until idle or signalled.
fn run_command(mut config: StreamingConfig, args: RunArgs, log: &Logger) -> Result<()> {
    let RunArgs {
        instance,
        instances,
        exit_when_idle,
        data_dir,
        restore_voxels,
        sample_rate_hz,
        rules,
        dashboard_addr,
        no_dashboard,
    } = args;
    if no_dashboard {
        config.dashboard_addr.clear();
    } else if let Some(addr) = dashboard_addr {
        config.dashboard_addr = addr;
        config.validate()?;
    }
    let signals = on_signals()?;
    let options = production::RunOptions {
        instance: check_instance(instance, instances)?,
        exit_when_idle: exit_when_idle.map(|s| seconds("--exit-when-idle", s)).transpose()?,
        data_dir,
        restore_voxels,
        sample_rate_hz: check_sample_rate(sample_rate_hz)?,
        rules,
        shutdown: signals.stop,
        reload: signals.reload,
    };
    let report = production::run(config, options, log)?;
    log.info(&format!(
        "stopped: {} messages in {} polls, {} commits, {} dead letters, {} refused batches, {} alerts published{}",
        report.messages,
        report.polls,
        report.commits,
        report.dead_letters,
        report.failed_batches,
        report.alerts_published,
        report.error.as_deref().map(|e| format!(", error: {e}")).unwrap_or_default()
    ));
    if let Some(e) = report.error {
        anyhow::bail!(e);
    }
    Ok(())
}

/// `qadf-stream produce-sim`: the simulated build to Kafka.
fn produce_sim_command(mut config: StreamingConfig, args: ProduceSimArgs) -> Result<()> {
    let ProduceSimArgs { kafka, topic, partitions, layers, part_size, build, seed, defects } = args;
    if let Some(k) = kafka {
        config.kafka_bootstrap_servers = vec![k];
    }
    if let Some(t) = topic {
        config.kafka_topic = t;
    }
    config.validate()?;
    let mut sim = SimConfig { layers, part_size_mm: part_size, seed, build_id: build, ..SimConfig::default() };
    if defects {
        sim.defects = demo::demo_defects(&sim);
    }
    let sent = production::produce_sim(&config, sim, partitions).context("producing the simulated build")?;
    println!("sent {sent} samples to {}", config.kafka_topic);
    Ok(())
}

/// `qadf-stream query`: stored history as a table, JSON lines or a count.
fn query_command(config: StreamingConfig, args: QueryArgs) -> Result<()> {
    let QueryArgs { from, to, build, source, layer, tag, skip, limit, count, json, data_dir } = args;
    let tags = tag
        .iter()
        .map(|t| t.split_once('=').map(|(n, v)| (n.to_owned(), v.to_owned())))
        .collect::<Option<Vec<_>>>()
        .context("--tag takes NAME=VALUE")?;
    let q = HistoryQuery {
        start: parse_time(from.as_deref(), Timestamp::EPOCH)?,
        end: parse_time(to.as_deref(), Timestamp::now())?,
        build_id: build,
        source_id: source,
        layer,
        tags,
        skip,
        limit,
    };
    if count {
        println!("{}", production::count(&config, &data_dir, &q)?);
        return Ok(());
    }
    let found = production::query(&config, &data_dir, &q)?;
    if json {
        for s in &found {
            println!("{}", serde_json::to_string(s)?);
        }
    } else {
        println!("{:<32} {:<14} {:>5} {:>24}  signals", "timestamp", "build", "layer", "position (mm)");
        for s in &found {
            let p = s.position.map_or_else(|| "-".to_owned(), |p| format!("{:.2},{:.2},{:.3}", p.x, p.y, p.z));
            let signals: Vec<String> = s.signals.iter().map(|(n, v)| format!("{n}={v:.3}")).collect();
            println!("{:<32} {:<14} {:>5} {:>24}  {}", s.timestamp, s.build_id, s.layer, p, signals.join(" "));
        }
    }
    Ok(())
}

/// `qadf-stream demo`: the simulated build through the production path on embedded defaults.
fn demo_command(mut config: StreamingConfig, args: DemoArgs) -> Result<()> {
    let DemoArgs {
        layers,
        part_size,
        seed,
        rate,
        dashboard,
        no_dashboard,
        hold,
        wait_for_viewer,
        data_dir,
        encoding,
        rules,
        pause_after_layer,
        pause_seconds,
    } = args;
    anyhow::ensure!(
        pause_seconds.is_finite() && (0.0..=86_400.0).contains(&pause_seconds),
        "--pause-seconds: a number of seconds from 0 to 86400"
    );
    if let Some(e) = encoding {
        config.message_encoding = match e.as_str() {
            "json" => Encoding::Json,
            "bincode" => Encoding::Bincode,
            other => anyhow::bail!("--encoding: `{other}` is not an encoding; use json or bincode"),
        };
    }
    anyhow::ensure!(rate.is_finite() && rate >= 0.0, "--rate: must be a number of samples/s >= 0 (0: no limit)");
    let mut sim = SimConfig { layers, part_size_mm: part_size, seed, ..SimConfig::default() };
    sim.defects = demo::demo_defects(&sim);
    let interrupt = on_signals()?.stop;
    println!(
        "simulating {layers} layers of a {part_size} mm part (seed {seed}) at {}, {:?} messages of {} samples",
        if rate > 0.0 { format!("{rate} samples/s") } else { "full speed".to_owned() },
        config.message_encoding,
        config.processing_batch_size
    );
    for d in &sim.defects {
        println!(
            "  injected {:?} in layer {} at ({:.1}, {:.1}) mm, radius {:.1} mm",
            d.kind, d.layer, d.center[0], d.center[1], d.radius_mm
        );
    }
    let options = demo::DemoOptions {
        sim,
        rate: (rate > 0.0).then_some(rate),
        dashboard: (!no_dashboard).then_some(dashboard),
        data_dir,
        hold,
        wait_for_viewer,
        interrupt,
        rules,
        pause: pause_after_layer.map(|l| (l, Duration::from_secs_f64(pause_seconds))),
    };
    let summary = demo::run(config, options, |event| match event {
        demo::DemoEvent::Serving(url) => println!("live dashboard: {url}"),
        demo::DemoEvent::Waiting => println!("waiting for a dashboard viewer before starting the build"),
        demo::DemoEvent::Layer(layer, s) => println!(
            "layer {:>4}/{layers} sent: {:>9} samples, {:>9} processed, {:>9.0} samples/s, {:>3} alerts, batch p99 {:.3} ms",
            layer + 1,
            s.samples,
            s.processed,
            s.samples_per_second(),
            s.alerts,
            s.latency_ms.1
        ),
        demo::DemoEvent::Holding => println!("build done; the dashboard stays up until Ctrl-C"),
    })?;
    println!(
        "{}: {} of {} layers, {} samples sent in {} messages, {} processed in {:.2} s ({:.0} samples/s), {} dead letters",
        if summary.interrupted { "interrupted" } else { "done" },
        summary.layers_done,
        layers,
        summary.samples,
        summary.messages,
        summary.processed,
        summary.seconds,
        summary.samples_per_second(),
        summary.dead_letters
    );
    println!(
        "quality: {} alerts; {} of {} injected defects detected, {} alerts elsewhere; batch latency p50 {:.3} ms, p99 {:.3} ms",
        summary.alerts,
        summary.detected,
        summary.defects,
        summary.false_alarms,
        summary.latency_ms.0,
        summary.latency_ms.1
    );
    println!(
        "voxels: {} values in {} blocks ({:.1} MiB, {} out of bounds); live view: {} frames, {} dropped for slow viewers",
        summary.voxels.totals.values_applied,
        summary.voxels.blocks_allocated,
        summary.voxels.bytes_used as f64 / 1048576.0,
        summary.voxels.totals.rejected_out_of_bounds,
        summary.feed.frames_sent,
        summary.feed.frames_dropped
    );
    if let Some(e) = summary.error {
        anyhow::bail!("the consumer stopped: {e}");
    }
    Ok(())
}
