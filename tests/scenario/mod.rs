//! Shared by the end-to-end scenarios: names, the simulated data and its checksum, producing it to
//! Kafka, running `qadf-stream run` as a child process, and reading what it stored in MongoDB.
#![allow(dead_code)] // each scenario binary uses part of this module

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use qadf_client::sim::{SimConfig, Simulator};
use qadf_core_types::{
    Codec, Encoding, HistoryQuery, HistoryStore, MessageSink, OffsetStore, OutgoingMessage, Sample, SampleBatch,
    StreamingConfig, Timestamp,
};
use qadf_integration_tests::{Service, unique_name};
use qadf_kafka_io::{ConsumerConfig, KafkaConsumer, KafkaProducer, MemoryOffsetStore, REASON_HEADER};
use qadf_storage::MongoStore;

pub mod group;

/// Whether the full-size scenarios were asked for (`QADF_TEST_FULL=1`, `cargo xtask scenarios --full`).
pub fn full() -> bool {
    std::env::var("QADF_TEST_FULL").is_ok_and(|v| v == "1")
}

/// The `qadf-stream` binary (`QADF_TEST_QADF_STREAM`, set by `cargo xtask ci`, else `target/debug`).
pub fn binary() -> PathBuf {
    let path = std::env::var("QADF_TEST_QADF_STREAM")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/qadf-stream"));
    assert!(path.exists(), "{} is missing: build it with `cargo build -p qadf-client`", path.display());
    path
}

/// One scenario's isolated names and the environment `qadf-stream` runs with.
pub struct Scenario {
    /// Topic of the monitoring data.
    pub topic: String,
    /// Consumer group.
    pub group: String,
    /// MongoDB database.
    pub database: String,
    /// Extra `QADF_*` variables.
    pub extra: Vec<(String, String)>,
}

impl Scenario {
    /// Fresh names under `prefix`.
    pub fn new(prefix: &str) -> Scenario {
        let id = unique_name(prefix);
        Scenario { topic: format!("{id}_t"), group: format!("{id}_g"), database: format!("{id}_db"), extra: Vec::new() }
    }

    /// Fresh names under `prefix`, the instances members of one consumer group (session timeout
    /// `session_ms`, so a killed member's partitions move within it).
    pub fn in_group(prefix: &str, session_ms: u64) -> Scenario {
        let mut s = Scenario::new(prefix);
        s.extra = vec![
            ("QADF_ASSIGNMENT".to_owned(), "group".to_owned()),
            ("QADF_SESSION_TIMEOUT_MS".to_owned(), session_ms.to_string()),
            ("QADF_DRAIN_TIMEOUT_MS".to_owned(), (session_ms / 2).to_string()),
        ];
        s
    }

    /// The same topic, another group and database (an independent clean run).
    pub fn sibling(&self, suffix: &str) -> Scenario {
        Scenario {
            topic: self.topic.clone(),
            group: format!("{}_{suffix}", self.group),
            database: format!("{}_{suffix}", self.database),
            extra: self.extra.clone(),
        }
    }

    /// The configuration `qadf-stream run` sees.
    pub fn config(&self) -> StreamingConfig {
        StreamingConfig {
            kafka_bootstrap_servers: vec![Service::Kafka.addr()],
            kafka_topic: self.topic.clone(),
            consumer_group_id: self.group.clone(),
            dead_letter_topic: format!("{}_dlq", self.topic),
            enable_mongodb_storage: true,
            // Unchecked: a run may be started while a test has MongoDB stopped (`store` checks it).
            mongodb_uri: format!("mongodb://{}", Service::Mongodb.addr_unchecked()),
            mongodb_database: self.database.clone(),
            enable_redis_cache: false,
            message_encoding: Encoding::Bincode,
            max_batch_wait_ms: 50,
            ..StreamingConfig::default()
        }
    }

