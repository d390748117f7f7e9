//! The apply side of a member: committed entries, in log order and in batches, into the MVCC
//! store and the lessor, off the network path; waking the handlers that wait for them; and the
//! backend write-back thread.

use crate::auth::{AuthError, AuthInfo};
use crate::cluster::membership::{Applied as MembershipApplied, Members};
use crate::cluster::transport::PeerTransport;
use crate::errors::ServerError;
use crate::etcd::{Applied, ApplyResult};
use crate::lease::Lessor;
use cairn_mvcc::{MvccError, Store};
use cairn_proto::cairnpb::{InternalRequest, internal_request::Request};
use cairn_proto::etcdserverpb::{CompactionResponse, ResponseHeader};
use cairn_raft::{CommittedEntry, RaftHandle};
use parking_lot::Mutex;
use prost::Message;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::time::Duration;
use tokio::sync::{oneshot, watch};

/// The state machine side: applies committed entries in order, in batches, off the network path.
pub(crate) struct ApplyLoop {
    pub(crate) store: Arc<Store>,
    pub(crate) raft: Option<RaftHandle>,
    pub(crate) lessor: Arc<Lessor>,
    pub(crate) members: Arc<Members>,
    pub(crate) auth: Arc<crate::auth::AuthStore>,
    pub(crate) alarms: Arc<crate::alarm::Alarms>,
    pub(crate) versions: Arc<crate::cluster::version::Versions>,
    pub(crate) peers: PeerTransport,
    /// Where snapshot copies from the leader arrive.
    pub(crate) snap_dir: std::path::PathBuf,
    pub(crate) config: crate::config::Config,
    pub(crate) waiters: Arc<Mutex<HashMap<u64, oneshot::Sender<ApplyResult>>>>,
    pub(crate) applied: watch::Sender<u64>,
    pub(crate) member_id: u64,
    pub(crate) snapshot_count: u64,
    pub(crate) last_compacted: u64,
    /// Bytes of log entries applied since the last durable write-back was asked for.
    pub(crate) bytes_since_durable: u64,
    /// Nudges the write-back thread when the buffer is due before its timer says so.
    pub(crate) write_back: SyncSender<()>,
    pub(crate) durable: Arc<DurableRequests>,
    /// A failpoint's wait before the first batch.
    pub(crate) hold: Option<Duration>,
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
}

/// Log bytes after which a durable write-back is asked for even before `--snapshot-count`
/// entries: Raft keeps every entry above the last durable point in memory (as etcd does), so
/// with large values the count alone let a member hold gigabytes of log (100 000 entries of
/// 1.5 MiB). A write-back costs one backend fsync per this many bytes written.
pub(crate) const DURABLE_EVERY_BYTES: u64 = 32 << 20;

/// Durable write-backs the apply loop asks for every `--snapshot-count` entries (or
/// [`DURABLE_EVERY_BYTES`]). The
/// write-back thread makes them and then tells Raft, which may compact its log below: applying
/// never waits for the backend's fsync (with many buffered records that took hundreds of
/// milliseconds, and every write in flight waited with it).
#[derive(Default)]
pub(crate) struct DurableRequests {
    /// The highest applied index asked to be made durable and not done yet.
    wanted: Mutex<Option<u64>>,
    /// Set once the Raft node runs.
    pub(crate) raft: Mutex<Option<RaftHandle>>,
}

impl DurableRequests {
    fn request(&self, index: u64) {
        let mut wanted = self.wanted.lock();
        *wanted = Some(wanted.map_or(index, |w| w.max(index)));
    }
}

/// Writes applied batches back to the backend off the apply thread, so applying never waits
/// for a redb commit (etcd's backend commits in its own goroutine for the same reason), and
/// makes the durable write-backs the apply loop asks for. Ends when the apply loop does; the
/// apply loop makes the final durable flush itself.
pub(crate) fn write_back_loop(
    store: Arc<Store>,
    nudges: Receiver<()>,
    durable: Arc<DurableRequests>,
) {
    loop {
        match nudges.recv_timeout(cairn_mvcc::buffer::WRITE_BACK_INTERVAL) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let wanted = durable.wanted.lock().take();
        let outcome = match wanted {
            // Everything applied before the request is in the buffer this flush writes.
            Some(index) => store.flush().map(|()| {
                if let Some(raft) = durable.raft.lock().as_ref() {
                    raft.report_durable(index);
                }
            }),
            None => store.write_back_if_due().map(|_| ()),
        };
        if let Err(e) = outcome {
            tracing::error!(error = %e, "backend write-back failed; stopping the member to protect the data");
            std::process::exit(2);
        }
    }
}

