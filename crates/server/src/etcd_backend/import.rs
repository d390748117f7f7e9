//! A Cairn backend from etcd's: what `snapshot restore` does with a snapshot of real etcd.
//!
//! etcd's `key` bucket holds the same records Cairn's `kv` table does (an encoded
//! `mvccpb.KeyValue` per revision, a tombstone for a deletion), so every revision of the
//! history is carried over as it was, with its create and mod revisions and versions; leases
//! keep their TTL and the remaining TTL etcd last checkpointed; the compaction etcd finished is
//! kept; users, roles (with their bcrypt password hashes and permissions), whether auth is on
//! and the auth revision are carried too, and so are active alarms (as etcd's restore keeps
//! them). Membership is not (a restore starts a new cluster, as
//! with etcd).

use super::{ALARM, AUTH, AUTH_ROLES, AUTH_USERS, EtcdLease, KEY, LEASE, META, parse_revision_key};
use crate::offline::OfflineError;
use cairn_bbolt::Reader;
use prost::Message;
use std::path::Path;

/// Writes a new Cairn backend at `dest` from the etcd backend at `src`.
pub(crate) fn convert(src: &Path, dest: &Path) -> Result<(), OfflineError> {
    let etcd = Reader::open(src)?;
    let mut auth = cairn_proto::cairnpb::AuthState {
        revision: 1,
        ..Default::default()
    };
    let undecodable = |what: &str, e: prost::DecodeError| OfflineError::NotEtcdBackend {
        path: src.to_path_buf(),
        what: format!("{what}: {e}"),
    };
    etcd.each::<OfflineError>(AUTH, &mut |key, value| {
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
    etcd.each::<OfflineError>(AUTH_USERS, &mut |_, value| {
        let user =
            cairn_proto::authpb::User::decode(value).map_err(|e| undecodable("a user", e))?;
        auth.users.push(user);
        Ok(())
    })?;
    etcd.each::<OfflineError>(AUTH_ROLES, &mut |_, value| {
        let role =
            cairn_proto::authpb::Role::decode(value).map_err(|e| undecodable("a role", e))?;
        auth.roles.push(role);
        Ok(())
    })?;
    let mut alarms = Vec::new();
    etcd.each::<OfflineError>(ALARM, &mut |key, _| {
        let alarm = cairn_proto::etcdserverpb::AlarmMember::decode(key)
            .map_err(|e| undecodable("an alarm", e))?;
        alarms.push(alarm);
        Ok(())
    })?;
    alarms.sort_by_key(|m| (m.member_id, m.alarm));
    let mut compacted = 0i64;
    etcd.each::<OfflineError>(META, &mut |key, value| {
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
        let copied = etcd.each(KEY, &mut |key, value| {
            let (main, sub, tombstone) = parse_revision_key(key)
                .ok_or_else(|| bad(format!("a key record named {key:02x?}")))?;
            import
                .record(main, sub, tombstone, value)
                .map_err(OfflineError::Mvcc)
        });
        let leases = etcd.each(LEASE, &mut |_, value| {
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
        if !alarms.is_empty() {
            let (name, value) = crate::alarm::to_store(std::mem::take(&mut alarms));
            import.meta(name, value);
        }
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

/// The consistent index etcd recorded in its backend: the last log entry whose effects it holds
/// (etcd 3.4 records it only with entries that change keys; see `adopt`).
pub(crate) fn consistent_index(etcd: &Reader) -> Result<u64, OfflineError> {
    let mut index = 0;
    etcd.each::<OfflineError>(META, &mut |key, value| {
        if key == b"consistent_index"
            && let Some(raw) = value.get(..8).and_then(|b| b.try_into().ok())
        {
            index = u64::from_be_bytes(raw);
        }
        Ok(())
    })?;
    Ok(index)
}

/// A member as etcd stores it: in its backend's `members` bucket, and as the context of the
/// configuration change that added it.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub(crate) struct EtcdMember {
    #[serde(default)]
    pub id: u64,
    #[serde(rename = "peerURLs", default)]
    pub peer_urls: Vec<String>,
    #[serde(rename = "isLearner", default)]
    pub is_learner: bool,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "clientURLs", default)]
    pub client_urls: Vec<String>,
}

/// The members and removed member ids etcd's backend records (empty in a backend etcd's
/// restore made: that keeps the members in the log only).
pub(crate) fn members(etcd: &Reader) -> Result<(Vec<EtcdMember>, Vec<u64>), OfflineError> {
    let path = std::path::PathBuf::new();
    let bad = |what: String| OfflineError::NotEtcdBackend {
        path: path.clone(),
        what,
    };
    let mut members = Vec::new();
    etcd.each::<OfflineError>(super::MEMBERS, &mut |key, value| {
        let mut member: EtcdMember = serde_json::from_slice(value)
            .map_err(|e| bad(format!("member {}: {e}", String::from_utf8_lossy(key))))?;
        if member.id == 0 {
            member.id = u64::from_str_radix(&String::from_utf8_lossy(key), 16)
                .map_err(|e| bad(format!("member id {:?}: {e}", String::from_utf8_lossy(key))))?;
        }
        members.push(member);
        Ok(())
    })?;
    let mut removed = Vec::new();
    etcd.each::<OfflineError>(super::MEMBERS_REMOVED, &mut |key, _| {
        let id = u64::from_str_radix(&String::from_utf8_lossy(key), 16)
            .map_err(|e| bad(format!("removed member id: {e}")))?;
        removed.push(id);
        Ok(())
    })?;
    Ok((members, removed))
}
