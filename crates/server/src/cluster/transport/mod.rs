//! Raft messages between members, on the peer URLs.
//!
//! Each member keeps one connection open to every other member and sends its messages for that
//! member on it, framed ([`frame`]); the peer port tells these connections from the peer gRPC
//! service's by their first bytes ([`inbound`]), and steps every message it reads straight into
//! its Raft node. The Raft thread hands messages to a peer's [`link`], which writes them to the
//! socket from the Raft thread itself when it can and otherwise queues them, bounded, for the
//! connection's writer task: a message that finds the queue full is dropped and Raft is told the
//! peer is unreachable, and it resends from its log once the peer answers again. A connection
//! that breaks is redialed with backoff ([`dial`]); what was queued for it is dropped for the
//! same reason. Snapshots, and the calls members make of each other, go over gRPC on the same
//! port, so a large transfer never holds up a heartbeat.
//!
//! Every connection starts with its sender's cluster and addressee; a member of another cluster
//! (or a stale member id at this address) is refused with a log line on both sides, as etcd
//! refuses it. A member that was removed while it was down is told so when it reconnects, and
//! stops itself (etcd answers it 410 Gone), rather than campaigning forever against a cluster
//! that left it.

mod dial;
mod frame;
mod inbound;
mod link;

pub(crate) use inbound::SniffingListener;

use bytes::Bytes;
use cairn_proto::cairnpb::peer_client::PeerClient;
use cairn_proto::cairnpb::peer_server::Peer;
use cairn_proto::cairnpb::{
    LeaseRenewRequest, LeaseRenewResponse, LeaseTimeToLiveForward, MemberPromoteForward,
    MembersRequest, MembersResponse, PeerHashKvRequest, ProbeRequest, ProbeResponse, SnapshotAck,
    SnapshotChunk,
};
use cairn_proto::etcdserverpb::{HashKvResponse, LeaseTimeToLiveResponse, MemberPromoteResponse};
use cairn_raft::RaftHandle;
use link::Link;
use parking_lot::{Mutex, RwLock};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::{Request, Response, Status, Streaming};

/// Largest Raft message a member accepts: one maximal log entry plus a full append of others.
pub(crate) const MAX_MESSAGE_BYTES: usize = cairn_raft::MAX_PROPOSAL_BYTES + (8 << 20);
/// How often the round trip to each peer is measured.
const PROBE_INTERVAL: Duration = Duration::from_secs(5);
/// What a removed member is told by the members it still tries to reach (etcd's words).
pub(crate) const MEMBER_REMOVED: &str = "the member has been permanently removed from the cluster";

/// How this member dials other members: TLS for `https://` peer URLs when peer TLS is
/// configured (`None`: plaintext only).
pub(crate) type PeerDialer = Option<Arc<rustls::ClientConfig>>;

/// A channel to the peer at `url`, over TLS when the URL says so and a dialer is configured.
pub(crate) fn channel(
    url: &str,
    timeout: Duration,
    tls: &PeerDialer,
    lazy: bool,
) -> Result<
    impl Future<Output = Result<tonic::transport::Channel, tonic::transport::Error>> + use<>,
    String,
> {
    let endpoint = tonic::transport::Endpoint::from_shared(url.to_string())
        .map_err(|e| format!("bad peer URL: {e}"))?
        .connect_timeout(timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(1))
        .keep_alive_timeout(Duration::from_secs(3))
        .keep_alive_while_idle(true);
    let tls = match tls {
        Some(config) if crate::config::is_tls_url(url) => Some(config.clone()),
        _ => None,
    };
    Ok(async move {
        match (tls, lazy) {
            (Some(config), true) => Ok(endpoint.connect_with_connector_lazy(tower::service_fn(
                move |uri| cairn_client::tls::connect(uri, config.clone()),
            ))),
            (Some(config), false) => {
                endpoint
                    .connect_with_connector(tower::service_fn(move |uri| {
                        cairn_client::tls::connect(uri, config.clone())
                    }))
                    .await
            }
            (None, true) => Ok(endpoint.connect_lazy()),
            (None, false) => endpoint.connect().await,
        }
    })
}

