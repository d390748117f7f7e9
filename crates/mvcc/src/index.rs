//! The in-memory key index: for every key, the revisions at which it was written or deleted.
//!
//! The index answers "which revision of which keys are visible at revision R" without touching
//! the backend; the backend is then read only for the values that are actually returned.

use smallvec::SmallVec;
use std::collections::BTreeMap;
use std::ops::Bound;

/// A point in the store's history: `main` is the store revision (one per write transaction),
/// `sub` orders the changes within that transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Revision {
    pub main: i64,
    pub sub: i64,
}

impl Revision {
    pub fn new(main: i64, sub: i64) -> Self {
        Revision { main, sub }
    }

    /// The backend key: big-endian order of `(main, sub)` equals numeric order of the `u128`.
    pub fn to_key(self) -> u128 {
        ((self.main as u64 as u128) << 64) | self.sub as u64 as u128
    }

    pub fn from_key(key: u128) -> Self {
        Revision {
            main: (key >> 64) as u64 as i64,
            sub: key as u64 as i64,
        }
    }
}

/// One key's history, oldest first. A tombstone ends a generation of the key.
///
/// Most keys have one revision between compactions: it is kept inline, so such a key costs no
/// allocation beyond its name (a `Vec` would allocate room for four).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    entries: SmallVec<[(Revision, bool); 1]>,
    /// Create revision, version and lease of the live generation; meaningless after a tombstone.
    /// Keeping the lease here lets the lessor find leased keys without reading values.
    create: i64,
    version: i64,
    lease: i64,
}

impl History {
    /// The revision holding the key's value at store revision `at`, unless it was deleted then.
    pub fn visible_at(&self, at: i64) -> Option<Revision> {
        let pos = self.entries.partition_point(|(r, _)| r.main <= at);
        match pos.checked_sub(1).map(|p| self.entries[p]) {
            Some((rev, false)) => Some(rev),
            _ => None,
        }
    }

    /// The latest revision if the key currently exists.
    pub fn live(&self) -> Option<Revision> {
        match self.entries.last() {
            Some((rev, false)) => Some(*rev),
            _ => None,
        }
    }

    /// `(create_revision, version)` a put at `rev` gets.
    pub fn next_put(&self, rev: i64) -> (i64, i64) {
        match self.live() {
            Some(_) => (self.create, self.version + 1),
            None => (rev, 1),
        }
    }

    pub fn record_put(&mut self, rev: Revision, create: i64, version: i64, lease: i64) {
        self.entries.push((rev, false));
        self.create = create;
        self.version = version;
        self.lease = lease;
    }

    pub fn record_delete(&mut self, rev: Revision) {
        self.entries.push((rev, true));
        self.create = 0;
        self.version = 0;
        self.lease = 0;
    }

    /// The key as it is now, without its value: `(mod revision, create revision, version,
    /// lease)`, or None if it does not exist. Everything a keys-only read at the current
    /// revision answers, known without reading the record.
    pub fn live_meta(&self) -> Option<(Revision, i64, i64, i64)> {
        self.live()
            .map(|rev| (rev, self.create, self.version, self.lease))
    }

    /// The lease the key is attached to now (0: none, or the key does not exist).
    pub fn live_lease(&self) -> i64 {
        if self.live().is_some() { self.lease } else { 0 }
    }

    /// Drops history that revision `at` makes unreachable: everything at or below `at` except the
    /// value visible at `at`. Removed revisions are appended to `removed`.
    pub fn compact(&mut self, at: i64, removed: &mut Vec<Revision>) {
        let pos = self.entries.partition_point(|(r, _)| r.main <= at);
        let keep_from = match pos.checked_sub(1).map(|p| self.entries[p]) {
            Some((_, false)) => pos - 1,
            _ => pos,
        };
        removed.extend(self.entries.drain(..keep_from).map(|(r, _)| r));
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The revision holding the value the key had just before `rev`, if it existed then.
    pub fn prev_before(&self, rev: Revision) -> Option<Revision> {
        let pos = self.entries.partition_point(|(r, _)| *r < rev);
        match pos.checked_sub(1).map(|p| self.entries[p]) {
            Some((r, false)) => Some(r),
            _ => None,
        }
    }

    pub fn revisions(&self) -> impl Iterator<Item = (Revision, bool)> + '_ {
        self.entries.iter().copied()
    }
}

