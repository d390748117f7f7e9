//! The gRPC services, one file per service. Each validates requests the way etcd's `v3rpc` does
//! and answers with etcd's error strings and codes; none holds state of its own: everything goes
//! through [`crate::etcd::EtcdServer`] (proposals, reads, the lessor, the store's watch hub).

pub mod auth;
pub(crate) mod backup;
pub mod cluster;
pub mod election;
pub mod kv;
pub mod lease;
pub mod maintenance;
pub mod operations;
pub(crate) mod range_stream;
pub mod watch;

use crate::auth::AuthInfo;
use crate::errors::msg;
use crate::etcd::EtcdServer;
use futures::Stream;
use std::pin::Pin;
use std::task::{Context, Poll};
use tonic::Status;

/// The caller of a request, found as etcd's AuthInfoFromCtx finds it: a token in the `token`
/// metadata (`authorization` from the JSON gateway), else, with `--client-cert-auth`, the common
/// name of the client's verified certificate; no credentials otherwise. While auth is off
/// nothing is looked up and every caller is anonymous.
pub(crate) async fn caller<T>(
    server: &EtcdServer,
    request: &tonic::Request<T>,
) -> Result<AuthInfo, Status> {
    if !server.auth.is_enabled() {
        return Ok(AuthInfo::default());
    }
    let credentials = Credentials::of(request);
    caller_of(server, &credentials)
        .await
        .map_err(|e| e.status())
}

/// Calls only the root role may make (membership changes): etcd's refusal, as a gRPC error.
pub(crate) async fn require_root<T>(
    server: &EtcdServer,
    request: &tonic::Request<T>,
) -> Result<(), Status> {
    root_check(server, request).await.map_err(|e| e.status())
}

/// The Maintenance service's admin-only calls: etcd answers them with the auth store's own
/// error text under code Unknown (`auth: permission denied`), which clients show as such.
pub(crate) async fn require_root_untranslated<T>(
    server: &EtcdServer,
    request: &tonic::Request<T>,
) -> Result<(), Status> {
    root_check(server, request)
        .await
        .map_err(|e| e.untranslated_status())
}

async fn root_check<T>(
    server: &EtcdServer,
    request: &tonic::Request<T>,
) -> Result<(), crate::auth::AuthError> {
    if !server.auth.is_enabled() {
        return Ok(());
    }
    let credentials = Credentials::of(request);
    let who = caller_of(server, &credentials).await?;
    server.auth.check_admin(&who)
}

/// What a request carries that can name its caller, kept by streams that check it again for
/// each watch they create.
#[derive(Clone, Default)]
pub(crate) struct Credentials {
    token: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
    cert_name: Option<String>,
}

impl Credentials {
    pub(crate) fn of<T>(request: &tonic::Request<T>) -> Credentials {
        let metadata = request.metadata();
        let token = metadata
            .get("token")
            .or_else(|| metadata.get("authorization"))
            .cloned();
        // The gateway talks with the server's own certificate: its name is nobody's.
        let cert_name = if metadata.get("grpcgateway-accept").is_none() {
            request
                .extensions()
                .get::<axum::extract::ConnectInfo<crate::tls::ClientCertName>>()
                .and_then(|c| c.0.0.clone())
        } else {
            None
        };
        Credentials { token, cert_name }
    }
}

pub(crate) async fn caller_of(
    server: &EtcdServer,
    creds: &Credentials,
) -> Result<AuthInfo, crate::auth::AuthError> {
    let auth = &server.auth;
    if !auth.is_enabled() {
        return Ok(AuthInfo::default());
    }
    if let Some(token) = &creds.token {
        let token = token
            .to_str()
            .map_err(|_| crate::auth::AuthError::InvalidToken)?;
        let found = auth.info_from_token(token);
        // A simple token is named after the log index that made it: a member that has not
        // applied that far yet waits for it (as etcd's do) rather than call it invalid.
        if found.is_err()
            && let Some(index) = crate::auth::tokens::SimpleTokens::index_of(token)
            && index > server.applied_index()
            && server.wait_applied(index).await
        {
            return auth.info_from_token(token);
        }
        return found;
    }
    if server.config.client_cert_auth
        && let Some(name) = &creds.cert_name
    {
        return Ok(auth.info_from_common_name(name));
    }
    Ok(AuthInfo::default())
}

/// For reads checked before they ran: etcd refuses the answer when the auth record changed
/// while the read ran, since the check may no longer hold.
pub(crate) fn still_permitted(server: &EtcdServer, who: &AuthInfo) -> Result<(), Status> {
    if who.revision != 0 && who.revision != server.auth.revision() {
        return Err(crate::auth::AuthError::OldRevision.status());
    }
    Ok(())
}

/// Whether a call carries the `hasleader` metadata (clientv3's `WithRequireLeader`).
pub(crate) fn requires_leader(metadata: &tonic::metadata::MetadataMap) -> bool {
    metadata
        .get("hasleader")
        .is_some_and(|v| v.as_bytes() == b"true")
}

/// A response stream that ends with "etcdserver: no leader" when its member gives up on having
/// a leader (etcd cancels streams opened with `hasleader` that way, so clients fail over).
pub(crate) struct RequireLeader<S> {
    inner: S,
    lost: Pin<Box<dyn Future<Output = ()> + Send>>,
    ended: bool,
}

impl<S> RequireLeader<S> {
    pub(crate) fn new(inner: S, lost: impl Future<Output = ()> + Send + 'static) -> Self {
        RequireLeader {
            inner,
            lost: Box::pin(lost),
            ended: false,
        }
    }
}

impl<T, S: Stream<Item = Result<T, Status>> + Unpin> Stream for RequireLeader<S> {
    type Item = Result<T, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        if self.lost.as_mut().poll(cx).is_ready() {
            self.ended = true;
            return Poll::Ready(Some(Err(Status::unavailable(msg::NO_LEADER))));
        }
        Pin::new(&mut self.inner).poll_next(cx)
    }
}
