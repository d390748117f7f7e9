//! Prometheus metrics under etcd's names, labels, types and buckets, so that etcd's Grafana
//! dashboards and the etcd mixin's alert rules work on Cairn unchanged.
//!
//! Owns: the registry, every metric family, the text rendering for `/metrics`, and the
//! per-method gRPC counters ([`grpc`]). Counters are bumped where the event happens (apply,
//! transport, WAL, backend); gauges that mirror state (leader, sizes, revisions) are read from
//! the server when scraped, so they can never drift from it.
//!
//! Must not: keep anything a request waits on. A metric is a side effect; nothing reads one to
//! decide what to do.

pub mod grpc;
mod observe;

pub use observe::RaftObserver;

use crate::etcd::EtcdServer;
use prometheus::core::Collector;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder, exponential_buckets,
};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// etcd's `--metrics`: `extensive` adds per-method gRPC handling-time histograms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Basic,
    Extensive,
}

/// How long one apply may take before etcd counts it as slow.
pub const SLOW_APPLY: std::time::Duration = std::time::Duration::from_millis(100);

pub struct Metrics {
    registry: Registry,
    /// One scrape at a time: refreshing resets some families before setting them again.
    rendering: parking_lot::Mutex<()>,
    pub grpc: grpc::GrpcMetrics,

    has_leader: IntGauge,
    is_leader: IntGauge,
    is_learner: IntGauge,
    pub leader_changes: IntCounter,
    proposals_committed: IntGauge,
    proposals_applied: IntGauge,
    proposals_pending: IntGauge,
    pub proposals_failed: IntCounter,
    pub slow_apply: IntCounter,
    pub slow_read_indexes: IntCounter,
    pub read_indexes_failed: IntCounter,
    pub heartbeat_send_failures: IntCounter,
    quota_backend_bytes: IntGauge,
    pub health_success: IntCounter,
    pub health_failures: IntCounter,
    pub learner_promote_successes: IntCounter,
    pub snapshot_apply_in_progress: IntGauge,

    pub puts: IntCounter,
    pub deletes: IntCounter,
    pub ranges: IntCounter,
    pub txns: IntCounter,
    keys: IntGauge,
    current_revision: IntGauge,
    compact_revision: IntGauge,
    db_size: IntGauge,
    db_size_debugging: IntGauge,
    db_size_in_use: IntGauge,
    watchers: IntGauge,
    pub watch_streams: IntGauge,
    pub events_sent: IntCounter,
    pub hash_duration: Histogram,

    pub wal_fsync: Histogram,
    pub wal_written: IntGauge,
    pub backend_commit: Histogram,
    pub defrag_duration: Histogram,
    pub defrag_inflight: IntGauge,
    pub snapshot_duration: Histogram,

    pub peer_sent_bytes: IntCounterVec,
    pub peer_received_bytes: IntCounterVec,
    pub peer_sent_failures: IntCounterVec,
    pub peer_round_trip: HistogramVec,
    active_peers: IntGaugeVec,
    cluster_version: IntGaugeVec,

    pub leases_granted: IntCounter,
    pub leases_revoked: IntCounter,
    pub leases_renewed: IntCounter,
    pub leases_expired: IntCounter,

    os_fd_used: IntGauge,
    os_fd_limit: IntGauge,
}

fn register<C: Collector + Clone + 'static>(
    registry: &Registry,
    collector: C,
) -> prometheus::Result<C> {
    registry.register(Box::new(collector.clone()))?;
    Ok(collector)
}

fn counter(r: &Registry, name: &str, help: &str) -> prometheus::Result<IntCounter> {
    register(r, IntCounter::with_opts(Opts::new(name, help))?)
}

fn gauge(r: &Registry, name: &str, help: &str) -> prometheus::Result<IntGauge> {
    register(r, IntGauge::with_opts(Opts::new(name, help))?)
}

/// A histogram with etcd's exponential buckets: `count` bounds from `start`, each twice the last.
fn histogram(
    r: &Registry,
    name: &str,
    help: &str,
    start: f64,
    count: usize,
) -> prometheus::Result<Histogram> {
    let opts = HistogramOpts::new(name, help).buckets(exponential_buckets(start, 2.0, count)?);
    register(r, Histogram::with_opts(opts)?)
}

/// A gauge set to 1 whose one label carries the value (etcd's version and identity gauges).
fn info(r: &Registry, name: &str, help: &str, label: &str, value: &str) -> prometheus::Result<()> {
    let g = register(r, IntGaugeVec::new(Opts::new(name, help), &[label])?)?;
    g.with_label_values(&[value]).set(1);
    Ok(())
}

