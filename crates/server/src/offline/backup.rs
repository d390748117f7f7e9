//! `cairnutl backup` (etcdutl 3.5's legacy `backup`): a copy of a stopped member's data dir from
//! which a new single-member cluster can be started with `--force-new-cluster`.
//!
//! etcd rewrites the copy's WAL and membership so that it cannot rejoin the cluster it came
//! from. Cairn copies the backend and the whole WAL as they are (the WAL's tail holds writes
//! the backend has not made durable yet) and marks the copy instead: a member refuses to start
//! on a marked data dir without `--force-new-cluster`, which removes every other member and
//! then the mark. Started otherwise, the copy would come up as the member it was copied from
//! and talk to that member's peers.

use super::{OfflineError, backend_path, io_error, sync_dir};
use std::path::{Path, PathBuf};

/// The file that marks a backup, in the copy's `member` dir.
const MARK: &str = "backup-needs-force-new-cluster";

/// etcdutl's flags.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    pub data_dir: PathBuf,
    /// The member's WAL dir, when it is not `<data-dir>/member/wal`.
    pub wal_dir: Option<PathBuf>,
    pub backup_dir: PathBuf,
    /// Where the copy's WAL goes, when not `<backup-dir>/member/wal`.
    pub backup_wal_dir: Option<PathBuf>,
}

fn mark_path(data_dir: &Path) -> PathBuf {
    data_dir.join("member").join(MARK)
}

/// Whether `data_dir` is a backup not yet started with `--force-new-cluster`.
pub fn is_marked_backup(data_dir: &Path) -> bool {
    mark_path(data_dir).exists()
}

/// Removes the mark once the member started alone on the copy.
pub fn clear_mark(data_dir: &Path) -> Result<(), OfflineError> {
    let mark = mark_path(data_dir);
    match std::fs::remove_file(&mark) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(&mark)(e)),
    }
}

fn copy_file(from: &Path, to: &Path) -> Result<(), OfflineError> {
    std::fs::copy(from, to).map_err(io_error(from))?;
    std::fs::File::open(to)
        .and_then(|f| f.sync_all())
        .map_err(io_error(to))
}

/// etcdutl's refusal of a backup dir that already holds a backend.
fn ensure_empty(dir: &Path) -> Result<(), OfflineError> {
    let names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => return Ok(()),
    };
    if names.is_empty() {
        return Ok(());
    }
    Err(OfflineError::NotEmpty {
        dir: dir.display().to_string(),
        names,
    })
}

/// Makes the copy; the source member must not be running (its backend's lock is taken for the
/// time of the copy, so none can start meanwhile either).
pub fn backup(opts: &BackupOptions) -> Result<(), OfflineError> {
    let db = backend_path(&opts.data_dir);
    if !db.exists() {
        return Err(OfflineError::Io {
            path: db,
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
    }
    let wal = opts
        .wal_dir
        .clone()
        .unwrap_or_else(|| opts.data_dir.join("member").join("wal"));
    let copy_db = backend_path(&opts.backup_dir);
    let copy_snap = copy_db.parent().map(Path::to_path_buf).unwrap_or_default();
    ensure_empty(&copy_snap)?;
    let copy_wal = opts
        .backup_wal_dir
        .clone()
        .unwrap_or_else(|| opts.backup_dir.join("member").join("wal"));
    ensure_empty(&copy_wal)?;
    // Held until the copy is complete: no member writes the backend or the WAL meanwhile.
    let _lock = cairn_mvcc::Store::open(&db).map_err(|source| OfflineError::NotABackend {
        path: db.clone(),
        source,
    })?;
    let copied = copy(opts, &db, &wal, &copy_db, &copy_snap, &copy_wal);
    if copied.is_err() {
        // A partial copy (a disk filled up) would start with part of the WAL missing: nothing
        // of it stays. The mark goes last, so that a copy half-removed is still marked.
        let _ = std::fs::remove_file(&copy_db);
        let _ = std::fs::remove_dir_all(&copy_wal);
        let _ = std::fs::remove_file(mark_path(&opts.backup_dir));
    }
    copied
}

fn copy(
    opts: &BackupOptions,
    db: &Path,
    wal: &Path,
    copy_db: &Path,
    copy_snap: &Path,
    copy_wal: &Path,
) -> Result<(), OfflineError> {
    std::fs::create_dir_all(copy_snap).map_err(io_error(copy_snap))?;
    std::fs::create_dir_all(copy_wal).map_err(io_error(copy_wal))?;
    // The mark first: a crash halfway leaves a copy no member starts on by accident.
    let mark = mark_path(&opts.backup_dir);
    std::fs::write(
        &mark,
        "made by cairnutl backup: start this data dir with --force-new-cluster\n",
    )
    .map_err(io_error(&mark))?;
    sync_dir(&opts.backup_dir.join("member"))?;
    copy_file(db, copy_db)?;
    let mut segments: Vec<PathBuf> = std::fs::read_dir(wal)
        .map_err(io_error(wal))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    segments.sort();
    for segment in segments {
        if let Some(name) = segment.file_name() {
            copy_file(&segment, &copy_wal.join(name))?;
        }
    }
    sync_dir(copy_snap)?;
    sync_dir(copy_wal)?;
    Ok(())
}
