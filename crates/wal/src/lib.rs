//! Cairn's write-ahead log: the durable Raft log of one member.
//!
//! Owns: the files under the WAL directory, their byte format, group commit (many records, one
//! `fdatasync`), torn-tail repair on open, and refusal to open when a record in the middle of the
//! log is corrupt.
//!
//! Must not: know what an entry means. Entry payloads, hard states and snapshot metadata are
//! opaque bytes encoded by the Raft layer; the WAL only knows each entry's index and term, which it
//! needs to resolve overwritten log suffixes on replay.
//!
//! # On-disk format
//!
//! The directory holds segments named `{seq:016x}-{first_index:016x}.wal`, read in `seq` order.
//! A segment is a sequence of records:
//!
//! ```text
//! magic    u32 LE  0x4341_574C ("LWAC")
//! len      u32 LE  payload length
//! kind     u8      1 = entry, 2 = hard state, 3 = snapshot marker
//! crc      u32 LE  CRC-32C over len, kind and payload
//! payload  [len]
//! ```
//!
//! Entry payload: `index u64 LE, term u64 LE, data` (data = the encoded Raft entry).
//! Hard state payload: opaque. Snapshot payload: `index u64 LE, term u64 LE, data` (data = the
//! encoded snapshot metadata).
//!
//! A snapshot starts a fresh segment holding the snapshot marker, the hard state and every entry
//! above the snapshot index; all older segments are then deleted. Replay therefore never needs a
//! segment older than the newest snapshot.
//!
//! Segments are preallocated to their full size when created (`fallocate`), so the bytes after
//! the last record read as zeros and replay stops at the first all-zero tail. Preallocation is
//! about latency: an `fdatasync` after overwriting allocated space need not also persist a new
//! file size, which on this project's reference disk makes a small durable write ~30% cheaper
//! than appending (etcd preallocates its WAL for the same reason).
//!
//! # Crash safety
//!
//! Records are only acknowledged after [`Wal::sync`] has returned, which issues one
//! `fdatasync` for everything appended since the previous sync. A crash can thus leave at most a
//! partially written tail in the last segment: on open, a record that fails to decode, with
//! non-zero bytes from there on, is treated as a torn tail and zeroed *only if* no valid record
//! follows it; otherwise the log is corrupt in the middle and [`Wal::open`] fails with
//! [`WalError::Corrupt`] rather than silently dropping acknowledged data.

use bytes::Bytes;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const MAGIC: u32 = 0x4341_574C;
const HEADER_LEN: usize = 13;
const KIND_ENTRY: u8 = 1;
const KIND_HARD_STATE: u8 = 2;
const KIND_SNAPSHOT: u8 = 3;
/// Upper bound for one record's payload: larger lengths are corruption, not data, and larger
/// records are refused when appended.
pub const MAX_RECORD_LEN: u32 = 256 << 20;
/// The largest entry data an entry record can carry (the record also holds index and term).
pub const MAX_ENTRY_DATA_LEN: usize = MAX_RECORD_LEN as usize - 16;
/// A segment grows to about this size before a new one is started.
const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;

/// Errors from the WAL.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("wal: io error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "wal: corrupt record in {segment} at offset {offset}: {reason}; valid records follow it, so this is not a torn write. Refusing to start to avoid losing acknowledged data"
    )]
    Corrupt {
        segment: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("wal: invalid segment file name {0}")]
    BadSegmentName(PathBuf),
    #[error(
        "wal: entry {index} holds {len} bytes, more than a record can hold ({MAX_ENTRY_DATA_LEN})"
    )]
    EntryTooLarge { index: u64, len: usize },
}

type Result<T> = std::result::Result<T, WalError>;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One Raft log entry as stored by the WAL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRecord {
    pub index: u64,
    pub term: u64,
    pub data: Bytes,
}

/// A snapshot marker: the log below and at `index` has been folded into the state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRecord {
    pub index: u64,
    pub term: u64,
    pub data: Bytes,
}

