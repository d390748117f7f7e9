//! Cairn's backend written as etcd's: the file Maintenance.Snapshot sends, which
//! `etcdctl snapshot status|restore`, etcdutl and etcd itself read as one of etcd's own.
//!
//! Everything etcd keeps in its backend is there, in etcd's encodings: every revision of the
//! history (a tombstone's record holds only the key, as etcd writes it), the consistent index
//! and term, the compaction, leases with their remaining TTL, users, roles and the auth state,
//! alarms, and the members (JSON, as etcd stores them). The cluster version is left out: a
//! restore makes a new cluster, which settles its version when it starts (an etcd older than
//! Cairn's reported version would otherwise refuse to start on it).

use super::{
    ALARM, AUTH, AUTH_ROLES, AUTH_USERS, CLUSTER, EtcdLease, KEY, LEASE, MEMBERS, MEMBERS_REMOVED,
    META, revision_key, revision_key_array,
};
use crate::errors::ServerError;
use cairn_bbolt::{BboltError, Writer};
use cairn_mvcc::{Frozen, FrozenMarks};
use cairn_proto::mvccpb::KeyValue;
use prost::Message;
use std::collections::BTreeMap;
use std::path::Path;

fn bbolt(e: BboltError) -> ServerError {
    ServerError::Io(format!("writing the snapshot in etcd's format: {e}"))
}

/// Writes `frozen` to a new file at `dest` in etcd's backend format and makes it durable.
/// Returns the position the file holds.
pub(crate) fn export(frozen: &Frozen, dest: &Path) -> Result<FrozenMarks, ServerError> {
    let marks = frozen.marks()?;
    let mut out = Writer::create(dest).map_err(bbolt)?;
    // The file's pages go to the disk as they are written, not in one burst at the end.
    let _paced = cairn_mvcc::writeback::Background::start(dest);

    out.bucket(KEY).map_err(bbolt)?;
    frozen.records(&mut |rev, tombstone, record| {
        let (key, len) = revision_key_array(rev.main, rev.sub, tombstone);
        let key = &key[..len];
        if tombstone {
            let deleted = KeyValue::decode(record).map_err(|e| {
                ServerError::Internal(format!("the tombstone at revision {}: {e}", rev.main))
            })?;
            let etcd_tombstone = KeyValue {
                key: deleted.key,
                ..Default::default()
            };
            out.put(key, &etcd_tombstone.encode_to_vec())
        } else {
            out.put(key, record)
        }
        .map_err(bbolt)
    })?;

    let mut meta = BTreeMap::new();
    meta.insert(
        b"consistent_index".to_vec(),
        marks.consistent_index.to_be_bytes().to_vec(),
    );
    meta.insert(b"term".to_vec(), marks.term.to_be_bytes().to_vec());
    if marks.compacted > 0 {
        let compacted = revision_key(marks.compacted, 0, false);
        meta.insert(b"scheduledCompactRev".to_vec(), compacted.clone());
        meta.insert(b"finishedCompactRev".to_vec(), compacted);
    }
    bucket(&mut out, META, meta)?;

    let mut leases = BTreeMap::new();
    frozen.leases(&mut |id, record| {
        let Some((ttl, remaining_ms)) = crate::lease::decode_record(record) else {
            return Err(ServerError::Internal(format!("the record of lease {id:x}")));
        };
        // etcd keeps a remaining TTL only once it was checkpointed below the granted one.
        let remaining = (remaining_ms + 999) / 1000;
        let lease = EtcdLease {
            id,
            ttl,
            remaining_ttl: if remaining < ttl { remaining.max(1) } else { 0 },
        };
        leases.insert((id as u64).to_be_bytes().to_vec(), lease.encode_to_vec());
        Ok(())
    })?;
    bucket(&mut out, LEASE, leases)?;

    let (auth, users, roles) = auth_buckets(frozen)?;
    bucket(&mut out, AUTH, auth)?;
    bucket(&mut out, AUTH_USERS, users)?;
    bucket(&mut out, AUTH_ROLES, roles)?;

    let alarms = crate::alarm::stored(frozen.meta(crate::alarm::ALARMS_KEY)?.as_deref())?;
    let alarms = alarms
        .into_iter()
        .map(|alarm| (alarm.encode_to_vec(), Vec::new()))
        .collect();
    bucket(&mut out, ALARM, alarms)?;

    let (members, removed) = member_buckets(frozen)?;
    bucket(&mut out, MEMBERS, members)?;
    bucket(&mut out, MEMBERS_REMOVED, removed)?;
    bucket(&mut out, CLUSTER, BTreeMap::new())?;

    out.finish().map_err(bbolt)?;
    Ok(marks)
}

type Records = BTreeMap<Vec<u8>, Vec<u8>>;

fn bucket(out: &mut Writer, name: &[u8], records: Records) -> Result<(), ServerError> {
    out.bucket(name).map_err(bbolt)?;
    for (key, value) in records {
        out.put(&key, &value).map_err(bbolt)?;
    }
    Ok(())
}

fn auth_buckets(frozen: &Frozen) -> Result<(Records, Records, Records), ServerError> {
    let (mut auth, mut users, mut roles) = (Records::new(), Records::new(), Records::new());
    let Some(raw) = frozen.meta(crate::auth::AUTH_KEY)? else {
        return Ok((auth, users, roles));
    };
    let state = cairn_proto::cairnpb::AuthState::decode(raw.as_slice())
        .map_err(|e| ServerError::Internal(format!("the stored auth state: {e}")))?;
    auth.insert(b"authEnabled".to_vec(), vec![u8::from(state.enabled)]);
    auth.insert(
        b"authRevision".to_vec(),
        state.revision.to_be_bytes().to_vec(),
    );
    for user in state.users {
        users.insert(user.name.to_vec(), user.encode_to_vec());
    }
    for role in state.roles {
        roles.insert(role.name.to_vec(), role.encode_to_vec());
    }
    Ok((auth, users, roles))
}

/// A member as etcd stores it in its backend: Go's JSON of its `membership.Member`.
#[derive(serde::Serialize)]
struct EtcdMember<'a> {
    id: u64,
    #[serde(rename = "peerURLs")]
    peer_urls: &'a [String],
    #[serde(rename = "isLearner", skip_serializing_if = "std::ops::Not::not")]
    is_learner: bool,
    #[serde(skip_serializing_if = "str::is_empty")]
    name: &'a str,
    #[serde(rename = "clientURLs", skip_serializing_if = "<[String]>::is_empty")]
    client_urls: &'a [String],
}

fn member_buckets(frozen: &Frozen) -> Result<(Records, Records), ServerError> {
    let (mut members, mut removed) = (Records::new(), Records::new());
    let Some(raw) = frozen.meta(crate::cluster::membership::MEMBERS_KEY)? else {
        return Ok((members, removed));
    };
    let membership = cairn_proto::cairnpb::Membership::decode(raw.as_slice())
        .map_err(|e| ServerError::Internal(format!("the stored membership: {e}")))?;
    for m in &membership.members {
        let json = serde_json::to_vec(&EtcdMember {
            id: m.id,
            peer_urls: &m.peer_urls,
            is_learner: m.is_learner,
            name: &m.name,
            client_urls: &m.client_urls,
        })
        .map_err(|e| ServerError::Internal(format!("a member's JSON: {e}")))?;
        members.insert(format!("{:x}", m.id).into_bytes(), json);
    }
    for id in membership.removed {
        removed.insert(format!("{id:x}").into_bytes(), b"removed".to_vec());
    }
    Ok((members, removed))
}
