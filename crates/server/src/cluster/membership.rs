//! The members of the cluster as the replicated log describes them: ids, names, peer and client
//! URLs, learner flags. Kept in the backend (meta key `members`) so that it survives restarts
//! with the data and without the `--initial-*` flags that first described it.

use crate::config::Config;
use crate::errors::ServerError;
use cairn_mvcc::{Applier, Store};
use cairn_proto::cairnpb::{
    MemberAttributes, MemberChange, MemberRecord, Membership, member_change::Kind,
};
use cairn_proto::etcdserverpb::Member;
use parking_lot::RwLock;
use prost::Message;

/// Backend meta key of the encoded [`Membership`].
pub(crate) const MEMBERS_KEY: &str = "members";

pub struct Members {
    members: RwLock<Vec<MemberRecord>>,
    removed: RwLock<Vec<u64>>,
}

/// What applying a membership change did, for the parts of the member that follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Applied {
    /// A member with these peer URLs now exists (added, or its URLs changed).
    Peer(u64, Vec<String>),
    Removed(u64),
    Promoted(u64),
    Nothing,
}

impl Members {
    /// The membership stored with the data, or, for a data dir that predates stored
    /// membership, the one this member alone makes up.
    pub(crate) fn load(store: &Store, me: u64, config: &Config) -> Result<Members, ServerError> {
        let (members, removed) = match store.meta(MEMBERS_KEY)? {
            Some(raw) => {
                let m = Membership::decode(raw.as_slice())
                    .map_err(|e| ServerError::Internal(format!("stored membership: {e}")))?;
                (m.members, m.removed)
            }
            None => (
                vec![MemberRecord {
                    id: me,
                    name: config.name.clone(),
                    peer_urls: crate::config::split_list(&config.initial_advertise_peer_urls),
                    client_urls: Vec::new(),
                    is_learner: false,
                }],
                Vec::new(),
            ),
        };
        Ok(Members {
            members: RwLock::new(members),
            removed: RwLock::new(removed),
        })
    }

    /// Replaces the membership with the backend's (after a snapshot replaced the backend).
    pub(crate) fn reload(
        &self,
        store: &Store,
        me: u64,
        config: &Config,
    ) -> Result<(), ServerError> {
        let fresh = Members::load(store, me, config)?;
        *self.members.write() = fresh.members.into_inner();
        *self.removed.write() = fresh.removed.into_inner();
        Ok(())
    }

    /// `--force-new-cluster`: every other member is removed.
    pub(crate) fn force_alone(&self, store: &Store, me: u64) -> Result<(), ServerError> {
        let mut members = self.members.write();
        let others: Vec<u64> = members
            .iter()
            .map(|m| m.id)
            .filter(|id| *id != me)
            .collect();
        members.retain(|m| m.id == me);
        self.removed.write().extend(others);
        let (index, term) = (store.consistent_index(), store.term());
        let mut a = store.begin_apply()?;
        self.persist(&mut a, &members)?;
        a.commit(index, term, true)?;
        Ok(())
    }

    /// Records the membership of a new cluster, as `--initial-cluster` gives it, or of the
    /// running cluster a new member joins.
    pub(crate) fn bootstrap(
        a: &mut Applier<'_>,
        membership: &Membership,
    ) -> Result<(), ServerError> {
        a.put_meta(MEMBERS_KEY, &membership.encode_to_vec())?;
        Ok(())
    }

    /// The membership as it is stored.
    pub fn snapshot(&self) -> Membership {
        Membership {
            members: self.members.read().clone(),
            removed: self.removed.read().clone(),
        }
    }

    pub fn is_removed(&self, id: u64) -> bool {
        self.removed.read().contains(&id)
    }

    pub fn all(&self) -> Vec<MemberRecord> {
        self.members.read().clone()
    }

    fn persist(&self, a: &mut Applier<'_>, members: &[MemberRecord]) -> Result<(), ServerError> {
        let encoded = Membership {
            members: members.to_vec(),
            removed: self.removed.read().clone(),
        }
        .encode_to_vec();
        a.put_meta(MEMBERS_KEY, &encoded)?;
        Ok(())
    }

