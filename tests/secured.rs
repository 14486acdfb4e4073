//! Kafka over TLS end to end (docs/OPERATIONS.md, "Secured connections"): a Tansu of the test's
//! own behind a socat TLS terminator (the test broker's own TLS listener does not handshake), the
//! only address it advertises being the TLS one, so every connection — `produce-sim`'s producer,
//! `run`'s group membership (krafka), fetcher and producers (rskafka) — goes through TLS. A CA made
//! by openssl for the test is trusted through `kafka_tls_ca_file`; with another CA `run` refuses to
//! start, naming the broker and the protocol.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use qadf_integration_tests::{free_port, make_certificates, tansu, unique_name};

/// Kills its processes on drop (a failed assertion must not leave a broker behind).
struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for p in &mut self.0 {
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}

fn qadf(args: &[&str], env: &[(&str, String)]) -> std::process::Output {
    let binary = std::env::var("QADF_TEST_QADF_STREAM").unwrap_or_else(|_| "target/release/qadf-stream".to_owned());
    Command::new(binary).args(args).envs(env.iter().map(|(k, v)| (k, v))).output().expect("qadf-stream")
}

#[test]
fn run_consumes_and_commits_over_tls_and_refuses_a_broker_signed_by_another_ca() {
    let dir = std::env::temp_dir().join(unique_name("qadf-kafka-tls"));
    make_certificates(&dir, "qadf test CA");
    make_certificates(&dir.join("other"), "another CA");
    let (plain, tls) = (free_port(), free_port());
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    let broker = Command::new(tansu())
        .args(["broker", "--listener-url", &format!("tcp://127.0.0.1:{plain}")])
        .args(["--advertised-listener-url", &format!("tcp://127.0.0.1:{tls}")])
        .args(["--storage-engine", "memory://tansu/"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tansu");
    let terminator = Command::new("socat")
        .arg(format!(
            "openssl-listen:{tls},reuseaddr,fork,bind=127.0.0.1,cert={},key={},verify=0",
            path("server.pem"),
            path("server.key")
        ))
        .arg(format!("tcp:127.0.0.1:{plain}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("socat");
    let _processes = Processes(vec![broker, terminator]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while [plain, tls].iter().any(|&p| std::net::TcpStream::connect(("127.0.0.1", p)).is_err()) {
        assert!(Instant::now() < deadline, "the broker or the TLS terminator did not start");
        std::thread::sleep(Duration::from_millis(50));
    }

    let topic = unique_name("tls");
    let data = dir.join("data");
    let env = vec![
        ("QADF_KAFKA_BOOTSTRAP_SERVERS", format!("localhost:{tls}")),
        ("QADF_KAFKA_TOPIC", topic.clone()),
        ("QADF_DEAD_LETTER_TOPIC", format!("{topic}_dlq")),
        ("QADF_CONSUMER_GROUP_ID", format!("{topic}_g")),
        ("QADF_KAFKA_SECURITY_PROTOCOL", "ssl".to_owned()),
        ("QADF_KAFKA_TLS_CA_FILE", path("ca.pem")),
        ("QADF_SESSION_TIMEOUT_MS", "6000".to_owned()),
        ("QADF_DRAIN_TIMEOUT_MS", "3000".to_owned()),
        ("QADF_ENABLE_MONGODB_STORAGE", "false".to_owned()),
        ("QADF_ENABLE_REDIS_CACHE", "false".to_owned()),
        ("QADF_DASHBOARD_ADDR", String::new()),
    ];
    let sent = qadf(&["produce-sim", "--partitions", "2", "--layers", "2", "--part-size", "2.0"], &env);
    let sent = String::from_utf8_lossy(&sent.stdout).into_owned();
    let samples: u64 = sent.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect(&sent);
    assert!(samples > 0, "{sent}");

    let run = qadf(&["run", "--exit-when-idle", "3", "--data-dir", data.to_str().unwrap()], &env);
    let out = String::from_utf8_lossy(&run.stdout).into_owned() + &String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{out}");
    assert!(out.contains("consuming 2 partitions (assigned by the group)"), "{out}");
    let count = qadf(&["query", "--count", "--data-dir", data.to_str().unwrap()], &env);
    assert_eq!(String::from_utf8_lossy(&count.stdout).trim(), samples.to_string(), "every sample stored, over TLS");
    // The group's offsets are on the coordinator: a second run finds nothing left to read.
    let again = qadf(&["run", "--exit-when-idle", "2", "--data-dir", data.to_str().unwrap()], &env);
    let again = String::from_utf8_lossy(&again.stdout).into_owned();
    assert!(again.contains("stopped: 0 messages"), "{again}");

    let mut untrusted = env.clone();
    untrusted.retain(|(k, _)| *k != "QADF_KAFKA_TLS_CA_FILE");
    untrusted.push(("QADF_KAFKA_TLS_CA_FILE", path("other/ca.pem")));
    let refused = qadf(&["run", "--exit-when-idle", "2", "--data-dir", data.to_str().unwrap()], &untrusted);
    let err = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert!(!refused.status.success(), "a broker signed by another CA is refused");
    assert!(err.contains(&format!("Kafka at localhost:{tls} (kafka_security_protocol = ssl)")), "{err}");
    assert!(err.contains("invalid peer certificate"), "the cause is named: {err}");
    let _ = std::fs::remove_dir_all(&dir);
}
