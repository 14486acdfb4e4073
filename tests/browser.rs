//! The live page in a real headless Chromium (DevTools protocol, `chromium/`): on a demo build,
//! a defect layer's own map peaks at its alert's value in the out-of-limit colour, the strip
//! shows past layers, the state reads stalled, finished and disconnected when it should, the
//! page fits a phone and logs no error; the page served by `qadf-stream run` against the real
//! services lists the builds of one topic and switches between them. Screenshots are kept in
//! `target/artifacts/`.

mod chromium;
mod scenario;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chromium::{Browser, Reaped, http_get, lines, wait_for_line};
use serde_json::Value;

const PAGE_STATE: &str = r##"(() => {
  const q = window.qadf || {};
  const banner = document.getElementById("banner");
  if (!document.getElementById("state")) return { loading: true };
  return { connected: q.connected, error: q.error, frames: q.frames, fullFrames: q.fullFrames, build: q.build,
           state: document.getElementById("state").dataset.state, age: document.getElementById("age").textContent,
           layer: document.getElementById("layer").textContent, title: document.getElementById("map-title").textContent,
           liveLayer: q.live ? q.live.layer : null, pinned: q.pinned, marker: q.marker ? q.marker.layer : null,
           map: q.mapStats, scale: q.scales ? q.scales.temperature || null : null,
           strip: [...document.querySelectorAll("#strip button")].map(b => [+b.dataset.layer, b.dataset.verdict, b.textContent]),
           rows: [...document.querySelectorAll("#alerts tr")].map(tr => tr.textContent),
           alerts: (q.alerts || []).map(a => [a.checkpoint, a.layer, a.value, a.threshold]),
           banner: banner ? getComputedStyle(banner).display !== "none" : false,
           overflow: document.documentElement.scrollWidth - window.innerWidth };
})()"##;

/// The colour of the map's canvas at the pixel where the page drew its maximum.
const MAX_PIXEL: &str = r##"(() => {
  const m = window.qadf.mapStats, c = document.getElementById("map");
  if (!m || !m.maxPixel) return null;
  return [...c.getContext("2d").getImageData(m.maxPixel[0], m.maxPixel[1], 1, 1).data].slice(0, 3);
})()"##;