/// What [`Wal::open`] found on disk.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovered {
    pub snapshot: Option<SnapshotRecord>,
    pub hard_state: Option<Bytes>,
    /// Entries above the snapshot, contiguous and in index order.
    pub entries: Vec<EntryRecord>,
    /// Bytes cut off a torn tail, if any (for logging and tests).
    pub repaired_bytes: u64,
}

#[derive(Debug)]
struct Segment {
    seq: u64,
    path: PathBuf,
}

/// An open write-ahead log. Appends are buffered until [`Wal::sync`].
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    segments: Vec<Segment>,
    active: File,
    active_len: u64,
    buf: Vec<u8>,
    segment_bytes: u64,
    last_index: u64,
}

fn segment_name(seq: u64, first_index: u64) -> String {
    format!("{seq:016x}-{first_index:016x}.wal")
}

fn parse_segment_name(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(".wal")?;
    let (seq, idx) = stem.split_once('-')?;
    if seq.len() != 16 || idx.len() != 16 {
        return None;
    }
    u64::from_str_radix(idx, 16).ok()?;
    u64::from_str_radix(seq, 16).ok()
}

fn encode_record(buf: &mut Vec<u8>, kind: u8, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let len32 = u32::try_from(len).unwrap_or(u32::MAX);
    let mut crc = crc32c::crc32c(&len32.to_le_bytes());
    crc = crc32c::crc32c_append(crc, &[kind]);
    for p in parts {
        crc = crc32c::crc32c_append(crc, p);
    }
    buf.extend_from_slice(&MAGIC.to_le_bytes());
    buf.extend_from_slice(&len32.to_le_bytes());
    buf.push(kind);
    buf.extend_from_slice(&crc.to_le_bytes());
    for p in parts {
        buf.extend_from_slice(p);
    }
}

/// A decoded record, borrowing from the segment's bytes.
struct RawRecord<'a> {
    kind: u8,
    payload: &'a [u8],
}

/// Decodes the record at `data[off..]`; `Err` carries why it is not a valid record.
fn decode_record(data: &[u8], off: usize) -> std::result::Result<(RawRecord<'_>, usize), String> {
    let rest = &data[off..];
    if rest.len() < HEADER_LEN {
        return Err("truncated header".into());
    }
    let word = |i: usize| u32::from_le_bytes([rest[i], rest[i + 1], rest[i + 2], rest[i + 3]]);
    if word(0) != MAGIC {
        return Err("bad magic".into());
    }
    let len = word(4);
    if len > MAX_RECORD_LEN {
        return Err(format!("implausible length {len}"));
    }
    let kind = rest[8];
    let crc = word(9);
    let end = HEADER_LEN + len as usize;
    if rest.len() < end {
        return Err("truncated payload".into());
    }
    let payload = &rest[HEADER_LEN..end];
    let mut actual = crc32c::crc32c(&len.to_le_bytes());
    actual = crc32c::crc32c_append(actual, &[kind]);
    actual = crc32c::crc32c_append(actual, payload);
    if actual != crc {
        return Err("checksum mismatch".into());
    }
    if !matches!(kind, KIND_ENTRY | KIND_HARD_STATE | KIND_SNAPSHOT) {
        return Err(format!("unknown record kind {kind}"));
    }
    Ok((RawRecord { kind, payload }, off + end))
}

/// True if any complete, valid record starts somewhere in `data[from..]`.
fn valid_record_after(data: &[u8], from: usize) -> bool {
    let magic = MAGIC.to_le_bytes();
    (from..data.len().saturating_sub(HEADER_LEN - 1))
        .filter(|&i| data[i..i + 4] == magic)
        .any(|i| decode_record(data, i).is_ok())
}

