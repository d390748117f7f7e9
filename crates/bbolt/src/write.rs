//! Writing a new bbolt file from buckets whose keys come in order.
//!
//! Each bucket's tree is built bottom-up as its keys arrive: leaf pages are filled and written
//! one after another, and each written page adds its first key to the level above, which is
//! written the same way. Only one partly filled page per level is held in memory, so a file of
//! any size is written in a single sequential pass. The root bucket (the list of buckets), an
//! empty freelist and the two meta pages are written last; every page is in use, so the file
//! is as compact as a freshly defragmented one.

use crate::layout::{
    BRANCH, BUCKET_HEADER, BUCKET_LEAF, ELEMENT, FREELIST, LEAF, MAGIC, MAX_KEY, MAX_VALUE, META,
    META_BODY, META_CHECKSUM_AT, PAGE_HEADER, PAGE_SIZE, VERSION, fnv1a,
};
use crate::{BboltError, Result, io_error};
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The transaction id the meta pages carry: the file looks like one committed transaction.
const TXID: u64 = 1;

/// Writes a new bbolt file. Buckets may come in any order; within a bucket, keys must come in
/// ascending byte order. Nothing is usable until [`Writer::finish`].
pub struct Writer {
    out: BufWriter<File>,
    path: PathBuf,
    next_page: u64,
    /// Finished buckets: name and root page.
    buckets: Vec<(Vec<u8>, u64)>,
    open: Option<Tree>,
    /// The page being serialized (reused).
    page: Vec<u8>,
}

/// One element of a page being filled: a leaf's key and value sizes (with its flags), or a
/// branch's first key of a child page. The bytes themselves are in [`Level::data`].
#[derive(Clone, Copy)]
struct Element {
    key: u32,
    value: u32,
    flags: u32,
    child: u64,
}

/// A page being filled at one level of a tree. Its buffers are reused from page to page, so
/// adding a key costs no allocation.
#[derive(Default)]
struct Level {
    elements: Vec<Element>,
    /// The elements' keys and values, back to back.
    data: Vec<u8>,
}

impl Level {
    /// The page's size so far: header, elements, keys and values.
    fn bytes(&self) -> usize {
        PAGE_HEADER + self.elements.len() * ELEMENT + self.data.len()
    }

    fn first_key(&self) -> &[u8] {
        let len = self.elements.first().map_or(0, |e| e.key as usize);
        &self.data[..len]
    }

    fn clear(&mut self) {
        self.elements.clear();
        self.data.clear();
    }
}

/// A bucket's tree being built: level 0 is the leaves.
struct Tree {
    name: Vec<u8>,
    levels: Vec<Level>,
    last_key: Vec<u8>,
    empty: bool,
}

impl Tree {
    fn new(name: &[u8]) -> Tree {
        Tree {
            name: name.to_vec(),
            levels: vec![Level::default()],
            last_key: Vec::new(),
            empty: true,
        }
    }
}

impl Writer {
    /// Creates the file at `path` (replaced if it exists).
    pub fn create(path: &Path) -> Result<Writer> {
        let file = File::create(path).map_err(io_error(path))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        // The meta pages come first in the file but are known last: room is kept for them.
        out.write_all(&[0u8; 2 * PAGE_SIZE])
            .map_err(io_error(path))?;
        Ok(Writer {
            out,
            path: path.to_path_buf(),
            next_page: 2,
            buckets: Vec::new(),
            open: None,
            page: Vec::with_capacity(PAGE_SIZE),
        })
    }

    /// Starts the top-level bucket `name`, finishing the one before it.
    pub fn bucket(&mut self, name: &[u8]) -> Result<()> {
        self.close_bucket()?;
        if name.is_empty() || name.len() > MAX_KEY {
            return Err(BboltError::Unsupported {
                bucket: String::from_utf8_lossy(name).into_owned(),
                what: "a bucket name must have 1 to 32768 bytes".into(),
            });
        }
        if self.buckets.iter().any(|(n, _)| n == name) {
            return Err(BboltError::DuplicateBucket(
                String::from_utf8_lossy(name).into_owned(),
            ));
        }
        self.open = Some(Tree::new(name));
        Ok(())
    }

