//! The member: bootstraps storage and Raft, starts the apply side (`crate::apply`), proposes
//! client writes, and serves linearizable reads.

use crate::apply::{ApplyLoop, Dispatch, DurableRequests, apply_thread, write_back_loop};
use crate::cluster::join::Joined;
use crate::cluster::membership::Members;
use crate::cluster::transport::PeerTransport;
use crate::config::Config;
use crate::errors::ServerError;
use crate::idgen::IdGenerator;
use crate::lease::Lessor;
use crate::readpool::ReadPool;
use cairn_mvcc::{MvccError, Store};
use cairn_proto::cairnpb::{InternalRequest, MemberRecord, Membership, internal_request::Request};
use cairn_proto::etcdserverpb::{
    CompactionResponse, DeleteRangeResponse, LeaseGrantResponse, LeaseRevokeResponse, PutResponse,
    RangeRequest, RangeResponse, ResponseHeader, TxnRequest, TxnResponse,
};
use cairn_proto::raw_range::{EncodedKvs, RawRangeResponse};
use cairn_raft::{NodeConfig, RaftHandle};
use parking_lot::Mutex;
use prost::Message;
use sha1::{Digest, Sha1};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{oneshot, watch};

/// etcd's maxGapBetweenApplyAndCommitIndex: committed entries not yet applied beyond which new
/// proposals are refused with "etcdserver: too many requests".
pub const MAX_APPLY_BACKLOG: u64 = 5000;

/// The result of applying one replicated request.
#[derive(Debug)]
pub enum Applied {
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Compaction(CompactionResponse),
    LeaseGrant(LeaseGrantResponse),
    LeaseRevoke(LeaseRevokeResponse),
    LeaseCheckpoint,
    MemberAttributes,
    MemberChange,
    Auth,
    Token(String),
    Alarm(cairn_proto::etcdserverpb::AlarmResponse),
    Downgrade,
}

pub(crate) type ApplyResult = Result<Applied, ServerError>;

/// One member of a Cairn cluster.
pub struct EtcdServer {
    pub store: Arc<Store>,
    pub raft: RaftHandle,
    pub lessor: Arc<Lessor>,
    pub cluster_id: u64,
    pub member_id: u64,
    pub config: Config,
    /// The cluster's members as the log describes them.
    pub members: Arc<Members>,
    /// Users, roles and permissions as the log describes them.
    pub auth: Arc<crate::auth::AuthStore>,
    /// NOSPACE and CORRUPT alarms as the log describes them.
    pub(crate) alarms: Arc<crate::alarm::Alarms>,
    /// The cluster version and the downgrade in effect, as the log describes them.
    pub(crate) versions: Arc<crate::cluster::version::Versions>,
    /// Carries Raft messages to the other members.
    pub(crate) peers: PeerTransport,
    /// This member's name and client URLs have been applied through the log.
    published: AtomicBool,
    /// Bumped when this member has been without a leader for long enough that streams which
    /// require one must end (see `cluster::monitor_leader`).
    pub(crate) leader_lost: watch::Sender<u64>,
    waiters: Arc<Mutex<HashMap<u64, oneshot::Sender<ApplyResult>>>>,
    request_ids: IdGenerator,
    /// Long read-only work, at a lower CPU priority than the write path.
    pub reads: ReadPool,
    applied: watch::Receiver<u64>,
    request_timeout: Duration,
    /// etcd's Prometheus metrics for `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// How far the defragmentation in flight is (`cairnpb.Operations`).
    pub(crate) defrag_progress: Arc<crate::api::operations::DefragProgress>,
}

fn sha1_u64(data: &[u8]) -> u64 {
    let d = Sha1::digest(data);
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_be_bytes(b)
}

/// etcd's member ID: the first 8 bytes of SHA-1 over the sorted peer URLs and the cluster token,
/// so that a member started with etcd's flags gets the ID etcd would give it.
pub fn member_id(peer_urls: &[String], token: &str) -> u64 {
    let mut urls = peer_urls.to_vec();
    urls.sort();
    let mut data = urls.concat().into_bytes();
    data.extend_from_slice(token.as_bytes());
    sha1_u64(&data)
}

