//! The recipes of clientv3's `concurrency` package that etcdctl's `elect` and `lock` run on
//! plain KV, Watch and Lease calls: a session (a lease kept alive), an election and a mutex.
//! Both queue candidates as keys `<name>/<lease ID in hex>` and let the one with the oldest
//! create revision win; the others wait for every older key to be deleted.
//!
//! Operations are cancelled by dropping their futures; the state they leave (whether a key was
//! created) tells the caller what to clean up, as clientv3 does after a cancelled context.

use crate::exit::status_message;
use crate::gofmt;
use crate::lease;
use crate::watch::WatchHandle;
use bytes::Bytes;
use cairn_client::{Client, prefix_end};
use cairn_proto::etcdserverpb::{
    Compare, DeleteRangeRequest, LeaseGrantRequest, PutRequest, RangeRequest, RangeResponse,
    RequestOp, ResponseHeader, TxnRequest, TxnResponse, WatchCreateRequest,
    compare::{CompareResult, CompareTarget, TargetUnion},
    range_request::{SortOrder, SortTarget},
    request_op::Request,
    response_op::Response,
};
use cairn_proto::mvccpb::{KeyValue, event::EventType};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// clientv3's default session TTL, in seconds.
pub const DEFAULT_SESSION_TTL: i64 = 60;

fn status(s: tonic::Status) -> String {
    status_message(&s)
}

/// A lease kept alive in the background for as long as the process runs (etcdctl never closes
/// its sessions: the lease simply expires after the process is gone).
pub struct Session {
    pub lease: i64,
    keep_alive: JoinHandle<()>,
}

impl Session {
    /// clientv3's `NewSession`: grants a lease of `ttl` seconds (the default for `ttl <= 0`).
    pub async fn new(
        client: &Client,
        ttl: i64,
        first_timeout: Duration,
    ) -> Result<Session, String> {
        let ttl = if ttl > 0 { ttl } else { DEFAULT_SESSION_TTL };
        let resp = client
            .lease()
            .lease_grant(LeaseGrantRequest { ttl, id: 0 })
            .await
            .map_err(status)?
            .into_inner();
        let id = resp.id;
        let (tx, mut rx) = mpsc::channel(16);
        let client = client.clone();
        let keep_alive = tokio::spawn(async move {
            let drain = async { while rx.recv().await.is_some() {} };
            tokio::join!(lease::keep_alive(client, id, first_timeout, tx), drain);
        });
        Ok(Session {
            lease: id,
            keep_alive,
        })
    }

    /// Resolves when the lease is no longer kept alive (expired, revoked or unreachable).
    pub async fn done(&mut self) {
        let _ = (&mut self.keep_alive).await;
    }
}

fn create_revision_is(key: &[u8], rev: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Create as i32,
        key: Bytes::from(key.to_vec()),
        range_end: Bytes::new(),
        target_union: Some(TargetUnion::CreateRevision(rev)),
    }
}

fn op(request: Request) -> RequestOp {
    RequestOp {
        request: Some(request),
    }
}

fn put_op(key: &[u8], value: &[u8], lease: i64) -> RequestOp {
    op(Request::RequestPut(PutRequest {
        key: Bytes::from(key.to_vec()),
        value: Bytes::from(value.to_vec()),
        lease,
        ..Default::default()
    }))
}

fn get_op(key: &[u8]) -> RequestOp {
    op(Request::RequestRange(RangeRequest {
        key: Bytes::from(key.to_vec()),
        ..Default::default()
    }))
}

/// clientv3's `WithFirstCreate` (`oldest = true`) or `WithLastCreate` over a prefix: the key with
/// the smallest or largest create revision.
fn by_create(prefix: &[u8], oldest: bool) -> RangeRequest {
    RangeRequest {
        key: Bytes::from(prefix.to_vec()),
        range_end: Bytes::from(prefix_end(prefix)),
        limit: 1,
        sort_order: if oldest {
            SortOrder::Ascend
        } else {
            SortOrder::Descend
        } as i32,
        sort_target: SortTarget::Create as i32,
        ..Default::default()
    }
}

fn range_of(resp: &TxnResponse, i: usize) -> Option<&RangeResponse> {
    match resp.responses.get(i)?.response.as_ref()? {
        Response::ResponseRange(r) => Some(r),
        _ => None,
    }
}

async fn txn(client: &Client, req: TxnRequest) -> Result<TxnResponse, String> {
    Ok(client.kv().txn(req).await.map_err(status)?.into_inner())
}

async fn range(client: &Client, req: RangeRequest) -> Result<RangeResponse, String> {
    Ok(client.kv().range(req).await.map_err(status)?.into_inner())
}