impl Metrics {
    pub fn new(level: Level, member_id: u64) -> prometheus::Result<Metrics> {
        let r = Registry::new();
        #[cfg(target_os = "linux")]
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        let version = crate::ETCD_VERSION;
        info(
            &r,
            "etcd_server_version",
            "Which version is running. 1 for 'server_version' label with current version.",
            "server_version",
            version,
        )?;
        let cluster_version = register(
            &r,
            IntGaugeVec::new(
                Opts::new(
                    "etcd_cluster_version",
                    "Which version is running. 1 for 'cluster_version' label with current cluster version",
                ),
                &["cluster_version"],
            )?,
        )?;
        cluster_version
            .with_label_values(&[&crate::cluster::version::Version::server().major_minor()])
            .set(1);
        // etcd reports the Go release it was built with; Cairn has none, and says so.
        info(
            &r,
            "etcd_server_go_version",
            "Which Go version server is running with. 1 for 'server_go_version' label with current version.",
            "server_go_version",
            concat!("cairn-", env!("CARGO_PKG_VERSION")),
        )?;
        info(
            &r,
            "etcd_server_id",
            "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
            "server_id",
            &format!("{member_id:x}"),
        )?;
        let peer_vec = |name: &str, help: &str, label: &str| {
            register(&r, IntCounterVec::new(Opts::new(name, help), &[label])?)
        };
        Ok(Metrics {
            cluster_version,
            grpc: grpc::GrpcMetrics::new(&r, level)?,
            has_leader: gauge(
                &r,
                "etcd_server_has_leader",
                "Whether or not a leader exists. 1 is existence, 0 is not.",
            )?,
            is_leader: gauge(
                &r,
                "etcd_server_is_leader",
                "Whether or not this member is a leader. 1 if is, 0 otherwise.",
            )?,
            is_learner: gauge(
                &r,
                "etcd_server_is_learner",
                "Whether or not this member is a learner. 1 if is, 0 otherwise.",
            )?,
            leader_changes: counter(
                &r,
                "etcd_server_leader_changes_seen_total",
                "The number of leader changes seen.",
            )?,
            proposals_committed: gauge(
                &r,
                "etcd_server_proposals_committed_total",
                "The total number of consensus proposals committed.",
            )?,
            proposals_applied: gauge(
                &r,
                "etcd_server_proposals_applied_total",
                "The total number of consensus proposals applied.",
            )?,
            proposals_pending: gauge(
                &r,
                "etcd_server_proposals_pending",
                "The current number of pending proposals to commit.",
            )?,
            proposals_failed: counter(
                &r,
                "etcd_server_proposals_failed_total",
                "The total number of failed proposals seen.",
            )?,
            slow_apply: counter(
                &r,
                "etcd_server_slow_apply_total",
                "The total number of slow apply requests (likely overloaded from slow disk).",
            )?,
            slow_read_indexes: counter(
                &r,
                "etcd_server_slow_read_indexes_total",
                "The total number of pending read indexes not in sync with leader's or timed out read index requests.",
            )?,
            read_indexes_failed: counter(
                &r,
                "etcd_server_read_indexes_failed_total",
                "The total number of failed read indexes seen.",
            )?,
            heartbeat_send_failures: counter(
                &r,
                "etcd_server_heartbeat_send_failures_total",
                "The total number of leader heartbeat send failures (likely overloaded from slow disk).",
            )?,
            quota_backend_bytes: gauge(
                &r,
                "etcd_server_quota_backend_bytes",
                "Current backend storage quota size in bytes.",
            )?,
            health_success: counter(
                &r,
                "etcd_server_health_success",
                "The total number of successful health checks",
            )?,
            health_failures: counter(
                &r,
                "etcd_server_health_failures",
                "The total number of failed health checks",
            )?,
            learner_promote_successes: counter(
                &r,
                "etcd_server_learner_promote_successes",
                "The total number of successful learner promotions while this member is leader.",
            )?,
            snapshot_apply_in_progress: gauge(
                &r,
                "etcd_server_snapshot_apply_in_progress_total",
                "1 if the server is applying the incoming snapshot. 0 if none.",
            )?,
            puts: counter(
                &r,
                "etcd_mvcc_put_total",
                "Total number of puts seen by this member.",
            )?,
            deletes: counter(
                &r,
                "etcd_mvcc_delete_total",
                "Total number of deletes seen by this member.",
            )?,
            ranges: counter(
                &r,
                "etcd_mvcc_range_total",
                "Total number of ranges seen by this member.",
            )?,
            txns: counter(
                &r,
                "etcd_mvcc_txn_total",
                "Total number of txns seen by this member.",
            )?,
            keys: gauge(
                &r,
                "etcd_debugging_mvcc_keys_total",
                "Total number of keys.",
            )?,
            current_revision: gauge(
                &r,
                "etcd_debugging_mvcc_current_revision",
                "The current revision of store.",
            )?,
            compact_revision: gauge(
                &r,
                "etcd_debugging_mvcc_compact_revision",
                "The revision of the last compaction in store.",
            )?,
            db_size: gauge(
                &r,
                "etcd_mvcc_db_total_size_in_bytes",
                "Total size of the underlying database physically allocated in bytes.",
            )?,
            db_size_debugging: gauge(
                &r,
                "etcd_debugging_mvcc_db_total_size_in_bytes",
                "Total size of the underlying database physically allocated in bytes.",
            )?,
            db_size_in_use: gauge(
                &r,
                "etcd_mvcc_db_total_size_in_use_in_bytes",
                "Total size of the underlying database logically in use in bytes.",
            )?,
            watchers: gauge(
                &r,
                "etcd_debugging_mvcc_watcher_total",
                "Total number of watchers.",
            )?,
            watch_streams: gauge(
                &r,
                "etcd_debugging_mvcc_watch_stream_total",
                "Total number of watch streams.",
            )?,
            events_sent: counter(
                &r,
                "etcd_debugging_mvcc_events_total",
                "Total number of events sent by this member.",
            )?,
            hash_duration: histogram(
                &r,
                "etcd_mvcc_hash_duration_seconds",
                "The latency distribution of storage hash operation.",
                0.01,
                15,
            )?,
            wal_fsync: histogram(
                &r,
                "etcd_disk_wal_fsync_duration_seconds",
                "The latency distributions of fsync called by WAL.",
                0.001,
                14,
            )?,
            wal_written: gauge(
                &r,
                "etcd_disk_wal_write_bytes_total",
                "Total number of bytes written in WAL.",
            )?,
            backend_commit: histogram(
                &r,
                "etcd_disk_backend_commit_duration_seconds",
                "The latency distributions of commit called by backend.",
                0.001,
                14,
            )?,
            defrag_duration: histogram(
                &r,
                "etcd_disk_backend_defrag_duration_seconds",
                "The latency distribution of backend defragmentation.",
                0.1,
                13,
            )?,
            defrag_inflight: gauge(
                &r,
                "etcd_disk_defrag_inflight",
                "Whether or not defrag is active on the member. 1 means active, 0 means not.",
            )?,
            snapshot_duration: histogram(
                &r,
                "etcd_disk_backend_snapshot_duration_seconds",
                "The latency distribution of backend snapshots.",
                0.01,
                17,
            )?,
            peer_sent_bytes: peer_vec(
                "etcd_network_peer_sent_bytes_total",
                "The total number of bytes sent to peers.",
                "To",
            )?,
            peer_received_bytes: peer_vec(
                "etcd_network_peer_received_bytes_total",
                "The total number of bytes received from peers.",
                "From",
            )?,
            peer_sent_failures: peer_vec(
                "etcd_network_peer_sent_failures_total",
                "The total number of send failures from peers.",
                "To",
            )?,
            peer_round_trip: register(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "etcd_network_peer_round_trip_time_seconds",
                        "Round-Trip-Time histogram between peers",
                    )
                    .buckets(exponential_buckets(0.0001, 2.0, 14)?),
                    &["To"],
                )?,
            )?,
            active_peers: register(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "etcd_network_active_peers",
                        "The current number of active peer connections.",
                    ),
                    &["Local", "Remote"],
                )?,
            )?,
            leases_granted: counter(
                &r,
                "etcd_debugging_lease_granted_total",
                "The total number of granted leases.",
            )?,
            leases_revoked: counter(
                &r,
                "etcd_debugging_lease_revoked_total",
                "The total number of revoked leases.",
            )?,
            leases_renewed: counter(
                &r,
                "etcd_debugging_lease_renewed_total",
                "The number of renewed leases seen by the leader.",
            )?,
            leases_expired: counter(
                &r,
                "etcd_debugging_server_lease_expired_total",
                "The total number of expired leases.",
            )?,
            os_fd_used: gauge(&r, "os_fd_used", "The number of used file descriptors.")?,
            os_fd_limit: gauge(&r, "os_fd_limit", "The file descriptor limit.")?,
            registry: r,
            rendering: parking_lot::Mutex::new(()),
        })
    }

    /// Counts the operations of one KV request as etcd's MVCC layer does: every range, put and
    /// delete, and a txn when a request did more than one of them.
    pub fn count_ops(&self, ops: OpCounts) {
        self.ranges.inc_by(ops.ranges);
        self.puts.inc_by(ops.puts);
        self.deletes.inc_by(ops.deletes);
        if ops.ranges + ops.puts + ops.deletes > 1 {
            self.txns.inc();
        }
    }

    /// The Prometheus text exposition of every metric, with the state gauges read now.
    pub fn render(&self, server: &EtcdServer) -> Vec<u8> {
        let _one = self.rendering.lock();
        self.refresh(server);
        let mut out = Vec::with_capacity(64 * 1024);
        // Encoding into a Vec fails only on families the registry itself rejected.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "encoding metrics failed");
        }
        out
    }

    fn refresh(&self, server: &EtcdServer) {
        let progress = server.raft.progress();
        let leader = server.raft.leader();
        self.has_leader.set(i64::from(leader != 0));
        self.is_leader
            .set(i64::from(progress.is_leader.load(Ordering::Acquire)));
        self.is_learner.set(i64::from(server.is_learner()));
        self.proposals_committed
            .set(clamp(progress.commit.load(Ordering::Acquire)));
        self.proposals_applied.set(clamp(server.applied_index()));
        self.proposals_pending
            .set(clamp(server.pending_proposals()));
        self.quota_backend_bytes
            .set(clamp(server.config.quota_bytes()));
        let store = &server.store;
        self.keys.set(clamp(store.live_key_count() as u64));
        self.current_revision.set(store.revision());
        // etcd starts at -1: no compaction yet.
        let compacted = store.compact_revision();
        self.compact_revision
            .set(if compacted == 0 { -1 } else { compacted });
        let size = clamp(store.db_size());
        self.db_size.set(size);
        self.db_size_debugging.set(size);
        self.db_size_in_use.set(clamp(store.db_size_in_use()));
        self.watchers.set(clamp(store.watcher_count() as u64));
        // A downgrade changes the cluster version: only the current one is labeled.
        self.cluster_version.reset();
        self.cluster_version
            .with_label_values(&[&server.versions.cluster().major_minor()])
            .set(1);
        let local = format!("{:x}", server.member_id);
        self.active_peers.reset();
        for member in server.members.all() {
            if member.id != server.member_id && server.peers.active_since(member.id).is_some() {
                self.active_peers
                    .with_label_values(&[local.as_str(), &format!("{:x}", member.id)])
                    .set(1);
            }
        }
        let (used, limit) = file_descriptors();
        self.os_fd_used.set(used);
        self.os_fd_limit.set(limit);
    }
}