/// etcd's cluster ID: the first 8 bytes of SHA-1 over the sorted member IDs.
pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let data: Vec<u8> = ids.iter().flat_map(|id| id.to_be_bytes()).collect();
    sha1_u64(&data)
}

/// Member and cluster IDs, computed as etcd computes them at bootstrap, then kept in the backend
/// so that later flag changes cannot alter a member's identity. A new member also records the
/// cluster's membership as `--initial-cluster` describes it.
fn identity(
    store: &Store,
    config: &Config,
    join: Option<Joined>,
) -> Result<(u64, u64), ServerError> {
    let stored = |name: &str| -> Result<Option<u64>, ServerError> {
        match store.meta(name)? {
            Some(raw) => Ok(Some(cairn_mvcc::decode_meta_u64(name, &raw)?)),
            None => Ok(None),
        }
    };
    if let (Some(c), Some(m)) = (stored("cluster_id")?, stored("member_id")?) {
        return Ok((c, m));
    }
    if let Some(joined) = join {
        let (index, term) = (store.consistent_index(), store.term());
        let mut a = store.begin_apply()?;
        a.put_meta("cluster_id", &joined.cluster_id.to_le_bytes())?;
        a.put_meta("member_id", &joined.member_id.to_le_bytes())?;
        a.put_meta("member_name", config.name.as_bytes())?;
        Members::bootstrap(&mut a, &joined.membership)?;
        a.commit(index, term, true)?;
        return Ok((joined.cluster_id, joined.member_id));
    }
    if config.initial_cluster_state == "existing" {
        return Err(ServerError::Config(
            "--initial-cluster-state=existing needs the running cluster's membership, which \
             was not fetched"
                .into(),
        ));
    }
    let (membership, cluster_id, member_id) = initial_membership(config)?;
    let (index, term) = (store.consistent_index(), store.term());
    let mut a = store.begin_apply()?;
    a.put_meta("cluster_id", &cluster_id.to_le_bytes())?;
    a.put_meta("member_id", &member_id.to_le_bytes())?;
    a.put_meta("member_name", config.name.as_bytes())?;
    Members::bootstrap(&mut a, &membership)?;
    a.commit(index, term, true)?;
    Ok((cluster_id, member_id))
}

/// The membership `--initial-cluster` describes, with the cluster's and this member's IDs as
/// etcd computes them.
pub(crate) fn initial_membership(config: &Config) -> Result<(Membership, u64, u64), ServerError> {
    let members = config.initial_members()?;
    let records: Vec<MemberRecord> = members
        .iter()
        .map(|m| MemberRecord {
            id: member_id(&m.peer_urls, &config.initial_cluster_token),
            name: m.name.clone(),
            peer_urls: m.peer_urls.clone(),
            client_urls: Vec::new(),
            is_learner: false,
        })
        .collect();
    let member_id = records
        .iter()
        .find(|m| m.name == config.name)
        .map(|m| m.id)
        .ok_or_else(|| ServerError::Config("local member not in --initial-cluster".into()))?;
    let all: Vec<u64> = records.iter().map(|m| m.id).collect();
    let cluster_id = cluster_id(&all);
    Ok((
        Membership {
            members: records,
            removed: Vec::new(),
        },
        cluster_id,
        member_id,
    ))
}

impl EtcdServer {
    /// Opens the data dir, replays the WAL above the backend's consistent index and starts Raft
    /// and the apply loop.
    pub fn start(config: Config) -> Result<Arc<EtcdServer>, ServerError> {
        EtcdServer::start_with(config, None)
    }