fn split_indexed(payload: &[u8]) -> Option<(u64, u64, Bytes)> {
    if payload.len() < 16 {
        return None;
    }
    let index = u64::from_le_bytes(payload[0..8].try_into().ok()?);
    let term = u64::from_le_bytes(payload[8..16].try_into().ok()?);
    Some((index, term, Bytes::copy_from_slice(&payload[16..])))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

impl Wal {
    /// Opens (or creates) the WAL in `dir`, replays it and repairs a torn tail.
    pub fn open(dir: impl AsRef<Path>) -> Result<(Wal, Recovered)> {
        Self::open_with_segment_size(dir, DEFAULT_SEGMENT_BYTES)
    }

    /// Like [`Wal::open`] with a custom segment size (small sizes exercise rollover in tests).
    pub fn open_with_segment_size(
        dir: impl AsRef<Path>,
        segment_bytes: u64,
    ) -> Result<(Wal, Recovered)> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let mut segments = Vec::new();
        for dent in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let path = dent.map_err(io_err(&dir))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("wal") {
                continue;
            }
            let seq =
                parse_segment_name(&path).ok_or_else(|| WalError::BadSegmentName(path.clone()))?;
            segments.push(Segment { seq, path });
        }
        segments.sort_by_key(|s| s.seq);

        let mut rec = Recovered::default();
        let count = segments.len();
        let mut end_of_last = 0;
        for (i, seg) in segments.iter().enumerate() {
            end_of_last = replay_segment(&seg.path, i + 1 == count, &mut rec)?;
        }
        let last_index = rec
            .entries
            .last()
            .map(|e| e.index)
            .or(rec.snapshot.as_ref().map(|s| s.index))
            .unwrap_or(0);

        let (active, active_len) = match segments.last() {
            Some(seg) => {
                let mut f = OpenOptions::new()
                    .write(true)
                    .open(&seg.path)
                    .map_err(io_err(&seg.path))?;
                // A segment cut short by a repair, or written before segments were
                // preallocated, gets its full size again.
                preallocate(&f, &seg.path, segment_bytes)?;
                f.sync_all().map_err(io_err(&seg.path))?;
                f.seek(SeekFrom::Start(end_of_last))
                    .map_err(io_err(&seg.path))?;
                (f, end_of_last)
            }
            None => {
                let path = dir.join(segment_name(0, last_index + 1));
                let f = create_segment(&path, segment_bytes)?;
                f.sync_all().map_err(io_err(&path))?;
                sync_dir(&dir)?;
                segments.push(Segment { seq: 0, path });
                (f, 0)
            }
        };
        let wal = Wal {
            dir,
            segments,
            active,
            active_len,
            buf: Vec::with_capacity(1 << 20),
            segment_bytes,
            last_index,
        };
        Ok((wal, rec))
    }

    /// Index of the last entry appended (or of the snapshot if no entry follows it).
    pub fn last_index(&self) -> u64 {
        self.last_index
    }

    /// Buffers entries. An entry whose index is ≤ the last one replaces that suffix of the log
    /// on replay, as Raft requires when a follower's uncommitted tail is overwritten.
    ///
    /// An entry too large for a record is refused before anything of the batch is buffered, so
    /// nothing unreadable is ever written.
    pub fn append_entries(&mut self, entries: &[EntryRecord]) -> Result<()> {
        if let Some(e) = entries.iter().find(|e| e.data.len() > MAX_ENTRY_DATA_LEN) {
            return Err(WalError::EntryTooLarge {
                index: e.index,
                len: e.data.len(),
            });
        }
        for e in entries {
            let head = [e.index.to_le_bytes(), e.term.to_le_bytes()].concat();
            encode_record(&mut self.buf, KIND_ENTRY, &[&head, &e.data]);
            self.last_index = e.index;
        }
        Ok(())
    }

    /// Buffers a new hard state (term, vote, commit as encoded by the Raft layer).
    pub fn set_hard_state(&mut self, hard_state: &[u8]) {
        encode_record(&mut self.buf, KIND_HARD_STATE, &[hard_state]);
    }

    /// True if something is buffered and a [`Wal::sync`] would write it.
    pub fn has_pending(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Writes everything buffered and makes it durable with a single `fdatasync`.
    pub fn sync(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let path = self.active_path().to_path_buf();
        self.active.write_all(&self.buf).map_err(io_err(&path))?;
        self.active.sync_data().map_err(io_err(&path))?;
        self.active_len += self.buf.len() as u64;
        self.buf.clear();
        if self.active_len >= self.segment_bytes {
            self.cut(None, &[])?;
        }
        Ok(())
    }

    /// Records a snapshot: starts a new segment holding the snapshot marker, `hard_state` and the
    /// entries above the snapshot, makes it durable, then deletes every older segment.
    ///
    /// The caller guarantees that the state machine has durably applied everything up to
    /// `snapshot.index`; the deleted log below it can then never be needed again.
    pub fn snapshot(
        &mut self,
        snapshot: &SnapshotRecord,
        hard_state: &[u8],
        tail: &[EntryRecord],
    ) -> Result<()> {
        self.sync()?;
        let mut body = Vec::new();
        let head = [snapshot.index.to_le_bytes(), snapshot.term.to_le_bytes()].concat();
        encode_record(&mut body, KIND_SNAPSHOT, &[&head, &snapshot.data]);
        encode_record(&mut body, KIND_HARD_STATE, &[hard_state]);
        let old: Vec<PathBuf> = self.segments.iter().map(|s| s.path.clone()).collect();
        self.cut(Some(snapshot.index + 1), &body)?;
        self.append_entries(tail)?;
        self.sync()?;
        for path in old {
            fs::remove_file(&path).map_err(io_err(&path))?;
        }
        self.segments.retain(|s| s.path.exists());
        sync_dir(&self.dir)?;
        if tail.is_empty() {
            self.last_index = self.last_index.max(snapshot.index);
        }
        Ok(())
    }

    /// Paths of the current segments, oldest first (for tests and tooling).
    pub fn segment_paths(&self) -> Vec<PathBuf> {
        self.segments.iter().map(|s| s.path.clone()).collect()
    }

    fn active_path(&self) -> &Path {
        self.segments
            .last()
            .map(|s| s.path.as_path())
            .unwrap_or(self.dir.as_path())
    }

    /// Starts a new segment whose first bytes are `preamble`, durably.
    fn cut(&mut self, first_index: Option<u64>, preamble: &[u8]) -> Result<()> {
        let seq = self.segments.last().map_or(0, |s| s.seq + 1);
        let first = first_index.unwrap_or(self.last_index + 1);
        let path = self.dir.join(segment_name(seq, first));
        let tmp = self.dir.join(format!("{}.tmp", segment_name(seq, first)));
        let mut f = create_segment(&tmp, self.segment_bytes)?;
        f.write_all(preamble).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
        // Rename so that a crash never leaves a half-written preamble under a segment name.
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        sync_dir(&self.dir)?;
        // The handle follows the file across the rename, positioned after the preamble.
        self.active = f;
        self.active_len = preamble.len() as u64;
        self.segments.push(Segment { seq, path });
        Ok(())
    }
}

