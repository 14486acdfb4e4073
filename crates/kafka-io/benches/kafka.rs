//! `cargo xtask bench kafka`: throughput and latency against the real broker, with the raw rskafka
//! fetch rate measured in the same run as the ceiling. Size: `QADF_BENCH_RECORDS` (default 1M).
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use qadf_core_types::MessageSource;
use qadf_core_types::{
    Codec, Encoding, MessageSink, OffsetReset, OutgoingMessage, Point3, Sample, SampleBatch, Timestamp,
};
use qadf_kafka_io::{
    Assignment, ConsumerConfig, GroupConfig, GroupConsumer, KafkaConsumer, KafkaProducer, MemoryOffsetStore,
};
use rskafka::client::ClientBuilder;
use rskafka::client::partition::UnknownTopicHandling;

fn main() {
    let addr = std::env::var("QADF_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:19092".to_owned());
    let n: usize = std::env::var("QADF_BENCH_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let topic = format!("bench_{}", std::process::id());
    let codec = Codec::new(Encoding::Bincode);
    let payload = |i: usize| {
        let mut s = Sample::new(
            Timestamp::from_nanos(i as i64),
            Point3::new(1.0, 2.0, 0.03),
            [("temperature", 1900.0)].into_iter().collect(),
        );
        s.build_id = "plate-2026-11-27-07/part-3".into(); // ~100-byte records
        s.source_id = "ispm-thermal-0/pyrometer-a".into();
        codec.encode(&SampleBatch::new(vec![s])).unwrap()
    };
    let record_bytes = payload(0).len();
    let producer = KafkaProducer::new(std::slice::from_ref(&addr)).unwrap();
    producer.create_topic(&topic, 1).unwrap();

    // Producer: n records in calls of 1000.
    let t = Instant::now();
    for start in (0..n).step_by(1000) {
        let batch: Vec<OutgoingMessage> = (start..(start + 1000).min(n))
            .map(|i| OutgoingMessage {
                topic: topic.clone(),
                partition: Some(0),
                key: None,
                payload: payload(i),
                headers: vec![],
            })
            .collect();
        producer.send(batch).unwrap();
    }
    let produce_rate = n as f64 / t.elapsed().as_secs_f64();

    // krafka's producer, the same records in flushes of 1000 (the consumer-group client weighed
    // against rskafka in docs/ARCHITECTURE.md), to a topic of its own.
    let krafka_topic = format!("{topic}_krafka");
    producer.create_topic(&krafka_topic, 1).unwrap();
    let krafka_runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let t = Instant::now();
    krafka_runtime.block_on(async {
        let kafka = krafka::Kafka::builder(addr.clone()).tcp_nodelay(true).connect().await.unwrap();
        let p = kafka.producer().build().await.unwrap();
        for start in (0..n).step_by(1000) {
            let mut handles = Vec::with_capacity(1000);
            for i in start..(start + 1000).min(n) {
                handles
                    .push(p.enqueue(krafka::Record::new(krafka_topic.clone(), payload(i)).partition(0)).await.unwrap());
            }
            for h in handles {
                let _ = h.await.unwrap();
            }
        }
        p.close().await.unwrap();
    });
    let krafka_produce_rate = n as f64 / t.elapsed().as_secs_f64();

    // Small-batch latency: 100-record produce calls.
    let small_topic = format!("{topic}_small");
    producer.create_topic(&small_topic, 1).unwrap();
    let mut latencies: Vec<f64> = (0..300)
        .map(|_| {
            let batch = (0..100)
                .map(|i| OutgoingMessage {
                    topic: small_topic.clone(),
                    partition: Some(0),
                    key: None,
                    payload: payload(i),
                    headers: vec![],
                })
                .collect();
            let t = Instant::now();
            producer.send(batch).unwrap();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let pct = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];

    // Ceiling: rskafka's own fetch loop over the same records.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let t = Instant::now();
    let raw = runtime.block_on(async {
        let client = ClientBuilder::new(vec![addr.clone()]).build().await.unwrap();
        let p = client.partition_client(topic.clone(), 0, UnknownTopicHandling::Retry).await.unwrap();
        let (mut offset, mut count) = (0i64, 0usize);
        while count < n {
            let (records, _) = p.fetch_records(offset, 1..4 << 20, 100).await.unwrap();
            count += records.len();
            offset = records.last().map_or(offset, |r| r.offset + 1);
        }
        count
    });
    let raw_rate = raw as f64 / t.elapsed().as_secs_f64();

    // krafka's fetch loop over the same records (a consumer without a group, partition 0 assigned).
    let t = Instant::now();
    let krafka_raw = krafka_runtime.block_on(async {
        let kafka = krafka::Kafka::builder(addr.clone()).tcp_nodelay(true).connect().await.unwrap();
        let c = kafka
            .consumer_without_group()
            .auto_offset_reset(krafka::consumer::AutoOffsetReset::Earliest)
            .max_partition_fetch_bytes(4 << 20)
            .max_poll_records(10_000)
            .build()
            .await
            .unwrap();
        c.assign(&topic, vec![0]).await.unwrap();
        let mut count = 0usize;
        while count < n {
            count += c.poll(Duration::from_millis(100)).await.unwrap().len();
        }
        c.close().await.unwrap();
        count
    });
    let krafka_raw_rate = krafka_raw as f64 / t.elapsed().as_secs_f64();

    // GroupConsumer (krafka, one member of a fresh group) delivering raw messages.
    let mut group = GroupConsumer::new(GroupConfig {
        consumer: ConsumerConfig {
            bootstrap: vec![addr.clone()],
            topics: vec![topic.clone()],
            group: format!("{topic}_group"),
            assignment: Assignment::All,
            auto_offset_reset: OffsetReset::Earliest,
            fetch_max_bytes: 4 << 20,
            request_timeout: Duration::from_secs(10),
            security: Default::default(),
        },
        session_timeout: Duration::from_secs(6),
        drain_timeout: Duration::from_secs(3),
    })
    .unwrap();
    // The join (FindCoordinator, JoinGroup, SyncGroup, OffsetFetch) is timed apart from the fetching.
    let t = Instant::now();
    let mut grouped = 0usize;
    while grouped == 0 {
        grouped += group.poll(10_000, Duration::from_millis(100)).unwrap().len();
        while let Some(change) = group.rebalance() {
            if matches!(change, qadf_core_types::Rebalance::Revoking(_)) {
                group.release();
            }
        }
    }
    let join_seconds = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let first = grouped;
    while grouped < n {
        grouped += group.poll(10_000, Duration::from_millis(100)).unwrap().len();
    }
    let group_rate = (grouped - first) as f64 / t.elapsed().as_secs_f64();
    drop(group);

    // Ours: KafkaConsumer polls of up to 10,000, every message decoded into samples.
    let config = ConsumerConfig {
        bootstrap: vec![addr.clone()],
        topics: vec![topic.clone()],
        group: "bench".into(),
        assignment: Assignment::All,
        auto_offset_reset: OffsetReset::Earliest,
        fetch_max_bytes: 4 << 20,
        request_timeout: Duration::from_secs(10),
        security: Default::default(),
    };
    let mut plain = KafkaConsumer::new(config.clone(), Arc::new(MemoryOffsetStore::default())).unwrap();
    let t = Instant::now();
    let mut delivered = 0usize;
    while delivered < n {
        delivered += plain.poll_messages(10_000, Duration::from_millis(100)).unwrap().len();
    }
    let plain_rate = delivered as f64 / t.elapsed().as_secs_f64();

    let mut consumer = KafkaConsumer::new(config, Arc::new(MemoryOffsetStore::default())).unwrap();
    let t = Instant::now();
    let (mut messages, mut samples) = (0usize, 0usize);
    while messages < n {
        let batch = consumer.poll_messages(10_000, Duration::from_millis(100)).unwrap();
        messages += batch.len();
        samples += batch.iter().map(|m| codec.decode(&m.payload).map_or(0, |b| b.len())).sum::<usize>();
    }
    let ours_rate = messages as f64 / t.elapsed().as_secs_f64();
    assert_eq!(samples, n, "every record decoded");

    println!("| Kafka (Tansu at {addr}), {n} records of {record_bytes} bytes | result |");
    println!("|---|---|");
    println!("| producer, calls of 1000 records | {:.0} records/s |", produce_rate);
    println!(
        "| 100-record produce call latency (300 calls) | p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms |",
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    println!(
        "| krafka producer, flushes of 1000 records | {:.0} records/s ({:.0}% of rskafka's) |",
        krafka_produce_rate,
        100.0 * krafka_produce_rate / produce_rate
    );
    println!("| raw rskafka fetch loop (ceiling) | {:.0} records/s |", raw_rate);
    println!(
        "| raw krafka fetch loop (consumer without a group) | {:.0} records/s ({:.0}% of rskafka's) |",
        krafka_raw_rate,
        100.0 * krafka_raw_rate / raw_rate
    );
    println!(
        "| GroupConsumer (krafka membership, rskafka fetch) delivering raw messages, after a join of {:.2} s | {:.0} records/s ({:.0}% of the ceiling) |",
        join_seconds,
        group_rate,
        100.0 * group_rate / raw_rate
    );
    println!(
        "| KafkaConsumer delivering raw messages | {:.0} records/s ({:.0}% of the ceiling) |",
        plain_rate,
        100.0 * plain_rate / raw_rate
    );
    println!(
        "| KafkaConsumer + bincode decode of every record, one thread | {:.0} records/s ({:.0}% of the ceiling) |",
        ours_rate,
        100.0 * ours_rate / raw_rate
    );
    println!(
        "TARGET | Kafka messages consumed and decoded per second (one thread) | {ours_rate:.0} msg/s | > 1000 msg/s | {} |",
        if ours_rate > 1000.0 { "met" } else { "**not met**" }
    );
}
