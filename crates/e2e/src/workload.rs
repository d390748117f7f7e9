//! A crash-test workload: concurrent writers doing puts, overwrites, deletes, multi-key txns,
//! compare-and-swap txns, compactions and lease revocations, with a model of everything that
//! was acknowledged, checked against the member after every crash.
//!
//! Each writer owns its keys, so the model knows the exact state of each key after each
//! acknowledged operation. The one operation per writer that was in flight when the member died
//! may or may not have taken effect: its keys become *uncertain* (either the state before or the
//! state it would have made) until the next check settles them.

use bytes::Bytes;
use cairn_client::Client;
use cairn_client::cairn_proto::etcdserverpb::{
    CompactionRequest, Compare, DeleteRangeRequest, LeaseGrantRequest, LeaseRevokeRequest,
    LeaseTimeToLiveRequest, PutRequest, RangeRequest, RequestOp, StatusRequest, TxnRequest,
    compare::{CompareResult, CompareTarget, TargetUnion},
    request_op,
};
use cairn_lossyfs::SplitMix;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A key's value and the revision it was written at.
pub type Version = (Bytes, i64);

#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyState {
    Known(Option<Version>),
    /// An unacknowledged operation would have made the key `after` (a value, or gone).
    Uncertain {
        before: Option<Version>,
        after: Option<Bytes>,
    },
}

#[derive(Default)]
struct Model {
    keys: BTreeMap<Bytes, KeyState>,
    /// The highest compaction revision acknowledged.
    compacted: i64,
    /// Leases whose revocation was acknowledged.
    revoked: BTreeSet<i64>,
    /// The highest revision any acknowledged operation reported.
    max_revision: i64,
}

impl Model {
    fn known(&self, key: &Bytes) -> Option<Version> {
        match self.keys.get(key) {
            Some(KeyState::Known(v)) => v.clone(),
            // Only the writer that owns a key touches it, and it stops after an unacknowledged
            // operation: an uncertain key is never read before the next check.
            Some(KeyState::Uncertain { before, .. }) => before.clone(),
            None => None,
        }
    }
}

/// The shared model plus what the writers need to tell a crash from a bug.
#[derive(Clone, Default)]
pub struct Workload {
    model: Arc<Mutex<Model>>,
    /// Set just before the member is killed: an error after it is expected, before it a bug.
    killing: Arc<AtomicBool>,
    acknowledged: Arc<AtomicUsize>,
}

enum Op {
    Put(Bytes, Bytes),
    Delete(Bytes),
    /// Two keys in one revision.
    Pair(Bytes, Bytes, Bytes),
    /// Overwrite only if the key is still at the revision the model knows.
    Cas(Bytes, Bytes, i64),
    Compact,
    /// Grant a lease, attach a key, revoke the lease (its key goes with it).
    LeaseCycle(Bytes, Bytes),
}

impl Workload {
    pub fn new() -> Workload {
        Workload::default()
    }

    /// Operations acknowledged so far.
    pub fn acknowledged(&self) -> usize {
        self.acknowledged.load(Ordering::Relaxed)
    }

    /// Call right before killing the member.
    pub fn killing(&self) {
        self.killing.store(true, Ordering::SeqCst);
    }

    /// Call before starting the writers of a round.
    pub fn start_round(&self) {
        self.killing.store(false, Ordering::SeqCst);
    }

