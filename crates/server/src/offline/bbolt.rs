//! Reading etcd's backend (a bbolt file, as `etcdctl snapshot save` writes it) so that a snapshot
//! of real etcd can be restored into a Cairn member.
//!
//! Only what a restore needs: the newest valid meta page, then the B+tree of a named top-level
//! bucket walked in key order (branch pages, leaf pages, overflow pages, inline buckets). Pages
//! are read from the file as they are visited, so a large backend is never held in memory.

use super::OfflineError;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const MAGIC: u32 = 0xED0C_DAED;
const PAGE_HEADER: usize = 16;
const ELEMENT: usize = 16;
const BRANCH: u16 = 0x01;
const LEAF: u16 = 0x02;
const BUCKET_LEAF: u32 = 0x01;
/// A bucket's header in its parent's leaf: root page id and sequence.
const BUCKET_HEADER: usize = 16;
/// Deeper than any real tree.
const MAX_DEPTH: usize = 64;

/// Whether the file starts like a bbolt database (the magic of its first meta page).
pub(crate) fn is_bbolt(path: &Path) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    let mut magic = [0u8; 4];
    file.read_exact_at(&mut magic, PAGE_HEADER as u64).is_ok() && u32::from_le_bytes(magic) == MAGIC
}

/// Called with each key and value of a bucket.
pub(crate) type Visit<'a> = dyn FnMut(&[u8], &[u8]) -> Result<(), OfflineError> + 'a;
/// Called with each leaf element: key, value, flags.
type VisitLeaf<'a> = dyn FnMut(&[u8], &[u8], u32) -> Result<(), OfflineError> + 'a;

pub(crate) struct Bbolt {
    file: File,
    path: PathBuf,
    page_size: u64,
    root: u64,
    /// Pages in use (the meta's high-water mark): the database's size in pages.
    pages: u64,
}

/// A top-level bucket: its name and its header (with the inline page of a small bucket).
type Bucket = (Vec<u8>, Vec<u8>);

/// What `etcdutl snapshot status` reports of a backend.
pub(crate) struct Status {
    pub hash: u32,
    pub revision: i64,
    pub total_keys: u64,
    pub total_size: u64,
}

