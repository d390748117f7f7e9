//! Leases: the lessor (replicated lease state and the keys attached to each lease), and the
//! Lease gRPC service.
//!
//! Grants, revocations and deadline checkpoints go through Raft and are applied by every member
//! into the backend's `lease` table, in the same transaction as the keys they touch. Renewals
//! (keep-alives) do not: the leader extends the deadline in memory and, at most every
//! [`CHECKPOINT_INTERVAL`], proposes one checkpoint entry with every renewed deadline, so a renewal
//! never costs a WAL fsync of its own yet a restart loses at most that interval of renewal. The
//! leader revokes expired leases through Raft.

use crate::errors::{ServerError, msg};
use crate::etcd::{Applied, EtcdServer};
use crate::idgen::IdGenerator;
use bytes::Bytes;
use cairn_mvcc::{Applier, WatchEvent};
use cairn_proto::cairnpb::{LeaseCheckpoint, LeaseDeadline, LeaseGrant, internal_request::Request};
use cairn_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse, lease_server::Lease,
};
use futures::Stream;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tonic::{Request as GrpcRequest, Response, Status, Streaming};

/// etcd's MaxLeaseTTL.
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;
/// How often renewed deadlines are made durable.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);
/// How long before an expired lease whose revocation was proposed is proposed again.
const REVOKE_RETRY: Duration = Duration::from_secs(3);
/// etcd's default lease revoke rate per second.
const REVOKES_PER_SECOND: usize = 1000;

pub fn now_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[derive(Debug)]
struct LeaseState {
    ttl: i64,
    deadline_ms: i64,
    keys: HashSet<Bytes>,
}

fn encode_record(ttl: i64, deadline_ms: i64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&ttl.to_le_bytes());
    b[8..].copy_from_slice(&deadline_ms.to_le_bytes());
    b
}

fn decode_record(raw: &[u8]) -> Option<(i64, i64)> {
    let ttl = i64::from_le_bytes(raw.get(..8)?.try_into().ok()?);
    let deadline = i64::from_le_bytes(raw.get(8..16)?.try_into().ok()?);
    Some((ttl, deadline))
}

