//! Real protocol pings (not just an open port): Redis PING, Kafka ApiVersions, MongoDB `ping`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};

const TIMEOUT: Duration = Duration::from_secs(2);

fn connect(addr: &str) -> Result<TcpStream> {
    let sock: SocketAddr = addr.parse().with_context(|| format!("bad address {addr}"))?;
    let stream = TcpStream::connect_timeout(&sock, TIMEOUT).with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    Ok(stream)
}

/// Sends the inline command `PING` and expects `+PONG`.
pub fn redis(addr: &str) -> Result<()> {
    let mut stream = connect(addr)?;
    stream.write_all(b"PING\r\n")?;
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).context("no reply to PING")?;
    ensure!(&reply == b"+PONG\r\n", "unexpected reply to PING: {:?}", String::from_utf8_lossy(&reply));
    Ok(())
}

/// Sends ApiVersions v0 and expects error code 0 with the same correlation id.
pub fn kafka(addr: &str) -> Result<()> {
    let mut stream = connect(addr)?;
    let client_id = b"xtask";
    let mut body = Vec::new();
    body.extend_from_slice(&18i16.to_be_bytes()); // ApiVersions
    body.extend_from_slice(&0i16.to_be_bytes()); // version 0
    body.extend_from_slice(&4242i32.to_be_bytes()); // correlation id
    body.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    body.extend_from_slice(client_id);
    stream.write_all(&(body.len() as i32).to_be_bytes())?;
    stream.write_all(&body)?;
    let mut header = [0u8; 10];
    stream.read_exact(&mut header).context("no ApiVersions response")?;
    let correlation = i32::from_be_bytes(header[4..8].try_into()?);
    let error_code = i16::from_be_bytes(header[8..10].try_into()?);
    ensure!(correlation == 4242, "ApiVersions answered with correlation id {correlation}");
    ensure!(error_code == 0, "ApiVersions answered with error code {error_code}");
    Ok(())
}

/// Sends OP_MSG `{ping: 1, $db: "admin"}` and expects `ok: 1.0`.
pub fn mongodb(addr: &str) -> Result<()> {
    let mut stream = connect(addr)?;
    let doc = bson_ping();
    let len = 16 + 4 + 1 + doc.len();
    let mut msg = Vec::with_capacity(len);
    msg.extend_from_slice(&(len as i32).to_le_bytes());
    msg.extend_from_slice(&7i32.to_le_bytes()); // request id
    msg.extend_from_slice(&0i32.to_le_bytes()); // response to
    msg.extend_from_slice(&2013i32.to_le_bytes()); // OP_MSG
    msg.extend_from_slice(&0u32.to_le_bytes()); // flags
    msg.push(0); // section kind 0: body
    msg.extend_from_slice(&doc);
    stream.write_all(&msg)?;
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).context("no reply to ping")?;
    let size = i32::from_le_bytes(size);
    ensure!((21..16 * 1024 * 1024).contains(&size), "implausible reply size {size}");
    let mut reply = vec![0u8; size as usize - 4];
    stream.read_exact(&mut reply)?;
    let mut ok_one = b"\x01ok\x00".to_vec();
    ok_one.extend_from_slice(&1.0f64.to_le_bytes());
    if reply.windows(ok_one.len()).any(|w| w == ok_one.as_slice()) {
        return Ok(());
    }
    bail!("ping reply lacks ok: 1.0")
}

/// BSON for `{ping: 1 (int32), $db: "admin"}`.
fn bson_ping() -> Vec<u8> {
    let mut elements = Vec::new();
    elements.push(0x10);
    elements.extend_from_slice(b"ping\x00");
    elements.extend_from_slice(&1i32.to_le_bytes());
    elements.push(0x02);
    elements.extend_from_slice(b"$db\x00");
    elements.extend_from_slice(&6i32.to_le_bytes());
    elements.extend_from_slice(b"admin\x00");
    let mut doc = Vec::new();
    doc.extend_from_slice(&((elements.len() + 5) as i32).to_le_bytes());
    doc.extend_from_slice(&elements);
    doc.push(0);
    doc
}

#[cfg(test)]
mod tests {
    #[test]
    fn bson_ping_is_a_well_formed_document() {
        let doc = super::bson_ping();
        assert_eq!(i32::from_le_bytes(doc[..4].try_into().unwrap()) as usize, doc.len());
        assert_eq!(doc.last(), Some(&0));
        assert!(doc.windows(5).any(|w| w == b"ping\x00"));
    }
}