/// Batches this small are applied on the Raft thread when the apply thread is idle.
const INLINE_APPLY_MAX_ENTRIES: usize = 2;

/// Where the Raft thread delivers committed entries. A lone small batch (one client writing) is
/// applied right there when nothing is queued for the apply thread, which saves a thread
/// hand-off, and on a small VM a wake-up, per write. Larger batches go to the apply thread, so
/// applying them overlaps with the next fsync.
pub(crate) struct Dispatch {
    pub(crate) applier: Arc<Mutex<ApplyLoop>>,
    /// Batches sent to the apply thread and not yet applied; only the Raft thread adds to it.
    pub(crate) queued: Arc<AtomicUsize>,
    pub(crate) tx: std::sync::mpsc::Sender<Vec<CommittedEntry>>,
}

impl cairn_raft::CommitSink for Dispatch {
    fn committed(&mut self, batch: Vec<CommittedEntry>) {
        if batch.len() <= INLINE_APPLY_MAX_ENTRIES
            && !batch.iter().any(|e| e.install_snapshot)
            && let Some(mut applier) = self.applier.try_lock()
            // Under the lock with nothing queued, no earlier batch can still be waiting.
            && self.queued.load(Ordering::Acquire) == 0
            // A failpoint's hold happens on the apply thread, never on the Raft thread.
            && applier.hold.is_none()
        {
            applier.step(batch);
            return;
        }
        self.queued.fetch_add(1, Ordering::AcqRel);
        // The apply thread going away means the server is shutting down.
        let _ = self.tx.send(batch);
    }
}

pub(crate) fn apply_thread(
    applier: Arc<Mutex<ApplyLoop>>,
    queued: Arc<AtomicUsize>,
    rx: Receiver<Vec<CommittedEntry>>,
) {
    while let Ok(mut batch) = rx.recv() {
        let mut taken = 1;
        // Everything already waiting joins this batch.
        while let Ok(more) = rx.try_recv() {
            batch.extend(more);
            taken += 1;
        }
        applier.lock().step(batch);
        queued.fetch_sub(taken, Ordering::AcqRel);
    }
    if let Err(e) = applier.lock().store.flush() {
        tracing::error!(error = %e, "final backend flush failed");
    }
}

impl ApplyLoop {
    /// What etcd's authApplierV3 checks for a client's request, at this point of the log.
    fn check_permission(&self, who: &AuthInfo, request: &Request) -> Result<(), AuthError> {
        let auth = &self.auth;
        match request {
            Request::Put(p) => {
                auth.check_key(who, &p.key, &[], true)?;
                if p.lease != 0 {
                    auth.check_lease_keys(who, &self.lessor.keys(p.lease))?;
                }
                if p.prev_kv {
                    auth.check_key(who, &p.key, &[], false)?;
                }
                Ok(())
            }
            Request::DeleteRange(d) => {
                auth.check_key(who, &d.key, &d.range_end, true)?;
                if d.prev_kv {
                    auth.check_key(who, &d.key, &d.range_end, false)?;
                }
                Ok(())
            }
            Request::Txn(t) => auth.check_txn(who, t),
            Request::LeaseRevoke(r) => auth.check_lease_keys(who, &self.lessor.keys(r.id)),
            // Compaction destroys history: root only (etcd 3.4 lets anyone compact).
            Request::Compaction(_) | Request::Auth(_) | Request::Downgrade(_) => {
                auth.check_admin(who)
            }
            Request::LeaseGrant(_)
            | Request::Authenticate(_)
            | Request::LeaseCheckpoint(_)
            | Request::MemberAttributes(_)
            | Request::MemberChange(_)
            | Request::Alarm(_) => Ok(()),
        }
    }

    /// Brings the transport in line with an applied membership change; a member that has been
    /// removed stops itself, as etcd's does.
    fn follow_membership(&self, applied: &MembershipApplied) {
        match applied {
            MembershipApplied::Peer(id, urls) => self.peers.set_peer(*id, urls.clone()),
            MembershipApplied::Removed(id) if *id == self.member_id => {
                crate::cluster::stop_removed_member(self.store.clone())
            }
            MembershipApplied::Removed(id) => self.peers.remove_peer(*id),
            MembershipApplied::Promoted(_) | MembershipApplied::Nothing => {}
        }
    }

