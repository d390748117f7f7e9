//! Alarms (NOSPACE, CORRUPT) as the log describes them, and the backend quota that raises
//! NOSPACE.
//!
//! Alarms are changed only by applying `InternalRequest.alarm`, so every member refuses the
//! same requests from the same log entry on: with NOSPACE, writes that would grow the backend
//! (puts, transactions that put, lease grants) fail with `etcdserver: mvcc: database space
//! exceeded` while reads, deletes and compaction go on, which is how an operator gets the space
//! back; with CORRUPT, every request that goes through the log fails. They are kept in the
//! backend's meta table with the data they guard, so a restart or a snapshot carries them.

use crate::errors::ServerError;
use cairn_mvcc::{Applier, Store};
use cairn_proto::cairnpb::internal_request::Request;
use cairn_proto::etcdserverpb::{
    AlarmMember, AlarmRequest, AlarmResponse, AlarmType, TxnRequest, alarm_request::AlarmAction,
    request_op,
};
use parking_lot::RwLock;
use prost::Message;
use std::sync::atomic::{AtomicBool, Ordering};

pub(crate) const ALARMS_KEY: &str = "alarms";

/// The stored list of alarms in the backend's meta (a snapshot in etcd's format carries it in
/// a bucket of its own).
pub(crate) fn stored(raw: Option<&[u8]>) -> Result<Vec<AlarmMember>, ServerError> {
    match raw {
        Some(raw) => Ok(AlarmResponse::decode(raw)
            .map_err(|e| ServerError::Internal(format!("stored alarms: {e}")))?
            .alarms),
        None => Ok(Vec::new()),
    }
}

/// The meta name and value that store `list`.
pub(crate) fn to_store(list: Vec<AlarmMember>) -> (&'static str, Vec<u8>) {
    let encoded = AlarmResponse {
        header: None,
        alarms: list,
    }
    .encode_to_vec();
    (ALARMS_KEY, encoded)
}

/// etcd's estimate of what a put adds to the backend beyond its key and value.
const KV_OVERHEAD: u64 = 256;
/// etcd's estimate of what a lease grant adds to the backend.
const LEASE_OVERHEAD: u64 = 64;

#[derive(Default)]
pub(crate) struct Alarms {
    active: RwLock<Vec<AlarmMember>>,
    no_space: AtomicBool,
    corrupt: AtomicBool,
}

impl Alarms {
    pub(crate) fn load(store: &Store) -> Result<Alarms, ServerError> {
        let alarms = Alarms::default();
        alarms.reload(store)?;
        Ok(alarms)
    }

    /// Reads the alarms again (after the backend was replaced by a snapshot).
    pub(crate) fn reload(&self, store: &Store) -> Result<(), ServerError> {
        let list = stored(store.meta(ALARMS_KEY)?.as_deref())?;
        self.publish(list);
        Ok(())
    }

    fn publish(&self, list: Vec<AlarmMember>) {
        let has = |t: AlarmType| list.iter().any(|a| a.alarm == t as i32);
        self.no_space
            .store(has(AlarmType::Nospace), Ordering::Release);
        self.corrupt
            .store(has(AlarmType::Corrupt), Ordering::Release);
        *self.active.write() = list;
    }

    /// Active alarms of `kind` (every alarm for NONE), ordered by member and type.
    pub(crate) fn list(&self, kind: i32) -> Vec<AlarmMember> {
        self.active
            .read()
            .iter()
            .filter(|a| kind == AlarmType::None as i32 || a.alarm == kind)
            .cloned()
            .collect()
    }

    pub(crate) fn is_active(&self, member: u64, kind: AlarmType) -> bool {
        self.active
            .read()
            .iter()
            .any(|a| a.member_id == member && a.alarm == kind as i32)
    }

    /// Applies an alarm change from the log. The answer lists the alarm that was raised (or
    /// was already raised) or cleared; clearing one that is not raised lists nothing.
    pub(crate) fn apply(
        &self,
        a: &mut Applier<'_>,
        req: &AlarmRequest,
    ) -> Result<AlarmResponse, ServerError> {
        let mut list = self.active.read().clone();
        let member = AlarmMember {
            member_id: req.member_id,
            alarm: req.alarm,
        };
        let mut answer = Vec::new();
        match AlarmAction::try_from(req.action) {
            Ok(AlarmAction::Get) => answer = self.list(req.alarm),
            Ok(AlarmAction::Activate) if req.alarm != AlarmType::None as i32 => {
                if !list.contains(&member) {
                    list.push(member);
                    list.sort_by_key(|m| (m.member_id, m.alarm));
                    tracing::warn!(member = format!("{:x}", req.member_id), alarm = ?AlarmType::try_from(req.alarm).unwrap_or(AlarmType::None), "alarm raised");
                }
                answer.push(member);
            }
            Ok(AlarmAction::Deactivate) => {
                if let Some(at) = list.iter().position(|m| *m == member) {
                    list.remove(at);
                    answer.push(member);
                    tracing::warn!(member = format!("{:x}", req.member_id), alarm = ?AlarmType::try_from(req.alarm).unwrap_or(AlarmType::None), "alarm cleared");
                }
            }
            _ => {}
        }
        if list != *self.active.read() {
            let (name, encoded) = to_store(list.clone());
            a.put_meta(name, &encoded)?;
            self.publish(list);
        }
        Ok(AlarmResponse {
            header: None,
            alarms: answer,
        })
    }