    fn env(&self) -> Vec<(String, String)> {
        let c = self.config();
        let mut env = vec![
            ("QADF_KAFKA_BOOTSTRAP_SERVERS".to_owned(), c.kafka_bootstrap_servers.join(",")),
            ("QADF_KAFKA_TOPIC".to_owned(), c.kafka_topic),
            ("QADF_CONSUMER_GROUP_ID".to_owned(), c.consumer_group_id),
            ("QADF_DEAD_LETTER_TOPIC".to_owned(), c.dead_letter_topic),
            ("QADF_ENABLE_MONGODB_STORAGE".to_owned(), "true".to_owned()),
            ("QADF_MONGODB_URI".to_owned(), c.mongodb_uri),
            ("QADF_MONGODB_DATABASE".to_owned(), c.mongodb_database),
            ("QADF_ENABLE_REDIS_CACHE".to_owned(), "false".to_owned()),
            ("QADF_MESSAGE_ENCODING".to_owned(), "bincode".to_owned()),
            ("QADF_MAX_BATCH_WAIT_MS".to_owned(), "50".to_owned()),
            // The scenarios written before consumer groups test the static path (offsets in the
            // history store); tests/groups.rs tests the group path with `Scenario::in_group`.
            ("QADF_ASSIGNMENT".to_owned(), "static".to_owned()),
            // Many runs at once: each serves its page, metrics and health on a free port.
            ("QADF_DASHBOARD_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
        ];
        for (k, v) in &self.extra {
            env.retain(|(key, _)| key != k);
            env.push((k.clone(), v.clone()));
        }
        env
    }

    /// Starts `qadf-stream run <args>`; its output lines are collected.
    pub fn spawn_run(&self, args: &[&str]) -> RunningChild {
        let mut child = Command::new(binary())
            .arg("run")
            .args(args)
            .envs(self.env())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting qadf-stream run");
        let lines = Arc::new(Mutex::new(Vec::new()));
        for out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            });
        }
        RunningChild { child, lines }
    }

    /// Runs `qadf-stream run <args>` to its end (use `--exit-when-idle`); panics if it fails.
    pub fn run_to_end(&self, args: &[&str]) -> Vec<String> {
        let mut run = self.spawn_run(args);
        let status = run.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let lines = run.lines();
        assert!(status.success(), "qadf-stream run failed ({status}):\n{}", lines.join("\n"));
        lines
    }

    /// The MongoDB store the runs write to.
    pub fn store(&self) -> MongoStore {
        MongoStore::connect(&self.config(), Duration::from_secs(10)).expect("connecting to MongoDB")
    }
}

impl Scenario {
    /// The reasons of the dead letters on this scenario's dead-letter topic, read from the start
    /// until `expected` arrived or 30 s passed.
    pub fn dead_letter_reasons(&self, expected: usize) -> Vec<String> {
        let mut config = ConsumerConfig::from_streaming(&self.config());
        config.topics = vec![self.config().dead_letter_topic];
        let mut dlq = KafkaConsumer::new(config, Arc::new(MemoryOffsetStore::default())).unwrap();
        let mut letters = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while letters.len() < expected && Instant::now() < deadline {
            letters.extend(dlq.poll_messages(1000, Duration::from_millis(200)).unwrap());
        }
        letters
            .iter()
            .map(|m| {
                let h = m.headers.iter().find(|(k, _)| k == REASON_HEADER).expect("a reason header");
                String::from_utf8_lossy(&h.1).into_owned()
            })
            .collect()
    }
}

