//! etcd's backend, as its snapshot files carry it: the buckets of a bbolt file and the records
//! in them, mapped to and from Cairn's store.
//!
//! Owns: etcd's bucket names and record encodings (revision keys, `leasepb.Lease`, the auth
//! records, the members' JSON, alarms), [`import`]ing a snapshot of etcd into a new Cairn
//! backend (restore), [`export`]ing a consistent view of Cairn's backend as etcd's file (what
//! Maintenance.Snapshot sends, so `etcdctl snapshot status|restore` and etcd itself read it),
//! [`status`], the numbers `etcdutl snapshot status` prints, and [`adopt`]ing a data dir etcd
//! wrote (its backend and its WAL, read by `wal`), so that `cairn` starts where etcd stopped.
//!
//! Must not: know bbolt's pages (`cairn_bbolt` does) or redb's tables (`cairn_mvcc` does).

mod adopt;
mod export;
mod import;
mod wal;

pub(crate) use adopt::adopt;
pub(crate) use export::export;
pub(crate) use import::convert;

/// etcd's buckets.
const KEY: &[u8] = b"key";
const META: &[u8] = b"meta";
const LEASE: &[u8] = b"lease";
const ALARM: &[u8] = b"alarm";
const AUTH: &[u8] = b"auth";
const AUTH_USERS: &[u8] = b"authUsers";
const AUTH_ROLES: &[u8] = b"authRoles";
const MEMBERS: &[u8] = b"members";
const MEMBERS_REMOVED: &[u8] = b"members_removed";
const CLUSTER: &[u8] = b"cluster";

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
fn revision_key(main: i64, sub: i64, tombstone: bool) -> Vec<u8> {
    let (key, len) = revision_key_array(main, sub, tombstone);
    key[..len].to_vec()
}

/// [`revision_key`] without an allocation: the bytes and how many of them are the key.
fn revision_key_array(main: i64, sub: i64, tombstone: bool) -> ([u8; 18], usize) {
    let mut key = [0u8; 18];
    key[..8].copy_from_slice(&main.to_be_bytes());
    key[8] = b'_';
    key[9..17].copy_from_slice(&sub.to_be_bytes());
    key[17] = b't';
    (key, if tombstone { 18 } else { 17 })
}

fn parse_revision_key(key: &[u8]) -> Option<(i64, i64, bool)> {
    let main = i64::from_be_bytes(key.get(..8)?.try_into().ok()?);
    let sub = i64::from_be_bytes(key.get(9..17)?.try_into().ok()?);
    let tombstone = match key.len() {
        17 => false,
        18 if key[17] == b't' => true,
        _ => return None,
    };
    (key[8] == b'_').then_some((main, sub, tombstone))
}

/// What `etcdutl snapshot status` reports of a backend.
pub(crate) struct Status {
    pub hash: u32,
    pub revision: i64,
    pub total_keys: u64,
    pub total_size: u64,
}

/// etcd's snapshot status: a CRC-32C over every bucket's name and then its keys and values,
/// the main revision of the last record in `key`, the number of entries, and the size.
pub(crate) fn status(path: &std::path::Path) -> Result<Status, cairn_bbolt::BboltError> {
    let file = cairn_bbolt::Reader::open(path)?;
    let mut hash = 0u32;
    let mut revision = 0i64;
    let mut total_keys = 0u64;
    for name in file.bucket_names()? {
        hash = crc32c::crc32c_append(hash, &name);
        let is_key = name == KEY;
        file.each(&name, &mut |key, value| {
            hash = crc32c::crc32c_append(hash, key);
            hash = crc32c::crc32c_append(hash, value);
            if is_key && let Some(main) = key.get(..8).and_then(|b| b.try_into().ok()) {
                revision = i64::from_be_bytes(main);
            }
            total_keys += 1;
            Ok::<(), cairn_bbolt::BboltError>(())
        })?;
    }
    Ok(Status {
        hash,
        revision,
        total_keys,
        total_size: file.size(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_revision_keys_read_as_etcd_writes_them() {
        let mut key = revision_key(5, 2, false);
        assert_eq!(key.len(), 17);
        assert_eq!(parse_revision_key(&key), Some((5, 2, false)));
        key.push(b't');
        assert_eq!(key, revision_key(5, 2, true));
        assert_eq!(parse_revision_key(&key), Some((5, 2, true)));
        key.push(b'x');
        assert_eq!(parse_revision_key(&key), None);
        assert_eq!(parse_revision_key(b"short"), None);
    }
}
