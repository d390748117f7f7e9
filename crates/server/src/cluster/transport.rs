//! Raft messages between members, over gRPC on the peer URLs.
//!
//! Each member keeps one outgoing stream open to every other member (`cairnpb.Peer/Stream`). The
//! Raft thread only queues encoded messages ([`PeerTransport::send`] never blocks); a task per
//! peer drains its queue into the stream, taking everything queued at once into one batch, so a
//! busy leader sends few large writes instead of many small ones. Queues are bounded: when a
//! peer is slow or gone, messages are dropped and Raft is told the peer is unreachable, and it
//! resends from its log once the peer answers again. A stream that breaks is reopened with
//! backoff; what was queued for the broken one is dropped for the same reason.
//!
//! Every batch names its cluster and its addressee; a member of another cluster (or a stale
//! member id at this address) is refused with a log line on both sides, as etcd refuses it. A
//! member that was removed while it was down is told so when it reconnects, and stops itself
//! (etcd answers it 410 Gone), rather than campaigning forever against a cluster that left it.

use bytes::Bytes;
use cairn_proto::cairnpb::peer_client::PeerClient;
use cairn_proto::cairnpb::peer_server::Peer;
use cairn_proto::cairnpb::{
    LeaseRenewRequest, LeaseRenewResponse, LeaseTimeToLiveForward, MemberPromoteForward,
    MembersRequest, MembersResponse, PeerBatch, PeerHashKvRequest, PeerStreamEnd, ProbeRequest,
    ProbeResponse, SnapshotAck, SnapshotChunk,
};
use cairn_proto::etcdserverpb::{HashKvResponse, LeaseTimeToLiveResponse, MemberPromoteResponse};
use cairn_raft::RaftHandle;
use parking_lot::{Mutex, RwLock};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

/// Messages queued per peer before new ones are dropped (etcd's stream buffer is as large).
const QUEUE_MESSAGES: usize = 4096;
/// A batch stops growing at this size; a single larger message still goes alone.
const BATCH_BYTES: usize = 4 << 20;
/// Largest batch a member accepts: one maximal log entry plus a full batch of others.
pub(crate) const MAX_BATCH_BYTES: usize = cairn_raft::MAX_PROPOSAL_BYTES + 2 * BATCH_BYTES;
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
const DIAL_TIMEOUT: Duration = Duration::from_secs(1);
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

struct Queue {
    tx: mpsc::Sender<Bytes>,
    /// Taken by the sender task when it starts.
    rx: Option<mpsc::Receiver<Bytes>>,
    urls: Vec<String>,
}

/// The sending side: what the Raft thread hands messages to.
#[derive(Clone)]
pub struct PeerTransport {
    me: u64,
    cluster_id: u64,
    queues: Arc<RwLock<HashMap<u64, Queue>>>,
    raft: Arc<Mutex<Option<RaftHandle>>>,
    /// Channels for unary calls to other members, connected on first use.
    clients: Arc<Mutex<HashMap<u64, tonic::transport::Channel>>>,
    /// Since when each peer's stream has been up (etcd's ActiveSince), for the reconfiguration
    /// checks.
    active: Arc<RwLock<HashMap<u64, Instant>>>,
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
}

