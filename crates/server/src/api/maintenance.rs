//! The Maintenance service: status, alarms, defragmentation, hashes, leader transfer, snapshots
//! (`backup.rs`) and downgrades (the state is `cluster::version`'s).

use crate::cluster::version::{Version, msg as downgrade_msg};
use crate::etcd::EtcdServer;
use cairn_proto::cairnpb::{DowngradeInfoSet, internal_request::Request as Replicated};
use cairn_proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, DowngradeRequest,
    DowngradeResponse, HashKvRequest, HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest,
    MoveLeaderResponse, SnapshotRequest, SnapshotResponse, StatusRequest, StatusResponse,
    alarm_request::AlarmAction, downgrade_request::DowngradeAction,
    maintenance_server::Maintenance,
};
use std::pin::Pin;
use std::sync::Arc;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// The etcd version Cairn reports to clients: kube-apiserver gates features on it.
pub const ETCD_VERSION: &str = "3.7.0";

/// Niceness of the defragmentation's copy (the lowest there is).
const DEFRAG_NICENESS: i32 = 19;

pub struct MaintenanceService {
    pub server: Arc<EtcdServer>,
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(
        &self,
        request: Request<AlarmRequest>,
    ) -> Result<Response<AlarmResponse>, Status> {
        let req = request.into_inner();
        let s = &self.server;
        let alarms = match AlarmAction::try_from(req.action) {
            // The alarms are applied state: every member answers from its own copy.
            Ok(AlarmAction::Get) => s.alarms.list(req.alarm),
            Ok(AlarmAction::Activate | AlarmAction::Deactivate) => {
                match s
                    .propose_entry(
                        cairn_proto::cairnpb::internal_request::Request::Alarm(req),
                        None,
                        None,
                    )
                    .await?
                {
                    crate::etcd::Applied::Alarm(r) => r.alarms,
                    _ => Vec::new(),
                }
            }
            Err(_) => return Err(Status::invalid_argument("etcdserver: unknown alarm action")),
        };
        Ok(Response::new(AlarmResponse {
            header: s.header(s.store.revision()),
            alarms,
        }))
    }

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let s = &self.server;
        let progress = s.raft.progress();
        let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Acquire);
        Ok(Response::new(StatusResponse {
            header: s.header(s.store.revision()),
            version: ETCD_VERSION.to_string(),
            db_size: s.store.db_size() as i64,
            leader: load(&progress.leader),
            raft_index: load(&progress.commit),
            raft_term: load(&progress.term),
            raft_applied_index: s.applied_index(),
            // etcd 3.5 reports a member without a leader here, then every active alarm.
            errors: (load(&progress.leader) == 0)
                .then(|| crate::errors::msg::NO_LEADER.to_string())
                .into_iter()
                .chain(s.alarms.list(0).iter().map(crate::alarm::describe))
                .collect(),
            db_size_in_use: s.store.db_size_in_use() as i64,
            is_learner: s.is_learner(),
            storage_version: s.versions.storage().full(),
            db_size_quota: s.config.quota_bytes() as i64,
            downgrade_info: Some(s.versions.downgrade_info()),
        }))
    }

    async fn defragment(
        &self,
        request: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        super::require_root_untranslated(&self.server, &request).await?;
        let store = self.server.store.clone();
        tracing::info!(size = store.db_size(), "defragmenting");
        let started = std::time::Instant::now();
        let metrics = self.server.metrics.clone();
        // The copy takes only CPU nobody else wants: below the write path and below the read
        // threads, so that neither waits for it on a busy member.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let inflight = metrics.defrag_inflight.clone();
        let progress = self.server.defrag_progress.clone();
        std::thread::Builder::new()
            .name("defrag".into())
            .spawn(move || {
                crate::readpool::lower_priority(DEFRAG_NICENESS);
                // Set here, not in the call: a defragmentation goes on if its client leaves.
                inflight.inc();
                let _running = progress.begin();
                let slow = crate::failpoint::defrag_step_delay();
                let done = store.defragment_with_progress(&mut |copied, total| {
                    progress.report(copied, total);
                    if let Some(pause) = slow {
                        std::thread::sleep(pause);
                    }
                });
                inflight.dec();
                let _ = tx.send(done);
            })
            .map_err(|e| Status::internal(format!("no defragmentation thread: {e}")))?;
        let done = rx
            .await
            .map_err(|_| Status::internal("defragmentation stopped"))?
            .map_err(crate::errors::ServerError::from)?;
        metrics
            .defrag_duration
            .observe(started.elapsed().as_secs_f64());
        tracing::info!(
            size_before = done.size_before,
            size_after = done.size_after,
            replayed_batches = done.replayed_batches,
            write_back_paused_ms = done.paused.as_millis() as u64,
            copy_ms = done.copy.as_millis() as u64,
            took_ms = started.elapsed().as_millis() as u64,
            "finished defragmenting"
        );
        Ok(Response::new(DefragmentResponse {
            header: self.server.header(self.server.store.revision()),
        }))
    }

    async fn hash(&self, request: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        super::require_root_untranslated(&self.server, &request).await?;
        let store = self.server.store.clone();
        let hash = self
            .server
            .reads
            .run(move || store.hash())
            .await?
            .map_err(crate::errors::ServerError::from)?;
        Ok(Response::new(HashResponse {
            header: self.server.header(self.server.store.revision()),
            hash,
        }))
    }

    async fn hash_kv(
        &self,
        request: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        super::require_root_untranslated(&self.server, &request).await?;
        let rev = request.get_ref().revision;
        let store = self.server.store.clone();
        let started = std::time::Instant::now();
        let (hash, compact_revision, hash_revision) = self
            .server
            .reads
            .run(move || store.hash_kv(rev))
            .await?
            .map_err(crate::errors::ServerError::from)?;
        self.server
            .metrics
            .hash_duration
            .observe(started.elapsed().as_secs_f64());
        Ok(Response::new(HashKvResponse {
            header: self.server.header(self.server.store.revision()),
            hash,
            compact_revision,
            hash_revision,
        }))
    }

    type SnapshotStream = SnapshotStream;

    async fn snapshot(
        &self,
        request: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        super::require_root_untranslated(&self.server, &request).await?;
        let dir = self.server.config.backend_path().parent().map_or_else(
            || std::path::PathBuf::from("."),
            std::path::Path::to_path_buf,
        );
        let rx = super::backup::stream(&self.server, dir);
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn move_leader(
        &self,
        request: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        super::require_root_untranslated(&self.server, &request).await?;
        self.server
            .move_leader(request.into_inner().target_id)
            .await?;
        Ok(Response::new(MoveLeaderResponse {
            header: self.server.header(self.server.store.revision()),
        }))
    }

    async fn downgrade(
        &self,
        request: Request<DowngradeRequest>,
    ) -> Result<Response<DowngradeResponse>, Status> {
        super::require_root_untranslated(&self.server, &request).await?;
        let req = request.into_inner();
        let s = &self.server;
        // The cluster version when the request arrived: etcd answers with it for every action
        // (an enabled downgrade lowers it, and a canceled one raises it, only afterwards).
        let cluster = s.versions.cluster();
        match DowngradeAction::try_from(req.action) {
            Ok(DowngradeAction::Validate) => {
                downgrade_validate(s, &req.version).await?;
            }
            Ok(DowngradeAction::Enable) => {
                let proposed = match downgrade_validate(s, &req.version).await {
                    Ok(target) => s
                        .propose_entry(
                            Replicated::Downgrade(DowngradeInfoSet {
                                enabled: true,
                                ver: target.full(),
                            }),
                            None,
                            None,
                        )
                        .await
                        .map_err(Status::from),
                    Err(e) => Err(e),
                };
                if let Err(e) = proposed {
                    tracing::warn!(error = %e.message(), "reject downgrade request");
                    return Err(e);
                }
            }
            Ok(DowngradeAction::Cancel) => {
                // etcd 3.6 and later log a failed cancel and answers with success all the same.
                if let Err(e) = downgrade_cancel(s).await {
                    tracing::warn!(error = %e.message(), "failed to cancel downgrade");
                }
            }
            Err(_) => return Err(Status::unknown("etcdserver: unknown method")),
        }
        Ok(Response::new(DowngradeResponse {
            header: s.header(s.store.revision()),
            version: cluster.major_minor(),
        }))
    }
}

/// etcd 3.6's checks before a downgrade: the target parses, the cluster's state is current
/// (a linearizable read), the target is one minor below the cluster version, and no downgrade
/// is under way. The target on success.
async fn downgrade_validate(s: &EtcdServer, target: &str) -> Result<Version, Status> {
    let target = Version::parse_target(target)?;
    s.linearizable_barrier().await?;
    if Some(target) != s.versions.cluster().allowed_downgrade() {
        return Err(Status::invalid_argument(downgrade_msg::INVALID_TARGET));
    }
    if s.versions.downgrading() {
        return Err(Status::failed_precondition(downgrade_msg::IN_PROGRESS));
    }
    Ok(target)
}

async fn downgrade_cancel(s: &EtcdServer) -> Result<(), Status> {
    s.linearizable_barrier().await?;
    if !s.versions.downgrading() {
        return Err(Status::failed_precondition(downgrade_msg::NONE_IN_FLIGHT));
    }
    s.propose_entry(
        Replicated::Downgrade(DowngradeInfoSet {
            enabled: false,
            ver: String::new(),
        }),
        None,
        None,
    )
    .await?;
    Ok(())
}