/// Which link a peer's activity was recorded through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LinkToken(usize);

impl LinkToken {
    fn of(link: &Arc<Link>) -> LinkToken {
        LinkToken(Arc::as_ptr(link) as usize)
    }
}

struct PeerEntry {
    link: Arc<Link>,
    urls: Vec<String>,
    /// Whether its connection task was started.
    started: bool,
}

/// The sending side: what the Raft thread hands messages to.
#[derive(Clone)]
pub struct PeerTransport {
    me: u64,
    cluster_id: u64,
    peers: Arc<RwLock<HashMap<u64, PeerEntry>>>,
    raft: Arc<Mutex<Option<RaftHandle>>>,
    /// Channels for unary calls to other members, connected on first use.
    clients: Arc<Mutex<HashMap<u64, tonic::transport::Channel>>>,
    /// Since when each peer's connection has been up (etcd's ActiveSince), for the reconfiguration
    /// checks.
    active: Arc<RwLock<HashMap<u64, (Instant, LinkToken)>>>,
    /// Where sender tasks run; set by `start`, so that peers added later (from the apply
    /// thread) get theirs too.
    runtime: Arc<Mutex<Option<tokio::runtime::Handle>>>,
    /// Where snapshot copies live (`cluster::snapshot`).
    snap_dir: PathBuf,
    /// Peers a snapshot is being sent to right now.
    sending_snapshots: Arc<Mutex<HashSet<u64>>>,
    /// Peers cut off by the partition failpoint (`crate::failpoint`): nothing goes to or comes
    /// from them.
    blocked: Arc<RwLock<HashSet<u64>>>,
    /// Raised when a peer says this member was removed from the cluster.
    removed: Arc<tokio::sync::Notify>,
    dialer: PeerDialer,
    metrics: Arc<crate::metrics::Metrics>,
    timeouts: Timeouts,
}

/// etcd's `--raft-read-timeout` and `--raft-write-timeout` for Raft connections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    /// Silence (no message, no answer to a ping) after which a connection is closed.
    pub read: Duration,
    /// How long a write may stay blocked before the connection is closed.
    pub write: Duration,
}

impl PeerTransport {
    pub(crate) fn new(
        me: u64,
        cluster_id: u64,
        peers: Vec<(u64, Vec<String>)>,
        snap_dir: PathBuf,
        dialer: PeerDialer,
        metrics: Arc<crate::metrics::Metrics>,
        timeouts: Timeouts,
    ) -> PeerTransport {
        let t = PeerTransport {
            timeouts,
            dialer,
            metrics,
            snap_dir,
            sending_snapshots: Arc::default(),
            blocked: Arc::default(),
            removed: Arc::default(),
            me,
            cluster_id,
            peers: Arc::default(),
            raft: Arc::default(),
            clients: Arc::default(),
            active: Arc::default(),
            runtime: Arc::default(),
        };
        for (id, urls) in peers {
            t.add_peer(id, urls);
        }
        t
    }

    /// Resolves when another member has refused this one as removed from the cluster.
    pub(crate) async fn removed(&self) {
        self.removed.notified().await
    }

    fn add_peer(&self, id: u64, urls: Vec<String>) {
        let sent_bytes = self
            .metrics
            .peer_sent_bytes
            .with_label_values(&[&format!("{id:x}")]);
        let entry = PeerEntry {
            link: Arc::new(Link::new(sent_bytes)),
            urls,
            started: false,
        };
        if let Some(old) = self.peers.write().insert(id, entry) {
            old.link.close();
        }
    }

    /// Starts a connection task for every peer. Called once the runtime and the Raft node run.
    pub(crate) fn start(&self, raft: RaftHandle) {
        *self.raft.lock() = Some(raft);
        *self.runtime.lock() = Some(tokio::runtime::Handle::current());
        self.start_links();
    }

