//! Failpoints for process-level tests, set through environment variables that no deployment
//! sets (etcd builds its failpoints in with gofail for the same purpose). Each is read once.
//!
//! - `CAIRN_FAILPOINT_APPLY_HOLD_MS`: the apply loop waits this long before applying its first
//!   batch, so that a test can have requests arrive while entries of the previous run are still
//!   waiting to be replayed.
//! - `CAIRN_FAILPOINT_PEER_BLOCK_FILE`: a file naming members (by name or hex id, one per
//!   line) this member exchanges no peer traffic with, re-read every 100 ms: a network
//!   partition a test can make and heal.
//! - `CAIRN_FAILPOINT_REVISION_COMPACTION_INTERVAL_MS`: revision-mode auto-compaction looks
//!   this often instead of every 5 minutes.
//! - `CAIRN_FAILPOINT_CRASH_BEFORE_SNAPSHOT_INSTALL`: the member dies (as from SIGKILL) after
//!   a received snapshot is recorded in the WAL and before its copy replaces the backend.
//! - `CAIRN_FAILPOINT_DEFRAG_STEP_DELAY_MS`: an online defragmentation's copy pauses this long
//!   after each batch of records, so that a test can watch its progress.

use std::sync::OnceLock;
use std::time::Duration;

fn millis(name: &str) -> Option<Duration> {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis)
}

/// How long the first apply is held back, if at all.
pub fn apply_hold() -> Option<Duration> {
    static HOLD: OnceLock<Option<Duration>> = OnceLock::new();
    *HOLD.get_or_init(|| millis("CAIRN_FAILPOINT_APPLY_HOLD_MS"))
}

/// Whether to die just before installing a received snapshot.
pub fn crash_before_snapshot_install() -> bool {
    static CRASH: OnceLock<bool> = OnceLock::new();
    *CRASH
        .get_or_init(|| std::env::var_os("CAIRN_FAILPOINT_CRASH_BEFORE_SNAPSHOT_INSTALL").is_some())
}

/// The file that names members to cut off, if the failpoint is set.
pub fn peer_block_file() -> Option<std::path::PathBuf> {
    std::env::var_os("CAIRN_FAILPOINT_PEER_BLOCK_FILE").map(std::path::PathBuf::from)
}

/// How often revision-mode auto-compaction looks, if the failpoint shortens it.
pub fn revision_compaction_interval() -> Option<Duration> {
    millis("CAIRN_FAILPOINT_REVISION_COMPACTION_INTERVAL_MS")
}

/// How long an online defragmentation's copy pauses after each batch, if at all.
pub fn defrag_step_delay() -> Option<Duration> {
    static DELAY: OnceLock<Option<Duration>> = OnceLock::new();
    *DELAY.get_or_init(|| millis("CAIRN_FAILPOINT_DEFRAG_STEP_DELAY_MS"))
}
