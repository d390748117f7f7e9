//! Reading etcd's write-ahead log (`member/wal/*.wal`), for a member that starts on a data dir
//! etcd wrote.
//!
//! A WAL file is a sequence of frames: a little-endian u64 whose low 56 bits are the length of
//! a `walpb.Record` (the top byte, when its high bit is set, counts padding bytes up to 8-byte
//! alignment), then the record and its padding. A record has a type (metadata, entry, hard
//! state, CRC, snapshot), its data, and a CRC-32C running over the data of every record before
//! it (a CRC record at the start of each file carries the running value over). A zero length
//! is the preallocated end of a file. Files are named `<seq>-<index>.wal` and read in order.

use prost::Message;
use std::path::{Path, PathBuf};

const METADATA: i64 = 1;
const ENTRY: i64 = 2;
const STATE: i64 = 3;
const CRC: i64 = 4;
const SNAPSHOT: i64 = 5;

/// etcd's WAL frames are limited to 10 MB (and entries to the request limit below it).
const MAX_RECORD: u64 = 10 * 1024 * 1024;

#[derive(Clone, PartialEq, prost::Message)]
struct Record {
    #[prost(int64, tag = "1")]
    kind: i64,
    #[prost(uint32, tag = "2")]
    crc: u32,
    #[prost(bytes = "vec", tag = "3")]
    data: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Metadata {
    #[prost(uint64, tag = "1")]
    node_id: u64,
    #[prost(uint64, tag = "2")]
    cluster_id: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct SnapshotMark {
    #[prost(uint64, tag = "1")]
    index: u64,
    #[prost(uint64, tag = "2")]
    term: u64,
}

/// raftpb.HardState.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub(crate) struct HardState {
    #[prost(uint64, tag = "1")]
    pub term: u64,
    #[prost(uint64, tag = "2")]
    pub vote: u64,
    #[prost(uint64, tag = "3")]
    pub commit: u64,
}

/// raftpb.Entry.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Entry {
    #[prost(int32, tag = "1")]
    pub kind: i32,
    #[prost(uint64, tag = "2")]
    pub term: u64,
    #[prost(uint64, tag = "3")]
    pub index: u64,
    #[prost(bytes = "vec", tag = "4")]
    pub data: Vec<u8>,
}

pub(crate) const ENTRY_NORMAL: i32 = 0;
pub(crate) const ENTRY_CONF_CHANGE: i32 = 1;

/// raftpb.ConfChange.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ConfChange {
    #[prost(int32, tag = "2")]
    pub kind: i32,
    #[prost(uint64, tag = "3")]
    pub node_id: u64,
    #[prost(bytes = "vec", tag = "4")]
    pub context: Vec<u8>,
}

pub(crate) const CONF_ADD: i32 = 0;
pub(crate) const CONF_REMOVE: i32 = 1;
pub(crate) const CONF_UPDATE: i32 = 2;
pub(crate) const CONF_ADD_LEARNER: i32 = 3;

/// What an etcd member's WAL says.
#[derive(Debug, Default)]
pub(crate) struct EtcdWal {
    pub member_id: u64,
    pub cluster_id: u64,
    pub hard_state: HardState,
    /// The newest snapshot mark: index and term.
    pub snapshot: (u64, u64),
    /// Every entry the files still hold, before and after the snapshot mark (configuration
    /// changes before it describe the membership), in index order (a later entry at an index
    /// replaces the earlier one and everything after it, as Raft overwrote it).
    pub entries: Vec<Entry>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum EtcdWalError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: damaged etcd WAL: {what}")]
    Damaged { path: PathBuf, what: String },
    #[error("{0}: no etcd WAL files")]
    Empty(PathBuf),
}

/// The `.wal` files of `dir` in order.
fn wal_files(dir: &Path) -> Result<Vec<PathBuf>, EtcdWalError> {
    let io = |source| EtcdWalError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(EtcdWalError::Empty(dir.to_path_buf()));
    }
    Ok(files)
}

/// Whether `dir` holds etcd's WAL files (not Cairn's: those start with Cairn's own magic).
pub(crate) fn is_etcd_wal(dir: &Path) -> bool {
    let Ok(files) = wal_files(dir) else {
        return false;
    };
    let Ok(bytes) = std::fs::read(&files[0]) else {
        return false;
    };
    // etcd's first frame is a CRC record: a small length, then type 4.
    let mut at = 0;
    matches!(frame(&bytes, &mut at), Ok(Some(record)) if record.kind == CRC)
}

