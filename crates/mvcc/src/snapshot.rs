//! Whole-store copies: writing a consistent copy of the backend to a new file (what a leader
//! sends a member that is too far behind for the log, and what a backup is made of), and
//! replacing the backend with such a copy while the member runs.

use crate::{KV, LEASES, META, MvccError, Result, Store, load_state, meta_u64, open_backend};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Records copied per write transaction of the copy: bounds the copy's memory.
const COPY_BATCH: usize = 20_000;

/// Writes everything `from` sees into a new backend file at `dest` (replaced if it exists),
/// durably: only live pages, so the copy is also a defragmented backend.
/// `progress` hears the records copied so far and the total.
pub(crate) fn copy_backend(
    from: &redb::ReadTransaction,
    dest: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<()> {
    if dest.exists() {
        std::fs::remove_file(dest)
            .map_err(|e| MvccError::Backend(format!("remove {}: {e}", dest.display())))?;
    }
    let out = open_backend(dest)?;
    let _paced = crate::writeback::Background::start(dest);
    let mut total = 0;
    for len in [
        table_len(from, KV)?,
        table_len(from, META)?,
        table_len(from, LEASES)?,
    ] {
        total += len;
    }
    let mut copied = 0;
    let mut count = |n: u64| {
        copied += n;
        progress(copied, total);
    };
    copy_table(from, &out, KV, &mut count)?;
    copy_table(from, &out, META, &mut count)?;
    copy_table(from, &out, LEASES, &mut count)?;
    // One durable commit makes everything before it durable too.
    let mut w = out.begin_write().map_err(MvccError::backend)?;
    w.set_durability(Durability::Immediate)
        .map_err(MvccError::backend)?;
    w.open_table(META).map_err(MvccError::backend)?;
    w.commit().map_err(MvccError::backend)?;
    drop(out);
    sync_parent(dest)
}

fn table_len<K: redb::Key + 'static, V: redb::Value + 'static>(
    from: &redb::ReadTransaction,
    table: TableDefinition<K, V>,
) -> Result<u64> {
    use redb::ReadableTableMetadata;
    from.open_table(table)
        .and_then(|t| t.len().map_err(redb::TableError::Storage))
        .map_err(MvccError::backend)
}

fn copy_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    from: &redb::ReadTransaction,
    to: &Database,
    table: TableDefinition<K, V>,
    copied_more: &mut dyn FnMut(u64),
) -> Result<()>
where
    for<'a> K::SelfType<'a>: std::borrow::Borrow<K::SelfType<'a>>,
    for<'a> V::SelfType<'a>: std::borrow::Borrow<V::SelfType<'a>>,
{
    let source = from.open_table(table).map_err(MvccError::backend)?;
    let mut items = source.iter().map_err(MvccError::backend)?;
    loop {
        let mut w = to.begin_write().map_err(MvccError::backend)?;
        w.set_durability(Durability::None)
            .map_err(MvccError::backend)?;
        let mut copied = 0;
        {
            let mut dest = w.open_table(table).map_err(MvccError::backend)?;
            for item in items.by_ref() {
                let (k, v) = item.map_err(MvccError::backend)?;
                dest.insert(k.value(), v.value())
                    .map_err(MvccError::backend)?;
                copied += 1;
                if copied == COPY_BATCH {
                    break;
                }
            }
        }
        w.commit().map_err(MvccError::backend)?;
        copied_more(copied as u64);
        if copied < COPY_BATCH {
            return Ok(());
        }
    }
}

pub(crate) fn sync_parent(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| MvccError::Backend(format!("sync {}: {e}", dir.display())))?;
    }
    Ok(())
}

/// Where a defragmentation builds the new backend, beside the old one.
pub(crate) fn defrag_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".defrag");
    PathBuf::from(name)
}

/// What one defragmentation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defragmented {
    pub size_before: u64,
    pub size_after: u64,
    /// Write-backs that happened during the copy and were written into it at the end.
    pub replayed_batches: usize,
    /// How long write-backs were held back at the end (reads and applies never wait).
    pub paused: std::time::Duration,
    /// How long the copy took.
    pub copy: std::time::Duration,
}

/// Blocks of the replaced backend given back per step, and the pause between steps.
const RELEASE_STEP_BYTES: u64 = 128 << 20;
const RELEASE_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);