    fn step(&mut self, batch: Vec<CommittedEntry>) {
        if let Some(hold) = self.hold.take() {
            std::thread::sleep(hold);
        }
        // A snapshot to install splits the batch: what comes before it is applied first.
        let mut rest = batch;
        while let Some(at) = rest.iter().position(|e| e.install_snapshot) {
            let after = rest.split_off(at + 1);
            let Some(install) = rest.pop() else { break };
            let outcome = self
                .apply_batch(std::mem::replace(&mut rest, after))
                .and_then(|()| self.install_snapshot(install.index));
            if let Err(e) = outcome {
                tracing::error!(error = %e, "apply failed; stopping the member to protect the data");
                std::process::exit(2);
            }
        }
        if let Err(e) = self.apply_batch(rest) {
            tracing::error!(error = %e, "apply failed; stopping the member to protect the data");
            std::process::exit(2);
        }
        if self.store.write_back_due() {
            // A nudge already queued covers this one too.
            let _ = self.write_back.try_send(());
        }
    }

    /// Replaces the backend with the leader's copy for `index`, and everything derived from it.
    fn install_snapshot(&mut self, index: u64) -> Result<(), ServerError> {
        self.metrics.snapshot_apply_in_progress.set(1);
        let installed = crate::cluster::snapshot::install(&self.store, &self.snap_dir, index);
        self.metrics.snapshot_apply_in_progress.set(0);
        let consistent = installed?;
        self.lessor.reload(&self.store)?;
        self.auth.reload(&self.store)?;
        self.alarms.reload(&self.store)?;
        self.versions.reload(&self.store)?;
        self.members
            .reload(&self.store, self.member_id, &self.config)?;
        let ids: Vec<u64> = self.members.all().iter().map(|m| m.id).collect();
        for m in self.members.all() {
            self.peers.set_peer(m.id, m.peer_urls);
        }
        self.peers.retain_peers(&ids);
        self.last_compacted = consistent;
        self.bytes_since_durable = 0;
        if let Some(raft) = &self.raft {
            raft.report_durable(consistent);
        }
        self.applied.send_replace(consistent);
        Ok(())
    }

    /// etcd's per-operation counters, for what an entry did.
    /// `compares`: how many compares the request (a txn) made.
    fn count(&self, res: &ApplyResult, compares: u64) {
        use crate::metrics::OpCounts;
        let m = &self.metrics;
        match res {
            Ok(Applied::Put(_)) => m.puts.inc(),
            Ok(Applied::DeleteRange(_)) => m.deletes.inc(),
            Ok(Applied::Txn(t)) => {
                let mut ops = OpCounts::of_branch(t);
                ops.ranges += compares;
                m.count_ops(ops);
            }
            Ok(Applied::LeaseGrant(_)) => m.leases_granted.inc(),
            Ok(Applied::LeaseRevoke(_)) => m.leases_revoked.inc(),
            _ => {}
        }
    }

