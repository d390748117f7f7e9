//! etcd's Auth service: users, roles and permissions go through the log (passwords hashed
//! with bcrypt here, before proposing) and are checked for the root role when applied; lists
//! and gets are answered from this member's record once it has applied everything committed (a
//! linearizable read, as etcd's go through Raft). Authenticate checks the password here and
//! proposes the token, so that every member knows it.

use crate::auth::{AuthError, AuthInfo, tokens::SimpleTokens};
use crate::errors::ServerError;
use crate::etcd::{Applied, EtcdServer};
use cairn_proto::cairnpb::{
    AuthChange, Authenticate, auth_change::Change, internal_request::Request as Internal,
};
use cairn_proto::etcdserverpb::auth_server::Auth;
use cairn_proto::etcdserverpb::*;
use std::sync::Arc;
use tonic::{Request, Response, Status};

const MAX_AUTHENTICATE_ATTEMPTS: usize = 16;

pub struct AuthService {
    pub server: Arc<EtcdServer>,
}

impl AuthService {
    fn header(&self) -> Option<ResponseHeader> {
        self.server.header(self.server.store.revision())
    }

    async fn change(
        &self,
        change: Change,
        who: &AuthInfo,
    ) -> Result<Option<ResponseHeader>, Status> {
        self.server.refuse_learner()?;
        match self
            .server
            .propose_as(
                Internal::Auth(AuthChange {
                    change: Some(change),
                }),
                who,
            )
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

    /// The caller, who must have the root role (checked again when a change is applied; this
    /// early check only spares bcrypt work for callers that would be refused anyway).
    async fn root<T>(&self, request: &Request<T>) -> Result<AuthInfo, Status> {
        let who = super::caller(&self.server, request).await?;
        self.server.auth.check_admin(&who).map_err(|e| e.status())?;
        Ok(who)
    }

    /// One Authenticate attempt: the password checked at some auth revision, the token made
    /// through the log. Says `None` when the record changed in between (the check is stale).
    async fn authenticate_once(
        &self,
        name: &str,
        password: &str,
    ) -> Result<Option<String>, Status> {
        let auth = self.server.auth.clone();
        let (n, p) = (name.to_string(), password.to_string());
        let checked_at = tokio::task::spawn_blocking(move || auth.check_password(&n, &p))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| e.status())?;
        let token_prefix =
            SimpleTokens::prefix().map_err(|_| Status::internal("no randomness for a token"))?;
        let applied = self
            .server
            .propose(Internal::Authenticate(Authenticate {
                name: name.to_string(),
                token_prefix,
            }))
            .await?;
        let Applied::Token(token) = applied else {
            return Err(
                ServerError::Internal("unexpected apply result for Authenticate".into()).into(),
            );
        };
        Ok((checked_at == self.server.auth.revision()).then_some(token))
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
        request: Request<AuthEnableRequest>,
    ) -> Result<Response<AuthEnableResponse>, Status> {
        let who = super::caller(&self.server, &request).await?;
        let header = self
            .change(Change::Enable(request.into_inner()), &who)
            .await?;
        Ok(Response::new(AuthEnableResponse { header }))
    }

    async fn auth_disable(
        &self,
        request: Request<AuthDisableRequest>,
    ) -> Result<Response<AuthDisableResponse>, Status> {
        let who = super::caller(&self.server, &request).await?;
        let header = self
            .change(Change::Disable(request.into_inner()), &who)
            .await?;
        Ok(Response::new(AuthDisableResponse { header }))
    }

    async fn auth_status(
        &self,
        request: Request<AuthStatusRequest>,
    ) -> Result<Response<AuthStatusResponse>, Status> {
        // Anyone may ask, as in etcd 3.7 (3.4-3.6 asked for root once auth was on).
        let _ = request;
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
        request: Request<AuthenticateRequest>,
    ) -> Result<Response<AuthenticateResponse>, Status> {
        self.read_barrier().await?;
        let r = request.into_inner();
        // etcd retries until the password check and the token agree on the auth revision; a
        // record changing that often is bounded here instead.
        for _ in 0..MAX_AUTHENTICATE_ATTEMPTS {
            if let Some(token) = self.authenticate_once(&r.name, &r.password).await? {
                return Ok(Response::new(AuthenticateResponse {
                    header: self.header(),
                    token,
                }));
            }
        }
        Err(ServerError::Timeout.into())
    }

