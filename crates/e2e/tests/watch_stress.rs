//! Watch under load: many watchers, concurrent writers; every watcher gets every event exactly
//! once, in revision order, atomically per revision, with the right prev_kv. A watcher that
//! stops reading neither loses events nor stalls writers, and resumed watches miss nothing across
//! a SIGKILL.

use bytes::Bytes;
use cairn_client::Client;
use cairn_e2e::Member;
use cairn_e2e::rss_bytes;
use cairn_proto::etcdserverpb::{
    DeleteRangeRequest, PutRequest, RequestOp, TxnRequest, WatchCreateRequest, WatchRequest,
    WatchResponse, request_op, watch_client::WatchClient, watch_request::RequestUnion,
};
use cairn_proto::mvccpb::{KeyValue, event::EventType};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const PREFIX: &str = "s/";

async fn open_watch(
    ep: &str,
    start_revision: i64,
) -> (mpsc::Sender<WatchRequest>, tonic::Streaming<WatchResponse>) {
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{ep}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let (tx, rx) = mpsc::channel(4);
    tx.send(WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: Bytes::from_static(PREFIX.as_bytes()),
            range_end: Bytes::from(cairn_client::prefix_end(PREFIX.as_bytes())),
            start_revision,
            prev_kv: true,
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    let mut stream = WatchClient::new(ch)
        .max_decoding_message_size(usize::MAX)
        .watch(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let created = stream.message().await.unwrap().unwrap();
    assert!(created.created);
    (tx, stream)
}

/// Checks one watcher's history against a model of the key space and returns the last revision.
struct Checker {
    model: BTreeMap<Bytes, KeyValue>,
    last_rev: i64,
    events: usize,
}

impl Checker {
    fn new(start: i64) -> Self {
        Checker {
            model: BTreeMap::new(),
            last_rev: start - 1,
            events: 0,
        }
    }

    fn feed(&mut self, resp: &WatchResponse) {
        let mut revs_in_resp = Vec::new();
        for ev in &resp.events {
            let kv = ev.kv.clone().unwrap();
            let rev = kv.mod_revision;
            assert!(
                rev >= self.last_rev,
                "revision went backwards: {rev} after {}",
                self.last_rev
            );
            if rev > self.last_rev {
                assert_eq!(
                    rev,
                    self.last_rev + 1,
                    "revision {} skipped",
                    self.last_rev + 1
                );
                assert!(
                    !revs_in_resp.contains(&rev),
                    "revision split across a response"
                );
                self.last_rev = rev;
            }
            revs_in_resp.push(rev);
            let prev = self.model.get(&kv.key).cloned();
            assert_eq!(ev.prev_kv, prev, "wrong prev_kv at revision {rev}");
            if ev.r#type == EventType::Put as i32 {
                self.model.insert(kv.key.clone(), kv);
            } else {
                self.model.remove(&kv.key);
            }
            self.events += 1;
        }
    }
}

async fn writer(ep: String, w: usize, ops: usize) {
    let c = Client::connect(&[ep], Duration::from_secs(2))
        .await
        .unwrap();
    let mut kv = c.kv();
    for i in 0..ops {
        let key = format!("{PREFIX}{}", (w * 7 + i) % 40);
        let value = format!("w{w}-{i}-{}", "x".repeat(200));
        // Every operation creates exactly one revision: deletes remove a key this writer put
        // just before, so none of them deletes nothing.
        match i % 5 {
            3 => {
                let k = format!("{PREFIX}w{w}-d{i}");
                kv.put(PutRequest {
                    key: k.into(),
                    value: value.clone().into(),
                    ..Default::default()
                })
                .await
                .unwrap();
            }
            4 => {
                let k = format!("{PREFIX}w{w}-d{}", i - 1);
                let r = kv
                    .delete_range(DeleteRangeRequest {
                        key: k.into(),
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .into_inner();
                assert_eq!(r.deleted, 1);
            }
            1 => {
                // Two keys in one revision: must arrive in one response.
                let put = |k: String| RequestOp {
                    request: Some(request_op::Request::RequestPut(PutRequest {
                        key: k.into(),
                        value: Bytes::from(value.clone()),
                        ..Default::default()
                    })),
                };
                kv.txn(TxnRequest {
                    compare: vec![],
                    success: vec![put(key.clone()), put(format!("{key}-pair"))],
                    failure: vec![],
                })
                .await
                .unwrap();
            }
            _ => {
                kv.put(PutRequest {
                    key: key.into(),
                    value: value.into(),
                    ..Default::default()
                })
                .await
                .unwrap();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_watchers_get_every_event_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(&dir.path().join("m1"), &[]);
    let ep = m.endpoint();
    let start = Client::connect(std::slice::from_ref(&ep), Duration::from_secs(2))
        .await
        .unwrap()
        .status()
        .await
        .unwrap()
        .header
        .unwrap()
        .revision
        + 1;
    const WATCHERS: usize = 16;
    const WRITERS: usize = 8;
    const OPS: usize = 300;
    let mut watchers = Vec::new();
    for _ in 0..WATCHERS {
        watchers.push(open_watch(&ep, start).await);
    }
    // This one does not read at all while the writers run.
    let (_stalled_tx, mut stalled) = open_watch(&ep, start).await;
    let rss_before = rss_bytes(m.pid().unwrap());

    let t = Instant::now();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| tokio::spawn(writer(ep.clone(), w, OPS)))
        .collect();
    let readers: Vec<_> = watchers
        .into_iter()
        .map(|(tx, mut stream)| {
            tokio::spawn(async move {
                let _keep = tx;
                let mut c = Checker::new(start);
                while c.last_rev < start + (WRITERS * OPS) as i64 - 1 {
                    let resp = tokio::time::timeout(Duration::from_secs(30), stream.message())
                        .await
                        .expect("watcher starved")
                        .unwrap()
                        .unwrap();
                    c.feed(&resp);
                }
                c
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let write_time = t.elapsed();
    let last = start + (WRITERS * OPS) as i64 - 1;
    let mut events = None;
    for r in readers {
        let c = r.await.unwrap();
        assert_eq!(c.last_rev, last);
        assert_eq!(
            *events.get_or_insert(c.events),
            c.events,
            "watchers saw different event counts"
        );
    }
    // The stalled watcher did not hold the writers back...
    assert!(
        write_time < Duration::from_secs(60),
        "writers took {write_time:?}"
    );
    // ...nor made the server buffer its backlog without bound.
    let rss_after = rss_bytes(m.pid().unwrap());
    assert!(
        rss_after < rss_before + 200 * 1024 * 1024,
        "server RSS grew from {rss_before} to {rss_after}"
    );
    // Now it reads, and gets everything, once, in order, from history.
    let mut c = Checker::new(start);
    while c.last_rev < last {
        let resp = tokio::time::timeout(Duration::from_secs(30), stalled.message())
            .await
            .expect("stalled watcher never caught up")
            .unwrap()
            .unwrap();
        c.feed(&resp);
    }
    assert_eq!(Some(c.events), events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumed_watch_misses_nothing_across_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Member::start(&dir.path().join("m1"), &[]);
    let ep = m.endpoint();
    let (_tx, mut stream) = open_watch(&ep, 2).await;
    writer(ep.clone(), 0, 50).await;
    let mut c = Checker::new(2);
    while c.last_rev < 51 {
        c.feed(&stream.message().await.unwrap().unwrap());
    }
    // Writes the watcher never sees live, then a crash.
    writer(ep.clone(), 1, 50).await;
    m.kill9();
    m.restart();
    let (_tx, mut stream) = open_watch(&m.endpoint(), c.last_rev + 1).await;
    writer(m.endpoint(), 2, 10).await;
    while c.last_rev < 111 {
        let resp = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("resumed watch stalled")
            .unwrap()
            .unwrap();
        c.feed(&resp);
    }
    assert_eq!(c.last_rev, 111);
}
