//! An async Rust client for Cairn (and any etcd v3 server).
//!
//! Owns: endpoint parsing and dialing, and thin typed wrappers over the generated gRPC stubs.
//! Callers who need every request field use the stubs ([`Client::kv`], [`Client::maintenance`],
//! [`Client::cluster`], [`Client::lease`], [`Client::watch`]) directly; the helpers cover the
//! common calls.
//!
//! Must not: know anything about the server's internals; it speaks only the public wire API.

use bytes::Bytes;
use cairn_proto::cairnpb::operations_client::OperationsClient;
use cairn_proto::etcdserverpb::{
    AuthenticateRequest, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse,
    RangeRequest, RangeResponse, StatusRequest, StatusResponse, auth_client::AuthClient,
    cluster_client::ClusterClient, kv_client::KvClient, lease_client::LeaseClient,
    maintenance_client::MaintenanceClient, watch_client::WatchClient,
};
use cairn_proto::v3electionpb::election_client::ElectionClient;
use cairn_proto::v3lockpb::lock_client::LockClient;
use std::sync::Arc;
use std::time::Duration;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

pub mod tls;
pub use tls::TlsOptions;

pub use cairn_proto;

/// Default send limit, like etcd's Go client (2 MiB).
pub const MAX_SEND_BYTES: usize = 2 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid endpoint {0:?}")]
    InvalidEndpoint(String),
    #[error("no endpoint given")]
    NoEndpoint,
    #[error("cannot connect to {endpoint}: {reason}")]
    Connect { endpoint: String, reason: String },
    /// The server's status; `Display` is the server's message alone, as etcdctl prints it.
    #[error("{}", .0.message())]
    Status(#[from] tonic::Status),
}

pub type Result<T> = std::result::Result<T, ClientError>;

/// What a server with auth off answers to Authenticate.
const AUTH_NOT_ENABLED: &str = "etcdserver: authentication is not enabled";

/// Turns `host:port` or `http://host:port` into a URI tonic can dial.
pub fn endpoint_uri(ep: &str) -> Result<String> {
    let ep = ep.trim();
    if ep.is_empty() {
        return Err(ClientError::InvalidEndpoint(ep.into()));
    }
    let uri = if ep.starts_with("http://") || ep.starts_with("https://") {
        ep.to_string()
    } else if ep.contains("://") {
        return Err(ClientError::InvalidEndpoint(ep.into()));
    } else {
        format!("http://{ep}")
    };
    Ok(uri)
}

/// Puts the auth token (if any) on every request, as etcd's clients do (`token` metadata).
#[derive(Clone, Default)]
pub struct TokenInterceptor(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for TokenInterceptor {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> std::result::Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            request.metadata_mut().insert("token", token.clone());
        }
        Ok(request)
    }
}

/// The channel every stub of a [`Client`] sends through: the connection plus its credentials.
pub type AuthChannel = InterceptedService<Channel, TokenInterceptor>;

/// A connection to one member.
#[derive(Clone)]
pub struct Client {
    channel: Channel,
    endpoint: String,
    token: TokenInterceptor,
}

