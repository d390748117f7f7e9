//! The cluster side of a member: who the members are (`membership`) and how Raft messages
//! travel between them (`transport`).
//!
//! Must not: decide anything Raft decides. Membership here is the replicated record of names
//! and URLs that etcd's Cluster service shows; which members vote is Raft's configuration.

pub(crate) mod membership;
pub(crate) mod transport;

use crate::etcd::EtcdServer;
use cairn_proto::cairnpb::{MemberAttributes, internal_request::Request};
use std::sync::Arc;
use std::time::Duration;

/// Publishes this member's name and client URLs through the log once it can (etcd's publish),
/// retrying until the cluster has a leader and takes the proposal.
pub(crate) async fn publish(server: Arc<EtcdServer>) {
    let attrs = MemberAttributes {
        id: server.member_id,
        name: server.config.name.clone(),
        client_urls: crate::config::split_list(&server.config.advertise_client_urls),
    };
    loop {
        match server
            .propose(Request::MemberAttributes(attrs.clone()))
            .await
        {
            Ok(_) => {
                server.set_published();
                tracing::info!(
                    name = %attrs.name,
                    client_urls = ?attrs.client_urls,
                    "published local member to cluster"
                );
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "publishing local member attributes failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}
