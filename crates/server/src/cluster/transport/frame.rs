//! The wire format of a Raft connection between members.
//!
//! The dialing member opens a TCP (or TLS) connection to the peer port and writes [`MAGIC`],
//! by which the port tells it from an HTTP/2 client, then frames: a little-endian `u32` length
//! and that many bytes. The first frame is a `PeerHello`; every later one is an encoded Raft
//! message, or empty: a ping. The accepting member answers the hello and each ping with a
//! [`Reply`] frame and otherwise only reads.

use bytes::{Bytes, BytesMut};
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// What a Raft connection starts with. An HTTP/2 client starts with "PRI * HT", an HTTP/1
/// client with a method name; neither can be mistaken for this.
pub(crate) const MAGIC: &[u8; 8] = b"CAIRNRF1";

/// Length prefix of a frame.
pub(super) fn header(len: usize) -> [u8; 4] {
    // Frame sizes are bounded far below 4 GiB by the largest batch a member accepts.
    (len as u32).to_le_bytes()
}

/// Reads one frame of at most `max` bytes; `None` when the connection ended between frames.
pub(super) async fn read<R: AsyncRead + Unpin>(r: &mut R, max: usize) -> io::Result<Option<Bytes>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a frame of {len} bytes is larger than the {max} a member accepts"),
        ));
    }
    let mut body = BytesMut::zeroed(len);
    r.read_exact(&mut body).await?;
    Ok(Some(body.freeze()))
}

/// What the accepting member says on a Raft connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Reply {
    /// The hello was accepted: Raft messages may follow.
    Accepted,
    /// The answer to a ping.
    Pong,
    /// The connection is refused (another cluster, another member id), and why; it closes.
    Refused(String),
    /// The dialing member was removed from the cluster; it closes.
    Removed,
}

impl Reply {
    fn encode(&self) -> Vec<u8> {
        match self {
            Reply::Accepted => vec![0],
            Reply::Pong => vec![1],
            Reply::Refused(why) => {
                let mut b = vec![2];
                b.extend_from_slice(why.as_bytes());
                b
            }
            Reply::Removed => vec![3],
        }
    }

    pub(super) fn decode(frame: &[u8]) -> io::Result<Reply> {
        match frame.split_first() {
            Some((0, [])) => Ok(Reply::Accepted),
            Some((1, [])) => Ok(Reply::Pong),
            Some((2, why)) => Ok(Reply::Refused(String::from_utf8_lossy(why).into_owned())),
            Some((3, [])) => Ok(Reply::Removed),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the peer answered with an unknown reply",
            )),
        }
    }

    pub(super) async fn write<W: AsyncWrite + Unpin>(&self, w: &mut W) -> io::Result<()> {
        let body = self.encode();
        let mut frame = Vec::with_capacity(4 + body.len());
        frame.extend_from_slice(&header(body.len()));
        frame.extend_from_slice(&body);
        w.write_all(&frame).await?;
        w.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_and_replies_read_back_as_written() {
        let replies = [
            Reply::Accepted,
            Reply::Pong,
            Reply::Refused("cluster ID mismatch".into()),
            Reply::Removed,
        ];
        let mut wire = Vec::new();
        for r in &replies {
            r.write(&mut wire).await.unwrap_or_else(|e| panic!("{e}"));
        }
        wire.extend_from_slice(&header(0));
        let mut r = wire.as_slice();
        for expected in &replies {
            let frame = read(&mut r, 1024).await.ok().flatten();
            let frame = frame.unwrap_or_else(|| panic!("missing frame for {expected:?}"));
            assert_eq!(Reply::decode(&frame).ok().as_ref(), Some(expected));
        }
        assert_eq!(read(&mut r, 1024).await.ok().flatten(), Some(Bytes::new()));
        assert_eq!(
            read(&mut r, 1024).await.ok(),
            Some(None),
            "clean end between frames"
        );
    }

    #[tokio::test]
    async fn oversized_and_cut_frames_are_errors() {
        let mut wire = header(2048).to_vec();
        wire.extend_from_slice(&[0; 16]);
        assert!(read(&mut wire.as_slice(), 1024).await.is_err());
        let mut cut = header(10).to_vec();
        cut.extend_from_slice(&[0; 3]);
        assert!(read(&mut cut.as_slice(), 1024).await.is_err());
        assert!(Reply::decode(&[9]).is_err());
        assert!(Reply::decode(&[]).is_err());
    }
}
