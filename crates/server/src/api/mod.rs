//! The gRPC services, one file per service. Each validates requests the way etcd's `v3rpc` does
//! and answers with etcd's error strings and codes; none holds state of its own: everything goes
//! through [`crate::etcd::EtcdServer`] (proposals, reads, the lessor, the store's watch hub).

pub mod auth;
pub mod cluster;
pub mod election;
pub mod kv;
pub mod lease;
pub mod maintenance;
pub mod watch;

use crate::errors::msg;
use futures::Stream;
use std::pin::Pin;
use std::task::{Context, Poll};
use tonic::Status;

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
