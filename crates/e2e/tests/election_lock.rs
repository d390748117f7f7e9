//! Election and Lock: the gRPC services (through Cairn's client) and etcdctl's `elect` and
//! `lock`, which build the same protocol on KV, Watch and Lease.

use cairn_client::Client;
use cairn_e2e::{Bg, Member, etcdctl};
use cairn_proto::etcdserverpb::{LeaseGrantRequest, lease_client::LeaseClient};
use cairn_proto::v3electionpb::{
    CampaignRequest, LeaderRequest, ProclaimRequest, ResignRequest, election_client::ElectionClient,
};
use cairn_proto::v3lockpb::{LockRequest, UnlockRequest, lock_client::LockClient};
use std::process::{Command, Stdio};
use std::time::Duration;
use tonic::transport::Channel;

async fn channel(ep: &str) -> Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{ep}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

async fn lease(ch: &Channel, ttl: i64) -> i64 {
    LeaseClient::new(ch.clone())
        .lease_grant(LeaseGrantRequest { ttl, id: 0 })
        .await
        .unwrap()
        .into_inner()
        .id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn election_service_campaign_observe_proclaim_resign() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(&dir.path().join("m1"), &[]);
    let ch = channel(&m.endpoint()).await;
    let (la, lb) = (lease(&ch, 60).await, lease(&ch, 60).await);
    let mut e = ElectionClient::new(ch.clone());
    let name = bytes::Bytes::from_static(b"my-election");
    let a = e
        .campaign(CampaignRequest {
            name: name.clone(),
            lease: la,
            value: "a".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .leader
        .unwrap();
    assert_eq!(a.key.as_ref(), format!("my-election/{la:x}").as_bytes());

    let mut observe = e
        .observe(LeaderRequest { name: name.clone() })
        .await
        .unwrap()
        .into_inner();
    let first = observe.message().await.unwrap().unwrap();
    assert_eq!(first.kv.unwrap().value.as_ref(), b"a");

    let mut e2 = e.clone();
    let n2 = name.clone();
    let b = tokio::spawn(async move {
        e2.campaign(CampaignRequest {
            name: n2,
            lease: lb,
            value: "b".into(),
        })
        .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !b.is_finished(),
        "second candidate won while the first leads"
    );

    e.proclaim(ProclaimRequest {
        leader: Some(a.clone()),
        value: "a2".into(),
    })
    .await
    .unwrap();
    let next = observe.message().await.unwrap().unwrap();
    assert_eq!(next.kv.unwrap().value.as_ref(), b"a2");
    let leader = e
        .leader(LeaderRequest { name: name.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(leader.kv.unwrap().value.as_ref(), b"a2");

    e.resign(ResignRequest {
        leader: Some(a.clone()),
    })
    .await
    .unwrap();
    let bk = tokio::time::timeout(Duration::from_secs(5), b)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(bk.into_inner().leader.unwrap().lease, lb);
    let next = observe.message().await.unwrap().unwrap();
    assert_eq!(next.kv.unwrap().value.as_ref(), b"b");
    // The old leader key no longer proclaims.
    let err = e
        .proclaim(ProclaimRequest {
            leader: Some(a),
            value: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.message(), "election: not leader");
    let err = e
        .leader(LeaderRequest {
            name: "nobody".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.message(), "election: no leader");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_service_excludes_and_lease_expiry_releases() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(&dir.path().join("m1"), &[]);
    let ch = channel(&m.endpoint()).await;
    let short = lease(&ch, 2).await;
    let long = lease(&ch, 60).await;
    let mut l = LockClient::new(ch.clone());
    let held = l
        .lock(LockRequest {
            name: "jobs".into(),
            lease: short,
        })
        .await
        .unwrap()
        .into_inner();
    let mut l2 = l.clone();
    let waiter = tokio::spawn(async move {
        l2.lock(LockRequest {
            name: "jobs".into(),
            lease: long,
        })
        .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiter.is_finished());
    // Nobody keeps `short` alive: its expiry releases the lock.
    let got = tokio::time::timeout(Duration::from_secs(8), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let key = got.into_inner().key;
    assert_eq!(key.as_ref(), format!("jobs/{long:x}").as_bytes());
    assert_ne!(key, held.key);
    l.unlock(UnlockRequest { key: key.clone() }).await.unwrap();
    let c = Client::connect(&[m.endpoint()], Duration::from_secs(2))
        .await
        .unwrap();
    assert!(c.get(key).await.unwrap().kvs.is_empty());
}

#[test]
fn etcdctl_lock_gives_mutual_exclusion() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(&dir.path().join("m1"), &[]);
    let ep = m.endpoint();
    let log = dir.path().join("crit.log");
    let script = dir.path().join("crit.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$1 in\" >> {0}\nsleep 0.7\necho \"$1 out\" >> {0}\n",
            log.display()
        ),
    )
    .unwrap();
    let mut perms = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&script, perms).unwrap();
    let children: Vec<_> = ["A", "B", "C"]
        .iter()
        .map(|who| {
            Command::new(cairn_e2e::etcdctl_bin())
                .env("ETCDCTL_API", "3")
                .args(["--endpoints", &ep, "lock", "critical"])
                .arg(&script)
                .arg(who)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(cairn_e2e::wait_with_timeout(&mut c, Duration::from_secs(30)).success());
    }
    let lines: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), 6, "{lines:?}");
    for pair in lines.chunks(2) {
        let who = pair[0].split(' ').next().unwrap();
        assert_eq!(pair[0], format!("{who} in"), "{lines:?}");
        assert_eq!(
            pair[1],
            format!("{who} out"),
            "interleaved critical sections: {lines:?}"
        );
    }
    // Nothing is left behind under the lock's prefix.
    assert_eq!(
        etcdctl(&ep, &["get", "critical/", "--prefix"], None).stdout,
        ""
    );
}

#[test]
fn etcdctl_elect_hands_over_when_the_leader_exits() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(&dir.path().join("m1"), &[]);
    let ep = m.endpoint();
    let elect = |args: &[&str]| {
        let mut full = vec!["elect"];
        full.extend_from_slice(args);
        Bg::etcdctl(&ep, &full)
    };
    let wait = Duration::from_secs(10);
    let first = elect(&["e1", "p1"]);
    let won = first.lines(2, wait);
    assert!(won[0].starts_with("e1/") && won[1] == "p1", "{won:?}");
    let second = elect(&["e1", "p2"]);
    let observer = elect(&["-l", "e1"]);
    let seen = observer.lines(2, wait);
    assert_eq!(seen[1], "p1", "{seen:?}");
    // SIGTERM: etcdctl resigns on the way out, and the waiting candidate takes over.
    first.signal(libc::SIGTERM);
    let won = second.lines(2, wait);
    assert!(won[0].starts_with("e1/") && won[1] == "p2", "{won:?}");
    let seen = observer.lines(2, wait);
    assert_eq!(seen[1], "p2", "{seen:?}");
}
