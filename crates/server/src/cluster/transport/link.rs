//! The outgoing side of one peer: what the Raft thread hands messages to, and the connection
//! they leave on.
//!
//! On a plain TCP connection the Raft thread writes a message to the socket itself whenever
//! nothing is waiting before it: a write that fits the socket buffer (nearly all of them) leaves
//! without waking any other thread, which on a small machine is most of what a message costs.
//! What does not fit, and everything on a TLS connection, waits in the backlog for the
//! connection's writer task, in order. The backlog is bounded; a message that finds it full is
//! dropped, and Raft, told the peer is unreachable, resends from its log later.

use super::frame;
use bytes::{Buf, Bytes};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;

/// Frames waiting per peer before new ones are dropped (etcd's stream buffer is as large).
const QUEUE_FRAMES: usize = 4096;
/// Pieces handed to one vectored write.
const WRITE_SLICES: usize = 64;

pub(super) struct Link {
    state: Mutex<State>,
    /// Wakes the writer task when the backlog has something for it.
    pending: Notify,
    /// Set when the peer leaves the cluster (or its URLs change): its connection task ends.
    closed: AtomicBool,
    sent_bytes: prometheus::IntCounter,
    /// When the writer task last moved queued bytes to the socket: a link busy with a long
    /// backlog is alive even while its pings wait behind that backlog.
    drained_at: Mutex<Option<Instant>>,
}

#[derive(Default)]
struct State {
    /// The plain connection's write side while one is up, for the Raft thread's own writes.
    direct: Option<Arc<OwnedWriteHalf>>,
    /// Frames waiting, in order, two pieces each (length, message); the first may be partly
    /// written already.
    backlog: VecDeque<Bytes>,
    /// Changes whenever a connection comes or goes, so that an old connection's writer stops.
    generation: u64,
}

impl State {
    fn frames_waiting(&self) -> usize {
        self.backlog.len().div_ceil(2)
    }

    /// Drops the first `written` bytes of the backlog.
    fn consume(&mut self, mut written: usize) {
        while let Some(front) = self.backlog.front_mut() {
            if front.len() > written {
                front.advance(written);
                return;
            }
            written -= front.len();
            self.backlog.pop_front();
        }
    }

    fn slices(&self) -> Vec<IoSlice<'_>> {
        self.backlog
            .iter()
            .take(WRITE_SLICES)
            .map(|b| IoSlice::new(b))
            .collect()
    }
}

/// How the writer task reaches the socket.
pub(super) enum Writer<W> {
    /// Plain TCP, shared with the Raft thread's direct writes.
    Plain(Arc<OwnedWriteHalf>),
    /// Anything else (TLS): only the writer task writes.
    Stream(W),
}

impl Link {
    pub(super) fn new(sent_bytes: prometheus::IntCounter) -> Link {
        Link {
            state: Mutex::default(),
            pending: Notify::new(),
            closed: AtomicBool::new(false),
            sent_bytes,
            drained_at: Mutex::new(None),
        }
    }

    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.pending.notify_one();
    }

    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Whether the writer task moved queued bytes to the socket within `window`.
    pub(super) fn drained_within(&self, window: Duration) -> bool {
        self.drained_at
            .lock()
            .is_some_and(|at| at.elapsed() < window)
    }

    fn drained(&self) {
        *self.drained_at.lock() = Some(Instant::now());
    }

    /// Queues (or writes at once) one frame; false if it was dropped.
    pub(super) fn send(&self, message: Bytes) -> bool {
        if self.is_closed() {
            return false;
        }
        let size = message.len() as u64;
        let header = Bytes::copy_from_slice(&frame::header(message.len()));
        let mut state = self.state.lock();
        if state.backlog.is_empty()
            && let Some(conn) = &state.direct
        {
            let total = header.len() + message.len();
            let written =
                match conn.try_write_vectored(&[IoSlice::new(&header), IoSlice::new(&message)]) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                    // The connection broke; its reader notices and a new one is dialed.
                    Err(_) => return false,
                };
            self.sent_bytes.inc_by(size);
            if written == total {
                return true;
            }
            state.backlog.push_back(header);
            state.backlog.push_back(message);
            state.consume(written);
            drop(state);
            self.pending.notify_one();
            return true;
        }
        if state.frames_waiting() >= QUEUE_FRAMES {
            return false;
        }
        state.backlog.push_back(header);
        state.backlog.push_back(message);
        drop(state);
        self.sent_bytes.inc_by(size);
        self.pending.notify_one();
        true
    }

    /// A connection is up: the frames queued while dialing go out on it first.
    pub(super) fn connected(&self, direct: Option<Arc<OwnedWriteHalf>>) -> u64 {
        let mut state = self.state.lock();
        state.generation += 1;
        state.direct = direct;
        let generation = state.generation;
        drop(state);
        self.pending.notify_one();
        generation
    }

    /// The connection is gone: what was queued for it is stale by the time another opens (Raft
    /// resends what still matters).
    pub(super) fn disconnected(&self) {
        let mut state = self.state.lock();
        state.generation += 1;
        state.direct = None;
        state.backlog.clear();
    }

    /// Writes the backlog to the connection of `generation` as it fills, until that
    /// connection is replaced or fails, or a write stays blocked for `timeout`.
    pub(super) async fn write<W: AsyncWrite + Unpin>(
        &self,
        writer: Writer<W>,
        generation: u64,
        timeout: Duration,
    ) -> io::Result<()> {
        match writer {
            Writer::Plain(conn) => self.write_plain(&conn, generation, timeout).await,
            Writer::Stream(w) => self.write_stream(w, generation, timeout).await,
        }
    }

    async fn write_plain(
        &self,
        conn: &OwnedWriteHalf,
        generation: u64,
        timeout: Duration,
    ) -> io::Result<()> {
        enum Next {
            Wait,
            More,
            Writable,
        }
        loop {
            let next = {
                let mut state = self.state.lock();
                if state.generation != generation || self.is_closed() {
                    return Ok(());
                }
                if state.backlog.is_empty() {
                    Next::Wait
                } else {
                    // Under the lock, so that the Raft thread's writes cannot cut in between.
                    match conn.try_write_vectored(&state.slices()) {
                        Ok(n) => {
                            state.consume(n);
                            self.drained();
                            Next::More
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Next::Writable,
                        Err(e) => return Err(e),
                    }
                }
            };
            match next {
                // A notification sent since the check above is kept as a permit.
                Next::Wait => self.pending.notified().await,
                Next::More => {}
                Next::Writable => within(timeout, conn.writable()).await?,
            }
        }
    }

    async fn write_stream<W: AsyncWrite + Unpin>(
        &self,
        mut w: W,
        generation: u64,
        timeout: Duration,
    ) -> io::Result<()> {
        let mut buf = Vec::new();
        loop {
            let taken = {
                let mut state = self.state.lock();
                if state.generation != generation || self.is_closed() {
                    return Ok(());
                }
                std::mem::take(&mut state.backlog)
            };
            // Copied outside the lock the Raft thread takes to queue.
            for piece in taken {
                buf.extend_from_slice(&piece);
            }
            if buf.is_empty() {
                self.pending.notified().await;
                continue;
            }
            // One write for everything waiting: on TLS, few large records.
            within(timeout, async {
                w.write_all(&buf).await?;
                w.flush().await
            })
            .await?;
            self.drained();
            buf.clear();
        }
    }
}

