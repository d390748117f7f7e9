//! Space: the backend quota raises NOSPACE for the whole cluster, the runbook (compact, defrag,
//! disarm) gets writes back, and an online defragmentation gives space back without stopping
//! reads or writes. Driven by real etcdctl, as an operator would.

use cairn_e2e::{Cluster, Member, Run, etcdctl, http_get};
use cairn_proto::etcdserverpb::{HashKvRequest, PutRequest, RangeRequest};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const NO_SPACE: &str = "etcdserver: mvcc: database space exceeded";

fn ok(run: Run) -> Run {
    assert_eq!(run.code, 0, "{run:?}");
    run
}

fn status(ep: &str) -> Value {
    let out = ok(etcdctl(ep, &["endpoint", "status", "-w", "json"], None));
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    v[0]["Status"].clone()
}

#[test]
fn the_nospace_runbook_works_on_a_three_member_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), 3, &["--quota-backend-bytes", "4194304"]);
    let eps = cluster.endpoints();
    let [m1, m2, m3] = [0, 1, 2].map(|i| cluster.members[i].endpoint());
    let value = "a".repeat(100_000);
    let mut refused = None;
    for i in 0..200 {
        let out = etcdctl(&m1, &["put", &format!("k{i}"), &value], None);
        if out.code != 0 {
            refused = Some(out);
            break;
        }
    }
    let refused = refused.expect("the quota never stopped a write");
    assert!(
        refused.stderr.contains(&format!("Error: {NO_SPACE}")),
        "{refused:?}"
    );

    // The alarm is the cluster's: listed everywhere, and every member refuses what grows the
    // backend while reads, deletes and compaction go on.
    let listed = ok(etcdctl(&m2, &["alarm", "list"], None));
    assert!(listed.stdout.ends_with("alarm:NOSPACE \n"), "{listed:?}");
    for ep in [&m1, &m2, &m3] {
        let s = status(ep);
        let errors = s["errors"].as_array().cloned().unwrap_or_default();
        assert!(
            errors
                .iter()
                .any(|e| e.as_str().is_some_and(|e| e.ends_with("alarm:NOSPACE "))),
            "{s}"
        );
    }
    let put = etcdctl(&m3, &["put", "small", "x"], None);
    assert!(put.stderr.contains(NO_SPACE), "{put:?}");
    let grant = etcdctl(&m2, &["lease", "grant", "60"], None);
    assert!(
        grant
            .stderr
            .contains(&format!("failed to grant lease ({NO_SPACE})")),
        "{grant:?}"
    );
    let txn = etcdctl(&m3, &["txn"], Some("\nput a b\n\n\n"));
    assert!(txn.stderr.contains(NO_SPACE), "{txn:?}");
    ok(etcdctl(&m2, &["get", "k1", "--keys-only"], None));
    ok(etcdctl(&m3, &["del", "k0"], None));
    let health = http_get(cluster.members[1].client_port, "/health").unwrap_or_default();
    // etcd 3.4's body, which its own alarm test matches whole.
    assert!(health.ends_with("{\"health\":\"false\"}"), "{health}");

    // The runbook, step by step.
    let rev = status(&m1)["header"]["revision"].as_u64().unwrap();
    let compacted = ok(etcdctl(&eps, &["compact", &rev.to_string()], None));
    assert_eq!(compacted.stdout, format!("compacted revision {rev}\n"));
    let defrag = ok(etcdctl(&eps, &["defrag"], None));
    for ep in [&m1, &m2, &m3] {
        assert!(
            defrag
                .stdout
                .contains(&format!("Finished defragmenting etcd member[{ep}]")),
            "{defrag:?}"
        );
    }
    let disarmed = ok(etcdctl(&eps, &["alarm", "disarm"], None));
    assert!(disarmed.stdout.contains("alarm:NOSPACE"), "{disarmed:?}");
    ok(etcdctl(&eps, &["put", "k", "v"], None));
    assert_eq!(ok(etcdctl(&eps, &["alarm", "list"], None)).stdout, "");
    let health = http_get(cluster.members[1].client_port, "/health").unwrap_or_default();
    assert!(health.contains("\"health\":\"true\""), "{health}");
    for ep in [&m1, &m2, &m3] {
        assert_eq!(status(ep)["errors"], Value::Null, "{ep}");
    }
}