    async fn user_add(
        &self,
        request: Request<AuthUserAddRequest>,
    ) -> Result<Response<AuthUserAddResponse>, Status> {
        let who = self.root(&request).await?;
        let mut r = request.into_inner();
        if r.name.is_empty() {
            return Err(AuthError::UserEmpty.status());
        }
        let no_password = r.options.as_ref().is_some_and(|o| o.no_password);
        if !no_password && r.hashed_password.is_empty() {
            r.hashed_password = self.hash(std::mem::take(&mut r.password)).await?;
        }
        r.password.clear();
        let header = self.change(Change::UserAdd(r), &who).await?;
        Ok(Response::new(AuthUserAddResponse { header }))
    }

    async fn user_get(
        &self,
        request: Request<AuthUserGetRequest>,
    ) -> Result<Response<AuthUserGetResponse>, Status> {
        let who = super::caller(&self.server, &request).await?;
        self.read_barrier().await?;
        // A user may look at itself.
        if let Err(e) = self.server.auth.check_admin(&who)
            && request.get_ref().name != who.user
        {
            return Err(e.status());
        }
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
        request: Request<AuthUserListRequest>,
    ) -> Result<Response<AuthUserListResponse>, Status> {
        self.root(&request).await?;
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
        let who = super::caller(&self.server, &request).await?;
        let header = self
            .change(Change::UserDelete(request.into_inner()), &who)
            .await?;
        Ok(Response::new(AuthUserDeleteResponse { header }))
    }

    async fn user_change_password(
        &self,
        request: Request<AuthUserChangePasswordRequest>,
    ) -> Result<Response<AuthUserChangePasswordResponse>, Status> {
        let who = self.root(&request).await?;
        let mut r = request.into_inner();
        // Checked before the (slow) hash, as etcd does.
        self.server.auth.user(&r.name).map_err(|e| e.status())?;
        if r.hashed_password.is_empty() {
            r.hashed_password = self.hash(std::mem::take(&mut r.password)).await?;
        }
        r.password.clear();
        let header = self.change(Change::UserChangePassword(r), &who).await?;
        Ok(Response::new(AuthUserChangePasswordResponse { header }))
    }

    async fn user_grant_role(
        &self,
        request: Request<AuthUserGrantRoleRequest>,
    ) -> Result<Response<AuthUserGrantRoleResponse>, Status> {
        let who = super::caller(&self.server, &request).await?;
        let header = self
            .change(Change::UserGrantRole(request.into_inner()), &who)
            .await?;
        Ok(Response::new(AuthUserGrantRoleResponse { header }))
    }

    async fn user_revoke_role(
        &self,
        request: Request<AuthUserRevokeRoleRequest>,
    ) -> Result<Response<AuthUserRevokeRoleResponse>, Status> {
        let who = super::caller(&self.server, &request).await?;
        let header = self
            .change(Change::UserRevokeRole(request.into_inner()), &who)
            .await?;
        Ok(Response::new(AuthUserRevokeRoleResponse { header }))
    }

    async fn role_add(
        &self,
        request: Request<AuthRoleAddRequest>,
    ) -> Result<Response<AuthRoleAddResponse>, Status> {
        let who = self.root(&request).await?;
        if request.get_ref().name.is_empty() {
            return Err(AuthError::RoleEmpty.status());
        }
        let header = self
            .change(Change::RoleAdd(request.into_inner()), &who)
            .await?;
        Ok(Response::new(AuthRoleAddResponse { header }))
    }

    async fn role_get(
        &self,
        request: Request<AuthRoleGetRequest>,
    ) -> Result<Response<AuthRoleGetResponse>, Status> {
        let who = super::caller(&self.server, &request).await?;
        self.read_barrier().await?;
        // A user may look at its own roles.
        if let Err(e) = self.server.auth.check_admin(&who)
            && !self
                .server
                .auth
                .has_role(&who.user, &request.get_ref().role)
        {
            return Err(e.status());
        }
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
        request: Request<AuthRoleListRequest>,
    ) -> Result<Response<AuthRoleListResponse>, Status> {
        self.root(&request).await?;
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
        let who = super::caller(&self.server, &request).await?;
        let header = self
            .change(Change::RoleDelete(request.into_inner()), &who)
            .await?;
        Ok(Response::new(AuthRoleDeleteResponse { header }))
    }

    async fn role_grant_permission(
        &self,
        request: Request<AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<AuthRoleGrantPermissionResponse>, Status> {
        let who = super::caller(&self.server, &request).await?;
        let header = self
            .change(Change::RoleGrantPermission(request.into_inner()), &who)
            .await?;
        Ok(Response::new(AuthRoleGrantPermissionResponse { header }))
    }

    async fn role_revoke_permission(
        &self,
        request: Request<AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<AuthRoleRevokePermissionResponse>, Status> {
        let who = super::caller(&self.server, &request).await?;
        let header = self
            .change(Change::RoleRevokePermission(request.into_inner()), &who)
            .await?;
        Ok(Response::new(AuthRoleRevokePermissionResponse { header }))
    }
}