/// A `qadf-stream run` child and its output so far.
pub struct RunningChild {
    /// The process.
    pub child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl RunningChild {
    /// Output lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// The first output line containing `what`, waiting up to `within`.
    ///
    /// # Panics
    /// When none came in time (the output so far is shown).
    pub fn wait_for_line(&self, what: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            if let Some(line) = self.lines().into_iter().find(|l| l.contains(what)) {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "no line containing `{what}`; output so far:\n{}",
                self.lines().join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The `host:port` the run serves its page, `/metrics` and `/health` on (from its log).
    pub fn http_addr(&self) -> String {
        let line = self.wait_for_line("serving the live page", Duration::from_secs(30));
        let url = line.rsplit(' ').next().unwrap();
        url.trim_start_matches("http://").trim_end_matches('/').to_owned()
    }

    /// Sends `signal` (e.g. `-TERM`) with kill(1).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([signal, &self.child.id().to_string()]).status().unwrap();
        assert!(status.success(), "kill {signal} failed");
    }

    /// SIGKILL, and reap.
    pub fn kill_9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for RunningChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A deterministic simulated build of `layers` layers of a `part_mm` part (starting at a fixed time).
pub fn build(layers: u32, part_mm: f64, build_id: &str) -> Vec<Sample> {
    let sim = SimConfig { layers, part_size_mm: part_mm, build_id: build_id.to_owned(), ..SimConfig::default() };
    let mut simulator = Simulator::new(sim, Timestamp::from_nanos(1_800_000_000_000_000_000));
    (0..layers).flat_map(|l| simulator.layer(l)).collect()
}

/// An order-independent checksum of sample contents (duplicates change it).
pub fn checksum<'a>(samples: impl IntoIterator<Item = &'a Sample>) -> u64 {
    samples.into_iter().fold(0u64, |acc, s| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        s.content_id().hash(&mut h);
        s.layer.hash(&mut h);
        if let Some(p) = s.position {
            [p.x.to_bits(), p.y.to_bits(), p.z.to_bits()].hash(&mut h);
        }
        for (name, value) in s.signals.iter() {
            name.hash(&mut h);
            value.to_bits().hash(&mut h);
        }
        acc.wrapping_add(h.finish())
    })
}

/// Sends `samples` in bincode messages of 100, message i to partition i mod `partitions`;
/// returns the number of messages per partition (= the log end of a new topic).
pub fn produce(topic: &str, partitions: i32, samples: &[Sample]) -> BTreeMap<i32, i64> {
    let producer = KafkaProducer::new(&[Service::Kafka.addr()]).expect("a producer");
    producer.create_topic(topic, partitions).expect("creating the topic");
    let codec = Codec::new(Encoding::Bincode);
    let mut per_partition = BTreeMap::new();
    let messages: Vec<OutgoingMessage> = samples
        .chunks(100)
        .enumerate()
        .map(|(i, chunk)| {
            let partition = i as i32 % partitions;
            *per_partition.entry(partition).or_insert(0) += 1;
            OutgoingMessage {
                topic: topic.to_owned(),
                partition: Some(partition),
                key: None,
                payload: codec.encode(&SampleBatch::new(chunk.to_vec())).unwrap(),
                headers: Vec::new(),
            }
        })
        .collect();
    for part in messages.chunks(1000) {
        producer.send(part.to_vec()).map_err(|e| e.error).expect("producing");
    }
    per_partition
}

/// Every stored sample.
pub fn stored(store: &dyn HistoryStore) -> Vec<Sample> {
    store.query_stream_history(&HistoryQuery::all()).unwrap()
}

/// Committed offsets of `group` on `topic`, by partition.
pub fn committed(store: &dyn OffsetStore, group: &str, topic: &str) -> BTreeMap<i32, i64> {
    store.load_offsets(group, topic).unwrap().into_iter().map(|c| (c.partition, c.next_offset)).collect()
}

/// A run's latest progress line ("N samples, ..., batch p99 X ms, ..."): (samples processed, p99 ms).
pub fn progress(lines: &[String]) -> Option<(u64, f64)> {
    let line = lines.iter().rev().find(|l| l.contains("batch p99"))?;
    let samples = line.split_whitespace().next()?.parse().ok()?;
    let p99 = line.split("batch p99 ").nth(1)?.split_whitespace().next()?.parse().ok()?;
    Some((samples, p99))
}

/// Samples a run reported stored in its latest progress line ("..., N stored, ..."); 0 before the first.
pub fn stored_so_far(lines: &[String]) -> u64 {
    let Some(line) = lines.iter().rev().find(|l| l.contains("batch p99")) else { return 0 };
    line.split(", ").find_map(|part| part.strip_suffix(" stored")).and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// Samples a run reported processed in its latest progress line; 0 before the first.
pub fn processed(lines: &[String]) -> u64 {
    progress(lines).map_or(0, |(samples, _)| samples)
}

/// The `grid {...}` lines a run printed, as JSON.
pub fn grid_lines(lines: &[String]) -> Vec<serde_json::Value> {
    lines.iter().filter_map(|l| l.strip_prefix("grid ")).map(|j| serde_json::from_str(j).unwrap()).collect()
}
