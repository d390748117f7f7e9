//! Corruption checks: a member whose backend was silently changed (a value's bytes altered in
//! place, as bit rot would) is found by the leader's periodic check, which raises CORRUPT and
//! stops the cluster taking requests; with `--experimental-initial-corrupt-check` such a
//! member refuses to start at all.

use cairn_e2e::{Cluster, etcdctl};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;
use std::time::{Duration, Instant};

const KV: TableDefinition<u128, &[u8]> = TableDefinition::new("kv");

/// Changes the stored value `from` into `to` (same length) in every record holding it.
fn rot(data_dir: &Path, from: &[u8], to: &[u8]) {
    let db = redb::Database::create(data_dir.join("member/snap/db")).unwrap();
    let r = db.begin_read().unwrap();
    let changed: Vec<(u128, Vec<u8>)> = {
        let t = r.open_table(KV).unwrap();
        t.iter()
            .unwrap()
            .filter_map(|item| {
                let (k, v) = item.unwrap();
                let v = v.value().to_vec();
                let at = v.windows(from.len()).position(|w| w == from)?;
                let mut rotten = v.clone();
                rotten[at..at + to.len()].copy_from_slice(to);
                Some((k.value(), rotten))
            })
            .collect()
    };
    drop(r);
    assert!(!changed.is_empty(), "no record holds the value");
    let w = db.begin_write().unwrap();
    {
        let mut t = w.open_table(KV).unwrap();
        for (k, v) in &changed {
            t.insert(*k, v.as_slice()).unwrap();
        }
    }
    w.commit().unwrap();
}

#[test]
fn a_member_with_rotten_data_is_found_and_stops_the_cluster() {
    let dir = tempfile::tempdir().unwrap();
    // A small snapshot count makes the backend durable every few entries, so the value to rot
    // is in the file and not only in the WAL.
    let mut cluster = Cluster::start(
        dir.path(),
        3,
        &[
            "--experimental-corrupt-check-time",
            "1s",
            "--snapshot-count",
            "5",
        ],
    );
    let eps = cluster.endpoints();
    for i in 0..20 {
        let out = etcdctl(&eps, &["put", &format!("k{i}"), "healthy-value"], None);
        assert_eq!(out.code, 0, "{out:?}");
    }
    let out = etcdctl(&eps, &["put", "victim", "precious-bytes"], None);
    assert_eq!(out.code, 0, "{out:?}");
    for i in 0..20 {
        let out = etcdctl(&eps, &["put", &format!("after{i}"), "v"], None);
        assert_eq!(out.code, 0, "{out:?}");
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let leader = rt.block_on(cluster.leader(Duration::from_secs(10)));
    let victim = (leader + 1) % 3;
    cluster.members[victim].kill9();
    rot(
        &cluster.members[victim].data_dir,
        b"precious-bytes",
        b"precious-bXtes",
    );
    // Not waiting for /health: it turns false once the alarm is raised, which may be at once.
    cluster.members[victim].restart_unready();

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let alarms = etcdctl(&eps, &["alarm", "list"], None);
        if alarms.stdout.contains("alarm:CORRUPT") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no CORRUPT alarm in 30 s: {alarms:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let health =
        cairn_e2e::http_get(cluster.members[leader].client_port, "/health").unwrap_or_default();
    // etcd 3.4's /health body says only false; /readyz?verbose names the check.
    assert!(health.ends_with("{\"health\":\"false\"}"), "{health}");
    let ready = cairn_e2e::http_get(cluster.members[leader].client_port, "/readyz?verbose")
        .unwrap_or_default();
    assert!(
        ready.contains("[-]data_corruption failed: alarm activated: CORRUPT"),
        "{ready}"
    );
    let put = etcdctl(&eps, &["put", "more", "x"], None);
    assert!(
        put.stderr.contains("etcdserver: corrupt cluster"),
        "{put:?}"
    );

    // The same member started with the initial check refuses to serve.
    let m = &mut cluster.members[victim];
    m.kill9();
    m.extra.push("--experimental-initial-corrupt-check".into());
    let status = m.run_to_exit(Duration::from_secs(30));
    assert!(status.is_some_and(|s| !s.success()), "{}", m.log_text());
    assert!(
        m.log_text().contains("found data inconsistency with peers"),
        "{}",
        m.log_text()
    );
}

#[test]
fn the_initial_check_passes_for_healthy_members() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path(), 3, &["--experimental-initial-corrupt-check"]);
    let eps = cluster.endpoints();
    for i in 0..20 {
        let out = etcdctl(&eps, &["put", &format!("k{i}"), "v"], None);
        assert_eq!(out.code, 0, "{out:?}");
    }
    cluster.members[1].kill9();
    cluster.members[1].restart();
    assert!(
        cluster.members[1]
            .log_text()
            .contains("initial corruption check passed"),
        "{}",
        cluster.members[1].log_text()
    );
    let out = etcdctl(&eps, &["put", "after", "v"], None);
    assert_eq!(out.code, 0, "{out:?}");
}