    fn start_links(&self) {
        let Some(runtime) = self.runtime.lock().clone() else {
            return;
        };
        let mut peers = self.peers.write();
        for (&id, entry) in peers.iter_mut() {
            if !entry.started {
                entry.started = true;
                runtime.spawn(probe_loop(self.clone(), id, entry.link.clone()));
                runtime.spawn(dial::run(
                    self.clone(),
                    id,
                    entry.urls.clone(),
                    entry.link.clone(),
                ));
            }
        }
    }

    /// A member was added, or its peer URLs changed: (re)open its connection.
    pub(crate) fn set_peer(&self, id: u64, urls: Vec<String>) {
        if id == self.me {
            return;
        }
        if self.peers.read().get(&id).is_some_and(|p| p.urls == urls) {
            return;
        }
        self.remove_peer(id);
        self.add_peer(id, urls);
        self.start_links();
    }

    /// A member was removed: its link closes, which ends its connection task.
    pub(crate) fn remove_peer(&self, id: u64) {
        if let Some(old) = self.peers.write().remove(&id) {
            old.link.close();
        }
        self.clients.lock().remove(&id);
        self.active.write().remove(&id);
    }

    /// Cuts this member off from `peers` (and reconnects every other), for partition tests.
    pub(crate) fn set_blocked(&self, peers: HashSet<u64>) {
        let mut blocked = self.blocked.write();
        if *blocked != peers {
            tracing::warn!(peers = ?peers.iter().map(|p| format!("{p:x}")).collect::<Vec<_>>(), "failpoint: peer traffic blocked");
            *blocked = peers;
        }
    }

    pub(crate) fn is_blocked(&self, peer: u64) -> bool {
        self.blocked.read().contains(&peer)
    }

    /// Drops every peer not in `members`.
    pub(crate) fn retain_peers(&self, members: &[u64]) {
        let gone: Vec<u64> = self
            .peers
            .read()
            .keys()
            .copied()
            .filter(|id| !members.contains(id))
            .collect();
        for id in gone {
            self.remove_peer(id);
        }
    }

    /// Since when the connection to `peer` has been up; None if it is down.
    pub(crate) fn active_since(&self, peer: u64) -> Option<Instant> {
        self.active.read().get(&peer).map(|(since, _)| *since)
    }

    /// `peer` is reachable through `link` (since the first time it was, on this link).
    fn mark_active(&self, peer: u64, link: &Arc<Link>) {
        let token = LinkToken::of(link);
        let mut active = self.active.write();
        if active.get(&peer).is_none_or(|(_, owner)| *owner != token) {
            active.insert(peer, (Instant::now(), token));
        }
    }

    /// `link`'s connection to `peer` ended; a newer link (new URLs) that took over is left be.
    fn mark_inactive(&self, peer: u64, link: &Arc<Link>) {
        let mut active = self.active.write();
        if active
            .get(&peer)
            .is_some_and(|(_, owner)| *owner == LinkToken::of(link))
        {
            active.remove(&peer);
        }
    }

    /// A client for unary calls to member `id`'s peer port; None for an unknown member.
    pub(crate) fn client(&self, id: u64) -> Option<PeerClient<tonic::transport::Channel>> {
        if self.is_blocked(id) {
            return None;
        }
        let mut clients = self.clients.lock();
        if let Some(channel) = clients.get(&id) {
            return Some(PeerClient::new(channel.clone()));
        }
        let url = self.peers.read().get(&id)?.urls.first()?.clone();
        // Lazy: the future resolves at once, without touching the network.
        let lazy = channel(&url, dial::DIAL_TIMEOUT, &self.dialer, true).ok()?;
        let channel = futures::FutureExt::now_or_never(lazy)?.ok()?;
        clients.insert(id, channel.clone());
        Some(PeerClient::new(channel))
    }

    fn report_unreachable(&self, peer: u64) {
        if let Some(raft) = self.raft.lock().as_ref() {
            raft.report_unreachable(peer);
        }
    }
}

