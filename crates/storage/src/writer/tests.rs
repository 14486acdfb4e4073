//! Error paths of the writer, with an in-memory store that fails on demand.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use crossbeam_channel::{Receiver, bounded};
use qadf_core_types::{BackendErrorKind, HistoryQuery, Point3, Timestamp};

use super::*;

/// Fails the first `transient` calls as unavailable, every call as rejected while `reject` is set,
/// and waits for a token on `gate` when one is given; records what it stored and in which order.
#[derive(Default)]
struct FlakyStore {
    transient: AtomicUsize,
    reject: std::sync::atomic::AtomicBool,
    /// A batch holding a sample of this id (`id-<time>`) is refused (permanently).
    reject_id: Option<String>,
    gate: Option<Receiver<()>>,
    stored: Mutex<Vec<String>>,
    offsets: Mutex<Vec<(usize, i64)>>,
    calls: AtomicUsize,
}

impl HistoryStore for FlakyStore {
    fn store_buckets(&self, buckets: &[Bucket]) -> Result<StoreReport, BackendError> {
        let ids: Vec<String> = buckets
            .iter()
            .flat_map(|b| b.decode().unwrap())
            .map(|s| format!("id-{}", s.timestamp.as_nanos()))
            .collect();
        self.calls.fetch_add(1, Ordering::SeqCst);
        if let Some(g) = &self.gate {
            let _ = g.recv(); // a dropped gate lets every call through
        }
        if self.transient.load(Ordering::SeqCst) > 0 {
            self.transient.fetch_sub(1, Ordering::SeqCst);
            return Err(BackendError::new(BackendErrorKind::Unavailable, "test", "down"));
        }
        if self.reject.load(Ordering::SeqCst) || ids.iter().any(|id| Some(id) == self.reject_id.as_ref()) {
            return Err(BackendError::new(BackendErrorKind::Rejected, "test", "bad document"));
        }
        let inserted = ids.len() as u64;
        self.stored.lock().extend(ids);
        Ok(StoreReport { inserted, already_stored: 0 })
    }
    fn query_stream_history(&self, _: &HistoryQuery) -> Result<Vec<Sample>, BackendError> {
        Ok(Vec::new())
    }
    fn count_samples(&self, _: &HistoryQuery) -> Result<u64, BackendError> {
        Ok(0)
    }
    fn delete_old_data(&self, _: Timestamp) -> Result<u64, BackendError> {
        Ok(0)
    }
    fn stored_buckets(&self, ids: &[String]) -> Result<Vec<bool>, BackendError> {
        Ok(vec![false; ids.len()])
    }
}

impl OffsetStore for FlakyStore {
    fn load_offsets(&self, _: &str, _: &str) -> Result<Vec<LogPosition>, BackendError> {
        Ok(Vec::new())
    }
    fn store_offsets(&self, _: &str, positions: &[LogPosition]) -> Result<(), BackendError> {
        let stored_so_far = self.stored.lock().len();
        self.offsets.lock().extend(positions.iter().map(|c| (stored_so_far, c.next_offset)));
        Ok(())
    }
}

fn job(n: i64) -> WriteJob {
    let s = Sample::new(Timestamp::from_nanos(n), Point3::origin(), [("t", 1.0)].into_iter().collect());
    WriteJob::whole(vec![s], vec![LogPosition { topic: "t".into(), partition: 0, next_offset: n + 1 }])
}

#[test]
fn transient_failures_are_retried_until_stored_and_offsets_follow_the_data() {
    let store = Arc::new(FlakyStore { transient: AtomicUsize::new(3), ..FlakyStore::default() });
    let writer = spawn_writer(store.clone(), Some((store.clone(), "g".into())), QueueLimit::jobs(4));
    for n in 0..5 {
        writer.submit(job(n)).unwrap();
    }
    let done = writer.finish();
    assert_eq!(done.len(), 5);
    assert!(done.iter().all(|d| d.result.is_ok()));
    assert_eq!(*store.stored.lock(), (0..5).map(|n| format!("id-{n}")).collect::<Vec<_>>(), "in order, none lost");
    let offsets = store.offsets.lock();
    assert!(offsets.iter().all(|&(stored, next)| stored as i64 >= next), "each offset after its data: {offsets:?}");
    assert_eq!(offsets.last(), Some(&(5, 5)));
}

