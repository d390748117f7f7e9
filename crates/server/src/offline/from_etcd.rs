//! A Cairn backend from etcd's: what `snapshot restore` does with a snapshot of real etcd.
//!
//! etcd's `key` bucket holds the same records Cairn's `kv` table does (an encoded
//! `mvccpb.KeyValue` per revision, a tombstone for a deletion), so every revision of the
//! history is carried over as it was, with its create and mod revisions and versions; leases
//! keep their TTL and the remaining TTL etcd last checkpointed; the compaction etcd finished is
//! kept; users, roles (with their bcrypt password hashes and permissions), whether auth is on
//! and the auth revision are carried too. Membership is not (a restore starts a new cluster, as
//! with etcd).

use super::OfflineError;
use super::bbolt::Bbolt;
use prost::Message;
use std::path::Path;

/// etcd's `leasepb.Lease`.
#[derive(Clone, PartialEq, prost::Message)]
struct EtcdLease {
    #[prost(int64, tag = "1")]
    id: i64,
    #[prost(int64, tag = "2")]
    ttl: i64,
    #[prost(int64, tag = "3")]
    remaining_ttl: i64,
}

/// etcd's revision key: main and sub as big-endian u64 around a `_`, and a `t` after a
/// tombstone's.
fn revision(key: &[u8]) -> Option<(i64, i64, bool)> {
    let main = i64::from_be_bytes(key.get(..8)?.try_into().ok()?);
    let sub = i64::from_be_bytes(key.get(9..17)?.try_into().ok()?);
    let tombstone = match key.len() {
        17 => false,
        18 if key[17] == b't' => true,
        _ => return None,
    };
    (key[8] == b'_').then_some((main, sub, tombstone))
}

/// Writes a new Cairn backend at `dest` from the etcd backend at `src`.
pub(crate) fn convert(src: &Path, dest: &Path) -> Result<(), OfflineError> {
    let etcd = Bbolt::open(src)?;
    let mut auth = cairn_proto::cairnpb::AuthState {
        revision: 1,
        ..Default::default()
    };
    let bad_auth = |what: &str, e: prost::DecodeError| OfflineError::NotEtcdBackend {
        path: src.to_path_buf(),
        what: format!("{what}: {e}"),
    };
    etcd.each(b"auth", &mut |key, value| {
        match key {
            b"authEnabled" => auth.enabled = value == [1],
            b"authRevision" => {
                if let Some(rev) = value.get(..8).and_then(|b| b.try_into().ok()) {
                    auth.revision = u64::from_be_bytes(rev);
                }
            }
            _ => {}
        }
        Ok(())
    })?;
    etcd.each(b"authUsers", &mut |_, value| {
        let user = cairn_proto::authpb::User::decode(value).map_err(|e| bad_auth("a user", e))?;
        auth.users.push(user);
        Ok(())
    })?;
    etcd.each(b"authRoles", &mut |_, value| {
        let role = cairn_proto::authpb::Role::decode(value).map_err(|e| bad_auth("a role", e))?;
        auth.roles.push(role);
        Ok(())
    })?;
    let mut compacted = 0i64;
    etcd.each(b"meta", &mut |key, value| {
        if key == b"finishedCompactRev"
            && let Some(main) = value.get(..8).and_then(|b| b.try_into().ok())
        {
            compacted = i64::from_be_bytes(main);
        }
        Ok(())
    })?;
    let bad = |what: String| OfflineError::NotEtcdBackend {
        path: src.to_path_buf(),
        what,
    };
    let mut failure = None;
    let imported = cairn_mvcc::offline::import(dest, |import| {
        let copied = etcd.each(b"key", &mut |key, value| {
            let (main, sub, tombstone) =
                revision(key).ok_or_else(|| bad(format!("a key record named {key:02x?}")))?;
            import
                .record(main, sub, tombstone, value)
                .map_err(OfflineError::Mvcc)
        });
        let leases = etcd.each(b"lease", &mut |_, value| {
            let lease = EtcdLease::decode(value).map_err(|e| bad(format!("a lease: {e}")))?;
            let remaining = if lease.remaining_ttl > 0 {
                lease.remaining_ttl
            } else {
                lease.ttl
            };
            let record = crate::lease::encode_record(lease.ttl, remaining.saturating_mul(1000));
            import.lease(lease.id, &record).map_err(OfflineError::Mvcc)
        });
        import.compacted(compacted);
        import.meta(crate::auth::AUTH_KEY, auth.encode_to_vec());
        match copied.and(leases) {
            Ok(true) => Ok(()),
            Ok(false) => {
                failure = Some(bad("no key bucket".into()));
                Err(cairn_mvcc::MvccError::Backend("not an etcd backend".into()))
            }
            Err(e) => {
                failure = Some(e);
                Err(cairn_mvcc::MvccError::Backend("import failed".into()))
            }
        }
    });
    match (imported, failure) {
        (Ok(_), _) => Ok(()),
        (Err(_), Some(e)) => Err(e),
        (Err(e), None) => Err(OfflineError::Mvcc(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_revision_keys_read_as_etcd_writes_them() {
        let mut key = 5i64.to_be_bytes().to_vec();
        key.push(b'_');
        key.extend_from_slice(&2i64.to_be_bytes());
        assert_eq!(revision(&key), Some((5, 2, false)));
        key.push(b't');
        assert_eq!(revision(&key), Some((5, 2, true)));
        key.push(b'x');
        assert_eq!(revision(&key), None);
        assert_eq!(revision(b"short"), None);
    }
}
