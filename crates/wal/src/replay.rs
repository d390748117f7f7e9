//! Replay of segments on open, and the decision a damaged batch forces: a torn tail to zero, or
//! corruption to refuse.

use crate::format::{
    FRAME_LEN, FRAME_MAGIC, Frame, KIND_ENTRY, KIND_HARD_STATE, RawRecord, SEGMENT_HEADER_LEN,
    SegmentHeader, records,
};
use crate::{EntryRecord, Recovered, Result, SnapshotRecord, WalError, io_err};
use bytes::Bytes;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Where a replayed segment ends, and what the next batch appended to it needs.
pub struct Tail {
    pub end: u64,
    pub salt: u64,
    pub next_batch: u64,
}

fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> WalError {
    WalError::Corrupt {
        segment: path.to_path_buf(),
        offset,
        reason: reason.into(),
    }
}

/// Replays one segment into `rec`.
///
/// Reads batch by batch, so a mostly empty preallocated segment costs no more memory than the
/// batches it holds; the whole file is read only to judge a batch that does not verify.
pub fn replay_segment(path: &Path, seq: u64, is_last: bool, rec: &mut Recovered) -> Result<Tail> {
    let file = File::open(path).map_err(io_err(path))?;
    let len = file.metadata().map_err(io_err(path))?.len();
    let mut reader = io::BufReader::with_capacity(1 << 20, file);
    let mut head = vec![0u8; SEGMENT_HEADER_LEN];
    if len < SEGMENT_HEADER_LEN as u64 {
        return Err(corrupt(path, 0, "shorter than a segment header"));
    }
    reader.read_exact(&mut head).map_err(io_err(path))?;
    let header = SegmentHeader::decode(&head).map_err(|reason| corrupt(path, 0, reason))?;
    if header.seq != seq {
        return Err(corrupt(
            path,
            0,
            format!(
                "the header says segment {} but the name says {seq}",
                header.seq
            ),
        ));
    }
    let mut off = SEGMENT_HEADER_LEN as u64;
    let mut batch = 1u64;
    let mut frame_bytes = [0u8; FRAME_LEN];
    let mut body = Vec::new();
    let tail = |end: u64, next_batch: u64| Tail {
        end,
        salt: header.salt,
        next_batch,
    };
    loop {
        let damage = if len - off < FRAME_LEN as u64 {
            "a frame cut short"
        } else {
            reader.read_exact(&mut frame_bytes).map_err(io_err(path))?;
            if frame_bytes.iter().all(|b| *b == 0) && rest_is_zero(&mut reader, path)? {
                return Ok(tail(off, batch));
            }
            match Frame::decode(&frame_bytes, header.salt, off) {
                None => "a frame that does not verify",
                Some(f) if f.seq != batch => {
                    return Err(corrupt(
                        path,
                        off,
                        format!("batch {} where batch {batch} was expected", f.seq),
                    ));
                }
                Some(f) if f.body_len > len - off - FRAME_LEN as u64 => "a batch cut short",
                Some(f) => {
                    body.resize(f.body_len as usize, 0);
                    reader.read_exact(&mut body).map_err(io_err(path))?;
                    if f.body_matches(&body) {
                        // A verified body that does not parse was written that way: no tear
                        // explains it.
                        for record in records(&body).map_err(|r| corrupt(path, off, r))? {
                            apply_record(rec, &record).map_err(|r| corrupt(path, off, r))?;
                        }
                        off += FRAME_LEN as u64 + f.body_len;
                        batch += 1;
                        continue;
                    }
                    "a batch whose body does not match its checksum"
                }
            }
        };
        let end = damaged_batch(path, is_last, off, batch, header.salt, damage, rec)?;
        return Ok(tail(end, batch));
    }
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

/// Batch `batch` at `off` does not verify. It is the torn, unsynced tail of the log if it is in
/// the last segment and no intact frame of a later batch follows it: then it is zeroed and the
/// log ends at `off`. Otherwise a later batch was written after this one had been synced, and
/// the damage is corruption of acknowledged data.
fn damaged_batch(
    path: &Path,
    is_last: bool,
    off: u64,
    batch: u64,
    salt: u64,
    damage: &str,
    rec: &mut Recovered,
) -> Result<u64> {
    let data = fs::read(path).map_err(io_err(path))?;
    let start = usize::try_from(off).unwrap_or(data.len()).min(data.len());
    let Some(last_nonzero) = data[start..].iter().rposition(|b| *b != 0) else {
        return Ok(off);
    };
    if !is_last {
        return Err(corrupt(
            path,
            off,
            format!("batch {batch} is {damage}, and later segments follow it"),
        ));
    }
    if let Some((at, later)) = later_frame(&data, start + 1, salt, batch) {
        return Err(corrupt(
            path,
            off,
            format!(
                "batch {batch} is {damage}, but batch {later} at offset {at} was written after \
                 it had been synced, so this is not a torn write"
            ),
        ));
    }
    let garbage = last_nonzero + 1;
    tracing::warn!(segment = %path.display(), offset = off, bytes = garbage, batch, damage, "repairing torn WAL tail");
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

/// The first intact frame at or after `from` of a batch later than `batch`.
fn later_frame(data: &[u8], from: usize, salt: u64, batch: u64) -> Option<(usize, u64)> {
    let magic = FRAME_MAGIC.to_le_bytes();
    (from..data.len().saturating_sub(FRAME_LEN - 1))
        .filter(|&i| data[i..i + 4] == magic)
        .find_map(|i| {
            Frame::decode(&data[i..], salt, i as u64)
                .filter(|f| f.seq > batch)
                .map(|f| (i, f.seq))
        })
}

fn split_indexed(payload: &[u8]) -> Option<(u64, u64, Bytes)> {
    if payload.len() < 16 {
        return None;
    }
    let index = u64::from_le_bytes(payload[0..8].try_into().ok()?);
    let term = u64::from_le_bytes(payload[8..16].try_into().ok()?);
    Some((index, term, Bytes::copy_from_slice(&payload[16..])))
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
