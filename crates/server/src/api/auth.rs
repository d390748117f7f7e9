//! etcd's Auth service: users, roles and permissions go through the log (passwords hashed
//! with bcrypt here, before proposing); lists and gets are answered from this member's record
//! once it has applied everything committed (a linearizable read, as etcd's go through Raft).
//! Enabling auth and tokens are not built yet: AuthEnable and Authenticate say so.

use crate::auth::AuthError;
use crate::errors::ServerError;
use crate::etcd::{Applied, EtcdServer};
use cairn_proto::cairnpb::{
    AuthChange, auth_change::Change, internal_request::Request as Internal,
};
use cairn_proto::etcdserverpb::auth_server::Auth;
use cairn_proto::etcdserverpb::*;
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct AuthService {
    pub server: Arc<EtcdServer>,
}

impl AuthService {
    fn header(&self) -> Option<ResponseHeader> {
        self.server.header(self.server.store.revision())
    }

    async fn change(&self, change: Change) -> Result<Option<ResponseHeader>, Status> {
        self.server.refuse_learner()?;
        match self
            .server
            .propose(Internal::Auth(AuthChange {
                change: Some(change),
            }))
            .await?
        {
            Applied::Auth => Ok(self.header()),
            _ => Err(
                ServerError::Internal("unexpected apply result for an auth change".into()).into(),
            ),
        }
    }

    async fn read_barrier(&self) -> Result<(), Status> {
        self.server.refuse_learner()?;
        self.server.linearizable_barrier().await?;
        Ok(())
    }