    /// Whether an active alarm refuses `request` at apply time, and with which error.
    pub(crate) fn refuses(&self, request: &Request) -> Option<ServerError> {
        if self.corrupt.load(Ordering::Acquire) && !matches!(request, Request::Alarm(_)) {
            return Some(ServerError::Corrupt);
        }
        if self.no_space.load(Ordering::Acquire) && cost(request) > 0 {
            return Some(ServerError::NoSpace);
        }
        None
    }
}

/// A new bbolt file (etcd's backend): 6 pages of 4 KiB. etcd's users (and its own tests) size
/// small quotas from there.
const EMPTY_BBOLT_BYTES: u64 = 6 * 4096;

/// The backend size the quota is held against: the file's size less what an empty Cairn
/// backend takes beyond an empty bbolt file, so that a quota etcd's data fits in fits Cairn's.
pub(crate) fn charged_size(db_size: u64) -> u64 {
    let fixed_overhead = cairn_mvcc::EMPTY_BACKEND_BYTES.saturating_sub(EMPTY_BBOLT_BYTES);
    db_size.saturating_sub(fixed_overhead)
}

/// etcd's estimate of how many bytes a request adds to the backend: 0 for anything that does
/// not put (deletes, compaction and read-only transactions always pass the quota).
pub(crate) fn cost(request: &Request) -> u64 {
    match request {
        Request::Put(p) => put_cost(p),
        Request::Txn(t) => txn_cost(t),
        Request::LeaseGrant(_) => LEASE_OVERHEAD,
        _ => 0,
    }
}

fn put_cost(p: &cairn_proto::etcdserverpb::PutRequest) -> u64 {
    KV_OVERHEAD + p.key.len() as u64 + p.value.len() as u64
}

/// A transaction costs its costlier branch.
fn txn_cost(t: &TxnRequest) -> u64 {
    let branch = |ops: &[cairn_proto::etcdserverpb::RequestOp]| -> u64 {
        ops.iter()
            .map(|op| match &op.request {
                Some(request_op::Request::RequestPut(p)) => put_cost(p),
                Some(request_op::Request::RequestTxn(t)) => txn_cost(t),
                _ => 0,
            })
            .sum()
    };
    branch(&t.success).max(branch(&t.failure))
}

/// The text etcd gives an alarm in Status errors and `alarm list` (protobuf's compact text).
pub(crate) fn describe(a: &AlarmMember) -> String {
    let kind = AlarmType::try_from(a.alarm)
        .map(|t| t.as_str_name())
        .unwrap_or("NONE");
    format!("memberID:{} alarm:{kind} ", a.member_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::etcdserverpb::{PutRequest, RequestOp};

    #[test]
    fn only_writes_that_grow_the_backend_cost_anything() {
        let put = |k: &str, v: &str| PutRequest {
            key: k.as_bytes().to_vec().into(),
            value: v.as_bytes().to_vec().into(),
            ..Default::default()
        };
        assert_eq!(cost(&Request::Put(put("ab", "cde"))), 256 + 5);
        let op = |p| RequestOp {
            request: Some(request_op::Request::RequestPut(p)),
        };
        let txn = TxnRequest {
            success: vec![op(put("a", "b")), op(put("c", "d"))],
            failure: vec![op(put(
                "a",
                "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
            ))],
            ..Default::default()
        };
        // The costlier branch: two small puts outweigh one larger one.
        assert_eq!(cost(&Request::Txn(txn)), 2 * (256 + 2));
        assert_eq!(cost(&Request::Txn(TxnRequest::default())), 0);
        assert_eq!(
            cost(&Request::DeleteRange(Default::default())),
            0,
            "deletes free space"
        );
    }

    #[test]
    fn described_as_etcd_prints_it() {
        let a = AlarmMember {
            member_id: 10276657743932975437,
            alarm: AlarmType::Nospace as i32,
        };
        assert_eq!(describe(&a), "memberID:10276657743932975437 alarm:NOSPACE ");
    }
}
