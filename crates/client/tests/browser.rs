//! The live dashboard in a real headless Chromium: the page served by `qadf-stream demo`
//! connects to the feed, paints the layer heatmap from a full frame and then from changed tiles,
//! and lists the alerts of the injected defects. A screenshot is kept in `target/artifacts/`.
//!
//! Chromium is driven over the DevTools protocol (a WebSocket, spoken with tungstenite).

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
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chromium() -> String {
    let path = std::env::var("QADF_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        std::path::Path::new(&path).exists(),
        "Chromium not found at {path}: `cargo xtask ci` installs Debian's chromium (or set QADF_TEST_CHROMIUM)"
    );
    path
}

/// Lines of a child's output, as they come.
fn lines(out: impl Read + Send + 'static) -> mpsc::Receiver<String> {
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

fn wait_for_line(rx: &mpsc::Receiver<String>, what: &str, seen: &mut Vec<String>) -> String {
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

/// The body of `GET path` (HTTP/1.1, read up to Content-Length: Chromium keeps connections open).
fn http_get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut reader = BufReader::new(s);
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
    String::from_utf8(body).unwrap()
}

/// A DevTools session on one page.
struct DevTools {
    ws: WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl DevTools {
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.ws.send(Message::text(json!({"id": id, "method": method, "params": params}).to_string())).unwrap();
        loop {
            let text = match self.ws.read().unwrap() {
                Message::Text(t) => t,
                _ => continue,
            };
            let reply: Value = serde_json::from_str(&text).unwrap();
            if reply["id"] == id {
                assert!(reply.get("error").is_none(), "{method} failed: {reply}");
                return reply["result"].clone();
            }
        }
    }

    fn eval(&mut self, expression: &str) -> Value {
        let r = self.call("Runtime.evaluate", json!({"expression": expression, "returnByValue": true}));
        assert!(r.get("exceptionDetails").is_none(), "page script failed: {r}");
        r["result"]["value"].clone()
    }
}

const PAGE_STATE: &str = r##"(() => {
  const q = window.qadf || {}, c = document.getElementById("heatmap");
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let painted = 0;
  for (let i = 3; i < d.length; i += 4) if (d[i]) painted++;
  return { connected: q.connected, error: q.error, frames: q.frames, fullFrames: q.fullFrames,
           deltaTiles: q.deltaTiles, painted, layer: document.getElementById("layer").textContent,
           status: document.getElementById("status").dataset.state,
           alerts: [...document.querySelectorAll("#alerts li")].map(li => li.textContent) };
})()"##;

#[test]
fn the_dashboard_renders_the_heatmap_and_the_injected_alerts_in_chromium() {
    let chromium = chromium();
    let mut demo = Command::new(env!("CARGO_BIN_EXE_qadf-stream"))
        .args(["demo", "--layers", "12", "--part-size", "6", "--rate", "20000", "--seed", "11"])
        .args(["--dashboard", "127.0.0.1:0", "--wait-for-viewer", "--hold"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = lines(demo.stdout.take().unwrap());
    let mut demo = Reaped(demo);
    let mut seen = Vec::new();
    let url = wait_for_line(&out, "live dashboard: ", &mut seen).rsplit(' ').next().unwrap().to_owned();
    let page = http_get(url.trim_start_matches("http://").trim_end_matches('/'), "/");
    assert!(page.contains("qadf-stream live") && !page.contains("://cdn"), "the page is served, with no CDN");

    let profile = tempdir("chromium-profile");
    let mut browser = Command::new(&chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"])
        .args(["--disable-background-networking", "--disable-component-update", "--disable-sync"])
        .args(["--remote-debugging-port=0", "--window-size=1280,900"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(&url)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let browser_err = lines(browser.stderr.take().unwrap());
    let _browser = Reaped(browser);
    let mut browser_seen = Vec::new();
    let devtools = wait_for_line(&browser_err, "DevTools listening on ws://", &mut browser_seen);
    let devtools_addr = devtools.split("ws://").nth(1).unwrap().split('/').next().unwrap().to_owned();
    let targets: Value = serde_json::from_str(&http_get(&devtools_addr, "/json/list")).unwrap();
    let page_ws = targets
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["type"] == "page")
        .and_then(|t| t["webSocketDebuggerUrl"].as_str())
        .expect("a page target")
        .to_owned();
    let (ws, _) = tungstenite::connect(page_ws.as_str()).unwrap();
    let mut tools = DevTools { ws, next_id: 0 };

    wait_for_line(&out, "layer   12/12 sent", &mut seen);
    let deadline = Instant::now() + Duration::from_secs(60);
    let state = loop {
        let state = tools.eval(PAGE_STATE);
        let alerts = state["alerts"].as_array().map_or(0, Vec::len);
        let done = state["layer"] == "12 / 12" && state["painted"].as_u64() > Some(0) && alerts >= 4;
        if done || Instant::now() > deadline {
            break state;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    eprintln!("page state: {state:#}");
    assert_eq!(state["error"], Value::Null);
    assert_eq!((state["connected"].as_bool(), state["status"].as_str()), (Some(true), Some("live")));
    assert_eq!(state["layer"], "12 / 12", "progress reached the last layer");
    assert!(state["fullFrames"].as_u64() >= Some(1), "a full frame first");
    assert!(state["deltaTiles"].as_u64() > Some(0), "then changed tiles only");
    let painted = state["painted"].as_u64().unwrap();
    assert!(painted > 1000, "the 6 mm part at 0.1 mm paints thousands of voxels, got {painted}");
    let alerts: Vec<&str> = state["alerts"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    for checkpoint in ["melt_pool_temperature", "sensor_dropout"] {
        assert!(alerts.iter().any(|a| a.starts_with(checkpoint)), "a `{checkpoint}` alert is listed: {alerts:?}");
    }

    let shot = tools.call("Page.captureScreenshot", json!({"format": "png"}));
    let png = base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().unwrap()).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "a real screenshot ({} bytes)", png.len());
    let artifact = artifacts().join("dashboard.png");
    std::fs::write(&artifact, &png).unwrap();
    eprintln!("screenshot: {}", artifact.display());

    // Ctrl-C ends the hold; the demo prints its summary and exits cleanly.
    let status = Command::new("kill").args(["-INT", &demo.0.id().to_string()]).status().unwrap();
    assert!(status.success());
    let summary = wait_for_line(&out, "quality: ", &mut seen);
    assert!(summary.contains("4 of 4 injected defects detected, 0 alerts elsewhere"), "{summary}");
    let exit = demo.0.wait().unwrap();
    assert!(exit.success(), "demo exit {exit}; output:\n{}", seen.join("\n"));
    assert!(seen.iter().any(|l| l.starts_with("done: 12 of 12 layers")), "{}", seen.join("\n"));
}

fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn tempdir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
