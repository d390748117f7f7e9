//! Starting on a data dir etcd wrote: an operator stops an etcd member, starts `cairn` with the
//! same flags and data dir, and the member goes on as part of the same cluster (same cluster
//! and member ids, same membership, same data and log).
//!
//! etcd's backend becomes Cairn's (`import`), and its WAL becomes Cairn's. The state machine's
//! point is the consistent index etcd recorded in its backend, moved over the entries after it
//! that change nothing Cairn keeps in the backend (empty entries, etcd's publication of member
//! attributes and cluster version, configuration changes, which are applied to the membership
//! here). The rest of etcd's log (entries it may not have applied: etcd 3.4 records the
//! consistent index only with key changes, so lease grants, alarms and the like after the last
//! put are applied again, as etcd itself does on a restart) is kept with its indexes and terms,
//! each request re-encoded as Cairn's, and the hard state is kept as it was: every member of a
//! cluster converted this way has the same log as before, so Raft's guarantees carry over.
//! Entries Cairn cannot carry (auth changes, v2 writes, a configuration change that etcd had not
//! applied) refuse the start with the reason; the snapshot route (`etcdctl snapshot save`,
//! `cairnutl snapshot restore`) always works.
//!
//! All-or-nothing: Cairn's `member` dir is built under `member.cairn-adopting`, etcd's is
//! renamed to `member.etcd` (kept, untouched, for going back) and the new one renamed into
//! place; a crash at any point leaves a state the next start finishes or starts over from.

use super::import::{EtcdMember, consistent_index, convert, members};
use super::wal::{
    CONF_ADD, CONF_ADD_LEARNER, CONF_REMOVE, CONF_UPDATE, ConfChange, ENTRY_CONF_CHANGE,
    ENTRY_NORMAL, Entry, EtcdWal,
};
use crate::config::Config;
use crate::errors::ServerError;
use cairn_proto::cairnpb::{
    AuthHeader, InternalRequest, LeaseGrant, MemberRecord, Membership, internal_request::Request,
};
use cairn_proto::etcdserverpb::{
    AlarmRequest, CompactionRequest, DeleteRangeRequest, LeaseGrantRequest, LeaseRevokeRequest,
    PutRequest, TxnRequest,
};
use prost::Message;
use std::collections::BTreeMap;
use std::path::Path;

const STAGING: &str = "member.cairn-adopting";
const KEPT: &str = "member.etcd";

/// etcd's `InternalRaftRequest`, as far as Cairn carries it.
#[derive(Clone, PartialEq, prost::Message)]
struct EtcdRequest {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(bytes = "vec", optional, tag = "2")]
    v2: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "3")]
    range: Option<Vec<u8>>,
    #[prost(message, optional, tag = "4")]
    put: Option<PutRequest>,
    #[prost(message, optional, tag = "5")]
    delete_range: Option<DeleteRangeRequest>,
    #[prost(message, optional, tag = "6")]
    txn: Option<TxnRequest>,
    #[prost(message, optional, tag = "7")]
    compaction: Option<CompactionRequest>,
    #[prost(message, optional, tag = "8")]
    lease_grant: Option<LeaseGrantRequest>,
    #[prost(message, optional, tag = "9")]
    lease_revoke: Option<LeaseRevokeRequest>,
    #[prost(message, optional, tag = "10")]
    alarm: Option<AlarmRequest>,
    #[prost(bytes = "vec", optional, tag = "11")]
    lease_checkpoint: Option<Vec<u8>>,
    #[prost(message, optional, tag = "100")]
    header: Option<EtcdHeader>,
    /// etcd 3.5's publication of the cluster version and of a member's attributes.
    #[prost(bytes = "vec", optional, tag = "1300")]
    cluster_version_set: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "1301")]
    cluster_member_attr_set: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct EtcdHeader {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(string, tag = "2")]
    username: String,
    #[prost(uint64, tag = "3")]
    auth_revision: u64,
}

