//! `cairnctl check perf` against a real member: the write load runs (shortened from etcdctl's
//! minute by `CAIRNCTL_CHECK_PERF_SECONDS`), the verdict comes in etcdctl's lines, the keys are
//! gone afterwards, and the refusals (a prefix that holds keys, an unknown load) are etcdctl's,
//! compared with real etcdctl's against real etcd.

use cairn_e2e::{Member, RealEtcd, Run, cairnctl_bin, etcdctl};
use std::process::Command;

fn check_perf(ep: &str, args: &[&str], seconds: u64) -> Run {
    check(ep, "perf", args, seconds)
}

fn check(ep: &str, which: &str, args: &[&str], seconds: u64) -> Run {
    let out = Command::new(cairnctl_bin())
        .env("CAIRNCTL_CHECK_PERF_SECONDS", seconds.to_string())
        .args(["--endpoints", ep, "check", which])
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
    for which in ["perf", "datascale"] {
        for args in [vec!["--prefix", "/busy/"], vec!["--load", "huge"]] {
            let ours = check(&member.endpoint(), which, &args, 1);
            let mut full = vec!["check", which];
            full.extend(&args);
            let theirs = etcdctl(&etcd.endpoint(), &full, None);
            assert_eq!(
                ours.code, theirs.code,
                "{which} {args:?}: {ours:?} / {theirs:?}"
            );
            assert_ne!(ours.code, 0);
            assert_eq!(ours.stderr, theirs.stderr, "{which} {args:?}");
        }
    }
}

/// `check datascale` reads the member's resident memory from `/metrics` before and after the
/// writes. cairnctl's run (shortened by `CAIRNCTL_CHECK_DATASCALE_COUNT`) prints etcdctl's lines;
/// real etcdctl's own run passes against a Cairn member too (its `/metrics` carries
/// `process_resident_memory_bytes` as etcd's does).
#[test]
fn check_datascale_reports_memory_growth_as_etcdctl() {
    let dir = tempfile::tempdir().unwrap();
    let member = Member::start(dir.path(), &[]);
    let ep = member.endpoint();
    let out = Command::new(cairnctl_bin())
        .env("CAIRNCTL_CHECK_DATASCALE_COUNT", "3000")
        .args(["--endpoints", &ep, "check", "datascale", "--auto-compact"])
        .output()
        .expect("run cairnctl");
    let run = Run::from(out);
    assert_eq!(run.code, 0, "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines.first(),
        Some(
            &"Start data scale check for work load [3000 key-value pairs, 1024 bytes per key-value, 50 concurrent clients]."
        ),
        "{run:?}"
    );
    let pass = lines
        .iter()
        .find_map(|l| l.strip_prefix("PASS: Approximate system memory used : "))
        .and_then(|l| l.strip_suffix(" MB."))
        .unwrap_or_else(|| panic!("{run:?}"));
    let (whole, decimals) = pass.split_once('.').unwrap_or_else(|| panic!("{pass}"));
    assert!(
        whole.trim_start_matches('-').parse::<u64>().is_ok() && decimals.len() == 2,
        "{pass}"
    );
    let left = etcdctl(
        &ep,
        &[
            "get",
            "/etcdctl-check-datascale/",
            "--prefix",
            "--keys-only",
        ],
        None,
    );
    assert_eq!((left.code, left.stdout.as_str()), (0, ""), "{left:?}");

    let theirs = etcdctl(&ep, &["check", "datascale"], None);
    assert_eq!(theirs.code, 0, "{theirs:?}");
    assert!(
        theirs
            .stdout
            .contains("PASS: Approximate system memory used : "),
        "{theirs:?}"
    );
}
