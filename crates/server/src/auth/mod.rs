//! Users, roles and key permissions (etcd's auth store): the replicated record, the rules that
//! change it, tokens, and the permission check every request goes through once auth is on.
//!
//! The whole record lives in one backend meta value (`auth`), written with the batch that
//! applies a change, so it is durable, in snapshots and restored with them. Users and roles are
//! few and small; each user's permissions are merged once into key intervals and cached until
//! the next change.
//!
//! Where the checks happen, as in etcd: a write carries the caller's name and the auth revision
//! its credentials were checked at (`cairnpb.AuthHeader`), and is checked when it is applied, so
//! a permission change between the check and the apply gives "revision of auth store is old"
//! instead of a write the caller may no longer make. Reads are checked where they are served,
//! and fail the same way when the record changed while they ran.
//!
//! Must not: hash or verify passwords while applying (bcrypt takes tens of milliseconds; the API
//! layer does it before proposing, so every member applies the same bytes).

mod changes;
pub mod jwt;
pub mod perms;
pub mod tokens;

use crate::errors::ServerError;
use bytes::Bytes;
use cairn_mvcc::{Applier, Store};
use cairn_proto::authpb::{Role, User};
use cairn_proto::cairnpb::{AuthChange, AuthHeader, AuthState, Authenticate, auth_change::Change};
use cairn_proto::etcdserverpb::{TxnRequest, request_op};
use parking_lot::RwLock;
use perms::UserPerms;
use prost::Message;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokens::SimpleTokens;

/// How callers prove who they are (`--auth-token`).
pub enum Tokens {
    Simple(SimpleTokens),
    Jwt(jwt::JwtTokens),
}

impl Tokens {
    pub fn from_config(config: &crate::Config) -> Result<Tokens, ServerError> {
        match config.auth_token.split_once(',') {
            Some(("jwt", options)) => {
                let options = jwt::JwtOptions::parse(options).map_err(ServerError::Config)?;
                Ok(Tokens::Jwt(
                    jwt::JwtTokens::load(&options).map_err(ServerError::Config)?,
                ))
            }
            _ => Ok(Tokens::Simple(SimpleTokens::new(Duration::from_secs(
                config.auth_token_ttl,
            )))),
        }
    }
}

pub(crate) const AUTH_KEY: &str = "auth";
const ROOT_USER: &str = "root";
const ROOT_ROLE: &str = "root";

/// etcd's auth errors, with its strings and gRPC codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("etcdserver: user name is empty")]
    UserEmpty,
    #[error("etcdserver: user name already exists")]
    UserAlreadyExists,
    #[error("etcdserver: user name not found")]
    UserNotFound,
    #[error("etcdserver: role name is empty")]
    RoleEmpty,
    #[error("etcdserver: role name already exists")]
    RoleAlreadyExists,
    #[error("etcdserver: role name not found")]
    RoleNotFound,
    #[error("etcdserver: role is not granted to the user")]
    RoleNotGranted,
    #[error("etcdserver: permission is not granted to the role")]
    PermissionNotGranted,
    #[error("etcdserver: invalid auth management")]
    InvalidAuthManagement,
    #[error("etcdserver: root user does not exist")]
    RootUserNotExist,
    #[error("etcdserver: root user does not have root role")]
    RootRoleNotExist,
    #[error("etcdserver: authentication failed, invalid user ID or password")]
    AuthFailed,
    #[error("etcdserver: permission denied")]
    PermissionDenied,
    #[error("etcdserver: authentication is not enabled")]
    NotEnabled,
    #[error("etcdserver: invalid auth token")]
    InvalidToken,
    #[error("etcdserver: revision of auth store is old")]
    OldRevision,
}

impl AuthError {
    pub fn status(&self) -> tonic::Status {
        use tonic::Code;
        let code = match self {
            AuthError::UserEmpty
            | AuthError::RoleEmpty
            | AuthError::AuthFailed
            | AuthError::InvalidAuthManagement
            | AuthError::OldRevision => Code::InvalidArgument,
            AuthError::PermissionDenied => Code::PermissionDenied,
            AuthError::InvalidToken => Code::Unauthenticated,
            _ => Code::FailedPrecondition,
        };
        tonic::Status::new(code, self.to_string())
    }

