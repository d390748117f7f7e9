//! etcd's KV semantics over the key index and the backend tables.

use crate::buffer::KvSource;
use crate::index::{History, Revision};
use crate::watch::{Hub, WatchEvent};
use crate::{
    KIND_PUT, KIND_TOMBSTONE, MvccError, Result, State, Store, WriteGuard, decode_record,
    encode_record, make_event,
};
use bytes::Bytes;
use cairn_proto::etcdserverpb::{
    Compare, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse, RangeRequest,
    RangeResponse, RequestOp, ResponseHeader, ResponseOp, TxnRequest, TxnResponse,
    compare::{CompareResult, CompareTarget, TargetUnion},
    range_request::{SortOrder, SortTarget},
    request_op, response_op,
};
use cairn_proto::mvccpb::KeyValue;
use parking_lot::Mutex;
use redb::ReadOnlyTable;
use std::cell::OnceCell;
use std::cmp::Ordering;

/// What a compaction removed, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactOutcome {
    pub removed_revisions: usize,
}

fn header(rev: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision: rev,
        ..Default::default()
    })
}

pub(crate) fn fetch(source: &KvSource<'_>, rev: Revision) -> Result<KeyValue> {
    source
        .get(rev.to_key(), |raw| decode_put(rev, raw))?
        .ok_or_else(|| missing(rev))?
}

fn missing(rev: Revision) -> MvccError {
    MvccError::Corrupt {
        rev,
        reason: "revision in index but not in backend".into(),
    }
}

/// Decodes the record of a live revision (a put, never a tombstone).
fn decode_put(rev: Revision, raw: &[u8]) -> Result<KeyValue> {
    let (kind, kv) = decode_record(rev, raw)?;
    if kind != KIND_PUT {
        return Err(MvccError::Corrupt {
            rev,
            reason: "index points at a tombstone".into(),
        });
    }
    Ok(kv)
}

pub(crate) fn read_revision(state: &State, current: i64, requested: i64) -> Result<i64> {
    if requested > current {
        return Err(MvccError::FutureRevision);
    }
    let rev = if requested <= 0 { current } else { requested };
    if rev < state.compacted {
        return Err(MvccError::Compacted);
    }
    Ok(rev)
}

/// A stretch of a Range read from the key index and the in-memory layers under the state lock;
/// [`read_records`] and [`shape_range`] do the rest (backend reads, decoding, sorting) without
/// it.
pub(crate) struct RangeChunk {
    /// Keys visible at the read revision in this stretch.
    pub(crate) count: i64,
    /// Revisions to read, in key order, each with its record when that is in memory.
    pub(crate) records: Vec<(Revision, Option<Bytes>)>,
    /// Where the next stretch starts (after this key), if the range goes on.
    pub(crate) resume_after: Option<Bytes>,
    /// Keys answered from the index alone (see [`from_index`]), in key order; when they are,
    /// `records` is empty.
    pub(crate) kvs: Vec<KeyValue>,
}

/// Whether a Range at revision `rev` is answered from the key index without reading records:
/// keys-only at the current revision (the index knows every live key's revisions, version and
/// lease, as etcd 3.7 answers such reads from its index), unless values decide the order.
pub(crate) fn from_index(req: &RangeRequest, rev: i64, current: i64) -> bool {
    req.keys_only
        && !req.count_only
        && rev == current
        // Sorting by value needs the values (a value target is always sorted: see answer_order).
        && answer_order(req).0 != SortTarget::Value
}

/// How many values a Range reads: without sorting or filtering, only limit + 1 (the extra one
/// sets `more`).
pub(crate) fn fetch_limit(req: &RangeRequest) -> usize {
    if req.count_only {
        0
    } else if req.limit > 0 && !sorts_or_filters(req) {
        req.limit as usize + 1
    } else {
        usize::MAX
    }
}

