//! The byte format of a segment: its header, the frame that wraps each synced batch, and the
//! records inside a batch. See the crate docs for the layout; this module only encodes and
//! decodes, it does no I/O.

pub const SEGMENT_MAGIC: u32 = 0x3257_4143; // "CAW2"
pub const FORMAT_VERSION: u32 = 2;
pub const SEGMENT_HEADER_LEN: usize = 32;

pub const FRAME_MAGIC: u32 = 0x4257_4143; // "CAWB"
pub const FRAME_LEN: usize = 40;

pub const RECORD_HEADER_LEN: usize = 5;
pub const KIND_ENTRY: u8 = 1;
pub const KIND_HARD_STATE: u8 = 2;
pub const KIND_SNAPSHOT: u8 = 3;

/// Upper bound for one record's payload: larger records are refused when appended.
pub const MAX_RECORD_LEN: u32 = 256 << 20;

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// A fresh random salt for a new segment. Frame checksums are seeded with it, so bytes that a
/// client wrote into an entry can never pass for a frame of the segment that holds them.
pub fn new_salt() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the operating system's randomness.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// The first bytes of every segment, written and synced before the segment gets its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    pub salt: u64,
    pub seq: u64,
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut b = [0u8; SEGMENT_HEADER_LEN];
        b[0..4].copy_from_slice(&SEGMENT_MAGIC.to_le_bytes());
        b[4..8].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[8..16].copy_from_slice(&self.salt.to_le_bytes());
        b[16..24].copy_from_slice(&self.seq.to_le_bytes());
        let crc = crc32c::crc32c(&b[..28]);
        b[28..32].copy_from_slice(&crc.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Result<SegmentHeader, String> {
        if b.len() < SEGMENT_HEADER_LEN {
            return Err("shorter than a segment header".into());
        }
        if u32_at(b, 0) != SEGMENT_MAGIC {
            return Err(
                "no segment header (not a Cairn WAL segment, or one written by a development \
                 build before format version 2)"
                    .into(),
            );
        }
        if crc32c::crc32c(&b[..28]) != u32_at(b, 28) {
            return Err("segment header checksum mismatch".into());
        }
        let version = u32_at(b, 4);
        if version != FORMAT_VERSION {
            return Err(format!("unsupported WAL format version {version}"));
        }
        Ok(SegmentHeader {
            salt: u64_at(b, 8),
            seq: u64_at(b, 16),
        })
    }
}

/// The head of one synced batch: everything one `sync` wrote after the previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    pub body_len: u64,
    /// 1 for the first batch of a segment, then one more for each batch.
    pub seq: u64,
    /// Where this frame starts in its segment: a frame found elsewhere is not one.
    pub offset: u64,
    pub body_crc: u32,
}

impl Frame {
    pub fn for_body(body: &[u8], seq: u64, offset: u64) -> Frame {
        Frame {
            body_len: body.len() as u64,
            seq,
            offset,
            body_crc: crc32c::crc32c(body),
        }
    }

    pub fn encode(&self, salt: u64) -> [u8; FRAME_LEN] {
        let mut b = [0u8; FRAME_LEN];
        b[0..4].copy_from_slice(&FRAME_MAGIC.to_le_bytes());
        b[8..16].copy_from_slice(&self.body_len.to_le_bytes());
        b[16..24].copy_from_slice(&self.seq.to_le_bytes());
        b[24..32].copy_from_slice(&self.offset.to_le_bytes());
        b[32..36].copy_from_slice(&self.body_crc.to_le_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&salt.to_le_bytes()), &b[..36]);
        b[36..40].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// A frame head that is intact and belongs at `offset` of the segment salted with `salt`.
    pub fn decode(b: &[u8], salt: u64, offset: u64) -> Option<Frame> {
        if b.len() < FRAME_LEN || u32_at(b, 0) != FRAME_MAGIC {
            return None;
        }
        let crc = crc32c::crc32c_append(crc32c::crc32c(&salt.to_le_bytes()), &b[..36]);
        if crc != u32_at(b, 36) {
            return None;
        }
        let frame = Frame {
            body_len: u64_at(b, 8),
            seq: u64_at(b, 16),
            offset: u64_at(b, 24),
            body_crc: u32_at(b, 32),
        };
        (frame.offset == offset).then_some(frame)
    }

    pub fn body_matches(&self, body: &[u8]) -> bool {
        body.len() as u64 == self.body_len && crc32c::crc32c(body) == self.body_crc
    }
}

/// Appends one record (`kind`, then the concatenation of `parts`) to a batch body.
pub fn encode_record(buf: &mut Vec<u8>, kind: u8, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    buf.push(kind);
    buf.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
    for p in parts {
        buf.extend_from_slice(p);
    }
}

/// One record of a verified batch body.
pub struct RawRecord<'a> {
    pub kind: u8,
    pub payload: &'a [u8],
}

/// Splits a batch body (already verified against its frame) into records.
pub fn records(body: &[u8]) -> Result<Vec<RawRecord<'_>>, String> {
    let mut out = Vec::new();
    let mut off = 0;
    while off < body.len() {
        let head = body
            .get(off..off + RECORD_HEADER_LEN)
            .ok_or("record header cut short")?;
        let kind = head[0];
        let len = u32_at(head, 1) as usize;
        let start = off + RECORD_HEADER_LEN;
        let payload = body
            .get(start..start + len)
            .ok_or_else(|| format!("record of {len} bytes overruns its batch"))?;
        if !matches!(kind, KIND_ENTRY | KIND_HARD_STATE | KIND_SNAPSHOT) {
            return Err(format!("unknown record kind {kind}"));
        }
        out.push(RawRecord { kind, payload });
        off = start + len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_bound_to_salt_and_offset() {
        let f = Frame::for_body(b"body", 3, 4096);
        let b = f.encode(7);
        assert_eq!(Frame::decode(&b, 7, 4096), Some(f));
        assert_eq!(Frame::decode(&b, 8, 4096), None);
        assert_eq!(Frame::decode(&b, 7, 4097), None);
        let mut bad = b;
        bad[20] ^= 1;
        assert_eq!(Frame::decode(&bad, 7, 4096), None);
        assert!(f.body_matches(b"body"));
        assert!(!f.body_matches(b"bodY"));
    }

    #[test]
    fn segment_header_roundtrip_and_refusals() {
        let h = SegmentHeader { salt: 9, seq: 2 };
        assert_eq!(SegmentHeader::decode(&h.encode()), Ok(h));
        let mut bad = h.encode();
        bad[9] ^= 1;
        assert!(SegmentHeader::decode(&bad).is_err());
        assert!(SegmentHeader::decode(&[0u8; 32]).is_err());
    }

    #[test]
    fn records_split_and_refuse_overruns() {
        let mut body = Vec::new();
        encode_record(&mut body, KIND_ENTRY, &[b"ab", b"c"]);
        encode_record(&mut body, KIND_HARD_STATE, &[b""]);
        let recs = records(&body).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].payload, b"abc");
        assert!(records(&body[..body.len() - 1]).is_err());
    }
}