/// Gives the old backend's blocks back a step at a time once its last reader is gone. Closing
/// a multi-gigabyte file frees all its blocks in one file-system transaction, and the WAL's
/// next fsync waited behind it (a 1.1 s stall of every write in a 2 GB defragmentation).
/// `file` is a second handle to the old file, so that redb's close is not the last one.
fn release_gradually(old: Arc<Database>, file: File) {
    let mut old = old;
    loop {
        match Arc::try_unwrap(old) {
            Ok(db) => {
                drop(db);
                break;
            }
            Err(still_read) => {
                old = still_read;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
    let started = std::time::Instant::now();
    close_gradually(file);
    tracing::info!(
        took_ms = started.elapsed().as_millis() as u64,
        "released the replaced backend's blocks"
    );
}

/// Closes the last handle to an unlinked (or about to be deleted) large file after giving its
/// blocks back a step at a time, so that no single file-system transaction frees gigabytes
/// while the WAL waits to fsync.
pub fn close_gradually(file: File) {
    let mut len = file.metadata().map(|m| m.len()).unwrap_or(0);
    while len > 0 {
        len = len.saturating_sub(RELEASE_STEP_BYTES);
        if let Err(e) = file.set_len(len) {
            tracing::warn!(error = %e, "could not shrink a large file before closing it; closing it whole");
            break;
        }
        std::thread::sleep(RELEASE_PAUSE);
    }
    drop(file);
}

impl Store {
    /// Gives the backend's free pages back to the file system while the store serves: the
    /// backend is copied from one read transaction into a new file (live pages only), the
    /// batches written back meanwhile are written into the copy, and the copy replaces the
    /// backend. Nothing waits for the copy: applies go on into memory and reads go on against
    /// the old file; only write-backs pause, and only for the final catch-up and switch.
    /// (etcd's defragmentation stops the member for its whole length.)
    pub fn defragment(&self) -> Result<Defragmented> {
        self.defragment_with_progress(&mut |_, _| {})
    }

    /// [`Store::defragment`], telling `progress` the records copied so far and the total.
    pub fn defragment_with_progress(
        &self,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Defragmented> {
        let _one = self.defrag.lock();
        let size_before = self.db_size();
        let dest = defrag_path(&self.path);
        let (read, generation) = {
            let _no_write_back = self.write_back.lock();
            *self.replay.lock() = Some(Vec::new());
            let read = self.db().begin_read().map_err(MvccError::backend);
            (read, self.generation.load(Ordering::Acquire))
        };
        let copy_started = std::time::Instant::now();
        let copied = read.and_then(|r| copy_backend(&r, &dest, progress));
        let copy = copy_started.elapsed();
        let _no_write_back = self.write_back.lock();
        let replay = self.replay.lock().take().unwrap_or_default();
        let outcome = copied.and_then(|()| {
            if self.generation.load(Ordering::Acquire) != generation {
                return Err(MvccError::Backend(
                    "the backend was replaced by a snapshot during defragmentation".into(),
                ));
            }
            let paused = std::time::Instant::now();
            let copy = open_backend(&dest)?;
            let mut w = copy.begin_write().map_err(MvccError::backend)?;
            w.set_durability(Durability::Immediate)
                .map_err(MvccError::backend)?;
            for batch in &replay {
                batch.write_to(&w)?;
            }
            w.commit().map_err(MvccError::backend)?;
            let old_file = File::open(&self.path)
                .map_err(|e| MvccError::Backend(format!("open {}: {e}", self.path.display())))?;
            std::fs::rename(&dest, &self.path).map_err(|e| {
                MvccError::Backend(format!(
                    "install {} as {}: {e}",
                    dest.display(),
                    self.path.display()
                ))
            })?;
            sync_parent(&self.path)?;
            // Readers still holding the old file finish on it; the next ones read the copy.
            let old = std::mem::replace(&mut *self.db.write(), Arc::new(copy));
            *self.size_in_use.lock() = None;
            Ok((paused.elapsed(), old, old_file))
        });
        drop(_no_write_back);
        match outcome {
            Ok((paused, old, old_file)) => {
                let spawned = std::thread::Builder::new()
                    .name("defrag-release".into())
                    .spawn(move || release_gradually(old, old_file));
                if let Err(e) = spawned {
                    tracing::warn!(error = %e, "no thread to release the old backend; it is closed at once");
                }
                Ok(Defragmented {
                    size_before,
                    size_after: self.db_size(),
                    replayed_batches: replay.len(),
                    paused,
                    copy,
                })
            }
            Err(e) => {
                let _ = std::fs::remove_file(&dest);
                Err(e)
            }
        }
    }

    /// Writes a consistent copy of the backend, as of its last write-back, to a new file at
    /// `dest` (replaced if it exists) and makes it durable. Writes go on meanwhile. Returns the
    /// consistent index the copy holds: the last log entry whose effects it contains.
    pub fn write_snapshot(&self, dest: &Path) -> Result<u64> {
        let source = self.db();
        let r = source.begin_read().map_err(MvccError::backend)?;
        let consistent = {
            let meta = r.open_table(META).map_err(MvccError::backend)?;
            meta_u64(&meta, "consistent_index")?
        };
        copy_backend(&r, dest, &mut |_, _| {})?;
        Ok(consistent)
    }

    /// Replaces the backend with the copy at `src` (which is moved into place) and rebuilds the
    /// in-memory state from it, keeping this store's values of the meta names in `keep` (what
    /// belongs to this member rather than to the data, such as its identity). The caller
    /// guarantees no batch is being applied. Watchers go back to catching up from the new
    /// backend's history; readers still on the old backend finish on it. Returns the new
    /// consistent index.
    ///
    /// The switch is a rename: after a crash the backend is either the old file or the new one.
    pub fn restore(&self, src: &Path, keep: &[&str]) -> Result<u64> {
        let _no_write_back = self.write_back.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        let kept: Vec<(&str, Vec<u8>)> = keep
            .iter()
            .filter_map(|name| match self.meta(name) {
                Ok(Some(v)) => Some(Ok((*name, v))),
                Ok(None) => None,
                Err(e) => Some(Err(e)),
            })
            .collect::<Result<_>>()?;
        if !kept.is_empty() {
            let copy = open_backend(src)?;
            let mut w = copy.begin_write().map_err(MvccError::backend)?;
            w.set_durability(Durability::Immediate)
                .map_err(MvccError::backend)?;
            {
                let mut meta = w.open_table(META).map_err(MvccError::backend)?;
                for (name, value) in &kept {
                    meta.insert(*name, value.as_slice())
                        .map_err(MvccError::backend)?;
                }
            }
            w.commit().map_err(MvccError::backend)?;
        }
        let mut state = self.state.write();
        std::fs::rename(src, &self.path).map_err(|e| {
            MvccError::Backend(format!(
                "install {} as {}: {e}",
                src.display(),
                self.path.display()
            ))
        })?;
        sync_parent(&self.path)?;
        let db = open_backend(&self.path)?;
        let fresh = load_state(&db)?;
        let consistent = fresh.consistent_index;
        *self.db.write() = Arc::new(db);
        *state = fresh;
        *self.size_in_use.lock() = None;
        self.hub.lock().unsync_all();
        Ok(consistent)
    }
}

/// A consistent view of the backend as of its last write-back, read without copying it: what a
/// snapshot in another format (etcd's) is written from while writes go on. It holds a read
/// transaction, so the pages it sees stay allocated until it is dropped.
pub struct Frozen {
    txn: redb::ReadTransaction,
}

/// Called with a record's revision, whether it is a tombstone, and its encoded KeyValue.
pub type VisitRecord<'a, E> =
    dyn FnMut(crate::Revision, bool, &[u8]) -> std::result::Result<(), E> + 'a;
/// Called with a lease's id and record.
pub type VisitLease<'a, E> = dyn FnMut(i64, &[u8]) -> std::result::Result<(), E> + 'a;

/// A store's position as a [`Frozen`] view has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrozenMarks {
    pub consistent_index: u64,
    pub term: u64,
    pub revision: i64,
    pub compacted: i64,
}

impl Store {
    /// A consistent view of the backend. What is applied but not written back is not in it:
    /// call [`Store::write_back_now`] first for everything applied so far.
    pub fn freeze(&self) -> Result<Frozen> {
        let txn = self.db().begin_read().map_err(MvccError::backend)?;
        Ok(Frozen { txn })
    }
}

impl Frozen {
    pub fn marks(&self) -> Result<FrozenMarks> {
        let meta = self.txn.open_table(META).map_err(MvccError::backend)?;
        Ok(FrozenMarks {
            consistent_index: meta_u64(&meta, "consistent_index")?,
            term: meta_u64(&meta, "term")?,
            revision: meta_u64(&meta, "current_rev")? as i64,
            compacted: meta_u64(&meta, "compact_rev")? as i64,
        })
    }

    /// A meta value the server stored.
    pub fn meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let meta = self.txn.open_table(META).map_err(MvccError::backend)?;
        let value = meta.get(name).map_err(MvccError::backend)?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    /// Every record of the history in revision order: its revision, whether it is a deletion's
    /// tombstone, and its encoded `mvccpb.KeyValue` (a tombstone's holds the key and the
    /// deletion's revision).
    pub fn records<E: From<MvccError>>(
        &self,
        visit: &mut VisitRecord<'_, E>,
    ) -> std::result::Result<(), E> {
        let kv = self.txn.open_table(KV).map_err(MvccError::backend)?;
        for item in kv.iter().map_err(MvccError::backend)? {
            let (key, value) = item.map_err(MvccError::backend)?;
            let rev = crate::Revision::from_key(key.value());
            let (kind, record) = match value.value().split_first() {
                Some((kind, record)) => (*kind, record),
                None => {
                    return Err(MvccError::Corrupt {
                        rev,
                        reason: "empty record".into(),
                    }
                    .into());
                }
            };
            visit(rev, kind == crate::KIND_TOMBSTONE, record)?;
        }
        Ok(())
    }

    /// Every lease record (the server's encoding), by id.
    pub fn leases<E: From<MvccError>>(
        &self,
        visit: &mut VisitLease<'_, E>,
    ) -> std::result::Result<(), E> {
        let leases = self.txn.open_table(LEASES).map_err(MvccError::backend)?;
        for item in leases.iter().map_err(MvccError::backend)? {
            let (id, record) = item.map_err(MvccError::backend)?;
            visit(id.value(), record.value())?;
        }
        Ok(())
    }
}