fn create_segment(path: &Path, size: u64) -> Result<File> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)
        .map_err(io_err(path))?;
    preallocate(&f, path, size)?;
    Ok(f)
}

/// Reserves `size` bytes for the segment (reading as zeros). Filesystems without `fallocate` get
/// a sparse file of that size instead, which keeps the zero-tail format.
fn preallocate(f: &File, path: &Path, size: u64) -> Result<()> {
    let len = f.metadata().map_err(io_err(path))?.len();
    if len >= size {
        return Ok(());
    }
    match rustix::fs::fallocate(f, rustix::fs::FallocateFlags::empty(), 0, size) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::OPNOTSUPP || e == rustix::io::Errno::NOSYS => {
            f.set_len(size).map_err(io_err(path))
        }
        Err(e) => Err(WalError::Io {
            path: path.to_path_buf(),
            source: e.into(),
        }),
    }
}

/// Replays one segment into `rec`; returns the offset just past its last valid record.
///
/// Reads record by record, so a mostly empty preallocated segment costs no more memory than the
/// records it holds; the whole file is read only to judge a record that fails to decode.
fn replay_segment(path: &Path, is_last: bool, rec: &mut Recovered) -> Result<u64> {
    let file = File::open(path).map_err(io_err(path))?;
    let len = file.metadata().map_err(io_err(path))?.len();
    let mut reader = io::BufReader::with_capacity(1 << 20, file);
    let mut off = 0u64;
    let mut buf = Vec::new();
    while off < len {
        let left = len - off;
        if left < HEADER_LEN as u64 {
            return end_of_records(path, is_last, off, rec);
        }
        buf.resize(HEADER_LEN, 0);
        reader.read_exact(&mut buf).map_err(io_err(path))?;
        if buf.iter().all(|b| *b == 0) && rest_is_zero(&mut reader, path)? {
            return Ok(off);
        }
        let payload_len = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
        if payload_len > MAX_RECORD_LEN || u64::from(payload_len) > left - HEADER_LEN as u64 {
            return end_of_records(path, is_last, off, rec);
        }
        buf.resize(HEADER_LEN + payload_len as usize, 0);
        reader
            .read_exact(&mut buf[HEADER_LEN..])
            .map_err(io_err(path))?;
        let Ok((record, next)) = decode_record(&buf, 0) else {
            return end_of_records(path, is_last, off, rec);
        };
        apply_record(rec, &record).map_err(|reason| WalError::Corrupt {
            segment: path.to_path_buf(),
            offset: off,
            reason,
        })?;
        off += next as u64;
    }
    Ok(off)
}

