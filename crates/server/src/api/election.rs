//! The Election and Lock services (`v3electionpb`, `v3lockpb`), built like etcd's on leases,
//! transactions and watches: a candidate (or lock waiter) owns the key `<name>/<lease in hex>`,
//! and candidates are ordered by the create revision of their keys. Whoever holds the oldest key
//! leads (or holds the lock); the others wait for every older key to be deleted.

use crate::etcd::{Applied, EtcdServer};
use bytes::Bytes;
use cairn_mvcc::{StreamSink, WatchMsg, WatchSpec};
use cairn_proto::cairnpb::internal_request::Request;
use cairn_proto::etcdserverpb::{
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest, TxnResponse,
    compare::{CompareResult, CompareTarget, TargetUnion},
    range_request::{SortOrder, SortTarget},
    request_op, response_op,
};
use cairn_proto::mvccpb::KeyValue;
use cairn_proto::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest,
    ProclaimResponse, ResignRequest, ResignResponse, election_server::Election,
};
use cairn_proto::v3lockpb::{
    LockRequest, LockResponse, UnlockRequest, UnlockResponse, lock_server::Lock,
};
use futures::Stream;
use std::pin::Pin;
use std::sync::Arc;
use tonic::{Request as GrpcRequest, Response, Status};

const NOT_LEADER: &str = "election: not leader";
const NO_LEADER: &str = "election: no leader";
/// A plain Go error in etcd, so its code is Unknown (not InvalidArgument).
const MISSING_LEADER: &str = "\"leader\" field must be provided";

fn prefix_end(prefix: &[u8]) -> Bytes {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Bytes::from(end);
        }
    }
    Bytes::from_static(b"\0")
}

fn create_rev_is(key: &Bytes, rev: i64) -> Compare {
    Compare {
        key: key.clone(),
        target: CompareTarget::Create as i32,
        result: CompareResult::Equal as i32,
        target_union: Some(TargetUnion::CreateRevision(rev)),
        ..Default::default()
    }
}

fn op(request: request_op::Request) -> RequestOp {
    RequestOp {
        request: Some(request),
    }
}

async fn txn(server: &EtcdServer, t: TxnRequest) -> Result<TxnResponse, Status> {
    match server.propose(Request::Txn(t)).await? {
        Applied::Txn(r) => Ok(r),
        _ => Err(Status::internal("cairn: unexpected apply result for txn")),
    }
}

/// Creates `key` with `value` on `lease` unless it exists; returns its create revision and the
/// revision the transaction saw.
async fn claim(
    server: &EtcdServer,
    key: &Bytes,
    value: Bytes,
    lease: i64,
) -> Result<(i64, i64, Option<KeyValue>), Status> {
    let resp = txn(
        server,
        TxnRequest {
            compare: vec![create_rev_is(key, 0)],
            success: vec![op(request_op::Request::RequestPut(PutRequest {
                key: key.clone(),
                value,
                lease,
                ..Default::default()
            }))],
            failure: vec![op(request_op::Request::RequestRange(RangeRequest {
                key: key.clone(),
                ..Default::default()
            }))],
        },
    )
    .await?;
    let rev = resp.header.as_ref().map_or(0, |h| h.revision);
    if resp.succeeded {
        return Ok((rev, rev, None));
    }
    let existing = resp.responses.into_iter().find_map(|r| match r.response {
        Some(response_op::Response::ResponseRange(rr)) => rr.kvs.into_iter().next(),
        _ => None,
    });
    let create = existing.as_ref().map_or(rev, |kv| kv.create_revision);
    Ok((create, rev, existing))
}

