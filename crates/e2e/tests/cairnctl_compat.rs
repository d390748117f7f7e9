//! cairnctl against Cairn must print exactly what etcdctl 3.4 prints against real etcd, for the
//! same commands on the same history (IDs and Raft term masked), with the same exit codes.

use cairn_e2e::{Member, RealEtcd, Step, cairnctl, etcdctl, normalized};

fn same(steps: &[Step]) {
    let dir = tempfile::tempdir().unwrap();
    let cairn = Member::start(&dir.path().join("m1"), &[]);
    let etcd = RealEtcd::start();
    for (args, stdin) in steps {
        let want = normalized(&etcdctl(&etcd.endpoint(), args, *stdin));
        let got = normalized(&cairnctl(&cairn.endpoint(), args, *stdin));
        assert_eq!(
            got, want,
            "cairnctl {args:?} differs from etcdctl (left: cairnctl on Cairn)"
        );
    }
}

#[test]
fn kv_commands_match_etcdctl() {
    same(cairn_e2e::KV_STEPS);
}

#[test]
fn txn_and_compaction_match_etcdctl() {
    same(cairn_e2e::TXN_STEPS);
}

#[test]
fn count_only_endpoint_status_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let cairn = Member::start(&dir.path().join("m1"), &[]);
    let ep = cairn.endpoint();
    for k in ["a1", "a2", "a3", "b"] {
        assert_eq!(cairnctl(&ep, &["put", k, "v"], None).code, 0);
    }
    // etcdctl 3.5's --count-only (3.4 lacks it).
    let r = cairnctl(
        &ep,
        &["get", "a", "--prefix", "--count-only", "-w", "fields"],
        None,
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("\"Count\" : 3\n"), "{}", r.stdout);
    let r = cairnctl(&ep, &["endpoint", "status", "-w", "json"], None);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v[0]["Status"]["header"]["revision"], 5);
    assert_eq!(v[0]["Endpoint"], ep.as_str());
    let r = cairnctl(&ep, &["endpoint", "health"], None);
    assert!(
        r.stderr
            .starts_with(&format!("{ep} is healthy: successfully committed proposal"))
    );
    let r = cairnctl(&ep, &["version"], None);
    assert!(r.stdout.starts_with("cairnctl version: "), "{}", r.stdout);
    // ETCDCTL_* variables work like flags.
    let out = std::process::Command::new(cairn_e2e::cairnctl_bin())
        .env("ETCDCTL_ENDPOINTS", &ep)
        .env("ETCDCTL_WRITE_OUT", "json")
        .args(["get", "b"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["count"], 1);
}
