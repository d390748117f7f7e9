//! Threads for long read-only work (large ranges, read-only txns, Hash/HashKV, watch catch-up),
//! run at a lower CPU priority than the write path.
//!
//! Such reads no longer hold the store's lock for long, but they still take CPU: on a small
//! machine a loop of 100k-key ranges would otherwise compete on equal terms with the Raft,
//! apply and network threads that every write goes through, and write latency would suffer for
//! it. At nice +10 the scheduler gives the write path the CPU first; the reads get whatever is
//! left, which on an idle member is all of it.

use crate::errors::ServerError;
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// Niceness of the read threads (0 is normal, 19 the lowest priority).
const READ_NICENESS: i32 = 10;

#[derive(Clone)]
pub struct ReadPool {
    jobs: Sender<Job>,
}

impl ReadPool {
    pub fn start(threads: usize) -> Result<ReadPool, ServerError> {
        let (jobs, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("read-{i}"))
                .spawn(move || worker(&rx))
                .map_err(|e| ServerError::Io(format!("spawn read thread: {e}")))?;
        }
        Ok(ReadPool { jobs })
    }

    /// Runs `f` on a read thread and waits for its result.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ServerError> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .map_err(|_| ServerError::Stopped)?;
        rx.await.map_err(|_| ServerError::Stopped)
    }
}

fn worker(rx: &Mutex<Receiver<Job>>) {
    lower_priority(READ_NICENESS);
    loop {
        let job = match rx.lock().recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        job();
    }
}

/// Lowers this thread's scheduling priority; a failure only costs the optimization.
///
/// Niceness alone is not enough under the EEVDF scheduler (Linux 6.6+): a running task keeps
/// the CPU for its whole slice (about 3 ms by default) before a woken task of any weight gets
/// it, which showed up as put latency spikes of that size while a large range ran. The read
/// threads therefore also ask for the shortest slice, so that a woken Raft, apply or network
/// thread gets the CPU within about 0.1 ms. Kernels without custom slices ignore the request.
pub(crate) fn lower_priority(niceness: i32) {
    #[cfg(target_os = "linux")]
    {
        #[repr(C)]
        struct SchedAttr {
            size: u32,
            policy: u32,
            flags: u64,
            nice: i32,
            priority: u32,
            runtime: u64,
            deadline: u64,
            period: u64,
        }
        const SHORTEST_SLICE_NS: u64 = 100_000;
        let attr = SchedAttr {
            size: std::mem::size_of::<SchedAttr>() as u32,
            policy: libc::SCHED_OTHER as u32,
            flags: 0,
            nice: niceness,
            priority: 0,
            runtime: SHORTEST_SLICE_NS,
            deadline: 0,
            period: 0,
        };
        // SAFETY: sched_setattr reads `attr`, which outlives the call and has the layout of the
        // kernel's struct sched_attr (version 0, 48 bytes); pid 0 is the calling thread.
        let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
        if rc == 0 {
            return;
        }
        // SAFETY: gettid and setpriority on the calling thread have no memory effects.
        let tid = unsafe { libc::syscall(libc::SYS_gettid) } as libc::id_t;
        let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, niceness) };
        if rc != 0 {
            tracing::debug!("could not lower a background thread's priority");
        }
    }
}