    /// Runs one writer until the member goes away. `writer` picks the key space.
    pub async fn writer(self, endpoint: String, writer: usize, seed: u64) {
        let Ok(c) = Client::connect(&[endpoint], Duration::from_secs(2)).await else {
            assert!(
                self.killing.load(Ordering::SeqCst),
                "writer {writer} could not connect"
            );
            return;
        };
        let mut rng = SplitMix::new(seed ^ (writer as u64).wrapping_mul(0x9E37_79B9));
        for i in 0u64.. {
            let key = |k: u64| Bytes::from(format!("c/{writer:02}/{k:02}"));
            let value = Bytes::from(format!("w{writer}-op{i}-{}", rng.next_u64()));
            let op = match rng.below(100) {
                0..40 => Op::Put(key(rng.below(12)), value),
                40..55 => Op::Delete(key(rng.below(12))),
                55..75 => Op::Pair(key(rng.below(6)), key(6 + rng.below(6)), value),
                75..88 => {
                    let k = key(rng.below(12));
                    let rev = self.model.lock().unwrap().known(&k).map_or(0, |v| v.1);
                    Op::Cas(k, value, rev)
                }
                88..92 if writer == 0 => Op::Compact,
                // A key no earlier round used: `uncertain` takes an existing lease key for
                // this cycle's own put (a round's op numbers start again at 0, and a key whose
                // revocation a crash lost outlives its round).
                _ => Op::LeaseCycle(
                    Bytes::from(format!("c/{writer:02}/lease{seed:x}-{i}")),
                    value,
                ),
            };
            if let Err(e) = self.apply(&c, &op).await {
                assert!(
                    self.killing.load(Ordering::SeqCst),
                    "writer {writer}: an operation failed while the member was up: {e}"
                );
                self.uncertain(&op);
                return;
            }
            self.acknowledged.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Runs `op` and records its acknowledged effect in the model.
    async fn apply(&self, c: &Client, op: &Op) -> Result<(), String> {
        let mut kv = c.kv();
        let err = |e: tonic::Status| e.to_string();
        match op {
            Op::Put(k, v) => {
                let r = kv.put(put(k, v, 0)).await.map_err(err)?.into_inner();
                self.set(
                    k,
                    Some((v.clone(), revision(&r.header))),
                    revision(&r.header),
                );
            }
            Op::Delete(k) => {
                let r = kv
                    .delete_range(DeleteRangeRequest {
                        key: k.clone(),
                        ..Default::default()
                    })
                    .await
                    .map_err(err)?
                    .into_inner();
                self.set(k, None, revision(&r.header));
            }
            Op::Pair(a, b, v) => {
                let r = kv
                    .txn(TxnRequest {
                        compare: vec![],
                        success: vec![put_op(a, v), put_op(b, v)],
                        failure: vec![],
                    })
                    .await
                    .map_err(err)?
                    .into_inner();
                let rev = revision(&r.header);
                self.set(a, Some((v.clone(), rev)), rev);
                self.set(b, Some((v.clone(), rev)), rev);
            }
            Op::Cas(k, v, expected) => {
                let r = kv
                    .txn(TxnRequest {
                        compare: vec![Compare {
                            key: k.clone(),
                            target: CompareTarget::Mod as i32,
                            result: CompareResult::Equal as i32,
                            target_union: Some(TargetUnion::ModRevision(*expected)),
                            ..Default::default()
                        }],
                        success: vec![put_op(k, v)],
                        failure: vec![],
                    })
                    .await
                    .map_err(err)?
                    .into_inner();
                // Only this writer changes the key, so the compare must hold.
                assert!(r.succeeded, "compare on {k:?} at {expected} failed");
                let rev = revision(&r.header);
                self.set(k, Some((v.clone(), rev)), rev);
            }
            Op::Compact => {
                let status = c
                    .maintenance()
                    .status(StatusRequest {})
                    .await
                    .map_err(err)?
                    .into_inner();
                let at = revision(&status.header) - 3;
                if at > self.model.lock().unwrap().compacted {
                    kv.compact(CompactionRequest {
                        revision: at,
                        physical: false,
                    })
                    .await
                    .map_err(err)?;
                    let mut m = self.model.lock().unwrap();
                    m.compacted = m.compacted.max(at);
                }
            }
            Op::LeaseCycle(k, v) => {
                let lease = c
                    .lease()
                    .lease_grant(LeaseGrantRequest { ttl: 600, id: 0 })
                    .await
                    .map_err(err)?
                    .into_inner()
                    .id;
                let r = kv.put(put(k, v, lease)).await.map_err(err)?.into_inner();
                self.set(
                    k,
                    Some((v.clone(), revision(&r.header))),
                    revision(&r.header),
                );
                let r = c
                    .lease()
                    .lease_revoke(LeaseRevokeRequest { id: lease })
                    .await
                    .map_err(err)?
                    .into_inner();
                self.set(k, None, revision(&r.header));
                self.model.lock().unwrap().revoked.insert(lease);
            }
        }
        Ok(())
    }

    fn set(&self, key: &Bytes, state: Option<Version>, rev: i64) {
        let mut m = self.model.lock().unwrap();
        m.keys.insert(key.clone(), KeyState::Known(state));
        m.max_revision = m.max_revision.max(rev);
    }

    fn uncertain(&self, op: &Op) {
        let mut m = self.model.lock().unwrap();
        let mark = |m: &mut Model, k: &Bytes, after: Option<Bytes>| {
            let before = m.known(k);
            m.keys
                .insert(k.clone(), KeyState::Uncertain { before, after });
        };
        match op {
            Op::Put(k, v) | Op::Cas(k, v, _) => mark(&mut m, k, Some(v.clone())),
            Op::Delete(k) => mark(&mut m, k, None),
            Op::Pair(a, b, v) => {
                mark(&mut m, a, Some(v.clone()));
                mark(&mut m, b, Some(v.clone()));
            }
            // The key is new. If its put was acknowledged, the revocation was in flight and may
            // have deleted it; otherwise the put itself was and may have written it.
            Op::LeaseCycle(k, v) => {
                let after = match m.known(k) {
                    Some(_) => None,
                    None => Some(v.clone()),
                };
                mark(&mut m, k, after);
            }
            Op::Compact => {}
        }
    }

    /// Checks the member against the model: every acknowledged effect is there, with its
    /// revision; every uncertain key is in one of its two possible states (and is settled to
    /// the one found). Returns the store revision.
    pub async fn check(&self, endpoint: &str, min_revision: i64) -> Result<i64, String> {
        let c = Client::connect(&[endpoint.to_string()], Duration::from_secs(5))
            .await
            .map_err(|e| e.to_string())?;
        let found: BTreeMap<Bytes, Version> = c
            .get_prefix("c/")
            .await
            .map_err(|e| e.to_string())?
            .kvs
            .into_iter()
            .map(|kv| (kv.key, (kv.value, kv.mod_revision)))
            .collect();
        let mut problems = Vec::new();
        let (max_revision, compacted, revoked) = {
            let mut m = self.model.lock().unwrap();
            let mut settled = Vec::new();
            for (k, state) in &m.keys {
                let actual = found.get(k).cloned();
                match state {
                    KeyState::Known(want) => {
                        if &actual != want {
                            problems
                                .push(format!("{k:?}: acknowledged {want:?}, found {actual:?}"));
                        }
                    }
                    KeyState::Uncertain { before, after } => {
                        let as_before = &actual == before;
                        let as_after = match (&actual, after) {
                            (None, None) => true,
                            (Some((v, rev)), Some(want)) => {
                                v == want && *rev > before.as_ref().map_or(0, |b| b.1)
                            }
                            _ => false,
                        };
                        if !(as_before || as_after) {
                            problems.push(format!(
                                "{k:?}: was {before:?} or would become {after:?}, found {actual:?}"
                            ));
                        }
                        settled.push((k.clone(), actual));
                    }
                }
            }
            // Keys nobody acknowledged must not exist.
            for k in found.keys() {
                if !m.keys.contains_key(k) {
                    problems.push(format!("{k:?} exists but was never written"));
                }
            }
            for (k, actual) in settled {
                m.keys.insert(k, KeyState::Known(actual));
            }
            (m.max_revision, m.compacted, m.revoked.clone())
        };
        let status = c
            .maintenance()
            .status(StatusRequest {})
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        let rev = revision(&status.header);
        if rev < max_revision {
            problems.push(format!(
                "store revision {rev} is below acknowledged revision {}",
                max_revision
            ));
        }
        if rev < min_revision {
            problems.push(format!("revision went backwards: {rev} < {min_revision}"));
        }
        if compacted > 1 {
            let below = c
                .kv()
                .range(RangeRequest {
                    key: Bytes::from_static(b"c/"),
                    revision: compacted - 1,
                    ..Default::default()
                })
                .await;
            if below.is_ok() {
                problems.push(format!(
                    "revision {} readable after compaction at {} was acknowledged",
                    compacted - 1,
                    compacted
                ));
            }
        }
        for lease in &revoked {
            let ttl = c
                .lease()
                .lease_time_to_live(LeaseTimeToLiveRequest {
                    id: *lease,
                    keys: false,
                })
                .await
                .map_err(|e| e.to_string())?
                .into_inner()
                .ttl;
            if ttl != -1 {
                problems.push(format!(
                    "lease {lease:x} was revoked but is alive (TTL {ttl})"
                ));
            }
        }
        if problems.is_empty() {
            Ok(rev)
        } else {
            Err(problems.join("\n"))
        }
    }
}

fn revision(h: &Option<cairn_client::cairn_proto::etcdserverpb::ResponseHeader>) -> i64 {
    h.as_ref().map_or(0, |h| h.revision)
}

fn put(k: &Bytes, v: &Bytes, lease: i64) -> PutRequest {
    PutRequest {
        key: k.clone(),
        value: v.clone(),
        lease,
        ..Default::default()
    }
}

fn put_op(k: &Bytes, v: &Bytes) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(put(k, v, 0))),
    }
}