    /// Applies a membership change from the log. Every member applies the same changes in the
    /// same order; changes that no longer fit (a member already gone) change nothing.
    pub(crate) fn apply_change(
        &self,
        a: &mut Applier<'_>,
        change: &MemberChange,
    ) -> Result<Applied, ServerError> {
        let Some(record) = change.member.as_ref() else {
            return Ok(Applied::Nothing);
        };
        let mut members = self.members.write();
        let existing = members.iter().position(|m| m.id == record.id);
        let applied = match (Kind::try_from(change.kind), existing) {
            (Ok(Kind::Add), None) => {
                if self.is_removed(record.id) {
                    return Ok(Applied::Nothing);
                }
                members.push(MemberRecord {
                    name: String::new(),
                    client_urls: Vec::new(),
                    ..record.clone()
                });
                tracing::info!(
                    member = format!("{:x}", record.id),
                    peer_urls = ?record.peer_urls,
                    learner = record.is_learner,
                    "added member"
                );
                Applied::Peer(record.id, record.peer_urls.clone())
            }
            (Ok(Kind::Remove), Some(i)) => {
                let gone = members.remove(i);
                tracing::info!(
                    member = format!("{:x}", gone.id),
                    name = %gone.name,
                    peer_urls = ?gone.peer_urls,
                    "removed member"
                );
                let mut removed = self.removed.write();
                if !removed.contains(&record.id) {
                    removed.push(record.id);
                }
                Applied::Removed(record.id)
            }
            (Ok(Kind::Update), Some(i)) => {
                tracing::info!(
                    member = format!("{:x}", record.id),
                    from = ?members[i].peer_urls,
                    to = ?record.peer_urls,
                    "updated member peer URLs"
                );
                members[i].peer_urls.clone_from(&record.peer_urls);
                Applied::Peer(record.id, record.peer_urls.clone())
            }
            (Ok(Kind::Promote), Some(i)) => {
                members[i].is_learner = false;
                tracing::info!(
                    member = format!("{:x}", record.id),
                    name = %members[i].name,
                    "promoted learner to voting member"
                );
                Applied::Promoted(record.id)
            }
            // Replayed after a restart, or by a member that joined with the membership of a
            // later point: already in effect.
            _ => return Ok(Applied::Nothing),
        };
        self.persist(a, &members)?;
        Ok(applied)
    }

    /// Voting members.
    pub fn voters(&self) -> Vec<u64> {
        self.members
            .read()
            .iter()
            .filter(|m| !m.is_learner)
            .map(|m| m.id)
            .collect()
    }

    pub fn learners(&self) -> Vec<u64> {
        self.members
            .read()
            .iter()
            .filter(|m| m.is_learner)
            .map(|m| m.id)
            .collect()
    }

    /// Every member but `me`, with its peer URLs.
    pub fn peers(&self, me: u64) -> Vec<(u64, Vec<String>)> {
        self.members
            .read()
            .iter()
            .filter(|m| m.id != me)
            .map(|m| (m.id, m.peer_urls.clone()))
            .collect()
    }

    pub fn get(&self, id: u64) -> Option<MemberRecord> {
        self.members.read().iter().find(|m| m.id == id).cloned()
    }

    /// etcd's view of the members, in id order as etcd lists them.
    pub fn list(&self) -> Vec<Member> {
        let mut out: Vec<Member> = self
            .members
            .read()
            .iter()
            .map(|m| Member {
                id: m.id,
                name: m.name.clone(),
                peer_ur_ls: m.peer_urls.clone(),
                client_ur_ls: m.client_urls.clone(),
                is_learner: m.is_learner,
            })
            .collect();
        out.sort_by_key(|m| m.id);
        out
    }

    /// Applies a member's published name and client URLs. Attributes of a member that is no
    /// longer in the cluster are ignored, as etcd ignores them.
    pub(crate) fn apply_attributes(
        &self,
        a: &mut Applier<'_>,
        attrs: &MemberAttributes,
    ) -> Result<(), ServerError> {
        let mut members = self.members.write();
        let Some(m) = members.iter_mut().find(|m| m.id == attrs.id) else {
            tracing::warn!(
                member = format!("{:x}", attrs.id),
                "attributes of an unknown member ignored"
            );
            return Ok(());
        };
        m.name.clone_from(&attrs.name);
        m.client_urls.clone_from(&attrs.client_urls);
        self.persist(a, &members)?;
        Ok(())
    }
}