/// True if nothing but zeros is left to read.
fn rest_is_zero(reader: &mut impl Read, path: &Path) -> Result<bool> {
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut chunk).map_err(io_err(path))?;
        if n == 0 {
            return Ok(true);
        }
        if chunk[..n].iter().any(|b| *b != 0) {
            return Ok(false);
        }
    }
}

/// No valid record starts at `off`: the clean end of the log (zeros from here on), a torn tail
/// to repair (last segment, nothing valid after it), or corruption in the middle of the log.
fn end_of_records(path: &Path, is_last: bool, off: u64, rec: &mut Recovered) -> Result<u64> {
    let data = fs::read(path).map_err(io_err(path))?;
    let start = usize::try_from(off).unwrap_or(data.len()).min(data.len());
    let Some(last_nonzero) = data[start..].iter().rposition(|b| *b != 0) else {
        return Ok(off);
    };
    let reason = decode_record(&data, start)
        .err()
        .unwrap_or_else(|| "undecodable record".into());
    if !is_last || valid_record_after(&data, start + 1) {
        return Err(WalError::Corrupt {
            segment: path.to_path_buf(),
            offset: off,
            reason,
        });
    }
    let garbage = last_nonzero + 1;
    tracing::warn!(segment = %path.display(), offset = off, bytes = garbage, %reason, "repairing torn WAL tail");
    let mut f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err(path))?;
    f.seek(SeekFrom::Start(off)).map_err(io_err(path))?;
    f.write_all(&vec![0; garbage]).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))?;
    rec.repaired_bytes = garbage as u64;
    Ok(off)
}

fn apply_record(rec: &mut Recovered, record: &RawRecord<'_>) -> std::result::Result<(), String> {
    match record.kind {
        KIND_ENTRY => {
            let (index, term, data) =
                split_indexed(record.payload).ok_or_else(|| "short entry record".to_string())?;
            apply_entry(rec, EntryRecord { index, term, data })
        }
        KIND_HARD_STATE => {
            rec.hard_state = Some(Bytes::copy_from_slice(record.payload));
            Ok(())
        }
        _ => {
            let (index, term, data) =
                split_indexed(record.payload).ok_or_else(|| "short snapshot record".to_string())?;
            rec.entries.retain(|e| e.index > index);
            rec.snapshot = Some(SnapshotRecord { index, term, data });
            Ok(())
        }
    }
}

fn apply_entry(rec: &mut Recovered, entry: EntryRecord) -> std::result::Result<(), String> {
    let floor = rec.snapshot.as_ref().map_or(0, |s| s.index);
    if entry.index <= floor {
        return Ok(());
    }
    // A re-appended index overwrites the old suffix from that index on.
    while rec.entries.last().is_some_and(|e| e.index >= entry.index) {
        rec.entries.pop();
    }
    let expected = rec.entries.last().map_or(floor + 1, |e| e.index + 1);
    if entry.index != expected && !(rec.entries.is_empty() && rec.snapshot.is_none()) {
        return Err(format!(
            "log gap: expected index {expected}, found {}",
            entry.index
        ));
    }
    rec.entries.push(entry);
    Ok(())
}

#[cfg(test)]
mod tests;