    fn apply_batch(&mut self, batch: Vec<CommittedEntry>) -> Result<(), ServerError> {
        let consistent = self.store.consistent_index();
        let Some(last) = batch.last() else {
            return Ok(());
        };
        let (last_index, last_term) = (last.index, last.term);
        if last_index <= consistent {
            return Ok(());
        }
        let mut results = Vec::new();
        {
            let mut a = self.store.begin_apply()?;
            let lessor = self.lessor.clone();
            a.set_lease_check(move |id| lessor.exists(id));
            for entry in &batch {
                if entry.index <= consistent || entry.data.is_empty() {
                    continue;
                }
                self.bytes_since_durable += entry.data.len() as u64;
                let req = match InternalRequest::decode(entry.data.as_ref()) {
                    Ok(r) => r,
                    Err(e) => {
                        return Err(ServerError::Internal(format!(
                            "undecodable log entry at index {}: {e}",
                            entry.index
                        )));
                    }
                };
                let before = a.events().len();
                let started = std::time::Instant::now();
                let compares = match &req.request {
                    Some(Request::Txn(t)) => t.compare.len() as u64,
                    _ => 0,
                };
                let refused = match (&req.auth_header, &req.request) {
                    (_, Some(r)) if self.alarms.refuses(r).is_some() => self.alarms.refuses(r),
                    (Some(h), Some(r)) if self.auth.is_enabled() => self
                        .check_permission(&AuthInfo::from_header(h), r)
                        .err()
                        .map(ServerError::from),
                    _ => None,
                };
                let res: ApplyResult = match (refused, req.request) {
                    (Some(refused), _) => Err(refused),
                    (None, Some(Request::Put(p))) => {
                        a.put(&p).map(Applied::Put).map_err(Into::into)
                    }
                    (None, Some(Request::DeleteRange(d))) => a
                        .delete_range(&d)
                        .map(Applied::DeleteRange)
                        .map_err(Into::into),
                    (None, Some(Request::Txn(t))) => {
                        a.txn(&t).map(Applied::Txn).map_err(Into::into)
                    }
                    (None, Some(Request::Compaction(c))) => a
                        .compact(c.revision)
                        .map(|outcome| {
                            tracing::info!(
                                revision = c.revision,
                                removed_revisions = outcome.removed_revisions,
                                took_ms = started.elapsed().as_millis() as u64,
                                "compacted"
                            );
                            Applied::Compaction(CompactionResponse {
                                header: Some(ResponseHeader {
                                    revision: a.revision(),
                                    ..Default::default()
                                }),
                            })
                        })
                        .map_err(Into::into),
                    (None, Some(Request::LeaseGrant(g))) => self.lessor.apply_grant(&mut a, &g),
                    (None, Some(Request::LeaseRevoke(r))) => self.lessor.apply_revoke(&mut a, r.id),
                    (None, Some(Request::LeaseCheckpoint(c))) => {
                        self.lessor.apply_checkpoint(&mut a, &c)
                    }
                    (None, Some(Request::MemberAttributes(m))) => self
                        .members
                        .apply_attributes(&mut a, &m)
                        .map(|()| Applied::MemberAttributes),
                    (None, Some(Request::Auth(c))) => {
                        self.auth.apply(&mut a, &c).map(|()| Applied::Auth)
                    }
                    (None, Some(Request::Authenticate(r))) => self
                        .auth
                        .apply_authenticate(&r, entry.index)
                        .map(Applied::Token)
                        .map_err(Into::into),
                    (None, Some(Request::Alarm(r))) => {
                        self.alarms.apply(&mut a, &r).map(Applied::Alarm)
                    }
                    (None, Some(Request::Downgrade(d))) => {
                        self.versions.apply(&mut a, &d).map(|()| Applied::Downgrade)
                    }
                    (None, Some(Request::MemberChange(c))) => {
                        let applied = self.members.apply_change(&mut a, &c)?;
                        self.follow_membership(&applied);
                        Ok(Applied::MemberChange)
                    }
                    (None, None) => continue,
                };
                if let Err(
                    e @ (ServerError::Mvcc(
                        MvccError::Backend(_)
                        | MvccError::Corrupt { .. }
                        | MvccError::CorruptMeta { .. },
                    )
                    | ServerError::Internal(_)),
                ) = res
                {
                    return Err(e);
                }
                if started.elapsed() > crate::metrics::SLOW_APPLY {
                    self.metrics.slow_apply.inc();
                }
                self.count(&res, compares);
                self.lessor.track(&a.events()[before..]);
                if req.origin == self.member_id {
                    results.push((req.id, res));
                }
            }
            a.commit(last_index, last_term, false)?;
            // The handle arrives just after the node starts; a request before that is made at
            // the next batch.
            let due = last_index - self.last_compacted >= self.snapshot_count
                || self.bytes_since_durable >= DURABLE_EVERY_BYTES;
            if due && self.raft.is_some() {
                self.durable.request(last_index);
                self.last_compacted = last_index;
                self.bytes_since_durable = 0;
                // A nudge already queued covers this one too.
                let _ = self.write_back.try_send(());
            }
        }
        // Wake handlers only after the batch is visible to readers.
        let mut waiters = self.waiters.lock();
        for (id, res) in results {
            if let Some(tx) = waiters.remove(&id) {
                let _ = tx.send(res);
            }
        }
        drop(waiters);
        self.applied.send_replace(last_index);
        Ok(())
    }
}