/// Walks at most `max_keys` keys of `req`'s range at revision `rev` (after `after`, if given),
/// noting at most `room` revisions to read.
pub(crate) fn plan_chunk(
    state: &State,
    source: &KvSource<'_>,
    rev: i64,
    req: &RangeRequest,
    after: Option<&[u8]>,
    max_keys: usize,
    room: usize,
) -> RangeChunk {
    let keys = match after {
        None => state.index.range(&req.key, &req.range_end),
        Some(a) => state.index.range_after(&req.key, &req.range_end, a),
    };
    let lowest_in_memory = source.lowest_in_memory();
    let mut chunk = RangeChunk {
        count: 0,
        records: Vec::new(),
        resume_after: None,
        kvs: Vec::new(),
    };
    let index_only = from_index(req, rev, state.current);
    let mut last: Option<&[u8]> = None;
    for (walked, (key, history)) in keys.enumerate() {
        if walked == max_keys {
            // Resume after the last key walked, which is where this one starts.
            chunk.resume_after = last.map(Bytes::copy_from_slice);
            break;
        }
        last = Some(key);
        let Some(r) = history.visible_at(rev) else {
            continue;
        };
        chunk.count += 1;
        if index_only {
            if chunk.kvs.len() < room
                && let Some((at, create, version, lease)) = history.live_meta()
            {
                chunk.kvs.push(KeyValue {
                    key: Bytes::copy_from_slice(key),
                    create_revision: create,
                    mod_revision: at.main,
                    version,
                    value: Bytes::new(),
                    lease,
                });
            }
            continue;
        }
        if chunk.records.len() < room {
            let at = r.to_key();
            let memory = if at >= lowest_in_memory {
                source.memory_get(at)
            } else {
                None
            };
            chunk.records.push((r, memory));
        }
    }
    chunk
}

fn sorts_or_filters(req: &RangeRequest) -> bool {
    SortOrder::try_from(req.sort_order).unwrap_or(SortOrder::None) != SortOrder::None
        || filters(req)
}

fn filters(req: &RangeRequest) -> bool {
    req.min_mod_revision != 0
        || req.max_mod_revision != 0
        || req.min_create_revision != 0
        || req.max_create_revision != 0
}

/// Reads the records a chunk noted: from memory where it kept them, otherwise from `table` (a
/// backend snapshot opened under the same lock as the chunk was planned).
pub(crate) fn read_records(
    records: Vec<(Revision, Option<Bytes>)>,
    table: &ReadOnlyTable<u128, &'static [u8]>,
    out: &mut Vec<KeyValue>,
) -> Result<()> {
    out.reserve(records.len());
    for (rev, memory) in records {
        out.push(match memory {
            Some(raw) => decode_put(rev, &raw)?,
            None => {
                let raw = table
                    .get(rev.to_key())
                    .map_err(MvccError::backend)?
                    .ok_or_else(|| missing(rev))?;
                decode_put(rev, raw.value())?
            }
        });
    }
    Ok(())
}

/// A Range answer whose key-values are the encoded `mvccpb.KeyValue` messages as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRange {
    pub revision: i64,
    pub kvs: Vec<Bytes>,
    pub more: bool,
    pub count: i64,
}

/// Whether a Range can be answered with stored records as they are: nothing filtered or
/// stripped, and in key order (ascending or descending).
pub(crate) fn raw_answerable(req: &RangeRequest) -> bool {
    !filters(req)
        && !req.keys_only
        && matches!(
            answer_order(req),
            (_, SortOrder::None) | (SortTarget::Key, SortOrder::Descend)
        )
}

/// The order etcd answers in: results come in key order; etcd sorts ascending by default for
/// non-key targets and never re-sorts for (KEY, ASCEND).
fn answer_order(req: &RangeRequest) -> (SortTarget, SortOrder) {
    let sort_order = SortOrder::try_from(req.sort_order).unwrap_or(SortOrder::None);
    let sort_target = SortTarget::try_from(req.sort_target).unwrap_or(SortTarget::Key);
    let order = match (sort_target, sort_order) {
        (SortTarget::Key, SortOrder::Ascend) => SortOrder::None,
        (t, SortOrder::None) if t != SortTarget::Key => SortOrder::Ascend,
        (_, o) => o,
    };
    (sort_target, order)
}

