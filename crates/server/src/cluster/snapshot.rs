//! Raft snapshots: copies of the whole state machine for members too far behind the leader's
//! log (a new member, or one that was down while the log was compacted).
//!
//! - The leader makes a copy when Raft asks for one (`SnapshotMaker`, off the Raft thread): a
//!   consistent copy of the backend written to `member/snap/<index>.snap.db`, named after the
//!   log index it holds.
//! - It sends the Raft snapshot message and the copy together on a stream of their own
//!   (`send`), so heartbeats and appends never wait behind a large copy; the copy's size and
//!   CRC-32C are checked on arrival.
//! - The receiver makes the copy durable under the same name (`receive`) and only then steps
//!   the message into Raft. Raft writes the snapshot marker to the WAL and asks the apply loop
//!   to install the copy, which is a rename over the backend (`install`).
//! - A crash between the WAL marker and the rename is finished at the next start
//!   (`finish_interrupted_install`): the backend is older than the marker and the copy for the
//!   marker's index is there.

use crate::errors::ServerError;
use bytes::Bytes;
use cairn_mvcc::Store;
use cairn_proto::cairnpb::SnapshotChunk;
use cairn_raft::RaftHandle;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Meta values that belong to the member, not to the data: a copy from the leader carries the
/// leader's, and the member keeps its own.
const LOCAL_META: &[&str] = &["member_id", "member_name"];

/// Copy bytes per chunk on the wire.
const CHUNK_BYTES: usize = 1 << 20;

pub(crate) fn copy_path(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("{index:016x}.snap.db"))
}

/// Copies in `dir`, by index.
fn copies(dir: &Path) -> Vec<(u64, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(u64, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let index = u64::from_str_radix(name.strip_suffix(".snap.db")?, 16).ok()?;
            Some((index, e.path()))
        })
        .collect();
    out.sort();
    out
}

