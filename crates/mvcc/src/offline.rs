//! Work on a backend file that no member has open: what `cairnutl` does to snapshot copies and
//! stopped members' data dirs. redb locks an open database file, so a running member's backend
//! is refused here rather than changed under it.

use crate::{KV, LEASES, META, MvccError, Result, meta_u64, open_backend};
use redb::{Durability, ReadableDatabase, ReadableTable};
use std::path::Path;

/// What `snapshot status` reports about a backend file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendStatus {
    /// CRC-32C over every table's name and rows, tables in name order, rows in key order.
    pub hash: u32,
    /// The store revision the file holds.
    pub revision: i64,
    /// Rows in all tables (records of every revision, meta values, leases), as etcd counts
    /// the keys of all its buckets.
    pub total_keys: u64,
}

/// Reads a backend file's status. The hash changes with any row of any table, so two files
/// with the same hash hold the same data.
pub fn status(path: &Path) -> Result<BackendStatus> {
    let db = open_backend(path)?;
    let r = db.begin_read().map_err(MvccError::backend)?;
    let mut hash = 0u32;
    let mut total_keys = 0u64;
    let mut revision = 0i64;
    // Tables in name order: "kv", "lease", "meta".
    {
        let kv = r.open_table(KV).map_err(MvccError::backend)?;
        hash = crc32c::crc32c_append(hash, b"kv");
        for item in kv.iter().map_err(MvccError::backend)? {
            let (k, v) = item.map_err(MvccError::backend)?;
            hash = crc32c::crc32c_append(hash, &k.value().to_be_bytes());
            hash = crc32c::crc32c_append(hash, v.value());
            revision = revision.max(crate::Revision::from_key(k.value()).main);
            total_keys += 1;
        }
    }
    {
        let leases = r.open_table(LEASES).map_err(MvccError::backend)?;
        hash = crc32c::crc32c_append(hash, b"lease");
        for item in leases.iter().map_err(MvccError::backend)? {
            let (k, v) = item.map_err(MvccError::backend)?;
            hash = crc32c::crc32c_append(hash, &k.value().to_be_bytes());
            hash = crc32c::crc32c_append(hash, v.value());
            total_keys += 1;
        }
    }
    let meta = r.open_table(META).map_err(MvccError::backend)?;
    hash = crc32c::crc32c_append(hash, b"meta");
    for item in meta.iter().map_err(MvccError::backend)? {
        let (k, v) = item.map_err(MvccError::backend)?;
        hash = crc32c::crc32c_append(hash, k.value().as_bytes());
        hash = crc32c::crc32c_append(hash, v.value());
        total_keys += 1;
    }
    // A revision moved on without a record (a restore's bump) is in the meta table.
    revision = revision.max(meta_u64(&meta, "current_rev")? as i64);
    Ok(BackendStatus {
        hash,
        revision,
        total_keys,
    })
}

/// How [`rebase`] prepares a copy of a store to start a new cluster's log.
#[derive(Debug, Clone, Default)]
pub struct Rebase {
    /// The Raft index and term the new log starts after.
    pub consistent_index: u64,
    pub term: u64,
    /// Added to the store revision: the next write gets a revision above every revision the
    /// old cluster may have handed out after the copy was made.
    pub bump_revision: u64,
    /// Everything up to the (bumped) revision reads as compacted, so a watcher resuming from
    /// an old revision is told to start over instead of missing events silently.
    pub mark_compacted: bool,
    /// Meta values to set (the new member's identity and membership).
    pub meta: Vec<(String, Vec<u8>)>,
}

/// The store position after [`rebase`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rebased {
    pub revision: i64,
    pub compact_revision: i64,
}

/// Rewrites a copy of a store so that a member can start a new log on it: the consistent index
/// and term are set (lowered, unlike an apply), the revision moved on if asked, and `meta`
/// written, all in one durable transaction.
pub fn rebase(path: &Path, how: &Rebase) -> Result<Rebased> {
    let db = open_backend(path)?;
    let (revision, compacted) = {
        let r = db.begin_read().map_err(MvccError::backend)?;
        let meta = r.open_table(META).map_err(MvccError::backend)?;
        let kv = r.open_table(KV).map_err(MvccError::backend)?;
        let last = match kv.last().map_err(MvccError::backend)? {
            Some((k, _)) => crate::Revision::from_key(k.value()).main,
            None => 0,
        };
        let current = (meta_u64(&meta, "current_rev")? as i64).max(last).max(1);
        (current, meta_u64(&meta, "compact_rev")? as i64)
    };
    let bump = i64::try_from(how.bump_revision)
        .ok()
        .and_then(|b| revision.checked_add(b))
        .ok_or_else(|| {
            MvccError::Backend(format!(
                "a revision bump of {} overflows the revision {revision}",
                how.bump_revision
            ))
        })?;
    let compacted = if how.mark_compacted { bump } else { compacted };
    let mut w = db.begin_write().map_err(MvccError::backend)?;
    w.set_durability(Durability::Immediate)
        .map_err(MvccError::backend)?;
    {
        let mut meta = w.open_table(META).map_err(MvccError::backend)?;
        let marks = [
            ("consistent_index", how.consistent_index),
            ("term", how.term),
            ("current_rev", bump as u64),
            ("compact_rev", compacted as u64),
        ];
        for (name, value) in marks {
            meta.insert(name, &value.to_le_bytes()[..])
                .map_err(MvccError::backend)?;
        }
        for (name, value) in &how.meta {
            meta.insert(name.as_str(), value.as_slice())
                .map_err(MvccError::backend)?;
        }
    }
    w.commit().map_err(MvccError::backend)?;
    Ok(Rebased {
        revision: bump,
        compact_revision: compacted,
    })
}

