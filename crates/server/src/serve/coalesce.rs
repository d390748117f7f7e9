//! Write coalescing for served connections.
//!
//! hyper's HTTP/2 connection flushes its socket every time it runs, and it runs right after any
//! of its streams queues a frame (tokio polls a task woken by the running one next). When one
//! commit wakes many streams of a connection (a watch event for each of its watchers, responses
//! to many clients that share a connection), that is one `writev` per stream: on a busy member
//! most of the time per watch event went into those syscalls and the wake-ups between them.
//!
//! [`Coalescing`] keeps what the connection writes in a buffer and holds back a flush until the
//! worker thread has run every task that was ready (tokio's deferred wake-up, the one
//! `yield_now` uses), so the frames those tasks queue leave in one write. tokio wakes deferred
//! tasks whenever a worker runs out of ready tasks and, on a worker that never does, every 61
//! polls (its event interval), so a held flush waits for a bounded number of other tasks' polls;
//! it also goes as soon as the connection runs again [`MAX_FLUSH_DELAY`] after it was held, and
//! a buffer past [`MAX_BUFFERED`] is written at once. An idle member pays one extra poll of the
//! connection per flush.

use futures::task::AtomicWaker;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes held before they are written without waiting for the flush.
pub(crate) const MAX_BUFFERED: usize = 64 * 1024;
/// How long a held-back flush may wait when the connection is polled again for other reasons.
pub(crate) const MAX_FLUSH_DELAY: Duration = Duration::from_millis(1);

/// An I/O object whose writes are buffered and whose flushes wait for the worker to be idle.
pub(crate) struct Coalescing<T> {
    inner: T,
    buf: Vec<u8>,
    /// Bytes of `buf` already written to `inner`.
    written: usize,
    /// The deferred wake-up's target, one per connection: a late wake-up from an earlier wait
    /// can only let a later flush go early.
    signal: Arc<FlushSignal>,
    /// Since when a flush waits for the deferred wake-up.
    waiting_since: Option<Instant>,
}

/// A buffer grown past this by a burst is given back once drained, so an idle connection holds
/// little.
const KEPT_CAPACITY: usize = 16 * 1024;

/// Woken by the scheduler once the worker has run out of ready tasks.
#[derive(Default)]
struct FlushSignal {
    fired: AtomicBool,
    task: AtomicWaker,
}

impl Wake for FlushSignal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl<T> Coalescing<T> {
    pub(crate) fn new(inner: T) -> Self {
        Coalescing {
            inner,
            buf: Vec::new(),
            written: 0,
            signal: Arc::new(FlushSignal::default()),
            waiting_since: None,
        }
    }

    fn pending(&self) -> usize {
        self.buf.len() - self.written
    }
}