/// etcd's v2 `Request`, which etcd 3.4 still proposes raw to publish member attributes and the
/// cluster version (paths under `/0`).
#[derive(Clone, PartialEq, prost::Message)]
struct V2Request {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(string, tag = "2")]
    method: String,
    #[prost(string, tag = "3")]
    path: String,
}

/// What an etcd log entry is to Cairn.
enum Carried {
    /// Nothing to apply to the backend.
    Nothing,
    Conf(ConfChange),
    Request(Box<InternalRequest>),
}

fn refuse(config: &Config, reason: String) -> ServerError {
    ServerError::EtcdDataDir {
        dir: config.data_dir().display().to_string(),
        reason,
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ServerError + '_ {
    move |e| ServerError::Io(format!("{}: {e}", path.display()))
}

fn sync_dir(path: &Path) -> Result<(), ServerError> {
    std::fs::File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(io(path))
}

fn classify(entry: &Entry) -> Result<Carried, String> {
    let at = |what: &str| format!("the log entry at index {}: {what}", entry.index);
    if entry.kind == ENTRY_CONF_CHANGE {
        return ConfChange::decode(entry.data.as_slice())
            .map(Carried::Conf)
            .map_err(|e| at(&format!("a configuration change: {e}")));
    }
    if entry.kind != ENTRY_NORMAL {
        return Err(at("a kind of entry etcd does not write (ConfChangeV2)"));
    }
    if entry.data.is_empty() {
        return Ok(Carried::Nothing);
    }
    if let Some(v2) = v2_request(&entry.data) {
        return v2.map_err(|e| at(&e));
    }
    if let Ok(request) = EtcdRequest::decode(entry.data.as_slice())
        // Fields Cairn does not know (auth changes, a downgrade) are dropped by the decoder:
        // a shorter re-encoding means there were some.
        && request.encoded_len() == entry.data.len()
    {
        let auth_header = request
            .header
            .as_ref()
            .filter(|h| !h.username.is_empty())
            .map(|h| AuthHeader {
                username: h.username.clone(),
                revision: h.auth_revision,
            });
        let carried = match request {
            EtcdRequest { put: Some(r), .. } => Some(Request::Put(r)),
            EtcdRequest {
                delete_range: Some(r),
                ..
            } => Some(Request::DeleteRange(r)),
            EtcdRequest { txn: Some(r), .. } => Some(Request::Txn(r)),
            EtcdRequest {
                compaction: Some(r),
                ..
            } => Some(Request::Compaction(r)),
            EtcdRequest {
                lease_grant: Some(r),
                ..
            } => Some(Request::LeaseGrant(LeaseGrant {
                id: r.id,
                ttl: r.ttl,
            })),
            EtcdRequest {
                lease_revoke: Some(r),
                ..
            } => Some(Request::LeaseRevoke(r)),
            EtcdRequest { alarm: Some(r), .. } => Some(Request::Alarm(r)),
            EtcdRequest { v2: Some(v2), .. } => match v2_request(&v2) {
                Some(carried) => return carried.map_err(|e| at(&e)),
                None => return Err(at("an undecodable v2 request")),
            },
            // A read, a lease checkpoint (the remaining TTLs it would have recorded are not
            // needed for safety: the backend keeps the granted TTL), the cluster version or a
            // member's attributes (Cairn members publish their own).
            EtcdRequest { range: Some(_), .. }
            | EtcdRequest {
                lease_checkpoint: Some(_),
                ..
            }
            | EtcdRequest {
                cluster_version_set: Some(_),
                ..
            }
            | EtcdRequest {
                cluster_member_attr_set: Some(_),
                ..
            } => None,
            _ => return Err(at("a request Cairn cannot carry over")),
        };
        return Ok(match carried {
            Some(request) => Carried::Request(Box::new(InternalRequest {
                request: Some(request),
                auth_header,
                ..Default::default()
            })),
            None => Carried::Nothing,
        });
    }
    Err(at("a request Cairn cannot carry over"))
}

/// A v2 request (etcd 3.4 proposes them bare; `None` if `data` is not one): reads and etcd's
/// own records under `/0` (member attributes, the cluster version) are nothing to apply; v2
/// keys are not kept by Cairn.
fn v2_request(data: &[u8]) -> Option<Result<Carried, String>> {
    const METHODS: [&str; 7] = ["PUT", "POST", "DELETE", "QGET", "GET", "HEAD", "SYNC"];
    let v2 = V2Request::decode(data).ok()?;
    if !METHODS.contains(&v2.method.as_str()) {
        return None;
    }
    // Reads (etcd 3.4's /health proposes a QGET) and SYNC (v2 TTL expiry) change nothing.
    let reads = ["QGET", "GET", "HEAD", "SYNC"].contains(&v2.method.as_str());
    Some(if reads || v2.path.starts_with("/0/") {
        Ok(Carried::Nothing)
    } else {
        Err(format!(
            "a v2 {} of {:?}, which Cairn does not keep",
            v2.method, v2.path
        ))
    })
}

/// The membership as etcd's log and backend describe it.
#[derive(Default)]
struct Members {
    members: BTreeMap<u64, EtcdMember>,
    removed: Vec<u64>,
}

impl Members {
    fn apply(&mut self, change: &ConfChange) -> Result<(), String> {
        let context = || -> Result<EtcdMember, String> {
            serde_json::from_slice(&change.context)
                .map_err(|e| format!("a configuration change's member: {e}"))
        };
        match change.kind {
            CONF_ADD | CONF_ADD_LEARNER => {
                let mut member = context()?;
                member.id = change.node_id;
                member.is_learner = change.kind == CONF_ADD_LEARNER;
                if let Some(known) = self.members.get(&member.id) {
                    // A promotion carries the member as it was added; keep what it published.
                    if member.name.is_empty() {
                        member.name = known.name.clone();
                    }
                    if member.client_urls.is_empty() {
                        member.client_urls = known.client_urls.clone();
                    }
                }
                self.members.insert(member.id, member);
            }
            CONF_REMOVE => {
                self.members.remove(&change.node_id);
                if !self.removed.contains(&change.node_id) {
                    self.removed.push(change.node_id);
                }
            }
            CONF_UPDATE => {
                let update = context()?;
                if let Some(member) = self.members.get_mut(&change.node_id) {
                    member.peer_urls = update.peer_urls;
                }
            }
            other => return Err(format!("a configuration change of unknown type {other}")),
        }
        Ok(())
    }

    fn record(&self) -> Membership {
        Membership {
            members: self
                .members
                .values()
                .map(|m| MemberRecord {
                    id: m.id,
                    name: m.name.clone(),
                    peer_urls: m.peer_urls.clone(),
                    client_urls: m.client_urls.clone(),
                    is_learner: m.is_learner,
                })
                .collect(),
            removed: self.removed.clone(),
        }
    }
}

/// What the start-up found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Adopted {
    /// Not etcd's data dir: nothing done.
    NotEtcd,
    /// Converted now (or an interrupted conversion finished).
    Converted,
}

