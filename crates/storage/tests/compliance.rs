//! The embedded implementations against the trait contracts (no services needed).

mod suite;

use std::sync::Arc;
use std::time::Duration;

use qadf_core_types::{HistoryStore, LogPosition, ManualClock, OffsetStore, Timestamp};
use qadf_storage::{EmbeddedStore, MemoryCache};
use suite::{cache_suite, history_suite, offset_suite, sample};

fn temp_file(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("qadf-storage-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("store.redb")
}

#[test]
fn embedded_store_keeps_the_history_contract() {
    history_suite(&EmbeddedStore::open(&temp_file("history")).unwrap());
}

#[test]
fn embedded_store_keeps_the_layer_report_contract() {
    suite::layer_report_suite(&EmbeddedStore::open(&temp_file("reports")).unwrap());
}

#[test]
fn embedded_store_keeps_the_offset_contract() {
    offset_suite(&EmbeddedStore::open(&temp_file("offsets")).unwrap());
}

#[test]
fn embedded_store_survives_reopening() {
    let path = temp_file("reopen");
    {
        let store = EmbeddedStore::open(&path).unwrap();
        store.store_samples(&(0..10).map(sample).collect::<Vec<_>>()).unwrap();
        store.store_offsets("g", &[LogPosition { topic: "t".into(), partition: 0, next_offset: 10 }]).unwrap();
    }
    let store = EmbeddedStore::open(&path).unwrap();
    assert_eq!(store.count().unwrap(), 10);
    assert_eq!(store.load_offsets("g", "t").unwrap()[0].next_offset, 10);
    assert_eq!(store.store_samples(&[sample(3)]).unwrap().already_stored, 1, "idempotent across restarts");
}

#[test]
fn memory_cache_keeps_the_cache_contract() {
    let clock = Arc::new(ManualClock::new(Timestamp::from_nanos(1_000_000_000)));
    let cache = MemoryCache::with_clock(clock.clone());
    cache_suite(&cache, &|| clock.advance(Duration::from_millis(1001)));
    assert_eq!(cache.sweep(), 0, "the expired entry was already dropped on read");
}

#[test]
fn embedded_store_keeps_the_cache_contract() {
    let clock = Arc::new(ManualClock::new(Timestamp::from_nanos(1_000_000_000)));
    let store = EmbeddedStore::open(&temp_file("cache")).unwrap().with_clock(clock.clone());
    cache_suite(&store, &|| clock.advance(Duration::from_millis(1001)));
}

#[test]
fn a_file_of_the_per_sample_layout_is_refused_with_a_reason() {
    let path = temp_file("old-layout");
    {
        let db = redb::Database::create(&path).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(redb::TableDefinition::<(i64, &str), &[u8]>::new("samples")).unwrap();
        tx.commit().unwrap();
    }
    let e = EmbeddedStore::open(&path).err().expect("refused");
    assert!(e.to_string().contains("per-sample layout of an earlier version"), "{e}");
}
