//! Scenario 2 — outages under `qadf-stream run`: the broker restarts mid-stream (the remainder is
//! produced again once it is back), MongoDB is stopped while history is being written, and Redis
//! restarts (losing everything) under the live view. Everything acknowledged is stored exactly once
//! at the end, the live view comes back, and `run` needs no restart; `/health/ready` (and
//! `qadf-stream status`) turns not ready while MongoDB is down and ready again when it returns.
//!
//! A rebalance while MongoDB is down (one of two members SIGKILLed): the survivor's revocation
//! outlasts its drain, so it gives its writes up (the fence) and releases; once MongoDB returns everything is stored exactly once,
//! the group's offsets are at the log end and the grids equal a clean run's.
//!
//! Its own test binary (cargo runs test binaries one at a time), as it stops shared services; the
//! two tests take a lock so they do not overlap each other. MongoDB is down 10 s in CI, 30 s with
//! `QADF_TEST_FULL=1`.

mod scenario;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use qadf_core_types::Sample;
use qadf_integration_tests::{Service, answers, wait_until, xtask_services};
use scenario::group::{
    assigned, finish, four_builds, grids_equal_a_clean_run, group_offsets, half, send_halves, wait, writes_given_up,
};
use scenario::{Scenario, build, checksum, produce, stored};

static SERVICES: Mutex<()> = Mutex::new(());

