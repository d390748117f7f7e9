//! Memory a client cannot grow without bound: writes are refused while applying lags far behind
//! committing, a watch client that never reads its answers is no longer read from, and an
//! abandoned election observer costs nothing once it is gone.

use cairn_client::Client;
use cairn_e2e::{Member, connect_retrying, put_concurrently, rss_bytes};
use cairn_proto::etcdserverpb::{WatchCreateRequest, WatchRequest, watch_request::RequestUnion};
use cairn_proto::v3electionpb::{LeaderRequest, election_client::ElectionClient};
use futures::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tonic::Code;

const MIB: u64 = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_refused_while_applying_lags_committing_by_5000() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing becomes durable in the backend, so a restart has all 6000 writes to re-apply.
    let mut m = Member::start(&dir.path().join("m1"), &["--snapshot-count", "1000000"]);
    let c = Client::connect(&[m.endpoint()], Duration::from_secs(2))
        .await
        .unwrap();
    put_concurrently(&c, "k", 20, 300).await;
    drop(c);
    m.env
        .push(("CAIRN_FAILPOINT_APPLY_HOLD_MS".into(), "5000".into()));
    m.restart_unready();
    let c = connect_retrying(&m.endpoint()).await;
    let held_until = Instant::now() + Duration::from_secs(4);
    let refused = loop {
        match c.put("during", "replay").await {
            Err(cairn_client::ClientError::Status(s)) if s.code() == Code::ResourceExhausted => {
                break s;
            }
            Err(e) if Instant::now() < held_until => {
                // Not serving yet (no leader for a moment after start): try again.
                let _ = e;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => panic!("a write was not refused while 6000 entries wait to apply: {other:?}"),
        }
    };
    assert_eq!(refused.message(), "etcdserver: too many requests");
    // Once the backlog is applied, writes go through again and nothing was lost.
    m.wait_ready();
    c.put("after", "ok").await.unwrap();
    assert_eq!(c.get_prefix("k/").await.unwrap().count, 6000);
    assert!(c.get("during").await.unwrap().kvs.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_client_that_never_reads_is_not_read_from() {
    const CREATES: usize = 400_000;
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(&dir.path().join("m1"), &[]);
    let pid = m.pid().unwrap();
    let c = Client::connect(&[m.endpoint()], Duration::from_secs(2))
        .await
        .unwrap();
    let before = rss_bytes(pid);
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = pulled.clone();
    let requests = futures::stream::iter(0..CREATES).map(move |i| {
        counter.fetch_add(1, Ordering::Relaxed);
        WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: format!("w{i}").into(),
                progress_notify: true,
                ..Default::default()
            })),
        }
    });
    // The answers are never read.
    let _responses = c.watch().watch(requests).await.unwrap();
    // Wait until the client stops being able to send: flow control has pushed back.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = usize::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = pulled.load(Ordering::Relaxed);
        if now == last || now == CREATES || Instant::now() > deadline {
            break;
        }
        last = now;
    }
    let sent = pulled.load(Ordering::Relaxed);
    let grown = rss_bytes(pid).saturating_sub(before);
    assert!(
        sent < CREATES / 2,
        "the server read {sent} watch creates from a client that read no answer"
    );
    assert!(grown < 64 * MIB, "the server grew by {} MiB", grown / MIB);
    // Other clients are served meanwhile.
    let other = Client::connect(&[m.endpoint()], Duration::from_secs(2))
        .await
        .unwrap();
    other.put("still", "serving").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_election_observers_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(&dir.path().join("m1"), &[]);
    let pid = m.pid().unwrap();
    let c = Client::connect(&[m.endpoint()], Duration::from_secs(2))
        .await
        .unwrap();
    let observe_and_leave = |n: usize| {
        let channel = c.channel();
        async move {
            let mut tasks = Vec::new();
            for t in 0..8 {
                let channel = channel.clone();
                tasks.push(tokio::spawn(async move {
                    let mut e = ElectionClient::new(channel);
                    for i in 0..n / 8 {
                        // An election nobody runs in: the observer would wait forever.
                        let stream = e
                            .observe(LeaderRequest {
                                name: format!("quiet-{t}-{i}").into(),
                            })
                            .await
                            .unwrap();
                        drop(stream);
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        }
    };
    // Warm up allocator and runtime, then measure a large round.
    observe_and_leave(2_000).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_bytes(pid);
    observe_and_leave(40_000).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let grown = rss_bytes(pid).saturating_sub(before);
    assert!(
        grown < 24 * MIB,
        "40 000 abandoned observers left {} MiB behind",
        grown / MIB
    );
    c.put("still", "serving").await.unwrap();
}