/// The operations one request performed, for [`Metrics::count_ops`].
#[derive(Debug, Default, Clone, Copy)]
pub struct OpCounts {
    pub ranges: u64,
    pub puts: u64,
    pub deletes: u64,
}

impl OpCounts {
    /// The operations of the branch a txn took, nested txns included (etcd also counts each
    /// compare as a range: the caller adds those).
    pub fn of_branch(resp: &cairn_proto::etcdserverpb::TxnResponse) -> OpCounts {
        use cairn_proto::etcdserverpb::response_op::Response;
        let mut counts = OpCounts::default();
        for op in &resp.responses {
            match &op.response {
                Some(Response::ResponseRange(_)) => counts.ranges += 1,
                Some(Response::ResponsePut(_)) => counts.puts += 1,
                Some(Response::ResponseDeleteRange(_)) => counts.deletes += 1,
                Some(Response::ResponseTxn(inner)) => {
                    let inner = OpCounts::of_branch(inner);
                    counts.ranges += inner.ranges;
                    counts.puts += inner.puts;
                    counts.deletes += inner.deletes;
                }
                None => {}
            }
        }
        counts
    }
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Open file descriptors and the soft limit on them.
fn file_descriptors() -> (i64, i64) {
    let used = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as i64);
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only into the struct it is given.
    let limit = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        clamp(limit.rlim_cur)
    } else {
        0
    };
    (used, limit)
}

/// Shared by the server's parts that count events.
pub type SharedMetrics = Arc<Metrics>;
