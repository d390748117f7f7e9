//! The in-memory view of the durable Raft log that `raft::RawNode` reads through its `Storage`
//! trait. Everything in it is also in the WAL; it is rebuilt from the WAL on start.

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};
use std::cell::Cell;

#[derive(Debug, Default)]
pub struct LogStore {
    pub(crate) hard_state: HardState,
    pub(crate) conf_state: ConfState,
    /// Index and term of the last entry folded into the state machine by a log compaction.
    pub(crate) snap_index: u64,
    pub(crate) snap_term: u64,
    /// Entries above `snap_index`, contiguous.
    pub(crate) entries: Vec<Entry>,
    /// The latest copy of the state machine made for members too far behind for the log
    /// (metadata only; the data travels beside Raft, see `Transport::send_snapshot`).
    pub(crate) prepared: Option<Snapshot>,
    /// Raft asked for a snapshot that is not prepared: the node thread has one made.
    pub(crate) wanted: Cell<bool>,
}

impl LogStore {
    pub fn first(&self) -> u64 {
        self.snap_index + 1
    }

    pub fn last(&self) -> u64 {
        self.entries.last().map_or(self.snap_index, |e| e.index)
    }

    /// Appends entries, replacing any suffix they overwrite.
    pub fn append(&mut self, ents: &[Entry]) {
        let Some(first) = ents.first() else { return };
        let keep = first.index.saturating_sub(self.first()) as usize;
        self.entries.truncate(keep);
        self.entries.extend_from_slice(ents);
    }

    /// Replaces the log with a snapshot received from the leader.
    pub fn apply_snapshot(&mut self, meta: &SnapshotMetadata) {
        self.entries.clear();
        self.snap_index = meta.index;
        self.snap_term = meta.term;
        self.conf_state = meta.get_conf_state().clone();
        self.hard_state.commit = self.hard_state.commit.max(meta.index);
    }

    /// Where a compaction at `index` should stop so that followers a little behind can still
    /// catch up from the log: at most `max_entries` entries at or below `index` are kept, and
    /// no more of them than `max_bytes` of data, so a margin of large entries cannot hold
    /// gigabytes in memory (a follower further behind gets a snapshot instead).
    pub fn catch_up_floor(&self, index: u64, max_entries: u64, max_bytes: u64) -> u64 {
        let by_count = index.saturating_sub(max_entries);
        let mut kept = 0u64;
        for e in self.entries.iter().rev().skip_while(|e| e.index > index) {
            if e.index <= by_count {
                break;
            }
            kept += e.data.len() as u64;
            if kept > max_bytes {
                return e.index;
            }
        }
        by_count
    }

    /// Drops the entries at or below `index` (which the state machine has made durable).
    pub fn compact(&mut self, index: u64, term: u64) {
        if index <= self.snap_index {
            return;
        }
        let drop = (index - self.snap_index).min(self.entries.len() as u64) as usize;
        self.entries.drain(..drop);
        self.snap_index = index;
        self.snap_term = term;
    }
}

impl Storage for LogStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState {
            hard_state: self.hard_state.clone(),
            conf_state: self.conf_state.clone(),
        })
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let lo = (low - self.first()) as usize;
        let hi = (high - self.first()) as usize;
        let mut ents = self.entries[lo..hi].to_vec();
        raft::util::limit_size(&mut ents, max_size.into());
        Ok(ents)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.snap_index {
            return Ok(self.snap_term);
        }
        if idx < self.snap_index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.last() {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(self.entries[(idx - self.first()) as usize].term)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        // A prepared copy serves while the log still continues from it and its configuration
        // includes the member (one added after the copy was made would refuse it); otherwise
        // a new one is made off this thread, and raft asks again on its next attempt.
        if let Some(s) = &self.prepared {
            let meta = s.get_metadata();
            let conf = meta.get_conf_state();
            let includes = conf.voters.contains(&to) || conf.learners.contains(&to);
            if meta.index >= request_index && meta.index >= self.snap_index && includes {
                return Ok(s.clone());
            }
        }
        self.wanted.set(true);
        Err(raft::Error::Store(
            StorageError::SnapshotTemporarilyUnavailable,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ent(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            ..Default::default()
        }
    }

    #[test]
    fn the_catch_up_margin_is_bounded_by_entries_and_by_bytes() {
        let mut s = LogStore::default();
        let big: Vec<Entry> = (1..=100)
            .map(|i| Entry {
                data: vec![0u8; 1000],
                ..ent(i, 1)
            })
            .collect();
        s.append(&big);
        // Small entries: the count decides.
        assert_eq!(s.catch_up_floor(90, 10, 1 << 20), 80);
        assert_eq!(s.catch_up_floor(5, 10, 1 << 20), 0);
        // Large ones: no more than 5000 bytes stay at or below the compaction point.
        assert_eq!(s.catch_up_floor(90, 50, 5000), 85);
        // Entries above the compaction point do not count.
        assert_eq!(s.catch_up_floor(60, 50, 3000), 57);
    }

    #[test]
    fn append_overwrite_and_compact() {
        let mut s = LogStore::default();
        s.append(&[ent(1, 1), ent(2, 1), ent(3, 1)]);
        s.append(&[ent(3, 2), ent(4, 2)]);
        assert_eq!(s.last(), 4);
        assert_eq!(s.term(3).ok(), Some(2));
        s.compact(2, 1);
        assert_eq!(s.first(), 3);
        assert_eq!(s.term(2).ok(), Some(1));
        assert!(s.term(1).is_err());
        let got = s
            .entries(3, 5, None, GetEntriesContext::empty(false))
            .unwrap();
        assert_eq!(got.iter().map(|e| e.index).collect::<Vec<_>>(), vec![3, 4]);
        assert!(
            s.entries(2, 4, None, GetEntriesContext::empty(false))
                .is_err()
        );
    }
}
