//! `cairnctl check perf` against a real member: the write load runs (shortened from etcdctl's
//! minute by `CAIRNCTL_CHECK_PERF_SECONDS`), the verdict comes in etcdctl's lines, the keys are
//! gone afterwards, and the refusals (a prefix that holds keys, an unknown load) are etcdctl's,
//! compared with real etcdctl's against real etcd.

use cairn_e2e::{Member, RealEtcd, Run, cairnctl_bin, etcdctl};
use std::process::Command;

fn check_perf(ep: &str, args: &[&str], seconds: u64) -> Run {
    let out = Command::new(cairnctl_bin())
        .env("CAIRNCTL_CHECK_PERF_SECONDS", seconds.to_string())
        .args(["--endpoints", ep, "check", "perf"])
        .args(args)
        .output()
        .expect("run cairnctl");
    Run::from(out)
}

#[test]
fn check_perf_passes_a_healthy_member_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let member = Member::start(dir.path(), &[]);
    let ep = member.endpoint();
    let run = check_perf(&ep, &["--load", "s", "--auto-compact"], 4);
    assert_eq!(run.code, 0, "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    // ~600 writes at 150/s: throughput within 10% of the rate.
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("PASS: Throughput is ") && l.ends_with(" writes/s")),
        "{run:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("PASS: Slowest request took 0.")),
        "{run:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("PASS: Stddev is 0.")),
        "{run:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("Compacted with revision ")),
        "{run:?}"
    );
    assert_eq!(lines.last(), Some(&"PASS"), "{run:?}");
    // The writes happened, and were deleted again.
    let status = etcdctl(&ep, &["endpoint", "status", "-w", "json"], None);
    let revision = serde_json::from_str::<serde_json::Value>(&status.stdout)
        .ok()
        .and_then(|v| v[0]["Status"]["header"]["revision"].as_u64())
        .unwrap_or(0);
    assert!(revision > 500, "{status:?}");
    let left = etcdctl(
        &ep,
        &["get", "/etcdctl-check-perf/", "--prefix", "--keys-only"],
        None,
    );
    assert_eq!((left.code, left.stdout.as_str()), (0, ""), "{left:?}");
}

#[test]
fn check_perf_refusals_match_etcdctl() {
    let etcd = RealEtcd::start();
    let dir = tempfile::tempdir().unwrap();
    let member = Member::start(dir.path(), &[]);
    for ep in [etcd.endpoint(), member.endpoint()] {
        assert_eq!(etcdctl(&ep, &["put", "/busy/k", "v"], None).code, 0);
    }
    for args in [vec!["--prefix", "/busy/"], vec!["--load", "huge"]] {
        let ours = check_perf(&member.endpoint(), &args, 1);
        let mut full = vec!["check", "perf"];
        full.extend(&args);
        let theirs = etcdctl(&etcd.endpoint(), &full, None);
        assert_eq!(ours.code, theirs.code, "{args:?}: {ours:?} / {theirs:?}");
        assert_ne!(ours.code, 0);
        assert_eq!(ours.stderr, theirs.stderr, "{args:?}");
    }
}