#[derive(Default)]
struct Inner {
    leases: HashMap<i64, LeaseState>,
    key_lease: HashMap<Bytes, i64>,
    /// Leases renewed since the last checkpoint.
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
    /// Rebuilds the lessor from the backend: lease records and the keys attached to them.
    pub fn recover(
        store: &cairn_mvcc::Store,
        min_ttl: i64,
        member_id: u64,
    ) -> Result<Lessor, ServerError> {
        let mut inner = Inner::default();
        for (id, raw) in store.leases()? {
            let (ttl, deadline_ms) = decode_record(&raw)
                .ok_or_else(|| ServerError::Internal(format!("corrupt lease record {id:x}")))?;
            inner.leases.insert(
                id,
                LeaseState {
                    ttl,
                    deadline_ms,
                    keys: HashSet::new(),
                },
            );
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

    pub fn exists(&self, id: i64) -> bool {
        self.inner.lock().leases.contains_key(&id)
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

    /// Extends a lease by its TTL; `None` if there is no such lease.
    pub fn renew(&self, id: i64) -> Option<i64> {
        let mut inner = self.inner.lock();
        let l = inner.leases.get_mut(&id)?;
        l.deadline_ms = now_unix_ms() + l.ttl * 1000;
        let ttl = l.ttl;
        inner.renewed.insert(id);
        Some(ttl)
    }

    /// (remaining seconds, granted TTL, attached keys) of a lease.
    pub fn time_to_live(&self, id: i64) -> Option<(i64, i64, Vec<Bytes>)> {
        let inner = self.inner.lock();
        let l = inner.leases.get(&id)?;
        let remaining = ((l.deadline_ms - now_unix_ms()).max(0)) / 1000;
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
        let now = now_unix_ms();
        let mut inner = self.inner.lock();
        let Inner {
            leases, revoking, ..
        } = &mut *inner;
        revoking.retain(|id, at| leases.contains_key(id) && at.elapsed() < REVOKE_RETRY);
        let mut out: Vec<i64> = leases
            .iter()
            .filter(|(id, l)| l.deadline_ms <= now && !revoking.contains_key(id))
            .map(|(id, _)| *id)
            .take(REVOKES_PER_SECOND / 2)
            .collect();
        out.sort_unstable();
        for id in &out {
            revoking.insert(*id, Instant::now());
        }
        out
    }

    fn take_renewed(&self) -> Vec<LeaseDeadline> {
        let mut inner = self.inner.lock();
        let renewed = std::mem::take(&mut inner.renewed);
        renewed
            .into_iter()
            .filter_map(|id| {
                inner.leases.get(&id).map(|l| LeaseDeadline {
                    id,
                    deadline_unix_ms: l.deadline_ms,
                })
            })
            .collect()
    }

    /// Applies a replicated grant.
    pub fn apply_grant(&self, a: &mut Applier<'_>, g: &LeaseGrant) -> Result<Applied, ServerError> {
        let mut inner = self.inner.lock();
        if inner.leases.contains_key(&g.id) {
            return Err(ServerError::LeaseExists);
        }
        a.put_lease(g.id, &encode_record(g.ttl, g.deadline_unix_ms))?;
        inner.leases.insert(
            g.id,
            LeaseState {
                ttl: g.ttl,
                deadline_ms: g.deadline_unix_ms,
                keys: HashSet::new(),
            },
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

    pub fn apply_checkpoint(
        &self,
        a: &mut Applier<'_>,
        c: &LeaseCheckpoint,
    ) -> Result<Applied, ServerError> {
        let mut inner = self.inner.lock();
        for d in &c.deadlines {
            if let Some(l) = inner.leases.get_mut(&d.id) {
                // A renewal after the checkpoint was proposed must not be undone by it.
                l.deadline_ms = l.deadline_ms.max(d.deadline_unix_ms);
                a.put_lease(d.id, &encode_record(l.ttl, l.deadline_ms))?;
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
        loop {
            tick.tick().await;
            if !server.is_leader() {
                continue;
            }
            let renewed = server.lessor.take_renewed();
            if !renewed.is_empty() {
                let req = Request::LeaseCheckpoint(LeaseCheckpoint { deadlines: renewed });
                if let Err(e) = server.propose(req).await {
                    tracing::warn!(error = %e, "lease checkpoint failed");
                }
            }
            for id in server.lessor.expired() {
                let s = server.clone();
                tokio::spawn(async move {
                    let req = Request::LeaseRevoke(LeaseRevokeRequest { id });
                    match s.propose(req).await {
                        Ok(_) | Err(ServerError::Mvcc(cairn_mvcc::MvccError::LeaseNotFound)) => {}
                        Err(e) => {
                            tracing::warn!(lease = format!("{id:x}"), error = %e, "revoking an expired lease failed; will retry")
                        }
                    }
                });
            }
        }
    });
}

pub struct LeaseService {
    pub server: Arc<EtcdServer>,
}

type KeepAliveStream = Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        request: GrpcRequest<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        let req = request.into_inner();
        if req.ttl > MAX_LEASE_TTL {
            return Err(Status::out_of_range(msg::TOO_LARGE_LEASE_TTL));
        }
        let lessor = &self.server.lessor;
        let ttl = req.ttl.max(lessor.min_ttl);
        let id = if req.id == 0 { lessor.new_id() } else { req.id };
        let grant = LeaseGrant {
            id,
            ttl,
            deadline_unix_ms: now_unix_ms() + ttl * 1000,
        };
        match self.server.propose(Request::LeaseGrant(grant)).await? {
            Applied::LeaseGrant(mut r) => {
                r.header = self.server.header(self.server.store.revision());
                Ok(Response::new(r))
            }
            _ => Err(Status::internal(
                "cairn: unexpected apply result for LeaseGrant",
            )),
        }
    }

    async fn lease_revoke(
        &self,
        request: GrpcRequest<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        let req = request.into_inner();
        match self.server.propose(Request::LeaseRevoke(req)).await? {
            Applied::LeaseRevoke(r) => Ok(Response::new(LeaseRevokeResponse {
                header: self.server.restamp(r.header),
            })),
            _ => Err(Status::internal(
                "cairn: unexpected apply result for LeaseRevoke",
            )),
        }
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        request: GrpcRequest<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let mut inbound = request.into_inner();
        let server = self.server.clone();
        let out = async_stream(move |tx| async move {
            while let Ok(Some(req)) = inbound.message().await {
                if !server.is_leader() {
                    let _ = tx.send(Err(Status::unavailable(msg::NOT_LEADER))).await;
                    return;
                }
                // An unknown lease answers TTL 0, which clients read as "expired or revoked".
                let ttl = server.lessor.renew(req.id).unwrap_or(0);
                let resp = LeaseKeepAliveResponse {
                    header: server.header(server.store.revision()),
                    id: req.id,
                    ttl,
                };
                if tx.send(Ok(resp)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(out))
    }

    async fn lease_time_to_live(
        &self,
        request: GrpcRequest<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let req = request.into_inner();
        self.server.linearizable_barrier().await?;
        let header = self.server.header(self.server.store.revision());
        let resp = match self.server.lessor.time_to_live(req.id) {
            Some((remaining, granted, keys)) => LeaseTimeToLiveResponse {
                header,
                id: req.id,
                ttl: remaining,
                granted_ttl: granted,
                keys: if req.keys { keys } else { Vec::new() },
            },
            // etcd answers an unknown lease with TTL -1 rather than an error.
            None => LeaseTimeToLiveResponse {
                header,
                id: req.id,
                ttl: -1,
                granted_ttl: 0,
                keys: Vec::new(),
            },
        };
        Ok(Response::new(resp))
    }

    async fn lease_leases(
        &self,
        _: GrpcRequest<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        self.server.linearizable_barrier().await?;
        Ok(Response::new(LeaseLeasesResponse {
            header: self.server.header(self.server.store.revision()),
            leases: self
                .server
                .lessor
                .ids()
                .into_iter()
                .map(|id| LeaseStatus { id })
                .collect(),
        }))
    }
}

/// A response stream fed by a task that gets the sending half of a bounded channel.
fn async_stream<T, F, Fut>(f: F) -> Pin<Box<dyn Stream<Item = T> + Send>>
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<T>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(f(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_roundtrip() {
        let r = encode_record(42, 1_700_000_000_123);
        assert_eq!(decode_record(&r), Some((42, 1_700_000_000_123)));
        assert_eq!(decode_record(&r[..10]), None);
    }
}
