//! The live page in a real headless Chromium (DevTools protocol, `chromium/`): the page served by
//! `qadf-stream demo` paints the layer heatmap from a full frame and then from changed tiles and
//! lists the injected defects' alerts; the page served by `qadf-stream run` against the real
//! services lists the builds of one topic and switches between them. Screenshots are kept in
//! `target/artifacts/`.

mod chromium;
mod scenario;

use std::process::{Command, Stdio};
use std::time::Duration;

use chromium::{Browser, Reaped, http_get, lines, wait_for_line};
use serde_json::Value;

const PAGE_STATE: &str = r##"(() => {
  const q = window.qadf || {}, c = document.getElementById("heatmap");
  if (!c) return { loading: true };
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
    let mut demo = Command::new(scenario::binary())
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
    let (_, page) = http_get(url.trim_start_matches("http://").trim_end_matches('/'), "/");
    assert!(page.contains("qadf-stream live") && !page.contains("://cdn"), "the page is served, with no CDN");

    let mut tools = Browser::open(&url, 1280, 900);

    wait_for_line(&out, "layer   12/12 sent", &mut seen);
    let state = tools.wait_for(PAGE_STATE, Duration::from_secs(60), |state| {
        let alerts = state["alerts"].as_array().map_or(0, Vec::len);
        state["layer"] == "12 / 12" && state["painted"].as_u64() > Some(0) && alerts >= 4
    });
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

    tools.screenshot("dashboard.png");

    // Ctrl-C ends the hold; the demo prints its summary and exits cleanly.
    let status = Command::new("kill").args(["-INT", &demo.0.id().to_string()]).status().unwrap();
    assert!(status.success());
    let summary = wait_for_line(&out, "quality: ", &mut seen);
    assert!(summary.contains("4 of 4 injected defects detected, 0 alerts elsewhere"), "{summary}");
    let exit = demo.0.wait().unwrap();
    assert!(exit.success(), "demo exit {exit}; output:\n{}", seen.join("\n"));
    assert!(seen.iter().any(|l| l.starts_with("done: 12 of 12 layers")), "{}", seen.join("\n"));
}

const RUN_STATE: &str = r##"(() => {
  const q = window.qadf || {}, c = document.getElementById("heatmap");
  if (!c) return { loading: true };
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let painted = 0;
  for (let i = 3; i < d.length; i += 4) if (d[i]) painted++;
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
