//! The live view without a browser: frame contents (full first, then only changed tiles), alerts,
//! lagging subscribers, and the page and feed served on one port.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use qadf_client::StreamingClient;
use qadf_client::builds::BuildStatus;
use qadf_client::dashboard::server::{HEAD_DEADLINE, MAX_CONNECTIONS};
use qadf_client::dashboard::{
    DashboardServer, Frame, LayerAnswer, LiveFeed, LiveOptions, MapTile, PROTOCOL_VERSION, View,
};
use qadf_client::layer_maps::Stat;
use qadf_core_types::{Point3, Sample, StreamingConfig, Timestamp};
use qadf_pipeline::{CheckpointAction, RangeCheck};
use tungstenite::Utf8Bytes;

fn sample(i: i64, x: f64, y: f64, temperature: f64) -> Sample {
    let mut s = Sample::new(
        Timestamp::from_nanos(1_000_000_000 + i * 10_000),
        Point3::new(x, y, 0.05),
        [("temperature", temperature)].into_iter().collect(),
    );
    s.build_id = "b1".into();
    s
}

fn setup() -> (Arc<StreamingClient>, Arc<LiveFeed>) {
    let client = Arc::new(StreamingClient::new(StreamingConfig::default()).unwrap());
    let range = RangeCheck::new("melt_pool_temperature", "temperature", 1700.0, 2150.0);
    client.add_quality_checkpoint(Arc::new(range), CheckpointAction::Continue);
    let feed = Arc::new(LiveFeed::start(client.clone(), LiveOptions::default()).unwrap());
    (client, feed)
}

/// The next frame that satisfies `want`, parsed (panics after 5 s).
fn next_frame(rx: &Receiver<Utf8Bytes>, want: impl Fn(&Frame) -> bool) -> Frame {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = rx.recv_deadline(deadline).expect("a frame within 5 s");
        let frame: Frame = serde_json::from_str(&text).unwrap();
        assert_eq!(frame.v, PROTOCOL_VERSION);
        if want(&frame) {
            return frame;
        }
    }
}

fn value_at(frame: &Frame, x: u32, y: u32) -> Option<f64> {
    let m = frame.map.as_ref()?;
    m.tiles
        .iter()
        .filter(|t| (t.x..t.x + t.w).contains(&x) && (t.y..t.y + t.h).contains(&y))
        .find_map(|t| t.values(m.base, m.step)[((y - t.y) * t.w + (x - t.x)) as usize])
}

fn in_layer(mut s: Sample, layer: u32) -> Sample {
    s.layer = layer;
    s
}

#[test]
fn the_first_frame_is_full_then_only_changed_tiles_follow_with_alerts() {
    let (client, feed) = setup();
    // Two samples in cell (100, 100) at 0.1 mm and one in cell (200, 100), another tile.
    client.process_stream_batch(vec![sample(0, 10.05, 10.05, 1900.0), sample(1, 10.05, 10.05, 1910.0)].into()).unwrap();
    client.process_stream_batch(vec![sample(2, 20.05, 10.05, 1800.0)].into()).unwrap();
    let frames = feed.subscribe(64, View::default());
    let first = next_frame(&frames, |f| f.full);
    assert_eq!(first.build.as_deref(), Some("b1"));
    let m = first.map.as_ref().expect("the current layer's map");
    assert_eq!((m.signal.as_str(), m.stat, m.layer, m.geometry.resolution), ("temperature", Stat::Max, 0, 0.1));
    assert_eq!(value_at(&first, 100, 100), Some(1910.0), "the cell's maximum");
    assert_eq!(value_at(&first, 200, 100), Some(1800.0));
    assert_eq!(value_at(&first, 150, 100), None, "nothing landed there");
    assert_eq!(first.status, Some(BuildStatus::Running));
    assert_eq!(first.layers.iter().map(|l| (l.layer, l.samples)).collect::<Vec<_>>(), [(0, 3)]);
    assert!(first.builds.is_some() && first.health.is_some(), "a full frame carries the list and the health");

    // A hot sample in the first tile only: the next map carries that tile alone, and the alert.
    let result = client.process_stream_batch(vec![sample(3, 10.15, 10.05, 2400.0)].into()).unwrap();
    assert_eq!(result.alerts.len(), 1);
    feed.on_result(&result);
    let delta = next_frame(&frames, |f| f.map.as_ref().is_some_and(|m| !m.tiles.is_empty()) || !f.alerts.is_empty());
    let m = delta.map.as_ref().expect("changed tiles");
    assert!(!m.full && !delta.full);
    let tiles: Vec<(u32, u32, u32, u32)> = m.tiles.iter().map(|t| (t.x, t.y, t.w, t.h)).collect();
    assert_eq!(tiles, [(101, 100, 1, 1)], "only the cell that changed, of one tile");
    assert_eq!(value_at(&delta, 101, 100), Some(2400.0));
    let alerts =
        if delta.alerts.is_empty() { next_frame(&frames, |f| !f.alerts.is_empty()).alerts } else { delta.alerts };
    assert_eq!(alerts[0].checkpoint, "melt_pool_temperature");
    assert_eq!(alerts[0].value, 2400.0);
    assert_eq!(feed.statistics().alerts_total, 1);
    let later = next_frame(&frames, |f| f.health.as_ref().is_some_and(|h| h.samples_processed == 4));
    assert_eq!((later.alerts_total, later.samples), (1, 4));
    assert_eq!(later.newest_sample_ns, Some(1_000_000_000 + 3 * 10_000));
}

