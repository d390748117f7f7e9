//! Maintenance.Snapshot: a consistent copy of the backend streamed to a client, in etcd's
//! backend format (a bbolt file: `etcd_backend::export`) so that etcd's own tools and etcd
//! itself can read and restore it, framed as etcd frames it (blobs of 32 KiB with the bytes
//! still to come, then the SHA-256 of everything sent as the last blob, which restore tools
//! check).
//!
//! The copy is made from one read transaction of the backend, so writes go on while it is made
//! and sent; its pages reach the disk as they are written (`cairn_mvcc::writeback`), so a large
//! copy does not stall the WAL's fsyncs. The copy's file is unlinked as soon as it is open: it
//! goes away when the stream ends, however it ends, and a crash leaves only a `client-snapshot-`
//! file that the next start removes.

use crate::errors::ServerError;
use crate::etcd::EtcdServer;
use cairn_proto::etcdserverpb::SnapshotResponse;
use ring::digest::{Context, SHA256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;
use tonic::Status;

const BLOB_BYTES: usize = 32 * 1024;
const TEMP_PREFIX: &str = "client-snapshot-";

static NEXT: AtomicU64 = AtomicU64::new(0);

/// Removes copies a crash left behind (called at start, before any stream exists).
pub(crate) fn remove_leftovers(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Starts making the copy and streaming it; the receiver yields the responses.
pub(crate) fn stream(
    server: &Arc<EtcdServer>,
    dir: PathBuf,
) -> mpsc::Receiver<Result<SnapshotResponse, Status>> {
    let (tx, rx) = mpsc::channel(4);
    let store = server.store.clone();
    let header = server.header(store.revision());
    let path = dir.join(format!(
        "{TEMP_PREFIX}{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let metrics = server.metrics.clone();
    // A thread of its own at the lowest CPU priority (not one of tokio's pooled blocking
    // threads, which would keep the priority): copying and hashing gigabytes is the least
    // urgent work on the member, and with one core it took a fifth of the linearizable reads'
    // throughput at normal priority.
    let failed = tx.clone();
    let spawned = std::thread::Builder::new()
        .name("snapshot-send".into())
        .spawn(move || {
            send_copy(&store, &path, header, tx, &metrics);
            let _ = std::fs::remove_file(&path);
        });
    if let Err(e) = spawned {
        let _ = failed.try_send(Err(Status::internal(format!(
            "no thread for a snapshot: {e}"
        ))));
    }
    rx
}

/// The snapshot sender's niceness (as the defragmentation's copy).
const SEND_NICENESS: i32 = 19;

/// Makes the copy and streams it; an error ends the stream. The stream ends before the copy's
/// blocks are given back, so the client never waits for that.
fn send_copy(
    store: &cairn_mvcc::Store,
    path: &Path,
    header: Option<cairn_proto::etcdserverpb::ResponseHeader>,
    tx: mpsc::Sender<Result<SnapshotResponse, Status>>,
    metrics: &crate::metrics::Metrics,
) {
    let mut file = match make_copy(store, path, metrics) {
        Ok(file) => file,
        Err(e) => {
            let _ = tx.blocking_send(Err(e.into()));
            return;
        }
    };
    if let Err(e) = stream_copy(&mut file, path, header, &tx) {
        let _ = tx.blocking_send(Err(e.into()));
    }
    drop(tx);
    // The copy is unlinked: closing it frees every block at once, and a multi-gigabyte free
    // holds the WAL's fsync up.
    cairn_mvcc::close_gradually(file);
}

/// Writes the copy and opens it, unlinked, so that a crash leaves nothing behind.
fn make_copy(
    store: &cairn_mvcc::Store,
    path: &Path,
    metrics: &crate::metrics::Metrics,
) -> Result<std::fs::File, ServerError> {
    let io = |e: std::io::Error| ServerError::Io(format!("snapshot copy {}: {e}", path.display()));
    // What has been applied but not yet written back belongs in the copy. Made at normal
    // priority: a write-back holds the backend's writer, which applies may wait for.
    store.write_back_now()?;
    let frozen = store.freeze()?;
    crate::readpool::lower_priority(SEND_NICENESS);
    let started = std::time::Instant::now();
    let marks = crate::etcd_backend::export(&frozen, path)?;
    drop(frozen);
    metrics
        .snapshot_duration
        .observe(started.elapsed().as_secs_f64());
    tracing::info!(
        size = std::fs::metadata(path).map_or(0, |m| m.len()),
        revision = marks.revision,
        consistent_index = marks.consistent_index,
        took_ms = started.elapsed().as_millis() as u64,
        "wrote the backend in etcd's format for a snapshot"
    );
    let file = std::fs::File::open(path).map_err(io)?;
    std::fs::remove_file(path).map_err(io)?;
    Ok(file)
}

/// Sends the copy in blobs, then its SHA-256; stops quietly if the client goes away.
fn stream_copy(
    file: &mut std::fs::File,
    path: &Path,
    header: Option<cairn_proto::etcdserverpb::ResponseHeader>,
    tx: &mpsc::Sender<Result<SnapshotResponse, Status>>,
) -> Result<(), ServerError> {
    let io = |e: std::io::Error| ServerError::Io(format!("snapshot copy {}: {e}", path.display()));
    let total = file.metadata().map_err(io)?.len();
    let mut digest = Context::new(&SHA256);
    let mut sent = 0u64;
    let mut header = header;
    let mut buf = vec![0u8; BLOB_BYTES];
    while sent < total {
        let want = usize::try_from((total - sent).min(BLOB_BYTES as u64)).unwrap_or(BLOB_BYTES);
        file.read_exact(&mut buf[..want]).map_err(io)?;
        digest.update(&buf[..want]);
        sent += want as u64;
        let resp = SnapshotResponse {
            header: header.take(),
            remaining_bytes: total - sent,
            blob: bytes::Bytes::copy_from_slice(&buf[..want]),
            version: super::maintenance::ETCD_VERSION.to_string(),
        };
        if tx.blocking_send(Ok(resp)).is_err() {
            // The client went away.
            return Ok(());
        }
    }
    let _ = tx.blocking_send(Ok(SnapshotResponse {
        header: header.take(),
        remaining_bytes: 0,
        blob: bytes::Bytes::copy_from_slice(digest.finish().as_ref()),
        version: super::maintenance::ETCD_VERSION.to_string(),
    }));
    Ok(())
}
