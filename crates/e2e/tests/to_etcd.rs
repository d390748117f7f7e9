//! Migrating from Cairn to real etcd: a snapshot saved from Cairn with real `etcdctl` is a file
//! in etcd's format, which `etcdctl snapshot status` reads as `cairnutl` does and `etcdctl
//! snapshot restore` turns into a data dir that etcd 3.4.23 starts on, with the same keys,
//! values, revisions, versions, history, compaction, leases, alarms, and with auth on the same
//! users, roles and permissions.

use cairn_e2e::migration::{
    assert_same_auth, assert_same_history, assert_same_snapshot_status, json, ok, restore_into,
    set_up_auth, write_history,
};
use cairn_e2e::{Member, RealEtcd, etcdctl};

#[test]
fn a_cairn_snapshot_restores_into_real_etcd_with_its_history() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(&dir.path().join("m1"), &[]);
    let src = m.endpoint();
    let history = write_history(&src);
    // An alarm raised on Cairn is in the snapshot, as etcd keeps its alarms.
    let member_id = json(etcdctl(&src, &["endpoint", "status", "-w", "json"], None))[0]
        ["Status"]["header"]["member_id"]
        .as_u64()
        .unwrap();
    let port = m.client_port;
    let raised = std::process::Command::new("curl")
        .args(["-sS", "-X", "POST"])
        .arg(format!("http://127.0.0.1:{port}/v3/maintenance/alarm"))
        .args([
            "-d",
            &format!(r#"{{"action":"ACTIVATE","memberID":"{member_id}","alarm":"NOSPACE"}}"#),
        ])
        .output()
        .unwrap();
    assert!(raised.status.success(), "{raised:?}");
    let alarms = ok(etcdctl(&src, &["alarm", "list"], None)).stdout;
    assert!(alarms.contains("alarm:NOSPACE"), "{alarms}");

    let file = dir.path().join("cairn.db");
    let f = file.to_str().unwrap();
    ok(etcdctl(&src, &["snapshot", "save", f], None));
    // etcdctl reads Cairn's snapshot file as cairnutl does.
    assert_same_snapshot_status(&src, f);
    let status = json(etcdctl(
        &src,
        &["snapshot", "status", f, "-w", "json"],
        None,
    ));
    assert_eq!(status["revision"], history.revision, "{status}");

    let etcd = RealEtcd::from_snapshot(&file);
    let ep = etcd.endpoint();
    assert_eq!(ok(etcdctl(&ep, &["alarm", "list"], None)).stdout, alarms);
    ok(etcdctl(&ep, &["alarm", "disarm"], None));
    assert_same_history(&ep, &history);

    // The same file restores into Cairn with the same history and alarms.
    let into = dir.path().join("restored");
    std::fs::create_dir(&into).unwrap();
    let (mut restored, run) = restore_into(&into, f, &[]);
    ok(run);
    // Its /health says false while the alarm is active (as etcd's does): wait for a read.
    restored.restart_unready();
    let ep = restored.endpoint();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while etcdctl(&ep, &["endpoint", "health"], None).code != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            restored.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(ok(etcdctl(&ep, &["alarm", "list"], None)).stdout, alarms);
    ok(etcdctl(&ep, &["alarm", "disarm"], None));
    assert_same_history(&ep, &history);
}

#[test]
fn users_roles_and_permissions_go_to_etcd_with_auth_on() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(&dir.path().join("m1"), &[]);
    let src = m.endpoint();
    set_up_auth(&src);
    let file = dir.path().join("cairn.db");
    ok(etcdctl(
        &src,
        &[
            "--user",
            "root:pw",
            "snapshot",
            "save",
            file.to_str().unwrap(),
        ],
        None,
    ));
    let etcd = RealEtcd::from_snapshot(&file);
    assert_same_auth(&etcd.endpoint(), &src);
}
