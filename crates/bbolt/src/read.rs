//! Reading a bbolt file: the newest valid meta page, then the B+tree of a top-level bucket
//! walked in key order (branch, leaf and overflow pages, inline buckets). Pages are read as
//! they are visited, so a large file is never held in memory, and every reference is checked
//! against the file before anything is allocated for it: a damaged file is refused, never
//! followed out of bounds or round a loop.

use crate::layout::{
    BRANCH, BUCKET_HEADER, BUCKET_LEAF, ELEMENT, LEAF, MAGIC, META_BODY, META_CHECKSUM_AT,
    PAGE_HEADER, VERSION, fnv1a, le_u16, le_u32, le_u64,
};
use crate::{BboltError, Result, io_error};
use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Deeper than any real tree.
const MAX_DEPTH: usize = 64;

/// Called with each key and value of a bucket.
pub type Visit<'a, E> = dyn FnMut(&[u8], &[u8]) -> std::result::Result<(), E> + 'a;
/// Called with each leaf element: key, value, flags.
type VisitLeaf<'a, E> = dyn FnMut(&[u8], &[u8], u32) -> std::result::Result<(), E> + 'a;

/// An open bbolt file.
pub struct Reader {
    file: File,
    path: PathBuf,
    page_size: u64,
    root: u64,
    /// Pages in use (the meta's high-water mark): the database's size in pages.
    pages: u64,
}

/// Whether the file starts like a bbolt database (the magic of its first meta page).
pub fn is_bbolt(path: &Path) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    let mut magic = [0u8; 4];
    file.read_exact_at(&mut magic, PAGE_HEADER as u64).is_ok() && u32::from_le_bytes(magic) == MAGIC
}

