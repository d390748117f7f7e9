//! Migrating from real etcd offline: `etcdctl snapshot save` against etcd 3.4.23, then
//! `cairnutl snapshot status` reads the file as etcdctl does, and `cairnutl snapshot restore` of
//! it starts a Cairn member with the same keys, values,
//! revisions, versions, history, compaction and leases, and with auth on, the same users, roles
//! and permissions.

use cairn_e2e::{Bg, Member, RealEtcd, Run, cairnutl, etcdctl, normalized};
use serde_json::Value;
use std::time::Duration;

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

/// A one-member Cairn (not started) and `cairnutl snapshot restore` of `file` into its data dir,
/// with `extra` flags; the member is set up to start as the restored cluster.
fn restore_into(dir: &std::path::Path, file: &str, extra: &[&str]) -> (Member, Run) {
    let mut m = Member::unstarted("m1", &dir.join("m1"), &[]);
    let peer = m.peer_url();
    let data = m.data_dir.to_str().unwrap().to_string();
    let initial = format!("m1={peer}");
    let mut args = vec![
        "snapshot",
        "restore",
        file,
        "--name",
        "m1",
        "--initial-cluster",
        &initial,
        "--initial-advertise-peer-urls",
        &peer,
        "--data-dir",
        &data,
    ];
    args.extend_from_slice(extra);
    let run = cairnutl(&args);
    m.initial_cluster = Some(initial);
    (m, run)
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

    let (mut m, restored) = restore_into(dir.path(), f, &[]);
    assert_eq!(restored.code, 0, "{restored:?}");
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
    // A watch replaying that history sees the same events, deletions with their revision.
    let events = |ep: &str| {
        let watch = Bg::etcdctl(
            ep,
            &[
                "watch",
                "--prefix",
                "k/",
                "--rev",
                &(mid - 10).to_string(),
                "-w",
                "json",
            ],
        );
        let lines = watch.drain(Duration::from_secs(3));
        let mut events = Vec::new();
        for line in lines {
            let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
            events.extend(v["Events"].as_array().cloned().unwrap_or_default());
        }
        events
    };
    let replayed = events(&ep);
    assert!(
        replayed
            .iter()
            .any(|e| e["kv"]["mod_revision"].as_i64() == Some(mid) && e["type"] == 1),
        "no deletion at {mid}: {replayed:?}"
    );
    assert_eq!(replayed, events(&src));
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
fn users_roles_and_permissions_come_along_with_auth_on() {
    let etcd = RealEtcd::start();
    let src = etcd.endpoint();
    for step in [
        &["user", "add", "root:pw"][..],
        &["user", "add", "alice:apw"],
        &["role", "add", "r"],
        &[
            "role",
            "grant-permission",
            "r",
            "readwrite",
            "a/",
            "--prefix",
        ],
        &["user", "grant-role", "alice", "r"],
        &["auth", "enable"],
    ] {
        ok(etcdctl(&src, step, None));
    }
    for key in ["a/1", "b/1"] {
        ok(etcdctl(&src, &["--user", "root:pw", "put", key, "v"], None));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("etcd.db");
    let f = file.to_str().unwrap();
    ok(etcdctl(
        &src,
        &["--user", "root:pw", "snapshot", "save", f],
        None,
    ));

    let (mut m, restored) = restore_into(dir.path(), f, &[]);
    ok(restored);
    m.client_args = vec!["--user".into(), "root:pw".into()];
    m.launch();
    let ep = m.endpoint();
    // The same answers from Cairn as from the etcd the snapshot came from.
    for args in [
        &["get", "a/1"][..],
        &["--user", "root:pw", "get", "b/1"],
        &["--user", "alice:apw", "get", "a/1"],
        &["--user", "alice:apw", "get", "b/1"],
        &["--user", "alice:nope", "get", "a/1"],
        &["--user", "root:pw", "user", "list"],
        &["--user", "root:pw", "role", "get", "r"],
        &["--user", "root:pw", "user", "get", "alice"],
    ] {
        let theirs = etcdctl(&src, args, None);
        let ours = etcdctl(&ep, args, None);
        assert_eq!(normalized(&ours), normalized(&theirs), "{args:?}");
    }
}

/// A stopped etcd member's backend file restores too (`--skip-hash-check`, as etcdutl asks for a
/// db file copied from a data dir): what etcd had committed to it is all there.
#[test]
fn a_stopped_etcd_members_backend_file_restores() {
    let mut etcd = RealEtcd::start();
    let src = etcd.endpoint();
    for i in 0..50 {
        ok(etcdctl(&src, &["put", &format!("d/{i:02}"), "v"], None));
    }
    let (want, revision) = state(&src, &[]);
    // What a restore of the file carries is what etcd committed to it (the WAL's tail is not
    // read, as with etcdutl); a snapshot save makes etcd commit everything first.
    let dir = tempfile::tempdir().unwrap();
    let flush = dir.path().join("flush.db");
    ok(etcdctl(
        &src,
        &["snapshot", "save", flush.to_str().unwrap()],
        None,
    ));
    etcd.kill9();
    let db = etcd.data_dir().join("member").join("snap").join("db");
    let db = db.to_str().unwrap();
    let (_, refused) = restore_into(dir.path(), db, &[]);
    assert!(
        refused
            .stderr
            .contains("snapshot missing hash but --skip-hash-check=false"),
        "{refused:?}"
    );
    let (mut m, restored) = restore_into(dir.path(), db, &["--skip-hash-check"]);
    ok(restored);
    m.launch();
    let (got, got_revision) = state(&m.endpoint(), &[]);
    assert_eq!(got, want);
    assert_eq!(got_revision, revision);
}