/// key → history, ordered by key.
///
/// Keys are owned boxes of exactly their bytes: a `Bytes` taken from a request would keep the
/// request's buffer alive, and one cloned from another `Bytes` allocates its shared header too.
#[derive(Debug, Default, Clone)]
pub struct KeyIndex {
    map: BTreeMap<Box<[u8]>, History>,
    /// Keys whose latest event is a put (etcd's `keys_total`).
    live: usize,
}

/// The keys `[key, end)` addressed by an etcd range: `end` empty means only `key`; `end == [0]`
/// means every key ≥ `key`.
pub fn key_bounds<'a>(key: &'a [u8], end: &'a [u8]) -> (Bound<&'a [u8]>, Bound<&'a [u8]>) {
    if end.is_empty() {
        (Bound::Included(key), Bound::Included(key))
    } else if end == [0] {
        (Bound::Included(key), Bound::Unbounded)
    } else {
        (Bound::Included(key), Bound::Excluded(end))
    }
}

/// Applies `change` to `history`, keeping the count of live keys.
fn track_live(live: &mut usize, history: &mut History, change: impl FnOnce(&mut History)) {
    let was_live = history.live().is_some();
    change(history);
    match (was_live, history.live().is_some()) {
        (false, true) => *live += 1,
        (true, false) => *live -= 1,
        _ => {}
    }
}

impl KeyIndex {
    pub fn get(&self, key: &[u8]) -> Option<&History> {
        self.map.get(key)
    }

    /// Changes `key`'s history (an empty one for a new key).
    pub fn update(&mut self, key: &[u8], change: impl FnOnce(&mut History)) {
        // Only a new key allocates its name; the usual case, a key written before, does not.
        if let Some(history) = self.map.get_mut(key) {
            track_live(&mut self.live, history, change);
            return;
        }
        track_live(
            &mut self.live,
            self.map.entry(Box::from(key)).or_default(),
            change,
        );
    }

    /// Keys that exist now (not deleted).
    pub fn live_len(&self) -> usize {
        self.live
    }

