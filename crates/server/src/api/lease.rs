//! The Lease service: grants and revocations through Raft, keep-alives from the leader's memory.

use crate::errors::msg;
use crate::etcd::{Applied, EtcdServer};
use crate::lease::MAX_LEASE_TTL;
use cairn_proto::cairnpb::{LeaseGrant, internal_request::Request};
use cairn_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse, lease_server::Lease,
};
use futures::Stream;
use std::pin::Pin;
use std::sync::Arc;
use tonic::{Request as GrpcRequest, Response, Status, Streaming};

pub struct LeaseService {
    pub server: Arc<EtcdServer>,
}

type KeepAliveStream = Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        request: GrpcRequest<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        self.server.refuse_learner()?;
        let who = super::caller(&self.server, &request).await?;
        let req = request.into_inner();
        if req.ttl > MAX_LEASE_TTL {
            return Err(Status::out_of_range(msg::TOO_LARGE_LEASE_TTL));
        }
        let lessor = &self.server.lessor;
        let ttl = req.ttl.max(lessor.min_ttl);
        let id = if req.id == 0 { lessor.new_id() } else { req.id };
        let grant = LeaseGrant { id, ttl };
        match self
            .server
            .propose_as(Request::LeaseGrant(grant), &who)
            .await?
        {
            Applied::LeaseGrant(mut r) => {
                r.header = self.server.header(self.server.store.revision());
                Ok(Response::new(r))
            }
            _ => Err(Status::internal(
                "cairn: unexpected apply result for LeaseGrant",
            )),
        }
    }

    async fn lease_revoke(
        &self,
        request: GrpcRequest<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        self.server.refuse_learner()?;
        let who = super::caller(&self.server, &request).await?;
        let req = request.into_inner();
        match self
            .server
            .propose_as(Request::LeaseRevoke(req), &who)
            .await?
        {
            Applied::LeaseRevoke(r) => Ok(Response::new(LeaseRevokeResponse {
                header: self.server.restamp(r.header),
            })),
            _ => Err(Status::internal(
                "cairn: unexpected apply result for LeaseRevoke",
            )),
        }
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        request: GrpcRequest<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        self.server.refuse_learner()?;
        let require_leader = super::requires_leader(request.metadata());
        if require_leader && self.server.raft.leader() == 0 {
            return Err(Status::unavailable(msg::NO_LEADER));
        }
        let mut inbound = request.into_inner();
        let server = self.server.clone();
        let out = async_stream(move |tx| async move {
            while let Ok(Some(req)) = inbound.message().await {
                // The leader keeps lease deadlines; on a follower this is a call to it.
                let resp = match server.renew_lease(req.id).await {
                    // An unknown lease answers TTL 0, which clients read as "expired or revoked".
                    Ok(ttl) => Ok(LeaseKeepAliveResponse {
                        header: server.header(server.store.revision()),
                        id: req.id,
                        ttl,
                    }),
                    Err(e) => Err(Status::from(e)),
                };
                let failed = resp.is_err();
                if tx.send(resp).await.is_err() || failed {
                    return;
                }
            }
        });
        if require_leader {
            let lost = self.server.leader_lost();
            return Ok(Response::new(Box::pin(super::RequireLeader::new(
                out, lost,
            ))));
        }
        Ok(Response::new(out))
    }

    async fn lease_time_to_live(
        &self,
        request: GrpcRequest<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        self.server.refuse_learner()?;
        let who = super::caller(&self.server, &request).await?;
        let req = request.into_inner();
        let resp = self.server.lease_time_to_live(req).await?;
        // The attached keys' names are shown only to who may read every one of them (etcd
        // added this check after 3.4.23: CVE-2023-32082).
        for key in &resp.keys {
            self.server
                .auth
                .check_key(&who, key, &[], false)
                .map_err(|e| e.status())?;
        }
        Ok(Response::new(resp))
    }

    async fn lease_leases(
        &self,
        _: GrpcRequest<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        self.server.refuse_learner()?;
        self.server.linearizable_barrier().await?;
        Ok(Response::new(LeaseLeasesResponse {
            header: self.server.header(self.server.store.revision()),
            leases: self
                .server
                .lessor
                .ids()
                .into_iter()
                .map(|id| LeaseStatus { id })
                .collect(),
        }))
    }
}

/// A response stream fed by a task that gets the sending half of a bounded channel.
fn async_stream<T, F, Fut>(f: F) -> Pin<Box<dyn Stream<Item = T> + Send>>
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<T>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(f(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}
