//! `DashboardServer`: the live page over HTTP and the feed over a WebSocket, on one port.
//!
//! One thread accepts; each connection gets a thread, at most [`MAX_CONNECTIONS`] at once (one
//! more is answered `503` and closed). The request head is peeked, not read, so `GET /ws` can be
//! handed to tungstenite whole; it must arrive within [`HEAD_DEADLINE`]. `GET /ws?build=ID`
//! watches one build (without it, the newest; `signal=` and `stat=` choose the map);
//! `GET /api/layer` answers one layer's whole map. Other paths go to the server's [`Routes`] (`run`:
//! `/metrics`, `/health/*`); the page is answered from the binary (it is compiled in: no CDN,
//! works offline). Each WebSocket thread forwards the frames of its own subscription and reads
//! the client's side without blocking (close and ping); a viewer that leaves more than [`MAX_UNSENT_BYTES`] unread is
//! disconnected (a lagging one is first resynchronized with full frames, see `LiveFeed`).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::RecvTimeoutError;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Error as WsError, Message, WebSocket};

use crate::dashboard::feed::{LiveFeed, View};
use crate::layer_maps::Stat;

/// The page, served at `/`.
pub const PAGE: &str = include_str!("dashboard.html");

/// Longest request head accepted.
const MAX_HEAD: usize = 8 * 1024;
/// How long a client may take to send its whole request head.
pub const HEAD_DEADLINE: Duration = Duration::from_secs(5);
/// Connections served at once (page requests and viewers together).
pub const MAX_CONNECTIONS: usize = 64;
/// Frames a WebSocket client may have queued before it is resynchronized with a full frame.
const QUEUE_FRAMES: usize = 64;
/// Bytes a WebSocket client may leave unread before it is disconnected (about 16 full frames).
pub const MAX_UNSENT_BYTES: usize = 4 << 20;

/// An answer to a GET beyond the page and the feed.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
}

/// The GET paths a server answers beside `/` and `/ws` (`run`'s `/metrics` and `/health/*`).
pub trait Routes: Send + Sync {
    /// The answer to `GET path` (the path without its query), or `None` (404).
    fn get(&self, path: &str) -> Option<Response>;
}

/// Counters of the server.
#[derive(Debug, Default)]
struct Counters {
    http_requests: AtomicU64,
    websockets: AtomicU64,
    failed: AtomicU64,
    refused: AtomicU64,
    open: AtomicUsize,
}

/// Counts one open connection until dropped.
struct Open(Arc<Counters>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serves the live dashboard until shut down.
pub struct DashboardServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    thread: Option<JoinHandle<()>>,
}

impl DashboardServer {
    /// Binds `addr` (port 0 picks a free one) and starts serving `feed`.
    pub fn start(addr: impl ToSocketAddrs, feed: Arc<LiveFeed>) -> io::Result<DashboardServer> {
        DashboardServer::start_with(addr, feed, None)
    }

    /// Like [`DashboardServer::start`], answering other GETs from `routes` too.
    pub fn start_with(
        addr: impl ToSocketAddrs,
        feed: Arc<LiveFeed>,
        routes: Option<Arc<dyn Routes>>,
    ) -> io::Result<DashboardServer> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let thread = {
            let (stop, counters) = (stop.clone(), counters.clone());
            std::thread::Builder::new()
                .name("qadf-live-accept".to_owned())
                .spawn(move || accept_loop(&listener, &feed, routes, &stop, &counters))?
        };
        Ok(DashboardServer { addr, stop, counters, thread: Some(thread) })
    }

    /// The address served.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The page's URL.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// (HTTP requests answered, WebSocket sessions opened, connections that failed).
    pub fn counters(&self) -> (u64, u64, u64) {
        let c = &self.counters;
        (
            c.http_requests.load(Ordering::Relaxed),
            c.websockets.load(Ordering::Relaxed),
            c.failed.load(Ordering::Relaxed),
        )
    }

    /// Connections refused because [`MAX_CONNECTIONS`] were open.
    pub fn refused(&self) -> u64 {
        self.counters.refused.load(Ordering::Relaxed)
    }

    /// Stops accepting and tells every connection to close.
    pub fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept; failing to connect means it is gone already.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            eprintln!("dashboard: the accept thread panicked");
        }
    }
}