    /// Like [`EtcdServer::start`], for a member that joins a running cluster with what it
    /// learned from it (`cluster::join`).
    pub(crate) fn start_with(
        config: Config,
        join: Option<Joined>,
    ) -> Result<Arc<EtcdServer>, ServerError> {
        config.validate()?;
        if crate::offline::is_marked_backup(&config.data_dir()) && !config.force_new_cluster {
            return Err(ServerError::Config(format!(
                "{} is a copy made by `cairnutl backup`: start it with --force-new-cluster (without it the copy would act as the member it was copied from, next to that member)",
                config.data_dir().display()
            )));
        }
        crate::etcd_backend::adopt(&config)?;
        let backend = config.backend_path();
        if let Some(dir) = backend.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| ServerError::Io(format!("create {}: {e}", dir.display())))?;
        }
        if config.unsafe_no_fsync {
            tracing::warn!(
                "--unsafe-no-fsync is set: the WAL is not made durable, and a power cut can lose acknowledged writes"
            );
        }
        let store = Arc::new(Store::open(&backend)?);
        let snap_dir = backend.parent().map_or_else(
            || std::path::PathBuf::from("."),
            std::path::Path::to_path_buf,
        );
        crate::cluster::snapshot::finish_interrupted_install(&store, &snap_dir, &config.wal_dir())?;
        crate::api::backup::remove_leftovers(&snap_dir);
        let (cluster_id, member_id) = identity(&store, &config, join)?;
        let members = Arc::new(Members::load(&store, member_id, &config)?);
        let auth = Arc::new(crate::auth::AuthStore::load(
            &store,
            crate::auth::Tokens::from_config(&config)?,
        )?);
        let alarms = Arc::new(crate::alarm::Alarms::load(&store)?);
        let versions = Arc::new(crate::cluster::version::Versions::load(&store)?);
        if config.force_new_cluster {
            // Raft commits the removal of every other member (see cairn_raft's NodeConfig);
            // the membership record follows here, as those entries carry no request.
            members.force_alone(&store, member_id)?;
        }
        let metrics = Arc::new(
            crate::metrics::Metrics::new(config.metrics_level()?, member_id)
                .map_err(|e| ServerError::Internal(format!("registering metrics: {e}")))?,
        );
        {
            let metrics = metrics.clone();
            store.observe_commits(Box::new(move |took| {
                metrics.backend_commit.observe(took.as_secs_f64());
            }));
        }
        let peers = PeerTransport::new(
            member_id,
            cluster_id,
            members.peers(member_id),
            snap_dir.clone(),
            crate::tls::peer_dialer(&config)?,
            metrics.clone(),
            crate::cluster::transport::Timeouts {
                read: config.raft_read_timeout.0,
                write: config.raft_write_timeout.0,
            },
        );
        // etcd's minimum lease TTL: 1.5 election timeouts, rounded up to whole seconds.
        let min_ttl = (config.election_timeout * 3 / 2).div_ceil(1000) as i64;
        let lessor = Arc::new(Lessor::recover(&store, min_ttl, member_id)?);
        let applied_index = store.consistent_index();
        let (applied_tx, applied_rx) = watch::channel(applied_index);
        let waiters = Arc::new(Mutex::new(HashMap::new()));
        let (nudge, nudges) = std::sync::mpsc::sync_channel(1);
        let durable = Arc::new(DurableRequests::default());
        {
            let (store, durable) = (store.clone(), durable.clone());
            std::thread::Builder::new()
                .name("write-back".into())
                .spawn(move || write_back_loop(store, nudges, durable))
                .map_err(|e| ServerError::Io(format!("spawn write-back thread: {e}")))?;
        }
        let applier = Arc::new(Mutex::new(ApplyLoop {
            write_back: nudge,
            durable: durable.clone(),
            store: store.clone(),
            raft: None,
            lessor: lessor.clone(),
            members: members.clone(),
            auth: auth.clone(),
            alarms: alarms.clone(),
            versions: versions.clone(),
            peers: peers.clone(),
            snap_dir: snap_dir.clone(),
            config: config.clone(),
            waiters: waiters.clone(),
            applied: applied_tx,
            member_id,
            snapshot_count: config.snapshot_count,
            last_compacted: applied_index,
            bytes_since_durable: 0,
            hold: crate::failpoint::apply_hold(),
            metrics: metrics.clone(),
        }));
        let queued = Arc::new(AtomicUsize::new(0));
        let (apply_tx, apply_rx) = std::sync::mpsc::channel();
        {
            let (applier, queued) = (applier.clone(), queued.clone());
            std::thread::Builder::new()
                .name("apply".into())
                .spawn(move || apply_thread(applier, queued, apply_rx))
                .map_err(|e| ServerError::Io(format!("spawn apply thread: {e}")))?;
        }
        let election_ticks = (config.election_timeout / config.heartbeat_interval).max(2) as usize;
        let (raft, _thread) = cairn_raft::start(
            NodeConfig {
                id: member_id,
                voters: members.voters(),
                learners: members.learners(),
                wal_dir: config.wal_dir(),
                tick: config.tick(),
                election_ticks,
                heartbeat_ticks: 1,
                applied: applied_index,
                unsafe_no_fsync: config.unsafe_no_fsync,
                catch_up_entries: config.experimental_snapshot_catchup_entries,
                force_new_cluster: config.force_new_cluster,
                observer: Arc::new(crate::metrics::RaftObserver {
                    metrics: metrics.clone(),
                    member_id,
                }),
            },
            Dispatch {
                applier: applier.clone(),
                queued,
                tx: apply_tx,
            },
            peers.clone(),
            crate::cluster::snapshot::SnapshotMaker {
                store: store.clone(),
                dir: snap_dir.clone(),
            },
        )?;
        applier.lock().raft = Some(raft.clone());
        *durable.raft.lock() = Some(raft.clone());
        let request_timeout =
            Duration::from_secs(5) + 2 * Duration::from_millis(config.election_timeout);
        let server = Arc::new(EtcdServer {
            store,
            raft,
            lessor,
            cluster_id,
            member_id,
            members,
            auth,
            alarms,
            versions,
            peers,
            published: AtomicBool::new(false),
            leader_lost: watch::channel(0).0,
            waiters,
            request_ids: IdGenerator::new(member_id),
            reads: ReadPool::start(
                std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
            )?,
            applied: applied_rx,
            request_timeout,
            config: config.clone(),
            metrics,
            defrag_progress: Arc::default(),
        });
        tracing::info!(
            name = %config.name,
            member_id = format!("{member_id:x}"),
            cluster_id = format!("{cluster_id:x}"),
            applied_index,
            "member started"
        );
        if config.force_new_cluster {
            // The WAL now records this member alone: the copy is a cluster of its own.
            crate::offline::clear_mark(&config.data_dir())
                .map_err(|e| ServerError::Io(e.to_string()))?;
        }
        Ok(server)
    }

    pub fn header(&self, revision: i64) -> Option<ResponseHeader> {
        Some(ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            revision,
            raft_term: self.raft.term(),
        })
    }

    /// The full header for a response whose apply result carries only its revision.
    pub fn restamp(&self, header: Option<ResponseHeader>) -> Option<ResponseHeader> {
        self.header(header.map_or(0, |h| h.revision))
    }

    /// Whether this member is a learner (it replicates the log but neither votes nor serves
    /// anything but serializable reads and status).
    pub fn is_learner(&self) -> bool {
        self.members
            .get(self.member_id)
            .is_some_and(|m| m.is_learner)
    }

    /// etcd refuses every RPC but Status and serializable Range on a learner.
    pub(crate) fn refuse_learner(&self) -> Result<(), ServerError> {
        if self.is_learner() {
            Err(ServerError::NotForLearner)
        } else {
            Ok(())
        }
    }

    pub fn is_published(&self) -> bool {
        self.published.load(Ordering::Acquire)
    }

    pub(crate) fn set_published(&self) {
        self.published.store(true, Ordering::Release);
    }

    pub fn is_leader(&self) -> bool {
        self.raft
            .progress()
            .is_leader
            .load(std::sync::atomic::Ordering::Acquire)
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// Resolves when this member next gives up on having a leader (see `leader_lost`).
    pub(crate) fn leader_lost(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.leader_lost.subscribe();
        async move {
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Waits until this member has applied everything committed so far.
    pub(crate) async fn wait_applied_to_commit(&self) -> Result<(), ServerError> {
        let commit = self.raft.progress().commit.load(Ordering::Acquire);
        let mut applied = self.applied.clone();
        match tokio::time::timeout(self.request_timeout, applied.wait_for(|a| *a >= commit)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(ServerError::Stopped),
            Err(_) => Err(ServerError::Timeout),
        }
    }

    /// Proposals made on this member and not yet applied.
    pub fn pending_proposals(&self) -> u64 {
        self.waiters.lock().len() as u64
    }

    pub fn applied_index(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Waits (at most the request timeout) until this member has applied `index`.
    pub async fn wait_applied(&self, index: u64) -> bool {
        let mut applied = self.applied.clone();
        matches!(
            tokio::time::timeout(self.request_timeout, applied.wait_for(|a| *a >= index)).await,
            Ok(Ok(_))
        )
    }

    /// Replicates the server's own `request` (no caller to check) and waits for this member to
    /// apply it.
    pub async fn propose(&self, request: Request) -> Result<Applied, ServerError> {
        self.propose_entry(request, None, None).await
    }

    /// Replicates a client's `request`, checked when it is applied against the caller's
    /// permissions as of the auth revision its credentials were checked at.
    pub async fn propose_as(
        &self,
        request: Request,
        caller: &crate::auth::AuthInfo,
    ) -> Result<Applied, ServerError> {
        self.propose_entry(request, None, Some(caller.header()))
            .await
    }

    /// etcd's quota: a request that would grow the backend past `--quota-backend-bytes` is
    /// refused, and this member raises NOSPACE for the whole cluster (once).
    async fn check_quota(&self, request: &Request) -> Result<(), ServerError> {
        let cost = crate::alarm::cost(request);
        let charged = crate::alarm::charged_size(self.store.db_size());
        if cost == 0 || charged + cost <= self.config.quota_bytes() {
            return Ok(());
        }
        let kind = cairn_proto::etcdserverpb::AlarmType::Nospace;
        if !self.alarms.is_active(self.member_id, kind) {
            tracing::warn!(
                db_size = self.store.db_size(),
                quota = self.config.quota_bytes(),
                "the backend reached its quota; raising NOSPACE"
            );
            let raise = Request::Alarm(cairn_proto::etcdserverpb::AlarmRequest {
                action: cairn_proto::etcdserverpb::alarm_request::AlarmAction::Activate as i32,
                member_id: self.member_id,
                alarm: kind as i32,
            });
            if let Err(e) = Box::pin(self.propose_entry(raise, None, None)).await {
                tracing::warn!(error = %e, "could not raise NOSPACE");
            }
        }
        Err(ServerError::NoSpace)
    }

    /// Replicates `request`, as a normal entry or as the context of a Raft configuration
    /// change, and waits for this member to apply it.
    pub(crate) async fn propose_entry(
        &self,
        request: Request,
        conf_change: Option<cairn_raft::ConfChange>,
        auth_header: Option<cairn_proto::cairnpb::AuthHeader>,
    ) -> Result<Applied, ServerError> {
        // Like etcd: when applying falls this far behind committing, new writes would only
        // lengthen the queue (and its memory) without being served any sooner.
        let committed = self.raft.progress().commit.load(Ordering::Acquire);
        if committed > self.applied_index() + MAX_APPLY_BACKLOG {
            return Err(ServerError::TooManyRequests);
        }
        self.check_quota(&request).await?;
        let id = self.request_ids.next();
        let envelope = InternalRequest {
            id,
            origin: self.member_id,
            request: Some(request),
            auth_header,
        };
        let data = envelope.encode_to_vec();
        if data.len() > self.config.max_request_bytes as usize {
            return Err(ServerError::RequestTooLarge);
        }
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().insert(id, tx);
        let waiters = self.waiters.clone();
        let on_reject = Box::new(move |e: cairn_raft::RaftError| {
            if let Some(tx) = waiters.lock().remove(&id) {
                let _ = tx.send(Err(e.into()));
            }
        });
        let leader_before = self.raft.leader();
        let outcome = async {
            match conf_change {
                None => self.raft.propose(data, on_reject)?,
                Some(change) => self.raft.propose_conf_change(change, data, on_reject)?,
            }
            match tokio::time::timeout(self.request_timeout, rx).await {
                Ok(Ok(res)) => res,
                Ok(Err(_)) => Err(ServerError::Stopped),
                // As etcd: a timeout across a leader change most likely means the proposal
                // was lost with the old leader.
                Err(_) if self.raft.leader() != leader_before => {
                    Err(ServerError::TimeoutLeaderFail)
                }
                Err(_) => Err(ServerError::Timeout),
            }
        }
        .await;
        if let Err(e) = &outcome {
            self.waiters.lock().remove(&id);
            // etcd counts proposals that never made it through Raft, not requests that were
            // applied and answered with an error.
            if matches!(
                e,
                ServerError::Raft(_)
                    | ServerError::Stopped
                    | ServerError::Timeout
                    | ServerError::TimeoutLeaderFail
            ) {
                self.metrics.proposals_failed.inc();
            }
        }
        outcome
    }

    /// Waits until this member has applied everything committed before the call: the basis of
    /// linearizable reads.
    pub async fn linearizable_barrier(&self) -> Result<(), ServerError> {
        let fut = async {
            let index = self.raft.read_index().await?;
            let mut applied = self.applied.clone();
            applied
                .wait_for(|a| *a >= index)
                .await
                .map_err(|_| ServerError::Stopped)?;
            Ok::<_, ServerError>(())
        };
        match tokio::time::timeout(self.request_timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(ServerError::Timeout),
        }
    }

    /// A txn that only reads, on one consistent view after a linearizable barrier (skipped when
    /// every range in it is serializable).
    pub async fn read_only_txn(&self, req: TxnRequest) -> Result<TxnResponse, ServerError> {
        if !cairn_mvcc::txn_is_serializable(&req) {
            self.linearizable_barrier().await?;
        }
        let store = self.store.clone();
        let compares = req.compare.len() as u64;
        let mut resp = self.reads.run(move || store.read_only_txn(&req)).await??;
        let mut ops = crate::metrics::OpCounts::of_branch(&resp);
        ops.ranges += compares;
        self.metrics.count_ops(ops);
        resp.header = self.restamp(resp.header.take());
        Ok(resp)
    }

    /// A Range answered with the stored records as they are (see `cairn_proto::kv_server`):
    /// what the KV service sends.
    pub async fn range_raw(&self, req: RangeRequest) -> Result<RawRangeResponse, ServerError> {
        // Framing (and freeing the per-key buffers) on the read thread keeps the per-key work
        // off the network threads.
        self.read_range(req, |store, req| {
            let raw = store.range_raw(req)?;
            let resp = RawRangeResponse {
                header: None,
                kvs: EncodedKvs::frame(&raw.kvs),
                more: raw.more,
                count: raw.count,
            };
            Ok((raw.revision, resp))
        })
        .await
        .map(|(revision, mut resp)| {
            resp.header = self.header(revision);
            resp
        })
    }

    /// A Range with decoded key-values, for the server's own use (election, lock).
    pub async fn range(&self, req: RangeRequest) -> Result<RangeResponse, ServerError> {
        let mut resp = self.read_range(req, Store::range).await?;
        resp.header = self.restamp(resp.header.take());
        Ok(resp)
    }

    async fn read_range<T: Send + 'static>(
        &self,
        req: RangeRequest,
        read: fn(&Store, &RangeRequest) -> Result<T, MvccError>,
    ) -> Result<T, ServerError> {
        if !req.serializable {
            self.linearizable_barrier().await?;
        }
        self.metrics.ranges.inc();
        // A single key is read in microseconds: handing it to another thread would cost more
        // than the read. Larger ranges read many values: keep them off the async workers, at
        // the read threads' lower priority.
        if req.range_end.is_empty() {
            return Ok(read(&self.store, &req)?);
        }
        let store = self.store.clone();
        Ok(self.reads.run(move || read(&store, &req)).await??)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_etcd_for_default_flags() {
        // What etcd 3.4 reports for `etcd` started with no flags.
        let m = member_id(&["http://localhost:2380".to_string()], "etcd-cluster");
        assert_eq!(format!("{m:x}"), "8e9e05c52164694d");
        assert_eq!(cluster_id(&[m]), 14841639068965178418);
    }
}