/// The oldest key under `prefix` with create revision ≤ `max_create` (any if 0).
async fn oldest(
    server: &EtcdServer,
    prefix: &Bytes,
    max_create: i64,
    newest: bool,
) -> Result<(Option<KeyValue>, i64), Status> {
    let resp = server
        .range(RangeRequest {
            key: prefix.clone(),
            range_end: prefix_end(prefix),
            limit: 1,
            sort_target: SortTarget::Create as i32,
            sort_order: if newest {
                SortOrder::Descend
            } else {
                SortOrder::Ascend
            } as i32,
            max_create_revision: max_create,
            ..Default::default()
        })
        .await?;
    let rev = resp.header.as_ref().map_or(0, |h| h.revision);
    Ok((resp.kvs.into_iter().next(), rev))
}

/// Waits for the first event matching `spec` (which starts after the revision the caller saw).
async fn first_event(server: &EtcdServer, spec: WatchSpec) -> Result<(), Status> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let sink = StreamSink::new(tx);
    let stream = server.store.open_watch_stream(sink.clone());
    let _close = CloseStream(server, stream);
    server
        .store
        .watch(stream, spec)
        .map_err(|e| Status::internal(e.to_string()))?;
    while let Some(m) = rx.recv().await {
        sink.delivered(&m);
        match m {
            WatchMsg::Events { .. } => return Ok(()),
            WatchMsg::Canceled { .. } => {
                return Err(Status::aborted("cairn: internal watch was canceled"));
            }
            _ => {}
        }
    }
    Err(Status::unavailable("cairn: server stopping"))
}

/// Waits until `key` is deleted after revision `after`.
async fn wait_delete(server: &EtcdServer, key: &Bytes, after: i64) -> Result<(), Status> {
    first_event(
        server,
        WatchSpec {
            key: key.clone(),
            start_revision: after + 1,
            no_put: true,
            ..Default::default()
        },
    )
    .await
}

struct CloseStream<'a>(&'a EtcdServer, cairn_mvcc::StreamId);

impl Drop for CloseStream<'_> {
    fn drop(&mut self) {
        self.0.store.close_watch_stream(self.1);
    }
}

/// Waits until no key under `prefix` created before `my_rev` is left.
async fn wait_older_gone(server: &EtcdServer, prefix: &Bytes, my_rev: i64) -> Result<(), Status> {
    loop {
        let (older, rev) = oldest(server, prefix, my_rev - 1, true).await?;
        match older {
            None => return Ok(()),
            Some(kv) => wait_delete(server, &kv.key, rev).await?,
        }
    }
}

/// Deletes `key` if it still has `create_rev` (a candidate that gave up or resigned).
async fn release(server: &EtcdServer, key: &Bytes, create_rev: i64) -> Result<TxnResponse, Status> {
    txn(
        server,
        TxnRequest {
            compare: vec![create_rev_is(key, create_rev)],
            success: vec![op(request_op::Request::RequestDeleteRange(
                DeleteRangeRequest {
                    key: key.clone(),
                    ..Default::default()
                },
            ))],
            failure: vec![],
        },
    )
    .await
}

/// Removes a waiting candidate's key if its RPC is dropped before it won (client went away).
struct Abandon {
    server: Arc<EtcdServer>,
    key: Bytes,
    rev: i64,
    armed: bool,
}

impl Drop for Abandon {
    fn drop(&mut self) {
        if self.armed {
            let (server, key, rev) = (self.server.clone(), self.key.clone(), self.rev);
            tokio::spawn(async move {
                let _ = release(&server, &key, rev).await;
            });
        }
    }
}

/// Waits until `key` (created at `create`) is the oldest under `name`; if the caller goes away
/// first, the key is removed so that it does not block the candidates behind it.
async fn wait_turn(
    server: &Arc<EtcdServer>,
    name: &[u8],
    key: &Bytes,
    create: i64,
) -> Result<(), Status> {
    let mut abandon = Abandon {
        server: server.clone(),
        key: key.clone(),
        rev: create,
        armed: true,
    };
    wait_older_gone(server, &prefix_of(name), create).await?;
    abandon.armed = false;
    Ok(())
}

fn owner_key(name: &[u8], lease: i64) -> Bytes {
    let mut k = name.to_vec();
    k.push(b'/');
    k.extend_from_slice(format!("{lease:x}").as_bytes());
    Bytes::from(k)
}

