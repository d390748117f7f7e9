//! The accepting side of Raft connections, on the peer port it shares with the peer gRPC
//! service: each accepted connection's first bytes say which it is, and Raft connections are
//! read here, every message stepped straight into the local Raft node.

use super::frame::{self, MAGIC, Reply};
use super::{MAX_MESSAGE_BYTES, MEMBER_REMOVED};
use cairn_proto::cairnpb::PeerHello;
use prost::Message;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, BufReader, ReadBuf};
use tokio::sync::mpsc;

/// How long a new connection may take to say what it is.
const SNIFF_TIMEOUT: Duration = Duration::from_secs(10);
/// Reads are buffered so that a burst of small messages costs one system call.
const READ_BUFFER: usize = 256 * 1024;

/// The peer port's listener as the HTTP server sees it: Raft connections are taken out and
/// served here; every other connection is passed on with its first bytes put back.
pub(crate) struct SniffingListener<Io> {
    http: mpsc::Receiver<(Rewind<Io>, SocketAddr)>,
    local: SocketAddr,
}

impl<Io> SniffingListener<Io>
where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    pub(crate) fn new<L>(mut listener: L, peers: Arc<super::PeerService>) -> io::Result<Self>
    where
        L: axum::serve::Listener<Io = Io, Addr = SocketAddr>,
    {
        let local = listener.local_addr()?;
        let (tx, http) = mpsc::channel(1024);
        tokio::spawn(async move {
            loop {
                // The port closes with the HTTP server that stopped taking its connections.
                let (mut io, addr) = tokio::select! {
                    accepted = listener.accept() => accepted,
                    () = tx.closed() => return,
                };
                let (tx, peers) = (tx.clone(), peers.clone());
                tokio::spawn(async move {
                    let mut first = [0u8; MAGIC.len()];
                    let read = tokio::time::timeout(SNIFF_TIMEOUT, io.read_exact(&mut first));
                    if !matches!(read.await, Ok(Ok(_))) {
                        return;
                    }
                    if &first == MAGIC {
                        serve(io, addr, peers).await;
                    } else {
                        let io = Rewind {
                            prefix: first.to_vec(),
                            at: 0,
                            io,
                        };
                        let _ = tx.send((io, addr)).await;
                    }
                });
            }
        });
        Ok(SniffingListener { http, local })
    }
}

impl<Io> axum::serve::Listener for SniffingListener<Io>
where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Io = Rewind<Io>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.http.recv().await {
            Some(c) => c,
            // The accept task only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// A connection whose first bytes were read to tell what it is, and are read again.
pub(crate) struct Rewind<Io> {
    prefix: Vec<u8>,
    at: usize,
    io: Io,
}

impl<Io: AsyncRead + Unpin> AsyncRead for Rewind<Io> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.at < this.prefix.len() {
            let n = buf.remaining().min(this.prefix.len() - this.at);
            buf.put_slice(&this.prefix[this.at..this.at + n]);
            this.at += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for Rewind<Io> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Reads one member's Raft connection: the hello, then messages (stepped into Raft) and pings
/// (answered), until it ends, goes silent, or its sender is removed from the cluster.
async fn serve<Io>(io: Io, addr: SocketAddr, peers: Arc<super::PeerService>)
where
    Io: AsyncRead + AsyncWrite + Unpin,
{
    let (r, mut w) = tokio::io::split(io);
    let mut r = BufReader::with_capacity(READ_BUFFER, r);
    let hello = tokio::time::timeout(SNIFF_TIMEOUT, frame::read(&mut r, 1024)).await;
    let Ok(Ok(Some(hello))) = hello else {
        return;
    };
    let Ok(hello) = PeerHello::decode(hello) else {
        tracing::warn!(%addr, "refused a peer connection: its hello does not decode");
        return;
    };
    if let Err(reply) = peers.admit(&hello) {
        let _ = reply.write(&mut w).await;
        return;
    }
    if Reply::Accepted.write(&mut w).await.is_err() {
        return;
    }
    let server = &peers.server;
    let received = server
        .metrics
        .peer_received_bytes
        .with_label_values(&[&format!("{:x}", hello.from)]);
    let silence = server.config.raft_read_timeout.0;
    loop {
        let message = tokio::time::timeout(silence, frame::read(&mut r, MAX_MESSAGE_BYTES));
        let message = match message.await {
            Ok(Ok(Some(message))) => message,
            Ok(Ok(None)) => return,
            Ok(Err(e)) => {
                tracing::warn!(from = format!("{:x}", hello.from), error = %e, "peer connection broken");
                return;
            }
            Err(_) => {
                tracing::warn!(
                    from = format!("{:x}", hello.from),
                    "peer connection silent for {silence:?}: closed"
                );
                return;
            }
        };
        if server.members.is_removed(hello.from) {
            tracing::warn!(
                from = format!("{:x}", hello.from),
                "refused the connection of a member removed from the cluster"
            );
            let _ = Reply::Removed.write(&mut w).await;
            return;
        }
        if server.peers.is_blocked(hello.from) {
            // Partition failpoint: lost on the way (pings too, so the sender sees silence).
            continue;
        }
        if message.is_empty() {
            if Reply::Pong.write(&mut w).await.is_err() {
                return;
            }
            continue;
        }
        received.inc_by(message.len() as u64);
        if peers.raft.step(message).is_err() {
            // The member is stopping.
            return;
        }
    }
}

impl super::PeerService {
    /// Whether the member that sent `hello` may send Raft messages here; if not, what it is told.
    fn admit(&self, hello: &PeerHello) -> Result<(), Reply> {
        self.check_cluster(hello.cluster_id)
            .and_then(|()| self.check_addressee(hello.to))
            .map_err(|status| Reply::Refused(status.message().to_string()))?;
        if self.server.peers.is_blocked(hello.from) {
            return Err(Reply::Refused("partitioned by a failpoint".into()));
        }
        if self.server.members.is_removed(hello.from) {
            tracing::warn!(
                from = format!("{:x}", hello.from),
                "refused the connection of a member removed from the cluster: {MEMBER_REMOVED}"
            );
            return Err(Reply::Removed);
        }
        Ok(())
    }
}
