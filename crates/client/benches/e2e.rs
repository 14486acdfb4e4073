//! End-to-end figures of the client (`cargo xtask bench e2e`):
//!
//! 1. Live-view latency: sample batch handed to `process_stream_batch` → a WebSocket frame that
//!    reflects it received by each of 10 connected clients (p50/p99/max over every batch × client).
//! 2. The demo on embedded defaults at full speed: sustained samples/s end to end.
//! 3. A build's state rebuilt from its stored history (what a consumer-group member does for a
//!    build whose partition it gained): the voxel grid alone and with the default rules, beside
//!    the history read alone (the ceiling) in the same run.
//!
//! `QADF_BENCH_BATCHES` (default 3000) sets how many batches the latency run sends.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use qadf_client::dashboard::{DashboardServer, LiveFeed, LiveOptions};
use qadf_client::demo::{self, DemoOptions};
use qadf_client::sim::{SimConfig, Simulator};
use qadf_client::{Ingest, StreamingClient};
use qadf_core_types::{
    Codec, Encoding, HistoryQuery, HistoryStore, MessageSink, OutgoingMessage, SampleBatch, StreamingConfig, Timestamp,
};
use serde::Deserialize;

const CLIENTS: usize = 10;

#[derive(Deserialize)]
struct FrameHead {
    newest_sample_ns: Option<i64>,
}

/// Frames a client received: (newest sample time in the frame, when it arrived).
type Received = Vec<(i64, Instant)>;

