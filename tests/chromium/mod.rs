//! Headless Chromium driven over the DevTools protocol (a WebSocket, spoken with tungstenite),
//! for the live-page tests; plus the small HTTP and child-process helpers they share.
#![allow(dead_code)] // each browser test uses part of this module

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

/// Kills the child when the test ends, however it ends.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Debian's Chromium (`QADF_TEST_CHROMIUM` overrides the path).
pub fn chromium() -> String {
    let path = std::env::var("QADF_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        std::path::Path::new(&path).exists(),
        "Chromium not found at {path}: `cargo xtask ci` installs Debian's chromium (or set QADF_TEST_CHROMIUM)"
    );
    path
}

/// Lines of a child's output, as they come.
pub fn lines(out: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The first line containing `what` (within 60 s); every line read is kept in `seen`.
pub fn wait_for_line(rx: &mpsc::Receiver<String>, what: &str, seen: &mut Vec<String>) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                seen.push(line.clone());
                if line.contains(what) {
                    return line;
                }
            }
            Err(e) => panic!("no line containing `{what}` ({e}); output so far:\n{}", seen.join("\n")),
        }
    }
}

/// `GET path` from `addr`: status and body (HTTP/1.1, read up to Content-Length).
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut reader = BufReader::new(s);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).unwrap();
    let status = status_line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut length = None;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse::<usize>().ok();
        }
    }
    let mut body = vec![0; length.expect("a Content-Length header")];
    reader.read_exact(&mut body).unwrap();
    (status, String::from_utf8(body).unwrap())
}

/// A headless Chromium showing one page, and a DevTools session on it.
pub struct Browser {
    ws: WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>,
    next_id: u64,
    /// DevTools events received so far (those of the domains enabled), oldest first.
    pub events: Vec<Value>,
    _child: Reaped,
}

impl Browser {
    /// Opens `url` in a fresh profile at `width` x `height`.
    pub fn open(url: &str, width: u32, height: u32) -> Browser {
        let profile = tempdir("chromium-profile");
        let mut child = Command::new(chromium())
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"])
            .args(["--disable-background-networking", "--disable-component-update", "--disable-sync"])
            .arg("--remote-debugging-port=0")
            .arg(format!("--window-size={width},{height}"))
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let err = lines(child.stderr.take().unwrap());
        let child = Reaped(child);
        let devtools = wait_for_line(&err, "DevTools listening on ws://", &mut Vec::new());
        let addr = devtools.split("ws://").nth(1).unwrap().split('/').next().unwrap().to_owned();
        let targets: Value = serde_json::from_str(&http_get(&addr, "/json/list").1).unwrap();
        let page = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_owned();
        let (ws, _) = tungstenite::connect(page.as_str()).unwrap();
        if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        }
        Browser { ws, next_id: 0, events: Vec::new(), _child: child }
    }

    /// Calls a DevTools method; its result.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.ws.send(Message::text(json!({"id": id, "method": method, "params": params}).to_string())).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(Instant::now() < deadline, "no reply to {method} within 60 s");
            let Some(reply) = self.next_message() else { continue };
            if reply["id"] == id {
                assert!(reply.get("error").is_none(), "{method} failed: {reply}");
                return reply["result"].clone();
            }
            if reply.get("method").is_some() {
                self.events.push(reply);
            }
        }
    }

    /// The next DevTools message, or `None` after 100 ms without one.
    fn next_message(&mut self) -> Option<Value> {
        match self.ws.read() {
            Ok(Message::Text(t)) => Some(serde_json::from_str(&t).unwrap()),
            Ok(_) => None,
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
            {
                None
            }
            Err(e) => panic!("DevTools connection: {e}"),
        }
    }

    /// Collects events for `d`.
    pub fn pump(&mut self, d: Duration) {
        let deadline = Instant::now() + d;
        while Instant::now() < deadline {
            if let Some(m) = self.next_message()
                && m.get("method").is_some()
            {
                self.events.push(m);
            }
        }
    }

    /// Console errors and uncaught exceptions among the events (needs `Runtime.enable`).
    pub fn console_errors(&self) -> Vec<String> {
        self.events
            .iter()
            .filter(|e| {
                e["method"] == "Runtime.exceptionThrown"
                    || (e["method"] == "Runtime.consoleAPICalled" && e["params"]["type"] == "error")
            })
            .map(|e| e["params"].to_string())
            .collect()
    }

    /// Main-thread busy time so far, in seconds (`TaskDuration`; needs `Performance.enable`).
    pub fn main_thread_seconds(&mut self) -> f64 {
        let metrics = self.call("Performance.getMetrics", json!({}));
        metrics["metrics"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["name"] == "TaskDuration"))
            .and_then(|m| m["value"].as_f64())
            .expect("a TaskDuration metric")
    }

    /// Evaluates `expression` in the page; its value.
    pub fn eval(&mut self, expression: &str) -> Value {
        let r = self.call("Runtime.evaluate", json!({"expression": expression, "returnByValue": true}));
        assert!(r.get("exceptionDetails").is_none(), "page script failed: {r}");
        r["result"]["value"].clone()
    }

    /// Evaluates `expression` every 200 ms until `done` holds of its value (at most `within`); the last value.
    pub fn wait_for(&mut self, expression: &str, within: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let value = self.eval(expression);
            if done(&value) || Instant::now() > deadline {
                return value;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Saves a PNG screenshot as `target/artifacts/<name>`; its size in bytes.
    pub fn screenshot(&mut self, name: &str) -> usize {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().unwrap()).unwrap();
        assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "a real screenshot ({} bytes)", png.len());
        let artifact = artifacts().join(name);
        std::fs::write(&artifact, &png).unwrap();
        eprintln!("screenshot: {}", artifact.display());
        png.len()
    }
}

/// `target/artifacts`, created.
pub fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A fresh directory under the target's temporary directory.
pub fn tempdir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "{name}-{}-{}",
        std::process::id(),
        qadf_integration_tests::unique_name("d")
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
