//! Scenario 5 — soak: `qadf-stream run` with MongoDB history (SecantusDB, bucket documents)
//! consumes a real broker fed at 100,000 samples/s — one laser powder-bed-fusion monitor. After a
//! warm-up its resident memory is flat (the mean of the last third within 10% of
//! the first third's; single readings within 25% of the lowest: the bounded in-flight buffers — a
//! Kafka fetch, a decoded part, the history writer's queue — come and go, and in a ~30 MiB process
//! they are ~10% by themselves), its batch p99 stays put, and the backlog (produced − stored in
//! MongoDB) does not grow; at the end every sample is in the history. The simulated part repeats its first ten layers, so the voxel grid stops growing
//! after the first pass: what is measured is the stream, not the part. Messages carry 1,000
//! samples (20 ms of data, as a gateway batching a 100 kHz sensor would send them). This test found
//! the consumer stalling for good once the broker's in-memory log took longer to answer than the
//! consumer's 1-5 ms fetch waits (the broker then answers empty); see `catch_up_wait` in kafka-io
//! and docs/PERFORMANCE.md.
//!
//! CI: 60 s (20 s warm-up); `QADF_TEST_FULL=1`: 10 minutes (60 s warm-up). Run it against a release
//! binary (`cargo xtask ci` and `cargo xtask scenarios` build one): a debug build cannot keep the rate.

mod scenario;

use std::time::{Duration, Instant};

use qadf_client::sim::{SimConfig, Simulator};
use qadf_core_types::{Codec, Encoding, MessageSink, OutgoingMessage, SampleBatch, Timestamp};
use qadf_integration_tests::Service;
use qadf_kafka_io::KafkaProducer;
use scenario::{Scenario, progress, stored_so_far};

const RATE: f64 = 100_000.0;
/// Samples per message: 20 ms of data, as a gateway batching a 100 kHz sensor would send it.
const PER_MESSAGE: usize = 1000;

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// The soak's messages: the simulated part's first ten layers over and over, bincode-encoded.
struct Payloads {
    simulator: Simulator,
    layer: u32,
    pending: std::vec::IntoIter<qadf_core_types::Sample>,
    codec: Codec,
}

impl Payloads {
    /// The next message's sample count and payload.
    fn next(&mut self) -> (usize, Vec<u8>) {
        let mut chunk: Vec<_> = self.pending.by_ref().take(PER_MESSAGE).collect();
        while chunk.len() < PER_MESSAGE {
            self.pending = self.simulator.layer(self.layer % 10).into_iter();
            self.layer += 1;
            chunk.extend(self.pending.by_ref().take(PER_MESSAGE - chunk.len()));
        }
        (chunk.len(), self.codec.encode(&SampleBatch::new(chunk)).unwrap())
    }
}

