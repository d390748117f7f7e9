//! Lease requests that only the leader can answer, made on any member: a keep-alive extends the
//! deadline the leader keeps, and only the leader's clock knows how long a lease has left. A
//! follower sends them to the leader over the peer port (`cairnpb.Peer`), as etcd does, and
//! retries while there is no leader or leadership moves, up to the request timeout.

use crate::errors::{ServerError, msg};
use crate::etcd::EtcdServer;
use cairn_proto::cairnpb::{LeaseRenewRequest, LeaseTimeToLiveForward};
use cairn_proto::etcdserverpb::{LeaseTimeToLiveRequest, LeaseTimeToLiveResponse};
use std::time::{Duration, Instant};
use tonic::Code;

/// Pause before asking again when there is no leader or it just moved.
const RETRY: Duration = Duration::from_millis(50);

impl EtcdServer {
    /// Renews lease `id` where the leader keeps it; the granted TTL, or 0 for an unknown or
    /// expired lease.
    pub(crate) async fn renew_lease(&self, id: i64) -> Result<i64, ServerError> {
        self.on_leader(
            |s| async move { s.renew_lease_as_leader(id).await },
            |s, mut client| async move {
                let req = LeaseRenewRequest {
                    cluster_id: s.cluster_id,
                    id,
                };
                client.lease_renew(req).await.map(|r| r.into_inner().ttl)
            },
        )
        .await
    }

    /// LeaseTimeToLive as the leader sees the lease.
    pub(crate) async fn lease_time_to_live(
        &self,
        req: LeaseTimeToLiveRequest,
    ) -> Result<LeaseTimeToLiveResponse, ServerError> {
        let forwarded = req;
        self.on_leader(
            |s| async move { s.lease_time_to_live_as_leader(&req).await },
            |s, mut client| async move {
                let req = LeaseTimeToLiveForward {
                    cluster_id: s.cluster_id,
                    request: Some(forwarded),
                };
                client.lease_time_to_live(req).await.map(|r| {
                    let mut resp = r.into_inner();
                    // The answer is this member's: its header, the leader's lease view.
                    resp.header = s.header(s.store.revision());
                    resp
                })
            },
        )
        .await
    }

    pub(crate) async fn renew_lease_as_leader(&self, id: i64) -> Result<i64, ServerError> {
        // A lease granted through another member may be committed but not yet applied here:
        // renewing before the grant is applied would answer "expired".
        self.wait_applied_to_commit().await?;
        let ttl = self.lessor.renew(id);
        if ttl.is_some() {
            self.metrics.leases_renewed.inc();
        }
        Ok(ttl.unwrap_or(0))
    }

    pub(crate) async fn lease_time_to_live_as_leader(
        &self,
        req: &LeaseTimeToLiveRequest,
    ) -> Result<LeaseTimeToLiveResponse, ServerError> {
        self.linearizable_barrier().await?;
        let header = self.header(self.store.revision());
        Ok(match self.lessor.time_to_live(req.id) {
            Some((remaining, granted, keys)) => LeaseTimeToLiveResponse {
                header,
                id: req.id,
                ttl: remaining,
                granted_ttl: granted,
                keys: if req.keys { keys } else { Vec::new() },
            },
            // etcd answers an unknown lease with TTL -1 rather than an error.
            None => LeaseTimeToLiveResponse {
                header,
                id: req.id,
                ttl: -1,
                granted_ttl: 0,
                keys: Vec::new(),
            },
        })
    }

    /// Runs `local` if this member leads, else `remote` against the leader's peer port, until
    /// one answers or the request timeout passes.
    pub(crate) async fn on_leader<'a, T, L, LF, R, RF>(
        &'a self,
        local: L,
        remote: R,
    ) -> Result<T, ServerError>
    where
        L: FnOnce(&'a EtcdServer) -> LF,
        LF: Future<Output = Result<T, ServerError>>,
        R: Fn(
            &'a EtcdServer,
            cairn_proto::cairnpb::peer_client::PeerClient<tonic::transport::Channel>,
        ) -> RF,
        RF: Future<Output = Result<T, tonic::Status>>,
    {
        let deadline = Instant::now() + self.request_timeout();
        let mut last = ServerError::Raft(cairn_raft::RaftError::NoLeader);
        while Instant::now() < deadline {
            let leader = self.raft.leader();
            if leader == self.member_id && self.is_leader() {
                return local(self).await;
            }
            if leader != 0
                && leader != self.member_id
                && let Some(client) = self.peers.client(leader)
            {
                match tokio::time::timeout(deadline - Instant::now(), remote(self, client)).await {
                    Ok(Ok(v)) => return Ok(v),
                    // Leadership moved, or the leader is unreachable or died mid-call (its
                    // connection reset: Cancelled or Unknown from the transport, never an
                    // answer of the peer service): ask whoever leads next.
                    Ok(Err(status))
                        if matches!(
                            status.code(),
                            Code::Unavailable | Code::Cancelled | Code::Unknown
                        ) || status.message() == msg::NOT_LEADER =>
                    {
                        last = ServerError::Remote(status);
                    }
                    Ok(Err(status)) => return Err(ServerError::Remote(status)),
                    Err(_) => return Err(ServerError::Timeout),
                }
            }
            tokio::time::sleep(RETRY).await;
        }
        Err(match last {
            ServerError::Raft(_) => last,
            _ => ServerError::Timeout,
        })
    }
}
