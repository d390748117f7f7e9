//! Multi-member clusters of real `cairn` processes: bootstrap from `--initial-cluster`,
//! replication of writes made on any member, linearizable reads on every member, and failover
//! under SIGKILL of the leader with nothing acknowledged lost.

use cairn_client::Client;
use cairn_e2e::{Cluster, etcdctl};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Shorter than etcd's defaults so that failovers fit in a test; same ratio.
const FAST_RAFT: &[&str] = &["--heartbeat-interval", "50", "--election-timeout", "500"];

async fn client(endpoint: &str) -> Client {
    cairn_e2e::connect_retrying(endpoint).await
}

/// Waits until `member list` on `endpoint` shows every member as started.
fn wait_all_started(endpoint: &str, names: &[String]) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let run = etcdctl(endpoint, &["member", "list"], None);
        if run.code == 0
            && names
                .iter()
                .all(|n| run.stdout.contains(&format!(", started, {n}, ")))
        {
            return run.stdout;
        }
        assert!(
            Instant::now() < deadline,
            "members not all started: {run:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_serve_writes_and_linearizable_reads_on_every_member() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cluster::start(dir.path(), 3, FAST_RAFT);
    let names: Vec<String> = c.members.iter().map(|m| m.name.clone()).collect();
    for m in &c.members {
        let list = wait_all_started(&m.endpoint(), &names);
        for other in &c.members {
            let line = format!(
                ", started, {}, {}, {}, false",
                other.name,
                other.peer_url(),
                other.url()
            );
            assert!(list.contains(&line), "{list}");
        }
    }

    // A write on any member, with real etcdctl; a linearizable read on every member sees it
    // as soon as the write is acknowledged.
    for (i, m) in c.members.iter().enumerate() {
        let put = etcdctl(
            &m.endpoint(),
            &["put", &format!("k{i}"), &format!("v{i}")],
            None,
        );
        assert_eq!(put.code, 0, "{put:?}");
        for reader in &c.members {
            let got = etcdctl(
                &reader.endpoint(),
                &["get", &format!("k{i}"), "--print-value-only"],
                None,
            );
            assert_eq!(
                got.stdout.trim(),
                format!("v{i}"),
                "{} read {got:?}",
                reader.name
            );
        }
    }
    // Every member holds the same data at the same revision.
    let mut hashes = BTreeSet::new();
    for m in &c.members {
        let s = etcdctl(&m.endpoint(), &["endpoint", "hashkv", "-w", "json"], None);
        assert_eq!(s.code, 0, "{s:?}");
        let v: serde_json::Value = serde_json::from_str(&s.stdout).unwrap();
        hashes.insert(v[0]["HashKV"]["hash"].as_u64().unwrap());
    }
    assert_eq!(
        hashes.len(),
        1,
        "HashKV differs between members: {hashes:?}"
    );

    // Every member agrees on the leader; `endpoint status` shows it from each.
    let status = etcdctl(&c.endpoints(), &["endpoint", "status", "-w", "json"], None);
    assert_eq!(status.code, 0, "{status:?}");
    let v: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let leaders: BTreeSet<u64> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Status"]["leader"].as_u64().unwrap())
        .collect();
    assert_eq!(leaders.len(), 1, "{}", status.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_members_bootstrap_and_replicate() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cluster::start(dir.path(), 5, FAST_RAFT);
    let clients =
        futures::future::join_all(c.members.iter().map(|m| client_for(m.endpoint()))).await;
    for (i, cl) in clients.iter().enumerate() {
        cl.put(format!("five/{i}"), "x").await.unwrap();
    }
    for cl in &clients {
        let r = cl.get_prefix("five/").await.unwrap();
        assert_eq!(r.count, 5);
    }
}

async fn client_for(endpoint: String) -> Client {
    client(&endpoint).await
}

/// One writer per endpoint putting unique keys `{prefix}{writer}/{seq}` until `stop`,
/// reconnecting when its member goes away; each returns the keys acknowledged to it.
fn spawn_writers(
    endpoints: &[String],
    prefix: &str,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Vec<String>>> {
    endpoints
        .iter()
        .enumerate()
        .map(|(w, ep)| {
            let (ep, stop, prefix) = (ep.clone(), stop.clone(), prefix.to_string());
            tokio::spawn(async move {
                let mut acked = Vec::new();
                let mut seq = 0u64;
                let mut cl: Option<Client> = None;
                while !stop.load(Ordering::Relaxed) {
                    if cl.is_none() {
                        cl = Client::connect_one(&ep, Duration::from_millis(300))
                            .await
                            .ok();
                        if cl.is_none() {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    }
                    let Some(client) = cl.as_ref() else { continue };
                    let key = format!("{prefix}{w}/{seq:06}");
                    seq += 1;
                    match tokio::time::timeout(Duration::from_secs(8), client.put(key.clone(), "v"))
                        .await
                    {
                        Ok(Ok(_)) => acked.push(key),
                        Ok(Err(_)) => {
                            cl = None;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Err(_) => cl = None,
                    }
                }
                acked
            })
        })
        .collect()
}

/// Every acknowledged key is on every member (linearizable reads).
async fn assert_all_acknowledged(endpoints: &[String], prefix: &str, acked: &[String]) {
    for ep in endpoints {
        let cl = client(ep).await;
        let mut have = BTreeSet::new();
        for w in 0..endpoints.len() {
            let r = cl.get_prefix(format!("{prefix}{w}/")).await.unwrap();
            have.extend(
                r.kvs
                    .into_iter()
                    .map(|kv| String::from_utf8(kv.key.to_vec()).unwrap()),
            );
        }
        let lost: Vec<&String> = acked.iter().filter(|k| !have.contains(*k)).collect();
        assert!(
            lost.is_empty(),
            "{ep} lost {} acknowledged writes, e.g. {:?}",
            lost.len(),
            &lost[..lost.len().min(5)]
        );
    }
}

/// Writers on every member put unique keys while the leader is SIGKILLed and restarted, round
/// after round; a reader checks that linearizable reads never go back in time, whichever member
/// answers. In the end every acknowledged write is on every member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cluster::start(dir.path(), 3, FAST_RAFT);
    let endpoints: Vec<String> = c.members.iter().map(|m| m.endpoint()).collect();
    let stop = Arc::new(AtomicBool::new(false));

    let writers = spawn_writers(&endpoints, "w", &stop);
    let reader = {
        let (endpoints, stop) = (endpoints.clone(), stop.clone());
        tokio::spawn(async move {
            let mut highest = 0i64;
            let mut reads = 0u64;
            let mut turn = 0usize;
            while !stop.load(Ordering::Relaxed) {
                turn += 1;
                let ep = &endpoints[turn % endpoints.len()];
                let Ok(cl) = Client::connect_one(ep, Duration::from_millis(300)).await else {
                    continue;
                };
                for _ in 0..20 {
                    let Ok(Ok(r)) =
                        tokio::time::timeout(Duration::from_secs(8), cl.get("w0/")).await
                    else {
                        break;
                    };
                    let rev = r.header.map_or(0, |h| h.revision);
                    assert!(
                        rev >= highest,
                        "a linearizable read on {ep} went back from revision {highest} to {rev}"
                    );
                    highest = rev;
                    reads += 1;
                }
            }
            reads
        })
    };

    for round in 0..3 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let leader = c.leader(Duration::from_secs(10)).await;
        c.members[leader].kill9();
        let killed_at = Instant::now();
        let new = c.leader(Duration::from_secs(10)).await;
        assert_ne!(new, leader);
        let took = killed_at.elapsed();
        // A few election timeouts (500 ms each), plus the time to ask.
        assert!(
            took < Duration::from_secs(5),
            "round {round}: a new leader took {took:?}"
        );
        eprintln!(
            "round {round}: killed m{}, m{} leads after {took:?}",
            leader + 1,
            new + 1
        );
        tokio::time::sleep(Duration::from_millis(1000)).await;
        c.members[leader].restart();
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    let reads = reader.await.unwrap();
    eprintln!(
        "{} writes acknowledged, {reads} linearizable reads checked",
        acked.len()
    );
    assert!(
        acked.len() > 100,
        "too few writes acknowledged: {}",
        acked.len()
    );
    assert!(reads > 50, "too few reads: {reads}");

    assert_all_acknowledged(&endpoints, "w", &acked).await;
}

/// Leases granted and kept alive through a follower survive the leader's SIGKILL; a lease that
/// nobody keeps alive neither expires early because of the failover nor lives on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_survive_a_leader_change_and_keep_alives_work_on_followers() {
    use cairn_proto::etcdserverpb::{
        LeaseGrantRequest, LeaseKeepAliveRequest, LeaseTimeToLiveRequest, PutRequest,
    };
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cluster::start(dir.path(), 3, FAST_RAFT);
    let leader = c.leader(Duration::from_secs(10)).await;
    // The follower that will survive, and talk to clients throughout.
    let f = (leader + 1) % 3;
    let cl = client(&c.members[f].endpoint()).await;
    let grant = |ttl: i64| {
        let cl = cl.clone();
        async move {
            cl.lease()
                .lease_grant(LeaseGrantRequest { ttl, id: 0 })
                .await
                .unwrap()
                .into_inner()
                .id
        }
    };
    let kept = grant(4).await;
    let idle = grant(6).await;
    let granted_at = Instant::now();
    for (key, lease) in [("kept", kept), ("idle", idle)] {
        cl.kv()
            .put(PutRequest {
                key: key.into(),
                value: "v".into(),
                lease,
                ..Default::default()
            })
            .await
            .unwrap();
    }

    // Keep-alives through the follower reach the leader's deadlines.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut answers = cl
        .lease()
        .lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    // On failure, the serving member's log says why.
    let f_log = c.members[f].log.clone();
    let mut keep_alive = async || {
        tx.send(LeaseKeepAliveRequest { id: kept }).await.unwrap();
        let r = match answers.message().await {
            Ok(Some(r)) => r,
            other => panic!(
                "keep-alive through m{} failed: {other:?}\n{}",
                f + 1,
                std::fs::read_to_string(&f_log).unwrap_or_default()
            ),
        };
        assert_eq!((r.id, r.ttl), (kept, 4), "{r:?}");
    };
    keep_alive().await;
    let ttl = cl
        .lease()
        .lease_time_to_live(LeaseTimeToLiveRequest {
            id: kept,
            keys: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(ttl.ttl >= 3 && ttl.granted_ttl == 4, "{ttl:?}");
    assert_eq!(ttl.keys, vec![bytes::Bytes::from("kept")]);

    c.members[leader].kill9();
    // Keep-alives go on across the election, for longer than either TTL.
    let until = Instant::now() + Duration::from_secs(8);
    let mut checked_idle = false;
    while Instant::now() < until {
        keep_alive().await;
        if !checked_idle && granted_at.elapsed() >= Duration::from_millis(5000) {
            // 5 s into a 6 s lease: a failover must not have cut it short.
            let r = cl.get("idle").await.unwrap();
            assert_eq!(
                r.count, 1,
                "the idle lease expired early after the failover"
            );
            checked_idle = true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(checked_idle);
    assert_eq!(
        cl.get("kept").await.unwrap().count,
        1,
        "kept-alive lease expired"
    );
    // Nobody renews the idle lease: it is revoked by the new leader, a TTL (plus the
    // failover's bounded extension) after it was granted.
    assert_eq!(
        cl.get("idle").await.unwrap().count,
        0,
        "idle lease outlived its TTL"
    );
    drop(tx);
    let deadline = Instant::now() + Duration::from_secs(12);
    while cl.get("kept").await.unwrap().count == 1 {
        assert!(
            Instant::now() < deadline,
            "lease lived on without keep-alives"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A watch opened with `hasleader` ends with "etcdserver: no leader" when its member loses the
/// cluster; one opened without it stays open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hasleader_watches_are_canceled_when_their_member_loses_the_leader() {
    use cairn_proto::etcdserverpb::{
        WatchCreateRequest, WatchRequest, watch_request::RequestUnion,
    };
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cluster::start(dir.path(), 3, FAST_RAFT);
    let cl = client(&c.members[0].endpoint()).await;
    let open = |require_leader: bool| {
        let cl = cl.clone();
        async move {
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            tx.send(WatchRequest {
                request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                    key: "w".into(),
                    ..Default::default()
                })),
            })
            .await
            .unwrap();
            let mut req = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
            if require_leader {
                req.metadata_mut()
                    .insert("hasleader", "true".parse().unwrap());
            }
            let mut stream = cl.watch().watch(req).await.unwrap().into_inner();
            let created = stream.message().await.unwrap().unwrap();
            assert!(created.created);
            (tx, stream)
        }
    };
    let (_keep1, mut guarded) = open(true).await;
    let (_keep2, mut plain) = open(false).await;
    c.members[1].kill9();
    c.members[2].kill9();
    let lost_at = Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(10), guarded.message())
        .await
        .expect("hasleader watch still open 10 s after its member lost the leader")
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert_eq!(status.message(), "etcdserver: no leader");
    // Three checks 500 ms apart must all find no leader, so never sooner than 1 s after the
    // last member went down (the kills themselves take part of the first period).
    assert!(
        lost_at.elapsed() >= Duration::from_millis(1000),
        "{:?}",
        lost_at.elapsed()
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(500), plain.message())
            .await
            .is_err(),
        "a watch without hasleader ended"
    );
    // With no leader, a new hasleader stream is refused at once.
    let (tx, rx) = tokio::sync::mpsc::channel::<WatchRequest>(1);
    let mut req = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    req.metadata_mut()
        .insert("hasleader", "true".parse().unwrap());
    let err = cl.watch().watch(req).await.unwrap_err();
    assert_eq!(err.message(), "etcdserver: no leader");
    drop(tx);
}

/// `etcdctl move-leader` hands leadership to each member in turn while clients write; etcd's
/// refusals for a follower and for a non-member; nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn move_leader_under_load_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cluster::start(dir.path(), 3, FAST_RAFT);
    let endpoints: Vec<String> = c.members.iter().map(|m| m.endpoint()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let writers = spawn_writers(&endpoints, "m", &stop);
    let ids: Vec<u64> = {
        let mut ids = Vec::new();
        for ep in &endpoints {
            ids.push(
                client(ep)
                    .await
                    .status()
                    .await
                    .unwrap()
                    .header
                    .unwrap()
                    .member_id,
            );
        }
        ids
    };
    for round in 0..3 {
        let leader = c.leader(Duration::from_secs(10)).await;
        let target = (leader + 1 + round % 2) % 3;
        let hex = format!("{:x}", ids[target]);
        // Asked of a follower: refused (etcdctl itself only asks the leader).
        let follower = client(&endpoints[(leader + 1) % 3]).await;
        let refused = follower
            .maintenance()
            .move_leader(cairn_proto::etcdserverpb::MoveLeaderRequest {
                target_id: ids[target],
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
        assert_eq!(refused.message(), "etcdserver: not leader");
        let run = etcdctl(&c.endpoints(), &["move-leader", &hex], None);
        assert_eq!(run.code, 0, "{run:?}");
        assert!(
            run.stdout.contains(&format!(
                "Leadership transferred from {:x} to {hex}",
                ids[leader]
            )),
            "{}",
            run.stdout
        );
        assert_eq!(c.leader(Duration::from_secs(5)).await, target);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let bad = etcdctl(&c.endpoints(), &["move-leader", "1234"], None);
    assert!(
        bad.stderr.contains("etcdserver: bad leader transferee"),
        "{bad:?}"
    );
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    assert!(acked.len() > 50, "{}", acked.len());
    assert_all_acknowledged(&endpoints, "m", &acked).await;
}

/// Watches on every member see the same events, in the same order, with the same revisions,
/// as clients write through all members; `/health` turns false on a member without a leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_on_every_member_see_the_same_events() {
    use cairn_proto::etcdserverpb::{
        WatchCreateRequest, WatchRequest, watch_request::RequestUnion,
    };
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cluster::start(dir.path(), 3, FAST_RAFT);
    let mut streams = Vec::new();
    let mut keep = Vec::new();
    for m in &c.members {
        let cl = client(&m.endpoint()).await;
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tx.send(WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: "w/".into(),
                range_end: "w0".into(),
                prev_kv: true,
                ..Default::default()
            })),
        })
        .await
        .unwrap();
        let mut s = cl
            .watch()
            .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        assert!(s.message().await.unwrap().unwrap().created);
        streams.push(s);
        keep.push(tx);
    }
    let writers: Vec<Client> =
        futures::future::join_all(c.members.iter().map(|m| client_for(m.endpoint()))).await;
    let mut writes = 0;
    for round in 0..40 {
        let w = &writers[round % 3];
        w.put(format!("w/{}", round % 7), format!("v{round}"))
            .await
            .unwrap();
        writes += 1;
        if round % 10 == 9 {
            w.delete(format!("w/{}", round % 7)).await.unwrap();
            writes += 1;
        }
    }
    // (type, key, value, mod revision, prev value) of every event each member delivered.
    type Seen = Vec<(i32, String, String, i64, Option<String>)>;
    let mut seen: Vec<Seen> = Vec::new();
    for s in &mut streams {
        let mut events = Vec::new();
        while events.len() < writes {
            let r = tokio::time::timeout(Duration::from_secs(10), s.message())
                .await
                .expect("events stopped arriving")
                .unwrap()
                .unwrap();
            for e in r.events {
                let kv = e.kv.unwrap_or_default();
                events.push((
                    e.r#type,
                    String::from_utf8_lossy(&kv.key).into_owned(),
                    String::from_utf8_lossy(&kv.value).into_owned(),
                    kv.mod_revision,
                    e.prev_kv
                        .map(|p| String::from_utf8_lossy(&p.value).into_owned()),
                ));
            }
        }
        seen.push(events);
    }
    assert_eq!(seen[0].len(), writes);
    assert_eq!(seen[1], seen[0], "m2 saw other events than m1");
    assert_eq!(seen[2], seen[0], "m3 saw other events than m1");

    // Without a leader a member is not healthy.
    c.members[1].kill9();
    c.members[2].kill9();
    let port = c.members[0].client_port;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = cairn_e2e::http_get(port, "/health").unwrap_or_default();
        if body.contains("\"false\"") {
            break;
        }
        assert!(Instant::now() < deadline, "/health still says {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A write forwarded to a leader that dies with it times out with etcd's "possibly due to
/// previous leader failure".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_lost_with_its_leader_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cluster::start(dir.path(), 3, FAST_RAFT);
    let leader = c.leader(Duration::from_secs(10)).await;
    let follower = client(&c.members[(leader + 1) % 3].endpoint()).await;
    // Kill the leader and write through the follower before it notices.
    c.members[leader].kill9();
    let err = follower.put("lost", "v").await.unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("etcdserver: request timed out, possibly due to previous leader failure"),
        "{message}"
    );
    // The new leader takes writes.
    let deadline = Instant::now() + Duration::from_secs(10);
    while follower.put("after", "v").await.is_err() {
        assert!(Instant::now() < deadline, "no write after the failover");
    }
}

/// A member of another cluster (another `--initial-cluster-token`) is refused with a log line
/// naming the mismatch, and the two never form a quorum together.
#[test]
fn peers_of_another_cluster_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = cairn_e2e::Member::unstarted("a", &dir.path().join("a"), FAST_RAFT);
    let mut b = cairn_e2e::Member::unstarted("b", &dir.path().join("b"), FAST_RAFT);
    let initial = format!("a={},b={}", a.peer_url(), b.peer_url());
    for (m, token) in [(&mut a, "one"), (&mut b, "two")] {
        m.initial_cluster = Some(initial.clone());
        m.extra
            .extend(["--initial-cluster-token".to_string(), token.to_string()]);
    }
    // Neither becomes healthy, so start them without waiting.
    a.restart_unready();
    b.restart_unready();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(a.log_text().contains("cluster ID mismatch")
        && b.log_text().contains("cluster ID mismatch"))
    {
        assert!(
            Instant::now() < deadline,
            "no refusal logged:\na:\n{}\nb:\n{}",
            a.log_text(),
            b.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let put = etcdctl(
        &a.endpoint(),
        &["put", "k", "v", "--command-timeout=2s"],
        None,
    );
    assert_ne!(put.code, 0, "two clusters formed a quorum: {put:?}");
}

/// A member frozen by SIGSTOP keeps its connections open but answers nothing: its peers notice
/// within `--raft-read-timeout` (pings go unanswered), drop the connection, and dial
/// again; the majority keeps taking writes, and once the member runs again it is reconnected
/// and catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_member_is_noticed_and_reconnected_when_it_wakes() {
    let dir = tempfile::tempdir().unwrap();
    let flags = [FAST_RAFT, &["--raft-read-timeout", "2s"]].concat();
    let mut c = Cluster::start(dir.path(), 3, &flags);
    let leader = c.leader(Duration::from_secs(10)).await;
    let frozen = (leader + 1) % 3;
    let ep = c.members[leader].endpoint();
    assert_eq!(etcdctl(&ep, &["put", "before", "1"], None).code, 0);
    let activations = |c: &Cluster| {
        c.members[leader]
            .log_text()
            .matches("peer became active")
            .count()
    };
    let active_before = activations(&c);
    let pid = c.members[frozen].pid().expect("running") as i32;
    // SAFETY: signalling a child process this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    for i in 0..20 {
        let put = etcdctl(&ep, &["put", &format!("during{i}"), "x"], None);
        assert_eq!(put.code, 0, "the majority refused a write: {put:?}");
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while !c.members[leader]
        .log_text()
        .contains("the peer stopped answering pings for 2s")
    {
        assert!(
            Instant::now() < deadline,
            "the frozen member's silence went unnoticed:\n{}",
            c.members[leader].log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    let woken = c.members[frozen].endpoint();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = etcdctl(&woken, &["get", "during19", "--print-value-only"], None);
        if got.code == 0 && got.stdout.trim() == "x" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the woken member did not catch up: {got:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        activations(&c) > active_before,
        "the leader never dialed the woken member again:\n{}",
        c.members[leader].log_text()
    );
}
