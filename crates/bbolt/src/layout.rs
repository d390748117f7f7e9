//! bbolt's constants and little-endian field access.

pub(crate) const MAGIC: u32 = 0xED0C_DAED;
pub(crate) const VERSION: u32 = 2;
pub(crate) const PAGE_HEADER: usize = 16;
/// Leaf and branch elements are both 16 bytes.
pub(crate) const ELEMENT: usize = 16;
/// A meta page's body up to and including its checksum.
pub(crate) const META_BODY: usize = 64;
/// Where the checksum sits in the meta body (it covers the bytes before it).
pub(crate) const META_CHECKSUM_AT: usize = 56;

pub(crate) const BRANCH: u16 = 0x01;
pub(crate) const LEAF: u16 = 0x02;
pub(crate) const META: u16 = 0x04;
pub(crate) const FREELIST: u16 = 0x10;
/// A leaf element that is a nested bucket.
pub(crate) const BUCKET_LEAF: u32 = 0x01;
/// A bucket's header in its parent's leaf: root page id and sequence.
pub(crate) const BUCKET_HEADER: usize = 16;

/// The page size this writer uses: the one etcd's files have on Linux/amd64.
pub(crate) const PAGE_SIZE: usize = 4096;
/// bbolt's limits.
pub(crate) const MAX_KEY: usize = 32768;
pub(crate) const MAX_VALUE: usize = (1 << 31) - 2;

pub(crate) fn le_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
pub(crate) fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
pub(crate) fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// FNV-1a, 64 bits: bbolt's meta checksum.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_meta_checksum_is_fnv1a() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
