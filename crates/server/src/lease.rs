//! Leases: the lessor (replicated lease state and the keys attached to each lease) and the
//! leader's lease duties. The gRPC service is `api::lease`.
//!
//! Grants, revocations and checkpoints of remaining TTLs go through Raft and are applied by every
//! member into the backend's `lease` table, in the same transaction as the keys they touch; what
//! is written there depends on the log alone. Deadlines live in memory only, on each member's
//! monotonic clock, so a wall-clock step never moves an expiry. Renewals (keep-alives) do not go
//! through Raft: the leader extends the deadline in memory and checkpoints the new remaining TTL
//! within [`CHECKPOINT_INTERVAL`]; every lease is also checkpointed once its persisted remaining
//! TTL is [`staleness`] old, so after a restart a lease keeps about the TTL it had left (time the
//! member was down is not counted, as with etcd's checkpoints). The leader revokes expired leases
//! through Raft.

use crate::errors::ServerError;
use crate::etcd::{Applied, EtcdServer};
use crate::idgen::IdGenerator;
use bytes::Bytes;
use cairn_mvcc::{Applier, WatchEvent};
use cairn_proto::cairnpb::{
    LeaseCheckpoint, LeaseGrant, LeaseRemaining, internal_request::Request,
};
use cairn_proto::etcdserverpb::{LeaseGrantResponse, LeaseRevokeRequest, LeaseRevokeResponse};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// etcd's MaxLeaseTTL.
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;
/// How often the leader checkpoints renewed and stale leases.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);
/// At most this many leases go into one checkpoint entry; the rest wait for the next tick.
const CHECKPOINT_BATCH: usize = 1000;
/// How long before an expired lease whose revocation was proposed is proposed again.
const REVOKE_RETRY: Duration = Duration::from_secs(3);
/// etcd's default lease revoke rate per second.
const REVOKES_PER_SECOND: usize = 1000;

/// How old a lease's persisted remaining TTL may get before it is checkpointed again: a tenth
/// of its TTL, at least a second. A restart can give a lease back at most this much time, and a
/// lease costs a checkpoint record at most this often.
pub fn staleness(ttl: i64) -> Duration {
    Duration::from_millis((ttl.max(0) as u64).saturating_mul(100).max(1000))
}

#[derive(Debug)]
struct LeaseState {
    ttl: i64,
    /// When the lease expires, on this member's monotonic clock.
    deadline: Instant,
    /// When this member last proposed (leader) or applied a checkpoint or grant of it.
    checkpointed_at: Instant,
    keys: HashSet<Bytes>,
}

impl LeaseState {
    fn new(ttl: i64, remaining: Duration, now: Instant) -> LeaseState {
        LeaseState {
            ttl,
            deadline: now + remaining,
            checkpointed_at: now,
            keys: HashSet::new(),
        }
    }
}

fn ttl_duration(ttl: i64) -> Duration {
    Duration::from_secs(ttl.max(0) as u64)
}

/// The backend record of a lease: its granted TTL (seconds) and its remaining TTL (ms) as of
/// its last grant or checkpoint.
pub(crate) fn encode_record(ttl: i64, remaining_ms: i64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&ttl.to_le_bytes());
    b[8..].copy_from_slice(&remaining_ms.to_le_bytes());
    b
}

pub(crate) fn decode_record(raw: &[u8]) -> Option<(i64, i64)> {
    let ttl = i64::from_le_bytes(raw.get(..8)?.try_into().ok()?);
    let remaining_ms = i64::from_le_bytes(raw.get(8..16)?.try_into().ok()?);
    Some((ttl, remaining_ms))
}

#[derive(Default)]
struct Inner {
    leases: HashMap<i64, LeaseState>,
    key_lease: HashMap<Bytes, i64>,
    /// Leases renewed since their last checkpoint.
    renewed: HashSet<i64>,
    /// Expired leases whose revocation was proposed, and when.
    revoking: HashMap<i64, Instant>,
}

/// Lease state derived from the log, plus the leader's in-memory renewals.
pub struct Lessor {
    inner: Mutex<Inner>,
    /// Granted TTLs below this are raised to it (etcd: 1.5 election timeouts, rounded up).
    pub min_ttl: i64,
    ids: IdGenerator,
}

