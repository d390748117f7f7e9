//! Writes that are applied but not yet written back to the backend.
//!
//! A redb commit costs tens of microseconds even without an fsync, far more than applying a put in
//! memory. Like etcd's backend batching (commit at most every 100 ms or 10 000 writes), applied
//! batches collect here and are written back in one backend transaction; readers look here before
//! the backend. Durability is the WAL's job: the backend records the consistent index in the same
//! transaction as the data it covers, so after a crash the WAL replays exactly what the backend
//! lacks.

use crate::{KV, LEASES, META, MvccError, Result};
use bytes::Bytes;
use redb::ReadOnlyTable;
use std::collections::{BTreeMap, HashSet};
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

/// Write back once this many revisions wait in memory (etcd's default batch limit).
pub const WRITE_BACK_MAX_RECORDS: usize = 10_000;
/// Write back once the waiting records take this many bytes.
pub const WRITE_BACK_MAX_BYTES: usize = 16 << 20;
/// Write back anything older than this (etcd's default batch interval).
pub const WRITE_BACK_INTERVAL: Duration = Duration::from_millis(100);

/// The store position a written-back batch records in the backend's meta table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Marks {
    pub(crate) consistent_index: u64,
    pub(crate) term: u64,
    pub(crate) current: i64,
    pub(crate) compacted: i64,
}

impl Marks {
    pub(crate) fn entries(&self) -> [(&'static str, u64); 4] {
        [
            ("consistent_index", self.consistent_index),
            ("term", self.term),
            ("current_rev", self.current as u64),
            ("compact_rev", self.compacted as u64),
        ]
    }
}

/// Changes to the backend tables, in memory.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    /// Encoded records of the `kv` table by revision key.
    pub(crate) kv: BTreeMap<u128, Bytes>,
    /// Revision keys that compaction removed; they may already be in the backend.
    pub(crate) removed: Vec<u128>,
    pub(crate) meta: BTreeMap<String, Bytes>,
    /// `None` deletes the lease record.
    pub(crate) leases: BTreeMap<i64, Option<Bytes>>,
    bytes: usize,
    since: Option<Instant>,
    /// Set when the batch is taken for writing back.
    pub(crate) marks: Marks,
}

impl Batch {
    fn touch(&mut self) {
        self.since.get_or_insert_with(Instant::now);
    }

    pub(crate) fn put_kv(&mut self, key: u128, record: Bytes) {
        self.bytes += record.len() + 16;
        self.kv.insert(key, record);
        self.touch();
    }

    pub(crate) fn remove_kv(&mut self, key: u128) {
        if let Some(old) = self.kv.remove(&key) {
            self.bytes = self.bytes.saturating_sub(old.len() + 16);
        }
        // Also delete it from the backend: an earlier write-back may have stored it.
        self.removed.push(key);
        self.bytes += 16;
        self.touch();
    }

    pub(crate) fn put_meta(&mut self, name: &str, value: Bytes) {
        self.bytes += name.len() + value.len();
        self.meta.insert(name.to_owned(), value);
        self.touch();
    }

    pub(crate) fn put_lease(&mut self, id: i64, record: Option<Bytes>) {
        self.bytes += 8 + record.as_ref().map_or(0, Bytes::len);
        self.leases.insert(id, record);
        self.touch();
    }

    /// Whether this batch should be written back now.
    pub(crate) fn due(&self) -> bool {
        self.kv.len() >= WRITE_BACK_MAX_RECORDS
            || self.bytes >= WRITE_BACK_MAX_BYTES
            // A compaction frees backend space only once written back; do not sit on it.
            || !self.removed.is_empty()
            || self.since.is_some_and(|t| t.elapsed() >= WRITE_BACK_INTERVAL)
    }

    /// Puts back a batch whose write-back failed, under the changes made since (which win).
    pub(crate) fn restore(&mut self, failed: &Batch) {
        for (k, v) in &failed.kv {
            if !self.kv.contains_key(k) && !self.removed.contains(k) {
                self.put_kv(*k, v.clone());
            }
        }
        self.removed.extend_from_slice(&failed.removed);
        for (k, v) in &failed.meta {
            if !self.meta.contains_key(k) {
                self.put_meta(k, v.clone());
            }
        }
        for (k, v) in &failed.leases {
            if !self.leases.contains_key(k) {
                self.put_lease(*k, v.clone());
            }
        }
    }

    /// Writes the batch into a backend transaction.
    pub(crate) fn write_to(&self, w: &redb::WriteTransaction) -> Result<()> {
        let mut kv = w.open_table(KV).map_err(MvccError::backend)?;
        for (k, v) in &self.kv {
            kv.insert(*k, v.as_ref()).map_err(MvccError::backend)?;
        }
        for k in &self.removed {
            kv.remove(*k).map_err(MvccError::backend)?;
        }
        let mut meta = w.open_table(META).map_err(MvccError::backend)?;
        for (k, v) in &self.meta {
            meta.insert(k.as_str(), v.as_ref())
                .map_err(MvccError::backend)?;
        }
        for (name, v) in self.marks.entries() {
            meta.insert(name, v.to_le_bytes().as_slice())
                .map_err(MvccError::backend)?;
        }
        let mut leases = w.open_table(LEASES).map_err(MvccError::backend)?;
        for (id, record) in &self.leases {
            match record {
                Some(r) => leases.insert(*id, r.as_ref()).map(|_| ()),
                None => leases.remove(*id).map(|_| ()),
            }
            .map_err(MvccError::backend)?;
        }
        Ok(())
    }
}