impl PeerTransport {
    pub(crate) fn new(
        me: u64,
        cluster_id: u64,
        peers: Vec<(u64, Vec<String>)>,
        snap_dir: PathBuf,
        dialer: PeerDialer,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> PeerTransport {
        let t = PeerTransport {
            dialer,
            metrics,
            snap_dir,
            sending_snapshots: Arc::default(),
            blocked: Arc::default(),
            removed: Arc::default(),
            me,
            cluster_id,
            queues: Arc::default(),
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
        let (tx, rx) = mpsc::channel(QUEUE_MESSAGES);
        self.queues.write().insert(
            id,
            Queue {
                tx,
                rx: Some(rx),
                urls,
            },
        );
    }

    /// Starts a sender task for every peer. Called once the runtime and the Raft node run.
    pub(crate) fn start(&self, raft: RaftHandle) {
        *self.raft.lock() = Some(raft);
        *self.runtime.lock() = Some(tokio::runtime::Handle::current());
        self.spawn_senders();
    }

    fn spawn_senders(&self) {
        let Some(runtime) = self.runtime.lock().clone() else {
            return;
        };
        let mut queues = self.queues.write();
        for (&id, q) in queues.iter_mut() {
            if let Some(rx) = q.rx.take() {
                runtime.spawn(probe_loop(self.clone(), id, q.tx.clone()));
                runtime.spawn(send_loop(self.clone(), id, q.urls.clone(), rx));
            }
        }
    }

    /// A member was added, or its peer URLs changed: (re)open its stream.
    pub(crate) fn set_peer(&self, id: u64, urls: Vec<String>) {
        if id == self.me {
            return;
        }
        if self.queues.read().get(&id).is_some_and(|q| q.urls == urls) {
            return;
        }
        self.remove_peer(id);
        self.add_peer(id, urls);
        self.spawn_senders();
    }

    /// A member was removed: its queue closes, which ends its sender task.
    pub(crate) fn remove_peer(&self, id: u64) {
        self.queues.write().remove(&id);
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
            .queues
            .read()
            .keys()
            .copied()
            .filter(|id| !members.contains(id))
            .collect();
        for id in gone {
            self.remove_peer(id);
        }
    }

    /// Since when the stream to `peer` has been up; None if it is down.
    pub(crate) fn active_since(&self, peer: u64) -> Option<Instant> {
        self.active.read().get(&peer).copied()
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
        let url = self.queues.read().get(&id)?.urls.first()?.clone();
        // Lazy: the future resolves at once, without touching the network.
        let lazy = channel(&url, DIAL_TIMEOUT, &self.dialer, true).ok()?;
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
        let sent = match self.queues.read().get(&to) {
            Some(q) => q.tx.try_send(message).is_ok(),
            None => false,
        };
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
        if !self.queues.read().contains_key(&to) {
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

/// Times an empty call to `peer` every [`PROBE_INTERVAL`] while its stream is up, until the
/// peer is removed (its queue, of which `queue` is a sender, closes).
async fn probe_loop(t: PeerTransport, peer: u64, queue: mpsc::Sender<Bytes>) {
    let label = format!("{peer:x}");
    let round_trip = t.metrics.peer_round_trip.with_label_values(&[&label]);
    // Present at zero from the start, so that rate() sees the first failure.
    t.metrics.peer_sent_failures.with_label_values(&[&label]);
    let mut tick = tokio::time::interval(PROBE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if queue.is_closed() {
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

/// Keeps a stream to `peer` open and feeds it from `rx`, reconnecting with backoff.
async fn send_loop(t: PeerTransport, peer: u64, urls: Vec<String>, rx: mpsc::Receiver<Bytes>) {
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let mut backoff = BACKOFF_MIN;
    let mut attempt = 0usize;
    // Logged once per change, not once per retry.
    let mut was_active = None;
    loop {
        if rx.lock().await.is_closed() {
            // The member was removed (or its URLs changed and a new task took over).
            t.active.write().remove(&peer);
            return;
        }
        let Some(url) = urls.get(attempt % urls.len().max(1)).cloned() else {
            tracing::error!(peer = format!("{peer:x}"), "peer has no URL to dial");
            return;
        };
        attempt += 1;
        let outcome = stream_once(&t, peer, &url, rx.clone()).await;
        let (connected, reason) = match outcome {
            Ok(()) => (true, "stream closed by the peer".to_string()),
            Err((connected, reason)) => (connected, go_tls_words(reason)),
        };
        t.active.write().remove(&peer);
        if connected || was_active != Some(false) {
            tracing::warn!(peer = format!("{peer:x}"), %url, %reason, "peer became inactive");
            was_active = Some(false);
        }
        t.report_unreachable(peer);
        // Messages queued for the broken stream are stale by the time a new one opens; Raft
        // resends what still matters.
        {
            let mut rx = rx.lock().await;
            while rx.try_recv().is_ok() {}
        }
        if connected {
            backoff = BACKOFF_MIN;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// One stream's life. Err carries whether it had been established, and why it ended.
async fn stream_once(
    t: &PeerTransport,
    peer: u64,
    url: &str,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Bytes>>>,
) -> Result<(), (bool, String)> {
    let channel = channel(url, DIAL_TIMEOUT, &t.dialer, false)
        .map_err(|e| (false, e))?
        .await
        .map_err(|e| (false, format!("dial: {}", error_chain(&e))))?;
    let mut client = PeerClient::new(channel).max_encoding_message_size(usize::MAX);
    tracing::info!(peer = format!("{peer:x}"), %url, "peer became active");
    t.active.write().entry(peer).or_insert_with(Instant::now);
    let (cluster_id, me) = (t.cluster_id, t.me);
    let sent_bytes = t
        .metrics
        .peer_sent_bytes
        .with_label_values(&[&format!("{peer:x}")]);
    // An empty batch first: the peer checks who is calling before there is anything to say, so a
    // member of another cluster, or one removed while it was down, hears it at once.
    let hello = PeerBatch {
        cluster_id,
        from: me,
        to: peer,
        messages: Vec::new(),
    };
    let batches = futures::stream::unfold(rx, move |rx| {
        let sent_bytes = sent_bytes.clone();
        async move {
            let batch = {
                let mut queue = rx.lock().await;
                let first = queue.recv().await?;
                let mut size = first.len();
                let mut messages = vec![first];
                while size < BATCH_BYTES {
                    match queue.try_recv() {
                        Ok(m) => {
                            size += m.len();
                            messages.push(m);
                        }
                        Err(_) => break,
                    }
                }
                sent_bytes.inc_by(size as u64);
                PeerBatch {
                    cluster_id,
                    from: me,
                    to: peer,
                    messages,
                }
            };
            Some((batch, rx))
        }
    });
    let batches = futures::StreamExt::chain(futures::stream::once(async move { hello }), batches);
    match client.stream(batches).await {
        Ok(_) => Ok(()),
        Err(status) => {
            if status.code() == tonic::Code::PermissionDenied && status.message() == MEMBER_REMOVED
            {
                tracing::error!(peer = format!("{peer:x}"), "{MEMBER_REMOVED}");
                t.removed.notify_one();
            }
            // The message alone says "transport error"; its causes say which.
            let mut reason = status.message().to_string();
            if let Some(cause) = std::error::Error::source(&status) {
                let cause = error_chain(cause);
                reason = if cause.starts_with(&reason) {
                    cause
                } else {
                    format!("{reason}: {cause}")
                };
            }
            Err((true, reason))
        }
    }
}

/// The receiving side: steps every message of every batch into the local Raft node, and serves
/// the lease requests followers forward to the leader.
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
    async fn stream(
        &self,
        request: Request<Streaming<PeerBatch>>,
    ) -> Result<Response<PeerStreamEnd>, Status> {
        let mut batches = request.into_inner();
        // Resolved on the first batch: a stream carries one sender's batches.
        let mut received_bytes: Option<prometheus::IntCounter> = None;
        while let Some(batch) = batches.message().await? {
            self.check_cluster(batch.cluster_id)?;
            self.check_addressee(batch.to)?;
            if self.server.members.is_removed(batch.from) {
                tracing::warn!(
                    from = format!("{:x}", batch.from),
                    "refused the stream of a member removed from the cluster"
                );
                return Err(Status::permission_denied(MEMBER_REMOVED));
            }
            if self.server.peers.is_blocked(batch.from) {
                // Partition failpoint: lost on the way.
                continue;
            }
            let counter = received_bytes.get_or_insert_with(|| {
                self.server
                    .metrics
                    .peer_received_bytes
                    .with_label_values(&[&format!("{:x}", batch.from)])
            });
            counter.inc_by(batch.messages.iter().map(|m| m.len() as u64).sum());
            for m in batch.messages {
                self.raft
                    .step(m)
                    .map_err(|_| Status::unavailable("member is stopping"))?;
            }
        }
        Ok(Response::new(PeerStreamEnd {}))
    }

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