/// `io` unless it takes longer than `timeout` (`--raft-write-timeout`).
async fn within<T>(timeout: Duration, io: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    tokio::time::timeout(timeout, io).await.unwrap_or_else(|_| {
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("a write stayed blocked for {timeout:?}"),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link() -> Link {
        Link::new(prometheus::IntCounter::new("t", "t").unwrap_or_else(|e| panic!("{e}")))
    }

    #[test]
    fn the_backlog_is_bounded_and_cleared_with_its_connection() {
        let link = link();
        for _ in 0..QUEUE_FRAMES {
            assert!(link.send(Bytes::from_static(b"m")));
        }
        assert!(!link.send(Bytes::from_static(b"m")), "full: dropped");
        link.disconnected();
        assert!(link.send(Bytes::from_static(b"m")));
        link.close();
        assert!(!link.send(Bytes::from_static(b"m")), "closed: dropped");
    }

    #[test]
    fn partly_written_frames_keep_their_rest_in_order() {
        let mut state = State::default();
        for m in [&b"ab"[..], b"", b"cde"] {
            state
                .backlog
                .push_back(Bytes::copy_from_slice(&frame::header(m.len())));
            state.backlog.push_back(Bytes::copy_from_slice(m));
        }
        assert_eq!(state.frames_waiting(), 3);
        state.consume(5);
        assert_eq!(
            state.frames_waiting(),
            3,
            "one byte of the first message is left"
        );
        assert_eq!(state.backlog.front().map(|b| b.as_ref()), Some(&b"b"[..]));
        state.consume(1 + 4);
        assert_eq!(
            state.frames_waiting(),
            1,
            "the empty message went with its header"
        );
        state.consume(4 + 3);
        assert_eq!(state.frames_waiting(), 0);
    }

    #[tokio::test]
    async fn a_plain_connection_carries_frames_in_order_through_a_full_socket() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let dial = tokio::net::TcpStream::connect(addr);
        let (dialed, accepted) = tokio::join!(dial, listener.accept());
        let dialed = dialed.unwrap_or_else(|e| panic!("{e}"));
        let (mut accepted, _) = accepted.unwrap_or_else(|e| panic!("{e}"));
        let (_read, write) = dialed.into_split();
        let write = Arc::new(write);
        let link = Arc::new(link());
        let generation = link.connected(Some(write.clone()));
        let writer = {
            let link = link.clone();
            tokio::spawn(async move {
                link.write::<tokio::io::Empty>(
                    Writer::Plain(write),
                    generation,
                    Duration::from_secs(5),
                )
                .await
            })
        };
        // Large messages fill the socket buffers before anyone reads, so later ones wait in the
        // backlog behind a partly written one.
        let count = 64usize;
        for i in 0..count {
            let message = vec![i as u8; 256 * 1024];
            assert!(link.send(Bytes::from(message)), "message {i} dropped");
        }
        for i in 0..count {
            let frame = frame::read(&mut accepted, 1 << 20).await;
            let frame = frame.ok().flatten().unwrap_or_else(|| panic!("frame {i}"));
            assert_eq!(frame.len(), 256 * 1024);
            assert!(
                frame.iter().all(|&b| b == i as u8),
                "frame {i} out of order"
            );
        }
        link.close();
        let _ = writer.await;
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(
            std::time::Duration::from_millis(100),
            accepted.read_to_end(&mut rest),
        )
        .await;
        assert!(rest.is_empty(), "nothing after the last frame");
    }
}
