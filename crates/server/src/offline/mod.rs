//! What `cairnutl` does while no member runs: read and check snapshot files, restore one into a
//! new member's data dir, defragment a stopped member's backend, hash its history, set the
//! storage version it records (`migrate`), copy it for a new cluster (`backup`).
//!
//! Owns: the layout of a data dir as these tools see it (`member/snap/db`, `member/wal`), the
//! snapshot file's framing (the backend followed by the SHA-256 of it, as Maintenance.Snapshot
//! sends it), and the staging that makes a restore all-or-nothing.
//!
//! Must not: touch a data dir a member has open (the backend's file lock refuses it), or leave a
//! half-written data dir where a member could start on it.

mod backup;
mod restore;
mod snapshot_file;

pub use backup::{BackupOptions, backup, clear_mark, is_marked_backup};
pub use restore::{RestoreOptions, Restored, restore};
pub use snapshot_file::{SnapshotStatus, snapshot_status};

use std::path::{Path, PathBuf};

/// Errors of the offline tools; the texts are etcdutl's where etcdutl has one.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("snapshot missing hash but --skip-hash-check=false")]
    MissingHash,
    #[error("expected sha256 {expected:?}, got {got:?}")]
    HashMismatch { expected: Vec<u8>, got: Vec<u8> },
    #[error("data-dir {0:?} not empty or could not be read")]
    DataDirNotEmpty(String),
    #[error("wal-dir {0:?} exists")]
    WalDirExists(String),
    #[error("--mark-compacted required if --revision-bump > 0")]
    BumpWithoutMark,
    #[error("{path}: not a Cairn backend or damaged: {source}")]
    NotABackend {
        path: PathBuf,
        source: cairn_mvcc::MvccError,
    },
    #[error(transparent)]
    Mvcc(#[from] cairn_mvcc::MvccError),
    #[error(transparent)]
    Raft(#[from] cairn_raft::RaftError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Server(#[from] crate::ServerError),
    #[error("{path}: not an etcd backend or damaged: {what}")]
    NotEtcdBackend { path: PathBuf, what: String },
    /// etcdutl's words for a backup dir that already holds a backup.
    #[error("expected {dir:?} to be empty, got [{}]", names.join(" "))]
    NotEmpty { dir: String, names: Vec<String> },
    #[error(transparent)]
    Bbolt(cairn_bbolt::BboltError),
    /// etcdutl's words for a migration to a version it does not know.
    #[error("cannot create migration plan: version {0:?} is not supported")]
    Unsupported(String),
}

impl From<cairn_bbolt::BboltError> for OfflineError {
    fn from(e: cairn_bbolt::BboltError) -> Self {
        match e {
            cairn_bbolt::BboltError::Damaged { path, what } => {
                OfflineError::NotEtcdBackend { path, what }
            }
            other => OfflineError::Bbolt(other),
        }
    }
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> OfflineError + '_ {
    move |source| OfflineError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The backend file of the data dir `data_dir`.
/// Makes a directory's entries (files created or renamed in it) durable.
pub(crate) fn sync_dir(path: &Path) -> Result<(), OfflineError> {
    std::fs::File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(io_error(path))
}

pub fn backend_path(data_dir: &Path) -> PathBuf {
    data_dir.join("member").join("snap").join("db")
}

/// `cairnutl defrag --data-dir`: rewrites a stopped member's backend without its free pages.
/// Returns the file's size before and after; `progress` hears records copied and the total.
pub fn defragment(
    data_dir: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(u64, u64), OfflineError> {
    let db = backend_path(data_dir);
    if !db.exists() {
        return Err(OfflineError::Io {
            path: db,
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
    }
    Ok(cairn_mvcc::offline::defragment(&db, progress)?)
}

/// `cairnutl hashkv`: etcd's HashKV of a backend file (a stopped member's `member/snap/db`) at
/// `revision` (0: the latest). Returns (hash, hash revision, compact revision).
pub fn hash_kv(db: &Path, revision: i64) -> Result<(u32, i64, i64), OfflineError> {
    let store = cairn_mvcc::Store::open(db).map_err(|source| OfflineError::NotABackend {
        path: db.to_path_buf(),
        source,
    })?;
    let (hash, compacted, hashed) = store.hash_kv(revision)?;
    Ok((hash, hashed, compacted))
}

/// What `cairnutl migrate` found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Migrated {
    /// The backend already records the target (major.minor).
    UpToDate(String),
    /// The storage version was set to the target (major.minor.0).
    Updated(String),
    /// The target is newer than this build knows, and `force` set it all the same.
    Forced(String),
}

/// `cairnutl migrate`: sets the storage version a stopped member's backend records to
/// `major.minor`, as etcdutl 3.6's migrate sets etcd's schema version. Cairn's storage format
/// is the same at every version, so only the record changes; a member started on the data
/// dir moves it back to the cluster version (see `cluster::version`). A version newer than
/// this build's is refused unless `force`.
pub fn migrate(
    data_dir: &Path,
    major: u64,
    minor: u64,
    force: bool,
) -> Result<Migrated, OfflineError> {
    use crate::cluster::version::{STORAGE_VERSION_KEY, Version};
    let db = backend_path(data_dir);
    if !db.exists() {
        return Err(OfflineError::Io {
            path: db,
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
    }
    let store = cairn_mvcc::Store::open(&db).map_err(|source| OfflineError::NotABackend {
        path: db.clone(),
        source,
    })?;
    let target = Version { major, minor };
    // A backend from before storage versions were recorded was written at this build's.
    let current = Version::stored(&store)?.unwrap_or_else(Version::server);
    if current == target {
        return Ok(Migrated::UpToDate(target.major_minor()));
    }
    let newer = target > Version::server();
    if newer && !force {
        return Err(OfflineError::Unsupported(target.full()));
    }
    let (index, term) = (store.consistent_index(), store.term());
    let mut a = store.begin_apply()?;
    a.put_meta(STORAGE_VERSION_KEY, target.full().as_bytes())?;
    a.commit(index, term, true)?;
    Ok(if newer {
        Migrated::Forced(target.major_minor())
    } else {
        Migrated::Updated(target.full())
    })
}
