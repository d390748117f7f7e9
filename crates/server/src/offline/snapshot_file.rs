//! Snapshot files as Maintenance.Snapshot writes them: the backend, then the SHA-256 of the
//! backend. Like etcd, a file whose size is 32 bytes past a multiple of 512 carries the hash
//! (backend files are whole pages); any other file is a bare backend copied from a data dir.

use super::{OfflineError, io_error};
use ring::digest::{Context, SHA256};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

const HASH_BYTES: u64 = 32;

fn has_hash(size: u64) -> bool {
    size % 512 == HASH_BYTES
}

/// Writes the backend part of `snapshot` to a new file `dest` and makes it durable. With
/// `verify`, the file must carry its hash and the hash must match. `progress` hears the bytes
/// copied so far and the total.
pub(crate) fn extract(
    snapshot: &Path,
    dest: &Path,
    verify: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(), OfflineError> {
    let mut src = File::open(snapshot).map_err(io_error(snapshot))?;
    let size = src.metadata().map_err(io_error(snapshot))?.len();
    let hashed = has_hash(size);
    if verify && !hashed {
        return Err(OfflineError::MissingHash);
    }
    let body = if hashed { size - HASH_BYTES } else { size };
    let mut out = File::create(dest).map_err(io_error(dest))?;
    let mut digest = Context::new(&SHA256);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = body;
    while left > 0 {
        let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        src.read_exact(&mut buf[..want])
            .map_err(io_error(snapshot))?;
        digest.update(&buf[..want]);
        out.write_all(&buf[..want]).map_err(io_error(dest))?;
        left -= want as u64;
        progress(body - left, body);
    }
    if verify {
        let mut expected = [0u8; HASH_BYTES as usize];
        src.read_exact(&mut expected).map_err(io_error(snapshot))?;
        let got = digest.finish();
        if got.as_ref() != expected {
            return Err(OfflineError::HashMismatch {
                expected: expected.to_vec(),
                got: got.as_ref().to_vec(),
            });
        }
    }
    out.sync_all().map_err(io_error(dest))?;
    Ok(())
}

/// A file removed when dropped: the backend copy a command works on.
pub(crate) struct Scratch(pub(crate) PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A scratch file beside `near` (same file system, so no space is assumed elsewhere).
pub(crate) fn scratch_beside(near: &Path, what: &str) -> Scratch {
    let name = near
        .file_name()
        .map_or_else(|| "snapshot".into(), |n| n.to_string_lossy().into_owned());
    let dir = near
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    Scratch(dir.join(format!(".{name}.{what}-{}", std::process::id())))
}

/// What `snapshot status` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotStatus {
    pub hash: u32,
    pub revision: i64,
    pub total_keys: u64,
    /// Bytes of the backend (without the hash trailer).
    pub total_size: u64,
}

/// Reads a snapshot file's status. The file itself is not changed: the backend is read from a
/// copy, since opening a backend may write to it.
pub fn snapshot_status(snapshot: &Path) -> Result<SnapshotStatus, OfflineError> {
    let copy = scratch_beside(snapshot, "status");
    extract(snapshot, &copy.0, false, &mut |_, _| {})?;
    if cairn_bbolt::is_bbolt(&copy.0) {
        // A snapshot in etcd's format: its numbers as etcdutl computes them.
        let status = crate::etcd_backend::status(&copy.0)?;
        return Ok(SnapshotStatus {
            hash: status.hash,
            revision: status.revision,
            total_keys: status.total_keys,
            total_size: status.total_size,
        });
    }
    let total_size = std::fs::metadata(&copy.0).map_err(io_error(&copy.0))?.len();
    let status =
        cairn_mvcc::offline::status(&copy.0).map_err(|source| OfflineError::NotABackend {
            path: snapshot.to_path_buf(),
            source,
        })?;
    Ok(SnapshotStatus {
        hash: status.hash,
        revision: status.revision,
        total_keys: status.total_keys,
        total_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_presence_follows_the_size() {
        assert!(has_hash(4096 + 32));
        assert!(has_hash(32));
        assert!(!has_hash(4096));
        assert!(!has_hash(4096 + 31));
    }

    #[test]
    fn a_changed_byte_or_a_cut_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let body = vec![7u8; 1024];
        let mut file = body.clone();
        file.extend_from_slice(ring::digest::digest(&SHA256, &body).as_ref());
        let good = dir.path().join("good");
        std::fs::write(&good, &file).unwrap();
        let out = dir.path().join("out");
        extract(&good, &out, true, &mut |_, _| {}).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), body);

        let mut flipped = file.clone();
        flipped[100] ^= 1;
        let bad = dir.path().join("bad");
        std::fs::write(&bad, &flipped).unwrap();
        assert!(matches!(
            extract(&bad, &out, true, &mut |_, _| {}),
            Err(OfflineError::HashMismatch { .. })
        ));

        let cut = dir.path().join("cut");
        std::fs::write(&cut, &file[..file.len() - 1]).unwrap();
        assert!(matches!(
            extract(&cut, &out, true, &mut |_, _| {}),
            Err(OfflineError::MissingHash)
        ));
        // A bare copy is accepted only without the check, and copied whole.
        extract(&cut, &out, false, &mut |_, _| {}).unwrap();
        assert_eq!(std::fs::read(&out).unwrap().len(), file.len() - 1);
    }
}
