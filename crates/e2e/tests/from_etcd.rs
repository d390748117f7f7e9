//! Migrating from real etcd offline: `etcdctl snapshot save` against etcd 3.4.23, then
//! `cairnutl snapshot status` reads the file as etcdctl does, and `cairnutl snapshot restore` of
//! it starts a Cairn member with the same keys, values,
//! revisions, versions, history, compaction and leases, and with auth on, the same users, roles
//! and permissions.

use cairn_e2e::migration::{
    assert_same_auth, assert_same_history, assert_same_snapshot_status, ok, restore_into,
    set_up_auth, state, write_history,
};
use cairn_e2e::{RealEtcd, etcdctl};

#[test]
fn a_snapshot_of_real_etcd_restores_into_cairn_with_its_history() {
    let etcd = RealEtcd::start();
    let src = etcd.endpoint();
    let history = write_history(&src);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("etcd.db");
    let f = file.to_str().unwrap();
    ok(etcdctl(&src, &["snapshot", "save", f], None));
    // cairnutl reads etcd's snapshot file as etcdctl does: same hash, revision, keys, size.
    assert_same_snapshot_status(&src, f);

    let (mut m, restored) = restore_into(dir.path(), f, &[]);
    assert_eq!(restored.code, 0, "{restored:?}");
    m.launch();
    assert_same_history(&m.endpoint(), &history);
}

#[test]
fn users_roles_and_permissions_come_along_with_auth_on() {
    let etcd = RealEtcd::start();
    let src = etcd.endpoint();
    set_up_auth(&src);
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
    // The same answers from Cairn as from the etcd the snapshot came from.
    assert_same_auth(&m.endpoint(), &src);
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