impl cairn_raft::Transport for PeerTransport {
    fn send(&mut self, to: u64, message: Bytes) -> bool {
        if self.is_blocked(to) {
            return false;
        }
        let link = self.peers.read().get(&to).map(|p| p.link.clone());
        let sent = link.is_some_and(|link| link.send(message));
        if !sent {
            self.metrics
                .peer_sent_failures
                .with_label_values(&[&format!("{to:x}")])
                .inc();
        }
        sent
    }

    fn send_snapshot(&mut self, to: u64, message: Bytes, index: u64) -> bool {
        if self.is_blocked(to) {
            return false;
        }
        let Some(runtime) = self.runtime.lock().clone() else {
            return false;
        };
        if !self.peers.read().contains_key(&to) {
            return false;
        }
        // One copy at a time per member; the transfer under way reports for this one too.
        if !self.sending_snapshots.lock().insert(to) {
            return true;
        }
        let t = self.clone();
        runtime.spawn(async move {
            let header = SnapshotChunk {
                cluster_id: t.cluster_id,
                from: t.me,
                to,
                index,
                message,
                ..Default::default()
            };
            let path = super::snapshot::copy_path(&t.snap_dir, index);
            let started = Instant::now();
            // The client is made here: its connection needs the runtime, which the Raft
            // thread that calls this has not.
            let outcome = match t.client(to) {
                Some(client) => {
                    super::snapshot::send(
                        &mut client.max_encoding_message_size(usize::MAX),
                        header,
                        path,
                    )
                    .await
                }
                None => Err("the member is gone".to_string()),
            };
            t.sending_snapshots.lock().remove(&to);
            match &outcome {
                Ok(()) => tracing::info!(peer = format!("{to:x}"), index, took = ?started.elapsed(), "sent a snapshot"),
                Err(e) => tracing::warn!(peer = format!("{to:x}"), index, error = %e, "sending a snapshot failed"),
            }
            if let Some(raft) = t.raft.lock().as_ref() {
                raft.report_snapshot(to, outcome.is_ok());
            }
        });
        true
    }
}

/// Times an empty call to `peer` every [`PROBE_INTERVAL`] while its connection is up, until the
/// peer is removed (its link closes).
async fn probe_loop(t: PeerTransport, peer: u64, link: Arc<Link>) {
    let label = format!("{peer:x}");
    let round_trip = t.metrics.peer_round_trip.with_label_values(&[&label]);
    // Present at zero from the start, so that rate() sees the first failure.
    t.metrics.peer_sent_failures.with_label_values(&[&label]);
    let mut tick = tokio::time::interval(PROBE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if link.is_closed() {
            return;
        }
        if t.active_since(peer).is_none() {
            continue;
        }
        let Some(mut client) = t.client(peer) else {
            continue;
        };
        let started = Instant::now();
        let call = client.probe(ProbeRequest {});
        if let Ok(Ok(_)) = tokio::time::timeout(PROBE_INTERVAL, call).await {
            round_trip.observe(started.elapsed().as_secs_f64());
        }
    }
}

/// The peer port's services: Raft connections ([`inbound`]), and the calls members make of each
/// other (lease work only the leader can do, membership, hashes, snapshots).
pub struct PeerService {
    pub(crate) me: u64,
    pub(crate) cluster_id: u64,
    pub(crate) raft: RaftHandle,
    pub(crate) server: Arc<crate::etcd::EtcdServer>,
}

impl PeerService {
    fn check_cluster(&self, cluster_id: u64) -> Result<(), Status> {
        if cluster_id == self.cluster_id {
            return Ok(());
        }
        tracing::warn!(
            local = format!("{:x}", self.cluster_id),
            remote_cluster = format!("{cluster_id:x}"),
            "request cluster ID mismatch: refused a peer of another cluster"
        );
        Err(Status::failed_precondition(format!(
            "cluster ID mismatch: this member belongs to cluster {:x}, the sender to {cluster_id:x}",
            self.cluster_id
        )))
    }

    /// Messages addressed to another member id (a stale id at this address) are refused.
    fn check_addressee(&self, to: u64) -> Result<(), Status> {
        if to == self.me {
            return Ok(());
        }
        tracing::warn!(
            local = format!("{:x}", self.me),
            to = format!("{to:x}"),
            "request member ID mismatch: messages for another member refused"
        );
        Err(Status::failed_precondition(format!(
            "member ID mismatch: this is member {:x}, the messages are for {to:x}",
            self.me
        )))
    }