impl Lessor {
    /// Rebuilds the lessor from the backend: lease records and the keys attached to them. Each
    /// lease gets the remaining TTL of its last checkpoint, from now.
    pub fn recover(
        store: &cairn_mvcc::Store,
        min_ttl: i64,
        member_id: u64,
    ) -> Result<Lessor, ServerError> {
        let mut inner = Inner::default();
        let now = Instant::now();
        for (id, raw) in store.leases()? {
            let (ttl, remaining_ms) = decode_record(&raw)
                .ok_or_else(|| ServerError::Internal(format!("corrupt lease record {id:x}")))?;
            let remaining =
                Duration::from_millis(remaining_ms.max(0) as u64).min(ttl_duration(ttl));
            inner
                .leases
                .insert(id, LeaseState::new(ttl, remaining, now));
        }
        for (key, id) in store.leased_keys() {
            if let Some(l) = inner.leases.get_mut(&id) {
                l.keys.insert(key.clone());
                inner.key_lease.insert(key, id);
            }
        }
        Ok(Lessor {
            inner: Mutex::new(inner),
            min_ttl,
            ids: IdGenerator::new(member_id),
        })
    }

    /// Replaces the lease state with the backend's (after a snapshot replaced the backend).
    pub fn reload(&self, store: &cairn_mvcc::Store) -> Result<(), ServerError> {
        let fresh = Lessor::recover(store, self.min_ttl, 0)?;
        *self.inner.lock() = fresh.inner.into_inner();
        Ok(())
    }

    pub fn exists(&self, id: i64) -> bool {
        self.inner.lock().leases.contains_key(&id)
    }