    /// Adds a key and its value to the open bucket; keys must ascend.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let mut tree = self.open.take().ok_or(BboltError::NoBucket)?;
        let added = self.put_in(&mut tree, key, value, 0);
        self.open = Some(tree);
        added
    }

    fn put_in(&mut self, tree: &mut Tree, key: &[u8], value: &[u8], flags: u32) -> Result<()> {
        let bucket = || String::from_utf8_lossy(&tree.name).into_owned();
        if key.is_empty() || key.len() > MAX_KEY || value.len() > MAX_VALUE {
            return Err(BboltError::Unsupported {
                bucket: bucket(),
                what: format!(
                    "a key of {} bytes with a value of {} bytes is beyond bbolt's limits",
                    key.len(),
                    value.len()
                ),
            });
        }
        if !tree.empty && tree.last_key.as_slice() >= key {
            return Err(BboltError::OutOfOrder {
                bucket: bucket(),
                key: key.to_vec(),
            });
        }
        tree.empty = false;
        tree.last_key.clear();
        tree.last_key.extend_from_slice(key);
        self.add(tree, 0, key, value, flags, 0)
    }

    /// Adds an element to the page filling at `level`, writing that page out first when the
    /// element would not fit. A leaf holds at least one element and a branch two (a large one
    /// overflows into more pages): with one child per branch, long keys would stack levels
    /// without end.
    fn add(
        &mut self,
        tree: &mut Tree,
        level: usize,
        key: &[u8],
        value: &[u8],
        flags: u32,
        child: u64,
    ) -> Result<()> {
        let size = ELEMENT + key.len() + value.len();
        let fewest = if level == 0 { 1 } else { 2 };
        let filling = &tree.levels[level];
        if filling.elements.len() >= fewest && filling.bytes() + size > PAGE_SIZE {
            self.write_level_page(tree, level)?;
        }
        let filling = &mut tree.levels[level];
        // Sizes fit: keys are at most 32 KiB and values under 2 GiB, checked by the caller.
        filling.elements.push(Element {
            key: key.len() as u32,
            value: value.len() as u32,
            flags,
            child,
        });
        filling.data.extend_from_slice(key);
        filling.data.extend_from_slice(value);
        Ok(())
    }

    /// Writes the page filling at `level` and adds it to the level above.
    fn write_level_page(&mut self, tree: &mut Tree, level: usize) -> Result<u64> {
        let id = self.write_page(level > 0, &tree.levels[level])?;
        let first_key = tree.levels[level].first_key().to_vec();
        tree.levels[level].clear();
        if tree.levels.len() == level + 1 {
            tree.levels.push(Level::default());
        }
        self.add(tree, level + 1, &first_key, &[], 0, id)?;
        Ok(id)
    }

    /// Writes out what is left of a tree, bottom up; returns its root page.
    fn finish_tree(&mut self, mut tree: Tree) -> Result<u64> {
        let mut level = 0;
        loop {
            if level + 1 == tree.levels.len() {
                // Nothing was written at this level before: this page is the root (an empty
                // leaf for an empty bucket, as bbolt makes one).
                return self.write_page(level > 0, &tree.levels[level]);
            }
            if !tree.levels[level].elements.is_empty() {
                self.write_level_page(&mut tree, level)?;
            }
            level += 1;
        }
    }

    fn close_bucket(&mut self) -> Result<()> {
        if let Some(tree) = self.open.take() {
            let name = tree.name.clone();
            let root = self.finish_tree(tree)?;
            self.buckets.push((name, root));
        }
        Ok(())
    }

    /// Writes one page (with its overflow pages) at the end of the file; returns its id.
    fn write_page(&mut self, branch: bool, page: &Level) -> Result<u64> {
        let pages = page.bytes().div_ceil(PAGE_SIZE).max(1);
        let count = u16::try_from(page.elements.len()).map_err(|_| BboltError::Unsupported {
            bucket: String::new(),
            what: "more elements than a page can count".into(),
        })?;
        let overflow = u32::try_from(pages - 1).map_err(|_| BboltError::Unsupported {
            bucket: String::new(),
            what: "a page larger than bbolt can address".into(),
        })?;
        let id = self.next_page;
        let buf = &mut self.page;
        buf.clear();
        buf.resize(pages * PAGE_SIZE, 0);
        buf[0..8].copy_from_slice(&id.to_le_bytes());
        buf[8..10].copy_from_slice(&(if branch { BRANCH } else { LEAF }).to_le_bytes());
        buf[10..12].copy_from_slice(&count.to_le_bytes());
        buf[12..16].copy_from_slice(&overflow.to_le_bytes());
        let data_start = PAGE_HEADER + page.elements.len() * ELEMENT;
        buf[data_start..data_start + page.data.len()].copy_from_slice(&page.data);
        let mut data_at = data_start;
        for (i, e) in page.elements.iter().enumerate() {
            let at = PAGE_HEADER + i * ELEMENT;
            let pos = (data_at - at) as u32;
            if branch {
                buf[at..at + 4].copy_from_slice(&pos.to_le_bytes());
                buf[at + 4..at + 8].copy_from_slice(&e.key.to_le_bytes());
                buf[at + 8..at + 16].copy_from_slice(&e.child.to_le_bytes());
            } else {
                buf[at..at + 4].copy_from_slice(&e.flags.to_le_bytes());
                buf[at + 4..at + 8].copy_from_slice(&pos.to_le_bytes());
                buf[at + 8..at + 12].copy_from_slice(&e.key.to_le_bytes());
                buf[at + 12..at + 16].copy_from_slice(&e.value.to_le_bytes());
            }
            data_at += (e.key + e.value) as usize;
        }
        self.out.write_all(buf).map_err(io_error(&self.path))?;
        self.next_page += pages as u64;
        Ok(id)
    }

    /// Writes the list of buckets, the freelist and the meta pages, and makes the file
    /// durable. Returns the file's size.
    pub fn finish(mut self) -> Result<u64> {
        self.close_bucket()?;
        let mut buckets = std::mem::take(&mut self.buckets);
        buckets.sort();
        let mut root = Tree::new(b"");
        for (name, page) in &buckets {
            let mut header = [0u8; BUCKET_HEADER];
            header[..8].copy_from_slice(&page.to_le_bytes());
            self.put_in(&mut root, name, &header, BUCKET_LEAF)?;
        }
        let root = self.finish_tree(root)?;
        let freelist = self.next_page;
        let mut empty = [0u8; PAGE_SIZE];
        empty[0..8].copy_from_slice(&freelist.to_le_bytes());
        empty[8..10].copy_from_slice(&FREELIST.to_le_bytes());
        self.out.write_all(&empty).map_err(io_error(&self.path))?;
        self.next_page += 1;

        self.out
            .seek(SeekFrom::Start(0))
            .map_err(io_error(&self.path))?;
        for id in 0..2u64 {
            self.out
                .write_all(&meta_page(id, root, freelist, self.next_page))
                .map_err(io_error(&self.path))?;
        }
        let file = self.out.into_inner().map_err(|e| BboltError::Io {
            path: self.path.clone(),
            source: e.into_error(),
        })?;
        file.sync_all().map_err(io_error(&self.path))?;
        Ok(self.next_page * PAGE_SIZE as u64)
    }
}

