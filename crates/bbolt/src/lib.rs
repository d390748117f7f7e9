//! etcd's backend file format: bbolt, a B+tree of pages with two meta pages at the front.
//!
//! Owns: the page layout (meta, branch, leaf, freelist and overflow pages, inline buckets), the
//! meta checksum, reading a file page by page ([`Reader`]) and writing a new, compact file from
//! buckets whose keys come in order ([`Writer`]).
//!
//! Must not: know what the buckets hold (etcd's bucket names and records belong to the server's
//! `etcd_backend` module), or touch a file a running bbolt has open: it reads files that are
//! not written while it reads, and writes new ones.
//!
//! # Layout, as bbolt 1.3 writes it
//!
//! ```text
//! page header  id u64, flags u16, count u16, overflow u32     (16 bytes, little endian)
//! meta         magic 0xED0CDAED u32, version 2 u32, page size u32, flags u32,
//!              root bucket (root page u64, sequence u64), freelist page u64,
//!              page count u64, txid u64, FNV-1a 64 of the 56 bytes before it
//! leaf element flags u32 (1 = bucket), pos u32, key size u32, value size u32
//! branch elem  pos u32, key size u32, child page u64
//! ```
//!
//! `pos` counts from the element itself to its key; a value follows its key. A page whose
//! elements do not fit spans `overflow` more pages. A bucket's value in its parent is its root
//! page and sequence, followed by the bucket's page itself when the bucket is inline (root 0).

mod layout;
mod read;
mod write;

pub use read::{Reader, is_bbolt};
pub use write::Writer;

use std::path::PathBuf;

/// Errors of reading and writing bbolt files.
#[derive(Debug, thiserror::Error)]
pub enum BboltError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a bbolt file or damaged: {what}")]
    Damaged { path: PathBuf, what: String },
    #[error("bucket {bucket:?}: key {key:02x?} does not sort after the key before it")]
    OutOfOrder { bucket: String, key: Vec<u8> },
    #[error("bucket {0:?} is written twice")]
    DuplicateBucket(String),
    #[error("a key or value was given before any bucket")]
    NoBucket,
    #[error("bucket {bucket:?}: {what}")]
    Unsupported { bucket: String, what: String },
}

pub type Result<T> = std::result::Result<T, BboltError>;

fn io_error(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> BboltError + '_ {
    move |source| BboltError::Io {
        path: path.to_path_buf(),
        source,
    }
}
