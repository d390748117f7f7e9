//! A deliberately naive HTTP/2 client that writes its frames by hand, so a test can send header
//! values that no well-behaved client library lets through (an `:authority` that is not a URI
//! authority, as etcd's Go clients send).
//!
//! Headers are HPACK-encoded as literals without indexing and without Huffman coding, which every
//! decoder must accept; the response's headers are not decoded, only its DATA frames collected.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;
const STREAM: u32 = 1;

/// How one request on stream 1 ended.
#[derive(Debug, PartialEq, Eq)]
pub enum H2Outcome {
    /// The stream ended normally; the bytes of all its DATA frames, in order.
    Completed(Vec<u8>),
    /// The server reset the stream with this HTTP/2 error code.
    Reset(u32),
    /// The server closed the connection with GOAWAY and this error code.
    GoAway(u32),
}

fn hpack_int(out: &mut Vec<u8>, first: u8, prefix_bits: u32, value: usize) {
    let max = (1usize << prefix_bits) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    let mut rest = value - max;
    while rest >= 128 {
        out.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.push(rest as u8);
}

fn hpack_literal(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.push(0x00); // literal without indexing, new name
    hpack_int(out, 0, 7, name.len());
    out.extend_from_slice(name.as_bytes());
    hpack_int(out, 0, 7, value.len());
    out.extend_from_slice(value);
}

fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = payload.len() as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// Sends one request over a fresh plaintext HTTP/2 connection (prior knowledge) and reads until
/// its stream ends. `headers` follow the pseudo-headers; a non-empty `body` goes in one DATA frame.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    authority: &[u8],
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<H2Outcome> {
    let mut conn = TcpStream::connect(("127.0.0.1", port))?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;

    let mut block = Vec::new();
    hpack_literal(&mut block, ":method", method.as_bytes());
    hpack_literal(&mut block, ":scheme", b"http");
    hpack_literal(&mut block, ":path", path.as_bytes());
    hpack_literal(&mut block, ":authority", authority);
    for (name, value) in headers {
        hpack_literal(&mut block, name, value.as_bytes());
    }

    let mut out = PREFACE.to_vec();
    frame(&mut out, SETTINGS, 0, 0, &[]);
    let header_flags = if body.is_empty() {
        END_HEADERS | END_STREAM
    } else {
        END_HEADERS
    };
    frame(&mut out, HEADERS, header_flags, STREAM, &block);
    if !body.is_empty() {
        frame(&mut out, DATA, END_STREAM, STREAM, body);
    }
    conn.write_all(&out)?;

    let mut data = Vec::new();
    loop {
        let mut head = [0u8; 9];
        conn.read_exact(&mut head)?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        conn.read_exact(&mut payload)?;
        let code = || {
            payload
                .get(..4)
                .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        match kind {
            SETTINGS if flags & ACK == 0 => {
                let mut ack = Vec::new();
                frame(&mut ack, SETTINGS, ACK, 0, &[]);
                conn.write_all(&ack)?;
            }
            PING if flags & ACK == 0 => {
                let mut pong = Vec::new();
                frame(&mut pong, PING, ACK, 0, &payload);
                conn.write_all(&pong)?;
            }
            GOAWAY => {
                let error = payload
                    .get(4..8)
                    .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                return Ok(H2Outcome::GoAway(error));
            }
            RST_STREAM if stream == STREAM => return Ok(H2Outcome::Reset(code())),
            DATA if stream == STREAM => {
                data.extend_from_slice(&payload);
                if flags & END_STREAM != 0 {
                    return Ok(H2Outcome::Completed(data));
                }
            }
            HEADERS if stream == STREAM && flags & END_STREAM != 0 => {
                return Ok(H2Outcome::Completed(data));
            }
            _ => {}
        }
    }
}

/// A unary gRPC call with a hand-made `:authority`; returns the response message's bytes (the
/// first length-prefixed gRPC message), or how the stream failed.
pub fn grpc_unary(
    port: u16,
    path: &str,
    authority: &[u8],
    message: &[u8],
) -> std::io::Result<Result<Vec<u8>, H2Outcome>> {
    let mut body = vec![0u8];
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(message);
    let headers = [("content-type", "application/grpc"), ("te", "trailers")];
    Ok(
        match request(port, "POST", path, authority, &headers, &body)? {
            H2Outcome::Completed(data) if data.len() >= 5 => {
                let len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize;
                Ok(data[5..].get(..len).unwrap_or(&data[5..]).to_vec())
            }
            other => Err(other),
        },
    )
}
