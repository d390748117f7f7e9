//! HTTP/2 settings of client connections as etcd's flags choose them: by default a connection
//! carries as many streams as a client opens (etcd's gRPC server allows 2^32-1; the HTTP/2
//! library's own default of 200 would hold back a client that multiplexes watches, as
//! kube-apiserver does); `--max-concurrent-streams` bounds them.

use cairn_e2e::Member;
use cairn_proto::etcdserverpb::{WatchCreateRequest, WatchRequest, watch_request};
use futures::StreamExt;
use std::time::Duration;

/// Opens `n` watch streams on one connection; how many were created within a few seconds.
fn open_watches(endpoint: &str, n: usize) -> usize {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let client = cairn_client::Client::connect_one(endpoint, Duration::from_secs(5))
            .await
            .expect("connect");
        let mut opened = Vec::new();
        for i in 0..n {
            let mut watch = client.watch();
            opened.push(tokio::spawn(async move {
                let create = WatchRequest {
                    request_union: Some(watch_request::RequestUnion::CreateRequest(
                        WatchCreateRequest {
                            key: format!("w{i}").into_bytes().into(),
                            ..Default::default()
                        },
                    )),
                };
                // The request side stays open, as a real watcher's does.
                let requests = futures::stream::iter([create]).chain(futures::stream::pending());
                let mut responses = watch.watch(requests).await.ok()?.into_inner();
                let first = responses.next().await?.ok()?;
                // Held open until the end of the test.
                std::mem::forget(responses);
                first.created.then_some(())
            }));
        }
        // One deadline for all: streams held back by a limit never finish, and each must not
        // cost a wait of its own.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let mut created = 0;
        for w in opened {
            if let Ok(Ok(Some(()))) = tokio::time::timeout_at(deadline, w).await {
                created += 1;
            }
        }
        created
    })
}

#[test]
fn a_connection_carries_every_stream_its_client_opens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let member = Member::start(&dir.path().join("m1"), &[]);
    assert_eq!(open_watches(&member.endpoint(), 300), 300);
}

#[test]
fn max_concurrent_streams_bounds_a_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let member = Member::start(&dir.path().join("m1"), &["--max-concurrent-streams", "3"]);
    assert_eq!(open_watches(&member.endpoint(), 5), 3);
}