fn viewer(url: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Received> {
    std::thread::spawn(move || {
        let (mut ws, _) = tungstenite::connect(url.as_str()).expect("connecting a viewer");
        if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_mut() {
            s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
            s.set_nodelay(true).unwrap();
        }
        let mut got = Received::new();
        while !stop.load(Ordering::SeqCst) {
            match ws.read() {
                Ok(tungstenite::Message::Text(text)) => {
                    let at = Instant::now();
                    let head: FrameHead = serde_json::from_str(&text).expect("a valid frame");
                    if let Some(ns) = head.newest_sample_ns {
                        got.push((ns, at));
                    }
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(e) => panic!("viewer: {e}"),
            }
        }
        got
    })
}

/// Latency to 10 viewers; `via_consumer` sends bincode messages through the in-process transport
/// and `Ingest` (the demo's path) instead of calling `process_stream_batch`.
/// Prints the latency figures and returns the p99 in ms.
fn websocket_latency(batches: usize, via_consumer: bool) -> f64 {
    let config = StreamingConfig { message_encoding: Encoding::Bincode, ..StreamingConfig::default() };
    let client = Arc::new(StreamingClient::new(config).unwrap());
    let feed = Arc::new(LiveFeed::start(client.clone(), LiveOptions::default()).unwrap());
    let server = DashboardServer::start("127.0.0.1:0", feed.clone()).unwrap();
    let url = format!("ws://{}/ws", server.local_addr());
    let stop = Arc::new(AtomicBool::new(false));
    let viewers: Vec<_> = (0..CLIENTS).map(|_| viewer(url.clone(), stop.clone())).collect();
    let sink = via_consumer.then(|| {
        let offsets = Arc::new(qadf_kafka_io::MemoryOffsetStore::default());
        let (sink, source) = qadf_kafka_io::in_process::channel(256, "bench", offsets);
        let f = feed.clone();
        let ingest = Ingest::start(&client, Box::new(source), Default::default(), move |r| f.on_result(r));
        (sink, ingest)
    });
    let codec = Codec::new(Encoding::Bincode);
    while feed.statistics().subscribers < CLIENTS {
        std::thread::sleep(Duration::from_millis(5));
    }
    // A monitor at 100 kHz sends a 100-sample batch every millisecond.
    let sim = SimConfig { layers: 1000, part_size_mm: 10.0, ..SimConfig::default() };
    let mut simulator = Simulator::new(sim, Timestamp::now());
    let mut pushed: Vec<(i64, Instant)> = Vec::with_capacity(batches);
    let mut layer = 0;
    let mut pending = Vec::new().into_iter();
    let started = Instant::now();
    for i in 0..batches {
        let chunk: Vec<_> = pending.by_ref().take(100).collect();
        let chunk = if chunk.is_empty() {
            pending = simulator.layer(layer).into_iter();
            layer += 1;
            pending.by_ref().take(100).collect()
        } else {
            chunk
        };
        let newest = chunk.iter().map(|s| s.timestamp.as_nanos()).max().unwrap();
        let due = started + Duration::from_millis(i as u64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let t0 = Instant::now();
        match &sink {
            Some((sink, _)) => {
                let payload = codec.encode(&SampleBatch::new(chunk)).unwrap();
                let message =
                    OutgoingMessage { topic: "t".into(), partition: Some(0), key: None, payload, headers: Vec::new() };
                sink.send(vec![message]).unwrap();
            }
            None => {
                let result = client.process_stream_batch(SampleBatch::new(chunk)).unwrap();
                feed.on_result(&result);
            }
        }
        pushed.push((newest, t0));
    }
    std::thread::sleep(Duration::from_millis(300));
    if let Some((_, ingest)) = sink {
        ingest.stop().unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    let received: Vec<Received> = viewers.into_iter().map(|v| v.join().unwrap()).collect();
    let mut h = Histogram::<u64>::new(3).unwrap();
    let mut missing = 0;
    for frames in &received {
        for &(newest, t0) in &pushed {
            // The first frame at or after the batch that reflects it.
            match frames.iter().find(|(ns, at)| *ns >= newest && *at >= t0) {
                Some((_, at)) => h.record(at.duration_since(t0).as_micros() as u64).unwrap(),
                None => missing += 1,
            }
        }
    }
    let stats = feed.statistics();
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let path = if via_consumer {
        "bincode message sent on the in-process transport -> consumer -> pipeline"
    } else {
        "batch handed to process_stream_batch"
    };
    println!("## live view latency: {path} -> WebSocket frame received, {CLIENTS} clients");
    println!(
        "{batches} batches of 100 samples at 1 per ms, {} (batch, client) pairs: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms; \
         {missing} pairs never reflected; {} frames published, {} dropped for slow viewers",
        h.len(),
        ms(0.5),
        ms(0.99),
        h.max() as f64 / 1000.0,
        stats.frames_sent,
        stats.frames_dropped
    );
    feed.shutdown();
    drop(server);
    ms(0.99)
}

/// Prints the demo's figures and returns (messages/s, batch p99 ms).
fn demo_throughput(encoding: Encoding, layers: u32) -> (f64, f64) {
    let mut sim = SimConfig { layers, part_size_mm: 20.0, ..SimConfig::default() };
    sim.defects = demo::demo_defects(&sim);
    let options = DemoOptions::headless(sim);
    let config = StreamingConfig { message_encoding: encoding, ..StreamingConfig::default() };
    let s = demo::run(config, options, |_| {}).unwrap();
    println!(
        "demo, {encoding:?}, {layers} layers: {} samples processed in {:.2} s = {:.0} samples/s; batch p99 {:.3} ms; \
         {} of {} defects detected, {} false alarms",
        s.processed,
        s.seconds,
        s.samples_per_second(),
        s.latency_ms.1,
        s.detected,
        s.defects,
        s.false_alarms
    );
    (s.messages as f64 / s.seconds, s.latency_ms.1)
}

/// Stores `layers` simulated layers in a fresh embedded history (100 samples a message, as
/// `produce-sim` sends them), then times the history read of the build and its rebuild by a
/// client without rules and by one with the default rules.
fn rebuild_from_history(layers: u32) {
    let dir = std::env::temp_dir().join(format!("qadf-bench-rebuild-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let history = qadf_storage::EmbeddedStore::open(&dir.join("history.redb")).unwrap();
    let sim = SimConfig { layers, part_size_mm: 20.0, ..SimConfig::default() };
    let mut simulator = Simulator::new(sim, Timestamp::from_nanos(1_795_000_000_000_000_000));
    let mut build = String::new();
    for layer in 0..layers {
        let samples = simulator.layer(layer);
        build = samples[0].build_id.to_string();
        for message in samples.chunks(100) {
            history.store_samples(message).unwrap();
        }
    }
    let t = Instant::now();
    let query = HistoryQuery { build_id: Some(build.clone()), ..HistoryQuery::all() };
    let read = history.query_stream_history(&query).unwrap().len();
    let read_rate = read as f64 / t.elapsed().as_secs_f64();
    let stateful = "[[rule]]\nname = \"mean\"\nkind = \"window\"\nsignal = \"temperature\"\nwindow = 100\nwarning = [1500.0, 2500.0]\n\
        [[rule]]\nname = \"z\"\nkind = \"zscore\"\nsignal = \"temperature\"\nwindow = 50\nk = 6.0\n\
        [[rule]]\nname = \"ewma\"\nkind = \"spc\"\nsignal = \"temperature\"\nchart = \"ewma\"\n\
        [[rule]]\nname = \"xbar\"\nkind = \"spc\"\nsignal = \"temperature\"\nchart = \"xbar_r\"\n";
    let variants = [
        ("voxel grid", None),
        ("voxel grid and the default rules' state", Some(None)),
        ("voxel grid and four stateful rules (window mean, z-score, EWMA, X-bar R)", Some(Some(stateful))),
    ];
    for (what, rules) in variants {
        let client = StreamingClient::new(StreamingConfig::default()).unwrap();
        let loaded = match rules {
            None => 0,
            Some(None) => client.load_rules(None, Some(100_000.0)).unwrap().rules.len(),
            Some(Some(text)) => {
                let rules = qadf_core_types::rules::RulesConfig::from_toml_str(text, "bench").unwrap();
                let rules = rules.compile(100, 1000).unwrap();
                client.set_rules(rules.clone()).unwrap();
                rules.len()
            }
        };
        let t = Instant::now();
        let applied = client.rebuild_from_history(&build, &history).unwrap();
        let seconds = t.elapsed().as_secs_f64();
        println!(
            "rebuild from history, {what} ({loaded} rules): {applied} samples in {seconds:.2} s = {:.0} samples/s \
             (the history read alone: {read} samples at {read_rate:.0} samples/s)",
            applied as f64 / seconds
        );
    }
    drop(history);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Peak resident memory of this process in MB (`VmHWM`).
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(f64::NAN);
    kib * 1024.0 / 1e6
}

/// A seed-target line for `cargo xtask bench`'s report: `TARGET | what | measured | target | verdict`.
fn target(what: &str, measured: String, target: &str, met: bool) {
    println!("TARGET | {what} | {measured} | {target} | {} |", if met { "met" } else { "**not met**" });
}

fn main() {
    // `cargo test --benches` runs bench targets with `--bench`-less arguments: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let batches = std::env::var("QADF_BENCH_BATCHES").ok().and_then(|v| v.parse().ok()).unwrap_or(3000);
    websocket_latency(batches, false);
    let ws_p99 = websocket_latency(batches, true);
    println!("## demo on embedded defaults, full speed (in-process transport, no dashboard viewers)");
    let (rate, batch_p99) = demo_throughput(Encoding::Bincode, 40);
    let (json_rate, json_p99) = demo_throughput(Encoding::Json, 40);
    let worst_p99 = batch_p99.max(json_p99);
    println!("## a build rebuilt from its stored history (a consumer-group member gaining its partition)");
    rebuild_from_history(10);
    target(
        "batch processing p99 (demo at full speed, bincode and JSON)",
        format!("{worst_p99:.1} ms"),
        "< 100 ms",
        worst_p99 < 100.0,
    );
    target(
        "messages of up to 100 samples processed per second end to end (demo, bincode / JSON)",
        format!("{rate:.0} / {json_rate:.0} msg/s"),
        "> 1000 msg/s",
        rate.min(json_rate) > 1000.0,
    );
    target(
        "WebSocket p99, message in -> frame at each of 10 viewers",
        format!("{ws_p99:.2} ms"),
        "< 50 ms",
        ws_p99 < 50.0,
    );
    let peak = peak_rss_mb();
    target(
        "peak RSS of the whole process over all of the above (buffers, grids, queues)",
        format!("{peak:.0} MB"),
        "< 500 MB buffer",
        peak < 500.0,
    );
}
