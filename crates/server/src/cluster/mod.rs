//! The cluster side of a member: who the members are (`membership`) and how Raft messages
//! travel between them (`transport`).
//!
//! Must not: decide anything Raft decides. Membership here is the replicated record of names
//! and URLs that etcd's Cluster service shows; which members vote is Raft's configuration.

pub(crate) mod corruption;
pub(crate) mod forward;
pub(crate) mod join;
pub(crate) mod membership;
pub(crate) mod reconfig;
pub(crate) mod snapshot;
pub(crate) mod transport;
pub(crate) mod version;

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
                // etcd logs this once the cluster version is known; tools that start members
                // (etcd's own e2e suite among them) wait for it before sending requests.
                tracing::info!(
                    cluster_version = %server.versions.cluster().full(),
                    "enabled capabilities for version"
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

/// Stops a member that has been removed from the cluster, as etcd's does: after a moment, so that
/// the answer to the request that removed it can leave, and with the backend flushed.
pub(crate) fn stop_removed_member(store: Arc<cairn_mvcc::Store>) {
    tracing::warn!("{}; stopping", transport::MEMBER_REMOVED);
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(1));
        if let Err(e) = store.flush() {
            tracing::error!(error = %e, "flushing the backend failed");
        }
        std::process::exit(0);
    });
}

/// Waits for a peer to say this member was removed while it was away, then stops it.
pub(crate) async fn stop_when_told_removed(server: Arc<EtcdServer>) {
    server.peers.removed().await;
    stop_removed_member(server.store.clone());
}

/// Consecutive checks, one election timeout apart, without a leader after which streams that
/// require one are canceled (etcd's maxNoLeaderCnt).
const NO_LEADER_CHECKS: u32 = 3;

/// etcd's monitorLeader: when this member has been without a leader for [`NO_LEADER_CHECKS`]
/// election timeouts, streams opened with the `hasleader` metadata (watches, keep-alives) are
/// canceled with "etcdserver: no leader", so that their clients move to another member.
pub(crate) async fn monitor_leader(server: Arc<EtcdServer>) {
    let every = Duration::from_millis(server.config.election_timeout.max(1));
    let mut without = 0;
    loop {
        tokio::time::sleep(every).await;
        if server.raft.leader() != 0 {
            without = 0;
            continue;
        }
        without += 1;
        if without >= NO_LEADER_CHECKS {
            without = 0;
            tracing::warn!(
                "no leader for {NO_LEADER_CHECKS} election timeouts: canceling streams that require one"
            );
            server.leader_lost.send_modify(|n| *n += 1);
        }
    }
}

/// The partition failpoint: keeps the transport's blocked peers in line with the file the
/// failpoint names (member names or hex ids, one per line).
pub(crate) async fn follow_block_file(server: Arc<EtcdServer>, path: std::path::PathBuf) {
    loop {
        let text = tokio::fs::read_to_string(&path).await.unwrap_or_default();
        let members = server.members.all();
        let blocked = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .filter_map(|l| {
                members
                    .iter()
                    .find(|m| m.name == l || format!("{:x}", m.id) == l)
                    .map(|m| m.id)
            })
            .collect();
        server.peers.set_blocked(blocked);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