#[test]
fn the_live_page_shows_each_layer_s_own_map_on_fixed_scales_and_the_build_s_state() {
    let (stall_seconds, pause_after) = (2.0, 5);
    let mut demo = Command::new(scenario::binary())
        .args(["demo", "--layers", "12", "--part-size", "6", "--rate", "20000", "--seed", "11"])
        .args(["--dashboard", "127.0.0.1:0", "--wait-for-viewer", "--hold"])
        .args(["--pause-after-layer", &pause_after.to_string(), "--pause-seconds", "6"])
        .env("QADF_STALL_SECONDS", stall_seconds.to_string())
        .env("QADF_ALERT_DEDUP_INTERVAL_MS", "0") // every offending sample alerts: the map's peak is an alert
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = lines(demo.stdout.take().unwrap());
    let mut demo = Reaped(demo);
    let mut seen = Vec::new();
    let url = wait_for_line(&out, "live dashboard: ", &mut seen).rsplit(' ').next().unwrap().to_owned();
    let (_, html) = http_get(url.trim_start_matches("http://").trim_end_matches('/'), "/");
    assert!(html.contains("qadf-stream live") && !html.contains("://cdn"), "the page is served, with no CDN");

    let mut page = Browser::open("about:blank", 1600, 1000);
    page.call("Runtime.enable", serde_json::json!({}));
    page.call("Page.navigate", serde_json::json!({ "url": url }));

    // The machine halts after layer 5: within the configured seconds the page says stalled.
    wait_for_line(&out, &format!("layer {:>4}/12 sent", pause_after + 1), &mut seen);
    let halted = Instant::now();
    let running = page.wait_for(PAGE_STATE, Duration::from_secs(10), |v| v["state"] == "running");
    assert_eq!(running["state"], "running", "{running:#}");
    let stalled = page.wait_for(PAGE_STATE, Duration::from_secs(10), |v| v["state"] == "stalled");
    let after = halted.elapsed().as_secs_f64();
    assert_eq!(stalled["state"], "stalled", "{stalled:#}");
    assert!(
        (stall_seconds - 0.5..stall_seconds + 2.0).contains(&after),
        "stalled {after:.1} s after the last batch (configured: {stall_seconds} s)"
    );
    assert!(stalled["age"].as_str().unwrap().starts_with("last sample "), "{stalled:#}");
    page.screenshot("page-stalled-1600.png");

    // After the build: finished, the header and the map on the last layer.
    wait_for_line(&out, "build done", &mut seen);
    let done = page.wait_for(PAGE_STATE, Duration::from_secs(30), |v| v["state"] == "finished");
    eprintln!("page after the build: {done:#}");
    assert_eq!((done["state"].as_str(), done["error"].as_null()), (Some("finished"), Some(())), "{done:#}");
    assert_eq!((done["layer"].as_str(), done["liveLayer"].as_u64()), (Some("11"), Some(11)), "one numbering, from 0");
    assert!(done["title"].as_str().unwrap().starts_with("Layer 11 — temperature"), "{}", done["title"]);
    let strip = done["strip"].as_array().unwrap();
    assert_eq!(strip.len(), 12, "a strip cell per layer: {strip:?}");
    let scale = &done["scale"];
    let critical = (scale["critical"][0].as_f64(), scale["critical"][1].as_f64());
    assert_eq!((scale["unit"].as_str(), critical), (Some("K"), (Some(1700.0), Some(2150.0))), "the rule's limits");

    // The hot spot's layer: its strip cell is critical; clicking it shows that layer's map,
    // whose maximum is the hottest alert's value, drawn in the out-of-limit colour.
    let hot: Vec<(u64, f64)> = done["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a[0] == "melt_pool_temperature" && a[2].as_f64() > a[3].as_f64())
        .map(|a| (a[1].as_u64().unwrap(), a[2].as_f64().unwrap()))
        .collect();
    let layer = hot.first().expect("a hot-spot alert").0;
    let peak = hot.iter().filter(|(l, _)| *l == layer).map(|(_, v)| *v).fold(f64::MIN, f64::max);
    assert!(strip.iter().any(|c| c[0] == layer && c[1] == "critical"), "layer {layer} is critical: {strip:?}");
    page.eval(&format!(r#"document.querySelector('#strip button[data-layer="{layer}"]').click()"#));
    let shown =
        page.wait_for(PAGE_STATE, Duration::from_secs(10), |v| v["map"]["layer"] == layer && v["pinned"] == layer);
    eprintln!("layer {layer} shown: {}", shown["map"]);
    let map = &shown["map"];
    assert!(map["painted"].as_u64() > Some(1000), "the 6 mm part's layer at 0.1 mm: {map}");
    let (max, step) = (map["max"].as_f64().unwrap(), map["step"].as_f64().unwrap());
    assert!(
        (max - peak).abs() <= step / 2.0 + 1e-3,
        "map maximum {max} against the hottest alert {peak} (step {step})"
    );
    let colours = page.eval("window.qadf.colours");
    assert_eq!(map["maxColour"], colours["above"], "the peak is coloured as above the limit");
    assert_eq!(page.eval(MAX_PIXEL), colours["above"], "and drawn so");
    assert!(shown["title"].as_str().unwrap().starts_with(&format!("Layer {layer} — ")), "{}", shown["title"]);
    // Its alerts, with time, unit and severity words; a click locates one on the map.
    let rows = shown["rows"].as_array().unwrap();
    assert!(!rows.is_empty() && rows.iter().all(|r| r.as_str().unwrap().contains(" K")), "{rows:?}");
    assert!(rows.iter().any(|r| r.as_str().unwrap().contains("critical")), "{rows:?}");
    page.eval("document.querySelector('#alerts tr').click()");
    let located = page.wait_for(PAGE_STATE, Duration::from_secs(5), |v| v["marker"] == layer);
    assert_eq!(located["marker"], layer);
    // Another layer from the strip: its own map.
    page.eval(r#"document.querySelector('#strip button[data-layer="0"]').click()"#);
    let first = page.wait_for(PAGE_STATE, Duration::from_secs(10), |v| v["map"]["layer"] == 0);
    assert!(first["map"]["painted"].as_u64() > Some(1000), "{}", first["map"]);
    assert!(first["map"]["max"].as_f64() < Some(2150.0), "layer 0 has no hot spot: {}", first["map"]);
    page.screenshot("page-layer-1600.png");

    // A phone: no horizontal overflow.
    page.call(
        "Emulation.setDeviceMetricsOverride",
        serde_json::json!({ "width": 480, "height": 900, "deviceScaleFactor": 1, "mobile": true }),
    );
    let phone = page.wait_for(PAGE_STATE, Duration::from_secs(5), |v| v["overflow"].as_i64() <= Some(0));
    assert!(phone["overflow"].as_i64() <= Some(0), "no horizontal scrolling at 480 px: {}", phone["overflow"]);
    page.screenshot("page-480.png");

    // The server dies: the page says so.
    demo.0.kill().unwrap();
    let lost = page.wait_for(PAGE_STATE, Duration::from_secs(10), |v| v["banner"] == true);
    assert_eq!((lost["banner"].as_bool(), lost["state"].as_str()), (Some(true), Some("disconnected")), "{lost:#}");
    page.screenshot("page-disconnected-480.png");
    page.pump(Duration::from_millis(300));
    let errors: Vec<String> =
        page.console_errors().into_iter().filter(|e| !e.contains("WebSocket connection to")).collect();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
}

const RUN_STATE: &str = r##"(() => {
  const q = window.qadf || {};
  if (!document.getElementById("build")) return { loading: true };
  const painted = q.mapStats ? q.mapStats.painted : 0;
  const current = document.querySelector('#builds button[aria-current="true"]');
  return { error: q.error, build: q.build, selected: q.selected, painted,
           header: document.getElementById("build").textContent,
           current: current ? current.dataset.build : null,
           buttons: [...document.querySelectorAll("#builds button")].map(b => b.dataset.build) };
})()"##;

#[test]
fn the_page_served_by_run_lists_the_builds_of_one_topic_and_switches_between_them() {
    let s = scenario::Scenario::new("browser_run");
    // Two printers on one topic, the second with a bigger part (so the maps differ).
    let mut samples = scenario::build(3, 3.0, "printer-a");
    samples.extend(scenario::build(3, 5.0, "printer-b"));
    scenario::produce(&s.topic, 2, &samples);
    let run = s.spawn_run(&[]);
    let addr = run.http_addr();
    run.wait_for_line(&format!("{} samples", samples.len()), Duration::from_secs(60));
    let mut page = Browser::open(&format!("http://{addr}/"), 1280, 900);
    let listed = page.wait_for(RUN_STATE, Duration::from_secs(30), |v| {
        v["buttons"].as_array().is_some_and(|b| b.len() == 2) && v["painted"].as_u64() > Some(0)
    });
    assert_eq!(listed["buttons"], serde_json::json!(["printer-a", "printer-b"]), "{listed:#}");
    assert_eq!(listed["error"], Value::Null);
    for build in ["printer-a", "printer-b", "printer-a"] {
        page.eval(&format!(r#"document.querySelector('#builds button[data-build="{build}"]').click()"#));
        let shown = page.wait_for(RUN_STATE, Duration::from_secs(30), |v| {
            v["build"] == build && v["current"] == build && v["painted"].as_u64() > Some(0)
        });
        eprintln!("showing {build}: {shown}");
        assert_eq!((shown["build"].as_str(), shown["header"].as_str()), (Some(build), Some(build)), "{shown:#}");
        assert_eq!((shown["selected"].as_str(), shown["current"].as_str()), (Some(build), Some(build)));
        // The bigger part paints more voxels: the map shown is the selected build's own.
        let painted = shown["painted"].as_u64().unwrap();
        let expected = if build == "printer-a" { 500..1500 } else { 1500..4000 };
        assert!(expected.contains(&painted), "{build}: {painted} voxels painted, expected {expected:?}");
        page.screenshot(&format!("run-{build}.png"));
    }
    run.signal("-TERM");
}

/// `cargo xtask bench page`: what the live page costs while the demo streams 100,000 samples/s
/// (WebSocket frames per second, their mean and first-frame sizes, the page's main-thread busy
/// time per second), measured in Chromium over `QADF_BENCH_SECONDS` (default 15) from 3 s in.
#[test]
#[ignore = "a benchmark: run it with `cargo xtask bench page`"]
fn page_cost_at_100000_samples_per_second() {
    let seconds: f64 = std::env::var("QADF_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(15.0);
    // 40,000 samples a layer: enough layers to stream through the whole window.
    let layers = ((seconds + 8.0) * 100_000.0 / 40_000.0).ceil() as u32;
    let mut demo = Command::new(scenario::binary())
        .args(["demo", "--layers", &layers.to_string(), "--part-size", "20", "--rate", "100000"])
        .args(["--dashboard", "127.0.0.1:0", "--wait-for-viewer"])
        .env_remove("QADF_BENCH_SECONDS") // not a configuration field: `qadf-stream` would refuse it
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = lines(demo.stdout.take().unwrap());
    let _demo = Reaped(demo);
    let mut seen = Vec::new();
    let url = wait_for_line(&out, "live dashboard: ", &mut seen).rsplit(' ').next().unwrap().to_owned();
    let mut page = Browser::open("about:blank", 1600, 1000);
    for domain in ["Network.enable", "Performance.enable", "Runtime.enable"] {
        page.call(domain, serde_json::json!({}));
    }
    page.call("Page.navigate", serde_json::json!({ "url": url }));
    page.pump(Duration::from_secs(3));
    let frames = |events: &[Value]| -> Vec<usize> {
        events
            .iter()
            .filter(|e| e["method"] == "Network.webSocketFrameReceived")
            .filter_map(|e| e["params"]["response"]["payloadData"].as_str().map(str::len))
            .collect()
    };
    let (busy_before, events_before) = (page.main_thread_seconds(), page.events.len());
    let started = std::time::Instant::now();
    page.pump(Duration::from_secs_f64(seconds));
    let busy = page.main_thread_seconds() - busy_before;
    let elapsed = started.elapsed().as_secs_f64();
    // What a viewer joining mid-build gets first: the full frame.
    let joined = page.call(
        "Runtime.evaluate",
        serde_json::json!({ "awaitPromise": true, "returnByValue": true, "expression": r#"new Promise(done => {
            const ws = new WebSocket(`ws://${location.host}/ws`);
            ws.onmessage = e => { done(e.data.length); ws.close(); };
        })"# }),
    );
    let full = joined["result"]["value"].as_u64().expect("a first frame for a new viewer") as usize;
    let window = frames(&page.events[events_before..]);
    assert!(!window.is_empty(), "frames arrived during the window");
    let mean = window.iter().sum::<usize>() as f64 / window.len() as f64;
    let largest = window.iter().copied().max().unwrap_or(0);
    println!(
        "page at 100,000 samples/s over {elapsed:.1} s: {:.1} frames/s, mean frame {:.1} KB, full frame (a viewer \
         joining mid-build) {:.1} KB, largest {:.1} KB, {:.0} KB/s, main thread busy {:.0} ms/s; console errors: {}",
        window.len() as f64 / elapsed,
        mean / 1000.0,
        full as f64 / 1000.0,
        largest as f64 / 1000.0,
        window.iter().sum::<usize>() as f64 / 1000.0 / elapsed,
        busy * 1000.0 / elapsed,
        page.console_errors().len()
    );
}