/// If the data dir is etcd's, makes it Cairn's (see the module doc).
pub(crate) fn adopt(config: &Config) -> Result<Adopted, ServerError> {
    let data_dir = config.data_dir();
    let member = data_dir.join("member");
    let staging = data_dir.join(STAGING);
    let kept = data_dir.join(KEPT);
    if staging.exists() {
        if !member.exists() && kept.exists() {
            // Interrupted between the two renames: the staged dir is complete.
            std::fs::rename(&staging, &member).map_err(io(&member))?;
            sync_dir(&data_dir)?;
            tracing::info!(kept = %kept.display(), "finished starting on etcd's data dir");
            return Ok(Adopted::Converted);
        }
        std::fs::remove_dir_all(&staging).map_err(io(&staging))?;
    }
    if !cairn_bbolt::is_bbolt(&config.backend_path()) {
        return Ok(Adopted::NotEtcd);
    }
    if config.wal_dir() != member.join("wal") {
        return Err(refuse(
            config,
            "its WAL is in a separate --wal-dir; move it back to member/wal for the start, or \
             migrate by snapshot (etcdctl snapshot save, cairnutl snapshot restore)"
                .into(),
        ));
    }
    if !super::wal::is_etcd_wal(&member.join("wal")) {
        return Err(refuse(
            config,
            "member/snap/db is etcd's backend but member/wal holds no etcd WAL".into(),
        ));
    }
    if kept.exists() {
        return Err(refuse(
            config,
            format!("{} exists already; move it away first", kept.display()),
        ));
    }
    tracing::info!(dir = %data_dir.display(), "the data dir is etcd's: converting it for Cairn");
    let built = build(config, &member, &staging);
    if let Err(e) = built {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    std::fs::rename(&member, &kept).map_err(io(&member))?;
    sync_dir(&data_dir)?;
    std::fs::rename(&staging, &member).map_err(io(&staging))?;
    sync_dir(&data_dir)?;
    tracing::warn!(
        kept = %kept.display(),
        "converted etcd's data dir; etcd's own files are kept unchanged in the directory named (remove it once the cluster runs on Cairn)"
    );
    Ok(Adopted::Converted)
}

/// Builds Cairn's `member` dir at `staging` from etcd's at `member`.
fn build(config: &Config, member: &Path, staging: &Path) -> Result<(), ServerError> {
    let offline = |e: crate::offline::OfflineError| refuse(config, e.to_string());
    let etcd_db = member.join("snap").join("db");
    let backend = cairn_bbolt::Reader::open(&etcd_db).map_err(|e| refuse(config, e.to_string()))?;
    let backend_index = consistent_index(&backend).map_err(offline)?;
    let (known, removed) = members(&backend).map_err(offline)?;
    drop(backend);
    let wal = super::wal::read(&member.join("wal")).map_err(|e| refuse(config, e.to_string()))?;
    let plan = plan(&wal, backend_index, known, removed).map_err(|e| refuse(config, e))?;
    if !plan.members.members.contains_key(&wal.member_id) {
        return Err(refuse(
            config,
            format!(
                "member {:x} (the WAL's) is not a member of its cluster",
                wal.member_id
            ),
        ));
    }

    let snap = staging.join("snap");
    std::fs::create_dir_all(&snap).map_err(io(&snap))?;
    let db = snap.join("db");
    convert(&etcd_db, &db).map_err(offline)?;
    let membership = plan.members.record();
    cairn_mvcc::offline::rebase(
        &db,
        &cairn_mvcc::offline::Rebase {
            consistent_index: plan.index,
            term: plan.term,
            meta: vec![
                ("cluster_id".into(), wal.cluster_id.to_le_bytes().to_vec()),
                ("member_id".into(), wal.member_id.to_le_bytes().to_vec()),
                ("member_name".into(), config.name.as_bytes().to_vec()),
                (
                    crate::cluster::membership::MEMBERS_KEY.into(),
                    membership.encode_to_vec(),
                ),
            ],
            ..Default::default()
        },
    )?;
    let (learners, voters): (Vec<&MemberRecord>, Vec<&MemberRecord>) =
        membership.members.iter().partition(|m| m.is_learner);
    let wal_dir = staging.join("wal");
    std::fs::create_dir_all(&wal_dir).map_err(io(&wal_dir))?;
    cairn_raft::write_adopted_wal(
        &wal_dir,
        &cairn_raft::AdoptedLog {
            index: plan.index,
            term: plan.term,
            voters: voters.iter().map(|m| m.id).collect(),
            learners: learners.iter().map(|m| m.id).collect(),
            hard_term: wal.hard_state.term,
            vote: wal.hard_state.vote,
            commit: wal.hard_state.commit,
            entries: plan.entries,
        },
    )
    .map_err(|e| ServerError::Io(e.to_string()))?;
    for dir in [&snap, &wal_dir, &staging.to_path_buf()] {
        sync_dir(dir)?;
    }
    tracing::info!(
        member = format!("{:x}", wal.member_id),
        cluster = format!("{:x}", wal.cluster_id),
        index = plan.index,
        carried_entries = plan.carried,
        "etcd's backend and log converted"
    );
    Ok(())
}

/// Where the state machine stands and what of the log goes on after it.
struct Plan {
    index: u64,
    term: u64,
    members: Members,
    /// Cairn's log after `index`.
    entries: Vec<(u64, u64, Vec<u8>)>,
    /// How many of them carry a request.
    carried: usize,
}

fn plan(
    wal: &EtcdWal,
    backend_index: u64,
    known: Vec<EtcdMember>,
    removed: Vec<u64>,
) -> Result<Plan, String> {
    let (snap_index, snap_term) = wal.snapshot;
    let term_of = |index: u64| {
        if index == snap_index {
            Some(snap_term)
        } else {
            wal.entries
                .iter()
                .find(|e| e.index == index)
                .map(|e| e.term)
        }
    };
    let Some(mut term) = term_of(backend_index) else {
        return Err(format!(
            "its backend holds the log up to index {backend_index}, which its WAL (from index {}) does not reach",
            snap_index + 1
        ));
    };
    // With the whole log at hand (it starts at index 1, as in a data dir etcd's restore made)
    // the membership is what its configuration changes say; the backend's record of members
    // may be stale then (etcd 3.4's restore leaves the old cluster's members in it).
    let whole_log = wal.entries.first().is_some_and(|e| e.index == 1);
    let mut members = if whole_log {
        Members::default()
    } else {
        Members {
            members: known.into_iter().map(|m| (m.id, m)).collect(),
            removed,
        }
    };
    let mut index = backend_index;
    let mut entries = Vec::new();
    let mut carried = 0;
    let mut expected = backend_index + 1;
    for entry in &wal.entries {
        let kind = classify(entry);
        if entry.index <= backend_index {
            // Configuration changes the backend may not record (a backend etcd's restore
            // made keeps none): applying them again is harmless.
            if let Ok(Carried::Conf(change)) = &kind {
                members.apply(change)?;
            }
            continue;
        }
        if entry.index != expected {
            return Err(format!(
                "its WAL skips from index {} to {}",
                expected - 1,
                entry.index
            ));
        }
        expected += 1;
        let kind = kind?;
        let applied_here = entries.is_empty() && entry.index <= wal.hard_state.commit;
        match kind {
            Carried::Conf(change) if applied_here => {
                members.apply(&change)?;
                (index, term) = (entry.index, entry.term);
            }
            Carried::Nothing if applied_here => (index, term) = (entry.index, entry.term),
            Carried::Conf(_) => {
                return Err(format!(
                    "the configuration change at index {} comes after requests etcd had not recorded as applied; start it with etcd once more and stop it, or migrate by snapshot",
                    entry.index
                ));
            }
            Carried::Nothing => entries.push((entry.index, entry.term, Vec::new())),
            Carried::Request(request) => {
                carried += 1;
                entries.push((entry.index, entry.term, request.encode_to_vec()));
            }
        }
    }
    Ok(Plan {
        index,
        term,
        members,
        entries,
        carried,
    })
}

#[cfg(test)]
mod tests {
    use super::super::wal::tests::Writer;
    use super::*;

    fn conf(kind: i32, id: u64, name: &str) -> Vec<u8> {
        ConfChange {
            kind,
            node_id: id,
            context: format!(
                r#"{{"id":{id},"peerURLs":["http://127.0.0.1:{id}"],"name":"{name}"}}"#
            )
            .into_bytes(),
        }
        .encode_to_vec()
    }

    fn put(key: &str) -> Vec<u8> {
        EtcdRequest {
            id: 1,
            put: Some(PutRequest {
                key: key.as_bytes().to_vec().into(),
                value: b"v".to_vec().into(),
                ..Default::default()
            }),
            header: Some(EtcdHeader {
                id: 1,
                username: "alice".into(),
                auth_revision: 3,
            }),
            ..Default::default()
        }
        .encode_to_vec()
    }

    fn read(w: &Writer) -> EtcdWal {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("0000000000000000-0000000000000000.wal"),
            &w.bytes,
        )
        .unwrap();
        super::super::wal::read(dir.path()).unwrap()
    }

    #[test]
    fn a_restored_data_dirs_members_come_from_its_log() {
        // What etcd's snapshot restore writes: one configuration change per member, committed,
        // and a backend whose consistent index is the last of them (and no members).
        let mut w = Writer::new();
        w.metadata(2, 9);
        for (i, id) in [1u64, 2, 3].into_iter().enumerate() {
            w.entry(
                i as u64 + 1,
                1,
                ENTRY_CONF_CHANGE,
                conf(CONF_ADD, id, &format!("m{id}")),
            );
        }
        w.state(1, 0, 3);
        w.snapshot(3, 1);
        // The backend still names the cluster the snapshot came from (etcd 3.4's restore
        // leaves it): the log's whole history wins.
        let stale = EtcdMember {
            id: 77,
            name: "old".into(),
            ..Default::default()
        };
        let plan = plan(&read(&w), 3, vec![stale], Vec::new()).unwrap();
        assert_eq!((plan.index, plan.term), (3, 1));
        assert_eq!(plan.members.members.len(), 3);
        assert_eq!(plan.members.members[&2].name, "m2");
        assert!(plan.entries.is_empty());
    }

    #[test]
    fn entries_etcd_may_not_have_applied_are_carried_with_their_index_and_term() {
        let mut w = Writer::new();
        w.metadata(1, 9);
        w.entry(1, 1, ENTRY_CONF_CHANGE, conf(CONF_ADD, 1, "m1"));
        w.entry(2, 2, ENTRY_NORMAL, Vec::new());
        w.entry(3, 2, ENTRY_NORMAL, put("a"));
        // Committed after the backend's point but not recorded there: carried.
        w.entry(4, 2, ENTRY_NORMAL, Vec::new());
        w.entry(5, 2, ENTRY_NORMAL, put("b"));
        w.entry(6, 3, ENTRY_NORMAL, put("c"));
        w.state(3, 1, 5);
        let wal = read(&w);
        // The backend recorded index 3 (the put of "a").
        let plan = plan(&wal, 3, Vec::new(), Vec::new()).unwrap();
        // The empty entry at 4 is absorbed; 5 (committed) and 6 (not) are carried.
        assert_eq!((plan.index, plan.term), (4, 2));
        let carried: Vec<(u64, u64)> = plan.entries.iter().map(|e| (e.0, e.1)).collect();
        assert_eq!(carried, vec![(5, 2), (6, 3)]);
        let first = InternalRequest::decode(plan.entries[0].2.as_slice()).unwrap();
        let Some(Request::Put(p)) = first.request else {
            panic!("{first:?}")
        };
        assert_eq!(&p.key[..], b"b");
        assert_eq!(first.auth_header.unwrap().username, "alice");
        assert_eq!(plan.members.members.len(), 1);
    }

    #[test]
    fn what_cairn_cannot_carry_refuses_the_start() {
        let mut w = Writer::new();
        w.metadata(1, 9);
        w.entry(1, 1, ENTRY_CONF_CHANGE, conf(CONF_ADD, 1, "m1"));
        w.entry(2, 1, ENTRY_NORMAL, put("a"));
        w.entry(3, 1, ENTRY_NORMAL, put("b"));
        w.entry(4, 1, ENTRY_CONF_CHANGE, conf(CONF_ADD, 2, "m2"));
        w.state(1, 1, 4);
        let err = plan(&read(&w), 2, Vec::new(), Vec::new()).err().unwrap();
        assert!(err.contains("configuration change at index 4"), "{err}");

        // An auth change (a field Cairn's decoder does not know).
        let mut auth = EtcdRequest {
            id: 1,
            ..Default::default()
        }
        .encode_to_vec();
        auth.extend_from_slice(&[0xc2, 0x3e, 0x00]); // field 1000 (auth_enable), empty
        let mut w = Writer::new();
        w.metadata(1, 9);
        w.entry(1, 1, ENTRY_CONF_CHANGE, conf(CONF_ADD, 1, "m1"));
        w.entry(2, 1, ENTRY_NORMAL, put("a"));
        w.entry(3, 1, ENTRY_NORMAL, auth);
        w.state(1, 1, 3);
        let err = plan(&read(&w), 2, Vec::new(), Vec::new()).err().unwrap();
        assert!(
            err.contains("index 3: a request Cairn cannot carry over"),
            "{err}"
        );

        // A backend ahead of what the WAL still has.
        let err = plan(&read(&w), 9, Vec::new(), Vec::new()).err().unwrap();
        assert!(err.contains("does not reach"), "{err}");
    }

    /// Entries as etcd 3.4.23 wrote them (from a member's WAL): its publication of the member's
    /// attributes and of the cluster version (bare v2 requests), and a put.
    #[test]
    fn entries_etcd_3_4_wrote_are_read() {
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        let entry = |data: Vec<u8>| Entry {
            kind: ENTRY_NORMAL,
            term: 2,
            index: 5,
            data,
        };
        let publish = hex(concat!(
            "0881e4e3f1ffc9e88a9a0112035055541a262f302f6d656d626572732f383836623033633461653637",
            "396131352f61747472696275746573223a7b226e616d65223a2264656661756c74222c22636c6965",
            "6e7455524c73223a5b22687474703a2f2f3132372e302e302e313a3234373930225d7d2800320038",
            "004800500058006000680070007800800100"
        ));
        assert!(matches!(classify(&entry(publish)), Ok(Carried::Nothing)));
        let version = hex(concat!(
            "0884e4e3f1ffc9e88a9a0112035055541a0a2f302f76657273696f6e2205332e342e302800320038",
            "004800500058006000680070007800800100"
        ));
        assert!(matches!(classify(&entry(version)), Ok(Carried::Nothing)));
        // What etcd 3.4's /health proposes: a v2 QGET with no path.
        let health = V2Request {
            id: 9,
            method: "QGET".into(),
            path: String::new(),
        };
        let mut health = health.encode_to_vec();
        health.extend_from_slice(&hex("2800320038004800500058006000680070007800800100"));
        assert!(matches!(classify(&entry(health)), Ok(Carried::Nothing)));
        let put = hex("220a0a056669727374120131a2060b0885e4e3f1ffc9e88a9a01");
        let carried = classify(&entry(put));
        let Ok(Carried::Request(request)) = carried else {
            panic!("{:?}", carried.err());
        };
        let Some(Request::Put(p)) = request.request else {
            panic!("{request:?}")
        };
        assert_eq!((&p.key[..], &p.value[..]), (&b"first"[..], &b"1"[..]));
    }

    proptest::proptest! {
        /// Any bytes in a log entry are carried, nothing, or refused with a reason.
        #[test]
        fn any_entry_is_classified_without_a_panic(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            kind in 0i32..4,
        ) {
            let _ = classify(&Entry { kind, term: 1, index: 1, data });
        }
    }

    #[test]
    fn etcd_3_4s_v2_publication_is_nothing_to_apply() {
        let publish = V2Request {
            id: 5,
            method: "PUT".into(),
            path: "/0/members/8e9e05c52164694d/attributes".into(),
        }
        .encode_to_vec();
        let mut data = publish.clone();
        // Go's encoding of the rest of the request: Val (field 4) with the attributes' JSON.
        data.extend_from_slice(&[0x22, 0x02, b'{', b'}']);
        let entry = Entry {
            kind: ENTRY_NORMAL,
            term: 1,
            index: 2,
            data,
        };
        assert!(matches!(classify(&entry), Ok(Carried::Nothing)));
        let user_key = V2Request {
            id: 5,
            method: "PUT".into(),
            path: "/1/foo".into(),
        };
        let entry = Entry {
            data: user_key.encode_to_vec(),
            ..entry
        };
        assert!(classify(&entry).is_err());
    }
}