impl<T: AsyncWrite + Unpin> Coalescing<T> {
    /// Writes everything buffered to `inner`.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.buf.len() {
            let n = std::task::ready!(
                Pin::new(&mut self.inner).poll_write(cx, &self.buf[self.written..])
            )?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.buf.clear();
        if self.buf.capacity() > KEPT_CAPACITY {
            self.buf = Vec::new();
        }
        self.written = 0;
        Poll::Ready(Ok(()))
    }

    /// Makes room for `incoming` more bytes; `Ready(true)` when they are large enough to be
    /// written straight to `inner` instead of being copied.
    fn poll_room(&mut self, cx: &mut Context<'_>, incoming: usize) -> Poll<io::Result<bool>> {
        if self.pending() + incoming <= MAX_BUFFERED {
            return Poll::Ready(Ok(false));
        }
        std::task::ready!(self.poll_drain(cx))?;
        Poll::Ready(Ok(incoming > MAX_BUFFERED))
    }

    /// Whether the held-back flush may go now; if not, arranges to be woken when it may.
    fn flush_due(&mut self, cx: &mut Context<'_>) -> bool {
        let signal = &self.signal;
        match self.waiting_since {
            Some(since) => {
                if signal.fired.load(Ordering::Acquire) || since.elapsed() >= MAX_FLUSH_DELAY {
                    return true;
                }
                signal.task.register(cx.waker());
                false
            }
            None => {
                signal.fired.store(false, Ordering::Release);
                signal.task.register(cx.waker());
                let waker = Waker::from(signal.clone());
                // The first poll of `yield_now` hands its waker to the scheduler, which wakes it
                // after running every task that is ready; outside a runtime it wakes at once.
                let yielded = std::pin::pin!(tokio::task::yield_now());
                let _ = yielded.poll(&mut Context::from_waker(&waker));
                self.waiting_since = Some(Instant::now());
                false
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Coalescing<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if std::task::ready!(this.poll_room(cx, data.len()))? {
            return Pin::new(&mut this.inner).poll_write(cx, data);
        }
        this.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if std::task::ready!(this.poll_room(cx, total))? {
            return Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        }
        for b in bufs {
            this.buf.extend_from_slice(b);
        }
        Poll::Ready(Ok(total))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.pending() > 0 {
            if !this.flush_due(cx) {
                return Poll::Pending;
            }
            std::task::ready!(this.poll_drain(cx))?;
        }
        this.waiting_since = None;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        std::task::ready!(this.poll_drain(cx))?;
        this.waiting_since = None;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Coalescing<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Counts the writes that reach it.
    #[derive(Default)]
    struct CountingSink {
        bytes: Vec<u8>,
        writes: usize,
    }

    impl AsyncWrite for CountingSink {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.writes += 1;
            self.bytes.extend_from_slice(data);
            Poll::Ready(Ok(data.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn writes_stay_buffered_until_the_flush_and_leave_in_one_write() {
        let mut io = Coalescing::new(CountingSink::default());
        for chunk in [&b"one "[..], b"two ", b"three"] {
            io.write_all(chunk).await.unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(io.inner.writes, 0);
        io.flush().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(io.inner.writes, 1);
        assert_eq!(io.inner.bytes, b"one two three");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_flush_waits_for_the_tasks_that_are_ready() {
        let ran = Arc::new(AtomicUsize::new(0));
        let others: Vec<_> = (0..10)
            .map(|_| {
                let ran = ran.clone();
                tokio::spawn(async move {
                    ran.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        let mut io = Coalescing::new(CountingSink::default());
        io.write_all(b"frame")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        io.flush().await.unwrap_or_else(|e| panic!("{e}"));
        // The flush went only after every task that was ready had run.
        assert_eq!(ran.load(Ordering::SeqCst), 10);
        assert_eq!(io.inner.bytes, b"frame");
        for t in others {
            t.await.unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_flush_is_not_held_behind_a_task_that_never_ends() {
        // A task that is always ready: the worker never runs out of work, yet tokio wakes
        // deferred tasks at its event interval, so the flush still goes.
        let busy = tokio::spawn(std::future::poll_fn(|cx: &mut Context<'_>| {
            cx.waker().wake_by_ref();
            Poll::<()>::Pending
        }));
        let mut io = Coalescing::new(CountingSink::default());
        io.write_all(b"frame")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        tokio::time::timeout(Duration::from_secs(5), io.flush())
            .await
            .unwrap_or_else(|_| panic!("the flush was held"))
            .unwrap_or_else(|e| panic!("{e}"));
        busy.abort();
        assert_eq!(io.inner.bytes, b"frame");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn large_writes_bypass_the_buffer_in_order() {
        let mut io = Coalescing::new(CountingSink::default());
        let big = vec![7u8; MAX_BUFFERED + 1];
        io.write_all(b"head")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        io.write_all(&big).await.unwrap_or_else(|e| panic!("{e}"));
        // The buffered head went first, then the large write itself, uncopied.
        assert_eq!(io.inner.writes, 2);
        io.write_all(b"tail")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        io.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
        let mut want = b"head".to_vec();
        want.extend_from_slice(&big);
        want.extend_from_slice(b"tail");
        assert_eq!(io.inner.bytes, want);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_burst_does_not_leave_a_large_buffer_behind() {
        let mut io = Coalescing::new(CountingSink::default());
        io.write_all(&vec![1u8; 40 * 1024])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        io.flush().await.unwrap_or_else(|e| panic!("{e}"));
        assert!(io.buf.capacity() <= KEPT_CAPACITY);
        io.write_all(b"small")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        io.flush().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(io.inner.bytes.len(), 40 * 1024 + 5);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_connection_round_trips_through_it() {
        let (a, b) = tokio::io::duplex(1 << 20);
        let mut writer = Coalescing::new(a);
        let mut reader = Coalescing::new(b);
        let sent: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let expected = sent.clone();
        let send = tokio::spawn(async move {
            for chunk in sent.chunks(1000) {
                writer.write_all(chunk).await?;
                writer.flush().await?;
            }
            writer.shutdown().await
        });
        let mut got = Vec::new();
        reader
            .read_to_end(&mut got)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        send.await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got, expected);
    }
}
