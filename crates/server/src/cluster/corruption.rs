//! Corruption checks, as etcd makes them: members that applied the same log must hold the same
//! history, so their HashKV at the same revision (with the same compaction) must agree.
//!
//! - `--experimental-initial-corrupt-check`: before serving clients, a member compares its hash
//!   with every reachable peer's and refuses to start on a mismatch.
//! - `--experimental-corrupt-check-time`: the leader compares periodically and raises the
//!   CORRUPT alarm for a member whose hash differs, which stops the cluster taking requests
//!   (`etcdserver: corrupt cluster`) until an operator has looked.
//!
//! Peers are asked over the peer port (`cairnpb.Peer/HashKv`), so peer TLS covers it.

use crate::errors::ServerError;
use crate::etcd::EtcdServer;
use cairn_proto::cairnpb::PeerHashKvRequest;
use cairn_proto::cairnpb::internal_request::Request;
use cairn_proto::etcdserverpb::{AlarmRequest, AlarmType, HashKvResponse, alarm_request};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a peer may take to answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a member waits to have applied the revision it is asked to hash.
const CATCH_UP: Duration = Duration::from_secs(2);

/// A peer whose hash differs from this member's at the same revision and compaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mismatch {
    pub(crate) member: u64,
    pub(crate) revision: i64,
    pub(crate) local: u32,
    pub(crate) remote: u32,
}

/// This member's HashKV at `revision`, waiting briefly for it to be applied.
pub(crate) async fn local_hash(
    server: &EtcdServer,
    revision: i64,
) -> Result<(u32, i64, i64), ServerError> {
    let deadline = Instant::now() + CATCH_UP;
    while server.store.revision() < revision && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let store = server.store.clone();
    tokio::task::spawn_blocking(move || store.hash_kv(revision))
        .await
        .map_err(|e| ServerError::Internal(format!("hash task: {e}")))?
        .map_err(Into::into)
}

async fn ask(server: &EtcdServer, member: u64, revision: i64) -> Option<HashKvResponse> {
    let mut client = server.peers.client(member)?;
    let req = PeerHashKvRequest {
        cluster_id: server.cluster_id,
        revision,
    };
    match tokio::time::timeout(ASK_TIMEOUT, client.hash_kv(req)).await {
        Ok(Ok(resp)) => Some(resp.into_inner()),
        Ok(Err(e)) => {
            tracing::warn!(peer = format!("{member:x}"), error = %e.message(), "could not get a peer's hash");
            None
        }
        Err(_) => {
            tracing::warn!(peer = format!("{member:x}"), "a peer's hash took too long");
            None
        }
    }
}

/// Compares this member's hash at its current revision with every reachable peer's.
pub(crate) async fn compare_with_peers(server: &EtcdServer) -> Result<Vec<Mismatch>, ServerError> {
    let revision = server.store.revision();
    let (local, compacted, _) = local_hash(server, revision).await?;
    let mut mismatches = Vec::new();
    for m in server.members.all() {
        if m.id == server.member_id {
            continue;
        }
        let Some(peer) = ask(server, m.id, revision).await else {
            continue;
        };
        // A different compaction hashes different history: nothing to compare.
        if peer.compact_revision != compacted {
            continue;
        }
        if peer.hash != local {
            tracing::error!(
                peer = format!("{:x}", m.id),
                revision,
                local_hash = local,
                remote_hash = peer.hash,
                "found different hash values from a peer"
            );
            mismatches.push(Mismatch {
                member: m.id,
                revision,
                local,
                remote: peer.hash,
            });
        }
    }
    Ok(mismatches)
}

/// `--experimental-initial-corrupt-check`: an error names the first peer that disagrees.
pub(crate) async fn initial_check(server: &EtcdServer) -> Result<(), ServerError> {
    tracing::info!("starting initial corruption check");
    let mismatches = compare_with_peers(server).await?;
    if let Some(m) = mismatches.first() {
        return Err(ServerError::Config(format!(
            "{:x} found data inconsistency with peers: at revision {} this member's hash is {} and member {:x}'s is {}",
            server.member_id, m.revision, m.local, m.member, m.remote
        )));
    }
    tracing::info!("initial corruption check passed");
    Ok(())
}

/// `--experimental-corrupt-check-time`: the leader checks every `every` and raises CORRUPT for
/// each member that disagrees with it.
pub(crate) async fn monitor(server: Arc<EtcdServer>, every: Duration) {
    if every.is_zero() {
        return;
    }
    loop {
        tokio::time::sleep(every).await;
        if !server.is_leader() {
            continue;
        }
        let mismatches = match compare_with_peers(&server).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "corruption check could not hash");
                continue;
            }
        };
        for m in mismatches {
            if server.alarms.is_active(m.member, AlarmType::Corrupt) {
                continue;
            }
            let raise = Request::Alarm(AlarmRequest {
                action: alarm_request::AlarmAction::Activate as i32,
                member_id: m.member,
                alarm: AlarmType::Corrupt as i32,
            });
            if let Err(e) = server.propose_entry(raise, None, None).await {
                tracing::warn!(error = %e, "could not raise CORRUPT");
            }
        }
    }
}