fn le_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// FNV-1a, 64 bits: bbolt's meta checksum.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl Bbolt {
    pub(crate) fn open(path: &Path) -> Result<Bbolt, OfflineError> {
        let file = File::open(path).map_err(super::io_error(path))?;
        let mut first = [0u8; PAGE_HEADER + 64];
        file.read_exact_at(&mut first, 0)
            .map_err(super::io_error(path))?;
        let page_size = le_u32(&first, PAGE_HEADER + 8).unwrap_or(0) as u64;
        if !(512..=(1 << 20)).contains(&page_size) {
            return Err(damaged(path, "no valid meta page"));
        }
        // Two meta pages; the valid one with the newer transaction is the database.
        let mut best: Option<(u64, u64, u64)> = None;
        for page in 0..2u64 {
            let mut meta = [0u8; PAGE_HEADER + 64];
            if file.read_exact_at(&mut meta, page * page_size).is_err() {
                continue;
            }
            let body = &meta[PAGE_HEADER..];
            let valid = le_u32(body, 0) == Some(MAGIC)
                && le_u32(body, 4) == Some(2)
                && le_u64(body, 56) == Some(fnv1a(&body[..56]));
            if !valid {
                continue;
            }
            let root = le_u64(body, 16).unwrap_or(0);
            let pages = le_u64(body, 40).unwrap_or(0);
            let txid = le_u64(body, 48).unwrap_or(0);
            if best.is_none_or(|(_, _, t)| txid > t) {
                best = Some((root, pages, txid));
            }
        }
        let Some((root, pages, _)) = best else {
            return Err(damaged(path, "no valid meta page"));
        };
        let file_pages = file.metadata().map_err(super::io_error(path))?.len() / page_size;
        if pages > file_pages {
            return Err(damaged(
                path,
                "the meta page counts more pages than the file holds",
            ));
        }
        Ok(Bbolt {
            file,
            path: path.to_path_buf(),
            page_size,
            root,
            pages,
        })
    }

    /// The page `id` with its overflow pages; a page that is a meta page or lies (in part)
    /// past the database's end is refused before anything is allocated for it.
    fn page(&self, id: u64) -> Result<Vec<u8>, OfflineError> {
        let out_of_bounds = || damaged(&self.path, "a page reference out of bounds");
        if id < 2 || id >= self.pages {
            return Err(out_of_bounds());
        }
        let mut header = [0u8; PAGE_HEADER];
        self.file
            .read_exact_at(&mut header, id * self.page_size)
            .map_err(super::io_error(&self.path))?;
        let overflow = u64::from(le_u32(&header, 12).unwrap_or(0));
        if id + overflow + 1 > self.pages {
            return Err(out_of_bounds());
        }
        let len = usize::try_from((overflow + 1) * self.page_size).map_err(|_| out_of_bounds())?;
        let mut page = vec![0u8; len];
        self.file
            .read_exact_at(&mut page, id * self.page_size)
            .map_err(super::io_error(&self.path))?;
        Ok(page)
    }

    /// The top-level buckets, in key order.
    fn buckets(&self) -> Result<Vec<Bucket>, OfflineError> {
        let mut buckets = Vec::new();
        let mut seen = std::collections::HashSet::new();
        self.walk(
            &self.page(self.root)?,
            0,
            &mut seen,
            &mut |key, value, flags| {
                if flags & BUCKET_LEAF != 0 {
                    buckets.push((key.to_vec(), value.to_vec()));
                }
                Ok(())
            },
        )?;
        Ok(buckets)
    }

    /// Calls `visit` with every key and value of the top-level bucket `name`, in key order;
    /// false if there is no such bucket.
    pub(crate) fn each(&self, name: &[u8], visit: &mut Visit<'_>) -> Result<bool, OfflineError> {
        let Some((_, header)) = self.buckets()?.into_iter().find(|(n, _)| n == name) else {
            return Ok(false);
        };
        self.each_in(&header, visit)?;
        Ok(true)
    }

    /// etcd's snapshot status: a CRC-32C over every bucket's name and then its keys and values,
    /// the main revision of the last record in `key`, the number of entries, and the size.
    pub(crate) fn status(&self) -> Result<Status, OfflineError> {
        let mut hash = 0u32;
        let mut revision = 0i64;
        let mut total_keys = 0u64;
        for (name, header) in self.buckets()? {
            hash = crc32c::crc32c_append(hash, &name);
            let is_key = name == b"key";
            self.each_in(&header, &mut |key, value| {
                hash = crc32c::crc32c_append(hash, key);
                hash = crc32c::crc32c_append(hash, value);
                if is_key && let Some(main) = key.get(..8).and_then(|b| b.try_into().ok()) {
                    revision = i64::from_be_bytes(main);
                }
                total_keys += 1;
                Ok(())
            })?;
        }
        Ok(Status {
            hash,
            revision,
            total_keys,
            total_size: self.pages * self.page_size,
        })
    }

    fn each_in(&self, header: &[u8], visit: &mut Visit<'_>) -> Result<(), OfflineError> {
        let root = le_u64(header, 0).ok_or_else(|| damaged(&self.path, "bucket header"))?;
        let page = if root == 0 {
            // An inline bucket: its page follows its header in the parent's value.
            header[BUCKET_HEADER.min(header.len())..].to_vec()
        } else {
            self.page(root)?
        };
        self.walk(
            &page,
            0,
            &mut std::collections::HashSet::new(),
            &mut |key, value, flags| {
                if flags & BUCKET_LEAF == 0 {
                    visit(key, value)?;
                }
                Ok(())
            },
        )
    }

    /// Visits a tree's leaf elements in order. A valid tree reaches every page once: a page
    /// reached again (`seen`) means a damaged file, whose loops would otherwise take forever.
    fn walk(
        &self,
        page: &[u8],
        depth: usize,
        seen: &mut std::collections::HashSet<u64>,
        visit: &mut VisitLeaf<'_>,
    ) -> Result<(), OfflineError> {
        let bad = || damaged(&self.path, "malformed page");
        if depth > MAX_DEPTH {
            return Err(bad());
        }
        let flags = le_u16(page, 8).ok_or_else(bad)?;
        let count = le_u16(page, 10).ok_or_else(bad)? as usize;
        for i in 0..count {
            let at = PAGE_HEADER + i * ELEMENT;
            if flags & BRANCH != 0 {
                let child = le_u64(page, at + 8).ok_or_else(bad)?;
                if !seen.insert(child) {
                    return Err(bad());
                }
                self.walk(&self.page(child)?, depth + 1, seen, visit)?;
            } else if flags & LEAF != 0 {
                let leaf_flags = le_u32(page, at).ok_or_else(bad)?;
                let pos = le_u32(page, at + 4).ok_or_else(bad)? as usize;
                let ksize = le_u32(page, at + 8).ok_or_else(bad)? as usize;
                let vsize = le_u32(page, at + 12).ok_or_else(bad)? as usize;
                let key_at = at.checked_add(pos).ok_or_else(bad)?;
                let value_at = key_at.checked_add(ksize).ok_or_else(bad)?;
                let end = value_at.checked_add(vsize).ok_or_else(bad)?;
                let key = page.get(key_at..value_at).ok_or_else(bad)?;
                let value = page.get(value_at..end).ok_or_else(bad)?;
                visit(key, value, leaf_flags)?;
            } else {
                return Err(bad());
            }
        }
        Ok(())
    }
}

fn damaged(path: &Path, what: &str) -> OfflineError {
    OfflineError::NotEtcdBackend {
        path: path.to_path_buf(),
        what: what.to_string(),
    }
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
