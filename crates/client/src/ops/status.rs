//! `qadf-stream status`: asks a running `run` for `/health/ready` over HTTP.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::ops::Readiness;

/// Longest answer read.
const MAX_ANSWER: u64 = 1 << 20;

/// `GET path` from `addr`: the status code and the body (HTTP/1.1, `Connection: close`).
pub fn get(addr: &str, path: &str, timeout: Duration) -> std::io::Result<(u16, String)> {
    let target = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, format!("{addr} resolves to nothing")))?;
    let mut stream = TcpStream::connect_timeout(&target, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut answer = String::new();
    stream.take(MAX_ANSWER).read_to_string(&mut answer)?;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((answer.as_str(), ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP answer"))?;
    Ok((status, body.to_owned()))
}

/// The readiness of the `run` serving `addr`.
pub fn readiness(addr: &str, timeout: Duration) -> std::io::Result<Readiness> {
    let (_, body) = get(addr, "/health/ready", timeout)?;
    serde_json::from_str(&body).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// The lines `status` prints: one per check, then the verdict.
pub fn lines(addr: &str, r: &Readiness) -> Vec<String> {
    let mut out: Vec<String> = r
        .checks
        .iter()
        .map(|c| {
            let detail = c.detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default();
            format!("{:<9}{}{detail}", c.name, if c.ok { "ok" } else { "NOT OK" })
        })
        .collect();
    out.push(format!("{addr}: {}", if r.ready { "ready" } else { "not ready" }));
    out
}