/// Waits until `key` is deleted, watching from `rev`.
async fn wait_delete(client: &Client, key: &[u8], rev: i64) -> Result<(), String> {
    let req = WatchCreateRequest {
        key: Bytes::from(key.to_vec()),
        start_revision: rev,
        ..Default::default()
    };
    let mut w = WatchHandle::start(client, req, false);
    let mut last_err = None;
    while let Some(wr) = w.rx.recv().await {
        if wr
            .events
            .iter()
            .any(|e| e.r#type == EventType::Delete as i32)
        {
            return Ok(());
        }
        last_err = wr.err();
    }
    Err(last_err.unwrap_or_else(|| "lost watcher waiting for delete".into()))
}

/// Waits until no key under `prefix` created at or before `max_create_rev` is left, one delete
/// at a time (newest first); returns the header of the final, empty read.
async fn wait_deletes(
    client: &Client,
    prefix: &[u8],
    max_create_rev: i64,
) -> Result<ResponseHeader, String> {
    loop {
        let req = RangeRequest {
            max_create_revision: max_create_rev,
            ..by_create(prefix, false)
        };
        let resp = range(client, req).await?;
        let header = resp.header.unwrap_or_default();
        let Some(last) = resp.kvs.first() else {
            return Ok(header);
        };
        wait_delete(client, &last.key, header.revision).await?;
    }
}

/// clientv3's `Election` for one session.
pub struct Election {
    client: Client,
    /// `<name>/`.
    prefix: Vec<u8>,
    lease: i64,
    /// Set while this session holds (or queues for) leadership: clientv3's `leaderSession`.
    leader_key: Option<Vec<u8>>,
    leader_rev: i64,
}

impl Election {
    pub fn new(client: &Client, name: &[u8], lease: i64) -> Election {
        let mut prefix = name.to_vec();
        prefix.push(b'/');
        Election {
            client: client.clone(),
            prefix,
            lease,
            leader_key: None,
            leader_rev: 0,
        }
    }

    /// The key this session campaigns with.
    pub fn key(&self) -> Vec<u8> {
        self.leader_key.clone().unwrap_or_default()
    }

    pub fn is_candidate(&self) -> bool {
        self.leader_key.is_some()
    }

    /// Queues `val` under `<name>/<lease>` and waits until every older candidate is gone.
    pub async fn campaign(&mut self, val: &[u8]) -> Result<(), String> {
        let mut k = self.prefix.clone();
        k.extend_from_slice(gofmt::hex_i64(self.lease).as_bytes());
        let resp = txn(
            &self.client,
            TxnRequest {
                compare: vec![create_revision_is(&k, 0)],
                success: vec![put_op(&k, val, self.lease)],
                failure: vec![get_op(&k)],
            },
        )
        .await?;
        let header = resp.header.unwrap_or_default();
        self.leader_key = Some(k);
        self.leader_rev = header.revision;
        if !resp.succeeded {
            let Some(kv) = range_of(&resp, 0).and_then(|r| r.kvs.first()) else {
                self.leader_key = None;
                return Err("election: campaign key vanished".into());
            };
            self.leader_rev = kv.create_revision;
            if kv.value.as_ref() != val
                && let Err(e) = self.proclaim(val).await
            {
                let _ = self.resign().await;
                return Err(e);
            }
        }
        if let Err(e) = wait_deletes(&self.client, &self.prefix, self.leader_rev - 1).await {
            self.leader_key = None;
            return Err(e);
        }
        Ok(())
    }

    /// Replaces the leader's value without a new election.
    pub async fn proclaim(&mut self, val: &[u8]) -> Result<(), String> {
        let Some(k) = self.leader_key.clone() else {
            return Err("election: not leader".into());
        };
        let resp = txn(
            &self.client,
            TxnRequest {
                compare: vec![create_revision_is(&k, self.leader_rev)],
                success: vec![put_op(&k, val, self.lease)],
                failure: vec![],
            },
        )
        .await?;
        if !resp.succeeded {
            self.leader_key = None;
            return Err("election: not leader".into());
        }
        Ok(())
    }

    /// Gives up leadership (or the place in the queue) by deleting the key, if still ours.
    pub async fn resign(&mut self) -> Result<(), String> {
        let Some(k) = self.leader_key.take() else {
            return Ok(());
        };
        txn(
            &self.client,
            TxnRequest {
                compare: vec![create_revision_is(&k, self.leader_rev)],
                success: vec![op(Request::RequestDeleteRange(DeleteRangeRequest {
                    key: Bytes::from(k),
                    ..Default::default()
                }))],
                failure: vec![],
            },
        )
        .await
        .map(|_| ())
    }

    /// clientv3's `Observe`: sends the leader, then every new value it proclaims, then the next
    /// leader, and so on; returns when a read or watch fails or `ch` is closed. The responses are
    /// shaped as clientv3 builds them (a leader found by a read has no count; proclamations reuse
    /// the read, count included).
    pub async fn observe(&self, ch: mpsc::Sender<RangeResponse>) {
        loop {
            let Ok(mut resp) = range(&self.client, by_create(&self.prefix, true)).await else {
                return;
            };
            let (header, kv) = match resp.kvs.first() {
                Some(kv) => (resp.header.unwrap_or_default(), kv.clone()),
                None => {
                    let start = resp.header.unwrap_or_default().revision;
                    match self.first_put(start).await {
                        Some(found) => found,
                        None => return,
                    }
                }
            };
            let leader = RangeResponse {
                header: Some(header),
                kvs: vec![kv.clone()],
                ..Default::default()
            };
            if ch.send(leader).await.is_err() {
                return;
            }
            let req = WatchCreateRequest {
                key: kv.key.clone(),
                start_revision: header.revision + 1,
                ..Default::default()
            };
            let mut w = WatchHandle::start(&self.client, req, false);
            'leader: loop {
                let Some(wr) = w.rx.recv().await else {
                    return;
                };
                for ev in wr.events {
                    if ev.r#type == EventType::Delete as i32 {
                        break 'leader;
                    }
                    resp.header = Some(wr.header);
                    resp.kvs = vec![ev.kv.unwrap_or_default()];
                    if ch.send(resp.clone()).await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// Waits for the first put under the prefix from revision `start`.
    async fn first_put(&self, start: i64) -> Option<(ResponseHeader, KeyValue)> {
        let req = WatchCreateRequest {
            key: Bytes::from(self.prefix.clone()),
            range_end: Bytes::from(prefix_end(&self.prefix)),
            start_revision: start,
            ..Default::default()
        };
        let mut w = WatchHandle::start(&self.client, req, false);
        loop {
            let wr = w.rx.recv().await?;
            if wr.err().is_some() {
                return None;
            }
            // Only puts count: a delete would make the observer spin.
            if let Some(ev) = wr.events.iter().find(|e| e.r#type == EventType::Put as i32) {
                let kv = ev.kv.clone().unwrap_or_default();
                let mut header = wr.header;
                header.revision = kv.mod_revision;
                return Some((header, kv));
            }
        }
    }
}

/// clientv3's `Mutex` for one session.
pub struct Mutex {
    client: Client,
    /// `<name>/`.
    prefix: Vec<u8>,
    lease: i64,
    /// Set once our key is in the queue.
    my_key: Option<Vec<u8>>,
    my_rev: i64,
    header: ResponseHeader,
}

impl Mutex {
    pub fn new(client: &Client, name: &[u8], lease: i64) -> Mutex {
        let mut prefix = name.to_vec();
        prefix.push(b'/');
        Mutex {
            client: client.clone(),
            prefix,
            lease,
            my_key: None,
            my_rev: -1,
            header: ResponseHeader::default(),
        }
    }

    pub fn key(&self) -> Vec<u8> {
        self.my_key.clone().unwrap_or_default()
    }

    /// Whether our key was queued (and so must be deleted when giving up).
    pub fn is_queued(&self) -> bool {
        self.my_key.is_some()
    }

    /// The header of the response that granted the lock.
    pub fn header(&self) -> ResponseHeader {
        self.header
    }

    /// Queues `<name>/<lease>` and waits until it is the oldest key under the prefix.
    pub async fn lock(&mut self) -> Result<(), String> {
        let mut k = self.prefix.clone();
        k.extend_from_slice(gofmt::hex_i64(self.lease).as_bytes());
        // The current holder comes back in the same round trip, so an uncontended lock costs
        // one request.
        let get_owner = op(Request::RequestRange(by_create(&self.prefix, true)));
        let resp = txn(
            &self.client,
            TxnRequest {
                compare: vec![create_revision_is(&k, 0)],
                success: vec![put_op(&k, b"", self.lease), get_owner.clone()],
                failure: vec![get_op(&k), get_owner],
            },
        )
        .await?;
        let header = resp.header.unwrap_or_default();
        self.my_key = Some(k);
        self.my_rev = header.revision;
        if !resp.succeeded {
            match range_of(&resp, 0).and_then(|r| r.kvs.first()) {
                Some(kv) => self.my_rev = kv.create_revision,
                None => return Err("lock: queued key vanished".into()),
            }
        }
        let owner = range_of(&resp, 1).and_then(|r| r.kvs.first());
        if owner.is_none_or(|o| o.create_revision == self.my_rev) {
            self.header = header;
            return Ok(());
        }
        match wait_deletes(&self.client, &self.prefix, self.my_rev - 1).await {
            Ok(h) => {
                self.header = h;
                Ok(())
            }
            Err(e) => {
                let _ = self.unlock().await;
                Err(e)
            }
        }
    }

    /// Deletes our key.
    pub async fn unlock(&mut self) -> Result<(), String> {
        let key = self.my_key.clone().unwrap_or_default();
        self.client
            .kv()
            .delete_range(DeleteRangeRequest {
                key: Bytes::from(key),
                ..Default::default()
            })
            .await
            .map_err(status)?;
        self.my_key = None;
        self.my_rev = -1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_reads_sort_by_create_revision() {
        let r = by_create(b"lk/", true);
        assert_eq!((&r.key[..], &r.range_end[..]), (&b"lk/"[..], &b"lk0"[..]));
        assert_eq!(r.sort_order, SortOrder::Ascend as i32);
        assert_eq!(r.sort_target, SortTarget::Create as i32);
        assert_eq!(r.limit, 1);
        assert_eq!(
            by_create(b"lk/", false).sort_order,
            SortOrder::Descend as i32
        );
    }
}
