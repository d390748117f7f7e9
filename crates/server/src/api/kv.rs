//! The KV service: request validation with etcd's checks and messages, then the member.

use crate::errors::msg;
use crate::etcd::{Applied, EtcdServer};
use bytes::Bytes;
use cairn_proto::cairnpb::internal_request::Request;
use cairn_proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RequestOp, ResponseHeader, TxnRequest, TxnResponse,
    range_request::{SortOrder, SortTarget},
    request_op,
};
use cairn_proto::kv_server::kv_server::Kv;
use cairn_proto::raw_range::RawRangeResponse;
use std::sync::Arc;
use tonic::{Request as GrpcRequest, Response, Status};

pub struct KvService {
    pub server: Arc<EtcdServer>,
}

fn check_range(r: &RangeRequest) -> Result<(), Status> {
    if r.key.is_empty() {
        return Err(Status::invalid_argument(msg::EMPTY_KEY));
    }
    if SortOrder::try_from(r.sort_order).is_err() || SortTarget::try_from(r.sort_target).is_err() {
        return Err(Status::invalid_argument(msg::INVALID_SORT));
    }
    Ok(())
}

fn check_put(r: &PutRequest) -> Result<(), Status> {
    if r.key.is_empty() {
        return Err(Status::invalid_argument(msg::EMPTY_KEY));
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(Status::invalid_argument(msg::VALUE_PROVIDED));
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(Status::invalid_argument(msg::LEASE_PROVIDED));
    }
    Ok(())
}

fn check_delete(r: &DeleteRangeRequest) -> Result<(), Status> {
    if r.key.is_empty() {
        return Err(Status::invalid_argument(msg::EMPTY_KEY));
    }
    Ok(())
}

fn check_txn(r: &TxnRequest, max_ops: usize) -> Result<(), Status> {
    if r.compare.len() > max_ops || r.success.len() > max_ops || r.failure.len() > max_ops {
        return Err(Status::invalid_argument(msg::TOO_MANY_OPS));
    }
    for c in &r.compare {
        if c.key.is_empty() {
            return Err(Status::invalid_argument(msg::EMPTY_KEY));
        }
    }
    for op in r.success.iter().chain(&r.failure) {
        match &op.request {
            Some(request_op::Request::RequestRange(q)) => check_range(q)?,
            Some(request_op::Request::RequestPut(q)) => check_put(q)?,
            Some(request_op::Request::RequestDeleteRange(q)) => check_delete(q)?,
            Some(request_op::Request::RequestTxn(q)) => check_txn(q, max_ops)?,
            None => return Err(Status::invalid_argument(msg::KEY_NOT_FOUND)),
        }
    }
    for branch in [&r.success, &r.failure] {
        check_branch_keys(branch, &mut Vec::new(), &mut Vec::new())?;
    }
    Ok(())
}

/// Whether `key` falls in the etcd range `[start, end)`.
fn in_range(key: &[u8], start: &[u8], end: &[u8]) -> bool {
    match end {
        [] => key == start,
        [0] => key >= start,
        _ => key >= start && key < end,
    }
}