    /// The keys attached to a lease (none if there is no such lease).
    pub fn keys(&self, id: i64) -> Vec<Bytes> {
        self.inner
            .lock()
            .leases
            .get(&id)
            .map(|l| l.keys.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// A fresh lease id (positive, non-zero, not in use).
    pub fn new_id(&self) -> i64 {
        loop {
            let id = (self.ids.next() & (i64::MAX as u64)) as i64;
            if id != 0 && !self.exists(id) {
                return id;
            }
        }
    }

    /// Extends a lease by its TTL; `None` if there is no such lease, or if it has expired and
    /// its revocation is decided: a keep-alive must not revive a lease whose keys are about to
    /// be deleted (etcd answers such a renewal with TTL 0 too).
    pub fn renew(&self, id: i64) -> Option<i64> {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        if inner.revoking.contains_key(&id) {
            return None;
        }
        let l = inner.leases.get_mut(&id)?;
        if l.deadline <= now {
            return None;
        }
        l.deadline = now + ttl_duration(l.ttl);
        let ttl = l.ttl;
        inner.renewed.insert(id);
        Some(ttl)
    }

    /// Takes over expiry on becoming leader (etcd's Promote). This member's deadlines come from
    /// replicated checkpoints, so they miss the old leader's renewals of the last checkpoint
    /// interval, and no keep-alive could land during the election: every lease gets `extend`
    /// on top of what it had left. Bounded per leader change, so nothing is extended forever.
    pub fn promote(&self, extend: Duration) {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        for l in inner.leases.values_mut() {
            l.deadline = l.deadline.max(now) + extend;
        }
        // Revocations an earlier term of leadership proposed may never have committed.
        inner.revoking.clear();
    }

    /// (remaining seconds, granted TTL, attached keys) of a lease.
    pub fn time_to_live(&self, id: i64) -> Option<(i64, i64, Vec<Bytes>)> {
        let inner = self.inner.lock();
        let l = inner.leases.get(&id)?;
        let remaining = l
            .deadline
            .saturating_duration_since(Instant::now())
            .as_secs() as i64;
        let mut keys: Vec<Bytes> = l.keys.iter().cloned().collect();
        keys.sort();
        Some((remaining, l.ttl, keys))
    }

    pub fn ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self.inner.lock().leases.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Expired leases not already being revoked (at most the per-second revoke budget).
    fn expired(&self) -> Vec<i64> {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        let Inner {
            leases, revoking, ..
        } = &mut *inner;
        revoking.retain(|id, at| leases.contains_key(id) && at.elapsed() < REVOKE_RETRY);
        let mut out: Vec<i64> = leases
            .iter()
            .filter(|(id, l)| l.deadline <= now && !revoking.contains_key(id))
            .map(|(id, _)| *id)
            .take(REVOKES_PER_SECOND / 2)
            .collect();
        out.sort_unstable();
        for id in &out {
            revoking.insert(*id, now);
        }
        out
    }

    /// Remaining TTLs to checkpoint: leases renewed since their last checkpoint, and leases
    /// whose persisted remaining TTL has grown stale. Expired leases are left to revocation.
    fn take_checkpoints(&self) -> Vec<LeaseRemaining> {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        let Inner {
            leases,
            renewed,
            revoking,
            ..
        } = &mut *inner;
        let mut out = Vec::new();
        for (id, l) in leases.iter_mut() {
            if out.len() >= CHECKPOINT_BATCH {
                break;
            }
            let due = renewed.contains(id)
                || now.saturating_duration_since(l.checkpointed_at) >= staleness(l.ttl);
            if !due || l.deadline <= now || revoking.contains_key(id) {
                continue;
            }
            renewed.remove(id);
            l.checkpointed_at = now;
            out.push(LeaseRemaining {
                id: *id,
                remaining_ms: l.deadline.saturating_duration_since(now).as_millis() as i64,
            });
        }
        out
    }

    /// Applies a replicated grant.
    pub fn apply_grant(&self, a: &mut Applier<'_>, g: &LeaseGrant) -> Result<Applied, ServerError> {
        let mut inner = self.inner.lock();
        if inner.leases.contains_key(&g.id) {
            return Err(ServerError::LeaseExists);
        }
        a.put_lease(g.id, &encode_record(g.ttl, g.ttl.saturating_mul(1000)))?;
        inner.leases.insert(
            g.id,
            LeaseState::new(g.ttl, ttl_duration(g.ttl), Instant::now()),
        );
        Ok(Applied::LeaseGrant(LeaseGrantResponse {
            header: None,
            id: g.id,
            ttl: g.ttl,
            error: String::new(),
        }))
    }

    /// Applies a replicated revocation: every attached key is deleted in one revision.
    pub fn apply_revoke(&self, a: &mut Applier<'_>, id: i64) -> Result<Applied, ServerError> {
        let keys: Vec<Bytes> = {
            let inner = self.inner.lock();
            let l = inner
                .leases
                .get(&id)
                .ok_or(ServerError::Mvcc(cairn_mvcc::MvccError::LeaseNotFound))?;
            let mut keys: Vec<Bytes> = l.keys.iter().cloned().collect();
            keys.sort();
            keys
        };
        let before = a.events().len();
        let resp = a.delete_keys(&keys)?;
        self.track(&a.events()[before..]);
        a.delete_lease(id)?;
        let mut inner = self.inner.lock();
        inner.leases.remove(&id);
        inner.renewed.remove(&id);
        inner.revoking.remove(&id);
        Ok(Applied::LeaseRevoke(LeaseRevokeResponse {
            header: resp.header,
        }))
    }

    /// Applies a replicated checkpoint. The backend gets exactly the checkpoint's remaining
    /// TTLs, so every member and every replay writes the same records. In memory the deadline
    /// becomes now + the remaining TTL (as etcd's lessor does), which also moves a deadline
    /// recovered from an older record to where the log says it is; only a renewal that came in
    /// after the checkpoint was proposed keeps its later deadline.
    pub fn apply_checkpoint(
        &self,
        a: &mut Applier<'_>,
        c: &LeaseCheckpoint,
    ) -> Result<Applied, ServerError> {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        let Inner {
            leases, renewed, ..
        } = &mut *inner;
        for r in &c.remaining {
            if let Some(l) = leases.get_mut(&r.id) {
                a.put_lease(r.id, &encode_record(l.ttl, r.remaining_ms))?;
                let deadline = now + Duration::from_millis(r.remaining_ms.max(0) as u64);
                l.deadline = if renewed.contains(&r.id) {
                    l.deadline.max(deadline)
                } else {
                    deadline
                };
                l.checkpointed_at = now;
            }
        }
        Ok(Applied::LeaseCheckpoint)
    }

    /// Follows key changes: a put attaches its key to the put's lease (detaching it from any
    /// other), a delete detaches it.
    pub fn track(&self, events: &[WatchEvent]) {
        if events.is_empty() {
            return;
        }
        let mut inner = self.inner.lock();
        for e in events {
            let Some(kv) = e.event.kv.as_ref() else {
                continue;
            };
            let new = if e.is_put() { kv.lease } else { 0 };
            let old = inner.key_lease.get(&kv.key).copied().unwrap_or(0);
            if old == new {
                continue;
            }
            if old != 0 {
                if let Some(l) = inner.leases.get_mut(&old) {
                    l.keys.remove(&kv.key);
                }
                inner.key_lease.remove(&kv.key);
            }
            if new != 0 {
                if let Some(l) = inner.leases.get_mut(&new) {
                    l.keys.insert(kv.key.clone());
                }
                inner.key_lease.insert(kv.key.clone(), new);
            }
        }
    }
}

/// Leader duties: revoke expired leases and checkpoint renewed deadlines, through Raft.
pub fn spawn_background(server: Arc<EtcdServer>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CHECKPOINT_INTERVAL);
        let extend = Duration::from_millis(server.config.election_timeout) + CHECKPOINT_INTERVAL;
        let mut leading = false;
        loop {
            tick.tick().await;
            if !server.is_leader() {
                leading = false;
                continue;
            }
            if !leading {
                leading = true;
                // A sole voter takes over from no one: nothing to make up for.
                if server.members.voters().len() > 1 {
                    server.lessor.promote(extend);
                }
            }
            let remaining = server.lessor.take_checkpoints();
            if !remaining.is_empty() {
                let req = Request::LeaseCheckpoint(LeaseCheckpoint { remaining });
                if let Err(e) = server.propose(req).await {
                    tracing::warn!(error = %e, "lease checkpoint failed");
                }
            }
            for id in server.lessor.expired() {
                let s = server.clone();
                tokio::spawn(async move {
                    let req = Request::LeaseRevoke(LeaseRevokeRequest { id });
                    match s.propose(req).await {
                        Ok(_) => s.metrics.leases_expired.inc(),
                        Err(ServerError::Mvcc(cairn_mvcc::MvccError::LeaseNotFound)) => {}
                        Err(e) => {
                            tracing::warn!(lease = format!("{id:x}"), error = %e, "revoking an expired lease failed; will retry")
                        }
                    }
                });
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_roundtrip() {
        let r = encode_record(42, 41_500);
        assert_eq!(decode_record(&r), Some((42, 41_500)));
        assert_eq!(decode_record(&r[..10]), None);
    }

    struct Member {
        _dir: tempfile::TempDir,
        store: cairn_mvcc::Store,
        lessor: Lessor,
    }

    fn member() -> Member {
        let dir = tempfile::tempdir().unwrap();
        let store = cairn_mvcc::Store::open(dir.path().join("db")).unwrap();
        let lessor = Lessor::recover(&store, 1, 1).unwrap();
        Member {
            _dir: dir,
            store,
            lessor,
        }
    }

    impl Member {
        fn apply(&self, f: impl FnOnce(&Lessor, &mut Applier<'_>)) {
            let mut a = self.store.begin_apply().unwrap();
            f(&self.lessor, &mut a);
            a.commit(0, 0, false).unwrap();
        }

        fn grant(&self, id: i64, ttl: i64) {
            self.apply(|l, a| {
                l.apply_grant(a, &LeaseGrant { id, ttl }).unwrap();
            });
        }

        fn checkpoint(&self, c: &LeaseCheckpoint) {
            self.apply(|l, a| {
                l.apply_checkpoint(a, c).unwrap();
            });
        }
    }

    #[test]
    fn an_expired_lease_is_not_renewed() {
        let m = member();
        m.grant(1, 0);
        m.grant(2, 60);
        // Lease 1 is past its deadline: its revocation is about to be (or is being) proposed.
        assert_eq!(m.lessor.renew(1), None);
        assert_eq!(m.lessor.expired(), vec![1]);
        assert_eq!(
            m.lessor.renew(1),
            None,
            "renewed after its revocation was proposed"
        );
        assert_eq!(m.lessor.renew(2), Some(60));
        // Its revocation deletes it, and nothing revived it meanwhile.
        assert!(m.lessor.exists(1));
        assert_eq!(m.lessor.time_to_live(1).map(|t| t.0), Some(0));
    }

    #[test]
    fn a_new_leader_extends_every_lease_once_by_the_given_time() {
        let m = member();
        m.grant(1, 0);
        m.grant(2, 10);
        let before = m.lessor.time_to_live(2).unwrap().0;
        m.lessor.promote(Duration::from_secs(5));
        // An already expired lease gets the extension from now; a live one on top of its time.
        let after_expired = m.lessor.time_to_live(1).unwrap().0;
        let after_live = m.lessor.time_to_live(2).unwrap().0;
        assert!((4..=5).contains(&after_expired), "{after_expired}");
        assert!(
            after_live >= before + 4 && after_live <= before + 5,
            "{before} -> {after_live}"
        );
        assert!(m.lessor.expired().is_empty());
    }

    #[test]
    fn checkpoints_write_the_same_records_on_every_member_and_on_replay() {
        let leader = member();
        let follower = member();
        for m in [&leader, &follower] {
            m.grant(7, 30);
        }
        // Only the leader serves keep-alives; its memory now differs from the follower's.
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(leader.lessor.renew(7), Some(30));
        let checkpoint = LeaseCheckpoint {
            remaining: vec![LeaseRemaining {
                id: 7,
                remaining_ms: 12_345,
            }],
        };
        for m in [&leader, &follower] {
            m.checkpoint(&checkpoint);
        }
        let replayed = member();
        replayed.grant(7, 30);
        replayed.checkpoint(&checkpoint);
        let records = |m: &Member| m.store.leases().unwrap();
        assert_eq!(
            records(&leader),
            vec![(7, encode_record(30, 12_345).to_vec())]
        );
        assert_eq!(records(&leader), records(&follower));
        assert_eq!(records(&leader), records(&replayed));
        // The leader's renewal after the checkpoint was proposed still stands in its memory;
        // the follower takes the checkpoint's remaining TTL.
        assert!(leader.lessor.time_to_live(7).unwrap().0 >= 29);
        assert_eq!(follower.lessor.time_to_live(7).unwrap().0, 12);
    }

    #[test]
    fn records_hold_remaining_ttls_not_clock_readings() {
        let m = member();
        m.grant(3, 90);
        assert_eq!(
            m.store.leases().unwrap(),
            vec![(3, encode_record(90, 90_000).to_vec())]
        );
        // A restart turns the remaining TTL into a deadline on the new process's clock.
        m.checkpoint(&LeaseCheckpoint {
            remaining: vec![LeaseRemaining {
                id: 3,
                remaining_ms: 4_000,
            }],
        });
        let recovered = Lessor::recover(&m.store, 1, 1).unwrap();
        let (remaining, granted, _) = recovered.time_to_live(3).unwrap();
        assert_eq!(granted, 90);
        assert!((3..=4).contains(&remaining), "{remaining}");
    }

    #[test]
    fn stale_and_renewed_leases_are_checkpointed() {
        let m = member();
        m.grant(1, 5);
        m.grant(2, 3600);
        // Just granted: nothing is due yet.
        assert!(m.lessor.take_checkpoints().is_empty());
        m.lessor.renew(2);
        let due: Vec<i64> = m.lessor.take_checkpoints().iter().map(|r| r.id).collect();
        assert_eq!(due, vec![2]);
        assert!(m.lessor.take_checkpoints().is_empty());
        assert_eq!(staleness(5), Duration::from_secs(1));
        assert_eq!(staleness(3600), Duration::from_secs(360));
    }
}