/// The layers a read goes through, newest first: the batch being applied to, the batch being
/// written back, then a backend snapshot. A reader must hold the store's state lock while it uses
/// this, so that the layers cannot change under it.
pub(crate) struct KvSource<'a> {
    pub(crate) pending: &'a Batch,
    pub(crate) flushing: Option<&'a Batch>,
    pub(crate) table: &'a ReadOnlyTable<u128, &'static [u8]>,
}

impl KvSource<'_> {
    fn layers(&self) -> impl Iterator<Item = &Batch> {
        std::iter::once(self.pending).chain(self.flushing)
    }

    /// Calls `f` with the record stored at `key`, if any.
    pub(crate) fn get<R>(&self, key: u128, f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
        for layer in self.layers() {
            if let Some(v) = layer.kv.get(&key) {
                return Ok(Some(f(v)));
            }
        }
        let raw = self.table.get(key).map_err(MvccError::backend)?;
        Ok(raw.map(|g| f(g.value())))
    }

    /// The in-memory part of `range`: records (newest layer wins) and revisions removed by a
    /// compaction not yet written back. Cheap (reference counts, no copies of values), so it is
    /// taken under the state lock and used after the lock is gone.
    pub(crate) fn memory_in(&self, range: RangeInclusive<u128>) -> MemoryView {
        // Compaction removes old revisions; they are never in the range of an ordinary read, but
        // a full scan (hash) must skip those not yet removed from the backend.
        let removed: HashSet<u128> = self
            .layers()
            .flat_map(|l| l.removed.iter().copied())
            .collect();
        let mut records: BTreeMap<u128, Bytes> = BTreeMap::new();
        // Oldest layer first so that newer layers overwrite.
        for layer in self
            .flushing
            .into_iter()
            .chain(std::iter::once(self.pending))
        {
            for (k, v) in layer.kv.range(range.clone()) {
                if !removed.contains(k) {
                    records.insert(*k, v.clone());
                }
            }
        }
        MemoryView { records, removed }
    }

    /// The record at `key` if it is in memory (a cheap reference-counted copy).
    pub(crate) fn memory_get(&self, key: u128) -> Option<Bytes> {
        self.layers().find_map(|l| l.kv.get(&key).cloned())
    }

    /// The lowest revision key held in memory: every record below it is in the backend only,
    /// so a reader need not look for it in the layers.
    pub(crate) fn lowest_in_memory(&self) -> u128 {
        self.layers()
            .filter_map(|l| l.kv.first_key_value().map(|(k, _)| *k))
            .min()
            .unwrap_or(u128::MAX)
    }
}

/// What the in-memory layers held of a range of revisions when a reader looked, kept so the
/// reader can finish its work against a backend snapshot taken at the same moment without
/// holding the state lock (see [`crate::Store::range`]).
pub(crate) struct MemoryView {
    records: BTreeMap<u128, Bytes>,
    removed: HashSet<u128>,
}

impl MemoryView {
    /// Calls `f` for every record in `range` of this view merged with `table`, in key order.
    pub(crate) fn scan(
        &self,
        table: &ReadOnlyTable<u128, &'static [u8]>,
        range: RangeInclusive<u128>,
        mut f: impl FnMut(u128, &[u8]) -> Result<()>,
    ) -> Result<()> {
        let mut memory = self.records.range(range.clone()).peekable();
        for item in table.range(range).map_err(MvccError::backend)? {
            let (k, v) = item.map_err(MvccError::backend)?;
            let key = k.value();
            while let Some((mk, mv)) = memory.next_if(|(mk, _)| **mk < key) {
                f(*mk, mv)?;
            }
            // A record both in memory and in the backend is the same record, caught between its
            // write-back and the batch being dropped.
            if let Some((mk, mv)) = memory.next_if(|(mk, _)| **mk == key) {
                f(*mk, mv)?;
            } else if !self.removed.contains(&key) {
                f(key, v.value())?;
            }
        }
        for (mk, mv) in memory {
            f(*mk, mv)?;
        }
        Ok(())
    }
}

/// Overlays a backend table's rows with the in-memory layers (oldest first) of a keyed table.
pub(crate) fn overlay<K: Ord + Clone, V: Clone>(
    disk: Vec<(K, V)>,
    layers: &[&BTreeMap<K, Option<V>>],
) -> Vec<(K, V)> {
    let mut all: BTreeMap<K, Option<V>> = disk.into_iter().map(|(k, v)| (k, Some(v))).collect();
    for layer in layers {
        for (k, v) in layer.iter() {
            all.insert(k.clone(), v.clone());
        }
    }
    all.into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
}
