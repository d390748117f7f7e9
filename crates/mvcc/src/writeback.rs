//! Writing large files (state machine copies) without stalling the WAL's fsyncs.
//!
//! A gigabyte written into the page cache and made durable with one fsync at the end makes that
//! fsync flush it all at once; on a shared disk (and, with ext4's ordered journal, on the same
//! file system) every WAL fsync meanwhile waits behind it, for a second or more. Starting the
//! writeback of what has been written as it is written (`sync_file_range`, which does not wait)
//! keeps the dirty data small, so the final fsync is short and the disk's bandwidth is shared
//! with the WAL instead of taken from it in one burst.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Written bytes after which writeback is started for them.
const STEP_BYTES: u64 = 8 << 20;
/// How often a file written by someone else (redb) has its dirty pages pushed out.
const PERIOD: Duration = Duration::from_millis(50);

/// Starts writeback for `len` bytes at `offset` of `file`, without waiting for it. A hint: a
/// failure only means the final fsync does more work.
pub fn start(file: &impl AsRawFd, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
            return;
        };
        // SAFETY: a plain syscall on a descriptor the caller keeps open for the call.
        unsafe {
            libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file.as_raw_fd(), offset, len);
}

/// For a file written sequentially by the caller: call [`Paced::wrote`] with the total written
/// so far after each write.
#[derive(Debug, Default)]
pub struct Paced {
    started_at: u64,
}

impl Paced {
    pub fn wrote(&mut self, file: &impl AsRawFd, total: u64) {
        if total >= self.started_at + STEP_BYTES {
            // From the start: a buffered writer (tokio's File) may not have handed the last
            // write to the kernel yet, and pages already clean cost nothing to skip.
            start(file, 0, total);
            self.started_at = total;
        }
    }
}

/// For a file another library writes (a redb copy): a thread pushes out its dirty pages every
/// [`PERIOD`] until dropped.
pub struct Background {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Background {
    /// Starts on `path`, which must exist; without it (or without a thread) nothing is paced.
    pub fn start(path: &Path) -> Background {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = File::open(path).ok().and_then(|file| {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("copy-writeback".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(PERIOD);
                        // Length 0: to the end of the file, whatever it has grown to.
                        start(&file, 0, 0);
                    }
                })
                .ok()
        });
        Background { stop, thread }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