/// The next record at `at`; `None` at the end of the file's records.
fn frame(bytes: &[u8], at: &mut usize) -> Result<Option<Record>, String> {
    let Some(len) = bytes.get(*at..*at + 8) else {
        return Ok(None);
    };
    let field = u64::from_le_bytes(len.try_into().map_err(|_| "a short frame")?);
    if field == 0 {
        return Ok(None);
    }
    let length = field & !(0xff << 56);
    let padding = if field >> 63 == 1 {
        (field >> 56) & 0x7
    } else {
        0
    };
    if length >= MAX_RECORD {
        return Err(format!("a record of {length} bytes"));
    }
    let start = *at + 8;
    let end = start + length as usize;
    let Some(body) = bytes.get(start..end) else {
        return Err("a record cut short".into());
    };
    let record = Record::decode(body).map_err(|e| format!("a record: {e}"))?;
    *at = end + padding as usize;
    Ok(Some(record))
}

/// Reads every record of the WAL in `dir`, checking the running CRC. A record cut short at
/// the very end of the last file (a write a crash interrupted) ends the log, as etcd treats it.
pub(crate) fn read(dir: &Path) -> Result<EtcdWal, EtcdWalError> {
    let files = wal_files(dir)?;
    let mut wal = EtcdWal::default();
    let mut crc = 0u32;
    for (n, path) in files.iter().enumerate() {
        let last_file = n + 1 == files.len();
        let damaged = |what: String| EtcdWalError::Damaged {
            path: path.clone(),
            what,
        };
        let bytes = std::fs::read(path).map_err(|source| EtcdWalError::Io {
            path: path.clone(),
            source,
        })?;
        let mut at = 0;
        loop {
            let record = match frame(&bytes, &mut at) {
                Ok(Some(record)) => record,
                Ok(None) => break,
                Err(_) if last_file => break,
                Err(what) => return Err(damaged(what)),
            };
            if record.kind == CRC {
                if crc != 0 && record.crc != crc {
                    return Err(damaged(
                        "the CRC carried into the file does not match".into(),
                    ));
                }
                crc = record.crc;
                continue;
            }
            crc = crc32c::crc32c_append(crc, &record.data);
            if record.crc != crc {
                if last_file {
                    break;
                }
                return Err(damaged("a record's CRC does not match".into()));
            }
            let bad = |what: &str, e: prost::DecodeError| damaged(format!("{what}: {e}"));
            match record.kind {
                METADATA => {
                    let meta =
                        Metadata::decode(record.data.as_slice()).map_err(|e| bad("metadata", e))?;
                    wal.member_id = meta.node_id;
                    wal.cluster_id = meta.cluster_id;
                }
                ENTRY => {
                    let entry =
                        Entry::decode(record.data.as_slice()).map_err(|e| bad("an entry", e))?;
                    // A later entry at an index replaces the earlier one and what followed.
                    let keep = wal.entries.partition_point(|e| e.index < entry.index);
                    wal.entries.truncate(keep);
                    wal.entries.push(entry);
                }
                STATE => {
                    if !record.data.is_empty() {
                        wal.hard_state = HardState::decode(record.data.as_slice())
                            .map_err(|e| bad("a hard state", e))?;
                    }
                }
                SNAPSHOT => {
                    let mark = SnapshotMark::decode(record.data.as_slice())
                        .map_err(|e| bad("a snapshot mark", e))?;
                    if mark.index >= wal.snapshot.0 {
                        wal.snapshot = (mark.index, mark.term);
                    }
                }
                other => return Err(damaged(format!("a record of unknown type {other}"))),
            }
        }
    }
    Ok(wal)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes records as etcd's encoder frames them (the running CRC included).
    pub(crate) struct Writer {
        pub bytes: Vec<u8>,
        crc: u32,
    }

    impl Writer {
        pub(crate) fn new() -> Writer {
            let mut w = Writer {
                bytes: Vec::new(),
                crc: 0,
            };
            w.push(CRC, Vec::new());
            w
        }

        fn push(&mut self, kind: i64, data: Vec<u8>) {
            let crc = if kind == CRC {
                self.crc
            } else {
                self.crc = crc32c::crc32c_append(self.crc, &data);
                self.crc
            };
            let body = Record { kind, crc, data }.encode_to_vec();
            let padding = (8 - body.len() % 8) % 8;
            let mut field = body.len() as u64;
            if padding != 0 {
                field |= (0x80 | padding as u64) << 56;
            }
            self.bytes.extend_from_slice(&field.to_le_bytes());
            self.bytes.extend_from_slice(&body);
            self.bytes.extend(std::iter::repeat_n(0u8, padding));
        }

        pub(crate) fn metadata(&mut self, member: u64, cluster: u64) {
            let meta = Metadata {
                node_id: member,
                cluster_id: cluster,
            };
            self.push(METADATA, meta.encode_to_vec());
        }

        pub(crate) fn snapshot(&mut self, index: u64, term: u64) {
            self.push(SNAPSHOT, SnapshotMark { index, term }.encode_to_vec());
        }

        pub(crate) fn entry(&mut self, index: u64, term: u64, kind: i32, data: Vec<u8>) {
            let entry = Entry {
                kind,
                term,
                index,
                data,
            };
            self.push(ENTRY, entry.encode_to_vec());
        }

        pub(crate) fn state(&mut self, term: u64, vote: u64, commit: u64) {
            self.push(STATE, HardState { term, vote, commit }.encode_to_vec());
        }
    }

    #[test]
    fn a_wal_reads_back_with_overwritten_entries_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::new();
        w.metadata(7, 9);
        w.snapshot(0, 0);
        for i in 1..=5 {
            w.entry(i, 1, ENTRY_NORMAL, vec![i as u8]);
        }
        // A new leader overwrote 4 and 5.
        w.entry(4, 2, ENTRY_NORMAL, b"x".to_vec());
        w.state(2, 7, 4);
        let mut bytes = w.bytes.clone();
        bytes.extend(std::iter::repeat_n(0u8, 64)); // preallocated tail
        std::fs::write(
            dir.path().join("0000000000000000-0000000000000000.wal"),
            &bytes,
        )
        .unwrap();
        assert!(is_etcd_wal(dir.path()));
        let wal = read(dir.path()).unwrap();
        assert_eq!((wal.member_id, wal.cluster_id), (7, 9));
        assert_eq!(
            wal.hard_state,
            HardState {
                term: 2,
                vote: 7,
                commit: 4
            }
        );
        let got: Vec<(u64, u64)> = wal.entries.iter().map(|e| (e.index, e.term)).collect();
        assert_eq!(got, vec![(1, 1), (2, 1), (3, 1), (4, 2)]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]
        /// Whatever the bytes, reading a WAL ends with entries or an error, never a panic.
        #[test]
        fn any_damage_is_read_or_refused(
            flips in proptest::collection::vec(
                (proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<u8>()),
                1..6,
            ),
            cut in proptest::option::of(proptest::prelude::any::<proptest::sample::Index>()),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut w = Writer::new();
            w.metadata(1, 2);
            for i in 1..40u64 {
                w.entry(i, 1, ENTRY_NORMAL, vec![i as u8; (i * 7) as usize]);
            }
            w.state(1, 1, 39);
            let mut bytes = w.bytes.clone();
            for (at, value) in flips {
                let at = at.index(bytes.len());
                bytes[at] ^= value | 1;
            }
            if let Some(cut) = cut {
                bytes.truncate(cut.index(bytes.len()));
            }
            std::fs::write(dir.path().join("0000000000000000-0000000000000000.wal"), &bytes).unwrap();
            let _ = read(dir.path());
        }
    }

    #[test]
    fn a_damaged_record_is_refused_but_a_torn_tail_ends_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::new();
        w.metadata(1, 1);
        w.entry(1, 1, ENTRY_NORMAL, b"first".to_vec());
        w.entry(2, 1, ENTRY_NORMAL, b"second".to_vec());
        let first = w.bytes.windows(5).position(|b| b == b"first").unwrap();
        let path = dir.path().join("0000000000000000-0000000000000000.wal");
        // Cut in the middle of the last record: the log ends before it.
        std::fs::write(&path, &w.bytes[..w.bytes.len() - 5]).unwrap();
        assert_eq!(read(dir.path()).unwrap().entries.len(), 1);
        // A changed byte in a record that is not the last file's tail is damage.
        let mut flipped = w.bytes.clone();
        flipped[first] ^= 0xff;
        std::fs::write(&path, &flipped).unwrap();
        std::fs::write(
            dir.path().join("0000000000000001-0000000000000003.wal"),
            Writer::new().bytes,
        )
        .unwrap();
        assert!(matches!(
            read(dir.path()),
            Err(EtcdWalError::Damaged { .. })
        ));
    }
}
