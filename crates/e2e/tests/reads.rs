//! Reads: read-only txns are served like ranges (no log entry, still linearizable), and large
//! ranges read in stretches return one consistent view.

use bytes::Bytes;
use cairn_client::Client;
use cairn_e2e::Member;
use cairn_proto::etcdserverpb::{
    PutRequest, RangeRequest, RequestOp, StatusRequest, TxnRequest, request_op, response_op,
};
use std::time::Duration;

fn get_op(key: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(RangeRequest {
            key: Bytes::from(key.to_owned()),
            ..Default::default()
        })),
    }
}

async fn raft_index(c: &Client) -> u64 {
    c.maintenance()
        .status(StatusRequest {})
        .await
        .unwrap()
        .into_inner()
        .raft_index
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_txns_take_no_log_entry_and_see_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(&dir.path().join("m1"), &[]);
    let c = Client::connect(&[m.endpoint()], Duration::from_secs(2))
        .await
        .unwrap();
    for i in 0..20 {
        c.put("k", format!("v{i}")).await.unwrap();
        let before = raft_index(&c).await;
        let resp = c
            .kv()
            .txn(TxnRequest {
                compare: vec![],
                success: vec![get_op("k"), get_op("missing")],
                failure: vec![],
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            raft_index(&c).await,
            before,
            "a read-only txn went through the log"
        );
        let Some(response_op::Response::ResponseRange(r)) = &resp.responses[0].response else {
            panic!("{resp:?}");
        };
        assert_eq!(r.kvs[0].value.as_ref(), format!("v{i}").as_bytes());
        assert_eq!(resp.header.as_ref().unwrap().member_id, m_id(&c).await);
    }
    // A txn that writes still does.
    let before = raft_index(&c).await;
    c.kv()
        .txn(TxnRequest {
            compare: vec![],
            success: vec![RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key: Bytes::from_static(b"w"),
                    value: Bytes::from_static(b"1"),
                    ..Default::default()
                })),
            }],
            failure: vec![],
        })
        .await
        .unwrap();
    assert!(raft_index(&c).await > before);
}

async fn m_id(c: &Client) -> u64 {
    c.status().await.unwrap().header.unwrap().member_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_range_is_whole_and_in_order() {
    // More keys than one stretch of the index (4096), written in parallel, read back whole.
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(&dir.path().join("m1"), &[]);
    let c = Client::connect(&[m.endpoint()], Duration::from_secs(2))
        .await
        .unwrap();
    let mut writers = Vec::new();
    for w in 0..10 {
        let c = c.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..1000 {
                c.put(format!("big/{:05}", w * 1000 + i), "x")
                    .await
                    .unwrap();
            }
        }));
    }
    for w in writers {
        tokio::time::timeout(Duration::from_secs(60), w)
            .await
            .expect("writer hung")
            .unwrap();
    }
    let all = c.get_prefix("big/").await.unwrap();
    assert_eq!(all.count, 10_000);
    assert_eq!(all.kvs.len(), 10_000);
    for (i, kv) in all.kvs.iter().enumerate() {
        assert_eq!(kv.key.as_ref(), format!("big/{i:05}").as_bytes());
    }
    let limited = c
        .kv()
        .range(RangeRequest {
            key: Bytes::from_static(b"big/"),
            range_end: Bytes::from_static(b"big0"),
            limit: 5000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(limited.kvs.len(), 5000);
    assert!(limited.more);
    assert_eq!(limited.count, 10_000);
}