/// Like [`read_records`], keeping each record's encoded key-value as it is.
pub(crate) fn read_raw(
    records: Vec<(Revision, Option<Bytes>)>,
    table: &ReadOnlyTable<u128, &'static [u8]>,
    out: &mut Vec<Bytes>,
) -> Result<()> {
    out.reserve(records.len());
    for (rev, memory) in records {
        let record = match memory {
            Some(raw) => raw,
            None => {
                let raw = table
                    .get(rev.to_key())
                    .map_err(MvccError::backend)?
                    .ok_or_else(|| missing(rev))?;
                Bytes::copy_from_slice(raw.value())
            }
        };
        match record.first() {
            Some(&KIND_PUT) => out.push(record.slice(1..)),
            _ => {
                return Err(MvccError::Corrupt {
                    rev,
                    reason: "index points at a tombstone or an empty record".into(),
                });
            }
        }
    }
    Ok(())
}

/// [`shape_range`] for raw answers: only key order and the limit apply.
pub(crate) fn shape_raw(
    mut kvs: Vec<Bytes>,
    count: i64,
    current: i64,
    req: &RangeRequest,
) -> RawRange {
    if req.count_only {
        kvs.clear();
    } else if answer_order(req).1 == SortOrder::Descend {
        kvs.reverse();
    }
    let mut more = false;
    if req.limit > 0 && kvs.len() > req.limit as usize {
        kvs.truncate(req.limit as usize);
        more = true;
    }
    RawRange {
        revision: current,
        kvs,
        more,
        count,
    }
}

/// etcd's Range, last step: filters, sorts and limits what was read.
pub(crate) fn shape_range(
    mut kvs: Vec<KeyValue>,
    count: i64,
    current: i64,
    req: &RangeRequest,
) -> RangeResponse {
    if req.count_only {
        return RangeResponse {
            header: header(current),
            kvs: Vec::new(),
            more: false,
            count,
        };
    }
    if filters(req) {
        kvs.retain(|kv| {
            (req.min_mod_revision == 0 || kv.mod_revision >= req.min_mod_revision)
                && (req.max_mod_revision == 0 || kv.mod_revision <= req.max_mod_revision)
                && (req.min_create_revision == 0 || kv.create_revision >= req.min_create_revision)
                && (req.max_create_revision == 0 || kv.create_revision <= req.max_create_revision)
        });
    }
    let (sort_target, order) = answer_order(req);
    if order != SortOrder::None {
        let cmp = |a: &KeyValue, b: &KeyValue| -> Ordering {
            match sort_target {
                SortTarget::Key => a.key.cmp(&b.key),
                SortTarget::Version => a.version.cmp(&b.version),
                SortTarget::Create => a.create_revision.cmp(&b.create_revision),
                SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
                SortTarget::Value => a.value.cmp(&b.value),
            }
        };
        // Stable sorts keep key order among equal targets, as etcd's sort does.
        if order == SortOrder::Descend {
            kvs.sort_by(|a, b| cmp(b, a));
        } else {
            kvs.sort_by(cmp);
        }
    }
    let mut more = false;
    if req.limit > 0 && kvs.len() > req.limit as usize {
        kvs.truncate(req.limit as usize);
        more = true;
    }
    if req.keys_only {
        for kv in &mut kvs {
            kv.value = Bytes::new();
        }
    }
    RangeResponse {
        header: header(current),
        kvs,
        more,
        count,
    }
}