#[test]
fn jobs_queued_behind_a_slow_write_are_stored_in_one_group_commit() {
    let (open, gate) = bounded(0);
    let store = Arc::new(FlakyStore { gate: Some(gate), ..FlakyStore::default() });
    let writer = spawn_writer(store.clone(), Some((store.clone(), "g".into())), QueueLimit::jobs(8));
    writer.submit(job(0)).unwrap();
    wait_for(|| store.calls.load(Ordering::SeqCst) == 1); // job 0 is in the store, waiting
    for n in 1..5 {
        writer.submit(job(n)).unwrap();
    }
    open.send(()).unwrap(); // job 0
    open.send(()).unwrap(); // jobs 1-4, together
    let done = writer.finish();
    assert_eq!(store.calls.load(Ordering::SeqCst), 2, "two writes for five jobs");
    let committed: Vec<i64> = done.iter().map(|d| d.positions[0].next_offset).collect();
    assert_eq!(committed, [1, 2, 3, 4, 5], "one completion per job, in order");
    assert!(done.iter().all(|d| d.result.is_ok()));
    assert_eq!(*store.offsets.lock(), [(1, 1), (5, 2), (5, 3), (5, 4), (5, 5)], "offsets after the group's data");
}

fn wait_for(condition: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(std::time::Instant::now() < deadline, "timed out");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_refused_job_is_reported_and_no_position_is_stored_from_it_on() {
    let store = Arc::new(FlakyStore::default());
    store.reject.store(true, Ordering::SeqCst);
    let writer = spawn_writer(store.clone(), Some((store.clone(), "g".into())), QueueLimit::jobs(4));
    writer.submit(job(0)).unwrap();
    let done = writer.recv_done(Duration::from_secs(5)).unwrap();
    assert_eq!(done.result.unwrap_err().kind, BackendErrorKind::Rejected);
    assert_eq!(writer.statistics().failed_jobs.load(Ordering::Relaxed), 1);
    store.reject.store(false, Ordering::SeqCst);
    writer.submit(job(1)).unwrap();
    assert!(writer.recv_done(Duration::from_secs(5)).unwrap().result.is_ok(), "later jobs are still stored");
    // A position is per partition: storing job 1's would skip the refused job 0 for good.
    assert_eq!(*store.offsets.lock(), [], "no position past the refused job");
}

#[test]
fn a_refused_group_is_stored_job_by_job_so_only_the_bad_job_fails() {
    let (open, gate) = bounded(0);
    let store = Arc::new(FlakyStore { gate: Some(gate), reject_id: Some("id-3".into()), ..FlakyStore::default() });
    let writer = spawn_writer(store.clone(), Some((store.clone(), "g".into())), QueueLimit::jobs(8));
    writer.submit(job(0)).unwrap();
    wait_for(|| store.calls.load(Ordering::SeqCst) == 1); // job 0 is in the store, waiting
    for n in 1..5 {
        writer.submit(job(n)).unwrap();
    }
    while store.calls.load(Ordering::SeqCst) < 1 + 1 + 4 {
        let _ = open.send_timeout((), Duration::from_millis(50));
    }
    drop(open);
    let done = writer.finish();
    let failed: Vec<i64> = done.iter().filter(|d| d.result.is_err()).map(|d| d.positions[0].next_offset - 1).collect();
    assert_eq!(failed, [3], "only the job holding the refused sample fails");
    assert_eq!(*store.stored.lock(), ["id-0", "id-1", "id-2", "id-4"], "the others are stored, in order");
    let positions: Vec<i64> = store.offsets.lock().iter().map(|&(_, next)| next).collect();
    assert_eq!(positions, [1, 2, 3], "positions up to the refused job, none after it");
}

#[test]
fn a_stalled_backend_bounds_the_queue_and_hands_batches_back() {
    let (open, gate) = bounded(0);
    let store = Arc::new(FlakyStore { gate: Some(gate), ..FlakyStore::default() });
    let writer = spawn_writer(store.clone(), None, QueueLimit::jobs(2));
    let mut accepted = 0;
    let refused = loop {
        match writer.try_submit(job(accepted)) {
            Ok(()) => accepted += 1,
            Err(j) => break j,
        }
        assert!(accepted <= 3, "queue of 2 plus one in the store at most");
    };
    assert_eq!(refused, job(accepted), "the refused batch comes back whole");
    // Queued jobs may be stored together: open the gate until everything accepted is stored.
    while store.stored.lock().len() < accepted as usize {
        let _ = open.send_timeout((), Duration::from_millis(50));
    }
    assert_eq!(writer.finish().len(), accepted as usize);
    assert_eq!(store.stored.lock().len(), accepted as usize);
}

#[test]
fn the_queue_is_bounded_in_samples_too_and_lets_an_oversize_job_in_alone() {
    let (open, gate) = bounded(0);
    let store = Arc::new(FlakyStore { gate: Some(gate), ..FlakyStore::default() });
    let writer = spawn_writer(store.clone(), None, QueueLimit { jobs: 100, samples: 3 });
    let sized = |n: i64, len: usize| {
        WriteJob::whole((0..len).map(|i| job(n * 10 + i as i64).samples[0].clone()).collect(), vec![])
    };
    writer.try_submit(sized(0, 2)).unwrap();
    wait_for(|| store.calls.load(Ordering::SeqCst) == 1); // 2 samples in the store, still counted
    writer.try_submit(sized(1, 1)).unwrap();
    assert_eq!(writer.queued_samples(), 3);
    let refused = writer.try_submit(sized(2, 1)).unwrap_err();
    assert_eq!(refused.samples.len(), 1, "over the sample limit: handed back whole");
    open.send(()).unwrap(); // the first write ends: its 2 samples no longer count
    wait_for(|| writer.queued_samples() == 1);
    writer.try_submit(refused).unwrap();
    // Let everything queued through, then an empty queue takes a job larger than the limit.
    while store.stored.lock().len() < 4 {
        let _ = open.send_timeout((), Duration::from_millis(50));
    }
    wait_for(|| writer.queued_samples() == 0);
    writer.try_submit(sized(3, 5)).unwrap();
    while store.stored.lock().len() < 9 {
        let _ = open.send_timeout((), Duration::from_millis(50));
    }
    assert_eq!(writer.finish().len(), 4);
    assert_eq!(store.stored.lock().len(), 9, "nothing lost");
}

#[test]
fn a_job_whose_runs_do_not_cover_its_samples_is_refused_not_stored_in_part() {
    let store = Arc::new(FlakyStore::default());
    let writer = spawn_writer(store.clone(), Some((store.clone(), "g".into())), QueueLimit::jobs(4));
    let mut bad = job(0);
    bad.runs = Vec::new();
    writer.submit(bad).unwrap();
    let done = writer.recv_done(Duration::from_secs(5)).unwrap();
    assert_eq!(done.result.unwrap_err().kind, BackendErrorKind::Rejected);
    assert!(store.stored.lock().is_empty());
    assert_eq!(*store.offsets.lock(), [], "no position for it");
}

#[test]
fn abandoned_jobs_behind_a_write_under_way_come_back_unstored_without_positions() {
    let (open, gate) = bounded(0);
    let store = Arc::new(FlakyStore { gate: Some(gate), ..FlakyStore::default() });
    let writer = spawn_writer(store.clone(), None, QueueLimit::jobs(8));
    writer.submit(job(0)).unwrap();
    wait_for(|| store.calls.load(Ordering::SeqCst) == 1); // job 0 is in the store, waiting
    for n in 1..4 {
        writer.submit(job(n)).unwrap();
    }
    writer.abandon();
    writer.submit(job(4)).unwrap(); // handed over after the fence: stored
    drop(open); // the write under way lands; every later call passes the gate
    let done = writer.finish();
    let abandoned: Vec<bool> = done.iter().map(|d| d.abandoned).collect();
    assert_eq!(abandoned, [false, true, true, true, false], "the write under way still lands");
    assert!(done.iter().filter(|d| d.abandoned).all(|d| d.positions.is_empty() && d.result.is_ok()));
    assert_eq!(*store.stored.lock(), ["id-0", "id-4"], "nothing abandoned was stored");
}

#[test]
fn an_abandoned_write_stops_retrying_a_store_that_is_down() {
    let store = Arc::new(FlakyStore { transient: AtomicUsize::new(usize::MAX), ..FlakyStore::default() });
    let writer = spawn_writer(store.clone(), None, QueueLimit::jobs(4));
    writer.submit(job(0)).unwrap();
    wait_for(|| store.calls.load(Ordering::SeqCst) >= 2); // retrying
    writer.abandon();
    let done = writer.recv_done(Duration::from_secs(10)).expect("the retries stop");
    assert!(done.abandoned && done.positions.is_empty(), "{done:?}");
    let calls = store.calls.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(store.calls.load(Ordering::SeqCst), calls, "no call after the give-up");
    assert_eq!(writer.statistics().abandoned_jobs.load(Ordering::Relaxed), 1);
    assert_eq!(writer.statistics().failed_jobs.load(Ordering::Relaxed), 0, "given up, not refused");
    assert!(store.stored.lock().is_empty());
}