#[test]
fn a_monitor_s_hundred_thousand_samples_per_second_into_mongodb_with_flat_memory_latency_and_backlog() {
    let (total, warm_up) = if scenario::full() {
        (600, 60)
    } else {
        (std::env::var("QADF_TEST_SOAK_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(60), 20)
    };
    let mut s = Scenario::new("soak");
    // Short waits per fetch: the broker here (Tansu) holds a fetch for all of its wait.
    s.extra.push(("QADF_MAX_BATCH_WAIT_MS".into(), "20".into()));
    let producer = KafkaProducer::new(&[Service::Kafka.addr()]).unwrap();
    producer.create_topic(&s.topic, 2).unwrap();
    // The messages are made before the clock starts (CI sizes; the full 10 minutes makes them on
    // the way): what is timed is `run`, not this test's debug-built simulator and encoder.
    let sim = SimConfig { layers: 10, part_size_mm: 5.0, build_id: "soak".into(), ..SimConfig::default() };
    let mut messages = Payloads {
        simulator: Simulator::new(sim, Timestamp::now()),
        layer: 0,
        pending: Vec::new().into_iter(),
        codec: Codec::new(Encoding::Bincode),
    };
    let made_ahead = if scenario::full() { 0 } else { (total as f64 * RATE / PER_MESSAGE as f64) as usize + 1 };
    let mut ahead = (0..made_ahead).map(|_| messages.next()).collect::<Vec<_>>().into_iter();
    let run = s.spawn_run(&[]);
    let pid = run.child.id();

    let started = Instant::now();
    let mut sent = 0u64;
    let mut next_sample = Duration::from_secs(1);
    let mut samples_log: Vec<(f64, u64, u64, f64)> = Vec::new(); // (t, rss KiB, backlog stored, p99)
    while started.elapsed() < Duration::from_secs(total) {
        // One message per send, 20 ms of data, alternating partitions.
        let (count, payload) = ahead.next().unwrap_or_else(|| messages.next());
        sent += count as u64;
        let batch = vec![OutgoingMessage {
            topic: s.topic.clone(),
            partition: Some((sent / PER_MESSAGE as u64 % 2) as i32),
            key: None,
            payload,
            headers: Vec::new(),
        }];
        producer.send(batch).map_err(|e| e.error).unwrap();
        let due = Duration::from_secs_f64(sent as f64 / RATE);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
        if started.elapsed() >= next_sample {
            next_sample += Duration::from_secs(1);
            let lines = run.lines();
            let p99 = progress(&lines).map_or(0.0, |(_, p99)| p99);
            let rss = rss_kib(pid).unwrap_or_else(|| panic!("qadf-stream exited:\n{}", lines.join("\n")));
            samples_log.push((started.elapsed().as_secs_f64(), rss, sent.saturating_sub(stored_so_far(&lines)), p99));
        }
    }
    let rate = sent as f64 / started.elapsed().as_secs_f64();
    let after: Vec<_> = samples_log.iter().filter(|(t, ..)| *t >= warm_up as f64).collect();
    let (lo, hi) = after.iter().fold((u64::MAX, 0), |(lo, hi), (_, rss, ..)| (lo.min(*rss), hi.max(*rss)));
    let p99_start = after.first().unwrap().3;
    let p99_end = after.last().unwrap().3;
    let backlog_max = after.iter().map(|s| s.2).max().unwrap();
    let third = after.len() / 3;
    let (first, last) = (&after[..third], &after[after.len() - third..]);
    let mean = |part: &[&(f64, u64, u64, f64)], field: fn(&(f64, u64, u64, f64)) -> f64| {
        part.iter().map(|s| field(s)).sum::<f64>() / part.len() as f64
    };
    let (early, late) = (mean(first, |s| s.2 as f64), mean(last, |s| s.2 as f64));
    let (rss_early, rss_late) = (mean(first, |s| s.1 as f64), mean(last, |s| s.1 as f64));
    eprintln!(
        "soak {total} s at {rate:.0} samples/s: RSS {lo}..{hi} KiB after warm-up, mean of the first third \
         {rss_early:.0} KiB, of the last third {rss_late:.0} KiB; batch p99 {p99_start:.2} -> {p99_end:.2} ms; \
         backlog max {backlog_max}, mean early {early:.0} late {late:.0} samples"
    );
    let series: Vec<u64> = samples_log.iter().step_by(5).map(|s| s.1 / 1024).collect();
    eprintln!("RSS every 5 s (MiB): {series:?}");
    let lines = run.lines();
    eprintln!("last progress: {:?}", &lines[lines.len().saturating_sub(2)..]);
    let store = s.store();
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.count().unwrap_or(0) < sent && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    let in_history = store.count().unwrap();
    drop(run);
    store.drop_all().unwrap();
    assert_eq!(in_history, sent, "every sample produced is in the history");
    assert!(rate > 0.95 * RATE, "the producer kept the rate: {rate:.0}");
    assert!(
        rss_late <= rss_early * 1.10,
        "RSS flat within 10% after warm-up (mean of the last third against the first): {rss_early:.0} -> \
         {rss_late:.0} KiB"
    );
    assert!(hi as f64 <= lo as f64 * 1.25, "RSS transients within 25% after warm-up: {lo}..{hi} KiB");
    assert!(
        p99_end <= (2.0 * p99_start).max(p99_start + 5.0) && p99_end < 100.0,
        "p99 stable: {p99_start} -> {p99_end}"
    );
    // Progress lines come every 2 s, so ~2-3 s of data is reporting delay, not a queue.
    assert!(backlog_max < (4.0 * RATE) as u64, "backlog bounded: {backlog_max}");
    assert!(late <= early + RATE, "backlog not growing: {early:.0} -> {late:.0}");
}