/// etcd rejects a txn branch that writes one key twice: two puts, or a put inside a deleted
/// range, counting nested txns on the path.
fn check_branch_keys(
    ops: &[RequestOp],
    puts: &mut Vec<Bytes>,
    dels: &mut Vec<(Bytes, Bytes)>,
) -> Result<(), Status> {
    let dup = || Status::invalid_argument(msg::DUPLICATE_KEY);
    for op in ops {
        match &op.request {
            Some(request_op::Request::RequestPut(p)) => {
                if puts.contains(&p.key) || dels.iter().any(|(s, e)| in_range(&p.key, s, e)) {
                    return Err(dup());
                }
                puts.push(p.key.clone());
            }
            Some(request_op::Request::RequestDeleteRange(d)) => {
                if puts.iter().any(|k| in_range(k, &d.key, &d.range_end)) {
                    return Err(dup());
                }
                dels.push((d.key.clone(), d.range_end.clone()));
            }
            Some(request_op::Request::RequestTxn(t)) => {
                // Either nested branch may run: each must be free of clashes with this path, and
                // later ops on this path must not clash with either.
                let (mut new_puts, mut new_dels) = (Vec::new(), Vec::new());
                for branch in [&t.success, &t.failure] {
                    let (mut p, mut d) = (puts.clone(), dels.clone());
                    check_branch_keys(branch, &mut p, &mut d)?;
                    new_puts.extend(p.into_iter().skip(puts.len()));
                    new_dels.extend(d.into_iter().skip(dels.len()));
                }
                puts.extend(new_puts);
                dels.extend(new_dels);
            }
            _ => {}
        }
    }
    Ok(())
}

fn unexpected(what: &str) -> Status {
    Status::internal(format!(
        "cairn: apply returned an unexpected result for {what}"
    ))
}