/// Removes copies the backend has moved past (installed, or superseded), keeping `keep`.
fn remove_old_copies(dir: &Path, applied: u64, keep: Option<u64>) {
    for (index, path) in copies(dir) {
        if index <= applied && Some(index) != keep {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Makes copies of the state machine for the Raft node, one at a time, on a thread of its own.
pub(crate) struct SnapshotMaker {
    pub(crate) store: Arc<Store>,
    pub(crate) dir: PathBuf,
}

/// How long a copy waits for the apply thread to reach the index Raft asked for; past it, the
/// copy is made anyway and Raft asks for another if it does not serve.
const APPLY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl cairn_raft::Snapshots for SnapshotMaker {
    fn make(&mut self, raft: RaftHandle, at_least: u64) {
        let (store, dir) = (self.store.clone(), self.dir.clone());
        let spawned = std::thread::Builder::new()
            .name("snapshot".into())
            .spawn(move || {
                // The apply thread trails Raft by a batch or so; a copy is only useful once it
                // holds what Raft has committed to it.
                let deadline = std::time::Instant::now() + APPLY_WAIT;
                while store.consistent_index() < at_least && std::time::Instant::now() < deadline {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                // The copy is taken from the backend, which the write-back thread fills in
                // batches: hand it what has been applied first (no fsync; the copy gets one).
                if let Err(e) = store.write_back_now() {
                    tracing::warn!(error = %e, "writing back before a state machine copy failed");
                }
                let tmp = dir.join("making.snap.db.tmp");
                let made = store.write_snapshot(&tmp).and_then(|index| {
                    let path = copy_path(&dir, index);
                    std::fs::rename(&tmp, &path)
                        .and_then(|()| sync_dir(&dir))
                        .map_err(|e| cairn_mvcc::MvccError::Backend(format!("{e}")))?;
                    Ok(index)
                });
                match made {
                    Ok(index) => {
                        tracing::info!(
                            index,
                            "made a state machine copy for members behind the log"
                        );
                        remove_old_copies(&dir, store.consistent_index(), Some(index));
                        raft.snapshot_made(Some(index));
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "making a state machine copy failed");
                        raft.snapshot_made(None);
                    }
                }
            });
        if spawned.is_err() {
            tracing::error!("could not start a thread to make a state machine copy");
        }
    }
}

/// Streams the Raft snapshot message and the copy for `index` to a member; the first chunk
/// carries the message, the last the checksum.
pub(crate) async fn send(
    client: &mut cairn_proto::cairnpb::peer_client::PeerClient<tonic::transport::Channel>,
    header: SnapshotChunk,
    path: PathBuf,
) -> Result<(), String> {
    use tokio::io::AsyncReadExt;
    let mut file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| format!("open {}: {e}", path.display()))?;
    let size = file
        .metadata()
        .await
        .map_err(|e| format!("stat {}: {e}", path.display()))?
        .len();
    let (tx, rx) = tokio::sync::mpsc::channel::<SnapshotChunk>(4);
    let reader = tokio::spawn(async move {
        let mut crc = 0u32;
        let mut first = Some(SnapshotChunk { size, ..header });
        loop {
            let mut buf = vec![0u8; CHUNK_BYTES];
            let n = file.read(&mut buf).await.map_err(|e| e.to_string())?;
            buf.truncate(n);
            crc = crc32c::crc32c_append(crc, &buf);
            let mut chunk = first.take().unwrap_or_default();
            chunk.data = Bytes::from(buf);
            if n == 0 {
                chunk.last = true;
                chunk.crc32c = crc;
            }
            if tx.send(chunk).await.is_err() {
                return Err("the stream ended early".to_string());
            }
            if n == 0 {
                return Ok::<(), String>(());
            }
        }
    });
    let sent = client
        .snapshot(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(|s| s.message().to_string());
    let read = reader.await.map_err(|e| e.to_string())?;
    sent?;
    read
}

/// Receives a copy and its Raft message; the copy is durable under its index before the
/// message reaches Raft.
pub(crate) async fn receive(
    dir: &Path,
    first: SnapshotChunk,
    chunks: &mut tonic::Streaming<SnapshotChunk>,
    raft: &RaftHandle,
) -> Result<(), ServerError> {
    use tokio::io::AsyncWriteExt;
    let io = |e: std::io::Error| ServerError::Io(format!("receiving a snapshot: {e}"));
    tokio::fs::create_dir_all(dir).await.map_err(io)?;
    let tmp = dir.join(format!("{:016x}.snap.db.tmp", first.index));
    let mut file = tokio::fs::File::create(&tmp).await.map_err(io)?;
    let (index, size, message) = (first.index, first.size, first.message.clone());
    let mut written = 0u64;
    let mut paced = cairn_mvcc::writeback::Paced::default();
    let mut crc = 0u32;
    let mut chunk = first;
    loop {
        crc = crc32c::crc32c_append(crc, &chunk.data);
        written += chunk.data.len() as u64;
        file.write_all(&chunk.data).await.map_err(io)?;
        paced.wrote(&file, written);
        if chunk.last {
            if written != size || chunk.crc32c != crc {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(ServerError::Io(format!(
                    "snapshot copy for index {index} damaged in transit: {written} of {size} \
                     bytes, CRC-32C {crc:08x}, expected {:08x}",
                    chunk.crc32c
                )));
            }
            break;
        }
        chunk = match chunks.message().await {
            Ok(Some(c)) => c,
            Ok(None) | Err(_) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(ServerError::Io(format!(
                    "snapshot stream for index {index} ended early"
                )));
            }
        };
    }
    file.sync_all().await.map_err(io)?;
    drop(file);
    tokio::fs::rename(&tmp, copy_path(dir, index))
        .await
        .map_err(io)?;
    let d = dir.to_path_buf();
    tokio::task::spawn_blocking(move || sync_dir(&d))
        .await
        .map_err(|e| ServerError::Io(e.to_string()))?
        .map_err(io)?;
    tracing::info!(index, bytes = size, "received a snapshot from the leader");
    raft.step(message)?;
    Ok(())
}

/// Installs the copy for `index` as the backend (on the apply thread, in log order).
pub(crate) fn install(store: &Store, dir: &Path, index: u64) -> Result<u64, ServerError> {
    let path = copy_path(dir, index);
    if crate::failpoint::crash_before_snapshot_install() {
        tracing::warn!(index, "failpoint: dying before installing a snapshot");
        // SAFETY: raising SIGKILL on this process has no memory effects; it ends it at once,
        // like a crash.
        unsafe { libc::raise(libc::SIGKILL) };
    }
    let consistent = store.restore(&path, LOCAL_META)?;
    tracing::info!(index, consistent, "installed a snapshot from the leader");
    remove_old_copies(dir, consistent, None);
    Ok(consistent)
}

/// At start: if the WAL holds a snapshot marker above the backend's index (a crash between
/// recording a received snapshot and installing its copy), installs the copy now.
pub(crate) fn finish_interrupted_install(
    store: &Store,
    dir: &Path,
    wal_dir: &Path,
) -> Result<(), ServerError> {
    let applied = store.consistent_index();
    // Cheap check first: reading the WAL's marker costs a replay, so only when a copy newer
    // than the backend is waiting.
    let Some((index, _)) = copies(dir).into_iter().rev().find(|(i, _)| *i > applied) else {
        return Ok(());
    };
    let marker = cairn_raft::wal_snapshot_index(wal_dir)?;
    if marker == index {
        tracing::warn!(
            index,
            applied,
            "finishing the installation of a received snapshot"
        );
        store.restore(&copy_path(dir, index), LOCAL_META)?;
    } else {
        // Received but never recorded: the leader will send another.
        let _ = std::fs::remove_file(copy_path(dir, index));
    }
    Ok(())
}
