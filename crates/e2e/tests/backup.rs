//! Maintenance.Snapshot: real etcdctl saves a snapshot of a member while writes go on; the file
//! is etcd's framing (the backend copy, then the SHA-256 of it) and the copy opens as a store
//! holding every write acknowledged before the save began.

use cairn_e2e::{Member, etcdctl};
use cairn_proto::etcdserverpb::RangeRequest;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[test]
fn etcdctl_saves_a_consistent_snapshot_while_writes_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(&dir.path().join("m1"), &[]);
    let ep = m.endpoint();
    for i in 0..200 {
        let out = etcdctl(
            &ep,
            &["put", &format!("before/{i:03}"), &"v".repeat(500)],
            None,
        );
        assert_eq!(out.code, 0, "{out:?}");
    }
    // Writers keep going during the save.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, ep) = (stop.clone(), ep.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let out = etcdctl(&ep, &["put", &format!("during/{n}"), "w"], None);
                assert_eq!(out.code, 0, "a write failed during the save: {out:?}");
                n += 1;
            }
            n
        })
    };
    let file = dir.path().join("backup.db");
    let saved = etcdctl(&ep, &["snapshot", "save", file.to_str().unwrap()], None);
    stop.store(true, Ordering::Relaxed);
    let writes_during = writer.join().unwrap();
    assert_eq!(saved.code, 0, "{saved:?}");
    assert!(saved.stdout.contains("Snapshot saved at"), "{saved:?}");
    assert!(writes_during > 0);

    // etcd's framing: the copy, then its SHA-256.
    let bytes = std::fs::read(&file).unwrap();
    assert!(bytes.len() > 32);
    let (copy, trailer) = bytes.split_at(bytes.len() - 32);
    assert_eq!(
        ring::digest::digest(&ring::digest::SHA256, copy).as_ref(),
        trailer
    );

    // The copy is a backend holding everything written before the save.
    let db = dir.path().join("restored.db");
    std::fs::write(&db, copy).unwrap();
    let store = cairn_mvcc::Store::open(&db).unwrap();
    let got = store
        .range(&RangeRequest {
            key: b"before/".to_vec().into(),
            range_end: b"before0".to_vec().into(),
            count_only: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(got.count, 200);

    // Only root may take one once auth is on.
    for step in [
        &["user", "add", "root:rootpw"][..],
        &["user", "add", "bob:b"],
        &["auth", "enable"],
    ] {
        assert_eq!(etcdctl(&ep, step, None).code, 0, "{step:?}");
    }
    let refused = etcdctl(
        &ep,
        &[
            "--user=bob:b",
            "snapshot",
            "save",
            dir.path().join("no.db").to_str().unwrap(),
        ],
        None,
    );
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("auth: permission denied"),
        "{refused:?}"
    );
    let root = etcdctl(
        &ep,
        &[
            "--user=root:rootpw",
            "snapshot",
            "save",
            dir.path().join("root.db").to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(root.code, 0, "{root:?}");
}