fn wait_for_count(store: &qadf_storage::MongoStore, n: u64, run: &mut scenario::RunningChild, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while store.count().unwrap_or(0) < n {
        assert!(run.child.try_wait().unwrap().is_none(), "{what}: run exited\n{}", run.lines().join("\n"));
        assert!(
            Instant::now() < deadline,
            "{what}: {} of {n} stored\n{}",
            store.count().unwrap_or(0),
            run.lines().join("\n")
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn a_broker_restart_mid_stream_loses_nothing_acknowledged() {
    let _guard = SERVICES.lock().unwrap_or_else(|e| e.into_inner());
    let first = build(1, 10.0, "outage-a");
    let second = build(1, 7.0, "outage-b");
    let s = Scenario::new("brokerout");
    produce(&s.topic, 2, &first);
    let store = s.store();
    let mut run = s.spawn_run(&["--exit-when-idle", "60"]);
    wait_for_count(&store, first.len() as u64, &mut run, "before the restart");

    xtask_services("down", "kafka");
    assert!(!answers(&Service::Kafka.addr_unchecked()));
    std::thread::sleep(Duration::from_secs(2));
    xtask_services("up", "kafka");
    wait_until("the broker is back", || answers(&Service::Kafka.addr_unchecked()));

    // The remainder, produced again once the broker is back (Tansu may have lost its log).
    produce(&s.topic, 2, &second);
    wait_for_count(&store, (first.len() + second.len()) as u64, &mut run, "after the restart");
    let held = stored(&store);
    assert_eq!(held.len(), first.len() + second.len(), "nothing lost, nothing twice");
    assert_eq!(checksum(&held), checksum(first.iter().chain(&second)));
    let lines = run.lines();
    assert!(lines.iter().all(|l| !l.starts_with("stopped")), "run kept going:\n{}", lines.join("\n"));
    drop(run);
    store.drop_all().unwrap();
}

/// Polls `/health/ready` until its `ready` is `ready` (within 30 s); the last answer.
fn wait_for_readiness(addr: &str, ready: bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = qadf_client::ops::status::get(addr, "/health/ready", Duration::from_secs(5)).unwrap();
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
        if answer["ready"] == ready {
            assert_eq!(status, if ready { 200 } else { 503 }, "{body}");
            return answer;
        }
        assert!(Instant::now() < deadline, "/health/ready did not turn ready = {ready}: {body}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn writes_wait_while_mongodb_is_down_and_complete_when_it_returns() {
    let _guard = SERVICES.lock().unwrap_or_else(|e| e.into_inner());
    let down_for = Duration::from_secs(if scenario::full() { 30 } else { 10 });
    let samples = build(2, 10.0, "mongo-out");
    // Half before the outage, half during it: with bucket history `run` stores 20,000 samples in
    // a fraction of a second, so only data produced while MongoDB is down is sure to wait.
    let (before_outage, during_outage) = samples.split_at(samples.len() / 2);
    let s = Scenario::new("mongoout");
    let store = s.store();
    let mut run = s.spawn_run(&["--exit-when-idle", "60"]);
    std::thread::sleep(Duration::from_secs(1));
    produce(&s.topic, 2, before_outage);
    wait_for_count(&store, before_outage.len() as u64, &mut run, "before the outage");
    let http = run.http_addr();
    wait_for_readiness(&http, true);

    xtask_services("down", "mongodb");
    // /health/ready turns not ready, naming the store, and `qadf-stream status` says so.
    let not_ready = wait_for_readiness(&http, false);
    let store_check = not_ready["checks"].as_array().unwrap().iter().find(|c| c["name"] == "store").unwrap().clone();
    assert_eq!(store_check["ok"], false, "{not_ready}");
    let status = std::process::Command::new(scenario::binary()).args(["status", "--addr", &http]).output().unwrap();
    assert_eq!(status.status.code(), Some(1), "{}", String::from_utf8_lossy(&status.stdout));
    assert!(String::from_utf8_lossy(&status.stdout).contains("store    NOT OK"));
    produce(&s.topic, 2, during_outage);
    let pid = run.child.id();
    let rss = || {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse::<u64>().ok())
            .expect("qadf-stream is still running")
    };
    let before = rss();
    std::thread::sleep(down_for);
    let during = rss();
    eprintln!("RSS of run: {before} KiB when MongoDB stopped, {during} KiB {down_for:?} later");
    assert!(during < before + 64 * 1024, "memory stays bounded while writes wait: {before} -> {during} KiB");
    xtask_services("up", "mongodb");
    wait_until("MongoDB is back", || answers(&Service::Mongodb.addr_unchecked()));
    wait_for_readiness(&http, true);

    wait_for_count(&store, samples.len() as u64, &mut run, "after the outage");
    let held = stored(&store);
    assert_eq!(held.len(), samples.len());
    assert_eq!(checksum(&held), checksum(&samples));
    assert!(run.lines().iter().any(|l| l.contains("retrying")), "the writer said it was waiting");
    drop(run);
    store.drop_all().unwrap();
}

#[test]
fn the_live_view_recovers_after_redis_restarts() {
    let _guard = SERVICES.lock().unwrap_or_else(|e| e.into_inner());
    let redis_addr = Service::Redis.addr();
    let (host, port) = redis_addr.rsplit_once(':').unwrap();
    let mut s = Scenario::new("redisout");
    s.extra.push(("QADF_ENABLE_REDIS_CACHE".into(), "true".into()));
    s.extra.push(("QADF_REDIS_HOST".into(), host.into()));
    s.extra.push(("QADF_REDIS_PORT".into(), port.into()));
    s.extra.push(("QADF_REDIS_KEY_PREFIX".into(), s.group.clone()));
    let key = format!("{}:redis-out:alerts", s.group);
    let exists = |key: &str| -> bool {
        let client = redis::Client::open(format!("redis://{redis_addr}")).unwrap();
        client.get_connection().ok().is_some_and(|mut c| redis::cmd("EXISTS").arg(key).query::<i64>(&mut c) == Ok(1))
    };
    // A hot spot in each half of the build raises an alert, which the live view publishes.
    let hot = |mut samples: Vec<qadf_core_types::Sample>| {
        for smp in samples.iter_mut().step_by(500) {
            smp.signals = [("temperature", 2400.0)].into_iter().collect();
        }
        samples
    };
    let all = hot(build(2, 5.0, "redis-out"));
    let (first, second) = all.split_at(all.len() / 2);
    produce(&s.topic, 2, first);
    let store = s.store();
    let mut run = s.spawn_run(&["--exit-when-idle", "60"]);
    wait_for_count(&store, first.len() as u64, &mut run, "first half");
    wait_until("the live view has the first alerts", || exists(&key));

    xtask_services("down", "redis");
    xtask_services("up", "redis");
    wait_until("Redis is back", || answers(&redis_addr));
    assert!(!exists(&key), "a restarted Redis holds nothing");

    produce(&s.topic, 2, second);
    wait_for_count(&store, all.len() as u64, &mut run, "second half");
    wait_until("the live view publishes again", || exists(&key));
    assert!(run.child.try_wait().unwrap().is_none(), "run kept going:\n{}", run.lines().join("\n"));
    drop(run);
    store.drop_all().unwrap();
}

/// Starts a service again when dropped (a failed assertion must not leave it down for the next test).
struct Restart(&'static str);

impl Drop for Restart {
    fn drop(&mut self) {
        xtask_services("up", self.0);
    }
}

#[test]
fn a_rebalance_while_mongodb_is_down_gives_the_old_owners_writes_up_and_loses_nothing() {
    let _guard = SERVICES.lock().unwrap_or_else(|e| e.into_inner());
    let (s, producer, builds) = four_builds("down", if scenario::full() { 8 } else { 3 });
    let total: usize = builds.iter().map(Vec::len).sum();
    let store = s.store();
    let (a, b) = (s.spawn_run(&[]), s.spawn_run(&[]));
    wait("two members sharing the partitions", Duration::from_secs(60), &[&a, &b], || {
        [&a, &b].iter().all(|m| assigned(m).is_some_and(|p| p.len() == 2))
    });
    // Each member stores data of each of its partitions (their builds are its own from then on).
    send_halves(&producer, &s.topic, &builds, 0);
    wait("the first halves stored", Duration::from_secs(120), &[&a, &b], || {
        store.count().unwrap() >= builds.iter().map(|b| half(b, 0).len() as u64).sum::<u64>()
    });
    // The store goes down; both members go on consuming until their writers' queues are full.
    let _restart = Restart("mongodb");
    xtask_services("down", "mongodb");
    send_halves(&producer, &s.topic, &builds, 1);
    std::thread::sleep(Duration::from_secs(2));
    // One member dies: after its session the survivor's revocation cannot store within its drain.
    b.kill_9();
    wait("the survivor holding all four partitions", Duration::from_secs(60), &[&a], || {
        assigned(&a).is_some_and(|p| p.len() == 4)
    });
    xtask_services("up", "mongodb");
    wait("everything stored", Duration::from_secs(180), &[&a], || store.count().is_ok_and(|n| n >= total as u64));
    a.signal("-TERM");
    let outputs = vec![finish(a)];
    assert!(writes_given_up(&outputs[0]) > 0, "the survivor gave its writes up at the revocation");
    let held = stored(&store);
    assert_eq!(held.len(), total, "every sample stored exactly once");
    let all: Vec<&Sample> = builds.iter().flatten().collect();
    assert_eq!(checksum(&held), checksum(all.iter().copied()), "the stored contents are the produced ones");
    let ends: BTreeMap<i32, i64> = (0..4).map(|p| (p, builds[p as usize].chunks(100).len() as i64)).collect();
    assert_eq!(group_offsets(&s.group, &s.topic, 4), ends, "the group's committed offsets are at the log end");
    grids_equal_a_clean_run(&s, &outputs, total);
    store.drop_all().unwrap();
}