    /// The error as etcd's Maintenance service returns it: the auth store's own message, not
    /// translated to a gRPC code (clients see code Unknown and "auth: permission denied").
    pub fn untranslated_status(&self) -> tonic::Status {
        let text = match self {
            AuthError::UserNotFound => "auth: user not found".to_string(),
            other => other.to_string().replacen("etcdserver: ", "auth: ", 1),
        };
        tonic::Status::unknown(text)
    }
}

/// Who is asking, as etcd's AuthInfo: the user and the auth revision its credentials were
/// checked at. The default (no user, revision 0) is a caller without credentials.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthInfo {
    pub user: String,
    pub revision: u64,
}

impl AuthInfo {
    pub fn header(&self) -> AuthHeader {
        AuthHeader {
            username: self.user.clone(),
            revision: self.revision,
        }
    }

    pub fn from_header(h: &AuthHeader) -> AuthInfo {
        AuthInfo {
            user: h.username.clone(),
            revision: h.revision,
        }
    }
}

/// The auth record of this member, as applied so far, and the tokens it knows.
pub struct AuthStore {
    state: RwLock<AuthState>,
    /// Copies of `state.enabled` and `state.revision` that requests read without a lock.
    enabled: AtomicBool,
    revision: AtomicU64,
    /// Merged permissions per user; emptied by every change.
    perms: RwLock<HashMap<String, Arc<UserPerms>>>,
    tokens: Tokens,
}

fn decode(store: &Store) -> Result<AuthState, ServerError> {
    match store.meta(AUTH_KEY)? {
        Some(bytes) => AuthState::decode(bytes.as_slice())
            .map_err(|e| ServerError::Internal(format!("stored auth record: {e}"))),
        // etcd's auth revision starts at 1.
        None => Ok(AuthState {
            revision: 1,
            ..Default::default()
        }),
    }
}

fn find_user<'s>(s: &'s AuthState, name: &str) -> Option<&'s User> {
    s.users.iter().find(|u| u.name == name.as_bytes())
}

fn sorted_names<'n>(names: impl Iterator<Item = &'n [u8]>) -> Vec<String> {
    let mut names: Vec<String> = names
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    names.sort();
    names
}

fn has_root_role(user: &User) -> bool {
    user.roles.iter().any(|r| r == ROOT_ROLE)
}

impl AuthStore {
    pub fn load(store: &Store, tokens: Tokens) -> Result<AuthStore, ServerError> {
        let state = decode(store)?;
        Ok(AuthStore {
            enabled: AtomicBool::new(state.enabled),
            revision: AtomicU64::new(state.revision),
            state: RwLock::new(state),
            perms: RwLock::new(HashMap::new()),
            tokens,
        })
    }

    fn publish(&self, next: AuthState) {
        let mut state = self.state.write();
        self.enabled.store(next.enabled, Ordering::Release);
        self.revision.store(next.revision, Ordering::Release);
        *state = next;
        self.perms.write().clear();
    }

