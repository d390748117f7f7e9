//! Replacing etcd by changing the binary's name: an etcd 3.4.23 member is stopped, and `cairn`
//! starts on its data dir with the same flags. It goes on as the same member of the same
//! cluster with the same keys, history, compaction and leases, and etcd's own files are kept
//! aside untouched. Writes etcd acknowledged but had only in its log when it was killed are
//! applied from that log.

use cairn_e2e::migration::{assert_same_history, json, ok, write_history};
use cairn_e2e::{Member, RealEtcd, etcdctl};

#[test]
fn cairn_starts_where_a_stopped_etcd_member_left_off() {
    let mut etcd = RealEtcd::start();
    let src = etcd.endpoint();
    let history = write_history(&src);
    // After the last write (etcd 3.4 applies a lease grant without moving the consistent index
    // its backend records).
    let late = json(etcdctl(
        &src,
        &["lease", "grant", "900", "-w", "json"],
        None,
    ));
    let late_id = format!("{:x}", late["ID"].as_i64().unwrap());
    let status = json(etcdctl(&src, &["endpoint", "status", "-w", "json"], None));
    let header = status[0]["Status"]["header"].clone();
    etcd.stop();

    let data_dir = etcd.data_dir();
    let mut m = Member::unstarted("default", &data_dir, &[]);
    m.launch();
    let ep = m.endpoint();
    let ours = json(etcdctl(&ep, &["endpoint", "status", "-w", "json"], None));
    assert_eq!(
        ours[0]["Status"]["header"]["cluster_id"],
        header["cluster_id"]
    );
    assert_eq!(
        ours[0]["Status"]["header"]["member_id"],
        header["member_id"]
    );
    let members = json(etcdctl(&ep, &["member", "list", "-w", "json"], None));
    assert_eq!(
        members["members"].as_array().map(Vec::len),
        Some(1),
        "{members}"
    );
    assert_eq!(members["members"][0]["name"], "default", "{members}");

    let ttl = json(etcdctl(
        &ep,
        &["lease", "timetolive", &late_id, "-w", "json"],
        None,
    ));
    assert_eq!(ttl["granted-ttl"].as_i64(), Some(900), "{ttl}");
    assert_same_history(&ep, &history);

    // etcd's files are kept as they were, beside Cairn's.
    let kept = data_dir.join("member.etcd");
    assert!(cairn_bbolt::is_bbolt(&kept.join("snap").join("db")));
    assert!(
        std::fs::read_dir(kept.join("wal")).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".wal"))
    );
    // And a restart is an ordinary one.
    m.restart();
    let put = ok(etcdctl(&m.endpoint(), &["get", "after"], None));
    assert!(put.stdout.contains("after\n1\n"), "{put:?}");
}

/// What `etcdctl snapshot restore` writes (etcd's data dir with the members in its log only)
/// starts as a Cairn member too: etcd's own test for this (TestIssue6361) runs the same steps.
#[test]
fn a_data_dir_restored_by_etcdctl_starts_as_a_cairn_member() {
    let dir = tempfile::tempdir().unwrap();
    let source = Member::start(&dir.path().join("source"), &[]);
    let history = write_history(&source.endpoint());
    let file = dir.path().join("snap.db");
    ok(etcdctl(
        &source.endpoint(),
        &["snapshot", "save", file.to_str().unwrap()],
        None,
    ));
    drop(source);

    let mut m = Member::unstarted("restored", &dir.path().join("restored"), &[]);
    let peer = m.peer_url();
    let restored = etcdctl(
        "127.0.0.1:1",
        &[
            "snapshot",
            "restore",
            file.to_str().unwrap(),
            "--name",
            "restored",
            "--initial-cluster",
            &format!("restored={peer}"),
            "--initial-advertise-peer-urls",
            &peer,
            "--data-dir",
            m.data_dir.to_str().unwrap(),
        ],
        None,
    );
    ok(restored);
    m.launch();
    let members = json(etcdctl(
        &m.endpoint(),
        &["member", "list", "-w", "json"],
        None,
    ));
    assert_eq!(members["members"][0]["name"], "restored", "{members}");
    assert_eq!(
        members["members"][0]["peerURLs"][0],
        peer.as_str(),
        "{members}"
    );
    assert_same_history(&m.endpoint(), &history);
}

/// A whole etcd cluster, stopped member by member, goes on as a Cairn cluster: each `cairn`
/// starts on its member's data dir with the member's peer URL, they elect a leader among
/// themselves, and the cluster has the same ids, members and data, and takes writes.
#[test]
fn a_three_member_etcd_cluster_goes_on_as_a_cairn_cluster() {
    let mut etcds = RealEtcd::cluster(3);
    let first = etcds[0].endpoint();
    let history = write_history(&first);
    let status = json(etcdctl(&first, &["endpoint", "status", "-w", "json"], None));
    let cluster_id = status[0]["Status"]["header"]["cluster_id"].clone();
    let before = json(etcdctl(&first, &["member", "list", "-w", "json"], None));
    for e in &mut etcds {
        e.stop();
    }

    let mut cairns: Vec<Member> = etcds
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let mut m = Member::unstarted(&format!("m{i}"), &e.data_dir(), &[]);
            let port = e.peer_url().rsplit(':').next().unwrap();
            m.peer_port = port.parse().unwrap();
            m
        })
        .collect();
    cairn_e2e::launch_all(&mut cairns);
    for m in &cairns {
        let ep = m.endpoint();
        let status = json(etcdctl(&ep, &["endpoint", "status", "-w", "json"], None));
        assert_eq!(status[0]["Status"]["header"]["cluster_id"], cluster_id);
        let list = json(etcdctl(&ep, &["member", "list", "-w", "json"], None));
        let ids = |v: &serde_json::Value| {
            let mut ids: Vec<u64> = v["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["ID"].as_u64().unwrap())
                .collect();
            ids.sort();
            ids
        };
        assert_eq!(ids(&list), ids(&before));
        // Linearizable reads on every member see the history.
        assert_eq!(
            cairn_e2e::migration::state(&ep, &[]).0,
            history.state,
            "{ep}"
        );
    }
    assert_same_history(&cairns[1].endpoint(), &history);
}

/// etcd commits its backend on an interval: writes acknowledged before a SIGKILL and after the
/// last commit are only in its WAL (here all of them: the interval is an hour). Cairn, started
/// on the data dir, applies them from the log it carries over.
#[test]
fn writes_only_in_a_killed_etcds_log_are_applied() {
    let mut etcd = RealEtcd::start_with("http", &["--backend-batch-interval", "1h"], &[]);
    let src = etcd.endpoint();
    ok(etcdctl(&src, &["put", "first", "1"], None));
    let mut txn = String::from("\n");
    for i in 0..20 {
        txn.push_str(&format!("put late/{i:02} v{i}\n"));
    }
    txn.push_str("\n\n");
    ok(etcdctl(&src, &["txn"], Some(&txn)));
    ok(etcdctl(&src, &["put", "last", "x"], None));
    etcd.kill9();

    let mut m = Member::unstarted("default", &etcd.data_dir(), &[]);
    m.launch();
    let ep = m.endpoint();
    let late = json(etcdctl(
        &ep,
        &["get", "late/", "--prefix", "-w", "json"],
        None,
    ));
    assert_eq!(late["count"].as_i64(), Some(20), "{late}");
    let last = ok(etcdctl(&ep, &["get", "last"], None));
    assert_eq!(last.stdout, "last\nx\n");
}
