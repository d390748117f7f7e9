//! `KV.RangeStream` (etcd 3.7): a range answered in chunks rather than in one message, so a
//! large list (Kubernetes' watch-cache initialisation) never has to fit in one response.
//! Every chunk is read at one revision, pinned by the first read (which is linearizable unless
//! the request is serializable); chunks are sized in keys, starting small and adapted to the
//! bytes the last one took against `--max-request-bytes`. Only the last chunk carries the header,
//! `more` and `count` (the same values a unary Range gives), so a client that merges the chunks
//! gets exactly the unary answer.

use crate::etcd::EtcdServer;
use cairn_proto::etcdserverpb::{
    RangeRequest,
    range_request::{SortOrder, SortTarget},
};
use cairn_proto::raw_range::{RawRangeResponse, RawRangeStreamResponse};
use std::pin::Pin;
use std::sync::Arc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

pub type RangeStreamStream =
    Pin<Box<dyn Stream<Item = Result<RawRangeStreamResponse, Status>> + Send>>;

/// Keys in the first chunk (etcd's initial chunk size).
const FIRST_CHUNK_KEYS: i64 = 10;

/// What a chunked range cannot do: order other than by key, and revision filters (etcd answers
/// Unimplemented for these too).
pub(super) fn check_streamable(r: &RangeRequest) -> Result<(), Status> {
    let by_key_ascending = r.sort_order == SortOrder::None as i32
        || (r.sort_target == SortTarget::Key as i32 && r.sort_order == SortOrder::Ascend as i32);
    if !by_key_ascending {
        return Err(Status::unimplemented(
            "etcdserver: RangeStream only supports ascending key order",
        ));
    }
    if r.min_mod_revision != 0
        || r.max_mod_revision != 0
        || r.min_create_revision != 0
        || r.max_create_revision != 0
    {
        return Err(Status::unimplemented(
            "etcdserver: RangeStream does not support revision filters",
        ));
    }
    Ok(())
}

/// The next chunk's size: doubled while chunks stay under half the target, halved when one
/// went over twice the target, never under one key.
fn next_chunk_keys(keys: i64, chunk_bytes: usize, target: usize) -> i64 {
    if chunk_bytes < target / 2 {
        keys.saturating_mul(2)
    } else if chunk_bytes > target.saturating_mul(2) {
        (keys / 2).max(1)
    } else {
        keys
    }
}

fn capped(chunk: i64, wanted: i64, sent: i64) -> i64 {
    if wanted > 0 {
        chunk.min(wanted - sent).max(1)
    } else {
        chunk
    }
}

/// Streams `req` (already checked and permitted) in chunks.
pub(super) async fn stream(
    server: Arc<EtcdServer>,
    req: RangeRequest,
) -> Result<RangeStreamStream, Status> {
    let wanted = req.limit;
    let first_req = RangeRequest {
        limit: if req.count_only {
            req.limit
        } else {
            capped(FIRST_CHUNK_KEYS, wanted, 0)
        },
        ..req.clone()
    };
    let first = server.range_raw(first_req).await?;
    let header = first.header;
    let total = first.count;
    let pinned = if req.revision > 0 {
        req.revision
    } else {
        header.as_ref().map_or(0, |h| h.revision)
    };
    let target = server.config.max_request_bytes as usize;
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    tokio::spawn(async move {
        let final_more = wanted > 0 && total > wanted;
        let mut chunk_keys = FIRST_CHUNK_KEYS;
        let mut sent: i64 = 0;
        let mut resp = first;
        loop {
            sent += resp.kvs.len() as i64;
            let done = req.count_only
                || !resp.more
                || resp.kvs.is_empty()
                || (wanted > 0 && sent >= wanted);
            if done {
                let last = RawRangeResponse {
                    header,
                    kvs: resp.kvs,
                    more: final_more,
                    count: total,
                };
                let _ = tx
                    .send(Ok(RawRangeStreamResponse {
                        range_response: Some(last),
                    }))
                    .await;
                return;
            }
            chunk_keys = next_chunk_keys(chunk_keys, resp.kvs.encoded_len(), target);
            let Some(mut next_key) = resp.kvs.last_key().map(|k| k.to_vec()) else {
                let _ = tx
                    .send(Err(Status::internal("a range chunk without a last key")))
                    .await;
                return;
            };
            next_key.push(0);
            let chunk = RawRangeResponse {
                header: None,
                kvs: resp.kvs,
                more: false,
                count: 0,
            };
            let sent_ok = tx
                .send(Ok(RawRangeStreamResponse {
                    range_response: Some(chunk),
                }))
                .await;
            if sent_ok.is_err() {
                // The client left.
                return;
            }
            // The rest at the pinned revision: a local read is as consistent as the first.
            let next_req = RangeRequest {
                key: next_key.into(),
                limit: capped(chunk_keys, wanted, sent),
                revision: pinned,
                serializable: true,
                ..req.clone()
            };
            resp = match server.range_raw(next_req).await {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.send(Err(e.into())).await;
                    return;
                }
            };
        }
    });
    Ok(Box::pin(ReceiverStream::new(rx)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_grow_and_shrink_with_their_bytes() {
        assert_eq!(next_chunk_keys(10, 100, 1000), 20);
        assert_eq!(next_chunk_keys(10, 700, 1000), 10);
        assert_eq!(next_chunk_keys(10, 2500, 1000), 5);
        assert_eq!(next_chunk_keys(1, 5000, 1000), 1);
        assert_eq!(capped(100, 0, 50), 100);
        assert_eq!(capped(100, 60, 50), 10);
    }

    #[test]
    fn only_key_order_and_no_filters() {
        let ok = RangeRequest::default();
        assert!(check_streamable(&ok).is_ok());
        let asc_key = RangeRequest {
            sort_order: SortOrder::Ascend as i32,
            ..Default::default()
        };
        assert!(check_streamable(&asc_key).is_ok());
        let desc = RangeRequest {
            sort_order: SortOrder::Descend as i32,
            ..Default::default()
        };
        assert_eq!(
            check_streamable(&desc).unwrap_err().code(),
            tonic::Code::Unimplemented
        );
        let filtered = RangeRequest {
            min_mod_revision: 3,
            ..Default::default()
        };
        assert!(check_streamable(&filtered).is_err());
    }
}
