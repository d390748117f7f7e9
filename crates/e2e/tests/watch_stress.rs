//! Watch under load: many watchers, concurrent writers; every watcher gets every event exactly
//! once, in revision order, atomically per revision, with the right prev_kv. A watcher that
//! stops reading neither loses events nor stalls writers, and resumed watches miss nothing across
//! a SIGKILL.

use bytes::Bytes;
use cairn_client::Client;
use cairn_e2e::Member;
use cairn_e2e::rss_bytes;
use cairn_proto::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, PutRequest, RequestOp, TxnRequest, WatchCreateRequest,
    WatchRequest, WatchResponse, request_op, watch_client::WatchClient,
    watch_request::RequestUnion,
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
        // A revision's events all come in one response: the first event of a response never
        // carries the revision the previous response ended with.
        if let Some(first) = resp.events.first().and_then(|e| e.kv.as_ref()) {
            assert!(
                first.mod_revision > self.last_rev,
                "revision {} split across responses",
                first.mod_revision
            );
        }
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
                self.last_rev = rev;
            }
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
        tokio::time::timeout(Duration::from_secs(120), w)
            .await
            .expect("a writer is blocked")
            .unwrap();
    }
    let write_time = t.elapsed();
    let last = start + (WRITERS * OPS) as i64 - 1;
    let mut events = None;
    for r in readers {
        let c = tokio::time::timeout(Duration::from_secs(120), r)
            .await
            .expect("a watcher is blocked")
            .unwrap();
        assert_eq!(c.last_rev, last);
        assert_eq!(
            *events.get_or_insert(c.events),
            c.events,
            "watchers saw different event counts"
        );
    }
    // The stalled watcher did not hold the writers back (its memory is checked by
    // `a_stalled_watcher_costs_bounded_memory`, with a backlog large enough to show).
    assert!(
        write_time < Duration::from_secs(60),
        "writers took {write_time:?}"
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

async fn compact(c: &Client, revision: i64) {
    c.kv()
        .compact(CompactionRequest {
            revision,
            physical: false,
        })
        .await
        .unwrap();
}

const BIG_PUTS: usize = 1500;
const BIG_VALUE: usize = 64 << 10;

/// How much a fresh member grows while 1500 values of 64 KiB are written to one key (compacted
/// every 50 writes, so the store itself stays small) with a watcher on `watched` that reads
/// nothing. Returns the growth and the watcher, for a look at what it gets afterwards.
async fn growth_under_stalled_watcher(
    key: &str,
) -> (
    u64,
    tonic::Streaming<WatchResponse>,
    Member,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(&dir.path().join("m1"), &[]);
    let ep = m.endpoint();
    let c = Client::connect(std::slice::from_ref(&ep), Duration::from_secs(2))
        .await
        .unwrap();
    let (tx, stalled) = open_watch(&ep, 0).await;
    std::mem::forget(tx);
    let pid = m.pid().unwrap();
    let value = Bytes::from(vec![b'v'; BIG_VALUE]);
    let put = async |i: usize| {
        let rev = c
            .put(key.to_string(), value.clone())
            .await
            .unwrap()
            .header
            .unwrap()
            .revision;
        if i % 50 == 49 {
            compact(&c, rev).await;
        }
    };
    // Warm-up: allocator and caches reach their working size first.
    for i in 0..100 {
        put(i).await;
    }
    let before = rss_bytes(pid);
    let t = Instant::now();
    for i in 0..BIG_PUTS {
        put(i).await;
    }
    assert!(t.elapsed() < Duration::from_secs(120), "writes stalled");
    (rss_bytes(pid).saturating_sub(before), stalled, m, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_watcher_costs_bounded_memory() {
    // The same writes once unwatched (the watcher looks at another prefix) and once watched by
    // a watcher that reads nothing: a server that buffered the 93 MiB backlog would grow by all
    // of it more the second time.
    let (unwatched, _, _m1, _d1) = growth_under_stalled_watcher("elsewhere/big").await;
    let (watched, mut stalled, _m2, _d2) =
        growth_under_stalled_watcher(&format!("{PREFIX}big")).await;
    assert!(
        watched < unwatched + (32 << 20),
        "a stalled watcher's backlog of {} MiB grew the server by {} MiB more than the same \
         writes unwatched ({} MiB)",
        (BIG_PUTS * BIG_VALUE) >> 20,
        (watched.saturating_sub(unwatched)) >> 20,
        unwatched >> 20
    );
    // When it reads at last, it is told its history was compacted away, or gets what is left.
    let resp = tokio::time::timeout(Duration::from_secs(30), stalled.message())
        .await
        .expect("the stalled watcher never got an answer")
        .unwrap()
        .unwrap();
    assert!(resp.canceled || !resp.events.is_empty(), "{resp:?}");
}
