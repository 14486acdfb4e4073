//! Smoke tests against the real services started by `cargo xtask services up`: each one is
//! reached over TCP with the client library the product uses, and data goes in and comes back.

use std::collections::BTreeMap;
use std::time::Duration;

use qadf_core_types::{Codec, Encoding, Point3, Sample, SampleBatch, Timestamp};
use qadf_integration_tests::{Service, unique_name};

fn sample_batch(n: usize) -> SampleBatch {
    (0..n)
        .map(|i| {
            Sample::new(
                Timestamp::from_nanos(1_795_000_000_000_000_000 + i as i64),
                Point3::new(i as f64, 2.0, 0.03),
                [("temperature", 1600.0 + i as f64)].into_iter().collect(),
            )
        })
        .collect::<Vec<_>>()
        .into()
}

#[test]
fn kafka_produce_and_fetch_through_rskafka() {
    use rskafka::client::ClientBuilder;
    use rskafka::client::partition::{Compression, UnknownTopicHandling};
    use rskafka::record::Record;

    let addr = Service::Kafka.addr();
    let topic = unique_name("smoke");
    let codec = Codec::new(Encoding::Json);
    let payloads: Vec<Vec<u8>> = (1..=5).map(|n| codec.encode(&sample_batch(n)).unwrap()).collect();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let fetched = runtime.block_on(async {
        let client = ClientBuilder::new(vec![addr]).build().await.expect("connect to the broker");
        client.controller_client().unwrap().create_topic(&topic, 1, 1, 5_000).await.expect("create topic");
        let partition = client.partition_client(topic.clone(), 0, UnknownTopicHandling::Retry).await.unwrap();
        let records = payloads
            .iter()
            .map(|p| Record {
                key: None,
                value: Some(p.clone()),
                headers: BTreeMap::new(),
                timestamp: chrono::Utc::now(),
            })
            .collect();
        let offsets = partition.produce(records, Compression::NoCompression).await.expect("produce");
        assert_eq!(offsets, vec![0, 1, 2, 3, 4]);
        let (records, high_watermark) = partition.fetch_records(0, 1..1_000_000, 1_000).await.expect("fetch");
        assert_eq!(high_watermark, 5);
        records.into_iter().map(|r| r.record.value.unwrap()).collect::<Vec<_>>()
    });
    assert_eq!(fetched, payloads);
    assert_eq!(codec.decode(&fetched[4]).unwrap(), sample_batch(5));
}

#[test]
fn redis_set_with_expiry_and_get() {
    use redis::Commands;

    let addr = Service::Redis.addr();
    let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
    let mut conn = client.get_connection_with_timeout(Duration::from_secs(2)).expect("connect to Redis");
    let key = unique_name("qadf:smoke");
    let value = Codec::new(Encoding::Bincode).encode(&sample_batch(3)).unwrap();
    let _: () = conn.set_ex(&key, &value, 60).unwrap();
    let back: Vec<u8> = conn.get(&key).unwrap();
    assert_eq!(back, value);
    let ttl: i64 = conn.ttl(&key).unwrap();
    assert!((1..=60).contains(&ttl), "ttl {ttl}");
    let _: () = conn.del(&key).unwrap();
}

#[test]
fn mongodb_insert_and_find() {
    use mongodb::bson::{DateTime, Document, doc};

    let addr = Service::Mongodb.addr();
    let client = mongodb::sync::Client::with_uri_str(format!("mongodb://{addr}/?serverSelectionTimeoutMS=5000"))
        .expect("parse the MongoDB URI");
    let db = client.database(&unique_name("smoke"));
    let collection = db.collection::<Document>("samples");
    let when = DateTime::from_millis(1_795_000_000_000);
    collection
        .insert_one(doc! { "_id": "b/s/1", "timestamp": when, "temperature": 1650.5, "layer": 3_i32 })
        .run()
        .expect("insert");
    let found = collection.find_one(doc! { "_id": "b/s/1" }).run().expect("find").expect("document exists");
    assert_eq!(found.get_datetime("timestamp").unwrap(), &when);
    assert_eq!(found.get_f64("temperature").unwrap(), 1650.5);
    assert_eq!(found.get_i32("layer").unwrap(), 3);
    db.drop().run().unwrap();
}
