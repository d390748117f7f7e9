//! Real etcdctl 3.4 against Cairn and against real etcd, side by side: every command must give
//! the same output (IDs and Raft term masked) and the same exit code.

use cairn_e2e::{Member, RealEtcd, etcdctl, normalized};

/// Runs each step against both servers and compares.
fn same(etcd: &RealEtcd, cairn: &Member, steps: &[cairn_e2e::Step]) {
    for (args, stdin) in steps {
        let want = normalized(&etcdctl(&etcd.endpoint(), args, *stdin));
        let got = normalized(&etcdctl(&cairn.endpoint(), args, *stdin));
        assert_eq!(
            got, want,
            "etcdctl {args:?} differs (left: cairn, right: etcd)"
        );
    }
}

#[test]
fn kv_commands_match_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let cairn = Member::start(&dir.path().join("m1"), &[]);
    let etcd = RealEtcd::start();
    same(&etcd, &cairn, cairn_e2e::KV_STEPS);
}

#[test]
fn txn_and_compaction_match_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let cairn = Member::start(&dir.path().join("m1"), &[]);
    let etcd = RealEtcd::start();
    same(&etcd, &cairn, cairn_e2e::TXN_STEPS);
}

#[test]
fn endpoint_status_and_health() {
    let dir = tempfile::tempdir().unwrap();
    let cairn = Member::start(&dir.path().join("m1"), &[]);
    let ep = cairn.endpoint();
    etcdctl(&ep, &["put", "a", "1"], None);
    let run = etcdctl(&ep, &["endpoint", "status", "-w", "json"], None);
    assert_eq!(run.code, 0, "{run:?}");
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let s = &v[0]["Status"];
    assert_eq!(v[0]["Endpoint"], ep.as_str());
    assert_eq!(s["header"]["revision"], 2);
    assert_eq!(s["version"], "3.6.0");
    assert!(s["dbSize"].as_i64().unwrap() > 0);
    assert!(s["dbSizeInUse"].as_i64().unwrap() > 0);
    assert_eq!(s["leader"], s["header"]["member_id"]);
    assert!(s["raftAppliedIndex"].as_u64().unwrap() >= 2);
    assert_eq!(s["raftIndex"], s["raftAppliedIndex"]);

    let run = etcdctl(&ep, &["endpoint", "status", "-w", "table"], None);
    assert_eq!(run.code, 0);
    assert!(run.stdout.contains(" 3.6.0 |"), "{}", run.stdout);
    assert!(
        run.stdout.contains("|      true |      false |"),
        "{}",
        run.stdout
    );

    let run = etcdctl(&ep, &["endpoint", "health"], None);
    assert_eq!(run.code, 0);
    // etcdctl writes the health line to stderr.
    assert!(
        run.stderr
            .starts_with(&format!("{ep} is healthy: successfully committed proposal")),
        "{}",
        run.stderr
    );
    let run = etcdctl(&ep, &["member", "list"], None);
    assert_eq!(run.code, 0);
    let peer = format!("http://127.0.0.1:{}", cairn.peer_port);
    assert!(
        run.stdout
            .contains(&format!(", started, m1, {peer}, {}, false", cairn.url())),
        "{}",
        run.stdout
    );

    // Not yet implemented services answer UNIMPLEMENTED with a clear message.
    let run = etcdctl(&ep, &["user", "list"], None);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("Unimplemented"), "{}", run.stderr);
    assert!(
        run.stderr.contains("UserList is not implemented yet"),
        "{}",
        run.stderr
    );
}

/// Runs `etcdctl watch <args>` against `endpoint` while `writes` run, then returns its output.
fn watch_output(endpoint: &str, args: &[&str], writes: &[&[&str]]) -> String {
    let mut cmd = std::process::Command::new(cairn_e2e::etcdctl_bin());
    cmd.env("ETCDCTL_API", "3")
        .arg("--endpoints")
        .arg(endpoint)
        .arg("watch")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    for w in writes {
        assert_eq!(etcdctl(endpoint, w, None).code, 0, "{w:?}");
    }
    std::thread::sleep(std::time::Duration::from_millis(700));
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    normalized(&cairn_e2e::Run::from(out)).1
}

#[test]
fn watch_matches_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let cairn = Member::start(&dir.path().join("m1"), &[]);
    let etcd = RealEtcd::start();
    let history: &[&[&str]] = &[
        &["put", "w/a", "1"],
        &["put", "w/b", "2"],
        &["put", "w/a", "3"],
        &["del", "w/b"],
    ];
    for ep in [cairn.endpoint(), etcd.endpoint()] {
        for w in history {
            etcdctl(&ep, w, None);
        }
    }
    let live: &[&[&str]] = &[
        &["put", "w/c", "4"],
        &["put", "w/a", "5"],
        &["del", "w/", "--prefix"],
        &["put", "other", "x"],
    ];
    for args in [
        &["w/", "--prefix"][..],
        &["w/a"],
        &["w/", "--prefix", "--prev-kv"],
        &["w/", "--prefix", "--rev", "2"],
        &["w/", "--prefix", "--rev", "3", "-w", "json"],
        &["w/a", "--rev", "2", "--prev-kv", "-w", "fields"],
    ] {
        let want = watch_output(&etcd.endpoint(), args, live);
        let got = watch_output(&cairn.endpoint(), args, live);
        assert_eq!(
            got, want,
            "watch {args:?} differs (left: cairn, right: etcd)"
        );
        assert!(!got.is_empty(), "watch {args:?} saw nothing");
    }
}