    /// After a snapshot replaced the backend.
    pub fn reload(&self, store: &Store) -> Result<(), ServerError> {
        self.publish(decode(store)?);
        Ok(())
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    pub fn revision(&self) -> u64 {
        self.revision.load(Ordering::Acquire)
    }

    /// Whether auth is on, and the auth revision.
    pub fn status(&self) -> (bool, u64) {
        let s = self.state.read();
        (s.enabled, s.revision)
    }

    pub fn user(&self, name: &str) -> Result<User, AuthError> {
        find_user(&self.state.read(), name)
            .cloned()
            .ok_or(AuthError::UserNotFound)
    }

    /// User names, sorted (etcd lists them in key order).
    pub fn user_names(&self) -> Vec<String> {
        sorted_names(self.state.read().users.iter().map(|u| &u.name[..]))
    }

    pub fn role(&self, name: &str) -> Result<Role, AuthError> {
        self.state
            .read()
            .roles
            .iter()
            .find(|r| r.name == name.as_bytes())
            .cloned()
            .ok_or(AuthError::RoleNotFound)
    }

    pub fn role_names(&self) -> Vec<String> {
        sorted_names(self.state.read().roles.iter().map(|r| &r.name[..]))
    }

    pub fn has_role(&self, user: &str, role: &str) -> bool {
        self.user(user)
            .is_ok_and(|u| u.roles.iter().any(|r| r == role))
    }

    /// The caller a token stands for: a simple token at the current auth revision, a JWT at
    /// the revision it was signed at.
    pub fn info_from_token(&self, token: &str) -> Result<AuthInfo, AuthError> {
        let (user, revision) = match &self.tokens {
            Tokens::Simple(t) => (t.user(token), self.revision()),
            Tokens::Jwt(t) => match t.check(token) {
                Some((user, revision)) => (Some(user), revision),
                None => (None, 0),
            },
        };
        let user = user.ok_or(AuthError::InvalidToken)?;
        Ok(AuthInfo { user, revision })
    }

    fn forget_user(&self, user: &str) {
        if let Tokens::Simple(t) = &self.tokens {
            t.drop_user(user);
        }
    }

    /// A client certificate's common name as the caller (`--client-cert-auth`).
    pub fn info_from_common_name(&self, name: &str) -> AuthInfo {
        AuthInfo {
            user: name.to_string(),
            revision: self.revision(),
        }
    }

    /// Checks a password; returns the auth revision it was checked at. Slow (bcrypt): call it
    /// off the async workers.
    pub fn check_password(&self, name: &str, password: &str) -> Result<u64, AuthError> {
        let (hash, revision) = {
            let s = self.state.read();
            if !s.enabled {
                return Err(AuthError::NotEnabled);
            }
            let user = find_user(&s, name).ok_or(AuthError::AuthFailed)?;
            if user.options.as_ref().is_some_and(|o| o.no_password) {
                return Err(AuthError::AuthFailed);
            }
            (user.password.clone(), s.revision)
        };
        let hash = std::str::from_utf8(&hash).map_err(|_| AuthError::AuthFailed)?;
        match bcrypt::verify(password, hash) {
            Ok(true) => Ok(revision),
            _ => Err(AuthError::AuthFailed),
        }
    }

    /// etcd's IsAdminPermitted: the caller has the root role (anyone, while auth is off).
    pub fn check_admin(&self, who: &AuthInfo) -> Result<(), AuthError> {
        if !self.is_enabled() {
            return Ok(());
        }
        if who.user.is_empty() {
            return Err(AuthError::UserEmpty);
        }
        let s = self.state.read();
        let user = find_user(&s, &who.user).ok_or(AuthError::UserNotFound)?;
        if has_root_role(user) {
            Ok(())
        } else {
            Err(AuthError::PermissionDenied)
        }
    }

    /// etcd's isOpPermitted: reading or writing `[key, range_end)` (a single key when
    /// `range_end` is empty).
    pub fn check_key(
        &self,
        who: &AuthInfo,
        key: &[u8],
        range_end: &[u8],
        write: bool,
    ) -> Result<(), AuthError> {
        if !self.is_enabled() {
            return Ok(());
        }
        if who.revision == 0 {
            return Err(AuthError::UserEmpty);
        }
        if who.revision < self.revision() {
            return Err(AuthError::OldRevision);
        }
        let cached = self.perms.read().get(&who.user).cloned();
        let perms = match cached {
            Some(p) => p,
            None => self.merge_perms(&who.user)?,
        };
        let allowed = if write {
            perms.may_write(key, range_end)
        } else {
            perms.may_read(key, range_end)
        };
        if allowed {
            Ok(())
        } else {
            Err(AuthError::PermissionDenied)
        }
    }

    fn merge_perms(&self, name: &str) -> Result<Arc<UserPerms>, AuthError> {
        let s = self.state.read();
        let user = find_user(&s, name).ok_or(AuthError::PermissionDenied)?;
        let merged = if has_root_role(user) {
            UserPerms::everything()
        } else {
            let roles = user
                .roles
                .iter()
                .filter_map(|r| s.roles.iter().find(|x| x.name == r.as_bytes()));
            UserPerms::merge(roles)
        };
        let merged = Arc::new(merged);
        // Under the state's read lock: a change (which takes the write lock, then clears this
        // cache) cannot slip between the merge and the insert.
        self.perms.write().insert(name.to_string(), merged.clone());
        Ok(merged)
    }

    /// Every key and comparison of a txn, in every nested branch (etcd's checkTxnAuth).
    pub fn check_txn(&self, who: &AuthInfo, txn: &TxnRequest) -> Result<(), AuthError> {
        if !self.is_enabled() {
            return Ok(());
        }
        for c in &txn.compare {
            self.check_key(who, &c.key, &c.range_end, false)?;
        }
        for op in txn.success.iter().chain(&txn.failure) {
            match &op.request {
                Some(request_op::Request::RequestRange(r)) => {
                    self.check_key(who, &r.key, &r.range_end, false)?
                }
                Some(request_op::Request::RequestPut(p)) => {
                    self.check_key(who, &p.key, &[], true)?;
                    if p.prev_kv {
                        self.check_key(who, &p.key, &[], false)?;
                    }
                }
                Some(request_op::Request::RequestDeleteRange(d)) => {
                    if d.prev_kv {
                        self.check_key(who, &d.key, &d.range_end, false)?;
                    }
                    self.check_key(who, &d.key, &d.range_end, true)?;
                }
                Some(request_op::Request::RequestTxn(t)) => self.check_txn(who, t)?,
                None => {}
            }
        }
        Ok(())
    }

    /// Writing to every key attached to a lease (to attach more to it, or revoke it): the
    /// caller must be able to write all of them (etcd's checkLeasePuts).
    pub fn check_lease_keys(&self, who: &AuthInfo, keys: &[Bytes]) -> Result<(), AuthError> {
        if keys.is_empty() || self.check_admin(who).is_ok() {
            return Ok(());
        }
        keys.iter()
            .try_for_each(|k| self.check_key(who, k, &[], true))
    }

    /// Applies one change from the log: checked against the record as it is at this point of
    /// the log, written with the batch, then made visible. A refused change changes nothing.
    pub fn apply(&self, a: &mut Applier<'_>, change: &AuthChange) -> Result<(), ServerError> {
        let mut next = self.state.read().clone();
        let moves = changes::change_state(&mut next, change)?;
        let enabled_before = self.is_enabled();
        if moves {
            next.revision += 1;
        }
        a.put_meta(AUTH_KEY, &next.encode_to_vec())?;
        let now_enabled = next.enabled;
        self.publish(next);
        match &change.change {
            Some(Change::UserDelete(r)) => self.forget_user(&r.name),
            Some(Change::UserChangePassword(r)) => self.forget_user(&r.name),
            Some(Change::Disable(_)) if enabled_before && !now_enabled => {
                if let Tokens::Simple(t) = &self.tokens {
                    t.clear();
                }
            }
            _ => {}
        }
        if enabled_before != now_enabled {
            tracing::info!(
                enabled = now_enabled,
                "authentication {}",
                if now_enabled { "enabled" } else { "disabled" }
            );
        }
        Ok(())
    }

    /// Applies an Authenticate entry: the token for the user, known to every member.
    pub fn apply_authenticate(&self, req: &Authenticate, index: u64) -> Result<String, AuthError> {
        {
            let s = self.state.read();
            if !s.enabled {
                return Err(AuthError::NotEnabled);
            }
            let user = find_user(&s, &req.name).ok_or(AuthError::AuthFailed)?;
            if user.options.as_ref().is_some_and(|o| o.no_password) {
                return Err(AuthError::AuthFailed);
            }
        }
        match &self.tokens {
            Tokens::Simple(t) => Ok(t.assign(&req.token_prefix, index, &req.name)),
            Tokens::Jwt(t) => t.sign(&req.name, self.revision()).map_err(|e| {
                tracing::warn!(error = %e, user = %req.name, "cannot hand out a JWT");
                AuthError::AuthFailed
            }),
        }
    }
}