/// Whether every compare of `c`'s range holds at revision `rev`.
fn compare_at(state: &State, source: &KvSource<'_>, rev: i64, c: &Compare) -> Result<bool> {
    let revs: Vec<Revision> = state
        .index
        .range(&c.key, &c.range_end)
        .filter_map(|(_, h)| h.visible_at(rev))
        .collect();
    let target = CompareTarget::try_from(c.target).unwrap_or(CompareTarget::Version);
    if revs.is_empty() {
        if target == CompareTarget::Value {
            return Ok(false);
        }
        return Ok(compare_kv(c, target, &KeyValue::default()));
    }
    for r in revs {
        if !compare_kv(c, target, &fetch(source, r)?) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether a txn only reads, on both branches and in every nested txn (etcd's isTxnReadonly):
/// such a txn is served like a range, without a log entry.
pub fn txn_is_read_only(req: &TxnRequest) -> bool {
    req.success
        .iter()
        .chain(&req.failure)
        .all(|op| match &op.request {
            Some(request_op::Request::RequestRange(_)) | None => true,
            Some(request_op::Request::RequestTxn(t)) => txn_is_read_only(t),
            _ => false,
        })
}

/// Whether every range of a read-only txn is serializable (etcd's isTxnSerializable).
pub fn txn_is_serializable(req: &TxnRequest) -> bool {
    req.success
        .iter()
        .chain(&req.failure)
        .all(|op| match &op.request {
            Some(request_op::Request::RequestRange(r)) => r.serializable,
            Some(request_op::Request::RequestTxn(t)) => txn_is_serializable(t),
            _ => true,
        })
}

/// Runs a read-only txn on one consistent view at `current`.
pub(crate) fn read_only_txn(
    state: &State,
    source: &KvSource<'_>,
    current: i64,
    req: &TxnRequest,
) -> Result<TxnResponse> {
    let mut ok = true;
    for c in &req.compare {
        if !compare_at(state, source, current, c)? {
            ok = false;
            break;
        }
    }
    let mut responses = Vec::new();
    for op in if ok { &req.success } else { &req.failure } {
        let response = match &op.request {
            Some(request_op::Request::RequestRange(r)) => {
                response_op::Response::ResponseRange(range(state, source, current, r)?)
            }
            Some(request_op::Request::RequestTxn(t)) => {
                response_op::Response::ResponseTxn(read_only_txn(state, source, current, t)?)
            }
            Some(_) => {
                return Err(MvccError::Backend(
                    "a txn with writes was served as read-only".into(),
                ));
            }
            None => continue,
        };
        responses.push(ResponseOp {
            response: Some(response),
        });
    }
    let mut resp = TxnResponse {
        header: None,
        succeeded: ok,
        responses,
    };
    set_headers(&mut resp, current);
    Ok(resp)
}

/// etcd's Range in one go, for reads that already hold the state lock (inside a txn).
/// `current` is the revision a read "now" sees (inside a writing txn it includes the txn's own
/// writes).
pub(crate) fn range(
    state: &State,
    source: &KvSource<'_>,
    current: i64,
    req: &RangeRequest,
) -> Result<RangeResponse> {
    let rev = read_revision(state, current, req.revision)?;
    let chunk = plan_chunk(state, source, rev, req, None, usize::MAX, fetch_limit(req));
    let mut kvs = chunk.kvs;
    read_records(chunk.records, source.table, &mut kvs)?;
    Ok(shape_range(kvs, chunk.count, current, req))
}

/// Applies a batch of writes to the in-memory state; the store writes them back to the backend
/// later (see [`crate::buffer`]).
pub struct Applier<'a> {
    store: &'a Store,
    state: WriteGuard<'a>,
    /// A backend snapshot for reads the batch makes, opened on first use.
    table: OnceCell<ReadOnlyTable<u128, &'static [u8]>>,
    /// Subrevision counter of the write request being applied; > 0 means it wrote something.
    sub: i64,
    hub: &'a Mutex<Hub>,
    /// Changes of this batch, in revision order, for the watchers.
    events: Vec<WatchEvent>,
    /// Whether a lease id exists; puts naming another lease fail with `LeaseNotFound`.
    lease_exists: Option<Box<dyn Fn(i64) -> bool + 'a>>,
}

impl<'a> Applier<'a> {
    pub(crate) fn new(store: &'a Store, state: WriteGuard<'a>, hub: &'a Mutex<Hub>) -> Self {
        Applier {
            store,
            state,
            table: OnceCell::new(),
            sub: 0,
            hub,
            events: Vec::new(),
            lease_exists: None,
        }
    }

    /// Makes puts (also inside txns) check that their lease exists.
    pub fn set_lease_check(&mut self, exists: impl Fn(i64) -> bool + 'a) {
        self.lease_exists = Some(Box::new(exists));
    }

    /// Changes applied so far in this batch, in revision order.
    pub fn events(&self) -> &[WatchEvent] {
        &self.events
    }

    /// Stores a lease record with the batch.
    pub fn put_lease(&mut self, id: i64, record: &[u8]) -> Result<()> {
        self.state
            .pending
            .put_lease(id, Some(Bytes::copy_from_slice(record)));
        Ok(())
    }

    pub fn delete_lease(&mut self, id: i64) -> Result<()> {
        self.state.pending.put_lease(id, None);
        Ok(())
    }

    fn source(&self) -> Result<KvSource<'_>> {
        let table = match self.table.get() {
            Some(t) => t,
            None => {
                let t = self.store.kv_table()?;
                self.table.get_or_init(|| t)
            }
        };
        Ok(self.state.source(table))
    }

    /// Deletes the given keys (those that exist) in one new revision, as a lease revocation does.
    pub fn delete_keys(&mut self, keys: &[Bytes]) -> Result<DeleteRangeResponse> {
        let mut deleted = 0;
        for key in keys {
            let resp = self.do_delete(&DeleteRangeRequest {
                key: key.clone(),
                ..Default::default()
            })?;
            deleted += resp.deleted;
        }
        self.finish_request();
        Ok(DeleteRangeResponse {
            header: header(self.state.current),
            deleted,
            prev_kvs: Vec::new(),
        })
    }

    /// The store revision (including requests applied earlier in this batch).
    pub fn revision(&self) -> i64 {
        self.state.current
    }

    /// The revision reads see right now: the txn's own writes are visible.
    fn read_rev(&self) -> i64 {
        self.state.current + i64::from(self.sub > 0)
    }

    fn write_rev(&mut self) -> Revision {
        let rev = Revision::new(self.state.current + 1, self.sub);
        self.sub += 1;
        rev
    }

    /// Ends one write request: a request that wrote anything takes a new store revision.
    fn finish_request(&mut self) {
        if self.sub > 0 {
            self.state.current += 1;
            self.sub = 0;
        }
    }

    fn live_kv(&self, key: &[u8]) -> Result<Option<KeyValue>> {
        let Some(rev) = self.state.index.get(key).and_then(History::live) else {
            return Ok(None);
        };
        fetch(&self.source()?, rev).map(Some)
    }

    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse> {
        range(&self.state, &self.source()?, self.read_rev(), req)
    }

    fn check_put(&self, req: &PutRequest) -> Result<()> {
        if (req.ignore_value || req.ignore_lease)
            && self
                .state
                .index
                .get(&req.key)
                .and_then(History::live)
                .is_none()
        {
            return Err(MvccError::KeyNotFound);
        }
        if req.lease != 0
            && let Some(exists) = &self.lease_exists
            && !exists(req.lease)
        {
            return Err(MvccError::LeaseNotFound);
        }
        Ok(())
    }

    fn do_put(&mut self, req: &PutRequest) -> Result<PutResponse> {
        let prev = if req.prev_kv || req.ignore_value || req.ignore_lease {
            self.live_kv(&req.key)?
        } else {
            None
        };
        let rev = self.write_rev();
        let hist = self.state.index.get(&req.key);
        let prev_rev = hist.and_then(History::live);
        let (create, version) = hist.map_or((rev.main, 1), |h| h.next_put(rev.main));
        let kv = KeyValue {
            key: req.key.clone(),
            create_revision: create,
            mod_revision: rev.main,
            version,
            value: match (&prev, req.ignore_value) {
                (Some(p), true) => p.value.clone(),
                _ => req.value.clone(),
            },
            lease: match (&prev, req.ignore_lease) {
                (Some(p), true) => p.lease,
                _ => req.lease,
            },
        };
        self.state
            .pending
            .put_kv(rev.to_key(), Bytes::from(encode_record(KIND_PUT, &kv)));
        self.state
            .index
            .update(&req.key, |h| h.record_put(rev, create, version, kv.lease));
        self.events.push(make_event(true, kv, rev, prev_rev));
        Ok(PutResponse {
            header: None,
            prev_kv: if req.prev_kv { prev } else { None },
        })
    }

    fn do_delete(&mut self, req: &DeleteRangeRequest) -> Result<DeleteRangeResponse> {
        let live: Vec<(Bytes, Revision)> = self
            .state
            .index
            .range(&req.key, &req.range_end)
            .filter_map(|(k, h)| h.live().map(|r| (Bytes::copy_from_slice(k), r)))
            .collect();
        let mut prev_kvs = Vec::new();
        for (key, old) in &live {
            if req.prev_kv {
                prev_kvs.push(fetch(&self.source()?, *old)?);
            }
            let rev = self.write_rev();
            let tomb = KeyValue {
                key: key.clone(),
                mod_revision: rev.main,
                ..Default::default()
            };
            self.state.pending.put_kv(
                rev.to_key(),
                Bytes::from(encode_record(KIND_TOMBSTONE, &tomb)),
            );
            self.state.index.update(key, |h| h.record_delete(rev));
            self.events.push(make_event(false, tomb, rev, Some(*old)));
        }
        Ok(DeleteRangeResponse {
            header: None,
            deleted: live.len() as i64,
            prev_kvs,
        })
    }

    /// Put as a request of its own.
    pub fn put(&mut self, req: &PutRequest) -> Result<PutResponse> {
        self.check_put(req)?;
        let mut resp = self.do_put(req)?;
        self.finish_request();
        resp.header = header(self.state.current);
        Ok(resp)
    }

    /// DeleteRange as a request of its own; deleting nothing does not bump the revision.
    pub fn delete_range(&mut self, req: &DeleteRangeRequest) -> Result<DeleteRangeResponse> {
        let mut resp = self.do_delete(req)?;
        self.finish_request();
        resp.header = header(self.state.current);
        Ok(resp)
    }

    fn compare(&self, c: &Compare) -> Result<bool> {
        compare_at(&self.state, &self.source()?, self.read_rev(), c)
    }

    /// Evaluates every compare on the path the txn will take (nested txns included) before
    /// anything is written, as etcd does.
    fn txn_path(&self, req: &TxnRequest, path: &mut Vec<bool>) -> Result<()> {
        let mut ok = true;
        for c in &req.compare {
            if !self.compare(c)? {
                ok = false;
                break;
            }
        }
        path.push(ok);
        let ops = if ok { &req.success } else { &req.failure };
        for op in ops {
            if let Some(request_op::Request::RequestTxn(t)) = &op.request {
                self.txn_path(t, path)?;
            }
        }
        Ok(())
    }

    fn check_ops(&self, req: &TxnRequest, path: &[bool], at: &mut usize) -> Result<()> {
        let ok = path.get(*at).copied().unwrap_or(false);
        *at += 1;
        for op in if ok { &req.success } else { &req.failure } {
            match &op.request {
                Some(request_op::Request::RequestPut(p)) => self.check_put(p)?,
                Some(request_op::Request::RequestRange(r)) => {
                    read_revision(&self.state, self.state.current, r.revision)?;
                }
                Some(request_op::Request::RequestTxn(t)) => self.check_ops(t, path, at)?,
                Some(request_op::Request::RequestDeleteRange(_)) | None => {}
            }
        }
        Ok(())
    }

    fn exec_txn(&mut self, req: &TxnRequest, path: &[bool], at: &mut usize) -> Result<TxnResponse> {
        let ok = path.get(*at).copied().unwrap_or(false);
        *at += 1;
        let ops: &[RequestOp] = if ok { &req.success } else { &req.failure };
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            let response = match &op.request {
                Some(request_op::Request::RequestRange(r)) => {
                    response_op::Response::ResponseRange(self.range(r)?)
                }
                Some(request_op::Request::RequestPut(p)) => {
                    response_op::Response::ResponsePut(self.do_put(p)?)
                }
                Some(request_op::Request::RequestDeleteRange(d)) => {
                    response_op::Response::ResponseDeleteRange(self.do_delete(d)?)
                }
                Some(request_op::Request::RequestTxn(t)) => {
                    response_op::Response::ResponseTxn(self.exec_txn(t, path, at)?)
                }
                None => continue,
            };
            responses.push(ResponseOp {
                response: Some(response),
            });
        }
        Ok(TxnResponse {
            header: None,
            succeeded: ok,
            responses,
        })
    }

    /// Txn: all-or-nothing; every write in it shares one new revision.
    pub fn txn(&mut self, req: &TxnRequest) -> Result<TxnResponse> {
        let mut path = Vec::new();
        self.txn_path(req, &mut path)?;
        self.check_ops(req, &path, &mut 0)?;
        let mut resp = self.exec_txn(req, &path, &mut 0)?;
        self.finish_request();
        let rev = self.state.current;
        set_headers(&mut resp, rev);
        Ok(resp)
    }

    /// Compacts history at `rev`: afterwards reads below `rev` fail with `Compacted`.
    pub fn compact(&mut self, rev: i64) -> Result<CompactOutcome> {
        if rev <= self.state.compacted {
            return Err(MvccError::Compacted);
        }
        if rev > self.state.current {
            return Err(MvccError::FutureRevision);
        }
        let removed = self.state.index.compact(rev);
        for r in &removed {
            self.state.pending.remove_kv(r.to_key());
        }
        self.state.compacted = rev;
        Ok(CompactOutcome {
            removed_revisions: removed.len(),
        })
    }

    /// Stores a named value in the backend's meta table with this batch.
    pub fn put_meta(&mut self, name: &str, value: &[u8]) -> Result<()> {
        self.state
            .pending
            .put_meta(name, Bytes::copy_from_slice(value));
        Ok(())
    }

    /// Records that the batch covers the Raft log up to `index` and publishes it to readers and
    /// watchers. The backend gets it at the next write-back ([`Store::write_back_if_due`], which
    /// the store's owner schedules); with `durable`, that happens now and everything applied so
    /// far is on disk when this returns.
    pub fn commit(mut self, index: u64, term: u64, durable: bool) -> Result<()> {
        self.state.consistent_index = self.state.consistent_index.max(index);
        self.state.term = self.state.term.max(term);
        // Still under the write lock: no reader or watcher can see a revision before its events
        // have been offered to the synced watchers.
        if !self.events.is_empty() {
            self.hub.lock().notify(&self.events, self.state.current);
        }
        let store = self.store;
        drop(self);
        if durable { store.flush() } else { Ok(()) }
    }
}

