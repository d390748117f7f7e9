//! The Cluster service: membership as the log describes it, and changes to it with etcd's
//! rules (`crate::cluster::reconfig`).

use crate::etcd::EtcdServer;
use cairn_proto::etcdserverpb::{
    MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse, cluster_server::Cluster,
};
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct ClusterService {
    pub server: Arc<EtcdServer>,
}

impl ClusterService {
    fn header(&self) -> Option<cairn_proto::etcdserverpb::ResponseHeader> {
        self.server.header(self.server.store.revision())
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        request: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        self.server.refuse_learner()?;
        super::require_root(&self.server, &request).await?;
        let req = request.into_inner();
        let (member, members) = self
            .server
            .member_add(req.peer_ur_ls, req.is_learner)
            .await?;
        Ok(Response::new(MemberAddResponse {
            header: self.header(),
            member: Some(member),
            members,
        }))
    }

    async fn member_remove(
        &self,
        request: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        self.server.refuse_learner()?;
        super::require_root(&self.server, &request).await?;
        let members = self.server.member_remove(request.into_inner().id).await?;
        Ok(Response::new(MemberRemoveResponse {
            header: self.header(),
            members,
        }))
    }

    async fn member_update(
        &self,
        request: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        self.server.refuse_learner()?;
        super::require_root(&self.server, &request).await?;
        let req = request.into_inner();
        let members = self.server.member_update(req.id, req.peer_ur_ls).await?;
        Ok(Response::new(MemberUpdateResponse {
            header: self.header(),
            members,
        }))
    }

    async fn member_list(
        &self,
        request: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        self.server.refuse_learner()?;
        if request.get_ref().linearizable {
            self.server.linearizable_barrier().await?;
        }
        Ok(Response::new(MemberListResponse {
            header: self.header(),
            members: self.server.members.list(),
        }))
    }

    async fn member_promote(
        &self,
        request: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        self.server.refuse_learner()?;
        super::require_root(&self.server, &request).await?;
        let members = self.server.member_promote(request.into_inner().id).await?;
        Ok(Response::new(MemberPromoteResponse {
            header: self.header(),
            members,
        }))
    }
}
