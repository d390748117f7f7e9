//! The Cluster service's changes, with etcd's rules: MemberAdd (voter or learner), MemberRemove,
//! MemberUpdate and MemberPromote, each checked the way etcd checks it (`--strict-reconfig-check`
//! refuses a change that would leave too few started, connected members; at most one learner;
//! only a learner in sync with the leader is promoted) and then made through the log.

use crate::errors::ServerError;
use crate::etcd::{Applied, EtcdServer};
use cairn_proto::cairnpb::{
    MemberChange, MemberPromoteForward, MemberRecord, internal_request::Request,
    member_change::Kind,
};
use cairn_proto::etcdserverpb::Member;
use cairn_raft::ConfChange;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long peers must have been connected before a reconfiguration counts them (etcd's
/// HealthInterval).
const HEALTH_INTERVAL: Duration = Duration::from_secs(5);
/// A learner must hold this share of the leader's log to be promoted (etcd's readyPercent).
const LEARNER_READY_PERCENT: f64 = 0.9;
impl EtcdServer {
    /// `--max-learners` (etcd 3.6; `--experimental-max-learners` before).
    fn max_learners(&self) -> usize {
        usize::try_from(self.config.max_learners).unwrap_or(usize::MAX)
    }

    fn check_peer_urls(&self, urls: &[String], except: Option<u64>) -> Result<(), ServerError> {
        if urls.is_empty() {
            return Err(ServerError::BadMemberUrls);
        }
        for u in urls {
            crate::config::parse_url("peer-urls", u).map_err(|_| ServerError::BadMemberUrls)?;
        }
        let taken = self
            .members
            .all()
            .into_iter()
            .filter(|m| Some(m.id) != except)
            .any(|m| m.peer_urls.iter().any(|u| urls.contains(u)));
        if taken {
            return Err(ServerError::PeerUrlExists);
        }
        Ok(())
    }

    /// Self plus the voters whose streams have been up for at least [`HEALTH_INTERVAL`].
    fn connected_voters(&self) -> usize {
        let since = Instant::now().checked_sub(HEALTH_INTERVAL);
        self.members
            .voters()
            .into_iter()
            .filter(|&id| {
                id == self.member_id
                    || self
                        .peers
                        .active_since(id)
                        .is_some_and(|t| since.is_some_and(|s| t <= s))
            })
            .count()
    }

    /// etcd's IsReadyToAddVotingMember plus isConnectedFullySince.
    fn check_can_add_voter(&self) -> Result<(), ServerError> {
        if !self.config.strict_reconfig_check {
            return Ok(());
        }
        let voters = self.members.all().into_iter().filter(|m| !m.is_learner);
        let (mut members, mut started) = (1, 0);
        for m in voters {
            members += 1;
            if !m.name.is_empty() {
                started += 1;
            }
        }
        // A single member may always take a second.
        if !(started == 1 && members == 2) && started < members / 2 + 1 {
            return Err(ServerError::NotEnoughStarted);
        }
        if self.connected_voters() < self.members.voters().len() {
            return Err(ServerError::Unhealthy);
        }
        Ok(())
    }

    /// etcd's mayRemoveMember.
    fn check_can_remove(&self, id: u64) -> Result<(), ServerError> {
        if !self.config.strict_reconfig_check {
            return Ok(());
        }
        let target = self.members.get(id).ok_or(ServerError::MemberNotFound)?;
        if target.is_learner {
            return Ok(());
        }
        let others: Vec<MemberRecord> = self
            .members
            .all()
            .into_iter()
            .filter(|m| !m.is_learner && m.id != id)
            .collect();
        let started = others.iter().filter(|m| !m.name.is_empty()).count();
        if started < others.len() / 2 + 1 {
            return Err(ServerError::NotEnoughStarted);
        }
        // A member that is down is not part of the working quorum: removing it is safe.
        if id != self.member_id && self.peers.active_since(id).is_none() {
            return Ok(());
        }
        let voters = self.members.voters().len();
        if self.connected_voters().saturating_sub(1) < 1 + (voters - 1) / 2 {
            return Err(ServerError::Unhealthy);
        }
        Ok(())
    }

    async fn change_members(
        &self,
        kind: Kind,
        member: MemberRecord,
        raft: Option<ConfChange>,
    ) -> Result<Vec<Member>, ServerError> {
        let change = MemberChange {
            kind: kind as i32,
            member: Some(member),
        };
        match self
            .propose_entry(Request::MemberChange(change), raft, None)
            .await?
        {
            Applied::MemberChange => Ok(self.members.list()),
            other => Err(ServerError::Internal(format!(
                "unexpected apply result for a membership change: {other:?}"
            ))),
        }
    }

    pub(crate) async fn member_add(
        &self,
        peer_urls: Vec<String>,
        is_learner: bool,
    ) -> Result<(Member, Vec<Member>), ServerError> {
        self.check_peer_urls(&peer_urls, None)?;
        if is_learner {
            if self.members.learners().len() >= self.max_learners() {
                return Err(ServerError::TooManyLearners);
            }
        } else {
            self.check_can_add_voter()?;
        }
        // Like etcd, a new member's id mixes its URLs with the time it was added, so a member
        // added again at the same URLs gets a new id.
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let id = crate::etcd::member_id(&peer_urls, &format!("{nanos}"));
        if self.members.get(id).is_some() || self.members.is_removed(id) {
            return Err(ServerError::MemberExists);
        }
        let record = MemberRecord {
            id,
            name: String::new(),
            peer_urls: peer_urls.clone(),
            client_urls: Vec::new(),
            is_learner,
        };
        let raft = if is_learner {
            ConfChange::AddLearner(id)
        } else {
            ConfChange::AddVoter(id)
        };
        let members = self.change_members(Kind::Add, record, Some(raft)).await?;
        let added = Member {
            id,
            name: String::new(),
            peer_ur_ls: peer_urls,
            client_ur_ls: Vec::new(),
            is_learner,
        };
        Ok((added, members))
    }

    pub(crate) async fn member_remove(&self, id: u64) -> Result<Vec<Member>, ServerError> {
        if self.members.get(id).is_none() {
            return Err(ServerError::MemberNotFound);
        }
        self.check_can_remove(id)?;
        let record = MemberRecord {
            id,
            ..Default::default()
        };
        self.change_members(Kind::Remove, record, Some(ConfChange::Remove(id)))
            .await
    }

    pub(crate) async fn member_update(
        &self,
        id: u64,
        peer_urls: Vec<String>,
    ) -> Result<Vec<Member>, ServerError> {
        if self.members.get(id).is_none() {
            return Err(ServerError::MemberNotFound);
        }
        self.check_peer_urls(&peer_urls, Some(id))?;
        let record = MemberRecord {
            id,
            peer_urls,
            ..Default::default()
        };
        self.change_members(Kind::Update, record, None).await
    }

    /// Maintenance.MoveLeader: hands leadership to `target` and waits until it leads.
    pub(crate) async fn move_leader(&self, target: u64) -> Result<(), ServerError> {
        if !self.is_leader() {
            return Err(ServerError::NotLeader);
        }
        match self.members.get(target) {
            Some(m) if !m.is_learner => {}
            _ => return Err(ServerError::BadLeaderTransferee),
        }
        if target == self.member_id {
            return Ok(());
        }
        self.raft.transfer_leader(target)?;
        // etcd gives a transfer the same time as any request.
        let deadline = Instant::now() + self.request_timeout();
        while self.raft.leader() != target {
            if Instant::now() >= deadline {
                return Err(ServerError::LeaderTransferTimeout);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// MemberPromote on any member: the leader decides, since only it knows the learner's log.
    pub(crate) async fn member_promote(&self, id: u64) -> Result<Vec<Member>, ServerError> {
        self.on_leader(
            |s| async move { s.member_promote_as_leader(id).await },
            |s, mut client| async move {
                let req = MemberPromoteForward {
                    cluster_id: s.cluster_id,
                    id,
                };
                client
                    .member_promote(req)
                    .await
                    .map(|r| r.into_inner().members)
            },
        )
        .await
    }

    pub(crate) async fn member_promote_as_leader(
        &self,
        id: u64,
    ) -> Result<Vec<Member>, ServerError> {
        let member = self.members.get(id).ok_or(ServerError::MemberNotFound)?;
        if !member.is_learner {
            return Err(ServerError::NotLearner);
        }
        let progress = self.raft.member_progress(id).await?;
        let ready = progress
            .is_some_and(|p| p.matched as f64 >= p.leader_last as f64 * LEARNER_READY_PERCENT);
        if !ready {
            return Err(ServerError::LearnerNotReady);
        }
        self.check_can_add_voter()?;
        let record = MemberRecord {
            id,
            ..Default::default()
        };
        let members = self
            .change_members(Kind::Promote, record, Some(ConfChange::AddVoter(id)))
            .await?;
        self.metrics.learner_promote_successes.inc();
        Ok(members)
    }
}