#[test]
fn a_new_layer_gets_its_own_whole_map_and_the_strip_its_row() {
    let (client, feed) = setup();
    client.process_stream_batch(vec![sample(0, 10.05, 10.05, 1900.0)].into()).unwrap();
    let frames = feed.subscribe(64, View::default());
    next_frame(&frames, |f| f.full);
    let result = client.process_stream_batch(vec![in_layer(sample(1, 30.05, 10.05, 2400.0), 1)].into()).unwrap();
    feed.on_result(&result);
    let moved = next_frame(&frames, |f| f.map.as_ref().is_some_and(|m| m.layer == 1));
    let m = moved.map.as_ref().unwrap();
    assert!(m.full, "a new layer replaces the map");
    assert_eq!((value_at(&moved, 300, 100), value_at(&moved, 100, 100)), (Some(2400.0), None), "layer 1 alone");
    let rows: Vec<(u32, bool, u64)> = moved.layers.iter().map(|l| (l.layer, l.closed, l.alerts)).collect();
    assert!(rows.contains(&(0, true, 0)), "layer 0 is reported closed: {rows:?}");
    let hot = |f: &Frame| f.layers.iter().any(|l| l.layer == 1 && l.verdict == qadf_core_types::Verdict::Critical);
    assert!(hot(&moved) || hot(&next_frame(&frames, |f| !f.layers.is_empty())), "layer 1's row turns critical");
}

#[test]
fn a_build_without_batches_reads_stalled_then_finished() {
    let client = Arc::new(StreamingClient::new(StreamingConfig::default()).unwrap());
    let options = LiveOptions { stall: Duration::from_millis(300), ..LiveOptions::default() };
    let feed = Arc::new(LiveFeed::start(client.clone(), options).unwrap());
    client.process_stream_batch(vec![sample(0, 10.05, 10.05, 1900.0)].into()).unwrap();
    let frames = feed.subscribe(64, View::default());
    assert_eq!(next_frame(&frames, |f| f.full).status, Some(BuildStatus::Running));
    let stalled = next_frame(&frames, |f| f.status == Some(BuildStatus::Stalled));
    assert!(stalled.now_ns - stalled.last_update_ns.unwrap() > 300_000_000, "heartbeats say so with no batch");
    client.builds().finish("b1");
    next_frame(&frames, |f| f.status == Some(BuildStatus::Finished));
}

