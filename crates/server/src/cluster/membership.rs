//! The members of the cluster as the replicated log describes them: ids, names, peer and client
//! URLs, learner flags. Kept in the backend (meta key `members`) so that it survives restarts
//! with the data and without the `--initial-*` flags that first described it.

use crate::config::Config;
use crate::errors::ServerError;
use cairn_mvcc::{Applier, Store};
use cairn_proto::cairnpb::{MemberAttributes, MemberRecord, Membership};
use cairn_proto::etcdserverpb::Member;
use parking_lot::RwLock;
use prost::Message;

/// Backend meta key of the encoded [`Membership`].
const MEMBERS_KEY: &str = "members";

pub struct Members {
    members: RwLock<Vec<MemberRecord>>,
}

impl Members {
    /// The membership stored with the data, or, for a data dir that predates stored
    /// membership, the one this member alone makes up.
    pub(crate) fn load(store: &Store, me: u64, config: &Config) -> Result<Members, ServerError> {
        let members = match store.meta(MEMBERS_KEY)? {
            Some(raw) => {
                Membership::decode(raw.as_slice())
                    .map_err(|e| ServerError::Internal(format!("stored membership: {e}")))?
                    .members
            }
            None => vec![MemberRecord {
                id: me,
                name: config.name.clone(),
                peer_urls: crate::config::split_list(&config.initial_advertise_peer_urls),
                client_urls: Vec::new(),
                is_learner: false,
            }],
        };
        Ok(Members {
            members: RwLock::new(members),
        })
    }

    /// Records the membership of a new cluster, as `--initial-cluster` gives it.
    pub(crate) fn bootstrap(
        a: &mut Applier<'_>,
        members: Vec<MemberRecord>,
    ) -> Result<(), ServerError> {
        a.put_meta(MEMBERS_KEY, &Membership { members }.encode_to_vec())?;
        Ok(())
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
        let encoded = Membership {
            members: members.clone(),
        }
        .encode_to_vec();
        a.put_meta(MEMBERS_KEY, &encoded)?;
        Ok(())
    }
}
