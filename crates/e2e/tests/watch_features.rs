//! Watch features over the wire: fragments at --max-request-bytes, progress notifications,
//! RequestProgress, filters, cancel, compacted start revisions and client-chosen ids.

use bytes::Bytes;
use cairn_client::Client;
use cairn_e2e::Member;
use cairn_proto::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, WatchCancelRequest, WatchCreateRequest,
    WatchProgressRequest, WatchRequest, WatchResponse, watch_client::WatchClient,
    watch_create_request::FilterType, watch_request::RequestUnion,
};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

async fn stream(ep: &str) -> (mpsc::Sender<WatchRequest>, tonic::Streaming<WatchResponse>) {
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{ep}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let (tx, rx) = mpsc::channel(8);
    let s = WatchClient::new(ch)
        .max_decoding_message_size(usize::MAX)
        .watch(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    (tx, s)
}

fn create(c: WatchCreateRequest) -> WatchRequest {
    WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(c)),
    }
}

async fn next(s: &mut tonic::Streaming<WatchResponse>) -> WatchResponse {
    tokio::time::timeout(Duration::from_secs(10), s.message())
        .await
        .expect("no watch response")
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_responses_are_fragmented() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(&dir.path().join("m1"), &["--max-request-bytes", "4096"]);
    let c = Client::connect(&[m.endpoint()], Duration::from_secs(2))
        .await
        .unwrap();
    for i in 0..10 {
        c.put(format!("big/{i}"), vec![b'x'; 1000]).await.unwrap();
    }
    let (tx, mut s) = stream(&m.endpoint()).await;
    tx.send(create(WatchCreateRequest {
        key: Bytes::from_static(b"big/"),
        range_end: Bytes::from_static(b"big0"),
        prev_kv: true,
        fragment: true,
        ..Default::default()
    }))
    .await
    .unwrap();
    assert!(next(&mut s).await.created);
    // One revision deleting ten keys, each event carrying a 1000-byte prev_kv: over 4096 bytes.
    c.kv()
        .delete_range(DeleteRangeRequest {
            key: Bytes::from_static(b"big/"),
            range_end: Bytes::from_static(b"big0"),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut events = 0;
    let mut pieces = 0;
    loop {
        let r = next(&mut s).await;
        pieces += 1;
        events += r.events.len();
        assert!(
            prost::Message::encoded_len(&r) <= 4096 + 1100,
            "fragment too large"
        );
        if !r.fragment {
            break;
        }
    }
    assert_eq!(events, 10);
    assert!(pieces >= 3, "expected several fragments, got {pieces}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_notify_and_request_progress() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(
        &dir.path().join("m1"),
        &["--watch-progress-notify-interval", "500ms"],
    );
    let c = Client::connect(&[m.endpoint()], Duration::from_secs(2))
        .await
        .unwrap();
    c.put("p", "1").await.unwrap();
    let (tx, mut s) = stream(&m.endpoint()).await;
    tx.send(create(WatchCreateRequest {
        key: Bytes::from_static(b"p"),
        progress_notify: true,
        ..Default::default()
    }))
    .await
    .unwrap();
    let created = next(&mut s).await;
    assert!(created.created);
    // Idle: a progress notification (no events) with the current revision.
    let r = next(&mut s).await;
    assert!(r.events.is_empty());
    assert_eq!(r.watch_id, created.watch_id);
    assert_eq!(r.header.unwrap().revision, 2);
    tx.send(WatchRequest {
        request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})),
    })
    .await
    .unwrap();
    loop {
        let r = next(&mut s).await;
        if r.watch_id == -1 {
            assert_eq!(r.header.unwrap().revision, 2);
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_cancel_ids_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(&dir.path().join("m1"), &[]);
    let c = Client::connect(&[m.endpoint()], Duration::from_secs(2))
        .await
        .unwrap();
    for i in 0..5 {
        c.put("f", format!("{i}")).await.unwrap(); // revisions 2..=6
    }
    c.kv()
        .compact(CompactionRequest {
            revision: 5,
            physical: true,
        })
        .await
        .unwrap();
    let (tx, mut s) = stream(&m.endpoint()).await;
    // Client-chosen id, puts filtered out.
    tx.send(create(WatchCreateRequest {
        key: Bytes::from_static(b"f"),
        watch_id: 42,
        filters: vec![FilterType::Noput as i32],
        ..Default::default()
    }))
    .await
    .unwrap();
    let r = next(&mut s).await;
    assert!(r.created && r.watch_id == 42);
    // The same id again is refused.
    tx.send(create(WatchCreateRequest {
        key: Bytes::from_static(b"g"),
        watch_id: 42,
        ..Default::default()
    }))
    .await
    .unwrap();
    let r = next(&mut s).await;
    assert!(r.created && r.canceled && r.watch_id == 42, "{r:?}");
    // Starting below the compaction: canceled with the compact revision.
    tx.send(create(WatchCreateRequest {
        key: Bytes::from_static(b"f"),
        start_revision: 3,
        ..Default::default()
    }))
    .await
    .unwrap();
    let r = next(&mut s).await;
    assert!(r.created);
    let compacted_id = r.watch_id;
    let r = next(&mut s).await;
    assert_eq!(r.watch_id, compacted_id);
    assert!(r.canceled);
    assert_eq!(r.compact_revision, 5);
    assert_eq!(
        r.cancel_reason,
        "mvcc: required revision has been compacted"
    );
    c.put("f", "put-is-filtered").await.unwrap();
    c.delete("f").await.unwrap();
    let r = next(&mut s).await;
    assert_eq!(r.watch_id, 42);
    assert_eq!(r.events.len(), 1);
    assert_eq!(r.events[0].r#type, 1, "only the delete passes the filter");
    tx.send(WatchRequest {
        request_union: Some(RequestUnion::CancelRequest(WatchCancelRequest {
            watch_id: 42,
        })),
    })
    .await
    .unwrap();
    let r = next(&mut s).await;
    assert!(r.canceled && r.watch_id == 42);
    c.put("f", "after-cancel").await.unwrap();
    c.delete("f").await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(500), s.message())
            .await
            .is_err(),
        "events after cancel"
    );
}