    /// bcrypt at `--bcrypt-cost`, off the async threads (it takes tens of milliseconds).
    async fn hash(&self, password: String) -> Result<String, Status> {
        let cost = self.server.config.bcrypt_cost;
        tokio::task::spawn_blocking(move || bcrypt::hash(password, cost))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| Status::internal(format!("hashing the password: {e}")))
    }
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn auth_enable(
        &self,
        _: Request<AuthEnableRequest>,
    ) -> Result<Response<AuthEnableResponse>, Status> {
        Err(AuthError::NotBuilt.status())
    }

    async fn auth_disable(
        &self,
        _: Request<AuthDisableRequest>,
    ) -> Result<Response<AuthDisableResponse>, Status> {
        // Auth can never be on yet, and disabling it when it is off succeeds in etcd.
        Ok(Response::new(AuthDisableResponse {
            header: self.header(),
        }))
    }

    async fn auth_status(
        &self,
        _: Request<AuthStatusRequest>,
    ) -> Result<Response<AuthStatusResponse>, Status> {
        self.read_barrier().await?;
        let (enabled, auth_revision) = self.server.auth.status();
        Ok(Response::new(AuthStatusResponse {
            header: self.header(),
            enabled,
            auth_revision,
        }))
    }

    async fn authenticate(
        &self,
        _: Request<AuthenticateRequest>,
    ) -> Result<Response<AuthenticateResponse>, Status> {
        Err(AuthError::NotBuilt.status())
    }

    async fn user_add(
        &self,
        request: Request<AuthUserAddRequest>,
    ) -> Result<Response<AuthUserAddResponse>, Status> {
        let mut r = request.into_inner();
        if r.name.is_empty() {
            return Err(AuthError::UserEmpty.status());
        }
        let no_password = r.options.as_ref().is_some_and(|o| o.no_password);
        if !no_password && r.hashed_password.is_empty() {
            r.hashed_password = self.hash(std::mem::take(&mut r.password)).await?;
        }
        r.password.clear();
        let header = self.change(Change::UserAdd(r)).await?;
        Ok(Response::new(AuthUserAddResponse { header }))
    }

    async fn user_get(
        &self,
        request: Request<AuthUserGetRequest>,
    ) -> Result<Response<AuthUserGetResponse>, Status> {
        self.read_barrier().await?;
        let user = self
            .server
            .auth
            .user(&request.get_ref().name)
            .map_err(|e| e.status())?;
        Ok(Response::new(AuthUserGetResponse {
            header: self.header(),
            roles: user.roles,
        }))
    }

    async fn user_list(
        &self,
        _: Request<AuthUserListRequest>,
    ) -> Result<Response<AuthUserListResponse>, Status> {
        self.read_barrier().await?;
        Ok(Response::new(AuthUserListResponse {
            header: self.header(),
            users: self.server.auth.user_names(),
        }))
    }

    async fn user_delete(
        &self,
        request: Request<AuthUserDeleteRequest>,
    ) -> Result<Response<AuthUserDeleteResponse>, Status> {
        let header = self
            .change(Change::UserDelete(request.into_inner()))
            .await?;
        Ok(Response::new(AuthUserDeleteResponse { header }))
    }

    async fn user_change_password(
        &self,
        request: Request<AuthUserChangePasswordRequest>,
    ) -> Result<Response<AuthUserChangePasswordResponse>, Status> {
        let mut r = request.into_inner();
        // Checked before the (slow) hash, as etcd does.
        self.server.auth.user(&r.name).map_err(|e| e.status())?;
        if r.hashed_password.is_empty() {
            r.hashed_password = self.hash(std::mem::take(&mut r.password)).await?;
        }
        r.password.clear();
        let header = self.change(Change::UserChangePassword(r)).await?;
        Ok(Response::new(AuthUserChangePasswordResponse { header }))
    }

    async fn user_grant_role(
        &self,
        request: Request<AuthUserGrantRoleRequest>,
    ) -> Result<Response<AuthUserGrantRoleResponse>, Status> {
        let header = self
            .change(Change::UserGrantRole(request.into_inner()))
            .await?;
        Ok(Response::new(AuthUserGrantRoleResponse { header }))
    }

    async fn user_revoke_role(
        &self,
        request: Request<AuthUserRevokeRoleRequest>,
    ) -> Result<Response<AuthUserRevokeRoleResponse>, Status> {
        let header = self
            .change(Change::UserRevokeRole(request.into_inner()))
            .await?;
        Ok(Response::new(AuthUserRevokeRoleResponse { header }))
    }

    async fn role_add(
        &self,
        request: Request<AuthRoleAddRequest>,
    ) -> Result<Response<AuthRoleAddResponse>, Status> {
        if request.get_ref().name.is_empty() {
            return Err(AuthError::RoleEmpty.status());
        }
        let header = self.change(Change::RoleAdd(request.into_inner())).await?;
        Ok(Response::new(AuthRoleAddResponse { header }))
    }

    async fn role_get(
        &self,
        request: Request<AuthRoleGetRequest>,
    ) -> Result<Response<AuthRoleGetResponse>, Status> {
        self.read_barrier().await?;
        let role = self
            .server
            .auth
            .role(&request.get_ref().role)
            .map_err(|e| e.status())?;
        Ok(Response::new(AuthRoleGetResponse {
            header: self.header(),
            perm: role.key_permission,
        }))
    }

    async fn role_list(
        &self,
        _: Request<AuthRoleListRequest>,
    ) -> Result<Response<AuthRoleListResponse>, Status> {
        self.read_barrier().await?;
        Ok(Response::new(AuthRoleListResponse {
            header: self.header(),
            roles: self.server.auth.role_names(),
        }))
    }

    async fn role_delete(
        &self,
        request: Request<AuthRoleDeleteRequest>,
    ) -> Result<Response<AuthRoleDeleteResponse>, Status> {
        let header = self
            .change(Change::RoleDelete(request.into_inner()))
            .await?;
        Ok(Response::new(AuthRoleDeleteResponse { header }))
    }

    async fn role_grant_permission(
        &self,
        request: Request<AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<AuthRoleGrantPermissionResponse>, Status> {
        let header = self
            .change(Change::RoleGrantPermission(request.into_inner()))
            .await?;
        Ok(Response::new(AuthRoleGrantPermissionResponse { header }))
    }

    async fn role_revoke_permission(
        &self,
        request: Request<AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<AuthRoleRevokePermissionResponse>, Status> {
        let header = self
            .change(Change::RoleRevokePermission(request.into_inner()))
            .await?;
        Ok(Response::new(AuthRoleRevokePermissionResponse { header }))
    }
}