impl Drop for DashboardServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(
    listener: &TcpListener,
    feed: &Arc<LiveFeed>,
    routes: Option<Arc<dyn Routes>>,
    stop: &Arc<AtomicBool>,
    counters: &Arc<Counters>,
) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                eprintln!("dashboard: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if counters.open.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            counters.open.fetch_sub(1, Ordering::SeqCst);
            counters.refused.fetch_add(1, Ordering::Relaxed);
            refuse(stream);
            continue;
        }
        let open = Open(counters.clone());
        let (feed, routes, stop, counters) = (feed.clone(), routes.clone(), stop.clone(), counters.clone());
        let spawned = std::thread::Builder::new().name("qadf-live-conn".to_owned()).spawn(move || {
            let _open = open;
            if let Err(e) = serve(stream, &feed, routes.as_deref(), &stop, &counters) {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                if e.kind() != io::ErrorKind::UnexpectedEof {
                    eprintln!("dashboard: connection failed: {e}");
                }
            }
        });
        if let Err(e) = spawned {
            eprintln!("dashboard: cannot start a connection thread: {e}");
        }
    }
}

/// Answers `503` on the accept thread (short timeouts) and closes, reading what already arrived
/// so the close is orderly rather than a reset that could discard the answer.
fn refuse(mut stream: TcpStream) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
    let _ = stream.write_all(
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nRetry-After: 5\r\nConnection: close\r\n\r\n",
    );
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(20)));
    let _ = stream.read(&mut [0u8; MAX_HEAD]);
}

/// The request line's method and path, once the whole head has arrived (peeked, not consumed)
/// within [`HEAD_DEADLINE`].
fn peek_head(stream: &TcpStream) -> io::Result<(String, String, usize)> {
    let mut buf = vec![0u8; MAX_HEAD];
    let mut seen = 0;
    let deadline = std::time::Instant::now() + HEAD_DEADLINE;
    loop {
        // `peek` returns at once while a partial head waits: the deadline bounds the loop.
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "no complete request head within 5 s"));
        }
        stream.set_read_timeout(Some(left))?;
        let n = stream.peek(&mut buf)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if let Some(end) = buf[..n].windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]);
            let mut parts = head.lines().next().unwrap_or_default().split_whitespace();
            let method = parts.next().unwrap_or_default().to_owned();
            let path = parts.next().unwrap_or_default().to_owned();
            return Ok((method, path, end + 4));
        }
        if n == MAX_HEAD {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "request head longer than 8 KiB"));
        }
        if n == seen {
            std::thread::sleep(Duration::from_millis(5));
        }
        seen = n;
    }
}

fn serve(
    mut stream: TcpStream,
    feed: &LiveFeed,
    routes: Option<&dyn Routes>,
    stop: &AtomicBool,
    counters: &Counters,
) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    stream.set_nodelay(true)?;
    let (method, path, head_len) = peek_head(&stream)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let (route, query) = path.split_once('?').unwrap_or((path.as_str(), ""));
    if method == "GET" && route == "/ws" {
        counters.websockets.fetch_add(1, Ordering::Relaxed);
        let view = View {
            build: query_value(query, "build"),
            signal: query_value(query, "signal"),
            stat: query_value(query, "stat").and_then(|s| Stat::parse(&s)),
        };
        return websocket(stream, feed, view, stop);
    }
    counters.http_requests.fetch_add(1, Ordering::Relaxed);
    io::copy(&mut (&mut stream).take(head_len as u64), &mut io::sink())?;
    let answer = |status, content_type, body: &[u8]| Response { status, content_type, body: body.to_vec() };
    let response = match (method.as_str(), route) {
        ("GET", "/" | "/index.html") => answer(200, "text/html; charset=utf-8", PAGE.as_bytes()),
        ("GET", "/favicon.ico") => answer(204, "text/plain", b""),
        ("GET", "/api/layer") => layer(feed, query),
        ("GET", _) => routes
            .and_then(|r| r.get(route))
            .unwrap_or_else(|| answer(404, "text/plain; charset=utf-8", b"not found\n")),
        _ => answer(405, "text/plain; charset=utf-8", b"only GET\n"),
    };
    write!(
        stream,
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len()
    )?;
    stream.write_all(&response.body)?;
    stream.flush()
}