fn set_headers(resp: &mut TxnResponse, rev: i64) {
    resp.header = header(rev);
    for op in &mut resp.responses {
        match &mut op.response {
            Some(response_op::Response::ResponseRange(r)) => r.header = header(rev),
            Some(response_op::Response::ResponsePut(p)) => p.header = header(rev),
            Some(response_op::Response::ResponseDeleteRange(d)) => d.header = header(rev),
            Some(response_op::Response::ResponseTxn(t)) => set_headers(t, rev),
            None => {}
        }
    }
}

fn compare_kv(c: &Compare, target: CompareTarget, kv: &KeyValue) -> bool {
    let ord = match (target, &c.target_union) {
        (CompareTarget::Value, Some(TargetUnion::Value(v))) => kv.value.as_ref().cmp(v.as_ref()),
        (CompareTarget::Value, _) => kv.value.as_ref().cmp(&[][..]),
        (CompareTarget::Create, Some(TargetUnion::CreateRevision(v))) => kv.create_revision.cmp(v),
        (CompareTarget::Mod, Some(TargetUnion::ModRevision(v))) => kv.mod_revision.cmp(v),
        (CompareTarget::Version, Some(TargetUnion::Version(v))) => kv.version.cmp(v),
        (CompareTarget::Lease, Some(TargetUnion::Lease(v))) => kv.lease.cmp(v),
        // A union that does not match the target compares against zero, as etcd's getters do.
        (CompareTarget::Create, _) => kv.create_revision.cmp(&0),
        (CompareTarget::Mod, _) => kv.mod_revision.cmp(&0),
        (CompareTarget::Version, _) => kv.version.cmp(&0),
        (CompareTarget::Lease, _) => kv.lease.cmp(&0),
    };
    match CompareResult::try_from(c.result).unwrap_or(CompareResult::Equal) {
        CompareResult::Equal => ord == Ordering::Equal,
        CompareResult::NotEqual => ord != Ordering::Equal,
        CompareResult::Greater => ord == Ordering::Greater,
        CompareResult::Less => ord == Ordering::Less,
    }
}