/// Rewrites the backend at `path` into a new file holding only live pages and moves it into
/// place (a crash leaves the old file or the new one). Returns the sizes before and after;
/// `progress` hears the records copied so far and the total.
pub fn defragment(path: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<(u64, u64)> {
    let size = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.len())
            .map_err(|e| MvccError::Backend(format!("stat {}: {e}", p.display())))
    };
    let before = size(path)?;
    let source = open_backend(path)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".defrag");
    let tmp = std::path::PathBuf::from(tmp);
    {
        let r = source.begin_read().map_err(MvccError::backend)?;
        crate::snapshot::copy_backend(&r, &tmp, progress)?;
    }
    drop(source);
    std::fs::rename(&tmp, path).map_err(|e| {
        MvccError::Backend(format!(
            "install {} as {}: {e}",
            tmp.display(),
            path.display()
        ))
    })?;
    crate::snapshot::sync_parent(path)?;
    Ok((before, size(path)?))
}

/// Writes a new store from another store's records, for restoring a backend of another format
/// (etcd's): [`Import`] is handed to `fill`, and everything it was given is committed in one
/// durable transaction, with the store revision and compaction it reports.
pub fn import(path: &Path, fill: impl FnOnce(&mut Import<'_>) -> Result<()>) -> Result<Rebased> {
    let db = open_backend(path)?;
    let mut w = db.begin_write().map_err(MvccError::backend)?;
    w.set_durability(Durability::Immediate)
        .map_err(MvccError::backend)?;
    let (revision, compacted) = {
        let mut import = Import {
            kv: w.open_table(KV).map_err(MvccError::backend)?,
            leases: w.open_table(LEASES).map_err(MvccError::backend)?,
            meta: Vec::new(),
            revision: 1,
            compacted: 0,
        };
        fill(&mut import)?;
        let revision = import.revision.max(import.compacted);
        let mut meta = w.open_table(META).map_err(MvccError::backend)?;
        for (name, value) in &import.meta {
            meta.insert(name.as_str(), value.as_slice())
                .map_err(MvccError::backend)?;
        }
        for (name, value) in [
            ("current_rev", revision as u64),
            ("compact_rev", import.compacted as u64),
        ] {
            meta.insert(name, &value.to_le_bytes()[..])
                .map_err(MvccError::backend)?;
        }
        (revision, import.compacted)
    };
    w.commit().map_err(MvccError::backend)?;
    Ok(Rebased {
        revision,
        compact_revision: compacted,
    })
}

/// What [`import`] fills a new store with.
pub struct Import<'t> {
    kv: redb::Table<'t, u128, &'static [u8]>,
    leases: redb::Table<'t, i64, &'static [u8]>,
    meta: Vec<(String, Vec<u8>)>,
    revision: i64,
    compacted: i64,
}

impl Import<'_> {
    /// A record at revision (`main`, `sub`): an encoded `mvccpb.KeyValue`, or a deletion's
    /// tombstone (whose KeyValue holds the key; Cairn's also say their revision, which a watch
    /// replaying history reports as the deletion's mod revision).
    pub fn record(&mut self, main: i64, sub: i64, tombstone: bool, kv: &[u8]) -> Result<()> {
        let mut value = Vec::with_capacity(1 + kv.len() + 11);
        if tombstone {
            use prost::Message as _;
            let mut deleted = cairn_proto::mvccpb::KeyValue::decode(kv).map_err(|e| {
                MvccError::Backend(format!("the tombstone at revision {main}: {e}"))
            })?;
            deleted.mod_revision = main;
            value.push(crate::KIND_TOMBSTONE);
            deleted
                .encode(&mut value)
                .map_err(|e| MvccError::Backend(e.to_string()))?;
        } else {
            value.push(crate::KIND_PUT);
            value.extend_from_slice(kv);
        }
        let key = crate::Revision::new(main, sub).to_key();
        self.kv
            .insert(key, value.as_slice())
            .map_err(MvccError::backend)?;
        self.revision = self.revision.max(main);
        Ok(())
    }

    /// A lease, in the lessor's own encoding.
    pub fn lease(&mut self, id: i64, record: &[u8]) -> Result<()> {
        self.leases.insert(id, record).map_err(MvccError::backend)?;
        Ok(())
    }

    /// A meta value the server keeps (its auth record, ...).
    pub fn meta(&mut self, name: &str, value: Vec<u8>) {
        self.meta.push((name.to_string(), value));
    }

    /// The revision up to which the history was compacted.
    pub fn compacted(&mut self, revision: i64) {
        self.compacted = self.compacted.max(revision);
    }
}