#[test]
fn following_the_newest_stays_on_a_build_while_it_runs() {
    let (client, feed) = setup();
    client.process_stream_batch(vec![sample(0, 10.05, 10.05, 1900.0)].into()).unwrap();
    let frames = feed.subscribe(64, View::default());
    assert_eq!(next_frame(&frames, |f| f.full).build.as_deref(), Some("b1"));
    for i in 1..20 {
        // Another printer's batches interleave: b2 keeps being the newest.
        let mut other = sample(i, 20.05, 10.05, 1900.0);
        other.build_id = "b2".into();
        feed.on_result(&client.process_stream_batch(vec![other].into()).unwrap());
        if i % 4 == 0 {
            feed.on_result(&client.process_stream_batch(vec![sample(i, 10.05, 10.05, 1900.0)].into()).unwrap());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let seen: Vec<String> =
        frames.try_iter().map(|t| serde_json::from_str::<Frame>(&t).unwrap().build.unwrap()).collect();
    assert!(!seen.is_empty() && seen.iter().all(|b| b == "b1"), "the page stays on b1: {seen:?}");
}

#[test]
fn a_lagging_subscriber_is_counted_and_resynchronized_with_a_full_frame() {
    let client = Arc::new(StreamingClient::new(StreamingConfig::default()).unwrap());
    let options = LiveOptions { min_interval: Duration::from_millis(1), ..LiveOptions::default() };
    let feed = Arc::new(LiveFeed::start(client.clone(), options).unwrap());
    let frames = feed.subscribe(1, View::default());
    for i in 0..200 {
        let x = 10.05 + (i % 50) as f64; // a new tile every few batches
        let result = client.process_stream_batch(vec![sample(i, x, 10.05, 1900.0)].into()).unwrap();
        feed.on_result(&result);
        std::thread::sleep(Duration::from_millis(3));
    }
    assert!(feed.statistics().frames_dropped > 0, "a queue of one frame overflows");
    while frames.try_recv().is_ok() {}
    let result = client.process_stream_batch(vec![sample(1000, 60.05, 10.05, 1900.0)].into()).unwrap();
    feed.on_result(&result);
    let resync = next_frame(&frames, |f| f.full);
    assert!(resync.map.as_ref().unwrap().full, "after losing frames, the subscriber gets the whole layer");
    assert!(resync.health.as_ref().unwrap().frames_dropped > 0);
    assert_eq!(value_at(&resync, 100, 100), Some(1900.0), "including what the lost frames carried");
}

#[test]
fn map_tiles_are_binary_steps_unless_a_value_is_too_far_from_the_base() {
    let values = [Some(1900.04), None, Some(2349.5), Some(1234.5)];
    let tile = MapTile::encode(3, 4, 2, 2, &values, 1925.0, 0.1);
    assert!(tile.b.is_some() && tile.q.is_none(), "{tile:?}");
    let back = tile.values(1925.0, 0.1);
    for (got, want) in back.iter().zip(values) {
        assert_eq!(got.is_some(), want.is_some());
        if let (Some(g), Some(w)) = (got, want) {
            assert!((g - w).abs() <= 0.05 + 1e-9, "{g} against {w}");
        }
    }
    let far = MapTile::encode(0, 0, 1, 2, &[Some(1e9), None], 1925.0, 0.1);
    assert!(far.b.is_none(), "a step beyond i16 falls back to JSON numbers");
    assert_eq!(far.values(1925.0, 0.1)[0].map(f64::round), Some(1e9));
    assert_eq!(far.values(1925.0, 0.1)[1], None);
}

/// What the server answered to `request`, as far as it got (errors end the answer).
fn try_http(addr: &str, request: &str) -> String {
    let mut out = Vec::new();
    if let Ok(mut s) = TcpStream::connect(addr)
        && s.write_all(request.as_bytes()).is_ok()
    {
        let _ = s.read_to_end(&mut out);
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn http(addr: &str, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn the_page_and_the_feed_share_one_port() {
    let (client, feed) = setup();
    let server = DashboardServer::start("127.0.0.1:0", feed.clone()).unwrap();
    let addr = server.local_addr().to_string();
    let page = http(&addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n") && page.contains("text/html"), "{}", &page[..80]);
    assert!(page.contains("new WebSocket(") && !page.contains("https://"), "the page works offline");
    assert!(http(&addr, "GET /nothing HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
    assert!(http(&addr, "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").starts_with("HTTP/1.1 405"));

    let (mut ws, _) = tungstenite::connect(format!("ws://{addr}/ws")).unwrap();
    client.process_stream_batch(vec![sample(0, 10.05, 10.05, 1900.0)].into()).unwrap();
    let frame = loop {
        let text = ws.read().unwrap().into_text().unwrap();
        let frame: Frame = serde_json::from_str(&text).unwrap();
        if frame.map.is_some() {
            break frame;
        }
    };
    assert_eq!(frame.v, PROTOCOL_VERSION);
    assert!(frame.full && frame.map.unwrap().full, "a new viewer starts from a full frame");
    let (requests, sockets, _) = server.counters();
    assert_eq!((requests, sockets), (3, 1));
    ws.close(None).unwrap();

    // One layer's whole map on demand, and clear answers for what is not there.
    let body = |answer: &str| answer.split_once("\r\n\r\n").unwrap().1.to_owned();
    let layer = http(&addr, "GET /api/layer?build=b1&layer=0&stat=mean HTTP/1.1\r\n\r\n");
    assert!(layer.starts_with("HTTP/1.1 200 OK\r\n") && layer.contains("application/json"), "{layer}");
    let answer: LayerAnswer = serde_json::from_str(&body(&layer)).unwrap();
    assert_eq!((answer.map.layer, answer.map.stat, answer.from_history), (0, Stat::Mean, false));
    let (base, step) = (answer.map.base, answer.map.step);
    let values: Vec<f64> = answer.map.tiles.iter().flat_map(|t| t.values(base, step)).flatten().collect();
    assert_eq!(values.len(), 1);
    assert!((values[0] - 1900.0).abs() <= step / 2.0, "{values:?} in steps of {step}");
    for (path, status) in [
        ("/api/layer?build=b1&layer=7", "404"),
        ("/api/layer?build=nope&layer=0", "404"),
        ("/api/layer?build=b1", "400"),
        ("/api/layer?build=b1&layer=-1", "400"),
        ("/api/layer?build=b1&layer=0&stat=p99", "400"),
    ] {
        let answer = http(&addr, &format!("GET {path} HTTP/1.1\r\n\r\n"));
        assert!(answer.starts_with(&format!("HTTP/1.1 {status}")), "{path}: {answer}");
        assert!(serde_json::from_str::<serde_json::Value>(&body(&answer)).unwrap()["error"].is_string());
    }
}

#[test]
fn a_partial_request_head_is_dropped_at_the_deadline_and_the_page_still_answers() {
    let (_client, feed) = setup();
    let server = DashboardServer::start("127.0.0.1:0", feed).unwrap();
    let addr = server.local_addr().to_string();
    let mut slow = TcpStream::connect(&addr).unwrap();
    slow.write_all(b"GET / HTT").unwrap(); // and never the rest
    slow.set_read_timeout(Some(HEAD_DEADLINE + Duration::from_secs(5))).unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let closed = slow.read_to_end(&mut rest);
    // Closed by the server (a reset, since the peeked bytes were never read), not timed out here.
    let reset = closed.as_ref().is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset);
    assert!(closed.is_ok() || reset, "{closed:?}");
    assert!(started.elapsed() < HEAD_DEADLINE + Duration::from_secs(2), "held for {:?}", started.elapsed());
    assert!(rest.is_empty(), "nothing is answered to half a head");
    assert!(http(&addr, "GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200 OK"));
}

#[test]
fn connections_past_the_bound_are_answered_503_and_counted() {
    let (_client, feed) = setup();
    let server = DashboardServer::start("127.0.0.1:0", feed).unwrap();
    let addr = server.local_addr().to_string();
    // Each holds a connection thread until the head deadline.
    let held: Vec<TcpStream> = (0..MAX_CONNECTIONS)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).unwrap();
            s.write_all(b"GET").unwrap();
            s
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    let refused = loop {
        let answer = try_http(&addr, "GET / HTTP/1.1\r\n\r\n");
        if answer.starts_with("HTTP/1.1 503") {
            break answer;
        }
        assert!(Instant::now() < deadline, "never refused: {}", &answer[..answer.len().min(40)]);
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(refused.contains("Retry-After"), "{refused}");
    assert!(server.refused() >= 1);
    drop(held);
    let deadline = Instant::now() + HEAD_DEADLINE + Duration::from_secs(5);
    while !try_http(&addr, "GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200") {
        assert!(Instant::now() < deadline, "the bound is not released when connections end");
        std::thread::sleep(Duration::from_millis(50));
    }
}