impl Reader {
    pub fn open(path: &Path) -> Result<Reader> {
        let file = File::open(path).map_err(io_error(path))?;
        let mut first = [0u8; PAGE_HEADER + META_BODY];
        file.read_exact_at(&mut first, 0).map_err(io_error(path))?;
        let page_size = u64::from(le_u32(&first, PAGE_HEADER + 8).unwrap_or(0));
        if !(512..=(1 << 20)).contains(&page_size) {
            return Err(damaged(path, "no valid meta page"));
        }
        // Two meta pages; the valid one with the newer transaction is the database.
        let mut best: Option<(u64, u64, u64)> = None;
        for page in 0..2u64 {
            let mut meta = [0u8; PAGE_HEADER + META_BODY];
            if file.read_exact_at(&mut meta, page * page_size).is_err() {
                continue;
            }
            let body = &meta[PAGE_HEADER..];
            let valid = le_u32(body, 0) == Some(MAGIC)
                && le_u32(body, 4) == Some(VERSION)
                && le_u64(body, META_CHECKSUM_AT) == Some(fnv1a(&body[..META_CHECKSUM_AT]));
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
        let file_pages = file.metadata().map_err(io_error(path))?.len() / page_size;
        if pages > file_pages {
            return Err(damaged(
                path,
                "the meta page counts more pages than the file holds",
            ));
        }
        Ok(Reader {
            file,
            path: path.to_path_buf(),
            page_size,
            root,
            pages,
        })
    }

    /// The database's size: the pages in use, in bytes.
    pub fn size(&self) -> u64 {
        self.pages * self.page_size
    }

    pub fn page_size(&self) -> u64 {
        self.page_size
    }

    /// The page `id` with its overflow pages; a page that is a meta page or lies (in part)
    /// past the database's end is refused before anything is allocated for it.
    fn page(&self, id: u64) -> Result<Vec<u8>> {
        let out_of_bounds = || damaged(&self.path, "a page reference out of bounds");
        if id < 2 || id >= self.pages {
            return Err(out_of_bounds());
        }
        let mut header = [0u8; PAGE_HEADER];
        self.file
            .read_exact_at(&mut header, id * self.page_size)
            .map_err(io_error(&self.path))?;
        let overflow = u64::from(le_u32(&header, 12).unwrap_or(0));
        if id + overflow + 1 > self.pages {
            return Err(out_of_bounds());
        }
        let len = usize::try_from((overflow + 1) * self.page_size).map_err(|_| out_of_bounds())?;
        let mut page = vec![0u8; len];
        self.file
            .read_exact_at(&mut page, id * self.page_size)
            .map_err(io_error(&self.path))?;
        Ok(page)
    }

    /// The top-level buckets (name, header with the inline page of a small bucket), in key
    /// order.
    fn buckets(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut buckets = Vec::new();
        self.walk(
            &self.page(self.root)?,
            0,
            &mut HashSet::new(),
            &mut |key, value, flags| {
                if flags & BUCKET_LEAF != 0 {
                    buckets.push((key.to_vec(), value.to_vec()));
                }
                Ok::<(), BboltError>(())
            },
        )?;
        Ok(buckets)
    }

    /// The names of the top-level buckets, in key order.
    pub fn bucket_names(&self) -> Result<Vec<Vec<u8>>> {
        Ok(self.buckets()?.into_iter().map(|(name, _)| name).collect())
    }

    /// Calls `visit` with every key and value of the top-level bucket `name`, in key order
    /// (nested buckets are skipped); false if there is no such bucket.
    pub fn each<E: From<BboltError>>(
        &self,
        name: &[u8],
        visit: &mut Visit<'_, E>,
    ) -> std::result::Result<bool, E> {
        let Some((_, header)) = self.buckets()?.into_iter().find(|(n, _)| n == name) else {
            return Ok(false);
        };
        let root = le_u64(&header, 0).ok_or_else(|| damaged(&self.path, "bucket header"))?;
        let page = if root == 0 {
            // An inline bucket: its page follows its header in the parent's value.
            header[BUCKET_HEADER.min(header.len())..].to_vec()
        } else {
            self.page(root)?
        };
        self.walk(&page, 0, &mut HashSet::new(), &mut |key, value, flags| {
            if flags & BUCKET_LEAF == 0 {
                visit(key, value)?;
            }
            Ok::<(), E>(())
        })?;
        Ok(true)
    }

    /// Visits a tree's leaf elements in order. A valid tree reaches every page once: a page
    /// reached again (`seen`) means a damaged file, whose loops would otherwise take forever.
    fn walk<E: From<BboltError>>(
        &self,
        page: &[u8],
        depth: usize,
        seen: &mut HashSet<u64>,
        visit: &mut VisitLeaf<'_, E>,
    ) -> std::result::Result<(), E> {
        let bad = || damaged(&self.path, "malformed page");
        if depth > MAX_DEPTH {
            return Err(bad().into());
        }
        let flags = le_u16(page, 8).ok_or_else(bad)?;
        let count = le_u16(page, 10).ok_or_else(bad)? as usize;
        for i in 0..count {
            let at = PAGE_HEADER + i * ELEMENT;
            if flags & BRANCH != 0 {
                let child = le_u64(page, at + 8).ok_or_else(bad)?;
                if !seen.insert(child) {
                    return Err(bad().into());
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
                return Err(bad().into());
            }
        }
        Ok(())
    }
}

fn damaged(path: &Path, what: &str) -> BboltError {
    BboltError::Damaged {
        path: path.to_path_buf(),
        what: what.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Writer;
    use proptest::prelude::*;

    /// Reads everything a file holds, as a restore would.
    fn read_all(path: &Path) -> Result<usize> {
        let file = Reader::open(path)?;
        let mut entries = 0;
        for name in file.bucket_names()? {
            file.each(&name, &mut |_, _| {
                entries += 1;
                Ok::<(), BboltError>(())
            })?;
        }
        Ok(entries)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// A damaged file (bytes changed anywhere, or cut short) is read or refused, never
        /// followed out of bounds, round a loop or into a panic.
        #[test]
        fn damaged_files_are_refused_not_followed(
            keys in 1usize..400,
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in proptest::option::of(any::<prop::sample::Index>()),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("db");
            let mut w = Writer::create(&path).unwrap();
            w.bucket(b"key").unwrap();
            for i in 0..keys as u64 {
                w.put(&i.to_be_bytes(), &vec![7u8; (i % 300) as usize]).unwrap();
            }
            w.bucket(b"meta").unwrap();
            w.put(b"consistent_index", &5u64.to_be_bytes()).unwrap();
            w.finish().unwrap();
            prop_assert_eq!(read_all(&path).unwrap(), keys + 1);

            let mut bytes = std::fs::read(&path).unwrap();
            for (at, value) in flips {
                let at = at.index(bytes.len());
                bytes[at] ^= value | 1;
            }
            if let Some(cut) = cut {
                bytes.truncate(cut.index(bytes.len()));
            }
            std::fs::write(&path, &bytes).unwrap();
            let _ = read_all(&path);
        }
    }
}