impl Client {
    /// Connects to the first reachable endpoint, each within `dial_timeout`.
    pub async fn connect(endpoints: &[String], dial_timeout: Duration) -> Result<Client> {
        let mut last = ClientError::NoEndpoint;
        for ep in endpoints {
            match Self::connect_one(ep, dial_timeout).await {
                Ok(c) => return Ok(c),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Connects to exactly `endpoint`.
    pub async fn connect_one(endpoint: &str, dial_timeout: Duration) -> Result<Client> {
        Self::connect_one_with(endpoint, dial_timeout, None).await
    }

    /// Connects to exactly `endpoint`, over TLS when `tls` is given (whatever the scheme, as
    /// etcdctl does once TLS is configured).
    pub async fn connect_one_with(
        endpoint: &str,
        dial_timeout: Duration,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Client> {
        let uri = endpoint_uri(endpoint)?;
        let ep = Endpoint::from_shared(uri.clone())
            .map_err(|_| ClientError::InvalidEndpoint(endpoint.into()))?
            .connect_timeout(dial_timeout)
            .tcp_nodelay(true);
        let connected = match tls {
            Some(config) => {
                ep.connect_with_connector(tower::service_fn(move |uri| {
                    tls::connect(uri, config.clone())
                }))
                .await
            }
            None => ep.connect().await,
        };
        let channel = connected.map_err(|e| ClientError::Connect {
            endpoint: endpoint.to_string(),
            reason: std::error::Error::source(&e)
                .map_or_else(|| e.to_string(), |s| format!("{e}: {s}")),
        })?;
        Ok(Client {
            channel,
            endpoint: endpoint.to_string(),
            token: TokenInterceptor::default(),
        })
    }

    /// Logs in as `user`: every later request carries the token the server hands out. A
    /// server with auth off answers "authentication is not enabled", which is not an error
    /// here (etcd's clients go on without a token then).
    pub async fn authenticate(&mut self, user: &str, password: &str) -> Result<()> {
        let resp = AuthClient::new(self.channel.clone())
            .authenticate(AuthenticateRequest {
                name: user.to_string(),
                password: password.to_string(),
            })
            .await;
        match resp {
            Ok(r) => {
                let token = MetadataValue::try_from(r.into_inner().token.as_str())
                    .map_err(|_| tonic::Status::internal("the server sent an unusable token"))?;
                self.token = TokenInterceptor(Some(token));
                Ok(())
            }
            Err(s) if s.message() == AUTH_NOT_ENABLED => Ok(()),
            Err(s) => Err(s.into()),
        }
    }

    /// The underlying channel without credentials, for stubs this crate does not wrap.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    fn authed(&self) -> AuthChannel {
        InterceptedService::new(self.channel.clone(), self.token.clone())
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn kv(&self) -> KvClient<AuthChannel> {
        KvClient::new(self.authed())
            .max_encoding_message_size(MAX_SEND_BYTES)
            .max_decoding_message_size(usize::MAX)
    }

    pub fn maintenance(&self) -> MaintenanceClient<AuthChannel> {
        MaintenanceClient::new(self.authed()).max_decoding_message_size(usize::MAX)
    }

    pub fn cluster(&self) -> ClusterClient<AuthChannel> {
        ClusterClient::new(self.authed())
    }

    pub fn lease(&self) -> LeaseClient<AuthChannel> {
        LeaseClient::new(self.authed())
    }

    pub fn watch(&self) -> WatchClient<AuthChannel> {
        WatchClient::new(self.authed()).max_decoding_message_size(usize::MAX)
    }

    pub fn auth(&self) -> AuthClient<AuthChannel> {
        AuthClient::new(self.authed())
    }

    pub fn election(&self) -> ElectionClient<AuthChannel> {
        ElectionClient::new(self.authed())
    }

    pub fn lock(&self) -> LockClient<AuthChannel> {
        LockClient::new(self.authed())
    }

    /// Cairn's own calls beyond etcd's API (a real etcd answers them `Unimplemented`).
    pub fn operations(&self) -> OperationsClient<AuthChannel> {
        OperationsClient::new(self.authed())
    }

    pub async fn put(&self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> Result<PutResponse> {
        let req = PutRequest {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        };
        Ok(self.kv().put(req).await?.into_inner())
    }

    /// A linearizable read of one key.
    pub async fn get(&self, key: impl Into<Bytes>) -> Result<RangeResponse> {
        let req = RangeRequest {
            key: key.into(),
            ..Default::default()
        };
        Ok(self.kv().range(req).await?.into_inner())
    }

    /// A linearizable read of every key starting with `prefix`.
    pub async fn get_prefix(&self, prefix: impl Into<Bytes>) -> Result<RangeResponse> {
        let key: Bytes = prefix.into();
        let req = RangeRequest {
            range_end: Bytes::from(prefix_end(&key)),
            key,
            ..Default::default()
        };
        Ok(self.kv().range(req).await?.into_inner())
    }

    pub async fn delete(&self, key: impl Into<Bytes>) -> Result<DeleteRangeResponse> {
        let req = DeleteRangeRequest {
            key: key.into(),
            ..Default::default()
        };
        Ok(self.kv().delete_range(req).await?.into_inner())
    }

    pub async fn status(&self) -> Result<StatusResponse> {
        Ok(self
            .maintenance()
            .status(StatusRequest {})
            .await?
            .into_inner())
    }
}

/// The range end that selects every key with `prefix` (etcd's `GetPrefixRangeEnd`): the prefix
/// with its last non-0xff byte incremented, or `\0` (all keys) if there is none.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"abc"), b"abd");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), b"\0");
        assert_eq!(prefix_end(b""), b"\0");
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            endpoint_uri("127.0.0.1:2379").unwrap(),
            "http://127.0.0.1:2379"
        );
        assert_eq!(endpoint_uri("http://h:1").unwrap(), "http://h:1");
        assert!(endpoint_uri("unix://x").is_err());
        assert!(endpoint_uri("").is_err());
    }
}