#[test]
fn an_online_defragmentation_stops_neither_reads_nor_writes() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(&dir.path().join("m1"), &[]);
    let ep = m.endpoint();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt.block_on(async {
        cairn_client::Client::connect_one(&ep, Duration::from_secs(5))
            .await
            .unwrap()
    });
    // 60 MB written, two thirds of it deleted and compacted away: much to give back.
    cairn_e2e::load_keys(&ep, 8, 7500, 1024, |t, i| {
        format!("old/{}/{t}/{i:05}", i % 3)
    });
    ok(etcdctl(&ep, &["del", "old/1/", "--prefix"], None));
    ok(etcdctl(&ep, &["del", "old/2/", "--prefix"], None));
    let rev = status(&ep)["header"]["revision"].as_u64().unwrap();
    ok(etcdctl(&ep, &["compact", &rev.to_string()], None));
    // HashKV is refused at the compact revision itself: hash up to a write after it.
    ok(etcdctl(&ep, &["put", "marker", "m"], None));
    let rev = rev + 1;
    let hash_at = |rev: u64| {
        rt.block_on(client.maintenance().hash_kv(HashKvRequest {
            revision: rev as i64,
        }))
        .unwrap()
        .into_inner()
        .hash
    };
    let before = hash_at(rev);
    let size_before = status(&ep)["dbSize"].as_u64().unwrap();

    // Writers and readers run through the defragmentation; each records when it finished.
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let base = Instant::now();
    let (finished_tx, finished_rx) = std::sync::mpsc::channel::<(bool, Duration)>();
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (client, stop, written, done) = (
                client.clone(),
                stop.clone(),
                written.clone(),
                finished_tx.clone(),
            );
            rt.spawn(async move {
                let mut kv = client.kv();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let write = n.is_multiple_of(2);
                    if write {
                        kv.put(PutRequest {
                            key: format!("new/{w}/{n:06}").into_bytes().into(),
                            value: vec![b'n'; 256].into(),
                            ..Default::default()
                        })
                        .await
                        .unwrap();
                        written.fetch_add(1, Ordering::Relaxed);
                    } else {
                        kv.range(RangeRequest {
                            key: format!("old/0/{w}/{:05}", n % 7500).into_bytes().into(),
                            ..Default::default()
                        })
                        .await
                        .unwrap();
                    }
                    let _ = done.send((write, base.elapsed()));
                    n += 1;
                }
            })
        })
        .collect();
    drop(finished_tx);
    std::thread::sleep(Duration::from_millis(300));
    let started = base.elapsed();
    let defrag = ok(etcdctl(&ep, &["defrag"], None));
    let ended = base.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    rt.block_on(async {
        for w in workers {
            w.await.unwrap();
        }
    });
    assert!(
        defrag.stdout.contains("Finished defragmenting"),
        "{defrag:?}"
    );
    let during: Vec<(bool, Duration)> = finished_rx
        .iter()
        .filter(|(_, at)| *at > started && *at < ended)
        .collect();
    let writes = during.iter().filter(|(w, _)| *w).count();
    let reads = during.len() - writes;
    assert!(
        writes > 0 && reads > 0,
        "during the {:?} defragmentation: {writes} writes, {reads} reads",
        ended - started
    );

    let size_after = status(&ep)["dbSize"].as_u64().unwrap();
    assert!(
        size_after * 2 < size_before,
        "{size_before} -> {size_after}"
    );
    assert_eq!(hash_at(rev), before);
    let count = |prefix: &str| {
        let mut end = prefix.as_bytes().to_vec();
        if let Some(last) = end.last_mut() {
            *last += 1;
        }
        rt.block_on(client.kv().range(RangeRequest {
            key: prefix.as_bytes().to_vec().into(),
            range_end: end.into(),
            count_only: true,
            ..Default::default()
        }))
        .unwrap()
        .into_inner()
        .count as u64
    };
    assert_eq!(count("new/"), written.load(Ordering::Relaxed));
    assert_eq!(count("old/"), 20_000);
}