    fn check_leader(&self) -> Result<(), Status> {
        if self.server.is_leader() {
            Ok(())
        } else {
            Err(Status::unavailable(crate::errors::msg::NOT_LEADER))
        }
    }
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn members(
        &self,
        _: Request<MembersRequest>,
    ) -> Result<Response<MembersResponse>, Status> {
        Ok(Response::new(MembersResponse {
            cluster_id: self.cluster_id,
            membership: Some(self.server.members.snapshot()),
        }))
    }

    async fn hash_kv(
        &self,
        request: Request<PeerHashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        let req = request.into_inner();
        self.check_cluster(req.cluster_id)?;
        let (hash, compact_revision, hash_revision) =
            super::corruption::local_hash(&self.server, req.revision).await?;
        Ok(Response::new(HashKvResponse {
            header: self.server.header(self.server.store.revision()),
            hash,
            compact_revision,
            hash_revision,
        }))
    }

    async fn probe(&self, _: Request<ProbeRequest>) -> Result<Response<ProbeResponse>, Status> {
        Ok(Response::new(ProbeResponse {}))
    }

    async fn member_promote(
        &self,
        request: Request<MemberPromoteForward>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        let req = request.into_inner();
        self.check_cluster(req.cluster_id)?;
        self.check_leader()?;
        let members = self.server.member_promote_as_leader(req.id).await?;
        Ok(Response::new(MemberPromoteResponse {
            header: self.server.header(self.server.store.revision()),
            members,
        }))
    }

    async fn snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<SnapshotAck>, Status> {
        let mut chunks = request.into_inner();
        let Some(first) = chunks.message().await? else {
            return Err(Status::invalid_argument("empty snapshot stream"));
        };
        self.check_cluster(first.cluster_id)?;
        self.check_addressee(first.to)?;
        let dir = self.server.config.backend_path();
        let dir = dir.parent().unwrap_or(std::path::Path::new("."));
        super::snapshot::receive(dir, first, &mut chunks, &self.raft).await?;
        Ok(Response::new(SnapshotAck {}))
    }

    async fn lease_renew(
        &self,
        request: Request<LeaseRenewRequest>,
    ) -> Result<Response<LeaseRenewResponse>, Status> {
        let req = request.into_inner();
        self.check_cluster(req.cluster_id)?;
        self.check_leader()?;
        let ttl = self.server.renew_lease_as_leader(req.id).await?;
        Ok(Response::new(LeaseRenewResponse { ttl }))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveForward>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let req = request.into_inner();
        self.check_cluster(req.cluster_id)?;
        self.check_leader()?;
        let inner = req.request.unwrap_or_default();
        Ok(Response::new(
            self.server.lease_time_to_live_as_leader(&inner).await?,
        ))
    }
}

/// An error and its causes, as one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        // Wrappers often repeat their cause's text.
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = c.source();
    }
    text
}

/// A refused TLS handshake in the words Go (and so etcd's log) uses for it, besides rustls's:
/// operators grep etcd's logs for "remote error: tls: bad certificate".
fn go_tls_words(reason: String) -> String {
    if reason.contains("BadCertificate") {
        format!("remote error: tls: bad certificate ({reason})")
    } else {
        reason
    }
}

#[cfg(test)]
mod words_tests {
    use super::*;

    #[test]
    fn a_refused_certificate_reads_as_in_etcds_log() {
        assert_eq!(
            go_tls_words("transport error: received fatal alert: BadCertificate".into()),
            "remote error: tls: bad certificate (transport error: received fatal alert: BadCertificate)"
        );
        assert_eq!(
            go_tls_words("connection refused".into()),
            "connection refused"
        );
        let inner = std::io::Error::other("received fatal alert: BadCertificate");
        let outer = std::io::Error::other(inner);
        assert!(error_chain(&outer).contains("BadCertificate"));
    }
}