impl KvService {
    fn check_size<M: prost::Message>(&self, m: &M) -> Result<(), Status> {
        if m.encoded_len() > self.server.config.max_request_bytes as usize {
            return Err(Status::invalid_argument(msg::TOO_LARGE));
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(
        &self,
        request: GrpcRequest<RangeRequest>,
    ) -> Result<Response<RawRangeResponse>, Status> {
        let who = super::caller(&self.server, &request).await?;
        let req = request.into_inner();
        if !req.serializable {
            self.server.refuse_learner()?;
        }
        check_range(&req)?;
        let auth = &self.server.auth;
        auth.check_key(&who, &req.key, &req.range_end, false)
            .map_err(|e| e.status())?;
        let resp = self.server.range_raw(req).await?;
        super::still_permitted(&self.server, &who)?;
        Ok(Response::new(resp))
    }

    type RangeStreamStream = super::range_stream::RangeStreamStream;

    async fn range_stream(
        &self,
        request: GrpcRequest<RangeRequest>,
    ) -> Result<Response<Self::RangeStreamStream>, Status> {
        let who = super::caller(&self.server, &request).await?;
        let req = request.into_inner();
        if !req.serializable {
            self.server.refuse_learner()?;
        }
        check_range(&req)?;
        super::range_stream::check_streamable(&req)?;
        self.server
            .auth
            .check_key(&who, &req.key, &req.range_end, false)
            .map_err(|e| e.status())?;
        let chunks = super::range_stream::stream(self.server.clone(), req).await?;
        super::still_permitted(&self.server, &who)?;
        Ok(Response::new(chunks))
    }

    async fn put(&self, request: GrpcRequest<PutRequest>) -> Result<Response<PutResponse>, Status> {
        self.server.refuse_learner()?;
        let who = super::caller(&self.server, &request).await?;
        let req = request.into_inner();
        check_put(&req)?;
        self.check_size(&req)?;
        self.write(Request::Put(req), &who).await
    }

    async fn delete_range(
        &self,
        request: GrpcRequest<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        self.server.refuse_learner()?;
        let who = super::caller(&self.server, &request).await?;
        let req = request.into_inner();
        check_delete(&req)?;
        self.check_size(&req)?;
        self.write(Request::DeleteRange(req), &who).await
    }

    async fn txn(&self, request: GrpcRequest<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        self.server.refuse_learner()?;
        let who = super::caller(&self.server, &request).await?;
        let req = request.into_inner();
        check_txn(&req, self.server.config.max_txn_ops as usize)?;
        self.check_size(&req)?;
        if cairn_mvcc::txn_is_read_only(&req) {
            // Served like a range, as etcd does: no log entry, linearizable through ReadIndex
            // unless every range in it is serializable.
            self.server
                .auth
                .check_txn(&who, &req)
                .map_err(|e| e.status())?;
            let resp = self.server.read_only_txn(req).await?;
            super::still_permitted(&self.server, &who)?;
            return Ok(Response::new(resp));
        }
        // Inner responses keep a revision-only header, exactly as etcd sends them.
        self.write(Request::Txn(req), &who).await
    }

    async fn compact(
        &self,
        request: GrpcRequest<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        self.server.refuse_learner()?;
        let who = super::caller(&self.server, &request).await?;
        // Compaction is applied synchronously, so `physical` holds whether or not it was asked.
        self.write(Request::Compaction(request.into_inner()), &who)
            .await
    }
}

/// A KV write's response, picked out of the apply result; its header gets the member's fields.
trait WriteResponse: Sized {
    const WHAT: &'static str;
    fn from_applied(applied: Applied) -> Option<Self>;
    fn header_mut(&mut self) -> &mut Option<ResponseHeader>;
}

macro_rules! write_response {
    ($resp:ty, $variant:ident, $what:literal) => {
        impl WriteResponse for $resp {
            const WHAT: &'static str = $what;
            fn from_applied(applied: Applied) -> Option<Self> {
                match applied {
                    Applied::$variant(r) => Some(r),
                    _ => None,
                }
            }
            fn header_mut(&mut self) -> &mut Option<ResponseHeader> {
                &mut self.header
            }
        }
    };
}

write_response!(PutResponse, Put, "put");
write_response!(DeleteRangeResponse, DeleteRange, "delete");
write_response!(TxnResponse, Txn, "txn");
write_response!(CompactionResponse, Compaction, "compaction");

impl KvService {
    /// Replicates a write and answers with its result under this member's header.
    async fn write<T: WriteResponse>(
        &self,
        req: Request,
        who: &crate::auth::AuthInfo,
    ) -> Result<Response<T>, Status> {
        let applied = self.server.propose_as(req, who).await?;
        let mut resp = T::from_applied(applied).ok_or_else(|| unexpected(T::WHAT))?;
        *resp.header_mut() = self.server.restamp(resp.header_mut().take());
        Ok(Response::new(resp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &str) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: Bytes::from(k.to_owned()),
                ..Default::default()
            })),
        }
    }

    fn del(k: &str, e: &str) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestDeleteRange(
                DeleteRangeRequest {
                    key: Bytes::from(k.to_owned()),
                    range_end: Bytes::from(e.to_owned()),
                    ..Default::default()
                },
            )),
        }
    }

    fn txn(success: Vec<RequestOp>) -> TxnRequest {
        TxnRequest {
            compare: vec![],
            success,
            failure: vec![],
        }
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        assert!(check_txn(&txn(vec![put("a"), put("b")]), 128).is_ok());
        let e = check_txn(&txn(vec![put("a"), put("a")]), 128).unwrap_err();
        assert_eq!(e.message(), msg::DUPLICATE_KEY);
        assert!(check_txn(&txn(vec![del("a", "c"), put("b")]), 128).is_err());
        assert!(check_txn(&txn(vec![del("a", "c"), del("b", "d")]), 128).is_ok());
        let nested = RequestOp {
            request: Some(request_op::Request::RequestTxn(txn(vec![put("a")]))),
        };
        assert!(check_txn(&txn(vec![put("a"), nested]), 128).is_err());
    }

    #[test]
    fn too_many_ops_and_empty_keys() {
        let many = txn((0..5).map(|i| put(&format!("k{i}"))).collect());
        assert_eq!(
            check_txn(&many, 4).unwrap_err().message(),
            msg::TOO_MANY_OPS
        );
        assert!(check_txn(&many, 5).is_ok());
        assert_eq!(
            check_txn(&txn(vec![put("")]), 8).unwrap_err().message(),
            msg::EMPTY_KEY
        );
        let empty_op = txn(vec![RequestOp { request: None }]);
        assert!(check_txn(&empty_op, 8).is_err());
    }
}
