//! `cairnutl snapshot restore`: a new member's data dir from a snapshot file, for a new cluster
//! that `--initial-cluster` describes.
//!
//! The data dir (and the WAL dir, when it is separate) is built under a staging name beside its
//! final place and renamed into place only when complete, WAL dir first: a crash at any point
//! leaves either no data dir or a whole one, never one a member could start on half-written.
//! A staging dir left by a crash is removed by the next restore to the same place.

use super::snapshot_file::extract;
use super::{OfflineError, backend_path, io_error, sync_dir};
use crate::config::Config;
use crate::etcd::initial_membership;
use prost::Message;
use std::path::{Path, PathBuf};

/// etcdutl's flags.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub snapshot: PathBuf,
    pub name: String,
    /// Empty: `<name>.etcd`.
    pub data_dir: PathBuf,
    pub wal_dir: Option<PathBuf>,
    pub initial_cluster: String,
    pub initial_cluster_token: String,
    pub initial_advertise_peer_urls: String,
    pub skip_hash_check: bool,
    pub bump_revision: u64,
    pub mark_compacted: bool,
}

/// What a restore made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub data_dir: PathBuf,
    pub wal_dir: PathBuf,
    pub cluster_id: u64,
    pub member_id: u64,
    /// The store revision the member starts at, and the compaction it reports.
    pub revision: i64,
    pub compact_revision: i64,
    /// The Raft index and term the new log starts after.
    pub index: u64,
    pub term: u64,
}

/// The name a directory is built under before it is renamed to `path`.
fn staging(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "data".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.restoring"))
}

fn is_empty_dir(path: &Path) -> bool {
    std::fs::read_dir(path).is_ok_and(|mut entries| entries.next().is_none())
}

fn parent_of(path: &Path) -> PathBuf {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Moves a completed staging dir into place, durably.
fn install(staged: &Path, path: &Path) -> Result<(), OfflineError> {
    if is_empty_dir(path) {
        std::fs::remove_dir(path).map_err(io_error(path))?;
    }
    std::fs::rename(staged, path).map_err(io_error(path))?;
    sync_dir(&parent_of(path))
}

fn fresh_dir(path: &Path) -> Result<(), OfflineError> {
    if path.exists() {
        std::fs::remove_dir_all(path).map_err(io_error(path))?;
    }
    std::fs::create_dir_all(path).map_err(io_error(path))
}

/// `progress` hears the snapshot bytes copied so far and the total (the copy is most of the
/// work).
pub fn restore(
    opts: &RestoreOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Restored, OfflineError> {
    if opts.mark_compacted != (opts.bump_revision > 0) {
        return Err(OfflineError::BumpWithoutMark);
    }
    let config = Config {
        name: opts.name.clone(),
        initial_cluster: opts.initial_cluster.clone(),
        initial_cluster_token: opts.initial_cluster_token.clone(),
        initial_advertise_peer_urls: opts.initial_advertise_peer_urls.clone(),
        ..Config::default()
    };
    config.local_initial_member()?;
    let (membership, cluster_id, member_id) = initial_membership(&config)?;

    let data_dir = if opts.data_dir.as_os_str().is_empty() {
        PathBuf::from(format!("{}.etcd", opts.name))
    } else {
        opts.data_dir.clone()
    };
    if data_dir.exists() && !is_empty_dir(&data_dir) {
        return Err(OfflineError::DataDirNotEmpty(
            data_dir.display().to_string(),
        ));
    }
    if let Some(wal) = &opts.wal_dir
        && wal.exists()
    {
        return Err(OfflineError::WalDirExists(wal.display().to_string()));
    }

    let staged_data = staging(&data_dir);
    let staged_wal = match &opts.wal_dir {
        Some(wal) => staging(wal),
        None => staged_data.join("member").join("wal"),
    };
    let built = build(
        opts,
        &staged_data,
        &staged_wal,
        &membership,
        cluster_id,
        member_id,
        progress,
    );
    let rebased = match built {
        Ok(rebased) => rebased,
        Err(e) => {
            // Nothing of a failed restore stays behind.
            let _ = std::fs::remove_dir_all(&staged_data);
            if opts.wal_dir.is_some() {
                let _ = std::fs::remove_dir_all(&staged_wal);
            }
            return Err(e);
        }
    };
    let (index, term) = (rebased.index, rebased.term);
    let wal_dir = match &opts.wal_dir {
        Some(wal) => {
            install(&staged_wal, wal)?;
            wal.clone()
        }
        None => data_dir.join("member").join("wal"),
    };
    install(&staged_data, &data_dir)?;
    Ok(Restored {
        data_dir,
        wal_dir,
        cluster_id,
        member_id,
        revision: rebased.store.revision,
        compact_revision: rebased.store.compact_revision,
        index,
        term,
    })
}

/// Where [`build`] left the staged copy.
struct Built {
    store: cairn_mvcc::offline::Rebased,
    index: u64,
    term: u64,
}

/// Fills the staging dirs: the checked backend, rebased onto the new cluster, and its WAL.
fn build(
    opts: &RestoreOptions,
    staged_data: &Path,
    staged_wal: &Path,
    membership: &cairn_proto::cairnpb::Membership,
    cluster_id: u64,
    member_id: u64,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Built, OfflineError> {
    fresh_dir(staged_data)?;
    if opts.wal_dir.is_some() {
        fresh_dir(staged_wal)?;
    }
    let db = backend_path(staged_data);
    let snap_dir = parent_of(&db);
    std::fs::create_dir_all(&snap_dir).map_err(io_error(&snap_dir))?;
    extract(&opts.snapshot, &db, !opts.skip_hash_check, progress)?;
    if cairn_bbolt::is_bbolt(&db) {
        // A snapshot of real etcd: its backend becomes a Cairn one first.
        let etcd = db.with_extension("etcd");
        std::fs::rename(&db, &etcd).map_err(io_error(&db))?;
        let converted = crate::etcd_backend::convert(&etcd, &db);
        let _ = std::fs::remove_file(&etcd);
        converted.map_err(|e| match e {
            // Named after the file the operator gave, not the staged copy.
            OfflineError::NotEtcdBackend { what, .. } => OfflineError::NotEtcdBackend {
                path: opts.snapshot.clone(),
                what,
            },
            other => other,
        })?;
    }

    // As etcd: the new log starts after one index per member, in term 1.
    let index = membership.members.len() as u64;
    let term = 1;
    let store = cairn_mvcc::offline::rebase(
        &db,
        &cairn_mvcc::offline::Rebase {
            consistent_index: index,
            term,
            bump_revision: opts.bump_revision,
            mark_compacted: opts.mark_compacted,
            meta: vec![
                ("cluster_id".into(), cluster_id.to_le_bytes().to_vec()),
                ("member_id".into(), member_id.to_le_bytes().to_vec()),
                ("member_name".into(), opts.name.as_bytes().to_vec()),
                (
                    crate::cluster::membership::MEMBERS_KEY.into(),
                    membership.encode_to_vec(),
                ),
            ],
        },
    )
    .map_err(|source| OfflineError::NotABackend {
        path: opts.snapshot.clone(),
        source,
    })?;
    let voters: Vec<u64> = membership.members.iter().map(|m| m.id).collect();
    cairn_raft::bootstrap_wal(staged_wal, index, term, &voters)?;
    sync_dir(&snap_dir)?;
    sync_dir(&parent_of(&snap_dir))?;
    sync_dir(staged_data)?;
    Ok(Built { store, index, term })
}
