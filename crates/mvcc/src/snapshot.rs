//! Whole-store copies: writing a consistent copy of the backend to a new file (what a leader
//! sends a member that is too far behind for the log, and what a backup is made of), and
//! replacing the backend with such a copy while the member runs.

use crate::{KV, LEASES, META, MvccError, Result, Store, load_state, meta_u64, open_backend};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

/// Records copied per write transaction of the copy: bounds the copy's memory.
const COPY_BATCH: usize = 20_000;

/// Writes everything `from` sees into a new backend file at `dest` (replaced if it exists),
/// durably: only live pages, so the copy is also a defragmented backend.
pub(crate) fn copy_backend(from: &redb::ReadTransaction, dest: &Path) -> Result<()> {
    if dest.exists() {
        std::fs::remove_file(dest)
            .map_err(|e| MvccError::Backend(format!("remove {}: {e}", dest.display())))?;
    }
    let out = open_backend(dest)?;
    let _paced = crate::writeback::Background::start(dest);
    copy_table(from, &out, KV)?;
    copy_table(from, &out, META)?;
    copy_table(from, &out, LEASES)?;
    // One durable commit makes everything before it durable too.
    let mut w = out.begin_write().map_err(MvccError::backend)?;
    w.set_durability(Durability::Immediate)
        .map_err(MvccError::backend)?;
    w.open_table(META).map_err(MvccError::backend)?;
    w.commit().map_err(MvccError::backend)?;
    drop(out);
    sync_parent(dest)
}

fn copy_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    from: &redb::ReadTransaction,
    to: &Database,
    table: TableDefinition<K, V>,
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

impl Store {
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
        copy_backend(&r, dest)?;
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
