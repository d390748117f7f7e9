//! Migrating from real etcd offline: `etcdctl snapshot save` against etcd 3.4.23, then
//! `cairnutl snapshot status` reads the file as etcdctl does, and `cairnutl snapshot restore` of
//! it starts a Cairn member with the same keys, values,
//! revisions, versions, history, compaction and leases. A snapshot of an etcd with auth in use
//! is refused (its users and roles are not carried over).

use cairn_e2e::{Member, RealEtcd, Run, cairnutl, etcdctl};
use serde_json::Value;

fn ok(run: Run) -> Run {
    assert_eq!(run.code, 0, "{run:?}");
    run
}

fn json(run: Run) -> Value {
    let run = ok(run);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run:?}"))
}

/// Keys with values, create/mod revisions, versions and leases, as `get -w json` shows them.
fn state(ep: &str, extra: &[&str]) -> (Value, Value) {
    let mut args = vec!["get", "", "--prefix", "-w", "json"];
    args.extend_from_slice(extra);
    let v = json(etcdctl(ep, &args, None));
    (v["kvs"].clone(), v["header"]["revision"].clone())
}

#[test]
fn a_snapshot_of_real_etcd_restores_into_cairn_with_its_history() {
    let etcd = RealEtcd::start();
    let src = etcd.endpoint();
    for i in 0..300 {
        ok(etcdctl(
            &src,
            &["put", &format!("k/{i:03}"), &format!("v{i}")],
            None,
        ));
    }
    for i in 0..300 {
        if i % 3 == 0 {
            ok(etcdctl(&src, &["put", &format!("k/{i:03}"), "again"], None));
        }
    }
    ok(etcdctl(&src, &["del", "k/010", "k/020"], None));
    let mid = state(&src, &[]).1.as_i64().unwrap();
    ok(etcdctl(
        &src,
        &["compaction", &(mid - 50).to_string()],
        None,
    ));
    let lease = json(etcdctl(
        &src,
        &["lease", "grant", "600", "-w", "json"],
        None,
    ));
    let lease_id = format!("{:x}", lease["ID"].as_i64().unwrap());
    ok(etcdctl(
        &src,
        &["put", "leased", "x", "--lease", &lease_id],
        None,
    ));
    ok(etcdctl(
        &src,
        &["txn"],
        Some("\nput t/1 a\nput t/2 b\n\n\n"),
    ));
    let (want, revision) = state(&src, &[]);
    let (want_old, _) = state(&src, &["--rev", &(mid - 10).to_string()]);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("etcd.db");
    let f = file.to_str().unwrap();
    ok(etcdctl(&src, &["snapshot", "save", f], None));
    // cairnutl reads etcd's snapshot file as etcdctl does: same hash, revision, keys, size.
    for format in ["simple", "json", "table"] {
        let theirs = ok(etcdctl(
            &src,
            &["snapshot", "status", f, "-w", format],
            None,
        ));
        let ours = ok(cairnutl(&["snapshot", "status", f, "-w", format]));
        assert_eq!(ours.stdout, theirs.stdout, "{format}");
    }

    let mut m = Member::unstarted("m1", &dir.path().join("m1"), &[]);
    let peer = m.peer_url();
    let data = m.data_dir.to_str().unwrap().to_string();
    let restored = cairnutl(&[
        "snapshot",
        "restore",
        f,
        "--name",
        "m1",
        "--initial-cluster",
        &format!("m1={peer}"),
        "--initial-advertise-peer-urls",
        &peer,
        "--data-dir",
        &data,
    ]);
    assert_eq!(restored.code, 0, "{restored:?}");
    m.initial_cluster = Some(format!("m1={peer}"));
    m.launch();
    let ep = m.endpoint();

    let (got, got_revision) = state(&ep, &[]);
    assert_eq!(got, want);
    assert_eq!(got_revision, revision);
    // History above the compaction reads as on etcd; below it, etcd's error.
    assert_eq!(state(&ep, &["--rev", &(mid - 10).to_string()]).0, want_old);
    let old = etcdctl(
        &ep,
        &["get", "k/001", "--rev", &(mid - 60).to_string()],
        None,
    );
    assert!(
        old.stderr.contains("required revision has been compacted"),
        "{old:?}"
    );
    // The lease and its key came along.
    let ttl = json(etcdctl(
        &ep,
        &["lease", "timetolive", &lease_id, "--keys", "-w", "json"],
        None,
    ));
    assert!(ttl["ttl"].as_i64().unwrap() > 500, "{ttl}");
    assert_eq!(ttl["granted-ttl"].as_i64(), Some(600), "{ttl}");
    // New writes go on from etcd's revision.
    let put = json(etcdctl(&ep, &["put", "after", "1", "-w", "json"], None));
    assert_eq!(
        put["header"]["revision"].as_i64(),
        Some(revision.as_i64().unwrap() + 1)
    );
}

#[test]
fn a_snapshot_of_etcd_with_auth_in_use_is_refused() {
    let etcd = RealEtcd::start();
    let src = etcd.endpoint();
    ok(etcdctl(&src, &["user", "add", "root:pw"], None));
    ok(etcdctl(&src, &["auth", "enable"], None));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("etcd.db");
    let f = file.to_str().unwrap();
    ok(etcdctl(
        &src,
        &["--user", "root:pw", "snapshot", "save", f],
        None,
    ));
    let target = dir.path().join("out");
    let run = cairnutl(&[
        "snapshot",
        "restore",
        f,
        "--data-dir",
        target.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("authentication in use"), "{run:?}");
    assert!(!target.exists());
}