fn prefix_of(name: &[u8]) -> Bytes {
    let mut p = name.to_vec();
    p.push(b'/');
    Bytes::from(p)
}

/// What etcd's client-side recipes need of the caller, checked once up front: read on the
/// election's (or lock's) prefix to see the other candidates, write on the caller's own key.
async fn check_access<T>(
    server: &EtcdServer,
    request: &GrpcRequest<T>,
    name: &[u8],
    own_key: Option<&[u8]>,
) -> Result<(), Status> {
    let who = super::caller(server, request).await?;
    let auth = &server.auth;
    let prefix = prefix_of(name);
    auth.check_key(&who, &prefix, &prefix_end(&prefix), false)
        .map_err(|e| e.status())?;
    if let Some(key) = own_key {
        auth.check_key(&who, key, &[], true)
            .map_err(|e| e.status())?;
    }
    Ok(())
}

/// The name a candidate key belongs to: everything before its last `/`.
fn name_of(key: &[u8]) -> &[u8] {
    key.iter()
        .rposition(|b| *b == b'/')
        .map_or(key, |at| &key[..at])
}

pub struct ElectionService {
    pub server: Arc<EtcdServer>,
}

type ObserveStream = Pin<Box<dyn Stream<Item = Result<LeaderResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Election for ElectionService {
    async fn campaign(
        &self,
        request: GrpcRequest<CampaignRequest>,
    ) -> Result<Response<CampaignResponse>, Status> {
        let r = request.get_ref();
        check_access(
            &self.server,
            &request,
            &r.name,
            Some(&owner_key(&r.name, r.lease)),
        )
        .await?;
        let req = request.into_inner();
        let s = &self.server;
        let key = owner_key(&req.name, req.lease);
        let (create, _, existing) = claim(s, &key, req.value.clone(), req.lease).await?;
        // Re-campaigning with the same lease keeps the key and updates its value.
        if existing.is_some_and(|kv| kv.value != req.value) {
            proclaim(s, &key, create, req.lease, req.value.clone()).await?;
        }
        wait_turn(s, &req.name, &key, create).await?;
        Ok(Response::new(CampaignResponse {
            header: s.header(s.store.revision()),
            leader: Some(LeaderKey {
                name: req.name,
                key,
                rev: create,
                lease: req.lease,
            }),
        }))
    }

    async fn proclaim(
        &self,
        request: GrpcRequest<ProclaimRequest>,
    ) -> Result<Response<ProclaimResponse>, Status> {
        if let Some(l) = &request.get_ref().leader {
            check_access(&self.server, &request, name_of(&l.key), Some(&l.key)).await?;
        }
        let req = request.into_inner();
        let leader = req.leader.ok_or_else(|| Status::unknown(MISSING_LEADER))?;
        let rev = proclaim(
            &self.server,
            &leader.key,
            leader.rev,
            leader.lease,
            req.value,
        )
        .await?;
        Ok(Response::new(ProclaimResponse {
            header: self.server.header(rev),
        }))
    }

    async fn leader(
        &self,
        request: GrpcRequest<LeaderRequest>,
    ) -> Result<Response<LeaderResponse>, Status> {
        check_access(&self.server, &request, &request.get_ref().name, None).await?;
        let req = request.into_inner();
        let (kv, rev) = oldest(&self.server, &prefix_of(&req.name), 0, false).await?;
        let kv = kv.ok_or_else(|| Status::unknown(NO_LEADER))?;
        Ok(Response::new(LeaderResponse {
            header: self.server.header(rev),
            kv: Some(kv),
        }))
    }

    type ObserveStream = ObserveStream;

    async fn observe(
        &self,
        request: GrpcRequest<LeaderRequest>,
    ) -> Result<Response<Self::ObserveStream>, Status> {
        check_access(&self.server, &request, &request.get_ref().name, None).await?;
        let prefix = prefix_of(&request.into_inner().name);
        let server = self.server.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            let mut last: Option<(Bytes, i64)> = None;
            loop {
                let (kv, rev) = match oldest(&server, &prefix, 0, false).await {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                if let Some(kv) = kv {
                    let now = (kv.value.clone(), kv.mod_revision);
                    if last.as_ref() != Some(&now) {
                        last = Some(now);
                        let resp = LeaderResponse {
                            header: server.header(rev),
                            kv: Some(kv.clone()),
                        };
                        if tx.send(Ok(resp)).await.is_err() {
                            return;
                        }
                    }
                }
                // Wake on any change under the prefix; end as soon as the client goes away
                // rather than at the next change, which may never come.
                tokio::select! {
                    changed = wait_change(&server, &prefix, rev) => {
                        if changed.is_err() {
                            return;
                        }
                    }
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn resign(
        &self,
        request: GrpcRequest<ResignRequest>,
    ) -> Result<Response<ResignResponse>, Status> {
        if let Some(l) = &request.get_ref().leader {
            check_access(&self.server, &request, name_of(&l.key), Some(&l.key)).await?;
        }
        let leader = request
            .into_inner()
            .leader
            .ok_or_else(|| Status::unknown(MISSING_LEADER))?;
        let resp = release(&self.server, &leader.key, leader.rev).await?;
        Ok(Response::new(ResignResponse {
            header: self.server.restamp(resp.header),
        }))
    }
}

async fn proclaim(
    server: &EtcdServer,
    key: &Bytes,
    rev: i64,
    lease: i64,
    value: Bytes,
) -> Result<i64, Status> {
    let resp = txn(
        server,
        TxnRequest {
            compare: vec![create_rev_is(key, rev)],
            success: vec![op(request_op::Request::RequestPut(PutRequest {
                key: key.clone(),
                value,
                lease,
                ..Default::default()
            }))],
            failure: vec![],
        },
    )
    .await?;
    if !resp.succeeded {
        return Err(Status::unknown(NOT_LEADER));
    }
    Ok(resp.header.map_or(0, |h| h.revision))
}

/// Waits for any event under `prefix` after revision `after`.
async fn wait_change(server: &EtcdServer, prefix: &Bytes, after: i64) -> Result<(), Status> {
    first_event(
        server,
        WatchSpec {
            key: prefix.clone(),
            range_end: prefix_end(prefix),
            start_revision: after + 1,
            ..Default::default()
        },
    )
    .await
}

pub struct LockService {
    pub server: Arc<EtcdServer>,
}

#[tonic::async_trait]
impl Lock for LockService {
    async fn lock(
        &self,
        request: GrpcRequest<LockRequest>,
    ) -> Result<Response<LockResponse>, Status> {
        let r = request.get_ref();
        check_access(
            &self.server,
            &request,
            &r.name,
            Some(&owner_key(&r.name, r.lease)),
        )
        .await?;
        let req = request.into_inner();
        let s = &self.server;
        let key = owner_key(&req.name, req.lease);
        let (create, _, _) = claim(s, &key, Bytes::new(), req.lease).await?;
        wait_turn(s, &req.name, &key, create).await?;
        Ok(Response::new(LockResponse {
            header: s.header(s.store.revision()),
            key,
        }))
    }

    async fn unlock(
        &self,
        request: GrpcRequest<UnlockRequest>,
    ) -> Result<Response<UnlockResponse>, Status> {
        let who = super::caller(&self.server, &request).await?;
        let key = request.into_inner().key;
        let resp = match self
            .server
            .propose_as(
                Request::DeleteRange(DeleteRangeRequest {
                    key,
                    ..Default::default()
                }),
                &who,
            )
            .await?
        {
            Applied::DeleteRange(r) => r,
            _ => {
                return Err(Status::internal(
                    "cairn: unexpected apply result for unlock",
                ));
            }
        };
        Ok(Response::new(UnlockResponse {
            header: self.server.restamp(resp.header),
        }))
    }
}