fn meta_page(id: u64, root: u64, freelist: u64, pages: u64) -> [u8; PAGE_SIZE] {
    let mut page = [0u8; PAGE_SIZE];
    page[0..8].copy_from_slice(&id.to_le_bytes());
    page[8..10].copy_from_slice(&META.to_le_bytes());
    let body = &mut page[PAGE_HEADER..PAGE_HEADER + META_BODY];
    body[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    body[4..8].copy_from_slice(&VERSION.to_le_bytes());
    body[8..12].copy_from_slice(&(PAGE_SIZE as u32).to_le_bytes());
    // flags (12..16) and the root bucket's sequence (24..32) stay zero.
    body[16..24].copy_from_slice(&root.to_le_bytes());
    body[32..40].copy_from_slice(&freelist.to_le_bytes());
    body[40..48].copy_from_slice(&pages.to_le_bytes());
    body[48..56].copy_from_slice(&TXID.to_le_bytes());
    let checksum = fnv1a(&body[..META_CHECKSUM_AT]);
    body[META_CHECKSUM_AT..].copy_from_slice(&checksum.to_le_bytes());
    page
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Reader;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    type Buckets = BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, Vec<u8>>>;

    fn write(path: &Path, buckets: &Buckets) -> u64 {
        let mut w = Writer::create(path).unwrap();
        // Buckets in reverse order: the writer sorts the list itself.
        for (name, entries) in buckets.iter().rev() {
            w.bucket(name).unwrap();
            for (k, v) in entries {
                w.put(k, v).unwrap();
            }
        }
        w.finish().unwrap()
    }

    fn read(path: &Path) -> Buckets {
        let r = Reader::open(path).unwrap();
        let mut out = Buckets::new();
        for name in r.bucket_names().unwrap() {
            let mut entries = BTreeMap::new();
            let mut last: Option<Vec<u8>> = None;
            r.each(&name, &mut |k, v| {
                assert!(last.as_deref().is_none_or(|l| l < k), "keys out of order");
                last = Some(k.to_vec());
                entries.insert(k.to_vec(), v.to_vec());
                Ok::<(), BboltError>(())
            })
            .unwrap();
            out.insert(name, entries);
        }
        out
    }

    #[test]
    fn an_empty_file_and_empty_buckets_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut buckets = Buckets::new();
        assert_eq!(write(&path, &buckets), 4 * PAGE_SIZE as u64);
        assert!(read(&path).is_empty());
        buckets.insert(b"key".to_vec(), BTreeMap::new());
        buckets.insert(b"meta".to_vec(), BTreeMap::new());
        write(&path, &buckets);
        assert_eq!(read(&path), buckets);
        let r = Reader::open(&path).unwrap();
        assert_eq!(r.size(), std::fs::metadata(&path).unwrap().len());
    }

    #[test]
    fn a_deep_tree_with_overflow_pages_reads_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut entries = BTreeMap::new();
        for i in 0..60_000u64 {
            // Mostly small values, some spanning several pages, long keys now and then.
            let value = match i % 997 {
                0 => vec![7u8; 3 * PAGE_SIZE + 5],
                1 => vec![1u8; PAGE_SIZE - PAGE_HEADER - ELEMENT - 8],
                _ => i.to_le_bytes().repeat((i % 9) as usize),
            };
            let mut key = i.to_be_bytes().to_vec();
            if i % 1001 == 0 {
                key.extend(std::iter::repeat_n(b'k', 3000));
            }
            entries.insert(key, value);
        }
        let mut buckets = Buckets::new();
        buckets.insert(b"key".to_vec(), entries);
        buckets.insert(b"lease".to_vec(), BTreeMap::new());
        // Long keys in branch pages still give a shallow tree (two children per branch at
        // least), not one level per key.
        assert!(write(&path, &buckets) < 16 << 20);
        assert_eq!(read(&path), buckets);
    }

    #[test]
    fn keys_out_of_order_and_duplicate_buckets_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::create(&dir.path().join("db")).unwrap();
        assert!(matches!(w.put(b"a", b""), Err(BboltError::NoBucket)));
        w.bucket(b"b").unwrap();
        w.put(b"k2", b"").unwrap();
        assert!(matches!(
            w.put(b"k1", b""),
            Err(BboltError::OutOfOrder { .. })
        ));
        assert!(matches!(
            w.put(b"k2", b""),
            Err(BboltError::OutOfOrder { .. })
        ));
        assert!(matches!(
            w.put(b"", b""),
            Err(BboltError::Unsupported { .. })
        ));
        w.bucket(b"a").unwrap();
        assert!(matches!(
            w.bucket(b"b"),
            Err(BboltError::DuplicateBucket(_))
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn whatever_is_written_reads_back(
            buckets in proptest::collection::btree_map(
                proptest::collection::vec(any::<u8>(), 1..12),
                proptest::collection::btree_map(
                    proptest::collection::vec(any::<u8>(), 1..40),
                    proptest::collection::vec(any::<u8>(), 0..9000),
                    0..300,
                ),
                0..5,
            )
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("db");
            let size = write(&path, &buckets);
            prop_assert_eq!(size, std::fs::metadata(&path).unwrap().len());
            prop_assert_eq!(read(&path), buckets);
        }
    }
}
