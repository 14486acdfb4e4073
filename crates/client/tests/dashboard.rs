//! The live view without a browser: frame contents (full first, then only changed tiles), alerts,
//! lagging subscribers, and the page and feed served on one port.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use qadf_client::StreamingClient;
use qadf_client::dashboard::server::{HEAD_DEADLINE, MAX_CONNECTIONS};
use qadf_client::dashboard::{DashboardServer, Frame, LiveFeed, LiveOptions, PROTOCOL_VERSION};
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

fn value_at(frame: &Frame, x: u32, y: u32) -> Option<f32> {
    let h = frame.heatmap.as_ref()?;
    h.tiles
        .iter()
        .filter(|t| (t.x..t.x + t.w).contains(&x) && (t.y..t.y + t.h).contains(&y))
        .find_map(|t| t.values[((y - t.y) * t.w + (x - t.x)) as usize])
}

#[test]
fn the_first_frame_is_full_then_only_changed_blocks_follow_with_alerts() {
    let (client, feed) = setup();
    // Two samples in voxel (100, 100) at 0.1 mm and one in voxel (200, 100), a different block.
    client.process_stream_batch(vec![sample(0, 10.05, 10.05, 1900.0), sample(1, 10.05, 10.05, 1910.0)].into()).unwrap();
    client.process_stream_batch(vec![sample(2, 20.05, 10.05, 1800.0)].into()).unwrap();
    let frames = feed.subscribe(64, None);
    let first = next_frame(&frames, |f| f.heatmap.as_ref().is_some_and(|h| h.full));
    assert_eq!(first.build.as_deref(), Some("b1"));
    let h = first.heatmap.as_ref().unwrap();
    assert_eq!((h.signal.as_str(), h.aggregation.as_str(), h.z_index, h.resolution), ("temperature", "mean", 0, 0.1));
    assert_eq!(value_at(&first, 100, 100), Some(1905.0), "the mean of the voxel");
    assert_eq!(value_at(&first, 200, 100), Some(1800.0));
    assert_eq!(value_at(&first, 150, 100), None, "nothing landed there");

    // A hot sample in the first block only: the next heatmap carries that block alone, and the alert.
    let result = client.process_stream_batch(vec![sample(3, 10.15, 10.05, 2400.0)].into()).unwrap();
    assert_eq!(result.alerts.len(), 1);
    feed.on_result(&result);
    let delta =
        next_frame(&frames, |f| f.heatmap.as_ref().is_some_and(|h| !h.tiles.is_empty()) || !f.alerts.is_empty());
    let h = delta.heatmap.as_ref().expect("changed tiles");
    assert!(!h.full);
    let tiles: Vec<(u32, u32, u32, u32)> = h.tiles.iter().map(|t| (t.x, t.y, t.w, t.h)).collect();
    assert_eq!(tiles, [(96, 96, 8, 8)], "only the changed 8x8 block");
    assert_eq!(value_at(&delta, 101, 100), Some(2400.0));
    let alerts =
        if delta.alerts.is_empty() { next_frame(&frames, |f| !f.alerts.is_empty()).alerts } else { delta.alerts };
    assert_eq!(alerts[0].checkpoint, "melt_pool_temperature");
    assert_eq!(alerts[0].value, 2400.0);
    assert_eq!(feed.statistics().alerts_total, 1);
    let later = next_frame(&frames, |f| f.stats.messages_processed == 4);
    assert_eq!(later.progress.alerts_total, 1);
    assert_eq!(later.newest_sample_ns, Some(1_000_000_000 + 3 * 10_000));
}

#[test]
fn a_lagging_subscriber_is_counted_and_resynchronized_with_a_full_frame() {
    let (client, feed) = setup();
    let frames = feed.subscribe(1, None);
    for i in 0..200 {
        let x = 10.05 + (i % 50) as f64; // a new block every few batches
        client.process_stream_batch(vec![sample(i, x, 10.05, 1900.0)].into()).unwrap();
        std::thread::sleep(Duration::from_millis(3));
    }
    assert!(feed.statistics().frames_dropped > 0, "a queue of one frame overflows");
    while frames.try_recv().is_ok() {}
    client.process_stream_batch(vec![sample(1000, 60.05, 10.05, 1900.0)].into()).unwrap();
    let resync = next_frame(&frames, |f| f.heatmap.is_some());
    let h = resync.heatmap.as_ref().unwrap();
    assert!(h.full, "after losing frames, the subscriber gets the whole level");
    assert!(resync.progress.frames_dropped > 0);
    assert_eq!(value_at(&resync, 100, 100), Some(1900.0), "including what the lost frames carried");
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
        if frame.heatmap.is_some() {
            break frame;
        }
    };
    assert_eq!(frame.v, PROTOCOL_VERSION);
    assert!(frame.heatmap.unwrap().full, "a new viewer starts from a full frame");
    let (requests, sockets, _) = server.counters();
    assert_eq!((requests, sockets), (3, 1));
    ws.close(None).unwrap();
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
