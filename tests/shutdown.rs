//! SIGTERM under load: `qadf-stream run` stops fetching, stores and commits what it holds and
//! exits 0; a second run resumes from that commit with nothing stored twice and nothing replayed
//! (before: no handler, so a container stop killed `run` between storing and committing).

mod scenario;

use std::time::{Duration, Instant};

use scenario::{Scenario, build, checksum, processed, produce, stored};

#[test]
fn sigterm_drains_stores_and_commits_then_exits_0_and_a_restart_replays_nothing() {
    let samples = build(2, 12.0, "sigterm");
    let s = Scenario::new("sigterm");
    produce(&s.topic, 2, &samples);
    let mut run = s.spawn_run(&[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while processed(&run.lines()) == 0 {
        assert!(Instant::now() < deadline, "nothing processed: {:?}", run.lines());
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = run.child.id() as i32;
    assert_eq!(send_sigterm(pid), 0, "sending SIGTERM");
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = run.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit within 15 s of SIGTERM: {:?}", run.lines());
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(100));
    assert!(status.success(), "exit {status} after SIGTERM: {:?}", run.lines());
    assert!(run.lines().iter().any(|l| l.starts_with("stopping:")), "{:?}", run.lines());

    let out = s.run_to_end(&["--exit-when-idle", "3"]);
    let replayed = out.iter().find(|l| l.starts_with("replayed samples skipped")).expect("a replay line");
    assert!(replayed.ends_with(": 0"), "what was stored was committed before the exit: {replayed}");
    let store = s.store();
    let held = stored(&store);
    assert_eq!(held.len(), samples.len(), "every sample stored once");
    assert_eq!(checksum(&held), checksum(&samples));
    store.drop_all().unwrap();
}

/// SIGTERM to `pid` through the `kill` command (the test crate has no libc binding of its own).
fn send_sigterm(pid: i32) -> i32 {
    send(pid, "-TERM")
}

fn send(pid: i32, signal: &str) -> i32 {
    let status = std::process::Command::new("kill").args([signal, &pid.to_string()]).status().unwrap();
    status.code().unwrap_or(-1)
}

/// SIGHUP reloads the rules file: a file that does not check is refused with the old rules kept,
/// a good one applies and is logged; SIGHUP never stops `run` (before: it stopped it like SIGTERM).
#[test]
fn sighup_reloads_the_rules_file_refusing_a_bad_one() {
    let s = Scenario::new("sighup");
    produce(&s.topic, 1, &build(1, 4.0, "sighup"));
    let dir = std::env::temp_dir().join(format!("qadf-sighup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("rules.toml");
    let rule = |name: &str| {
        format!("[[rule]]\nname = \"{name}\"\nkind = \"range\"\nsignal = \"temperature\"\ncritical = [0.0, 1e9]\n")
    };
    std::fs::write(&file, rule("one")).unwrap();
    let mut run = s.spawn_run(&["--rules", file.to_str().unwrap()]);
    let wait_for = |run: &scenario::RunningChild, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !run.lines().iter().any(|l| l.contains(what)) {
            assert!(Instant::now() < deadline, "no `{what}`: {:?}", run.lines());
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for(&run, &format!("rules: 1 from {}", file.display()));
    let pid = run.child.id() as i32;
    std::fs::write(&file, "[[rule]]\nname = \"two\"\nkind = \"range\"\nsignal = \"temperature\"\nk = 3.0\n").unwrap();
    assert_eq!(send(pid, "-HUP"), 0);
    wait_for(&run, "rules not reloaded, the previous ones stay:");
    assert!(run.lines().iter().any(|l| l.contains("`rule[0].k`")), "{:?}", run.lines());
    std::fs::write(&file, rule("one") + &rule("two")).unwrap();
    assert_eq!(send(pid, "-HUP"), 0);
    wait_for(&run, &format!("rules reloaded: 2 from {}", file.display()));
    assert!(run.child.try_wait().unwrap().is_none(), "SIGHUP does not stop run: {:?}", run.lines());
    assert_eq!(send_sigterm(pid), 0);
    let status = run.child.wait().unwrap();
    assert!(status.success(), "{status}: {:?}", run.lines());
    s.store().drop_all().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
