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
    assert_eq!(s["version"], "3.7.0");
    assert!(s["dbSize"].as_i64().unwrap() > 0);
    assert!(s["dbSizeInUse"].as_i64().unwrap() > 0);
    assert_eq!(s["leader"], s["header"]["member_id"]);
    assert!(s["raftAppliedIndex"].as_u64().unwrap() >= 2);
    assert_eq!(s["raftIndex"], s["raftAppliedIndex"]);

    let run = etcdctl(&ep, &["endpoint", "status", "-w", "table"], None);
    assert_eq!(run.code, 0);
    assert!(run.stdout.contains(" 3.7.0 |"), "{}", run.stdout);
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

    let run = etcdctl(&ep, &["defrag"], None);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stdout,
        format!("Finished defragmenting etcd member[{ep}]\n")
    );
}

/// Runs `etcdctl watch <args>` against `endpoint` while `writes` run, then returns its output.
///
/// A watch given no `--rev` starts at the next revision, so it sees every write however long it
/// takes to register; a last write of the value `sentinel` under the watched key ends the run
/// once it has been printed (as is, or base64 in JSON output).
fn watch_output(endpoint: &str, args: &[&str], writes: &[&[&str]]) -> String {
    let header = etcdctl(endpoint, &["get", "nokey", "-w", "json"], None);
    let v: serde_json::Value = serde_json::from_str(&header.stdout).unwrap();
    let next = (v["header"]["revision"].as_i64().unwrap() + 1).to_string();
    let mut full: Vec<&str> = vec!["watch"];
    full.extend_from_slice(args);
    if !args.contains(&"--rev") {
        full.extend_from_slice(&["--rev", &next]);
    }
    let watch = cairn_e2e::Bg::etcdctl(endpoint, &full);
    let mut lines = Vec::new();
    if args.contains(&"--rev") {
        // Let the replay of history arrive first: how live writes are grouped with it into
        // responses would otherwise depend on timing (and shows in JSON output).
        lines.extend(watch.lines(1, std::time::Duration::from_secs(10)));
    }
    for w in writes {
        assert_eq!(etcdctl(endpoint, w, None).code, 0, "{w:?}");
    }
    assert_eq!(etcdctl(endpoint, &["put", "w/a", "sentinel"], None).code, 0);
    while !lines
        .iter()
        .any(|l: &String| l.contains("sentinel") || l.contains("c2VudGluZWw="))
    {
        lines.extend(watch.lines(1, std::time::Duration::from_secs(10)));
    }
    let stdout = lines.iter().map(|l| format!("{l}\n")).collect::<String>();
    normalized(&cairn_e2e::Run {
        code: 0,
        stdout,
        stderr: String::new(),
    })
    .1
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

/// HashKV is etcd's: the same history gives the same hash and compact revision on Cairn and on
/// etcd, at the current revision and at earlier ones, before and after a compaction.
#[test]
fn hashkv_matches_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let cairn = Member::start(&dir.path().join("m1"), &[]);
    let etcd = RealEtcd::start();
    let hash = |ep: &str, rev: &str| -> (u64, i64) {
        let r = etcdctl(
            ep,
            &["endpoint", "hashkv", "--rev", rev, "-w", "json"],
            None,
        );
        assert_eq!(r.code, 0, "{r:?}");
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        let h = &v[0]["HashKV"];
        (
            h["hash"].as_u64().unwrap_or(0),
            h["compact_revision"].as_i64().unwrap_or(0),
        )
    };
    let both = |args: &[&str]| {
        for ep in [etcd.endpoint(), cairn.endpoint()] {
            assert_eq!(etcdctl(&ep, args, None).code, 0, "{args:?}");
        }
    };
    let check = |revs: &[&str]| {
        for rev in revs {
            assert_eq!(
                hash(&cairn.endpoint(), rev),
                hash(&etcd.endpoint(), rev),
                "HashKV at revision {rev} (left: cairn)"
            );
        }
    };
    check(&["0"]);
    both(&["put", "a", "1"]);
    both(&["put", "b", "2"]);
    both(&["put", "a", "3"]);
    both(&["del", "b"]);
    both(&["put", "c", "4"]);
    check(&["0", "2", "4", "6"]);
    both(&["compaction", "4"]);
    both(&["put", "d", "5"]);
    check(&["0", "5"]);
    // The compact revision itself is refused, as by etcd.
    let args = ["endpoint", "hashkv", "--rev", "4"];
    assert_eq!(
        normalized(&etcdctl(&cairn.endpoint(), &args, None)).0,
        normalized(&etcdctl(&etcd.endpoint(), &args, None)).0
    );
}