/// `GET /api/layer?build=B&layer=N[&signal=S][&stat=max|min|mean|count]`.
fn layer(feed: &LiveFeed, query: &str) -> Response {
    let json = |status, body: String| Response { status, content_type: "application/json", body: body.into_bytes() };
    let error = |status, message: String| json(status, serde_json::json!({ "error": message }).to_string());
    let Some(build) = query_value(query, "build") else { return error(400, "give build=ID".to_owned()) };
    let Some(layer) = query_value(query, "layer").and_then(|l| l.parse::<u32>().ok()) else {
        return error(400, "give layer=N (a whole number from 0)".to_owned());
    };
    let stat = match query_value(query, "stat") {
        None => None,
        Some(s) => match Stat::parse(&s) {
            Some(stat) => Some(stat),
            None => return error(400, format!("stat `{s}`: use max, min, mean or count")),
        },
    };
    match feed.layer_answer(&build, layer, query_value(query, "signal").as_deref(), stat) {
        Ok(body) => json(200, body),
        Err((status, message)) => error(status, message),
    }
}

/// The reason phrase of the status codes the server answers with.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        410 => "Gone",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// The percent-decoded value of `name` in a query string (`a=1&build=b%201`), if present and
/// valid UTF-8.
fn query_value(query: &str, name: &str) -> Option<String> {
    let raw = query.split('&').find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))?;
    let mut bytes = Vec::with_capacity(raw.len());
    let mut input = raw.bytes();
    while let Some(b) = input.next() {
        match b {
            b'%' => {
                let hex = [input.next()?, input.next()?];
                bytes.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
            }
            b'+' => bytes.push(b' '),
            b => bytes.push(b),
        }
    }
    String::from_utf8(bytes).ok().filter(|s| !s.is_empty())
}

fn ws_io(e: WsError) -> io::Error {
    match e {
        WsError::Io(e) => e,
        other => io::Error::other(other),
    }
}

fn is_closed(e: &WsError) -> bool {
    use tungstenite::error::ProtocolError::ResetWithoutClosingHandshake;
    // A viewer that closes its tab or is killed resets the connection: that is a normal end.
    matches!(e, WsError::ConnectionClosed | WsError::AlreadyClosed | WsError::Protocol(ResetWithoutClosingHandshake))
        || matches!(e, WsError::Io(io) if matches!(io.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe))
}

fn would_block(e: &WsError) -> bool {
    matches!(e, WsError::Io(io) if io.kind() == io::ErrorKind::WouldBlock)
}

/// Forwards the feed of `view` to one WebSocket client until either side closes.
fn websocket(stream: TcpStream, feed: &LiveFeed, view: View, stop: &AtomicBool) -> io::Result<()> {
    let config = WebSocketConfig::default().max_write_buffer_size(MAX_UNSENT_BYTES).max_message_size(Some(1 << 16));
    let mut ws: WebSocket<TcpStream> = tungstenite::accept_with_config(stream, Some(config)).map_err(|e| match e {
        tungstenite::HandshakeError::Failure(e) => ws_io(e),
        tungstenite::HandshakeError::Interrupted(_) => io::Error::other("WebSocket handshake interrupted"),
    })?;
    ws.get_mut().set_nonblocking(true)?;
    let frames = feed.subscribe(QUEUE_FRAMES, view);
    loop {
        // The client's side: answer pings (tungstenite queues the pong), stop on close.
        loop {
            match ws.read() {
                Ok(Message::Close(_)) => return Ok(()),
                Ok(_) => {}
                Err(e) if would_block(&e) => break,
                Err(e) if is_closed(&e) => return Ok(()),
                Err(e) => return Err(ws_io(e)),
            }
        }
        if stop.load(Ordering::SeqCst) {
            // Best effort: the server is going away either way.
            let _ = ws.close(None);
            let _ = ws.flush();
            return Ok(());
        }
        let sent = match frames.recv_timeout(Duration::from_millis(50)) {
            Ok(text) => ws.send(Message::Text(text)),
            Err(RecvTimeoutError::Timeout) => ws.flush(),
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        };
        match sent {
            Ok(()) => {}
            Err(e) if would_block(&e) => {}
            Err(e) if is_closed(&e) => return Ok(()),
            Err(e) => return Err(ws_io(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::query_value;

    #[test]
    fn query_values_are_percent_decoded() {
        assert_eq!(query_value("build=printer%201%2Fa&x=1", "build").as_deref(), Some("printer 1/a"));
        assert_eq!(query_value("x=1&build=b%C3%A9", "build").as_deref(), Some("bé"));
        assert_eq!(query_value("builds=a", "build"), None);
        assert_eq!(query_value("build=", "build"), None);
        assert_eq!(query_value("build=%zz", "build"), None);
        assert_eq!(query_value("build=%e", "build"), None);
    }
}