    /// Histories of the keys in the etcd range `[key, end)`, in key order.
    pub fn range<'s>(
        &'s self,
        key: &'s [u8],
        end: &'s [u8],
    ) -> Box<dyn Iterator<Item = (&'s [u8], &'s History)> + 's> {
        let (lo, hi) = key_bounds(key, end);
        if let (Bound::Included(l), Bound::Excluded(h)) = (lo, hi)
            && l >= h
        {
            return Box::new(std::iter::empty());
        }
        Box::new(self.map.range::<[u8], _>((lo, hi)).map(|(k, h)| (&**k, h)))
    }

    /// Like [`KeyIndex::range`], but only the keys after `after` (for a range read in chunks).
    pub fn range_after<'s>(
        &'s self,
        key: &'s [u8],
        end: &'s [u8],
        after: &'s [u8],
    ) -> Box<dyn Iterator<Item = (&'s [u8], &'s History)> + 's> {
        let (_, hi) = key_bounds(key, end);
        if let Bound::Excluded(h) | Bound::Included(h) = hi
            && after >= h
        {
            return Box::new(std::iter::empty());
        }
        Box::new(
            self.map
                .range::<[u8], _>((Bound::Excluded(after), hi))
                .map(|(k, h)| (&**k, h)),
        )
    }

    /// Compacts every key at `at`; returns the backend revisions to delete.
    pub fn compact(&mut self, at: i64) -> Vec<Revision> {
        let mut removed = Vec::new();
        self.map.retain(|_, h| {
            h.compact(at, &mut removed);
            !h.is_empty()
        });
        removed
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_keys_are_counted_through_puts_deletes_and_compaction() {
        let mut idx = KeyIndex::default();
        idx.update(b"a", |h| h.record_put(r(2), 2, 1, 0));
        idx.update(b"b", |h| h.record_put(r(3), 3, 1, 0));
        idx.update(b"a", |h| h.record_put(r(4), 2, 2, 0));
        assert_eq!(idx.live_len(), 2);
        idx.update(b"a", |h| h.record_delete(r(5)));
        assert_eq!((idx.live_len(), idx.len()), (1, 2));
        idx.update(b"a", |h| h.record_put(r(6), 6, 1, 0));
        idx.update(b"b", |h| h.record_delete(r(7)));
        assert_eq!(idx.live_len(), 1);
        idx.compact(7);
        assert_eq!((idx.live_len(), idx.len()), (1, 1));
    }

    fn r(main: i64) -> Revision {
        Revision::new(main, 0)
    }

    #[test]
    fn revision_key_orders_like_tuple() {
        let a = Revision::new(1, 5);
        let b = Revision::new(2, 0);
        assert!(a.to_key() < b.to_key());
        assert_eq!(Revision::from_key(a.to_key()), a);
    }

    #[test]
    fn visibility_and_compaction() {
        let mut h = History::default();
        h.record_put(r(2), 2, 1, 0);
        h.record_put(r(4), 2, 2, 7);
        assert_eq!(h.live_lease(), 7);
        h.record_delete(r(6));
        assert_eq!(h.live_lease(), 0);
        h.record_put(r(8), 8, 1, 0);
        assert_eq!(h.visible_at(1), None);
        assert_eq!(h.visible_at(3), Some(r(2)));
        assert_eq!(h.visible_at(5), Some(r(4)));
        assert_eq!(h.visible_at(7), None);
        assert_eq!(h.visible_at(9), Some(r(8)));
        let mut removed = vec![];
        h.compact(5, &mut removed);
        assert_eq!(removed, vec![r(2)]);
        assert_eq!(h.visible_at(5), Some(r(4)));
        removed.clear();
        h.compact(7, &mut removed);
        assert_eq!(removed, vec![r(4), r(6)]);
        assert_eq!(h.visible_at(9), Some(r(8)));
    }

    #[test]
    fn bounds() {
        let mut idx = KeyIndex::default();
        for k in ["a", "b", "c"] {
            idx.update(k.as_bytes(), |h| h.record_put(r(1), 1, 1, 0));
        }
        let keys = |k: &str, e: &[u8]| {
            idx.range(k.as_bytes(), e)
                .map(|(k, _)| String::from_utf8(k.to_vec()).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(keys("b", b""), vec!["b"]);
        assert_eq!(keys("b", b"\0"), vec!["b", "c"]);
        assert_eq!(keys("a", b"c"), vec!["a", "b"]);
        assert_eq!(keys("c", b"a"), Vec::<String>::new());
        assert_eq!(keys("\0", b"\0"), vec!["a", "b", "c"]);
    }
}

#[cfg(test)]
mod memory_probe {
    use super::*;

    fn rss_bytes() -> usize {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
        pages * 4096
    }

    /// Bytes of memory the index takes per key at 1M keys (run with --ignored --nocapture).
    #[test]
    #[ignore]
    fn index_bytes_per_key() {
        let before = rss_bytes();
        let mut idx = KeyIndex::default();
        for i in 0..1_000_000u64 {
            let key = bytes::Bytes::copy_from_slice(format!("{i:08}").as_bytes());
            idx.update(&key, |h| {
                h.record_put(Revision::new(i as i64 + 1, 0), 1, 1, 0)
            });
        }
        let after = rss_bytes();
        println!(
            "sequential: {} keys, {} bytes per key",
            idx.len(),
            (after - before) / idx.len()
        );
        let before = rss_bytes();
        let mut idx2 = KeyIndex::default();
        for i in 0..1_000_000u64 {
            let n = i.wrapping_mul(2654435761) % 1_000_000_007;
            let key = bytes::Bytes::copy_from_slice(format!("{n:010}").as_bytes());
            idx2.update(&key, |h| {
                h.record_put(Revision::new(i as i64 + 1, 0), 1, 1, 0)
            });
        }
        let after = rss_bytes();
        println!(
            "random: {} keys, {} bytes per key",
            idx2.len(),
            (after - before) / idx2.len()
        );
    }
}
